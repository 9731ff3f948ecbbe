#include "core/score.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace chorus::election {
namespace {

// NaN and anything below 0 count as 0, anything above 1 as 1: a broken input must not let one
// component outweigh the others.
double clamp01(double v) {
  if (!(v > 0)) return 0;
  return v > 1 ? 1 : v;
}

// Negative or non-finite weights count as 0 (the config schema refuses them; this keeps [0, 1]).
double usable_weight(double w) { return std::isfinite(w) && w > 0 ? w : 0; }

double saturating_ratio(uint64_t value, uint64_t full) {
  if (full == 0) return 1;
  return clamp01(static_cast<double>(value) / static_cast<double>(full));
}

// The admin duties the capabilities component counts; unknown names neither help nor hurt.
constexpr std::string_view kAdminDuties[] = {"admin", "coordination", "context", "keys"};

}  // namespace

double weighted_score(const ScoreComponents &c, const ScoreWeights &w) {
  const double weights[] = {usable_weight(w.uptime), usable_weight(w.capabilities), usable_weight(w.resources),
                            usable_weight(w.network), usable_weight(w.experience)};
  const double values[] = {clamp01(c.uptime), clamp01(c.capabilities), clamp01(c.resources), clamp01(c.network),
                           clamp01(c.experience)};
  double sum = 0, total = 0;
  for (size_t i = 0; i < 5; ++i) {
    sum += weights[i] * values[i];
    total += weights[i];
  }
  if (!(total > 0) || !std::isfinite(total)) return 0;
  return clamp01(sum / total);
}

ScoreComponents compute_components(const ScoreInputs &in) {
  ScoreComponents c;
  c.uptime = saturating_ratio(in.uptime_ms, in.uptime_full_ms);
  size_t duties = 0;
  for (std::string_view duty : kAdminDuties)
    if (std::find(in.capabilities.begin(), in.capabilities.end(), duty) != in.capabilities.end()) ++duties;
  c.capabilities = static_cast<double>(duties) / static_cast<double>(std::size(kAdminDuties));
  c.resources = (clamp01(in.mem_available_fraction) + clamp01(in.cpu_idle_fraction)) / 2;
  c.network = in.quorum == 0 ? 1 : clamp01(static_cast<double>(in.members_heard) / static_cast<double>(in.quorum));
  c.experience = saturating_ratio(in.admin_ms_total, in.experience_full_ms);
  return c;
}

}  // namespace chorus::election

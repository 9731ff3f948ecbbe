// Candidate scoring: five components, each in [0, 1], weighted into one score in [0, 1]. The sources
// name the components but not the weights; the defaults below are this project's choice (README.md,
// "Candidate scoring").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace chorus::election {

struct ScoreComponents {
  double uptime = 0;        // time since start, saturating at uptime_full_ms
  double capabilities = 0;  // share of the admin duties this agent is configured for
  double resources = 0;     // free memory and idle CPU
  double network = 0;       // members this agent hears, over the quorum size
  double experience = 0;    // time spent as admin in earlier terms, saturating
};

struct ScoreWeights {
  double uptime = 0.30;
  double capabilities = 0.20;
  double resources = 0.20;
  double network = 0.15;
  double experience = 0.15;
};

// The weighted sum, divided by the sum of the weights (so any non-negative weights give [0, 1]);
// 0 when every weight is 0.
double weighted_score(const ScoreComponents &c, const ScoreWeights &w);

// The inputs each component is computed from, gathered by the plugin (resources from /proc).
struct ScoreInputs {
  uint64_t uptime_ms = 0;
  uint64_t uptime_full_ms = 3600000;  // an hour of uptime scores 1
  std::vector<std::string> capabilities;  // configured; "admin", "coordination", "context", "keys" count
  double mem_available_fraction = 0;      // MemAvailable / MemTotal
  double cpu_idle_fraction = 0;           // 1 - loadavg1 / cores, clamped
  uint32_t members_heard = 0;             // alive members, self included
  uint32_t quorum = 1;
  uint64_t admin_ms_total = 0;            // persisted: time as admin over all earlier terms
  uint64_t experience_full_ms = 86400000; // a day as admin scores 1
};
ScoreComponents compute_components(const ScoreInputs &in);

}  // namespace chorus::election

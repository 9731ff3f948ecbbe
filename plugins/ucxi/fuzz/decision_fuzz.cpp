// Fuzzes the decision record parser with arbitrary bytes as the request body. Invariants: any bytes
// are safe; a refusal names a field and says why; an accepted record round-trips (parse_decision of
// to_json gives the same Decision, and its text dumps), its address is concrete and parses back to
// itself, and every citation is one concrete version.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "decision.hpp"

using namespace chorus::ucxi;

namespace {

[[noreturn]] void violated(const char *what, std::string_view detail) {
  std::fprintf(stderr, "ucxi_decision_fuzz: invariant violated: %s [%.*s]\n", what,
               static_cast<int>(detail.size() > 200 ? 200 : detail.size()), detail.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string field, why;
  const auto d = parse_decision_text(text, &field, &why);
  if (!d) {
    if (field.empty() || why.empty()) violated("refusal without a field or a reason", text);
    return 0;
  }
  const nlohmann::json j = to_json(*d);
  const std::string dumped = j.dump();  // throws (a crash here) on text that is not valid UTF-8
  std::string field2, why2;
  const auto again = parse_decision(j, &field2, &why2);
  if (!again) violated("to_json of an accepted record is refused", field2 + ": " + why2);
  if (!(*again == *d)) violated("parse_decision(to_json(d)) != d", dumped);
  const auto from_text = parse_decision_text(dumped, nullptr, nullptr);
  if (!from_text || !(*from_text == *d)) violated("the record's text does not read back", dumped);

  const chorus::ucxl::Address a = decision_address(*d);
  if (a.has_wildcards()) violated("a decision's address has a wildcard", a.to_string());
  const auto parsed = chorus::ucxl::parse(a.to_string());
  if (!parsed || !(*parsed == a)) violated("a decision's address does not parse back", a.to_string());
  for (const auto &c : d->citations) {
    if (c.temporal.type != chorus::ucxl::TemporalType::kSpecific || c.has_wildcards()) {
      violated("a citation that is not one concrete version", c.to_string());
    }
  }
  (void)decision_announcement(*d, a.with_temporal({chorus::ucxl::TemporalType::kSpecific,
                                                   chorus::ucxl::Direction::kNone, 1})
                                      .to_string(),
                              std::string(64, '0'))
      .dump();
  return 0;
}

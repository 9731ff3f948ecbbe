// Fuzzes the UCXL address parser. Invariants: any bytes are safe; a refusal names one of the
// documented fields with a message, and its text is printable ASCII (it goes into JSON envelopes);
// an accepted address round-trips - parse(to_string(a)) == a, the canonical text is a fixed point, the
// JSON form reads back to the same address - matches itself and the all-wildcard pattern, and its
// series does not depend on the temporal segment.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ucxl/address.hpp"

using namespace chorus::ucxl;

namespace {

[[noreturn]] void violated(const char *what, std::string_view detail) {
  std::fprintf(stderr, "ucxl_address_fuzz: invariant violated: %s [%.*s]\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

bool printable_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool known_field(std::string_view f) {
  return f == "address" || f == "agent" || f == "role" || f == "project" || f == "task" || f == "temporal_segment" ||
         f == "path";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  ParseError err;
  const auto a = parse(text, &err);
  if (!a) {
    if (!known_field(err.field)) violated("refusal names an unknown field", err.field);
    if (err.message.empty()) violated("refusal without a message", text);
    if (!printable_ascii(err.what())) violated("error text is not printable ASCII", err.what());
    return 0;
  }
  if (size > kMaxAddressBytes) violated("accepted an over-long address", text.substr(0, 64));
  if (a->raw != text) violated("raw differs from the input", a->raw);

  const std::string canonical = a->to_string();
  ParseError err2;
  const auto again = parse(canonical, &err2);
  if (!again) violated("canonical text does not parse", err2.what());
  if (!(*again == *a)) violated("parse(to_string(a)) != a", canonical);
  if (again->to_string() != canonical) violated("canonical text is not a fixed point", canonical);

  const nlohmann::json j = a->to_json();
  (void)j.dump();  // throws (and so crashes the fuzzer) on text that is not valid UTF-8
  ParseError err3;
  const auto from = from_json(j, &err3);
  if (!from) violated("JSON form does not read back", err3.what());
  if (!(*from == *a)) violated("from_json(to_json(a)) != a", canonical);
  if (from->raw != canonical) violated("from_json's raw is not the canonical text", from->raw);

  if (!matches(*a, *a)) violated("an address does not match itself", canonical);
  Address pattern = *a;
  pattern.agent = pattern.role = pattern.project = pattern.task = "any";
  pattern.path.clear();
  if (!matches(pattern, *a)) violated("the all-wildcard pattern does not match", canonical);
  // Every version of one piece of content shares its series.
  if (a->with_temporal(TemporalSegment{}).series() != a->series()) {
    violated("series() depends on the temporal segment", canonical);
  }
  return 0;
}

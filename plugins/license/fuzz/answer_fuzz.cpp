// libFuzzer target license_answer: a licence server's answer (untrusted network input) through
// classify_answer, under the statuses that matter (200, 403, 500). Besides the sanitizers, it checks
// what the classifier promises: a valid answer names an expiry that formats and parses back, every
// refusal and failure carries a reason, and only 200 can be valid.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol.hpp"

namespace {
[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace chorus::license;
  const std::string_view body(reinterpret_cast<const char *>(data), size);
  for (int status : {200, 403, 500}) {
    const Answer a = classify_answer(status, body, "", "lic-1");
    if (a.outcome == Outcome::valid) {
      if (status != 200) violated("a non-200 answer was valid");
      const auto back = parse_rfc3339_ms(format_rfc3339_ms(a.expires_at_unix_ms));
      if (!back || *back != a.expires_at_unix_ms) violated("the expiry does not round-trip");
    } else if (a.reason.empty()) {
      violated("a refusal or failure without a reason");
    }
    if (a.reason.size() > kMaxReasonBytes + 64) violated("reason longer than the limit");
    if (status == 403 && a.outcome != Outcome::invalid) violated("403 was not a refusal");
  }
  (void)parse_rfc3339_ms(body);
  return 0;
}

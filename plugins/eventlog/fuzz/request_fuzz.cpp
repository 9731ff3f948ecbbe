// libFuzzer target eventlog_request: the body of POST /eventlog/greet (untrusted network
// input) through parse_greet_request. Besides the sanitizers, it checks what the parser promises.
// Seed corpus: corpus/eventlog_request/. Add a target like this for every parser of input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "request.hpp"

namespace {
[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  constexpr size_t kMaxName = 16;
  const std::string_view body(reinterpret_cast<const char *>(data), size);
  std::string why;
  const auto req = chorus::eventlog::parse_greet_request(body, kMaxName, &why);
  if (req) {
    if (req->name.empty() || req->name.size() > kMaxName) violated("accepted a name outside the limit");
  } else if (why.empty()) {
    violated("refused without a reason");
  }
  return 0;
}

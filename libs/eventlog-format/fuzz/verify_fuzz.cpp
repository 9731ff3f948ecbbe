// Fuzzes the chain verifier with entries decoded from arbitrary bytes: the fields a tampered or
// corrupt database can hand it (any index, any text, any blob), one or several entries in a row.
// Must never crash, and must never accept an entry whose hash or signature is not genuine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "eventlog/verify.hpp"

namespace {

// Takes a length-prefixed (1 byte) string from the input.
std::string take(const uint8_t *&p, size_t &n) {
  if (n == 0) return {};
  size_t len = std::min<size_t>(*p, n - 1);
  std::string s(reinterpret_cast<const char *>(p + 1), len);
  p += 1 + len;
  n -= 1 + len;
  return s;
}

template <size_t N>
void take_bytes(const uint8_t *&p, size_t &n, std::array<uint8_t, N> &out) {
  const size_t k = std::min(N, n);
  std::memcpy(out.data(), p, k);
  p += k;
  n -= k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  chorus::eventlog::ChainVerifier chain;
  const uint8_t *p = data;
  size_t n = size;
  while (n > 0) {
    chorus::eventlog::Entry e;
    e.index = n > 0 ? *p % 4 : 0;
    ++p;
    --n;
    e.timestamp = take(p, n);
    e.author = take(p, n);
    e.type = take(p, n);
    e.data = take(p, n);
    take_bytes(p, n, e.prev_hash);
    take_bytes(p, n, e.hash);
    take_bytes(p, n, e.signature);
    const std::string defect = take(p, n);
    if (chain.next(e, defect)) {
      // Whatever was accepted carries its own hash: a forged one cannot pass.
      if (chorus::eventlog::compute_hash(e) != e.hash) __builtin_trap();
    }
  }
  return 0;
}

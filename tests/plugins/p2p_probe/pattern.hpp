// Deterministic test payloads and peer-id text decoding for the p2p probe.
//
// The payload generator is the same xorshift32 stream as tests/interop/js/peer.mjs (seeded by the
// stream index, 32-bit words little-endian, 64 KiB chunks), so a run is reproducible on both sides.
#ifndef CHORUS_TESTS_P2P_PROBE_PATTERN_HPP
#define CHORUS_TESTS_P2P_PROBE_PATTERN_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace p2p_probe {

inline constexpr size_t kChunk = 64 * 1024;

class Pattern {
 public:
  Pattern(uint32_t index, uint64_t total) : left_(total) {
    x_ = 0x9e3779b9u ^ static_cast<uint32_t>((index + 1u) * 0x85ebca6bu);
    if (x_ == 0) x_ = 1;
  }
  uint64_t left() const { return left_; }
  // Fills out with the next chunk (up to kChunk bytes); empty when the stream is exhausted.
  void next(std::vector<uint8_t> &out) {
    const size_t n = left_ < kChunk ? static_cast<size_t>(left_) : kChunk;
    out.resize(n);
    size_t i = 0;
    while (i < n) {
      x_ ^= x_ << 13;
      x_ ^= x_ >> 17;
      x_ ^= x_ << 5;
      const uint8_t le[4] = {static_cast<uint8_t>(x_), static_cast<uint8_t>(x_ >> 8), static_cast<uint8_t>(x_ >> 16),
                             static_cast<uint8_t>(x_ >> 24)};
      const size_t take = n - i < 4 ? n - i : 4;
      std::memcpy(out.data() + i, le, take);
      i += take;
    }
    left_ -= n;
  }

 private:
  uint32_t x_;
  uint64_t left_;
};

// base58btc (bitcoin alphabet) -> bytes. False on a character outside the alphabet or an over-long input.
// Peer ids arrive as text in HTTP bodies and the service wants the binary multihash.
// (namespace-scope constexpr: internal linkage, no function-local static in an inline function.)
constexpr char kBase58Alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

inline bool base58_decode(std::string_view text, std::vector<uint8_t> &out) {
  if (text.empty() || text.size() > 128) return false;
  std::vector<uint8_t> num;  // big-endian base-256 accumulator
  size_t zeros = 0;
  while (zeros < text.size() && text[zeros] == '1') ++zeros;
  for (char c : text) {
    const char *p = static_cast<const char *>(std::memchr(kBase58Alphabet, c, 58));
    if (p == nullptr || c == '\0') return false;
    uint32_t carry = static_cast<uint32_t>(p - kBase58Alphabet);
    for (size_t j = num.size(); j-- > 0;) {
      carry += static_cast<uint32_t>(num[j]) * 58u;
      num[j] = static_cast<uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    while (carry > 0) {
      num.insert(num.begin(), static_cast<uint8_t>(carry & 0xff));
      carry >>= 8;
    }
  }
  out.assign(zeros, 0);
  size_t k = 0;
  while (k < num.size() && num[k] == 0) ++k;
  out.insert(out.end(), num.begin() + static_cast<std::ptrdiff_t>(k), num.end());
  return true;
}

}  // namespace p2p_probe

#endif  // CHORUS_TESTS_P2P_PROBE_PATTERN_HPP

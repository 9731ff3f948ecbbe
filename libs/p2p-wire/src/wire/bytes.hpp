// Byte buffers and views shared by every layer of the p2p stack, plus hex helpers for logs and tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chorus::p2p {

using Bytes = std::vector<uint8_t>;
using BytesView = std::span<const uint8_t>;

// An allocator whose value-less construct() leaves the bytes uninitialised, so resize() does not
// zero memory the caller overwrites at once.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() noexcept = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U> &) noexcept {}

  template <class U>
  void construct(U *p) noexcept {
    ::new (static_cast<void *>(p)) U;
  }
  template <class U, class... Args>
  void construct(U *p, Args &&...args) {
    ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
  }
};

// Ciphertext on its way to a socket: grown by resize() and then filled by the cipher, which would
// otherwise pay for a memset of every byte it is about to write.
using WireBytes = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

inline BytesView as_bytes(std::string_view s) {
  return BytesView(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

inline std::string_view as_string_view(BytesView b) {
  return std::string_view(reinterpret_cast<const char *>(b.data()), b.size());
}

inline Bytes to_bytes(BytesView b) { return Bytes(b.begin(), b.end()); }

inline void append(Bytes &out, BytesView b) { out.insert(out.end(), b.begin(), b.end()); }
inline void append(WireBytes &out, BytesView b) { out.insert(out.end(), b.begin(), b.end()); }

// Lower-case hex, two characters per byte.
inline std::string to_hex(BytesView b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 0x0f]);
  }
  return s;
}

// Accepts upper or lower case; empty input gives an empty buffer. Odd length or a non-hex character -> nullopt.
inline std::optional<Bytes> from_hex(std::string_view s) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (s.size() % 2 != 0) return std::nullopt;
  Bytes out;
  out.reserve(s.size() / 2);
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

}  // namespace chorus::p2p

// The node's clock: milliseconds on the steady clock, for deadlines, expiries and backoff.
#pragma once

#include <chrono>
#include <cstdint>

namespace chorus::p2p {

inline uint64_t monotonic_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace chorus::p2p

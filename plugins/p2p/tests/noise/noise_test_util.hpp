// Shared helpers of the Noise tests: fixed-key construction, hex, and a pump that runs two handshakes
// against each other with arbitrary chunking.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "wire/bytes.hpp"
#include "wire/identity.hpp"
#include "noise/noise_handshake.hpp"

namespace chorus::p2p {

struct NoiseHandshakeTestAccess {
  static std::unique_ptr<NoiseHandshake> make(NoiseConfig config, const noise::Key &static_private,
                                              const noise::Key &ephemeral_private) {
    return std::unique_ptr<NoiseHandshake>(new NoiseHandshake(std::move(config), &static_private,
                                                              &ephemeral_private));
  }
};

namespace noise_test {

inline Bytes hex(const char *s) {
  auto b = from_hex(s);
  EXPECT_TRUE(b.has_value()) << s;
  return b ? *b : Bytes{};
}

inline noise::Key key_from_hex(const char *s) {
  noise::Key k{};
  Bytes b = hex(s);
  EXPECT_EQ(b.size(), k.size());
  std::copy_n(b.begin(), std::min(b.size(), k.size()), k.begin());
  return k;
}

inline Identity identity_from_byte(uint8_t byte) {
  uint8_t seed[32];
  std::fill(std::begin(seed), std::end(seed), byte);
  return Identity::from_seed(seed);
}

// One side's view of the wire: what the peer wrote that this side has not consumed yet.
struct Side {
  NoiseHandshake *hs;
  Bytes inbox;
};

// Moves output between the two handshakes, delivering at most `chunk` bytes per feed() call, until both
// stop running or nothing moves any more. Returns the bytes left over in each inbox (transport data).
inline void pump(NoiseHandshake &a, NoiseHandshake &b, size_t chunk, Bytes *a_left = nullptr,
                 Bytes *b_left = nullptr) {
  Side sides[2] = {{&a, {}}, {&b, {}}};
  for (int rounds = 0; rounds < 100000; ++rounds) {
    bool moved = false;
    for (int i = 0; i < 2; ++i) {
      Bytes out;
      sides[i].hs->take_output(out);
      if (!out.empty()) moved = true;
      Bytes &peer_inbox = sides[1 - i].inbox;
      append(peer_inbox, out);
    }
    for (Side &s : sides) {
      // Deliver in chunks: the "socket buffer" grows by `chunk` bytes per call.
      size_t visible = 0;
      while (s.hs->state() == NoiseHandshake::State::running && visible < s.inbox.size()) {
        visible = std::min(s.inbox.size(), visible + chunk);
        size_t used = 0;
        s.hs->feed(BytesView(s.inbox).first(visible), used);
        if (used > 0) moved = true;
        s.inbox.erase(s.inbox.begin(), s.inbox.begin() + static_cast<std::ptrdiff_t>(used));
        visible -= used;
      }
    }
    if (!moved) break;
  }
  if (a_left) *a_left = sides[0].inbox;
  if (b_left) *b_left = sides[1].inbox;
}

}  // namespace noise_test
}  // namespace chorus::p2p

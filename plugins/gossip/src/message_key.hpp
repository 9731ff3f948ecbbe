// A message id's fixed-size stand-in in the per-message caches that outlive the message: the seen
// cache, the score's delivery records and the verifier's list of checked ids. Ids are 40 to 50 bytes
// (author + seqno) in their own allocation, copied into each cache and its expiry queue; they live for
// the seen TTL (two minutes), so under load they were most of the plugin's heap
// (docs/benchmarks.md, "Cluster soak"). A key is 16 bytes inline.
//
// The key is SipHash-128 of the id under a secret drawn once per process: a peer cannot craft two ids
// with one key without knowing the secret, and an accidental collision (2^-128 per pair) is not a
// concern. A collision would only make one message look already seen.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/bytes.hpp"

namespace chorus::gossip {

struct MessageKey {
  uint64_t lo = 0, hi = 0;
  bool operator==(const MessageKey &o) const { return lo == o.lo && hi == o.hi; }
};

struct MessageKeyHash {
  size_t operator()(const MessageKey &k) const noexcept { return static_cast<size_t>(k.lo); }
};

MessageKey message_key(chorus::p2p::BytesView id);

}  // namespace chorus::gossip

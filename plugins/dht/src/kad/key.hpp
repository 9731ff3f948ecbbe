// Kademlia keys and distance (docs/protocols.md, DHT): every key - a record key, a provider key, a
// peer id's multihash bytes - is placed in the 256-bit key space by its SHA-256, and the distance
// between two points is their XOR read as a big-endian number.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "wire/bytes.hpp"
#include "wire/peer_id.hpp"

namespace chorus::dht {

using Bytes = chorus::p2p::Bytes;
using BytesView = chorus::p2p::BytesView;
using PeerId = chorus::p2p::PeerId;

// A point in the key space: SHA-256 of the key bytes.
struct KadId {
  std::array<uint8_t, 32> bytes{};

  static KadId of_key(BytesView key);     // SHA-256(key)
  static KadId of_peer(const PeerId &id);  // SHA-256(the peer id's multihash bytes)

  auto operator<=>(const KadId &) const = default;
  std::string hex() const;
};

// XOR distance; compare distances with <, which is the big-endian numeric order.
KadId distance(const KadId &a, const KadId &b);

// Number of leading bits a and b share (256 when equal). A peer at common prefix length i from us
// belongs to bucket i.
int common_prefix_len(const KadId &a, const KadId &b);

// True when a is strictly closer to target than b.
bool closer(const KadId &a, const KadId &b, const KadId &target);

}  // namespace chorus::dht

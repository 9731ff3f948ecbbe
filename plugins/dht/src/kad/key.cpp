// PROVISIONAL (lookup slice): a minimal key space so the lookup and handler tests link. The wire
// slice's key.cpp replaces this file at merge.
#include "kad/key.hpp"

#include <sodium.h>

namespace chorus::dht {

KadId KadId::of_key(BytesView key) {
  KadId id;
  crypto_hash_sha256(id.bytes.data(), key.data(), key.size());
  return id;
}

KadId KadId::of_peer(const PeerId &peer) { return of_key(peer.bytes()); }

std::string KadId::hex() const { return chorus::p2p::to_hex(bytes); }

KadId distance(const KadId &a, const KadId &b) {
  KadId d;
  for (size_t i = 0; i < d.bytes.size(); ++i) d.bytes[i] = a.bytes[i] ^ b.bytes[i];
  return d;
}

int common_prefix_len(const KadId &a, const KadId &b) {
  for (size_t i = 0; i < a.bytes.size(); ++i) {
    uint8_t x = a.bytes[i] ^ b.bytes[i];
    if (x != 0) return static_cast<int>(i * 8) + __builtin_clz(x) - 24;
  }
  return 256;
}

bool closer(const KadId &a, const KadId &b, const KadId &target) {
  return distance(a, target) < distance(b, target);
}

}  // namespace chorus::dht

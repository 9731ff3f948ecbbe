#include "kad/key.hpp"

#include <sodium.h>

#include <bit>

namespace chorus::dht {

KadId KadId::of_key(BytesView key) {
  KadId id;
  crypto_hash_sha256(id.bytes.data(), key.data(), key.size());
  return id;
}

KadId KadId::of_peer(const PeerId &id) { return of_key(id.bytes()); }

std::string KadId::hex() const { return chorus::p2p::to_hex(bytes); }

KadId distance(const KadId &a, const KadId &b) {
  KadId d;
  for (size_t i = 0; i < d.bytes.size(); ++i) d.bytes[i] = a.bytes[i] ^ b.bytes[i];
  return d;
}

int common_prefix_len(const KadId &a, const KadId &b) {
  for (size_t i = 0; i < a.bytes.size(); ++i) {
    uint8_t x = a.bytes[i] ^ b.bytes[i];
    if (x != 0) return static_cast<int>(i * 8) + std::countl_zero(x);
  }
  return 256;
}

bool closer(const KadId &a, const KadId &b, const KadId &target) {
  // Comparing the XORs byte by byte from the front is the big-endian numeric order, without building
  // either distance.
  for (size_t i = 0; i < target.bytes.size(); ++i) {
    uint8_t da = a.bytes[i] ^ target.bytes[i];
    uint8_t db = b.bytes[i] ^ target.bytes[i];
    if (da != db) return da < db;
  }
  return false;
}

}  // namespace chorus::dht

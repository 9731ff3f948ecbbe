// Peer ids: the multihash of a peer's serialized PublicKey protobuf (libp2p peer-ids spec).
//
// Ed25519 keys serialize to 36 bytes, so their ids use the identity multihash and embed the key
// (38 bytes: 00 24 08 01 12 20 || pk). Larger keys (RSA) use sha2-256. Nothing else is accepted.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "wire/bytes.hpp"

namespace chorus::p2p {

enum KeyType : uint32_t { kKeyRsa = 0, kKeyEd25519 = 1, kKeySecp256k1 = 2, kKeyEcdsa = 3 };

// PublicKey protobuf for an Ed25519 key: 08 01 12 20 || pk (always 36 bytes).
Bytes encode_ed25519_public_key(const uint8_t pk[32]);

// Decodes a PublicKey (or PrivateKey: same schema) protobuf. Strict: both fields exactly once, in
// canonical order, no unknown fields, a known key type (the canonical form is what peer ids and
// signatures are computed over). The caller checks the data length for its key type.
bool decode_public_key(BytesView in, uint32_t &key_type, Bytes &data, std::string *why);

class PeerId {
 public:
  // An empty id (no bytes); never equal to a parsed id. Exists so PeerId can sit in structs and maps.
  PeerId() = default;

  // Accepts an identity multihash of at most 42 bytes or a sha2-256 multihash.
  static std::optional<PeerId> from_bytes(BytesView multihash, std::string *why);
  // Legacy base58 ("12D3KooW...", "Qm...") or CIDv1 in multibase 'b' with the libp2p-key codec (0x72).
  static std::optional<PeerId> parse(std::string_view text, std::string *why);
  static PeerId from_ed25519(const uint8_t pk[32]);
  // The id of any serialized PublicKey: identity multihash up to 42 bytes, else sha2-256.
  static PeerId from_public_key(BytesView public_key_protobuf);

  const Bytes &bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }
  std::string to_base58() const;
  std::string to_cid() const;
  std::string to_string() const { return to_base58(); }
  // The embedded public key when the id is an identity multihash of an Ed25519 PublicKey.
  std::optional<std::array<uint8_t, 32>> ed25519_key() const;

  bool operator==(const PeerId &o) const { return bytes_ == o.bytes_; }
  bool operator!=(const PeerId &o) const { return bytes_ != o.bytes_; }
  bool operator<(const PeerId &o) const { return bytes_ < o.bytes_; }

 private:
  explicit PeerId(Bytes b) : bytes_(std::move(b)) {}
  Bytes bytes_;
};

}  // namespace chorus::p2p

template <>
struct std::hash<chorus::p2p::PeerId> {
  size_t operator()(const chorus::p2p::PeerId &id) const noexcept {
    // FNV-1a: ids are hashes or keys already, any mixing of all bytes is fine.
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : id.bytes()) h = (h ^ b) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// This node's long-term Ed25519 identity and the key file that persists it.
//
// The key file holds a libp2p PrivateKey protobuf, 08 01 12 40 || seed(32) || pk(32) (68 bytes), the same
// format go-libp2p and js-libp2p write, so a key can be moved between implementations.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "wire/bytes.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

class Identity {
 public:
  Identity(const Identity &) = default;
  Identity &operator=(const Identity &) = default;
  ~Identity();

  // Loads the key file at path, or creates it (mode 0600) with a fresh key if it does not exist.
  // The parent directory must exist. Refuses files readable or writable by group/other, of the wrong
  // size or key type, or whose public half does not match the seed.
  static std::optional<Identity> load_or_create(const std::string &path, std::string *err);
  static Identity from_seed(const uint8_t seed[32]);
  static Identity generate();

  const PeerId &peer_id() const { return peer_id_; }
  const std::array<uint8_t, 32> &public_key() const { return public_key_; }
  // PublicKey protobuf (36 bytes), as sent in Noise handshakes and identify.
  Bytes public_key_protobuf() const;
  // PrivateKey protobuf (68 bytes), the key file content.
  Bytes private_key_protobuf() const;

  std::array<uint8_t, 64> sign(BytesView msg) const;
  static bool verify(const uint8_t pk[32], BytesView msg, const uint8_t sig[64]);

 private:
  Identity() = default;
  std::array<uint8_t, 64> secret_key_{};  // libsodium layout: seed || pk
  std::array<uint8_t, 32> public_key_{};
  PeerId peer_id_;
};

}  // namespace chorus::p2p

#include "message_key.hpp"

#include <sodium.h>

#include <cstring>

namespace chorus::gossip {

namespace {

struct Secret {
  unsigned char key[crypto_shorthash_siphashx24_KEYBYTES];
  Secret() { randombytes_buf(key, sizeof key); }
};

}  // namespace

MessageKey message_key(chorus::p2p::BytesView id) {
  static const Secret secret;  // initialised once, thread-safe
  unsigned char out[crypto_shorthash_siphashx24_BYTES];
  crypto_shorthash_siphashx24(out, id.data(), id.size(), secret.key);
  MessageKey k;
  std::memcpy(&k.lo, out, 8);
  std::memcpy(&k.hi, out + 8, 8);
  return k;
}

}  // namespace chorus::gossip

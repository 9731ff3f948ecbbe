// The Noise framework's CipherState and SymmetricState (Noise spec rev 34, sections 5.1 and 5.2) for the one
// suite libp2p uses: 25519 / ChaChaPoly / SHA256. ChaChaPoly comes from OpenSSL (speed, see
// noise_cipher.cpp), everything else from libsodium.
//
// These are building blocks of NoiseHandshake and NoiseTransport; they are public so tests can check them
// against an independent computation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire/bytes.hpp"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;  // <openssl/evp.h>, kept out of this header

namespace chorus::p2p::noise {

inline constexpr size_t kKeyLen = 32;        // ChaChaPoly key, SHA-256 output, X25519 key
inline constexpr size_t kTagLen = 16;        // Poly1305 tag
inline constexpr size_t kMaxMessage = 65535; // a Noise message, tag included (u16 length prefix)
inline constexpr size_t kMaxPlaintext = kMaxMessage - kTagLen;  // 65519

using Key = std::array<uint8_t, kKeyLen>;

// HKDF as the Noise spec defines it (HMAC-SHA256, two outputs):
//   temp = HMAC(chaining_key, ikm); out1 = HMAC(temp, 0x01); out2 = HMAC(temp, out1 || 0x02).
void hkdf2(const Key &chaining_key, BytesView ikm, Key &out1, Key &out2);

// X25519. Returns false when the result is all zeros (the peer sent a low-order point); Noise allows
// rejecting that and go-libp2p does, so we do too.
bool dh(const Key &private_key, const Key &public_key, Key &shared);

// Fills `private_key` with random bytes and computes its public key.
void generate_keypair(Key &private_key, Key &public_key);

// A ChaCha20-Poly1305 key and a 64-bit nonce counter. The IETF nonce is 4 zero bytes || little-endian n.
// Without a key (during the first handshake message) encryption is the identity, as in the spec.
class CipherState {
 public:
  CipherState() = default;
  ~CipherState();
  CipherState(const CipherState &) = delete;
  CipherState &operator=(const CipherState &) = delete;
  CipherState(CipherState &&other) noexcept;
  CipherState &operator=(CipherState &&other) noexcept;

  void initialize_key(const Key &key);
  bool has_key() const { return has_key_; }
  uint64_t nonce() const { return nonce_; }
  // Tests use this to exercise the exhaustion guard without 2^64 operations.
  void set_nonce(uint64_t n) { nonce_ = n; }

  // Nonce 2^64-1 is reserved by the spec; once the counter reaches it the state refuses to work.
  bool exhausted() const { return has_key_ && nonce_ == UINT64_MAX; }

  // Writes len + 16 bytes (len without a key) to `out`. `out` may equal `plaintext` (in place).
  // Returns false only when the nonce is exhausted.
  bool encrypt_with_ad(BytesView ad, const uint8_t *plaintext, size_t len, uint8_t *out);
  // Reads len bytes (>= 16 with a key) and writes len - 16 bytes to `out`. Returns false on a bad tag, a
  // short input or an exhausted nonce; the nonce only advances on success.
  bool decrypt_with_ad(BytesView ad, const uint8_t *ciphertext, size_t len, uint8_t *out);

  // Bytes added by encryption under the current state.
  size_t overhead() const { return has_key_ ? kTagLen : 0; }

  void clear();  // forgets the key (OpenSSL wipes its copy)

 private:
  bool start_message(bool encrypt);  // sets the nonce and direction for one message

  EVP_CIPHER_CTX *ctx_ = nullptr;  // holds the key once initialize_key ran; reused across keys
  uint64_t nonce_ = 0;
  bool has_key_ = false;
  bool key_failed_ = false;  // OpenSSL could not take the key: every operation fails
};

// Chaining key, handshake hash and the handshake's CipherState.
class SymmetricState {
 public:
  SymmetricState() = default;
  ~SymmetricState();
  SymmetricState(const SymmetricState &) = delete;
  SymmetricState &operator=(const SymmetricState &) = delete;

  // `protocol_name` must be at most 32 bytes (it is zero-padded into h, as the spec says for short names).
  void initialize(std::string_view protocol_name);
  void mix_key(BytesView input_key_material);
  void mix_hash(BytesView data);
  // Appends the (possibly encrypted) bytes to `out` and mixes them into h. False on nonce exhaustion.
  bool encrypt_and_hash(BytesView plaintext, Bytes &out);
  // Appends the plaintext to `out`. False when authentication fails.
  bool decrypt_and_hash(BytesView ciphertext, Bytes &out);
  // Derives the two transport keys (initiator->responder, responder->initiator) and wipes this state.
  void split(CipherState &c1, CipherState &c2);

  const Key &chaining_key() const { return ck_; }
  const Key &handshake_hash() const { return h_; }
  bool has_key() const { return cipher_.has_key(); }

  void clear();

 private:
  Key ck_{};
  Key h_{};
  CipherState cipher_;
};

}  // namespace chorus::p2p::noise

#include "noise_cipher.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace chorus::p2p::noise {

namespace {

// 4 zero bytes || little-endian 64-bit counter (the ChaChaPoly nonce of the Noise spec, section 12.3).
void make_nonce(uint64_t n, uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES]) {
  static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12);
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(n >> (8 * i));
}

void hmac_sha256(const Key &key, BytesView a, BytesView b, Key &out) {
  static_assert(crypto_auth_hmacsha256_KEYBYTES == kKeyLen && crypto_auth_hmacsha256_BYTES == kKeyLen);
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key.data(), key.size());
  crypto_auth_hmacsha256_update(&st, a.data(), a.size());
  crypto_auth_hmacsha256_update(&st, b.data(), b.size());
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
}

}  // namespace

void hkdf2(const Key &chaining_key, BytesView ikm, Key &out1, Key &out2) {
  static constexpr uint8_t kOne[1] = {0x01};
  static constexpr uint8_t kTwo[1] = {0x02};
  Key temp;
  hmac_sha256(chaining_key, ikm, {}, temp);
  hmac_sha256(temp, kOne, {}, out1);
  hmac_sha256(temp, out1, kTwo, out2);
  sodium_memzero(temp.data(), temp.size());
}

bool dh(const Key &private_key, const Key &public_key, Key &shared) {
  static_assert(crypto_scalarmult_curve25519_BYTES == kKeyLen);
  return crypto_scalarmult_curve25519(shared.data(), private_key.data(), public_key.data()) == 0;
}

void generate_keypair(Key &private_key, Key &public_key) {
  randombytes_buf(private_key.data(), private_key.size());
  crypto_scalarmult_curve25519_base(public_key.data(), private_key.data());
}

// ---------------------------------------------------------------------------------------------
// CipherState

CipherState::~CipherState() { clear(); }

CipherState::CipherState(CipherState &&other) noexcept
    : key_(other.key_), nonce_(other.nonce_), has_key_(other.has_key_) {
  other.clear();
}

CipherState &CipherState::operator=(CipherState &&other) noexcept {
  if (this != &other) {
    key_ = other.key_;
    nonce_ = other.nonce_;
    has_key_ = other.has_key_;
    other.clear();
  }
  return *this;
}

void CipherState::initialize_key(const Key &key) {
  key_ = key;
  nonce_ = 0;
  has_key_ = true;
}

void CipherState::clear() {
  sodium_memzero(key_.data(), key_.size());
  nonce_ = 0;
  has_key_ = false;
}

bool CipherState::encrypt_with_ad(BytesView ad, const uint8_t *plaintext, size_t len, uint8_t *out) {
  if (!has_key_) {
    if (len != 0 && out != plaintext) std::memmove(out, plaintext, len);
    return true;
  }
  if (nonce_ == UINT64_MAX) return false;
  uint8_t nonce[12];
  make_nonce(nonce_, nonce);
  unsigned long long out_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &out_len, plaintext, len, ad.data(), ad.size(), nullptr,
                                            nonce, key_.data());
  ++nonce_;
  return true;
}

bool CipherState::decrypt_with_ad(BytesView ad, const uint8_t *ciphertext, size_t len, uint8_t *out) {
  if (!has_key_) {
    if (len != 0 && out != ciphertext) std::memmove(out, ciphertext, len);
    return true;
  }
  if (nonce_ == UINT64_MAX || len < kTagLen) return false;
  uint8_t nonce[12];
  make_nonce(nonce_, nonce);
  unsigned long long out_len = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &out_len, nullptr, ciphertext, len, ad.data(), ad.size(),
                                                nonce, key_.data()) != 0)
    return false;
  ++nonce_;
  return true;
}

// ---------------------------------------------------------------------------------------------
// SymmetricState

SymmetricState::~SymmetricState() { clear(); }

void SymmetricState::initialize(std::string_view protocol_name) {
  // Names longer than HASHLEN would be hashed; the only name we use is exactly 32 bytes.
  h_.fill(0);
  std::memcpy(h_.data(), protocol_name.data(), std::min(protocol_name.size(), h_.size()));
  ck_ = h_;
  cipher_.clear();
}

void SymmetricState::mix_key(BytesView input_key_material) {
  Key temp_k;
  hkdf2(ck_, input_key_material, ck_, temp_k);
  cipher_.initialize_key(temp_k);
  sodium_memzero(temp_k.data(), temp_k.size());
}

void SymmetricState::mix_hash(BytesView data) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, h_.data(), h_.size());
  crypto_hash_sha256_update(&st, data.data(), data.size());
  crypto_hash_sha256_final(&st, h_.data());
}

bool SymmetricState::encrypt_and_hash(BytesView plaintext, Bytes &out) {
  size_t start = out.size();
  out.resize(start + plaintext.size() + cipher_.overhead());
  if (!cipher_.encrypt_with_ad(h_, plaintext.data(), plaintext.size(), out.data() + start)) {
    out.resize(start);
    return false;
  }
  mix_hash(BytesView(out).subspan(start));
  return true;
}

bool SymmetricState::decrypt_and_hash(BytesView ciphertext, Bytes &out) {
  size_t overhead = cipher_.overhead();
  if (ciphertext.size() < overhead) return false;
  size_t start = out.size();
  out.resize(start + ciphertext.size() - overhead);
  if (!cipher_.decrypt_with_ad(h_, ciphertext.data(), ciphertext.size(), out.data() + start)) {
    sodium_memzero(out.data() + start, out.size() - start);
    out.resize(start);
    return false;
  }
  mix_hash(ciphertext);
  return true;
}

void SymmetricState::split(CipherState &c1, CipherState &c2) {
  Key k1, k2;
  hkdf2(ck_, {}, k1, k2);
  c1.initialize_key(k1);
  c2.initialize_key(k2);
  sodium_memzero(k1.data(), k1.size());
  sodium_memzero(k2.data(), k2.size());
  clear();
}

void SymmetricState::clear() {
  sodium_memzero(ck_.data(), ck_.size());
  sodium_memzero(h_.data(), h_.size());
  cipher_.clear();
}

}  // namespace chorus::p2p::noise

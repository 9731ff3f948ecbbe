#include "noise/noise_cipher.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <climits>
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
//
// The AEAD runs through OpenSSL's EVP ChaCha20-Poly1305 rather than libsodium's: the transport is
// bound by this cipher, and OpenSSL's vectorised code is 2.3x faster per byte on this x86-64 machine
// (docs/benchmarks.md, p2p). The key is installed once per CipherState; each message only sets the
// nonce and the direction. libsodium still does everything else (X25519, SHA-256, HMAC, randomness).

CipherState::~CipherState() {
  clear();
  EVP_CIPHER_CTX_free(ctx_);
}

CipherState::CipherState(CipherState &&other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)),
      nonce_(std::exchange(other.nonce_, 0)),
      has_key_(std::exchange(other.has_key_, false)),
      key_failed_(std::exchange(other.key_failed_, false)) {}

CipherState &CipherState::operator=(CipherState &&other) noexcept {
  if (this != &other) {
    clear();
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    nonce_ = std::exchange(other.nonce_, 0);
    has_key_ = std::exchange(other.has_key_, false);
    key_failed_ = std::exchange(other.key_failed_, false);
  }
  return *this;
}

void CipherState::initialize_key(const Key &key) {
  if (ctx_ == nullptr) ctx_ = EVP_CIPHER_CTX_new();
  // From here on nothing goes out in plaintext: if OpenSSL cannot take the key (no memory), every
  // encrypt and decrypt fails and the connection closes.
  has_key_ = true;
  key_failed_ = ctx_ == nullptr ||
                EVP_CipherInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, key.data(), nullptr, 1) != 1;
  nonce_ = 0;
}

void CipherState::clear() {
  // Resetting the context frees its key schedule (OpenSSL cleanses it); the context is kept for reuse.
  if (ctx_ != nullptr) EVP_CIPHER_CTX_reset(ctx_);
  nonce_ = 0;
  has_key_ = false;
  key_failed_ = false;
}

bool CipherState::start_message(bool encrypt) {
  if (key_failed_ || nonce_ == UINT64_MAX) return false;
  uint8_t nonce[12];
  make_nonce(nonce_, nonce);
  return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, encrypt ? 1 : 0) == 1;
}

namespace {

// EVP lengths are ints; Noise messages are at most 65535 bytes, so this only guards the conversion.
constexpr size_t kMaxAeadInput = static_cast<size_t>(INT_MAX) - kTagLen;

bool add_ad(EVP_CIPHER_CTX *ctx, BytesView ad) {
  int n = 0;
  return ad.empty() || EVP_CipherUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())) == 1;
}

}  // namespace

bool CipherState::encrypt_with_ad(BytesView ad, const uint8_t *plaintext, size_t len, uint8_t *out) {
  if (!has_key_) {
    if (len != 0 && out != plaintext) std::memmove(out, plaintext, len);
    return true;
  }
  if (len > kMaxAeadInput || !start_message(true) || !add_ad(ctx_, ad)) return false;
  int n = 0, tail = 0;
  if (EVP_CipherUpdate(ctx_, out, &n, plaintext, static_cast<int>(len)) != 1 ||
      EVP_CipherFinal_ex(ctx_, out + n, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLen), out + len) != 1)
    return false;
  ++nonce_;
  return true;
}

bool CipherState::decrypt_with_ad(BytesView ad, const uint8_t *ciphertext, size_t len, uint8_t *out) {
  if (!has_key_) {
    if (len != 0 && out != ciphertext) std::memmove(out, ciphertext, len);
    return true;
  }
  if (len < kTagLen || len > kMaxAeadInput || !start_message(false) || !add_ad(ctx_, ad)) return false;
  const size_t plain_len = len - kTagLen;
  // OpenSSL checks the tag at the end, after writing the plaintext; copy the tag first in case
  // `out` overlaps it, and wipe the output if the check fails so unauthenticated bytes never escape.
  uint8_t tag[kTagLen];
  std::memcpy(tag, ciphertext + plain_len, kTagLen);
  int n = 0, tail = 0;
  const bool ok = EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLen), tag) == 1 &&
                  EVP_CipherUpdate(ctx_, out, &n, ciphertext, static_cast<int>(plain_len)) == 1 &&
                  EVP_CipherFinal_ex(ctx_, out + n, &tail) == 1;
  if (!ok) {
    if (plain_len != 0) sodium_memzero(out, plain_len);
    return false;
  }
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

// CipherState / SymmetricState / HKDF against values computed by an independent Python implementation
// (make_vectors.py -> noise_vectors.inc).
#include <gtest/gtest.h>

#include "noise/noise_cipher.hpp"
#include "noise/noise_handshake.hpp"
#include "noise_test_util.hpp"

namespace chorus::p2p {
namespace {

#include "noise_vectors.inc"

using noise_test::hex;
using noise_test::key_from_hex;

TEST(NoiseCipher, HkdfMatchesReference) {
  noise::Key ck = key_from_hex(kHkdfChainingKey), o1, o2;
  noise::hkdf2(ck, hex(kHkdfIkm), o1, o2);
  EXPECT_EQ(to_hex(o1), kHkdfOut1);
  EXPECT_EQ(to_hex(o2), kHkdfOut2);
  noise::hkdf2(ck, {}, o1, o2);
  EXPECT_EQ(to_hex(o1), kHkdfEmptyOut1);
  EXPECT_EQ(to_hex(o2), kHkdfEmptyOut2);
}

TEST(NoiseCipher, HkdfOutputMayAliasChainingKey) {
  // MixKey writes the new chaining key over the old one.
  noise::Key ck = key_from_hex(kHkdfChainingKey), k;
  noise::hkdf2(ck, hex(kHkdfIkm), ck, k);
  EXPECT_EQ(to_hex(ck), kHkdfOut1);
  EXPECT_EQ(to_hex(k), kHkdfOut2);
}

TEST(NoiseCipher, SymmetricStateInitializeMixKeyEncrypt) {
  noise::SymmetricState s;
  s.initialize(kNoiseProtocolName);
  ASSERT_EQ(kNoiseProtocolName.size(), 32u);
  EXPECT_EQ(as_string_view(s.handshake_hash()), kNoiseProtocolName);  // h = name, unhashed
  EXPECT_EQ(s.chaining_key(), s.handshake_hash());
  s.mix_hash({});  // empty prologue
  EXPECT_EQ(to_hex(s.handshake_hash()), kInitialHash);
  EXPECT_FALSE(s.has_key());

  s.mix_key(hex(kHkdfIkm));
  EXPECT_EQ(to_hex(s.chaining_key()), kMixKeyChainingKey);
  Bytes ct;
  ASSERT_TRUE(s.encrypt_and_hash(as_bytes("abc"), ct));
  EXPECT_EQ(to_hex(ct), kMixKeyCiphertext);
  EXPECT_EQ(to_hex(s.handshake_hash()), kMixKeyHash);
}

TEST(NoiseCipher, DecryptAndHashRoundTripAndRejectsTampering) {
  noise::SymmetricState a, b;
  for (auto *s : {&a, &b}) {
    s->initialize(kNoiseProtocolName);
    s->mix_key(as_bytes("shared"));
  }
  Bytes ct;
  ASSERT_TRUE(a.encrypt_and_hash(as_bytes("payload"), ct));
  Bytes tampered = ct;
  tampered[3] ^= 1;
  Bytes pt;
  EXPECT_FALSE(b.decrypt_and_hash(tampered, pt));
  EXPECT_TRUE(pt.empty());
  EXPECT_FALSE(b.decrypt_and_hash(BytesView(ct).first(15), pt));  // shorter than the tag
  ASSERT_TRUE(b.decrypt_and_hash(ct, pt));  // a failed attempt does not advance the nonce
  EXPECT_EQ(as_string_view(pt), "payload");
  EXPECT_EQ(a.handshake_hash(), b.handshake_hash());
}

TEST(NoiseCipher, NonceIsFourZeroBytesThenLittleEndianCounter) {
  noise::Key k;
  k.fill(0x07);
  noise::CipherState c;
  c.initialize_key(k);
  c.set_nonce(0x0102030405060708ull);
  std::string_view msg = "nonce check";
  Bytes out(msg.size() + noise::kTagLen);
  ASSERT_TRUE(c.encrypt_with_ad(as_bytes("ad"), as_bytes(msg).data(), msg.size(), out.data()));
  EXPECT_EQ(to_hex(out), kNonceCiphertext);
  EXPECT_EQ(c.nonce(), 0x0102030405060709ull);
}

// A sender and a receiver keyed alike (every key byte `fill`).
struct KeyedPair {
  noise::Key key;
  noise::CipherState enc, dec;
  explicit KeyedPair(uint8_t fill) {
    key.fill(fill);
    enc.initialize_key(key);
    dec.initialize_key(key);
  }
};

TEST(NoiseCipher, NonceExhaustionGuard) {
  KeyedPair p(0x01);
  auto &[k, enc, dec] = p;
  enc.set_nonce(UINT64_MAX - 1);
  dec.set_nonce(UINT64_MAX - 1);
  uint8_t buf[noise::kTagLen + 1] = {42};
  ASSERT_TRUE(enc.encrypt_with_ad({}, buf, 1, buf));  // the last usable nonce, in place
  EXPECT_TRUE(enc.exhausted());
  EXPECT_FALSE(enc.encrypt_with_ad({}, buf, 1, buf));
  uint8_t plain[1];
  ASSERT_TRUE(dec.decrypt_with_ad({}, buf, sizeof buf, plain));
  EXPECT_EQ(plain[0], 42);
  EXPECT_FALSE(dec.decrypt_with_ad({}, buf, sizeof buf, plain));
}

TEST(NoiseCipher, FailedDecryptWipesTheOutputAndWrongAdFails) {
  KeyedPair p(0x33);
  auto &[k, enc, dec] = p;
  const std::string_view msg = "secret plaintext";
  Bytes ct(msg.size() + noise::kTagLen);
  ASSERT_TRUE(enc.encrypt_with_ad(as_bytes("ad"), as_bytes(msg).data(), msg.size(), ct.data()));

  // A wrong tag: OpenSSL writes the plaintext before it checks the tag, so nothing of it may remain.
  Bytes bad = ct;
  bad.back() ^= 0x80;
  Bytes out(msg.size(), 0xAA);
  EXPECT_FALSE(dec.decrypt_with_ad(as_bytes("ad"), bad.data(), bad.size(), out.data()));
  EXPECT_TRUE(out == Bytes(msg.size(), 0) || out == Bytes(msg.size(), 0xAA)) << to_hex(out);  // wiped or untouched
  // Wrong associated data fails the same way; the nonce has not moved, so the real message still opens.
  EXPECT_FALSE(dec.decrypt_with_ad(as_bytes("xx"), ct.data(), ct.size(), out.data()));
  EXPECT_EQ(dec.nonce(), 0u);
  // In place, as the transport does it.
  Bytes in_place = ct;
  ASSERT_TRUE(dec.decrypt_with_ad(as_bytes("ad"), in_place.data(), in_place.size(), in_place.data()));
  EXPECT_EQ(as_string_view(BytesView(in_place).first(msg.size())), msg);
  EXPECT_EQ(dec.nonce(), 1u);
}

TEST(NoiseCipher, MovedStateKeepsKeyAndNonce) {
  KeyedPair p(0x44);
  auto &[k, enc, dec] = p;
  uint8_t buf[4 + noise::kTagLen] = {1, 2, 3, 4};
  ASSERT_TRUE(enc.encrypt_with_ad({}, buf, 4, buf));
  noise::CipherState moved(std::move(dec));
  EXPECT_FALSE(dec.has_key());  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  noise::CipherState assigned;
  assigned = std::move(moved);
  uint8_t plain[4];
  ASSERT_TRUE(assigned.decrypt_with_ad({}, buf, sizeof buf, plain));
  EXPECT_EQ(plain[3], 4);
  EXPECT_EQ(assigned.nonce(), 1u);
  // The moved-from state can be keyed again and used.
  dec.initialize_key(k);
  uint8_t again[4 + noise::kTagLen] = {9, 9, 9, 9};
  ASSERT_TRUE(dec.encrypt_with_ad({}, again, 4, again));
}

TEST(NoiseCipher, WithoutKeyEncryptionIsIdentity) {
  noise::CipherState c;
  EXPECT_FALSE(c.has_key());
  const uint8_t in[3] = {1, 2, 3};
  uint8_t out[3] = {};
  ASSERT_TRUE(c.encrypt_with_ad({}, in, 3, out));
  EXPECT_TRUE(std::equal(in, in + 3, out));
  EXPECT_EQ(c.overhead(), 0u);
}

TEST(NoiseCipher, DhRejectsLowOrderPoint) {
  noise::Key priv, pub, shared, zero{};
  noise::generate_keypair(priv, pub);
  EXPECT_FALSE(noise::dh(priv, zero, shared));
  noise::Key priv2, pub2, shared2;
  noise::generate_keypair(priv2, pub2);
  ASSERT_TRUE(noise::dh(priv, pub2, shared));
  ASSERT_TRUE(noise::dh(priv2, pub, shared2));
  EXPECT_EQ(shared, shared2);
}

}  // namespace
}  // namespace chorus::p2p

// Record namespaces, the /pk/ validator, the signed /chorus/ record and selection.
#include <gtest/gtest.h>

#include "kad/message.hpp"
#include "kad/records.hpp"
#include "wire/identity.hpp"
#include "wire/protobuf.hpp"

namespace chorus::dht {
namespace {

using chorus::p2p::Identity;

Bytes S(std::string_view s) { return Bytes(s.begin(), s.end()); }

Identity identity(uint8_t fill) {
  uint8_t seed[32];
  std::fill(std::begin(seed), std::end(seed), fill);
  return Identity::from_seed(seed);
}

SignFn signer(const Identity &id) {
  return [id](BytesView data, uint8_t sig_out[64]) {
    auto sig = id.sign(data);
    std::copy(sig.begin(), sig.end(), sig_out);
    return true;
  };
}

Bytes cat(std::initializer_list<BytesView> parts) {
  Bytes out;
  size_t n = 0;
  for (BytesView p : parts) n += p.size();
  out.reserve(n);
  for (BytesView p : parts) chorus::p2p::append(out, p);
  return out;
}

Bytes pk_key(const PeerId &id) { return cat({chorus::p2p::as_bytes("/pk/"), id.bytes()}); }

// A PublicKey protobuf too large to inline, so its peer id is a sha2-256 multihash (RSA-shaped).
Bytes rsa_shaped_public_key() {
  Bytes out;
  chorus::p2p::ProtoWriter w(out);
  w.varint(1, chorus::p2p::kKeyRsa);
  w.bytes(2, Bytes(270, 0x42));
  return out;
}

Bytes make(const Identity &author, std::string_view key, uint64_t seq, std::string_view payload) {
  std::string why;
  auto v = make_chorus_record(S(key), author.peer_id(), seq, S(payload), signer(author), &why);
  EXPECT_TRUE(v) << why;
  return v.value_or(Bytes{});
}

// Re-signs a record after editing it, as a forger with the author's key could.
Bytes resign(const Identity &signer_id, std::string_view key, ChorusRecord r) {
  Bytes data = chorus_record_signing_bytes(S(key), r);
  auto sig = signer_id.sign(data);
  r.signature.assign(sig.begin(), sig.end());
  return encode_chorus_record(r);
}

TEST(RecordTest, Namespaces) {
  EXPECT_EQ(key_namespace(S("/pk/x")), Namespace::kPublicKey);
  EXPECT_EQ(key_namespace(S("/chorus/x")), Namespace::kChorus);
  EXPECT_EQ(key_namespace(S("/chorus/a/b")), Namespace::kChorus);
  EXPECT_EQ(key_namespace(S("/pk/")), Namespace::kUnknown);  // empty rest
  EXPECT_EQ(key_namespace(S("/chorus/")), Namespace::kUnknown);
  EXPECT_EQ(key_namespace(S("/ipns/x")), Namespace::kUnknown);
  EXPECT_EQ(key_namespace(S("pk/x")), Namespace::kUnknown);
  EXPECT_EQ(key_namespace(S("/PK/x")), Namespace::kUnknown);
  EXPECT_EQ(key_namespace(S("")), Namespace::kUnknown);
  EXPECT_EQ(key_namespace(S("/chorusx/y")), Namespace::kUnknown);
}

TEST(RecordTest, UnknownNamespaceIsRefused) {
  std::string why;
  EXPECT_FALSE(validate_record(S("/ipns/abc"), S("v"), &why));
  EXPECT_EQ(why, "unknown namespace");
  EXPECT_FALSE(validate_record(S("plain"), S("v"), &why));
  EXPECT_EQ(why, "unknown namespace");
}

TEST(RecordTest, PublicKeyValid) {
  Identity a = identity(1);
  std::string why;
  EXPECT_TRUE(validate_record(pk_key(a.peer_id()), a.public_key_protobuf(), &why)) << why;
  // A hashed (non-inlined) id works the same way.
  Bytes rsa = rsa_shaped_public_key();
  PeerId rsa_id = PeerId::from_public_key(rsa);
  EXPECT_TRUE(validate_record(pk_key(rsa_id), rsa, &why)) << why;
}

TEST(RecordTest, PublicKeyOfAnotherPeerIsRefused) {
  Identity a = identity(1), b = identity(2);
  std::string why;
  EXPECT_FALSE(validate_record(pk_key(a.peer_id()), b.public_key_protobuf(), &why));
  EXPECT_NE(why.find("does not match"), std::string::npos) << why;
  // A key that is a prefix or extension of the right id.
  Bytes k = pk_key(a.peer_id());
  k.push_back(0);
  EXPECT_FALSE(validate_record(k, a.public_key_protobuf(), &why));
  k.resize(k.size() - 2);
  EXPECT_FALSE(validate_record(k, a.public_key_protobuf(), &why));
}

TEST(RecordTest, PublicKeyMalformedValueIsRefused) {
  Identity a = identity(1);
  Bytes v = a.public_key_protobuf();
  std::string why;
  for (size_t n = 0; n < v.size(); ++n)
    EXPECT_FALSE(validate_record(pk_key(a.peer_id()), BytesView(v).first(n), &why)) << n;
  Bytes extra = v;
  extra.insert(extra.end(), {0x18, 0x01});  // an unknown field
  EXPECT_FALSE(validate_record(pk_key(a.peer_id()), extra, &why));
  EXPECT_FALSE(validate_record(pk_key(a.peer_id()), S("garbage"), &why));
}

TEST(RecordTest, ChorusRecordEncodingIsFixed) {
  ChorusRecord r{S("AU"), 300, S("pl"), Bytes(64, 0x07)};
  Bytes want = {0x0a, 0x02, 'A', 'U', 0x10, 0xac, 0x02, 0x1a, 0x02, 'p', 'l', 0x22, 0x40};
  want.insert(want.end(), 64, 0x07);
  EXPECT_EQ(encode_chorus_record(r), want);
  auto back = decode_chorus_record(want, nullptr);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  // seq 0 and an empty payload are written all the same.
  ChorusRecord z{S("A"), 0, {}, Bytes(64, 0)};
  Bytes zb = encode_chorus_record(z);
  EXPECT_EQ(Bytes(zb.begin(), zb.begin() + 7), (Bytes{0x0a, 0x01, 'A', 0x10, 0x00, 0x1a, 0x00}));
  EXPECT_EQ(decode_chorus_record(zb, nullptr), z);
}

TEST(RecordTest, SigningBytesAreContextKeyAndFieldsOneToThree) {
  ChorusRecord r{S("AU"), 1, S("pl"), Bytes(64, 0x07)};
  Bytes key = S("/chorus/k");
  Bytes fields = {0x0a, 0x02, 'A', 'U', 0x10, 0x01, 0x1a, 0x02, 'p', 'l'};
  Bytes len = {9};
  Bytes want = cat({chorus::p2p::as_bytes("chorus-dht-record:"), len, key, fields});
  EXPECT_EQ(chorus_record_signing_bytes(key, r), want);
}

TEST(RecordTest, ChorusRecordMatchesAnIndependentSigner) {
  // Built and signed outside this code base (Python's cryptography package, Ed25519 from the seed
  // 0x02 * 32) from the format description: key "/chorus/x", seq 0, empty payload. Ed25519 is
  // deterministic, so our own record must be byte for byte the same.
  auto golden = chorus::p2p::from_hex(
      "0a260024080112208139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39410001a002240c389d576e5"
      "6d30eb799e7b4affed90f546887910f27af702336df98ef9ca0a884629591bc14d3f0231021dcae791959d79a87c73d3f9799d"
      "1f2b97d2591d440e");
  ASSERT_TRUE(golden);
  std::string why;
  EXPECT_TRUE(validate_record(S("/chorus/x"), *golden, &why)) << why;
  EXPECT_EQ(chorus::p2p::to_hex(make(identity(2), "/chorus/x", 0, "")), chorus::p2p::to_hex(*golden));
}

TEST(RecordTest, ChorusDecodeIsStrict) {
  Identity a = identity(1);
  Bytes v = make(a, "/chorus/k", 5, "hello");
  std::string why;
  ASSERT_TRUE(decode_chorus_record(v, &why)) << why;
  for (size_t n = 0; n < v.size(); ++n) EXPECT_FALSE(decode_chorus_record(BytesView(v).first(n), nullptr)) << n;
  Bytes trailing = v;
  trailing.insert(trailing.end(), {0x28, 0x01});  // field 5
  EXPECT_FALSE(decode_chorus_record(trailing, &why));
  // Fields out of order.
  auto rec = *decode_chorus_record(v, nullptr);
  Bytes swapped;
  chorus::p2p::ProtoWriter w(swapped);
  w.varint(2, rec.seq);
  w.bytes(1, rec.author);
  w.bytes(3, rec.payload);
  w.bytes(4, rec.signature);
  EXPECT_FALSE(decode_chorus_record(swapped, &why));
  // A padded seq varint (same value, another encoding).
  Bytes padded;
  chorus::p2p::ProtoWriter pw(padded);
  pw.bytes(1, rec.author);
  padded.insert(padded.end(), {0x10, 0x85, 0x00});
  pw.bytes(3, rec.payload);
  pw.bytes(4, rec.signature);
  EXPECT_FALSE(decode_chorus_record(padded, &why));
  EXPECT_NE(why.find("non-canonical"), std::string::npos) << why;
  // Wrong signature length.
  rec.signature.resize(63);
  EXPECT_FALSE(decode_chorus_record(encode_chorus_record(rec), &why));
  // Empty author.
  ChorusRecord no_author{{}, 1, S("x"), Bytes(64, 0)};
  EXPECT_FALSE(decode_chorus_record(encode_chorus_record(no_author), &why));
}

TEST(RecordTest, ChorusValid) {
  Identity a = identity(1);
  Bytes v = make(a, "/chorus/k", 7, "payload");
  std::string why;
  EXPECT_TRUE(validate_record(S("/chorus/k"), v, &why)) << why;
  auto rec = decode_chorus_record(v, nullptr);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->author, a.peer_id().bytes());
  EXPECT_EQ(rec->seq, 7u);
  EXPECT_EQ(rec->payload, S("payload"));
  // An empty payload is a valid record too.
  EXPECT_TRUE(validate_record(S("/chorus/k"), make(a, "/chorus/k", 0, ""), &why)) << why;
}

TEST(RecordTest, ChorusUnderAnotherKeyIsRefused) {
  Identity a = identity(1);
  Bytes v = make(a, "/chorus/k", 7, "payload");
  std::string why;
  EXPECT_FALSE(validate_record(S("/chorus/other"), v, &why));
  EXPECT_EQ(why, "bad signature");
}

TEST(RecordTest, ChorusTamperedFieldsAreRefused) {
  Identity a = identity(1), b = identity(2);
  Bytes v = make(a, "/chorus/k", 7, "payload");
  ChorusRecord rec = *decode_chorus_record(v, nullptr);
  std::string why;

  ChorusRecord t = rec;
  t.payload.back() ^= 1;
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(t), &why));
  EXPECT_EQ(why, "bad signature");

  t = rec;
  t.seq = 8;
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(t), &why));
  EXPECT_EQ(why, "bad signature");

  t = rec;
  t.author = b.peer_id().bytes();  // claims b wrote what a signed
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(t), &why));
  EXPECT_EQ(why, "bad signature");

  t = rec;
  t.signature[0] ^= 1;
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(t), &why));
  EXPECT_EQ(why, "bad signature");

  // b signing a record that names a as its author.
  EXPECT_FALSE(validate_record(S("/chorus/k"), resign(b, "/chorus/k", rec), &why));
  // a re-signing its own edit is, of course, fine.
  t = rec;
  t.seq = 9;
  EXPECT_TRUE(validate_record(S("/chorus/k"), resign(a, "/chorus/k", t), &why)) << why;

  for (size_t n = 0; n < v.size(); ++n) EXPECT_FALSE(validate_record(S("/chorus/k"), BytesView(v).first(n), &why));
}

TEST(RecordTest, ChorusNonEd25519AuthorIsRefused) {
  PeerId rsa_id = PeerId::from_public_key(rsa_shaped_public_key());
  ChorusRecord r{rsa_id.bytes(), 1, S("x"), Bytes(64, 0)};
  std::string why;
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(r), &why));
  EXPECT_NE(why.find("not an Ed25519"), std::string::npos) << why;
  // An author that is no peer id at all.
  r.author = S("not a multihash");
  EXPECT_FALSE(validate_record(S("/chorus/k"), encode_chorus_record(r), &why));
  EXPECT_NE(why.find("author"), std::string::npos) << why;
  // make_chorus_record refuses such an author before signing anything.
  bool called = false;
  SignFn sign = [&](BytesView, uint8_t *) { return called = true; };
  EXPECT_FALSE(make_chorus_record(S("/chorus/k"), rsa_id, 1, S("x"), sign, &why));
  EXPECT_FALSE(called);
}

TEST(RecordTest, MakeChorusRecordRefusals) {
  Identity a = identity(1);
  std::string why;
  EXPECT_FALSE(make_chorus_record(S("/pk/x"), a.peer_id(), 1, S("x"), signer(a), &why));
  EXPECT_NE(why.find("/chorus/"), std::string::npos) << why;
  SignFn failing = [](BytesView, uint8_t *) { return false; };
  EXPECT_FALSE(make_chorus_record(S("/chorus/k"), a.peer_id(), 1, S("x"), failing, &why));
  EXPECT_NE(why.find("signing failed"), std::string::npos) << why;
  EXPECT_FALSE(make_chorus_record(S("/chorus/k"), a.peer_id(), 1, S("x"), SignFn{}, &why));
}

TEST(RecordTest, ValueLimit) {
  Identity a = identity(1);
  Bytes v = make(a, "/chorus/k", 1, std::string(1000, 'x'));
  std::string why;
  EXPECT_TRUE(validate_record(S("/chorus/k"), v, v.size(), &why)) << why;
  EXPECT_FALSE(validate_record(S("/chorus/k"), v, v.size() - 1, &why));
  EXPECT_NE(why.find("max_value_bytes"), std::string::npos) << why;
  // The default limit is the message's (1 MiB).
  Bytes big = make(a, "/chorus/k", 1, std::string(Limits{}.max_value_bytes, 'x'));
  EXPECT_FALSE(validate_record(S("/chorus/k"), big, &why));
  EXPECT_NE(why.find("max_value_bytes"), std::string::npos) << why;
  EXPECT_TRUE(validate_record(S("/chorus/k"), big, big.size(), &why)) << why;
}

TEST(RecordTest, SelectHighestSeq) {
  Identity a = identity(1), b = identity(2);
  std::vector<Bytes> values = {make(a, "/chorus/k", 3, "zzz"), make(b, "/chorus/k", 10, "aaa"),
                               make(a, "/chorus/k", 9, "zzzz")};
  EXPECT_EQ(select_record(S("/chorus/k"), values), 1u);
}

TEST(RecordTest, SelectTieBreaksOnPayloadBytes) {
  Identity a = identity(1), b = identity(2);
  std::vector<Bytes> values = {make(a, "/chorus/k", 4, "abc"), make(b, "/chorus/k", 4, "abd"),
                               make(a, "/chorus/k", 4, "ab"), make(b, "/chorus/k", 4, "\xff")};
  EXPECT_EQ(select_record(S("/chorus/k"), values), 3u);  // unsigned comparison: 0xff is largest
  values.pop_back();
  EXPECT_EQ(select_record(S("/chorus/k"), values), 1u);
}

TEST(RecordTest, SelectIsIndependentOfOrder) {
  Identity a = identity(1), b = identity(2), c = identity(3);
  // Same seq and payload from three authors: the pick must not depend on arrival order.
  std::vector<Bytes> values = {make(a, "/chorus/k", 4, "same"), make(b, "/chorus/k", 4, "same"),
                               make(c, "/chorus/k", 4, "same"), make(a, "/chorus/k", 2, "zzzz")};
  Bytes best = values[select_record(S("/chorus/k"), values)];
  std::sort(values.begin(), values.end());
  do {
    EXPECT_EQ(values[select_record(S("/chorus/k"), values)], best);
  } while (std::next_permutation(values.begin(), values.end()));
}

TEST(RecordTest, SelectPublicKeyTakesTheFirst) {
  Identity a = identity(1);
  std::vector<Bytes> values = {a.public_key_protobuf(), a.public_key_protobuf()};
  EXPECT_EQ(select_record(pk_key(a.peer_id()), values), 0u);
  EXPECT_EQ(select_record(pk_key(a.peer_id()), {a.public_key_protobuf()}), 0u);
}

TEST(RecordTest, SelectSingleValue) {
  Identity a = identity(1);
  EXPECT_EQ(select_record(S("/chorus/k"), {make(a, "/chorus/k", 1, "x")}), 0u);
}

}  // namespace
}  // namespace chorus::dht

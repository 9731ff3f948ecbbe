// signature_test: StrictSign signing and verification with a fixed Ed25519 key, StrictNoSign checks,
// and the message id functions.
#include <gtest/gtest.h>

#include "signature.hpp"
#include "wire/identity.hpp"

namespace chorus::gossip {
namespace {

using chorus::p2p::Identity;

Identity fixed_identity(uint8_t fill) {
  uint8_t seed[32];
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<uint8_t>(fill + i);
  return Identity::from_seed(seed);
}

SignFn signer(const Identity &id) {
  return [&id](BytesView data, uint8_t sig[64]) {
    auto s = id.sign(data);
    std::copy(s.begin(), s.end(), sig);
    return true;
  };
}

Message make_message(const Identity &id) {
  Message m;
  m.from = id.peer_id().bytes();
  m.data = Bytes{'h', 'i'};
  m.seqno = seqno_bytes(0x0102030405060708ull);
  m.topic = "CHORUS/coordination/v1";
  return m;
}

TEST(GossipSignature, SignThenVerify) {
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  ASSERT_TRUE(sign_message(m, signer(id)));
  ASSERT_TRUE(m.signature);
  EXPECT_EQ(m.signature->size(), 64u);
  std::string why;
  EXPECT_FALSE(check_message(m, SignaturePolicy::kStrictSign, true, &why)) << why;
  // The signature is deterministic (Ed25519) and covers "libp2p-pubsub:" + fields 1-4.
  auto expect = id.sign(signing_bytes(m));
  EXPECT_EQ(*m.signature, Bytes(expect.begin(), expect.end()));
  EXPECT_TRUE(Identity::verify(id.public_key().data(), signing_bytes(m), m.signature->data()));
}

TEST(GossipSignature, KnownVector) {
  // Fixed seed 01..20 (hex), fixed message: the signature must not change between builds.
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  ASSERT_TRUE(sign_message(m, signer(id)));
  Message again = make_message(id);
  ASSERT_TRUE(sign_message(again, signer(id)));
  EXPECT_EQ(*m.signature, *again.signature);
  EXPECT_EQ(id.peer_id().bytes().size(), 38u);
  EXPECT_EQ(id.peer_id().bytes()[0], 0x00);
  EXPECT_EQ(id.peer_id().bytes()[1], 0x24);
}

TEST(GossipSignature, TamperingFails) {
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  ASSERT_TRUE(sign_message(m, signer(id)));
  std::string why;

  Message bad = m;
  (*bad.data)[0] ^= 1;
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
  // The structural check alone does not verify the signature.
  EXPECT_FALSE(check_message(bad, SignaturePolicy::kStrictSign, false, &why));

  bad = m;
  bad.topic = "other";
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);

  bad = m;
  (*bad.seqno)[7] ^= 1;
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);

  bad = m;
  bad.data.reset();  // absent differs from the signed (present) data
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);

  // Signed by someone else, claiming to be id.
  Identity other = fixed_identity(2);
  bad = m;
  ASSERT_TRUE(sign_message(bad, signer(other)));
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
}

TEST(GossipSignature, KeyField) {
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  ASSERT_TRUE(sign_message(m, signer(id)));
  std::string why;
  // js always sets key: accepted when it is the author's key (key is not covered by the signature).
  m.key = id.public_key_protobuf();
  EXPECT_FALSE(check_message(m, SignaturePolicy::kStrictSign, true, &why)) << why;
  // Another peer's key: refused even though the signature itself is fine.
  m.key = fixed_identity(2).public_key_protobuf();
  EXPECT_EQ(check_message(m, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
  EXPECT_NE(why.find("key does not match from"), std::string::npos) << why;
  m.key = Bytes{1, 2, 3};
  EXPECT_EQ(check_message(m, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
}

TEST(GossipSignature, MissingOrShortFieldsAreRejected) {
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  ASSERT_TRUE(sign_message(m, signer(id)));
  std::string why;
  Message bad = m;
  bad.signature.reset();
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kMissingSignature);
  bad = m;
  bad.from.reset();
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kMissingSignature);
  bad = m;
  bad.seqno.reset();
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
  bad = m;
  bad.seqno = Bytes{1, 2, 3};
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, false, &why), RejectReason::kInvalidSignature);
  EXPECT_NE(why.find("seqno"), std::string::npos);
  bad = m;
  bad.signature->pop_back();
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
  bad = m;
  bad.from = Bytes{1, 2, 3};
  EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictSign, true, &why), RejectReason::kInvalidSignature);
}

TEST(GossipSignature, StrictNoSign) {
  Message m;
  m.data = Bytes{'x'};
  m.topic = "t";
  std::string why;
  EXPECT_FALSE(check_message(m, SignaturePolicy::kStrictNoSign, true, &why));
  for (int field = 0; field < 4; ++field) {
    Message bad = m;
    if (field == 0) bad.from = Bytes{};
    if (field == 1) bad.seqno = Bytes{};  // present even though empty
    if (field == 2) bad.signature = Bytes{};
    if (field == 3) bad.key = Bytes{};
    EXPECT_EQ(check_message(bad, SignaturePolicy::kStrictNoSign, true, &why), RejectReason::kInvalidSignature)
        << field;
  }
  // A StrictNoSign message fails StrictSign (no signature).
  EXPECT_EQ(check_message(m, SignaturePolicy::kStrictSign, true, &why), RejectReason::kMissingSignature);
}

TEST(GossipSignature, MessageIds) {
  Identity id = fixed_identity(1);
  Message m = make_message(id);
  Bytes go_id = message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kFromSeqno);
  Bytes expect_go = id.peer_id().bytes();
  expect_go.insert(expect_go.end(), m.seqno->begin(), m.seqno->end());
  EXPECT_EQ(go_id, expect_go);
  EXPECT_EQ(go_id.size(), 46u);

  Bytes js_id = message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kKeySeqno);
  Bytes expect_js = id.public_key_protobuf();
  expect_js.insert(expect_js.end(), m.seqno->begin(), m.seqno->end());
  EXPECT_EQ(js_id, expect_js);
  EXPECT_EQ(js_id.size(), 44u);
  m.key = id.public_key_protobuf();  // same id whether js sent the key or not
  EXPECT_EQ(message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kKeySeqno), expect_js);

  Message u;
  u.data = Bytes{'a', 'b', 'c'};
  u.topic = "t";
  EXPECT_EQ(chorus::p2p::to_hex(message_id(u, SignaturePolicy::kStrictNoSign, MessageIdFn::kFromSeqno)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(GossipSignature, Seqno) {
  EXPECT_EQ(seqno_bytes(0x0102030405060708ull), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(seqno_value(Bytes{1, 2, 3, 4, 5, 6, 7, 8}), 0x0102030405060708ull);
  EXPECT_FALSE(seqno_value(Bytes{1, 2, 3}));
  EXPECT_FALSE(seqno_value(std::nullopt));
}

}  // namespace
}  // namespace chorus::gossip

#include <gtest/gtest.h>

#include "wire/peer_record.hpp"
#include "wire/protobuf.hpp"

using namespace chorus::p2p;

namespace {

Multiaddr addr(const char *text) {
  std::string why;
  auto ma = Multiaddr::parse(text, &why);
  EXPECT_TRUE(ma.has_value()) << why;
  return *ma;
}

Identity fixed_identity(uint8_t fill) {
  uint8_t seed[32];
  std::fill(std::begin(seed), std::end(seed), fill);
  return Identity::from_seed(seed);
}

}  // namespace

TEST(PeerRecord, SealedRecordOpensWithItsAddresses) {
  const Identity id = fixed_identity(7);
  const Bytes env = seal_peer_record(id, 42, {addr("/ip4/10.0.0.1/tcp/4001"), addr("/ip6/::1/tcp/4002")});
  std::string why;
  auto rec = open_peer_record(env, &why);
  ASSERT_TRUE(rec.has_value()) << why;
  EXPECT_EQ(rec->peer, id.peer_id());
  EXPECT_EQ(rec->seq, 42u);
  ASSERT_EQ(rec->addrs.size(), 2u);
  EXPECT_EQ(rec->addrs[0].to_string(), "/ip4/10.0.0.1/tcp/4001");
  EXPECT_EQ(rec->addrs[1].to_string(), "/ip6/::1/tcp/4002");
}

TEST(PeerRecord, EveryFlippedByteIsRefusedOrHarmless) {
  const Identity id = fixed_identity(9);
  const Bytes env = seal_peer_record(id, 1, {addr("/ip4/192.168.1.5/tcp/9000")});
  size_t refused = 0;
  for (size_t i = 0; i < env.size(); ++i) {
    Bytes bad = env;
    bad[i] ^= 0x01;
    std::string why;
    auto rec = open_peer_record(bad, &why);
    if (!rec) {
      EXPECT_FALSE(why.empty());
      ++refused;
      continue;
    }
    // Whatever still opens must still be the signer's own, unchanged record.
    EXPECT_EQ(rec->peer, id.peer_id());
    ASSERT_EQ(rec->addrs.size(), 1u);
    EXPECT_EQ(rec->addrs[0].to_string(), "/ip4/192.168.1.5/tcp/9000");
  }
  EXPECT_GT(refused, env.size() / 2);
}

TEST(PeerRecord, RecordOfAnotherPeerSignedByMeIsRefused) {
  // A signer may not vouch for another peer's addresses: rebuild an envelope whose record names B but
  // whose key and signature are A's.
  const Identity a = fixed_identity(1), b = fixed_identity(2);
  Bytes payload;
  {
    ProtoWriter w(payload);
    w.bytes(1, b.peer_id().bytes());
    w.varint(2, 1);
  }
  const uint8_t type[] = {0x03, 0x01};
  Bytes signed_part;
  const std::string domain = "libp2p-peer-record";
  signed_part.push_back(static_cast<uint8_t>(domain.size()));
  signed_part.insert(signed_part.end(), domain.begin(), domain.end());
  signed_part.push_back(2);
  signed_part.insert(signed_part.end(), type, type + 2);
  signed_part.push_back(static_cast<uint8_t>(payload.size()));
  signed_part.insert(signed_part.end(), payload.begin(), payload.end());
  const auto sig = a.sign(signed_part);
  Bytes env;
  ProtoWriter w(env);
  w.bytes(1, a.public_key_protobuf());
  w.bytes(2, BytesView(type, 2));
  w.bytes(3, payload);
  w.bytes(5, BytesView(sig.data(), sig.size()));
  std::string why;
  EXPECT_FALSE(open_peer_record(env, &why).has_value());
  EXPECT_NE(why.find("not the signer's"), std::string::npos) << why;
}

TEST(PeerRecord, WrongTypeAndOversizeAreRefused) {
  const Identity id = fixed_identity(3);
  std::string why;
  EXPECT_FALSE(open_peer_record(Bytes(kMaxPeerRecordEnvelope + 1, 0x0a), &why).has_value());
  EXPECT_NE(why.find("too large"), std::string::npos);
  EXPECT_FALSE(open_peer_record(Bytes{}, &why).has_value());
  EXPECT_FALSE(open_peer_record(Bytes{0xff, 0xff, 0xff}, &why).has_value());
}

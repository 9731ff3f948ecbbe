#include <gtest/gtest.h>

#include "wire/identify.hpp"
#include "wire/multiaddr.hpp"
#include "wire/protobuf.hpp"

using namespace chorus::p2p;

namespace {

IdentifyMessage sample() {
  IdentifyMessage m;
  m.protocol_version = "ipfs/0.1.0";
  m.agent_version = "chorus/0.1.0";
  m.public_key = *from_hex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e");
  m.observed_addr = Multiaddr::parse("/ip4/1.2.3.4/tcp/5", nullptr)->bytes();
  m.listen_addrs = {Multiaddr::parse("/ip4/127.0.0.1/tcp/4001", nullptr)->bytes(),
                    Multiaddr::parse("/ip6/::1/tcp/4001", nullptr)->bytes()};
  m.protocols = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/meshsub/1.1.0"};
  return m;
}

}  // namespace

TEST(Identify, EncodesFieldsInAscendingOrder) {
  IdentifyMessage m = sample();
  Bytes wire = m.encode();
  ProtoReader r(wire);
  uint32_t last = 0;
  std::vector<uint32_t> fields;
  while (r.next()) {
    EXPECT_GE(r.field(), last);
    last = r.field();
    fields.push_back(r.field());
  }
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(fields, (std::vector<uint32_t>{1, 2, 2, 3, 3, 3, 4, 5, 6}));
  EXPECT_EQ(to_hex(BytesView(wire).first(4)), "0a240801");  // field 1, 36 bytes, the key
}

TEST(Identify, RoundTrips) {
  IdentifyMessage m = sample();
  m.signed_peer_record = Bytes{1, 2, 3};
  IdentifyMessage back;
  std::string why;
  ASSERT_TRUE(back.merge_from(m.encode(), &why)) << why;
  EXPECT_EQ(back, m);
  IdentifyMessage empty;
  EXPECT_TRUE(empty.encode().empty());
  ASSERT_TRUE(back.merge_from({}, &why));
  EXPECT_EQ(back, m);
}

TEST(Identify, MergeAppendsRepeatedAndOverwritesScalars) {
  // go splits large replies: the second message carries only the signed peer record.
  IdentifyMessage first = sample();
  IdentifyMessage second;
  second.signed_peer_record = Bytes{9, 9};
  second.agent_version = "other";
  second.protocols = {"/extra/1"};
  IdentifyMessage merged;
  std::string why;
  ASSERT_TRUE(merged.merge_from(first.encode(), &why)) << why;
  ASSERT_TRUE(merged.merge_from(second.encode(), &why)) << why;
  EXPECT_EQ(merged.agent_version, "other");
  EXPECT_EQ(merged.protocol_version, "ipfs/0.1.0");
  EXPECT_EQ(merged.signed_peer_record, (Bytes{9, 9}));
  EXPECT_EQ(merged.protocols.size(), 4u);
  EXPECT_EQ(merged.protocols.back(), "/extra/1");
  EXPECT_EQ(merged.listen_addrs.size(), 2u);
}

TEST(Identify, SkipsUnknownFieldsAndMismatchedWireTypes) {
  Bytes wire;
  ProtoWriter w(wire);
  w.varint(5, 7);              // protocolVersion with a varint: skipped
  w.string(6, "agent");
  w.fixed64(7, 1);             // unknown field
  w.bytes(99, as_bytes("x"));  // unknown field
  IdentifyMessage m;
  std::string why;
  ASSERT_TRUE(m.merge_from(wire, &why)) << why;
  EXPECT_FALSE(m.protocol_version);
  EXPECT_EQ(m.agent_version, "agent");
}

TEST(Identify, RejectsMalformedAndOversizedLeavingMessageUnchanged) {
  IdentifyMessage m = sample();
  const IdentifyMessage before = m;
  std::string why;
  Bytes truncated = sample().encode();
  truncated.pop_back();
  EXPECT_FALSE(m.merge_from(truncated, &why));
  EXPECT_NE(why.find("identify:"), std::string::npos);
  EXPECT_EQ(m, before);

  Bytes big;
  ProtoWriter(big).bytes(6, Bytes(8 * 1024, 'a'));
  EXPECT_FALSE(m.merge_from(big, &why));
  EXPECT_NE(why.find("8 KiB"), std::string::npos) << why;
  EXPECT_EQ(m, before);

  Bytes many_addrs;
  ProtoWriter w(many_addrs);
  for (int i = 0; i < 127; ++i) w.bytes(2, Bytes{4, 1, 2, 3, 4});
  EXPECT_FALSE(m.merge_from(many_addrs, &why));  // 2 already present + 127 > 128
  EXPECT_NE(why.find("128"), std::string::npos) << why;
  EXPECT_EQ(m, before);
  IdentifyMessage fresh;
  EXPECT_TRUE(fresh.merge_from(many_addrs, &why)) << why;

  Bytes many_protocols;
  ProtoWriter wp(many_protocols);
  for (int i = 0; i < 257; ++i) wp.string(3, "/p");
  EXPECT_FALSE(IdentifyMessage().merge_from(many_protocols, &why));
  EXPECT_NE(why.find("256"), std::string::npos) << why;
}

// rpc_test: the pubsub RPC codec - round trips, presence of optional fields, every RpcLimits bound,
// malformed input, and the bytes a signature covers.
#include <gtest/gtest.h>

#include "rpc.hpp"
#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::gossip {
namespace {

Bytes b(std::string_view s) { return Bytes(s.begin(), s.end()); }

Rpc full_rpc() {
  Rpc rpc;
  rpc.subscriptions = {{true, "CHORUS/coordination/v1"}, {false, "hmmm/meta-discussion/v1"}};
  Message signed_msg;
  signed_msg.from = b("from-peer-id");
  signed_msg.data = b("{\"type\":\"task_claim\"}");
  signed_msg.seqno = Bytes{0, 0, 0, 0, 0, 0, 0, 7};
  signed_msg.topic = "CHORUS/coordination/v1";
  signed_msg.signature = Bytes(64, 0xab);
  signed_msg.key = b("key");
  Message unsigned_msg;
  unsigned_msg.data = Bytes{};  // present but empty
  unsigned_msg.topic = "t";
  rpc.publish = {signed_msg, unsigned_msg};
  Control c;
  c.ihave.push_back({"t", {b("id1"), b("id2")}});
  c.iwant.push_back({{b("id3")}});
  c.graft.push_back({"t"});
  c.prune.push_back({"t", {{b("peer-a"), std::nullopt}, {b("peer-b"), b("record")}}, 60});
  c.prune.push_back({"u", {}, std::nullopt});
  c.idontwant.push_back({{b("id4")}});
  rpc.control = c;
  return rpc;
}

std::optional<Rpc> decode(const Bytes &frame, const RpcLimits &limits = {}, std::string *why = nullptr) {
  return decode_rpc(frame, limits, why);
}

TEST(GossipRpc, RoundTripKeepsEveryFieldAndPresence) {
  Rpc rpc = full_rpc();
  Bytes wire = encode_rpc(rpc);
  std::string why;
  auto back = decode(wire, {}, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, rpc);
  ASSERT_TRUE(back->publish[1].data.has_value());
  EXPECT_TRUE(back->publish[1].data->empty());
  EXPECT_FALSE(back->publish[1].from.has_value());
  EXPECT_FALSE(back->control->prune[1].backoff_s.has_value());
  EXPECT_EQ(encode_rpc(*back), wire);  // deterministic
}

TEST(GossipRpc, EmptyRpcAndEmptyControl) {
  auto empty = decode(Bytes{});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  Rpc rpc;
  rpc.control.emplace();
  auto back = decode(encode_rpc(rpc));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, rpc);
  EXPECT_TRUE(back->empty());
}

TEST(GossipRpc, KnownWireBytes) {
  // A SUBSCRIBE to "a" as go and js encode it: 0a 05 (08 01 12 01 61).
  Rpc rpc;
  rpc.subscriptions.push_back({true, "a"});
  EXPECT_EQ(encode_rpc(rpc), (Bytes{0x0a, 0x05, 0x08, 0x01, 0x12, 0x01, 'a'}));
  // A PRUNE with backoff 60: control(3) { prune(4) { topic "a", backoff(3)=60 } }.
  Rpc prune;
  prune.control.emplace().prune.push_back({"a", {}, 60});
  EXPECT_EQ(encode_rpc(prune), (Bytes{0x1a, 0x07, 0x22, 0x05, 0x0a, 0x01, 'a', 0x18, 60}));
}

TEST(GossipRpc, FrameIsLengthPrefixed) {
  Rpc rpc = full_rpc();
  Bytes frame;
  append_frame(frame, rpc);
  Bytes body = encode_rpc(rpc);
  uint64_t len = 0;
  size_t used = 0;
  ASSERT_EQ(chorus::p2p::read_uvarint(frame, len, used), chorus::p2p::VarintStatus::ok);
  EXPECT_EQ(len, body.size());
  EXPECT_EQ(Bytes(frame.begin() + used, frame.end()), body);
}

TEST(GossipRpc, UnknownFieldsAreSkipped) {
  Bytes wire = encode_rpc(full_rpc());
  chorus::p2p::ProtoWriter w(wire);
  w.varint(15, 99);
  w.bytes(16, b("future"));
  w.fixed32(17, 1);
  w.fixed64(18, 2);
  auto back = decode(wire);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, full_rpc());
  // Unknown fields inside a message too.
  Bytes msg;
  chorus::p2p::ProtoWriter m(msg);
  m.string(4, "t");
  m.varint(9, 1);
  Bytes rpc_wire;
  chorus::p2p::ProtoWriter(rpc_wire).bytes(2, msg);
  auto r = decode(rpc_wire);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->publish.size(), 1u);
  EXPECT_EQ(r->publish[0].topic, "t");
}

TEST(GossipRpc, RepeatedControlMerges) {
  Rpc a;
  a.control.emplace().graft.push_back({"x"});
  Rpc c;
  c.control.emplace().graft.push_back({"y"});
  Bytes wire = encode_rpc(a);
  Bytes more = encode_rpc(c);
  wire.insert(wire.end(), more.begin(), more.end());
  auto back = decode(wire);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->control->graft.size(), 2u);
  EXPECT_EQ(back->control->graft[1].topic, "y");
}

TEST(GossipRpc, MalformedInputIsRefused) {
  std::string why;
  Bytes wire = encode_rpc(full_rpc());
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    Bytes part(wire.begin(), wire.begin() + cut);
    auto r = decode(part, {}, &why);
    // A cut at a field boundary of the top level is a valid shorter RPC; anything else must fail.
    if (r) {
      EXPECT_NE(*r, full_rpc());
    }
  }
  EXPECT_FALSE(decode(Bytes{0x0a, 0x05, 0x08}, {}, &why));
  EXPECT_FALSE(why.empty());
  EXPECT_FALSE(decode(Bytes{0x0b}, {}, &why));               // group start
  EXPECT_FALSE(decode(Bytes{0x0a, 0x80}, {}, &why));         // truncated length
  EXPECT_FALSE(decode(Bytes{0x08, 0x01}, {}, &why));         // subscriptions as a varint: wrong wire type
  EXPECT_NE(why.find("wire type"), std::string::npos);
  EXPECT_FALSE(decode(Bytes{0x12, 0x02, 0x20, 0x01}, {}, &why));  // message topic as a varint
  EXPECT_FALSE(decode(Bytes{0x00, 0x00}, {}, &why));              // field 0
}

TEST(GossipRpc, LimitsAreEnforcedWithAReason) {
  std::string why;
  Rpc rpc = full_rpc();
  Bytes wire = encode_rpc(rpc);

  RpcLimits l;
  l.max_rpc_bytes = wire.size() - 1;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("rpc exceeds"), std::string::npos) << why;

  l = {};
  l.max_subscriptions = 1;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("subscriptions"), std::string::npos) << why;

  l = {};
  l.max_messages = 1;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("messages"), std::string::npos) << why;

  l = {};
  l.max_message_bytes = 5;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("data exceeds 5 bytes"), std::string::npos) << why;

  l = {};
  l.max_topic_bytes = 3;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("topic exceeds"), std::string::npos) << why;

  l = {};
  l.max_control_entries = 5;  // full_rpc has 6
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("control entries"), std::string::npos) << why;
  l.max_control_entries = 6;
  EXPECT_TRUE(decode(wire, l, &why)) << why;

  l = {};
  l.max_message_ids = 3;  // full_rpc has 4
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("message ids"), std::string::npos) << why;

  l = {};
  l.max_prune_peers = 1;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("peers in a prune"), std::string::npos) << why;

  l = {};
  l.max_message_id_bytes = 2;
  EXPECT_FALSE(decode(wire, l, &why));
  EXPECT_NE(why.find("message id exceeds"), std::string::npos) << why;
}

TEST(GossipRpc, ThousandsOfIHaveIdsAreBounded) {
  Rpc rpc;
  ControlIHave ih{"t", {}};
  for (int i = 0; i < 6000; ++i) ih.message_ids.push_back(Bytes{uint8_t(i), uint8_t(i >> 8)});
  rpc.control.emplace().ihave.push_back(ih);
  std::string why;
  EXPECT_FALSE(decode(encode_rpc(rpc), {}, &why));
  EXPECT_NE(why.find("more than 5000 message ids"), std::string::npos) << why;
}

TEST(GossipRpc, SigningBytesCoverFieldsOneToFourOnly) {
  Message m;
  m.from = b("F");
  m.data = Bytes{};
  m.seqno = Bytes{1, 2, 3, 4, 5, 6, 7, 8};
  m.topic = "T";
  m.signature = Bytes(64, 1);
  m.key = b("K");
  Bytes s = signing_bytes(m);
  Bytes expect = b("libp2p-pubsub:");
  Bytes fields = {0x0a, 0x01, 'F', 0x12, 0x00, 0x1a, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x22, 0x01, 'T'};
  expect.insert(expect.end(), fields.begin(), fields.end());
  EXPECT_EQ(s, expect);
  m.signature.reset();
  m.key.reset();
  EXPECT_EQ(signing_bytes(m), expect);
  m.data.reset();  // absent data is not encoded at all
  EXPECT_EQ(signing_bytes(m).size(), expect.size() - 2);
}

}  // namespace
}  // namespace chorus::gossip

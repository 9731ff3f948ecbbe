// The kad-dht RPC message: golden bytes built by hand from the protobuf schema, round trips, every
// limit, truncations and unknown fields.
#include <gtest/gtest.h>

#include "kad/message.hpp"

namespace chorus::dht {
namespace {

Bytes B(std::initializer_list<uint8_t> v) { return Bytes(v); }
Bytes S(std::string_view s) { return Bytes(s.begin(), s.end()); }
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes &p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// /ip4/127.0.0.1/tcp/4001 in binary.
const Bytes kAddr = B({0x04, 0x7f, 0x00, 0x00, 0x01, 0x06, 0x0f, 0xa1});
const Bytes kPeerIdBytes = B({0x00, 0x02, 0xaa, 0xbb});

PeerEntry sample_peer(ConnectionType c = ConnectionType::kConnected) { return PeerEntry{kPeerIdBytes, {kAddr}, c}; }

// 0a 04 <id> 12 08 <addr> 18 01: 18 bytes.
Bytes sample_peer_bytes() { return cat({B({0x0a, 0x04}), kPeerIdBytes, B({0x12, 0x08}), kAddr, B({0x18, 0x01})}); }

std::optional<Message> decode(const Bytes &b, const Limits &limits = Limits{}, std::string *why = nullptr) {
  return decode_message(b, limits, why);
}

void expect_golden(const Message &m, const Bytes &golden) {
  EXPECT_EQ(chorus::p2p::to_hex(encode_message(m)), chorus::p2p::to_hex(golden));
  std::string why;
  auto back = decode(golden, Limits{}, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, m);
}

TEST(MessageTest, TypeNames) {
  EXPECT_STREQ(message_type_name(MessageType::kPutValue), "PUT_VALUE");
  EXPECT_STREQ(message_type_name(MessageType::kGetValue), "GET_VALUE");
  EXPECT_STREQ(message_type_name(MessageType::kAddProvider), "ADD_PROVIDER");
  EXPECT_STREQ(message_type_name(MessageType::kGetProviders), "GET_PROVIDERS");
  EXPECT_STREQ(message_type_name(MessageType::kFindNode), "FIND_NODE");
  EXPECT_STREQ(message_type_name(MessageType::kPing), "PING");
}

TEST(MessageTest, GoldenFindNodeRequest) {
  Message m;
  m.type = MessageType::kFindNode;
  m.key = S("abc");
  expect_golden(m, B({0x08, 0x04, 0x12, 0x03, 'a', 'b', 'c'}));
}

TEST(MessageTest, GoldenFindNodeReply) {
  Message m;
  m.type = MessageType::kFindNode;
  m.closer_peers = {sample_peer()};
  expect_golden(m, cat({B({0x08, 0x04, 0x42, 0x12}), sample_peer_bytes()}));
}

TEST(MessageTest, GoldenGetValueReplyWithRecord) {
  Message m;
  m.type = MessageType::kGetValue;
  m.key = S("k");
  m.record = Record{S("k"), S("v"), "t"};
  m.closer_peers = {sample_peer()};
  expect_golden(m, cat({B({0x08, 0x01, 0x12, 0x01, 'k', 0x1a, 0x09, 0x0a, 0x01, 'k', 0x12, 0x01, 'v', 0x2a, 0x01, 't',
                           0x42, 0x12}),
                        sample_peer_bytes()}));
}

TEST(MessageTest, GoldenPutValueOmitsTheZeroType) {
  // PUT_VALUE is enum value 0: proto3 encoders (go, js's protons) leave it out.
  Message m;
  m.type = MessageType::kPutValue;
  m.key = S("k");
  m.record = Record{S("k"), S("v"), ""};
  expect_golden(m, B({0x12, 0x01, 'k', 0x1a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));
}

TEST(MessageTest, GoldenAddProvider) {
  Message m;
  m.type = MessageType::kAddProvider;
  m.key = S("k");
  m.provider_peers = {sample_peer(ConnectionType::kNotConnected)};
  // connection 0 is left out: 0a 04 <id> 12 08 <addr> = 16 bytes
  expect_golden(m, cat({B({0x08, 0x02, 0x12, 0x01, 'k', 0x4a, 0x10, 0x0a, 0x04}), kPeerIdBytes, B({0x12, 0x08}), kAddr}));
}

TEST(MessageTest, GoldenGetProvidersReply) {
  Message m;
  m.type = MessageType::kGetProviders;
  m.key = S("k");
  m.closer_peers = {sample_peer()};
  m.provider_peers = {sample_peer(), sample_peer(ConnectionType::kCanConnect)};
  Bytes can_connect = sample_peer_bytes();
  can_connect.back() = 0x02;
  expect_golden(m, cat({B({0x08, 0x03, 0x12, 0x01, 'k', 0x42, 0x12}), sample_peer_bytes(), B({0x4a, 0x12}),
                        sample_peer_bytes(), B({0x4a, 0x12}), can_connect}));
}

TEST(MessageTest, GoldenPing) {
  Message m;
  m.type = MessageType::kPing;
  expect_golden(m, B({0x08, 0x05}));
}

TEST(MessageTest, EmptyBodyIsAnEmptyPutValue) {
  auto m = decode(Bytes{});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, MessageType::kPutValue);
  EXPECT_TRUE(m->key.empty());
  EXPECT_FALSE(m->record);
}

TEST(MessageTest, EmptyRecordIsPresent) {
  Message m;
  m.type = MessageType::kGetValue;
  m.record = Record{};
  expect_golden(m, B({0x08, 0x01, 0x1a, 0x00}));
}

TEST(MessageTest, FrameIsUvarintLengthThenBody) {
  Message m;
  m.type = MessageType::kFindNode;
  m.key = Bytes(200, 0x11);
  Bytes body = encode_message(m);
  ASSERT_EQ(body.size(), 2u + 3u + 200u);  // 08 04 12 c8 01 <200>
  Bytes frame = encode_frame(m);
  ASSERT_EQ(frame.size(), body.size() + 2);
  EXPECT_EQ(frame[0], 0xcd);  // 205 = 0xcd 0x01
  EXPECT_EQ(frame[1], 0x01);
  EXPECT_TRUE(std::equal(body.begin(), body.end(), frame.begin() + 2));
}

TEST(MessageTest, RoundTripOfEveryField) {
  Message m;
  m.type = MessageType::kGetProviders;
  m.key = Bytes(300, 0x5a);
  m.record = Record{S("/chorus/a"), Bytes(5000, 0x01), "2024-01-01T00:00:00Z"};
  for (int i = 0; i < 10; ++i) {
    PeerEntry p{Bytes(38, static_cast<uint8_t>(i)), {kAddr, kAddr}, static_cast<ConnectionType>(i % 4)};
    m.closer_peers.push_back(p);
    m.provider_peers.push_back(p);
  }
  m.provider_peers.push_back(PeerEntry{});  // an empty entry survives too
  auto back = decode(encode_message(m));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, m);
}

TEST(MessageTest, UnknownFieldsAreSkipped) {
  Bytes base = B({0x08, 0x01, 0x12, 0x01, 'k'});
  auto want = decode(base);
  ASSERT_TRUE(want);
  Bytes with_unknown = cat({B({0x50, 0x07}),                                 // clusterLevelRaw = 7
                            base,                                            //
                            B({0x3a, 0x02, 0xff, 0xff}),                     // field 7, bytes
                            B({0x5d, 1, 2, 3, 4}),                           // field 11, fixed32
                            B({0x61, 1, 2, 3, 4, 5, 6, 7, 8}),               // field 12, fixed64
                            B({0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01})});       // field 2^29-1, varint
  auto got = decode(with_unknown);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, *want);
}

TEST(MessageTest, RetiredRecordFieldsAndUnknownPeerFieldsAreSkipped) {
  Bytes msg = B({0x08, 0x01, 0x1a, 0x0c, 0x0a, 0x01, 'k', 0x12, 0x01, 'v', 0x1a, 0x01, 'a', 0x22, 0x01, 's',
                 0x42, 0x04, 0x0a, 0x00, 0x20, 0x09});
  auto m = decode(msg);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->record);
  EXPECT_EQ(m->record->key, S("k"));
  EXPECT_EQ(m->record->value, S("v"));
  ASSERT_EQ(m->closer_peers.size(), 1u);
  EXPECT_TRUE(m->closer_peers[0].id.empty());
}

TEST(MessageTest, UnknownConnectionTypeMeansNotConnected) {
  Bytes msg = B({0x08, 0x04, 0x42, 0x04, 0x0a, 0x00, 0x18, 0x09});
  auto m = decode(msg);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->closer_peers.at(0).connection, ConnectionType::kNotConnected);
}

TEST(MessageTest, RepeatedSingularFieldLastWins) {
  auto m = decode(B({0x08, 0x01, 0x12, 0x01, 'a', 0x08, 0x04, 0x12, 0x01, 'b'}));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, MessageType::kFindNode);
  EXPECT_EQ(m->key, S("b"));
}

TEST(MessageTest, UnknownMessageTypeIsAnError) {
  std::string why;
  EXPECT_FALSE(decode(B({0x08, 0x06}), Limits{}, &why));
  EXPECT_NE(why.find("unknown message type"), std::string::npos) << why;
}

TEST(MessageTest, WrongWireTypeIsAnError) {
  std::string why;
  EXPECT_FALSE(decode(B({0x10, 0x05}), Limits{}, &why));  // key as a varint
  EXPECT_NE(why.find("wrong wire type"), std::string::npos) << why;
  EXPECT_FALSE(decode(B({0x0a, 0x01, 0x04}), Limits{}, &why));  // type as bytes
  EXPECT_FALSE(decode(B({0x1a, 0x02, 0x08, 0x01}), Limits{}, &why));  // record.key as a varint
  EXPECT_FALSE(decode(B({0x42, 0x02, 0x18 | 0x02, 0x00}), Limits{}, &why));  // peer connection as bytes
}

TEST(MessageTest, GroupsAndFieldZeroAreErrors) {
  EXPECT_FALSE(decode(B({0x5b, 0x5c})));  // field 11 start/end group
  EXPECT_FALSE(decode(B({0x00, 0x00})));  // field 0
}

TEST(MessageTest, TruncationsAreErrors) {
  Message m;
  m.type = MessageType::kGetValue;
  m.key = S("key");
  m.record = Record{S("key"), S("value"), ""};
  m.closer_peers = {sample_peer()};
  Bytes full = encode_message(m);
  // Field boundaries at the top level: a cut there is a shorter valid message; a cut anywhere else
  // must be reported.
  std::vector<size_t> boundaries = {0, 2, 7, 21};
  for (size_t n = 0; n < full.size(); ++n) {
    Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    std::string why;
    bool ok = decode(cut, Limits{}, &why).has_value();
    bool boundary = std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
    EXPECT_EQ(ok, boundary) << "cut at " << n << ": " << why;
  }
  // A nested length running past its parent.
  std::string why;
  EXPECT_FALSE(decode(B({0x42, 0x03, 0x0a, 0x05, 0x01}), Limits{}, &why));
  EXPECT_NE(why.find("closerPeers"), std::string::npos) << why;
  EXPECT_FALSE(decode(B({0x1a, 0x02, 0x12, 0x05}), Limits{}, &why));
  EXPECT_NE(why.find("record"), std::string::npos) << why;
  // A varint cut in the middle.
  EXPECT_FALSE(decode(B({0x08, 0x80})));
}

TEST(MessageTest, MaxMessageBytes) {
  Message m;
  m.type = MessageType::kFindNode;
  m.key = S("abc");
  Bytes body = encode_message(m);
  Limits limits;
  limits.max_message_bytes = body.size();
  EXPECT_TRUE(decode(body, limits));
  limits.max_message_bytes = body.size() - 1;
  std::string why;
  EXPECT_FALSE(decode(body, limits, &why));
  EXPECT_NE(why.find("max_message_bytes"), std::string::npos) << why;
}

TEST(MessageTest, MaxKeyBytes) {
  Limits limits;
  limits.max_key_bytes = 4;
  std::string why;
  Message m;
  m.type = MessageType::kGetValue;
  m.key = S("1234");
  EXPECT_TRUE(decode(encode_message(m), limits));
  m.key = S("12345");
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("max_key_bytes"), std::string::npos) << why;
  m.key = S("k");
  m.record = Record{S("12345"), S("v"), ""};
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("record.key"), std::string::npos) << why;
  EXPECT_NE(why.find("max_key_bytes"), std::string::npos) << why;
  m.record = Record{S("k"), S("v"), "12345"};
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("timeReceived"), std::string::npos) << why;
  m.record.reset();
  m.closer_peers = {PeerEntry{S("12345"), {}, ConnectionType::kNotConnected}};
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("peer id"), std::string::npos) << why;
}

TEST(MessageTest, MaxValueBytes) {
  Limits limits;
  limits.max_value_bytes = 10;
  Message m;
  m.key = S("k");
  m.record = Record{S("k"), Bytes(10, 1), ""};
  EXPECT_TRUE(decode(encode_message(m), limits));
  m.record->value.push_back(1);
  std::string why;
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("max_value_bytes"), std::string::npos) << why;
  // The default is 1 MiB.
  m.record->value.assign((1u << 20) + 1, 0);
  EXPECT_FALSE(decode(encode_message(m), Limits{}, &why));
  m.record->value.pop_back();
  EXPECT_TRUE(decode(encode_message(m), Limits{}, &why)) << why;
}

TEST(MessageTest, MaxPeersForEachList) {
  Limits limits;
  limits.max_peers = 3;
  for (bool closer : {true, false}) {
    Message m;
    m.type = MessageType::kGetProviders;
    std::vector<PeerEntry> &list = closer ? m.closer_peers : m.provider_peers;
    list.assign(3, sample_peer());
    EXPECT_TRUE(decode(encode_message(m), limits));
    list.push_back(sample_peer());
    std::string why;
    EXPECT_FALSE(decode(encode_message(m), limits, &why));
    EXPECT_NE(why.find("max_peers"), std::string::npos) << why;
    EXPECT_NE(why.find(closer ? "closerPeers" : "providerPeers"), std::string::npos) << why;
  }
  // Each list has its own bound.
  Message both;
  both.closer_peers.assign(3, sample_peer());
  both.provider_peers.assign(3, sample_peer());
  EXPECT_TRUE(decode(encode_message(both), limits));
}

TEST(MessageTest, MaxAddrsPerPeerAndAddrBytes) {
  Limits limits;
  limits.max_addrs_per_peer = 2;
  limits.max_addr_bytes = 8;
  Message m;
  m.type = MessageType::kFindNode;
  m.closer_peers = {PeerEntry{kPeerIdBytes, {kAddr, kAddr}, ConnectionType::kNotConnected}};
  EXPECT_TRUE(decode(encode_message(m), limits));
  m.closer_peers[0].addrs.push_back(kAddr);
  std::string why;
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("max_addrs_per_peer"), std::string::npos) << why;
  m.closer_peers[0].addrs = {Bytes(9, 1)};
  EXPECT_FALSE(decode(encode_message(m), limits, &why));
  EXPECT_NE(why.find("max_addr_bytes"), std::string::npos) << why;
}

TEST(MessageTest, DefaultLimits) {
  Limits l;
  EXPECT_EQ(l.max_message_bytes, 4u << 20);
  EXPECT_EQ(l.max_value_bytes, 1u << 20);
}

}  // namespace
}  // namespace chorus::dht

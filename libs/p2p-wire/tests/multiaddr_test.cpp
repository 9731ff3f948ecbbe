#include <gtest/gtest.h>

#include "wire/multiaddr.hpp"

using namespace chorus::p2p;

namespace {

constexpr const char *kId = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
constexpr const char *kIdCid = "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6";
constexpr const char *kIdBytes = "0024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

Multiaddr must_parse(std::string_view s) {
  std::string why;
  auto ma = Multiaddr::parse(s, &why);
  EXPECT_TRUE(ma) << s << ": " << why;
  return ma ? *ma : Multiaddr();
}

// Text -> bytes matches the expected hex, bytes -> text gives back the canonical text.
void check_vector(const std::string &text, const std::string &hex_bytes, const std::string &canonical = "") {
  Multiaddr ma = must_parse(text);
  EXPECT_EQ(to_hex(ma.bytes()), hex_bytes) << text;
  std::string why;
  auto back = Multiaddr::from_bytes(*from_hex(hex_bytes), &why);
  ASSERT_TRUE(back) << text << ": " << why;
  EXPECT_EQ(back->to_string(), canonical.empty() ? text : canonical);
}

}  // namespace

TEST(Multiaddr, SpecVectors) {
  check_vector(std::string("/ip4/127.0.0.1/tcp/4001/p2p/") + kId,
               std::string("047f000001060fa1a50326") + kIdBytes);
  check_vector("/ip6/::1/tcp/4001", "2900000000000000000000000000000001060fa1");
  check_vector("/ip4/1.2.3.4/udp/4001", "04010203049102" "0fa1");
  check_vector("/dns4/example.com/tcp/443", "360b6578616d706c652e636f6d0601bb");
}

TEST(Multiaddr, AllKnownProtocols) {
  check_vector("/ip4/1.2.3.4/udp/4001/quic-v1", "0401020304" "91020fa1" "cd03");
  check_vector("/ip4/1.2.3.4/tcp/80/ws", "0401020304" "060050" "dd03");
  check_vector("/dns/a.b/tcp/1", "3503612e62" "060001");
  check_vector("/dns6/a/tcp/65535", "370161" "06ffff");
  check_vector("/dnsaddr/bootstrap.libp2p.io", "3813626f6f7473747261702e6c69627032702e696f");
  check_vector("/ip6zone/eth0/ip6/fe80::1/tcp/1", "2a0465746830" "29fe800000000000000000000000000001" "060001");
  check_vector(std::string("/ip4/1.2.3.4/tcp/1/p2p/") + kId + "/p2p-circuit",
               std::string("0401020304060001a50326") + kIdBytes + "a202");
}

TEST(Multiaddr, AliasesAndCanonicalText) {
  Multiaddr a = must_parse(std::string("/ip4/127.0.0.1/tcp/4001/ipfs/") + kId);
  EXPECT_EQ(a.to_string(), std::string("/ip4/127.0.0.1/tcp/4001/p2p/") + kId);
  Multiaddr b = must_parse(std::string("/ip4/127.0.0.1/tcp/4001/p2p/") + kIdCid);
  EXPECT_EQ(a, b);
  EXPECT_EQ(must_parse("/ip4/1.2.3.4/tcp/1/").to_string(), "/ip4/1.2.3.4/tcp/1");
  EXPECT_EQ(must_parse("/ip6/0:0:0:0:0:0:0:1/tcp/1").to_string(), "/ip6/::1/tcp/1");
}

TEST(Multiaddr, TextErrorsSayWhy) {
  struct Case {
    const char *text, *needle;
  } cases[] = {
      {"", "start with '/'"},
      {"ip4/1.2.3.4", "start with '/'"},
      {"/", "empty"},
      {"/ip4", "missing value for /ip4"},
      {"/ip4/1.2.3", "invalid IPv4"},
      {"/ip4/1.2.3.256", "invalid IPv4"},
      {"/ip6/::g", "invalid IPv6"},
      {"/ip4/1.2.3.4/tcp/65536", "invalid port"},
      {"/ip4/1.2.3.4/tcp/-1", "invalid port"},
      {"/ip4/1.2.3.4/tcp/", "missing value for /tcp"},
      {"/ip4/1.2.3.4//tcp/1", "empty path segment"},
      {"/ip4/1.2.3.4/sctp/1", "unknown protocol 'sctp'"},
      {"/p2p/notanid", "invalid /p2p/"},
      {"/dns4//tcp/1", "empty"},
  };
  for (const auto &c : cases) {
    std::string why;
    EXPECT_FALSE(Multiaddr::parse(c.text, &why)) << c.text;
    EXPECT_NE(why.find(c.needle), std::string::npos) << c.text << " -> " << why;
  }
  std::string why;
  std::string huge = "/dns/" + std::string(1100, 'a');
  EXPECT_FALSE(Multiaddr::parse(huge, &why));
  EXPECT_NE(why.find("1024"), std::string::npos) << why;
}

TEST(Multiaddr, BinaryErrorsSayWhy) {
  struct Case {
    const char *hex, *needle;
  } cases[] = {
      {"", "empty"},
      {"04010203", "truncated /ip4"},
      {"0401020304" "06", "truncated /tcp"},
      {"ff01", "unknown protocol code 255"},
      {"e203", "unknown protocol code 482"},
      {"8100", "malformed protocol code"},       // non-minimal
      {"3505616263", "truncated /dns"},
      {"3500", "/dns: empty value"},
      {"3503612f62", "contains '/'"},
      {"a50302ffff", "invalid /p2p/"},
      {"36", "malformed length"},
  };
  for (const auto &c : cases) {
    std::string why;
    EXPECT_FALSE(Multiaddr::from_bytes(*from_hex(c.hex), &why)) << c.hex;
    EXPECT_NE(why.find(c.needle), std::string::npos) << c.hex << " -> " << why;
  }
  Bytes big;
  for (int i = 0; i < 300; ++i) big.insert(big.end(), {0x04, 1, 2, 3, 4});
  std::string why;
  EXPECT_FALSE(Multiaddr::from_bytes(big, &why));
  EXPECT_NE(why.find("1024"), std::string::npos);
}

TEST(Multiaddr, PeerIdHelpers) {
  Multiaddr with = must_parse(std::string("/ip4/10.0.0.1/tcp/4001/p2p/") + kId);
  auto id = with.peer_id();
  ASSERT_TRUE(id);
  EXPECT_EQ(id->to_base58(), kId);
  Multiaddr without = with.without_peer_id();
  EXPECT_EQ(without.to_string(), "/ip4/10.0.0.1/tcp/4001");
  EXPECT_FALSE(without.peer_id());
  EXPECT_EQ(without.without_peer_id(), without);
  EXPECT_EQ(without.with_peer_id(*id), with);
  EXPECT_EQ(with.with_peer_id(*id), with);  // replaces, never doubles
  // A relay address: the trailing /p2p/ is the target; no trailing /p2p/ means no target id.
  Multiaddr relay = must_parse(std::string("/ip4/1.2.3.4/tcp/1/p2p/") + kId + "/p2p-circuit");
  EXPECT_FALSE(relay.peer_id());
}

TEST(Multiaddr, TcpTarget) {
  auto t = must_parse(std::string("/ip4/10.0.0.1/tcp/4001/p2p/") + kId).tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "10.0.0.1");
  EXPECT_EQ(t->port, 4001);
  EXPECT_EQ(t->kind, Multiaddr::TcpTarget::ip4);
  t = must_parse("/ip6/::1/tcp/1").tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->kind, Multiaddr::TcpTarget::ip6);
  t = must_parse("/ip6zone/eth0/ip6/fe80::1/tcp/2").tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "fe80::1%eth0");
  t = must_parse("/dns4/example.com/tcp/443").tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "example.com");
  EXPECT_EQ(t->kind, Multiaddr::TcpTarget::dns4);
  EXPECT_EQ(must_parse("/dns/x/tcp/1").tcp_target()->kind, Multiaddr::TcpTarget::dns);
  EXPECT_EQ(must_parse("/dns6/x/tcp/1").tcp_target()->kind, Multiaddr::TcpTarget::dns6);

  EXPECT_FALSE(must_parse("/ip4/1.2.3.4/udp/1").tcp_target());
  EXPECT_FALSE(must_parse("/ip4/1.2.3.4/tcp/1/ws").tcp_target());
  EXPECT_FALSE(must_parse("/dnsaddr/x").tcp_target());
  EXPECT_FALSE(must_parse("/ip4/1.2.3.4").tcp_target());
  EXPECT_FALSE(must_parse(std::string("/ip4/1.2.3.4/tcp/1/p2p/") + kId + "/p2p-circuit").tcp_target());
}

TEST(Multiaddr, FromTcp) {
  EXPECT_EQ(Multiaddr::from_tcp("127.0.0.1", 4001).to_string(), "/ip4/127.0.0.1/tcp/4001");
  EXPECT_EQ(Multiaddr::from_tcp("::1", 80).to_string(), "/ip6/::1/tcp/80");
  EXPECT_EQ(Multiaddr::from_tcp("[::1]", 80).to_string(), "/ip6/::1/tcp/80");
  EXPECT_EQ(Multiaddr::from_tcp("::ffff:10.1.2.3", 5).to_string(), "/ip4/10.1.2.3/tcp/5");
  EXPECT_EQ(Multiaddr::from_tcp("fe80::1%eth0", 5).to_string(), "/ip6zone/eth0/ip6/fe80::1/tcp/5");
  EXPECT_TRUE(Multiaddr::from_tcp("example.com", 5).empty());
  EXPECT_EQ(Multiaddr().to_string(), "");
}

// Key space: SHA-256 placement, XOR distance, prefix lengths (expected values computed by hand / with
// an independent SHA-256).
#include <gtest/gtest.h>

#include "kad/key.hpp"

namespace chorus::dht {
namespace {

KadId from_hex_id(const char *hex) {
  auto b = chorus::p2p::from_hex(hex);
  EXPECT_TRUE(b && b->size() == 32);
  KadId id;
  std::copy(b->begin(), b->end(), id.bytes.begin());
  return id;
}

KadId with_byte(size_t index, uint8_t value) {
  KadId id;
  id.bytes[index] = value;
  return id;
}

TEST(KeyTest, OfKeyIsSha256) {
  EXPECT_EQ(KadId::of_key({}).hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(KadId::of_key(chorus::p2p::as_bytes("abc")).hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(KeyTest, OfPeerHashesTheMultihashBytes) {
  Bytes mh = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
  mh.insert(mh.end(), 32, 0x01);
  std::string why;
  auto id = PeerId::from_bytes(mh, &why);
  ASSERT_TRUE(id) << why;
  EXPECT_EQ(KadId::of_peer(*id).hex(), "abb7e8338cc44a8fc428977193d4a7bd3a251a690cb322d5494ffb44df4f15a4");
}

TEST(KeyTest, DistanceIsXor) {
  KadId a = from_hex_id("ff00000000000000000000000000000000000000000000000000000000000001");
  KadId b = from_hex_id("0f00000000000000000000000000000000000000000000000000000000000003");
  EXPECT_EQ(distance(a, b).hex(), "f000000000000000000000000000000000000000000000000000000000000002");
  EXPECT_EQ(distance(a, a), KadId{});
  EXPECT_EQ(distance(a, b), distance(b, a));
}

TEST(KeyTest, CommonPrefixLength) {
  KadId zero;
  EXPECT_EQ(common_prefix_len(zero, zero), 256);
  EXPECT_EQ(common_prefix_len(zero, with_byte(0, 0x80)), 0);
  EXPECT_EQ(common_prefix_len(zero, with_byte(0, 0x40)), 1);
  EXPECT_EQ(common_prefix_len(zero, with_byte(0, 0x01)), 7);
  EXPECT_EQ(common_prefix_len(zero, with_byte(1, 0x80)), 8);
  EXPECT_EQ(common_prefix_len(zero, with_byte(3, 0x10)), 27);
  EXPECT_EQ(common_prefix_len(zero, with_byte(31, 0x01)), 255);
  KadId a = from_hex_id("abcd000000000000000000000000000000000000000000000000000000000000");
  KadId b = from_hex_id("abcf000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(common_prefix_len(a, b), 14);  // 0xcd ^ 0xcf = 0x02
}

TEST(KeyTest, CloserComparesBigEndianDistances) {
  KadId target;
  KadId near = with_byte(31, 0xff);  // distance 0x00..ff
  KadId far = with_byte(30, 0x01);   // distance 0x00..0100
  EXPECT_TRUE(closer(near, far, target));
  EXPECT_FALSE(closer(far, near, target));
  EXPECT_FALSE(closer(near, near, target));  // strict
  // A high byte decides whatever the low bytes say.
  KadId hi = with_byte(0, 0x01);
  KadId lo = from_hex_id("00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
  EXPECT_TRUE(closer(lo, hi, target));
  // Relative to a non-zero target.
  KadId t = from_hex_id("8000000000000000000000000000000000000000000000000000000000000000");
  EXPECT_TRUE(closer(hi, lo, with_byte(0, 0x01)));
  EXPECT_TRUE(closer(with_byte(0, 0x90), with_byte(0, 0x40), t));
  EXPECT_EQ(closer(near, far, target), distance(near, target) < distance(far, target));
}

TEST(KeyTest, HexIsLowercase64Chars) {
  KadId id = with_byte(0, 0xAB);
  std::string h = id.hex();
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.substr(0, 4), "ab00");
}

}  // namespace
}  // namespace chorus::dht

#include <gtest/gtest.h>

#include "yamux/frame.hpp"

namespace chorus::p2p::yamux {
namespace {

TEST(YamuxFrame, EncodesBigEndianHeader) {
  uint8_t out[kHeaderSize];
  encode_header(Header{FrameType::window_update, kFlagSyn, 1, 0}, out);
  EXPECT_EQ(to_hex(BytesView(out, kHeaderSize)), "000100010000000100000000");

  encode_header(Header{FrameType::data, kFlagAck | kFlagFin, 0x01020304, 0xA0B0C0D0}, out);
  EXPECT_EQ(to_hex(BytesView(out, kHeaderSize)), "00000006" "01020304" "a0b0c0d0");

  encode_header(Header{FrameType::go_away, 0, 0, kGoAwayProtocolError}, out);
  EXPECT_EQ(to_hex(BytesView(out, kHeaderSize)), "000300000000000000000001");

  Bytes buf{0xff};
  append_header(buf, Header{FrameType::ping, kFlagAck, 0, 7});
  EXPECT_EQ(to_hex(buf), "ff" "000200020000000000000007");
}

TEST(YamuxFrame, DecodesKnownVectors) {
  auto bytes = from_hex("0000000d0000000500010000");
  ASSERT_TRUE(bytes);
  Header h;
  ASSERT_EQ(decode_header(bytes->data(), h), nullptr);
  EXPECT_EQ(h.type, FrameType::data);
  EXPECT_EQ(h.flags, kFlagSyn | kFlagFin | kFlagRst);
  EXPECT_EQ(h.stream_id, 5u);
  EXPECT_EQ(h.length, 65536u);
}

TEST(YamuxFrame, RoundTripsEveryTypeAndFlag) {
  for (uint8_t t = 0; t <= 3; ++t) {
    for (uint16_t flags : {0, 1, 2, 4, 8, 0xf}) {
      Header in{static_cast<FrameType>(t), flags, 0xfffffffe, 0x7fffffff};
      uint8_t buf[kHeaderSize];
      encode_header(in, buf);
      Header out;
      ASSERT_EQ(decode_header(buf, out), nullptr);
      EXPECT_EQ(in, out);
    }
  }
}

TEST(YamuxFrame, RejectsBadVersionAndType) {
  Header h;
  auto v1 = from_hex("010000000000000100000000");
  const char *err = decode_header(v1->data(), h);
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err).find("version"), std::string::npos);

  auto t4 = from_hex("000400000000000100000000");
  err = decode_header(t4->data(), h);
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err).find("type"), std::string::npos);
}

TEST(YamuxFrame, ToleratesUnknownFlagBits) {
  auto b = from_hex("0001f0010000000100000000");
  Header h;
  ASSERT_EQ(decode_header(b->data(), h), nullptr);
  EXPECT_EQ(h.flags, 0xf001);
}

}  // namespace
}  // namespace chorus::p2p::yamux

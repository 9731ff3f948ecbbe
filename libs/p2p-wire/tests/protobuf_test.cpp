#include <gtest/gtest.h>

#include "wire/protobuf.hpp"

using namespace chorus::p2p;

namespace {
Bytes hex(std::string_view s) { return *from_hex(s); }
}  // namespace

TEST(Protobuf, RoundTripsAllWireTypes) {
  Bytes out;
  ProtoWriter w(out);
  w.varint(1, 150);
  w.bytes(2, as_bytes("abc"));
  w.string(3, "");
  w.fixed64(4, 0x0102030405060708ull);
  w.fixed32(5, 0xdeadbeef);
  w.varint(100000, 0xffffffffffffffffull);
  EXPECT_EQ(to_hex(BytesView(out).first(8)), "0896011203616263");  // 1: 150, 2: "abc"
  ProtoReader r(out);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(), 1u);
  EXPECT_EQ(r.wire_type(), 0u);
  EXPECT_EQ(r.varint(), 150u);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(), 2u);
  EXPECT_EQ(r.wire_type(), 2u);
  EXPECT_EQ(r.string(), "abc");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(), 3u);
  EXPECT_TRUE(r.bytes().empty());
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.wire_type(), 1u);
  EXPECT_EQ(r.varint(), 0x0102030405060708ull);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.wire_type(), 5u);
  EXPECT_EQ(r.varint(), 0xdeadbeefu);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(), 100000u);
  EXPECT_EQ(r.varint(), 0xffffffffffffffffull);
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.ok());
}

TEST(Protobuf, EncodesCanonicalBytes) {
  Bytes out;
  ProtoWriter w(out);
  w.varint(1, 1);
  w.bytes(2, as_bytes("hi"));
  EXPECT_EQ(to_hex(out), "08011202" "6869");
}

TEST(Protobuf, EmptyMessageIsOk) {
  ProtoReader r(BytesView{});
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.ok());
}

TEST(Protobuf, AcceptsTenByteAndPaddedVarints) {
  // Negative int32 -1 as protobuf writes it, and 1 padded to two bytes (legal in protobuf).
  Bytes in = hex("08ffffffffffffffffff01" "108100");
  ProtoReader r(in);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.varint(), 0xffffffffffffffffull);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.varint(), 1u);
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.ok());
}

TEST(Protobuf, RejectsMalformed) {
  const char *bad[] = {
      "08",                        // varint value missing
      "0880",                      // truncated varint
      "08ffffffffffffffffff02",    // overflows 64 bits
      "08ffffffffffffffffffff01",  // 11 bytes
      "1205616263",                // length 5, only 3 bytes
      "120a",                      // length, no data
      "09010203",                  // truncated fixed64
      "0d0102",                    // truncated fixed32
      "1b",                        // start group
      "1c",                        // end group
      "0e00",                      // wire type 6
      "0f00",                      // wire type 7
      "0001",                      // field 0
      "80",                        // truncated key
      "f8ffffff7f00",              // field number 2^32-1 > 2^29-1
  };
  for (const char *h : bad) {
    Bytes in = hex(h);
    ProtoReader r(in);
    while (r.next()) {
    }
    EXPECT_FALSE(r.ok()) << h;
    EXPECT_STRNE(r.error(), "") << h;
    EXPECT_FALSE(r.next()) << "errors are sticky: " << h;
  }
}

TEST(Protobuf, StopsAtErrorAfterGoodFields) {
  Bytes in = hex("0801" "1205ab");
  ProtoReader r(in);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.varint(), 1u);
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.ok());
}

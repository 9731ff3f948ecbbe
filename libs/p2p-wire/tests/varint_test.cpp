#include <gtest/gtest.h>

#include "wire/varint.hpp"

using namespace chorus::p2p;

namespace {

Bytes hex(std::string_view s) { return *from_hex(s); }

VarintStatus decode(std::string_view h, uint64_t &v, size_t &used, size_t max = 9) {
  Bytes b = hex(h);
  return read_uvarint(b, v, used, max);
}

}  // namespace

TEST(Uvarint, EncodesKnownValues) {
  struct Case {
    uint64_t v;
    const char *hex;
  } cases[] = {{0, "00"},       {1, "01"},         {127, "7f"},       {128, "8001"},
               {255, "ff01"},   {300, "ac02"},     {16384, "808001"}, {421, "a503"},
               {273, "9102"},   {0x7fffffffffffffffull, "ffffffffffffffff7f"},
               {0xffffffffffffffffull, "ffffffffffffffffff01"}};
  for (const auto &c : cases) {
    Bytes out;
    append_uvarint(out, c.v);
    EXPECT_EQ(to_hex(out), c.hex) << c.v;
    EXPECT_EQ(uvarint_size(c.v), out.size());
  }
}

TEST(Uvarint, DecodesAndReportsLength) {
  uint64_t v = 0;
  size_t used = 0;
  ASSERT_EQ(decode("ac02ff", v, used), VarintStatus::ok);
  EXPECT_EQ(v, 300u);
  EXPECT_EQ(used, 2u);
  ASSERT_EQ(decode("ffffffffffffffff7f", v, used), VarintStatus::ok);
  EXPECT_EQ(v, 0x7fffffffffffffffull);
  EXPECT_EQ(used, 9u);
}

TEST(Uvarint, RejectsNonMinimal) {
  uint64_t v = 0;
  size_t used = 0;
  EXPECT_EQ(decode("8100", v, used), VarintStatus::invalid);
  EXPECT_EQ(decode("8000", v, used), VarintStatus::invalid);
  EXPECT_EQ(decode("ff8000", v, used), VarintStatus::invalid);
  EXPECT_EQ(decode("00", v, used), VarintStatus::ok);  // zero itself is one byte
}

TEST(Uvarint, RejectsOverlongAndOverflow) {
  uint64_t v = 0;
  size_t used = 0;
  // Ten bytes exceed the multiformats 9-byte cap.
  EXPECT_EQ(decode("ffffffffffffffffff01", v, used), VarintStatus::invalid);
  EXPECT_EQ(decode("808080808080808080", v, used), VarintStatus::invalid);
  // With the 10-byte protobuf-style cap, the 10th byte may only carry bit 63.
  ASSERT_EQ(decode("ffffffffffffffffff01", v, used, 10), VarintStatus::ok);
  EXPECT_EQ(v, 0xffffffffffffffffull);
  EXPECT_EQ(decode("ffffffffffffffffff02", v, used, 10), VarintStatus::invalid);
  // A smaller cap applies too.
  EXPECT_EQ(decode("808001", v, used, 2), VarintStatus::invalid);
}

TEST(Uvarint, TruncatedNeedsMore) {
  uint64_t v = 0;
  size_t used = 0;
  EXPECT_EQ(decode("", v, used), VarintStatus::need_more);
  EXPECT_EQ(decode("80", v, used), VarintStatus::need_more);
  EXPECT_EQ(decode("ffffffffffffffff", v, used), VarintStatus::need_more);
}

TEST(LpReader, WholeMessagesAreViewsIntoInput) {
  Bytes wire;
  append_lp(wire, as_bytes("hello"));
  append_lp(wire, as_bytes(""));
  append_lp(wire, as_bytes("world!"));
  LpReader r(100);
  Bytes scratch;
  BytesView in(wire), msg;
  ASSERT_EQ(r.next(in, msg, scratch), LpStatus::message);
  EXPECT_EQ(as_string_view(msg), "hello");
  EXPECT_GE(msg.data(), wire.data());
  EXPECT_LT(msg.data(), wire.data() + wire.size());
  ASSERT_EQ(r.next(in, msg, scratch), LpStatus::message);
  EXPECT_TRUE(msg.empty());
  ASSERT_EQ(r.next(in, msg, scratch), LpStatus::message);
  EXPECT_EQ(as_string_view(msg), "world!");
  EXPECT_TRUE(in.empty());
  EXPECT_TRUE(scratch.empty());
  EXPECT_EQ(r.next(in, msg, scratch), LpStatus::need_more);
  EXPECT_FALSE(r.mid_message());
}

TEST(LpReader, ByteAtATimeReassembles) {
  std::string big(300, 'x');  // two-byte length prefix, split across feeds
  big[0] = 'a';
  big[299] = 'z';
  Bytes wire;
  append_lp(wire, as_bytes(big));
  append_lp(wire, as_bytes("tail"));
  LpReader r(1000);
  Bytes scratch;
  std::vector<std::string> got;
  for (size_t i = 0; i < wire.size(); ++i) {
    BytesView in(&wire[i], 1), msg;
    LpStatus st;
    while ((st = r.next(in, msg, scratch)) == LpStatus::message) got.emplace_back(as_string_view(msg));
    ASSERT_EQ(st, LpStatus::need_more);
    ASSERT_TRUE(in.empty());
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], big);
  EXPECT_EQ(got[1], "tail");
}

TEST(LpReader, TooLargeIsStickyAndReportedBeforeBody) {
  Bytes wire;
  append_uvarint(wire, 11);
  LpReader r(10);
  Bytes scratch;
  BytesView in(wire), msg;
  EXPECT_EQ(r.next(in, msg, scratch), LpStatus::too_large);
  Bytes more = {0x01, 'a'};
  BytesView in2(more);
  EXPECT_EQ(r.next(in2, msg, scratch), LpStatus::too_large);
  r.reset();
  EXPECT_EQ(r.next(in2, msg, scratch), LpStatus::message);
  EXPECT_EQ(as_string_view(msg), "a");
}

TEST(LpReader, InvalidPrefix) {
  Bytes wire = {0x81, 0x00, 'x'};
  LpReader r(10);
  Bytes scratch;
  BytesView in(wire), msg;
  EXPECT_EQ(r.next(in, msg, scratch), LpStatus::invalid);
  // An endless continuation run is cut off at 9 bytes even when fed one byte at a time.
  LpReader r2(1 << 20);
  Bytes cont(20, 0x80);
  LpStatus st = LpStatus::need_more;
  size_t fed = 0;
  for (; fed < cont.size() && st == LpStatus::need_more; ++fed) {
    BytesView one(&cont[fed], 1);
    st = r2.next(one, msg, scratch);
  }
  EXPECT_EQ(st, LpStatus::invalid);
  EXPECT_EQ(fed, 9u);
}

TEST(LpReader, MidMessageTellsTruncation) {
  Bytes wire;
  append_lp(wire, as_bytes("abc"));
  LpReader r(10);
  Bytes scratch;
  BytesView in(wire.data(), 2), msg;
  EXPECT_EQ(r.next(in, msg, scratch), LpStatus::need_more);
  EXPECT_TRUE(r.mid_message());
}

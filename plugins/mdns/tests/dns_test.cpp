// DNS codec: round trips, compression, and every kind of hostile input the parser must refuse.
#include <gtest/gtest.h>

#include "dns.hpp"

namespace chorus::mdns {
namespace {

std::vector<uint8_t> header(uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
  return {0, 0, static_cast<uint8_t>(flags >> 8), static_cast<uint8_t>(flags), 0, static_cast<uint8_t>(qd), 0,
          static_cast<uint8_t>(an), 0, static_cast<uint8_t>(ns), 0, static_cast<uint8_t>(ar)};
}

TEST(Dns, QueryRoundTrip) {
  DnsWriter w(7, 0);
  ASSERT_TRUE(w.question("_p2p._udp.local", kTypePtr, kClassIn));
  ASSERT_TRUE(w.ptr(DnsWriter::kAnswer, "_p2p._udp.local", 99, "abc._p2p._udp.local"));
  auto bytes = std::move(w).finish();
  DnsMessage m;
  std::string why;
  ASSERT_TRUE(parse_message(bytes, m, &why)) << why;
  EXPECT_EQ(m.id, 7);
  EXPECT_FALSE(m.is_response());
  ASSERT_EQ(m.questions.size(), 1u);
  EXPECT_EQ(m.questions[0].name, "_p2p._udp.local");
  EXPECT_EQ(m.questions[0].type, kTypePtr);
  ASSERT_EQ(m.answers.size(), 1u);
  EXPECT_EQ(m.answers[0].ptr, "abc._p2p._udp.local");
  EXPECT_EQ(m.answers[0].ttl, 99u);
}

TEST(Dns, CompressionShrinksRepeatedSuffixes) {
  DnsWriter w(0, kFlagResponse);
  ASSERT_TRUE(w.ptr(DnsWriter::kAnswer, "_p2p._udp.local", 120, "peer._p2p._udp.local"));
  ASSERT_TRUE(w.txt(DnsWriter::kAdditional, "peer._p2p._udp.local", 120, {"dnsaddr=/ip4/1.2.3.4/tcp/1"}));
  auto bytes = std::move(w).finish();
  // "_p2p._udp.local" is written once (17 bytes); the PTR target and TXT name are pointers.
  EXPECT_LT(bytes.size(), 12u + 17 + 10 + 7 + 2 + 10 + 2 + 28 + 4);
  DnsMessage m;
  ASSERT_TRUE(parse_message(bytes, m, nullptr));
  ASSERT_EQ(m.additionals.size(), 1u);
  EXPECT_EQ(m.additionals[0].name, "peer._p2p._udp.local");
  EXPECT_TRUE(m.additionals[0].cache_flush);
  EXPECT_EQ(m.additionals[0].txt, std::vector<std::string>{"dnsaddr=/ip4/1.2.3.4/tcp/1"});
}

TEST(Dns, WriterRefusesBadNames) {
  DnsWriter w(0, 0);
  EXPECT_FALSE(w.question("a..b", kTypePtr, kClassIn));
  EXPECT_FALSE(w.question(std::string(64, 'x') + ".local", kTypePtr, kClassIn));
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'y') + ".";
  long_name += "local";
  EXPECT_FALSE(w.question(long_name, kTypePtr, kClassIn));
  EXPECT_FALSE(w.txt(DnsWriter::kAnswer, "x.local", 1, {std::string(256, 'z')}));
  EXPECT_EQ(std::move(w).finish().size(), 12u);  // nothing half-written
}

TEST(Dns, RejectsShortHeader) {
  DnsMessage m;
  std::string why;
  std::vector<uint8_t> b = {1, 2, 3};
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_NE(why.find("header"), std::string::npos);
}

TEST(Dns, RejectsCompressionLoop) {
  auto b = header(0, 1, 0);
  b.push_back(0xC0);  // pointer to itself (offset 12)
  b.push_back(12);
  b.insert(b.end(), {0, 12, 0, 1});
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_NE(why.find("backwards"), std::string::npos) << why;
}

TEST(Dns, RejectsTwoPointerLoop) {
  // name at 12: label "a" then pointer to 17; at 17: pointer to 12.
  auto b = header(0, 1, 0);
  b.insert(b.end(), {1, 'a', 0xC0, 17, 0});  // 12..16
  b.insert(b.end(), {0xC0, 12});              // 17
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
}

TEST(Dns, RejectsPointerOutOfRange) {
  auto b = header(0, 1, 0);
  b.insert(b.end(), {0xFF, 0xFF, 0, 12, 0, 1});
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
}

TEST(Dns, RejectsLabelPastEnd) {
  auto b = header(0, 1, 0);
  b.insert(b.end(), {40, 'a', 'b'});
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_NE(why.find("past the end"), std::string::npos) << why;
}

TEST(Dns, RejectsNameOver255Bytes) {
  auto b = header(0, 1, 0);
  for (int i = 0; i < 5; ++i) {
    b.push_back(60);
    b.insert(b.end(), 60, 'q');
  }
  b.insert(b.end(), {0, 0, 12, 0, 1});
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_NE(why.find("255"), std::string::npos) << why;
}

TEST(Dns, RejectsExtendedLabels) {
  auto b = header(0, 1, 0);
  b.insert(b.end(), {0x41, 0, 0, 12, 0, 1});
  DnsMessage m;
  EXPECT_FALSE(parse_message(b, m, nullptr));
}

TEST(Dns, AbsurdCountsEndInAnErrorNotAnAllocation) {
  auto b = header(kFlagResponse, 0, 0xFF, 0xFF, 0xFF);
  b[6] = 0xFF;  // ancount 65535
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_TRUE(m.answers.empty());
}

TEST(Dns, RecordCapHolds) {
  DnsWriter w(0, kFlagResponse);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(w.ptr(DnsWriter::kAnswer, "_x._udp.local", 1, "a._x._udp.local"));
  auto b = std::move(w).finish();
  DnsMessage m;
  std::string why;
  EXPECT_FALSE(parse_message(b, m, &why));
  EXPECT_NE(why.find("256"), std::string::npos) << why;
  EXPECT_LE(m.answers.size(), kMaxRecordsKept);
}

TEST(Dns, RejectsTruncatedRecordAndTxt) {
  DnsWriter w(0, kFlagResponse);
  ASSERT_TRUE(w.txt(DnsWriter::kAnswer, "a.local", 1, {"hello", "world"}));
  auto full = std::move(w).finish();
  for (size_t n = 12; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(n));
    DnsMessage m;
    EXPECT_FALSE(parse_message(cut, m, nullptr)) << "length " << n;
  }
  // A TXT string whose length byte claims more than the record holds.
  auto bad = full;
  bad[bad.size() - 6] = 200;
  DnsMessage m;
  EXPECT_FALSE(parse_message(bad, m, nullptr));
}

TEST(Dns, NamesCompareCaseInsensitively) {
  EXPECT_TRUE(names_equal("_CHORUS-peer-discovery._udp.local", "_chorus-PEER-discovery._UDP.local"));
  EXPECT_FALSE(names_equal("a.local", "b.local"));
  EXPECT_FALSE(names_equal("a.local", "a.local."));
}

}  // namespace
}  // namespace chorus::mdns

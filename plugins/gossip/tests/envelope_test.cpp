// The CHORUS envelope: the 13 wire strings, build/parse round trips, what is not an envelope, and
// RFC 3339 timestamps.
#include <gtest/gtest.h>

#include "envelope.hpp"

namespace chorus::gossip {
namespace {

using namespace std::chrono_literals;

TEST(Envelope, KnownTypesRoundTripTheirWireStrings) {
  const char *wire[] = {"task_announcement",     "task_claim",         "task_progress",        "task_complete",
                        "capability_broadcast",  "availability_broadcast", "meta_discussion", "task_help_request",
                        "task_help_response",    "coordination_request", "coordination_complete", "dependency_alert",
                        "escalation_trigger"};
  ASSERT_EQ(std::size(wire), static_cast<size_t>(kKnownMessageTypes));
  for (int i = 0; i < kKnownMessageTypes; ++i) {
    const MessageType t = message_type_from(wire[i]);
    EXPECT_NE(t, MessageType::kUnknown) << wire[i];
    EXPECT_STREQ(message_type_name(t), wire[i]);
  }
  EXPECT_EQ(message_type_from("future_type"), MessageType::kUnknown);
  EXPECT_EQ(message_type_from(""), MessageType::kUnknown);
  EXPECT_STREQ(message_type_name(MessageType::kUnknown), "");
}

TEST(Envelope, BuildsTheDocumentedShape) {
  Envelope e;
  e.type = "task_claim";
  e.from = "agent-7";
  e.timestamp = "2026-12-06T18:00:00.123Z";
  e.data = nlohmann::json{{"task", 42}};
  EXPECT_EQ(build_envelope(e),
            R"({"type":"task_claim","from":"agent-7","timestamp":"2026-12-06T18:00:00.123Z","data":{"task":42}})");
  e.hop_count = 3;
  e.data = nullptr;  // no data: an empty object
  EXPECT_EQ(build_envelope(e),
            R"({"type":"task_claim","from":"agent-7","timestamp":"2026-12-06T18:00:00.123Z","data":{},"hop_count":3})");
}

TEST(Envelope, ParsesWhatItBuildsAndUnknownTypes) {
  Envelope e;
  e.type = "brand_new_type";
  e.from = "a";
  e.timestamp = rfc3339_utc(std::chrono::system_clock::now());
  e.data = nlohmann::json::array({1, "x", nullptr});
  e.hop_count = 9;
  std::string why;
  auto back = parse_envelope(build_envelope(e), &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->type, e.type);
  EXPECT_EQ(back->kind(), MessageType::kUnknown);
  EXPECT_EQ(back->from, "a");
  EXPECT_EQ(back->timestamp, e.timestamp);
  EXPECT_EQ(back->data, e.data);
  EXPECT_EQ(back->hop_count, 9u);
  // Minimal: type only.
  back = parse_envelope(R"(  {"type":"task_complete"})", &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->kind(), MessageType::kTaskComplete);
  EXPECT_TRUE(back->data.is_null());
  EXPECT_EQ(back->hop_count, 0u);
}

TEST(Envelope, RefusesWhatIsNotAnEnvelope) {
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  for (std::string bad : {std::string(""), std::string("hello"), std::string("[1,2]"), std::string("{"),
                          std::string(R"({"type":7})"), std::string(R"({"data":{}})"),
                          std::string(R"({"type":"x","from":1})"), std::string(R"({"type":"x","timestamp":false})"),
                          std::string(R"({"type":"x","hop_count":-1})"), std::string(R"({"type":"x","hop_count":1.5})"),
                          std::string(R"({"type":"x","hop_count":4294967296})"), std::string("\xff\xfe{"),
                          R"({"type":"x","data":)" + deep + "}"}) {
    std::string why;
    EXPECT_FALSE(parse_envelope(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
  EXPECT_FALSE(parse_envelope(std::string_view("{\"type\":\"a\0\"}", 13), nullptr));  // no crash without why
}

TEST(Envelope, Rfc3339) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796580000123));
  EXPECT_EQ(rfc3339_utc(t), "2026-12-06T18:00:00.123Z");
  EXPECT_EQ(rfc3339_utc(std::chrono::system_clock::time_point(0ms)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(parse_rfc3339_ms("2026-12-06T18:00:00.123Z"), 1796580000123);
  EXPECT_EQ(parse_rfc3339_ms("2026-12-06T19:30:00.5+01:30"), 1796580000500);
  EXPECT_EQ(parse_rfc3339_ms("2026-12-06T18:00:00Z"), 1796580000000);
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  EXPECT_EQ(parse_rfc3339_ms(rfc3339_utc(now)), ms);
  for (const char *bad : {"", "2026-12-06", "2026-12-06T18:00:00", "2026-13-06T18:00:00Z", "2026-12-06T18:00:00.Z",
                          "2026-12-06T18:00:00Zjunk", "2026-12-06T18:00:00+0100"})
    EXPECT_FALSE(parse_rfc3339_ms(bad)) << bad;
}

}  // namespace
}  // namespace chorus::gossip

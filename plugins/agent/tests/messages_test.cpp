// The wire messages: each type round-trips, and malformed data is refused with the field named.
#include <gtest/gtest.h>

#include <string>

#include "messages.hpp"

namespace chorus::agent {
namespace {

template <class T>
void expect_round_trip(const T &m) {
  const Message msg = m;
  ParseError err;
  auto back = parse_message(type_of(msg), to_json(msg), &err);
  ASSERT_TRUE(back) << err.detail;
  EXPECT_EQ(to_json(*back), to_json(msg));
  const json env = {{"type", type_of(msg)}, {"from", "a"}, {"timestamp", "t"}, {"data", to_json(msg)}};
  auto from_env = parse_envelope(env.dump(), &err);
  ASSERT_TRUE(from_env) << err.detail;
  EXPECT_EQ(from_env->index(), msg.index());
}

TEST(Messages, EveryTypeRoundTrips) {
  expect_round_trip(Availability{"n1", "a1", true, 1, 3, 1700000000, "working", 1700000001});
  expect_round_trip(Capability{"a1", "n1", "0.1.0", {"general"}, {"go"}, {"phi3"}, "dev", 3, 0, "ready", 1, true});
  expect_round_trip(RoleAnnouncement{"a1", "n1", "architect", {"systems"}, {"general"}, "lead", "arch", 1});
  expect_round_trip(TaskAnnouncement{"t-1", 2, "title", "desc", {"general"}, "chorus", "a1", "a0", 1700000000000});
  expect_round_trip(TaskClaim{"t-1", 2, "n1", "a1", 0, 3});
  expect_round_trip(TaskProgress{"t-1", 2, "n1", "a1", "started", 0, ""});
  expect_round_trip(TaskComplete{"t-1", 2, "n1", "a1", "failed", "why", "phi3", "ucxl://x", 12});
  expect_round_trip(TaskComplete{"t-1", 2, "n1", "a1", "completed", "ok", "", "", 12, "n2"});
  expect_round_trip(TaskAssign{"t-1", 2, "n0", "a0", "n1", "a1"});
  TaskResult r;
  static_cast<TaskComplete &>(r) = TaskComplete{"t-1", 2, "n1", "a1", "completed", "ok", "phi3", "", 40};
  expect_round_trip(r);
  expect_round_trip(TaskAck{"t-1", 2, "n3", "a3", "n1"});
}


std::string refused(std::string_view type, const json &data) {
  ParseError err;
  auto m = parse_message(type, data, &err);
  EXPECT_FALSE(m) << data.dump();
  return err.reason + " " + err.detail;
}

TEST(Messages, MalformedDataIsRefusedWithTheField) {
  const json claim = to_json(TaskClaim{"t-1", 1, "n1", "a1", 0, 3});
  auto with = [&](const char *key, json v) {
    json d = claim;
    d[key] = std::move(v);
    return d;
  };
  EXPECT_NE(refused(kClaimType, with("task_id", "has space")).find("task_id"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("task_id", std::string(129, 'a'))).find("task_id"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("attempt", 0)).find("attempt"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("attempt", -1)).find("attempt"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("attempt", "1")).find("attempt"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("attempt", 1.5)).find("attempt"), std::string::npos);
  EXPECT_NE(refused(kClaimType, with("node_id", "")).find("node_id"), std::string::npos);
  json no_agent = claim;
  no_agent.erase("agent_id");
  EXPECT_NE(refused(kClaimType, no_agent).find("agent_id: missing"), std::string::npos);
  EXPECT_EQ(refused(kClaimType, json::array()).substr(0, 7), "no_data");
  EXPECT_EQ(refused("something_else", claim).substr(0, 12), "unknown_type");

  json ann = to_json(TaskAnnouncement{"t-1", 1, "title", "", {}, "", "a1", "a1", 0});
  ann["title"] = std::string(257, 'x');
  EXPECT_NE(refused(kAnnouncementType, ann).find("title"), std::string::npos);
  ann["title"] = "ok";
  ann["description"] = std::string(16 * 1024 + 1, 'x');
  EXPECT_NE(refused(kAnnouncementType, ann).find("description"), std::string::npos);
  ann["description"] = "";
  ann["required_capabilities"] = json::array();
  for (int i = 0; i < 33; ++i) ann["required_capabilities"].push_back("c" + std::to_string(i));
  EXPECT_NE(refused(kAnnouncementType, ann).find("more than 32"), std::string::npos);
  ann["required_capabilities"] = {"a,b"};
  EXPECT_NE(refused(kAnnouncementType, ann).find("required_capabilities"), std::string::npos);

  json avail = to_json(Availability{"n1", "a1", true, 0, 3, 0, "ready", 0});
  avail["status"] = "sleeping";
  EXPECT_NE(refused(kAvailabilityType, avail).find("status"), std::string::npos);
  avail["status"] = "ready";
  avail["max_tasks"] = 1'000'000'000'000;
  EXPECT_NE(refused(kAvailabilityType, avail).find("max_tasks"), std::string::npos);
}

// The node a message speaks for is its author: a relayed outcome speaks for the relaying node,
// which is what signed pubsub checks.
TEST(Messages, RelayedOutcomesSpeakForTheRelay) {
  TaskComplete c{"t-1", 1, "n1", "a1", "completed", "", "", "", 0};
  EXPECT_EQ(node_of(c), "n1");
  c.relayed_by = "n2";
  EXPECT_EQ(node_of(c), "n2");
  EXPECT_EQ(node_of(TaskAssign{"t-1", 1, "n0", "a0", "n1", "a1"}), "n0");
  EXPECT_EQ(node_of(TaskAck{"t-1", 1, "n3", "a3", "n1"}), "n3");
  EXPECT_NE(refused(kAckType, {{"task_id", "t-1"}, {"attempt", 1}, {"node_id", "n3"}, {"agent_id", "a3"}})
                .find("owner_node"),
            std::string::npos);
  EXPECT_NE(refused(kResultType, {{"task_id", "t-1"}, {"attempt", 0}, {"node_id", "n1"}, {"agent_id", "a1"},
                                  {"status", "completed"}})
                .find("attempt"),
            std::string::npos);
}

TEST(Messages, EnvelopesThatAreNotJsonOrLackDataAreRefused) {
  ParseError err;
  EXPECT_FALSE(parse_envelope("{", &err));
  EXPECT_EQ(err.reason, "not_json");
  EXPECT_FALSE(parse_envelope(R"({"type":"task_claim"})", &err));
  EXPECT_EQ(err.reason, "no_data");
  EXPECT_FALSE(parse_envelope(R"({"type":7,"data":{}})", &err));
  EXPECT_EQ(err.reason, "unknown_type");
}

TEST(Messages, HmmmEnvelopes) {
  ParseError err;
  auto m = parse_hmmm_envelope(R"({"type":"escalation_trigger","from":"a1","timestamp":"t","data":{"x":1}})", &err);
  ASSERT_TRUE(m) << err.detail;
  EXPECT_EQ(m->type, "escalation_trigger");
  EXPECT_EQ(m->from, "a1");
  EXPECT_FALSE(parse_hmmm_envelope(R"({"type":"chat","data":{}})", &err));
  EXPECT_FALSE(parse_hmmm_envelope(R"({"type":"meta_discussion","data":"text"})", &err));
  const std::string big = R"({"type":"meta_discussion","data":{"t":")" + std::string(17000, 'x') + "\"}}";
  EXPECT_FALSE(parse_hmmm_envelope(big, &err));
  EXPECT_EQ(err.reason, "bad_field");
}

}  // namespace
}  // namespace chorus::agent

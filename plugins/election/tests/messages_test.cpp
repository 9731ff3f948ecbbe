// messages_test: the wire JSON of each message (golden), strict parsing, bounds, authorship.
#include "core/messages.hpp"

#include <gtest/gtest.h>

using namespace chorus::election;

namespace {

const std::string kPeerA = "12D3KooWA1b2C3d4E5f6G7h8J9k1L2m3N4p5Q6r7S8t9U1v2W3x4";
const std::string kPeerB = "12D3KooWZzYyXxWwVvUuTtSsRrQqPpNnMmLlKkJjHhGgFfEeDdCc";

Message parse_ok(const std::string &text) {
  std::string why;
  auto m = parse_message(text, &why);
  EXPECT_TRUE(m.has_value()) << text << ": " << why;
  return m.value_or(Message{Vote{}});
}

std::string refusal(const std::string &text) {
  std::string why;
  auto m = parse_message(text, &why);
  EXPECT_FALSE(m.has_value()) << text;
  EXPECT_FALSE(why.empty()) << text;
  return why;
}

}  // namespace

TEST(Messages, HeartbeatGoldenJson) {
  const Message m = Heartbeat{7, kPeerA, 1765000000000, 3, 0.71};
  const std::string golden = R"({"type":"election.heartbeat","term":7,"admin":")" + kPeerA +
                             R"(","since_unix_ms":1765000000000,"seq":3,"score":0.71})";
  EXPECT_EQ(to_json(m), golden);
  const auto back = std::get<Heartbeat>(parse_ok(golden));
  EXPECT_EQ(back.term, 7u);
  EXPECT_EQ(back.admin, kPeerA);
  EXPECT_EQ(back.since_unix_ms, 1765000000000u);
  EXPECT_EQ(back.seq, 3u);
  EXPECT_DOUBLE_EQ(back.score, 0.71);
  EXPECT_STREQ(topic_of(m), "CHORUS/admin/heartbeat/v1");
  EXPECT_EQ(term_of(m), 7u);
  EXPECT_EQ(author_of(m), kPeerA);
}

TEST(Messages, PresenceGoldenJson) {
  const Message m = Presence{7, kPeerB, kPeerA, 0.64};
  const std::string golden =
      R"({"type":"election.presence","term":7,"member":")" + kPeerB + R"(","admin":")" + kPeerA + R"(","score":0.64})";
  EXPECT_EQ(to_json(m), golden);
  const auto back = std::get<Presence>(parse_ok(golden));
  EXPECT_EQ(back.member, kPeerB);
  EXPECT_EQ(back.admin, kPeerA);
  EXPECT_STREQ(topic_of(m), "CHORUS/admin/heartbeat/v1");
  EXPECT_EQ(author_of(m), kPeerB);
  // No admin known, and a node that never saw a term: both are legitimate presences.
  const auto fresh = std::get<Presence>(
      parse_ok(R"({"type":"election.presence","term":0,"member":")" + kPeerB + R"(","admin":"","score":0})"));
  EXPECT_EQ(fresh.term, 0u);
  EXPECT_EQ(fresh.admin, "");
}

TEST(Messages, CandidacyGoldenJson) {
  const Message m = Candidacy{7, kPeerA, Trigger::heartbeat_timeout, ScoreComponents{1, 0.5, 0.8, 1, 0}, 0.71};
  const std::string golden = R"({"type":"election.candidacy","term":7,"candidate":")" + kPeerA +
                             R"(","trigger":"heartbeat_timeout","score":0.71,"components":{"uptime":1.0,)"
                             R"("capabilities":0.5,"resources":0.8,"network":1.0,"experience":0.0}})";
  EXPECT_EQ(to_json(m), golden);
  const auto back = std::get<Candidacy>(parse_ok(golden));
  EXPECT_EQ(back.trigger, Trigger::heartbeat_timeout);
  EXPECT_DOUBLE_EQ(back.components.resources, 0.8);
  EXPECT_DOUBLE_EQ(back.components.capabilities, 0.5);
  EXPECT_STREQ(topic_of(m), "CHORUS/election/v1");
  EXPECT_EQ(author_of(m), kPeerA);
  // Integers are numbers too: the design's own example writes 1 and 0.
  parse_ok(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"manual","score":1,)"
           R"("components":{"uptime":1,"capabilities":0,"resources":0,"network":1,"experience":0}})");
}

TEST(Messages, VoteGoldenJson) {
  const Message m = Vote{7, kPeerB, kPeerA};
  const std::string golden =
      R"({"type":"election.vote","term":7,"voter":")" + kPeerB + R"(","candidate":")" + kPeerA + R"("})";
  EXPECT_EQ(to_json(m), golden);
  const auto back = std::get<Vote>(parse_ok(golden));
  EXPECT_EQ(back.voter, kPeerB);
  EXPECT_EQ(back.candidate, kPeerA);
  EXPECT_STREQ(topic_of(m), "CHORUS/election/v1");
  EXPECT_EQ(author_of(m), kPeerB);  // the voter speaks, not the candidate
}

TEST(Messages, MemberOrderOnInputDoesNotMatter) {
  const auto v = std::get<Vote>(parse_ok(R"({"candidate":"b","voter":"a","term":2,"type":"election.vote"})"));
  EXPECT_EQ(v.voter, "a");
  EXPECT_EQ(v.term, 2u);
}

TEST(Messages, TriggerNamesRoundTrip) {
  const char *names[] = {"heartbeat_timeout", "discovery_failure", "split_brain", "quorum_loss", "manual"};
  for (int i = 0; i < kTriggerCount; ++i) {
    const auto t = static_cast<Trigger>(i);
    EXPECT_STREQ(trigger_name(t), names[i]);
    EXPECT_EQ(trigger_from_name(names[i]), t);
  }
  EXPECT_FALSE(trigger_from_name("").has_value());
  EXPECT_FALSE(trigger_from_name("Manual").has_value());
}

TEST(Messages, RefusesWhatIsNotAnElectionMessage) {
  refusal("");
  refusal("not json");
  refusal("[1,2]");
  refusal(R"("election.vote")");
  refusal(R"({"term":1,"voter":"a","candidate":"b"})");                       // no type
  refusal(R"({"type":7,"term":1,"voter":"a","candidate":"b"})");              // type not a string
  EXPECT_EQ(refusal(R"({"type":"election.veto","term":1,"voter":"a","candidate":"b"})"), "unknown type");
  refusal(R"({"type":"election.vote","term":1,"voter":"a","candidate":"b"} trailing)");
}

TEST(Messages, RefusesMissingExtraAndDuplicateMembers) {
  EXPECT_NE(refusal(R"({"type":"election.vote","term":1,"voter":"a"})").find("candidate"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"election.vote","term":1,"voter":"a","candidate":"b","x":1})").find("\"x\""),
            std::string::npos);
  EXPECT_EQ(refusal(R"({"type":"election.vote","term":1,"voter":"a","candidate":"b","candidate":"c"})"),
            "duplicate member");
  // Duplicates inside the nested components object too.
  refusal(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"manual","score":1,)"
          R"("components":{"uptime":1,"uptime":0,"capabilities":0,"resources":0,"network":1,"experience":0}})");
  refusal(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"manual","score":1,)"
          R"("components":{"uptime":1,"capabilities":0,"resources":0,"network":1}})");
  refusal(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"manual","score":1,)"
          R"("components":{"uptime":1,"capabilities":0,"resources":0,"network":1,"experience":0,"luck":1}})");
  refusal(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"manual","score":1,"components":[]})");
  refusal(R"({"type":"election.candidacy","term":7,"candidate":"a","trigger":"coup","score":1,)"
          R"("components":{"uptime":1,"capabilities":0,"resources":0,"network":1,"experience":0}})");
  refusal(R"({"type":"election.heartbeat","term":7,"admin":"a","since_unix_ms":1,"seq":1})");
  refusal(R"({"type":"election.presence","term":7,"member":"a","score":0.5})");
}

TEST(Messages, RefusesTermsAndNumbersOutOfRange) {
  auto vote = [](const std::string &term) {
    return R"({"type":"election.vote","term":)" + term + R"(,"voter":"a","candidate":"b"})";
  };
  refusal(vote("0"));  // terms start at 1
  refusal(vote("-1"));
  refusal(vote("1.5"));
  refusal(vote("1.0"));  // integers only: a float term could round
  refusal(vote("\"7\""));
  refusal(vote("9007199254740993"));  // 2^53 + 1
  refusal(vote("18446744073709551616"));
  EXPECT_EQ(std::get<Vote>(parse_ok(vote("9007199254740992"))).term, 9007199254740992u);

  auto presence = [](const std::string &score) {
    return R"({"type":"election.presence","term":1,"member":"a","admin":"","score":)" + score + "}";
  };
  refusal(presence("1.0000001"));
  refusal(presence("-0.1"));
  refusal(presence("1e400"));
  refusal(presence("null"));
  refusal(presence("\"0.5\""));
  parse_ok(presence("0"));
  parse_ok(presence("1"));
  parse_ok(presence("5e-1"));
  refusal(R"({"type":"election.heartbeat","term":7,"admin":"a","since_unix_ms":-1,"seq":1,"score":0})");
  refusal(R"({"type":"election.heartbeat","term":7,"admin":"a","since_unix_ms":1,"seq":1.5,"score":0})");
}

TEST(Messages, RefusesBadIds) {
  auto vote = [](const std::string &voter) {
    return R"({"type":"election.vote","term":1,"voter":")" + voter + R"(","candidate":"b"})";
  };
  refusal(vote(""));
  refusal(vote("has space"));
  refusal(vote("tab\\there"));
  refusal(vote("nul\\u0000"));
  refusal(vote("caf\xc3\xa9"));  // non-ASCII
  refusal(vote("\xff"));          // not even UTF-8
  parse_ok(vote(std::string(kMaxIdBytes, 'x')));
  refusal(vote(std::string(kMaxIdBytes + 1, 'x')));
  // Only a presence may name no admin.
  refusal(R"({"type":"election.heartbeat","term":7,"admin":"","since_unix_ms":1,"seq":1,"score":0})");
  refusal(R"({"type":"election.vote","term":1,"voter":"a","candidate":""})");
}

TEST(Messages, RefusesOversizedInputBeforeParsing) {
  std::string big = R"({"type":"election.vote","term":1,"voter":"a","candidate":"b"})";
  big.append(kMaxMessageBytes, ' ');
  EXPECT_EQ(refusal(big), "message larger than 4096 bytes");
  refusal(std::string(kMaxMessageBytes / 2, '[') + std::string(kMaxMessageBytes / 2, ']'));
}

TEST(Messages, CheckAuthorRequiresTheSignerToBeTheClaimedAuthor) {
  const Message hb = Heartbeat{3, kPeerA, 0, 1, 0.5};
  EXPECT_TRUE(check_author(hb, kPeerA));
  EXPECT_FALSE(check_author(hb, kPeerB));
  EXPECT_FALSE(check_author(hb, ""));
  const Message vote = Vote{3, kPeerB, kPeerA};
  EXPECT_TRUE(check_author(vote, kPeerB));
  EXPECT_FALSE(check_author(vote, kPeerA));  // a candidate cannot cast votes for itself
  EXPECT_TRUE(check_author(Message{Candidacy{3, kPeerA, Trigger::manual, {}, 0}}, kPeerA));
  EXPECT_FALSE(check_author(Message{Presence{3, kPeerA, kPeerB, 0}}, kPeerB));
}

TEST(Messages, EveryMessageRoundTrips) {
  const Message all[] = {Heartbeat{1, "h", 0, 0, 0}, Heartbeat{9007199254740992ULL, kPeerA, 9007199254740992ULL, 12, 1},
                         Presence{0, "p", "", 0.125}, Candidacy{5, "c", Trigger::split_brain, {0.1, 0.2, 0.3, 0.4, 0.5},
                                                                0.3333333333333333},
                         Vote{2, "v", "c"}};
  for (const auto &m : all) {
    const std::string text = to_json(m);
    const auto back = parse_ok(text);
    EXPECT_EQ(to_json(back), text);
  }
}

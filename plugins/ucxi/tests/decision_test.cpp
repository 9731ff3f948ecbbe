// Decision records: the schema accepted and refused member by member, the JSON round trip, the
// record's address and its announcement.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "decision.hpp"

namespace {

using namespace chorus::ucxi;

nlohmann::json good_record() {
  return nlohmann::json::parse(R"({
    "id": "adr-0007.cache_policy",
    "title": "Cache immutable versions by SHA-256",
    "summary": "Versions never change, so they can be cached without invalidation.",
    "outcome": "approval",
    "author": {"agent": "claude", "role": "architect"},
    "project": "chorus",
    "task": "issue-18",
    "citations": ["ucxl://gpt4:architect@chorus:implement-auth/*~3/src/auth.go",
                  "ucxl://claude:reviewer@CHORUS:task-1/*~1/notes/review.md"],
    "created": "2026-12-07T01:02:03Z",
    "updated": "2026-12-07T01:02:04.123Z",
    "metadata": {"reviewers": ["a", "b"], "weight": 2}
  })");
}

struct Refusal {
  std::string field;
  std::string why;
};

Refusal refuse(const nlohmann::json &j) {
  Refusal r;
  EXPECT_FALSE(parse_decision(j, &r.field, &r.why).has_value()) << j.dump();
  EXPECT_FALSE(r.why.empty());
  return r;
}

TEST(UcxiDecision, GoodRecord) {
  std::string field, why;
  const auto d = parse_decision(good_record(), &field, &why);
  ASSERT_TRUE(d.has_value()) << field << ": " << why;
  EXPECT_EQ(d->id, "adr-0007.cache_policy");
  EXPECT_EQ(d->outcome, DecisionOutcome::kApproval);
  EXPECT_EQ(d->author_agent, "claude");
  EXPECT_EQ(d->author_role, "architect");
  EXPECT_EQ(d->project, "chorus");
  EXPECT_EQ(d->task, "issue-18");
  ASSERT_EQ(d->citations.size(), 2u);
  EXPECT_EQ(d->citations[0].temporal.count, 3u);
  EXPECT_EQ(d->created, "2026-12-07T01:02:03Z");
  EXPECT_EQ(d->updated, "2026-12-07T01:02:04.123Z");
  EXPECT_EQ((*d->metadata)["weight"], 2);

  // The JSON form is the record as given (its members in canonical form), and reads back the same.
  EXPECT_EQ(to_json(*d), good_record());
  const auto again = parse_decision(to_json(*d), nullptr, nullptr);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *d);

  EXPECT_EQ(decision_address(*d).to_string(),
            "ucxl://claude:architect@chorus:issue-18/*^/decisions/adr-0007.cache_policy.json");
}

TEST(UcxiDecision, OptionalMembersAndOutcomes) {
  nlohmann::json j = good_record();
  j.erase("updated");
  j.erase("metadata");
  j["summary"] = "";
  j["citations"] = nlohmann::json::array();
  for (const char *outcome : {"approval", "blocker", "structural_change"}) {
    j["outcome"] = outcome;
    const auto d = parse_decision(j, nullptr, nullptr);
    ASSERT_TRUE(d.has_value()) << outcome;
    EXPECT_EQ(outcome_text(d->outcome), outcome);
    EXPECT_FALSE(d->updated.has_value());
    EXPECT_FALSE(d->metadata.has_value());
    const nlohmann::json out = to_json(*d);
    EXPECT_FALSE(out.contains("updated"));
    EXPECT_FALSE(out.contains("metadata"));
    EXPECT_EQ(out, j);
  }
}

TEST(UcxiDecision, RefusedMemberByMember) {
  struct Case {
    std::string name;
    nlohmann::json j;
    std::string field;
  };
  std::vector<Case> cases;
  auto with = [](const char *member, nlohmann::json value) {
    nlohmann::json j = good_record();
    j[member] = std::move(value);
    return j;
  };
  auto without = [](const char *member) {
    nlohmann::json j = good_record();
    j.erase(member);
    return j;
  };
  cases.push_back({"not an object", nlohmann::json::array(), "decision"});
  cases.push_back({"unknown member", with("priority", 1), "priority"});
  cases.push_back({"unknown empty member", with("", 1), "<member>"});
  cases.push_back({"unknown long member", with(std::string(65, 'k').c_str(), 1), "<member>"});
  for (const char *m : {"id", "title", "summary", "outcome", "author", "project", "task", "citations", "created"}) {
    cases.push_back({std::string("missing ") + m, without(m), m});
  }
  cases.push_back({"id empty", with("id", ""), "id"});
  cases.push_back({"id slash", with("id", "a/b"), "id"});
  cases.push_back({"id space", with("id", "a b"), "id"});
  cases.push_back({"id too long", with("id", std::string(129, 'i')), "id"});
  cases.push_back({"id number", with("id", 7), "id"});
  cases.push_back({"title empty", with("title", ""), "title"});
  cases.push_back({"title too long", with("title", std::string(257, 't')), "title"});
  cases.push_back({"title not utf-8", with("title", "bad \xff"), "title"});
  cases.push_back({"summary too long", with("summary", std::string(8193, 's')), "summary"});
  cases.push_back({"summary null", with("summary", nullptr), "summary"});
  cases.push_back({"outcome unknown", with("outcome", "maybe"), "outcome"});
  cases.push_back({"outcome case", with("outcome", "Approval"), "outcome"});
  cases.push_back({"author string", with("author", "claude"), "author"});
  cases.push_back({"author extra", with("author", {{"agent", "a"}, {"role", "r"}, {"x", 1}}), "author"});
  cases.push_back({"author no agent", with("author", {{"role", "r"}}), "author.agent"});
  cases.push_back({"author no role", with("author", {{"agent", "a"}}), "author.role"});
  cases.push_back({"author agent bad", with("author", {{"agent", "a!"}, {"role", "r"}}), "author.agent"});
  cases.push_back({"author role any", with("author", {{"agent", "a"}, {"role", "any"}}), "author.role"});
  cases.push_back({"author role long", with("author", {{"agent", "a"}, {"role", std::string(129, 'r')}}),
                   "author.role"});
  cases.push_back({"project any", with("project", "any"), "project"});
  cases.push_back({"project empty", with("project", ""), "project"});
  cases.push_back({"task dot", with("task", "a.b"), "task"});
  cases.push_back({"citations object", with("citations", nlohmann::json::object()), "citations"});
  cases.push_back({"citations too many",
                   with("citations", std::vector<std::string>(65, "ucxl://a:r@p:t/*~1/x")), "citations"});
  cases.push_back({"citation number", with("citations", nlohmann::json::array({1})), "citations[0]"});
  cases.push_back({"citation invalid", with("citations", nlohmann::json::array({"ucxl://a:r@p:t/*~1/x", "http://x"})),
                   "citations[1]"});
  cases.push_back(
      {"citation latest", with("citations", nlohmann::json::array({"ucxl://a:r@p:t/*^/x"})), "citations[0]"});
  cases.push_back({"citation any", with("citations", nlohmann::json::array({"ucxl://a:r@p:t/*~/x"})), "citations[0]"});
  cases.push_back(
      {"citation relative", with("citations", nlohmann::json::array({"ucxl://a:r@p:t/~~1/x"})), "citations[0]"});
  cases.push_back(
      {"citation wildcard", with("citations", nlohmann::json::array({"ucxl://any:r@p:t/*~1/x"})), "citations[0]"});
  cases.push_back({"created not utc", with("created", "2026-12-07T01:02:03+01:00"), "created"});
  cases.push_back({"created date only", with("created", "2026-12-07"), "created"});
  cases.push_back({"created unix", with("created", 1796605323), "created"});
  cases.push_back({"created feb 30", with("created", "2026-02-30T00:00:00Z"), "created"});
  cases.push_back({"updated hour 24", with("updated", "2026-12-07T24:00:00Z"), "updated"});
  cases.push_back({"updated null", with("updated", nullptr), "updated"});
  cases.push_back({"metadata array", with("metadata", nlohmann::json::array()), "metadata"});
  cases.push_back({"metadata too big", with("metadata", {{"blob", std::string(16 * 1024, 'm')}}), "metadata"});
  nlohmann::json deep = nlohmann::json::object();
  for (int i = 0; i < 40; ++i) deep = nlohmann::json{{"k", std::move(deep)}};
  cases.push_back({"metadata too deep", with("metadata", deep), "metadata"});
  cases.push_back({"metadata not utf-8", with("metadata", {{"k", "\xc3"}}), "metadata"});

  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    const Refusal r = refuse(c.j);
    EXPECT_EQ(r.field, c.field) << r.why;
  }
}

TEST(UcxiDecision, Bounds) {
  nlohmann::json j = good_record();
  j["id"] = std::string(128, 'i');
  j["title"] = std::string(256, 't');
  j["summary"] = std::string(8192, 's');
  j["author"] = {{"agent", std::string(128, 'a')}, {"role", std::string(128, 'r')}};
  j["citations"] = std::vector<std::string>(64, "ucxl://a:r@p:t/*~1/x");
  j["metadata"] = {{"blob", std::string(16 * 1024 - 20, 'm')}};
  const auto d = parse_decision(j, nullptr, nullptr);
  ASSERT_TRUE(d.has_value());
  // The longest record still has an address that parses.
  EXPECT_TRUE(chorus::ucxl::parse(decision_address(*d).to_string()).has_value());
  // And the longest record's text is well under the text limit.
  EXPECT_LT(j.dump().size(), kDecisionMaxTextBytes);
}

TEST(UcxiDecision, Timestamps) {
  for (const char *ok : {"2026-12-07T01:02:03Z", "2026-12-07t01:02:03z", "2024-02-29T23:59:59.999999Z",
                         "2000-02-29T00:00:00Z", "2016-12-31T23:59:60Z", "0001-01-01T00:00:00.0Z"}) {
    EXPECT_TRUE(is_rfc3339_utc(ok)) << ok;
  }
  for (const char *bad : {"", "2026-12-07T01:02:03", "2026-12-07 01:02:03Z", "2026-12-07T01:02:03.Z",
                          "2026-13-07T01:02:03Z", "2026-00-07T01:02:03Z", "2026-12-00T01:02:03Z",
                          "2026-12-32T01:02:03Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
                          "2026-12-07T01:60:03Z", "2026-12-07T01:02:61Z", "2026-12-07T01:02:03+00:00",
                          "2026-12-07T01:02:03ZZ", "+026-12-07T01:02:03Z", "2026-12-07T01:02:03.12aZ"}) {
    EXPECT_FALSE(is_rfc3339_utc(bad)) << bad;
  }
}

TEST(UcxiDecision, FromText) {
  std::string field, why;
  EXPECT_TRUE(parse_decision_text(good_record().dump(), &field, &why).has_value()) << why;
  EXPECT_FALSE(parse_decision_text("{\"id\": ", &field, &why).has_value());
  EXPECT_EQ(field, "decision");
  EXPECT_FALSE(parse_decision_text("", &field, &why).has_value());
  EXPECT_EQ(field, "decision");
  EXPECT_FALSE(parse_decision_text(std::string(kDecisionMaxTextBytes + 1, ' '), &field, &why).has_value());
  EXPECT_EQ(field, "decision");
  // Deep nesting in a member is refused without recursion trouble.
  nlohmann::json base = good_record();
  base.erase("metadata");
  std::string deep = base.dump();
  deep.pop_back();
  deep += ",\"metadata\":{\"k\":" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  EXPECT_FALSE(parse_decision_text(deep, &field, &why).has_value());
  EXPECT_EQ(field, "metadata");
}

TEST(UcxiDecision, Announcement) {
  const auto d = parse_decision(good_record(), nullptr, nullptr);
  ASSERT_TRUE(d.has_value());
  const std::string sha(64, 'a');
  const nlohmann::json a = decision_announcement(
      *d, "ucxl://claude:architect@chorus:issue-18/*~2/decisions/adr-0007.cache_policy.json", sha);
  EXPECT_EQ(a, (nlohmann::json{
                   {"address", "ucxl://claude:architect@chorus:issue-18/*~2/decisions/adr-0007.cache_policy.json"},
                   {"id", "adr-0007.cache_policy"},
                   {"outcome", "approval"},
                   {"sha256", sha},
                   {"author", {{"agent", "claude"}, {"role", "architect"}}}}));
  EXPECT_EQ(kDecisionPublishedType, "decision_published");
}

}  // namespace

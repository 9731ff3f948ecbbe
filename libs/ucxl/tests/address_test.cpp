// Table tests of UCXL addresses: the valid and invalid examples of the UCXL fact sheet
// (docs/protocols.md, UCXL), every temporal token, an error in every field, round-trips through the
// text and the JSON form, and wildcard matching.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ucxl/address.hpp"

namespace {

using chorus::ucxl::Address;
using chorus::ucxl::Direction;
using chorus::ucxl::from_json;
using chorus::ucxl::kMaxAddressBytes;
using chorus::ucxl::matches;
using chorus::ucxl::parse;
using chorus::ucxl::ParseError;
using chorus::ucxl::TemporalSegment;
using chorus::ucxl::TemporalType;

struct ValidCase {
  std::string text;
  std::string agent, role, project, task;
  TemporalSegment temporal;
  std::string path;
  std::string canonical;  // to_string()
};

const TemporalSegment kLatest{TemporalType::kLatest, Direction::kNone, 0};
const TemporalSegment kAny{TemporalType::kAny, Direction::kNone, 0};
TemporalSegment specific(uint64_t n) { return {TemporalType::kSpecific, Direction::kNone, n}; }
TemporalSegment back(uint64_t n) { return {TemporalType::kRelative, Direction::kBackward, n}; }
TemporalSegment forward(uint64_t n) { return {TemporalType::kRelative, Direction::kForward, n}; }

const std::vector<ValidCase> &valid_cases() {
  static const std::vector<ValidCase> cases = {
      // The fact sheet's examples.
      {"ucxl://gpt4:architect@chorus:implement-auth/*^/src/auth.go", "gpt4", "architect", "chorus", "implement-auth",
       kLatest, "src/auth.go", "ucxl://gpt4:architect@chorus:implement-auth/*^/src/auth.go"},
      {"ucxl://any:any@bzzz:any/*~/docs", "any", "any", "bzzz", "any", kAny, "docs", "ucxl://any:any@bzzz:any/*~/docs"},
      {"ucxl://claude:reviewer@CHORUS:task-1/*~3/notes/review.md", "claude", "reviewer", "CHORUS", "task-1",
       specific(3), "notes/review.md", "ucxl://claude:reviewer@CHORUS:task-1/*~3/notes/review.md"},
      {"ucxl://a:b@c:d/~~2/x", "a", "b", "c", "d", back(2), "x", "ucxl://a:b@c:d/~~2/x"},
      {"ucxl://a:b@c:d/^^1/x", "a", "b", "c", "d", forward(1), "x", "ucxl://a:b@c:d/^^1/x"},
      // No path, and an empty one after the temporal segment.
      {"ucxl://a:r@p:t/*^", "a", "r", "p", "t", kLatest, "", "ucxl://a:r@p:t/*^"},
      {"ucxl://a:r@p:t/*^/", "a", "r", "p", "t", kLatest, "", "ucxl://a:r@p:t/*^"},
      // A trailing '/' is kept; dots are names, not directory steps; '//' keeps the extra '/'.
      {"ucxl://a:r@p:t/*~/docs/", "a", "r", "p", "t", kAny, "docs/", "ucxl://a:r@p:t/*~/docs/"},
      {"ucxl://a:r@p:t/*^/../x/./y", "a", "r", "p", "t", kLatest, "../x/./y", "ucxl://a:r@p:t/*^/../x/./y"},
      {"ucxl://a:r@p:t/*^//x", "a", "r", "p", "t", kLatest, "/x", "ucxl://a:r@p:t/*^//x"},
      // Every character of the component and path classes.
      {"ucxl://AZaz09_-:r_-9@P-1:T_2/*~1000000000/A-Z_a.z/0-9", "AZaz09_-", "r_-9", "P-1", "T_2",
       specific(1000000000), "A-Z_a.z/0-9", "ucxl://AZaz09_-:r_-9@P-1:T_2/*~1000000000/A-Z_a.z/0-9"},
      // Counts: the bounds and every token with a count.
      {"ucxl://a:r@p:t/*~1/x", "a", "r", "p", "t", specific(1), "x", "ucxl://a:r@p:t/*~1/x"},
      {"ucxl://a:r@p:t/~~1000000000", "a", "r", "p", "t", back(1000000000), "", "ucxl://a:r@p:t/~~1000000000"},
      {"ucxl://a:r@p:t/^^42/y", "a", "r", "p", "t", forward(42), "y", "ucxl://a:r@p:t/^^42/y"},
      // Wildcards everywhere.
      {"ucxl://any:any@any:any/*^", "any", "any", "any", "any", kLatest, "", "ucxl://any:any@any:any/*^"},
  };
  return cases;
}

TEST(UcxlAddress, ValidTable) {
  for (const ValidCase &c : valid_cases()) {
    SCOPED_TRACE(c.text);
    ParseError err;
    const auto a = parse(c.text, &err);
    ASSERT_TRUE(a.has_value()) << err.what();
    EXPECT_EQ(a->agent, c.agent);
    EXPECT_EQ(a->role, c.role);
    EXPECT_EQ(a->project, c.project);
    EXPECT_EQ(a->task, c.task);
    EXPECT_EQ(a->temporal, c.temporal);
    EXPECT_EQ(a->path, c.path);
    EXPECT_EQ(a->raw, c.text);
    EXPECT_EQ(a->to_string(), c.canonical);
    // Round trip through the text form.
    const auto again = parse(a->to_string());
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *a);
    EXPECT_EQ(again->to_string(), c.canonical);
    // Round trip through the JSON form.
    ParseError jerr;
    const auto from = from_json(a->to_json(), &jerr);
    ASSERT_TRUE(from.has_value()) << jerr.what();
    EXPECT_EQ(*from, *a);
    EXPECT_EQ(from->raw, c.canonical);
  }
}

TEST(UcxlAddress, EveryTemporalToken) {
  struct Token {
    std::string text;
    TemporalSegment segment;
    std::string json;  // the temporal_segment object
  };
  const std::vector<Token> tokens = {
      {"*^", kLatest, R"({"type":"latest"})"},
      {"*~", kAny, R"({"type":"any"})"},
      {"*~7", specific(7), R"({"count":7,"type":"specific"})"},
      {"~~2", back(2), R"({"count":2,"direction":"backward","type":"relative"})"},
      {"^^3", forward(3), R"({"count":3,"direction":"forward","type":"relative"})"},
  };
  for (const Token &t : tokens) {
    SCOPED_TRACE(t.text);
    EXPECT_EQ(t.segment.text(), t.text);
    const auto a = parse("ucxl://a:r@p:t/" + t.text + "/f.md");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->temporal, t.segment);
    EXPECT_EQ(a->to_json()["temporal_segment"].dump(), t.json);
  }
}

struct InvalidCase {
  std::string text;
  std::string field;
  std::string message_part;  // a fragment the message must contain
};

TEST(UcxlAddress, InvalidTable) {
  const std::vector<InvalidCase> cases = {
      // The fact sheet's examples.
      {"http://a:b@c:d/*^/x", "address", "must start with 'ucxl://'"},
      {"ucxl://a@c:d/*^/x", "address", "between agent and role"},
      {"ucxl://a:b@c/*^/x", "address", "between project and task"},
      {"ucxl://a!:b@c:d/*^/x", "agent", "'!'"},
      {"ucxl://a:b@c:d/*x/p", "temporal_segment", "'*x' is not a temporal segment"},
      {"ucxl://a:b@c:d/*^/p q", "path", "' '"},
      {"ucxl://a:b@c:d/*~0/p", "temporal_segment", "at least 1"},
      {"ucxl://a:b@c:d/~~/p", "temporal_segment", "lacks its count"},
      {"", "address", "cannot be empty"},
      {"ucxl://a:b@c:d/*^/" + std::string(3 * 1024, 'x'), "address", "at most 2048"},
      // The scheme, exactly.
      {"UCXL://a:b@c:d/*^/x", "address", "ucxl://"},
      {"ucxl:/a:b@c:d/*^/x", "address", "ucxl://"},
      {"ucxl://", "address", "'@'"},
      {"ucxl://a:b/*^/x", "address", "'@'"},
      // Every component: empty, a byte outside the class.
      {"ucxl://:b@c:d/*^/x", "agent", "cannot be empty"},
      {"ucxl://a:@c:d/*^/x", "role", "cannot be empty"},
      {"ucxl://a:b@:d/*^/x", "project", "cannot be empty"},
      {"ucxl://a:b@c:/*^/x", "task", "cannot be empty"},
      {"ucxl://a.b:r@c:d/*^/x", "agent", "'.'"},
      {"ucxl://a:b:c@c:d/*^/x", "role", "':'"},
      {"ucxl://a:b@c@d:e/*^/x", "project", "'@'"},
      {"ucxl://a:b@c:d:e/*^/x", "task", "':'"},
      {"ucxl://a:r\tx@c:d/*^/x", "role", "byte 0x09"},
      {"ucxl://a:b@pro ject:d/*^/x", "project", "' '"},
      // Non-ASCII bytes anywhere (UTF-8 or not).
      {"ucxl://\xc3\xa4:b@c:d/*^/x", "address", "not ASCII"},
      {"ucxl://a:b@c:d/*^/\xff", "address", "not ASCII"},
      // The temporal segment: required, each token exactly.
      {"ucxl://a:b@c:d", "temporal_segment", "missing"},
      {"ucxl://a:b@c:d/", "temporal_segment", "missing"},
      {"ucxl://a:b@c:d//x", "temporal_segment", "missing"},
      {"ucxl://a:r@p:t/path", "temporal_segment", "'path' is not a temporal segment"},
      {"ucxl://a:b@c:d/*", "temporal_segment", "not a temporal segment"},
      {"ucxl://a:b@c:d/^", "temporal_segment", "not a temporal segment"},
      {"ucxl://a:b@c:d/*^1/x", "temporal_segment", "not a temporal segment"},
      {"ucxl://a:b@c:d/~1/x", "temporal_segment", "not a temporal segment"},
      {"ucxl://a:b@c:d/^^/x", "temporal_segment", "lacks its count"},
      {"ucxl://a:b@c:d/~~0/x", "temporal_segment", "at least 1"},
      {"ucxl://a:b@c:d/^^0/x", "temporal_segment", "at least 1"},
      {"ucxl://a:b@c:d/*~01/x", "temporal_segment", "leading zero"},
      {"ucxl://a:b@c:d/~~+1/x", "temporal_segment", "not a decimal number"},
      {"ucxl://a:b@c:d/*~-1/x", "temporal_segment", "not a decimal number"},
      {"ucxl://a:b@c:d/*~1x/x", "temporal_segment", "not a decimal number"},
      {"ucxl://a:b@c:d/*~1000000001/x", "temporal_segment", "exceeds 1000000000"},
      {"ucxl://a:b@c:d/*~99999999999999999999999/x", "temporal_segment", "exceeds 1000000000"},
      {"ucxl://a:b@c:d/~~~2/x", "temporal_segment", "not a decimal number"},
      // The path class.
      {"ucxl://a:b@c:d/*^/a?b", "path", "'?'"},
      {"ucxl://a:b@c:d/*^/a%20b", "path", "'%'"},
      {"ucxl://a:b@c:d/*^/a#b", "path", "'#'"},
      {"ucxl://a:b@c:d/*^/a\\b", "path", "'\\'"},
      {"ucxl://a:b@c:d/*^/a\nb", "path", "byte 0x0a"},
  };
  for (const InvalidCase &c : cases) {
    SCOPED_TRACE(c.text.substr(0, 80));
    ParseError err;
    EXPECT_FALSE(parse(c.text, &err).has_value());
    EXPECT_EQ(err.field, c.field);
    EXPECT_NE(err.message.find(c.message_part), std::string::npos) << err.message;
    // CHORUS's message format.
    EXPECT_EQ(err.what(), "UCXL address validation error in " + c.field + ": " + err.message + " (address: " +
                              err.raw + ")");
    // No error pointer is fine too.
    EXPECT_FALSE(parse(c.text).has_value());
  }
}

TEST(UcxlAddress, ErrorRawIsPrintableAndBounded) {
  ParseError err;
  ASSERT_FALSE(parse("ucxl://a:b@c:d/*^/p q", &err).has_value());
  EXPECT_EQ(err.raw, "ucxl://a:b@c:d/*^/p q");
  EXPECT_EQ(err.what(),
            "UCXL address validation error in path: path contains ' ' (allowed: letters, digits, '_', '-', '/', '.') "
            "(address: ucxl://a:b@c:d/*^/p q)");

  // Bytes outside printable ASCII are shown escaped, so the message is always valid UTF-8.
  ASSERT_FALSE(parse(std::string("ucxl://a:b@c:d/*^/\xff\n", 20), &err).has_value());
  EXPECT_EQ(err.raw, "ucxl://a:b@c:d/*^/\\xff\\x0a");

  // An over-long address is repeated only in part.
  const std::string huge = "ucxl://a:b@c:d/*^/" + std::string(5000, 'x');
  ASSERT_FALSE(parse(huge, &err).has_value());
  EXPECT_LT(err.raw.size(), 100u);
  EXPECT_NE(err.raw.find("(5018 bytes)"), std::string::npos) << err.raw;
}

TEST(UcxlAddress, LengthLimitIsInclusive) {
  const std::string prefix = "ucxl://a:b@c:d/*^/";
  const std::string longest = prefix + std::string(kMaxAddressBytes - prefix.size(), 'x');
  ASSERT_EQ(longest.size(), kMaxAddressBytes);
  EXPECT_TRUE(parse(longest).has_value());
  ParseError err;
  EXPECT_FALSE(parse(longest + "x", &err).has_value());
  EXPECT_EQ(err.field, "address");
}

TEST(UcxlAddress, EmbeddedNulIsRefused) {
  ParseError err;
  EXPECT_FALSE(parse(std::string("ucxl://a:b@c:d/*^/x\0y", 21), &err).has_value());
  EXPECT_EQ(err.field, "path");
}

TEST(UcxlAddress, SeriesAndWithTemporal) {
  const auto a = parse("ucxl://claude:reviewer@CHORUS:task-1/*~3/notes/review.md");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->series(), "ucxl://claude:reviewer@CHORUS:task-1/notes/review.md");
  const auto b = parse("ucxl://claude:reviewer@CHORUS:task-1/~~1/notes/review.md");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->series(), b->series());  // every version shares the series
  EXPECT_EQ(parse("ucxl://a:r@p:t/*^")->series(), "ucxl://a:r@p:t/");

  const Address latest = a->with_temporal(kLatest);
  EXPECT_EQ(latest.to_string(), "ucxl://claude:reviewer@CHORUS:task-1/*^/notes/review.md");
  EXPECT_EQ(latest.raw, "");
  EXPECT_EQ(latest.path, a->path);
  EXPECT_NE(latest, *a);
  EXPECT_EQ(latest.with_temporal(specific(3)), *a);
}

TEST(UcxlAddress, HasWildcards) {
  EXPECT_FALSE(parse("ucxl://a:r@p:t/*^/x")->has_wildcards());
  EXPECT_TRUE(parse("ucxl://any:r@p:t/*^/x")->has_wildcards());
  EXPECT_TRUE(parse("ucxl://a:any@p:t/*^/x")->has_wildcards());
  EXPECT_TRUE(parse("ucxl://a:r@any:t/*^/x")->has_wildcards());
  EXPECT_TRUE(parse("ucxl://a:r@p:any/*^/x")->has_wildcards());
  // Only the exact word is the wildcard; the path never is.
  EXPECT_FALSE(parse("ucxl://anyone:Any@p:t/*^/any")->has_wildcards());
}

TEST(UcxlAddress, JsonForm) {
  const auto a = parse("ucxl://a:b@c:d/~~2/x/y.md");
  ASSERT_TRUE(a.has_value());
  const nlohmann::json expected = nlohmann::json::parse(R"({
      "agent": "a", "role": "b", "project": "c", "task": "d",
      "temporal_segment": {"type": "relative", "direction": "backward", "count": 2},
      "path": "x/y.md", "raw": "ucxl://a:b@c:d/~~2/x/y.md"})");
  EXPECT_EQ(a->to_json(), expected);

  // Built in code: raw is the canonical text; omitempty for direction and count.
  Address built;
  built.agent = "g";
  built.role = "r";
  built.project = "p";
  built.task = "t";
  built.path = "";
  EXPECT_EQ(built.to_json().dump(),
            R"({"agent":"g","path":"","project":"p","raw":"ucxl://g:r@p:t/*^","role":"r","task":"t",)"
            R"("temporal_segment":{"type":"latest"}})");

  // A non-canonical raw survives in the JSON form, and from_json ignores it.
  const auto slash = parse("ucxl://a:r@p:t/*^/");
  EXPECT_EQ(slash->to_json()["raw"], "ucxl://a:r@p:t/*^/");
  nlohmann::json j = slash->to_json();
  j["raw"] = "something else entirely";
  const auto back_again = from_json(j);
  ASSERT_TRUE(back_again.has_value());
  EXPECT_EQ(*back_again, *slash);
  EXPECT_EQ(back_again->raw, "ucxl://a:r@p:t/*^");
}

TEST(UcxlAddress, FromJsonErrors) {
  const nlohmann::json good = parse("ucxl://a:b@c:d/*~4/x")->to_json();
  struct Case {
    std::string name;
    nlohmann::json j;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({"not an object", nlohmann::json::array(), "address"});
  for (const char *member : {"agent", "role", "project", "task", "path"}) {
    nlohmann::json missing = good;
    missing.erase(member);
    cases.push_back({std::string("missing ") + member, missing, member});
    nlohmann::json typed = good;
    typed[member] = 5;
    cases.push_back({std::string("number ") + member, typed, member});
  }
  for (const char *member : {"agent", "role", "project", "task"}) {
    nlohmann::json bad = good;
    bad[member] = "a b";
    cases.push_back({std::string("bad ") + member, bad, member});
    bad[member] = "";
    cases.push_back({std::string("empty ") + member, bad, member});
  }
  nlohmann::json bad_path = good;
  bad_path["path"] = "a?b";
  cases.push_back({"bad path", bad_path, "path"});
  auto temporal = [&](nlohmann::json ts) {
    nlohmann::json j = good;
    j["temporal_segment"] = std::move(ts);
    return j;
  };
  cases.push_back({"no temporal", [&] { nlohmann::json j = good; j.erase("temporal_segment"); return j; }(),
                   "temporal_segment"});
  cases.push_back({"temporal string", temporal("*^"), "temporal_segment"});
  cases.push_back({"unknown type", temporal({{"type", "newest"}}), "temporal_segment"});
  cases.push_back({"type number", temporal({{"type", 1}}), "temporal_segment"});
  cases.push_back({"specific without count", temporal({{"type", "specific"}}), "temporal_segment"});
  cases.push_back({"specific count 0", temporal({{"type", "specific"}, {"count", 0}}), "temporal_segment"});
  cases.push_back({"specific count -1", temporal({{"type", "specific"}, {"count", -1}}), "temporal_segment"});
  cases.push_back({"specific count 1.5", temporal({{"type", "specific"}, {"count", 1.5}}), "temporal_segment"});
  cases.push_back({"specific count huge", temporal({{"type", "specific"}, {"count", 1000000001}}), "temporal_segment"});
  cases.push_back({"specific with direction", temporal({{"type", "specific"}, {"count", 1}, {"direction", "forward"}}),
                   "temporal_segment"});
  cases.push_back({"relative without direction", temporal({{"type", "relative"}, {"count", 1}}), "temporal_segment"});
  cases.push_back({"relative sideways", temporal({{"type", "relative"}, {"count", 1}, {"direction", "sideways"}}),
                   "temporal_segment"});
  cases.push_back({"latest with count", temporal({{"type", "latest"}, {"count", 2}}), "temporal_segment"});
  cases.push_back({"any with direction", temporal({{"type", "any"}, {"direction", "forward"}}), "temporal_segment"});
  nlohmann::json long_path = good;
  long_path["path"] = std::string(kMaxAddressBytes, 'x');
  cases.push_back({"too long", long_path, "address"});

  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    ParseError err;
    EXPECT_FALSE(from_json(c.j, &err).has_value());
    EXPECT_EQ(err.field, c.field) << err.what();
  }
  // The good one parses, and an explicit zero count on latest is the omitted one.
  EXPECT_TRUE(from_json(good).has_value());
  EXPECT_TRUE(from_json(temporal({{"type", "latest"}, {"count", 0}})).has_value());
}

TEST(UcxlAddress, Matches) {
  auto m = [](const std::string &pattern, const std::string &candidate) {
    const auto p = parse(pattern);
    const auto c = parse(candidate);
    EXPECT_TRUE(p.has_value()) << pattern;
    EXPECT_TRUE(c.has_value()) << candidate;
    return matches(*p, *c);
  };
  // Components: equal, or "any" in the pattern.
  EXPECT_TRUE(m("ucxl://a:r@p:t/*^/x", "ucxl://a:r@p:t/*^/x"));
  EXPECT_TRUE(m("ucxl://any:any@bzzz:any/*~/docs", "ucxl://gpt4:architect@bzzz:task-9/*^/docs/a.md"));
  EXPECT_FALSE(m("ucxl://any:any@bzzz:any/*~/docs", "ucxl://gpt4:architect@chorus:task-9/*^/docs/a.md"));
  EXPECT_TRUE(m("ucxl://any:any@any:any/*^", "ucxl://g:r@p:t/*^/anything/at/all"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^", "ucxl://b:r@p:t/*^"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^", "ucxl://a:s@p:t/*^"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^", "ucxl://a:r@q:t/*^"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^", "ucxl://a:r@p:u/*^"));
  // Case matters.
  EXPECT_FALSE(m("ucxl://a:r@chorus:t/*^", "ucxl://a:r@CHORUS:t/*^"));
  // A candidate's own "any" matches only "any".
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^", "ucxl://any:r@p:t/*^"));
  EXPECT_TRUE(m("ucxl://any:r@p:t/*^", "ucxl://any:r@p:t/*^"));
  // Paths: empty, equal, or a prefix at a '/' boundary.
  EXPECT_TRUE(m("ucxl://a:r@p:t/*^/docs", "ucxl://a:r@p:t/*^/docs"));
  EXPECT_TRUE(m("ucxl://a:r@p:t/*^/docs", "ucxl://a:r@p:t/*^/docs/a.md"));
  EXPECT_TRUE(m("ucxl://a:r@p:t/*^/docs/", "ucxl://a:r@p:t/*^/docs/a.md"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^/docs", "ucxl://a:r@p:t/*^/docsx"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^/docs/a.md", "ucxl://a:r@p:t/*^/docs"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^/docs/", "ucxl://a:r@p:t/*^/docs"));
  EXPECT_FALSE(m("ucxl://a:r@p:t/*^/x", "ucxl://a:r@p:t/*^"));
  // Temporal segments are not compared.
  EXPECT_TRUE(m("ucxl://a:r@p:t/*^/x", "ucxl://a:r@p:t/*~9/x"));
  EXPECT_TRUE(m("ucxl://a:r@p:t/~~3/x", "ucxl://a:r@p:t/^^1/x"));
}

}  // namespace

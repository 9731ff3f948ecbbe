// SHHH engine (host/src/shhh/): each built-in rule family found and not over-found, overlaps,
// offsets into the original input, hashes, JSON, custom rules, the sink.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "shhh/sentinel.hpp"

namespace {

using namespace chorus::shhh;

std::unique_ptr<Sentinel> make(Options o = {}) {
  std::string error;
  auto s = Sentinel::create(o, &error);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

const Sentinel& builtin() {
  static const std::unique_ptr<Sentinel> s = make();
  return *s;
}

Result text(std::string_view t) { return builtin().redact_text(t, Channel::kLog, "test"); }

std::vector<std::string> rule_names(const Result& r) {
  std::vector<std::string> names;
  for (const auto& f : r.findings) names.push_back(f.rule);
  return names;
}

// ---- families, positive -----------------------------------------------------------------------

struct Case {
  std::string input;
  std::string expected;
  std::string rule;
  std::string secret;
};

class Positive : public ::testing::TestWithParam<Case> {};

TEST_P(Positive, RedactsTheSecretOnly) {
  const Case& c = GetParam();
  Result r = text(c.input);
  EXPECT_EQ(r.text, c.expected);
  ASSERT_EQ(r.findings.size(), 1u) << r.text;
  const Finding& f = r.findings[0];
  EXPECT_EQ(f.rule, c.rule);
  EXPECT_EQ(c.input.substr(f.offset, f.length), c.secret);
  EXPECT_EQ(f.json_path, "");
  EXPECT_EQ(f.sha256_hex.size(), 64u);
}

const std::string kGh = "ghp_" + std::string(36, 'a') + "Z9";
const std::string kOpenAi = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXyZ0_-aB";
const std::string kPem =
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----";

INSTANTIATE_TEST_SUITE_P(
    Families, Positive,
    ::testing::Values(
        Case{"GET /x Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig-_x ok",
             "GET /x Authorization: Bearer [REDACTED] ok", "bearer_token", "eyJhbGciOiJIUzI1NiJ9.e30.sig-_x"},
        Case{"auth: bearer abcdef123456", "auth: bearer [REDACTED]", "bearer_token", "abcdef123456"},
        Case{"calling with api_key=Zx81hfa9q2LmN0 now", "calling with api_key=[REDACTED] now", "api_key", "Zx81hfa9q2LmN0"},
        Case{"{\"api_key\": \"Zx81hfa9q2LmN0\"}", "{\"api_key\": \"[REDACTED]\"}", "api_key", "Zx81hfa9q2LmN0"},
        Case{"X-Api-Key: 0123456789abcdef", "X-Api-Key: [REDACTED]", "api_key", "0123456789abcdef"},
        Case{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
             "aws_secret_access_key = [REDACTED]", "api_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        Case{"key id AKIAIOSFODNN7EXAMPLE used", "key id [REDACTED] used", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"},
        Case{"token " + kGh + " end", "token [REDACTED] end", "github_token", kGh},
        Case{"slack xoxb-1234567890-abcdefghij done", "slack [REDACTED] done", "slack_token", "xoxb-1234567890-abcdefghij"},
        Case{"stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe [REDACTED]", "stripe_secret_key",
             "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
        Case{"?access_token=abc.DEF-123_xyz&x=1", "?access_token=[REDACTED]&x=1", "oauth_token", "abc.DEF-123_xyz"},
        Case{"refresh-token: r1r2r3r4r5r6", "refresh-token: [REDACTED]", "oauth_token", "r1r2r3r4r5r6"},
        Case{"client_secret=\"GOCSPX-abcdefgh1234\"", "client_secret=\"[REDACTED]\"", "oauth_token", "GOCSPX-abcdefgh1234"},
        Case{"google ya29.a0AfH6SMBx1234567890abcdefg here", "google [REDACTED] here", "google_oauth_token",
             "ya29.a0AfH6SMBx1234567890abcdefg"},
        Case{"key:\n" + kPem + "\nafter", "key:\n[REDACTED]\nafter", "pem_private_key", kPem},
        Case{"x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (truncated",
             "x [REDACTED]", "pem_private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (truncated"},
        Case{"OPENAI_KEY " + kOpenAi + ".", "OPENAI_KEY [REDACTED].", "openai_api_key", kOpenAi},
        Case{"key sk-svcacct-AbCdEfGhIjKlMnOpQrStUvWx12", "key [REDACTED]", "openai_api_key",
             "sk-svcacct-AbCdEfGhIjKlMnOpQrStUvWx12"},
        Case{"db_password=hunter22 user=bob", "db_password=[REDACTED] user=bob", "password", "hunter22"},
        Case{"connecting to postgres://app:s3cr3t@db:5432/x", "connecting to postgres://app:[REDACTED]@db:5432/x",
             "url_credentials", "s3cr3t"}));

// ---- negatives: ordinary log text stays as it is ----------------------------------------------

TEST(ShhhNegative, OrdinaryLogTextIsNotRedacted) {
  const std::vector<std::string> lines = {
      "peer 12D3KooWGzh3QpXnA8u5jEHv4MPCK1ycWyF7uX6cE6JxJzq9wVvB connected",
      "content sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 stored",
      "ucxl://agent-7:dev@chorus:issue-19/*^/notes/design.md put, version 3",
      "listening on /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGzh3QpXnA8u5jEHv4MPCK1ycWyF7uX6cE6JxJzq9wVvB",
      "GET http://localhost:8080/api/v1/health 200 in 1.2 ms",
      "the bearer token was rejected: expired",
      "api key missing; set api_key in the config",
      "task-runner finished disk-usage check",
      "password authentication failed for user bob",
      "token usage: prompt 120, completion 48",
      "access_token expired, refreshing",
      "-----BEGIN PUBLIC KEY----- is not a secret",
      "key=value pairs only",
      "see https://github.com/chorus/agent and ghp_short",
      "[REDACTED] Bearer [REDACTED] api_key=[REDACTED] password=[REDACTED] postgres://a:[REDACTED]@h",
  };
  for (const auto& line : lines) {
    Result r = text(line);
    EXPECT_EQ(r.text, line);
    EXPECT_TRUE(r.findings.empty()) << line << " -> " << r.findings[0].rule;
  }
}

TEST(ShhhUrl, OnlyTheSchemeUcxlIsExempt) {
  EXPECT_TRUE(text("UCXL://agent:role@p:t/*^/x").findings.empty());
  EXPECT_FALSE(builtin().may_contain_secret("get ucxl://agent:role@p:t/*^/x ok"));
  for (const std::string in : {"a.ucxl://u:pw1@h", "xucxl://u:pw1@h", "see ucxl://a:b@c and https://u:pw1@h"}) {
    Result r = text(in);
    ASSERT_EQ(r.findings.size(), 1u) << in;
    EXPECT_EQ(in.substr(r.findings[0].offset, r.findings[0].length), "pw1");
  }
}

TEST(ShhhNegative, PrefilterSkipsLinesWithoutTriggers) {
  EXPECT_FALSE(builtin().may_contain_secret("peer 12D3KooWGzh3 connected in 3 ms"));
  EXPECT_TRUE(builtin().may_contain_secret("Authorization: BEARER x"));
  EXPECT_TRUE(builtin().may_contain_secret("-----begin"));
}

// ---- overlaps and offsets ---------------------------------------------------------------------

TEST(ShhhOverlap, SameBytesFromTwoRulesAreOneFinding) {
  Result r = text("Authorization: Bearer " + kOpenAi);
  EXPECT_EQ(r.text, "Authorization: Bearer [REDACTED]");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "openai_api_key");  // critical beats high
}

TEST(ShhhOverlap, OverlappingRangesAreReplacedOnceAsTheirUnion) {
  // api_key's value starts at "sk-..." and runs to the end; openai_api_key covers the same start.
  // A custom rule covering a range that straddles both ends makes a true overlap.
  Options o;
  o.custom_rules.push_back({"straddle", "=sk-proj", Severity::kLow, {}});
  auto s = make(o);
  const std::string in = "api_key=" + kOpenAi + " tail";
  Result r = s->redact_text(in, Channel::kLog, "t");
  EXPECT_EQ(r.text, "api_key[REDACTED] tail");
  ASSERT_EQ(r.findings.size(), 2u);  // api_key and openai_api_key found the same bytes: one finding
  EXPECT_EQ(r.findings[0].rule, "straddle");
  EXPECT_EQ(r.findings[0].offset, 7u);
  EXPECT_EQ(r.findings[1].rule, "openai_api_key");
  EXPECT_EQ(r.findings[1].offset, 8u);
  EXPECT_EQ(r.findings[1].length, kOpenAi.size());
}

TEST(ShhhOffsets, SeveralSecretsInInputOrderWithOriginalOffsets) {
  const std::string in = "a AKIAIOSFODNN7EXAMPLE b Bearer tok123456789 c " + kGh;
  Result r = text(in);
  EXPECT_EQ(r.text, "a [REDACTED] b Bearer [REDACTED] c [REDACTED]");
  ASSERT_EQ(r.findings.size(), 3u);
  EXPECT_EQ(rule_names(r), (std::vector<std::string>{"aws_access_key_id", "bearer_token", "github_token"}));
  EXPECT_EQ(r.findings[0].offset, 2u);
  EXPECT_EQ(r.findings[1].offset, in.find("tok123"));
  EXPECT_EQ(r.findings[2].offset, in.find("ghp_"));
  for (const auto& f : r.findings) EXPECT_EQ(f.severity == Severity::kLow, false);
}

TEST(ShhhHash, Sha256OfTheSecretBytes) {
  Options o;
  o.use_builtin_rules = false;
  o.custom_rules.push_back({"abc", "abc", Severity::kMedium, {"t"}});
  auto s = make(o);
  Result r = s->redact_text("xabcx", Channel::kPubsub, "src");
  EXPECT_EQ(r.text, "x[REDACTED]x");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].sha256_hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(r.findings[0].severity, Severity::kMedium);
  EXPECT_EQ(r.findings[0].tags, std::vector<std::string>{"t"});
}

TEST(ShhhIdempotent, RedactingTwiceFindsNothingNew) {
  const std::string in = "Bearer abcdefgh123 " + kPem + " api_key=\"" + kOpenAi + "\" " + kGh +
                         " postgres://u:pw1@h password: hunter22";
  Result once = text(in);
  EXPECT_GE(once.findings.size(), 5u);
  Result twice = text(once.text);
  EXPECT_EQ(twice.text, once.text);
  EXPECT_TRUE(twice.findings.empty()) << twice.findings[0].rule;
}

TEST(ShhhText, InvalidUtf8AroundASecretDoesNotHideIt) {
  Result r = text(std::string("\xff\xfe Bearer abcdefgh123 \xc3"));
  EXPECT_EQ(r.text, std::string("\xff\xfe Bearer [REDACTED] \xc3"));
}

// ---- JSON -------------------------------------------------------------------------------------

Result json(std::string_view t) { return builtin().redact_json(t, Channel::kPubsub, "gossip"); }

TEST(ShhhJson, NestedStringsAndArrays) {
  Result r = json(R"({"a":{"b":["x","Bearer abcdefgh123"]},"n":1,"ok":true,"msg":"hi"})");
  EXPECT_EQ(r.text, R"({"a":{"b":["x","Bearer [REDACTED]"]},"n":1,"ok":true,"msg":"hi"})");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path, "/a/b/1");
  EXPECT_EQ(r.findings[0].offset, 7u);  // within the string value
}

TEST(ShhhJson, SensitiveKeysAreRedactedWhole) {
  Result r = json(R"({"Password":"hunter2","API-KEY":"x","token":"","nested":[{"client_secret":"abc"}],"secret":5})");
  EXPECT_EQ(r.text,
            R"({"Password":"[REDACTED]","API-KEY":"[REDACTED]","token":"","nested":[{"client_secret":"[REDACTED]"}],"secret":5})");
  ASSERT_EQ(r.findings.size(), 3u);
  EXPECT_EQ(r.findings[0].rule, "sensitive_key");
  EXPECT_EQ(r.findings[0].severity, Severity::kHigh);
  EXPECT_EQ(r.findings[0].json_path, "/Password");
  EXPECT_EQ(r.findings[0].length, 7u);
  EXPECT_EQ(r.findings[2].json_path, "/nested/0/client_secret");
}

TEST(ShhhJson, PointerEscapesAndEscapedKeys) {
  Result r = json(R"({"a/b~c":{"p\u0061ssword":"pw"}})");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path, "/a~1b~0c/password");
}

TEST(ShhhJson, NothingFoundKeepsTheInputAsIs) {
  const std::string in = "{ \"n\": 1.50, \"s\": \"hello\" }";
  Result r = json(in);
  EXPECT_EQ(r.text, in);
  EXPECT_TRUE(r.findings.empty());
  const std::string escaped = R"({"s":"line\nbreak"})";
  EXPECT_EQ(json(escaped).text, escaped);
}

TEST(ShhhJson, SensitiveKeyNamesInValuesAreNotKeys) {
  const std::string in = R"({"msg":"512 tokens, password policy, token: none"})";
  Result r = json(in);
  EXPECT_EQ(r.text, in);
  EXPECT_TRUE(r.findings.empty());
  // The same words as member names, spaced and cased differently, are keys.
  Result k = json("{\"msg\":1, \"Refresh-Token\" :\n \"abc\"}");
  EXPECT_EQ(k.text, R"({"msg":1,"Refresh-Token":"[REDACTED]"})");
}

TEST(ShhhJson, CustomRulesApplyToStringValues) {
  Options o;
  o.custom_rules.push_back({"ticket", "TCK-([0-9]{4})", Severity::kLow, {}});
  auto s = make(o);
  Result r = s->redact_json(R"({"a":["TCK-1234","x"],"TCK-9999":1})", Channel::kUcxi, "t");
  EXPECT_EQ(r.text, R"({"a":["TCK-[REDACTED]","x"],"TCK-9999":1})");  // keys are kept
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path, "/a/0");
  EXPECT_EQ(r.findings[0].offset, 4u);
}

TEST(ShhhJson, TrailingTextIsNotJson) {
  Result r = json(R"({"password":"pw"} trailing Bearer abcdefgh123)");
  EXPECT_EQ(r.text, R"({"password":"pw"} trailing Bearer [REDACTED])");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "bearer_token");
}

TEST(ShhhJson, InvalidJsonIsRedactedAsText) {
  Result r = json("{not json Bearer abcdefgh123");
  EXPECT_EQ(r.text, "{not json Bearer [REDACTED]");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path, "");
}

TEST(ShhhJson, OutputIsValidJson) {
  Result r = json(R"({"k":"-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----","z":[1,2]})");
  auto parsed = nlohmann::json::parse(r.text, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << r.text;
  EXPECT_EQ(parsed["k"], "[REDACTED]");
}

TEST(ShhhJson, AnyDepth) {
  constexpr size_t kDepth = 100000;  // the SAX walk does not recurse
  std::string deep(kDepth, '[');
  deep += "\"Bearer abcdefgh123\"";
  deep += std::string(kDepth, ']');
  Result r = json(deep);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path.size(), 2 * kDepth);  // "/0" per level
  EXPECT_EQ(r.text, std::string(kDepth, '[') + "\"Bearer [REDACTED]\"" + std::string(kDepth, ']'));
}

TEST(ShhhJson, ManyMembersIsLinear) {
  // 50 000 members: a DOM with ordered members is quadratic here (seconds); the SAX walk is not.
  std::string in = "{";
  for (int i = 0; i < 50000; ++i) in += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":\"v\"";
  in += ",\"password\":\"pw\"}";
  const auto start = std::chrono::steady_clock::now();
  Result r = json(in);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].json_path, "/password");
  EXPECT_LT(took, std::chrono::seconds(2));  // about 30 ms; generous for sanitizers and a busy machine
}

TEST(ShhhJson, OutputKeepsNumbersAsWrittenAndEscapes) {
  Result r = json("{\"f\":1.50e3,\"big\":123456789012345678901234567890,\"i\":-7,\"u\":18446744073709551615,"
                  "\"s\":\"tab\\t\\u0001 \\u00e9 \\\"q\\\"\",\"token\":\"x\",\"e\":{},\"a\":[],\"n\":null,\"b\":false}");
  EXPECT_EQ(r.text, "{\"f\":1.50e3,\"big\":123456789012345678901234567890,\"i\":-7,\"u\":18446744073709551615,"
                    "\"s\":\"tab\\t\\u0001 \xc3\xa9 \\\"q\\\"\",\"token\":\"[REDACTED]\",\"e\":{},\"a\":[],\"n\":null,\"b\":false}");
}
// ---- custom rules -----------------------------------------------------------------------------

TEST(ShhhCustom, GoodRuleWithGroup) {
  Options o;
  o.custom_rules.push_back({"chorus.internal-id", "internal-id=(ID[0-9]{6})", Severity::kLow, {"internal"}});
  auto s = make(o);
  Result r = s->redact_text("x internal-id=ID123456 y", Channel::kUcxi, "ucxi");
  EXPECT_EQ(r.text, "x internal-id=[REDACTED] y");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "chorus.internal-id");
  EXPECT_EQ(s->rules().size(), builtin_rules().size() + 1);
  EXPECT_FALSE(s->may_contain_secret("internal-id=ID12345"));  // the custom rule's own pattern decides
  EXPECT_TRUE(s->may_contain_secret("internal-id=ID123456"));
}

TEST(ShhhCustom, ManyRulesOnlyTheMatchingOnesFind) {
  Options o;
  o.use_builtin_rules = false;
  for (int i = 0; i < 20; ++i)
    o.custom_rules.push_back({"r" + std::to_string(i), "code" + std::to_string(i) + "=([0-9]+)", Severity::kLow, {}});
  auto s = make(o);
  Result r = s->redact_text("code7=123 code17=9 code3=x", Channel::kLog, "t");
  EXPECT_EQ(r.text, "code7=[REDACTED] code17=[REDACTED] code3=x");
  EXPECT_EQ(rule_names(r), (std::vector<std::string>{"r7", "r17"}));
}

TEST(ShhhCustom, BadRulesAreRefusedWithTheirName) {
  auto refused = [](Rule r) {
    Options o;
    o.custom_rules.push_back(std::move(r));
    std::string error;
    EXPECT_EQ(Sentinel::create(o, &error), nullptr);
    return error;
  };
  std::string e = refused({"broken", "(unclosed", Severity::kHigh, {}});
  EXPECT_EQ(e.rfind("rule 'broken': ", 0), 0u) << e;
  EXPECT_NE(e.find("missing )"), std::string::npos) << e;
  EXPECT_NE(refused({"Bad Name", "x", Severity::kHigh, {}}).find("rule 'Bad Name'"), std::string::npos);
  EXPECT_NE(refused({"", "x", Severity::kHigh, {}}).find("name"), std::string::npos);
  EXPECT_NE(refused({"bearer_token", "x", Severity::kHigh, {}}).find("already taken"), std::string::npos);
  EXPECT_NE(refused({"long", std::string(5000, 'a'), Severity::kHigh, {}}).find("longer than"), std::string::npos);
  EXPECT_NE(refused({"empty", "", Severity::kHigh, {}}).find("empty"), std::string::npos);
  EXPECT_NE(refused({"backref", "(a)\\1", Severity::kHigh, {}}).find("rule 'backref'"), std::string::npos);
}

TEST(ShhhCustom, PatternMatchingEmptyDoesNotStall) {
  Options o;
  o.use_builtin_rules = false;
  o.custom_rules.push_back({"maybe", "x*", Severity::kLow, {}});
  auto s = make(o);
  Result r = s->redact_text("abxxc", Channel::kLog, "t");
  EXPECT_EQ(r.text, "ab[REDACTED]c");
  EXPECT_EQ(r.findings.size(), 1u);
}

// ---- threads ----------------------------------------------------------------------------------

TEST(ShhhThreads, OneSentinelManyThreadsSameAnswers) {
  auto s = make();
  std::atomic<int> sunk{0};
  s->set_sink([&](Channel, std::string_view, const Finding&) { sunk.fetch_add(1); });
  const std::string line = "x Bearer abcdefgh123 y " + kGh + " z";
  const std::string json_in = R"({"password":"pw","m":"AKIAIOSFODNN7EXAMPLE"})";
  const Result want = s->redact_text(line, Channel::kLog, "t");
  const Result want_json = s->redact_json(json_in, Channel::kLog, "t");
  sunk = 0;
  constexpr int kThreads = 4, kRounds = 500;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        if (s->redact_text(line, Channel::kLog, "t").text != want.text) wrong.fetch_add(1);
        if (s->redact_json(json_in, Channel::kPubsub, "t").text != want_json.text) wrong.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(sunk.load(), kThreads * kRounds * 4);  // 2 findings in the line, 2 in the JSON
}

// ---- sink, names ------------------------------------------------------------------------------

TEST(ShhhSink, CalledOncePerFindingWithContext) {
  auto s = make();
  struct Seen {
    Channel channel;
    std::string source, rule;
  };
  std::vector<Seen> seen;
  s->set_sink([&](Channel c, std::string_view src, const Finding& f) { seen.push_back({c, std::string(src), f.rule}); });
  s->redact_text("Bearer abcdefgh123 and AKIAIOSFODNN7EXAMPLE", Channel::kUcxi, "ucxi");
  s->redact_text("nothing here", Channel::kLog, "host");
  s->redact_json(R"({"password":"pw"})", Channel::kPubsub, "gossip");
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].channel, Channel::kUcxi);
  EXPECT_EQ(seen[0].source, "ucxi");
  EXPECT_EQ(seen[0].rule, "bearer_token");
  EXPECT_EQ(seen[1].rule, "aws_access_key_id");
  EXPECT_EQ(seen[2].channel, Channel::kPubsub);
  EXPECT_EQ(seen[2].rule, "sensitive_key");
}

TEST(ShhhNames, SeveritiesAndChannels) {
  for (Severity s : {Severity::kLow, Severity::kMedium, Severity::kHigh, Severity::kCritical})
    EXPECT_EQ(parse_severity(severity_name(s)), s);
  EXPECT_FALSE(parse_severity("severe").has_value());
  EXPECT_EQ(channel_name(Channel::kLog), "log");
  EXPECT_EQ(channel_name(Channel::kPubsub), "pubsub");
  EXPECT_EQ(channel_name(Channel::kUcxi), "ucxi");
}

TEST(ShhhRules, BuiltinNamesAreValidAndUnique) {
  std::set<std::string> names;
  for (const Rule& r : builtin_rules()) EXPECT_TRUE(names.insert(r.name).second) << r.name;
  EXPECT_GE(names.size(), 10u);
  Options none;
  none.use_builtin_rules = false;
  auto s = make(none);
  EXPECT_FALSE(s->may_contain_secret("Bearer abcdefgh123"));
  EXPECT_EQ(s->redact_text("Bearer abcdefgh123", Channel::kLog, "t").text, "Bearer abcdefgh123");
}

}  // namespace

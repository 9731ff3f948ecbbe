#include <gtest/gtest.h>

#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "wire.hpp"

using namespace chorus::backbeat;
using nlohmann::json;

namespace {

json valid_frame() {
  return json{{"type", "backbeat.beatframe.v1"},
              {"cluster_id", "chorus-test"},
              {"beat_index", 42},
              {"downbeat", false},
              {"phase", "execute"},
              {"hlc", "7ffd:0001:abcd"},
              {"deadline_at", "2025-03-01T12:00:30Z"},
              {"tempo_bpm", 2.0},
              {"window_id", "0123456789abcdef0123456789abcdef"}};
}

}  // namespace

TEST(BeatFrameParse, AcceptsTheSchemaExample) {
  auto j = valid_frame();
  j["metadata"] = {{"pulse_version", "1.0.0"}, {"cluster_health", "healthy"}, {"expected_agents", 5}};
  std::string why;
  auto f = parse_beat_frame(j.dump(), &why);
  ASSERT_TRUE(f) << why;
  EXPECT_EQ(f->cluster_id, "chorus-test");
  EXPECT_EQ(f->beat_index, 42);
  EXPECT_EQ(f->phase, BeatPhase::execute);
  EXPECT_DOUBLE_EQ(f->tempo_bpm, 2.0);
  EXPECT_EQ(f->expected_agents, 5);
  EXPECT_EQ(f->cluster_health, "healthy");
}

TEST(BeatFrameParse, SerializeRoundTrips) {
  BeatFrame f;
  f.cluster_id = "c1";
  f.beat_index = 1234567890123;
  f.downbeat = true;
  f.phase = BeatPhase::review;
  f.hlc = "0001:0002:0003";
  f.deadline_at = rfc3339(1700000000123);
  f.tempo_bpm = 600.0;
  f.window_id = window_id_for("c1", 7);
  f.pulse_version = "x";
  auto back = parse_beat_frame(serialize_beat_frame(f));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->beat_index, f.beat_index);
  EXPECT_TRUE(back->downbeat);
  EXPECT_EQ(back->phase, BeatPhase::review);
  EXPECT_EQ(back->deadline_at, "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(back->window_id, f.window_id);
}

struct BadCase {
  const char *name;
  std::function<void(json &)> mutate;
};

TEST(BeatFrameParse, RejectsEverySchemaViolation) {
  const std::vector<BadCase> cases = {
      {"missing type", [](json &j) { j.erase("type"); }},
      {"wrong type", [](json &j) { j["type"] = "backbeat.statusclaim.v1"; }},
      {"missing cluster", [](json &j) { j.erase("cluster_id"); }},
      {"bad cluster chars", [](json &j) { j["cluster_id"] = "a.b"; }},
      {"empty cluster", [](json &j) { j["cluster_id"] = ""; }},
      {"long cluster", [](json &j) { j["cluster_id"] = std::string(65, 'a'); }},
      {"negative beat", [](json &j) { j["beat_index"] = -1; }},
      {"fractional beat", [](json &j) { j["beat_index"] = 1.5; }},
      {"string beat", [](json &j) { j["beat_index"] = "1"; }},
      {"huge beat", [](json &j) { j["beat_index"] = 1e30; }},
      {"downbeat not bool", [](json &j) { j["downbeat"] = 1; }},
      {"bad phase", [](json &j) { j["phase"] = "sleep"; }},
      {"bad hlc", [](json &j) { j["hlc"] = "7ffd:0001"; }},
      {"hlc not hex", [](json &j) { j["hlc"] = "zzzz:0001:abcd"; }},
      {"bad deadline", [](json &j) { j["deadline_at"] = "yesterday"; }},
      {"deadline month 13", [](json &j) { j["deadline_at"] = "2025-13-01T00:00:00Z"; }},
      {"deadline no zone", [](json &j) { j["deadline_at"] = "2025-01-01T00:00:00"; }},
      {"tempo zero", [](json &j) { j["tempo_bpm"] = 0; }},
      {"tempo absurd", [](json &j) { j["tempo_bpm"] = 100000; }},
      {"tempo negative", [](json &j) { j["tempo_bpm"] = -2; }},
      {"tempo not multiple of 0.1", [](json &j) { j["tempo_bpm"] = 2.05; }},
      {"tempo string", [](json &j) { j["tempo_bpm"] = "2"; }},
      {"window short", [](json &j) { j["window_id"] = "abc"; }},
      {"window not hex", [](json &j) { j["window_id"] = std::string(32, 'g'); }},
      {"extra property", [](json &j) { j["extra"] = 1; }},
      {"metadata not object", [](json &j) { j["metadata"] = 3; }},
      {"metadata bad agents", [](json &j) { j["metadata"] = {{"expected_agents", -3}}; }},
  };
  for (const auto &c : cases) {
    json j = valid_frame();
    c.mutate(j);
    std::string why;
    EXPECT_FALSE(parse_beat_frame(j.dump(), &why)) << c.name;
    EXPECT_FALSE(why.empty()) << c.name;
  }
}

TEST(BeatFrameParse, RejectsGarbageWithoutThrowing) {
  for (std::string_view s : {"", "null", "[]", "{", "\"x\"", "{\"type\":", "{}}", "\xff\xfe"}) {
    EXPECT_FALSE(parse_beat_frame(s)) << s;
  }
  std::string deep(10000, '[');
  EXPECT_FALSE(parse_beat_frame(deep));
  std::string big = "{\"x\":\"" + std::string(100000, 'a') + "\"}";
  EXPECT_FALSE(parse_beat_frame(big));
}

TEST(StatusClaim, SerializedClaimIsSchemaValid) {
  StatusClaim c;
  c.agent_id = "chorus-agent:1";
  c.task_id = "election-leader-2025";
  c.beat_index = 12;
  c.state = "executing";
  c.beats_left = 5000;  // clamped
  c.progress = 1.7;     // clamped
  std::string long_notes(300, 'n');
  long_notes += "\"quoted\"\n";
  c.notes = long_notes;
  c.hlc = "0001:0002:0003";
  c.metadata_members = "\"k\":1";
  std::string out;
  append_status_claim(&out, c);
  std::string why;
  ASSERT_TRUE(validate_status_claim(out, &why)) << why << "\n" << out;
  auto j = json::parse(out);
  EXPECT_EQ(j["beats_left"], 1000);
  EXPECT_EQ(j["progress"], 1.0);
  EXPECT_EQ(j["notes"].get<std::string>().size(), 256u);
  EXPECT_EQ(j["metadata"]["k"], 1);
}

TEST(StatusClaim, ValidatorRejectsBadClaims) {
  const char *good = R"({"type":"backbeat.statusclaim.v1","agent_id":"a","beat_index":1,"state":"idle","hlc":"0001:0002:0003"})";
  EXPECT_TRUE(validate_status_claim(good));
  for (const char *bad : {
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a b","beat_index":1,"state":"idle","hlc":"0001:0002:0003"})",
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a","beat_index":1,"state":"done","hlc":"0001:0002:0003"})",
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a","beat_index":1,"state":"idle","hlc":"1:2:3"})",
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a","beat_index":1,"state":"idle","hlc":"0001:0002:0003","progress":1.5})",
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a","beat_index":1,"state":"idle","hlc":"0001:0002:0003","beats_left":1001})",
           R"({"type":"backbeat.statusclaim.v1","agent_id":"a","state":"idle","hlc":"0001:0002:0003"})",
       })
    EXPECT_FALSE(validate_status_claim(bad)) << bad;
}

TEST(Hlc, FormatAndMonotonicWithinASecond) {
  Hlc h("node-a");
  const std::string a = h.next(1700000000000);
  const std::string b = h.next(1700000000500);
  EXPECT_TRUE(valid_hlc(a));
  EXPECT_TRUE(valid_hlc(b));
  EXPECT_LT(a, b);
  EXPECT_EQ(a.substr(10), b.substr(10));  // node suffix
  // A remote stamp from the future is merged: the next local stamp is after it.
  h.observe("ffff:0010:0000", 1700000000600);
  const std::string c = h.next(1700000000700);
  EXPECT_EQ(c.substr(0, 4), "ffff");
  EXPECT_GT(c.substr(5, 4), std::string("0010"));
}

TEST(Ids, Validation) {
  EXPECT_TRUE(valid_cluster_id("chorus-production"));
  EXPECT_FALSE(valid_cluster_id("chorus.production"));
  EXPECT_TRUE(valid_agent_id("svc:instance-1_a"));
  EXPECT_FALSE(valid_agent_id("has/slash"));
  EXPECT_EQ(sanitize_agent_id("chorus-12D3Koo.W/x"), "chorus-12D3Koo-W-x");
  EXPECT_EQ(window_id_for("c", 1).size(), 32u);
  EXPECT_NE(window_id_for("c", 1), window_id_for("c", 2));
  // BLAKE2b-128 of "c:1", computed independently (Python: hashlib.blake2b(b"c:1", digest_size=16)).
  EXPECT_EQ(window_id_for("c", 1), "cd1140e08fb9a3a69942e6150a546daa");
  EXPECT_TRUE(valid_rfc3339("2025-01-01T00:00:00.5+01:00"));
  EXPECT_TRUE(valid_rfc3339(rfc3339(0)));
  EXPECT_TRUE(tempo_valid(0.1));
  EXPECT_TRUE(tempo_valid(999.9));
  EXPECT_FALSE(tempo_valid(1000.05));
}

TEST(BeatFrameParse, RecognisesLegacyBarBeatFrames) {
  bool legacy = true;
  std::string why;
  EXPECT_FALSE(parse_beat_frame(R"({"bar":4,"beat":7})", &why, &legacy));
  EXPECT_TRUE(legacy);
  EXPECT_EQ(why, "legacy {bar, beat} frame without beat_index");
  // Not legacy: v1 frames, objects that merely mention the fields, and bad values.
  for (std::string_view s : {R"({"bar":4})", R"({"bar":4,"beat":7,"beat_index":1})", R"({"bar":4.5,"beat":1})",
                             R"({"bar":1,"beat":-1})", R"([{"bar":1,"beat":1}])", "garbage"}) {
    legacy = true;
    EXPECT_FALSE(parse_beat_frame(s, nullptr, &legacy)) << s;
    EXPECT_FALSE(legacy) << s;
  }
}

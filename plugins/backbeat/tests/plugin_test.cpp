// The plugin through its C vtable and service table, on the SDK's FakeHost, with FakeTransport in
// place of NATS.
#include <gtest/gtest.h>

#include <chorus/services/backbeat_v1.h>
#include <chorus/services/election_v1.h>
#include <chorus/services/p2p_host_v1.h>

#include <cstring>
#include <chorus/testing/fake_host.hpp>
#include <cstddef>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "fake_transport.hpp"
#include "wire.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

using namespace chorus::backbeat;
using chorus::backbeat::testing::FakeTransport;
using chorus::backbeat::testing::FakeTransportScope;
using chorus::testing::FakeHost;
using nlohmann::json;

namespace {

void clear_env() {
  for (const char *v : {"CHORUS_BACKBEAT_ENABLED", "CHORUS_BACKBEAT_CLUSTER_ID", "CHORUS_BACKBEAT_AGENT_ID",
                        "CHORUS_BACKBEAT_NATS_URL"})
    unsetenv(v);
}

struct Fixture : ::testing::Test {
  void SetUp() override {
    clear_env();
    host.set_host_info(R"({"agent_id":"agent-7","role":"","cluster_id":"chorus-dev","state_dir":"/tmp",)"
                       R"("host_version":"0.1.0","plugin_id":"backbeat","http_listen":""})");
  }
  void TearDown() override { clear_env(); }

  chorus::testing::PluginHandle load(const std::string &cfg = R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4})") {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, cfg);
    transport = FakeTransportScope::last;
    if (p.services().size() == 1) {
      table = static_cast<const chorus_backbeat_v1 *>(p.services()[0].table.table);
      self = p.services()[0].table.self;
    }
    return p;
  }
  chorus_status start_op(const std::string &id, const char *type = "dht_store", uint32_t beats = 3,
                         const std::string &data = "", std::string *msg = nullptr) {
    chorus::ErrorBuffer err;
    auto s = table->start_operation(self, id.data(), id.size(), type, std::strlen(type), beats, data.data(), data.size(),
                                    err.get());
    if (msg != nullptr) *msg = std::string(err.text());
    return s;
  }
  chorus_status complete(const std::string &id, uint32_t peers = 1) {
    return table->complete_operation(self, id.data(), id.size(), peers, nullptr);
  }
  json health() {
    chorus_buf b{};
    EXPECT_EQ(table->get_health(self, &b, nullptr), CHORUS_OK);
    json j = json::parse(std::string(b.data, b.len));
    b.release(&b);
    return j;
  }
  std::string frame(int64_t idx, const std::string &cluster = "t") {
    BeatFrame f;
    f.cluster_id = cluster;
    f.beat_index = idx;
    f.downbeat = idx % 4 == 0;
    f.phase = BeatPhase::plan;
    f.hlc = "0001:0001:0001";
    f.deadline_at = rfc3339(1700000000000);
    f.tempo_bpm = 600;
    f.window_id = window_id_for(cluster, idx / 4);
    return serialize_beat_frame(f);
  }
  static std::vector<json> parse(const std::vector<FakeTransport::Sent> &sent) {
    std::vector<json> v;
    for (const auto &s : sent) {
      std::string why;
      EXPECT_TRUE(validate_status_claim(s.payload, &why)) << why;
      v.push_back(json::parse(s.payload));
    }
    return v;
  }

  FakeTransportScope scope;
  FakeHost host;
  FakeTransport *transport = nullptr;
  const chorus_backbeat_v1 *table = nullptr;
  void *self = nullptr;
};

}  // namespace

TEST_F(Fixture, StartsProvidesServiceAndUsesSeedDefaults) {
  auto p = load("{}");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  ASSERT_NE(table, nullptr);
  ASSERT_NE(transport, nullptr);
  EXPECT_TRUE(transport->started);
  EXPECT_EQ(transport->cfg.url, "nats://backbeat-nats:4222");
  // No cluster_id of its own: the agent's (host_info), as the docs say.
  EXPECT_EQ(transport->cfg.beat_subject, "backbeat.beat.chorus-dev");
  EXPECT_EQ(transport->cfg.status_subject, "backbeat.status.chorus-dev.chorus-agent-7");
  json h = health();
  for (const char *k : {"enabled", "started", "connected", "current_beat", "current_tempo", "measured_bpm",
                        "tempo_drift", "reconnect_count", "active_operations", "local_degradation", "errors", "node_id"})
    EXPECT_TRUE(h.contains(k)) << k;
  EXPECT_EQ(h["node_id"], "agent-7");
  EXPECT_EQ(h["connected"], false);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_DEGRADED);
  EXPECT_EQ(p.stop(), CHORUS_OK);
  EXPECT_TRUE(transport->stopped);
  EXPECT_TRUE(host.violations().empty()) << host.violations()[0];
}

TEST_F(Fixture, EnvironmentOverridesConfig) {
  setenv("CHORUS_BACKBEAT_CLUSTER_ID", "env-cluster", 1);
  setenv("CHORUS_BACKBEAT_AGENT_ID", "env-agent", 1);
  setenv("CHORUS_BACKBEAT_NATS_URL", "nats://127.0.0.1:4999", 1);
  auto p = load(R"({"cluster_id":"file-cluster","nats_url":"nats://x:1"})");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(transport->cfg.url, "nats://127.0.0.1:4999");
  EXPECT_EQ(transport->cfg.status_subject, "backbeat.status.env-cluster.env-agent");
}

TEST_F(Fixture, ClusterIsThePluginsOwnThenTheAgentsThenCHORUSDefault) {
  {
    auto p = load(R"({"cluster_id":"own"})");
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    EXPECT_EQ(transport->cfg.beat_subject, "backbeat.beat.own");
  }
  host.set_host_info(R"({"agent_id":"agent-7","role":"","cluster_id":"","state_dir":"/tmp",)"
                     R"("host_version":"0.1.0","plugin_id":"backbeat","http_listen":""})");
  auto p = load("{}");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(transport->cfg.beat_subject, "backbeat.beat.chorus-production");
}

// The libp2p peer id is the node id when a p2p host runs beside backbeat (CHORUS's node id).
TEST_F(Fixture, NodeIdIsThePeerIdWhenAP2pHostRuns) {
  chorus_p2p_host_v1 p2p{};
  p2p.struct_size = sizeof p2p;
  p2p.local_peer_id = [](void *, uint8_t *, size_t, size_t *, char *text, size_t cap, size_t *len) -> chorus_status {
    const char id[] = "12D3KooWFakePeer";
    if (text == nullptr || cap < sizeof id) return CHORUS_E_INVALID_ARG;
    std::memcpy(text, id, sizeof id);
    if (len != nullptr) *len = sizeof id - 1;
    return CHORUS_OK;
  };
  host.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p, nullptr, "p2p");
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(health()["node_id"], "12D3KooWFakePeer");
  EXPECT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(Fixture, EnabledAcceptsTheUsualSpellings) {
  for (const char *on : {"true", "TRUE", "True", "1", "yes", "YES", "on"}) {
    setenv("CHORUS_BACKBEAT_ENABLED", on, 1);
    FakeHost h;
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, h, R"({"enabled":false})");
    ASSERT_EQ(p.status(), CHORUS_OK) << on << ": " << p.message();
    EXPECT_FALSE(h.has_log("BACKBEAT integration is disabled", CHORUS_LOG_WARN)) << on;
  }
  for (const char *off : {"false", "FALSE", "0", "no", "Off"}) {
    setenv("CHORUS_BACKBEAT_ENABLED", off, 1);
    FakeHost h;
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, h, "{}");
    ASSERT_EQ(p.status(), CHORUS_OK) << off << ": " << p.message();
    EXPECT_TRUE(h.has_log("BACKBEAT integration is disabled", CHORUS_LOG_WARN)) << off;
  }
}

TEST_F(Fixture, ConfigErrorsNameTheKey) {
  struct Case {
    const char *cfg;
    const char *needle;
  };
  // The first four are the schema's (applied by the host, and by the fake host here), the rest the plugin's.
  for (const Case &c : {Case{R"({"bogus":1})", "plugins.backbeat.config: unknown key 'bogus'"},
                        Case{R"({"pulse":"yes"})", "plugins.backbeat.config.pulse: expected a boolean, got string"},
                        Case{R"({"bar_length":0})", "plugins.backbeat.config.bar_length: 0 is less than the minimum 1"},
                        Case{R"([1])", "plugins.backbeat.config: not an object"},
                        Case{R"({"cluster_id":"a.b"})", "cluster_id 'a.b'"},
                        Case{R"({"tempo_bpm":2.05})", "config.tempo_bpm: must be 0.1..1000 in steps of 0.1"},
                        Case{R"({"signing_key":"abcd"})", "signing_key must be"},
                        Case{R"({"signing_key":"x","signing_key_file":"/k"})", "give signing_key or signing_key_file"}}) {
    FakeHost h;
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, h, c.cfg);
    EXPECT_EQ(p.status(), CHORUS_E_CONFIG) << c.cfg;
    EXPECT_NE(p.message().find(c.needle), std::string::npos) << p.message();
  }
  setenv("CHORUS_BACKBEAT_ENABLED", "maybe", 1);
  FakeHost h;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, h, "{}");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_NE(p.message().find("CHORUS_BACKBEAT_ENABLED"), std::string::npos);
}

TEST_F(Fixture, DisabledDegradesGracefully) {
  setenv("CHORUS_BACKBEAT_ENABLED", "false", 1);
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(transport, nullptr);  // never connects
  EXPECT_TRUE(host.has_log("BACKBEAT integration is disabled", CHORUS_LOG_WARN));
  std::string msg;
  EXPECT_EQ(start_op("op", "election", 3, "", &msg), CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(msg, "BACKBEAT integration is disabled");
  // execute_with_beat_budget still runs the function (CHORUS's fallback).
  int ran = 0;
  auto fn = [](void *arg, chorus_error *) -> chorus_status {
    ++*static_cast<int *>(arg);
    return CHORUS_E_IO;
  };
  EXPECT_EQ(table->execute_with_beat_budget(self, 1, fn, &ran, nullptr), CHORUS_E_IO);
  EXPECT_EQ(ran, 1);
  json h = health();
  EXPECT_EQ(h["enabled"], false);
  EXPECT_EQ(h["started"], false);  // a disabled integration is not reported as started
  chorus_backbeat_status st{};
  st.struct_size = sizeof st;
  EXPECT_EQ(table->get_status(self, &st), CHORUS_OK);
  EXPECT_EQ(st.enabled, 0);
  EXPECT_EQ(st.started, 0);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);
}

TEST_F(Fixture, BeatDrivesBatchedClaimsThroughTheTransport) {
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  transport->connect();
  transport->deliver(frame(100));
  for (int i = 0; i < 50; ++i) ASSERT_EQ(start_op("op-" + std::to_string(i)), CHORUS_OK);
  EXPECT_EQ(host.pending_tasks(), 1u);  // one flush for the whole burst
  EXPECT_EQ(host.run_pending(), 1u);
  auto claims = parse(transport->claims());
  ASSERT_EQ(claims.size(), 50u);
  for (const auto &c : claims) {
    EXPECT_EQ(c["agent_id"], "chorus-agent-7");
    EXPECT_EQ(c["state"], "executing");
    EXPECT_EQ(c["beat_index"], 100);
    EXPECT_EQ(c["beats_left"], 3);
  }
  transport->deliver(frame(101));
  claims = parse(transport->claims());
  EXPECT_EQ(claims.size(), 50u);
  EXPECT_EQ(claims[0]["beats_left"], 2);
  EXPECT_EQ(host.run_pending(), 0u);
  host.advance(std::chrono::milliseconds(20));  // ticker: metrics
  EXPECT_EQ(host.metric_value("chorus_backbeat_active_operations"), 50.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_beats_total", {"remote"}), 2.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_operations_total", {"dht_store", "started"}), 50.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_connected"), 1.0);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);
}

TEST_F(Fixture, OperationLifecycleErrorsThroughTheCAbi) {
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK);
  std::string msg;
  EXPECT_EQ(start_op("dup"), CHORUS_OK);
  EXPECT_EQ(start_op("dup", "dht_store", 3, "", &msg), CHORUS_E_EXISTS);
  EXPECT_EQ(msg, "operation dup is already active");
  EXPECT_EQ(complete("missing"), CHORUS_E_NOT_FOUND);
  chorus::ErrorBuffer err;
  EXPECT_EQ(table->fail_operation(self, "missing", 7, "r", 1, err.get()), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(err.text(), "operation missing not found");
  EXPECT_EQ(table->update_phase(self, "dup", 3, CHORUS_BACKBEAT_PHASE_FAILED, 1, nullptr), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(table->update_phase(self, "dup", 3, CHORUS_BACKBEAT_PHASE_NEGOTIATING, 4, nullptr), CHORUS_OK);
  EXPECT_EQ(start_op("x", "warp_drive", 3, "", &msg), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(start_op("y", "election", 3, "{broken", &msg), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(table->start_operation(self, nullptr, 3, "election", 8, 3, nullptr, 0, nullptr), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(table->fail_operation(self, "dup", 3, "quorum lost", 11, nullptr), CHORUS_OK);
  EXPECT_EQ(complete("dup"), CHORUS_E_NOT_FOUND);
  host.run_pending();
  auto r = host.http("GET", "/backbeat/operations");
  ASSERT_EQ(r.status, 200);
  json ops = json::parse(r.body);
  EXPECT_EQ(ops["active_operations"], 0);
  ASSERT_EQ(ops["operations"].size(), 1u);
  EXPECT_EQ(ops["operations"][0]["phase"], "failed");
  EXPECT_EQ(ops["operations"][0]["fail_reason"], "quorum lost");
}

TEST_F(Fixture, DisconnectBuffersInOrderAndFlushesOnReconnect) {
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"buffer_limit":100})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  transport->deliver(frame(10));
  transport->take();
  transport->disconnect();
  EXPECT_TRUE(host.has_log("disconnected from NATS", CHORUS_LOG_WARN));
  for (int i = 0; i < 5; ++i) start_op("b" + std::to_string(i));
  host.run_pending();
  transport->deliver(frame(11));  // 5 beat claims
  EXPECT_TRUE(transport->take().empty());
  EXPECT_EQ(transport->stats().buffered, 10u);
  transport->connect(/*reconnect=*/true);
  auto claims = parse(transport->claims());
  ASSERT_EQ(claims.size(), 10u);
  EXPECT_EQ(claims[0]["beat_index"], 10);  // the start claims, then beat 11's
  EXPECT_EQ(claims[9]["beat_index"], 11);
  json h = health();
  EXPECT_EQ(h["reconnect_count"], 1);
  EXPECT_EQ(h["connected"], true);
  EXPECT_FALSE(h["errors"].empty());
}

TEST_F(Fixture, OutboxIsBoundedAndCountsDrops) {
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"buffer_limit":8})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  for (int i = 0; i < 20; ++i) start_op("o" + std::to_string(i));
  host.run_pending();
  EXPECT_EQ(transport->stats().buffered, 8u);
  EXPECT_EQ(transport->stats().dropped, 12u);
  transport->connect();
  auto claims = parse(transport->claims());
  ASSERT_EQ(claims.size(), 8u);
  EXPECT_EQ(claims[0]["task_id"], "o12");  // the oldest went first
  host.advance(std::chrono::milliseconds(20));
  EXPECT_EQ(host.metric_value("chorus_backbeat_messages_dropped_total"), 12.0);
}

TEST_F(Fixture, InvalidFramesAreCountedNeverFatal) {
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  for (const char *bad : {"", "{", "null", "{\"type\":\"backbeat.beatframe.v1\"}", "\x01\x02\x03"}) transport->deliver(bad);
  transport->deliver(frame(5, "other-cluster"));
  transport->deliver(frame(7));
  transport->deliver(frame(6));
  host.advance(std::chrono::milliseconds(20));
  EXPECT_EQ(host.metric_value("chorus_backbeat_frames_rejected_total", {"invalid"}), 5.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_frames_rejected_total", {"wrong_cluster"}), 1.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_frames_rejected_total", {"stale"}), 1.0);
  EXPECT_EQ(health()["current_beat"], 7);
}

TEST_F(Fixture, DegradationAndRecoveryAreReported) {
  auto p = load();  // 600 BPM: 100 ms beats, degraded after 200 ms of silence
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  transport->deliver(frame(50));
  host.advance(std::chrono::milliseconds(150));
  EXPECT_EQ(health()["local_degradation"], false);
  host.advance(std::chrono::milliseconds(100));
  json h = health();
  EXPECT_EQ(h["local_degradation"], true);
  EXPECT_GE(h["current_beat"].get<int64_t>(), 51);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_DEGRADED);
  EXPECT_TRUE(host.has_log("deriving beats locally", CHORUS_LOG_WARN));
  chorus_backbeat_status st{};
  st.struct_size = sizeof st;
  table->get_status(self, &st);
  EXPECT_EQ(st.local_degradation, 1);
  transport->deliver(frame(100));
  host.advance(std::chrono::milliseconds(20));
  EXPECT_EQ(health()["local_degradation"], false);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);
  EXPECT_TRUE(host.has_log("pulse returned"));
}

TEST_F(Fixture, ExecuteWithBeatBudget) {
  auto p = load();  // 100 ms a beat
  ASSERT_EQ(p.status(), CHORUS_OK);
  struct Ctx {
    FakeHost *host;
    int ms;
  };
  auto fn = [](void *arg, chorus_error *) -> chorus_status {
    auto *c = static_cast<Ctx *>(arg);
    c->host->advance(std::chrono::milliseconds(c->ms));  // "work" on the host's clock
    return CHORUS_OK;
  };
  Ctx quick{&host, 150};
  EXPECT_EQ(table->execute_with_beat_budget(self, 2, fn, &quick, nullptr), CHORUS_OK);
  Ctx slow{&host, 350};
  chorus::ErrorBuffer err;
  EXPECT_EQ(table->execute_with_beat_budget(self, 2, fn, &slow, err.get()), CHORUS_E_TIMEOUT);
  EXPECT_NE(err.text().find("beat budget of 2 beats"), std::string_view::npos) << err.text();
  EXPECT_EQ(table->execute_with_beat_budget(self, 0, fn, &quick, nullptr), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(table->execute_with_beat_budget(self, 1, nullptr, nullptr, nullptr), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(host.metric_value("chorus_backbeat_budget_overruns_total", {"budget_call"}), 1.0);
}

TEST_F(Fixture, PulseModePublishesSchemaValidFramesAndProcessesItsOwnBeats) {
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"pulse":true})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  start_op("op", "election", 5);
  host.run_pending();
  transport->take();
  host.advance(std::chrono::milliseconds(1000));  // ~10 beats
  std::vector<BeatFrame> frames;
  size_t claims = 0;
  for (auto &s : transport->take()) {
    if (s.subject == transport->cfg.beat_subject) {
      std::string why;
      auto f = parse_beat_frame(s.payload, &why);
      ASSERT_TRUE(f) << why << ": " << s.payload;
      frames.push_back(*f);
    } else {
      ++claims;
    }
  }
  ASSERT_GE(frames.size(), 9u);
  ASSERT_LE(frames.size(), 11u);
  for (size_t i = 1; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].beat_index, frames[i - 1].beat_index + 1);
    EXPECT_EQ(frames[i].downbeat, frames[i].beat_index % 4 == 0);
    EXPECT_EQ(frames[i].window_id == frames[i - 1].window_id, frames[i].beat_index / 4 == frames[i - 1].beat_index / 4);
    EXPECT_DOUBLE_EQ(frames[i].tempo_bpm, 600);
  }
  EXPECT_GE(claims, frames.size());  // the op's claim on each own beat
  json h = health();
  EXPECT_EQ(h["pulsing"], true);
  EXPECT_EQ(h["local_degradation"], false);
  EXPECT_EQ(h["current_beat"], frames.back().beat_index);
}

namespace {
// election_v1.h: the first slot stays where backbeat (and any minimal consumer) expects it.
static_assert(offsetof(chorus_election_v1, struct_size) == 0);
static_assert(offsetof(chorus_election_v1, reserved) == 4);
static_assert(offsetof(chorus_election_v1, is_admin) == 8);
static_assert(offsetof(chorus_election_v1, get_admin_json) == 8 + sizeof(void *));
static_assert(offsetof(chorus_election_v1, watch_admin) == 8 + 2 * sizeof(void *));
static_assert(offsetof(chorus_election_v1, unwatch_admin) == 8 + 3 * sizeof(void *));

int32_t g_admin = 0;
chorus_status g_admin_status = CHORUS_OK;
chorus_status fake_is_admin(void *, int32_t *out, chorus_error *) {
  *out = g_admin;
  return g_admin_status;
}
size_t count_frames(FakeTransport *t) {
  size_t n = 0;
  for (auto &s : t->take()) n += s.subject == t->cfg.beat_subject;
  return n;
}
}  // namespace

TEST_F(Fixture, WithAnElectionOnlyTheAdminPulses) {
  chorus_election_v1 election{};
  election.struct_size = sizeof election;
  election.is_admin = &fake_is_admin;
  host.provide(CHORUS_ELECTION_SERVICE, 1, 0, &election, nullptr, "election");
  g_admin = 0;
  g_admin_status = CHORUS_OK;
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"pulse":true})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  host.advance(std::chrono::milliseconds(500));
  EXPECT_EQ(count_frames(transport), 0u);
  EXPECT_EQ(health()["pulsing"], false);
  g_admin = 1;
  host.advance(std::chrono::milliseconds(500));
  EXPECT_GE(count_frames(transport), 3u);
  EXPECT_EQ(health()["pulsing"], true);
  // An election that cannot answer is "not admin": never two pulses at once.
  g_admin_status = CHORUS_E_UNAVAILABLE;
  host.advance(std::chrono::milliseconds(200));
  transport->take();
  host.advance(std::chrono::milliseconds(500));
  EXPECT_EQ(count_frames(transport), 0u);
  EXPECT_EQ(health()["pulsing"], false);
  // A table shorter than the is_admin slot is treated the same way.
  g_admin_status = CHORUS_OK;
  election.struct_size = 8;
  host.advance(std::chrono::milliseconds(500));
  EXPECT_EQ(count_frames(transport), 0u);
  election.struct_size = sizeof election;
  host.advance(std::chrono::milliseconds(500));
  EXPECT_GE(count_frames(transport), 3u);
  EXPECT_EQ(host.held_refs(), 0u);
  g_admin = 0;
}

TEST_F(Fixture, ReconfiguredTempoIsApproachedByAtMostTenPercentPerBar) {
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"pulse":true})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  host.advance(std::chrono::milliseconds(500));
  transport->take();
  EXPECT_EQ(p.reconfigure(R"({"cluster_id":"t","tempo_bpm":900,"bar_length":4,"pulse":true})"), CHORUS_OK)
      << p.message();
  EXPECT_EQ(health()["tempo_target"], 900.0);
  host.advance(std::chrono::milliseconds(3000));
  std::vector<BeatFrame> frames;
  for (auto &s : transport->take()) {
    if (s.subject != transport->cfg.beat_subject) continue;
    auto f = parse_beat_frame(s.payload);
    ASSERT_TRUE(f);
    frames.push_back(*f);
  }
  ASSERT_GE(frames.size(), 24u);
  std::vector<double> distinct = {600};  // the tempo before the change
  for (size_t i = 0; i < frames.size(); ++i) {
    const double from = distinct.back(), to = frames[i].tempo_bpm;
    if (from == to) continue;
    EXPECT_TRUE(frames[i].downbeat) << "tempo changed mid-bar at beat " << frames[i].beat_index;
    EXPECT_TRUE(tempo_change_within_limit(from, to)) << from << " -> " << to;
    distinct.push_back(to);
  }
  EXPECT_EQ(distinct, (std::vector<double>{600, 660, 726, 798.6, 878.4, 900})) << frames.size();
  EXPECT_EQ(frames.back().tempo_bpm, 900);
  EXPECT_EQ(health()["current_tempo"], 900.0);
  EXPECT_FALSE(health().contains("tempo_target"));
  // Anything but the tempo is not applied live.
  EXPECT_EQ(p.reconfigure(R"({"cluster_id":"other","tempo_bpm":900,"bar_length":4,"pulse":true})"),
            CHORUS_E_NEEDS_RESTART);
  EXPECT_EQ(p.reconfigure(R"({"cluster_id":"t","tempo_bpm":1e9})"), CHORUS_E_CONFIG);
}

TEST_F(Fixture, TempoJumpsAndLegacyFramesAreReported) {
  auto p = load();
  ASSERT_EQ(p.status(), CHORUS_OK);
  transport->connect();
  transport->deliver(frame(10));
  std::string fast = frame(11);
  const std::string from = "\"tempo_bpm\":600", to = "\"tempo_bpm\":900";
  fast.replace(fast.find(from), from.size(), to);
  transport->deliver(fast);
  json h = health();
  EXPECT_EQ(h["tempo_jumps"], 1);
  EXPECT_EQ(h["current_tempo"], 900.0);
  ASSERT_FALSE(h["errors"].empty());
  EXPECT_NE(h["errors"].back().get<std::string>().find("600 -> 900 BPM exceeds the 10 % change limit"),
            std::string::npos);
  for (int i = 0; i < 5; ++i) transport->deliver(R"({"bar":2,"beat":)" + std::to_string(i) + "}");
  h = health();
  EXPECT_EQ(h["frames_rejected"]["legacy"], 5);
  EXPECT_EQ(h["current_beat"], 11);
  size_t warnings = 0;
  for (const auto &l : host.logs()) warnings += l.text.find("legacy {bar, beat}") != std::string::npos;
  EXPECT_EQ(warnings, 1u);  // rate-limited
  host.advance(std::chrono::milliseconds(61000));
  transport->deliver(R"({"bar":3,"beat":0})");
  warnings = 0;
  for (const auto &l : host.logs()) warnings += l.text.find("legacy {bar, beat}") != std::string::npos;
  EXPECT_EQ(warnings, 2u);
  host.advance(std::chrono::milliseconds(100));  // metrics are synced on the tick
  EXPECT_EQ(host.metric_value("chorus_backbeat_frames_rejected_total", {"legacy"}), 6.0);
  EXPECT_EQ(host.metric_value("chorus_backbeat_tempo_jumps_total", {}), 1.0);
}

TEST_F(Fixture, SignedClaimsVerify) {
  const std::string seed(64, 'a');
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"signing_key":")" + seed + R"("})");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  transport->connect();
  start_op("s1");
  host.run_pending();
  auto sent = transport->take();
  ASSERT_EQ(sent.size(), 1u);
  Signer signer(seed);
  EXPECT_TRUE(verify_signature(sent[0].payload, sent[0].signature, signer.public_key_b64()));
  EXPECT_FALSE(verify_signature(sent[0].payload + " ", sent[0].signature, signer.public_key_b64()));
}

TEST_F(Fixture, StopCancelsEverythingAndLaterCallsAreUnavailable) {
  auto p = load(R"({"cluster_id":"t","tempo_bpm":600,"bar_length":4,"pulse":true})");
  ASSERT_EQ(p.status(), CHORUS_OK);
  start_op("z");
  EXPECT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(start_op("late"), CHORUS_E_UNAVAILABLE);
  transport->deliver(frame(3));  // a late NATS callback is ignored
  EXPECT_TRUE(host.violations().empty());
}

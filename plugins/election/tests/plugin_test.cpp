// The plugin on the SDK's FakeHost, with a fake chorus.pubsub (it records publications and delivers
// test messages through the plugin's validators and handlers) and a fake chorus.p2p.host (the local
// peer id). The election runs on its own thread in real time with short timings; every wait is on an
// event (a publication, a watch call, an HTTP answer) with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chorus/plugin.hpp>
#include <chorus/services/election_v1.h>
#include <chorus/services/eventlog_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/testing/fake_host.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/messages.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::election {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char *kSelf = "12D3KooWSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1f";
constexpr const char *kPeerA = "12D3KooWPeerAPeerAPeerAPeerAPeerAPeerAPeerAPeerA";
constexpr const char *kPeerB = "12D3KooWPeerBPeerBPeerBPeerBPeerBPeerBPeerBPeerB";
constexpr auto kWait = 10s;

// ---- a fake chorus.pubsub

struct Published {
  std::string topic;
  std::string data;
};

class FakePubsub {
 public:
  FakePubsub() {
    table_.struct_size = sizeof table_;
    table_.subscribe = &c_subscribe;
    table_.unsubscribe = &c_unsubscribe;
    table_.publish_raw = &c_publish_raw;
    table_.add_validator = &c_add_validator;
    table_.remove_validator = &c_remove_validator;
  }
  const chorus_pubsub_v1 *table() const { return &table_; }

  // Runs the topic's validators, then (if all accepted) its handlers, like gossip does for a message
  // from a peer signed by `from`. Returns the verdict.
  int deliver(const std::string &topic, const std::string &data, const std::string &from, bool local = false) {
    std::vector<Callback> validators, handlers;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, c] : validators_)
        if (c.topic == topic) validators.push_back(c);
      for (const auto &[id, c] : subs_)
        if (c.topic == topic) handlers.push_back(c);
    }
    chorus_pubsub_message m{};
    m.struct_size = sizeof m;
    m.local = local ? 1 : 0;
    m.topic = topic.c_str();
    m.data = reinterpret_cast<const uint8_t *>(data.data());
    m.data_len = data.size();
    m.from_text = from.c_str();
    m.received_from = from.c_str();
    m.type = "";
    int verdict = CHORUS_PUBSUB_ACCEPT;
    for (const Callback &v : validators) {
      const int r = v.validator(v.arg, &m);
      if (r != CHORUS_PUBSUB_ACCEPT) verdict = r;
      if (r == CHORUS_PUBSUB_REJECT) break;
    }
    if (verdict == CHORUS_PUBSUB_ACCEPT)
      for (const Callback &h : handlers) h.handler(h.arg, &m);
    return verdict;
  }

  // Waits for a publication matching pred (looking at every publication so far); returns its JSON.
  std::optional<json> wait_published(const std::function<bool(const Published &, const json &)> &pred,
                                     std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lk(mu_);
    std::optional<json> found;
    cv_.wait_for(lk, timeout, [&] {
      for (const Published &p : published_) {
        const json j = json::parse(p.data, nullptr, false);
        if (pred(p, j)) {
          found = j;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t subscriptions() const {
    std::lock_guard lk(mu_);
    return subs_.size();
  }
  size_t validators() const {
    std::lock_guard lk(mu_);
    return validators_.size();
  }
  std::vector<Published> published() const {
    std::lock_guard lk(mu_);
    return published_;
  }

 private:
  struct Callback {
    std::string topic;
    chorus_pubsub_message_fn handler = nullptr;
    chorus_pubsub_validator_fn validator = nullptr;
    void *arg = nullptr;
  };
  static FakePubsub *me(void *p) { return static_cast<FakePubsub *>(p); }
  static chorus_status c_subscribe(void *p, const char *topic, chorus_pubsub_message_fn fn, void *arg, uint64_t *out,
                                   chorus_error *) {
    std::lock_guard lk(me(p)->mu_);
    *out = ++me(p)->next_;
    me(p)->subs_[*out] = Callback{topic, fn, nullptr, arg};
    return CHORUS_OK;
  }
  static chorus_status c_unsubscribe(void *p, uint64_t id) {
    std::lock_guard lk(me(p)->mu_);
    return me(p)->subs_.erase(id) == 1 ? CHORUS_OK : CHORUS_E_NOT_FOUND;
  }
  static chorus_status c_add_validator(void *p, const char *topic, chorus_pubsub_validator_fn fn, void *arg,
                                       uint64_t *out, chorus_error *) {
    std::lock_guard lk(me(p)->mu_);
    *out = ++me(p)->next_;
    me(p)->validators_[*out] = Callback{topic, nullptr, fn, arg};
    return CHORUS_OK;
  }
  static chorus_status c_remove_validator(void *p, uint64_t id) {
    std::lock_guard lk(me(p)->mu_);
    return me(p)->validators_.erase(id) == 1 ? CHORUS_OK : CHORUS_E_NOT_FOUND;
  }
  static chorus_status c_publish_raw(void *p, const char *topic, const uint8_t *data, size_t len, uint8_t *, size_t,
                                     size_t *, chorus_error *) {
    {
      std::lock_guard lk(me(p)->mu_);
      me(p)->published_.push_back(Published{topic, std::string(reinterpret_cast<const char *>(data), len)});
    }
    me(p)->cv_.notify_all();
    return CHORUS_OK;
  }

  chorus_pubsub_v1 table_{};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ = 0;
  std::map<uint64_t, Callback> subs_, validators_;
  std::vector<Published> published_;
};

// ---- a fake chorus.p2p.host: only the identity

chorus_status fake_local_peer_id(void *, uint8_t *, size_t, size_t *peer_len, char *text, size_t text_cap,
                                 size_t *text_len) {
  const size_t n = std::strlen(kSelf);
  if (peer_len != nullptr) *peer_len = 0;
  if (text != nullptr) {
    if (text_cap <= n) return CHORUS_E_TOO_LARGE;
    std::memcpy(text, kSelf, n + 1);
  }
  if (text_len != nullptr) *text_len = n;
  return CHORUS_OK;
}

// ---- watches of chorus.election

struct WatchLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, uint64_t>> changes;  // (admin_id, term)
  std::vector<std::string> previous;                      // previous_admin_id (1.1)
  std::vector<int> is_admin;
  int dtor_runs = 0;

  static void fn(void *arg, const chorus_election_change *c) {
    auto *w = static_cast<WatchLog *>(arg);
    {
      std::lock_guard lk(w->mu);
      w->changes.emplace_back(c->admin_id, c->term);
      w->previous.emplace_back(c->struct_size > offsetof(chorus_election_change, previous_admin_id)
                                   ? c->previous_admin_id
                                   : "(not given)");
      w->is_admin.push_back(c->is_admin);
    }
    w->cv.notify_all();
  }
  static void dtor(void *arg) {
    auto *w = static_cast<WatchLog *>(arg);
    std::lock_guard lk(w->mu);
    ++w->dtor_runs;
  }
  bool wait(const std::function<bool()> &pred) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, kWait, pred);
  }
};

// Short timings: a single agent (cluster_size 1) elects itself within a few hundred milliseconds.
std::string fast_config(const std::string &extra = "") {
  return R"({"heartbeat_interval_ms": 50, "heartbeat_timeout_ms": 200, "discovery_timeout_ms": 100,
             "vote_window_ms": 10, "candidacy_timeout_ms": 100, "max_jitter_ms": 0, "min_term_ms": 0)" +
         extra + "}";
}

class ElectionPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "election-plugin-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    state_dir_ = tmpl;
    host_.set_plugin_id("election");
    host_.set_host_info(json{{"agent_id", "test-agent"}, {"state_dir", state_dir_}, {"plugin_id", "election"}}.dump());
    p2p_.struct_size = sizeof p2p_;
    p2p_.local_peer_id = &fake_local_peer_id;
    host_.provide(CHORUS_PUBSUB_SERVICE, 1, 0, pubsub_.table(), &pubsub_, "gossip");
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_, nullptr, "p2p");
  }
  void TearDown() override { fs::remove_all(state_dir_); }

  chorus::testing::PluginHandle load(const std::string &config) {
    return chorus::testing::load(&chorus_plugin_entry_v1, host_, config);
  }

  const chorus_election_v1 *election_table(chorus::testing::PluginHandle &p, void **self) {
    chorus::ServiceTable t;
    EXPECT_EQ(p.get_service(CHORUS_ELECTION_SERVICE, 1, &t), CHORUS_OK);
    *self = t.self;
    return static_cast<const chorus_election_v1 *>(t.table);
  }

  // An HTTP answer that may come from the election thread later.
  chorus::testing::FakeResponse http_wait(const char *method, const char *target) {
    const size_t id = host_.http_start(method, target);
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (host_.response(id).status == 0 && std::chrono::steady_clock::now() < deadline) {
      std::unique_lock lk(poll_mu_);
      poll_cv_.wait_for(lk, 5ms);  // the fake host has no completion event for exchanges
    }
    return host_.response(id);
  }

  std::optional<json> wait_heartbeat_from(const std::string &admin, uint64_t min_term = 1) {
    return pubsub_.wait_published([&](const Published &p, const json &j) {
      return p.topic == kHeartbeatTopic && j.value("type", "") == "election.heartbeat" && j.value("admin", "") == admin &&
             j.value("term", uint64_t{0}) >= min_term;
    });
  }

  double metric(const char *name, std::vector<std::string> labels = {}) {
    return host_.metric_value(name, labels).value_or(-1);
  }
  // Metrics are updated by the election thread right after the effect they count; polled (they have
  // no event) until they reach `at_least` or the deadline passes.
  double wait_metric(const char *name, std::vector<std::string> labels, double at_least) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    double v = metric(name, labels);
    while (v < at_least && std::chrono::steady_clock::now() < deadline) {
      std::unique_lock lk(poll_mu_);
      poll_cv_.wait_for(lk, 5ms);
      v = metric(name, labels);
    }
    return v;
  }

  chorus::testing::FakeHost host_;
  FakePubsub pubsub_;
  chorus_p2p_host_v1 p2p_{};
  std::string state_dir_;
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
};

std::string heartbeat(uint64_t term, const std::string &admin, uint64_t seq = 1) {
  return json{{"type", "election.heartbeat"}, {"term", term}, {"admin", admin}, {"since_unix_ms", 1765000000000ull},
              {"seq", seq}, {"score", 0.5}}
      .dump();
}

TEST_F(ElectionPluginTest, DescriptorRequiresPubsubAndP2pAndProvidesElection) {
  const chorus_plugin_descriptor *d = chorus_plugin_entry_v1(nullptr);
  ASSERT_NE(d, nullptr);
  ASSERT_EQ(d->provides_count, 1u);
  EXPECT_STREQ(d->provides[0].service, CHORUS_ELECTION_SERVICE);
  EXPECT_EQ(d->provides[0].major, 1);
  ASSERT_EQ(d->requirements_count, 3u);
  EXPECT_STREQ(d->requirements[0].service, CHORUS_PUBSUB_SERVICE);
  EXPECT_STREQ(d->requirements[0].range, "^1");
  EXPECT_EQ(d->requirements[0].flags & CHORUS_REQUIRE_OPTIONAL, 0u);
  EXPECT_STREQ(d->requirements[1].service, CHORUS_P2P_HOST_SERVICE);
  EXPECT_EQ(d->requirements[1].flags & CHORUS_REQUIRE_OPTIONAL, 0u);
  EXPECT_STREQ(d->requirements[2].service, CHORUS_EVENTLOG_SERVICE);  // admin changes recorded when it runs
  EXPECT_NE(d->requirements[2].flags & CHORUS_REQUIRE_OPTIONAL, 0u);
}

TEST_F(ElectionPluginTest, ConfigDefaultsAndRefusals) {
  std::string out;
  const auto schema = json::parse(chorus_plugin_entry_v1(nullptr)->config_schema_json);
  ASSERT_FALSE(chorus::config_schema::prepare_plugin_config(schema, "election", "{}", &out));
  const json cfg = json::parse(out);
  EXPECT_EQ(cfg["heartbeat_interval_ms"], 5000);
  EXPECT_EQ(cfg["heartbeat_timeout_ms"], 15000);
  EXPECT_EQ(cfg["discovery_timeout_ms"], 10000);
  EXPECT_EQ(cfg["min_term_ms"], 30000);
  EXPECT_EQ(cfg["cluster_size"], 0);
  EXPECT_EQ(cfg["capabilities"], json({"admin", "coordination", "context", "keys"}));
  EXPECT_DOUBLE_EQ(cfg["weights"]["uptime"].get<double>(), 0.30);
  EXPECT_EQ(cfg["state_file"], "");

  auto bad_timeout = load(R"({"heartbeat_interval_ms": 5000, "heartbeat_timeout_ms": 5000})");
  EXPECT_EQ(bad_timeout.status(), CHORUS_E_CONFIG);
  EXPECT_NE(bad_timeout.message().find("heartbeat_timeout_ms"), std::string::npos) << bad_timeout.message();
  auto twice = load(R"({"members": ["12D3KooWA", "12D3KooWA"]})");
  EXPECT_EQ(twice.status(), CHORUS_E_CONFIG);
  auto unknown = load(R"({"heartbeat": 5})");
  EXPECT_EQ(unknown.status(), CHORUS_E_CONFIG);
}

TEST_F(ElectionPluginTest, ASingleAgentElectsItselfAndServesItsState) {
  WatchLog log;
  auto p = load(fast_config(R"(, "cluster_size": 1)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(pubsub_.subscriptions(), 2u);
  EXPECT_EQ(pubsub_.validators(), 2u);
  void *self = nullptr;
  const chorus_election_v1 *t = election_table(p, &self);
  ASSERT_NE(t, nullptr);
  uint64_t watch = 0;
  ASSERT_EQ(t->watch_admin(self, &WatchLog::fn, &log, &WatchLog::dtor, &watch, nullptr), CHORUS_OK);
  EXPECT_NE(watch, 0u);

  ASSERT_TRUE(wait_heartbeat_from(kSelf)) << "no heartbeat of this agent as admin";
  ASSERT_TRUE(log.wait([&] { return !log.changes.empty() && log.changes.back().first == kSelf; }));
  int32_t is_admin = 0;
  ASSERT_EQ(t->is_admin(self, &is_admin, nullptr), CHORUS_OK);
  EXPECT_EQ(is_admin, 1);
  chorus_buf buf{};
  ASSERT_EQ(t->get_admin_json(self, &buf, nullptr), CHORUS_OK);
  const json admin = json::parse(std::string(buf.data, buf.len));
  buf.release(&buf);
  EXPECT_EQ(admin["admin_id"], kSelf);
  EXPECT_EQ(admin["is_self"], true);
  EXPECT_GE(admin["term"].get<uint64_t>(), 1u);
  EXPECT_FALSE(admin["since"].get<std::string>().empty());
  EXPECT_GT(admin["since_unix_ms"].get<uint64_t>(), 0u);
  EXPECT_EQ(admin["cluster_size"], 1) << "the configured membership, for consumers that need its majority";

  const auto r = host_.http("GET", "/api/v1/election");
  ASSERT_EQ(r.status, 200) << r.body;
  const json st = json::parse(r.body);
  EXPECT_EQ(st["id"], kSelf);
  for (const char *key : {"state", "admin", "term", "since", "score", "members", "quorum", "cluster_size",
                          "score_components"})
    EXPECT_TRUE(st.contains(key)) << key;
  EXPECT_EQ(st["cluster_size"], 1);
  EXPECT_EQ(st["quorum"], 1);
  for (const char *key : {"uptime", "capabilities", "resources", "network", "experience"})
    EXPECT_TRUE(st["score_components"].contains(key)) << key;

  EXPECT_GE(wait_metric("chorus_election_admin_changes_total", {}, 1), 1);
  EXPECT_GE(wait_metric("chorus_election_messages_total", {"heartbeat", "out"}, 1), 1);
  EXPECT_GE(wait_metric("chorus_election_triggers_total", {"discovery_failure"}, 1), 1);
  EXPECT_EQ(wait_metric("chorus_election_is_admin", {}, 1), 1);

  // The candidacy and the heartbeats are durable in the state file before they go out.
  ASSERT_TRUE(fs::exists(fs::path(state_dir_) / "election.db"));

  ASSERT_EQ(t->unwatch_admin(self, watch, nullptr), CHORUS_OK);
  EXPECT_EQ(log.dtor_runs, 1);
  EXPECT_EQ(t->unwatch_admin(self, watch, nullptr), CHORUS_E_NOT_FOUND);
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(pubsub_.subscriptions(), 0u);
  EXPECT_EQ(pubsub_.validators(), 0u);
  p.destroy();
  EXPECT_TRUE(host_.violations().empty());
}

TEST_F(ElectionPluginTest, ManualTriggerStartsANewTermAndIsRefusedInTheStabilityWindow) {
  auto p = load(fast_config(R"(, "cluster_size": 1)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  const auto hb = wait_heartbeat_from(kSelf);
  ASSERT_TRUE(hb);
  const uint64_t term = (*hb)["term"];
  const auto r = http_wait("POST", "/api/v1/election/trigger");
  ASSERT_EQ(r.status, 202) << r.body;
  const uint64_t new_term = json::parse(r.body)["term"];
  EXPECT_GT(new_term, term);
  ASSERT_TRUE(wait_heartbeat_from(kSelf, new_term));
  EXPECT_GE(wait_metric("chorus_election_triggers_total", {"manual"}, 1), 1);
  p.stop();
  p.destroy();

  // A long stability window: refused with 409 and a reason.
  auto q = load(fast_config(R"(, "cluster_size": 1, "min_term_ms": 600000)"));
  ASSERT_EQ(q.status(), CHORUS_OK) << q.message();
  ASSERT_TRUE(wait_heartbeat_from(kSelf, new_term + 1));
  const auto refused = http_wait("POST", "/api/v1/election/trigger");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"]["code"], "CHORUS_E_BUSY");
  EXPECT_FALSE(json::parse(refused.body)["error"]["message"].get<std::string>().empty());
  q.stop();
  q.destroy();
  EXPECT_TRUE(host_.violations().empty());
}

TEST_F(ElectionPluginTest, ValidatorsRejectMalformedAndForgedAndIgnoreNonMembers) {
  auto p = load(fast_config(std::string(R"(, "members": [")") + kSelf + "\", \"" + kPeerA + "\"]"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(pubsub_.deliver(kHeartbeatTopic, "{not json", kPeerA), CHORUS_PUBSUB_REJECT);
  EXPECT_EQ(pubsub_.deliver(kHeartbeatTopic, R"({"type":"election.unknown","term":1})", kPeerA), CHORUS_PUBSUB_REJECT);
  // A heartbeat on the election topic is on the wrong topic.
  EXPECT_EQ(pubsub_.deliver(kElectionTopic, heartbeat(3, kPeerA), kPeerA), CHORUS_PUBSUB_REJECT);
  EXPECT_EQ(metric("chorus_election_rejected_total", {"malformed"}), 3);
  // Signed by B, claiming A: forged.
  EXPECT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(3, kPeerA), kPeerB), CHORUS_PUBSUB_REJECT);
  EXPECT_EQ(metric("chorus_election_rejected_total", {"forged"}), 1);
  // B is not a member.
  EXPECT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(3, kPeerB), kPeerB), CHORUS_PUBSUB_IGNORE);
  EXPECT_EQ(metric("chorus_election_rejected_total", {"not_member"}), 1);
  EXPECT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(3, kPeerA), kPeerA), CHORUS_PUBSUB_ACCEPT);
  p.stop();
  p.destroy();
  EXPECT_TRUE(host_.violations().empty());
}

TEST_F(ElectionPluginTest, AHigherTermHeartbeatMakesTheAdminStepDownAndWatchesSeeIt) {
  WatchLog log;
  auto p = load(fast_config(R"(, "cluster_size": 1, "heartbeat_timeout_ms": 5000)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  const chorus_election_v1 *t = election_table(p, &self);
  uint64_t watch = 0;
  ASSERT_EQ(t->watch_admin(self, &WatchLog::fn, &log, &WatchLog::dtor, &watch, nullptr), CHORUS_OK);
  const auto hb = wait_heartbeat_from(kSelf);
  ASSERT_TRUE(hb);
  const uint64_t higher = (*hb)["term"].get<uint64_t>() + 10;
  ASSERT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(higher, kPeerA), kPeerA), CHORUS_PUBSUB_ACCEPT);
  ASSERT_TRUE(log.wait([&] {
    return !log.changes.empty() && log.changes.back() == std::make_pair(std::string(kPeerA), higher);
  }));
  EXPECT_EQ(log.is_admin.back(), 0);
  {
    // Each change names the admin it replaces (old, new, term): the one the change before reported.
    std::lock_guard lk(log.mu);
    ASSERT_EQ(log.previous.size(), log.changes.size());
    for (size_t i = 1; i < log.changes.size(); ++i) EXPECT_EQ(log.previous[i], log.changes[i - 1].first) << i;
    EXPECT_NE(std::find(log.previous.begin(), log.previous.end(), kSelf), log.previous.end());
  }
  int32_t is_admin = 1;
  ASSERT_EQ(t->is_admin(self, &is_admin, nullptr), CHORUS_OK);
  EXPECT_EQ(is_admin, 0);
  const json st = json::parse(host_.http("GET", "/api/v1/election").body);
  EXPECT_EQ(st["admin"], kPeerA);
  EXPECT_EQ(st["term"], higher);
  EXPECT_EQ(st["state"], "follower");
  // A stale heartbeat (lower term) is ignored and counted.
  ASSERT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(higher - 5, kPeerB), kPeerB), CHORUS_PUBSUB_ACCEPT);
  EXPECT_GE(wait_metric("chorus_election_rejected_total", {"stale"}, 1), 1);
  EXPECT_EQ(json::parse(host_.http("GET", "/api/v1/election").body)["admin"], kPeerA);
  p.stop();  // drops the watch: its dtor runs
  EXPECT_EQ(log.dtor_runs, 1);
  p.destroy();
  EXPECT_TRUE(host_.violations().empty());
}

// A watch that ends itself from inside its callback (election_v1.h allows it): no deadlock, its dtor
// runs once, and it is not called again.
struct SelfEndingWatch {
  const chorus_election_v1 *table = nullptr;
  void *self = nullptr;
  uint64_t id = 0;
  WatchLog log;
  static void fn(void *arg, const chorus_election_change *c) {
    auto *w = static_cast<SelfEndingWatch *>(arg);
    const chorus_status st = w->table->unwatch_admin(w->self, w->id, nullptr);
    EXPECT_EQ(st, CHORUS_OK);
    WatchLog::fn(&w->log, c);
  }
  static void dtor(void *arg) { WatchLog::dtor(&static_cast<SelfEndingWatch *>(arg)->log); }
};

TEST_F(ElectionPluginTest, AWatchMayEndItselfFromItsCallback) {
  auto p = load(fast_config(R"(, "cluster_size": 1)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  SelfEndingWatch w;
  w.table = election_table(p, &w.self);
  ASSERT_EQ(w.table->watch_admin(w.self, &SelfEndingWatch::fn, &w, &SelfEndingWatch::dtor, &w.id, nullptr), CHORUS_OK);
  ASSERT_TRUE(w.log.wait([&] { return w.log.dtor_runs == 1; }));
  // Another admin change (a higher term from a peer) reaches no callback of the ended watch.
  ASSERT_TRUE(wait_heartbeat_from(kSelf));
  ASSERT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(1000, kPeerA), kPeerA), CHORUS_PUBSUB_ACCEPT);
  EXPECT_GE(wait_metric("chorus_election_term", {}, 1000), 1000);
  std::lock_guard lk(w.log.mu);
  EXPECT_EQ(w.log.changes.size(), 1u);
  EXPECT_EQ(w.log.dtor_runs, 1);
  p.stop();
  p.destroy();
}

TEST_F(ElectionPluginTest, NoAdminYetIsANormalAnswerAndDegradesHealthAfterTheTimeout) {
  // Three members configured, none heard: no quorum, so no candidacy and no admin.
  auto p = load(fast_config(R"(, "cluster_size": 3)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  const chorus_election_v1 *t = election_table(p, &self);
  chorus_buf buf{};
  ASSERT_EQ(t->get_admin_json(self, &buf, nullptr), CHORUS_OK);
  const json admin = json::parse(std::string(buf.data, buf.len));
  buf.release(&buf);
  EXPECT_EQ(admin["admin_id"], "");
  EXPECT_EQ(admin["is_self"], false);
  EXPECT_EQ(admin["since"], "");
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (host_.health().state != CHORUS_HEALTH_DEGRADED && std::chrono::steady_clock::now() < deadline) {
    std::unique_lock lk(poll_mu_);
    poll_cv_.wait_for(lk, 5ms);  // health reports have no event in the fake host
  }
  EXPECT_EQ(host_.health().state, CHORUS_HEALTH_DEGRADED);
  EXPECT_NE(host_.health().message.find("no admin for"), std::string::npos) << host_.health().message;
  EXPECT_NE(host_.health().message.find("quorum"), std::string::npos) << host_.health().message;
  // Without a quorum, the manual trigger is refused.
  const auto r = http_wait("POST", "/api/v1/election/trigger");
  EXPECT_EQ(r.status, 409) << r.body;
  p.stop();
  p.destroy();
  EXPECT_TRUE(host_.violations().empty());
}

TEST_F(ElectionPluginTest, TwoAdminsInOneTermAreCountedAsSplitBrain) {
  auto p = load(fast_config(R"(, "cluster_size": 3, "heartbeat_timeout_ms": 5000)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  ASSERT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(5, kPeerA), kPeerA), CHORUS_PUBSUB_ACCEPT);
  EXPECT_EQ(wait_metric("chorus_election_term", {}, 5), 5);
  ASSERT_EQ(pubsub_.deliver(kHeartbeatTopic, heartbeat(5, kPeerB), kPeerB), CHORUS_PUBSUB_ACCEPT);
  EXPECT_GE(wait_metric("chorus_election_split_brain_total", {}, 1), 1);
  EXPECT_TRUE(host_.has_log("split brain", CHORUS_LOG_WARN));
  p.stop();
  p.destroy();
}

TEST_F(ElectionPluginTest, RestartKeepsTheTerm) {
  uint64_t term = 0;
  {
    auto p = load(fast_config(R"(, "cluster_size": 1)"));
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    const auto hb = wait_heartbeat_from(kSelf);
    ASSERT_TRUE(hb);
    p.stop();
    term = (*hb)["term"];
    p.destroy();
  }
  auto p = load(fast_config(R"(, "cluster_size": 1, "discovery_timeout_ms": 600000)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  const json st = json::parse(host_.http("GET", "/api/v1/election").body);
  EXPECT_GE(st["term"].get<uint64_t>(), term);
  p.stop();
  p.destroy();
}

TEST_F(ElectionPluginTest, ACorruptStateFileIsAStartErrorAndIsKept) {
  const std::string path = (fs::path(state_dir_) / "election.db").string();
  const std::string garbage(2048, 'z');
  { std::ofstream(path, std::ios::binary) << garbage; }
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  auto p = load(fast_config());
  EXPECT_EQ(p.status(), CHORUS_E_IO);
  EXPECT_NE(p.message().find(path), std::string::npos) << p.message();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), garbage);
}

TEST_F(ElectionPluginTest, TheServiceIsUnavailableAfterStopAndAnswersNotAdmin) {
  auto p = load(fast_config(R"(, "cluster_size": 1)"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  const chorus_election_v1 *t = election_table(p, &self);
  p.stop();
  int32_t is_admin = 7;
  chorus_error err{};
  err.struct_size = sizeof err;
  EXPECT_EQ(t->is_admin(self, &is_admin, &err), CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(is_admin, 0);
  EXPECT_EQ(t->is_admin(self, nullptr, nullptr), CHORUS_E_INVALID_ARG);
  p.destroy();
}

}  // namespace
}  // namespace chorus::election

// The plugin on the SDK's FakeHost with a fake chorus.pubsub (records publications, delivers test
// messages to the plugin's handlers) and a fake chorus.p2p.host (the node id). Time is the FakeHost's
// manual clock; every wait is for an event (a publication, an answer) within a bounded number of steps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chorus/plugin.hpp>
#include <chorus/services/election_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/testing/fake_host.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "messages.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char *kSelf = "12D3KooWSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1f";
constexpr const char *kPeerA = "12D3KooWPeerAPeerAPeerAPeerAPeerAPeerAPeerAPeerA";

struct Published {
  std::string topic, type;
  json data;
};

class FakePubsub {
 public:
  FakePubsub() {
    table_.struct_size = sizeof table_;
    table_.subscribe = &c_subscribe;
    table_.unsubscribe = &c_unsubscribe;
    table_.publish = &c_publish;
    table_.topics_json = &c_topics_json;
  }
  const chorus_pubsub_v1 *table() const { return &table_; }

  // Hands an envelope to the topic's handlers as if `from` had published it.
  void deliver(const std::string &topic, const std::string &type, const json &data, const std::string &from) {
    deliver_raw(topic, json{{"type", type}, {"from", "agent-peer"}, {"timestamp", "2026-01-01T00:00:00Z"},
                            {"data", data}, {"hop_count", 0}}.dump(),
                from);
  }
  void deliver_raw(const std::string &topic, const std::string &bytes, const std::string &from) {
    std::vector<Sub> handlers;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, s] : subs_)
        if (s.topic == topic) handlers.push_back(s);
    }
    chorus_pubsub_message m{};
    m.struct_size = sizeof m;
    m.topic = topic.c_str();
    m.data = reinterpret_cast<const uint8_t *>(bytes.data());
    m.data_len = bytes.size();
    m.from_text = from.c_str();
    m.received_from = from.c_str();
    m.type = "";
    for (const Sub &s : handlers) s.fn(s.arg, &m);
  }
  std::vector<Published> find(const std::string &type) const {
    std::lock_guard lk(mu_);
    std::vector<Published> out;
    for (const Published &p : published_)
      if (p.type == type) out.push_back(p);
    return out;
  }
  size_t subscriptions() const {
    std::lock_guard lk(mu_);
    return subs_.size();
  }
  void clear() {
    std::lock_guard lk(mu_);
    published_.clear();
  }
  // Waits (real time) for one more publication than `seen`; for work done on a worker's own thread.
  void wait_beyond(size_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return published_.size() > seen; });
  }
  size_t count() const {
    std::lock_guard lk(mu_);
    return published_.size();
  }

 private:
  struct Sub {
    std::string topic;
    chorus_pubsub_message_fn fn;
    void *arg;
  };
  static FakePubsub *me(void *p) { return static_cast<FakePubsub *>(p); }
  static chorus_status c_subscribe(void *p, const char *topic, chorus_pubsub_message_fn fn, void *arg, uint64_t *out,
                                   chorus_error *) {
    std::lock_guard lk(me(p)->mu_);
    *out = ++me(p)->next_;
    me(p)->subs_[*out] = Sub{topic, fn, arg};
    return CHORUS_OK;
  }
  static chorus_status c_unsubscribe(void *p, uint64_t id) {
    std::lock_guard lk(me(p)->mu_);
    return me(p)->subs_.erase(id) == 1 ? CHORUS_OK : CHORUS_E_NOT_FOUND;
  }
  static chorus_status c_publish(void *p, const char *topic, const char *type, const char *data, size_t len, uint8_t *,
                                 size_t, size_t *, chorus_error *) {
    {
      std::lock_guard lk(me(p)->mu_);
      me(p)->published_.push_back(Published{topic, type, json::parse(std::string_view(data, len), nullptr, false)});
    }
    me(p)->cv_.notify_all();
    return CHORUS_OK;
  }
  static chorus_status c_topics_json(void *, chorus_buf *out, chorus_error *) {
    return chorus::give_buf(R"([{"topic":"CHORUS/coordination/v1","subscribed":true,"peers":4,"mesh_peers":3}])", out);
  }
  chorus_pubsub_v1 table_{};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ = 0;
  std::map<uint64_t, Sub> subs_;
  std::vector<Published> published_;
};

chorus_status fake_local_peer_id(void *, uint8_t *, size_t, size_t *peer_len, char *text, size_t text_cap,
                                 size_t *text_len) noexcept {
  const size_t n = std::strlen(kSelf);
  if (peer_len != nullptr) *peer_len = 0;
  if (text == nullptr || text_cap <= n) return CHORUS_E_TOO_LARGE;
  std::memcpy(text, kSelf, n + 1);
  *text_len = n;
  return CHORUS_OK;
}

// A fake chorus.election: this agent is the admin while g_admin is 1.
std::atomic<int32_t> g_admin{0};
chorus_status fake_is_admin(void *, int32_t *out, chorus_error *) {
  *out = g_admin.load();
  return CHORUS_OK;
}

// Its get_admin_json names a membership of 3, so a result needs 2 acknowledgements to commit.
chorus_status fake_admin_json(void *, chorus_buf *out, chorus_error *) {
  static const std::string kJson = R"({"admin_id":"","is_self":false,"term":4,"cluster_size":3})";
  return chorus::give_buf(kJson, out);
}

constexpr const char *kFastConfig = R"({"claim_window_ms": 100, "progress_interval_ms": 50, "owner_timeout_ms": 400,
  "unclaimed_retry_ms": 300, "availability_interval_ms": 1000, "status_log_interval_ms": 1000,
  "directory_ttl_ms": 2000, "simulated_work_ms": 200, "capabilities": ["general", "reasoning"], "max_tasks": 2})";

class AgentPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("agent-plugin-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    p2p_.struct_size = sizeof p2p_;
    p2p_.local_peer_id = &fake_local_peer_id;
    host_.set_plugin_id("agent");
    host_.set_host_info(json{{"agent_id", "agent-a"}, {"role", "backend_developer"}, {"state_dir", dir_.string()}}.dump());
    host_.provide(CHORUS_PUBSUB_SERVICE, 1, 0, pubsub_.table(), &pubsub_, "gossip");
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_, nullptr, "p2p");
  }
  void TearDown() override {
    stop();
    fs::remove_all(dir_);
  }
  void start(std::string_view config = kFastConfig) {
    plugin_.emplace(chorus::testing::load(chorus_plugin_entry_v1, host_, config));
    ASSERT_EQ(plugin_->status(), CHORUS_OK) << plugin_->message();
  }
  void stop() {
    if (!plugin_) return;
    plugin_->stop();
    plugin_->destroy();
    EXPECT_TRUE(host_.violations().empty()) << ::testing::PrintToString(host_.violations());
    plugin_.reset();
  }
  // Advances the manual clock in steps until pred() holds (at most `limit` of simulated time). A
  // worker with its own thread publishes in real time: each step also waits briefly for a publication.
  bool advance_until(const std::function<bool()> &pred, std::chrono::milliseconds limit = 5000ms) {
    for (auto t = 0ms; t < limit; t += 10ms) {
      if (pred()) return true;
      const size_t seen = pubsub_.count();
      host_.advance(10ms);
      host_.run_pending();
      if (!pred()) pubsub_.wait_beyond(seen, 2ms);
    }
    return pred();
  }
  chorus::testing::FakeResponse call(std::string_view method, std::string_view target, std::string_view body = {}) {
    return host_.http(method, target, body);
  }
  static json body(const chorus::testing::FakeResponse &r) { return json::parse(r.body, nullptr, false); }
  double metric(const char *name, std::vector<std::string> labels = {}) {
    return host_.metric_value(name, labels).value_or(0);
  }

  fs::path dir_;
  chorus::testing::FakeHost host_;
  FakePubsub pubsub_;
  chorus_p2p_host_v1 p2p_{};
  std::optional<chorus::testing::PluginHandle> plugin_;
};

TEST_F(AgentPluginTest, BroadcastsCapabilityRoleAndAvailabilityAtStart) {
  start();
  auto caps = pubsub_.find(kCapabilityType);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].topic, kCoordinationTopic);
  EXPECT_EQ(caps[0].data["node_id"], kSelf);
  EXPECT_EQ(caps[0].data["agent_id"], "agent-a");
  EXPECT_EQ(caps[0].data["capabilities"], json({"general", "reasoning"}));
  EXPECT_EQ(caps[0].data["changed"], true) << "no persisted copy yet";
  ASSERT_TRUE(fs::exists(dir_ / "agent" / "capabilities.json"));
  auto roles = pubsub_.find(kRoleType);
  ASSERT_EQ(roles.size(), 1u);
  EXPECT_EQ(roles[0].data["role"], "backend_developer");
  auto avail = pubsub_.find(kAvailabilityType);
  ASSERT_EQ(avail.size(), 1u);
  EXPECT_EQ(avail[0].data["status"], "ready");
  EXPECT_EQ(avail[0].data["available_for_work"], true);
  EXPECT_EQ(avail[0].data["max_tasks"], 2);
  // Availability every availability_interval_ms; the status line every status_log_interval_ms.
  ASSERT_TRUE(advance_until([&] { return pubsub_.find(kAvailabilityType).size() >= 3; }, 2500ms));
  EXPECT_TRUE(host_.has_log("status: 4 pubsub peers, 0 agents in directory, 0/2 tasks"));

  // A restart with the same capabilities broadcasts again, unchanged.
  stop();
  pubsub_.clear();
  start();
  caps = pubsub_.find(kCapabilityType);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].data["changed"], false);
  // ... and with other models, changed.
  stop();
  pubsub_.clear();
  json cfg = json::parse(kFastConfig);
  cfg["models"] = {"qwen2.5"};
  start(cfg.dump());
  caps = pubsub_.find(kCapabilityType);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].data["changed"], true);
}

TEST_F(AgentPluginTest, TaskPostedIsClaimedWorkedAndCompleted) {
  start();
  auto r = call("POST", "/api/v1/agent/tasks", R"({"title":"write the docs","required_capabilities":["general"]})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = body(r)["task_id"];
  EXPECT_EQ(body(r)["attempt"], 1);
  EXPECT_EQ(id.rfind("agent-a-", 0), 0u) << id;
  auto ann = pubsub_.find(kAnnouncementType);
  ASSERT_EQ(ann.size(), 1u);
  EXPECT_EQ(ann[0].data["task_id"], id);
  EXPECT_EQ(ann[0].data["origin"], "agent-a");
  ASSERT_EQ(pubsub_.find(kClaimType).size(), 1u);
  ASSERT_TRUE(advance_until([&] { return !pubsub_.find(kProgressType).empty(); }));
  EXPECT_EQ(pubsub_.find(kProgressType)[0].data["status"], "started");
  EXPECT_EQ(body(call("GET", "/api/v1/agent"))["current_tasks"], 1);
  ASSERT_TRUE(advance_until([&] { return !pubsub_.find(kCompleteType).empty(); }));
  const json done = pubsub_.find(kCompleteType)[0].data;
  EXPECT_EQ(done["task_id"], id);
  EXPECT_EQ(done["node_id"], kSelf);
  const json tasks = body(call("GET", "/api/v1/agent/tasks?status=completed"));
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["completed_by"], "agent-a");
  EXPECT_EQ(tasks[0]["owner"], "agent-a");
  EXPECT_EQ(body(call("GET", "/api/v1/agent/tasks/" + id))["status"], done["status"]);
  EXPECT_EQ(call("GET", "/api/v1/agent/tasks/nope").status, 404);
  EXPECT_EQ(metric("chorus_agent_tasks_total", {"won"}), 1);
  EXPECT_EQ(metric("chorus_agent_current_tasks"), 0);
}

TEST_F(AgentPluginTest, BadTaskRequestsAreRefusedClearly) {
  start();
  auto expect_400 = [&](std::string_view body_text, std::string_view mentions) {
    auto r = call("POST", "/api/v1/agent/tasks", body_text);
    EXPECT_EQ(r.status, 400) << body_text;
    const json b = body(r);
    EXPECT_EQ(b["error"]["code"], "invalid_request") << r.body;
    EXPECT_NE(b["error"]["message"].get<std::string>().find(mentions), std::string::npos) << r.body;
  };
  expect_400("not json", "JSON object");
  expect_400(R"({"description":"no title"})", "title");
  expect_400(R"({"title":""})", "title");
  expect_400(R"({"title":"x","task_id":"bad id!"})", "task_id");
  expect_400(R"({"title":"x","required_capabilities":"general"})", "required_capabilities");
  expect_400(R"({"title":"x","colour":"red"})", "colour");
  expect_400(json{{"title", std::string(300, 'x')}}.dump(), "title");
  EXPECT_EQ(call("POST", "/api/v1/agent/tasks", R"({"title":"x","task_id":"t-1"})").status, 202);
  EXPECT_EQ(call("POST", "/api/v1/agent/tasks", R"({"title":"x","task_id":"t-1"})").status, 409);
  EXPECT_EQ(call("GET", "/api/v1/agent/tasks?status=bogus").status, 400);
  EXPECT_TRUE(pubsub_.find(kAnnouncementType).size() == 1u) << "nothing refused was announced";
}

TEST_F(AgentPluginTest, DirectoryFollowsBroadcastsAndForgetsSilentAgents) {
  start();
  Availability a{kPeerA, "agent-b", true, 1, 3, 1700000000, "working", 1700000000};
  pubsub_.deliver(kCoordinationTopic, kAvailabilityType, to_json(a), kPeerA);
  RoleAnnouncement role{"agent-b", kPeerA, "architect", {"systems"}, {"general"}, "", "architect", 1700000000};
  pubsub_.deliver(kCoordinationTopic, kRoleType, to_json(role), kPeerA);
  json peers = body(call("GET", "/api/v1/agent/peers"));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0]["agent_id"], "agent-b");
  EXPECT_EQ(peers[0]["role"], "architect");
  EXPECT_EQ(peers[0]["status"], "working");
  EXPECT_EQ(peers[0]["current_tasks"], 1);
  EXPECT_GT(peers[0]["expires_in_ms"].get<uint64_t>(), 0u);
  ASSERT_TRUE(advance_until([&] { return metric("chorus_agent_directory_agents") == 1; }, 100ms));
  ASSERT_TRUE(advance_until([&] { return body(call("GET", "/api/v1/agent/peers")).empty(); }, 3000ms));
  EXPECT_EQ(metric("chorus_agent_directory_agents"), 0);
}

TEST_F(AgentPluginTest, MalformedMessagesAreCountedAndDropped) {
  start();
  pubsub_.deliver_raw(kCoordinationTopic, "{not json", kPeerA);
  pubsub_.deliver(kCoordinationTopic, kClaimType, json{{"task_id", "t 1"}, {"attempt", 1}}, kPeerA);
  pubsub_.deliver(kCoordinationTopic, kAvailabilityType, json::array(), kPeerA);
  // A claim in another node's name.
  pubsub_.deliver(kCoordinationTopic, kClaimType, to_json(TaskClaim{"t1", 1, kSelf, "agent-a", 0, 3}), kPeerA);
  // Other plugins' types on the topic are not ours and not errors.
  pubsub_.deliver(kCoordinationTopic, "ucxl.decision.published", json::object(), kPeerA);
  EXPECT_EQ(metric("chorus_agent_messages_rejected_total", {"not_json"}), 1);
  EXPECT_EQ(metric("chorus_agent_messages_rejected_total", {"bad_field"}), 1);
  EXPECT_EQ(metric("chorus_agent_messages_rejected_total", {"no_data"}), 1);
  EXPECT_EQ(metric("chorus_agent_messages_rejected_total", {"sender_mismatch"}), 1);
  EXPECT_TRUE(body(call("GET", "/api/v1/agent/tasks")).empty());
  EXPECT_TRUE(body(call("GET", "/api/v1/agent/peers")).empty());
}

TEST_F(AgentPluginTest, ClaimsAnnouncedTaskAndCountsDuplicateCompletions) {
  start();
  TaskAnnouncement t{"remote-1", 1, "review", "", {"reasoning"}, "chorus", "agent-b", "agent-b", 1700000000000};
  pubsub_.deliver(kCoordinationTopic, kAnnouncementType, to_json(t), kPeerA);
  auto claims = pubsub_.find(kClaimType);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].data["node_id"], kSelf);
  // Peer A completes it first (it owned it): our work is never completed, and a repeat is a duplicate.
  TaskComplete c{"remote-1", 1, kPeerA, "agent-b", "completed", "done", "", "", 10};
  pubsub_.deliver(kCoordinationTopic, kCompleteType, to_json(c), kPeerA);
  // The same outcome told again (a relay, or a retelling after a partition) is not a second one...
  pubsub_.deliver(kCoordinationTopic, kCompleteType, to_json(c), kPeerA);
  EXPECT_EQ(metric("chorus_agent_duplicate_completions_total"), 0);
  // ...another outcome of the same task is.
  c.attempt = 2;
  pubsub_.deliver(kCoordinationTopic, kCompleteType, to_json(c), kPeerA);
  EXPECT_EQ(metric("chorus_agent_duplicate_completions_total"), 1);
  advance_until([] { return false; }, 500ms);
  EXPECT_TRUE(pubsub_.find(kCompleteType).empty());
  EXPECT_EQ(body(call("GET", "/api/v1/agent/tasks/remote-1"))["completed_by"], "agent-b");
}

TEST_F(AgentPluginTest, HmmmMessagesArePublishedAndKept) {
  start();
  EXPECT_EQ(call("POST", "/api/v1/agent/hmmm", R"({"type":"gossip","data":{}})").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/agent/hmmm", R"({"type":"meta_discussion","data":[1]})").status, 400);
  auto r = call("POST", "/api/v1/agent/hmmm", R"({"type":"meta_discussion","data":{"text":"hi"}})");
  ASSERT_EQ(r.status, 202) << r.body;
  auto pub = pubsub_.find("meta_discussion");
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(pub[0].topic, kHmmmTopic);
  pubsub_.deliver(kHmmmTopic, "dependency_alert", json{{"task_id", "x"}}, kPeerA);
  pubsub_.deliver(kHmmmTopic, "not_hmmm", json::object(), kPeerA);
  const json log = body(call("GET", "/api/v1/agent/hmmm"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0]["type"], "meta_discussion");
  EXPECT_EQ(log[1]["type"], "dependency_alert");
  EXPECT_EQ(metric("chorus_agent_messages_rejected_total", {"hmmm_unknown_type"}), 1);
}

TEST_F(AgentPluginTest, InfoRouteDescribesTheAgent) {
  start();
  const json info = body(call("GET", "/api/v1/agent"));
  EXPECT_EQ(info["agent_id"], "agent-a");
  EXPECT_EQ(info["node_id"], kSelf);
  EXPECT_EQ(info["role"], "backend_developer");
  EXPECT_EQ(info["status"], "ready");
  EXPECT_EQ(info["peers"], 4);
  EXPECT_TRUE(info["is_admin"].is_null()) << "no election bound";
  EXPECT_EQ(info["services"]["election"], false);
  EXPECT_EQ(info["specialization"], "general_developer");
}

TEST_F(AgentPluginTest, AssignmentFillsWhatTheConfigLeavesUnset) {
  host_.set_host_info(json{{"agent_id", "agent-a"}, {"role", ""}, {"state_dir", dir_.string()},
                           {"capabilities", {"rust"}}, {"expertise", {"compilers"}}, {"max_tasks", 7},
                           {"model", "qwen2.5"}}.dump());
  start(R"({"max_tasks": 1})");
  const json info = body(call("GET", "/api/v1/agent"));
  EXPECT_EQ(info["capabilities"], json({"rust"}));
  EXPECT_EQ(info["expertise"], json({"compilers"}));
  EXPECT_EQ(info["models"], json({"qwen2.5"}));
  EXPECT_EQ(info["max_tasks"], 1) << "the config wins over the assignment";
  EXPECT_TRUE(pubsub_.find(kRoleType).empty()) << "no role, no role announcement";
}

TEST_F(AgentPluginTest, ConfigOutsideTheSchemaIsRefused) {
  plugin_.emplace(chorus::testing::load(chorus_plugin_entry_v1, host_, R"({"max_tasks": -1})"));
  EXPECT_EQ(plugin_->status(), CHORUS_E_CONFIG);
  plugin_.reset();
  plugin_.emplace(chorus::testing::load(chorus_plugin_entry_v1, host_, R"({"colour": "red"})"));
  EXPECT_EQ(plugin_->status(), CHORUS_E_CONFIG);
  plugin_.reset();
  plugin_.emplace(
      chorus::testing::load(chorus_plugin_entry_v1, host_, R"({"owner_timeout_ms": 100, "progress_interval_ms": 200})"));
  EXPECT_EQ(plugin_->status(), CHORUS_E_CONFIG);
  EXPECT_NE(plugin_->message().find("owner_timeout_ms"), std::string::npos) << plugin_->message();
  plugin_.reset();
}

TEST_F(AgentPluginTest, StopUnsubscribesAndCancelsTimers) {
  start();
  EXPECT_EQ(pubsub_.subscriptions(), 2u);
  stop();
  EXPECT_EQ(pubsub_.subscriptions(), 0u);
  EXPECT_EQ(host_.held_refs(), 0u);
}

TEST_F(AgentPluginTest, OnlyTheElectedAdminReannounces) {
  chorus_election_v1 election{};
  election.struct_size = sizeof election;
  election.is_admin = &fake_is_admin;
  g_admin = 0;
  host_.provide(CHORUS_ELECTION_SERVICE, 1, 0, &election, nullptr, "election");
  start();
  EXPECT_EQ(body(call("GET", "/api/v1/agent"))["is_admin"], false);
  EXPECT_EQ(body(call("GET", "/api/v1/agent"))["services"]["election"], true);
  // Nobody here can do it: the claim window closes empty, and unclaimed_retry_ms later the admin
  // re-announces. This agent is not the admin yet.
  TaskAnnouncement t{"q-1", 1, "quantum", "", {"quantum"}, "chorus", "agent-b", "agent-b", 0};
  pubsub_.deliver(kCoordinationTopic, kAnnouncementType, to_json(t), kPeerA);
  advance_until([] { return false; }, 1000ms);
  EXPECT_TRUE(pubsub_.find(kAnnouncementType).empty());
  g_admin = 1;
  ASSERT_TRUE(advance_until([&] { return !pubsub_.find(kAnnouncementType).empty(); }, 1000ms));
  const json again = pubsub_.find(kAnnouncementType)[0].data;
  EXPECT_EQ(again["attempt"], 2);
  EXPECT_EQ(again["origin"], "agent-b");
  EXPECT_EQ(again["announced_by"], "agent-a");
  EXPECT_EQ(metric("chorus_agent_tasks_total", {"reannounced"}), 1);
  stop();
  host_.withdraw(CHORUS_ELECTION_SERVICE);
}

// With an election of 3 members: only the admin's task_assign starts work, the outcome goes out as
// task_result, and task_complete follows only once a second agent acknowledged it.
TEST_F(AgentPluginTest, WithAMembershipTheAdminAssignsAndAMajorityCommits) {
  chorus_election_v1 election{};
  election.struct_size = sizeof election;
  election.is_admin = &fake_is_admin;
  election.get_admin_json = &fake_admin_json;
  g_admin = 0;
  host_.provide(CHORUS_ELECTION_SERVICE, 1, 0, &election, nullptr, "election");
  start();
  EXPECT_EQ(body(call("GET", "/api/v1/agent"))["completion_quorum"], 2);
  TaskAnnouncement t{"fenced-1", 1, "review", "", {}, "chorus", "agent-b", "agent-b", 1700000000000};
  pubsub_.deliver(kCoordinationTopic, kAnnouncementType, to_json(t), kPeerA);
  ASSERT_EQ(pubsub_.find(kClaimType).size(), 1u);
  // The claim window closes with this agent the only claimant, but it is not the admin: no work yet.
  advance_until([] { return false; }, 300ms);
  EXPECT_TRUE(pubsub_.find(kProgressType).empty()) << "work started without the admin's assignment";
  EXPECT_EQ(body(call("GET", "/api/v1/agent/tasks/fenced-1"))["status"], "claimed");
  pubsub_.deliver(kCoordinationTopic, kAssignType, to_json(TaskAssign{"fenced-1", 1, kPeerA, "agent-b", kSelf, "agent-a"}),
                  kPeerA);
  ASSERT_TRUE(advance_until([&] { return !pubsub_.find(kResultType).empty(); }, 2000ms));
  EXPECT_EQ(pubsub_.find(kResultType)[0].data["node_id"], kSelf);
  ASSERT_FALSE(pubsub_.find(kAckType).empty()) << "the owner acknowledges its own result";
  advance_until([] { return false; }, 200ms);
  EXPECT_TRUE(pubsub_.find(kCompleteType).empty()) << "committed with 1 acknowledgement of the 2 needed";
  EXPECT_GE(pubsub_.find(kResultType).size(), 2u) << "the result is resent until committed";
  pubsub_.deliver(kCoordinationTopic, kAckType, to_json(TaskAck{"fenced-1", 1, kPeerA, "agent-b", kSelf}), kPeerA);
  auto done = pubsub_.find(kCompleteType);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].data["node_id"], kSelf);
  EXPECT_EQ(body(call("GET", "/api/v1/agent/tasks/fenced-1"))["status"], "completed");
  // A late claim for it is answered with the outcome, by its owner.
  pubsub_.clear();
  pubsub_.deliver(kCoordinationTopic, kClaimType, to_json(TaskClaim{"fenced-1", 2, kPeerA, "agent-b", 0, 3}), kPeerA);
  ASSERT_EQ(pubsub_.find(kCompleteType).size(), 1u);
  EXPECT_EQ(metric("chorus_agent_duplicate_completions_total"), 0);
  stop();
  host_.withdraw(CHORUS_ELECTION_SERVICE);
}

TEST_F(AgentPluginTest, ReconfigureBroadcastsChangedCapabilitiesAndTimingsNeedARestart) {
  start();
  pubsub_.clear();
  json cfg = json::parse(kFastConfig);
  cfg["capabilities"] = {"general", "reasoning", "testing"};
  ASSERT_EQ(plugin_->reconfigure(cfg.dump()), CHORUS_OK) << plugin_->message();
  auto caps = pubsub_.find(kCapabilityType);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].data["changed"], true);
  EXPECT_EQ(caps[0].data["capabilities"], cfg["capabilities"]);
  EXPECT_EQ(body(call("GET", "/api/v1/agent"))["capabilities"], cfg["capabilities"]);
  cfg["claim_window_ms"] = 500;
  EXPECT_EQ(plugin_->reconfigure(cfg.dump()), CHORUS_E_NEEDS_RESTART);
}

}  // namespace
}  // namespace chorus::agent

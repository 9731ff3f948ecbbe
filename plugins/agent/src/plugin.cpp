// The agent plugin (README.md): this agent on the CHORUS network. Broadcasts its availability,
// capabilities and role on CHORUS/coordination/v1, keeps the directory of agents it hears, and takes
// part in task coordination (announce, claim, own, progress, complete, re-announce), doing the work
// through a Worker (work.hpp) over chorus.reasoning, chorus.ucxi and chorus.backbeat when they run.
// This file is the descriptor and the glue to the host; runtime.hpp holds the agent.
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/election_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/services/ucxi_v1.h>

#include "http_routes.hpp"
#include "runtime.hpp"
#include "settings.hpp"
#include "work.hpp"

namespace chorus::agent {
namespace {

using PubsubRef = chorus::ServiceRef<chorus_pubsub_v1>;

std::string string_member(const json &j, const char *key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// The node id is this agent's libp2p peer id when chorus.p2p.host runs, else the agent id.
std::string local_node_id(const chorus::Host &host, const std::string &agent_id) {
  auto p2p = host.try_acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
  if (p2p && p2p.has<&chorus_p2p_host_v1::local_peer_id>()) {
    char text[128] = {};
    size_t len = 0;
    if (p2p.table()->local_peer_id(p2p.self(), nullptr, 0, nullptr, text, sizeof text, &len) == CHORUS_OK && len > 0 &&
        len < sizeof text)
      return std::string(text, len);
  }
  return agent_id;
}

bool timings_differ(const Settings &a, const Settings &b) {
  return a.claim_window_ms != b.claim_window_ms || a.progress_interval_ms != b.progress_interval_ms ||
         a.owner_timeout_ms != b.owner_timeout_ms || a.unclaimed_retry_ms != b.unclaimed_retry_ms ||
         a.simulated_work_ms != b.simulated_work_ms || a.llm_timeout_ms != b.llm_timeout_ms;
}

class AgentPlugin final : public chorus::Plugin, public RuntimeSource {
 public:
  AgentPlugin(chorus::Host &host, std::string_view config_json) : host_(host), config_(config_json) {
    settings_ = read_settings(config_);
    tasks_ = host_.counter("chorus_agent_tasks_total", "Task coordination events of this agent", {"event"});
    rejected_ = host_.counter("chorus_agent_messages_rejected_total", "Malformed agent messages dropped", {"reason"});
    duplicates_ = host_.counter("chorus_agent_duplicate_completions_total",
                                "task_complete messages heard for a task already completed");
    directory_ = host_.gauge("chorus_agent_directory_agents", "Agents in this agent's directory");
    current_ = host_.gauge("chorus_agent_current_tasks", "Tasks this agent is working on");
    try {
      register_routes(host_, *this);
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE && e.code() != CHORUS_E_UNSUPPORTED) throw;  // no HTTP listener
    }
  }

  ~AgentPlugin() override { stop_runtime(); }

  void start() override {
    auto pubsub = std::make_shared<PubsubRef>(host_.acquire<chorus_pubsub_v1>(CHORUS_PUBSUB_SERVICE, "^1"));
    if (!pubsub->has<&chorus_pubsub_v1::publish>() || !pubsub->has<&chorus_pubsub_v1::subscribe>() ||
        !pubsub->has<&chorus_pubsub_v1::unsubscribe>())
      throw chorus::Error(CHORUS_E_VERSION, "agent: the chorus.pubsub provider lacks publish or subscribe");
    const json info = json::parse(host_.host_info(), nullptr, false);
    Identity self;
    self.agent_id = string_member(info, "agent_id");
    self.role = string_member(info, "role");
    self.node_id = local_node_id(host_, self.agent_id);
    if (self.node_id.empty()) throw chorus::Error(CHORUS_E_CONFIG, "agent: the host gives no agent id");
    const std::string state_dir = string_member(info, "state_dir");
    const std::string copy = state_dir.empty() ? std::string() : state_dir + "/agent/capabilities.json";

    WorkerOptions wo;
    wo.agent_id = self.agent_id;
    wo.role = self.role;
    wo.project = settings_.project;
    wo.simulated_work = std::chrono::milliseconds(settings_.simulated_work_ms);
    wo.llm_timeout = std::chrono::milliseconds(settings_.llm_timeout_ms);
    std::unique_ptr<Worker> worker = make_service_worker(host_, wo);

    RuntimeIo io;
    io.publish = [pubsub, &host = host_](const char *topic, const std::string &type, const json &data) {
      const std::string text = data.dump(-1, ' ', false, json::error_handler_t::replace);
      chorus::ErrorBuffer err;
      const chorus_status st = pubsub->table()->publish(pubsub->self(), topic, type.c_str(), text.data(), text.size(),
                                                        nullptr, 0, nullptr, err.get());
      if (st != CHORUS_OK) host.debug("agent: publish " + type + ": " + std::string(err.text()));
      return st == CHORUS_OK;
    };
    io.mono_ms = [&host = host_] { return host.now_ms(); };
    io.wall_ms = [] {
      return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
    };
    io.info = [&host = host_](const std::string &m) { host.info(m); };
    io.warn = [&host = host_](const std::string &m) { host.warn(m); };
    io.debug = [&host = host_](const std::string &m) { host.debug(m); };
    // Acquired per use: an election that starts, is swapped or goes away is followed.
    io.is_admin = [&host = host_]() -> std::optional<bool> {
      auto e = host.try_acquire<chorus_election_v1>(CHORUS_ELECTION_SERVICE, "^1");
      if (!e) return std::nullopt;
      int32_t admin = 0;
      chorus::ErrorBuffer err;
      if (e.table()->is_admin(e.self(), &admin, err.get()) != CHORUS_OK) return false;  // never assume leadership
      return admin == 1;
    };
    io.cluster_size = [&host = host_]() -> uint32_t {
      auto e = host.try_acquire<chorus_election_v1>(CHORUS_ELECTION_SERVICE, "^1");
      if (!e || e.table()->get_admin_json == nullptr) return 0;
      chorus_buf buf{};
      chorus::ErrorBuffer err;
      uint32_t members = 0;
      if (e.table()->get_admin_json(e.self(), &buf, err.get()) == CHORUS_OK) {
        const json j = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
        if (j.is_object() && j.contains("cluster_size") && j["cluster_size"].is_number_unsigned())
          members = static_cast<uint32_t>(std::min<uint64_t>(j["cluster_size"].get<uint64_t>(), 1024));
        if (buf.release != nullptr) buf.release(&buf);
      }
      return members;
    };
    io.pubsub_peers = [pubsub]() -> size_t {
      if (!pubsub->has<&chorus_pubsub_v1::topics_json>()) return 0;
      chorus_buf buf{};
      chorus::ErrorBuffer err;
      size_t peers = 0;
      if (pubsub->table()->topics_json(pubsub->self(), &buf, err.get()) == CHORUS_OK) {
        const json topics = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
        if (topics.is_array())
          for (const json &t : topics)
            if (t.is_object() && t.value("topic", "") == kCoordinationTopic && t.contains("peers") &&
                t["peers"].is_number_unsigned())
              peers = t["peers"].get<size_t>();
        if (buf.release != nullptr) buf.release(&buf);
      }
      return peers;
    };
    io.services = [&host = host_]() {
      return json{{"election", static_cast<bool>(host.try_acquire<chorus_election_v1>(CHORUS_ELECTION_SERVICE, "^1"))}};
    };
    RuntimeMetrics m;
    m.task_event = [c = tasks_](const std::string &event) { c.inc(event); };
    m.rejected = [c = rejected_](const std::string &reason) { c.inc(reason); };
    m.directory_agents = [g = directory_](double v) { g.set(v); };
    m.current_tasks = [g = current_](double v) { g.set(v); };
    m.duplicate_completion = [c = duplicates_] { c.inc(); };

    auto rt = std::make_shared<Runtime>(settings_, self, std::move(io), std::move(m), std::move(worker), copy);
    {
      std::lock_guard lk(mu_);
      runtime_ = rt;
      role_ = self.role;
    }
    subscribe(*pubsub, kCoordinationTopic, &AgentPlugin::on_coordination, &coordination_sub_);
    subscribe(*pubsub, kHmmmTopic, &AgentPlugin::on_hmmm, &hmmm_sub_);
    pubsub_ = pubsub;
    timer_ = host_.timer(std::chrono::milliseconds(rt->tick_interval_ms()),
                         std::chrono::milliseconds(rt->tick_interval_ms()), [this] {
                           if (auto r = runtime()) r->tick();
                         });
    rt->start();
    host_.report_health(chorus::Health::ok);
  }

  void stop(std::chrono::milliseconds) override { stop_runtime(); }

  void reconfigure(std::string_view config_json) override {
    Settings next = read_settings(std::string(config_json));
    if (timings_differ(next, settings_)) throw chorus::NeedsRestart("agent: changing the coordination timings needs a restart");
    config_ = std::string(config_json);
    settings_ = next;
    if (auto rt = runtime()) rt->apply(settings_, role_);
  }

  // SIGHUP: the assignment (host_info) may have changed capabilities, expertise, max_tasks or the role.
  void reload() override {
    Settings next = read_settings(config_);
    settings_ = next;
    const json info = json::parse(host_.host_info(), nullptr, false);
    role_ = string_member(info, "role");
    if (auto rt = runtime()) rt->apply(settings_, role_);
  }

  std::shared_ptr<Runtime> runtime() override {
    std::lock_guard lk(mu_);
    return runtime_;
  }

 private:
  Settings read_settings(const std::string &config) const {
    try {
      return parse_settings(config, host_.host_info(), &process_env);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
  }

  void subscribe(PubsubRef &pubsub, const char *topic, chorus_pubsub_message_fn fn, uint64_t *out) {
    chorus::ErrorBuffer err;
    uint64_t sub = 0;
    const chorus_status st = pubsub.table()->subscribe(pubsub.self(), topic, fn, this, &sub, err.get());
    if (st != CHORUS_OK)
      throw chorus::Error(st, "agent: cannot subscribe to " + std::string(topic) + ": " + std::string(err.text()));
    *out = sub;
  }

  // The pubsub plugin's thread. Own publications (local) were applied when they were made.
  static void on_coordination(void *arg, const chorus_pubsub_message *msg) {
    auto *self = static_cast<AgentPlugin *>(arg);
    if (msg == nullptr || msg->local != 0) return;
    auto rt = self->runtime();
    if (!rt) return;
    rt->heard_coordination(std::string_view(reinterpret_cast<const char *>(msg->data), msg->data_len),
                           msg->from_text != nullptr ? std::string_view(msg->from_text) : std::string_view());
  }

  static void on_hmmm(void *arg, const chorus_pubsub_message *msg) {
    auto *self = static_cast<AgentPlugin *>(arg);
    if (msg == nullptr || msg->local != 0) return;  // our own are logged when published
    auto rt = self->runtime();
    if (!rt) return;
    rt->heard_hmmm(std::string_view(reinterpret_cast<const char *>(msg->data), msg->data_len));
  }

  void stop_runtime() {
    // Unsubscribe first: after it returns no handler runs or will run again.
    if (pubsub_) {
      if (coordination_sub_ != 0) pubsub_->table()->unsubscribe(pubsub_->self(), coordination_sub_);
      if (hmmm_sub_ != 0) pubsub_->table()->unsubscribe(pubsub_->self(), hmmm_sub_);
      coordination_sub_ = hmmm_sub_ = 0;
    }
    if (timer_ != 0) {
      host_.cancel_timer(timer_);
      timer_ = 0;
    }
    std::shared_ptr<Runtime> rt;
    {
      std::lock_guard lk(mu_);
      rt = std::move(runtime_);
    }
    if (rt) rt->stop();
    pubsub_.reset();
  }

  chorus::Host &host_;
  std::string config_;
  Settings settings_;
  std::string role_;
  chorus::Counter tasks_, rejected_, duplicates_;
  chorus::Gauge directory_, current_;
  std::mutex mu_;
  std::shared_ptr<Runtime> runtime_;
  std::shared_ptr<PubsubRef> pubsub_;
  uint64_t coordination_sub_ = 0, hmmm_sub_ = 0, timer_ = 0;
};

// pubsub carries everything; the rest is used when it runs: the election decides who re-announces,
// reasoning does the work, ucxi files the decision, backbeat tracks the work, p2p.host names the node.
constexpr chorus_require kRequires[] = {
    chorus::require(CHORUS_PUBSUB_SERVICE, "^1"),
    chorus::require(CHORUS_ELECTION_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
    chorus::require(CHORUS_BACKBEAT_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
    chorus::require(CHORUS_REASONING_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
    chorus::require(CHORUS_UCXI_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
    chorus::require(CHORUS_P2P_HOST_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL)};

}  // namespace
}  // namespace chorus::agent

CHORUS_PLUGIN(chorus::agent::AgentPlugin, .id = "agent", .version = "0.1.0",
              .description = "This agent on the CHORUS network: broadcasts, directory, task coordination",
              .vendor = "CHORUS", .license = "Apache-2.0", .requirements = chorus::agent::kRequires,
              .config_schema = chorus::agent::kConfigSchema);

// The `backbeat` plugin: provides chorus.backbeat v1 (chorus/services/backbeat_v1.h), keeps the agent
// in step with the cluster's BACKBEAT pulse over NATS, tracks P2P operations against beat budgets,
// emits StatusClaims, optionally pulses itself. See plugins/backbeat/README.md.
#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/election_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <sodium.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine.hpp"
#include "transport.hpp"

namespace chorus::backbeat {
namespace {

using json = nlohmann::json;

// The JSON Schema of plugins.backbeat.config: the one declaration of the plugin's keys, their types,
// ranges and defaults (CHORUS's: docs/protocols.md, BACKBEAT over NATS). The host applies it, so
// parse_settings reads a complete config.
// agent_id has no default here: it is "chorus-<the host's agent id>". cluster_id "" is the agent's own
// cluster (agent.cluster_id), or CHORUS's "chorus-production" when the agent has none. Environment
// variables override cluster_id, agent_id, nats_url and enabled (defaults < file < environment).
constexpr const char *kConfigSchema = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "enabled": {"type": "boolean", "default": true},
    "cluster_id": {"type": "string", "maxLength": 64, "default": ""},
    "agent_id": {"type": "string", "minLength": 1, "maxLength": 128},
    "nats_url": {"type": "string", "minLength": 1, "default": "nats://backbeat-nats:4222"},
    "subject_prefix": {"type": "string", "minLength": 1, "maxLength": 64, "default": "backbeat"},
    "pulse": {"type": "boolean", "default": false},
    "tempo_bpm": {"type": "number", "minimum": 0.1, "maximum": 1000, "default": 2},
    "bar_length": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 120},
    "degrade_after_beats": {"type": "number", "minimum": 1, "maximum": 1000, "default": 2},
    "health_every_beats": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 8},
    "buffer_limit": {"type": "integer", "minimum": 1, "maximum": 10000000, "default": 10000},
    "max_pending_frames": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1024},
    "connect_timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 2000},
    "reconnect_wait_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 250},
    "reconnect_wait_max_ms": {"type": "integer", "minimum": 1, "maximum": 3600000, "default": 8000},
    "tick_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "default": 0},
    "signing_key": {"type": "string", "x-secret": true, "default": ""},
    "signing_key_file": {"type": "string", "default": ""}
  }
})";

// Every value comes from the config completed by kConfigSchema (the defaults live there).
struct Settings {
  bool enabled = false;
  std::string cluster_id;
  std::string agent_id;
  std::string nats_url;
  std::string subject_prefix;
  bool pulse = false;
  double tempo_bpm = 0;
  int64_t bar_length = 0;
  double degrade_after_beats = 0;
  int64_t health_every = 0;
  int64_t buffer_limit = 0;
  int64_t max_pending_frames = 0;
  int64_t connect_timeout_ms = 0;
  int64_t reconnect_wait_ms = 0;
  int64_t reconnect_wait_max_ms = 0;
  int64_t tick_ms = 0;
  std::string signing_key;
  bool operator==(const Settings &) const = default;
};

[[noreturn]] void config_error(const std::string &msg) { throw chorus::Error(CHORUS_E_CONFIG, msg); }

const char *getenv_nonempty(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool valid_subject_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '*' || c == '>' || static_cast<unsigned char>(c) < 0x20)
      return false;
  return s.front() != '.' && s.back() != '.' && s.find("..") == std::string_view::npos;
}

// The spellings of a boolean environment variable that deployments use: true/false, 1/0, yes/no and
// on/off, in any case. Anything else is an error rather than a guess.
std::optional<bool> parse_env_bool(std::string_view v) {
  std::string lower(v);
  for (char &c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "0" || lower == "no" || lower == "off") return false;
  return std::nullopt;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// Reads the `config:` subtree, which kConfigSchema has validated and completed, checks what the schema
// cannot express (tempo steps, signing_key vs signing_key_file, the key file), then applies the
// CHORUS_BACKBEAT_* environment (precedence: defaults < file < environment, docs/contract.md, Configuration).
Settings parse_settings(std::string_view config_json, const json &host_info) {
  const json cfg = json::parse(config_json.begin(), config_json.end(), nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) config_error("config must be a JSON object");
  Settings s;
  std::string key_file;
  try {
    s.enabled = cfg.at("enabled").get<bool>();
    s.cluster_id = cfg.at("cluster_id").get<std::string>();
    s.agent_id = cfg.value("agent_id", std::string());
    s.nats_url = cfg.at("nats_url").get<std::string>();
    s.subject_prefix = cfg.at("subject_prefix").get<std::string>();
    s.pulse = cfg.at("pulse").get<bool>();
    s.tempo_bpm = cfg.at("tempo_bpm").get<double>();
    s.bar_length = cfg.at("bar_length").get<int64_t>();
    s.degrade_after_beats = cfg.at("degrade_after_beats").get<double>();
    s.health_every = cfg.at("health_every_beats").get<int64_t>();
    s.buffer_limit = cfg.at("buffer_limit").get<int64_t>();
    s.max_pending_frames = cfg.at("max_pending_frames").get<int64_t>();
    s.connect_timeout_ms = cfg.at("connect_timeout_ms").get<int64_t>();
    s.reconnect_wait_ms = cfg.at("reconnect_wait_ms").get<int64_t>();
    s.reconnect_wait_max_ms = cfg.at("reconnect_wait_max_ms").get<int64_t>();
    s.tick_ms = cfg.at("tick_ms").get<int64_t>();
    s.signing_key = cfg.at("signing_key").get<std::string>();
    key_file = cfg.at("signing_key_file").get<std::string>();
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    config_error(std::string("config does not match the plugin's schema: ") + e.what());
  }
  if (!key_file.empty()) {
    if (!s.signing_key.empty()) config_error("config: give signing_key or signing_key_file, not both");
    std::ifstream in(key_file);
    if (!in) config_error("config.signing_key_file: cannot read " + key_file);
    std::stringstream ss;
    ss << in.rdbuf();
    s.signing_key = trim(ss.str());
  }
  if (!tempo_valid(s.tempo_bpm)) config_error("config.tempo_bpm: must be 0.1..1000 in steps of 0.1");

  // Environment (CHORUS names; docs/contract.md, Environment names).
  if (const char *v = getenv_nonempty("CHORUS_BACKBEAT_ENABLED")) {
    if (auto b = parse_env_bool(v)) s.enabled = *b;
    else config_error(std::string("CHORUS_BACKBEAT_ENABLED: expected true/false (also 1/0, yes/no, on/off, any case), got '") +
                      v + "'");
  }
  if (const char *v = getenv_nonempty("CHORUS_BACKBEAT_CLUSTER_ID")) s.cluster_id = v;
  if (const char *v = getenv_nonempty("CHORUS_BACKBEAT_AGENT_ID")) s.agent_id = v;
  if (const char *v = getenv_nonempty("CHORUS_BACKBEAT_NATS_URL")) s.nats_url = v;

  if (s.cluster_id.empty()) {
    s.cluster_id = host_info.is_object() ? host_info.value("cluster_id", std::string()) : std::string();
    if (s.cluster_id.empty()) s.cluster_id = "chorus-production";
  }
  if (s.agent_id.empty()) {
    std::string host_agent = host_info.is_object() ? host_info.value("agent_id", std::string()) : std::string();
    s.agent_id = sanitize_agent_id("chorus-" + (host_agent.empty() ? std::string("agent") : host_agent));
  }
  if (!valid_cluster_id(s.cluster_id))
    config_error("cluster_id '" + s.cluster_id + "' must be 1-64 characters of [A-Za-z0-9_-]");
  if (!valid_agent_id(s.agent_id)) config_error("agent_id '" + s.agent_id + "' must be 1-128 characters of [A-Za-z0-9_:-]");
  if (!valid_subject_token(s.subject_prefix)) config_error("config.subject_prefix: not a valid NATS subject prefix");
  if (s.reconnect_wait_max_ms < s.reconnect_wait_ms) s.reconnect_wait_max_ms = s.reconnect_wait_ms;
  return s;
}

const char *drift_name(int32_t d) {
  switch (d) {
    case CHORUS_BACKBEAT_DRIFT_ACCEPTABLE: return "acceptable";
    case CHORUS_BACKBEAT_DRIFT_MODERATE: return "moderate";
    case CHORUS_BACKBEAT_DRIFT_SEVERE: return "severe";
    default: return "unknown";
  }
}

uint64_t unix_now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string_view sv(const char *p, size_t n) { return p == nullptr ? std::string_view() : std::string_view(p, n); }

}  // namespace

class BackbeatPlugin final : public chorus::Plugin, public TransportListener {
 public:
  BackbeatPlugin(chorus::Host &host, std::string_view config_json) : host_(host) {
    json info;
    try {
      info = json::parse(host_.host_info(), nullptr, false);
    } catch (const chorus::Error &) {
      info = json::object();
    }
    s_ = parse_settings(config_json, info);
    node_id_ = info.is_object() ? info.value("agent_id", std::string()) : std::string();
    if (node_id_.empty()) node_id_ = s_.agent_id;
    if (!s_.signing_key.empty()) signer_ = std::make_unique<Signer>(s_.signing_key);
    if (sodium_init() < 0) throw chorus::Error(CHORUS_E_INTERNAL, "libsodium failed to initialise");

    beats_ = host_.counter("chorus_backbeat_beats_total", "Beats processed, by source", {"source"});
    frames_rejected_ = host_.counter("chorus_backbeat_frames_rejected_total", "BeatFrames ignored, by reason", {"reason"});
    claims_ = host_.counter("chorus_backbeat_claims_total", "StatusClaims built (operation and health claims)");
    published_ = host_.counter("chorus_backbeat_messages_published_total", "Messages handed to NATS");
    dropped_ = host_.counter("chorus_backbeat_messages_dropped_total", "Messages dropped from the full outbox");
    buffered_ = host_.gauge("chorus_backbeat_messages_buffered", "Messages waiting in the outbox for NATS");
    reconnects_ = host_.counter("chorus_backbeat_reconnects_total", "NATS reconnections");
    slow_ = host_.counter("chorus_backbeat_slow_consumer_total", "NATS slow-consumer events on the beat subscription");
    tempo_jumps_ = host_.counter("chorus_backbeat_tempo_jumps_total",
                                 "BeatFrames whose tempo changed by more than 10 % (accepted, BACKBEAT-REQ-004)");
    connected_g_ = host_.gauge("chorus_backbeat_connected", "1 while connected to NATS");
    degraded_g_ = host_.gauge("chorus_backbeat_local_degradation", "1 while beats are derived locally");
    active_g_ = host_.gauge("chorus_backbeat_active_operations", "Active P2P operations");
    beat_g_ = host_.gauge("chorus_backbeat_current_beat", "Current beat index");
    tempo_g_ = host_.gauge("chorus_backbeat_tempo_bpm", "Tempo announced by the pulse");
    measured_g_ = host_.gauge("chorus_backbeat_measured_bpm", "Tempo measured from beat arrival");
    ops_ = host_.counter("chorus_backbeat_operations_total", "P2P operations, by type and event", {"type", "event"});
    overruns_ = host_.counter("chorus_backbeat_budget_overruns_total", "Operations or budgeted calls over their beat budget",
                              {"kind"});
    beat_cost_ = host_.histogram("chorus_backbeat_beat_processing_seconds", "CPU time to process one beat", {},
                                 {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5});

    try {
      host_.route("GET", "/backbeat/operations", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
        ex.respond(200, "application/json", operations_json());
      });
      host_.route("GET", "/backbeat/health", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
        ex.respond(200, "application/json", health_json());
      });
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE) throw;
      host_.debug("no HTTP listener: /backbeat routes not mounted");
    }

    table_.struct_size = sizeof table_;
    table_.start_operation = &BackbeatPlugin::c_start;
    table_.update_phase = &BackbeatPlugin::c_update;
    table_.complete_operation = &BackbeatPlugin::c_complete;
    table_.fail_operation = &BackbeatPlugin::c_fail;
    table_.execute_with_beat_budget = &BackbeatPlugin::c_budget;
    table_.get_health = &BackbeatPlugin::c_health;
    table_.get_status = &BackbeatPlugin::c_status;
  }

  ~BackbeatPlugin() override {
    if (transport_leaked_) (void)transport_.release();  // callbacks may still reference it: never free
  }

  void start() override {
    if (!s_.enabled) {
      host_.warn("BACKBEAT integration is disabled (CHORUS_BACKBEAT_ENABLED=false or enabled: false); P2P runs "
                 "without beat synchronisation");
      host_.report_health(chorus::Health::ok, "disabled");
      started_ = true;
      return;
    }
    if (std::string peer = local_peer_id(); !peer.empty()) {
      std::lock_guard lk(mu_);
      node_id_ = std::move(peer);
    }
    const uint64_t mono = host_.now_ms();
    EngineConfig ec;
    ec.cluster_id = s_.cluster_id;
    ec.agent_id = s_.agent_id;
    ec.node_id = node_id_;
    ec.tempo_bpm = s_.tempo_bpm;
    ec.bar_length = s_.bar_length;
    ec.degrade_after_beats = s_.degrade_after_beats;
    ec.health_every = s_.health_every;
    engine_ = std::make_unique<Engine>(ec, mono, unix_now_ms());

    TransportConfig tc;
    tc.url = s_.nats_url;
    tc.beat_subject = s_.subject_prefix + ".beat." + s_.cluster_id;
    tc.status_subject = s_.subject_prefix + ".status." + s_.cluster_id + "." + s_.agent_id;
    tc.client_name = "chorus-backbeat:" + s_.agent_id;
    tc.connect_timeout_ms = s_.connect_timeout_ms;
    tc.reconnect_wait_ms = s_.reconnect_wait_ms;
    tc.reconnect_wait_max_ms = s_.reconnect_wait_max_ms;
    tc.buffer_limit = static_cast<size_t>(s_.buffer_limit);
    tc.max_pending_frames = static_cast<int>(s_.max_pending_frames);
    transport_ = make_nats_transport(tc, this, signer_.get());

    const double period = 60000.0 / s_.tempo_bpm;
    const auto tick = s_.tick_ms > 0 ? s_.tick_ms
                                     : static_cast<int64_t>(std::clamp(period / 10.0, 5.0, 1000.0));
    host_.report_health(chorus::Health::degraded, "connecting to " + s_.nats_url);
    transport_->start();
    ticker_ = raw_timer(static_cast<uint64_t>(tick), static_cast<uint64_t>(tick), &BackbeatPlugin::c_tick);
    if (s_.pulse) {
      std::lock_guard lk(mu_);
      const uint64_t unix = unix_now_ms();
      pulse_index_ = static_cast<int64_t>(static_cast<double>(unix) / period) + 1;
      pulse_due_ = static_cast<double>(mono) + (static_cast<double>(pulse_index_) * period - static_cast<double>(unix));
      arm_pulse_locked();
    }
    started_ = true;
    host_.info("BACKBEAT integration started - cluster=" + s_.cluster_id + " agent=" + s_.agent_id + " nats=" +
               s_.nats_url + (s_.pulse ? " pulse=on tempo=" + fmt(s_.tempo_bpm) + " BPM" : std::string()));
  }

  void stop(std::chrono::milliseconds budget) override {
    uint64_t ticker = 0, pulse = 0;
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      ticker = ticker_;
      pulse = pulse_timer_;
    }
    if (ticker != 0) host_.cancel_timer(ticker);
    if (pulse != 0) host_.cancel_timer(pulse);
    if (transport_) {
      std::lock_guard plk(pub_mu_);
      if (!transport_->stop(budget * 3 / 4)) {
        transport_leaked_ = true;
        host_.warn("NATS connection did not close within the stop budget; leaving it behind");
      }
    }
    host_.info("BACKBEAT integration stopped");
  }

  // Only a tempo change is applied live; it takes effect in pulse mode, where the pulse moves toward
  // the new tempo by at most 10 % per bar (BACKBEAT-REQ-004) instead of jumping. A listener keeps
  // following the pulse's tempo either way. Any other change restarts the plugin.
  void reconfigure(std::string_view config_json) override {
    json info;
    try {
      info = json::parse(host_.host_info(), nullptr, false);
    } catch (const chorus::Error &) {
      info = json::object();
    }
    Settings next = parse_settings(config_json, info);
    Settings same_tempo = next;
    same_tempo.tempo_bpm = s_.tempo_bpm;
    if (!(same_tempo == s_)) throw chorus::NeedsRestart("backbeat applies only tempo_bpm without a restart");
    if (next.tempo_bpm == s_.tempo_bpm) return;
    double from = 0;
    {
      std::lock_guard lk(mu_);
      s_.tempo_bpm = next.tempo_bpm;
      if (!engine_) return;
      from = engine_->tempo();
      engine_->set_pulse_target(next.tempo_bpm);
    }
    host_.info("tempo_bpm reconfigured to " + fmt(next.tempo_bpm) + " BPM" +
               (s_.pulse ? "; the pulse moves from " + fmt(from) + " BPM by at most 10 % per bar"
                         : std::string("; used when this agent pulses or derives beats")));
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_BACKBEAT_SERVICE && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

  // ---- TransportListener (NATS threads) ----
  void on_frame(std::string_view payload) override {
    std::string why;
    FrameVerdict verdict = FrameVerdict::invalid;
    const auto t0 = std::chrono::steady_clock::now();
    std::string jump;
    bool warn_legacy = false;
    uint64_t legacy_count = 0;
    with_engine([&](Engine &e, std::vector<Outgoing> &out) {
      const uint64_t jumps = e.stats().tempo_jumps;
      const uint64_t mono = host_.now_ms();
      verdict = e.on_frame(payload, mono, unix_now_ms(), &out, &why);
      if (e.stats().tempo_jumps != jumps) {
        const TempoJump &j = e.last_tempo_jump();
        jump = "tempo jump at beat " + std::to_string(j.beat_index) + ": " + fmt(j.from_bpm) + " -> " + fmt(j.to_bpm) +
               " BPM exceeds the 10 % change limit (BACKBEAT-REQ-004); following the pulse";
        add_error_locked(jump);
      }
      if (verdict == FrameVerdict::legacy) {
        // One warning per minute at most: an old pulse publishes every beat.
        legacy_count = e.stats().frames_legacy;
        if (legacy_warned_at_ == 0 || mono - legacy_warned_at_ >= kLegacyWarnEveryMs) {
          warn_legacy = true;
          legacy_warned_at_ = mono == 0 ? 1 : mono;
        }
      }
    });
    if (!jump.empty()) host_.warn(jump);
    if (warn_legacy)
      host_.warn("ignored a legacy {bar, beat} BeatFrame (BACKBEAT REQ-043; " + std::to_string(legacy_count) +
                 " so far): it has no beat_index, so it cannot be placed on the v1 beat line; upgrade the pulse");
    switch (verdict) {
      case FrameVerdict::processed:
        beat_cost_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        break;
      case FrameVerdict::synced: break;
      case FrameVerdict::invalid: host_.debug("ignored invalid BeatFrame: " + why); break;
      case FrameVerdict::stale: host_.debug("ignored stale BeatFrame: " + why); break;
      case FrameVerdict::wrong_cluster: host_.debug("ignored BeatFrame: " + why); break;
      case FrameVerdict::legacy: break;
    }
  }

  void on_connection(bool connected, bool reconnect) override {
    {
      std::lock_guard lk(mu_);
      if (stopping_ || !engine_) return;
      engine_->set_connected(connected);
      if (!connected) add_error_locked("disconnected from NATS " + s_.nats_url);
    }
    if (connected)
      host_.info(std::string(reconnect ? "reconnected to NATS " : "connected to NATS ") + s_.nats_url);
    else
      host_.warn("disconnected from NATS " + s_.nats_url + "; buffering claims (limit " +
                 std::to_string(s_.buffer_limit) + ")");
    update_health();
  }

  void on_transport_error(std::string_view what) override {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      add_error_locked(std::string(what));
    }
    host_.warn(what);
  }

 private:
  static std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
  }

  // Timers and tasks go through the raw host API with `this` as arg and NO arg_dtor: the host runs
  // none of them after stop() (plugin.h), and the chorus-agent 0.1.0 host calls a task's arg_dtor
  // once too early (see README "Known host issue"), which the SDK's Host::timer/post would hit.
  uint64_t raw_timer(uint64_t first_ms, uint64_t period_ms, chorus_task_fn fn) {
    uint64_t id = 0;
    chorus::check(host_.api()->timer_start(host_.ctx(), first_ms, period_ms, fn, this, nullptr, &id), "timer_start");
    return id;
  }
  template <void (BackbeatPlugin::*M)()>
  static void trampoline(void *p) noexcept {
    auto *me = static_cast<BackbeatPlugin *>(p);
    try {
      (me->*M)();
    } catch (const std::exception &e) {
      me->host_.error(std::string("backbeat callback failed: ") + e.what());
    } catch (...) {
      me->host_.error("backbeat callback failed");
    }
  }
  static void c_tick(void *p) noexcept { trampoline<&BackbeatPlugin::on_tick>(p); }
  static void c_pulse(void *p) noexcept { trampoline<&BackbeatPlugin::on_pulse>(p); }
  static void c_flush(void *p) noexcept { trampoline<&BackbeatPlugin::flush_task>(p); }

  void add_error_locked(std::string e) {
    errors_.push_back(std::move(e));
    while (errors_.size() > 10) errors_.pop_front();
    if (engine_) engine_->note_error();
  }

  // Runs f(engine, out) under the lock and publishes what it produced, keeping batch order.
  template <class F>
  void with_engine(F &&f) {
    std::vector<Outgoing> out;
    std::unique_lock lk(mu_);
    if (stopping_ || !engine_) return;
    f(*engine_, out);
    std::vector<std::string> beat_lines = engine_->take_beat_log();
    if (!out.empty()) {
      std::unique_lock plk(pub_mu_);
      lk.unlock();
      transport_->publish(std::move(out));
    } else {
      lk.unlock();
    }
    for (const std::string &line : beat_lines) host_.debug(line);
  }

  void on_tick() {
    with_engine([&](Engine &e, std::vector<Outgoing> &out) { e.tick(host_.now_ms(), unix_now_ms(), &out); });
    update_health();
    sync_metrics();
  }

  // ---- pulse ----
  void arm_pulse_locked() {
    const double now = static_cast<double>(host_.now_ms());
    const auto delay = static_cast<int64_t>(std::max(0.0, std::ceil(pulse_due_ - now)));
    try {
      pulse_timer_ = raw_timer(static_cast<uint64_t>(delay), 0, &BackbeatPlugin::c_pulse);
    } catch (const chorus::Error &e) {
      host_.warn(std::string("pulse timer: ") + e.what());
    }
  }

  // The libp2p peer id when a p2p host runs beside us (CHORUS's node id), else "".
  std::string local_peer_id() const {
    chorus::ErrorBuffer err;
    auto ref = host_.try_acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1", &err);
    if (!ref) return {};
    char text[128];
    size_t len = 0;
    if (ref.call<&chorus_p2p_host_v1::local_peer_id>(nullptr, 0, nullptr, text, sizeof text, &len) != CHORUS_OK)
      return {};
    return std::string(text, len);
  }

  bool may_pulse() const {
    chorus::ErrorBuffer err;
    auto ref = host_.try_acquire<chorus_election_v1>(CHORUS_ELECTION_SERVICE, "^1", &err);
    if (!ref) return true;  // no election service: this agent pulses (docs/protocols.md, BACKBEAT operations)
    int32_t admin = 0;
    // An error means "not admin" (election_v1.h): never claim a leadership that cannot be confirmed.
    if (ref.call<&chorus_election_v1::is_admin>(&admin, err.get()) != CHORUS_OK) return false;
    return admin != 0;
  }

  void on_pulse() {
    const bool admin = may_pulse();
    std::vector<Outgoing> out;
    std::unique_lock lk(mu_);
    if (stopping_ || !engine_) return;
    const uint64_t mono = host_.now_ms();
    // The current tempo, which may be on its way to a reconfigured one (next_pulse_frame).
    const double period = engine_->period_ms();
    // Fell behind (suspended, overloaded)? Skip to the current beat rather than bursting.
    while (pulse_due_ + period <= static_cast<double>(mono)) {
      pulse_due_ += period;
      ++pulse_index_;
    }
    if (admin != pulsing_) {
      host_.info(admin ? "pulsing: this agent publishes the beat" : "not pulsing: another agent is the admin");
      pulsing_ = admin;
    }
    engine_->set_pulsing(admin, mono);
    const auto t0 = std::chrono::steady_clock::now();
    if (admin) {
      const uint64_t unix = unix_now_ms();
      BeatFrame f = engine_->next_pulse_frame(pulse_index_, unix);
      Outgoing o;
      o.is_frame = true;
      o.payload = serialize_beat_frame(f);
      out.push_back(std::move(o));
      engine_->pulse_beat(f, mono, unix, &out);
    }
    ++pulse_index_;
    pulse_due_ += engine_->period_ms();  // the beat just made lasts a period of its own tempo
    arm_pulse_locked();
    std::vector<std::string> beat_lines = engine_->take_beat_log();
    std::unique_lock plk(pub_mu_);
    lk.unlock();
    transport_->publish(std::move(out));
    plk.unlock();
    for (const std::string &line : beat_lines) host_.debug(line);
    if (admin) beat_cost_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // ---- health and metrics ----
  void update_health() {
    chorus::Health state = chorus::Health::ok;
    std::string msg;
    {
      std::lock_guard lk(mu_);
      if (stopping_ || !engine_) return;
      const TransportStats ts = transport_->stats();
      const EngineSnapshot es = engine_->snapshot();
      if (!ts.connected) {
        state = chorus::Health::degraded;
        msg = "NATS " + s_.nats_url + " unreachable; running without cluster beat synchronisation";
      } else if (es.degraded) {
        state = chorus::Health::degraded;
        msg = "no pulse: deriving beats locally";
      } else {
        msg = "beat " + std::to_string(es.current_beat) + ", " + std::to_string(es.active_operations) + " operations";
      }
      if (es.degraded && !ts.connected) msg += "; beats derived locally";
      const bool report =
          !health_reported_once_ || state != last_health_ || (state != chorus::Health::ok && msg != last_health_msg_);
      if (es.degraded != last_degraded_) {
        if (es.degraded) host_.warn("no pulse for " + fmt(s_.degrade_after_beats) + " beats: deriving beats locally");
        else host_.info("pulse returned: beat " + std::to_string(es.current_beat) + ", local degradation over");
        last_degraded_ = es.degraded;
      }
      if (!report) return;
      last_health_ = state;
      last_health_msg_ = msg;
      health_reported_once_ = true;
    }
    host_.report_health(state, msg);
  }

  void sync_metrics() {
    EngineStats es;
    EngineSnapshot snap;
    TransportStats ts;
    {
      std::lock_guard lk(mu_);
      if (stopping_ || !engine_) return;
      es = engine_->stats();
      snap = engine_->snapshot();
      ts = transport_->stats();
    }
    std::lock_guard mlk(metrics_mu_);
    auto delta = [](uint64_t now, uint64_t &last) {
      const uint64_t d = now >= last ? now - last : 0;
      last = now;
      return static_cast<double>(d);
    };
    if (double d = delta(es.beats_remote, m_.beats_remote)) beats_.add("remote", d);
    if (double d = delta(es.beats_local, m_.beats_local)) beats_.add("local", d);
    if (double d = delta(es.beats_pulse, m_.beats_pulse)) beats_.add("pulse", d);
    if (double d = delta(es.frames_invalid, m_.frames_invalid)) frames_rejected_.add("invalid", d);
    if (double d = delta(es.frames_stale, m_.frames_stale)) frames_rejected_.add("stale", d);
    if (double d = delta(es.frames_wrong_cluster, m_.frames_wrong_cluster)) frames_rejected_.add("wrong_cluster", d);
    if (double d = delta(es.frames_legacy, m_.frames_legacy)) frames_rejected_.add("legacy", d);
    if (double d = delta(es.tempo_jumps, m_.tempo_jumps)) tempo_jumps_.add(d);
    if (double d = delta(es.claims_built, m_.claims_built)) claims_.add(d);
    if (double d = delta(es.overruns, m_.overruns)) overruns_.add("operation", d);
    if (double d = delta(ts.published, mt_.published)) published_.add(d);
    if (double d = delta(ts.dropped, mt_.dropped)) dropped_.add(d);
    if (double d = delta(ts.reconnects, mt_.reconnects)) reconnects_.add(d);
    if (double d = delta(ts.slow_consumer, mt_.slow_consumer)) slow_.add(d);
    buffered_.set(static_cast<double>(ts.buffered));
    connected_g_.set(ts.connected ? 1.0 : 0.0);
    degraded_g_.set(snap.degraded ? 1.0 : 0.0);
    active_g_.set(static_cast<double>(snap.active_operations));
    beat_g_.set(static_cast<double>(snap.current_beat));
    tempo_g_.set(snap.tempo_bpm);
    measured_g_.set(snap.measured_bpm);
  }

  json health_object() {
    json h;
    std::lock_guard lk(mu_);
    h["enabled"] = s_.enabled;
    h["started"] = s_.enabled && started_ && !stopping_;  // a disabled integration never started
    h["node_id"] = node_id_;
    h["cluster_id"] = s_.cluster_id;
    h["agent_id"] = s_.agent_id;
    h["pulse"] = s_.pulse;
    h["errors"] = json::array();
    for (const auto &e : errors_) h["errors"].push_back(e);
    if (!engine_) {
      h["connected"] = false;
      h["current_beat"] = 0;
      h["current_tempo"] = s_.tempo_bpm;
      h["measured_bpm"] = 0.0;
      h["tempo_drift"] = "unknown";
      h["reconnect_count"] = 0;
      h["active_operations"] = 0;
      h["local_degradation"] = false;
      return h;
    }
    const EngineSnapshot es = engine_->snapshot();
    const TransportStats ts = transport_->stats();
    h["connected"] = ts.connected;
    h["current_beat"] = es.current_beat;
    h["current_tempo"] = es.tempo_bpm;
    h["measured_bpm"] = std::round(es.measured_bpm * 1000.0) / 1000.0;
    h["tempo_drift"] = drift_name(es.drift);
    h["reconnect_count"] = ts.reconnects;
    h["active_operations"] = es.active_operations;
    h["local_degradation"] = es.degraded;
    h["pulsing"] = pulsing_;
    h["window_id"] = es.window_id;
    h["buffered"] = ts.buffered;
    h["dropped"] = ts.dropped;
    h["published"] = ts.published;
    const EngineStats &st = engine_->stats();
    h["frames_rejected"] = {{"invalid", st.frames_invalid}, {"stale", st.frames_stale},
                            {"wrong_cluster", st.frames_wrong_cluster}, {"legacy", st.frames_legacy}};
    h["tempo_jumps"] = st.tempo_jumps;
    if (engine_->pulsing() && engine_->tempo() != engine_->pulse_target()) h["tempo_target"] = engine_->pulse_target();
    h["beats"] = {{"remote", st.beats_remote}, {"local", st.beats_local}, {"pulse", st.beats_pulse},
                  {"skipped", st.beats_skipped}};
    h["slow_consumer"] = ts.slow_consumer;
    return h;
  }
  std::string health_json() { return health_object().dump(); }

  std::string operations_json() {
    json ops = json::array();
    int64_t active = 0;
    {
      std::lock_guard lk(mu_);
      if (engine_) {
        const int64_t beat = engine_->current_beat();
        for (const Operation *op : engine_->operations()) {
          const int64_t passed = std::max<int64_t>(0, beat - op->start_beat);
          json o = {{"id", op->id},
                    {"type", op->type},
                    {"phase", op_phase_name(op->phase)},
                    {"start_beat", op->start_beat},
                    {"estimated_beats", op->estimated_beats},
                    {"beats_passed", passed},
                    {"beats_left", std::max<int64_t>(0, static_cast<int64_t>(op->estimated_beats) - passed)},
                    {"progress", std::min(1.0, static_cast<double>(passed) / op->estimated_beats)},
                    {"peer_count", op->peer_count},
                    {"started_at", rfc3339(op->start_unix_ms)},
                    {"active", !op->finished}};
          if (op->overrun) o["over_budget"] = true;
          if (!op->fail_reason.empty()) o["fail_reason"] = op->fail_reason;
          if (!op->finished) ++active;
          ops.push_back(std::move(o));
        }
      }
    }
    json body = {{"active_operations", active}, {"operations", std::move(ops)}};
    return body.dump();
  }

  // ---- the service ----
  void require_running() const {
    if (!s_.enabled) throw chorus::Error(CHORUS_E_UNAVAILABLE, "BACKBEAT integration is disabled");
    if (!started_ || stopping_ || !engine_) throw chorus::Error(CHORUS_E_UNAVAILABLE, "BACKBEAT integration not started");
  }

  void after_event_locked() {
    if (flush_posted_ || !engine_->has_pending_events()) return;
    // Raw post without arg_dtor (see raw_timer).
    if (host_.api()->post(host_.ctx(), &BackbeatPlugin::c_flush, this, nullptr) == CHORUS_OK) flush_posted_ = true;
    // else stopping: the events go out with the next beat, if any
  }

  void flush_task() {
    with_engine([&](Engine &e, std::vector<Outgoing> &out) {
      flush_posted_ = false;
      e.flush_events(unix_now_ms(), &out);
    });
  }

  template <class F>
  void op_call(F &&f, const char *event, std::string type_hint = {}) {
    std::string type;
    {
      std::lock_guard lk(mu_);
      require_running();
      type = f(*engine_);
      after_event_locked();
    }
    ops_.inc(type.empty() ? type_hint : type, event);
  }

  static BackbeatPlugin *self(void *p) { return static_cast<BackbeatPlugin *>(p); }

  static chorus_status c_start(void *p, const char *id, size_t id_len, const char *type, size_t type_len,
                               uint32_t estimated, const char *data, size_t data_len, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (id == nullptr && id_len > 0) throw chorus::Error(CHORUS_E_INVALID_ARG, "op_id is NULL");
      if (type == nullptr && type_len > 0) throw chorus::Error(CHORUS_E_INVALID_ARG, "op_type is NULL");
      const std::string_view t = sv(type, type_len);
      self(p)->op_call(
          [&](Engine &e) {
            e.start_op(sv(id, id_len), t, estimated, sv(data, data_len), unix_now_ms());
            return std::string(t);
          },
          "started");
    });
  }

  static chorus_status c_update(void *p, const char *id, size_t id_len, int32_t phase, uint32_t peers,
                                chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      std::lock_guard lk(self(p)->mu_);
      self(p)->require_running();
      self(p)->engine_->update_phase(sv(id, id_len), phase, peers);
      self(p)->after_event_locked();
    });
  }

  static chorus_status c_complete(void *p, const char *id, size_t id_len, uint32_t peers, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      self(p)->op_call(
          [&](Engine &e) { return e.complete_op(sv(id, id_len), peers); },
          "completed");
    });
  }

  static chorus_status c_fail(void *p, const char *id, size_t id_len, const char *reason, size_t reason_len,
                              chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      self(p)->op_call(
          [&](Engine &e) { return e.fail_op(sv(id, id_len), sv(reason, reason_len)); },
          "failed");
    });
  }

  static chorus_status c_budget(void *p, uint32_t beats, chorus_backbeat_budget_fn fn, void *arg,
                                chorus_error *err) noexcept {
    return chorus::guard(err, [&]() -> chorus_status {
      BackbeatPlugin *me = self(p);
      if (fn == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "fn is NULL");
      if (beats < 1 || beats > CHORUS_BACKBEAT_MAX_BEATS) throw chorus::Error(CHORUS_E_INVALID_ARG, "beats must be 1..1000");
      double period = 0;
      {
        std::lock_guard lk(me->mu_);
        if (me->s_.enabled && me->started_ && !me->stopping_ && me->engine_) period = me->engine_->period_ms();
      }
      if (period <= 0) return fn(arg, err);  // not running: plain execution (as CHORUS does)
      const double budget_ms = period * beats;
      const uint64_t t0 = me->host_.now_ms();
      const chorus_status st = fn(arg, err);
      const auto took = static_cast<double>(me->host_.now_ms() - t0);
      if (took > budget_ms) {
        me->overruns_.inc("budget_call");
        throw chorus::Error(CHORUS_E_TIMEOUT, "beat budget of " + std::to_string(beats) + " beats (" + fmt(budget_ms) +
                                                  " ms) exceeded: took " + fmt(took) + " ms; the function returned " +
                                                  chorus::status_name(st));
      }
      return st;
    });
  }

  static chorus_status c_health(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out is NULL");
      auto *text = new std::string(self(p)->health_json());
      *out = chorus_buf{text->data(), text->size(), text, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
    });
  }

  static chorus_status c_status(void *p, chorus_backbeat_status *out) noexcept {
    if (out == nullptr || out->struct_size < sizeof(uint32_t)) return CHORUS_E_INVALID_ARG;
    return chorus::guard(nullptr, [&] {
      BackbeatPlugin *me = self(p);
      chorus_backbeat_status s{};
      s.struct_size = sizeof s;
      {
        std::lock_guard lk(me->mu_);
        s.enabled = me->s_.enabled;
        s.started = me->s_.enabled && me->started_ && !me->stopping_;
        s.current_tempo_bpm = me->s_.tempo_bpm;
        if (me->engine_) {
          const EngineSnapshot es = me->engine_->snapshot();
          const TransportStats ts = me->transport_->stats();
          s.connected = ts.connected;
          s.local_degradation = es.degraded;
          s.current_beat = es.current_beat;
          s.current_tempo_bpm = es.tempo_bpm;
          s.measured_bpm = es.measured_bpm;
          s.tempo_drift = es.drift;
          s.reconnect_count = ts.reconnects;
          s.active_operations = es.active_operations;
        }
      }
      const uint32_t n = std::min<uint32_t>(out->struct_size, sizeof s);
      std::memcpy(reinterpret_cast<char *>(out) + sizeof(uint32_t), reinterpret_cast<const char *>(&s) + sizeof(uint32_t),
                  n - sizeof(uint32_t));
    });
  }

  chorus::Host &host_;
  Settings s_;
  std::string node_id_;
  std::unique_ptr<Signer> signer_;
  chorus_backbeat_v1 table_{};

  std::mutex mu_;       // engine_, flags, errors_
  std::mutex pub_mu_;   // keeps publish order equal to creation order
  std::mutex metrics_mu_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Transport> transport_;
  bool transport_leaked_ = false;
  bool started_ = false;
  bool stopping_ = false;
  bool flush_posted_ = false;
  bool pulsing_ = false;
  uint64_t ticker_ = 0;
  uint64_t pulse_timer_ = 0;
  int64_t pulse_index_ = 0;
  double pulse_due_ = 0;
  std::deque<std::string> errors_;
  chorus::Health last_health_ = chorus::Health::ok;
  std::string last_health_msg_;
  bool health_reported_once_ = false;
  bool last_degraded_ = false;
  static constexpr uint64_t kLegacyWarnEveryMs = 60000;
  uint64_t legacy_warned_at_ = 0;  // host monotonic ms of the last legacy-frame warning (0 = never)
  EngineStats m_;
  TransportStats mt_;

  chorus::Counter beats_, frames_rejected_, claims_, published_, dropped_, reconnects_, slow_, ops_, overruns_,
      tempo_jumps_;
  chorus::Gauge buffered_, connected_g_, degraded_g_, active_g_, beat_g_, tempo_g_, measured_g_;
  chorus::Histogram beat_cost_;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_BACKBEAT_SERVICE, 1, 0)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_ELECTION_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
                                        chorus::require(CHORUS_P2P_HOST_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL)};

}  // namespace chorus::backbeat

CHORUS_PLUGIN(chorus::backbeat::BackbeatPlugin, .id = "backbeat", .version = "0.1.0",
              .description = "BACKBEAT cluster beat over NATS: P2P operation tracking, StatusClaims, pulse",
              .vendor = "CHORUS", .provides = chorus::backbeat::kProvides,
              .requirements = chorus::backbeat::kRequires, .config_schema = chorus::backbeat::kConfigSchema);

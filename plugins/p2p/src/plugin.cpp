// The p2p plugin: configuration, identity, HTTP routes, metrics and health around the libp2p node
// (node.hpp); the chorus.p2p.host v1 table it provides is in service_table.cpp.
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include <chorus/plugin.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include "node.hpp"
#include "service_table.hpp"
#include "settings.hpp"

namespace chorus::p2p {
namespace {

using json = nlohmann::json;

// mkdir -p with mode 0700 for the key's directory (the state dir itself may be shared).
std::string ensure_dir(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return {};
  const std::string dir = path.substr(0, slash);
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? "" : dir + " is not a directory";
  if (auto e = ensure_dir(dir); !e.empty()) return e;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "cannot create " + dir + ": " + std::strerror(errno);
  return {};
}

class HostLog final : public NodeLog {
 public:
  explicit HostLog(chorus::Host &h) : host_(h) {}
  bool enabled(int level) const override { return host_.log_enabled(static_cast<chorus::LogLevel>(level)); }
  void write(int level, const std::string &msg) override { host_.log(static_cast<chorus::LogLevel>(level), msg); }

 private:
  chorus::Host &host_;
};

class P2PPlugin final : public chorus::Plugin {
 public:
  P2PPlugin(chorus::Host &host, std::string_view config_json) : host_(host), log_(host) {
    if (sodium_init() < 0) throw chorus::Error(CHORUS_E_INTERNAL, "libsodium failed to initialise");
    settings_ = read_settings(config_json);
    config_json_ = config_json;
    warn_assignment(settings_);

    connections_ = host_.gauge("chorus_p2p_connections", "Open libp2p connections, by direction", {"direction"});
    streams_ = host_.gauge("chorus_p2p_streams", "Open streams (all connections)");
    streams_total_ = host_.counter("chorus_p2p_streams_opened_total", "Streams whose protocol was agreed");
    bytes_ = host_.counter("chorus_p2p_bytes_total", "Bytes on the wire (TCP payload), by direction", {"direction"});
    dials_ = host_.counter("chorus_p2p_dials_total", "Outbound dials, by result", {"result"});
    rejected_ = host_.counter("chorus_p2p_inbound_rejected_total", "Inbound connections refused by the connection manager");
    hs_fail_ = host_.counter("chorus_p2p_handshake_failures_total", "Connections that failed before muxing, by reason",
                             {"reason"});
    proto_err_ = host_.counter("chorus_p2p_protocol_errors_total", "Peers' protocol violations that reset a stream or connection");

    try {
      host_.route("GET", "/p2p/id", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
        answer(std::move(ex), [this](std::string &out, chorus_error *err) { return node_->get_info_json(out, err); });
      });
      host_.route("GET", "/p2p/peers", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
        answer(std::move(ex), [this](std::string &out, chorus_error *err) { return node_->list_peers_json(out, err); });
      });
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE) throw;
      host_.debug("no HTTP listener: /p2p routes not mounted");
    }

    table_ = p2p_host_table();
  }

  ~P2PPlugin() override {
    if (node_) node_->stop();
  }

  void start() override {
    if (auto e = ensure_dir(settings_.key_file); !e.empty()) throw chorus::Error(CHORUS_E_CONFIG, "p2p key_file: " + e);
    std::string why;
    auto id = Identity::load_or_create(settings_.key_file, &why);
    if (!id) throw chorus::Error(CHORUS_E_CONFIG, "p2p identity: " + why);
    node_ = std::make_unique<Node>(settings_, *id, log_);
    if (auto e = node_->start(); !e.empty()) {
      node_.reset();
      throw chorus::Error(CHORUS_E_IO, "p2p: " + e);
    }
    host_.info("libp2p host " + id->peer_id().to_base58() + " listening on " + node_->listen_addrs_text() +
               " (bootstrap peers: " + std::to_string(settings_.bootstrap_peers.size()) + " from " +
               settings_.bootstrap_source + ")");
    host_.report_health(chorus::Health::ok, "listening");
    metrics_timer_ = host_.timer(std::chrono::milliseconds(1000), std::chrono::milliseconds(1000), [this] { export_metrics(); });
  }

  void stop(std::chrono::milliseconds) override {
    if (metrics_timer_ != 0) host_.cancel_timer(metrics_timer_);
    metrics_timer_ = 0;
    if (node_) node_->stop();
  }

  void reconfigure(std::string_view config_json) override {
    // Listen addresses, identity and limits are fixed for the node's life: a change needs a restart.
    // (The host then stops and starts the plugin; dependants are told through service events.)
    const Settings next = read_settings(config_json);
    if (next.listen != settings_.listen || next.key_file != settings_.key_file ||
        next.agent_version != settings_.agent_version || next.announce_loopback != settings_.announce_loopback ||
        !(next.limits == settings_.limits))
      throw chorus::NeedsRestart();
    // Otherwise only the status interval or the bootstrap list changed (config, or a re-read
    // assignment file): apply the one, dial the new peers of the other.
    settings_.status_interval_ms = next.status_interval_ms;
    config_json_ = config_json;
    dial_bootstrap(next);
  }

  // SIGHUP with this plugin's config unchanged: the agent's assignment (host_info) or the assignment
  // file this plugin names may have changed.
  void reload() override {
    Settings next;
    try {
      next = read_settings(config_json_);
    } catch (const std::exception &e) {
      host_.warn(std::string("reload: keeping the bootstrap peers in use: ") + e.what());
      return;
    }
    if (!next.assignment_problem.empty()) {
      warn_assignment(next);
      return;  // keep the peers in use rather than fall back mid-run
    }
    if (next.bootstrap_peers == settings_.bootstrap_peers) return;
    dial_bootstrap(next);
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_P2P_HOST_SERVICE && major == 1) return {&table_, &node_};
    return Plugin::service(name, major);
  }

 private:
  // The config section plus the environment, with the host's state dir for the default key file.
  void warn_assignment(const Settings &s) {
    if (!s.assignment_problem.empty())
      host_.warn("assignment not used (" + s.assignment_problem + "); carrying on with the configured bootstrap peers");
  }

  void dial_bootstrap(const Settings &next) {
    settings_.bootstrap_peers = next.bootstrap_peers;
    settings_.bootstrap_source = next.bootstrap_source;
    if (!node_) return;
    host_.info("dialing " + std::to_string(next.bootstrap_peers.size()) + " bootstrap peer(s) (from " +
               next.bootstrap_source + ")");
    for (const auto &addr : next.bootstrap_peers)
      node_->connect(addr, 0, [](void *, chorus_status, const char *, const chorus_error *) {}, nullptr, nullptr);
  }

  Settings read_settings(std::string_view config_json) const {
    json info = json::parse(host_.host_info(), nullptr, false);
    const std::string state_dir = info.is_object() ? info.value("state_dir", std::string()) : std::string();
    std::vector<std::string> assigned;
    if (info.is_object() && info.contains("bootstrap_peers") && info["bootstrap_peers"].is_array())
      for (const auto &p : info["bootstrap_peers"])
        if (p.is_string()) assigned.push_back(p.get<std::string>());
    try {
      return parse_settings(
          config_json, state_dir,
          [](const char *name) -> std::optional<std::string> {
            const char *v = std::getenv(name);
            return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
          },
          assigned);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
  }

  template <class F>
  void answer(chorus::HttpExchange ex, F &&fn) {
    if (!node_) {
      ex.respond(503, "application/json", R"({"error":"p2p is not running"})");
      return;
    }
    std::string out;
    chorus_error err{};
    err.struct_size = sizeof err;
    if (fn(out, &err) != CHORUS_OK) {
      ex.respond(503, "application/json", json{{"error", err.message}}.dump());
      return;
    }
    ex.respond(200, "application/json", out);
  }

  void export_metrics() {
    if (!node_) return;
    log_status();
    const auto &s = node_->stats();
    connections_.set("inbound", static_cast<double>(s.connections_inbound.load()));
    connections_.set("outbound", static_cast<double>(s.connections_outbound.load()));
    streams_.set(static_cast<double>(s.streams_open.load()));
    auto delta = [](uint64_t now, uint64_t &last) {
      const double d = static_cast<double>(now - last);
      last = now;
      return d;
    };
    streams_total_.add(delta(s.streams_opened_total, last_.streams_total));
    bytes_.add("in", delta(s.bytes_in, last_.bytes_in));
    bytes_.add("out", delta(s.bytes_out, last_.bytes_out));
    dials_.add("ok", delta(s.dials_ok, last_.dials_ok));
    dials_.add("failed", delta(s.dials_failed, last_.dials_failed));
    rejected_.add(delta(s.inbound_rejected, last_.rejected));
    hs_fail_.add("timeout", delta(s.hs_fail_timeout, last_.hs_timeout));
    hs_fail_.add("noise", delta(s.hs_fail_noise, last_.hs_noise));
    hs_fail_.add("multistream", delta(s.hs_fail_multistream, last_.hs_multistream));
    hs_fail_.add("peer_id_mismatch", delta(s.hs_fail_peer_id, last_.hs_peer_id));
    hs_fail_.add("io", delta(s.hs_fail_io, last_.hs_io));
    proto_err_.add(delta(s.protocol_errors, last_.proto_errors));
  }

  // The CHORUS runtime's periodic status line: how many peers this agent is connected to. Called by
  // the 1 s metrics timer.
  void log_status() {
    if (settings_.status_interval_ms == 0) return;
    since_status_ms_ += 1000;
    if (since_status_ms_ < settings_.status_interval_ms) return;
    since_status_ms_ = 0;
    std::string peers;
    if (node_->list_peers_json(peers, nullptr) != CHORUS_OK) return;
    const json list = json::parse(peers, nullptr, false);
    if (!list.is_array()) return;
    host_.info("status: connected to " + std::to_string(list.size()) + " peer(s)");
  }

  chorus::Host &host_;
  HostLog log_;
  Settings settings_;
  std::string config_json_;  // the config in use, for reload()
  std::unique_ptr<Node> node_;
  chorus_p2p_host_v1 table_{};
  uint64_t metrics_timer_ = 0;
  uint64_t since_status_ms_ = 0;

  chorus::Gauge connections_, streams_;
  chorus::Counter streams_total_, bytes_, dials_, rejected_, hs_fail_, proto_err_;
  struct {
    uint64_t streams_total = 0, bytes_in = 0, bytes_out = 0, dials_ok = 0, dials_failed = 0, rejected = 0,
             hs_timeout = 0, hs_noise = 0, hs_multistream = 0, hs_peer_id = 0, hs_io = 0, proto_errors = 0;
  } last_;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_P2P_HOST_SERVICE, 1, 0)};

}  // namespace
}  // namespace chorus::p2p

CHORUS_PLUGIN(chorus::p2p::P2PPlugin, .id = "p2p", .version = "0.1.0",
              .description = "libp2p host: TCP, Noise, yamux, identify, ping (chorus.p2p.host v1)",
              .vendor = "CHORUS", .provides = chorus::p2p::kProvides, .config_schema = chorus::p2p::kConfigSchema);

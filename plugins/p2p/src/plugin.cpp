// The p2p plugin: configuration, identity, the chorus.p2p.host v1 table, HTTP routes, metrics and
// health around the libp2p node (node.cpp).
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
#include "settings.hpp"

namespace chorus::p2p {
namespace {

using json = nlohmann::json;

chorus_status give_buf(std::string text, chorus_buf *out) {
  if (out == nullptr) return CHORUS_E_INVALID_ARG;
  auto *owned = new (std::nothrow) std::string(std::move(text));
  if (owned == nullptr) return CHORUS_E_NO_MEMORY;
  *out = chorus_buf{owned->data(), owned->size(), owned, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
  return CHORUS_OK;
}

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

    table_.struct_size = sizeof table_;
    table_.local_peer_id = &c_local_peer_id;
    table_.local_public_key = &c_local_public_key;
    table_.sign = &c_sign;
    table_.get_info_json = &c_info;
    table_.connect = &c_connect;
    table_.disconnect = &c_disconnect;
    table_.list_peers_json = &c_peers;
    table_.is_connected = &c_is_connected;
    table_.add_addrs = &c_add_addrs;
    table_.peer_addrs_json = &c_peer_addrs;
    table_.set_protocol_handler = &c_set_handler;
    table_.remove_protocol_handler = &c_remove_handler;
    table_.open_stream = &c_open_stream;
    table_.write = &c_write;
    table_.close_write = &c_close_write;
    table_.reset = &c_reset;
    table_.set_read_paused = &c_set_paused;
    table_.subscribe = &c_subscribe;
    table_.unsubscribe = &c_unsubscribe;
    table_.ping = &c_ping;
    table_.parse_peer_id = &c_parse_peer_id;
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
    // Only the bootstrap list changed (config, or a re-read assignment file): dial the new peers.
    settings_.bootstrap_peers = next.bootstrap_peers;
    settings_.bootstrap_source = next.bootstrap_source;
    if (!node_) return;
    for (const auto &addr : next.bootstrap_peers)
      node_->connect(addr, 0, [](void *, chorus_status, const char *, const chorus_error *) {}, nullptr, nullptr);
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_P2P_HOST_SERVICE && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  // The config section plus the environment, with the host's state dir for the default key file.
  Settings read_settings(std::string_view config_json) const {
    json info = json::parse(host_.host_info(), nullptr, false);
    const std::string state_dir = info.is_object() ? info.value("state_dir", std::string()) : std::string();
    try {
      return parse_settings(config_json, state_dir, [](const char *name) -> std::optional<std::string> {
        const char *v = std::getenv(name);
        return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
      });
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

  // ---- the C table: every entry is noexcept and maps failures to status codes ----
  static P2PPlugin *self(void *p) { return static_cast<P2PPlugin *>(p); }
  static Node *node(void *p) { return self(p)->node_.get(); }

  static chorus_status c_local_peer_id(void *p, uint8_t *peer, size_t peer_cap, size_t *peer_len, char *text,
                                       size_t text_cap, size_t *text_len) noexcept {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    const auto &id = n->identity().peer_id();
    if (peer != nullptr) {
      if (peer_cap < id.bytes().size()) return CHORUS_E_TOO_LARGE;
      std::memcpy(peer, id.bytes().data(), id.bytes().size());
    }
    if (peer_len != nullptr) *peer_len = id.bytes().size();
    try {
      const std::string t = id.to_base58();
      if (text != nullptr) {
        if (text_cap < t.size() + 1) return CHORUS_E_TOO_LARGE;
        std::memcpy(text, t.c_str(), t.size() + 1);
      }
      if (text_len != nullptr) *text_len = t.size();
    } catch (...) {
      return CHORUS_E_NO_MEMORY;
    }
    return CHORUS_OK;
  }

  static chorus_status c_local_public_key(void *p, uint8_t *out, size_t cap, size_t *len) noexcept {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    try {
      const Bytes pk = n->identity().public_key_protobuf();
      if (len != nullptr) *len = pk.size();
      if (out == nullptr || cap < pk.size()) return CHORUS_E_TOO_LARGE;
      std::memcpy(out, pk.data(), pk.size());
      return CHORUS_OK;
    } catch (...) {
      return CHORUS_E_NO_MEMORY;
    }
  }

  static chorus_status c_sign(void *p, const uint8_t *data, size_t len, uint8_t sig[64]) noexcept {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    if ((data == nullptr && len > 0) || sig == nullptr) return CHORUS_E_INVALID_ARG;
    const auto s = n->identity().sign(BytesView(data, len));
    std::memcpy(sig, s.data(), s.size());
    return CHORUS_OK;
  }

  template <class F>
  static chorus_status guarded(F &&fn) noexcept {
    try {
      return fn();
    } catch (const std::bad_alloc &) {
      return CHORUS_E_NO_MEMORY;
    } catch (...) {
      return CHORUS_E_INTERNAL;
    }
  }

  static chorus_status c_info(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return guarded([&] {
      Node *n = node(p);
      if (n == nullptr) return CHORUS_E_UNAVAILABLE;
      std::string text;
      const auto st = n->get_info_json(text, err);
      return st != CHORUS_OK ? st : give_buf(std::move(text), out);
    });
  }
  static chorus_status c_peers(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return guarded([&] {
      Node *n = node(p);
      if (n == nullptr) return CHORUS_E_UNAVAILABLE;
      std::string text;
      const auto st = n->list_peers_json(text, err);
      return st != CHORUS_OK ? st : give_buf(std::move(text), out);
    });
  }
  static chorus_status c_connect(void *p, const char *target, size_t target_len, uint32_t timeout_ms,
                                 chorus_p2p_connect_fn fn, void *arg, chorus_error *err) noexcept {
    return guarded([&] {
      Node *n = node(p);
      if (n == nullptr) return CHORUS_E_UNAVAILABLE;
      if (target == nullptr) return CHORUS_E_INVALID_ARG;
      return n->connect(std::string_view(target, target_len), timeout_ms, fn, arg, err);
    });
  }
  static chorus_status c_disconnect(void *p, const uint8_t *peer, size_t len) noexcept {
    return guarded([&] { return node(p) ? node(p)->disconnect(peer, len) : CHORUS_E_UNAVAILABLE; });
  }
  static int c_is_connected(void *p, const uint8_t *peer, size_t len) noexcept {
    try {
      return node(p) ? node(p)->is_connected(peer, len) : 0;
    } catch (...) {
      return 0;
    }
  }
  static chorus_status c_add_addrs(void *p, const uint8_t *peer, size_t len, const char *const *addrs, size_t count,
                                   uint64_t ttl_ms, chorus_error *err) noexcept {
    return guarded([&] { return node(p) ? node(p)->add_addrs(peer, len, addrs, count, ttl_ms, err) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_peer_addrs(void *p, const uint8_t *peer, size_t len, chorus_buf *out) noexcept {
    return guarded([&] {
      Node *n = node(p);
      if (n == nullptr) return CHORUS_E_UNAVAILABLE;
      std::string text;
      const auto st = n->peer_addrs_json(peer, len, text);
      return st != CHORUS_OK ? st : give_buf(std::move(text), out);
    });
  }
  static chorus_status c_set_handler(void *p, const char *protocol, chorus_p2p_accept_fn accept, void *arg,
                                     chorus_error *err) noexcept {
    return guarded([&] { return node(p) ? node(p)->set_protocol_handler(protocol, accept, arg, err) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_remove_handler(void *p, const char *protocol) noexcept {
    return guarded([&] { return node(p) ? node(p)->remove_protocol_handler(protocol) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_open_stream(void *p, const uint8_t *peer, size_t len, const char *const *protocols,
                                     size_t count, const chorus_p2p_stream_handler *handler, uint32_t timeout_ms,
                                     chorus_p2p_open_fn fn, void *arg, chorus_error *err) noexcept {
    return guarded([&] {
      return node(p) ? node(p)->open_stream(peer, len, protocols, count, handler, timeout_ms, fn, arg, err)
                     : CHORUS_E_UNAVAILABLE;
    });
  }
  static chorus_status c_write(void *p, uint64_t stream, const uint8_t *data, size_t len) noexcept {
    return guarded([&] { return node(p) ? node(p)->write(stream, data, len) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_close_write(void *p, uint64_t stream) noexcept {
    return guarded([&] { return node(p) ? node(p)->close_write(stream) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_reset(void *p, uint64_t stream) noexcept {
    return guarded([&] { return node(p) ? node(p)->reset(stream) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_set_paused(void *p, uint64_t stream, int paused) noexcept {
    return guarded([&] { return node(p) ? node(p)->set_read_paused(stream, paused) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_subscribe(void *p, chorus_p2p_event_fn fn, void *arg, uint64_t *out) noexcept {
    return guarded([&] { return node(p) ? node(p)->subscribe(fn, arg, out) : CHORUS_E_UNAVAILABLE; });
  }
  static chorus_status c_unsubscribe(void *p, uint64_t sub) noexcept {
    return guarded([&] { return node(p) ? node(p)->unsubscribe(sub) : CHORUS_OK; });
  }
  static chorus_status c_ping(void *p, const uint8_t *peer, size_t len, uint32_t timeout_ms,
                              void (*fn)(void *, chorus_status, uint64_t, const chorus_error *), void *arg,
                              chorus_error *err) noexcept {
    return guarded([&] { return node(p) ? node(p)->ping(peer, len, timeout_ms, fn, arg, err) : CHORUS_E_UNAVAILABLE; });
  }

  static chorus_status c_parse_peer_id(void *, const char *text, size_t text_len, uint8_t *out, size_t cap,
                                       size_t *out_len) noexcept {
    return guarded([&] {
      if (text == nullptr) return CHORUS_E_INVALID_ARG;
      auto id = PeerId::parse(std::string_view(text, text_len), nullptr);
      if (!id) return CHORUS_E_INVALID_ARG;
      if (out_len != nullptr) *out_len = id->bytes().size();
      if (out == nullptr || cap < id->bytes().size()) return CHORUS_E_TOO_LARGE;
      std::memcpy(out, id->bytes().data(), id->bytes().size());
      return CHORUS_OK;
    });
  }

  chorus::Host &host_;
  HostLog log_;
  Settings settings_;
  std::unique_ptr<Node> node_;
  chorus_p2p_host_v1 table_{};
  uint64_t metrics_timer_ = 0;

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

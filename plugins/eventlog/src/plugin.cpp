// The eventlog plugin: the agent's append-only, hash-chained, signed event log (CHORUS's
// HypercoreLog), provided as chorus.eventlog v1 and over HTTP (README.md). The author is this node's
// libp2p peer id and entries are signed through chorus.p2p.host (the key never leaves the p2p
// plugin). The plugin itself logs peer_joined / peer_left from the p2p host's connection events.
// This file is the descriptor and the glue to the host; event_log.cpp does the work.
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include <chorus/plugin.hpp>
#include <chorus/services/eventlog_v1.h>
#include <chorus/services/p2p_host_v1.h>

#include "event_log.hpp"
#include "http_routes.hpp"
#include "service_table.hpp"

namespace chorus::eventlog {
namespace {

// The config schema: the host validates the plugin's config section against it and fills in the
// defaults before the plugin sees it.
constexpr const char *kConfigSchema = R"({
  "type": "object",
  "properties": {
    "log_peer_events": {"type": "boolean", "default": true,
                        "description": "append peer_joined / peer_left for every p2p connect and disconnect"},
    "max_batch": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 256,
                  "description": "appends committed in one transaction (one fsync) at most"},
    "max_queue": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 10000,
                  "description": "appends waiting for the writer at most; beyond, append answers CHORUS_E_BUSY"}
  },
  "additionalProperties": false
})";

struct Settings {
  bool log_peer_events = true;
  size_t max_batch = 256;
  size_t max_queue = 10000;
};

Settings settings_from(std::string_view config_json) {
  const auto cfg = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object() || !cfg.contains("log_peer_events") || !cfg.contains("max_batch") || !cfg.contains("max_queue"))
    throw chorus::Error(CHORUS_E_CONFIG, "config must be an object validated against the schema");
  return Settings{cfg["log_peer_events"].get<bool>(), cfg["max_batch"].get<size_t>(), cfg["max_queue"].get<size_t>()};
}

using P2P = chorus::ServiceRef<chorus_p2p_host_v1>;

class EventlogPlugin final : public chorus::Plugin, public LogSource {
 public:
  EventlogPlugin(chorus::Host &host, std::string_view config_json)
      : host_(host), settings_(settings_from(config_json)), table_(make_eventlog_table()) {
    appends_ = host_.counter("chorus_eventlog_appends_total", "Event log appends by result", {"result"});
    try {
      register_routes(host_, *this);
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE) throw;  // no HTTP listener: the service still works
    }
  }

  ~EventlogPlugin() override { stop_log(); }

  void start() override {
    auto p2p = host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
    if (!p2p.has<&chorus_p2p_host_v1::sign>() || !p2p.has<&chorus_p2p_host_v1::local_peer_id>() ||
        !p2p.has<&chorus_p2p_host_v1::subscribe>())
      throw chorus::Error(CHORUS_E_VERSION, "eventlog: the chorus.p2p.host provider lacks the identity, signing or event slots");
    char text[128];
    size_t text_len = 0;
    if (p2p.table()->local_peer_id(p2p.self(), nullptr, 0, nullptr, text, sizeof text, &text_len) != CHORUS_OK)
      throw chorus::Error(CHORUS_E_UNAVAILABLE, "eventlog: chorus.p2p.host has no local peer id");

    const auto info = nlohmann::json::parse(host_.host_info(), nullptr, false);
    if (!info.is_object() || !info.contains("state_dir") || !info["state_dir"].is_string())
      throw chorus::Error(CHORUS_E_INTERNAL, "eventlog: host_info has no state_dir");
    const std::filesystem::path dir = std::filesystem::path(info["state_dir"].get<std::string>()) / "eventlog";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw chorus::Error(CHORUS_E_IO, "eventlog: cannot create " + dir.string() + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);

    p2p_ = std::move(p2p);
    EventLog::Options opt;
    opt.path = (dir / "log.db").string();
    opt.author = std::string(text, strnlen(text, sizeof text));
    opt.max_batch = settings_.max_batch;
    opt.max_queue = settings_.max_queue;
    const chorus_p2p_host_v1 *t = p2p_.table();
    void *p2p_self = p2p_.self();
    opt.sign = [t, p2p_self](const Hash &hash, Signature *out, std::string *why) {
      const chorus_status st = t->sign(p2p_self, hash.data(), hash.size(), out->data());
      if (st != CHORUS_OK) *why = std::string("chorus.p2p.host sign: ") + chorus_status_name(st);
      return st == CHORUS_OK;
    };
    opt.warn = [this](const std::string &m) { host_.warn(m); };
    std::string err;
    std::shared_ptr<EventLog> log = EventLog::open(std::move(opt), &err);
    if (!log) throw chorus::Error(CHORUS_E_IO, "eventlog: " + err);
    const Head head = log->head();
    host_.info("event log " + dir.string() + "/log.db: " + std::to_string(head.length) + " entries, head " +
               to_hex(head.hash).substr(0, 16));
    {
      std::lock_guard lk(mu_);
      log_ = log;
    }
    if (settings_.log_peer_events) {
      uint64_t sub = 0;
      if (t->subscribe(p2p_self, &EventlogPlugin::on_p2p_event, this, &sub) == CHORUS_OK) p2p_sub_ = sub;
      else host_.warn("eventlog: cannot subscribe to p2p events; peer_joined / peer_left are not logged");
    }
    host_.report_health(chorus::Health::ok);
  }

  void stop(std::chrono::milliseconds) override { stop_log(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_EVENTLOG_SERVICE && major == CHORUS_EVENTLOG_V1_MAJOR) return {&table_, static_cast<LogSource *>(this)};
    return Plugin::service(name, major);
  }

  std::shared_ptr<EventLog> log() override {
    std::lock_guard lk(mu_);
    return log_;
  }

 private:
  // On the p2p network thread: queue the entry, never wait for it.
  static void on_p2p_event(void *arg, const chorus_p2p_event *ev) {
    auto *self = static_cast<EventlogPlugin *>(arg);
    const char *type = ev->type == CHORUS_P2P_EVENT_CONNECTED      ? "peer_joined"
                       : ev->type == CHORUS_P2P_EVENT_DISCONNECTED ? "peer_left"
                                                                   : nullptr;
    if (type == nullptr) return;
    auto log = self->log();
    if (!log) return;
    const nlohmann::json data = {
        {"peer_id", ev->peer_text != nullptr ? ev->peer_text : ""},
        {"addr", ev->addr != nullptr ? ev->addr : ""},
        {"direction", ev->direction == CHORUS_P2P_DIR_OUTBOUND ? "outbound" : "inbound"}};
    std::string why;
    chorus::Host &host = self->host_;
    chorus::Counter &appends = self->appends_;
    const chorus_status st = log->enqueue(type, data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                          [&host, &appends, type](const AppendResult &r) {
                                            appends.inc(r.status == CHORUS_OK ? "ok" : "error");
                                            if (r.status != CHORUS_OK) host.warn(std::string("eventlog: ") + type + ": " + r.error);
                                          },
                                          &why);
    if (st != CHORUS_OK) self->host_.warn(std::string("eventlog: ") + type + " not logged: " + why);
  }

  void stop_log() {
    if (p2p_sub_ != 0 && p2p_) p2p_.table()->unsubscribe(p2p_.self(), p2p_sub_);
    p2p_sub_ = 0;
    std::shared_ptr<EventLog> log;
    {
      std::lock_guard lk(mu_);
      log = std::move(log_);
    }
    if (log) log->stop();  // commits what is queued; in-flight service calls hold their own reference
    p2p_.reset();
  }

  chorus::Host &host_;
  Settings settings_;
  chorus_eventlog_v1 table_;
  chorus::Counter appends_;
  P2P p2p_;
  uint64_t p2p_sub_ = 0;
  std::mutex mu_;
  std::shared_ptr<EventLog> log_;
};

constexpr chorus_provide kProvides[] = {
    chorus::provide(CHORUS_EVENTLOG_SERVICE, CHORUS_EVENTLOG_V1_MAJOR, CHORUS_EVENTLOG_V1_MINOR)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::eventlog

CHORUS_PLUGIN(chorus::eventlog::EventlogPlugin, .id = "eventlog", .version = "0.1.0",
              .description = "Append-only, hash-chained, signed event log (chorus.eventlog v1)",
              .vendor = "CHORUS", .license = "Apache-2.0", .provides = chorus::eventlog::kProvides,
              .requirements = chorus::eventlog::kRequires, .config_schema = chorus::eventlog::kConfigSchema);

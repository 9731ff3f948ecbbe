#include "host_routes.hpp"

#include <chrono>
#include <string>
#include <vector>

#include "http_server.hpp"
#include "json_schema.hpp"

using json = nlohmann::json;

namespace chorus::host {
namespace {

void respond_json(chorus_http_exchange *ex, int status, const json &body) {
  std::string text = body.dump();
  HttpServer::respond(ex, status, "application/json", nullptr, 0, text.data(), text.size());
}

}  // namespace

void HostRoutes::define_metrics() {
  std::string e;
  using K = MetricsRegistry::Kind;
  MetricsRegistry &m = host_.metrics;
  HostMetricIds &ids = host_.metric_ids;
  ids.reloads = *m.define(K::kCounter, "chorus_reloads_total", "Configuration reloads (SIGHUP) by result",
                          {"result"}, {}, &e);
  ids.swaps = *m.define(K::kCounter, "chorus_hot_swaps_total",
                        "Hot swaps of swappable services by service and result", {"service", "result"}, {}, &e);
  ids.http_requests = *m.define(K::kCounter, "chorus_http_requests_total",
                                "HTTP requests on the host listener by route and status", {"route", "code"}, {}, &e);
  ids.http_seconds = *m.define(K::kHistogram, "chorus_http_request_duration_seconds",
                               "HTTP request duration on the host listener", {}, {}, &e);
  ids.plugin_up = *m.define(K::kGauge, "chorus_plugin_up", "1 when the plugin is running, else 0",
                            {"plugin", "state"}, {}, &e);
  ids.start_seconds = *m.define(K::kGauge, "chorus_plugin_start_seconds", "Time the plugin's create+start took",
                                {"plugin"}, {}, &e);
  ids.uptime = *m.define(K::kGauge, "chorus_uptime_seconds", "Seconds since the host started", {}, {}, &e);
  ids.build = *m.define(K::kGauge, "chorus_build_info", "Build information", {"version", "abi"}, {}, &e);
  ids.references = *m.define(K::kGauge, "chorus_service_references", "References held to a plugin's services",
                             {"plugin"}, {}, &e);
  m.update(ids.build, MetricsRegistry::kSet,
           std::vector<std::string>{CHORUS_VERSION,
                                    std::to_string(CHORUS_ABI_MAJOR) + "." + std::to_string(CHORUS_ABI_MINOR)},
           1);
  m.add_collector([this](MetricsRegistry &reg) {
    const HostMetricIds &ids = host_.metric_ids;
    reg.update(ids.uptime, MetricsRegistry::kSet, std::vector<std::string>{},
               std::chrono::duration<double>(std::chrono::steady_clock::now() - host_.started_at).count());
    std::lock_guard lk(plugins_.mutex());
    for (const auto &[id, r] : plugins_.records()) {
      reg.update(ids.plugin_up, MetricsRegistry::kSet, std::vector<std::string>{id, record_state_name(r.state)},
                 r.state == RecordState::kRunning ? 1 : 0);
      if (r.instance)
        reg.update(ids.references, MetricsRegistry::kSet, std::vector<std::string>{id},
                   static_cast<double>(r.instance->refs.load()));
    }
  });
}

bool HostRoutes::critical_all_running() const {
  std::lock_guard lk(plugins_.mutex());
  for (const auto &[id, r] : plugins_.records())
    if (r.entry.enabled && r.entry.critical && r.state != RecordState::kRunning) return false;
  return true;
}

json HostRoutes::health_json(int *status_code) const {
  json plugins = json::object();
  bool unhealthy = false, degraded = false;
  std::lock_guard lk(plugins_.mutex());
  for (const auto &[id, r] : plugins_.records()) {
    if (!r.entry.enabled && r.state == RecordState::kDisabled) continue;
    bool running = r.state == RecordState::kRunning;
    int32_t hs = CHORUS_HEALTH_OK;
    std::string msg = r.message;
    if (r.instance) {
      std::lock_guard ilk(r.instance->mu);
      hs = r.instance->health_state.load();
      if (!r.instance->health_message.empty()) msg = r.instance->health_message;
    }
    bool healthy = running && hs == CHORUS_HEALTH_OK;
    if (!healthy) {
      if (r.entry.critical && (!running || hs == CHORUS_HEALTH_UNHEALTHY))
        unhealthy = true;
      else
        degraded = true;
    }
    plugins[id] = {{"state", record_state_name(r.state)},
                   {"critical", r.entry.critical},
                   {"healthy", healthy},
                   {"message", msg}};
  }
  std::string status = unhealthy ? "unhealthy" : degraded ? "degraded" : "healthy";
  *status_code = unhealthy ? 503 : 200;
  return {{"status", status}, {"plugins", plugins}};
}

json HostRoutes::plugins_json() const {
  json out = json::array();
  std::lock_guard lk(plugins_.mutex());
  const ResolveResult &resolution = plugins_.resolution();
  for (const auto &[id, r] : plugins_.records()) {
    json item = {{"id", id},
                 {"state", record_state_name(r.state)},
                 {"enabled", r.entry.enabled},
                 {"critical", r.entry.critical}};
    if (!r.message.empty()) item["message"] = r.message;
    if (r.image) {
      const PluginInfo &pi = r.image->info;
      item["version"] = pi.version;
      item["abi"] = std::to_string(pi.abi_major) + "." + std::to_string(pi.abi_minor);
      item["path"] = r.image->origin_path;
      json provides = json::array(), requires_ = json::array();
      for (const auto &p : pi.provides)
        provides.push_back({{"service", p.service},
                            {"version", std::to_string(p.major) + "." + std::to_string(p.minor)},
                            {"swappable", p.swappable}});
      for (const auto &q : pi.requires_)
        requires_.push_back({{"service", q.service}, {"range", q.range}, {"optional", q.optional}});
      item["provides"] = provides;
      item["requires"] = requires_;
      json cfg = json::parse(r.entry.config_json, nullptr, false);
      item["config"] = pi.config_schema.is_null() || cfg.is_discarded() ? cfg : redact_secrets(pi.config_schema, cfg);
    }
    json bound = json::array();
    for (const auto &[service, provider] : resolution.bindings)
      if (provider == id) bound.push_back(service);
    item["bound"] = bound;  // services this plugin is the bound provider of
    auto w = resolution.wiring.find(id);
    item["wiring"] = w == resolution.wiring.end() ? json::object() : json(w->second);
    if (r.instance) {
      item["instance"] = r.instance->serial;
      item["references"] = r.instance->refs.load();
      item["start_ms"] = r.start_ms;
    }
    out.push_back(std::move(item));
  }
  return out;
}

void HostRoutes::mount() {
  HttpServer &http = *host_.http_server;
  std::string conflict;
  auto add = [&](const char *path, HttpServer::Handler h) {
    http.add_route("GET", path, false, "host", std::move(h), &conflict);
  };
  add("/health/live", [](const chorus_http_request &, chorus_http_exchange *ex) {
    respond_json(ex, 200, {{"status", "alive"}});
  });
  add("/health/ready", [this](const chorus_http_request &, chorus_http_exchange *ex) {
    bool ok = host_.ready.load() && !host_.stopping.load() && critical_all_running();
    respond_json(ex, ok ? 200 : 503, {{"status", ok ? "ready" : "not ready"}});
  });
  add("/health", [this](const chorus_http_request &, chorus_http_exchange *ex) {
    int code = 200;
    json body = health_json(&code);
    respond_json(ex, code, body);
  });
  add("/metrics", [this](const chorus_http_request &, chorus_http_exchange *ex) {
    std::string text = host_.metrics.render();
    HttpServer::respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", nullptr, 0, text.data(), text.size());
  });
  add("/plugins", [this](const chorus_http_request &, chorus_http_exchange *ex) {
    respond_json(ex, 200, plugins_json());
  });
  http.set_observer([this](std::string_view, std::string_view route, int status, double seconds) {
    const HostMetricIds &ids = host_.metric_ids;
    host_.metrics.update(ids.http_requests, MetricsRegistry::kAdd,
                         std::vector<std::string>{route.empty() ? "(none)" : std::string(route),
                                                  std::to_string(status)},
                         1);
    host_.metrics.update(ids.http_seconds, MetricsRegistry::kObserve, std::vector<std::string>{}, seconds);
  });
}

}  // namespace chorus::host

#include "runtime.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include <boost/asio/signal_set.hpp>

#include "agent_id.hpp"
#include "executor.hpp"
#include "host_context.hpp"
#include "host_routes.hpp"
#include "http_server.hpp"
#include "instance.hpp"
#include "lifecycle.hpp"
#include "logging.hpp"
#include "paths.hpp"
#include "plugin_set.hpp"
#include "redaction.hpp"
#include "reload.hpp"
#include "service_registry.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace chorus::host {

nlohmann::json CheckReport::to_json() const {
  json skipped_json = json::array();
  for (const auto &s : skipped) skipped_json.push_back({{"id", s.id}, {"reason", s.reason}});
  return {{"order", order}, {"bindings", bindings}, {"skipped", skipped_json}, {"errors", errors},
          {"warnings", warnings}};
}

namespace {

// How long, at exit, the HTTP server may take to write the answers still under way.
constexpr std::chrono::milliseconds kHttpDrainGrace{2000};

using host_log::info;
using host_log::warn;
using host_log::error;

}  // namespace

// The driver: owns the parts and runs the control thread. It is also the HostServices the C host
// API talks to, forwarding the service calls to the registry.
//
// Members are declared in dependency order (each part refers only to those above it), so they are
// destroyed in the reverse: the lifecycle caller joins its helper after the records let go.
struct Runtime::Impl final : HostServices {
  HostContext host;
  ServiceRegistry registry{host.workers};
  InstanceLifecycle lifecycle{host, *this, registry};
  PluginSet plugins{host, registry, lifecycle};
  HostRoutes routes{host, plugins};
  Reloader reloader{host, plugins, lifecycle, registry};

  Impl(Config c, std::string path) : host(std::move(c), std::move(path)) {}

  // ---------------------------------------------------------------- HostServices
  chorus_status acquire(Instance &consumer, const char *service, const char *range, chorus_service_ref *out,
                        chorus_error *err) override {
    return registry.acquire(consumer, service, range, out, err);
  }
  chorus_status watch(Instance &consumer, const char *service, chorus_watch_fn fn, void *arg,
                      uint64_t *out) override {
    return registry.watch(consumer, service, fn, arg, out);
  }
  void unwatch(Instance &consumer, uint64_t id) override { registry.unwatch(consumer, id); }
  Executor &executor() override { return *host.workers; }
  MetricsRegistry &metrics() override { return host.metrics; }
  HttpServer *http() override { return host.http_server.get(); }
  uint64_t now_ms() override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
  std::string host_info_json(const Instance &inst) override {
    std::lock_guard lk(host.config_mu);  // reload replaces the config on the control thread
    json info{{"agent_id", host.agent_id()},         {"role", host.config.agent.role},
              {"cluster_id", host.config.agent.cluster_id}, {"state_dir", host.state_dir},
              {"host_version", CHORUS_VERSION},            {"plugin_id", inst.plugin_id},
              {"http_listen", host.http_address}};
    merge_into_host_info(host.assignment, host.config.agent, info);
    return info.dump();
  }

  void shutdown();
  void shutdown_transport();
  int run();
};

// Stops every plugin, in the exact reverse of the order they started.
void Runtime::Impl::shutdown() {
  host.stopping = true;
  host.ready = false;
  plugins.stop_all();
}

void Runtime::Impl::shutdown_transport() {
  // The plugins' last answers (the 503s of the requests their stop cancelled) are still queued on
  // the workers; they are written before the workers stop, within a bound a stuck client cannot
  // stretch.
  if (host.http_server && !host.http_server->stop(kHttpDrainGrace)) warn("HTTP connections still open at exit; closing them");
  if (host.workers) host.workers->stop_and_join();
  host.http_server.reset();
}

int Runtime::Impl::run() {
  const Config &config = host.config;
  std::error_code ec;
  host.state_dir = resolve_state_dir(config.host);
  fs::create_directories(host.state_dir, ec);
  if (ec) {
    error("cannot create state directory '" + host.state_dir + "': " + ec.message());
    return kExitPluginFailed;
  }
  ::chmod(host.state_dir.c_str(), 0750);
  // Before any plugin loads: every log line, and every host_api.redact call, goes through it.
  if (std::string why; !install_redaction(config.host.shhh, host.state_dir, &host.metrics, &why)) {
    error(why);
    return kExitUsage;
  }
  if (config.agent.id.empty()) {
    try {
      bool generated = false;
      host.kept_agent_id = load_or_create_agent_id(host.state_dir, &generated);
      info("agent id '" + host.kept_agent_id + "' (" + (generated ? "generated and kept" : "kept") + " in " +
           agent_id_path(host.state_dir) + ")");
    } catch (const std::exception &e) {
      error(e.what());
      return kExitPluginFailed;
    }
  } else {
    info("agent id '" + config.agent.id + "' (from the configuration)");
  }
  refresh_assignment(host);
  host.copy_dir = host.state_dir + "/plugin-copies";
  fs::remove_all(host.copy_dir, ec);  // copies from an earlier run are never loaded again

  unsigned threads = config.host.worker_threads ? config.host.worker_threads
                                                : std::max(2u, std::thread::hardware_concurrency());
  host.workers = std::make_unique<Executor>(threads);
  routes.define_metrics();
  if (!config.host.http_listen.empty()) {
    host.http_server = std::make_unique<HttpServer>(host.workers->io());
    try {
      host.http_server->listen(config.host.http_listen);
    } catch (const std::exception &e) {
      error(std::string("cannot listen for HTTP: ") + e.what());
      return kExitPluginFailed;
    }
    host.http_address = host.http_server->local_address();
    routes.mount();
    info("HTTP listening on " + host.http_address);
  }

  asio::signal_set signals(host.control, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code &, int)> on_signal = [&](const boost::system::error_code &e,
                                                                              int sig) {
    if (e) return;
    if (sig == SIGHUP) {
      reloader.run();
      signals.async_wait(on_signal);
      return;
    }
    info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
    host.control.stop();
  };
  signals.async_wait(on_signal);

  CheckReport report;
  bool config_ok = plugins.load_and_resolve(&report);
  for (const auto &w : report.warnings) warn(w);
  for (const auto &e : report.errors) error(e);
  if (!config_ok) {
    shutdown_transport();
    return kExitUsage;
  }
  for (const auto &s : report.skipped) {
    const PluginRecord &r = plugins.at(s.id);
    if (r.state != RecordState::kFailed) warn("plugin '" + s.id + "' skipped: " + s.reason);
    else error("plugin '" + s.id + "' failed: " + s.reason);
    if (r.entry.critical || config.host.strict) {
      error(std::string(r.entry.critical ? "critical " : "") + "plugin '" + s.id + "' cannot start; exiting");
      shutdown_transport();
      return kExitPluginFailed;
    }
  }
  int exit_code = plugins.start_pending(true);
  if (exit_code != kExitOk) {
    shutdown();
    shutdown_transport();
    return exit_code;
  }
  host.ready = true;
  info("ready: " + std::to_string(plugins.started_order().size()) + " plugins running");
  host.control.run();
  host.control.restart();
  shutdown();
  shutdown_transport();
  info("stopped");
  return kExitOk;
}

Runtime::Runtime(Config config, std::string config_path)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(config_path))) {}

Runtime::~Runtime() {
  // The metrics registry goes with the runtime; lines logged afterwards stay redacted, uncounted.
  std::string why;
  if (!impl_->host.state_dir.empty())
    install_redaction(impl_->host.config.host.shhh, impl_->host.state_dir, nullptr, &why);
}

CheckReport Runtime::check() {
  CheckReport report;
  impl_->plugins.load_and_resolve(&report);
  return report;
}

int Runtime::run() { return impl_->run(); }

bool Runtime::abandoned_plugins() const { return impl_->lifecycle.abandoned_any(); }

std::vector<ListedPlugin> list_plugins(const Config &config, std::vector<std::string> *errors) {
  std::vector<std::string> dirs = plugin_search_dirs(config.host);
  std::vector<std::string> files = list_plugin_files(dirs);
  for (const auto &e : config.plugins)
    if (!e.path.empty() && std::find(files.begin(), files.end(), e.path) == files.end()) files.push_back(e.path);
  std::vector<ListedPlugin> out;
  std::map<std::string, std::string> seen;  // id -> path
  for (const auto &path : files) {
    ListedPlugin item{path, std::nullopt, {}};
    std::string dir = fs::path(path).parent_path().string();
    if (auto unsafe = unsafe_plugin_location(dir.empty() ? "." : dir)) {
      item.error = *unsafe;
    } else if (auto unsafe_file = unsafe_plugin_location(path)) {
      item.error = *unsafe_file;
    } else {
      std::string why;
      std::string name = fs::path(path).filename().string();
      std::string expected = name.size() > 10 && name.rfind("chorus-", 0) == 0 ? name.substr(7, name.size() - 10) : "";
      auto image = load_plugin(LoadRequest{path, expected, "", false, ""}, &why);
      if (image) {
        auto [it, fresh] = seen.emplace(image->info.id, path);
        if (!fresh) errors->push_back("duplicate plugin id '" + image->info.id + "': " + it->second + " and " + path);
        item.info = image->info;
      } else {
        item.error = why;
      }
    }
    if (!item.error.empty()) errors->push_back(item.error);
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace chorus::host

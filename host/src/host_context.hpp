// What the parts of the runtime share: the configuration, the control thread's loop, the worker pool,
// the HTTP server and the metrics registry. Owned by the Runtime; every part holds a reference.
//
// Threads and locks:
// - The control thread (the one in Runtime::run) creates every member, and is the only writer.
// - `config` is replaced by reload on the control thread, under `config_mu`. The control thread reads
//   it without the lock; any other thread (host_info from a plugin's worker) reads it under the lock.
// - `workers`, `http_server` and the strings are set once at start-up, before any plugin runs, and
//   reset only after every plugin stopped; other threads only read them.
// - `ready` and `stopping` are atomics read by the HTTP threads (/health/ready).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "assignment.hpp"
#include "config.hpp"
#include "executor.hpp"
#include "http_server.hpp"
#include "metrics.hpp"

namespace chorus::host {

// Ids of the host's own metrics (HostRoutes::define_metrics fills them in).
struct HostMetricIds {
  uint64_t reloads = 0, swaps = 0, http_requests = 0, http_seconds = 0, plugin_up = 0, start_seconds = 0,
           uptime = 0, build = 0, references = 0;
};

struct HostContext {
  HostContext(Config c, std::string path) : config(std::move(c)), config_path(std::move(path)) {}

  mutable std::mutex config_mu;  // guards writes of `config` (see above)
  Config config;
  const std::string config_path;  // the file SIGHUP re-reads ("" = built-in default)
  std::string state_dir;
  std::string kept_agent_id;  // generated once when agent.id is empty (agent_id.hpp)
  std::optional<Assignment> assignment;  // the dynamic assignment in use; written under config_mu
  std::string copy_dir;  // private copies of plugin files (hot swap, pinned hashes)
  std::string http_address;
  const std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();

  boost::asio::io_context control;  // the control thread's loop: signals, reload, retirements
  std::unique_ptr<Executor> workers;
  std::unique_ptr<HttpServer> http_server;
  MetricsRegistry metrics;
  HostMetricIds metric_ids;

  // agent.id, or the kept id when the configuration leaves it empty. Callers hold config_mu.
  const std::string &agent_id() const { return config.agent.id.empty() ? kept_agent_id : config.agent.id; }

  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
};

}  // namespace chorus::host

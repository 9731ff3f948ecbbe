// The host's own HTTP routes (/health/live, /health/ready, /health, /metrics, /plugins) and its own
// metrics (reloads, hot swaps, HTTP requests, plugin states, start times, uptime, references).
//
// Threads: the handlers and the metrics collector run on worker threads and only read: the plugin
// records and resolution under PluginSet::mutex(), an instance's health under the instance's `mu`
// (taken inside the records lock), the ready/stopping flags as atomics.
#pragma once
#include <nlohmann/json.hpp>

#include "host_context.hpp"
#include "plugin_set.hpp"

namespace chorus::host {

class HostRoutes {
 public:
  HostRoutes(HostContext &host, const PluginSet &plugins) : host_(host), plugins_(plugins) {}

  // Defines the host metrics (filling host.metric_ids) and the collector that refreshes them.
  void define_metrics();
  // Mounts the routes on host.http_server and counts every request of the listener.
  void mount();

 private:
  bool critical_all_running() const;
  nlohmann::json health_json(int *status_code) const;
  nlohmann::json plugins_json() const;

  HostContext &host_;
  const PluginSet &plugins_;
};

}  // namespace chorus::host

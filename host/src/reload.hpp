// SIGHUP: re-reads the configuration and applies it to the running set of plugins, one step at a
// time (Reloader::run lists them). Any error before a plugin is touched keeps the running
// configuration; a change that cannot be applied to one plugin leaves that plugin as it was.
//
// Threads: runs on the control thread only, like everything that changes records; it takes
// PluginSet::mutex() for each change the HTTP threads may read, and HostContext::config_mu to
// replace the configuration.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config.hpp"
#include "host_context.hpp"
#include "lifecycle.hpp"
#include "plugin_set.hpp"
#include "resolver.hpp"
#include "service_registry.hpp"

namespace chorus::host {

class Reloader {
 public:
  Reloader(HostContext &host, PluginSet &plugins, InstanceLifecycle &lifecycle, ServiceRegistry &registry)
      : host_(host), plugins_(plugins), lifecycle_(lifecycle), registry_(registry) {}

  void run();

 private:
  // The steps of run(), in order.
  std::optional<Config> read_config();
  void adopt_config(Config next);
  void load_enabled();
  std::optional<ResolveResult> resolve_keeping_required();
  void apply_changes();
  void start_new(const ResolveResult &next);
  void rebind(const ResolveResult &previous);
  void stop_unwanted();

  // Applying one changed plugin (apply_change picks reconfigure, hot swap or restart).
  bool apply_change(const std::string &id, const PluginEntry &next, bool file_changed);
  void notify_reload(const std::string &id);
  std::optional<bool> reconfigure(const std::string &id, const PluginEntry &next, const std::string &config_json);
  bool hot_swap(const std::string &id, const PluginEntry &next, const std::shared_ptr<PluginImage> &image,
                const std::string &config_json);
  bool restart(const std::string &id, const PluginEntry &next, const std::shared_ptr<PluginImage> &image);

  void count_reload(const char *result);
  std::vector<std::string> wanted_ids() const;

  HostContext &host_;
  PluginSet &plugins_;
  InstanceLifecycle &lifecycle_;
  ServiceRegistry &registry_;
  std::map<std::string, PluginEntry> wanted_;  // this reload's enabled plugins, by id
};

}  // namespace chorus::host

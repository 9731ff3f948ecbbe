// A created plugin instance and the service registry that hands out references to its services.
// Internal to the host; shared by the runtime (control thread) and the C host API (any thread).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "chorus/plugin.h"
#include "plugin_loader.hpp"
#include "semver.hpp"

namespace chorus::host {
struct Instance;
class HostServices;
}  // namespace chorus::host

// The opaque context handed to a plugin: it identifies the calling instance in every host call.
struct chorus_host_ctx {
  chorus::host::Instance *instance;
};

namespace chorus::host {

enum class Phase : int { kCreated, kStarting, kRunning, kStopping, kStopped, kDestroyed, kLeaked };

struct ServiceTable {
  std::string service;
  uint16_t major = 0, minor = 0;
  bool swappable = false;
  const void *table = nullptr;
  void *self = nullptr;
};

// One instance of a plugin. A hot swap creates a second instance of the same plugin id, so the
// instance, not the plugin, is the unit of lifetime. Kept alive by shared_ptr from the runtime, from
// every service reference, and from every pending task or timer.
struct Instance : std::enable_shared_from_this<Instance> {
  chorus_host_ctx ctx{this};
  HostServices *host = nullptr;
  std::string plugin_id;
  uint64_t serial = 0;  // distinguishes instances of one plugin in logs and metrics
  std::shared_ptr<PluginImage> image;
  void *handle = nullptr;  // the plugin's own instance pointer
  std::atomic<Phase> phase{Phase::kCreated};
  std::vector<ServiceTable> services;  // filled after start

  // Consumers' references to this instance's services. A retiring (swapped-out) instance is stopped
  // once this drops to zero.
  std::atomic<int64_t> refs{0};
  std::atomic<bool> retiring{false};
  std::atomic<bool> retire_scheduled{false};

  // Intake of posted tasks, timers and watch callbacks. Closed before stop() is called (plugin.h:
  // nothing starts after stop), after which queued work only runs its dtor.
  std::atomic<bool> tasks_closed{false};
  uint64_t order_key = 0;          // position in the start order; a swap successor inherits it
  std::string takes_over_routes;   // label of the instance whose HTTP routes this one may take over
  std::atomic<int32_t> health_state{CHORUS_HEALTH_OK};

  std::mutex cb_mu;
  std::condition_variable cb_cv;
  int running_callbacks = 0;  // guarded by cb_mu

  std::mutex mu;  // guards the fields below
  std::string health_message;
  std::set<uint64_t> timers;
  std::set<uint64_t> watches;
  bool routes_mounted = false;
  std::string route_error;  // first http_route_add conflict, fails start

  // Ranges this instance passed to service_acquire, parsed once: consumers of swappable services
  // acquire per request, and parsing dominated that path.
  std::mutex range_mu;
  std::map<std::string, std::optional<VersionRange>, std::less<>> range_cache;

  bool may_acquire(std::string_view service) const {
    for (const auto &r : image->info.requires_)
      if (r.service == service) return true;
    return false;
  }
  // Every task, timer or watch callback runs between enter_callback() and leave_callback(), so the
  // host can close intake and wait for what is already running before it calls stop().
  bool enter_callback() {
    std::lock_guard lk(cb_mu);
    if (tasks_closed.load()) return false;
    ++running_callbacks;
    return true;
  }
  void leave_callback() {
    {
      std::lock_guard lk(cb_mu);
      --running_callbacks;
    }
    cb_cv.notify_all();
  }
  // Returns false when callbacks were still running after `budget`.
  bool close_callbacks(std::chrono::milliseconds budget) {
    std::unique_lock lk(cb_mu);
    tasks_closed = true;
    return cb_cv.wait_for(lk, budget, [&] { return running_callbacks == 0; });
  }

  std::string label() const { return serial > 1 ? plugin_id + "#" + std::to_string(serial) : plugin_id; }
};

// What the C host API needs from the host: the registry of bound services plus the shared pieces.
// Implemented by the runtime (forwarding the service calls to its ServiceRegistry); host_api.cpp
// only talks to this interface.
class HostServices {
 public:
  virtual ~HostServices() = default;
  virtual chorus_status acquire(Instance &consumer, const char *service, const char *range,
                                chorus_service_ref *out, chorus_error *err) = 0;
  virtual chorus_status watch(Instance &consumer, const char *service, chorus_watch_fn fn, void *arg,
                              uint64_t *out) = 0;
  virtual void unwatch(Instance &consumer, uint64_t id) = 0;
  virtual std::string host_info_json(const Instance &inst) = 0;
  virtual class Executor &executor() = 0;
  virtual class MetricsRegistry &metrics() = 0;
  virtual class HttpServer *http() = 0;
  virtual uint64_t now_ms() = 0;
};

// The one host API table, shared by every plugin (host_api.cpp).
const chorus_host_api *host_api_table();
// Fills a plugin-facing chorus_error through chorus_error_set (chorus/status.h).
void set_error(chorus_error *err, chorus_status code, const std::string &message);

}  // namespace chorus::host

// The lifecycle caller: creates, starts, reconfigures, stops and destroys plugin instances, each
// plugin call on a helper thread with a deadline, and retires swapped-out instances once idle.
//
// Plugin calls stay strictly sequential (one helper thread, reused from call to call), but a plugin
// that hangs cannot hang the host: past the deadline the helper is abandoned with the call still in
// it, the instance is marked leaked and kept for the process lifetime (its code is never unloaded),
// and a fresh helper serves the next call.
//
// Threads: everything here runs on the control thread, except `schedule_retire`, which the service
// registry calls from whatever thread released the last reference: it only flips an atomic on the
// instance and posts the work to the control thread. No lock of its own.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chorus/plugin.h"
#include "host_context.hpp"
#include "instance.hpp"
#include "service_registry.hpp"

namespace chorus::host {

// "<status description>: <message>", the text the host logs for a failed plugin call.
std::string status_text(chorus_status s, const chorus_error &err);

// The outcome of one plugin call made through a LifecycleCaller.
struct CallResult {
  chorus_status status = CHORUS_E_INTERNAL;
  chorus_error err{};
  void *handle = nullptr;  // create's out_instance
  bool timed_out = false;
};

// Runs plugin calls one at a time on a helper thread the caller waits on with a deadline. Reusing one
// helper matters: starting a thread per call costs a scheduler tick per plugin on a busy machine.
class LifecycleCaller {
 public:
  using Body = std::function<chorus_status(CallResult &)>;
  LifecycleCaller() = default;
  ~LifecycleCaller();
  LifecycleCaller(const LifecycleCaller &) = delete;
  LifecycleCaller &operator=(const LifecycleCaller &) = delete;

  // Runs body on the helper; an exception escaping it becomes CHORUS_E_INTERNAL. When it does not
  // return within budget_ms the helper is left behind and the result says timed_out.
  CallResult call(Body body, uint64_t budget_ms);

 private:
  struct Worker;
  static void loop(std::shared_ptr<Worker> w);
  std::shared_ptr<Worker> worker_;
};

class InstanceLifecycle {
 public:
  InstanceLifecycle(HostContext &host, HostServices &services, ServiceRegistry &registry);

  // Creates and starts a new instance of plugin `id` from `image` and takes its service tables. Does
  // not publish them. A swap successor passes its predecessor: it inherits its place in the stop
  // order and may take over its HTTP routes. Returns nullptr and the reason on failure, after undoing
  // what did happen (or leaking the instance when a call did not return).
  std::shared_ptr<Instance> start(const std::string &id, const std::shared_ptr<PluginImage> &image,
                                  const std::string &config_json, std::string *why,
                                  const Instance *predecessor = nullptr);
  // Withdraws its services, closes its task/timer intake and waits for running callbacks, removes its
  // routes and calls stop(), all within the budget; then releases what the host holds for it.
  // Returns false when the budget ran out (the instance is abandoned).
  bool stop(const std::shared_ptr<Instance> &inst, uint64_t budget_ms);
  // Destroys a stopped instance, unless references to its services are still held (then it is kept).
  void destroy(const std::shared_ptr<Instance> &inst);
  // Calls reconfigure (the plugin must have it). On a timeout the instance is abandoned: withdrawn,
  // its intake closed, marked leaked.
  CallResult reconfigure(const std::shared_ptr<Instance> &inst, const std::string &config_json);
  // Calls reload (the plugin must have it: CHORUS_HAS), with reconfigure's time limit and the same
  // handling of a timeout.
  CallResult reload(const std::shared_ptr<Instance> &inst);

  // Hot swap: takes `old` out of service and stops and destroys it once its in-flight requests are
  // done, or when host.swap_drain_timeout_ms passes.
  void retire(const std::shared_ptr<Instance> &old);
  void schedule_retire(const std::shared_ptr<Instance> &inst);  // any thread
  // Swapped-out instances not yet destroyed (the shutdown stops them in their place).
  std::vector<std::shared_ptr<Instance>> draining() const;
  void forget_draining() { retiring_.clear(); }

  // Each stop's share of host.shutdown_timeout_ms when `count` plugins stop together.
  uint64_t stop_budget(size_t count) const;
  bool abandoned_any() const;  // some plugin call never returned

 private:
  void release_resources(Instance &inst);
  void abandon(const std::shared_ptr<Instance> &inst);
  void release_timers(Instance &inst);
  bool routes_of(Instance &inst);
  void finish_retire(const std::shared_ptr<Instance> &inst, bool deadline_passed);

  HostContext &host_;
  HostServices &services_;
  ServiceRegistry &registry_;
  LifecycleCaller caller_;

  std::map<std::string, uint64_t> serials_;  // per plugin id: the last instance serial handed out
  uint64_t order_counter_ = 0;
  std::vector<std::shared_ptr<Instance>> leaked_;    // abandoned instances, kept for the process lifetime
  std::vector<std::shared_ptr<Instance>> retiring_;  // swapped-out instances until they are destroyed
  // Every image ever loaded for an instance. Never unloaded while the process runs: retired code may
  // still be on a worker's stack, and a chorus_buf's release function may point into it.
  std::vector<std::shared_ptr<PluginImage>> kept_images_;
};

}  // namespace chorus::host

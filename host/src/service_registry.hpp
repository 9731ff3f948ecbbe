// The service registry: one slot per service name holding its bound provider instance and table, the
// references consumers hold to them (service_acquire/release) and the watches on service changes.
// It backs the service half of the C host API and is called from any thread.
//
// Locks (taken in this order, never the reverse):
// - `slots_mu_` (shared) guards the slot map; a slot, once created, lives as long as the registry.
// - `Slot::mu` guards the slot's provider and table. A reference is counted on the provider under
//   this lock, and publish replaces the provider under it, so a hot swap never hands out a table
//   whose instance has already been seen idle.
// - `watches_mu_` guards the watch list and the id counter; an Instance's own `mu` may be taken
//   inside it (watch/unwatch record the id on the consumer), never the other way round.
// Watch callbacks are posted to the worker pool and never run under any of these locks.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "chorus/plugin.h"
#include "instance.hpp"

namespace chorus::host {

class Executor;

class ServiceRegistry {
 public:
  // Called (on any thread) when the last reference to a retiring instance's services is released.
  using IdleRetiree = std::function<void(const std::shared_ptr<Instance> &)>;

  // `workers` runs watch callbacks; it is read when a watch fires, so it may be set after this.
  explicit ServiceRegistry(const std::unique_ptr<Executor> &workers) : workers_(workers) {}
  void on_idle_retiree(IdleRetiree fn) { idle_retiree_ = std::move(fn); }

  // service_acquire / service_release / service_watch / service_unwatch of the C host API.
  chorus_status acquire(Instance &consumer, const char *service, const char *range, chorus_service_ref *out,
                        chorus_error *err);
  // Static: it reads only the reference (see RefBox), so it is safe after the holder has stopped.
  static void release(chorus_service_ref *ref);
  chorus_status watch(Instance &consumer, const char *service, chorus_watch_fn fn, void *arg, uint64_t *out);
  void unwatch(Instance &consumer, uint64_t id);

  // Control thread. Makes `inst` the provider of `service` (it must offer a table for it) and tells
  // the watchers: AVAILABLE when the slot was empty, CHANGED when it replaced a provider.
  void publish(const std::string &service, const std::shared_ptr<Instance> &inst);
  // Empties every slot `inst` provides, telling the watchers GONE.
  void unpublish(const std::shared_ptr<Instance> &inst);
  std::shared_ptr<Instance> provider_of(const std::string &service);
  // Forgets the given watches (an instance being stopped).
  void drop_watches(const std::set<uint64_t> &ids);

 private:
  struct Slot {
    std::mutex mu;
    std::shared_ptr<Instance> provider;
    ServiceTable table;
  };
  struct Watch {
    uint64_t id;
    std::weak_ptr<Instance> owner;
    std::string service;
    chorus_watch_fn fn;
    void *arg;
  };

  void release_count(const std::shared_ptr<Instance> &inst);
  void notify_watchers(const std::string &service, int32_t event);

  const std::unique_ptr<Executor> &workers_;
  IdleRetiree idle_retiree_;

  std::shared_mutex slots_mu_;
  std::map<std::string, std::shared_ptr<Slot>, std::less<>> slots_;

  std::mutex watches_mu_;
  std::vector<Watch> watches_;
  uint64_t next_watch_ = 1;
};

}  // namespace chorus::host

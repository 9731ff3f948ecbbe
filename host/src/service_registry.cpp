#include "service_registry.hpp"

#include <algorithm>
#include <cstring>

#include "executor.hpp"
#include "semver.hpp"

namespace chorus::host {
namespace {

// What a chorus_service_ref's handle points to: the pinned provider the reference is counted on, and
// the registry that counts it. Everything a release needs is here, never in the holder's context: a
// completion running late on a provider's thread may drop a reference after its holder has stopped
// and its instance (and chorus_host_ctx) is gone.
struct RefBox {
  std::shared_ptr<Instance> instance;
  ServiceRegistry *registry;
};

}  // namespace

chorus_status ServiceRegistry::acquire(Instance &consumer, const char *service, const char *range,
                                       chorus_service_ref *out, chorus_error *err) {
  std::string_view name = service;
  if (!consumer.may_acquire(name)) {
    set_error(err, CHORUS_E_NOT_FOUND,
              "'" + std::string(name) + "' is not among the requirements plugin '" + consumer.plugin_id +
                  "' declared");
    return CHORUS_E_NOT_FOUND;
  }
  std::shared_ptr<Slot> slot;
  {
    std::shared_lock lk(slots_mu_);
    auto it = slots_.find(name);
    if (it != slots_.end()) slot = it->second;
  }
  std::shared_ptr<Instance> provider;
  ServiceTable table;
  if (slot) {
    // Taking the reference under the slot lock is what makes a swap race-free: the swap publishes
    // under the same lock, then checks the old instance's count.
    std::lock_guard lk(slot->mu);
    provider = slot->provider;
    if (provider) {
      table = slot->table;
      provider->refs.fetch_add(1);
    }
  }
  if (!provider) {
    set_error(err, CHORUS_E_UNAVAILABLE, "no running plugin provides '" + std::string(name) + "'");
    return CHORUS_E_UNAVAILABLE;
  }
  if (range != nullptr && range[0] != '\0' && std::strcmp(range, "*") != 0) {
    bool matches;
    {
      std::lock_guard lk(consumer.range_mu);
      auto it = consumer.range_cache.find(std::string_view(range));
      if (it == consumer.range_cache.end())
        it = consumer.range_cache.emplace(range, VersionRange::parse(range, nullptr)).first;
      matches = it->second && it->second->matches(Version{table.major, table.minor, 0, {}});
    }
    if (!matches) {
      release_count(provider);
      std::string why;
      std::string msg = !VersionRange::parse(range, &why)
                            ? "bad range: " + why
                            : "'" + std::string(name) + "' " + std::to_string(table.major) + "." +
                                  std::to_string(table.minor) + " from '" + provider->plugin_id +
                                  "' does not satisfy " + range;
      set_error(err, CHORUS_E_VERSION, msg);
      return CHORUS_E_VERSION;
    }
  }
  auto *box = new RefBox{provider, this};
  out->struct_size = std::min<uint32_t>(out->struct_size ? out->struct_size : sizeof *out, sizeof *out);
  out->major = table.major;
  out->minor = table.minor;
  out->table = table.table;
  out->self = table.self;
  out->handle = reinterpret_cast<uint64_t>(box);
  out->provider_id = provider->plugin_id.c_str();
  return CHORUS_OK;
}

void ServiceRegistry::release(chorus_service_ref *ref) {
  auto *box = reinterpret_cast<RefBox *>(ref->handle);
  if (box == nullptr) return;
  ref->handle = 0;
  ref->table = nullptr;
  ref->self = nullptr;
  box->registry->release_count(box->instance);
  delete box;
}

void ServiceRegistry::release_count(const std::shared_ptr<Instance> &inst) {
  if (inst->refs.fetch_sub(1) == 1 && inst->retiring.load() && idle_retiree_) idle_retiree_(inst);
}

chorus_status ServiceRegistry::watch(Instance &consumer, const char *service, chorus_watch_fn fn, void *arg,
                                     uint64_t *out) {
  std::lock_guard lk(watches_mu_);
  uint64_t id = next_watch_++;
  watches_.push_back({id, consumer.weak_from_this(), service, fn, arg});
  {
    std::lock_guard ilk(consumer.mu);
    consumer.watches.insert(id);
  }
  if (out) *out = id;
  return CHORUS_OK;
}

void ServiceRegistry::unwatch(Instance &consumer, uint64_t id) {
  std::lock_guard lk(watches_mu_);
  std::erase_if(watches_, [&](const Watch &w) { return w.id == id; });
  std::lock_guard ilk(consumer.mu);
  consumer.watches.erase(id);
}

void ServiceRegistry::drop_watches(const std::set<uint64_t> &ids) {
  std::lock_guard lk(watches_mu_);
  std::erase_if(watches_, [&](const Watch &w) { return ids.count(w.id) > 0; });
}

void ServiceRegistry::notify_watchers(const std::string &service, int32_t event) {
  std::lock_guard lk(watches_mu_);
  for (const auto &w : watches_) {
    if (w.service != service) continue;
    auto owner = w.owner.lock();
    if (!owner || owner->tasks_closed.load()) continue;
    workers_->post([owner, fn = w.fn, arg = w.arg, service, event] {
      if (!owner->enter_callback()) return;
      fn(arg, service.c_str(), event);
      owner->leave_callback();
    });
  }
}

void ServiceRegistry::publish(const std::string &service, const std::shared_ptr<Instance> &inst) {
  const ServiceTable *table = nullptr;
  for (const auto &t : inst->services)
    if (t.service == service) table = &t;
  if (table == nullptr) return;
  std::shared_ptr<Slot> slot;
  {
    std::unique_lock lk(slots_mu_);
    auto &s = slots_[service];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  bool had;
  {
    std::lock_guard lk(slot->mu);
    had = slot->provider != nullptr;
    slot->provider = inst;
    slot->table = *table;
  }
  notify_watchers(service, had ? CHORUS_SERVICE_CHANGED : CHORUS_SERVICE_AVAILABLE);
}

void ServiceRegistry::unpublish(const std::shared_ptr<Instance> &inst) {
  std::vector<std::string> gone;
  {
    std::shared_lock lk(slots_mu_);
    for (auto &[name, slot] : slots_) {
      std::lock_guard slk(slot->mu);
      if (slot->provider == inst) {
        slot->provider.reset();
        gone.push_back(name);
      }
    }
  }
  for (const auto &s : gone) notify_watchers(s, CHORUS_SERVICE_GONE);
}

std::shared_ptr<Instance> ServiceRegistry::provider_of(const std::string &service) {
  std::shared_lock lk(slots_mu_);
  auto it = slots_.find(service);
  if (it == slots_.end()) return nullptr;
  std::lock_guard slk(it->second->mu);
  return it->second->provider;
}

}  // namespace chorus::host

#include "lifecycle.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "chorus/status.h"
#include "executor.hpp"
#include "http_server.hpp"
#include "logging.hpp"

namespace asio = boost::asio;

namespace chorus::host {
namespace {

using host_log::info;
using host_log::warn;
using host_log::error;

}  // namespace

std::string status_text(chorus_status s, const chorus_error &err) {
  std::string out = chorus_status_describe(s);
  if (err.message[0] != '\0') out += ": " + std::string(err.message);
  return out;
}

// ------------------------------------------------------------------------------------------------
// LifecycleCaller

// The helper thread's state, shared with the thread itself so an abandoned helper can outlive the
// caller. Guarded by `mu`.
struct LifecycleCaller::Worker {
  std::mutex mu;
  std::condition_variable cv;
  Body job;
  bool done = true, quit = false;
  CallResult result;
  std::thread thread;
};

LifecycleCaller::~LifecycleCaller() {
  if (!worker_) return;
  {
    std::lock_guard lk(worker_->mu);
    worker_->quit = true;
  }
  worker_->cv.notify_all();
  worker_->thread.join();
}

CallResult LifecycleCaller::call(Body body, uint64_t budget_ms) {
  if (!worker_) {
    worker_ = std::make_shared<Worker>();
    worker_->thread = std::thread(loop, worker_);
  }
  std::shared_ptr<Worker> w = worker_;
  std::unique_lock lk(w->mu);
  w->result = CallResult{};
  w->result.err.struct_size = sizeof(chorus_error);
  w->job = std::move(body);
  w->done = false;
  w->cv.notify_all();
  if (w->cv.wait_for(lk, std::chrono::milliseconds(budget_ms), [&] { return w->done; })) return w->result;
  w->quit = true;  // the helper exits after the stuck call, if it returns
  w->thread.detach();
  worker_.reset();
  CallResult r;
  r.timed_out = true;
  return r;
}

void LifecycleCaller::loop(std::shared_ptr<Worker> w) {
  std::unique_lock lk(w->mu);
  while (true) {
    w->cv.wait(lk, [&] { return w->job || w->quit; });
    if (!w->job) return;
    Body job = std::move(w->job);
    w->job = nullptr;
    CallResult r = w->result;
    lk.unlock();
    // A plugin built without the SDK may let an exception escape; both sides share libstdc++,
    // so it can be caught here instead of terminating the host.
    try {
      r.status = job(r);
    } catch (const std::exception &e) {
      r.status = CHORUS_E_INTERNAL;
      set_error(&r.err, CHORUS_E_INTERNAL, std::string("an exception escaped the plugin: ") + e.what());
    } catch (...) {
      r.status = CHORUS_E_INTERNAL;
      set_error(&r.err, CHORUS_E_INTERNAL, "an exception escaped the plugin");
    }
    lk.lock();
    w->result = r;
    w->done = true;
    w->cv.notify_all();
    if (w->quit) return;
  }
}

// ------------------------------------------------------------------------------------------------
// InstanceLifecycle

InstanceLifecycle::InstanceLifecycle(HostContext &host, HostServices &services, ServiceRegistry &registry)
    : host_(host), services_(services), registry_(registry) {
  registry_.on_idle_retiree([this](const std::shared_ptr<Instance> &inst) { schedule_retire(inst); });
}

std::shared_ptr<Instance> InstanceLifecycle::start(const std::string &id, const std::shared_ptr<PluginImage> &image,
                                                   const std::string &config_json, std::string *why,
                                                   const Instance *predecessor) {
  auto inst = std::make_shared<Instance>();
  inst->host = &services_;
  inst->plugin_id = id;
  inst->serial = ++serials_[id];
  inst->image = image;
  inst->order_key = predecessor ? predecessor->order_key : ++order_counter_;
  if (predecessor) inst->takes_over_routes = predecessor->label();
  if (std::find(kept_images_.begin(), kept_images_.end(), image) == kept_images_.end())
    kept_images_.push_back(image);
  const chorus_plugin_vtable *vt = image->vtable;
  uint64_t budget = host_.config.host.start_timeout_ms;

  CallResult created = caller_.call(
      [vt, ctx = &inst->ctx, config_json](CallResult &r) {
        return vt->create(host_api_table(), ctx, config_json.data(), config_json.size(), &r.handle, &r.err);
      },
      budget);
  void *handle = created.handle;
  if (created.timed_out) {
    *why = "create did not return within " + std::to_string(budget) + " ms";
    inst->phase = Phase::kLeaked;
    leaked_.push_back(inst);
    return nullptr;
  }
  if (created.status != CHORUS_OK) {
    *why = "create failed: " + status_text(created.status, created.err);
    inst->close_callbacks(std::chrono::milliseconds(budget));
    release_resources(*inst);
    return nullptr;
  }
  inst->handle = handle;
  inst->phase = Phase::kStarting;
  CallResult started = caller_.call([vt, handle](CallResult &r) { return vt->start(handle, &r.err); }, budget);
  if (started.timed_out) {
    *why = "start did not return within " + std::to_string(budget) + " ms";
    inst->phase = Phase::kLeaked;
    release_resources(*inst);
    leaked_.push_back(inst);
    return nullptr;
  }
  std::string failure;
  bool running = started.status == CHORUS_OK;
  if (!running) {
    failure = "start failed: " + status_text(started.status, started.err);
  } else {
    std::lock_guard lk(inst->mu);
    failure = inst->route_error;
  }
  if (failure.empty()) {
    for (const auto &p : image->info.provides) {
      chorus_error err{};
      err.struct_size = sizeof err;
      ServiceTable t{p.service, p.major, p.minor, p.swappable, nullptr, nullptr};
      chorus_status s = vt->get_service(handle, p.service.c_str(), p.major, &t.table, &t.self, &err);
      if (s != CHORUS_OK || t.table == nullptr) {
        failure = "get_service('" + p.service + "') failed: " +
                  (s != CHORUS_OK ? status_text(s, err) : std::string("returned no table"));
        break;
      }
      if (*static_cast<const uint32_t *>(t.table) < sizeof(uint32_t)) {
        failure = "get_service('" + p.service + "') returned a table with struct_size 0";
        break;
      }
      inst->services.push_back(t);
    }
  }
  if (!failure.empty() && running) stop(inst, budget);  // it did start: undo that first
  if (!failure.empty()) {
    *why = failure;
    inst->close_callbacks(std::chrono::milliseconds(budget));
    release_resources(*inst);
    if (inst->phase != Phase::kLeaked) {
      vt->destroy(handle);
      inst->phase = Phase::kDestroyed;
    }
    return nullptr;
  }
  inst->phase = Phase::kRunning;
  return inst;
}

// Host-side resources of an instance: routes, timers, watches, queued tasks.
void InstanceLifecycle::release_resources(Instance &inst) {
  inst.tasks_closed = true;  // before taking the timer set: timer_start re-checks it under inst.mu
  std::set<uint64_t> watches;
  {
    std::lock_guard lk(inst.mu);
    watches.swap(inst.watches);
  }
  if (routes_of(inst) && host_.http_server) host_.http_server->remove_routes(inst.label());
  release_timers(inst);
  registry_.drop_watches(watches);
}

bool InstanceLifecycle::stop(const std::shared_ptr<Instance> &inst, uint64_t budget_ms) {
  inst->phase = Phase::kStopping;
  registry_.unpublish(inst);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
  bool callbacks_done = inst->close_callbacks(std::chrono::milliseconds(budget_ms));
  release_timers(*inst);
  CallResult r;
  if (callbacks_done) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    uint64_t left_ms = static_cast<uint64_t>(std::max<int64_t>(1, left.count()));
    const chorus_plugin_vtable *vt = inst->image->vtable;
    void *handle = inst->handle;
    HttpServer *http = routes_of(*inst) ? host_.http_server.get() : nullptr;
    std::string label = inst->label();
    // Route removal waits for the plugin's running handlers, so it shares stop()'s deadline.
    r = caller_.call(
        [vt, handle, left_ms, http, label](CallResult &res) {
          if (http) http->remove_routes(label);
          return vt->stop(handle, left_ms, &res.err);
        },
        left_ms + 50);
  } else {
    r.timed_out = true;
  }
  release_resources(*inst);
  if (r.timed_out) {
    error("plugin '" + inst->label() + "' did not stop within " + std::to_string(budget_ms) +
          " ms; abandoning it (its code stays loaded)");
    inst->phase = Phase::kLeaked;
    leaked_.push_back(inst);
    return false;
  }
  if (r.status != CHORUS_OK) warn("plugin '" + inst->label() + "' stop reported " + status_text(r.status, r.err));
  inst->phase = Phase::kStopped;
  return true;
}

bool InstanceLifecycle::routes_of(Instance &inst) {
  std::lock_guard lk(inst.mu);
  return inst.routes_mounted;
}

void InstanceLifecycle::release_timers(Instance &inst) {
  std::set<uint64_t> timers;
  {
    std::lock_guard lk(inst.mu);
    timers.swap(inst.timers);
  }
  for (uint64_t t : timers) host_.workers->timer_cancel(t);
}

void InstanceLifecycle::destroy(const std::shared_ptr<Instance> &inst) {
  if (inst->phase != Phase::kStopped) return;
  int64_t refs = inst->refs.load();
  if (refs > 0) {
    // Destroying would leave those holders with dangling tables; keep the instance instead.
    warn("plugin '" + inst->label() + "' stopped while " + std::to_string(refs) +
         " references to its services are still held; not destroying it");
    leaked_.push_back(inst);
    return;
  }
  inst->image->vtable->destroy(inst->handle);
  inst->phase = Phase::kDestroyed;
}

CallResult InstanceLifecycle::reconfigure(const std::shared_ptr<Instance> &inst, const std::string &config_json) {
  const chorus_plugin_vtable *vt = inst->image->vtable;
  CallResult r = caller_.call(
      [vt, handle = inst->handle, config_json](CallResult &res) {
        return vt->reconfigure(handle, config_json.data(), config_json.size(), &res.err);
      },
      host_.config.host.start_timeout_ms);
  if (r.timed_out) abandon(inst);
  return r;
}

// A lifecycle call did not return in time and may still be running inside the plugin: no further
// lifecycle call may overlap it, so the instance is withdrawn and kept (never destroyed).
void InstanceLifecycle::abandon(const std::shared_ptr<Instance> &inst) {
  inst->phase = Phase::kLeaked;
  registry_.unpublish(inst);
  inst->close_callbacks(std::chrono::milliseconds(0));
  release_resources(*inst);
  leaked_.push_back(inst);
}

CallResult InstanceLifecycle::reload(const std::shared_ptr<Instance> &inst) {
  const chorus_plugin_vtable *vt = inst->image->vtable;
  CallResult r = caller_.call(
      [vt, handle = inst->handle](CallResult &) {
        vt->reload(handle);
        return CHORUS_OK;
      },
      host_.config.host.start_timeout_ms);
  if (r.timed_out) abandon(inst);
  return r;
}

uint64_t InstanceLifecycle::stop_budget(size_t count) const {
  return std::max<uint64_t>(100, host_.config.host.shutdown_timeout_ms / std::max<size_t>(1, count));
}

bool InstanceLifecycle::abandoned_any() const {
  for (const auto &inst : leaked_)
    if (inst->phase == Phase::kLeaked) return true;
  return false;
}

// ------------------------------------------------------------------------------------------------
// Retirement of swapped-out instances

void InstanceLifecycle::schedule_retire(const std::shared_ptr<Instance> &inst) {
  if (inst->retire_scheduled.exchange(true)) return;
  asio::post(host_.control, [this, inst] { finish_retire(inst, false); });
}

void InstanceLifecycle::finish_retire(const std::shared_ptr<Instance> &inst, bool deadline_passed) {
  if (inst->phase == Phase::kDestroyed || inst->phase == Phase::kLeaked) return;
  if (inst->refs.load() > 0 && !deadline_passed) {
    inst->retire_scheduled = false;
    if (inst->refs.load() == 0) schedule_retire(inst);  // it dropped in between
    return;
  }
  if (deadline_passed && inst->refs.load() > 0)
    warn("retiring plugin '" + inst->label() + "' still has " + std::to_string(inst->refs.load()) +
         " requests in flight after " + std::to_string(host_.config.host.swap_drain_timeout_ms) +
         " ms; stopping it, which cancels them");
  if (inst->phase != Phase::kStopped) {
    if (!stop(inst, stop_budget(1))) return;
    info("retired plugin '" + inst->label() + "'");
  }
  if (inst->refs.load() == 0) {
    destroy(inst);
    std::erase(retiring_, inst);
  } else {
    inst->retire_scheduled = false;  // destroyed when the last holder lets go
    if (inst->refs.load() == 0) schedule_retire(inst);
  }
}

void InstanceLifecycle::retire(const std::shared_ptr<Instance> &old) {
  old->retiring = true;
  retiring_.push_back(old);
  registry_.unpublish(old);
  if (CHORUS_HAS(chorus_plugin_vtable, old->image->vtable, drain)) old->image->vtable->drain(old->handle);
  if (old->refs.load() == 0) {
    schedule_retire(old);
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(host_.control);
  timer->expires_after(std::chrono::milliseconds(host_.config.host.swap_drain_timeout_ms));
  timer->async_wait([this, old, timer](const boost::system::error_code &ec) {
    if (!ec) finish_retire(old, true);
  });
}

std::vector<std::shared_ptr<Instance>> InstanceLifecycle::draining() const {
  std::vector<std::shared_ptr<Instance>> out;
  for (const auto &inst : retiring_)
    if (inst->phase != Phase::kDestroyed && inst->phase != Phase::kLeaked) out.push_back(inst);
  return out;
}

}  // namespace chorus::host

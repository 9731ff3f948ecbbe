#include "runtime.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <condition_variable>
#include <functional>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "executor.hpp"
#include "http_server.hpp"
#include "instance.hpp"
#include "json_schema.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "paths.hpp"
#include "semver.hpp"

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

void info(const std::string &m) { log(LogLevel::kInfo, "host", m); }
void warn(const std::string &m) { log(LogLevel::kWarn, "host", m); }
void error(const std::string &m) { log(LogLevel::kError, "host", m); }

std::string status_text(chorus_status s, const chorus_error &err) {
  std::string out = status_string(s);
  if (err.message[0] != '\0') out += ": " + std::string(err.message);
  return out;
}

// Plugin lifecycle calls run on a helper thread that the control thread waits on with a deadline.
// Calls stay strictly sequential, but a plugin that hangs cannot hang the host: past the deadline
// the helper is abandoned (it keeps its own state alive and exits once the stuck call returns, if it
// ever does) and a fresh helper serves the next call. Reusing one helper matters: starting a thread
// per call costs a scheduler tick per plugin on a busy machine.
struct CallResult {
  chorus_status status = CHORUS_E_INTERNAL;
  chorus_error err{};
  void *handle = nullptr;  // create's out_instance
  bool timed_out = false;
};

class LifecycleCaller {
 public:
  using Body = std::function<chorus_status(CallResult &)>;

  ~LifecycleCaller() {
    if (!worker_) return;
    {
      std::lock_guard lk(worker_->mu);
      worker_->quit = true;
    }
    worker_->cv.notify_all();
    worker_->thread.join();
  }

  CallResult call(Body body, uint64_t budget_ms) {
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

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    Body job;
    bool done = true, quit = false;
    CallResult result;
    std::thread thread;
  };

  static void loop(std::shared_ptr<Worker> w) {
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

  std::shared_ptr<Worker> worker_;
};

struct Slot {
  std::mutex mu;
  std::shared_ptr<Instance> provider;
  ServiceTable table;
};

struct RefBox {
  std::shared_ptr<Instance> instance;
};

struct Watch {
  uint64_t id;
  std::weak_ptr<Instance> owner;
  std::string service;
  chorus_watch_fn fn;
  void *arg;
};

// Per enabled plugin, across restarts and swaps.
struct Record {
  PluginEntry entry;
  std::shared_ptr<PluginImage> image;
  std::shared_ptr<Instance> instance;
  std::string state = "pending";  // pending|running|stopping|stopped|failed|skipped|disabled|leaked
  std::string message;
  double start_ms = 0;
};

}  // namespace

struct Runtime::Impl final : HostServices {
  Config config;
  std::string config_path;
  std::string state_dir;
  std::string copy_dir;  // private copies of plugin files (hot swap, pinned hashes)
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();

  asio::io_context control;  // the control thread's loop: signals, reload, retirements
  LifecycleCaller lifecycle;
  std::unique_ptr<Executor> workers;
  std::unique_ptr<HttpServer> http_server;
  MetricsRegistry metrics_registry;
  std::string http_address;

  // Records are created and changed on the control thread; HTTP threads read them under records_mu.
  mutable std::mutex records_mu;
  std::map<std::string, Record> records;
  std::vector<std::string> started_order;  // actual start order, for the reverse stop
  ResolveResult resolution;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
  uint64_t next_serial = 1;
  std::map<std::string, uint64_t> serials;

  std::shared_mutex slots_mu;
  std::map<std::string, std::shared_ptr<Slot>, std::less<>> slots;

  std::mutex watches_mu;
  std::vector<Watch> watches;
  uint64_t next_watch = 1;

  // Host metric ids.
  uint64_t m_reloads = 0, m_swaps = 0, m_http = 0, m_http_seconds = 0, m_plugin_up = 0, m_start_seconds = 0,
           m_uptime = 0, m_build = 0, m_refs = 0;

  Impl(Config c, std::string path) : config(std::move(c)), config_path(std::move(path)) {}

  // ---------------------------------------------------------------- HostServices
  Executor &executor() override { return *workers; }
  MetricsRegistry &metrics() override { return metrics_registry; }
  HttpServer *http() override { return http_server.get(); }
  uint64_t now_ms() override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }

  std::string host_info_json(const Instance &inst) override {
    return json{{"agent_id", config.agent.id},   {"role", config.agent.role},
                {"cluster_id", config.agent.cluster_id}, {"state_dir", state_dir},
                {"host_version", CHORUS_VERSION}, {"plugin_id", inst.plugin_id},
                {"http_listen", http_address}}
        .dump();
  }

  chorus_status acquire(Instance &consumer, const char *service, const char *range, chorus_service_ref *out,
                        chorus_error *err) override {
    std::string_view name = service;
    if (!consumer.may_acquire(name)) {
      set_error(err, CHORUS_E_NOT_FOUND,
                "'" + std::string(name) + "' is not among the requirements plugin '" + consumer.plugin_id +
                    "' declared");
      return CHORUS_E_NOT_FOUND;
    }
    std::shared_ptr<Slot> slot;
    {
      std::shared_lock lk(slots_mu);
      auto it = slots.find(name);
      if (it != slots.end()) slot = it->second;
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
    auto *box = new RefBox{provider};
    out->struct_size = std::min<uint32_t>(out->struct_size ? out->struct_size : sizeof *out, sizeof *out);
    out->major = table.major;
    out->minor = table.minor;
    out->table = table.table;
    out->self = table.self;
    out->handle = reinterpret_cast<uint64_t>(box);
    out->provider_id = provider->plugin_id.c_str();
    return CHORUS_OK;
  }

  void release(chorus_service_ref *ref) override {
    auto *box = reinterpret_cast<RefBox *>(ref->handle);
    if (box == nullptr) return;
    ref->handle = 0;
    ref->table = nullptr;
    ref->self = nullptr;
    release_count(box->instance);
    delete box;
  }

  void release_count(const std::shared_ptr<Instance> &inst) {
    if (inst->refs.fetch_sub(1) == 1 && inst->retiring.load()) schedule_retire(inst);
  }

  chorus_status watch(Instance &consumer, const char *service, chorus_watch_fn fn, void *arg,
                      uint64_t *out) override {
    std::lock_guard lk(watches_mu);
    uint64_t id = next_watch++;
    watches.push_back({id, consumer.weak_from_this(), service, fn, arg});
    {
      std::lock_guard ilk(consumer.mu);
      consumer.watches.insert(id);
    }
    if (out) *out = id;
    return CHORUS_OK;
  }

  void unwatch(Instance &consumer, uint64_t id) override {
    std::lock_guard lk(watches_mu);
    std::erase_if(watches, [&](const Watch &w) { return w.id == id; });
    std::lock_guard ilk(consumer.mu);
    consumer.watches.erase(id);
  }

  void notify_watchers(const std::string &service, int32_t event) {
    std::lock_guard lk(watches_mu);
    for (const auto &w : watches) {
      if (w.service != service) continue;
      auto owner = w.owner.lock();
      if (!owner || owner->tasks_closed.load()) continue;
      workers->post([owner, fn = w.fn, arg = w.arg, service, event] {
        if (!owner->enter_callback()) return;
        fn(arg, service.c_str(), event);
        owner->leave_callback();
      });
    }
  }

  // ---------------------------------------------------------------- slots
  void publish(const std::string &service, const std::shared_ptr<Instance> &inst) {
    const ServiceTable *table = nullptr;
    for (const auto &t : inst->services)
      if (t.service == service) table = &t;
    if (table == nullptr) return;
    std::shared_ptr<Slot> slot;
    {
      std::unique_lock lk(slots_mu);
      auto &s = slots[service];
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

  void unpublish(const std::shared_ptr<Instance> &inst) {
    std::vector<std::string> gone;
    {
      std::shared_lock lk(slots_mu);
      for (auto &[name, slot] : slots) {
        std::lock_guard slk(slot->mu);
        if (slot->provider == inst) {
          slot->provider.reset();
          gone.push_back(name);
        }
      }
    }
    for (const auto &s : gone) notify_watchers(s, CHORUS_SERVICE_GONE);
  }

  std::shared_ptr<Instance> slot_provider(const std::string &service) {
    std::shared_lock lk(slots_mu);
    auto it = slots.find(service);
    if (it == slots.end()) return nullptr;
    std::lock_guard slk(it->second->mu);
    return it->second->provider;
  }

  // ---------------------------------------------------------------- records
  void set_state(const std::string &id, std::string state, std::string message = {}) {
    std::lock_guard lk(records_mu);
    auto &r = records[id];
    r.state = std::move(state);
    r.message = std::move(message);
  }

  std::string locate(const PluginEntry &e) {
    if (!e.path.empty()) return e.path;
    return find_plugin_file(e.id, plugin_search_dirs(config.host));
  }

  // Loads the image for an entry. Returns nullptr and a one-line reason on failure.
  std::shared_ptr<PluginImage> load_entry(const PluginEntry &e, bool private_copy, std::string *why) {
    std::string path = locate(e);
    if (path.empty()) {
      std::string dirs;
      for (const auto &d : plugin_search_dirs(config.host)) dirs += (dirs.empty() ? "" : ", ") + d;
      *why = "no plugin file chorus-" + e.id + ".so in " + (dirs.empty() ? "(no plugin directories)" : dirs);
      return nullptr;
    }
    std::string dir = fs::path(path).parent_path().string();
    if (auto unsafe = unsafe_plugin_location(dir.empty() ? "." : dir)) {
      *why = *unsafe;
      return nullptr;
    }
    if (auto unsafe = unsafe_plugin_location(path)) {
      *why = *unsafe;
      return nullptr;
    }
    LoadRequest req{path, e.id, e.sha256, private_copy, copy_dir};
    return load_plugin(req, why);
  }

  // Validates an entry's config against the plugin's schema and fills in defaults.
  std::optional<std::string> prepare_config(const PluginEntry &e, const PluginInfo &info, std::string *out) {
    json cfg = json::parse(e.config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) return "plugins." + e.id + ".config: not an object";
    if (!info.config_schema.is_null())
      if (auto why = validate_and_default(info.config_schema, cfg, "plugins." + e.id + ".config")) return why;
    *out = cfg.dump();
    return std::nullopt;
  }

  ResolveInput resolve_input(const std::vector<std::string> &ids) {
    ResolveInput in;
    in.bindings = config.bindings;
    for (const auto &id : ids) {
      const Record &r = records.at(id);
      if (r.image) {
        in.components.push_back({id, r.image->info.provides, r.image->info.requires_});
      } else {
        in.unavailable[id] = r.message;
      }
    }
    return in;
  }

  // ---------------------------------------------------------------- instance lifecycle
  // Creates and starts a new instance from `image`. Does not publish its services.
  std::shared_ptr<Instance> start_instance(const std::string &id, const std::shared_ptr<PluginImage> &image,
                                           const std::string &config_json, std::string *why,
                                           const Instance *predecessor = nullptr) {
    auto inst = std::make_shared<Instance>();
    inst->host = this;
    inst->plugin_id = id;
    inst->serial = ++serials[id];
    inst->image = image;
    inst->order_key = predecessor ? predecessor->order_key : ++order_counter;
    if (predecessor) inst->takes_over_routes = predecessor->label();
    if (std::find(kept_images.begin(), kept_images.end(), image) == kept_images.end()) kept_images.push_back(image);
    const chorus_plugin_vtable *vt = image->vtable;
    uint64_t budget = config.host.start_timeout_ms;

    CallResult created = lifecycle.call(
        [vt, ctx = &inst->ctx, config_json](CallResult &r) {
          return vt->create(host_api_table(), ctx, config_json.data(), config_json.size(), &r.handle, &r.err);
        },
        budget);
    void *handle = created.handle;
    if (created.timed_out) {
      *why = "create did not return within " + std::to_string(budget) + " ms";
      inst->phase = Phase::kLeaked;
      leaked.push_back(inst);
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
    CallResult started =
        lifecycle.call([vt, handle](CallResult &r) { return vt->start(handle, &r.err); }, budget);
    if (started.timed_out) {
      *why = "start did not return within " + std::to_string(budget) + " ms";
      inst->phase = Phase::kLeaked;
      release_resources(*inst);
      leaked.push_back(inst);
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
    if (!failure.empty() && running) stop_instance(inst, budget);  // it did start: undo that first
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
  void release_resources(Instance &inst) {
    inst.tasks_closed = true;  // before taking the timer set: timer_start re-checks it under inst.mu
    std::set<uint64_t> my_watches;
    {
      std::lock_guard lk(inst.mu);
      my_watches.swap(inst.watches);
    }
    if (routes_of(inst) && http_server) http_server->remove_routes(inst.label());
    release_timers(inst);
    std::lock_guard lk(watches_mu);
    std::erase_if(watches, [&](const Watch &w) { return my_watches.count(w.id) > 0; });
  }

  // Stops one instance: withdraws its services, closes its task/timer intake and waits for running
  // callbacks, removes its routes and calls stop(), all within the budget; then releases what the
  // host holds for it. Returns false when the budget ran out (the instance is abandoned).
  bool stop_instance(const std::shared_ptr<Instance> &inst, uint64_t budget_ms) {
    inst->phase = Phase::kStopping;
    unpublish(inst);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
    bool callbacks_done = inst->close_callbacks(std::chrono::milliseconds(budget_ms));
    release_timers(*inst);
    CallResult r;
    if (callbacks_done) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      uint64_t left_ms = static_cast<uint64_t>(std::max<int64_t>(1, left.count()));
      const chorus_plugin_vtable *vt = inst->image->vtable;
      void *handle = inst->handle;
      HttpServer *http = routes_of(*inst) ? http_server.get() : nullptr;
      std::string label = inst->label();
      // Route removal waits for the plugin's running handlers, so it shares stop()'s deadline.
      r = lifecycle.call(
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
      leaked.push_back(inst);
      return false;
    }
    if (r.status != CHORUS_OK) warn("plugin '" + inst->label() + "' stop reported " + status_text(r.status, r.err));
    inst->phase = Phase::kStopped;
    return true;
  }

  bool routes_of(Instance &inst) {
    std::lock_guard lk(inst.mu);
    return inst.routes_mounted;
  }

  void release_timers(Instance &inst) {
    std::set<uint64_t> timers;
    {
      std::lock_guard lk(inst.mu);
      timers.swap(inst.timers);
    }
    for (uint64_t t : timers) workers->timer_cancel(t);
  }

  void destroy_instance(const std::shared_ptr<Instance> &inst) {
    if (inst->phase != Phase::kStopped) return;
    int64_t refs = inst->refs.load();
    if (refs > 0) {
      // Destroying would leave those holders with dangling tables; keep the instance instead.
      warn("plugin '" + inst->label() + "' stopped while " + std::to_string(refs) +
           " references to its services are still held; not destroying it");
      leaked.push_back(inst);
      return;
    }
    inst->image->vtable->destroy(inst->handle);
    inst->phase = Phase::kDestroyed;
  }

  std::vector<std::shared_ptr<Instance>> leaked;    // abandoned instances, kept for the process lifetime
  std::vector<std::shared_ptr<Instance>> retiring;  // swapped-out instances until they are destroyed
  // Every image ever loaded for an instance. Never unloaded while the process runs: retired code may
  // still be on a worker's stack, and a chorus_buf's release function may point into it.
  std::vector<std::shared_ptr<PluginImage>> kept_images;
  uint64_t order_counter = 0;

  // ---------------------------------------------------------------- hot swap retirement
  void schedule_retire(const std::shared_ptr<Instance> &inst) {
    if (inst->retire_scheduled.exchange(true)) return;
    asio::post(control, [this, inst] { finish_retire(inst, false); });
  }

  void finish_retire(const std::shared_ptr<Instance> &inst, bool deadline_passed) {
    if (inst->phase == Phase::kDestroyed || inst->phase == Phase::kLeaked) return;
    if (inst->refs.load() > 0 && !deadline_passed) {
      inst->retire_scheduled = false;
      if (inst->refs.load() == 0) schedule_retire(inst);  // it dropped in between
      return;
    }
    if (deadline_passed && inst->refs.load() > 0)
      warn("retiring plugin '" + inst->label() + "' still has " + std::to_string(inst->refs.load()) +
           " requests in flight after " + std::to_string(config.host.swap_drain_timeout_ms) +
           " ms; stopping it, which cancels them");
    if (inst->phase != Phase::kStopped) {
      if (!stop_instance(inst, stop_budget(1))) return;
      info("retired plugin '" + inst->label() + "'");
    }
    if (inst->refs.load() == 0) {
      destroy_instance(inst);
      std::erase(retiring, inst);
    } else {
      inst->retire_scheduled = false;  // destroyed when the last holder lets go
      if (inst->refs.load() == 0) schedule_retire(inst);
    }
  }

  // Takes `old` out of service once its in-flight requests are done (or the drain deadline passes).
  void retire(const std::shared_ptr<Instance> &old) {
    old->retiring = true;
    retiring.push_back(old);
    unpublish(old);
    if (CHORUS_HAS(chorus_plugin_vtable, old->image->vtable, drain)) old->image->vtable->drain(old->handle);
    if (old->refs.load() == 0) {
      schedule_retire(old);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(control);
    timer->expires_after(std::chrono::milliseconds(config.host.swap_drain_timeout_ms));
    timer->async_wait([this, old, timer](const boost::system::error_code &ec) {
      if (!ec) finish_retire(old, true);
    });
  }

  uint64_t stop_budget(size_t count) const {
    return std::max<uint64_t>(100, config.host.shutdown_timeout_ms / std::max<size_t>(1, count));
  }

  // ---------------------------------------------------------------- start / stop of records
  // Starts one resolved record. Returns false when it failed.
  bool start_record(const std::string &id) {
    Record &rec = records.at(id);
    std::string cfg, why;
    if (auto bad = prepare_config(rec.entry, rec.image->info, &cfg)) {
      fail_record(id, "config: " + *bad);
      return false;
    }
    set_state(id, "starting");
    auto t0 = std::chrono::steady_clock::now();
    auto inst = start_instance(id, rec.image, cfg, &why);
    if (!inst) {
      fail_record(id, why);
      return false;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard lk(records_mu);
      rec.instance = inst;
      rec.state = "running";
      rec.message.clear();
      rec.start_ms = ms;
    }
    started_order.push_back(id);
    metrics_registry.update(m_start_seconds, MetricsRegistry::kSet, std::vector<std::string>{id}, ms / 1000.0);
    // Fill empty slots only; moving a bound service from a running provider is reload's job, which
    // checks that the service is swappable.
    for (const auto &p : rec.image->info.provides) {
      auto it = resolution.bindings.find(p.service);
      if (it != resolution.bindings.end() && it->second == id && !slot_provider(p.service)) publish(p.service, inst);
    }
    info("started plugin '" + id + "' " + rec.image->info.version + " in " + std::to_string(ms) + " ms");
    return true;
  }

  void fail_record(const std::string &id, const std::string &why) {
    set_state(id, "failed", why);
    error("plugin '" + id + "' failed: " + why);
  }

  bool record_critical(const std::string &id) {
    auto it = records.find(id);
    return it != records.end() && it->second.entry.critical;
  }

  void stop_record(const std::string &id, uint64_t budget, const std::string &final_state) {
    Record &rec = records.at(id);
    auto inst = rec.instance;
    std::erase(started_order, id);
    if (!inst) {
      set_state(id, final_state);
      return;
    }
    set_state(id, "stopping");
    info("stopping plugin '" + id + "'");
    bool ok = stop_instance(inst, budget);
    if (ok) destroy_instance(inst);
    std::lock_guard lk(records_mu);
    rec.instance.reset();
    rec.state = ok ? final_state : "leaked";
    rec.message = ok ? "" : "did not stop within its deadline";
  }

  // Running plugins that required-depend on a service whose bound provider is `id`.
  std::vector<std::string> running_dependents(const std::string &id) {
    std::vector<std::string> out;
    for (const auto &other : started_order) {
      if (other == id) continue;
      const Record &r = records.at(other);
      for (const auto &req : r.image->info.requires_) {
        if (req.optional) continue;
        auto it = resolution.wiring.find(other);
        if (it == resolution.wiring.end()) continue;
        auto w = it->second.find(req.service);
        if (w != it->second.end() && w->second == id) out.push_back(other + " (" + req.service + ")");
      }
    }
    return out;
  }

  // Starts every resolved, not yet running record in order. At start-up (abort_on_failure) a failed
  // critical plugin, or with host.strict any failed plugin, stops the loop and returns exit code 1;
  // on reload every startable plugin is tried and failures are only logged.
  int start_pending(bool abort_on_failure) {
    for (const auto &id : resolution.order) {
      Record &rec = records.at(id);
      if (rec.instance) continue;
      // A provider this one requires may have failed at start just now.
      std::string missing;
      auto wired = resolution.wiring.find(id);
      for (const auto &req : rec.image->info.requires_) {
        if (req.optional || wired == resolution.wiring.end()) continue;
        auto it = wired->second.find(req.service);
        if (it == wired->second.end()) continue;
        const Record &p = records.at(it->second);
        if (!p.instance) {
          missing = "requires " + req.service + " from '" + it->second + "', which " +
                    (p.state == "failed" ? "failed: " + p.message : "is " + p.state);
          break;
        }
      }
      bool fatal = abort_on_failure && (rec.entry.critical || config.host.strict);
      std::string what = rec.entry.critical ? "critical plugin '" + id + "'" : "plugin '" + id + "'";
      if (!missing.empty()) {
        set_state(id, "skipped", missing);
        warn("plugin '" + id + "' skipped: " + missing);
        if (fatal) {
          error(what + " could not start" + (rec.entry.critical ? "" : " (host.strict is set)"));
          return kExitPluginFailed;
        }
        continue;
      }
      if (!start_record(id) && fatal) {
        error(what + " failed to start; stopping" + (rec.entry.critical ? "" : " (host.strict is set)"));
        return kExitPluginFailed;
      }
    }
    return kExitOk;
  }

  // Loads every enabled plugin and resolves them. Returns false on config errors (exit 2).
  bool load_and_resolve(CheckReport *report) {
    std::vector<std::string> enabled;
    for (const auto &e : config.plugins) {
      if (!e.enabled) {
        std::lock_guard lk(records_mu);
        records[e.id].entry = e;
        records[e.id].state = "disabled";
        continue;
      }
      enabled.push_back(e.id);
      std::string why;
      auto image = load_entry(e, false, &why);
      std::lock_guard lk(records_mu);
      Record &r = records[e.id];
      r.entry = e;
      r.image = image;
      if (!image) {
        r.state = "failed";
        r.message = why;
      }
    }
    ResolveResult resolved = resolve(resolve_input(enabled));
    {
      std::lock_guard lk(records_mu);  // /plugins reads it from HTTP threads
      resolution = std::move(resolved);
    }
    report->order = resolution.order;
    report->bindings = resolution.bindings;
    report->errors = resolution.errors;
    report->warnings = resolution.warnings;
    for (const auto &id : enabled) {
      const Record &r = records.at(id);
      if (!r.image) report->skipped.push_back({id, r.message});
    }
    for (const auto &s : resolution.skipped) {
      report->skipped.push_back(s);
      set_state(s.id, "skipped", s.reason);
    }
    for (const auto &id : enabled) {
      const Record &r = records.at(id);
      if (r.image)
        if (std::string cfg; auto bad = prepare_config(r.entry, r.image->info, &cfg))
          report->errors.push_back(*bad);
    }
    return report->errors.empty();
  }

  // ---------------------------------------------------------------- host routes and metrics
  void define_host_metrics() {
    std::string e;
    using K = MetricsRegistry::Kind;
    m_reloads = *metrics_registry.define(K::kCounter, "chorus_reloads_total", "Configuration reloads (SIGHUP) by result",
                                         {"result"}, {}, &e);
    m_swaps = *metrics_registry.define(K::kCounter, "chorus_hot_swaps_total",
                                       "Hot swaps of swappable services by service and result", {"service", "result"},
                                       {}, &e);
    m_http = *metrics_registry.define(K::kCounter, "chorus_http_requests_total",
                                      "HTTP requests on the host listener by route and status", {"route", "code"}, {}, &e);
    m_http_seconds = *metrics_registry.define(K::kHistogram, "chorus_http_request_duration_seconds",
                                              "HTTP request duration on the host listener", {}, {}, &e);
    m_plugin_up = *metrics_registry.define(K::kGauge, "chorus_plugin_up", "1 when the plugin is running, else 0",
                                           {"plugin", "state"}, {}, &e);
    m_start_seconds = *metrics_registry.define(K::kGauge, "chorus_plugin_start_seconds",
                                               "Time the plugin's create+start took", {"plugin"}, {}, &e);
    m_uptime = *metrics_registry.define(K::kGauge, "chorus_uptime_seconds", "Seconds since the host started", {}, {}, &e);
    m_build = *metrics_registry.define(K::kGauge, "chorus_build_info", "Build information", {"version", "abi"}, {}, &e);
    m_refs = *metrics_registry.define(K::kGauge, "chorus_service_references",
                                      "References held to a plugin's services", {"plugin"}, {}, &e);
    metrics_registry.update(m_build, MetricsRegistry::kSet,
                            std::vector<std::string>{CHORUS_VERSION, std::to_string(CHORUS_ABI_MAJOR) + "." +
                                                                         std::to_string(CHORUS_ABI_MINOR)},
                            1);
    metrics_registry.add_collector([this](MetricsRegistry &m) {
      m.update(m_uptime, MetricsRegistry::kSet, std::vector<std::string>{},
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count());
      std::lock_guard lk(records_mu);
      for (const auto &[id, r] : records) {
        m.update(m_plugin_up, MetricsRegistry::kSet, std::vector<std::string>{id, r.state},
                 r.state == "running" ? 1 : 0);
        if (r.instance)
          m.update(m_refs, MetricsRegistry::kSet, std::vector<std::string>{id},
                   static_cast<double>(r.instance->refs.load()));
      }
    });
  }

  static void respond_json(chorus_http_exchange *ex, int status, const json &body) {
    std::string text = body.dump();
    HttpServer::respond(ex, status, "application/json", nullptr, 0, text.data(), text.size());
  }

  bool critical_all_running() const {
    std::lock_guard lk(records_mu);
    for (const auto &[id, r] : records)
      if (r.entry.enabled && r.entry.critical && r.state != "running") return false;
    return true;
  }

  json health_json(int *status_code) const {
    json plugins = json::object();
    bool unhealthy = false, degraded = false;
    std::lock_guard lk(records_mu);
    for (const auto &[id, r] : records) {
      if (!r.entry.enabled && r.state == "disabled") continue;
      bool running = r.state == "running";
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
      plugins[id] = {{"state", r.state}, {"critical", r.entry.critical}, {"healthy", healthy}, {"message", msg}};
    }
    std::string status = unhealthy ? "unhealthy" : degraded ? "degraded" : "healthy";
    *status_code = unhealthy ? 503 : 200;
    return {{"status", status}, {"plugins", plugins}};
  }

  json plugins_json() const {
    json out = json::array();
    std::lock_guard lk(records_mu);
    for (const auto &[id, r] : records) {
      json item = {{"id", id}, {"state", r.state}, {"enabled", r.entry.enabled}, {"critical", r.entry.critical}};
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

  void mount_host_routes() {
    std::string conflict;
    auto add = [&](const char *path, HttpServer::Handler h) {
      http_server->add_route("GET", path, false, "host", std::move(h), &conflict);
    };
    add("/health/live", [](const chorus_http_request &, chorus_http_exchange *ex) {
      respond_json(ex, 200, {{"status", "alive"}});
    });
    add("/health/ready", [this](const chorus_http_request &, chorus_http_exchange *ex) {
      bool ok = ready.load() && !stopping.load() && critical_all_running();
      respond_json(ex, ok ? 200 : 503, {{"status", ok ? "ready" : "not ready"}});
    });
    add("/health", [this](const chorus_http_request &, chorus_http_exchange *ex) {
      int code = 200;
      json body = health_json(&code);
      respond_json(ex, code, body);
    });
    add("/metrics", [this](const chorus_http_request &, chorus_http_exchange *ex) {
      std::string text = metrics_registry.render();
      HttpServer::respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", nullptr, 0, text.data(), text.size());
    });
    add("/plugins", [this](const chorus_http_request &, chorus_http_exchange *ex) {
      respond_json(ex, 200, plugins_json());
    });
    http_server->set_observer([this](std::string_view, std::string_view route, int status, double seconds) {
      metrics_registry.update(m_http, MetricsRegistry::kAdd,
                              std::vector<std::string>{route.empty() ? "(none)" : std::string(route),
                                                       std::to_string(status)},
                              1);
      metrics_registry.update(m_http_seconds, MetricsRegistry::kObserve, std::vector<std::string>{}, seconds);
    });
  }

  // A running instance of `old` may be replaced by one of `fresh` while requests are in flight only
  // when both provide nothing but swappable services, and `fresh` still provides every one of
  // `old`'s services at the same major version (consumers keep working across the swap).
  static bool swappable_replacement(const PluginImage &old, const PluginImage &fresh) {
    auto all_swappable = [](const PluginInfo &i) {
      return !i.provides.empty() &&
             std::all_of(i.provides.begin(), i.provides.end(), [](const ProvidedService &p) { return p.swappable; });
    };
    if (!all_swappable(old.info) || !all_swappable(fresh.info)) return false;
    for (const auto &p : old.info.provides) {
      bool kept = std::any_of(fresh.info.provides.begin(), fresh.info.provides.end(), [&](const ProvidedService &q) {
        return q.service == p.service && q.major == p.major;
      });
      if (!kept) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------- SIGHUP
  void shutdown_transport() {
    // The plugins' last answers (the 503s of the requests their stop cancelled) are still queued on
    // the workers; they are written before the workers stop, within a bound a stuck client cannot
    // stretch.
    if (http_server && !http_server->stop(kHttpDrainGrace)) warn("HTTP connections still open at exit; closing them");
    if (workers) workers->stop_and_join();
    http_server.reset();
  }

  void reload();
  bool reload_plugin_in_place(const std::string &id, const PluginEntry &next, bool file_changed);
  void shutdown();
  int run();
};

// Applies a changed config (or plugin file) to one running plugin: reconfigure when it can, else a
// hot swap (swappable providers) or a restart (nobody depends on it). Returns false when the change
// could not be applied; the plugin then keeps running as it was.
bool Runtime::Impl::reload_plugin_in_place(const std::string &id, const PluginEntry &next, bool file_changed) {
  Record &rec = records.at(id);
  auto image = rec.image;
  if (file_changed) {
    std::string why;
    image = load_entry(next, true, &why);
    if (!image) {
      error("plugin '" + id + "': the replaced file cannot be used: " + why + "; keeping the running one");
      return false;
    }
  }
  std::string cfg;
  if (auto bad = prepare_config(next, image->info, &cfg)) {
    error("plugin '" + id + "': new config rejected: " + *bad + "; keeping the running one");
    return false;
  }
  const chorus_plugin_vtable *vt = rec.image->vtable;
  if (!file_changed && CHORUS_HAS(chorus_plugin_vtable, vt, reconfigure)) {
    CallResult r = lifecycle.call(
        [vt, handle = rec.instance->handle, cfg](CallResult &res) {
          return vt->reconfigure(handle, cfg.data(), cfg.size(), &res.err);
        },
        config.host.start_timeout_ms);
    if (r.timed_out) {
      // The call may still be running inside the plugin; no further lifecycle call may overlap it.
      error("plugin '" + id + "' reconfigure did not return within " + std::to_string(config.host.start_timeout_ms) +
            " ms; abandoning the plugin (its code stays loaded)");
      auto inst = rec.instance;
      inst->phase = Phase::kLeaked;
      unpublish(inst);
      inst->close_callbacks(std::chrono::milliseconds(0));
      release_resources(*inst);
      leaked.push_back(inst);
      std::erase(started_order, id);
      std::lock_guard lk(records_mu);
      rec.instance.reset();
      rec.state = "leaked";
      rec.message = "reconfigure did not return in time";
      return false;
    }
    if (r.status == CHORUS_OK) {
      std::lock_guard lk(records_mu);
      rec.entry = next;
      info("reconfigured plugin '" + id + "'");
      return true;
    }
    if (r.status != CHORUS_E_NEEDS_RESTART) {
      error("plugin '" + id + "' rejected its new config: " + status_text(r.status, r.err));
      return false;
    }
  }
  if (swappable_replacement(*rec.image, *image)) {
    // Hot swap: start the new instance beside the old, publish it, retire the old one when idle.
    std::string why;
    auto fresh = start_instance(id, image, cfg, &why, rec.instance.get());
    for (const auto &p : image->info.provides) {
      if (!fresh) {
        metrics_registry.update(m_swaps, MetricsRegistry::kAdd, std::vector<std::string>{p.service, "failed"}, 1);
        continue;
      }
      metrics_registry.update(m_swaps, MetricsRegistry::kAdd, std::vector<std::string>{p.service, "ok"}, 1);
    }
    if (!fresh) {
      error("hot swap of plugin '" + id + "' failed: " + why + "; the running instance keeps serving");
      return false;
    }
    auto old = rec.instance;
    for (const auto &p : image->info.provides) {
      auto it = resolution.bindings.find(p.service);
      if (it != resolution.bindings.end() && it->second == id) publish(p.service, fresh);
    }
    {
      std::lock_guard lk(records_mu);
      rec.instance = fresh;
      rec.image = image;
      rec.entry = next;
    }
    info("hot-swapped plugin '" + id + "' to " + image->info.version + " (instance " + std::to_string(fresh->serial) +
         "); retiring instance " + std::to_string(old->serial) + " when idle");
    retire(old);
    return true;
  }
  auto dependents = running_dependents(id);
  if (!dependents.empty()) {
    std::string list;
    for (const auto &d : dependents) list += (list.empty() ? "" : ", ") + d;
    warn("plugin '" + id + "' needs a restart to apply the change, but " + list +
         " depend on it; restart the agent to apply it");
    return false;
  }
  PluginEntry previous_entry = rec.entry;
  auto previous_image = rec.image;
  stop_record(id, stop_budget(1), "stopped");
  {
    std::lock_guard lk(records_mu);
    rec.entry = next;
    rec.image = image;
  }
  if (start_record(id)) return true;
  // Leave it as it was rather than down: start the previous file with the previous config.
  warn("plugin '" + id + "' failed to restart with the change; restarting it as it was");
  {
    std::lock_guard lk(records_mu);
    rec.entry = previous_entry;
    rec.image = previous_image;
  }
  start_record(id);
  return false;
}

void Runtime::Impl::reload() {
  info("SIGHUP: reloading configuration" + (config_path.empty() ? std::string(" (built-in default)") : " from " + config_path));
  Config next;
  try {
    next = config_path.empty() ? parse_config(default_config_yaml(), "<built-in default>")
                               : load_config_file(config_path);
  } catch (const std::exception &e) {
    metrics_registry.update(m_reloads, MetricsRegistry::kAdd, std::vector<std::string>{"error"}, 1);
    error(std::string("reload failed: ") + e.what() + "; keeping the running configuration");
    return;
  }
  if (auto level = parse_log_level(next.host.log_level)) set_log_level(*level);
  if (next.host.http_listen != config.host.http_listen || next.host.worker_threads != config.host.worker_threads ||
      next.host.state_dir != config.host.state_dir || next.host.log_format != config.host.log_format)
    warn("host.http, host.worker_threads, host.state_dir and host.log_format apply only after a restart");

  {
    std::lock_guard lk(records_mu);  // host_info_json reads config from worker threads
    Config previous = std::move(config);
    config = std::move(next);
    config.host.http_listen = previous.host.http_listen;
    config.host.worker_threads = previous.host.worker_threads;
    config.host.state_dir = previous.host.state_dir;
  }

  // 1. The new set of enabled plugins. Load what is newly enabled (or failed before and may work
  //    now); the file is loaded outside records_mu so /health never waits on dlopen.
  std::map<std::string, PluginEntry> wanted;
  for (const auto &e : config.plugins)
    if (e.enabled) wanted[e.id] = e;
  for (const auto &[id, e] : wanted) {
    std::shared_ptr<PluginImage> loaded_before;
    {
      std::lock_guard lk(records_mu);
      Record &r = records[id];
      if (r.instance) continue;
      loaded_before = r.image;
    }
    std::string why;
    auto image = load_entry(e, loaded_before != nullptr, &why);  // a fresh private copy when reloaded
    std::lock_guard lk(records_mu);
    Record &r = records[id];
    r.entry = e;
    r.image = image;
    r.state = image ? "pending" : "failed";
    r.message = image ? "" : why;
    if (!image) error("plugin '" + id + "' failed: " + why);
  }

  // 2. Resolve the new set. A running plugin being disabled stays while a plugin that stays would
  //    lose it: skipped without it, or re-wired away from it for a service that cannot be swapped
  //    under a running consumer (docs/contract.md, Signals).
  auto wanted_ids = [&] {
    std::vector<std::string> ids;
    for (const auto &[id, e] : wanted) ids.push_back(id);
    return ids;
  };
  ResolveResult next_resolution = resolve(resolve_input(wanted_ids()));
  for (size_t round = 0; round <= started_order.size(); ++round) {
    std::string keep, because;
    for (const auto &consumer : started_order) {
      if (!wanted.count(consumer) || !keep.empty()) continue;
      auto old_wiring = resolution.wiring.find(consumer);
      if (old_wiring == resolution.wiring.end()) continue;
      bool skipped = std::any_of(next_resolution.skipped.begin(), next_resolution.skipped.end(),
                                 [&](const SkippedComponent &c) { return c.id == consumer; });
      auto new_wiring = next_resolution.wiring.find(consumer);
      for (const auto &req : records.at(consumer).image->info.requires_) {
        if (req.optional) continue;
        auto old_provider = old_wiring->second.find(req.service);
        if (old_provider == old_wiring->second.end() || wanted.count(old_provider->second)) continue;
        bool rewired = new_wiring != next_resolution.wiring.end() && new_wiring->second.count(req.service);
        bool swappable = false;
        for (const auto &p : records.at(old_provider->second).image->info.provides)
          swappable |= p.service == req.service && p.swappable;
        if (skipped || !rewired || !swappable) {
          keep = old_provider->second;
          because = "'" + consumer + "' still requires " + req.service;
          break;
        }
      }
    }
    if (keep.empty()) break;
    warn("not disabling plugin '" + keep + "': " + because);
    wanted[keep] = records.at(keep).entry;
    next_resolution = resolve(resolve_input(wanted_ids()));
  }
  for (const auto &e : next_resolution.errors) error("reload: " + e);
  for (const auto &w : next_resolution.warnings) warn("reload: " + w);
  if (!next_resolution.errors.empty()) {
    metrics_registry.update(m_reloads, MetricsRegistry::kAdd, std::vector<std::string>{"error"}, 1);
    error("reload: configuration errors; plugins were not started or re-bound");
    return;
  }

  // 3. Changed config or replaced files of plugins that keep running.
  for (const auto &id : std::vector<std::string>(started_order)) {
    auto w = wanted.find(id);
    if (w == wanted.end()) continue;
    Record &rec = records.at(id);
    PluginEntry next_entry = w->second;
    auto now = fingerprint(locate(next_entry));
    if (!now) {
      // The file is gone (e.g. its package was removed): the running code stays mapped and keeps
      // serving, but the next start of the agent will not find it.
      warn("reload: the file of running plugin '" + id + "' (" + rec.image->origin_path +
           ") is gone; it keeps running until the agent stops, and will fail to start after a restart "
           "while the config still enables it");
    }
    bool file_changed = now && !(*now == rec.image->origin_fingerprint);
    bool path_changed = next_entry.path != rec.entry.path || next_entry.sha256 != rec.entry.sha256;
    bool config_changed = next_entry.config_json != rec.entry.config_json;
    if (file_changed || path_changed || config_changed) {
      reload_plugin_in_place(id, next_entry, file_changed || path_changed);
    } else {
      std::lock_guard lk(records_mu);
      rec.entry = next_entry;  // e.g. `critical` changed
    }
  }

  for (const auto &sk : next_resolution.skipped)
    if (!records.at(sk.id).instance) set_state(sk.id, "skipped", sk.reason);
  ResolveResult old_resolution = resolution;
  {
    std::lock_guard lk(records_mu);
    resolution = next_resolution;
  }

  // 4. Start what is resolved but not running (new providers come up before anything retires).
  start_pending(false);

  // 5. Re-bind services whose bound provider changed.
  for (const auto &[service, provider] : resolution.bindings) {
    auto current = slot_provider(service);
    const Record &rec = records.at(provider);
    if (!rec.instance || (current && current == rec.instance)) continue;
    bool swappable = false;
    for (const auto &p : rec.image->info.provides) swappable |= (p.service == service && p.swappable);
    auto old_it = old_resolution.bindings.find(service);
    bool was_bound_elsewhere = old_it != old_resolution.bindings.end() && old_it->second != provider;
    if (current && !swappable) {
      warn("binding of " + service + " changed to '" + provider + "', but the service is not swappable; restart to apply");
      continue;
    }
    publish(service, rec.instance);
    if (was_bound_elsewhere) {
      metrics_registry.update(m_swaps, MetricsRegistry::kAdd, std::vector<std::string>{service, "ok"}, 1);
      info("re-bound " + service + " from '" + old_it->second + "' to '" + provider + "'");
    }
  }

  // 6. Stop what is no longer wanted, newest first. Providers of swappable services finish their
  //    in-flight requests first.
  for (auto it = started_order.rbegin(); it != started_order.rend();) {
    std::string id = *it;
    ++it;
    if (wanted.count(id)) continue;
    Record &rec = records.at(id);
    auto inst = rec.instance;
    bool all_swappable = !rec.image->info.provides.empty() &&
                         std::all_of(rec.image->info.provides.begin(), rec.image->info.provides.end(),
                                     [](const ProvidedService &p) { return p.swappable; });
    if (inst && all_swappable && inst->refs.load() > 0) {
      std::erase(started_order, id);
      {
        std::lock_guard lk(records_mu);
        rec.instance.reset();
        rec.state = "disabled";
        rec.entry.enabled = false;
      }
      info("disabling plugin '" + id + "' once its " + std::to_string(inst->refs.load()) + " in-flight requests finish");
      retire(inst);
      it = started_order.rbegin();
      continue;
    }
    stop_record(id, stop_budget(1), "disabled");
    {
      std::lock_guard lk(records_mu);
      rec.entry.enabled = false;
    }
    it = started_order.rbegin();
  }
  metrics_registry.update(m_reloads, MetricsRegistry::kAdd, std::vector<std::string>{"ok"}, 1);
  info("reload complete");
}

void Runtime::Impl::shutdown() {
  stopping = true;
  ready = false;
  // Exact reverse of the start order. An instance swapped out but still draining stands where its
  // plugin stands (a successor inherits its predecessor's key), after the current instance.
  struct Step {
    uint64_t key;
    bool retiring;
    std::string id;
    std::shared_ptr<Instance> inst;
  };
  std::vector<Step> steps;
  for (const auto &id : started_order) steps.push_back({records.at(id).instance->order_key, false, id, nullptr});
  for (const auto &inst : retiring)
    if (inst->phase != Phase::kDestroyed && inst->phase != Phase::kLeaked)
      steps.push_back({inst->order_key, true, inst->plugin_id, inst});
  std::stable_sort(steps.begin(), steps.end(), [](const Step &a, const Step &b) {
    return a.key != b.key ? a.key > b.key : (!a.retiring && b.retiring);
  });
  uint64_t budget = stop_budget(steps.size());
  for (const auto &step : steps) {
    if (!step.retiring) {
      stop_record(step.id, budget, "stopped");
      continue;
    }
    info("stopping draining instance of plugin '" + step.inst->label() + "'");
    if (step.inst->phase != Phase::kStopped && !stop_instance(step.inst, budget)) continue;
    destroy_instance(step.inst);
  }
  retiring.clear();
}

int Runtime::Impl::run() {
  std::error_code ec;
  state_dir = resolve_state_dir(config.host);
  fs::create_directories(state_dir, ec);
  if (ec) {
    error("cannot create state directory '" + state_dir + "': " + ec.message());
    return kExitPluginFailed;
  }
  ::chmod(state_dir.c_str(), 0750);
  copy_dir = state_dir + "/plugin-copies";
  fs::remove_all(copy_dir, ec);  // copies from an earlier run are never loaded again

  unsigned threads = config.host.worker_threads ? config.host.worker_threads
                                                : std::max(2u, std::thread::hardware_concurrency());
  workers = std::make_unique<Executor>(threads);
  define_host_metrics();
  if (!config.host.http_listen.empty()) {
    http_server = std::make_unique<HttpServer>(workers->io());
    try {
      http_server->listen(config.host.http_listen);
    } catch (const std::exception &e) {
      error(std::string("cannot listen for HTTP: ") + e.what());
      return kExitPluginFailed;
    }
    http_address = http_server->local_address();
    mount_host_routes();
    info("HTTP listening on " + http_address);
  }

  asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
  int exit_code = kExitOk;
  std::function<void(const boost::system::error_code &, int)> on_signal = [&](const boost::system::error_code &e,
                                                                              int sig) {
    if (e) return;
    if (sig == SIGHUP) {
      reload();
      signals.async_wait(on_signal);
      return;
    }
    info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
    control.stop();
  };
  signals.async_wait(on_signal);

  CheckReport report;
  bool config_ok = load_and_resolve(&report);
  for (const auto &w : report.warnings) warn(w);
  for (const auto &e : report.errors) error(e);
  if (!config_ok) {
    shutdown_transport();
    return kExitUsage;
  }
  for (const auto &s : report.skipped) {
    const Record &r = records.at(s.id);
    if (r.state != "failed") warn("plugin '" + s.id + "' skipped: " + s.reason);
    else error("plugin '" + s.id + "' failed: " + s.reason);
    if (r.entry.critical || config.host.strict) {
      error(std::string(r.entry.critical ? "critical " : "") + "plugin '" + s.id + "' cannot start; exiting");
      shutdown_transport();
      return kExitPluginFailed;
    }
  }
  exit_code = start_pending(true);
  if (exit_code != kExitOk) {
    shutdown();
    shutdown_transport();
    return exit_code;
  }
  ready = true;
  info("ready: " + std::to_string(started_order.size()) + " plugins running");
  control.run();
  control.restart();
  shutdown();
  shutdown_transport();
  info("stopped");
  return kExitOk;
}

Runtime::Runtime(Config config, std::string config_path)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(config_path))) {}

Runtime::~Runtime() = default;

CheckReport Runtime::check() {
  CheckReport report;
  impl_->load_and_resolve(&report);
  return report;
}

int Runtime::run() { return impl_->run(); }

bool Runtime::abandoned_plugins() const {
  for (const auto &inst : impl_->leaked)
    if (inst->phase == Phase::kLeaked) return true;
  return false;
}

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

#include "reload.hpp"

#include <algorithm>

#include "assignment.hpp"
#include "logging.hpp"
#include "plugin_loader.hpp"
#include "redaction.hpp"

namespace chorus::host {
namespace {

using host_log::info;
using host_log::warn;
using host_log::error;

bool provides_only_swappable(const PluginInfo &i) {
  return !i.provides.empty() &&
         std::all_of(i.provides.begin(), i.provides.end(), [](const ProvidedService &p) { return p.swappable; });
}

// A running instance of `old` may be replaced by one of `fresh` while requests are in flight only
// when both provide nothing but swappable services, and `fresh` still provides every one of
// `old`'s services at the same major version (consumers keep working across the swap).
bool swappable_replacement(const PluginImage &old, const PluginImage &fresh) {
  if (!provides_only_swappable(old.info) || !provides_only_swappable(fresh.info)) return false;
  for (const auto &p : old.info.provides) {
    bool kept = std::any_of(fresh.info.provides.begin(), fresh.info.provides.end(), [&](const ProvidedService &q) {
      return q.service == p.service && q.major == p.major;
    });
    if (!kept) return false;
  }
  return true;
}

}  // namespace

void Reloader::run() {
  info("SIGHUP: reloading configuration" +
       (host_.config_path.empty() ? std::string(" (built-in default)") : " from " + host_.config_path));
  auto next = read_config();
  if (!next) return;
  adopt_config(std::move(*next));
  refresh_assignment(host_);  // also when the YAML did not change: plugins re-read it in reload()
  load_enabled();
  auto resolution = resolve_keeping_required();
  if (!resolution) return;
  apply_changes();
  ResolveResult previous = plugins_.resolution();
  start_new(*resolution);
  rebind(previous);
  stop_unwanted();
  count_reload("ok");
  info("reload complete");
}

void Reloader::count_reload(const char *result) {
  host_.metrics.update(host_.metric_ids.reloads, MetricsRegistry::kAdd, std::vector<std::string>{result}, 1);
}

std::vector<std::string> Reloader::wanted_ids() const {
  std::vector<std::string> ids;
  for (const auto &[id, e] : wanted_) ids.push_back(id);
  return ids;
}

// Step 0: read and validate the file (or the built-in default). On error nothing changes.
std::optional<Config> Reloader::read_config() {
  try {
    return host_.config_path.empty() ? parse_config(default_config_yaml(), "<built-in default>")
                                     : load_config_file(host_.config_path);
  } catch (const std::exception &e) {
    count_reload("error");
    error(std::string("reload failed: ") + e.what() + "; keeping the running configuration");
    return std::nullopt;
  }
}

// Step 0b: make it the running configuration, except what only a restart can change.
void Reloader::adopt_config(Config next) {
  const Config &current = host_.config;
  if (auto level = parse_log_level(next.host.log_level)) set_log_level(*level);
  if (next.host.http_listen != current.host.http_listen || next.host.worker_threads != current.host.worker_threads ||
      next.host.state_dir != current.host.state_dir || next.host.log_format != current.host.log_format)
    warn("host.http, host.worker_threads, host.state_dir and host.log_format apply only after a restart");
  if (next.host.shhh != current.host.shhh) {
    // parse_config compiled the rules already, so this fails only if memory runs out.
    if (std::string why; !install_redaction(next.host.shhh, host_.state_dir, &host_.metrics, &why))
      error("shhh: " + why + "; keeping the running rules");
    else
      info("shhh: configuration reloaded");
  }
  std::lock_guard lk(host_.config_mu);
  Config previous = std::move(host_.config);
  host_.config = std::move(next);
  host_.config.host.http_listen = previous.host.http_listen;
  host_.config.host.worker_threads = previous.host.worker_threads;
  host_.config.host.state_dir = previous.host.state_dir;
}

// Step 1: the new set of enabled plugins. Loads what is newly enabled (or failed before and may work
// now); the file is loaded outside the records lock so /health never waits on dlopen.
void Reloader::load_enabled() {
  wanted_.clear();
  for (const auto &e : host_.config.plugins)
    if (e.enabled) wanted_[e.id] = e;
  for (const auto &[id, e] : wanted_) {
    std::shared_ptr<PluginImage> loaded_before;
    {
      std::lock_guard lk(plugins_.mutex());
      PluginRecord &r = plugins_[id];
      if (r.instance) continue;
      loaded_before = r.image;
    }
    std::string why;
    auto image = plugins_.load_entry(e, loaded_before != nullptr, &why);  // a fresh private copy when reloaded
    std::lock_guard lk(plugins_.mutex());
    PluginRecord &r = plugins_[id];
    r.entry = e;
    r.image = image;
    r.state = image ? RecordState::kPending : RecordState::kFailed;
    r.message = image ? "" : why;
    if (!image) error("plugin '" + id + "' failed: " + why);
  }
}

// Step 2: resolve the new set. A running plugin being disabled stays while a plugin that stays would
// lose it: skipped without it, or re-wired away from it for a service that cannot be swapped under a
// running consumer. Returns nothing (and changes nothing more) on resolution errors.
std::optional<ResolveResult> Reloader::resolve_keeping_required() {
  const ResolveResult &current = plugins_.resolution();
  const std::vector<std::string> &started = plugins_.started_order();
  ResolveResult next = resolve(plugins_.resolve_input(wanted_ids()));
  for (size_t round = 0; round <= started.size(); ++round) {
    std::string keep, because;
    for (const auto &consumer : started) {
      if (!wanted_.count(consumer) || !keep.empty()) continue;
      auto old_wiring = current.wiring.find(consumer);
      if (old_wiring == current.wiring.end()) continue;
      bool skipped = std::any_of(next.skipped.begin(), next.skipped.end(),
                                 [&](const SkippedComponent &c) { return c.id == consumer; });
      auto new_wiring = next.wiring.find(consumer);
      for (const auto &req : plugins_.at(consumer).image->info.requires_) {
        if (req.optional) continue;
        auto old_provider = old_wiring->second.find(req.service);
        if (old_provider == old_wiring->second.end() || wanted_.count(old_provider->second)) continue;
        bool rewired = new_wiring != next.wiring.end() && new_wiring->second.count(req.service);
        bool swappable = false;
        for (const auto &p : plugins_.at(old_provider->second).image->info.provides)
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
    wanted_[keep] = plugins_.at(keep).entry;
    next = resolve(plugins_.resolve_input(wanted_ids()));
  }
  for (const auto &e : next.errors) error("reload: " + e);
  for (const auto &w : next.warnings) warn("reload: " + w);
  if (!next.errors.empty()) {
    count_reload("error");
    error("reload: configuration errors; plugins were not started or re-bound");
    return std::nullopt;
  }
  return next;
}

// Step 3: changed config or replaced files of plugins that keep running.
void Reloader::apply_changes() {
  for (const auto &id : std::vector<std::string>(plugins_.started_order())) {
    auto w = wanted_.find(id);
    if (w == wanted_.end()) continue;
    PluginRecord &rec = plugins_.at(id);
    PluginEntry next_entry = w->second;
    auto now = fingerprint(plugins_.locate(next_entry));
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
      apply_change(id, next_entry, file_changed || path_changed);
    } else {
      {
        std::lock_guard lk(plugins_.mutex());
        rec.entry = next_entry;  // e.g. `critical` changed
      }
      notify_reload(id);
    }
  }
}

// A SIGHUP reaches every running plugin, also those whose config did not change: they may read
// files the config names (an assignment) or the agent facts of host_info, which may have changed.
void Reloader::notify_reload(const std::string &id) {
  PluginRecord &rec = plugins_.at(id);
  if (!rec.instance || !CHORUS_HAS(chorus_plugin_vtable, rec.image->vtable, reload)) return;
  CallResult r = lifecycle_.reload(rec.instance);
  if (!r.timed_out) return;
  error("plugin '" + id + "' reload did not return within " + std::to_string(host_.config.host.start_timeout_ms) +
        " ms; abandoning the plugin (its code stays loaded)");
  std::erase(plugins_.started_order(), id);
  std::lock_guard lk(plugins_.mutex());
  rec.instance.reset();
  rec.state = RecordState::kLeaked;
  rec.message = "reload did not return in time";
}

// Applies a changed config (or plugin file) to one running plugin: reconfigure when it can, else a
// hot swap (swappable providers) or a restart (nobody depends on it). Returns false when the change
// could not be applied; the plugin then keeps running as it was.
bool Reloader::apply_change(const std::string &id, const PluginEntry &next, bool file_changed) {
  PluginRecord &rec = plugins_.at(id);
  auto image = rec.image;
  if (file_changed) {
    std::string why;
    image = plugins_.load_entry(next, true, &why);
    if (!image) {
      error("plugin '" + id + "': the replaced file cannot be used: " + why + "; keeping the running one");
      return false;
    }
  }
  std::string cfg;
  if (auto bad = PluginSet::prepare_config(next, image->info, &cfg)) {
    error("plugin '" + id + "': new config rejected: " + *bad + "; keeping the running one");
    return false;
  }
  if (!file_changed && CHORUS_HAS(chorus_plugin_vtable, rec.image->vtable, reconfigure))
    if (auto applied = reconfigure(id, next, cfg)) return *applied;
  if (swappable_replacement(*rec.image, *image)) return hot_swap(id, next, image, cfg);
  return restart(id, next, image);
}

// Hands the new config to the running instance. Returns whether it took it, or nothing when the
// plugin answered that it needs a restart.
std::optional<bool> Reloader::reconfigure(const std::string &id, const PluginEntry &next,
                                          const std::string &config_json) {
  PluginRecord &rec = plugins_.at(id);
  CallResult r = lifecycle_.reconfigure(rec.instance, config_json);
  if (r.timed_out) {
    error("plugin '" + id + "' reconfigure did not return within " +
          std::to_string(host_.config.host.start_timeout_ms) + " ms; abandoning the plugin (its code stays loaded)");
    std::erase(plugins_.started_order(), id);
    std::lock_guard lk(plugins_.mutex());
    rec.instance.reset();
    rec.state = RecordState::kLeaked;
    rec.message = "reconfigure did not return in time";
    return false;
  }
  if (r.status == CHORUS_OK) {
    std::lock_guard lk(plugins_.mutex());
    rec.entry = next;
    info("reconfigured plugin '" + id + "'");
    return true;
  }
  if (r.status != CHORUS_E_NEEDS_RESTART) {
    error("plugin '" + id + "' rejected its new config: " + status_text(r.status, r.err));
    return false;
  }
  return std::nullopt;
}

// Starts the new instance beside the old, publishes it, and retires the old one when idle.
bool Reloader::hot_swap(const std::string &id, const PluginEntry &next, const std::shared_ptr<PluginImage> &image,
                        const std::string &config_json) {
  PluginRecord &rec = plugins_.at(id);
  std::string why;
  auto fresh = lifecycle_.start(id, image, config_json, &why, rec.instance.get());
  for (const auto &p : image->info.provides)
    host_.metrics.update(host_.metric_ids.swaps, MetricsRegistry::kAdd,
                         std::vector<std::string>{p.service, fresh ? "ok" : "failed"}, 1);
  if (!fresh) {
    error("hot swap of plugin '" + id + "' failed: " + why + "; the running instance keeps serving");
    return false;
  }
  auto old = rec.instance;
  const ResolveResult &resolution = plugins_.resolution();
  for (const auto &p : image->info.provides) {
    auto it = resolution.bindings.find(p.service);
    if (it != resolution.bindings.end() && it->second == id) registry_.publish(p.service, fresh);
  }
  {
    std::lock_guard lk(plugins_.mutex());
    rec.instance = fresh;
    rec.image = image;
    rec.entry = next;
  }
  info("hot-swapped plugin '" + id + "' to " + image->info.version + " (instance " + std::to_string(fresh->serial) +
       "); retiring instance " + std::to_string(old->serial) + " when idle");
  lifecycle_.retire(old);
  return true;
}

// Stops the plugin and starts it with the change, when nothing running depends on it. When the new
// start fails, the plugin is started again as it was.
bool Reloader::restart(const std::string &id, const PluginEntry &next, const std::shared_ptr<PluginImage> &image) {
  auto dependents = plugins_.running_dependents(id);
  if (!dependents.empty()) {
    std::string list;
    for (const auto &d : dependents) list += (list.empty() ? "" : ", ") + d;
    warn("plugin '" + id + "' needs a restart to apply the change, but " + list +
         " depend on it; restart the agent to apply it");
    return false;
  }
  PluginRecord &rec = plugins_.at(id);
  PluginEntry previous_entry = rec.entry;
  auto previous_image = rec.image;
  plugins_.stop_record(id, lifecycle_.stop_budget(1), RecordState::kStopped);
  {
    std::lock_guard lk(plugins_.mutex());
    rec.entry = next;
    rec.image = image;
  }
  if (plugins_.start_record(id)) return true;
  // Leave it as it was rather than down: start the previous file with the previous config.
  warn("plugin '" + id + "' failed to restart with the change; restarting it as it was");
  {
    std::lock_guard lk(plugins_.mutex());
    rec.entry = previous_entry;
    rec.image = previous_image;
  }
  plugins_.start_record(id);
  return false;
}

// Step 4: publish the new resolution and start what is resolved but not running (new providers come
// up before anything retires).
void Reloader::start_new(const ResolveResult &next) {
  for (const auto &sk : next.skipped)
    if (!plugins_.at(sk.id).instance) plugins_.set_state(sk.id, RecordState::kSkipped, sk.reason);
  plugins_.set_resolution(next);
  plugins_.start_pending(false);
}

// Step 5: re-point services whose bound provider changed (swappable services only).
void Reloader::rebind(const ResolveResult &previous) {
  for (const auto &[service, provider] : plugins_.resolution().bindings) {
    auto current = registry_.provider_of(service);
    const PluginRecord &rec = plugins_.at(provider);
    if (!rec.instance || (current && current == rec.instance)) continue;
    bool swappable = false;
    for (const auto &p : rec.image->info.provides) swappable |= (p.service == service && p.swappable);
    auto old_it = previous.bindings.find(service);
    bool was_bound_elsewhere = old_it != previous.bindings.end() && old_it->second != provider;
    if (current && !swappable) {
      warn("binding of " + service + " changed to '" + provider + "', but the service is not swappable; restart to apply");
      continue;
    }
    registry_.publish(service, rec.instance);
    if (was_bound_elsewhere) {
      host_.metrics.update(host_.metric_ids.swaps, MetricsRegistry::kAdd, std::vector<std::string>{service, "ok"}, 1);
      info("re-bound " + service + " from '" + old_it->second + "' to '" + provider + "'");
    }
  }
}

// Step 6: stop what is no longer wanted, newest first. Providers of swappable services finish their
// in-flight requests first.
void Reloader::stop_unwanted() {
  std::vector<std::string> &started = plugins_.started_order();
  for (auto it = started.rbegin(); it != started.rend();) {
    std::string id = *it;
    ++it;
    if (wanted_.count(id)) continue;
    PluginRecord &rec = plugins_.at(id);
    auto inst = rec.instance;
    if (inst && provides_only_swappable(rec.image->info) && inst->refs.load() > 0) {
      std::erase(started, id);
      {
        std::lock_guard lk(plugins_.mutex());
        rec.instance.reset();
        rec.state = RecordState::kDisabled;
        rec.entry.enabled = false;
      }
      info("disabling plugin '" + id + "' once its " + std::to_string(inst->refs.load()) + " in-flight requests finish");
      lifecycle_.retire(inst);
      it = started.rbegin();
      continue;
    }
    plugins_.stop_record(id, lifecycle_.stop_budget(1), RecordState::kDisabled);
    {
      std::lock_guard lk(plugins_.mutex());
      rec.entry.enabled = false;
    }
    it = started.rbegin();
  }
}

}  // namespace chorus::host

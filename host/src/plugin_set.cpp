#include "plugin_set.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "json_schema.hpp"
#include "logging.hpp"
#include "paths.hpp"
#include "runtime.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace chorus::host {
namespace {

using host_log::info;
using host_log::warn;
using host_log::error;

}  // namespace

const char *record_state_name(RecordState state) {
  switch (state) {
    case RecordState::kPending: return "pending";
    case RecordState::kStarting: return "starting";
    case RecordState::kRunning: return "running";
    case RecordState::kStopping: return "stopping";
    case RecordState::kStopped: return "stopped";
    case RecordState::kFailed: return "failed";
    case RecordState::kSkipped: return "skipped";
    case RecordState::kDisabled: return "disabled";
    case RecordState::kLeaked: return "leaked";
  }
  return "unknown";
}

void PluginSet::set_resolution(ResolveResult r) {
  std::lock_guard lk(mu_);
  resolution_ = std::move(r);
}

void PluginSet::set_state(const std::string &id, RecordState state, std::string message) {
  std::lock_guard lk(mu_);
  auto &r = records_[id];
  r.state = state;
  r.message = std::move(message);
}

std::string PluginSet::locate(const PluginEntry &e) const {
  if (!e.path.empty()) return e.path;
  return find_plugin_file(e.id, plugin_search_dirs(host_.config.host));
}

std::shared_ptr<PluginImage> PluginSet::load_entry(const PluginEntry &e, bool private_copy, std::string *why) const {
  std::string path = locate(e);
  if (path.empty()) {
    std::string dirs;
    for (const auto &d : plugin_search_dirs(host_.config.host)) dirs += (dirs.empty() ? "" : ", ") + d;
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
  LoadRequest req{path, e.id, e.sha256, private_copy, host_.copy_dir};
  return load_plugin(req, why);
}

std::optional<std::string> PluginSet::prepare_config(const PluginEntry &e, const PluginInfo &info, std::string *out) {
  return config_schema::prepare_plugin_config(info.config_schema, e.id, e.config_json, out);
}

ResolveInput PluginSet::resolve_input(const std::vector<std::string> &ids) const {
  ResolveInput in;
  in.bindings = host_.config.bindings;
  for (const auto &id : ids) {
    const PluginRecord &r = records_.at(id);
    if (r.image) {
      in.components.push_back({id, r.image->info.provides, r.image->info.requires_});
    } else {
      in.unavailable[id] = r.message;
    }
  }
  return in;
}

bool PluginSet::start_record(const std::string &id) {
  PluginRecord &rec = records_.at(id);
  std::string cfg, why;
  if (auto bad = prepare_config(rec.entry, rec.image->info, &cfg)) {
    fail_record(id, "config: " + *bad);
    return false;
  }
  set_state(id, RecordState::kStarting);
  auto t0 = std::chrono::steady_clock::now();
  auto inst = lifecycle_.start(id, rec.image, cfg, &why);
  if (!inst) {
    fail_record(id, why);
    return false;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard lk(mu_);
    rec.instance = inst;
    rec.state = RecordState::kRunning;
    rec.message.clear();
    rec.start_ms = ms;
  }
  started_order_.push_back(id);
  host_.metrics.update(host_.metric_ids.start_seconds, MetricsRegistry::kSet, std::vector<std::string>{id},
                       ms / 1000.0);
  // Fill empty slots only; moving a bound service from a running provider is reload's job, which
  // checks that the service is swappable.
  for (const auto &p : rec.image->info.provides) {
    auto it = resolution_.bindings.find(p.service);
    if (it != resolution_.bindings.end() && it->second == id && !registry_.provider_of(p.service))
      registry_.publish(p.service, inst);
  }
  info("started plugin '" + id + "' " + rec.image->info.version + " in " + std::to_string(ms) + " ms");
  return true;
}

void PluginSet::fail_record(const std::string &id, const std::string &why) {
  set_state(id, RecordState::kFailed, why);
  error("plugin '" + id + "' failed: " + why);
}

void PluginSet::stop_record(const std::string &id, uint64_t budget, RecordState final_state) {
  PluginRecord &rec = records_.at(id);
  auto inst = rec.instance;
  std::erase(started_order_, id);
  if (!inst) {
    set_state(id, final_state);
    return;
  }
  set_state(id, RecordState::kStopping);
  info("stopping plugin '" + id + "'");
  bool ok = lifecycle_.stop(inst, budget);
  if (ok) lifecycle_.destroy(inst);
  std::lock_guard lk(mu_);
  rec.instance.reset();
  rec.state = ok ? final_state : RecordState::kLeaked;
  rec.message = ok ? "" : "did not stop within its deadline";
}

std::vector<std::string> PluginSet::running_dependents(const std::string &id) const {
  std::vector<std::string> out;
  for (const auto &other : started_order_) {
    if (other == id) continue;
    const PluginRecord &r = records_.at(other);
    for (const auto &req : r.image->info.requires_) {
      if (req.optional) continue;
      auto it = resolution_.wiring.find(other);
      if (it == resolution_.wiring.end()) continue;
      auto w = it->second.find(req.service);
      if (w != it->second.end() && w->second == id) out.push_back(other + " (" + req.service + ")");
    }
  }
  return out;
}

int PluginSet::start_pending(bool abort_on_failure) {
  for (const auto &id : resolution_.order) {
    PluginRecord &rec = records_.at(id);
    if (rec.instance) continue;
    // A provider this one requires may have failed at start just now.
    std::string missing;
    auto wired = resolution_.wiring.find(id);
    for (const auto &req : rec.image->info.requires_) {
      if (req.optional || wired == resolution_.wiring.end()) continue;
      auto it = wired->second.find(req.service);
      if (it == wired->second.end()) continue;
      const PluginRecord &p = records_.at(it->second);
      if (!p.instance) {
        missing = "requires " + req.service + " from '" + it->second + "', which " +
                  (p.state == RecordState::kFailed ? "failed: " + p.message
                                                   : "is " + std::string(record_state_name(p.state)));
        break;
      }
    }
    bool fatal = abort_on_failure && (rec.entry.critical || host_.config.host.strict);
    std::string what = rec.entry.critical ? "critical plugin '" + id + "'" : "plugin '" + id + "'";
    if (!missing.empty()) {
      set_state(id, RecordState::kSkipped, missing);
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

bool PluginSet::load_and_resolve(CheckReport *report) {
  std::vector<std::string> enabled;
  for (const auto &e : host_.config.plugins) {
    if (!e.enabled) {
      std::lock_guard lk(mu_);
      records_[e.id].entry = e;
      records_[e.id].state = RecordState::kDisabled;
      continue;
    }
    enabled.push_back(e.id);
    std::string why;
    auto image = load_entry(e, false, &why);
    std::lock_guard lk(mu_);
    PluginRecord &r = records_[e.id];
    r.entry = e;
    r.image = image;
    if (!image) {
      r.state = RecordState::kFailed;
      r.message = why;
    }
  }
  set_resolution(resolve(resolve_input(enabled)));
  report->order = resolution_.order;
  report->bindings = resolution_.bindings;
  report->errors = resolution_.errors;
  report->warnings = resolution_.warnings;
  for (const auto &id : enabled) {
    const PluginRecord &r = records_.at(id);
    if (!r.image) report->skipped.push_back({id, r.message});
  }
  for (const auto &s : resolution_.skipped) {
    report->skipped.push_back(s);
    set_state(s.id, RecordState::kSkipped, s.reason);
  }
  for (const auto &id : enabled) {
    const PluginRecord &r = records_.at(id);
    if (r.image)
      if (std::string cfg; auto bad = prepare_config(r.entry, r.image->info, &cfg)) report->errors.push_back(*bad);
  }
  return report->errors.empty();
}

void PluginSet::stop_all() {
  // Exact reverse of the start order. An instance swapped out but still draining stands where its
  // plugin stands (a successor inherits its predecessor's key), after the current instance.
  struct Step {
    uint64_t key;
    bool retiring;
    std::string id;
    std::shared_ptr<Instance> inst;
  };
  std::vector<Step> steps;
  for (const auto &id : started_order_) steps.push_back({records_.at(id).instance->order_key, false, id, nullptr});
  for (const auto &inst : lifecycle_.draining()) steps.push_back({inst->order_key, true, inst->plugin_id, inst});
  std::stable_sort(steps.begin(), steps.end(), [](const Step &a, const Step &b) {
    return a.key != b.key ? a.key > b.key : (!a.retiring && b.retiring);
  });
  uint64_t budget = lifecycle_.stop_budget(steps.size());
  for (const auto &step : steps) {
    if (!step.retiring) {
      stop_record(step.id, budget, RecordState::kStopped);
      continue;
    }
    info("stopping draining instance of plugin '" + step.inst->label() + "'");
    if (step.inst->phase != Phase::kStopped && !lifecycle_.stop(step.inst, budget)) continue;
    lifecycle_.destroy(step.inst);
  }
  lifecycle_.forget_draining();
}

}  // namespace chorus::host

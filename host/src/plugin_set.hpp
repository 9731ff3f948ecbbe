// The configured plugins: one record per plugin id (across restarts and hot swaps), the current
// resolution, and the operations that load, start and stop them in resolved order.
//
// Threads and locks: records, the resolution and the start order are changed only on the control
// thread. Changes to records and the resolution are made under `mutex()`, because the HTTP threads
// read them under it (/health, /plugins, the metrics collector); the control thread reads them
// without it. The start order is the control thread's alone. `mutex()` is never held while a plugin
// is called or a file is loaded, so /health never waits on a plugin or on dlopen.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "host_context.hpp"
#include "instance.hpp"
#include "lifecycle.hpp"
#include "plugin_loader.hpp"
#include "resolver.hpp"
#include "service_registry.hpp"

namespace chorus::host {

struct CheckReport;

// Where a configured plugin stands. Mirrors the instance Phase (instance.hpp) for the states an
// instance has, plus the ones only a record has: waiting to start, failed, skipped, disabled.
enum class RecordState { kPending, kStarting, kRunning, kStopping, kStopped, kFailed, kSkipped, kDisabled, kLeaked };
// The name /health, /plugins and chorus_plugin_up use: "pending", "running", ...
const char *record_state_name(RecordState state);

struct PluginRecord {
  PluginEntry entry;
  std::shared_ptr<PluginImage> image;
  std::shared_ptr<Instance> instance;  // the current instance while it runs
  RecordState state = RecordState::kPending;
  std::string message;  // why it failed, was skipped or leaked
  double start_ms = 0;  // how long create+start took
};

class PluginSet {
 public:
  PluginSet(HostContext &host, ServiceRegistry &registry, InstanceLifecycle &lifecycle)
      : host_(host), registry_(registry), lifecycle_(lifecycle) {}

  std::mutex &mutex() const { return mu_; }
  const std::map<std::string, PluginRecord> &records() const { return records_; }
  PluginRecord &at(const std::string &id) { return records_.at(id); }
  PluginRecord &operator[](const std::string &id) { return records_[id]; }  // creates; take mutex()
  const ResolveResult &resolution() const { return resolution_; }
  void set_resolution(ResolveResult r);  // takes mutex()
  // Ids of the running records, in the order they started (stopping runs it backwards).
  std::vector<std::string> &started_order() { return started_order_; }

  // Loads every configured plugin and resolves the enabled ones; fills the report `check` prints.
  // Returns false on config errors (exit 2).
  bool load_and_resolve(CheckReport *report);
  // Starts every resolved record not yet running, in order. With abort_on_failure (start-up) a
  // failed critical plugin, or with host.strict any failed plugin, stops the loop and returns exit
  // code 1; otherwise (reload) every startable plugin is tried and failures are only logged.
  int start_pending(bool abort_on_failure);
  // Starts one resolved record and publishes its bound services into empty slots. False on failure.
  bool start_record(const std::string &id);
  // Stops the record's instance (if any) within budget and destroys it; the record ends in
  // final_state, or kLeaked when the instance did not stop.
  void stop_record(const std::string &id, uint64_t budget, RecordState final_state);
  // Stops everything in the exact reverse of the start order, draining instances in their place.
  void stop_all();

  // Running plugins that required-depend on a service whose bound provider is `id`.
  std::vector<std::string> running_dependents(const std::string &id) const;
  void set_state(const std::string &id, RecordState state, std::string message = {});

  // The file an entry names, or the one the plugin directories hold ("" when none).
  std::string locate(const PluginEntry &e) const;
  // Loads the image for an entry. Returns nullptr and a one-line reason on failure.
  std::shared_ptr<PluginImage> load_entry(const PluginEntry &e, bool private_copy, std::string *why) const;
  // Validates an entry's config against the plugin's schema and fills in defaults.
  static std::optional<std::string> prepare_config(const PluginEntry &e, const PluginInfo &info, std::string *out);
  // The resolver's input for the given enabled ids (records without an image count as unavailable).
  ResolveInput resolve_input(const std::vector<std::string> &ids) const;

 private:
  void fail_record(const std::string &id, const std::string &why);

  HostContext &host_;
  ServiceRegistry &registry_;
  InstanceLifecycle &lifecycle_;

  mutable std::mutex mu_;
  std::map<std::string, PluginRecord> records_;
  ResolveResult resolution_;
  std::vector<std::string> started_order_;
};

}  // namespace chorus::host

// The running agent: the coordinator, the directory, the broadcasts, the HMMM log and the worker,
// behind one mutex. Everything outside the process comes in through RuntimeIo (publish, clocks, the
// election's verdict, peer counts) so tests drive it without a host. Effects the coordinator asks for
// (publications, starting and cancelling work) run after the mutex is released, so a worker or a
// pubsub that calls back at once cannot deadlock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator.hpp"
#include "directory.hpp"
#include "messages.hpp"
#include "settings.hpp"
#include "work.hpp"

namespace chorus::agent {

inline constexpr const char *kVersion = "0.1.0";
inline constexpr size_t kHmmmKept = 100;

struct Identity {
  std::string node_id, agent_id, role;
};

struct RuntimeIo {
  std::function<bool(const char *topic, const std::string &type, const json &data)> publish;
  std::function<uint64_t()> mono_ms;
  std::function<int64_t()> wall_ms;
  std::function<void(const std::string &)> info, warn, debug;
  std::function<std::optional<bool>()> is_admin;  // nullopt: no chorus.election bound
  std::function<uint32_t()> cluster_size;         // the election's configured membership; 0: none
  std::function<size_t()> pubsub_peers;
  std::function<json()> services;                  // bound services beyond the worker's: {"election": bool}
};

struct RuntimeMetrics {
  std::function<void(const std::string &event)> task_event;
  std::function<void(const std::string &reason)> rejected;
  std::function<void(double)> directory_agents;
  std::function<void(double)> current_tasks;
  std::function<void()> duplicate_completion;
};

struct HttpAnswer {
  int status = 200;
  json body;
};

class Runtime : public std::enable_shared_from_this<Runtime> {
 public:
  Runtime(Settings settings, Identity self, RuntimeIo io, RuntimeMetrics metrics, std::unique_ptr<Worker> worker,
          std::string capabilities_path);

  // Capability broadcast (marked changed against the persisted copy), role announcement, availability.
  void start();
  // Cancels all work; returns when no worker callback runs any more.
  void stop();
  // Windows, heartbeats, re-announcements, directory expiry, availability and the status line.
  void tick();
  // A message on CHORUS/coordination/v1 from another node (from_text: the pubsub author, "" unsigned).
  void heard_coordination(std::string_view envelope, std::string_view from_text);
  void heard_hmmm(std::string_view envelope);
  // New settings (reconfigure or reload): broadcasts capabilities again if they changed.
  void apply(Settings settings, std::string role);

  json info() const;
  json peers() const;
  json tasks(std::string_view status_filter) const;
  std::optional<json> task(const std::string &task_id) const;
  json hmmm() const;
  HttpAnswer post_task(std::string_view body);
  HttpAnswer post_hmmm(std::string_view body);

  uint64_t tick_interval_ms() const;

 private:
  Fencing fencing() const;  // asks the election; call it without mu_ or with it, it takes no lock
  using Effect = std::function<void()>;
  Now now() const;
  void flush(std::vector<Effect> effects);
  Outbound outbound();
  void publish_locked(const char *topic, const std::string &type, json data);
  void broadcast_capability_locked(bool changed);
  void broadcast_availability_locked();
  void broadcast_role_locked();
  bool capability_copy_changed_locked();
  const char *status_locked() const;
  void gauges_locked();
  void work_progress(const std::string &task_id, uint32_t attempt, int percent, std::string note);
  void work_done(const std::string &task_id, uint32_t attempt, WorkResult r, uint64_t started_ms);

  mutable std::mutex mu_;
  Settings settings_;
  Identity self_;
  RuntimeIo io_;
  RuntimeMetrics metrics_;
  std::unique_ptr<Worker> worker_;
  std::string capabilities_path_;
  std::unique_ptr<Coordinator> coordinator_;
  Directory directory_;
  std::deque<HmmmMessage> hmmm_;
  std::vector<Effect> effects_;  // collected under mu_, run by flush()
  uint64_t next_availability_ = 0, next_status_log_ = 0;
  bool stopped_ = false;
};

}  // namespace chorus::agent

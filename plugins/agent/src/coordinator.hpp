// Task coordination for one agent, sans I/O (README.md, "Ownership rule"; docs/protocols.md, "Agent
// task coordination"). The coordinator holds what this agent knows of every task it heard of and
// decides when to claim, whether it owns a task, when to yield, and when to re-announce. It never
// reads a clock and never touches the network: the caller passes the time to every call and hands
// it the messages heard; what it wants to say goes to Outbound::publish, and work to start or cancel
// to Outbound::start_work / cancel_work. Not thread-safe: the plugin serialises calls.
//
// Its own publications are applied to itself at once (the caller must not feed them back).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "messages.hpp"
#include "work.hpp"

namespace chorus::agent {

struct CoordinatorConfig {
  std::string node_id, agent_id;
  std::vector<std::string> capabilities;
  uint32_t max_tasks = 3;
  std::string project = "chorus";
  uint64_t claim_window_ms = 1000;
  uint64_t progress_interval_ms = 5000;
  uint64_t owner_timeout_ms = 30000;
  uint64_t unclaimed_retry_ms = 10000;
  uint64_t reannounce_step_ms = 250;  // per rank position, without an elected admin
};

struct Now {
  uint64_t mono_ms = 0;  // monotonic: windows and timeouts
  int64_t wall_ms = 0;   // unix ms: what goes on the wire and to the API
};

// How ownership and completion are fenced right now (README.md, "Ownership rule" and "Committing a
// result").
struct Fencing {
  bool election = false;  // an election runs: an owner is made only by the admin's task_assign
  bool admin = false;     // this agent is that admin now
  uint32_t quorum = 0;    // acknowledgements a result needs before it is committed; 0 = committed at once
};

// What the coordinator asks of the world.
struct Outbound {
  std::function<void(const Message &)> publish;            // on CHORUS/coordination/v1
  std::function<void(const TaskSpec &)> start_work;       // this agent owns (task, attempt) now
  std::function<void(const std::string &task_id)> cancel_work;
  std::function<void(const TaskComplete &, const std::string &reason)> failed;  // a failure to discuss (HMMM)
  // Who re-announces: nullopt = not this agent (an admin is elected and it is not this one); else the
  // node ids whose rank order decides the delay (the directory's agents).
  std::function<std::optional<std::vector<std::string>>()> reannounce_peers;
  std::function<Fencing()> fencing;                         // absent: no election, no quorum
  std::function<void(const std::string &event)> count;     // tasks_total{event}
  std::function<void(const std::string &line)> note;       // an info log line
  std::function<void()> duplicate_completion;
};

enum class TaskStatus { announced, claimed, working, completed, failed };
const char *to_string(TaskStatus s);

// What the API shows of one task.
struct TaskView {
  std::string task_id;
  uint32_t attempt = 0;
  std::string title, description;
  std::vector<std::string> required_capabilities;
  std::string project;
  TaskStatus status = TaskStatus::announced;
  std::string owner_agent, owner_node;  // empty: none known
  std::vector<std::string> claims;      // agent ids of the current attempt's claimants
  std::string announced_by, origin, completed_by, summary, decision;
  int64_t created = 0, updated = 0;     // unix ms
};
json to_json(const TaskView &t);

class Coordinator {
 public:
  Coordinator(CoordinatorConfig config, Outbound out);

  // A message heard from another agent (already validated).
  void heard(const Message &m, Now now);
  // Timers: claim windows, heartbeats, owner timeouts, re-announcements. Call often (every ~100 ms).
  void tick(Now now);
  // A new task from this agent (the HTTP API). Returns false when the task id is known.
  bool announce(TaskAnnouncement task, Now now);
  // The worker's reports for (task, attempt).
  void work_progress(const std::string &task_id, uint32_t attempt, int percent, const std::string &note, Now now);
  void work_done(const std::string &task_id, uint32_t attempt, const WorkResult &result, uint64_t duration_ms, Now now);

  // Capabilities or max_tasks changed (reconfigure).
  void set_capabilities(std::vector<std::string> capabilities, uint32_t max_tasks);

  uint32_t current_tasks() const { return static_cast<uint32_t>(working_.size()); }
  uint32_t pending_claims() const { return pending_; }
  uint32_t max_tasks() const { return config_.max_tasks; }
  int64_t last_activity_ms() const { return last_activity_ms_; }
  std::vector<TaskView> tasks() const;
  std::optional<TaskView> task(const std::string &task_id) const;
  bool knows(const std::string &task_id) const { return tasks_.count(task_id) != 0; }

 private:
  using ResultKey = std::pair<uint32_t, std::string>;  // (attempt, owner node)
  struct Task {
    TaskView view;
    uint64_t window_end = 0;  // mono; 0 = no window open for the current attempt
    bool window_done = false;
    std::map<std::string, std::string> claims;  // node -> agent, current attempt
    bool claimed_here = false;                  // counted in pending_
    bool working_here = false;
    std::set<std::string> started;              // nodes that said started for the current attempt
    uint64_t owner_heard = 0;                   // mono, last word from the owner
    uint64_t next_heartbeat = 0;
    uint64_t unclaimed_since = 0;               // mono; the window closed with no claim
    uint64_t work_started = 0;
    uint32_t percent = 0;
    bool assigned = false;                      // the admin's task_assign for the current attempt was heard
    // Commit with a quorum. Results and acknowledgements outlive attempts: an agent acknowledges the
    // first result it hears for a task and no other, so two results can never both reach a quorum.
    std::map<ResultKey, TaskComplete> results;
    std::map<ResultKey, std::set<std::string>> acks;  // result -> acknowledging nodes
    std::optional<ResultKey> acked;                 // the one result this agent acknowledged
    std::optional<TaskComplete> proposed;           // this agent's own result, resent until committed
    uint64_t next_resend = 0;
    std::optional<TaskComplete> outcome;            // the committed outcome, once done
    uint64_t next_answer = 0;                       // rate limit of re-telling the outcome
    bool done() const { return view.status == TaskStatus::completed || view.status == TaskStatus::failed; }
  };

  void publish(const Message &m);
  Task &record(const std::string &task_id, Now now);
  void new_attempt(Task &t, uint32_t attempt, Now now);
  void release_claim(Task &t);
  void stop_work(Task &t);
  void on_announcement(const TaskAnnouncement &a, Now now);
  void on_claim(const TaskClaim &c, Now now);
  void on_progress(const TaskProgress &p, Now now);
  void on_complete(const TaskComplete &c, Now now);
  void on_assign(const TaskAssign &a, Now now);
  void on_result(const TaskResult &r, Now now);
  void on_ack(const TaskAck &a, Now now);
  void begin_work(Task &t, Now now);
  // Who owns the current attempt as far as this agent knows, and when it was last heard of.
  void take_owner(Task &t, const std::string &node, const std::string &agent, TaskStatus status, Now now);
  void maybe_commit(Task &t, const ResultKey &key, Now now);
  void finish(Task &t, const TaskComplete &c, Now now);
  void answer_finished(Task &t, Now now);
  void record_outcomes(Now now);
  Fencing fencing() const { return out_.fencing ? out_.fencing() : Fencing{}; }
  void close_window(Task &t, Now now);
  void maybe_reannounce(Task &t, Now now);
  static TaskView view_of(const Task &t);
  bool can_take(const Task &t) const;

  CoordinatorConfig config_;
  Outbound out_;
  std::map<std::string, Task> tasks_;
  std::set<std::string> working_;  // task ids worked on here
  // Outcomes committed here by a quorum whose task_complete was not heard yet: task id -> when (mono)
  // the admin publishes it, should the owner have died right after its quorum (README.md,
  // "Committing a result").
  std::map<std::string, uint64_t> unrecorded_;
  uint32_t pending_ = 0;
  int64_t last_activity_ms_ = 0;
};

}  // namespace chorus::agent

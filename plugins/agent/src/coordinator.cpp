#include "coordinator.hpp"

#include <algorithm>

#include "claim_rule.hpp"

namespace chorus::agent {
namespace {

// Tasks kept in memory; beyond it the oldest finished ones are forgotten.
constexpr size_t kMaxRemembered = 10000;
// Distinct results (and acknowledged results) remembered per task: only competing owners make more
// than one, so a peer inventing results cannot grow the maps.
constexpr size_t kMaxResultsPerTask = 8;

TaskResult as_result(const TaskComplete &c) {
  TaskResult r;
  static_cast<TaskComplete &>(r) = c;
  return r;
}

bool covers(const std::vector<std::string> &have, const std::vector<std::string> &required) {
  return std::all_of(required.begin(), required.end(),
                     [&](const std::string &r) { return std::find(have.begin(), have.end(), r) != have.end(); });
}

}  // namespace

const char *to_string(TaskStatus s) {
  switch (s) {
    case TaskStatus::announced: return "announced";
    case TaskStatus::claimed: return "claimed";
    case TaskStatus::working: return "working";
    case TaskStatus::completed: return "completed";
    case TaskStatus::failed: return "failed";
  }
  return "announced";
}

json to_json(const TaskView &t) {
  return {{"task_id", t.task_id},
          {"attempt", t.attempt},
          {"title", t.title},
          {"description", t.description},
          {"required_capabilities", t.required_capabilities},
          {"project", t.project},
          {"status", to_string(t.status)},
          {"owner", t.owner_agent.empty() ? json(nullptr) : json(t.owner_agent)},
          {"owner_node", t.owner_node.empty() ? json(nullptr) : json(t.owner_node)},
          {"claims", t.claims},
          {"announced_by", t.announced_by},
          {"origin", t.origin},
          {"completed_by", t.completed_by.empty() ? json(nullptr) : json(t.completed_by)},
          {"summary", t.summary},
          {"decision", t.decision},
          {"created", t.created},
          {"updated", t.updated}};
}

Coordinator::Coordinator(CoordinatorConfig config, Outbound out) : config_(std::move(config)), out_(std::move(out)) {}

void Coordinator::set_capabilities(std::vector<std::string> capabilities, uint32_t max_tasks) {
  config_.capabilities = std::move(capabilities);
  config_.max_tasks = max_tasks;
}

void Coordinator::publish(const Message &m) {
  if (out_.publish) out_.publish(m);
}

Coordinator::Task &Coordinator::record(const std::string &task_id, Now now) {
  auto it = tasks_.find(task_id);
  if (it != tasks_.end()) return it->second;
  if (tasks_.size() >= kMaxRemembered) {  // forget the finished task heard of longest ago
    auto oldest = tasks_.end();
    for (auto i = tasks_.begin(); i != tasks_.end(); ++i)
      if (i->second.done() && (oldest == tasks_.end() || i->second.view.updated < oldest->second.view.updated)) oldest = i;
    if (oldest != tasks_.end()) tasks_.erase(oldest);
  }
  Task &t = tasks_[task_id];
  t.view.task_id = task_id;
  t.view.created = t.view.updated = now.wall_ms;
  return t;
}

void Coordinator::release_claim(Task &t) {
  if (!t.claimed_here) return;
  t.claimed_here = false;
  if (pending_ > 0) --pending_;
}

void Coordinator::stop_work(Task &t) {
  if (!t.working_here) return;
  t.working_here = false;
  working_.erase(t.view.task_id);
  if (out_.cancel_work) out_.cancel_work(t.view.task_id);
}

// Attempt n+1 supersedes n everywhere: work on n is cancelled and never completed (rule 4).
void Coordinator::new_attempt(Task &t, uint32_t attempt, Now now) {
  stop_work(t);
  release_claim(t);
  t.view.attempt = attempt;
  t.view.status = TaskStatus::announced;
  t.view.owner_agent.clear();
  t.view.owner_node.clear();
  t.claims.clear();
  t.started.clear();
  t.window_end = 0;
  t.window_done = false;
  t.owner_heard = 0;
  t.unclaimed_since = 0;
  t.assigned = false;
  t.view.updated = now.wall_ms;
}

bool Coordinator::can_take(const Task &t) const {
  return covers(config_.capabilities, t.view.required_capabilities) &&
         static_cast<uint32_t>(working_.size()) + pending_ < config_.max_tasks;
}

void Coordinator::heard(const Message &m, Now now) {
  if (const auto *a = std::get_if<TaskAnnouncement>(&m)) on_announcement(*a, now);
  else if (const auto *c = std::get_if<TaskClaim>(&m)) on_claim(*c, now);
  else if (const auto *p = std::get_if<TaskProgress>(&m)) on_progress(*p, now);
  else if (const auto *d = std::get_if<TaskComplete>(&m)) on_complete(*d, now);
  else if (const auto *g = std::get_if<TaskAssign>(&m)) on_assign(*g, now);
  else if (const auto *r = std::get_if<TaskResult>(&m)) on_result(*r, now);
  else if (const auto *k = std::get_if<TaskAck>(&m)) on_ack(*k, now);
}

bool Coordinator::announce(TaskAnnouncement task, Now now) {
  if (knows(task.task_id)) return false;
  task.attempt = 1;
  task.announced_by = task.origin = config_.agent_id;
  task.created = now.wall_ms;
  if (task.project.empty()) task.project = config_.project;
  if (out_.count) out_.count("announced");
  publish(task);
  on_announcement(task, now);
  return true;
}

void Coordinator::on_announcement(const TaskAnnouncement &a, Now now) {
  Task &t = record(a.task_id, now);
  if (t.done()) {  // finished tasks are never claimed again (rule 5); the announcer may not know
    answer_finished(t, now);
    return;
  }
  if (a.attempt < t.view.attempt) return;
  if (a.attempt > t.view.attempt) new_attempt(t, a.attempt, now);
  if (t.view.title.empty() || a.attempt > 1) {  // details may be missing when a claim came first
    t.view.title = a.title;
    t.view.description = a.description;
    t.view.required_capabilities = a.required_capabilities;
    t.view.project = a.project.empty() ? config_.project : a.project;
    t.view.origin = a.origin;
    if (a.created != 0) t.view.created = a.created;
  }
  t.view.announced_by = a.announced_by;
  t.view.updated = now.wall_ms;
  if (t.window_done) return;
  if (t.window_end == 0) t.window_end = now.mono_ms + config_.claim_window_ms;
  if (!t.claimed_here && can_take(t)) {
    t.claimed_here = true;
    ++pending_;
    t.claims[config_.node_id] = config_.agent_id;
    last_activity_ms_ = now.wall_ms;
    if (out_.count) out_.count("claimed");
    publish(TaskClaim{t.view.task_id, t.view.attempt, config_.node_id, config_.agent_id,
                      static_cast<uint32_t>(working_.size()), config_.max_tasks});
  }
}

void Coordinator::on_claim(const TaskClaim &c, Now now) {
  Task &t = record(c.task_id, now);
  if (t.done()) {
    answer_finished(t, now);
    return;
  }
  if (c.attempt < t.view.attempt) return;
  if (c.attempt > t.view.attempt) new_attempt(t, c.attempt, now);
  t.claims[c.node_id] = c.agent_id;
  t.view.updated = now.wall_ms;
  // A claim after the window is late: it does not change the owner computed here; if the late
  // claimant computes itself the owner, rule 3 (started from a lower rank) settles it.
  if (!t.window_done && t.window_end == 0) t.window_end = now.mono_ms + config_.claim_window_ms;
}

void Coordinator::close_window(Task &t, Now now) {
  t.window_done = true;
  t.window_end = 0;
  std::vector<std::string> candidates;
  for (const auto &[node, agent] : t.claims) candidates.push_back(node);
  if (candidates.empty()) {  // nobody could take it: try again after unclaimed_retry_ms
    t.unclaimed_since = now.mono_ms;
    return;
  }
  const std::string owner = *owner_of(t.view.task_id, t.view.attempt, candidates);
  release_claim(t);
  take_owner(t, owner, t.claims[owner], TaskStatus::claimed, now);
  const Fencing f = fencing();
  if (f.election) {
    // Only the admin's word makes an owner: agents that heard different claims (late or lost ones)
    // would each compute their own. Until it comes, the rank's choice is shown as the likely owner.
    if (f.admin) {
      const TaskAssign a{t.view.task_id, t.view.attempt, config_.node_id, config_.agent_id, owner, t.claims[owner]};
      if (out_.count) out_.count("assigned");
      publish(a);
      on_assign(a, now);
    }
    return;
  }
  if (owner == config_.node_id) begin_work(t, now);
}

void Coordinator::take_owner(Task &t, const std::string &node, const std::string &agent, TaskStatus status, Now now) {
  t.view.owner_node = node;
  t.view.owner_agent = agent;
  t.owner_heard = now.mono_ms;
  t.view.status = status;
  t.view.updated = now.wall_ms;
}

void Coordinator::begin_work(Task &t, Now now) {
  t.working_here = true;
  working_.insert(t.view.task_id);
  t.view.status = TaskStatus::working;
  t.started.insert(config_.node_id);
  t.next_heartbeat = now.mono_ms + config_.progress_interval_ms;
  t.work_started = now.mono_ms;
  last_activity_ms_ = now.wall_ms;
  if (out_.count) out_.count("won");
  publish(TaskProgress{t.view.task_id, t.view.attempt, config_.node_id, config_.agent_id, "started", 0, ""});
  if (out_.start_work)
    out_.start_work(TaskSpec{t.view.task_id, t.view.attempt, t.view.title, t.view.description,
                             t.view.required_capabilities, t.view.project});
}

void Coordinator::on_progress(const TaskProgress &p, Now now) {
  Task &t = record(p.task_id, now);
  if (t.done()) {
    answer_finished(t, now);
    return;
  }
  if (p.attempt < t.view.attempt) return;
  if (p.attempt > t.view.attempt) {
    new_attempt(t, p.attempt, now);
    t.window_done = true;  // somebody already owns this attempt; too late to claim it
  }
  t.claims.emplace(p.node_id, p.agent_id);
  if (p.status == "started") t.started.insert(p.node_id);
  t.view.updated = now.wall_ms;
  if (t.assigned) {  // the admin chose the owner: ranks settle nothing
    if (p.node_id == t.view.owner_node) take_owner(t, p.node_id, t.view.owner_agent, TaskStatus::working, now);
    return;
  }
  const std::string &me = config_.node_id;
  if (t.working_here) {
    // Rule 3: two agents both think they own the attempt; the lower rank keeps it.
    if (outranks(t.view.task_id, t.view.attempt, p.node_id, me)) {
      stop_work(t);
      if (out_.count) out_.count("yielded");
      take_owner(t, p.node_id, p.agent_id, TaskStatus::working, now);
    }
    return;
  }
  const std::string &owner = t.view.owner_node;
  if (owner.empty() || p.node_id == owner || outranks(t.view.task_id, t.view.attempt, p.node_id, owner)) {
    take_owner(t, p.node_id, p.agent_id, TaskStatus::working, now);
    t.unclaimed_since = 0;
  }
}

void Coordinator::on_complete(const TaskComplete &c, Now now) {
  Task &t = record(c.task_id, now);
  if (t.done()) {
    // The same outcome again (relayed, or heard after its acknowledgements) is not a second one.
    if (t.outcome && t.outcome->attempt == c.attempt && t.outcome->node_id == c.node_id) {
      unrecorded_.erase(c.task_id);
      return;
    }
    if (out_.duplicate_completion) out_.duplicate_completion();
    return;
  }
  finish(t, c, now);
}

void Coordinator::finish(Task &t, const TaskComplete &c, Now now) {
  stop_work(t);  // somebody else finished it
  release_claim(t);
  t.outcome = c;
  t.outcome->relayed_by.clear();
  t.proposed.reset();
  t.results.clear();
  t.acks.clear();
  t.view.attempt = std::max(t.view.attempt, c.attempt);
  t.view.status = c.status == "failed" ? TaskStatus::failed : TaskStatus::completed;
  t.view.owner_node = c.node_id;
  t.view.owner_agent = c.agent_id;
  t.view.completed_by = c.agent_id;
  t.view.summary = c.summary;
  t.view.decision = c.decision;
  t.view.updated = now.wall_ms;
  t.window_end = 0;
  t.window_done = true;
  t.unclaimed_since = 0;
}

void Coordinator::on_assign(const TaskAssign &a, Now now) {
  Task &t = record(a.task_id, now);
  if (t.done()) {
    answer_finished(t, now);
    return;
  }
  if (a.attempt < t.view.attempt) return;
  if (a.attempt > t.view.attempt) new_attempt(t, a.attempt, now);
  // The first assignment of an attempt stands. A second one can only come from a deposed admin
  // that has not noticed yet; the quorum on results settles what the two owners produce.
  if (t.assigned) return;
  t.assigned = true;
  t.window_done = true;
  t.window_end = 0;
  t.unclaimed_since = 0;
  release_claim(t);
  t.claims.emplace(a.owner_node, a.owner_agent);
  take_owner(t, a.owner_node, a.owner_agent, TaskStatus::claimed, now);
  if (a.owner_node == config_.node_id && !t.working_here) begin_work(t, now);
}

void Coordinator::on_result(const TaskResult &r, Now now) {
  Task &t = record(r.task_id, now);
  if (t.done()) {
    answer_finished(t, now);
    return;
  }
  const ResultKey key{r.attempt, r.node_id};
  if (r.attempt == t.view.attempt && r.node_id == t.view.owner_node) t.owner_heard = now.mono_ms;
  if (t.results.count(key) == 0) {
    if (t.results.size() >= kMaxResultsPerTask) return;
    TaskComplete c = r;
    c.relayed_by.clear();
    t.results.emplace(key, std::move(c));
  }
  if (!t.acked) t.acked = key;
  if (*t.acked == key) {  // again for a resent result: the owner may have missed the first one
    t.acks[key].insert(config_.node_id);
    publish(TaskAck{r.task_id, r.attempt, config_.node_id, config_.agent_id, r.node_id});
  }
  maybe_commit(t, key, now);
}

void Coordinator::on_ack(const TaskAck &a, Now now) {
  Task &t = record(a.task_id, now);
  if (t.done()) return;
  const ResultKey key{a.attempt, a.owner_node};
  if (t.acks.count(key) == 0 && t.acks.size() >= kMaxResultsPerTask) return;
  t.acks[key].insert(a.node_id);
  maybe_commit(t, key, now);
}

// A result acknowledged by a quorum is the task's outcome, everywhere: whoever counts the quorum
// knows it. The owner publishes task_complete as the record; the others need not hear it.
void Coordinator::maybe_commit(Task &t, const ResultKey &key, Now now) {
  const uint32_t quorum = fencing().quorum;
  if (quorum == 0) return;  // results are committed by their owner's task_complete
  auto acks = t.acks.find(key);
  auto result = t.results.find(key);
  if (acks == t.acks.end() || result == t.results.end() || acks->second.size() < quorum) return;
  const TaskComplete c = result->second;
  if (out_.note && c.node_id == config_.node_id)
    out_.note("agent: task " + c.task_id + " committed: attempt " + std::to_string(c.attempt) + " of " + c.node_id +
              ", " + std::to_string(acks->second.size()) + " acknowledgements (quorum " + std::to_string(quorum) + ")");
  finish(t, c, now);
  if (c.node_id != config_.node_id) {
    // The owner publishes the record; should it die first, the admin will (record_outcomes).
    unrecorded_[c.task_id] = now.mono_ms + config_.progress_interval_ms;
    return;
  }
  if (out_.count) out_.count(c.status == "completed" ? "completed" : "failed");
  publish(c);
  if (c.status != "completed" && out_.failed) out_.failed(c, c.summary);
}

// Somebody still works on, claims or offers a result for a finished task (it missed the outcome,
// e.g. across a partition): the outcome's owner, or the admin for an owner that is gone, tells it
// again, at most once per progress interval.
void Coordinator::answer_finished(Task &t, Now now) {
  if (!t.outcome || now.mono_ms < t.next_answer) return;
  const Fencing f = fencing();
  if (!f.election) return;
  const bool mine = t.outcome->node_id == config_.node_id;
  if (!mine && !f.admin) return;
  t.next_answer = now.mono_ms + config_.progress_interval_ms;
  TaskComplete c = *t.outcome;
  if (!mine) c.relayed_by = config_.node_id;
  if (out_.count) out_.count("retold");
  publish(c);
}

// Outcomes committed here by a quorum whose owner's task_complete never came: the owner died between
// its quorum and its record. The admin publishes the record (relayed_by itself); the other agents keep
// the duty until they hear a record, since the admin may change.
void Coordinator::record_outcomes(Now now) {
  for (auto it = unrecorded_.begin(); it != unrecorded_.end();) {
    auto t = tasks_.find(it->first);
    if (t == tasks_.end() || !t->second.outcome) {
      it = unrecorded_.erase(it);
      continue;
    }
    if (now.mono_ms < it->second) {
      ++it;
      continue;
    }
    it->second = now.mono_ms + config_.progress_interval_ms;
    if (!fencing().admin) {
      ++it;
      continue;
    }
    TaskComplete c = *t->second.outcome;
    c.relayed_by = config_.node_id;
    if (out_.note)
      out_.note("agent: task " + c.task_id + " committed without a record from its owner " + c.node_id +
                ": publishing the outcome as the admin");
    if (out_.count) out_.count("recorded");
    publish(c);
    it = unrecorded_.erase(it);
  }
}

void Coordinator::work_progress(const std::string &task_id, uint32_t attempt, int percent, const std::string &note,
                                Now now) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || !it->second.working_here || it->second.view.attempt != attempt) return;
  Task &t = it->second;
  t.percent = static_cast<uint32_t>(std::clamp(percent, 0, 100));
  t.next_heartbeat = now.mono_ms + config_.progress_interval_ms;
  last_activity_ms_ = now.wall_ms;
  publish(TaskProgress{task_id, attempt, config_.node_id, config_.agent_id, "working", t.percent,
                       note.substr(0, kMaxTextLength)});
}

void Coordinator::work_done(const std::string &task_id, uint32_t attempt, const WorkResult &result,
                            uint64_t duration_ms, Now now) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  Task &t = it->second;
  if (!t.working_here || t.view.attempt != attempt || t.done()) return;  // cancelled, yielded or superseded
  // Check again before completing: a lower-ranked owner of the same attempt wins (rule 3). An owner
  // the admin assigned does not yield to ranks.
  for (const std::string &node : t.assigned ? std::set<std::string>{} : t.started) {
    if (node != config_.node_id && outranks(task_id, attempt, node, config_.node_id)) {
      t.working_here = false;
      working_.erase(task_id);
      if (out_.count) out_.count("yielded");
      return;
    }
  }
  t.working_here = false;
  working_.erase(task_id);
  TaskComplete c{task_id, attempt, config_.node_id, config_.agent_id, result.ok ? "completed" : "failed",
                 (result.ok ? result.summary : result.error).substr(0, kMaxTextLength),
                 result.model.substr(0, kMaxItemLength), result.decision_address.substr(0, kMaxTextLength),
                 duration_ms};
  last_activity_ms_ = now.wall_ms;
  if (fencing().quorum > 0) {  // offered for commit; resent until a quorum acknowledges one result
    if (out_.count) out_.count("proposed");
    t.proposed = c;
    t.next_resend = now.mono_ms + config_.progress_interval_ms;
    const TaskResult r = as_result(c);
    publish(r);
    on_result(r, now);
    return;
  }
  if (out_.count) out_.count(result.ok ? "completed" : "failed");
  if (out_.note) out_.note("agent: task " + task_id + " attempt " + std::to_string(attempt) + " completed (no quorum)");
  publish(c);
  on_complete(c, now);
  if (!result.ok && out_.failed) out_.failed(c, result.error);
}

void Coordinator::tick(Now now) {
  std::vector<std::string> ids;
  ids.reserve(tasks_.size());
  for (const auto &[id, t] : tasks_)
    if (!t.done()) ids.push_back(id);
  for (const std::string &id : ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    Task &t = it->second;
    if (t.window_end != 0 && now.mono_ms >= t.window_end) close_window(t, now);
    if (t.working_here && now.mono_ms >= t.next_heartbeat) {
      t.next_heartbeat = now.mono_ms + config_.progress_interval_ms;
      publish(TaskProgress{t.view.task_id, t.view.attempt, config_.node_id, config_.agent_id, "working", t.percent, ""});
    }
    if (t.proposed && now.mono_ms >= t.next_resend) {
      t.next_resend = now.mono_ms + config_.progress_interval_ms;
      publish(as_result(*t.proposed));
    }
    maybe_reannounce(t, now);
  }
  if (!unrecorded_.empty()) record_outcomes(now);
}

void Coordinator::maybe_reannounce(Task &t, Now now) {
  if (t.done() || t.working_here || t.proposed || t.view.title.empty()) return;
  uint64_t base = 0;
  if (t.unclaimed_since != 0) base = t.unclaimed_since + config_.unclaimed_retry_ms;
  else if (!t.view.owner_node.empty() && t.owner_heard != 0) base = t.owner_heard + config_.owner_timeout_ms;
  if (base == 0 || now.mono_ms < base) return;
  if (!out_.reannounce_peers) return;
  const auto peers = out_.reannounce_peers();
  if (!peers) return;  // an elected admin re-announces, and it is not this agent
  const uint32_t next = t.view.attempt + 1;
  if (next > kMaxAttempt) return;
  const size_t position = rank_position(t.view.task_id, next, config_.node_id, *peers);
  if (now.mono_ms < base + position * config_.reannounce_step_ms) return;
  TaskAnnouncement a{t.view.task_id, next, t.view.title, t.view.description, t.view.required_capabilities,
                     t.view.project, config_.agent_id, t.view.origin.empty() ? config_.agent_id : t.view.origin,
                     t.view.created};
  if (out_.count) out_.count("reannounced");
  publish(a);
  on_announcement(a, now);
}

std::vector<TaskView> Coordinator::tasks() const {
  std::vector<TaskView> out;
  out.reserve(tasks_.size());
  for (const auto &[id, t] : tasks_) out.push_back(view_of(t));
  return out;
}

std::optional<TaskView> Coordinator::task(const std::string &task_id) const {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return view_of(it->second);
}

TaskView Coordinator::view_of(const Task &t) {
  TaskView v = t.view;
  v.claims.clear();
  for (const auto &[node, agent] : t.claims) v.claims.push_back(agent);
  return v;
}

}  // namespace chorus::agent

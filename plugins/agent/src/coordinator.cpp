#include "coordinator.hpp"

#include <algorithm>

#include "claim_rule.hpp"

namespace chorus::agent {
namespace {

// Tasks kept in memory; beyond it the oldest finished ones are forgotten.
constexpr size_t kMaxRemembered = 10000;

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
  if (t.done() || a.attempt < t.view.attempt) return;  // finished tasks are never claimed again (rule 5)
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
  if (t.done() || c.attempt < t.view.attempt) return;
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
  t.view.owner_node = owner;
  t.view.owner_agent = t.claims[owner];
  t.owner_heard = now.mono_ms;
  t.view.status = TaskStatus::claimed;
  t.view.updated = now.wall_ms;
  if (owner != config_.node_id) {
    release_claim(t);
    return;
  }
  release_claim(t);
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
  if (t.done() || p.attempt < t.view.attempt) return;
  if (p.attempt > t.view.attempt) {
    new_attempt(t, p.attempt, now);
    t.window_done = true;  // somebody already owns this attempt; too late to claim it
  }
  t.claims.emplace(p.node_id, p.agent_id);
  if (p.status == "started") t.started.insert(p.node_id);
  t.view.updated = now.wall_ms;
  const std::string &me = config_.node_id;
  if (t.working_here) {
    // Rule 3: two agents both think they own the attempt; the lower rank keeps it.
    if (outranks(t.view.task_id, t.view.attempt, p.node_id, me)) {
      stop_work(t);
      if (out_.count) out_.count("yielded");
      t.view.owner_node = p.node_id;
      t.view.owner_agent = p.agent_id;
      t.owner_heard = now.mono_ms;
      t.view.status = TaskStatus::working;
    }
    return;
  }
  const std::string &owner = t.view.owner_node;
  if (owner.empty() || p.node_id == owner || outranks(t.view.task_id, t.view.attempt, p.node_id, owner)) {
    t.view.owner_node = p.node_id;
    t.view.owner_agent = p.agent_id;
    t.owner_heard = now.mono_ms;
    t.view.status = TaskStatus::working;
    t.unclaimed_since = 0;
  }
}

void Coordinator::on_complete(const TaskComplete &c, Now now) {
  Task &t = record(c.task_id, now);
  if (t.done()) {
    if (out_.duplicate_completion) out_.duplicate_completion();
    return;
  }
  stop_work(t);  // somebody else finished it
  release_claim(t);
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
  // Check again before completing: a lower-ranked owner of the same attempt wins (rule 3).
  for (const std::string &node : t.started) {
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
  if (out_.count) out_.count(result.ok ? "completed" : "failed");
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
    maybe_reannounce(t, now);
  }
}

void Coordinator::maybe_reannounce(Task &t, Now now) {
  if (t.done() || t.working_here || t.view.title.empty()) return;
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

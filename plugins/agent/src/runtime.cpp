#include "runtime.hpp"

#include <sodium.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace chorus::agent {
namespace {

// What the persisted copy compares: a change of any of these is announced with changed = true.
json capability_fingerprint(const Settings &s) {
  return {{"capabilities", s.capabilities}, {"models", s.models}, {"specialization", s.specialization}};
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  randombytes_buf(b.data(), b.size());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// A task id prefix from the agent id: characters a task id cannot hold become '-'.
std::string task_prefix(const std::string &agent_id) {
  std::string p = agent_id.substr(0, 100);
  for (char &c : p)
    if (!valid_task_id(std::string_view(&c, 1))) c = '-';
  return p.empty() ? "task" : p;
}

HttpAnswer bad_request(const std::string &message) {
  return {400, {{"error", {{"code", "invalid_request"}, {"message", message}}}}};
}

}  // namespace

Runtime::Runtime(Settings settings, Identity self, RuntimeIo io, RuntimeMetrics metrics, std::unique_ptr<Worker> worker,
                 std::string capabilities_path)
    : settings_(std::move(settings)),
      self_(std::move(self)),
      io_(std::move(io)),
      metrics_(std::move(metrics)),
      worker_(std::move(worker)),
      capabilities_path_(std::move(capabilities_path)),
      directory_(settings_.directory_ttl_ms) {
  CoordinatorConfig c;
  c.node_id = self_.node_id;
  c.agent_id = self_.agent_id;
  c.capabilities = settings_.capabilities;
  c.max_tasks = settings_.max_tasks;
  c.project = settings_.project;
  c.claim_window_ms = settings_.claim_window_ms;
  c.progress_interval_ms = settings_.progress_interval_ms;
  c.owner_timeout_ms = settings_.owner_timeout_ms;
  c.unclaimed_retry_ms = settings_.unclaimed_retry_ms;
  coordinator_ = std::make_unique<Coordinator>(c, outbound());
}

Now Runtime::now() const { return Now{io_.mono_ms(), io_.wall_ms()}; }

uint64_t Runtime::tick_interval_ms() const {
  std::lock_guard lk(mu_);
  return std::clamp<uint64_t>(settings_.claim_window_ms / 4, 10, 250);
}

void Runtime::flush(std::vector<Effect> effects) {
  for (Effect &e : effects) e();
}

Outbound Runtime::outbound() {
  Outbound out;
  out.publish = [this](const Message &m) { publish_locked(kCoordinationTopic, type_of(m), to_json(m)); };
  out.start_work = [this](const TaskSpec &spec) {
    const uint64_t started = io_.mono_ms();
    effects_.push_back([this, spec, started] {
      {
        std::lock_guard lk(mu_);
        if (stopped_) return;
      }
      const std::string id = spec.task_id;
      const uint32_t attempt = spec.attempt;
      worker_->start(
          spec, [this, id, attempt](int percent, std::string note) { work_progress(id, attempt, percent, std::move(note)); },
          [this, id, attempt, started](WorkResult r) { work_done(id, attempt, std::move(r), started); });
    });
  };
  out.cancel_work = [this](const std::string &task_id) {
    effects_.push_back([this, task_id] { worker_->cancel(task_id); });
  };
  out.failed = [this](const TaskComplete &c, const std::string &reason) {
    publish_locked(kHmmmTopic, kHelpRequestType,
                   {{"task_id", c.task_id}, {"attempt", c.attempt}, {"agent_id", self_.agent_id},
                    {"node_id", self_.node_id}, {"reason", reason.substr(0, kMaxTextLength)}});
  };
  out.reannounce_peers = [this]() -> std::optional<std::vector<std::string>> {
    if (io_.is_admin) {
      if (auto admin = io_.is_admin()) {
        if (!*admin) return std::nullopt;
        return std::vector<std::string>{};  // the admin re-announces at once
      }
    }
    std::vector<std::string> nodes = directory_.node_ids();
    nodes.push_back(self_.node_id);
    return nodes;
  };
  out.fencing = [this] { return fencing(); };
  out.note = [this](const std::string &line) {
    if (io_.info) io_.info(line);
  };
  out.count = [this](const std::string &event) {
    if (metrics_.task_event) metrics_.task_event(event);
  };
  out.duplicate_completion = [this] {
    if (metrics_.duplicate_completion) metrics_.duplicate_completion();
    if (io_.warn) io_.warn("agent: a second task_complete for a completed task (counted as a duplicate)");
  };
  return out;
}

void Runtime::publish_locked(const char *topic, const std::string &type, json data) {
  if (!io_.publish) return;
  if (std::string_view(topic) == kHmmmTopic) {
    HmmmMessage m{type, self_.agent_id, std::to_string(io_.wall_ms()), data};
    hmmm_.push_back(std::move(m));
    while (hmmm_.size() > kHmmmKept) hmmm_.pop_front();
  }
  effects_.push_back([this, topic, type, data = std::move(data)] {
    if (!io_.publish(topic, type, data) && io_.warn) io_.warn("agent: publishing " + type + " on " + topic + " failed");
  });
}

const char *Runtime::status_locked() const {
  const uint32_t current = coordinator_->current_tasks();
  if (current == 0) return "ready";
  return current >= settings_.max_tasks ? "busy" : "working";
}

void Runtime::gauges_locked() {
  if (metrics_.current_tasks) metrics_.current_tasks(coordinator_->current_tasks());
  if (metrics_.directory_agents) metrics_.directory_agents(static_cast<double>(directory_.size()));
}

void Runtime::broadcast_availability_locked() {
  Availability a;
  a.node_id = self_.node_id;
  a.agent_id = self_.agent_id;
  a.current_tasks = coordinator_->current_tasks();
  a.max_tasks = settings_.max_tasks;
  a.available_for_work = a.current_tasks + coordinator_->pending_claims() < a.max_tasks;
  const int64_t last = coordinator_->last_activity_ms();
  a.last_activity = (last != 0 ? last : io_.wall_ms()) / 1000;
  a.status = status_locked();
  a.timestamp = io_.wall_ms() / 1000;
  publish_locked(kCoordinationTopic, kAvailabilityType, to_json(a));
}

void Runtime::broadcast_capability_locked(bool changed) {
  Capability c;
  c.agent_id = self_.agent_id;
  c.node_id = self_.node_id;
  c.version = kVersion;
  c.capabilities = settings_.capabilities;
  c.expertise = settings_.expertise;
  c.models = settings_.models;
  c.specialization = settings_.specialization;
  c.max_tasks = settings_.max_tasks;
  c.current_tasks = coordinator_->current_tasks();
  c.availability = status_locked();
  c.timestamp = io_.wall_ms() / 1000;
  c.changed = changed;
  publish_locked(kCoordinationTopic, kCapabilityType, to_json(c));
}

void Runtime::broadcast_role_locked() {
  if (self_.role.empty()) return;
  RoleAnnouncement r;
  r.agent_id = self_.agent_id;
  r.node_id = self_.node_id;
  r.role = self_.role.substr(0, kMaxItemLength);
  r.expertise = settings_.expertise;
  r.capabilities = settings_.capabilities;
  r.reports_to = settings_.reports_to;
  r.specialization = settings_.specialization;
  r.timestamp = io_.wall_ms() / 1000;
  publish_locked(kCoordinationTopic, kRoleType, to_json(r));
}

// Compares the persisted copy with the settings and rewrites it when they differ. A missing or
// unreadable copy counts as a change.
bool Runtime::capability_copy_changed_locked() {
  const json now_fp = capability_fingerprint(settings_);
  if (capabilities_path_.empty()) return true;
  std::ifstream in(capabilities_path_);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    if (json::parse(ss.str(), nullptr, false) == now_fp) return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(capabilities_path_).parent_path(), ec);
  const std::string tmp = capabilities_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << now_fp.dump(2) << "\n";
    if (!out) {
      if (io_.warn) io_.warn("agent: cannot write " + tmp);
      return true;
    }
  }
  std::filesystem::rename(tmp, capabilities_path_, ec);
  if (ec && io_.warn) io_.warn("agent: cannot replace " + capabilities_path_ + ": " + ec.message());
  return true;
}

void Runtime::start() {
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    const bool changed = capability_copy_changed_locked();
    broadcast_capability_locked(changed);
    broadcast_role_locked();
    broadcast_availability_locked();
    const uint64_t mono = io_.mono_ms();
    next_availability_ = mono + settings_.availability_interval_ms;
    next_status_log_ = mono + settings_.status_log_interval_ms;
    gauges_locked();
    fx.swap(effects_);
  }
  flush(std::move(fx));
}

void Runtime::stop() {
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
  }
  worker_->shutdown();
}

void Runtime::apply(Settings settings, std::string role) {
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    const bool role_changed = role != self_.role;
    settings_ = std::move(settings);
    self_.role = std::move(role);
    directory_.set_ttl(settings_.directory_ttl_ms);
    coordinator_->set_capabilities(settings_.capabilities, settings_.max_tasks);
    if (capability_copy_changed_locked()) broadcast_capability_locked(true);
    if (role_changed) broadcast_role_locked();
    fx.swap(effects_);
  }
  flush(std::move(fx));
}

void Runtime::tick() {
  std::vector<Effect> fx;
  bool log_status = false;
  size_t agents = 0;
  uint32_t tasks = 0;
  uint32_t max_tasks = 0;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    const Now t = now();
    coordinator_->tick(t);
    directory_.expire(t.mono_ms);
    if (t.mono_ms >= next_availability_) {
      broadcast_availability_locked();
      next_availability_ = t.mono_ms + settings_.availability_interval_ms;
    }
    if (settings_.status_log_interval_ms != 0 && t.mono_ms >= next_status_log_) {
      next_status_log_ = t.mono_ms + settings_.status_log_interval_ms;
      log_status = true;
      agents = directory_.size();
      tasks = coordinator_->current_tasks();
      max_tasks = settings_.max_tasks;
    }
    gauges_locked();
    fx.swap(effects_);
  }
  // Asked without mu_: topics_json waits for the gossip thread, which may be waiting for mu_ to
  // deliver a coordination message (heard_coordination) - a deadlock the cluster soak hit.
  if (log_status && io_.info) {
    const size_t peers = io_.pubsub_peers ? io_.pubsub_peers() : 0;
    io_.info("status: " + std::to_string(peers) + " pubsub peers, " + std::to_string(agents) +
             " agents in directory, " + std::to_string(tasks) + "/" + std::to_string(max_tasks) + " tasks");
  }
  flush(std::move(fx));
}

void Runtime::heard_coordination(std::string_view envelope, std::string_view from_text) {
  ParseError err;
  auto m = parse_envelope(envelope, &err);
  if (!m) {
    if (err.reason == "unknown_type") return;  // other coordination traffic (ucxi, election, ...) is not ours
    if (metrics_.rejected) metrics_.rejected(err.reason);
    if (io_.debug) io_.debug("agent: dropped a malformed message: " + err.detail);
    return;
  }
  // Signed pubsub names the author: a message about another node than its author is refused.
  const std::string node = node_of(*m);
  if (!from_text.empty() && !node.empty() && node != from_text) {
    if (metrics_.rejected) metrics_.rejected("sender_mismatch");
    if (io_.debug) io_.debug("agent: dropped a " + std::string(type_of(*m)) + " whose node_id is not its author");
    return;
  }
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    if (stopped_ || (!node.empty() && node == self_.node_id)) return;
    const Now t = now();
    directory_.heard(*m, t.mono_ms, t.wall_ms);
    coordinator_->heard(*m, t);
    gauges_locked();
    fx.swap(effects_);
  }
  flush(std::move(fx));
}

void Runtime::heard_hmmm(std::string_view envelope) {
  ParseError err;
  auto m = parse_hmmm_envelope(envelope, &err);
  if (!m) {
    if (metrics_.rejected) metrics_.rejected("hmmm_" + err.reason);
    return;
  }
  std::lock_guard lk(mu_);
  hmmm_.push_back(std::move(*m));
  while (hmmm_.size() > kHmmmKept) hmmm_.pop_front();
}

void Runtime::work_progress(const std::string &task_id, uint32_t attempt, int percent, std::string note) {
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    coordinator_->work_progress(task_id, attempt, percent, note, now());
    fx.swap(effects_);
  }
  flush(std::move(fx));
}

void Runtime::work_done(const std::string &task_id, uint32_t attempt, WorkResult r, uint64_t started_ms) {
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    const Now t = now();
    coordinator_->work_done(task_id, attempt, r, t.mono_ms - started_ms, t);
    gauges_locked();
    fx.swap(effects_);
  }
  flush(std::move(fx));
}

json Runtime::info() const {
  // Asked before locking: the worker's own lock may be held by a callback waiting for mu_.
  json services = json::parse(worker_->services_json(), nullptr, false);
  if (!services.is_object()) services = json::object();
  if (io_.services) {
    const json more = io_.services();  // kept alive: items() only refers to it
    if (more.is_object())
      for (const auto &[name, bound] : more.items()) services[name] = bound;
  }
  json is_admin = nullptr;
  if (io_.is_admin)
    if (auto a = io_.is_admin()) is_admin = *a;
  const size_t pubsub_peers = io_.pubsub_peers ? io_.pubsub_peers() : 0;
  const Fencing fence = fencing();
  std::lock_guard lk(mu_);
  const uint32_t current = coordinator_->current_tasks();
  const int64_t last = coordinator_->last_activity_ms();
  return {{"agent_id", self_.agent_id},
          {"node_id", self_.node_id},
          {"role", self_.role},
          {"capabilities", settings_.capabilities},
          {"expertise", settings_.expertise},
          {"models", settings_.models},
          {"specialization", settings_.specialization},
          {"max_tasks", settings_.max_tasks},
          {"current_tasks", current},
          {"status", status_locked()},
          {"available_for_work", current + coordinator_->pending_claims() < settings_.max_tasks},
          {"last_activity", last == 0 ? json(nullptr) : json(last / 1000)},
          {"peers", pubsub_peers},
          {"agents_in_directory", directory_.size()},
          {"services", services},
          {"is_admin", is_admin},
          {"completion_quorum", fence.quorum},
          {"assigned_by_admin", fence.election}};
}

// With an election, the admin assigns owners; with a configured membership, results also need a
// majority of it (README.md, "Committing a result").
Fencing Runtime::fencing() const {
  Fencing f;
  const std::optional<bool> admin = io_.is_admin ? io_.is_admin() : std::nullopt;
  if (!admin) return f;
  f.election = true;
  f.admin = *admin;
  const uint32_t members = io_.cluster_size ? io_.cluster_size() : 0;
  f.quorum = members == 0 ? 0 : members / 2 + 1;
  return f;
}

json Runtime::peers() const {
  std::lock_guard lk(mu_);
  const uint64_t mono = io_.mono_ms();
  json out = json::array();
  for (const AgentEntry &e : directory_.agents()) out.push_back(to_json(e, mono, directory_.ttl_ms()));
  return out;
}

json Runtime::tasks(std::string_view status_filter) const {
  std::lock_guard lk(mu_);
  json out = json::array();
  for (const TaskView &t : coordinator_->tasks())
    if (status_filter.empty() || status_filter == to_string(t.status)) out.push_back(to_json(t));
  return out;
}

std::optional<json> Runtime::task(const std::string &task_id) const {
  std::lock_guard lk(mu_);
  auto t = coordinator_->task(task_id);
  if (!t) return std::nullopt;
  return to_json(*t);
}

json Runtime::hmmm() const {
  std::lock_guard lk(mu_);
  json out = json::array();
  for (const HmmmMessage &m : hmmm_) out.push_back(to_json(m));
  return out;
}

HttpAnswer Runtime::post_task(std::string_view body) {
  const json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object()) return bad_request("the body must be a JSON object");
  for (const auto &[key, value] : req.items())
    if (key != "title" && key != "description" && key != "required_capabilities" && key != "task_id")
      return bad_request("unknown member '" + key.substr(0, 64) + "'");
  TaskAnnouncement a;
  json data = req;
  if (!data.contains("task_id")) data["task_id"] = task_prefix(self_.agent_id) + "-" + random_hex(8);
  data["attempt"] = 1;
  data["announced_by"] = self_.agent_id.empty() ? "agent" : self_.agent_id;
  ParseError err;
  auto parsed = parse_message(kAnnouncementType, data, &err);
  if (!parsed) {
    std::string why = err.detail;
    const std::string prefix = std::string(kAnnouncementType) + ".";
    if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
    return bad_request(why);
  }
  a = std::get<TaskAnnouncement>(*parsed);
  std::vector<Effect> fx;
  HttpAnswer answer;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return {503, {{"error", {{"code", "unavailable"}, {"message", "the agent is stopping"}}}}};
    a.project = settings_.project;
    if (!coordinator_->announce(a, now()))
      return {409, {{"error", {{"code", "conflict"}, {"message", "task '" + a.task_id + "' is already known"}}}}};
    answer = {202, {{"task_id", a.task_id}, {"attempt", 1}}};
    fx.swap(effects_);
  }
  flush(std::move(fx));
  return answer;
}

HttpAnswer Runtime::post_hmmm(std::string_view body) {
  const json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object()) return bad_request("the body must be a JSON object");
  if (!req.contains("type") || !req["type"].is_string() || !is_hmmm_type(req["type"].get_ref<const std::string &>()))
    return bad_request("type: must be one of meta_discussion, task_help_request, task_help_response, "
                       "coordination_request, coordination_complete, dependency_alert, escalation_trigger");
  json data = req.contains("data") ? req["data"] : json::object();
  if (!data.is_object()) return bad_request("data: must be an object");
  if (data.dump(-1, ' ', false, json::error_handler_t::replace).size() > kMaxHmmmDataBytes)
    return bad_request("data: larger than 16 KiB");
  const std::string type = req["type"].get<std::string>();
  std::vector<Effect> fx;
  {
    std::lock_guard lk(mu_);
    publish_locked(kHmmmTopic, type, data);
    fx.swap(effects_);
  }
  flush(std::move(fx));
  return {202, {{"type", type}}};
}

}  // namespace chorus::agent

#include "node.hpp"

#include <chorus/time_text.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>
#include <unordered_set>
#include <utility>

#include <chorus/services/eventlog_v1.h>
#include <nlohmann/json.hpp>

#include "core/messages.hpp"
#include "core/score.hpp"
#include "resources.hpp"

namespace chorus::election {

namespace {

using json = nlohmann::json;

// Messages waiting for the election thread; beyond this the newest are dropped (a flood cannot grow
// memory; the protocol tolerates lost messages like a lossy network).
constexpr size_t kMaxQueue = 4096;
// The longest the thread sleeps without looking at the clock.
constexpr uint64_t kMaxSleepMs = 1000;

const char *type_name(const Message &m) {
  switch (m.index()) {
    case 0: return "heartbeat";
    case 1: return "presence";
    case 2: return "candidacy";
    default: return "vote";
  }
}

uint64_t steady_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

uint64_t wall_ms() { return static_cast<uint64_t>(chorus::unix_ms(std::chrono::system_clock::now())); }

std::string short_id(const std::string &id) { return id.empty() ? std::string("none") : id; }

}  // namespace

std::string rfc3339(uint64_t unix_ms) {
  return unix_ms == 0 ? std::string() : chorus::rfc3339_utc_ms(static_cast<int64_t>(unix_ms));
}

NodeMetrics define_metrics(chorus::Host &host) {
  NodeMetrics m;
  m.triggers = host.counter("chorus_election_triggers_total", "Elections started, by trigger", {"trigger"});
  m.term = host.gauge("chorus_election_term", "The current election term");
  m.is_admin = host.gauge("chorus_election_is_admin", "1 while this agent is the admin");
  m.admin_seconds = host.counter("chorus_election_admin_seconds_total", "Seconds this agent has been the admin");
  m.admin_changes = host.counter("chorus_election_admin_changes_total", "Admin changes seen (churn)");
  m.split_brain = host.counter("chorus_election_split_brain_total", "Two admins seen in one term");
  m.messages = host.counter("chorus_election_messages_total", "Election messages by type and direction",
                            {"type", "direction"});
  m.rejected = host.counter("chorus_election_rejected_total", "Election messages refused, by reason", {"reason"});
  // Every label value at 0 from the start, so a scrape shows the series before the first event.
  for (int t = 0; t < kTriggerCount; ++t) m.triggers.add(trigger_name(static_cast<Trigger>(t)), 0);
  for (const char *r : {"malformed", "forged", "stale", "not_member"}) m.rejected.add(r, 0);
  for (const char *t : {"heartbeat", "presence", "candidacy", "vote"})
    for (const char *d : {"in", "out"}) m.messages.add(t, d, 0);
  m.admin_changes.add(0);
  m.split_brain.add(0);
  m.admin_seconds.add(0);
  m.term.set(0);
  m.is_admin.set(0);
  return m;
}

Node::Node(chorus::Host &host, Settings settings, NodeMetrics metrics, chorus::ServiceRef<chorus_pubsub_v1> pubsub,
           std::string self_id, std::unique_ptr<TermStore> store)
    : host_(host),
      settings_(std::move(settings)),
      metrics_(metrics),
      pubsub_(std::move(pubsub)),
      self_(std::move(self_id)),
      store_(std::move(store)),
      start_mono_(steady_ms()),
      election_(settings_.election, self_, store_->load(), std::random_device{}() ^ wall_ms()) {}

Node::~Node() { stop(); }

Now Node::now() const { return Now{steady_ms(), wall_ms()}; }

void Node::start() {
  auto *t = pubsub_.table();
  for (const char *topic : {kElectionTopic, kHeartbeatTopic}) {
    chorus::ErrorBuffer err;
    uint64_t id = 0;
    err.check(t->add_validator(pubsub_.self(), topic, &Node::validate_cb, this, &id, err.get()),
              std::string("election: validator for ") + topic);
    validators_.push_back(id);
    err.check(t->subscribe(pubsub_.self(), topic, &Node::message_cb, this, &id, err.get()),
              std::string("election: subscribe to ") + topic);
    subs_.push_back(id);
  }
  const PersistentState p = store_->load();
  host_.info("election: starting as " + self_ + " in term " + std::to_string(p.term) + " (state " + store_->path() +
             ")");
  thread_ = std::thread([this] { run(); });
}

void Node::stop() {
  if (pubsub_) {
    for (uint64_t id : subs_) pubsub_.table()->unsubscribe(pubsub_.self(), id);
    for (uint64_t id : validators_) pubsub_.table()->remove_validator(pubsub_.self(), id);
    subs_.clear();
    validators_.clear();
  }
  {
    std::lock_guard lk(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Requests that never reached the thread.
  std::deque<Item> left;
  {
    std::lock_guard lk(queue_mu_);
    left.swap(queue_);
  }
  for (Item &i : left)
    if (i.trigger_done) i.trigger_done(TriggerOutcome{false, 0, "the election plugin is stopping", true});
  std::map<uint64_t, Watch> gone;
  {
    std::lock_guard nlk(notify_mu_);
    std::lock_guard lk(watch_mu_);
    gone.swap(watches_);
  }
  for (auto &[id, w] : gone)
    if (w.dtor != nullptr) w.dtor(w.arg);
  pubsub_.reset();
}

// ---- pubsub side (gossip's thread)

int Node::validate_cb(void *arg, const chorus_pubsub_message *msg) {
  try {
    return static_cast<Node *>(arg)->validate(*msg);
  } catch (...) {
    return CHORUS_PUBSUB_IGNORE;
  }
}

void Node::message_cb(void *arg, const chorus_pubsub_message *msg) {
  try {
    static_cast<Node *>(arg)->on_pubsub_message(*msg);
  } catch (...) {
    // A message that cannot be queued is lost, as on a lossy network.
  }
}

int Node::validate(const chorus_pubsub_message &msg) {
  std::string why;
  const auto m = parse_message(std::string_view(reinterpret_cast<const char *>(msg.data), msg.data_len), &why);
  if (!m || std::string_view(topic_of(*m)) != std::string_view(msg.topic != nullptr ? msg.topic : "")) {
    metrics_.rejected.inc("malformed");
    return CHORUS_PUBSUB_REJECT;
  }
  if (!check_author(*m, msg.from_text != nullptr ? msg.from_text : "")) {
    metrics_.rejected.inc("forged");
    if (host_.log_enabled(chorus::LogLevel::debug))
      host_.debug(std::string("election: forged ") + type_name(*m) + " from " +
                  (msg.received_from != nullptr ? msg.received_from : "?") + " claiming " + author_of(*m));
    return CHORUS_PUBSUB_REJECT;
  }
  const auto &members = settings_.election.members;
  if (!members.empty() && std::find(members.begin(), members.end(), author_of(*m)) == members.end()) {
    metrics_.rejected.inc("not_member");
    return CHORUS_PUBSUB_IGNORE;
  }
  return CHORUS_PUBSUB_ACCEPT;
}

void Node::on_pubsub_message(const chorus_pubsub_message &msg) {
  // Our own messages come back from pubsub too; the Election knows what it published.
  const std::string_view from = msg.from_text != nullptr ? msg.from_text : "";
  if (msg.local != 0 || from == self_) return;
  std::string why;
  auto m = parse_message(std::string_view(reinterpret_cast<const char *>(msg.data), msg.data_len), &why);
  if (!m || !check_author(*m, from)) return;  // the validator refused it already
  metrics_.messages.inc(type_name(*m), "in");
  {
    std::lock_guard lk(queue_mu_);
    if (stopping_ || queue_.size() >= kMaxQueue) return;
    queue_.push_back(Item{std::move(m), nullptr});
  }
  queue_cv_.notify_one();
}

void Node::request_trigger(std::function<void(const TriggerOutcome &)> done) {
  {
    std::lock_guard lk(queue_mu_);
    if (!stopping_) {
      queue_.push_back(Item{std::nullopt, std::move(done)});
      done = nullptr;
    }
  }
  if (done) {
    done(TriggerOutcome{false, 0, "the election plugin is stopping", true});
    return;
  }
  queue_cv_.notify_one();
}

// ---- the election thread

void Node::run() {
  thread_id_.store(std::this_thread::get_id());
  Now t = now();
  last_admin_tick_mono_ = t.mono_ms;
  no_admin_since_mono_ = t.mono_ms;
  recompute_score(t);
  Effects fx;
  {
    std::lock_guard lk(mu_);
    fx = election_.start(t);
  }
  carry_out(fx);
  after_batch(t);

  while (true) {
    t = now();
    uint64_t deadline;
    {
      std::lock_guard lk(mu_);
      deadline = std::min(election_.next_deadline_ms(), next_score_mono_);
    }
    deadline = std::min({deadline, next_health_mono_, t.mono_ms + kMaxSleepMs});
    // A deadline the last turn already served at this very millisecond: wait for the clock to move
    // rather than spin.
    if (deadline <= t.mono_ms && t.mono_ms == last_turn_mono_) deadline = t.mono_ms + 1;
    last_turn_mono_ = t.mono_ms;
    std::deque<Item> items;
    {
      std::unique_lock lk(queue_mu_);
      if (queue_.empty() && !stopping_ && deadline > t.mono_ms)
        queue_cv_.wait_for(lk, std::chrono::milliseconds(deadline - t.mono_ms));
      if (stopping_) break;
      items.swap(queue_);
    }
    try {
      t = now();
      for (Item &item : items) {
        fx.clear();
        if (item.message) {
          std::lock_guard lk(mu_);
          fx = election_.on_message(t, *item.message);
        } else {
          TriggerOutcome out;
          {
            std::lock_guard lk(mu_);
            auto r = election_.trigger_manual(t, &out.why);
            if (r) {
              out.accepted = true;
              fx = std::move(*r);
            }
          }
          carry_out(fx);
          fx.clear();
          {
            std::lock_guard lk(mu_);
            out.term = election_.term();
          }
          if (out.accepted) host_.info("election: manual trigger accepted: candidacy for term " + std::to_string(out.term));
          if (auto done = std::exchange(item.trigger_done, nullptr)) done(out);
        }
        carry_out(fx);
      }
      if (t.mono_ms >= next_score_mono_) recompute_score(t);
      {
        std::lock_guard lk(mu_);
        fx = election_.tick(t);
      }
      carry_out(fx);
      after_batch(t);
    } catch (const std::exception &ex) {
      // A bug or an allocation failure in one turn must not end the thread (and the process).
      host_.error(std::string("election: turn failed: ") + ex.what());
      for (Item &item : items)
        if (auto done = std::exchange(item.trigger_done, nullptr))
          done(TriggerOutcome{false, 0, std::string("internal error: ") + ex.what(), true});
    }
  }
}

void Node::recompute_score(const Now &t) {
  const ResourceSample res = read_resources();
  ScoreInputs in;
  in.uptime_ms = t.mono_ms - start_mono_;
  in.capabilities = settings_.capabilities;
  in.mem_available_fraction = res.mem_available_fraction;
  in.cpu_idle_fraction = res.cpu_idle_fraction;
  std::lock_guard lk(mu_);
  in.members_heard = election_.members_heard(t);
  in.quorum = std::max<uint32_t>(1, election_.quorum());
  in.admin_ms_total = election_.persistent().admin_ms_total;
  const ScoreComponents c = compute_components(in);
  election_.set_score(c, weighted_score(c, settings_.weights));
  next_score_mono_ = t.mono_ms + settings_.election.heartbeat_interval_ms;
}

void Node::carry_out(Effects &effects) {
  for (Effect &e : effects) {
    if (auto *p = std::get_if<Persist>(&e)) {
      try {
        store_->save(p->state);
        if (muted_) host_.warn("election: the state file is writable again; publishing resumes");
        muted_ = false;
      } catch (const std::exception &ex) {
        // Nothing that depends on this state may go out: stay silent until a save succeeds.
        if (!muted_) host_.error(std::string("election: cannot persist the election state, not publishing: ") + ex.what());
        muted_ = true;
        host_.report_health(chorus::Health::unhealthy, std::string("cannot persist the election state: ") + ex.what());
        last_health_state_ = CHORUS_HEALTH_UNHEALTHY;
      }
    } else if (auto *pub = std::get_if<Publish>(&e)) {
      if (!muted_) publish(pub->message);
    } else if (auto *c = std::get_if<AdminChanged>(&e)) {
      admin_changed(*c);
    } else if (auto *tr = std::get_if<ElectionTriggered>(&e)) {
      metrics_.triggers.inc(trigger_name(tr->trigger));
      const bool loud = tr->trigger == Trigger::quorum_loss || tr->trigger == Trigger::split_brain;
      host_.log(loud ? chorus::LogLevel::warn : chorus::LogLevel::info,
                std::string("election: ") + trigger_name(tr->trigger) + " (term " + std::to_string(tr->term) + ")");
    } else if (auto *sb = std::get_if<SplitBrainDetected>(&e)) {
      metrics_.split_brain.inc();
      host_.warn("election: split brain in term " + std::to_string(sb->term) + ": " + sb->admin_a + " and " +
                 sb->admin_b + " both claim to be admin; starting a new term");
    } else if (auto *l = std::get_if<LogLine>(&e)) {
      const auto level = l->level <= 1 ? chorus::LogLevel::debug
                         : l->level == 2 ? chorus::LogLevel::info
                                         : chorus::LogLevel::warn;
      // The core's lines name the election already ("election: term 2 seen ...").
      host_.log(level, l->text.rfind("election:", 0) == 0 ? l->text : "election: " + l->text);
    }
  }
}

void Node::publish(const Message &m) {
  const std::string text = to_json(m);
  chorus::ErrorBuffer err;
  const chorus_status st = pubsub_.table()->publish_raw(pubsub_.self(), topic_of(m),
                                                        reinterpret_cast<const uint8_t *>(text.data()), text.size(),
                                                        nullptr, 0, nullptr, err.get());
  if (st == CHORUS_OK) {
    metrics_.messages.inc(type_name(m), "out");
  } else {
    host_.warn(std::string("election: publishing a ") + type_name(m) + " failed: " + chorus::status_name(st) + ": " +
               std::string(err.text()));
  }
}

void Node::admin_changed(const AdminChanged &c) {
  AdminView v;
  v.admin_id = c.new_admin;
  v.is_self = !c.new_admin.empty() && c.new_admin == self_;
  v.term = c.term;
  v.since_unix_ms = c.new_admin.empty() ? 0 : c.since_unix_ms;
  std::string previous;  // what the watchers saw last (the core's old_admin may be one they never saw)
  {
    std::lock_guard lk(mu_);
    if (v.admin_id == view_.admin_id && v.is_self == view_.is_self && v.term == view_.term) return;
    previous = view_.admin_id;
    view_ = v;
  }
  metrics_.admin_changes.inc();
  metrics_.is_admin.set(v.is_self ? 1 : 0);
  if (v.admin_id.empty()) {
    no_admin_since_mono_ = steady_ms();
    host_.info("election: term " + std::to_string(v.term) + ": no admin (was " + short_id(c.old_admin) + ")");
  } else {
    host_.info("election: term " + std::to_string(v.term) + ": admin is " + v.admin_id + (v.is_self ? " (self)" : ""));
  }
  notify(v, previous);
  record_change(c, v);
}

// The agent's event log (docs/eventlog.md) records election changes when the eventlog plugin runs.
// Asynchronous: this thread must not wait on the log's fsync.
void Node::record_change(const AdminChanged &c, const AdminView &v) {
  auto log = host_.try_acquire<chorus_eventlog_v1>(CHORUS_EVENTLOG_SERVICE, "^1");
  if (!log) return;
  const std::string data = nlohmann::json{{"term", v.term},
                                          {"old_admin", c.old_admin},
                                          {"new_admin", v.admin_id},
                                          {"is_self", v.is_self},
                                          {"since_unix_ms", v.since_unix_ms}}
                               .dump();
  static constexpr std::string_view kType = "election_changed";
  const chorus_status st = log.call<&chorus_eventlog_v1::append_async>(kType.data(), kType.size(), data.data(),
                                                                       data.size(), nullptr, nullptr, nullptr);
  if (st != CHORUS_OK) host_.debug(std::string("election: not recorded in the event log: ") + chorus::status_name(st));
}

void Node::notify(const AdminView &v, const std::string &previous_admin) {
  std::lock_guard nlk(notify_mu_);
  std::vector<uint64_t> ids;
  {
    std::lock_guard lk(watch_mu_);
    for (const auto &[id, w] : watches_) ids.push_back(id);
  }
  chorus_election_change change{};
  change.struct_size = sizeof change;
  change.is_admin = v.is_self ? 1 : 0;
  change.admin_id = v.admin_id.c_str();
  change.term = v.term;
  change.since_unix_ms = v.since_unix_ms;
  change.previous_admin_id = previous_admin.c_str();
  for (uint64_t id : ids) {
    Watch w{};
    {
      std::lock_guard lk(watch_mu_);
      const auto it = watches_.find(id);
      if (it == watches_.end()) continue;  // unwatched by an earlier callback
      w = it->second;
    }
    w.fn(w.arg, &change);
  }
}

void Node::after_batch(const Now &t) {
  // The service's view follows the core through AdminChanged alone: the core emits one for every
  // change of its admin, and leaves the admin role only together with such a change (set_admin).
  AdminView view;
  uint64_t stale = 0, term = 0;
  {
    std::lock_guard lk(mu_);
    view = view_;
    stale = election_.stale_messages();
    term = election_.term();
  }
  if (stale > stale_seen_) metrics_.rejected.add("stale", static_cast<double>(stale - stale_seen_));
  stale_seen_ = std::max(stale_seen_, stale);
  metrics_.term.set(static_cast<double>(term));
  if (view.is_self && t.mono_ms > last_admin_tick_mono_)
    metrics_.admin_seconds.add(static_cast<double>(t.mono_ms - last_admin_tick_mono_) / 1000.0);
  last_admin_tick_mono_ = t.mono_ms;
  report_health(t);
}

void Node::report_health(const Now &t) {
  if (muted_) return;  // unhealthy until the store works again
  AdminView view;
  uint32_t heard = 0, quorum = 0;
  {
    std::lock_guard lk(mu_);
    view = view_;
    heard = election_.members_heard(t);
    quorum = election_.quorum();
  }
  int state = CHORUS_HEALTH_OK;
  std::string msg;
  if (!view.admin_id.empty()) {
    msg = view.is_self ? "this agent is the admin (term " + std::to_string(view.term) + ")"
                       : "admin " + view.admin_id + " (term " + std::to_string(view.term) + ")";
  } else {
    const uint64_t without = t.mono_ms - std::min(t.mono_ms, no_admin_since_mono_);
    if (without > settings_.election.heartbeat_timeout_ms) {
      state = CHORUS_HEALTH_DEGRADED;
      msg = "no admin for " + std::to_string(without / 1000) + " s: ";
      msg += heard < quorum ? "hearing " + std::to_string(heard) + " of the " + std::to_string(quorum) +
                                  " members a quorum needs"
                            : "no candidate has won a quorum yet";
    } else {
      msg = "electing an admin";
    }
  }
  // Reported on a change of state, and every heartbeat interval (the "for N s" moves on).
  if (state == last_health_state_ && t.mono_ms < next_health_mono_) return;
  host_.report_health(static_cast<chorus::Health>(state), msg);
  last_health_state_ = state;
  next_health_mono_ = t.mono_ms + settings_.election.heartbeat_interval_ms;
}

// ---- readers

AdminView Node::admin_view() const {
  std::lock_guard lk(mu_);
  AdminView v = view_;
  v.cluster_size = cluster_size();
  return v;
}

uint32_t Node::cluster_size() const {
  return settings_.election.members.empty() ? settings_.election.cluster_size
                                            : static_cast<uint32_t>(settings_.election.members.size());
}

json Node::state_json() const {
  const Now t = now();
  std::lock_guard lk(mu_);
  json members = json::array();
  for (const MemberView &m : election_.members(t))
    members.push_back({{"id", m.id},
                       {"self", m.self},
                       {"term", m.term},
                       {"admin", m.admin},
                       {"score", m.score},
                       {"last_heard_ms", m.last_heard_ago_ms}});
  const ScoreComponents &c = election_.score_components();
  const std::string &admin = election_.role() == Role::admin ? self_ : election_.admin();
  const uint64_t since = admin.empty() ? 0 : election_.admin_since_unix_ms();
  return json{{"id", self_},
              {"state", role_name(election_.role())},
              {"admin", admin},
              {"term", election_.term()},
              {"since", rfc3339(since)},
              {"since_unix_ms", since},
              {"score", election_.score()},
              {"score_components",
               {{"uptime", c.uptime},
                {"capabilities", c.capabilities},
                {"resources", c.resources},
                {"network", c.network},
                {"experience", c.experience}}},
              {"members", std::move(members)},
              {"members_heard", election_.members_heard(t)},
              {"quorum", election_.quorum()},
              {"cluster_size", cluster_size()}};
}

// ---- watches

uint64_t Node::watch(chorus_election_watch_fn fn, void *arg, void (*dtor)(void *)) {
  std::lock_guard lk(watch_mu_);
  const uint64_t id = ++next_watch_;
  watches_[id] = Watch{fn, arg, dtor};
  return id;
}

bool Node::unwatch(uint64_t id) {
  // From outside the election thread, wait until a running notification is over (the header's
  // promise that fn is not running once unwatch returns); on that thread the lock is already held.
  std::unique_lock<std::mutex> nlk;
  if (std::this_thread::get_id() != thread_id_.load()) nlk = std::unique_lock(notify_mu_);
  Watch w{};
  {
    std::lock_guard lk(watch_mu_);
    const auto it = watches_.find(id);
    if (it == watches_.end()) return false;
    w = it->second;
    watches_.erase(it);
  }
  if (w.dtor != nullptr) w.dtor(w.arg);
  return true;
}

}  // namespace chorus::election

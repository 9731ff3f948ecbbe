#include "core/election.hpp"

#include <algorithm>

namespace chorus::election {
namespace {

constexpr size_t kMaxCandidaciesPerTerm = 64;

// The order voters pick a candidacy by: the higher score, then the smaller peer id. Every voter that
// saw the same candidacies picks the same one, so candidacies that collide still elect one admin.
bool better_candidacy(const Candidacy &a, const Candidacy &b) {
  if (a.score != b.score) return a.score > b.score;
  return a.candidate < b.candidate;
}

}  // namespace

const char *role_name(Role r) {
  switch (r) {
    case Role::follower: return "follower";
    case Role::candidate: return "candidate";
    case Role::admin: return "admin";
  }
  return "";
}

Election::Election(ElectionConfig cfg, std::string self_id, PersistentState state, uint64_t seed)
    : cfg_(std::move(cfg)), self_(std::move(self_id)), state_(std::move(state)), rng_(seed) {
  // A member listed twice would count twice toward the majority.
  std::sort(cfg_.members.begin(), cfg_.members.end());
  cfg_.members.erase(std::unique(cfg_.members.begin(), cfg_.members.end()), cfg_.members.end());
  if (cfg_.max_tracked_peers == 0) cfg_.max_tracked_peers = 1;
  if (cfg_.heartbeat_interval_ms == 0) cfg_.heartbeat_interval_ms = 1;
}

// ---- inputs

Effects Election::start(Now now) {
  Effects out;
  last_mono_ = now.mono_ms;
  role_ = Role::follower;
  admin_.clear();
  election_due_mono_ = now.mono_ms + cfg_.discovery_timeout_ms;
  election_due_trigger_ = Trigger::discovery_failure;
  next_presence_mono_ = now.mono_ms;  // be heard at once: the others' quorum counts this node
  run_timers(now, out);
  return out;
}

Effects Election::on_message(Now now, const Message &m) {
  Effects out;
  last_mono_ = std::max(last_mono_, now.mono_ms);
  const std::string &author = author_of(m);
  if (author == self_ || (!cfg_.members.empty() && !is_member(author))) return out;
  const uint64_t term = term_of(m);

  if (const auto *h = std::get_if<Heartbeat>(&m)) touch_peer(now, author, term, &h->admin, &h->score);
  else if (const auto *p = std::get_if<Presence>(&m)) touch_peer(now, author, term, &p->admin, &p->score);
  else if (const auto *c = std::get_if<Candidacy>(&m)) touch_peer(now, author, term, nullptr, &c->score);
  else touch_peer(now, author, term, nullptr, nullptr);

  if (term < state_.term) {
    // A presence of an older term is still a sign of life (touch_peer above); the rest is stale.
    if (!std::holds_alternative<Presence>(m)) ++stale_;
  } else {
    if (term > state_.term) adopt_term(now, term, out);
    if (const auto *h = std::get_if<Heartbeat>(&m)) on_heartbeat(now, *h, out);
    else if (const auto *c = std::get_if<Candidacy>(&m)) on_candidacy(now, *c);
    else if (const auto *v = std::get_if<Vote>(&m)) on_vote(now, *v, out);
    else if (const auto *p = std::get_if<Presence>(&m);
             p != nullptr && !p->admin.empty() && p->admin != self_ && p->term != split_brain_term_ &&
             !(p->admin == lost_admin_ && p->term == lost_admin_term_)) {
      // Reports of the admin this node itself timed out on prove nothing: the others follow it until
      // they time out too, about now. Counting them would delay every failover by an interval.
      admin_reported_ = true;
      admin_reported_mono_ = now.mono_ms;
    }
  }
  // What was heard may complete a quorum a waiting candidacy needs.
  run_timers(now, out);
  return out;
}

Effects Election::tick(Now now) {
  Effects out;
  last_mono_ = std::max(last_mono_, now.mono_ms);
  run_timers(now, out);
  return out;
}

std::optional<Effects> Election::trigger_manual(Now now, std::string *why) {
  last_mono_ = std::max(last_mono_, now.mono_ms);
  if (!admin_.empty() && now.mono_ms - admin_known_mono_ < cfg_.min_term_ms) {
    if (why != nullptr)
      *why = "stability window: the admin of term " + std::to_string(state_.term) + " has held it for " +
             std::to_string(now.mono_ms - admin_known_mono_) + " ms of the " + std::to_string(cfg_.min_term_ms) +
             " ms minimum";
    return std::nullopt;
  }
  if (!hears_quorum(now)) {
    if (why != nullptr)
      *why = "no quorum: " + std::to_string(members_heard(now)) + " members heard, " +
             std::to_string(quorum_at(now.mono_ms)) + " needed";
    return std::nullopt;
  }
  Effects out;
  start_candidacy(now, Trigger::manual, out);
  run_timers(now, out);
  return out;
}

void Election::set_score(const ScoreComponents &c, double score) {
  components_ = c;
  score_ = score;
}

// ---- timers

uint64_t Election::next_deadline_ms() const {
  uint64_t d = role_ == Role::admin ? next_heartbeat_mono_ : next_presence_mono_;
  if (role_ == Role::admin) d = std::min(d, last_quorum_mono_ + cfg_.heartbeat_timeout_ms);
  if (role_ == Role::candidate) d = std::min(d, candidacy_deadline_mono_);
  d = std::min({d, vote_at_mono_, candidacy_at_mono_});
  if (role_ == Role::follower) {
    if (election_due_mono_ > last_mono_) {
      d = std::min(d, election_due_mono_);
    } else {
      // A passed election timer that could not act: it may when a settling wait ends (may_run), or
      // when a message completes a quorum (on_message runs the timers), or at the next presence.
      if (quorum_since_mono_ != kNever && quorum_since_mono_ + settle_ms() > last_mono_)
        d = std::min(d, quorum_since_mono_ + settle_ms());
      if (admin_reported_ && admin_reported_mono_ + settle_ms() > last_mono_)
        d = std::min(d, admin_reported_mono_ + settle_ms());
    }
  }
  return d;
}

void Election::run_timers(Now now, Effects &out) {
  const uint64_t t = now.mono_ms;
  if (!hears_fresh_quorum(now)) quorum_since_mono_ = kNever;
  else if (quorum_since_mono_ == kNever) quorum_since_mono_ = t;
  if (role_ == Role::admin) {
    if (t >= next_heartbeat_mono_) publish_heartbeat(now, out);
    if (hears_quorum(now)) {
      last_quorum_mono_ = t;
    } else if (t - last_quorum_mono_ >= cfg_.heartbeat_timeout_ms) {
      // Raft's leader has no such rule; here it keeps a cut-off admin from acting on a minority's behalf.
      out.push_back(LogLine{3, "election: term " + std::to_string(state_.term) + ": quorum lost (" +
                                   std::to_string(members_heard(now)) + " members heard, " +
                                   std::to_string(quorum_at(t)) + " needed): stepping down"});
      leave_admin_role(now);
      out.push_back(Persist{state_});
      out.push_back(ElectionTriggered{Trigger::quorum_loss, state_.term});
      set_admin(now, "", 0, out);
      election_due_mono_ = t + cfg_.heartbeat_timeout_ms;
      election_due_trigger_ = Trigger::heartbeat_timeout;
    }
  }
  if (role_ != Role::admin && t >= next_presence_mono_) {
    out.push_back(Publish{Presence{state_.term, self_, admin_, score_}});
    next_presence_mono_ = t + cfg_.heartbeat_interval_ms;
  }
  if (t >= vote_at_mono_) cast_vote(now, out);
  if (role_ == Role::candidate && t >= candidacy_deadline_mono_) {
    out.push_back(LogLine{2, "election: term " + std::to_string(state_.term) + ": no quorum of votes (" +
                                 std::to_string(votes_for_me_.size()) + " of " + std::to_string(quorum_at(t)) +
                                 "), trying again"});
    role_ = Role::follower;
    candidacy_deadline_mono_ = kNever;
    election_due_mono_ = t;  // schedules the next, jittered candidacy just below
  }
  if (role_ == Role::follower && t >= election_due_mono_) {
    if (!admin_.empty()) {
      out.push_back(LogLine{2, "election: term " + std::to_string(state_.term) + ": no heartbeat from " + admin_ +
                                   " for " + std::to_string(cfg_.heartbeat_timeout_ms) + " ms"});
      lost_admin_ = admin_;
      lost_admin_term_ = state_.term;
      admin_reported_ = false;  // what the others reported so far was the admin just lost
      set_admin(now, "", 0, out);
    }
    if (candidacy_at_mono_ == kNever && vote_at_mono_ == kNever && may_run(now))
      schedule_candidacy(now, election_due_trigger_);
  }
  if (t >= candidacy_at_mono_) {
    candidacy_at_mono_ = kNever;
    // Without a quorum heard the election timer schedules it again once one is.
    if (role_ == Role::follower && admin_.empty() && may_run(now)) start_candidacy(now, candidacy_trigger_, out);
  }
}

// A candidacy needs a quorum heard (so a minority does not inflate terms), and heard lately: within an
// interval and a half, as every live member publishes every interval. Within heartbeat_timeout_ms, as
// members_heard() counts, would not do: when a partition cuts a node off from its admin, the members
// beyond the cut were heard about as recently as the admin, and would still count when the admin's
// heartbeat times out. A node that has only just come to hear a quorum - at start, or when a partition
// heals - first waits an interval and a half, long enough for an admin's heartbeat, and so does a
// node whose peers report (in a presence) a live admin of its term or a later one: a rejoining node
// follows the reign it finds instead of disrupting it with a new term.
bool Election::may_run(Now now) const {
  if (admin_reported_ && now.mono_ms < admin_reported_mono_ + settle_ms()) return false;
  if (!hears_fresh_quorum(now) || quorum_since_mono_ == kNever) return false;
  return now.mono_ms >= quorum_since_mono_ + settle_ms();
}

bool Election::hears_fresh_quorum(Now now) const {
  return heard_within(now.mono_ms, settle_ms()) >= quorum_at(now.mono_ms);
}

// ---- message handlers (the message's term equals the current term here)

void Election::on_heartbeat(Now now, const Heartbeat &h, Effects &out) {
  if (h.term == split_brain_term_) return;  // a disputed term: neither reign is followed any more
  if (role_ == Role::admin) {
    split_brain(now, self_, h.admin, out);
    return;
  }
  if (!admin_.empty() && admin_ != h.admin) {
    split_brain(now, admin_, h.admin, out);
    return;
  }
  if (role_ == Role::candidate) {
    role_ = Role::follower;
    candidacy_deadline_mono_ = kNever;
  }
  candidacy_at_mono_ = kNever;
  vote_at_mono_ = kNever;  // the term has its admin; a vote could no longer matter
  set_admin(now, h.admin, h.since_unix_ms, out);
  election_due_mono_ = now.mono_ms + cfg_.heartbeat_timeout_ms;
  election_due_trigger_ = Trigger::heartbeat_timeout;
}

void Election::on_candidacy(Now now, const Candidacy &c) {
  if (!state_.voted_for.empty()) return;                     // one vote per term, already cast
  if (role_ == Role::admin || !admin_.empty()) return;       // the term is decided
  if (candidacies_.size() >= kMaxCandidaciesPerTerm) return;
  for (const auto &seen : candidacies_)
    if (seen.candidate == c.candidate) return;
  candidacies_.push_back(c);
  if (vote_at_mono_ == kNever) vote_at_mono_ = now.mono_ms + cfg_.vote_window_ms;
  // Someone runs for this term: a candidacy of our own would only start a competing term.
  candidacy_at_mono_ = kNever;
  election_due_mono_ = now.mono_ms + cfg_.vote_window_ms + cfg_.candidacy_timeout_ms;
}

void Election::on_vote(Now now, const Vote &v, Effects &out) {
  if (role_ != Role::candidate || v.candidate != self_) return;
  if (votes_for_me_.size() >= cfg_.max_tracked_peers) return;
  votes_for_me_.insert(v.voter);
  if (votes_for_me_.size() >= quorum_at(now.mono_ms)) become_admin(now, out);
}

// ---- transitions

void Election::adopt_term(Now now, uint64_t term, Effects &out) {
  out.push_back(LogLine{2, "election: term " + std::to_string(term) + " seen (was " + std::to_string(state_.term) +
                               "): following it"});
  leave_admin_role(now);
  role_ = Role::follower;
  candidacy_deadline_mono_ = kNever;
  vote_at_mono_ = kNever;
  candidacies_.clear();
  votes_for_me_.clear();
  state_.term = term;
  state_.voted_for.clear();
  admin_reported_ = false;
  out.push_back(Persist{state_});
  set_admin(now, "", 0, out);
  // A higher term means an election is under way or over: give it time before running in the next.
  if (election_due_mono_ != kNever)
    election_due_mono_ = std::max(election_due_mono_, now.mono_ms + cfg_.vote_window_ms + cfg_.candidacy_timeout_ms);
}

void Election::set_admin(Now now, const std::string &id, uint64_t since_unix_ms, Effects &out) {
  if (id == admin_) return;
  AdminChanged changed{admin_, id, state_.term, id == self_ && !id.empty(), since_unix_ms};
  admin_ = id;
  admin_since_unix_ms_ = id.empty() ? 0 : since_unix_ms;
  admin_known_mono_ = now.mono_ms;
  out.push_back(std::move(changed));
}

// Leaves the admin role (if held), adding the reign to the time as admin; the caller persists.
void Election::leave_admin_role(Now now) {
  if (role_ != Role::admin) return;
  state_.admin_ms_total += now.mono_ms - admin_known_mono_;
  role_ = Role::follower;
  // Its election timer starts afresh, as a follower's does on a heartbeat.
  election_due_mono_ = now.mono_ms + cfg_.heartbeat_timeout_ms;
  election_due_trigger_ = Trigger::heartbeat_timeout;
  next_heartbeat_mono_ = kNever;
  next_presence_mono_ = now.mono_ms;  // be heard as a member again at once
}

void Election::split_brain(Now now, const std::string &known, const std::string &other, Effects &out) {
  ++split_brains_;
  split_brain_term_ = state_.term;
  admin_reported_ = false;  // the members' reports name one of the two reigns
  out.push_back(SplitBrainDetected{state_.term, known, other});
  if (role_ == Role::admin) {
    leave_admin_role(now);
    out.push_back(Persist{state_});
  }
  set_admin(now, "", 0, out);
  // A new term ends both reigns: every node that saw both schedules a candidacy for it.
  schedule_candidacy(now, Trigger::split_brain);
}

void Election::schedule_candidacy(Now now, Trigger trigger) {
  candidacy_at_mono_ = now.mono_ms + jitter_ms();
  candidacy_trigger_ = trigger;
}

void Election::start_candidacy(Now now, Trigger trigger, Effects &out) {
  leave_admin_role(now);  // a manual trigger on the admin: the new term ends its reign
  role_ = Role::candidate;
  candidacies_.clear();
  votes_for_me_.clear();
  candidacy_at_mono_ = kNever;
  state_.term += 1;
  state_.voted_for.clear();
  out.push_back(ElectionTriggered{trigger, state_.term});
  out.push_back(Persist{state_});
  set_admin(now, "", 0, out);
  Candidacy mine{state_.term, self_, trigger, components_, score_};
  out.push_back(Publish{mine});
  // The candidate votes like every voter: for the best candidacy at the end of its vote window.
  candidacies_.push_back(std::move(mine));
  vote_at_mono_ = now.mono_ms + cfg_.vote_window_ms;
  candidacy_deadline_mono_ = now.mono_ms + cfg_.vote_window_ms + cfg_.candidacy_timeout_ms;
  election_due_mono_ = candidacy_deadline_mono_;
}

void Election::cast_vote(Now now, Effects &out) {
  vote_at_mono_ = kNever;
  if (!state_.voted_for.empty() || candidacies_.empty() || role_ == Role::admin || !admin_.empty()) return;
  const Candidacy &best = *std::min_element(candidacies_.begin(), candidacies_.end(), better_candidacy);
  state_.voted_for = best.candidate;
  out.push_back(Persist{state_});
  out.push_back(Publish{Vote{state_.term, self_, best.candidate}});
  out.push_back(LogLine{1, "election: term " + std::to_string(state_.term) + ": voted for " + best.candidate});
  election_due_mono_ = std::max(election_due_mono_ == kNever ? 0 : election_due_mono_,
                                now.mono_ms + cfg_.candidacy_timeout_ms);
  if (best.candidate == self_ && role_ == Role::candidate) {
    votes_for_me_.insert(self_);
    if (votes_for_me_.size() >= quorum_at(now.mono_ms)) become_admin(now, out);
  }
}

void Election::become_admin(Now now, Effects &out) {
  role_ = Role::admin;
  candidacy_deadline_mono_ = kNever;
  candidacy_at_mono_ = kNever;
  vote_at_mono_ = kNever;
  state_.admin_terms += 1;
  out.push_back(Persist{state_});
  set_admin(now, self_, now.unix_ms, out);
  last_quorum_mono_ = now.mono_ms;
  heartbeat_seq_ = 0;
  publish_heartbeat(now, out);
}

void Election::publish_heartbeat(Now now, Effects &out) {
  out.push_back(Publish{Heartbeat{state_.term, self_, admin_since_unix_ms_, ++heartbeat_seq_, score_}});
  next_heartbeat_mono_ = now.mono_ms + cfg_.heartbeat_interval_ms;
}

// ---- membership

bool Election::is_member(const std::string &id) const {
  return std::binary_search(cfg_.members.begin(), cfg_.members.end(), id);
}

void Election::touch_peer(Now now, const std::string &id, uint64_t term, const std::string *admin,
                          const double *score) {
  auto it = std::find_if(peers_.begin(), peers_.end(), [&](const auto &p) { return p.first == id; });
  if (it == peers_.end()) {
    if (peers_.size() >= cfg_.max_tracked_peers) {
      // Bounded against floods of new ids: the peer heard least recently makes room.
      auto oldest = std::min_element(peers_.begin(), peers_.end(), [](const auto &a, const auto &b) {
        return a.second.last_heard_mono < b.second.last_heard_mono;
      });
      peers_.erase(oldest);
    }
    peers_.emplace_back(id, Peer{});
    it = std::prev(peers_.end());
  }
  Peer &p = it->second;
  p.last_heard_mono = std::max(p.last_heard_mono, now.mono_ms);
  p.term = std::max(p.term, term);
  if (admin != nullptr) p.admin = *admin;
  if (score != nullptr) p.score = *score;
}

uint32_t Election::members_heard(Now now) const { return heard_within(now.mono_ms, cfg_.heartbeat_timeout_ms); }

uint32_t Election::heard_within(uint64_t mono, uint64_t window_ms) const {
  uint32_t heard = 1;  // self
  for (const auto &[id, p] : peers_)
    if (mono <= p.last_heard_mono + window_ms) ++heard;
  return heard;
}

uint32_t Election::quorum_at(uint64_t mono) const {
  if (!cfg_.members.empty()) return static_cast<uint32_t>(cfg_.members.size() / 2 + 1);
  if (cfg_.cluster_size > 0) return cfg_.cluster_size / 2 + 1;
  // Neither configured: a majority of whoever is heard - two sides of a partition can each have one.
  return members_heard(Now{mono, 0}) / 2 + 1;
}

uint32_t Election::quorum() const { return quorum_at(last_mono_); }

std::vector<MemberView> Election::members(Now now) const {
  std::vector<MemberView> out;
  out.push_back(MemberView{self_, 0, state_.term, admin_, score_, true});
  std::vector<MemberView> others;
  for (const auto &[id, p] : peers_)
    others.push_back(MemberView{id, now.mono_ms >= p.last_heard_mono ? now.mono_ms - p.last_heard_mono : 0, p.term,
                                p.admin, p.score, false});
  std::sort(others.begin(), others.end(), [](const auto &a, const auto &b) { return a.id < b.id; });
  out.insert(out.end(), others.begin(), others.end());
  return out;
}

uint64_t Election::jitter_ms() {
  // splitmix64: deterministic for a seed, which the simulated clusters rely on.
  rng_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = rng_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  if (cfg_.max_jitter_ms == 0) return 0;
  const double spread = static_cast<double>(z % (cfg_.max_jitter_ms + 1));
  const double weight = 1.0 - std::clamp(score_, 0.0, 1.0);  // better nodes go first
  return static_cast<uint64_t>(spread * weight);
}

}  // namespace chorus::election

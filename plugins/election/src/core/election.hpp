// The election state machine, sans I/O: messages and time go in, effects come out, and the driver
// (node.cpp) carries the effects out in order. Deterministic for a given seed, so the unit tests run
// whole clusters on a simulated network with a fake clock.
//
// The rules follow Raft's leader election (README.md, "Safety"), over broadcast pubsub instead of
// RPCs:
//  - terms only grow and are persisted, with this node's vote, before anything that depends on them
//    is published (a Persist effect always precedes the Publish it guards);
//  - a node votes at most once per term, for the best candidacy it saw within vote_window_ms;
//  - a candidate becomes admin with votes from a quorum: a majority of cluster_size, or of members,
//    or - with neither configured - of the members heard within heartbeat_timeout_ms;
//  - any message of a higher term makes the node adopt that term as a follower at once;
//  - a node starts a candidacy only while it hears a quorum within the last interval and a half (so
//    a minority does not inflate terms), and an admin that stops hearing a quorum for
//    heartbeat_timeout_ms steps down (quorum_loss);
//  - a node that has just come to hear a quorum (start, a healed partition), or whose peers report a
//    live admin, waits an interval and a half for that admin's heartbeat before it may run.
// The driver calls on_message only for messages whose author is their signer (check_author); the
// object ignores its own messages (it applies them when it publishes them) and, with members
// configured, those of non-members. Log lines come as LogLine effects for what has no effect of its
// own (quorum lost, a failed candidacy, a lost admin, a higher term, a vote); the driver logs
// AdminChanged and SplitBrainDetected itself.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "core/messages.hpp"
#include "core/score.hpp"

namespace chorus::election {

enum class Role : int { follower, candidate, admin };
const char *role_name(Role r);  // "follower", "candidate", "admin"

struct ElectionConfig {
  uint64_t heartbeat_interval_ms = 5000;
  uint64_t heartbeat_timeout_ms = 15000;
  uint64_t discovery_timeout_ms = 10000;  // no admin heard this long after start: discovery_failure
  uint64_t min_term_ms = 30000;           // stability window: a manual trigger is refused in it
  uint64_t vote_window_ms = 250;          // candidacies of a term collected before voting
  uint64_t candidacy_timeout_ms = 3000;   // a candidate without a quorum of votes gives up after this
  uint64_t max_jitter_ms = 1000;          // random delay before a candidacy, smaller for better scores
  uint32_t cluster_size = 0;              // 0: not configured
  std::vector<std::string> members;       // peer ids; empty: not configured (takes precedence over cluster_size)
  uint32_t max_tracked_peers = 1024;      // bound on members/voters remembered (vote floods)
};

// What survives a restart (store/term_store): written before it is relied upon.
struct PersistentState {
  uint64_t term = 0;
  std::string voted_for;  // "" when no vote in `term`
  uint64_t admin_ms_total = 0;
  uint64_t admin_terms = 0;
  bool operator==(const PersistentState &) const = default;
};

// Local time: monotonic for every timeout, wall clock only to report since_unix_ms.
struct Now {
  uint64_t mono_ms = 0;
  uint64_t unix_ms = 0;
};

// ---- effects, carried out in order by the driver
struct Persist {
  PersistentState state;  // durable before the next effect runs
};
struct Publish {
  Message message;  // signed and published on topic_of(message)
};
struct AdminChanged {
  std::string old_admin, new_admin;  // "" for none
  uint64_t term = 0;
  bool is_self = false;
  uint64_t since_unix_ms = 0;
};
struct ElectionTriggered {
  Trigger trigger;
  uint64_t term = 0;  // the term the candidacy runs for (or the term the admin stepped down from)
};
struct SplitBrainDetected {
  uint64_t term = 0;
  std::string admin_a, admin_b;
};
struct LogLine {
  int level = 2;  // 1 debug, 2 info, 3 warn
  std::string text;
};
using Effect = std::variant<Persist, Publish, AdminChanged, ElectionTriggered, SplitBrainDetected, LogLine>;
using Effects = std::vector<Effect>;

struct MemberView {
  std::string id;
  uint64_t last_heard_ago_ms = 0;
  uint64_t term = 0;
  std::string admin;  // whom it follows, as last reported
  double score = 0;
  bool self = false;
};

class Election {
 public:
  // state: as loaded from the store. seed: for the jitter.
  Election(ElectionConfig cfg, std::string self_id, PersistentState state, uint64_t seed);

  Effects start(Now now);
  // A message that passed check_author. Messages of stale terms are ignored (and counted); this node's
  // own messages are ignored (it applied them when it published them), and so are non-members' when
  // members are configured.
  Effects on_message(Now now, const Message &m);
  // Runs the timers; call it at next_deadline_ms() at the latest (earlier is harmless).
  Effects tick(Now now);
  // POST /api/v1/election/trigger. Refused (nullopt, *why set) inside the stability window.
  std::optional<Effects> trigger_manual(Now now, std::string *why);
  // The score this node puts in its candidacies and presence; recomputed by the driver every heartbeat.
  void set_score(const ScoreComponents &c, double score);

  uint64_t next_deadline_ms() const;

  Role role() const { return role_; }
  uint64_t term() const { return state_.term; }
  const std::string &admin() const { return admin_; }  // "" when none known
  uint64_t admin_since_unix_ms() const { return admin_since_unix_ms_; }
  double score() const { return score_; }
  const ScoreComponents &score_components() const { return components_; }
  const PersistentState &persistent() const { return state_; }
  uint32_t quorum() const;             // votes needed
  uint32_t members_heard(Now now) const;  // self included
  std::vector<MemberView> members(Now now) const;
  uint64_t stale_messages() const { return stale_; }
  uint64_t split_brains() const { return split_brains_; }

 private:
  struct Peer {
    uint64_t last_heard_mono = 0;
    uint64_t term = 0;
    std::string admin;
    double score = 0;
  };
  static constexpr uint64_t kNever = UINT64_MAX;

  void run_timers(Now now, Effects &out);
  void on_heartbeat(Now now, const Heartbeat &h, Effects &out);
  void on_candidacy(Now now, const Candidacy &c);
  void on_vote(Now now, const Vote &v, Effects &out);
  void adopt_term(Now now, uint64_t term, Effects &out);
  void set_admin(Now now, const std::string &id, uint64_t since_unix_ms, Effects &out);
  void leave_admin_role(Now now);
  void split_brain(Now now, const std::string &known, const std::string &other, Effects &out);
  void schedule_candidacy(Now now, Trigger trigger);
  void start_candidacy(Now now, Trigger trigger, Effects &out);
  void cast_vote(Now now, Effects &out);
  void become_admin(Now now, Effects &out);
  void publish_heartbeat(Now now, Effects &out);
  void touch_peer(Now now, const std::string &id, uint64_t term, const std::string *admin, const double *score);
  bool is_member(const std::string &id) const;
  uint32_t quorum_at(uint64_t mono) const;
  uint32_t heard_within(uint64_t mono, uint64_t window_ms) const;  // self included
  bool hears_fresh_quorum(Now now) const;
  uint64_t settle_ms() const { return cfg_.heartbeat_interval_ms + cfg_.heartbeat_interval_ms / 2; }
  bool may_run(Now now) const;
  bool hears_quorum(Now now) const { return members_heard(now) >= quorum_at(now.mono_ms); }
  uint64_t jitter_ms();

  ElectionConfig cfg_;
  std::string self_;
  PersistentState state_;
  Role role_ = Role::follower;
  std::string admin_;  // of the current term only; "" when none is known
  uint64_t admin_since_unix_ms_ = 0;
  double score_ = 0;
  ScoreComponents components_;
  uint64_t stale_ = 0;
  uint64_t split_brains_ = 0;

  uint64_t rng_ = 0;
  uint64_t last_mono_ = 0;               // the latest Now seen (quorum() without members or cluster_size)
  uint64_t admin_known_mono_ = 0;        // when admin_ became known here (stability window, time as admin)
  uint64_t election_due_mono_ = kNever;  // no admin by then: schedule a candidacy (Raft's election timer)
  Trigger election_due_trigger_ = Trigger::discovery_failure;
  uint64_t last_quorum_mono_ = 0;        // as admin: the last time a quorum was heard
  uint64_t next_heartbeat_mono_ = kNever;
  uint64_t next_presence_mono_ = 0;
  uint64_t candidacy_at_mono_ = kNever;  // a jittered candidacy waiting to start
  Trigger candidacy_trigger_ = Trigger::heartbeat_timeout;
  uint64_t candidacy_deadline_mono_ = kNever;  // as candidate: give up without a quorum of votes
  uint64_t vote_at_mono_ = kNever;             // the end of the open vote window
  uint64_t heartbeat_seq_ = 0;
  uint64_t split_brain_term_ = 0;        // heartbeats of this term are no longer followed
  uint64_t admin_reported_mono_ = 0;     // a member's presence last named a live admin of our term or later
  bool admin_reported_ = false;
  std::string lost_admin_;               // the admin this node timed out on, in lost_admin_term_
  uint64_t lost_admin_term_ = 0;
  uint64_t quorum_since_mono_ = kNever;  // a quorum has been heard without a break since then
  std::vector<Candidacy> candidacies_;   // of the current term, at most 64
  std::set<std::string> votes_for_me_;   // distinct voters in the current term, at most max_tracked_peers
  std::vector<std::pair<std::string, Peer>> peers_;  // at most max_tracked_peers, the oldest forgotten
};

}  // namespace chorus::election

// The election's wire messages: JSON objects published as signed pubsub messages (raw, no CHORUS
// envelope) on two topics. The author of every message is the pubsub signer; the id a message claims
// (admin, candidate, voter, member) must be that signer (check_author), so a peer cannot speak for
// another. See README.md, "Messages", for the JSON of each.
//
//   CHORUS/election/v1          election.candidacy, election.vote
//   CHORUS/admin/heartbeat/v1   election.heartbeat (the admin), election.presence (everyone else)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/score.hpp"

namespace chorus::election {

inline constexpr const char *kElectionTopic = "CHORUS/election/v1";
inline constexpr const char *kHeartbeatTopic = "CHORUS/admin/heartbeat/v1";

// Bounds on what the parser accepts; anything larger is refused before it is looked at.
inline constexpr size_t kMaxMessageBytes = 4096;
inline constexpr size_t kMaxIdBytes = 128;  // peer ids in base58btc are ~52 characters

enum class Trigger : int { heartbeat_timeout, discovery_failure, split_brain, quorum_loss, manual };
inline constexpr int kTriggerCount = 5;
const char *trigger_name(Trigger t);  // "heartbeat_timeout", "discovery_failure", ...
std::optional<Trigger> trigger_from_name(std::string_view name);

// The admin's "I am alive" every heartbeat interval. since_unix_ms is the admin's own wall clock when
// it won the term (reported only; no agent compares clocks). seq counts heartbeats within the term.
struct Heartbeat {
  uint64_t term = 0;
  std::string admin;
  uint64_t since_unix_ms = 0;
  uint64_t seq = 0;
  double score = 0;
};

// Every other member's "I am alive" every heartbeat interval: membership and quorum come from these
// (and from heartbeats). admin is who the member follows ("" when none), term its current term.
struct Presence {
  uint64_t term = 0;
  std::string member;
  std::string admin;
  double score = 0;
};

// A candidate asks for votes in `term`. The score and its components travel with it: voters pick the
// best candidacy of a term (score, then the smaller peer id).
struct Candidacy {
  uint64_t term = 0;
  std::string candidate;
  Trigger trigger = Trigger::heartbeat_timeout;
  ScoreComponents components;
  double score = 0;
};

// A voter's one vote in `term`.
struct Vote {
  uint64_t term = 0;
  std::string voter;
  std::string candidate;
};

using Message = std::variant<Heartbeat, Presence, Candidacy, Vote>;

// Strict: a JSON object with "type" and exactly the members of that type, ids 1..kMaxIdBytes of
// printable ASCII without spaces, terms 1..2^53 (0 too in a presence: a node that never saw a term), scores
// finite in [0, 1], no duplicate members. Returns nullopt with *why set otherwise.
std::optional<Message> parse_message(std::string_view json, std::string *why);
std::string to_json(const Message &m);
const char *topic_of(const Message &m);
uint64_t term_of(const Message &m);
const std::string &author_of(const Message &m);  // admin / member / candidate / voter

// True when the message's claimed author is the pubsub signer (base58btc peer id).
inline bool check_author(const Message &m, std::string_view signer) { return !signer.empty() && author_of(m) == signer; }

}  // namespace chorus::election

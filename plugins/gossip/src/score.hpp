// GossipSub v1.1 peer scoring (docs/protocols.md, PubSub peer scoring): the score function of the
// v1.1 spec, P1-P7, with per-topic parameters, decay and the five thresholds the router acts on.
//
// score(p) = min(topic_score_cap, sum over topics t of topic_weight(t) * (
//                w1 * P1 + w2 * P2 + w3 * P3 + w3b * P3b + w4 * P4))
//            + w5 * P5 + w6 * P6 + w7 * P7
//   P1 time in mesh (quanta, capped), P2 first message deliveries (capped, decaying),
//   P3 mesh message delivery deficit squared (after activation, below threshold), P3b sticky mesh
//   failure penalty (deficit squared at prune), P4 invalid messages squared, P5 application score,
//   P6 IP colocation surplus squared, P7 behaviour penalty surplus squared.
// Weights w3, w3b, w4, w6, w7 are negative; w1, w2 positive.
//
// Sans I/O and single-threaded: the router calls it on its own thread, with times from its clock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "message_key.hpp"
#include "rpc.hpp"
#include "wire/peer_id.hpp"

namespace chorus::gossip {

using PeerId = chorus::p2p::PeerId;

struct TopicScoreParams {
  double topic_weight = 1.0;
  // P1
  double time_in_mesh_weight = 0.01;
  uint64_t time_in_mesh_quantum_ms = 1000;
  double time_in_mesh_cap = 3600;
  // P2
  double first_message_deliveries_weight = 1.0;
  double first_message_deliveries_decay = 0.5;
  double first_message_deliveries_cap = 2000;
  // P3 (0 weight: off; CHORUS topics are quiet for long stretches, a deficit is no sign of misbehaviour)
  double mesh_message_deliveries_weight = 0;
  double mesh_message_deliveries_decay = 0.5;
  double mesh_message_deliveries_cap = 100;
  double mesh_message_deliveries_threshold = 1;
  uint64_t mesh_message_deliveries_window_ms = 10;
  uint64_t mesh_message_deliveries_activation_ms = 5000;
  // P3b
  double mesh_failure_penalty_weight = 0;
  double mesh_failure_penalty_decay = 0.5;
  // P4
  double invalid_message_deliveries_weight = -100;
  double invalid_message_deliveries_decay = 0.3;
};

struct PeerScoreParams {
  // Parameters of the topics that count; other topics contribute nothing (as in go-libp2p-pubsub).
  std::map<std::string, TopicScoreParams> topics;
  // Used for any topic not in `topics` when set (CHORUS joins dynamic rooms at run time).
  bool score_all_topics = true;
  TopicScoreParams default_topic;
  double topic_score_cap = 100;          // 0: no cap
  double app_specific_weight = 1;        // P5
  double ip_colocation_factor_weight = -10;  // P6
  double ip_colocation_factor_threshold = 10;
  std::set<std::string> ip_colocation_whitelist;  // addresses or CIDR prefixes exempt from P6 ("127.0.0.1", "10.0.0.0/8")
  double behaviour_penalty_weight = -10;  // P7
  double behaviour_penalty_threshold = 0;
  double behaviour_penalty_decay = 0.9;
  uint64_t decay_interval_ms = 1000;
  double decay_to_zero = 0.01;
  uint64_t retain_score_ms = 3600 * 1000;  // a disconnected peer's counters are kept this long
  // How long a message's delivery record is kept: duplicates arriving later are neither credited
  // (P3) nor, for a message found invalid, penalised (P4). The seen cache's TTL.
  uint64_t delivery_record_ttl_ms = 120000;
  // Topics scored separately for one peer; events on further topics share one overflow bucket
  // scored with default_topic (a peer cannot make us keep stats for a million topics).
  size_t max_scored_topics_per_peer = 1024;
};


struct PeerScoreThresholds {
  double gossip = -10;      // below: no gossip to or from the peer
  double publish = -50;     // below: our own messages are not flood-published to it
  double graylist = -80;    // below: its RPCs are ignored entirely
  double accept_px = 10;    // PX in a PRUNE is followed only from peers at or above this
  double opportunistic_graft = 1;  // median mesh score below this triggers opportunistic grafting
};

// Checks the spec's constraints on the parameters (weights' signs, decays in (0, 1), quantum > 0,
// threshold order). All-zero weights are valid (scoring off). False with *why naming the field.
bool validate_score_params(const PeerScoreParams &params, std::string *why);
bool validate_score_thresholds(const PeerScoreThresholds &thresholds, std::string *why);

// Why a message was rejected; only some reasons count against the peer that sent it (P4).
enum class RejectReason {
  kMissingSignature,  // counted
  kInvalidSignature,  // counted
  kValidatorReject,   // counted
  kSelfOrigin,        // counted (someone forwards our id with a message we did not send)
  kValidatorIgnore,   // not counted
  kQueueFull,         // not counted
  kBlacklisted,       // not counted
};

class PeerScore {
 public:
  explicit PeerScore(PeerScoreParams params);

  // Peers come and go with their pubsub streams; `ip` is the remote address ("" if unknown). A peer
  // leaving with a score <= 0 is kept for retain_score_ms (P2 reset, a mesh delivery deficit turned
  // into P3b, out of P6) and gets it all back if it returns: reconnecting resets nothing. A peer
  // leaving with a positive score is forgotten. add_peer on a connected peer updates its address.
  void add_peer(const PeerId &peer, const std::string &ip, uint64_t now_ms);
  void remove_peer(const PeerId &peer, uint64_t now_ms);

  // Mesh membership (P1, P3, P3b).
  void graft(const PeerId &peer, const std::string &topic, uint64_t now_ms);
  void prune(const PeerId &peer, const std::string &topic, uint64_t now_ms);

  // Message events, in the order the router sees them (go-libp2p-pubsub's model):
  //   validate_message  the first copy of message_id arrived and waits for validation;
  //   deliver_message   it passed validation: `from` gets a first delivery (P2, and P3 when in our
  //                     mesh); peers whose copies arrived while it was being validated get a
  //                     near-first delivery (P3);
  //   duplicate_message a later copy from `from`: P3 credit if it arrives within
  //                     mesh_message_deliveries_window_ms of validation, P4 if the message was
  //                     rejected by a validator, nothing if it was ignored;
  //   reject_message    validation failed; see RejectReason for what counts (P4).
  // deliver_message and reject_message without a prior validate_message are fine (synchronous
  // validation). Events for peers never added, or for topics without parameters, change nothing.
  void validate_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void deliver_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void duplicate_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void reject_message(const PeerId &from, const Bytes &message_id, const std::string &topic, RejectReason reason,
                      uint64_t now_ms);

  // P7: protocol misbehaviour (GRAFT during backoff, broken IWANT promises, ...), `count` units.
  void add_penalty(const PeerId &peer, double count);
  // P5, set by the application.
  void set_app_score(const PeerId &peer, double value);

  // Decays the counters by one factor per decay_interval_ms elapsed since the last decay (the first
  // call only starts the clock), forgets disconnected peers whose retention ran out and old delivery
  // records. The router calls it on every heartbeat.
  void refresh(uint64_t now_ms);

  // 0 for peers we know nothing about.
  double score(const PeerId &peer, uint64_t now_ms) const;

  // Whether the peer's counters are held (connected, or disconnected within retain_score_ms).
  bool tracked(const PeerId &peer) const { return peers_.count(peer) != 0; }
  size_t tracked_peers() const { return peers_.size(); }

  const PeerScoreParams &params() const { return params_; }

 private:
  struct TopicStats {
    bool in_mesh = false;
    uint64_t graft_ms = 0;
    double first_message_deliveries = 0;  // P2 counter
    double mesh_message_deliveries = 0;   // P3 counter
    double mesh_failure_penalty = 0;      // P3b
    double invalid_message_deliveries = 0;  // P4 counter
  };
  struct PeerStats {
    bool connected = true;
    uint64_t expire_ms = 0;  // when disconnected: forget it at this time
    std::string ip;          // "" unknown
    double app_score = 0;    // P5
    double behaviour_penalty = 0;  // P7 counter
    std::unordered_map<std::string, TopicStats> topics;
  };
  enum class DeliveryStatus { kPending, kValid, kInvalid, kIgnored };
  struct DeliveryRecord {
    DeliveryStatus status = DeliveryStatus::kPending;
    uint64_t validated_ms = 0;
    // peer_tag() of every peer whose copy we saw (the first sender included): 8 bytes inline where
    // a PeerId is an allocation, for records that live two minutes.
    std::vector<uint64_t> peers;
    bool add(uint64_t tag) {  // false if that peer was counted already
      if (std::find(peers.begin(), peers.end(), tag) != peers.end()) return false;
      peers.push_back(tag);
      return true;
    }
  };
  static uint64_t peer_tag(const PeerId &peer) { return message_key(peer.bytes()).lo; }
  const PeerId *peer_by_tag(uint64_t tag) const;

  const TopicScoreParams *topic_params(const std::string &topic) const;
  // The stats the topic's events count into, created on first use; nullptr if the topic is unscored.
  TopicStats *topic_stats(PeerStats &peer, const std::string &topic);
  DeliveryRecord &delivery_record(const Bytes &message_id, uint64_t now_ms);
  void mark_first_delivery(const PeerId &peer, const std::string &topic);
  void mark_near_first_delivery(const PeerId &peer, const std::string &topic, uint64_t validated_ms,
                                uint64_t now_ms);
  void mark_invalid_delivery(const PeerId &peer, const std::string &topic);
  // P3b: a mesh peer leaving the mesh (pruned or disconnected) with an active delivery deficit.
  void apply_mesh_failure(TopicStats &ts, const TopicScoreParams &tp, uint64_t now_ms) const;
  bool ip_whitelisted(const std::string &ip) const;
  double colocation_factor(const PeerStats &ps) const;  // P6
  void track_ip(const PeerId &peer, const std::string &ip);
  void untrack_ip(const PeerId &peer, const std::string &ip);

  PeerScoreParams params_;
  std::unordered_map<PeerId, PeerStats> peers_;
  std::unordered_map<uint64_t, PeerId> peers_by_tag_;  // the keys of peers_, by peer_tag()
  std::unordered_map<std::string, std::set<PeerId>> peers_by_ip_;  // connected peers only
  std::unordered_map<MessageKey, DeliveryRecord, MessageKeyHash> deliveries_;
  std::deque<std::pair<uint64_t, MessageKey>> delivery_expiry_;  // (expire_ms, id's key), oldest first
  bool clock_started_ = false;
  uint64_t last_decay_ms_ = 0;
};

}  // namespace chorus::gossip

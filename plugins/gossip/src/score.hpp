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

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

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
  std::set<std::string> ip_colocation_whitelist;  // addresses exempt from P6 (e.g. "127.0.0.1")
  double behaviour_penalty_weight = -10;  // P7
  double behaviour_penalty_threshold = 0;
  double behaviour_penalty_decay = 0.9;
  uint64_t decay_interval_ms = 1000;
  double decay_to_zero = 0.01;
  uint64_t retain_score_ms = 3600 * 1000;  // a disconnected peer's counters are kept this long
};

struct PeerScoreThresholds {
  double gossip = -10;      // below: no gossip to or from the peer
  double publish = -50;     // below: our own messages are not flood-published to it
  double graylist = -80;    // below: its RPCs are ignored entirely
  double accept_px = 10;    // PX in a PRUNE is followed only from peers at or above this
  double opportunistic_graft = 1;  // median mesh score below this triggers opportunistic grafting
};

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

  // Peers come and go with their pubsub streams; `ip` is the remote address ("" if unknown).
  void add_peer(const PeerId &peer, const std::string &ip, uint64_t now_ms);
  void remove_peer(const PeerId &peer, uint64_t now_ms);

  // Mesh membership (P1, P3, P3b).
  void graft(const PeerId &peer, const std::string &topic, uint64_t now_ms);
  void prune(const PeerId &peer, const std::string &topic, uint64_t now_ms);

  // Message events. `validated` marks the first valid delivery of message_id; later copies from other
  // peers within mesh_message_deliveries_window count for them too (P3), after it as duplicates.
  void validate_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void deliver_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void duplicate_message(const PeerId &from, const Bytes &message_id, const std::string &topic, uint64_t now_ms);
  void reject_message(const PeerId &from, const Bytes &message_id, const std::string &topic, RejectReason reason,
                      uint64_t now_ms);

  // P7: protocol misbehaviour (GRAFT during backoff, broken IWANT promises, ...), `count` units.
  void add_penalty(const PeerId &peer, double count);
  // P5, set by the application.
  void set_app_score(const PeerId &peer, double value);

  // Decays the counters; call every decay_interval_ms (the router does it on heartbeats).
  void refresh(uint64_t now_ms);

  double score(const PeerId &peer, uint64_t now_ms) const;

  const PeerScoreParams &params() const { return params_; }

 private:
  struct TopicStats;
  struct PeerStats;
  struct DeliveryRecord;
  const TopicScoreParams *topic_params(const std::string &topic) const;

  PeerScoreParams params_;
  std::unordered_map<PeerId, PeerStats *> peers_;  // owned; see score.cpp
  std::unordered_map<std::string, std::set<PeerId>> peers_by_ip_;
  std::map<Bytes, DeliveryRecord *> deliveries_;   // owned; pruned by age
};

}  // namespace chorus::gossip

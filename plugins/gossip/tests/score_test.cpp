// PeerScore: every term of the v1.1 score function alone, with expected values computed by hand from
// the formula in score.hpp; then decay, the caps, retention across reconnects and the parameter checks.
#include "score.hpp"

#include <gtest/gtest.h>

#include <array>

namespace chorus::gossip {
namespace {

PeerId peer(uint8_t n) {
  std::array<uint8_t, 32> key{};
  key[0] = n;
  key[31] = 0x5a;
  return PeerId::from_ed25519(key.data());
}

Bytes msg(uint32_t n) { return Bytes{'m', static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)}; }

// Every weight zero: each test switches on the term it is about.
PeerScoreParams neutral() {
  PeerScoreParams p;
  p.topic_score_cap = 0;
  p.app_specific_weight = 0;
  p.ip_colocation_factor_weight = 0;
  p.behaviour_penalty_weight = 0;
  TopicScoreParams &t = p.default_topic;
  t.topic_weight = 1;
  t.time_in_mesh_weight = 0;
  t.first_message_deliveries_weight = 0;
  t.mesh_message_deliveries_weight = 0;
  t.mesh_failure_penalty_weight = 0;
  t.invalid_message_deliveries_weight = 0;
  return p;
}

const std::string kTopic = "CHORUS/coordination/v1";
const PeerId A = peer(1), B = peer(2), C = peer(3), D = peer(4), E = peer(5);

TEST(ScoreTest, UnknownPeerScoresZero) {
  PeerScore s(PeerScoreParams{});
  EXPECT_EQ(s.score(A, 0), 0);
  s.add_penalty(A, 5);  // ignored: never added
  s.set_app_score(A, -100);
  EXPECT_EQ(s.score(A, 0), 0);
  EXPECT_FALSE(s.tracked(A));
}

TEST(ScoreTest, P1TimeInMeshCountsWholeQuantaUpToTheCap) {
  PeerScoreParams p = neutral();
  p.default_topic.time_in_mesh_weight = 0.5;
  p.default_topic.time_in_mesh_quantum_ms = 1000;
  p.default_topic.time_in_mesh_cap = 10;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  EXPECT_EQ(s.score(A, 5000), 0);  // not in the mesh
  s.graft(A, kTopic, 1000);
  EXPECT_DOUBLE_EQ(s.score(A, 1000), 0);
  EXPECT_DOUBLE_EQ(s.score(A, 1999), 0);
  EXPECT_DOUBLE_EQ(s.score(A, 3999), 0.5 * 2);   // 2.999 s in mesh: 2 quanta
  EXPECT_DOUBLE_EQ(s.score(A, 61000), 0.5 * 10); // 60 quanta, capped at 10
  s.graft(A, kTopic, 50000);                     // already in the mesh: the graft time stays
  EXPECT_DOUBLE_EQ(s.score(A, 4000), 0.5 * 3);
  s.prune(A, kTopic, 70000);
  EXPECT_DOUBLE_EQ(s.score(A, 70000), 0);
}

TEST(ScoreTest, P2FirstDeliveriesAreCappedAtIncrementAndDecay) {
  PeerScoreParams p = neutral();
  p.default_topic.first_message_deliveries_weight = 2;
  p.default_topic.first_message_deliveries_cap = 3;
  p.default_topic.first_message_deliveries_decay = 0.5;
  p.decay_to_zero = 0.1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.add_peer(B, "", 0);
  for (uint32_t i = 0; i < 5; ++i) s.deliver_message(A, msg(i), kTopic, 10);
  EXPECT_DOUBLE_EQ(s.score(A, 10), 2 * 3.0);
  // Copies of A's messages from B are duplicates, not first deliveries.
  for (uint32_t i = 0; i < 5; ++i) s.duplicate_message(B, msg(i), kTopic, 11);
  EXPECT_DOUBLE_EQ(s.score(B, 11), 0);
  // A message validated once is first delivered once, however the router reports later copies.
  s.deliver_message(B, msg(0), kTopic, 12);
  EXPECT_DOUBLE_EQ(s.score(B, 12), 0);

  s.refresh(1000);  // 1000 ms after the clock started at add_peer: one decay
  EXPECT_DOUBLE_EQ(s.score(A, 1000), 2 * 1.5);
  s.refresh(4000);  // three more: 1.5 * 0.125 = 0.1875
  EXPECT_DOUBLE_EQ(s.score(A, 4000), 2 * 0.1875);
  s.refresh(5000);  // 0.09375 < decay_to_zero
  EXPECT_DOUBLE_EQ(s.score(A, 5000), 0);
}

TEST(ScoreTest, P3DeficitSquaredAfterActivationCountingNearFirstDeliveries) {
  PeerScoreParams p = neutral();
  TopicScoreParams &t = p.default_topic;
  t.mesh_message_deliveries_weight = -1;
  t.mesh_message_deliveries_threshold = 4;
  t.mesh_message_deliveries_cap = 10;
  t.mesh_message_deliveries_activation_ms = 5000;
  t.mesh_message_deliveries_window_ms = 10;
  t.mesh_message_deliveries_decay = 0.5;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.add_peer(B, "", 0);
  s.graft(A, kTopic, 0);

  s.deliver_message(A, msg(1), kTopic, 100);      // first delivery: 1
  EXPECT_DOUBLE_EQ(s.score(A, 5000), 0);          // not yet active (must exceed the activation)
  EXPECT_DOUBLE_EQ(s.score(A, 5001), -1 * 3 * 3);

  s.deliver_message(B, msg(2), kTopic, 6000);     // B first, A within the window: 2
  s.duplicate_message(A, msg(2), kTopic, 6010);
  EXPECT_DOUBLE_EQ(s.score(A, 6010), -1 * 2 * 2);
  s.duplicate_message(A, msg(2), kTopic, 6010);   // the same copy twice counts once
  EXPECT_DOUBLE_EQ(s.score(A, 6010), -4);

  s.deliver_message(B, msg(3), kTopic, 7000);     // A 11 ms late: a replay, not counted
  s.duplicate_message(A, msg(3), kTopic, 7011);
  EXPECT_DOUBLE_EQ(s.score(A, 7011), -4);

  // A's copy arrives while B's is being validated: credited when validation succeeds: 3.
  s.validate_message(B, msg(4), kTopic, 8000);
  s.duplicate_message(A, msg(4), kTopic, 8005);
  EXPECT_DOUBLE_EQ(s.score(A, 8005), -4);
  s.deliver_message(B, msg(4), kTopic, 9000);
  EXPECT_DOUBLE_EQ(s.score(A, 9000), -1 * 1 * 1);

  // B is not in the mesh: its deliveries never count for P3, and P3 never applies to it.
  EXPECT_DOUBLE_EQ(s.score(B, 9000), 0);

  for (uint32_t i = 10; i < 30; ++i) s.deliver_message(A, msg(i), kTopic, 9100);  // capped at 10
  EXPECT_DOUBLE_EQ(s.score(A, 9100), 0);
  s.refresh(10000);  // 10 decays since t=0: 10 * 0.5^10 < 0.01 -> 0, deficit 4
  EXPECT_DOUBLE_EQ(s.score(A, 10000), -1 * 4 * 4);
  // The cap held: a single decay from the cap (10 -> 5) leaves deficit 0, not 20 -> 10.
  for (uint32_t i = 30; i < 50; ++i) s.deliver_message(A, msg(i), kTopic, 10100);
  s.refresh(11000);
  EXPECT_DOUBLE_EQ(s.score(A, 11000), 0);
  s.refresh(12000);  // 2.5: deficit 1.5
  EXPECT_DOUBLE_EQ(s.score(A, 12000), -1 * 1.5 * 1.5);

  // Leaving the mesh ends P3 (its deficit moves to P3b, weighted 0 here).
  s.prune(A, kTopic, 12000);
  EXPECT_DOUBLE_EQ(s.score(A, 12000), 0);
}

TEST(ScoreTest, P3bMeshFailurePenaltyIsAddedAtPruneAndSticks) {
  PeerScoreParams p = neutral();
  TopicScoreParams &t = p.default_topic;
  t.mesh_message_deliveries_weight = 0;  // isolate P3b; its counter still runs
  t.mesh_message_deliveries_threshold = 4;
  t.mesh_message_deliveries_activation_ms = 1000;
  t.mesh_failure_penalty_weight = -2;
  t.mesh_failure_penalty_decay = 0.5;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.graft(A, kTopic, 0);
  s.deliver_message(A, msg(1), kTopic, 10);
  s.prune(A, kTopic, 500);  // pruned before activation: no penalty
  EXPECT_DOUBLE_EQ(s.score(A, 500), 0);

  s.graft(A, kTopic, 1000);
  s.prune(A, kTopic, 2001);  // active, 1 delivery: deficit 3
  EXPECT_DOUBLE_EQ(s.score(A, 2001), -2 * 9.0);
  EXPECT_DOUBLE_EQ(s.score(A, 100000), -2 * 9.0);  // sticky until decay
  s.prune(A, kTopic, 3000);                         // not in the mesh: nothing more
  EXPECT_DOUBLE_EQ(s.score(A, 3000), -18);
  s.refresh(3000);  // three decays: 9 / 8
  EXPECT_DOUBLE_EQ(s.score(A, 3000), -2 * 9.0 / 8);

  // A second failure adds to the first; the delivery counter decayed too (1 -> 0.125): deficit 3.875.
  s.graft(A, kTopic, 3000);
  s.prune(A, kTopic, 4500);
  EXPECT_DOUBLE_EQ(s.score(A, 4500), -2 * (9.0 / 8 + 3.875 * 3.875));
}

TEST(ScoreTest, P4InvalidDeliveriesSquaredOnlyForReasonsThatCount) {
  PeerScoreParams p = neutral();
  p.default_topic.invalid_message_deliveries_weight = -3;
  p.default_topic.invalid_message_deliveries_decay = 0.5;
  PeerScore s(p);
  for (const PeerId &x : {A, B, C, D}) s.add_peer(x, "", 0);

  // Not counted: the validator ignored it, our queue was full, the source is blacklisted.
  s.reject_message(A, msg(1), kTopic, RejectReason::kValidatorIgnore, 1);
  s.reject_message(A, msg(2), kTopic, RejectReason::kQueueFull, 1);
  s.reject_message(A, msg(3), kTopic, RejectReason::kBlacklisted, 1);
  EXPECT_DOUBLE_EQ(s.score(A, 1), 0);

  // Counted: each of the four reasons that mean the sender sent something invalid.
  s.reject_message(A, msg(4), kTopic, RejectReason::kInvalidSignature, 2);
  EXPECT_DOUBLE_EQ(s.score(A, 2), -3 * 1.0);
  s.reject_message(A, msg(5), kTopic, RejectReason::kMissingSignature, 2);
  s.reject_message(A, msg(6), kTopic, RejectReason::kValidatorReject, 2);
  s.reject_message(A, msg(7), kTopic, RejectReason::kSelfOrigin, 2);
  EXPECT_DOUBLE_EQ(s.score(A, 2), -3 * 16.0);
  s.refresh(1000);  // 4 -> 2
  EXPECT_DOUBLE_EQ(s.score(A, 1000), -3 * 4.0);
}

TEST(ScoreTest, P4ReachesEveryForwarderOfAMessageAValidatorRejected) {
  PeerScoreParams p = neutral();
  p.default_topic.invalid_message_deliveries_weight = -1;
  PeerScore s(p);
  for (const PeerId &x : {A, B, C, D}) s.add_peer(x, "", 0);
  s.validate_message(A, msg(1), kTopic, 10);
  s.duplicate_message(B, msg(1), kTopic, 11);  // arrived while A's copy was validated
  s.reject_message(A, msg(1), kTopic, RejectReason::kValidatorReject, 12);
  s.duplicate_message(C, msg(1), kTopic, 5000);  // forwarded later: still invalid
  EXPECT_DOUBLE_EQ(s.score(A, 5000), -1);
  EXPECT_DOUBLE_EQ(s.score(B, 5000), -1);
  EXPECT_DOUBLE_EQ(s.score(C, 5000), -1);

  // An ignored message: neither the sender nor its forwarders are penalised.
  s.validate_message(A, msg(2), kTopic, 20);
  s.reject_message(A, msg(2), kTopic, RejectReason::kValidatorIgnore, 21);
  s.duplicate_message(D, msg(2), kTopic, 22);
  EXPECT_DOUBLE_EQ(s.score(D, 22), 0);

  // A bad signature says nothing about the message id it claims: its honest copies are not tainted.
  s.reject_message(A, msg(3), kTopic, RejectReason::kInvalidSignature, 30);
  s.duplicate_message(D, msg(3), kTopic, 31);
  s.deliver_message(D, msg(4), kTopic, 31);
  EXPECT_DOUBLE_EQ(s.score(D, 31), 0);
  EXPECT_DOUBLE_EQ(s.score(A, 31), -1 * 2 * 2);
}

TEST(ScoreTest, P5AppSpecificScoreIsWeightedAndOutsideTheTopicCap) {
  PeerScoreParams p = neutral();
  p.app_specific_weight = 2;
  p.topic_score_cap = 1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.set_app_score(A, -3);
  EXPECT_DOUBLE_EQ(s.score(A, 0), -6);
  s.set_app_score(A, 5);
  EXPECT_DOUBLE_EQ(s.score(A, 0), 10);
}

TEST(ScoreTest, P6IpColocationSurplusSquared) {
  PeerScoreParams p = neutral();
  p.ip_colocation_factor_weight = -1;
  p.ip_colocation_factor_threshold = 2;
  PeerScore s(p);
  for (const PeerId &x : {A, B, C, D}) s.add_peer(x, "192.0.2.7", 0);
  s.add_peer(E, "192.0.2.8", 0);
  EXPECT_DOUBLE_EQ(s.score(A, 0), -1 * 2 * 2);  // 4 peers, threshold 2
  EXPECT_DOUBLE_EQ(s.score(D, 0), -4);
  EXPECT_DOUBLE_EQ(s.score(E, 0), 0);
  s.remove_peer(D, 0);
  EXPECT_DOUBLE_EQ(s.score(A, 0), -1);
  s.add_peer(C, "192.0.2.8", 0);  // C moves: 2 left on .7 (at the threshold), 2 on .8
  EXPECT_DOUBLE_EQ(s.score(A, 0), 0);
  EXPECT_DOUBLE_EQ(s.score(E, 0), 0);
  // Unknown addresses are never colocated.
  PeerScore u(p);
  for (const PeerId &x : {A, B, C, D}) u.add_peer(x, "", 0);
  EXPECT_DOUBLE_EQ(u.score(A, 0), 0);
}

TEST(ScoreTest, P6WhitelistByAddressOrPrefix) {
  PeerScoreParams p = neutral();
  p.ip_colocation_factor_weight = -1;
  p.ip_colocation_factor_threshold = 1;
  auto score_with = [&](std::set<std::string> whitelist, const std::string &ip) {
    PeerScoreParams q = p;
    q.ip_colocation_whitelist = std::move(whitelist);
    PeerScore s(q);
    for (const PeerId &x : {A, B, C}) s.add_peer(x, ip, 0);
    return s.score(A, 0);
  };
  EXPECT_DOUBLE_EQ(score_with({}, "127.0.0.1"), -4);
  EXPECT_DOUBLE_EQ(score_with({"127.0.0.1"}, "127.0.0.1"), 0);
  EXPECT_DOUBLE_EQ(score_with({"127.0.0.2"}, "127.0.0.1"), -4);
  EXPECT_DOUBLE_EQ(score_with({"127.0.0.0/8"}, "127.3.2.1"), 0);
  EXPECT_DOUBLE_EQ(score_with({"10.0.0.0/8"}, "127.3.2.1"), -4);
  EXPECT_DOUBLE_EQ(score_with({"192.0.2.128/25"}, "192.0.2.200"), 0);
  EXPECT_DOUBLE_EQ(score_with({"192.0.2.128/25"}, "192.0.2.100"), -4);
  EXPECT_DOUBLE_EQ(score_with({"fd00::/8"}, "fd12::1"), 0);
  EXPECT_DOUBLE_EQ(score_with({"fd00::/8"}, "fe80::1"), -4);
  EXPECT_DOUBLE_EQ(score_with({"127.0.0.0/8"}, "::1"), -4);  // families never mix
}

TEST(ScoreTest, P7BehaviourPenaltySurplusOverThresholdSquared) {
  PeerScoreParams p = neutral();
  p.behaviour_penalty_weight = -2;
  p.behaviour_penalty_threshold = 1;
  p.behaviour_penalty_decay = 0.5;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.add_penalty(A, 1);
  EXPECT_DOUBLE_EQ(s.score(A, 0), 0);  // at the threshold
  s.add_penalty(A, 2);
  EXPECT_DOUBLE_EQ(s.score(A, 0), -2 * 2 * 2);
  s.refresh(1000);  // 3 -> 1.5
  EXPECT_DOUBLE_EQ(s.score(A, 1000), -2 * 0.5 * 0.5);
}

TEST(ScoreTest, TopicWeightsAndTheCapOnThePositiveTopicSum) {
  PeerScoreParams p = neutral();
  p.score_all_topics = false;
  TopicScoreParams t = p.default_topic;
  t.first_message_deliveries_weight = 1;
  t.first_message_deliveries_cap = 100;
  t.invalid_message_deliveries_weight = -1;
  t.topic_weight = 2;
  p.topics["a"] = t;
  t.topic_weight = 0.5;
  p.topics["b"] = t;
  p.app_specific_weight = 1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  for (uint32_t i = 0; i < 3; ++i) s.deliver_message(A, msg(i), "a", 1);
  for (uint32_t i = 10; i < 14; ++i) s.deliver_message(A, msg(i), "b", 1);
  for (uint32_t i = 20; i < 30; ++i) s.deliver_message(A, msg(i), "unscored", 1);
  s.reject_message(A, msg(40), "unscored", RejectReason::kValidatorReject, 1);
  EXPECT_DOUBLE_EQ(s.score(A, 1), 2 * 3 + 0.5 * 4);

  p.topic_score_cap = 5;
  PeerScore capped(p);
  capped.add_peer(A, "", 0);
  for (uint32_t i = 0; i < 3; ++i) capped.deliver_message(A, msg(i), "a", 1);
  for (uint32_t i = 10; i < 14; ++i) capped.deliver_message(A, msg(i), "b", 1);
  EXPECT_DOUBLE_EQ(capped.score(A, 1), 5);
  capped.set_app_score(A, 10);  // P5 is outside the cap
  EXPECT_DOUBLE_EQ(capped.score(A, 1), 15);
  capped.set_app_score(A, 0);
  // The cap bounds rewards, never penalties: 8 - 2 * 25 = -42.
  for (uint32_t i = 50; i < 55; ++i) capped.reject_message(A, msg(i), "a", RejectReason::kInvalidSignature, 1);
  EXPECT_DOUBLE_EQ(capped.score(A, 1), 8 - 2 * 25.0);
}

TEST(ScoreTest, ScoredTopicsPerPeerAreBoundedWithAnOverflowBucket) {
  PeerScoreParams p = neutral();
  p.max_scored_topics_per_peer = 2;
  p.default_topic.invalid_message_deliveries_weight = -1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  for (const char *topic : {"t1", "t2", "t3", "t4", "t5"})
    s.reject_message(A, msg(1), topic, RejectReason::kInvalidSignature, 1);
  // t1 and t2 alone (1 each), t3..t5 together in the overflow bucket (3 squared).
  EXPECT_DOUBLE_EQ(s.score(A, 1), -(1 + 1 + 9.0));
}

TEST(ScoreTest, DecayCatchesUpOnMissedIntervals) {
  PeerScoreParams p = neutral();
  p.default_topic.first_message_deliveries_weight = 1;
  p.default_topic.first_message_deliveries_cap = 100;
  p.default_topic.first_message_deliveries_decay = 0.5;
  p.decay_interval_ms = 1000;
  PeerScore s(p);
  s.add_peer(A, "", 50000);  // starts the decay clock
  for (uint32_t i = 0; i < 8; ++i) s.deliver_message(A, msg(i), kTopic, 50000);
  s.refresh(50999);
  EXPECT_DOUBLE_EQ(s.score(A, 50999), 8);
  s.refresh(53500);  // three intervals: 1
  EXPECT_DOUBLE_EQ(s.score(A, 53500), 1);
  s.refresh(53999);  // the 4th interval ends at 54000, not 54500
  EXPECT_DOUBLE_EQ(s.score(A, 53999), 1);
  s.refresh(54000);
  EXPECT_DOUBLE_EQ(s.score(A, 54000), 0.5);
}

TEST(ScoreTest, ReconnectingKeepsANegativeScore) {
  PeerScoreParams p = neutral();
  p.default_topic.first_message_deliveries_weight = 1;
  p.default_topic.invalid_message_deliveries_weight = -1;
  p.default_topic.invalid_message_deliveries_decay = 0.5;
  p.behaviour_penalty_weight = -1;
  p.behaviour_penalty_decay = 0.5;
  p.retain_score_ms = 10000;
  PeerScore s(p);
  s.add_peer(A, "192.0.2.1", 0);
  s.deliver_message(A, msg(1), kTopic, 1);
  s.deliver_message(A, msg(2), kTopic, 1);
  s.reject_message(A, msg(3), kTopic, RejectReason::kInvalidSignature, 1);
  s.reject_message(A, msg(4), kTopic, RejectReason::kInvalidSignature, 1);
  s.add_penalty(A, 1);
  EXPECT_DOUBLE_EQ(s.score(A, 1), 2 - 4 - 1);

  s.remove_peer(A, 2);
  EXPECT_TRUE(s.tracked(A));
  EXPECT_DOUBLE_EQ(s.score(A, 2), -4 - 1);  // first deliveries are forgotten on disconnect
  s.add_peer(A, "192.0.2.1", 3);
  EXPECT_DOUBLE_EQ(s.score(A, 3), -5);      // nothing gained by reconnecting

  // Retained counters keep decaying while the peer is away.
  s.remove_peer(A, 4);
  s.refresh(1000);
  EXPECT_DOUBLE_EQ(s.score(A, 1000), -1 * 1 * 1 - 0.5 * 0.5);  // P4 2 -> 1, P7 1 -> 0.5
  s.refresh(9999 + 4);
  EXPECT_TRUE(s.tracked(A));
  s.refresh(10000 + 4);  // retention over
  EXPECT_FALSE(s.tracked(A));
  s.add_peer(A, "192.0.2.1", 10005);
  EXPECT_DOUBLE_EQ(s.score(A, 10005), 0);
}

TEST(ScoreTest, APositiveScoreIsNotRetained) {
  PeerScoreParams p = neutral();
  p.default_topic.first_message_deliveries_weight = 1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.deliver_message(A, msg(1), kTopic, 1);
  s.remove_peer(A, 2);
  EXPECT_FALSE(s.tracked(A));
  EXPECT_EQ(s.tracked_peers(), 0u);
}

TEST(ScoreTest, DisconnectingFromTheMeshWithADeficitIsAMeshFailure) {
  PeerScoreParams p = neutral();
  TopicScoreParams &t = p.default_topic;
  t.mesh_message_deliveries_weight = -1;
  t.mesh_message_deliveries_threshold = 2;
  t.mesh_message_deliveries_activation_ms = 100;
  t.mesh_failure_penalty_weight = -1;
  PeerScore s(p);
  s.add_peer(A, "", 0);
  s.graft(A, kTopic, 0);
  EXPECT_DOUBLE_EQ(s.score(A, 200), -4);  // P3
  s.remove_peer(A, 200);
  EXPECT_DOUBLE_EQ(s.score(A, 200), -4);  // now P3b, out of the mesh
  s.add_peer(A, "", 300);
  EXPECT_DOUBLE_EQ(s.score(A, 100000), -4);  // back, but not in the mesh until grafted again
}

TEST(ScoreTest, RetainedPeersDoNotCountForColocation) {
  PeerScoreParams p = neutral();
  p.ip_colocation_factor_weight = -1;
  p.ip_colocation_factor_threshold = 1;
  p.behaviour_penalty_weight = -1;
  PeerScore s(p);
  s.add_peer(A, "192.0.2.1", 0);
  s.add_peer(B, "192.0.2.1", 0);
  s.add_penalty(B, 1);
  EXPECT_DOUBLE_EQ(s.score(A, 0), -1);
  s.remove_peer(B, 1);  // negative: retained, but gone from the address
  EXPECT_TRUE(s.tracked(B));
  EXPECT_DOUBLE_EQ(s.score(A, 1), 0);
  EXPECT_DOUBLE_EQ(s.score(B, 1), -1);
}

TEST(ScoreTest, DefaultParametersScoreAnHonestMeshPeerPositively) {
  PeerScore s(PeerScoreParams{});
  s.add_peer(A, "127.0.0.1", 0);
  s.graft(A, kTopic, 0);
  for (uint32_t i = 0; i < 10; ++i) s.deliver_message(A, msg(i), kTopic, 10);
  // P1 0.01 * 100 quanta + P2 10.
  EXPECT_DOUBLE_EQ(s.score(A, 100000), 0.01 * 100 + 10);
  std::string why;
  EXPECT_TRUE(validate_score_params(PeerScoreParams{}, &why)) << why;
  EXPECT_TRUE(validate_score_thresholds(PeerScoreThresholds{}, &why)) << why;
}

TEST(ScoreTest, ParameterChecks) {
  std::string why;
  EXPECT_TRUE(validate_score_params(neutral(), &why)) << why;  // all weights off

  PeerScoreParams p;
  p.default_topic.invalid_message_deliveries_weight = 1;
  EXPECT_FALSE(validate_score_params(p, &why));
  EXPECT_NE(why.find("invalid_message_deliveries_weight"), std::string::npos);

  p = PeerScoreParams{};
  p.topics["x"].first_message_deliveries_decay = 1.5;
  EXPECT_FALSE(validate_score_params(p, &why));
  EXPECT_NE(why.find("topic x"), std::string::npos);

  p = PeerScoreParams{};
  p.ip_colocation_whitelist = {"not-an-ip"};
  EXPECT_FALSE(validate_score_params(p, &why));
  p.ip_colocation_whitelist = {"10.0.0.0/33"};
  EXPECT_FALSE(validate_score_params(p, &why));
  p.ip_colocation_whitelist = {"10.0.0.0/8", "::1"};
  EXPECT_TRUE(validate_score_params(p, &why)) << why;

  p = PeerScoreParams{};
  p.decay_to_zero = 0;
  EXPECT_FALSE(validate_score_params(p, &why));

  PeerScoreThresholds t;
  t.publish = t.gossip + 1;
  EXPECT_FALSE(validate_score_thresholds(t, &why));
  t = PeerScoreThresholds{};
  t.accept_px = -1;
  EXPECT_FALSE(validate_score_thresholds(t, &why));
  t = PeerScoreThresholds{0, 0, 0, 0, 0};  // neutral scoring for interop
  EXPECT_TRUE(validate_score_thresholds(t, &why)) << why;
}

}  // namespace
}  // namespace chorus::gossip

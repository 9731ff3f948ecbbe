// The recheck schedule (kad/recheck.hpp): due times, the per-peer rate limit, the backoff and its
// cap, dropping after max_failures, the bound on tracked peers.
#include <gtest/gtest.h>

#include <random>

#include "kad/recheck.hpp"

namespace chorus::dht {
namespace {

PeerId peer(uint8_t seed) {
  uint8_t pk[32];
  std::mt19937_64 rng(seed);
  for (uint8_t &b : pk) b = static_cast<uint8_t>(rng());
  return PeerId::from_ed25519(pk);
}

RecheckOptions opts() {
  RecheckOptions o;
  o.min_interval_ms = 1000;
  o.max_interval_ms = 8000;
  o.max_failures = 5;
  o.max_peers = 3;
  return o;
}

TEST(RecheckScheduleTest, LostPeerIsDueAfterTheShortInterval) {
  RecheckSchedule r(opts());
  const PeerId a = peer(1);
  EXPECT_FALSE(r.next_due_ms());
  r.lost(a, 100);
  EXPECT_EQ(r.next_due_ms(), 1100);
  EXPECT_TRUE(r.take_due(1099, 16).empty());
  EXPECT_EQ(r.take_due(1100, 16), std::vector<PeerId>{a});
  EXPECT_FALSE(r.next_due_ms()) << "in flight: not due again until answered or failed";
  EXPECT_TRUE(r.take_due(5000, 16).empty());
  r.answered(a);
  EXPECT_FALSE(r.contains(a));
}

TEST(RecheckScheduleTest, FailuresBackOffUpToTheCapThenDrop) {
  RecheckSchedule r(opts());
  const PeerId a = peer(2);
  r.lost(a, 0);
  int64_t now = 1000;
  std::vector<int64_t> waits;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(r.take_due(now, 16).size(), 1u) << i;
    const bool again = r.failed(a, now);
    if (!again) {
      EXPECT_EQ(i, 4) << "dropped after max_failures";
      break;
    }
    waits.push_back(*r.next_due_ms() - now);
    now = *r.next_due_ms();
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{1000, 2000, 4000, 8000}));
  EXPECT_FALSE(r.contains(a));
  EXPECT_FALSE(r.next_due_ms());
}

TEST(RecheckScheduleTest, KickIsPromptButRateLimited) {
  RecheckSchedule r(opts());
  const PeerId a = peer(3);
  // Never checked: a kick makes it due at once.
  r.kick(a, 50);
  EXPECT_EQ(r.take_due(50, 16).size(), 1u);
  ASSERT_TRUE(r.failed(a, 60));
  // Kicks within min_interval of the last check (at 50) wait for it; the backoff starts over.
  r.kick(a, 70);
  EXPECT_EQ(r.next_due_ms(), 1050);
  r.kick(a, 900);
  EXPECT_EQ(r.next_due_ms(), 1050);
  EXPECT_TRUE(r.take_due(1049, 16).empty());
  ASSERT_EQ(r.take_due(1050, 16).size(), 1u);
  // A kick while a check is in flight adds no second check.
  r.kick(a, 1060);
  EXPECT_TRUE(r.take_due(10000, 16).empty());
  ASSERT_TRUE(r.failed(a, 1100));
  EXPECT_EQ(r.next_due_ms(), 2100) << "the kick reset the backoff to min_interval";
  // A kick brings a peer in a long backoff forward (not before min_interval after its last check).
  ASSERT_EQ(r.take_due(2100, 16).size(), 1u);
  ASSERT_TRUE(r.failed(a, 2100));
  ASSERT_EQ(r.take_due(4100, 16).size(), 1u);
  ASSERT_TRUE(r.failed(a, 4100));
  EXPECT_EQ(r.next_due_ms(), 8100);
  r.kick(a, 4200);
  EXPECT_EQ(r.next_due_ms(), 5100);
}

TEST(RecheckScheduleTest, ADroppedPeersRequestsAreIgnoredForQuietMs) {
  RecheckOptions o = opts();
  o.max_failures = 1;
  o.quiet_ms = 10000;
  RecheckSchedule r(o);
  const PeerId a = peer(12);
  EXPECT_TRUE(r.kick(a, 0));
  ASSERT_EQ(r.take_due(0, 16).size(), 1u);
  EXPECT_FALSE(r.failed(a, 100));  // dropped at 100
  EXPECT_FALSE(r.kick(a, 5000)) << "a client-mode peer calling again is not checked again at once";
  EXPECT_FALSE(r.contains(a));
  EXPECT_TRUE(r.kick(a, 10100));
  EXPECT_EQ(r.next_due_ms(), 10100);
  // Stronger evidence (it was in the table, or identify lists kad) ends the quiet time.
  ASSERT_EQ(r.take_due(10100, 16).size(), 1u);
  EXPECT_FALSE(r.failed(a, 10200));
  r.lost(a, 10300);
  EXPECT_EQ(r.next_due_ms(), 11300);
  r.answered(a);
  EXPECT_TRUE(r.kick(a, 11400));
}

TEST(RecheckScheduleTest, LostKeepsAnExistingSchedule) {
  RecheckSchedule r(opts());
  const PeerId a = peer(4);
  r.kick(a, 0);
  r.lost(a, 0);
  EXPECT_EQ(r.next_due_ms(), 0);
}

TEST(RecheckScheduleTest, TakeDueIsBoundedAndEarliestFirst) {
  RecheckSchedule r(opts());
  const PeerId a = peer(5), b = peer(6), c = peer(7);
  r.lost(c, 30);
  r.lost(a, 10);
  r.lost(b, 20);
  EXPECT_EQ(r.take_due(5000, 2), (std::vector<PeerId>{a, b}));
  EXPECT_EQ(r.take_due(5000, 2), std::vector<PeerId>{c});
}

TEST(RecheckScheduleTest, TracksAtMostMaxPeers) {
  RecheckSchedule r(opts());
  r.lost(peer(8), 0);
  r.lost(peer(9), 10);
  r.lost(peer(10), 20);
  r.lost(peer(11), 5);  // full: the one due last (peer 10) is forgotten
  EXPECT_EQ(r.size(), 3u);
  EXPECT_FALSE(r.contains(peer(10)));
  EXPECT_TRUE(r.contains(peer(11)));
  r.forget(peer(11));
  EXPECT_EQ(r.size(), 2u);
}

}  // namespace
}  // namespace chorus::dht

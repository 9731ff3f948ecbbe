// The routing table: bucket placement by prefix length, k per bucket with least-recently-seen
// eviction candidates, closest() against a brute-force sort, refresh bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "kad/routing_table.hpp"

namespace chorus::dht {
namespace {

PeerId random_peer(std::mt19937_64 &rng) {
  uint8_t pk[32];
  for (uint8_t &b : pk) b = static_cast<uint8_t>(rng());
  return PeerId::from_ed25519(pk);
}

// A peer that lands in the given bucket of `table` (searching random peers; fine for small buckets).
PeerId peer_in_bucket(const RoutingTable &table, int bucket, std::mt19937_64 &rng) {
  KadId self = KadId::of_peer(table.self());
  for (;;) {
    PeerId p = random_peer(rng);
    if (common_prefix_len(self, KadId::of_peer(p)) == bucket && !table.contains(p)) return p;
  }
}

TEST(RoutingTableTest, SelfIsRefused) {
  std::mt19937_64 rng(1);
  PeerId self = random_peer(rng);
  RoutingTable t(self);
  EXPECT_EQ(t.add(self, 1), RoutingTable::AddResult::kSelf);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.contains(self));
  EXPECT_EQ(t.k(), 20u);
  EXPECT_EQ(t.self(), self);
}

TEST(RoutingTableTest, AddUpdateRemove) {
  std::mt19937_64 rng(2);
  RoutingTable t(random_peer(rng));
  PeerId p = random_peer(rng);
  EXPECT_EQ(t.add(p, 100), RoutingTable::AddResult::kAdded);
  EXPECT_TRUE(t.contains(p));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.add(p, 200), RoutingTable::AddResult::kUpdated);
  EXPECT_EQ(t.size(), 1u);
  auto peers = t.peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].id, p);
  EXPECT_EQ(peers[0].kad, KadId::of_peer(p));
  EXPECT_EQ(peers[0].added_ms, 100);
  EXPECT_EQ(peers[0].last_seen_ms, 200);
  t.mark_seen(p, 300);
  EXPECT_EQ(t.peers()[0].last_seen_ms, 300);
  EXPECT_TRUE(t.remove(p));
  EXPECT_FALSE(t.remove(p));
  EXPECT_FALSE(t.contains(p));
  EXPECT_EQ(t.size(), 0u);
  t.mark_seen(p, 400);  // unknown peers are not added by mark_seen
  EXPECT_FALSE(t.contains(p));
}

TEST(RoutingTableTest, PeersLandInTheBucketOfTheirPrefixLength) {
  std::mt19937_64 rng(3);
  RoutingTable t(random_peer(rng));
  KadId self = KadId::of_peer(t.self());
  for (int i = 0; i < 500; ++i) t.add(random_peer(rng), i);
  std::vector<size_t> counts(256, 0);
  for (const RoutingPeer &p : t.peers()) ++counts[common_prefix_len(self, p.kad)];
  auto buckets = t.buckets();
  ASSERT_FALSE(buckets.empty());
  for (size_t i = 0; i < buckets.size(); ++i) {
    EXPECT_EQ(buckets[i].index, static_cast<int>(i));
    EXPECT_EQ(buckets[i].peers, counts[i]) << i;
    EXPECT_LE(buckets[i].peers, t.k());
  }
  EXPECT_GT(buckets.back().peers, 0u);  // the deepest listed bucket is non-empty
  for (size_t i = buckets.size(); i < 256; ++i) EXPECT_EQ(counts[i], 0u);
  EXPECT_EQ(buckets[0].peers, t.k());  // half of all random peers fall into bucket 0
}

TEST(RoutingTableTest, FullBucketNamesTheLeastRecentlySeen) {
  std::mt19937_64 rng(4);
  RoutingTable t(random_peer(rng), 3);
  PeerId a = peer_in_bucket(t, 0, rng), b = peer_in_bucket(t, 0, rng), c = peer_in_bucket(t, 0, rng);
  ASSERT_EQ(t.add(a, 1), RoutingTable::AddResult::kAdded);
  ASSERT_EQ(t.add(b, 2), RoutingTable::AddResult::kAdded);
  ASSERT_EQ(t.add(c, 3), RoutingTable::AddResult::kAdded);
  PeerId d = peer_in_bucket(t, 0, rng);
  PeerId evict;
  EXPECT_EQ(t.add(d, 4, &evict), RoutingTable::AddResult::kBucketFull);
  EXPECT_EQ(evict, a);
  EXPECT_FALSE(t.contains(d));
  EXPECT_EQ(t.add(d, 4), RoutingTable::AddResult::kBucketFull);  // evict may be null
  // a answers: b becomes the candidate.
  t.mark_seen(a, 5);
  EXPECT_EQ(t.add(d, 6, &evict), RoutingTable::AddResult::kBucketFull);
  EXPECT_EQ(evict, b);
  // b failed its ping: the node removes it and the newcomer gets the place.
  EXPECT_TRUE(t.remove(b));
  EXPECT_EQ(t.add(d, 7), RoutingTable::AddResult::kAdded);
  EXPECT_EQ(t.size(), 3u);
  // Another bucket is unaffected by bucket 0 being full.
  EXPECT_EQ(t.add(peer_in_bucket(t, 1, rng), 8), RoutingTable::AddResult::kAdded);
  EXPECT_EQ(t.add(d, 9, &evict), RoutingTable::AddResult::kUpdated);
  EXPECT_EQ(t.add(d, 10, &evict), RoutingTable::AddResult::kUpdated);
  EXPECT_EQ(t.add(peer_in_bucket(t, 0, rng), 11, &evict), RoutingTable::AddResult::kBucketFull);
  EXPECT_EQ(evict, c);
}

TEST(RoutingTableTest, ClosestMatchesBruteForceWithTenThousandPeers) {
  std::mt19937_64 rng(5);
  RoutingTable t(random_peer(rng));
  for (int i = 0; i < 10000; ++i) t.add(random_peer(rng), i);
  std::vector<RoutingPeer> all = t.peers();
  ASSERT_EQ(all.size(), t.size());
  ASSERT_GT(all.size(), 100u);
  for (int round = 0; round < 50; ++round) {
    // Random targets, and targets near our own id (where the deep, sparse buckets matter).
    KadId target = round % 2 == 0 ? KadId::of_peer(random_peer(rng))
                                  : t.random_id_in_bucket(static_cast<int>(rng() % 12), rng);
    std::vector<RoutingPeer> sorted = all;
    std::sort(sorted.begin(), sorted.end(),
              [&](const RoutingPeer &a, const RoutingPeer &b) { return distance(a.kad, target) < distance(b.kad, target); });
    for (size_t count : {size_t{1}, size_t{3}, size_t{20}}) {
      std::vector<PeerId> got = t.closest(target, count);
      ASSERT_EQ(got.size(), count);
      for (size_t i = 0; i < count; ++i) EXPECT_EQ(got[i], sorted[i].id) << "round " << round << " i " << i;
    }
  }
  EXPECT_EQ(t.closest(KadId{}, all.size() + 10).size(), all.size());
  EXPECT_TRUE(t.closest(KadId{}, 0).empty());
}

TEST(RoutingTableTest, ClosestOfAnEmptyTable) {
  std::mt19937_64 rng(6);
  RoutingTable t(random_peer(rng));
  EXPECT_TRUE(t.closest(KadId{}, 20).empty());
  EXPECT_TRUE(t.buckets().empty());
  EXPECT_TRUE(t.buckets_to_refresh(1000, 10).empty());
}

TEST(RoutingTableTest, RefreshBookkeeping) {
  std::mt19937_64 rng(7);
  RoutingTable t(random_peer(rng));
  t.add(peer_in_bucket(t, 0, rng), 0);
  t.add(peer_in_bucket(t, 2, rng), 0);
  // Buckets 0..2 (1 is empty but shallower than the deepest) are due: never refreshed.
  EXPECT_EQ(t.buckets_to_refresh(600000, 600000), (std::vector<int>{0, 1, 2}));
  t.mark_refreshed(1, 600000);
  EXPECT_EQ(t.buckets_to_refresh(600000, 600000), (std::vector<int>{0, 2}));
  t.mark_refreshed(0, 600000);
  t.mark_refreshed(2, 700000);
  EXPECT_TRUE(t.buckets_to_refresh(1199999, 600000).empty());
  EXPECT_EQ(t.buckets_to_refresh(1200000, 600000), (std::vector<int>{0, 1}));
  EXPECT_EQ(t.buckets_to_refresh(1300000, 600000), (std::vector<int>{0, 1, 2}));
  auto infos = t.buckets();
  ASSERT_EQ(infos.size(), 3u);
  EXPECT_EQ(infos[1].peers, 0u);
  EXPECT_EQ(infos[2].last_refreshed_ms, 700000);
  t.mark_refreshed(-1, 1);  // out of range: ignored
  t.mark_refreshed(400, 1);
}

TEST(RoutingTableTest, RandomIdInBucketHasExactlyThatPrefixLength) {
  std::mt19937_64 rng(8);
  RoutingTable t(random_peer(rng));
  KadId self = KadId::of_peer(t.self());
  for (int bucket = 0; bucket < 256; ++bucket) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(common_prefix_len(self, t.random_id_in_bucket(bucket, rng)), bucket) << bucket;
  }
  // The bits after the prefix are random.
  EXPECT_NE(t.random_id_in_bucket(3, rng), t.random_id_in_bucket(3, rng));
}

}  // namespace
}  // namespace chorus::dht

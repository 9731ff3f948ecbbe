// The iterative lookup: unit tests of the engine's rules, then lookups on a simulated network of 500
// nodes driven in-process with a fake clock (no sockets, no sleeping).
#include "kad/query.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <ostream>
#include <tuple>
#include <limits>
#include <queue>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "kad/key.hpp"

namespace chorus::p2p {
// Readable ids in failure messages.
void PrintTo(const PeerId &id, std::ostream *os) { *os << id.to_base58().substr(0, 16); }
}  // namespace chorus::p2p

namespace chorus::dht {
namespace {

PeerId random_peer(std::mt19937_64 &rng) {
  uint8_t pk[32];
  for (auto &b : pk) b = static_cast<uint8_t>(rng());
  return PeerId::from_ed25519(pk);
}

KadId random_kad(std::mt19937_64 &rng) {
  KadId id;
  for (auto &b : id.bytes) b = static_cast<uint8_t>(rng());
  return id;
}

std::vector<PeerId> sorted_by_distance(std::vector<PeerId> peers, const KadId &target) {
  std::sort(peers.begin(), peers.end(), [&](const PeerId &a, const PeerId &b) {
    return closer(KadId::of_peer(a), KadId::of_peer(b), target);
  });
  return peers;
}

std::vector<PeerId> peers_without(std::vector<PeerId> peers, const PeerId &drop) {
  peers.erase(std::remove(peers.begin(), peers.end(), drop), peers.end());
  return peers;
}

// ---------------------------------------------------------------------------------------------------
// The engine's rules, one at a time.

class LookupTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng{7};
  PeerId self = random_peer(rng);
  KadId target = random_kad(rng);

  std::vector<PeerId> peers(size_t n) {
    std::vector<PeerId> out;
    for (size_t i = 0; i < n; ++i) out.push_back(random_peer(rng));
    return out;
  }
};

TEST_F(LookupTest, NoSeedsEndsExhausted) {
  Lookup q(self, target, {}, 0);
  EXPECT_TRUE(q.next_requests(0).empty());
  EXPECT_TRUE(q.done());
  EXPECT_EQ(q.result().end, LookupEnd::kExhausted);
  EXPECT_TRUE(q.result().closest.empty());
}

TEST_F(LookupTest, AsksAlphaClosestFirstAndNeverSelf) {
  auto seeds = peers(10);
  seeds.push_back(self);
  LookupOptions o;
  o.alpha = 3;
  Lookup q(self, target, o, 0);
  q.seed(seeds);
  auto asked = q.next_requests(0);
  ASSERT_EQ(asked.size(), 3u);
  auto order = sorted_by_distance(peers_without(seeds, self), target);
  EXPECT_EQ(asked, std::vector<PeerId>(order.begin(), order.begin() + 3));
  EXPECT_TRUE(q.next_requests(0).empty()) << "alpha already in flight";
  EXPECT_EQ(q.in_flight(), 3u);
}

TEST_F(LookupTest, ConvergesWhenKClosestAnsweredAndIgnoresLateReplies) {
  LookupOptions o;
  o.k = 4;
  o.alpha = 2;
  Lookup q(self, target, o, 0);
  auto seeds = peers(6);
  q.seed(seeds);
  auto order = sorted_by_distance(seeds, target);
  std::vector<PeerId> asked_all;
  int64_t now = 0;
  while (!q.done()) {
    auto asked = q.next_requests(now);
    for (const PeerId &p : asked) {
      asked_all.push_back(p);
      q.on_reply(p, {}, ++now);
    }
    ASSERT_LT(now, 100) << "no progress";
  }
  EXPECT_EQ(q.result().end, LookupEnd::kConverged);
  EXPECT_EQ(q.result().closest, std::vector<PeerId>(order.begin(), order.begin() + 4));
  EXPECT_EQ(asked_all.size(), 4u) << "the two farther seeds are never needed";
  // A reply from someone never asked changes nothing.
  q.on_reply(order[5], peers(3), now);
  EXPECT_EQ(q.result().stats.late_replies, 1u);
}

TEST_F(LookupTest, FailedPeerIsReplacedByTheNextClosest) {
  LookupOptions o;
  o.k = 2;
  o.alpha = 1;
  Lookup q(self, target, o, 0);
  auto seeds = sorted_by_distance(peers(3), target);
  q.seed(seeds);
  ASSERT_EQ(q.next_requests(0), std::vector<PeerId>{seeds[0]});
  q.on_failure(seeds[0], 1);
  ASSERT_EQ(q.next_requests(1), std::vector<PeerId>{seeds[1]});
  q.on_reply(seeds[1], {seeds[0]}, 2);  // the failed peer offered again: never asked twice
  ASSERT_EQ(q.next_requests(2), std::vector<PeerId>{seeds[2]});
  q.on_reply(seeds[2], {}, 3);
  ASSERT_TRUE(q.done());
  auto r = q.result();
  EXPECT_EQ(r.end, LookupEnd::kConverged);
  EXPECT_EQ(r.closest, (std::vector<PeerId>{seeds[1], seeds[2]}));
  EXPECT_EQ(r.stats.failures, 1u);
  EXPECT_EQ(r.stats.queried, 3u);
}

TEST_F(LookupTest, PerPeerTimeoutAtTickAndWakeup) {
  LookupOptions o;
  o.k = 1;
  o.alpha = 1;
  o.per_peer_timeout_ms = 100;
  Lookup q(self, target, o, 1000);
  auto seeds = sorted_by_distance(peers(2), target);
  q.seed(seeds);
  ASSERT_EQ(q.next_requests(1000), std::vector<PeerId>{seeds[0]});
  EXPECT_EQ(q.next_wakeup_ms(), 1100);
  q.tick(1099);
  EXPECT_EQ(q.in_flight(), 1u);
  q.tick(1100);
  EXPECT_EQ(q.in_flight(), 0u);
  EXPECT_EQ(q.result().stats.timeouts, 1u);
  ASSERT_EQ(q.next_requests(1100), std::vector<PeerId>{seeds[1]});
  q.on_reply(seeds[0], {}, 1101);  // too late: counted, not used
  EXPECT_EQ(q.result().stats.late_replies, 1u);
  q.on_reply(seeds[1], {}, 1102);
  EXPECT_TRUE(q.done());
  EXPECT_EQ(q.result().closest, std::vector<PeerId>{seeds[1]});
  EXPECT_EQ(q.result().stats.elapsed_ms, 102);
}

TEST_F(LookupTest, DeadlineEndsTheLookup) {
  LookupOptions o;
  o.deadline_ms = 500;
  o.per_peer_timeout_ms = 10'000;
  Lookup q(self, target, o, 0);
  auto seeds = peers(5);
  q.seed(seeds);
  auto asked = q.next_requests(0);
  q.on_reply(asked[0], {}, 10);
  EXPECT_EQ(q.next_wakeup_ms(), 500);
  q.tick(500);
  ASSERT_TRUE(q.done());
  auto r = q.result();
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.end, LookupEnd::kDeadline);
  EXPECT_EQ(r.closest, std::vector<PeerId>{asked[0]});
  EXPECT_EQ(r.stats.elapsed_ms, 500);
  EXPECT_TRUE(q.next_requests(600).empty());
}

TEST_F(LookupTest, AReplyCountsForItsKClosestNewcomersOnly) {
  LookupOptions o;
  o.k = 5;
  o.alpha = 1;
  Lookup q(self, target, o, 0);
  auto seed = peers(1);
  q.seed(seed);
  ASSERT_EQ(q.next_requests(0), seed);
  auto junk = peers(5000);
  for (int i = 0; i < 3; ++i) junk.push_back(junk[i]);  // duplicates
  junk.push_back(self);
  junk.push_back(seed[0]);
  q.on_reply(seed[0], junk, 1);
  EXPECT_EQ(q.candidate_count(), 1u + o.k) << "the replier and its 5 closest offered peers";
  // Those are the closest offered: they are what is asked, in order.
  auto order = sorted_by_distance(peers_without(junk, self), target);
  order.erase(std::unique(order.begin(), order.end()), order.end());
  order.erase(std::remove(order.begin(), order.end(), seed[0]), order.end());
  for (int i = 0; i < 5; ++i) {
    auto asked = q.next_requests(2 + i);
    ASSERT_EQ(asked, std::vector<PeerId>{order[i]});
    q.on_failure(asked[0], 2 + i);
  }
  EXPECT_TRUE(q.done());
  EXPECT_EQ(q.result().stats.offered, junk.size());
  EXPECT_EQ(q.result().stats.dropped, junk.size() - 5);
  EXPECT_EQ(q.result().stats.failures, 5u);
}

TEST_F(LookupTest, TheCandidateSetIsBoundedKeepingTheClosest) {
  LookupOptions o;
  o.k = 5;
  o.alpha = 3;
  o.max_candidates = 8;
  Lookup q(self, target, o, 0);
  q.seed(peers(3));
  auto asked = q.next_requests(0);
  ASSERT_EQ(asked.size(), 3u);
  std::vector<PeerId> offered;
  for (const PeerId &p : asked) {
    auto fresh = peers(5);
    offered.insert(offered.end(), fresh.begin(), fresh.end());
    q.on_reply(p, fresh, 1);
    EXPECT_LE(q.candidate_count(), 8u);
  }
  // The answered three stay; of the 15 offered, the closest five are kept.
  EXPECT_EQ(q.candidate_count(), 8u);
  auto order = sorted_by_distance(offered, target);
  std::vector<PeerId> kept;
  while (!q.done()) {
    auto next = q.next_requests(2);
    if (next.empty()) break;
    for (const PeerId &p : next) {
      kept.push_back(p);
      q.on_reply(p, {}, 2);
    }
  }
  std::sort(kept.begin(), kept.end());
  std::vector<PeerId> closest5(order.begin(), order.begin() + 5);
  std::sort(closest5.begin(), closest5.end());
  for (const PeerId &p : kept) EXPECT_TRUE(std::binary_search(closest5.begin(), closest5.end(), p));
}

TEST_F(LookupTest, FinishEndsWithWhatItHas) {
  Lookup q(self, target, {}, 0);
  q.seed(peers(10));
  auto asked = q.next_requests(0);
  q.on_reply(asked[1], {}, 3);
  q.finish(4);  // e.g. FIND_NODE reached the peer it looked for
  ASSERT_TRUE(q.done());
  EXPECT_EQ(q.result().end, LookupEnd::kFinished);
  EXPECT_FALSE(q.result().timed_out);
  EXPECT_EQ(q.result().closest, std::vector<PeerId>{asked[1]});
  EXPECT_TRUE(q.next_requests(5).empty());
  q.on_reply(asked[0], peers(2), 6);
  EXPECT_EQ(q.result().stats.late_replies, 1u);
  EXPECT_EQ(q.result().stats.elapsed_ms, 4);
}

TEST_F(LookupTest, GetValueQuorumAndOneValuePerPeer) {
  LookupOptions o;
  o.kind = LookupKind::kGetValue;
  o.quorum = 2;
  o.alpha = 1;
  Lookup q(self, target, o, 0);
  q.seed(peers(10));
  auto a = q.next_requests(0);
  q.record_value(a[0], Bytes{1});
  q.record_value(a[0], Bytes{2});  // the same peer again: replaces, does not count twice
  q.on_reply(a[0], {}, 1);
  EXPECT_FALSE(q.done());
  auto b = q.next_requests(1);
  q.record_value(b[0], Bytes{3});
  q.on_reply(b[0], {}, 2);
  ASSERT_TRUE(q.done());
  auto r = q.result();
  EXPECT_EQ(r.end, LookupEnd::kQuorum);
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[0].from, a[0]);
  EXPECT_EQ(r.values[0].value, Bytes{2});
  EXPECT_EQ(r.values[1].value, Bytes{3});
}

TEST_F(LookupTest, ProvidersAreDistinctWithMergedAddrs) {
  LookupOptions o;
  o.kind = LookupKind::kGetProviders;
  Lookup q(self, target, o, 0);
  auto p = peers(2);
  q.record_providers({{p[0], {Bytes{1}}}, {p[1], {}}});
  q.record_providers({{p[0], {Bytes{1}, Bytes{2}}}});
  auto r = q.result();
  ASSERT_EQ(r.providers.size(), 2u);
  EXPECT_EQ(r.providers[0].addrs, (std::vector<Bytes>{Bytes{1}, Bytes{2}}));
}

// ---------------------------------------------------------------------------------------------------
// A simulated network: 500 nodes with random ids, each knowing up to k peers per bucket (a full
// Kademlia routing table, filled at random), answering from what it knows.

struct SimNode {
  PeerId id;
  KadId kad;
  std::vector<int> known;
  enum Behaviour { kHonest, kSilent, kUnreachable, kJunk } behaviour = kHonest;
  int64_t latency_ms = 10;
  std::optional<Bytes> value;              // GET_VALUE
  std::vector<FoundProvider> providers;    // GET_PROVIDERS
};

class SimNetwork {
 public:
  SimNetwork(size_t n, uint64_t seed, size_t k = 20) : rng_(seed), k_(k) {
    std::uniform_int_distribution<int64_t> latency(1, 50);
    for (size_t i = 0; i < n; ++i) {
      SimNode node;
      node.id = random_peer(rng_);
      node.kad = KadId::of_peer(node.id);
      node.latency_ms = latency(rng_);
      index_.emplace(node.id, static_cast<int>(i));
      nodes_.push_back(std::move(node));
    }
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::vector<int>> buckets(257);
      for (size_t j = 0; j < n; ++j)
        if (j != i) buckets[common_prefix_len(nodes_[i].kad, nodes_[j].kad)].push_back(static_cast<int>(j));
      for (auto &b : buckets) {
        std::shuffle(b.begin(), b.end(), rng_);
        if (b.size() > k_) b.resize(k_);
        nodes_[i].known.insert(nodes_[i].known.end(), b.begin(), b.end());
      }
    }
  }

  size_t size() const { return nodes_.size(); }
  SimNode &node(int i) { return nodes_[i]; }
  std::mt19937_64 &rng() { return rng_; }
  int index_of(const PeerId &id) const {
    auto it = index_.find(id);
    return it == index_.end() ? -1 : it->second;
  }

  // What node i answers: the count peers closest to target it knows.
  std::vector<PeerId> closest_known(int i, const KadId &target, size_t count) const {
    std::vector<int> known = nodes_[i].known;
    sort_by_distance(known, target);
    std::vector<PeerId> out;
    for (size_t j = 0; j < known.size() && j < count; ++j) out.push_back(nodes_[known[j]].id);
    return out;
  }

  // Brute force over the whole network: the count closest nodes passing keep.
  template <class Keep>
  std::vector<PeerId> brute_force(const KadId &target, size_t count, Keep keep) const {
    std::vector<int> all;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (keep(static_cast<int>(i))) all.push_back(static_cast<int>(i));
    sort_by_distance(all, target);
    std::vector<PeerId> out;
    for (size_t j = 0; j < all.size() && j < count; ++j) out.push_back(nodes_[all[j]].id);
    return out;
  }

 private:
  void sort_by_distance(std::vector<int> &v, const KadId &target) const {
    std::sort(v.begin(), v.end(), [&](int a, int b) { return closer(nodes_[a].kad, nodes_[b].kad, target); });
  }

  std::mt19937_64 rng_;
  size_t k_;
  std::vector<SimNode> nodes_;
  std::unordered_map<PeerId, int> index_;
};

// Runs one lookup from node `from` to the end with a fake clock: requests become reply (or failure)
// events at now + the peer's latency; silent peers never answer; ids outside the network fail at once
// (nothing to dial). Checks after every step that at most alpha requests are pending and that the
// candidate set stays within its bound.
struct SimRun {
  LookupResult result;
  size_t max_pending = 0;
  size_t max_candidates = 0;
  size_t junk_replies = 0;
};

SimRun run_lookup(SimNetwork &net, int from, const KadId &target, const LookupOptions &options,
                  int64_t start_ms = 1'000'000) {
  struct Event {
    int64_t at;
    uint64_t seq;
    PeerId peer;
    bool failure;
    bool operator>(const Event &o) const { return std::tie(at, seq) > std::tie(o.at, o.seq); }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::unordered_map<PeerId, int64_t> pending;  // peer -> sent at, until answered, failed or timed out
  uint64_t seq = 0;
  SimRun run;
  const PeerId self = net.node(from).id;

  Lookup q(self, target, options, start_ms);
  q.seed(net.closest_known(from, target, options.k));
  int64_t now = start_ms;
  auto count_pending = [&] {
    for (auto it = pending.begin(); it != pending.end();)
      it = now - it->second >= options.per_peer_timeout_ms ? pending.erase(it) : std::next(it);
    return pending.size();
  };

  for (int steps = 0; !q.done(); ++steps) {
    EXPECT_LT(steps, 100'000) << "lookup makes no progress";
    if (steps >= 100'000) break;
    for (const PeerId &p : q.next_requests(now)) {
      EXPECT_EQ(pending.count(p), 0u) << "asked twice";
      pending[p] = now;
      int i = net.index_of(p);
      if (i < 0 || net.node(i).behaviour == SimNode::kUnreachable) {
        events.push({now + 1, seq++, p, true});
      } else if (net.node(i).behaviour != SimNode::kSilent) {
        events.push({now + net.node(i).latency_ms, seq++, p, false});
      }
    }
    run.max_pending = std::max(run.max_pending, count_pending());
    run.max_candidates = std::max(run.max_candidates, q.candidate_count());
    if (q.done()) break;

    int64_t wake = q.next_wakeup_ms();
    if (events.empty() || wake < events.top().at) {
      now = std::max(now, wake);
      q.tick(now);
      continue;
    }
    Event e = events.top();
    events.pop();
    now = e.at;
    pending.erase(e.peer);
    if (e.failure) {
      q.on_failure(e.peer, now);
      continue;
    }
    SimNode &n = net.node(net.index_of(e.peer));
    std::vector<PeerId> closer = net.closest_known(net.index_of(e.peer), target, options.k);
    if (n.behaviour == SimNode::kJunk) {
      // Duplicates, the asker, the replier, and thousands of ids nobody can reach.
      ++run.junk_replies;
      std::vector<PeerId> copy = closer;
      closer.insert(closer.end(), copy.begin(), copy.end());
      closer.push_back(self);
      closer.push_back(n.id);
      for (int j = 0; j < 3000; ++j) closer.push_back(random_peer(net.rng()));
    }
    if (n.value) q.record_value(n.id, *n.value);
    if (!n.providers.empty()) q.record_providers(n.providers);
    q.on_reply(e.peer, closer, now);
  }
  run.result = q.result();
  return run;
}

class LookupSim : public ::testing::Test {
 protected:
  static constexpr size_t kNodes = 500;
  SimNetwork net{kNodes, 20261206};
  std::mt19937_64 rng{99};

  int random_node() { return static_cast<int>(rng() % kNodes); }
};

TEST_F(LookupSim, FindNodeFindsTheExactKClosestInFewHops) {
  LookupOptions o;
  o.kind = LookupKind::kFindNode;
  int max_hops = 0;
  double total_hops = 0;
  const int kLookups = 30;
  for (int t = 0; t < kLookups; ++t) {
    int from = random_node();
    // Half the targets are peers of the network (FIND_NODE for a peer), half random keys.
    KadId target = t % 2 == 0 ? net.node(random_node()).kad : random_kad(rng);
    SimRun run = run_lookup(net, from, target, o);
    auto expect = net.brute_force(target, o.k, [&](int i) { return i != from; });
    EXPECT_EQ(run.result.closest, expect) << "lookup " << t;
    EXPECT_EQ(run.result.end, LookupEnd::kConverged);
    EXPECT_FALSE(run.result.timed_out);
    EXPECT_LE(run.max_pending, o.alpha) << "more than alpha in flight";
    EXPECT_GE(run.result.stats.hops, 1);
    max_hops = std::max(max_hops, run.result.stats.hops);
    total_hops += run.result.stats.hops;
    EXPECT_LT(run.result.stats.queried, 100u) << "a lookup over 500 nodes asks a few dozen";
  }
  // log2(500 / 20) is under 5: a lookup needs a handful of hops.
  EXPECT_LE(max_hops, 4);
  RecordProperty("mean_hops", std::to_string(total_hops / kLookups));
  std::printf("mean hops %.2f, max %d\n", total_hops / kLookups, max_hops);
}

TEST_F(LookupSim, AlphaIsRespectedForOtherValues) {
  for (size_t alpha : {1u, 5u, 10u}) {
    LookupOptions o;
    o.alpha = alpha;
    int from = random_node();
    KadId target = random_kad(rng);
    SimRun run = run_lookup(net, from, target, o);
    EXPECT_LE(run.max_pending, alpha);
    EXPECT_EQ(run.max_pending, alpha) << "the window is used";
    EXPECT_EQ(run.result.closest, net.brute_force(target, o.k, [&](int i) { return i != from; }));
  }
}

TEST_F(LookupSim, SilentPeersTimeOutAndTheLookupStillConverges) {
  for (size_t i = 0; i < kNodes; ++i)
    if (rng() % 4 == 0) net.node(static_cast<int>(i)).behaviour = SimNode::kSilent;
  LookupOptions o;
  o.per_peer_timeout_ms = 2'000;
  o.deadline_ms = 120'000;
  for (int t = 0; t < 5; ++t) {
    int from = random_node();
    KadId target = random_kad(rng);
    SimRun run = run_lookup(net, from, target, o);
    auto expect = net.brute_force(target, o.k, [&](int i) {
      return i != from && net.node(i).behaviour == SimNode::kHonest;
    });
    // Answers name silent peers too (they are still in routing tables), so a responsive peer at the
    // edge of the k closest may be named by nobody's top k: the closest half is exact, the rest nearly.
    ASSERT_EQ(run.result.closest.size(), o.k);
    EXPECT_TRUE(std::equal(expect.begin(), expect.begin() + o.k / 2, run.result.closest.begin()))
        << "lookup " << t;
    size_t found = 0;
    for (const PeerId &p : run.result.closest) {
      EXPECT_EQ(net.node(net.index_of(p)).behaviour, SimNode::kHonest) << "a silent peer in the result";
      found += std::count(expect.begin(), expect.end(), p);
    }
    EXPECT_GE(found, o.k - 2) << "lookup " << t;
    EXPECT_EQ(run.result.closest, sorted_by_distance(run.result.closest, target));
    EXPECT_EQ(run.result.end, LookupEnd::kConverged);
    EXPECT_GT(run.result.stats.timeouts, 0u);
    EXPECT_EQ(run.result.stats.timeouts, run.result.stats.failures);
    EXPECT_GE(run.result.stats.elapsed_ms, o.per_peer_timeout_ms);
    EXPECT_LE(run.max_pending, o.alpha);
  }
}

TEST_F(LookupSim, OverallDeadlineEndsASlowLookup) {
  for (size_t i = 0; i < kNodes; ++i) net.node(static_cast<int>(i)).latency_ms = 900;
  LookupOptions o;
  o.per_peer_timeout_ms = 5'000;
  o.deadline_ms = 2'500;
  int from = random_node();
  SimRun run = run_lookup(net, from, random_kad(rng), o);
  EXPECT_TRUE(run.result.timed_out);
  EXPECT_EQ(run.result.end, LookupEnd::kDeadline);
  EXPECT_EQ(run.result.stats.elapsed_ms, 2'500);
  // Two rounds of replies came back in time: the lookup ends with what it had.
  EXPECT_EQ(run.result.stats.replies, 2 * o.alpha);
  EXPECT_EQ(run.result.closest.size(), 2 * o.alpha);
}

TEST_F(LookupSim, JunkRepliesAreHandledAndBounded) {
  // 25 nodes answer with their real view padded with duplicates, the asker, themselves and 3000
  // random ids that are not on the network (dialing them fails at once).
  std::unordered_set<int> junk;
  while (junk.size() < 25) junk.insert(random_node());
  for (int j : junk) net.node(j).behaviour = SimNode::kJunk;
  LookupOptions o;
  size_t junk_seen = 0;
  for (int t = 0; t < 10; ++t) {
    int from = random_node();
    KadId target = random_kad(rng);
    SimRun run = run_lookup(net, from, target, o);
    junk_seen += run.junk_replies;
    std::printf("junk replies %zu: queried %zu, failures %zu, offered %zu, dropped %zu, max candidates %zu\n",
                run.junk_replies, run.result.stats.queried, run.result.stats.failures, run.result.stats.offered,
                run.result.stats.dropped, run.max_candidates);
    EXPECT_EQ(run.result.closest, net.brute_force(target, o.k, [&](int i) { return i != from; }))
        << "lookup " << t;
    EXPECT_LE(run.max_candidates, 10 * o.k);
    EXPECT_LE(run.max_pending, o.alpha);
    // Every unreachable id asked costs one failure; only the k closest of a reply count, so a junk
    // reply costs at most k failures rather than thousands.
    EXPECT_LE(run.result.stats.failures, run.junk_replies * o.k);
    EXPECT_FALSE(run.result.timed_out);
  }
  EXPECT_GT(junk_seen, 0u) << "the junk nodes were never asked: the test tests nothing";
}

// Providers announced by 30 nodes, each announcement reaching a random part of the k closest nodes
// to the key (as after churn): only the union over the k closest lists them all.
TEST_F(LookupSim, GetProvidersReturnsEveryProvider) {
  KadId key = random_kad(rng);
  auto holders = net.brute_force(key, 20, [](int) { return true; });
  std::vector<PeerId> announcers;
  for (int a = 0; a < 30; ++a) {
    const PeerId &p = net.node(random_node()).id;
    if (std::find(announcers.begin(), announcers.end(), p) != announcers.end()) {
      --a;
      continue;
    }
    announcers.push_back(p);
    Bytes addr = {0x04, 127, 0, 0, static_cast<uint8_t>(a)};
    for (const PeerId &h : holders)
      if (rng() % 3 == 0) net.node(net.index_of(h)).providers.push_back({p, {addr}});
    // At least one holder has it, or nobody could find it.
    net.node(net.index_of(holders[a % holders.size()])).providers.push_back({p, {addr}});
  }
  LookupOptions o;
  o.kind = LookupKind::kGetProviders;
  int from = random_node();
  SimRun run = run_lookup(net, from, key, o);
  EXPECT_EQ(run.result.end, LookupEnd::kConverged);
  std::vector<PeerId> found;
  for (const auto &p : run.result.providers) {
    found.push_back(p.id);
    EXPECT_EQ(p.addrs.size(), 1u) << "the same address from several holders is merged";
  }
  std::sort(found.begin(), found.end());
  std::sort(announcers.begin(), announcers.end());
  EXPECT_EQ(found, announcers);

  o.max_providers = 10;
  SimRun capped = run_lookup(net, from, key, o);
  EXPECT_EQ(capped.result.end, LookupEnd::kMaxProviders);
  EXPECT_EQ(capped.result.providers.size(), 10u);
  EXPECT_LT(capped.result.stats.queried, run.result.stats.queried);
}

TEST_F(LookupSim, GetValueCollectsValuesAndStopsAtQuorum) {
  KadId key = random_kad(rng);
  auto holders = net.brute_force(key, 20, [](int) { return true; });
  for (size_t h = 0; h < holders.size(); h += 2) net.node(net.index_of(holders[h])).value = Bytes{uint8_t(h)};
  LookupOptions o;
  o.kind = LookupKind::kGetValue;
  int from = net.index_of(holders.back()) == 0 ? 1 : 0;
  SimRun full = run_lookup(net, from, key, o);
  EXPECT_EQ(full.result.end, LookupEnd::kConverged);
  size_t expected = 0;
  for (size_t h = 0; h < holders.size(); h += 2) expected += net.index_of(holders[h]) != from;
  EXPECT_EQ(full.result.values.size(), expected);

  o.quorum = 3;
  SimRun quick = run_lookup(net, from, key, o);
  EXPECT_EQ(quick.result.end, LookupEnd::kQuorum);
  EXPECT_EQ(quick.result.values.size(), 3u);
  EXPECT_LE(quick.result.stats.queried, full.result.stats.queried);
}

}  // namespace
}  // namespace chorus::dht

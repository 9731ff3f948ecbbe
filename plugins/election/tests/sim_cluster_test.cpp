// sim_cluster_test: whole clusters of Election objects on a simulated broadcast network with a fake
// clock - every message goes through to_json/parse_message and the author check, with a latency and
// per-link drop rules. Each node has its own monotonic base and a skewed wall clock. A checker runs
// after every simulated millisecond: no term ever has two admins, no node's term goes back (restarts
// included), no voter publishes two votes in one term, and nothing is published before it is persisted.
#include "core/election.hpp"

#include <functional>
#include <map>
#include <memory>

#include <gtest/gtest.h>

using namespace chorus::election;

namespace {

ElectionConfig sim_config(uint32_t cluster_size) {
  ElectionConfig c;
  c.heartbeat_interval_ms = 100;
  c.heartbeat_timeout_ms = 400;
  c.discovery_timeout_ms = 400;
  c.min_term_ms = 1000;
  c.vote_window_ms = 30;
  c.candidacy_timeout_ms = 200;
  c.max_jitter_ms = 200;
  c.cluster_size = cluster_size;
  return c;
}

uint64_t mix(uint64_t &s) {
  s += 0x9e3779b97f4a7c15ULL;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Cluster {
 public:
  struct SimNode {
    std::string id;
    ElectionConfig cfg;
    PersistentState disk;
    std::unique_ptr<Election> e;
    bool up = false;
    uint64_t mono_base = 0;  // monotonic clocks of different nodes share nothing
    int64_t wall_skew = 0;   // nor do wall clocks agree
    uint64_t last_term = 0;  // for the monotonicity check, across restarts
    size_t side = 0;         // for partitions
  };

  Cluster(size_t n, const ElectionConfig &cfg, uint64_t seed) : rng_(seed) {
    for (size_t i = 0; i < n; ++i) {
      SimNode node;
      node.id = "12D3KooWnode" + std::to_string(i + 1);
      node.cfg = cfg;
      node.mono_base = mix(rng_) % 1000000;
      node.wall_skew = static_cast<int64_t>(mix(rng_) % 600000) - 300000;  // +-5 minutes
      nodes_.push_back(std::move(node));
    }
  }

  std::vector<SimNode> &nodes() { return nodes_; }
  SimNode &node(size_t i) { return nodes_[i]; }
  uint64_t now() const { return now_; }
  void set_link_down(std::function<bool(size_t, size_t)> rule) { link_down_ = std::move(rule); }
  void set_loss_percent(unsigned p) { loss_percent_ = p; }

  void boot(size_t i) {
    auto &n = nodes_[i];
    n.e = std::make_unique<Election>(n.cfg, n.id, n.disk, mix(rng_));
    // Scores differ a little, as real uptimes and loads do; they spread the candidacies' jitter.
    const double score = 0.3 + 0.1 * static_cast<double>(mix(rng_) % 6);
    n.e->set_score(ScoreComponents{score, score, score, score, score}, score);
    n.up = true;
    apply(i, n.e->start(clock(i)));
  }
  void boot_all() {
    for (size_t i = 0; i < nodes_.size(); ++i) boot(i);
  }
  void crash(size_t i) { nodes_[i].up = false; }

  // A message in the name of `signer` to every up node (an attacker's, or a replay).
  void inject(const std::string &signer, const Message &m) {
    for (size_t to = 0; to < nodes_.size(); ++to) in_flight_.emplace(now_ + 1, InFlight{to, signer, to_json(m)});
  }

  // Effects a test obtained from a node directly (the manual trigger), carried out like the others.
  void deliver(size_t i, const Effects &fx) { apply(i, fx); }

  void step() {
    ++now_;
    while (!in_flight_.empty() && in_flight_.begin()->first <= now_) {
      const InFlight f = in_flight_.begin()->second;
      in_flight_.erase(in_flight_.begin());
      if (!nodes_[f.to].up) continue;
      std::string why;
      auto m = parse_message(f.bytes, &why);
      ASSERT_TRUE(m.has_value()) << why << ": " << f.bytes;
      if (!check_author(*m, f.signer)) {  // the plugin's validator rejects these before the core
        ++forged_rejected_;
        continue;
      }
      apply(f.to, nodes_[f.to].e->on_message(clock(f.to), *m));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      auto &n = nodes_[i];
      if (n.up && n.e->next_deadline_ms() <= clock(i).mono_ms) apply(i, n.e->tick(clock(i)));
    }
    check();
  }
  void run(uint64_t ms) {
    for (uint64_t end = now_ + ms; now_ < end;) step();
  }
  // Runs until pred() holds; returns the time it took, or nullopt after `limit` ms.
  std::optional<uint64_t> run_until(const std::function<bool()> &pred, uint64_t limit) {
    const uint64_t start = now_;
    while (now_ - start < limit) {
      if (pred()) return now_ - start;
      step();
    }
    return pred() ? std::optional<uint64_t>(now_ - start) : std::nullopt;
  }

  // The one admin all the given up nodes follow, with exactly one of them in the admin role.
  std::optional<std::string> agreed_admin(const std::vector<size_t> &which) const {
    std::string admin;
    size_t admins = 0;
    uint64_t term = 0;
    for (size_t i : which) {
      const auto &n = nodes_[i];
      if (!n.up) continue;
      if (n.e->admin().empty()) return std::nullopt;
      if (admin.empty()) admin = n.e->admin(), term = n.e->term();
      if (n.e->admin() != admin || n.e->term() != term) return std::nullopt;
      if (n.e->role() == Role::admin) ++admins;
    }
    if (admins != 1) return std::nullopt;
    return admin;
  }
  std::optional<std::string> agreed_admin() const { return agreed_admin(all()); }
  std::vector<size_t> all() const {
    std::vector<size_t> v;
    for (size_t i = 0; i < nodes_.size(); ++i) v.push_back(i);
    return v;
  }
  size_t index_of(const std::string &id) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].id == id) return i;
    return nodes_.size();
  }
  size_t admins_in_role(const std::vector<size_t> &which) const {
    size_t n = 0;
    for (size_t i : which) n += nodes_[i].up && nodes_[i].e->role() == Role::admin;
    return n;
  }

  // Terms in which two different nodes held the admin role.
  std::vector<uint64_t> double_admin_terms() const {
    std::vector<uint64_t> out;
    for (const auto &[term, ids] : admins_by_term_)
      if (ids.size() > 1) out.push_back(term);
    return out;
  }
  const std::map<uint64_t, std::set<std::string>> &admins_by_term() const { return admins_by_term_; }
  const std::set<uint64_t> &split_brain_terms() const { return split_brain_terms_; }
  uint64_t forged_rejected() const { return forged_rejected_; }
  uint64_t triggers(Trigger t) const { return triggers_[static_cast<int>(t)]; }

 private:
  struct InFlight {
    size_t to;
    std::string signer;
    std::string bytes;
  };

  Now clock(size_t i) const {
    const auto &n = nodes_[i];
    return Now{n.mono_base + now_, static_cast<uint64_t>(static_cast<int64_t>(1765000000000ULL + now_) + n.wall_skew)};
  }

  void apply(size_t i, const Effects &fx) {
    auto &n = nodes_[i];
    for (const auto &effect : fx) {
      if (const auto *p = std::get_if<Persist>(&effect)) {
        EXPECT_GE(p->state.term, n.disk.term) << n.id << ": persisted term went back";
        n.disk = p->state;
      } else if (const auto *pub = std::get_if<Publish>(&effect)) {
        const Message &m = pub->message;
        EXPECT_EQ(author_of(m), n.id);
        EXPECT_LE(term_of(m), n.disk.term) << n.id << " published before persisting: " << to_json(m);
        if (const auto *v = std::get_if<Vote>(&m)) {
          EXPECT_EQ(n.disk.voted_for, v->candidate) << n.id << " voted before persisting the vote";
          const auto key = std::make_pair(v->voter, v->term);
          EXPECT_EQ(votes_.count(key), 0u) << v->voter << " voted twice in term " << v->term;
          votes_[key] = v->candidate;
        }
        broadcast(i, m);
      } else if (const auto *s = std::get_if<SplitBrainDetected>(&effect)) {
        split_brain_terms_.insert(s->term);
      } else if (const auto *t = std::get_if<ElectionTriggered>(&effect)) {
        ++triggers_[static_cast<int>(t->trigger)];
      }
    }
    EXPECT_EQ(n.e->persistent().term, n.disk.term) << n.id << ": term not persisted";
    EXPECT_EQ(n.e->persistent().voted_for, n.disk.voted_for) << n.id << ": vote not persisted";
  }

  void broadcast(size_t from, const Message &m) {
    const std::string bytes = to_json(m);
    for (size_t to = 0; to < nodes_.size(); ++to) {
      if (to == from) continue;
      if (link_down_ && link_down_(from, to)) continue;
      if (loss_percent_ > 0 && mix(rng_) % 100 < loss_percent_) continue;
      const uint64_t latency = 1 + mix(rng_) % 10;
      in_flight_.emplace(now_ + latency, InFlight{to, nodes_[from].id, bytes});
    }
  }

  void check() {
    for (auto &n : nodes_) {
      if (!n.up) continue;
      EXPECT_GE(n.e->term(), n.last_term) << n.id << ": term went back";
      n.last_term = n.e->term();
      if (n.e->role() == Role::admin) {
        auto &ids = admins_by_term_[n.e->term()];
        ids.insert(n.id);
      }
    }
  }

  uint64_t rng_;
  uint64_t now_ = 0;
  std::vector<SimNode> nodes_;
  std::multimap<uint64_t, InFlight> in_flight_;
  std::function<bool(size_t, size_t)> link_down_;
  unsigned loss_percent_ = 0;
  std::map<uint64_t, std::set<std::string>> admins_by_term_;
  std::map<std::pair<std::string, uint64_t>, std::string> votes_;
  std::set<uint64_t> split_brain_terms_;
  uint64_t forged_rejected_ = 0;
  uint64_t triggers_[kTriggerCount] = {};
};

// The bound on a first election: discovery, the worst jitter, the vote window, a few message
// latencies - and one failed round (candidacy timeout, jitter again) of slack.
constexpr uint64_t kFirstAdminBoundMs = 400 + 200 + 30 + 50 + (230 + 200 + 200 + 30 + 50);
// After the admin's last heartbeat: the timeout, then the same.
constexpr uint64_t kFailoverBoundMs = 400 + 100 + 200 + 30 + 50 + (230 + 200 + 200 + 30 + 50);

}  // namespace

TEST(SimCluster, FiveNodesElectOneAdminWithinABoundedTime) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Cluster c(5, sim_config(5), seed);
    c.boot_all();
    const auto took = c.run_until([&] { return c.agreed_admin().has_value(); }, 10000);
    ASSERT_TRUE(took.has_value()) << "seed " << seed;
    EXPECT_LE(*took, kFirstAdminBoundMs) << "seed " << seed;
    // It stays: a stable cluster has no further elections.
    const auto admin = *c.agreed_admin();
    const uint64_t term = c.node(0).e->term();
    c.run(5000);
    EXPECT_EQ(c.agreed_admin(), admin) << "seed " << seed;
    EXPECT_EQ(c.node(0).e->term(), term) << "seed " << seed;
    EXPECT_TRUE(c.double_admin_terms().empty()) << "seed " << seed;
    EXPECT_EQ(c.triggers(Trigger::heartbeat_timeout), 0u);
  }
}

TEST(SimCluster, ACrashedAdminIsReplacedAfterTheTimeout) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Cluster c(5, sim_config(5), seed);
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000)) << "seed " << seed;
    const auto old_admin = *c.agreed_admin();
    const size_t dead = c.index_of(old_admin);
    const uint64_t old_term = c.node(dead).e->term();
    c.crash(dead);
    const auto took = c.run_until([&] { return c.agreed_admin().has_value(); }, 10000);
    ASSERT_TRUE(took.has_value()) << "seed " << seed;
    EXPECT_GE(*took, 400u - 100u) << "seed " << seed;  // not before the heartbeat timeout
    EXPECT_LE(*took, kFailoverBoundMs) << "seed " << seed;
    const auto new_admin = *c.agreed_admin();
    EXPECT_NE(new_admin, old_admin);
    EXPECT_GT(c.node(c.index_of(new_admin)).e->term(), old_term);
    EXPECT_GE(c.triggers(Trigger::heartbeat_timeout), 1u);
    EXPECT_TRUE(c.double_admin_terms().empty()) << "seed " << seed;
  }
}

// A 3|2 partition of a cluster_size 5 cluster, with the admin on either side, then the heal.
void partition_and_heal(bool admin_in_minority, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) +
               (admin_in_minority ? ", admin in the minority" : ", admin in the majority"));
  Cluster c(5, sim_config(5), seed);
  c.boot_all();
  ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
  const size_t admin = c.index_of(*c.agreed_admin());
  // Sides: the admin and one more node on one side, three on the other (or the admin with two more).
  std::vector<size_t> minority, majority;
  if (admin_in_minority) {
    minority.push_back(admin);
    for (size_t i = 0; i < 5; ++i)
      if (i != admin) (minority.size() < 2 ? minority : majority).push_back(i);
  } else {
    majority.push_back(admin);
    for (size_t i = 0; i < 5; ++i)
      if (i != admin) (majority.size() < 3 ? majority : minority).push_back(i);
  }
  for (size_t i : minority) c.node(i).side = 1;
  for (size_t i : majority) c.node(i).side = 0;
  uint64_t minority_term = 0;
  for (size_t i : minority) minority_term = std::max(minority_term, c.node(i).e->term());
  c.set_link_down([&](size_t a, size_t b) { return c.node(a).side != c.node(b).side; });

  // Never two admins at once on one side, at any millisecond of the partition.
  for (int ms = 0; ms < 6000; ++ms) {
    c.step();
    ASSERT_LE(c.admins_in_role(minority), 1u) << "at " << ms << " ms";
    ASSERT_LE(c.admins_in_role(majority), 1u) << "at " << ms << " ms";
  }
  const auto majority_admin = c.agreed_admin(majority);
  ASSERT_TRUE(majority_admin.has_value());
  EXPECT_EQ(c.admins_in_role(majority), 1u);
  EXPECT_EQ(c.admins_in_role(minority), 0u);
  for (size_t i : minority) {
    EXPECT_EQ(c.node(i).e->admin(), "") << c.node(i).id;
    EXPECT_EQ(c.node(i).e->term(), minority_term) << "the minority inflated its term";
  }
  const uint64_t majority_term = c.node(majority[0]).e->term();
  if (admin_in_minority) {
    EXPECT_GT(majority_term, minority_term);
    EXPECT_EQ(c.triggers(Trigger::quorum_loss), 1u);  // the cut-off admin stepped down
  } else {
    EXPECT_EQ(*majority_admin, c.node(admin).id);  // the admin with a majority simply stays
  }

  c.set_link_down(nullptr);
  ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 5000));
  EXPECT_EQ(*c.agreed_admin(), *majority_admin);
  for (size_t i : minority) EXPECT_EQ(c.node(i).e->term(), majority_term) << "the minority adopts the higher term";
  EXPECT_TRUE(c.double_admin_terms().empty());
}

TEST(SimCluster, PartitionThreeTwoElectsOnlyOnTheMajoritySideAndHeals) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    partition_and_heal(true, seed);
    partition_and_heal(false, seed);
  }
}

TEST(SimCluster, SplitBrainOfAMisconfiguredClusterIsDetectedAndResolved) {
  // Four agents each told cluster_size 2: a 2|2 partition lets both halves elect, in the same term,
  // because all four start from the same persisted term. After the heal the two reigns meet.
  size_t reproduced = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(4, sim_config(2), seed);
    for (auto &n : c.nodes()) n.disk = PersistentState{5, "", 0, 0};
    for (size_t i = 0; i < 4; ++i) c.node(i).side = i < 2 ? 0 : 1;
    c.set_link_down([&](size_t a, size_t b) { return c.node(a).side != c.node(b).side; });
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin({0, 1}) && c.agreed_admin({2, 3}); }, 10000));
    const uint64_t term_a = c.node(0).e->term(), term_b = c.node(2).e->term();
    c.set_link_down(nullptr);
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    // Every term that had two admins was seen as a split brain, and the last word is one admin in a
    // later term.
    for (uint64_t t : c.double_admin_terms()) EXPECT_TRUE(c.split_brain_terms().count(t)) << "term " << t;
    if (term_a == term_b) {
      ++reproduced;
      EXPECT_EQ(c.double_admin_terms().front(), term_a);
      EXPECT_TRUE(c.split_brain_terms().count(term_a));
      EXPECT_GT(c.node(0).e->term(), term_a);
      EXPECT_GE(c.triggers(Trigger::split_brain), 1u);
      uint64_t detected = 0;
      for (auto &n : c.nodes()) detected += n.e->split_brains();
      // One detection suffices: its candidacy's higher term ends both reigns, and nodes that see the
      // new term before the second heartbeat never see the conflict themselves.
      EXPECT_GE(detected, 1u);
    }
    // And it stays resolved.
    const auto admin = *c.agreed_admin();
    c.run(3000);
    EXPECT_EQ(c.agreed_admin(), admin);
  }
  EXPECT_GE(reproduced, 5u) << "the scenario rarely produced a same-term split brain";
}

TEST(SimCluster, ForgedAuthorsVoteFloodsAndStaleTermsElectNoSecondAdmin) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto cfg = sim_config(0);
    for (size_t i = 0; i < 5; ++i) cfg.members.push_back("12D3KooWnode" + std::to_string(i + 1));
    Cluster c(5, cfg, seed);
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    const std::string admin = *c.agreed_admin();
    const uint64_t term = c.node(0).e->term();
    const std::string mallory = "12D3KooWmallory";
    const std::string victim = c.node((c.index_of(admin) + 1) % 5).id;
    uint64_t forged = 0;
    // Forged heartbeats: a higher term in the name of a member, signed by someone else.
    for (int i = 0; i < 50; ++i, ++forged) c.inject(mallory, Heartbeat{term + 1 + i, victim, 0, 1, 1.0});
    // Forged votes and candidacies in members' names.
    for (int i = 0; i < 200; ++i, ++forged) c.inject(mallory, Vote{term + 1, victim, mallory});
    for (int i = 0; i < 20; ++i, ++forged) c.inject(mallory, Candidacy{term + 5, victim, Trigger::manual, {}, 1.0});
    c.run(50);
    EXPECT_EQ(c.forged_rejected(), forged * 5);
    EXPECT_EQ(c.agreed_admin(), admin);
    EXPECT_EQ(c.node(0).e->term(), term);
    // A non-member signing as itself: heartbeats, a candidacy and a flood of votes for itself.
    c.inject(mallory, Candidacy{term + 1, mallory, Trigger::manual, {}, 1.0});
    for (int i = 0; i < 2000; ++i) c.inject(mallory, Vote{term + 1, mallory, mallory});
    for (int i = 0; i < 20; ++i) c.inject(mallory, Heartbeat{term + 7, mallory, 0, 1, 1.0});
    c.run(200);
    EXPECT_EQ(c.agreed_admin(), admin);
    EXPECT_EQ(c.node(0).e->term(), term);
    // A member's vote flood in a later term disrupts the reign (a higher term is a higher term) but
    // counts once: the flood alone never makes an admin, and the cluster settles on one again.
    for (int i = 0; i < 3000; ++i) c.inject(victim, Vote{term + 1, victim, victim});
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value() && c.node(0).e->term() > term + 1; }, 10000));
    const std::string second = *c.agreed_admin();
    const uint64_t second_term = c.node(0).e->term();
    // Stale heartbeats of the old term, signed by a real member in its own name: ignored and counted.
    uint64_t stale_before = 0, stale_after = 0;
    for (auto &n : c.nodes()) stale_before += n.e->stale_messages();
    for (int i = 0; i < 100; ++i) c.inject(victim, Heartbeat{term, victim, 0, 1, 1.0});
    c.run(50);
    for (auto &n : c.nodes()) stale_after += n.e->stale_messages();
    EXPECT_EQ(stale_after - stale_before, 100u * 4);  // everyone but the victim itself
    EXPECT_EQ(c.agreed_admin(), second);
    EXPECT_EQ(c.node(0).e->term(), second_term);
    EXPECT_TRUE(c.double_admin_terms().empty());
  }
}

TEST(SimCluster, RestartsFromPersistedStateKeepTermsMonotonicAndVotesSingle) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(5, sim_config(5), seed);
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    uint64_t r = seed * 7919;
    for (int round = 0; round < 12; ++round) {
      // Crash a node (every third round the admin), keep it down a while, restart it from its disk.
      size_t victim = mix(r) % 5;
      if (round % 3 == 0 && c.agreed_admin()) victim = c.index_of(*c.agreed_admin());
      const PersistentState before = c.node(victim).disk;
      c.crash(victim);
      c.run(100 + mix(r) % 900);
      c.boot(victim);
      EXPECT_GE(c.node(victim).e->term(), before.term);
      EXPECT_EQ(c.node(victim).e->persistent(), before);
      c.run(mix(r) % 1500);
    }
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    EXPECT_TRUE(c.double_admin_terms().empty());
  }
}

TEST(SimCluster, LossCrashesAndPartitionsNeverGiveATermTwoAdmins) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(5, sim_config(5), seed);
    c.set_loss_percent(15);
    c.boot_all();
    uint64_t r = seed * 104729;
    for (int round = 0; round < 20; ++round) {
      switch (mix(r) % 4) {
        case 0: {  // a random 3|2 or 4|1 partition
          for (auto &n : c.nodes()) n.side = mix(r) % 2;
          c.set_link_down([&](size_t a, size_t b) { return c.node(a).side != c.node(b).side; });
          break;
        }
        case 1:
          c.set_link_down(nullptr);
          break;
        case 2: {
          const size_t i = mix(r) % 5;
          if (c.node(i).up) c.crash(i);
          else c.boot(i);
          break;
        }
        default:
          break;
      }
      c.run(200 + mix(r) % 1500);
    }
    c.set_link_down(nullptr);
    c.set_loss_percent(0);
    for (size_t i = 0; i < 5; ++i)
      if (!c.node(i).up) c.boot(i);
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    EXPECT_TRUE(c.double_admin_terms().empty());
  }
}

TEST(SimCluster, ALateJoinerFollowsTheAdminWithoutANewTerm) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(5, sim_config(5), seed);
    for (size_t i = 0; i < 4; ++i) c.boot(i);
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin({0, 1, 2, 3}).has_value(); }, 10000));
    const auto admin = *c.agreed_admin({0, 1, 2, 3});
    const uint64_t term = c.node(0).e->term();
    c.boot(4);
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 1000));
    EXPECT_EQ(*c.agreed_admin(), admin);
    c.run(3000);
    EXPECT_EQ(c.node(4).e->term(), term);
    EXPECT_EQ(c.agreed_admin(), admin);
  }
}

TEST(SimCluster, ManualTriggerMovesTheAdminOnlyOutsideTheStabilityWindow) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(5, sim_config(5), seed);
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 10000));
    const uint64_t term = c.node(0).e->term();
    const size_t follower = (c.index_of(*c.agreed_admin()) + 1) % 5;
    auto &e = *c.node(follower).e;
    const Now now{c.node(follower).mono_base + c.now(), 0};
    std::string why;
    EXPECT_FALSE(e.trigger_manual(now, &why).has_value());  // the reign is younger than min_term_ms
    EXPECT_NE(why.find("stability window"), std::string::npos) << why;
    c.run(1000);
    const Now later{c.node(follower).mono_base + c.now(), 0};
    const auto fx = e.trigger_manual(later, &why);
    ASSERT_TRUE(fx.has_value()) << why;
    c.deliver(follower, *fx);
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin() && c.node(0).e->term() > term; }, 5000));
    EXPECT_EQ(c.node(0).e->term(), term + 1);  // one new term, no churn after it
    EXPECT_GE(c.triggers(Trigger::manual), 1u);
    EXPECT_TRUE(c.double_admin_terms().empty());
  }
}

TEST(SimCluster, DefaultTimingFailoverStaysWithinTheTimeoutPlusTwoSeconds) {
  // The target for failover: at most heartbeat_timeout_ms (15 s) + 2 s after the admin dies,
  // with the kill at a random phase of the heartbeat interval.
  ElectionConfig cfg;
  cfg.cluster_size = 5;
  uint64_t worst = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(5, cfg, seed);
    c.boot_all();
    ASSERT_TRUE(c.run_until([&] { return c.agreed_admin().has_value(); }, 60000));
    uint64_t r = seed;
    c.run(mix(r) % cfg.heartbeat_interval_ms);
    const size_t dead = c.index_of(*c.agreed_admin());
    c.crash(dead);
    const auto took = c.run_until([&] { return c.agreed_admin().has_value(); }, 60000);
    ASSERT_TRUE(took.has_value());
    EXPECT_LE(*took, cfg.heartbeat_timeout_ms + 2000);
    worst = std::max(worst, *took);
    EXPECT_TRUE(c.double_admin_terms().empty());
  }
  RecordProperty("worst_failover_ms", static_cast<int>(worst));
}

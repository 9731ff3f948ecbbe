// election_test: one Election object alone, fed messages and time by hand - the rules one at a
// time, and the order of the effects (a Persist always precedes the Publish it guards).
#include "core/election.hpp"

#include <string>

#include <gtest/gtest.h>

using namespace chorus::election;

namespace {

ElectionConfig fast_config() {
  ElectionConfig c;
  c.heartbeat_interval_ms = 100;
  c.heartbeat_timeout_ms = 400;
  c.discovery_timeout_ms = 300;
  c.min_term_ms = 1000;
  c.vote_window_ms = 50;
  c.candidacy_timeout_ms = 200;
  c.max_jitter_ms = 0;  // deterministic timing; the simulated clusters use jitter
  c.cluster_size = 5;   // a lone node hears no quorum unless a test says otherwise
  return c;
}

Now at(uint64_t ms) { return Now{ms, 1765000000000ULL + ms}; }

std::string kind(const Effect &e) {
  if (std::holds_alternative<Persist>(e)) return "persist";
  if (const auto *p = std::get_if<Publish>(&e)) {
    if (std::holds_alternative<Heartbeat>(p->message)) return "heartbeat";
    if (std::holds_alternative<Presence>(p->message)) return "presence";
    if (std::holds_alternative<Candidacy>(p->message)) return "candidacy";
    return "vote";
  }
  if (std::holds_alternative<AdminChanged>(e)) return "admin";
  if (std::holds_alternative<ElectionTriggered>(e)) return "trigger";
  if (std::holds_alternative<SplitBrainDetected>(e)) return "split";
  return "log";
}

// The effects' kinds in order, log lines and presence left out: "trigger persist candidacy".
std::string sequence(const Effects &fx) {
  std::string s;
  for (const auto &e : fx) {
    const auto k = kind(e);
    if (k == "log" || k == "presence") continue;
    if (!s.empty()) s += ' ';
    s += k;
  }
  return s;
}

template <class T>
std::vector<T> effects_of(const Effects &fx) {
  std::vector<T> out;
  for (const auto &e : fx)
    if (const auto *x = std::get_if<T>(&e)) out.push_back(*x);
  return out;
}

template <class M>
std::vector<M> published(const Effects &fx) {
  std::vector<M> out;
  for (const auto &p : effects_of<Publish>(fx))
    if (const auto *m = std::get_if<M>(&p.message)) out.push_back(*m);
  return out;
}

// One node and its "disk": every effect list goes through check_order, which fails the test when a
// Publish relies on a term or vote not yet persisted.
class Node {
 public:
  Node(ElectionConfig cfg, std::string id, PersistentState state = {})
      : id_(std::move(id)), disk_(state), e_(std::move(cfg), id_, state, 7) {}

  Election &e() { return e_; }
  const PersistentState &disk() const { return disk_; }
  uint64_t now() const { return now_; }

  Effects start(uint64_t t) { return take(t, e_.start(at(t))); }
  Effects msg(uint64_t t, const Message &m) { return take(t, e_.on_message(at(t), m)); }
  Effects tick(uint64_t t) { return take(t, e_.tick(at(t))); }
  std::optional<Effects> manual(uint64_t t, std::string *why) {
    auto fx = e_.trigger_manual(at(t), why);
    if (fx) take(t, *fx);
    return fx;
  }
  // Runs the timers at their deadlines up to `until`.
  Effects run(uint64_t until) {
    Effects all;
    for (int guard = 0; guard < 100000; ++guard) {
      const uint64_t d = std::max(e_.next_deadline_ms(), now_);
      if (d > until) break;
      auto fx = tick(d);
      all.insert(all.end(), fx.begin(), fx.end());
      if (d == now_ && fx.empty() && e_.next_deadline_ms() <= now_) {
        ADD_FAILURE() << "next_deadline_ms() does not advance at " << now_;
        break;
      }
    }
    now_ = std::max(now_, until);
    return all;
  }

 private:
  Effects take(uint64_t t, Effects fx) {
    EXPECT_GE(t, now_);
    now_ = t;
    check_order(fx);
    EXPECT_EQ(e_.persistent().term, disk_.term) << "a term change was not persisted";
    EXPECT_EQ(e_.persistent().voted_for, disk_.voted_for) << "a vote was not persisted";
    return fx;
  }
  void check_order(const Effects &fx) {
    for (const auto &e : fx) {
      if (const auto *p = std::get_if<Persist>(&e)) {
        EXPECT_GE(p->state.term, disk_.term) << "a persisted term went back";
        disk_ = p->state;
      } else if (const auto *pub = std::get_if<Publish>(&e)) {
        const auto &m = pub->message;
        EXPECT_EQ(author_of(m), id_);
        EXPECT_LE(term_of(m), disk_.term) << "published " << to_json(m) << " before persisting its term";
        if (const auto *v = std::get_if<Vote>(&m)) {
          EXPECT_EQ(disk_.term, v->term);
          EXPECT_EQ(disk_.voted_for, v->candidate) << "voted before persisting the vote";
        }
        if (const auto *h = std::get_if<Heartbeat>(&m)) {
          EXPECT_EQ(disk_.term, h->term);
        }
        if (const auto *c = std::get_if<Candidacy>(&m)) {
          EXPECT_EQ(disk_.term, c->term);
        }
      }
    }
  }
  std::string id_;
  PersistentState disk_;
  Election e_;
  uint64_t now_ = 0;
};

Message presence(const std::string &id, uint64_t term = 0, const std::string &admin = "") {
  return Presence{term, id, admin, 0.5};
}
Message heartbeat(const std::string &admin, uint64_t term, uint64_t seq = 1) {
  return Heartbeat{term, admin, 1765000000000ULL, seq, 0.5};
}
Message candidacy(const std::string &id, uint64_t term, double score) {
  return Candidacy{term, id, Trigger::heartbeat_timeout, {}, score};
}
Message vote(const std::string &voter, uint64_t term, const std::string &candidate) {
  return Vote{term, voter, candidate};
}

// A node of a cluster of one that has just won term 1.
Node lone_admin() {
  auto cfg = fast_config();
  cfg.cluster_size = 1;
  Node n(cfg, "self");
  n.start(0);
  n.run(1000);
  EXPECT_EQ(n.e().role(), Role::admin);
  return n;
}

}  // namespace

TEST(Election, RoleNames) {
  EXPECT_STREQ(role_name(Role::follower), "follower");
  EXPECT_STREQ(role_name(Role::candidate), "candidate");
  EXPECT_STREQ(role_name(Role::admin), "admin");
}

TEST(Election, StartPublishesPresenceAtOnce) {
  Node n(fast_config(), "self", PersistentState{4, "x", 0, 0});
  const auto fx = n.start(0);
  const auto p = published<Presence>(fx);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].term, 4u);
  EXPECT_EQ(p[0].member, "self");
  EXPECT_EQ(p[0].admin, "");
  EXPECT_EQ(n.e().role(), Role::follower);
  EXPECT_EQ(n.e().term(), 4u);
  EXPECT_GT(n.e().next_deadline_ms(), 0u);
  // Presence repeats every heartbeat interval.
  EXPECT_EQ(published<Presence>(n.run(1000)).size(), 10u);
}

TEST(Election, ClusterOfOneElectsItselfAfterDiscoveryInPersistThenPublishOrder) {
  auto cfg = fast_config();
  cfg.cluster_size = 1;
  Node n(cfg, "self");
  n.start(0);
  EXPECT_TRUE(effects_of<ElectionTriggered>(n.run(299)).empty());
  const auto fx = n.run(300);
  EXPECT_EQ(sequence(fx), "trigger persist candidacy");
  ASSERT_EQ(effects_of<ElectionTriggered>(fx).size(), 1u);
  EXPECT_EQ(effects_of<ElectionTriggered>(fx)[0].trigger, Trigger::discovery_failure);
  EXPECT_EQ(effects_of<ElectionTriggered>(fx)[0].term, 1u);
  EXPECT_EQ(n.e().role(), Role::candidate);
  // Its own vote comes at the end of the vote window like everyone else's, then the win at once.
  EXPECT_EQ(sequence(n.run(349)), "");
  const auto win = n.run(350);
  EXPECT_EQ(sequence(win), "persist vote persist admin heartbeat");
  EXPECT_EQ(n.e().role(), Role::admin);
  EXPECT_EQ(n.e().admin(), "self");
  EXPECT_EQ(n.disk(), (PersistentState{1, "self", 0, 1}));
  const auto changed = effects_of<AdminChanged>(win);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].old_admin, "");
  EXPECT_EQ(changed[0].new_admin, "self");
  EXPECT_EQ(changed[0].term, 1u);
  EXPECT_TRUE(changed[0].is_self);
  EXPECT_EQ(changed[0].since_unix_ms, at(350).unix_ms);
  // Heartbeats every interval, numbered within the term; no presence while admin.
  const auto later = n.run(850);
  const auto beats = published<Heartbeat>(later);
  ASSERT_EQ(beats.size(), 5u);
  EXPECT_EQ(beats[0].seq, 2u);
  EXPECT_EQ(beats[4].seq, 6u);
  EXPECT_EQ(beats[4].since_unix_ms, at(350).unix_ms);
  EXPECT_TRUE(published<Presence>(later).empty());
}

TEST(Election, NoCandidacyWithoutHearingAQuorum) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  const auto fx = n.run(20000);
  EXPECT_TRUE(effects_of<ElectionTriggered>(fx).empty());
  EXPECT_EQ(n.e().term(), 0u);
  EXPECT_EQ(n.e().quorum(), 2u);
  EXPECT_EQ(n.e().members_heard(at(20000)), 1u);
  // Not a busy loop while waiting: about one wake-up per heartbeat interval.
  EXPECT_LE(published<Presence>(fx).size(), 201u);
  // One more member heard makes two of three. The candidacy waits an interval and a half for an
  // admin's heartbeat, then starts (no jitter configured).
  EXPECT_TRUE(effects_of<ElectionTriggered>(n.msg(20010, presence("peer"))).empty());
  EXPECT_TRUE(effects_of<ElectionTriggered>(n.run(20159)).empty());
  const auto heard = n.run(20160);
  const auto t = effects_of<ElectionTriggered>(heard);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].trigger, Trigger::discovery_failure);
  EXPECT_EQ(n.e().term(), 1u);
}

TEST(Election, VotesOnceForTheBestCandidacyOfTheWindow) {
  auto cfg = fast_config();
  cfg.cluster_size = 5;
  Node n(cfg, "n3");
  n.start(0);
  EXPECT_TRUE(n.msg(100, candidacy("n5", 1, 0.4)).size() >= 1);  // adopts term 1 (persist)
  EXPECT_EQ(n.disk().term, 1u);
  n.msg(110, candidacy("n4", 1, 0.9));
  n.msg(120, candidacy("n1", 1, 0.9));  // ties with n4 on score: the smaller id wins
  EXPECT_TRUE(published<Vote>(n.run(149)).empty());
  const auto fx = n.run(150);
  EXPECT_EQ(sequence(fx), "persist vote");
  const auto votes = published<Vote>(fx);
  ASSERT_EQ(votes.size(), 1u);
  EXPECT_EQ(votes[0].voter, "n3");
  EXPECT_EQ(votes[0].candidate, "n1");
  EXPECT_EQ(n.disk().voted_for, "n1");
  // A better candidacy after the vote changes nothing in this term.
  n.msg(160, candidacy("n0", 1, 1.0));
  for (const auto &v : published<Vote>(n.run(1000))) EXPECT_NE(v.term, 1u);
}

TEST(Election, ARestoredVoteHoldsForItsTerm) {
  Node n(fast_config(), "self", PersistentState{4, "x", 0, 0});
  n.start(0);
  n.msg(10, candidacy("y", 4, 1.0));
  EXPECT_TRUE(published<Vote>(n.run(500)).empty());
  EXPECT_EQ(n.disk().voted_for, "x");
  // The next term is a new vote.
  const auto fx = n.msg(510, candidacy("y", 5, 1.0));
  EXPECT_EQ(sequence(fx), "persist");
  EXPECT_EQ(n.disk(), (PersistentState{5, "", 0, 0}));
  const auto votes = published<Vote>(n.run(600));
  ASSERT_EQ(votes.size(), 1u);
  EXPECT_EQ(votes[0].candidate, "y");
}

TEST(Election, StaleMessagesAreIgnoredAndCounted) {
  auto cfg = fast_config();
  cfg.cluster_size = 7;
  Node n(cfg, "self", PersistentState{5, "", 0, 0});
  n.start(0);
  EXPECT_EQ(sequence(n.msg(10, heartbeat("a", 4))), "");
  EXPECT_EQ(n.e().admin(), "");
  EXPECT_EQ(n.e().stale_messages(), 1u);
  EXPECT_EQ(sequence(n.msg(20, candidacy("a", 3, 1.0))), "");
  EXPECT_EQ(sequence(n.msg(30, vote("a", 2, "self"))), "");
  EXPECT_EQ(n.e().stale_messages(), 3u);
  EXPECT_TRUE(published<Vote>(n.run(500)).empty());
  // An old presence is still a sign of life, not counted as stale.
  n.msg(510, presence("b", 1));
  EXPECT_EQ(n.e().stale_messages(), 3u);
  EXPECT_EQ(n.e().members_heard(at(510)), 2u);  // self and b (a was heard too long ago)
  EXPECT_EQ(n.e().term(), 5u);
}

TEST(Election, AHigherTermInAnyMessageMakesTheAdminStepDown) {
  Node n = lone_admin();
  const uint64_t term = n.e().term();
  const auto fx = n.msg(1500, presence("p", term + 3));
  EXPECT_EQ(sequence(fx), "persist admin");
  EXPECT_EQ(n.e().role(), Role::follower);
  EXPECT_EQ(n.e().term(), term + 3);
  EXPECT_EQ(n.e().admin(), "");  // a presence does not make its sender admin
  EXPECT_EQ(n.disk().voted_for, "");
  EXPECT_EQ(n.disk().admin_ms_total, 1500u - 350u);  // the reign, from the win at 350 ms
  const auto changed = effects_of<AdminChanged>(fx);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].old_admin, "self");
  EXPECT_EQ(changed[0].new_admin, "");
  EXPECT_EQ(changed[0].term, term + 3);
}

TEST(Election, HigherTermVoteOrCandidacyAlsoEndsAReign) {
  Node a = lone_admin();
  a.msg(1500, vote("v", 9, "w"));
  EXPECT_EQ(a.e().role(), Role::follower);
  EXPECT_EQ(a.e().term(), 9u);
  Node b = lone_admin();
  b.msg(1500, candidacy("c", 2, 0.1));
  EXPECT_EQ(b.e().role(), Role::follower);
  EXPECT_EQ(b.e().term(), 2u);
}

TEST(Election, HeartbeatsKeepAFollowerAndTheirLossStartsACandidacy) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  n.msg(5, presence("b"));
  const auto first = n.msg(10, heartbeat("a", 2));
  EXPECT_EQ(sequence(first), "persist admin");
  EXPECT_EQ(n.e().admin(), "a");
  EXPECT_EQ(n.e().term(), 2u);
  Effects all;
  uint64_t t = 10;
  for (; t <= 5000; t += 100) {
    auto fx = n.msg(t, heartbeat("a", 2));
    all.insert(all.end(), fx.begin(), fx.end());
    fx = n.msg(t + 1, presence("b", 2, "a"));
    all.insert(all.end(), fx.begin(), fx.end());
    fx = n.run(t + 99);
    all.insert(all.end(), fx.begin(), fx.end());
  }
  EXPECT_TRUE(effects_of<ElectionTriggered>(all).empty());
  EXPECT_TRUE(effects_of<AdminChanged>(all).empty());
  // The admin goes silent (b still speaks): after heartbeat_timeout_ms the admin is gone and the
  // candidacy starts (no jitter here).
  const uint64_t last_beat = t - 100;
  Effects after;
  for (uint64_t u = t; u <= last_beat + 400; u += 100) {
    auto fx = n.msg(u, presence("b", 2, ""));
    after.insert(after.end(), fx.begin(), fx.end());
    fx = n.run(u + 99);
    after.insert(after.end(), fx.begin(), fx.end());
  }
  const auto triggered = effects_of<ElectionTriggered>(after);
  ASSERT_EQ(triggered.size(), 1u);
  EXPECT_EQ(triggered[0].trigger, Trigger::heartbeat_timeout);
  EXPECT_EQ(triggered[0].term, 3u);
  EXPECT_EQ(sequence(after).rfind("admin trigger persist candidacy", 0), 0u) << sequence(after);
}

TEST(Election, ACandidateFollowsAHeartbeatOfItsTerm) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  for (uint64_t t = 10; t < 300; t += 100) n.msg(t, presence("a"));  // a member heard lately
  n.run(300);
  ASSERT_EQ(n.e().role(), Role::candidate);
  const auto fx = n.msg(320, heartbeat("a", 1));
  EXPECT_EQ(n.e().role(), Role::follower);
  EXPECT_EQ(n.e().admin(), "a");
  EXPECT_EQ(sequence(fx), "admin");
  // Its vote window closed with the heartbeat: the term is decided.
  for (const auto &v : published<Vote>(n.run(1000))) EXPECT_NE(v.term, 1u);
}

TEST(Election, WinsOnlyWithAQuorumOfDistinctVoters) {
  auto cfg = fast_config();
  cfg.cluster_size = 5;  // quorum 3
  Node n(cfg, "n1");
  n.start(0);
  for (const char *p : {"n2", "n3", "n4", "n5"}) n.msg(10, presence(p));
  std::string why;
  ASSERT_TRUE(n.manual(20, &why).has_value()) << why;
  EXPECT_EQ(n.e().role(), Role::candidate);
  n.run(70);  // its own vote
  EXPECT_EQ(n.disk().voted_for, "n1");
  for (int i = 0; i < 1000; ++i) n.msg(80, vote("n2", 1, "n1"));  // a flood from one voter
  EXPECT_EQ(n.e().role(), Role::candidate);
  n.msg(81, vote("n4", 1, "n5"));     // a vote for someone else
  n.msg(82, vote("n5", 2 - 1, "n9"));
  EXPECT_EQ(n.e().role(), Role::candidate);
  const auto fx = n.msg(90, vote("n3", 1, "n1"));
  EXPECT_EQ(n.e().role(), Role::admin);
  EXPECT_EQ(sequence(fx), "persist admin heartbeat");
}

TEST(Election, ACandidateWithoutQuorumRetriesInTheNextTerm) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  Effects all;
  for (uint64_t t = 0; t < 1000; t += 100) {
    auto fx = n.msg(t + 1, presence("a"));
    all.insert(all.end(), fx.begin(), fx.end());
    fx = n.run(t + 99);
    all.insert(all.end(), fx.begin(), fx.end());
  }
  const auto triggered = effects_of<ElectionTriggered>(all);
  ASSERT_GE(triggered.size(), 2u);
  EXPECT_EQ(triggered[0].term, 1u);
  EXPECT_EQ(triggered[1].term, 2u);
  EXPECT_EQ(triggered[1].trigger, Trigger::discovery_failure);  // still no admin ever heard
  EXPECT_NE(n.e().role(), Role::admin);
}

TEST(Election, AnAdminThatStopsHearingAQuorumStepsDownAndWaits) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  for (uint64_t t = 10; t < 300; t += 100) n.msg(t, presence("a"));
  n.run(300);
  n.run(350);
  n.msg(355, vote("a", 1, "self"));
  ASSERT_EQ(n.e().role(), Role::admin);
  // a falls silent at 355: heard until 755, then heartbeat_timeout_ms more without a quorum.
  const auto fx = n.run(5000);
  const auto triggered = effects_of<ElectionTriggered>(fx);
  ASSERT_EQ(triggered.size(), 1u);
  EXPECT_EQ(triggered[0].trigger, Trigger::quorum_loss);
  EXPECT_EQ(triggered[0].term, 1u);
  EXPECT_EQ(n.e().role(), Role::follower);
  EXPECT_EQ(n.e().admin(), "");
  EXPECT_EQ(n.e().term(), 1u);  // no candidacies without a quorum: the term does not grow
  const auto changed = effects_of<AdminChanged>(fx);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].old_admin, "self");
  EXPECT_GT(n.disk().admin_ms_total, 0u);
  // The step-down came between 755 + 400 and one heartbeat later.
  const auto beats = published<Heartbeat>(fx);
  ASSERT_FALSE(beats.empty());
  EXPECT_GE(beats.size(), 7u);
  EXPECT_LE(beats.size(), 9u);
}

TEST(Election, SplitBrainOfAnAdminIsDetectedAndEndedByANewTerm) {
  Node n = lone_admin();
  const auto fx = n.msg(1500, heartbeat("other", 1));
  EXPECT_EQ(sequence(fx).rfind("split persist admin", 0), 0u) << sequence(fx);
  const auto split = effects_of<SplitBrainDetected>(fx);
  ASSERT_EQ(split.size(), 1u);
  EXPECT_EQ(split[0].term, 1u);
  EXPECT_EQ(split[0].admin_a, "self");
  EXPECT_EQ(split[0].admin_b, "other");
  EXPECT_EQ(n.e().split_brains(), 1u);
  // No jitter configured: the new term's candidacy starts at once, and a cluster of one wins it.
  const auto triggered = effects_of<ElectionTriggered>(fx);
  ASSERT_EQ(triggered.size(), 1u);
  EXPECT_EQ(triggered[0].trigger, Trigger::split_brain);
  EXPECT_EQ(triggered[0].term, 2u);
  n.run(1600);
  EXPECT_EQ(n.e().role(), Role::admin);
  EXPECT_EQ(n.e().term(), 2u);
}

TEST(Election, SplitBrainSeenByAFollowerStopsFollowingEither) {
  auto cfg = fast_config();
  cfg.cluster_size = 5;
  cfg.max_jitter_ms = 1000;
  Node n(cfg, "self");
  n.start(0);
  n.msg(10, heartbeat("a", 3));
  ASSERT_EQ(n.e().admin(), "a");
  const auto fx = n.msg(20, heartbeat("b", 3));
  EXPECT_EQ(sequence(fx), "split admin");
  EXPECT_EQ(n.e().admin(), "");
  EXPECT_EQ(n.e().split_brains(), 1u);
  // Heartbeats of the disputed term are no longer followed, from either.
  EXPECT_EQ(sequence(n.msg(30, heartbeat("a", 3, 2))), "");
  EXPECT_EQ(sequence(n.msg(40, heartbeat("b", 3, 2))), "");
  EXPECT_EQ(n.e().split_brains(), 1u);
  EXPECT_EQ(n.e().admin(), "");
  // A heartbeat of the next term is followed again.
  n.msg(50, heartbeat("c", 4));
  EXPECT_EQ(n.e().admin(), "c");
}

TEST(Election, ManualTriggerIsRefusedInTheStabilityWindowAndWithoutQuorum) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  std::string why;
  EXPECT_FALSE(n.manual(10, &why).has_value());
  EXPECT_NE(why.find("quorum"), std::string::npos) << why;
  n.msg(20, presence("b"));
  n.msg(30, heartbeat("a", 1));
  why.clear();
  EXPECT_FALSE(n.manual(500, &why).has_value());
  EXPECT_NE(why.find("stability window"), std::string::npos) << why;
  for (uint64_t t = 100; t <= 1100; t += 100) {
    n.msg(t, heartbeat("a", 1, t));
    n.msg(t, presence("b", 1, "a"));
  }
  const auto fx = n.manual(1100, &why);
  ASSERT_TRUE(fx.has_value()) << why;
  EXPECT_EQ(sequence(*fx), "trigger persist admin candidacy");
  EXPECT_EQ(effects_of<ElectionTriggered>(*fx)[0].trigger, Trigger::manual);
  EXPECT_EQ(n.e().term(), 2u);
  EXPECT_EQ(n.e().role(), Role::candidate);
}

TEST(Election, ManualTriggerOnTheAdminEndsItsReignWithANewTerm) {
  Node n = lone_admin();  // won at 350
  std::string why;
  EXPECT_FALSE(n.manual(1000, &why).has_value());
  const auto fx = n.manual(1400, &why);
  ASSERT_TRUE(fx.has_value()) << why;
  EXPECT_EQ(sequence(*fx), "trigger persist admin candidacy");
  EXPECT_EQ(n.e().term(), 2u);
  EXPECT_EQ(n.disk().admin_ms_total, 1050u);
  n.run(2000);
  EXPECT_EQ(n.e().role(), Role::admin);  // a cluster of one elects itself again
  EXPECT_EQ(n.disk().admin_terms, 2u);
}

TEST(Election, OwnAndNonMemberMessagesAreIgnored) {
  auto cfg = fast_config();
  cfg.members = {"self", "a", "b", "a"};  // listed twice still counts once
  Node n(cfg, "self");
  n.start(0);
  EXPECT_EQ(n.e().quorum(), 2u);
  EXPECT_EQ(sequence(n.msg(10, heartbeat("self", 9))), "");
  EXPECT_EQ(sequence(n.msg(20, presence("x", 9))), "");
  EXPECT_EQ(sequence(n.msg(30, heartbeat("x", 9))), "");
  EXPECT_EQ(n.e().term(), 0u);
  EXPECT_EQ(n.e().members_heard(at(30)), 1u);
  EXPECT_EQ(n.e().members(at(30)).size(), 1u);
  n.msg(40, heartbeat("a", 2));
  EXPECT_EQ(n.e().admin(), "a");
}

TEST(Election, QuorumFollowsMembersThenClusterSizeThenWhoIsHeard) {
  auto cfg = fast_config();
  cfg.members = {"a", "b", "c", "d", "e"};
  cfg.cluster_size = 99;
  EXPECT_EQ(Election(cfg, "a", {}, 1).quorum(), 3u);
  cfg.members.clear();
  EXPECT_EQ(Election(cfg, "a", {}, 1).quorum(), 50u);
  cfg.cluster_size = 0;
  Node n(cfg, "self");
  n.start(0);
  EXPECT_EQ(n.e().quorum(), 1u);
  for (const char *p : {"a", "b", "c"}) n.msg(10, presence(p));
  EXPECT_EQ(n.e().members_heard(at(10)), 4u);
  EXPECT_EQ(n.e().quorum(), 3u);
  EXPECT_EQ(n.e().members_heard(at(411)), 1u);  // heard more than heartbeat_timeout_ms ago
}

TEST(Election, TrackedPeersAreBounded) {
  auto cfg = fast_config();
  cfg.max_tracked_peers = 16;
  Node n(cfg, "self");
  n.start(0);
  for (int i = 0; i < 1000; ++i) n.msg(1 + i / 100, presence("p" + std::to_string(i)));
  EXPECT_LE(n.e().members(at(20)).size(), 17u);
  EXPECT_LE(n.e().members_heard(at(20)), 17u);
  // The most recently heard are the ones kept.
  bool newest = false;
  for (const auto &m : n.e().members(at(20))) newest = newest || m.id == "p999";
  EXPECT_TRUE(newest);
}

TEST(Election, CandidaciesPerTermAreBounded) {
  auto cfg = fast_config();
  cfg.cluster_size = 5;
  Node n(cfg, "self");
  n.start(0);
  // 200 candidacies of one term, each better than the last: only the first 64 are considered.
  for (int i = 0; i < 200; ++i) n.msg(10, candidacy("c" + std::to_string(1000 + i), 1, i / 200.0));
  const auto votes = published<Vote>(n.run(100));
  ASSERT_EQ(votes.size(), 1u);
  EXPECT_EQ(votes[0].candidate, "c1063");
}

TEST(Election, MembersViewShowsSelfFirstThenPeersById) {
  Node n(fast_config(), "self");
  n.start(0);
  n.e().set_score(ScoreComponents{1, 1, 0, 0, 0}, 0.5);
  n.msg(100, presence("zed", 0, ""));
  n.msg(150, heartbeat("amy", 2));
  const auto view = n.e().members(at(200));
  ASSERT_EQ(view.size(), 3u);
  EXPECT_TRUE(view[0].self);
  EXPECT_EQ(view[0].id, "self");
  EXPECT_EQ(view[0].score, 0.5);
  EXPECT_EQ(view[0].admin, "amy");
  EXPECT_EQ(view[1].id, "amy");
  EXPECT_EQ(view[1].last_heard_ago_ms, 50u);
  EXPECT_EQ(view[1].term, 2u);
  EXPECT_EQ(view[1].admin, "amy");
  EXPECT_EQ(view[2].id, "zed");
  EXPECT_EQ(view[2].last_heard_ago_ms, 100u);
  EXPECT_EQ(n.e().score(), 0.5);
  EXPECT_EQ(n.e().score_components().uptime, 1.0);
}

TEST(Election, ARejoiningNodeWaitsForTheAdminItsPeersReport) {
  auto cfg = fast_config();
  cfg.cluster_size = 3;
  Node n(cfg, "self");
  n.start(0);
  // Past discovery, hearing a quorum - but b follows a live admin of a later term: no candidacy,
  // only the heartbeat that follows.
  Effects all;
  for (uint64_t t = 500; t < 2000; t += 100) {
    auto fx = n.msg(t, presence("b", 4, "a"));
    all.insert(all.end(), fx.begin(), fx.end());
    fx = n.run(t + 99);
    all.insert(all.end(), fx.begin(), fx.end());
  }
  EXPECT_TRUE(effects_of<ElectionTriggered>(all).empty());
  EXPECT_EQ(n.e().term(), 4u);
  n.msg(2000, heartbeat("a", 4));
  EXPECT_EQ(n.e().admin(), "a");
  // Once b reports no admin any more, the election timer may run again.
  Effects later;
  for (uint64_t t = 2100; t < 4000; t += 100) {
    auto fx = n.msg(t, presence("b", 4, ""));
    later.insert(later.end(), fx.begin(), fx.end());
    fx = n.run(t + 99);
    later.insert(later.end(), fx.begin(), fx.end());
  }
  const auto triggered = effects_of<ElectionTriggered>(later);
  ASSERT_FALSE(triggered.empty());
  EXPECT_EQ(triggered[0].trigger, Trigger::heartbeat_timeout);
  EXPECT_EQ(triggered[0].term, 5u);
}

TEST(Election, MembersCutOffWithTheAdminDoNotMakeAQuorumToRunOn) {
  // A partition cuts this node off from its admin a and from b and c at once: when a's heartbeat
  // times out, b and c were heard as long ago as a. They still count in members_heard() (heard within
  // heartbeat_timeout_ms), but not as a quorum to start a candidacy on: the term does not grow.
  auto cfg = fast_config();
  cfg.cluster_size = 5;
  Node n(cfg, "self");
  n.start(0);
  for (uint64_t t = 10; t <= 1000; t += 100) {
    n.msg(t, heartbeat("a", 3, t));
    n.msg(t + 1, presence("b", 3, "a"));
    n.msg(t + 2, presence("c", 3, "a"));
    n.msg(t + 3, presence("d", 3, "a"));
    n.run(t + 99);
  }
  ASSERT_EQ(n.e().admin(), "a");
  // Only d (on this side of the cut) is heard from now on.
  Effects fx;
  for (uint64_t t = 1010; t <= 3000; t += 100) {
    auto more = n.msg(t, presence("d", 3, ""));
    fx.insert(fx.end(), more.begin(), more.end());
    more = n.run(t + 99);
    fx.insert(fx.end(), more.begin(), more.end());
  }
  EXPECT_EQ(n.e().admin(), "");
  EXPECT_TRUE(effects_of<ElectionTriggered>(fx).empty());
  EXPECT_EQ(n.e().term(), 3u);
}

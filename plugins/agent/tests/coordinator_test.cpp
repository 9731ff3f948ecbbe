// The coordinator of several agents in one process: a simulated network (per-message latency, agents
// that vanish), a manual clock and fake work. Every run is deterministic (a seeded generator).
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "claim_rule.hpp"
#include "coordinator.hpp"

namespace chorus::agent {
namespace {

struct SimOptions {
  size_t agents = 5;
  uint32_t max_tasks = 3;
  uint64_t work_ms = 400;
  uint64_t step_ms = 10;
  CoordinatorConfig base;
  SimOptions() {
    base.claim_window_ms = 100;
    base.progress_interval_ms = 50;
    base.owner_timeout_ms = 400;
    base.unclaimed_retry_ms = 300;
    base.reannounce_step_ms = 50;
  }
};

class Sim {
 public:
  // Latency of one message from agent `from` to agent `to`, in ms.
  std::function<uint64_t(size_t from, size_t to, const Message &)> latency = [](size_t, size_t, const Message &) {
    return uint64_t{5};
  };
  // Whether `from` can reach `to` now; a message is lost when the link is down at send or delivery.
  std::function<bool(size_t from, size_t to)> link = [](size_t, size_t) { return true; };
  // What agent i knows of the election and the quorum (default: neither runs).
  std::function<Fencing(size_t i)> fencing;

  explicit Sim(SimOptions o = {}) : o_(o) {
    for (size_t i = 0; i < o_.agents; ++i) {
      auto n = std::make_unique<Node>();
      n->node = "12D3KooWNode" + std::to_string(i);
      n->agent = "agent-" + std::to_string(i);
      nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < o_.agents; ++i) {
      CoordinatorConfig cfg = o_.base;
      cfg.node_id = nodes_[i]->node;
      cfg.agent_id = nodes_[i]->agent;
      cfg.capabilities = {"general", "reasoning"};
      cfg.max_tasks = o_.max_tasks;
      Outbound out;
      out.publish = [this, i](const Message &m) { send(i, m); };
      out.start_work = [this, i](const TaskSpec &t) {
        nodes_[i]->work.push_back(Work{t.task_id, t.attempt, now_ + o_.work_ms});
        ++started_[t.task_id];
      };
      out.cancel_work = [this, i](const std::string &task) {
        auto &w = nodes_[i]->work;
        w.erase(std::remove_if(w.begin(), w.end(), [&](const Work &x) { return x.task == task; }), w.end());
      };
      out.reannounce_peers = [this]() -> std::optional<std::vector<std::string>> {
        std::vector<std::string> ids;
        for (const auto &n : nodes_) ids.push_back(n->node);
        return ids;
      };
      out.fencing = [this, i] { return fencing ? fencing(i) : Fencing{}; };
      out.count = [this](const std::string &event) { ++events_[event]; };
      out.duplicate_completion = [this] { ++duplicates_; };
      nodes_[i]->c = std::make_unique<Coordinator>(cfg, out);
    }
  }

  Coordinator &agent(size_t i) { return *nodes_[i]->c; }
  void kill(size_t i) { nodes_[i]->alive = false; }
  bool alive(size_t i) const { return nodes_[i]->alive; }
  uint64_t now() const { return now_; }
  Now at() const { return Now{now_, static_cast<int64_t>(1'700'000'000'000 + now_)}; }

  void announce(size_t i, const std::string &id, std::vector<std::string> required = {}) {
    TaskAnnouncement a;
    a.task_id = id;
    a.title = "task " + id;
    a.required_capabilities = std::move(required);
    ASSERT_TRUE(agent(i).announce(a, at()));
  }

  // Runs until pred() or the deadline (simulated ms); returns pred().
  bool run_until(const std::function<bool()> &pred, uint64_t deadline_ms) {
    const uint64_t end = now_ + deadline_ms;
    while (now_ < end) {
      if (pred()) return true;
      step();
    }
    return pred();
  }

  void step() {
    now_ += o_.step_ms;
    // Deliver what is due, in send order.
    std::vector<InFlight> due;
    for (auto it = flight_.begin(); it != flight_.end();) {
      if (it->at <= now_) {
        due.push_back(*it);
        it = flight_.erase(it);
      } else {
        ++it;
      }
    }
    std::stable_sort(due.begin(), due.end(), [](const InFlight &a, const InFlight &b) { return a.at < b.at; });
    for (const InFlight &f : due)
      if (nodes_[f.to]->alive && link(f.from, f.to)) nodes_[f.to]->c->heard(f.m, at());
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Node &n = *nodes_[i];
      if (!n.alive) continue;
      std::vector<Work> finished;
      for (auto it = n.work.begin(); it != n.work.end();) {
        if (it->done_at <= now_) {
          finished.push_back(*it);
          it = n.work.erase(it);
        } else {
          ++it;
        }
      }
      for (const Work &w : finished) {
        WorkResult r;
        r.ok = true;
        r.summary = "done by " + n.agent;
        n.c->work_done(w.task, w.attempt, r, o_.work_ms, at());
      }
      n.c->tick(at());
      max_seen_ = std::max(max_seen_, n.c->current_tasks());
    }
  }

  std::map<std::string, int> completions;               // task_complete messages per task
  std::map<std::string, std::set<std::string>> completers;
  // Distinct completed outcomes (attempt, owner node) per task: a retold outcome is the same one.
  std::map<std::string, std::set<std::pair<uint32_t, std::string>>> outcomes;
  std::map<std::string, int> &events() { return events_; }
  int duplicates() const { return duplicates_; }
  uint32_t max_concurrent() const { return max_seen_; }
  std::vector<Message> sent;

 private:
  struct Work {
    std::string task;
    uint32_t attempt;
    uint64_t done_at;
  };
  struct Node {
    std::string node, agent;
    std::unique_ptr<Coordinator> c;
    bool alive = true;
    std::vector<Work> work;
  };
  struct InFlight {
    uint64_t at;
    size_t from, to;
    Message m;
  };
  void send(size_t from, const Message &m) {
    if (!nodes_[from]->alive) return;
    sent.push_back(m);
    if (const auto *c = std::get_if<TaskComplete>(&m)) {
      ++completions[c->task_id];
      completers[c->task_id].insert(c->agent_id);
      if (c->status == "completed") outcomes[c->task_id].insert({c->attempt, c->node_id});
    }
    for (size_t to = 0; to < nodes_.size(); ++to)
      if (to != from && link(from, to)) flight_.push_back(InFlight{now_ + latency(from, to, m), from, to, m});
  }

  SimOptions o_;
  uint64_t now_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<InFlight> flight_;
  std::map<std::string, int> started_;
  std::map<std::string, int> events_;
  int duplicates_ = 0;
  uint32_t max_seen_ = 0;
};

std::string task_name(int i) { return "task-" + std::to_string(i); }

// Every task done exactly once, and every live agent knows it is done and by whom.
void expect_each_completed_once(Sim &sim, int tasks) {
  for (int i = 0; i < tasks; ++i) {
    const std::string id = task_name(i);
    EXPECT_EQ(sim.completions[id], 1) << id;
    EXPECT_EQ(sim.completers[id].size(), 1u) << id;
    for (size_t a = 0; a < 5; ++a) {
      if (!sim.alive(a)) continue;
      auto v = sim.agent(a).task(id);
      ASSERT_TRUE(v) << id << " unknown to agent " << a;
      EXPECT_EQ(v->status, TaskStatus::completed) << id << " at agent " << a;
      EXPECT_EQ(v->completed_by, *sim.completers[id].begin()) << id << " at agent " << a;
    }
  }
  EXPECT_EQ(sim.duplicates(), 0);
}

std::function<bool()> all_completed(Sim &sim, int tasks) {
  return [&sim, tasks] {
    for (int i = 0; i < tasks; ++i)
      if (sim.completions[task_name(i)] == 0) return false;
    return true;
  };
}

TEST(Coordinator, FiftyTasksOverFiveAgentsEachOwnedAndCompletedOnce) {
  Sim sim;
  for (int i = 0; i < 50; ++i) sim.announce(static_cast<size_t>(i % 5), task_name(i));
  ASSERT_TRUE(sim.run_until(all_completed(sim, 50), 60000));
  sim.run_until([] { return false; }, 2000);  // let stragglers speak: no second completion may follow
  expect_each_completed_once(sim, 50);
  EXPECT_LE(sim.max_concurrent(), 3u);  // nobody claims beyond max_tasks
  // 15 slots for 50 tasks: the rest waited for unclaimed_retry and were re-announced.
  EXPECT_GT(sim.events()["reannounced"], 0);
  // The load is spread: every agent completed something.
  std::set<std::string> workers;
  for (const auto &[task, who] : sim.completers) workers.insert(who.begin(), who.end());
  EXPECT_EQ(workers.size(), 5u);
}

TEST(Coordinator, OwnerThatDisappearsMidTaskIsReplaced) {
  SimOptions o;
  o.work_ms = 1000;
  Sim sim(o);
  for (int i = 0; i < 50; ++i) sim.announce(static_cast<size_t>(i % 5), task_name(i));
  // Let the first tasks start, then agent 2 vanishes with its work unfinished.
  ASSERT_TRUE(sim.run_until([&] { return sim.agent(2).current_tasks() > 0; }, 5000));
  std::vector<std::string> orphaned;
  for (const TaskView &t : sim.agent(2).tasks())
    if (t.status == TaskStatus::working && t.owner_agent == "agent-2") orphaned.push_back(t.task_id);
  ASSERT_FALSE(orphaned.empty());
  sim.kill(2);
  ASSERT_TRUE(sim.run_until(all_completed(sim, 50), 120000));
  sim.run_until([] { return false; }, 3000);
  expect_each_completed_once(sim, 50);
  for (const std::string &id : orphaned) {
    EXPECT_NE(*sim.completers[id].begin(), "agent-2") << id;
    EXPECT_GE(sim.agent(0).task(id)->attempt, 2u) << id << " was re-announced";
  }
}

TEST(Coordinator, LateClaimsNeverGiveTwoCompletions) {
  Sim sim;
  std::mt19937 rng(19);
  // A third of the claims reach some agents only after their claim window has closed, so agents
  // disagree on the claim sets and two of them may start the same attempt.
  sim.latency = [&rng](size_t, size_t, const Message &m) -> uint64_t {
    if (std::holds_alternative<TaskClaim>(m) && rng() % 3 == 0) return 150 + rng() % 100;
    return 5 + rng() % 20;
  };
  for (int i = 0; i < 50; ++i) sim.announce(static_cast<size_t>(i % 5), task_name(i));
  ASSERT_TRUE(sim.run_until(all_completed(sim, 50), 60000));
  sim.run_until([] { return false; }, 2000);
  expect_each_completed_once(sim, 50);
  EXPECT_GT(sim.events()["yielded"], 0) << "the late claims should have produced double owners that yielded";
}

TEST(Coordinator, TaskNobodyCanDoIsReannouncedButNeverClaimed) {
  Sim sim;
  sim.announce(0, "special", {"quantum"});
  sim.run_until([] { return false; }, 2000);
  auto v = sim.agent(1).task("special");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->status, TaskStatus::announced);
  EXPECT_GE(v->attempt, 3u);
  EXPECT_TRUE(v->claims.empty());
  EXPECT_EQ(sim.events()["claimed"], 0);
  EXPECT_EQ(sim.completions["special"], 0);
}

TEST(Coordinator, CompletedTaskIsNeverClaimedAgainAndDuplicatesAreCounted) {
  Sim sim;
  sim.announce(0, task_name(0));
  ASSERT_TRUE(sim.run_until(all_completed(sim, 1), 5000));
  sim.run_until([] { return false; }, 200);
  const int claims_before = sim.events()["claimed"];
  TaskAnnouncement again;
  again.task_id = task_name(0);
  again.attempt = 7;
  again.title = "again";
  again.announced_by = "agent-x";
  sim.agent(1).heard(again, sim.at());
  EXPECT_EQ(sim.events()["claimed"], claims_before);
  EXPECT_EQ(sim.agent(1).task(task_name(0))->status, TaskStatus::completed);
  TaskComplete dup{task_name(0), 7, "12D3KooWOther", "agent-x", "completed", "", "", "", 1};
  sim.agent(1).heard(dup, sim.at());
  EXPECT_EQ(sim.duplicates(), 1);
  EXPECT_FALSE(sim.agent(1).announce(again, sim.at())) << "a known task id is refused";
}

TEST(Coordinator, NewerAttemptSupersedesWorkInProgress) {
  SimOptions o;
  o.work_ms = 100000;
  Sim sim(o);
  sim.announce(0, "long");
  ASSERT_TRUE(sim.run_until([&] { return sim.agent(0).task("long")->status == TaskStatus::working; }, 2000));
  std::string owner_agent = sim.agent(0).task("long")->owner_agent;
  ASSERT_FALSE(owner_agent.empty());
  const size_t owner = static_cast<size_t>(owner_agent.back() - '0');
  ASSERT_EQ(sim.agent(owner).current_tasks(), 1u);
  TaskClaim newer{"long", 2, "12D3KooWOther", "agent-x", 0, 3};
  sim.agent(owner).heard(newer, sim.at());
  EXPECT_EQ(sim.agent(owner).current_tasks(), 0u) << "attempt 2 cancels the work on attempt 1";
  EXPECT_EQ(sim.agent(owner).task("long")->attempt, 2u);
}

// With an election the admin's task_assign makes the owner: claims that reach agents late (so that
// they would compute different owners by rank) and lost `started` messages cannot make two owners.
TEST(Coordinator, AdminAssignsOwnersSoLateClaimsNeverMakeTwoOwners) {
  Sim sim;
  std::mt19937 rng(21);
  sim.fencing = [](size_t i) { return Fencing{true, i == 0, 0}; };
  sim.latency = [&rng](size_t, size_t, const Message &m) -> uint64_t {
    if (std::holds_alternative<TaskClaim>(m) && rng() % 3 == 0) return 150 + rng() % 100;
    return 5 + rng() % 20;
  };
  sim.link = [&rng](size_t, size_t) { return rng() % 20 != 0; };  // 5 % of all messages are lost
  for (int i = 0; i < 50; ++i) sim.announce(static_cast<size_t>(i % 5), task_name(i));
  ASSERT_TRUE(sim.run_until(all_completed(sim, 50), 120000));
  sim.run_until([] { return false; }, 2000);
  // One outcome per task; the admin or owner may tell it again to agents that missed it (lost messages).
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sim.outcomes[task_name(i)].size(), 1u) << task_name(i);
  EXPECT_EQ(sim.duplicates(), 0);
  EXPECT_EQ(sim.events()["yielded"], 0) << "an assigned owner never has a rival to yield to";
  EXPECT_GE(sim.events()["assigned"], 50);
}

// A partition with the owners of some tasks on the minority side: their results cannot reach the
// quorum there, the majority re-runs the tasks and commits them, and after the heal the minority
// learns the majority's outcome. Every task has one outcome, known to every agent.
TEST(Coordinator, PartitionedOwnersNeverCommitAndLearnTheMajorityOutcome) {
  SimOptions o;
  o.work_ms = 1000;
  Sim sim(o);
  const std::set<size_t> minority = {0, 1};
  bool partitioned = false;
  uint64_t partition_at = 0;
  sim.link = [&](size_t a, size_t b) { return !partitioned || (minority.count(a) == minority.count(b)); };
  sim.fencing = [&](size_t i) {
    if (!partitioned) return Fencing{true, i == 0, 3};
    // Agent 0 goes on believing it is the admin for a while (it has not noticed the lost quorum);
    // the majority elects agent 2 after its timeout.
    const uint64_t since = sim.now() - partition_at;
    const bool admin = (i == 0 && since < 300) || (i == 2 && since >= 400);
    return Fencing{true, admin, 3};
  };
  for (int i = 0; i < 20; ++i) sim.announce(static_cast<size_t>(i % 5), task_name(i));
  // Partition once the minority works on something.
  ASSERT_TRUE(sim.run_until([&] { return sim.agent(0).current_tasks() + sim.agent(1).current_tasks() >= 2; }, 5000));
  std::vector<std::string> stranded;
  for (size_t a : minority)
    for (const TaskView &t : sim.agent(a).tasks())
      if (t.status == TaskStatus::working && t.owner_node == "12D3KooWNode" + std::to_string(a))
        stranded.push_back(t.task_id);
  ASSERT_FALSE(stranded.empty());
  partitioned = true;
  partition_at = sim.now();
  sim.run_until([] { return false; }, 4000);
  EXPECT_GT(sim.events()["proposed"], 0);
  for (const std::string &id : stranded) {
    // The minority finished its work but could not commit it.
    EXPECT_NE(sim.agent(0).task(id)->status, TaskStatus::completed) << id;
  }
  partitioned = false;  // heal
  ASSERT_TRUE(sim.run_until(
      [&] {
        for (int i = 0; i < 20; ++i)
          for (size_t a = 0; a < 5; ++a)
            if (sim.agent(a).task(task_name(i))->status != TaskStatus::completed) return false;
        return true;
      },
      60000));
  sim.run_until([] { return false; }, 3000);
  for (int i = 0; i < 20; ++i) {
    const std::string id = task_name(i);
    ASSERT_EQ(sim.outcomes[id].size(), 1u) << id << " has more than one outcome";
    const auto [attempt, owner] = *sim.outcomes[id].begin();
    for (size_t a = 0; a < 5; ++a) {
      auto v = sim.agent(a).task(id);
      EXPECT_EQ(v->attempt >= attempt, true) << id;
      EXPECT_EQ(v->owner_node, owner) << id << " at agent " << a;
    }
  }
  for (const std::string &id : stranded)
    EXPECT_GE(sim.outcomes[id].begin()->first, 2u) << id << " was re-run by the majority";
  EXPECT_EQ(sim.duplicates(), 0);
}

// The owner dies right after offering its result: every agent acknowledges it and counts the quorum,
// so the outcome is committed, but the owner never publishes its task_complete. The admin does, once
// (relayed), and no second outcome appears. Found by the 30-minute cluster soak (1 task in 1484).
TEST(Coordinator, AnOwnerThatDiesAfterItsResultHasTheOutcomeRecordedByTheAdmin) {
  Sim sim;
  sim.fencing = [&sim](size_t i) {
    size_t admin = 0;
    while (!sim.alive(admin)) ++admin;  // the lowest live agent is the admin
    return Fencing{true, i == admin, 3};
  };
  std::optional<size_t> owner;
  sim.latency = [&](size_t from, size_t, const Message &m) -> uint64_t {
    if (std::holds_alternative<TaskResult>(m) && !owner) {
      owner = from;
      sim.kill(from);  // after this send: the result still reaches everyone
    }
    return 5;
  };
  sim.announce(1, task_name(0));
  ASSERT_TRUE(sim.run_until([&] { return owner.has_value(); }, 5000));
  ASSERT_TRUE(sim.run_until([&] { return sim.completions[task_name(0)] > 0; }, 5000))
      << "nobody published the committed outcome";
  sim.run_until([] { return false; }, 1000);
  EXPECT_EQ(sim.completions[task_name(0)], 1);
  ASSERT_EQ(sim.outcomes[task_name(0)].size(), 1u);
  EXPECT_EQ(sim.outcomes[task_name(0)].begin()->second, "12D3KooWNode" + std::to_string(*owner))
      << "the record names the dead owner's result, not a new attempt";
  EXPECT_EQ(sim.events()["recorded"], 1);
  for (size_t a = 0; a < 5; ++a) {
    if (sim.alive(a)) {
      EXPECT_EQ(sim.agent(a).task(task_name(0))->status, TaskStatus::completed) << a;
    }
  }
}

TEST(ClaimRule, RankIsSha256OfTaskAttemptAndNode) {
  const Rank r = rank("task-1", 1, "12D3KooWA");
  std::string hex;
  for (uint8_t b : r) {
    static const char *d = "0123456789abcdef";
    hex += d[b >> 4];
    hex += d[b & 15];
  }
  EXPECT_EQ(hex, "8c024d007abe2ab35b79a89f2e456cdfdccc4b4a625701df5cbdb931e7dcbd84");
  const std::vector<std::string> nodes{"a", "b", "c", "d"};
  const std::string owner = *owner_of("t", 1, nodes);
  EXPECT_EQ(rank_position("t", 1, owner, nodes), 0u);
  std::vector<std::string> reversed(nodes.rbegin(), nodes.rend());
  EXPECT_EQ(*owner_of("t", 1, reversed), owner) << "the order claims arrive in does not matter";
  EXPECT_FALSE(owner_of("t", 1, {}));
}

}  // namespace
}  // namespace chorus::agent

// The driver of the election: one thread owns the Election (core/election.hpp) and runs it against
// the real world. Pubsub callbacks (gossip's thread) validate and parse messages and queue them; the
// thread takes them in order, runs tick() at next_deadline_ms(), recomputes the score every heartbeat
// interval, and carries out the effects in the order the core gave them - a Persist is durable (term
// store) before the Publish that follows it goes out. Watches of chorus.election run on this thread.
//
// Everything public is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <chorus/plugin.hpp>
#include <chorus/services/election_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <nlohmann/json.hpp>

#include "core/election.hpp"
#include "settings.hpp"
#include "store/term_store.hpp"

namespace chorus::election {

struct NodeMetrics {
  chorus::Counter triggers;        // chorus_election_triggers_total{trigger}
  chorus::Gauge term;              // chorus_election_term
  chorus::Gauge is_admin;          // chorus_election_is_admin
  chorus::Counter admin_seconds;   // chorus_election_admin_seconds_total
  chorus::Counter admin_changes;   // chorus_election_admin_changes_total
  chorus::Counter split_brain;     // chorus_election_split_brain_total
  chorus::Counter messages;        // chorus_election_messages_total{type,direction}
  chorus::Counter rejected;        // chorus_election_rejected_total{reason}
};
NodeMetrics define_metrics(chorus::Host &host);

// The outcome chorus.election reports.
struct AdminView {
  std::string admin_id;  // "" while none is known
  bool is_self = false;
  uint64_t term = 0;
  uint64_t since_unix_ms = 0;
  uint32_t cluster_size = 0;  // the configured membership size (0 = none): consumers that need a quorum
};

// RFC 3339 UTC with milliseconds ("2026-12-07T01:02:03.456Z"); "" for 0.
std::string rfc3339(uint64_t unix_ms);

// What a manual trigger came to.
struct TriggerOutcome {
  bool accepted = false;
  uint64_t term = 0;  // the new term when accepted
  std::string why;    // when refused
  bool unavailable = false;  // refused because the plugin is stopping
};

class Node {
 public:
  Node(chorus::Host &host, Settings settings, NodeMetrics metrics, chorus::ServiceRef<chorus_pubsub_v1> pubsub,
       std::string self_id, std::unique_ptr<TermStore> store);
  ~Node();
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;

  // Subscribes, adds the validators and starts the thread. Throws chorus::Error.
  void start();
  // Removes validators and subscriptions, joins the thread, ends every watch (their dtors run).
  void stop();

  const std::string &self_id() const { return self_; }
  AdminView admin_view() const;
  // The configured membership: the number of `members`, else `cluster_size` (0 = none).
  uint32_t cluster_size() const;
  // GET /api/v1/election.
  nlohmann::json state_json() const;
  // POST /api/v1/election/trigger: done(outcome) runs on the election thread (or at once when stopping).
  void request_trigger(std::function<void(const TriggerOutcome &)> done);

  // chorus.election watches (election_v1.h, "Watching").
  uint64_t watch(chorus_election_watch_fn fn, void *arg, void (*dtor)(void *));
  bool unwatch(uint64_t id);  // false: no such watch

 private:
  struct Item {
    std::optional<Message> message;
    std::function<void(const TriggerOutcome &)> trigger_done;
  };
  struct Watch {
    chorus_election_watch_fn fn;
    void *arg;
    void (*dtor)(void *);
  };

  static int validate_cb(void *arg, const chorus_pubsub_message *msg);
  static void message_cb(void *arg, const chorus_pubsub_message *msg);
  int validate(const chorus_pubsub_message &msg);
  void on_pubsub_message(const chorus_pubsub_message &msg);

  void run();
  Now now() const;
  void recompute_score(const Now &now);
  void carry_out(Effects &effects);
  void publish(const Message &m);
  void admin_changed(const AdminChanged &c);
  void notify(const AdminView &view, const std::string &previous_admin);
  void after_batch(const Now &now);
  void report_health(const Now &now);

  void record_change(const AdminChanged &c, const AdminView &v);

  chorus::Host &host_;
  const Settings settings_;
  NodeMetrics metrics_;
  chorus::ServiceRef<chorus_pubsub_v1> pubsub_;
  const std::string self_;
  std::unique_ptr<TermStore> store_;
  const uint64_t start_mono_;

  // The Election, touched by the election thread; readers (HTTP) take mu_ for a consistent view.
  mutable std::mutex mu_;
  Election election_;
  AdminView view_;
  bool muted_ = false;  // a Persist failed: nothing is published until one succeeds

  // The queue from the pubsub thread and HTTP to the election thread.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;

  // Watches: notify_mu_ is held while callbacks run, so unwatch from elsewhere waits for them.
  std::mutex watch_mu_;
  std::mutex notify_mu_;
  std::map<uint64_t, Watch> watches_;
  uint64_t next_watch_ = 0;

  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::vector<uint64_t> subs_, validators_;

  // Election-thread only.
  uint64_t next_score_mono_ = 0;
  uint64_t last_admin_tick_mono_ = 0;
  uint64_t no_admin_since_mono_ = 0;
  uint64_t next_health_mono_ = 0;
  uint64_t last_turn_mono_ = 0;
  uint64_t stale_seen_ = 0;
  int last_health_state_ = -1;
};

}  // namespace chorus::election

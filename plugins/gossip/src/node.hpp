// The gossip node: the Router on the plugin's own thread, over chorus.p2p.host streams, and the
// registry of subscriptions and validators behind chorus.pubsub v1 (docs/protocols.md, PubSub).
//
// Threading: one Boost.Asio thread (the gossip thread) owns the Router, the peers and their
// streams, the timers and topic membership. p2p callbacks (p2p thread) copy what they carry and post
// it here. Public functions are thread-safe: they post their work to the gossip thread and wait for
// the result (never for the network), or run it at once when called on the gossip thread (from a
// handler). publish_raw on a topic without validators posts without waiting
// (see publish_raw). Handlers and validators run on the gossip thread, never inside the Router's own code
// (deliveries are queued and handed out after the Router returns), so they may call back in.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chorus/plugin.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <nlohmann/json.hpp>

#include "router.hpp"
#include "settings.hpp"

namespace chorus::gossip {

using P2P = chorus::ServiceRef<chorus_p2p_host_v1>;

// Protocol ids in our preference order (outbound streams negotiate the first the peer accepts).
inline constexpr const char *kPubsubProtocols[] = {"/meshsub/1.1.0", "/meshsub/1.0.0", "/floodsub/1.0.0"};

struct NodeMetrics {
  chorus::Counter published, delivered, rejected, ignored, duplicate;
  chorus::Counter rpcs_dropped, rpcs_rejected, probe_failures, publish_waits;
  chorus::Gauge mesh_peers, topic_peers, peers;
  chorus::Histogram peer_score, probe_latency;
};
// Defines every chorus_gossip_* metric (constructor or start() only, like any metric definition).
NodeMetrics define_metrics(chorus::Host &host);

// A handler or validator sees the message through the C struct of pubsub_v1.h (valid for the call).
using MessageHandler = std::function<void(const chorus_pubsub_message &)>;
using MessageValidator = std::function<int(const chorus_pubsub_message &)>;

// Checks a topic name from outside: non-empty, at most CHORUS_PUBSUB_TOPIC_MAX bytes, no NUL.
chorus_status check_topic(std::string_view topic, chorus_error *err);

class Node : public std::enable_shared_from_this<Node>, private RouterIo {
 public:
  Node(chorus::Host &host, Settings settings, NodeMetrics metrics, P2P p2p);
  ~Node() override;
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;

  // Reads the identity from the p2p host, registers the protocol handlers, joins the static topics,
  // starts the thread and timers. Throws chorus::Error.
  void start();
  // Leaves the network (streams reset, handlers removed), ends the thread and every subscription.
  void stop();

  chorus_status subscribe(const std::string &topic, MessageHandler fn, uint64_t *out_sub, chorus_error *err);
  // Exactly-once rule of pubsub_v1.h: on return fn is not running and never runs again (unless
  // called from inside fn, which then returns after its current call). Unknown id: NOT_FOUND.
  chorus_status unsubscribe(uint64_t sub);
  chorus_status join(const std::string &topic, chorus_error *err);
  chorus_status leave(const std::string &topic, chorus_error *err);
  // Publishes bytes (redacted by SHHH as text first); the message id goes to *id when not null.
  chorus_status publish_raw(const std::string &topic, Bytes data, Bytes *id, chorus_error *err);
  // Builds a CHORUS envelope around data (type, our agent id, now, hop_count) and publishes it.
  chorus_status publish_envelope(const std::string &topic, const std::string &type, nlohmann::json data,
                                 uint32_t hop_count, Bytes *id, chorus_error *err);
  chorus_status add_validator(const std::string &topic, MessageValidator fn, uint64_t *out_id, chorus_error *err);
  chorus_status remove_validator(uint64_t id);
  // What GET /api/v1/pubsub/topics and /peers answer.
  chorus_status topics_json(std::string *out, chorus_error *err);
  chorus_status peers_json(std::string *out, chorus_error *err);
  // Whether the topic is joined (by join, a subscription or the static topics).
  chorus_status is_joined(const std::string &topic, bool *out, chorus_error *err);

  const Settings &settings() const { return s_; }
  const std::string &agent_id() const { return agent_id_; }
  const std::string &local_peer_text() const { return self_text_; }
  // The private topic of the loopback probe (not listed in topics_json).
  const std::string &probe_topic() const { return probe_topic_; }

 private:
  struct Peer;
  struct Inbound;
  struct StreamCtx;
  struct Incoming;
  struct Delivery;
  struct Sub {
    uint64_t id;
    std::string topic;
    MessageHandler fn;
    bool live = true;
  };
  struct Val {
    uint64_t id;
    std::string topic;
    MessageValidator fn;
    bool live = true;
  };
  struct Membership {
    size_t subscriptions = 0;
    bool joined = false;  // by join() or the static topics
  };

  // ---- RouterIo (gossip thread) ----
  void send(const PeerId &peer, Rpc rpc) override;
  Validation validate(const ReceivedMessage &m) override;
  void deliver(const ReceivedMessage &m) override;
  bool sign(BytesView data, uint8_t signature[64]) override;
  void connect_to(const std::vector<PeerInfo> &peers) override;
  uint64_t now_ms() override;
  void count(RouterEvent e, const std::string &topic, const char *reason) override;

  // ---- threading ----
  bool on_gossip_thread() const { return std::this_thread::get_id() == thread_id_; }
  // True while a validator runs (called by the router): membership changes are posted, not run.
  bool inside_router() const { return on_gossip_thread() && validator_depth_ > 0; }
  template <class F>
  chorus_status run_sync(chorus_error *err, F &&fn);
  template <class F>
  void post(F &&fn);

  // ---- membership (gossip thread) ----
  chorus_status hold(const std::string &topic, bool as_join, chorus_error *err);
  void release(const std::string &topic, bool as_join);
  const std::string &label(const std::string &topic) const;

  // ---- p2p glue ----
  static void on_p2p_event(void *arg, const chorus_p2p_event *ev);
  static chorus_status on_accept(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h);
  static void on_open(void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *err);
  static void on_data(void *arg, uint64_t stream, const uint8_t *data, size_t len);
  static void on_writable(void *arg, uint64_t stream);
  static void on_closed(void *arg, uint64_t stream, chorus_status st, const char *reason);
  static void fill_handler(chorus_p2p_stream_handler *h, StreamCtx *ctx);

  void peer_connected(const PeerId &id, std::string text, std::string addr, bool outbound);
  void peer_identified(const PeerId &id, const std::string &identify_json);
  void peer_disconnected(const PeerId &id);
  void inbound_opened(uint64_t stream, const PeerId &id, std::string text, std::string addr,
                      std::shared_ptr<Incoming> incoming);
  void inbound_data(uint64_t stream, Bytes bytes, bool overflow_paused);
  void update_read_pause(uint64_t stream, Inbound &in);
  void parse_frames(uint64_t stream);
  void reject_stream(uint64_t stream, const char *reason, const std::string &why);
  // Hands a decoded RPC to the router, or adds it to the batch for the verifier threads when it
  // carries messages whose signatures need checking; send_verify_batch hands the batch over.
  void route_rpc(const PeerId &from, Rpc rpc);
  void send_verify_batch();
  // Adds the addresses of a signed peer record (from a PRUNE's peer exchange) to the p2p address book.
  void learn_addresses(const PeerId &id, const Bytes &envelope);
  struct VerifiedRpc;
  void verified(uint64_t seq, std::vector<VerifiedRpc> batch);
  void stream_closed(uint64_t stream, bool inbound);
  void outbound_opened(const PeerId &id, uint64_t stream, std::string protocol);
  void outbound_failed(const PeerId &id, const std::string &why);
  void maybe_open(const PeerId &id);
  void flush(Peer &p);
  void writable(uint64_t stream);

  // ---- delivery (gossip thread) ----
  void drain_deliveries();
  void dispatch(const Delivery &d);
  chorus_status do_publish(const std::string &topic, Bytes data, Bytes *id, chorus_error *err);
  // Posts drain_deliveries unless one is posted already or nothing waits.
  void schedule_drain();
  // Any thread: whether a live validator watches the topic.
  bool has_validator(const std::string &topic);

  // ---- timers (gossip thread) ----
  void schedule_heartbeat(uint64_t ms);
  void schedule_probe(uint64_t ms);
  void send_probe();
  void update_gauges();
  void report_health();

  chorus::Host &host_;
  // publish_raw after redaction: the bytes as they are.
  chorus_status publish_bytes(const std::string &topic, Bytes data, Bytes *id, chorus_error *err);
  const Settings s_;
  NodeMetrics m_;
  P2P p2p_;

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer heartbeat_timer_, probe_timer_, probe_timeout_;
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false}, stopped_{false};
  // Bytes of messages publish_raw posted to the gossip thread without waiting, not yet published
  // there (an estimate: data plus the fields the router adds).
  static constexpr size_t kPublishAheadBytes = 1 << 20;
  std::atomic<size_t> publish_ahead_bytes_{0};

  // Back-pressure on local publishers. A peer is congested once its send queue holds half of
  // peer_queue_bytes, and stays so until it drains below a quarter. While every peer with an open
  // stream is congested, nothing published now could leave before the queues overflow: publish_raw
  // waits (up to publish_wait_ms) instead of signing messages the queues would drop. A single slow
  // peer never makes a publisher wait while another peer keeps up. Counts: gossip thread only.
  int open_peers_ = 0, congested_peers_ = 0;
  std::atomic<bool> all_congested_{false};
  std::mutex congestion_mu_;
  std::condition_variable congestion_cv_;
  void note_queue(Peer &p);
  void set_all_congested(bool v);
  void wait_while_congested();

  PeerId self_;
  std::string self_text_;
  // base58 texts of peer ids (binary multihash -> text), gossip thread only: every delivered or
  // validated message names its author and its sender, and encoding them each time costs a few
  // percent of a busy receiver. Cleared when it grows past a bound.
  std::map<Bytes, std::string> peer_texts_;
  const std::string &peer_text(const Bytes &peer);
  Bytes self_key_;
  std::string agent_id_;
  std::string probe_topic_;
  std::unique_ptr<Router> router_;
  // Ed25519 verification (tens of microseconds a message) runs on threads of their own (one per spare
  // core, up to 4) on machines with more than two cores, so the gossip thread only routes; with two
  // or fewer there are none and the router verifies (see start()). RPCs go back to the router in the order they
  // went out (a sequence number per batch; results that overtake wait in verify_done_). The RPCs
  // decoded from one read of the stream travel as one batch, so a busy stream costs two thread
  // wake-ups per batch rather than per RPC (measured: ~20 us of CPU per message on a 2-vCPU VM).
  struct VerifiedRpc {
    PeerId from;
    Rpc rpc;
    bool all_ok = true;
    size_t bytes = 0;
  };
  static constexpr size_t kVerifyBatchBytes = 256 << 10;
  // Inbound backlog bounds, the same for any max_message_bytes. A heal of a partition delivers every
  // peer's queued RPCs at once; measured on 10 agents, bounds of two frames per stream let the heap
  // peak at 40 MiB, which the allocator then kept. Reading pauses above kBacklogHigh (bytes waiting
  // for the gossip thread plus decoded RPCs at the verifier) and resumes below kBacklogLow; the
  // network thread pauses a stream by itself once kIncomingCap bytes wait for the gossip thread.
  // A frame larger than these still passes: bytes of a partial frame sit in Inbound::buf, which
  // does not count.
  static constexpr size_t kBacklogHigh = 512 << 10;
  static constexpr size_t kBacklogLow = 128 << 10;
  static constexpr size_t kIncomingCap = 256 << 10;
  // What a decoded message costs beside its data (the id, from, seqno, key and signature buffers
  // and their allocator overhead), for the verifier's share of the backlog.
  static constexpr size_t kDecodedMessageOverhead = 512;
  std::vector<VerifiedRpc> verify_batch_;
  size_t verify_batch_bytes_ = 0;
  boost::asio::io_context verify_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> verify_work_;
  std::vector<std::thread> verify_threads_;
  uint64_t verify_next_seq_ = 0, verify_next_route_ = 0;
  std::map<uint64_t, std::vector<VerifiedRpc>> verify_done_;
  size_t verifying_bytes_ = 0;  // gossip thread: frames at the verifier (counts toward read pauses)
  // Ids whose signature the verifier accepted lately: further copies skip the verifier (the router
  // drops them as duplicates, or verifies them itself).
  std::unordered_set<MessageKey, MessageKeyHash> verified_ids_;
  std::deque<std::pair<uint64_t, MessageKey>> verified_order_;
  uint64_t p2p_sub_ = 0;
  std::vector<std::unique_ptr<std::weak_ptr<Node>>> accept_args_;  // one per protocol handler

  // Gossip-thread state.
  std::unordered_map<PeerId, std::unique_ptr<Peer>> peers_;
  std::unordered_map<uint64_t, std::unique_ptr<Inbound>> inbound_;
  std::unordered_map<uint64_t, PeerId> outbound_;  // our write-only streams
  std::map<std::string, Membership> membership_;
  std::deque<Delivery> deliveries_;
  bool drain_posted_ = false;
  int validator_depth_ = 0;
  const char *ignore_reason_ = nullptr;  // set by validate() for the count() that follows
  std::map<std::string, std::pair<size_t, size_t>> last_gauges_;  // label -> (mesh, topic peers)
  uint64_t probe_nonce_ = 0;
  bool probe_outstanding_ = false;
  std::chrono::steady_clock::time_point probe_sent_;
  bool probe_ok_ = true;  // until a probe fails: the first runs right after start
  std::string probe_note_ = "loopback probe pending";

  // Subscriptions and validators: any thread; called on the gossip thread under their mutex, so
  // unsubscribe from another thread waits for a running call to end (the exactly-once rule).
  std::recursive_mutex subs_mu_;
  std::list<Sub> subs_;
  int subs_depth_ = 0;
  uint64_t last_sub_ = 0;
  std::recursive_mutex vals_mu_;
  std::list<Val> vals_;
  int vals_depth_ = 0;
  uint64_t last_val_ = 0;
};

}  // namespace chorus::gossip

// The dht node: Kademlia over chorus.p2p.host streams (`<prefix>/kad/1.0.0`), the record store, and
// the operations behind chorus.dht v1 and the HTTP routes (README.md, Node, service and HTTP).
//
// Threading: one Boost.Asio thread (the dht thread) owns the routing table, the lookups, every kad
// stream and the timers. p2p callbacks (p2p thread) copy what they carry and post it here. The record
// store's durable writes (puts that wait for fsync) run on a second thread, the store thread, so the
// dht thread never waits on a disk sync; their completions are posted back. Reads (a SQLite read in
// WAL mode never syncs) run on the dht thread.
//
// Operations (put_value, get_value, ...) are thread-safe: they check their arguments, post the work to
// the dht thread and return; their Done callback runs exactly once, on the dht thread (CANCELLED when
// the node stops first).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/p2p_host_v1.h>

#include "crypto/keyring.hpp"
#include "kad/handler.hpp"
#include "kad/message.hpp"
#include "kad/query.hpp"
#include "kad/recheck.hpp"
#include "kad/records.hpp"
#include "kad/routing_table.hpp"
#include "settings.hpp"
#include "store/audit_log.hpp"
#include "store/record_store.hpp"

namespace chorus::dht {

using P2P = chorus::ServiceRef<chorus_p2p_host_v1>;
using Backbeat = chorus::ServiceRef<chorus_backbeat_v1>;

struct NodeMetrics {
  chorus::Counter requests;         // inbound, by type and result
  chorus::Counter outbound;         // outbound requests, by type and result
  chorus::Counter lookups;          // by kind and end
  chorus::Counter frames_rejected;  // inbound frames that reset their stream, by reason
  chorus::Counter operations;       // service operations, by op and status
  chorus::Counter probe_failures;
  chorus::Counter evictions;  // peers removed from the routing table, by reason
  chorus::Counter rechecks;   // checks of peers outside the table (recheck.hpp), by result
  chorus::Counter catchup;    // records put again when the table grew after a short put, by result
  chorus::Histogram lookup_seconds;  // by kind
  chorus::Histogram lookup_hops;     // by kind
  chorus::Histogram probe_seconds;
  chorus::Gauge routing_peers, records, providers;
};
// Defines every chorus_dht_* metric (constructor or start() only).
NodeMetrics define_metrics(chorus::Host &host);

// An operation's result: status, the error message when it failed, and its data (value bytes or JSON).
using Done = std::function<void(chorus_status status, const std::string &message, const Bytes &data)>;

// Checks a record key from outside: 1..CHORUS_DHT_KEY_MAX bytes and a known namespace.
chorus_status check_record_key(BytesView key, chorus_error *err);

class Node : public std::enable_shared_from_this<Node> {
 public:
  // state_dir: the host's state dir; the store lives in <state_dir>/<state_subdir>/records.db.
  // bb may be empty: BACKBEAT is optional (puts and provides become dht_store operations when present).
  Node(chorus::Host &host, Settings settings, NodeMetrics metrics, P2P p2p, std::string state_dir, Backbeat bb = {});
  ~Node();
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;

  // Opens the store, reads the identity, starts the threads and timers, registers the kad protocol
  // (server mode) and subscribes to p2p events. Throws chorus::Error.
  void start();
  // Completes every running operation with CANCELLED, resets the kad streams, ends the threads.
  void stop();

  // The operations of chorus.dht v1; timeout_ms 0 = lookup_deadline_ms. Argument errors return at
  // once (and done never runs); on CHORUS_OK done runs exactly once on the dht thread.
  chorus_status put_value(Bytes key, Bytes value, uint32_t timeout_ms, Done done, chorus_error *err);
  chorus_status get_value(Bytes key, uint32_t timeout_ms, Done done, chorus_error *err);
  chorus_status provide(Bytes key, uint32_t timeout_ms, Done done, chorus_error *err);
  chorus_status stop_providing(Bytes key);
  // data: JSON [{"peer_id","addrs":[...]}]; max 0 = every provider.
  chorus_status find_providers(Bytes key, size_t max, uint32_t timeout_ms, Done done, chorus_error *err);
  // data: JSON {"peer_id","addrs":[...]}.
  chorus_status find_peer(PeerId peer, uint32_t timeout_ms, Done done, chorus_error *err);
  // Role-encrypted content (node_content.cpp): data = the content's SHA-256 in hex / the plaintext.
  chorus_status store_content(std::string key, std::string role, Bytes content, uint32_t timeout_ms, Done done,
                              chorus_error *err);
  chorus_status retrieve_content(std::string key, uint32_t timeout_ms, Done done, chorus_error *err);
  // {"mode","peers","buckets":[{"index","peers"}...]} (waits for the dht thread, never the network).
  chorus_status routing_json(std::string *out, chorus_error *err);

  const Settings &settings() const { return s_; }
  const PeerId &self() const { return self_; }
  bool server_mode() const { return server_.load(); }

 private:
  struct StreamCtx;
  struct Inbound;
  struct Call;
  struct LookupOp;
  using RpcDone = std::function<void(std::optional<Message> reply, const std::string &why)>;
  using LookupDone = std::function<void(const LookupResult &)>;

  // ---- threading ----
  bool on_dht_thread() const { return std::this_thread::get_id() == thread_id_; }
  template <class F>
  void post(F &&fn);
  // Runs fn on the store thread, then done(result) on the dht thread.
  void store_then(std::function<void()> write, std::function<void(bool ok, const std::string &why)> done);
  // Starts an operation: posts body to the dht thread, or fails (UNAVAILABLE) when stopping.
  chorus_status start_op(const char *op, Done done, chorus_error *err, std::function<void(uint64_t op_id)> body);
  std::string track_start(const std::string &op, uint64_t id);
  void track_end(const std::string &op_id, chorus_status st, const std::string &msg);
  // Completes the pending operation op_id (once; later calls are ignored).
  void complete(uint64_t op_id, chorus_status status, const std::string &message, const Bytes &data = {});
  bool pending(uint64_t op_id) const { return pending_.count(op_id) != 0; }
  int64_t now_ms() const { return static_cast<int64_t>(host_.now_ms()); }
  int64_t wall_ms() const;

  // ---- p2p glue (node.cpp) ----
  static void on_p2p_event(void *arg, const chorus_p2p_event *ev);
  static chorus_status on_accept(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h);
  static void on_open(void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *err);
  static void on_data(void *arg, uint64_t stream, const uint8_t *data, size_t len);
  static void on_eof(void *arg, uint64_t stream);
  static void on_closed(void *arg, uint64_t stream, chorus_status st, const char *reason);
  void peer_identified(const PeerId &id, const std::string &identify_json);
  void peer_disconnected(const PeerId &id);
  void remember_addrs(const PeerId &id, const std::vector<std::string> &addrs);
  // ---- recovery after a partition (node_heal.cpp) ----
  // Sends a FIND_NODE to a peer not in the table; it enters the table if it answers. Only
  // recheck_tick calls it, for the peers recheck_ says are due (rate-limited per peer).
  void check_server(const PeerId &id);
  // A request to the peer failed: it leaves the table and recheck_ asks it again later.
  void peer_lost(const PeerId &id, const char *reason);
  // (Re)arms recheck_timer_ for recheck_'s next due peer.
  void arm_recheck();
  void recheck_tick();
  std::vector<Bytes> known_addrs(const PeerId &id);  // for ourselves: own_addrs_
  std::vector<std::string> addr_texts(const PeerId &id);
  void decide_mode();

  // ---- server (node_server.cpp) ----
  void inbound_opened(uint64_t stream, const PeerId &peer);
  void inbound_data(uint64_t stream, Bytes bytes);
  void parse_requests(uint64_t stream);
  void reject_stream(uint64_t stream, const char *reason, const std::string &why);
  void resume_streams();  // parses what waits on streams no longer blocked by a store write
  // Handles one request; reply(msg) answers it (at once or after a store write), reply(nullopt) sends
  // nothing. Returns false when the request waits for the store thread.
  bool handle_request(const PeerId &from, Message req, std::function<void(std::optional<Message>)> reply);

  // ---- RPC client (node.cpp) ----
  void rpc(const PeerId &peer, Message request, bool expect_reply, RpcDone done);
  void call_opened(uint64_t call, uint64_t stream);
  void call_failed(uint64_t call, const std::string &why);
  void call_data(uint64_t call, Bytes bytes);
  void finish_call(uint64_t call, std::optional<Message> reply, const std::string &why);

  // ---- lookups and operations (node_ops.cpp) ----
  void run_lookup(LookupKind kind, Bytes key, const KadId &target, uint64_t deadline_ms, LookupOptions extra,
                  LookupDone done);
  void drive(uint64_t id);
  void lookup_reply(uint64_t id, const PeerId &peer, std::optional<Message> reply);
  void schedule_wakeup(LookupOp &op);
  void end_lookup(uint64_t id);
  std::vector<PeerId> peers_of(const std::vector<PeerEntry> &entries);
  // op_id 0: a background task (republish, re-provide) that completes nobody.
  void do_put(uint64_t op_id, Bytes key, Bytes value, uint64_t timeout_ms);
  void replicate(uint64_t op_id, Bytes key, Bytes value, uint64_t timeout_ms);
  // A put of key reached acks of the need peers it wanted: short ones are put again when the table
  // grows (a partition healed), instead of waiting for the republish interval (node_heal.cpp).
  void note_replicas(const Bytes &key, size_t acks, size_t need);
  void catchup_tick();
  void do_get(uint64_t op_id, Bytes key, uint64_t timeout_ms);
  void do_provide(uint64_t op_id, Bytes key, uint64_t timeout_ms, bool store_locally);
  void do_find_providers(uint64_t op_id, Bytes key, size_t max, uint64_t timeout_ms);
  void do_find_peer(uint64_t op_id, PeerId peer, uint64_t timeout_ms);
  void arm_timeout(uint64_t op_id, uint64_t timeout_ms, const std::string &what);
  // A pending operation of the node's own (a step of a bigger one): its id for do_put, do_get, ...
  uint64_t internal_op(Done done);
  void audit(AuditOp op, const std::string &key, const std::string &role, const std::string &result);
  void bootstrap();
  void schedule(boost::asio::steady_timer &t, uint64_t ms, void (Node::*fn)());
  void refresh_tick();
  void republish_tick();
  void reprovide_tick();
  void sweep_tick();
  void probe_tick();
  void report_health();
  void update_gauges();

  chorus::Host &host_;
  const Settings s_;
  NodeMetrics m_;
  P2P p2p_;
  Backbeat bb_;
  const std::string state_dir_;
  std::string protocol_;

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::io_context store_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> store_work_;
  boost::asio::steady_timer refresh_timer_, republish_timer_, reprovide_timer_, sweep_timer_, probe_timer_, recheck_timer_,
      catchup_timer_;
  std::thread thread_, store_thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false}, stopped_{false}, server_{false};

  PeerId self_;
  std::string self_text_;
  std::unique_ptr<RecordStore> store_;
  std::unique_ptr<RoutingTable> table_;
  std::unique_ptr<RequestHandler> handler_;
  std::unique_ptr<Keyring> keyring_;
  std::unique_ptr<AuditLog> audit_;
  std::vector<Bytes> own_addrs_;  // our listen addresses (binary), read at start
  std::mt19937_64 rng_{std::random_device{}()};
  uint64_t p2p_sub_ = 0;
  std::unique_ptr<std::weak_ptr<Node>> accept_arg_;
  bool handler_registered_ = false;

  // dht-thread state
  std::unordered_map<PeerId, std::vector<std::string>> addrs_;  // listen addrs from identify and replies
  // Connected peers whose identify lists our kad protocol (the table should hold them all).
  std::unordered_set<PeerId> kad_peers_;
  std::unique_ptr<RecheckSchedule> recheck_;
  int64_t recheck_at_ = -1;  // when recheck_timer_ fires (-1: not armed)
  // Keys whose last put reached fewer peers than replication -> catch-up attempts so far.
  std::map<Bytes, uint32_t> short_puts_;
  bool catchup_armed_ = false;
  Bytes catchup_cursor_;  // the last key of the previous catch-up batch
  size_t last_table_size_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Inbound>> inbound_;
  std::map<uint64_t, std::unique_ptr<Call>> calls_;
  std::unordered_map<uint64_t, uint64_t> call_of_stream_;
  uint64_t last_call_ = 0;
  std::map<uint64_t, std::unique_ptr<LookupOp>> lookups_;
  uint64_t last_lookup_ = 0;
  // Operations waiting for their result: completed with CANCELLED at stop.
  std::map<uint64_t, Done> pending_;
  std::map<uint64_t, std::unique_ptr<boost::asio::steady_timer>> op_timers_;
  uint64_t last_pending_ = 0;
  bool bootstrapped_ = false;
  // Health probe.
  bool probe_running_ = false;
  bool probe_ok_ = true;
  std::string probe_note_ = "put/get probe pending";
  int64_t probe_last_success_ms_ = 0;
};

template <class F>
void Node::post(F &&fn) {
  boost::asio::post(io_, std::forward<F>(fn));
}

}  // namespace chorus::dht

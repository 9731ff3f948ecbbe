// Internals of the node: connections, streams and the network thread. Everything in here runs on
// the network thread unless a comment says otherwise; Node (node.cpp) is the thread-safe door.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "identify.hpp"
#include "multiaddr.hpp"
#include "multistream.hpp"
#include "node.hpp"
#include "noise_handshake.hpp"
#include "session.hpp"

namespace chorus::p2p {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Connection;
struct Stream;

inline constexpr const char *kNoiseProtocol = "/noise";
inline constexpr const char *kYamuxProtocol = "/yamux/1.0.0";
inline constexpr const char *kIdentifyProtocol = "/ipfs/id/1.0.0";
inline constexpr const char *kIdentifyPushProtocol = "/ipfs/id/push/1.0.0";
inline constexpr const char *kPingProtocol = "/ipfs/ping/1.0.0";

uint64_t monotonic_ms();

// What consumes a stream's bytes once its protocol is agreed: a plugin's C handler or one of the
// node's own protocols (identify, ping).
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void data(Stream &s, BytesView bytes) = 0;
  virtual void eof(Stream &) {}
  virtual void writable(Stream &) {}
  // Last call. status CHORUS_OK = both sides closed cleanly.
  virtual void closed(Stream &s, chorus_status status, const std::string &reason) = 0;
};

// The part of a stream other threads may look at (write's back-pressure check).
struct StreamGate {
  std::atomic<size_t> queued{0};  // bytes accepted by write() and not yet handed to yamux
  std::atomic<bool> alive{true};
  std::atomic<bool> want_writable{false};  // write() answered BUSY: call the sink's writable once drained
  std::atomic<bool> write_closed{false};   // close_write was called: further writes are errors
};

// An outbound stream waiting for multistream-select to finish.
struct OpenRequest {
  std::unique_ptr<StreamSink> sink;
  std::function<void(chorus_status, Stream *, const std::string &)> done;  // Stream* only on success
};

struct Stream {
  uint64_t id = 0;
  uint32_t yid = 0;  // the yamux stream id
  Connection *conn = nullptr;
  uint32_t direction = CHORUS_P2P_DIR_INBOUND;
  std::string protocol;
  std::unique_ptr<Multistream> negotiation;  // set while the protocol is not agreed yet
  uint64_t negotiation_deadline_ms = 0;
  std::optional<OpenRequest> open;           // outbound, until negotiated
  std::unique_ptr<StreamSink> sink;
  std::shared_ptr<StreamGate> gate = std::make_shared<StreamGate>();
  Bytes sendq;            // queued by write(), not yet accepted by yamux
  size_t sendq_off = 0;
  size_t uncounted = 0;   // negotiation bytes at the front of sendq (not part of gate->queued)
  Bytes held;             // received while paused (bounded by the yamux window)
  bool paused = false;
  bool fin_requested = false;  // close_write: FIN once sendq is empty
  bool fin_sent = false;
  bool remote_fin = false;
  bool eof_pending = false;    // remote FIN seen while paused with held bytes
  bool in_ready = false;       // listed in the connection's ready queue
  bool ended = false;
  bool close_pending = false;  // yamux closed it while held bytes await a paused handler
  bool internal = false;       // opened by the node itself (identify): not counted against the limit
};

// A plugin's handler for one protocol.
struct ProtocolHandler {
  chorus_p2p_accept_fn accept = nullptr;
  void *arg = nullptr;
};

struct PeerRecord {
  std::vector<Connection *> connections;   // open (muxed) connections, oldest first
  std::optional<IdentifyMessage> identify;  // the last identify answer
  std::map<std::string, uint64_t> addrs;    // address book: multiaddr text -> expiry (0 = none)
  std::set<std::string> identified_addrs;   // the subset the peer announced in identify
  uint64_t last_seen_ms = 0;
};

// One TCP connection through its whole life: multistream(/noise) -> Noise XX -> multistream(/yamux)
// -> yamux session carrying streams.
class Connection : public yamux::Handler, public std::enable_shared_from_this<Connection> {
 public:
  enum class Phase { select_security, handshake, select_muxer, open, closed };

  Connection(NodeImpl &node, tcp::socket socket, uint32_t direction, uint64_t id, std::optional<PeerId> expected,
             Multiaddr remote, uint64_t dial_id);
  ~Connection() override;

  void start();
  // Ends the connection now: every stream ends with `status`, the socket closes.
  void abort(chorus_status status, const std::string &reason);

  // Opens an outbound stream and starts negotiating `protocols`. Returns nullptr (with why) when the
  // connection cannot take another stream.
  // Opens an outbound stream and starts negotiating `protocols`. false (with why, request untouched)
  // when the connection cannot take another stream; when only the peer's acknowledgements lag
  // behind, the open waits in a queue and the request's done runs later.
  bool open_stream(const std::vector<std::string> &protocols, OpenRequest &request, uint32_t timeout_ms,
                   std::string &why, Stream **opened = nullptr, bool internal = false);
  void stream_write(Stream &s, BytesView data);  // the bytes were counted into s.gate->queued by the caller
  // For the node's own protocols (identify, ping): bytes not counted in the gate.
  void internal_write(Stream &s, BytesView data) {
    if (s.ended || s.fin_requested) return;
    s.uncounted += data.size();
    stream_write(s, data);
  }
  size_t pending_send(const Stream &s) const { return s.sendq.size() - s.sendq_off; }
  void stream_close_write(Stream &s);
  void stream_reset(Stream &s, chorus_status status, const std::string &reason);
  void stream_set_paused(Stream &s, bool paused);

  // Periodic checks from the node's sweep: handshake and negotiation deadlines.
  void sweep(uint64_t now_ms);

  uint64_t id() const { return id_; }
  uint64_t dial_id() const { return dial_id_; }
  uint32_t direction() const { return direction_; }
  Phase phase() const { return phase_; }
  const PeerId &peer() const { return peer_; }
  const Multiaddr &remote_addr() const { return remote_; }
  const std::string &remote_ip() const { return remote_ip_; }
  bool remote_is_loopback() const { return remote_loopback_; }
  uint64_t opened_ms() const { return opened_ms_; }
  size_t stream_count() const { return streams_.size(); }

 private:
  // yamux::Handler
  void on_stream_opened(uint32_t yid) override;
  void on_data(uint32_t yid, BytesView data) override;
  void on_remote_fin(uint32_t yid) override;
  void on_stream_reset(uint32_t yid) override;
  void on_stream_closed(uint32_t yid) override;
  void on_writable(uint32_t yid) override;
  void on_go_away(uint32_t code) override;

  void read_more();
  size_t backlog() const;
  void on_read(size_t n);
  bool process_input();  // false: the connection was closed
  void fail_handshake(const char *reason_label, const std::string &why);
  void secured();
  void muxed();
  Stream *new_stream(uint32_t yid, uint32_t direction, bool internal = false);
  void start_negotiation(Stream &s, Multistream negotiation);
  void negotiate(Stream &s, BytesView data);
  void negotiated(Stream &s, BytesView rest);
  void deliver(Stream &s, BytesView data);
  void end_stream(Stream &s, chorus_status status, const std::string &reason);
  void mark_ready(Stream &s);
  void pump();       // moves queued stream bytes into yamux, within windows and the socket budget
  void flush();      // encrypts yamux output and starts a socket write
  void schedule_flush();
  void start_write();
  // Handshake-phase output (multistream lines, Noise handshake messages) goes out unencrypted.
  template <class Source>
  void queue_plain(Source &source) {
    Bytes out;
    source.take_output(out);
    append(wbuf_, out);
  }

  NodeImpl &node_;
  tcp::socket socket_;
  const uint32_t direction_;
  const uint64_t id_;
  const uint64_t dial_id_;
  std::optional<PeerId> expected_;
  PeerId peer_;
  Multiaddr remote_;
  std::string remote_ip_;
  bool remote_loopback_ = false;
  uint64_t opened_ms_ = 0;
  uint64_t handshake_deadline_ms_ = 0;
  Phase phase_ = Phase::select_security;

  std::unique_ptr<Multistream> select_;
  std::unique_ptr<NoiseHandshake> handshake_;
  std::optional<NoiseTransport> cipher_;
  std::unique_ptr<yamux::Session> mux_;

  Bytes rbuf_;        // raw bytes from the socket not processed yet
  size_t rlen_ = 0;
  size_t read_space_ = 0;         // how much to ask the socket for next
  size_t last_read_request_ = 0;
  Bytes plain_;       // decrypted bytes not processed yet
  Bytes mux_out_;     // yamux output waiting for encryption
  WireBytes wbuf_;    // what waits for the socket: handshake bytes, then ciphertext
  WireBytes wbuf_inflight_;
  bool writing_ = false;
  bool reading_ = false;
  bool read_blocked_ = false;  // not reading: too much output waits for the peer to read
  uint64_t last_rx_ms_ = 0;    // keepalive: when the peer last sent anything
  bool keepalive_sent_ = false;
  bool flush_scheduled_ = false;

  std::unordered_map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::deque<uint32_t> ready_;  // streams with queued bytes and send window
  // Ended streams, freed at the next safe point: a callback may end the stream it is being told
  // about (reset from inside open_stream's result) and still read the info it was handed.
  std::vector<std::unique_ptr<Stream>> graveyard_;
  size_t outbound_streams_ = 0;  // open outbound streams (the per-direction limit)
  // Outbound opens waiting for the peer to acknowledge earlier ones (yamux's backlog of 256).
  struct PendingOpen {
    std::vector<std::string> protocols;
    OpenRequest request;
    uint32_t timeout_ms;
    uint64_t deadline_ms;
    bool internal;
  };
  std::deque<PendingOpen> pending_opens_;
  void retry_pending_opens();
};

class NodeImpl {
 public:
  NodeImpl(Settings settings, Identity identity, NodeLog &log);
  ~NodeImpl();

  std::string start();
  void stop();

  // ---- used by Connection (network thread) ----
  bool on_network_thread() const { return std::this_thread::get_id() == thread_id_; }
  asio::io_context &io() { return io_; }
  const Identity &identity() const { return identity_; }
  const Settings &settings() const { return settings_; }
  NodeStats &stats() { return stats_; }
  NodeLog &log() { return log_; }
  void logf(int level, const std::string &msg);
  uint64_t next_stream_id() { return ++last_stream_id_; }
  void register_stream(Stream &s);
  void unregister_stream(Stream &s);
  std::vector<std::string> supported_protocols() const;  // for inbound negotiation and identify
  std::unique_ptr<StreamSink> accept_stream(Stream &s, std::string &why);
  void connection_secured(Connection &c, bool &allowed, std::string &why);
  void connection_open(Connection &c);
  void connection_closed(Connection &c, const std::string &reason);
  IdentifyMessage identify_message(const Connection &c);
  void identify_received(Connection &c, IdentifyMessage msg);

  // ---- the service operations (network thread) ----
  void dial(std::optional<PeerId> peer, std::vector<Multiaddr> addrs, uint32_t timeout_ms,
            std::function<void(chorus_status, const PeerId *, const std::string &)> done);
  void open_stream(const PeerId &peer, std::vector<std::string> protocols, std::unique_ptr<StreamSink> sink,
                   uint32_t timeout_ms, std::function<void(chorus_status, Stream *, const std::string &)> done);
  Stream *find_stream(uint64_t id);
  Connection *best_connection(const PeerId &peer);
  std::vector<Multiaddr> book_addrs(const PeerId &peer);
  std::string info_json();
  std::string peers_json();
  void emit(uint32_t type, const PeerId &peer, const Connection *c, const std::string *identify_json);
  std::vector<std::string> advertised_addrs() const;

  // Cross-thread state (guarded by their own mutexes).
  std::mutex gates_mu;
  std::unordered_map<uint64_t, std::shared_ptr<StreamGate>> gates;
  mutable std::mutex protocols_mu;
  std::map<std::string, ProtocolHandler> protocols;

  // Network-thread state.
  std::unordered_map<PeerId, PeerRecord> peers;
  std::map<uint64_t, std::pair<chorus_p2p_event_fn, void *>> subscriptions;  // subs_mu
  uint64_t last_sub_id = 0;                                                   // subs_mu

  // Queues fn for the network thread. false once stop() has drained the queue for the last time:
  // then fn is dropped unrun. Everything queued before that runs, on the network thread or in
  // stop()'s final drain, so a caller waiting for its task never waits forever.
  template <class F>
  bool post(F &&fn);
  // Runs fn on the network thread and waits for it (directly when already there). false: the node
  // has stopped and fn did not run.
  bool run_sync(const std::function<void()> &fn);
  bool stopping() const { return stopping_.load(); }

  // Connected peers, readable from any thread (is_connected without a round trip).
  mutable std::mutex connected_mu;
  std::unordered_map<PeerId, uint32_t> connected;  // open connections per peer
  // Event subscriptions, guarded so that unsubscribe works from any thread at any time.
  std::mutex subs_mu;

 private:
  struct Dial {
    uint64_t id = 0;
    std::optional<PeerId> peer;
    std::vector<Multiaddr> addrs;
    size_t next = 0;
    std::vector<std::function<void(chorus_status, const PeerId *, const std::string &)>> waiters;
    std::unique_ptr<asio::steady_timer> timer;
    std::shared_ptr<tcp::socket> socket;  // while TCP connecting
    std::unique_ptr<asio::steady_timer> attempt_timer;
    std::shared_ptr<tcp::resolver> resolver;
    uint64_t connection = 0;              // while upgrading
    std::string last_error;
  };

  void accept_loop(tcp::acceptor &acceptor);
  bool admit_inbound(const tcp::endpoint &remote, std::string &why);
  void dial_next(uint64_t dial_id);
  void arm_attempt_timer(Dial &d, const std::shared_ptr<tcp::socket> &sock);
  void tcp_attempt_done(uint64_t dial_id, const std::shared_ptr<tcp::socket> &sock, const Multiaddr &addr,
                        const boost::system::error_code &ec);
  void dial_connected(uint64_t dial_id, std::shared_ptr<tcp::socket> sock, const Multiaddr &addr);
  void dial_done(uint64_t dial_id, chorus_status status, const PeerId *peer, const std::string &why);
  void sweep();
  void trim_connections();
  void bootstrap(bool retry);
  bool backed_off(const std::string &addr, uint64_t now, std::string &why);
  void note_dial_failure(const std::string &addr);

  Settings settings_;
  Identity identity_;
  NodeLog &log_;
  NodeStats stats_;
  asio::io_context io_{1};
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false};
  std::mutex post_mu_;
  bool accepting_ = true;  // post_mu_
  uint64_t next_bootstrap_ms_ = 0;
  uint64_t last_keepalive_sweep_ms_ = 0;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::vector<Multiaddr> bound_;  // what we listen on, actual ports
  std::unique_ptr<asio::steady_timer> sweep_timer_;
  uint64_t last_stream_id_ = 0;
  uint64_t last_conn_id_ = 0;
  uint64_t last_dial_id_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> conns_;
  std::map<uint64_t, Dial> dials_;
  std::unordered_map<PeerId, uint64_t> dial_by_peer_;
  struct Backoff {
    uint64_t until_ms = 0;
    uint64_t delay_ms = 0;
  };
  std::unordered_map<std::string, Backoff> backoff_;
  double inbound_tokens_ = 0;
  uint64_t inbound_refill_ms_ = 0;
  std::unordered_map<uint64_t, Stream *> streams_;
};

template <class F>
bool NodeImpl::post(F &&fn) {
  std::lock_guard lk(post_mu_);
  if (!accepting_) return false;
  asio::post(io_, std::forward<F>(fn));
  return true;
}

}  // namespace chorus::p2p

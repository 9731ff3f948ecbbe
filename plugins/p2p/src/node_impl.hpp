// Inside the node: the network thread and the parts it runs (swarm/: listener, dialer, connection
// manager; peerstore; protocols/: identify, ping), the stream registry and the plugins' protocol
// handlers. Everything here runs on the network thread unless a comment says otherwise; Node
// (node.hpp, implemented in service_table.cpp) is the thread-safe door.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "node.hpp"
#include "peerstore.hpp"
#include "protocols/identify.hpp"
#include "protocols/ping.hpp"
#include "stream.hpp"
#include "swarm/conn_manager.hpp"
#include "swarm/dialer.hpp"
#include "swarm/listener.hpp"
#include "wire/multiaddr.hpp"

namespace chorus::p2p {

// A plugin's handler for one protocol.
struct ProtocolHandler {
  chorus_p2p_accept_fn accept = nullptr;
  void *arg = nullptr;
};

class NodeImpl {
 public:
  NodeImpl(Settings settings, Identity identity, NodeLog &log);
  ~NodeImpl();

  std::string start();
  void stop();

  bool on_network_thread() const { return std::this_thread::get_id() == thread_id_; }
  boost::asio::io_context &io() { return io_; }
  const Identity &identity() const { return identity_; }
  const Settings &settings() const { return settings_; }
  NodeStats &stats() { return stats_; }
  void logf(int level, const std::string &msg);

  ConnManager &connections() { return conns_; }
  Dialer &dialer() { return dialer_; }
  Peerstore &peerstore() { return peerstore_; }
  PingService &ping() { return ping_; }
  std::vector<std::string> advertised_addrs() const;  // any thread (the bound list is fixed after start)

  // ---- connections report here ----
  // After the Noise handshake: allowed = false refuses the peer (why says why).
  void connection_secured(Connection &c, bool &allowed, std::string &why);
  void connection_open(Connection &c);
  void connection_closed(Connection &c, const std::string &reason);

  // ---- streams ----
  uint64_t next_stream_id() { return ++last_stream_id_; }
  void register_stream(Stream &s);
  void unregister_stream(Stream &s);
  Stream *find_stream(uint64_t id);
  std::vector<std::string> supported_protocols() const;  // for inbound negotiation and identify
  // An inbound stream whose protocol was agreed: its sink, or nullptr (with why) to reset it.
  std::unique_ptr<StreamSink> accept_stream(Stream &s, std::string &why);
  // Opens a stream to `peer`, dialling its known addresses when not connected.
  void open_stream(const PeerId &peer, std::vector<std::string> protocols, std::unique_ptr<StreamSink> sink,
                   uint32_t timeout_ms, std::function<void(chorus_status, Stream *, const std::string &)> done);

  // ---- peers ----
  Connection *best_connection(const PeerId &peer);
  std::vector<Multiaddr> book_addrs(const PeerId &peer);
  void emit(uint32_t type, const PeerId &peer, const Connection *c, const std::string *identify_json);
  std::string info_json();
  std::string peers_json();

  // Cross-thread state (guarded by their own mutexes).
  std::mutex gates_mu;
  std::unordered_map<uint64_t, std::shared_ptr<StreamGate>> gates;
  mutable std::mutex protocols_mu;
  std::map<std::string, ProtocolHandler> protocols;
  // Event subscriptions, guarded so that unsubscribe works from any thread at any time.
  std::mutex subs_mu;
  std::map<uint64_t, std::pair<chorus_p2p_event_fn, void *>> subscriptions;  // subs_mu
  uint64_t last_sub_id = 0;                                                   // subs_mu
  // Connected peers, readable from any thread (is_connected without a round trip).
  mutable std::mutex connected_mu;
  std::unordered_map<PeerId, uint32_t> connected;  // open connections per peer

  // Queues fn for the network thread. false once stop() has drained the queue for the last time:
  // then fn is dropped unrun. Everything queued before that runs, on the network thread or in
  // stop()'s final drain, so a caller waiting for its task never waits forever.
  template <class F>
  bool post(F &&fn);
  // Runs fn on the network thread and waits for it (directly when already there). false: the node
  // has stopped and fn did not run.
  bool run_sync(const std::function<void()> &fn);
  bool stopping() const { return stopping_.load(); }

 private:
  void sweep();
  void bootstrap(bool retry);

  Settings settings_;
  Identity identity_;
  NodeLog &log_;
  NodeStats stats_;
  boost::asio::io_context io_{1};
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false};
  std::mutex post_mu_;
  bool accepting_ = true;  // post_mu_

  Listener listener_{*this};
  ConnManager conns_{*this};
  Dialer dialer_{*this};
  Peerstore peerstore_;
  IdentifyService identify_{*this};
  PingService ping_{*this};

  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  uint64_t next_bootstrap_ms_ = 0;
  uint64_t last_stream_id_ = 0;
  std::unordered_map<uint64_t, Stream *> streams_;
};

template <class F>
bool NodeImpl::post(F &&fn) {
  std::lock_guard lk(post_mu_);
  if (!accepting_) return false;
  boost::asio::post(io_, std::forward<F>(fn));
  return true;
}

}  // namespace chorus::p2p

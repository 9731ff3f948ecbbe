// What the parts of the gossip node (node*.cpp) share and nothing else includes: the per-peer and
// per-stream state, the small helpers, and the templates that hand work to the gossip thread.
//
// node.cpp: construction, start and stop, membership, the subscription and validator registry,
//   publishing, introspection.
// node_router_io.cpp: the RouterIo the router calls (validation, delivery, signing, metrics) and
//   the hand-out of accepted messages to handlers.
// node_streams.cpp: the p2p callbacks, peers, their streams, framing and the per-peer send queue.
// node_verify.cpp: signature checks on verifier threads (machines with more than two cores).
// node_probe.cpp: the heartbeat and gauges, the loopback probe, health.
#pragma once

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "node.hpp"

namespace chorus::gossip {

namespace asio = boost::asio;
using json = nlohmann::json;

// ---- per-peer and per-stream state ----

// A peer we are connected to (gossip thread).
struct Node::Peer {
  std::string text;
  std::string ip;
  bool connected = false;
  bool outbound = false;        // we dialled the connection
  bool speaks_pubsub = false;   // identify listed a pubsub protocol
  uint64_t out_stream = 0;      // our write-only stream, once open
  bool opening = false;
  bool open_failed = false;     // the peer refused every pubsub protocol: do not retry
  uint64_t in_stream = 0;       // its write-only stream to us
  bool in_router = false;
  // Frames waiting for the p2p send queue (which said BUSY); bounded by peer_queue_bytes.
  std::deque<Bytes> queue;
  size_t queued_bytes = 0;
  bool blocked = false;
  // Counted in Node::open_peers_ / congested_peers_ (see note_queue).
  bool counted_open = false;
  bool congested = false;
};

// Bytes of an inbound stream on their way from the p2p thread to the gossip thread. The p2p thread
// appends and posts one drain only when none is queued yet, so a busy stream costs one wake-up of
// the gossip thread per batch of yamux frames rather than one per frame.
struct Node::Incoming {
  std::mutex mu;
  Bytes bytes;             // guarded by mu
  bool scheduled = false;  // guarded by mu: a drain is posted and has not run yet
  // guarded by mu: the network thread paused the stream because kIncomingCap bytes waited; the
  // gossip thread takes the pause over (Inbound::paused) when it drains them.
  bool overflow_paused = false;
  // Bytes appended and not taken by the gossip thread yet: reading pauses while too many wait (the
  // peer then stalls on its yamux window), so a fast sender cannot grow our memory.
  std::atomic<size_t> size{0};
};

// An inbound stream's unparsed bytes (gossip thread).
struct Node::Inbound {
  PeerId peer;
  Bytes buf;
  std::shared_ptr<Incoming> incoming;
  bool paused = false;
};

// The arg of one stream's p2p handler: lives from accept/open until on_closed (p2p thread only).
struct Node::StreamCtx {
  std::weak_ptr<Node> node;
  PeerId peer;
  std::string peer_text;
  bool inbound = false;
  std::shared_ptr<Incoming> incoming = std::make_shared<Incoming>();
};

// A message accepted by the Router, waiting to be handed to handlers (gossip thread).
struct Node::Delivery {
  std::string topic;
  Bytes data;
  std::optional<Bytes> from, seqno;
  Bytes id;
  PeerId received_from;  // as text only when a handler wants it
  bool local = false;
};

inline std::string ip_of(const std::string &multiaddr) {
  // "/ip4/1.2.3.4/tcp/..." or "/ip6/::1/tcp/...": the second component.
  if (multiaddr.rfind("/ip4/", 0) != 0 && multiaddr.rfind("/ip6/", 0) != 0) return "";
  const size_t end = multiaddr.find('/', 5);
  return multiaddr.substr(5, end == std::string::npos ? std::string::npos : end - 5);
}

inline std::optional<Protocol> protocol_from(std::string_view id) {
  if (id == "/meshsub/1.1.0") return Protocol::kMeshsub11;
  if (id == "/meshsub/1.0.0") return Protocol::kMeshsub10;
  if (id == "/floodsub/1.0.0") return Protocol::kFloodsub;
  return std::nullopt;
}

inline chorus_status fail(chorus_error *err, chorus_status code, const std::string &message) {
  chorus::set_error(err, code, message);
  return code;
}

inline std::optional<PeerId> peer_of(const uint8_t *bytes, size_t len) {
  if (bytes == nullptr) return std::nullopt;
  return PeerId::from_bytes(BytesView(bytes, len), nullptr);
}

template <class F>
void Node::post(F &&fn) {
  asio::post(io_, std::forward<F>(fn));
}

// Runs fn (returning chorus_status) on the gossip thread and waits for it; never waits on the
// network, only for the thread's queue.
template <class F>
chorus_status Node::run_sync(chorus_error *err, F &&fn) {
  if (on_gossip_thread()) return fn();
  if (stopping_.load()) return fail(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin is stopping");
  std::promise<chorus_status> done;
  auto result = done.get_future();
  asio::post(io_, [&] {
    try {
      done.set_value(fn());
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    // After stop the thread is gone and the task never runs (it cannot run later either).
    if (stopped_.load() && result.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return fail(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin stopped");
  }
  return result.get();
}

}  // namespace chorus::gossip

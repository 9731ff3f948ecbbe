// The GossipSub v1.1 router (docs/protocols.md, PubSub): meshes, fanout, gossip, the seen cache and
// message cache, GRAFT/PRUNE with backoff and peer exchange, peer scoring and the per-peer limits,
// and the validation pipeline in front of delivery. Peers speaking /floodsub/1.0.0 get flooding.
//
// Sans I/O and single-threaded: the node (node.cpp) owns the streams and the clock and calls in on
// the gossip thread; everything leaves through RouterIo. Tests drive several routers in one process
// with a fake clock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "rpc.hpp"
#include "score.hpp"
#include "signature.hpp"
#include "wire/peer_id.hpp"

namespace chorus::gossip {

enum class Protocol { kFloodsub, kMeshsub10, kMeshsub11 };
const char *protocol_id(Protocol p);  // "/meshsub/1.1.0", ...

enum class Validation { kAccept, kReject, kIgnore };

struct RouterParams {
  // Mesh degree.
  int d = 6, d_lo = 4, d_hi = 12, d_lazy = 6, d_score = 4, d_out = 2;
  uint64_t heartbeat_ms = 1000;
  uint64_t fanout_ttl_ms = 60000;
  int mcache_len = 5, mcache_gossip = 3;
  uint64_t seen_ttl_ms = 120000;
  double gossip_factor = 0.25;
  uint64_t prune_backoff_ms = 60000;
  uint64_t unsubscribe_backoff_ms = 10000;
  uint64_t graft_flood_threshold_ms = 10000;  // a GRAFT this soon after our PRUNE is penalised twice
  int opportunistic_graft_ticks = 60;
  int opportunistic_graft_peers = 2;
  bool flood_publish = true;
  bool do_px = true;          // send peer exchange in our PRUNEs
  int prune_peers = 16;       // peers offered in one PX
  // Per-peer, per-heartbeat gossip limits.
  int max_ihave_length = 5000;   // ids we ask for (IWANT) per peer per heartbeat
  int max_ihave_messages = 10;   // IHAVE messages we accept per peer per heartbeat
  uint64_t iwant_followup_ms = 3000;  // an IWANT promise not kept within this is a broken promise (P7)
  int gossip_retransmission = 3;  // a message id is sent at most this often per peer in reply to IWANT
  // Bounds against hostile peers.
  size_t max_topics_per_peer = 1000;  // subscriptions we track for one peer; more are ignored
  size_t max_message_bytes = 1 << 20;
  // Validation pipeline (the seed's options): received messages waiting for validation, and
  // validations under way at once.
  size_t validate_queue = 256;
  size_t validate_throttle = 1024;
  // Message ids of signed messages (config message_id: from_seqno | key_seqno).
  MessageIdFn message_id_fn = MessageIdFn::kFromSeqno;
};

// A message on its way to local delivery or a validator.
struct ReceivedMessage {
  const Message &message;
  const Bytes &id;
  const PeerId &received_from;  // our own id for local publications
  bool local = false;
};

// What the router counts, for the node's metrics (per topic; reason where given).
enum class RouterEvent {
  kPublished,    // our own message sent out
  kDelivered,    // handed to local delivery (first valid copy)
  kDuplicate,    // a copy of something already seen
  kRejected,     // reason: RejectReason as text ("invalid_signature", "validator", ...)
  kIgnored,      // reason: "validator", "queue_full", "graylisted", "not_subscribed", "too_large", ...
  kIwantBroken,  // an IWANT promise was not kept
  kGraftBackoff, // a GRAFT arrived during backoff
};
const char *reject_reason_name(RejectReason r);

// Called by the Router on its thread. No method may call back into the Router (the Router is in the
// middle of an operation): queue the work instead.
class RouterIo {
 public:
  virtual ~RouterIo() = default;
  // Queues an RPC for the peer (the node frames it; it may drop it if the peer's queue is full).
  virtual void send(const PeerId &peer, Rpc rpc) = 0;
  // Runs the application's validators for the topic (synchronously, on the gossip thread).
  virtual Validation validate(const ReceivedMessage &m) = 0;
  // A message accepted for the first time: hand it to local subscribers.
  virtual void deliver(const ReceivedMessage &m) = 0;
  // Signs with the node's identity key (64-byte Ed25519 signature). False: the key is unavailable.
  virtual bool sign(BytesView data, uint8_t signature[64]) = 0;
  // Peer exchange: peers a PRUNE suggested (only followed from peers above accept_px).
  virtual void connect_to(const std::vector<PeerInfo> &peers) { (void)peers; }
  virtual uint64_t now_ms() = 0;
  virtual void count(RouterEvent e, const std::string &topic, const char *reason = "") {
    (void)e, (void)topic, (void)reason;
  }
};

struct TopicSummary {
  std::string topic;
  bool subscribed = false;
  size_t peers = 0;       // gossip peers subscribed to it
  size_t mesh_peers = 0;  // in our mesh (or fanout when not subscribed)
};

struct PeerSummary {
  PeerId peer;
  Protocol protocol = Protocol::kMeshsub11;
  bool outbound = false;
  double score = 0;
  std::vector<std::string> topics;  // it subscribes to
  std::vector<std::string> mesh;    // topics where it is in our mesh
};

class Router {
 public:
  Router(RouterParams params, PeerScoreParams score_params, PeerScoreThresholds thresholds,
         SignaturePolicy policy, PeerId local, Bytes local_public_key, RouterIo &io);
  ~Router();
  Router(const Router &) = delete;
  Router &operator=(const Router &) = delete;

  // A peer whose pubsub stream we can write to (`outbound`: we dialled the connection). Sends it our
  // subscriptions. `ip` feeds IP colocation scoring ("" if unknown).
  void add_peer(const PeerId &peer, Protocol protocol, bool outbound, const std::string &ip);
  void remove_peer(const PeerId &peer);
  // One decoded RPC from a peer. `signatures_verified`: the caller already ran
  // check_message(m, policy, true, ...) on every message of it and all passed (signature verification
  // is the costliest step per message; the node may do it on another thread). With false, or when
  // any message failed, the router verifies itself.
  void handle_rpc(const PeerId &from, Rpc rpc, bool signatures_verified = false);

  // Local membership: join sends SUBSCRIBE to every peer and builds the mesh; leave sends
  // UNSUBSCRIBE and PRUNEs the mesh. Both idempotent.
  // announce false: a local-only topic - peers are not told, nothing published on it leaves this
  // node, and what peers send on it is treated as on a topic we never joined.
  void join(const std::string &topic, bool announce = true);
  void leave(const std::string &topic);
  bool joined(const std::string &topic) const;
  bool announced(const std::string &topic) const;  // joined and told to peers

  // Publishes data on the topic: signs it (StrictSign), validates it locally, delivers it locally when
  // joined, and sends it to the mesh (or fanout; all topic peers above publish_threshold with flood
  // publish). Returns the message id, or nothing with *why set (too large, validator rejected it,
  // signing failed).
  std::optional<Bytes> publish(const std::string &topic, Bytes data, std::string *why);
  // publish in two halves, so that a publisher on another thread learns the message id without
  // waiting for the router's thread. make_message may run on any thread: it reads only what never
  // changes after construction and takes the next seqno from an atomic counter; it gives the
  // message with our from and seqno (StrictSign), unsigned. publish_message does the rest of
  // publish on the router's thread: signing (StrictSign), validation, local delivery, sending.
  Message make_message(std::string topic, Bytes data);
  std::optional<Bytes> publish_message(Message m, std::string *why);

  // Runs one heartbeat: mesh maintenance, fanout expiry, gossip emission, cache shifting, score
  // decay, broken-promise accounting. The node calls it every params.heartbeat_ms.
  void heartbeat();

  // Message id of a message under the current signature policy (from + seqno, or sha256(data)).
  Bytes message_id(const Message &m) const;

  std::vector<TopicSummary> topics() const;
  std::vector<PeerSummary> peers() const;
  double score(const PeerId &peer) const;
  const RouterParams &params() const { return params_; }

 private:
  struct State;
  ControlPrune make_prune(const std::string &topic, const PeerId &to, bool unsubscribe, bool px);
  void forward(const Message &m, const PeerId &source);
  void mark_seen(const Bytes &id, uint64_t now);
  void cache_message(const Bytes &id, const Message &m);
  std::string metric_topic(const std::string &topic) const;
  void handle_subscriptions(const PeerId &from, const std::vector<SubOpts> &subs);
  void receive_message(const PeerId &from, Message m, bool signature_verified);
  void drain_queue();
  void validate_and_deliver(const PeerId &from, const Message &m, const Bytes &id, bool signature_verified);
  void handle_control(const PeerId &from, const Control &c);
  void handle_ihave(const PeerId &from, const std::vector<ControlIHave> &ihaves, Control &out);
  void handle_iwant(const PeerId &from, const std::vector<ControlIWant> &iwants, std::vector<Message> &out);
  void handle_graft(const PeerId &from, const std::vector<ControlGraft> &grafts, Control &out);
  void handle_prune(const PeerId &from, const std::vector<ControlPrune> &prunes);
  void emit_gossip(const std::string &topic, const std::set<PeerId> &exclude,
                   const std::unordered_map<PeerId, double> &scores);

  RouterParams params_;
  RouterIo &io_;
  std::unique_ptr<State> s_;
};

}  // namespace chorus::gossip

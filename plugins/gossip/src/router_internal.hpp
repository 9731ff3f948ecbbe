// What the parts of the GossipSub router (router*.cpp) share and nothing else includes: the router's
// state (Router::State) and the small helpers both parts use. One class over one State, in two files
// only to keep each short.
//
// router.cpp: construction, membership, publishing and forwarding, receiving (the validation
//   pipeline and control messages), summaries.
// router_heartbeat.cpp: the heartbeat (mesh and fanout maintenance, broken promises, cache shifts)
//   and the IHAVE gossip it emits.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "message_key.hpp"
#include "router.hpp"

namespace chorus::gossip {

struct BytesHash {
  size_t operator()(const Bytes &b) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

struct Router::State {
  struct Peer {
    Protocol protocol = Protocol::kMeshsub11;
    bool outbound = false;
    bool attached = false;  // add_peer was called: we can send to it
    std::string ip;
    std::set<std::string> topics;
    // Per-heartbeat gossip accounting.
    int ihaves_received = 0;  // RPCs carrying IHAVE this heartbeat
    int ids_asked = 0;        // ids we requested with IWANT this heartbeat
    int stray_messages = 0;   // messages on topics we did not join, this heartbeat
  };
  struct CacheEntry {
    Message message;
    std::unordered_map<PeerId, int> iwant_served;  // answers to IWANT per peer (gossip_retransmission)
  };
  struct Pending {
    PeerId from;
    Message message;
    Bytes id;
    bool signature_verified = false;
  };

  State(PeerScoreParams sp, PeerScoreThresholds t, SignaturePolicy p, PeerId l, Bytes pk)
      : score(std::move(sp)), thresholds(t), policy(p), local(std::move(l)), local_public_key(std::move(pk)) {}

  PeerScore score;
  PeerScoreThresholds thresholds;
  SignaturePolicy policy;
  PeerId local;
  Bytes local_public_key;

  std::unordered_map<PeerId, Peer> peers;
  std::map<std::string, std::set<PeerId>> topic_peers;
  std::set<std::string> joined;
  std::set<std::string> local_only;  // joined without telling peers (the health probe's topic)
  std::map<std::string, std::set<PeerId>> mesh;
  std::map<std::string, std::set<PeerId>> fanout;
  std::map<std::string, uint64_t> fanout_last_publish;
  // (topic, peer) -> when the backoff ends, whichever side pruned (as go-libp2p-pubsub keeps it).
  std::map<std::pair<std::string, PeerId>, uint64_t> backoff;

  std::unordered_map<MessageKey, uint64_t, MessageKeyHash> seen;  // id's key -> expiry
  std::deque<std::pair<uint64_t, MessageKey>> seen_order;

  bool was_seen(const Bytes &id) const { return seen.count(message_key(id)) != 0; }

  std::unordered_map<Bytes, CacheEntry, BytesHash> mcache;
  std::deque<std::vector<Bytes>> mcache_windows;  // front: the current heartbeat

  // IWANT promises: message id -> peer -> deadline.
  std::unordered_map<Bytes, std::unordered_map<PeerId, uint64_t>, BytesHash> promises;

  std::deque<Pending> queue;
  std::atomic<uint64_t> seqno{0};  // any thread (make_message)
  uint64_t ticks = 0;
  std::mt19937_64 rng{std::random_device{}()};

  // Control messages gathered during a heartbeat, sent as one RPC per peer at its end.
  std::map<PeerId, Control> outgoing;
};

inline bool is_meshsub(Protocol p) { return p != Protocol::kFloodsub; }

template <class T>
void shuffle(std::vector<T> &v, std::mt19937_64 &rng) {
  std::shuffle(v.begin(), v.end(), rng);
}

}  // namespace chorus::gossip

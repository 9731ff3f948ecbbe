// The iterative Kademlia lookup (docs/protocols.md, DHT lookups), sans I/O: the node owns the
// sockets and the clock; a Lookup only decides whom to ask next and when the lookup is over.
//
// The node drives it:
//   Lookup q(self, target, options, now);
//   q.seed(routing_table.closest(target, k));
//   loop:
//     for (peer : q.next_requests(now)) send the request to peer;
//     on a reply:   q.record_value / q.record_providers (GET_VALUE / GET_PROVIDERS), then
//                   q.on_reply(peer, closer peers it named, now)
//     on an error:  q.on_failure(peer, now)   (dial failed, stream reset, undecodable reply)
//     on a timer:   q.tick(now)               (fire at q.next_wakeup_ms())
//   until q.done(); then q.result().
//
// Candidates are kept sorted by XOR distance to the target. At most alpha requests are in flight,
// always to the closest candidates not asked yet among the k closest that have not failed. The lookup
// ends when those k closest have all answered (failed ones are replaced by the next closest), or early
// (GET_VALUE quorum, GET_PROVIDERS max_providers, finish()), or at the overall deadline (timed_out).
//
// Replies are untrusted: offered peers are deduplicated, self and the replying peer are dropped, a
// peer is never asked twice, only the k closest peers of one reply are considered, and the candidate
// set is bounded (max_candidates), keeping the closest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

enum class LookupKind { kFindNode, kGetValue, kGetProviders };
const char *lookup_kind_name(LookupKind kind);  // "FIND_NODE", "GET_VALUE", "GET_PROVIDERS"

struct LookupOptions {
  LookupKind kind = LookupKind::kFindNode;
  size_t k = 20;
  size_t alpha = 3;                       // requests in flight at most
  int64_t per_peer_timeout_ms = 10'000;   // a request older than this fails at tick()
  int64_t deadline_ms = 60'000;           // the whole lookup, from construction
  size_t max_candidates = 0;              // 0: 10 * k
  // Peers taken from one reply, the closest to the target first (0: k). An honest reply names k at
  // most; the rest of a longer one is junk that would only cost failed requests.
  size_t max_peers_per_reply = 0;
  // GET_VALUE: stop once this many peers returned a value (0: run until the k closest answered).
  size_t quorum = 0;
  // GET_PROVIDERS: stop once this many distinct providers are known (0: collect all of them).
  size_t max_providers = 0;
};

// Why a lookup ended.
enum class LookupEnd {
  kRunning,
  kConverged,     // the k closest candidates that did not fail have all answered
  kExhausted,     // fewer than k reachable peers and nobody left to ask
  kQuorum,        // GET_VALUE quorum reached
  kMaxProviders,  // GET_PROVIDERS max_providers reached
  kFinished,      // the node called finish()
  kDeadline,      // the overall deadline passed
};
const char *lookup_end_name(LookupEnd end);

// A value a peer returned for GET_VALUE; the node validated it before recording it.
struct FoundValue {
  PeerId from;
  Bytes value;
};

// A provider a peer named in a GET_PROVIDERS reply.
struct FoundProvider {
  PeerId id;
  std::vector<Bytes> addrs;  // binary multiaddrs, merged over every reply naming this provider
};

struct LookupStats {
  size_t queried = 0;      // requests handed out by next_requests
  size_t replies = 0;      // on_reply for a request in flight
  size_t failures = 0;     // on_failure and timeouts, together
  size_t timeouts = 0;     // requests failed by tick() for age
  size_t late_replies = 0; // replies and failures for peers not in flight (timed out, never asked)
  size_t offered = 0;      // peers named in replies, before filtering
  size_t dropped = 0;      // offered peers not added: self, the replier, known, beyond the bounds
  int hops = 0;            // longest discovery path among peers that answered (seeds are hop 1)
  int64_t elapsed_ms = 0;  // construction to end (or to the last call while running)
};

struct LookupResult {
  LookupEnd end = LookupEnd::kRunning;
  bool timed_out = false;       // end == kDeadline
  std::vector<PeerId> closest;  // up to k peers that answered, closest to the target first
  std::vector<FoundValue> values;        // GET_VALUE, one per peer, in arrival order
  std::vector<FoundProvider> providers;  // GET_PROVIDERS, distinct ids, in arrival order
  LookupStats stats;
};

class Lookup {
 public:
  // target: KadId::of_key(key), or KadId::of_peer(peer) for FIND_NODE. self is never a candidate.
  Lookup(const PeerId &self, const KadId &target, const LookupOptions &options, int64_t now_ms);

  // The first candidates, usually the routing table's k closest to target (hop 1).
  void seed(const std::vector<PeerId> &peers);

  // Peers to send the request to now (possibly none); they count as in flight from now_ms. Empty once
  // done. May end the lookup (deadline, or nobody left to ask).
  std::vector<PeerId> next_requests(int64_t now_ms);

  // peer answered; closer are the peers its reply named (the node drops entries it could not parse).
  // Ignored (counted as late) for a peer not in flight.
  void on_reply(const PeerId &peer, const std::vector<PeerId> &closer, int64_t now_ms);
  // The request to peer failed; ignored for a peer not in flight.
  void on_failure(const PeerId &peer, int64_t now_ms);
  // Fails requests older than per_peer_timeout_ms and ends the lookup at the deadline.
  void tick(int64_t now_ms);
  // Ends the lookup now with what it has (the node found what it looked for, or is shutting down).
  void finish(int64_t now_ms);

  // GET_VALUE: a value peer returned (validated by the node). Call before on_reply for that reply.
  void record_value(const PeerId &peer, Bytes value);
  // GET_PROVIDERS: providers a reply named. Call before on_reply for that reply.
  void record_providers(const std::vector<FoundProvider> &providers);

  bool done() const { return end_ != LookupEnd::kRunning; }
  // When the node should call tick() next: the earliest per-peer timeout or the deadline.
  int64_t next_wakeup_ms() const;
  size_t in_flight() const { return in_flight_; }
  size_t candidate_count() const { return candidates_.size(); }
  const KadId &target() const { return target_; }
  const LookupOptions &options() const { return options_; }

  // The result so far; final once done().
  LookupResult result() const;

 private:
  enum class State { kWaiting, kInFlight, kAnswered, kFailed };
  struct Candidate {
    PeerId id;
    State state = State::kWaiting;
    int hop = 1;
    int64_t sent_ms = 0;
  };
  using CandidateMap = std::map<KadId, Candidate>;  // keyed by distance to target

  void add_candidate(const PeerId &peer, const KadId &d, int hop);
  void trim_candidates();
  CandidateMap::iterator take_in_flight(const PeerId &peer);
  void update_end(int64_t now_ms);
  void end(LookupEnd why, int64_t now_ms);

  PeerId self_;
  KadId target_;
  LookupOptions options_;
  size_t max_candidates_;
  size_t max_peers_per_reply_;
  int64_t started_ms_;
  int64_t last_ms_;
  LookupEnd end_ = LookupEnd::kRunning;

  CandidateMap candidates_;
  std::unordered_map<PeerId, KadId> in_flight_distance_;  // in-flight peer -> its candidates_ key
  std::unordered_set<PeerId> asked_;  // every peer ever handed out: never asked twice
  size_t in_flight_ = 0;

  std::vector<FoundValue> values_;
  std::vector<FoundProvider> providers_;
  std::unordered_map<PeerId, size_t> provider_index_;
  LookupStats stats_;
};

}  // namespace chorus::dht

// When to ask a peer outside the routing table whether it still serves kad (a FIND_NODE for our own
// id; it re-enters the table when it answers). Sans I/O: the node owns the clock and the requests.
//
// Why: a peer that misses a request (a partition, a pause) leaves the table, and Kademlia learns of
// servers only from identify and from replies. After a partition heals the connections often survive,
// so no identify runs again, and two nodes that dropped each other never talk again. libp2p's kad-dht
// re-validates connected servers when its table runs short; this does the same with per-peer bounds:
//   - never two checks of one peer within min_interval_ms (the rate limit);
//   - after a failed check the wait doubles up to max_interval_ms; after max_failures failures in a
//     row the peer is dropped: its requests (kick) are ignored for quiet_ms (a client-mode peer keeps
//     calling us but never serves), while stronger evidence (lost: identify lists kad, or it was in
//     the table) brings it back at once;
//   - at most max_peers peers are tracked (the one due last is forgotten first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

struct RecheckOptions {
  int64_t min_interval_ms = 5000;
  int64_t max_interval_ms = 60000;
  size_t max_failures = 8;
  size_t max_peers = 4096;
  int64_t quiet_ms = 600000;
};

class RecheckSchedule {
 public:
  explicit RecheckSchedule(RecheckOptions o = {});

  // Evidence that the peer may serve kad (it sent us a request): due now, or min_interval_ms after
  // its last check if that is later; its backoff starts over. Ignored (false) within quiet_ms of
  // dropping the peer.
  bool kick(const PeerId &peer, int64_t now_ms);
  // It left the routing table after a failed request, or it is connected and its identify lists kad
  // but it is not in the table: due min_interval_ms from now. A peer already scheduled keeps its
  // schedule.
  void lost(const PeerId &peer, int64_t now_ms);
  // Up to max peers due at now_ms, earliest first; each is marked in flight (not due again until
  // answered or failed) and counts as checked at now_ms.
  std::vector<PeerId> take_due(int64_t now_ms, size_t max);
  // Its check was answered (or it is back in the table): forgotten.
  void answered(const PeerId &peer);  // also clears a drop
  // Its check failed: due again after the doubled wait. Returns false when it was dropped instead
  // (max_failures in a row).
  bool failed(const PeerId &peer, int64_t now_ms);
  // It does not serve kad (identify says so): forgotten.
  void forget(const PeerId &peer) {
    peers_.erase(peer);
    dropped_.erase(peer);
  }

  // When the next peer falls due (none: nothing scheduled outside checks in flight).
  std::optional<int64_t> next_due_ms() const;
  bool contains(const PeerId &peer) const { return peers_.count(peer) != 0; }
  size_t size() const { return peers_.size(); }
  const RecheckOptions &options() const { return o_; }

 private:
  struct Entry {
    int64_t due_ms = 0;
    int64_t last_check_ms = -1;  // -1: never checked
    int64_t wait_ms = 0;         // the wait after the next failure
    size_t failures = 0;
    bool in_flight = false;
  };
  Entry &entry(const PeerId &peer, bool *fresh);
  void make_room();

  RecheckOptions o_;
  std::unordered_map<PeerId, Entry> peers_;
  std::unordered_map<PeerId, int64_t> dropped_;  // peer -> when it was dropped (at most max_peers)
};

}  // namespace chorus::dht

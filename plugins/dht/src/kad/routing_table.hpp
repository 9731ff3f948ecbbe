// The Kademlia routing table (docs/protocols.md, DHT): 256 buckets of at most k peers, bucket i holding
// the peers whose KadId shares exactly i leading bits with ours. Only server-mode peers are added (the
// node checks what a peer's identify says before calling add). Sans I/O and single-threaded: the node
// owns the clock and the pings.
//
// A full bucket does not drop its members for newcomers: add() answers kBucketFull and names the least
// recently seen member, which the node pings; if that ping fails the node removes it and adds the
// newcomer (the Kademlia preference for long-lived peers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

struct RoutingPeer {
  PeerId id;
  KadId kad;
  int64_t added_ms = 0;
  int64_t last_seen_ms = 0;  // last successful exchange (query answered, ping)
};

struct BucketInfo {
  int index = 0;  // common prefix length with our id
  size_t peers = 0;
  int64_t last_refreshed_ms = 0;
};

class RoutingTable {
 public:
  RoutingTable(const PeerId &self, size_t k = 20);

  enum class AddResult { kAdded, kUpdated, kBucketFull, kSelf };
  // Adds the peer, or refreshes its last_seen when present. On kBucketFull, *evict (if not null) is the
  // bucket's least recently seen peer.
  AddResult add(const PeerId &peer, int64_t now_ms, PeerId *evict = nullptr);
  bool remove(const PeerId &peer);
  bool contains(const PeerId &peer) const;
  void mark_seen(const PeerId &peer, int64_t now_ms);

  // Up to count peers closest to target, closest first.
  std::vector<PeerId> closest(const KadId &target, size_t count) const;

  size_t size() const;
  size_t k() const { return k_; }
  const PeerId &self() const { return self_; }
  std::vector<RoutingPeer> peers() const;
  // Non-empty buckets and every bucket up to the deepest non-empty one, in index order.
  std::vector<BucketInfo> buckets() const;

  // Refresh: buckets (up to the deepest non-empty one) not refreshed for interval_ms. After a lookup
  // for a random id in bucket i completes, the node calls mark_refreshed(i).
  std::vector<int> buckets_to_refresh(int64_t now_ms, int64_t interval_ms) const;
  void mark_refreshed(int bucket, int64_t now_ms);
  // A random KadId at common prefix length exactly `bucket` from ours (a lookup target for refresh).
  KadId random_id_in_bucket(int bucket, std::mt19937_64 &rng) const;

 private:
  int deepest_bucket() const;  // -1 when the table is empty

  struct Bucket {
    std::vector<RoutingPeer> peers;  // least recently seen first
    int64_t last_refreshed_ms = 0;
  };
  PeerId self_;
  KadId self_kad_;
  size_t k_;
  std::vector<Bucket> buckets_;  // 257 entries: index = common prefix length (256 = self, unused)
};

}  // namespace chorus::dht

#include "kad/routing_table.hpp"

#include <algorithm>

namespace chorus::dht {
namespace {

constexpr int kBucketCount = 256;  // common prefix lengths 0..255; 256 is our own id

}  // namespace

RoutingTable::RoutingTable(const PeerId &self, size_t k)
    : self_(self), self_kad_(KadId::of_peer(self)), k_(k == 0 ? 1 : k), buckets_(kBucketCount + 1) {}

RoutingTable::AddResult RoutingTable::add(const PeerId &peer, int64_t now_ms, PeerId *evict) {
  if (peer == self_) return AddResult::kSelf;
  KadId kad = KadId::of_peer(peer);
  int index = common_prefix_len(self_kad_, kad);
  // A different id hashing to our own point is a SHA-256 collision; refuse it like ourselves.
  if (index >= kBucketCount) return AddResult::kSelf;
  Bucket &bucket = buckets_[index];
  auto it = std::find_if(bucket.peers.begin(), bucket.peers.end(), [&](const RoutingPeer &p) { return p.id == peer; });
  if (it != bucket.peers.end()) {
    RoutingPeer moved = std::move(*it);
    moved.last_seen_ms = now_ms;
    bucket.peers.erase(it);
    bucket.peers.push_back(std::move(moved));
    return AddResult::kUpdated;
  }
  if (bucket.peers.size() >= k_) {
    if (evict != nullptr) *evict = bucket.peers.front().id;
    return AddResult::kBucketFull;
  }
  bucket.peers.push_back(RoutingPeer{peer, kad, now_ms, now_ms});
  return AddResult::kAdded;
}

bool RoutingTable::remove(const PeerId &peer) {
  int index = common_prefix_len(self_kad_, KadId::of_peer(peer));
  if (index >= kBucketCount) return false;
  std::vector<RoutingPeer> &peers = buckets_[index].peers;
  auto it = std::find_if(peers.begin(), peers.end(), [&](const RoutingPeer &p) { return p.id == peer; });
  if (it == peers.end()) return false;
  peers.erase(it);
  return true;
}

bool RoutingTable::contains(const PeerId &peer) const {
  int index = common_prefix_len(self_kad_, KadId::of_peer(peer));
  if (index >= kBucketCount) return false;
  const std::vector<RoutingPeer> &peers = buckets_[index].peers;
  return std::any_of(peers.begin(), peers.end(), [&](const RoutingPeer &p) { return p.id == peer; });
}

void RoutingTable::mark_seen(const PeerId &peer, int64_t now_ms) {
  if (contains(peer)) add(peer, now_ms);
}

std::vector<PeerId> RoutingTable::closest(const KadId &target, size_t count) const {
  // At most 256 * k peers: sorting them all by distance is cheap and obviously correct.
  std::vector<const RoutingPeer *> all;
  for (const Bucket &b : buckets_)
    for (const RoutingPeer &p : b.peers) all.push_back(&p);
  size_t n = std::min(count, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [&](const RoutingPeer *a, const RoutingPeer *b) { return closer(a->kad, b->kad, target); });
  std::vector<PeerId> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(all[i]->id);
  return out;
}

size_t RoutingTable::size() const {
  size_t n = 0;
  for (const Bucket &b : buckets_) n += b.peers.size();
  return n;
}

std::vector<RoutingPeer> RoutingTable::peers() const {
  std::vector<RoutingPeer> out;
  for (const Bucket &b : buckets_) out.insert(out.end(), b.peers.begin(), b.peers.end());
  return out;
}

int RoutingTable::deepest_bucket() const {
  for (int i = kBucketCount - 1; i >= 0; --i)
    if (!buckets_[i].peers.empty()) return i;
  return -1;
}

std::vector<BucketInfo> RoutingTable::buckets() const {
  std::vector<BucketInfo> out;
  int deepest = deepest_bucket();
  for (int i = 0; i <= deepest; ++i) out.push_back(BucketInfo{i, buckets_[i].peers.size(), buckets_[i].last_refreshed_ms});
  return out;
}

std::vector<int> RoutingTable::buckets_to_refresh(int64_t now_ms, int64_t interval_ms) const {
  std::vector<int> out;
  int deepest = deepest_bucket();
  for (int i = 0; i <= deepest; ++i)
    if (now_ms - buckets_[i].last_refreshed_ms >= interval_ms) out.push_back(i);
  return out;
}

void RoutingTable::mark_refreshed(int bucket, int64_t now_ms) {
  if (bucket < 0 || bucket >= kBucketCount) return;
  buckets_[bucket].last_refreshed_ms = now_ms;
}

KadId RoutingTable::random_id_in_bucket(int bucket, std::mt19937_64 &rng) const {
  if (bucket < 0) bucket = 0;
  if (bucket >= kBucketCount) return self_kad_;
  KadId id;
  for (size_t i = 0; i < id.bytes.size(); i += 8) {
    uint64_t r = rng();
    for (size_t j = 0; j < 8; ++j) id.bytes[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  // Our first `bucket` bits, then the next bit flipped, then the random bits.
  size_t byte = static_cast<size_t>(bucket) / 8;
  int bit = bucket % 8;
  for (size_t i = 0; i < byte; ++i) id.bytes[i] = self_kad_.bytes[i];
  uint8_t keep = static_cast<uint8_t>(0xff00u >> bit);  // the `bit` high bits of this byte
  uint8_t flip = static_cast<uint8_t>(0x80u >> bit);
  id.bytes[byte] = static_cast<uint8_t>((self_kad_.bytes[byte] & keep) | ((self_kad_.bytes[byte] ^ flip) & flip) |
                                        (id.bytes[byte] & static_cast<uint8_t>(~keep & ~flip)));
  return id;
}

}  // namespace chorus::dht

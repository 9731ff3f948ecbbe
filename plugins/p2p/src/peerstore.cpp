#include "peerstore.hpp"

#include <algorithm>
#include <utility>

namespace chorus::p2p {

PeerRecord *Peerstore::find(const PeerId &peer) {
  auto it = records_.find(peer);
  return it == records_.end() ? nullptr : &it->second;
}

void Peerstore::forget_if_unused(const PeerId &peer) {
  auto it = records_.find(peer);
  if (it != records_.end() && it->second.connections.empty() && it->second.addrs.empty()) records_.erase(it);
}

std::vector<Multiaddr> Peerstore::dialable_addrs(const PeerId &peer, uint64_t now_ms) const {
  std::vector<Multiaddr> out;
  auto it = records_.find(peer);
  if (it == records_.end()) return out;
  for (const auto &[text, expiry] : it->second.addrs) {
    if (expiry != 0 && expiry < now_ms) continue;
    if (auto ma = Multiaddr::parse(text, nullptr)) out.push_back(ma->with_peer_id(peer));
  }
  return out;
}

void Peerstore::add_addrs(const PeerId &peer, const std::vector<std::string> &texts, uint64_t expiry_ms) {
  auto &book = records_[peer].addrs;
  for (const auto &t : texts) {
    if (book.size() >= 2 * kMaxAddrsPerPeer && !book.count(t)) break;  // bounded per peer
    book[t] = expiry_ms;
  }
}

void Peerstore::set_identified_addrs(PeerRecord &rec, const std::vector<Bytes> &listen_addrs, uint64_t expiry_ms) {
  for (const auto &old : rec.identified_addrs) rec.addrs.erase(old);
  rec.identified_addrs.clear();
  size_t added = 0;
  for (const auto &a : listen_addrs) {
    if (added >= kMaxAddrsPerPeer || rec.addrs.size() >= 2 * kMaxAddrsPerPeer) break;
    if (auto ma = Multiaddr::from_bytes(a, nullptr); ma && ma->tcp_target()) {
      const std::string text = ma->without_peer_id().to_string();
      if (rec.addrs.emplace(text, expiry_ms).second) rec.identified_addrs.insert(text);
      ++added;
    }
  }
}

void Peerstore::sweep(uint64_t now_ms) {
  for (auto it = records_.begin(); it != records_.end();) {
    auto &addrs = it->second.addrs;
    for (auto a = addrs.begin(); a != addrs.end();) {
      if (a->second != 0 && a->second < now_ms) {
        it->second.identified_addrs.erase(a->first);
        a = addrs.erase(a);
      } else {
        ++a;
      }
    }
    it = (it->second.connections.empty() && addrs.empty()) ? records_.erase(it) : std::next(it);
  }
  if (records_.size() > kMaxPeerRecords) {
    std::vector<std::pair<uint64_t, PeerId>> idle;
    for (const auto &[peer, rec] : records_)
      if (rec.connections.empty()) idle.emplace_back(rec.last_seen_ms, peer);
    std::sort(idle.begin(), idle.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    for (size_t i = 0; i < idle.size() && records_.size() > kMaxPeerRecords; ++i) records_.erase(idle[i].second);
  }
}

}  // namespace chorus::p2p

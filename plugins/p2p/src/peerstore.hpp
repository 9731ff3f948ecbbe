// The peerstore: what the node knows about each peer (its open connections, its addresses, its last
// identify answer). Network thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire/bytes.hpp"
#include "wire/identify.hpp"
#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

class Connection;

struct PeerRecord {
  std::vector<Connection *> connections;   // open (muxed) connections, oldest first
  std::optional<IdentifyMessage> identify;  // the last identify answer
  std::map<std::string, uint64_t> addrs;    // address book: multiaddr text -> expiry (0 = none)
  std::set<std::string> identified_addrs;   // the subset the peer announced in identify
  uint64_t last_seen_ms = 0;
};

class Peerstore {
 public:
  static constexpr size_t kMaxAddrsPerPeer = 32;   // addresses one peer's identify may add to our book
  static constexpr size_t kMaxPeerRecords = 4096;  // peers remembered (connected ones always are)

  using Records = std::unordered_map<PeerId, PeerRecord>;

  // The peer's record, created empty when missing.
  PeerRecord &record(const PeerId &peer) { return records_[peer]; }
  PeerRecord *find(const PeerId &peer);
  const Records &records() const { return records_; }
  // Forgets a peer that has neither connections nor addresses (a disconnected peer keeps its
  // address book entries for re-dialing, but not the rest).
  void forget_if_unused(const PeerId &peer);

  // The peer's unexpired addresses, each with /p2p/<peer> appended (what a dial needs).
  std::vector<Multiaddr> dialable_addrs(const PeerId &peer, uint64_t now_ms) const;
  // Adds addresses (texts without /p2p) given by a plugin, bounded per peer. expiry_ms 0 = none.
  void add_addrs(const PeerId &peer, const std::vector<std::string> &texts, uint64_t expiry_ms);
  // The peer's own list of listen addresses (identify or push) replaces what it announced before,
  // bounded per peer; addresses we dialled or were given stay.
  void set_identified_addrs(PeerRecord &rec, const std::vector<Bytes> &listen_addrs, uint64_t expiry_ms);

  // Drops expired addresses and empty records, then the disconnected peers seen longest ago while
  // more than kMaxPeerRecords are known (a stream of fresh identities must not grow the book for ever).
  void sweep(uint64_t now_ms);

 private:
  Records records_;
};

}  // namespace chorus::p2p

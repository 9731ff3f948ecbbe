// The mDNS side of libp2p peer discovery (libp2p discovery/mdns.md, RFC 6762/6763), sans I/O.
//
// Engine builds our packets (query, announcement, goodbye) and reads incoming ones: it answers
// queries for our service, applies known-answer suppression, and turns responses into
// Announcements (instance name, TTL, the instance's dnsaddr= strings). PeerTable turns those into
// libp2p peers (peer id + TCP multiaddrs), bounded in size, and expires them.
//
// Neither class does I/O or reads a clock: the caller passes now_ms. Both are single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dns.hpp"
#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"

namespace chorus::mdns {

// A response's claim about one service instance.
struct Announcement {
  std::string instance;          // "<peer-name>._<tag>._udp.local"
  uint32_t ttl = 0;              // 0 = goodbye
  std::vector<std::string> txt;  // every TXT string found for the instance (answers + additionals)
};

// What one incoming packet asks of us.
struct PacketResult {
  bool ours = false;             // our own packet looped back
  bool answer_multicast = false; // a query we must answer (after the RFC's 20-120 ms delay)
  bool answer_unicast = false;   // a legacy unicast query (source port != 5353): answer the sender
  uint16_t query_id = 0;         // for the unicast answer
  std::vector<Announcement> announcements;
};

class Engine {
 public:
  // service_tag: "CHORUS-peer-discovery" -> service "_CHORUS-peer-discovery._udp.local".
  // peer_name: our instance label (random, 32-63 chars; see random_peer_name).
  Engine(std::string service_tag, std::string peer_name, uint32_t ttl_s);

  const std::string &service() const { return service_; }
  const std::string &instance() const { return instance_; }

  // Our addresses as full multiaddr texts including /p2p/<id>; strings that do not fit a TXT
  // string (255 bytes with "dnsaddr=") are left out. Returns how many were kept.
  size_t set_addrs(const std::vector<std::string> &addrs_with_peer_id);
  bool has_addrs() const { return !txt_.empty(); }

  // Query for our service. known: PTR targets (instance names) we already trust, with their
  // remaining TTL in seconds; they go into the answer section (RFC 6762 7.1) as far as they fit.
  std::vector<uint8_t> build_query(const std::vector<std::pair<std::string, uint32_t>> &known) const;
  // Our response/announcement: PTR in answers, TXT in additionals (docs/protocols.md, mDNS). ttl 0 = goodbye.
  std::vector<uint8_t> build_response(uint32_t ttl, uint16_t id = 0) const;

  // Reads one packet; *why gets the reason a packet was dropped as malformed (result.announcements
  // empty then). source_port: the UDP source port (legacy unicast queries come from != 5353).
  PacketResult handle(std::span<const uint8_t> packet, uint16_t source_port, uint16_t mdns_port,
                      std::string *why) const;

  static std::string random_peer_name(std::mt19937_64 &rng);

 private:
  std::string service_;
  std::string peer_name_;
  std::string instance_;
  uint32_t ttl_s_;
  std::vector<std::string> txt_;  // "dnsaddr=..." strings
};

// One discovered peer.
struct PeerEntry {
  p2p::PeerId id;
  std::string id_text;
  std::string instance;
  std::vector<std::string> addrs;  // TCP multiaddrs without /p2p/, best first
  uint64_t first_seen_ms = 0;
  uint64_t last_seen_ms = 0;
  uint64_t expires_ms = 0;
};

enum class ApplyOutcome {
  found,        // a new peer
  changed,      // known peer, new address set
  refreshed,    // known peer, same addresses
  lost,         // goodbye (TTL 0) for a known peer
  ignored,      // goodbye for an unknown peer, or nothing usable
  self,         // the announcement carries our own peer id
  invalid,      // no valid dnsaddr= multiaddr with a peer id
  table_full,   // a new peer while max_peers are tracked
};

const char *outcome_name(ApplyOutcome o);

class PeerTable {
 public:
  PeerTable(p2p::PeerId self, size_t max_peers, size_t max_addrs_per_peer = 16)
      : self_(std::move(self)), max_peers_(max_peers), max_addrs_(max_addrs_per_peer) {}

  // Applies an announcement. source_ip (text, may be empty) orders the addresses: the one the
  // packet came from first, loopback last. *entry points at the peer on found/changed/refreshed/
  // lost (for lost: a copy taken before removal is stored in *removed).
  ApplyOutcome apply(const Announcement &a, const std::string &source_ip, uint64_t now_ms, const PeerEntry **entry,
                     PeerEntry *removed, std::string *why);

  // Drops peers whose TTL ran out; returns them.
  std::vector<PeerEntry> expire(uint64_t now_ms);

  const PeerEntry *find(const p2p::PeerId &id) const;
  const std::map<p2p::PeerId, PeerEntry> &peers() const { return peers_; }
  size_t size() const { return peers_.size(); }

 private:
  p2p::PeerId self_;
  size_t max_peers_;
  size_t max_addrs_;
  std::map<p2p::PeerId, PeerEntry> peers_;
};

// A token bucket (per second) for packets and new peers.
class RateLimiter {
 public:
  RateLimiter(double per_second, double burst) : rate_(per_second), burst_(burst), tokens_(burst) {}
  bool take(uint64_t now_ms);

 private:
  double rate_, burst_, tokens_;
  uint64_t last_ms_ = 0;
  bool started_ = false;
};

}  // namespace chorus::mdns

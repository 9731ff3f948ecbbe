#include "engine.hpp"

#include <algorithm>

namespace chorus::mdns {

namespace {
constexpr std::string_view kDnsaddr = "dnsaddr=";
constexpr size_t kMaxAnnouncementsPerPacket = 16;
constexpr size_t kMaxTxtPerInstance = 64;
constexpr size_t kQueryBudget = 1400;  // bytes: known answers stop here (one Ethernet frame)
}  // namespace

Engine::Engine(std::string service_tag, std::string peer_name, uint32_t ttl_s)
    : service_("_" + service_tag + "._udp.local"),
      peer_name_(std::move(peer_name)),
      instance_(peer_name_ + "." + service_),
      ttl_s_(ttl_s) {}

std::string Engine::random_peer_name(std::mt19937_64 &rng) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<int> len(32, 63);
  std::uniform_int_distribution<int> ch(0, 35);
  std::string s(static_cast<size_t>(len(rng)), 'a');
  for (char &c : s) c = kAlphabet[ch(rng)];
  return s;
}

size_t Engine::set_addrs(const std::vector<std::string> &addrs) {
  txt_.clear();
  for (const auto &a : addrs) {
    std::string s = std::string(kDnsaddr) + a;
    if (s.size() <= 255 && txt_.size() < 32 && std::find(txt_.begin(), txt_.end(), s) == txt_.end())
      txt_.push_back(std::move(s));
  }
  return txt_.size();
}

std::vector<uint8_t> Engine::build_query(const std::vector<std::pair<std::string, uint32_t>> &known) const {
  DnsWriter w(0, 0);
  w.question(service_, kTypePtr, kClassIn);
  for (const auto &[target, ttl] : known) {
    if (w.size() + target.size() + 16 > kQueryBudget) break;
    w.ptr(DnsWriter::kAnswer, service_, ttl, target);
  }
  return std::move(w).finish();
}

std::vector<uint8_t> Engine::build_response(uint32_t ttl, uint16_t id) const {
  DnsWriter w(id, kFlagResponse | kFlagAuthoritative);
  w.ptr(DnsWriter::kAnswer, service_, ttl, instance_);
  w.txt(DnsWriter::kAdditional, instance_, ttl, txt_);
  return std::move(w).finish();
}

PacketResult Engine::handle(std::span<const uint8_t> packet, uint16_t source_port, uint16_t mdns_port,
                            std::string *why) const {
  PacketResult res;
  DnsMessage msg;
  if (!parse_message(packet, msg, why)) return res;

  if (!msg.is_response()) {
    bool asked = false;
    for (const auto &q : msg.questions) {
      if (q.klass != kClassIn && q.klass != kTypeAny) continue;
      if ((q.type == kTypePtr || q.type == kTypeAny) && names_equal(q.name, service_)) asked = true;
      if ((q.type == kTypeTxt || q.type == kTypeAny) && names_equal(q.name, instance_)) asked = true;
    }
    if (!asked || txt_.empty()) return res;
    // Known-answer suppression (RFC 6762 7.1): the asker already holds our PTR with at least half
    // its TTL left.
    for (const auto &a : msg.answers) {
      if (a.type == kTypePtr && names_equal(a.name, service_) && names_equal(a.ptr, instance_) && a.ttl >= ttl_s_ / 2) {
        if (source_port == mdns_port) return res;
      }
    }
    if (source_port != mdns_port) {
      res.answer_unicast = true;
      res.query_id = msg.id;
    } else {
      res.answer_multicast = true;
    }
    return res;
  }

  // A response: every PTR for our service names an instance; its TXT strings may sit in the
  // answers (js-libp2p) or the additionals (the libp2p specification, go-libp2p; docs/protocols.md, mDNS).
  for (const auto &a : msg.answers) {
    if (a.type != kTypePtr || a.klass != kClassIn || !names_equal(a.name, service_)) continue;
    if (names_equal(a.ptr, instance_)) {
      res.ours = true;
      continue;
    }
    if (res.announcements.size() >= kMaxAnnouncementsPerPacket) break;
    auto dup = std::find_if(res.announcements.begin(), res.announcements.end(),
                            [&](const Announcement &x) { return names_equal(x.instance, a.ptr); });
    if (dup != res.announcements.end()) continue;
    Announcement ann;
    ann.instance = a.ptr;
    ann.ttl = a.ttl;
    for (const auto *section : {&msg.answers, &msg.additionals}) {
      for (const auto &r : *section) {
        if (r.type != kTypeTxt || !names_equal(r.name, ann.instance)) continue;
        for (const auto &s : r.txt) {
          if (ann.txt.size() >= kMaxTxtPerInstance) break;
          ann.txt.push_back(s);
        }
      }
    }
    res.announcements.push_back(std::move(ann));
  }
  return res;
}

// ---- peers ----

const char *outcome_name(ApplyOutcome o) {
  switch (o) {
    case ApplyOutcome::found: return "found";
    case ApplyOutcome::changed: return "changed";
    case ApplyOutcome::refreshed: return "refreshed";
    case ApplyOutcome::lost: return "lost";
    case ApplyOutcome::ignored: return "ignored";
    case ApplyOutcome::self: return "self";
    case ApplyOutcome::invalid: return "invalid";
    case ApplyOutcome::table_full: return "table_full";
  }
  return "?";
}

namespace {

bool is_loopback(const p2p::Multiaddr::TcpTarget &t) {
  if (t.kind == p2p::Multiaddr::TcpTarget::ip4) return t.host.rfind("127.", 0) == 0;
  if (t.kind == p2p::Multiaddr::TcpTarget::ip6) return t.host == "::1";
  return false;
}

}  // namespace

ApplyOutcome PeerTable::apply(const Announcement &a, const std::string &source_ip, uint64_t now_ms,
                              const PeerEntry **entry, PeerEntry *removed, std::string *why) {
  if (entry != nullptr) *entry = nullptr;
  std::optional<p2p::PeerId> peer;
  struct Candidate {
    std::string text;
    int rank;  // 0 = the packet's source, 1 = other, 2 = loopback
  };
  std::vector<Candidate> addrs;
  std::string last_error;
  for (const auto &s : a.txt) {
    if (s.size() <= kDnsaddr.size() || s.compare(0, kDnsaddr.size(), kDnsaddr) != 0) continue;
    std::string err;
    auto ma = p2p::Multiaddr::parse(std::string_view(s).substr(kDnsaddr.size()), &err);
    if (!ma) {
      last_error = "not a multiaddr: " + err;
      continue;
    }
    auto id = ma->peer_id();
    if (!id) {
      last_error = "'" + s.substr(kDnsaddr.size()) + "' has no /p2p/<peer id>";
      continue;
    }
    if (!peer) peer = id;
    if (*id != *peer) {
      last_error = "addresses of one instance name different peer ids";
      continue;
    }
    const auto bare = ma->without_peer_id();
    auto t = bare.tcp_target();
    if (!t) continue;  // not for us (quic, ws, ...): fine, not an error
    Candidate c{bare.to_string(), t->host == source_ip ? 0 : is_loopback(*t) ? 2 : 1};
    if (std::none_of(addrs.begin(), addrs.end(), [&](const Candidate &x) { return x.text == c.text; }) &&
        addrs.size() < max_addrs_)
      addrs.push_back(std::move(c));
  }
  if (!peer) {
    if (why != nullptr) *why = last_error.empty() ? "no dnsaddr= entry with a peer id" : last_error;
    return a.ttl == 0 ? ApplyOutcome::ignored : ApplyOutcome::invalid;
  }
  if (*peer == self_) return ApplyOutcome::self;

  auto it = peers_.find(*peer);
  if (a.ttl == 0) {
    if (it == peers_.end()) return ApplyOutcome::ignored;
    if (removed != nullptr) *removed = it->second;
    peers_.erase(it);
    return ApplyOutcome::lost;
  }
  if (addrs.empty()) {
    if (why != nullptr) *why = "no TCP address";
    return ApplyOutcome::invalid;
  }
  std::stable_sort(addrs.begin(), addrs.end(), [](const Candidate &x, const Candidate &y) { return x.rank < y.rank; });
  std::vector<std::string> texts;
  for (auto &c : addrs) texts.push_back(std::move(c.text));

  ApplyOutcome out = ApplyOutcome::refreshed;
  if (it == peers_.end()) {
    if (peers_.size() >= max_peers_) return ApplyOutcome::table_full;
    PeerEntry e;
    e.id = *peer;
    e.id_text = peer->to_base58();
    e.first_seen_ms = now_ms;
    it = peers_.emplace(*peer, std::move(e)).first;
    out = ApplyOutcome::found;
  } else {
    auto a1 = it->second.addrs, a2 = texts;
    std::sort(a1.begin(), a1.end());
    std::sort(a2.begin(), a2.end());
    if (a1 != a2) out = ApplyOutcome::changed;
  }
  PeerEntry &e = it->second;
  e.instance = a.instance;
  e.addrs = std::move(texts);
  e.last_seen_ms = now_ms;
  e.expires_ms = now_ms + static_cast<uint64_t>(a.ttl) * 1000;
  if (entry != nullptr) *entry = &e;
  return out;
}

std::vector<PeerEntry> PeerTable::expire(uint64_t now_ms) {
  std::vector<PeerEntry> gone;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->second.expires_ms <= now_ms) {
      gone.push_back(std::move(it->second));
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

const PeerEntry *PeerTable::find(const p2p::PeerId &id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

bool RateLimiter::take(uint64_t now_ms) {
  if (!started_) {
    started_ = true;
    last_ms_ = now_ms;
  }
  if (now_ms > last_ms_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
    last_ms_ = now_ms;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

}  // namespace chorus::mdns

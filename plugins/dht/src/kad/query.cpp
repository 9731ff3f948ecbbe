#include "kad/query.hpp"

#include <algorithm>

namespace chorus::dht {

const char *lookup_kind_name(LookupKind kind) {
  switch (kind) {
    case LookupKind::kFindNode: return "FIND_NODE";
    case LookupKind::kGetValue: return "GET_VALUE";
    case LookupKind::kGetProviders: return "GET_PROVIDERS";
  }
  return "UNKNOWN";
}

const char *lookup_end_name(LookupEnd end) {
  switch (end) {
    case LookupEnd::kRunning: return "running";
    case LookupEnd::kConverged: return "converged";
    case LookupEnd::kExhausted: return "exhausted";
    case LookupEnd::kQuorum: return "quorum";
    case LookupEnd::kMaxProviders: return "max_providers";
    case LookupEnd::kFinished: return "finished";
    case LookupEnd::kDeadline: return "deadline";
  }
  return "unknown";
}

Lookup::Lookup(const PeerId &self, const KadId &target, const LookupOptions &options, int64_t now_ms)
    : self_(self), target_(target), options_(options), started_ms_(now_ms), last_ms_(now_ms) {
  if (options_.k == 0) options_.k = 1;
  if (options_.alpha == 0) options_.alpha = 1;
  max_candidates_ = options_.max_candidates != 0 ? std::max(options_.max_candidates, options_.k)
                                                 : 10 * options_.k;
  max_peers_per_reply_ = options_.max_peers_per_reply != 0 ? options_.max_peers_per_reply : options_.k;
}

void Lookup::seed(const std::vector<PeerId> &peers) {
  if (done()) return;
  for (const PeerId &p : peers) {
    if (p.empty() || p == self_ || asked_.count(p) != 0) continue;
    add_candidate(p, distance(KadId::of_peer(p), target_), 1);
  }
  trim_candidates();
}

// d: the peer's distance to the target. The caller has dropped self, empty ids and peers asked before.
void Lookup::add_candidate(const PeerId &peer, const KadId &d, int hop) {
  // Full and no closer than the farthest kept: it would be trimmed at once.
  if (candidates_.size() >= max_candidates_ && !(d < candidates_.rbegin()->first)) {
    ++stats_.dropped;
    return;
  }
  auto [it, inserted] = candidates_.try_emplace(d, Candidate{peer, State::kWaiting, hop, 0});
  if (!inserted) ++stats_.dropped;  // already a candidate: keep the first (shortest known) path
}

// Drops the farthest waiting candidates beyond max_candidates. Failed candidates are erased when they
// fail, so junk that never answers cannot fill the set; in-flight and answered ones stay (at most
// alpha in flight; answered ones beyond the bound are far from the k closest anyway, but dropping an
// answered peer would lose it from the result, so the bound counts only what can still be asked).
void Lookup::trim_candidates() {
  auto it = candidates_.end();
  while (candidates_.size() > max_candidates_ && it != candidates_.begin()) {
    --it;
    if (it->second.state == State::kWaiting) {
      it = candidates_.erase(it);
      ++stats_.dropped;
    }
  }
}

std::vector<PeerId> Lookup::next_requests(int64_t now_ms) {
  std::vector<PeerId> out;
  if (done()) return out;
  last_ms_ = std::max(last_ms_, now_ms);
  if (now_ms - started_ms_ >= options_.deadline_ms) {
    end(LookupEnd::kDeadline, now_ms);
    return out;
  }
  // The window: the k closest candidates that have not failed (failed ones are no longer in the map).
  size_t seen = 0;
  for (auto &[d, c] : candidates_) {
    if (seen == options_.k || in_flight_ >= options_.alpha) break;
    ++seen;
    if (c.state != State::kWaiting) continue;
    c.state = State::kInFlight;
    c.sent_ms = now_ms;
    ++in_flight_;
    in_flight_distance_.emplace(c.id, d);
    asked_.insert(c.id);
    ++stats_.queried;
    out.push_back(c.id);
  }
  if (out.empty()) update_end(now_ms);
  return out;
}

// The candidate of a request in flight to peer, no longer in flight; candidates_.end() when peer has
// no request in flight (never asked, timed out, answered already).
Lookup::CandidateMap::iterator Lookup::take_in_flight(const PeerId &peer) {
  auto f = in_flight_distance_.find(peer);
  if (f == in_flight_distance_.end()) return candidates_.end();
  auto it = candidates_.find(f->second);
  in_flight_distance_.erase(f);
  if (it == candidates_.end() || it->second.state != State::kInFlight) return candidates_.end();
  --in_flight_;
  return it;
}

void Lookup::on_reply(const PeerId &peer, const std::vector<PeerId> &closer, int64_t now_ms) {
  if (done()) {
    ++stats_.late_replies;
    return;
  }
  last_ms_ = std::max(last_ms_, now_ms);
  auto it = take_in_flight(peer);
  if (it == candidates_.end()) {
    ++stats_.late_replies;
    return;
  }
  Candidate *c = &it->second;
  c->state = State::kAnswered;
  ++stats_.replies;
  stats_.hops = std::max(stats_.hops, c->hop);
  const int next_hop = c->hop + 1;
  stats_.offered += closer.size();
  // The closest max_peers_per_reply distinct newcomers of the reply, closest first.
  std::vector<std::pair<KadId, const PeerId *>> fresh;
  fresh.reserve(std::min(closer.size(), 4 * max_peers_per_reply_));
  for (const PeerId &p : closer) {
    if (p == peer || p == self_ || p.empty() || asked_.count(p) != 0) continue;
    fresh.emplace_back(distance(KadId::of_peer(p), target_), &p);
  }
  std::sort(fresh.begin(), fresh.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
  fresh.erase(std::unique(fresh.begin(), fresh.end(), [](const auto &a, const auto &b) { return a.first == b.first; }),
              fresh.end());
  if (fresh.size() > max_peers_per_reply_) fresh.resize(max_peers_per_reply_);
  stats_.dropped += closer.size() - fresh.size();
  for (const auto &[d, p] : fresh) add_candidate(*p, d, next_hop);
  trim_candidates();
  update_end(now_ms);
}

void Lookup::on_failure(const PeerId &peer, int64_t now_ms) {
  if (done()) {
    ++stats_.late_replies;
    return;
  }
  last_ms_ = std::max(last_ms_, now_ms);
  auto it = take_in_flight(peer);
  if (it == candidates_.end()) {
    ++stats_.late_replies;
    return;
  }
  ++stats_.failures;
  candidates_.erase(it);  // asked_ keeps it from coming back
  update_end(now_ms);
}

void Lookup::tick(int64_t now_ms) {
  if (done()) return;
  last_ms_ = std::max(last_ms_, now_ms);
  if (now_ms - started_ms_ >= options_.deadline_ms) {
    end(LookupEnd::kDeadline, now_ms);
    return;
  }
  for (auto it = candidates_.begin(); it != candidates_.end();) {
    Candidate &c = it->second;
    if (c.state == State::kInFlight && now_ms - c.sent_ms >= options_.per_peer_timeout_ms) {
      in_flight_distance_.erase(c.id);
      --in_flight_;
      ++stats_.timeouts;
      ++stats_.failures;
      it = candidates_.erase(it);
    } else {
      ++it;
    }
  }
  update_end(now_ms);
}

void Lookup::finish(int64_t now_ms) {
  if (!done()) end(LookupEnd::kFinished, now_ms);
}

void Lookup::record_value(const PeerId &peer, Bytes value) {
  if (done()) return;
  for (FoundValue &v : values_) {
    if (v.from == peer) {
      v.value = std::move(value);
      return;
    }
  }
  values_.push_back(FoundValue{peer, std::move(value)});
}

void Lookup::record_providers(const std::vector<FoundProvider> &providers) {
  if (done()) return;
  for (const FoundProvider &p : providers) {
    if (p.id.empty()) continue;
    if (options_.max_providers != 0 && providers_.size() >= options_.max_providers &&
        provider_index_.count(p.id) == 0)
      break;
    auto [at, inserted] = provider_index_.try_emplace(p.id, providers_.size());
    if (inserted) {
      providers_.push_back(p);
      continue;
    }
    std::vector<Bytes> &addrs = providers_[at->second].addrs;
    for (const Bytes &a : p.addrs)
      if (std::find(addrs.begin(), addrs.end(), a) == addrs.end()) addrs.push_back(a);
  }
}

void Lookup::update_end(int64_t now_ms) {
  if (done()) return;
  if (now_ms - started_ms_ >= options_.deadline_ms) return end(LookupEnd::kDeadline, now_ms);
  if (options_.kind == LookupKind::kGetValue && options_.quorum != 0 && values_.size() >= options_.quorum)
    return end(LookupEnd::kQuorum, now_ms);
  if (options_.kind == LookupKind::kGetProviders && options_.max_providers != 0 &&
      providers_.size() >= options_.max_providers)
    return end(LookupEnd::kMaxProviders, now_ms);
  // Converged when the k closest live candidates have all answered; requests still in flight to
  // farther peers do not hold the lookup open.
  size_t answered = 0;
  for (const auto &[d, c] : candidates_) {
    if (c.state != State::kAnswered) return;  // a closer one is waiting or in flight
    if (++answered == options_.k) return end(LookupEnd::kConverged, now_ms);
  }
  end(LookupEnd::kExhausted, now_ms);
}

void Lookup::end(LookupEnd why, int64_t now_ms) {
  last_ms_ = std::max(last_ms_, now_ms);
  end_ = why;
}

int64_t Lookup::next_wakeup_ms() const {
  int64_t at = started_ms_ + options_.deadline_ms;
  for (const auto &[d, c] : candidates_)
    if (c.state == State::kInFlight) at = std::min(at, c.sent_ms + options_.per_peer_timeout_ms);
  return at;
}

LookupResult Lookup::result() const {
  LookupResult r;
  r.end = end_;
  r.timed_out = end_ == LookupEnd::kDeadline;
  for (const auto &[d, c] : candidates_) {
    if (r.closest.size() == options_.k) break;
    if (c.state == State::kAnswered) r.closest.push_back(c.id);
  }
  r.values = values_;
  r.providers = providers_;
  r.stats = stats_;
  r.stats.elapsed_ms = last_ms_ - started_ms_;
  return r;
}

}  // namespace chorus::dht

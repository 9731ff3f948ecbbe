#include "kad/recheck.hpp"

#include <algorithm>

namespace chorus::dht {

RecheckSchedule::RecheckSchedule(RecheckOptions o) : o_(o) {
  o_.min_interval_ms = std::max<int64_t>(o_.min_interval_ms, 1);
  o_.max_interval_ms = std::max(o_.max_interval_ms, o_.min_interval_ms);
  o_.max_failures = std::max<size_t>(o_.max_failures, 1);
  o_.max_peers = std::max<size_t>(o_.max_peers, 1);
}

void RecheckSchedule::make_room() {
  if (peers_.size() < o_.max_peers) return;
  // Forget the peer due last (a check in flight is kept: its answer is on the way).
  auto victim = peers_.end();
  for (auto it = peers_.begin(); it != peers_.end(); ++it)
    if (!it->second.in_flight && (victim == peers_.end() || it->second.due_ms > victim->second.due_ms)) victim = it;
  if (victim == peers_.end()) victim = peers_.begin();
  peers_.erase(victim);
}

RecheckSchedule::Entry &RecheckSchedule::entry(const PeerId &peer, bool *fresh) {
  auto it = peers_.find(peer);
  *fresh = it == peers_.end();
  if (!*fresh) return it->second;
  make_room();
  Entry &e = peers_[peer];
  e.wait_ms = o_.min_interval_ms;
  return e;
}

bool RecheckSchedule::kick(const PeerId &peer, int64_t now_ms) {
  if (auto d = dropped_.find(peer); d != dropped_.end()) {
    if (now_ms - d->second < o_.quiet_ms) return false;
    dropped_.erase(d);
  }
  bool fresh = false;
  Entry &e = entry(peer, &fresh);
  e.failures = 0;
  e.wait_ms = o_.min_interval_ms;
  if (e.in_flight) return true;  // its answer decides
  const int64_t earliest = e.last_check_ms < 0 ? now_ms : e.last_check_ms + o_.min_interval_ms;
  e.due_ms = fresh ? std::max(now_ms, earliest) : std::min(std::max(now_ms, earliest), std::max(e.due_ms, earliest));
  return true;
}

void RecheckSchedule::lost(const PeerId &peer, int64_t now_ms) {
  dropped_.erase(peer);
  bool fresh = false;
  Entry &e = entry(peer, &fresh);
  if (fresh) e.due_ms = now_ms + o_.min_interval_ms;
}

std::vector<PeerId> RecheckSchedule::take_due(int64_t now_ms, size_t max) {
  std::vector<std::pair<int64_t, const PeerId *>> due;
  for (const auto &[peer, e] : peers_)
    if (!e.in_flight && e.due_ms <= now_ms) due.emplace_back(e.due_ms, &peer);
  std::sort(due.begin(), due.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
  if (due.size() > max) due.resize(max);
  std::vector<PeerId> out;
  out.reserve(due.size());
  for (const auto &[at, peer] : due) out.push_back(*peer);
  for (const PeerId &p : out) {
    Entry &e = peers_.at(p);
    e.in_flight = true;
    e.last_check_ms = now_ms;
  }
  return out;
}

void RecheckSchedule::answered(const PeerId &peer) {
  peers_.erase(peer);
  dropped_.erase(peer);
}

bool RecheckSchedule::failed(const PeerId &peer, int64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return false;
  Entry &e = it->second;
  e.in_flight = false;
  if (++e.failures >= o_.max_failures) {
    peers_.erase(it);
    if (dropped_.size() >= o_.max_peers) {  // bounded: forget the oldest drop
      auto oldest = dropped_.begin();
      for (auto d = dropped_.begin(); d != dropped_.end(); ++d)
        if (d->second < oldest->second) oldest = d;
      dropped_.erase(oldest);
    }
    dropped_[peer] = now_ms;
    return false;
  }
  e.due_ms = now_ms + e.wait_ms;
  e.wait_ms = std::min(e.wait_ms * 2, o_.max_interval_ms);
  return true;
}

std::optional<int64_t> RecheckSchedule::next_due_ms() const {
  std::optional<int64_t> next;
  for (const auto &[peer, e] : peers_)
    if (!e.in_flight && (!next || e.due_ms < *next)) next = e.due_ms;
  return next;
}

}  // namespace chorus::dht

// The router's heartbeat (docs/protocols.md, PubSub): mesh maintenance, fanout expiry, gossip
// emission (IHAVE), broken-promise accounting and the cache shifts. Split from router.cpp to keep each
// file short; the state both share is in router_internal.hpp.
#include <algorithm>
#include <iterator>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "router_internal.hpp"

namespace chorus::gossip {

namespace {

// Stray messages (topics we did not join) a peer may send per heartbeat before each further one costs
// it a behaviour penalty: a few cross in flight with our UNSUBSCRIBE, floods do not.
constexpr int kStrayAllowance = 16;

}  // namespace

void Router::heartbeat() {
  uint64_t now = io_.now_ms();
  ++s_->ticks;
  drain_queue();  // what the throttle left over
  s_->score.refresh(now);

  std::unordered_map<PeerId, double> scores;
  for (auto &[id, p] : s_->peers) {
    scores[id] = s_->score.score(id, now);
    if (p.stray_messages > kStrayAllowance) s_->score.add_penalty(id, 1);
    p.stray_messages = 0;
    p.ihaves_received = 0;
    p.ids_asked = 0;
  }

  // Broken IWANT promises.
  for (auto it = s_->promises.begin(); it != s_->promises.end();) {
    for (auto pit = it->second.begin(); pit != it->second.end();) {
      if (pit->second <= now) {
        s_->score.add_penalty(pit->first, 1);
        io_.count(RouterEvent::kIwantBroken, "other");
        pit = it->second.erase(pit);
      } else {
        ++pit;
      }
    }
    it = it->second.empty() ? s_->promises.erase(it) : std::next(it);
  }

  // Expired backoffs, kept a little past their end for the grafting slack below.
  for (auto it = s_->backoff.begin(); it != s_->backoff.end();)
    it = it->second + 2 * params_.heartbeat_ms < now ? s_->backoff.erase(it) : std::next(it);

  auto score_of = [&](const PeerId &id) {
    auto it = scores.find(id);
    return it == scores.end() ? 0.0 : it->second;
  };
  // One heartbeat of slack past the backoff: the peer's clock and ours see the PRUNE at different times,
  // and a GRAFT that arrives early is penalised.
  auto backed_off = [&](const std::string &topic, const PeerId &id) {
    auto it = s_->backoff.find({topic, id});
    return it != s_->backoff.end() && it->second + params_.heartbeat_ms > now;
  };
  auto graft_candidates = [&](const std::string &topic, const std::set<PeerId> &mesh, auto &&accept) {
    std::vector<PeerId> out;
    auto tp = s_->topic_peers.find(topic);
    if (tp == s_->topic_peers.end()) return out;
    for (const auto &id : tp->second) {
      if (mesh.count(id) != 0) continue;
      auto pit = s_->peers.find(id);
      if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) continue;
      if (backed_off(topic, id) || score_of(id) < 0) continue;
      if (!accept(id, pit->second)) continue;
      out.push_back(id);
    }
    shuffle(out, s_->rng);
    return out;
  };

  for (const auto &topic : s_->joined) {
    if (s_->local_only.count(topic) != 0) continue;
    std::set<PeerId> &mesh = s_->mesh[topic];
    auto do_graft = [&](const PeerId &id) {
      mesh.insert(id);
      s_->score.graft(id, topic, now);
      s_->outgoing[id].graft.push_back({topic});
    };
    auto do_prune = [&](const PeerId &id, bool px) {
      mesh.erase(id);
      s_->score.prune(id, topic, now);
      s_->backoff[{topic, id}] = now + params_.prune_backoff_ms;
      s_->outgoing[id].prune.push_back(make_prune(topic, id, false, px));
    };

    // Peers with a negative score leave the mesh (no PX for them).
    for (auto it = mesh.begin(); it != mesh.end();) {
      PeerId id = *it++;
      if (score_of(id) < 0) do_prune(id, false);
    }

    if (static_cast<int>(mesh.size()) < params_.d_lo) {
      auto candidates = graft_candidates(topic, mesh, [](const PeerId &, const State::Peer &) { return true; });
      for (const auto &id : candidates) {
        if (static_cast<int>(mesh.size()) >= params_.d) break;
        do_graft(id);
      }
    }

    if (static_cast<int>(mesh.size()) > params_.d_hi) {
      std::vector<PeerId> members(mesh.begin(), mesh.end());
      shuffle(members, s_->rng);
      std::stable_sort(members.begin(), members.end(),
                       [&](const PeerId &a, const PeerId &b) { return score_of(a) > score_of(b); });
      // Keep the d_score best, then a random rest up to d, with at least d_out outbound among them.
      std::vector<PeerId> keep(members.begin(), members.begin() + std::min<size_t>(params_.d_score, members.size()));
      std::vector<PeerId> rest(members.begin() + keep.size(), members.end());
      shuffle(rest, s_->rng);
      int outbound = 0;
      for (const auto &id : keep) outbound += s_->peers[id].outbound ? 1 : 0;
      std::vector<PeerId> chosen = keep;
      std::set<PeerId> taken(keep.begin(), keep.end());
      for (const auto &id : rest) {  // the outbound quota first
        if (outbound >= params_.d_out || static_cast<int>(chosen.size()) >= params_.d) break;
        if (!s_->peers[id].outbound) continue;
        chosen.push_back(id);
        taken.insert(id);
        ++outbound;
      }
      for (const auto &id : rest) {
        if (static_cast<int>(chosen.size()) >= params_.d) break;
        if (taken.insert(id).second) chosen.push_back(id);
      }
      std::set<PeerId> chosen_set(chosen.begin(), chosen.end());
      for (const auto &id : members)
        if (chosen_set.count(id) == 0) do_prune(id, true);
    }

    if (static_cast<int>(mesh.size()) >= params_.d_lo) {
      int outbound = 0;
      for (const auto &id : mesh) outbound += s_->peers[id].outbound ? 1 : 0;
      if (outbound < params_.d_out) {
        auto candidates =
            graft_candidates(topic, mesh, [](const PeerId &, const State::Peer &p) { return p.outbound; });
        for (const auto &id : candidates) {
          if (outbound >= params_.d_out) break;
          do_graft(id);
          ++outbound;
        }
      }
    }

    if (params_.opportunistic_graft_ticks > 0 && s_->ticks % params_.opportunistic_graft_ticks == 0 &&
        mesh.size() > 1) {
      std::vector<double> ms;
      for (const auto &id : mesh) ms.push_back(score_of(id));
      std::sort(ms.begin(), ms.end());
      double median = ms[ms.size() / 2];
      if (median < s_->thresholds.opportunistic_graft) {
        auto candidates = graft_candidates(
            topic, mesh, [&](const PeerId &id, const State::Peer &) { return score_of(id) > median; });
        int n = 0;
        for (const auto &id : candidates) {
          if (n++ >= params_.opportunistic_graft_peers) break;
          do_graft(id);
        }
      }
    }
    emit_gossip(topic, mesh, scores);
  }

  // Fanout: expire, drop departed or low-scored peers, refill.
  for (auto it = s_->fanout.begin(); it != s_->fanout.end();) {
    const std::string &topic = it->first;
    auto lp = s_->fanout_last_publish.find(topic);
    if (lp == s_->fanout_last_publish.end() || lp->second + params_.fanout_ttl_ms < now) {
      s_->fanout_last_publish.erase(topic);
      it = s_->fanout.erase(it);
      continue;
    }
    std::set<PeerId> &fan = it->second;
    auto tp = s_->topic_peers.find(topic);
    for (auto f = fan.begin(); f != fan.end();) {
      bool keep = tp != s_->topic_peers.end() && tp->second.count(*f) != 0 && score_of(*f) >= s_->thresholds.publish;
      f = keep ? std::next(f) : fan.erase(f);
    }
    if (static_cast<int>(fan.size()) < params_.d && tp != s_->topic_peers.end()) {
      std::vector<PeerId> candidates;
      for (const auto &id : tp->second) {
        auto pit = s_->peers.find(id);
        if (fan.count(id) != 0 || pit == s_->peers.end() || !pit->second.attached ||
            !is_meshsub(pit->second.protocol) || score_of(id) < s_->thresholds.publish)
          continue;
        candidates.push_back(id);
      }
      shuffle(candidates, s_->rng);
      for (const auto &id : candidates) {
        if (static_cast<int>(fan.size()) >= params_.d) break;
        fan.insert(id);
      }
    }
    emit_gossip(topic, fan, scores);
    ++it;
  }

  // Flush the control gathered above: one RPC per peer.
  auto outgoing = std::move(s_->outgoing);
  s_->outgoing.clear();
  for (auto &[id, control] : outgoing) {
    auto pit = s_->peers.find(id);
    if (pit == s_->peers.end() || !pit->second.attached || control.empty()) continue;
    Rpc rpc;
    rpc.control = std::move(control);
    io_.send(id, std::move(rpc));
  }

  // Message cache: a new window; the oldest falls out.
  s_->mcache_windows.emplace_front();
  while (s_->mcache_windows.size() > static_cast<size_t>(std::max(params_.mcache_len, 1))) {
    for (const auto &id : s_->mcache_windows.back()) s_->mcache.erase(id);
    s_->mcache_windows.pop_back();
  }
  // Seen cache expiry.
  while (!s_->seen_order.empty() && s_->seen_order.front().first <= now) {
    const MessageKey key = s_->seen_order.front().second;
    s_->seen_order.pop_front();
    auto it = s_->seen.find(key);
    if (it != s_->seen.end() && it->second <= now) s_->seen.erase(it);
  }
}

void Router::emit_gossip(const std::string &topic, const std::set<PeerId> &exclude,
                         const std::unordered_map<PeerId, double> &scores) {
  // Peers first: with nobody to gossip to (a small mesh holds every topic peer) the message cache,
  // which after a burst holds tens of thousands of ids, is not walked at all.
  auto tp = s_->topic_peers.find(topic);
  if (tp == s_->topic_peers.end()) return;
  std::vector<PeerId> eligible;
  for (const auto &id : tp->second) {
    if (exclude.count(id) != 0) continue;
    auto pit = s_->peers.find(id);
    if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) continue;
    auto sit = scores.find(id);
    if (sit != scores.end() && sit->second < s_->thresholds.gossip) continue;
    eligible.push_back(id);
  }
  if (eligible.empty()) return;
  std::vector<Bytes> ids;
  int windows = std::min<int>(params_.mcache_gossip, static_cast<int>(s_->mcache_windows.size()));
  for (int w = 0; w < windows; ++w)
    for (const auto &id : s_->mcache_windows[w]) {
      auto it = s_->mcache.find(id);
      if (it != s_->mcache.end() && it->second.message.topic == topic) ids.push_back(id);
    }
  if (ids.empty()) return;
  size_t target = std::max<size_t>(static_cast<size_t>(std::max(params_.d_lazy, 0)),
                                   static_cast<size_t>(params_.gossip_factor * static_cast<double>(eligible.size())));
  shuffle(eligible, s_->rng);
  if (eligible.size() > target) eligible.resize(target);
  for (const auto &id : eligible) {
    std::vector<Bytes> send = ids;
    if (send.size() > static_cast<size_t>(params_.max_ihave_length)) {
      shuffle(send, s_->rng);
      send.resize(params_.max_ihave_length);
    }
    s_->outgoing[id].ihave.push_back({topic, std::move(send)});
  }
}

}  // namespace chorus::gossip

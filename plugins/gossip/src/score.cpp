// GossipSub v1.1 peer scoring; the score function and its counters are described in score.hpp and
// docs/protocols.md. Where the v1.1 spec leaves room, this follows go-libp2p-pubsub (the reference
// implementation), except that times are exact at the call instead of sampled at decay ticks:
//   - only peers with a non-positive score are retained after a disconnect (a positive score is
//     worth nothing to a peer that wants to reset, and dropping it bounds what honest churn costs);
//     when retained, P2 is reset and a mesh delivery deficit turns into P3b, as at a PRUNE;
//   - P3 applies only while the peer is in the mesh; leaving the mesh moves the deficit to P3b;
//   - the topic cap bounds only the positive side of the topic sum.
#include "score.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace chorus::gossip {

namespace {

bool in_open_unit_interval(double v) { return v > 0 && v < 1; }

bool fail(std::string *why, std::string text) {
  if (why) *why = std::move(text);
  return false;
}

bool validate_topic(const std::string &name, const TopicScoreParams &t, std::string *why) {
  const std::string at = name.empty() ? "default_topic" : "topic " + name;
  if (t.topic_weight < 0) return fail(why, at + ": topic_weight must be >= 0");
  if (t.time_in_mesh_weight < 0) return fail(why, at + ": time_in_mesh_weight must be >= 0");
  if (t.time_in_mesh_weight != 0 && (t.time_in_mesh_quantum_ms == 0 || t.time_in_mesh_cap <= 0))
    return fail(why, at + ": time_in_mesh needs quantum_ms > 0 and cap > 0");
  if (t.first_message_deliveries_weight < 0) return fail(why, at + ": first_message_deliveries_weight must be >= 0");
  if (t.first_message_deliveries_weight != 0 &&
      (!in_open_unit_interval(t.first_message_deliveries_decay) || t.first_message_deliveries_cap <= 0))
    return fail(why, at + ": first_message_deliveries needs decay in (0, 1) and cap > 0");
  if (t.mesh_message_deliveries_weight > 0) return fail(why, at + ": mesh_message_deliveries_weight must be <= 0");
  if (t.mesh_message_deliveries_weight != 0 &&
      (!in_open_unit_interval(t.mesh_message_deliveries_decay) || t.mesh_message_deliveries_cap <= 0 ||
       t.mesh_message_deliveries_threshold <= 0 ||
       t.mesh_message_deliveries_threshold > t.mesh_message_deliveries_cap))
    return fail(why, at + ": mesh_message_deliveries needs decay in (0, 1) and 0 < threshold <= cap");
  if (t.mesh_failure_penalty_weight > 0) return fail(why, at + ": mesh_failure_penalty_weight must be <= 0");
  if (t.mesh_failure_penalty_weight != 0 && !in_open_unit_interval(t.mesh_failure_penalty_decay))
    return fail(why, at + ": mesh_failure_penalty_decay must be in (0, 1)");
  if (t.invalid_message_deliveries_weight > 0) return fail(why, at + ": invalid_message_deliveries_weight must be <= 0");
  if (t.invalid_message_deliveries_weight != 0 && !in_open_unit_interval(t.invalid_message_deliveries_decay))
    return fail(why, at + ": invalid_message_deliveries_decay must be in (0, 1)");
  return true;
}

// Parses "addr" or "addr/bits" (IPv4 or IPv6) into network bytes and a prefix length.
bool parse_prefix(const std::string &text, uint8_t out[16], size_t &len, int &bits) {
  std::string addr = text;
  bits = -1;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    const std::string b = text.substr(slash + 1);
    if (b.empty() || b.size() > 3 || !std::all_of(b.begin(), b.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    bits = std::stoi(b);
  }
  if (inet_pton(AF_INET, addr.c_str(), out) == 1) {
    len = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), out) == 1) {
    len = 16;
  } else {
    return false;
  }
  if (bits < 0) bits = static_cast<int>(len * 8);
  return bits <= static_cast<int>(len * 8);
}

double decayed(double value, double factor, double to_zero) {
  value *= factor;
  return value < to_zero ? 0 : value;
}

}  // namespace

bool validate_score_params(const PeerScoreParams &p, std::string *why) {
  if (p.topic_score_cap < 0) return fail(why, "topic_score_cap must be >= 0");
  if (p.app_specific_weight < 0) return fail(why, "app_specific_weight must be >= 0");
  if (p.ip_colocation_factor_weight > 0) return fail(why, "ip_colocation_factor_weight must be <= 0");
  if (p.ip_colocation_factor_weight != 0 && p.ip_colocation_factor_threshold < 1)
    return fail(why, "ip_colocation_factor_threshold must be >= 1");
  for (const std::string &entry : p.ip_colocation_whitelist) {
    uint8_t net[16];
    size_t len = 0;
    int bits = 0;
    if (!parse_prefix(entry, net, len, bits)) return fail(why, "ip_colocation_whitelist: not an address or prefix: " + entry);
  }
  if (p.behaviour_penalty_weight > 0) return fail(why, "behaviour_penalty_weight must be <= 0");
  if (p.behaviour_penalty_weight != 0 &&
      (!in_open_unit_interval(p.behaviour_penalty_decay) || p.behaviour_penalty_threshold < 0))
    return fail(why, "behaviour_penalty needs decay in (0, 1) and threshold >= 0");
  if (p.decay_interval_ms == 0) return fail(why, "decay_interval_ms must be > 0");
  if (!in_open_unit_interval(p.decay_to_zero)) return fail(why, "decay_to_zero must be in (0, 1)");
  if (p.max_scored_topics_per_peer == 0) return fail(why, "max_scored_topics_per_peer must be > 0");
  if (!validate_topic("", p.default_topic, why)) return false;
  for (const auto &[name, t] : p.topics)
    if (!validate_topic(name, t, why)) return false;
  return true;
}

bool validate_score_thresholds(const PeerScoreThresholds &t, std::string *why) {
  if (t.gossip > 0) return fail(why, "gossip threshold must be <= 0");
  if (t.publish > t.gossip) return fail(why, "publish threshold must be <= the gossip threshold");
  if (t.graylist > t.publish) return fail(why, "graylist threshold must be <= the publish threshold");
  if (t.accept_px < 0) return fail(why, "accept_px threshold must be >= 0");
  if (t.opportunistic_graft < 0) return fail(why, "opportunistic_graft threshold must be >= 0");
  return true;
}

PeerScore::PeerScore(PeerScoreParams params) : params_(std::move(params)) {}

const TopicScoreParams *PeerScore::topic_params(const std::string &topic) const {
  if (auto it = params_.topics.find(topic); it != params_.topics.end()) return &it->second;
  return params_.score_all_topics ? &params_.default_topic : nullptr;
}

PeerScore::TopicStats *PeerScore::topic_stats(PeerStats &peer, const std::string &topic) {
  if (!topic_params(topic)) return nullptr;
  if (auto it = peer.topics.find(topic); it != peer.topics.end()) return &it->second;
  // The overflow bucket is keyed "": pubsub topics are never empty (js drops empty topic fields).
  if (peer.topics.size() >= params_.max_scored_topics_per_peer && !params_.topics.count(topic))
    return &peer.topics[std::string()];
  return &peer.topics[topic];
}

void PeerScore::add_peer(const PeerId &peer, const std::string &ip, uint64_t now_ms) {
  if (!clock_started_) {
    clock_started_ = true;
    last_decay_ms_ = now_ms;
  }
  auto [it, fresh] = peers_.try_emplace(peer);
  if (fresh) peers_by_tag_.emplace(peer_tag(peer), peer);
  PeerStats &ps = it->second;
  if (!fresh && ps.connected && ps.ip == ip) return;
  if (!fresh && ps.connected) untrack_ip(peer, ps.ip);
  // A retained peer comes back with everything it had (a reconnect resets nothing).
  ps.connected = true;
  ps.expire_ms = 0;
  ps.ip = ip;
  track_ip(peer, ip);
}

void PeerScore::remove_peer(const PeerId &peer, uint64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.connected) return;
  PeerStats &ps = it->second;
  const bool positive = score(peer, now_ms) > 0;
  untrack_ip(peer, ps.ip);
  if (positive) {
    peers_by_tag_.erase(peer_tag(peer));
    peers_.erase(it);
    return;
  }
  for (auto &[topic, ts] : ps.topics) {
    ts.first_message_deliveries = 0;
    const TopicScoreParams *tp = topic_params(topic);
    if (tp && ts.in_mesh) apply_mesh_failure(ts, *tp, now_ms);
    ts.in_mesh = false;
  }
  ps.connected = false;
  ps.expire_ms = now_ms + params_.retain_score_ms;
}

void PeerScore::graft(const PeerId &peer, const std::string &topic, uint64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  TopicStats *ts = topic_stats(it->second, topic);
  if (!ts || ts->in_mesh) return;
  ts->in_mesh = true;
  ts->graft_ms = now_ms;
}

void PeerScore::prune(const PeerId &peer, const std::string &topic, uint64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  auto ts = it->second.topics.find(topic);
  if (ts == it->second.topics.end() || !ts->second.in_mesh) return;
  if (const TopicScoreParams *tp = topic_params(topic)) apply_mesh_failure(ts->second, *tp, now_ms);
  ts->second.in_mesh = false;
}

void PeerScore::apply_mesh_failure(TopicStats &ts, const TopicScoreParams &tp, uint64_t now_ms) const {
  const uint64_t mesh_time = now_ms > ts.graft_ms ? now_ms - ts.graft_ms : 0;
  if (mesh_time > tp.mesh_message_deliveries_activation_ms &&
      ts.mesh_message_deliveries < tp.mesh_message_deliveries_threshold) {
    const double deficit = tp.mesh_message_deliveries_threshold - ts.mesh_message_deliveries;
    ts.mesh_failure_penalty += deficit * deficit;
  }
}

PeerScore::DeliveryRecord &PeerScore::delivery_record(const Bytes &message_id, uint64_t now_ms) {
  const MessageKey key = message_key(message_id);
  auto [it, fresh] = deliveries_.try_emplace(key);
  if (fresh) delivery_expiry_.emplace_back(now_ms + params_.delivery_record_ttl_ms, key);
  return it->second;
}

void PeerScore::mark_first_delivery(const PeerId &peer, const std::string &topic) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  TopicStats *ts = topic_stats(it->second, topic);
  if (!ts) return;
  const TopicScoreParams &tp = *topic_params(topic);
  ts->first_message_deliveries = std::min(ts->first_message_deliveries + 1, tp.first_message_deliveries_cap);
  if (ts->in_mesh)
    ts->mesh_message_deliveries = std::min(ts->mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap);
}

void PeerScore::mark_near_first_delivery(const PeerId &peer, const std::string &topic, uint64_t validated_ms,
                                         uint64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  TopicStats *ts = topic_stats(it->second, topic);
  if (!ts || !ts->in_mesh) return;
  const TopicScoreParams &tp = *topic_params(topic);
  if (now_ms > validated_ms + tp.mesh_message_deliveries_window_ms) return;
  ts->mesh_message_deliveries = std::min(ts->mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap);
}

void PeerScore::mark_invalid_delivery(const PeerId &peer, const std::string &topic) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  if (TopicStats *ts = topic_stats(it->second, topic)) ts->invalid_message_deliveries += 1;
}

void PeerScore::validate_message(const PeerId &from, const Bytes &message_id, const std::string &topic,
                                 uint64_t now_ms) {
  if (!topic_params(topic)) return;
  delivery_record(message_id, now_ms).add(peer_tag(from));
}

void PeerScore::deliver_message(const PeerId &from, const Bytes &message_id, const std::string &topic,
                                uint64_t now_ms) {
  if (!topic_params(topic)) return;
  DeliveryRecord &rec = delivery_record(message_id, now_ms);
  if (rec.status != DeliveryStatus::kPending) {  // validated before: this copy is a duplicate
    duplicate_message(from, message_id, topic, now_ms);
    return;
  }
  mark_first_delivery(from, topic);
  rec.status = DeliveryStatus::kValid;
  rec.validated_ms = now_ms;
  // Copies that arrived while the message was being validated were near-first deliveries.
  const uint64_t from_tag = peer_tag(from);
  for (uint64_t t : rec.peers)
    if (const PeerId *p = t != from_tag ? peer_by_tag(t) : nullptr) mark_near_first_delivery(*p, topic, now_ms, now_ms);
  rec.add(from_tag);
}

void PeerScore::duplicate_message(const PeerId &from, const Bytes &message_id, const std::string &topic,
                                  uint64_t now_ms) {
  if (!topic_params(topic)) return;
  DeliveryRecord &rec = delivery_record(message_id, now_ms);
  if (!rec.add(peer_tag(from))) return;  // counted once
  switch (rec.status) {
    case DeliveryStatus::kPending:  // credited or penalised when validation ends
      break;
    case DeliveryStatus::kValid:
      mark_near_first_delivery(from, topic, rec.validated_ms, now_ms);
      break;
    case DeliveryStatus::kInvalid:  // forwarding a message known to be invalid
      mark_invalid_delivery(from, topic);
      break;
    case DeliveryStatus::kIgnored:
      break;
  }
}

void PeerScore::reject_message(const PeerId &from, const Bytes &message_id, const std::string &topic,
                               RejectReason reason, uint64_t now_ms) {
  if (!topic_params(topic)) return;
  switch (reason) {
    case RejectReason::kMissingSignature:
    case RejectReason::kInvalidSignature:
    case RejectReason::kSelfOrigin:
      // Penalised, but no record: the id of a message with a bad signature can name someone else's
      // message, and marking it invalid would punish the honest peers forwarding the real one.
      mark_invalid_delivery(from, topic);
      return;
    case RejectReason::kQueueFull:
    case RejectReason::kBlacklisted:
      // Our own limits or a source we refuse: no fault of this copy, and another copy may pass.
      return;
    case RejectReason::kValidatorIgnore: {
      DeliveryRecord &rec = delivery_record(message_id, now_ms);
      if (rec.status == DeliveryStatus::kPending) rec.status = DeliveryStatus::kIgnored;
      return;
    }
    case RejectReason::kValidatorReject: {
      DeliveryRecord &rec = delivery_record(message_id, now_ms);
      if (rec.status != DeliveryStatus::kPending) return;
      rec.status = DeliveryStatus::kInvalid;
      mark_invalid_delivery(from, topic);
      // Everyone who sent us a copy while it was being validated forwarded the same invalid message.
      const uint64_t from_tag = peer_tag(from);
      for (uint64_t t : rec.peers)
        if (const PeerId *p = t != from_tag ? peer_by_tag(t) : nullptr) mark_invalid_delivery(*p, topic);
      rec.add(from_tag);
      return;
    }
  }
}

const PeerId *PeerScore::peer_by_tag(uint64_t tag) const {
  auto it = peers_by_tag_.find(tag);
  return it == peers_by_tag_.end() ? nullptr : &it->second;
}

void PeerScore::add_penalty(const PeerId &peer, double count) {
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.behaviour_penalty += count;
}

void PeerScore::set_app_score(const PeerId &peer, double value) {
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.app_score = value;
}

void PeerScore::refresh(uint64_t now_ms) {
  if (!clock_started_) {
    clock_started_ = true;
    last_decay_ms_ = now_ms;
  }
  while (!delivery_expiry_.empty() && delivery_expiry_.front().first <= now_ms) {
    deliveries_.erase(delivery_expiry_.front().second);
    delivery_expiry_.pop_front();
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (!it->second.connected && now_ms >= it->second.expire_ms) {
      peers_by_tag_.erase(peer_tag(it->first));
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }

  if (now_ms < last_decay_ms_ + params_.decay_interval_ms) return;
  const uint64_t interval = std::max<uint64_t>(params_.decay_interval_ms, 1);
  const uint64_t steps = (now_ms - last_decay_ms_) / interval;
  last_decay_ms_ += steps * interval;
  // A late heartbeat applies every decay it missed at once.
  const double n = static_cast<double>(steps);
  const double to_zero = params_.decay_to_zero;
  for (auto &[peer, ps] : peers_) {
    for (auto &[topic, ts] : ps.topics) {
      const TopicScoreParams *tp = topic_params(topic);
      if (!tp) continue;
      ts.first_message_deliveries =
          decayed(ts.first_message_deliveries, std::pow(tp->first_message_deliveries_decay, n), to_zero);
      ts.mesh_message_deliveries =
          decayed(ts.mesh_message_deliveries, std::pow(tp->mesh_message_deliveries_decay, n), to_zero);
      ts.mesh_failure_penalty =
          decayed(ts.mesh_failure_penalty, std::pow(tp->mesh_failure_penalty_decay, n), to_zero);
      ts.invalid_message_deliveries =
          decayed(ts.invalid_message_deliveries, std::pow(tp->invalid_message_deliveries_decay, n), to_zero);
    }
    ps.behaviour_penalty = decayed(ps.behaviour_penalty, std::pow(params_.behaviour_penalty_decay, n), to_zero);
  }
}

bool PeerScore::ip_whitelisted(const std::string &ip) const {
  if (params_.ip_colocation_whitelist.empty()) return false;
  if (params_.ip_colocation_whitelist.count(ip)) return true;
  uint8_t addr[16];
  size_t addr_len = 0;
  int addr_bits = 0;
  if (!parse_prefix(ip, addr, addr_len, addr_bits)) return false;
  for (const std::string &entry : params_.ip_colocation_whitelist) {
    uint8_t net[16];
    size_t len = 0;
    int bits = 0;
    if (!parse_prefix(entry, net, len, bits) || len != addr_len) continue;
    const size_t whole = static_cast<size_t>(bits) / 8;
    const int rest = bits % 8;
    if (std::memcmp(addr, net, whole) != 0) continue;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    if ((addr[whole] & mask) == (net[whole] & mask)) return true;
  }
  return false;
}

void PeerScore::track_ip(const PeerId &peer, const std::string &ip) {
  if (!ip.empty()) peers_by_ip_[ip].insert(peer);
}

void PeerScore::untrack_ip(const PeerId &peer, const std::string &ip) {
  auto it = peers_by_ip_.find(ip);
  if (it == peers_by_ip_.end()) return;
  it->second.erase(peer);
  if (it->second.empty()) peers_by_ip_.erase(it);
}

double PeerScore::colocation_factor(const PeerStats &ps) const {
  if (!ps.connected || ps.ip.empty()) return 0;
  auto it = peers_by_ip_.find(ps.ip);
  if (it == peers_by_ip_.end()) return 0;
  const double peers = static_cast<double>(it->second.size());
  if (peers <= params_.ip_colocation_factor_threshold || ip_whitelisted(ps.ip)) return 0;
  const double surplus = peers - params_.ip_colocation_factor_threshold;
  return surplus * surplus;
}

double PeerScore::score(const PeerId &peer, uint64_t now_ms) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return 0;
  const PeerStats &ps = it->second;

  double topics = 0;
  for (const auto &[topic, ts] : ps.topics) {
    const TopicScoreParams *tp = topic_params(topic);
    if (!tp) continue;
    const uint64_t mesh_time = ts.in_mesh && now_ms > ts.graft_ms ? now_ms - ts.graft_ms : 0;
    double t = 0;
    if (ts.in_mesh && tp->time_in_mesh_quantum_ms > 0) {  // P1: whole quanta
      const double p1 = static_cast<double>(mesh_time / tp->time_in_mesh_quantum_ms);
      t += tp->time_in_mesh_weight * std::min(p1, tp->time_in_mesh_cap);
    }
    t += tp->first_message_deliveries_weight * ts.first_message_deliveries;  // P2
    if (ts.in_mesh && mesh_time > tp->mesh_message_deliveries_activation_ms &&
        ts.mesh_message_deliveries < tp->mesh_message_deliveries_threshold) {  // P3
      const double deficit = tp->mesh_message_deliveries_threshold - ts.mesh_message_deliveries;
      t += tp->mesh_message_deliveries_weight * deficit * deficit;
    }
    t += tp->mesh_failure_penalty_weight * ts.mesh_failure_penalty;  // P3b
    t += tp->invalid_message_deliveries_weight * ts.invalid_message_deliveries * ts.invalid_message_deliveries;  // P4
    topics += tp->topic_weight * t;
  }
  if (params_.topic_score_cap > 0 && topics > params_.topic_score_cap) topics = params_.topic_score_cap;

  double s = topics;
  s += params_.app_specific_weight * ps.app_score;                      // P5
  s += params_.ip_colocation_factor_weight * colocation_factor(ps);    // P6
  if (ps.behaviour_penalty > params_.behaviour_penalty_threshold) {    // P7
    const double excess = ps.behaviour_penalty - params_.behaviour_penalty_threshold;
    s += params_.behaviour_penalty_weight * excess * excess;
  }
  return s;
}

}  // namespace chorus::gossip

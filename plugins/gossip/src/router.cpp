// The GossipSub v1.1 router (docs/protocols.md, PubSub). See router.hpp for the contract.
//
// State per topic: the peers subscribed to it, our mesh (joined topics) or fanout (topics we publish to
// without joining), and backoffs. State per message: the seen cache (ids for seen_ttl_ms) and the
// message cache (full messages for mcache_len heartbeats, gossiped for the last mcache_gossip).
//
// Received messages go through: size -> structural policy check -> seen check -> self-origin -> validate
// queue -> signature -> application validators -> deliver + forward. The seen check comes before the
// signature (as in go-libp2p-pubsub) so a duplicate costs no verification; an id is only marked seen
// once a copy passed validation, so a forged copy cannot shadow the real message.
//
// The heartbeat and gossip emission are in router_heartbeat.cpp; the state both files share is in
// router_internal.hpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "router_internal.hpp"

namespace chorus::gossip {

const char *protocol_id(Protocol p) {
  switch (p) {
    case Protocol::kFloodsub:
      return "/floodsub/1.0.0";
    case Protocol::kMeshsub10:
      return "/meshsub/1.0.0";
    case Protocol::kMeshsub11:
      return "/meshsub/1.1.0";
  }
  return "";
}

const char *reject_reason_name(RejectReason r) {
  switch (r) {
    case RejectReason::kMissingSignature:
      return "missing_signature";
    case RejectReason::kInvalidSignature:
      return "invalid_signature";
    case RejectReason::kValidatorReject:
      return "validator";
    case RejectReason::kSelfOrigin:
      return "self_origin";
    case RejectReason::kValidatorIgnore:
      return "validator";
    case RejectReason::kQueueFull:
      return "queue_full";
    case RejectReason::kBlacklisted:
      return "blacklisted";
  }
  return "";
}

namespace {

// An upper estimate of a message's encoded size (fields plus their tags and lengths).
size_t encoded_size_estimate(const Message &m) {
  auto len = [](const std::optional<Bytes> &b) { return b ? b->size() + 6 : 0; };
  return len(m.from) + len(m.data) + len(m.seqno) + len(m.signature) + len(m.key) + m.topic.size() + 12;
}

}  // namespace

Router::Router(RouterParams params, PeerScoreParams score_params, PeerScoreThresholds thresholds,
               SignaturePolicy policy, PeerId local, Bytes local_public_key, RouterIo &io)
    : params_(std::move(params)),
      io_(io),
      s_(std::make_unique<State>(std::move(score_params), thresholds, policy, std::move(local),
                                 std::move(local_public_key))) {
  // The seqno counter starts at the wall clock in nanoseconds (as go-libp2p-pubsub does), so a restart
  // within the seen TTL of our peers never reuses an id they still hold.
  s_->seqno = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  s_->mcache_windows.emplace_back();
}

Router::~Router() = default;

bool Router::joined(const std::string &topic) const { return s_->joined.count(topic) != 0; }

bool Router::announced(const std::string &topic) const {
  return s_->joined.count(topic) != 0 && s_->local_only.count(topic) == 0;
}

double Router::score(const PeerId &peer) const { return s_->score.score(peer, io_.now_ms()); }

Bytes Router::message_id(const Message &m) const {
  return chorus::gossip::message_id(m, s_->policy, params_.message_id_fn);
}

void Router::add_peer(const PeerId &peer, Protocol protocol, bool outbound, const std::string &ip) {
  State::Peer &p = s_->peers[peer];
  s_->score.add_peer(peer, ip, io_.now_ms());  // also updates the address of a replaced stream
  p.protocol = protocol;
  p.outbound = outbound;
  p.attached = true;
  p.ip = ip;
  if (!s_->joined.empty()) {
    Rpc rpc;
    for (const auto &t : s_->joined)
      if (s_->local_only.count(t) == 0) rpc.subscriptions.push_back({true, t});
    io_.send(peer, std::move(rpc));
  }
}

void Router::remove_peer(const PeerId &peer) {
  auto it = s_->peers.find(peer);
  if (it == s_->peers.end()) return;
  uint64_t now = io_.now_ms();
  for (const auto &t : it->second.topics) {
    auto tp = s_->topic_peers.find(t);
    if (tp != s_->topic_peers.end()) {
      tp->second.erase(peer);
      if (tp->second.empty()) s_->topic_peers.erase(tp);
    }
  }
  for (auto &[topic, members] : s_->mesh)
    if (members.erase(peer) != 0) s_->score.prune(peer, topic, now);
  for (auto &[topic, members] : s_->fanout) members.erase(peer);
  for (auto &[id, by_peer] : s_->promises) by_peer.erase(peer);
  s_->outgoing.erase(peer);
  s_->peers.erase(it);
  s_->score.remove_peer(peer, now);
}

// ---------------------------------------------------------------------------------------------
// Membership

void Router::join(const std::string &topic, bool announce) {
  if (!s_->joined.insert(topic).second) return;
  if (!announce) {  // local only: no SUBSCRIBE, no mesh; our messages on it go to no peer
    s_->local_only.insert(topic);
    return;
  }
  uint64_t now = io_.now_ms();
  for (const auto &[id, p] : s_->peers) {
    if (!p.attached) continue;
    Rpc rpc;
    rpc.subscriptions.push_back({true, topic});
    io_.send(id, std::move(rpc));
  }
  // The mesh starts from the fanout (peers we already publish to), then any other topic peer.
  std::set<PeerId> &mesh = s_->mesh[topic];
  auto eligible = [&](const PeerId &id) {
    auto pit = s_->peers.find(id);
    if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) return false;
    auto bit = s_->backoff.find({topic, id});
    if (bit != s_->backoff.end() && bit->second + params_.heartbeat_ms > now) return false;
    return s_->score.score(id, now) >= 0;
  };
  auto fit = s_->fanout.find(topic);
  if (fit != s_->fanout.end()) {
    for (const auto &id : fit->second)
      if (static_cast<int>(mesh.size()) < params_.d && eligible(id)) mesh.insert(id);
    s_->fanout.erase(fit);
    s_->fanout_last_publish.erase(topic);
  }
  auto tp = s_->topic_peers.find(topic);
  if (tp != s_->topic_peers.end() && static_cast<int>(mesh.size()) < params_.d) {
    std::vector<PeerId> candidates;
    for (const auto &id : tp->second)
      if (mesh.count(id) == 0 && eligible(id)) candidates.push_back(id);
    shuffle(candidates, s_->rng);
    for (const auto &id : candidates) {
      if (static_cast<int>(mesh.size()) >= params_.d) break;
      mesh.insert(id);
    }
  }
  for (const auto &id : mesh) {
    s_->score.graft(id, topic, now);
    Rpc rpc;
    rpc.control.emplace().graft.push_back({topic});
    io_.send(id, std::move(rpc));
  }
}

void Router::leave(const std::string &topic) {
  if (s_->joined.erase(topic) == 0) return;
  if (s_->local_only.erase(topic) != 0) return;
  uint64_t now = io_.now_ms();
  std::set<PeerId> mesh;
  auto mit = s_->mesh.find(topic);
  if (mit != s_->mesh.end()) {
    mesh = std::move(mit->second);
    s_->mesh.erase(mit);
  }
  for (const auto &[id, p] : s_->peers) {
    if (!p.attached) continue;
    Rpc rpc;
    rpc.subscriptions.push_back({false, topic});
    if (mesh.count(id) != 0) {
      ControlPrune prune = make_prune(topic, id, true, false);
      rpc.control.emplace().prune.push_back(std::move(prune));
    }
    io_.send(id, std::move(rpc));
  }
  for (const auto &id : mesh) {
    s_->score.prune(id, topic, now);
    s_->backoff[{topic, id}] = now + params_.unsubscribe_backoff_ms;
  }
}

ControlPrune Router::make_prune(const std::string &topic, const PeerId &to, bool unsubscribe, bool px) {
  ControlPrune prune;
  prune.topic = topic;
  auto target = s_->peers.find(to);
  if (target != s_->peers.end() && target->second.protocol == Protocol::kMeshsub10) return prune;  // no v1.1 fields
  uint64_t backoff_ms = unsubscribe ? params_.unsubscribe_backoff_ms : params_.prune_backoff_ms;
  prune.backoff_s = (backoff_ms + 999) / 1000;
  if (px && params_.do_px && params_.prune_peers > 0) {
    uint64_t now = io_.now_ms();
    std::vector<PeerId> candidates;
    auto tp = s_->topic_peers.find(topic);
    if (tp != s_->topic_peers.end())
      for (const auto &id : tp->second) {
        if (id == to) continue;
        auto pit = s_->peers.find(id);
        if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) continue;
        if (s_->score.score(id, now) < 0) continue;
        candidates.push_back(id);
      }
    shuffle(candidates, s_->rng);
    if (candidates.size() > static_cast<size_t>(params_.prune_peers)) candidates.resize(params_.prune_peers);
    for (const auto &id : candidates) prune.peers.push_back({id.bytes(), std::nullopt});
  }
  return prune;
}

// ---------------------------------------------------------------------------------------------
// Publishing and forwarding

std::optional<Bytes> Router::publish(const std::string &topic, Bytes data, std::string *why) {
  return publish_message(make_message(topic, std::move(data)), why);
}

Message Router::make_message(std::string topic, Bytes data) {
  Message m;
  m.topic = std::move(topic);
  m.data = std::move(data);
  if (s_->policy == SignaturePolicy::kStrictSign) {
    m.from = s_->local.bytes();
    m.seqno = seqno_bytes(s_->seqno.fetch_add(1, std::memory_order_relaxed) + 1);
    // Ed25519 ids carry the key; other key types need it in the message.
    if (!s_->local.ed25519_key() && !s_->local_public_key.empty()) m.key = s_->local_public_key;
  }
  return m;
}

std::optional<Bytes> Router::publish_message(Message m, std::string *why) {
  auto fail = [&](const char *reason) -> std::optional<Bytes> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (m.topic.empty()) return fail("empty topic");
  if (m.data && m.data->size() > params_.max_message_bytes) return fail("message too large");
  if (s_->policy == SignaturePolicy::kStrictSign && !m.signature &&
      !sign_message(m, [&](BytesView b, uint8_t sig[64]) { return io_.sign(b, sig); }))
    return fail("signing failed");
  const uint64_t now = io_.now_ms();
  const std::string &topic = m.topic;
  Bytes id = message_id(m);
  if (s_->was_seen(id)) return fail("duplicate message");
  ReceivedMessage rm{m, id, s_->local, true};
  Validation v = io_.validate(rm);
  if (v == Validation::kReject) return fail("validator rejected the message");
  if (v == Validation::kIgnore) return fail("validator ignored the message");
  mark_seen(id, now);
  cache_message(id, m);
  if (joined(topic)) io_.deliver(rm);
  if (s_->local_only.count(topic) != 0) {
    io_.count(RouterEvent::kPublished, topic);
    return id;
  }

  std::set<PeerId> targets;
  auto tp = s_->topic_peers.find(topic);
  if (tp != s_->topic_peers.end()) {
    for (const auto &pid : tp->second) {
      auto pit = s_->peers.find(pid);
      if (pit == s_->peers.end() || !pit->second.attached) continue;
      bool flood = params_.flood_publish || pit->second.protocol == Protocol::kFloodsub;
      if (flood && s_->score.score(pid, now) >= s_->thresholds.publish) targets.insert(pid);
    }
  }
  if (joined(topic)) {
    if (!params_.flood_publish) {
      auto mit = s_->mesh.find(topic);
      if (mit != s_->mesh.end()) targets.insert(mit->second.begin(), mit->second.end());
    }
  } else {
    // Not joined: the fanout (kept for fanout_ttl_ms) carries it, and later our gossip about it.
    std::set<PeerId> &fan = s_->fanout[topic];
    if (fan.empty() && tp != s_->topic_peers.end()) {
      std::vector<PeerId> candidates;
      for (const auto &pid : tp->second) {
        auto pit = s_->peers.find(pid);
        if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) continue;
        if (s_->score.score(pid, now) >= s_->thresholds.publish) candidates.push_back(pid);
      }
      shuffle(candidates, s_->rng);
      for (const auto &pid : candidates) {
        if (static_cast<int>(fan.size()) >= params_.d) break;
        fan.insert(pid);
      }
    }
    if (!params_.flood_publish) targets.insert(fan.begin(), fan.end());
  }
  if (!joined(topic)) s_->fanout_last_publish[topic] = now;
  for (const auto &pid : targets) {
    Rpc rpc;
    rpc.publish.push_back(m);
    io_.send(pid, std::move(rpc));
  }
  io_.count(RouterEvent::kPublished, topic);
  return id;
}

void Router::forward(const Message &m, const PeerId &source) {
  std::set<PeerId> targets;
  auto mit = s_->mesh.find(m.topic);
  if (mit != s_->mesh.end()) targets = mit->second;
  auto tp = s_->topic_peers.find(m.topic);
  if (tp != s_->topic_peers.end()) {
    uint64_t now = io_.now_ms();
    for (const auto &pid : tp->second) {
      auto pit = s_->peers.find(pid);
      if (pit != s_->peers.end() && pit->second.attached && pit->second.protocol == Protocol::kFloodsub &&
          s_->score.score(pid, now) >= s_->thresholds.publish)
        targets.insert(pid);
    }
  }
  targets.erase(source);
  if (m.from) {
    auto author = PeerId::from_bytes(*m.from, nullptr);
    if (author) targets.erase(*author);
  }
  for (const auto &pid : targets) {
    Rpc rpc;
    rpc.publish.push_back(m);
    io_.send(pid, std::move(rpc));
  }
}

void Router::mark_seen(const Bytes &id, uint64_t now) {
  uint64_t expiry = now + params_.seen_ttl_ms;
  const MessageKey key = message_key(id);
  if (s_->seen.insert_or_assign(key, expiry).second) s_->seen_order.emplace_back(expiry, key);
}

void Router::cache_message(const Bytes &id, const Message &m) {
  if (s_->mcache.count(id) != 0) return;
  s_->mcache.emplace(id, State::CacheEntry{m, {}});
  s_->mcache_windows.front().push_back(id);
}

// ---------------------------------------------------------------------------------------------
// Receiving

void Router::handle_rpc(const PeerId &from, Rpc rpc, bool signatures_verified) {
  uint64_t now = io_.now_ms();
  s_->peers.try_emplace(from);  // an inbound stream may deliver RPCs before add_peer
  if (s_->score.score(from, now) < s_->thresholds.graylist) {
    for (const auto &m : rpc.publish) io_.count(RouterEvent::kIgnored, metric_topic(m.topic), "graylisted");
    return;
  }
  handle_subscriptions(from, rpc.subscriptions);
  for (auto &m : rpc.publish) receive_message(from, std::move(m), signatures_verified);
  drain_queue();
  if (rpc.control) handle_control(from, *rpc.control);
}

std::string Router::metric_topic(const std::string &topic) const { return joined(topic) ? topic : "other"; }

void Router::handle_subscriptions(const PeerId &from, const std::vector<SubOpts> &subs) {
  if (subs.empty()) return;
  State::Peer &p = s_->peers[from];
  uint64_t now = io_.now_ms();
  bool over = false;
  for (const auto &sub : subs) {
    if (sub.topic.empty()) continue;
    if (sub.subscribe) {
      if (p.topics.count(sub.topic) != 0) continue;
      if (p.topics.size() >= params_.max_topics_per_peer) {
        over = true;
        continue;
      }
      p.topics.insert(sub.topic);
      s_->topic_peers[sub.topic].insert(from);
    } else {
      if (p.topics.erase(sub.topic) == 0) continue;
      auto tp = s_->topic_peers.find(sub.topic);
      if (tp != s_->topic_peers.end()) {
        tp->second.erase(from);
        if (tp->second.empty()) s_->topic_peers.erase(tp);
      }
      auto mit = s_->mesh.find(sub.topic);
      if (mit != s_->mesh.end() && mit->second.erase(from) != 0) s_->score.prune(from, sub.topic, now);
      auto fit = s_->fanout.find(sub.topic);
      if (fit != s_->fanout.end()) fit->second.erase(from);
    }
  }
  if (over) s_->score.add_penalty(from, 1);
}

void Router::receive_message(const PeerId &from, Message m, bool signature_verified) {
  uint64_t now = io_.now_ms();
  const std::string &topic = m.topic;
  if (topic.empty()) {
    io_.count(RouterEvent::kIgnored, "other", "bad_topic");
    return;
  }
  if (m.data && m.data->size() > params_.max_message_bytes) {
    io_.count(RouterEvent::kIgnored, metric_topic(topic), "too_large");
    return;
  }
  if (!announced(topic)) {
    // We never asked for it (no SUBSCRIBE, no IWANT): a stray copy, or spam.
    State::Peer &p = s_->peers[from];
    ++p.stray_messages;
    io_.count(RouterEvent::kIgnored, "other", "not_subscribed");
    return;
  }
  std::string why;
  if (auto reason = check_message(m, s_->policy, false, &why)) {
    Bytes id = message_id(m);
    s_->score.reject_message(from, id, topic, *reason, now);
    io_.count(RouterEvent::kRejected, topic,
              s_->policy == SignaturePolicy::kStrictNoSign ? "unexpected_signature" : reject_reason_name(*reason));
    return;
  }
  Bytes id = message_id(m);
  if (s_->was_seen(id)) {
    s_->score.duplicate_message(from, id, topic, now);
    io_.count(RouterEvent::kDuplicate, topic);
    return;
  }
  // Our own id on a message we have not seen: we did not send it (or it outlived our seen cache).
  // The seen check comes first so a peer echoing our message back (not every implementation skips the
  // author when forwarding) costs it nothing.
  if (m.from && *m.from == s_->local.bytes()) {
    s_->score.reject_message(from, id, topic, RejectReason::kSelfOrigin, now);
    io_.count(RouterEvent::kRejected, topic, reject_reason_name(RejectReason::kSelfOrigin));
    return;
  }
  if (s_->queue.size() >= params_.validate_queue) {
    io_.count(RouterEvent::kIgnored, topic, "queue_full");
    return;
  }
  s_->score.validate_message(from, id, topic, now);
  s_->queue.push_back({from, std::move(m), std::move(id), signature_verified});
}

void Router::drain_queue() {
  size_t budget = params_.validate_throttle;
  while (!s_->queue.empty() && budget-- > 0) {
    State::Pending item = std::move(s_->queue.front());
    s_->queue.pop_front();
    validate_and_deliver(item.from, item.message, item.id, item.signature_verified);
  }
}

void Router::validate_and_deliver(const PeerId &from, const Message &m, const Bytes &id, bool signature_verified) {
  uint64_t now = io_.now_ms();
  const std::string &topic = m.topic;
  if (s_->was_seen(id)) {  // another copy passed validation while this one waited
    s_->score.duplicate_message(from, id, topic, now);
    io_.count(RouterEvent::kDuplicate, topic);
    return;
  }
  std::string why;
  if (auto reason = check_message(m, s_->policy, !signature_verified, &why)) {
    s_->score.reject_message(from, id, topic, *reason, now);
    io_.count(RouterEvent::kRejected, topic, reject_reason_name(*reason));
    s_->promises.erase(id);  // the peer did send it: the promise is not broken, the message is bad
    return;
  }
  ReceivedMessage rm{m, id, from, false};
  Validation v = io_.validate(rm);
  if (v == Validation::kReject) {
    s_->score.reject_message(from, id, topic, RejectReason::kValidatorReject, now);
    io_.count(RouterEvent::kRejected, topic, "validator");
    s_->promises.erase(id);
    return;
  }
  if (v == Validation::kIgnore) {
    s_->score.reject_message(from, id, topic, RejectReason::kValidatorIgnore, now);
    io_.count(RouterEvent::kIgnored, topic, "validator");
    s_->promises.erase(id);
    return;
  }
  mark_seen(id, now);
  cache_message(id, m);
  s_->promises.erase(id);
  s_->score.deliver_message(from, id, topic, now);
  io_.deliver(rm);
  io_.count(RouterEvent::kDelivered, topic);
  forward(m, from);
}

void Router::handle_control(const PeerId &from, const Control &c) {
  // Control needs a way back (our outbound stream): a peer grafts us only after our SUBSCRIBE anyway.
  auto pit = s_->peers.find(from);
  if (pit == s_->peers.end() || !pit->second.attached || !is_meshsub(pit->second.protocol)) return;
  Rpc reply;
  Control out;
  std::vector<Message> wanted;
  handle_ihave(from, c.ihave, out);
  handle_iwant(from, c.iwant, wanted);
  handle_graft(from, c.graft, out);
  handle_prune(from, c.prune);
  if (!out.empty()) reply.control = std::move(out);
  // Messages asked for go out in RPCs of at most about one maximal message each, the size every
  // implementation accepts in one frame.
  size_t batch_bytes = 0;
  for (auto &m : wanted) {
    size_t bytes = encoded_size_estimate(m);
    if (!reply.publish.empty() && batch_bytes + bytes > params_.max_message_bytes) {
      io_.send(from, std::move(reply));
      reply = Rpc{};
      batch_bytes = 0;
    }
    batch_bytes += bytes;
    reply.publish.push_back(std::move(m));
  }
  if (!reply.empty()) io_.send(from, std::move(reply));
}

void Router::handle_ihave(const PeerId &from, const std::vector<ControlIHave> &ihaves, Control &out) {
  if (ihaves.empty()) return;
  uint64_t now = io_.now_ms();
  if (s_->score.score(from, now) < s_->thresholds.gossip) return;
  State::Peer &p = s_->peers[from];
  // IHAVE flood: only max_ihave_messages RPCs with IHAVE per peer per heartbeat are looked at.
  if (++p.ihaves_received > params_.max_ihave_messages) return;
  if (p.ids_asked >= params_.max_ihave_length) return;
  std::vector<Bytes> wanted;
  std::unordered_set<Bytes, BytesHash> asked;
  for (const auto &ih : ihaves) {
    if (!announced(ih.topic)) continue;
    for (const auto &id : ih.message_ids) {
      if (p.ids_asked + static_cast<int>(wanted.size()) >= params_.max_ihave_length) break;
      if (s_->was_seen(id) || s_->promises.count(id) != 0 || !asked.insert(id).second) continue;
      wanted.push_back(id);
    }
  }
  if (wanted.empty()) return;
  p.ids_asked += static_cast<int>(wanted.size());
  // One promise per IWANT (a random id of it), as go-libp2p-pubsub: the peer must deliver it in time.
  std::uniform_int_distribution<size_t> pick(0, wanted.size() - 1);
  s_->promises[wanted[pick(s_->rng)]][from] = now + params_.iwant_followup_ms;
  out.iwant.push_back({std::move(wanted)});
}

void Router::handle_iwant(const PeerId &from, const std::vector<ControlIWant> &iwants, std::vector<Message> &out) {
  if (iwants.empty()) return;
  if (s_->score.score(from, io_.now_ms()) < s_->thresholds.gossip) return;
  for (const auto &iw : iwants) {
    for (const auto &id : iw.message_ids) {
      auto it = s_->mcache.find(id);
      if (it == s_->mcache.end()) continue;
      int &served = it->second.iwant_served[from];
      if (served >= params_.gossip_retransmission) continue;  // IWANT spam: answered often enough
      ++served;
      out.push_back(it->second.message);
    }
  }
}

void Router::handle_graft(const PeerId &from, const std::vector<ControlGraft> &grafts, Control &out) {
  uint64_t now = io_.now_ms();
  for (const auto &g : grafts) {
    // A topic we did not join: ignored, as go and js do (no PRUNE: a peer could make us answer
    // every GRAFT it invents, and a PRUNE would tell it which topics we have).
    if (!announced(g.topic)) continue;
    std::set<PeerId> &mesh = s_->mesh[g.topic];
    if (mesh.count(from) != 0) continue;
    auto bit = s_->backoff.find({g.topic, from});
    if (bit != s_->backoff.end() && bit->second > now) {
      // GRAFT during backoff: penalised, twice when it follows our PRUNE closely (a graft flood).
      io_.count(RouterEvent::kGraftBackoff, g.topic);
      s_->score.add_penalty(from, 1);
      uint64_t pruned_at = bit->second >= params_.prune_backoff_ms ? bit->second - params_.prune_backoff_ms : 0;
      if (now < pruned_at + params_.graft_flood_threshold_ms) s_->score.add_penalty(from, 1);
      bit->second = now + params_.prune_backoff_ms;
      out.prune.push_back(make_prune(g.topic, from, false, false));
      continue;
    }
    double sc = s_->score.score(from, now);
    if (sc < 0) {
      s_->backoff[{g.topic, from}] = now + params_.prune_backoff_ms;
      out.prune.push_back(make_prune(g.topic, from, false, false));
      continue;
    }
    if (static_cast<int>(mesh.size()) >= params_.d_hi && !s_->peers[from].outbound) {
      // Full mesh: refuse inbound grafts, but tell the peer where else to go.
      s_->backoff[{g.topic, from}] = now + params_.prune_backoff_ms;
      out.prune.push_back(make_prune(g.topic, from, false, true));
      continue;
    }
    mesh.insert(from);
    s_->score.graft(from, g.topic, now);
  }
}

void Router::handle_prune(const PeerId &from, const std::vector<ControlPrune> &prunes) {
  uint64_t now = io_.now_ms();
  for (const auto &pr : prunes) {
    // Only topics we joined: a PRUNE for any other topic would make us keep a backoff entry for it.
    if (!announced(pr.topic)) continue;
    auto mit = s_->mesh.find(pr.topic);
    if (mit != s_->mesh.end() && mit->second.erase(from) != 0) s_->score.prune(from, pr.topic, now);
    uint64_t backoff_ms = pr.backoff_s ? std::min<uint64_t>(*pr.backoff_s, 24 * 3600) * 1000 : params_.prune_backoff_ms;
    uint64_t &until = s_->backoff[{pr.topic, from}];
    until = std::max(until, now + backoff_ms);
    if (!pr.peers.empty() && s_->score.score(from, now) >= s_->thresholds.accept_px) {
      std::vector<PeerInfo> px;
      for (const auto &pi : pr.peers) {
        if (static_cast<int>(px.size()) >= params_.prune_peers) break;
        auto id = PeerId::from_bytes(pi.peer_id, nullptr);
        if (!id || *id == s_->local) continue;
        auto known = s_->peers.find(*id);
        if (known != s_->peers.end() && known->second.attached) continue;  // already connected
        px.push_back(pi);
      }
      if (!px.empty()) io_.connect_to(px);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Summaries

std::vector<TopicSummary> Router::topics() const {
  std::set<std::string> names(s_->joined.begin(), s_->joined.end());
  for (const auto &[t, _] : s_->topic_peers) names.insert(t);
  for (const auto &[t, _] : s_->fanout) names.insert(t);
  std::vector<TopicSummary> out;
  for (const auto &t : names) {
    TopicSummary ts;
    ts.topic = t;
    ts.subscribed = joined(t);
    auto tp = s_->topic_peers.find(t);
    ts.peers = tp == s_->topic_peers.end() ? 0 : tp->second.size();
    const auto &group = ts.subscribed ? s_->mesh : s_->fanout;
    auto g = group.find(t);
    ts.mesh_peers = g == group.end() ? 0 : g->second.size();
    out.push_back(std::move(ts));
  }
  return out;
}

std::vector<PeerSummary> Router::peers() const {
  std::vector<PeerSummary> out;
  uint64_t now = io_.now_ms();
  for (const auto &[id, p] : s_->peers) {
    if (!p.attached) continue;
    PeerSummary ps;
    ps.peer = id;
    ps.protocol = p.protocol;
    ps.outbound = p.outbound;
    ps.score = s_->score.score(id, now);
    ps.topics.assign(p.topics.begin(), p.topics.end());
    for (const auto &[topic, members] : s_->mesh)
      if (members.count(id) != 0) ps.mesh.push_back(topic);
    out.push_back(std::move(ps));
  }
  std::sort(out.begin(), out.end(), [](const PeerSummary &a, const PeerSummary &b) { return a.peer < b.peer; });
  return out;
}

}  // namespace chorus::gossip

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
#include "router.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

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

struct BytesHash {
  size_t operator()(const Bytes &b) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// Stray messages (topics we did not join) a peer may send per heartbeat before each further one costs
// it a behaviour penalty: a few cross in flight with our UNSUBSCRIBE, floods do not.
constexpr int kStrayAllowance = 16;

}  // namespace

struct Router::State {
  struct Peer {
    Protocol protocol = Protocol::kMeshsub11;
    bool outbound = false;
    bool attached = false;  // add_peer was called: we can send to it
    std::string ip;
    std::set<std::string> topics;
    // Per-heartbeat gossip accounting.
    int ihaves_received = 0;  // RPCs carrying IHAVE this heartbeat
    int ids_asked = 0;        // ids we requested with IWANT this heartbeat
    int stray_messages = 0;   // messages on topics we did not join, this heartbeat
  };
  struct CacheEntry {
    Message message;
    std::unordered_map<PeerId, int> iwant_served;  // answers to IWANT per peer (gossip_retransmission)
  };
  struct Pending {
    PeerId from;
    Message message;
    Bytes id;
    bool signature_verified = false;
  };

  State(PeerScoreParams sp, PeerScoreThresholds t, SignaturePolicy p, PeerId l, Bytes pk)
      : score(std::move(sp)), thresholds(t), policy(p), local(std::move(l)), local_public_key(std::move(pk)) {}

  PeerScore score;
  PeerScoreThresholds thresholds;
  SignaturePolicy policy;
  PeerId local;
  Bytes local_public_key;

  std::unordered_map<PeerId, Peer> peers;
  std::map<std::string, std::set<PeerId>> topic_peers;
  std::set<std::string> joined;
  std::set<std::string> local_only;  // joined without telling peers (the health probe's topic)
  std::map<std::string, std::set<PeerId>> mesh;
  std::map<std::string, std::set<PeerId>> fanout;
  std::map<std::string, uint64_t> fanout_last_publish;
  // (topic, peer) -> when the backoff ends, whichever side pruned (as go-libp2p-pubsub keeps it).
  std::map<std::pair<std::string, PeerId>, uint64_t> backoff;

  std::unordered_map<MessageKey, uint64_t, MessageKeyHash> seen;  // id's key -> expiry
  std::deque<std::pair<uint64_t, MessageKey>> seen_order;

  bool was_seen(const Bytes &id) const { return seen.count(message_key(id)) != 0; }

  std::unordered_map<Bytes, CacheEntry, BytesHash> mcache;
  std::deque<std::vector<Bytes>> mcache_windows;  // front: the current heartbeat

  // IWANT promises: message id -> peer -> deadline.
  std::unordered_map<Bytes, std::unordered_map<PeerId, uint64_t>, BytesHash> promises;

  std::deque<Pending> queue;
  std::atomic<uint64_t> seqno{0};  // any thread (make_message)
  uint64_t ticks = 0;
  std::mt19937_64 rng{std::random_device{}()};

  // Control messages gathered during a heartbeat, sent as one RPC per peer at its end.
  std::map<PeerId, Control> outgoing;
};

namespace {

bool is_meshsub(Protocol p) { return p != Protocol::kFloodsub; }

// An upper estimate of a message's encoded size (fields plus their tags and lengths).
size_t encoded_size_estimate(const Message &m) {
  auto len = [](const std::optional<Bytes> &b) { return b ? b->size() + 6 : 0; };
  return len(m.from) + len(m.data) + len(m.seqno) + len(m.signature) + len(m.key) + m.topic.size() + 12;
}

template <class T>
void shuffle(std::vector<T> &v, std::mt19937_64 &rng) {
  std::shuffle(v.begin(), v.end(), rng);
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
// Heartbeat

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

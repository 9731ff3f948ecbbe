// The gossip node (node.hpp): construction, start and stop, membership, the subscription and
// validator registry, publishing, introspection. node_internal.hpp lists the other parts.
#include "node_internal.hpp"

#include <algorithm>

#include "envelope.hpp"

namespace chorus::gossip {

namespace {
// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). Raw
// publications that are not text are binary, and rewriting bytes of those would corrupt them.
bool is_utf8_text(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}
}  // namespace

chorus_status check_topic(std::string_view topic, chorus_error *err) {
  if (topic.empty()) return fail(err, CHORUS_E_INVALID_ARG, "gossip: the topic is empty");
  if (topic.size() > CHORUS_PUBSUB_TOPIC_MAX)
    return fail(err, CHORUS_E_INVALID_ARG, "gossip: the topic is longer than " + std::to_string(CHORUS_PUBSUB_TOPIC_MAX) + " bytes");
  if (topic.find('\0') != std::string_view::npos) return fail(err, CHORUS_E_INVALID_ARG, "gossip: the topic contains NUL");
  return CHORUS_OK;
}

NodeMetrics define_metrics(chorus::Host &host) {
  NodeMetrics m;
  m.published = host.counter("chorus_gossip_messages_published_total", "Messages this node published, by topic", {"topic"});
  m.delivered = host.counter("chorus_gossip_messages_delivered_total", "Messages delivered to local subscribers (first valid copy), by topic", {"topic"});
  m.rejected = host.counter("chorus_gossip_messages_rejected_total", "Messages rejected (counted against the sender), by topic and reason", {"topic", "reason"});
  m.ignored = host.counter("chorus_gossip_messages_ignored_total", "Messages dropped without penalty, by topic and reason", {"topic", "reason"});
  m.duplicate = host.counter("chorus_gossip_messages_duplicate_total", "Copies of messages already seen, by topic", {"topic"});
  m.rpcs_dropped = host.counter("chorus_gossip_rpcs_dropped_total", "RPCs not sent to a peer, by reason (queue_full, ...)", {"reason"});
  m.rpcs_rejected = host.counter("chorus_gossip_rpcs_rejected_total", "Inbound frames refused (stream reset), by reason", {"reason"});
  m.publish_waits = host.counter("chorus_gossip_publish_waits_total",
                                 "Local publishes that waited because every peer's send queue was congested, by outcome (resumed, timeout)",
                                 {"outcome"});
  m.probe_failures = host.counter("chorus_gossip_probe_failures_total", "Loopback probes not delivered within probe.timeout_ms");
  m.mesh_peers = host.gauge("chorus_gossip_mesh_peers", "Peers in our mesh, by topic", {"topic"});
  m.topic_peers = host.gauge("chorus_gossip_topic_peers", "Gossip peers subscribed to the topic, by topic", {"topic"});
  m.peers = host.gauge("chorus_gossip_peers", "Peers with an open pubsub stream");
  m.peer_score = host.histogram("chorus_gossip_peer_score", "Peer scores, observed for every peer at each heartbeat", {},
                                {-100, -80, -50, -10, -1, 0, 1, 10, 50, 100});
  m.probe_latency = host.histogram("chorus_gossip_probe_latency_seconds", "Loopback probe: publish to local delivery", {},
                                   {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  return m;
}

// ---- construction and lifecycle ----

Node::Node(chorus::Host &host, Settings settings, NodeMetrics metrics, P2P p2p)
    : host_(host), s_(std::move(settings)), m_(std::move(metrics)), p2p_(std::move(p2p)), work_(io_.get_executor()),
      heartbeat_timer_(io_), probe_timer_(io_), probe_timeout_(io_), verify_work_(verify_io_.get_executor()) {}

Node::~Node() { stop(); }


void Node::start() {
  auto *t = p2p_.table();
  uint8_t id[64];
  size_t id_len = 0;
  char text[128];
  if (t->local_peer_id(p2p_.self(), id, sizeof id, &id_len, text, sizeof text, nullptr) != CHORUS_OK)
    throw chorus::Error(CHORUS_E_UNAVAILABLE, "gossip: chorus.p2p.host has no local peer id");
  auto self = PeerId::from_bytes(BytesView(id, id_len), nullptr);
  if (!self) throw chorus::Error(CHORUS_E_INTERNAL, "gossip: the local peer id does not parse");
  self_ = *self;
  self_text_ = text;
  uint8_t key[128];
  size_t key_len = 0;
  if (t->local_public_key(p2p_.self(), key, sizeof key, &key_len) != CHORUS_OK)
    throw chorus::Error(CHORUS_E_UNAVAILABLE, "gossip: chorus.p2p.host has no local public key");
  self_key_.assign(key, key + key_len);

  try {
    auto info = json::parse(host_.host_info(), nullptr, false);
    if (info.is_object() && info.contains("agent_id") && info["agent_id"].is_string())
      agent_id_ = info["agent_id"].get<std::string>();
  } catch (const chorus::Error &) {
  }
  if (agent_id_.empty()) agent_id_ = self_text_;
  probe_topic_ = "_chorus/gossip/probe/" + self_text_;

  router_ = std::make_unique<Router>(s_.router, s_.score, s_.thresholds, s_.signature_policy, self_, self_key_,
                                     static_cast<RouterIo &>(*this));
  for (const auto &topic : s_.topics) hold(topic, true, nullptr);
  if (s_.probe.enabled) hold(probe_topic_, true, nullptr);

  // The threads first (nothing is posted to them yet), then what can post: protocol handlers and events.
  // Verifier threads take Ed25519 (about 50 us a message, most of a receiver's work) off the gossip
  // thread: one per spare core, up to 4. RPCs travel to them in batches (one per read of a stream),
  // so the hand-off costs little: on a 2-vCPU VM at saturation the receiver spends the same CPU per
  // message as when the router verifies inline (68-72 us) and receives 15 700-16 900 msg/s against
  // 14 100-14 600 (docs/benchmarks.md).
  if (s_.signature_policy == SignaturePolicy::kStrictSign) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const unsigned verifiers =
        s_.verify_threads >= 0 ? static_cast<unsigned>(s_.verify_threads) : std::min(cores - 1, 4u);
    for (unsigned i = 0; i < verifiers; ++i) verify_threads_.emplace_back([this] { verify_io_.run(); });
  }
  thread_ = std::thread([this] { io_.run(); });
  thread_id_ = thread_.get_id();
  for (const char *proto : kPubsubProtocols) {
    accept_args_.push_back(std::make_unique<std::weak_ptr<Node>>(weak_from_this()));
    chorus::ErrorBuffer err;
    const chorus_status st = t->set_protocol_handler(p2p_.self(), proto, &Node::on_accept, accept_args_.back().get(), err.get());
    if (st != CHORUS_OK)
      throw chorus::Error(st, std::string("gossip: cannot handle ") + proto + ": " + std::string(err.text()));
  }

  // Events after the thread runs: the connected peers arrive at once as CONNECTED events.
  uint64_t sub = 0;
  if (t->subscribe(p2p_.self(), &Node::on_p2p_event, this, &sub) == CHORUS_OK) p2p_sub_ = sub;
  // Peers identified before we started get no IDENTIFIED event: ask the p2p host what they speak.
  chorus_buf buf{};
  chorus::ErrorBuffer err;
  if (t->list_peers_json != nullptr && t->list_peers_json(p2p_.self(), &buf, err.get()) == CHORUS_OK) {
    auto peers = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
    if (buf.release != nullptr) buf.release(&buf);
    if (peers.is_array())
      for (const auto &p : peers) {
        if (!p.is_object() || !p.contains("peer_id") || !p["peer_id"].is_string()) continue;
        auto pid = PeerId::parse(p["peer_id"].get<std::string>(), nullptr);
        if (!pid) continue;
        json ident = {{"protocols", p.value("protocols", json::array())}};
        post([this, id = *pid, j = ident.dump()] { peer_identified(id, j); });
      }
  }
  post([this] {
    report_health();
    schedule_heartbeat(100);
    if (s_.probe.enabled) schedule_probe(0);
  });
  host_.info("gossip: " + self_text_ + " as agent " + agent_id_ + ", " + std::to_string(s_.topics.size()) +
             " static topic(s), " + (s_.signature_policy == SignaturePolicy::kStrictSign ? "StrictSign" : "StrictNoSign"));
}

void Node::stop() {
  if (stopping_.exchange(true)) return;
  auto *t = p2p_ ? p2p_.table() : nullptr;
  if (t != nullptr && p2p_sub_ != 0) t->unsubscribe(p2p_.self(), p2p_sub_);
  p2p_sub_ = 0;
  if (t != nullptr)
    for (size_t i = 0; i < accept_args_.size(); ++i) t->remove_protocol_handler(p2p_.self(), kPubsubProtocols[i]);
  if (thread_.joinable()) {
    std::promise<void> done;
    asio::post(io_, [this, t, &done] {
      for (auto *timer : {&heartbeat_timer_, &probe_timer_, &probe_timeout_}) timer->cancel();
      if (t != nullptr) {
        for (const auto &[stream, in] : inbound_) t->reset(p2p_.self(), stream);
        for (const auto &[stream, peer] : outbound_) t->close_write(p2p_.self(), stream);
      }
      inbound_.clear();
      outbound_.clear();
      peers_.clear();
      open_peers_ = congested_peers_ = 0;
      set_all_congested(false);
      deliveries_.clear();
      done.set_value();
    });
    done.get_future().wait_for(std::chrono::seconds(2));
    work_.reset();
    io_.stop();
    thread_.join();
  }
  verify_work_.reset();
  verify_io_.stop();
  for (auto &t : verify_threads_) t.join();
  verify_threads_.clear();
  stopped_ = true;
  // Subscriptions end with the node (an SSE stream's handler ends its HTTP response when destroyed).
  std::list<Sub> subs;
  {
    std::lock_guard lk(subs_mu_);
    subs.swap(subs_);
  }
  std::lock_guard lk(vals_mu_);
  vals_.clear();
}

// ---- membership ----

chorus_status Node::hold(const std::string &topic, bool as_join, chorus_error *err) {
  auto it = membership_.find(topic);
  if (it == membership_.end()) {
    if (membership_.size() >= s_.max_topics + (s_.probe.enabled ? 1 : 0))
      return fail(err, CHORUS_E_BUSY, "gossip: already in max_topics (" + std::to_string(s_.max_topics) + ") topics");
    it = membership_.emplace(topic, Membership{}).first;
    router_->join(topic, topic != probe_topic_);  // the probe's topic stays private to this node
  }
  if (as_join) it->second.joined = true;
  else ++it->second.subscriptions;
  return CHORUS_OK;
}

void Node::release(const std::string &topic, bool as_join) {
  auto it = membership_.find(topic);
  if (it == membership_.end()) return;
  if (as_join) it->second.joined = false;
  else if (it->second.subscriptions > 0) --it->second.subscriptions;
  if (!it->second.joined && it->second.subscriptions == 0) {
    membership_.erase(it);
    router_->leave(topic);
  }
}

const std::string &Node::label(const std::string &topic) const {
  static const std::string other = "other", probe = "_probe";
  if (topic == probe_topic_) return probe;
  return membership_.count(topic) != 0 ? topic : other;
}

chorus_status Node::is_joined(const std::string &topic, bool *out, chorus_error *err) {
  return run_sync(err, [&] {
    *out = membership_.count(topic) != 0;
    return CHORUS_OK;
  });
}

chorus_status Node::subscribe(const std::string &topic, MessageHandler fn, uint64_t *out_sub, chorus_error *err) {
  if (auto st = check_topic(topic, err); st != CHORUS_OK) return st;
  if (!fn) return fail(err, CHORUS_E_INVALID_ARG, "gossip: subscribe needs a handler");
  // Join first (without holding subs_mu_: the gossip thread takes it to dispatch). A validator runs
  // inside the router, which must not be re-entered: its joins happen right after.
  if (inside_router()) post([this, topic] { hold(topic, false, nullptr); });
  else if (auto st = run_sync(err, [&] { return hold(topic, false, err); }); st != CHORUS_OK) return st;
  std::lock_guard lk(subs_mu_);
  const uint64_t id = ++last_sub_;
  subs_.push_back(Sub{id, topic, std::move(fn)});
  if (out_sub != nullptr) *out_sub = id;
  return CHORUS_OK;
}

chorus_status Node::unsubscribe(uint64_t sub) {
  std::string topic;
  {
    // Waits for a dispatch on another thread to finish; from inside a handler it marks the
    // subscription dead and the dispatch erases it afterwards.
    std::lock_guard lk(subs_mu_);
    auto it = std::find_if(subs_.begin(), subs_.end(), [&](const Sub &s) { return s.id == sub && s.live; });
    if (it == subs_.end()) return CHORUS_E_NOT_FOUND;
    it->live = false;
    topic = it->topic;
    if (subs_depth_ == 0) subs_.erase(it);
  }
  if (on_gossip_thread() && !inside_router()) release(topic, false);
  else if (!stopping_.load()) post([this, topic] { release(topic, false); });
  return CHORUS_OK;
}

chorus_status Node::join(const std::string &topic, chorus_error *err) {
  if (auto st = check_topic(topic, err); st != CHORUS_OK) return st;
  if (inside_router()) {
    post([this, topic] { hold(topic, true, nullptr); });
    return CHORUS_OK;
  }
  return run_sync(err, [&] { return hold(topic, true, err); });
}

chorus_status Node::leave(const std::string &topic, chorus_error *err) {
  if (auto st = check_topic(topic, err); st != CHORUS_OK) return st;
  if (inside_router()) {
    post([this, topic] { release(topic, true); });
    return CHORUS_OK;
  }
  return run_sync(err, [&] {
    release(topic, true);
    return CHORUS_OK;
  });
}

chorus_status Node::add_validator(const std::string &topic, MessageValidator fn, uint64_t *out_id, chorus_error *err) {
  if (auto st = check_topic(topic, err); st != CHORUS_OK) return st;
  if (!fn) return fail(err, CHORUS_E_INVALID_ARG, "gossip: add_validator needs a function");
  std::lock_guard lk(vals_mu_);
  const uint64_t id = ++last_val_;
  vals_.push_back(Val{id, topic, std::move(fn)});
  if (out_id != nullptr) *out_id = id;
  return CHORUS_OK;
}

chorus_status Node::remove_validator(uint64_t id) {
  std::lock_guard lk(vals_mu_);
  auto it = std::find_if(vals_.begin(), vals_.end(), [&](const Val &v) { return v.id == id && v.live; });
  if (it == vals_.end()) return CHORUS_E_NOT_FOUND;
  it->live = false;
  if (vals_depth_ == 0) vals_.erase(it);
  return CHORUS_OK;
}

// ---- publishing ----

chorus_status Node::do_publish(const std::string &topic, Bytes data, Bytes *id, chorus_error *err) {
  if (validator_depth_ > 0)
    return fail(err, CHORUS_E_BUSY, "gossip: a validator cannot publish (it runs inside the router)");
  std::string why;
  auto mid = router_->publish(topic, std::move(data), &why);
  if (!mid) return fail(err, CHORUS_E_INVALID_ARG, "gossip: not published on " + topic + ": " + why);
  if (id != nullptr) *id = std::move(*mid);
  schedule_drain();
  return CHORUS_OK;
}

chorus_status Node::publish_raw(const std::string &topic, Bytes data, Bytes *id, chorus_error *err) {
  // SHHH (docs/shhh.md): raw bytes that are UTF-8 text are redacted before they are signed; binary
  // payloads go as they are. A host without host_api.redact (ABI < 1.2) or with the pubsub channel
  // off hands text back unchanged.
  if (!data.empty() && host_.can_redact() && is_utf8_text(data.data(), data.size())) {
    std::string redacted = host_.redact(chorus::Channel::pubsub,
                                        std::string_view(reinterpret_cast<const char *>(data.data()), data.size()), false);
    data.assign(redacted.begin(), redacted.end());
  }
  return publish_bytes(topic, std::move(data), id, err);
}

chorus_status Node::publish_bytes(const std::string &topic, Bytes data, Bytes *id, chorus_error *err) {
  if (auto st = check_topic(topic, err); st != CHORUS_OK) return st;
  if (data.size() > s_.max_message_bytes)
    return fail(err, CHORUS_E_TOO_LARGE, "gossip: the message has " + std::to_string(data.size()) +
                                             " bytes, more than max_message_bytes (" + std::to_string(s_.max_message_bytes) + ")");
  // Off the gossip thread, on a topic without validators, under StrictSign (a fresh seqno makes
  // every message new; under StrictNoSign the id is the hash of the data, and the router refuses
  // the same data twice as a duplicate), nothing the router does can refuse the message (bar a
  // failing signature, which only a stopping p2p host gives): take the message id here and hand the message over without waiting for the gossip thread. Waiting cost two thread
  // wake-ups per message; now a busy gossip thread signs and routes whole batches of publishes
  // without sleeping in between. A validator must see the message and may refuse it, which the
  // caller has to hear: that path waits, and so does a publisher that runs ahead of the gossip
  // thread by more than kPublishAheadBytes (its round trip queues behind what is waiting, so the
  // queue stays bounded).
  if (!on_gossip_thread()) wait_while_congested();
  if (s_.signature_policy == SignaturePolicy::kStrictSign && !on_gossip_thread() && !has_validator(topic) &&
      publish_ahead_bytes_.load(std::memory_order_relaxed) < kPublishAheadBytes) {
    if (stopping_.load()) return fail(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin is stopping");
    Message m = router_->make_message(topic, std::move(data));
    Bytes mid = router_->message_id(m);
    const size_t bytes = m.data->size() + 256;
    publish_ahead_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    post([this, m = std::move(m), bytes]() mutable {
      publish_ahead_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      std::string why;
      if (!router_->publish_message(std::move(m), &why)) host_.warn("gossip: a message was not published: " + why);
      schedule_drain();
    });
    if (id != nullptr) *id = std::move(mid);
    return CHORUS_OK;
  }
  return run_sync(err, [&] { return do_publish(topic, std::move(data), id, err); });
}

bool Node::has_validator(const std::string &topic) {
  std::lock_guard lk(vals_mu_);
  return std::any_of(vals_.begin(), vals_.end(), [&](const Val &v) { return v.live && v.topic == topic; });
}

void Node::schedule_drain() {
  if (drain_posted_ || deliveries_.empty()) return;
  drain_posted_ = true;
  post([this] { drain_deliveries(); });
}

chorus_status Node::publish_envelope(const std::string &topic, const std::string &type, nlohmann::json data,
                                     uint32_t hop_count, Bytes *id, chorus_error *err) {
  if (type.empty() || type.size() > kMaxTypeLength)
    return fail(err, CHORUS_E_INVALID_ARG, "gossip: the type must have 1 to " + std::to_string(kMaxTypeLength) + " bytes");
  Envelope e;
  e.type = type;
  e.from = agent_id_;
  e.timestamp = rfc3339_utc(std::chrono::system_clock::now());
  e.data = std::move(data);
  if (host_.can_redact()) {
    // SHHH: the data value as JSON (every string value, and sensitive keys whole), before signing.
    uint32_t found = 0;
    const std::string redacted = host_.redact(
        chorus::Channel::pubsub, e.data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), true, &found);
    if (found > 0) {
      nlohmann::json parsed = nlohmann::json::parse(redacted, nullptr, false);
      if (parsed.is_discarded()) return fail(err, CHORUS_E_INTERNAL, "gossip: the redacted data is not JSON; not published");
      e.data = std::move(parsed);
    }
  }
  e.hop_count = hop_count;
  const std::string text = build_envelope(e);
  return publish_bytes(topic, Bytes(text.begin(), text.end()), id, err);
}

// ---- introspection ----

chorus_status Node::topics_json(std::string *out, chorus_error *err) {
  return run_sync(err, [&] {
    json arr = json::array();
    for (const auto &t : router_->topics()) {
      if (t.topic == probe_topic_) continue;
      arr.push_back({{"topic", t.topic}, {"subscribed", t.subscribed}, {"peers", t.peers}, {"mesh_peers", t.mesh_peers}});
    }
    *out = arr.dump();
    return CHORUS_OK;
  });
}

chorus_status Node::peers_json(std::string *out, chorus_error *err) {
  return run_sync(err, [&] {
    json arr = json::array();
    for (const auto &p : router_->peers()) {
      std::vector<std::string> topics, mesh;
      for (const auto &t : p.topics)
        if (t != probe_topic_) topics.push_back(t);
      for (const auto &t : p.mesh)
        if (t != probe_topic_) mesh.push_back(t);
      arr.push_back({{"peer_id", p.peer.to_base58()},
                     {"protocol", protocol_id(p.protocol)},
                     {"outbound", p.outbound},
                     {"score", p.score},
                     {"topics", topics},
                     {"mesh", mesh}});
    }
    *out = arr.dump(-1, ' ', false, json::error_handler_t::replace);
    return CHORUS_OK;
  });
}

}  // namespace chorus::gossip

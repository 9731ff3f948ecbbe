#include "node.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "envelope.hpp"
#include "signature.hpp"
#include "wire/varint.hpp"

namespace chorus::gossip {

namespace asio = boost::asio;
using json = nlohmann::json;

// ---- per-peer and per-stream state ----

// A peer we are connected to (gossip thread).
struct Node::Peer {
  std::string text;
  std::string ip;
  bool connected = false;
  bool outbound = false;        // we dialled the connection
  bool speaks_pubsub = false;   // identify listed a pubsub protocol
  uint64_t out_stream = 0;      // our write-only stream, once open
  bool opening = false;
  bool open_failed = false;     // the peer refused every pubsub protocol: do not retry
  uint64_t in_stream = 0;       // its write-only stream to us
  bool in_router = false;
  // Frames waiting for the p2p send queue (which said BUSY); bounded by peer_queue_bytes.
  std::deque<Bytes> queue;
  size_t queued_bytes = 0;
  bool blocked = false;
};

// Bytes of an inbound stream on their way from the p2p thread to the gossip thread. The p2p thread
// appends and posts one drain only when none is queued yet, so a busy stream costs one wake-up of
// the gossip thread per batch of yamux frames rather than one per frame.
struct Node::Incoming {
  std::mutex mu;
  Bytes bytes;             // guarded by mu
  bool scheduled = false;  // guarded by mu: a drain is posted and has not run yet
  // Bytes appended and not taken by the gossip thread yet: reading pauses while too many wait (the
  // peer then stalls on its yamux window), so a fast sender cannot grow our memory.
  std::atomic<size_t> size{0};
};

// An inbound stream's unparsed bytes (gossip thread).
struct Node::Inbound {
  PeerId peer;
  Bytes buf;
  std::shared_ptr<Incoming> incoming;
  bool paused = false;
};

// The arg of one stream's p2p handler: lives from accept/open until on_closed (p2p thread only).
struct Node::StreamCtx {
  std::weak_ptr<Node> node;
  PeerId peer;
  std::string peer_text;
  bool inbound = false;
  std::shared_ptr<Incoming> incoming = std::make_shared<Incoming>();
};

// A message accepted by the Router, waiting to be handed to handlers (gossip thread).
struct Node::Delivery {
  std::string topic;
  Bytes data;
  std::optional<Bytes> from, seqno;
  Bytes id;
  PeerId received_from;  // as text only when a handler wants it
  bool local = false;
};

namespace {

std::string ip_of(const std::string &multiaddr) {
  // "/ip4/1.2.3.4/tcp/..." or "/ip6/::1/tcp/...": the second component.
  if (multiaddr.rfind("/ip4/", 0) != 0 && multiaddr.rfind("/ip6/", 0) != 0) return "";
  const size_t end = multiaddr.find('/', 5);
  return multiaddr.substr(5, end == std::string::npos ? std::string::npos : end - 5);
}

std::optional<Protocol> protocol_from(std::string_view id) {
  if (id == "/meshsub/1.1.0") return Protocol::kMeshsub11;
  if (id == "/meshsub/1.0.0") return Protocol::kMeshsub10;
  if (id == "/floodsub/1.0.0") return Protocol::kFloodsub;
  return std::nullopt;
}

chorus_status fail(chorus_error *err, chorus_status code, const std::string &message) {
  chorus::set_error(err, code, message);
  return code;
}

std::optional<PeerId> peer_of(const uint8_t *bytes, size_t len) {
  if (bytes == nullptr) return std::nullopt;
  return PeerId::from_bytes(BytesView(bytes, len), nullptr);
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

template <class F>
void Node::post(F &&fn) {
  asio::post(io_, std::forward<F>(fn));
}

// Runs fn (returning chorus_status) on the gossip thread and waits for it; never waits on the
// network, only for the thread's queue.
template <class F>
chorus_status Node::run_sync(chorus_error *err, F &&fn) {
  if (on_gossip_thread()) return fn();
  if (stopping_.load()) return fail(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin is stopping");
  std::promise<chorus_status> done;
  auto result = done.get_future();
  asio::post(io_, [&] {
    try {
      done.set_value(fn());
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    // After stop the thread is gone and the task never runs (it cannot run later either).
    if (stopped_.load() && result.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return fail(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin stopped");
  }
  return result.get();
}

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
  // Verifier threads only pay off with cores to spare: each RPC then costs two more thread hand-offs
  // (a wake-up each, dearer still in a VM), and with two cores or fewer the p2p and gossip threads
  // already compete for them. Measured on a 2-vCPU VM at saturation: 65 us of receiver CPU per
  // message with the router verifying on the gossip thread, 78 us through a verifier thread.
  if (s_.signature_policy == SignaturePolicy::kStrictSign) {
    const unsigned cores = std::thread::hardware_concurrency();
    const unsigned verifiers = cores > 2 ? std::min(cores - 1, 4u) : 0;
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
    router_->join(topic);
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
  e.hop_count = hop_count;
  const std::string text = build_envelope(e);
  return publish_raw(topic, Bytes(text.begin(), text.end()), id, err);
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

// ---- RouterIo ----

void Node::send(const PeerId &peer, Rpc rpc) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second->out_stream == 0) {
    m_.rpcs_dropped.inc("no_stream");
    return;
  }
  Peer &p = *it->second;
  Bytes frame;
  append_frame(frame, rpc);
  if (p.queued_bytes + frame.size() > s_.peer_queue_bytes) {
    m_.rpcs_dropped.inc("queue_full");
    return;
  }
  p.queued_bytes += frame.size();
  p.queue.push_back(std::move(frame));
  flush(p);
}

void Node::flush(Peer &p) {
  if (p.blocked) return;
  auto *t = p2p_.table();
  while (!p.queue.empty()) {
    const Bytes &f = p.queue.front();
    const chorus_status st = t->write(p2p_.self(), p.out_stream, f.data(), f.size());
    if (st == CHORUS_E_BUSY) {
      p.blocked = true;  // on_writable resumes
      return;
    }
    if (st != CHORUS_OK) m_.rpcs_dropped.inc("stream_error");
    p.queued_bytes -= f.size();
    p.queue.pop_front();
  }
}

void Node::writable(uint64_t stream) {
  auto it = outbound_.find(stream);
  if (it == outbound_.end()) return;
  auto p = peers_.find(it->second);
  if (p == peers_.end() || p->second->out_stream != stream) return;
  p->second->blocked = false;
  flush(*p->second);
}

static chorus_pubsub_message c_message(const std::string &topic, const Bytes &data, const std::optional<Bytes> &from,
                                       const std::string &from_text, const std::optional<Bytes> &seqno, const Bytes &id,
                                       const std::string &received_from, bool local, const char *type) {
  chorus_pubsub_message msg{};
  msg.struct_size = sizeof msg;
  msg.local = local ? 1 : 0;
  msg.topic = topic.c_str();
  msg.data = data.data();
  msg.data_len = data.size();
  msg.from = from ? from->data() : nullptr;
  msg.from_len = from ? from->size() : 0;
  msg.from_text = from_text.c_str();
  msg.seqno = seqno ? seqno->data() : nullptr;
  msg.seqno_len = seqno ? seqno->size() : 0;
  msg.message_id = id.data();
  msg.message_id_len = id.size();
  msg.received_from = received_from.c_str();
  msg.type = type;
  return msg;
}

const std::string &Node::peer_text(const Bytes &peer) {
  static const std::string kNone;
  auto it = peer_texts_.find(peer);
  if (it != peer_texts_.end()) return it->second;
  auto id = PeerId::from_bytes(peer, nullptr);
  if (!id) return kNone;
  if (peer_texts_.size() >= 4096) peer_texts_.clear();
  return peer_texts_.emplace(peer, id->to_base58()).first->second;
}

Validation Node::validate(const ReceivedMessage &m) {
  static const Bytes kEmpty;
  const Bytes &data = m.message.data ? *m.message.data : kEmpty;
  // HMMM loops: an envelope relayed more than hop_limit times is dropped (not the sender's fault).
  if (!m.local && !data.empty() && data[0] == '{') {
    static constexpr std::string_view kKey = "\"hop_count\"";
    const std::string_view text(reinterpret_cast<const char *>(data.data()), data.size());
    if (text.find(kKey) != std::string_view::npos) {
      auto e = parse_envelope(text, nullptr);
      if (e && e->hop_count > s_.hop_limit) {
        ignore_reason_ = "hop_limit";
        return Validation::kIgnore;
      }
    }
  }
  std::lock_guard lk(vals_mu_);
  bool any = false;
  for (const auto &v : vals_)
    if (v.live && v.topic == m.message.topic) any = true;
  if (!any) return Validation::kAccept;
  static const std::string kNone;
  const std::string &from_text = m.message.from ? peer_text(*m.message.from) : kNone;
  const std::string &received = peer_text(m.received_from.bytes());
  std::string type;
  if (auto e = parse_envelope(std::string_view(reinterpret_cast<const char *>(data.data()), data.size()), nullptr)) type = e->type;
  const chorus_pubsub_message msg = c_message(m.message.topic, data, m.message.from, from_text, m.message.seqno, m.id,
                                              received, m.local, type.c_str());
  Validation verdict = Validation::kAccept;
  ++vals_depth_;
  ++validator_depth_;
  for (auto &v : vals_) {
    if (!v.live || v.topic != m.message.topic) continue;
    const int r = v.fn(msg);
    if (r == CHORUS_PUBSUB_REJECT) {
      verdict = Validation::kReject;
      break;
    }
    if (r != CHORUS_PUBSUB_ACCEPT) verdict = Validation::kIgnore;  // keep looking for a REJECT
  }
  --validator_depth_;
  if (--vals_depth_ == 0) std::erase_if(vals_, [](const Val &v) { return !v.live; });
  return verdict;
}

void Node::deliver(const ReceivedMessage &m) {
  Delivery d;
  d.topic = m.message.topic;
  if (m.message.data) d.data = *m.message.data;
  d.from = m.message.from;
  d.seqno = m.message.seqno;
  d.id = m.id;
  d.received_from = m.received_from;
  d.local = m.local;
  deliveries_.push_back(std::move(d));
  schedule_drain();
}

bool Node::sign(BytesView data, uint8_t signature[64]) {
  return p2p_.table()->sign(p2p_.self(), data.data(), data.size(), signature) == CHORUS_OK;
}

void Node::connect_to(const std::vector<PeerInfo> &peers) {
  auto *t = p2p_.table();
  for (const auto &info : peers) {
    auto id = PeerId::from_bytes(info.peer_id, nullptr);
    if (!id || *id == self_ || t->is_connected(p2p_.self(), id->bytes().data(), id->bytes().size()) != 0) continue;
    const std::string text = id->to_base58();
    // Only peers whose addresses the address book already holds can be reached this way.
    t->connect(p2p_.self(), text.c_str(), text.size(), 0, [](void *, chorus_status, const char *, const chorus_error *) {},
               nullptr, nullptr);
  }
}

uint64_t Node::now_ms() { return host_.now_ms(); }

void Node::count(RouterEvent e, const std::string &topic, const char *reason) {
  const std::string &l = label(topic);
  switch (e) {
    case RouterEvent::kPublished: m_.published.inc(l); break;
    case RouterEvent::kDelivered: m_.delivered.inc(l); break;
    case RouterEvent::kDuplicate: m_.duplicate.inc(l); break;
    case RouterEvent::kRejected: m_.rejected.inc(l, reason != nullptr ? reason : ""); break;
    case RouterEvent::kIgnored:
      m_.ignored.inc(l, ignore_reason_ != nullptr ? ignore_reason_ : (reason != nullptr ? reason : ""));
      ignore_reason_ = nullptr;
      break;
    case RouterEvent::kIwantBroken: m_.ignored.inc(l, "iwant_broken"); break;
    case RouterEvent::kGraftBackoff: m_.rejected.inc(l, "graft_backoff"); break;
  }
}

// ---- delivery ----

void Node::drain_deliveries() {
  drain_posted_ = false;
  // Handlers may publish (appending here): take what is queued now, the rest runs next round.
  std::deque<Delivery> batch;
  batch.swap(deliveries_);
  for (const auto &d : batch) {
    if (d.local && d.topic == probe_topic_) {
      const std::string expected = "probe " + std::to_string(probe_nonce_);
      if (probe_outstanding_ && std::string_view(reinterpret_cast<const char *>(d.data.data()), d.data.size()) == expected) {
        probe_outstanding_ = false;
        probe_timeout_.cancel();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - probe_sent_).count();
        m_.probe_latency.observe(s);
        probe_ok_ = true;
        probe_note_ = "loopback probe delivered in " + std::to_string(static_cast<int>(s * 1e6)) + " us";
        report_health();
      }
      continue;
    }
    dispatch(d);
  }
}

void Node::dispatch(const Delivery &d) {
  std::lock_guard lk(subs_mu_);
  const size_t n = subs_.size();
  bool any = false;
  auto it = subs_.begin();
  for (size_t i = 0; i < n; ++i, ++it)
    if (it->live && it->topic == d.topic) any = true;
  if (!any) return;
  std::string type;
  if (auto e = parse_envelope(std::string_view(reinterpret_cast<const char *>(d.data.data()), d.data.size()), nullptr))
    type = e->type;
  static const std::string kNone;
  const std::string &from_text = d.from ? peer_text(*d.from) : kNone;
  const std::string &received_from = d.local ? self_text_ : peer_text(d.received_from.bytes());
  const chorus_pubsub_message msg =
      c_message(d.topic, d.data, d.from, from_text, d.seqno, d.id, received_from, d.local, type.c_str());
  ++subs_depth_;
  it = subs_.begin();
  for (size_t i = 0; i < n; ++i, ++it) {  // subscriptions added by a handler start with the next message
    if (!it->live || it->topic != d.topic) continue;
    try {
      it->fn(msg);
    } catch (const std::exception &e) {
      host_.warn(std::string("gossip: a message handler threw: ") + e.what());
    }
  }
  if (--subs_depth_ == 0) std::erase_if(subs_, [](const Sub &s) { return !s.live; });
}

// ---- p2p callbacks (p2p thread): copy and post ----

void Node::on_p2p_event(void *arg, const chorus_p2p_event *ev) {
  auto *n = static_cast<Node *>(arg);
  if (ev == nullptr) return;
  auto id = peer_of(ev->peer, ev->peer_len);
  if (!id) return;
  switch (ev->type) {
    case CHORUS_P2P_EVENT_CONNECTED:
      n->post([n, id = *id, text = std::string(ev->peer_text != nullptr ? ev->peer_text : ""),
               addr = std::string(ev->addr != nullptr ? ev->addr : ""), out = ev->direction == CHORUS_P2P_DIR_OUTBOUND] {
        n->peer_connected(id, text, addr, out);
      });
      break;
    case CHORUS_P2P_EVENT_IDENTIFIED:
      n->post([n, id = *id, j = std::string(ev->identify_json != nullptr ? ev->identify_json : "{}")] {
        n->peer_identified(id, j);
      });
      break;
    case CHORUS_P2P_EVENT_DISCONNECTED:
      n->post([n, id = *id] { n->peer_disconnected(id); });
      break;
    default:
      break;
  }
}

void Node::fill_handler(chorus_p2p_stream_handler *h, StreamCtx *ctx) {
  h->arg = ctx;
  h->on_data = &Node::on_data;
  h->on_eof = nullptr;
  h->on_writable = &Node::on_writable;
  h->on_closed = &Node::on_closed;
}

chorus_status Node::on_accept(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) {
  auto n = static_cast<std::weak_ptr<Node> *>(arg)->lock();
  if (!n || n->stopping_.load() || info == nullptr) return CHORUS_E_UNAVAILABLE;
  auto id = peer_of(info->peer, info->peer_len);
  if (!id) return CHORUS_E_INVALID_ARG;
  auto *ctx = new StreamCtx{n, *id, info->peer_text != nullptr ? info->peer_text : "", true};
  fill_handler(h, ctx);
  Node *raw = n.get();
  raw->post([raw, stream = info->stream, id = *id, text = ctx->peer_text, incoming = ctx->incoming,
             addr = std::string(info->remote_addr != nullptr ? info->remote_addr : "")] {
    raw->inbound_opened(stream, id, text, addr, incoming);
  });
  return CHORUS_OK;
}

void Node::on_open(void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *err) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  auto n = ctx->node.lock();
  if (st != CHORUS_OK || info == nullptr) {
    if (n) {
      Node *raw = n.get();
      raw->post([raw, id = ctx->peer, why = std::string(err != nullptr ? err->message : chorus_status_name(st))] {
        raw->outbound_failed(id, why);
      });
    }
    delete ctx;  // the handler is never called after a failed open
    return;
  }
  if (!n) return;  // on_closed still follows and frees ctx
  Node *raw = n.get();
  raw->post([raw, id = ctx->peer, stream = info->stream, proto = std::string(info->protocol != nullptr ? info->protocol : "")] {
    raw->outbound_opened(id, stream, proto);
  });
}

void Node::on_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  if (!ctx->inbound) return;  // our streams are write-only; a peer writing back is ignored
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  Incoming &q = *ctx->incoming;
  bool schedule = false;
  {
    std::lock_guard lk(q.mu);
    q.bytes.insert(q.bytes.end(), data, data + len);
    q.size.fetch_add(len, std::memory_order_relaxed);
    schedule = !q.scheduled;
    q.scheduled = true;
  }
  if (!schedule) return;
  raw->post([raw, stream, incoming = ctx->incoming] {
    Bytes bytes;
    {
      std::lock_guard lk(incoming->mu);
      bytes.swap(incoming->bytes);
      incoming->scheduled = false;
    }
    raw->inbound_data(stream, std::move(bytes));
  });
}

void Node::on_writable(void *arg, uint64_t stream) {
  auto n = static_cast<StreamCtx *>(arg)->node.lock();
  if (!n) return;
  Node *raw = n.get();
  raw->post([raw, stream] { raw->writable(stream); });
}

void Node::on_closed(void *arg, uint64_t stream, chorus_status, const char *) {
  std::unique_ptr<StreamCtx> ctx(static_cast<StreamCtx *>(arg));
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  raw->post([raw, stream, inbound = ctx->inbound] { raw->stream_closed(stream, inbound); });
}

// ---- peers and streams (gossip thread) ----

void Node::peer_connected(const PeerId &id, std::string text, std::string addr, bool outbound) {
  if (id == self_) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->outbound = outbound;
    slot->ip = ip_of(addr);
  }
  slot->text = std::move(text);
  slot->connected = true;
  maybe_open(id);
}

void Node::peer_identified(const PeerId &id, const std::string &identify_json) {
  if (id == self_) return;
  auto j = json::parse(identify_json, nullptr, false);
  bool pubsub = false;
  if (j.is_object() && j.contains("protocols") && j["protocols"].is_array())
    for (const auto &p : j["protocols"])
      if (p.is_string() && protocol_from(p.get<std::string>())) pubsub = true;
  if (!pubsub) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->text = id.to_base58();
  }
  slot->connected = true;
  slot->speaks_pubsub = true;
  maybe_open(id);
}

void Node::peer_disconnected(const PeerId &id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer &p = *it->second;
  if (p.in_router) router_->remove_peer(id);
  if (p.out_stream != 0) outbound_.erase(p.out_stream);
  if (p.in_stream != 0) inbound_.erase(p.in_stream);
  peers_.erase(it);
}

void Node::maybe_open(const PeerId &id) {
  if (stopping_.load()) return;
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer &p = *it->second;
  if (p.out_stream != 0 || p.opening || p.open_failed) return;
  if (!p.speaks_pubsub && p.in_stream == 0) return;
  p.opening = true;
  auto *ctx = new StreamCtx{weak_from_this(), id, p.text, false};
  chorus_p2p_stream_handler h{};
  h.struct_size = sizeof h;
  fill_handler(&h, ctx);
  chorus::ErrorBuffer err;
  const chorus_status st = p2p_.table()->open_stream(p2p_.self(), id.bytes().data(), id.bytes().size(), kPubsubProtocols,
                                                     std::size(kPubsubProtocols), &h, 0, &Node::on_open, ctx, err.get());
  if (st != CHORUS_OK) {
    delete ctx;
    p.opening = false;
    host_.debug("gossip: cannot open a pubsub stream to " + p.text + ": " + std::string(err.text()));
  }
}

void Node::outbound_opened(const PeerId &id, uint64_t stream, std::string protocol) {
  auto it = peers_.find(id);
  const auto proto = protocol_from(protocol);
  if (it == peers_.end() || stopping_.load() || !proto) {  // gone meanwhile
    p2p_.table()->reset(p2p_.self(), stream);
    return;
  }
  Peer &p = *it->second;
  p.opening = false;
  p.out_stream = stream;
  outbound_[stream] = id;
  p.in_router = true;
  if (host_.log_enabled(chorus::LogLevel::debug)) host_.debug("gossip: peer " + p.text + " speaks " + protocol);
  router_->add_peer(id, *proto, p.outbound, p.ip);
  // Frames that arrived before the router knew the peer.
  if (p.in_stream != 0) {
    const uint64_t stream = p.in_stream;
    parse_frames(stream);
    auto in = inbound_.find(stream);
    if (in != inbound_.end()) update_read_pause(stream, *in->second);
  }
}

void Node::outbound_failed(const PeerId &id, const std::string &why) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  it->second->opening = false;
  it->second->open_failed = true;
  host_.debug("gossip: no pubsub stream to " + it->second->text + ": " + why);
}

void Node::inbound_opened(uint64_t stream, const PeerId &id, std::string text, std::string addr,
                          std::shared_ptr<Incoming> incoming) {
  if (stopping_.load()) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->text = std::move(text);
    slot->ip = ip_of(addr);
    slot->connected = true;
  }
  Peer &p = *slot;
  if (p.in_stream != 0 && p.in_stream != stream) {  // a newer stream replaces the old one
    inbound_.erase(p.in_stream);
    p2p_.table()->reset(p2p_.self(), p.in_stream);
  }
  p.in_stream = stream;
  p.open_failed = false;  // it speaks pubsub after all
  auto in = std::make_unique<Inbound>();
  in->peer = id;
  in->incoming = std::move(incoming);
  inbound_[stream] = std::move(in);
  maybe_open(id);
}

void Node::inbound_data(uint64_t stream, Bytes bytes) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  in.incoming->size.fetch_sub(bytes.size(), std::memory_order_relaxed);
  if (in.buf.empty()) in.buf = std::move(bytes);
  else in.buf.insert(in.buf.end(), bytes.begin(), bytes.end());
  parse_frames(stream);
  it = inbound_.find(stream);
  if (it != inbound_.end()) update_read_pause(stream, *it->second);
}

void Node::update_read_pause(uint64_t stream, Inbound &in) {
  auto peer = peers_.find(in.peer);
  const bool waiting = peer == peers_.end() || !peer->second->in_router;
  const size_t backlog = in.incoming->size.load(std::memory_order_relaxed) + in.buf.size() + verifying_bytes_;
  const size_t frame = s_.max_rpc_bytes();
  bool pause = in.paused;
  if (backlog > 2 * frame || (waiting && in.buf.size() > frame)) pause = true;
  else if (backlog < frame / 2 && !(waiting && in.buf.size() > frame)) pause = false;
  if (pause == in.paused) return;
  in.paused = pause;
  p2p_.table()->set_read_paused(p2p_.self(), stream, pause ? 1 : 0);
}

void Node::parse_frames(uint64_t stream) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  auto peer = peers_.find(in.peer);
  if (peer == peers_.end()) return;
  if (!peer->second->in_router) return;  // held until our stream to the peer is open
  RpcLimits limits;
  limits.max_rpc_bytes = s_.max_rpc_bytes();
  limits.max_message_bytes = s_.max_message_bytes;
  limits.max_subscriptions = s_.max_topics;
  size_t off = 0;
  const PeerId from = in.peer;
  while (off < in.buf.size()) {
    uint64_t len = 0;
    size_t used = 0;
    const auto st = p2p::read_uvarint(BytesView(in.buf).subspan(off), len, used);
    if (st == p2p::VarintStatus::need_more) break;
    if (st == p2p::VarintStatus::invalid) return reject_stream(stream, "bad_frame", "invalid length prefix");
    if (len > limits.max_rpc_bytes)
      return reject_stream(stream, "too_large", "a frame of " + std::to_string(len) + " bytes");
    if (in.buf.size() - off - used < len) break;
    std::string why;
    auto rpc = decode_rpc(BytesView(in.buf).subspan(off + used, len), limits, &why);
    if (!rpc) return reject_stream(stream, "malformed", why);
    off += used + len;
    route_rpc(from, std::move(*rpc));
    // handle_rpc may have removed the peer or this stream (it never does today; stay safe).
    it = inbound_.find(stream);
    if (it == inbound_.end()) return;
  }
  Bytes &buf = it->second->buf;
  if (off == buf.size()) buf.clear();
  else if (off > 0) buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(off));
}

void Node::route_rpc(const PeerId &from, Rpc rpc) {
  if (verify_threads_.empty() || rpc.publish.empty()) return router_->handle_rpc(from, std::move(rpc));
  const uint64_t now = host_.now_ms();
  while (!verified_order_.empty() && verified_order_.front().first <= now) {
    verified_ids_.erase(verified_order_.front().second);
    verified_order_.pop_front();
  }
  bool all_known = true;
  for (const auto &m : rpc.publish) {
    const Bytes id = router_->message_id(m);
    if (verified_ids_.count(std::string(id.begin(), id.end())) == 0) {
      all_known = false;
      break;
    }
  }
  if (all_known) return router_->handle_rpc(from, std::move(rpc));  // copies: no need to verify again
  size_t bytes = 0;
  for (const auto &m : rpc.publish) bytes += (m.data ? m.data->size() : 0) + 128;
  verifying_bytes_ += bytes;
  const uint64_t seq = verify_next_seq_++;
  asio::post(verify_io_, [this, seq, from, rpc = std::move(rpc), bytes]() mutable {
    bool ok = true;
    std::string why;
    for (const auto &m : rpc.publish)
      if (check_message(m, SignaturePolicy::kStrictSign, true, &why)) {
        ok = false;  // the router verifies again and rejects it with the reason
        break;
      }
    post([this, seq, from, rpc = std::move(rpc), ok, bytes]() mutable { verified(seq, from, std::move(rpc), ok, bytes); });
  });
}

void Node::verified(uint64_t seq, const PeerId &from, Rpc rpc, bool all_ok, size_t bytes) {
  verify_done_.emplace(seq, VerifiedRpc{from, std::move(rpc), all_ok, bytes});
  for (auto it = verify_done_.begin(); it != verify_done_.end() && it->first == verify_next_route_;
       it = verify_done_.erase(it), ++verify_next_route_) {
    VerifiedRpc &v = it->second;
    verifying_bytes_ -= v.bytes;
    if (v.all_ok) {
      // Remembered for half the seen window, so the router still knows every id we skip for.
      const uint64_t expiry = host_.now_ms() + s_.router.seen_ttl_ms / 2;
      for (const auto &m : v.rpc.publish) {
        const Bytes id = router_->message_id(m);
        std::string key(id.begin(), id.end());
        if (verified_ids_.insert(key).second) verified_order_.emplace_back(expiry, std::move(key));
      }
    }
    auto p = peers_.find(v.from);
    if (p != peers_.end() && p->second->in_router) router_->handle_rpc(v.from, std::move(v.rpc), v.all_ok);
  }
  // Streams paused for the verifiers' backlog may read again.
  for (auto &[stream, in] : inbound_)
    if (in->paused) update_read_pause(stream, *in);
}

void Node::reject_stream(uint64_t stream, const char *reason, const std::string &why) {
  m_.rpcs_rejected.inc(reason);
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  auto p = peers_.find(it->second->peer);
  if (p != peers_.end()) {
    host_.debug("gossip: reset the pubsub stream of " + p->second->text + ": " + why);
    if (p->second->in_stream == stream) p->second->in_stream = 0;
  }
  inbound_.erase(it);
  p2p_.table()->reset(p2p_.self(), stream);
}

void Node::stream_closed(uint64_t stream, bool inbound) {
  if (inbound) {
    auto it = inbound_.find(stream);
    if (it == inbound_.end()) return;
    auto p = peers_.find(it->second->peer);
    if (p != peers_.end() && p->second->in_stream == stream) p->second->in_stream = 0;
    inbound_.erase(it);
    return;
  }
  auto it = outbound_.find(stream);
  if (it == outbound_.end()) return;
  const PeerId id = it->second;
  outbound_.erase(it);
  auto p = peers_.find(id);
  if (p == peers_.end() || p->second->out_stream != stream) return;
  Peer &peer = *p->second;
  if (peer.in_router) router_->remove_peer(id);
  peer.in_router = false;
  peer.out_stream = 0;
  peer.queue.clear();
  peer.queued_bytes = 0;
  peer.blocked = false;
}

// ---- timers ----

void Node::schedule_heartbeat(uint64_t ms) {
  heartbeat_timer_.expires_after(std::chrono::milliseconds(ms));
  heartbeat_timer_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    router_->heartbeat();
    update_gauges();
    // A peer whose stream from us closed while it stays connected (it reset the stream, say) gets a
    // new one, at most once a heartbeat.
    for (const auto &[id, p] : peers_)
      if (p->connected && p->out_stream == 0 && !p->opening && !p->open_failed) maybe_open(id);
    schedule_drain();
    schedule_heartbeat(s_.router.heartbeat_ms);
  });
}

void Node::update_gauges() {
  std::map<std::string, std::pair<size_t, size_t>> now;
  for (const auto &t : router_->topics()) {
    auto &v = now[label(t.topic)];
    v.first += t.mesh_peers;
    v.second += t.peers;
  }
  for (const auto &[l, v] : last_gauges_)
    if (now.count(l) == 0) now[l] = {0, 0};
  for (const auto &[l, v] : now) {
    m_.mesh_peers.set(l, static_cast<double>(v.first));
    m_.topic_peers.set(l, static_cast<double>(v.second));
  }
  last_gauges_ = std::move(now);
  const auto peers = router_->peers();
  m_.peers.set(static_cast<double>(peers.size()));
  for (const auto &p : peers) m_.peer_score.observe(p.score);
}

void Node::schedule_probe(uint64_t ms) {
  probe_timer_.expires_after(std::chrono::milliseconds(ms));
  probe_timer_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    send_probe();
    schedule_probe(s_.probe.interval_ms);
  });
}

void Node::send_probe() {
  if (probe_outstanding_) return;  // its timeout is still running
  ++probe_nonce_;
  const std::string payload = "probe " + std::to_string(probe_nonce_);
  probe_outstanding_ = true;
  probe_sent_ = std::chrono::steady_clock::now();
  chorus::ErrorBuffer err;
  if (do_publish(probe_topic_, Bytes(payload.begin(), payload.end()), nullptr, err.get()) != CHORUS_OK) {
    probe_outstanding_ = false;
    probe_ok_ = false;
    probe_note_ = "loopback probe could not publish: " + std::string(err.text());
    m_.probe_failures.inc();
    report_health();
    return;
  }
  probe_timeout_.expires_after(std::chrono::milliseconds(s_.probe.timeout_ms));
  probe_timeout_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || !probe_outstanding_) return;
    probe_outstanding_ = false;
    probe_ok_ = false;
    probe_note_ = "loopback probe not delivered within " + std::to_string(s_.probe.timeout_ms) + " ms";
    m_.probe_failures.inc();
    report_health();
  });
}

void Node::report_health() {
  size_t mesh = 0, joined = 0;
  for (const auto &t : router_->topics()) {
    if (t.topic == probe_topic_ || !t.subscribed) continue;
    ++joined;
    mesh += t.mesh_peers;
  }
  size_t streams = 0;
  for (const auto &[id, p] : peers_)
    if (p->in_router) ++streams;
  const std::string summary = std::to_string(streams) + " gossip peer(s), " + std::to_string(mesh) +
                              " mesh link(s) over " + std::to_string(joined) + " topic(s)";
  if (!s_.probe.enabled) {
    host_.report_health(chorus::Health::ok, summary + " (loopback probe off)");
  } else if (probe_ok_) {
    host_.report_health(chorus::Health::ok, probe_note_ + "; " + summary);
  } else {
    host_.report_health(chorus::Health::degraded, probe_note_ + "; " + summary);
  }
}

}  // namespace chorus::gossip

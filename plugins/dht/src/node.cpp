// The node's lifecycle, its p2p glue (events, stream callbacks) and the outbound RPC client. The
// server side is node_server.cpp; lookups, operations and timers are node_ops.cpp.
#include "node.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>

#include <boost/asio/post.hpp>
#include <chorus/services/dht_v1.h>
#include <nlohmann/json.hpp>

#include "node_internal.hpp"
#include "wire/multiaddr.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {

namespace asio = boost::asio;
using json = nlohmann::json;

NodeMetrics define_metrics(chorus::Host &host) {
  NodeMetrics m;
  m.requests = host.counter("chorus_dht_requests_total", "Inbound kad requests, by type and result", {"type", "result"});
  m.outbound = host.counter("chorus_dht_outbound_requests_total", "Outbound kad requests, by type and result",
                            {"type", "result"});
  m.lookups = host.counter("chorus_dht_lookups_total", "Iterative lookups, by kind and how they ended", {"kind", "end"});
  m.frames_rejected = host.counter("chorus_dht_frames_rejected_total",
                                   "Inbound frames that reset their stream, by reason", {"reason"});
  m.operations = host.counter("chorus_dht_operations_total", "Service operations, by operation and status",
                              {"op", "status"});
  m.probe_failures = host.counter("chorus_dht_probe_failures_total", "Put/get health probes that failed");
  m.evictions = host.counter("chorus_dht_routing_evictions_total",
                             "Peers removed from the routing table, by reason (no_answer, not_kad, ping_failed)",
                             {"reason"});
  m.catchup = host.counter("chorus_dht_catchup_puts_total",
                           "Records put again when the routing table grew after a put that reached too few peers, by result "
                           "(queued, replicated, short, dropped)",
                           {"result"});
  m.rechecks = host.counter("chorus_dht_rechecks_total",
                            "Checks of peers outside the routing table, by result (readded, no_answer, gave_up, bucket_full)",
                            {"result"});
  m.lookup_seconds = host.histogram("chorus_dht_lookup_duration_seconds", "Duration of iterative lookups, by kind",
                                    {"kind"}, {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  m.lookup_hops = host.histogram("chorus_dht_lookup_hops",
                                 "Hops of iterative lookups (the longest chain of peers that led to an answering one), by kind",
                                 {"kind"}, {1, 2, 3, 4, 5, 6, 8, 10, 15});
  m.probe_seconds = host.histogram("chorus_dht_probe_latency_seconds", "Put/get health probe: put then get", {},
                                   {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5});
  m.routing_peers = host.gauge("chorus_dht_routing_table_peers", "Peers in the routing table");
  m.records = host.gauge("chorus_dht_store_records", "Value records in the store");
  m.providers = host.gauge("chorus_dht_store_providers", "Provider records in the store");
  return m;
}

chorus_status check_record_key(BytesView key, chorus_error *err) {
  if (key.empty()) return fail(err, CHORUS_E_INVALID_ARG, "dht: the key is empty");
  if (key.size() > CHORUS_DHT_KEY_MAX)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: the key is longer than " + std::to_string(CHORUS_DHT_KEY_MAX) + " bytes");
  if (key_namespace(key) == Namespace::kUnknown)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: the key is in no known namespace (use /pk/<peer id> or /chorus/<name>)");
  return CHORUS_OK;
}

chorus_status fail(chorus_error *err, chorus_status code, const std::string &message) {
  chorus::set_error(err, code, message);
  return code;
}

std::string text_of(BytesView b) { return std::string(reinterpret_cast<const char *>(b.data()), b.size()); }

// The p2p host's listen addresses (binary, without /p2p/).
std::vector<Bytes> listen_addrs(const chorus_p2p_host_v1 &t, void *self) {
  std::vector<Bytes> out;
  chorus_buf buf{};
  if (t.get_info_json == nullptr || t.get_info_json(self, &buf, nullptr) != CHORUS_OK) return out;
  auto info = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
  if (buf.release != nullptr) buf.release(&buf);
  if (info.is_object() && info.contains("addrs") && info["addrs"].is_array())
    for (const auto &a : info["addrs"])
      if (a.is_string())
        if (auto ma = p2p::Multiaddr::parse(a.get<std::string>(), nullptr)) out.push_back(ma->without_peer_id().bytes());
  return out;
}

// ---- construction and lifecycle ----

Node::Node(chorus::Host &host, Settings settings, NodeMetrics metrics, P2P p2p, std::string state_dir, Backbeat bb)
    : host_(host), s_(std::move(settings)), m_(std::move(metrics)), p2p_(std::move(p2p)), bb_(std::move(bb)),
      state_dir_(std::move(state_dir)),
      protocol_(s_.protocol_id()), work_(io_.get_executor()), store_work_(store_io_.get_executor()), refresh_timer_(io_),
      republish_timer_(io_), reprovide_timer_(io_), sweep_timer_(io_), probe_timer_(io_), recheck_timer_(io_), catchup_timer_(io_) {}

Node::~Node() { stop(); }

int64_t Node::wall_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void Node::store_then(std::function<void()> write, std::function<void(bool ok, const std::string &why)> done) {
  asio::post(store_io_, [this, write = std::move(write), done = std::move(done)]() mutable {
    bool ok = true;
    std::string why;
    try {
      write();
    } catch (const std::exception &e) {
      ok = false;
      why = e.what();
    }
    post([done = std::move(done), ok, why] { done(ok, why); });
  });
}

chorus_status Node::start_op(const char *op, Done done, chorus_error *err, std::function<void(uint64_t)> body) {
  if (!done) return fail(err, CHORUS_E_INVALID_ARG, std::string("dht: ") + op + " needs a completion");
  if (stopping_.load() || !thread_.joinable()) return fail(err, CHORUS_E_UNAVAILABLE, "dht: the plugin is stopping");
  std::string name = op;
  post([this, name, done = std::move(done), body = std::move(body)]() mutable {
    const uint64_t id = ++last_pending_;
    std::string tracked = track_start(name, id);
    pending_.emplace(id, [this, name, tracked, done = std::move(done)](chorus_status st, const std::string &msg,
                                                                       const Bytes &data) {
      m_.operations.inc(name, chorus_status_name(st));
      track_end(tracked, st, msg);
      done(st, msg, data);
    });
    if (stopping_.load()) return complete(id, CHORUS_E_CANCELLED, "dht: the plugin stopped");
    body(id);
  });
  return CHORUS_OK;
}

// Writes (put_value, provide, store) are BACKBEAT dht_store operations when BACKBEAT runs, with the
// guideline's budget for a DHT store (docs/protocols.md, BACKBEAT operations). Returns the operation id
// ("" = not tracked). Tracking is best effort: a refusal by BACKBEAT never fails the write.
std::string Node::track_start(const std::string &op, uint64_t id) {
  if (!bb_ || (op != "put_value" && op != "provide" && op != "store")) return {};
  constexpr uint32_t kDhtStoreBudgetBeats = 4;
  std::string op_id = "dht-" + op + "-" + std::to_string(id) + "-" + self_text_.substr(self_text_.size() > 8 ? self_text_.size() - 8 : 0);
  const char *type = CHORUS_BACKBEAT_OP_DHT_STORE;
  if (bb_.table()->start_operation(bb_.self(), op_id.data(), op_id.size(), type, std::strlen(type), kDhtStoreBudgetBeats,
                                   nullptr, 0, nullptr) != CHORUS_OK)
    return {};
  bb_.table()->update_phase(bb_.self(), op_id.data(), op_id.size(), CHORUS_BACKBEAT_PHASE_EXECUTING,
                            static_cast<uint32_t>(table_ ? table_->size() : 0), nullptr);
  return op_id;
}

void Node::track_end(const std::string &op_id, chorus_status st, const std::string &msg) {
  if (op_id.empty() || !bb_) return;
  if (st == CHORUS_OK)
    bb_.table()->complete_operation(bb_.self(), op_id.data(), op_id.size(),
                                    static_cast<uint32_t>(table_ ? table_->size() : 0), nullptr);
  else
    bb_.table()->fail_operation(bb_.self(), op_id.data(), op_id.size(), msg.data(), msg.size(), nullptr);
}

void Node::complete(uint64_t op_id, chorus_status status, const std::string &message, const Bytes &data) {
  auto it = pending_.find(op_id);
  if (it == pending_.end()) return;
  Done done = std::move(it->second);
  pending_.erase(it);
  if (auto t = op_timers_.find(op_id); t != op_timers_.end()) {
    t->second->cancel();
    op_timers_.erase(t);
  }
  try {
    done(status, message, data);
  } catch (const std::exception &e) {
    host_.warn(std::string("dht: a completion threw: ") + e.what());
  }
}

uint64_t Node::internal_op(Done done) {
  const uint64_t id = ++last_pending_;
  pending_.emplace(id, std::move(done));
  return id;
}

void Node::arm_timeout(uint64_t op_id, uint64_t timeout_ms, const std::string &what) {
  auto timer = std::make_unique<asio::steady_timer>(io_);
  timer->expires_after(std::chrono::milliseconds(timeout_ms));
  timer->async_wait([this, op_id, what, timeout_ms](const boost::system::error_code &ec) {
    if (ec) return;
    complete(op_id, CHORUS_E_TIMEOUT, "dht: " + what + " did not finish within " + std::to_string(timeout_ms) + " ms");
  });
  op_timers_[op_id] = std::move(timer);
}

void Node::start() {
  auto *t = p2p_.table();
  uint8_t id[64];
  size_t id_len = 0;
  char text[128];
  if (t->local_peer_id(p2p_.self(), id, sizeof id, &id_len, text, sizeof text, nullptr) != CHORUS_OK)
    throw chorus::Error(CHORUS_E_UNAVAILABLE, "dht: chorus.p2p.host has no local peer id");
  auto self = PeerId::from_bytes(BytesView(id, id_len), nullptr);
  if (!self) throw chorus::Error(CHORUS_E_INTERNAL, "dht: the local peer id does not parse");
  self_ = *self;
  self_text_ = text;

  // The store: <state_dir>/<state_subdir>/records.db (the directory 0700, the file 0600).
  if (state_dir_.empty()) throw chorus::Error(CHORUS_E_CONFIG, "dht: the host has no state_dir for the record store");
  const std::string dir = state_dir_ + "/" + s_.state_subdir;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw chorus::Error(CHORUS_E_IO, "dht: cannot create " + dir + ": " + std::strerror(errno));
  StoreOptions so;
  so.path = dir + "/records.db";
  so.record_ttl_ms = static_cast<int64_t>(s_.record_ttl_ms);
  so.provider_ttl_ms = static_cast<int64_t>(s_.provider_ttl_ms);
  try {
    store_ = RecordStore::open(so);
  } catch (const StoreError &e) {
    throw chorus::Error(CHORUS_E_IO, std::string("dht: ") + e.what());
  }
  table_ = std::make_unique<RoutingTable>(self_, s_.k);
  RecheckOptions ro;
  ro.min_interval_ms = static_cast<int64_t>(s_.recheck_interval_ms);
  ro.max_interval_ms = static_cast<int64_t>(s_.recheck_max_interval_ms);
  ro.quiet_ms = static_cast<int64_t>(s_.refresh_interval_ms);  // a dropped peer's requests: as often as before
  recheck_ = std::make_unique<RecheckSchedule>(ro);
  // Role keys (<dir>/roles/*.key) and the recipients of roles held elsewhere (config `roles`).
  try {
    std::map<std::string, RoleRecipient> configured;
    for (const auto &[name, r] : s_.roles) {
      auto authority = parse_authority(r.authority);
      configured.emplace(name, RoleRecipient{age::X25519Recipient::parse(r.recipient),
                                             authority ? *authority : Authority::kReadOnly});
    }
    keyring_ = std::make_unique<Keyring>(Keyring::load(dir, std::move(configured)));
  } catch (const std::exception &e) {
    throw chorus::Error(CHORUS_E_CONFIG, std::string("dht: keyring: ") + e.what());
  }
  try {
    audit_ = AuditLog::open(dir);
  } catch (const AuditLogError &e) {
    throw chorus::Error(CHORUS_E_IO, std::string("dht: ") + e.what());
  }
  own_addrs_ = listen_addrs(*t, p2p_.self());
  HandlerOptions ho;
  ho.k = s_.k;
  ho.max_value_bytes = s_.max_value_bytes;
  ho.max_provider_key_bytes = CHORUS_DHT_KEY_MAX;  // our own provider keys may be text, not multihashes
  handler_ = std::make_unique<RequestHandler>(
      self_, *store_, [this](const KadId &target, size_t count) { return table_->closest(target, count); },
      [this](const PeerId &peer) {
        PeerContact c;
        c.addrs = known_addrs(peer);
        const bool up = peer == self_ || p2p_.table()->is_connected(p2p_.self(), peer.bytes().data(), peer.bytes().size()) != 0;
        c.connection = up ? ConnectionType::kConnected : ConnectionType::kNotConnected;
        return c;
      },
      RecordValidator::by_namespace(s_.max_value_bytes), ho);

  store_thread_ = std::thread([this] { store_io_.run(); });
  thread_ = std::thread([this] { io_.run(); });
  thread_id_ = thread_.get_id();

  decide_mode();
  if (server_.load()) {
    accept_arg_ = std::make_unique<std::weak_ptr<Node>>(weak_from_this());
    chorus::ErrorBuffer err;
    const chorus_status st = t->set_protocol_handler(p2p_.self(), protocol_.c_str(), &Node::on_accept, accept_arg_.get(), err.get());
    if (st != CHORUS_OK) throw chorus::Error(st, "dht: cannot handle " + protocol_ + ": " + std::string(err.text()));
    handler_registered_ = true;
  }

  uint64_t sub = 0;
  if (t->subscribe(p2p_.self(), &Node::on_p2p_event, this, &sub) == CHORUS_OK) p2p_sub_ = sub;
  // Peers identified before we subscribed get no IDENTIFIED event: ask the p2p host what they speak.
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
        json ident = {{"protocols", p.value("protocols", json::array())}, {"listen_addrs", p.value("addrs", json::array())}};
        post([this, id = *pid, j = ident.dump()] { peer_identified(id, j); });
      }
  }
  post([this] {
    update_gauges();
    report_health();
    schedule(refresh_timer_, s_.refresh_interval_ms, &Node::refresh_tick);
    schedule(republish_timer_, std::min<uint64_t>(s_.republish_interval_ms, 60000), &Node::republish_tick);
    schedule(reprovide_timer_, std::min<uint64_t>(s_.reprovide_interval_ms, 60000), &Node::reprovide_tick);
    schedule(sweep_timer_, s_.sweep_interval_ms, &Node::sweep_tick);
    if (s_.probe.enabled) schedule(probe_timer_, 0, &Node::probe_tick);
  });
  host_.info("dht: " + self_text_ + " in " + (server_.load() ? "server" : "client") + " mode on " + protocol_ +
             ", store " + so.path);
}

void Node::decide_mode() {
  if (s_.mode != Mode::kAuto) {
    server_ = s_.mode == Mode::kServer;
    return;
  }
  // auto: server when the p2p host listens on any address (settings.hpp says why).
  server_ = !own_addrs_.empty();
}

void Node::stop() {
  if (stopping_.exchange(true)) return;
  auto *t = p2p_ ? p2p_.table() : nullptr;
  if (t != nullptr && p2p_sub_ != 0) t->unsubscribe(p2p_.self(), p2p_sub_);
  p2p_sub_ = 0;
  if (t != nullptr && handler_registered_) t->remove_protocol_handler(p2p_.self(), protocol_.c_str());
  if (thread_.joinable()) {
    std::promise<void> done;
    post([this, t, &done] {
      for (auto *timer : {&refresh_timer_, &republish_timer_, &reprovide_timer_, &sweep_timer_, &probe_timer_, &recheck_timer_, &catchup_timer_})
        timer->cancel();
      for (auto &[id, timer] : op_timers_) timer->cancel();
      op_timers_.clear();
      if (t != nullptr) {
        for (const auto &[stream, in] : inbound_) t->reset(p2p_.self(), stream);
        for (const auto &[id, call] : calls_)
          if (call->stream != 0) t->reset(p2p_.self(), call->stream);
      }
      inbound_.clear();
      for (auto &[id, call] : calls_)
        if (call->timer) call->timer->cancel();
      calls_.clear();  // their callbacks belong to lookups and operations, cancelled below
      call_of_stream_.clear();
      lookups_.clear();
      while (!pending_.empty()) complete(pending_.begin()->first, CHORUS_E_CANCELLED, "dht: the plugin stopped");
      done.set_value();
    });
    done.get_future().wait_for(std::chrono::seconds(5));
    work_.reset();
    io_.stop();
    thread_.join();
  }
  // The store thread finishes the writes it holds (they are durable once begun).
  store_work_.reset();
  if (store_thread_.joinable()) store_thread_.join();
  stopped_ = true;
}

// ---- p2p callbacks (p2p thread): copy and post ----

void Node::on_p2p_event(void *arg, const chorus_p2p_event *ev) {
  auto *n = static_cast<Node *>(arg);
  if (ev == nullptr || n->stopping_.load()) return;
  auto id = PeerId::from_bytes(BytesView(ev->peer, ev->peer_len), nullptr);
  if (!id) return;
  switch (ev->type) {
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

chorus_status Node::on_accept(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) {
  auto n = static_cast<std::weak_ptr<Node> *>(arg)->lock();
  if (!n || n->stopping_.load() || info == nullptr) return CHORUS_E_UNAVAILABLE;
  auto id = PeerId::from_bytes(BytesView(info->peer, info->peer_len), nullptr);
  if (!id) return CHORUS_E_INVALID_ARG;
  auto *ctx = new StreamCtx{n, *id, true, 0};
  h->arg = ctx;
  h->on_data = &Node::on_data;
  h->on_eof = &Node::on_eof;
  h->on_writable = nullptr;
  h->on_closed = &Node::on_closed;
  Node *raw = n.get();
  raw->post([raw, stream = info->stream, id = *id] { raw->inbound_opened(stream, id); });
  return CHORUS_OK;
}

void Node::on_open(void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *err) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  auto n = ctx->node.lock();
  if (st != CHORUS_OK || info == nullptr) {
    if (n) {
      Node *raw = n.get();
      raw->post([raw, call = ctx->call, why = std::string(err != nullptr && err->message[0] != '\0' ? err->message
                                                                                                   : chorus_status_name(st))] {
        raw->call_failed(call, "cannot open a stream: " + why);
      });
    }
    delete ctx;  // the handler is never called after a failed open
    return;
  }
  if (!n) return;  // on_closed follows and frees ctx
  Node *raw = n.get();
  raw->post([raw, call = ctx->call, stream = info->stream] { raw->call_opened(call, stream); });
}

void Node::on_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  if (ctx->inbound) raw->post([raw, stream, b = Bytes(data, data + len)]() mutable { raw->inbound_data(stream, std::move(b)); });
  else raw->post([raw, call = ctx->call, b = Bytes(data, data + len)]() mutable { raw->call_data(call, std::move(b)); });
}

void Node::on_eof(void *arg, uint64_t stream) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  auto n = ctx->node.lock();
  if (!n || !ctx->inbound) return;
  Node *raw = n.get();
  raw->post([raw, stream] {
    auto it = raw->inbound_.find(stream);
    if (it == raw->inbound_.end()) return;
    it->second->eof = true;
    if (!it->second->busy) raw->p2p_.table()->close_write(raw->p2p_.self(), stream);
  });
}

void Node::on_closed(void *arg, uint64_t stream, chorus_status, const char *reason) {
  std::unique_ptr<StreamCtx> ctx(static_cast<StreamCtx *>(arg));
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  if (ctx->inbound) {
    raw->post([raw, stream] { raw->inbound_.erase(stream); });
  } else {
    raw->post([raw, call = ctx->call, why = std::string(reason != nullptr ? reason : "closed")] {
      raw->call_failed(call, "the stream closed before the reply: " + why);
    });
  }
}

// ---- peers (dht thread) ----

void Node::peer_identified(const PeerId &id, const std::string &identify_json) {
  if (id == self_ || stopping_.load()) return;
  auto j = json::parse(identify_json, nullptr, false);
  if (!j.is_object()) return;
  bool kad = false;
  if (j.contains("protocols") && j["protocols"].is_array())
    for (const auto &p : j["protocols"])
      if (p.is_string() && p.get<std::string>() == protocol_) kad = true;
  std::vector<std::string> addrs;
  if (j.contains("listen_addrs") && j["listen_addrs"].is_array())
    for (const auto &a : j["listen_addrs"])
      if (a.is_string()) addrs.push_back(a.get<std::string>());
  if (!addrs.empty()) remember_addrs(id, addrs);
  if (!kad) {
    // It stopped serving, never did, or restarted and identified before its kad handler was up (the
    // p2p host sends no identify push when that handler appears). A peer we had in the table is
    // asked again later (rechecks), so the last case does not lose it for good.
    kad_peers_.erase(id);
    if (table_->remove(id)) {
      m_.evictions.inc("not_kad");
      recheck_->lost(id, now_ms());
      arm_recheck();
    }
    update_gauges();
    return;
  }
  if (kad_peers_.size() < 10000) kad_peers_.insert(id);  // bounded; a peer left out is still found by its requests
  recheck_->answered(id);  // identify is the evidence a check would look for
  PeerId evict;
  const auto r = table_->add(id, now_ms(), &evict);
  if (r == RoutingTable::AddResult::kBucketFull) {
    // Keep the long-lived member unless it no longer answers a ping (a FIND_NODE for itself).
    Message ping;
    ping.type = MessageType::kFindNode;
    ping.key = evict.bytes();
    rpc(evict, std::move(ping), true, [this, evict, id](std::optional<Message> reply, const std::string &) {
      if (reply) {
        table_->mark_seen(evict, now_ms());
        return;
      }
      if (table_->remove(evict)) m_.evictions.inc("ping_failed");
      table_->add(id, now_ms());
      update_gauges();
    });
  }
  update_gauges();
  if (r == RoutingTable::AddResult::kAdded && !bootstrapped_) {
    bootstrapped_ = true;
    bootstrap();
  }
}

void Node::peer_disconnected(const PeerId &id) {
  // A disconnected server stays in the table (Kademlia keeps peers until they fail a request); the
  // failed requests of lookups remove it, and recheck_ asks it again later.
  kad_peers_.erase(id);
}

void Node::remember_addrs(const PeerId &id, const std::vector<std::string> &addrs) {
  if (id == self_) return;
  auto &mine = addrs_[id];
  for (const auto &a : addrs) {
    if (std::find(mine.begin(), mine.end(), a) != mine.end()) continue;
    if (mine.size() >= 16) break;
    mine.push_back(a);
  }
  if (addrs_.size() > 10000) addrs_.erase(addrs_.begin());  // bounded: any one is fine to forget
}

std::vector<std::string> Node::addr_texts(const PeerId &id) {
  std::vector<std::string> out;
  if (auto it = addrs_.find(id); it != addrs_.end()) out = it->second;
  if (out.empty()) {
    chorus_buf buf{};
    if (p2p_.table()->peer_addrs_json != nullptr &&
        p2p_.table()->peer_addrs_json(p2p_.self(), id.bytes().data(), id.bytes().size(), &buf) == CHORUS_OK) {
      auto arr = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
      if (buf.release != nullptr) buf.release(&buf);
      if (arr.is_array())
        for (const auto &a : arr)
          if (a.is_string()) out.push_back(a.get<std::string>());
    }
  }
  return out;
}

std::vector<Bytes> Node::known_addrs(const PeerId &id) {
  if (id == self_) return own_addrs_;
  std::vector<Bytes> out;
  for (const auto &text : addr_texts(id)) {
    auto ma = p2p::Multiaddr::parse(text, nullptr);
    if (ma) out.push_back(ma->without_peer_id().bytes());
  }
  return out;
}

// ---- RPC client (dht thread) ----

void Node::rpc(const PeerId &peer, Message request, bool expect_reply, RpcDone done) {
  const uint64_t id = ++last_call_;
  auto call = std::make_unique<Call>();
  call->peer = peer;
  call->type = request.type;
  call->frame = encode_frame(request);
  call->expect_reply = expect_reply;
  call->done = std::move(done);
  call->timer = std::make_unique<asio::steady_timer>(io_);
  call->timer->expires_after(std::chrono::milliseconds(s_.query_timeout_ms));
  call->timer->async_wait([this, id](const boost::system::error_code &ec) {
    if (!ec) finish_call(id, std::nullopt, "no reply within query_timeout_ms");
  });
  // The addresses we learned (identify, replies) let the p2p host dial a peer it never met.
  const auto texts = addr_texts(peer);
  if (!texts.empty() && p2p_.table()->is_connected(p2p_.self(), peer.bytes().data(), peer.bytes().size()) == 0) {
    std::vector<const char *> ptrs;
    for (const auto &a : texts) ptrs.push_back(a.c_str());
    p2p_.table()->add_addrs(p2p_.self(), peer.bytes().data(), peer.bytes().size(), ptrs.data(), ptrs.size(),
                            s_.provider_ttl_ms, nullptr);
  }
  calls_.emplace(id, std::move(call));
  auto *ctx = new StreamCtx{weak_from_this(), peer, false, id};
  chorus_p2p_stream_handler h{};
  h.struct_size = sizeof h;
  h.arg = ctx;
  h.on_data = &Node::on_data;
  h.on_eof = nullptr;
  h.on_writable = nullptr;
  h.on_closed = &Node::on_closed;
  const char *protos[] = {protocol_.c_str()};
  chorus::ErrorBuffer err;
  const chorus_status st = p2p_.table()->open_stream(p2p_.self(), peer.bytes().data(), peer.bytes().size(), protos, 1, &h,
                                                     static_cast<uint32_t>(s_.query_timeout_ms), &Node::on_open, ctx, err.get());
  if (st != CHORUS_OK) {
    delete ctx;
    const std::string why = "cannot open a stream: " + std::string(err.text().empty() ? chorus_status_name(st) : err.text());
    post([this, id, why] { finish_call(id, std::nullopt, why); });
  }
}

void Node::call_opened(uint64_t call, uint64_t stream) {
  auto it = calls_.find(call);
  if (it == calls_.end()) {  // timed out or cancelled meanwhile
    p2p_.table()->reset(p2p_.self(), stream);
    return;
  }
  Call &c = *it->second;
  c.stream = stream;
  call_of_stream_[stream] = call;
  const chorus_status st = p2p_.table()->write(p2p_.self(), stream, c.frame.data(), c.frame.size());
  if (st != CHORUS_OK) return finish_call(call, std::nullopt, std::string("write: ") + chorus_status_name(st));
  if (!c.expect_reply) {
    p2p_.table()->close_write(p2p_.self(), stream);
    finish_call(call, Message{}, "");
  }
}

void Node::call_failed(uint64_t call, const std::string &why) { finish_call(call, std::nullopt, why); }

void Node::call_data(uint64_t call, Bytes bytes) {
  auto it = calls_.find(call);
  if (it == calls_.end()) return;
  Call &c = *it->second;
  c.buf.insert(c.buf.end(), bytes.begin(), bytes.end());
  uint64_t len = 0;
  size_t used = 0;
  const auto vs = p2p::read_uvarint(BytesView(c.buf), len, used);
  if (vs == p2p::VarintStatus::need_more) return;
  if (vs == p2p::VarintStatus::invalid) return finish_call(call, std::nullopt, "the reply has an invalid length prefix");
  if (len > s_.max_frame_bytes()) return finish_call(call, std::nullopt, "the reply frame is too large");
  if (c.buf.size() - used < len) return;
  Limits limits;
  limits.max_value_bytes = s_.max_value_bytes;
  limits.max_message_bytes = s_.max_frame_bytes();
  std::string why;
  auto reply = decode_message(BytesView(c.buf).subspan(used, len), limits, &why);
  if (!reply) return finish_call(call, std::nullopt, "undecodable reply: " + why);
  finish_call(call, std::move(*reply), "");
}

void Node::finish_call(uint64_t call, std::optional<Message> reply, const std::string &why) {
  auto it = calls_.find(call);
  if (it == calls_.end()) return;
  std::unique_ptr<Call> c = std::move(it->second);
  calls_.erase(it);
  if (c->timer) c->timer->cancel();
  if (c->stream != 0) {
    call_of_stream_.erase(c->stream);
    // Done with the stream: a reply read (or a one-way request sent) closes it; anything else resets it.
    if (reply && c->expect_reply) p2p_.table()->close_write(p2p_.self(), c->stream);
    else if (!reply) p2p_.table()->reset(p2p_.self(), c->stream);
  }
  m_.outbound.inc(message_type_name(c->type), reply ? "ok" : "error");
  if (reply) table_->mark_seen(c->peer, now_ms());
  if (host_.log_enabled(chorus::LogLevel::debug) && !reply)
    host_.debug("dht: " + std::string(message_type_name(c->type)) + " to " + c->peer.to_base58() + " failed: " + why);
  c->done(std::move(reply), why);
}

}  // namespace chorus::dht

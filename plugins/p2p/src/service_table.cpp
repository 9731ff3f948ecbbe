// The chorus.p2p.host v1 service: the C table's trampolines and Node, the thread-safe door they
// call. Each Node operation checks its arguments on the caller's thread, then hands the work to the
// network thread (node_impl.hpp) and reports through the caller's callback.
#include "service_table.hpp"

#include <cstddef>
#include <cstring>
#include <new>

#include <chorus/plugin.hpp>
#include <nlohmann/json.hpp>

#include "clock.hpp"
#include "connection.hpp"
#include "node_impl.hpp"
#include "upgrader.hpp"

namespace chorus::p2p {

using json = nlohmann::json;

namespace {

// The chorus_error a result callback receives.
chorus_error make_error(chorus_status code, const std::string &msg) {
  chorus_error e{};
  e.struct_size = sizeof e;
  chorus::set_error(&e, code, msg);
  return e;
}

std::optional<PeerId> peer_from(const uint8_t *peer, size_t len) {
  if (peer == nullptr || len == 0 || len > 128) return std::nullopt;
  return PeerId::from_bytes(BytesView(peer, len), nullptr);
}

bool valid_protocol_id(const char *p) {
  if (p == nullptr) return false;
  const size_t n = std::strlen(p);
  if (n == 0 || n > CHORUS_P2P_PROTOCOL_MAX || p[0] != '/') return false;
  for (size_t i = 0; i < n; ++i)
    if (static_cast<unsigned char>(p[i]) < 0x20 || p[i] == 0x7f) return false;
  return true;
}

// Runs fn on the stream on the network thread (now, when already there).
template <class F>
chorus_status on_stream(NodeImpl *impl, uint64_t stream, F fn) {
  {
    std::lock_guard lk(impl->gates_mu);
    if (!impl->gates.count(stream)) return CHORUS_E_NOT_FOUND;
  }
  if (impl->on_network_thread()) {
    Stream *s = impl->find_stream(stream);
    if (s == nullptr) return CHORUS_E_NOT_FOUND;
    fn(*s);
    return CHORUS_OK;
  }
  const bool queued = impl->post([impl, stream, fn] {
    if (Stream *s = impl->find_stream(stream)) fn(*s);
  });
  if (!queued) return CHORUS_E_NOT_FOUND;  // the node has stopped: the stream is gone
  return CHORUS_OK;
}

// Network thread: hands the bytes other threads wrote to the stream, in the order they were written.
void move_incoming(Stream &s) {
  Bytes bytes;
  {
    std::lock_guard lk(s.gate->incoming_mu);
    if (s.gate->incoming.empty()) {
      s.gate->incoming_posted = false;
      return;
    }
    bytes.swap(s.gate->incoming);
    s.gate->incoming_posted = false;
  }
  s.conn->stream_write(s, bytes);
}

}  // namespace

// ================================================================================================
// Node: the thread-safe door
// ================================================================================================

Node::Node(Settings settings, Identity identity, NodeLog &log)
    : impl_(std::make_unique<NodeImpl>(std::move(settings), std::move(identity), log)) {}
Node::~Node() = default;

std::string Node::start() { return impl_->start(); }
void Node::stop() { impl_->stop(); }
const NodeStats &Node::stats() const { return impl_->stats(); }
const Identity &Node::identity() const { return impl_->identity(); }

chorus_status Node::get_info_json(std::string &out, chorus_error *err) {
  if (!impl_->run_sync([&] { out = impl_->info_json(); })) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::list_peers_json(std::string &out, chorus_error *err) {
  if (!impl_->run_sync([&] { out = impl_->peers_json(); })) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::connect(std::string_view target, uint32_t timeout_ms, chorus_p2p_connect_fn fn, void *arg,
                            chorus_error *err) {
  if (fn == nullptr) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "connect needs a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  std::optional<PeerId> peer;
  std::vector<Multiaddr> addrs;
  std::string why;
  if (!target.empty() && target.front() == '/') {
    auto ma = Multiaddr::parse(target, &why);
    if (!ma) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, "not a multiaddr: " + why);
      return CHORUS_E_INVALID_ARG;
    }
    if (!ma->tcp_target()) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, std::string(target) + " is not a TCP address");
      return CHORUS_E_INVALID_ARG;
    }
    peer = ma->peer_id();
    addrs.push_back(*ma);
  } else {
    peer = PeerId::parse(target, &why);
    if (!peer) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, "not a multiaddr or peer id: " + why);
      return CHORUS_E_INVALID_ARG;
    }
  }
  if (impl_->stopping()) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, peer, addrs, timeout_ms, fn, arg]() mutable {
    if (addrs.empty() && peer) {
      addrs = impl->book_addrs(*peer);
      if (addrs.empty() && impl->best_connection(*peer) == nullptr) {
        const auto e = make_error(CHORUS_E_NOT_FOUND, "no known address for " + peer->to_base58());
        fn(arg, CHORUS_E_NOT_FOUND, nullptr, &e);
        return;
      }
    }
    impl->dialer().dial(peer, std::move(addrs), timeout_ms, [fn, arg](chorus_status st, const PeerId *p,
                                                                     const std::string &why) {
      if (st == CHORUS_OK) {
        const std::string text = p != nullptr ? p->to_base58() : "";
        fn(arg, CHORUS_OK, text.c_str(), nullptr);
      } else {
        const auto e = make_error(st, why);
        fn(arg, st, nullptr, &e);
      }
    });
  });
  if (!queued) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::disconnect(const uint8_t *peer, size_t peer_len) {
  auto p = peer_from(peer, peer_len);
  if (!p) return CHORUS_E_INVALID_ARG;
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p] {
    PeerRecord *rec = impl->peerstore().find(*p);
    if (rec == nullptr) return;
    auto conns = rec->connections;
    for (auto *c : conns) c->abort(CHORUS_E_IO, "disconnected on request");
  });
  if (!queued) return CHORUS_E_UNAVAILABLE;
  return CHORUS_OK;
}

int Node::is_connected(const uint8_t *peer, size_t peer_len) {
  auto p = peer_from(peer, peer_len);
  if (!p) return 0;
  std::lock_guard lk(impl_->connected_mu);
  return impl_->connected.count(*p) != 0 ? 1 : 0;
}

chorus_status Node::add_addrs(const uint8_t *peer, size_t peer_len, const char *const *addrs, size_t count,
                              uint64_t ttl_ms, chorus_error *err) {
  auto p = peer_from(peer, peer_len);
  if (!p) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "malformed peer id");
    return CHORUS_E_INVALID_ARG;
  }
  if (count > 256 || (count > 0 && addrs == nullptr)) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "at most 256 addresses per call");
    return CHORUS_E_INVALID_ARG;
  }
  std::vector<std::string> texts;
  for (size_t i = 0; i < count; ++i) {
    std::string why;
    auto ma = addrs[i] != nullptr ? Multiaddr::parse(addrs[i], &why) : std::nullopt;
    if (!ma || !ma->tcp_target()) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG,
                std::string("not a TCP multiaddr: ") + (addrs[i] != nullptr ? addrs[i] : "(null)") + (why.empty() ? "" : ": " + why));
      return CHORUS_E_INVALID_ARG;
    }
    if (auto own = ma->peer_id(); own && !(*own == *p)) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, std::string(addrs[i]) + " names another peer");
      return CHORUS_E_INVALID_ARG;
    }
    texts.push_back(ma->without_peer_id().to_string());
  }
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p, texts, ttl_ms] {
    impl->peerstore().add_addrs(*p, texts, ttl_ms == 0 ? 0 : monotonic_ms() + ttl_ms);
  });
  if (!queued) return CHORUS_E_UNAVAILABLE;
  return CHORUS_OK;
}

chorus_status Node::peer_addrs_json(const uint8_t *peer, size_t peer_len, std::string &out) {
  auto p = peer_from(peer, peer_len);
  if (!p) return CHORUS_E_INVALID_ARG;
  json arr = json::array();
  if (!impl_->run_sync([&] {
        for (const auto &a : impl_->book_addrs(*p)) arr.push_back(a.without_peer_id().to_string());
      }))
    return CHORUS_E_UNAVAILABLE;
  out = arr.dump(-1, ' ', false, json::error_handler_t::replace);
  return CHORUS_OK;
}

chorus_status Node::set_protocol_handler(const char *protocol, chorus_p2p_accept_fn accept, void *arg,
                                         chorus_error *err) {
  if (!valid_protocol_id(protocol) || accept == nullptr) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "a protocol id is 1-1023 printable bytes starting with '/', and accept is required");
    return CHORUS_E_INVALID_ARG;
  }
  const std::string p = protocol;
  if (p == kIdentifyProtocol || p == kIdentifyPushProtocol || p == kPingProtocol || p == kNoiseProtocol ||
      p == kYamuxProtocol) {
    chorus::set_error(err, CHORUS_E_EXISTS, p + " is served by the p2p plugin itself");
    return CHORUS_E_EXISTS;
  }
  std::lock_guard lk(impl_->protocols_mu);
  if (impl_->protocols.count(p)) {
    chorus::set_error(err, CHORUS_E_EXISTS, p + " already has a handler");
    return CHORUS_E_EXISTS;
  }
  impl_->protocols[p] = ProtocolHandler{accept, arg};
  return CHORUS_OK;
}

chorus_status Node::remove_protocol_handler(const char *protocol) {
  if (protocol == nullptr) return CHORUS_E_INVALID_ARG;
  {
    std::lock_guard lk(impl_->protocols_mu);
    if (impl_->protocols.erase(protocol) == 0) return CHORUS_E_NOT_FOUND;
  }
  // accept functions run on the network thread: after a no-op ran there, none is in flight.
  if (!impl_->on_network_thread()) impl_->run_sync([] {});
  return CHORUS_OK;
}

chorus_status Node::open_stream(const uint8_t *peer, size_t peer_len, const char *const *protocols, size_t count,
                                const chorus_p2p_stream_handler *handler, uint32_t timeout_ms, chorus_p2p_open_fn fn,
                                void *arg, chorus_error *err) {
  auto p = peer_from(peer, peer_len);
  if (!p) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "malformed peer id");
    return CHORUS_E_INVALID_ARG;
  }
  if (count == 0 || count > 16 || protocols == nullptr || handler == nullptr || fn == nullptr ||
      handler->struct_size < offsetof(chorus_p2p_stream_handler, on_closed) + sizeof(handler->on_closed)) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "open_stream needs 1-16 protocols, a handler and a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  std::vector<std::string> protos;
  for (size_t i = 0; i < count; ++i) {
    if (!valid_protocol_id(protocols[i])) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, "malformed protocol id");
      return CHORUS_E_INVALID_ARG;
    }
    protos.emplace_back(protocols[i]);
  }
  if (impl_->stopping()) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  auto sink = std::make_unique<CHandlerSink>(*handler);
  auto *impl = impl_.get();
  auto shared_sink = std::make_shared<std::unique_ptr<StreamSink>>(std::move(sink));
  const bool queued = impl->post([impl, p, protos, shared_sink, timeout_ms, fn, arg] {
    impl->open_stream(*p, protos, std::move(*shared_sink), timeout_ms,
                      [fn, arg](chorus_status st, Stream *s, const std::string &why) {
                        if (st != CHORUS_OK || s == nullptr) {
                          const auto e = make_error(st, why);
                          fn(arg, st, nullptr, &e);
                          return;
                        }
                        const std::string peer_text = s->conn->peer().to_base58();
                        const std::string remote = s->conn->remote_addr().to_string();
                        const auto info = stream_info(*s, CHORUS_P2P_DIR_OUTBOUND, peer_text, remote);
                        fn(arg, CHORUS_OK, &info, nullptr);
                      });
  });
  if (!queued) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::write(uint64_t stream, const uint8_t *data, size_t len) {
  if (len > 0 && data == nullptr) return CHORUS_E_INVALID_ARG;
  std::shared_ptr<StreamGate> gate;
  {
    std::lock_guard lk(impl_->gates_mu);
    auto it = impl_->gates.find(stream);
    if (it == impl_->gates.end()) return CHORUS_E_NOT_FOUND;
    gate = it->second;
  }
  if (!gate->alive) return CHORUS_E_NOT_FOUND;
  if (gate->write_closed) return CHORUS_E_INVALID_ARG;  // after close_write
  if (len == 0) return CHORUS_OK;
  const size_t hwm = impl_->settings().limits.stream_send_buffer;
  auto *impl = impl_.get();
  if (gate->queued.load() >= hwm) {
    // The queue may have drained between the check and the flag: let the network thread look
    // again, once per BUSY episode (a writer retrying in a loop must not flood the queue).
    if (!gate->want_writable.exchange(true)) {
      const bool queued = impl->post([impl, stream] {
        if (Stream *s = impl->find_stream(stream)) s->conn->stream_write(*s, {});
      });
      if (!queued) return CHORUS_E_NOT_FOUND;  // the node has stopped: the stream is gone
    }
    return CHORUS_E_BUSY;
  }
  gate->queued += len;
  if (impl->on_network_thread()) {
    Stream *s = impl->find_stream(stream);
    if (s == nullptr) return CHORUS_E_NOT_FOUND;
    move_incoming(*s);  // bytes another thread wrote go first
    s->conn->stream_write(*s, BytesView(data, len));
    return CHORUS_OK;
  }
  {
    std::lock_guard lk(gate->incoming_mu);
    gate->incoming.insert(gate->incoming.end(), data, data + len);
    if (gate->incoming_posted) return CHORUS_OK;  // the queued task takes these bytes too
    gate->incoming_posted = true;
  }
  const bool queued = impl->post([impl, stream, gate] {
    if (Stream *s = impl->find_stream(stream)) {
      move_incoming(*s);
    } else {
      std::lock_guard lk(gate->incoming_mu);
      gate->incoming.clear();
      gate->incoming_posted = false;
    }
  });
  if (!queued) return CHORUS_E_NOT_FOUND;  // the node has stopped: the stream is gone
  return CHORUS_OK;
}


chorus_status Node::close_write(uint64_t stream) {
  {
    std::lock_guard lk(impl_->gates_mu);
    auto it = impl_->gates.find(stream);
    if (it == impl_->gates.end()) return CHORUS_E_NOT_FOUND;
    it->second->write_closed = true;
  }
  return on_stream(impl_.get(), stream, [](Stream &s) { s.conn->stream_close_write(s); });
}

chorus_status Node::reset(uint64_t stream) {
  return on_stream(impl_.get(), stream,
                   [](Stream &s) { s.conn->stream_reset(s, CHORUS_E_CANCELLED, "reset by the local side"); });
}

chorus_status Node::set_read_paused(uint64_t stream, int paused) {
  return on_stream(impl_.get(), stream, [paused](Stream &s) { s.conn->stream_set_paused(s, paused != 0); });
}

chorus_status Node::subscribe(chorus_p2p_event_fn fn, void *arg, uint64_t *out_sub) {
  if (fn == nullptr || out_sub == nullptr) return CHORUS_E_INVALID_ARG;
  auto *impl = impl_.get();
  if (impl->stopping()) return CHORUS_E_UNAVAILABLE;
  uint64_t id = 0;
  {
    std::lock_guard lk(impl->subs_mu);
    id = ++impl->last_sub_id;
    impl->subscriptions[id] = {fn, arg};
  }
  *out_sub = id;
  // Report who is connected already, so a late subscriber sees the same world.
  impl->run_sync([impl, id, fn, arg] {
    for (const auto &[peer, rec] : impl->peerstore().records()) {
      if (rec.connections.empty()) continue;
      {
        std::lock_guard lk(impl->subs_mu);
        if (!impl->subscriptions.count(id)) return;
      }
      const std::string text = peer.to_base58();
      const std::string addr = rec.connections.front()->remote_addr().to_string();
      chorus_p2p_event ev{};
      ev.struct_size = sizeof ev;
      ev.type = CHORUS_P2P_EVENT_CONNECTED;
      ev.peer = peer.bytes().data();
      ev.peer_len = peer.bytes().size();
      ev.peer_text = text.c_str();
      ev.addr = addr.c_str();
      ev.direction = rec.connections.front()->direction();
      fn(arg, &ev);
    }
  });
  return CHORUS_OK;
}

chorus_status Node::unsubscribe(uint64_t sub) {
  auto *impl = impl_.get();
  bool found = false;
  {
    std::lock_guard lk(impl->subs_mu);
    found = impl->subscriptions.erase(sub) != 0;
  }
  if (!found) return CHORUS_E_NOT_FOUND;
  // Events run on the network thread: once a no-op has run there, no call of fn is in progress.
  if (!impl->on_network_thread()) impl->run_sync([] {});
  return CHORUS_OK;
}

chorus_status Node::ping(const uint8_t *peer, size_t peer_len, uint32_t timeout_ms,
                         void (*fn)(void *, chorus_status, uint64_t, const chorus_error *), void *arg,
                         chorus_error *err) {
  auto p = peer_from(peer, peer_len);
  if (!p || fn == nullptr) {
    chorus::set_error(err, CHORUS_E_INVALID_ARG, "ping needs a peer id and a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  if (impl_->stopping()) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p, timeout_ms, fn, arg] {
    impl->ping().ping(*p, timeout_ms, [fn, arg](chorus_status st, uint64_t rtt_us, const std::string &why) {
      if (st == CHORUS_OK) {
        fn(arg, CHORUS_OK, rtt_us, nullptr);
      } else {
        const auto e = make_error(st, why);
        fn(arg, st, 0, &e);
      }
    });
  });
  if (!queued) {
    chorus::set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

std::string Node::listen_addrs_text() const {
  std::string out;
  for (const auto &a : impl_->advertised_addrs()) out += (out.empty() ? "" : " ") + a;
  return out;
}

// ================================================================================================
// The C table: every entry is noexcept and maps failures to status codes
// ================================================================================================

namespace {

Node *node(void *p) { return static_cast<std::unique_ptr<Node> *>(p)->get(); }

chorus_status c_local_peer_id(void *p, uint8_t *peer, size_t peer_cap, size_t *peer_len, char *text,
                              size_t text_cap, size_t *text_len) noexcept {
  Node *n = node(p);
  if (n == nullptr) return CHORUS_E_UNAVAILABLE;
  const auto &id = n->identity().peer_id();
  if (peer != nullptr) {
    if (peer_cap < id.bytes().size()) return CHORUS_E_TOO_LARGE;
    std::memcpy(peer, id.bytes().data(), id.bytes().size());
  }
  if (peer_len != nullptr) *peer_len = id.bytes().size();
  try {
    const std::string t = id.to_base58();
    if (text != nullptr) {
      if (text_cap < t.size() + 1) return CHORUS_E_TOO_LARGE;
      std::memcpy(text, t.c_str(), t.size() + 1);
    }
    if (text_len != nullptr) *text_len = t.size();
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
  return CHORUS_OK;
}

chorus_status c_local_public_key(void *p, uint8_t *out, size_t cap, size_t *len) noexcept {
  Node *n = node(p);
  if (n == nullptr) return CHORUS_E_UNAVAILABLE;
  try {
    const Bytes pk = n->identity().public_key_protobuf();
    if (len != nullptr) *len = pk.size();
    if (out == nullptr || cap < pk.size()) return CHORUS_E_TOO_LARGE;
    std::memcpy(out, pk.data(), pk.size());
    return CHORUS_OK;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status c_sign(void *p, const uint8_t *data, size_t len, uint8_t sig[64]) noexcept {
  Node *n = node(p);
  if (n == nullptr) return CHORUS_E_UNAVAILABLE;
  if ((data == nullptr && len > 0) || sig == nullptr) return CHORUS_E_INVALID_ARG;
  const auto s = n->identity().sign(BytesView(data, len));
  std::memcpy(sig, s.data(), s.size());
  return CHORUS_OK;
}

template <class F>
chorus_status guarded(F &&fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc &) {
    return CHORUS_E_NO_MEMORY;
  } catch (...) {
    return CHORUS_E_INTERNAL;
  }
}

chorus_status c_info(void *p, chorus_buf *out, chorus_error *err) noexcept {
  return guarded([&] {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    std::string text;
    const auto st = n->get_info_json(text, err);
    return st != CHORUS_OK ? st : chorus::give_buf(std::move(text), out);
  });
}
chorus_status c_peers(void *p, chorus_buf *out, chorus_error *err) noexcept {
  return guarded([&] {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    std::string text;
    const auto st = n->list_peers_json(text, err);
    return st != CHORUS_OK ? st : chorus::give_buf(std::move(text), out);
  });
}
chorus_status c_connect(void *p, const char *target, size_t target_len, uint32_t timeout_ms,
                        chorus_p2p_connect_fn fn, void *arg, chorus_error *err) noexcept {
  return guarded([&] {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    if (target == nullptr) return CHORUS_E_INVALID_ARG;
    return n->connect(std::string_view(target, target_len), timeout_ms, fn, arg, err);
  });
}
chorus_status c_disconnect(void *p, const uint8_t *peer, size_t len) noexcept {
  return guarded([&] { return node(p) ? node(p)->disconnect(peer, len) : CHORUS_E_UNAVAILABLE; });
}
int c_is_connected(void *p, const uint8_t *peer, size_t len) noexcept {
  try {
    return node(p) ? node(p)->is_connected(peer, len) : 0;
  } catch (...) {
    return 0;
  }
}
chorus_status c_add_addrs(void *p, const uint8_t *peer, size_t len, const char *const *addrs, size_t count,
                          uint64_t ttl_ms, chorus_error *err) noexcept {
  return guarded([&] { return node(p) ? node(p)->add_addrs(peer, len, addrs, count, ttl_ms, err) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_peer_addrs(void *p, const uint8_t *peer, size_t len, chorus_buf *out) noexcept {
  return guarded([&] {
    Node *n = node(p);
    if (n == nullptr) return CHORUS_E_UNAVAILABLE;
    std::string text;
    const auto st = n->peer_addrs_json(peer, len, text);
    return st != CHORUS_OK ? st : chorus::give_buf(std::move(text), out);
  });
}
chorus_status c_set_handler(void *p, const char *protocol, chorus_p2p_accept_fn accept, void *arg,
                            chorus_error *err) noexcept {
  return guarded([&] { return node(p) ? node(p)->set_protocol_handler(protocol, accept, arg, err) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_remove_handler(void *p, const char *protocol) noexcept {
  return guarded([&] { return node(p) ? node(p)->remove_protocol_handler(protocol) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_open_stream(void *p, const uint8_t *peer, size_t len, const char *const *protocols,
                            size_t count, const chorus_p2p_stream_handler *handler, uint32_t timeout_ms,
                            chorus_p2p_open_fn fn, void *arg, chorus_error *err) noexcept {
  return guarded([&] {
    return node(p) ? node(p)->open_stream(peer, len, protocols, count, handler, timeout_ms, fn, arg, err)
                   : CHORUS_E_UNAVAILABLE;
  });
}
chorus_status c_write(void *p, uint64_t stream, const uint8_t *data, size_t len) noexcept {
  return guarded([&] { return node(p) ? node(p)->write(stream, data, len) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_close_write(void *p, uint64_t stream) noexcept {
  return guarded([&] { return node(p) ? node(p)->close_write(stream) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_reset(void *p, uint64_t stream) noexcept {
  return guarded([&] { return node(p) ? node(p)->reset(stream) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_set_paused(void *p, uint64_t stream, int paused) noexcept {
  return guarded([&] { return node(p) ? node(p)->set_read_paused(stream, paused) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_subscribe(void *p, chorus_p2p_event_fn fn, void *arg, uint64_t *out) noexcept {
  return guarded([&] { return node(p) ? node(p)->subscribe(fn, arg, out) : CHORUS_E_UNAVAILABLE; });
}
chorus_status c_unsubscribe(void *p, uint64_t sub) noexcept {
  return guarded([&] { return node(p) ? node(p)->unsubscribe(sub) : CHORUS_OK; });
}
chorus_status c_ping(void *p, const uint8_t *peer, size_t len, uint32_t timeout_ms,
                     void (*fn)(void *, chorus_status, uint64_t, const chorus_error *), void *arg,
                     chorus_error *err) noexcept {
  return guarded([&] { return node(p) ? node(p)->ping(peer, len, timeout_ms, fn, arg, err) : CHORUS_E_UNAVAILABLE; });
}

chorus_status c_parse_peer_id(void *, const char *text, size_t text_len, uint8_t *out, size_t cap,
                              size_t *out_len) noexcept {
  return guarded([&] {
    if (text == nullptr) return CHORUS_E_INVALID_ARG;
    auto id = PeerId::parse(std::string_view(text, text_len), nullptr);
    if (!id) return CHORUS_E_INVALID_ARG;
    if (out_len != nullptr) *out_len = id->bytes().size();
    if (out == nullptr || cap < id->bytes().size()) return CHORUS_E_TOO_LARGE;
    std::memcpy(out, id->bytes().data(), id->bytes().size());
    return CHORUS_OK;
  });
}

}  // namespace

chorus_p2p_host_v1 p2p_host_table() {
  chorus_p2p_host_v1 table{};
  table.struct_size = sizeof table;
  table.local_peer_id = &c_local_peer_id;
  table.local_public_key = &c_local_public_key;
  table.sign = &c_sign;
  table.get_info_json = &c_info;
  table.connect = &c_connect;
  table.disconnect = &c_disconnect;
  table.list_peers_json = &c_peers;
  table.is_connected = &c_is_connected;
  table.add_addrs = &c_add_addrs;
  table.peer_addrs_json = &c_peer_addrs;
  table.set_protocol_handler = &c_set_handler;
  table.remove_protocol_handler = &c_remove_handler;
  table.open_stream = &c_open_stream;
  table.write = &c_write;
  table.close_write = &c_close_write;
  table.reset = &c_reset;
  table.set_read_paused = &c_set_paused;
  table.subscribe = &c_subscribe;
  table.unsubscribe = &c_unsubscribe;
  table.ping = &c_ping;
  table.parse_peer_id = &c_parse_peer_id;
  return table;
}

}  // namespace chorus::p2p

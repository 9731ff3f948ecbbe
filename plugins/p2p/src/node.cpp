// The node: listeners, dialing, the connection manager, the address book, identify and ping, and
// the thread-safe door (Node) through which the service table reaches all of it.
#include "node.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <future>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <nlohmann/json.hpp>

#include "node_impl.hpp"
#include "varint.hpp"

namespace chorus::p2p {

using json = nlohmann::json;

uint64_t monotonic_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

namespace {

constexpr size_t kMaxAddrsPerPeer = 32;   // addresses one peer's identify may add to our book
constexpr size_t kMaxPeerRecords = 4096;  // peers remembered (connected ones always are)

void set_error(chorus_error *err, chorus_status code, const std::string &msg) {
  if (err == nullptr || err->struct_size < sizeof(chorus_error)) return;
  err->code = code;
  const size_t n = std::min(msg.size(), sizeof(err->message) - 1);
  std::memcpy(err->message, msg.data(), n);
  err->message[n] = '\0';
}

chorus_error make_error(chorus_status code, const std::string &msg) {
  chorus_error e{};
  e.struct_size = sizeof e;
  set_error(&e, code, msg);
  return e;
}

std::optional<PeerId> peer_from(const uint8_t *peer, size_t len) {
  if (peer == nullptr || len == 0 || len > 128) return std::nullopt;
  return PeerId::from_bytes(BytesView(peer, len), nullptr);
}

std::string direction_name(uint32_t d) { return d == CHORUS_P2P_DIR_OUTBOUND ? "outbound" : "inbound"; }

// ---- stream sinks ------------------------------------------------------------------------------

// A plugin's C handler.
class CHandlerSink final : public StreamSink {
 public:
  explicit CHandlerSink(const chorus_p2p_stream_handler &h) : h_{} {
    std::memcpy(&h_, &h, std::min<size_t>(h.struct_size, sizeof h_));
    h_.struct_size = sizeof h_;
  }
  void data(Stream &s, BytesView b) override {
    if (h_.on_data != nullptr) h_.on_data(h_.arg, s.id, b.data(), b.size());
  }
  void eof(Stream &s) override {
    if (h_.on_eof != nullptr) h_.on_eof(h_.arg, s.id);
  }
  void writable(Stream &s) override {
    if (h_.on_writable != nullptr) h_.on_writable(h_.arg, s.id);
  }
  void closed(Stream &s, chorus_status status, const std::string &reason) override {
    if (h_.on_closed != nullptr) h_.on_closed(h_.arg, s.id, status, reason.c_str());
  }

 private:
  chorus_p2p_stream_handler h_;
};

// /ipfs/id/1.0.0, answering side: one length-prefixed Identify, then FIN.
class IdentifyServerSink final : public StreamSink {
 public:
  void data(Stream &, BytesView) override {}
  void closed(Stream &, chorus_status, const std::string &) override {}
};

// /ipfs/id/1.0.0, asking side (and /ipfs/id/push/1.0.0 inbound): read length-prefixed Identify
// messages until EOF and merge them (go splits big answers in two).
class IdentifyReaderSink final : public StreamSink {
 public:
  explicit IdentifyReaderSink(NodeImpl &node) : node_(node), reader_(8 * 1024) {}
  void data(Stream &s, BytesView b) override {
    if (failed_) return;
    while (!b.empty()) {
      BytesView msg;
      const auto st = reader_.next(b, msg, scratch_);
      if (st == LpStatus::need_more) break;
      if (st != LpStatus::message || ++count_ > 10) {
        fail(s, st == LpStatus::too_large ? "identify message larger than 8 KiB" : "malformed identify message");
        return;
      }
      std::string why;
      if (!msg_.merge_from(msg, &why)) {
        fail(s, "bad identify message: " + why);
        return;
      }
    }
  }
  void eof(Stream &s) override {
    if (failed_) return;
    Connection *c = s.conn;
    node_.identify_received(*c, std::move(msg_));
    c->stream_close_write(s);
  }
  void closed(Stream &, chorus_status, const std::string &) override {}

 private:
  void fail(Stream &s, const std::string &why) {
    failed_ = true;
    node_.stats().protocol_errors++;
    node_.logf(CHORUS_LOG_DEBUG, "identify from " + s.conn->peer().to_base58() + ": " + why);
    s.conn->stream_reset(s, CHORUS_E_PROTOCOL, why);
  }
  NodeImpl &node_;
  LpReader reader_;
  Bytes scratch_;
  IdentifyMessage msg_;
  int count_ = 0;
  bool failed_ = false;
};

// /ipfs/ping/1.0.0, answering side: echo 32-byte payloads back.
class PingServerSink final : public StreamSink {
 public:
  explicit PingServerSink(NodeStats &stats) : stats_(stats) {}
  void data(Stream &s, BytesView b) override {
    // A ping client waits for each answer; one that keeps sending without reading is flooding us.
    if (s.conn->pending_send(s) + b.size() > 4096) {
      stats_.protocol_errors++;
      s.conn->stream_reset(s, CHORUS_E_PROTOCOL, "ping flood (the peer does not read our answers)");
      return;
    }
    s.conn->internal_write(s, b);
  }
  void eof(Stream &s) override { s.conn->stream_close_write(s); }
  void closed(Stream &, chorus_status, const std::string &) override {}

 private:
  NodeStats &stats_;
};

// /ipfs/ping/1.0.0, asking side: one 32-byte round trip.
class PingClientSink final : public StreamSink {
 public:
  using Done = std::function<void(chorus_status, uint64_t, const std::string &)>;
  PingClientSink(Done done) : done_(std::move(done)) { randombytes_buf(payload_.data(), payload_.size()); }
  void start(Stream &s) {
    started_us_ = now_us();
    s.conn->internal_write(s, BytesView(payload_.data(), payload_.size()));
  }
  void data(Stream &s, BytesView b) override {
    got_.insert(got_.end(), b.begin(), b.end());
    if (got_.size() < payload_.size() || !done_) return;
    const bool ok = std::equal(payload_.begin(), payload_.end(), got_.begin());
    auto done = std::move(done_);
    done_ = nullptr;
    if (ok) done(CHORUS_OK, now_us() - started_us_, {});
    else done(CHORUS_E_PROTOCOL, 0, "ping answer does not match the payload");
    s.conn->stream_close_write(s);
  }
  void closed(Stream &, chorus_status status, const std::string &reason) override {
    if (done_) done_(status == CHORUS_OK ? CHORUS_E_IO : status, 0, "ping stream closed early: " + reason);
  }

 private:
  static uint64_t now_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
  Done done_;
  std::array<uint8_t, 32> payload_{};
  Bytes got_;
  uint64_t started_us_ = 0;
};

}  // namespace

// ================================================================================================
// NodeImpl
// ================================================================================================

NodeImpl::NodeImpl(Settings settings, Identity identity, NodeLog &log)
    : settings_(std::move(settings)), identity_(std::move(identity)), log_(log) {
  inbound_tokens_ = settings_.limits.inbound_burst;
  inbound_refill_ms_ = monotonic_ms();
}

NodeImpl::~NodeImpl() { stop(); }

void NodeImpl::logf(int level, const std::string &msg) {
  if (log_.enabled(level)) log_.write(level, msg);
}

std::string NodeImpl::start() {
  std::vector<std::string> errors;
  for (const auto &text : settings_.listen) {
    auto ma = Multiaddr::parse(text, nullptr);
    auto t = ma ? ma->tcp_target() : std::nullopt;
    if (!t || (t->kind != Multiaddr::TcpTarget::ip4 && t->kind != Multiaddr::TcpTarget::ip6)) {
      errors.push_back(text + ": only /ip4 and /ip6 TCP addresses can be listened on");
      continue;
    }
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(t->host, ec);
    if (ec) {
      errors.push_back(text + ": " + ec.message());
      continue;
    }
    auto acc = std::make_unique<tcp::acceptor>(io_);
    const tcp::endpoint ep(ip, t->port);
    acc->open(ep.protocol(), ec);
    if (!ec && ip.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      errors.push_back(text + ": " + ec.message());
      continue;
    }
    const auto local = acc->local_endpoint(ec);
    bound_.push_back(Multiaddr::from_tcp(local.address().to_string(), local.port()));
    acceptors_.push_back(std::move(acc));
  }
  if (acceptors_.empty()) {
    std::string msg = "could not listen on any address";
    for (const auto &e : errors) msg += "; " + e;
    return msg;
  }
  for (const auto &e : errors) logf(CHORUS_LOG_WARN, "not listening on " + e);
  for (auto &acc : acceptors_) accept_loop(*acc);
  sweep_timer_ = std::make_unique<asio::steady_timer>(io_);
  sweep();
  auto ready = std::make_shared<std::promise<void>>();
  auto fut = ready->get_future();
  thread_ = std::thread([this, ready] {
    thread_id_ = std::this_thread::get_id();
    ready->set_value();
    auto guard = asio::make_work_guard(io_);
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception &e) {  // a bug: log it and keep the node serving
        logf(CHORUS_LOG_ERROR, std::string("p2p network thread: unexpected exception: ") + e.what());
      } catch (...) {
        logf(CHORUS_LOG_ERROR, "p2p network thread: unexpected exception");
      }
    }
  });
  fut.wait();
  post([this] { bootstrap(false); });
  return {};
}

void NodeImpl::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(io_, [this, &done] {
    for (auto &acc : acceptors_) {
      boost::system::error_code ec;
      acc->close(ec);
    }
    if (sweep_timer_) sweep_timer_->cancel();
    for (auto &[id, d] : dials_) {
      if (d.timer) d.timer->cancel();
      if (d.socket) {
        boost::system::error_code ec;
        d.socket->close(ec);
      }
      if (d.resolver) d.resolver->cancel();
    }
    auto conns = conns_;
    for (auto &[id, c] : conns) c->abort(CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    std::vector<uint64_t> dial_ids;
    for (auto &[id, d] : dials_) dial_ids.push_back(id);
    for (auto id : dial_ids) dial_done(id, CHORUS_E_UNAVAILABLE, nullptr, "the p2p plugin is stopping");
    done.set_value();
  });
  fut.wait();
  {
    std::lock_guard lk(post_mu_);
    accepting_ = false;
  }
  io_.stop();
  thread_.join();
  // Run what was queued before the door closed: those tasks see stopping_ and answer their callers
  // with CHORUS_E_UNAVAILABLE (here, on the stopping thread), so every "fn runs exactly once" holds.
  io_.restart();
  try {
    io_.poll();
  } catch (...) {
  }
  conns_.clear();
  acceptors_.clear();
}

bool NodeImpl::run_sync(const std::function<void()> &fn) {
  if (on_network_thread()) {
    fn();
    return true;
  }
  if (!thread_.joinable()) return false;
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  // fn may refer to the caller's stack: we wait until it has run, with no time limit (post
  // guarantees it runs, or that it was refused).
  if (!post([&fn, done] {
        try {
          fn();
        } catch (...) {
        }
        done->set_value();
      }))
    return false;
  fut.wait();
  return true;
}

// ---- inbound -------------------------------------------------------------------------------------

void NodeImpl::accept_loop(tcp::acceptor &acceptor) {
  acceptor.async_accept([this, &acceptor](const boost::system::error_code &ec, tcp::socket sock) {
    if (stopping_ || !acceptor.is_open()) return;
    if (!ec) {
      boost::system::error_code e2;
      const auto remote = sock.remote_endpoint(e2);
      std::string why;
      if (e2 || !admit_inbound(remote, why)) {
        stats_.inbound_rejected++;
        logf(CHORUS_LOG_DEBUG, "refused inbound connection from " + (e2 ? std::string("?") : remote.address().to_string()) +
                                   ": " + why);
        sock.close(e2);
      } else {
        const auto id = ++last_conn_id_;
        auto c = std::make_shared<Connection>(*this, std::move(sock), CHORUS_P2P_DIR_INBOUND, id, std::nullopt,
                                              Multiaddr::from_tcp(remote.address().to_string(), remote.port()), 0);
        conns_.emplace(id, c);
        c->start();
      }
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      logf(CHORUS_LOG_WARN, "accept failed: " + ec.message());
    }
    accept_loop(acceptor);
  });
}

bool NodeImpl::admit_inbound(const tcp::endpoint &remote, std::string &why) {
  const auto &l = settings_.limits;
  const uint64_t now = monotonic_ms();
  inbound_tokens_ = std::min<double>(l.inbound_burst, inbound_tokens_ + (now - inbound_refill_ms_) * l.inbound_per_second / 1000.0);
  inbound_refill_ms_ = now;
  if (inbound_tokens_ < 1) {
    why = "inbound rate limit (" + std::to_string(l.inbound_per_second) + "/s)";
    return false;
  }
  inbound_tokens_ -= 1;
  if (conns_.size() >= l.max_connections) {
    why = "connection limit reached (max_connections " + std::to_string(l.max_connections) + ")";
    return false;
  }
  if (!remote.address().is_loopback()) {
    const std::string ip = remote.address().to_string();
    uint32_t same = 0;
    for (auto &[id, c] : conns_)
      if (c->remote_ip() == ip) ++same;
    if (same >= l.max_connections_per_ip) {
      why = "per-IP limit reached (max_connections_per_ip " + std::to_string(l.max_connections_per_ip) + ")";
      return false;
    }
  }
  return true;
}

void NodeImpl::connection_secured(Connection &c, bool &allowed, std::string &why) {
  if (c.peer() == identity_.peer_id()) {
    allowed = false;
    why = "connected to ourselves";
  }
}

void NodeImpl::connection_open(Connection &c) {
  {
    std::lock_guard lk(connected_mu);
    ++connected[c.peer()];
  }
  auto &rec = peers[c.peer()];
  rec.connections.push_back(&c);
  rec.last_seen_ms = monotonic_ms();
  (c.direction() == CHORUS_P2P_DIR_OUTBOUND ? stats_.connections_outbound : stats_.connections_inbound)++;
  if (c.direction() == CHORUS_P2P_DIR_OUTBOUND) rec.addrs[c.remote_addr().without_peer_id().to_string()] = 0;
  logf(CHORUS_LOG_DEBUG, "connected to " + c.peer().to_base58() + " (" + direction_name(c.direction()) + ", " +
                             c.remote_addr().to_string() + ")");
  if (c.dial_id() != 0) {
    const PeerId peer = c.peer();
    dial_done(c.dial_id(), CHORUS_OK, &peer, {});
  }
  if (rec.connections.size() == 1) emit(CHORUS_P2P_EVENT_CONNECTED, c.peer(), &c, nullptr);
  // Ask the peer who it is (both directions do this, as js and go do).
  const PeerId peer = c.peer();
  auto sink = std::make_unique<IdentifyReaderSink>(*this);
  std::string why;
  Connection *conn = &c;
  OpenRequest req{std::move(sink), [this, peer](chorus_status st, Stream *, const std::string &reason) {
                    if (st != CHORUS_OK)
                      logf(CHORUS_LOG_DEBUG, "identify of " + peer.to_base58() + " failed: " + reason);
                  }};
  Stream *s = nullptr;
  if (conn->open_stream({kIdentifyProtocol}, req, 0, why, &s, true) && s != nullptr)
    conn->stream_close_write(*s);  // the asker sends nothing
  trim_connections();
}

void NodeImpl::connection_closed(Connection &c, const std::string &reason) {
  const auto id = c.id();
  auto keep = conns_.count(id) ? conns_[id] : nullptr;
  conns_.erase(id);
  if (c.dial_id() != 0 && dials_.count(c.dial_id())) {
    // An upgrade of our dial failed: try the next address.
    auto &d = dials_[c.dial_id()];
    d.last_error = reason;
    d.connection = 0;
    // No backoff here: the TCP address works; a wrong identity must not block the right one.
    const auto did = c.dial_id();
    post([this, did] { dial_next(did); });
  }
  auto it = peers.find(c.peer());
  if (it == peers.end()) return;
  auto &conns = it->second.connections;
  const auto pos = std::find(conns.begin(), conns.end(), &c);
  if (pos == conns.end()) return;
  conns.erase(pos);
  {
    std::lock_guard lk(connected_mu);
    auto ci = connected.find(c.peer());
    if (ci != connected.end() && --ci->second == 0) connected.erase(ci);
  }
  (c.direction() == CHORUS_P2P_DIR_OUTBOUND ? stats_.connections_outbound : stats_.connections_inbound)--;
  it->second.last_seen_ms = monotonic_ms();
  if (conns.empty()) emit(CHORUS_P2P_EVENT_DISCONNECTED, c.peer(), &c, nullptr);
  // A peer without connections keeps its address book entries (for re-dialing) but not the rest.
  if (conns.empty() && it->second.addrs.empty()) peers.erase(it);
  // Free the connection after the current handler unwinds.
  if (keep) post([keep] {});
}

// ---- streams -------------------------------------------------------------------------------------

void NodeImpl::register_stream(Stream &s) {
  streams_[s.id] = &s;
  stats_.streams_open++;
  std::lock_guard lk(gates_mu);
  gates[s.id] = s.gate;
}

void NodeImpl::unregister_stream(Stream &s) {
  streams_.erase(s.id);
  stats_.streams_open--;
  std::lock_guard lk(gates_mu);
  gates.erase(s.id);
}

Stream *NodeImpl::find_stream(uint64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

std::vector<std::string> NodeImpl::supported_protocols() const {
  std::vector<std::string> out = {kIdentifyProtocol, kIdentifyPushProtocol, kPingProtocol};
  std::lock_guard lk(protocols_mu);
  for (const auto &[p, h] : protocols) out.push_back(p);
  return out;
}

std::unique_ptr<StreamSink> NodeImpl::accept_stream(Stream &s, std::string &why) {
  if (s.protocol == kIdentifyProtocol) {
    Bytes msg;
    append_lp(msg, identify_message(*s.conn).encode());
    s.conn->internal_write(s, msg);
    s.conn->stream_close_write(s);
    return std::make_unique<IdentifyServerSink>();
  }
  if (s.protocol == kIdentifyPushProtocol) return std::make_unique<IdentifyReaderSink>(*this);
  if (s.protocol == kPingProtocol) return std::make_unique<PingServerSink>(stats_);
  ProtocolHandler h;
  {
    std::lock_guard lk(protocols_mu);
    auto it = protocols.find(s.protocol);
    if (it != protocols.end()) h = it->second;
  }
  if (h.accept == nullptr) {
    why = "no handler for " + s.protocol;
    return nullptr;
  }
  const std::string peer_text = s.conn->peer().to_base58();
  const std::string remote = s.conn->remote_addr().to_string();
  chorus_p2p_stream_info info{};
  info.struct_size = sizeof info;
  info.direction = CHORUS_P2P_DIR_INBOUND;
  info.stream = s.id;
  info.connection = s.conn->id();
  info.peer = s.conn->peer().bytes().data();
  info.peer_len = s.conn->peer().bytes().size();
  info.peer_text = peer_text.c_str();
  info.protocol = s.protocol.c_str();
  info.remote_addr = remote.c_str();
  chorus_p2p_stream_handler handler{};
  handler.struct_size = sizeof handler;
  const chorus_status st = h.accept(h.arg, &info, &handler);
  if (st != CHORUS_OK) {
    why = s.protocol + " handler refused the stream";
    return nullptr;
  }
  return std::make_unique<CHandlerSink>(handler);
}

Connection *NodeImpl::best_connection(const PeerId &peer) {
  auto it = peers.find(peer);
  if (it == peers.end()) return nullptr;
  for (auto c = it->second.connections.rbegin(); c != it->second.connections.rend(); ++c)
    if ((*c)->phase() == Connection::Phase::open) return *c;
  return nullptr;
}

std::vector<Multiaddr> NodeImpl::book_addrs(const PeerId &peer) {
  std::vector<Multiaddr> out;
  auto it = peers.find(peer);
  if (it == peers.end()) return out;
  const uint64_t now = monotonic_ms();
  for (const auto &[text, expiry] : it->second.addrs) {
    if (expiry != 0 && expiry < now) continue;
    if (auto ma = Multiaddr::parse(text, nullptr)) out.push_back(ma->with_peer_id(peer));
  }
  return out;
}

void NodeImpl::open_stream(const PeerId &peer, std::vector<std::string> protocols, std::unique_ptr<StreamSink> sink,
                           uint32_t timeout_ms,
                           std::function<void(chorus_status, Stream *, const std::string &)> done) {
  if (stopping_) {
    done(CHORUS_E_UNAVAILABLE, nullptr, "the p2p plugin is stopping");
    return;
  }
  if (Connection *c = best_connection(peer)) {
    std::string why;
    OpenRequest req{std::move(sink), done};
    if (!c->open_stream(protocols, req, timeout_ms, why)) done(CHORUS_E_BUSY, nullptr, why);
    return;
  }
  auto addrs = book_addrs(peer);
  if (addrs.empty()) {
    done(CHORUS_E_NOT_FOUND, nullptr, "not connected to " + peer.to_base58() + " and no known address");
    return;
  }
  auto shared_sink = std::make_shared<std::unique_ptr<StreamSink>>(std::move(sink));
  dial(peer, std::move(addrs), timeout_ms,
       [this, peer, protocols, shared_sink, timeout_ms, done](chorus_status st, const PeerId *, const std::string &why) {
         if (st != CHORUS_OK) {
           done(st, nullptr, why);
           return;
         }
         Connection *c = best_connection(peer);
         std::string w;
         OpenRequest req{std::move(*shared_sink), done};
         if (c == nullptr || !c->open_stream(protocols, req, timeout_ms, w))
           done(CHORUS_E_IO, nullptr, c == nullptr ? "connection lost right after dialing" : w);
       });
}

// ---- dialing -------------------------------------------------------------------------------------

void NodeImpl::dial(std::optional<PeerId> peer, std::vector<Multiaddr> addrs, uint32_t timeout_ms,
                    std::function<void(chorus_status, const PeerId *, const std::string &)> done) {
  if (stopping_) {
    done(CHORUS_E_UNAVAILABLE, nullptr, "the p2p plugin is stopping");
    return;
  }
  if (peer) {
    if (*peer == identity_.peer_id()) {
      done(CHORUS_E_INVALID_ARG, nullptr, "cannot dial ourselves");
      return;
    }
    if (best_connection(*peer) != nullptr) {
      done(CHORUS_OK, &*peer, {});
      return;
    }
    if (auto it = dial_by_peer_.find(*peer); it != dial_by_peer_.end()) {
      dials_[it->second].waiters.push_back(std::move(done));
      return;
    }
  }
  if (conns_.size() >= settings_.limits.max_connections) {
    stats_.dials_failed++;
    done(CHORUS_E_BUSY, nullptr,
         "connection limit reached (max_connections " + std::to_string(settings_.limits.max_connections) + ")");
    return;
  }
  const uint64_t id = ++last_dial_id_;
  Dial &d = dials_[id];
  d.id = id;
  d.peer = peer;
  d.addrs = std::move(addrs);
  d.waiters.push_back(std::move(done));
  if (peer) dial_by_peer_[*peer] = id;
  d.timer = std::make_unique<asio::steady_timer>(io_);
  d.timer->expires_after(std::chrono::milliseconds(timeout_ms != 0 ? timeout_ms : settings_.limits.dial_timeout_ms));
  d.timer->async_wait([this, id](const boost::system::error_code &ec) {
    if (ec) return;
    auto it = dials_.find(id);
    if (it == dials_.end()) return;
    if (it->second.connection != 0) {
      auto c = conns_.find(it->second.connection);
      if (c != conns_.end()) c->second->abort(CHORUS_E_TIMEOUT, "dial timed out during the handshake");
    }
    dial_done(id, CHORUS_E_TIMEOUT, nullptr,
              "dial timed out" + (it->second.last_error.empty() ? std::string() : " (last error: " + it->second.last_error + ")"));
  });
  dial_next(id);
}

bool NodeImpl::backed_off(const std::string &addr, uint64_t now, std::string &why) {
  auto it = backoff_.find(addr);
  if (it == backoff_.end() || it->second.until_ms <= now) return false;
  why = addr + " failed recently; next attempt allowed in " + std::to_string((it->second.until_ms - now) / 1000 + 1) + " s";
  return true;
}

void NodeImpl::note_dial_failure(const std::string &addr) {
  const auto &l = settings_.limits;
  if (l.dial_backoff_base_ms == 0) return;
  auto &b = backoff_[addr];
  b.delay_ms = b.delay_ms == 0 ? l.dial_backoff_base_ms : std::min<uint64_t>(b.delay_ms * 2, l.dial_backoff_max_ms);
  b.until_ms = monotonic_ms() + b.delay_ms;
}

void NodeImpl::tcp_attempt_done(uint64_t dial_id, const std::shared_ptr<tcp::socket> &sock, const Multiaddr &addr,
                                const boost::system::error_code &ec) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end() || it->second.socket != sock) return;  // finished or moved on
  it->second.attempt_timer.reset();
  if (ec) {
    it->second.last_error =
        addr.to_string() + ": " + (ec == asio::error::operation_aborted ? std::string("connect timed out") : ec.message());
    note_dial_failure(addr.without_peer_id().to_string());
    dial_next(dial_id);
    return;
  }
  dial_connected(dial_id, sock, addr);
}

// One address may not take the whole dial timeout when others are left to try: a blackholed
// address gets a share (at least 3 s) and the next one its turn.
void NodeImpl::arm_attempt_timer(Dial &d, const std::shared_ptr<tcp::socket> &sock) {
  const size_t left = d.addrs.size() - d.next + 1;
  if (left <= 1) return;  // the last address has the rest of the dial timeout
  const uint64_t share = std::max<uint64_t>(3000, settings_.limits.dial_timeout_ms / left);
  d.attempt_timer = std::make_unique<asio::steady_timer>(io_);
  d.attempt_timer->expires_after(std::chrono::milliseconds(share));
  std::weak_ptr<tcp::socket> weak = sock;
  d.attempt_timer->async_wait([weak](const boost::system::error_code &ec) {
    if (ec) return;
    if (auto s = weak.lock()) {
      boost::system::error_code ignored;
      s->close(ignored);  // the connect handler sees operation_aborted and moves on
    }
  });
}

void NodeImpl::dial_next(uint64_t dial_id) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end() || stopping_) return;
  Dial &d = it->second;
  const uint64_t now = monotonic_ms();
  while (d.next < d.addrs.size()) {
    const Multiaddr addr = d.addrs[d.next++];
    const std::string key = addr.without_peer_id().to_string();
    std::string why;
    if (backed_off(key, now, why)) {
      d.last_error = why;
      continue;
    }
    auto t = addr.tcp_target();
    if (!t) {
      d.last_error = addr.to_string() + " is not a TCP address";
      continue;
    }
    auto sock = std::make_shared<tcp::socket>(io_);
    d.socket = sock;
    if (t->kind == Multiaddr::TcpTarget::ip4 || t->kind == Multiaddr::TcpTarget::ip6) {
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address(t->host, ec);
      if (ec) {
        d.last_error = addr.to_string() + ": " + ec.message();
        continue;
      }
      arm_attempt_timer(d, sock);
      sock->async_connect(tcp::endpoint(ip, t->port), [this, dial_id, sock, addr](const boost::system::error_code &ec) {
        tcp_attempt_done(dial_id, sock, addr, ec);
      });
      return;
    }
    auto resolver = std::make_shared<tcp::resolver>(io_);
    d.resolver = resolver;
    const auto family = t->kind == Multiaddr::TcpTarget::dns4 ? tcp::v4() : tcp::v6();
    auto on_resolved = [this, dial_id, sock, addr, resolver](const boost::system::error_code &ec,
                                                                  tcp::resolver::results_type results) {
      auto it2 = dials_.find(dial_id);
      if (it2 == dials_.end()) return;
      if (ec) {
        it2->second.last_error = addr.to_string() + ": cannot resolve: " + ec.message();
        dial_next(dial_id);
        return;
      }
      arm_attempt_timer(it2->second, sock);
      asio::async_connect(*sock, results, [this, dial_id, sock, addr](const boost::system::error_code &e2, const tcp::endpoint &) {
        tcp_attempt_done(dial_id, sock, addr, e2);
      });
    };
    if (t->kind == Multiaddr::TcpTarget::dns)
      resolver->async_resolve(t->host, std::to_string(t->port), on_resolved);
    else
      resolver->async_resolve(family, t->host, std::to_string(t->port), on_resolved);
    return;
  }
  stats_.dials_failed++;
  dial_done(dial_id, CHORUS_E_IO, nullptr,
            d.addrs.empty() ? "no address to dial" : "all addresses failed (last error: " + d.last_error + ")");
}

void NodeImpl::dial_connected(uint64_t dial_id, std::shared_ptr<tcp::socket> sock, const Multiaddr &addr) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end()) return;
  Dial &d = it->second;
  d.socket.reset();
  std::optional<PeerId> expected = addr.peer_id();
  if (!expected) expected = d.peer;
  const auto id = ++last_conn_id_;
  d.connection = id;
  auto c = std::make_shared<Connection>(*this, std::move(*sock), CHORUS_P2P_DIR_OUTBOUND, id, expected, addr, dial_id);
  conns_.emplace(id, c);
  c->start();
}

void NodeImpl::dial_done(uint64_t dial_id, chorus_status status, const PeerId *peer, const std::string &why) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end()) return;
  Dial d = std::move(it->second);
  dials_.erase(it);
  if (d.peer) dial_by_peer_.erase(*d.peer);
  if (d.timer) d.timer->cancel();
  if (d.socket) {
    boost::system::error_code ec;
    d.socket->close(ec);
  }
  if (d.resolver) d.resolver->cancel();
  if (status == CHORUS_OK) stats_.dials_ok++;
  if (status == CHORUS_OK && peer != nullptr && d.addrs.size() > 0) {
    auto &rec = peers[*peer];
    for (const auto &a : d.addrs) backoff_.erase(a.without_peer_id().to_string());
    (void)rec;
  }
  for (auto &w : d.waiters) w(status, peer, why);
}

void NodeImpl::bootstrap(bool retry) {
  if (settings_.bootstrap_peers.empty()) return;
  if (!retry)
    logf(CHORUS_LOG_INFO, "dialing " + std::to_string(settings_.bootstrap_peers.size()) + " bootstrap peer(s) (from " +
                              settings_.bootstrap_source + ")");
  for (const auto &text : settings_.bootstrap_peers) {
    auto ma = Multiaddr::parse(text, nullptr);
    if (!ma) continue;
    auto peer = ma->peer_id();
    if (retry && peer && best_connection(*peer) != nullptr) continue;
    if (peer) peers[*peer].addrs[ma->without_peer_id().to_string()] = 0;
    dial(peer, {*ma}, 0, [this, text](chorus_status st, const PeerId *, const std::string &why) {
      if (st != CHORUS_OK) logf(CHORUS_LOG_WARN, "Failed to connect to bootstrap peer " + text + ": " + why);
      else logf(CHORUS_LOG_INFO, "connected to bootstrap peer " + text);
    });
  }
}

// ---- connection manager --------------------------------------------------------------------------

void NodeImpl::sweep() {
  const uint64_t now = monotonic_ms();
  auto conns = conns_;
  for (auto &[id, c] : conns) c->sweep(now);
  trim_connections();
  for (auto it = backoff_.begin(); it != backoff_.end();)
    it = (it->second.until_ms + settings_.limits.dial_backoff_max_ms < now) ? backoff_.erase(it) : std::next(it);
  for (auto it = peers.begin(); it != peers.end();) {
    auto &addrs = it->second.addrs;
    for (auto a = addrs.begin(); a != addrs.end();) {
      if (a->second != 0 && a->second < now) {
        it->second.identified_addrs.erase(a->first);
        a = addrs.erase(a);
      } else {
        ++a;
      }
    }
    it = (it->second.connections.empty() && addrs.empty()) ? peers.erase(it) : std::next(it);
  }
  if (peers.size() > kMaxPeerRecords) {
    // Forget the disconnected peers seen longest ago (a stream of fresh identities must not grow
    // the book for ever).
    std::vector<std::pair<uint64_t, PeerId>> idle;
    for (const auto &[peer, rec] : peers)
      if (rec.connections.empty()) idle.emplace_back(rec.last_seen_ms, peer);
    std::sort(idle.begin(), idle.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    for (size_t i = 0; i < idle.size() && peers.size() > kMaxPeerRecords; ++i) peers.erase(idle[i].second);
  }
  if (!settings_.bootstrap_peers.empty() && now >= next_bootstrap_ms_) {
    // Keep the bootstrap peers connected: re-dial those we lost (back-off applies per address).
    if (next_bootstrap_ms_ != 0) bootstrap(true);
    next_bootstrap_ms_ = now + 30000;
  }
  if (stopping_ || !sweep_timer_) return;
  sweep_timer_->expires_after(std::chrono::milliseconds(250));
  sweep_timer_->async_wait([this](const boost::system::error_code &ec) {
    if (!ec && !stopping_) sweep();
  });
}

void NodeImpl::trim_connections() {
  const auto &l = settings_.limits;
  size_t open = 0;
  for (auto &[id, c] : conns_)
    if (c->phase() == Connection::Phase::open) ++open;
  if (open <= l.high_watermark) return;
  const uint64_t now = monotonic_ms();
  std::vector<std::shared_ptr<Connection>> candidates;
  for (auto &[id, c] : conns_)
    if (c->phase() == Connection::Phase::open && now - c->opened_ms() >= l.grace_period_ms) candidates.push_back(c);
  // Oldest and least busy first.
  std::sort(candidates.begin(), candidates.end(), [](const auto &a, const auto &b) {
    if (a->stream_count() != b->stream_count()) return a->stream_count() < b->stream_count();
    return a->opened_ms() < b->opened_ms();
  });
  size_t excess = open - l.low_watermark;
  for (auto &c : candidates) {
    if (excess == 0) break;
    logf(CHORUS_LOG_DEBUG, "trimming connection to " + c->peer().to_base58() + " (over the high watermark " +
                               std::to_string(l.high_watermark) + ")");
    c->abort(CHORUS_E_IO, "connection trimmed by the connection manager");
    --excess;
  }
}

// ---- identify ------------------------------------------------------------------------------------

std::vector<std::string> NodeImpl::advertised_addrs() const {
  std::vector<std::string> out;
  struct ifaddrs *ifs = nullptr;
  const bool have_ifs = getifaddrs(&ifs) == 0;
  for (const auto &ma : bound_) {
    auto t = ma.tcp_target();
    if (!t) continue;
    const bool any4 = t->kind == Multiaddr::TcpTarget::ip4 && t->host == "0.0.0.0";
    const bool any6 = t->kind == Multiaddr::TcpTarget::ip6 && t->host == "::";
    if (!any4 && !any6) {
      out.push_back(ma.to_string());
      continue;
    }
    if (!have_ifs) continue;
    for (auto *i = ifs; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
      const bool loop = (i->ifa_flags & IFF_LOOPBACK) != 0;
      if (loop && !settings_.announce_loopback) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (any4 && i->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      } else if (any6 && i->ifa_addr->sa_family == AF_INET6) {
        const auto *a6 = reinterpret_cast<sockaddr_in6 *>(i->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;  // would need a zone
        inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
      } else {
        continue;
      }
      const auto text = Multiaddr::from_tcp(buf, t->port).to_string();
      if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(text);
    }
  }
  if (ifs != nullptr) freeifaddrs(ifs);
  return out;
}

IdentifyMessage NodeImpl::identify_message(const Connection &c) {
  IdentifyMessage m;
  m.protocol_version = "ipfs/0.1.0";
  m.agent_version = settings_.agent_version;
  m.public_key = identity_.public_key_protobuf();
  for (const auto &a : advertised_addrs())
    if (auto ma = Multiaddr::parse(a, nullptr)) m.listen_addrs.push_back(ma->bytes());
  m.observed_addr = c.remote_addr().without_peer_id().bytes();
  m.protocols = supported_protocols();
  return m;
}

void NodeImpl::identify_received(Connection &c, IdentifyMessage msg) {
  // The answer must carry the key of the peer we authenticated in Noise.
  if (msg.public_key) {
    const PeerId claimed = PeerId::from_public_key(*msg.public_key);
    if (!(claimed == c.peer())) {
      stats_.protocol_errors++;
      logf(CHORUS_LOG_WARN, "identify from " + c.peer().to_base58() + " carries another peer's key; ignored");
      return;
    }
  }
  auto it = peers.find(c.peer());
  if (it == peers.end()) return;
  auto &rec = it->second;
  if (!msg.listen_addrs.empty()) {
    // The peer's own list replaces what it told us before (identify or push), bounded per peer;
    // addresses we dialled or were given (expiry 0 or set by add_addrs) stay.
    for (const auto &old : rec.identified_addrs) rec.addrs.erase(old);
    rec.identified_addrs.clear();
    size_t added = 0;
    const uint64_t expiry = monotonic_ms() + 3600 * 1000;
    for (const auto &a : msg.listen_addrs) {
      if (added >= kMaxAddrsPerPeer || rec.addrs.size() >= 2 * kMaxAddrsPerPeer) break;
      if (auto ma = Multiaddr::from_bytes(a, nullptr); ma && ma->tcp_target()) {
        const std::string text = ma->without_peer_id().to_string();
        if (rec.addrs.emplace(text, expiry).second) rec.identified_addrs.insert(text);
        ++added;
      }
    }
  }
  if (rec.identify) {  // a push: merge over what we knew
    auto &old = *rec.identify;
    if (msg.protocol_version) old.protocol_version = msg.protocol_version;
    if (msg.agent_version) old.agent_version = msg.agent_version;
    if (!msg.listen_addrs.empty()) old.listen_addrs = msg.listen_addrs;
    if (!msg.protocols.empty()) old.protocols = msg.protocols;
  } else {
    rec.identify = std::move(msg);
  }
  const auto &m = *rec.identify;
  json j = {{"agent_version", m.agent_version.value_or("")},
            {"protocol_version", m.protocol_version.value_or("")},
            {"protocols", m.protocols},
            {"listen_addrs", json::array()}};
  for (const auto &a : m.listen_addrs)
    if (auto ma = Multiaddr::from_bytes(a, nullptr)) j["listen_addrs"].push_back(ma->to_string());
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  logf(CHORUS_LOG_DEBUG, "identified " + c.peer().to_base58() + ": " + text);
  emit(CHORUS_P2P_EVENT_IDENTIFIED, c.peer(), &c, &text);
}

void NodeImpl::emit(uint32_t type, const PeerId &peer, const Connection *c, const std::string *identify_json) {
  std::vector<std::pair<uint64_t, std::pair<chorus_p2p_event_fn, void *>>> subs;
  {
    std::lock_guard lk(subs_mu);
    subs.assign(subscriptions.begin(), subscriptions.end());
  }
  if (subs.empty()) return;
  const std::string text = peer.to_base58();
  const std::string addr = (c != nullptr && type != CHORUS_P2P_EVENT_IDENTIFIED) ? c->remote_addr().to_string() : "";
  chorus_p2p_event ev{};
  ev.struct_size = sizeof ev;
  ev.type = type;
  ev.peer = peer.bytes().data();
  ev.peer_len = peer.bytes().size();
  ev.peer_text = text.c_str();
  ev.addr = addr.c_str();
  ev.direction = c != nullptr ? c->direction() : 0;
  ev.identify_json = identify_json != nullptr ? identify_json->c_str() : nullptr;
  for (const auto &[id, s] : subs) {
    {
      std::lock_guard lk(subs_mu);  // a callback may have unsubscribed another one
      if (!subscriptions.count(id)) continue;
    }
    s.first(s.second, &ev);
  }
}

std::string NodeImpl::info_json() {
  json protos = supported_protocols();
  json j = {{"peer_id", identity_.peer_id().to_base58()},
            {"peer_id_cid", identity_.peer_id().to_cid()},  // the same id as a CIDv1 (libp2p-key)
            {"addrs", advertised_addrs()},
            {"protocols", protos}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string NodeImpl::peers_json() {
  json arr = json::array();
  for (const auto &[peer, rec] : peers) {
    if (rec.connections.empty()) continue;
    json addrs = json::array();
    for (auto *c : rec.connections) addrs.push_back(c->remote_addr().without_peer_id().to_string());
    json j = {{"peer_id", peer.to_base58()},
              {"addrs", addrs},
              {"direction", direction_name(rec.connections.front()->direction())},
              {"connections", rec.connections.size()},
              {"protocols", rec.identify ? json(rec.identify->protocols) : json::array()},
              {"agent_version", rec.identify ? rec.identify->agent_version.value_or("") : ""}};
    arr.push_back(std::move(j));
  }
  return arr.dump(-1, ' ', false, json::error_handler_t::replace);
}

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
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::list_peers_json(std::string &out, chorus_error *err) {
  if (!impl_->run_sync([&] { out = impl_->peers_json(); })) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::connect(std::string_view target, uint32_t timeout_ms, chorus_p2p_connect_fn fn, void *arg,
                            chorus_error *err) {
  if (fn == nullptr) {
    set_error(err, CHORUS_E_INVALID_ARG, "connect needs a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  std::optional<PeerId> peer;
  std::vector<Multiaddr> addrs;
  std::string why;
  if (!target.empty() && target.front() == '/') {
    auto ma = Multiaddr::parse(target, &why);
    if (!ma) {
      set_error(err, CHORUS_E_INVALID_ARG, "not a multiaddr: " + why);
      return CHORUS_E_INVALID_ARG;
    }
    if (!ma->tcp_target()) {
      set_error(err, CHORUS_E_INVALID_ARG, std::string(target) + " is not a TCP address");
      return CHORUS_E_INVALID_ARG;
    }
    peer = ma->peer_id();
    addrs.push_back(*ma);
  } else {
    peer = PeerId::parse(target, &why);
    if (!peer) {
      set_error(err, CHORUS_E_INVALID_ARG, "not a multiaddr or peer id: " + why);
      return CHORUS_E_INVALID_ARG;
    }
  }
  if (impl_->stopping()) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
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
    impl->dial(peer, std::move(addrs), timeout_ms, [fn, arg](chorus_status st, const PeerId *p, const std::string &why) {
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
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

chorus_status Node::disconnect(const uint8_t *peer, size_t peer_len) {
  auto p = peer_from(peer, peer_len);
  if (!p) return CHORUS_E_INVALID_ARG;
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p] {
    auto it = impl->peers.find(*p);
    if (it == impl->peers.end()) return;
    auto conns = it->second.connections;
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
    set_error(err, CHORUS_E_INVALID_ARG, "malformed peer id");
    return CHORUS_E_INVALID_ARG;
  }
  if (count > 256 || (count > 0 && addrs == nullptr)) {
    set_error(err, CHORUS_E_INVALID_ARG, "at most 256 addresses per call");
    return CHORUS_E_INVALID_ARG;
  }
  std::vector<std::string> texts;
  for (size_t i = 0; i < count; ++i) {
    std::string why;
    auto ma = addrs[i] != nullptr ? Multiaddr::parse(addrs[i], &why) : std::nullopt;
    if (!ma || !ma->tcp_target()) {
      set_error(err, CHORUS_E_INVALID_ARG,
                std::string("not a TCP multiaddr: ") + (addrs[i] != nullptr ? addrs[i] : "(null)") + (why.empty() ? "" : ": " + why));
      return CHORUS_E_INVALID_ARG;
    }
    if (auto own = ma->peer_id(); own && !(*own == *p)) {
      set_error(err, CHORUS_E_INVALID_ARG, std::string(addrs[i]) + " names another peer");
      return CHORUS_E_INVALID_ARG;
    }
    texts.push_back(ma->without_peer_id().to_string());
  }
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p, texts, ttl_ms] {
    auto &book = impl->peers[*p].addrs;
    const uint64_t expiry = ttl_ms == 0 ? 0 : monotonic_ms() + ttl_ms;
    for (const auto &t : texts) {
      if (book.size() >= 2 * kMaxAddrsPerPeer && !book.count(t)) break;  // bounded per peer
      book[t] = expiry;
    }
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

namespace {
bool valid_protocol_id(const char *p) {
  if (p == nullptr) return false;
  const size_t n = std::strlen(p);
  if (n == 0 || n > CHORUS_P2P_PROTOCOL_MAX || p[0] != '/') return false;
  for (size_t i = 0; i < n; ++i)
    if (static_cast<unsigned char>(p[i]) < 0x20 || p[i] == 0x7f) return false;
  return true;
}
}  // namespace

chorus_status Node::set_protocol_handler(const char *protocol, chorus_p2p_accept_fn accept, void *arg,
                                         chorus_error *err) {
  if (!valid_protocol_id(protocol) || accept == nullptr) {
    set_error(err, CHORUS_E_INVALID_ARG, "a protocol id is 1-1023 printable bytes starting with '/', and accept is required");
    return CHORUS_E_INVALID_ARG;
  }
  const std::string p = protocol;
  if (p == kIdentifyProtocol || p == kIdentifyPushProtocol || p == kPingProtocol || p == kNoiseProtocol ||
      p == kYamuxProtocol) {
    set_error(err, CHORUS_E_EXISTS, p + " is served by the p2p plugin itself");
    return CHORUS_E_EXISTS;
  }
  std::lock_guard lk(impl_->protocols_mu);
  if (impl_->protocols.count(p)) {
    set_error(err, CHORUS_E_EXISTS, p + " already has a handler");
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
    set_error(err, CHORUS_E_INVALID_ARG, "malformed peer id");
    return CHORUS_E_INVALID_ARG;
  }
  if (count == 0 || count > 16 || protocols == nullptr || handler == nullptr || fn == nullptr ||
      handler->struct_size < offsetof(chorus_p2p_stream_handler, on_closed) + sizeof(handler->on_closed)) {
    set_error(err, CHORUS_E_INVALID_ARG, "open_stream needs 1-16 protocols, a handler and a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  std::vector<std::string> protos;
  for (size_t i = 0; i < count; ++i) {
    if (!valid_protocol_id(protocols[i])) {
      set_error(err, CHORUS_E_INVALID_ARG, "malformed protocol id");
      return CHORUS_E_INVALID_ARG;
    }
    protos.emplace_back(protocols[i]);
  }
  if (impl_->stopping()) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
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
                        chorus_p2p_stream_info info{};
                        info.struct_size = sizeof info;
                        info.direction = CHORUS_P2P_DIR_OUTBOUND;
                        info.stream = s->id;
                        info.connection = s->conn->id();
                        info.peer = s->conn->peer().bytes().data();
                        info.peer_len = s->conn->peer().bytes().size();
                        info.peer_text = peer_text.c_str();
                        info.protocol = s->protocol.c_str();
                        info.remote_addr = remote.c_str();
                        fn(arg, CHORUS_OK, &info, nullptr);
                      });
  });
  if (!queued) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
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
    s->conn->stream_write(*s, BytesView(data, len));
    return CHORUS_OK;
  }
  auto copy = std::make_shared<Bytes>(data, data + len);
  const bool queued = impl->post([impl, stream, copy] {
    if (Stream *s = impl->find_stream(stream)) s->conn->stream_write(*s, *copy);
  });
  if (!queued) return CHORUS_E_NOT_FOUND;  // the node has stopped: the stream is gone
  return CHORUS_OK;
}

namespace {
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
}  // namespace

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
    for (const auto &[peer, rec] : impl->peers) {
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
    set_error(err, CHORUS_E_INVALID_ARG, "ping needs a peer id and a result callback");
    return CHORUS_E_INVALID_ARG;
  }
  if (impl_->stopping()) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  auto *impl = impl_.get();
  const bool queued = impl->post([impl, p, timeout_ms, fn, arg] {
    // One outcome per ping: the answer, a failure, or the deadline (which also resets the stream).
    struct State {
      bool reported = false;
      uint64_t stream = 0;
      asio::steady_timer timer;
      explicit State(asio::io_context &io) : timer(io) {}
    };
    auto state = std::make_shared<State>(impl->io());
    auto report = [fn, arg, state](chorus_status st, uint64_t rtt, const std::string &why) {
      if (state->reported) return;
      state->reported = true;
      state->timer.cancel();
      if (st == CHORUS_OK) {
        fn(arg, CHORUS_OK, rtt, nullptr);
      } else {
        const auto e = make_error(st, why);
        fn(arg, st, 0, &e);
      }
    };
    const uint32_t limit = timeout_ms != 0 ? timeout_ms : impl->settings().limits.dial_timeout_ms;
    state->timer.expires_after(std::chrono::milliseconds(limit));
    state->timer.async_wait([impl, state, report](const boost::system::error_code &ec) {
      if (ec || state->reported) return;
      report(CHORUS_E_TIMEOUT, 0, "no ping answer within the timeout");
      if (Stream *s = impl->find_stream(state->stream)) s->conn->stream_reset(*s, CHORUS_E_TIMEOUT, "ping timed out");
    });
    auto sink = std::make_unique<PingClientSink>(report);
    auto *raw = sink.get();
    impl->open_stream(*p, {kPingProtocol}, std::move(sink), timeout_ms,
                      [raw, report, state](chorus_status st, Stream *s, const std::string &why) {
                        if (st != CHORUS_OK || s == nullptr) {
                          report(st, 0, why);
                          return;
                        }
                        if (state->reported) {  // timed out while opening
                          s->conn->stream_reset(*s, CHORUS_E_TIMEOUT, "ping timed out");
                          return;
                        }
                        state->stream = s->id;
                        raw->start(*s);
                      });
  });
  if (!queued) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    return CHORUS_E_UNAVAILABLE;
  }
  return CHORUS_OK;
}

std::string Node::listen_addrs_text() const {
  std::string out;
  for (const auto &a : impl_->advertised_addrs()) out += (out.empty() ? "" : " ") + a;
  return out;
}

}  // namespace chorus::p2p

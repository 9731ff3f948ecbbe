// The node's network thread and the glue between its parts: start and stop, the periodic sweep,
// bootstrap dialling, what happens when a connection opens or closes, the stream registry and the
// dispatch of inbound streams to identify, ping or a plugin's handler.
#include "node_impl.hpp"

#include <algorithm>
#include <future>

#include <boost/asio/executor_work_guard.hpp>
#include <nlohmann/json.hpp>

#include "clock.hpp"
#include "connection.hpp"
#include "upgrader.hpp"

namespace chorus::p2p {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

std::string direction_name(uint32_t d) { return d == CHORUS_P2P_DIR_OUTBOUND ? "outbound" : "inbound"; }

}  // namespace

NodeImpl::NodeImpl(Settings settings, Identity identity, NodeLog &log)
    : settings_(std::move(settings)), identity_(std::move(identity)), log_(log) {}

NodeImpl::~NodeImpl() { stop(); }

void NodeImpl::logf(int level, const std::string &msg) {
  if (log_.enabled(level)) log_.write(level, msg);
}

std::string NodeImpl::start() {
  if (auto e = listener_.bind(settings_.listen); !e.empty()) return e;
  listener_.start([this](asio::ip::tcp::socket sock) { conns_.accept(std::move(sock)); });
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
    listener_.close();
    if (sweep_timer_) sweep_timer_->cancel();
    dialer_.cancel();
    conns_.abort_all(CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
    dialer_.fail_all(CHORUS_E_UNAVAILABLE, "the p2p plugin is stopping");
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
  listener_.clear();
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

std::vector<std::string> NodeImpl::advertised_addrs() const {
  return listener_.advertised_addrs(settings_.announce_loopback);
}

// ---- the sweep and bootstrap ---------------------------------------------------------------------

void NodeImpl::sweep() {
  const uint64_t now = monotonic_ms();
  conns_.sweep(now);
  dialer_.sweep(now);
  peerstore_.sweep(now);
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
    if (peer) peerstore_.record(*peer).addrs[ma->without_peer_id().to_string()] = 0;
    dialer_.dial(peer, {*ma}, 0, [this, text](chorus_status st, const PeerId *, const std::string &why) {
      if (st != CHORUS_OK) logf(CHORUS_LOG_WARN, "Failed to connect to bootstrap peer " + text + ": " + why);
      else logf(CHORUS_LOG_INFO, "connected to bootstrap peer " + text);
    });
  }
}

// ---- connections ---------------------------------------------------------------------------------

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
  auto &rec = peerstore_.record(c.peer());
  rec.connections.push_back(&c);
  rec.last_seen_ms = monotonic_ms();
  (c.direction() == CHORUS_P2P_DIR_OUTBOUND ? stats_.connections_outbound : stats_.connections_inbound)++;
  if (c.direction() == CHORUS_P2P_DIR_OUTBOUND) rec.addrs[c.remote_addr().without_peer_id().to_string()] = 0;
  logf(CHORUS_LOG_DEBUG, "connected to " + c.peer().to_base58() + " (" + direction_name(c.direction()) + ", " +
                             c.remote_addr().to_string() + ")");
  if (c.dial_id() != 0) dialer_.upgraded(c.dial_id(), PeerId(c.peer()));
  if (rec.connections.size() == 1) emit(CHORUS_P2P_EVENT_CONNECTED, c.peer(), &c, nullptr);
  identify_.ask(c);
  conns_.trim();
}

void NodeImpl::connection_closed(Connection &c, const std::string &reason) {
  auto keep = conns_.release(c.id());
  // An upgrade of our dial failed: the dialer tries the next address.
  if (c.dial_id() != 0) dialer_.upgrade_failed(c.dial_id(), reason);
  PeerRecord *rec = peerstore_.find(c.peer());
  if (rec == nullptr) return;
  auto &conns = rec->connections;
  const auto pos = std::find(conns.begin(), conns.end(), &c);
  if (pos == conns.end()) return;
  conns.erase(pos);
  {
    std::lock_guard lk(connected_mu);
    auto ci = connected.find(c.peer());
    if (ci != connected.end() && --ci->second == 0) connected.erase(ci);
  }
  (c.direction() == CHORUS_P2P_DIR_OUTBOUND ? stats_.connections_outbound : stats_.connections_inbound)--;
  rec->last_seen_ms = monotonic_ms();
  if (conns.empty()) emit(CHORUS_P2P_EVENT_DISCONNECTED, c.peer(), &c, nullptr);
  peerstore_.forget_if_unused(c.peer());
  // Free the connection after the current handler unwinds.
  if (keep) post([keep] {});
}

Connection *NodeImpl::best_connection(const PeerId &peer) {
  PeerRecord *rec = peerstore_.find(peer);
  if (rec == nullptr) return nullptr;
  for (auto c = rec->connections.rbegin(); c != rec->connections.rend(); ++c)
    if ((*c)->phase() == Connection::Phase::open) return *c;
  return nullptr;
}

std::vector<Multiaddr> NodeImpl::book_addrs(const PeerId &peer) {
  return peerstore_.dialable_addrs(peer, monotonic_ms());
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
  if (auto sink = identify_.accept(s)) return sink;
  if (auto sink = ping_.accept(s)) return sink;
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
  const chorus_p2p_stream_info info = stream_info(s, CHORUS_P2P_DIR_INBOUND, peer_text, remote);
  chorus_p2p_stream_handler handler{};
  handler.struct_size = sizeof handler;
  const chorus_status st = h.accept(h.arg, &info, &handler);
  if (st != CHORUS_OK) {
    why = s.protocol + " handler refused the stream";
    return nullptr;
  }
  return std::make_unique<CHandlerSink>(handler);
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
  dialer_.dial(peer, std::move(addrs), timeout_ms,
               [this, peer, protocols, shared_sink, timeout_ms, done](chorus_status st, const PeerId *,
                                                                      const std::string &why) {
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

// ---- events and introspection --------------------------------------------------------------------

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
  for (const auto &[peer, rec] : peerstore_.records()) {
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

}  // namespace chorus::p2p

#include "swarm/dialer.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/connect.hpp>

#include "clock.hpp"
#include "connection.hpp"
#include "node_impl.hpp"

namespace chorus::p2p {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Dialer::Dialer(NodeImpl &node) : node_(node) {}
Dialer::~Dialer() = default;

void Dialer::dial(std::optional<PeerId> peer, std::vector<Multiaddr> addrs, uint32_t timeout_ms, DoneFn done) {
  if (node_.stopping()) {
    done(CHORUS_E_UNAVAILABLE, nullptr, "the p2p plugin is stopping");
    return;
  }
  const auto &limits = node_.settings().limits;
  if (peer) {
    if (*peer == node_.identity().peer_id()) {
      done(CHORUS_E_INVALID_ARG, nullptr, "cannot dial ourselves");
      return;
    }
    if (node_.best_connection(*peer) != nullptr) {
      done(CHORUS_OK, &*peer, {});
      return;
    }
    if (auto it = dial_by_peer_.find(*peer); it != dial_by_peer_.end()) {
      dials_[it->second].waiters.push_back(std::move(done));
      return;
    }
  }
  if (node_.connections().size() >= limits.max_connections) {
    node_.stats().dials_failed++;
    done(CHORUS_E_BUSY, nullptr,
         "connection limit reached (max_connections " + std::to_string(limits.max_connections) + ")");
    return;
  }
  const uint64_t id = ++last_dial_id_;
  Dial &d = dials_[id];
  d.id = id;
  d.peer = peer;
  d.addrs = std::move(addrs);
  d.waiters.push_back(std::move(done));
  if (peer) dial_by_peer_[*peer] = id;
  d.timer = std::make_unique<asio::steady_timer>(node_.io());
  d.timer->expires_after(std::chrono::milliseconds(timeout_ms != 0 ? timeout_ms : limits.dial_timeout_ms));
  d.timer->async_wait([this, id](const boost::system::error_code &ec) {
    if (ec) return;
    auto it = dials_.find(id);
    if (it == dials_.end()) return;
    if (it->second.connection != 0) {
      if (Connection *c = node_.connections().find(it->second.connection))
        c->abort(CHORUS_E_TIMEOUT, "dial timed out during the handshake");
    }
    finish(id, CHORUS_E_TIMEOUT, nullptr,
           "dial timed out" +
               (it->second.last_error.empty() ? std::string() : " (last error: " + it->second.last_error + ")"));
  });
  dial_next(id);
}

void Dialer::upgraded(uint64_t dial_id, const PeerId &peer) { finish(dial_id, CHORUS_OK, &peer, {}); }

void Dialer::upgrade_failed(uint64_t dial_id, const std::string &reason) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end()) return;
  it->second.last_error = reason;
  it->second.connection = 0;
  // No backoff here: the TCP address works; a wrong identity must not block the right one.
  node_.post([this, dial_id] { dial_next(dial_id); });
}

void Dialer::cancel() {
  for (auto &[id, d] : dials_) {
    if (d.timer) d.timer->cancel();
    if (d.socket) {
      boost::system::error_code ec;
      d.socket->close(ec);
    }
    if (d.resolver) d.resolver->cancel();
  }
}

void Dialer::fail_all(chorus_status status, const std::string &why) {
  std::vector<uint64_t> ids;
  for (auto &[id, d] : dials_) ids.push_back(id);
  for (auto id : ids) finish(id, status, nullptr, why);
}

void Dialer::sweep(uint64_t now_ms) {
  const uint64_t keep_ms = node_.settings().limits.dial_backoff_max_ms;
  for (auto it = backoff_.begin(); it != backoff_.end();)
    it = (it->second.until_ms + keep_ms < now_ms) ? backoff_.erase(it) : std::next(it);
}

bool Dialer::backed_off(const std::string &addr, uint64_t now, std::string &why) {
  auto it = backoff_.find(addr);
  if (it == backoff_.end() || it->second.until_ms <= now) return false;
  why = addr + " failed recently; next attempt allowed in " + std::to_string((it->second.until_ms - now) / 1000 + 1) +
        " s";
  return true;
}

void Dialer::note_failure(const std::string &addr) {
  const auto &l = node_.settings().limits;
  if (l.dial_backoff_base_ms == 0) return;
  auto &b = backoff_[addr];
  b.delay_ms = b.delay_ms == 0 ? l.dial_backoff_base_ms : std::min<uint64_t>(b.delay_ms * 2, l.dial_backoff_max_ms);
  b.until_ms = monotonic_ms() + b.delay_ms;
}

void Dialer::tcp_attempt_done(uint64_t dial_id, const std::shared_ptr<tcp::socket> &sock, const Multiaddr &addr,
                              const boost::system::error_code &ec) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end() || it->second.socket != sock) return;  // finished or moved on
  it->second.attempt_timer.reset();
  if (ec) {
    it->second.last_error = addr.to_string() + ": " +
                            (ec == asio::error::operation_aborted ? std::string("connect timed out") : ec.message());
    note_failure(addr.without_peer_id().to_string());
    dial_next(dial_id);
    return;
  }
  connected(dial_id, sock, addr);
}

// One address may not take the whole dial timeout when others are left to try: a blackholed
// address gets a share (at least 3 s) and the next one its turn.
void Dialer::arm_attempt_timer(Dial &d, const std::shared_ptr<tcp::socket> &sock) {
  const size_t left = d.addrs.size() - d.next + 1;
  if (left <= 1) return;  // the last address has the rest of the dial timeout
  const uint64_t share = std::max<uint64_t>(3000, node_.settings().limits.dial_timeout_ms / left);
  d.attempt_timer = std::make_unique<asio::steady_timer>(node_.io());
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

void Dialer::dial_next(uint64_t dial_id) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end() || node_.stopping()) return;
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
    auto sock = std::make_shared<tcp::socket>(node_.io());
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
    auto resolver = std::make_shared<tcp::resolver>(node_.io());
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
      asio::async_connect(*sock, results,
                          [this, dial_id, sock, addr](const boost::system::error_code &e2, const tcp::endpoint &) {
                            tcp_attempt_done(dial_id, sock, addr, e2);
                          });
    };
    if (t->kind == Multiaddr::TcpTarget::dns)
      resolver->async_resolve(t->host, std::to_string(t->port), on_resolved);
    else
      resolver->async_resolve(family, t->host, std::to_string(t->port), on_resolved);
    return;
  }
  node_.stats().dials_failed++;
  finish(dial_id, CHORUS_E_IO, nullptr,
         d.addrs.empty() ? "no address to dial" : "all addresses failed (last error: " + d.last_error + ")");
}

void Dialer::connected(uint64_t dial_id, std::shared_ptr<tcp::socket> sock, const Multiaddr &addr) {
  auto it = dials_.find(dial_id);
  if (it == dials_.end()) return;
  Dial &d = it->second;
  d.socket.reset();
  std::optional<PeerId> expected = addr.peer_id();
  if (!expected) expected = d.peer;
  d.connection = node_.connections().open_outbound(std::move(*sock), expected, addr, dial_id);
}

void Dialer::finish(uint64_t dial_id, chorus_status status, const PeerId *peer, const std::string &why) {
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
  if (status == CHORUS_OK) node_.stats().dials_ok++;
  if (status == CHORUS_OK && peer != nullptr && d.addrs.size() > 0) {
    node_.peerstore().record(*peer);  // a peer we dialled keeps a record (until the sweep drops it)
    for (const auto &a : d.addrs) backoff_.erase(a.without_peer_id().to_string());
  }
  for (auto &w : d.waiters) w(status, peer, why);
}

}  // namespace chorus::p2p

#include "swarm/conn_manager.hpp"

#include <algorithm>
#include <vector>

#include "clock.hpp"
#include "connection.hpp"
#include "node_impl.hpp"

namespace chorus::p2p {

using tcp = boost::asio::ip::tcp;

ConnManager::ConnManager(NodeImpl &node) : node_(node) {
  inbound_tokens_ = node_.settings().limits.inbound_burst;
  inbound_refill_ms_ = monotonic_ms();
}

ConnManager::~ConnManager() = default;

void ConnManager::accept(tcp::socket sock) {
  boost::system::error_code e2;
  const auto remote = sock.remote_endpoint(e2);
  std::string why;
  if (e2 || !admit_inbound(remote, why)) {
    node_.stats().inbound_rejected++;
    node_.logf(CHORUS_LOG_DEBUG, "refused inbound connection from " +
                                     (e2 ? std::string("?") : remote.address().to_string()) + ": " + why);
    sock.close(e2);
    return;
  }
  const auto id = ++last_conn_id_;
  auto c = std::make_shared<Connection>(node_, std::move(sock), CHORUS_P2P_DIR_INBOUND, id, std::nullopt,
                                        Multiaddr::from_tcp(remote.address().to_string(), remote.port()), 0);
  conns_.emplace(id, c);
  c->start();
}

uint64_t ConnManager::open_outbound(tcp::socket sock, std::optional<PeerId> expected, Multiaddr remote,
                                    uint64_t dial_id) {
  const auto id = ++last_conn_id_;
  auto c = std::make_shared<Connection>(node_, std::move(sock), CHORUS_P2P_DIR_OUTBOUND, id, std::move(expected),
                                        std::move(remote), dial_id);
  conns_.emplace(id, c);
  c->start();
  return id;
}

Connection *ConnManager::find(uint64_t id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

std::shared_ptr<Connection> ConnManager::release(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return nullptr;
  auto keep = std::move(it->second);
  conns_.erase(it);
  return keep;
}

bool ConnManager::admit_inbound(const tcp::endpoint &remote, std::string &why) {
  const auto &l = node_.settings().limits;
  const uint64_t now = monotonic_ms();
  inbound_tokens_ =
      std::min<double>(l.inbound_burst, inbound_tokens_ + (now - inbound_refill_ms_) * l.inbound_per_second / 1000.0);
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

void ConnManager::sweep(uint64_t now_ms) {
  auto conns = conns_;
  for (auto &[id, c] : conns) c->sweep(now_ms);
  trim();
}

void ConnManager::trim() {
  const auto &l = node_.settings().limits;
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
    node_.logf(CHORUS_LOG_DEBUG, "trimming connection to " + c->peer().to_base58() + " (over the high watermark " +
                                     std::to_string(l.high_watermark) + ")");
    c->abort(CHORUS_E_IO, "connection trimmed by the connection manager");
    --excess;
  }
}

void ConnManager::abort_all(chorus_status status, const std::string &reason) {
  auto conns = conns_;
  for (auto &[id, c] : conns) c->abort(status, reason);
}

}  // namespace chorus::p2p

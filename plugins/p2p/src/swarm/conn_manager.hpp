// The connection manager: owns every connection (upgrading or open), admits inbound ones (rate,
// total and per-IP limits) and trims open ones above the high watermark. Network thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>

#include <chorus/status.h>

#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

class Connection;
class NodeImpl;

class ConnManager {
 public:
  using Connections = std::unordered_map<uint64_t, std::shared_ptr<Connection>>;

  explicit ConnManager(NodeImpl &node);
  ~ConnManager();

  // An accepted socket: refused (counted and logged) when over a limit, else upgraded.
  void accept(boost::asio::ip::tcp::socket sock);
  // Starts upgrading a socket we connected for dial `dial_id`; returns the connection's id.
  uint64_t open_outbound(boost::asio::ip::tcp::socket sock, std::optional<PeerId> expected, Multiaddr remote,
                         uint64_t dial_id);
  Connection *find(uint64_t id);
  // Forgets a closed connection; the caller holds the returned reference until it is safe to free.
  std::shared_ptr<Connection> release(uint64_t id);
  size_t size() const { return conns_.size(); }
  const Connections &all() const { return conns_; }

  // Deadlines and keepalive of every connection, then the watermarks.
  void sweep(uint64_t now_ms);
  // Closes the oldest, least busy open connections past their grace period while more than
  // high_watermark are open, down to low_watermark.
  void trim();
  void abort_all(chorus_status status, const std::string &reason);
  void clear() { conns_.clear(); }

 private:
  bool admit_inbound(const boost::asio::ip::tcp::endpoint &remote, std::string &why);

  NodeImpl &node_;
  Connections conns_;
  uint64_t last_conn_id_ = 0;
  double inbound_tokens_ = 0;
  uint64_t inbound_refill_ms_ = 0;
};

}  // namespace chorus::p2p

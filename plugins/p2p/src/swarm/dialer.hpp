// The dialer: connects to a peer by trying its addresses one after another (resolving /dns*, giving
// each a share of the dial timeout), joins concurrent dials of one peer, and backs off from addresses
// that failed recently. The connection it makes is upgraded by the connection manager; the node
// reports the outcome back (upgraded / upgrade_failed). Network thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chorus/status.h>

#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

class NodeImpl;

class Dialer {
 public:
  // peer: who answered (only with CHORUS_OK).
  using DoneFn = std::function<void(chorus_status, const PeerId *, const std::string &)>;

  explicit Dialer(NodeImpl &node);
  ~Dialer();

  // Dials `peer` (when known) at `addrs`; timeout_ms 0 = dial_timeout_ms. A dial of a peer that is
  // already being dialled waits for that one.
  void dial(std::optional<PeerId> peer, std::vector<Multiaddr> addrs, uint32_t timeout_ms, DoneFn done);
  // The connection of dial `dial_id` is open (muxed).
  void upgraded(uint64_t dial_id, const PeerId &peer);
  // The connection of dial `dial_id` failed before it was open: the next address gets its turn.
  void upgrade_failed(uint64_t dial_id, const std::string &reason);

  // Stopping: cancel() stops every timer, socket and lookup; fail_all() then answers every waiter.
  void cancel();
  void fail_all(chorus_status status, const std::string &why);
  // Forgets backoff entries long expired.
  void sweep(uint64_t now_ms);

 private:
  struct Dial {
    uint64_t id = 0;
    std::optional<PeerId> peer;
    std::vector<Multiaddr> addrs;
    size_t next = 0;
    std::vector<DoneFn> waiters;
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::shared_ptr<boost::asio::ip::tcp::socket> socket;  // while TCP connecting
    std::unique_ptr<boost::asio::steady_timer> attempt_timer;
    std::shared_ptr<boost::asio::ip::tcp::resolver> resolver;
    uint64_t connection = 0;  // while upgrading
    std::string last_error;
  };
  struct Backoff {
    uint64_t until_ms = 0;
    uint64_t delay_ms = 0;
  };

  void dial_next(uint64_t dial_id);
  void arm_attempt_timer(Dial &d, const std::shared_ptr<boost::asio::ip::tcp::socket> &sock);
  void tcp_attempt_done(uint64_t dial_id, const std::shared_ptr<boost::asio::ip::tcp::socket> &sock,
                        const Multiaddr &addr, const boost::system::error_code &ec);
  void connected(uint64_t dial_id, std::shared_ptr<boost::asio::ip::tcp::socket> sock, const Multiaddr &addr);
  void finish(uint64_t dial_id, chorus_status status, const PeerId *peer, const std::string &why);
  bool backed_off(const std::string &addr, uint64_t now, std::string &why);
  void note_failure(const std::string &addr);

  NodeImpl &node_;
  uint64_t last_dial_id_ = 0;
  std::map<uint64_t, Dial> dials_;
  std::unordered_map<PeerId, uint64_t> dial_by_peer_;
  std::unordered_map<std::string, Backoff> backoff_;
};

}  // namespace chorus::p2p

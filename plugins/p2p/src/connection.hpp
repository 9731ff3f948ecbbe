// One TCP connection through its whole life: the upgrade (upgrader.hpp: multistream /noise, Noise XX,
// multistream /yamux), then the yamux session carrying streams. Runs entirely on the network thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "noise/noise_transport.hpp"
#include "stream.hpp"
#include "upgrader.hpp"
#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"
#include "yamux/session.hpp"

namespace chorus::p2p {

class NodeImpl;

class Connection : public yamux::Handler, public std::enable_shared_from_this<Connection> {
 public:
  enum class Phase { upgrading, open, closed };

  Connection(NodeImpl &node, boost::asio::ip::tcp::socket socket, uint32_t direction, uint64_t id,
             std::optional<PeerId> expected, Multiaddr remote, uint64_t dial_id);
  ~Connection() override;

  void start();
  // Ends the connection now: every stream ends with `status`, the socket closes.
  void abort(chorus_status status, const std::string &reason);

  // Opens an outbound stream and starts negotiating `protocols`. false (with why, request untouched)
  // when the connection cannot take another stream; when only the peer's acknowledgements lag
  // behind, the open waits in a queue and the request's done runs later.
  bool open_stream(const std::vector<std::string> &protocols, OpenRequest &request, uint32_t timeout_ms,
                   std::string &why, Stream **opened = nullptr, bool internal = false);
  void stream_write(Stream &s, BytesView data);  // the bytes were counted into s.gate->queued by the caller
  // For the node's own protocols (identify, ping): bytes not counted in the gate.
  void internal_write(Stream &s, BytesView data) {
    if (s.ended || s.fin_requested) return;
    s.uncounted += data.size();
    stream_write(s, data);
  }
  size_t pending_send(const Stream &s) const { return s.sendq.size() - s.sendq_off; }
  void stream_close_write(Stream &s);
  void stream_reset(Stream &s, chorus_status status, const std::string &reason);
  void stream_set_paused(Stream &s, bool paused);

  // Periodic checks from the node's sweep: handshake and negotiation deadlines, keepalive.
  void sweep(uint64_t now_ms);
  // Gives back the capacity drained buffers grew to in a burst (connection.cpp, kKeptCapacity).
  void release_drained_buffers();

  uint64_t id() const { return id_; }
  uint64_t dial_id() const { return dial_id_; }
  uint32_t direction() const { return direction_; }
  Phase phase() const { return phase_; }
  const PeerId &peer() const { return peer_; }
  const Multiaddr &remote_addr() const { return remote_; }
  const std::string &remote_ip() const { return remote_ip_; }
  bool remote_is_loopback() const { return remote_loopback_; }
  uint64_t opened_ms() const { return opened_ms_; }
  size_t stream_count() const { return streams_.size(); }

 private:
  // yamux::Handler
  void on_stream_opened(uint32_t yid) override;
  void on_data(uint32_t yid, BytesView data) override;
  void on_remote_fin(uint32_t yid) override;
  void on_stream_reset(uint32_t yid) override;
  void on_stream_closed(uint32_t yid) override;
  void on_writable(uint32_t yid) override;
  void on_go_away(uint32_t code) override;

  void read_more();
  size_t backlog() const;
  void on_read(size_t n);
  bool process_input();  // false: the connection was closed
  void fail_upgrade(UpgradeError error, const std::string &why);
  void secured();
  void muxed();
  Stream *new_stream(uint32_t yid, uint32_t direction, bool internal = false);
  void start_negotiation(Stream &s, Multistream negotiation);
  void negotiate(Stream &s, BytesView data);
  void negotiated(Stream &s, BytesView rest);
  void deliver(Stream &s, BytesView data);
  void end_stream(Stream &s, chorus_status status, const std::string &reason);
  void mark_ready(Stream &s);
  void pump();       // moves queued stream bytes into yamux, within windows and the socket budget
  void flush();      // encrypts yamux output and starts a socket write
  void schedule_flush();
  void start_write();
  void retry_pending_opens();

  NodeImpl &node_;
  boost::asio::ip::tcp::socket socket_;
  const uint32_t direction_;
  const uint64_t id_;
  const uint64_t dial_id_;
  PeerId peer_;
  Multiaddr remote_;
  std::string remote_ip_;
  bool remote_loopback_ = false;
  uint64_t opened_ms_ = 0;
  uint64_t handshake_deadline_ms_ = 0;
  Phase phase_ = Phase::upgrading;

  std::unique_ptr<Upgrader> upgrader_;      // until muxed
  std::optional<NoiseTransport> cipher_;    // once secured
  std::unique_ptr<yamux::Session> mux_;     // once muxed

  Bytes rbuf_;        // raw bytes from the socket not processed yet
  size_t rlen_ = 0;
  size_t read_space_ = 0;         // how much to ask the socket for next
  size_t last_read_request_ = 0;
  bool full_read_since_sweep_ = false;  // a read filled its buffer: keep read_space_
  Bytes plain_;       // decrypted bytes not processed yet
  Bytes mux_out_;     // yamux output waiting for encryption
  WireBytes wbuf_;    // what waits for the socket: handshake bytes, then ciphertext
  WireBytes wbuf_inflight_;
  bool writing_ = false;
  bool reading_ = false;
  bool read_blocked_ = false;  // not reading: too much output waits for the peer to read
  uint64_t last_rx_ms_ = 0;    // keepalive: when the peer last sent anything
  bool keepalive_sent_ = false;
  bool flush_scheduled_ = false;

  std::unordered_map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::deque<uint32_t> ready_;  // streams with queued bytes and send window
  // Ended streams, freed at the next safe point: a callback may end the stream it is being told
  // about (reset from inside open_stream's result) and still read the info it was handed.
  std::vector<std::unique_ptr<Stream>> graveyard_;
  size_t outbound_streams_ = 0;  // open outbound streams (the per-direction limit)
  // Outbound opens waiting for the peer to acknowledge earlier ones (yamux's backlog of 256).
  struct PendingOpen {
    std::vector<std::string> protocols;
    OpenRequest request;
    uint32_t timeout_ms;
    uint64_t deadline_ms;
    bool internal;
  };
  std::deque<PendingOpen> pending_opens_;
};

}  // namespace chorus::p2p

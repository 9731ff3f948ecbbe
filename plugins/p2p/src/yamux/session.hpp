// A yamux session (/yamux/1.0.0), sans I/O.
//
// The session never touches a socket. The connection feeds it the bytes it reads (feed), collects the
// bytes to write (take_output) and learns about stream events through a Handler whose methods are
// called synchronously from feed() and from the Session methods below. Handler methods may call back
// into the Session (write, close, reset, consume, open_stream, ping, go_away, take_output), but never
// into feed().
//
// Stream data is not buffered here: a Data frame's payload is handed to Handler::on_data straight from
// feed()'s input, in as many pieces as the transport delivered it. The only copies are of a header
// split across two feed() calls (12 bytes at most) and of written data into the output buffer.
//
// Flow control: every stream starts with a 256 KiB window each way. The receive window is returned to
// the peer as the application reports consumed bytes (consume), once half the window is consumed.
// With auto-tuning on, a window that the application drains within about two round trips is doubled
// (up to max_window) so that one stream can fill a fast link.
//
// Lifetime of a stream id, as seen by the Handler: on_stream_opened (inbound only), any number of
// on_data / on_writable, at most one on_remote_fin, then exactly one of on_stream_closed (both sides
// sent FIN) or on_stream_reset (the peer reset it, or we reset it because the peer broke the stream's
// rules) -- unless the application itself called reset(), after which no call names the id again.
// A session-level protocol error (feed returns Status::failed) ends all streams without per-stream
// calls: the connection sends take_output() (a Go Away) and closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "wire/bytes.hpp"
#include "yamux/frame.hpp"

namespace chorus::p2p::yamux {

struct Config {
  bool client = false;                    // the dialer: opens odd stream ids; the listener opens even ones
  uint32_t initial_window = kDefaultWindow;  // our receive window per stream (raised to 256 KiB at least)
  uint32_t max_window = 16 * 1024 * 1024;    // ceiling for auto-tuning
  uint32_t max_inbound_streams = 1000;       // more inbound opens are refused with RST
  uint32_t max_outbound_streams = 1000;      // open_stream returns 0 beyond this
  uint32_t max_ack_backlog = 256;            // outbound streams the peer has not ACKed yet
  uint32_t max_frame_payload = 64 * 1024 - 12;  // larger writes are split into several Data frames
  // Bytes the application may hold unconsumed per stream. The receive window never exceeds it, so it
  // caps max_window (but never below the 256 KiB every peer assumes).
  size_t max_inbound_buffer_per_stream = 16 * 1024 * 1024;
  bool auto_tune_window = true;  // grow receive windows of fast-consuming streams up to max_window
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void on_stream_opened(uint32_t id) = 0;          // the peer opened a stream and we accepted it
  virtual void on_data(uint32_t id, BytesView data) = 0;   // data is valid only during the call
  virtual void on_remote_fin(uint32_t id) = 0;             // the peer will send no more data
  virtual void on_stream_reset(uint32_t id) = 0;           // stream gone: remote RST or a stream violation
  virtual void on_stream_closed(uint32_t id) = 0;          // both sides sent FIN; state freed
  virtual void on_writable(uint32_t id) = 0;  // the send window grew after write() accepted less than asked
  virtual void on_go_away(uint32_t code) = 0;  // the peer will accept no new streams
};

class Session {
 public:
  enum class Status { ok, failed };

  Session(Config config, Handler &handler);
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Processes bytes read from the connection, in any chunking. Status::failed means a session-level
  // protocol error (see error()); a Go Away frame is then queued and every later call is refused.
  Status feed(BytesView in);

  // Appends everything queued for the peer to out (swaps buffers when out is empty: no copy).
  void take_output(Bytes &out);
  bool has_output() const { return !out_.empty(); }

  // Opens an outbound stream; 0 when a limit is reached, either side is going away, or the session failed.
  // The SYN is queued at once and data may follow it immediately (we never wait for the ACK).
  uint32_t open_stream();
  // Queues as much of data as the peer's window allows and returns that count. When it is less than
  // data.size(), on_writable(id) follows once the window grows. 0 for unknown or half-closed streams.
  size_t write(uint32_t id, BytesView data);
  void close(uint32_t id);                // half close (FIN); frees the stream if the peer's FIN came already
  void reset(uint32_t id);                // RST; frees the stream, no Handler call follows for id
  void consume(uint32_t id, size_t n);    // the application is done with n received bytes of id
  void ping(uint32_t opaque);             // the ACK is absorbed here and feeds the round-trip estimate
  void go_away(uint32_t code);            // no new streams either way; existing ones continue

  size_t stream_count() const { return streams_.size(); }
  bool failed() const { return failed_; }
  bool remote_going_away() const { return remote_go_away_; }
  const std::string &error() const { return error_; }
  uint32_t send_window(uint32_t id) const;     // bytes we may still send on id (0 if unknown)
  uint32_t receive_window(uint32_t id) const;  // the stream's current full receive window (0 if unknown)

 private:
  struct Stream {
    uint32_t send_window = kDefaultWindow;  // bytes we may still send
    uint32_t recv_window = kDefaultWindow;  // bytes the peer may still send (granted - received)
    uint32_t window_size = kDefaultWindow;  // the full receive window: recv_window + unconsumed + credit
    uint32_t unconsumed = 0;                // delivered to the application, not yet consumed
    uint32_t pending_credit = 0;            // consumed, not yet granted back in a Window Update
    uint64_t last_grant_us = 0;             // when the window was last granted (auto-tuning)
    bool outbound = false;
    bool acked = true;  // outbound: the peer acknowledged the SYN
    bool local_fin = false;
    bool remote_fin = false;
    bool want_writable = false;  // write() was short: call on_writable when the window grows
  };
  using StreamMap = std::unordered_map<uint32_t, Stream>;

  bool is_local_id(uint32_t id) const { return (id & 1u) == (config_.client ? 1u : 0u); }
  Stream *find(uint32_t id);
  bool handle_header(const Header &h);
  bool handle_stream_frame(const Header &h);
  void accept_inbound(uint32_t id);
  void deliver_payload(BytesView chunk);
  void finish_stream_frame(uint32_t id, uint16_t flags);
  void erase_stream(uint32_t id);
  void remember_closed(uint32_t id);
  void grant_window(uint32_t id, Stream &s);
  void queue_frame(FrameType type, uint16_t flags, uint32_t id, uint32_t length);
  bool fail(std::string reason);

  Config config_;
  Handler &handler_;
  Bytes out_;
  StreamMap streams_;
  uint64_t next_id_;              // next outbound stream id (64-bit so exhaustion is detectable)
  uint32_t highest_inbound_ = 0;  // highest id the peer has opened (SYN seen)
  uint32_t inbound_count_ = 0, outbound_count_ = 0, unacked_outbound_ = 0;

  // Peer-opened ids that were closed lately, so a SYN reusing one is caught. Bounded FIFO.
  std::unordered_set<uint32_t> recent_closed_;
  std::vector<uint32_t> recent_ring_;
  size_t recent_next_ = 0;

  // Frame parsing state across feed() calls.
  uint8_t header_buf_[kHeaderSize];
  size_t header_have_ = 0;
  uint32_t payload_left_ = 0;  // Data payload bytes still to come
  uint32_t payload_id_ = 0;
  uint16_t payload_flags_ = 0;
  bool payload_deliver_ = false;  // false: the stream is gone, drop the bytes

  uint64_t rtt_us_;  // round-trip estimate for auto-tuning (from our pings, else a default)
  bool ping_outstanding_ = false;
  uint32_t ping_opaque_ = 0;
  uint64_t ping_sent_us_ = 0;

  bool local_go_away_ = false, remote_go_away_ = false, failed_ = false;
  std::string error_;
};

}  // namespace chorus::p2p::yamux

// A stream on a connection and what consumes its bytes. Runs on the network thread, except the
// StreamGate, which other threads read (write's back-pressure check).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <chorus/services/p2p_host_v1.h>

#include "wire/bytes.hpp"
#include "wire/multistream.hpp"

namespace chorus::p2p {

class Connection;
struct Stream;

// What consumes a stream's bytes once its protocol is agreed: a plugin's C handler or one of the
// node's own protocols (identify, ping).
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void data(Stream &s, BytesView bytes) = 0;
  virtual void eof(Stream &) {}
  virtual void writable(Stream &) {}
  // Last call. status CHORUS_OK = both sides closed cleanly.
  virtual void closed(Stream &s, chorus_status status, const std::string &reason) = 0;
};

// A plugin's C handler (chorus_p2p_stream_handler).
class CHandlerSink final : public StreamSink {
 public:
  explicit CHandlerSink(const chorus_p2p_stream_handler &h);
  void data(Stream &s, BytesView b) override;
  void eof(Stream &s) override;
  void writable(Stream &s) override;
  void closed(Stream &s, chorus_status status, const std::string &reason) override;

 private:
  chorus_p2p_stream_handler h_;
};

// The part of a stream other threads may look at (write's back-pressure check), and the bytes
// written from other threads on their way to the network thread.
struct StreamGate {
  std::atomic<size_t> queued{0};  // bytes accepted by write() and not yet handed to yamux
  std::atomic<bool> alive{true};
  std::atomic<bool> want_writable{false};  // write() answered BUSY: call the sink's writable once drained
  std::atomic<bool> write_closed{false};   // close_write was called: further writes are errors
  // write() from another thread appends here and posts one task to move the bytes to the stream
  // only when none is queued yet: a busy writer costs one post (and at most one wake-up of the
  // network thread) per batch of writes, not one per write, and the batch leaves as one yamux frame.
  std::mutex incoming_mu;
  Bytes incoming;                 // incoming_mu
  bool incoming_posted = false;   // incoming_mu: the task is queued and has not run yet
};

// An outbound stream waiting for multistream-select to finish.
struct OpenRequest {
  std::unique_ptr<StreamSink> sink;
  std::function<void(chorus_status, Stream *, const std::string &)> done;  // Stream* only on success
};

struct Stream {
  uint64_t id = 0;
  uint32_t yid = 0;  // the yamux stream id
  Connection *conn = nullptr;
  uint32_t direction = CHORUS_P2P_DIR_INBOUND;
  std::string protocol;
  std::unique_ptr<Multistream> negotiation;  // set while the protocol is not agreed yet
  uint64_t negotiation_deadline_ms = 0;
  std::optional<OpenRequest> open;           // outbound, until negotiated
  std::unique_ptr<StreamSink> sink;
  std::shared_ptr<StreamGate> gate = std::make_shared<StreamGate>();
  Bytes sendq;            // queued by write(), not yet accepted by yamux
  size_t sendq_off = 0;
  size_t uncounted = 0;   // negotiation bytes at the front of sendq (not part of gate->queued)
  Bytes held;             // received while paused (bounded by the yamux window)
  bool paused = false;
  bool fin_requested = false;  // close_write: FIN once sendq is empty
  bool fin_sent = false;
  bool remote_fin = false;
  bool eof_pending = false;    // remote FIN seen while paused with held bytes
  bool in_ready = false;       // listed in the connection's ready queue
  bool ended = false;
  bool close_pending = false;  // yamux closed it while held bytes await a paused handler
  bool internal = false;       // opened by the node itself (identify): not counted against the limit
};

// The chorus_p2p_stream_info describing s (pointers into s and into the strings given, which the
// caller keeps alive while the info is in use).
chorus_p2p_stream_info stream_info(const Stream &s, uint32_t direction, const std::string &peer_text,
                                   const std::string &remote_addr);

}  // namespace chorus::p2p

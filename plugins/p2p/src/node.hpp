// The libp2p node behind chorus.p2p.host v1: one network thread running Boost.Asio, owning every
// listener, connection and stream. This header is the node's boundary towards the plugin (no Asio
// here); its functions mirror the C service table one to one, are safe to call from any thread, and
// are implemented beside the table's trampolines in service_table.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <chorus/services/p2p_host_v1.h>

#include "wire/identity.hpp"
#include "settings.hpp"

namespace chorus::p2p {

// Counters the plugin turns into metrics. Written by the network thread, read by anyone.
struct NodeStats {
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> connections_inbound{0}, connections_outbound{0};  // open now
  std::atomic<uint64_t> streams_open{0};
  std::atomic<uint64_t> streams_opened_total{0};
  std::atomic<uint64_t> dials_ok{0}, dials_failed{0};
  std::atomic<uint64_t> inbound_rejected{0};
  // Handshake failures by reason (the metric's label): timeout, noise, multistream, muxer,
  // peer_id_mismatch, io.
  std::atomic<uint64_t> hs_fail_timeout{0}, hs_fail_noise{0}, hs_fail_multistream{0}, hs_fail_peer_id{0},
      hs_fail_io{0};
  std::atomic<uint64_t> protocol_errors{0};  // yamux / stream-level violations that reset something
};

// Log sink (the plugin forwards to the host's logger). level: CHORUS_LOG_* values.
class NodeLog {
 public:
  virtual ~NodeLog() = default;
  virtual bool enabled(int level) const = 0;
  virtual void write(int level, const std::string &msg) = 0;
};

class NodeImpl;

class Node {
 public:
  Node(Settings settings, Identity identity, NodeLog &log);
  ~Node();
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;

  // Binds the listeners and starts the network thread. Returns "" or why it could not start (no
  // listen address could be bound). Dials the bootstrap peers in the background.
  std::string start();
  // Closes every connection (open streams end with CHORUS_E_UNAVAILABLE) and joins the thread.
  void stop();

  const NodeStats &stats() const;
  const Identity &identity() const;
  // The bound listen addresses, e.g. /ip4/0.0.0.0/tcp/9000 (after start).
  std::string listen_addrs_text() const;

  // The service table's operations (see p2p_host_v1.h for the contract of each).
  chorus_status get_info_json(std::string &out, chorus_error *err);
  chorus_status list_peers_json(std::string &out, chorus_error *err);
  chorus_status connect(std::string_view target, uint32_t timeout_ms, chorus_p2p_connect_fn fn, void *arg,
                        chorus_error *err);
  chorus_status disconnect(const uint8_t *peer, size_t peer_len);
  int is_connected(const uint8_t *peer, size_t peer_len);
  chorus_status add_addrs(const uint8_t *peer, size_t peer_len, const char *const *addrs, size_t count,
                          uint64_t ttl_ms, chorus_error *err);
  chorus_status peer_addrs_json(const uint8_t *peer, size_t peer_len, std::string &out);
  chorus_status set_protocol_handler(const char *protocol, chorus_p2p_accept_fn accept, void *arg,
                                     chorus_error *err);
  chorus_status remove_protocol_handler(const char *protocol);
  chorus_status open_stream(const uint8_t *peer, size_t peer_len, const char *const *protocols, size_t count,
                            const chorus_p2p_stream_handler *handler, uint32_t timeout_ms, chorus_p2p_open_fn fn,
                            void *arg, chorus_error *err);
  chorus_status write(uint64_t stream, const uint8_t *data, size_t len);
  chorus_status close_write(uint64_t stream);
  chorus_status reset(uint64_t stream);
  chorus_status set_read_paused(uint64_t stream, int paused);
  chorus_status subscribe(chorus_p2p_event_fn fn, void *arg, uint64_t *out_sub);
  chorus_status unsubscribe(uint64_t sub);
  chorus_status ping(const uint8_t *peer, size_t peer_len, uint32_t timeout_ms,
                     void (*fn)(void *, chorus_status, uint64_t, const chorus_error *), void *arg,
                     chorus_error *err);

 private:
  std::unique_ptr<NodeImpl> impl_;
};

}  // namespace chorus::p2p

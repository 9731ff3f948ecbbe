// Ping (/ipfs/ping/1.0.0): we echo the peer's 32-byte payloads, and measure a round trip on request.
// Network thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <chorus/status.h>

#include "stream.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

inline constexpr const char *kPingProtocol = "/ipfs/ping/1.0.0";

class NodeImpl;

class PingService {
 public:
  // Exactly one call per ping: CHORUS_OK with the round trip in microseconds, or why not.
  using ReportFn = std::function<void(chorus_status, uint64_t rtt_us, const std::string &why)>;

  explicit PingService(NodeImpl &node) : node_(node) {}

  // An inbound /ipfs/ping/1.0.0 stream: the echoing side.
  std::unique_ptr<StreamSink> accept(Stream &s);
  // One round trip to `peer` (dialled if needed). timeout_ms 0 = dial_timeout_ms; on the deadline
  // the stream is reset.
  void ping(const PeerId &peer, uint32_t timeout_ms, ReportFn report);

 private:
  NodeImpl &node_;
};

}  // namespace chorus::p2p

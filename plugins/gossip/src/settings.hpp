// The gossip plugin's configuration (the `config:` subtree of plugins.gossip). kConfigSchema declares
// every key with its type, range and default; the host applies it before create, so parse_settings
// reads a complete, valid config. README.md lists the keys.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "router.hpp"
#include "score.hpp"
#include "signature.hpp"

namespace chorus::gossip {

struct ProbeSettings {
  bool enabled = true;
  uint64_t interval_ms = 10000;
  uint64_t timeout_ms = 3000;
};

struct Settings {
  SignaturePolicy signature_policy = SignaturePolicy::kStrictSign;
  size_t max_message_bytes = 1 << 20;
  size_t peer_queue_bytes = 4 << 20;
  // A local publisher waits up to this long while every peer's send queue is congested (0: never).
  uint32_t publish_wait_ms = 1000;
  // Threads that check signatures off the gossip thread; -1: one per spare core, up to 4.
  int verify_threads = -1;
  std::vector<std::string> topics;  // joined at start
  size_t max_topics = 1000;         // local joins; also subscriptions tracked per peer
  uint32_t hop_limit = 5;
  RouterParams router;
  bool scoring_enabled = true;
  PeerScoreParams score;
  PeerScoreThresholds thresholds;
  ProbeSettings probe;

  // A frame larger than this resets the inbound stream: one full message plus room for control.
  size_t max_rpc_bytes() const { return max_message_bytes + (64u << 10); }
};

// The JSON Schema of plugins.gossip.config (the descriptor's config_schema).
extern const char kConfigSchema[];

// Reads a config that kConfigSchema has validated and completed, and checks what the schema cannot
// express (d_lo <= d <= d_hi, thresholds in order, ...). Throws
// std::invalid_argument("gossip.config.<key>: <what>").
Settings parse_settings(std::string_view config_json);

}  // namespace chorus::gossip

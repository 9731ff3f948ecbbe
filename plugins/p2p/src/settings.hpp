// The p2p plugin's configuration: its `config:` subtree (JSON) plus the CHORUS environment variables,
// validated in one place so every error names the key it is about.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::p2p {

struct Limits {
  uint32_t max_connections = 50;          // CHORUS MaxConnections (docs/contract.md, CHORUS defaults)
  uint32_t max_connections_per_ip = 3;    // CHORUS MaxPeersPerIP (same); loopback is exempt
  uint32_t low_watermark = 40;            // trim down to this many connections ...
  uint32_t high_watermark = 48;           // ... once there are more than this many
  uint32_t grace_period_ms = 20000;       // a new connection is never trimmed before this age
  uint32_t max_streams_per_connection = 1000;  // inbound and outbound each (js-libp2p's default)
  uint32_t dial_timeout_ms = 30000;       // CHORUS ConnectionTimeout (same): TCP + Noise + yamux
  uint32_t handshake_timeout_ms = 10000;  // an inbound connection must be secured and muxed by then
  uint32_t negotiation_timeout_ms = 10000;  // a stream must agree on its protocol by then
  uint32_t dial_backoff_base_ms = 5000;   // after a failed dial, doubled per failure ...
  uint32_t dial_backoff_max_ms = 300000;  // ... up to this
  double inbound_per_second = 50;         // accepted connection attempts per second (token bucket)
  uint32_t inbound_burst = 100;
  // Per-stream send queue high-water mark (write -> BUSY). One yamux window (256 KiB) queued behind
  // the one in flight keeps a stream busy; more only spreads queued bytes over more memory than the
  // caches hold when many streams send at once.
  uint32_t stream_send_buffer = 256 * 1024;

  bool operator==(const Limits &) const = default;
};

struct Settings {
  std::vector<std::string> listen;           // multiaddr text
  std::vector<std::string> bootstrap_peers;  // multiaddr text with /p2p/
  std::string bootstrap_source;              // "assignment", "config", "env" or "none"
  std::string assignment_file;               // JSON {"bootstrap_peers": [...]}, re-read on reload
  std::string key_file;                      // Ed25519 identity (libp2p PrivateKey protobuf, mode 0600)
  std::string agent_version;                 // sent in identify
  bool announce_loopback = true;             // advertise 127.0.0.1/::1 in identify (useful on one host)
  Limits limits;
};

using EnvLookup = std::function<std::optional<std::string>(const char *)>;

// Parses and validates. Throws std::invalid_argument with a message naming the key (e.g.
// "p2p.config.limits.max_connections: must be an integer between 1 and 100000").
// `state_dir` is the host's state directory (default key file location).
Settings parse_settings(std::string_view config_json, const std::string &state_dir, const EnvLookup &env);

// Reads the bootstrap peers of a WHOOSH-style assignment file ({"bootstrap_peers": [...]}).
std::vector<std::string> read_assignment_peers(const std::string &path);


}  // namespace chorus::p2p

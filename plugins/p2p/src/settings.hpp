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

// Every value comes from the config after the host applied kConfigSchema; the defaults live there.
struct Limits {
  uint32_t max_connections = 0;         // CHORUS MaxConnections (docs/contract.md, CHORUS defaults)
  uint32_t max_connections_per_ip = 0;  // CHORUS MaxPeersPerIP (same); loopback is exempt
  uint32_t low_watermark = 0;           // trim down to this many connections ...
  uint32_t high_watermark = 0;          // ... once there are more than this many
  uint32_t grace_period_ms = 0;         // a new connection is never trimmed before this age
  uint32_t max_streams_per_connection = 0;  // inbound and outbound each
  uint32_t dial_timeout_ms = 0;         // CHORUS ConnectionTimeout (same): TCP + Noise + yamux
  uint32_t handshake_timeout_ms = 0;    // an inbound connection must be secured and muxed by then
  uint32_t negotiation_timeout_ms = 0;  // a stream must agree on its protocol by then
  uint32_t dial_backoff_base_ms = 0;    // after a failed dial, doubled per failure ...
  uint32_t dial_backoff_max_ms = 0;     // ... up to this
  double inbound_per_second = 0;        // accepted connection attempts per second (token bucket)
  uint32_t inbound_burst = 0;
  uint32_t stream_send_buffer = 0;      // per-stream send queue high-water mark (write -> BUSY)

  bool operator==(const Limits &) const = default;
};

struct Settings {
  std::vector<std::string> listen;           // multiaddr text
  std::vector<std::string> bootstrap_peers;  // multiaddr text with /p2p/
  std::string bootstrap_source;              // "assignment", "config", "env" or "none"
  std::string assignment_file;               // JSON {"bootstrap_peers": [...]}, re-read on reload
  std::string key_file;                      // Ed25519 identity (libp2p PrivateKey protobuf, mode 0600)
  std::string agent_version;                 // sent in identify
  uint64_t status_interval_ms = 60000;       // the peer-count status line; 0 = never
  std::string assignment_problem;            // why the assignment file was not used ("" = it was, or none)
  bool announce_loopback = false;            // advertise 127.0.0.1/::1 in identify (useful on one host)
  Limits limits;
};

// The JSON Schema of plugins.p2p.config (the descriptor's config_schema): the one declaration of the
// plugin's keys, their types, ranges and defaults. The host (and the fake host in tests) validates the
// config against it and fills in the defaults before the plugin sees it.
extern const char kConfigSchema[];

using EnvLookup = std::function<std::optional<std::string>(const char *)>;

// Reads a config that kConfigSchema has already validated and completed, adds the environment and
// checks what the schema cannot express (multiaddr syntax, the limits' cross-field rules, the
// assignment file). Throws std::invalid_argument with a message naming the key (e.g.
// "p2p.config.limits.low_watermark: must not exceed limits.high_watermark").
// `state_dir` is the host's state directory (default key file location).
// agent_assignment_peers: the bootstrap peers of the agent's assignment (host_info
// "bootstrap_peers", loaded by the host from agent.assignment_file / ASSIGN_URL); they come first.
Settings parse_settings(std::string_view config_json, const std::string &state_dir, const EnvLookup &env,
                        const std::vector<std::string> &agent_assignment_peers = {});

// Reads the bootstrap peers of a WHOOSH-style assignment file ({"bootstrap_peers": [...]}).
std::vector<std::string> read_assignment_peers(const std::string &path);


}  // namespace chorus::p2p

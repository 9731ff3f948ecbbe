// The mdns plugin's configuration (the `config:` subtree of plugins.mdns). kConfigSchema declares its
// keys, types, ranges and defaults; the host applies it, so parse_settings reads a complete, valid config.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::mdns {

struct Settings {
  std::string service_tag;             // service _<tag>._udp.local; "p2p" = standard libp2p
  uint32_t query_interval_ms = 0;      // periodic query (jittered +-10 %)
  uint32_t ttl_s = 0;                  // TTL of our records
  uint32_t connect_timeout_ms = 0;     // per dial of a discovered peer
  uint32_t queue_size = 0;             // discovered peers waiting to be dialed
  uint32_t max_concurrent_connects = 0;  // dials in flight
  uint32_t max_peers = 0;              // tracked discovered peers
  uint32_t interface_scan_ms = 0;      // re-scan interfaces and our addresses
  uint32_t response_delay_max_ms = 0;  // answer delay 20..max ms (RFC 6762 6), min 0
  uint32_t packets_per_second = 0;     // incoming packets processed (burst 2x)
  uint32_t port = 0;
  bool ipv4 = false;
  bool ipv6 = false;
  bool auto_connect = false;           // dial discovered peers (as CHORUS does)
  std::vector<std::string> interfaces;  // restrict to these names; empty = all
};

// The JSON Schema of plugins.mdns.config (the descriptor's config_schema): the one declaration of the
// plugin's keys, their types, ranges and defaults.
extern const char kConfigSchema[];

// Reads a config that kConfigSchema has validated and completed, and checks what the schema cannot
// express (ipv4 and ipv6 not both off). Throws std::invalid_argument("mdns.config.<key>: <what>").
Settings parse_settings(std::string_view config_json);

}  // namespace chorus::mdns

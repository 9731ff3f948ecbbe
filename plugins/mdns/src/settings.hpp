// The mdns plugin's configuration (the `config:` subtree of plugins.mdns), validated key by key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::mdns {

struct Settings {
  std::string service_tag = "CHORUS-peer-discovery";  // service _<tag>._udp.local; "p2p" = standard libp2p
  uint32_t query_interval_ms = 10000;                  // periodic query (jittered +-10 %)
  uint32_t ttl_s = 120;                                // TTL of our records
  uint32_t connect_timeout_ms = 10000;                 // per dial of a discovered peer (CHORUS: 10 s)
  uint32_t queue_size = 10;                            // discovered peers waiting to be dialed (CHORUS: 10)
  uint32_t max_concurrent_connects = 4;                // dials in flight
  uint32_t max_peers = 256;                            // tracked discovered peers
  uint32_t interface_scan_ms = 5000;                   // re-scan interfaces and our addresses
  uint32_t response_delay_max_ms = 120;                // answer delay 20..max ms (RFC 6762 6), min 0
  uint32_t packets_per_second = 200;                   // incoming packets processed (burst 2x)
  uint32_t port = 5353;
  bool ipv4 = true;
  bool ipv6 = true;
  bool auto_connect = true;                            // dial discovered peers (as CHORUS does)
  std::vector<std::string> interfaces;                 // restrict to these names; empty = all
};

// Throws std::invalid_argument("mdns.config.<key>: <what>") on a bad or unknown key.
Settings parse_settings(std::string_view config_json);

}  // namespace chorus::mdns

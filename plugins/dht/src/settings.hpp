// The dht plugin's configuration (the `config:` subtree of plugins.dht). kConfigSchema declares every
// key with its type, range and default; the host applies it before create, so parse_settings reads a
// complete, valid config. README.md lists the keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace chorus::dht {

// Whether this node answers kad requests (advertises `<prefix>/kad/1.0.0`).
//   client: never; server: always;
//   auto:   server as soon as the p2p host listens on any address (LAN, public, or loopback - the
//           loopback case keeps single-machine clusters and tests working), client when it has no
//           listen address at all (it cannot be dialled, so advertising the protocol would only make
//           others put it in their routing tables in vain).
enum class Mode { kClient, kServer, kAuto };
const char *mode_name(Mode m);

struct ProbeSettings {
  bool enabled = true;
  uint64_t interval_ms = 30000;
  uint64_t timeout_ms = 5000;
};

// A role of another node's (or this node's) encrypted content: its age recipient and authority.
struct RoleSettings {
  std::string recipient;  // "age1..."
  std::string authority;  // master | decision | coordination | suggestion | read_only
};

struct Settings {
  std::string protocol_prefix = "/ipfs";
  Mode mode = Mode::kAuto;
  size_t k = 20;
  size_t alpha = 3;
  uint64_t query_timeout_ms = 10000;    // one request to one peer
  uint64_t lookup_deadline_ms = 30000;  // a whole lookup
  size_t replication = 3;               // acknowledgements that complete a put or a provide
  size_t max_value_bytes = 1u << 20;
  uint64_t record_ttl_ms = 36ull * 3600 * 1000;
  uint64_t provider_ttl_ms = 48ull * 3600 * 1000;
  uint64_t republish_interval_ms = 3600ull * 1000;
  uint64_t reprovide_interval_ms = 22ull * 3600 * 1000;
  uint64_t refresh_interval_ms = 10ull * 60 * 1000;
  // A peer outside the routing table that may serve kad (it failed a request, sent us one, or is
  // connected and speaks kad) is asked again at most once per recheck_interval_ms, the wait doubling
  // after each failure up to recheck_max_interval_ms (kad/recheck.hpp).
  uint64_t recheck_interval_ms = 5000;
  uint64_t recheck_max_interval_ms = 60000;
  uint64_t cache_ttl_ms = 5ull * 60 * 1000;
  uint64_t sweep_interval_ms = 5ull * 60 * 1000;
  ProbeSettings probe;
  std::map<std::string, RoleSettings> roles;
  std::string state_subdir = "dht";

  std::string protocol_id() const { return protocol_prefix + "/kad/1.0.0"; }
  // The largest frame accepted on a kad stream: a full value plus room for the peers of a reply.
  size_t max_frame_bytes() const { return max_value_bytes + (256u << 10) > (4u << 20) ? max_value_bytes + (256u << 10) : (4u << 20); }
};

// The JSON Schema of plugins.dht.config (the descriptor's config_schema).
extern const char kConfigSchema[];

// Reads a config that kConfigSchema has validated and completed, and checks what the schema cannot
// express. Throws std::invalid_argument("dht.config.<key>: <what>").
Settings parse_settings(std::string_view config_json);

}  // namespace chorus::dht

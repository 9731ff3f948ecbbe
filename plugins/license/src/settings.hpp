// The license plugin's config: the schema (the one declaration of every key, type, range and
// default) and Settings, read from the host-validated config plus the environment and host facts.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "state.hpp"

namespace chorus::license {

inline constexpr const char *kConfigSchema = R"({
  "type": "object",
  "properties": {
    "license_id": {"type": "string", "maxLength": 127, "default": "",
                   "description": "the licence to validate; CHORUS_LICENSE_ID overrides it; required"},
    "endpoint": {"type": "string", "maxLength": 2048, "default": "",
                 "description": "base URL of the licence server (http:// or https://); CHORUS_LICENSE_ENDPOINT overrides it; required, no default server"},
    "cluster_id": {"type": "string", "maxLength": 256, "default": "",
                   "description": "cluster announced to the server; empty = the agent's cluster_id"},
    "request_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "default": 10000},
    "revalidate_interval_ms": {"type": "integer", "minimum": 10, "maximum": 604800000, "default": 3600000,
                               "description": "time between validations while the server answers"},
    "retry_interval_ms": {"type": "integer", "minimum": 10, "maximum": 86400000, "default": 30000,
                          "description": "time to the next attempt after the server was unreachable"},
    "grace_period_ms": {"type": "integer", "minimum": 0, "maximum": 2592000000, "default": 259200000,
                        "description": "how long a cached valid answer keeps the agent running while the server is unreachable"},
    "circuit_breaker": {
      "type": "object",
      "properties": {
        "failure_threshold": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 3},
        "open_ms": {"type": "integer", "minimum": 10, "maximum": 86400000, "default": 60000}
      },
      "default": {},
      "additionalProperties": false
    }
  },
  "additionalProperties": false
})";

struct Settings {
  std::string license_id;  // CHORUS_LICENSE_ID overrides the config
  std::string endpoint;    // base URL, no trailing '/'; CHORUS_LICENSE_ENDPOINT overrides the config
  std::string cluster_id;  // "" in the config = the agent's cluster_id (host_info)
  std::string agent_id;    // host_info
  std::string version;     // host_info host_version
  std::string state_dir;   // host_info; the cache lives in <state_dir>/license/
  int64_t request_timeout_ms = 0;
  Timing timing;

  std::string validate_url() const { return endpoint + "/v1/licenses/validate"; }
};

using EnvLookup = std::function<std::optional<std::string>(const char *name)>;

// Throws chorus::Error(CHORUS_E_CONFIG) naming the key and how to fix it (an empty endpoint or
// licence id, a URL that is not http(s)).
Settings parse_settings(std::string_view config_json, std::string_view host_info_json, const EnvLookup &env);

}  // namespace chorus::license

#include "settings.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace chorus::dht {

// Defaults: the kad-dht defaults of go and js (k 20, alpha 3, records 36 h, providers 48 h re-provided
// every 22 h) and CHORUS's replication target (3).
const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "protocol_prefix": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^/", "default": "/ipfs"},
    "mode": {"type": "string", "enum": ["client", "server", "auto"], "default": "auto"},
    "k": {"type": "integer", "minimum": 1, "maximum": 64, "default": 20},
    "alpha": {"type": "integer", "minimum": 1, "maximum": 32, "default": 3},
    "query_timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 10000},
    "lookup_deadline_ms": {"type": "integer", "minimum": 10, "maximum": 3600000, "default": 30000},
    "replication": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
    "max_value_bytes": {"type": "integer", "minimum": 64, "maximum": 4194304, "default": 1048576},
    "record_ttl_ms": {"type": "integer", "minimum": 1000, "maximum": 2592000000, "default": 129600000},
    "provider_ttl_ms": {"type": "integer", "minimum": 1000, "maximum": 2592000000, "default": 172800000},
    "republish_interval_ms": {"type": "integer", "minimum": 1000, "maximum": 2592000000, "default": 3600000},
    "reprovide_interval_ms": {"type": "integer", "minimum": 1000, "maximum": 2592000000, "default": 79200000},
    "refresh_interval_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "default": 600000},
    "recheck_interval_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "default": 5000},
    "recheck_max_interval_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "default": 60000},
    "cache_ttl_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "default": 300000},
    "sweep_interval_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "default": 300000},
    "probe": {
      "type": "object", "additionalProperties": false, "default": {},
      "properties": {
        "enabled": {"type": "boolean", "default": true},
        "interval_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "default": 30000},
        "timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 5000}
      }
    },
    "roles": {
      "type": "object", "default": {},
      "additionalProperties": {
        "type": "object", "additionalProperties": false,
        "properties": {
          "recipient": {"type": "string", "minLength": 4, "maxLength": 200, "pattern": "^age1"},
          "authority": {"type": "string", "enum": ["master", "decision", "coordination", "suggestion", "read_only"],
                        "default": "read_only"}
        },
        "required": ["recipient"]
      }
    },
    "state_subdir": {"type": "string", "minLength": 1, "maxLength": 200, "default": "dht"}
  }
})";

const char *mode_name(Mode m) {
  switch (m) {
    case Mode::kClient: return "client";
    case Mode::kServer: return "server";
    case Mode::kAuto: return "auto";
  }
  return "auto";
}

namespace {

using json = nlohmann::json;

template <class T>
T get(const json &obj, const char *key) {
  return obj.at(key).get<T>();
}

void require(bool ok, const std::string &key, const std::string &what) {
  if (!ok) throw std::invalid_argument("dht.config." + key + ": " + what);
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  const auto cfg = json::parse(config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("dht.config: must be an object");
  Settings s;
  try {
    s.protocol_prefix = get<std::string>(cfg, "protocol_prefix");
    const std::string mode = get<std::string>(cfg, "mode");
    s.mode = mode == "client" ? Mode::kClient : mode == "server" ? Mode::kServer : Mode::kAuto;
    s.k = get<size_t>(cfg, "k");
    s.alpha = get<size_t>(cfg, "alpha");
    s.query_timeout_ms = get<uint64_t>(cfg, "query_timeout_ms");
    s.lookup_deadline_ms = get<uint64_t>(cfg, "lookup_deadline_ms");
    s.replication = get<size_t>(cfg, "replication");
    s.max_value_bytes = get<size_t>(cfg, "max_value_bytes");
    s.record_ttl_ms = get<uint64_t>(cfg, "record_ttl_ms");
    s.provider_ttl_ms = get<uint64_t>(cfg, "provider_ttl_ms");
    s.republish_interval_ms = get<uint64_t>(cfg, "republish_interval_ms");
    s.reprovide_interval_ms = get<uint64_t>(cfg, "reprovide_interval_ms");
    s.refresh_interval_ms = get<uint64_t>(cfg, "refresh_interval_ms");
    s.recheck_interval_ms = get<uint64_t>(cfg, "recheck_interval_ms");
    s.recheck_max_interval_ms = get<uint64_t>(cfg, "recheck_max_interval_ms");
    s.cache_ttl_ms = get<uint64_t>(cfg, "cache_ttl_ms");
    s.sweep_interval_ms = get<uint64_t>(cfg, "sweep_interval_ms");
    const json &pr = cfg.at("probe");
    s.probe.enabled = get<bool>(pr, "enabled");
    s.probe.interval_ms = get<uint64_t>(pr, "interval_ms");
    s.probe.timeout_ms = get<uint64_t>(pr, "timeout_ms");
    for (const auto &[name, r] : cfg.at("roles").items()) {
      RoleSettings rs;
      rs.recipient = get<std::string>(r, "recipient");
      rs.authority = r.contains("authority") ? get<std::string>(r, "authority") : "read_only";
      s.roles.emplace(name, std::move(rs));
    }
    s.state_subdir = get<std::string>(cfg, "state_subdir");
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("dht.config: does not match the plugin's schema: ") + e.what());
  }
  require(s.protocol_prefix.size() > 1 && s.protocol_prefix.back() != '/', "protocol_prefix",
          "must look like /name (no trailing '/')");
  require(s.query_timeout_ms <= s.lookup_deadline_ms, "query_timeout_ms", "must not exceed lookup_deadline_ms");
  require(s.recheck_interval_ms <= s.recheck_max_interval_ms, "recheck_interval_ms",
          "must not exceed recheck_max_interval_ms");
  require(s.replication <= s.k, "replication", "must not exceed k");
  require(s.probe.timeout_ms < s.probe.interval_ms, "probe.timeout_ms", "must be below probe.interval_ms");
  require(s.state_subdir.find("..") == std::string::npos && s.state_subdir.front() != '/', "state_subdir",
          "must be a relative path inside the state dir");
  return s;
}

}  // namespace chorus::dht

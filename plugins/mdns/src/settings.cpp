#include "settings.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace chorus::mdns {

// service_tag becomes the DNS label "_<tag>": at most 63 bytes of letters, digits, '-' and '_'.
// CHORUS defaults (docs/contract.md, CHORUS defaults the plugins adopt): connect_timeout_ms 10 s, queue_size 10.
const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "service_tag": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,62}$", "default": "CHORUS-peer-discovery"},
    "query_interval_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "default": 10000},
    "ttl_s": {"type": "integer", "minimum": 1, "maximum": 4500, "default": 120},
    "connect_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 10000},
    "queue_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
    "max_concurrent_connects": {"type": "integer", "minimum": 1, "maximum": 256, "default": 4},
    "max_peers": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 256},
    "interface_scan_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "default": 5000},
    "response_delay_max_ms": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 120},
    "packets_per_second": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 200},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5353},
    "ipv4": {"type": "boolean", "default": true},
    "ipv6": {"type": "boolean", "default": true},
    "auto_connect": {"type": "boolean", "default": true},
    "interfaces": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 15}, "default": []}
  }
})";

Settings parse_settings(std::string_view config_json) {
  const auto cfg = nlohmann::json::parse(config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("mdns.config: must be an object");
  Settings s;
  try {
    s.service_tag = cfg.at("service_tag").get<std::string>();
    s.query_interval_ms = cfg.at("query_interval_ms").get<uint32_t>();
    s.ttl_s = cfg.at("ttl_s").get<uint32_t>();
    s.connect_timeout_ms = cfg.at("connect_timeout_ms").get<uint32_t>();
    s.queue_size = cfg.at("queue_size").get<uint32_t>();
    s.max_concurrent_connects = cfg.at("max_concurrent_connects").get<uint32_t>();
    s.max_peers = cfg.at("max_peers").get<uint32_t>();
    s.interface_scan_ms = cfg.at("interface_scan_ms").get<uint32_t>();
    s.response_delay_max_ms = cfg.at("response_delay_max_ms").get<uint32_t>();
    s.packets_per_second = cfg.at("packets_per_second").get<uint32_t>();
    s.port = cfg.at("port").get<uint32_t>();
    s.ipv4 = cfg.at("ipv4").get<bool>();
    s.ipv6 = cfg.at("ipv6").get<bool>();
    s.auto_connect = cfg.at("auto_connect").get<bool>();
    s.interfaces = cfg.at("interfaces").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("mdns.config: does not match the plugin's schema: ") + e.what());
  }
  if (!s.ipv4 && !s.ipv6) throw std::invalid_argument("mdns.config.ipv4: ipv4 and ipv6 cannot both be false");
  return s;
}

}  // namespace chorus::mdns

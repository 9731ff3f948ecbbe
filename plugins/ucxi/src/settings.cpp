#include "settings.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace chorus::ucxi {

const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "state_subdir": {"type": "string", "minLength": 1, "maxLength": 200, "default": "ucxi"},
    "max_body_bytes": {"type": "integer", "minimum": 1, "maximum": 786432, "default": 524288},
    "timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 10000},
    "cache_entries": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 256},
    "announce_topic": {"type": "string", "minLength": 1, "maxLength": 1024, "default": "CHORUS/coordination/v1"},
    "announce_puts": {"type": "boolean", "default": true},
    "default_query_limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
  }
})";

namespace {

using json = nlohmann::json;

template <class T>
T get(const json &obj, const char *key) {
  return obj.at(key).get<T>();
}

void require(bool ok, const std::string &key, const std::string &what) {
  if (!ok) throw std::invalid_argument("ucxi.config." + key + ": " + what);
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  const auto cfg = json::parse(config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("ucxi.config: must be an object");
  Settings s;
  try {
    s.state_subdir = get<std::string>(cfg, "state_subdir");
    s.max_body_bytes = get<size_t>(cfg, "max_body_bytes");
    s.timeout_ms = get<uint32_t>(cfg, "timeout_ms");
    s.cache_entries = get<size_t>(cfg, "cache_entries");
    s.announce_topic = get<std::string>(cfg, "announce_topic");
    s.announce_puts = get<bool>(cfg, "announce_puts");
    s.default_query_limit = get<size_t>(cfg, "default_query_limit");
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("ucxi.config: does not match the plugin's schema: ") + e.what());
  }
  require(s.max_body_bytes >= 1 && s.max_body_bytes <= kMaxBodyBytesLimit, "max_body_bytes",
          "must be 1..786432 (a DHT value is at most 1 MiB with the encryption around it)");
  require(s.default_query_limit >= 1 && s.default_query_limit <= kMaxQueryLimit, "default_query_limit", "must be 1..1000");
  require(!s.state_subdir.empty() && s.state_subdir.front() != '/' && s.state_subdir.find("..") == std::string::npos,
          "state_subdir", "must be a relative path inside the state dir");
  return s;
}

std::string index_dir(const Settings &s, const std::string &state_dir) {
  if (state_dir.empty()) return s.state_subdir;
  return state_dir.back() == '/' ? state_dir + s.state_subdir : state_dir + "/" + s.state_subdir;
}

}  // namespace chorus::ucxi

// The ucxi plugin's configuration (the `config:` subtree of plugins.ucxi). kConfigSchema declares
// every key with its type, range and default; the host applies it before create, so parse_settings
// reads a complete config and checks what the schema cannot say. README.md, "Configuration", lists
// the keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chorus::ucxi {

// A DHT value holds at most 1 MiB; the age encryption and the record around the content need room,
// so content is capped well below it.
inline constexpr size_t kMaxBodyBytesLimit = 768 * 1024;
// The most matches one query answers.
inline constexpr size_t kMaxQueryLimit = 1000;

struct Settings {
  std::string state_subdir = "ucxi";
  size_t max_body_bytes = 512 * 1024;
  uint32_t timeout_ms = 10000;
  size_t cache_entries = 256;
  std::string announce_topic = "CHORUS/coordination/v1";
  bool announce_puts = true;
  size_t default_query_limit = 100;
};

// The JSON Schema of plugins.ucxi.config (the descriptor's config_schema).
extern const char kConfigSchema[];

// Reads a config that kConfigSchema validated and completed. Throws std::invalid_argument
// ("ucxi.config.<key>: <what>").
Settings parse_settings(std::string_view config_json);

// The directory of the local index: <state_dir>/<state_subdir> ("" state_dir: state_subdir itself).
std::string index_dir(const Settings &s, const std::string &state_dir);

}  // namespace chorus::ucxi

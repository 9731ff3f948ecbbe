// The election plugin's configuration (the `config:` subtree of plugins.election). kConfigSchema
// declares every key with its type, range and default; the host applies it before create, so
// parse_settings reads a complete config and checks what the schema cannot say. README.md,
// "Configuration", lists the keys.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/election.hpp"
#include "core/score.hpp"

namespace chorus::election {

struct Settings {
  ElectionConfig election;
  ScoreWeights weights;
  std::vector<std::string> capabilities = {"admin", "coordination", "context", "keys"};
  std::string state_file;  // "" = <state dir>/election.db
};

// The most members a config may list (the bound on every per-peer table, too).
inline constexpr size_t kMaxMembers = 1024;

// The JSON Schema of plugins.election.config (the descriptor's config_schema).
extern const char kConfigSchema[];

// Reads a config that kConfigSchema validated and completed. Throws std::invalid_argument
// ("election.config.<key>: <what>").
Settings parse_settings(std::string_view config_json);

// The state file for a state dir: state_file when set, else <state_dir>/election.db.
std::string state_file_path(const Settings &s, const std::string &state_dir);

}  // namespace chorus::election

// The agent's YAML configuration (docs/contract.md, Configuration): parsing, defaults, environment
// overrides and strict validation. Every error names the key path ("plugins.p2p.critical: expected a
// boolean, got 'yes!'").
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "shhh/sentinel.hpp"

namespace chorus::host {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PluginEntry {
  std::string id;
  bool enabled = true;
  bool critical = false;
  std::string path;    // explicit .so path, "" = search by id
  std::string sha256;  // lower-case hex pin, "" = none
  std::string config_json = "{}";  // the `config:` subtree as compact JSON (always an object)

  bool operator==(const PluginEntry &) const = default;
};

// host.shhh: SHHH, the secrets sentinel (docs/shhh.md).
struct ShhhRuleConfig {
  std::string name;
  std::string pattern;             // RE2 syntax
  std::string severity = "high";   // low|medium|high|critical
  std::vector<std::string> tags;

  bool operator==(const ShhhRuleConfig &) const = default;
};

struct ShhhConfig {
  bool enabled = true;  // CHORUS_SHHH_ENABLED; false switches every channel off
  bool logs = true, pubsub = true, ucxi = true;  // host.shhh.channels.*
  // "" = <state_dir>/shhh-audit.jsonl; "off" = no audit file; a relative path is under state_dir.
  std::string audit_file;
  bool builtin_rules = true;
  std::vector<ShhhRuleConfig> rules;  // custom rules, after the built-in ones

  bool operator==(const ShhhConfig &) const = default;
};

struct HostConfig {
  std::string log_level = "info";  // trace|debug|info|warn|error
  std::string log_format = "text"; // text|json
  std::vector<std::string> plugin_dirs;
  std::string state_dir;           // "" = derived (see paths.hpp)
  std::string http_listen = "127.0.0.1:8081";  // "" disables the listener
  uint64_t shutdown_timeout_ms = 30000;
  uint64_t start_timeout_ms = 30000;
  uint64_t swap_drain_timeout_ms = 60000;
  uint32_t worker_threads = 0;     // 0 = hardware concurrency, at least 2
  bool strict = false;
  ShhhConfig shhh;

  bool operator==(const HostConfig &) const = default;
};

struct AgentIdentity {
  std::string id, role, cluster_id = "chorus-dev";
  // Where the dynamic assignment comes from (assignment.hpp): a URL wins over a file.
  std::string assignment_file, assignment_url, task_slot, task_id;

  bool operator==(const AgentIdentity &) const = default;
};

struct Config {
  AgentIdentity agent;
  HostConfig host;
  std::vector<PluginEntry> plugins;             // in file order
  std::map<std::string, std::string> bindings;  // service -> plugin id
  std::string source;                           // file path, or "<built-in default>"

  const PluginEntry *find_plugin(const std::string &id) const;

  // Compares everything, `source` included; compare with equal sources to ask "same settings?".
  bool operator==(const Config &) const = default;
};

// Config::source when the built-in default was used.
inline constexpr const char *kBuiltinConfigSource = "<built-in default>";
// The system-wide config file looked for by locate_config().
inline constexpr const char *kSystemConfigPath = "/etc/chorus/chorus.yaml";

// The sentinel's options for a host.shhh section (validated by parse_config).
shhh::Options shhh_options(const ShhhConfig &config);

// Environment lookup, injectable for tests. Returns nullopt when unset.
using EnvLookup = std::optional<std::string> (*)(const char *name);
std::optional<std::string> process_env(const char *name);

// Parses YAML text. `source` is used in messages. Applies env overrides:
//   CHORUS_AGENT_ID, CHORUS_ROLE, CHORUS_CLUSTER_ID -> agent.*; CHORUS_LOG_LEVEL -> host.log_level;
//   ASSIGN_URL, TASK_SLOT, TASK_ID (the CHORUS deployment's names) -> agent.assignment_url, task_slot, task_id;
//   CHORUS_LOG_FORMAT -> host.log_format; CHORUS_SHHH_ENABLED (true|false) -> host.shhh.enabled; CHORUS_STATE_DIR is NOT applied here (see paths.hpp);
//   CHORUS_HEALTH_PORT replaces the port of host.http.listen.
// Throws ConfigError (one line, key path first) on: YAML syntax errors (with line:column), unknown
// keys, wrong types, duplicate keys, invalid plugin ids ([a-z0-9][a-z0-9._-]{0,63}), bad enum values,
// an env override with a bad value (names the variable).
Config parse_config(const std::string &yaml_text, const std::string &source, EnvLookup env = process_env);

// Reads and parses a file; an unreadable or missing file is a ConfigError naming the path and errno text.
Config load_config_file(const std::string &path, EnvLookup env = process_env);

// The built-in default config (also installed as share/chorus/chorus.yaml).
const std::string &default_config_yaml();

// Where the config comes from (docs/contract.md, Config file): explicit path, else $CHORUS_CONFIG, else
// /etc/chorus/chorus.yaml if it exists, else the built-in default (returns "").
// `system_path` exists for tests; an empty explicit path or empty $CHORUS_CONFIG counts as unset.
std::string locate_config(const std::string &explicit_path, EnvLookup env = process_env,
                          const std::string &system_path = kSystemConfigPath);

// locate_config() then load_config_file(), or parse_config() of the built-in default when no file
// is found (Config::source is then kBuiltinConfigSource).
Config load_config(const std::string &explicit_path, EnvLookup env = process_env);

}  // namespace chorus::host

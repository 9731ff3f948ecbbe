// The agent plugin's configuration (plugins.agent.config; README.md, "Configuration").
// Precedence for the agent facts (capabilities, specialization, max_tasks, models, expertise):
// environment (CHORUS_AGENT_* over BZZZ_AGENT_*) > plugin config > the host's assignment
// (host_info: capabilities, expertise, max_tasks, model) > built-in defaults. The schema gives those
// keys no default so that "not in the config" can fall through to the assignment.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::agent {

struct Settings {
  std::vector<std::string> capabilities{"general", "reasoning", "task-coordination"};
  std::string specialization = "general_developer";
  uint32_t max_tasks = 3;
  std::vector<std::string> models{"phi3", "llama3.1"};
  std::vector<std::string> expertise;
  std::string reports_to;
  std::string project = "chorus";
  uint64_t availability_interval_ms = 30000;
  uint64_t status_log_interval_ms = 30000;
  uint64_t directory_ttl_ms = 120000;
  uint64_t claim_window_ms = 1000;
  uint64_t progress_interval_ms = 5000;
  uint64_t owner_timeout_ms = 30000;
  uint64_t unclaimed_retry_ms = 10000;
  uint64_t simulated_work_ms = 0;
  uint64_t llm_timeout_ms = 300000;
};

extern const char kConfigSchema[];

using EnvLookup = std::function<std::optional<std::string>(const char *name)>;
// The process environment (an empty variable counts as unset).
std::optional<std::string> process_env(const char *name);

// Reads a config the schema completed, then the environment, then host_info's assignment facts.
// Throws std::invalid_argument ("agent.config.<key>: ..." or "<ENV_NAME>: ...").
Settings parse_settings(std::string_view config_json, std::string_view host_info_json, const EnvLookup &env);

// "a, b,c" -> {"a","b","c"} (empty items dropped).
std::vector<std::string> split_list(std::string_view text);

}  // namespace chorus::agent

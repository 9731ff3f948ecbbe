// The agent's dynamic assignment (the CHORUS runtime's "RuntimeConfig"): role, model, prompt,
// capabilities, expertise, max tasks and bootstrap peers handed out by an orchestrator (WHOOSH) and
// merged over the static config. Read at start and again on every SIGHUP, from a file
// (agent.assignment_file) or a URL (agent.assignment_url / ASSIGN_URL, with TASK_SLOT and TASK_ID
// as query parameters when set). docs/configuration.md, "Assignment", has the JSON.
//
// A missing, unreadable or invalid assignment is never fatal: the caller logs a warning and the
// agent carries on with what it had, as the CHORUS runtime does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace chorus::host {

struct AgentIdentity;
struct HostContext;

struct Assignment {
  std::optional<std::string> role, model, prompt;
  std::optional<std::vector<std::string>> capabilities, expertise, bootstrap_peers;
  std::optional<uint32_t> max_tasks;
  std::string source;  // "file:<path>" or "url:<url>"

  bool operator==(const Assignment &) const = default;
};

// Largest assignment document accepted, from a file or over HTTP.
inline constexpr size_t kMaxAssignmentBytes = 256 * 1024;

// A JSON object. Known members must have their type (strings; arrays of strings, each at most 1024
// bytes and at most 256 of them; max_tasks an integer 0..10000); unknown members are ignored, so an
// orchestrator may send more than this agent uses. Returns nullopt with *why set otherwise.
std::optional<Assignment> parse_assignment(std::string_view json_text, std::string *why);

// The URL fetched: agent.assignment_url with task_slot and task_id appended as query parameters
// (percent-encoded) when they are set. "" when no URL is configured.
std::string assignment_request_url(const AgentIdentity &agent);

struct AssignmentLoad {
  bool configured = false;          // a file or URL is set
  std::optional<Assignment> value;  // set when loaded and valid
  std::string problem;              // why not, when configured and not loaded
};

// Reads the assignment the config names: the URL when one is set, else the file. timeout_ms bounds
// the whole HTTP exchange (connect included).
AssignmentLoad load_assignment(const AgentIdentity &agent, uint64_t timeout_ms);

// How long the runtime waits for an assignment URL (the CHORUS runtime's 10 s).
inline constexpr uint64_t kAssignmentTimeoutMs = 10000;

// Control thread, at start and on SIGHUP: loads the assignment host.config names and makes it the one
// in use (under config_mu), logging what it set. A failure is a warning that keeps the assignment in
// use (none at start), as the CHORUS runtime continues with its base config.
void refresh_assignment(HostContext &host);

// One line for the log: "role 'x', model 'y', 2 bootstrap peers" (only what the assignment sets).
std::string describe(const Assignment &a);

// The members host_info gains from the assignment merged over the agent section.
void merge_into_host_info(const std::optional<Assignment> &a, const AgentIdentity &agent, nlohmann::json &info);

}  // namespace chorus::host

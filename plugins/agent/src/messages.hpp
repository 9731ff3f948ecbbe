// The agent's messages on CHORUS/coordination/v1 and hmmm/meta-discussion/v1 (docs/protocols.md,
// "Agent task coordination"): typed structs, their JSON (the envelope's "data"), and strict parsing.
// Network input is untrusted: parse_* check every type and length and say which field is wrong; a
// refused message is counted and dropped by the caller. Sans I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace chorus::agent {

using json = nlohmann::json;

inline constexpr const char *kCoordinationTopic = "CHORUS/coordination/v1";
inline constexpr const char *kHmmmTopic = "hmmm/meta-discussion/v1";

inline constexpr const char *kAvailabilityType = "availability_broadcast";
inline constexpr const char *kCapabilityType = "capability_broadcast";
inline constexpr const char *kRoleType = "role_announcement";
inline constexpr const char *kAnnouncementType = "task_announcement";
inline constexpr const char *kClaimType = "task_claim";
inline constexpr const char *kProgressType = "task_progress";
inline constexpr const char *kCompleteType = "task_complete";
inline constexpr const char *kAssignType = "task_assign";
inline constexpr const char *kResultType = "task_result";
inline constexpr const char *kAckType = "task_ack";
inline constexpr const char *kHelpRequestType = "task_help_request";

// Limits of what is accepted from the network (and from POST /api/v1/agent/tasks).
inline constexpr size_t kMaxIdLength = 128;            // task ids, agent ids, node ids
inline constexpr size_t kMaxTitleLength = 256;
inline constexpr size_t kMaxDescriptionLength = 16 * 1024;
inline constexpr size_t kMaxListItems = 32;           // capabilities, expertise, models
inline constexpr size_t kMaxItemLength = 64;          // one capability, expertise or model name
inline constexpr size_t kMaxTextLength = 1024;        // summaries, notes, reasons, roles
inline constexpr size_t kMaxHmmmDataBytes = 16 * 1024;
inline constexpr uint32_t kMaxAttempt = 1000000;
inline constexpr uint32_t kMaxTasksLimit = 1000;

struct Availability {
  std::string node_id, agent_id;
  bool available_for_work = false;
  uint32_t current_tasks = 0, max_tasks = 0;
  int64_t last_activity = 0;   // unix seconds
  std::string status;          // ready | working | busy
  int64_t timestamp = 0;       // unix seconds
};

struct Capability {
  std::string agent_id, node_id, version;
  std::vector<std::string> capabilities, expertise, models;
  std::string specialization;
  uint32_t max_tasks = 0, current_tasks = 0;
  std::string availability;  // ready | working | busy
  int64_t timestamp = 0;
  bool changed = false;
};

struct RoleAnnouncement {
  std::string agent_id, node_id, role;
  std::vector<std::string> expertise, capabilities;
  std::string reports_to, specialization;
  int64_t timestamp = 0;
};

struct TaskAnnouncement {
  std::string task_id;
  uint32_t attempt = 1;
  std::string title, description;
  std::vector<std::string> required_capabilities;
  std::string project, announced_by, origin;
  int64_t created = 0;  // unix ms
};

struct TaskClaim {
  std::string task_id;
  uint32_t attempt = 1;
  std::string node_id, agent_id;
  uint32_t current_tasks = 0, max_tasks = 0;
};

struct TaskProgress {
  std::string task_id;
  uint32_t attempt = 1;
  std::string node_id, agent_id;
  std::string status;  // started | working
  uint32_t percent = 0;
  std::string note;
};

// The outcome of one attempt. node_id/agent_id are the owner that did the work; relayed_by, when set,
// is the node that published this copy on the owner's behalf (README.md, "Committing a result").
struct TaskComplete {
  std::string task_id;
  uint32_t attempt = 1;
  std::string node_id, agent_id;
  std::string status;  // completed | failed
  std::string summary, model, decision;
  uint64_t duration_ms = 0;
  std::string relayed_by;
};

// The admin's choice of the owner of (task, attempt), when an election runs. node_id/agent_id are the
// admin that speaks; owner_node/owner_agent the agent that works.
struct TaskAssign {
  std::string task_id;
  uint32_t attempt = 1;
  std::string node_id, agent_id;
  std::string owner_node, owner_agent;
};

// A finished attempt's outcome offered for commit: committed once a quorum of agents acknowledged it.
// Same fields as task_complete.
struct TaskResult : TaskComplete {};

// One agent's acknowledgement of a result (the first result it heard for the task; it never
// acknowledges another). node_id/agent_id are the acknowledging agent; owner_node names the result.
struct TaskAck {
  std::string task_id;
  uint32_t attempt = 1;
  std::string node_id, agent_id;
  std::string owner_node;
};

using Message = std::variant<Availability, Capability, RoleAnnouncement, TaskAnnouncement, TaskClaim, TaskProgress,
                             TaskComplete, TaskAssign, TaskResult, TaskAck>;

struct ParseError {
  std::string reason;  // metric label: not_json | no_data | unknown_type | bad_field
  std::string detail;  // "<field>: <what>", for the debug log
};

json to_json(const Availability &m);
json to_json(const Capability &m);
json to_json(const RoleAnnouncement &m);
json to_json(const TaskAnnouncement &m);
json to_json(const TaskClaim &m);
json to_json(const TaskProgress &m);
json to_json(const TaskComplete &m);
json to_json(const TaskAssign &m);
json to_json(const TaskResult &m);
json to_json(const TaskAck &m);
json to_json(const Message &m);
const char *type_of(const Message &m);
// The node a message speaks for: its node_id ("" for task_announcement, which names agents only), or
// relayed_by for a relayed task_complete / task_result.
std::string node_of(const Message &m);

// One message's data by its envelope type; nullopt (and *err) when the type is not an agent type or
// the data is malformed.
std::optional<Message> parse_message(std::string_view type, const json &data, ParseError *err);
// A whole CHORUS envelope {"type","from","timestamp","data",...} as pubsub delivers it.
std::optional<Message> parse_envelope(std::string_view bytes, ParseError *err);

// True for task ids [A-Za-z0-9._:-]{1,128}.
bool valid_task_id(std::string_view id);
// A list of names (capabilities, expertise, models): at most 32 items of 1..64 printable ASCII
// characters without spaces or commas.
bool valid_name(std::string_view name);

// ---- HMMM (meta discussion): kept for GET /api/v1/agent/hmmm, published by POST
struct HmmmMessage {
  std::string type;
  std::string from;  // the envelope's from (agent id)
  std::string timestamp;
  json data;  // an object of at most 16 KiB
};
bool is_hmmm_type(std::string_view type);
std::optional<HmmmMessage> parse_hmmm_envelope(std::string_view bytes, ParseError *err);
json to_json(const HmmmMessage &m);

}  // namespace chorus::agent

#include "messages.hpp"

#include <array>
#include <limits>

namespace chorus::agent {
namespace {

struct Bad {
  std::string detail;
};

bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// Reads the members of one message's data; a missing or mistyped member throws Bad.
class Reader {
 public:
  explicit Reader(const json &obj) : obj_(obj) {}

  const json &member(const char *key) const {
    auto it = obj_.find(key);
    if (it == obj_.end()) throw Bad{std::string(key) + ": missing"};
    return *it;
  }
  bool has(const char *key) const { return obj_.contains(key); }

  std::string text(const char *key, size_t max, bool allow_empty = true) const {
    const json &v = member(key);
    if (!v.is_string()) throw Bad{std::string(key) + ": must be a string"};
    const auto &s = v.get_ref<const std::string &>();
    if (s.size() > max) throw Bad{std::string(key) + ": longer than " + std::to_string(max) + " bytes"};
    if (!allow_empty && s.empty()) throw Bad{std::string(key) + ": must not be empty"};
    return s;
  }
  std::string optional_text(const char *key, size_t max) const { return has(key) ? text(key, max) : std::string(); }
  std::string id(const char *key) const {
    std::string s = text(key, kMaxIdLength, false);
    if (!printable(s) || s.find(' ') != std::string::npos) throw Bad{std::string(key) + ": not a valid id"};
    return s;
  }
  std::string task_id(const char *key) const {
    std::string s = text(key, kMaxIdLength, false);
    if (!valid_task_id(s)) throw Bad{std::string(key) + ": must be 1-128 characters of [A-Za-z0-9._:-]"};
    return s;
  }
  std::string choice(const char *key, std::initializer_list<const char *> allowed) const {
    std::string s = text(key, 32);
    for (const char *a : allowed)
      if (s == a) return s;
    throw Bad{std::string(key) + ": unknown value '" + s + "'"};
  }
  uint64_t unsigned_int(const char *key, uint64_t max) const {
    const json &v = member(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      throw Bad{std::string(key) + ": must be a non-negative integer"};
    const uint64_t n = v.get<uint64_t>();
    if (n > max) throw Bad{std::string(key) + ": larger than " + std::to_string(max)};
    return n;
  }
  uint64_t optional_unsigned(const char *key, uint64_t max) const { return has(key) ? unsigned_int(key, max) : 0; }
  int64_t time(const char *key) const {
    const json &v = member(key);
    if (!v.is_number_integer()) throw Bad{std::string(key) + ": must be an integer"};
    return v.get<int64_t>();
  }
  int64_t optional_time(const char *key) const { return has(key) ? time(key) : 0; }
  uint32_t attempt(const char *key) const {
    const uint64_t a = unsigned_int(key, kMaxAttempt);
    if (a == 0) throw Bad{std::string(key) + ": must be at least 1"};
    return static_cast<uint32_t>(a);
  }
  bool boolean(const char *key) const {
    const json &v = member(key);
    if (!v.is_boolean()) throw Bad{std::string(key) + ": must be true or false"};
    return v.get<bool>();
  }
  std::vector<std::string> names(const char *key, bool required = true) const {
    if (!has(key)) {
      if (required) throw Bad{std::string(key) + ": missing"};
      return {};
    }
    const json &v = member(key);
    if (!v.is_array()) throw Bad{std::string(key) + ": must be an array of strings"};
    if (v.size() > kMaxListItems) throw Bad{std::string(key) + ": more than 32 items"};
    std::vector<std::string> out;
    for (const json &item : v) {
      if (!item.is_string() || !valid_name(item.get_ref<const std::string &>()))
        throw Bad{std::string(key) + ": every item must be a name of 1-64 printable characters"};
      out.push_back(item.get<std::string>());
    }
    return out;
  }

 private:
  const json &obj_;
};

Availability read_availability(const Reader &r) {
  Availability m;
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.available_for_work = r.boolean("available_for_work");
  m.current_tasks = static_cast<uint32_t>(r.unsigned_int("current_tasks", kMaxTasksLimit));
  m.max_tasks = static_cast<uint32_t>(r.unsigned_int("max_tasks", kMaxTasksLimit));
  m.last_activity = r.optional_time("last_activity");
  m.status = r.choice("status", {"ready", "working", "busy"});
  m.timestamp = r.optional_time("timestamp");
  return m;
}

Capability read_capability(const Reader &r) {
  Capability m;
  m.agent_id = r.id("agent_id");
  m.node_id = r.id("node_id");
  m.version = r.optional_text("version", 64);
  m.capabilities = r.names("capabilities");
  m.expertise = r.names("expertise", false);
  m.models = r.names("models", false);
  m.specialization = r.optional_text("specialization", kMaxItemLength);
  m.max_tasks = static_cast<uint32_t>(r.unsigned_int("max_tasks", kMaxTasksLimit));
  m.current_tasks = static_cast<uint32_t>(r.optional_unsigned("current_tasks", kMaxTasksLimit));
  m.availability = r.has("availability") ? r.choice("availability", {"ready", "working", "busy"}) : "ready";
  m.timestamp = r.optional_time("timestamp");
  m.changed = r.has("changed") && r.boolean("changed");
  return m;
}

RoleAnnouncement read_role(const Reader &r) {
  RoleAnnouncement m;
  m.agent_id = r.id("agent_id");
  m.node_id = r.id("node_id");
  m.role = r.text("role", kMaxItemLength, false);
  m.expertise = r.names("expertise", false);
  m.capabilities = r.names("capabilities", false);
  m.reports_to = r.optional_text("reports_to", kMaxIdLength);
  m.specialization = r.optional_text("specialization", kMaxItemLength);
  m.timestamp = r.optional_time("timestamp");
  return m;
}

TaskAnnouncement read_announcement(const Reader &r) {
  TaskAnnouncement m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.title = r.text("title", kMaxTitleLength, false);
  m.description = r.optional_text("description", kMaxDescriptionLength);
  m.required_capabilities = r.names("required_capabilities", false);
  m.project = r.optional_text("project", kMaxItemLength);
  m.announced_by = r.id("announced_by");
  m.origin = r.has("origin") ? r.id("origin") : m.announced_by;
  m.created = r.optional_time("created");
  return m;
}

TaskClaim read_claim(const Reader &r) {
  TaskClaim m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.current_tasks = static_cast<uint32_t>(r.optional_unsigned("current_tasks", kMaxTasksLimit));
  m.max_tasks = static_cast<uint32_t>(r.optional_unsigned("max_tasks", kMaxTasksLimit));
  return m;
}

TaskProgress read_progress(const Reader &r) {
  TaskProgress m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.status = r.choice("status", {"started", "working"});
  m.percent = static_cast<uint32_t>(r.optional_unsigned("percent", 100));
  m.note = r.optional_text("note", kMaxTextLength);
  return m;
}

TaskComplete read_complete(const Reader &r) {
  TaskComplete m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.status = r.choice("status", {"completed", "failed"});
  m.summary = r.optional_text("summary", kMaxTextLength);
  m.model = r.optional_text("model", kMaxItemLength);
  m.decision = r.optional_text("decision", kMaxTextLength);
  m.duration_ms = r.optional_unsigned("duration_ms", std::numeric_limits<int64_t>::max());
  m.relayed_by = r.has("relayed_by") ? r.id("relayed_by") : std::string();
  return m;
}

TaskAssign read_assign(const Reader &r) {
  TaskAssign m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.owner_node = r.id("owner_node");
  m.owner_agent = r.id("owner_agent");
  return m;
}

TaskAck read_ack(const Reader &r) {
  TaskAck m;
  m.task_id = r.task_id("task_id");
  m.attempt = r.attempt("attempt");
  m.node_id = r.id("node_id");
  m.agent_id = r.id("agent_id");
  m.owner_node = r.id("owner_node");
  return m;
}

void fail(ParseError *err, const char *reason, std::string detail) {
  if (err != nullptr) *err = ParseError{reason, std::move(detail)};
}

}  // namespace

bool valid_task_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxItemLength) return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f || c == ',') return false;
  return true;
}

json to_json(const Availability &m) {
  return {{"node_id", m.node_id},       {"agent_id", m.agent_id},
          {"available_for_work", m.available_for_work},
          {"current_tasks", m.current_tasks}, {"max_tasks", m.max_tasks},
          {"last_activity", m.last_activity}, {"status", m.status},
          {"timestamp", m.timestamp}};
}

json to_json(const Capability &m) {
  return {{"agent_id", m.agent_id},         {"node_id", m.node_id},       {"version", m.version},
          {"capabilities", m.capabilities}, {"expertise", m.expertise},   {"models", m.models},
          {"specialization", m.specialization}, {"max_tasks", m.max_tasks}, {"current_tasks", m.current_tasks},
          {"availability", m.availability}, {"timestamp", m.timestamp},   {"changed", m.changed}};
}

json to_json(const RoleAnnouncement &m) {
  return {{"agent_id", m.agent_id},     {"node_id", m.node_id},         {"role", m.role},
          {"expertise", m.expertise},   {"capabilities", m.capabilities}, {"reports_to", m.reports_to},
          {"specialization", m.specialization}, {"timestamp", m.timestamp}};
}

json to_json(const TaskAnnouncement &m) {
  return {{"task_id", m.task_id},         {"attempt", m.attempt},
          {"title", m.title},             {"description", m.description},
          {"required_capabilities", m.required_capabilities},
          {"project", m.project},         {"announced_by", m.announced_by},
          {"origin", m.origin},           {"created", m.created}};
}

json to_json(const TaskClaim &m) {
  return {{"task_id", m.task_id},   {"attempt", m.attempt},           {"node_id", m.node_id},
          {"agent_id", m.agent_id}, {"current_tasks", m.current_tasks}, {"max_tasks", m.max_tasks}};
}

json to_json(const TaskProgress &m) {
  return {{"task_id", m.task_id},   {"attempt", m.attempt}, {"node_id", m.node_id}, {"agent_id", m.agent_id},
          {"status", m.status},     {"percent", m.percent}, {"note", m.note}};
}

json to_json(const TaskComplete &m) {
  json j = {{"task_id", m.task_id},   {"attempt", m.attempt}, {"node_id", m.node_id},   {"agent_id", m.agent_id},
            {"status", m.status},     {"summary", m.summary}, {"model", m.model},       {"decision", m.decision},
            {"duration_ms", m.duration_ms}};
  if (!m.relayed_by.empty()) j["relayed_by"] = m.relayed_by;
  return j;
}

json to_json(const TaskAssign &m) {
  return {{"task_id", m.task_id},   {"attempt", m.attempt},       {"node_id", m.node_id},
          {"agent_id", m.agent_id}, {"owner_node", m.owner_node}, {"owner_agent", m.owner_agent}};
}

json to_json(const TaskResult &m) { return to_json(static_cast<const TaskComplete &>(m)); }

json to_json(const TaskAck &m) {
  return {{"task_id", m.task_id}, {"attempt", m.attempt}, {"node_id", m.node_id}, {"agent_id", m.agent_id},
          {"owner_node", m.owner_node}};
}

json to_json(const Message &m) {
  return std::visit([](const auto &v) { return to_json(v); }, m);
}

const char *type_of(const Message &m) {
  static constexpr std::array<const char *, 10> kTypes = {
      kAvailabilityType, kCapabilityType, kRoleType,   kAnnouncementType, kClaimType,
      kProgressType,     kCompleteType,   kAssignType, kResultType,       kAckType};
  static_assert(kTypes.size() == std::variant_size_v<Message>);
  return kTypes[m.index()];
}

std::string node_of(const Message &m) {
  return std::visit(
      [](const auto &v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TaskAnnouncement>) return {};
        else if constexpr (std::is_same_v<T, TaskComplete> || std::is_same_v<T, TaskResult>)
          return v.relayed_by.empty() ? v.node_id : v.relayed_by;
        else return v.node_id;
      },
      m);
}

std::optional<Message> parse_message(std::string_view type, const json &data, ParseError *err) {
  if (!data.is_object()) {
    fail(err, "no_data", "data: must be an object");
    return std::nullopt;
  }
  const Reader r(data);
  try {
    if (type == kAvailabilityType) return read_availability(r);
    if (type == kCapabilityType) return read_capability(r);
    if (type == kRoleType) return read_role(r);
    if (type == kAnnouncementType) return read_announcement(r);
    if (type == kClaimType) return read_claim(r);
    if (type == kProgressType) return read_progress(r);
    if (type == kCompleteType) return read_complete(r);
    if (type == kAssignType) return read_assign(r);
    if (type == kResultType) return TaskResult{read_complete(r)};
    if (type == kAckType) return read_ack(r);
  } catch (const Bad &b) {
    fail(err, "bad_field", std::string(type) + "." + b.detail);
    return std::nullopt;
  } catch (const json::exception &e) {  // a number out of range for its type
    fail(err, "bad_field", std::string(type) + ": " + e.what());
    return std::nullopt;
  }
  fail(err, "unknown_type", "type: '" + std::string(type.substr(0, 64)) + "' is not an agent message");
  return std::nullopt;
}

std::optional<Message> parse_envelope(std::string_view bytes, ParseError *err) {
  const json env = json::parse(bytes, nullptr, false);
  if (env.is_discarded() || !env.is_object()) {
    fail(err, "not_json", "the message is not a JSON object");
    return std::nullopt;
  }
  auto type = env.find("type");
  if (type == env.end() || !type->is_string()) {
    fail(err, "unknown_type", "type: missing");
    return std::nullopt;
  }
  auto data = env.find("data");
  if (data == env.end()) {
    fail(err, "no_data", "data: missing");
    return std::nullopt;
  }
  return parse_message(type->get_ref<const std::string &>(), *data, err);
}

bool is_hmmm_type(std::string_view type) {
  static constexpr std::array<std::string_view, 7> kTypes = {
      "meta_discussion",  "task_help_request", "task_help_response", "coordination_request",
      "coordination_complete", "dependency_alert", "escalation_trigger"};
  for (std::string_view t : kTypes)
    if (t == type) return true;
  return false;
}

std::optional<HmmmMessage> parse_hmmm_envelope(std::string_view bytes, ParseError *err) {
  const json env = json::parse(bytes, nullptr, false);
  if (env.is_discarded() || !env.is_object()) {
    fail(err, "not_json", "the message is not a JSON object");
    return std::nullopt;
  }
  HmmmMessage m;
  auto type = env.find("type");
  if (type == env.end() || !type->is_string() || !is_hmmm_type(type->get_ref<const std::string &>())) {
    fail(err, "unknown_type", "type: not an HMMM message type");
    return std::nullopt;
  }
  m.type = type->get<std::string>();
  auto data = env.find("data");
  if (data == env.end() || !data->is_object()) {
    fail(err, "no_data", "data: must be an object");
    return std::nullopt;
  }
  if (data->dump(-1, ' ', false, json::error_handler_t::replace).size() > kMaxHmmmDataBytes) {
    fail(err, "bad_field", "data: larger than 16 KiB");
    return std::nullopt;
  }
  m.data = *data;
  if (auto from = env.find("from"); from != env.end() && from->is_string() && from->get_ref<const std::string &>().size() <= kMaxIdLength)
    m.from = from->get<std::string>();
  if (auto ts = env.find("timestamp"); ts != env.end() && ts->is_string() && ts->get_ref<const std::string &>().size() <= 64)
    m.timestamp = ts->get<std::string>();
  return m;
}

json to_json(const HmmmMessage &m) {
  return {{"type", m.type}, {"from", m.from}, {"timestamp", m.timestamp}, {"data", m.data}};
}

}  // namespace chorus::agent

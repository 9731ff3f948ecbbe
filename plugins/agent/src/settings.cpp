#include "settings.hpp"

#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "messages.hpp"

namespace chorus::agent {

const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "capabilities": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "specialization": {"type": "string", "maxLength": 64},
    "max_tasks": {"type": "integer", "minimum": 0, "maximum": 1000},
    "models": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "expertise": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "reports_to": {"type": "string", "maxLength": 128, "default": ""},
    "project": {"type": "string", "minLength": 1, "maxLength": 64, "default": "chorus"},
    "availability_interval_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "default": 30000},
    "status_log_interval_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 30000},
    "directory_ttl_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "default": 120000},
    "claim_window_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 1000},
    "progress_interval_ms": {"type": "integer", "minimum": 10, "maximum": 3600000, "default": 5000},
    "owner_timeout_ms": {"type": "integer", "minimum": 50, "maximum": 86400000, "default": 30000},
    "unclaimed_retry_ms": {"type": "integer", "minimum": 10, "maximum": 86400000, "default": 10000},
    "simulated_work_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 0},
    "llm_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "default": 300000}
  }
})";

namespace {

using json = nlohmann::json;

void require(bool ok, const std::string &where, const std::string &what) {
  if (!ok) throw std::invalid_argument(where + ": " + what);
}

std::vector<std::string> names(const json &v, const std::string &where) {
  require(v.size() <= kMaxListItems, where, "more than 32 items");
  std::vector<std::string> out;
  for (const json &item : v) {
    require(item.is_string() && valid_name(item.get_ref<const std::string &>()), where,
            "every item must be 1-64 printable characters without spaces or commas");
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::vector<std::string> env_names(const std::string &text, const char *name) {
  std::vector<std::string> out = split_list(text);
  require(out.size() <= kMaxListItems, name, "more than 32 items");
  for (const std::string &n : out)
    require(valid_name(n), name, "'" + n + "' is not a name of 1-64 printable characters");
  return out;
}

// CHORUS_<X> wins over BZZZ_<X> (the names of the Go agent).
std::optional<std::pair<std::string, const char *>> env_value(const EnvLookup &env, const char *chorus_name,
                                                              const char *bzzz_name) {
  if (!env) return std::nullopt;
  if (auto v = env(chorus_name); v && !v->empty()) return std::make_pair(*v, chorus_name);
  if (bzzz_name != nullptr)
    if (auto v = env(bzzz_name); v && !v->empty()) return std::make_pair(*v, bzzz_name);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> process_env(const char *name) {
  const char *v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

Settings parse_settings(std::string_view config_json, std::string_view host_info_json, const EnvLookup &env) {
  const json cfg = json::parse(config_json, nullptr, false);
  require(!cfg.is_discarded() && cfg.is_object(), "agent.config", "must be an object");
  const json info = json::parse(host_info_json, nullptr, false);
  const bool have_info = !info.is_discarded() && info.is_object();
  Settings s;
  try {
    // Assignment facts first; the config and then the environment override them.
    if (have_info) {
      if (auto it = info.find("capabilities"); it != info.end() && it->is_array() && !it->empty())
        s.capabilities = names(*it, "assignment.capabilities");
      if (auto it = info.find("expertise"); it != info.end() && it->is_array() && !it->empty())
        s.expertise = names(*it, "assignment.expertise");
      if (auto it = info.find("max_tasks"); it != info.end() && it->is_number_unsigned() && it->get<uint64_t>() <= kMaxTasksLimit)
        s.max_tasks = it->get<uint32_t>();
      if (auto it = info.find("model"); it != info.end() && it->is_string() && valid_name(it->get_ref<const std::string &>()))
        s.models = {it->get<std::string>()};
    }
    if (cfg.contains("capabilities")) s.capabilities = names(cfg["capabilities"], "agent.config.capabilities");
    if (cfg.contains("specialization")) s.specialization = cfg["specialization"].get<std::string>();
    if (cfg.contains("max_tasks")) s.max_tasks = cfg["max_tasks"].get<uint32_t>();
    if (cfg.contains("models")) s.models = names(cfg["models"], "agent.config.models");
    if (cfg.contains("expertise")) s.expertise = names(cfg["expertise"], "agent.config.expertise");
    s.reports_to = cfg.at("reports_to").get<std::string>();
    s.project = cfg.at("project").get<std::string>();
    s.availability_interval_ms = cfg.at("availability_interval_ms").get<uint64_t>();
    s.status_log_interval_ms = cfg.at("status_log_interval_ms").get<uint64_t>();
    s.directory_ttl_ms = cfg.at("directory_ttl_ms").get<uint64_t>();
    s.claim_window_ms = cfg.at("claim_window_ms").get<uint64_t>();
    s.progress_interval_ms = cfg.at("progress_interval_ms").get<uint64_t>();
    s.owner_timeout_ms = cfg.at("owner_timeout_ms").get<uint64_t>();
    s.unclaimed_retry_ms = cfg.at("unclaimed_retry_ms").get<uint64_t>();
    s.simulated_work_ms = cfg.at("simulated_work_ms").get<uint64_t>();
    s.llm_timeout_ms = cfg.at("llm_timeout_ms").get<uint64_t>();
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("agent.config: does not match the plugin's schema: ") + e.what());
  }
  if (auto v = env_value(env, "CHORUS_AGENT_CAPABILITIES", "BZZZ_AGENT_CAPABILITIES"))
    s.capabilities = env_names(v->first, v->second);
  if (auto v = env_value(env, "CHORUS_AGENT_SPECIALIZATION", "BZZZ_AGENT_SPECIALIZATION")) {
    require(v->first.size() <= kMaxItemLength, v->second, "longer than 64 bytes");
    s.specialization = v->first;
  }
  if (auto v = env_value(env, "CHORUS_AGENT_MAX_TASKS", "BZZZ_AGENT_MAX_TASKS")) {
    const std::string &t = v->first;
    const bool digits = !t.empty() && t.size() <= 4 && t.find_first_not_of("0123456789") == std::string::npos;
    require(digits && std::stoul(t) <= kMaxTasksLimit, v->second, "expected an integer 0..1000, got '" + t + "'");
    s.max_tasks = static_cast<uint32_t>(std::stoul(t));
  }
  if (auto v = env_value(env, "CHORUS_AGENT_MODELS", "BZZZ_AGENT_MODELS")) s.models = env_names(v->first, v->second);
  if (auto v = env_value(env, "CHORUS_AGENT_EXPERTISE", nullptr)) s.expertise = env_names(v->first, v->second);
  require(s.owner_timeout_ms > s.progress_interval_ms, "agent.config.owner_timeout_ms",
          "must be longer than progress_interval_ms (the owner's heartbeat)");
  return s;
}

}  // namespace chorus::agent

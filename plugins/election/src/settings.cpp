#include "settings.hpp"

#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/messages.hpp"

namespace chorus::election {

// Timing defaults: a heartbeat every 5 s, an election after 15 s without one (the issue's numbers);
// the rest, and the weights, are this project's choice (README.md, "Configuration").
const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "heartbeat_interval_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 5000},
    "heartbeat_timeout_ms": {"type": "integer", "minimum": 30, "maximum": 3600000, "default": 15000},
    "discovery_timeout_ms": {"type": "integer", "minimum": 10, "maximum": 3600000, "default": 10000},
    "min_term_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 30000},
    "vote_window_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "default": 250},
    "candidacy_timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 3000},
    "max_jitter_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "default": 1000},
    "cluster_size": {"type": "integer", "minimum": 0, "maximum": 1024, "default": 0},
    "members": {"type": "array", "default": [],
                "items": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[1-9A-HJ-NP-Za-km-z]+$"}},
    "max_tracked_peers": {"type": "integer", "minimum": 8, "maximum": 65536, "default": 1024},
    "capabilities": {"type": "array", "default": ["admin", "coordination", "context", "keys"],
                     "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "weights": {
      "type": "object", "additionalProperties": false, "default": {},
      "properties": {
        "uptime": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0.30},
        "capabilities": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0.20},
        "resources": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0.20},
        "network": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0.15},
        "experience": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0.15}
      }
    },
    "state_file": {"type": "string", "maxLength": 4096, "default": ""}
  }
})";

namespace {

using json = nlohmann::json;

void require(bool ok, const std::string &key, const std::string &what) {
  if (!ok) throw std::invalid_argument("election.config." + key + ": " + what);
}

uint64_t u64(const json &cfg, const char *key, uint64_t fallback) {
  const auto it = cfg.find(key);
  if (it == cfg.end()) return fallback;
  require(it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0), key,
          "must be a non-negative integer");
  return it->get<uint64_t>();
}

double num(const json &obj, const char *key, double fallback) {
  const auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  require(it->is_number(), std::string("weights.") + key, "must be a number");
  const double v = it->get<double>();
  require(v >= 0, std::string("weights.") + key, "must not be negative");
  return v;
}

std::vector<std::string> strings(const json &cfg, const char *key, std::vector<std::string> fallback) {
  const auto it = cfg.find(key);
  if (it == cfg.end()) return fallback;
  require(it->is_array(), key, "must be an array of strings");
  std::vector<std::string> out;
  for (const auto &v : *it) {
    require(v.is_string(), key, "must be an array of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  const json cfg = json::parse(config_json.empty() ? std::string_view("{}") : config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("election.config: must be an object");
  Settings s;
  ElectionConfig &e = s.election;
  e.heartbeat_interval_ms = u64(cfg, "heartbeat_interval_ms", e.heartbeat_interval_ms);
  e.heartbeat_timeout_ms = u64(cfg, "heartbeat_timeout_ms", e.heartbeat_timeout_ms);
  e.discovery_timeout_ms = u64(cfg, "discovery_timeout_ms", e.discovery_timeout_ms);
  e.min_term_ms = u64(cfg, "min_term_ms", e.min_term_ms);
  e.vote_window_ms = u64(cfg, "vote_window_ms", e.vote_window_ms);
  e.candidacy_timeout_ms = u64(cfg, "candidacy_timeout_ms", e.candidacy_timeout_ms);
  e.max_jitter_ms = u64(cfg, "max_jitter_ms", e.max_jitter_ms);
  const uint64_t cluster_size = u64(cfg, "cluster_size", 0);
  require(cluster_size <= kMaxMembers, "cluster_size", "at most " + std::to_string(kMaxMembers));
  e.cluster_size = static_cast<uint32_t>(cluster_size);
  const uint64_t tracked = u64(cfg, "max_tracked_peers", e.max_tracked_peers);
  require(tracked >= 8 && tracked <= 65536, "max_tracked_peers", "must be 8..65536");
  e.max_tracked_peers = static_cast<uint32_t>(tracked);
  e.members = strings(cfg, "members", {});
  s.capabilities = strings(cfg, "capabilities", s.capabilities);

  // A timeout no longer than the interval would call an election between two heartbeats.
  require(e.heartbeat_timeout_ms > e.heartbeat_interval_ms, "heartbeat_timeout_ms",
          "must be longer than heartbeat_interval_ms (" + std::to_string(e.heartbeat_interval_ms) + ")");
  require(e.candidacy_timeout_ms > e.vote_window_ms, "candidacy_timeout_ms",
          "must be longer than vote_window_ms (" + std::to_string(e.vote_window_ms) + ")");
  require(e.members.size() <= kMaxMembers, "members", "at most " + std::to_string(kMaxMembers) + " entries");
  require(e.members.size() <= e.max_tracked_peers, "members", "more entries than max_tracked_peers");
  std::set<std::string> seen;
  for (const std::string &m : e.members) {
    require(!m.empty() && m.size() <= kMaxIdBytes, "members", "peer ids are 1.." + std::to_string(kMaxIdBytes) + " bytes");
    require(seen.insert(m).second, "members", "'" + m + "' is listed twice");
  }
  require(e.members.empty() || cluster_size == 0 || cluster_size == e.members.size(), "cluster_size",
          "differs from the number of members (" + std::to_string(e.members.size()) + "); set one of the two");
  require(s.capabilities.size() <= 64, "capabilities", "at most 64 entries");

  if (const auto it = cfg.find("weights"); it != cfg.end()) {
    require(it->is_object(), "weights", "must be an object");
    s.weights.uptime = num(*it, "uptime", s.weights.uptime);
    s.weights.capabilities = num(*it, "capabilities", s.weights.capabilities);
    s.weights.resources = num(*it, "resources", s.weights.resources);
    s.weights.network = num(*it, "network", s.weights.network);
    s.weights.experience = num(*it, "experience", s.weights.experience);
  }
  if (const auto it = cfg.find("state_file"); it != cfg.end()) {
    require(it->is_string(), "state_file", "must be a string");
    s.state_file = it->get<std::string>();
  }
  return s;
}

std::string state_file_path(const Settings &s, const std::string &state_dir) {
  if (!s.state_file.empty()) return s.state_file;
  if (state_dir.empty()) return "election.db";
  return state_dir.back() == '/' ? state_dir + "election.db" : state_dir + "/election.db";
}

}  // namespace chorus::election

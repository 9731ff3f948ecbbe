#include "directory.hpp"

#include <type_traits>

namespace chorus::agent {

void Directory::heard(const Message &m, uint64_t now_mono, int64_t now_wall) {
  const std::string node = node_of(m);
  if (node.empty()) return;
  auto it = agents_.find(node);
  if (it == agents_.end()) {
    if (agents_.size() >= kMaxAgents) return;  // a flood of invented ids does not grow the map forever
    it = agents_.emplace(node, AgentEntry{}).first;
    it->second.node_id = node;
  }
  AgentEntry &e = it->second;
  e.last_seen_mono = now_mono;
  e.last_seen_wall = now_wall;
  std::visit(
      [&](const auto &v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Availability>) {
          e.agent_id = v.agent_id;
          e.status = v.status;
          e.current_tasks = v.current_tasks;
          e.max_tasks = v.max_tasks;
        } else if constexpr (std::is_same_v<T, Capability>) {
          e.agent_id = v.agent_id;
          e.capabilities = v.capabilities;
          e.models = v.models;
          e.expertise = v.expertise;
          e.specialization = v.specialization;
          e.max_tasks = v.max_tasks;
          e.current_tasks = v.current_tasks;
          e.status = v.availability;
        } else if constexpr (std::is_same_v<T, RoleAnnouncement>) {
          e.agent_id = v.agent_id;
          e.role = v.role;
          e.expertise = v.expertise;
          if (!v.capabilities.empty()) e.capabilities = v.capabilities;
          e.specialization = v.specialization;
        } else if constexpr (std::is_same_v<T, TaskAnnouncement>) {
          if (e.agent_id.empty()) e.agent_id = v.announced_by;
        } else {
          if (e.agent_id.empty() && v.node_id == node) e.agent_id = v.agent_id;  // not from a relayed copy
        }
      },
      m);
}

size_t Directory::expire(uint64_t now_mono) {
  size_t n = 0;
  for (auto it = agents_.begin(); it != agents_.end();) {
    if (now_mono - it->second.last_seen_mono >= ttl_ms_) {
      it = agents_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::vector<AgentEntry> Directory::agents() const {
  std::vector<AgentEntry> out;
  for (const auto &[node, e] : agents_) out.push_back(e);
  return out;
}

std::vector<std::string> Directory::node_ids() const {
  std::vector<std::string> out;
  for (const auto &[node, e] : agents_) out.push_back(node);
  return out;
}

json to_json(const AgentEntry &e, uint64_t now_mono, uint64_t ttl_ms) {
  const uint64_t age = now_mono > e.last_seen_mono ? now_mono - e.last_seen_mono : 0;
  return {{"agent_id", e.agent_id},
          {"node_id", e.node_id},
          {"role", e.role},
          {"capabilities", e.capabilities},
          {"models", e.models},
          {"specialization", e.specialization},
          {"status", e.status},
          {"current_tasks", e.current_tasks},
          {"max_tasks", e.max_tasks},
          {"last_seen", e.last_seen_wall},
          {"expires_in_ms", age >= ttl_ms ? 0 : ttl_ms - age}};
}

}  // namespace chorus::agent

// The agents this agent has heard (availability, capability and role broadcasts), each kept until
// it has been silent for directory_ttl_ms. Sans I/O: the caller passes the time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "messages.hpp"

namespace chorus::agent {

struct AgentEntry {
  std::string agent_id, node_id, role;
  std::vector<std::string> capabilities, models, expertise;
  std::string specialization, status = "ready";
  uint32_t current_tasks = 0, max_tasks = 0;
  uint64_t last_seen_mono = 0;
  int64_t last_seen_wall = 0;  // unix ms
};

class Directory {
 public:
  explicit Directory(uint64_t ttl_ms) : ttl_ms_(ttl_ms) {}
  // Updates the sender's entry from any agent message (task messages only refresh last_seen).
  void heard(const Message &m, uint64_t now_mono, int64_t now_wall);
  // Drops the entries silent for ttl_ms; returns how many.
  size_t expire(uint64_t now_mono);
  std::vector<AgentEntry> agents() const;
  std::vector<std::string> node_ids() const;
  size_t size() const { return agents_.size(); }
  uint64_t ttl_ms() const { return ttl_ms_; }
  void set_ttl(uint64_t ttl_ms) { ttl_ms_ = ttl_ms; }

 private:
  static constexpr size_t kMaxAgents = 10000;
  uint64_t ttl_ms_;
  std::map<std::string, AgentEntry> agents_;  // by node id
};

json to_json(const AgentEntry &e, uint64_t now_mono, uint64_t ttl_ms);

}  // namespace chorus::agent

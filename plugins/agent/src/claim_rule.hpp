// Who owns a task when several agents claim it (README.md, "Ownership rule"). Rendezvous hashing:
// every agent ranks every claimant by SHA-256(task_id || 0x00 || attempt || 0x00 || node_id) and the
// lowest rank wins, so agents that heard the same claims agree without talking, and tasks spread
// uniformly over the agents.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::agent {

using Rank = std::array<uint8_t, 32>;

// SHA-256(task_id || 0x00 || decimal attempt || 0x00 || node_id).
Rank rank(std::string_view task_id, uint32_t attempt, std::string_view node_id);

// True when `a` outranks `b` (lower rank; ties, which need a SHA-256 collision, by node id).
bool outranks(std::string_view task_id, uint32_t attempt, std::string_view a, std::string_view b);

// The claimant with the lowest rank; nullopt for no claimants.
std::optional<std::string> owner_of(std::string_view task_id, uint32_t attempt, const std::vector<std::string> &claimants);

// Where `self` stands (0 = first) when `nodes` and `self` are ordered by rank for (task, attempt).
// Decides how long an agent waits before re-announcing a task (without an elected admin).
size_t rank_position(std::string_view task_id, uint32_t attempt, std::string_view self,
                     const std::vector<std::string> &nodes);

}  // namespace chorus::agent

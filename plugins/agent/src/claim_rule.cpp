#include "claim_rule.hpp"

#include <sodium.h>

#include <algorithm>

namespace chorus::agent {

Rank rank(std::string_view task_id, uint32_t attempt, std::string_view node_id) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const unsigned char zero = 0;
  const std::string attempt_text = std::to_string(attempt);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char *>(task_id.data()), task_id.size());
  crypto_hash_sha256_update(&st, &zero, 1);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char *>(attempt_text.data()), attempt_text.size());
  crypto_hash_sha256_update(&st, &zero, 1);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char *>(node_id.data()), node_id.size());
  Rank r{};
  crypto_hash_sha256_final(&st, r.data());
  return r;
}

bool outranks(std::string_view task_id, uint32_t attempt, std::string_view a, std::string_view b) {
  const Rank ra = rank(task_id, attempt, a), rb = rank(task_id, attempt, b);
  if (ra != rb) return ra < rb;
  return a < b;
}

std::optional<std::string> owner_of(std::string_view task_id, uint32_t attempt, const std::vector<std::string> &claimants) {
  std::optional<std::string> best;
  for (const std::string &c : claimants)
    if (!best || outranks(task_id, attempt, c, *best)) best = c;
  return best;
}

size_t rank_position(std::string_view task_id, uint32_t attempt, std::string_view self,
                     const std::vector<std::string> &nodes) {
  size_t position = 0;
  for (const std::string &n : nodes)
    if (n != self && outranks(task_id, attempt, n, self)) ++position;
  return position;
}

}  // namespace chorus::agent

// Verification of an event log's hash chain: what `chorus-agent verify-log` runs, and what the
// plugin's tests and the fuzzer drive entry by entry.
//
// Entry n is whole when: its index is n (entries start at 0, no gaps), its prev_hash is the hash of
// entry n-1 (all zeros for entry 0), its timestamp, type and data have the forms the log writes,
// its hash is the SHA-256 of its encoding (entry.hpp), its author is an Ed25519 peer id and its
// signature verifies over the hash with the public key inlined in that peer id.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "eventlog/entry.hpp"

namespace chorus::eventlog {

class ChainVerifier {
 public:
  // Checks the next entry of the chain (defect: what Store::scan found wrong with the row, if
  // anything). False at the first bad entry: bad_index() and problem() say which and why; every
  // later call returns false too.
  bool next(const Entry &entry, std::string_view defect = {});

  uint64_t verified() const { return verified_; }   // entries found whole so far
  const Hash &head_hash() const { return prev_; }   // the hash of the last whole entry (zeros if none)
  bool failed() const { return failed_; }
  uint64_t bad_index() const { return bad_index_; }
  const std::string &problem() const { return problem_; }
  // Entries per author (base58 peer id), of the whole entries.
  const std::map<std::string, uint64_t> &authors() const { return authors_; }

 private:
  bool fail(uint64_t index, std::string problem);
  std::optional<std::array<uint8_t, 32>> author_key(const std::string &author, std::string *why);

  uint64_t verified_ = 0;
  Hash prev_{};
  bool failed_ = false;
  uint64_t bad_index_ = 0;
  std::string problem_;
  std::map<std::string, uint64_t> authors_;
  std::map<std::string, std::array<uint8_t, 32>> keys_;  // parsed peer ids (one or a few authors per log)
};

struct VerifyReport {
  enum class Outcome { kWhole, kBroken, kUnreadable };
  Outcome outcome = Outcome::kUnreadable;
  uint64_t entries = 0;           // whole entries before the first bad one (all of them when whole)
  Hash head{};                    // hash of the last whole entry
  uint64_t bad_index = 0;         // kBroken: the first bad entry
  std::string problem;            // kBroken: what is wrong with it; kUnreadable: why the file cannot be read
  std::map<std::string, uint64_t> authors;
};

// Opens the log read-only and walks the whole chain.
VerifyReport verify_file(const std::string &path);

}  // namespace chorus::eventlog

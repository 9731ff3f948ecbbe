// The event log's SQLite file: <state_dir>/eventlog/log.db.
//
//   PRAGMA application_id = 0x43484556 ('CHEV'), user_version = 1 (the schema below)
//   CREATE TABLE entries(idx INTEGER PRIMARY KEY, ts TEXT, author TEXT, type TEXT, data TEXT,
//                        prev_hash BLOB, hash BLOB, signature BLOB) STRICT
//
// Writers use WAL mode with synchronous=FULL: a committed transaction is on disk when COMMIT
// returns, and readers (HTTP queries, verify-log while the agent runs) never block the writer.
// A file that is not SQLite, or SQLite of another application or an unknown schema version, is
// refused with a message saying so; it is never modified, let alone wiped.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eventlog/entry.hpp"

struct sqlite3;

namespace chorus::eventlog {

inline constexpr int32_t kApplicationId = 0x43484556;  // 'CHEV'
inline constexpr int32_t kSchemaVersion = 1;

class Store {
 public:
  enum class Mode { kReadOnly, kReadWrite };

  // Read-write creates the file (mode 0600; the directory must exist) and the schema when missing.
  // Read-only needs an existing log. Nothing on error, with *err saying why.
  static std::unique_ptr<Store> open(const std::string &path, Mode mode, std::string *err);
  ~Store();
  Store(const Store &) = delete;
  Store &operator=(const Store &) = delete;

  // The entry with the highest index; nothing with *err empty when the log is empty.
  std::optional<Entry> last(std::string *err);
  // Inserts entries in one transaction (one fsync for all of them: the group commit). On failure
  // nothing is inserted.
  bool append(const std::vector<Entry> &entries, std::string *err);
  // Entries with from <= index <= to and (type empty or) that type, ascending, at most limit.
  bool query(uint64_t from, uint64_t to, const std::string &type, size_t limit, std::vector<Entry> *out,
             std::string *err);
  // Every row in index order. `defect` is non-empty for a row that cannot be an entry at all (a hash
  // or signature of the wrong size, a negative index). fn returns false to stop early.
  bool scan(const std::function<bool(const Entry &entry, const std::string &defect)> &fn, std::string *err);

 private:
  explicit Store(sqlite3 *db) : db_(db) {}
  bool exec(const char *sql, std::string *err);
  sqlite3 *db_;
};

}  // namespace chorus::eventlog

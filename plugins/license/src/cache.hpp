// The licence cache: the last valid answer of the licence server, kept in SQLite (WAL) in the
// agent's state directory so that a restart while the server is unreachable can still run on it
// for the grace period. One row per (license_id, cluster_id); the file is created 0600.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "state.hpp"

struct sqlite3;

namespace chorus::license {

class Cache {
 public:
  // Opens (creating when missing) the database at `path`; its directory must exist. Throws
  // chorus::Error(CHORUS_E_IO) with SQLite's message on failure.
  explicit Cache(const std::string &path);
  ~Cache();
  Cache(const Cache &) = delete;
  Cache &operator=(const Cache &) = delete;

  // The stored confirmation of this licence for this cluster, if any. A row that cannot be read
  // (wrong types, bad features JSON) counts as none.
  std::optional<ConfirmedLicense> load(const std::string &license_id, const std::string &cluster_id);
  void store(const std::string &license_id, const std::string &cluster_id, const ConfirmedLicense &c);
  void forget(const std::string &license_id, const std::string &cluster_id);

 private:
  void exec(const char *sql);
  sqlite3 *db_ = nullptr;
  std::string path_;
};

}  // namespace chorus::license

// The local index of the ucxi plugin (slice "store"): SQLite in WAL mode, <state_dir>/ucxi/index.db,
// mode 0600. Series (addresses without temporal segment) with their versions, and the providers
// heard for each. A file that is not ours, or corrupt, is refused with IndexError, never wiped.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace chorus::ucxi {

struct IndexError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct VersionRow {
  uint64_t version = 0;
  std::string sha256;  // hex; "" for a tombstone
  uint64_t size = 0;
  std::string content_type, role, author;
  uint64_t created_ms = 0;
  bool deleted = false;
};

class Index {
 public:
  // Opens or creates path (":memory:" for tests). Throws IndexError.
  static std::unique_ptr<Index> open(const std::string &path);
  virtual ~Index() = default;
  // Slice "store" defines the rest (series, versions, providers, match queries); thread-safe.
};

}  // namespace chorus::ucxi

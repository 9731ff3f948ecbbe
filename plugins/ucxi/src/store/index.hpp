// The local index of the ucxi plugin (slice "store"): SQLite in WAL mode, <state_dir>/ucxi/index.db,
// mode 0600. Series (addresses without temporal segment) with their versions, and the providers
// heard for each. A file that is not ours, or corrupt, is refused with IndexError, never wiped.
//
// The file: PRAGMA application_id "UCXI" and user_version 1; tables series, versions, providers.
// The index is a cache of what the DHT holds plus what we heard: losing it loses nothing but the
// answers of wildcard queries until the series are seen again.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ucxl/address.hpp"

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
  bool operator==(const VersionRow &) const = default;
};

// One series as the index knows it. versions is the highest version number known (the list may be
// shorter when the series is known only from an announcement).
struct SeriesRow {
  std::string id;       // lowercase hex SHA-256 of address
  std::string address;  // Address::series()
  std::string agent, role, project, task, path;
  uint64_t versions = 0;
  std::string latest_sha256;  // "" when unknown or the latest is a tombstone
  uint64_t updated_ms = 0;
};

struct ProviderRow {
  std::string peer_id;
  uint64_t seen_ms = 0;
};

class Index {
 public:
  // Opens or creates path (":memory:" for tests; the directory is created 0700). Throws IndexError.
  static std::unique_ptr<Index> open(const std::string &path);
  virtual ~Index() = default;

  // Every method is thread-safe and throws IndexError when SQLite fails.

  // Replaces the version list of series (from the DHT's record, or after our own put).
  virtual void record_versions(const ucxl::Address &series, const std::vector<VersionRow> &versions,
                               uint64_t now_ms) = 0;
  // An announcement of version `version` (sha256) heard for series: the series row is created or
  // moved forward, the version list left alone. version 0: only the series is noted.
  virtual void note_version(const ucxl::Address &series, uint64_t version, const std::string &sha256,
                            uint64_t now_ms) = 0;
  // peer_id provides series (seen at now_ms); creates the series row when missing.
  virtual void add_provider(const ucxl::Address &series, const std::string &peer_id, uint64_t now_ms) = 0;

  virtual std::optional<SeriesRow> series(const std::string &series_id) = 0;
  virtual std::vector<VersionRow> versions(const std::string &series_id) = 0;
  virtual std::vector<ProviderRow> providers(const std::string &series_id) = 0;
  // Series matching pattern (ucxl::matches), most recently updated first, at most limit.
  virtual std::vector<SeriesRow> match(const ucxl::Address &pattern, size_t limit) = 0;
  virtual uint64_t series_count() = 0;
  virtual const std::string &path() const = 0;
};

// Lowercase hex SHA-256 of a series text: the id of its row here and of its record in the DHT.
std::string series_id(const std::string &series);

}  // namespace chorus::ucxi

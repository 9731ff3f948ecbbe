#include "cache.hpp"

#include <chorus/plugin.hpp>
#include <fcntl.h>
#include <cerrno>
#include <cstring>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace chorus::license {
namespace {

// Finalizes a prepared statement on every path out.
struct Statement {
  sqlite3_stmt *s = nullptr;
  ~Statement() { sqlite3_finalize(s); }
};

}  // namespace

Cache::Cache(const std::string &path) : path_(path) {
  // Create the file ourselves so it is 0600 from the first byte; SQLite gives its -wal and -shm
  // files the same permissions as the database file.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw chorus::Error(CHORUS_E_IO, "licence cache " + path + ": cannot create: " + std::strerror(errno));
  ::fchmod(fd, 0600);
  ::close(fd);
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path + ": " + why);
  }
  sqlite3_busy_timeout(db_, 2000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");  // a confirmation must survive a power cut: it is what grace runs on
    exec("CREATE TABLE IF NOT EXISTS license_cache ("
         " license_id TEXT NOT NULL, cluster_id TEXT NOT NULL,"
         " validated_at_unix_ms INTEGER NOT NULL, expires_at_unix_ms INTEGER NOT NULL,"
         " features_json TEXT NOT NULL, PRIMARY KEY (license_id, cluster_id))");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Cache::~Cache() { sqlite3_close(db_); }

void Cache::exec(const char *sql) {
  char *msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg != nullptr ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + why);
  }
}

std::optional<ConfirmedLicense> Cache::load(const std::string &license_id, const std::string &cluster_id) {
  Statement st;
  if (sqlite3_prepare_v2(db_,
                         "SELECT validated_at_unix_ms, expires_at_unix_ms, features_json FROM license_cache"
                         " WHERE license_id = ?1 AND cluster_id = ?2",
                         -1, &st.s, nullptr) != SQLITE_OK)
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
  sqlite3_bind_text(st.s, 1, license_id.data(), static_cast<int>(license_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, cluster_id.data(), static_cast<int>(cluster_id.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
  if (sqlite3_column_type(st.s, 0) != SQLITE_INTEGER || sqlite3_column_type(st.s, 1) != SQLITE_INTEGER ||
      sqlite3_column_type(st.s, 2) != SQLITE_TEXT)
    return std::nullopt;
  ConfirmedLicense c;
  c.validated_at_unix_ms = sqlite3_column_int64(st.s, 0);
  c.expires_at_unix_ms = sqlite3_column_int64(st.s, 1);
  const auto *text = reinterpret_cast<const char *>(sqlite3_column_text(st.s, 2));
  const auto features = nlohmann::json::parse(text != nullptr ? text : "", nullptr, false);
  if (!features.is_array()) return std::nullopt;
  for (const auto &f : features) {
    if (!f.is_string()) return std::nullopt;
    c.features.push_back(f.get<std::string>());
  }
  return c;
}

void Cache::store(const std::string &license_id, const std::string &cluster_id, const ConfirmedLicense &c) {
  Statement st;
  if (sqlite3_prepare_v2(db_,
                         "INSERT OR REPLACE INTO license_cache (license_id, cluster_id, validated_at_unix_ms,"
                         " expires_at_unix_ms, features_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                         -1, &st.s, nullptr) != SQLITE_OK)
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
  const std::string features = nlohmann::json(c.features).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  sqlite3_bind_text(st.s, 1, license_id.data(), static_cast<int>(license_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, cluster_id.data(), static_cast<int>(cluster_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 3, c.validated_at_unix_ms);
  sqlite3_bind_int64(st.s, 4, c.expires_at_unix_ms);
  sqlite3_bind_text(st.s, 5, features.data(), static_cast<int>(features.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE)
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
}

void Cache::forget(const std::string &license_id, const std::string &cluster_id) {
  Statement st;
  if (sqlite3_prepare_v2(db_, "DELETE FROM license_cache WHERE license_id = ?1 AND cluster_id = ?2", -1, &st.s,
                         nullptr) != SQLITE_OK)
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
  sqlite3_bind_text(st.s, 1, license_id.data(), static_cast<int>(license_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, cluster_id.data(), static_cast<int>(cluster_id.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE)
    throw chorus::Error(CHORUS_E_IO, "licence cache " + path_ + ": " + sqlite3_errmsg(db_));
}

}  // namespace chorus::license

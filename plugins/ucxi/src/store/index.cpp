// Index on SQLite (see index.hpp). One connection behind a mutex: the callers are the DHT's thread
// (completions) and the host's HTTP workers (queries), and every statement is short.
#include "store/index.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace chorus::ucxi {
namespace {

// PRAGMA application_id: "UCXI" read as a big-endian 32-bit integer, so the file tells what it is.
constexpr int32_t kApplicationId = 0x55435849;
constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;

const char *const kSchema = R"sql(
CREATE TABLE series(
  id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  agent TEXT NOT NULL,
  role TEXT NOT NULL,
  project TEXT NOT NULL,
  task TEXT NOT NULL,
  path TEXT NOT NULL,
  versions INTEGER NOT NULL,
  latest_sha TEXT NOT NULL,
  updated INTEGER NOT NULL);
CREATE INDEX series_updated ON series(updated);
CREATE TABLE versions(
  series_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  role TEXT NOT NULL,
  author TEXT NOT NULL,
  created INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  PRIMARY KEY (series_id, version)) WITHOUT ROWID;
CREATE TABLE providers(
  series_id TEXT NOT NULL,
  peer_id TEXT NOT NULL,
  seen INTEGER NOT NULL,
  PRIMARY KEY (series_id, peer_id)) WITHOUT ROWID;
)sql";

std::string parent_dir(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void make_dirs(const std::string &dir, const std::string &who) {
  if (dir.empty() || dir == "/" || dir == ".") return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw IndexError(who + dir + " is not a directory");
    return;
  }
  make_dirs(parent_dir(dir), who);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw IndexError(who + "cannot create directory " + dir + ": " + std::strerror(errno));
}

// Creates the file 0600 when absent and refuses one that is not a regular file or that group or
// others may access (the index names what this agent stores and who provides it).
void prepare_private_file(const std::string &path, bool create, const std::string &who) {
  int fd = -1;
  if (create) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) throw IndexError(who + "cannot create: " + std::strerror(errno));
  }
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (!create && errno == ENOENT) return;
    throw IndexError(who + "cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  const int rc = ::fstat(fd, &st);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw IndexError(who + "fstat: " + std::strerror(saved));
  if (!S_ISREG(st.st_mode)) throw IndexError(who + "not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw IndexError(who + "mode " + mode + " lets group or others access it; refusing (chmod 600 it)");
  }
}

std::string column_text(sqlite3_stmt *st, int i) {
  const auto *t = sqlite3_column_text(st, i);
  return t != nullptr ? std::string(reinterpret_cast<const char *>(t), static_cast<size_t>(sqlite3_column_bytes(st, i)))
                      : std::string();
}

uint64_t column_u64(sqlite3_stmt *st, int i) {
  const sqlite3_int64 v = sqlite3_column_int64(st, i);
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

// A prepared statement, finalized on every path.
class Statement {
 public:
  Statement(sqlite3 *db, const char *sql, const std::string &who) : db_(db), who_(who) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement(const Statement &) = delete;
  Statement &operator=(const Statement &) = delete;

  Statement &bind(int i, const std::string &s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement &bind(int i, uint64_t v) {
    sqlite3_bind_int64(st_, i, static_cast<sqlite3_int64>(v));
    return *this;
  }
  // True for a row, false when done.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
  }
  void run() {
    while (step()) {
    }
  }
  sqlite3_stmt *get() const { return st_; }

 private:
  [[noreturn]] void fail(const char *what) const { throw IndexError(who_ + what + ": " + sqlite3_errmsg(db_)); }
  sqlite3 *db_;
  const std::string &who_;
  sqlite3_stmt *st_ = nullptr;
};

SeriesRow read_series(sqlite3_stmt *st) {
  SeriesRow r;
  r.id = column_text(st, 0);
  r.address = column_text(st, 1);
  r.agent = column_text(st, 2);
  r.role = column_text(st, 3);
  r.project = column_text(st, 4);
  r.task = column_text(st, 5);
  r.path = column_text(st, 6);
  r.versions = column_u64(st, 7);
  r.latest_sha256 = column_text(st, 8);
  r.updated_ms = column_u64(st, 9);
  return r;
}

constexpr const char *kSeriesColumns =
    "SELECT id, address, agent, role, project, task, path, versions, latest_sha, updated FROM series ";

class SqliteIndex final : public Index {
 public:
  explicit SqliteIndex(const std::string &path) : path_(path), who_("ucxi index " + path + ": ") {
    if (path.empty()) throw IndexError("ucxi index: no path given");
    const bool memory = path == ":memory:";
    if (!memory) {
      make_dirs(parent_dir(path), who_);
      prepare_private_file(path, true, who_);
      prepare_private_file(path + "-wal", false, who_);
      prepare_private_file(path + "-shm", false, who_);
    }
    // Never SQLITE_OPEN_CREATE for a file: it was created 0600 above.
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (memory ? SQLITE_OPEN_CREATE : 0);
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw IndexError(who_ + "cannot open: " + msg);
    }
    try {
      sqlite3_extended_result_codes(db_, 1);
      sqlite3_busy_timeout(db_, kBusyTimeoutMs);
      check_or_create_schema(memory);
      if (!memory) {
        const auto mode = query_text("PRAGMA journal_mode = WAL");
        if (mode.empty() || mode[0] != "wal") throw IndexError(who_ + "cannot switch to WAL mode");
      }
      // A cache of the DHT and of what was heard: a power cut may lose the last commits, never
      // the file's consistency.
      exec("PRAGMA synchronous = NORMAL");
    } catch (...) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~SqliteIndex() override {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  void record_versions(const ucxl::Address &series, const std::vector<VersionRow> &versions, uint64_t now_ms) override {
    const std::string text = series.series();
    const std::string id = series_id(text);
    std::string latest_sha;
    if (!versions.empty() && !versions.back().deleted) latest_sha = versions.back().sha256;
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    upsert_series(series, text, id, versions.size(), latest_sha, now_ms, true);
    Statement(db_, "DELETE FROM versions WHERE series_id = ?1", who_).bind(1, id).run();
    Statement ins(db_,
                  "INSERT INTO versions(series_id, version, sha256, size, content_type, role, author, created, deleted) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  who_);
    for (const VersionRow &v : versions) {
      sqlite3_reset(ins.get());
      ins.bind(1, id).bind(2, v.version).bind(3, v.sha256).bind(4, v.size).bind(5, v.content_type).bind(6, v.role);
      ins.bind(7, v.author).bind(8, v.created_ms).bind(9, static_cast<uint64_t>(v.deleted ? 1 : 0));
      ins.run();
    }
    tx.commit();
  }

  void note_version(const ucxl::Address &series, uint64_t version, const std::string &sha256, uint64_t now_ms) override {
    const std::string text = series.series();
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    upsert_series(series, text, series_id(text), version, sha256, now_ms, false);
    tx.commit();
  }

  void add_provider(const ucxl::Address &series, const std::string &peer_id, uint64_t now_ms) override {
    const std::string text = series.series();
    const std::string id = series_id(text);
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    Statement(db_,
              "INSERT INTO series(id, address, agent, role, project, task, path, versions, latest_sha, updated) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, '', ?8) ON CONFLICT(id) DO NOTHING",
              who_)
        .bind(1, id)
        .bind(2, text)
        .bind(3, series.agent)
        .bind(4, series.role)
        .bind(5, series.project)
        .bind(6, series.task)
        .bind(7, series.path)
        .bind(8, now_ms)
        .run();
    Statement(db_,
              "INSERT INTO providers(series_id, peer_id, seen) VALUES (?1, ?2, ?3) "
              "ON CONFLICT(series_id, peer_id) DO UPDATE SET seen = max(seen, excluded.seen)",
              who_)
        .bind(1, id)
        .bind(2, peer_id)
        .bind(3, now_ms)
        .run();
    tx.commit();
  }

  std::optional<SeriesRow> series(const std::string &id) override {
    std::lock_guard lock(mu_);
    Statement st(db_, (std::string(kSeriesColumns) + "WHERE id = ?1").c_str(), who_);
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_series(st.get());
  }

  std::vector<VersionRow> versions(const std::string &id) override {
    std::lock_guard lock(mu_);
    Statement st(db_,
                 "SELECT version, sha256, size, content_type, role, author, created, deleted FROM versions "
                 "WHERE series_id = ?1 ORDER BY version",
                 who_);
    st.bind(1, id);
    std::vector<VersionRow> out;
    while (st.step()) {
      VersionRow v;
      v.version = column_u64(st.get(), 0);
      v.sha256 = column_text(st.get(), 1);
      v.size = column_u64(st.get(), 2);
      v.content_type = column_text(st.get(), 3);
      v.role = column_text(st.get(), 4);
      v.author = column_text(st.get(), 5);
      v.created_ms = column_u64(st.get(), 6);
      v.deleted = sqlite3_column_int64(st.get(), 7) != 0;
      out.push_back(std::move(v));
    }
    return out;
  }

  std::vector<ProviderRow> providers(const std::string &id) override {
    std::lock_guard lock(mu_);
    Statement st(db_, "SELECT peer_id, seen FROM providers WHERE series_id = ?1 ORDER BY seen DESC, peer_id", who_);
    st.bind(1, id);
    std::vector<ProviderRow> out;
    while (st.step()) out.push_back(ProviderRow{column_text(st.get(), 0), column_u64(st.get(), 1)});
    return out;
  }

  std::vector<SeriesRow> match(const ucxl::Address &pattern, size_t limit) override {
    // The components narrow the scan in SQL; the path prefix rule is ucxl::matches's own.
    std::lock_guard lock(mu_);
    Statement st(db_,
                 (std::string(kSeriesColumns) +
                  "WHERE (?1 = 'any' OR agent = ?1) AND (?2 = 'any' OR role = ?2) AND (?3 = 'any' OR project = ?3) "
                  "AND (?4 = 'any' OR task = ?4) ORDER BY updated DESC, address")
                     .c_str(),
                 who_);
    st.bind(1, pattern.agent).bind(2, pattern.role).bind(3, pattern.project).bind(4, pattern.task);
    std::vector<SeriesRow> out;
    while (out.size() < limit && st.step()) {
      SeriesRow r = read_series(st.get());
      ucxl::Address candidate;
      candidate.agent = r.agent;
      candidate.role = r.role;
      candidate.project = r.project;
      candidate.task = r.task;
      candidate.path = r.path;
      if (ucxl::matches(pattern, candidate)) out.push_back(std::move(r));
    }
    return out;
  }

  uint64_t series_count() override {
    std::lock_guard lock(mu_);
    Statement st(db_, "SELECT count(*) FROM series", who_);
    return st.step() ? column_u64(st.get(), 0) : 0;
  }

  const std::string &path() const override { return path_; }

 private:
  // BEGIN IMMEDIATE ... COMMIT, rolled back when an exception leaves the scope.
  class Transaction {
   public:
    explicit Transaction(SqliteIndex &ix) : ix_(ix) { ix_.exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (!done_) sqlite3_exec(ix_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit() {
      ix_.exec("COMMIT");
      done_ = true;
    }

   private:
    SqliteIndex &ix_;
    bool done_ = false;
  };

  // exact: the version count and latest come from a full list (replace them); otherwise from an
  // announcement (only ever move them forward).
  void upsert_series(const ucxl::Address &a, const std::string &text, const std::string &id, uint64_t versions,
                     const std::string &latest_sha, uint64_t now_ms, bool exact) {
    const char *sql =
        exact ? "INSERT INTO series(id, address, agent, role, project, task, path, versions, latest_sha, updated) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO UPDATE SET "
                "versions = excluded.versions, latest_sha = excluded.latest_sha, updated = excluded.updated"
              : "INSERT INTO series(id, address, agent, role, project, task, path, versions, latest_sha, updated) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO UPDATE SET "
                "latest_sha = CASE WHEN excluded.versions >= versions THEN excluded.latest_sha ELSE latest_sha END, "
                "versions = max(versions, excluded.versions), updated = max(updated, excluded.updated)";
    Statement(db_, sql, who_)
        .bind(1, id)
        .bind(2, text)
        .bind(3, a.agent)
        .bind(4, a.role)
        .bind(5, a.project)
        .bind(6, a.task)
        .bind(7, a.path)
        .bind(8, versions)
        .bind(9, latest_sha)
        .bind(10, now_ms)
        .run();
  }

  void exec(const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw IndexError(who_ + msg);
    }
  }

  std::vector<std::string> query_text(const char *sql) {
    Statement st(db_, sql, who_);
    std::vector<std::string> rows;
    while (st.step()) rows.push_back(column_text(st.get(), 0));
    return rows;
  }

  int64_t query_int(const char *sql) {
    const auto rows = query_text(sql);
    return rows.empty() ? 0 : std::strtoll(rows[0].c_str(), nullptr, 10);
  }

  // Reads only until the file is known to be ours, so a foreign database is never modified.
  void check_or_create_schema(bool memory) {
    int64_t app_id = 0, version = 0, tables = 0;
    try {
      app_id = query_int("PRAGMA application_id");  // a file that is not SQLite fails here
      version = query_int("PRAGMA user_version");
      tables = query_int("SELECT count(*) FROM sqlite_schema");
    } catch (const IndexError &e) {
      throw IndexError(std::string(e.what()) + " (refusing to use or overwrite it)");
    }
    if (app_id == 0 && version == 0 && tables == 0) {
      if (!memory) exec("PRAGMA journal_mode = WAL");
      exec("BEGIN IMMEDIATE");
      try {
        exec(kSchema);
        exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
        exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
        exec("COMMIT");
      } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
      return;
    }
    if (app_id != kApplicationId) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "application_id 0x%08x, expected 0x%08x", static_cast<uint32_t>(app_id),
                    static_cast<unsigned>(kApplicationId));
      throw IndexError(who_ + "a SQLite database of another application (" + buf + "); refusing to use or overwrite it");
    }
    if (version > kSchemaVersion)
      throw IndexError(who_ + "schema version " + std::to_string(version) + " is newer than this build supports (" +
                       std::to_string(kSchemaVersion) + "); refusing to use it");
    if (version < 1) throw IndexError(who_ + "ucxi application_id without a schema version; refusing to use it");
    std::vector<std::string> check;
    try {
      check = query_text("PRAGMA quick_check");
    } catch (const IndexError &e) {
      throw IndexError(std::string(e.what()) + " (integrity check failed; refusing to use it)");
    }
    if (check.size() != 1 || check[0] != "ok")
      throw IndexError(who_ + "integrity check failed: " + (check.empty() ? std::string("?") : check[0]) +
                       "; refusing to use it");
  }

  std::string path_;
  std::string who_;
  sqlite3 *db_ = nullptr;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Index> Index::open(const std::string &path) { return std::make_unique<SqliteIndex>(path); }

std::string series_id(const std::string &series) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const uint8_t *>(series.data()), series.size());
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof h);
  for (uint8_t b : h) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace chorus::ucxi

// Index on SQLite (see index.hpp). One connection behind a mutex: the callers are the DHT's thread
// (completions) and the host's HTTP workers (queries), and every statement is short. The file is
// opened, checked and created by sqlite::File (libs/sqlite-file).
#include "store/index.hpp"

#include <sodium.h>
#include <sqlite3.h>

#include <mutex>

#include "sqlite/file.hpp"

namespace chorus::ucxi {
namespace {

// PRAGMA application_id: "UCXI" read as a big-endian 32-bit integer, so the file tells what it is.
constexpr int32_t kApplicationId = 0x55435849;
constexpr int kSchemaVersion = 1;

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

sqlite::FileOptions file_options() {
  sqlite::FileOptions o;
  o.label = "ucxi index";
  o.application = "ucxi";
  o.application_id = kApplicationId;
  o.schema_version = kSchemaVersion;
  o.initialise = [](sqlite::File &f) { f.exec(kSchema); };
  return o;
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
  // A function-try-block: every refusal of the file (not a regular file, readable by others, not
  // ours, newer, damaged) reaches the callers as an IndexError, with its message unchanged.
  explicit SqliteIndex(const std::string &path) try : file_(path, file_options()), db_(file_.handle()) {
    // A cache of the DHT and of what was heard: a power cut may lose the last commits, never the
    // file's consistency.
    exec("PRAGMA synchronous = NORMAL");
  } catch (const sqlite::Error &e) {
    throw IndexError(e.what());
  }

  void record_versions(const ucxl::Address &series, const std::vector<VersionRow> &versions, uint64_t now_ms) override {
    const std::string text = series.series();
    const std::string id = series_id(text);
    std::string latest_sha;
    if (!versions.empty() && !versions.back().deleted) latest_sha = versions.back().sha256;
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    upsert_series(series, text, id, versions.size(), latest_sha, now_ms, true);
    Statement(db_, "DELETE FROM versions WHERE series_id = ?1", file_.who()).bind(1, id).run();
    Statement ins(db_,
                  "INSERT INTO versions(series_id, version, sha256, size, content_type, role, author, created, deleted) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  file_.who());
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
              file_.who())
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
              file_.who())
        .bind(1, id)
        .bind(2, peer_id)
        .bind(3, now_ms)
        .run();
    tx.commit();
  }

  std::optional<SeriesRow> series(const std::string &id) override {
    std::lock_guard lock(mu_);
    Statement st(db_, (std::string(kSeriesColumns) + "WHERE id = ?1").c_str(), file_.who());
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_series(st.get());
  }

  std::vector<VersionRow> versions(const std::string &id) override {
    std::lock_guard lock(mu_);
    Statement st(db_,
                 "SELECT version, sha256, size, content_type, role, author, created, deleted FROM versions "
                 "WHERE series_id = ?1 ORDER BY version",
                 file_.who());
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
    Statement st(db_, "SELECT peer_id, seen FROM providers WHERE series_id = ?1 ORDER BY seen DESC, peer_id", file_.who());
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
                 file_.who());
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
    Statement st(db_, "SELECT count(*) FROM series", file_.who());
    return st.step() ? column_u64(st.get(), 0) : 0;
  }

  const std::string &path() const override { return file_.path(); }

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
    Statement(db_, sql, file_.who())
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

  // The callers of the index catch IndexError, also for BEGIN and COMMIT.
  void exec(const char *sql) {
    try {
      file_.exec(sql);
    } catch (const sqlite::Error &e) {
      throw IndexError(e.what());
    }
  }

  sqlite::File file_;
  sqlite3 *db_;  // file_'s connection
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

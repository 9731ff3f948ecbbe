// TermStore on SQLite (see term_store.hpp). One connection, used by the election thread only.
#include "store/term_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

namespace chorus::election {
namespace {

// PRAGMA application_id: "CELE" read as a big-endian 32-bit integer (offset 68 of the file header),
// so the file tells what it is.
constexpr int32_t kApplicationId = 0x43454c45;
// PRAGMA user_version: the schema this code writes.
constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;

const char *const kSchema = R"sql(
CREATE TABLE election_state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  term INTEGER NOT NULL,
  voted_for TEXT NOT NULL,
  admin_ms_total INTEGER NOT NULL,
  admin_terms INTEGER NOT NULL);
INSERT INTO election_state(id, term, voted_for, admin_ms_total, admin_terms) VALUES (1, 0, '', 0, 0);
)sql";

std::string errno_text(int e) { return std::strerror(e); }

std::string parent_dir(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void fsync_dir(const std::string &dir, const std::string &who) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw TermStoreError(who + "cannot open its directory: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw TermStoreError(who + "fsync of its directory: " + errno_text(saved));
}

// mkdir -p with mode 0700 for what is created.
void make_dirs(const std::string &dir, const std::string &who) {
  if (dir.empty() || dir == "/" || dir == ".") return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw TermStoreError(who + dir + " is not a directory");
    return;
  }
  make_dirs(parent_dir(dir), who);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw TermStoreError(who + "cannot create directory " + dir + ": " + errno_text(errno));
}

// Creates the file 0600 when absent (create) and refuses one that group or others may access; the
// check runs on the descriptor of the file SQLite then opens.
void prepare_private_file(const std::string &path, bool create, const std::string &who) {
  bool created = false;
  int fd = -1;
  if (create) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created = fd >= 0;
    if (fd < 0 && errno != EEXIST) throw TermStoreError(who + "cannot create: " + errno_text(errno));
  }
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (!create && errno == ENOENT) return;
    throw TermStoreError(who + "cannot open: " + errno_text(errno));
  }
  struct stat st {};
  const int rc = ::fstat(fd, &st);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw TermStoreError(who + "fstat: " + errno_text(saved));
  if (!S_ISREG(st.st_mode)) throw TermStoreError(who + "not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw TermStoreError(who + "mode " + mode + " lets group or others access it; refusing (chmod 600 it)");
  }
  if (created) fsync_dir(parent_dir(path), who);
}

class SqliteTermStore final : public TermStore {
 public:
  explicit SqliteTermStore(const std::string &path) : path_(path), who_("election state " + path + ": ") {
    if (path.empty()) throw TermStoreError("election state: no path given");
    make_dirs(parent_dir(path), who_);
    prepare_private_file(path, true, who_);
    prepare_private_file(path + "-wal", false, who_);
    prepare_private_file(path + "-shm", false, who_);
    // Never SQLITE_OPEN_CREATE: the file was created (0600) above.
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw TermStoreError(who_ + "cannot open: " + msg);
    }
    try {
      sqlite3_extended_result_codes(db_, 1);
      sqlite3_busy_timeout(db_, kBusyTimeoutMs);
      check_or_create_schema();
      const auto mode = query_text("PRAGMA journal_mode = WAL");
      if (mode.empty() || mode[0] != "wal") throw TermStoreError(who_ + "cannot switch to WAL mode");
      exec("PRAGMA synchronous = FULL");
      state_ = read_state();
    } catch (...) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~SqliteTermStore() override {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  PersistentState load() override { return state_; }

  void save(const PersistentState &s) override {
    if (s.term < state_.term)
      throw TermStoreError(who_ + "refusing to lower the term from " + std::to_string(state_.term) + " to " +
                           std::to_string(s.term));
    if (s == state_) return;
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "UPDATE election_state SET term = ?1, voted_for = ?2, admin_ms_total = ?3, "
                           "admin_terms = ?4 WHERE id = 1",
                           -1, &st, nullptr) != SQLITE_OK)
      fail("prepare");
    sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(s.term));
    sqlite3_bind_text(st, 2, s.voted_for.data(), static_cast<int>(s.voted_for.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, static_cast<sqlite3_int64>(s.admin_ms_total));
    sqlite3_bind_int64(st, 4, static_cast<sqlite3_int64>(s.admin_terms));
    const int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) fail("save");
    if (sqlite3_changes(db_) != 1) throw TermStoreError(who_ + "the state row is missing");
    state_ = s;
  }

  const std::string &path() const override { return path_; }

 private:
  [[noreturn]] void fail(const char *what) const {
    throw TermStoreError(who_ + what + ": " + sqlite3_errmsg(db_));
  }

  void exec(const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw TermStoreError(who_ + msg);
    }
  }

  std::vector<std::string> query_text(const char *sql) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) fail(sql);
    std::vector<std::string> rows;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      const auto *t = sqlite3_column_text(st, 0);
      rows.emplace_back(t != nullptr ? reinterpret_cast<const char *>(t) : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) fail(sql);
    return rows;
  }

  int64_t query_int(const char *sql) {
    const auto rows = query_text(sql);
    return rows.empty() ? 0 : std::strtoll(rows[0].c_str(), nullptr, 10);
  }

  // Reads only until the file is known to be ours, so a foreign database is never modified.
  void check_or_create_schema() {
    int64_t app_id = 0, version = 0, tables = 0;
    try {
      app_id = query_int("PRAGMA application_id");  // a file that is not SQLite fails here
      version = query_int("PRAGMA user_version");
      tables = query_int("SELECT count(*) FROM sqlite_schema");
    } catch (const TermStoreError &e) {
      throw TermStoreError(std::string(e.what()) + " (refusing to use or overwrite it)");
    }
    if (app_id == 0 && version == 0 && tables == 0) {
      exec("PRAGMA journal_mode = WAL");
      exec("BEGIN IMMEDIATE");
      try {
        exec(kSchema);
        exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
        exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
        exec("COMMIT");
      } catch (...) {
        try {
          exec("ROLLBACK");
        } catch (...) {
        }
        throw;
      }
      return;
    }
    if (app_id != kApplicationId) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "application_id 0x%08x, expected 0x%08x", static_cast<uint32_t>(app_id),
                    static_cast<unsigned>(kApplicationId));
      throw TermStoreError(who_ + "a SQLite database of another application (" + buf +
                           "); refusing to use or overwrite it");
    }
    if (version > kSchemaVersion)
      throw TermStoreError(who_ + "schema version " + std::to_string(version) + " is newer than this build supports (" +
                           std::to_string(kSchemaVersion) + "); refusing to use it");
    if (version < 1) throw TermStoreError(who_ + "election application_id without a schema version; refusing to use it");
    std::vector<std::string> check;
    try {
      check = query_text("PRAGMA quick_check");
    } catch (const TermStoreError &e) {
      throw TermStoreError(std::string(e.what()) + " (integrity check failed; refusing to use it)");
    }
    if (check.size() != 1 || check[0] != "ok")
      throw TermStoreError(who_ + "integrity check failed: " + (check.empty() ? std::string("?") : check[0]) +
                           "; refusing to use it");
  }

  PersistentState read_state() {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT term, voted_for, admin_ms_total, admin_terms FROM election_state WHERE id = 1",
                           -1, &st, nullptr) != SQLITE_OK)
      fail("read");
    PersistentState s;
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const sqlite3_int64 term = sqlite3_column_int64(st, 0), ms = sqlite3_column_int64(st, 2),
                          terms = sqlite3_column_int64(st, 3);
      const auto *voted = sqlite3_column_text(st, 1);
      if (term < 0 || ms < 0 || terms < 0) {
        sqlite3_finalize(st);
        throw TermStoreError(who_ + "negative values in the state row; refusing to use it");
      }
      s.term = static_cast<uint64_t>(term);
      s.voted_for = voted != nullptr ? reinterpret_cast<const char *>(voted) : "";
      s.admin_ms_total = static_cast<uint64_t>(ms);
      s.admin_terms = static_cast<uint64_t>(terms);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) throw TermStoreError(who_ + "the state row is missing; refusing to use it");
    if (rc != SQLITE_ROW) fail("read");
    return s;
  }

  std::string path_;
  std::string who_;
  sqlite3 *db_ = nullptr;
  PersistentState state_;
};

}  // namespace

std::unique_ptr<TermStore> TermStore::open(const std::string &path) { return std::make_unique<SqliteTermStore>(path); }

}  // namespace chorus::election

#include "eventlog/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include <sqlite3.h>

namespace chorus::eventlog {

namespace {

constexpr const char *kSchema =
    "CREATE TABLE entries("
    "idx INTEGER PRIMARY KEY, ts TEXT NOT NULL, author TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, "
    "prev_hash BLOB NOT NULL, hash BLOB NOT NULL, signature BLOB NOT NULL) STRICT;"
    "CREATE INDEX entries_by_type ON entries(type, idx);";

constexpr const char *kColumns = "SELECT idx, ts, author, type, data, prev_hash, hash, signature FROM entries";

std::string db_error(sqlite3 *db, const std::string &what) {
  return what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3 *db, const char *sql, std::string *err) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) {
      *err = db_error(db, "prepare");
      s_ = nullptr;
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt &) = delete;
  Stmt &operator=(const Stmt &) = delete;
  explicit operator bool() const { return s_ != nullptr; }
  sqlite3_stmt *get() const { return s_; }

 private:
  sqlite3_stmt *s_ = nullptr;
};

std::string text_column(sqlite3_stmt *s, int col) {
  const auto *p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char *>(p), static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

template <size_t N>
bool blob_column(sqlite3_stmt *s, int col, std::array<uint8_t, N> &out) {
  const void *p = sqlite3_column_blob(s, col);
  const int n = sqlite3_column_bytes(s, col);
  if (p == nullptr || n != static_cast<int>(N)) return false;
  std::memcpy(out.data(), p, N);
  return true;
}

// Reads the current row of a kColumns statement; the defect says what makes it no entry at all.
Entry read_row(sqlite3_stmt *s, std::string *defect) {
  Entry e;
  const sqlite3_int64 idx = sqlite3_column_int64(s, 0);
  if (idx < 0) *defect = "negative index " + std::to_string(idx);
  e.index = static_cast<uint64_t>(idx);
  e.timestamp = text_column(s, 1);
  e.author = text_column(s, 2);
  e.type = text_column(s, 3);
  e.data = text_column(s, 4);
  if (!blob_column(s, 5, e.prev_hash) && defect->empty()) *defect = "prev_hash is not 32 bytes";
  if (!blob_column(s, 6, e.hash) && defect->empty()) *defect = "hash is not 32 bytes";
  if (!blob_column(s, 7, e.signature) && defect->empty()) *defect = "signature is not 64 bytes";
  return e;
}

sqlite3_int64 clamp_index(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<sqlite3_int64>::max()) ? std::numeric_limits<sqlite3_int64>::max()
                                                                               : static_cast<sqlite3_int64>(v);
}

bool pragma_int(sqlite3 *db, const char *sql, int64_t *out, std::string *err) {
  Stmt st(db, sql, err);
  if (!st) return false;
  const int rc = sqlite3_step(st.get());
  if (rc != SQLITE_ROW) {
    *err = db_error(db, sql);
    return false;
  }
  *out = sqlite3_column_int64(st.get(), 0);
  return true;
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string &path, Mode mode, std::string *err) {
  const bool writable = mode == Mode::kReadWrite;
  if (writable) {
    // Create the file ourselves so it is 0600 from its first byte (SQLite gives the -wal and -shm
    // files the database file's mode).
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      *err = "cannot open " + path + ": " + std::strerror(errno);
      return nullptr;
    }
    ::close(fd);
  } else if (::access(path.c_str(), R_OK) != 0) {
    *err = "cannot read " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  sqlite3 *db = nullptr;
  const int flags = (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    *err = db_error(db, "cannot open " + path);
    sqlite3_close(db);
    return nullptr;
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);

  // Identify the file before changing anything in it.
  int64_t app_id = 0, version = 0, objects = 0;
  std::string why;
  if (!pragma_int(db, "PRAGMA application_id", &app_id, &why) || !pragma_int(db, "PRAGMA user_version", &version, &why) ||
      !pragma_int(db, "SELECT count(*) FROM sqlite_master", &objects, &why)) {
    *err = path + " is not a readable SQLite database (" + why + "); it was left untouched";
    return nullptr;
  }
  const bool fresh = app_id == 0 && version == 0 && objects == 0;
  if (!fresh && app_id != kApplicationId) {
    *err = path + " is not a chorus event log (SQLite application_id " + std::to_string(app_id) +
           "); it was left untouched";
    return nullptr;
  }
  if (!fresh && version != kSchemaVersion) {
    *err = path + " has event log schema version " + std::to_string(version) + ", this build reads version " +
           std::to_string(kSchemaVersion) + "; it was left untouched";
    return nullptr;
  }
  if (fresh && !writable) {
    *err = path + " is an empty file, not an event log";
    return nullptr;
  }
  if (writable) {
    ::chmod(path.c_str(), 0600);
    if (!store->exec("PRAGMA journal_mode=WAL", err) || !store->exec("PRAGMA synchronous=FULL", err)) return nullptr;
    if (fresh) {
      const std::string init = "BEGIN IMMEDIATE;" + std::string(kSchema) +
                               "PRAGMA application_id=" + std::to_string(kApplicationId) +
                               ";PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";COMMIT;";
      if (!store->exec(init.c_str(), err)) {
        store->exec("ROLLBACK", &why);
        return nullptr;
      }
    }
  }
  return store;
}

Store::~Store() { sqlite3_close(db_); }

bool Store::exec(const char *sql, std::string *err) {
  char *msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    *err = std::string(sql).substr(0, 40) + ": " + (msg ? msg : "error");
    sqlite3_free(msg);
    return false;
  }
  return true;
}

std::optional<Entry> Store::last(std::string *err) {
  err->clear();
  Stmt st(db_, (std::string(kColumns) + " ORDER BY idx DESC LIMIT 1").c_str(), err);
  if (!st) return std::nullopt;
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) {
    *err = db_error(db_, "read head");
    return std::nullopt;
  }
  std::string defect;
  Entry e = read_row(st.get(), &defect);
  if (!defect.empty()) {
    *err = "the last entry (index " + std::to_string(e.index) + ") is malformed: " + defect;
    return std::nullopt;
  }
  return e;
}

bool Store::append(const std::vector<Entry> &entries, std::string *err) {
  if (!exec("BEGIN IMMEDIATE", err)) return false;
  {
    Stmt st(db_, "INSERT INTO entries(idx, ts, author, type, data, prev_hash, hash, signature) VALUES(?,?,?,?,?,?,?,?)", err);
    if (!st) {
      std::string ignored;
      exec("ROLLBACK", &ignored);
      return false;
    }
    for (const Entry &e : entries) {
      sqlite3_stmt *s = st.get();
      sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(e.index));
      sqlite3_bind_text(s, 2, e.timestamp.data(), static_cast<int>(e.timestamp.size()), SQLITE_STATIC);
      sqlite3_bind_text(s, 3, e.author.data(), static_cast<int>(e.author.size()), SQLITE_STATIC);
      sqlite3_bind_text(s, 4, e.type.data(), static_cast<int>(e.type.size()), SQLITE_STATIC);
      sqlite3_bind_text(s, 5, e.data.data(), static_cast<int>(e.data.size()), SQLITE_STATIC);
      sqlite3_bind_blob(s, 6, e.prev_hash.data(), 32, SQLITE_STATIC);
      sqlite3_bind_blob(s, 7, e.hash.data(), 32, SQLITE_STATIC);
      sqlite3_bind_blob(s, 8, e.signature.data(), 64, SQLITE_STATIC);
      if (sqlite3_step(s) != SQLITE_DONE) {
        *err = db_error(db_, "insert entry " + std::to_string(e.index));
        sqlite3_reset(s);
        std::string ignored;
        exec("ROLLBACK", &ignored);
        return false;
      }
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    }
  }
  if (!exec("COMMIT", err)) {
    std::string ignored;
    exec("ROLLBACK", &ignored);
    return false;
  }
  return true;
}

bool Store::query(uint64_t from, uint64_t to, const std::string &type, size_t limit, std::vector<Entry> *out,
                  std::string *err) {
  out->clear();
  const std::string sql = std::string(kColumns) + " WHERE idx >= ?1 AND idx <= ?2" +
                          (type.empty() ? "" : " AND type = ?3") + " ORDER BY idx LIMIT ?4";
  Stmt st(db_, sql.c_str(), err);
  if (!st) return false;
  sqlite3_bind_int64(st.get(), 1, clamp_index(from));
  sqlite3_bind_int64(st.get(), 2, clamp_index(to));
  if (!type.empty()) sqlite3_bind_text(st.get(), 3, type.data(), static_cast<int>(type.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st.get(), 4, static_cast<sqlite3_int64>(limit));
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    std::string defect;
    out->push_back(read_row(st.get(), &defect));
  }
  if (rc != SQLITE_DONE) {
    *err = db_error(db_, "query");
    return false;
  }
  return true;
}

bool Store::scan(const std::function<bool(const Entry &, const std::string &)> &fn, std::string *err) {
  Stmt st(db_, (std::string(kColumns) + " ORDER BY idx").c_str(), err);
  if (!st) return false;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    std::string defect;
    const Entry e = read_row(st.get(), &defect);
    if (!fn(e, defect)) return true;
  }
  if (rc != SQLITE_DONE) {
    *err = db_error(db_, "read entries");
    return false;
  }
  return true;
}

}  // namespace chorus::eventlog

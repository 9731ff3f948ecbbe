// RecordStore on SQLite (see record_store.hpp and the README's "Storage" section).
//
// Connections: one writer connection, used only by the thread that currently commits a batch, and a
// small pool of read-only connections (WAL lets them read while the writer commits). Every connection
// keeps its prepared statements for its whole life.
//
// Group commit (leader/follower): a write is queued as an operation; the first writer that finds no
// commit in progress becomes the leader, takes everything queued (up to kMaxBatch), runs it in one
// transaction, commits (synchronous=FULL: the WAL is fsync'd before COMMIT returns), marks those
// operations done and wakes the others. Writers whose operation was taken wait on a condition
// variable; a writer whose operation is still queued when the leader finishes becomes the next leader.
// So N concurrent writers share one fsync, and throughput grows with concurrency. (In steady state the
// writers split into two groups that alternate, so a batch holds about N/2 writes.)
//
// Asynchronous writes (put_record_async, add_provider_async) join the same queue; the store's own
// thread leads a batch when some are queued and no one else is committing, and runs their callbacks
// after the commit. One thread can so keep thousands of writes in flight without waiting on fsync.
#include "store/record_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "wire/varint.hpp"

namespace chorus::dht {
namespace {

// PRAGMA application_id of a chorus dht store: "CDHT" read as a big-endian 32-bit integer. SQLite
// stores it at offset 68 of the file header, so `file` and operators can tell the file apart.
constexpr int32_t kApplicationId = 0x43444854;
// PRAGMA user_version: the schema this code writes. Bump it with a migration when the schema changes.
constexpr int kSchemaVersion = 1;
// The most operations one transaction carries; the rest wait for the next commit. Bounds the time a
// follower waits behind one huge batch.
constexpr size_t kMaxBatch = 4096;
constexpr int kBusyTimeoutMs = 10000;

const char *const kSchema = R"sql(
CREATE TABLE records(
  key BLOB NOT NULL UNIQUE,
  value BLOB NOT NULL,
  received_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  local INTEGER NOT NULL);
CREATE INDEX records_expiry ON records(expires_ms);
CREATE INDEX records_local ON records(received_ms) WHERE local = 1;
CREATE TABLE providers(
  key BLOB NOT NULL,
  provider BLOB NOT NULL,
  addrs BLOB NOT NULL,
  received_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  PRIMARY KEY(key, provider)) WITHOUT ROWID;
CREATE INDEX providers_expiry ON providers(expires_ms);
CREATE INDEX providers_newest ON providers(key, received_ms);
CREATE INDEX providers_by_peer ON providers(provider, expires_ms);
CREATE TABLE local_provides(
  key BLOB NOT NULL PRIMARY KEY,
  added_ms INTEGER NOT NULL,
  provided_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX local_provides_due ON local_provides(provided_ms);
CREATE TABLE cache(
  key BLOB NOT NULL UNIQUE,
  value BLOB NOT NULL,
  expires_ms INTEGER NOT NULL);
CREATE INDEX cache_expiry ON cache(expires_ms);
)sql";

const char *const kTables[] = {"records", "providers", "local_provides", "cache"};

std::string mode_string(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// fsyncs the directory holding path, so a file just created there survives a power cut.
void sync_parent_dir(const std::string &path) {
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw StoreError("record store " + path + ": cannot open its directory: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) throw StoreError("record store " + path + ": fsync of its directory: " + std::strerror(saved));
}

// Creates path with mode 0600 when absent (if create) and refuses a file that group or others may
// access. The check runs on the descriptor, so it is about the file SQLite is about to open.
void prepare_private_file(const std::string &path, bool create) {
  bool created = false;
  int fd = -1;
  if (create) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created = fd >= 0;
    if (fd < 0 && errno != EEXIST) {
      throw StoreError("record store " + path + ": cannot create: " + std::strerror(errno));
    }
  }
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (!create && errno == ENOENT) return;
    throw StoreError("record store " + path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  int rc = ::fstat(fd, &st);
  int saved = errno;
  ::close(fd);
  if (rc != 0) throw StoreError("record store " + path + ": fstat: " + std::strerror(saved));
  if (!S_ISREG(st.st_mode)) throw StoreError("record store " + path + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    throw StoreError("record store " + path + ": mode " + mode_string(st.st_mode) +
                     " lets group or others access it; refusing (chmod 600 it)");
  }
  if (created) sync_parent_dir(path);
}

Bytes encode_addrs(const std::vector<Bytes> &addrs) {
  Bytes out;
  for (const Bytes &a : addrs) chorus::p2p::append_lp(out, a);
  return out;
}

// The addrs column is written only by encode_addrs; a malformed blob means the file was damaged, and
// the addresses decoded so far are returned.
std::vector<Bytes> decode_addrs(BytesView in) {
  std::vector<Bytes> out;
  while (!in.empty()) {
    uint64_t len = 0;
    size_t used = 0;
    if (chorus::p2p::read_uvarint(in, len, used) != chorus::p2p::VarintStatus::ok) break;
    in = in.subspan(used);
    if (len > in.size()) break;
    out.emplace_back(in.begin(), in.begin() + static_cast<ptrdiff_t>(len));
    in = in.subspan(static_cast<size_t>(len));
  }
  return out;
}

// One prepared statement, reset on scope exit so it can be reused.
class Stmt {
 public:
  Stmt(sqlite3_stmt *s, sqlite3 *db, const std::string *path) : s_(s), db_(db), path_(path) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt &) = delete;
  Stmt &operator=(const Stmt &) = delete;

  Stmt &bind(int i, BytesView b) {
    // A zero-length blob must still be a blob (not NULL): pass a non-null pointer.
    static const uint8_t kEmpty = 0;
    check(sqlite3_bind_blob(s_, i, b.empty() ? &kEmpty : b.data(), static_cast<int>(b.size()),
                            SQLITE_STATIC));
    return *this;
  }
  Stmt &bind(int i, int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    check(rc);
    return false;
  }
  void run() {
    while (step()) {
    }
  }
  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  Bytes blob(int col) const {
    const auto *p = static_cast<const uint8_t *>(sqlite3_column_blob(s_, col));
    int n = sqlite3_column_bytes(s_, col);
    return p ? Bytes(p, p + n) : Bytes();
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) throw StoreError("record store " + *path_ + ": " + sqlite3_errmsg(db_));
  }
  sqlite3_stmt *s_;
  sqlite3 *db_;
  const std::string *path_;
};

class Connection {
 public:
  // Never SQLITE_OPEN_CREATE: the file is created (0600) before SQLite sees it. Readers open read-write
  // with query_only set, so they can map the WAL index like the writer does.
  Connection(const std::string &path, bool read_only) : path_(path) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw StoreError("record store " + path + ": cannot open: " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // SQLite's default page cache, 2 MiB per connection, fills as the store grows and stays: one of
    // the slow growths of the cluster soak's agents (docs/benchmarks.md, "Memory through a partition
    // heal"). Pages beyond it come from the kernel's page cache, which is shared and reclaimable.
    sqlite3_exec(db_, "PRAGMA cache_size = -256", nullptr, nullptr, nullptr);  // KiB; a hint, never fatal
    if (read_only && sqlite3_exec(db_, "PRAGMA query_only = 1", nullptr, nullptr, nullptr) != SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db_);
      sqlite3_close_v2(db_);
      throw StoreError("record store " + path + ": " + msg);
    }
  }
  ~Connection() {
    for (auto &[sql, s] : stmts_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;

  // The statement for sql, prepared once per connection (sql is one of the static strings below).
  Stmt prepare(const char *sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) {
      sqlite3_stmt *s = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
      if (rc != SQLITE_OK) fail("prepare");
      it = stmts_.emplace(sql, s).first;
    }
    return Stmt(it->second, db_, &path_);
  }

  void exec(const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw StoreError("record store " + path_ + ": " + msg);
    }
  }

  // Runs a one-column query (a PRAGMA) and returns its rows as text.
  std::vector<std::string> query_text(const char *sql) {
    sqlite3_stmt *s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) fail(sql);
    std::vector<std::string> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const auto *t = sqlite3_column_text(s, 0);
      rows.emplace_back(t ? reinterpret_cast<const char *>(t) : "");
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail(sql);
    return rows;
  }
  int64_t query_int(const char *sql) {
    auto rows = query_text(sql);
    return rows.empty() ? 0 : std::strtoll(rows[0].c_str(), nullptr, 10);
  }

  int changes() const { return sqlite3_changes(db_); }

  [[noreturn]] void fail(const char *what) const {
    throw StoreError("record store " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  std::string path_;
  sqlite3 *db_ = nullptr;
  std::unordered_map<const char *, sqlite3_stmt *> stmts_;
};

// SQL, one constant per statement so every connection caches it by address.
const char *const kPutRecord =
    "INSERT INTO records(key, value, received_ms, expires_ms, local) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, received_ms = excluded.received_ms, "
    "expires_ms = excluded.expires_ms, local = excluded.local";
const char *const kGetRecord =
    "SELECT value, received_ms, expires_ms, local FROM records WHERE key = ?1 AND expires_ms > ?2";
const char *const kRemoveRecord = "DELETE FROM records WHERE key = ?1";
const char *const kLocalRecords =
    "SELECT key, value, received_ms, expires_ms FROM records WHERE local = 1 AND received_ms < ?1 "
    "ORDER BY received_ms LIMIT ?2";
const char *const kProviderExists = "SELECT 1 FROM providers WHERE key = ?1 AND provider = ?2";
const char *const kProviderKeyCount =
    "SELECT count(*) FROM providers WHERE provider = ?1 AND expires_ms > ?2";
const char *const kPutProvider =
    "INSERT OR REPLACE INTO providers(key, provider, addrs, received_ms, expires_ms) "
    "VALUES(?1, ?2, ?3, ?4, ?5)";
const char *const kProvidersOfKeyCount = "SELECT count(*) FROM providers WHERE key = ?1";
const char *const kTrimProviders =
    "DELETE FROM providers WHERE key = ?1 AND provider IN (SELECT provider FROM providers "
    "WHERE key = ?1 ORDER BY received_ms ASC, provider ASC LIMIT ?2)";
const char *const kProviders =
    "SELECT provider, addrs, received_ms, expires_ms FROM providers WHERE key = ?1 AND expires_ms > ?2 "
    "ORDER BY received_ms DESC, provider DESC LIMIT ?3";
const char *const kAddLocalProvide =
    "INSERT INTO local_provides(key, added_ms, provided_ms) VALUES(?1, ?2, 0) "
    "ON CONFLICT(key) DO UPDATE SET added_ms = excluded.added_ms";
const char *const kRemoveLocalProvide = "DELETE FROM local_provides WHERE key = ?1";
const char *const kLocalProvidesDue =
    "SELECT key FROM local_provides WHERE provided_ms < ?1 ORDER BY provided_ms";
const char *const kMarkProvided = "UPDATE local_provides SET provided_ms = ?2 WHERE key = ?1";
const char *const kCachePut =
    "INSERT INTO cache(key, value, expires_ms) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";
const char *const kCacheGet = "SELECT value FROM cache WHERE key = ?1 AND expires_ms > ?2";
const char *const kSweepRecords = "DELETE FROM records WHERE expires_ms <= ?1 AND local = 0";
const char *const kSweepProviders = "DELETE FROM providers WHERE expires_ms <= ?1";
const char *const kSweepCache = "DELETE FROM cache WHERE expires_ms <= ?1";
const char *const kCountRecords = "SELECT count(*) FROM records";
const char *const kCountProviders = "SELECT count(*) FROM providers";
const char *const kCountLocalProvides = "SELECT count(*) FROM local_provides";
const char *const kCountCache = "SELECT count(*) FROM cache";

// Checks that the file is a chorus dht store this code can use, and creates the schema in a new
// (empty) file. Reads only until the file is known to be ours: a foreign database is not modified.
void check_or_create_schema(Connection &db, const std::string &path) {
  const std::string who = "record store " + path + ": ";
  int64_t app_id = 0, version = 0, tables = 0;
  try {
    // The first read of a file that is not SQLite fails here with "file is not a database".
    app_id = db.query_int("PRAGMA application_id");
    version = db.query_int("PRAGMA user_version");
    tables = db.query_int("SELECT count(*) FROM sqlite_schema");
  } catch (const StoreError &e) {
    throw StoreError(std::string(e.what()) + " (refusing to use or overwrite it)");
  }

  if (app_id == 0 && version == 0 && tables == 0) {
    // A new file (or an empty SQLite database): make it ours, all in one transaction.
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(kSchema);
      db.exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
      db.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
      db.exec("COMMIT");
    } catch (...) {
      try {
        db.exec("ROLLBACK");
      } catch (...) {
      }
      throw;  // the reason the schema could not be created, not the rollback's
    }
    return;
  }

  if (app_id != kApplicationId) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "application_id 0x%08llx, expected 0x%08x",
                  static_cast<unsigned long long>(static_cast<uint32_t>(app_id)),
                  static_cast<unsigned>(kApplicationId));
    throw StoreError(who + "a SQLite database of another application (" + buf +
                     ", chorus_dht); refusing to use or overwrite it");
  }
  if (version > kSchemaVersion) {
    throw StoreError(who + "schema version " + std::to_string(version) +
                     " is newer than this build supports (" + std::to_string(kSchemaVersion) +
                     "); refusing to use it");
  }
  if (version < 1) {
    throw StoreError(who + "chorus_dht application_id without a schema version; refusing to use it");
  }
  for (const char *table : kTables) {
    std::string sql = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '" +
                      std::string(table) + "'";
    if (db.query_int(sql.c_str()) != 1) {
      throw StoreError(who + "the chorus table '" + table + "' is missing; refusing to use it");
    }
  }
  std::vector<std::string> check;
  try {
    check = db.query_text("PRAGMA quick_check");
  } catch (const StoreError &e) {
    throw StoreError(std::string(e.what()) + " (integrity check failed; refusing to use it)");
  }
  if (check.size() != 1 || check[0] != "ok") {
    std::string detail;
    size_t shown = 0;
    for (const std::string &line : check) {
      if (line.rfind("***", 0) == 0) continue;  // "*** in database main ***"
      if (shown++ == 3) break;
      detail += (shown > 1 ? "; " : "") + line;
    }
    throw StoreError(who + "integrity check failed: " + detail + "; refusing to use it");
  }
}

class SqliteRecordStore final : public RecordStore {
 public:
  explicit SqliteRecordStore(const StoreOptions &options) : options_(options) {
    const std::string &path = options_.path;
    if (path.empty()) throw StoreError("record store: no path given");
    prepare_private_file(path, true);
    // SQLite creates -wal and -shm with the database file's mode; ones left behind by someone else
    // must be private too.
    prepare_private_file(path + "-wal", false);
    prepare_private_file(path + "-shm", false);

    writer_ = std::make_unique<Connection>(path, false);
    check_or_create_schema(*writer_, path);
    auto mode = writer_->query_text("PRAGMA journal_mode = WAL");
    if (mode.empty() || mode[0] != "wal") {
      throw StoreError("record store " + path + ": cannot switch to WAL mode");
    }
    writer_->exec("PRAGMA synchronous = FULL");
    // The WAL file is reused after each checkpoint; cap what it keeps on disk after a big burst.
    writer_->exec("PRAGMA journal_size_limit = 67108864");
    store_thread_ = std::thread([this] { store_thread(); });
  }

  ~SqliteRecordStore() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    committed_cv_.notify_all();
    store_thread_.join();
  }

  SqliteRecordStore(const SqliteRecordStore &) = delete;
  SqliteRecordStore &operator=(const SqliteRecordStore &) = delete;

  void put_record(const StoredRecord &r) override {
    int64_t expires = record_expiry(r);
    write([&](Connection &db) { return apply_put_record(db, r, expires); });
  }

  void put_record_async(const StoredRecord &r, WriteDone done) override {
    int64_t expires = record_expiry(r);
    write_async([r, expires](Connection &db) { return apply_put_record(db, r, expires); },
                [done = std::move(done)](bool, std::exception_ptr error) {
                  if (done) done(std::move(error));
                });
  }

  std::optional<StoredRecord> get_record(BytesView key, int64_t now_ms) override {
    return read([&](Connection &db) -> std::optional<StoredRecord> {
      Stmt s = db.prepare(kGetRecord);
      s.bind(1, key).bind(2, now_ms);
      if (!s.step()) return std::nullopt;
      StoredRecord r;
      r.key.assign(key.begin(), key.end());
      r.value = s.blob(0);
      r.received_ms = s.i64(1);
      r.expires_ms = s.i64(2);
      r.local = s.i64(3) != 0;
      return r;
    });
  }

  bool remove_record(BytesView key) override {
    return write([&](Connection &db) {
      db.prepare(kRemoveRecord).bind(1, key).run();
      return db.changes() > 0;
    });
  }

  std::vector<StoredRecord> local_records_older_than(int64_t older_than_ms, size_t max) override {
    return read([&](Connection &db) {
      std::vector<StoredRecord> out;
      Stmt s = db.prepare(kLocalRecords);
      s.bind(1, older_than_ms).bind(2, max == 0 ? int64_t{-1} : static_cast<int64_t>(max));
      while (s.step()) {
        StoredRecord r;
        r.key = s.blob(0);
        r.value = s.blob(1);
        r.received_ms = s.i64(2);
        r.expires_ms = s.i64(3);
        r.local = true;
        out.push_back(std::move(r));
      }
      return out;
    });
  }

  bool add_provider(const ProviderRecord &r) override {
    int64_t expires = provider_expiry(r);
    Bytes addrs = encode_addrs(r.addrs);
    return write([&](Connection &db) { return apply_add_provider(db, r, addrs, expires); });
  }

  void add_provider_async(const ProviderRecord &r, ProviderDone done) override {
    int64_t expires = provider_expiry(r);
    write_async([this, r, addrs = encode_addrs(r.addrs), expires](Connection &db) {
                  return apply_add_provider(db, r, addrs, expires);
                },
                std::move(done));
  }

  std::vector<ProviderRecord> providers(BytesView key, int64_t now_ms, size_t max) override {
    return read([&](Connection &db) {
      std::vector<ProviderRecord> out;
      Stmt s = db.prepare(kProviders);
      s.bind(1, key).bind(2, now_ms).bind(3, max == 0 ? int64_t{-1} : static_cast<int64_t>(max));
      while (s.step()) {
        ProviderRecord p;
        p.key.assign(key.begin(), key.end());
        p.provider = s.blob(0);
        p.addrs = decode_addrs(s.blob(1));
        p.received_ms = s.i64(2);
        p.expires_ms = s.i64(3);
        out.push_back(std::move(p));
      }
      return out;
    });
  }

  void add_local_provide(BytesView key, int64_t now_ms) override {
    write([&](Connection &db) {
      db.prepare(kAddLocalProvide).bind(1, key).bind(2, now_ms).run();
      return true;
    });
  }

  bool remove_local_provide(BytesView key) override {
    return write([&](Connection &db) {
      db.prepare(kRemoveLocalProvide).bind(1, key).run();
      return db.changes() > 0;
    });
  }

  std::vector<Bytes> local_provides_older_than(int64_t older_than_ms) override {
    return read([&](Connection &db) {
      std::vector<Bytes> out;
      Stmt s = db.prepare(kLocalProvidesDue);
      s.bind(1, older_than_ms);
      while (s.step()) out.push_back(s.blob(0));
      return out;
    });
  }

  void mark_provided(BytesView key, int64_t now_ms) override {
    write([&](Connection &db) {
      db.prepare(kMarkProvided).bind(1, key).bind(2, now_ms).run();
      return true;
    });
  }

  void cache_put(BytesView key, BytesView value, int64_t now_ms, int64_t ttl_ms) override {
    write([&](Connection &db) {
      db.prepare(kCachePut).bind(1, key).bind(2, value).bind(3, now_ms + ttl_ms).run();
      return true;
    });
  }

  std::optional<Bytes> cache_get(BytesView key, int64_t now_ms) override {
    return read([&](Connection &db) -> std::optional<Bytes> {
      Stmt s = db.prepare(kCacheGet);
      s.bind(1, key).bind(2, now_ms);
      if (!s.step()) return std::nullopt;
      return s.blob(0);
    });
  }

  size_t sweep_expired(int64_t now_ms) override {
    size_t removed = 0;
    write([&](Connection &db) {
      for (const char *sql : {kSweepRecords, kSweepProviders, kSweepCache}) {
        db.prepare(sql).bind(1, now_ms).run();
        removed += static_cast<size_t>(db.changes());
      }
      return true;
    });
    return removed;
  }

  StoreStats stats() override {
    StoreStats st = read([&](Connection &db) {
      StoreStats s;
      auto count = [&](const char *sql) {
        Stmt q = db.prepare(sql);
        return q.step() ? static_cast<size_t>(q.i64(0)) : size_t{0};
      };
      s.records = count(kCountRecords);
      s.providers = count(kCountProviders);
      s.local_provides = count(kCountLocalProvides);
      s.cache_entries = count(kCountCache);
      return s;
    });
    std::lock_guard lock(queue_mu_);
    st.commits = commits_;
    st.writes = writes_;
    return st;
  }

 private:
  int64_t record_expiry(const StoredRecord &r) const {
    return r.expires_ms != 0 ? r.expires_ms : r.received_ms + options_.record_ttl_ms;
  }
  int64_t provider_expiry(const ProviderRecord &r) const {
    return r.expires_ms != 0 ? r.expires_ms : r.received_ms + options_.provider_ttl_ms;
  }

  static bool apply_put_record(Connection &db, const StoredRecord &r, int64_t expires) {
    db.prepare(kPutRecord)
        .bind(1, r.key)
        .bind(2, r.value)
        .bind(3, r.received_ms)
        .bind(4, expires)
        .bind(5, int64_t{r.local ? 1 : 0})
        .run();
    return true;
  }

  bool apply_add_provider(Connection &db, const ProviderRecord &r, const Bytes &addrs, int64_t expires) {
    bool known = false;
    {
      Stmt s = db.prepare(kProviderExists);
      s.bind(1, r.key).bind(2, r.provider);
      known = s.step();
    }
    if (!known) {
      // A new key for this peer: bounded, so one peer cannot fill the store with provider records.
      // Its records that have expired (received_ms stands for now) do not count.
      Stmt s = db.prepare(kProviderKeyCount);
      s.bind(1, r.provider).bind(2, r.received_ms);
      if (s.step() && static_cast<size_t>(s.i64(0)) >= options_.max_provider_keys_per_peer) {
        return false;
      }
    }
    db.prepare(kPutProvider)
        .bind(1, r.key)
        .bind(2, r.provider)
        .bind(3, addrs)
        .bind(4, r.received_ms)
        .bind(5, expires)
        .run();
    if (!known) {
      int64_t count = 0;
      {
        Stmt s = db.prepare(kProvidersOfKeyCount);
        s.bind(1, r.key);
        if (s.step()) count = s.i64(0);
      }
      auto max = static_cast<int64_t>(options_.max_providers_per_key);
      if (count > max) db.prepare(kTrimProviders).bind(1, r.key).bind(2, count - max).run();
    }
    return true;
  }

  // One queued write. apply runs inside the batch's transaction on the writer connection. A
  // synchronous write lives on its caller's stack and is marked done; an asynchronous one is owned by
  // the queue, handed to the store thread after its commit, and deleted once on_done has run.
  struct WriteOp {
    std::function<bool(Connection &)> apply;
    bool result = false;
    bool done = false;
    std::exception_ptr error;
    std::function<void(bool, std::exception_ptr)> on_done;  // set for asynchronous writes only
  };

  template <class F>
  bool write(F &&f) {
    WriteOp op;
    op.apply = std::forward<F>(f);
    std::unique_lock lock(queue_mu_);
    queue_.push_back(&op);
    while (!op.done) {
      if (committing_) {
        committed_cv_.wait(lock);
      } else {
        lead_batch(lock);  // no commit in progress and ours is still queued: lead the next batch
      }
    }
    if (op.error) std::rethrow_exception(op.error);
    return op.result;
  }

  void write_async(std::function<bool(Connection &)> apply,
                   std::function<void(bool, std::exception_ptr)> on_done) {
    auto op = std::make_unique<WriteOp>();
    op->apply = std::move(apply);
    op->on_done = std::move(on_done);
    {
      std::lock_guard lock(queue_mu_);
      queue_.push_back(op.release());
      ++async_queued_;
    }
    committed_cv_.notify_all();
  }

  // Takes what is queued (up to kMaxBatch), commits it with queue_mu_ released, and marks it done.
  // Called with lock held and committing_ false.
  void lead_batch(std::unique_lock<std::mutex> &lock) {
    committing_ = true;
    size_t n = std::min(queue_.size(), kMaxBatch);
    std::vector<WriteOp *> batch(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
    for (WriteOp *w : batch) {
      if (w->on_done) --async_queued_;
    }
    lock.unlock();
    commit_batch(batch);
    lock.lock();
    committing_ = false;
    ++commits_;
    writes_ += batch.size();
    for (WriteOp *w : batch) {
      if (w->on_done) {
        completed_.push_back(w);
      } else {
        w->done = true;
      }
    }
    committed_cv_.notify_all();
  }

  // The store thread: commits queued asynchronous writes when no one else is committing, and runs
  // their callbacks. Exits, once stopping, when none is left.
  void store_thread() {
    std::unique_lock lock(queue_mu_);
    for (;;) {
      if (!completed_.empty()) {
        std::vector<WriteOp *> finished;
        finished.swap(completed_);
        lock.unlock();
        for (WriteOp *w : finished) {
          std::unique_ptr<WriteOp> owned(w);
          owned->on_done(owned->result, owned->error);
        }
        lock.lock();
        continue;
      }
      if (async_queued_ > 0 && !committing_) {
        lead_batch(lock);
        continue;
      }
      if (stopping_ && async_queued_ == 0 && !committing_) return;
      committed_cv_.wait(lock);
    }
  }

  // Runs on the leader only, without queue_mu_ held. An operation that fails is rolled back alone
  // (a savepoint each) and gets its error; a failed COMMIT fails the whole batch.
  void commit_batch(const std::vector<WriteOp *> &batch) {
    Connection &db = *writer_;
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (...) {
      for (WriteOp *w : batch) w->error = std::current_exception();
      return;
    }
    for (WriteOp *w : batch) {
      try {
        db.exec("SAVEPOINT op");
        w->result = w->apply(db);
        db.exec("RELEASE op");
      } catch (...) {
        w->error = std::current_exception();
        try {
          db.exec("ROLLBACK TO op");
          db.exec("RELEASE op");
        } catch (...) {
        }
      }
    }
    try {
      db.exec("COMMIT");
    } catch (...) {
      auto error = std::current_exception();
      for (WriteOp *w : batch) w->error = error;
      try {
        db.exec("ROLLBACK");
      } catch (...) {
      }
    }
  }

  // Runs f on a read-only connection from the pool (opened on demand, kept for reuse).
  template <class F>
  std::invoke_result_t<F &, Connection &> read(F &&f) {
    std::unique_ptr<Connection> conn;
    {
      std::lock_guard lock(readers_mu_);
      if (!readers_.empty()) {
        conn = std::move(readers_.back());
        readers_.pop_back();
      }
    }
    if (!conn) conn = std::make_unique<Connection>(options_.path, true);
    struct Return {
      SqliteRecordStore *self;
      std::unique_ptr<Connection> &conn;
      ~Return() {
        std::lock_guard lock(self->readers_mu_);
        self->readers_.push_back(std::move(conn));
      }
    } give_back{this, conn};
    return f(*conn);
  }

  StoreOptions options_;
  std::unique_ptr<Connection> writer_;

  std::mutex queue_mu_;
  std::condition_variable committed_cv_;
  std::deque<WriteOp *> queue_;
  size_t async_queued_ = 0;          // asynchronous writes in queue_
  std::vector<WriteOp *> completed_;  // committed asynchronous writes whose callbacks are due
  bool committing_ = false;
  bool stopping_ = false;
  uint64_t commits_ = 0;
  uint64_t writes_ = 0;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Connection>> readers_;

  std::thread store_thread_;  // last: started once everything above exists
};

}  // namespace

std::unique_ptr<RecordStore> RecordStore::open(const StoreOptions &options) {
  return std::make_unique<SqliteRecordStore>(options);
}

}  // namespace chorus::dht

// sqlite::File (see file.hpp).
#include "sqlite/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace chorus::sqlite {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

std::string parent_dir(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void fsync_dir(const std::string &dir, const std::string &who) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(who + "cannot open its directory: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw Error(who + "fsync of its directory: " + errno_text(saved));
}

// mkdir -p with mode 0700 for what is created.
void make_dirs(const std::string &dir, const std::string &who) {
  if (dir.empty() || dir == "/" || dir == ".") return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error(who + dir + " is not a directory");
    return;
  }
  make_dirs(parent_dir(dir), who);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw Error(who + "cannot create directory " + dir + ": " + errno_text(errno));
}

// Creates the file 0600 when absent (create) and refuses one that is not a regular file or that
// group or others may access. The check runs on a descriptor of the file itself, not on its name
// twice. Returns whether this call created the file.
bool prepare_private_file(const std::string &path, bool create, const std::string &who) {
  bool created = false;
  int fd = -1;
  if (create) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created = fd >= 0;
    if (fd < 0 && errno != EEXIST) throw Error(who + "cannot create: " + errno_text(errno));
  }
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (!create && errno == ENOENT) return false;
    throw Error(who + "cannot open: " + errno_text(errno));
  }
  struct stat st {};
  const int rc = ::fstat(fd, &st);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw Error(who + "fstat: " + errno_text(saved));
  if (!S_ISREG(st.st_mode)) throw Error(who + "not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(who + "mode " + mode + " lets group or others access it; refusing (chmod 600 it)");
  }
  return created;
}

}  // namespace

File::File(const std::string &path, const FileOptions &options)
    : path_(path), who_(options.label + " " + path + ": "), memory_(path == ":memory:") {
  if (path.empty()) throw Error(options.label + ": no path given");
  if (!memory_) {
    make_dirs(parent_dir(path), who_);
    if (prepare_private_file(path, true, who_) && options.sync_directory) fsync_dir(parent_dir(path), who_);
    prepare_private_file(path + "-wal", false, who_);
    prepare_private_file(path + "-shm", false, who_);
  }
  // Never SQLITE_OPEN_CREATE for a file: it was created 0600 above.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (memory_ ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error(who_ + "cannot open: " + msg);
  }
  // The destructor does not run for an object whose constructor throws.
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    check_or_initialise(options);
    if (!memory_) {
      const auto mode = query_text("PRAGMA journal_mode = WAL");
      if (mode.empty() || mode[0] != "wal") throw Error(who_ + "cannot switch to WAL mode");
    }
    // SQLite's default page cache, 2 MiB per connection, fills as a file grows and stays there, in
    // every agent (docs/benchmarks.md, "Memory through a partition heal"); pages beyond 256 KiB come
    // from the kernel's page cache, which is shared and reclaimable. After the checks: it reads the
    // header, so it must not be what refuses a file that is not a database.
    exec("PRAGMA cache_size = -256");
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

File::~File() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

void File::fail(const std::string &what) const { throw Error(who_ + what + ": " + sqlite3_errmsg(db_)); }

void File::exec(const char *sql) {
  char *err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error(who_ + msg);
  }
}

std::vector<std::string> File::query_text(const char *sql) {
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

int64_t File::query_int(const char *sql) {
  const auto rows = query_text(sql);
  return rows.empty() ? 0 : std::strtoll(rows[0].c_str(), nullptr, 10);
}

// Reads only until the file is known to be ours, so a foreign database is never modified.
void File::check_or_initialise(const FileOptions &options) {
  int64_t app_id = 0, version = 0, tables = 0;
  try {
    app_id = query_int("PRAGMA application_id");  // a file that is not SQLite fails here
    version = query_int("PRAGMA user_version");
    tables = query_int("SELECT count(*) FROM sqlite_schema");
  } catch (const Error &e) {
    throw Error(std::string(e.what()) + " (refusing to use or overwrite it)");
  }
  if (app_id == 0 && version == 0 && tables == 0) {
    // WAL before the first write, so even the initialisation never goes through a rollback journal.
    if (!memory_) exec("PRAGMA journal_mode = WAL");
    exec("BEGIN IMMEDIATE");
    try {
      if (options.initialise) options.initialise(*this);
      exec(("PRAGMA application_id = " + std::to_string(options.application_id)).c_str());
      exec(("PRAGMA user_version = " + std::to_string(options.schema_version)).c_str());
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);  // the first error is the one to report
      throw;
    }
    return;
  }
  if (app_id != options.application_id) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "application_id 0x%08x, expected 0x%08x", static_cast<uint32_t>(app_id),
                  static_cast<uint32_t>(options.application_id));
    throw Error(who_ + "a SQLite database of another application (" + buf + "); refusing to use or overwrite it");
  }
  if (version > options.schema_version)
    throw Error(who_ + "schema version " + std::to_string(version) + " is newer than this build supports (" +
                std::to_string(options.schema_version) + "); refusing to use it");
  if (version < 1)
    throw Error(who_ + options.application + " application_id without a schema version; refusing to use it");
  std::vector<std::string> check;
  try {
    check = query_text("PRAGMA quick_check");
  } catch (const Error &e) {
    throw Error(std::string(e.what()) + " (integrity check failed; refusing to use it)");
  }
  if (check.size() != 1 || check[0] != "ok")
    throw Error(who_ + "integrity check failed: " + (check.empty() ? std::string("?") : check[0]) +
                "; refusing to use it");
}

}  // namespace chorus::sqlite

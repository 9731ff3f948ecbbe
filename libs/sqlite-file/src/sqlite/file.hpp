// One SQLite file that belongs to this agent, opened the careful way every store here opens its own:
//
//   - the directory is created 0700 and the file 0600 (O_CREAT|O_EXCL) before SQLite sees it, and
//     SQLite is never given SQLITE_OPEN_CREATE, so no file is ever created with the umask's mode;
//   - the file, its -wal and its -shm are refused when they are not regular files or when group or
//     others may access them;
//   - PRAGMA application_id and user_version are read before anything is written, so a database of
//     another application, a newer schema or a damaged file is refused (Error), never modified;
//   - a new, empty file is initialised in one transaction (the owner's schema, then the marks);
//   - the journal is WAL, and the answer of PRAGMA journal_mode is checked.
//
// The path ":memory:" opens an in-memory database with the same checks that apply to it (for tests).
// One connection, used by one thread at a time (SQLITE_OPEN_NOMUTEX): the owner serialises.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace chorus::sqlite {

// Every refusal and failure; what() names the file ("<label> <path>: ...").
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class File;

struct FileOptions {
  // Messages read "<label> <path>: ..." ("election state", "ucxi index").
  std::string label;
  // Names the owner in "<application> application_id without a schema version".
  std::string application;
  // PRAGMA application_id: four ASCII letters read as a big-endian integer (offset 68 of the file
  // header), so the file tells what it is.
  int32_t application_id = 0;
  // PRAGMA user_version: the schema this code writes; a file with a higher one is refused.
  int schema_version = 1;
  // Runs once, inside the transaction that then sets application_id and user_version: creates the
  // owner's tables (and rows) in a new file. A throw rolls the whole initialisation back.
  std::function<void(File &)> initialise;
  // fsync the directory after creating the file, so the file's name survives a power cut too (for
  // state that must never go back, such as an election term).
  bool sync_directory = false;
  int busy_timeout_ms = 5000;
};

class File {
 public:
  // Opens path, creating it (and its directory) when absent. Throws Error.
  File(const std::string &path, const FileOptions &options);
  ~File();
  File(const File &) = delete;
  File &operator=(const File &) = delete;

  // Runs one or more statements. Throws Error("<label> <path>: <SQLite's message>").
  void exec(const char *sql);
  // The first column of every row, as text ("" for NULL).
  std::vector<std::string> query_text(const char *sql);
  // The first column of the first row as an integer; 0 when there is no row.
  int64_t query_int(const char *sql);

  sqlite3 *handle() const { return db_; }
  const std::string &path() const { return path_; }
  // "<label> <path>: ", the prefix of every message about this file.
  const std::string &who() const { return who_; }
  bool in_memory() const { return memory_; }

 private:
  [[noreturn]] void fail(const std::string &what) const;
  void check_or_initialise(const FileOptions &options);

  std::string path_;
  std::string who_;
  bool memory_ = false;
  sqlite3 *db_ = nullptr;
};

}  // namespace chorus::sqlite

// TermStore on SQLite (see term_store.hpp). One connection, used by the election thread only; the
// file is opened, checked and created by sqlite::File (libs/sqlite-file).
#include "store/term_store.hpp"

#include <sqlite3.h>

#include "sqlite/file.hpp"

namespace chorus::election {
namespace {

// PRAGMA application_id: "CELE" read as a big-endian 32-bit integer (offset 68 of the file header),
// so the file tells what it is.
constexpr int32_t kApplicationId = 0x43454c45;
// PRAGMA user_version: the schema this code writes.
constexpr int kSchemaVersion = 1;

const char *const kSchema = R"sql(
CREATE TABLE election_state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  term INTEGER NOT NULL,
  voted_for TEXT NOT NULL,
  admin_ms_total INTEGER NOT NULL,
  admin_terms INTEGER NOT NULL);
INSERT INTO election_state(id, term, voted_for, admin_ms_total, admin_terms) VALUES (1, 0, '', 0, 0);
)sql";

sqlite::FileOptions file_options() {
  sqlite::FileOptions o;
  o.label = "election state";
  o.application = "election";
  o.application_id = kApplicationId;
  o.schema_version = kSchemaVersion;
  o.initialise = [](sqlite::File &f) { f.exec(kSchema); };
  // A vote is relied upon once saved: the file's name must survive a power cut as well as its data.
  o.sync_directory = true;
  return o;
}

class SqliteTermStore final : public TermStore {
 public:
  // A function-try-block: every refusal of the file reaches the callers as a TermStoreError, with
  // its message unchanged.
  explicit SqliteTermStore(const std::string &path) try : file_(path, file_options()), db_(file_.handle()) {
    file_.exec("PRAGMA synchronous = FULL");
    state_ = read_state();
  } catch (const sqlite::Error &e) {
    throw TermStoreError(e.what());
  }

  PersistentState load() override { return state_; }

  void save(const PersistentState &s) override {
    if (s.term < state_.term)
      throw TermStoreError(file_.who() + "refusing to lower the term from " + std::to_string(state_.term) + " to " +
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
    if (sqlite3_changes(db_) != 1) throw TermStoreError(file_.who() + "the state row is missing");
    state_ = s;
  }

  const std::string &path() const override { return file_.path(); }

 private:
  [[noreturn]] void fail(const char *what) const {
    throw TermStoreError(file_.who() + what + ": " + sqlite3_errmsg(db_));
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
        throw TermStoreError(file_.who() + "negative values in the state row; refusing to use it");
      }
      s.term = static_cast<uint64_t>(term);
      s.voted_for = voted != nullptr ? reinterpret_cast<const char *>(voted) : "";
      s.admin_ms_total = static_cast<uint64_t>(ms);
      s.admin_terms = static_cast<uint64_t>(terms);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) throw TermStoreError(file_.who() + "the state row is missing; refusing to use it");
    if (rc != SQLITE_ROW) fail("read");
    return s;
  }

  sqlite::File file_;
  sqlite3 *db_;  // file_'s connection
  PersistentState state_;
};

}  // namespace

std::unique_ptr<TermStore> TermStore::open(const std::string &path) { return std::make_unique<SqliteTermStore>(path); }

}  // namespace chorus::election

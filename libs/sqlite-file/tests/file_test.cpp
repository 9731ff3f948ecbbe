// sqlite::File: a new file is private, marked and initialised once; an existing one is used only
// when it is ours, of a schema this code knows, undamaged and private. Every refusal names the file
// and leaves it as it was.
#include "sqlite/file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace chorus::sqlite {
namespace {

namespace fs = std::filesystem;

constexpr int32_t kTestId = 0x54455354;  // "TEST"

FileOptions test_options(int *initialised = nullptr) {
  FileOptions o;
  o.label = "test file";
  o.application = "test";
  o.application_id = kTestId;
  o.schema_version = 2;
  o.initialise = [initialised](File &f) {
    f.exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (7);");
    if (initialised != nullptr) ++*initialised;
  };
  o.sync_directory = true;
  return o;
}

class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sqlite-file-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string &name = "test.db") const { return (fs::path(dir_) / name).string(); }

  static std::string contents(const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Runs statements on p with plain SQLite, as another program would.
  static void sql(const std::string &p, const char *statements) {
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
    char *err = nullptr;
    const int rc = sqlite3_exec(db, statements, nullptr, nullptr, &err);
    const std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }
  static std::string open_error(const std::string &p, const FileOptions &o = test_options()) {
    try {
      File f(p, o);
    } catch (const Error &e) {
      return e.what();
    }
    return "";
  }

  std::string dir_;
};

TEST_F(SqliteFileTest, NewFileIsPrivateMarkedWalAndInitialisedOnce) {
  int initialised = 0;
  const std::string p = path("a/b/test.db");
  {
    File f(p, test_options(&initialised));
    EXPECT_EQ(f.path(), p);
    EXPECT_EQ(f.who(), "test file " + p + ": ");
    EXPECT_EQ(f.query_int("SELECT x FROM t"), 7);
    EXPECT_EQ(f.query_int("PRAGMA user_version"), 2);
    EXPECT_EQ(f.query_text("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
    EXPECT_EQ(f.query_int("PRAGMA cache_size"), -256);  // KiB per connection, not SQLite's 2 MiB
  }
  {
    File f(p, test_options(&initialised));
    EXPECT_EQ(f.query_int("SELECT x FROM t"), 7);
  }
  EXPECT_EQ(initialised, 1);
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(path("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string bytes = contents(p);
  ASSERT_GE(bytes.size(), 72u);
  EXPECT_EQ(bytes.substr(68, 4), "TEST");  // application_id, big-endian at offset 68
}

TEST_F(SqliteFileTest, AFailedInitialisationLeavesTheFileEmpty) {
  FileOptions o = test_options();
  o.initialise = [](File &f) {
    f.exec("CREATE TABLE t(x INTEGER)");
    f.exec("not sql");
  };
  EXPECT_NE(open_error(path(), o), "");
  // Nothing was committed: the next open initialises the file.
  File f(path(), test_options());
  EXPECT_EQ(f.query_int("SELECT x FROM t"), 7);
}

TEST_F(SqliteFileTest, RefusesAFileThatIsNotSqlite) {
  const std::string garbage(4096, 'x');
  { std::ofstream(path(), std::ios::binary) << garbage; }
  ::chmod(path().c_str(), 0600);
  const std::string why = open_error(path());
  EXPECT_NE(why.find("test file " + path() + ": "), std::string::npos) << why;
  EXPECT_NE(why.find("refusing to use or overwrite it"), std::string::npos) << why;
  EXPECT_EQ(contents(path()), garbage);
}

TEST_F(SqliteFileTest, RefusesAnotherApplicationsDatabase) {
  sql(path(), "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES ('keep me');");
  ::chmod(path().c_str(), 0600);
  const std::string before = contents(path());
  EXPECT_EQ(open_error(path()), "test file " + path() +
                                    ": a SQLite database of another application (application_id 0x00000000, "
                                    "expected 0x54455354); refusing to use or overwrite it");
  EXPECT_EQ(contents(path()), before);
}

TEST_F(SqliteFileTest, RefusesANewerSchemaAndAMissingOne) {
  { File f(path(), test_options()); }
  sql(path(), "PRAGMA user_version = 3;");
  EXPECT_EQ(open_error(path()),
            "test file " + path() + ": schema version 3 is newer than this build supports (2); refusing to use it");
  sql(path(), "PRAGMA user_version = 0;");
  EXPECT_EQ(open_error(path()),
            "test file " + path() + ": test application_id without a schema version; refusing to use it");
}

TEST_F(SqliteFileTest, RefusesADamagedFile) {
  {
    File f(path(), test_options());
    f.exec("CREATE TABLE big(x TEXT)");
    for (int i = 0; i < 200; ++i) f.exec("INSERT INTO big VALUES (hex(randomblob(100)))");
  }
  // Fold the WAL into the file, then overwrite the second page onwards.
  sql(path(), "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;");
  {
    std::fstream f(path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(8192, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const std::string why = open_error(path());
  EXPECT_NE(why.find("refusing to use it"), std::string::npos) << why;
}

TEST_F(SqliteFileTest, RefusesFilesOthersCanAccessAndNonRegularFiles) {
  { File f(path(), test_options()); }
  ASSERT_EQ(::chmod(path().c_str(), 0640), 0);
  EXPECT_EQ(open_error(path()),
            "test file " + path() + ": mode 0640 lets group or others access it; refusing (chmod 600 it)");
  ASSERT_EQ(::chmod(path().c_str(), 0600), 0);
  { std::ofstream(path() + "-wal") << ""; }
  ASSERT_EQ(::chmod((path() + "-wal").c_str(), 0604), 0);
  EXPECT_NE(open_error(path()).find("chmod 600"), std::string::npos);

  fs::create_directory(path("dir.db"));
  EXPECT_EQ(open_error(path("dir.db")), "test file " + path("dir.db") + ": not a regular file");
  EXPECT_EQ(open_error(""), "test file: no path given");
}

TEST_F(SqliteFileTest, InMemoryDatabaseIsInitialised) {
  File f(":memory:", test_options());
  EXPECT_TRUE(f.in_memory());
  EXPECT_EQ(f.query_int("SELECT x FROM t"), 7);
  EXPECT_EQ(f.query_int("PRAGMA application_id"), kTestId);
}

TEST_F(SqliteFileTest, ExecAndQueryErrorsNameTheFile) {
  File f(path(), test_options());
  try {
    f.exec("SELECT * FROM nowhere");
    ADD_FAILURE() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "test file " + path() + ": no such table: nowhere");
  }
  EXPECT_THROW(f.query_text("SELECT * FROM nowhere"), Error);
  EXPECT_EQ(f.query_int("SELECT x FROM t WHERE x = 0"), 0);  // no row
}

}  // namespace
}  // namespace chorus::sqlite

// The term store: durable across reopen, private (0600), marked as ours, and never silently replaced:
// a file that is not SQLite, another application's database, a newer schema, a readable-by-others
// file or a lower term is refused with a clear error, and the file is left as it was.
#include "store/term_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace chorus::election {
namespace {

namespace fs = std::filesystem;

class TermStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "election-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string &name = "election.db") const { return (fs::path(dir_) / name).string(); }

  static std::string contents(const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
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
  static std::string open_error(const std::string &p) {
    try {
      TermStore::open(p);
    } catch (const TermStoreError &e) {
      return e.what();
    }
    return "";
  }

  std::string dir_;
};

TEST_F(TermStoreTest, NewFileStartsAtTermZeroPrivateAndMarked) {
  {
    auto s = TermStore::open(path());
    EXPECT_EQ(s->load(), PersistentState{});
    EXPECT_EQ(s->path(), path());
  }
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string bytes = contents(path());
  ASSERT_GE(bytes.size(), 72u);
  EXPECT_EQ(bytes.substr(68, 4), "CELE");  // PRAGMA application_id, big-endian at offset 68
}

TEST_F(TermStoreTest, SavedStateSurvivesReopen) {
  const PersistentState want{7, "12D3KooWVoter", 12345, 2};
  {
    auto s = TermStore::open(path());
    s->save(PersistentState{3, "", 0, 0});
    s->save(want);
    EXPECT_EQ(s->load(), want);
  }
  auto s = TermStore::open(path());
  EXPECT_EQ(s->load(), want);
}

TEST_F(TermStoreTest, CreatesMissingDirectories) {
  const std::string nested = path("a/b/election.db");
  auto s = TermStore::open(nested);
  s->save(PersistentState{1, "x", 0, 0});
  EXPECT_TRUE(fs::exists(nested));
}

TEST_F(TermStoreTest, RefusesToLowerTheTerm) {
  auto s = TermStore::open(path());
  s->save(PersistentState{5, "a", 0, 0});
  EXPECT_THROW(s->save(PersistentState{4, "", 0, 0}), TermStoreError);
  EXPECT_EQ(s->load().term, 5u);
  s.reset();
  EXPECT_EQ(TermStore::open(path())->load().term, 5u);
}

TEST_F(TermStoreTest, RefusesAFileThatIsNotSqliteAndLeavesItAlone) {
  const std::string garbage(4096, 'x');
  { std::ofstream(path(), std::ios::binary) << garbage; }
  ::chmod(path().c_str(), 0600);
  const std::string why = open_error(path());
  EXPECT_NE(why.find(path()), std::string::npos) << why;
  EXPECT_NE(why.find("refusing"), std::string::npos) << why;
  EXPECT_EQ(contents(path()), garbage);
}

TEST_F(TermStoreTest, RefusesAnotherApplicationsDatabase) {
  sql(path(), "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES ('keep me');");
  ::chmod(path().c_str(), 0600);
  const std::string before = contents(path());
  const std::string why = open_error(path());
  EXPECT_NE(why.find("another application"), std::string::npos) << why;
  EXPECT_EQ(contents(path()), before);
}

TEST_F(TermStoreTest, RefusesANewerSchema) {
  TermStore::open(path())->save(PersistentState{2, "", 0, 0});
  sql(path(), "PRAGMA user_version = 99;");
  const std::string why = open_error(path());
  EXPECT_NE(why.find("newer"), std::string::npos) << why;
}

TEST_F(TermStoreTest, RefusesAFileOthersCanRead) {
  TermStore::open(path());
  ASSERT_EQ(::chmod(path().c_str(), 0644), 0);
  const std::string why = open_error(path());
  EXPECT_NE(why.find("chmod 600"), std::string::npos) << why;
}

TEST_F(TermStoreTest, RefusesAMissingStateRow) {
  TermStore::open(path())->save(PersistentState{2, "", 0, 0});
  sql(path(), "DELETE FROM election_state;");
  const std::string why = open_error(path());
  EXPECT_NE(why.find("missing"), std::string::npos) << why;
}

}  // namespace
}  // namespace chorus::election

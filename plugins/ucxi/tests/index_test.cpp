// The local index: what it stores and answers, and the files it refuses (never wiping them).
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "store/index.hpp"

namespace chorus::ucxi {
namespace {

namespace fs = std::filesystem;

ucxl::Address A(const std::string &text) {
  ucxl::ParseError err;
  auto a = ucxl::parse(text, &err);
  if (!a) ADD_FAILURE() << text << ": " << err.what();
  return a.value_or(ucxl::Address{});
}

VersionRow row(uint64_t n, std::string sha, bool deleted = false) {
  VersionRow v;
  v.version = n;
  v.sha256 = deleted ? "" : std::move(sha);
  v.size = deleted ? 0 : 10 * n;
  v.content_type = "text/plain";
  v.role = "developer";
  v.author = "agent-1";
  v.created_ms = 1000 * n;
  v.deleted = deleted;
  return v;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ucxi_index_test_XXXXXX";
    const char *d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    path_ = d != nullptr ? d : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_all(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Index, SeriesId) {
  // SHA-256 of the text, lowercase hex.
  EXPECT_EQ(series_id(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(series_id("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Index, RecordsVersionsProvidersAndAnnouncements) {
  auto ix = Index::open(":memory:");
  const ucxl::Address doc = A("ucxl://gpt4:developer@chorus:auth/*^/src/auth.go");
  const std::string id = series_id(doc.series());
  EXPECT_FALSE(ix->series(id).has_value());

  const std::vector<VersionRow> list = {row(1, "aa"), row(2, "bb"), row(3, "", true)};
  ix->record_versions(doc, list, 500);
  auto s = ix->series(id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->address, "ucxl://gpt4:developer@chorus:auth/src/auth.go");
  EXPECT_EQ(s->agent, "gpt4");
  EXPECT_EQ(s->path, "src/auth.go");
  EXPECT_EQ(s->versions, 3u);
  EXPECT_EQ(s->latest_sha256, "");  // the latest is a tombstone
  EXPECT_EQ(s->updated_ms, 500u);
  EXPECT_EQ(ix->versions(id), list);

  // A shorter list replaces the longer one (the DHT's record is the truth).
  ix->record_versions(doc, {row(1, "aa")}, 600);
  EXPECT_EQ(ix->versions(id).size(), 1u);
  EXPECT_EQ(ix->series(id)->latest_sha256, "aa");

  // Announcements only move forward, and leave the list alone.
  ix->note_version(doc, 5, "ee", 700);
  EXPECT_EQ(ix->series(id)->versions, 5u);
  EXPECT_EQ(ix->series(id)->latest_sha256, "ee");
  ix->note_version(doc, 2, "bb", 800);
  EXPECT_EQ(ix->series(id)->versions, 5u);
  EXPECT_EQ(ix->series(id)->latest_sha256, "ee");
  EXPECT_EQ(ix->versions(id).size(), 1u);

  ix->add_provider(doc, "peerA", 100);
  ix->add_provider(doc, "peerB", 300);
  ix->add_provider(doc, "peerA", 200);
  ix->add_provider(doc, "peerB", 50);  // older sighting: kept at 300
  const auto p = ix->providers(id);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].peer_id, "peerB");
  EXPECT_EQ(p[0].seen_ms, 300u);
  EXPECT_EQ(p[1].peer_id, "peerA");
  EXPECT_EQ(p[1].seen_ms, 200u);

  // A provider of an unknown series creates it with no versions.
  ix->add_provider(A("ucxl://a:b@c:d/*^/x"), "peerC", 1);
  EXPECT_EQ(ix->series(series_id("ucxl://a:b@c:d/x"))->versions, 0u);
  EXPECT_EQ(ix->series_count(), 2u);
}

TEST(Index, MatchesWildcardsAndPathPrefixes) {
  auto ix = Index::open(":memory:");
  uint64_t t = 0;
  for (const char *a : {"ucxl://gpt4:developer@chorus:auth/*^/docs/a.md", "ucxl://gpt4:developer@chorus:auth/*^/docsx",
                        "ucxl://claude:reviewer@chorus:auth/*^/docs/b.md", "ucxl://claude:reviewer@other:t/*^/docs/c.md"})
    ix->note_version(A(a), 1, "aa", ++t);
  auto names = [&](const std::string &pattern, size_t limit = 100) {
    std::vector<std::string> out;
    for (const auto &s : ix->match(A(pattern), limit)) out.push_back(s.address);
    return out;
  };
  EXPECT_EQ(names("ucxl://any:any@chorus:any/*^/docs"),
            (std::vector<std::string>{"ucxl://claude:reviewer@chorus:auth/docs/b.md",
                                      "ucxl://gpt4:developer@chorus:auth/docs/a.md"}));  // newest first
  EXPECT_EQ(names("ucxl://any:any@any:any/*^").size(), 4u);
  EXPECT_EQ(names("ucxl://any:any@any:any/*^", 2).size(), 2u);
  EXPECT_EQ(names("ucxl://claude:any@any:any/*^"),
            (std::vector<std::string>{"ucxl://claude:reviewer@other:t/docs/c.md",
                                      "ucxl://claude:reviewer@chorus:auth/docs/b.md"}));
  EXPECT_EQ(names("ucxl://gpt4:developer@chorus:auth/*^/docsx"),
            (std::vector<std::string>{"ucxl://gpt4:developer@chorus:auth/docsx"}));
  EXPECT_TRUE(names("ucxl://nobody:any@any:any/*^").empty());
}

TEST(Index, FileIsPrivateWalAndSurvivesReopen) {
  TempDir dir;
  const std::string path = dir.file("ucxi/index.db");  // the directory is created
  const ucxl::Address doc = A("ucxl://gpt4:developer@chorus:auth/*^/src/auth.go");
  {
    auto ix = Index::open(path);
    ix->record_versions(doc, {row(1, "aa")}, 5);
    EXPECT_EQ(ix->path(), path);
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.file("ucxi").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto ix = Index::open(path);
  EXPECT_EQ(ix->versions(series_id(doc.series())).size(), 1u);
  sqlite3 *db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt *q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char *>(sqlite3_column_text(q, 0)), "wal");
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST(Index, RefusesForeignCorruptAndOpenFiles) {
  TempDir dir;
  // Not SQLite at all.
  const std::string garbage = dir.file("garbage.db");
  {
    std::ofstream out(garbage, std::ios::binary);
    out << std::string(8192, 'x');
  }
  ::chmod(garbage.c_str(), 0600);
  EXPECT_THROW(Index::open(garbage), IndexError);
  EXPECT_EQ(read_all(garbage), std::string(8192, 'x'));

  // Another application's database.
  const std::string foreign = dir.file("foreign.db");
  {
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  ::chmod(foreign.c_str(), 0600);
  const std::string before = read_all(foreign);
  try {
    Index::open(foreign);
    ADD_FAILURE() << "a foreign database was accepted";
  } catch (const IndexError &e) {
    EXPECT_NE(std::string(e.what()).find("another application"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_all(foreign), before);

  // Ours, but from a newer schema.
  const std::string newer = dir.file("newer.db");
  { Index::open(newer); }
  {
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 9", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_THROW(Index::open(newer), IndexError);

  // Ours, but damaged in the middle of its pages.
  const std::string damaged = dir.file("damaged.db");
  {
    auto ix = Index::open(damaged);
    for (int i = 0; i < 200; ++i)
      ix->note_version(A("ucxl://a:b@c:d/*^/f" + std::to_string(i)), 1, std::string(64, 'a'), 1);
  }
  {
    // Fold the WAL into the file, then overwrite the second page onwards.
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(damaged.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(8192, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  EXPECT_THROW(Index::open(damaged), IndexError);

  // Readable by group or others.
  const std::string open = dir.file("open.db");
  { Index::open(open); }
  ::chmod(open.c_str(), 0644);
  EXPECT_THROW(Index::open(open), IndexError);

  // A directory where the file should be.
  fs::create_directory(dir.file("dir.db"));
  EXPECT_THROW(Index::open(dir.file("dir.db")), IndexError);
  EXPECT_THROW(Index::open(""), IndexError);
}

}  // namespace
}  // namespace chorus::ucxi

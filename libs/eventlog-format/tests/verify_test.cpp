// The chain: a log written with a real identity verifies whole, and every kind of tampering made with
// plain SQL on the file is found at the right entry. Also: foreign and corrupt files are refused and
// left as they were.
#include "eventlog/verify.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "eventlog/store.hpp"
#include "wire/identity.hpp"

namespace chorus::eventlog {
namespace {

namespace fs = std::filesystem;

class EventlogChain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eventlog-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "log.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes n entries signed by identity seed `seed_byte`, chained, through Store::append.
  void write_log(int n, uint8_t seed_byte = 7) {
    uint8_t seed[32];
    std::fill(std::begin(seed), std::end(seed), seed_byte);
    const auto id = p2p::Identity::from_seed(seed);
    std::string err;
    auto store = Store::open(path_, Store::Mode::kReadWrite, &err);
    ASSERT_TRUE(store) << err;
    auto head = store->last(&err);
    ASSERT_TRUE(err.empty()) << err;
    Hash prev = head ? head->hash : Hash{};
    uint64_t next = head ? head->index + 1 : 0;
    std::vector<Entry> batch;
    for (int i = 0; i < n; ++i) {
      Entry e;
      e.index = next++;
      e.timestamp = format_timestamp(std::chrono::system_clock::now());
      e.author = id.peer_id().to_base58();
      e.type = i % 2 ? "task_claimed" : "peer_joined";
      e.data = R"({"n":)" + std::to_string(e.index) + "}";
      e.prev_hash = prev;
      e.hash = compute_hash(e);
      e.signature = id.sign(p2p::BytesView(e.hash.data(), e.hash.size()));
      prev = e.hash;
      batch.push_back(e);
    }
    ASSERT_TRUE(store->append(batch, &err)) << err;
  }

  void sql(const std::string &statement) {
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char *msg = nullptr;
    const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &msg);
    const std::string text = msg ? msg : "";
    sqlite3_free(msg);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << text;
  }

  void expect_broken_at(uint64_t index, const std::string &problem_part) {
    const VerifyReport r = verify_file(path_);
    ASSERT_EQ(r.outcome, VerifyReport::Outcome::kBroken) << r.problem;
    EXPECT_EQ(r.bad_index, index) << r.problem;
    EXPECT_EQ(r.entries, index);
    EXPECT_NE(r.problem.find(problem_part), std::string::npos) << r.problem;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(EventlogChain, WholeLogVerifies) {
  write_log(6);
  write_log(4);  // appended later, continuing from the stored head
  const VerifyReport r = verify_file(path_);
  ASSERT_EQ(r.outcome, VerifyReport::Outcome::kWhole) << r.problem;
  EXPECT_EQ(r.entries, 10u);
  ASSERT_EQ(r.authors.size(), 1u);
  EXPECT_EQ(r.authors.begin()->second, 10u);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(EventlogChain, EmptyLogIsWhole) {
  write_log(0);
  const VerifyReport r = verify_file(path_);
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kWhole) << r.problem;
  EXPECT_EQ(r.entries, 0u);
}

TEST_F(EventlogChain, SeveralAuthorsVerify) {
  write_log(3, 1);
  write_log(3, 2);  // a new identity key continues the same chain
  const VerifyReport r = verify_file(path_);
  ASSERT_EQ(r.outcome, VerifyReport::Outcome::kWhole) << r.problem;
  EXPECT_EQ(r.authors.size(), 2u);
}

TEST_F(EventlogChain, ChangedDataIsFound) {
  write_log(6);
  sql(R"(UPDATE entries SET data = '{"n":99}' WHERE idx = 3)");
  expect_broken_at(3, "hash does not match");
}

TEST_F(EventlogChain, ChangedTypeIsFound) {
  write_log(6);
  sql("UPDATE entries SET type = 'decision' WHERE idx = 2");
  expect_broken_at(2, "hash does not match");
}

TEST_F(EventlogChain, RemovedEntryIsFound) {
  write_log(6);
  sql("DELETE FROM entries WHERE idx = 4");
  expect_broken_at(4, "entry 4 is missing");
}

TEST_F(EventlogChain, RemovedLastEntriesLeaveAWholeShorterChain) {
  // Truncating the tail cannot be seen from the chain alone (docs/eventlog.md says so): the head hash
  // changes, which is what a copy of an earlier head catches.
  write_log(6);
  const Hash before = verify_file(path_).head;
  sql("DELETE FROM entries WHERE idx = 5");
  const VerifyReport r = verify_file(path_);
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kWhole);
  EXPECT_EQ(r.entries, 5u);
  EXPECT_NE(r.head, before);
}

TEST_F(EventlogChain, SwappedEntriesAreFound) {
  write_log(6);
  sql("UPDATE entries SET idx = -1 WHERE idx = 2; UPDATE entries SET idx = 2 WHERE idx = 3;"
      "UPDATE entries SET idx = 3 WHERE idx = -1");
  expect_broken_at(2, "prev_hash does not match the hash of entry 1");
}

TEST_F(EventlogChain, SwappedContentIsFound) {
  write_log(6);
  // Keep each row's index and links, swap only what the entries say.
  sql("UPDATE entries SET data = CASE idx WHEN 1 THEN (SELECT data FROM entries WHERE idx = 3) "
      "ELSE (SELECT data FROM entries WHERE idx = 1) END WHERE idx IN (1, 3)");
  expect_broken_at(1, "hash does not match");
}

TEST_F(EventlogChain, BadSignatureIsFound) {
  write_log(6);
  sql("UPDATE entries SET signature = zeroblob(64) WHERE idx = 5");
  expect_broken_at(5, "signature does not verify");
}

TEST_F(EventlogChain, ResignedByAnotherKeyIsFound) {
  // A forger with another key who rewrites hash and signature still cannot claim the author's id.
  write_log(3);
  uint8_t seed[32];
  std::fill(std::begin(seed), std::end(seed), 99);
  const auto other = p2p::Identity::from_seed(seed);
  std::string err;
  Entry e;
  {
    auto store = Store::open(path_, Store::Mode::kReadOnly, &err);
    ASSERT_TRUE(store) << err;
    e = *store->last(&err);
  }
  const auto sig = other.sign(p2p::BytesView(e.hash.data(), e.hash.size()));
  sql("UPDATE entries SET signature = x'" + to_hex(sig) + "' WHERE idx = 2");
  expect_broken_at(2, "signature does not verify");
}

TEST_F(EventlogChain, WrongPrevHashIsFound) {
  write_log(6);
  sql("UPDATE entries SET prev_hash = zeroblob(32) WHERE idx = 3");
  expect_broken_at(3, "prev_hash does not match the hash of entry 2");
}

TEST_F(EventlogChain, MalformedRowIsFound) {
  write_log(3);
  sql("UPDATE entries SET hash = x'00' WHERE idx = 1");
  expect_broken_at(1, "hash is not 32 bytes");
}

TEST_F(EventlogChain, ForeignDatabaseIsRefusedAndKept) {
  sql("CREATE TABLE mine(x); INSERT INTO mine VALUES(1)");
  std::string err;
  EXPECT_FALSE(Store::open(path_, Store::Mode::kReadWrite, &err));
  EXPECT_NE(err.find("not a chorus event log"), std::string::npos) << err;
  const VerifyReport r = verify_file(path_);
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kUnreadable);
  sql("SELECT x FROM mine");  // still there
}

TEST_F(EventlogChain, CorruptFileIsRefusedAndKept) {
  const std::string junk(8192, 'J');
  { std::ofstream(path_, std::ios::binary) << junk; }
  std::string err;
  EXPECT_FALSE(Store::open(path_, Store::Mode::kReadWrite, &err));
  EXPECT_NE(err.find("left untouched"), std::string::npos) << err;
  std::ifstream in(path_, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, junk);
}

TEST_F(EventlogChain, MissingFileIsUnreadable) {
  const VerifyReport r = verify_file(path_);
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kUnreadable);
  EXPECT_FALSE(fs::exists(path_));
}

}  // namespace
}  // namespace chorus::eventlog

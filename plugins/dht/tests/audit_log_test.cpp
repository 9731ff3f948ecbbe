// AuditLog: JSON lines with the documented fields, whole lines under concurrency, appends across
// reopen, and the file mode rules.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "store/audit_log.hpp"

namespace chorus::dht {
namespace {

namespace fs = std::filesystem;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dht-audit-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> lines() {
    std::ifstream in(dir_ + "/audit.jsonl");
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  std::string dir_;
};

AuditEntry entry(AuditOp op, const std::string &key) {
  AuditEntry e;
  e.time_ms = 1796592788123;  // 2026-12-06T21:33:08.123Z
  e.op = op;
  e.key = key;
  e.role = "backend_developer";
  e.node = "12D3KooWExample";
  e.result = "ok";
  return e;
}

TEST_F(AuditLogTest, WritesOneJsonObjectPerLine) {
  auto log = AuditLog::open(dir_);
  EXPECT_EQ(log->path(), dir_ + "/audit.jsonl");
  log->append(entry(AuditOp::store, "sha256:abcd"));
  log->append(entry(AuditOp::retrieve, "sha256:abcd"));
  AuditEntry failed = entry(AuditOp::announce, "quote\" newline\n tab\t");
  failed.result = "not_authorised";
  log->append(failed);
  log->append(entry(AuditOp::discover, "k"));

  auto ls = lines();
  ASSERT_EQ(ls.size(), 4u);
  const char *ops[] = {"store", "retrieve", "announce", "discover"};
  for (size_t i = 0; i < ls.size(); ++i) {
    auto j = nlohmann::json::parse(ls[i]);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.size(), 6u) << ls[i];
    EXPECT_EQ(j["time"], "2026-12-06T21:33:08.123Z");
    EXPECT_EQ(j["op"], ops[i]);
    EXPECT_EQ(j["role"], "backend_developer");
    EXPECT_EQ(j["node"], "12D3KooWExample");
  }
  EXPECT_EQ(nlohmann::json::parse(ls[2])["key"], "quote\" newline\n tab\t");
  EXPECT_EQ(nlohmann::json::parse(ls[2])["result"], "not_authorised");
  // Field order is fixed, so the file reads the same way line after line.
  EXPECT_EQ(ls[0].rfind("{\"time\":\"2026-12-06T21:33:08.123Z\",\"op\":\"store\",\"key\":", 0), 0u) << ls[0];
}

TEST(AuditLogFormat, TimeIsRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(AuditLog::format_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(AuditLog::format_time(1796592788123), "2026-12-06T21:33:08.123Z");
  EXPECT_EQ(AuditLog::format_time(951782400005), "2000-02-29T00:00:00.005Z");
  EXPECT_EQ(AuditLog::format_time(-1), "1969-12-31T23:59:59.999Z");
}

TEST(AuditLogFormat, InvalidUtf8IsReplacedNotFatal) {
  AuditEntry e = entry(AuditOp::store, std::string("bad\xff\xfe"));
  std::string line = AuditLog::format_line(e);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["key"].get<std::string>().rfind("bad", 0), 0u);
}

TEST_F(AuditLogTest, ConcurrentAppendsNeverInterleave) {
  auto log = AuditLog::open(dir_);
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Keys of different lengths (up to a few KiB) make a torn or interleaved line visible.
        std::string key = std::to_string(t) + ":" + std::to_string(i) + ":" + std::string((i * 37) % 3000, 'a' + t);
        log->append(entry(AuditOp::store, key));
      }
    });
  }
  for (auto &th : threads) th.join();
  auto ls = lines();
  ASSERT_EQ(ls.size(), size_t{kThreads * kPerThread});
  std::map<int, int> next_of_thread;
  for (const auto &line : ls) {
    auto j = nlohmann::json::parse(line);  // throws (fails the test) on a torn line
    std::string key = j["key"];
    int t = std::stoi(key.substr(0, key.find(':')));
    int i = std::stoi(key.substr(key.find(':') + 1));
    EXPECT_EQ(key, std::to_string(t) + ":" + std::to_string(i) + ":" + std::string((i * 37) % 3000, 'a' + t));
    // Each thread's lines appear in the order it appended them.
    EXPECT_EQ(i, next_of_thread[t]++);
  }
}

TEST_F(AuditLogTest, ReopenAppends) {
  AuditLog::open(dir_)->append(entry(AuditOp::store, "first"));
  AuditLog::open(dir_)->append(entry(AuditOp::retrieve, "second"));
  auto ls = lines();
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(ls[0])["key"], "first");
  EXPECT_EQ(nlohmann::json::parse(ls[1])["key"], "second");
}

TEST_F(AuditLogTest, CreatedWithMode0600) {
  mode_t old = ::umask(0);
  auto log = AuditLog::open(dir_);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/audit.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AuditLogTest, RefusesFileReadableByGroupOrOthers) {
  AuditLog::open(dir_)->append(entry(AuditOp::store, "k"));
  const std::string path = dir_ + "/audit.jsonl";
  for (mode_t mode : {0640, 0604, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    try {
      AuditLog::open(dir_);
      ADD_FAILURE() << "mode " << std::oct << mode << " accepted";
    } catch (const AuditLogError &e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      char expect[16];
      std::snprintf(expect, sizeof expect, "mode %04o", static_cast<unsigned>(mode));
      EXPECT_NE(msg.find(expect), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(lines().size(), 1u);
}

TEST_F(AuditLogTest, RefusesMissingDirectory) {
  EXPECT_THROW(AuditLog::open(dir_ + "/nope"), AuditLogError);
}

}  // namespace
}  // namespace chorus::dht

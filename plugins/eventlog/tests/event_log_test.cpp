// The writer: appends are gapless and chained, survive a reopen, bad input is refused without
// touching the chain, a burst is group-committed, and what is written verifies. Also the HTTP query
// parameters.
#include "event_log.hpp"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "eventlog/verify.hpp"
#include "http_routes.hpp"
#include "wire/identity.hpp"

namespace chorus::eventlog {
namespace {

namespace fs = std::filesystem;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eventlog-writer-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<EventLog> open_log(size_t max_batch = 256) {
    uint8_t seed[32];
    std::fill(std::begin(seed), std::end(seed), 3);
    auto id = std::make_shared<p2p::Identity>(p2p::Identity::from_seed(seed));
    EventLog::Options opt;
    opt.path = path();
    opt.author = id->peer_id().to_base58();
    opt.max_batch = max_batch;
    opt.sign = [id](const Hash &h, Signature *out, std::string *) {
      *out = id->sign(p2p::BytesView(h.data(), h.size()));
      return true;
    };
    std::string err;
    auto log = EventLog::open(std::move(opt), &err);
    EXPECT_TRUE(log) << err;
    return log;
  }
  std::string path() const { return (dir_ / "log.db").string(); }

  fs::path dir_;
};

TEST_F(EventLogTest, AppendsAreGaplessChainedAndVerify) {
  auto log = open_log();
  for (uint64_t i = 0; i < 5; ++i) {
    const AppendResult r = log->append("task_progress", R"({"step": )" + std::to_string(i) + "}");
    ASSERT_EQ(r.status, CHORUS_OK) << r.error;
    EXPECT_EQ(r.index, i);
  }
  std::vector<Entry> entries;
  std::string err;
  ASSERT_TRUE(log->query(0, UINT64_MAX, "", 100, &entries, &err)) << err;
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].prev_hash, Hash{});
  for (size_t i = 1; i < entries.size(); ++i) EXPECT_EQ(entries[i].prev_hash, entries[i - 1].hash);
  EXPECT_EQ(entries[2].data, R"({"step":2})");  // canonical form
  EXPECT_EQ(log->head().length, 5u);
  EXPECT_EQ(log->head().hash, entries.back().hash);
  log->stop();
  const VerifyReport r = verify_file(path());
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kWhole) << r.problem;
  EXPECT_EQ(r.entries, 5u);
}

TEST_F(EventLogTest, ReopenContinuesFromTheHead) {
  Hash head;
  {
    auto log = open_log();
    ASSERT_EQ(log->append("decision", "{}").status, CHORUS_OK);
    ASSERT_EQ(log->append("decision", "{}").status, CHORUS_OK);
    head = log->head().hash;
  }
  auto log = open_log();
  EXPECT_EQ(log->head().length, 2u);
  EXPECT_EQ(log->head().hash, head);
  const AppendResult r = log->append("decision", R"({"x":1})");
  EXPECT_EQ(r.index, 2u);
  std::vector<Entry> entries;
  std::string err;
  ASSERT_TRUE(log->query(2, 2, "", 10, &entries, &err));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].prev_hash, head);
  log->stop();
  EXPECT_EQ(verify_file(path()).outcome, VerifyReport::Outcome::kWhole);
}

TEST_F(EventLogTest, BadInputIsRefusedAndTheChainStaysGapless) {
  auto log = open_log();
  EXPECT_EQ(log->append("Bad-Type", "{}").status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(log->append("", "{}").status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(log->append("decision", "{not json").status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(log->append("decision", std::string(70000, ' ') + "1").status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(log->head().length, 0u);
  EXPECT_EQ(log->append("acme.custom_type", "[1,2]").index, 0u);
}

TEST_F(EventLogTest, BurstIsGroupCommitted) {
  auto log = open_log();
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> indices;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const AppendResult r = log->append("task_progress", R"({"t":)" + std::to_string(t) + "}");
        ASSERT_EQ(r.status, CHORUS_OK) << r.error;
        std::lock_guard lk(mu);
        indices.insert(r.index);
      }
    });
  // Plus a burst nobody waits for.
  std::atomic<int> done{0};
  std::string err;
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(log->enqueue("peer_joined", "{}", [&](const AppendResult &) { ++done; }, &err), CHORUS_OK);
  for (auto &th : threads) th.join();
  log->stop();  // commits what is still queued
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(indices.size(), size_t{kThreads * kEach});
  EXPECT_EQ(*indices.rbegin() < kThreads * kEach + 200, true);
  EXPECT_EQ(log->head().length, uint64_t{kThreads * kEach + 200});
  // 600 appends: with one commit each this would be 600 transactions.
  EXPECT_LT(log->commits(), 600u / 2);
  const VerifyReport r = verify_file(path());
  EXPECT_EQ(r.outcome, VerifyReport::Outcome::kWhole) << r.problem;
  EXPECT_EQ(r.entries, 600u);
}

TEST_F(EventLogTest, AppendAfterStopIsUnavailable) {
  auto log = open_log();
  log->stop();
  EXPECT_EQ(log->append("decision", "{}").status, CHORUS_E_UNAVAILABLE);
}

TEST_F(EventLogTest, ForeignFileIsRefused) {
  { std::ofstream(path()) << std::string(4096, 'x'); }
  uint8_t seed[32] = {};
  auto id = p2p::Identity::from_seed(seed);
  EventLog::Options opt;
  opt.path = path();
  opt.author = id.peer_id().to_base58();
  opt.sign = [](const Hash &, Signature *, std::string *) { return false; };
  std::string err;
  EXPECT_FALSE(EventLog::open(std::move(opt), &err));
  EXPECT_NE(err.find("left untouched"), std::string::npos) << err;
}

TEST(EventlogQueryArgs, Parses) {
  std::string why;
  auto a = parse_query_args("from=2&to=9&type=peer_joined&limit=5", &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->from, 2u);
  EXPECT_EQ(a->to, 9u);
  EXPECT_EQ(a->type, "peer_joined");
  EXPECT_EQ(a->limit, 5u);
  auto d = parse_query_args("", &why);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->from, 0u);
  EXPECT_EQ(d->to, UINT64_MAX);
  EXPECT_EQ(d->limit, 100u);
  EXPECT_TRUE(parse_query_args("type=acme%2Eaudit", &why));
  EXPECT_FALSE(parse_query_args("from=-1", &why));
  EXPECT_FALSE(parse_query_args("from=5&to=4", &why));
  EXPECT_FALSE(parse_query_args("limit=0", &why));
  EXPECT_FALSE(parse_query_args("limit=1001", &why));
  EXPECT_FALSE(parse_query_args("type=Peer", &why));
  EXPECT_FALSE(parse_query_args("type=a%zz", &why));
  EXPECT_FALSE(parse_query_args("fro=1", &why));
}

}  // namespace
}  // namespace chorus::eventlog

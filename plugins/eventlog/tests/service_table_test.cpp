// chorus.eventlog v1 through its C table: append (blocking), append_async (completion exactly once),
// query_json, head_json, and the errors of the header.
#include "service_table.hpp"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "wire/identity.hpp"

namespace chorus::eventlog {
namespace {

namespace fs = std::filesystem;

class FixedSource : public LogSource {
 public:
  std::shared_ptr<EventLog> log() override { return log_; }
  std::shared_ptr<EventLog> log_;
};

class EventlogTable : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eventlog-table-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    uint8_t seed[32] = {9};
    auto id = std::make_shared<p2p::Identity>(p2p::Identity::from_seed(seed));
    author_ = id->peer_id().to_base58();
    EventLog::Options opt;
    opt.path = (dir_ / "log.db").string();
    opt.author = author_;
    opt.sign = [id](const Hash &h, Signature *out, std::string *) {
      *out = id->sign(p2p::BytesView(h.data(), h.size()));
      return true;
    };
    std::string err;
    source_.log_ = EventLog::open(std::move(opt), &err);
    ASSERT_TRUE(source_.log_) << err;
  }
  void TearDown() override {
    source_.log_.reset();
    fs::remove_all(dir_);
  }

  static std::string take(chorus_buf &b) {
    std::string s(b.data, b.len);
    b.release(&b);
    return s;
  }

  fs::path dir_;
  std::string author_;
  FixedSource source_;
  chorus_eventlog_v1 t_ = make_eventlog_table();
  chorus_error err_{sizeof(chorus_error), 0, {}};
};

TEST_F(EventlogTable, AppendQueryHead) {
  ASSERT_EQ(t_.struct_size, sizeof(chorus_eventlog_v1));
  uint64_t index = 99;
  const std::string data = R"({"task": "t1", "by": "me"})";
  ASSERT_EQ(t_.append(&source_, "task_claimed", 12, data.data(), data.size(), &index, &err_), CHORUS_OK) << err_.message;
  EXPECT_EQ(index, 0u);
  ASSERT_EQ(t_.append(&source_, "decision", 8, "{}", 2, &index, &err_), CHORUS_OK);
  EXPECT_EQ(index, 1u);

  chorus_buf buf{};
  ASSERT_EQ(t_.query_json(&source_, 0, UINT64_MAX, "task_claimed", 12, 0, &buf, &err_), CHORUS_OK);
  const auto entries = nlohmann::json::parse(take(buf));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0]["index"], 0);
  EXPECT_EQ(entries[0]["author"], author_);
  EXPECT_EQ(entries[0]["data"], nlohmann::json::parse(data));
  EXPECT_EQ(entries[0]["prev_hash"], std::string(64, '0'));

  ASSERT_EQ(t_.query_json(&source_, 1, 1, nullptr, 0, 0, &buf, &err_), CHORUS_OK);
  EXPECT_EQ(nlohmann::json::parse(take(buf))[0]["type"], "decision");

  ASSERT_EQ(t_.head_json(&source_, &buf, &err_), CHORUS_OK);
  const auto head = nlohmann::json::parse(take(buf));
  EXPECT_EQ(head["length"], 2);
  EXPECT_EQ(head["index"], 1);
  EXPECT_EQ(head["hash"].get<std::string>().size(), 64u);
}

TEST_F(EventlogTable, EmptyHead) {
  chorus_buf buf{};
  ASSERT_EQ(t_.head_json(&source_, &buf, &err_), CHORUS_OK);
  EXPECT_EQ(nlohmann::json::parse(take(buf)),
            nlohmann::json::parse(R"({"length":0,"index":null,"hash":")" + std::string(64, '0') + "\"}"));
}

TEST_F(EventlogTable, AppendAsyncCompletesOnce) {
  struct Seen {
    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    chorus_status status = -1;
    uint64_t index = 0;
  } seen;
  auto fn = [](void *arg, chorus_status st, uint64_t index, const chorus_error *) {
    auto *s = static_cast<Seen *>(arg);
    std::lock_guard lk(s->mu);
    ++s->calls;
    s->status = st;
    s->index = index;
    s->cv.notify_all();
  };
  ASSERT_EQ(t_.append_async(&source_, "peer_joined", 11, "{}", 2, fn, &seen, &err_), CHORUS_OK);
  {
    std::unique_lock lk(seen.mu);
    ASSERT_TRUE(seen.cv.wait_for(lk, std::chrono::seconds(10), [&] { return seen.calls > 0; }));
  }
  source_.log_->stop();
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(seen.status, CHORUS_OK);
  EXPECT_EQ(seen.index, 0u);
  // Refused at once: fn never runs.
  EXPECT_EQ(t_.append_async(&source_, "peer_joined", 11, "{}", 2, fn, &seen, &err_), CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(seen.calls, 1);
}

TEST_F(EventlogTable, Errors) {
  uint64_t index = 0;
  EXPECT_EQ(t_.append(&source_, "Bad", 3, "{}", 2, &index, &err_), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(err_.code, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t_.append(&source_, "decision", 8, "{", 1, &index, &err_), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t_.append(&source_, nullptr, 0, "{}", 2, &index, &err_), CHORUS_E_INVALID_ARG);
  chorus_buf buf{};
  EXPECT_EQ(t_.query_json(&source_, 5, 4, nullptr, 0, 0, &buf, &err_), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t_.query_json(&source_, 0, 4, "X", 1, 0, &buf, &err_), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t_.query_json(&source_, 0, 4, nullptr, 0, 0, nullptr, &err_), CHORUS_E_INVALID_ARG);
  FixedSource stopped;
  EXPECT_EQ(t_.append(&stopped, "decision", 8, "{}", 2, &index, &err_), CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(t_.head_json(&stopped, &buf, &err_), CHORUS_E_UNAVAILABLE);
  // Nothing of the above used an index.
  ASSERT_EQ(t_.append(&source_, "decision", 8, "{}", 2, &index, &err_), CHORUS_OK);
  EXPECT_EQ(index, 0u);
}

}  // namespace
}  // namespace chorus::eventlog

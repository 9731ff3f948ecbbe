// The runtime without a host: a fake Worker (the Worker interface is abstract), a recording publish
// and a manual clock. Covers what needs control over the work: failures and HMMM help requests, a
// worker that answers done() from inside cancel(), and shutdown.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime.hpp"

namespace chorus::agent {
namespace {

class FakeWorker final : public Worker {
 public:
  struct Job {
    TaskSpec task;
    ProgressFn progress;
    DoneFn done;
  };
  void start(const TaskSpec &task, ProgressFn progress, DoneFn done) override {
    std::lock_guard lk(mu_);
    jobs_[task.task_id] = Job{task, std::move(progress), std::move(done)};
  }
  // Like a worker whose cancellation is immediate: done(ok=false) before cancel returns.
  void cancel(const std::string &task_id) override {
    DoneFn done;
    {
      std::lock_guard lk(mu_);
      auto it = jobs_.find(task_id);
      if (it == jobs_.end()) return;
      done = std::move(it->second.done);
      jobs_.erase(it);
      ++cancelled_;
    }
    done(WorkResult{false, "", "", "", "cancelled"});
  }
  void shutdown() override {
    std::vector<std::string> ids;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, j] : jobs_) ids.push_back(id);
      shut_down_ = true;
    }
    for (const std::string &id : ids) cancel(id);
  }
  std::string services_json() const override { return R"({"reasoning":true,"ucxi":false,"backbeat":false})"; }

  // Finishes a job as the test says.
  void finish(const std::string &task_id, WorkResult r) {
    DoneFn done;
    {
      std::lock_guard lk(mu_);
      auto it = jobs_.find(task_id);
      ASSERT_NE(it, jobs_.end()) << task_id;
      done = std::move(it->second.done);
      jobs_.erase(it);
    }
    done(std::move(r));
  }
  void progress(const std::string &task_id, int percent) {
    ProgressFn p;
    {
      std::lock_guard lk(mu_);
      p = jobs_.at(task_id).progress;
    }
    p(percent, "halfway");
  }
  bool running(const std::string &task_id) const {
    std::lock_guard lk(mu_);
    return jobs_.count(task_id) != 0;
  }
  int cancelled() const { return cancelled_; }
  bool shut_down() const { return shut_down_; }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  int cancelled_ = 0;
  bool shut_down_ = false;
};

struct Sent {
  std::string topic, type;
  json data;
};

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Settings s;
    s.claim_window_ms = 100;
    s.progress_interval_ms = 50;
    s.owner_timeout_ms = 400;
    s.unclaimed_retry_ms = 300;
    s.max_tasks = 2;
    RuntimeIo io;
    io.publish = [this](const char *topic, const std::string &type, const json &data) {
      sent_.push_back(Sent{topic, type, data});
      return true;
    };
    io.mono_ms = [this] { return now_; };
    io.wall_ms = [this] { return static_cast<int64_t>(1'700'000'000'000 + now_); };
    io.warn = [this](const std::string &m) { warnings_.push_back(m); };
    RuntimeMetrics m;
    m.task_event = [this](const std::string &e) { ++events_[e]; };
    auto worker = std::make_unique<FakeWorker>();
    worker_ = worker.get();
    rt_ = std::make_shared<Runtime>(s, Identity{"12D3KooWSelf", "agent-a", "dev"}, io, m, std::move(worker), "");
    rt_->start();
  }
  void TearDown() override { rt_->stop(); }
  void run(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 10) {
      now_ += 10;
      rt_->tick();
    }
  }
  std::vector<Sent> of(const std::string &type) const {
    std::vector<Sent> out;
    for (const Sent &s : sent_)
      if (s.type == type) out.push_back(s);
    return out;
  }
  void heard(const std::string &type, const json &data, const std::string &from) {
    rt_->heard_coordination(json{{"type", type}, {"from", "x"}, {"timestamp", "t"}, {"data", data}}.dump(), from);
  }

  uint64_t now_ = 1000;
  std::vector<Sent> sent_;
  std::vector<std::string> warnings_;
  std::map<std::string, int> events_;
  FakeWorker *worker_ = nullptr;
  std::shared_ptr<Runtime> rt_;
};

TEST_F(RuntimeTest, FailedTaskIsCompletedAsFailedAndRaisedOnHmmm) {
  const HttpAnswer a = rt_->post_task(R"({"title":"compile","task_id":"t-fail"})");
  ASSERT_EQ(a.status, 202) << a.body.dump();
  run(200);
  ASSERT_TRUE(worker_->running("t-fail"));
  worker_->progress("t-fail", 50);
  auto progress = of(kProgressType);
  ASSERT_GE(progress.size(), 2u);
  EXPECT_EQ(progress.back().data["percent"], 50);
  worker_->finish("t-fail", WorkResult{false, "", "phi3", "", "the model timed out"});
  auto done = of(kCompleteType);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].data["status"], "failed");
  EXPECT_EQ(done[0].data["summary"], "the model timed out");
  auto help = of(kHelpRequestType);
  ASSERT_EQ(help.size(), 1u);
  EXPECT_EQ(help[0].topic, kHmmmTopic);
  EXPECT_EQ(help[0].data["task_id"], "t-fail");
  EXPECT_EQ(help[0].data["reason"], "the model timed out");
  const json hmmm = rt_->hmmm();
  ASSERT_EQ(hmmm.size(), 1u);
  EXPECT_EQ(hmmm[0]["type"], kHelpRequestType);
  EXPECT_EQ(events_["failed"], 1);
  EXPECT_EQ(rt_->task("t-fail")->at("status"), "failed");
  // A failed task is finished: never re-announced.
  run(2000);
  EXPECT_EQ(of(kAnnouncementType).size(), 1u);
}

TEST_F(RuntimeTest, WorkerThatAnswersInsideCancelDoesNotDeadlockAndNeverCompletes) {
  ASSERT_EQ(rt_->post_task(R"({"title":"long","task_id":"t-long"})").status, 202);
  run(200);
  ASSERT_TRUE(worker_->running("t-long"));
  // Attempt 2 from another node supersedes ours: the worker is cancelled and answers at once.
  heard(kClaimType, to_json(TaskClaim{"t-long", 2, "12D3KooWOther", "agent-b", 0, 3}), "12D3KooWOther");
  EXPECT_EQ(worker_->cancelled(), 1);
  EXPECT_FALSE(worker_->running("t-long"));
  EXPECT_TRUE(of(kCompleteType).empty());
  EXPECT_EQ(rt_->info()["current_tasks"], 0);
}

TEST_F(RuntimeTest, InfoReportsTheWorkersServicesAndNoElection) {
  const json info = rt_->info();
  EXPECT_EQ(info["services"]["reasoning"], true);
  EXPECT_TRUE(info["is_admin"].is_null());
  EXPECT_EQ(info["available_for_work"], true);
}

TEST_F(RuntimeTest, StopShutsTheWorkerDown) {
  ASSERT_EQ(rt_->post_task(R"({"title":"x","task_id":"t-x"})").status, 202);
  run(200);
  rt_->stop();
  EXPECT_TRUE(worker_->shut_down());
  EXPECT_TRUE(of(kCompleteType).empty()) << "work cancelled at stop is not completed";
  EXPECT_EQ(rt_->post_task(R"({"title":"y"})").status, 503);
}

}  // namespace
}  // namespace chorus::agent

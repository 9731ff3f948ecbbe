// TEMPORARY (branch agent-core only): a stand-in so the plugin links until the real worker from
// branch agent-work lands; on merge, take agent-work's file. It only simulates work.
#include "work.hpp"

#include <map>
#include <mutex>

#include <chorus/plugin.hpp>

namespace chorus::agent {
namespace {

class SimulatedWorker final : public Worker {
 public:
  SimulatedWorker(const chorus::Host &host, WorkerOptions options) : host_(host), options_(std::move(options)) {}
  ~SimulatedWorker() override { shutdown(); }

  void start(const TaskSpec &task, ProgressFn, DoneFn done) override {
    std::lock_guard lk(mu_);
    const uint64_t id = ++next_;
    pending_[id] = Pending{task.task_id, std::move(done)};
    timers_[id] = host_.timer(options_.simulated_work, std::chrono::milliseconds(0), [this, id] { finish(id, true); });
  }
  void cancel(const std::string &task_id) override {
    std::vector<uint64_t> ids;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, p] : pending_)
        if (p.task_id == task_id) ids.push_back(id);
    }
    for (uint64_t id : ids) finish(id, false);
  }
  void shutdown() override {
    std::vector<uint64_t> ids;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, p] : pending_) ids.push_back(id);
    }
    for (uint64_t id : ids) finish(id, false);
  }
  std::string services_json() const override { return R"({"reasoning":false,"ucxi":false,"backbeat":false})"; }

 private:
  struct Pending {
    std::string task_id;
    DoneFn done;
  };
  void finish(uint64_t id, bool ok) {
    DoneFn done;
    uint64_t timer = 0;
    {
      std::lock_guard lk(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      done = std::move(it->second.done);
      pending_.erase(it);
      timer = timers_[id];
      timers_.erase(id);
    }
    if (!ok) host_.cancel_timer(timer);
    WorkResult r;
    r.ok = ok;
    r.summary = ok ? "simulated work done" : "";
    r.error = ok ? "" : "cancelled";
    done(std::move(r));
  }

  const chorus::Host &host_;
  WorkerOptions options_;
  std::mutex mu_;
  uint64_t next_ = 0;
  std::map<uint64_t, Pending> pending_;
  std::map<uint64_t, uint64_t> timers_;
};

}  // namespace

std::unique_ptr<Worker> make_service_worker(const chorus::Host &host, WorkerOptions options) {
  return std::make_unique<SimulatedWorker>(host, std::move(options));
}

}  // namespace chorus::agent

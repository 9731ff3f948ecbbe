#include "executor.hpp"

#include <condition_variable>
#include <map>
#include <mutex>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace asio = boost::asio;

namespace chorus::host {

namespace {
// One timer's shared state. `mu` orders the callback against cancellation: the callback runs with
// `running` set, and cancel waits on `cv` until it is clear.
struct TimerState {
  explicit TimerState(asio::io_context &io) : timer(io) {}
  asio::steady_timer timer;
  std::function<void()> fn;
  uint64_t period_ms = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool cancelled = false;
  bool running = false;
  std::thread::id runner;
};
}  // namespace

struct Executor::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::mutex timers_mu;
  std::map<uint64_t, std::shared_ptr<TimerState>> timers;
  uint64_t next_timer = 1;

  // steady_timer is not thread-safe, so every operation on it happens under t->mu.
  void arm(uint64_t id, const std::shared_ptr<TimerState> &t, uint64_t delay_ms) {
    std::lock_guard lk(t->mu);
    if (t->cancelled) return;
    t->timer.expires_after(std::chrono::milliseconds(delay_ms));
    t->timer.async_wait([this, id, t](const boost::system::error_code &ec) {
      if (ec) return;
      {
        std::lock_guard lk(t->mu);
        if (t->cancelled) return;
        t->running = true;
        t->runner = std::this_thread::get_id();
      }
      t->fn();
      bool again;
      {
        std::lock_guard lk(t->mu);
        t->running = false;
        again = !t->cancelled && t->period_ms > 0;
      }
      t->cv.notify_all();
      if (again) {
        arm(id, t, t->period_ms);
      } else {
        std::lock_guard lk(timers_mu);
        timers.erase(id);
      }
    });
  }
};

Executor::Executor(unsigned threads) : impl_(std::make_unique<Impl>()) {
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { impl_->io.run(); });
}

Executor::~Executor() { stop_and_join(); }

asio::io_context &Executor::io() { return impl_->io; }

void Executor::post(std::function<void()> fn) { asio::post(impl_->io, std::move(fn)); }

void Executor::stop_and_join() {
  impl_->guard.reset();
  impl_->io.stop();
  for (auto &t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  std::lock_guard lk(impl_->timers_mu);
  impl_->timers.clear();
}

uint64_t Executor::timer_start(uint64_t first_ms, uint64_t period_ms, std::function<void()> fn) {
  auto t = std::make_shared<TimerState>(impl_->io);
  t->fn = std::move(fn);
  t->period_ms = period_ms;
  uint64_t id;
  {
    std::lock_guard lk(impl_->timers_mu);
    id = impl_->next_timer++;
    impl_->timers.emplace(id, t);
  }
  impl_->arm(id, t, first_ms);
  return id;
}

bool Executor::timer_cancel(uint64_t id) {
  std::shared_ptr<TimerState> t;
  {
    std::lock_guard lk(impl_->timers_mu);
    auto it = impl_->timers.find(id);
    if (it == impl_->timers.end()) return false;
    t = it->second;
    impl_->timers.erase(it);
  }
  std::unique_lock lk(t->mu);
  t->cancelled = true;
  t->timer.cancel();
  if (t->running && t->runner != std::this_thread::get_id()) t->cv.wait(lk, [&] { return !t->running; });
  return true;
}

}  // namespace chorus::host

// The worker pool: one io_context run by N threads. Plugin tasks, timers, HTTP and service callbacks
// all run here; the control thread (lifecycle) is separate and lives in the runtime.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace boost::asio { class io_context; }

namespace chorus::host {

class Executor {
 public:
  explicit Executor(unsigned threads);
  ~Executor();  // stops and joins
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  boost::asio::io_context &io();
  void post(std::function<void()> fn);
  // Stops the io_context and joins the threads; pending handlers are destroyed, not run.
  void stop_and_join();
  unsigned thread_count() const { return static_cast<unsigned>(threads_.size()); }

  // Timers. fn runs on a worker thread after first_ms, then every period_ms (0 = once).
  // cancel: on return the callback is not running and will not run again, unless cancel is called
  // from inside that very callback (then it just won't run again). Returns false for unknown ids.
  uint64_t timer_start(uint64_t first_ms, uint64_t period_ms, std::function<void()> fn);
  bool timer_cancel(uint64_t id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
};

}  // namespace chorus::host

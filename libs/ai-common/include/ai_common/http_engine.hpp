// ai-common: an HTTP/1.1 and HTTPS client driven by ONE thread (no thread per request).
// Compiled into each AI plugin with hidden symbols.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::ai_common {

struct TransferSpec {
  std::string method = "GET";  // GET or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; never logged (may carry credentials)
  std::string body;
  uint64_t connect_timeout_ms = 5000;
  uint64_t first_byte_timeout_ms = 60000;  // from start until the first response byte
  uint64_t total_timeout_ms = 300000;
  size_t max_response_bytes = 8u << 20;
};

enum class TransferOutcome {
  ok,                  // the exchange completed (any HTTP status)
  connect_failed,      // nothing was sent: refused, unresolvable
  connect_timeout,
  first_byte_timeout,
  total_timeout,
  too_large,           // body over max_response_bytes
  aborted,             // the handler's on_data returned false
  io_error,            // bad URL, TLS failure, connection dropped mid-answer, malformed HTTP
  cancelled,           // cancel() or engine stop
};

const char *outcome_name(TransferOutcome o) noexcept;

struct TransferResult {
  TransferOutcome outcome = TransferOutcome::ok;
  long http_status = 0;
  std::string message;   // what went wrong, for failures
  std::string retry_after;  // Retry-After header, if any
};

// Callbacks run on the engine thread, never concurrently for one transfer.
class TransferHandler {
 public:
  virtual ~TransferHandler() = default;
  // Body bytes; http_status is known by then. Return false to abort the transfer (outcome aborted).
  virtual bool on_data(long http_status, std::string_view bytes) = 0;
  // Exactly once per submitted transfer.
  virtual void on_complete(const TransferResult &result) = 0;
};

class HttpEngine {
 public:
  explicit HttpEngine(std::string name);
  ~HttpEngine();  // stops if still running
  HttpEngine(const HttpEngine &) = delete;
  HttpEngine &operator=(const HttpEngine &) = delete;

  void start();
  // Cancels everything (handlers get on_complete(cancelled), timed tasks run with cancelled=true),
  // then joins the thread. Idempotent.
  void stop();
  bool running() const noexcept;

  // Runs fn(cancelled) on the engine thread after delay_ms (0 = next loop turn, FIFO). Returns false
  // (and never runs fn) when the engine is not running.
  bool post(std::function<void(bool cancelled)> fn, uint64_t delay_ms = 0);
  // Engine thread only (inside post'ed tasks or handler callbacks): starts a transfer. Returns its
  // id. If the engine is stopping, the handler completes with cancelled before this returns.
  uint64_t submit_now(TransferSpec spec, std::shared_ptr<TransferHandler> handler);
  // Engine thread only: cancels a running transfer (its handler completes with cancelled before
  // this returns). Unknown ids are ignored.
  void cancel_now(uint64_t transfer_id);
  bool on_engine_thread() const noexcept;
  uint64_t now_ms() const noexcept;  // monotonic

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::ai_common

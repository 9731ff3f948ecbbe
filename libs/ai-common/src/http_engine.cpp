#include "ai_common/http_engine.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

namespace chorus::ai_common {

const char *outcome_name(TransferOutcome o) noexcept {
  switch (o) {
    case TransferOutcome::ok: return "ok";
    case TransferOutcome::connect_failed: return "connect_failed";
    case TransferOutcome::connect_timeout: return "connect_timeout";
    case TransferOutcome::first_byte_timeout: return "first_byte_timeout";
    case TransferOutcome::total_timeout: return "total_timeout";
    case TransferOutcome::too_large: return "too_large";
    case TransferOutcome::aborted: return "aborted";
    case TransferOutcome::io_error: return "io_error";
    case TransferOutcome::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {
uint64_t mono_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

struct Transfer {
  uint64_t id = 0;
  CURL *easy = nullptr;
  curl_slist *headers = nullptr;
  TransferSpec spec;
  std::shared_ptr<TransferHandler> handler;
  uint64_t started_ms = 0;
  bool got_first_byte = false;
  size_t received = 0;
  long status = 0;
  bool too_large = false;
  bool aborted = false;
  std::string retry_after;
  char errbuf[CURL_ERROR_SIZE] = {0};
};
}  // namespace

struct HttpEngine::Impl {
  std::string name;
  CURLM *multi = nullptr;
  std::thread thread;
  std::thread::id thread_id;
  std::mutex mu;
  bool accepting = false;
  std::atomic<bool> stopping{false};
  std::deque<std::function<void(bool)>> inbox;                       // guarded by mu
  std::multimap<uint64_t, std::function<void(bool)>> timed_inbox;    // guarded by mu (due -> fn)
  // engine thread only:
  std::multimap<uint64_t, std::function<void(bool)>> timers;
  std::unordered_map<uint64_t, std::unique_ptr<Transfer>> transfers;
  uint64_t next_id = 1;

  static size_t write_cb(char *ptr, size_t size, size_t n, void *ud) {
    auto *t = static_cast<Transfer *>(ud);
    const size_t len = size * n;
    t->got_first_byte = true;
    if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    t->received += len;
    if (t->received > t->spec.max_response_bytes) {
      t->too_large = true;
      return 0;
    }
    if (!t->handler->on_data(t->status, std::string_view(ptr, len))) {
      t->aborted = true;
      return 0;
    }
    return len;
  }

  static size_t header_cb(char *ptr, size_t size, size_t n, void *ud) {
    auto *t = static_cast<Transfer *>(ud);
    const size_t len = size * n;
    t->got_first_byte = true;
    std::string_view line(ptr, len);
    constexpr std::string_view kRA = "retry-after:";
    if (line.size() > kRA.size()) {
      bool match = true;
      for (size_t i = 0; i < kRA.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != kRA[i]) match = false;
      if (match) {
        std::string_view v = line.substr(kRA.size());
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
        t->retry_after = std::string(v);
      }
    }
    return len;
  }

  void finish(Transfer *t, TransferResult r) {
    auto handler = std::move(t->handler);
    curl_multi_remove_handle(multi, t->easy);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    transfers.erase(t->id);  // t is gone now
    handler->on_complete(r);
  }

  void complete_from_curl(Transfer *t, CURLcode code) {
    TransferResult r;
    r.http_status = t->status;
    if (r.http_status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.http_status);
    r.retry_after = t->retry_after;
    if (code == CURLE_OK) {
      r.outcome = TransferOutcome::ok;
    } else if (t->too_large) {
      r.outcome = TransferOutcome::too_large;
      r.message = "response larger than " + std::to_string(t->spec.max_response_bytes) + " bytes";
    } else if (t->aborted) {
      r.outcome = TransferOutcome::aborted;
    } else {
      r.message = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
      switch (code) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
          r.outcome = TransferOutcome::connect_failed;
          break;
        case CURLE_OPERATION_TIMEDOUT: {
          double connect_time = 0;
          curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME, &connect_time);
          if (connect_time <= 0.0)
            r.outcome = TransferOutcome::connect_timeout;
          else if (!t->got_first_byte)
            r.outcome = TransferOutcome::first_byte_timeout;
          else
            r.outcome = TransferOutcome::total_timeout;
          break;
        }
        default:
          r.outcome = TransferOutcome::io_error;
      }
    }
    finish(t, std::move(r));
  }

  uint64_t submit(TransferSpec spec, std::shared_ptr<TransferHandler> handler) {
    auto t = std::make_unique<Transfer>();
    t->id = next_id++;
    t->spec = std::move(spec);
    t->handler = std::move(handler);
    t->started_ms = mono_ms();
    const uint64_t id = t->id;
    if (stopping) {
      auto h = std::move(t->handler);
      h->on_complete(TransferResult{TransferOutcome::cancelled, 0, "engine stopping", {}});
      return id;
    }
    CURL *e = curl_easy_init();
    if (e == nullptr) {
      auto h = std::move(t->handler);
      h->on_complete(TransferResult{TransferOutcome::io_error, 0, "curl_easy_init failed", {}});
      return id;
    }
    t->easy = e;
    const TransferSpec &s = t->spec;
    curl_easy_setopt(e, CURLOPT_URL, s.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(s.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(s.total_timeout_ms));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    for (const auto &h : s.headers) t->headers = curl_slist_append(t->headers, h.c_str());
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (s.method == "POST") {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, s.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(s.body.size()));
    } else if (s.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s.method.c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    Transfer *raw = t.get();
    transfers.emplace(id, std::move(t));
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
      TransferResult r{TransferOutcome::io_error, 0, "curl_multi_add_handle failed", {}};
      auto h = std::move(raw->handler);
      curl_easy_cleanup(raw->easy);
      curl_slist_free_all(raw->headers);
      transfers.erase(id);
      h->on_complete(r);
    }
    return id;
  }

  void cancel(uint64_t id, const char *why) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    Transfer *t = it->second.get();
    TransferResult r{TransferOutcome::cancelled, t->status, why, {}};
    finish(t, std::move(r));
  }

  void run() {
    thread_id = std::this_thread::get_id();
    for (;;) {
      std::deque<std::function<void(bool)>> batch;
      bool stop_now = false;
      {
        std::lock_guard lk(mu);
        batch.swap(inbox);
        for (auto &kv : timed_inbox) timers.emplace(kv.first, std::move(kv.second));
        timed_inbox.clear();
        stop_now = stopping;
      }
      for (auto &fn : batch) fn(false);
      if (stop_now) break;
      // Due timers.
      const uint64_t now = mono_ms();
      while (!timers.empty() && timers.begin()->first <= now) {
        auto fn = std::move(timers.begin()->second);
        timers.erase(timers.begin());
        fn(false);
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg *m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Transfer *t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
        if (t != nullptr) complete_from_curl(t, m->data.result);
      }
      // First-byte deadlines.
      uint64_t wait_ms = 1000;
      const uint64_t now2 = mono_ms();
      std::vector<uint64_t> expired;
      for (auto &[id, t] : transfers) {
        if (t->got_first_byte) continue;
        const uint64_t due = t->started_ms + t->spec.first_byte_timeout_ms;
        if (due <= now2)
          expired.push_back(id);
        else
          wait_ms = std::min(wait_ms, due - now2);
      }
      for (uint64_t id : expired) {
        auto it = transfers.find(id);
        if (it == transfers.end()) continue;
        Transfer *t = it->second.get();
        TransferResult r{TransferOutcome::first_byte_timeout, 0,
                         "no answer within " + std::to_string(t->spec.first_byte_timeout_ms) + " ms", {}};
        finish(t, std::move(r));
      }
      if (!timers.empty()) {
        const uint64_t due = timers.begin()->first;
        wait_ms = std::min(wait_ms, due > now2 ? due - now2 : 0);
      }
      long curl_timeout = -1;
      curl_multi_timeout(multi, &curl_timeout);
      if (curl_timeout >= 0) wait_ms = std::min<uint64_t>(wait_ms, static_cast<uint64_t>(curl_timeout));
      {
        std::lock_guard lk(mu);
        if (!inbox.empty() || !timed_inbox.empty() || stopping) wait_ms = 0;
      }
      curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
    }
    // Stopping: cancel transfers, run everything left with cancelled=true.
    while (!transfers.empty()) cancel(transfers.begin()->first, "engine stopping");
    for (;;) {
      std::deque<std::function<void(bool)>> batch;
      {
        std::lock_guard lk(mu);
        batch.swap(inbox);
        for (auto &kv : timed_inbox) timers.emplace(kv.first, std::move(kv.second));
        timed_inbox.clear();
      }
      for (auto &kv : timers) batch.push_back(std::move(kv.second));
      timers.clear();
      if (batch.empty()) break;
      for (auto &fn : batch) fn(true);
      while (!transfers.empty()) cancel(transfers.begin()->first, "engine stopping");
    }
  }
};

HttpEngine::HttpEngine(std::string name) : impl_(std::make_unique<Impl>()) { impl_->name = std::move(name); }

HttpEngine::~HttpEngine() { stop(); }

void HttpEngine::start() {
  std::lock_guard lk(impl_->mu);
  if (impl_->accepting) return;
  curl_global_init(CURL_GLOBAL_DEFAULT);  // thread-safe since libcurl 7.84; never cleaned up
  impl_->multi = curl_multi_init();
  impl_->accepting = true;
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void HttpEngine::stop() {
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->accepting) return;
    impl_->stopping = true;
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
  std::lock_guard lk(impl_->mu);
  impl_->accepting = false;
  curl_multi_cleanup(impl_->multi);
  impl_->multi = nullptr;
}

bool HttpEngine::running() const noexcept {
  std::lock_guard lk(impl_->mu);
  return impl_->accepting && !impl_->stopping;
}

bool HttpEngine::post(std::function<void(bool)> fn, uint64_t delay_ms) {
  CURLM *m = nullptr;
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->accepting || impl_->stopping) {
      // While stopping, the engine thread itself may still queue follow-up work.
      if (!(impl_->accepting && std::this_thread::get_id() == impl_->thread_id)) return false;
    }
    if (delay_ms == 0)
      impl_->inbox.push_back(std::move(fn));
    else
      impl_->timed_inbox.emplace(mono_ms() + delay_ms, std::move(fn));
    m = impl_->multi;
  }
  if (std::this_thread::get_id() != impl_->thread_id) curl_multi_wakeup(m);
  return true;
}

uint64_t HttpEngine::submit_now(TransferSpec spec, std::shared_ptr<TransferHandler> handler) {
  return impl_->submit(std::move(spec), std::move(handler));
}

void HttpEngine::cancel_now(uint64_t id) { impl_->cancel(id, "cancelled"); }

bool HttpEngine::on_engine_thread() const noexcept { return std::this_thread::get_id() == impl_->thread_id; }

uint64_t HttpEngine::now_ms() const noexcept { return mono_ms(); }

}  // namespace chorus::ai_common

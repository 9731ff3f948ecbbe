// test.p2p-probe: a test-only plugin that requires chorus.p2p.host ^1 and exposes it over HTTP so the
// interop tests and benchmarks can drive a real agent. Written only against p2p_host_v1.h and the SDK,
// like any third-party consumer of the service.
//
// It serves /chorus/echo/1.0.0 (every byte goes back; our side is closed after the remote's EOF) and
// /chorus/sink/1.0.0 (counts what arrives; at the remote's EOF answers the count as 8 bytes, big-endian,
// and closes), and mounts (POST, JSON body, JSON answer; failures: {"ok":false,"status","status_name","error"} with 400
// for a bad request, 409 when busy, 502 when the p2p operation failed, 503 while stopping, 504 on timeout):
//
//   /test/p2p/connect    {target, timeout_ms?}              -> {ok, peer_id}
//   /test/p2p/ping       {peer, timeout_ms?}                -> {ok, rtt_us}
//   /test/p2p/open       {peer, protocol, timeout_ms?}      -> {ok, protocol}   (opens, negotiates, resets)
//   /test/p2p/echo       {peer, streams, bytes_per_stream, timeout_ms?}
//                        -> {ok, streams, bytes, elapsed_ms, mbps}  (mbps: payload 10^6 bytes/s, one direction)
//   /test/p2p/send       {peer, streams, bytes_per_stream, timeout_ms?}
//                        -> {ok, streams, bytes, elapsed_ms, mbps}  (raw one-way throughput, see below)
//   /test/p2p/handshakes {target, count, timeout_ms?}       -> {ok, count, elapsed_ms, per_second}
//   /test/p2p/events     {since?, wait_ms?}                 -> {ok, count, events:[{type, peer, addr, direction,
//                                                              identify?}]}; with wait_ms the answer waits until
//                                                              more than `since` events were seen (or wait_ms)
//   /test/p2p/fill       {peer, protocol, bytes, chunk?, timeout_ms?}
//                        -> {ok, completed, written, busy, first_busy_at}  (see below)
// `peer` is a peer id in base58 text or a multiaddr (then it is connected first).
//
// It also serves /chorus/hold/1.0.0, a peer that stops reading: the first bytes that arrive pause the
// stream's reading for good, so the writer stalls on the yamux window.
//
// Fill client (send-queue back-pressure): one stream to `protocol`; on the p2p network thread it writes
// `chunk` bytes (default 4 KiB) at a time until `bytes` were taken. A write answered CHORUS_E_BUSY is
// counted (`busy`; `first_busy_at` = bytes taken before the first one, 0 if none) and writing resumes on
// on_writable. The answer comes when everything was taken (completed: true) or at timeout_ms (default
// 2000; completed: false, written = what was taken); the stream is then reset.
//
// Echo client: each stream sends bytes_per_stream deterministic pseudo-random bytes (pattern.hpp), closes
// its write side, reads the echo until EOF and compares sha256(sent) with sha256(received).
//
// Send client (raw throughput): each stream writes bytes_per_stream bytes of one constant 64 KiB buffer to
// /chorus/sink/1.0.0, closes its write side and waits for the sink's 8-byte count, which must equal what
// was sent. No data is generated or hashed on either side, so the time is the transport's (TCP + Noise +
// yamux + the service ABI). tests/interop/js/peer.mjs implements the same protocol and client.
#include <chorus/plugin.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "pattern.hpp"

namespace {

using json = nlohmann::json;
using Exchange = std::shared_ptr<chorus::HttpExchange>;
using Clock = std::chrono::steady_clock;

constexpr const char *kEchoProtocol = "/chorus/echo/1.0.0";
constexpr const char *kSinkProtocol = "/chorus/sink/1.0.0";
constexpr const char *kHoldProtocol = "/chorus/hold/1.0.0";
// What the send client writes, over and over (static storage: zero bytes; Noise encrypts it anyway).
constexpr size_t kSendChunk = 64 * 1024;
const uint8_t kSendBuffer[kSendChunk] = {};
constexpr size_t kMaxEvents = 50000;  // the probe keeps at most this many events (oldest dropped)
constexpr uint32_t kMaxStreams = 4096;

std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void reply(const Exchange &ex, int code, const json &body) {
  if (ex && *ex) ex->respond(code, "application/json", dump(body));
}

json failure(chorus_status s, std::string_view why) {
  return {{"ok", false}, {"status", s}, {"status_name", chorus::status_name(s)}, {"error", std::string(why)}};
}

int http_code_for(chorus_status s) {
  switch (s) {
    case CHORUS_E_INVALID_ARG: return 400;
    case CHORUS_E_BUSY: return 409;
    case CHORUS_E_UNAVAILABLE: return 503;
    case CHORUS_E_TIMEOUT: return 504;
    default: return 502;
  }
}

std::string error_text(const chorus_error *err) {
  if (err == nullptr) return {};
  return std::string(err->message, strnlen(err->message, sizeof err->message));
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class Probe;

// ---- streams we hand to the p2p plugin -------------------------------------------------------------

// Server side of one inbound echo stream. All its callbacks run on the p2p network thread, one at a time.
struct EchoServer {
  Probe *probe = nullptr;
  std::vector<uint8_t> pending;  // bytes the send queue refused (CHORUS_E_BUSY); reading is paused meanwhile
  bool paused = false;
  bool eof = false;
};

// Server side of one inbound sink stream: counts bytes, answers the count at EOF.
struct SinkServer {
  Probe *probe;
  uint64_t received = 0;
  uint8_t count[8] = {};
  bool count_pending = false;  // the count is waiting for on_writable
};

struct TransferJob;

// Client side of one outbound echo stream.
struct EchoStream {
  std::shared_ptr<TransferJob> job;
  uint32_t index;
  uint64_t id = 0;
  p2p_probe::Pattern pattern;
  std::vector<uint8_t> chunk;  // the next chunk to write (kept until the queue takes it)
  bool chunk_ready = false;
  bool write_closed = false;
  uint64_t received = 0;
  std::string failure;  // set when we reset the stream ourselves
  crypto_hash_sha256_state sent_hash;
  crypto_hash_sha256_state received_hash;

  EchoStream(std::shared_ptr<TransferJob> j, uint32_t i, uint64_t bytes) : job(std::move(j)), index(i), pattern(i, bytes) {
    crypto_hash_sha256_init(&sent_hash);
    crypto_hash_sha256_init(&received_hash);
  }
};

// Client side of one outbound sink stream.
struct SendStream {
  std::shared_ptr<TransferJob> job;
  uint32_t index;
  uint64_t id = 0;
  uint64_t left;  // bytes still to write
  bool write_closed = false;
  uint8_t count[8] = {};  // the sink's answer
  size_t count_len = 0;
  std::string failure;  // set when we reset the stream ourselves

  SendStream(std::shared_ptr<TransferJob> j, uint32_t i, uint64_t bytes) : job(std::move(j)), index(i), left(bytes) {}
};

// One /test/p2p/echo or /test/p2p/send request: N streams; answered once, when the last finished or at
// the deadline.
struct TransferJob {
  Probe *probe = nullptr;
  const char *what = "echo";  // for messages
  Exchange ex;
  uint32_t streams = 0;
  uint64_t bytes = 0;
  Clock::time_point t0;
  std::mutex mu;
  uint32_t finished = 0;
  uint32_t failed = 0;
  std::vector<std::string> reasons;  // the first few failures
  bool answered = false;
  std::set<uint64_t> open_ids;  // streams still running (for the deadline)
  uint64_t timer = 0;
};

// One /test/p2p/handshakes request: connect + disconnect, count times, one after the other.
struct HandshakeJob {
  Probe *probe = nullptr;
  Exchange ex;
  std::string target;
  uint32_t count = 0;
  uint32_t timeout_ms = 0;
  std::atomic<uint32_t> done{0};
  Clock::time_point t0;
  std::mutex mu;
  bool answered = false;
  uint64_t timer = 0;
};

// One /test/p2p/fill request: one stream written until it has taken `target` bytes or the deadline.
struct FillJob {
  Probe *probe = nullptr;
  Exchange ex;
  uint64_t target = 0;
  size_t chunk = 4096;
  uint64_t id = 0;  // the stream, once open
  std::mutex mu;    // guards everything below (the deadline timer runs on a host thread)
  uint64_t written = 0;
  uint64_t first_busy_at = 0;
  uint64_t busy = 0;
  bool answered = false;
  uint64_t timer = 0;
};

class Probe final : public chorus::Plugin {
 public:
  Probe(chorus::Host &host, std::string_view config) : host_(host) {
    const json cfg = json::parse(config.empty() ? std::string_view("{}") : config, nullptr, false);
    if (!cfg.is_discarded() && !cfg.is_null() && !(cfg.is_object() && cfg.empty()))
      throw chorus::Error(CHORUS_E_CONFIG, "test.p2p-probe takes no configuration");
    if (sodium_init() < 0) throw chorus::Error(CHORUS_E_INTERNAL, "sodium_init failed");
    host_.route("*", "/test/p2p/", CHORUS_ROUTE_PREFIX, [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      handle(std::string(req.path().substr(std::strlen("/test/p2p/"))), req.body(),
             std::make_shared<chorus::HttpExchange>(std::move(ex)));
    });
  }

  void start() override {
    ref_ = host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
    t_ = ref_.table();
    s_ = ref_.self();
    chorus::ErrorBuffer err;
    err.check(t_->set_protocol_handler(s_, kEchoProtocol, &Probe::accept_echo, this, err.get()),
              "set_protocol_handler " + std::string(kEchoProtocol));
    err.check(t_->set_protocol_handler(s_, kSinkProtocol, &Probe::accept_sink, this, err.get()),
              "set_protocol_handler " + std::string(kSinkProtocol));
    err.check(t_->set_protocol_handler(s_, kHoldProtocol, &Probe::accept_hold, this, err.get()),
              "set_protocol_handler " + std::string(kHoldProtocol));
    chorus::check(t_->subscribe(s_, &Probe::on_event_tramp, this, &sub_), "subscribe");
    subscribed_ = true;
    host_.info("p2p probe ready: serving /chorus/echo/1.0.0 and /chorus/sink/1.0.0, routes under /test/p2p/");
  }

  void stop(std::chrono::milliseconds budget) override {
    stopping_ = true;
    if (subscribed_) t_->unsubscribe(s_, sub_);
    subscribed_ = false;
    if (t_ != nullptr) {
      t_->remove_protocol_handler(s_, kEchoProtocol);
      t_->remove_protocol_handler(s_, kSinkProtocol);
      t_->remove_protocol_handler(s_, kHoldProtocol);
    }
    // Every stream handler and pending callback points into this plugin: end them and wait until the
    // p2p plugin has made its last call into us, so nothing runs after we are unloaded.
    // (Repeated: a stream whose open was in flight may be handed to us after the first round.)
    const auto deadline = Clock::now() + budget / 2;
    for (;;) {
      std::set<uint64_t> ids;
      {
        std::unique_lock lk(live_mu_);
        if (live_ == 0) break;
        if (Clock::now() >= deadline) {
          host_.warn("p2p probe: " + std::to_string(live_) + " callbacks still outstanding at stop");
          break;
        }
        ids = streams_;
      }
      if (t_ != nullptr)
        for (uint64_t id : ids) t_->reset(s_, id);
      std::unique_lock lk(live_mu_);
      live_cv_.wait_for(lk, std::chrono::milliseconds(50), [this] { return live_ == 0; });
    }
    std::vector<Exchange> waiting;
    std::shared_ptr<HandshakeJob> hs;
    {
      std::lock_guard lk(mu_);
      for (auto &[id, w] : waiters_) waiting.push_back(w.ex);
      waiters_.clear();
      hs = std::move(handshake_);
      disconnect_waiter_ = nullptr;
    }
    for (auto &ex : waiting) reply(ex, 503, failure(CHORUS_E_UNAVAILABLE, "stopping"));
    if (hs) finish_handshakes(hs, CHORUS_E_UNAVAILABLE, "stopping");
    t_ = nullptr;
    s_ = nullptr;
    ref_.reset();
  }

  // ---- bookkeeping of callbacks into us ----
  void hold() {
    std::lock_guard lk(live_mu_);
    ++live_;
  }
  void unhold() {
    std::lock_guard lk(live_mu_);
    if (--live_ == 0) live_cv_.notify_all();
  }
  void stream_begins(uint64_t id) {
    std::lock_guard lk(live_mu_);
    ++live_;
    streams_.insert(id);
  }
  void stream_ends(uint64_t id) {
    std::lock_guard lk(live_mu_);
    streams_.erase(id);
    if (--live_ == 0) live_cv_.notify_all();
  }

  const chorus_p2p_host_v1 *t() const { return t_; }
  void *s() const { return s_; }
  chorus::Host &host() { return host_; }

  // ---- echo client completion (called from stream callbacks and the deadline timer) ----
  void transfer_stream_done(const std::shared_ptr<TransferJob> &job, uint64_t id, bool ok, const std::string &why) {
    Exchange ex;
    json answer;
    uint64_t timer = 0;
    {
      std::lock_guard lk(job->mu);
      job->open_ids.erase(id);
      ++job->finished;
      if (!ok) {
        ++job->failed;
        if (job->reasons.size() < 5) job->reasons.push_back(why);
      }
      if (job->finished < job->streams || job->answered) return;
      job->answered = true;
      ex = std::move(job->ex);
      timer = job->timer;
      const double ms = ms_since(job->t0);
      if (job->failed == 0) {
        const double total = static_cast<double>(job->streams) * static_cast<double>(job->bytes);
        answer = {{"ok", true},          {"streams", job->streams}, {"bytes", job->streams * job->bytes},
                  {"elapsed_ms", ms},    {"mbps", ms > 0 ? total / 1e6 / (ms / 1000.0) : 0.0}};
      } else {
        std::string msg = std::to_string(job->failed) + " of " + std::to_string(job->streams) + " " + job->what + " streams failed";
        for (const auto &r : job->reasons) msg += "; " + r;
        answer = failure(CHORUS_E_PROTOCOL, msg);
      }
    }
    if (timer != 0) host_.cancel_timer(timer);
    reply(ex, answer.value("ok", false) ? 200 : 502, answer);
  }

 private:
  struct Waiter {
    Exchange ex;
    size_t since;
  };

  // ---- C callbacks (never let an exception out) ----

  static chorus_status accept_echo(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) noexcept {
    auto *self = static_cast<Probe *>(arg);
    if (self->stopping_) return CHORUS_E_UNAVAILABLE;
    EchoServer *es = nullptr;
    try {
      es = new EchoServer();
      es->probe = self;
    } catch (...) {
      return CHORUS_E_NO_MEMORY;
    }
    h->arg = es;
    h->on_data = &Probe::server_data;
    h->on_eof = &Probe::server_eof;
    h->on_writable = &Probe::server_writable;
    h->on_closed = &Probe::server_closed;
    self->stream_begins(info->stream);
    return CHORUS_OK;
  }

  static void server_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) noexcept {
    auto *es = static_cast<EchoServer *>(arg);
    const chorus_p2p_host_v1 *t = es->probe->t();
    if (t == nullptr) return;
    try {
      if (!es->pending.empty()) {  // already backed up: keep order, the queue gets it on_writable
        es->pending.insert(es->pending.end(), data, data + len);
        return;
      }
      const chorus_status st = t->write(es->probe->s(), stream, data, len);
      if (st == CHORUS_E_BUSY) {
        es->pending.assign(data, data + len);
        es->paused = true;
        t->set_read_paused(es->probe->s(), stream, 1);
      } else if (st != CHORUS_OK) {
        t->reset(es->probe->s(), stream);
      }
    } catch (...) {
      t->reset(es->probe->s(), stream);
    }
  }

  static void server_writable(void *arg, uint64_t stream) noexcept {
    auto *es = static_cast<EchoServer *>(arg);
    const chorus_p2p_host_v1 *t = es->probe->t();
    if (t == nullptr || es->pending.empty()) return;
    const chorus_status st = t->write(es->probe->s(), stream, es->pending.data(), es->pending.size());
    if (st == CHORUS_E_BUSY) return;  // on_writable comes again
    if (st != CHORUS_OK) {
      t->reset(es->probe->s(), stream);
      return;
    }
    es->pending.clear();
    es->pending.shrink_to_fit();
    if (es->paused) {
      es->paused = false;
      t->set_read_paused(es->probe->s(), stream, 0);
    }
    if (es->eof) t->close_write(es->probe->s(), stream);
  }

  static void server_eof(void *arg, uint64_t stream) noexcept {
    auto *es = static_cast<EchoServer *>(arg);
    es->eof = true;
    if (es->pending.empty() && es->probe->t() != nullptr) es->probe->t()->close_write(es->probe->s(), stream);
  }

  static void server_closed(void *arg, uint64_t stream, chorus_status, const char *) noexcept {
    auto *es = static_cast<EchoServer *>(arg);
    Probe *p = es->probe;
    delete es;
    p->stream_ends(stream);
  }

  // Echo client stream callbacks.
  static void client_pump(EchoStream *cs) noexcept {
    Probe *p = cs->job->probe;
    const chorus_p2p_host_v1 *t = p->t();
    if (t == nullptr) return;
    try {
      for (;;) {
        if (!cs->chunk_ready) {
          if (cs->pattern.left() == 0) {
            if (!cs->write_closed) {
              cs->write_closed = true;
              t->close_write(p->s(), cs->id);
            }
            return;
          }
          cs->pattern.next(cs->chunk);
          crypto_hash_sha256_update(&cs->sent_hash, cs->chunk.data(), cs->chunk.size());
          cs->chunk_ready = true;
        }
        const chorus_status st = t->write(p->s(), cs->id, cs->chunk.data(), cs->chunk.size());
        if (st == CHORUS_E_BUSY) return;  // on_writable resumes
        if (st != CHORUS_OK) {
          cs->failure = std::string("write failed: ") + chorus::status_name(st);
          t->reset(p->s(), cs->id);
          return;
        }
        cs->chunk_ready = false;
      }
    } catch (...) {
      cs->failure = "out of memory";
      t->reset(p->s(), cs->id);
    }
  }

  static void client_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) noexcept {
    auto *cs = static_cast<EchoStream *>(arg);
    cs->received += len;
    crypto_hash_sha256_update(&cs->received_hash, data, len);
    if (cs->received > cs->job->bytes && cs->failure.empty()) {
      cs->failure = "stream " + std::to_string(cs->index) + ": more bytes echoed than sent";
      cs->job->probe->t()->reset(cs->job->probe->s(), stream);
    }
  }

  static void client_writable(void *arg, uint64_t) noexcept { client_pump(static_cast<EchoStream *>(arg)); }

  static void client_closed(void *arg, uint64_t stream, chorus_status status, const char *reason) noexcept {
    std::unique_ptr<EchoStream> cs(static_cast<EchoStream *>(arg));
    Probe *p = cs->job->probe;
    bool ok = false;
    std::string why;
    try {
      const std::string prefix = "stream " + std::to_string(cs->index) + ": ";
      if (!cs->failure.empty()) {
        why = prefix + cs->failure;
      } else if (status != CHORUS_OK) {
        why = prefix + "closed with " + chorus::status_name(status) + ": " + (reason != nullptr ? reason : "");
      } else if (cs->received != cs->job->bytes || cs->pattern.left() != 0) {
        why = prefix + "echoed " + std::to_string(cs->received) + " of " + std::to_string(cs->job->bytes) + " bytes";
      } else {
        uint8_t a[crypto_hash_sha256_BYTES], b[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_final(&cs->sent_hash, a);
        crypto_hash_sha256_final(&cs->received_hash, b);
        ok = std::memcmp(a, b, sizeof a) == 0;
        if (!ok) why = prefix + "sha256 of the echo differs from what was sent";
      }
      p->transfer_stream_done(cs->job, stream, ok, why);
    } catch (...) {
    }
    cs.reset();
    p->stream_ends(stream);
  }

  // Hold server: takes the stream, then stops reading at the first bytes (never resumes).
  static chorus_status accept_hold(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) noexcept {
    auto *self = static_cast<Probe *>(arg);
    if (self->stopping_) return CHORUS_E_UNAVAILABLE;
    h->arg = self;
    h->on_data = [](void *a, uint64_t stream, const uint8_t *, size_t) noexcept {
      auto *p = static_cast<Probe *>(a);
      if (p->t() != nullptr) p->t()->set_read_paused(p->s(), stream, 1);
    };
    h->on_closed = [](void *a, uint64_t stream, chorus_status, const char *) noexcept {
      static_cast<Probe *>(a)->stream_ends(stream);
    };
    self->stream_begins(info->stream);
    return CHORUS_OK;
  }

  // Fill client: writes until BUSY, resumes on on_writable (network thread).
  static void fill_pump(const std::shared_ptr<FillJob> &job) noexcept {
    Probe *p = job->probe;
    const chorus_p2p_host_v1 *t = p->t();
    if (t == nullptr) return;
    static const std::vector<uint8_t> zeros(1 << 20);
    Exchange ex;
    json answer;
    uint64_t timer = 0;
    {
      std::lock_guard lk(job->mu);
      if (job->answered) {  // answered at the deadline, possibly before the stream was open
        t->reset(p->s(), job->id);
        return;
      }
      while (job->written < job->target) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(job->chunk, job->target - job->written));
        const chorus_status st = t->write(p->s(), job->id, zeros.data(), n);
        if (st == CHORUS_E_BUSY) {
          if (job->busy++ == 0) job->first_busy_at = job->written;
          return;  // on_writable resumes
        }
        if (st != CHORUS_OK) {
          job->answered = true;
          ex = std::move(job->ex);
          timer = job->timer;
          answer = failure(st, std::string("write failed: ") + chorus::status_name(st));
          break;
        }
        job->written += n;
      }
      if (!job->answered) {
        job->answered = true;
        ex = std::move(job->ex);
        timer = job->timer;
        answer = {{"ok", true},       {"completed", true},           {"written", job->written},
                  {"busy", job->busy}, {"first_busy_at", job->first_busy_at}};
      }
    }
    if (timer != 0) p->host().cancel_timer(timer);
    reply(ex, answer.value("ok", false) ? 200 : 502, answer);
    t->reset(p->s(), job->id);
  }

  // Sink server stream callbacks.
  static chorus_status accept_sink(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) noexcept {
    auto *self = static_cast<Probe *>(arg);
    if (self->stopping_) return CHORUS_E_UNAVAILABLE;
    SinkServer *ss = nullptr;
    try {
      ss = new SinkServer{self};
    } catch (...) {
      return CHORUS_E_NO_MEMORY;
    }
    h->arg = ss;
    h->on_data = [](void *a, uint64_t, const uint8_t *, size_t len) noexcept { static_cast<SinkServer *>(a)->received += len; };
    h->on_eof = &Probe::sink_eof;
    h->on_writable = &Probe::sink_writable;
    h->on_closed = [](void *a, uint64_t stream, chorus_status, const char *) noexcept {
      auto *ss = static_cast<SinkServer *>(a);
      Probe *p = ss->probe;
      delete ss;
      p->stream_ends(stream);
    };
    self->stream_begins(info->stream);
    return CHORUS_OK;
  }

  static void sink_eof(void *arg, uint64_t stream) noexcept {
    auto *ss = static_cast<SinkServer *>(arg);
    for (int i = 0; i < 8; ++i) ss->count[i] = static_cast<uint8_t>(ss->received >> (56 - 8 * i));
    ss->count_pending = true;
    sink_writable(arg, stream);
  }

  static void sink_writable(void *arg, uint64_t stream) noexcept {
    auto *ss = static_cast<SinkServer *>(arg);
    const chorus_p2p_host_v1 *t = ss->probe->t();
    if (t == nullptr || !ss->count_pending) return;
    const chorus_status st = t->write(ss->probe->s(), stream, ss->count, sizeof ss->count);
    if (st == CHORUS_E_BUSY) return;  // on_writable comes again
    ss->count_pending = false;
    if (st == CHORUS_OK) {
      t->close_write(ss->probe->s(), stream);
    } else {
      t->reset(ss->probe->s(), stream);
    }
  }

  // Send client stream callbacks.
  static void send_pump(SendStream *ss) noexcept {
    Probe *p = ss->job->probe;
    const chorus_p2p_host_v1 *t = p->t();
    if (t == nullptr) return;
    while (ss->left > 0) {
      const size_t n = ss->left < kSendChunk ? static_cast<size_t>(ss->left) : kSendChunk;
      const chorus_status st = t->write(p->s(), ss->id, kSendBuffer, n);
      if (st == CHORUS_E_BUSY) return;  // on_writable resumes
      if (st != CHORUS_OK) {
        ss->failure = std::string("write failed: ") + chorus::status_name(st);
        t->reset(p->s(), ss->id);
        return;
      }
      ss->left -= n;
    }
    if (!ss->write_closed) {
      ss->write_closed = true;
      t->close_write(p->s(), ss->id);
    }
  }

  static void send_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) noexcept {
    auto *ss = static_cast<SendStream *>(arg);
    if (ss->count_len + len > sizeof ss->count) {
      if (ss->failure.empty()) {
        ss->failure = "the sink answered more than 8 bytes";
        ss->job->probe->t()->reset(ss->job->probe->s(), stream);
      }
      return;
    }
    std::memcpy(ss->count + ss->count_len, data, len);
    ss->count_len += len;
  }

  static void send_closed(void *arg, uint64_t stream, chorus_status status, const char *reason) noexcept {
    std::unique_ptr<SendStream> ss(static_cast<SendStream *>(arg));
    Probe *p = ss->job->probe;
    bool ok = false;
    std::string why;
    try {
      const std::string prefix = "stream " + std::to_string(ss->index) + ": ";
      uint64_t count = 0;
      for (size_t i = 0; i < ss->count_len; ++i) count = count << 8 | ss->count[i];
      if (!ss->failure.empty()) {
        why = prefix + ss->failure;
      } else if (status != CHORUS_OK) {
        why = prefix + "closed with " + chorus::status_name(status) + ": " + (reason != nullptr ? reason : "");
      } else if (ss->left != 0 || ss->count_len != sizeof ss->count) {
        why = prefix + "closed before the sink's count arrived";
      } else if (count != ss->job->bytes) {
        why = prefix + "the sink counted " + std::to_string(count) + " of " + std::to_string(ss->job->bytes) + " bytes";
      } else {
        ok = true;
      }
      p->transfer_stream_done(ss->job, stream, ok, why);
    } catch (...) {
    }
    ss.reset();
    p->stream_ends(stream);
  }

  // The open callback of both client kinds (SendStream for raw sends, EchoStream for verified echoes):
  // on success the stream is registered with its job and its pump started.
  template <class Stream, void (*Pump)(Stream *)>
  static void stream_opened(void *arg, chorus_status status, const chorus_p2p_stream_info *info,
                            const chorus_error *err) noexcept {
    auto *st = static_cast<Stream *>(arg);
    Probe *p = st->job->probe;
    if (status != CHORUS_OK || info == nullptr) {
      std::unique_ptr<Stream> gone(st);
      try {
        p->transfer_stream_done(gone->job, 0, false,
                                "stream " + std::to_string(gone->index) + ": open failed: " +
                                    chorus::status_name(status) + ": " + error_text(err));
      } catch (...) {
      }
      gone.reset();
      p->unhold();
      return;
    }
    st->id = info->stream;
    p->stream_begins(info->stream);  // the stream's on_closed now owns st
    p->unhold();
    {
      std::lock_guard lk(st->job->mu);
      st->job->open_ids.insert(info->stream);
    }
    Pump(st);
  }

  static void on_event_tramp(void *arg, const chorus_p2p_event *ev) noexcept {
    try {
      static_cast<Probe *>(arg)->on_event(ev);
    } catch (...) {
    }
  }

  // ---- events ----

  void on_event(const chorus_p2p_event *ev) {
    json e;
    switch (ev->type) {
      case CHORUS_P2P_EVENT_CONNECTED: e["type"] = "connected"; break;
      case CHORUS_P2P_EVENT_DISCONNECTED: e["type"] = "disconnected"; break;
      case CHORUS_P2P_EVENT_IDENTIFIED: e["type"] = "identified"; break;
      default: e["type"] = "unknown-" + std::to_string(ev->type); break;
    }
    const std::string peer = ev->peer_text != nullptr ? ev->peer_text : "";
    e["peer"] = peer;
    e["addr"] = ev->addr != nullptr ? ev->addr : "";
    e["direction"] = ev->direction == CHORUS_P2P_DIR_OUTBOUND ? "outbound" : "inbound";
    if (ev->type == CHORUS_P2P_EVENT_IDENTIFIED && ev->identify_json != nullptr) {
      json id = json::parse(ev->identify_json, nullptr, false);
      e["identify"] = id.is_discarded() ? json(std::string("unparsable: ") + ev->identify_json) : id;
    }
    std::vector<std::pair<Exchange, json>> answers;
    std::function<void()> disconnected;
    {
      std::lock_guard lk(mu_);
      events_.push_back(std::move(e));
      ++events_total_;
      if (events_.size() > kMaxEvents) events_.erase(events_.begin());
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.since < events_total_) {
          answers.emplace_back(it->second.ex, events_answer_locked());
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
      if (ev->type == CHORUS_P2P_EVENT_DISCONNECTED && disconnect_waiter_ && disconnect_peer_ == peer)
        disconnected = disconnect_waiter_;
    }
    for (auto &[ex, body] : answers) reply(ex, 200, body);
    // A late DISCONNECTED of an earlier round must not end this one: go on only if the peer is really
    // gone now (the waiter runs at most once).
    if (disconnected && t_ != nullptr && t_->is_connected(s_, ev->peer, ev->peer_len) == 0) disconnected();
  }

  json events_answer_locked() const {
    return {{"ok", true}, {"count", events_total_}, {"dropped", events_total_ - events_.size()}, {"events", events_}};
  }

  // ---- asynchronous p2p calls wrapped as std::function (boxes freed in the trampolines) ----

  using ConnectFn = std::function<void(chorus_status, const std::string &peer_text, const std::string &err)>;
  struct ConnectBox {
    Probe *probe;
    ConnectFn fn;
  };
  void connect(const std::string &target, uint32_t timeout_ms, ConnectFn fn) {
    auto box = std::make_unique<ConnectBox>(ConnectBox{this, std::move(fn)});
    chorus::ErrorBuffer err;
    hold();
    const chorus_status st = t_->connect(
        s_, target.data(), target.size(), timeout_ms,
        [](void *arg, chorus_status status, const char *peer_text, const chorus_error *e) noexcept {
          std::unique_ptr<ConnectBox> b(static_cast<ConnectBox *>(arg));
          Probe *p = b->probe;
          try {
            b->fn(status, peer_text != nullptr ? peer_text : "", error_text(e));
          } catch (...) {
          }
          b.reset();
          p->unhold();
        },
        box.get(), err.get());
    if (st != CHORUS_OK) {
      unhold();
      box->fn(st, "", std::string(err.text()));
      return;
    }
    box.release();
  }

  using PingFn = std::function<void(chorus_status, uint64_t rtt_us, const std::string &err)>;
  struct PingBox {
    Probe *probe;
    PingFn fn;
  };
  void ping(const std::vector<uint8_t> &peer, uint32_t timeout_ms, PingFn fn) {
    auto box = std::make_unique<PingBox>(PingBox{this, std::move(fn)});
    chorus::ErrorBuffer err;
    hold();
    const chorus_status st = t_->ping(
        s_, peer.data(), peer.size(), timeout_ms,
        [](void *arg, chorus_status status, uint64_t rtt, const chorus_error *e) {
          std::unique_ptr<PingBox> b(static_cast<PingBox *>(arg));
          Probe *p = b->probe;
          try {
            b->fn(status, rtt, error_text(e));
          } catch (...) {
          }
          b.reset();
          p->unhold();
        },
        box.get(), err.get());
    if (st != CHORUS_OK) {
      unhold();
      box->fn(st, 0, std::string(err.text()));
      return;
    }
    box.release();
  }

  // Resolves a `peer` field: base58 peer id text, or a multiaddr that is connected first.
  using PeerFn = std::function<void(chorus_status, const std::vector<uint8_t> &peer, const std::string &err)>;
  void with_peer(const std::string &peer, uint32_t timeout_ms, PeerFn fn) {
    if (!peer.empty() && peer[0] == '/') {
      connect(peer, timeout_ms, [fn = std::move(fn)](chorus_status st, const std::string &text, const std::string &err) {
        std::vector<uint8_t> bin;
        if (st != CHORUS_OK) return fn(st, bin, "connect: " + err);
        if (!p2p_probe::base58_decode(text, bin)) return fn(CHORUS_E_PROTOCOL, bin, "connect gave a bad peer id " + text);
        fn(CHORUS_OK, bin, "");
      });
      return;
    }
    std::vector<uint8_t> bin;
    if (!p2p_probe::base58_decode(peer, bin)) return fn(CHORUS_E_INVALID_ARG, bin, "not a base58 peer id: '" + peer + "'");
    fn(CHORUS_OK, bin, "");
  }

  // ---- HTTP ----

  void handle(const std::string &call, std::string_view body_text, const Exchange &ex) {
    if (stopping_ || t_ == nullptr) return reply(ex, 503, failure(CHORUS_E_UNAVAILABLE, "the probe is stopping"));
    json body = body_text.empty() ? json::object() : json::parse(body_text, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "the body must be a JSON object"));
    try {
      if (call == "connect") return do_connect(body, ex);
      if (call == "ping") return do_ping(body, ex);
      if (call == "open") return do_open(body, ex);
      if (call == "echo") return do_transfer(body, ex, false);
      if (call == "send") return do_transfer(body, ex, true);
      if (call == "handshakes") return do_handshakes(body, ex);
      if (call == "events") return do_events(body, ex);
      if (call == "fill") return do_fill(body, ex);
      reply(ex, 404, failure(CHORUS_E_NOT_FOUND, "no such probe call: " + call));
    } catch (const json::exception &e) {  // a field of the wrong type
      reply(ex, 400, failure(CHORUS_E_INVALID_ARG, e.what()));
    }
  }

  void do_connect(const json &b, const Exchange &ex) {
    std::string target;
    if (!b.contains("target") || !b["target"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing string field target"));
    target = b["target"].get<std::string>();
    connect(target, b.value("timeout_ms", 0u), [ex](chorus_status st, const std::string &peer, const std::string &err) {
      if (st != CHORUS_OK) return reply(ex, http_code_for(st), failure(st, err));
      reply(ex, 200, {{"ok", true}, {"peer_id", peer}});
    });
  }

  void do_ping(const json &b, const Exchange &ex) {
    if (!b.contains("peer") || !b["peer"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing string field peer"));
    const uint32_t timeout = b.value("timeout_ms", 0u);
    with_peer(b["peer"].get<std::string>(), timeout,
              [this, ex, timeout](chorus_status st, const std::vector<uint8_t> &peer, const std::string &err) {
                if (st != CHORUS_OK) return reply(ex, http_code_for(st), failure(st, err));
                ping(peer, timeout, [ex](chorus_status s2, uint64_t rtt, const std::string &e2) {
                  if (s2 != CHORUS_OK) return reply(ex, http_code_for(s2), failure(s2, "ping: " + e2));
                  reply(ex, 200, {{"ok", true}, {"rtt_us", rtt}});
                });
              });
  }

  // Opens a stream for one protocol, reports the outcome and resets it again (used for `na` checks).
  struct OpenBox {
    Probe *probe;
    Exchange ex;
  };
  void do_open(const json &b, const Exchange &ex) {
    if (!b.contains("peer") || !b["peer"].is_string() || !b.contains("protocol") || !b["protocol"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "need string fields peer and protocol"));
    const uint32_t timeout = b.value("timeout_ms", 0u);
    const std::string protocol = b["protocol"].get<std::string>();
    with_peer(b["peer"].get<std::string>(), timeout,
              [this, ex, timeout, protocol](chorus_status st, const std::vector<uint8_t> &peer, const std::string &err) {
                if (st != CHORUS_OK) return reply(ex, http_code_for(st), failure(st, err));
                open_and_close(peer, protocol, timeout, ex);
              });
  }

  void open_and_close(const std::vector<uint8_t> &peer, const std::string &protocol, uint32_t timeout, const Exchange &ex) {
    chorus_p2p_stream_handler h{};
    h.struct_size = sizeof h;
    h.arg = this;
    h.on_data = [](void *, uint64_t, const uint8_t *, size_t) noexcept {};
    h.on_closed = [](void *arg, uint64_t stream, chorus_status, const char *) noexcept {
      static_cast<Probe *>(arg)->stream_ends(stream);
    };
    const char *protos[] = {protocol.c_str()};
    auto box = std::make_unique<OpenBox>(OpenBox{this, ex});
    chorus::ErrorBuffer err;
    hold();
    const chorus_status st = t_->open_stream(
        s_, peer.data(), peer.size(), protos, 1, &h, timeout,
        [](void *arg, chorus_status status, const chorus_p2p_stream_info *info, const chorus_error *e) noexcept {
          std::unique_ptr<OpenBox> b(static_cast<OpenBox *>(arg));
          Probe *p = b->probe;
          try {
            if (status == CHORUS_OK && info != nullptr) {
              p->stream_begins(info->stream);
              p->t()->reset(p->s(), info->stream);  // negotiated: that is all we wanted to know
              reply(b->ex, 200, {{"ok", true}, {"protocol", info->protocol != nullptr ? info->protocol : ""}});
            } else {
              reply(b->ex, http_code_for(status), failure(status, "open_stream: " + error_text(e)));
            }
          } catch (...) {
          }
          b.reset();
          p->unhold();
        },
        box.get(), err.get());
    if (st != CHORUS_OK) {
      unhold();
      return reply(ex, http_code_for(st), failure(st, "open_stream: " + std::string(err.text())));
    }
    box.release();
  }

  // /test/p2p/echo (raw = false) and /test/p2p/send (raw = true): the same request and answer.
  void do_transfer(const json &b, const Exchange &ex, bool raw) {
    if (!b.contains("peer") || !b["peer"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing string field peer"));
    const uint32_t streams = b.value("streams", 1u);
    const uint64_t bytes = b.value("bytes_per_stream", uint64_t{1024});
    const uint32_t timeout = b.value("timeout_ms", 300000u);
    if (streams < 1 || streams > kMaxStreams)
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "streams must be 1.." + std::to_string(kMaxStreams)));
    if (bytes > (uint64_t{1} << 40)) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "bytes_per_stream is too large"));
    with_peer(b["peer"].get<std::string>(), timeout,
              [this, ex, streams, bytes, timeout, raw](chorus_status st, const std::vector<uint8_t> &peer,
                                                       const std::string &err) {
                if (st != CHORUS_OK) return reply(ex, http_code_for(st), failure(st, err));
                start_transfer(peer, streams, bytes, timeout, ex, raw);
              });
  }

  void start_transfer(const std::vector<uint8_t> &peer, uint32_t streams, uint64_t bytes, uint32_t timeout,
                      const Exchange &ex, bool raw) {
    auto job = std::make_shared<TransferJob>();
    job->probe = this;
    job->what = raw ? "send" : "echo";
    job->ex = ex;
    job->streams = streams;
    job->bytes = bytes;
    job->t0 = Clock::now();
    // The deadline: answer with what is known and reset the streams still running.
    job->timer = host_.timer(std::chrono::milliseconds(timeout), std::chrono::milliseconds(0), [this, job] {
      Exchange out;
      std::set<uint64_t> ids;
      std::string msg;
      {
        std::lock_guard lk(job->mu);
        if (job->answered) return;
        job->answered = true;
        out = std::move(job->ex);
        ids = job->open_ids;
        msg = "timeout: " + std::to_string(job->finished) + " of " + std::to_string(job->streams) +
              " " + job->what + " streams finished";
        for (const auto &r : job->reasons) msg += "; " + r;
      }
      reply(out, 504, failure(CHORUS_E_TIMEOUT, msg));
      if (t_ != nullptr)
        for (uint64_t id : ids) t_->reset(s_, id);
    });
    chorus_p2p_stream_handler h{};
    h.struct_size = sizeof h;
    if (raw) {
      h.on_data = &Probe::send_data;
      h.on_writable = [](void *arg, uint64_t) noexcept { send_pump(static_cast<SendStream *>(arg)); };
      h.on_closed = &Probe::send_closed;
    } else {
      h.on_data = &Probe::client_data;
      h.on_writable = &Probe::client_writable;
      h.on_closed = &Probe::client_closed;
    }
    const char *protos[] = {raw ? kSinkProtocol : kEchoProtocol};
    for (uint32_t i = 0; i < streams; ++i) {
      // The stream's state (freed by its on_closed, or by the open callback when the open fails).
      std::unique_ptr<EchoStream> echo_state;
      std::unique_ptr<SendStream> send_state;
      void *state = nullptr;
      if (raw) {
        send_state = std::make_unique<SendStream>(job, i, bytes);
        state = send_state.get();
      } else {
        echo_state = std::make_unique<EchoStream>(job, i, bytes);
        state = echo_state.get();
      }
      h.arg = state;
      chorus::ErrorBuffer err;
      hold();
      const chorus_status st = t_->open_stream(s_, peer.data(), peer.size(), protos, 1, &h, 0,
                                               raw ? &Probe::stream_opened<SendStream, &Probe::send_pump>
                                                   : &Probe::stream_opened<EchoStream, &Probe::client_pump>, state, err.get());
      if (st == CHORUS_OK) {
        echo_state.release();  // owned by the callbacks now
        send_state.release();
      } else {
        unhold();
        transfer_stream_done(job, 0, false,
                         "stream " + std::to_string(i) + ": open_stream: " + chorus::status_name(st) + ": " +
                             std::string(err.text()));
      }
    }
  }

  void do_fill(const json &b, const Exchange &ex) {
    if (!b.contains("peer") || !b["peer"].is_string() || !b.contains("protocol") || !b["protocol"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "need string fields peer and protocol"));
    auto job = std::make_shared<FillJob>();
    job->probe = this;
    job->ex = ex;
    job->target = b.value("bytes", uint64_t{1} << 20);
    job->chunk = b.value("chunk", size_t{4096});
    if (job->chunk < 1 || job->chunk > (1u << 20))
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "chunk must be 1..1048576"));
    const uint32_t timeout = b.value("timeout_ms", 2000u);
    const std::string protocol = b["protocol"].get<std::string>();
    with_peer(b["peer"].get<std::string>(), timeout,
              [this, job, timeout, protocol](chorus_status st, const std::vector<uint8_t> &peer, const std::string &err) {
                if (st != CHORUS_OK) return reply(job->ex, http_code_for(st), failure(st, err));
                start_fill(job, peer, protocol, timeout);
              });
  }

  void start_fill(const std::shared_ptr<FillJob> &job, const std::vector<uint8_t> &peer, const std::string &protocol,
                  uint32_t timeout) {
    // The deadline: answer with what the stream took so far and reset it.
    job->timer = host_.timer(std::chrono::milliseconds(timeout), std::chrono::milliseconds(0), [this, job] {
      Exchange out;
      json answer;
      uint64_t id = 0;
      {
        std::lock_guard lk(job->mu);
        if (job->answered) return;
        job->answered = true;
        out = std::move(job->ex);
        id = job->id;
        answer = {{"ok", true},       {"completed", false},          {"written", job->written},
                  {"busy", job->busy}, {"first_busy_at", job->first_busy_at}};
      }
      reply(out, id != 0 ? 200 : 504, id != 0 ? answer : failure(CHORUS_E_TIMEOUT, "the stream did not open"));
      if (t_ != nullptr && id != 0) t_->reset(s_, id);
    });
    chorus_p2p_stream_handler h{};
    h.struct_size = sizeof h;
    auto *holder = new std::shared_ptr<FillJob>(job);  // freed by on_closed, or below when the open fails
    h.arg = holder;
    h.on_data = [](void *, uint64_t, const uint8_t *, size_t) noexcept {};
    h.on_writable = [](void *a, uint64_t) noexcept { fill_pump(*static_cast<std::shared_ptr<FillJob> *>(a)); };
    h.on_closed = [](void *a, uint64_t stream, chorus_status, const char *) noexcept {
      auto *hj = static_cast<std::shared_ptr<FillJob> *>(a);
      Probe *p = (*hj)->probe;
      delete hj;
      p->stream_ends(stream);
    };
    const char *protos[] = {protocol.c_str()};
    chorus::ErrorBuffer err;
    hold();
    const chorus_status st = t_->open_stream(
        s_, peer.data(), peer.size(), protos, 1, &h, timeout,
        [](void *arg, chorus_status status, const chorus_p2p_stream_info *info, const chorus_error *e) noexcept {
          auto *hj = static_cast<std::shared_ptr<FillJob> *>(arg);
          std::shared_ptr<FillJob> job = *hj;
          Probe *p = job->probe;
          if (status != CHORUS_OK || info == nullptr) {
            delete hj;
            Exchange ex;
            {
              std::lock_guard lk(job->mu);
              if (!job->answered) {
                job->answered = true;
                ex = std::move(job->ex);
              }
            }
            try {
              reply(ex, http_code_for(status), failure(status, "open_stream: " + error_text(e)));
            } catch (...) {
            }
            p->unhold();
            return;
          }
          p->stream_begins(info->stream);  // on_closed now owns hj
          p->unhold();
          {
            std::lock_guard lk(job->mu);
            job->id = info->stream;
          }
          fill_pump(job);
        },
        holder, err.get());
    if (st != CHORUS_OK) {
      delete holder;
      unhold();
      std::lock_guard lk(job->mu);
      if (job->answered) return;
      job->answered = true;
      reply(job->ex, http_code_for(st), failure(st, "open_stream: " + std::string(err.text())));
    }
  }

  void do_handshakes(const json &b, const Exchange &ex) {
    if (!b.contains("target") || !b["target"].is_string())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing string field target (a multiaddr)"));
    auto job = std::make_shared<HandshakeJob>();
    job->probe = this;
    job->ex = ex;
    job->target = b["target"].get<std::string>();
    job->count = b.value("count", 10u);
    job->timeout_ms = b.value("timeout_ms", 0u);
    {
      std::lock_guard lk(mu_);
      if (handshake_) return reply(ex, 409, failure(CHORUS_E_BUSY, "a handshake loop is already running"));
      handshake_ = job;
    }
    job->timer = host_.timer(std::chrono::milliseconds(b.value("deadline_ms", 600000u)), std::chrono::milliseconds(0),
                             [this, job] {
                               finish_handshakes(job, CHORUS_E_TIMEOUT,
                                                 "timeout after " + std::to_string(job->done) + " handshakes");
                             });
    job->t0 = Clock::now();
    handshake_step(job);
  }

  void finish_handshakes(const std::shared_ptr<HandshakeJob> &job, chorus_status st, const std::string &why) {
    Exchange ex;
    {
      std::lock_guard lk(job->mu);
      if (job->answered) return;
      job->answered = true;
      ex = std::move(job->ex);
    }
    {
      std::lock_guard lk(mu_);
      if (handshake_ == job) handshake_.reset();
      disconnect_waiter_ = nullptr;
    }
    if (st != CHORUS_OK) return reply(ex, http_code_for(st), failure(st, why));
    const double ms = ms_since(job->t0);
    reply(ex, 200, {{"ok", true}, {"count", job->count}, {"elapsed_ms", ms},
                    {"per_second", ms > 0 ? job->count / (ms / 1000.0) : 0.0}});
  }

  void handshake_step(const std::shared_ptr<HandshakeJob> &job) {
    {
      std::lock_guard lk(job->mu);
      if (job->answered) return;
    }
    if (job->done >= job->count) {
      host_.cancel_timer(job->timer);
      return finish_handshakes(job, CHORUS_OK, "");
    }
    connect(job->target, job->timeout_ms, [this, job](chorus_status st, const std::string &text, const std::string &err) {
      if (st != CHORUS_OK)
        return finish_handshakes(job, st, "handshake " + std::to_string(job->done + 1) + ": connect: " + err);
      std::vector<uint8_t> peer;
      if (!p2p_probe::base58_decode(text, peer))
        return finish_handshakes(job, CHORUS_E_PROTOCOL, "connect gave a bad peer id " + text);
      // Next round once the connection is gone: either at once (is_connected says so) or on DISCONNECTED
      // (armed before disconnect() so the event cannot slip past).
      auto next = std::make_shared<std::once_flag>();
      auto go = [this, job, next] {
        std::call_once(*next, [this, job] {
          ++job->done;
          host_.post([this, job] { handshake_step(job); });  // a fresh stack for every round
        });
      };
      {
        std::lock_guard lk(mu_);
        disconnect_peer_ = text;
        disconnect_waiter_ = go;
      }
      t_->disconnect(s_, peer.data(), peer.size());
      if (t_->is_connected(s_, peer.data(), peer.size()) == 0) {
        std::function<void()> mine;
        {
          std::lock_guard lk(mu_);
          mine = std::exchange(disconnect_waiter_, nullptr);
        }
        if (mine) mine();
      }
    });
  }

  void do_events(const json &b, const Exchange &ex) {
    const size_t since = b.value("since", size_t{0});
    const uint32_t wait_ms = b.value("wait_ms", 0u);
    uint64_t wid = 0;
    json now;
    {
      std::lock_guard lk(mu_);
      if (wait_ms == 0 || since < events_total_) {
        now = events_answer_locked();
      } else {
        wid = ++next_waiter_;
        waiters_[wid] = Waiter{ex, since};
      }
    }
    if (wid == 0) return reply(ex, 200, now);
    host_.timer(std::chrono::milliseconds(wait_ms), std::chrono::milliseconds(0), [this, wid] {
      Exchange out;
      json answer;
      {
        std::lock_guard lk(mu_);
        auto it = waiters_.find(wid);
        if (it == waiters_.end()) return;
        out = it->second.ex;
        waiters_.erase(it);
        answer = events_answer_locked();
      }
      reply(out, 200, answer);
    });
  }

  chorus::Host &host_;
  chorus::ServiceRef<chorus_p2p_host_v1> ref_;
  const chorus_p2p_host_v1 *t_ = nullptr;
  void *s_ = nullptr;
  uint64_t sub_ = 0;
  bool subscribed_ = false;
  std::atomic<bool> stopping_{false};

  std::mutex live_mu_;  // callbacks into us that the p2p plugin still owes
  std::condition_variable live_cv_;
  size_t live_ = 0;
  std::set<uint64_t> streams_;

  std::mutex mu_;  // events, waiters, the handshake loop
  std::vector<json> events_;
  size_t events_total_ = 0;
  std::map<uint64_t, Waiter> waiters_;
  uint64_t next_waiter_ = 0;
  std::shared_ptr<HandshakeJob> handshake_;
  std::string disconnect_peer_;
  std::function<void()> disconnect_waiter_;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace

CHORUS_PLUGIN(Probe, .id = "test.p2p-probe", .version = "1.0.0",
              .description = "test-only: drives chorus.p2p.host over HTTP (echo, ping, handshakes, events)",
              .requirements = kRequires);

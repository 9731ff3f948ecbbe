#include "ai_common/provider.hpp"

#include <atomic>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <utility>
#include <random>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ai_common/http_engine.hpp"

namespace chorus::ai_common {
using json = nlohmann::json;

namespace {
// The first of `names` that is set to a non-empty value, or nullptr.
const char *first_env(const std::vector<const char *> &names) {
  for (const char *n : names)
    if (const char *v = std::getenv(n); v != nullptr && *v != '\0') return v;
  return nullptr;
}
}  // namespace

ProviderSettings settings_from(std::string_view cfg_json, const SettingsSource &src) {
  const json cfg = json::parse(cfg_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw chorus::Error(CHORUS_E_CONFIG, "config must be a JSON object");
  ProviderSettings s;
  try {
    s.base_url = cfg.at(src.url_key).get<std::string>();
    if (src.api_key_key != nullptr) s.api_key = cfg.at(src.api_key_key).get<std::string>();
    s.default_model = cfg.at("default_model").get<std::string>();
    s.connect_timeout_ms = cfg.at("connect_timeout_ms").get<uint64_t>();
    s.first_byte_timeout_ms = cfg.at("first_byte_timeout_ms").get<uint64_t>();
    s.total_timeout_ms = cfg.at("total_timeout_ms").get<uint64_t>();
    s.max_retries = cfg.at("max_retries").get<uint32_t>();
    s.retry_base_ms = cfg.at("retry_base_ms").get<uint64_t>();
    s.retry_max_ms = cfg.at("retry_max_ms").get<uint64_t>();
    s.breaker_threshold = cfg.at("breaker_threshold").get<uint32_t>();
    s.breaker_cooldown_ms = cfg.at("breaker_cooldown_ms").get<uint64_t>();
    s.max_concurrency = cfg.at("max_concurrency").get<uint32_t>();
    s.max_queue = cfg.at("max_queue").get<uint32_t>();
    s.max_response_bytes = cfg.at("max_response_bytes").get<size_t>();
    s.health_interval_ms = cfg.at("health_interval_ms").get<uint64_t>();
    s.health_timeout_ms = cfg.at("health_timeout_ms").get<uint64_t>();
  } catch (const json::exception &e) {  // the host did not apply the plugin's schema
    throw chorus::Error(CHORUS_E_CONFIG, std::string("config does not match the plugin's schema: ") + e.what());
  }
  if (s.retry_max_ms < s.retry_base_ms) s.retry_max_ms = s.retry_base_ms;
  if (const char *v = first_env(src.url_env)) s.base_url = v;
  if (const char *v = first_env(src.api_key_env)) s.api_key = v;
  if (const char *v = first_env(src.model_env)) s.default_model = v;
  // The key goes into an HTTP header: whitespace or control characters would split or corrupt it.
  // The message names the key, never its value.
  for (char c : s.api_key)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f)
      throw chorus::Error(CHORUS_E_CONFIG, "api_key contains whitespace or control characters");
  return s;
}

namespace {
const char *status_label(chorus_status s) {
  switch (s) {
    case CHORUS_OK: return "ok";
    case CHORUS_E_INVALID_ARG: return "invalid_arg";
    case CHORUS_E_NOT_FOUND: return "not_found";
    case CHORUS_E_UNAVAILABLE: return "unavailable";
    case CHORUS_E_BUSY: return "busy";
    case CHORUS_E_TIMEOUT: return "timeout";
    case CHORUS_E_CANCELLED: return "cancelled";
    case CHORUS_E_TOO_LARGE: return "too_large";
    case CHORUS_E_PROTOCOL: return "protocol";
    case CHORUS_AI_E_UPSTREAM: return "upstream";
    default: return "error";
  }
}
const char *kind_label(Kind k) { return k == Kind::chat ? "chat" : k == Kind::generate ? "generate" : "models"; }
}  // namespace

struct Call {
  uint64_t id = 0;
  Kind kind = Kind::chat;
  chorus_ai_sink sink{};
  Upstream up;
  enum class State { registering, queued, running, waiting_retry } state = State::registering;
  uint32_t attempt = 0;
  bool delivered = false, finished = false, cancel_requested = false, probe = false;
  uint64_t transfer_id = 0;
  uint64_t started_ms = 0;
  std::unique_ptr<Decoder> decoder;
  std::string err_body;
  chorus_status decode_status = CHORUS_OK;
  std::string decode_err;
};

struct ProviderPlugin::Impl {
  chorus::Host &host;
  std::unique_ptr<Dialect> dialect;
  ProviderSettings s;
  ProviderIdentity who;
  HttpEngine engine;
  chorus_ai_provider_v1 table{};

  // metrics
  chorus::Counter m_requests, m_retries;
  chorus::Histogram m_seconds;
  chorus::Gauge m_inflight, m_breaker;

  std::atomic<uint64_t> next_id{1};
  std::atomic<uint32_t> outstanding{0};   // accepted, not yet finished
  std::atomic<uint32_t> active_mirror{0}, queued_mirror{0};

  // breaker (any thread)
  std::mutex bmu;
  enum class Breaker { closed, open, half_open } breaker = Breaker::closed;
  uint32_t consecutive_failures = 0;
  uint64_t opened_ms = 0;
  bool probe_in_flight = false;
  std::string last_error;
  // health probe (state under bmu): the backend's model list fetched every health_interval_ms
  bool backend_ok = true;  // until the first probe says otherwise
  std::string backend_error;
  uint64_t probes_failed = 0, probe_last_ms = 0;
  chorus::Health reported = chorus::Health::ok;  // what the host was told last
  std::string reported_msg;

  // engine thread only
  std::unordered_map<uint64_t, std::shared_ptr<Call>> calls;
  std::deque<std::shared_ptr<Call>> pending;
  uint32_t active = 0;
  std::minstd_rand rng{std::random_device{}()};

  Impl(chorus::Host &h, std::unique_ptr<Dialect> d, ProviderSettings st, const std::string &prefix)
      : host(h), dialect(std::move(d)), s(std::move(st)), engine(prefix) {
    m_requests = host.counter(prefix + "_requests_total", "AI provider requests by kind and result", {"kind", "result"});
    m_retries = host.counter(prefix + "_retries_total", "Upstream attempts retried after an idempotent failure");
    m_seconds = host.histogram(prefix + "_request_seconds", "AI provider request duration", {"kind"},
                               {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300});
    m_inflight = host.gauge(prefix + "_inflight", "Upstream requests in flight");
    m_breaker = host.gauge(prefix + "_circuit_open", "1 while the circuit breaker is open");
  }

  // ---------------------------------------------------------------- breaker
  bool breaker_admit(bool &probe, std::string &why) {
    if (s.breaker_threshold == 0) return true;
    std::lock_guard lk(bmu);
    if (breaker == Breaker::closed) return true;
    if (breaker == Breaker::open) {
      if (engine.now_ms() - opened_ms < s.breaker_cooldown_ms) {
        why = "circuit breaker open after " + std::to_string(consecutive_failures) + " consecutive failures; last: " + last_error;
        return false;
      }
      breaker = Breaker::half_open;
      publish_health_locked();
    }
    if (probe_in_flight) {
      why = "circuit breaker half-open: waiting for the probe request; last error: " + last_error;
      return false;
    }
    probe_in_flight = true;
    probe = true;
    return true;
  }
  void breaker_result(Call &c, bool success, const std::string &err) {
    if (s.breaker_threshold == 0) return;
    std::lock_guard lk(bmu);
    if (c.probe) {
      probe_in_flight = false;
      c.probe = false;
    }
    if (success) {
      const bool was_open = breaker != Breaker::closed;
      breaker = Breaker::closed;
      consecutive_failures = 0;
      if (was_open) {
        host.info("circuit breaker closed: " + s.base_url + " answers again");
        m_breaker.set(0);
        publish_health_locked();
      }
      return;
    }
    last_error = err;
    ++consecutive_failures;
    if (breaker == Breaker::half_open || (breaker == Breaker::closed && consecutive_failures >= s.breaker_threshold)) {
      breaker = Breaker::open;
      opened_ms = engine.now_ms();
      host.warn("circuit breaker open for " + std::to_string(s.breaker_cooldown_ms) + " ms after " +
                std::to_string(consecutive_failures) + " consecutive failures: " + err);
      m_breaker.set(1);
      publish_health_locked();
    }
  }
  void breaker_release_probe(Call &c) {
    if (!c.probe) return;
    std::lock_guard lk(bmu);
    probe_in_flight = false;
    c.probe = false;
  }
  bool breaker_is_open() {
    if (s.breaker_threshold == 0) return false;
    std::lock_guard lk(bmu);
    return breaker == Breaker::open;
  }

  // ---------------------------------------------------------------- health
  // The state shown at /health is the worse of two signals: the circuit breaker (real requests
  // failing) and the periodic probe (the backend's model list answering). The host is told only
  // when the state or its reason changes. Caller holds bmu.
  std::pair<chorus::Health, std::string> health_locked() const {
    chorus::Health st = chorus::Health::ok;
    std::string msg;
    if (breaker == Breaker::open) {
      st = chorus::Health::unhealthy;
      msg = "circuit open: " + last_error;
    } else if (breaker == Breaker::half_open) {
      st = chorus::Health::degraded;
      msg = "circuit half-open: probing " + s.base_url;
    }
    if (!backend_ok) {
      if (st == chorus::Health::ok) st = chorus::Health::degraded;
      msg += (msg.empty() ? "" : "; ") + std::string("health probe failed: ") + backend_error;
    }
    return {st, msg};
  }
  void publish_health_locked() {
    auto [st, msg] = health_locked();
    if (st == reported && msg == reported_msg) return;
    reported = st;
    reported_msg = msg;
    host.report_health(st, msg);
  }

  class ProbeHandler final : public TransferHandler {
   public:
    ProbeHandler(Impl *impl, std::unique_ptr<Decoder> decoder) : impl_(impl), decoder_(std::move(decoder)) {}
    // Engine thread only, like every TransferHandler.
    bool on_data(long status, std::string_view bytes) override {
      if (status < 200 || status >= 300) {
        if (err_body_.size() < 4096) err_body_.append(bytes.substr(0, 4096 - err_body_.size()));
        return true;
      }
      std::vector<std::string> ignored;
      return decoder_->feed(bytes, ignored, err_) == CHORUS_OK;
    }
    void on_complete(const TransferResult &r) override { impl_->on_probe_done(*this, r); }

    Impl *const impl_;
    std::unique_ptr<Decoder> decoder_;
    std::string what_;  // "GET <url>", for messages
    std::string err_, err_body_;
  };

  // The upstream HTTP request for `up` with this provider's endpoint, key, timeouts and size limit.
  TransferSpec transfer_for(const Upstream &up) const {
    TransferSpec spec;
    spec.method = up.method;
    spec.url = s.base_url + up.path;
    spec.body = up.body;
    if (spec.method == "POST") spec.headers.push_back("Content-Type: application/json");
    spec.headers.push_back(up.stream ? "Accept: application/x-ndjson, text/event-stream" : "Accept: application/json");
    if (!s.api_key.empty()) spec.headers.push_back("Authorization: Bearer " + s.api_key);
    spec.connect_timeout_ms = s.connect_timeout_ms;
    spec.first_byte_timeout_ms = s.first_byte_timeout_ms;
    spec.total_timeout_ms = s.total_timeout_ms;
    spec.max_response_bytes = s.max_response_bytes;
    return spec;
  }

  // Engine thread. The probe bypasses admission and the breaker: it must see the backend even when
  // the breaker is open or the queue is full, and it is no caller's request.
  void schedule_probe(uint64_t delay_ms) {
    if (s.health_interval_ms == 0) return;
    engine.post([this](bool cancelled) { if (!cancelled) run_probe(); }, delay_ms);
  }
  void run_probe() {
    Upstream up = dialect->build(Kind::models, {}, who);
    TransferSpec spec = transfer_for(up);
    spec.connect_timeout_ms = std::min(s.connect_timeout_ms, s.health_timeout_ms);
    spec.first_byte_timeout_ms = s.health_timeout_ms;
    spec.total_timeout_ms = s.health_timeout_ms;
    auto handler = std::make_shared<ProbeHandler>(this, dialect->decoder(Kind::models, up, who));
    handler->what_ = up.method + " " + spec.url;
    engine.submit_now(std::move(spec), std::move(handler));
  }
  void on_probe_done(ProbeHandler &h, const TransferResult &r) {
    if (r.outcome == TransferOutcome::cancelled) return;  // stopping: no further probes
    const std::string &what = h.what_;
    std::string why;
    switch (r.outcome) {
      case TransferOutcome::ok:
        if (r.http_status >= 200 && r.http_status < 300) {
          std::string done;
          if (h.decoder_->finish(done, why) == CHORUS_OK) why.clear();
          else why = what + ": " + why;
        } else {
          why = dialect->error_text(r.http_status, h.err_body_);
        }
        break;
      case TransferOutcome::aborted: why = what + ": " + h.err_; break;
      case TransferOutcome::connect_failed: why = "cannot connect to " + s.base_url + ": " + r.message; break;
      case TransferOutcome::connect_timeout:
      case TransferOutcome::first_byte_timeout:
      case TransferOutcome::total_timeout:
        why = what + " did not answer within " + std::to_string(s.health_timeout_ms) + " ms";
        break;
      default: why = what + " failed (" + outcome_name(r.outcome) + "): " + r.message; break;
    }
    {
      std::lock_guard lk(bmu);
      const bool was_ok = backend_ok;
      backend_ok = why.empty();
      backend_error = why;
      probe_last_ms = engine.now_ms();
      if (!backend_ok) ++probes_failed;
      publish_health_locked();  // before the log line, so a reader of the log sees /health agree
      if (was_ok && !backend_ok) host.warn("health probe failed: " + why);
      if (!was_ok && backend_ok) host.info("health probe: " + s.base_url + " answers again");
    }
    schedule_probe(s.health_interval_ms);
  }

  // ---------------------------------------------------------------- admission
  chorus_status submit(Kind kind, std::string_view text, const chorus_ai_sink *sink, uint64_t *out_id,
                       chorus_error *err) {
    if (out_id != nullptr) *out_id = 0;
    return chorus::guard(err, [&] {
      if (sink == nullptr || sink->struct_size < sizeof(chorus_ai_sink) || sink->on_done == nullptr ||
          sink->on_error == nullptr)
        throw chorus::Error(CHORUS_E_INVALID_ARG, "sink must be a complete chorus_ai_sink");
      auto call = std::make_shared<Call>();
      call->kind = kind;
      call->sink = *sink;
      call->up = dialect->build(kind, text, who);
      call->started_ms = engine.now_ms();
      std::string why;
      if (!breaker_admit(call->probe, why)) {
        m_requests.inc(kind_label(kind), "unavailable");
        throw chorus::Error(CHORUS_E_UNAVAILABLE, why);
      }
      const uint32_t limit = s.max_concurrency + s.max_queue;
      if (outstanding.fetch_add(1) >= limit) {
        outstanding.fetch_sub(1);
        breaker_release_probe(*call);
        m_requests.inc(kind_label(kind), "busy");
        throw chorus::Error(CHORUS_E_BUSY, "provider queue full (" + std::to_string(limit) + " requests outstanding)");
      }
      call->id = next_id.fetch_add(1);
      const uint64_t id = call->id;
      if (!engine.post([this, call](bool cancelled) {
            if (cancelled) return finish_err(*call, CHORUS_E_CANCELLED, "provider stopping");
            calls.emplace(call->id, call);
            if (active < s.max_concurrency) {
              launch(call);
            } else {
              call->state = Call::State::queued;
              pending.push_back(call);
              queued_mirror.store(static_cast<uint32_t>(pending.size()));
            }
          })) {
        outstanding.fetch_sub(1);
        breaker_release_probe(*call);
        throw chorus::Error(CHORUS_E_UNAVAILABLE, "provider is stopping");
      }
      if (out_id != nullptr) *out_id = id;
    });
  }

  chorus_status cancel(uint64_t id) {
    if (id == 0 || id >= next_id.load()) return CHORUS_E_NOT_FOUND;
    if (!engine.post([this, id](bool cancelled) {
          if (cancelled) return;
          auto it = calls.find(id);
          if (it == calls.end()) return;
          std::shared_ptr<Call> c = it->second;
          c->cancel_requested = true;
          switch (c->state) {
            case Call::State::running:
              engine.cancel_now(c->transfer_id);  // completes through on_transfer_done
              break;
            case Call::State::queued:
              for (auto p = pending.begin(); p != pending.end(); ++p)
                if (p->get() == c.get()) {
                  pending.erase(p);
                  break;
                }
              queued_mirror.store(static_cast<uint32_t>(pending.size()));
              finish_err(*c, CHORUS_E_CANCELLED, "cancelled");
              break;
            default:
              finish_err(*c, CHORUS_E_CANCELLED, "cancelled");
          }
        }))
      return CHORUS_E_UNAVAILABLE;
    return CHORUS_OK;
  }

  // ---------------------------------------------------------------- engine thread
  class Handler final : public TransferHandler {
   public:
    Handler(Impl *impl, std::shared_ptr<Call> call) : impl_(impl), call_(std::move(call)) {}
    bool on_data(long status, std::string_view bytes) override {
      Call &c = *call_;
      if (c.finished) return false;
      if (status < 200 || status >= 300) {
        if (c.err_body.size() < 65536) c.err_body.append(bytes.substr(0, 65536 - c.err_body.size()));
        return true;
      }
      std::vector<std::string> chunks;
      std::string err;
      const chorus_status st = c.decoder->feed(bytes, chunks, err);
      for (const auto &ch : chunks) {
        c.delivered = true;
        if (c.sink.on_chunk != nullptr) c.sink.on_chunk(c.sink.user, ch.data(), ch.size());
        if (c.finished) return false;
      }
      if (st != CHORUS_OK) {
        c.decode_status = st;
        c.decode_err = err;
        return false;
      }
      return true;
    }
    void on_complete(const TransferResult &r) override { impl_->on_transfer_done(call_, r); }

   private:
    Impl *impl_;
    std::shared_ptr<Call> call_;
  };

  void launch(const std::shared_ptr<Call> &call) {
    ++active;
    active_mirror.store(active);
    m_inflight.set(active);
    call->state = Call::State::running;
    call->decoder = dialect->decoder(call->kind, call->up, who);
    call->err_body.clear();
    call->decode_status = CHORUS_OK;
    call->transfer_id = engine.submit_now(transfer_for(call->up), std::make_shared<Handler>(this, call));
  }

  void pump() {
    while (active < s.max_concurrency && !pending.empty()) {
      auto c = pending.front();
      pending.pop_front();
      if (!c->finished) launch(c);
    }
    queued_mirror.store(static_cast<uint32_t>(pending.size()));
  }

  uint64_t backoff_ms(uint32_t attempt, const std::string &retry_after) {
    uint64_t d = s.retry_base_ms;
    for (uint32_t i = 1; i < attempt && d < s.retry_max_ms; ++i) d *= 2;
    d = std::min(d, s.retry_max_ms);
    std::uniform_int_distribution<uint64_t> jitter(d / 2, d);  // "equal jitter"
    d = jitter(rng);
    if (!retry_after.empty() && retry_after.find_first_not_of("0123456789") == std::string::npos && retry_after.size() < 7)
      d = std::max<uint64_t>(d, std::min<uint64_t>(std::stoull(retry_after) * 1000, s.retry_max_ms));
    return d;
  }

  void on_transfer_done(const std::shared_ptr<Call> &cp, const TransferResult &r) {
    Call &c = *cp;
    --active;
    active_mirror.store(active);
    m_inflight.set(active);
    c.transfer_id = 0;
    if (c.finished) return pump();
    bool retryable = false;
    bool failure = false;  // counts for the breaker
    chorus_status st = CHORUS_OK;
    std::string msg, done;
    switch (r.outcome) {
      case TransferOutcome::cancelled:
        st = CHORUS_E_CANCELLED;
        msg = c.cancel_requested ? "cancelled" : "provider stopping";
        break;
      case TransferOutcome::aborted:
        st = c.decode_status != CHORUS_OK ? c.decode_status : CHORUS_E_PROTOCOL;
        msg = c.decode_err;
        failure = st == CHORUS_E_PROTOCOL;
        break;
      case TransferOutcome::ok:
        if (r.http_status >= 200 && r.http_status < 300) {
          st = c.decoder->finish(done, msg);
          failure = st == CHORUS_E_PROTOCOL;
        } else {
          msg = dialect->error_text(r.http_status, c.err_body);
          st = status_for_http(r.http_status);
          retryable = r.http_status == 429 || r.http_status == 502 || r.http_status == 503 || r.http_status == 504;
          failure = r.http_status >= 500;
        }
        break;
      case TransferOutcome::connect_failed:
        st = CHORUS_E_UNAVAILABLE;
        msg = "cannot connect to " + s.base_url + ": " + r.message;
        retryable = failure = true;
        break;
      case TransferOutcome::connect_timeout:
        st = CHORUS_E_TIMEOUT;
        msg = "connect to " + s.base_url + " timed out after " + std::to_string(s.connect_timeout_ms) + " ms";
        retryable = failure = true;
        break;
      case TransferOutcome::first_byte_timeout:
        st = CHORUS_E_TIMEOUT;
        msg = s.base_url + " sent nothing within " + std::to_string(s.first_byte_timeout_ms) + " ms";
        failure = true;
        break;
      case TransferOutcome::total_timeout:
        st = CHORUS_E_TIMEOUT;
        msg = "request to " + s.base_url + " took longer than " + std::to_string(s.total_timeout_ms) + " ms";
        failure = true;
        break;
      case TransferOutcome::too_large:
        st = CHORUS_E_TOO_LARGE;
        msg = "answer from " + s.base_url + " is larger than " + std::to_string(s.max_response_bytes) + " bytes";
        break;
      case TransferOutcome::io_error:
        st = c.delivered || r.http_status != 0 ? CHORUS_E_PROTOCOL : CHORUS_E_UNAVAILABLE;
        msg = "connection to " + s.base_url + " failed" + (c.delivered ? " mid-stream (truncated answer): " : ": ") + r.message;
        failure = true;
        break;
    }
    if (st == CHORUS_OK) {
      breaker_result(c, true, {});
      finish_ok(c, done);
      return pump();
    }
    if (st != CHORUS_E_CANCELLED) {
      if (failure) breaker_result(c, false, msg);
      else breaker_release_probe(c);
    } else {
      breaker_release_probe(c);
    }
    if (retryable && !c.delivered && !c.cancel_requested && c.attempt < s.max_retries && !breaker_is_open() &&
        engine.running()) {
      ++c.attempt;
      m_retries.inc();
      const uint64_t delay = backoff_ms(c.attempt, r.retry_after);
      if (host.log_enabled(chorus::LogLevel::debug))
        host.debug("retrying request " + std::to_string(c.id) + " in " + std::to_string(delay) + " ms (attempt " +
                   std::to_string(c.attempt + 1) + "): " + msg);
      c.state = Call::State::waiting_retry;
      engine.post(
          [this, cp](bool cancelled) {
            if (cp->finished) return;
            if (cancelled) return finish_err(*cp, CHORUS_E_CANCELLED, "provider stopping");
            if (active < s.max_concurrency) {
              launch(cp);
            } else {
              cp->state = Call::State::queued;
              pending.push_front(cp);
              queued_mirror.store(static_cast<uint32_t>(pending.size()));
            }
          },
          delay);
      return pump();
    }
    if (c.attempt > 0) msg += " (after " + std::to_string(c.attempt + 1) + " attempts)";
    finish_err(c, st, msg);
    pump();
  }

  void settle(Call &c, chorus_status st) {
    c.finished = true;
    calls.erase(c.id);
    outstanding.fetch_sub(1);
    m_requests.inc(kind_label(c.kind), status_label(st));
    m_seconds.observe(kind_label(c.kind), static_cast<double>(engine.now_ms() - c.started_ms) / 1000.0);
  }
  void finish_ok(Call &c, const std::string &done) {
    if (c.finished) return;
    settle(c, CHORUS_OK);
    c.sink.on_done(c.sink.user, done.data(), done.size());
  }
  void finish_err(Call &c, chorus_status st, const std::string &msg) {
    if (c.finished) return;
    breaker_release_probe(c);
    settle(c, st);
    if (st != CHORUS_E_CANCELLED && host.log_enabled(chorus::LogLevel::debug))
      host.debug("request " + std::to_string(c.id) + " failed: " + msg);
    c.sink.on_error(c.sink.user, st, msg.data(), msg.size());
  }

  std::string health_json() {
    json j;
    {
      std::lock_guard lk(bmu);
      const char *b = breaker == Breaker::closed ? "closed" : breaker == Breaker::open ? "open" : "half_open";
      j["breaker"] = b;
      auto [st, msg] = health_locked();
      j["state"] = st == chorus::Health::ok ? "ok" : st == chorus::Health::degraded ? "degraded" : "unhealthy";
      j["reason"] = msg;
      j["consecutive_failures"] = consecutive_failures;
      j["last_error"] = last_error;
      j["probe"] = {{"enabled", s.health_interval_ms != 0}, {"interval_ms", s.health_interval_ms},
                    {"ok", backend_ok}, {"error", backend_error}, {"failed_total", probes_failed},
                    {"age_ms", probe_last_ms == 0 ? json(nullptr) : json(engine.now_ms() - probe_last_ms)}};
    }
    j["inflight"] = active_mirror.load();
    j["queued"] = queued_mirror.load();
    j["outstanding"] = outstanding.load();
    j["max_concurrency"] = s.max_concurrency;
    j["endpoint"] = s.base_url;
    j["default_model"] = s.default_model;
    j["provider"] = who.id;
    j["provider_version"] = who.version;
    j["dialect"] = dialect->name();
    return j.dump();
  }

  // ---------------------------------------------------------------- C table
  static Impl *self(void *p) { return static_cast<Impl *>(p); }
  static chorus_status c_chat(void *p, const char *j, size_t n, const chorus_ai_sink *sink, uint64_t *id,
                              chorus_error *err) noexcept {
    return self(p)->submit(Kind::chat, std::string_view(j ? j : "", j ? n : 0), sink, id, err);
  }
  static chorus_status c_generate(void *p, const char *j, size_t n, const chorus_ai_sink *sink, uint64_t *id,
                                  chorus_error *err) noexcept {
    return self(p)->submit(Kind::generate, std::string_view(j ? j : "", j ? n : 0), sink, id, err);
  }
  static chorus_status c_list_models(void *p, const chorus_ai_sink *sink, uint64_t *id, chorus_error *err) noexcept {
    return self(p)->submit(Kind::models, {}, sink, id, err);
  }
  static chorus_status c_cancel(void *p, uint64_t id) noexcept {
    try {
      return self(p)->cancel(id);
    } catch (...) {
      return CHORUS_E_INTERNAL;
    }
  }
  static chorus_status c_health(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out must not be NULL");
      auto *text = new std::string(self(p)->health_json());
      *out = chorus_buf{text->data(), text->size(), text,
                        [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
    });
  }
};

ProviderPlugin::ProviderPlugin(chorus::Host &host, std::unique_ptr<Dialect> dialect, ProviderSettings settings,
                               std::string metric_prefix)
    : impl_(std::make_unique<Impl>(host, std::move(dialect), std::move(settings), metric_prefix)) {
  auto &s = impl_->s;
  while (!s.base_url.empty() && s.base_url.back() == '/') s.base_url.pop_back();
  if (s.base_url.rfind("http://", 0) != 0 && s.base_url.rfind("https://", 0) != 0)
    throw chorus::Error(CHORUS_E_CONFIG, "endpoint must be an http:// or https:// URL, got '" + s.base_url + "'");
  json info = json::parse(host.host_info(), nullptr, false);
  impl_->who.id = info.is_object() ? info.value("plugin_id", "") : "";
  impl_->who.default_model = s.default_model;
  auto &t = impl_->table;
  t.struct_size = sizeof t;
  t.chat = &Impl::c_chat;
  t.generate = &Impl::c_generate;
  t.list_models = &Impl::c_list_models;
  t.cancel = &Impl::c_cancel;
  t.health = &Impl::c_health;
}

ProviderPlugin::~ProviderPlugin() { impl_->engine.stop(); }

void ProviderPlugin::set_version(std::string v) { impl_->who.version = std::move(v); }

void ProviderPlugin::start() {
  impl_->engine.start();
  impl_->schedule_probe(0);  // the first probe right away, then every health_interval_ms
  impl_->host.info(std::string(impl_->dialect->name()) + " provider ready: " + impl_->s.base_url +
                   (impl_->s.default_model.empty() ? "" : " (default model " + impl_->s.default_model + ")") +
                   (impl_->s.api_key.empty() ? "" : ", API key set (redacted)"));
}

void ProviderPlugin::stop(std::chrono::milliseconds) {
  const uint32_t open = impl_->outstanding.load();
  if (open > 0) impl_->host.info("stopping with " + std::to_string(open) + " requests open; cancelling them");
  impl_->engine.stop();
  // Anything still registered (cannot normally happen: the engine cancels on its way out).
  auto left = impl_->calls;
  for (auto &[id, c] : left) impl_->finish_err(*c, CHORUS_E_CANCELLED, "provider stopping");
  impl_->pending.clear();
}

void ProviderPlugin::drain() {
  impl_->host.info("draining: " + std::to_string(impl_->outstanding.load()) + " requests still open");
}

chorus::ServiceTable ProviderPlugin::service(std::string_view name, uint16_t major) {
  if (name == CHORUS_AI_PROVIDER_SERVICE && major == CHORUS_AI_PROVIDER_V1_MAJOR) return {&impl_->table, impl_.get()};
  return Plugin::service(name, major);
}

}  // namespace chorus::ai_common

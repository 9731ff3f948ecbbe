// The `license` plugin: validates the agent's licence against a licence server before it reports
// started (fail closed), runs on a cached valid answer for a grace period while the server is
// unreachable, revalidates on its own timer behind a circuit breaker, and provides chorus.license v1
// (chorus/services/license_v1.h) so that other plugins can require a licence. See README.md and
// docs/protocols.md ("Licence validation") for the exchange.
//
// The shape: settings.cpp reads the config, protocol.cpp speaks the exchange, client.cpp moves the
// bytes (libcurl), state.cpp decides (pure, on a clock it is given), cache.cpp remembers (SQLite).
// This file glues them to the host: the timer, health, metrics, logs and the service table.
#include <chorus/plugin.hpp>
#include <chorus/services/license_v1.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "cache.hpp"
#include "client.hpp"
#include "protocol.hpp"
#include "settings.hpp"
#include "state.hpp"

namespace chorus::license {
namespace {

using json = nlohmann::json;

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "71h 59m", "4m 10s": how long is left, for health messages.
std::string human_duration(int64_t ms) {
  if (ms < 0) ms = 0;
  const int64_t s = ms / 1000;
  if (s >= 3600) return std::to_string(s / 3600) + "h " + std::to_string(s / 60 % 60) + "m";
  if (s >= 60) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  return std::to_string(s) + "s";
}

std::optional<std::string> process_env(const char *name) {
  const char *v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string host_info_or_empty(chorus::Host &host) {
  try {
    return host.host_info();
  } catch (const chorus::Error &) {
    return "{}";
  }
}

class LicensePlugin final : public chorus::Plugin {
 public:
  LicensePlugin(chorus::Host &host, std::string_view config_json)
      : host_(host),
        s_(parse_settings(config_json, host_info_or_empty(host), &process_env)),
        state_(s_.timing) {
    validations_ = host_.counter("chorus_license_validations_total",
                                 "Licence validation attempts by result (valid, invalid, unreachable)", {"result"});
    breaker_g_ = host_.gauge("chorus_license_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open");
    state_g_ = host_.gauge("chorus_license_state", "Licence state: 0 valid, 1 grace, 2 invalid");
    expiry_g_ = host_.gauge("chorus_license_seconds_until_expiry",
                            "Seconds until the licence expires (negative once expired; 0 when unknown)");
    grace_g_ = host_.gauge("chorus_license_grace_seconds_left", "Seconds of grace left (0 unless in grace)");
    table_.struct_size = sizeof table_;
    table_.status = &LicensePlugin::c_status;
    table_.status_json = &LicensePlugin::c_status_json;
  }

  // Validates before returning: the host starts the plugins that require chorus.license only after
  // this, and does not start them at all when it throws.
  void start() override {
    const std::string dir = s_.state_dir + "/license";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw chorus::Error(CHORUS_E_IO, "cannot create the licence cache directory " + dir + ": " + std::strerror(errno));
    cache_ = std::make_unique<Cache>(dir + "/cache.db");
    if (auto cached = cache_->load(s_.license_id, s_.cluster_id)) state_.restore(std::move(*cached));
    http_global_init();

    {
      std::lock_guard attempt(attempt_mu_);
      attempt_locked(unix_now_ms());
    }
    Snapshot snap = snapshot();
    if (snap.state == State::invalid)
      throw chorus::Error(CHORUS_E_UNAVAILABLE, "licence " + s_.license_id + " is not valid: " + snap.reason);
    if (snap.state == State::grace)
      host_.warn("starting on the cached licence: " + snap.reason + "; grace ends " +
                 format_rfc3339_ms(snap.grace_until) + " (in " + human_duration(snap.grace_until - unix_now_ms()) + ")");
    else
      host_.info("licence " + s_.license_id + " is valid until " + format_rfc3339_ms(snap.expires_at));
    publish(snap, unix_now_ms());

    const int64_t tick = std::max<int64_t>(
        10, std::min({s_.timing.revalidate_interval_ms, s_.timing.retry_interval_ms, s_.timing.open_ms}));
    timer_ = host_.timer(std::chrono::milliseconds(tick), std::chrono::milliseconds(tick), [this] { on_tick(); });
  }

  void stop(std::chrono::milliseconds /*budget*/) override {
    stopping_ = true;  // aborts a validation in flight (client.cpp's progress callback)
    if (timer_ != 0) host_.cancel_timer(timer_);
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_LICENSE_SERVICE && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  struct Snapshot {
    State state;
    Breaker breaker;
    std::string reason;
    int64_t expires_at;
    int64_t grace_until;
    int64_t validated_at;
    std::vector<std::string> features;
  };

  Snapshot snapshot() const {
    std::lock_guard lk(mu_);
    const auto &c = state_.confirmed();
    return Snapshot{state_.state(),      state_.breaker(),
                    state_.reason(),     state_.expires_at(),
                    state_.grace_until(), c ? c->validated_at_unix_ms : 0,
                    c ? c->features : std::vector<std::string>{}};
  }

  // Timer (host worker thread; never concurrent with itself).
  void on_tick() {
    if (stopping_) return;
    std::lock_guard attempt(attempt_mu_);
    const int64_t now = unix_now_ms();
    Change timed;
    bool due = false;
    {
      std::lock_guard lk(mu_);
      timed = state_.on_time(now);
      due = state_.attempt_due(now, &timed);
    }
    // Health first, then the log lines: whoever reads a log line finds the health already changed.
    publish(snapshot(), now);
    report_change(timed);  // expiry, end of grace, the half-open probe
    if (!due) return;
    const Change answered = attempt_locked(now);
    if (stopping_) return;  // no health report after stop() began
    publish(snapshot(), unix_now_ms());
    report_change(answered);
  }

  // One validation: HTTP, classification, state machine, cache. Caller holds attempt_mu_.
  Change attempt_locked(int64_t now) {
    const HttpResult r = post_json(s_.validate_url(),
                                   request_body({s_.license_id, s_.cluster_id, s_.agent_id, s_.version}),
                                   s_.request_timeout_ms, kMaxAnswerBytes, &stopping_);
    if (stopping_) return {};  // aborted by stop(): says nothing about the licence
    const Answer answer = classify_answer(r.status, r.body, r.error, s_.license_id);
    validations_.inc(outcome_name(answer.outcome));
    if (answer.outcome == Outcome::unreachable) host_.debug("licence validation failed: " + answer.reason);
    Change c;
    {
      std::lock_guard lk(mu_);
      c = state_.on_answer(answer, now);
      try {
        if (c.store_confirmation && state_.confirmed()) cache_->store(s_.license_id, s_.cluster_id, *state_.confirmed());
        if (c.forget_confirmation) cache_->forget(s_.license_id, s_.cluster_id);
      } catch (const chorus::Error &e) {
        // The licence itself is decided; only the next restart's grace depends on the cache.
        host_.warn(std::string("licence cache: ") + e.what());
      }
    }
    return c;
  }

  // Logs what changed. Only transitions after start() are logged here; start() reports its own.
  void report_change(const Change &c) {
    const Snapshot snap = snapshot();
    if (c.breaker_changed) {
      if (snap.breaker == Breaker::open)
        host_.warn("licence server circuit breaker open after " + std::to_string(state_failures()) +
                   " consecutive failures; next probe in " + std::to_string(s_.timing.open_ms) + " ms");
      else if (snap.breaker == Breaker::half_open)
        host_.info("licence server circuit breaker half-open: one probe");
      else
        host_.info("licence server circuit breaker closed");
    }
    if (!c.state_changed || !started_reporting_) return;
    switch (snap.state) {
      case State::valid:
        host_.info("licence " + s_.license_id + " is valid again until " + format_rfc3339_ms(snap.expires_at));
        break;
      case State::grace:
        host_.warn(snap.reason + "; grace ends " + format_rfc3339_ms(snap.grace_until));
        break;
      case State::invalid:
        // Fail closed: the plugin turns unhealthy. With `critical: true` the agent's /health is
        // unhealthy (503); the host does not stop the agent by itself (README, "Failing closed").
        host_.error("licence " + s_.license_id + " is no longer valid: " + snap.reason + "; failing closed");
        break;
    }
  }

  uint32_t state_failures() const {
    std::lock_guard lk(mu_);
    return state_.consecutive_failures();
  }

  void publish(const Snapshot &snap, int64_t now) {
    started_reporting_ = true;
    state_g_.set(static_cast<double>(snap.state));
    breaker_g_.set(static_cast<double>(snap.breaker));
    expiry_g_.set(snap.expires_at == 0 ? 0.0 : static_cast<double>(snap.expires_at - now) / 1000.0);
    grace_g_.set(snap.state == State::grace ? static_cast<double>(snap.grace_until - now) / 1000.0 : 0.0);
    switch (snap.state) {
      case State::valid:
        host_.report_health(chorus::Health::ok, "licence valid until " + format_rfc3339_ms(snap.expires_at));
        break;
      case State::grace:
        host_.report_health(chorus::Health::degraded, snap.reason + "; grace ends in " +
                                                          human_duration(snap.grace_until - now) + " (" +
                                                          format_rfc3339_ms(snap.grace_until) + ")");
        break;
      case State::invalid: host_.report_health(chorus::Health::unhealthy, snap.reason); break;
    }
  }

  // ---- chorus.license v1 (any thread, non-blocking) ----
  static chorus_status c_status(void *self, chorus_license_status *out) noexcept {
    constexpr size_t kV1End = offsetof(chorus_license_status, license_id) + sizeof(out->license_id);
    if (out == nullptr || out->struct_size < kV1End) return CHORUS_E_INVALID_ARG;
    auto *p = static_cast<LicensePlugin *>(self);
    if (p->stopping_) return CHORUS_E_UNAVAILABLE;
    try {
      const Snapshot snap = p->snapshot();
      chorus_license_status s{};
      s.struct_size = out->struct_size;
      s.valid = snap.state != State::invalid ? 1 : 0;
      s.state = static_cast<int32_t>(snap.state);
      s.expires_at_unix_ms = snap.expires_at;
      s.grace_until_unix_ms = snap.grace_until;
      s.validated_at_unix_ms = snap.validated_at;
      std::memcpy(s.license_id, p->s_.license_id.data(), std::min(p->s_.license_id.size(), sizeof s.license_id - 1));
      std::memcpy(out, &s, std::min<size_t>(out->struct_size, sizeof s));
      return CHORUS_OK;
    } catch (...) {
      return CHORUS_E_NO_MEMORY;
    }
  }

  static chorus_status c_status_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&]() -> chorus_status {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out is NULL");
      auto *p = static_cast<LicensePlugin *>(self);
      if (p->stopping_) throw chorus::Error(CHORUS_E_UNAVAILABLE, "the license plugin is stopping");
      const Snapshot snap = p->snapshot();
      auto when = [](int64_t ms) { return ms == 0 ? json(nullptr) : json(format_rfc3339_ms(ms)); };
      const json doc = {{"valid", snap.state != State::invalid},
                        {"state", state_name(snap.state)},
                        {"license_id", p->s_.license_id},
                        {"expires_at", when(snap.expires_at)},
                        {"grace_until", when(snap.grace_until)},
                        {"validated_at", when(snap.validated_at)},
                        {"features", snap.features},
                        {"reason", snap.state == State::valid ? std::string() : snap.reason},
                        {"breaker", breaker_name(snap.breaker)}};
      return chorus::give_buf(doc.dump(-1, ' ', false, json::error_handler_t::replace), out);
    });
  }

  chorus::Host &host_;
  const Settings s_;
  mutable std::mutex mu_;      // state_ and cache_ (service calls read from any thread)
  std::mutex attempt_mu_;      // one validation at a time (start, then the timer)
  LicenseState state_;
  std::unique_ptr<Cache> cache_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_reporting_{false};
  uint64_t timer_ = 0;
  chorus_license_v1 table_{};
  chorus::Counter validations_;
  chorus::Gauge breaker_g_, state_g_, expiry_g_, grace_g_;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_LICENSE_SERVICE, 1, 0)};

}  // namespace
}  // namespace chorus::license

CHORUS_PLUGIN(chorus::license::LicensePlugin,
              .id = "license",
              .version = "0.1.0",
              .description = "Licence gate: validates the licence before anything else and fails closed",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = chorus::license::kProvides,
              .config_schema = chorus::license::kConfigSchema);

// LicenseState: what the plugin knows about its licence, as a pure state machine fed with answers
// and with the time (Unix milliseconds). It does no I/O and reads no clock, so the unit tests drive
// it on a fake clock; the plugin (plugin.cpp) does the HTTP, the cache and the reporting around it.
//
// States: valid (the server confirmed the licence at the last attempt), grace (the server is
// unreachable and a cached valid answer is younger than grace_period_ms and not expired), invalid
// (the server refused it, it expired, the grace ran out, or nothing was ever confirmed).
//
// Circuit breaker: after failure_threshold consecutive "unreachable" attempts it opens and no attempt
// is made for open_ms; then one probe is allowed (half-open). A probe that fails reopens it; any
// answer from the server (valid or invalid) closes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace chorus::license {

enum class State { valid, grace, invalid };
enum class Breaker { closed, open, half_open };

const char *state_name(State s) noexcept;
const char *breaker_name(Breaker b) noexcept;

struct Timing {
  int64_t revalidate_interval_ms = 3600000;  // after an answer from the server
  int64_t retry_interval_ms = 30000;         // after an unreachable attempt (breaker closed)
  int64_t grace_period_ms = 72LL * 3600000;  // age limit of a cached valid answer
  uint32_t failure_threshold = 3;            // consecutive failures that open the breaker
  int64_t open_ms = 60000;                   // how long the open breaker refuses attempts
};

// The last valid answer: what the cache (cache.cpp) keeps across restarts.
struct ConfirmedLicense {
  int64_t validated_at_unix_ms = 0;
  int64_t expires_at_unix_ms = 0;
  std::vector<std::string> features;
};

// What changed with one input; the plugin logs and reports from it.
struct Change {
  bool state_changed = false;
  State from = State::invalid;
  bool breaker_changed = false;
  Breaker breaker_from = Breaker::closed;
  // What the plugin must do with the cache: store the new confirmation, or forget it (the server
  // refused the licence: a revoked licence must not come back as a cached one after a restart).
  bool store_confirmation = false;
  bool forget_confirmation = false;
};

class LicenseState {
 public:
  explicit LicenseState(Timing timing) : timing_(timing) {}

  // The cached confirmation found at start (before the first attempt).
  void restore(ConfirmedLicense cached) { confirmed_ = std::move(cached); }

  // Whether an attempt is due at `now`. Opening the half-open probe happens here: when the open
  // period is over this returns true once and moves the breaker to half-open.
  bool attempt_due(int64_t now, Change *change = nullptr);

  // The result of one attempt made at `now`.
  Change on_answer(const Answer &answer, int64_t now);

  // Time passing: the licence expires, the grace period ends.
  Change on_time(int64_t now);

  State state() const noexcept { return state_; }
  Breaker breaker() const noexcept { return breaker_; }
  bool valid() const noexcept { return state_ != State::invalid; }
  // Why the licence is invalid or in grace ("" when valid).
  const std::string &reason() const noexcept { return reason_; }
  const std::optional<ConfirmedLicense> &confirmed() const noexcept { return confirmed_; }
  // End of the grace period (grace only; 0 otherwise): the earlier of the cached answer's age limit
  // and the licence's expiry.
  int64_t grace_until() const noexcept;
  int64_t expires_at() const noexcept { return confirmed_ ? confirmed_->expires_at_unix_ms : 0; }
  uint32_t consecutive_failures() const noexcept { return failures_; }
  // When the open breaker allows the next probe (open only).
  int64_t probe_at() const noexcept { return opened_at_ + timing_.open_ms; }
  const Timing &timing() const noexcept { return timing_; }

 private:
  void set_state(State next, std::string reason, Change *c);
  void set_breaker(Breaker next, Change *c);

  Timing timing_;
  State state_ = State::invalid;
  std::string reason_ = "not validated yet";
  Breaker breaker_ = Breaker::closed;
  uint32_t failures_ = 0;
  int64_t opened_at_ = 0;
  bool attempted_ = false;
  int64_t last_attempt_at_ = 0;
  bool last_attempt_answered_ = false;  // the server answered (valid or invalid)
  bool refused_ = false;                // the last answer from the server was a refusal
  std::optional<ConfirmedLicense> confirmed_;
};

}  // namespace chorus::license

#include "state.hpp"

#include <algorithm>

namespace chorus::license {

const char *state_name(State s) noexcept {
  switch (s) {
    case State::valid: return "valid";
    case State::grace: return "grace";
    case State::invalid: return "invalid";
  }
  return "invalid";
}

const char *breaker_name(Breaker b) noexcept {
  switch (b) {
    case Breaker::closed: return "closed";
    case Breaker::open: return "open";
    case Breaker::half_open: return "half_open";
  }
  return "closed";
}

int64_t LicenseState::grace_until() const noexcept {
  if (state_ != State::grace || !confirmed_) return 0;
  return std::min(confirmed_->validated_at_unix_ms + timing_.grace_period_ms, confirmed_->expires_at_unix_ms);
}

void LicenseState::set_state(State next, std::string reason, Change *c) {
  if (next != state_ && !c->state_changed) {
    c->state_changed = true;
    c->from = state_;
  }
  state_ = next;
  reason_ = std::move(reason);
}

void LicenseState::set_breaker(Breaker next, Change *c) {
  if (next != breaker_ && !c->breaker_changed) {
    c->breaker_changed = true;
    c->breaker_from = breaker_;
  }
  breaker_ = next;
}

bool LicenseState::attempt_due(int64_t now, Change *change) {
  Change ignored;
  Change *c = change != nullptr ? change : &ignored;
  switch (breaker_) {
    case Breaker::open:
      if (now < probe_at()) return false;
      set_breaker(Breaker::half_open, c);
      return true;
    case Breaker::half_open: return false;  // the probe is in flight
    case Breaker::closed: break;
  }
  if (!attempted_) return true;
  const int64_t wait = last_attempt_answered_ ? timing_.revalidate_interval_ms : timing_.retry_interval_ms;
  return now - last_attempt_at_ >= wait;
}

Change LicenseState::on_answer(const Answer &answer, int64_t now) {
  Change c;
  attempted_ = true;
  last_attempt_at_ = now;
  last_attempt_answered_ = answer.outcome != Outcome::unreachable;
  switch (answer.outcome) {
    case Outcome::valid:
      refused_ = false;
      failures_ = 0;
      set_breaker(Breaker::closed, &c);
      if (answer.expires_at_unix_ms <= now) {
        // The server vouches for a licence that has already run out: not a licence to run on.
        confirmed_.reset();
        c.forget_confirmation = true;
        set_state(State::invalid, "the licence expired at " + format_rfc3339_ms(answer.expires_at_unix_ms), &c);
        break;
      }
      confirmed_ = ConfirmedLicense{now, answer.expires_at_unix_ms, answer.features};
      c.store_confirmation = true;
      set_state(State::valid, "", &c);
      break;
    case Outcome::invalid:
      refused_ = true;
      failures_ = 0;
      set_breaker(Breaker::closed, &c);
      confirmed_.reset();
      c.forget_confirmation = true;
      set_state(State::invalid, "the licence server refused the licence: " + answer.reason, &c);
      break;
    case Outcome::unreachable: {
      ++failures_;
      if (breaker_ == Breaker::half_open || failures_ >= timing_.failure_threshold) {
        opened_at_ = now;
        set_breaker(Breaker::open, &c);
      }
      const bool cached_ok = confirmed_ && now < confirmed_->validated_at_unix_ms + timing_.grace_period_ms &&
                             now < confirmed_->expires_at_unix_ms;
      if (cached_ok)
        set_state(State::grace, "licence server unreachable (" + answer.reason + "); running on the cached licence", &c);
      else if (refused_)
        set_state(State::invalid, reason_, &c);  // the server's refusal stays the reason
      else
        set_state(State::invalid,
                  "licence server unreachable and no valid cached licence (" + answer.reason + ")", &c);
      break;
    }
  }
  return c;
}

Change LicenseState::on_time(int64_t now) {
  Change c;
  if (state_ == State::valid && confirmed_ && now >= confirmed_->expires_at_unix_ms) {
    set_state(State::invalid, "the licence expired at " + format_rfc3339_ms(confirmed_->expires_at_unix_ms), &c);
  } else if (state_ == State::grace && now >= grace_until()) {
    const bool expired = confirmed_ && now >= confirmed_->expires_at_unix_ms;
    set_state(State::invalid,
              expired ? "the licence expired at " + format_rfc3339_ms(confirmed_->expires_at_unix_ms) +
                            " while the licence server was unreachable"
                      : std::string("grace period ended: the licence server has been unreachable since the last "
                                    "validation at ") +
                            format_rfc3339_ms(confirmed_->validated_at_unix_ms),
              &c);
  }
  return c;
}

}  // namespace chorus::license

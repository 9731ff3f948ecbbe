// LicenseState on a fake clock: the start decision, grace, expiry and the circuit breaker.
#include <gtest/gtest.h>

#include "state.hpp"

namespace chorus::license {
namespace {

constexpr int64_t kHour = 3600000;
constexpr int64_t kT0 = 1800000000000;  // 2027-01-15, the fake clock's start

Timing timing() {
  Timing t;
  t.revalidate_interval_ms = kHour;
  t.retry_interval_ms = 30000;
  t.grace_period_ms = 72 * kHour;
  t.failure_threshold = 3;
  t.open_ms = 60000;
  return t;
}

Answer valid(int64_t expires_at) {
  Answer a;
  a.outcome = Outcome::valid;
  a.expires_at_unix_ms = expires_at;
  a.features = {"p2p"};
  return a;
}
Answer invalid(std::string reason) {
  Answer a;
  a.outcome = Outcome::invalid;
  a.reason = std::move(reason);
  return a;
}
Answer unreachable() {
  Answer a;
  a.outcome = Outcome::unreachable;
  a.reason = "Connection refused";
  return a;
}

TEST(LicenseState, NothingConfirmedIsInvalid) {
  LicenseState s(timing());
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_TRUE(s.attempt_due(kT0));
}

TEST(LicenseState, AValidAnswerIsValidAndStored) {
  LicenseState s(timing());
  const Change c = s.on_answer(valid(kT0 + 1000 * kHour), kT0);
  EXPECT_EQ(s.state(), State::valid);
  EXPECT_TRUE(c.state_changed);
  EXPECT_TRUE(c.store_confirmation);
  EXPECT_EQ(s.expires_at(), kT0 + 1000 * kHour);
  EXPECT_FALSE(s.attempt_due(kT0 + kHour - 1));
  EXPECT_TRUE(s.attempt_due(kT0 + kHour));
}

TEST(LicenseState, ARefusalIsInvalidAndForgetsTheCache) {
  LicenseState s(timing());
  s.restore({kT0 - kHour, kT0 + 1000 * kHour, {}});
  const Change c = s.on_answer(invalid("licence revoked"), kT0);
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_TRUE(c.forget_confirmation);
  EXPECT_NE(s.reason().find("licence revoked"), std::string::npos);
  // The server then goes away: the refusal stays the verdict, the old cache does not come back.
  s.on_answer(unreachable(), kT0 + kHour);
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_NE(s.reason().find("licence revoked"), std::string::npos);
}

TEST(LicenseState, AValidAnswerThatHasExpiredIsInvalid) {
  LicenseState s(timing());
  s.on_answer(valid(kT0 - 1), kT0);
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_NE(s.reason().find("expired"), std::string::npos);
}

TEST(LicenseState, UnreachableAtStartUsesAFreshCache) {
  LicenseState s(timing());
  s.restore({kT0 - 10 * kHour, kT0 + 1000 * kHour, {}});
  s.on_answer(unreachable(), kT0);
  EXPECT_EQ(s.state(), State::grace);
  EXPECT_TRUE(s.valid());
  EXPECT_EQ(s.grace_until(), kT0 + 62 * kHour);  // validated 10 h ago, 72 h of grace
}

TEST(LicenseState, UnreachableAtStartWithAStaleOrNoCacheIsInvalid) {
  {
    LicenseState s(timing());
    s.on_answer(unreachable(), kT0);
    EXPECT_EQ(s.state(), State::invalid);
    EXPECT_NE(s.reason().find("unreachable and no valid cached licence"), std::string::npos);
  }
  {
    LicenseState s(timing());
    s.restore({kT0 - 73 * kHour, kT0 + 1000 * kHour, {}});  // older than the grace period
    s.on_answer(unreachable(), kT0);
    EXPECT_EQ(s.state(), State::invalid);
  }
  {
    LicenseState s(timing());
    s.restore({kT0 - kHour, kT0 - 1, {}});  // young, but the licence itself has expired
    s.on_answer(unreachable(), kT0);
    EXPECT_EQ(s.state(), State::invalid);
  }
}

TEST(LicenseState, GraceEndsAtTheEarlierOfItsLimitAndTheExpiry) {
  LicenseState s(timing());
  s.on_answer(valid(kT0 + 1000 * kHour), kT0);
  s.on_answer(unreachable(), kT0 + kHour);
  ASSERT_EQ(s.state(), State::grace);
  EXPECT_EQ(s.grace_until(), kT0 + 72 * kHour);
  EXPECT_FALSE(s.on_time(kT0 + 72 * kHour - 1).state_changed);
  const Change c = s.on_time(kT0 + 72 * kHour);
  EXPECT_TRUE(c.state_changed);
  EXPECT_EQ(c.from, State::grace);
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_NE(s.reason().find("grace period ended"), std::string::npos);

  LicenseState e(timing());
  e.on_answer(valid(kT0 + 5 * kHour), kT0);
  e.on_answer(unreachable(), kT0 + kHour);
  EXPECT_EQ(e.grace_until(), kT0 + 5 * kHour);
  e.on_time(kT0 + 5 * kHour);
  EXPECT_EQ(e.state(), State::invalid);
  EXPECT_NE(e.reason().find("expired"), std::string::npos);
}

TEST(LicenseState, AValidLicenceExpiresWithTime) {
  LicenseState s(timing());
  s.on_answer(valid(kT0 + 2 * kHour), kT0);
  EXPECT_FALSE(s.on_time(kT0 + 2 * kHour - 1).state_changed);
  EXPECT_TRUE(s.on_time(kT0 + 2 * kHour).state_changed);
  EXPECT_EQ(s.state(), State::invalid);
}

TEST(LicenseState, BreakerOpensAfterTheThresholdAndHalfOpensForOneProbe) {
  LicenseState s(timing());
  s.on_answer(valid(kT0 + 1000 * kHour), kT0);
  int64_t now = kT0 + kHour;
  ASSERT_TRUE(s.attempt_due(now));
  s.on_answer(unreachable(), now);
  EXPECT_EQ(s.breaker(), Breaker::closed);
  EXPECT_FALSE(s.attempt_due(now + 29999));  // retry_interval_ms after a failure
  now += 30000;
  ASSERT_TRUE(s.attempt_due(now));
  s.on_answer(unreachable(), now);
  now += 30000;
  ASSERT_TRUE(s.attempt_due(now));
  const Change opened = s.on_answer(unreachable(), now);
  EXPECT_TRUE(opened.breaker_changed);
  EXPECT_EQ(s.breaker(), Breaker::open);
  EXPECT_EQ(s.state(), State::grace);  // the breaker never decides the licence by itself

  // Open: nothing for open_ms, however often asked.
  for (int64_t t = now; t < now + 60000; t += 1000) EXPECT_FALSE(s.attempt_due(t)) << t - now;
  // Then one probe.
  Change half;
  EXPECT_TRUE(s.attempt_due(now + 60000, &half));
  EXPECT_TRUE(half.breaker_changed);
  EXPECT_EQ(s.breaker(), Breaker::half_open);
  EXPECT_FALSE(s.attempt_due(now + 60001));
  // The probe fails: open again for a full period.
  s.on_answer(unreachable(), now + 60000);
  EXPECT_EQ(s.breaker(), Breaker::open);
  EXPECT_FALSE(s.attempt_due(now + 119999));
  ASSERT_TRUE(s.attempt_due(now + 120000));
  // The server answers: closed, valid, back to the long interval.
  s.on_answer(valid(kT0 + 1000 * kHour), now + 120000);
  EXPECT_EQ(s.breaker(), Breaker::closed);
  EXPECT_EQ(s.state(), State::valid);
  EXPECT_EQ(s.consecutive_failures(), 0u);
  EXPECT_FALSE(s.attempt_due(now + 120000 + 30000));
}

TEST(LicenseState, ARefusalDuringGraceIsInvalidAtOnce) {
  LicenseState s(timing());
  s.on_answer(valid(kT0 + 1000 * kHour), kT0);
  s.on_answer(unreachable(), kT0 + kHour);
  ASSERT_EQ(s.state(), State::grace);
  s.on_answer(invalid("revoked"), kT0 + 2 * kHour);
  EXPECT_EQ(s.state(), State::invalid);
  EXPECT_FALSE(s.confirmed().has_value());
}

}  // namespace
}  // namespace chorus::license

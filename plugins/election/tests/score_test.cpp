// score_test: the five components and their weighted sum (core/score).
#include "core/score.hpp"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

using namespace chorus::election;

TEST(Score, DefaultWeightsSumToOneAndWeighEachComponent) {
  const ScoreWeights w;
  EXPECT_DOUBLE_EQ(w.uptime + w.capabilities + w.resources + w.network + w.experience, 1.0);
  ScoreComponents c;
  c.uptime = 1;
  EXPECT_DOUBLE_EQ(weighted_score(c, w), 0.30);
  c = {};
  c.capabilities = 1;
  EXPECT_DOUBLE_EQ(weighted_score(c, w), 0.20);
  c = {};
  c.resources = 1;
  EXPECT_DOUBLE_EQ(weighted_score(c, w), 0.20);
  c = {};
  c.network = 1;
  EXPECT_DOUBLE_EQ(weighted_score(c, w), 0.15);
  c = {};
  c.experience = 1;
  EXPECT_DOUBLE_EQ(weighted_score(c, w), 0.15);
  EXPECT_DOUBLE_EQ(weighted_score({1, 1, 1, 1, 1}, w), 1.0);
  EXPECT_DOUBLE_EQ(weighted_score({}, w), 0.0);
}

TEST(Score, WeightsAreNormalisedBySum) {
  const ScoreWeights w{2, 0, 0, 2, 0};  // uptime and network only, equally
  EXPECT_DOUBLE_EQ(weighted_score({1, 1, 1, 0, 1}, w), 0.5);
  EXPECT_DOUBLE_EQ(weighted_score({0.5, 0, 0, 0.5, 0}, w), 0.5);
}

TEST(Score, AllZeroOrUnusableWeightsGiveZero) {
  EXPECT_EQ(weighted_score({1, 1, 1, 1, 1}, ScoreWeights{0, 0, 0, 0, 0}), 0.0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(weighted_score({1, 1, 1, 1, 1}, ScoreWeights{-1, nan, inf, -inf, 0}), 0.0);
  // A negative weight counts as 0 instead of pushing the score out of [0, 1].
  EXPECT_DOUBLE_EQ(weighted_score({1, 0, 0, 0, 0}, ScoreWeights{1, -5, 0, 0, 0}), 1.0);
}

TEST(Score, ComponentsOutsideTheUnitRangeAreClamped) {
  const ScoreWeights w;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_DOUBLE_EQ(weighted_score({5, 5, 5, 5, 5}, w), 1.0);
  EXPECT_DOUBLE_EQ(weighted_score({-3, -3, -3, -3, -3}, w), 0.0);
  EXPECT_DOUBLE_EQ(weighted_score({nan, 1, 1, 1, 1}, w), 0.70);
}

TEST(Score, UptimeAndExperienceSaturate) {
  ScoreInputs in;
  in.uptime_ms = 1800000;  // half an hour of the default hour
  in.admin_ms_total = 3 * 86400000ULL;
  auto c = compute_components(in);
  EXPECT_DOUBLE_EQ(c.uptime, 0.5);
  EXPECT_DOUBLE_EQ(c.experience, 1.0);
  in.uptime_ms = 10 * 3600000ULL;
  in.admin_ms_total = 21600000;  // a quarter day
  c = compute_components(in);
  EXPECT_DOUBLE_EQ(c.uptime, 1.0);
  EXPECT_DOUBLE_EQ(c.experience, 0.25);
  in.uptime_full_ms = 0;  // a zero scale saturates at once instead of dividing by zero
  in.experience_full_ms = 0;
  c = compute_components(in);
  EXPECT_DOUBLE_EQ(c.uptime, 1.0);
  EXPECT_DOUBLE_EQ(c.experience, 1.0);
}

TEST(Score, CapabilitiesCountTheAdminDutiesOnce) {
  ScoreInputs in;
  EXPECT_DOUBLE_EQ(compute_components(in).capabilities, 0.0);
  in.capabilities = {"admin", "keys", "unknown", "keys"};
  EXPECT_DOUBLE_EQ(compute_components(in).capabilities, 0.5);
  in.capabilities = {"admin", "coordination", "context", "keys", "gpu"};
  EXPECT_DOUBLE_EQ(compute_components(in).capabilities, 1.0);
}

TEST(Score, ResourcesAverageMemoryAndIdleCpu) {
  ScoreInputs in;
  in.mem_available_fraction = 0.8;
  in.cpu_idle_fraction = 0.4;
  EXPECT_DOUBLE_EQ(compute_components(in).resources, 0.6);
  in.mem_available_fraction = 7;
  in.cpu_idle_fraction = -2;  // load above the core count
  EXPECT_DOUBLE_EQ(compute_components(in).resources, 0.5);
}

TEST(Score, NetworkIsMembersHeardOverQuorum) {
  ScoreInputs in;
  in.quorum = 3;
  in.members_heard = 2;
  EXPECT_NEAR(compute_components(in).network, 2.0 / 3.0, 1e-12);
  in.members_heard = 5;
  EXPECT_DOUBLE_EQ(compute_components(in).network, 1.0);
  in.quorum = 0;
  in.members_heard = 0;
  EXPECT_DOUBLE_EQ(compute_components(in).network, 1.0);
}

TEST(Score, ComputedScoreStaysInUnitRange) {
  ScoreInputs in;
  in.uptime_ms = UINT64_MAX;
  in.capabilities = {"admin", "coordination", "context", "keys"};
  in.mem_available_fraction = 1;
  in.cpu_idle_fraction = 1;
  in.members_heard = 9;
  in.quorum = 3;
  in.admin_ms_total = UINT64_MAX;
  const double s = weighted_score(compute_components(in), ScoreWeights{});
  EXPECT_DOUBLE_EQ(s, 1.0);
}

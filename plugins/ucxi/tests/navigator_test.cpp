// resolve_version: every temporal type against the bounds of a version list.
#include <gtest/gtest.h>

#include "navigator.hpp"

namespace chorus::ucxi {
namespace {

using ucxl::Direction;
using ucxl::TemporalSegment;
using ucxl::TemporalType;

TemporalSegment latest() { return {TemporalType::kLatest, Direction::kNone, 0}; }
TemporalSegment any() { return {TemporalType::kAny, Direction::kNone, 0}; }
TemporalSegment version(uint64_t n) { return {TemporalType::kSpecific, Direction::kNone, n}; }
TemporalSegment back(uint64_t n) { return {TemporalType::kRelative, Direction::kBackward, n}; }
TemporalSegment forward(uint64_t n) { return {TemporalType::kRelative, Direction::kForward, n}; }

struct Case {
  const char *name;
  TemporalSegment t;
  uint64_t count, from;
  NavigateError error;
  uint64_t version;
};

TEST(Navigator, Table) {
  const Case cases[] = {
      {"latest of 3", latest(), 3, 0, NavigateError::kNone, 3},
      {"latest ignores from", latest(), 3, 1, NavigateError::kNone, 3},
      {"any is the newest", any(), 3, 0, NavigateError::kNone, 3},
      {"latest of none", latest(), 0, 0, NavigateError::kNoVersions, 0},
      {"version of none", version(1), 0, 0, NavigateError::kNoVersions, 0},
      {"relative of none", back(1), 0, 0, NavigateError::kNoVersions, 0},
      {"version 1", version(1), 3, 0, NavigateError::kNone, 1},
      {"version 3 of 3", version(3), 3, 0, NavigateError::kNone, 3},
      {"version 4 of 3", version(4), 3, 0, NavigateError::kOutOfRange, 0},
      {"version 0", version(0), 3, 0, NavigateError::kOutOfRange, 0},
      {"version huge", version(UINT64_MAX), 3, 0, NavigateError::kOutOfRange, 0},
      {"1 back from latest", back(1), 3, 0, NavigateError::kNone, 2},
      {"2 back from latest", back(2), 3, 0, NavigateError::kNone, 1},
      {"3 back from latest of 3", back(3), 3, 0, NavigateError::kOutOfRange, 0},
      {"back huge", back(UINT64_MAX), 3, 0, NavigateError::kOutOfRange, 0},
      {"1 back from 2", back(1), 3, 2, NavigateError::kNone, 1},
      {"1 back from 1", back(1), 3, 1, NavigateError::kOutOfRange, 0},
      {"1 forward from latest", forward(1), 3, 0, NavigateError::kOutOfRange, 0},
      {"1 forward from 1", forward(1), 3, 1, NavigateError::kNone, 2},
      {"2 forward from 1", forward(2), 3, 1, NavigateError::kNone, 3},
      {"3 forward from 1", forward(3), 3, 1, NavigateError::kOutOfRange, 0},
      {"forward huge from 1", forward(UINT64_MAX), 3, 1, NavigateError::kOutOfRange, 0},
      {"from past the versions", back(1), 3, 4, NavigateError::kOutOfRange, 0},
      {"forward 0 steps", forward(0), 3, 1, NavigateError::kOutOfRange, 0},
      {"one version, back", back(1), 1, 0, NavigateError::kOutOfRange, 0},
  };
  for (const Case &c : cases) {
    const NavigateResult r = resolve_version(c.t, c.count, c.from);
    EXPECT_EQ(r.error, c.error) << c.name;
    EXPECT_EQ(r.version, c.version) << c.name;
    if (c.error == NavigateError::kNone) {
      EXPECT_TRUE(r.message.empty()) << c.name;
    } else {
      EXPECT_FALSE(r.message.empty()) << c.name;
    }
  }
}

TEST(Navigator, MessagesSayWhy) {
  EXPECT_EQ(resolve_version(version(7), 3).message, "version 7 requested, 3 versions exist");
  EXPECT_EQ(resolve_version(version(2), 1).message, "version 2 requested, 1 version exists");
  EXPECT_NE(resolve_version(back(5), 3).message.find("before version 1"), std::string::npos);
  EXPECT_NE(resolve_version(forward(1), 3, 3).message.find("past version 3"), std::string::npos);
}

}  // namespace
}  // namespace chorus::ucxi

// Versions, precedence and the range grammar (host/src/semver.hpp).
#include "semver.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace chorus::host {

// Readable failure output for EXPECT_EQ on versions (found by argument-dependent lookup).
static void PrintTo(const Version &version, std::ostream *os) { *os << to_string(version); }

namespace {

Version v(const char *text) {
  std::optional<Version> parsed = parse_version(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Version{});
}

// ---- parse_version ------------------------------------------------------------------------------

TEST(SemverParse, FullAndPartialVersions) {
  EXPECT_EQ(v("1.2.3"), (Version{1, 2, 3, ""}));
  EXPECT_EQ(v("1.2"), (Version{1, 2, 0, ""}));
  EXPECT_EQ(v("1"), (Version{1, 0, 0, ""}));
  EXPECT_EQ(v("0.0.0"), (Version{0, 0, 0, ""}));
  EXPECT_EQ(v("10.20.30"), (Version{10, 20, 30, ""}));
  EXPECT_EQ(v("4294967295.4294967295.4294967295"), (Version{4294967295u, 4294967295u, 4294967295u, ""}));
}

TEST(SemverParse, PrereleaseAndBuildMetadata) {
  EXPECT_EQ(v("1.2.3-rc.1"), (Version{1, 2, 3, "rc.1"}));
  EXPECT_EQ(v("1.0.0-0"), (Version{1, 0, 0, "0"}));
  EXPECT_EQ(v("1.0.0-alpha-1.x-y"), (Version{1, 0, 0, "alpha-1.x-y"}));
  EXPECT_EQ(v("1.0.0--"), (Version{1, 0, 0, "-"}));
  // Build metadata is accepted and dropped; its identifiers may have leading zeros.
  EXPECT_EQ(v("1.2.3+build.5"), (Version{1, 2, 3, ""}));
  EXPECT_EQ(v("1.2.3+001"), (Version{1, 2, 3, ""}));
  EXPECT_EQ(v("1.0.0-alpha+exp.sha.5114f85"), (Version{1, 0, 0, "alpha"}));
  // The first '-' before any '+' starts the prerelease; hyphens are ordinary identifier characters.
  EXPECT_EQ(v("1.0.0-rc-1+b-2"), (Version{1, 0, 0, "rc-1"}));
}

TEST(SemverParse, RejectsMalformedVersions) {
  for (const char *bad : {"", " 1.2.3", "1.2.3 ", "v1.2.3", "1.2.3.4", "1.", ".1", "1..2", "a.b.c", "-1", "+1",
                          "01.2.3", "1.02.3", "1.2.03", "00", "4294967296", "99999999999999999999.0.0",
                          "1.2-rc", "1-rc", "1.2+b", "1.2.3-", "1.2.3+", "1.2.3-rc..1", "1.2.3-.rc",
                          "1.2.3-rc.", "1.2.3-01", "1.2.3-rc.00", "1.2.3-rc!", "1.2.3+a..b", "1.2.3+a_b", "x",
                          "1.x", "1.2.*", "*", "^1.2.3", ">=1", "1,2,3"}) {
    EXPECT_FALSE(parse_version(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(SemverToString, RoundTrips) {
  EXPECT_EQ(to_string(Version{1, 2, 3, ""}), "1.2.3");
  EXPECT_EQ(to_string(Version{0, 0, 0, "rc.1"}), "0.0.0-rc.1");
  EXPECT_EQ(to_string(v("1.2")), "1.2.0");
  EXPECT_EQ(to_string(v("1.2.3-beta.11+sha.1")), "1.2.3-beta.11");
  EXPECT_EQ(to_string(v("4294967295.0.1")), "4294967295.0.1");
}

// ---- precedence ---------------------------------------------------------------------------------

TEST(SemverCompare, SpecPrecedenceChain) {
  // The example chain of semver 2.0 §11, extended with release numbers.
  const std::vector<Version> ascending = {
      v("0.9.99"),        v("1.0.0-0"),        v("1.0.0-1"),          v("1.0.0-2"),    v("1.0.0-10"),
      v("1.0.0-alpha"),   v("1.0.0-alpha.1"),  v("1.0.0-alpha.beta"), v("1.0.0-beta"), v("1.0.0-beta.2"),
      v("1.0.0-beta.11"), v("1.0.0-rc.1"),     v("1.0.0"),            v("1.0.1"),      v("1.1.0"),
      v("1.10.0"),        v("2.0.0-rc.1"),     v("2.0.0")};
  for (size_t i = 0; i < ascending.size(); ++i) {
    EXPECT_EQ(compare(ascending[i], ascending[i]), 0) << to_string(ascending[i]);
    for (size_t j = i + 1; j < ascending.size(); ++j) {
      EXPECT_EQ(compare(ascending[i], ascending[j]), -1) << to_string(ascending[i]) << " vs " << to_string(ascending[j]);
      EXPECT_EQ(compare(ascending[j], ascending[i]), 1) << to_string(ascending[j]) << " vs " << to_string(ascending[i]);
    }
  }
}

TEST(SemverCompare, NumericIdentifiersCompareNumericallyAtAnyLength) {
  EXPECT_LT(compare(v("1.0.0-9"), v("1.0.0-10")), 0);
  EXPECT_LT(compare(v("1.0.0-99999999999999999999"), v("1.0.0-100000000000000000000")), 0);
  EXPECT_LT(compare(v("1.0.0-99999999999999999999"), v("1.0.0-a")), 0);  // numeric < alphanumeric
  EXPECT_LT(compare(v("1.0.0-A"), v("1.0.0-a")), 0);                     // ASCII order
  EXPECT_LT(compare(v("1.0.0-alpha"), v("1.0.0-alpha.0")), 0);           // more identifiers win a tie
  EXPECT_GT(compare(v("1.0.0-rc-1"), v("1.0.0-rc.1")), 0);               // "rc-1" is one identifier, > "rc"
}

TEST(SemverCompare, BuildMetadataDoesNotAffectPrecedence) {
  EXPECT_EQ(compare(v("1.0.0+a"), v("1.0.0+b")), 0);
  EXPECT_EQ(v("1.0.0+a"), v("1.0.0"));
}

TEST(SemverCompare, OperatorsFollowPrecedenceNotStringOrder) {
  // A defaulted <=> would compare "" < "rc" and rank the release below its prerelease.
  EXPECT_LT(v("1.0.0-rc.1"), v("1.0.0"));
  EXPECT_GT(v("1.0.0"), v("1.0.0-rc.1"));
  EXPECT_LT(v("1.0.0-beta.2"), v("1.0.0-beta.11"));
  EXPECT_NE(v("1.0.0-beta.2"), v("1.0.0-beta.11"));
  // Equal precedence from two different texts (build metadata does not count): <= and <=> must say equal.
  EXPECT_LE(v("1.2.3"), v("1.2.3+build.7"));
  EXPECT_GE(v("1.2.3"), v("1.2.3+build.7"));
  EXPECT_EQ(v("1.2.3") <=> v("1.2.3+build.7"), std::strong_ordering::equal);
  std::vector<Version> versions = {v("1.0.0"), v("1.0.0-rc.1"), v("0.1.0"), v("1.0.0-alpha")};
  std::sort(versions.begin(), versions.end());
  EXPECT_EQ(versions, (std::vector<Version>{v("0.1.0"), v("1.0.0-alpha"), v("1.0.0-rc.1"), v("1.0.0")}));
}

// ---- ranges -------------------------------------------------------------------------------------

struct Case {
  const char *range;
  const char *version;
  bool matches;
};

void check(const std::vector<Case> &cases) {
  for (const Case &c : cases) {
    std::string error;
    std::optional<VersionRange> range = VersionRange::parse(c.range, &error);
    ASSERT_TRUE(range.has_value()) << "'" << c.range << "': " << error;
    EXPECT_EQ(range->matches(v(c.version)), c.matches) << "'" << c.range << "' vs " << c.version;
  }
}

TEST(VersionRange, Wildcards) {
  check({{"*", "0.0.0", true},
         {"*", "123.4.5", true},
         {"x", "1.2.3", true},
         {"X", "1.2.3", true},
         {"=*", "1.2.3", true},
         {">=*", "0.0.0", true},
         {"<=x", "9.9.9", true},
         {"^*", "3.0.0", true},
         {"~x", "3.0.0", true},
         // Nothing is above or below "any version".
         {">*", "0.0.0", false},
         {">*", "99.0.0", false},
         {"<*", "0.0.0", false}});
}

TEST(VersionRange, ExactAndPartialVersions) {
  check({{"1.2.3", "1.2.3", true},
         {"1.2.3", "1.2.4", false},
         {"1.2.3", "1.2.2", false},
         {"=1.2.3", "1.2.3", true},
         {"=1.2.3", "1.3.0", false},
         {"1.2.3+build", "1.2.3", true},
         {"1.2", "1.2.0", true},
         {"1.2", "1.2.99", true},
         {"1.2", "1.3.0", false},
         {"1.2", "1.1.9", false},
         {"=1.2", "1.2.7", true},
         {"1", "1.0.0", true},
         {"1", "1.99.99", true},
         {"1", "2.0.0", false},
         {"1", "0.9.9", false},
         {"0", "0.5.0", true},
         {"0", "1.0.0", false}});
}

TEST(VersionRange, XRanges) {
  check({{"1.x", "1.0.0", true},
         {"1.x", "1.9.3", true},
         {"1.x", "2.0.0", false},
         {"1.X", "1.5.0", true},
         {"1.*", "0.9.0", false},
         {"1.x.x", "1.4.4", true},
         {"1.2.x", "1.2.0", true},
         {"1.2.x", "1.2.9", true},
         {"1.2.x", "1.3.0", false},
         {"1.2.*", "1.1.0", false}});
}

TEST(VersionRange, Caret) {
  check({{"^1.2.3", "1.2.3", true},
         {"^1.2.3", "1.9.9", true},
         {"^1.2.3", "1.2.2", false},
         {"^1.2.3", "2.0.0", false},
         {"^0.2.3", "0.2.3", true},  // ^0.2.3 := >=0.2.3 <0.3.0
         {"^0.2.3", "0.2.9", true},
         {"^0.2.3", "0.3.0", false},
         {"^0.2.3", "0.2.2", false},
         {"^0.0.3", "0.0.3", true},  // ^0.0.3 := =0.0.3
         {"^0.0.3", "0.0.4", false},
         {"^0.0.3", "0.0.2", false},
         {"^1.2", "1.2.0", true},  // ^1.2 := >=1.2.0 <2.0.0
         {"^1.2", "1.9.0", true},
         {"^1.2", "1.1.9", false},
         {"^1.2", "2.0.0", false},
         {"^1", "1.0.0", true},
         {"^1", "1.99.0", true},
         {"^1", "2.0.0", false},
         {"^1", "0.9.0", false},
         {"^0", "0.0.0", true},  // ^0 := <1.0.0
         {"^0", "0.9.9", true},
         {"^0", "1.0.0", false},
         {"^0.0", "0.0.9", true},  // ^0.0 := <0.1.0
         {"^0.0", "0.1.0", false},
         {"^0.1", "0.1.9", true},
         {"^0.1", "0.2.0", false},
         {"^0.0.x", "0.0.5", true},
         {"^0.0.x", "0.1.0", false},
         {"^1.x", "1.5.0", true},
         {"^1.x", "2.0.0", false},
         {"^ 1.2", "1.4.0", true}});  // an operator may be separated from its version
}

TEST(VersionRange, Tilde) {
  check({{"~1.2.3", "1.2.3", true},
         {"~1.2.3", "1.2.9", true},
         {"~1.2.3", "1.2.2", false},
         {"~1.2.3", "1.3.0", false},
         {"~1.2", "1.2.0", true},
         {"~1.2", "1.2.9", true},
         {"~1.2", "1.3.0", false},
         {"~1", "1.0.0", true},
         {"~1", "1.9.0", true},
         {"~1", "2.0.0", false},
         {"~0.2.3", "0.2.5", true},
         {"~0.2.3", "0.3.0", false},
         {"~0", "0.9.0", true},
         {"~0", "1.0.0", false}});
}

TEST(VersionRange, Comparators) {
  check({{">=1.2.3", "1.2.3", true},
         {">=1.2.3", "1.2.2", false},
         {">=1.2", "1.2.0", true},
         {">=1.2", "1.1.9", false},
         {">=1.2", "9.0.0", true},
         {">1.2.3", "1.2.3", false},
         {">1.2.3", "1.2.4", true},
         {">1.2", "1.2.9", false},  // >1.2 := >=1.3.0
         {">1.2", "1.3.0", true},
         {">1", "1.9.9", false},
         {">1", "2.0.0", true},
         {"<=1.2.3", "1.2.3", true},
         {"<=1.2.3", "1.2.4", false},
         {"<=1.2", "1.2.99", true},  // <=1.2 := <1.3.0
         {"<=1.2", "1.3.0", false},
         {"<=1", "1.9.9", true},
         {"<=1", "2.0.0", false},
         {"<1.2.3", "1.2.2", true},
         {"<1.2.3", "1.2.3", false},
         {"<1.2", "1.1.9", true},
         {"<1.2", "1.2.0", false},
         {"<2", "1.99.99", true},
         {"<2", "2.0.0", false},
         {"<0.0.1", "0.0.0", true}});
}

TEST(VersionRange, IntersectionsAndAlternatives) {
  check({{">=1.2 <2", "1.2.0", true},
         {">=1.2 <2", "1.99.0", true},
         {">=1.2 <2", "2.0.0", false},
         {">=1.2 <2", "1.1.0", false},
         {">= 1.2   < 2", "1.5.0", true},  // operators followed by spaces, runs of spaces
         {"\t>=1.2\t<2 ", "1.5.0", true},
         {"  ^1.2  ", "1.2.0", true},
         {">=1.2.3 <1.0.0", "1.2.3", false},  // empty intersection
         {"1.2 || 2.x", "1.2.5", true},
         {"1.2 || 2.x", "2.4.0", true},
         {"1.2 || 2.x", "1.3.0", false},
         {"1.2 || 2.x", "3.0.0", false},
         {"1.2||2", "2.0.0", true},
         {"<1 || >=3", "0.5.0", true},
         {"<1 || >=3", "2.0.0", false},
         {"<1 || >=3", "3.0.0", true},
         {"^1 || ^2 || ^3", "3.1.0", true},
         {"^1 || ^2 || ^3", "4.0.0", false}});
}

TEST(VersionRange, PrereleasesOnlyMatchWhenTheirReleaseIsNamed) {
  check({{"*", "1.0.0-rc.1", false},
         {"^1.2.3", "1.3.0-rc.1", false},
         {">=1.0.0", "2.0.0-alpha", false},
         {"<2.0.0", "2.0.0-rc.1", false},  // numerically below, but nobody asked for 2.0.0 prereleases
         {"<2", "2.0.0-rc.1", false},
         {"^1.2.3-beta.2", "1.2.3-beta.2", true},
         {"^1.2.3-beta.2", "1.2.3-beta.11", true},
         {"^1.2.3-beta.2", "1.2.3-beta.1", false},
         {"^1.2.3-beta.2", "1.2.3-alpha", false},
         {"^1.2.3-beta.2", "1.2.3", true},
         {"^1.2.3-beta.2", "1.9.0", true},
         {"^1.2.3-beta.2", "1.2.4-beta", false},  // a prerelease of another release
         {"^1.2.3-beta.2", "2.0.0-rc.1", false},
         {"~1.2.3-beta", "1.2.3-beta.1", true},
         {"~1.2.3-beta", "1.2.4", true},
         {"~1.2.3-beta", "1.3.0", false},
         {"1.2.3-rc.1", "1.2.3-rc.1", true},
         {"1.2.3-rc.1", "1.2.3-rc.2", false},
         {"1.2.3-rc.1", "1.2.3", false},
         {">1.2.3-rc.1", "1.2.3-rc.2", true},
         {">1.2.3-rc.1", "1.2.3", true},
         {">1.2.3-rc.1", "1.2.4-rc.1", false},
         {">=1.0.0-0 <1.0.0", "1.0.0-alpha", true},
         // The permission is per alternative: it does not leak from one to another.
         {"^1.0.0-rc.1 || ^2", "2.0.0-rc.1", false},
         {"* || 1.0.0-rc.1", "1.0.0-rc.1", true}});
}

TEST(VersionRange, BoundsAtTheTopOfTheNumberRange) {
  // Upper bounds that would overflow carry into the next number or disappear; none wraps to 0.
  check({{"^4294967295.0.0", "4294967295.7.7", true},
         {"^4294967295.0.0", "4294967294.0.0", false},
         {"<=4294967295", "4294967295.4294967295.4294967295", true},
         {">4294967295", "4294967295.4294967295.4294967295", false},
         {">4294967295", "0.0.0", false},
         {"~0.4294967295", "0.4294967295.7", true},
         {"~0.4294967295", "1.0.0", false},
         {"^0.0.4294967295", "0.0.4294967295", true},
         {"^0.0.4294967295", "0.1.0", false},
         {"4294967295.x", "4294967295.1.0", true}});
}

TEST(VersionRange, KeepsTheOriginalText) {
  std::string error;
  std::optional<VersionRange> range = VersionRange::parse(" >=1.2  <2 ", &error);
  ASSERT_TRUE(range.has_value()) << error;
  EXPECT_EQ(range->text(), " >=1.2  <2 ");
  EXPECT_TRUE(error.empty());
}

TEST(VersionRange, MalformedRangesNameTheBadText) {
  const std::vector<std::pair<const char *, const char *>> cases = {
      {"", "bad range '': empty range (use '*' to match any version)"},
      {"   ", "bad range '   ': empty range (use '*' to match any version)"},
      {"^", "bad range '^': expected a version after '^'"},
      {">=", "bad range '>=': expected a version after '>='"},
      {">=1 <", "bad range '>=1 <': expected a version after '<'"},
      {">= <2", "bad range '>= <2': expected a version after '>='"},
      {">=>1", "bad range '>=>1': expected a version after '>=', got '>1'"},
      {"=>1", "bad range '=>1': expected a version after '=', got '>1'"},
      {"~>1.2", "bad range '~>1.2': expected a version after '~', got '>1.2'"},
      {"abc", "bad range 'abc': 'abc' is not a version ('abc' is not a number)"},
      {"^1.2.3 foo", "bad range '^1.2.3 foo': 'foo' is not a version ('foo' is not a number)"},
      {"v1.2.3", "bad range 'v1.2.3': 'v1.2.3' is not a version ('v1' is not a number)"},
      {"1.2.3.4", "bad range '1.2.3.4': '1.2.3.4' is not a version (more than three numbers)"},
      {"1.", "bad range '1.': '1.' is not a version (missing number)"},
      {"^1..2", "bad range '^1..2': '1..2' is not a version (missing number)"},
      {"^1.02", "bad range '^1.02': '1.02' is not a version (leading zero in '02')"},
      {"99999999999", "bad range '99999999999': '99999999999' is not a version ('99999999999' is too large)"},
      {"1.x.3", "bad range '1.x.3': '1.x.3' is not a version (only wildcards may follow a wildcard)"},
      {"1.2-rc", "bad range '1.2-rc': '1.2-rc' is not a version (a prerelease or build suffix needs major.minor.patch)"},
      {"1.x-rc", "bad range '1.x-rc': '1.x-rc' is not a version (a prerelease or build suffix needs major.minor.patch)"},
      {"1.2.3-01", "bad range '1.2.3-01': '1.2.3-01' is not a version (leading zero in prerelease identifier '01')"},
      {"1.2.3-rc..1", "bad range '1.2.3-rc..1': '1.2.3-rc..1' is not a version (empty prerelease identifier)"},
      {"1.2.3-rc$", "bad range '1.2.3-rc$': '1.2.3-rc$' is not a version (bad prerelease identifier 'rc$')"},
      {"1.2.3+", "bad range '1.2.3+': '1.2.3+' is not a version (empty build identifier)"},
      {"1 ||", "bad range '1 ||': empty alternative next to '||'"},
      {"|| 1", "bad range '|| 1': empty alternative next to '||'"},
      {"1 || || 2", "bad range '1 || || 2': empty alternative next to '||'"},
      {"1 | 2", "bad range '1 | 2': stray '|' (alternatives are separated by '||')"},
      {"1 ||| 2", "bad range '1 ||| 2': stray '|' (alternatives are separated by '||')"},
      {"1.2 - 2", "bad range '1.2 - 2': hyphen ranges are not supported (write '>=A <=B')"},
      {"1,2", "bad range '1,2': '1,2' is not a version ('1,2' is not a number)"},
  };
  for (const auto &[text, message] : cases) {
    std::string error;
    EXPECT_FALSE(VersionRange::parse(text, &error).has_value()) << "'" << text << "'";
    EXPECT_EQ(error, message);
  }
}

TEST(VersionRange, ErrorPointerIsOptional) {
  EXPECT_FALSE(VersionRange::parse("^", nullptr).has_value());
  EXPECT_TRUE(VersionRange::parse("^1", nullptr).has_value());
}

}  // namespace
}  // namespace chorus::host

// Semantic versions and the range grammar plugins use in their requirements.
#pragma once
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::host {

struct Version {
  uint32_t major = 0, minor = 0, patch = 0;
  std::string prerelease;  // "" for a release; compared per semver 2.0 precedence

  // Equality is field-wise; ordering is semver precedence (see compare()). A defaulted <=> would
  // compare `prerelease` as a plain string and so rank 1.0.0 *below* 1.0.0-rc.1, which is wrong.
  bool operator==(const Version &) const = default;
  std::strong_ordering operator<=>(const Version &other) const;
};

// Parses "1", "1.2", "1.2.3" and "1.2.3-rc.1" (build metadata "+..." is accepted and ignored).
// Missing minor/patch are 0. A prerelease or build suffix needs all three numbers. Numbers have no
// leading zeros and fit in 32 bits. Returns nullopt on anything else (including surrounding space).
std::optional<Version> parse_version(std::string_view text);
int compare(const Version &a, const Version &b);  // <0, 0, >0 by semver precedence
std::string to_string(const Version &v);          // "1.2.3" or "1.2.3-rc.1"

// A set of comparators: space-separated terms are ANDed, "||" separates alternatives.
// Terms: "*", "x", "1.2.3" (exact; "1.2" means >=1.2.0 <1.3.0, "1" means >=1 <2), "^1.2.3", "~1.2.3",
// ">=1.2", ">1.2", "<=1.2", "<2", "=1.2.3", "1.x", "1.2.x".
// Details, as npm: "x", "X" and "*" are interchangeable wildcards; an operator may be followed by
// spaces (">= 1.2"); partial versions widen as in npm (">1.2" is ">=1.3.0", "<=1.2" is "<1.3.0",
// "^0.2.3" is ">=0.2.3 <0.3.0", "^0.0.3" is "=0.0.3", "^1.2" is ">=1.2.0 <2.0.0", "~1" is
// ">=1.0.0 <2.0.0"). A prerelease version matches an alternative only if one of its comparators
// names a prerelease of the same major.minor.patch, so "^1.2.3" does not match "1.3.0-rc.1" but
// "^1.3.0-rc.1" does. An empty range is an error (write "*" to accept anything).
class VersionRange {
 public:
  // Returns nullopt and sets *error (e.g. "bad range '^': expected a version after '^'") on
  // failure; the message is one line and quotes the whole range. `error` may be null.
  static std::optional<VersionRange> parse(std::string_view text, std::string *error);
  bool matches(const Version &v) const;
  const std::string &text() const { return text_; }

 private:
  struct Comparator { enum Op { kEq, kLt, kLe, kGt, kGe } op; Version v; };
  static void expand_term(std::string_view op, int numbers, const Version &lo, std::vector<Comparator> *out);
  std::vector<std::vector<Comparator>> alternatives_;  // empty inner vector = any release
  std::string text_;
};

}  // namespace chorus::host

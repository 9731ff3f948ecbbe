// Semantic versions and the range grammar plugins use in their requirements.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::host {

struct Version {
  uint32_t major = 0, minor = 0, patch = 0;
  std::string prerelease;  // "" for a release; compared per semver 2.0 precedence
  auto operator<=>(const Version &) const = default;  // NOTE: semver.cpp provides compare() for precedence
};

// Parses "1", "1.2", "1.2.3" and "1.2.3-rc.1" (build metadata "+..." is accepted and ignored).
// Missing minor/patch are 0. Returns nullopt on anything else.
std::optional<Version> parse_version(std::string_view text);
int compare(const Version &a, const Version &b);  // <0, 0, >0 by semver precedence
std::string to_string(const Version &v);

// A set of comparators: space-separated terms are ANDed, "||" separates alternatives.
// Terms: "*", "x", "1.2.3" (exact; "1.2" means >=1.2.0 <1.3.0, "1" means >=1 <2), "^1.2.3", "~1.2.3",
// ">=1.2", ">1.2", "<=1.2", "<2", "=1.2.3", "1.x", "1.2.x".
class VersionRange {
 public:
  // Returns nullopt and sets *error (e.g. "bad range '^x': expected a version after '^'") on failure.
  static std::optional<VersionRange> parse(std::string_view text, std::string *error);
  bool matches(const Version &v) const;
  const std::string &text() const { return text_; }

 private:
  struct Comparator { enum Op { kEq, kLt, kLe, kGt, kGe } op; Version v; };
  std::vector<std::vector<Comparator>> alternatives_;
  std::string text_;
};

}  // namespace chorus::host

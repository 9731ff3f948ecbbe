// libFuzzer target: parse_version and VersionRange::parse (semver.hpp). Plugin descriptors are
// untrusted, and both functions see their strings (the plugin's own version, its requirement ranges).
//
// Input: text. The whole input is parsed as a version and as a range; then the first line is taken
// as a range and every further line as a version to match against it. Besides "no crash, no UB, no
// exception", the semantics below must hold for every input:
//  - a parsed version prints and re-parses to itself;
//  - compare() is a total order (antisymmetric, reflexive, transitive on the lines given);
//  - a version written as a range matches itself, and so do ^v ~v >=v <=v =v and "*" / "x" (a
//    prerelease only when the range names that very prerelease, which all of these do);
//  - <v and >v never match v (when v is written in full: "1.2" means the whole 1.2.x family);
//  - a failed range parse explains itself, quoting the range.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "semver.hpp"

namespace {

using chorus::host::Version;
using chorus::host::VersionRange;

[[noreturn]] void invariant_failed(const char *what, std::string_view a, std::string_view b = {}) {
  fprintf(stderr, "semver_fuzz: invariant violated: %s ['%.*s' '%.*s']\n", what, static_cast<int>(a.size()),
          a.data(), static_cast<int>(b.size()), b.data());
  abort();
}

std::optional<VersionRange> parse_range(std::string_view text) {
  std::string error;
  auto r = VersionRange::parse(text, &error);
  if (!r) {
    if (error.empty()) invariant_failed("VersionRange::parse failed without a message", text);
    if (error.find(std::string(text)) == std::string::npos) invariant_failed("range error does not quote the range", text, error);
  } else if (r->text() != text) {
    invariant_failed("VersionRange::text() differs from the parsed text", text, r->text());
  }
  // A null error pointer is allowed and must give the same answer.
  if (VersionRange::parse(text, nullptr).has_value() != r.has_value()) invariant_failed("parse(text, nullptr) disagrees", text);
  return r;
}

void check_version_text(std::string_view text) {
  std::optional<Version> v = chorus::host::parse_version(text);
  if (!v) return;
  const std::string printed = chorus::host::to_string(*v);
  std::optional<Version> again = chorus::host::parse_version(printed);
  if (!again || !(*again == *v)) invariant_failed("to_string/parse_version round trip", text, printed);
  if (chorus::host::compare(*v, *v) != 0) invariant_failed("compare(v, v) != 0", text);

  // `text` is a version, so it is also a range term; only "+build" needs all three numbers, which
  // parse_version already demanded.
  const size_t dots = static_cast<size_t>(std::count(text.begin(), text.end(), '.'));
  const bool full = text.find_first_of("-+") != std::string_view::npos || dots >= 2;
  const std::string t(text);
  for (const std::string &range : {t, "=" + t, "^" + t, "~" + t, ">=" + t, "<=" + t, ">= " + t, t + " || <0.0.0-0"}) {
    auto r = parse_range(range);
    if (!r) invariant_failed("a version is not a valid range term", range);
    if (!r->matches(*v)) invariant_failed("range does not match its own version", range, printed);
  }
  if (v->prerelease.empty()) {
    for (const char *any : {"*", "x", "X", "1.x || *", ">=0.0.0"}) {
      auto r = parse_range(any);
      if (!r || !r->matches(*v)) invariant_failed("wildcard range does not match a release", any, printed);
    }
  }
  if (full) {
    for (const std::string &range : {"<" + t, ">" + t}) {
      auto r = parse_range(range);
      if (!r) invariant_failed("a version is not a valid range term", range);
      if (r->matches(*v)) invariant_failed("strict comparison matches its own version", range, printed);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);

  // The whole input, as both grammars.
  (void)chorus::host::parse_version(input);
  (void)parse_range(input);

  // First line: a range; further lines: versions (capped so an input costs O(lines^3) at most 16^3).
  std::vector<std::string_view> lines;
  for (std::string_view rest = input;;) {
    const size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos || lines.size() == 17) break;
    rest.remove_prefix(nl + 1);
  }
  std::optional<VersionRange> range = parse_range(lines[0]);
  check_version_text(lines[0]);

  std::vector<std::pair<std::string_view, Version>> versions;
  for (size_t i = 1; i < lines.size(); ++i) {
    check_version_text(lines[i]);
    if (auto v = chorus::host::parse_version(lines[i])) {
      if (range) (void)range->matches(*v);
      versions.emplace_back(lines[i], std::move(*v));
    }
  }

  for (const auto &[ta, a] : versions) {
    for (const auto &[tb, b] : versions) {
      const int ab = chorus::host::compare(a, b), ba = chorus::host::compare(b, a);
      if ((ab < 0) != (ba > 0) || (ab == 0) != (ba == 0)) invariant_failed("compare is not antisymmetric", ta, tb);
      if ((ab == 0) != (a <=> b == 0)) invariant_failed("operator<=> disagrees with compare", ta, tb);
      if (ab == 0 && !(a == b)) invariant_failed("equal precedence but different fields", ta, tb);
      for (const auto &[tc, c] : versions) {
        if (ab <= 0 && chorus::host::compare(b, c) <= 0 && chorus::host::compare(a, c) > 0)
          invariant_failed("compare is not transitive", ta, tc);
      }
    }
  }
  return 0;
}

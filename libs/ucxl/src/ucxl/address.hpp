// UCXL addresses: ucxl://agent:role@project:task/temporal/path (docs/protocols.md, UCXL). Parsing,
// validation, the canonical text form, CHORUS's JSON form and wildcard matching. Sans I/O; shared by
// the ucxi plugin and any plugin that names content or decisions (libs/ucxl, hidden symbols).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace chorus::ucxl {

// Longest address accepted, in bytes (the whole text, scheme included).
inline constexpr size_t kMaxAddressBytes = 2048;

// The temporal segment. Tokens (exactly these; anything else is an error in field "temporal_segment"):
//   *^    latest            -> {type: "latest"}
//   *~    any version       -> {type: "any"}
//   *~N   version N (N>=1)  -> {type: "specific", count: N}
//   ~~N   N back  (N>=1)    -> {type: "relative", direction: "backward", count: N}
//   ^^N   N forward (N>=1)  -> {type: "relative", direction: "forward", count: N}
// N is decimal, no sign, no leading zeros, at most 10^9.
enum class TemporalType { kLatest, kAny, kSpecific, kRelative };
enum class Direction { kNone, kBackward, kForward };

struct TemporalSegment {
  TemporalType type = TemporalType::kLatest;
  Direction direction = Direction::kNone;  // kRelative only
  uint64_t count = 0;                      // kSpecific (the version) and kRelative (the steps)

  std::string text() const;  // the token: "*^", "*~", "*~3", "~~2", "^^1"
  bool operator==(const TemporalSegment &) const = default;
};

// A parsed address. Components are [A-Za-z0-9_-]+ or the literal wildcard "any"; the path is
// [A-Za-z0-9_\-/.]* (may be empty), without its leading '/'.
struct Address {
  std::string agent, role, project, task;
  TemporalSegment temporal;
  std::string path;
  std::string raw;  // the text it was parsed from ("" when built in code)

  // Canonical text: "ucxl://agent:role@project:task/<temporal>/<path>" ("ucxl://a:r@p:t/*^" when the
  // path is empty). parse(to_string()) gives the same Address (raw aside).
  std::string to_string() const;
  // The address of the version series, temporal segment left out: "ucxl://agent:role@project:task/<path>".
  // Every version of one piece of content shares it; the ucxi plugin keys its index by its SHA-256.
  std::string series() const;
  // The same address with another temporal segment.
  Address with_temporal(TemporalSegment t) const;
  // True when any of the four components is "any".
  bool has_wildcards() const;
  // CHORUS's JSON form: {"agent","role","project","task","temporal_segment":{"type","direction"?,
  // "count"?},"path","raw"}; direction and count appear only when set (direction for relative, count
  // for specific and relative). raw is the parsed text, or to_string() when built in code.
  nlohmann::json to_json() const;
  bool operator==(const Address &o) const {
    return agent == o.agent && role == o.role && project == o.project && task == o.task && temporal == o.temporal &&
           path == o.path;
  }
};

// Why an address was refused. field is one of: "address" (empty, too long, not UTF-8/ASCII, no
// "ucxl://" scheme, missing separators), "agent", "role", "project", "task", "temporal_segment", "path".
struct ParseError {
  std::string field;
  std::string message;
  std::string raw;
  // CHORUS's message format: "UCXL address validation error in <field>: <message> (address: <raw>)".
  std::string what() const;
};

// Parses and validates text. On failure returns nullopt and fills *err (when not null). Never throws;
// every input (any bytes) is safe.
std::optional<Address> parse(std::string_view text, ParseError *err = nullptr);

// Parses the JSON form (as to_json writes it; "raw" is ignored). Same errors as parse.
std::optional<Address> from_json(const nlohmann::json &j, ParseError *err = nullptr);

// Wildcard matching: each component of pattern matches when it is "any" or equal to the
// candidate's (a candidate's own "any" matches only "any"); the pattern's path matches when it is
// empty, equal, or a prefix of the candidate's path ending at a '/' boundary ("docs" matches
// "docs/a.md", not "docsx"). Temporal segments are not compared.
bool matches(const Address &pattern, const Address &candidate);

}  // namespace chorus::ucxl

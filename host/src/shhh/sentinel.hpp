// SHHH, the secrets sentinel: finds secrets in text and JSON and replaces each with "[REDACTED]".
//
// The host owns one Sentinel. Every log line (the host's and every plugin's) passes through it before
// it is written, and plugins reach it through chorus_host_api.redact (ABI 1.2) for what they publish
// or store (docs/shhh.md). Rules are RE2 patterns, so matching is linear in the input whatever the
// pattern or the text: untrusted and high-volume text meets no backtracking.
//
// Thread safety: a Sentinel is immutable after construction (set_sink aside, which comes before use)
// and safe to use from any thread. Reconfiguration builds a new Sentinel and swaps it in.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::shhh {

inline constexpr std::string_view kPlaceholder = "[REDACTED]";

enum class Severity : uint8_t { kLow, kMedium, kHigh, kCritical };
std::string_view severity_name(Severity s);                  // "low" "medium" "high" "critical"
std::optional<Severity> parse_severity(std::string_view name);

// One rule. When the pattern has a capturing group, only group 1 is the secret (and replaced);
// otherwise the whole match is. `name` is [a-z0-9_.-]{1,64} and unique within a Sentinel.
struct Rule {
  std::string name;
  std::string pattern;  // RE2 syntax
  Severity severity = Severity::kHigh;
  std::vector<std::string> tags;
};

// The built-in rule families: bearer tokens, API keys, OAuth tokens, PEM private-key blocks,
// OpenAI-style secrets (docs/shhh.md lists each rule and what it matches).
const std::vector<Rule>& builtin_rules();

// Where redacted text was headed; audit events and metrics carry it.
enum class Channel : uint8_t { kLog, kPubsub, kUcxi };
std::string_view channel_name(Channel c);  // "log" "pubsub" "ucxi"

// One secret found. The secret itself is never kept: only its SHA-256 (lowercase hex).
struct Finding {
  std::string rule;
  Severity severity;
  std::vector<std::string> tags;
  size_t offset;  // byte offset of the secret in the input (for JSON: within the string value)
  size_t length;
  std::string sha256_hex;
  std::string json_path;  // "" for text; "/data/token" (JSON Pointer) inside JSON
};

struct Result {
  std::string text;               // the redacted output (equal to the input when nothing was found)
  std::vector<Finding> findings;  // in input order
};

// Receives every finding with its context; the host's sink writes the JSON-lines audit file and
// counts metrics. Called on the redacting thread; must be thread-safe and must not log (it would
// recurse through the sentinel).
using FindingSink = std::function<void(Channel channel, std::string_view source, const Finding& f)>;

struct Options {
  bool use_builtin_rules = true;
  std::vector<Rule> custom_rules;  // appended after the built-in ones
  // Object keys whose string values are redacted whole in JSON, whatever they hold
  // ("password", "api_key", ...; case-insensitive, '-' and '_' equivalent).
  std::vector<std::string> sensitive_keys = {"password", "passwd", "secret", "api_key", "apikey",
                                             "access_token", "refresh_token", "client_secret",
                                             "private_key", "authorization", "token"};
};

class Sentinel {
 public:
  // Compiles every rule. An invalid pattern, a duplicate or malformed name: nullptr and *error says
  // which rule and why.
  static std::unique_ptr<Sentinel> create(const Options& options, std::string* error);
  ~Sentinel();

  // Free text. `source` names who produced it (a plugin id, "host") for the sink.
  Result redact_text(std::string_view text, Channel channel, std::string_view source) const;
  // A JSON document: every string value (at any depth) is redacted as text, and the values of
  // sensitive keys are replaced whole. Keys are kept. Text that is not valid JSON is redacted as
  // text. The output is compact JSON when something was redacted, and the input unchanged otherwise
  // (nothing is reformatted or lost when there is nothing to hide).
  Result redact_json(std::string_view json, Channel channel, std::string_view source) const;

  // Fast check used before the full pass: false means no rule can match.
  bool may_contain_secret(std::string_view text) const;

  void set_sink(FindingSink sink);  // before use; not thread-safe against redaction
  const std::vector<Rule>& rules() const;

  struct Impl;  // opaque here (shhh/engine.hpp, for the engine's own files)

 private:
  Sentinel();
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::shhh

// The built-in rules (docs/shhh.md, "Rules"). Every pattern is ASCII and compiled as Latin-1, so it
// matches bytes: invalid UTF-8 around a secret does not hide it. A pattern with a capturing group
// redacts group 1 only (the "Bearer " or "api_key=" before it stays readable).
//
// No value class below contains '[', so the placeholder "[REDACTED]" never matches a rule again:
// redacting twice finds nothing the second time (tests/fuzz/shhh_fuzz.cpp checks it).
#include "shhh/engine.hpp"

namespace chorus::shhh {
namespace detail {

namespace {

// Token characters of HTTP credentials (RFC 6750 b64token) and of most key formats.
#define TOKEN_CHARS "[A-Za-z0-9\\-._~+/]"

std::vector<BuiltinRule> make_table() {
  std::vector<BuiltinRule> t;
  auto add = [&](const char* name, Severity sev, std::vector<std::string> tags, const char* pattern,
                 const char* trigger, const char* exclude = "") {
    t.push_back(BuiltinRule{Rule{name, pattern, sev, std::move(tags)}, trigger, exclude});
  };
  // --- bearer tokens: "Authorization: Bearer <token>"; the scheme word stays.
  add("bearer_token", Severity::kHigh, {"auth", "bearer"},
      "(?i)\\bbearer[ \\t]+(" TOKEN_CHARS "{8,}=*)", "bearer");
  // --- API keys
  // key=value, key: value, "key": "value" (JSON in text), with any prefix (x-api-key, openai_api_key,
  // aws_secret_access_key).
  add("api_key", Severity::kHigh, {"api_key"},
      "(?i)(?:api[_-]?key|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key)[\"']?[ \\t]*[:=][ \\t]*[\"']?(" TOKEN_CHARS
      "{8,}=*)",
      "api[_-]?key|access[_-]?key|secret[_-]?(?:access[_-]?)?key");
  add("aws_access_key_id", Severity::kCritical, {"api_key", "aws"}, "\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b", "akia|asia");
  add("github_token", Severity::kCritical, {"api_key", "github"},
      "\\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})", "gh[pousr]_|github_pat_");
  add("slack_token", Severity::kHigh, {"api_key", "slack"}, "\\bxox[abposr]-[A-Za-z0-9-]{10,}", "xox[abposr]-");
  add("stripe_secret_key", Severity::kCritical, {"api_key", "stripe"}, "\\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
      "[rs]k_(?:live|test)_");
  // --- OAuth
  add("oauth_token", Severity::kHigh, {"oauth"},
      "(?i)(?:access[_-]token|refresh[_-]token|id[_-]token|auth[_-]token|client[_-]secret)[\"']?[ \\t]*[:=][ \\t]*[\"']?(" TOKEN_CHARS
      "{8,}=*)",
      "access[_-]token|refresh[_-]token|id[_-]token|auth[_-]token|client[_-]secret");
  add("google_oauth_token", Severity::kHigh, {"oauth", "google"}, "\\bya29\\.[0-9A-Za-z_\\-]{20,}", "ya29\\.");
  // --- PEM private keys: the whole block, any type (RSA, EC, OPENSSH, ENCRYPTED, PGP ... BLOCK). A
  // block cut off before its END line is redacted to the end of the text.
  add("pem_private_key", Severity::kCritical, {"private_key", "pem"},
      "(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\\z)",
      "-----begin");
  // --- OpenAI-style secrets: sk-..., sk-proj-..., sk-svcacct-..., sk-admin-... (also Anthropic's sk-ant-).
  add("openai_api_key", Severity::kCritical, {"api_key", "openai"}, "\\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\\-]{20,}",
      "sk-");
  // --- passwords in key=value text and in URLs (postgres://user:pw@host).
  add("password", Severity::kHigh, {"password"},
      "(?i)(?:password|passwd|pwd)[\"']?[ \\t]*[:=][ \\t]*[\"']?([^\\s\"'&,;\\[\\]]{3,})", "passw|pwd");
  // UCXL addresses (ucxl://agent:role@project:task/...) have the same shape and hold no secret.
  add("url_credentials", Severity::kHigh, {"password", "url"},
      "\\b[A-Za-z][A-Za-z0-9+.\\-]*://[^\\s/:@\\[\\]]+:([^\\s/@\\[\\]]+)@", 
      // The trigger: "://", then userinfo up to an '@', unless the scheme is exactly "ucxl" (UCXL
      // addresses are everywhere in agent logs, and making each such line a candidate would halve the
      // throughput). A scheme that merely ends in "ucxl" ("a.ucxl", "xucxl") still triggers.
      "(?:^|[^l]|[^x]l|[^c]xl|[^u]cxl|[a-z0-9+.\\-]ucxl)://[^\\s/@]*@", "(?i)ucxl://");
  return t;
}

#undef TOKEN_CHARS

}  // namespace

const std::vector<BuiltinRule>& builtin_table() {
  static const std::vector<BuiltinRule> table = make_table();
  return table;
}

}  // namespace detail

const std::vector<Rule>& builtin_rules() {
  static const std::vector<Rule> rules = [] {
    std::vector<Rule> r;
    for (const auto& b : detail::builtin_table()) r.push_back(b.rule);
    return r;
  }();
  return rules;
}

}  // namespace chorus::shhh

// Internals shared by the sentinel's translation units (not part of the API).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <re2/re2.h>
#include <re2/set.h>

#include "shhh/sentinel.hpp"

namespace chorus::shhh::detail {

// A built-in rule's trigger: case-insensitive literals, at least one of which occurs in every text
// the rule can match. The prefilter runs all triggers in one pass; a rule whose trigger is absent is
// not run at all.
struct BuiltinRule {
  Rule rule;
  std::string trigger;  // RE2, compiled case-insensitive
  std::string exclude;  // RE2: a match that begins with this is not a secret ("" = none)
};
const std::vector<BuiltinRule>& builtin_table();

struct CompiledRule {
  std::unique_ptr<re2::RE2> re;
  bool secret_is_group1 = false;
  std::unique_ptr<re2::RE2> exclude;  // built-ins only, anchored at the match's start
};

// One secret's range in the text being redacted, before the findings are made.
struct Span {
  size_t start;
  size_t length;
  size_t rule;  // index into Impl::rules
};

}  // namespace chorus::shhh::detail

namespace chorus::shhh {

struct Sentinel::Impl {
  std::vector<Rule> rules;                      // built-ins first, then custom
  std::vector<detail::CompiledRule> compiled;   // parallel to rules
  size_t builtin_count = 0;                     // rules[0, builtin_count) have a trigger in `triggers`
  std::unique_ptr<re2::RE2::Set> triggers;      // index i: the trigger of rules[i]
  // The custom rules' own patterns in one set (index i: rules[builtin_count + i]), so that N custom
  // rules cost one pass on a line none of them matches. Null when there are none.
  std::unique_ptr<re2::RE2::Set> custom_set;
  std::unordered_set<std::string> sensitive_keys;  // normalised (lowercase, '-' -> '_')
  std::unique_ptr<re2::RE2> sensitive_key_scan;    // any sensitive key, in raw JSON text (prefilter)
  FindingSink sink;

  // Which rules to run on `text`: built-ins whose trigger occurs, custom rules that match somewhere.
  void candidate_rules(std::string_view text, std::vector<int>* out) const;
  // Redacts one string, appending its findings (json_path set on each).
  std::string redact(std::string_view text, const std::string& json_path, std::vector<Finding>* findings) const;
  void notify(Channel channel, std::string_view source, const std::vector<Finding>& findings) const;
};

std::string normalise_key(std::string_view key);
std::string sha256_hex(std::string_view bytes);

}  // namespace chorus::shhh

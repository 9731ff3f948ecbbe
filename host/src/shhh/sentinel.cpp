// SHHH core: compiling the rules, the prefilter, and redacting text (docs/shhh.md).
#include <sodium.h>

#include <algorithm>
#include <cctype>

#include "shhh/engine.hpp"

namespace chorus::shhh {

namespace {

constexpr size_t kMaxPatternBytes = 4096;
constexpr int64_t kRuleMaxMem = 8 << 20;       // RE2's budget per custom rule (programs and DFA cache)
constexpr int64_t kTriggerMaxMem = 16 << 20;   // the prefilter's DFA over every built-in trigger
constexpr int64_t kCustomSetMaxMem = 32 << 20;  // the custom rules' shared prefilter

bool valid_rule_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

re2::RE2::Options builtin_options() {
  re2::RE2::Options o;
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  o.set_max_mem(kRuleMaxMem);
  return o;
}

}  // namespace

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kLow: return "low";
    case Severity::kMedium: return "medium";
    case Severity::kHigh: return "high";
    case Severity::kCritical: return "critical";
  }
  return "high";
}

std::optional<Severity> parse_severity(std::string_view name) {
  for (Severity s : {Severity::kLow, Severity::kMedium, Severity::kHigh, Severity::kCritical})
    if (severity_name(s) == name) return s;
  return std::nullopt;
}

std::string_view channel_name(Channel c) {
  switch (c) {
    case Channel::kLog: return "log";
    case Channel::kPubsub: return "pubsub";
    case Channel::kUcxi: return "ucxi";
  }
  return "log";
}

std::string normalise_key(std::string_view key) {
  std::string k(key);
  for (char& c : k) {
    if (c == '-') c = '_';
    else c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return k;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * sizeof digest, '\0');
  for (size_t i = 0; i < sizeof digest; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

Sentinel::Sentinel() : impl_(std::make_unique<Impl>()) {}
Sentinel::~Sentinel() = default;

std::unique_ptr<Sentinel> Sentinel::create(const Options& options, std::string* error) {
  auto fail = [&](std::string message) -> std::unique_ptr<Sentinel> {
    if (error) *error = std::move(message);
    return nullptr;
  };
  if (sodium_init() < 0) return fail("libsodium could not be initialised");
  std::unique_ptr<Sentinel> s(new Sentinel());
  Impl& impl = *s->impl_;

  if (options.use_builtin_rules) {
    re2::RE2::Options topt = builtin_options();
    topt.set_case_sensitive(false);
    topt.set_max_mem(kTriggerMaxMem);
    impl.triggers = std::make_unique<re2::RE2::Set>(topt, re2::RE2::UNANCHORED);
    for (const auto& b : detail::builtin_table()) {
      auto re = std::make_unique<re2::RE2>(b.rule.pattern, builtin_options());
      std::string terr;
      if (!re->ok() || impl.triggers->Add(b.trigger, &terr) < 0)  // a bug in rules.cpp, not the user's
        return fail("built-in rule '" + b.rule.name + "': " + (re->ok() ? terr : re->error()));
      detail::CompiledRule cr{std::move(re), false, nullptr};
      cr.secret_is_group1 = cr.re->NumberOfCapturingGroups() > 0;
      if (!b.exclude.empty()) {
        cr.exclude = std::make_unique<re2::RE2>(b.exclude, builtin_options());
        if (!cr.exclude->ok()) return fail("built-in rule '" + b.rule.name + "': " + cr.exclude->error());
      }
      impl.compiled.push_back(std::move(cr));
      impl.rules.push_back(b.rule);
    }
    if (!impl.triggers->Compile()) return fail("built-in rules: the prefilter does not compile");
    impl.builtin_count = impl.rules.size();
  }

  for (const Rule& r : options.custom_rules) {
    if (!valid_rule_name(r.name))
      return fail("rule '" + r.name + "': the name must be 1 to 64 characters of [a-z0-9_.-]");
    if (std::any_of(impl.rules.begin(), impl.rules.end(), [&](const Rule& o) { return o.name == r.name; }))
      return fail("rule '" + r.name + "': the name is already taken");
    if (r.pattern.empty()) return fail("rule '" + r.name + "': the pattern is empty");
    if (r.pattern.size() > kMaxPatternBytes)
      return fail("rule '" + r.name + "': the pattern is longer than " + std::to_string(kMaxPatternBytes) + " bytes");
    re2::RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(kRuleMaxMem);
    auto re = std::make_unique<re2::RE2>(r.pattern, o);
    if (!re->ok()) return fail("rule '" + r.name + "': " + re->error());
    const bool group = re->NumberOfCapturingGroups() > 0;
    impl.compiled.push_back({std::move(re), group, nullptr});
    impl.rules.push_back(r);
  }
  if (impl.rules.size() > impl.builtin_count) {
    re2::RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(kCustomSetMaxMem);
    impl.custom_set = std::make_unique<re2::RE2::Set>(o, re2::RE2::UNANCHORED);
    bool ok = true;
    for (size_t i = impl.builtin_count; i < impl.rules.size() && ok; ++i)
      ok = impl.custom_set->Add(impl.rules[i].pattern, nullptr) >= 0;
    // Patterns that compile alone but not together (the set's memory budget): every custom rule runs
    // on every text instead.
    if (!ok || !impl.custom_set->Compile()) impl.custom_set.reset();
  }

  // Sensitive JSON keys, normalised; and one scan for any of them in raw JSON (case-insensitive,
  // '-' and '_' alike) so that most documents without a key or a trigger skip parsing.
  std::string alternation;
  for (const std::string& key : options.sensitive_keys) {
    if (key.empty()) continue;
    const std::string k = normalise_key(key);
    if (!impl.sensitive_keys.insert(k).second) continue;
    if (!alternation.empty()) alternation += '|';
    for (char c : k) alternation += c == '_' ? std::string("[-_]") : re2::RE2::QuoteMeta(std::string(1, c));
  }
  if (!alternation.empty()) {
    // As a member name: quoted and followed by ':' (the raw text has no escapes when this is used).
    alternation = "\"(?:" + alternation + ")\"[ \t\r\n]*:";
    re2::RE2::Options o = builtin_options();
    o.set_case_sensitive(false);
    impl.sensitive_key_scan = std::make_unique<re2::RE2>(alternation, o);
    if (!impl.sensitive_key_scan->ok())
      return fail("sensitive_keys: " + impl.sensitive_key_scan->error());
  }
  return s;
}

void Sentinel::Impl::candidate_rules(std::string_view text, std::vector<int>* out) const {
  out->clear();
  if (builtin_count > 0) {
    const re2::StringPiece input(text.data(), text.size());
    re2::RE2::Set::ErrorInfo info{};
    // One pass finds every trigger present. (Asking "any trigger?" first, with a DFA that stops at
    // the first one, saves nothing on clean lines, which it must scan whole too, and costs a pass on
    // the others: bench/shhh measured it.)
    if (!triggers->Match(input, out, &info) &&
        info.kind != re2::RE2::Set::kNoError) {
      // The prefilter's DFA ran out of memory: run every rule rather than miss a secret.
      out->clear();
      for (size_t i = 0; i < builtin_count; ++i) out->push_back(static_cast<int>(i));
    }
  }
  if (rules.size() == builtin_count) return;
  thread_local std::vector<int> matched;
  matched.clear();
  re2::RE2::Set::ErrorInfo info{};
  if (custom_set && (custom_set->Match(re2::StringPiece(text.data(), text.size()), &matched, &info) ||
                     info.kind == re2::RE2::Set::kNoError)) {
    for (int i : matched) out->push_back(static_cast<int>(builtin_count) + i);
  } else {  // no set, or its DFA gave up: run them all
    for (size_t i = builtin_count; i < rules.size(); ++i) out->push_back(static_cast<int>(i));
  }
}

std::string Sentinel::Impl::redact(std::string_view text, const std::string& json_path,
                                   std::vector<Finding>* findings) const {
  thread_local std::vector<int> candidates;
  candidate_rules(text, &candidates);
  if (candidates.empty()) return std::string(text);

  std::vector<detail::Span> spans;
  const re2::StringPiece input(text.data(), text.size());
  for (int idx : candidates) {
    const detail::CompiledRule& cr = compiled[static_cast<size_t>(idx)];
    const int nsub = cr.secret_is_group1 ? 2 : 1;
    re2::StringPiece m[2];
    size_t pos = 0;
    while (pos <= text.size() && cr.re->Match(input, pos, text.size(), re2::RE2::UNANCHORED, m, nsub)) {
      const size_t match_end = static_cast<size_t>(m[0].data() - text.data()) + m[0].size();
      const re2::StringPiece& secret = m[nsub - 1];
      re2::StringPiece whole = m[0];
      const bool excluded = cr.exclude && re2::RE2::Consume(&whole, *cr.exclude);
      if (!excluded && secret.data() != nullptr && !secret.empty())
        spans.push_back({static_cast<size_t>(secret.data() - text.data()), secret.size(), static_cast<size_t>(idx)});
      pos = match_end > pos ? match_end : pos + 1;  // an empty match must not stall
    }
  }
  if (spans.empty()) return std::string(text);

  // Input order; of two rules finding the very same bytes, the more severe (then the earlier) is kept.
  std::sort(spans.begin(), spans.end(), [&](const detail::Span& a, const detail::Span& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.length != b.length) return a.length > b.length;
    if (rules[a.rule].severity != rules[b.rule].severity) return rules[a.rule].severity > rules[b.rule].severity;
    return a.rule < b.rule;
  });
  spans.erase(std::unique(spans.begin(), spans.end(),
                          [](const detail::Span& a, const detail::Span& b) {
                            return a.start == b.start && a.length == b.length;
                          }),
              spans.end());

  // Overlapping or adjacent spans become one placeholder over their union.
  std::string out;
  out.reserve(text.size());
  size_t copied = 0;  // text[0, copied) is in `out` or replaced
  bool first = true;
  for (const detail::Span& s : spans) {
    const size_t end = s.start + s.length;
    if (first || s.start > copied) {
      first = false;
      out.append(text.data() + copied, s.start - copied);
      out.append(kPlaceholder);
      copied = end;
    } else if (end > copied) {
      copied = end;  // extends the placeholder just written
    }
    const Rule& r = rules[s.rule];
    findings->push_back(Finding{r.name, r.severity, r.tags, s.start, s.length,
                                sha256_hex(text.substr(s.start, s.length)), json_path});
  }
  out.append(text.data() + copied, text.size() - copied);
  return out;
}

void Sentinel::Impl::notify(Channel channel, std::string_view source, const std::vector<Finding>& findings) const {
  if (!sink) return;
  for (const Finding& f : findings) sink(channel, source, f);
}

Result Sentinel::redact_text(std::string_view text, Channel channel, std::string_view source) const {
  Result r;
  r.text = impl_->redact(text, std::string(), &r.findings);
  impl_->notify(channel, source, r.findings);
  return r;
}

bool Sentinel::may_contain_secret(std::string_view text) const {
  const re2::StringPiece input(text.data(), text.size());
  re2::RE2::Set::ErrorInfo info{};
  if (impl_->builtin_count > 0) {
    if (impl_->triggers->Match(input, nullptr, &info)) return true;
    if (info.kind != re2::RE2::Set::kNoError) return true;  // the DFA gave up: assume the worst
  }
  if (impl_->rules.size() == impl_->builtin_count) return false;
  if (!impl_->custom_set) return true;
  return impl_->custom_set->Match(input, nullptr, &info) || info.kind != re2::RE2::Set::kNoError;
}

void Sentinel::set_sink(FindingSink sink) { impl_->sink = std::move(sink); }

const std::vector<Rule>& Sentinel::rules() const { return impl_->rules; }

}  // namespace chorus::shhh

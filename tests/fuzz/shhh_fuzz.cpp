// libFuzzer target: the SHHH sentinel (host/src/shhh/) on arbitrary text and JSON. Every log line and
// every published message passes through it, so its input is as untrusted as input gets.
//
// Input: bytes, given to redact_text and redact_json of a sentinel with the built-in rules, and to
// redact_text of one with a custom rule. Besides "no crash, no UB, no exception", for every input:
//  - findings are in input order, inside the input, and carry the SHA-256 of exactly their bytes;
//  - the output is the input with the union of the findings' ranges replaced, each connected part
//    once, by "[REDACTED]" (so no finding's bytes survive in place); no finding, output == input;
//  - may_contain_secret(input) == false implies no finding (the prefilter never hides a secret);
//  - redacting the output again finds nothing (the placeholder matches no rule, and a redaction never
//    creates a new secret);
//  - redact_json of valid JSON gives valid JSON of the same shape (keys, lengths, non-string values),
//    every finding's json_path points into it, and redacting it again finds nothing.
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shhh/sentinel.hpp"

namespace {

using namespace chorus::shhh;

[[noreturn]] void invariant_failed(const char* what, std::string_view a = {}, std::string_view b = {}) {
  fprintf(stderr, "shhh_fuzz: invariant violated: %s ['%.*s' '%.*s']\n", what, static_cast<int>(a.size()), a.data(),
          static_cast<int>(b.size()), b.data());
  abort();
}

std::string sha256(std::string_view s) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  char hex[2 * sizeof d + 1];
  for (size_t i = 0; i < sizeof d; ++i) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return std::string(hex, 2 * sizeof d);
}

const Sentinel& builtin() {
  static const std::unique_ptr<Sentinel> s = [] {
    std::string error;
    auto p = Sentinel::create(Options{}, &error);
    if (!p) invariant_failed("built-in sentinel refused", error);
    return p;
  }();
  return *s;
}

const Sentinel& custom() {
  static const std::unique_ptr<Sentinel> s = [] {
    Options o;
    o.custom_rules.push_back({"fuzz.hash", "(?i)secret\\s*#\\s*(\\w+)", Severity::kLow, {"fuzz"}});
    o.custom_rules.push_back({"fuzz.empty", "z*", Severity::kMedium, {}});
    std::string error;
    auto p = Sentinel::create(o, &error);
    if (!p) invariant_failed("custom sentinel refused", error);
    return p;
  }();
  return *s;
}

// The text findings of `r` explain its output exactly.
void check_text_result(std::string_view in, const Result& r) {
  std::string expected;
  size_t copied = 0, prev = 0;
  bool first = true;
  for (const Finding& f : r.findings) {
    if (f.length == 0 || f.offset > in.size() || f.length > in.size() - f.offset)
      invariant_failed("finding outside the input", f.rule);
    if (!first && f.offset < prev) invariant_failed("findings out of order", f.rule);
    prev = f.offset;
    if (f.sha256_hex != sha256(in.substr(f.offset, f.length))) invariant_failed("wrong sha256", f.rule);
    if (!f.json_path.empty()) invariant_failed("json_path on a text finding", f.rule, f.json_path);
    const size_t end = f.offset + f.length;
    if (first || f.offset > copied) {
      expected.append(in.substr(copied, f.offset - copied));
      expected.append(kPlaceholder);
      copied = end;
    } else {
      copied = std::max(copied, end);
    }
    first = false;
  }
  expected.append(in.substr(std::min(copied, in.size())));
  if (r.text != expected) invariant_failed("output is not the input with the findings replaced", in, r.text);
}

size_t count_keys(const nlohmann::json& j) {
  size_t n = j.is_object() ? j.size() : 0;
  if (j.is_structured())
    for (const auto& v : j) n += count_keys(v);
  return n;
}

// Same keys, array lengths and non-string values; strings may differ (the redacted ones).
// (Recursive: libFuzzer's inputs are a few KiB, so the nesting is too.)
bool same_shape(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_string()) return true;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !same_shape(it.value(), b[it.key()])) return false;
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same_shape(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Sentinel& s = builtin();

  const Result t = s.redact_text(in, Channel::kLog, "fuzz");
  check_text_result(in, t);
  if (!t.findings.empty() && !s.may_contain_secret(in)) invariant_failed("prefilter said no, a rule found", in);
  const Result again = s.redact_text(t.text, Channel::kLog, "fuzz");
  if (!again.findings.empty()) invariant_failed("redacting twice finds more", t.text, again.findings[0].rule);

  const Result c = custom().redact_text(in, Channel::kUcxi, "fuzz");
  check_text_result(in, c);

  const Result j = s.redact_json(in, Channel::kPubsub, "fuzz");
  if (j.findings.empty() && j.text != in) invariant_failed("JSON changed without a finding", in, j.text);
  size_t key_events = 0;
  const auto parsed = nlohmann::json::parse(
      in.begin(), in.end(),
      [&](int, nlohmann::json::parse_event_t e, nlohmann::json&) {
        if (e == nlohmann::json::parse_event_t::key) ++key_events;
        return true;
      },
      false);
  if (!parsed.is_discarded()) {
    const auto out = nlohmann::json::parse(j.text, nullptr, false);
    if (out.is_discarded()) invariant_failed("redacted JSON is not JSON", in, j.text);
    if (!j.findings.empty() && !same_shape(parsed, out)) invariant_failed("redaction changed the structure", in, j.text);
    const Result j2 = s.redact_json(j.text, Channel::kPubsub, "fuzz");
    if (!j2.findings.empty()) invariant_failed("redacting JSON twice finds more", j.text, j2.findings[0].rule);
    // A JSON Pointer names one member only when no object repeats a key (the DOM keeps the last).
    if (key_events == count_keys(parsed)) {
      for (const Finding& f : j.findings)
        if (!f.json_path.empty() && !out.contains(nlohmann::json::json_pointer(f.json_path)))
          invariant_failed("finding's json_path is not in the document", j.text, f.json_path);
    }
  } else {
    check_text_result(in, j);  // not JSON: redacted as text
  }
  return 0;
}

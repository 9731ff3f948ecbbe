// libFuzzer target: check_schema, validate_and_default and redact_secrets (chorus/config_schema.hpp, which
// the host uses through json_schema.hpp). The schema comes from a plugin (untrusted), the value from the
// user's config.
//
// Input: <schema JSON> NUL <value JSON>. Raw NUL never occurs in valid JSON, so it is an unambiguous
// separator; without one, the whole input is the schema and the value is {}. Either part that is not
// valid JSON (nlohmann::json, no exceptions) makes the input uninteresting.
//
// All three functions run on every schema, including ones check_schema refuses: validate_and_default
// and redact_secrets document what they do with a non-schema, so they must not misbehave on one. Any
// exception escaping, crash or sanitizer report is a bug. Also checked:
//  - check_schema and validate_and_default are deterministic and do not modify their const inputs;
//  - a validation error starts with the path prefix that was given;
//  - redact_secrets of a schema marked "x-secret": true is "***", and never changes the shape of an
//    object (same keys) or the length of an array.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "json_schema.hpp"

namespace {

using Json = nlohmann::json;

[[noreturn]] void invariant_failed(const char *what) {
  fprintf(stderr, "json_schema_fuzz: invariant violated: %s\n", what);
  abort();
}

void check_redacted_shape(const Json &value, const Json &redacted) {
  if (redacted == Json("***")) return;  // a secret (or a value that was "***" already)
  if (value.is_object()) {
    if (!redacted.is_object() || redacted.size() != value.size()) invariant_failed("redact_secrets changed an object's keys");
    for (const auto &[key, child] : value.items()) {
      auto it = redacted.find(key);
      if (it == redacted.end()) invariant_failed("redact_secrets dropped a key");
      check_redacted_shape(child, *it);
    }
  } else if (value.is_array()) {
    if (!redacted.is_array() || redacted.size() != value.size()) invariant_failed("redact_secrets changed an array's length");
    for (size_t i = 0; i < value.size(); ++i) check_redacted_shape(value[i], redacted[i]);
  } else if (redacted != value) {
    invariant_failed("redact_secrets changed a value that is not a secret");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view value_text = nul == std::string_view::npos ? std::string_view("{}") : input.substr(nul + 1);

  const Json schema = Json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return 0;
  const Json value = Json::parse(value_text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return 0;
  const Json schema_copy = schema;

  const auto checked = chorus::host::check_schema(schema);
  if (checked && checked->rfind("schema", 0) != 0) invariant_failed("check_schema message does not start with 'schema'");
  if (chorus::host::check_schema(schema) != checked) invariant_failed("check_schema is not deterministic");

  const std::string prefix = "plugins.fuzz.config";
  Json filled = value;
  const auto error = chorus::host::validate_and_default(schema, filled, prefix);
  if (error && error->rfind(prefix, 0) != 0) invariant_failed("validation error does not start with the path prefix");
  Json filled_again = value;
  if (chorus::host::validate_and_default(schema, filled_again, prefix) != error || filled_again != filled)
    invariant_failed("validate_and_default is not deterministic");
  // With an empty prefix the message starts with the key path (or is a bare message at the root).
  Json scratch = value;
  (void)chorus::host::validate_and_default(schema, scratch, "");

  const Json redacted = chorus::host::redact_secrets(schema, value);
  if (schema.is_object() && schema.contains("x-secret") && schema["x-secret"] == true && redacted != Json("***"))
    invariant_failed("a secret root value was not redacted");
  check_redacted_shape(value, redacted);
  if (!error) {
    // What /plugins shows: the validated, defaulted config with secrets redacted.
    const Json shown = chorus::host::redact_secrets(schema, filled);
    check_redacted_shape(filled, shown);
    (void)shown.dump();
  }

  if (schema != schema_copy) invariant_failed("a const schema was modified");
  return 0;
}

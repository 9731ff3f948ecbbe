// Tests of the JSON Schema subset used for plugin config sections. Messages reach users (and plugin
// authors), so they are compared exactly.
#include "json_schema.hpp"

#include <string>

#include <gtest/gtest.h>

namespace chorus::host {
namespace {

using Json = nlohmann::json;

const std::string kSupported =
    " (supported: type, properties, required, additionalProperties, items, enum, minimum, maximum, minLength, "
    "maxLength, default, x-secret, pattern, description, title, $schema, $comment, $id)";
const std::string kTypeChoices = " (expected object, array, string, integer, number, boolean or null)";

// check_schema's verdict on JSON text: "" when accepted.
std::string check(const char *schema_text) {
  return check_schema(Json::parse(schema_text)).value_or("");
}

// validate_and_default's verdict, "" when valid; `value` is updated in place.
std::string validate(const char *schema_text, Json &value, const std::string &prefix = "plugins.x.config") {
  return validate_and_default(Json::parse(schema_text), value, prefix).value_or("");
}

std::string validate_text(const char *schema_text, const char *value_text,
                          const std::string &prefix = "plugins.x.config") {
  Json value = Json::parse(value_text);
  return validate(schema_text, value, prefix);
}

// ---------------------------------------------------------------------------------------------------

TEST(JsonSchemaCheck, AcceptsEveryKeyword) {
  EXPECT_EQ(check("{}"), "");
  EXPECT_EQ(check(R"({
    "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "chorus:p2p", "$comment": "c",
    "title": "p2p", "description": "The P2P plugin",
    "type": "object", "additionalProperties": false, "required": ["listen"],
    "properties": {
      "listen": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": ["/ip4/0.0.0.0/tcp/9000"]},
      "mode": {"enum": ["a", "b"], "default": "a"},
      "port": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535, "default": 9000},
      "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.5},
      "name": {"type": "string", "minLength": 0, "maxLength": 10},
      "token": {"type": "string", "x-secret": true},
      "extra": {"type": "object", "additionalProperties": {"type": "boolean"}},
      "open": {"type": "object", "additionalProperties": true},
      "flag": {"type": "boolean", "default": false},
      "nothing": {"type": "null"}
    }
  })"),
            "");
}

TEST(JsonSchemaCheck, PatternsAreCheckedAndBounded) {
  EXPECT_EQ(check(R"({"type": "string", "pattern": "^/ip4/"})"), "");
  EXPECT_NE(check(R"j({"pattern": "(unclosed"})j").find("schema.pattern: not a valid regular expression"), std::string::npos);
  EXPECT_NE(check(R"j({"pattern": "((((((((((a))))))))))"})j").find("at most 8 groups"), std::string::npos);
  EXPECT_NE(check(R"({"pattern": 3})").find("schema.pattern: expected a string"), std::string::npos);
}

TEST(JsonSchemaValidate, PatternMatchesOrNamesTheValue) {
  const char *schema = R"({"type": "array", "items": {"type": "string", "pattern": "^/ip4/[0-9.]+/tcp/[0-9]+$"}})";
  EXPECT_EQ(validate_text(schema, R"(["/ip4/1.2.3.4/tcp/9000"])"), "");
  EXPECT_EQ(validate_text(schema, R"(["/ip4/1.2.3.4/tcp/9000", "/ip4/1.2.3.4/tcp/x"])"),
            "plugins.x.config[1]: '/ip4/1.2.3.4/tcp/x' does not have the expected form (^/ip4/[0-9.]+/tcp/[0-9]+$)");
  const std::string long_value = "[\"" + std::string(2000, 'a') + "\"]";
  EXPECT_NE(validate_text(schema, long_value.c_str()).find("too long to check"), std::string::npos);
}

TEST(JsonSchemaCheck, RejectsUnknownKeywords) {
  EXPECT_EQ(check(R"({"tpye": "string"})"), "schema: unknown keyword 'tpye'" + kSupported);
  EXPECT_EQ(check(R"({"properties": {"listen": {"items": {"patern": "^/"}}}})"),
            "schema.properties.listen.items: unknown keyword 'patern'" + kSupported);
  EXPECT_EQ(check(R"({"exclusiveMinimum": 0})"), "schema: unknown keyword 'exclusiveMinimum'" + kSupported);
  EXPECT_EQ(check(R"({"additionalProperties": {"maximun": 3}})"),
            "schema.additionalProperties: unknown keyword 'maximun'" + kSupported);
}

TEST(JsonSchemaCheck, RejectsMalformedKeywords) {
  EXPECT_EQ(check("[]"), "schema: expected a schema object, got array");
  EXPECT_EQ(check("true"), "schema: expected a schema object, got boolean");
  EXPECT_EQ(check(R"({"type": "strng"})"), "schema.type: unknown type 'strng'" + kTypeChoices);
  EXPECT_EQ(check(R"({"type": ["string", 5]})"), "schema.type[1]: unknown type 5" + kTypeChoices);
  EXPECT_EQ(check(R"({"type": ["string", "string"]})"), "schema.type[1]: type 'string' is listed twice");
  EXPECT_EQ(check(R"({"type": []})"), "schema.type: expected a type name or a non-empty array of them");
  EXPECT_EQ(check(R"({"type": 5})"), "schema.type: expected a type name or a non-empty array of them");
  EXPECT_EQ(check(R"({"properties": []})"), "schema.properties: expected an object of schemas, got array");
  EXPECT_EQ(check(R"({"properties": {"a": "string"}})"), "schema.properties.a: expected a schema object, got string");
  EXPECT_EQ(check(R"({"required": "a"})"), "schema.required: expected an array of key names, got string");
  EXPECT_EQ(check(R"({"required": ["a", 1]})"), "schema.required[1]: expected a string, got number");
  EXPECT_EQ(check(R"({"required": ["a", "a"]})"), "schema.required[1]: 'a' is listed twice");
  EXPECT_EQ(check(R"({"additionalProperties": "no"})"), "schema.additionalProperties: expected a schema object, got string");
  EXPECT_EQ(check(R"({"items": [{"type": "string"}]})"),
            "schema.items: the array (tuple) form of items is not supported; give one schema");
  EXPECT_EQ(check(R"({"items": {"type": "text"}})"), "schema.items.type: unknown type 'text'" + kTypeChoices);
  EXPECT_EQ(check(R"({"enum": []})"), "schema.enum: expected a non-empty array of values");
  EXPECT_EQ(check(R"({"enum": "a"})"), "schema.enum: expected a non-empty array of values");
  EXPECT_EQ(check(R"({"minimum": "0"})"), "schema.minimum: expected a number, got string");
  EXPECT_EQ(check(R"({"maximum": null})"), "schema.maximum: expected a number, got null");
  EXPECT_EQ(check(R"({"minimum": 2, "maximum": 1})"), "schema: minimum 2 is greater than maximum 1");
  EXPECT_EQ(check(R"({"minLength": -1})"), "schema.minLength: expected a non-negative integer, got -1");
  EXPECT_EQ(check(R"({"maxLength": 1.5})"), "schema.maxLength: expected a non-negative integer, got 1.5");
  EXPECT_EQ(check(R"({"minLength": 3, "maxLength": 2})"), "schema: minLength 3 is greater than maxLength 2");
  EXPECT_EQ(check(R"({"x-secret": "yes"})"), "schema.x-secret: expected a boolean, got string");
  EXPECT_EQ(check(R"({"description": 5})"), "schema.description: expected a string, got number");
  EXPECT_EQ(check(R"({"title": {}})"), "schema.title: expected a string, got object");
}

TEST(JsonSchemaCheck, DefaultsMustSatisfyTheirSchema) {
  EXPECT_EQ(check(R"({"type": "integer", "maximum": 10, "default": 11})"),
            "schema.default: 11 is greater than the maximum 10");
  EXPECT_EQ(check(R"({"properties": {"port": {"type": "integer", "default": "9000"}}})"),
            "schema.properties.port.default: expected an integer, got string");
  EXPECT_EQ(check(R"({"properties": {"tls": {"type": "object", "additionalProperties": false,
                                              "default": {"verfy": true}, "properties": {"verify": {}}}}})"),
            "schema.properties.tls.default: unknown key 'verfy'");
}

// ---------------------------------------------------------------------------------------------------

const char *kListenSchema = R"({"type": "object", "additionalProperties": false,
  "properties": {"listen": {"type": "array", "items": {"type": "string"}}}})";

TEST(JsonSchemaValidate, TypeErrorsNameThePath) {
  EXPECT_EQ(validate_text(kListenSchema, R"({"listen": ["/ip4/0.0.0.0/tcp/9000", 9000]})", "plugins.p2p.config"),
            "plugins.p2p.config.listen[1]: expected a string, got number");
  EXPECT_EQ(validate_text(kListenSchema, R"({"listen": "/ip4/0.0.0.0/tcp/9000"})", "plugins.p2p.config"),
            "plugins.p2p.config.listen: expected an array, got string");
  EXPECT_EQ(validate_text(kListenSchema, "[]", "plugins.p2p.config"), "plugins.p2p.config: expected an object, got array");
  EXPECT_EQ(validate_text(kListenSchema, R"({"listen": []})"), "");
  EXPECT_EQ(validate_text(R"({"type": "boolean"})", "null"), "plugins.x.config: expected a boolean, got null");
  EXPECT_EQ(validate_text(R"({"type": "null"})", "{}"), "plugins.x.config: expected null, got object");
  EXPECT_EQ(validate_text(R"({"type": "string"})", "true"), "plugins.x.config: expected a string, got boolean");
}

TEST(JsonSchemaValidate, TypeUnions) {
  EXPECT_EQ(validate_text(R"({"type": ["string", "null"]})", "5"), "plugins.x.config: expected a string or null, got number");
  EXPECT_EQ(validate_text(R"({"type": ["string", "integer", "null"]})", "[]"),
            "plugins.x.config: expected a string, an integer or null, got array");
  EXPECT_EQ(validate_text(R"({"type": ["string", "null"]})", "null"), "");
  EXPECT_EQ(validate_text(R"({"type": ["string", "null"]})", R"("s")"), "");
}

TEST(JsonSchemaValidate, IntegersAndNumbers) {
  EXPECT_EQ(validate_text(R"({"type": "integer"})", "3"), "");
  EXPECT_EQ(validate_text(R"({"type": "integer"})", "-3"), "");
  EXPECT_EQ(validate_text(R"({"type": "integer"})", "3.0"), "");  // as in JSON Schema
  EXPECT_EQ(validate_text(R"({"type": "integer"})", "3.5"), "plugins.x.config: expected an integer, got number");
  EXPECT_EQ(validate_text(R"({"type": "number"})", "3"), "");
  EXPECT_EQ(validate_text(R"({"type": "number"})", "3.5"), "");
  EXPECT_EQ(validate_text(R"({"type": "number"})", R"("3")"), "plugins.x.config: expected a number, got string");
}

TEST(JsonSchemaValidate, UnknownAndMissingKeys) {
  EXPECT_EQ(validate_text(kListenSchema, R"({"lisen": []})", "plugins.p2p.config"), "plugins.p2p.config: unknown key 'lisen'");
  // Unknown keys are reported first: a misspelt key explains the rest.
  EXPECT_EQ(validate_text(kListenSchema, R"({"listen": 1, "zz": 2})"), "plugins.x.config: unknown key 'zz'");
  // Without "additionalProperties": false extra keys are allowed (our default)...
  EXPECT_EQ(validate_text(R"({"properties": {"a": {}}})", R"({"b": 1})"), "");
  EXPECT_EQ(validate_text(R"({"additionalProperties": true})", R"({"b": 1})"), "");
  // ...and a schema for them checks each one.
  EXPECT_EQ(validate_text(R"({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}})",
                          R"({"a": "x", "b": 1, "c": "2"})"),
            "plugins.x.config.c: expected an integer, got string");
  EXPECT_EQ(validate_text(R"({"type": "object", "required": ["endpoint", "model"]})", R"({"model": "m"})",
                          "plugins.ai-ollama.config"),
            "plugins.ai-ollama.config: missing required key 'endpoint'");
  EXPECT_EQ(validate_text(R"({"properties": {"tls": {"required": ["cert"]}}})", R"({"tls": {}})"),
            "plugins.x.config.tls: missing required key 'cert'");
}

TEST(JsonSchemaValidate, Enum) {
  EXPECT_EQ(validate_text(R"({"properties": {"mode": {"enum": ["a", "b"]}}})", R"({"mode": "x"})"),
            R"(plugins.x.config.mode: 'x' is not one of ["a","b"])");
  EXPECT_EQ(validate_text(R"({"enum": [1, 2, null]})", "3"), "plugins.x.config: 3 is not one of [1,2,null]");
  EXPECT_EQ(validate_text(R"({"enum": [1, 2]})", "1.0"), "");
  EXPECT_EQ(validate_text(R"({"enum": [{"a": 1}, [1]]})", "[1]"), "");
  EXPECT_EQ(validate_text(R"({"enum": ["a"]})", R"("a")"), "");
}

TEST(JsonSchemaValidate, Bounds) {
  const char *port = R"({"type": "integer", "minimum": 0, "maximum": 65535})";
  EXPECT_EQ(validate_text(port, "70000"), "plugins.x.config: 70000 is greater than the maximum 65535");
  EXPECT_EQ(validate_text(port, "-1"), "plugins.x.config: -1 is less than the minimum 0");
  EXPECT_EQ(validate_text(port, "0"), "");
  EXPECT_EQ(validate_text(port, "65535"), "");
  EXPECT_EQ(validate_text(R"({"minimum": 0.5})", "0.25"), "plugins.x.config: 0.25 is less than the minimum 0.5");
  EXPECT_EQ(validate_text(R"({"maximum": 0.5})", "1"), "plugins.x.config: 1 is greater than the maximum 0.5");
  // Exact for 64-bit integers, where doubles would round.
  EXPECT_EQ(validate_text(R"({"maximum": 9223372036854775806})", "9223372036854775807"),
            "plugins.x.config: 9223372036854775807 is greater than the maximum 9223372036854775806");
  EXPECT_EQ(validate_text(R"({"minimum": -1})", "18446744073709551615"), "");
  EXPECT_EQ(validate_text(R"({"maximum": -1})", "18446744073709551615"),
            "plugins.x.config: 18446744073709551615 is greater than the maximum -1");
  // Bounds concern numbers only.
  EXPECT_EQ(validate_text(R"({"minimum": 5})", R"("abc")"), "");
}

TEST(JsonSchemaValidate, StringLengthsCountCharacters) {
  EXPECT_EQ(validate_text(R"({"maxLength": 4})", R"("héllo")"), "plugins.x.config: 'héllo' is longer than 4 characters");
  EXPECT_EQ(validate_text(R"({"minLength": 6})", R"("héllo")"), "plugins.x.config: 'héllo' is shorter than 6 characters");
  EXPECT_EQ(validate_text(R"({"minLength": 5, "maxLength": 5})", R"("héllo")"), "");  // 6 bytes, 5 characters
  EXPECT_EQ(validate_text(R"({"minLength": 1})", R"("")"), "plugins.x.config: '' is shorter than 1 characters");
  EXPECT_EQ(validate_text(R"({"maxLength": 1})", "[1, 2]"), "");  // lengths concern strings only
}

TEST(JsonSchemaValidate, SecretsAreNeverShown) {
  const char *schema = R"({"properties": {"api_key": {"type": "string", "minLength": 20, "enum": ["a"], "x-secret": true}}})";
  EXPECT_EQ(validate_text(schema, R"({"api_key": "hunter2"})"),
            R"(plugins.x.config.api_key: '***' is not one of ["a"])");
  EXPECT_EQ(validate_text(R"({"maxLength": 3, "x-secret": true})", R"("hunter2")"),
            "plugins.x.config: '***' is longer than 3 characters");
  EXPECT_EQ(validate_text(R"({"maximum": 3, "x-secret": true})", "1234"),
            "plugins.x.config: '***' is greater than the maximum 3");
}

TEST(JsonSchemaValidate, EmptyPrefix) {
  EXPECT_EQ(validate_text(kListenSchema, "[]", ""), "expected an object, got array");
  EXPECT_EQ(validate_text(kListenSchema, R"({"x": 1})", ""), "unknown key 'x'");
  EXPECT_EQ(validate_text(kListenSchema, R"({"listen": [1]})", ""), "listen[0]: expected a string, got number");
}

TEST(JsonSchemaValidate, NestedArraysOfObjects) {
  const char *schema = R"({"properties": {"peers": {"type": "array", "items": {"type": "object",
      "additionalProperties": false, "properties": {"addr": {"type": "string"}}}}}})";
  EXPECT_EQ(validate_text(schema, R"({"peers": [{"addr": "a"}, {"addr": "b", "port": 1}]})"),
            "plugins.x.config.peers[1]: unknown key 'port'");
  EXPECT_EQ(validate_text(schema, R"({"peers": [{"addr": "a"}, {"addr": ["b"]}]})"),
            "plugins.x.config.peers[1].addr: expected a string, got array");
}

// ---------------------------------------------------------------------------------------------------

TEST(JsonSchemaDefaults, FillAbsentProperties) {
  const char *schema = R"({"type": "object", "properties": {
      "port": {"type": "integer", "default": 9000},
      "name": {"type": "string"},
      "tags": {"type": "array", "default": ["a"]}}})";
  Json value = Json::object();
  EXPECT_EQ(validate(schema, value), "");
  EXPECT_EQ(value, Json::parse(R"({"port": 9000, "tags": ["a"]})"));

  Json given = Json::parse(R"({"port": 1, "tags": []})");  // present values, even empty ones, stay
  EXPECT_EQ(validate(schema, given), "");
  EXPECT_EQ(given, Json::parse(R"({"port": 1, "tags": []})"));
}

TEST(JsonSchemaDefaults, NestedObjects) {
  const char *schema = R"({"properties": {
      "tls": {"type": "object", "properties": {"verify": {"type": "boolean", "default": true}}},
      "retry": {"type": "object", "default": {}, "properties": {"count": {"type": "integer", "default": 3}}}}})";
  // A nested object that exists gets its defaults; one with a default is created and filled.
  Json present = Json::parse(R"({"tls": {}})");
  EXPECT_EQ(validate(schema, present), "");
  EXPECT_EQ(present, Json::parse(R"({"tls": {"verify": true}, "retry": {"count": 3}})"));
  // An absent nested object without a default is not invented.
  Json absent = Json::object();
  EXPECT_EQ(validate(schema, absent), "");
  EXPECT_EQ(absent, Json::parse(R"({"retry": {"count": 3}})"));
}

TEST(JsonSchemaDefaults, InsideArrayItems) {
  Json value = Json::parse(R"([{}, {"weight": 5}])");
  EXPECT_EQ(validate(R"({"items": {"properties": {"weight": {"default": 1}}}})", value), "");
  EXPECT_EQ(value, Json::parse(R"([{"weight": 1}, {"weight": 5}])"));
}

TEST(JsonSchemaDefaults, SatisfyRequiredAndLiveWithClosedObjects) {
  Json value = Json::object();
  EXPECT_EQ(validate(R"({"additionalProperties": false, "required": ["endpoint"],
                        "properties": {"endpoint": {"type": "string", "default": "http://localhost:11434"}}})",
                     value),
            "");
  EXPECT_EQ(value, Json::parse(R"({"endpoint": "http://localhost:11434"})"));
}

// ---------------------------------------------------------------------------------------------------

TEST(JsonSchemaRedact, ReplacesSecretsOnly) {
  const Json schema = Json::parse(R"({"properties": {
      "api_key": {"type": "string", "x-secret": true},
      "endpoint": {"type": "string"},
      "auth": {"type": "object", "x-secret": true},
      "upstreams": {"type": "array", "items": {"properties": {"token": {"x-secret": true}, "url": {}}}},
      "headers": {"type": "object", "additionalProperties": {"x-secret": true}},
      "public": {"type": "string", "x-secret": false}}})");
  const Json value = Json::parse(R"({
      "api_key": "sk-123", "endpoint": "http://h", "auth": {"user": "u", "password": "p"},
      "upstreams": [{"token": "t1", "url": "a"}, {"url": "b"}],
      "headers": {"Authorization": "Bearer x", "X-Count": 3},
      "public": "shown", "unlisted": "kept"})");
  EXPECT_EQ(redact_secrets(schema, value), Json::parse(R"({
      "api_key": "***", "endpoint": "http://h", "auth": "***",
      "upstreams": [{"token": "***", "url": "a"}, {"url": "b"}],
      "headers": {"Authorization": "***", "X-Count": "***"},
      "public": "shown", "unlisted": "kept"})"));
  EXPECT_EQ(value["api_key"], "sk-123");  // the input is not touched
}

TEST(JsonSchemaRedact, WholeValueAndNoSchema) {
  EXPECT_EQ(redact_secrets(Json::parse(R"({"x-secret": true})"), Json::parse("[1, 2]")), "***");
  EXPECT_EQ(redact_secrets(Json::object(), Json::parse(R"({"a": 1})")), Json::parse(R"({"a": 1})"));
}

}  // namespace
}  // namespace chorus::host

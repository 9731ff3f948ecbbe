// The JSON Schema subset used for plugin config sections; see json_schema.hpp.
//
// Two departures from full JSON Schema, both on purpose: unknown keywords are an error in check_schema()
// (a misspelt "maximun" would otherwise silently check nothing), and validation fills in defaults, so a
// plugin receives its config complete.
#include "json_schema.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <regex>
#include <set>
#include <string_view>

namespace chorus::host {
namespace {

using Json = nlohmann::json;

constexpr std::array<std::string_view, 7> kTypes = {"object", "array",   "string", "integer",
                                                     "number", "boolean", "null"};

// Everything check_schema() accepts. description, title, $schema and $comment are annotations only.
constexpr std::array<std::string_view, 18> kKeywords = {
    "type",      "properties", "required",    "additionalProperties", "items",   "enum",
    "minimum",   "maximum",    "minLength",   "maxLength",            "default", "x-secret",
    "pattern",   "description", "title",      "$schema",              "$comment", "$id"};

// "pattern" (ECMAScript, unanchored as JSON Schema says). std::regex recurses per character and per
// group, so patterns and the strings tested against them are kept small.
constexpr size_t kMaxPattern = 256;
constexpr size_t kMaxPatternGroups = 8;
constexpr size_t kMaxPatternSubject = 1024;

std::optional<std::string> pattern_problem(const std::string &pattern) {
  if (pattern.size() > kMaxPattern) return "a pattern may have at most " + std::to_string(kMaxPattern) + " characters";
  if (static_cast<size_t>(std::count(pattern.begin(), pattern.end(), '(')) > kMaxPatternGroups)
    return "a pattern may have at most " + std::to_string(kMaxPatternGroups) + " groups";
  try {
    std::regex re(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error &e) {
    return std::string("not a valid regular expression: ") + e.what();
  }
  return std::nullopt;
}

std::string member_path(const std::string &parent, const std::string &key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string index_path(const std::string &parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string with_path(const std::string &path, const std::string &message) {
  return path.empty() ? message : path + ": " + message;
}

std::string join(const auto &names, std::string_view separator) {
  std::string out;
  for (std::string_view n : names) out += (out.empty() ? "" : std::string(separator)) + std::string(n);
  return out;
}

// The coarse JSON type of a value, for "got <type>": integers and fractions are both "number".
std::string json_type_name(const Json &value) {
  switch (value.type()) {
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::null: return "null";
    default: return "number";
  }
}

std::string with_article(std::string_view type) {
  if (type == "null") return "null";
  if (type == "object" || type == "array" || type == "integer") return "an " + std::string(type);
  return "a " + std::string(type);
}

// "a string", "a string or null", "a string, an integer or null".
std::string expected_types(const std::vector<std::string> &types) {
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += (i + 1 == types.size()) ? " or " : ", ";
    out += with_article(types[i]);
  }
  return out;
}

bool has_type(const Json &value, std::string_view type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    // As in JSON Schema, 3.0 is an integer: YAML `timeout: 3.0` should not be refused.
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    double d = value.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

bool is_secret(const Json &schema) {
  auto it = schema.find("x-secret");
  return it != schema.end() && it->is_boolean() && it->get<bool>();
}

// A value as shown in a message: strings in single quotes (cut when long), others as JSON, and a
// secret never at all.
std::string shown(const Json &value, bool secret) {
  if (secret) return "'***'";
  if (!value.is_string()) return value.dump();
  const std::string &s = value.get_ref<const std::string &>();
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) out += (s[i] == '\n') ? std::string("\\n") : std::string(1, s[i]);
  return out + (s.size() > kMax ? "...'" : "'");
}

// Length in characters (Unicode code points), as minLength/maxLength count it, not in UTF-8 bytes.
size_t utf8_length(const std::string &s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// -1, 0 or 1. Exact when both are integers (a double cannot hold every 64-bit integer).
int compare_numbers(const Json &a, const Json &b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    auto negative = [](const Json &j) { return !j.is_number_unsigned() && j.get<int64_t>() < 0; };
    if (negative(a) != negative(b)) return negative(a) ? -1 : 1;
    if (negative(a)) {
      int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
      return (x > y) - (x < y);
    }
    uint64_t x = a.get<uint64_t>(), y = b.get<uint64_t>();
    return (x > y) - (x < y);
  }
  double x = a.get<double>(), y = b.get<double>();
  return (x > y) - (x < y);
}

// The type names allowed by a schema's "type" (empty = any).
std::vector<std::string> allowed_types(const Json &schema) {
  std::vector<std::string> types;
  auto it = schema.find("type");
  if (it == schema.end()) return types;
  if (it->is_string()) types.push_back(it->get<std::string>());
  if (it->is_array()) {
    for (const Json &t : *it) {
      if (t.is_string()) types.push_back(t.get<std::string>());
    }
  }
  return types;
}

// ---------------------------------------------------------------------------------------------------
// check_schema

std::optional<std::string> check_node(const Json &schema, const std::string &path);

std::optional<std::string> check_type_keyword(const Json &type, const std::string &path) {
  auto known = [](const Json &t) {
    return t.is_string() && std::find(kTypes.begin(), kTypes.end(), t.get<std::string>()) != kTypes.end();
  };
  const std::string choices = "(expected object, array, string, integer, number, boolean or null)";
  if (type.is_string()) {
    if (!known(type)) return path + ": unknown type " + shown(type, false) + " " + choices;
    return std::nullopt;
  }
  if (!type.is_array() || type.empty()) return path + ": expected a type name or a non-empty array of them";
  std::set<std::string> seen;
  for (size_t i = 0; i < type.size(); ++i) {
    if (!known(type[i])) return index_path(path, i) + ": unknown type " + shown(type[i], false) + " " + choices;
    if (!seen.insert(type[i].get<std::string>()).second) {
      return index_path(path, i) + ": type " + shown(type[i], false) + " is listed twice";
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_node(const Json &schema, const std::string &path) {
  if (!schema.is_object()) return path + ": expected a schema object, got " + json_type_name(schema);

  for (const auto &[keyword, value] : schema.items()) {
    if (std::find(kKeywords.begin(), kKeywords.end(), keyword) == kKeywords.end()) {
      return path + ": unknown keyword '" + keyword + "' (supported: " + join(kKeywords, ", ") + ")";
    }
    const std::string at = path + "." + keyword;
    if (keyword == "type") {
      if (auto e = check_type_keyword(value, at)) return e;
    } else if (keyword == "properties") {
      if (!value.is_object()) return at + ": expected an object of schemas, got " + json_type_name(value);
      for (const auto &[name, property] : value.items()) {
        if (auto e = check_node(property, at + "." + name)) return e;
      }
    } else if (keyword == "required") {
      if (!value.is_array()) return at + ": expected an array of key names, got " + json_type_name(value);
      std::set<std::string> seen;
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_string()) return index_path(at, i) + ": expected a string, got " + json_type_name(value[i]);
        if (!seen.insert(value[i].get<std::string>()).second) {
          return index_path(at, i) + ": " + shown(value[i], false) + " is listed twice";
        }
      }
    } else if (keyword == "additionalProperties") {
      if (!value.is_boolean()) {
        if (auto e = check_node(value, at)) return e;
      }
    } else if (keyword == "items") {
      if (value.is_array()) return at + ": the array (tuple) form of items is not supported; give one schema";
      if (auto e = check_node(value, at)) return e;
    } else if (keyword == "enum") {
      if (!value.is_array() || value.empty()) return at + ": expected a non-empty array of values";
    } else if (keyword == "minimum" || keyword == "maximum") {
      if (!value.is_number()) return at + ": expected a number, got " + json_type_name(value);
    } else if (keyword == "minLength" || keyword == "maxLength") {
      if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<int64_t>() < 0)) {
        return at + ": expected a non-negative integer, got " + value.dump();
      }
    } else if (keyword == "x-secret") {
      if (!value.is_boolean()) return at + ": expected a boolean, got " + json_type_name(value);
    } else if (keyword == "pattern") {
      if (!value.is_string()) return at + ": expected a string, got " + json_type_name(value);
      if (auto e = pattern_problem(value.get<std::string>())) return at + ": " + *e;
    } else if (keyword != "default") {  // description, title, $schema, $comment, $id
      if (!value.is_string()) return at + ": expected a string, got " + json_type_name(value);
    }
  }

  auto min = schema.find("minimum"), max = schema.find("maximum");
  if (min != schema.end() && max != schema.end() && compare_numbers(*min, *max) > 0) {
    return path + ": minimum " + min->dump() + " is greater than maximum " + max->dump();
  }
  auto min_len = schema.find("minLength"), max_len = schema.find("maxLength");
  if (min_len != schema.end() && max_len != schema.end() && compare_numbers(*min_len, *max_len) > 0) {
    return path + ": minLength " + min_len->dump() + " is greater than maxLength " + max_len->dump();
  }
  // A default that its own schema rejects would turn every absent key into an error: catch it here.
  if (auto def = schema.find("default"); def != schema.end()) {
    Json copy = *def;
    if (auto e = validate_and_default(schema, copy, path + ".default")) return e;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_schema(const nlohmann::json &schema) {
  return check_node(schema, "schema");
}

std::optional<std::string> validate_and_default(const nlohmann::json &schema, nlohmann::json &value,
                                                const std::string &path) {
  if (!schema.is_object()) return std::nullopt;  // not a schema (check_schema refuses it): no constraint
  const bool secret = is_secret(schema);

  if (std::vector<std::string> types = allowed_types(schema); !types.empty()) {
    if (std::none_of(types.begin(), types.end(), [&](const std::string &t) { return has_type(value, t); })) {
      return with_path(path, "expected " + expected_types(types) + ", got " + json_type_name(value));
    }
  }

  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    if (std::find(e->begin(), e->end(), value) == e->end()) {
      return with_path(path, shown(value, secret) + " is not one of " + e->dump());
    }
  }

  if (value.is_number()) {
    if (auto m = schema.find("minimum"); m != schema.end() && m->is_number() && compare_numbers(value, *m) < 0) {
      return with_path(path, shown(value, secret) + " is less than the minimum " + m->dump());
    }
    if (auto m = schema.find("maximum"); m != schema.end() && m->is_number() && compare_numbers(value, *m) > 0) {
      return with_path(path, shown(value, secret) + " is greater than the maximum " + m->dump());
    }
  }

  if (value.is_string()) {
    const size_t length = utf8_length(value.get_ref<const std::string &>());
    if (auto m = schema.find("minLength"); m != schema.end() && m->is_number() && compare_numbers(Json(length), *m) < 0) {
      return with_path(path, shown(value, secret) + " is shorter than " + m->dump() + " characters");
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && m->is_number() && compare_numbers(Json(length), *m) > 0) {
      return with_path(path, shown(value, secret) + " is longer than " + m->dump() + " characters");
    }
    if (auto m = schema.find("pattern"); m != schema.end() && m->is_string()) {
      const auto &text = value.get_ref<const std::string &>();
      if (text.size() > kMaxPatternSubject)
        return with_path(path, "is longer than " + std::to_string(kMaxPatternSubject) + " bytes (too long to check)");
      bool matched = false;
      try {
        matched = std::regex_search(text, std::regex(m->get<std::string>(), std::regex::ECMAScript));
      } catch (const std::regex_error &) {
        matched = false;
      }
      if (!matched) return with_path(path, shown(value, secret) + " does not have the expected form (" + m->get<std::string>() + ")");
    }
  }

  if (value.is_object()) {
    static const Json kNoProperties = Json::object();
    auto p = schema.find("properties");
    const Json &properties = (p != schema.end() && p->is_object()) ? *p : kNoProperties;
    auto extra = schema.find("additionalProperties");
    const bool extra_forbidden = extra != schema.end() && extra->is_boolean() && !extra->get<bool>();
    const bool extra_has_schema = extra != schema.end() && extra->is_object();

    // Unknown keys first: a misspelt key is the likeliest cause of any other error in this object.
    if (extra_forbidden) {
      for (const auto &[key, child] : value.items()) {
        if (!properties.contains(key)) return with_path(path, "unknown key '" + key + "'");
      }
    }
    for (auto &[key, child] : value.items()) {
      const Json *child_schema = nullptr;
      if (auto it = properties.find(key); it != properties.end()) child_schema = &*it;
      else if (extra_has_schema) child_schema = &*extra;
      if (child_schema) {
        if (auto e = validate_and_default(*child_schema, child, member_path(path, key))) return e;
      }
    }
    // Defaults for absent keys; validating the inserted default fills defaults nested inside it.
    for (const auto &[key, child_schema] : properties.items()) {
      if (value.contains(key) || !child_schema.is_object() || !child_schema.contains("default")) continue;
      Json &inserted = value[key] = child_schema["default"];
      if (auto e = validate_and_default(child_schema, inserted, member_path(path, key))) return e;
    }
    if (auto r = schema.find("required"); r != schema.end() && r->is_array()) {
      for (const Json &name : *r) {
        if (name.is_string() && !value.contains(name.get<std::string>())) {
          return with_path(path, "missing required key '" + name.get<std::string>() + "'");
        }
      }
    }
  }

  if (value.is_array()) {
    if (auto items = schema.find("items"); items != schema.end() && items->is_object()) {
      for (size_t i = 0; i < value.size(); ++i) {
        if (auto e = validate_and_default(*items, value[i], index_path(path, i))) return e;
      }
    }
  }
  return std::nullopt;
}

nlohmann::json redact_secrets(const nlohmann::json &schema, const nlohmann::json &value) {
  if (!schema.is_object()) return value;
  if (is_secret(schema)) return "***";
  if (value.is_object()) {
    auto properties = schema.find("properties");
    auto extra = schema.find("additionalProperties");
    Json out = Json::object();
    for (const auto &[key, child] : value.items()) {
      if (properties != schema.end() && properties->is_object() && properties->contains(key)) {
        out[key] = redact_secrets((*properties)[key], child);
      } else if (extra != schema.end() && extra->is_object()) {
        out[key] = redact_secrets(*extra, child);
      } else {
        out[key] = child;
      }
    }
    return out;
  }
  if (value.is_array()) {
    auto items = schema.find("items");
    if (items == schema.end() || !items->is_object()) return value;
    Json out = Json::array();
    for (const Json &child : value) out.push_back(redact_secrets(*items, child));
    return out;
  }
  return value;
}

}  // namespace chorus::host

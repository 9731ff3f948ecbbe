// chorus/config_schema.hpp - the JSON Schema subset that describes a plugin's `config:` section.
//
// A plugin declares its keys, types, ranges, enums, patterns and defaults once, as the schema in its
// descriptor (chorus::PluginInfo::config_schema). chorus-agent checks that schema when it loads the
// plugin (check_schema) and applies it to plugins.<id>.config before create and reconfigure
// (validate_and_default), so the plugin receives its config complete and valid. The fake host
// (chorus/testing/fake_host.hpp) applies it with this same code, so unit tests see what production sees.
//
// Supported keywords: type, properties, required, additionalProperties (false or a schema), items, enum,
// minimum, maximum, minLength, maxLength, pattern, default, "x-secret", and the annotations
// description, title, $schema, $comment, $id. Two departures from full JSON Schema, both on purpose:
// an unknown keyword is an error in check_schema() (a misspelt "maximun" would otherwise silently check
// nothing), and validation fills in defaults.
//
// Header-only; needs nlohmann_json (3.10 or newer) and the standard library.
#ifndef CHORUS_CONFIG_SCHEMA_HPP
#define CHORUS_CONFIG_SCHEMA_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace chorus::config_schema {

// Returns nullopt when the schema itself is acceptable, else a one-line reason.
inline std::optional<std::string> check_schema(const nlohmann::json &schema);

// Validates `value` and fills in defaults (of properties that are absent) in place. On failure returns
// a one-line error whose first word is the path below `path_prefix`, e.g.
// "plugins.p2p.config.listen[1]: expected a string, got number".
inline std::optional<std::string> validate_and_default(const nlohmann::json &schema, nlohmann::json &value,
                                                       const std::string &path_prefix);

// A copy of `value` with every value whose schema has "x-secret": true replaced by "***".
inline nlohmann::json redact_secrets(const nlohmann::json &schema, const nlohmann::json &value);

// What the host does to a plugin's `config:` section before create and reconfigure, and what the fake
// host does the same way: the text (empty means no section) must be a JSON object; with a schema (null
// for none) it is validated under the path plugins.<id>.config and completed with defaults. Returns the
// error, or nullopt with *out set to the complete config as JSON text.
inline std::optional<std::string> prepare_plugin_config(const nlohmann::json &schema, std::string_view plugin_id,
                                                        std::string_view config_json, std::string *out) {
  const std::string path = "plugins." + std::string(plugin_id) + ".config";
  auto cfg = nlohmann::json::parse(config_json.empty() ? std::string_view("{}") : config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return path + ": not an object";
  if (!schema.is_null())
    if (auto why = validate_and_default(schema, cfg, path)) return why;
  *out = cfg.dump();
  return std::nullopt;
}

namespace detail {

using Json = nlohmann::json;

inline constexpr std::array<std::string_view, 7> kTypes = {"object", "array",   "string", "integer",
                                                     "number", "boolean", "null"};

// Everything check_schema() accepts. description, title, $schema and $comment are annotations only.
inline constexpr std::array<std::string_view, 18> kKeywords = {
    "type",      "properties", "required",    "additionalProperties", "items",   "enum",
    "minimum",   "maximum",    "minLength",   "maxLength",            "default", "x-secret",
    "pattern",   "description", "title",      "$schema",              "$comment", "$id"};

// "pattern" (ECMAScript, unanchored as JSON Schema says). std::regex recurses per character and per
// group, so patterns and the strings tested against them are kept small.
inline constexpr size_t kMaxPattern = 256;
inline constexpr size_t kMaxPatternGroups = 8;
inline constexpr size_t kMaxPatternSubject = 1024;

inline std::optional<std::string> pattern_problem(const std::string &pattern) {
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

inline std::string member_path(const std::string &parent, const std::string &key) {
  return parent.empty() ? key : parent + "." + key;
}

inline std::string index_path(const std::string &parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

inline std::string with_path(const std::string &path, const std::string &message) {
  return path.empty() ? message : path + ": " + message;
}

inline std::string join(const auto &names, std::string_view separator) {
  std::string out;
  for (std::string_view n : names) out += (out.empty() ? "" : std::string(separator)) + std::string(n);
  return out;
}

// The coarse JSON type of a value, for "got <type>": integers and fractions are both "number".
inline std::string json_type_name(const Json &value) {
  switch (value.type()) {
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::null: return "null";
    default: return "number";
  }
}

inline std::string with_article(std::string_view type) {
  if (type == "null") return "null";
  if (type == "object" || type == "array" || type == "integer") return "an " + std::string(type);
  return "a " + std::string(type);
}

// "a string", "a string or null", "a string, an integer or null".
inline std::string expected_types(const std::vector<std::string> &types) {
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += (i + 1 == types.size()) ? " or " : ", ";
    out += with_article(types[i]);
  }
  return out;
}

inline bool has_type(const Json &value, std::string_view type) {
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

inline bool is_secret(const Json &schema) {
  auto it = schema.find("x-secret");
  return it != schema.end() && it->is_boolean() && it->get<bool>();
}

// A value as shown in a message: strings in single quotes (cut when long), others as JSON, and a
// secret never at all.
inline std::string shown(const Json &value, bool secret) {
  if (secret) return "'***'";
  if (!value.is_string()) return value.dump();
  const std::string &s = value.get_ref<const std::string &>();
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) out += (s[i] == '\n') ? std::string("\\n") : std::string(1, s[i]);
  return out + (s.size() > kMax ? "...'" : "'");
}

// Length in characters (Unicode code points), as minLength/maxLength count it, not in UTF-8 bytes.
inline size_t utf8_length(const std::string &s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// -1, 0 or 1. Exact when both are integers (a double cannot hold every 64-bit integer).
inline int compare_numbers(const Json &a, const Json &b) {
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
inline std::vector<std::string> allowed_types(const Json &schema) {
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

inline std::optional<std::string> check_node(const Json &schema, const std::string &path);

inline std::optional<std::string> check_type_keyword(const Json &type, const std::string &path) {
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

inline std::optional<std::string> check_node(const Json &schema, const std::string &path) {
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

}  // namespace detail

inline std::optional<std::string> check_schema(const nlohmann::json &schema) {
  return detail::check_node(schema, "schema");
}

inline std::optional<std::string> validate_and_default(const nlohmann::json &schema, nlohmann::json &value,
                                                const std::string &path) {
  if (!schema.is_object()) return std::nullopt;  // not a schema (check_schema refuses it): no constraint
  const bool secret = detail::is_secret(schema);

  if (std::vector<std::string> types = detail::allowed_types(schema); !types.empty()) {
    if (std::none_of(types.begin(), types.end(), [&](const std::string &t) { return detail::has_type(value, t); })) {
      return detail::with_path(path, "expected " + detail::expected_types(types) + ", got " + detail::json_type_name(value));
    }
  }

  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    if (std::find(e->begin(), e->end(), value) == e->end()) {
      return detail::with_path(path, detail::shown(value, secret) + " is not one of " + e->dump());
    }
  }

  if (value.is_number()) {
    if (auto m = schema.find("minimum"); m != schema.end() && m->is_number() && detail::compare_numbers(value, *m) < 0) {
      return detail::with_path(path, detail::shown(value, secret) + " is less than the minimum " + m->dump());
    }
    if (auto m = schema.find("maximum"); m != schema.end() && m->is_number() && detail::compare_numbers(value, *m) > 0) {
      return detail::with_path(path, detail::shown(value, secret) + " is greater than the maximum " + m->dump());
    }
  }

  if (value.is_string()) {
    const size_t length = detail::utf8_length(value.get_ref<const std::string &>());
    if (auto m = schema.find("minLength"); m != schema.end() && m->is_number() && detail::compare_numbers(nlohmann::json(length), *m) < 0) {
      return detail::with_path(path, detail::shown(value, secret) + " is shorter than " + m->dump() + " characters");
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && m->is_number() && detail::compare_numbers(nlohmann::json(length), *m) > 0) {
      return detail::with_path(path, detail::shown(value, secret) + " is longer than " + m->dump() + " characters");
    }
    if (auto m = schema.find("pattern"); m != schema.end() && m->is_string()) {
      const auto &text = value.get_ref<const std::string &>();
      if (text.size() > detail::kMaxPatternSubject)
        return detail::with_path(path, "is longer than " + std::to_string(detail::kMaxPatternSubject) + " bytes (too long to check)");
      bool matched = false;
      try {
        matched = std::regex_search(text, std::regex(m->get<std::string>(), std::regex::ECMAScript));
      } catch (const std::regex_error &) {
        matched = false;
      }
      if (!matched) return detail::with_path(path, detail::shown(value, secret) + " does not have the expected form (" + m->get<std::string>() + ")");
    }
  }

  if (value.is_object()) {
    auto p = schema.find("properties");
    const nlohmann::json *properties = (p != schema.end() && p->is_object()) ? &*p : nullptr;
    auto declared = [&](const std::string &key) { return properties != nullptr && properties->contains(key); };
    auto extra = schema.find("additionalProperties");
    const bool extra_forbidden = extra != schema.end() && extra->is_boolean() && !extra->get<bool>();
    const bool extra_has_schema = extra != schema.end() && extra->is_object();

    // Unknown keys first: a misspelt key is the likeliest cause of any other error in this object.
    if (extra_forbidden) {
      for (const auto &[key, child] : value.items()) {
        if (!declared(key)) return detail::with_path(path, "unknown key '" + key + "'");
      }
    }
    for (auto &[key, child] : value.items()) {
      const nlohmann::json *child_schema = nullptr;
      if (declared(key)) child_schema = &(*properties)[key];
      else if (extra_has_schema) child_schema = &*extra;
      if (child_schema) {
        if (auto e = validate_and_default(*child_schema, child, detail::member_path(path, key))) return e;
      }
    }
    // Defaults for absent keys; validating the inserted default fills defaults nested inside it.
    if (properties != nullptr) {
      for (const auto &[key, child_schema] : properties->items()) {
        if (value.contains(key) || !child_schema.is_object() || !child_schema.contains("default")) continue;
        nlohmann::json &inserted = value[key] = child_schema["default"];
        if (auto e = validate_and_default(child_schema, inserted, detail::member_path(path, key))) return e;
      }
    }
    if (auto r = schema.find("required"); r != schema.end() && r->is_array()) {
      for (const nlohmann::json &name : *r) {
        if (name.is_string() && !value.contains(name.get<std::string>())) {
          return detail::with_path(path, "missing required key '" + name.get<std::string>() + "'");
        }
      }
    }
  }

  if (value.is_array()) {
    if (auto items = schema.find("items"); items != schema.end() && items->is_object()) {
      for (size_t i = 0; i < value.size(); ++i) {
        if (auto e = validate_and_default(*items, value[i], detail::index_path(path, i))) return e;
      }
    }
  }
  return std::nullopt;
}

inline nlohmann::json redact_secrets(const nlohmann::json &schema, const nlohmann::json &value) {
  if (!schema.is_object()) return value;
  if (detail::is_secret(schema)) return "***";
  if (value.is_object()) {
    auto properties = schema.find("properties");
    auto extra = schema.find("additionalProperties");
    nlohmann::json out = nlohmann::json::object();
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
    nlohmann::json out = nlohmann::json::array();
    for (const nlohmann::json &child : value) out.push_back(redact_secrets(*items, child));
    return out;
  }
  return value;
}

}  // namespace chorus::config_schema

#endif  // CHORUS_CONFIG_SCHEMA_HPP

// The agent's YAML configuration: see config.hpp and docs/configuration.md.
//
// The parser walks the YAML tree by hand instead of using yaml-cpp's `as<T>()` conversions, because those
// are too forgiving for a config users must be able to trust: `as<bool>()` takes yes/no/on/off, `as<int>()`
// takes hex and octal, and iterating a map silently yields duplicate keys. Every accepted form is decided
// here, and every rejection names the key path.
#include "config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "shhh/sentinel.hpp"

namespace chorus::host {
namespace {

using Json = nlohmann::json;

// Upper bounds for integer keys. Timeouts stop at 2^32-1 ms (about 49.7 days): far beyond any sensible
// wait, and small enough that adding one to a clock reading can never overflow.
constexpr uint64_t kMaxTimeoutMs = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kMaxWorkerThreads = 1024;

constexpr std::string_view kIdRule =
    "expected 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit";

[[noreturn]] void fail(const std::string &path, const std::string &message) {
  throw ConfigError(path.empty() ? message : path + ": " + message);
}

std::string child_path(const std::string &parent, const std::string &key) {
  return parent.empty() ? key : parent + "." + key;
}

// A value quoted for a one-line message: long values are cut and line breaks shown as \n.
std::string quote(std::string_view text) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    if (text[i] == '\n') out += "\\n";
    else if (text[i] == '\r') out += "\\r";
    else if (text[i] == '\t') out += "\\t";
    else out += text[i];
  }
  if (text.size() > kMax) out += "...";
  return out + "'";
}

// ---------------------------------------------------------------------------------------------------
// Scalars. yaml-cpp reports a plain (unquoted) scalar with tag "?" and a quoted or block scalar with tag
// "!". The distinction matters: `port: "9000"` is a string and `port: 9000` is a number.

enum class ScalarStyle { kPlain, kString };

ScalarStyle scalar_style(const YAML::Node &node, const std::string &path) {
  const std::string &tag = node.Tag();
  if (tag == "?") return ScalarStyle::kPlain;
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return ScalarStyle::kString;
  // Other tags (!!int, !custom...) would need their own semantics; refusing them keeps typing obvious.
  std::string shown = tag;
  if (shown.rfind("tag:yaml.org,2002:", 0) == 0) shown = "!!" + shown.substr(18);
  fail(path, "unsupported YAML tag '" + shown + "' (only !!str is accepted)");
}

// What a node is, for "expected X, got <this>".
std::string describe(const YAML::Node &node, const std::string &path) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar:
      if (scalar_style(node, path) == ScalarStyle::kString) return "the quoted string " + quote(node.Scalar());
      return quote(node.Scalar());
    default: return "nothing";
  }
}

// YAML 1.2 core-schema booleans. yes/no/on/off are deliberately not booleans (YAML 1.1 made `no`, e.g.
// the country code, a boolean; YAML 1.2 dropped that), and the same rule applies in plugin `config:`.
std::optional<bool> plain_bool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// Decimal digits with an optional sign: YAML 1.2's integer form (hex/octal/underscores are not integers).
bool is_decimal_integer(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// [-+]? ( .digits | digits [ . digits* ] ) [ (e|E) [-+]? digits ]
bool is_decimal_float(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t mantissa = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

// An unsigned decimal integer in [0, max], as YAML text or as an environment value.
std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value > max) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Maps. yaml-cpp keeps every entry of a map, duplicates included, so each map is walked through this
// function, which rejects duplicate keys and keys that are not plain strings.

template <class Fn>
void for_each_entry(const YAML::Node &map, const std::string &path, Fn &&fn) {
  std::map<std::string, size_t> first_line;  // key -> 1-based line of its first occurrence
  for (const auto &entry : map) {
    const YAML::Node &key = entry.first;
    if (!key.IsScalar()) fail(path, "a map key must be a string, got " + describe(key, path));
    const std::string &name = key.Scalar();
    const size_t line = static_cast<size_t>(key.Mark().line) + 1;
    auto [it, inserted] = first_line.emplace(name, line);
    if (!inserted) {
      fail(child_path(path, name),
           "duplicate key (lines " + std::to_string(it->second) + " and " + std::to_string(line) + ")");
    }
    fn(name, entry.second);
  }
}

// Like for_each_entry, for a section with a fixed set of keys: anything else is an unknown key.
template <class Fn>
void for_each_known_entry(const YAML::Node &map, const std::string &path,
                          std::initializer_list<std::string_view> known, Fn &&fn) {
  for_each_entry(map, path, [&](const std::string &name, const YAML::Node &value) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      fail(child_path(path, name), "unknown key (expected one of: " + list + ")");
    }
    fn(name, value);
  });
}

// A section that must be a map; null (an empty `host:`) means "all defaults". Returns false for null.
bool is_section(const YAML::Node &node, const std::string &path) {
  if (node.IsNull()) return false;
  if (!node.IsMap()) fail(path, "expected a map, got " + describe(node, path));
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Typed readers for host keys. A null value (`key:` or `key: ~`) leaves the default in place.

void read_string(const YAML::Node &node, const std::string &path, std::string &out) {
  if (node.IsNull()) return;
  if (!node.IsScalar()) fail(path, "expected a string, got " + describe(node, path));
  scalar_style(node, path);  // rejects unsupported tags
  out = node.Scalar();
}

void read_bool(const YAML::Node &node, const std::string &path, bool &out) {
  if (node.IsNull()) return;
  std::optional<bool> value;
  if (node.IsScalar() && scalar_style(node, path) == ScalarStyle::kPlain) value = plain_bool(node.Scalar());
  if (!value) fail(path, "expected a boolean, got " + describe(node, path));
  out = *value;
}

template <class Int>
void read_uint(const YAML::Node &node, const std::string &path, uint64_t max, Int &out) {
  if (node.IsNull()) return;
  std::optional<uint64_t> value;
  if (node.IsScalar() && scalar_style(node, path) == ScalarStyle::kPlain) value = parse_uint(node.Scalar(), max);
  if (!value) {
    fail(path, "expected an integer from 0 to " + std::to_string(max) + ", got " + describe(node, path));
  }
  out = static_cast<Int>(*value);
}

constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};
constexpr std::array<std::string_view, 4> kSeverities = {"low", "medium", "high", "critical"};

// "" when `value` is one of `allowed`, else the message "expected one of a|b|c, got 'x'".
std::string check_choice(const std::string &value, std::span<const std::string_view> allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return "";
  std::string list;
  for (std::string_view a : allowed) list += (list.empty() ? "" : "|") + std::string(a);
  return "expected one of " + list + ", got " + quote(value);
}

void read_choice(const YAML::Node &node, const std::string &path,
                 std::span<const std::string_view> allowed, std::string &out) {
  std::string value = out;
  read_string(node, path, value);
  if (std::string problem = check_choice(value, allowed); !problem.empty()) fail(path, problem);
  out = std::move(value);
}

bool is_valid_plugin_id(std::string_view id) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (id.empty() || id.size() > 64 || !lower_or_digit(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return lower_or_digit(c) || c == '.' || c == '_' || c == '-'; });
}

// "ip:port" or "[ipv6]:port" with a numeric address and a port 0-65535. Splits into address and port.
bool split_listen(const std::string &text, std::string &address, std::string &port) {
  size_t colon;
  unsigned char buf[16];
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("]:");
    if (close == std::string::npos) return false;
    address = text.substr(1, close - 1);
    if (inet_pton(AF_INET6, address.c_str(), buf) != 1) return false;
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    address = text.substr(0, colon);
    if (inet_pton(AF_INET, address.c_str(), buf) != 1) return false;
  }
  port = text.substr(colon + 1);
  return port.size() <= 5 && port.find('+') == std::string::npos && parse_uint(port, 65535).has_value();
}

bool is_valid_listen(const std::string &text) {
  std::string address, port;
  return text.empty() || split_listen(text, address, port);
}

// ---------------------------------------------------------------------------------------------------
// A plugin's `config:` subtree, converted to JSON with YAML 1.2 core-schema typing of plain scalars.

Json plain_scalar_to_json(const std::string &s) {
  // Plain null forms (~, null, empty) arrive as Null nodes, never here.
  if (std::optional<bool> b = plain_bool(s)) return *b;
  std::string_view digits = s;
  if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);  // from_chars takes no '+'
  const char *first = digits.data(), *last = digits.data() + digits.size();
  if (is_decimal_integer(s)) {
    int64_t i = 0;
    if (auto r = std::from_chars(first, last, i); r.ec == std::errc() && r.ptr == last) return i;
    uint64_t u = 0;
    if (auto r = std::from_chars(first, last, u); r.ec == std::errc() && r.ptr == last) return u;
    // Too large for 64 bits: falls through to a (lossy) floating-point number, as JSON parsers do.
  }
  if (is_decimal_integer(s) || is_decimal_float(s)) {
    double d = 0;
    if (auto r = std::from_chars(first, last, d); r.ec == std::errc() && r.ptr == last) return d;
    // Out of double range (1e999): JSON has no infinity, so it stays text.
  }
  return s;
}

// Ignores every parser event; only used to count documents.
struct DocumentCounter final : YAML::EventHandler {
  void OnDocumentStart(const YAML::Mark &) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark &, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t, const std::string &) override {}
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Limits for a plugin's `config:` subtree. yaml-cpp resolves aliases into shared nodes, so an alias
// to an enclosing anchor is a cycle and nested aliases can expand a few hundred bytes into billions
// of values; both must end in a ConfigError, not a stack overflow or an OOM.
constexpr int kMaxConfigDepth = 64;
constexpr size_t kMaxConfigValues = 100000;

struct ConversionBudget {
  size_t values = 0;
};

Json yaml_to_json(const YAML::Node &node, const std::string &path, int depth, ConversionBudget &budget) {
  if (depth > kMaxConfigDepth)
    fail(path, "nested deeper than " + std::to_string(kMaxConfigDepth) + " levels (a recursive alias?)");
  if (++budget.values > kMaxConfigValues)
    fail(path, "more than " + std::to_string(kMaxConfigValues) + " values once aliases are expanded");
  switch (node.Type()) {
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar:
      if (scalar_style(node, path) == ScalarStyle::kString) return node.Scalar();
      return plain_scalar_to_json(node.Scalar());
    case YAML::NodeType::Sequence: {
      Json array = Json::array();
      size_t index = 0;
      for (const auto &item : node) {
        array.push_back(yaml_to_json(item, path + "[" + std::to_string(index) + "]", depth + 1, budget));
        ++index;
      }
      return array;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      for_each_entry(node, path, [&](const std::string &key, const YAML::Node &value) {
        object[key] = yaml_to_json(value, child_path(path, key), depth + 1, budget);
      });
      return object;
    }
    default: return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------------
// Sections.

void parse_agent(const YAML::Node &node, AgentIdentity &agent) {
  if (!is_section(node, "agent")) return;
  for_each_known_entry(node, "agent", {"id", "role", "cluster_id", "assignment_file", "assignment_url"},
                       [&](const std::string &k, const YAML::Node &v) {
    const std::string path = "agent." + k;
    if (k == "id") read_string(v, path, agent.id);
    else if (k == "role") read_string(v, path, agent.role);
    else if (k == "assignment_file") read_string(v, path, agent.assignment_file);
    else if (k == "assignment_url") read_string(v, path, agent.assignment_url);
    else read_string(v, path, agent.cluster_id);
  });
}

void parse_http(const YAML::Node &node, HostConfig &host) {
  if (!is_section(node, "host.http")) return;
  for_each_known_entry(node, "host.http", {"listen"}, [&](const std::string &, const YAML::Node &v) {
    std::string listen = host.http_listen;
    read_string(v, "host.http.listen", listen);
    if (!is_valid_listen(listen)) {
      fail("host.http.listen", "expected \"<ipv4>:<port>\", \"[<ipv6>]:<port>\" or \"\" (disabled), got " +
                                   quote(listen));
    }
    host.http_listen = std::move(listen);
  });
}

void parse_plugin_dirs(const YAML::Node &node, std::vector<std::string> &dirs) {
  const std::string path = "host.plugin_dirs";
  if (node.IsNull()) return;
  if (!node.IsSequence()) fail(path, "expected a list of directories, got " + describe(node, path));
  dirs.clear();
  size_t index = 0;
  for (const auto &item : node) {
    const std::string item_path = path + "[" + std::to_string(index++) + "]";
    if (!item.IsScalar()) fail(item_path, "expected a directory path, got " + describe(item, item_path));
    std::string dir;
    read_string(item, item_path, dir);
    if (dir.empty()) fail(item_path, "expected a directory path, got ''");
    dirs.push_back(std::move(dir));
  }
}

void parse_shhh_channels(const YAML::Node &node, ShhhConfig &shhh) {
  if (!is_section(node, "host.shhh.channels")) return;
  for_each_known_entry(node, "host.shhh.channels", {"logs", "pubsub", "ucxi"},
                       [&](const std::string &k, const YAML::Node &v) {
    read_bool(v, "host.shhh.channels." + k, k == "logs" ? shhh.logs : k == "pubsub" ? shhh.pubsub : shhh.ucxi);
  });
}

bool is_valid_rule_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

void parse_shhh_rules(const YAML::Node &node, std::vector<ShhhRuleConfig> &rules) {
  const std::string path = "host.shhh.rules";
  if (node.IsNull()) return;
  if (!node.IsSequence()) fail(path, "expected a list of rules, got " + describe(node, path));
  rules.clear();
  size_t index = 0;
  for (const auto &item : node) {
    const std::string item_path = path + "[" + std::to_string(index++) + "]";
    if (!item.IsMap()) fail(item_path, "expected a map {name, pattern, severity, tags}, got " + describe(item, item_path));
    ShhhRuleConfig rule;
    for_each_known_entry(item, item_path, {"name", "pattern", "severity", "tags"},
                         [&](const std::string &k, const YAML::Node &v) {
      const std::string key_path = item_path + "." + k;
      if (k == "name") read_string(v, key_path, rule.name);
      else if (k == "pattern") read_string(v, key_path, rule.pattern);
      else if (k == "severity") read_choice(v, key_path, kSeverities, rule.severity);
      else {
        if (v.IsNull()) return;
        if (!v.IsSequence()) fail(key_path, "expected a list of strings, got " + describe(v, key_path));
        size_t t = 0;
        for (const auto &tag : v) {
          const std::string tag_path = key_path + "[" + std::to_string(t++) + "]";
          if (!tag.IsScalar()) fail(tag_path, "expected a string, got " + describe(tag, tag_path));
          std::string text;
          read_string(tag, tag_path, text);
          rule.tags.push_back(std::move(text));
        }
      }
    });
    if (!is_valid_rule_name(rule.name))
      fail(item_path + ".name", "expected a rule name of 1 to 64 characters from [a-z0-9_.-], got " + quote(rule.name));
    for (const auto &other : rules)
      if (other.name == rule.name) fail(item_path + ".name", "duplicate rule name " + quote(rule.name));
    if (rule.pattern.empty()) fail(item_path + ".pattern", "expected an RE2 pattern, got ''");
    rules.push_back(std::move(rule));
  }
}

void parse_shhh(const YAML::Node &node, ShhhConfig &shhh) {
  if (!is_section(node, "host.shhh")) return;
  for_each_known_entry(node, "host.shhh", {"enabled", "channels", "audit_file", "builtin_rules", "rules"},
                       [&](const std::string &k, const YAML::Node &v) {
    const std::string path = "host.shhh." + k;
    if (k == "enabled") read_bool(v, path, shhh.enabled);
    else if (k == "channels") parse_shhh_channels(v, shhh);
    else if (k == "audit_file") read_string(v, path, shhh.audit_file);
    else if (k == "builtin_rules") read_bool(v, path, shhh.builtin_rules);
    else parse_shhh_rules(v, shhh.rules);
  });
  // The sentinel compiles the rules exactly as the running host will (a custom rule may not take a
  // built-in rule's name either), so a file that parses runs.
  std::string why;
  if (!shhh.rules.empty() && !shhh::Sentinel::create(shhh_options(shhh), &why)) fail("host.shhh.rules", why);
}

void parse_host(const YAML::Node &node, HostConfig &host) {
  if (!is_section(node, "host")) return;
  for_each_known_entry(
      node, "host",
      {"log_level", "log_format", "plugin_dirs", "state_dir", "http", "shutdown_timeout_ms", "start_timeout_ms",
       "swap_drain_timeout_ms", "worker_threads", "strict", "shhh"},
      [&](const std::string &k, const YAML::Node &v) {
        const std::string path = "host." + k;
        if (k == "log_level") read_choice(v, path, kLogLevels, host.log_level);
        else if (k == "log_format") read_choice(v, path, kLogFormats, host.log_format);
        else if (k == "plugin_dirs") parse_plugin_dirs(v, host.plugin_dirs);
        else if (k == "state_dir") read_string(v, path, host.state_dir);
        else if (k == "http") parse_http(v, host);
        else if (k == "shutdown_timeout_ms") read_uint(v, path, kMaxTimeoutMs, host.shutdown_timeout_ms);
        else if (k == "start_timeout_ms") read_uint(v, path, kMaxTimeoutMs, host.start_timeout_ms);
        else if (k == "swap_drain_timeout_ms") read_uint(v, path, kMaxTimeoutMs, host.swap_drain_timeout_ms);
        else if (k == "worker_threads") read_uint(v, path, kMaxWorkerThreads, host.worker_threads);
        else if (k == "shhh") parse_shhh(v, host.shhh);
        else read_bool(v, path, host.strict);
      });
}

void parse_plugin(const std::string &id, const YAML::Node &node, PluginEntry &plugin) {
  const std::string base = "plugins." + id;
  plugin.id = id;
  if (!is_section(node, base)) return;  // `p2p:` alone = enabled with defaults
  for_each_known_entry(
      node, base, {"enabled", "critical", "path", "sha256", "config"}, [&](const std::string &k, const YAML::Node &v) {
        const std::string path = base + "." + k;
        if (k == "enabled") {
          read_bool(v, path, plugin.enabled);
        } else if (k == "critical") {
          read_bool(v, path, plugin.critical);
        } else if (k == "path") {
          read_string(v, path, plugin.path);
        } else if (k == "sha256") {
          std::string pin;
          read_string(v, path, pin);
          bool hex = std::all_of(pin.begin(), pin.end(), [](char c) { return std::isxdigit((unsigned char)c); });
          if (!pin.empty() && (pin.size() != 64 || !hex)) {
            fail(path, "expected 64 hexadecimal digits, got " + quote(pin));
          }
          std::transform(pin.begin(), pin.end(), pin.begin(), [](unsigned char c) { return std::tolower(c); });
          plugin.sha256 = std::move(pin);
        } else {
          if (!v.IsNull() && !v.IsMap()) fail(path, "expected a map, got " + describe(v, path));
          ConversionBudget budget;
          Json config = v.IsNull() ? Json::object() : yaml_to_json(v, path, 0, budget);
          try {
            plugin.config_json = config.dump();
          } catch (const Json::type_error &) {  // dump() refuses invalid UTF-8
            fail(path, "contains text that is not valid UTF-8");
          }
        }
      });
}

void parse_plugins(const YAML::Node &node, std::vector<PluginEntry> &plugins) {
  if (node.IsNull()) return;
  if (!node.IsMap()) fail("plugins", "expected a map of plugin id to settings, got " + describe(node, "plugins"));
  for_each_entry(node, "plugins", [&](const std::string &id, const YAML::Node &value) {
    if (!is_valid_plugin_id(id)) fail("plugins." + id, "invalid plugin id " + quote(id) + " (" + std::string(kIdRule) + ")");
    PluginEntry plugin;
    parse_plugin(id, value, plugin);
    plugins.push_back(std::move(plugin));
  });
}

void parse_bindings(const YAML::Node &node, std::map<std::string, std::string> &bindings) {
  if (node.IsNull()) return;
  if (!node.IsMap()) fail("bindings", "expected a map of service to plugin id, got " + describe(node, "bindings"));
  for_each_entry(node, "bindings", [&](const std::string &service, const YAML::Node &value) {
    const std::string path = "bindings." + service;
    if (service.empty()) fail("bindings", "a service name must not be empty");
    if (!value.IsScalar()) fail(path, "expected a plugin id, got " + describe(value, path));
    std::string id;
    read_string(value, path, id);
    if (!is_valid_plugin_id(id)) fail(path, "invalid plugin id " + quote(id) + " (" + std::string(kIdRule) + ")");
    bindings[service] = std::move(id);
  });
}

// Environment overrides, applied after the file. An empty variable counts as unset, so that
// `CHORUS_ROLE=${ROLE:-}` in a compose file does not wipe out the file's value.
void apply_env(Config &config, EnvLookup env) {
  auto get = [&](const char *name) -> std::optional<std::string> {
    std::optional<std::string> value = env ? env(name) : std::nullopt;
    if (value && value->empty()) return std::nullopt;
    return value;
  };
  if (auto v = get("CHORUS_AGENT_ID")) config.agent.id = *v;
  if (auto v = get("CHORUS_ROLE")) config.agent.role = *v;
  if (auto v = get("CHORUS_CLUSTER_ID")) config.agent.cluster_id = *v;
  if (auto v = get("ASSIGN_URL")) config.agent.assignment_url = *v;
  if (auto v = get("TASK_SLOT")) config.agent.task_slot = *v;
  if (auto v = get("TASK_ID")) config.agent.task_id = *v;
  if (auto v = get("CHORUS_LOG_LEVEL")) {
    if (std::string problem = check_choice(*v, kLogLevels); !problem.empty()) fail("CHORUS_LOG_LEVEL", problem);
    config.host.log_level = *v;
  }
  if (auto v = get("CHORUS_LOG_FORMAT")) {
    if (std::string problem = check_choice(*v, kLogFormats); !problem.empty()) fail("CHORUS_LOG_FORMAT", problem);
    config.host.log_format = *v;
  }
  if (auto v = get("CHORUS_SHHH_ENABLED")) {
    std::optional<bool> on = plain_bool(*v);
    if (!on) fail("CHORUS_SHHH_ENABLED", "expected true or false, got " + quote(*v));
    config.host.shhh.enabled = *on;
  }
  if (auto v = get("CHORUS_HEALTH_PORT")) {
    if (v->size() > 5 || (*v)[0] == '+' || !parse_uint(*v, 65535)) {
      fail("CHORUS_HEALTH_PORT", "expected a port number from 0 to 65535, got " + quote(*v));
    }
    // Replace only the port; a disabled listener ("") is enabled on the default loopback address,
    // since setting the variable is an explicit request for a health port.
    std::string address = "127.0.0.1", port;
    const std::string &listen = config.host.http_listen;
    if (!listen.empty()) split_listen(listen, address, port);  // validated while parsing
    const bool v6 = address.find(':') != std::string::npos;
    config.host.http_listen = (v6 ? "[" + address + "]" : address) + ":" + *v;
  }
}

// Reads a whole file; on failure the message carries the OS reason ("No such file or directory").
std::string read_file(const std::string &path) {
  auto error = [&] {
    return ConfigError("cannot read config file '" + path + "': " + std::generic_category().message(errno));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error();
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      ConfigError e = error();  // before close() can change errno
      ::close(fd);
      throw e;
    }
  }
  ::close(fd);
  return text;
}

}  // namespace

shhh::Options shhh_options(const ShhhConfig &config) {
  shhh::Options options;
  options.use_builtin_rules = config.builtin_rules;
  for (const auto &r : config.rules)
    options.custom_rules.push_back(
        shhh::Rule{r.name, r.pattern, shhh::parse_severity(r.severity).value_or(shhh::Severity::kHigh), r.tags});
  return options;
}

const PluginEntry *Config::find_plugin(const std::string &id) const {
  for (const PluginEntry &p : plugins) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::optional<std::string> process_env(const char *name) {
  const char *value = std::getenv(name);
  if (!value) return std::nullopt;
  return std::string(value);
}

Config parse_config(const std::string &yaml_text, const std::string &source, EnvLookup env) {
  std::vector<YAML::Node> documents;
  try {
    // Count documents first, stopping at two: yaml-cpp 0.7's LoadAll never returns on input such
    // as "{}," (it keeps producing empty documents), so it cannot be used to find out.
    std::istringstream counting(yaml_text);
    YAML::Parser parser(counting);
    DocumentCounter counter;
    int count = 0;
    while (count < 2 && parser.HandleNextDocument(counter)) ++count;
    if (count > 1)
      throw ConfigError(source +
                        ": expected one YAML document, found more (a '---' separator, or text after the first document)");
    if (count == 1) documents.push_back(YAML::Load(yaml_text));
  } catch (const YAML::Exception &e) {
    // yaml-cpp marks are 0-based; editors count from 1.
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": " + e.msg);
  }
  if (documents.size() > 1) {
    throw ConfigError(source + ": expected one YAML document, found " + std::to_string(documents.size()));
  }

  Config config;
  config.source = source;
  const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  if (!root.IsNull()) {
    if (!root.IsMap()) fail("top level", "expected a map, got " + describe(root, "top level"));
    for_each_known_entry(root, "", {"agent", "host", "plugins", "bindings"},
                         [&](const std::string &k, const YAML::Node &v) {
                           if (k == "agent") parse_agent(v, config.agent);
                           else if (k == "host") parse_host(v, config.host);
                           else if (k == "plugins") parse_plugins(v, config.plugins);
                           else parse_bindings(v, config.bindings);
                         });
  }
  apply_env(config, env);
  return config;
}

Config load_config_file(const std::string &path, EnvLookup env) {
  return parse_config(read_file(path), path, env);
}

const std::string &default_config_yaml() {
  // The config of an agent with no file at all. It enables no plugin, so a bare host (and every test that
  // leans on the default) opens no network port. config/chorus.yaml, the shipped config, has the same
  // agent and host sections (a unit test compares them) and enables the core plugins.
  static const std::string text = R"yaml(# chorus-agent configuration: the built-in default, used when there is no config file.
# It enables no plugin. The shipped config (config/chorus.yaml, installed as share/chorus/chorus.yaml and,
# by the Debian package, /etc/chorus/chorus.yaml) enables the core of an agent: p2p, mdns, gossip, dht,
# election, ucxi and agent.
#
# Precedence: built-in defaults < this file < environment variables.
# Every key is optional; a key that is left out, or left empty (`key:`), takes the default shown here.
# Unknown keys, duplicate keys and wrong types are errors naming the key; nothing is silently ignored.
# Booleans are true or false (yes/no/on/off are not accepted). See docs/configuration.md.

agent:
  id: ""                   # CHORUS_AGENT_ID; "" = generated once and kept in the state dir
  role: ""                 # CHORUS_ROLE
  cluster_id: chorus-dev   # CHORUS_CLUSTER_ID
  assignment_file: ""      # a dynamic assignment (JSON: role, model, bootstrap_peers, ...), re-read on SIGHUP
  assignment_url: ""       # ASSIGN_URL; fetched with TASK_SLOT and TASK_ID; wins over assignment_file

host:
  log_level: info          # CHORUS_LOG_LEVEL: trace | debug | info | warn | error
  log_format: text         # CHORUS_LOG_FORMAT: text | json
  plugin_dirs: []          # searched after the install's own plugin directory
  state_dir: ""            # "" = $CHORUS_STATE_DIR, $STATE_DIRECTORY, /var/lib/chorus (root), $XDG_STATE_HOME/chorus
  http:
    listen: 127.0.0.1:8081 # "ip:port" or "[ipv6]:port"; "" disables; CHORUS_HEALTH_PORT replaces the port
  shutdown_timeout_ms: 30000
  start_timeout_ms: 30000
  swap_drain_timeout_ms: 60000
  worker_threads: 0        # 0 = hardware concurrency, at least 2
  strict: false            # true: any plugin failing to start aborts startup
  shhh:                    # SHHH, the secrets sentinel (docs/shhh.md)
    enabled: true          # CHORUS_SHHH_ENABLED; false: nothing is redacted
    channels: { logs: true, pubsub: true, ucxi: true }
    audit_file: ""         # "" = <state_dir>/shhh-audit.jsonl (sha256 of each secret, never the secret); "off"
    builtin_rules: true
    rules: []              # custom: - { name: internal.ticket, pattern: "TCK-[0-9]{8}", severity: medium, tags: [] }

# Plugins by id. No plugin is enabled in this default, so an agent without a config file opens no
# network port beyond its loopback HTTP listener, and an entry for a plugin that is not installed would only produce
# errors. Uncomment an entry (keep the two-space indent) once its chorus-<id>.so is installed
# (Debian: the chorus-plugin-<id> package). p2p + mdns join the LAN with no further configuration.
# Per plugin: enabled (true), critical (false: a failure to start is a warning; true: fatal),
# path ("" = search by id), sha256 ("" = no pin), config (the plugin's own settings, checked by it).
plugins:
#  p2p:       { enabled: true,  critical: true,  config: { listen: [/ip4/0.0.0.0/tcp/9000] } }  # CHORUS_P2P_PORT
#  mdns:      { enabled: true,  critical: false, config: { service_tag: CHORUS-peer-discovery } }
#  gossip:    { enabled: true,  critical: true,  config: { signature_policy: strict_sign } }  # CHORUS topics
#  dht:       { enabled: true,  critical: false, config: { mode: auto } }  # Kademlia DHT, encrypted content
#  eventlog:  { enabled: true,  critical: false, config: { log_peer_events: true } }  # signed event log
#  backbeat:  { enabled: false, critical: false, config: { nats_url: "nats://127.0.0.1:4222" } }
#  ai-ollama: { enabled: true,  config: { endpoint: "http://localhost:11434" } }   # OLLAMA_ENDPOINT
#  license:   { enabled: true,  critical: true,  config: { endpoint: "https://licence.example" } }  # CHORUS_LICENSE_ID,
#             # CHORUS_LICENSE_ENDPOINT; off in this open build; critical: a failing licence stops the agent at start
#  election:  { enabled: true, critical: false, config: { cluster_size: 0 } }  # one admin per cluster (chorus.election);
#             # cluster_size: the number of agents, so a majority of it elects (0 = of those heard: not partition-safe)
#  ucxi:      { enabled: true, critical: false, config: { max_body_bytes: 524288 } }  # UCXL content and /ucxi/v1/
#             # (chorus.ucxi); needs dht; announces puts and decisions on CHORUS/coordination/v1 when gossip runs

# Which plugin provides a service when several enabled plugins offer it.
bindings:
#  chorus.ai.provider: ai-ollama
)yaml";
  return text;
}

std::string locate_config(const std::string &explicit_path, EnvLookup env, const std::string &system_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (std::optional<std::string> from_env = env ? env("CHORUS_CONFIG") : std::nullopt; from_env && !from_env->empty()) {
    return *from_env;
  }
  // Only a file that is plainly absent falls back to the built-in default. If it exists but cannot be
  // examined (permissions), return it anyway so loading reports the problem instead of hiding it.
  std::error_code ec;
  std::filesystem::file_status status = std::filesystem::status(system_path, ec);
  if (status.type() == std::filesystem::file_type::not_found) return "";
  return system_path;
}

Config load_config(const std::string &explicit_path, EnvLookup env) {
  const std::string path = locate_config(explicit_path, env);
  if (path.empty()) return parse_config(default_config_yaml(), kBuiltinConfigSource, env);
  return load_config_file(path, env);
}

}  // namespace chorus::host

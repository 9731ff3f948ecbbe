// UCXL addresses: a single forward scan over the text, character classes checked through one
// 256-entry table, no regular expressions and no allocation beyond the Address's own strings (short
// components fit the strings' inline buffers). The parser is on the request path of every UCXI
// operation and is benchmarked (bench/ucxi/address_bench.cpp).
#include "ucxl/address.hpp"

#include <array>
#include <charconv>

namespace chorus::ucxl {
namespace {

constexpr std::string_view kScheme = "ucxl://";
constexpr uint64_t kMaxCount = 1000000000;  // N in *~N, ~~N, ^^N
// How much of an over-long address an error repeats (the rest is summarised by its length).
constexpr size_t kRawEchoBytes = 64;

// Character classes, one bit each, looked up per byte.
constexpr uint8_t kComponentChar = 1;  // [A-Za-z0-9_-]
constexpr uint8_t kPathChar = 2;       // [A-Za-z0-9_\-/.]

constexpr std::array<uint8_t, 256> make_class_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum || c == '_' || c == '-') t[c] |= kComponentChar | kPathChar;
    if (c == '/' || c == '.') t[c] |= kPathChar;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_class_table();

// Index of the first byte of s not in class `bit`, or s.size() when all are.
inline size_t first_outside(std::string_view s, uint8_t bit) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  for (size_t i = 0; i < s.size(); ++i) {
    if (!(kClass[p[i]] & bit)) return i;
  }
  return s.size();
}

// A byte as the error messages show it: the character when printable ASCII, else \xNN.
std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

// The raw text as an error repeats it: bytes outside printable ASCII become \xNN, so the message is
// always valid UTF-8 (it ends up in JSON envelopes and logs); over-long text is cut short.
std::string echo_raw(std::string_view text) {
  std::string out;
  const bool cut = text.size() > kMaxAddressBytes;
  const std::string_view shown = cut ? text.substr(0, kRawEchoBytes) : text;
  out.reserve(shown.size() + 16);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : shown) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (cut) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool fail(ParseError *err, std::string_view field, std::string message, std::string_view text) {
  if (err != nullptr) {
    err->field.assign(field);
    err->message = std::move(message);
    err->raw = echo_raw(text);
  }
  return false;
}

bool check_component(std::string_view value, std::string_view field, ParseError *err, std::string_view text) {
  if (value.empty()) return fail(err, field, std::string(field) + " cannot be empty", text);
  const size_t bad = first_outside(value, kComponentChar);
  if (bad != value.size()) {
    return fail(err, field,
                std::string(field) + " contains " + describe_byte(static_cast<unsigned char>(value[bad])) +
                    " (allowed: letters, digits, '_', '-', or the wildcard 'any')",
                text);
  }
  return true;
}

bool check_path(std::string_view path, ParseError *err, std::string_view text) {
  const size_t bad = first_outside(path, kPathChar);
  if (bad != path.size()) {
    return fail(err, "path",
                "path contains " + describe_byte(static_cast<unsigned char>(path[bad])) +
                    " (allowed: letters, digits, '_', '-', '/', '.')",
                text);
  }
  return true;
}

// N of *~N, ~~N, ^^N: decimal, no sign, no leading zero, 1..kMaxCount.
bool parse_count(std::string_view digits, std::string_view token, uint64_t *out, ParseError *err,
                 std::string_view text) {
  constexpr std::string_view kField = "temporal_segment";
  if (digits.empty()) return fail(err, kField, "temporal segment '" + std::string(token) + "' lacks its count", text);
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return fail(err, kField, "count in temporal segment '" + echo_raw(token) + "' is not a decimal number", text);
    }
  }
  if (digits[0] == '0') {
    return fail(err, kField,
                digits.size() == 1 ? "count in temporal segment '" + std::string(token) + "' must be at least 1"
                                   : "count in temporal segment '" + std::string(token) + "' has a leading zero",
                text);
  }
  uint64_t n = 0;
  // At most 10 digits fit the bound; anything longer is over it (and could overflow).
  if (digits.size() > 10 || std::from_chars(digits.data(), digits.data() + digits.size(), n).ec != std::errc() ||
      n > kMaxCount) {
    return fail(err, kField, "count in temporal segment '" + std::string(token) + "' exceeds 1000000000", text);
  }
  *out = n;
  return true;
}

bool parse_temporal(std::string_view token, TemporalSegment *t, ParseError *err, std::string_view text) {
  constexpr std::string_view kField = "temporal_segment";
  if (token.empty()) return fail(err, kField, "temporal segment is missing", text);
  if (token.size() >= 2) {
    const char a = token[0], b = token[1];
    if (a == '*' && b == '^') {
      if (token.size() == 2) {
        *t = TemporalSegment{TemporalType::kLatest, Direction::kNone, 0};
        return true;
      }
    } else if (a == '*' && b == '~') {
      if (token.size() == 2) {
        *t = TemporalSegment{TemporalType::kAny, Direction::kNone, 0};
        return true;
      }
      uint64_t n = 0;
      if (!parse_count(token.substr(2), token, &n, err, text)) return false;
      *t = TemporalSegment{TemporalType::kSpecific, Direction::kNone, n};
      return true;
    } else if ((a == '~' && b == '~') || (a == '^' && b == '^')) {
      uint64_t n = 0;
      if (!parse_count(token.substr(2), token, &n, err, text)) return false;
      *t = TemporalSegment{TemporalType::kRelative, a == '~' ? Direction::kBackward : Direction::kForward, n};
      return true;
    }
  }
  return fail(err, kField,
              "'" + echo_raw(token) + "' is not a temporal segment (expected *^, *~, *~N, ~~N or ^^N)", text);
}

void append_count(std::string &out, uint64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_authority(std::string &out, const Address &a) {
  out += kScheme;
  out += a.agent;
  out += ':';
  out += a.role;
  out += '@';
  out += a.project;
  out += ':';
  out += a.task;
  out += '/';
}

std::string_view type_text(TemporalType t) {
  switch (t) {
    case TemporalType::kLatest: return "latest";
    case TemporalType::kAny: return "any";
    case TemporalType::kSpecific: return "specific";
    case TemporalType::kRelative: return "relative";
  }
  return "latest";
}

}  // namespace

std::string TemporalSegment::text() const {
  std::string out;
  switch (type) {
    case TemporalType::kLatest: return "*^";
    case TemporalType::kAny: return "*~";
    case TemporalType::kSpecific: out = "*~"; break;
    case TemporalType::kRelative: out = direction == Direction::kForward ? "^^" : "~~"; break;
  }
  append_count(out, count);
  return out;
}

std::string Address::to_string() const {
  std::string out;
  out.reserve(kScheme.size() + agent.size() + role.size() + project.size() + task.size() + path.size() + 20);
  append_authority(out, *this);
  switch (temporal.type) {
    case TemporalType::kLatest: out += "*^"; break;
    case TemporalType::kAny: out += "*~"; break;
    case TemporalType::kSpecific:
      out += "*~";
      append_count(out, temporal.count);
      break;
    case TemporalType::kRelative:
      out += temporal.direction == Direction::kForward ? "^^" : "~~";
      append_count(out, temporal.count);
      break;
  }
  if (!path.empty()) {
    out += '/';
    out += path;
  }
  return out;
}

std::string Address::series() const {
  std::string out;
  out.reserve(kScheme.size() + agent.size() + role.size() + project.size() + task.size() + path.size() + 4);
  append_authority(out, *this);
  out += path;
  return out;
}

Address Address::with_temporal(TemporalSegment t) const {
  Address out = *this;
  out.temporal = t;
  out.raw.clear();
  return out;
}

bool Address::has_wildcards() const { return agent == "any" || role == "any" || project == "any" || task == "any"; }

nlohmann::json Address::to_json() const {
  nlohmann::json ts = {{"type", type_text(temporal.type)}};
  if (temporal.type == TemporalType::kRelative) {
    ts["direction"] = temporal.direction == Direction::kForward ? "forward" : "backward";
  }
  if (temporal.type == TemporalType::kSpecific || temporal.type == TemporalType::kRelative) {
    ts["count"] = temporal.count;
  }
  return nlohmann::json{{"agent", agent},       {"role", role}, {"project", project},
                        {"task", task},         {"temporal_segment", std::move(ts)},
                        {"path", path},         {"raw", raw.empty() ? to_string() : raw}};
}

std::string ParseError::what() const {
  std::string out = "UCXL address validation error in ";
  out += field;
  out += ": ";
  out += message;
  out += " (address: ";
  out += raw;
  out += ')';
  return out;
}

std::optional<Address> parse(std::string_view text, ParseError *err) {
  if (text.empty()) {
    fail(err, "address", "address cannot be empty", text);
    return std::nullopt;
  }
  if (text.size() > kMaxAddressBytes) {
    fail(err, "address",
         "address is " + std::to_string(text.size()) + " bytes long (at most " + std::to_string(kMaxAddressBytes) +
             ")",
         text);
    return std::nullopt;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) >= 0x80) {
      fail(err, "address", "address is not ASCII (byte " + std::to_string(i) + ")", text);
      return std::nullopt;
    }
  }
  if (text.substr(0, kScheme.size()) != kScheme) {
    fail(err, "address", "address must start with 'ucxl://'", text);
    return std::nullopt;
  }

  // agent ':' role '@' project ':' task, up to the first '/'.
  const std::string_view rest = text.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const size_t at = authority.find('@');
  if (at == std::string_view::npos) {
    fail(err, "address", "missing '@' between agent:role and project:task", text);
    return std::nullopt;
  }
  const std::string_view who = authority.substr(0, at);
  const std::string_view where = authority.substr(at + 1);
  const size_t colon1 = who.find(':');
  if (colon1 == std::string_view::npos) {
    fail(err, "address", "missing ':' between agent and role", text);
    return std::nullopt;
  }
  const size_t colon2 = where.find(':');
  if (colon2 == std::string_view::npos) {
    fail(err, "address", "missing ':' between project and task", text);
    return std::nullopt;
  }
  const std::string_view agent = who.substr(0, colon1);
  const std::string_view role = who.substr(colon1 + 1);
  const std::string_view project = where.substr(0, colon2);
  const std::string_view task = where.substr(colon2 + 1);
  if (!check_component(agent, "agent", err, text) || !check_component(role, "role", err, text) ||
      !check_component(project, "project", err, text) || !check_component(task, "task", err, text)) {
    return std::nullopt;
  }

  // '/' temporal ['/' path]
  if (slash == std::string_view::npos) {
    fail(err, "temporal_segment", "temporal segment is missing", text);
    return std::nullopt;
  }
  std::string_view tail = rest.substr(slash + 1);
  const size_t slash2 = tail.find('/');
  const std::string_view token = tail.substr(0, slash2);
  TemporalSegment temporal;
  if (!parse_temporal(token, &temporal, err, text)) return std::nullopt;
  const std::string_view path = slash2 == std::string_view::npos ? std::string_view() : tail.substr(slash2 + 1);
  if (!check_path(path, err, text)) return std::nullopt;

  std::optional<Address> out(std::in_place);
  out->agent.assign(agent);
  out->role.assign(role);
  out->project.assign(project);
  out->task.assign(task);
  out->temporal = temporal;
  out->path.assign(path);
  out->raw.assign(text);
  return out;
}

std::optional<Address> from_json(const nlohmann::json &j, ParseError *err) {
  std::string_view raw_text;
  if (j.is_object()) {
    const auto it = j.find("raw");
    if (it != j.end() && it->is_string()) raw_text = it->get_ref<const std::string &>();
  }
  auto failed = [&](std::string_view field, std::string message) {
    fail(err, field, std::move(message), raw_text);
    return std::nullopt;
  };
  if (!j.is_object()) return failed("address", "the JSON form of an address is an object");

  auto string_member = [&](const char *name, const std::string **out) {
    const auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return false;
    *out = &it->get_ref<const std::string &>();
    return true;
  };
  Address a;
  const char *const names[] = {"agent", "role", "project", "task"};
  std::string *const slots[] = {&a.agent, &a.role, &a.project, &a.task};
  for (size_t i = 0; i < 4; ++i) {
    const std::string *value = nullptr;
    if (!string_member(names[i], &value)) return failed(names[i], std::string(names[i]) + " must be a string");
    if (!check_component(*value, names[i], err, raw_text)) return std::nullopt;
    *slots[i] = *value;
  }

  const auto ts = j.find("temporal_segment");
  if (ts == j.end() || !ts->is_object()) return failed("temporal_segment", "temporal_segment must be an object");
  const auto type = ts->find("type");
  if (type == ts->end() || !type->is_string()) {
    return failed("temporal_segment", "temporal_segment.type must be a string");
  }
  const std::string &type_name = type->get_ref<const std::string &>();
  const auto direction = ts->find("direction");
  std::string_view direction_name;
  if (direction != ts->end()) {
    if (!direction->is_string()) return failed("temporal_segment", "temporal_segment.direction must be a string");
    direction_name = direction->get_ref<const std::string &>();
  }
  const auto count = ts->find("count");
  uint64_t n = 0;
  if (count != ts->end()) {
    if (!count->is_number_unsigned() && !(count->is_number_integer() && count->get<int64_t>() >= 0)) {
      return failed("temporal_segment", "temporal_segment.count must be a non-negative integer");
    }
    n = count->get<uint64_t>();
  }
  if (type_name == "latest" || type_name == "any") {
    if (!direction_name.empty() || n != 0) {
      return failed("temporal_segment", "temporal_segment of type '" + type_name + "' takes no direction or count");
    }
    a.temporal.type = type_name == "latest" ? TemporalType::kLatest : TemporalType::kAny;
  } else if (type_name == "specific" || type_name == "relative") {
    if (n < 1 || n > kMaxCount) return failed("temporal_segment", "temporal_segment.count must be 1..1000000000");
    a.temporal.count = n;
    if (type_name == "specific") {
      if (!direction_name.empty()) return failed("temporal_segment", "a specific temporal_segment takes no direction");
      a.temporal.type = TemporalType::kSpecific;
    } else {
      a.temporal.type = TemporalType::kRelative;
      if (direction_name == "backward") {
        a.temporal.direction = Direction::kBackward;
      } else if (direction_name == "forward") {
        a.temporal.direction = Direction::kForward;
      } else {
        return failed("temporal_segment", "temporal_segment.direction must be 'backward' or 'forward'");
      }
    }
  } else {
    return failed("temporal_segment", "temporal_segment.type must be latest, any, specific or relative");
  }

  const std::string *path = nullptr;
  if (!string_member("path", &path)) return failed("path", "path must be a string");
  if (!check_path(*path, err, raw_text)) return std::nullopt;
  a.path = *path;
  // The same limit as the text form: the canonical text must fit.
  const std::string text = a.to_string();
  if (text.size() > kMaxAddressBytes) {
    return failed("address", "address is " + std::to_string(text.size()) + " bytes long (at most " +
                                 std::to_string(kMaxAddressBytes) + ")");
  }
  a.raw = text;
  return a;
}

bool matches(const Address &pattern, const Address &candidate) {
  auto component = [](const std::string &p, const std::string &c) { return p == "any" || p == c; };
  if (!component(pattern.agent, candidate.agent) || !component(pattern.role, candidate.role) ||
      !component(pattern.project, candidate.project) || !component(pattern.task, candidate.task)) {
    return false;
  }
  const std::string &p = pattern.path;
  const std::string &c = candidate.path;
  if (p.empty() || p == c) return true;
  if (c.size() <= p.size() || c.compare(0, p.size(), p) != 0) return false;
  return p.back() == '/' || c[p.size()] == '/';
}

}  // namespace chorus::ucxl

#include "envelope.hpp"

#include <chorus/time_text.hpp>

#include <array>
#include <cstdio>
#include <ctime>

namespace chorus::gossip {
namespace {

// Wire strings in enum order (index 0 is kUnknown).
constexpr std::array<const char *, kKnownMessageTypes + 1> kTypeNames = {
    "",
    "task_announcement",
    "task_claim",
    "task_progress",
    "task_complete",
    "capability_broadcast",
    "availability_broadcast",
    "meta_discussion",
    "task_help_request",
    "task_help_response",
    "coordination_request",
    "coordination_complete",
    "dependency_alert",
    "escalation_trigger",
};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, size_t pos, size_t n, int &out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Deepest nesting of arrays and objects in JSON text, strings skipped; stops counting past limit.
size_t nesting_depth(std::string_view text, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void fail(std::string *why, const char *what) {
  if (why != nullptr) *why = what;
}

}  // namespace

const char *message_type_name(MessageType t) {
  const auto i = static_cast<size_t>(t);
  return i < kTypeNames.size() ? kTypeNames[i] : "";
}

MessageType message_type_from(std::string_view wire) {
  for (size_t i = 1; i < kTypeNames.size(); ++i)
    if (wire == kTypeNames[i]) return static_cast<MessageType>(i);
  return MessageType::kUnknown;
}

std::string rfc3339_utc(std::chrono::system_clock::time_point t) { return chorus::rfc3339_utc_ms(t); }

std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) || s[7] != '-' ||
      !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, hour) ||
      s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' || !digits(s, 17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int scale = 100, n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos, ++n;
    }
    if (n == 0) return std::nullopt;
  }
  int64_t offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
        oh > 23 || om > 59)
      return std::nullopt;
    offset_min = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + std::min(second, 59) - offset_min * 60;
  return secs * 1000 + ms;
}

std::string build_envelope(const Envelope &e) {
  // ordered_json keeps the documented key order on the wire.
  nlohmann::ordered_json j;
  j["type"] = e.type;
  j["from"] = e.from;
  j["timestamp"] = e.timestamp;
  j["data"] = e.data.is_null() ? nlohmann::json::object() : e.data;
  if (e.hop_count > 0) j["hop_count"] = e.hop_count;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Envelope> parse_envelope(std::string_view bytes, std::string *why) {
  // Cheap refusals first: most raw payloads are not JSON objects at all.
  size_t start = 0;
  while (start < bytes.size() && (bytes[start] == ' ' || bytes[start] == '\n' || bytes[start] == '\r' || bytes[start] == '\t'))
    ++start;
  if (start == bytes.size() || bytes[start] != '{') return fail(why, "not a JSON object"), std::nullopt;
  if (nesting_depth(bytes, kMaxEnvelopeDepth) > kMaxEnvelopeDepth) return fail(why, "nested too deeply"), std::nullopt;
  auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(why, "not a JSON object"), std::nullopt;
  Envelope e;
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return fail(why, "no string \"type\""), std::nullopt;
  e.type = type->get<std::string>();
  if (auto from = j.find("from"); from != j.end()) {
    if (!from->is_string()) return fail(why, "\"from\" is not a string"), std::nullopt;
    e.from = from->get<std::string>();
  }
  if (auto ts = j.find("timestamp"); ts != j.end()) {
    if (!ts->is_string()) return fail(why, "\"timestamp\" is not a string"), std::nullopt;
    e.timestamp = ts->get<std::string>();
  }
  if (auto hops = j.find("hop_count"); hops != j.end()) {
    if (!hops->is_number_unsigned() || hops->get<uint64_t>() > UINT32_MAX)
      return fail(why, "\"hop_count\" is not a non-negative integer"), std::nullopt;
    e.hop_count = static_cast<uint32_t>(hops->get<uint64_t>());
  }
  if (auto data = j.find("data"); data != j.end()) e.data = std::move(*data);
  return e;
}

}  // namespace chorus::gossip

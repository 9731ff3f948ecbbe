#include "protocol.hpp"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace chorus::license {
namespace {

using json = nlohmann::json;

// Cuts s to at most max bytes without splitting a UTF-8 sequence.
std::string clip_utf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

Answer unreachable(std::string why) {
  Answer a;
  a.outcome = Outcome::unreachable;
  a.reason = clip_utf8(std::move(why), kMaxReasonBytes);
  return a;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads exactly n decimal digits at text[*pos].
bool digits(std::string_view text, size_t *pos, size_t n, int *out) {
  if (*pos + n > text.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool expect(std::string_view text, size_t *pos, char c) {
  if (*pos >= text.size()) return false;
  const char got = text[*pos];
  if (got != c && !(c == 'T' && (got == 't')) && !(c == 'Z' && got == 'z')) return false;
  ++*pos;
  return true;
}

}  // namespace

const char *outcome_name(Outcome o) noexcept {
  switch (o) {
    case Outcome::valid: return "valid";
    case Outcome::invalid: return "invalid";
    case Outcome::unreachable: return "unreachable";
  }
  return "unreachable";
}

std::string request_body(const ValidationRequest &req) {
  return json{{"license_id", req.license_id},
              {"cluster_id", req.cluster_id},
              {"agent_id", req.agent_id},
              {"product", kProduct},
              {"version", req.version}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

Answer classify_answer(int http_status, std::string_view body, std::string_view transport_error,
                       std::string_view expected_license_id) {
  if (http_status == 0)
    return unreachable(transport_error.empty() ? std::string("no HTTP answer") : std::string(transport_error));
  if (body.size() > kMaxAnswerBytes) return unreachable("answer larger than " + std::to_string(kMaxAnswerBytes) + " bytes");
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);

  if (http_status == 403) {
    // A refusal is a refusal even without a readable body: fail closed.
    Answer a;
    a.outcome = Outcome::invalid;
    if (doc.is_object() && doc.contains("reason") && doc["reason"].is_string())
      a.reason = clip_utf8(doc["reason"].get<std::string>(), kMaxReasonBytes);
    if (a.reason.empty()) a.reason = "the licence server refused the licence (HTTP 403)";
    return a;
  }
  if (http_status != 200) return unreachable("licence server answered HTTP " + std::to_string(http_status));
  if (!doc.is_object()) return unreachable("licence server answer is not a JSON object");
  const auto valid = doc.find("valid");
  if (valid == doc.end() || !valid->is_boolean()) return unreachable("licence server answer has no boolean \"valid\"");

  if (!valid->get<bool>()) {
    Answer a;
    a.outcome = Outcome::invalid;
    if (doc.contains("reason") && doc["reason"].is_string())
      a.reason = clip_utf8(doc["reason"].get<std::string>(), kMaxReasonBytes);
    if (a.reason.empty()) a.reason = "the licence server says the licence is not valid";
    return a;
  }

  const auto id = doc.find("license_id");
  if (id == doc.end() || !id->is_string()) return unreachable("valid answer without a \"license_id\" string");
  if (id->get_ref<const std::string &>() != expected_license_id)
    return unreachable("valid answer for another licence id");
  const auto expires = doc.find("expires_at");
  if (expires == doc.end() || !expires->is_string()) return unreachable("valid answer without an \"expires_at\" string");
  const auto at = parse_rfc3339_ms(expires->get_ref<const std::string &>());
  if (!at) return unreachable("valid answer with an \"expires_at\" that is not an RFC 3339 timestamp");

  Answer a;
  a.outcome = Outcome::valid;
  a.expires_at_unix_ms = *at;
  if (const auto f = doc.find("features"); f != doc.end()) {
    if (!f->is_array()) return unreachable("\"features\" is not an array");
    for (const auto &e : *f) {
      if (!e.is_string()) return unreachable("\"features\" holds a non-string");
      a.features.push_back(e.get<std::string>());
    }
  }
  return a;
}

std::optional<int64_t> parse_rfc3339_ms(std::string_view text) {
  size_t p = 0;
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (!digits(text, &p, 4, &year) || !expect(text, &p, '-') || !digits(text, &p, 2, &mon) || !expect(text, &p, '-') ||
      !digits(text, &p, 2, &day) || !expect(text, &p, 'T') || !digits(text, &p, 2, &hour) || !expect(text, &p, ':') ||
      !digits(text, &p, 2, &min) || !expect(text, &p, ':') || !digits(text, &p, 2, &sec))
    return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mon < 1 || mon > 12 || day < 1) return std::nullopt;
  if (day > kDays[mon - 1] + (mon == 2 && leap(year) ? 1 : 0)) return std::nullopt;
  if (hour > 23 || min > 59 || sec > 60) return std::nullopt;  // 60: a leap second, counted as :59 + 1 s
  int64_t ms = 0;
  if (p < text.size() && text[p] == '.') {
    ++p;
    size_t n = 0;
    int64_t scale = 100;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9') {
      if (n < 3) ms += (text[p] - '0') * scale, scale /= 10;
      ++p, ++n;
    }
    if (n == 0 || n > 9) return std::nullopt;
  }
  int64_t offset_min = 0;
  if (p < text.size() && (text[p] == 'Z' || text[p] == 'z')) {
    ++p;
  } else if (p < text.size() && (text[p] == '+' || text[p] == '-')) {
    const int sign = text[p] == '+' ? 1 : -1;
    ++p;
    int oh = 0, om = 0;
    if (!digits(text, &p, 2, &oh) || !expect(text, &p, ':') || !digits(text, &p, 2, &om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_min = sign * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (p != text.size()) return std::nullopt;
  const int64_t days = days_from_civil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - offset_min * 60;
  const int64_t out = secs * 1000 + ms;
  // Between 1970 and the end of year 9999: a licence expiry outside is nonsense, and inside the
  // four-digit year of format_rfc3339_ms round-trips.
  if (out < 0 || out >= days_from_civil(10000, 1, 1) * 86400000) return std::nullopt;
  return out;
}

std::string format_rfc3339_ms(int64_t unix_ms) {
  const int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
  const int64_t ms = unix_ms - secs * 1000;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "invalid-time";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf);
  if (ms != 0) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
    out += frac;
  }
  return out + "Z";
}

}  // namespace chorus::license

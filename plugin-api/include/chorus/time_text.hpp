// chorus/time_text.hpp - times as CHORUS messages, logs and routes write them: RFC 3339 in UTC with
// milliseconds, "2026-12-07T01:02:03.456Z". Header-only, like the rest of the C++ layer.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace chorus {

// Milliseconds since the Unix epoch (negative ones before it) as RFC 3339 UTC with milliseconds.
inline std::string rfc3339_utc_ms(int64_t unix_ms) {
  const int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  const int millis = static_cast<int>(unix_ms - secs * 1000);
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // the fields are bounded, but the compiler cannot know it
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

inline int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline std::string rfc3339_utc_ms(std::chrono::system_clock::time_point t) { return rfc3339_utc_ms(unix_ms(t)); }

}  // namespace chorus

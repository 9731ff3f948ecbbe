// Process-wide logging through spdlog. One line per record, as text or as JSON lines; the component
// (host or plugin id) is a field of its own so plugins' logs can be filtered.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace chorus::host {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError };  // = CHORUS_LOG_* values

std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

// Configure once at start-up (again on SIGHUP for the level). format: "text" or "json".
void configure_logging(LogLevel level, std::string_view format);
void set_log_level(LogLevel level);
LogLevel current_log_level();

// Every line passes through SHHH (channel "log", source = component) before it is written.
void log(LogLevel level, std::string_view component, std::string_view message);
// Only for SHHH's own audit sink, which runs inside log() and must not recurse into it; its text
// holds no secret (a path and an errno message).
void log_unredacted(LogLevel level, std::string_view component, std::string_view message);

// Now, as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z").
std::string utc_timestamp();

// The host's own lines (component "host"); host files bring these in with a using-declaration.
namespace host_log {
inline void info(std::string_view m) { log(LogLevel::kInfo, "host", m); }
inline void warn(std::string_view m) { log(LogLevel::kWarn, "host", m); }
inline void error(std::string_view m) { log(LogLevel::kError, "host", m); }
}  // namespace host_log
void log_flush();

}  // namespace chorus::host

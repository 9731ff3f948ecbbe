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

void log(LogLevel level, std::string_view component, std::string_view message);

// The host's own lines (component "host"); host files bring these in with a using-declaration.
namespace host_log {
inline void info(std::string_view m) { log(LogLevel::kInfo, "host", m); }
inline void warn(std::string_view m) { log(LogLevel::kWarn, "host", m); }
inline void error(std::string_view m) { log(LogLevel::kError, "host", m); }
}  // namespace host_log
void log_flush();

}  // namespace chorus::host

#include "logging.hpp"

#include <atomic>
#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "redaction.hpp"

namespace chorus::host {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};

spdlog::logger &logger() {
  // stderr keeps stdout free for command output (check --json, plugins --json).
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("chorus", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");  // we format the whole line ourselves so text and JSON share one path
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::warn);
    return l;
  }();
  return *instance;
}

constexpr std::string_view kNames[] = {"trace", "debug", "info", "warn", "error"};

}  // namespace

std::string utc_timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (int i = 0; i < 5; ++i)
    if (kNames[i] == name) return static_cast<LogLevel>(i);
  if (name == "warning") return LogLevel::kWarn;
  return std::nullopt;
}

std::string_view log_level_name(LogLevel level) { return kNames[static_cast<int>(level)]; }

void configure_logging(LogLevel level, std::string_view format) {
  set_log_level(level);
  g_json = (format == "json");
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel current_log_level() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

namespace {

void write_line(LogLevel level, std::string_view component, std::string_view message) {
  std::string line;
  if (g_json) {
    nlohmann::json j = {{"ts", utc_timestamp()},
                        {"level", log_level_name(level)},
                        {"component", component},
                        {"msg", message}};
    // Plugins may log arbitrary bytes; never let invalid UTF-8 throw out of a log call.
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line.reserve(40 + component.size() + message.size());
    line.append(utc_timestamp()).append(" ");
    std::string_view name = log_level_name(level);
    line.append(name).append(6 - name.size(), ' ');
    line.append("[").append(component).append("] ").append(message);
  }
  static constexpr spdlog::level::level_enum kMap[] = {spdlog::level::trace, spdlog::level::debug,
                                                        spdlog::level::info, spdlog::level::warn,
                                                        spdlog::level::err};
  logger().log(kMap[static_cast<int>(level)], "{}", line);
}

}  // namespace

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  // Redacted before formatting, so the text and JSON formats carry the same redacted message.
  write_line(level, component, redact_for(shhh::Channel::kLog, false, message, component));
}

void log_unredacted(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  write_line(level, component, message);
}

void log_flush() { logger().flush(); }

}  // namespace chorus::host

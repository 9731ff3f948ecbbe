#include "resources.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace chorus::election {
namespace {

// The value (kB) of a "Key:   123 kB" line of /proc/meminfo.
std::optional<double> meminfo_value(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view rest = line.substr(key.size() + 1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      uint64_t v = 0;
      const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), v);
      if (r.ec != std::errc()) return std::nullopt;
      return static_cast<double>(v);
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

std::string read_file(const char *path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<double> parse_mem_available_fraction(std::string_view meminfo) {
  const auto total = meminfo_value(meminfo, "MemTotal");
  const auto available = meminfo_value(meminfo, "MemAvailable");
  if (!total || !available || *total <= 0) return std::nullopt;
  return std::clamp(*available / *total, 0.0, 1.0);
}

std::optional<double> parse_load1(std::string_view loadavg) {
  const std::string first(loadavg.substr(0, loadavg.find(' ')));
  if (first.empty()) return std::nullopt;
  char *end = nullptr;
  const double v = std::strtod(first.c_str(), &end);
  if (end == first.c_str() || *end != '\0' || !(v >= 0)) return std::nullopt;
  return v;
}

double cpu_idle_from_load(double load1, unsigned cores) {
  if (cores == 0) cores = 1;
  return std::clamp(1.0 - load1 / static_cast<double>(cores), 0.0, 1.0);
}

ResourceSample read_resources() {
  ResourceSample s;
  s.mem_available_fraction = parse_mem_available_fraction(read_file("/proc/meminfo")).value_or(0);
  if (const auto load = parse_load1(read_file("/proc/loadavg")))
    s.cpu_idle_fraction = cpu_idle_from_load(*load, std::thread::hardware_concurrency());
  return s;
}

}  // namespace chorus::election

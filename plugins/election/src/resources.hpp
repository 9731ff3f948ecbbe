// The resource inputs of the candidate score (ScoreInputs::mem_available_fraction and
// cpu_idle_fraction), read from /proc/meminfo and /proc/loadavg. The parsers are free of I/O so the
// tests can feed them text.
#pragma once

#include <optional>
#include <string_view>

namespace chorus::election {

struct ResourceSample {
  double mem_available_fraction = 0;  // MemAvailable / MemTotal
  double cpu_idle_fraction = 0;       // 1 - loadavg(1 min) / cores, clamped to [0, 1]
};

// MemAvailable / MemTotal of a /proc/meminfo text; nullopt when either line is missing or MemTotal is 0.
std::optional<double> parse_mem_available_fraction(std::string_view meminfo);
// The first number of a /proc/loadavg text.
std::optional<double> parse_load1(std::string_view loadavg);
double cpu_idle_from_load(double load1, unsigned cores);

// Reads both files now; a part that cannot be read counts as 0 (no resources to offer).
ResourceSample read_resources();

}  // namespace chorus::election

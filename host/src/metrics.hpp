// A small metrics registry with Prometheus text exposition (format 0.0.4). Plugins define metrics
// through the C ABI; the host uses the same registry for its own.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace chorus::host {

class MetricsRegistry {
 public:
  enum class Kind { kCounter, kGauge, kHistogram };
  enum Op { kAdd = 0, kSet = 1, kObserve = 2 };  // same values as CHORUS_METRIC_ADD/SET/OBSERVE

  MetricsRegistry();
  ~MetricsRegistry();

  // Validates the name ([a-zA-Z_:][a-zA-Z0-9_:]*), label names ([a-zA-Z_][a-zA-Z0-9_]*, not "le"
  // for histograms, no duplicates) and buckets (strictly increasing, finite; empty = the default
  // latency buckets 0.001 ... 10). Defining an existing name with the same kind, labels and buckets
  // returns the existing id; any difference is an error (sets *error, returns nullopt).
  std::optional<uint64_t> define(Kind kind, const std::string &name, const std::string &help,
                                 const std::vector<std::string> &label_names,
                                 const std::vector<double> &buckets, std::string *error);
  // Thread-safe and cheap. Returns false for an unknown id, a wrong label count, an op the kind does
  // not support (counter: add with value >= 0; gauge: add/set; histogram: observe) or a NaN value.
  bool update(uint64_t id, int op, const char *const *label_values, size_t label_count, double value);
  bool update(uint64_t id, int op, const std::vector<std::string> &label_values, double value);

  // Runs every collector, then renders all metrics (HELP, TYPE, samples; label values escaped;
  // histograms as _bucket{le=...}/_sum/_count with +Inf).
  std::string render();
  // Collectors refresh gauges right before rendering (e.g. plugin states, uptime).
  void add_collector(std::function<void(MetricsRegistry &)> collector);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::host

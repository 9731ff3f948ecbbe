// Metrics registry and Prometheus text exposition (format 0.0.4).
//
// Layout, chosen for cheap updates from many worker threads:
//  - Metrics are never deleted, so a metric's address is stable for the registry's lifetime. Ids are
//    1-based indexes into a fixed-capacity slot array that is published with an atomic count: update()
//    finds its metric without taking any registry-wide lock.
//  - Each metric has its own mutex guarding its series map. Series are keyed by an injective encoding
//    of the label values, so an update costs one short lock, one hash lookup and (for labelled metrics)
//    building one small key string.
//  - render() runs the collectors first (they may define and update metrics), then takes each
//    metric's lock just long enough to copy its series, and formats outside the locks.
#include "metrics.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>

namespace chorus::host {
namespace {

// More metrics than this is a bug in whoever defines them (per-request names, ...), not a real need.
constexpr size_t kMaxMetrics = 4096;

const std::vector<double> kDefaultBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,    1,     2.5,  5,     10};

bool valid_metric_name(const std::string &name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool valid_label_name(const std::string &name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

// Prometheus accepts Go-style floats. Integral values (the common case for counters and gauges) are
// printed as plain integers while the double holds them exactly (|v| <= 2^53); everything else uses the
// shortest representation that reads back to the same double.
void append_number(std::string &out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) <= 9007199254740992.0) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v);
  }
  out.append(buf, r.ptr);
}

void append_help(std::string &out, const std::string &help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_label_value(std::string &out, const std::string &value) {
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

const char *kind_name(MetricsRegistry::Kind kind) {
  switch (kind) {
    case MetricsRegistry::Kind::kCounter: return "counter";
    case MetricsRegistry::Kind::kGauge: return "gauge";
    case MetricsRegistry::Kind::kHistogram: return "histogram";
  }
  return "untyped";
}

struct Series {
  std::vector<std::string> labels;
  double value = 0;                    // counter, gauge
  std::vector<uint64_t> bucket_counts;  // histogram: per bucket, not cumulative (cumulated at render)
  double sum = 0;
  uint64_t count = 0;
};

struct Metric {
  MetricsRegistry::Kind kind;
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> buckets;

  std::mutex mu;
  // Key: label values, each as "<length>:<bytes>" so that no two value lists share a key.
  std::unordered_map<std::string, Series> series;
};

template <typename GetValue>
std::string series_key(size_t count, GetValue get) {
  std::string key;
  for (size_t i = 0; i < count; ++i) {
    const std::string_view v = get(i);
    key += std::to_string(v.size());
    key += ':';
    key += v;
  }
  return key;
}

}  // namespace

struct MetricsRegistry::Impl {
  // Guards definitions (the name index and appending to `slots`) and the collector list. Updates never
  // take it.
  std::mutex define_mu;
  std::map<std::string, uint64_t, std::less<>> by_name;  // sorted: render order
  std::unique_ptr<std::unique_ptr<Metric>[]> slots{new std::unique_ptr<Metric>[kMaxMetrics]};
  std::atomic<size_t> count{0};  // slots [0, count) are set and never change again

  std::vector<std::function<void(MetricsRegistry &)>> collectors;
  std::mutex render_mu;  // one render at a time, so collectors never run concurrently with themselves

  Metric *find(uint64_t id) const {
    if (id == 0 || id > count.load(std::memory_order_acquire)) return nullptr;
    return slots[id - 1].get();
  }

  template <typename GetValue>
  bool update(uint64_t id, int op, size_t label_count, GetValue get, double value) {
    Metric *m = find(id);
    if (m == nullptr || label_count != m->label_names.size() || std::isnan(value)) return false;
    switch (m->kind) {
      case Kind::kCounter:
        if (op != kAdd || value < 0) return false;
        break;
      case Kind::kGauge:
        if (op != kAdd && op != kSet) return false;
        break;
      case Kind::kHistogram:
        if (op != kObserve) return false;
        break;
    }
    std::string key = series_key(label_count, get);  // built before locking: keep the lock short

    std::lock_guard lock(m->mu);
    auto [it, inserted] = m->series.try_emplace(std::move(key));
    Series &s = it->second;
    if (inserted) {
      s.labels.reserve(label_count);
      for (size_t i = 0; i < label_count; ++i) s.labels.emplace_back(get(i));
      if (m->kind == Kind::kHistogram) s.bucket_counts.assign(m->buckets.size(), 0);
    }
    switch (m->kind) {
      case Kind::kCounter:
        s.value += value;
        break;
      case Kind::kGauge:
        s.value = op == kSet ? value : s.value + value;
        break;
      case Kind::kHistogram: {
        // First bucket whose upper bound is >= value; past the last one only +Inf (== count) counts it.
        const auto b = std::lower_bound(m->buckets.begin(), m->buckets.end(), value);
        if (b != m->buckets.end()) ++s.bucket_counts[b - m->buckets.begin()];
        s.sum += value;
        ++s.count;
        break;
      }
    }
    return true;
  }
};

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

std::optional<uint64_t> MetricsRegistry::define(Kind kind, const std::string &name,
                                                const std::string &help,
                                                const std::vector<std::string> &label_names,
                                                const std::vector<double> &buckets,
                                                std::string *error) {
  auto fail = [&](std::string message) -> std::optional<uint64_t> {
    if (error != nullptr) *error = "metric " + name + ": " + std::move(message);
    return std::nullopt;
  };

  if (!valid_metric_name(name)) return fail("invalid name (must match [a-zA-Z_:][a-zA-Z0-9_:]*)");
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string &label = label_names[i];
    if (!valid_label_name(label)) {
      return fail("invalid label name '" + label + "' (must match [a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if (kind == Kind::kHistogram && label == "le") {
      return fail("label name 'le' is reserved for histogram buckets");
    }
    if (std::find(label_names.begin(), label_names.begin() + i, label) != label_names.begin() + i) {
      return fail("duplicate label name '" + label + "'");
    }
  }
  std::vector<double> effective_buckets;
  if (kind == Kind::kHistogram) {
    effective_buckets = buckets.empty() ? kDefaultBuckets : buckets;
    for (size_t i = 0; i < effective_buckets.size(); ++i) {
      if (!std::isfinite(effective_buckets[i])) return fail("bucket bounds must be finite");
      if (i > 0 && !(effective_buckets[i - 1] < effective_buckets[i])) {
        return fail("bucket bounds must be strictly increasing");
      }
    }
  } else if (!buckets.empty()) {
    return fail("buckets are only allowed for histograms");
  }

  std::lock_guard lock(impl_->define_mu);
  if (auto it = impl_->by_name.find(name); it != impl_->by_name.end()) {
    // Help text is documentation, not shape: a second definer with other wording still shares it.
    const Metric &m = *impl_->slots[it->second - 1];
    if (m.kind != kind) return fail(std::string("already defined as a ") + kind_name(m.kind));
    if (m.label_names != label_names) return fail("already defined with other label names");
    if (m.buckets != effective_buckets) return fail("already defined with other buckets");
    return it->second;
  }
  const size_t index = impl_->count.load(std::memory_order_relaxed);
  if (index == kMaxMetrics) return fail("too many metrics");

  auto m = std::make_unique<Metric>();
  m->kind = kind;
  m->name = name;
  m->help = help;
  m->label_names = label_names;
  m->buckets = std::move(effective_buckets);
  if (label_names.empty()) {
    // A metric without labels has exactly one series; show it (as 0) from the start, as Prometheus
    // recommends, instead of letting it appear only after the first update.
    Series &s = m->series[""];
    if (kind == Kind::kHistogram) s.bucket_counts.assign(m->buckets.size(), 0);
  }
  impl_->slots[index] = std::move(m);
  impl_->count.store(index + 1, std::memory_order_release);  // publish to lock-free readers
  const uint64_t id = index + 1;
  impl_->by_name.emplace(name, id);
  return id;
}

bool MetricsRegistry::update(uint64_t id, int op, const char *const *label_values,
                             size_t label_count, double value) {
  if (label_count > 0) {
    if (label_values == nullptr) return false;
    for (size_t i = 0; i < label_count; ++i) {
      if (label_values[i] == nullptr) return false;
    }
  }
  return impl_->update(
      id, op, label_count, [&](size_t i) { return std::string_view(label_values[i]); }, value);
}

bool MetricsRegistry::update(uint64_t id, int op, const std::vector<std::string> &label_values,
                             double value) {
  return impl_->update(
      id, op, label_values.size(), [&](size_t i) { return std::string_view(label_values[i]); },
      value);
}

void MetricsRegistry::add_collector(std::function<void(MetricsRegistry &)> collector) {
  std::lock_guard lock(impl_->define_mu);
  impl_->collectors.push_back(std::move(collector));
}

std::string MetricsRegistry::render() {
  std::lock_guard render_lock(impl_->render_mu);

  // Collectors call define()/update(), so no registry lock may be held while they run.
  std::vector<std::function<void(MetricsRegistry &)>> collectors;
  {
    std::lock_guard lock(impl_->define_mu);
    collectors = impl_->collectors;
  }
  for (auto &collect : collectors) {
    try {
      collect(*this);
    } catch (...) {
      // A failing collector loses its own refresh only; the scrape still shows everything else.
    }
  }

  std::vector<Metric *> metrics;
  {
    std::lock_guard lock(impl_->define_mu);
    metrics.reserve(impl_->by_name.size());
    for (const auto &[name, id] : impl_->by_name) metrics.push_back(impl_->slots[id - 1].get());
  }

  std::string out;
  std::vector<Series> series;
  for (Metric *m : metrics) {
    series.clear();
    {
      std::lock_guard lock(m->mu);
      series.reserve(m->series.size());
      for (const auto &entry : m->series) series.push_back(entry.second);
    }
    std::sort(series.begin(), series.end(),
              [](const Series &a, const Series &b) { return a.labels < b.labels; });

    if (!m->help.empty()) {
      out += "# HELP ";
      out += m->name;
      out += ' ';
      append_help(out, m->help);
      out += '\n';
    }
    out += "# TYPE ";
    out += m->name;
    out += ' ';
    out += kind_name(m->kind);
    out += '\n';

    // Writes `name<suffix>{labels[,le="bound"]} value`.
    auto sample = [&](const char *suffix, const Series &s, const std::string *le, double value) {
      out += m->name;
      out += suffix;
      if (!s.labels.empty() || le != nullptr) {
        out += '{';
        for (size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out += ',';
          out += m->label_names[i];
          out += "=\"";
          append_label_value(out, s.labels[i]);
          out += '"';
        }
        if (le != nullptr) {
          if (!s.labels.empty()) out += ',';
          out += "le=\"";
          out += *le;
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      append_number(out, value);
      out += '\n';
    };

    if (m->kind != Kind::kHistogram) {
      for (const Series &s : series) sample("", s, nullptr, s.value);
      continue;
    }
    std::vector<std::string> bounds;
    bounds.reserve(m->buckets.size() + 1);
    for (double b : m->buckets) {
      bounds.emplace_back();
      append_number(bounds.back(), b);
    }
    bounds.emplace_back("+Inf");
    for (const Series &s : series) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < m->buckets.size(); ++i) {
        cumulative += s.bucket_counts[i];
        sample("_bucket", s, &bounds[i], static_cast<double>(cumulative));
      }
      sample("_bucket", s, &bounds.back(), static_cast<double>(s.count));
      sample("_sum", s, nullptr, s.sum);
      sample("_count", s, nullptr, static_cast<double>(s.count));
    }
  }
  return out;
}

}  // namespace chorus::host

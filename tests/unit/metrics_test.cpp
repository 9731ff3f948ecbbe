// MetricsRegistry: definitions, updates and the exact Prometheus text it renders.
#include "metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace chorus::host {
namespace {

using Kind = MetricsRegistry::Kind;
using Labels = std::vector<std::string>;

uint64_t define_ok(MetricsRegistry &r, Kind kind, const std::string &name, const std::string &help,
                   const Labels &labels = {}, const std::vector<double> &buckets = {}) {
  std::string error;
  auto id = r.define(kind, name, help, labels, buckets, &error);
  EXPECT_TRUE(id.has_value()) << error;
  return id.value_or(0);
}

std::string define_error(MetricsRegistry &r, Kind kind, const std::string &name,
                         const Labels &labels = {}, const std::vector<double> &buckets = {}) {
  std::string error;
  auto id = r.define(kind, name, "help", labels, buckets, &error);
  EXPECT_FALSE(id.has_value()) << name;
  EXPECT_FALSE(error.empty()) << name;
  return error;
}

TEST(MetricsTest, CounterRendersExactText) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kCounter, "chorus_requests_total", "Requests served", {"method", "code"});
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"GET", "200"}, 3));
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"POST", "500"}, 1));
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"GET", "200"}, 2));
  EXPECT_EQ(r.render(),
            "# HELP chorus_requests_total Requests served\n"
            "# TYPE chorus_requests_total counter\n"
            "chorus_requests_total{method=\"GET\",code=\"200\"} 5\n"
            "chorus_requests_total{method=\"POST\",code=\"500\"} 1\n");
}

TEST(MetricsTest, UnlabelledMetricShowsZeroBeforeFirstUpdate) {
  MetricsRegistry r;
  define_ok(r, Kind::kCounter, "chorus_events_total", "Events");
  EXPECT_EQ(r.render(),
            "# HELP chorus_events_total Events\n"
            "# TYPE chorus_events_total counter\n"
            "chorus_events_total 0\n");
}

TEST(MetricsTest, LabelledMetricWithoutSeriesRendersOnlyHeader) {
  MetricsRegistry r;
  define_ok(r, Kind::kGauge, "chorus_peers", "Peers", {"direction"});
  EXPECT_EQ(r.render(), "# HELP chorus_peers Peers\n# TYPE chorus_peers gauge\n");
}

TEST(MetricsTest, EmptyHelpOmitsHelpLine) {
  MetricsRegistry r;
  define_ok(r, Kind::kGauge, "chorus_x", "");
  EXPECT_EQ(r.render(), "# TYPE chorus_x gauge\nchorus_x 0\n");
}

TEST(MetricsTest, GaugeSetAndAdd) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kGauge, "chorus_temperature", "Temp");
  EXPECT_TRUE(r.update(id, MetricsRegistry::kSet, Labels{}, 10));
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{}, -2.5));
  EXPECT_EQ(r.render(),
            "# HELP chorus_temperature Temp\n"
            "# TYPE chorus_temperature gauge\n"
            "chorus_temperature 7.5\n");
}

TEST(MetricsTest, HistogramRendersCumulativeBucketsSumAndCount) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kHistogram, "chorus_latency_seconds", "Latency", {"route"},
                      {0.005, 0.5, 1});
  for (double v : {0.001, 0.005, 0.3, 0.75, 2.0}) {
    EXPECT_TRUE(r.update(id, MetricsRegistry::kObserve, Labels{"/a"}, v));
  }
  EXPECT_TRUE(r.update(id, MetricsRegistry::kObserve, Labels{"/b"}, 4));
  EXPECT_EQ(r.render(),
            "# HELP chorus_latency_seconds Latency\n"
            "# TYPE chorus_latency_seconds histogram\n"
            "chorus_latency_seconds_bucket{route=\"/a\",le=\"0.005\"} 2\n"
            "chorus_latency_seconds_bucket{route=\"/a\",le=\"0.5\"} 3\n"
            "chorus_latency_seconds_bucket{route=\"/a\",le=\"1\"} 4\n"
            "chorus_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 5\n"
            "chorus_latency_seconds_sum{route=\"/a\"} 3.056\n"
            "chorus_latency_seconds_count{route=\"/a\"} 5\n"
            "chorus_latency_seconds_bucket{route=\"/b\",le=\"0.005\"} 0\n"
            "chorus_latency_seconds_bucket{route=\"/b\",le=\"0.5\"} 0\n"
            "chorus_latency_seconds_bucket{route=\"/b\",le=\"1\"} 0\n"
            "chorus_latency_seconds_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
            "chorus_latency_seconds_sum{route=\"/b\"} 4\n"
            "chorus_latency_seconds_count{route=\"/b\"} 1\n");
}

TEST(MetricsTest, HistogramDefaultBucketsWithoutLabels) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kHistogram, "chorus_h", "H");
  EXPECT_TRUE(r.update(id, MetricsRegistry::kObserve, Labels{}, 0.02));
  EXPECT_EQ(r.render(),
            "# HELP chorus_h H\n"
            "# TYPE chorus_h histogram\n"
            "chorus_h_bucket{le=\"0.001\"} 0\n"
            "chorus_h_bucket{le=\"0.0025\"} 0\n"
            "chorus_h_bucket{le=\"0.005\"} 0\n"
            "chorus_h_bucket{le=\"0.01\"} 0\n"
            "chorus_h_bucket{le=\"0.025\"} 1\n"
            "chorus_h_bucket{le=\"0.05\"} 1\n"
            "chorus_h_bucket{le=\"0.1\"} 1\n"
            "chorus_h_bucket{le=\"0.25\"} 1\n"
            "chorus_h_bucket{le=\"0.5\"} 1\n"
            "chorus_h_bucket{le=\"1\"} 1\n"
            "chorus_h_bucket{le=\"2.5\"} 1\n"
            "chorus_h_bucket{le=\"5\"} 1\n"
            "chorus_h_bucket{le=\"10\"} 1\n"
            "chorus_h_bucket{le=\"+Inf\"} 1\n"
            "chorus_h_sum 0.02\n"
            "chorus_h_count 1\n");
}

TEST(MetricsTest, EscapesHelpAndLabelValues) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kGauge, "chorus_esc", "a \\ back\nslash \"quoted\"", {"v"});
  EXPECT_TRUE(r.update(id, MetricsRegistry::kSet, Labels{"x\\y\"z\nw"}, 1));
  EXPECT_EQ(r.render(),
            "# HELP chorus_esc a \\\\ back\\nslash \"quoted\"\n"
            "# TYPE chorus_esc gauge\n"
            "chorus_esc{v=\"x\\\\y\\\"z\\nw\"} 1\n");
}

TEST(MetricsTest, SortsMetricsByNameAndSeriesByLabelValues) {
  MetricsRegistry r;
  auto b = define_ok(r, Kind::kGauge, "chorus_b", "B", {"k"});
  auto a = define_ok(r, Kind::kGauge, "chorus_a", "A");
  for (const char *k : {"zeta", "alpha", "mid"}) {
    EXPECT_TRUE(r.update(b, MetricsRegistry::kSet, Labels{k}, 1));
  }
  EXPECT_TRUE(r.update(a, MetricsRegistry::kSet, Labels{}, 2));
  const std::string sorted =
      "# HELP chorus_a A\n# TYPE chorus_a gauge\nchorus_a 2\n"
      "# HELP chorus_b B\n# TYPE chorus_b gauge\n"
      "chorus_b{k=\"alpha\"} 1\nchorus_b{k=\"mid\"} 1\nchorus_b{k=\"zeta\"} 1\n";
  EXPECT_EQ(r.render(), sorted);
  EXPECT_EQ(r.render(), sorted);  // rendering again changes nothing (deterministic, no state consumed)
}

TEST(MetricsTest, NumberFormatting) {
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kGauge, "chorus_n", "", {"c"});
  const std::pair<const char *, double> cases[] = {
      {"int", 42},
      {"negint", -7},
      {"big_int", 9007199254740992.0},  // 2^53, still exact: no exponent
      {"huge", 1e20},
      {"frac", 0.1},
      {"third", 1.0 / 3},
      {"tiny", 1e-7},
      {"inf", std::numeric_limits<double>::infinity()},
      {"neginf", -std::numeric_limits<double>::infinity()},
  };
  for (const auto &[label, value] : cases) {
    EXPECT_TRUE(r.update(id, MetricsRegistry::kSet, Labels{label}, value));
  }
  EXPECT_EQ(r.render(),
            "# TYPE chorus_n gauge\n"
            "chorus_n{c=\"big_int\"} 9007199254740992\n"
            "chorus_n{c=\"frac\"} 0.1\n"
            "chorus_n{c=\"huge\"} 1e+20\n"
            "chorus_n{c=\"inf\"} +Inf\n"
            "chorus_n{c=\"int\"} 42\n"
            "chorus_n{c=\"neginf\"} -Inf\n"
            "chorus_n{c=\"negint\"} -7\n"
            "chorus_n{c=\"third\"} 0.3333333333333333\n"
            "chorus_n{c=\"tiny\"} 1e-07\n");
}

TEST(MetricsTest, DefineIsIdempotentForTheSameShape) {
  MetricsRegistry r;
  auto id1 = define_ok(r, Kind::kHistogram, "chorus_same", "first", {"a"}, {1, 2});
  auto id2 = define_ok(r, Kind::kHistogram, "chorus_same", "other words", {"a"}, {1, 2});
  EXPECT_EQ(id1, id2);
  // Default buckets given explicitly are the same shape as "empty = default".
  auto d1 = define_ok(r, Kind::kHistogram, "chorus_default", "", {}, {});
  auto d2 = define_ok(r, Kind::kHistogram, "chorus_default", "", {},
                      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  EXPECT_EQ(d1, d2);
  auto other = define_ok(r, Kind::kCounter, "chorus_other", "");
  EXPECT_NE(other, id1);
}

TEST(MetricsTest, ConflictingRedefinitionIsAnError) {
  MetricsRegistry r;
  define_ok(r, Kind::kHistogram, "chorus_shape", "", {"a"}, {1, 2});
  EXPECT_NE(define_error(r, Kind::kGauge, "chorus_shape", {"a"}).find("histogram"), std::string::npos);
  define_error(r, Kind::kHistogram, "chorus_shape", {"b"}, {1, 2});
  define_error(r, Kind::kHistogram, "chorus_shape", {"a", "b"}, {1, 2});
  define_error(r, Kind::kHistogram, "chorus_shape", {"a"}, {1, 3});
  define_error(r, Kind::kHistogram, "chorus_shape", {"a"}, {});
}

TEST(MetricsTest, RejectsInvalidNamesLabelsAndBuckets) {
  MetricsRegistry r;
  for (const char *name : {"", "1abc", "chorus-x", "chorus x", "chorus_é"}) {
    define_error(r, Kind::kCounter, name);
  }
  define_ok(r, Kind::kCounter, "chorus:ns_ok_total", "");
  define_ok(r, Kind::kCounter, "_x", "");
  for (const char *label : {"", "1a", "a:b", "a-b"}) {
    define_error(r, Kind::kCounter, "chorus_l", {label});
  }
  define_error(r, Kind::kCounter, "chorus_dup", {"a", "b", "a"});
  define_error(r, Kind::kHistogram, "chorus_le", {"le"});
  define_ok(r, Kind::kGauge, "chorus_le_ok", "", {"le"});  // only histograms reserve "le"
  define_error(r, Kind::kHistogram, "chorus_b1", {}, {1, 1});
  define_error(r, Kind::kHistogram, "chorus_b2", {}, {2, 1});
  define_error(r, Kind::kHistogram, "chorus_b3", {}, {1, std::numeric_limits<double>::infinity()});
  define_error(r, Kind::kHistogram, "chorus_b4", {}, {std::nan("")});
  define_error(r, Kind::kCounter, "chorus_b5", {}, {1, 2});  // buckets only for histograms
  // Nothing half-defined is left behind.
  EXPECT_EQ(r.render().find("chorus_b"), std::string::npos);
  EXPECT_EQ(r.render().find("chorus_dup"), std::string::npos);
}

TEST(MetricsTest, UpdateFailures) {
  MetricsRegistry r;
  auto counter = define_ok(r, Kind::kCounter, "chorus_c", "", {"a"});
  auto gauge = define_ok(r, Kind::kGauge, "chorus_g", "");
  auto hist = define_ok(r, Kind::kHistogram, "chorus_h", "");

  EXPECT_FALSE(r.update(0, MetricsRegistry::kAdd, Labels{"x"}, 1));          // unknown id
  EXPECT_FALSE(r.update(hist + 100, MetricsRegistry::kAdd, Labels{}, 1));    // unknown id
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, Labels{}, 1));       // too few labels
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, Labels{"x", "y"}, 1));  // too many
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, Labels{"x"}, -1));   // counters only grow
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kSet, Labels{"x"}, 1));
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kObserve, Labels{"x"}, 1));
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, Labels{"x"}, std::nan("")));
  EXPECT_FALSE(r.update(gauge, MetricsRegistry::kObserve, Labels{}, 1));
  EXPECT_FALSE(r.update(gauge, 7, Labels{}, 1));
  EXPECT_FALSE(r.update(hist, MetricsRegistry::kAdd, Labels{}, 1));
  EXPECT_FALSE(r.update(hist, MetricsRegistry::kSet, Labels{}, 1));
  EXPECT_FALSE(r.update(hist, MetricsRegistry::kObserve, Labels{}, std::nan("")));

  // The C-string overload: NULL arrays and NULL entries are rejected, not dereferenced.
  const char *good[] = {"x"};
  const char *bad[] = {nullptr};
  EXPECT_TRUE(r.update(counter, MetricsRegistry::kAdd, good, 1, 1));
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, nullptr, 1, 1));
  EXPECT_FALSE(r.update(counter, MetricsRegistry::kAdd, bad, 1, 1));
  EXPECT_TRUE(r.update(gauge, MetricsRegistry::kSet, nullptr, 0, 3));

  // Failed updates changed nothing.
  EXPECT_EQ(r.render(),
            "# TYPE chorus_c counter\nchorus_c{a=\"x\"} 1\n"
            "# TYPE chorus_g gauge\nchorus_g 3\n"
            "# TYPE chorus_h histogram\n"
            "chorus_h_bucket{le=\"0.001\"} 0\nchorus_h_bucket{le=\"0.0025\"} 0\n"
            "chorus_h_bucket{le=\"0.005\"} 0\nchorus_h_bucket{le=\"0.01\"} 0\n"
            "chorus_h_bucket{le=\"0.025\"} 0\nchorus_h_bucket{le=\"0.05\"} 0\n"
            "chorus_h_bucket{le=\"0.1\"} 0\nchorus_h_bucket{le=\"0.25\"} 0\n"
            "chorus_h_bucket{le=\"0.5\"} 0\nchorus_h_bucket{le=\"1\"} 0\n"
            "chorus_h_bucket{le=\"2.5\"} 0\nchorus_h_bucket{le=\"5\"} 0\n"
            "chorus_h_bucket{le=\"10\"} 0\nchorus_h_bucket{le=\"+Inf\"} 0\n"
            "chorus_h_sum 0\nchorus_h_count 0\n");
}

TEST(MetricsTest, LabelValuesAreKeyedUnambiguously) {
  // ("a,b", "c") and ("a", "b,c") or values with embedded separators must stay distinct series.
  MetricsRegistry r;
  auto id = define_ok(r, Kind::kCounter, "chorus_k", "", {"x", "y"});
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"1:a", "b"}, 1));
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"1", "a1:b"}, 1));
  EXPECT_TRUE(r.update(id, MetricsRegistry::kAdd, Labels{"", ""}, 1));
  EXPECT_EQ(r.render(),
            "# TYPE chorus_k counter\n"
            "chorus_k{x=\"\",y=\"\"} 1\n"
            "chorus_k{x=\"1\",y=\"a1:b\"} 1\n"
            "chorus_k{x=\"1:a\",y=\"b\"} 1\n");
}

TEST(MetricsTest, ConcurrentUpdatesSumCorrectly) {
  MetricsRegistry r;
  auto counter = define_ok(r, Kind::kCounter, "chorus_conc_total", "", {"t"});
  auto hist = define_ok(r, Kind::kHistogram, "chorus_conc_seconds", "", {}, {1});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Labels mine{t % 2 == 0 ? "even" : "odd"};
      for (int i = 0; i < kPerThread; ++i) {
        r.update(counter, MetricsRegistry::kAdd, mine, 1);
        r.update(hist, MetricsRegistry::kObserve, Labels{}, 0.5);
        // Defining concurrently with updates must be safe too.
        if (i % 5000 == 0) {
          std::string error;
          r.define(Kind::kGauge, "chorus_conc_g" + std::to_string(t * 100 + i / 5000), "", {}, {},
                   &error);
        }
      }
    });
  }
  for (auto &t : threads) t.join();
  const std::string text = r.render();
  const std::string half = std::to_string(kThreads / 2 * kPerThread);
  const std::string all = std::to_string(kThreads * kPerThread);
  EXPECT_NE(text.find("chorus_conc_total{t=\"even\"} " + half + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("chorus_conc_total{t=\"odd\"} " + half + "\n"), std::string::npos);
  EXPECT_NE(text.find("chorus_conc_seconds_bucket{le=\"1\"} " + all + "\n"), std::string::npos);
  EXPECT_NE(text.find("chorus_conc_seconds_count " + all + "\n"), std::string::npos);
  EXPECT_NE(text.find("chorus_conc_seconds_sum " + std::to_string(kThreads * kPerThread / 2) + "\n"),
            std::string::npos);
}

TEST(MetricsTest, CollectorsRunBeforeEachRender) {
  MetricsRegistry r;
  int calls = 0;
  r.add_collector([&](MetricsRegistry &m) {
    ++calls;
    // Collectors may define (idempotently) and update.
    std::string error;
    auto id = m.define(Kind::kGauge, "chorus_collected", "Set by a collector", {}, {}, &error);
    ASSERT_TRUE(id) << error;
    m.update(*id, MetricsRegistry::kSet, Labels{}, calls);
  });
  r.add_collector([](MetricsRegistry &) { throw std::runtime_error("broken collector"); });
  EXPECT_EQ(r.render(),
            "# HELP chorus_collected Set by a collector\n"
            "# TYPE chorus_collected gauge\n"
            "chorus_collected 1\n");
  EXPECT_NE(r.render().find("chorus_collected 2\n"), std::string::npos);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace chorus::host

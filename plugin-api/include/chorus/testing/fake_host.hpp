// chorus/testing/fake_host.hpp - an in-process fake of chorus-agent for unit-testing plugins.
//
// FakeHost implements the whole chorus_host_api deterministically:
//   * logs are captured (logs(), has_log());
//   * post() queues tasks, run_pending() runs them on the calling thread;
//   * timers run on a manual clock: advance(ms) fires what is due, in order, on the calling thread;
//   * the service registry is filled by the test: provide(name, major, minor, table, self, id);
//   * metrics, health reports and HTTP routes are recorded; http(method, target, body) calls the
//     plugin's handler and returns what it answered (after running posted tasks, so answers that
//     the handler hands to post() are collected too);
//   * misuse of the ABI contract (answering an exchange twice, releasing a ref twice, updating an
//     undefined metric, leaking refs or unanswered exchanges at stop, ...) is recorded in
//     violations(), which a good test expects to be empty.
//
// chorus::testing::load(descriptor, host, config_json) drives a plugin through its descriptor's C
// vtable exactly like the host does (create, start, ..., stop, destroy), so a test exercises the
// same trampolines as production. Like the host, it applies the descriptor's config schema first
// (chorus/config_schema.hpp, the host's own code): an invalid config fails create with CHORUS_E_CONFIG
// and the host's message ("plugins.<id>.config.<key>: ..."), and the plugin receives the config with
// the schema's defaults filled in:
//
//   chorus::testing::FakeHost host;
//   auto plugin = chorus::testing::load(my_descriptor, host, R"({"greeting":"hi"})");
//   ASSERT_EQ(plugin.status(), CHORUS_OK) << plugin.message();
//   auto r = host.http("GET", "/hello");
//   EXPECT_EQ(r.status, 200);
//   EXPECT_TRUE(host.violations().empty());
//
// For a plugin built as a .so, pass chorus_plugin_entry_v1 (from dlsym) instead of a descriptor.
// prepare_config(schema, id, config_json) is that schema step alone, for tests of a plugin's settings
// code. This header needs nlohmann_json (3.10 or newer), like chorus/config_schema.hpp.
// The fake host API functions are thread-safe, so plugins may call them from their own threads;
// callbacks only ever run inside run_pending(), advance() and http().
#ifndef CHORUS_TESTING_FAKE_HOST_HPP
#define CHORUS_TESTING_FAKE_HOST_HPP

#include <chorus/config_schema.hpp>
#include <chorus/plugin.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace chorus::testing {

struct LogEntry {
  int32_t level;
  std::string text;
};

struct HealthReport {
  int32_t state = CHORUS_HEALTH_OK;
  std::string message;
};

struct FakeResponse {
  int status = 0;  // 0 = not answered (yet)
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                 // for a stream: all chunks concatenated
  std::vector<std::string> chunks;  // stream writes, in order
  bool streaming = false;           // begin_stream was called
  bool finished = false;            // the plugin called respond or stream end
  bool cancelled = false;           // the client went away (disconnect()) or the host cancelled it at stop
  // The first header called `name` (ASCII case-insensitive); empty when absent.
  std::string header(std::string_view name) const {
    for (const auto &[n, v] : headers)
      if (chorus::detail::iequals(n, name)) return v;
    return {};
  }
};

namespace detail {

struct Version {
  uint64_t major = 0, minor = 0, patch = 0;
  friend bool operator<(const Version &a, const Version &b) {
    return std::tie(a.major, a.minor, a.patch) < std::tie(b.major, b.minor, b.patch);
  }
  friend bool operator==(const Version &a, const Version &b) = default;
};

// Parses "1", "1.2" or "1.2.3"; *parts tells how many were given.
inline bool parse_partial(std::string_view s, Version *v, int *parts) {
  uint64_t nums[3] = {0, 0, 0};
  int n = 0;
  size_t i = 0;
  while (true) {
    if (n == 3 || i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    uint64_t x = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') x = x * 10 + static_cast<uint64_t>(s[i++] - '0');
    nums[n++] = x;
    if (i == s.size()) break;
    if (s[i] != '.') return false;
    ++i;
  }
  *v = {nums[0], nums[1], nums[2]};
  *parts = n;
  return true;
}

// The range subset of the host: "*", "^1.2", "~1.2.3", "1", "1.2", "1.2.3", and space-separated
// comparator sets such as ">=1.2 <2". Sets *ok to false on a syntax error.
inline bool range_matches(std::string_view range, Version v, bool *ok) {
  *ok = true;
  bool match = true;
  size_t i = 0;
  while (i < range.size()) {
    while (i < range.size() && range[i] == ' ') ++i;
    if (i == range.size()) break;
    size_t j = range.find(' ', i);
    if (j == std::string_view::npos) j = range.size();
    std::string_view tok = range.substr(i, j - i);
    i = j;
    if (tok == "*") continue;
    std::string_view op;
    for (std::string_view candidate : {">=", "<=", ">", "<", "=", "^", "~"})
      if (tok.substr(0, candidate.size()) == candidate) {
        op = candidate;
        break;
      }
    Version b;
    int parts = 0;
    if (!parse_partial(tok.substr(op.size()), &b, &parts)) {
      *ok = false;
      return false;
    }
    Version lo = b, hi;
    bool bounded = true;
    auto bump = [&](int level) {
      if (level == 0) hi = {b.major + 1, 0, 0};
      else if (level == 1) hi = {b.major, b.minor + 1, 0};
      else hi = {b.major, b.minor, b.patch + 1};
    };
    if (op == "^") {
      bump(b.major > 0 || parts == 1 ? 0 : (b.minor > 0 || parts == 2) ? 1 : 2);
    } else if (op == "~") {
      bump(parts == 1 ? 0 : 1);
    } else if (op.empty() || op == "=") {
      bump(parts - 1);
    } else if (op == ">=") {
      bounded = false;
    } else if (op == ">") {
      bump(parts - 1);  // ">1.2" excludes all of 1.2.x
      lo = hi;
      bounded = false;
    } else if (op == "<") {
      lo = {};
      hi = b;
    } else if (op == "<=") {
      lo = {};
      bump(parts - 1);
    }
    if (v < lo || (bounded && !(v < hi))) match = false;
  }
  return match;  // an empty range matches everything, like "*"
}

inline bool valid_metric_name(std::string_view n) {
  if (n.substr(0, 7) != "chorus_") return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

inline std::vector<std::string> split_labels(const char *s) {
  std::vector<std::string> out;
  if (s == nullptr || *s == '\0') return out;
  std::string cur;
  for (const char *p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else if (*p != ' ') {
      cur += *p;
    }
  }
  return out;
}

inline std::string join(const std::vector<std::string> &v) {
  std::string out;
  for (const auto &s : v) {
    out += s;
    out += '\x1f';
  }
  return out;
}

}  // namespace detail

// What the host hands a plugin for plugins.<plugin_id>.config: the config validated against the
// plugin's schema (nullptr: it declares none) with the schema's defaults filled in, or the host's error.
struct PreparedConfig {
  std::string json;   // the config to pass to create or reconfigure
  std::string error;  // empty when the config is valid, else "plugins.<id>.config...: why"
  bool ok() const noexcept { return error.empty(); }
};
inline PreparedConfig prepare_config(const char *schema_json, std::string_view plugin_id, std::string_view config_json) {
  nlohmann::json schema;  // null: no schema
  if (schema_json != nullptr) {
    schema = nlohmann::json::parse(schema_json, nullptr, false);
    if (schema.is_discarded()) return {{}, "config_schema_json is not valid JSON"};
  }
  PreparedConfig prepared;
  if (auto why = chorus::config_schema::prepare_plugin_config(schema, plugin_id, config_json, &prepared.json))
    prepared.error = *why;
  return prepared;
}

// What the fake believes the plugin is doing; set by PluginHandle, used to enforce "call from
// create or start" rules and the stop protocol. A FakeHost used without PluginHandle stays
// `unmanaged`, where everything is allowed.
enum class Phase { unmanaged, creating, created, starting, running, stopping, stopped, destroyed };

class FakeHost {
 public:
  FakeHost() {
    api_.struct_size = sizeof(chorus_host_api);
    api_.abi_major = CHORUS_ABI_MAJOR;
    api_.abi_minor = CHORUS_ABI_MINOR;
    api_.log = &FakeHost::c_log;
    api_.log_level = &FakeHost::c_log_level;
    api_.host_info = &FakeHost::c_host_info;
    api_.post = &FakeHost::c_post;
    api_.timer_start = &FakeHost::c_timer_start;
    api_.timer_cancel = &FakeHost::c_timer_cancel;
    api_.now_ms = &FakeHost::c_now_ms;
    api_.service_acquire = &FakeHost::c_service_acquire;
    api_.service_release = &FakeHost::c_service_release;
    api_.service_watch = &FakeHost::c_service_watch;
    api_.service_unwatch = &FakeHost::c_service_unwatch;
    api_.metric_define = &FakeHost::c_metric_define;
    api_.metric_update = &FakeHost::c_metric_update;
    api_.health_report = &FakeHost::c_health_report;
    api_.http_route_add = &FakeHost::c_http_route_add;
    api_.http_respond = &FakeHost::c_http_respond;
    api_.http_stream_begin = &FakeHost::c_http_stream_begin;
    api_.http_stream_write = &FakeHost::c_http_stream_write;
    api_.http_stream_end = &FakeHost::c_http_stream_end;
    api_.status_str = &FakeHost::c_status_str;
    api_.redact = &FakeHost::c_redact;
  }
  FakeHost(const FakeHost &) = delete;
  FakeHost &operator=(const FakeHost &) = delete;
  // Drops whatever is still queued (running the destructors of tasks and timers).
  ~FakeHost() { drop_tasks_and_timers(); }

  // The table and context handed to the plugin. Use a shorter copy of api() (see
  // truncated_api()) to test how a plugin copes with an older host.
  const chorus_host_api *api() const noexcept { return &api_; }
  chorus_host_ctx *ctx() noexcept { return reinterpret_cast<chorus_host_ctx *>(this); }
  // A copy of the API table claiming to end before `first_missing_slot_offset` (an offsetof value),
  // as a host of an older minor would publish it. Keep the returned object alive while in use.
  chorus_host_api truncated_api(size_t first_missing_slot_offset) const noexcept {
    chorus_host_api copy = api_;
    copy.struct_size = static_cast<uint32_t>(first_missing_slot_offset);
    return copy;
  }

  // ---- knobs ----
  void set_log_level(int32_t level) { std::lock_guard lk(mu_); log_level_ = level; }
  void set_echo_logs(bool on) { std::lock_guard lk(mu_); echo_logs_ = on; }  // also print to stderr
  void set_host_info(std::string json) { std::lock_guard lk(mu_); host_info_ = std::move(json); }
  void set_plugin_id(std::string id) { std::lock_guard lk(mu_); plugin_id_ = std::move(id); }
  // Like a host whose HTTP listener is disabled: http_route_add fails with CHORUS_E_UNAVAILABLE.
  void set_http_enabled(bool on) { std::lock_guard lk(mu_); http_enabled_ = on; }
  Phase phase() const { std::lock_guard lk(mu_); return phase_; }
  void set_phase(Phase p) { std::lock_guard lk(mu_); phase_ = p; }

  // ---- SHHH (host_api.redact) ----
  // The fake stands in for the host's sentinel with literal secrets: each occurrence of one is
  // replaced with "[REDACTED]", whatever the format (the real rules are tested in shhh_test). Every
  // call is recorded. set_redact_available(false) removes the slot, like a 1.0 or 1.1 host.
  struct Redaction {
    int32_t channel;
    int32_t format;
    std::string input;
    std::string output;
  };
  void add_redact_secret(std::string secret) { std::lock_guard lk(mu_); redact_secrets_.push_back(std::move(secret)); }
  void set_redact_available(bool on) { api_.redact = on ? &FakeHost::c_redact : nullptr; }
  std::vector<Redaction> redactions() const { std::lock_guard lk(mu_); return redactions_; }

  // ---- logs ----
  std::vector<LogEntry> logs() const { std::lock_guard lk(mu_); return logs_; }
  bool has_log(std::string_view substring, int32_t min_level = CHORUS_LOG_TRACE) const {
    std::lock_guard lk(mu_);
    for (const auto &e : logs_)
      if (e.level >= min_level && e.text.find(substring) != std::string::npos) return true;
    return false;
  }
  void clear_logs() { std::lock_guard lk(mu_); logs_.clear(); }

  // ---- executor ----
  // Runs queued tasks (including ones they post) on this thread until the queue is empty or
  // max_tasks ran; returns how many ran. Does nothing while the plugin is stopping or stopped.
  size_t run_pending(size_t max_tasks = 100000) {
    size_t ran = 0;
    while (ran < max_tasks) {
      Task t;
      {
        std::lock_guard lk(mu_);
        if (tasks_.empty() || phase_ == Phase::stopping || phase_ == Phase::stopped || phase_ == Phase::destroyed)
          break;
        t = std::move(tasks_.front());
        tasks_.pop_front();
      }
      if (t.internal) t.internal();
      if (t.fn != nullptr) t.fn(t.arg);
      if (t.dtor != nullptr) t.dtor(t.arg);
      ++ran;
    }
    return ran;
  }
  size_t pending_tasks() const { std::lock_guard lk(mu_); return tasks_.size(); }

  // ---- manual clock and timers ----
  uint64_t now_ms() const { std::lock_guard lk(mu_); return now_; }
  // Moves the clock forward, firing every timer that falls due, in due order (ties: start order);
  // during a callback now_ms() is its due time. Returns the number of callbacks run.
  size_t advance(std::chrono::milliseconds d) {
    size_t fired = 0;
    std::unique_lock lk(mu_);
    const uint64_t target = now_ + static_cast<uint64_t>(d.count() > 0 ? d.count() : 0);
    while (true) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it)
        if (!it->second.cancelled && it->second.due <= target && (next == timers_.end() || it->second.due < next->second.due))
          next = it;
      if (next == timers_.end()) break;
      const uint64_t id = next->first;
      Timer &t = next->second;
      now_ = std::max(now_, t.due);
      t.running = true;
      running_thread_ = std::this_thread::get_id();
      chorus_task_fn fn = t.fn;
      void *arg = t.arg;
      lk.unlock();
      fn(arg);
      ++fired;
      lk.lock();
      running_thread_ = {};
      auto it = timers_.find(id);
      it->second.running = false;
      if (it->second.cancelled || it->second.period == 0) {
        chorus_dtor_fn dtor = it->second.dtor;
        timers_.erase(it);
        lk.unlock();
        if (dtor != nullptr) dtor(arg);
        lk.lock();
      } else {
        it->second.due += it->second.period;
      }
      cv_.notify_all();
    }
    now_ = std::max(now_, target);
    return fired;
  }
  size_t active_timers() const { std::lock_guard lk(mu_); return timers_.size(); }

  // ---- service registry ----
  // Registers (or replaces, for the same name and major) a provider, and queues AVAILABLE or
  // CHANGED watch events. `table` must start with uint32_t struct_size.
  void provide(std::string name, uint16_t major, uint16_t minor, const void *table, void *self,
               std::string provider_id = "test.provider") {
    std::lock_guard lk(mu_);
    auto p = std::make_shared<Provider>(Provider{major, minor, table, self, std::move(provider_id)});
    auto &list = services_[name];
    int32_t event = list.empty() ? CHORUS_SERVICE_AVAILABLE : CHORUS_SERVICE_CHANGED;
    bool replaced = false;
    for (auto &existing : list) {
      if (existing->major == major) {
        existing = p;
        replaced = true;
      }
    }
    if (!replaced) list.push_back(p);
    queue_watch_events(name, event);
  }
  // Removes every provider of `name` and queues GONE watch events. Held refs stay valid.
  void withdraw(const std::string &name) {
    std::lock_guard lk(mu_);
    if (services_.erase(name) > 0) queue_watch_events(name, CHORUS_SERVICE_GONE);
  }
  // Refs acquired and not yet released (optionally only for one service).
  size_t held_refs(std::string_view service = {}) const {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (const auto &[h, r] : refs_)
      if (service.empty() || r.service == service) ++n;
    return n;
  }
  size_t watch_count() const { std::lock_guard lk(mu_); return watches_.size(); }

  // ---- metrics ----
  bool metric_defined(std::string_view name) const {
    std::lock_guard lk(mu_);
    return find_metric(name) != nullptr;
  }
  // Counter/gauge: the current value; histogram: the sum of observations. nullopt = never updated
  // with these label values (given in the order the labels were defined).
  std::optional<double> metric_value(std::string_view name, const std::vector<std::string> &label_values = {}) const {
    std::lock_guard lk(mu_);
    const MetricDef *m = find_metric(name);
    if (m == nullptr) return std::nullopt;
    auto it = m->series.find(detail::join(label_values));
    if (it == m->series.end()) return std::nullopt;
    return it->second.value;
  }
  std::vector<double> histogram_samples(std::string_view name, const std::vector<std::string> &label_values = {}) const {
    std::lock_guard lk(mu_);
    const MetricDef *m = find_metric(name);
    if (m == nullptr) return {};
    auto it = m->series.find(detail::join(label_values));
    return it == m->series.end() ? std::vector<double>() : it->second.samples;
  }

  // ---- health ----
  HealthReport health() const { std::lock_guard lk(mu_); return health_.empty() ? HealthReport{} : health_.back(); }
  std::vector<HealthReport> health_history() const { std::lock_guard lk(mu_); return health_; }

  // ---- HTTP ----
  using Headers = std::vector<std::pair<std::string, std::string>>;
  // Calls the matching route's handler (404 if none), runs posted tasks, returns what was answered
  // so far (status 0 = still unanswered; see http_start/response for answers arriving later).
  FakeResponse http(std::string_view method, std::string_view target, std::string_view body = {},
                    const Headers &headers = {}) {
    const size_t id = http_start(method, target, body, headers);
    run_pending();
    return response(id);
  }
  // Dispatches the request without running posted tasks; returns an exchange number.
  size_t http_start(std::string_view method, std::string_view target, std::string_view body = {},
                    const Headers &headers = {}) {
    const size_t q = target.find('?');
    const std::string m(method);
    const std::string path(target.substr(0, q));
    const std::string query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    const std::string b(body);
    const std::string remote = "127.0.0.1:40000";
    std::vector<chorus_http_header> hs;
    for (const auto &[n, v] : headers) hs.push_back({n.data(), n.size(), v.data(), v.size()});

    Exchange *ex;
    Route route{};
    bool found = false;
    {
      std::lock_guard lk(mu_);
      exchanges_.push_back(std::make_unique<Exchange>());
      ex = exchanges_.back().get();
      ex->host = this;
      ex->label = m + " " + std::string(target);
      size_t best = 0;
      for (const auto &r : routes_) {
        if (r.method != "*" && r.method != m) continue;
        const bool exact = r.path == path;
        const bool prefix = (r.flags & CHORUS_ROUTE_PREFIX) != 0 && path.compare(0, r.path.size(), r.path) == 0;
        if (!exact && !prefix) continue;
        const size_t score = exact ? std::string::npos : r.path.size();
        if (!found || score > best) route = r, best = score, found = true;
      }
      if (!found) {
        ex->resp.status = 404;
        ex->resp.content_type = "text/plain";
        ex->resp.body = "no route\n";
        ex->resp.finished = true;
      }
    }
    if (found) {
      chorus_http_request req{};
      req.struct_size = sizeof req;
      req.header_count = static_cast<uint32_t>(hs.size());
      req.method = m.data();
      req.method_len = m.size();
      req.path = path.data();
      req.path_len = path.size();
      req.query = query.data();
      req.query_len = query.size();
      req.body = b.data();
      req.body_len = b.size();
      req.headers = hs.empty() ? nullptr : hs.data();
      req.remote = remote.data();
      req.remote_len = remote.size();
      route.fn(route.user, &req, reinterpret_cast<chorus_http_exchange *>(ex));
    }
    std::lock_guard lk(mu_);
    return exchanges_.size() - 1;
  }
  FakeResponse response(size_t exchange) const {
    std::lock_guard lk(mu_);
    return exchanges_.at(exchange)->resp;
  }
  // Simulates the client going away: further stream writes return CHORUS_E_CANCELLED.
  void disconnect(size_t exchange) {
    std::lock_guard lk(mu_);
    exchanges_.at(exchange)->client_gone = true;
    exchanges_.at(exchange)->resp.cancelled = true;
  }
  bool has_route(std::string_view method, std::string_view path) const {
    std::lock_guard lk(mu_);
    for (const auto &r : routes_)
      if (r.method == method && r.path == path) return true;
    return false;
  }
  size_t route_count() const { std::lock_guard lk(mu_); return routes_.size(); }

  // ---- contract checks ----
  std::vector<std::string> violations() const { std::lock_guard lk(mu_); return violations_; }
  size_t outstanding_bufs() const { std::lock_guard lk(mu_); return outstanding_bufs_; }

  // ---- the host's side of the stop protocol (PluginHandle calls these) ----
  // Before stop(), like the host: no new tasks or timers are accepted, queued tasks no longer run,
  // the routes are removed and exchanges still unanswered are cancelled (the client gets a 503;
  // the plugin's later respond/write/end return CHORUS_E_CANCELLED and must still happen).
  void begin_stopping() {
    std::lock_guard lk(mu_);
    phase_ = Phase::stopping;
    routes_.clear();
    for (auto &ex : exchanges_) {
      if (ex->resp.finished) continue;
      ex->client_gone = true;
      ex->resp.cancelled = true;
      if (!ex->resp.streaming) ex->resp.status = 503;
    }
  }
  // After stop() (or a failed create/start): drops queued tasks and cancels timers (running their
  // destructors), removes routes and watches, and records leaked refs and exchanges the plugin
  // never finished.
  void end_plugin(Phase next = Phase::stopped) {
    {
      std::lock_guard lk(mu_);
      phase_ = next;
      routes_.clear();
      watches_.clear();
      for (const auto &[h, r] : refs_) violations_.push_back("service ref to '" + r.service + "' still held at stop");
      for (const auto &ex : exchanges_)
        if (!ex->resp.finished) violations_.push_back("exchange '" + ex->label + "' never finished");
    }
    drop_tasks_and_timers();
  }

 private:
  struct Task {
    chorus_task_fn fn = nullptr;
    void *arg = nullptr;
    chorus_dtor_fn dtor = nullptr;
    std::function<void()> internal;  // fake-generated work (watch events)
  };
  struct Timer {
    uint64_t due, period;
    chorus_task_fn fn;
    void *arg;
    chorus_dtor_fn dtor;
    bool running = false, cancelled = false;
  };
  struct Provider {
    uint16_t major, minor;
    const void *table;
    void *self;
    std::string id;
  };
  struct Ref {
    std::string service;
    std::shared_ptr<Provider> provider;  // keeps provider_id valid while held
  };
  struct Watch {
    std::string service;
    chorus_watch_fn fn;
    void *arg;
  };
  struct Series {
    double value = 0;
    std::vector<double> samples;
  };
  struct MetricDef {
    uint64_t id;
    int32_t kind;
    std::string name, help;
    std::vector<std::string> labels;
    std::vector<double> buckets;
    std::map<std::string, Series> series;
  };
  struct Route {
    std::string method, path;
    uint32_t flags;
    chorus_http_handler_fn fn;
    void *user;
  };
  struct Exchange {
    FakeHost *host;
    std::string label;
    FakeResponse resp;
    bool client_gone = false;
  };

  static FakeHost *self(chorus_host_ctx *c) noexcept { return reinterpret_cast<FakeHost *>(c); }
  static Exchange *exch(chorus_http_exchange *e) noexcept { return reinterpret_cast<Exchange *>(e); }

  // Requires mu_.
  void violation(std::string what) { violations_.push_back(std::move(what)); }
  static void fill(chorus_error *err, chorus_status s, const std::string &msg) { chorus::set_error(err, s, msg); }
  bool control_phase() const {
    return phase_ == Phase::unmanaged || phase_ == Phase::creating || phase_ == Phase::starting;
  }
  bool refusing_work() const {
    return phase_ == Phase::stopping || phase_ == Phase::stopped || phase_ == Phase::destroyed;
  }
  const MetricDef *find_metric(std::string_view name) const {
    for (const auto &[id, m] : metrics_)
      if (m.name == name) return &m;
    return nullptr;
  }
  void queue_watch_events(const std::string &service, int32_t event) {
    for (const auto &[id, w] : watches_) {
      if (w.service != service) continue;
      const uint64_t wid = id;
      Task t;
      t.internal = [this, wid, service, event] {
        Watch w2;
        {
          std::lock_guard lk(mu_);
          auto it = watches_.find(wid);
          if (it == watches_.end()) return;  // unwatched or stopped meanwhile
          w2 = it->second;
        }
        w2.fn(w2.arg, service.c_str(), event);
      };
      tasks_.push_back(std::move(t));
    }
  }
  void drop_tasks_and_timers() {
    std::deque<Task> tasks;
    std::map<uint64_t, Timer> timers;
    {
      std::lock_guard lk(mu_);
      tasks.swap(tasks_);
      for (auto it = timers_.begin(); it != timers_.end();) {
        if (it->second.running) {  // advance() frees it when the callback returns
          it->second.cancelled = true;
          ++it;
        } else {
          timers.insert(timers_.extract(it++));
        }
      }
    }
    for (auto &t : tasks)
      if (t.dtor != nullptr) t.dtor(t.arg);
    for (auto &[id, t] : timers)
      if (t.dtor != nullptr) t.dtor(t.arg);
  }

  // ---- the C functions of the table ----
  static void c_log(chorus_host_ctx *c, int32_t level, const char *msg, size_t len) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    if (level < CHORUS_LOG_TRACE || level > CHORUS_LOG_ERROR) h->violation("log: invalid level " + std::to_string(level));
    std::string text = msg != nullptr ? std::string(msg, len) : std::string();
    if (h->echo_logs_) std::fprintf(stderr, "[fake-host log %d] %s\n", level, text.c_str());
    h->logs_.push_back({level, std::move(text)});
  }
  static int32_t c_log_level(chorus_host_ctx *c) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    return h->log_level_;
  }
  // Hands text out as a chorus_buf whose release is counted (outstanding_bufs). Caller holds mu_.
  static chorus_status give_tracked_buf(FakeHost *h, std::string text, chorus_buf *out) {
    auto *s = new std::string(std::move(text));
    ++h->outstanding_bufs_;
    struct Owner {
      FakeHost *host;
      std::string *text;
    };
    out->data = s->data();
    out->len = s->size();
    out->owner = new Owner{h, s};
    out->release = [](chorus_buf *b) {
      auto *o = static_cast<Owner *>(b->owner);
      {
        std::lock_guard lk2(o->host->mu_);
        --o->host->outstanding_bufs_;
      }
      delete o->text;
      delete o;
      b->data = nullptr;
      b->len = 0;
      b->owner = nullptr;
    };
    return CHORUS_OK;
  }
  static chorus_status c_host_info(chorus_host_ctx *c, chorus_buf *out) {
    FakeHost *h = self(c);
    if (out == nullptr) return CHORUS_E_INVALID_ARG;
    std::lock_guard lk(h->mu_);
    return give_tracked_buf(h, !h->host_info_.empty() ? h->host_info_ : default_host_info(h->plugin_id_), out);
  }
  static std::string default_host_info(const std::string &plugin_id) {
    return R"({"agent_id":"fake-agent","role":"test","cluster_id":"fake-cluster","state_dir":"/tmp/chorus-fake-host",)"
           R"("host_version":"0.0.0-fake","plugin_id":")" +
           plugin_id + R"(","http_listen":"127.0.0.1:0"})";
  }
  static chorus_status c_post(chorus_host_ctx *c, chorus_task_fn fn, void *arg, chorus_dtor_fn dtor) {
    FakeHost *h = self(c);
    if (fn == nullptr) return CHORUS_E_INVALID_ARG;
    std::lock_guard lk(h->mu_);
    if (h->refusing_work()) return CHORUS_E_UNAVAILABLE;  // ownership stays with the caller
    Task t;
    t.fn = fn;
    t.arg = arg;
    t.dtor = dtor;
    h->tasks_.push_back(std::move(t));
    return CHORUS_OK;
  }
  static chorus_status c_timer_start(chorus_host_ctx *c, uint64_t first_ms, uint64_t period_ms, chorus_task_fn fn,
                                     void *arg, chorus_dtor_fn dtor, uint64_t *out_timer) {
    FakeHost *h = self(c);
    if (fn == nullptr || out_timer == nullptr) return CHORUS_E_INVALID_ARG;
    std::lock_guard lk(h->mu_);
    if (h->refusing_work()) return CHORUS_E_UNAVAILABLE;
    const uint64_t id = ++h->next_id_;
    h->timers_.emplace(id, Timer{h->now_ + first_ms, period_ms, fn, arg, dtor});
    *out_timer = id;
    return CHORUS_OK;
  }
  static chorus_status c_timer_cancel(chorus_host_ctx *c, uint64_t timer) {
    FakeHost *h = self(c);
    std::unique_lock lk(h->mu_);
    auto it = h->timers_.find(timer);
    if (it == h->timers_.end() || it->second.cancelled) return CHORUS_E_NOT_FOUND;
    it->second.cancelled = true;
    if (it->second.running) {
      if (h->running_thread_ == std::this_thread::get_id()) return CHORUS_OK;  // advance() frees it afterwards
      h->cv_.wait(lk, [&] { return h->timers_.count(timer) == 0; });
      return CHORUS_OK;
    }
    Timer t = it->second;
    h->timers_.erase(it);
    lk.unlock();
    if (t.dtor != nullptr) t.dtor(t.arg);
    return CHORUS_OK;
  }
  static uint64_t c_now_ms(chorus_host_ctx *c) { return self(c)->now_ms(); }

  static chorus_status c_service_acquire(chorus_host_ctx *c, const char *service, const char *range,
                                         chorus_service_ref *out, chorus_error *err) {
    FakeHost *h = self(c);
    if (service == nullptr || out == nullptr) {
      fill(err, CHORUS_E_INVALID_ARG, "service_acquire: NULL argument");
      return CHORUS_E_INVALID_ARG;
    }
    if (out->struct_size < offsetof(chorus_service_ref, handle) + sizeof(out->handle)) {
      fill(err, CHORUS_E_INVALID_ARG, "service_acquire: out->struct_size is too small");
      return CHORUS_E_INVALID_ARG;
    }
    const std::string_view r = range != nullptr ? range : "*";
    std::lock_guard lk(h->mu_);
    auto it = h->services_.find(service);
    if (it == h->services_.end() || it->second.empty()) {
      fill(err, CHORUS_E_NOT_FOUND, std::string("no provider of '") + service + "'");
      return CHORUS_E_NOT_FOUND;
    }
    std::shared_ptr<Provider> best;
    for (const auto &p : it->second) {
      bool ok = true;
      const bool match = detail::range_matches(r, {p->major, p->minor, 0}, &ok);
      if (!ok) {
        fill(err, CHORUS_E_INVALID_ARG, "bad version range '" + std::string(r) + "'");
        return CHORUS_E_INVALID_ARG;
      }
      if (match && (!best || std::tie(best->major, best->minor) < std::tie(p->major, p->minor))) best = p;
    }
    if (!best) {
      fill(err, CHORUS_E_VERSION, std::string("no provider of '") + service + "' matches '" + std::string(r) + "'");
      return CHORUS_E_VERSION;
    }
    const uint64_t handle = ++h->next_id_;
    h->refs_[handle] = Ref{service, best};
    out->major = best->major;
    out->minor = best->minor;
    out->table = best->table;
    out->self = best->self;
    out->handle = handle;
    if (CHORUS_HAS_FIELD(chorus_service_ref, out, provider_id)) out->provider_id = best->id.c_str();
    return CHORUS_OK;
  }
  static void c_service_release(chorus_host_ctx *c, chorus_service_ref *ref) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    if (ref == nullptr || h->refs_.erase(ref->handle) == 0) {
      h->violation("service_release of a ref that is not held (double release?)");
      return;
    }
  }
  static chorus_status c_service_watch(chorus_host_ctx *c, const char *service, chorus_watch_fn fn, void *arg,
                                       uint64_t *out_watch) {
    FakeHost *h = self(c);
    if (service == nullptr || fn == nullptr || out_watch == nullptr) return CHORUS_E_INVALID_ARG;
    std::lock_guard lk(h->mu_);
    if (!h->control_phase()) {
      h->violation("service_watch outside create/start");
      return CHORUS_E_INVALID_ARG;
    }
    const uint64_t id = ++h->next_id_;
    h->watches_[id] = Watch{service, fn, arg};
    *out_watch = id;
    return CHORUS_OK;
  }
  static void c_service_unwatch(chorus_host_ctx *c, uint64_t watch) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    h->watches_.erase(watch);
  }

  static chorus_status c_metric_define(chorus_host_ctx *c, int32_t kind, const char *name, const char *help,
                                       const char *label_names, const double *buckets, size_t bucket_count,
                                       uint64_t *out_metric, chorus_error *err) {
    FakeHost *h = self(c);
    if (name == nullptr || out_metric == nullptr || kind < CHORUS_METRIC_COUNTER || kind > CHORUS_METRIC_HISTOGRAM) {
      fill(err, CHORUS_E_INVALID_ARG, "metric_define: bad arguments");
      return CHORUS_E_INVALID_ARG;
    }
    if (!detail::valid_metric_name(name)) {
      fill(err, CHORUS_E_INVALID_ARG, std::string("metric name '") + name + "' must start with chorus_ and match [a-zA-Z_:][a-zA-Z0-9_:]*");
      return CHORUS_E_INVALID_ARG;
    }
    std::vector<double> b(buckets, buckets + (buckets != nullptr ? bucket_count : 0));
    for (size_t i = 1; i < b.size(); ++i)
      if (!(b[i - 1] < b[i])) {
        fill(err, CHORUS_E_INVALID_ARG, "histogram buckets must be increasing");
        return CHORUS_E_INVALID_ARG;
      }
    auto labels = detail::split_labels(label_names);
    std::lock_guard lk(h->mu_);
    for (auto &[id, m] : h->metrics_) {
      if (m.name != name) continue;
      if (m.kind == kind && m.labels == labels && m.buckets == b) {
        *out_metric = id;
        return CHORUS_OK;
      }
      fill(err, CHORUS_E_EXISTS, std::string("metric '") + name + "' already defined with another shape");
      return CHORUS_E_EXISTS;
    }
    const uint64_t id = ++h->next_id_;
    h->metrics_[id] = MetricDef{id, kind, name, help != nullptr ? help : "", std::move(labels), std::move(b), {}};
    *out_metric = id;
    return CHORUS_OK;
  }
  static chorus_status c_metric_update(chorus_host_ctx *c, uint64_t metric, int32_t op, const char *const *label_values,
                                       size_t label_count, double value) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    auto it = h->metrics_.find(metric);
    if (it == h->metrics_.end()) {
      h->violation("metric_update of an undefined metric id " + std::to_string(metric));
      return CHORUS_E_NOT_FOUND;
    }
    MetricDef &m = it->second;
    if (label_count != m.labels.size() || (label_count > 0 && label_values == nullptr)) {
      h->violation("metric_update of '" + m.name + "' with " + std::to_string(label_count) + " label values, expected " +
                   std::to_string(m.labels.size()));
      return CHORUS_E_INVALID_ARG;
    }
    const bool op_ok = (op == CHORUS_METRIC_ADD && m.kind != CHORUS_METRIC_HISTOGRAM) ||
                       (op == CHORUS_METRIC_SET && m.kind == CHORUS_METRIC_GAUGE) ||
                       (op == CHORUS_METRIC_OBSERVE && m.kind == CHORUS_METRIC_HISTOGRAM);
    if (!op_ok || (m.kind == CHORUS_METRIC_COUNTER && value < 0)) {
      h->violation("metric_update of '" + m.name + "': op " + std::to_string(op) + " with value " + std::to_string(value) +
                   " does not fit its kind");
      return CHORUS_E_INVALID_ARG;
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < label_count; ++i) values.emplace_back(label_values[i] != nullptr ? label_values[i] : "");
    Series &s = m.series[detail::join(values)];
    if (op == CHORUS_METRIC_SET) s.value = value;
    else s.value += value;
    if (op == CHORUS_METRIC_OBSERVE) s.samples.push_back(value);
    return CHORUS_OK;
  }
  static void c_health_report(chorus_host_ctx *c, int32_t state, const char *msg, size_t len) {
    FakeHost *h = self(c);
    std::lock_guard lk(h->mu_);
    if (state < CHORUS_HEALTH_OK || state > CHORUS_HEALTH_UNHEALTHY) h->violation("health_report: invalid state");
    h->health_.push_back({state, msg != nullptr ? std::string(msg, len) : std::string()});
  }

  static chorus_status c_http_route_add(chorus_host_ctx *c, const char *method, const char *path, uint32_t flags,
                                        chorus_http_handler_fn fn, void *user, chorus_error *err) {
    FakeHost *h = self(c);
    if (method == nullptr || path == nullptr || fn == nullptr || path[0] != '/') {
      fill(err, CHORUS_E_INVALID_ARG, "http_route_add: method, path (starting with '/') and fn are required");
      return CHORUS_E_INVALID_ARG;
    }
    const std::string p(path);
    if ((flags & CHORUS_ROUTE_PREFIX) != 0 && p.back() != '/') {
      fill(err, CHORUS_E_INVALID_ARG, "a prefix route must end in '/'");
      return CHORUS_E_INVALID_ARG;
    }
    std::lock_guard lk(h->mu_);
    if (!h->http_enabled_) {
      fill(err, CHORUS_E_UNAVAILABLE, "the host HTTP listener is disabled");
      return CHORUS_E_UNAVAILABLE;
    }
    if (!h->control_phase()) {
      h->violation("http_route_add outside create/start");
      fill(err, CHORUS_E_INVALID_ARG, "routes can only be added from create or start");
      return CHORUS_E_INVALID_ARG;
    }
    for (const auto &r : h->routes_)
      if (r.path == p && (r.method == method || r.method == "*" || std::string_view(method) == "*")) {
        fill(err, CHORUS_E_EXISTS, "route " + std::string(method) + " " + p + " is already mounted");
        return CHORUS_E_EXISTS;
      }
    h->routes_.push_back(Route{method, p, flags, fn, user});
    return CHORUS_OK;
  }
  static chorus_status c_http_respond(chorus_http_exchange *e, int32_t status, const char *content_type,
                                      const chorus_http_header *headers, size_t header_count, const char *body,
                                      size_t body_len) {
    Exchange *x = exch(e);
    std::lock_guard lk(x->host->mu_);
    if (x->resp.finished || x->resp.streaming) {
      x->host->violation("http_respond on exchange '" + x->label + "' that was already answered");
      return CHORUS_E_INVALID_ARG;
    }
    if (!valid_status(status) || (body == nullptr && body_len > 0) || (headers == nullptr && header_count > 0) ||
        ((status == 204 || status == 304) && body_len > 0)) {  // like the host: refused, still unanswered
      x->host->violation("http_respond on exchange '" + x->label + "' with invalid arguments (status " +
                         std::to_string(status) + ")");
      return CHORUS_E_INVALID_ARG;
    }
    x->resp.finished = true;
    if (x->client_gone) return CHORUS_E_CANCELLED;  // nobody receives it; the client saw what it saw
    x->resp.status = status;
    x->resp.content_type = content_type != nullptr ? content_type : "";
    for (size_t i = 0; i < header_count && headers != nullptr; ++i)
      x->resp.headers.emplace_back(std::string(headers[i].name, headers[i].name_len),
                                   std::string(headers[i].value, headers[i].value_len));
    x->resp.body.assign(body != nullptr ? body : "", body != nullptr ? body_len : 0);
    return CHORUS_OK;
  }
  static chorus_status c_http_stream_begin(chorus_http_exchange *e, int32_t status, const char *content_type,
                                           const chorus_http_header *headers, size_t header_count) {
    Exchange *x = exch(e);
    std::lock_guard lk(x->host->mu_);
    if (x->resp.finished || x->resp.streaming) {
      x->host->violation("http_stream_begin on exchange '" + x->label + "' that was already answered");
      return CHORUS_E_INVALID_ARG;
    }
    if (!valid_status(status) || status == 204 || status == 304 || (headers == nullptr && header_count > 0)) {
      x->host->violation("http_stream_begin on exchange '" + x->label + "' with invalid arguments");
      return CHORUS_E_INVALID_ARG;
    }
    x->resp.status = status;
    x->resp.content_type = content_type != nullptr ? content_type : "";
    for (size_t i = 0; i < header_count && headers != nullptr; ++i)
      x->resp.headers.emplace_back(std::string(headers[i].name, headers[i].name_len),
                                   std::string(headers[i].value, headers[i].value_len));
    x->resp.streaming = true;
    return x->client_gone ? CHORUS_E_CANCELLED : CHORUS_OK;
  }
  static chorus_status c_http_stream_write(chorus_http_exchange *e, const char *data, size_t len) {
    Exchange *x = exch(e);
    std::lock_guard lk(x->host->mu_);
    if (!x->resp.streaming || x->resp.finished) {
      x->host->violation("http_stream_write on exchange '" + x->label + "' without an open stream");
      return CHORUS_E_INVALID_ARG;
    }
    if (x->client_gone) return CHORUS_E_CANCELLED;
    x->resp.chunks.emplace_back(data != nullptr ? data : "", data != nullptr ? len : 0);
    x->resp.body += x->resp.chunks.back();
    return CHORUS_OK;
  }
  static chorus_status c_http_stream_end(chorus_http_exchange *e) {
    Exchange *x = exch(e);
    std::lock_guard lk(x->host->mu_);
    if (!x->resp.streaming || x->resp.finished) {
      x->host->violation("http_stream_end on exchange '" + x->label + "' without an open stream");
      return CHORUS_E_INVALID_ARG;
    }
    x->resp.finished = true;
    return x->client_gone ? CHORUS_E_CANCELLED : CHORUS_OK;
  }
  static bool valid_status(int32_t s) { return s >= 200 && s <= 599; }
  static const char *c_status_str(chorus_status s) { return chorus_status_describe(s); }
  static chorus_status c_redact(chorus_host_ctx *c, int32_t channel, int32_t format, const char *in, size_t len,
                                chorus_buf *out, uint32_t *out_findings) {
    FakeHost *h = self(c);
    if (out_findings != nullptr) *out_findings = 0;
    if (out == nullptr || (in == nullptr && len != 0)) return CHORUS_E_INVALID_ARG;
    if (channel < CHORUS_REDACT_CHANNEL_LOG || channel > CHORUS_REDACT_CHANNEL_UCXI) return CHORUS_E_INVALID_ARG;
    if (format != CHORUS_REDACT_TEXT && format != CHORUS_REDACT_JSON) return CHORUS_E_INVALID_ARG;
    std::lock_guard lk(h->mu_);
    std::string text(in == nullptr ? "" : in, len);
    uint32_t found = 0;
    for (const auto &secret : h->redact_secrets_) {
      if (secret.empty()) continue;
      for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 10)) {
        text.replace(at, secret.size(), "[REDACTED]");
        ++found;
      }
    }
    h->redactions_.push_back({channel, format, std::string(in == nullptr ? "" : in, len), text});
    if (out_findings != nullptr) *out_findings = found;
    return give_tracked_buf(h, std::move(text), out);
  }

  chorus_host_api api_{};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int32_t log_level_ = CHORUS_LOG_TRACE;
  bool echo_logs_ = false;
  bool http_enabled_ = true;
  std::string host_info_;
  std::string plugin_id_ = "test.plugin";
  Phase phase_ = Phase::unmanaged;
  std::vector<LogEntry> logs_;
  std::deque<Task> tasks_;
  uint64_t now_ = 1000;  // not 0, so "0 = unset" bugs show
  uint64_t next_id_ = 0;
  std::map<uint64_t, Timer> timers_;
  std::thread::id running_thread_;
  std::map<std::string, std::vector<std::shared_ptr<Provider>>, std::less<>> services_;
  std::map<uint64_t, Ref> refs_;
  std::map<uint64_t, Watch> watches_;
  std::map<uint64_t, MetricDef> metrics_;
  std::vector<HealthReport> health_;
  std::vector<Route> routes_;
  std::deque<std::unique_ptr<Exchange>> exchanges_;  // kept until the FakeHost dies, so misuse is detectable
  std::vector<std::string> violations_;
  size_t outstanding_bufs_ = 0;
  std::vector<std::string> redact_secrets_;
  std::vector<Redaction> redactions_;
};

// The chorus_abi_info the fake presents to an entry point.
inline chorus_abi_info fake_abi_info() noexcept {
  chorus_abi_info abi{};
  abi.struct_size = sizeof abi;
  abi.major = CHORUS_ABI_MAJOR;
  abi.minor = CHORUS_ABI_MINOR;
  abi.host_name = "chorus-fake-host";
  abi.host_version = "0.0.0-fake";
  return abi;
}

// One plugin instance driven through its descriptor's C vtable, following the host's rules:
// descriptor checks, create -> start -> ... -> stop -> destroy; after a failed create nothing else
// is called; after a failed start the instance is destroyed without stop. The destructor stops and
// destroys whatever is still live, like the host at shutdown. Each call returns the plugin's status;
// status() and message() keep those of the last call.
class PluginHandle {
 public:
  PluginHandle(const chorus_plugin_descriptor *d, FakeHost &host) : d_(d), host_(&host) {
    err_.struct_size = sizeof err_;
    if (d_ == nullptr) {
      fail(CHORUS_E_INVALID_ARG, "the entry point returned NULL (the plugin refused this host)");
    } else if (auto why = check_descriptor(*d_)) {
      fail(CHORUS_E_VERSION, *why);
      d_ = nullptr;
    } else if (d_->id != nullptr) {
      host.set_plugin_id(d_->id);
    }
  }
  PluginHandle(PluginHandle &&o) noexcept
      : d_(std::exchange(o.d_, nullptr)), host_(o.host_), inst_(std::exchange(o.inst_, nullptr)),
        state_(std::exchange(o.state_, State::none)), status_(o.status_), err_(o.err_), late_stop_(o.late_stop_),
        services_(std::move(o.services_)) {}
  PluginHandle &operator=(PluginHandle &&) = delete;
  PluginHandle(const PluginHandle &) = delete;
  PluginHandle &operator=(const PluginHandle &) = delete;
  ~PluginHandle() {
    if (state_ == State::running) (void)stop();
    destroy();
  }

  // Applies the schema like the host (a config it refuses never reaches the plugin), then creates.
  chorus_status create(std::string_view config_json = "{}") {
    if (d_ == nullptr || state_ != State::none) return status_;
    const chorus_plugin_vtable *vt = d_->vtable;
    reset_error();
    const PreparedConfig cfg = prepare_config(d_->config_schema_json, d_->id, config_json);
    if (!cfg.ok()) {
      fail(CHORUS_E_CONFIG, cfg.error);
      return status_;
    }
    host_->set_phase(Phase::creating);
    void *inst = nullptr;
    status_ = vt->create(host_->api(), host_->ctx(), cfg.json.data(), cfg.json.size(), &inst, &err_);
    if (status_ != CHORUS_OK) {
      host_->end_plugin(Phase::destroyed);  // the failed instance's routes, timers, ... go away
      state_ = State::failed;
      return status_;
    }
    inst_ = inst;
    host_->set_phase(Phase::created);
    state_ = State::created;
    return status_;
  }
  chorus_status start() {
    if (state_ != State::created) return status_;
    reset_error();
    host_->set_phase(Phase::starting);
    status_ = d_->vtable->start(inst_, &err_);
    if (status_ != CHORUS_OK) {  // the host releases what it holds and destroys, without stop
      host_->end_plugin();
      state_ = State::stopped;
      destroy();
      state_ = State::failed;
      return status_;
    }
    host_->set_phase(Phase::running);
    state_ = State::running;
    // Then, like the host, it fetches the table of every declared service; a failure undoes the start.
    services_.clear();
    for (uint32_t i = 0; i < d_->provides_count; ++i) {
      const chorus_provide &p = d_->provides[i];
      Service svc{p.service, p.major, p.minor, {}};
      chorus_error err{};
      err.struct_size = sizeof err;
      const chorus_status s = d_->vtable->get_service(inst_, p.service, p.major, &svc.table.table, &svc.table.self, &err);
      std::string failure;
      if (s != CHORUS_OK || svc.table.table == nullptr)
        failure = "get_service('" + svc.name + "') failed: " + (s != CHORUS_OK ? std::string(err.message) : "no table");
      else if (*static_cast<const uint32_t *>(svc.table.table) < sizeof(uint32_t))
        failure = "get_service('" + svc.name + "') returned a table with struct_size 0";
      if (!failure.empty()) {
        (void)stop();
        destroy();
        state_ = State::failed;
        fail(s != CHORUS_OK ? s : CHORUS_E_INTERNAL, failure);
        return status_;
      }
      services_.push_back(std::move(svc));
    }
    return status_;
  }
  chorus_status stop(std::chrono::milliseconds budget = std::chrono::seconds(5)) {
    if (state_ != State::running) return CHORUS_E_INVALID_ARG;
    reset_error();
    host_->begin_stopping();
    const auto t0 = std::chrono::steady_clock::now();
    status_ = d_->vtable->stop(inst_, static_cast<uint64_t>(budget.count()), &err_);
    const auto took = std::chrono::steady_clock::now() - t0;
    host_->end_plugin();
    if (took > budget) late_stop_ = true;
    state_ = State::stopped;
    return status_;
  }
  void destroy() {
    if (inst_ == nullptr) return;
    if (state_ == State::running) (void)stop();
    d_->vtable->destroy(std::exchange(inst_, nullptr));
    host_->set_phase(Phase::destroyed);
    state_ = State::destroyed;
  }
  // The host treats a missing slot like CHORUS_E_NEEDS_RESTART.
  // The host applies the schema before reconfigure too; a refused config leaves the plugin running
  // with its old one and returns CHORUS_E_CONFIG.
  chorus_status reconfigure(std::string_view config_json) {
    if (state_ != State::running) return CHORUS_E_INVALID_ARG;
    reset_error();
    const PreparedConfig cfg = prepare_config(d_->config_schema_json, d_->id, config_json);
    if (!cfg.ok()) {
      status_ = CHORUS_E_CONFIG;
      chorus::set_error(&err_, status_, cfg.error);
      return status_;
    }
    if (!CHORUS_HAS(chorus_plugin_vtable, d_->vtable, reconfigure)) return status_ = CHORUS_E_NEEDS_RESTART;
    status_ = d_->vtable->reconfigure(inst_, cfg.json.data(), cfg.json.size(), &err_);
    return status_;
  }
  void drain() {
    if (state_ == State::running && CHORUS_HAS(chorus_plugin_vtable, d_->vtable, drain)) d_->vtable->drain(inst_);
  }
  // What the host does on SIGHUP for a plugin whose config did not change.
  void reload() {
    if (state_ == State::running && CHORUS_HAS(chorus_plugin_vtable, d_->vtable, reload)) d_->vtable->reload(inst_);
  }
  chorus_status get_service(std::string_view name, uint16_t major, chorus::ServiceTable *out) {
    if (state_ != State::running || out == nullptr) return CHORUS_E_INVALID_ARG;
    reset_error();
    const std::string n(name);
    status_ = d_->vtable->get_service(inst_, n.c_str(), major, &out->table, &out->self, &err_);
    return status_;
  }
  // The tables the host fetched after start(), one per declared provide.
  struct Service {
    std::string name;
    uint16_t major, minor;
    chorus::ServiceTable table;
  };
  const std::vector<Service> &services() const noexcept { return services_; }
  // Registers those tables in another fake host's registry, so a plugin under test there can
  // acquire them (one FakeHost per plugin instance: provider and consumer each get theirs).
  void publish_to(FakeHost &consumer_host) const {
    for (const auto &s : services_)
      consumer_host.provide(s.name, s.major, s.minor, s.table.table, s.table.self, d_->id != nullptr ? d_->id : "");
  }

  chorus_status status() const noexcept { return status_; }
  std::string message() const { return std::string(err_.message); }
  bool running() const noexcept { return state_ == State::running; }
  bool stop_overran_budget() const noexcept { return late_stop_; }
  void *instance() const noexcept { return inst_; }
  const chorus_plugin_descriptor *descriptor() const noexcept { return d_; }

  // The host's descriptor checks that need no config (a subset of the real loader's).
  static std::optional<std::string> check_descriptor(const chorus_plugin_descriptor &d) {
    if (d.struct_size < offsetof(chorus_plugin_descriptor, vtable) + sizeof(d.vtable)) return "descriptor too short";
    if (d.abi_major != CHORUS_ABI_MAJOR) return "built for ABI major " + std::to_string(d.abi_major);
    if (d.min_host_minor > d.abi_minor) return "min_host_minor is newer than abi_minor";
    if (d.min_host_minor > CHORUS_ABI_MINOR) return "needs a newer host minor";
    if (d.id == nullptr || d.version == nullptr) return "id and version are required";
    if (d.provides_count > 0 && d.provides == nullptr) return "provides is NULL";
    if (d.requirements_count > 0 && d.requirements == nullptr) return "requirements is NULL";
    const chorus_plugin_vtable *vt = d.vtable;
    if (vt == nullptr || vt->struct_size < offsetof(chorus_plugin_vtable, destroy) + sizeof(vt->destroy))
      return "vtable missing or too short";
    if (!vt->create || !vt->start || !vt->stop || !vt->destroy) return "vtable lacks create, start, stop or destroy";
    if (d.provides_count > 0 && !vt->get_service) return "provides services but has no get_service";
    if (d.config_schema_json != nullptr) {  // the loader refuses a plugin whose schema it cannot apply
      const auto schema = nlohmann::json::parse(d.config_schema_json, nullptr, false);
      if (schema.is_discarded()) return "config_schema_json is not valid JSON";
      if (auto why = chorus::config_schema::check_schema(schema)) return "config_schema_json: " + *why;
    }
    return std::nullopt;
  }

 private:
  enum class State { none, created, running, stopped, failed, destroyed };
  void reset_error() {
    err_ = chorus_error{};
    err_.struct_size = sizeof err_;
  }
  void fail(chorus_status s, const std::string &why) {
    status_ = s;
    chorus::set_error(&err_, s, why);
    state_ = State::failed;
  }

  const chorus_plugin_descriptor *d_;
  FakeHost *host_;
  void *inst_ = nullptr;
  State state_ = State::none;
  chorus_status status_ = CHORUS_OK;
  chorus_error err_{};
  bool late_stop_ = false;
  std::vector<Service> services_;
};

// Validates the descriptor, creates and starts the plugin; check status()/message() of the result.
inline PluginHandle load(const chorus_plugin_descriptor *d, FakeHost &host, std::string_view config_json = "{}") {
  PluginHandle p(d, host);
  if (p.status() == CHORUS_OK && p.create(config_json) == CHORUS_OK) p.start();
  return p;
}
inline PluginHandle load(const chorus_plugin_descriptor &d, FakeHost &host, std::string_view config_json = "{}") {
  return load(&d, host, config_json);
}
// Calls the entry point (e.g. from dlsym(CHORUS_PLUGIN_ENTRY_SYMBOL)) like the host, then loads.
inline PluginHandle load(chorus_plugin_entry_fn entry, FakeHost &host, std::string_view config_json = "{}") {
  const chorus_abi_info abi = fake_abi_info();
  return load(entry != nullptr ? entry(&abi) : nullptr, host, config_json);
}

}  // namespace chorus::testing

#endif  // CHORUS_TESTING_FAKE_HOST_HPP

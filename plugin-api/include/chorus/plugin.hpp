// chorus/plugin.hpp - the header-only C++20 SDK for chorus-agent plugins.
//
// This header is compiled into the plugin only. Everything that crosses the boundary to the host is
// still the plain C ABI of chorus/plugin.h; this layer turns it into ordinary C++:
//
//   * you write a class derived from chorus::Plugin whose constructor takes
//     (chorus::Host&, std::string_view config_json), and override what you need;
//   * CHORUS_PLUGIN(Class, .id = ..., ...) emits the static descriptor, the lifecycle trampolines and
//     the exported entry point chorus_plugin_entry_v1;
//   * exceptions never cross the boundary: every function the host calls catches everything and maps
//     it to a chorus_status plus a message (chorus::Error -> its code, chorus::NeedsRestart ->
//     CHORUS_E_NEEDS_RESTART, std::bad_alloc -> CHORUS_E_NO_MEMORY, anything else -> CHORUS_E_INTERNAL);
//   * chorus::Host wraps the host API (logging, tasks, timers, metrics, health, HTTP routes, services)
//     and owns the callables you hand it.
//
// A complete plugin:
//
//   #include <chorus/plugin.hpp>
//
//   class Hello final : public chorus::Plugin {
//    public:
//     Hello(chorus::Host &host, std::string_view /*config_json*/) : host_(host) {
//       requests_ = host_.counter("chorus_hello_requests_total", "Requests served");
//       host_.route("GET", "/hello", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
//         requests_.inc();
//         ex.respond(200, "text/plain", "hello\n");
//       });
//     }
//     void start() override { host_.info("hello is ready"); }
//
//    private:
//     chorus::Host &host_;
//     chorus::Counter requests_;
//   };
//
//   CHORUS_PLUGIN(Hello, .id = "acme.hello", .version = "1.0.0", .description = "Says hello");
//
// Lifecycle (all on the host's control thread): constructor (= create) -> start() ->
// service() for each provided service -> ... -> stop(budget) -> destructor (= destroy). reconfigure(),
// reload() and drain() are optional. If the constructor throws, nothing else is called; if start() throws,
// stop() is not called but the destructor is.
//
// Rules this header follows so that it is safe in a plugin that may be unloaded: no function-local
// statics in inline functions (STB_GNU_UNIQUE), no thread_local, no global objects with dynamic
// initialisation (the descriptor and vtable are constexpr data), no exceptions escaping to the host.
// See docs/plugin-authoring.md for the rules your own code must follow.
#ifndef CHORUS_PLUGIN_HPP
#define CHORUS_PLUGIN_HPP

#include <chorus/plugin.h>
#include <chorus/status.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <version>

namespace chorus {

// =================================================================================================
// Status codes and errors
// =================================================================================================

// The symbolic name of a status code ("CHORUS_E_NOT_FOUND"); "CHORUS_E_SERVICE_SPECIFIC" for codes
// >= CHORUS_E_SERVICE_BASE and "CHORUS_E_UNKNOWN" for anything else. Needs no host. The table is
// chorus/status.h's, shared with the host.
inline const char *status_name(chorus_status s) noexcept { return chorus_status_name(s); }

// The exception type of the SDK. Throw it from any plugin code the host calls (constructor, start,
// stop, reconfigure, service) to fail with a specific code; the message reaches the host's log and
// status output. Error(CHORUS_OK, ...) is treated as CHORUS_E_INTERNAL.
class Error : public std::runtime_error {
 public:
  Error(chorus_status code, const std::string &message) : std::runtime_error(message), code_(code) {}
  Error(chorus_status code, const char *message) : std::runtime_error(message), code_(code) {}
  Error(chorus_status code, std::string_view message) : std::runtime_error(std::string(message)), code_(code) {}
  explicit Error(chorus_status code) : std::runtime_error(status_name(code)), code_(code) {}
  chorus_status code() const noexcept { return code_; }

 private:
  chorus_status code_;
};

// Thrown from Plugin::reconfigure() to ask for a restart instead (the default reconfigure does so).
class NeedsRestart : public Error {
 public:
  NeedsRestart() : Error(CHORUS_E_NEEDS_RESTART, "this change needs a restart") {}
  explicit NeedsRestart(const std::string &why) : Error(CHORUS_E_NEEDS_RESTART, why) {}
};

// Throws Error(status, "<context>: <status name>") unless status is CHORUS_OK.
inline void check(chorus_status status, std::string_view context = {}) {
  if (status == CHORUS_OK) return;
  std::string msg(context);
  if (!msg.empty()) msg += ": ";
  msg += status_name(status);
  throw Error(status, msg);
}

// A chorus_error ready to pass to a fallible call (struct_size set, message empty).
struct ErrorBuffer : chorus_error {
  ErrorBuffer() noexcept : chorus_error{} { struct_size = sizeof(chorus_error); }
  chorus_error *get() noexcept { return this; }
  // The message as a view (chorus_error::message is the raw array).
  std::string_view text() const noexcept {
    const char *m = chorus_error::message;
    return {m, static_cast<size_t>(std::find(m, m + sizeof chorus_error::message, '\0') - m)};
  }
  // Throws Error(status, message or context) unless status is CHORUS_OK.
  void check(chorus_status status, std::string_view context = {}) const {
    if (status == CHORUS_OK) return;
    std::string msg(context);
    std::string_view detail = text();
    if (!msg.empty() && !detail.empty()) msg += ": ";
    msg += detail.empty() ? std::string_view(status_name(status)) : detail;
    throw Error(status, msg);
  }
};

// Writes code and message into a caller-owned chorus_error: tolerates err == NULL, honours
// err->struct_size, truncates without splitting a UTF-8 sequence, always NUL-terminates
// (chorus_error_set of chorus/status.h, the one implementation of these rules).
inline void set_error(chorus_error *err, chorus_status code, std::string_view message) noexcept {
  chorus_error_set(err, code, message.data(), message.size());
}

// Hands text to the caller of a service slot that answers with a chorus_buf (JSON listings): the
// buffer owns the string until the caller calls out->release(out).
inline chorus_status give_buf(std::string text, chorus_buf *out) noexcept {
  if (out == nullptr) return CHORUS_E_INVALID_ARG;
  auto *owned = new (std::nothrow) std::string(std::move(text));
  if (owned == nullptr) return CHORUS_E_NO_MEMORY;
  *out = chorus_buf{owned->data(), owned->size(), owned, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
  return CHORUS_OK;
}

// Maps the exception being handled to a status and fills err. Call only inside a catch block.
inline chorus_status current_exception_status(chorus_error *err) noexcept {
  try {
    throw;
  } catch (const Error &e) {
    const chorus_status code = e.code() == CHORUS_OK ? CHORUS_E_INTERNAL : e.code();
    set_error(err, code, e.what());
    return code;
  } catch (const std::bad_alloc &) {
    set_error(err, CHORUS_E_NO_MEMORY, "out of memory");
    return CHORUS_E_NO_MEMORY;
  } catch (const std::exception &e) {
    set_error(err, CHORUS_E_INTERNAL, e.what());
    return CHORUS_E_INTERNAL;
  } catch (...) {
    set_error(err, CHORUS_E_INTERNAL, "unknown exception (not derived from std::exception)");
    return CHORUS_E_INTERNAL;
  }
}

// Runs f() and turns any exception into a status + err, exactly like the SDK's own trampolines.
// Use it in the C functions of service tables you implement:
//   static chorus_status my_call(void *self, ..., chorus_error *err) noexcept {
//     return chorus::guard(err, [&] { static_cast<Impl *>(self)->my_call(...); });
//   }
// f may return void (=> CHORUS_OK) or chorus_status (returned as is).
template <class F>
chorus_status guard(chorus_error *err, F &&f) noexcept {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F &>>) {
      f();
      return CHORUS_OK;
    } else {
      static_assert(std::is_same_v<std::invoke_result_t<F &>, chorus_status>,
                    "chorus::guard: the callable must return void or chorus_status");
      return f();
    }
  } catch (...) {
    return current_exception_status(err);
  }
}

// =================================================================================================
// Small value types
// =================================================================================================

enum class LogLevel : int32_t {
  trace = CHORUS_LOG_TRACE,
  debug = CHORUS_LOG_DEBUG,
  info = CHORUS_LOG_INFO,
  warn = CHORUS_LOG_WARN,
  error = CHORUS_LOG_ERROR,
};

// Where redacted bytes are going (Host::redact); the host's config switches each one on or off.
enum class Channel : int32_t {
  log = CHORUS_REDACT_CHANNEL_LOG,
  pubsub = CHORUS_REDACT_CHANNEL_PUBSUB,
  ucxi = CHORUS_REDACT_CHANNEL_UCXI,
};

enum class Health : int32_t {
  ok = CHORUS_HEALTH_OK,
  degraded = CHORUS_HEALTH_DEGRADED,
  unhealthy = CHORUS_HEALTH_UNHEALTHY,
};

enum class ServiceEvent : int32_t {
  available = CHORUS_SERVICE_AVAILABLE,
  changed = CHORUS_SERVICE_CHANGED,  // another provider is bound now (hot swap)
  gone = CHORUS_SERVICE_GONE,
};

// What Plugin::service() hands out: the C table of the service and the `self` passed to its calls.
struct ServiceTable {
  const void *table = nullptr;
  void *self = nullptr;
};

namespace detail {

inline std::string_view view(const char *p, size_t n) noexcept {
  return p == nullptr ? std::string_view() : std::string_view(p, n);
}

inline uint64_t to_ms(std::chrono::milliseconds d) noexcept {
  return d.count() <= 0 ? 0 : static_cast<uint64_t>(d.count());
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

template <class T>
struct member_traits;
template <class C, class M>
struct member_traits<M C::*> {
  using class_type = C;
  using member_type = M;
};

// Offset just past data member `Member` of its class, computed without touching a real table.
template <auto Member>
size_t member_end() noexcept {
  using C = typename member_traits<decltype(Member)>::class_type;
  using M = typename member_traits<decltype(Member)>::member_type;
  static_assert(std::is_standard_layout_v<C> && std::is_trivially_destructible_v<C>,
                "service tables must be plain C structs");
  union Probe {
    char none;
    C table;
  } probe{};  // `table` is never the active member: only addresses are taken
  const auto *base = reinterpret_cast<const unsigned char *>(&probe.table);
  const auto *field = reinterpret_cast<const unsigned char *>(&(probe.table.*Member));
  return static_cast<size_t>(field - base) + sizeof(M);
}

// Converts one metric label value to a NUL-terminated string, copying only when it must.
class LabelArg {
 public:
  LabelArg(const char *s) noexcept : ptr_(s != nullptr ? s : "") {}           // NOLINT(implicit)
  LabelArg(const std::string &s) noexcept : ptr_(s.c_str()) {}                // NOLINT(implicit)
  LabelArg(std::string_view s) : copy_(s), ptr_(copy_.c_str()) {}            // NOLINT(implicit)
  LabelArg(const LabelArg &) = delete;
  LabelArg &operator=(const LabelArg &) = delete;
  const char *c_str() const noexcept { return ptr_; }

 private:
  std::string copy_;
  const char *ptr_;
};

// Logs the exception being handled through the host (used where the ABI has no error channel:
// tasks, timers, watches, drain, destroy). Call only inside a catch block.
inline void log_current_exception(const chorus_host_api *api, chorus_host_ctx *ctx, const char *where) noexcept {
  chorus_error e{};
  e.struct_size = sizeof e;
  const chorus_status s = current_exception_status(&e);
  if (!CHORUS_HAS(chorus_host_api, api, log)) return;
  char line[CHORUS_ERROR_MESSAGE_MAX + 160];
  const int n = std::snprintf(line, sizeof line, "%s failed: %s: %s", where, status_name(s), e.message);
  if (n > 0) api->log(ctx, CHORUS_LOG_ERROR, line, std::min(static_cast<size_t>(n), sizeof line - 1));
}

// Owning pointer to a boxed callable, freed through a plain function (no virtual dispatch).
using OwnedBox = std::unique_ptr<void, void (*)(void *)>;

// Book-keeping for the synchronous part of an HTTP handler call (see HttpExchange).
struct ExchangeTracker {
  bool answered = false;  // respond() or begin_stream() was called
  bool escaped = false;   // the handle was moved elsewhere or release()d: someone else answers
};

}  // namespace detail

// =================================================================================================
// ServiceRef: a held reference to another plugin's service
// =================================================================================================

// RAII over chorus_service_ref (move-only). Releasing happens in the destructor or reset(). Do not
// keep table()/self() past the ref. `Table` is the C struct of the service interface, e.g.
// chorus_ai_provider_v1; the provider may have been compiled against an OLDER minor and publish a
// shorter table, so check newer slots with has<&Table::slot>() or use call<&Table::slot>(...), which
// does the check for you.
template <class Table>
class ServiceRef {
 public:
  ServiceRef() noexcept = default;
  // Adopts a successfully acquired ref (normally you get one from Host::acquire).
  ServiceRef(const chorus_host_api *api, chorus_host_ctx *ctx, const chorus_service_ref &ref) noexcept
      : api_(api), ctx_(ctx), ref_(ref) {}
  ServiceRef(ServiceRef &&o) noexcept : api_(o.api_), ctx_(o.ctx_), ref_(o.ref_) { o.ref_ = chorus_service_ref{}; }
  ServiceRef &operator=(ServiceRef &&o) noexcept {
    if (this != &o) {
      reset();
      api_ = o.api_;
      ctx_ = o.ctx_;
      ref_ = o.ref_;
      o.ref_ = chorus_service_ref{};
    }
    return *this;
  }
  ServiceRef(const ServiceRef &) = delete;
  ServiceRef &operator=(const ServiceRef &) = delete;
  ~ServiceRef() { reset(); }

  // Releases the reference now (no-op when empty).
  void reset() noexcept {
    if (ref_.table != nullptr && CHORUS_HAS(chorus_host_api, api_, service_release)) api_->service_release(ctx_, &ref_);
    ref_ = chorus_service_ref{};
  }

  explicit operator bool() const noexcept { return ref_.table != nullptr; }
  const Table *table() const noexcept { return static_cast<const Table *>(ref_.table); }
  void *self() const noexcept { return ref_.self; }
  uint16_t major() const noexcept { return ref_.major; }
  uint16_t minor() const noexcept { return ref_.minor; }
  std::string_view provider_id() const noexcept {
    return ref_.provider_id != nullptr ? std::string_view(ref_.provider_id) : std::string_view();
  }
  const chorus_service_ref &raw() const noexcept { return ref_; }

  // True when the provider's table is long enough to contain `Member` (checked against its
  // struct_size, never reading past it) and, for function slots, the slot is non-NULL.
  template <auto Member>
  bool has() const noexcept {
    using Traits = detail::member_traits<decltype(Member)>;
    static_assert(std::is_same_v<typename Traits::class_type, Table>, "has<>: member of another table type");
    const Table *t = table();
    if (t == nullptr || t->struct_size < detail::member_end<Member>()) return false;
    if constexpr (std::is_pointer_v<typename Traits::member_type>) return t->*Member != nullptr;
    return true;
  }

  // Calls slot `Member` as (table->*Member)(self, args...). Returns CHORUS_E_UNAVAILABLE when the ref
  // is empty and CHORUS_E_UNSUPPORTED when the provider's table lacks the slot; otherwise the slot's
  // status, or CHORUS_OK for a slot returning void. For slots returning anything else use table().
  template <auto Member, class... A>
  chorus_status call(A &&...args) const {
    if (!*this) return CHORUS_E_UNAVAILABLE;
    if (!has<Member>()) return CHORUS_E_UNSUPPORTED;
    auto fn = table()->*Member;
    using R = decltype(fn(ref_.self, std::forward<A>(args)...));
    if constexpr (std::is_void_v<R>) {
      fn(ref_.self, std::forward<A>(args)...);
      return CHORUS_OK;
    } else {
      static_assert(std::is_same_v<R, chorus_status>,
                    "call<> supports slots returning void or chorus_status; use table() for others");
      return fn(ref_.self, std::forward<A>(args)...);
    }
  }

 private:
  const chorus_host_api *api_ = nullptr;
  chorus_host_ctx *ctx_ = nullptr;
  chorus_service_ref ref_{};
};

// =================================================================================================
// Metrics: cheap copyable handles created by Host::counter / gauge / histogram
// =================================================================================================

// The trailing argument of every update is the value; the ones before it are the label values, one
// per label name, in the order they were defined: `c.add("peer-1", "timeout", 1)`. Label values may
// be const char*, std::string or std::string_view. Updates never throw for host-side errors; they
// return the host's status (a default-constructed handle returns CHORUS_E_UNAVAILABLE).
class Metric {
 public:
  Metric() noexcept = default;
  Metric(const chorus_host_api *api, chorus_host_ctx *ctx, uint64_t id) noexcept : api_(api), ctx_(ctx), id_(id) {}
  explicit operator bool() const noexcept { return api_ != nullptr; }
  uint64_t id() const noexcept { return id_; }

 protected:
  template <class... A>
  chorus_status update(int32_t op, A &&...args) const {
    static_assert(sizeof...(A) >= 1, "pass the label values (if any) followed by the value");
    if (!CHORUS_HAS(chorus_host_api, api_, metric_update)) return CHORUS_E_UNAVAILABLE;
    auto all = std::forward_as_tuple(std::forward<A>(args)...);
    const double value = static_cast<double>(std::get<sizeof...(A) - 1>(all));
    return update_with_labels(op, value, all, std::make_index_sequence<sizeof...(A) - 1>{});
  }

 private:
  template <class Tuple, size_t... I>
  chorus_status update_with_labels(int32_t op, double value, Tuple &all, std::index_sequence<I...>) const {
    if constexpr (sizeof...(I) == 0) {
      return api_->metric_update(ctx_, id_, op, nullptr, 0, value);
    } else {
      const detail::LabelArg labels[] = {detail::LabelArg(std::get<I>(all))...};
      const char *const values[] = {labels[I].c_str()...};
      return api_->metric_update(ctx_, id_, op, values, sizeof...(I), value);
    }
  }

  const chorus_host_api *api_ = nullptr;
  chorus_host_ctx *ctx_ = nullptr;
  uint64_t id_ = 0;
};

class Counter : public Metric {
 public:
  using Metric::Metric;
  template <class... A>
  chorus_status add(A &&...labels_then_value) const {  // value >= 0
    return update(CHORUS_METRIC_ADD, std::forward<A>(labels_then_value)...);
  }
  template <class... L>
  chorus_status inc(L &&...labels) const {
    return update(CHORUS_METRIC_ADD, std::forward<L>(labels)..., 1.0);
  }
};

class Gauge : public Metric {
 public:
  using Metric::Metric;
  template <class... A>
  chorus_status set(A &&...labels_then_value) const {
    return update(CHORUS_METRIC_SET, std::forward<A>(labels_then_value)...);
  }
  template <class... A>
  chorus_status add(A &&...labels_then_value) const {  // may be negative
    return update(CHORUS_METRIC_ADD, std::forward<A>(labels_then_value)...);
  }
};

class Histogram : public Metric {
 public:
  using Metric::Metric;
  template <class... A>
  chorus_status observe(A &&...labels_then_value) const {
    return update(CHORUS_METRIC_OBSERVE, std::forward<A>(labels_then_value)...);
  }
};

// =================================================================================================
// HTTP
// =================================================================================================

struct Header {
  std::string_view name;
  std::string_view value;
};

// A view of the request, valid during the handler call only: copy what you need for later.
class HttpRequest {
 public:
  explicit HttpRequest(const chorus_http_request *r) noexcept : r_(r) {}
  std::string_view method() const noexcept { return detail::view(r_->method, r_->method_len); }
  std::string_view path() const noexcept { return detail::view(r_->path, r_->path_len); }  // not decoded
  std::string_view query() const noexcept { return detail::view(r_->query, r_->query_len); }  // after '?'
  std::string_view body() const noexcept { return detail::view(r_->body, r_->body_len); }
  std::string_view remote() const noexcept { return detail::view(r_->remote, r_->remote_len); }
  std::span<const chorus_http_header> headers() const noexcept {
    return r_->headers == nullptr ? std::span<const chorus_http_header>()
                                   : std::span<const chorus_http_header>(r_->headers, r_->header_count);
  }
  // The first header called `name` (ASCII case-insensitive); empty when absent (see has_header).
  std::string_view header(std::string_view name) const noexcept {
    for (const auto &h : headers())
      if (detail::iequals(detail::view(h.name, h.name_len), name)) return detail::view(h.value, h.value_len);
    return {};
  }
  bool has_header(std::string_view name) const noexcept {
    for (const auto &h : headers())
      if (detail::iequals(detail::view(h.name, h.name_len), name)) return true;
    return false;
  }
  const chorus_http_request *raw() const noexcept { return r_; }

 private:
  const chorus_http_request *r_;
};

// The move-only handle of one in-flight exchange; it must be finished exactly once, from any thread,
// either with respond() or with begin_stream(), write()..., end().
//
// Answering later is normal: move the handle into a task, a timer or your own queue and answer from
// there. Consequently the destructor does NOT answer an exchange that was never answered - if the
// last handle goes away unanswered, the client waits until the host times the request out. (The SDK
// logs a warning when a handler returns having dropped an unanswered exchange, and answers with an
// error status if a handler throws before answering or handing the exchange on.) The destructor DOES
// end a stream that was begun and not ended, so a dropped stream never hangs its client.
//
// A handle is not thread-safe: use it from one thread at a time. respond() and end() return
// CHORUS_OK, or CHORUS_E_CANCELLED if the client has gone; either way the exchange is finished and
// the handle is empty. Any other status (CHORUS_E_INVALID_ARG for a status outside 200..599 or a
// body on 204/304, ...) leaves the exchange unanswered and the handle still holding it.
class HttpExchange {
 public:
  HttpExchange() noexcept = default;
  HttpExchange(const chorus_host_api *api, chorus_http_exchange *ex, detail::ExchangeTracker *tracker = nullptr) noexcept
      : api_(api), ex_(ex), tracker_(tracker) {}
  HttpExchange(HttpExchange &&o) noexcept : api_(o.api_), ex_(o.ex_), streaming_(o.streaming_) {
    o.mark_escaped();
    o.ex_ = nullptr;
    o.streaming_ = false;
  }
  HttpExchange &operator=(HttpExchange &&o) noexcept {
    if (this != &o) {
      close_stream();
      api_ = o.api_;
      ex_ = o.ex_;
      streaming_ = o.streaming_;
      tracker_ = nullptr;
      o.mark_escaped();
      o.ex_ = nullptr;
      o.streaming_ = false;
    }
    return *this;
  }
  HttpExchange(const HttpExchange &) = delete;
  HttpExchange &operator=(const HttpExchange &) = delete;
  ~HttpExchange() { close_stream(); }

  // True while this handle still has to finish the exchange.
  explicit operator bool() const noexcept { return ex_ != nullptr; }
  bool streaming() const noexcept { return streaming_; }

  chorus_status respond(int status, std::string_view content_type, std::string_view body,
                        std::initializer_list<Header> headers = {}) {
    return respond(status, content_type, body, std::span<const Header>(headers.begin(), headers.size()));
  }
  chorus_status respond(int status, std::string_view content_type, std::string_view body,
                        std::span<const Header> headers) {
    if (ex_ == nullptr || streaming_) return CHORUS_E_INVALID_ARG;
    if (!CHORUS_HAS(chorus_host_api, api_, http_respond)) return CHORUS_E_UNSUPPORTED;
    const std::string ct(content_type);
    const auto hs = to_c(headers);
    const chorus_status s = api_->http_respond(ex_, status, ct.c_str(), hs.empty() ? nullptr : hs.data(), hs.size(),
                                               body.data(), body.size());
    if (finished(s)) {
      mark_answered();
      ex_ = nullptr;
    }
    return s;
  }

  // Starts a chunked response (e.g. SSE: "text/event-stream", NDJSON: "application/x-ndjson").
  chorus_status begin_stream(int status, std::string_view content_type, std::initializer_list<Header> headers = {}) {
    return begin_stream(status, content_type, std::span<const Header>(headers.begin(), headers.size()));
  }
  chorus_status begin_stream(int status, std::string_view content_type, std::span<const Header> headers) {
    if (ex_ == nullptr || streaming_) return CHORUS_E_INVALID_ARG;
    if (!CHORUS_HAS(chorus_host_api, api_, http_stream_begin)) return CHORUS_E_UNSUPPORTED;
    const std::string ct(content_type);
    const auto hs = to_c(headers);
    const chorus_status s = api_->http_stream_begin(ex_, status, ct.c_str(), hs.empty() ? nullptr : hs.data(), hs.size());
    if (finished(s)) {  // begun (CANCELLED: begun, but nobody listens): must be ended
      mark_answered();
      streaming_ = true;
    }
    return s;
  }
  // Queues one chunk. CHORUS_E_CANCELLED: the client went away, stop writing and end().
  // CHORUS_E_BUSY: the client reads slower than you write; the chunk was dropped, retry later.
  chorus_status write(std::string_view data) {
    if (ex_ == nullptr || !streaming_) return CHORUS_E_INVALID_ARG;
    if (!CHORUS_HAS(chorus_host_api, api_, http_stream_write)) return CHORUS_E_UNSUPPORTED;
    return api_->http_stream_write(ex_, data.data(), data.size());
  }
  chorus_status end() {
    if (ex_ == nullptr || !streaming_) return CHORUS_E_INVALID_ARG;
    if (!CHORUS_HAS(chorus_host_api, api_, http_stream_end)) return CHORUS_E_UNSUPPORTED;
    const chorus_status s = api_->http_stream_end(ex_);
    if (finished(s)) {
      streaming_ = false;
      ex_ = nullptr;
    }
    return s;
  }

  // Gives up the handle and returns the raw exchange; you must finish it through the C API.
  chorus_http_exchange *release() noexcept {
    mark_escaped();
    streaming_ = false;
    return std::exchange(ex_, nullptr);
  }

 private:
  static bool finished(chorus_status s) noexcept { return s == CHORUS_OK || s == CHORUS_E_CANCELLED; }
  static std::vector<chorus_http_header> to_c(std::span<const Header> headers) {
    std::vector<chorus_http_header> out;
    out.reserve(headers.size());
    for (const auto &h : headers) out.push_back({h.name.data(), h.name.size(), h.value.data(), h.value.size()});
    return out;
  }
  void mark_answered() noexcept {
    if (tracker_ != nullptr) tracker_->answered = true;
  }
  void mark_escaped() noexcept {
    if (tracker_ != nullptr) tracker_->escaped = true;
    tracker_ = nullptr;
  }
  void close_stream() noexcept {
    if (ex_ != nullptr && streaming_ && CHORUS_HAS(chorus_host_api, api_, http_stream_end)) api_->http_stream_end(ex_);
    ex_ = nullptr;
    streaming_ = false;
  }

  const chorus_host_api *api_ = nullptr;
  chorus_http_exchange *ex_ = nullptr;
  bool streaming_ = false;
  detail::ExchangeTracker *tracker_ = nullptr;  // only while the handler call is on the stack
};

// The HTTP status an exception escaping a handler is answered with.
constexpr int http_status_for(chorus_status s) noexcept {
  switch (s) {
    case CHORUS_E_INVALID_ARG: case CHORUS_E_CONFIG: return 400;
    case CHORUS_E_NOT_FOUND: return 404;
    case CHORUS_E_EXISTS: return 409;
    case CHORUS_E_TOO_LARGE: return 413;
    case CHORUS_E_BUSY: return 429;
    case CHORUS_E_UNSUPPORTED: return 501;
    case CHORUS_E_UNAVAILABLE: case CHORUS_E_CANCELLED: return 503;
    case CHORUS_E_TIMEOUT: return 504;
    default: return 500;
  }
}

// =================================================================================================
// Host
// =================================================================================================

namespace detail {

template <class F>
struct TaskBox {
  const chorus_host_api *api;
  chorus_host_ctx *ctx;
  F fn;
  static void run_once(void *p) noexcept {
    auto *b = static_cast<TaskBox *>(p);
    try {
      std::move(b->fn)();
    } catch (...) {
      log_current_exception(b->api, b->ctx, "posted task");
    }
  }
  static void run(void *p) noexcept {
    auto *b = static_cast<TaskBox *>(p);
    try {
      b->fn();
    } catch (...) {
      log_current_exception(b->api, b->ctx, "timer callback");
    }
  }
  static void destroy(void *p) noexcept { delete static_cast<TaskBox *>(p); }
};

template <class F>
struct WatchBox {
  const chorus_host_api *api;
  chorus_host_ctx *ctx;
  F fn;
  static void on_event(void *p, const char *service, int32_t event) noexcept {
    const auto *b = static_cast<const WatchBox *>(p);
    try {
      b->fn(std::string_view(service != nullptr ? service : ""), static_cast<ServiceEvent>(event));
    } catch (...) {
      log_current_exception(b->api, b->ctx, "service watch callback");
    }
  }
  static void destroy(void *p) noexcept { delete static_cast<WatchBox *>(p); }
};

template <class F>
struct RouteBox {
  const chorus_host_api *api;
  chorus_host_ctx *ctx;
  F fn;
  static void handle(void *p, const chorus_http_request *req, chorus_http_exchange *ex) noexcept {
    const auto *b = static_cast<const RouteBox *>(p);
    ExchangeTracker tracker;
    try {
      b->fn(HttpRequest(req), HttpExchange(b->api, ex, &tracker));
    } catch (...) {
      chorus_error e{};
      e.struct_size = sizeof e;
      const chorus_status s = current_exception_status(&e);
      log_current_exception(b->api, b->ctx, "HTTP handler");
      if (!tracker.answered && !tracker.escaped && CHORUS_HAS(chorus_host_api, b->api, http_respond)) {
        // Only chorus::Error messages are meant for clients; other exceptions stay in the log.
        const char *body = s == CHORUS_E_INTERNAL || s == CHORUS_E_NO_MEMORY ? "internal error\n" : e.message;
        b->api->http_respond(ex, http_status_for(s), "text/plain; charset=utf-8", nullptr, 0, body, std::strlen(body));
      }
      return;
    }
    if (!tracker.answered && !tracker.escaped && CHORUS_HAS(chorus_host_api, b->api, log)) {
      constexpr std::string_view msg =
          "HTTP handler returned without answering the exchange or handing it on; the client waits for the host's "
          "timeout";
      b->api->log(b->ctx, CHORUS_LOG_WARN, msg.data(), msg.size());
    }
  }
  static void destroy(void *p) noexcept { delete static_cast<RouteBox *>(p); }
};

}  // namespace detail

// The plugin's view of the host. One per plugin instance, created by the SDK before your constructor
// runs and destroyed after your destructor; everything you register through it (routes, watches)
// is owned by it for the instance's lifetime.
//
// Thread-safety: log/post/timer/now_ms/metric updates/health/acquire may be called from any thread.
// route(), watch() and the metric definitions are control-thread only (call them from your
// constructor or start()).
class Host {
 public:
  Host(const chorus_host_api *api, chorus_host_ctx *ctx) noexcept : api_(api), ctx_(ctx) {}
  Host(const Host &) = delete;
  Host &operator=(const Host &) = delete;

  const chorus_host_api *api() const noexcept { return api_; }
  chorus_host_ctx *ctx() const noexcept { return ctx_; }
  // The host's ABI minor (what it implements); slots newer than that are absent.
  uint16_t abi_minor() const noexcept { return api_ != nullptr ? api_->abi_minor : 0; }

  // ---- logging: the host prefixes the plugin id ----
  bool log_enabled(LogLevel level) const noexcept {
    if (!CHORUS_HAS(chorus_host_api, api_, log)) return false;
    return !CHORUS_HAS(chorus_host_api, api_, log_level) || static_cast<int32_t>(level) >= api_->log_level(ctx_);
  }
  void log(LogLevel level, std::string_view msg) const noexcept {
    if (log_enabled(level)) api_->log(ctx_, static_cast<int32_t>(level), msg.data(), msg.size());
  }
  void trace(std::string_view msg) const noexcept { log(LogLevel::trace, msg); }
  void debug(std::string_view msg) const noexcept { log(LogLevel::debug, msg); }
  void info(std::string_view msg) const noexcept { log(LogLevel::info, msg); }
  void warn(std::string_view msg) const noexcept { log(LogLevel::warn, msg); }
  void error(std::string_view msg) const noexcept { log(LogLevel::error, msg); }

  // ---- host facts: one JSON object (agent_id, role, cluster_id, state_dir, host_version,
  //      plugin_id, http_listen). Throws Error on failure. ----
  std::string host_info() const {
    if (!CHORUS_HAS(chorus_host_api, api_, host_info)) throw Error(CHORUS_E_UNSUPPORTED, "host_info is not available");
    chorus_buf buf{};
    check(api_->host_info(ctx_, &buf), "host_info");
    struct Release {
      chorus_buf *b;
      ~Release() {
        if (b->release != nullptr) b->release(b);
      }
    } release{&buf};
    return std::string(detail::view(buf.data, buf.len));
  }

  // ---- SHHH (ABI 1.2): every secret in `text` replaced with "[REDACTED]", read as JSON (string
  //      values redacted, keys kept; text that is not JSON is redacted as text) or as free text.
  //      *findings, when given, gets the number of secrets replaced. Degrades: a host without the
  //      slot (1.0, 1.1), or a call that fails, hands `text` back unchanged with *findings = 0, so a
  //      plugin with min_host_minor < 2 runs everywhere and redacts where the host can. ----
  bool can_redact() const noexcept { return CHORUS_HAS(chorus_host_api, api_, redact); }
  std::string redact(Channel channel, std::string_view text, bool json, uint32_t *findings = nullptr) const {
    if (findings != nullptr) *findings = 0;
    if (!can_redact()) return std::string(text);
    chorus_buf buf{};
    uint32_t n = 0;
    if (api_->redact(ctx_, static_cast<int32_t>(channel), json ? CHORUS_REDACT_JSON : CHORUS_REDACT_TEXT,
                     text.data(), text.size(), &buf, &n) != CHORUS_OK)
      return std::string(text);
    struct Release {
      chorus_buf *b;
      ~Release() {
        if (b->release != nullptr) b->release(b);
      }
    } release{&buf};
    if (findings != nullptr) *findings = n;
    return std::string(detail::view(buf.data, buf.len));
  }

  // Monotonic milliseconds (falls back to the plugin's steady clock if the host lacks the slot).
  uint64_t now_ms() const noexcept {
    if (CHORUS_HAS(chorus_host_api, api_, now_ms)) return api_->now_ms(ctx_);
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }

  // ---- executor ----
  // Runs fn() once on a host worker thread. fn is destroyed after it ran, or without running if the
  // plugin stops first. Throws Error if the host refuses (e.g. CHORUS_E_UNAVAILABLE while stopping).
  template <class F>
  void post(F &&fn) const {
    using Box = detail::TaskBox<std::decay_t<F>>;
    if (!CHORUS_HAS(chorus_host_api, api_, post)) throw Error(CHORUS_E_UNSUPPORTED, "post is not available");
    std::unique_ptr<Box> box(new Box{api_, ctx_, std::forward<F>(fn)});
    check(api_->post(ctx_, &Box::run_once, box.get(), &Box::destroy), "post");
    box.release();  // the host owns it now and calls Box::destroy
  }

  // Calls fn() after `first`, then every `period` (0 = once) on host worker threads, until
  // cancel_timer(id) or the plugin stops. Returns the timer id; throws Error on failure.
  template <class F>
  uint64_t timer(std::chrono::milliseconds first, std::chrono::milliseconds period, F &&fn) const {
    using Box = detail::TaskBox<std::decay_t<F>>;
    if (!CHORUS_HAS(chorus_host_api, api_, timer_start)) throw Error(CHORUS_E_UNSUPPORTED, "timers are not available");
    std::unique_ptr<Box> box(new Box{api_, ctx_, std::forward<F>(fn)});
    uint64_t id = 0;
    check(api_->timer_start(ctx_, detail::to_ms(first), detail::to_ms(period), &Box::run, box.get(), &Box::destroy, &id),
          "timer_start");
    box.release();
    return id;
  }
  // On return the callback is not running and will not run again (unless called from inside it).
  chorus_status cancel_timer(uint64_t id) const noexcept {
    if (!CHORUS_HAS(chorus_host_api, api_, timer_cancel)) return CHORUS_E_UNSUPPORTED;
    return api_->timer_cancel(ctx_, id);
  }

  // ---- health: shown at GET /health ----
  void report_health(Health state, std::string_view msg = {}) const noexcept {
    if (CHORUS_HAS(chorus_host_api, api_, health_report))
      api_->health_report(ctx_, static_cast<int32_t>(state), msg.data(), msg.size());
  }

  // ---- metrics (define from the constructor or start(); update from anywhere) ----
  // Names must start with "chorus_". Throw Error if the host rejects the definition.
  Counter counter(std::string_view name, std::string_view help, std::initializer_list<std::string_view> labels = {}) const {
    return Counter(api_, ctx_, define(CHORUS_METRIC_COUNTER, name, help, labels, {}));
  }
  Gauge gauge(std::string_view name, std::string_view help, std::initializer_list<std::string_view> labels = {}) const {
    return Gauge(api_, ctx_, define(CHORUS_METRIC_GAUGE, name, help, labels, {}));
  }
  // buckets: upper bounds in increasing order; empty = the host's defaults.
  Histogram histogram(std::string_view name, std::string_view help, std::initializer_list<std::string_view> labels = {},
                      std::initializer_list<double> buckets = {}) const {
    return Histogram(api_, ctx_, define(CHORUS_METRIC_HISTOGRAM, name, help, labels, buckets));
  }

  // ---- HTTP routes on the host listener (constructor or start() only; removed at stop) ----
  // handler: void(const chorus::HttpRequest &, chorus::HttpExchange) - may run concurrently on several
  // worker threads, so it is called as const. method "*" = any; flags CHORUS_ROUTE_PREFIX mounts
  // everything below `path` (which then ends in '/'). Throws Error (e.g. CHORUS_E_EXISTS).
  template <class F>
  void route(std::string_view method, std::string_view path, uint32_t flags, F &&handler) {
    using Box = detail::RouteBox<std::decay_t<F>>;
    static_assert(std::is_invocable_v<const std::decay_t<F> &, const HttpRequest &, HttpExchange &&>,
                  "route handler must be callable as handler(const chorus::HttpRequest&, chorus::HttpExchange) const");
    if (!CHORUS_HAS(chorus_host_api, api_, http_route_add)) throw Error(CHORUS_E_UNSUPPORTED, "HTTP routes are not available");
    detail::OwnedBox box(new Box{api_, ctx_, std::forward<F>(handler)}, &Box::destroy);
    const std::string m(method), p(path);
    ErrorBuffer err;
    err.check(api_->http_route_add(ctx_, m.c_str(), p.c_str(), flags, &Box::handle, box.get(), err.get()),
              "route " + m + " " + p);
    owned_.push_back(std::move(box));
  }
  template <class F>
  void route(std::string_view method, std::string_view path, F &&handler) {
    route(method, path, CHORUS_ROUTE_EXACT, std::forward<F>(handler));
  }

  // ---- services ----
  // Acquires the bound provider of `service` matching `range` ("^1.2", "*", ...). Throws Error
  // (CHORUS_E_NOT_FOUND, CHORUS_E_VERSION, CHORUS_E_UNAVAILABLE, ...) on failure.
  template <class Table>
  ServiceRef<Table> acquire(std::string_view service, std::string_view range = "*") const {
    ErrorBuffer err;
    ServiceRef<Table> ref = try_acquire<Table>(service, range, &err);
    if (!ref) err.check(err.code != CHORUS_OK ? err.code : CHORUS_E_UNAVAILABLE, "acquire " + std::string(service));
    return ref;
  }
  // Same, but returns an empty ref on failure (details in *err if given).
  template <class Table>
  ServiceRef<Table> try_acquire(std::string_view service, std::string_view range = "*", ErrorBuffer *err = nullptr) const {
    if (!CHORUS_HAS(chorus_host_api, api_, service_acquire)) {
      set_error(err, CHORUS_E_UNSUPPORTED, "service_acquire is not available");
      return {};
    }
    const std::string s(service), r(range);
    chorus_service_ref out{};
    out.struct_size = sizeof out;
    ErrorBuffer local;
    ErrorBuffer *e = err != nullptr ? err : &local;
    const chorus_status st = api_->service_acquire(ctx_, s.c_str(), r.c_str(), &out, e->get());
    if (st != CHORUS_OK || out.table == nullptr) {
      if (st == CHORUS_OK && out.handle != 0 && CHORUS_HAS(chorus_host_api, api_, service_release))
        api_->service_release(ctx_, &out);
      e->code = st != CHORUS_OK ? st : CHORUS_E_UNAVAILABLE;
      return {};
    }
    return ServiceRef<Table>(api_, ctx_, out);
  }
  // Calls fn(std::string_view service, chorus::ServiceEvent) on a worker thread whenever `service`
  // appears, is re-bound or disappears (not for the state at registration: acquire once yourself).
  // Control thread only; removed at stop. Returns the watch id for unwatch().
  template <class F>
  uint64_t watch(std::string_view service, F &&fn) {
    using Box = detail::WatchBox<std::decay_t<F>>;
    static_assert(std::is_invocable_v<const std::decay_t<F> &, std::string_view, ServiceEvent>,
                  "watch callback must be callable as fn(std::string_view service, chorus::ServiceEvent) const");
    if (!CHORUS_HAS(chorus_host_api, api_, service_watch)) throw Error(CHORUS_E_UNSUPPORTED, "service_watch is not available");
    detail::OwnedBox box(new Box{api_, ctx_, std::forward<F>(fn)}, &Box::destroy);
    const std::string s(service);
    uint64_t id = 0;
    check(api_->service_watch(ctx_, s.c_str(), &Box::on_event, box.get(), &id), "watch " + s);
    owned_.push_back(std::move(box));  // kept until the instance is destroyed
    return id;
  }
  void unwatch(uint64_t id) const noexcept {
    if (CHORUS_HAS(chorus_host_api, api_, service_unwatch)) api_->service_unwatch(ctx_, id);
  }

 private:
  uint64_t define(int32_t kind, std::string_view name, std::string_view help,
                  std::initializer_list<std::string_view> labels, std::initializer_list<double> buckets) const {
    if (!CHORUS_HAS(chorus_host_api, api_, metric_define)) throw Error(CHORUS_E_UNSUPPORTED, "metrics are not available");
    const std::string n(name), h(help);
    std::string label_names;
    for (std::string_view l : labels) {
      if (!label_names.empty()) label_names += ',';
      label_names += l;
    }
    const std::vector<double> b(buckets);
    uint64_t id = 0;
    ErrorBuffer err;
    err.check(api_->metric_define(ctx_, kind, n.c_str(), h.c_str(), labels.size() != 0 ? label_names.c_str() : nullptr,
                                  b.empty() ? nullptr : b.data(), b.size(), &id, err.get()),
              "metric " + n);
    return id;
  }

  const chorus_host_api *api_;
  chorus_host_ctx *ctx_;
  std::vector<detail::OwnedBox> owned_;  // routes and watches; freed after the plugin object
};

// =================================================================================================
// Plugin base class
// =================================================================================================

// Derive from this. Your class's constructor must be `Class(chorus::Host &, std::string_view
// config_json)`: it is create() - parse and validate the config (throw chorus::Error(CHORUS_E_CONFIG,
// ...) to reject it), allocate, define metrics and routes. No threads, no network yet.
// Every member function may throw; the SDK maps exceptions to status codes.
class Plugin {
 public:
  Plugin() = default;
  Plugin(const Plugin &) = delete;
  Plugin &operator=(const Plugin &) = delete;
  virtual ~Plugin() = default;

  // Every required dependency has started. May start threads and timers.
  virtual void start() {}
  // Stop intake, finish or cancel in-flight work, join your threads; return within `budget`.
  virtual void stop(std::chrono::milliseconds /*budget*/) {}
  // Apply a changed config while running, or throw NeedsRestart (the default).
  virtual void reconfigure(std::string_view /*config_json*/) { throw NeedsRestart(); }
  // Hint before a hot swap retires this instance: no new work will arrive.
  virtual void drain() {}
  // The agent reloaded (SIGHUP) and this plugin's config did not change (else reconfigure runs):
  // re-read what lives outside the config, e.g. files it names or host_info's agent facts.
  virtual void reload() {}
  // The table for a service listed in `provides` (called after start).
  virtual ServiceTable service(std::string_view name, uint16_t major) {
    // (no std::to_string: libstdc++'s carries a GNU_UNIQUE static into default-visibility builds)
    char num[8];
    const int n = std::snprintf(num, sizeof num, "%u", static_cast<unsigned>(major));
    throw Error(CHORUS_E_NOT_FOUND, "this plugin does not provide '" + std::string(name) + "' major " +
                                        std::string(num, n > 0 ? static_cast<size_t>(n) : 0));
  }
};

// =================================================================================================
// Descriptor
// =================================================================================================

// Build provides/requirements arrays with these (constexpr, struct_size set):
//   constexpr chorus_provide kProvides[] = {chorus::provide("acme.echo", 1, 0)};
//   constexpr chorus_require kRequires[] = {chorus::require("chorus.kv", "^1.2"),
//                                           chorus::require("ai.provider", "^1", CHORUS_REQUIRE_OPTIONAL)};
constexpr chorus_provide provide(const char *service, uint16_t major, uint16_t minor, uint32_t flags = 0) noexcept {
  chorus_provide p{};
  p.struct_size = sizeof(chorus_provide);
  p.flags = flags;
  p.service = service;
  p.major = major;
  p.minor = minor;
  return p;
}
constexpr chorus_require require(const char *service, const char *range = "*", uint32_t flags = 0) noexcept {
  chorus_require r{};
  r.struct_size = sizeof(chorus_require);
  r.flags = flags;
  r.service = service;
  r.range = range;
  return r;
}

#define CHORUS_DETAIL_STR2(x) #x
#define CHORUS_DETAIL_STR(x) CHORUS_DETAIL_STR2(x)
#if defined(__clang__)
#define CHORUS_DETAIL_COMPILER __VERSION__
#elif defined(__GNUC__)
#define CHORUS_DETAIL_COMPILER "GCC " __VERSION__
#else
#define CHORUS_DETAIL_COMPILER "unknown compiler"
#endif
#if defined(_LIBCPP_VERSION)
#define CHORUS_DETAIL_STDLIB "libc++ " CHORUS_DETAIL_STR(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
#define CHORUS_DETAIL_STDLIB "libstdc++ " CHORUS_DETAIL_STR(_GLIBCXX_RELEASE) " (" CHORUS_DETAIL_STR(__GLIBCXX__) ")"
#else
#define CHORUS_DETAIL_STDLIB "unknown standard library"
#endif
#if defined(__x86_64__)
#define CHORUS_DETAIL_ARCH "x86_64"
#elif defined(__aarch64__)
#define CHORUS_DETAIL_ARCH "aarch64"
#else
#define CHORUS_DETAIL_ARCH "unknown arch"
#endif
// Diagnostics string recorded in the descriptor: compiler, standard library, arch, C++ version.
#define CHORUS_SDK_BUILD_INFO \
  CHORUS_DETAIL_COMPILER "; " CHORUS_DETAIL_STDLIB "; " CHORUS_DETAIL_ARCH "; C++" CHORUS_DETAIL_STR(__cplusplus)

// What CHORUS_PLUGIN takes, as designated initializers IN THIS ORDER (C++20 requires declaration
// order; leave out what you don't need). The arrays must be constexpr namespace-scope arrays.
struct PluginInfo {
  const char *id = nullptr;           // required: [a-z0-9][a-z0-9._-]{0,63}, the file is chorus-<id>.so
  const char *version = nullptr;      // required: the plugin's semver "1.4.2"
  const char *description = nullptr;
  const char *vendor = nullptr;
  const char *license = nullptr;      // SPDX id
  std::span<const chorus_provide> provides = {};
  std::span<const chorus_require> requirements = {};
  const char *config_schema = nullptr;  // JSON Schema (subset) the host validates the config against
  // The oldest host ABI minor this plugin works with. Lower it only if every host slot added after
  // that minor is guarded (Host does this for you; raw api() users check CHORUS_HAS).
  uint16_t min_host_minor = CHORUS_ABI_MINOR;
  const char *build_info = CHORUS_SDK_BUILD_INFO;
};

namespace detail {

// Not constexpr on purpose: reaching it during constant evaluation is a compile error whose
// message shows the call site, i.e. which rule the PluginInfo broke.
inline void invalid_plugin_info(const char *) noexcept {}

constexpr size_t cstr_len(const char *s) noexcept {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}
constexpr bool valid_name(const char *s, size_t max_len) noexcept {
  if (s == nullptr) return false;
  const auto lower_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  const size_t n = cstr_len(s);
  if (n == 0 || n > max_len || !lower_digit(s[0])) return false;
  for (size_t i = 0; i < n; ++i)
    if (!lower_digit(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') return false;
  return true;
}
// MAJOR.MINOR.PATCH, then optionally -prerelease and/or +build of [0-9A-Za-z.-].
constexpr bool valid_semver(const char *s) noexcept {
  if (s == nullptr) return false;
  size_t i = 0;
  for (int part = 0; part < 3; ++part) {
    if (part > 0) {
      if (s[i] != '.') return false;
      ++i;
    }
    const size_t start = i;
    while (s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || (s[start] == '0' && i - start > 1)) return false;
  }
  if (s[i] == '\0') return true;
  if (s[i] != '-' && s[i] != '+') return false;
  ++i;
  if (s[i] == '\0') return false;
  for (; s[i] != '\0'; ++i) {
    const char c = s[i];
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                    c == '-' || c == '+';
    if (!ok) return false;
  }
  return true;
}

consteval chorus_plugin_descriptor make_descriptor(const PluginInfo &info, const chorus_plugin_vtable *vtable) {
  if (!valid_name(info.id, 64)) invalid_plugin_info("PluginInfo::id must match [a-z0-9][a-z0-9._-]{0,63}");
  if (!valid_semver(info.version)) invalid_plugin_info("PluginInfo::version must be a semantic version like 1.2.3");
  if (info.min_host_minor > CHORUS_ABI_MINOR)
    invalid_plugin_info("PluginInfo::min_host_minor is newer than the ABI this plugin is compiled against");
  for (size_t i = 0; i < info.provides.size(); ++i) {
    const chorus_provide &p = info.provides[i];
    if (p.struct_size != sizeof(chorus_provide)) invalid_plugin_info("provides: build entries with chorus::provide()");
    if (!valid_name(p.service, 128)) invalid_plugin_info("provides: service names must match [a-z0-9][a-z0-9._-]*");
    for (size_t j = 0; j < i; ++j)
      if (info.provides[j].major == p.major && std::string_view(info.provides[j].service) == p.service)
        invalid_plugin_info("provides: the same service major is listed twice");
  }
  for (const chorus_require &r : info.requirements) {
    if (r.struct_size != sizeof(chorus_require)) invalid_plugin_info("requirements: build entries with chorus::require()");
    if (!valid_name(r.service, 128)) invalid_plugin_info("requirements: service names must match [a-z0-9][a-z0-9._-]*");
  }
  chorus_plugin_descriptor d{};
  d.struct_size = sizeof(chorus_plugin_descriptor);
  d.abi_major = CHORUS_ABI_MAJOR;
  d.abi_minor = CHORUS_ABI_MINOR;
  d.min_host_minor = info.min_host_minor;
  d.flags = 0;
  d.id = info.id;
  d.version = info.version;
  d.description = info.description;
  d.vendor = info.vendor;
  d.license = info.license;
  d.provides = info.provides.empty() ? nullptr : info.provides.data();
  d.provides_count = static_cast<uint32_t>(info.provides.size());
  d.requirements_count = static_cast<uint32_t>(info.requirements.size());
  d.requirements = info.requirements.empty() ? nullptr : info.requirements.data();
  d.config_schema_json = info.config_schema;
  d.vtable = vtable;
  d.build_info = info.build_info;
  return d;
}

// ---- lifecycle trampolines: noexcept, everything caught ----

struct Instance {
  Instance(const chorus_host_api *api, chorus_host_ctx *ctx) noexcept : host(api, ctx) {}
  Host host;                      // declared first: outlives the plugin object
  std::unique_ptr<Plugin> plugin;
};

inline Instance *instance(void *p) noexcept { return static_cast<Instance *>(p); }

template <class C>
chorus_status create(const chorus_host_api *api, chorus_host_ctx *ctx, const char *config_json, size_t config_len,
                     void **out_instance, chorus_error *err) noexcept {
  if (out_instance == nullptr || api == nullptr) {
    set_error(err, CHORUS_E_INVALID_ARG, "create: host and out_instance must not be NULL");
    return CHORUS_E_INVALID_ARG;
  }
  *out_instance = nullptr;
  return guard(err, [&] {
    auto inst = std::make_unique<Instance>(api, ctx);
    inst->plugin = std::make_unique<C>(inst->host, detail::view(config_json, config_len));
    *out_instance = inst.release();
  });
}

inline chorus_status start(void *inst, chorus_error *err) noexcept {
  return guard(err, [&] { instance(inst)->plugin->start(); });
}

inline chorus_status get_service(void *inst, const char *service, uint16_t major, const void **out_table,
                                 void **out_self, chorus_error *err) noexcept {
  if (out_table == nullptr || out_self == nullptr || service == nullptr) {
    set_error(err, CHORUS_E_INVALID_ARG, "get_service: NULL argument");
    return CHORUS_E_INVALID_ARG;
  }
  *out_table = nullptr;
  *out_self = nullptr;
  return guard(err, [&]() -> chorus_status {
    const ServiceTable t = instance(inst)->plugin->service(service, major);
    if (t.table == nullptr) {
      set_error(err, CHORUS_E_NOT_FOUND, "service() returned no table");
      return CHORUS_E_NOT_FOUND;
    }
    *out_table = t.table;
    *out_self = t.self;
    return CHORUS_OK;
  });
}

inline chorus_status stop(void *inst, uint64_t budget_ms, chorus_error *err) noexcept {
  using Rep = std::chrono::milliseconds::rep;
  const auto budget = std::chrono::milliseconds(
      static_cast<Rep>(std::min<uint64_t>(budget_ms, static_cast<uint64_t>(std::numeric_limits<Rep>::max()))));
  return guard(err, [&] { instance(inst)->plugin->stop(budget); });
}

inline void destroy(void *inst) noexcept {
  Instance *i = instance(inst);
  if (i == nullptr) return;
  try {
    i->plugin.reset();
  } catch (...) {
    log_current_exception(i->host.api(), i->host.ctx(), "plugin destructor");
  }
  delete i;
}

inline chorus_status reconfigure(void *inst, const char *config_json, size_t config_len, chorus_error *err) noexcept {
  return guard(err, [&] { instance(inst)->plugin->reconfigure(detail::view(config_json, config_len)); });
}

inline void drain(void *inst) noexcept {
  Instance *i = instance(inst);
  try {
    i->plugin->drain();
  } catch (...) {
    log_current_exception(i->host.api(), i->host.ctx(), "drain");
  }
}

inline void reload(void *inst) noexcept {
  Instance *i = instance(inst);
  try {
    i->plugin->reload();
  } catch (...) {
    log_current_exception(i->host.api(), i->host.ctx(), "reload");
  }
}

template <class C>
constexpr chorus_plugin_vtable make_vtable() noexcept {
  static_assert(std::is_base_of_v<Plugin, C>, "CHORUS_PLUGIN: the class must derive from chorus::Plugin");
  static_assert(std::is_constructible_v<C, Host &, std::string_view>,
                "CHORUS_PLUGIN: the class needs a constructor Class(chorus::Host &, std::string_view config_json)");
  chorus_plugin_vtable v{};
  v.struct_size = sizeof(chorus_plugin_vtable);
  v.create = &create<C>;
  v.start = &start;
  v.get_service = &get_service;
  v.stop = &stop;
  v.destroy = &destroy;
  v.reconfigure = &reconfigure;
  v.drain = &drain;
  v.reload = &reload;
  return v;
}

}  // namespace detail
}  // namespace chorus

// Defines `constexpr chorus_plugin_descriptor name` (internal linkage) for Class, without the entry
// point. Use it directly only to put several plugins into one binary (unit tests); a plugin .so uses
// CHORUS_PLUGIN. The remaining arguments are PluginInfo designated initializers.
#define CHORUS_PLUGIN_DESCRIPTOR(name, Class, ...)                                                        \
  constexpr ::chorus_plugin_vtable name##_chorus_vtable_ = ::chorus::detail::make_vtable<Class>();       \
  constexpr ::chorus_plugin_descriptor name =                                                             \
      ::chorus::detail::make_descriptor(::chorus::PluginInfo{__VA_ARGS__}, &name##_chorus_vtable_)

// The one line a plugin needs, at global scope in exactly one source file of the plugin:
//   CHORUS_PLUGIN(EchoPlugin, .id = "acme.echo", .version = "1.0.0", .description = "...",
//                 .provides = kProvides, .requirements = kRequires, .config_schema = R"({...})");
// Emits the descriptor, the vtable and extern "C" chorus_plugin_entry_v1.
#define CHORUS_PLUGIN(Class, ...)                                                                        \
  CHORUS_PLUGIN_DESCRIPTOR(chorus_plugin_descriptor_v1_, Class, __VA_ARGS__);                            \
  extern "C" CHORUS_EXPORT const ::chorus_plugin_descriptor *chorus_plugin_entry_v1(                     \
      const ::chorus_abi_info *) noexcept;                                                                \
  extern "C" CHORUS_EXPORT const ::chorus_plugin_descriptor *chorus_plugin_entry_v1(                     \
      const ::chorus_abi_info *) noexcept {                                                               \
    return &chorus_plugin_descriptor_v1_;                                                                 \
  }                                                                                                       \
  static_assert(true, "CHORUS_PLUGIN(...) must be followed by a semicolon")

#endif  // CHORUS_PLUGIN_HPP

// The C host API table handed to every plugin. Each function is a thin, noexcept adapter from the C
// boundary to HostServices; nothing here may throw into plugin code.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <chorus/status.h>

#include "executor.hpp"
#include "http_server.hpp"
#include "instance.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "redaction.hpp"
#include "service_registry.hpp"

namespace chorus::host {
namespace {

struct OwnedBuf {
  std::string text;
};

void release_owned_buf(chorus_buf *b) noexcept {
  if (b == nullptr || b->owner == nullptr) return;
  delete static_cast<OwnedBuf *>(b->owner);
  b->owner = nullptr;
  b->data = nullptr;
  b->len = 0;
}

// A task or timer callback, with the instance pinned so its context outlives the call. It runs the
// plugin's arg_dtor exactly once, when the last copy of the task or timer lets go; it is never
// copied, since a copy would run the dtor twice.
struct PluginCallback {
  PluginCallback(std::shared_ptr<Instance> p, chorus_task_fn f, void *a, chorus_dtor_fn d)
      : pin(std::move(p)), fn(f), arg(a), dtor(d) {}
  PluginCallback(const PluginCallback &) = delete;
  PluginCallback &operator=(const PluginCallback &) = delete;
  ~PluginCallback() {
    if (dtor) dtor(arg);
  }
  std::shared_ptr<Instance> pin;
  chorus_task_fn fn;
  void *arg;
  chorus_dtor_fn dtor;
};

std::shared_ptr<Instance> pin(chorus_host_ctx *ctx) { return ctx->instance->shared_from_this(); }

// Runs a plugin callback unless the instance's intake is closed, counted so stop can wait for it.
void run_gated(PluginCallback &cb) {
  Instance &inst = *cb.pin;
  if (!inst.enter_callback()) return;
  struct Leave {
    Instance &i;
    ~Leave() { i.leave_callback(); }
  } leave{inst};
  cb.fn(cb.arg);
}

void api_log(chorus_host_ctx *ctx, int32_t level, const char *msg, size_t len) noexcept {
  if (ctx == nullptr || msg == nullptr) return;
  if (level < CHORUS_LOG_TRACE) level = CHORUS_LOG_TRACE;
  if (level > CHORUS_LOG_ERROR) level = CHORUS_LOG_ERROR;
  try {
    log(static_cast<LogLevel>(level), ctx->instance->label(), std::string_view(msg, len));
  } catch (...) {
  }
}

int32_t api_log_level(chorus_host_ctx *) noexcept { return static_cast<int32_t>(current_log_level()); }

chorus_status api_host_info(chorus_host_ctx *ctx, chorus_buf *out) noexcept {
  if (ctx == nullptr || out == nullptr) return CHORUS_E_INVALID_ARG;
  try {
    auto *owned = new OwnedBuf{ctx->instance->host->host_info_json(*ctx->instance)};
    out->data = owned->text.data();
    out->len = owned->text.size();
    out->owner = owned;
    out->release = release_owned_buf;
    return CHORUS_OK;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status api_post(chorus_host_ctx *ctx, chorus_task_fn fn, void *arg, chorus_dtor_fn dtor) noexcept {
  if (ctx == nullptr || fn == nullptr) return CHORUS_E_INVALID_ARG;
  Instance &inst = *ctx->instance;
  if (inst.tasks_closed.load()) return CHORUS_E_UNAVAILABLE;
  std::shared_ptr<PluginCallback> cb;
  try {
    cb = std::make_shared<PluginCallback>(pin(ctx), fn, arg, dtor);
    inst.host->executor().post([cb] { run_gated(*cb); });
    return CHORUS_OK;
  } catch (...) {
    if (cb) cb->dtor = nullptr;  // on failure the caller keeps arg (plugin.h)
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status api_timer_start(chorus_host_ctx *ctx, uint64_t first_ms, uint64_t period_ms, chorus_task_fn fn,
                              void *arg, chorus_dtor_fn dtor, uint64_t *out_timer) noexcept {
  if (ctx == nullptr || fn == nullptr) return CHORUS_E_INVALID_ARG;
  Instance &inst = *ctx->instance;
  if (inst.tasks_closed.load()) return CHORUS_E_UNAVAILABLE;
  std::shared_ptr<PluginCallback> cb;
  uint64_t id = 0;
  try {
    cb = std::make_shared<PluginCallback>(pin(ctx), fn, arg, dtor);
    // Under inst.mu, and re-checked there: the host's cancel-all at stop closes intake first and
    // then takes the timer set under the same lock, so no timer can slip in after it.
    std::lock_guard lk(inst.mu);
    if (inst.tasks_closed.load()) {
      cb->dtor = nullptr;
      return CHORUS_E_UNAVAILABLE;
    }
    id = inst.host->executor().timer_start(first_ms, period_ms, [cb] { run_gated(*cb); });
    inst.timers.insert(id);
    if (out_timer) *out_timer = id;
    return CHORUS_OK;
  } catch (...) {
    if (cb) cb->dtor = nullptr;  // on failure the caller keeps arg (plugin.h)
    if (id != 0) inst.host->executor().timer_cancel(id);
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status api_timer_cancel(chorus_host_ctx *ctx, uint64_t timer) noexcept {
  if (ctx == nullptr) return CHORUS_E_INVALID_ARG;
  Instance &inst = *ctx->instance;
  {
    std::lock_guard lk(inst.mu);
    if (inst.timers.erase(timer) == 0) return CHORUS_E_NOT_FOUND;
  }
  inst.host->executor().timer_cancel(timer);
  return CHORUS_OK;
}

uint64_t api_now_ms(chorus_host_ctx *ctx) noexcept { return ctx ? ctx->instance->host->now_ms() : 0; }

chorus_status api_service_acquire(chorus_host_ctx *ctx, const char *service, const char *range,
                                  chorus_service_ref *out, chorus_error *err) noexcept {
  if (ctx == nullptr || service == nullptr || out == nullptr) return CHORUS_E_INVALID_ARG;
  try {
    return ctx->instance->host->acquire(*ctx->instance, service, range, out, err);
  } catch (...) {
    return CHORUS_E_INTERNAL;
  }
}

// Never dereferences ctx: a request's completion may release its reference on a provider's thread
// just after the holder stopped and its instance, which owns ctx, was freed.
void api_service_release(chorus_host_ctx *ctx, chorus_service_ref *ref) noexcept {
  if (ctx == nullptr || ref == nullptr) return;
  ServiceRegistry::release(ref);
}

chorus_status api_service_watch(chorus_host_ctx *ctx, const char *service, chorus_watch_fn fn, void *arg,
                                uint64_t *out_watch) noexcept {
  if (ctx == nullptr || service == nullptr || fn == nullptr) return CHORUS_E_INVALID_ARG;
  try {
    return ctx->instance->host->watch(*ctx->instance, service, fn, arg, out_watch);
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

void api_service_unwatch(chorus_host_ctx *ctx, uint64_t watch) noexcept {
  if (ctx == nullptr) return;
  ctx->instance->host->unwatch(*ctx->instance, watch);
}

chorus_status api_metric_define(chorus_host_ctx *ctx, int32_t kind, const char *name, const char *help,
                                const char *label_names, const double *buckets, size_t bucket_count,
                                uint64_t *out_metric, chorus_error *err) noexcept {
  if (ctx == nullptr || name == nullptr || out_metric == nullptr) return CHORUS_E_INVALID_ARG;
  if (kind < CHORUS_METRIC_COUNTER || kind > CHORUS_METRIC_HISTOGRAM) {
    set_error(err, CHORUS_E_INVALID_ARG, "unknown metric kind " + std::to_string(kind));
    return CHORUS_E_INVALID_ARG;
  }
  try {
    std::string metric_name = name;
    if (metric_name.rfind("chorus_", 0) != 0) {
      set_error(err, CHORUS_E_INVALID_ARG, "metric '" + metric_name + "' must start with chorus_");
      return CHORUS_E_INVALID_ARG;
    }
    std::vector<std::string> labels;
    if (label_names != nullptr && *label_names != '\0') {
      std::string all = label_names;
      size_t start = 0;
      while (true) {
        size_t comma = all.find(',', start);
        labels.push_back(all.substr(start, comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    std::vector<double> bucket_list;
    if (buckets != nullptr) bucket_list.assign(buckets, buckets + bucket_count);
    std::string why;
    auto id = ctx->instance->host->metrics().define(static_cast<MetricsRegistry::Kind>(kind), metric_name,
                                                    help ? help : "", labels, bucket_list, &why);
    if (!id) {
      set_error(err, CHORUS_E_INVALID_ARG, why);
      return CHORUS_E_INVALID_ARG;
    }
    *out_metric = *id;
    return CHORUS_OK;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status api_metric_update(chorus_host_ctx *ctx, uint64_t metric, int32_t op, const char *const *label_values,
                                size_t label_count, double value) noexcept {
  if (ctx == nullptr) return CHORUS_E_INVALID_ARG;
  try {
    return ctx->instance->host->metrics().update(metric, op, label_values, label_count, value)
               ? CHORUS_OK
               : CHORUS_E_INVALID_ARG;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

void api_health_report(chorus_host_ctx *ctx, int32_t state, const char *msg, size_t len) noexcept {
  if (ctx == nullptr) return;
  if (state < CHORUS_HEALTH_OK || state > CHORUS_HEALTH_UNHEALTHY) state = CHORUS_HEALTH_UNHEALTHY;
  Instance &inst = *ctx->instance;
  try {
    std::lock_guard lk(inst.mu);
    inst.health_message.assign(msg ? msg : "", msg ? len : 0);
    inst.health_state = state;
  } catch (...) {
  }
}

chorus_status api_http_route_add(chorus_host_ctx *ctx, const char *method, const char *path, uint32_t flags,
                                 chorus_http_handler_fn fn, void *user, chorus_error *err) noexcept {
  if (ctx == nullptr || method == nullptr || path == nullptr || fn == nullptr || path[0] != '/')
    return CHORUS_E_INVALID_ARG;
  Instance &inst = *ctx->instance;
  HttpServer *http = inst.host->http();
  if (http == nullptr) {
    set_error(err, CHORUS_E_UNAVAILABLE, "the host HTTP listener is disabled (host.http.listen is empty)");
    return CHORUS_E_UNAVAILABLE;
  }
  try {
    bool prefix = (flags & CHORUS_ROUTE_PREFIX) != 0;
    std::string p = path;
    if (prefix && p.back() != '/') {
      set_error(err, CHORUS_E_INVALID_ARG, "prefix route '" + p + "' must end in '/'");
      return CHORUS_E_INVALID_ARG;
    }
    std::string conflict;
    std::string route = std::string(method) + " " + p + (prefix ? "*" : "");
    std::shared_ptr<Instance> keep = pin(ctx);
    bool ok = http->add_route(
        method, p, prefix, inst.label(),
        [keep, fn, user](const chorus_http_request &req, chorus_http_exchange *ex) { fn(user, &req, ex); },
        &conflict, inst.takes_over_routes);
    std::lock_guard lk(inst.mu);
    inst.routes_mounted = true;
    if (!ok) {
      std::string why = "HTTP route " + route + " is already mounted by '" + conflict + "'";
      if (inst.route_error.empty()) inst.route_error = why;
      set_error(err, CHORUS_E_EXISTS, why);
      return CHORUS_E_EXISTS;
    }
    return CHORUS_OK;
  } catch (const std::invalid_argument &e) {
    set_error(err, CHORUS_E_INVALID_ARG, e.what());
    return CHORUS_E_INVALID_ARG;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

chorus_status api_redact(chorus_host_ctx *ctx, int32_t channel, int32_t format, const char *in, size_t len,
                         chorus_buf *out, uint32_t *out_findings) noexcept {
  if (out_findings) *out_findings = 0;
  if (ctx == nullptr || out == nullptr || (in == nullptr && len != 0)) return CHORUS_E_INVALID_ARG;
  if (channel < CHORUS_REDACT_CHANNEL_LOG || channel > CHORUS_REDACT_CHANNEL_UCXI) return CHORUS_E_INVALID_ARG;
  if (format != CHORUS_REDACT_TEXT && format != CHORUS_REDACT_JSON) return CHORUS_E_INVALID_ARG;
  try {
    auto *owned = new OwnedBuf{redact_for(static_cast<shhh::Channel>(channel), format == CHORUS_REDACT_JSON,
                                          std::string_view(in == nullptr ? "" : in, len),
                                          ctx->instance->plugin_id, out_findings)};
    out->data = owned->text.data();
    out->len = owned->text.size();
    out->owner = owned;
    out->release = release_owned_buf;
    return CHORUS_OK;
  } catch (...) {
    return CHORUS_E_NO_MEMORY;
  }
}

const chorus_host_api kTable = [] {
  chorus_host_api t{};
  t.struct_size = sizeof(chorus_host_api);
  t.abi_major = CHORUS_ABI_MAJOR;
  t.abi_minor = CHORUS_ABI_MINOR;
  t.log = api_log;
  t.log_level = api_log_level;
  t.host_info = api_host_info;
  t.post = api_post;
  t.timer_start = api_timer_start;
  t.timer_cancel = api_timer_cancel;
  t.now_ms = api_now_ms;
  t.service_acquire = api_service_acquire;
  t.service_release = api_service_release;
  t.service_watch = api_service_watch;
  t.service_unwatch = api_service_unwatch;
  t.metric_define = api_metric_define;
  t.metric_update = api_metric_update;
  t.health_report = api_health_report;
  t.http_route_add = api_http_route_add;
  t.http_respond = HttpServer::respond;
  t.http_stream_begin = HttpServer::stream_begin;
  t.http_stream_write = HttpServer::stream_write;
  t.http_stream_end = HttpServer::stream_end;
  t.status_str = chorus_status_describe;
  t.redact = api_redact;
  return t;
}();

}  // namespace

void set_error(chorus_error *err, chorus_status code, const std::string &message) {
  chorus_error_set(err, code, message.data(), message.size());
}

const chorus_host_api *host_api_table() { return &kTable; }

}  // namespace chorus::host

/*
 * chorus/plugin.h - the stable C ABI between chorus-agent and its plugins.
 *
 * A plugin is a shared object that exports exactly one symbol, chorus_plugin_entry_v1, returning a
 * pointer to static descriptor data. Everything else crosses the boundary through the function tables
 * declared here. Only C types cross: no C++ objects, exceptions, RTTI or allocators.
 *
 * Compatibility rules (read these before changing anything in this file):
 *  - Every struct that may grow starts with `uint32_t struct_size`. Structs are append-only: fields are
 *    never removed, reordered or retyped. The writer zero-fills the struct and sets struct_size to the
 *    sizeof() it was compiled with; the reader checks the size before touching a field (CHORUS_HAS).
 *  - CHORUS_ABI_MAJOR changes only for an incompatible break, and then the entry symbol's name changes
 *    with it (chorus_plugin_entry_v2), so an old host never calls a new-major plugin.
 *  - CHORUS_ABI_MINOR grows with each append. A plugin states the minor it was compiled against and
 *    the minimum host minor it really needs; the host loads it iff the majors match and
 *    min_host_minor <= host minor.
 *  - Field offsets are pinned by tests/unit/abi_layout_test.cpp.
 *
 * Memory ownership:
 *  1. Pointer arguments are borrowed for the duration of the call unless documented "retained".
 *  2. Whoever allocates frees, with its own allocator. Data handed out by the other side comes either
 *     through a caller-supplied buffer/callback or as a chorus_buf carrying its own release function.
 *  3. Opaque instance/self pointers belong to the side that created them.
 *  4. The host copies everything it keeps from a descriptor when it loads the plugin.
 *  5. Strings are UTF-8. Where a length is passed, the string need not be NUL-terminated.
 *
 * Threading:
 *  - create, start, get_service, stop, destroy, reconfigure and drain are called on the host's single
 *    control thread, never concurrently for one instance.
 *  - Service calls, HTTP handlers, posted tasks and timer callbacks run on host worker threads and may
 *    run concurrently with each other. They may start once start() has returned CHORUS_OK and do not
 *    start after stop() has been called.
 *  - Every host API function is thread-safe and may be called from any thread, including the plugin's
 *    own, unless marked "control thread only".
 *  - Plugins must join every thread they started before stop() returns, must not block a host worker
 *    thread for long, and must not call the host from global constructors or destructors.
 */
#ifndef CHORUS_PLUGIN_H
#define CHORUS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define CHORUS_ABI_MAJOR 1
#define CHORUS_ABI_MINOR 1 /* 1.1: chorus_plugin_vtable.reload */

#if defined(__GNUC__) || defined(__clang__)
#define CHORUS_EXPORT __attribute__((visibility("default")))
#else
#define CHORUS_EXPORT
#endif

#ifdef __cplusplus
#define CHORUS_NOEXCEPT noexcept
extern "C" {
#else
#define CHORUS_NOEXCEPT
#endif

/* True when table `p` of type T is non-NULL, long enough to hold field `f`, and `f` is set. Use it
 * before calling any slot appended after the minor your code requires. */
#define CHORUS_HAS(T, p, f)                                                                    \
  ((p) != NULL && (p)->struct_size >= offsetof(T, f) + sizeof((p)->f) && (p)->f != NULL)
/* Same, for plain data fields (no NULL test). */
#define CHORUS_HAS_FIELD(T, p, f) ((p) != NULL && (p)->struct_size >= offsetof(T, f) + sizeof((p)->f))

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------- */

typedef int32_t chorus_status;

#define CHORUS_OK 0
#define CHORUS_E_INVALID_ARG (-1)   /* a parameter is malformed */
#define CHORUS_E_NOT_FOUND (-2)     /* no such service, route, timer, ... */
#define CHORUS_E_UNSUPPORTED (-3)   /* slot or feature not implemented by the other side */
#define CHORUS_E_VERSION (-4)       /* version or range mismatch */
#define CHORUS_E_CONFIG (-5)        /* configuration rejected */
#define CHORUS_E_UNAVAILABLE (-6)   /* dependency down, stopping or draining */
#define CHORUS_E_BUSY (-7)          /* try again later; back-pressure */
#define CHORUS_E_TIMEOUT (-8)
#define CHORUS_E_CANCELLED (-9)
#define CHORUS_E_NO_MEMORY (-10)
#define CHORUS_E_IO (-11)
#define CHORUS_E_INTERNAL (-12)     /* a bug; for C++ plugins, an exception escaped */
#define CHORUS_E_NEEDS_RESTART (-13) /* reconfigure: this change needs stop + start */
#define CHORUS_E_EXISTS (-14)       /* already registered (e.g. an HTTP route) */
#define CHORUS_E_TOO_LARGE (-15)
#define CHORUS_E_PROTOCOL (-16)     /* the peer violated a protocol */
/* Codes >= CHORUS_E_SERVICE_BASE are defined per service in its header. */
#define CHORUS_E_SERVICE_BASE 1000

#define CHORUS_ERROR_MESSAGE_MAX 512

/* Caller-owned error detail, passed last to fallible calls. NULL means "no detail wanted". The callee
 * writes a NUL-terminated message, truncating if needed, and never allocates. */
typedef struct chorus_error {
  uint32_t struct_size;
  chorus_status code;
  char message[CHORUS_ERROR_MESSAGE_MAX];
} chorus_error;

/* Bytes owned by the side that produced them; the receiver calls release(buf) exactly once. */
typedef struct chorus_buf {
  const char *data;
  size_t len;
  void *owner;
  void (*release)(struct chorus_buf *buf);
} chorus_buf;

/* ---------------------------------------------------------------------------------------------
 * Dependencies: plugins depend on services (name + semver range), never on plugin files.
 * ------------------------------------------------------------------------------------------- */

/* chorus_provide.flags */
/* The service is stateless per request, so the host may replace its provider while the agent runs
 * (binding change or new plugin file on SIGHUP). Consumers must acquire a reference per request and
 * release it when that request completes; the reference keeps the old provider alive. */
#define CHORUS_PROVIDE_SWAPPABLE 0x1u

typedef struct chorus_provide {
  uint32_t struct_size;
  uint32_t flags;
  const char *service; /* e.g. "chorus.p2p.host" */
  uint16_t major;      /* interface version of the table handed out by get_service */
  uint16_t minor;
  uint32_t reserved;
} chorus_provide;

/* chorus_require.flags */
#define CHORUS_REQUIRE_OPTIONAL 0x1u /* start without it if nobody provides it or its provider failed */
#define CHORUS_REQUIRE_LATE 0x2u     /* no start-order edge; bind later through service_watch */

typedef struct chorus_require {
  uint32_t struct_size;
  uint32_t flags;
  const char *service;
  const char *range; /* "^1.2", "~1.2.3", ">=1.2 <2", "1.4.2", "*" */
} chorus_require;

/* ---------------------------------------------------------------------------------------------
 * Host API (host -> plugin), one table per host, shared by all plugins
 * ------------------------------------------------------------------------------------------- */

typedef struct chorus_host_ctx chorus_host_ctx; /* one per plugin instance; identifies the caller */

#define CHORUS_LOG_TRACE 0
#define CHORUS_LOG_DEBUG 1
#define CHORUS_LOG_INFO 2
#define CHORUS_LOG_WARN 3
#define CHORUS_LOG_ERROR 4

#define CHORUS_HEALTH_OK 0
#define CHORUS_HEALTH_DEGRADED 1
#define CHORUS_HEALTH_UNHEALTHY 2

#define CHORUS_METRIC_COUNTER 0
#define CHORUS_METRIC_GAUGE 1
#define CHORUS_METRIC_HISTOGRAM 2

#define CHORUS_METRIC_ADD 0     /* counters and gauges */
#define CHORUS_METRIC_SET 1     /* gauges */
#define CHORUS_METRIC_OBSERVE 2 /* histograms */

#define CHORUS_SERVICE_AVAILABLE 0 /* service_watch events */
#define CHORUS_SERVICE_CHANGED 1   /* a different provider is now bound (hot swap) */
#define CHORUS_SERVICE_GONE 2

#define CHORUS_ROUTE_EXACT 0x0u
#define CHORUS_ROUTE_PREFIX 0x1u /* path is a prefix ending in '/'; matches everything below it */

typedef void (*chorus_task_fn)(void *arg);
typedef void (*chorus_dtor_fn)(void *arg);
typedef void (*chorus_watch_fn)(void *arg, const char *service, int32_t event);

/* A reference to a provider's service table. Holding it keeps the provider instance alive (and, for a
 * swappable service, keeps that generation serving). Do not keep table/self past service_release. */
typedef struct chorus_service_ref {
  uint32_t struct_size;
  uint16_t major; /* the provider's interface version */
  uint16_t minor;
  const void *table; /* starts with uint32_t struct_size; cast to the service's table type */
  void *self;        /* first argument of every call into table */
  uint64_t handle;   /* host bookkeeping; do not touch */
  const char *provider_id; /* valid while the ref is held */
} chorus_service_ref;

typedef struct chorus_http_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} chorus_http_header;

/* Borrowed for the duration of the handler call only; copy what you need for later. */
typedef struct chorus_http_request {
  uint32_t struct_size;
  uint32_t header_count;
  const char *method;
  size_t method_len;
  const char *path; /* without the query string, not percent-decoded */
  size_t path_len;
  const char *query; /* after '?', may be empty */
  size_t query_len;
  const char *body;
  size_t body_len;
  const chorus_http_header *headers;
  const char *remote; /* "ip:port" of the client */
  size_t remote_len;
} chorus_http_request;

/* One in-flight HTTP exchange. The handler (or any thread, later) must finish it exactly once with
 * http_respond, or with http_stream_begin ... http_stream_end. The pointer stays valid until then. */
typedef struct chorus_http_exchange chorus_http_exchange;
typedef void (*chorus_http_handler_fn)(void *user, const chorus_http_request *req,
                                       chorus_http_exchange *ex);

typedef struct chorus_host_api {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* ---- logging: the plugin id is added by the host ---- */
  void (*log)(chorus_host_ctx *ctx, int32_t level, const char *msg, size_t len);
  /* The minimum level that is logged (CHORUS_LOG_*): skip formatting anything below it. */
  int32_t (*log_level)(chorus_host_ctx *ctx);

  /* ---- host facts as one JSON object: agent_id, role, cluster_id, state_dir, host_version,
   *      plugin_id, http_listen, and the agent's assignment: model, prompt, capabilities, expertise,
   *      max_tasks, bootstrap_peers, assignment (its source; docs/configuration.md). They may change
   *      on SIGHUP (see reload). The receiver releases out with out->release(out). ---- */
  chorus_status (*host_info)(chorus_host_ctx *ctx, chorus_buf *out);

  /* ---- executor: fn(arg) runs once on a worker thread. arg_dtor(arg), if set, runs after fn, or
   *      instead of it when the task is dropped because the plugin stopped. When post or
   *      timer_start returns anything but CHORUS_OK, neither fn nor arg_dtor is ever called: the
   *      caller still owns arg. ---- */
  chorus_status (*post)(chorus_host_ctx *ctx, chorus_task_fn fn, void *arg, chorus_dtor_fn arg_dtor);
  /* period_ms 0 = one-shot. On return from timer_cancel the callback is not running and will not
   * run again (unless timer_cancel is called from inside that callback). Timers still running when
   * the plugin stops are cancelled by the host. */
  chorus_status (*timer_start)(chorus_host_ctx *ctx, uint64_t first_ms, uint64_t period_ms,
                               chorus_task_fn fn, void *arg, chorus_dtor_fn arg_dtor,
                               uint64_t *out_timer);
  chorus_status (*timer_cancel)(chorus_host_ctx *ctx, uint64_t timer);
  uint64_t (*now_ms)(chorus_host_ctx *ctx); /* monotonic milliseconds */

  /* ---- service registry ---- */
  /* Acquires the bound provider of `service` whose version satisfies `range`. Cheap enough to call
   * per request (swappable services require that). Every successful acquire needs one release. */
  chorus_status (*service_acquire)(chorus_host_ctx *ctx, const char *service, const char *range,
                                   chorus_service_ref *out, chorus_error *err);
  /* Any thread. Safe even from a provider's completion that runs after the holder's stop() returned
   * (a reference held by an in-flight request); release before stop returns all the same. */
  void (*service_release)(chorus_host_ctx *ctx, chorus_service_ref *ref);
  /* fn(arg, service, event) runs on a worker thread whenever the service appears, is re-bound or
   * disappears. Control thread only (call it from create/start). Removed automatically at stop. */
  chorus_status (*service_watch)(chorus_host_ctx *ctx, const char *service, chorus_watch_fn fn,
                                 void *arg, uint64_t *out_watch);
  void (*service_unwatch)(chorus_host_ctx *ctx, uint64_t watch);

  /* ---- metrics: exposed at GET /metrics. Names must start with "chorus_" and match
   *      [a-zA-Z_:][a-zA-Z0-9_:]*; label_names is comma-separated ("peer,reason") or NULL.
   *      Defining the same name twice with the same shape returns the same id. ---- */
  chorus_status (*metric_define)(chorus_host_ctx *ctx, int32_t kind, const char *name,
                                 const char *help, const char *label_names, const double *buckets,
                                 size_t bucket_count, uint64_t *out_metric, chorus_error *err);
  /* label_values has one entry per label name, in order. op: CHORUS_METRIC_ADD/SET/OBSERVE. */
  chorus_status (*metric_update)(chorus_host_ctx *ctx, uint64_t metric, int32_t op,
                                 const char *const *label_values, size_t label_count, double value);

  /* ---- health, shown at GET /health; the state before the first report is OK ---- */
  void (*health_report)(chorus_host_ctx *ctx, int32_t state, const char *msg, size_t len);

  /* ---- HTTP routes on the host listener. Call from create or start; removed when the plugin
   *      stops. A route another plugin already mounted fails with CHORUS_E_EXISTS and fails this
   *      plugin's start. method "*" accepts any method. ---- */
  chorus_status (*http_route_add)(chorus_host_ctx *ctx, const char *method, const char *path,
                                  uint32_t flags, chorus_http_handler_fn fn, void *user,
                                  chorus_error *err);
  /* Complete the exchange with one response. headers may be NULL. The exchange is finished (and
   * must not be touched again) when this returns CHORUS_OK or CHORUS_E_CANCELLED (client gone,
   * route removed); CHORUS_E_INVALID_ARG (e.g. answered twice, bad status) leaves it as it was. */
  chorus_status (*http_respond)(chorus_http_exchange *ex, int32_t status, const char *content_type,
                                const chorus_http_header *headers, size_t header_count,
                                const char *body, size_t body_len);
  /* Streamed response (chunked transfer encoding), e.g. SSE or NDJSON. Writes are queued in order;
   * http_stream_write returns CHORUS_E_CANCELLED once the client has gone away and CHORUS_E_BUSY
   * when too much is queued for a slow client (back off and retry). http_stream_end finishes the
   * exchange on CHORUS_OK or CHORUS_E_CANCELLED, like http_respond. A cancelled exchange (client
   * gone, route removed, host stopping) stays valid until the plugin finishes it: after a write
   * returns CHORUS_E_CANCELLED, still call http_stream_end (or http_respond) once to release it. */
  chorus_status (*http_stream_begin)(chorus_http_exchange *ex, int32_t status,
                                     const char *content_type, const chorus_http_header *headers,
                                     size_t header_count);
  chorus_status (*http_stream_write)(chorus_http_exchange *ex, const char *data, size_t len);
  chorus_status (*http_stream_end)(chorus_http_exchange *ex);

  const char *(*status_str)(chorus_status status);

  const void *reserved[8]; /* NULL; future slots are appended after this table's last field */
} chorus_host_api;

/* ---------------------------------------------------------------------------------------------
 * Plugin side: lifecycle table and descriptor
 * ------------------------------------------------------------------------------------------- */

typedef struct chorus_plugin_vtable {
  uint32_t struct_size;
  uint32_t reserved;
  /* Parse and validate config, allocate. No threads, no network. host and ctx are retained until
   * destroy. config_json is the plugin's `config:` subtree (an object, possibly empty). */
  chorus_status (*create)(const chorus_host_api *host, chorus_host_ctx *ctx, const char *config_json,
                          size_t config_len, void **out_instance, chorus_error *err);
  /* Every required dependency has started. May spawn work. */
  chorus_status (*start)(void *instance, chorus_error *err);
  /* Hand out the table for a service listed in provides. Called after start. */
  chorus_status (*get_service)(void *instance, const char *service, uint16_t major,
                               const void **out_table, void **out_self, chorus_error *err);
  /* Stop intake, finish or cancel in-flight work (callers get CHORUS_E_CANCELLED), join threads.
   * Must return within budget_ms; past that the host gives up on the instance. */
  chorus_status (*stop)(void *instance, uint64_t budget_ms, chorus_error *err);
  void (*destroy)(void *instance); /* free everything; must not fail */
  /* Optional (NULL = unsupported, the host restarts the plugin instead). Apply a changed config
   * while running, or return CHORUS_E_NEEDS_RESTART. */
  chorus_status (*reconfigure)(void *instance, const char *config_json, size_t config_len,
                               chorus_error *err);
  /* Optional. Hint before a hot swap retires this instance: no new work will arrive. */
  void (*drain)(void *instance);
  /* Optional (ABI 1.1; check with CHORUS_HAS). The agent reloaded (SIGHUP) and this instance's
   * config did not change, so reconfigure is not called: re-read what lives outside the config -
   * files the config names, the agent facts of host_info (role, assignment). Called on the control
   * thread once the new configuration is in place, within the reconfigure time limit. */
  void (*reload)(void *instance);
} chorus_plugin_vtable;

typedef struct chorus_plugin_descriptor {
  uint32_t struct_size;
  uint16_t abi_major;      /* must equal the host's */
  uint16_t abi_minor;      /* compiled against */
  uint16_t min_host_minor; /* really needs; <= abi_minor */
  uint16_t reserved0;
  uint32_t reserved1;
  uint64_t flags; /* none defined yet; must be 0 */
  const char *id; /* [a-z0-9][a-z0-9._-]{0,63}; must match the file name chorus-<id>.so */
  const char *version; /* the plugin's own semver, "1.4.2" */
  const char *description;
  const char *vendor;
  const char *license;
  const chorus_provide *provides;
  uint32_t provides_count;
  uint32_t requirements_count;
  const chorus_require *requirements;
  /* Optional JSON Schema (subset: type, properties, required, additionalProperties, items, enum,
   * minimum, maximum, minLength, maxLength, pattern (ECMAScript, at most 256 characters and 8 groups;
   * strings over 1 KiB never match), default; "x-secret": true redacts a value in logs and
   * /plugins). The host validates the plugin's config against it before create. */
  const char *config_schema_json;
  const chorus_plugin_vtable *vtable;
  const char *build_info; /* compiler, standard library; diagnostics only */
  const void *reserved[4];
} chorus_plugin_descriptor;

typedef struct chorus_abi_info {
  uint32_t struct_size;
  uint16_t major;
  uint16_t minor;
  const char *host_name;
  const char *host_version;
} chorus_abi_info;

/* The one exported symbol. Returns static data; must not allocate, start threads or do I/O. May
 * return NULL to refuse a host (the host reports it). */
typedef const chorus_plugin_descriptor *(*chorus_plugin_entry_fn)(const chorus_abi_info *host);
#define CHORUS_PLUGIN_ENTRY_SYMBOL "chorus_plugin_entry_v1"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_PLUGIN_H */

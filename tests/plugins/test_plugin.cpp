// A configurable plugin for the host's integration tests, written against the raw C ABI (no SDK) so
// it can misbehave on purpose. It is compiled once per variant; each variant's id, version and
// provides/requires come from a generated header passed with -include (see tests/CMakeLists.txt).
//
// Config keys (all optional):
//   record: file to append "<event> <id> <version> ..." lines to (create/start/stop/destroy)
//   fail_create, fail_start, throw_create, throw_start: misbehave in that call
//   hang_stop_ms: sleep this long in stop()
//   hang_start_ms: sleep this long in start()
//   routes: [paths] mounted as GET routes answering {"plugin","version","instance"}
//   ignore_route_errors: start succeeds even when a route could not be mounted
//   post_on_start: post a task and start a one-shot timer, both recording "task" then "task-dtor"
//   health: "ok" | "degraded" | "unhealthy", health_message
//   record_host_info: on start, record "host-info <id> <version> agent_id=<the agent id host_info gives>"
// A variant that provides test.echo serves it; one that requires test.echo mounts GET /<id>/call
// which calls the bound provider per request (delay from the query, "delay=<ms>").
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/plugin.h"
#include "test_echo.h"

#ifndef TP_MIN_HOST_MINOR
#define TP_MIN_HOST_MINOR CHORUS_ABI_MINOR
#endif
#ifndef TP_ABI_MINOR
#define TP_ABI_MINOR CHORUS_ABI_MINOR
#endif

namespace {

using json = nlohmann::json;

struct TestPlugin;

struct PendingCall {
  TestPlugin *plugin;
  uint64_t timer = 0;
  test_echo_done_fn done;
  void *user;
};

struct ConsumerCall;

struct TestPlugin {
  const chorus_host_api *host;
  chorus_host_ctx *ctx;
  json cfg;
  std::mutex mu;
  std::set<PendingCall *> pending;     // provider side: calls not answered yet
  std::set<ConsumerCall *> outstanding;  // consumer side: calls made and not answered yet
  bool stopping = false;
  test_echo_v1 echo{};
  std::string tag;  // distinguishes instances in answers

  void record(const std::string &event, const std::string &extra = "") {
    if (!cfg.contains("record")) return;
    std::string line = event + " " + TP_ID + " " + TP_VERSION + (extra.empty() ? "" : " " + extra) + "\n";
    int fd = ::open(cfg["record"].get<std::string>().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    ssize_t ignored = ::write(fd, line.data(), line.size());
    (void)ignored;
    ::close(fd);
  }
  bool flag(const char *key) const { return cfg.value(key, false); }
  void log(int level, const std::string &msg) { host->log(ctx, level, msg.data(), msg.size()); }
  std::string identity() const {
    return json{{"plugin", TP_ID}, {"version", TP_VERSION}, {"instance", tag}}.dump();
  }
};

void set_err(chorus_error *err, chorus_status code, const char *msg) {
  if (err == nullptr) return;
  err->code = code;
  std::snprintf(err->message, sizeof err->message, "%s", msg);
}

void respond_text(TestPlugin *p, chorus_http_exchange *ex, int status, const std::string &body) {
  p->host->http_respond(ex, status, "application/json", nullptr, 0, body.data(), body.size());
}

// ---- test.echo provider side
void echo_fire(void *arg) {
  auto *call = static_cast<PendingCall *>(arg);
  TestPlugin *p = call->plugin;
  {
    std::lock_guard lk(p->mu);
    if (p->pending.erase(call) == 0) return;  // stop() took it and answers it
  }
  std::string text = p->identity();
  call->done(call->user, CHORUS_OK, text.data(), text.size());
  delete call;
}

chorus_status echo_call(void *self, uint64_t delay_ms, test_echo_done_fn done, void *user, uint64_t *out_id) {
  auto *p = static_cast<TestPlugin *>(self);
  auto *call = new PendingCall{p, 0, done, user};
  std::lock_guard lk(p->mu);
  if (p->stopping) {
    delete call;
    return CHORUS_E_UNAVAILABLE;
  }
  p->pending.insert(call);
  if (p->host->timer_start(p->ctx, delay_ms, 0, echo_fire, call, nullptr, &call->timer) != CHORUS_OK) {
    p->pending.erase(call);
    delete call;
    return CHORUS_E_UNAVAILABLE;
  }
  *out_id = reinterpret_cast<uint64_t>(call);
  return CHORUS_OK;
}

chorus_status echo_cancel(void *self, uint64_t id) {
  auto *p = static_cast<TestPlugin *>(self);
  auto *call = reinterpret_cast<PendingCall *>(id);
  {
    std::lock_guard lk(p->mu);
    if (p->pending.erase(call) == 0) return CHORUS_E_NOT_FOUND;  // answered already
  }
  p->host->timer_cancel(p->ctx, call->timer);
  call->done(call->user, CHORUS_E_CANCELLED, nullptr, 0);
  delete call;
  return CHORUS_OK;
}

// ---- test.echo consumer side
struct ConsumerCall {
  TestPlugin *plugin;
  chorus_http_exchange *ex;
  chorus_service_ref ref;
  uint64_t id = 0;
};

void consumer_done(void *user, chorus_status status, const char *text, size_t len) {
  auto *c = static_cast<ConsumerCall *>(user);
  {
    std::lock_guard lk(c->plugin->mu);
    c->plugin->outstanding.erase(c);
  }
  if (status == CHORUS_OK)
    respond_text(c->plugin, c->ex, 200, std::string(text, len));
  else
    respond_text(c->plugin, c->ex, 503, json{{"error", c->plugin->host->status_str(status)}}.dump());
  c->plugin->host->service_release(c->plugin->ctx, &c->ref);
  delete c;
}

void consumer_route(void *user, const chorus_http_request *req, chorus_http_exchange *ex) {
  auto *p = static_cast<TestPlugin *>(user);
  std::string query(req->query, req->query_len);
  uint64_t delay = 0;
  if (auto pos = query.find("delay="); pos != std::string::npos) delay = std::stoull(query.substr(pos + 6));
  auto *c = new ConsumerCall{p, ex, {}};
  c->ref.struct_size = sizeof c->ref;
  chorus_error err{};
  err.struct_size = sizeof err;
  if (p->host->service_acquire(p->ctx, "test.echo", "^1", &c->ref, &err) != CHORUS_OK) {
    respond_text(p, ex, 503, json{{"error", err.message}}.dump());
    delete c;
    return;
  }
  const auto *table = static_cast<const test_echo_v1 *>(c->ref.table);
  {
    std::lock_guard lk(p->mu);
    p->outstanding.insert(c);
  }
  chorus_status s = table->call(c->ref.self, delay, consumer_done, c, &c->id);
  if (s != CHORUS_OK) consumer_done(c, s, nullptr, 0);
}

void identity_route(void *user, const chorus_http_request *, chorus_http_exchange *ex) {
  auto *p = static_cast<TestPlugin *>(user);
  respond_text(p, ex, 200, p->identity());
}

// ---- lifecycle
chorus_status tp_create(const chorus_host_api *host, chorus_host_ctx *ctx, const char *config, size_t len,
                        void **out, chorus_error *err) {
  auto *p = new TestPlugin();
  p->host = host;
  p->ctx = ctx;
  p->cfg = json::parse(config, config + len);
  char tag[32];
  std::snprintf(tag, sizeof tag, "%p", static_cast<void *>(p));
  p->tag = tag;
  p->echo.struct_size = sizeof p->echo;
  p->echo.call = echo_call;
  p->echo.cancel = echo_cancel;
  p->record("create");
  if (p->flag("throw_create")) {
    delete p;
    throw std::runtime_error("test plugin threw in create");
  }
  if (p->flag("fail_create")) {
    delete p;
    set_err(err, CHORUS_E_CONFIG, "fail_create is set");
    return CHORUS_E_CONFIG;
  }
  *out = p;
  return CHORUS_OK;
}

chorus_status tp_start(void *inst, chorus_error *err) {
  auto *p = static_cast<TestPlugin *>(inst);
  p->record("start");
  if (p->flag("record_host_info")) {  // what the host tells a plugin about the agent
    chorus_buf buf{};
    if (p->host->host_info(p->ctx, &buf) == CHORUS_OK) {
      const json info = json::parse(buf.data, buf.data + buf.len, nullptr, false);
      if (buf.release) buf.release(&buf);
      if (info.is_object()) p->record("host-info", "agent_id=" + info.value("agent_id", std::string()));
    }
  }
  if (p->flag("throw_start")) throw std::runtime_error("test plugin threw in start");
  if (p->flag("fail_start")) {
    set_err(err, CHORUS_E_UNAVAILABLE, "fail_start is set");
    return CHORUS_E_UNAVAILABLE;
  }
  if (auto ms = p->cfg.value("hang_start_ms", 0); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  for (const auto &route : p->cfg.value("routes", json::array())) {
    chorus_status s = p->host->http_route_add(p->ctx, "GET", route.get<std::string>().c_str(), CHORUS_ROUTE_EXACT,
                                              identity_route, p, err);
    if (s != CHORUS_OK && !p->flag("ignore_route_errors")) return s;
  }
  for (const chorus_require *r = tp_requires; r->service != nullptr; ++r) {  // ends with a sentinel
    if (std::strcmp(r->service, "test.echo") == 0) {
      std::string path = std::string("/") + TP_ID + "/call";
      chorus_status s =
          p->host->http_route_add(p->ctx, "GET", path.c_str(), CHORUS_ROUTE_EXACT, consumer_route, p, err);
      if (s != CHORUS_OK) return s;
    }
  }
  if (p->flag("post_on_start")) {
    // A posted task and a one-shot timer, each with a dtor: the host must run each fn once and
    // each dtor once, after the fn.
    auto fire = [](void *arg) { static_cast<TestPlugin *>(arg)->record("task"); };
    auto done = [](void *arg) { static_cast<TestPlugin *>(arg)->record("task-dtor"); };
    if (p->host->post(p->ctx, fire, p, done) != CHORUS_OK) return CHORUS_E_INTERNAL;
    uint64_t timer = 0;
    if (p->host->timer_start(p->ctx, 1, 0, fire, p, done, &timer) != CHORUS_OK) return CHORUS_E_INTERNAL;
  }
  std::string health = p->cfg.value("health", "ok");
  std::string msg = p->cfg.value("health_message", "");
  int32_t state = health == "degraded" ? CHORUS_HEALTH_DEGRADED
                  : health == "unhealthy" ? CHORUS_HEALTH_UNHEALTHY
                                          : CHORUS_HEALTH_OK;
  p->host->health_report(p->ctx, state, msg.data(), msg.size());
  p->log(CHORUS_LOG_INFO, "test plugin started");
  return CHORUS_OK;
}

chorus_status tp_get_service(void *inst, const char *service, uint16_t, const void **table, void **self,
                             chorus_error *err) {
  auto *p = static_cast<TestPlugin *>(inst);
  if (std::strcmp(service, "test.echo") == 0) {
    *table = &p->echo;
    *self = p;
    return CHORUS_OK;
  }
  // Every other declared service gets an empty table: the tests only check wiring and order.
  static const uint32_t empty_table = sizeof(uint32_t);
  *table = &empty_table;
  *self = p;
  (void)err;
  return CHORUS_OK;
}

chorus_status tp_stop(void *inst, uint64_t, chorus_error *) {
  auto *p = static_cast<TestPlugin *>(inst);
  std::set<PendingCall *> cancelled;
  {
    std::lock_guard lk(p->mu);
    p->stopping = true;
    cancelled.swap(p->pending);
  }
  p->record("stop", "inflight=" + std::to_string(cancelled.size()));
  // As a consumer: cancel what is still outstanding, so no answer arrives after destroy().
  std::vector<std::pair<const test_echo_v1 *, std::pair<void *, uint64_t>>> mine;
  {
    std::lock_guard lk(p->mu);
    for (ConsumerCall *c : p->outstanding)
      mine.push_back({static_cast<const test_echo_v1 *>(c->ref.table), {c->ref.self, c->id}});
  }
  for (const auto &[table, call] : mine) table->cancel(call.first, call.second);
  for (PendingCall *call : cancelled) {
    p->host->timer_cancel(p->ctx, call->timer);
    call->done(call->user, CHORUS_E_CANCELLED, nullptr, 0);
    delete call;
  }
  if (auto ms = p->cfg.value("hang_stop_ms", 0); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return CHORUS_OK;
}

void tp_destroy(void *inst) {
  auto *p = static_cast<TestPlugin *>(inst);
  p->record("destroy");
  delete p;
}

void tp_drain(void *inst) { static_cast<TestPlugin *>(inst)->record("drain"); }

chorus_status tp_reconfigure(void *inst, const char *config, size_t len, chorus_error *) {
  auto *p = static_cast<TestPlugin *>(inst);
  json next = json::parse(config, config + len);
  if (next.value("needs_restart", false)) return CHORUS_E_NEEDS_RESTART;
  p->cfg = std::move(next);
  p->record("reconfigure");
  return CHORUS_OK;
}

const chorus_plugin_vtable kVtable = {sizeof(chorus_plugin_vtable), 0,          tp_create,      tp_start,
                                      tp_get_service,                tp_stop,    tp_destroy,     tp_reconfigure,
                                      tp_drain};

constexpr const char *kSchema = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "record": {"type": "string"},
    "fail_create": {"type": "boolean"}, "fail_start": {"type": "boolean"},
    "throw_create": {"type": "boolean"}, "throw_start": {"type": "boolean"},
    "hang_stop_ms": {"type": "integer", "minimum": 0}, "hang_start_ms": {"type": "integer", "minimum": 0},
    "routes": {"type": "array", "items": {"type": "string"}},
    "health": {"type": "string", "enum": ["ok", "degraded", "unhealthy"]},
    "health_message": {"type": "string"},
    "needs_restart": {"type": "boolean"}, "ignore_route_errors": {"type": "boolean"},
    "post_on_start": {"type": "boolean"}, "record_host_info": {"type": "boolean"},
    "token": {"type": "string", "x-secret": true}
  }
})";

const chorus_plugin_descriptor kDescriptor = {
    sizeof(chorus_plugin_descriptor),
    CHORUS_ABI_MAJOR,
    TP_ABI_MINOR,
    TP_MIN_HOST_MINOR,
    0,
    0,
    0,
    TP_ID,
    TP_VERSION,
    "host integration test plugin",
    "chorus-agent tests",
    "Apache-2.0",
    TP_PROVIDES_COUNT ? tp_provides : nullptr,
    TP_PROVIDES_COUNT,
    TP_REQUIRES_COUNT,
    TP_REQUIRES_COUNT ? tp_requires : nullptr,
    kSchema,
    &kVtable,
    "test",
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace

extern "C" CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) {
  return &kDescriptor;
}

/* Compatibility proof: a plugin compiled against ONLY the ABI 1.0 header (tests/compat/abi-1.0, kept
 * verbatim from the commit before 1.1). It must load and run in the current host: it logs at start,
 * serves GET/POST /compat10/echo (answering and logging what it was given, which the SHHH integration
 * test uses as "a secret in a plugin's log line") and stops cleanly. Plain C, no SDK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/plugin.h"

#if CHORUS_ABI_MINOR != 0
#error "this plugin must be built against the ABI 1.0 header"
#endif

typedef struct compat10 {
  const chorus_host_api *host;
  chorus_host_ctx *ctx;
} compat10;

static void log_line(compat10 *p, int32_t level, const char *text) {
  if (CHORUS_HAS(chorus_host_api, p->host, log)) p->host->log(p->ctx, level, text, strlen(text));
}

static void echo(void *user, const chorus_http_request *req, chorus_http_exchange *ex) {
  compat10 *p = (compat10 *)user;
  const char *what = req->body_len > 0 ? req->body : req->query;
  size_t len = req->body_len > 0 ? req->body_len : req->query_len;
  if (len > 4000) len = 4000;
  char line[4096 + 32];
  snprintf(line, sizeof line, "compat10 echo: %.*s", (int)len, what);
  log_line(p, CHORUS_LOG_INFO, line);
  char body[128];
  int n = snprintf(body, sizeof body, "{\"abi_minor\":%d,\"host_abi_minor\":%d,\"bytes\":%zu}", CHORUS_ABI_MINOR,
                   (int)p->host->abi_minor, len);
  p->host->http_respond(ex, 200, "application/json", NULL, 0, body, (size_t)n);
}

static chorus_status create(const chorus_host_api *host, chorus_host_ctx *ctx, const char *config_json,
                            size_t config_len, void **out, chorus_error *err) {
  (void)config_json;
  (void)config_len;
  (void)err;
  compat10 *p = (compat10 *)calloc(1, sizeof *p);
  if (p == NULL) return CHORUS_E_NO_MEMORY;
  p->host = host;
  p->ctx = ctx;
  *out = p;
  return CHORUS_OK;
}

static chorus_status start(void *instance, chorus_error *err) {
  compat10 *p = (compat10 *)instance;
  for (int i = 0; i < 2; ++i) {
    chorus_status s = p->host->http_route_add(p->ctx, i == 0 ? "GET" : "POST", "/compat10/echo", 0, echo, p, err);
    if (s != CHORUS_OK) return s;
  }
  char line[96];
  snprintf(line, sizeof line, "compat10 started: built for ABI 1.%d, host ABI 1.%d", CHORUS_ABI_MINOR,
           (int)p->host->abi_minor);
  log_line(p, CHORUS_LOG_INFO, line);
  return CHORUS_OK;
}

static chorus_status stop(void *instance, uint64_t budget_ms, chorus_error *err) {
  (void)budget_ms;
  (void)err;
  log_line((compat10 *)instance, CHORUS_LOG_INFO, "compat10 stopped");
  return CHORUS_OK;
}

static void destroy(void *instance) { free(instance); }

static const chorus_plugin_vtable kVtable = {
    sizeof(chorus_plugin_vtable), 0, create, start, NULL, stop, destroy, NULL, NULL};

static const chorus_plugin_descriptor kDescriptor = {
    sizeof(chorus_plugin_descriptor), CHORUS_ABI_MAJOR, CHORUS_ABI_MINOR, 0, 0, 0, 0,
    "compat10", "1.0.0", "ABI 1.0 compatibility proof", "chorus tests", "MIT",
    NULL, 0, 0, NULL, NULL, &kVtable, "C, ABI 1.0 header", {NULL, NULL, NULL, NULL}};

CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *host) {
  (void)host;
  return &kDescriptor;
}

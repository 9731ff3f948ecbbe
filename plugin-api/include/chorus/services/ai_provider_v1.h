/*
 * chorus/services/ai_provider_v1.h - the AI provider service, "chorus.ai.provider" major 1.
 *
 * Provided by ai-ollama, ai-openai and third parties; consumed by reasoning. The service is
 * stateless per request, so providers declare it CHORUS_PROVIDE_SWAPPABLE and consumers acquire the
 * provider per request and release it after the request's terminal callback (see plugin.h).
 *
 * Calls are asynchronous. A request (chat, generate, list_models) takes a caller-owned sink:
 *  - If the call returns anything but CHORUS_OK, no sink callback is ever made and *out_call_id is 0.
 *  - If it returns CHORUS_OK, the sink receives zero or more on_chunk callbacks and then EXACTLY ONE
 *    terminal callback, on_done or on_error, after which the provider never touches the sink again.
 *    The sink (and `user`) must stay valid until then. Callbacks may come from a provider thread or,
 *    rarely, from inside the call itself (e.g. a request rejected after queueing); they are never
 *    concurrent for one request. A callback may call cancel() (also for its own request).
 *  - cancel(call_id) is asynchronous and harmless: an id that was never issued is CHORUS_E_NOT_FOUND;
 *    for an open request it returns CHORUS_OK and the request ends with on_error(CHORUS_E_CANCELLED)
 *    unless it finishes first; for a request that already finished it returns CHORUS_OK and does nothing.
 *  - A provider that stops (or is retired by a hot swap after its drain deadline) ends every open
 *    request with on_error(CHORUS_E_CANCELLED).
 *
 * All payloads are UTF-8 JSON objects (not NUL-terminated; use the length).
 *
 * chat request:   {"model": "...",                      (optional: "" = provider's default model)
 *                  "messages": [{"role": "system|user|assistant|tool", "content": "...",
 *                                "tool_calls": [...], "tool_call_id": "..."}],
 *                  "stream": true|false,                  (true: on_chunk per delta)
 *                  "tools": [OpenAI-style tool definitions], "tool_choice": ...,   (passed through)
 *                  "options": {"temperature": 0.2, "top_p": 1, "max_tokens": 256, "stop": [...]}}
 * generate request: {"model", "prompt": "...", "system": "...", "stream", "options"}
 * chunk:          {"delta": "text", "tool_calls": [OpenAI-style tool call deltas]}   (either may be absent)
 * done:           {"model": "...", "content": "full text", "finish_reason": "stop|length|tool_calls|...",
 *                  "tool_calls": [{"id","type":"function","function":{"name","arguments":"<json text>"}}],
 *                  "usage": {"prompt_tokens", "completion_tokens", "total_tokens"},
 *                  "provider": "<plugin id>", "provider_version": "<plugin version>"}
 * list_models done: {"models": [{"id": "...", ...provider details}], "provider": "<plugin id>"}
 * health out:     {"state": "ok|degraded|unhealthy", "breaker": "closed|open|half_open",
 *                  "inflight": n, "queued": n, "endpoint": "...", "provider": "<plugin id>", ...}
 *
 * Errors (on_error status / return status): CHORUS_E_INVALID_ARG (bad request JSON),
 * CHORUS_E_BUSY (concurrency queue full or upstream 429), CHORUS_E_UNAVAILABLE (cannot connect,
 * circuit breaker open, provider stopping), CHORUS_E_TIMEOUT (connect / first byte / total),
 * CHORUS_E_PROTOCOL (malformed or truncated upstream answer), CHORUS_E_TOO_LARGE (upstream answer
 * over the limit), CHORUS_E_NOT_FOUND (unknown model), CHORUS_E_CANCELLED, CHORUS_AI_E_UPSTREAM
 * (the upstream answered an HTTP error; the message carries its status and error text).
 * Messages never contain API keys.
 */
#ifndef CHORUS_SERVICES_AI_PROVIDER_V1_H
#define CHORUS_SERVICES_AI_PROVIDER_V1_H

#include "chorus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_AI_PROVIDER_SERVICE "chorus.ai.provider"
#define CHORUS_AI_PROVIDER_V1_MAJOR 1
#define CHORUS_AI_PROVIDER_V1_MINOR 0

/* The upstream answered with an HTTP error status (4xx other than 404/429, 5xx after retries). */
#define CHORUS_AI_E_UPSTREAM (CHORUS_E_SERVICE_BASE + 0)

/* Owned by the CALLER; valid until the terminal callback (on_done or on_error) has returned. */
typedef struct chorus_ai_sink {
  uint32_t struct_size;
  uint32_t reserved;
  void *user;
  void (*on_chunk)(void *user, const char *json, size_t len);               /* zero or more times */
  void (*on_done)(void *user, const char *json, size_t len);                /* terminal */
  void (*on_error)(void *user, chorus_status status, const char *msg, size_t len); /* terminal */
} chorus_ai_sink;

typedef struct chorus_ai_provider_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* 1.0 */
  chorus_status (*chat)(void *self, const char *request_json, size_t len, const chorus_ai_sink *sink,
                        uint64_t *out_call_id, chorus_error *err);
  chorus_status (*generate)(void *self, const char *request_json, size_t len, const chorus_ai_sink *sink,
                            uint64_t *out_call_id, chorus_error *err);
  chorus_status (*list_models)(void *self, const chorus_ai_sink *sink, uint64_t *out_call_id,
                               chorus_error *err);
  chorus_status (*cancel)(void *self, uint64_t call_id);
  /* Non-blocking snapshot of the provider's state; the caller releases *out. */
  chorus_status (*health)(void *self, chorus_buf *out, chorus_error *err);
} chorus_ai_provider_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_AI_PROVIDER_V1_H */

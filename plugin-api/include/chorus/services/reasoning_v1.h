/*
 * chorus/services/reasoning_v1.h - the reasoning service, "chorus.reasoning" major 1.
 *
 * Provided by the reasoning plugin for agent behaviours. It applies the agent's model selection
 * (configured models, selection webhook, default model) and the role system prompt, then forwards
 * the request to the bound chorus.ai.provider (acquired per request, so hot swaps are transparent).
 *
 * complete() takes an OpenAI-style chat body ({"model"?, "messages", "stream"?, "tools"?, ...}) and
 * the sink of chorus/services/ai_provider_v1.h, with the same rules: on CHORUS_OK exactly one
 * terminal callback follows; on any other status none. The done JSON is the provider's done object
 * (see ai_provider_v1.h) with "model" set to the model actually used.
 */
#ifndef CHORUS_SERVICES_REASONING_V1_H
#define CHORUS_SERVICES_REASONING_V1_H

#include "chorus/plugin.h"
#include "chorus/services/ai_provider_v1.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_REASONING_SERVICE "chorus.reasoning"
#define CHORUS_REASONING_V1_MAJOR 1
#define CHORUS_REASONING_V1_MINOR 0

typedef struct chorus_reasoning_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  chorus_status (*complete)(void *self, const char *request_json, size_t len, const chorus_ai_sink *sink,
                            uint64_t *out_call_id, chorus_error *err);
  chorus_status (*cancel)(void *self, uint64_t call_id);
  /* The composed system prompt for the agent's role; the caller releases *out. */
  chorus_status (*system_prompt)(void *self, chorus_buf *out, chorus_error *err);
} chorus_reasoning_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_REASONING_V1_H */

/*
 * chorus/services/ucxi_v1.h - the `chorus.ucxi` service, major 1 (provided by the `ucxi` plugin;
 * docs/contract.md, Services).
 *
 * Versioned content named by UCXL addresses (`ucxl://agent:role@project:task/temporal/path`,
 * docs/protocols.md, UCXL), stored role-encrypted in the DHT, and the decision records CHORUS
 * agents publish. The same operations are served over HTTP under /ucxi/v1/ (docs/contract.md).
 *
 * Threading and re-entrancy (as chorus.dht):
 *  - Every function is thread-safe and never blocks on the network: operations that need it take a
 *    completion callback and return at once.
 *  - A completion runs exactly once, on a thread of the provider, when the function that started the
 *    operation returned CHORUS_OK; when it returned anything else the completion never runs.
 *    Completions must not block; they may call any function of this table.
 *  - When the plugin stops, operations still running complete with CHORUS_E_CANCELLED.
 *  - Pointers handed to a completion are valid for that call only. Strings and bytes passed in are
 *    copied before the call returns.
 *
 * Errors: CHORUS_E_INVALID_ARG (an address that does not parse, a wildcard where one address is
 * needed, a decision that fails its schema; chorus_error.message gives the field), CHORUS_E_TOO_LARGE
 * (content over the configured limit), CHORUS_E_NOT_FOUND (no such address or version),
 * CHORUS_E_UCXI_TEMPORAL (a temporal segment outside the versions that exist),
 * CHORUS_E_UCXI_NOT_AUTHORISED (this agent holds no key for the content's role), CHORUS_E_TIMEOUT,
 * CHORUS_E_UNAVAILABLE (the plugin is stopping, or the DHT has no peers to ask).
 */
#ifndef CHORUS_SERVICES_UCXI_V1_H
#define CHORUS_SERVICES_UCXI_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_UCXI_SERVICE "chorus.ucxi"
#define CHORUS_UCXI_V1_MAJOR 1
#define CHORUS_UCXI_V1_MINOR 0

/* Service-specific status codes. */
#define CHORUS_E_UCXI_TEMPORAL (CHORUS_E_SERVICE_BASE + 1)       /* version out of range */
#define CHORUS_E_UCXI_NOT_AUTHORISED (CHORUS_E_SERVICE_BASE + 2) /* no key for the content's role */

/* Completion of an operation. status is CHORUS_OK or an error (err says why; NULL on success).
 * meta: a JSON object describing the result (said per function; NULL/0 on error). content: the
 * content's bytes for get, else NULL/0. */
typedef void (*chorus_ucxi_done_fn)(void *arg, chorus_status status, const chorus_error *err, const char *meta,
                                    size_t meta_len, const uint8_t *content, size_t content_len);

typedef struct chorus_ucxi_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Stores content as the next version of address (a concrete address: no "any"; its temporal
   * segment, if any, must be "*^"). content_type may be NULL (application/octet-stream).
   * meta: {"address": "<address with *~N>", "version": N, "sha256": "<hex>", "size", "created"}. */
  chorus_status (*put)(void *self, const char *address, const char *content_type, const uint8_t *content,
                       size_t len, uint32_t timeout_ms, chorus_ucxi_done_fn done, void *arg, chorus_error *err);

  /* Resolves address (its temporal segment: latest, a version, or relative to latest) and fetches
   * the content. meta: {"address": "<with *~N>", "version", "versions", "sha256", "size",
   * "content_type", "role", "author", "created", "deleted"}; content: the bytes. */
  chorus_status (*get)(void *self, const char *address, uint32_t timeout_ms, chorus_ucxi_done_fn done, void *arg,
                       chorus_error *err);

  /* Publishes a decision record (the JSON schema of docs/protocols.md, UCXL decisions) at its
   * address, and announces it on CHORUS/coordination/v1 when pubsub runs. meta as for put, plus
   * "id". */
  chorus_status (*publish_decision)(void *self, const char *decision_json, uint32_t timeout_ms,
                                    chorus_ucxi_done_fn done, void *arg, chorus_error *err);

  /* Parses an address without touching the network: *out = its JSON form (agent, role, project,
   * task, temporal_segment, path, raw). The caller releases *out with out->release(out). */
  chorus_status (*parse_address)(void *self, const char *address, chorus_buf *out, chorus_error *err);
} chorus_ucxi_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_UCXI_V1_H */

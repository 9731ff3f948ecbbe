/*
 * chorus/services/eventlog_v1.h - the `chorus.eventlog` service, major 1 (provided by the `eventlog`
 * plugin; docs/contract.md, Services; docs/eventlog.md has the entry format).
 *
 * An append-only, hash-chained, signed log of what this agent did and saw (CHORUS's HypercoreLog):
 * tasks announced, claimed, progressed, completed or failed; peers joined and left; capability
 * broadcasts; election changes; decisions. Each entry has a gapless index (from 0), an RFC 3339 UTC
 * timestamp with milliseconds, the author (this node's libp2p peer id), a type, JSON data, the SHA-256
 * hash of all of these and of the previous entry's hash, and the author's Ed25519 signature over that
 * hash. `chorus-agent verify-log` checks the whole chain.
 *
 * Types: [a-z0-9_.]{1,64}. The agent's own types are task_announced, task_claimed, task_progress,
 * task_completed, task_failed, peer_joined, peer_left, capability_broadcast, election_changed and
 * decision; other plugins may add their own (a vendor prefix with a dot, "acme.audit", is advised).
 * Data is any JSON text (an object is usual), at most 64 KiB; it is stored in canonical form (compact,
 * object keys sorted), so the data read back may differ in spacing and key order from what was given.
 *
 * Rules (see chorus/plugin.h for the general ones):
 *  - The table is append-only; check slots added after 1.0 with CHORUS_HAS.
 *  - Every function is thread-safe. Appends are ordered on one writer thread, which commits what has
 *    queued up in one transaction (one fsync for a burst of appends).
 *  - append BLOCKS until the entry is durable (committed with synchronous=FULL) and returns its index.
 *    Never call it from a thread that must not block (the p2p network thread, a timer callback of
 *    another plugin's loop): use append_async there.
 *  - append_async returns at once; fn runs exactly once (unless append_async itself returns an error,
 *    in which case it never runs), on the eventlog's writer thread, after the entry is durable (status
 *    CHORUS_OK, its index) or failed (an error status, err says why). fn must not block; it may call
 *    query_json / head_json but must not call append (that would wait on its own thread).
 *  - Strings passed in are copied before the call returns. Buffers handed out are released by the
 *    caller with out->release(out).
 *  - Errors: CHORUS_E_INVALID_ARG (bad type, data not JSON or too large, NULL pointers, from > to),
 *    CHORUS_E_UNAVAILABLE (the plugin is stopping or not started), CHORUS_E_IO (the database failed;
 *    nothing was appended), CHORUS_E_BUSY (more than 10000 appends queued). chorus_error says which.
 */
#ifndef CHORUS_SERVICES_EVENTLOG_V1_H
#define CHORUS_SERVICES_EVENTLOG_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_EVENTLOG_SERVICE "chorus.eventlog"
#define CHORUS_EVENTLOG_V1_MAJOR 1
#define CHORUS_EVENTLOG_V1_MINOR 0

/* Longest type accepted, and largest data (JSON text, before canonicalisation). */
#define CHORUS_EVENTLOG_TYPE_MAX 64
#define CHORUS_EVENTLOG_DATA_MAX 65536
/* query_json: limit 0 means this many; larger limits are cut to CHORUS_EVENTLOG_QUERY_MAX. */
#define CHORUS_EVENTLOG_QUERY_DEFAULT 100
#define CHORUS_EVENTLOG_QUERY_MAX 1000

/* append_async's completion: status CHORUS_OK and the entry's index, or an error (index 0, err set). */
typedef void (*chorus_eventlog_append_fn)(void *arg, chorus_status status, uint64_t index, const chorus_error *err);

typedef struct chorus_eventlog_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Appends one entry and waits until it is durable; *out_index (may be NULL) receives its index.
   * type: type_len bytes (not NUL-terminated); data_json: data_len bytes of JSON. */
  chorus_status (*append)(void *self, const char *type, size_t type_len, const char *data_json, size_t data_len,
                          uint64_t *out_index, chorus_error *err);

  /* The same without waiting: fn(arg, status, index, err) reports the outcome (see the rules above).
   * fn may be NULL (fire and forget: a failure is only logged by the provider). */
  chorus_status (*append_async)(void *self, const char *type, size_t type_len, const char *data_json,
                                size_t data_len, chorus_eventlog_append_fn fn, void *arg, chorus_error *err);

  /* Entries with from <= index <= to (both inclusive; to = UINT64_MAX for "to the end"), of one type
   * (type NULL or type_len 0: every type), in index order, at most limit (0: the default), as a JSON
   * array of {"index","timestamp","author","type","data","hash","prev_hash","signature"} (hashes and
   * signature in lower-case hex, data as JSON). */
  chorus_status (*query_json)(void *self, uint64_t from, uint64_t to, const char *type, size_t type_len,
                              uint32_t limit, chorus_buf *out, chorus_error *err);

  /* {"length": <entries>, "index": <last index or null>, "hash": "<hex of the last hash>"}; the hash of
   * an empty log is 64 zeros (it is the prev_hash the first entry will carry). */
  chorus_status (*head_json)(void *self, chorus_buf *out, chorus_error *err);
} chorus_eventlog_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_EVENTLOG_V1_H */

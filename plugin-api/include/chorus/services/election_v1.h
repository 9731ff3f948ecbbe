/*
 * chorus/services/election_v1.h - the `chorus.election` service, major 1 (provided by the `election`
 * plugin; docs/contract.md, Services).
 *
 * The election elects one cluster-wide "admin" node (as CHORUS's election does). This service tells
 * other plugins whether THIS agent is the admin right now, who the admin is, and when that changes.
 * Its first user is backbeat: with `pulse: true` only the admin publishes BeatFrames (docs/protocols.md,
 * BACKBEAT operations); everyone else listens. Further duties that follow the admin (SLURP, key management)
 * use the same calls.
 *
 * How the election decides (candidate scoring, heartbeats, quorum, message formats) is the provider's
 * business and not part of this contract; consumers see only the outcome.
 *
 * Rules (see chorus/plugin.h for the general ones):
 *  - The table is append-only; check slots added after 1.0 with CHORUS_HAS. The first slot,
 *    is_admin, is at a fixed place (offset 8 on every ABI) so that the smallest possible consumer
 *    (`struct_size, reserved, is_admin`) stays compatible forever.
 *  - Every function is thread-safe and non-blocking: it answers from the provider's current state and
 *    never waits for an election round or the network.
 *  - "No admin known" (an election is running, or this node has not heard a heartbeat yet) is a normal
 *    answer, not an error: is_admin reports 0 and get_admin_json an empty admin_id.
 *  - Errors: CHORUS_E_INVALID_ARG (NULL out-pointer or fn), CHORUS_E_NOT_FOUND (unwatch of an unknown
 *    id), CHORUS_E_UNAVAILABLE (the provider is stopping). chorus_error carries the detail.
 *  - A consumer that gets an error from is_admin must behave as "not admin": never assume leadership
 *    it cannot confirm (two pulses at once are worse than a short gap, which listeners bridge by
 *    deriving beats locally).
 *
 * Watching (watch_admin / unwatch_admin):
 *  - fn runs on the provider's own thread, one call at a time, in the order the changes happened,
 *    after the new state is visible through is_admin / get_admin_json. It must not block; it may call
 *    any function of this table, including unwatch_admin for its own watch.
 *  - Each change carries the new admin, its term and (1.1) the admin it replaces, previous_admin_id:
 *    the admin of the change before, as this watch API reported it.
 *  - watch_admin does NOT replay the current state: call get_admin_json (or is_admin) after
 *    watch_admin returns, so no change is missed between the two.
 *  - After unwatch_admin returns (from any thread other than fn's own), fn is not running and will
 *    not run again for that watch, and arg_dtor (if any) has run once. Every watch still registered
 *    when the provider stops is dropped the same way (arg_dtor runs), so consumers must unwatch in
 *    their stop() before releasing the service reference.
 */
#ifndef CHORUS_SERVICES_ELECTION_V1_H
#define CHORUS_SERVICES_ELECTION_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_ELECTION_SERVICE "chorus.election"
#define CHORUS_ELECTION_V1_MAJOR 1
#define CHORUS_ELECTION_V1_MINOR 1

/* One admin change, as passed to a watch. Strings are NUL-terminated and valid only during the call. */
typedef struct chorus_election_change {
  uint32_t struct_size;     /* sizeof(chorus_election_change) of the provider; read only what fits */
  int32_t is_admin;         /* 1: this agent is now the admin; 0: it is not (or no admin is known) */
  const char *admin_id;     /* the admin's agent id; "" while no admin is known */
  uint64_t term;            /* election term/epoch: strictly increases with every new admin */
  uint64_t since_unix_ms;   /* when this admin took over (its wall clock as reported); 0 if unknown */
  /* 1.1: */
  const char *previous_admin_id; /* the admin before this change; "" for none. Read it only when
                                    struct_size > offsetof(chorus_election_change, previous_admin_id) */
} chorus_election_change;

typedef void (*chorus_election_watch_fn)(void *arg, const chorus_election_change *change);

typedef struct chorus_election_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* *out_is_admin = 1 while this agent is the elected admin, else 0. */
  chorus_status (*is_admin)(void *self, int32_t *out_is_admin, chorus_error *err);

  /* The current outcome as one JSON object:
   *   {"admin_id": "<agent id or empty>", "is_self": bool, "term": <uint>,
   *    "since": "<RFC 3339 UTC or empty>", "since_unix_ms": <uint>}
   * Providers may add members; consumers ignore what they do not know.
   * The caller releases *out with out->release(out). */
  chorus_status (*get_admin_json)(void *self, chorus_buf *out, chorus_error *err);

  /* fn(arg, change) runs for every admin change from now on (see "Watching" above). *out_watch names
   * the watch (never 0). arg_dtor (may be NULL) runs once when the watch ends. */
  chorus_status (*watch_admin)(void *self, chorus_election_watch_fn fn, void *arg, void (*arg_dtor)(void *arg),
                               uint64_t *out_watch, chorus_error *err);

  /* Ends a watch made with watch_admin. */
  chorus_status (*unwatch_admin)(void *self, uint64_t watch, chorus_error *err);
} chorus_election_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_ELECTION_V1_H */

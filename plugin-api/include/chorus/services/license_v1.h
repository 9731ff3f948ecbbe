/*
 * chorus/services/license_v1.h - the `chorus.license` service, major 1 (provided by the `license`
 * plugin; plugins/license/README.md, docs/protocols.md "Licence validation").
 *
 * The license plugin validates the agent's licence against a licence server before it reports
 * started, keeps a cached valid answer for a grace period while the server is unreachable, and
 * revalidates on its own timer. Plugins that must not run without a licence REQUIRE the service:
 *
 *     chorus::require(CHORUS_LICENSE_SERVICE, "^1", 0)
 *
 * The host starts a provider before the plugins that require it and does not start a plugin whose
 * required service has no running provider, so a licence that fails at start keeps them stopped.
 * While running, a licence can still turn invalid (the server says so, it expires, or the grace
 * period runs out); callers that must stop then poll `status` (it never blocks) and check `valid`.
 *
 * Rules (see chorus/plugin.h for the general ones):
 *  - The table is append-only; check slots added after 1.0 with CHORUS_HAS.
 *  - Every function is thread-safe and non-blocking: it reports the last known state and never waits
 *    for the licence server.
 *  - chorus_license_status is size-prefixed: the caller sets struct_size, the callee fills only the
 *    fields that fit (a newer caller's longer struct keeps its extra fields untouched).
 *  - status_json hands its text over in *out, which the caller releases exactly once with
 *    out->release(out).
 *  - Errors: CHORUS_E_INVALID_ARG (NULL out, struct_size smaller than the 1.0 struct),
 *    CHORUS_E_UNAVAILABLE (the plugin is stopping).
 */
#ifndef CHORUS_SERVICES_LICENSE_V1_H
#define CHORUS_SERVICES_LICENSE_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_LICENSE_SERVICE "chorus.license"
#define CHORUS_LICENSE_V1_MAJOR 1
#define CHORUS_LICENSE_V1_MINOR 0

/* The licence states. */
#define CHORUS_LICENSE_STATE_VALID 0   /* the server confirmed the licence at the last attempt */
#define CHORUS_LICENSE_STATE_GRACE 1   /* the server is unreachable; a cached valid answer is in grace */
#define CHORUS_LICENSE_STATE_INVALID 2 /* the server refused it, it expired, or the grace ran out */

/* License ids up to this many bytes; license_id below is NUL-terminated. */
#define CHORUS_LICENSE_ID_MAX 127

typedef struct chorus_license_status {
  uint32_t struct_size; /* the caller sets sizeof(chorus_license_status); the callee fills what fits */
  uint8_t valid;        /* 1 when state is VALID or GRACE: the agent may run */
  uint8_t reserved0[3];
  int32_t state;                  /* CHORUS_LICENSE_STATE_* */
  uint32_t reserved1;
  int64_t expires_at_unix_ms;     /* the licence's expiry as the server last stated it; 0 = unknown */
  int64_t grace_until_unix_ms;    /* in GRACE: when the grace period ends; otherwise 0 */
  int64_t validated_at_unix_ms;   /* when the server last confirmed the licence; 0 = never */
  char license_id[CHORUS_LICENSE_ID_MAX + 1]; /* the configured licence id, NUL-terminated */
} chorus_license_status;

typedef struct chorus_license_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Fills *out (see the size-prefix rule above) with the current state. */
  chorus_status (*status)(void *self, chorus_license_status *out);

  /* The same facts as one JSON object: valid, state ("valid"|"grace"|"invalid"), license_id,
   * expires_at, grace_until, validated_at (RFC 3339 UTC strings or null), features (array of
   * strings from the last valid answer), reason (why it is invalid or in grace, "" otherwise) and
   * breaker ("closed"|"open"|"half_open"). The caller releases *out with out->release(out). */
  chorus_status (*status_json)(void *self, chorus_buf *out, chorus_error *err);
} chorus_license_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_LICENSE_V1_H */

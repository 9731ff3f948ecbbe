/*
 * chorus/services/backbeat_v1.h - the `chorus.backbeat` service, major 1 (provided by the `backbeat`
 * plugin; docs/contract.md, Services).
 *
 * The backbeat plugin keeps the agent in step with the cluster's beat (BACKBEAT BeatFrames over NATS)
 * and tracks P2P operations against beat budgets, emitting BACKBEAT StatusClaims for them on every
 * beat. Other plugins (p2p, mdns, gossip, dht, election) use it OPTIONALLY: require it with
 *
 *     chorus::require(CHORUS_BACKBEAT_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL)
 *
 * and treat every error as "no beat synchronisation": operation tracking is telemetry, never a reason
 * to fail the operation itself.
 *
 * Rules (see chorus/plugin.h for the general ones):
 *  - The table is append-only; check slots added after 1.0 with CHORUS_HAS.
 *  - Every function is thread-safe and non-blocking (it never waits for the network), except
 *    execute_with_beat_budget, which runs the caller's function on the caller's thread.
 *  - Strings are UTF-8 with explicit lengths; they are copied, never retained.
 *  - Errors: CHORUS_E_INVALID_ARG (malformed id, type, phase, budget or data JSON),
 *    CHORUS_E_EXISTS (an operation with this id is still active), CHORUS_E_NOT_FOUND (no active
 *    operation with this id: unknown, already completed or failed), CHORUS_E_UNAVAILABLE (BACKBEAT is
 *    disabled, or the plugin is stopping), CHORUS_E_TIMEOUT (execute_with_beat_budget overran its
 *    budget). chorus_error.message carries the detail ("operation X not found", ...).
 */
#ifndef CHORUS_SERVICES_BACKBEAT_V1_H
#define CHORUS_SERVICES_BACKBEAT_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_BACKBEAT_SERVICE "chorus.backbeat"
#define CHORUS_BACKBEAT_V1_MAJOR 1
#define CHORUS_BACKBEAT_V1_MINOR 0

/* Operation phases (CHORUS: PhaseStarted ... PhaseFailed; docs/protocols.md, BACKBEAT operations).
 * update_phase accepts the four non-terminal ones; COMPLETED and FAILED are reached through
 * complete_operation / fail_operation. */
#define CHORUS_BACKBEAT_PHASE_STARTED 0
#define CHORUS_BACKBEAT_PHASE_CONNECTING 1
#define CHORUS_BACKBEAT_PHASE_NEGOTIATING 2
#define CHORUS_BACKBEAT_PHASE_EXECUTING 3
#define CHORUS_BACKBEAT_PHASE_COMPLETED 4
#define CHORUS_BACKBEAT_PHASE_FAILED 5

/* Operation types: the four CHORUS defines (docs/protocols.md, BACKBEAT operations). Anything else is
 * CHORUS_E_INVALID_ARG. */
#define CHORUS_BACKBEAT_OP_ELECTION "election"
#define CHORUS_BACKBEAT_OP_DHT_STORE "dht_store"
#define CHORUS_BACKBEAT_OP_PUBSUB_SYNC "pubsub_sync"
#define CHORUS_BACKBEAT_OP_PEER_DISCOVERY "peer_discovery"

/* Operation ids become StatusClaim task_ids: 1..128 bytes of [A-Za-z0-9_:-]. */
#define CHORUS_BACKBEAT_OP_ID_MAX 128
/* estimated_beats: 1..1000 (StatusClaim beats_left is bounded by 1000). */
#define CHORUS_BACKBEAT_MAX_BEATS 1000

/* Tempo drift classification (measured beat rate against the announced tempo). */
#define CHORUS_BACKBEAT_DRIFT_UNKNOWN 0    /* fewer than 3 beats observed */
#define CHORUS_BACKBEAT_DRIFT_ACCEPTABLE 1 /* within 1 % (the BACKBEAT requirement) */
#define CHORUS_BACKBEAT_DRIFT_MODERATE 2   /* within 5 % */
#define CHORUS_BACKBEAT_DRIFT_SEVERE 3     /* more than 5 % off */

/* A snapshot of the integration's health; the same facts as get_health's JSON minus the strings. */
typedef struct chorus_backbeat_status {
  uint32_t struct_size; /* the caller sets sizeof(chorus_backbeat_status); the callee fills what fits */
  uint8_t enabled;      /* CHORUS_BACKBEAT_ENABLED / config `enabled` */
  uint8_t started;      /* the plugin is running */
  uint8_t connected;    /* the NATS connection is up */
  uint8_t local_degradation; /* no pulse: beats are derived locally */
  int64_t current_beat;      /* latest beat index */
  double current_tempo_bpm;  /* tempo announced by the pulse (or configured) */
  double measured_bpm;       /* tempo measured from beat arrival; 0 = not enough beats yet */
  int32_t tempo_drift;       /* CHORUS_BACKBEAT_DRIFT_* */
  uint32_t reserved;
  uint64_t reconnect_count;   /* NATS reconnections since start */
  uint64_t active_operations; /* started and neither completed nor failed */
} chorus_backbeat_status;

/* The function run by execute_with_beat_budget. Return CHORUS_OK or an error (with err filled). */
typedef chorus_status (*chorus_backbeat_budget_fn)(void *arg, chorus_error *err);

typedef struct chorus_backbeat_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Registers a P2P operation (CHORUS: StartP2POperation). op_type is one of CHORUS_BACKBEAT_OP_*;
   * estimated_beats 1..1000 is the beat budget; data_json is optional operation data (a JSON value,
   * NULL/0 for none) reported in the first StatusClaim's metadata. The start beat is the current
   * beat. Emits a StatusClaim (state executing, beats_left = estimated_beats, progress 0). */
  chorus_status (*start_operation)(void *self, const char *op_id, size_t op_id_len, const char *op_type,
                                   size_t op_type_len, uint32_t estimated_beats, const char *data_json,
                                   size_t data_json_len, chorus_error *err);

  /* Moves an active operation to a non-terminal phase (STARTED..EXECUTING) with the current peer
   * count (CHORUS: UpdateP2POperationPhase). Emits an updated StatusClaim. */
  chorus_status (*update_phase)(void *self, const char *op_id, size_t op_id_len, int32_t phase,
                                uint32_t peer_count, chorus_error *err);

  /* Completes an active operation (StatusClaim state completed, progress 1.0, beats_left 0). */
  chorus_status (*complete_operation)(void *self, const char *op_id, size_t op_id_len, uint32_t peer_count,
                                      chorus_error *err);

  /* Fails an active operation (StatusClaim state failed, progress 0.0, notes carry the reason). */
  chorus_status (*fail_operation)(void *self, const char *op_id, size_t op_id_len, const char *reason,
                                  size_t reason_len, chorus_error *err);

  /* Runs fn(arg, err) on the calling thread against a budget of `beats` beats (1..1000) of the
   * current tempo. Returns fn's status when it finished within the budget, CHORUS_E_TIMEOUT when it
   * overran (fn's own result is then reported in the message only). When BACKBEAT is disabled, fn
   * simply runs and its status is returned (CHORUS's fallback). */
  chorus_status (*execute_with_beat_budget)(void *self, uint32_t beats, chorus_backbeat_budget_fn fn, void *arg,
                                            chorus_error *err);

  /* CHORUS's GetHealth as one JSON object: enabled, started, connected, current_beat,
   * current_tempo, measured_bpm, tempo_drift ("unknown"|"acceptable"|"moderate"|"severe"),
   * reconnect_count, active_operations, local_degradation, errors (recent error strings), node_id.
   * The caller releases *out with out->release(out). */
  chorus_status (*get_health)(void *self, chorus_buf *out, chorus_error *err);

  /* The same as a struct, without allocation. */
  chorus_status (*get_status)(void *self, chorus_backbeat_status *out);
} chorus_backbeat_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_BACKBEAT_V1_H */

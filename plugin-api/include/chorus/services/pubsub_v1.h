/*
 * chorus/services/pubsub_v1.h - the `chorus.pubsub` service, major 1 (provided by the `gossip` plugin;
 * docs/contract.md, Services).
 *
 * Topic-based publish/subscribe over libp2p GossipSub v1.1 (wire-compatible with js-libp2p's and
 * go-libp2p's gossipsub), and the CHORUS layer on top of it: the JSON envelope
 * {"type","from","timestamp","data","hop_count"} that CHORUS agents exchange on their topics
 * (docs/protocols.md, PubSub).
 *
 * Threading and re-entrancy (as chorus.p2p.host):
 *  - Every function is thread-safe and never blocks on the network.
 *  - Callbacks (message handlers, validators) run on the gossip plugin's own thread, one at a time.
 *    They must not block; they may call any function of this table, including unsubscribe of their
 *    own subscription.
 *  - After unsubscribe (or remove_validator) returns, its function is not running and will not run
 *    again; calling it from inside that function is allowed (it then returns after the current call).
 *  - Pointers handed to a callback (the message and everything in it) are valid for that call only.
 *    Strings and buffers passed in are copied before the call returns.
 *
 * Delivery: a handler sees each message of its topic at most once (duplicates arriving over several
 * mesh links are dropped before delivery), in the order this node accepted them, after every
 * validator of the topic accepted it. A node's own publications are delivered to its own handlers
 * too (`local` is 1), so one handler serves a room.
 *
 * Messages are signed by default (StrictSign): `from` is the author's peer id and `seqno` its 8-byte
 * sequence number; a message id is from + seqno. With the plugin's `signature_policy: strict_no_sign`
 * both are absent and the id is the SHA-256 of the data.
 *
 * Errors: CHORUS_E_INVALID_ARG (empty or over-long topic, malformed JSON data), CHORUS_E_TOO_LARGE
 * (the message exceeds max_message_bytes), CHORUS_E_UNAVAILABLE (the plugin is stopping),
 * CHORUS_E_NOT_FOUND (unknown subscription or validator id), CHORUS_E_BUSY (too many topics or
 * subscriptions). chorus_error.message says which and why.
 */
#ifndef CHORUS_SERVICES_PUBSUB_V1_H
#define CHORUS_SERVICES_PUBSUB_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_PUBSUB_SERVICE "chorus.pubsub"
#define CHORUS_PUBSUB_V1_MAJOR 1
#define CHORUS_PUBSUB_V1_MINOR 0

/* Longest topic accepted, in bytes. */
#define CHORUS_PUBSUB_TOPIC_MAX 1024

/* A validator's verdict (the libp2p pubsub validation results). */
#define CHORUS_PUBSUB_ACCEPT 0 /* deliver and forward */
#define CHORUS_PUBSUB_REJECT 1 /* invalid: drop, and count against the peer that sent it */
#define CHORUS_PUBSUB_IGNORE 2 /* drop without penalty (e.g. stale, not for us) */

/* The static CHORUS topics every agent joins at start (docs/protocols.md, PubSub). */
#define CHORUS_PUBSUB_TOPIC_COORDINATION "CHORUS/coordination/v1"
#define CHORUS_PUBSUB_TOPIC_HMMM "hmmm/meta-discussion/v1"
#define CHORUS_PUBSUB_TOPIC_CONTEXT_FEEDBACK "CHORUS/context-feedback/v1"

/* One message, as handed to handlers and validators. */
typedef struct chorus_pubsub_message {
  uint32_t struct_size;
  uint32_t local;              /* 1: published by this node */
  const char *topic;           /* NUL-terminated */
  const uint8_t *data;         /* the payload as published (for envelope messages, the envelope JSON) */
  size_t data_len;
  const uint8_t *from;         /* the author's binary peer id; NULL under strict_no_sign */
  size_t from_len;
  const char *from_text;       /* the same in base58btc; "" under strict_no_sign */
  const uint8_t *seqno;        /* 8 bytes, big-endian; NULL under strict_no_sign */
  size_t seqno_len;
  const uint8_t *message_id;   /* the id used for duplicate suppression and gossip */
  size_t message_id_len;
  const char *received_from;   /* base58btc peer id of the neighbour that sent it (own id if local) */
  const char *type;            /* the envelope's "type" when data is a CHORUS envelope, else "" */
} chorus_pubsub_message;

typedef void (*chorus_pubsub_message_fn)(void *arg, const chorus_pubsub_message *msg);
/* Returns CHORUS_PUBSUB_ACCEPT, _REJECT or _IGNORE; anything else counts as IGNORE. */
typedef int (*chorus_pubsub_validator_fn)(void *arg, const chorus_pubsub_message *msg);

typedef struct chorus_pubsub_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Joins the topic (idempotent: a topic is joined once however many subscriptions it has) and
   * hands every delivered message of it to fn; *out_sub names the subscription. */
  chorus_status (*subscribe)(void *self, const char *topic, chorus_pubsub_message_fn fn, void *arg,
                             uint64_t *out_sub, chorus_error *err);
  /* Ends a subscription. The topic stays joined while another subscription or a join holds it. */
  chorus_status (*unsubscribe)(void *self, uint64_t sub);

  /* Joins / leaves a topic without a handler (task, project and issue rooms); both idempotent. Leave
   * undoes a join; it never ends subscriptions. */
  chorus_status (*join)(void *self, const char *topic, chorus_error *err);
  chorus_status (*leave)(void *self, const char *topic, chorus_error *err);

  /* Publishes a CHORUS envelope {"type","from","timestamp","data"} built here: `from` is this agent's
   * id, `timestamp` now (RFC 3339), `data` the JSON value data_json (data_len bytes; NULL/0 = {}).
   * Joining the topic is not needed. The message id goes to id_out (cap >= 64) when not NULL. */
  chorus_status (*publish)(void *self, const char *topic, const char *type, const char *data_json,
                           size_t data_len, uint8_t *id_out, size_t id_cap, size_t *id_len, chorus_error *err);
  /* Publishes the bytes as they are, without the envelope (HMMM per-issue rooms). */
  chorus_status (*publish_raw)(void *self, const char *topic, const uint8_t *data, size_t len, uint8_t *id_out,
                               size_t id_cap, size_t *id_len, chorus_error *err);

  /* Adds a validator for the topic: every message of it, received or published, passes every
   * validator before delivery; REJECT counts against the sending peer's score. */
  chorus_status (*add_validator)(void *self, const char *topic, chorus_pubsub_validator_fn fn, void *arg,
                                 uint64_t *out_id, chorus_error *err);
  chorus_status (*remove_validator)(void *self, uint64_t id);

  /* [{"topic","subscribed","peers","mesh_peers"}] - what GET /api/v1/pubsub/topics answers. The caller
   * releases *out with out->release(out). This and peers_json wait for the gossip thread: never call
   * them while holding a lock that one of your message handlers or validators also takes. */
  chorus_status (*topics_json)(void *self, chorus_buf *out, chorus_error *err);
  /* [{"peer_id","protocol","score","topics":[...],"mesh":[...]}] for the gossip peers. */
  chorus_status (*peers_json)(void *self, chorus_buf *out, chorus_error *err);
} chorus_pubsub_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_PUBSUB_V1_H */

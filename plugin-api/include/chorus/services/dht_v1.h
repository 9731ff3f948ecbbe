/*
 * chorus/services/dht_v1.h - the `chorus.dht` service, major 1 (provided by the `dht` plugin;
 * docs/contract.md, Services).
 *
 * A Kademlia distributed hash table over libp2p (`<prefix>/kad/1.0.0`, wire-compatible with go's and
 * js's kad-dht), and on top of it CHORUS's role-encrypted content store: content encrypted to a
 * role's recipients in the age v1 format, addressed by its SHA-256, announced through provider
 * records (docs/protocols.md, DHT).
 *
 * Keys are byte strings. Record keys name a namespace: `/pk/<binary peer id>` (a public key) or
 * `/chorus/<anything>` (a CHORUS record); keys of other namespaces are refused with
 * CHORUS_E_INVALID_ARG. Provider keys are any bytes (stock libp2p nodes use a CID's multihash).
 *
 * Threading and re-entrancy (as chorus.p2p.host):
 *  - Every function is thread-safe and never blocks on the network: operations that need the network
 *    take a completion callback and return at once.
 *  - A completion runs exactly once, on the dht plugin's own thread, when the function that started
 *    the operation returned CHORUS_OK; when it returned anything else the completion never runs.
 *    Completions must not block; they may call any function of this table.
 *  - When the plugin stops, operations still running complete with CHORUS_E_CANCELLED.
 *  - Pointers handed to a completion (data, err) are valid for that call only. Keys, values and
 *    strings passed in are copied before the call returns.
 *
 * Errors: CHORUS_E_INVALID_ARG (empty, over-long or unknown-namespace key; a record that fails its
 * namespace's validation), CHORUS_E_TOO_LARGE (a value over max_value_bytes), CHORUS_E_NOT_FOUND (no
 * value, no provider, no such peer), CHORUS_E_TIMEOUT (the operation's deadline passed),
 * CHORUS_E_UNAVAILABLE (no peers to ask, or the plugin is stopping), CHORUS_E_DHT_NOT_AUTHORISED (this
 * node holds no key that may decrypt the content), CHORUS_E_DHT_INTEGRITY (retrieved content does not
 * match its hash, size or metadata). chorus_error.message says which and why.
 */
#ifndef CHORUS_SERVICES_DHT_V1_H
#define CHORUS_SERVICES_DHT_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_DHT_SERVICE "chorus.dht"
#define CHORUS_DHT_V1_MAJOR 1
#define CHORUS_DHT_V1_MINOR 0

/* Longest key accepted, in bytes. */
#define CHORUS_DHT_KEY_MAX 1024

/* Service-specific status codes. */
#define CHORUS_E_DHT_NOT_AUTHORISED (CHORUS_E_SERVICE_BASE + 1) /* no role key here may decrypt it */
#define CHORUS_E_DHT_INTEGRITY (CHORUS_E_SERVICE_BASE + 2)      /* content fails its hash/size/metadata */

/* Completion of an asynchronous operation. status is CHORUS_OK or an error (err says why; err is
 * NULL on success). What data holds on success is said per function; it is NULL/0 where nothing is
 * returned. */
typedef void (*chorus_dht_done_fn)(void *arg, chorus_status status, const chorus_error *err, const uint8_t *data,
                                   size_t len);

typedef struct chorus_dht_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Stores the record locally and on the closest peers (the plugin's replication target). Completes
   * once enough peers acknowledged it (or, with no peers, once it is durable locally). data: JSON
   * {"replicas": n}, the peers that acknowledged a copy (0: only this node holds it), also with
   * CHORUS_E_UNAVAILABLE (stored locally, fewer peers than the target took it); older versions of
   * the plugin gave NULL. */
  chorus_status (*put_value)(void *self, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                             uint32_t timeout_ms, chorus_dht_done_fn done, void *arg, chorus_error *err);
  /* Looks the record up (local store first, then the network) and selects the best valid value.
   * data: the value bytes. */
  chorus_status (*get_value)(void *self, const uint8_t *key, size_t key_len, uint32_t timeout_ms,
                             chorus_dht_done_fn done, void *arg, chorus_error *err);

  /* Announces this node as a provider of key to the closest peers, and re-announces it until
   * stop_providing or the plugin stops. data: NULL. */
  chorus_status (*provide)(void *self, const uint8_t *key, size_t key_len, uint32_t timeout_ms,
                           chorus_dht_done_fn done, void *arg, chorus_error *err);
  chorus_status (*stop_providing)(void *self, const uint8_t *key, size_t key_len);
  /* Every provider known for key, up to max_providers (0: no limit). data: JSON
   * [{"peer_id","addrs":[...]}]. */
  chorus_status (*find_providers)(void *self, const uint8_t *key, size_t key_len, uint32_t max_providers,
                                  uint32_t timeout_ms, chorus_dht_done_fn done, void *arg, chorus_error *err);
  /* The addresses of a peer (binary peer id). data: JSON {"peer_id","addrs":[...]}. */
  chorus_status (*find_peer)(void *self, const uint8_t *peer, size_t peer_len, uint32_t timeout_ms,
                             chorus_dht_done_fn done, void *arg, chorus_error *err);

  /* Role-encrypted content (CHORUS's EncryptedDHTStorage). store encrypts bytes to the recipients of
   * role (and the admin role), stores the ciphertext under key, announces this node as its provider
   * and completes with data = the content's SHA-256 as 64 lowercase hex characters. retrieve fetches
   * and checks it, then decrypts it with a role key this node holds: data = the plaintext. */
  chorus_status (*store)(void *self, const char *key, const char *role, const uint8_t *content, size_t len,
                         uint32_t timeout_ms, chorus_dht_done_fn done, void *arg, chorus_error *err);
  chorus_status (*retrieve)(void *self, const char *key, uint32_t timeout_ms, chorus_dht_done_fn done, void *arg,
                            chorus_error *err);

  /* {"mode","peers","buckets":[...]} - what GET /api/v1/dht/routing answers. The caller releases *out
   * with out->release(out). */
  chorus_status (*routing_json)(void *self, chorus_buf *out, chorus_error *err);
} chorus_dht_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_DHT_V1_H */

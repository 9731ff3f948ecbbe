/*
 * chorus/services/discovery_v1.h - the `chorus.discovery` service, major 1 (provided by the `mdns`
 * plugin; docs/contract.md, Services).
 *
 * Peer-found events from zero-configuration discovery: a peer appeared on the local network (or its
 * addresses changed), or it went away (goodbye packet or expired TTL). Discovery does not mean
 * connected: the mdns plugin dials discovered peers itself (config auto_connect), and consumers that
 * need a connection use chorus.p2p.host.
 *
 * Threading and re-entrancy:
 *  - Every function is thread-safe and never blocks on the network.
 *  - Callbacks run on the discovery plugin's own thread, one at a time, in event order. They must not
 *    block; they may call any function of this table (subscribe/unsubscribe included).
 *  - subscribe first reports every peer discovered so far as FOUND events, on the caller's thread,
 *    before it returns.
 *  - After unsubscribe returns, fn is not running and will not run again for that subscription.
 *    Calling it from inside fn is allowed.
 *
 * Peers are named as in chorus.p2p.host: binary multihash (peer, peer_len) and base58btc text.
 * Multiaddrs are text, TCP only, without /p2p/, best first (the packet's source address first,
 * loopback last).
 */
#ifndef CHORUS_SERVICES_DISCOVERY_V1_H
#define CHORUS_SERVICES_DISCOVERY_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_DISCOVERY_SERVICE "chorus.discovery"
#define CHORUS_DISCOVERY_V1_MAJOR 1
#define CHORUS_DISCOVERY_V1_MINOR 0

/* chorus_discovery_event.type */
#define CHORUS_DISCOVERY_PEER_FOUND 1   /* new peer, or a known peer's address set changed */
#define CHORUS_DISCOVERY_PEER_LOST 2    /* goodbye (TTL 0) received, or the records expired */

typedef struct chorus_discovery_event {
  uint32_t struct_size;
  uint32_t type;          /* CHORUS_DISCOVERY_PEER_* */
  const uint8_t *peer;    /* binary peer id */
  size_t peer_len;
  const char *peer_text;  /* base58btc, NUL-terminated */
  const char *const *addrs; /* addr_count NUL-terminated multiaddr texts (FOUND; LOST: the last known) */
  size_t addr_count;
  const char *source;     /* the mechanism, "mdns" */
  uint32_t ttl_s;         /* FOUND: the records' TTL; LOST: 0 */
  uint32_t reserved;
} chorus_discovery_event;

typedef void (*chorus_discovery_fn)(void *arg, const chorus_discovery_event *event);

typedef struct chorus_discovery_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* fn runs for every event from now on; *out_sub names the subscription. */
  chorus_status (*subscribe)(void *self, chorus_discovery_fn fn, void *arg, uint64_t *out_sub);
  chorus_status (*unsubscribe)(void *self, uint64_t sub);

  /* The discovered peers as one JSON array:
   * [{"peer_id","addrs":[...],"instance","ttl_remaining_ms","first_seen_ms_ago","last_seen_ms_ago",
   *   "connected"}] - what GET /mdns/peers answers. The caller releases *out with out->release(out). */
  chorus_status (*list_peers_json)(void *self, chorus_buf *out, chorus_error *err);
} chorus_discovery_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_DISCOVERY_V1_H */

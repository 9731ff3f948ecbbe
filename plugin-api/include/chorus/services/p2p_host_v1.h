/*
 * chorus/services/p2p_host_v1.h - the `chorus.p2p.host` service, major 1 (provided by the `p2p` plugin;
 * docs/contract.md, Services).
 *
 * A libp2p host: TCP + multistream-select + Noise + yamux, identify and ping, wire-compatible with
 * js-libp2p and go-libp2p. Other plugins (mdns, gossip, dht, ...) use it to connect to peers, open
 * streams for their protocols and accept inbound streams.
 *
 * Threading and re-entrancy:
 *  - Every function is thread-safe and never blocks on the network. Results that need the network
 *    (connect, open_stream) arrive through callbacks.
 *  - Callbacks (stream handlers, connect results, protocol accept, events) run on the p2p plugin's
 *    network thread. They must not block; they may call any function of this table, including
 *    write/close on the stream they are handling.
 *  - A stream is named by a 64-bit id that is never reused. Calls with an id that is gone return
 *    CHORUS_E_NOT_FOUND; they never touch freed memory.
 *
 * Stream handlers and back-pressure:
 *  - Reading: on_data hands over bytes that are valid only during the call (they point into the
 *    decrypted frame: no copy). The bytes count as consumed when on_data returns, and the yamux
 *    receive window reopens accordingly. A handler that cannot keep up calls set_read_paused(1):
 *    the remote then stalls on its window, which is the protocol's own back-pressure.
 *  - Writing: write copies the bytes into the stream's send queue and returns at once. When the queue
 *    holds more than the high-water mark (default 1 MiB per stream) write returns CHORUS_E_BUSY and
 *    takes nothing; on_writable fires once the queue has drained below half of it.
 *  - Exactly one on_closed ends every stream that was handed to a handler; after it the handler's arg
 *    is never used again, so it is the place to free it.
 *  - Pointers handed to a callback (chorus_p2p_stream_info, events) are valid for that call only,
 *    even if the callback resets the stream. Arrays and strings passed in (protocols, addrs) are
 *    copied before the call returns.
 *
 * Limits (config `limits`, defaults in the plugin's README): connections in total (50) and per
 * remote IP (3, loopback exempt), streams per connection (1000; opens beyond the peer's 256
 * unacknowledged ones wait for its acknowledgements), dial timeout (30 s). A TCP address that
 * refused or timed out is not dialled again for a back-off period (5 s, doubling up to 5 min).
 *
 * Peers are named by their peer id: the binary multihash (`peer`, `peer_len`) in hot paths, and the
 * base58btc text (`12D3KooW...`, or a CIDv1 `bafz...`, accepted on input) where a human may type it.
 * Multiaddrs cross the boundary as text (`/ip4/127.0.0.1/tcp/9000/p2p/12D3KooW...`).
 *
 * Errors: CHORUS_E_INVALID_ARG (malformed peer id, multiaddr or protocol id), CHORUS_E_NOT_FOUND
 * (unknown stream or peer), CHORUS_E_BUSY (send queue full / connection limits), CHORUS_E_UNAVAILABLE
 * (the plugin is stopping), CHORUS_E_EXISTS (protocol already handled), CHORUS_E_TIMEOUT,
 * CHORUS_E_PROTOCOL (the peer misbehaved or refused the protocol: `na`), CHORUS_E_IO (connection
 * failed or was lost). chorus_error.message says which and why.
 */
#ifndef CHORUS_SERVICES_P2P_HOST_V1_H
#define CHORUS_SERVICES_P2P_HOST_V1_H

#include <chorus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_P2P_HOST_SERVICE "chorus.p2p.host"
#define CHORUS_P2P_HOST_V1_MAJOR 1
#define CHORUS_P2P_HOST_V1_MINOR 0

/* Longest protocol id accepted (the multistream-select line limit, minus the newline). */
#define CHORUS_P2P_PROTOCOL_MAX 1023

/* chorus_p2p_event.type */
#define CHORUS_P2P_EVENT_CONNECTED 1    /* first connection to a peer is up (after Noise + yamux) */
#define CHORUS_P2P_EVENT_DISCONNECTED 2 /* last connection to a peer is gone */
#define CHORUS_P2P_EVENT_IDENTIFIED 3   /* identify finished: protocols / agent / addrs are known */

/* Direction of a connection or stream. */
#define CHORUS_P2P_DIR_INBOUND 0
#define CHORUS_P2P_DIR_OUTBOUND 1

/* The callbacks of one stream. The handler struct is copied by the p2p plugin; `arg` is the
 * handler's own state. */
typedef struct chorus_p2p_stream_handler {
  uint32_t struct_size;
  uint32_t reserved;
  void *arg;
  /* Bytes from the remote; valid only during the call. */
  void (*on_data)(void *arg, uint64_t stream, const uint8_t *data, size_t len);
  /* The remote closed its side (no more on_data). We may still write, then close. NULL = ignore. */
  void (*on_eof)(void *arg, uint64_t stream);
  /* The send queue drained below half the high-water mark after a write returned CHORUS_E_BUSY.
   * NULL = never told. */
  void (*on_writable)(void *arg, uint64_t stream);
  /* The stream is over: both sides closed (status CHORUS_OK), it was reset by either side, the
   * connection died or the plugin is stopping (an error status; reason says which, NUL-terminated).
   * Always the last call for this stream. */
  void (*on_closed)(void *arg, uint64_t stream, chorus_status status, const char *reason);
} chorus_p2p_stream_handler;

/* What a new stream is: passed to open_stream's result and to a protocol's accept function. */
typedef struct chorus_p2p_stream_info {
  uint32_t struct_size;
  uint32_t direction;        /* CHORUS_P2P_DIR_* */
  uint64_t stream;           /* the id */
  uint64_t connection;       /* the connection's id (several streams share one) */
  const uint8_t *peer;       /* the remote's peer id (binary multihash) */
  size_t peer_len;
  const char *peer_text;     /* the same in base58btc, NUL-terminated */
  const char *protocol;      /* the negotiated protocol id, NUL-terminated */
  const char *remote_addr;   /* the connection's remote multiaddr, NUL-terminated */
} chorus_p2p_stream_info;

/* open_stream's result. On success `info` describes the stream, which already uses the handler
 * given to open_stream (data may follow at once). On failure info is NULL and err says why. */
typedef void (*chorus_p2p_open_fn)(void *arg, chorus_status status, const chorus_p2p_stream_info *info,
                                   const chorus_error *err);

/* A protocol's accept function: an inbound stream negotiated this protocol. Fill *handler (its
 * struct_size is preset) and return CHORUS_OK to take the stream, or anything else to reset it. */
typedef chorus_status (*chorus_p2p_accept_fn)(void *arg, const chorus_p2p_stream_info *info,
                                              chorus_p2p_stream_handler *handler);

/* connect's result: the peer we reached (on success) or why not. */
typedef void (*chorus_p2p_connect_fn)(void *arg, chorus_status status, const char *peer_text,
                                      const chorus_error *err);

typedef struct chorus_p2p_event {
  uint32_t struct_size;
  uint32_t type;         /* CHORUS_P2P_EVENT_* */
  const uint8_t *peer;   /* binary peer id */
  size_t peer_len;
  const char *peer_text; /* base58btc, NUL-terminated */
  const char *addr;      /* the connection's remote multiaddr (CONNECTED/DISCONNECTED), else "" */
  uint32_t direction;    /* of that connection */
  uint32_t reserved;
  /* IDENTIFIED only (else NULL): the peer's identify facts as one JSON object
   * {"agent_version","protocol_version","protocols":[...],"listen_addrs":[...]}. */
  const char *identify_json;
} chorus_p2p_event;

typedef void (*chorus_p2p_event_fn)(void *arg, const chorus_p2p_event *event);

typedef struct chorus_p2p_host_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* ---- identity ---- */

  /* The local peer id: binary into peer (cap >= 64) and/or base58 text into text (cap >= 64, NUL-
   * terminated); either buffer may be NULL. Lengths through *peer_len / *text_len when non-NULL. */
  chorus_status (*local_peer_id)(void *self, uint8_t *peer, size_t peer_cap, size_t *peer_len, char *text,
                                 size_t text_cap, size_t *text_len);
  /* The local public key as a libp2p PublicKey protobuf (36 bytes for Ed25519) into out (cap >= 36). */
  chorus_status (*local_public_key)(void *self, uint8_t *out, size_t cap, size_t *len);
  /* Signs data with the node's identity key (Ed25519, 64-byte signature): for gossip message signing
   * and signed records. The key itself never leaves the p2p plugin. */
  chorus_status (*sign)(void *self, const uint8_t *data, size_t len, uint8_t sig[64]);
  /* {"peer_id","addrs":[...],"protocols":[...]}: what GET /p2p/id answers. */
  chorus_status (*get_info_json)(void *self, chorus_buf *out, chorus_error *err);

  /* ---- peers and connections ---- */

  /* Connects to a multiaddr (with or without /p2p/<id>; with it, the Noise identity must match) or to
   * a peer id whose addresses are in the address book. Already connected: done at once (still via
   * fn). timeout_ms 0 = the configured dial timeout. fn runs exactly once, unless this returns an
   * error. */
  chorus_status (*connect)(void *self, const char *target, size_t target_len, uint32_t timeout_ms,
                           chorus_p2p_connect_fn fn, void *arg, chorus_error *err);
  /* Closes every connection to the peer (its streams end with CHORUS_E_IO). */
  chorus_status (*disconnect)(void *self, const uint8_t *peer, size_t peer_len);
  /* One entry per connected peer:
   * [{"peer_id","addrs":[...],"direction","protocols":[...],"agent_version","connections"}] -
   * what GET /p2p/peers answers. */
  chorus_status (*list_peers_json)(void *self, chorus_buf *out, chorus_error *err);
  /* 1 if at least one connection to the peer is up, else 0. */
  int (*is_connected)(void *self, const uint8_t *peer, size_t peer_len);
  /* Adds addresses (multiaddr text, without /p2p/) for a peer to the address book for ttl_ms
   * (0 = until the peer is forgotten). Used by discovery (mdns, dht). */
  chorus_status (*add_addrs)(void *self, const uint8_t *peer, size_t peer_len, const char *const *addrs,
                             size_t count, uint64_t ttl_ms, chorus_error *err);
  /* The address book's addresses for a peer as a JSON array of multiaddr strings. */
  chorus_status (*peer_addrs_json)(void *self, const uint8_t *peer, size_t peer_len, chorus_buf *out);

  /* ---- streams ---- */

  /* Registers the accept function for inbound streams of a protocol id (e.g. "/meshsub/1.1.0").
   * The protocol is advertised in identify from now on. */
  chorus_status (*set_protocol_handler)(void *self, const char *protocol, chorus_p2p_accept_fn accept,
                                        void *arg, chorus_error *err);
  chorus_status (*remove_protocol_handler)(void *self, const char *protocol);

  /* Opens a stream to a connected peer (or connects first, from the address book) and negotiates
   * the first protocol of `protocols` (count entries, preference order) the remote accepts. The
   * handler is copied and used from the moment fn reports success; on failure the handler is never
   * called. fn runs exactly once, unless this returns an error. timeout_ms 0 = dial timeout. */
  chorus_status (*open_stream)(void *self, const uint8_t *peer, size_t peer_len, const char *const *protocols,
                               size_t count, const chorus_p2p_stream_handler *handler, uint32_t timeout_ms,
                               chorus_p2p_open_fn fn, void *arg, chorus_error *err);
  /* Queues bytes to send (copied). CHORUS_E_BUSY: the queue is above its high-water mark, nothing
   * was taken, wait for on_writable. */
  chorus_status (*write)(void *self, uint64_t stream, const uint8_t *data, size_t len);
  /* Half-closes our side after the queued bytes are sent (FIN). Reading goes on until on_eof. */
  chorus_status (*close_write)(void *self, uint64_t stream);
  /* Aborts the stream (RST); queued bytes are dropped. on_closed follows with CHORUS_E_CANCELLED. */
  chorus_status (*reset)(void *self, uint64_t stream);
  /* Stops (1) or resumes (0) on_data for the stream; while paused the remote is held by its window. */
  chorus_status (*set_read_paused)(void *self, uint64_t stream, int paused);

  /* ---- events ---- */

  /* fn runs for every CHORUS_P2P_EVENT_* from now on; *out_sub names the subscription. Connected
   * peers at the time of the call are reported as CONNECTED events first. */
  chorus_status (*subscribe)(void *self, chorus_p2p_event_fn fn, void *arg, uint64_t *out_sub);
  /* After this returns, fn is not running and will not run again for this subscription. Calling it
   * from inside fn is allowed (it then returns after fn's current call, from the same thread). */
  chorus_status (*unsubscribe)(void *self, uint64_t sub);

  /* ---- diagnostics ---- */

  /* Measures the round trip to a connected peer with /ipfs/ping/1.0.0; fn's status is the outcome and
   * rtt_us the round trip in microseconds. */
  chorus_status (*ping)(void *self, const uint8_t *peer, size_t peer_len, uint32_t timeout_ms,
                        void (*fn)(void *arg, chorus_status status, uint64_t rtt_us, const chorus_error *err),
                        void *arg, chorus_error *err);

  /* Converts a peer id's text (base58btc `12D3KooW...`/`Qm...` or CIDv1 `bafz...`) into its binary
   * multihash in out (cap >= 64; *out_len receives the length). CHORUS_E_INVALID_ARG if malformed. */
  chorus_status (*parse_peer_id)(void *self, const char *text, size_t text_len, uint8_t *out, size_t cap,
                                 size_t *out_len);
} chorus_p2p_host_v1;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_SERVICES_P2P_HOST_V1_H */

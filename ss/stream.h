/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams, in process: the engine context and the stream API.
 *
 * A stream is created by streamtype name; the policy decides everything about
 * its connections (endpoint, protocol, TLS trust store, retry, timeouts). The
 * code using it sees payloads and connection states only, through three
 * callbacks (any may be NULL) that can be swapped at run time.
 *
 * Rules the engine keeps (DESIGN.md, Secure Streams):
 * - States are numbered as upstream and follow upstream's transition table;
 *   an illegal transition is an engine bug: it asserts in debug builds (unless
 *   a test installed a hook, see ss_context_set_illegal_transition_hook()) and
 *   destroys the stream cleanly in release builds (NDEBUG).
 * - A stream that got CONNECTED gets DISCONNECTED before DESTROYING; a stream
 *   whose CREATING was never delivered gets no cleanup states at all.
 * - Callbacks are only ever called from the event loop or from the call that
 *   documents it (ss_stream_new() delivers CREATING, ss_stream_free() delivers
 *   the cleanup states). What a callback returns is acted on after it returned;
 *   nothing is freed under a callback. Calling ss_stream_free() on the stream
 *   from inside one of its own callbacks is the same as returning
 *   SS_DESTROY_ME.
 * - DISCONNECT_ME returned from a state callback while the stream has no
 *   connection cancels any connection attempt or pending retry: the stream
 *   goes idle.
 *
 * Retry (per streamtype, policy "retry" entry): after a failed connection
 * attempt (UNREACHABLE) or a failed transaction (a drop before the response
 * completed, HTTP 503/429, a validity hang-up) the stream waits
 * backoff[min(n, n_backoff - 1)] ms plus an additive jitter of up to jitterpc
 * percent, n counting the consecutive failures; after `conceal` retries the
 * next failure gives ALL_RETRIES_FAILED (where the transition table allows it)
 * and the stream goes idle. A streamtype without a retry entry uses 3000 ms,
 * 30% jitter and conceal 3. ss_stream_client_connect() resets n; an HTTP
 * response other than 503/429 resets it (for h1 a response is the proof of a
 * working connection; other protocols reset when connected).
 *
 * Reconnection: nailed_up streams connect at creation and reconnect after
 * every drop (paced by the backoff table); opportunistic streams never
 * reconnect by themselves; others reconnect after a drop only when the drop
 * interrupted a transaction or ss_stream_request_tx() asked for another one.
 *
 * HTTP/1.1 (protocol h1): one transaction per stream connection. The request is
 * http_method (GET by default) on "/" + http_url, both endpoint and url
 * ${metadata}-expanded; metadata entries with a header name are sent as
 * request headers when they have a value, and response headers with such a
 * name are stored back into the metadata. POST, PUT and PATCH send a body
 * pulled from the tx callback: with Content-Length when
 * ss_stream_request_tx_len() gave the length, else chunked. The tx callback is
 * called while the connection is writable until it sets SS_FLAG_EOM or returns
 * SS_TX_DONT_SEND (then again after the next ss_stream_request_tx()). The
 * response body arrives through rx in pieces, SS_FLAG_SOM on the first and
 * SS_FLAG_EOM on the last (no rx at all for an empty body). Then the status
 * decides: http_expect (default: any 2xx) gives QOS_ACK_REMOTE, anything else
 * QOS_NACK_REMOTE, the ack being the HTTP status; an http_resp_map entry for
 * the status is delivered as a state of its own (its value) first. Redirects
 * (301, 302, 303, 307, 308) are followed inside the connection, without state
 * changes, up to SS_H1_REDIRECTS_MAX hops, when allow_redirects is set and
 * http_fail_redirect is not; otherwise the 3xx is an ordinary response.
 * Validity: svalidhup hangs up a connection that received nothing for that
 * many seconds; svalidping is a no-op for h1 (there is no h1 ping: the
 * response itself is the proof of life).
 *
 * WebSocket (protocol ws, ws-client.c has the details): a connection is one
 * Upgrade and then messages both ways; CONNECTED comes after the 101 (a
 * refused upgrade is UNREACHABLE with SS_ACK_HANDSHAKE). Each message arrives
 * as rx pieces from SS_FLAG_SOM to SS_FLAG_EOM; one request_tx sends one
 * message, pulled from tx until SS_FLAG_EOM (one frame per call, so it may go
 * fragmented). DISCONNECTED carries the close code as its ack (1006: the
 * connection dropped without a CLOSE). svalidping sends a PING.
 *
 * MQTT (protocol mqtt, mqtt-client.c has the details): CONNECTED after the
 * CONNACK, the SUBACK of mqtt_subscribe and a QoS 1 birth's PUBACK (a refused
 * CONNECT is UNREACHABLE with SS_ACK_HANDSHAKE and the return code above
 * SS_ACK_MQTT_CONNACK_SHIFT). Each PUBLISH received is rx from SS_FLAG_SOM to
 * SS_FLAG_EOM (metadata "topic", when declared, names its topic); one
 * request_tx publishes one message to mqtt_topic; at QoS 1 its PUBACK gives
 * QOS_ACK_REMOTE, and unacknowledged messages are sent again on the next
 * connection. svalidping sends a PINGREQ.
 *
 * Keep-alive (h1): below the streams, the context keeps idle connections for
 * reuse. When a response ended cleanly (complete, framed by Content-Length or
 * chunked or empty by its status, not close-delimited, no "Connection: close",
 * the request fully sent, no byte after the response) the connection is
 * parked instead of closed, keyed by host, port, tls, trust store and unix
 * path; the next connection of any stream to the same key takes it. The
 * stream's states do not change: on a reused connection it still gets
 * CONNECTING and then CONNECTED (both from the same event-loop callback, no
 * connect in between), and DISCONNECTED after its transaction, so the
 * transition table and the "CONNECTED before DISCONNECTED" rule hold as with a
 * new connection. A reused connection that turns out dead (EOF or reset before
 * any byte of the response) is replaced once by a new connection, without
 * state changes, when the method is GET or HEAD; a request with a body is
 * never repeated (the usual failure and retry apply). Bounds:
 * SS_POOL_PER_SERVER idle connections per key, SS_POOL_TOTAL in all (the least
 * recently parked is closed first), each idle for at most SS_POOL_IDLE_MS (or
 * a second less than the server's "Keep-Alive: timeout=N"). Idle connections
 * of a trust store are closed when its last stream goes. Redirects always
 * open a new connection.
 *
 * h2: streams to the same server share one connection, each transaction an
 * h2 stream of it (at most 100 per connection, fewer when the server says so;
 * more open another connection). Streams still see CONNECTING, CONNECTED and
 * DISCONNECTED around each transaction. Without streams a connection idles
 * for the pool's idle time (0 per_server or total: closed at once); it goes
 * with its trust store's last stream, and with the idle ones on a drop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "policy.h"
#include "sul.h"
#include "util.h"

typedef struct SsContext SsContext;
typedef struct SsStream SsStream;

/* Connection states, upstream numbering (also the SS proxy wire values). */
typedef enum SsState {
        SS_STATE_CREATING = 1,
        SS_STATE_DISCONNECTED = 2,
        SS_STATE_UNREACHABLE = 3,
        SS_STATE_AUTH_FAILED = 4,
        SS_STATE_CONNECTED = 5,
        SS_STATE_CONNECTING = 6,
        SS_STATE_DESTROYING = 7,
        SS_STATE_POLL = 8,
        SS_STATE_ALL_RETRIES_FAILED = 9,
        SS_STATE_QOS_ACK_REMOTE = 10,
        SS_STATE_QOS_NACK_REMOTE = 11,
        SS_STATE_QOS_ACK_LOCAL = 12,
        SS_STATE_QOS_NACK_LOCAL = 13,
        SS_STATE_TIMEOUT = 14,
        SS_STATE_SERVER_TXN = 15,
        SS_STATE_SERVER_UPGRADE = 16,
        SS_STATE_EVENT_WAIT_CANCELLED = 17,
        SS_STATE_UPSTREAM_LINK_RETRY = 18,
        _SS_STATE_MAX,
        /* States from here on are the user's (http_resp_map values): never checked. */
        SS_STATE_USER_BASE = 1000,
} SsState;

/* What callbacks return; acted on by the engine after the callback returned. */
typedef enum SsResult {
        SS_OK = 0,
        SS_TX_DONT_SEND = 1, /* tx: nothing to send now (wait for request_tx) */
        SS_DISCONNECT_ME = -1,
        SS_DESTROY_ME = -2,
} SsResult;

/* Payload flags (as in the SS proxy protocol). */
enum {
        SS_FLAG_SOM = 1u << 0,
        SS_FLAG_EOM = 1u << 1,
};

/*
 * Bits of the ack that comes with UNREACHABLE (why the attempt failed). With
 * QOS_ACK_REMOTE / QOS_NACK_REMOTE the ack is the HTTP status instead.
 */
enum {
        SS_ACK_DNS = 1u << 0,        /* the name did not resolve (upstream's only bit) */
        SS_ACK_REFUSED = 1u << 1,    /* refused or unreachable at the IP level */
        SS_ACK_TLS = 1u << 2,        /* the TLS handshake failed */
        SS_ACK_TLS_VERIFY = 1u << 3, /* with SS_ACK_TLS: the certificate did not verify */
        SS_ACK_TIMEOUT = 1u << 4,    /* resolve, connect or handshake took too long */
        SS_ACK_CONFIG = 1u << 5,     /* the endpoint could not be expanded or set up */
        SS_ACK_RESET = 1u << 6,      /* the peer closed during setup */
        SS_ACK_HANDSHAKE = 1u << 7,  /* the protocol's handshake was refused (ws: no good 101) */
};
/* mqtt: with SS_ACK_HANDSHAKE, the CONNACK return code (1..5) sits in bits 8..15. */
#define SS_ACK_MQTT_CONNACK_SHIFT 8

/* Bounds of what a stream user can make the engine hold. */
#define SS_METADATA_VALUE_MAX 4096u  /* bytes in one metadata value */
#define SS_H1_REDIRECTS_MAX   4u     /* redirect hops followed per transaction */
#define SS_RX_CHUNK           16384u /* most bytes handed to rx at once */
#define SS_TX_CHUNK           16384u /* buffer size offered to tx */
#define SS_POOL_PER_SERVER    32u    /* idle keep-alive connections per server (default) */
#define SS_POOL_TOTAL         64u    /* idle keep-alive connections in all (default) */
#define SS_POOL_IDLE_MS       30000u /* longest idle time of a kept connection (default) */

/* flags: SS_FLAG_*. */
typedef SsResult (*SsRxCallback)(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                                 unsigned flags);
/* Fill at most *len bytes of buf, set *len to what was written and *flags (SS_FLAG_EOM). */
typedef SsResult (*SsTxCallback)(SsStream *s, void *userdata, uint8_t *buf, size_t *len,
                                 unsigned *flags);
typedef SsResult (*SsStateCallback)(SsStream *s, void *userdata, SsState state, uint32_t ack);

typedef struct SsStreamHandlers {
        SsRxCallback rx;
        SsTxCallback tx;
        SsStateCallback state;
} SsStreamHandlers;

/*
 * The engine: event loop, timers, name resolution, the policy (the context
 * takes a reference) and the trust-store credential cache. With event == NULL
 * the context has only the pure scheduler core (unit tests drive it with
 * scheduler_run_due()) and no resolver.
 */
int ss_context_new(SsContext **ret, sd_event *event, Policy *policy);
/* Destroys every stream left (with their cleanup states), then the context. */
SsContext *ss_context_free(SsContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(SsContext *, ss_context_free);

Scheduler *ss_context_get_scheduler(SsContext *c);
const Policy *ss_context_get_policy(SsContext *c);
/*
 * Policy reload: new streams are created under policy (the context takes a
 * reference and drops the one on the old policy). Running streams are never
 * touched: each holds a reference to the policy it was created under and keeps
 * using it (endpoint, retry, timeouts, metadata, trust store) until it is
 * freed. Trust-store credentials built from the old policy stay alive while
 * streams use them but are no longer handed out: new streams build theirs
 * from the new policy.
 */
void ss_context_set_policy(SsContext *c, Policy *policy);
size_t ss_context_n_streams(SsContext *c);
/* Trust-store credential sets alive in this context (the system store counts as one). */
unsigned ss_context_n_tls_contexts(SsContext *c);

/*
 * Keep-alive bounds (defaults above); per_server or total 0 turns reuse off.
 * Closes what is idle now.
 */
void ss_context_set_connection_pool(SsContext *c, unsigned per_server, unsigned total,
                                    uint32_t idle_ms);
/* Idle HTTP/1.1 keep-alive connections held now (idle h2 connections are not counted). */
size_t ss_context_n_idle_connections(SsContext *c);
/* Closes every idle connection (after a network change or a resume, say). */
void ss_context_drop_idle_connections(SsContext *c);
/*
 * After a resume or a network change: close idle kept-alive connections and
 * make every connected stream that has validity checks (svalidping) ping now,
 * expecting an answer within svalidhup - svalidping seconds (at least 1 s).
 * Returns the number of streams asked to ping.
 */
unsigned ss_context_check_connections(SsContext *c);

/*
 * Illegal transitions: each is counted. With a hook, the hook is called instead
 * of assert() (for tests) and the stream is destroyed as in a release build.
 */
typedef void (*SsIllegalTransitionHook)(SsStream *s, SsState from, SsState to, void *userdata);
void ss_context_set_illegal_transition_hook(SsContext *c, SsIllegalTransitionHook hook,
                                            void *userdata);
unsigned ss_context_get_illegal_transitions(SsContext *c);

/*
 * Creates a stream of the named streamtype and delivers CREATING to it before
 * returning. -ENOENT: no such streamtype; -EPROTONOSUPPORT: its protocol is not
 * implemented (servers: protocol h1, which serves HTTP/1.1 and h2); a trust-store load
 * error, or for a server streamtype a listening or certificate error, as
 * -errno; -ECANCELED: the CREATING callback asked to be destroyed (it got
 * DESTROYING). A nailed_up stream starts connecting from the event loop.
 * handlers may be NULL.
 */
int ss_stream_new(SsStream **ret, SsContext *c, const char *streamtype,
                  const SsStreamHandlers *handlers, void *userdata);
/*
 * Destroys the stream: DISCONNECTED if it was connected, then DESTROYING (what
 * those callbacks return is ignored), then frees it. From inside one of the
 * stream's own callbacks it only marks the stream, which is destroyed when the
 * callback returned. Accepts NULL, returns NULL.
 */
SsStream *ss_stream_free(SsStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SsStream *, ss_stream_free);

/*
 * Asks for a tx callback: on a connected stream once it is writable (for h1
 * while the request body is being sent, otherwise for the next transaction),
 * on an idle stream by connecting (without resetting the retry count).
 */
int ss_stream_request_tx(SsStream *s);
/* Same, announcing the length of the payload to send (h1: Content-Length). */
int ss_stream_request_tx_len(SsStream *s, uint64_t len);
/*
 * Connections of this stream use only addresses of family (AF_INET or
 * AF_INET6; AF_UNSPEC, the default: both, IPv6 first), from the next
 * connection attempt on: a name without an address of that family fails
 * as DNS does (UNREACHABLE with SS_ACK_DNS). For probing one family's
 * connectivity (captive portal detection). -EAFNOSUPPORT: another family.
 */
int ss_stream_set_address_family(SsStream *s, int family);
/* Connects now (from the event loop) and resets the retry count; 0 if already connecting. */
int ss_stream_client_connect(SsStream *s);

/*
 * Metadata (policy "metadata" entries, by name). -ENOENT: not declared by the
 * streamtype; -E2BIG: over SS_METADATA_VALUE_MAX; -EINVAL: holds CR, LF or NUL
 * (values may become header fields). get returns a pointer valid until the
 * next change of that entry, NULL when it has no value.
 */
int ss_stream_set_metadata(SsStream *s, const char *name, const void *value, size_t len);
int ss_stream_get_metadata(SsStream *s, const char *name, const char **ret_value, size_t *ret_len);

/*
 * Delivers TIMEOUT after timeout_ms (0: the streamtype's timeout_ms; -EINVAL
 * when that is 0 too), replacing a running timeout. A stream with a policy
 * timeout_ms also starts one by itself with every connection attempt; it is
 * cancelled when the transaction ends. When TIMEOUT fires, a connection or
 * connection attempt is dropped after the callback returned.
 */
int ss_stream_start_timeout(SsStream *s, uint32_t timeout_ms);
void ss_stream_cancel_timeout(SsStream *s);

/*
 * Receive flow control: while paused, the protocol reads nothing more from the
 * connection (TCP backpressure reaches the server); rx already in progress
 * finishes its current piece. Resuming delivers what is buffered (TLS
 * included) from the event loop. The pause outlives a reconnection.
 */
void ss_stream_pause_rx(SsStream *s, bool pause);

/*
 * Send credit: the bytes the peer lets this stream send now without waiting
 * (h2: the smaller of the stream's and the connection's flow-control
 * window), for passing backpressure on (the SS proxy's TXCR_UPDATE). -1 when
 * the protocol has no such notion or the stream has no connection.
 */
int64_t ss_stream_tx_credit(SsStream *s);

/* Replaces the callbacks; NULL keeps the current one. */
void ss_stream_change_handlers(SsStream *s, SsRxCallback rx, SsTxCallback tx,
                               SsStateCallback state);

SsContext *ss_stream_get_context(SsStream *s);
void *ss_stream_get_userdata(SsStream *s);
const char *ss_stream_get_streamtype(SsStream *s);
/* The last state delivered, 0 before CREATING. */
SsState ss_stream_get_state(SsStream *s);

/* "CREATING", ... or "USER" for user states, "INVALID" otherwise. */
const char *ss_state_to_string(SsState state);
/* Whether the table allows delivering to after from (0 = nothing delivered yet). */
bool ss_state_transition_is_valid(SsState from, SsState to);

/*
 * Server streamtypes ("server": true, protocol h1, server.c has the details).
 * Creating a stream of such a streamtype starts listening on endpoint:port
 * (an address; none: every address) or on the unix socket of a "+path"
 * endpoint, with TLS when the streamtype has tls, using server_cert and
 * server_key (cert names, or "file:" PEM paths); -EADDRINUSE and friends come
 * back from ss_stream_new(). Freeing it closes every connection and stops
 * listening. Each accepted connection is a stream of its own with the server
 * stream's handlers and userdata: CREATING, CONNECTING and CONNECTED at once,
 * no retry, DISCONNECTED and DESTROYING when the connection closes.
 *
 * Each request raises SERVER_TXN on its connection stream, with metadata
 * "method" and "path" (when the streamtype declares them) and every metadata
 * entry filled from a query argument of its name or a request header of its
 * header name (others cleared). The request body follows as rx from SS_FLAG_SOM
 * to SS_FLAG_EOM (with chunked framing the EOM comes alone, with no bytes; no
 * rx for an empty body). The application answers with ss_stream_server_ack()
 * and the response body with ss_stream_request_tx() (chunked) or
 * ss_stream_request_tx_len() (Content-Length), pulled from tx until
 * SS_FLAG_EOM. Response headers: the metadata entries with a header name that
 * were not filled from the request and have a value (content-type, say). A
 * request still unanswered when it completed (after the rx with EOM) gets 404.
 * Keep-alive and pipelining per HTTP/1.1, one request at a time.
 *
 * HTTP/2 on the same port (h2-server.c): ALPN h2 over TLS, h2c with prior
 * knowledge on plain TCP. Each h2 request is a stream of its own (CREATING,
 * CONNECTING, CONNECTED, one SERVER_TXN, then as above; DISCONNECTED and
 * DESTROYING when the h2 stream closes); the connection's stream gets no
 * SERVER_TXN. At most 100 concurrent requests per connection.
 *
 * Bounds (the streamtype's timeout_ms replaces SS_SERVER_IDLE_MS): a request's
 * header section must arrive within the idle time from its first byte (408
 * then; the clock is not reset by bytes, so a slow sender gains nothing), a
 * body or a response may pause that long, a keep-alive connection may idle
 * that long. Malformed or oversized requests get their status (400, 413, 414,
 * 431, 501, 505) and the connection closes. At SS_SERVER_MAX_CONNECTIONS the
 * longest idle connection that has not started a request is closed for a new
 * one, or the new one when there is none.
 *
 * WebSocket (ws-server.c has the details): a streamtype with ws_subprotocol
 * also takes upgrades, as the first request of a connection. After the 101
 * the connection's stream gets SERVER_UPGRADE instead of SERVER_TXN; the
 * application may swap its handlers (ss_stream_change_handlers()). Messages
 * then go as for ws clients: rx from SS_FLAG_SOM to SS_FLAG_EOM, one
 * request_tx per message (one frame per tx call), DISCONNECTED with the close
 * code as its ack. ss_stream_server_foreach() and ss_stream_get_state() ==
 * SS_STATE_SERVER_UPGRADE find the clients to push to. ss_stream_ws_close()
 * closes one with a code and reason of the application's choice.
 * Validity: a client silent (not one byte, PONGs included) for the retry
 * entry's svalidping seconds gets a PING, and after svalidhup seconds it is
 * hung up (CLOSE 1001; DISCONNECTED with 1006). Without svalidping and
 * svalidhup the idle time stands for svalidping; the hang-up then comes one
 * idle time after the PING (also with svalidping alone).
 */
#define SS_SERVER_MAX_CONNECTIONS  256u                  /* connections per server stream */
#define SS_SERVER_MAX_HEADER_BYTES (32u * 1024u)         /* request line and header fields */
#define SS_SERVER_MAX_BODY         (16u * 1024u * 1024u) /* bytes of one request body */
#define SS_SERVER_IDLE_MS          10000u                /* header, idle and stall timeout */
#define SS_SERVER_LINGER_MS        2000u /* after an error response: input read and dropped */
#define SS_SERVER_LINGER_BYTES     (4u * 1024u * 1024u)

/*
 * Answers the current request of a connection stream: 0 is 200, else the
 * status (100..999). -EBUSY: the response has started; -ESTALE: no request or
 * no connection; -EINVAL: not a connection stream or a bad status.
 */
int ss_stream_server_ack(SsStream *s, unsigned status);
/* The current request's method and target path (without the query), or -ESTALE. */
int ss_stream_server_get_request(SsStream *s, const char **ret_method, const char **ret_path);
/* The server stream a connection stream belongs to, NULL for other streams. */
SsStream *ss_stream_server_get_parent(SsStream *s);
/*
 * Calls cb for each connected stream of a server stream, oldest first; a
 * negative return stops the walk and is returned. cb must not free streams
 * (return a code and act afterwards).
 */
typedef int (*SsServerForeachCallback)(SsStream *connection, void *userdata);
int ss_stream_server_foreach(SsStream *server, SsServerForeachCallback cb, void *userdata);
/* Connections open now, -EINVAL for a stream that is not a server stream. */
int ss_stream_server_n_connections(SsStream *server);
/*
 * Closes an upgraded WebSocket connection of a server stream: a CLOSE frame
 * with code and reason goes out from the event loop (after the frame being
 * sent, if any), then the close handshake runs as for SS_DISCONNECT_ME and
 * DISCONNECTED carries code as its ack. code: 1000-1003, 1007-1014 or
 * 3000-4999 (1004-1006 and 1015 are reserved, 1016-2999 unassigned: clients
 * fail the connection on them); reason: NULL, or UTF-8 of at most 123 bytes.
 * -EINVAL: a bad code or reason, or not a connection stream; -EOPNOTSUPP: the
 * connection is not an upgraded WebSocket; -ESTALE: it is closing or closed
 * already.
 * Never calls back directly: may be called from the stream's callbacks.
 */
int ss_stream_ws_close(SsStream *s, uint16_t code, const char *reason);
/*
 * Why this thread's last ss_stream_new() of a server streamtype failed,
 * naming the streamtype and the file, cert or address at fault (say
 * "streamtype web: server_key file:/etc/web/key.pem: No such file or
 * directory"); NULL when that failure has no description. Valid until the
 * next ss_stream_new() of a server streamtype on this thread. server_cert and
 * server_key files are read at most 1 MiB each (-EFBIG above).
 */
const char *ss_stream_server_get_error(void);

/* SPDX-License-Identifier: MIT */
/*
 * What the stream core (stream.c), the retry arithmetic (retry.c) and the
 * protocols (h1-client.c, ws-client.c) share. Not for other modules; tests use the
 * transport and random hooks at the end.
 *
 * Every internal function that may run a user callback returns an SsResult:
 * SS_DESTROY_ME means "the stream must be destroyed": the function has
 * stopped touching it, and so must its caller, up to the event-loop entry
 * point (timer or transport handler), which destroys it. SS_DISCONNECT_ME
 * likewise travels up to the entry point, which drops the connection.
 */
#pragma once

#include "stream.h"
#include "strexp.h"
#include "transport.h"

typedef struct H1Client H1Client;
typedef struct WsClient WsClient;
typedef struct MqttClient MqttClient;
typedef struct SsServer SsServer;
typedef struct SsServerConn SsServerConn;
typedef struct H2Client H2Client;
typedef struct H2Connection H2Connection;

/* The connection layer as the stream sees it: the real transport, or a test double. */
typedef struct SsTransportOps {
        int (*transport_new)(Transport **ret, sd_event *event, Resolver *resolver,
                             const TransportOptions *options, const TransportHandlers *handlers,
                             void *userdata);
        Transport *(*transport_free)(Transport *t);
        ssize_t (*transport_read)(Transport *t, void *buf, size_t size);
        ssize_t (*transport_write)(Transport *t, const void *buf, size_t size);
        void (*transport_want_write)(Transport *t, bool want);
        void (*transport_set_handlers)(Transport *t, const TransportHandlers *handlers,
                                       void *userdata);
        int (*tls_context_new)(TlsContext **ret, const TlsCertificate *certs, size_t n_certs);
        TlsContext *(*tls_context_unref)(TlsContext *c);
        /* May be NULL (test doubles without backpressure). */
        void (*transport_pause_read)(Transport *t, bool pause);
} SsTransportOps;

typedef enum SsPhase {
        SS_PHASE_IDLE,       /* no connection, nothing scheduled (or a deferred connect) */
        SS_PHASE_WAIT_RETRY, /* the retry timer is armed */
        SS_PHASE_CONNECTING, /* a transport is being set up */
        SS_PHASE_CONNECTED,  /* a transport is up */
} SsPhase;

typedef struct SsTlsEntry {
        struct SsTlsEntry *next;
        char *name; /* trust store name; "" for the system store */
        TlsContext *tls;
        unsigned users;
        bool stale; /* built from a replaced policy: kept for its users, never handed out */
} SsTlsEntry;

/*
 * Where an idle connection goes: what a new connection to the same server
 * would be opened with. The trust store entry is compared by identity (one
 * entry per name while it has users); NULL for plain and unix connections.
 */
typedef struct SsPoolKey {
        const char *host; /* name or address; the path for unix sockets */
        uint16_t port;
        bool tls;
        bool unix_socket;
        const SsTlsEntry *tls_entry;
} SsPoolKey;

/*
 * A client protocol as the stream core drives it: one table per implemented
 * PolicyProtocol (ss_protocol_find()). The protocol keeps its per-connection
 * state in the stream (s->h1, s->ws), made by connection_new() when a
 * connection attempt starts and freed by connection_free() when the
 * connection goes. The handlers run at event-loop entry points and return an
 * SsResult as every internal function that may run a user callback does.
 */
typedef struct SsProtocolOps {
        const char *name;
        const char *const *alpn; /* offered over TLS, NULL-terminated */
        /*
         * The protocol has a handshake of its own over the connection (ws
         * upgrade, mqtt CONNACK): it delivers CONNECTED itself through
         * ss_stream_protocol_connected(), or fails the attempt through
         * ss_stream_handshake_failed(). Otherwise the core delivers CONNECTED
         * as soon as the transport is up.
         */
        bool handshake;
        /*
         * request_tx is served inside the connection (ws, mqtt: one more
         * message) rather than as a transaction of its own (h1): a request
         * made before the connection is up is handed to request_tx() once the
         * connection attempt starts.
         */
        bool tx_in_connection;
        /*
         * Loads what streams of st need (a library loaded on first use), when
         * the first is made: -ELIBACC when it cannot be, and the stream is
         * not made. May be NULL.
         */
        int (*load)(const PolicyStreamtype *st);
        int (*connection_new)(SsStream *s, const char *host);
        void (*connection_free)(SsStream *s);
        /*
         * A protocol that shares its connections between streams (h2): after
         * connection_new(), joins a connection of its own to host instead of
         * the core opening one. Sets s->transport to the shared transport,
         * which the stream does not own: connection_free() clears it. Returns
         * 1 when that connection is up (the core goes on as for a new
         * connection), 0 while it is being set up (the protocol calls
         * ss_stream_transport_handlers.connected or .failed for the stream
         * later), or -errno. May be NULL.
         */
        int (*attach)(SsStream *s, const char *host);
        /* The transport is up (first time, or a replacement): send the first bytes. */
        SsResult (*start)(SsStream *s);
        SsResult (*on_readable)(SsStream *s);
        SsResult (*on_writable)(SsStream *s);
        /* request_tx while a connection (attempt) exists; never calls back directly. */
        void (*request_tx)(SsStream *s);
        /* svalidping idle seconds passed: send a ping. NULL: the protocol has none. */
        SsResult (*validity_ping)(SsStream *s);
        /*
         * The core is about to close the connection on its own (destroy,
         * DISCONNECT_ME, timeout, validity): say goodbye if the protocol has a
         * way (best effort, without blocking or calling back). May be NULL.
         */
        void (*close)(SsStream *s);
        /* Keep-alive; both NULL for protocols whose connections are never reused. */
        bool (*is_reusable)(SsStream *s, SsPoolKey *ret_key, uint64_t *ret_idle_ms);
        void (*set_reused)(SsStream *s);
        /*
         * rx was resumed: bytes the protocol holds already (h2's queue) need a
         * wake-up of its own, as no more may arrive. Never calls back directly.
         * May be NULL.
         */
        void (*resume_rx)(SsStream *s);
        /*
         * Bytes the peer lets us send on this stream now (h2: the smaller of
         * the stream's and the connection's send window), -1 when unknown.
         * May be NULL: the protocol has no such notion.
         */
        int64_t (*tx_credit)(SsStream *s);
} SsProtocolOps;

extern const SsProtocolOps ss_protocol_h1;
extern const SsProtocolOps ss_protocol_ws;
extern const SsProtocolOps ss_protocol_mqtt;
extern const SsProtocolOps ss_protocol_h2;

/* The client protocol implementing protocol, NULL when there is none (yet). */
const SsProtocolOps *ss_protocol_find(PolicyProtocol protocol);

typedef struct SsIdleConnection SsIdleConnection;

struct SsContext {
        sd_event *event;
        Scheduler *scheduler;
        Resolver *resolver;
        Policy *policy; /* the current one (a reference); new streams use it */
        const SsTransportOps *ops;
        SsTlsEntry *tls_entries;
        SsStream *streams;
        size_t n_streams;
        uint64_t next_id;
        uint64_t random_state;
        uint32_t (*random)(void *userdata); /* tests replace it */
        void *random_userdata;
        SsIllegalTransitionHook illegal_hook;
        void *illegal_userdata;
        unsigned n_illegal;

        /* Idle keep-alive connections, least recently parked first (stream-pool.c). */
        SsIdleConnection *idle_head, *idle_tail;
        size_t n_idle;
        unsigned pool_per_server;
        unsigned pool_total;
        uint32_t pool_idle_ms;

        /*
         * Streams with a deferred connect, served in order by one defer source
         * (with an event loop; without one each stream's work timer does it).
         */
        sd_event_source *work_source;
        SsStream *work_head, *work_tail;
        size_t n_work;

        /* Shared h2 connections, with or without streams (h2-client.c). */
        H2Connection *h2_connections;
};

struct SsStream {
        SsContext *context;
        SsStream *prev, *next;
        uint64_t id;
        Policy *policy;             /* a reference to the policy the stream was created under */
        const PolicyStreamtype *st; /* in policy */
        const PolicyRetry *retry;   /* NULL: the built-in default */
        const SsProtocolOps *proto; /* of st->protocol */
        SsTlsEntry *tls;            /* held while the stream lives (tls streamtypes) */
        int family;                 /* AF_UNSPEC, or the only family to connect over */
        SsServer *server;           /* a server stream: its listener (server.c) */
        SsServerConn *server_conn;  /* an accepted connection of a server stream */

        SsRxCallback rx;
        SsTxCallback tx;
        SsStateCallback state_cb;
        void *userdata;

        SsState state; /* last delivered; 0 before CREATING */
        bool creating_delivered;
        bool connected_delivered; /* CONNECTED delivered, DISCONNECTED not yet */
        unsigned in_callback;
        bool destroy_requested; /* ss_stream_free() from inside a callback */
        bool freeing;

        SsPhase phase;
        bool connect_wanted; /* the work timer should connect */
        bool tx_pending;     /* request_tx asked for a transaction */
        bool has_tx_len;
        uint64_t tx_len;
        unsigned retry_count; /* consecutive failures */

        Timer work_timer; /* deferred connect, from the event loop (no event loop: tests) */
        SsStream *work_prev, *work_next; /* in the context's work queue (with an event loop) */
        bool work_queued;
        Timer retry_timer;
        Timer timeout_timer;
        Timer validity_timer;     /* svalidhup: hang up */
        Timer ping_timer;         /* svalidping: the protocol pings */
        bool timeout_from_policy; /* the running timeout was started by a connection attempt */

        /*
         * One per policy metadata entry. metadata[i]: the value, NULL when unset;
         * it points into metadata_buf[i], which stays when the value is unset so
         * that the next value of about the same size needs no allocation (a
         * server sets the same entries on every request). One allocation holds
         * the four arrays (metadata is its start).
         */
        char **metadata;
        size_t *metadata_len;
        char **metadata_buf;
        size_t *metadata_cap;

        Transport *transport;
        H1Client *h1; /* protocol state of the connection: the one of s->proto */
        WsClient *ws;
        MqttClient *mqtt;  /* outlives its connections: the QoS 1 messages in flight */
        H2Client *h2;      /* h2 (s->h1 as well after a fall back to http/1.1) */
        uint32_t drop_ack; /* the ack of the next DISCONNECTED (ws: the close code) */
        bool redirecting;  /* a replacement transport (redirect, dead reused one): no states */
        bool rx_paused;    /* ss_stream_pause_rx(): the protocol stops reading */
};

/* Delivers a state (checks the table). */
SsResult ss_stream_deliver_state(SsStream *s, SsState state, uint32_t ack);
SsResult ss_stream_deliver_rx(SsStream *s, const uint8_t *buf, size_t len, unsigned flags);
SsResult ss_stream_call_tx(SsStream *s, uint8_t *buf, size_t *len, unsigned *flags);

/* The connection is alive (bytes arrived): re-arm the validity ping and hang-up. */
void ss_stream_note_alive(SsStream *s);
/*
 * A protocol with a handshake completed it: the connection counts as working
 * (the retry count is reset and the policy timeout of the attempt cancelled)
 * and CONNECTED is delivered.
 */
SsResult ss_stream_protocol_connected(SsStream *s);
/* The protocol's handshake failed: UNREACHABLE with ack, then retry as for a failed connect. */
SsResult ss_stream_handshake_failed(SsStream *s, uint32_t ack);
/* A transaction succeeded far enough to count as a working connection. */
void ss_stream_reset_retry(SsStream *s);
/*
 * The transaction is over: drop the connection; failed: retry (not before
 * min_delay_ms, for Retry-After).
 */
SsResult ss_stream_transaction_done(SsStream *s, bool failed, uint64_t min_delay_ms);
/*
 * Replace the transport, without state changes: to follow a redirect, or to
 * repeat a request whose reused connection turned out dead.
 */
int ss_stream_replace_transport(SsStream *s, const char *host, uint16_t port, bool tls);

/* Metadata lookup for strexp (userdata: the stream). */
int ss_stream_metadata_lookup(void *userdata, const char *name, const char **ret_value);
/*
 * Set (value != NULL) or unset metadata entry i of the policy's list, as
 * ss_stream_set_metadata() does for a name (the value is checked the same way).
 */
int ss_stream_set_metadata_at(SsStream *s, size_t i, const void *value, size_t len);
/* Unset every entry (their buffers stay for the next values). */
void ss_stream_clear_metadata(SsStream *s);

/* The backoff delay before retry number attempt (0-based), random in [0, 2^32). */
uint64_t ss_retry_delay_ms(const PolicyRetry *retry, unsigned attempt, uint32_t random);
/* How many retries hide failures before ALL_RETRIES_FAILED. */
unsigned ss_retry_conceal(const PolicyRetry *retry);
/* Whether the retry / validity timers of a streamtype go on the wake list. */
TimerList ss_stream_timer_list(const SsStream *s);

/*
 * The idle connection pool (stream-pool.c). A parked transport has finished a
 * response and has nothing in flight; the pool watches it and closes it when
 * the server closes it, when it sends anything, after its idle time, or when
 * the bounds of the pool need its place.
 */
/* Parks t (ownership passes to the pool, which may close it at once). */
void ss_pool_put(SsContext *c, const SsPoolKey *key, Transport *t, uint64_t idle_ms);
/* A live idle transport for key, most recently parked first (ownership to the caller). */
Transport *ss_pool_take(SsContext *c, const SsPoolKey *key);
/* Close the idle connections of one server / of one trust store / all of them. */
void ss_pool_drop_key(SsContext *c, const SsPoolKey *key);
void ss_pool_drop_tls_entry(SsContext *c, const SsTlsEntry *e);
void ss_pool_drop_all(SsContext *c);

/*
 * The stream's own transport handlers (userdata: the stream): a protocol
 * forwards a shared connection's events to a stream with them, or hands a
 * transport over to the stream.
 */
extern const TransportHandlers ss_stream_transport_handlers;

/*
 * h2 (h2-client.c): close the shared connections without streams, all of them
 * or those of trust store entry e.
 */
void h2_connections_drop_idle(SsContext *c, bool all, const SsTlsEntry *e);

/* ws (ws-client.c): the state of one connection. */
WsClient *ws_client_free(WsClient *w);

/* h1 (h1-client.c). */
/* The request goes to host (the expanded endpoint), port and tls of the streamtype. */
int h1_client_new(H1Client **ret, SsStream *s, const char *host);
H1Client *h1_client_free(H1Client *h);
/* The transport is up (first time or after a redirect): send the request. */
SsResult h1_client_start(SsStream *s);
SsResult h1_client_on_readable(SsStream *s);
SsResult h1_client_on_writable(SsStream *s);
/* request_tx while connected. */
void h1_client_request_tx(SsStream *s);
/* The transport came from the pool: a dead one may be replaced once (GET, HEAD). */
void h1_client_set_reused(H1Client *h);
/*
 * After a complete response: whether the connection may carry another request,
 * with its pool key (pointing into h) and how long it may stay idle.
 */
bool h1_client_is_reusable(SsStream *s, SsPoolKey *ret_key, uint64_t *ret_idle_ms);
/* What h2 shares with h1: the method, header names, expected status, response metadata. */
const char *h1_stream_method(SsStream *s);
bool h1_method_has_body(const char *method);
bool h1_status_is_expected(SsStream *s, unsigned status);
/* A response header into the metadata that declares it. */
void h1_store_response_metadata(SsStream *s, const char *name, size_t name_len, const char *value,
                                size_t value_len);
/* Retry-After in delay-seconds (bounded to a day); false for other forms. */
bool h1_parse_retry_after(const char *value, size_t len, uint64_t *ret_ms);

/*
 * Server streamtypes (server.c). A server stream listens from its creation;
 * each accepted connection is a stream of its own, made by
 * ss_stream_new_accepted() with the server stream's handlers and userdata.
 */
/* Starts listening (after CREATING was delivered to the server stream). */
int ss_server_start(SsStream *s);
/* Called first when any stream is destroyed: stops a listener, closes a connection. */
void ss_server_stream_destroy(SsStream *s);
/* request_tx on a server stream or one of its connections: the response body. */
int ss_server_request_tx(SsStream *s);
/* Delivers CREATING only; -ECANCELED when the stream asked to be destroyed. */
int ss_stream_new_accepted(SsStream **ret, SsStream *server, SsServerConn *conn);

/* Tests: replace the connection layer and the jitter source. */
void ss_context_set_transport_ops(SsContext *c, const SsTransportOps *ops);
void ss_context_set_random(SsContext *c, uint32_t (*random)(void *userdata), void *userdata);
/* Tests: deliver any state, as the engine would (illegal ones included). */
SsResult ss_stream_test_deliver_state(SsStream *s, SsState state, uint32_t ack);
/* A protocol's own timer: act on a result as an event-loop entry point (may destroy s). */
void ss_stream_dispatch(SsStream *s, SsResult r);
/* Tests: act on a result as an event-loop entry point does (may destroy s). */
void ss_stream_test_dispatch(SsStream *s, SsResult r);

/* SPDX-License-Identifier: MIT */
/*
 * WebSocket on server streamtypes (RFC 6455, the server end): what server.c
 * calls. While an HTTP/1.1 request is parsed, server.c feeds its request line
 * and header fields to a WsServerRequest; when the request asks for a
 * WebSocket upgrade and the streamtype takes them (ws_subprotocol), the
 * request is checked here, and an acceptable one takes the connection over:
 * its socket and TLS session pass to a WsServerConn that answers 101, raises
 * SERVER_UPGRADE on the connection's stream and from then on moves messages
 * (stream.h and ws-server.c have the rules the application sees).
 */
#pragma once

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream-internal.h"
#include "ws-frame.h"

typedef struct WsServerConn WsServerConn;

/* What an upgrade request said, gathered header by header. */
typedef struct WsServerRequest {
        bool get;        /* the method is GET */
        bool http11;     /* HTTP/1.1 or later */
        bool upgrade;    /* Upgrade: lists websocket */
        bool connection; /* Connection: lists upgrade */
        unsigned n_keys;
        bool key_ok; /* the Sec-WebSocket-Key is base64 of 16 bytes */
        char key[WS_KEY_LENGTH + 1];
        unsigned n_versions;
        bool version_ok; /* Sec-WebSocket-Version: 13 */
        bool offered;    /* the client offered subprotocols */
        /* The chosen subprotocol inside the streamtype's ws_subprotocol; NULL: none yet. */
        const char *protocol;
        size_t protocol_len;
        size_t protocol_rank; /* position of the chosen one in the client's offers */
        size_t n_offers;
} WsServerRequest;

/* Whether the streamtype takes WebSocket upgrades (it names ws_subprotocol). */
bool ws_server_is_enabled(const PolicyStreamtype *st);

/* A new request: its method and HTTP minor version. */
void ws_server_request_init(WsServerRequest *r, const char *method, unsigned version_minor);
/* One header field of the request. */
void ws_server_request_header(WsServerRequest *r, const PolicyStreamtype *st, const char *name,
                              size_t name_len, const char *value, size_t value_len);
/*
 * After the header section of a request whose Upgrade lists websocket: 0 when
 * the upgrade may go ahead, else the HTTP status refusing it (426 for a
 * version other than 13, 400 for everything else). first: no request came
 * before on the connection (an upgrade is only taken as the first request,
 * as the state table has no SERVER_TXN -> SERVER_UPGRADE); has_body: the
 * request announced a body.
 */
unsigned ws_server_request_check(const WsServerRequest *r, bool first, bool has_body);

/*
 * Takes the connection over: the socket fd and the TLS session (NULL for
 * plain) belong to the new object from here on (also on failure), pending
 * holds input already read after the request's header section. stall_usec,
 * the server's idle time, bounds a write the client does not take and stands
 * for svalidping when the streamtype's retry entry has neither svalidping nor
 * svalidhup. Nothing is delivered yet.
 */
int ws_server_conn_new(WsServerConn **ret, SsStream *s, int fd, gnutls_session_t tls,
                       const WsServerRequest *req, const void *pending, size_t n_pending,
                       uint64_t stall_usec);
/*
 * Queues the 101 and delivers SERVER_UPGRADE. Returns SS_OK, or SS_DESTROY_ME
 * when the stream must go (its caller dispatches it).
 */
SsResult ws_server_conn_start(WsServerConn *w);
/* Closes the connection (a best-effort CLOSE 1001 first when it is still open). */
WsServerConn *ws_server_conn_free(WsServerConn *w);
/* request_tx on an upgraded connection: one more message. -ESTALE once closing. */
int ws_server_request_tx(WsServerConn *w);
/*
 * ss_stream_ws_close(): a CLOSE with code (ws_close_code_is_valid()) and
 * reason (NULL, or UTF-8 of at most WS_CLOSE_REASON_MAX bytes), else -EINVAL;
 * -ESTALE once closing or closed. Sent from the event loop; DISCONNECTED carries code.
 */
int ws_server_close(WsServerConn *w, unsigned code, const char *reason);

/* SPDX-License-Identifier: MIT */
/*
 * What server.c and h2-server.c share: HTTP/2 on a server streamtype's
 * connection. server.c accepts, runs TLS and picks the protocol (ALPN "h2",
 * or the h2c prior-knowledge preface on plain TCP); from then on the
 * connection's bytes go through the H2Server session of h2-server.c. Each h2
 * request is a stream of its own whose server_conn is a "request connection"
 * (an SsServerConn without a socket) made by ss_server_request_new().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream-internal.h"

typedef struct H2Server H2Server;
typedef struct H2ServerRequest H2ServerRequest;

/* The client connection preface of RFC 9113 (h2c prior knowledge starts with it). */
#define H2_SERVER_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_SERVER_PREFACE_LEN 24u

/* Bounds of one h2 connection (the header and body bounds are the h1 ones). */
#define H2_SERVER_MAX_STREAMS 100u          /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_SERVER_WINDOW      (256u * 1024) /* receive window of a stream */
#define H2_SERVER_CONN_WINDOW (1024u * 1024u)

/* ---- h2-server.c, called by server.c -------------------------------------------------------- */

/*
 * A session on conn (connected, TLS done); pre holds bytes already read (the
 * h2c preface and what followed it). Nothing is delivered from here.
 */
int h2_server_new(H2Server **ret, SsServerConn *conn, const uint8_t *pre, size_t pre_len);
/* Ends every request stream (DISCONNECTED, DESTROYING) and frees. Accepts NULL. */
H2Server *h2_server_free(H2Server *h);
/* Reads, delivers, writes as far as it can; anything but SS_OK ends the connection. */
SsResult h2_server_run(H2Server *h);
/* The connection's timer: idle or stalled for the idle time. */
SsResult h2_server_on_timer(H2Server *h);
/* No request is open (the connection may give its place to a new one). */
bool h2_server_is_idle(const H2Server *h);
/* The application's answer and body for a request (from the public API). */
int h2_server_request_ack(H2ServerRequest *req, unsigned status);
int h2_server_request_tx(H2ServerRequest *req, bool has_len, uint64_t len);
/* The request's stream is being destroyed: the request is reset unless it is over. */
void h2_server_request_detach(H2ServerRequest *req);

/* ---- server.c, called by h2-server.c -------------------------------------------------------- */

/* Bytes through the connection (TLS or not): as transport_read() / transport_write(). */
ssize_t ss_server_conn_read(SsServerConn *conn, void *buf, size_t size);
ssize_t ss_server_conn_write(SsServerConn *conn, const void *buf, size_t size);
/* Which events wake the connection. */
void ss_server_conn_set_events(SsServerConn *conn, bool read, bool write);
/* The connection's timer: in usec from now. */
void ss_server_conn_arm_timer(SsServerConn *conn, uint64_t usec);
/* Run the connection again from the event loop. */
void ss_server_conn_schedule(SsServerConn *conn);
SsStream *ss_server_conn_get_stream(SsServerConn *conn);
uint64_t ss_server_conn_get_idle_usec(SsServerConn *conn);
/*
 * A stream for an h2 request on conn, CREATING delivered (the caller delivers
 * CONNECTING and CONNECTED). 0 with *ret set (its stream:
 * ss_server_conn_get_stream()), or -errno; -ECANCELED when CREATING ended it.
 */
int ss_server_request_new(SsServerConn *conn, H2ServerRequest *req, SsServerConn **ret);
/* The request stream loses its h2 request (the connection is going). */
void ss_server_request_orphan(SsServerConn *rc);
/* The request's method and target (metadata from path and query, as for h1). */
int ss_server_request_set_target(SsServerConn *rc, const char *method, const char *target);
/* A request header (metadata of its header name). */
void ss_server_request_header(SsServerConn *rc, const char *name, size_t name_len,
                              const char *value, size_t value_len);
/*
 * The response headers from metadata, as for h1: cb for each (the name as in
 * the policy, without ':'); a negative return stops and is returned.
 */
typedef int (*SsServerHeaderCallback)(const char *name, size_t name_len, const char *value,
                                      size_t value_len, void *userdata);
int ss_server_request_foreach_response_header(SsServerConn *rc, SsServerHeaderCallback cb,
                                              void *userdata);

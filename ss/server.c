/* SPDX-License-Identifier: MIT */
/*
 * Server streamtypes, HTTP/1.1 (plain and TLS): the listener of a server
 * stream and its accepted connections, each one a stream of its own (the
 * rules the application sees are in stream.h). A connection reads into a
 * buffer, parses with http1-request.c, raises SERVER_TXN and rx on its
 * stream, and writes the response from an output buffer that holds at most
 * one header section or one tx piece; while a response is under way nothing
 * more is read (pipelined requests wait in the kernel), so a connection holds
 * a bounded amount of memory whatever the client does, and an idle one holds
 * no buffers at all.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fileio.h"
#include "h2-lib.h"
#include "h2-server.h"
#include "http1-request.h"
#include "stream-internal.h"
#include "tls-lib.h"
#include "ws-server.h"

#define SERVER_READ_BUF     16384u
#define SERVER_ACCEPT_BURST 64u
#define SERVER_READ_BURST   8u
#define SERVER_EVENT_BATCH  128u /* ready connections served per wake-up */
#define SERVER_SPARES       4u   /* buffer sets kept for the next request */
/* Complete responses held back in a run for one write (pipelined requests): at most this. */
#define SERVER_HOLD_MAX          16384u
#define SERVER_CHUNK_PREFIX      20u /* hex size and CRLF before a chunk */
#define SERVER_CHUNK_SUFFIX      8u  /* CRLF, then "0\r\n\r\n" */
#define SERVER_EMFILE_PAUSE_USEC 100000u
#define SERVER_CERT_FILE_MAX     (1024u * 1024u) /* a PEM certificate chain or key */

/* Why this thread's last server start failed (ss_stream_server_get_error()). */
static _Thread_local char server_error[4096 + 256];

typedef enum ConnPhase {
        CONN_HANDSHAKE, /* TLS handshake */
        CONN_ACTIVE,
        CONN_LINGER, /* an error response was sent: input dropped until EOF or the timer */
        CONN_WS,     /* upgraded: ws-server.c owns the socket */
        CONN_H2,     /* h2 (ALPN or the h2c preface): h2-server.c runs the session */
} ConnPhase;

struct SsServer {
        SsStream *stream;
        int fd;
        sd_event_source *io;
        sd_event_source *pause_timer; /* accept paused after EMFILE */
        /*
         * The accepted connections' sockets are in an epoll instance of the server's
         * own, one sd-event source: one wake-up serves every connection that is ready
         * (sd-event dispatches one source per epoll_wait()).
         */
        int epfd;
        sd_event_source *conns_io;
        struct epoll_event *batch; /* the events being served (on_server_conns_io()) */
        unsigned n_batch;
        uint64_t batch_now; /* the loop's CLOCK_MONOTONIC time while a batch is served; 0: none */
        /*
         * The buffers of connections gone idle, for the next request on any of them:
         * an idle connection holds none, and a keep-alive request needs no malloc().
         */
        struct {
                uint8_t *in, *out;
                size_t out_cap;
                Http1Request *parser;
        } spares[SERVER_SPARES];
        unsigned n_spares;
        gnutls_certificate_credentials_t creds;
        bool offer_h2;   /* in ALPN over TLS: libnghttp2 could be loaded when the server started */
        char *unix_path; /* removed when the server stops */
        SsServerConn *head, *tail; /* oldest first */
        unsigned n_conns;
        uint64_t idle_usec;
        bool in_accept;    /* on_server_io() runs: a destroy only marks the server */
        bool in_conns;     /* on_server_conns_io() runs: likewise */
        bool free_pending; /* the server stream is gone: free after the loop */
};

struct SsServerConn {
        SsServer *server;
        SsStream *stream;
        SsServerConn *prev, *next;
        int fd;
        uint32_t events; /* in server->epfd: 0 when not there */
        sd_event *event; /* the context's (not a reference) */
        sd_event_source *timer;
        uint64_t deadline; /* of the timer (CLOCK_MONOTONIC), which may be set earlier */
        uint64_t timer_at; /* when the timer goes off as we last set it; 0: off (or unknown) */
        sd_event_source *defer;
        bool defer_on;  /* defer is enabled (a run is scheduled) */
        bool in_run;    /* conn_run() runs: a run asked for is scheduled when it returns */
        bool run_asked; /* ... and one was */
        bool hold; /* conn_run() runs: complete responses may wait for its end (conn_flush()) */
        gnutls_session_t tls;
        ConnPhase phase;
        bool want_read, want_write;
        bool eof;
        bool read_pending; /* input may wait: an edge came since a read drained the socket */
        bool closing;      /* close once the output is flushed */
        size_t linger_bytes;

        Http1Request *parser; /* NULL while idle */
        uint8_t *in;          /* NULL while idle */
        size_t in_off, in_len;

        /* The current request: method and path point into target (kept for the next one). */
        char *method, *path;
        char *target;
        size_t target_cap;
        bool req_started, req_headers_done, req_complete, txn_delivered;
        bool head, keep_alive, body_som_sent;
        uint64_t body_received;
        uint32_t filled;        /* metadata entries filled from the request (bit per entry) */
        WsServerRequest ws_req; /* what the request says about a WebSocket upgrade */
        WsServerConn *ws;       /* after the upgrade */
        H2Server *h2;           /* the connection speaks h2 */
        H2ServerRequest *h2req; /* an h2 request's stream (no socket): its request ... */
        SsServerConn *h2conn;   /* ... on this connection */

        /* Its response. */
        bool answered;
        unsigned status;
        bool tx_requested, has_len;
        uint64_t len, sent;
        bool resp_started, chunked, no_body, eom_queued, resp_done;

        uint8_t *out;
        size_t out_off, out_len, out_cap;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static const char *status_reason(unsigned status)
{
        switch (status) {
        case 100:
                return "Continue";
        case 200:
                return "OK";
        case 201:
                return "Created";
        case 202:
                return "Accepted";
        case 204:
                return "No Content";
        case 301:
                return "Moved Permanently";
        case 302:
                return "Found";
        case 303:
                return "See Other";
        case 304:
                return "Not Modified";
        case 307:
                return "Temporary Redirect";
        case 308:
                return "Permanent Redirect";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 408:
                return "Request Timeout";
        case 413:
                return "Content Too Large";
        case 414:
                return "URI Too Long";
        case 426:
                return "Upgrade Required";
        case 431:
                return "Request Header Fields Too Large";
        case 500:
                return "Internal Server Error";
        case 501:
                return "Not Implemented";
        case 503:
                return "Service Unavailable";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Status";
        }
}

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decodes (and '+' as space) in place; returns the new length. */
static size_t url_decode(char *s, size_t len)
{
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 &&
                    hex_value(s[i + 2]) >= 0) {
                        s[o++] = (char) (hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
                        i += 2;
                } else
                        s[o++] = s[i] == '+' ? ' ' : s[i];
        }
        return o;
}

static int tls_error_to_errno(int r)
{
        switch (r) {
        case GNUTLS_E_AGAIN:
        case GNUTLS_E_INTERRUPTED:
                return -EAGAIN;
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_PREMATURE_TERMINATION:
                return -ECONNRESET;
        case GNUTLS_E_FILE_ERROR:
                return -ENOENT;
        default:
                return -EIO;
        }
}

/* ---- connection I/O ---------------------------------------------------------------------- */

static ssize_t conn_read(SsServerConn *conn, void *buf, size_t size)
{
        if (conn->tls) {
                for (;;) {
                        ssize_t n = gnutls_record_recv(conn->tls, buf, size);

                        if (n >= 0)
                                return n;
                        if (n == GNUTLS_E_INTERRUPTED)
                                continue;
                        if (n == GNUTLS_E_REHANDSHAKE || n == GNUTLS_E_WARNING_ALERT_RECEIVED)
                                continue;
                        if (n == GNUTLS_E_AGAIN)
                                conn->read_pending = false;
                        return tls_error_to_errno((int) n);
                }
        }
        for (;;) {
                ssize_t n = recv(conn->fd, buf, size, 0);

                if (n >= 0) {
                        if ((size_t) n < size)
                                conn->read_pending = false; /* all there was */
                        return n;
                }
                if (errno == EINTR)
                        continue;
                if (errno == EWOULDBLOCK)
                        conn->read_pending = false;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
}

static ssize_t conn_write(SsServerConn *conn, const void *buf, size_t size)
{
        if (conn->tls) {
                ssize_t n = gnutls_record_send(conn->tls, buf, size);

                return n >= 0 ? n : tls_error_to_errno((int) n);
        }
        for (;;) {
                ssize_t n = send(conn->fd, buf, size, MSG_NOSIGNAL);

                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
}

/* Puts the socket in the server's epoll instance with these events, or takes it out (0). */
static void conn_set_epoll(SsServerConn *conn, uint32_t events)
{
        struct epoll_event ev = {.events = events, .data.ptr = conn};
        int op;

        if (conn->fd < 0 || !conn->server || conn->events == events)
                return;
        op = !events ? EPOLL_CTL_DEL : conn->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(conn->server->epfd, op, conn->fd, &ev) < 0 && op != EPOLL_CTL_DEL)
                return; /* ENOMEM or ENOSPC: it stays as it was, the idle timer ends it */
        conn->events = events;
}

static void conn_update_events(SsServerConn *conn)
{
        uint32_t events = 0;

        if (conn->phase == CONN_HANDSHAKE)
                events = gnutls_record_get_direction(conn->tls) ? EPOLLOUT : EPOLLIN;
        else {
                /*
                 * Readable stays armed even while nothing is read (a response under
                 * way): an edge then only runs the connection, which reads when it
                 * wants to, and no epoll_ctl() per request turns reading off and on.
                 */
                if (!conn->eof)
                        events |= EPOLLIN;
                if (conn->want_write)
                        events |= EPOLLOUT;
        }
        /*
         * Edge-triggered: every path reads until EAGAIN or schedules itself, and a
         * level-triggered fd would be returned again by each epoll_wait().
         */
        if (events)
                events |= EPOLLET;
        conn_set_epoll(conn, events);
}

/*
 * The timer goes off USEC from now. It is armed at every step of every request:
 * when it is set to go off no later, only the deadline moves, and on_conn_timer()
 * sets it again for the rest (no sd-event timer update per request).
 */
static void conn_arm_timer(SsServerConn *conn, uint64_t usec)
{
        uint64_t now;

        /*
         * Each sd-event call costs an atomic getpid check: we keep the timer's state,
         * and a batch of connections reads the time once.
         */
        if (conn->server && conn->server->batch_now)
                now = conn->server->batch_now;
        else if (sd_event_now(conn->event, CLOCK_MONOTONIC, &now) < 0) {
                conn->deadline = conn->timer_at = 0;
                (void) sd_event_source_set_time_relative(conn->timer, usec);
                (void) sd_event_source_set_enabled(conn->timer, SD_EVENT_ONESHOT);
                return;
        }
        conn->deadline = usec > UINT64_MAX - now ? UINT64_MAX : now + usec;
        if (conn->timer_at && conn->timer_at <= conn->deadline)
                return;
        if (sd_event_source_set_time(conn->timer, conn->deadline) >= 0 &&
            sd_event_source_set_enabled(conn->timer, SD_EVENT_ONESHOT) >= 0)
                conn->timer_at = conn->deadline;
        else
                conn->timer_at = 0;
}

/*
 * Another run from the loop. Inside conn_run() it is only noted and scheduled
 * when the run returns, unless the run has ended by then with nothing left to do
 * (the answer to a request sent from the state callback that delivered it): no
 * defer source switched on and off again for every request.
 */
static void conn_schedule(SsServerConn *conn)
{
        if (conn->in_run) {
                conn->run_asked = true;
                return;
        }
        if (conn->defer_on || !conn->defer)
                return;
        conn->defer_on = sd_event_source_set_enabled(conn->defer, SD_EVENT_ONESHOT) >= 0;
}

/* No run is needed any more (one asked for would find nothing). */
static void conn_unschedule(SsServerConn *conn)
{
        conn->run_asked = false;
        if (!conn->defer_on)
                return;
        conn->defer_on = false;
        (void) sd_event_source_set_enabled(conn->defer, SD_EVENT_OFF);
}

static int out_reserve(SsServerConn *conn, size_t size)
{
        uint8_t *n;

        if (conn->out_cap >= size)
                return 0;
        n = realloc(conn->out, size);
        if (!n)
                return -ENOMEM;
        conn->out = n;
        conn->out_cap = size;
        return 0;
}

/* Room for SIZE more bytes behind the output still pending: where they go, or NULL. */
static uint8_t *out_tail(SsServerConn *conn, size_t size)
{
        size_t pending = conn->out_len - conn->out_off;

        if (conn->out_off > 0) {
                memmove(conn->out, conn->out + conn->out_off, pending);
                conn->out_off = 0;
                conn->out_len = pending;
        }
        if (out_reserve(conn, pending + size) < 0)
                return NULL;
        return conn->out + pending;
}

/*
 * Whether what is buffered may wait for the end of the run (conn_run()): the
 * responses to pipelined requests then leave in one write, not one each. Only
 * complete responses wait, and only a bounded amount; a response being
 * streamed, one that closes, or output the socket has refused goes at once.
 */
static bool conn_holds_output(const SsServerConn *conn)
{
        return conn->hold && conn->phase == CONN_ACTIVE && !conn->closing && !conn->want_write &&
               (!conn->resp_started || conn->eom_queued) &&
               conn->out_len - conn->out_off < SERVER_HOLD_MAX;
}

/*
 * Writes what is buffered: 1 when all of it went (or may wait, conn_holds_output()),
 * 0 when waiting for the socket, or -errno.
 */
static int conn_flush(SsServerConn *conn)
{
        if (conn_holds_output(conn))
                return 1;
        while (conn->out_off < conn->out_len) {
                ssize_t n =
                    conn_write(conn, conn->out + conn->out_off, conn->out_len - conn->out_off);

                if (n == -EAGAIN) {
                        conn->want_write = true;
                        conn_update_events(conn);
                        return 0;
                }
                if (n < 0)
                        return (int) n;
                conn->out_off += (size_t) n;
                if (conn->req_headers_done || conn->phase == CONN_LINGER)
                        conn_arm_timer(conn, conn->server->idle_usec);
        }
        conn->out_off = conn->out_len = 0;
        if (conn->want_write) {
                conn->want_write = false;
                conn_update_events(conn);
        }
        return 1;
}

/* conn_flush(), and what was held back goes too. */
static int conn_flush_held(SsServerConn *conn)
{
        bool hold = conn->hold;
        int k;

        conn->hold = false;
        k = conn_flush(conn);
        conn->hold = hold;
        return k;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Forgets the request and its response; buffers go when nothing is left to parse. */
static void conn_request_clear(SsServerConn *conn)
{
        conn->method = conn->path = NULL;
        conn->req_started = conn->req_headers_done = conn->req_complete = false;
        conn->txn_delivered = conn->head = conn->keep_alive = conn->body_som_sent = false;
        conn->body_received = 0;
        conn->filled = 0;
        conn->answered = false;
        conn->status = 0;
        conn->tx_requested = conn->has_len = false;
        conn->len = conn->sent = 0;
        conn->resp_started = conn->chunked = conn->no_body = false;
        conn->eom_queued = conn->resp_done = false;
        /* Output still pending (the socket is full) keeps its buffer, and the others with it. */
        if (conn->in_off == conn->in_len && conn->out_off == conn->out_len) {
                SsServer *server = conn->server;

                if (server && server->n_spares < SERVER_SPARES && conn->in && conn->parser) {
                        server->spares[server->n_spares].in = conn->in;
                        server->spares[server->n_spares].parser = conn->parser;
                        server->spares[server->n_spares].out = conn->out;
                        server->spares[server->n_spares].out_cap = conn->out_cap;
                        server->n_spares++;
                        conn->in = NULL;
                        conn->parser = NULL;
                        conn->out = NULL;
                }
                conn->in = mfree(conn->in);
                conn->in_off = conn->in_len = 0;
                conn->parser = http1_request_free(conn->parser);
                conn->out = mfree(conn->out);
                conn->out_cap = 0;
        } else if (conn->parser)
                http1_request_reset(conn->parser);
}

static void conn_fill_metadata(SsServerConn *conn, const char *name, size_t name_len,
                               const char *value, size_t value_len, bool header)
{
        const PolicyStreamtype *st = conn->stream->st;

        for (size_t i = 0; i < st->n_metadata && i < 32; i++) {
                const PolicyMetadata *m = &st->metadata[i];

                if (header) {
                        if (m->header_len != name_len || name_len == 0 ||
                            strncasecmp(m->header, name, name_len) != 0)
                                continue;
                } else if (m->name[0] != name[0] || strncmp(m->name, name, name_len) != 0 ||
                           m->name[name_len] != '\0')
                        continue;
                if (ss_stream_set_metadata_at(conn->stream, i, value, value_len) >= 0)
                        conn->filled |= 1u << i;
        }
}

/* ss_stream_set_metadata(name, NULL) for every entry, without looking each name up. */
static void conn_clear_metadata(SsServerConn *conn)
{
        ss_stream_clear_metadata(conn->stream);
}

static int conn_on_target(SsServerConn *conn, const char *method, const char *target)
{
        const char *q = strchr(target, '?');
        size_t path_len = q ? (size_t) (q - target) : strlen(target);
        size_t method_len = strlen(method), need = method_len + 1 + path_len + 1;

        conn_clear_metadata(conn);
        conn->method = conn->path = NULL;
        if (need > conn->target_cap) {
                char *t = realloc(conn->target, need);

                if (!t)
                        return -ENOMEM;
                conn->target = t;
                conn->target_cap = need;
        }
        conn->method = memcpy(conn->target, method, method_len + 1);
        conn->path = conn->target + method_len + 1;
        memcpy(conn->path, target, path_len);
        conn->path[path_len] = '\0';
        conn_fill_metadata(conn, "method", 6, method, method_len, false);
        conn_fill_metadata(conn, "path", 4, conn->path, path_len, false);
        if (!q)
                return 0;
        /* Query arguments fill the metadata of their name. */
        for (const char *a = q + 1; *a;) {
                const char *end = strchr(a, '&'), *eq;
                char value[1024];
                size_t arg_len = end ? (size_t) (end - a) : strlen(a), n;

                eq = memchr(a, '=', arg_len);
                if (eq && (size_t) (a + arg_len - eq - 1) < sizeof(value)) {
                        n = (size_t) (a + arg_len - eq - 1);
                        memcpy(value, eq + 1, n);
                        n = url_decode(value, n);
                        conn_fill_metadata(conn, a, (size_t) (eq - a), value, n, false);
                }
                a += arg_len;
                if (*a == '&')
                        a++;
        }
        return 0;
}

static size_t put_mem(char *h, size_t n, const void *p, size_t len)
{
        memcpy(h + n, p, len);
        return n + len;
}

static size_t put_str(char *h, size_t n, const char *str)
{
        return put_mem(h, n, str, strlen(str));
}

/* A string literal: its length known when compiled. */
#define put_lit(h, n, lit) put_mem(h, n, "" lit, sizeof(lit) - 1)

static size_t put_uint(char *h, size_t n, uint64_t v)
{
        char digits[20];
        size_t i = sizeof(digits);

        do
                digits[--i] = (char) ('0' + v % 10);
        while (v /= 10);
        return put_mem(h, n, digits + i, sizeof(digits) - i);
}

/* Queues the header section of the response. */
static int conn_start_response(SsServerConn *conn)
{
        const PolicyStreamtype *st = conn->stream->st;
        char *h;
        size_t cap = 256, n;

        for (size_t i = 0; i < st->n_metadata; i++)
                if (conn->stream->metadata[i])
                        cap += st->metadata[i].header_len + conn->stream->metadata_len[i] + 4;
        /* Behind what is pending: earlier responses held back (conn_holds_output()). */
        h = (char *) out_tail(conn, cap);
        if (!h)
                return -ENOMEM;
        conn->no_body =
            conn->head || conn->status < 200 || conn->status == 204 || conn->status == 304;
        conn->chunked = !conn->has_len && !conn->no_body;
        if (!conn->keep_alive)
                conn->closing = true;
        /* Built with memcpy(): this runs for every response (cap covers the fixed parts). */
        n = put_lit(h, 0, "HTTP/1.1 ");
        n = put_uint(h, n, conn->status);
        n = put_lit(h, n, " ");
        n = put_str(h, n, status_reason(conn->status));
        n = put_lit(h, n, "\r\n");
        for (size_t i = 0; i < st->n_metadata && i < 32; i++) {
                const char *v = conn->stream->metadata[i];

                if (!st->metadata[i].header_len || !v || (conn->filled & (1u << i)))
                        continue;
                n = put_mem(h, n, st->metadata[i].header, st->metadata[i].header_len);
                n = put_lit(h, n, ": ");
                n = put_mem(h, n, v, strnlen(v, conn->stream->metadata_len[i]));
                n = put_lit(h, n, "\r\n");
        }
        if (conn->chunked)
                n = put_lit(h, n, "Transfer-Encoding: chunked\r\n");
        else if (conn->has_len && conn->status >= 200 && conn->status != 204 &&
                 conn->status != 304) {
                n = put_lit(h, n, "Content-Length: ");
                n = put_uint(h, n, conn->len);
                n = put_lit(h, n, "\r\n");
        }
        if (conn->status == 426) /* a WebSocket version we do not speak (ws-server.c) */
                n = put_lit(h, n, "Sec-WebSocket-Version: 13\r\n");
        if (conn->closing)
                n = put_lit(h, n, "Connection: close\r\n");
        n = put_lit(h, n, "\r\n");
        assert(n <= cap);
        conn->out_len += n;
        conn->resp_started = true;
        if (conn->no_body || (conn->has_len && conn->len == 0))
                conn->eom_queued = true;
        return 0;
}

/*
 * An error response (the parser's, or a timeout), then close. Returns false
 * when no response can be sent any more (one has started): close now.
 */
static bool conn_fail_request(SsServerConn *conn, unsigned status)
{
        conn->closing = true;
        conn->want_read = false;
        if (conn->resp_started || (conn->out_off > 0 && conn->out_off < conn->out_len))
                return false;
        conn->phase = CONN_LINGER;
        conn_arm_timer(conn, SS_SERVER_LINGER_MS * 1000ULL);
        conn->status = status;
        conn->has_len = true;
        conn->len = 0;
        conn->head = false;
        conn->keep_alive = false;
        if (conn_start_response(conn) < 0)
                return false;
        conn->eom_queued = true;
        return true;
}

/*
 * Pulls one piece of the body from tx into the output buffer, behind what is
 * still unsent there (the header section: one write for both).
 */
static SsResult conn_pull_tx(SsServerConn *conn)
{
        size_t len = SS_TX_CHUNK, pre = 0, head = conn->out_len - conn->out_off;
        uint8_t *data;
        unsigned flags = 0;
        SsResult r;

        if (out_reserve(conn, head + SERVER_CHUNK_PREFIX + SS_TX_CHUNK + SERVER_CHUNK_SUFFIX) < 0)
                return SS_DISCONNECT_ME;
        if (head > 0 && conn->out_off > 0) {
                memmove(conn->out, conn->out + conn->out_off, head);
                conn->out_off = 0;
                conn->out_len = head;
        }
        data = conn->out + head + SERVER_CHUNK_PREFIX;
        r = ss_stream_call_tx(conn->stream, data, &len, &flags);
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return r;
        if (r == SS_TX_DONT_SEND) {
                conn->tx_requested = false;
                return SS_OK;
        }
        if (len > SS_TX_CHUNK)
                len = SS_TX_CHUNK;
        if (conn->no_body)
                len = 0;
        if (!conn->chunked && len > conn->len - conn->sent) {
                len = (size_t) (conn->len - conn->sent); /* more than announced: cut */
                conn->closing = true;
        }
        conn->sent += len;
        if (conn->chunked && len > 0) {
                char prefix[SERVER_CHUNK_PREFIX];

                pre = (size_t) snprintf(prefix, sizeof(prefix), "%zx\r\n", len);
                memcpy(data - pre, prefix, pre);
                memcpy(data + len, "\r\n", 2);
                len += 2;
        }
        if (head > 0)
                memmove(conn->out + SERVER_CHUNK_PREFIX - pre, conn->out, head);
        conn->out_off = SERVER_CHUNK_PREFIX - pre;
        conn->out_len = head + SERVER_CHUNK_PREFIX + len;
        if (flags & SS_FLAG_EOM) {
                conn->eom_queued = true;
                if (conn->chunked) {
                        memcpy(conn->out + conn->out_len, "0\r\n\r\n", 5);
                        conn->out_len += 5;
                } else if (conn->sent < conn->len)
                        conn->closing = true; /* shorter than announced: the close tells */
        } else if (!conn->chunked && conn->sent == conn->len && !conn->no_body)
                conn->eom_queued = true;
        return SS_OK;
}

static SsResult conn_process(SsServerConn *conn);

/*
 * Moves the response on: flushes, starts it once answered and asked for,
 * pulls tx while the socket takes it. At its end: close, or the next request.
 */
static SsResult conn_pump(SsServerConn *conn)
{
        for (;;) {
                SsResult r;
                int k;

                k = conn_flush(conn);
                if (k < 0)
                        return SS_DISCONNECT_ME;
                if (k == 0)
                        return SS_OK;
                if (conn->closing && conn->phase == CONN_ACTIVE && !conn->txn_delivered)
                        return SS_DISCONNECT_ME; /* held responses sent, then the client's EOF */
                if (conn->phase == CONN_LINGER) {
                        if (conn->eom_queued && !conn->resp_done) {
                                conn->resp_done = true;
                                if (conn->tls)
                                        (void) gnutls_bye(conn->tls, GNUTLS_SHUT_WR);
                                (void) shutdown(conn->fd, SHUT_WR);
                                conn->want_read = true;
                                conn_update_events(conn);
                                conn_schedule(conn); /* what came meanwhile: no new edge */
                        }
                        return SS_OK;
                }
                if (conn->eom_queued) {
                        conn->resp_done = true;
                        if (conn->closing)
                                return SS_DISCONNECT_ME;
                        if (!conn->req_complete)
                                return SS_OK; /* the rest of the request body is read on */
                        /* No more requests buffered: what was held back goes now. */
                        if (conn->in_off == conn->in_len && conn_flush_held(conn) < 0)
                                return SS_DISCONNECT_ME;
                        conn_request_clear(conn);
                        conn->want_read = true;
                        conn_update_events(conn);
                        conn_arm_timer(conn, conn->server->idle_usec);
                        /*
                         * Buffered input (pipelined requests) is parsed from the loop;
                         * without any, the next request comes with an edge and a run
                         * that the answer scheduled would find nothing.
                         */
                        if (conn->in || conn->read_pending)
                                conn_schedule(conn);
                        else
                                conn_unschedule(conn);
                        return SS_OK;
                }
                if (!conn->resp_started) {
                        if (!conn->answered || !conn->tx_requested)
                                return SS_OK;
                        if (conn_start_response(conn) < 0)
                                return SS_DISCONNECT_ME;
                        if (!conn->eom_queued) {
                                /* The first piece of the body goes out with the header section. */
                                r = conn_pull_tx(conn);
                                if (r != SS_OK)
                                        return r;
                        }
                        continue;
                }
                if (!conn->tx_requested)
                        return SS_OK;
                r = conn_pull_tx(conn);
                if (r != SS_OK)
                        return r;
                if (conn->out_len == 0 && !conn->eom_queued)
                        return SS_OK; /* DONT_SEND */
        }
}

/*
 * A WebSocket upgrade request (ws-server.c): refused with its status, or the
 * connection (socket, TLS session, input read past the request) is handed
 * over and this one only keeps its place in the server's list.
 */
static SsResult conn_upgrade(SsServerConn *conn)
{
        uint64_t cl = http1_request_get_content_length(conn->parser);
        bool has_body = (cl != UINT64_MAX && cl > 0) || http1_request_is_chunked(conn->parser);
        unsigned status = ws_server_request_check(
            &conn->ws_req, conn->stream->state == SS_STATE_CONNECTED, has_body);
        int r;

        if (status != 0) {
                conn->req_headers_done = true;
                return conn_fail_request(conn, status) ? conn_pump(conn) : SS_DISCONNECT_ME;
        }
        /* Only a connection's first request upgrades: no earlier response is held. */
        assert(conn->out_len == conn->out_off);
        conn->phase = CONN_WS;
        conn_set_epoll(conn, 0);
        conn->timer = sd_event_source_disable_unref(conn->timer);
        conn->defer = sd_event_source_disable_unref(conn->defer);
        conn->defer_on = conn->run_asked = false;
        r = ws_server_conn_new(&conn->ws, conn->stream, conn->fd, conn->tls, &conn->ws_req,
                               conn->in + conn->in_off, conn->in_len - conn->in_off,
                               conn->server->idle_usec);
        conn->fd = -EBADF;
        conn->tls = NULL;
        conn->in = mfree(conn->in);
        conn->in_off = conn->in_len = 0;
        conn->parser = http1_request_free(conn->parser);
        conn->out = mfree(conn->out);
        conn->out_off = conn->out_len = conn->out_cap = 0;
        if (r < 0)
                return SS_DESTROY_ME;
        return ws_server_conn_start(conn->ws);
}

static SsResult conn_on_event(SsServerConn *conn, const Http1RequestEvent *ev)
{
        SsStream *s = conn->stream;
        SsResult r;

        switch (ev->type) {
        case HTTP1_REQUEST_EVENT_REQUEST:
                if (conn_on_target(conn, ev->method, ev->target) < 0)
                        return SS_DISCONNECT_ME;
                ws_server_request_init(&conn->ws_req, ev->method, ev->version_minor);
                conn->head = http1_request_is_head(conn->parser);
                return SS_OK;
        case HTTP1_REQUEST_EVENT_HEADER:
                conn_fill_metadata(conn, ev->name, ev->name_len, ev->value, ev->value_len, true);
                ws_server_request_header(&conn->ws_req, s->st, ev->name, ev->name_len, ev->value,
                                         ev->value_len);
                return SS_OK;
        case HTTP1_REQUEST_EVENT_HEADERS_COMPLETE:
                if (conn->ws_req.upgrade && ws_server_is_enabled(s->st))
                        return conn_upgrade(conn);
                conn->req_headers_done = true;
                conn->keep_alive = http1_request_is_keep_alive(conn->parser);
                conn_arm_timer(conn, conn->server->idle_usec);
                if (http1_request_expects_continue(conn->parser)) {
                        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                        uint8_t *t = out_tail(conn, sizeof(cont));

                        if (!t)
                                return SS_DISCONNECT_ME;
                        memcpy(t, cont, sizeof(cont) - 1);
                        conn->out_len += sizeof(cont) - 1;
                }
                conn->txn_delivered = true;
                return ss_stream_deliver_state(s, SS_STATE_SERVER_TXN, 0);
        case HTTP1_REQUEST_EVENT_BODY: {
                unsigned flags = conn->body_som_sent ? 0 : SS_FLAG_SOM;
                uint64_t cl = http1_request_get_content_length(conn->parser);

                conn->body_som_sent = true;
                conn->body_received += ev->size;
                if (cl != UINT64_MAX && conn->body_received == cl)
                        flags |= SS_FLAG_EOM;
                return ss_stream_deliver_rx(s, ev->data, ev->size, flags);
        }
        case HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE:
                conn->req_complete = true;
                if (conn->body_som_sent && http1_request_is_chunked(conn->parser)) {
                        r = ss_stream_deliver_rx(s, NULL, 0, SS_FLAG_EOM);
                        if (r != SS_OK)
                                return r;
                }
                if (!conn->answered) {
                        conn->answered = true;
                        conn->status = 404;
                        conn->tx_requested = true;
                        conn->has_len = true;
                        conn->len = 0;
                }
                return SS_OK;
        }
        return SS_OK;
}

/* The connection speaks h2 from here on; what was read already goes to the session. */
static SsResult conn_start_h2(SsServerConn *conn)
{
        int r = h2_server_new(&conn->h2, conn, conn->in ? conn->in + conn->in_off : NULL,
                              conn->in_len - conn->in_off);

        conn->in = mfree(conn->in);
        conn->in_off = conn->in_len = 0;
        conn->parser = http1_request_free(conn->parser);
        if (r < 0)
                return SS_DISCONNECT_ME;
        conn->phase = CONN_H2;
        return h2_server_run(conn->h2);
}

/* Reads and parses while a request is being received; stops while a response is under way. */
static SsResult conn_process(SsServerConn *conn)
{
        unsigned reads = 0;

        while (conn->phase == CONN_ACTIVE) {
                Http1RequestEvent ev;
                size_t used = 0;
                SsResult r;
                int k = 0;

                if (conn->req_complete) {
                        /* One request at a time: the next waits until the response is done. */
                        conn->want_read = false;
                        conn_update_events(conn);
                        return conn_pump(conn);
                }
                if (conn->parser) {
                        /* What is buffered first (an event may need no input at all). */
                        k = http1_request_feed(conn->parser, conn->in + conn->in_off,
                                               conn->in_len - conn->in_off, &used, &ev);
                        conn->in_off += used;
                        if (k < 0) {
                                if (!conn_fail_request(conn, http1_request_error_status(k)))
                                        return SS_DISCONNECT_ME;
                                return conn_pump(conn);
                        }
                }
                if (!conn->parser || k == 0) {
                        ssize_t n;

                        if (conn->eof) /* what is still pending goes first (conn_pump()) */
                                return conn->closing && conn->out_len > conn->out_off
                                           ? SS_OK
                                           : SS_DISCONNECT_ME;
                        if (reads++ >= SERVER_READ_BURST) {
                                conn_schedule(conn);
                                return SS_OK;
                        }
                        if (!conn->in && !conn->parser && !conn->out && conn->server &&
                            conn->server->n_spares > 0) {
                                SsServer *server = conn->server;
                                unsigned i = --server->n_spares;

                                conn->in = server->spares[i].in;
                                conn->parser = server->spares[i].parser;
                                conn->out = server->spares[i].out;
                                conn->out_cap = server->spares[i].out_cap;
                                http1_request_reset(conn->parser);
                        }
                        if (!conn->in) {
                                conn->in = malloc(SERVER_READ_BUF);
                                if (!conn->in)
                                        return SS_DISCONNECT_ME;
                        }
                        if (!conn->parser) {
                                if (http1_request_new(&conn->parser) < 0)
                                        return SS_DISCONNECT_ME;
                                http1_request_set_limits(conn->parser, SS_SERVER_MAX_HEADER_BYTES,
                                                         SS_SERVER_MAX_BODY);
                        }
                        /* Drained, and no edge since: the next bytes come with one. */
                        n = conn->read_pending ? conn_read(conn, conn->in, SERVER_READ_BUF)
                                               : -EAGAIN;
                        if (n == -EAGAIN) {
                                conn->want_read = true;
                                conn_update_events(conn);
                                return conn_pump(conn);
                        }
                        if (n <= 0) {
                                conn->eof = true;
                                /*
                                 * A response under way, or those held back, still go out;
                                 * then the close.
                                 */
                                if ((conn->txn_delivered && conn->answered) ||
                                    conn->out_len > conn->out_off) {
                                        conn->closing = true;
                                        conn_update_events(conn);
                                        return conn_pump(conn);
                                }
                                return SS_DISCONNECT_ME;
                        }
                        conn->in_off = 0;
                        conn->in_len = (size_t) n;
                        if (!conn->tls && !conn->req_started && conn->out_len == conn->out_off &&
                            conn->stream->state == SS_STATE_CONNECTED &&
                            conn->in_len >= H2_SERVER_PREFACE_LEN &&
                            memcmp(conn->in, H2_SERVER_PREFACE, H2_SERVER_PREFACE_LEN) == 0)
                                return conn_start_h2(conn); /* h2c with prior knowledge */
                        if (!conn->req_started || conn->req_headers_done)
                                conn_arm_timer(conn, conn->server->idle_usec);
                        conn->req_started = true;
                        continue;
                }
                r = conn_on_event(conn, &ev);
                if (r != SS_OK)
                        return r;
                r = conn_pump(conn);
                if (r != SS_OK)
                        return r;
        }
        return SS_OK;
}

/* ---- connection entry points ------------------------------------------------------------- */

static void conn_free(SsServerConn *conn);

/* Acts on a result at an entry point: anything but OK ends the connection and its stream. */
static void conn_dispatch(SsServerConn *conn, SsResult r)
{
        if (r == SS_OK || r == SS_TX_DONT_SEND)
                return;
        ss_stream_dispatch(conn->stream, SS_DESTROY_ME);
}

static SsResult conn_linger_read(SsServerConn *conn)
{
        uint8_t buf[4096];

        for (unsigned i = 0; i < 64; i++) {
                ssize_t n = conn_read(conn, buf, sizeof(buf));

                if (n == -EAGAIN)
                        return SS_OK;
                if (n <= 0)
                        return SS_DISCONNECT_ME;
                conn->linger_bytes += (size_t) n;
                if (conn->linger_bytes > SS_SERVER_LINGER_BYTES)
                        return SS_DISCONNECT_ME;
        }
        conn_schedule(conn);
        return SS_OK;
}

static SsResult conn_handshake(SsServerConn *conn)
{
        int r = gnutls_handshake(conn->tls);

        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ||
            (r < 0 && !gnutls_error_is_fatal(r))) {
                conn_update_events(conn);
                return SS_OK;
        }
        if (r < 0)
                return SS_DISCONNECT_ME;
        conn->phase = CONN_ACTIVE;
        conn->want_read = true;
        conn_update_events(conn);
        {
                gnutls_datum_t alpn = {};

                if (gnutls_alpn_get_selected_protocol(conn->tls, &alpn) == 0 && alpn.size == 2 &&
                    memcmp(alpn.data, "h2", 2) == 0)
                        return conn_start_h2(conn);
        }
        return conn_process(conn);
}

static SsResult conn_run_phase(SsServerConn *conn, bool writable)
{
        switch (conn->phase) {
        case CONN_HANDSHAKE:
                return conn_handshake(conn);
        case CONN_LINGER: {
                SsResult r = SS_OK;

                if (writable || conn->out_len)
                        r = conn_pump(conn);
                if (r == SS_OK && conn->resp_done)
                        r = conn_linger_read(conn);
                return r;
        }
        case CONN_WS:
                return SS_OK;
        case CONN_H2:
                return h2_server_run(conn->h2);
        case CONN_ACTIVE:
                if (writable && !conn->req_complete) {
                        SsResult r = conn_pump(conn);

                        if (r != SS_OK)
                                return r;
                }
                if (conn->req_complete)
                        return conn_pump(conn);
                return conn_process(conn);
        }
        return SS_OK;
}

/* A run of the connection (the loop's); the runs it asks for meanwhile are scheduled at its end. */
static SsResult conn_run(SsServerConn *conn, bool writable)
{
        SsResult r;

        if (conn->in_run) /* not from the loop: the outer run schedules */
                return conn_run_phase(conn, writable);
        conn->in_run = true;
        conn->run_asked = false;
        conn->hold = true;
        r = conn_run_phase(conn, writable);
        conn->hold = false;
        /* What was held back for one write (conn_holds_output()) goes now. */
        if (r == SS_OK && conn->server && conn->fd >= 0 && conn->out_len > conn->out_off)
                r = conn_pump(conn);
        conn->in_run = false;
        if (conn->run_asked) {
                conn->run_asked = false;
                conn_schedule(conn);
        }
        return r;
}

static SsServer *server_free(SsServer *server);

/*
 * The server's epoll instance has ready connections: each of them runs once, as
 * it would for its own event source; more than a batch waits for the next
 * wake-up, after the loop's other sources.
 */
static int on_server_conns_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct epoll_event events[SERVER_EVENT_BATCH];
        SsServer *server = userdata;
        int n;

        (void) source;
        (void) revents;
        n = epoll_wait(fd, events, SERVER_EVENT_BATCH, 0);
        if (n <= 0)
                return 0;
        server->in_conns = true;
        server->batch = events;
        server->n_batch = (unsigned) n;
        if (sd_event_now(server->stream->context->event, CLOCK_MONOTONIC, &server->batch_now) < 0)
                server->batch_now = 0;
        for (int i = 0; i < n && !server->free_pending; i++) {
                SsServerConn *conn = events[i].data.ptr;

                /* NULL: gone since (conn_unlink()); no events: taken out since. */
                if (!conn || !conn->events)
                        continue;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                        conn->read_pending = true;
                conn_dispatch(conn, conn_run(conn, events[i].events & EPOLLOUT));
        }
        server->batch = NULL;
        server->n_batch = 0;
        server->batch_now = 0;
        server->in_conns = false;
        if (server->free_pending)
                server_free(server);
        return 0;
}

static int on_conn_defer(sd_event_source *source, void *userdata)
{
        SsServerConn *conn = userdata;

        (void) source;
        conn->defer_on = false; /* a oneshot source is off when it runs */
        conn_dispatch(conn, conn_run(conn, false));
        return 0;
}

static int on_conn_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        SsServerConn *conn = userdata;
        uint64_t now;

        (void) usec;
        conn->timer_at = 0; /* a oneshot source is off when it runs */
        if (sd_event_now(conn->event, CLOCK_MONOTONIC, &now) >= 0 && now < conn->deadline) {
                /* Moved on since it was set (conn_arm_timer()). */
                if (sd_event_source_set_time(source, conn->deadline) >= 0 &&
                    sd_event_source_set_enabled(source, SD_EVENT_ONESHOT) >= 0)
                        conn->timer_at = conn->deadline;
                return 0;
        }
        if (conn->phase == CONN_H2) {
                conn_dispatch(conn, h2_server_on_timer(conn->h2));
                return 0;
        }
        if (conn->phase == CONN_ACTIVE && conn->req_started && !conn->resp_started &&
            !conn->req_complete) {
                /* A request that does not arrive in time: 408, then close. */
                conn_dispatch(conn,
                              conn_fail_request(conn, 408) ? conn_pump(conn) : SS_DISCONNECT_ME);
                return 0;
        }
        conn_dispatch(conn, SS_DISCONNECT_ME);
        return 0;
}

static void conn_unlink(SsServerConn *conn)
{
        SsServer *server = conn->server;

        if (!server)
                return;
        conn_set_epoll(conn, 0);
        for (unsigned i = 0; i < server->n_batch; i++)
                if (server->batch[i].data.ptr == conn)
                        server->batch[i].data.ptr = NULL;
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                server->head = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        else
                server->tail = conn->prev;
        conn->prev = conn->next = NULL;
        server->n_conns--;
        conn->server = NULL;
}

static void conn_free(SsServerConn *conn)
{
        if (!conn)
                return;
        conn_unlink(conn);
        ws_server_conn_free(conn->ws);
        h2_server_free(conn->h2);
        if (conn->h2req)
                h2_server_request_detach(conn->h2req);
        sd_event_source_disable_unref(conn->timer);
        sd_event_source_disable_unref(conn->defer);
        if (conn->tls)
                gnutls_deinit(conn->tls);
        if (conn->fd >= 0)
                (void) close(conn->fd);
        http1_request_free(conn->parser);
        free(conn->in);
        free(conn->out);
        free(conn->target);
        free(conn);
}

/* An idle connection may give its place to a new one. */
static bool conn_is_idle(const SsServerConn *conn)
{
        if (conn->phase == CONN_HANDSHAKE)
                return true;
        if (conn->phase == CONN_H2)
                return h2_server_is_idle(conn->h2) && conn->stream->in_callback == 0;
        return conn->phase == CONN_ACTIVE && !conn->req_started && !conn->resp_started &&
               conn->stream->in_callback == 0;
}

static void server_accept_one(SsServer *server, int fd)
{
        SsContext *c = server->stream->context;
        SsServerConn *conn;
        SsStream *s;
        SsResult r;
        int k;

        if (server->n_conns >= SS_SERVER_MAX_CONNECTIONS) {
                SsServerConn *victim = server->head;

                while (victim && !conn_is_idle(victim))
                        victim = victim->next;
                if (!victim) {
                        (void) close(fd);
                        return;
                }
                ss_stream_dispatch(victim->stream, SS_DESTROY_ME);
                /* Its callbacks may have destroyed the server stream. */
                if (server->free_pending || server->n_conns >= SS_SERVER_MAX_CONNECTIONS) {
                        (void) close(fd);
                        return;
                }
        }

        conn = calloc(1, sizeof(*conn));
        if (!conn) {
                (void) close(fd);
                return;
        }
        conn->fd = fd;
        conn->read_pending = true;
        if (!server->unix_path) {
                int one = 1;

                /* A response goes out as header section and body pieces: no Nagle delay. */
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        conn->phase = server->creds ? CONN_HANDSHAKE : CONN_ACTIVE;
        conn->want_read = true;
        conn->event = c->event;
        if (sd_event_add_time_relative(c->event, &conn->timer, CLOCK_MONOTONIC, server->idle_usec,
                                       0, on_conn_timer, conn) < 0 ||
            sd_event_add_defer(c->event, &conn->defer, on_conn_defer, conn) < 0)
                goto fail;
        /* Counted from the loop's now, as sd_event_add_time_relative() did. */
        conn_arm_timer(conn, server->idle_usec);
        (void) sd_event_source_set_enabled(conn->defer, SD_EVENT_OFF);
        if (server->creds) {
                /* No SIGPIPE from a peer gone (as the client's transport): the
                 * application's process must not depend on ignoring it. */
                if (gnutls_init(&conn->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
                        goto fail;
                if (gnutls_set_default_priority(conn->tls) < 0 ||
                    gnutls_credentials_set(conn->tls, GNUTLS_CRD_CERTIFICATE, server->creds) < 0)
                        goto fail;
                {
                        gnutls_datum_t alpn[] = {{(unsigned char *) "h2", 2},
                                                 {(unsigned char *) "http/1.1", 8}};
                        bool h2 = server->offer_h2;

                        (void) gnutls_alpn_set_protocols(conn->tls, h2 ? alpn : alpn + 1,
                                                         h2 ? 2 : 1, GNUTLS_ALPN_SERVER_PRECEDENCE);
                }
                gnutls_transport_set_int(conn->tls, fd);
        }

        k = ss_stream_new_accepted(&s, server->stream, conn);
        if (k == -ECANCELED)
                return; /* CREATING asked to be destroyed: the stream took conn with it */
        if (k < 0)
                goto fail;
        if (server->free_pending) {
                /* CREATING destroyed the server stream. */
                ss_stream_dispatch(s, SS_DESTROY_ME);
                return;
        }
        conn->stream = s;
        conn->server = server;
        conn->prev = server->tail;
        if (server->tail)
                server->tail->next = conn;
        else
                server->head = conn;
        server->tail = conn;
        server->n_conns++;
        conn_set_epoll(conn, EPOLLIN);
        if (!conn->events) {
                ss_stream_dispatch(s, SS_DESTROY_ME);
                return;
        }

        r = ss_stream_deliver_state(s, SS_STATE_CONNECTING, 0);
        if (r == SS_OK)
                r = ss_stream_deliver_state(s, SS_STATE_CONNECTED, 0);
        conn_dispatch(conn, r);
        return;
fail:
        conn_free(conn);
}

static int server_pause_accept(SsServer *server);

static int on_server_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        SsServer *server = userdata;

        (void) source;
        (void) revents;
        server->in_accept = true;
        for (unsigned i = 0; i < SERVER_ACCEPT_BURST && !server->free_pending; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM)
                                (void) server_pause_accept(server);
                        break;
                }
                server_accept_one(server, cfd);
        }
        server->in_accept = false;
        if (server->free_pending)
                server_free(server);
        return 0;
}

static int on_server_pause(sd_event_source *source, uint64_t usec, void *userdata)
{
        SsServer *server = userdata;

        (void) source;
        (void) usec;
        (void) sd_event_source_set_enabled(server->io, SD_EVENT_ON);
        return 0;
}

static int server_pause_accept(SsServer *server)
{
        (void) sd_event_source_set_enabled(server->io, SD_EVENT_OFF);
        if (!server->pause_timer)
                return sd_event_add_time_relative(
                    server->stream->context->event, &server->pause_timer, CLOCK_MONOTONIC,
                    SERVER_EMFILE_PAUSE_USEC, 0, on_server_pause, server);
        (void) sd_event_source_set_time_relative(server->pause_timer, SERVER_EMFILE_PAUSE_USEC);
        return sd_event_source_set_enabled(server->pause_timer, SD_EVENT_ONESHOT);
}

/* ---- listening --------------------------------------------------------------------------- */

static int server_fail(const SsServer *server, int r, const char *format, ...) _printf_(3, 4);

/* Records why the server cannot start (prefixed with the streamtype) and returns r. */
static int server_fail(const SsServer *server, int r, const char *format, ...)
{
        int n = snprintf(server_error, sizeof(server_error),
                         "streamtype %s: ", server->stream->st->name);
        va_list ap;

        va_start(ap, format);
        if (n > 0 && (size_t) n < sizeof(server_error))
                (void) vsnprintf(server_error + n, sizeof(server_error) - (size_t) n, format, ap);
        va_end(ap);
        return r;
}

/* A PEM file of server_cert or server_key (key says which), bounded, into ret (to free()). */
static int read_pem_file(const SsServer *server, const char *key, const char *ref, const char *path,
                         gnutls_datum_t *ret)
{
        char label[128 + 4096], *buf = NULL;
        size_t size = 0;
        int r;

        r = read_file_bounded(path, 0, SERVER_CERT_FILE_MAX, &buf, &size);
        if (r >= 0) {
                ret->data = (unsigned char *) buf;
                ret->size = (unsigned) size;
                return 0;
        }
        /* "server_key file:/x.pem" names the file already; "server_key web" does not. */
        if (strncmp(ref, "file:", 5) == 0)
                (void) snprintf(label, sizeof(label), "%s %s", key, ref);
        else
                (void) snprintf(label, sizeof(label), "%s %s (file %s)", key, ref, path);
        if (r == -EFBIG)
                return server_fail(server, r, "%s: larger than %u bytes", label,
                                   SERVER_CERT_FILE_MAX);
        if (r == -EISDIR || r == -EBADFD)
                return server_fail(server, -EINVAL, "%s: not a regular file", label);
        return server_fail(server, r, "%s: %s", label, strerror(-r));
}

/*
 * server_cert or server_key (key says which): a cert name of the policy, or a
 * "file:" path; its bytes (to free()) and whether they are PEM.
 */
static int load_cert_ref(const SsServer *server, const char *key, const char *ref,
                         gnutls_datum_t *ret, bool *ret_pem)
{
        const PolicyCert *cert = policy_find_cert(server->stream->policy, ref);

        *ret_pem = true;
        if (!cert) {
                if (strncmp(ref, "file:", 5) != 0)
                        return server_fail(server, -ENOENT, "%s %s: no such cert in the policy",
                                           key, ref);
                return read_pem_file(server, key, ref, ref + 5, ret);
        }
        if (cert->path)
                return read_pem_file(server, key, ref, cert->path, ret);
        ret->data = malloc(cert->der_size);
        if (!ret->data)
                return -ENOMEM;
        memcpy(ret->data, cert->der, cert->der_size);
        ret->size = (unsigned) cert->der_size;
        *ret_pem = false;
        return 0;
}

static int server_load_credentials(SsServer *server)
{
        const PolicyStreamtype *st = server->stream->st;
        gnutls_datum_t cert = {}, key = {};
        bool cert_pem = true, key_pem = true;
        int r;

        if (!st->server_cert || !st->server_key)
                return server_fail(server, -ENOKEY, "tls needs server_cert and server_key");
        r = load_cert_ref(server, "server_cert", st->server_cert, &cert, &cert_pem);
        if (r >= 0)
                r = load_cert_ref(server, "server_key", st->server_key, &key, &key_pem);
        if (r >= 0 && cert_pem != key_pem)
                r = server_fail(server, -EINVAL,
                                "server_cert %s and server_key %s: one is PEM, the other DER",
                                st->server_cert, st->server_key);
        if (r >= 0) {
                char reason[256];

                r = tls_lib_load(reason, sizeof(reason));
                if (r < 0)
                        r = server_fail(server, r, "%s", reason);
        }
        if (r >= 0) {
                r = gnutls_certificate_allocate_credentials(&server->creds);
                if (r < 0)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                r = gnutls_certificate_set_x509_key_mem(server->creds, &cert, &key,
                                                        cert_pem ? GNUTLS_X509_FMT_PEM
                                                                 : GNUTLS_X509_FMT_DER);
                if (r < 0)
                        r = server_fail(server, -EINVAL, "server_cert %s, server_key %s: %s",
                                        st->server_cert, st->server_key, gnutls_strerror(r));
                else
                        r = 0;
        }
        /*
         * h2 is offered in ALPN only when it can be served: where libnghttp2 cannot be
         * loaded, a client that would have chosen h2 speaks HTTP/1.1 instead of being
         * sent away with a GOAWAY.
         */
        if (r >= 0)
                server->offer_h2 = h2_lib_load(NULL, 0) >= 0;
        if (key.data) {
                explicit_bzero(key.data, key.size);
                free(key.data);
        }
        free(cert.data);
        return r;
}

static int server_bind(SsServer *server)
{
        const PolicyStreamtype *st = server->stream->st;
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_un un;
        } addr = {};
        socklen_t len;
        int fd, one = 1;

        if (st->unix_socket) {
                struct stat sb;
                size_t n = st->endpoint ? strlen(st->endpoint) : 0;

                if (n == 0 || n >= sizeof(addr.un.sun_path))
                        return -EINVAL;
                addr.un.sun_family = AF_UNIX;
                memcpy(addr.un.sun_path, st->endpoint, n);
                len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
                /* A socket left by a previous run is replaced; anything else is not. */
                if (lstat(st->endpoint, &sb) == 0 && S_ISSOCK(sb.st_mode))
                        (void) unlink(st->endpoint);
                server->unix_path = strdup(st->endpoint);
                if (!server->unix_path)
                        return -ENOMEM;
        } else if (!st->endpoint || strcmp(st->endpoint, "*") == 0 ||
                   strcmp(st->endpoint, "::") == 0) {
                addr.in6.sin6_family = AF_INET6;
                addr.in6.sin6_addr = in6addr_any;
                addr.in6.sin6_port = htons(st->port);
                len = sizeof(addr.in6);
        } else if (inet_pton(AF_INET, st->endpoint, &addr.in.sin_addr) == 1) {
                addr.in.sin_family = AF_INET;
                addr.in.sin_port = htons(st->port);
                len = sizeof(addr.in);
        } else if (inet_pton(AF_INET6, st->endpoint, &addr.in6.sin6_addr) == 1) {
                addr.in6.sin6_family = AF_INET6;
                addr.in6.sin6_port = htons(st->port);
                len = sizeof(addr.in6);
        } else if (strcmp(st->endpoint, "localhost") == 0) {
                addr.in.sin_family = AF_INET;
                addr.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                addr.in.sin_port = htons(st->port);
                len = sizeof(addr.in);
        } else
                return -EADDRNOTAVAIL; /* names are not resolved for listening */

        fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        server->fd = fd;
        if (addr.sa.sa_family != AF_UNIX)
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, &addr.sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        return 0;
}

static SsServer *server_free(SsServer *server)
{
        if (!server)
                return NULL;
        assert(!server->head);
        for (unsigned i = 0; i < server->n_spares; i++) {
                free(server->spares[i].in);
                free(server->spares[i].out);
                http1_request_free(server->spares[i].parser);
        }
        sd_event_source_disable_unref(server->io);
        sd_event_source_disable_unref(server->conns_io);
        if (server->epfd >= 0)
                (void) close(server->epfd);
        sd_event_source_disable_unref(server->pause_timer);
        if (server->fd >= 0)
                (void) close(server->fd);
        if (server->unix_path) {
                (void) unlink(server->unix_path);
                free(server->unix_path);
        }
        if (server->creds)
                gnutls_certificate_free_credentials(server->creds);
        free(server);
        return NULL;
}

int ss_server_start(SsStream *s)
{
        SsServer *server;
        int r;

        assert(s->st->server);
        if (!s->context->event)
                return -EOPNOTSUPP;
        server = calloc(1, sizeof(*server));
        if (!server)
                return -ENOMEM;
        server->stream = s;
        server->fd = -EBADF;
        server->epfd = -EBADF;
        server_error[0] = 0;
        server->idle_usec = (s->st->timeout_ms ? s->st->timeout_ms : SS_SERVER_IDLE_MS) * 1000ULL;
        if (s->st->tls) {
                r = server_load_credentials(server);
                if (r < 0)
                        goto fail;
        }
        r = server_bind(server);
        if (r < 0) {
                if (s->st->unix_socket)
                        (void) server_fail(server, r, "cannot listen on unix socket %s: %s",
                                           strempty(s->st->endpoint), strerror(-r));
                else
                        (void) server_fail(server, r, "cannot listen on %s port %u: %s",
                                           s->st->endpoint ? s->st->endpoint : "*",
                                           (unsigned) s->st->port, strerror(-r));
                goto fail;
        }
        r = sd_event_add_io(s->context->event, &server->io, server->fd, EPOLLIN, on_server_io,
                            server);
        if (r < 0)
                goto fail;
        server->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (server->epfd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(s->context->event, &server->conns_io, server->epfd, EPOLLIN,
                            on_server_conns_io, server);
        if (r < 0)
                goto fail;
        s->server = server;
        return 0;
fail:
        server_free(server);
        return r;
}

void ss_server_stream_destroy(SsStream *s)
{
        if (s->server_conn) {
                SsServerConn *conn = s->server_conn;

                s->server_conn = NULL;
                conn_free(conn);
        }
        if (s->server) {
                SsServer *server = s->server;

                while (server->head) {
                        SsServerConn *conn = server->head;
                        SsStream *cs = conn->stream;

                        if (cs->in_callback > 0) {
                                /* Freed from inside one of its own callbacks: it goes then. */
                                cs->destroy_requested = true;
                                conn_unlink(conn);
                                continue;
                        }
                        ss_stream_dispatch(cs, SS_DESTROY_ME);
                }
                s->server = NULL;
                if (server->in_accept || server->in_conns) {
                        server->stream = NULL;
                        server->free_pending = true;
                        (void) sd_event_source_set_enabled(server->io, SD_EVENT_OFF);
                        (void) sd_event_source_set_enabled(server->conns_io, SD_EVENT_OFF);
                } else
                        server_free(server);
        }
}

int ss_server_request_tx(SsStream *s)
{
        SsServerConn *conn = s->server_conn;

        if (!conn)
                return s->server ? -EINVAL : -ESTALE;
        if (conn->ws)
                return ws_server_request_tx(conn->ws);
        if (conn->h2req) {
                bool has_len = s->has_tx_len;

                s->has_tx_len = false;
                return h2_server_request_tx(conn->h2req, has_len, s->tx_len);
        }
        if (!conn->resp_started) {
                conn->has_len = s->has_tx_len;
                conn->len = s->tx_len;
        }
        s->has_tx_len = false;
        if (!conn->txn_delivered || conn->resp_done)
                return -ESTALE;
        conn->tx_requested = true;
        conn_schedule(conn);
        return 0;
}

/* ---- public API -------------------------------------------------------------------------- */

int ss_stream_server_ack(SsStream *s, unsigned status)
{
        SsServerConn *conn;

        if (!s || (status != 0 && (status < 100 || status > 999)))
                return -EINVAL;
        conn = s->server_conn;
        if (!conn)
                return s->st->server && !s->server ? -ESTALE : -EINVAL;
        if (conn->h2req)
                return h2_server_request_ack(conn->h2req, status ? status : 200);
        if (!conn->txn_delivered || conn->resp_done || conn->phase != CONN_ACTIVE)
                return -ESTALE;
        if (conn->resp_started)
                return -EBUSY;
        conn->answered = true;
        conn->status = status ? status : 200;
        conn_schedule(conn);
        return 0;
}

int ss_stream_ws_close(SsStream *s, uint16_t code, const char *reason)
{
        SsServerConn *conn;

        if (!s)
                return -EINVAL;
        conn = s->server_conn;
        if (!conn) /* a connection stream being destroyed has lost it already */
                return s->st->server && !s->server ? -ESTALE : -EINVAL;
        if (!conn->ws)
                return -EOPNOTSUPP;
        if (s->freeing || s->destroy_requested)
                return -ESTALE; /* going: conn_free() says 1001 if it can */
        return ws_server_close(conn->ws, code, reason);
}

const char *ss_stream_server_get_error(void)
{
        return server_error[0] ? server_error : NULL;
}

int ss_stream_server_get_request(SsStream *s, const char **ret_method, const char **ret_path)
{
        SsServerConn *conn;

        if (!s)
                return -EINVAL;
        conn = s->server_conn;
        if (!conn || !conn->method)
                return -ESTALE;
        if (ret_method)
                *ret_method = conn->method;
        if (ret_path)
                *ret_path = conn->path;
        return 0;
}

SsStream *ss_stream_server_get_parent(SsStream *s)
{
        SsServerConn *conn = s ? s->server_conn : NULL;

        if (conn && conn->h2conn)
                conn = conn->h2conn; /* an h2 request: its connection's server */
        if (!conn || !conn->server)
                return NULL;
        return conn->server->stream;
}

int ss_stream_server_foreach(SsStream *server, SsServerForeachCallback cb, void *userdata)
{
        if (!server || !server->server || !cb)
                return -EINVAL;
        for (SsServerConn *conn = server->server->head; conn;) {
                SsServerConn *next = conn->next;
                int r;

                if (conn->stream->connected_delivered) {
                        r = cb(conn->stream, userdata);
                        if (r < 0)
                                return r;
                }
                conn = next;
        }
        return 0;
}

int ss_stream_server_n_connections(SsStream *server)
{
        if (!server || !server->server)
                return -EINVAL;
        return (int) server->server->n_conns;
}

/* ---- h2 (h2-server.h) -------------------------------------------------------------------- */

ssize_t ss_server_conn_read(SsServerConn *conn, void *buf, size_t size)
{
        return conn_read(conn, buf, size);
}

ssize_t ss_server_conn_write(SsServerConn *conn, const void *buf, size_t size)
{
        return conn_write(conn, buf, size);
}

void ss_server_conn_set_events(SsServerConn *conn, bool read, bool write)
{
        conn->want_read = read;
        conn->want_write = write;
        conn_update_events(conn);
}

void ss_server_conn_arm_timer(SsServerConn *conn, uint64_t usec)
{
        conn_arm_timer(conn, usec);
}

void ss_server_conn_schedule(SsServerConn *conn)
{
        conn_schedule(conn);
}

SsStream *ss_server_conn_get_stream(SsServerConn *conn)
{
        return conn->stream;
}

uint64_t ss_server_conn_get_idle_usec(SsServerConn *conn)
{
        return conn->server ? conn->server->idle_usec : SS_SERVER_IDLE_MS * 1000ULL;
}

int ss_server_request_new(SsServerConn *conn, H2ServerRequest *req, SsServerConn **ret)
{
        SsServerConn *rc;
        SsStream *s;
        int k;

        if (!conn->server)
                return -ESTALE; /* the server stream is going */
        rc = calloc(1, sizeof(*rc));
        if (!rc)
                return -ENOMEM;
        rc->fd = -EBADF;
        rc->phase = CONN_ACTIVE;
        rc->h2req = req;
        rc->h2conn = conn;
        k = ss_stream_new_accepted(&s, conn->server->stream, rc);
        if (k == -ECANCELED)
                return k; /* the stream took rc with it */
        if (k < 0) {
                rc->h2req = NULL;
                conn_free(rc);
                return k;
        }
        rc->stream = s;
        rc->txn_delivered = true;
        *ret = rc;
        return 0;
}

void ss_server_request_orphan(SsServerConn *rc)
{
        rc->h2req = NULL;
        rc->h2conn = NULL;
        rc->txn_delivered = false;
}

int ss_server_request_set_target(SsServerConn *rc, const char *method, const char *target)
{
        return conn_on_target(rc, method, target);
}

void ss_server_request_header(SsServerConn *rc, const char *name, size_t name_len,
                              const char *value, size_t value_len)
{
        conn_fill_metadata(rc, name, name_len, value, value_len, true);
}

int ss_server_request_foreach_response_header(SsServerConn *rc, SsServerHeaderCallback cb,
                                              void *userdata)
{
        const PolicyStreamtype *st = rc->stream->st;

        for (size_t i = 0; i < st->n_metadata && i < 32; i++) {
                const char *hn = st->metadata[i].header;
                int r;

                if (!st->metadata[i].header_len || !rc->stream->metadata[i] ||
                    (rc->filled & (1u << i)))
                        continue;
                r = cb(hn, st->metadata[i].header_len, rc->stream->metadata[i],
                       rc->stream->metadata_len[i], userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

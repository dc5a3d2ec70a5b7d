/* SPDX-License-Identifier: MIT */
/*
 * WebSocket on server streamtypes (RFC 6455, the server end), on the framing
 * of ws-frame.c. server.c hands an upgraded connection over (ws-server.h);
 * from then on this file owns its socket, TLS session and event sources:
 *
 * - Handshake (RFC 6455 4.2): GET, HTTP/1.1, Upgrade listing websocket,
 *   Connection listing upgrade, one Sec-WebSocket-Key that is base64 of 16
 *   bytes, Sec-WebSocket-Version 13 (426 with "Sec-WebSocket-Version: 13"
 *   otherwise), no body, and one of the streamtype's ws_subprotocol names
 *   offered (the client's first acceptable offer is chosen); anything else
 *   is refused with 400 and the connection closes. The answer is 101 with
 *   Sec-WebSocket-Accept and the chosen Sec-WebSocket-Protocol; then
 *   SERVER_UPGRADE on the connection's stream, whose handlers the application
 *   may swap (ss_stream_change_handlers()).
 * - rx: each data message arrives as pieces from SS_FLAG_SOM to SS_FLAG_EOM
 *   (a 0-byte message is one empty piece with both), text and binary alike,
 *   fragments joined, control frames between fragments handled on the side.
 *   Client frames must be masked; text must be UTF-8; a message may hold at
 *   most ws_max_message bytes (default SS_SERVER_MAX_BODY), across its
 *   fragments. A violation closes this connection only,
 *   with 1002 (protocol), 1007 (UTF-8) or 1009 (size).
 * - tx: one ss_stream_request_tx() gives tx callbacks while the socket takes
 *   the bytes until one sets SS_FLAG_EOM or returns SS_TX_DONT_SEND; each
 *   callback's bytes are one frame (TEXT, or BINARY with ws_binary, then
 *   CONTINUATION), so a message may go fragmented. PING is answered with
 *   PONG (the latest PING's payload); control frames go between frames.
 * - Close: a CLOSE from the client is answered with the same code; then we
 *   close our side and wait (at most SS_SERVER_LINGER_MS) for the client's
 *   end of the TCP connection. DISCONNECTED carries the close code as its ack
 *   (the client's code, 1005 for a CLOSE without one, our own code after an
 *   error of the client, 1000 when a callback returned SS_DISCONNECT_ME, 1006
 *   when the connection dropped without a CLOSE).
 * - Closing by the application: ss_stream_ws_close() (server.c) queues a
 *   CLOSE with the application's code and reason; the close handshake then
 *   runs as for a DISCONNECT_ME, and DISCONNECTED carries that code.
 * - Validity: silence is time without a single byte from the client (any
 *   frame counts, a PONG too). The streamtype's retry entry decides: after
 *   svalidping seconds of silence one PING goes out, after svalidhup seconds
 *   the connection is hung up: CLOSE 1001 (going away), the usual close
 *   handshake, DISCONNECTED with 1006 (the client is taken as gone). Without
 *   svalidping and svalidhup the server's idle time (timeout_ms, else
 *   SS_SERVER_IDLE_MS) stands for svalidping; the hang-up then comes one idle
 *   time after the PING (svalidping alone: likewise). A page that only listens
 *   to pushes stays connected, as browsers answer PINGs; a client that went
 *   away, or answers nothing, is closed.
 * - Bounds: a connection holds one rx buffer, one tx frame and the parser's
 *   control frame; a write the client does not take for the server's
 *   timeout_ms ends the connection; so does silence (above).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls-lib.h"
#include "utf8.h"
#include "ws-server.h"

#define WS_OUT_PREFIX        WS_PIECE_PREFIX
#define WS_SERVER_READ_BURST 8u

struct WsServerConn {
        SsStream *stream;
        int fd;
        gnutls_session_t tls;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *defer;
        sd_event_source *validity; /* silence: PING, then hang up */
        WsParser *parser;
        WsWriter writer;
        uint64_t stall_usec;
        uint64_t ping_usec;   /* silence before a PING, 0: none */
        uint64_t hangup_usec; /* silence before hanging up */
        uint64_t heard_usec;  /* CLOCK_MONOTONIC of the last byte from the client */

        bool want_write;    /* a write came up short: waiting for EPOLLOUT */
        bool stall_armed;   /* the timer bounds a blocked write */
        bool tx_wanted;     /* request_tx: call tx while writable */
        bool tx_in_message; /* a message we send is open (no EOM yet) */
        bool pong_pending;
        size_t pong_len;
        bool ping_pending;  /* a validity PING to send */
        bool ping_sent;     /* ... sent since the client was last heard */
        bool close_pending; /* a CLOSE to send */
        bool close_sent;
        bool close_received;
        bool failed;         /* the client broke the protocol: its input is dropped */
        bool shut;           /* our side of the TCP connection is closed */
        bool ended;          /* DISCONNECTED delivered: the stream goes */
        unsigned close_code; /* what we send; 0: a CLOSE without a code */
        uint32_t close_ack;  /* the ack of DISCONNECTED */

        char close_reason[WS_CLOSE_REASON_MAX + 1]; /* with close_code; "" for none */
        char protocol[128];                         /* the chosen subprotocol, "" for none */
        char accept[WS_ACCEPT_LENGTH + 1];

        size_t in_off, in_len;
        size_t out_start, out_end;
        uint8_t pong[WS_CONTROL_MAX];
        uint8_t in[SS_RX_CHUNK];
        uint8_t out[WS_OUT_PREFIX + SS_TX_CHUNK];
};

/* ---- the upgrade request ------------------------------------------------------------------ */

bool ws_server_is_enabled(const PolicyStreamtype *st)
{
        return st->ws.subprotocol && st->ws.subprotocol[0];
}

/* base64 of 16 bytes: 22 characters of the alphabet and "==". */
static bool key_is_valid(const char *key, size_t len)
{
        if (len != WS_KEY_LENGTH || key[22] != '=' || key[23] != '=')
                return false;
        for (size_t i = 0; i < 22; i++) {
                char c = key[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/'))
                        return false;
        }
        return true;
}

void ws_server_request_init(WsServerRequest *r, const char *method, unsigned version_minor)
{
        *r = (WsServerRequest){
            .get = strcmp(method, "GET") == 0,
            .http11 = version_minor >= 1,
        };
}

/* The client's offer (one subprotocol name): chosen when ours and earlier than the choice. */
static void offer_protocol(WsServerRequest *r, const PolicyStreamtype *st, const char *name,
                           size_t len)
{
        const char *ours = st->ws.subprotocol, *item;
        size_t ours_len = strlen(ours), item_len;

        r->offered = true;
        r->n_offers++;
        if (r->protocol)
                return; /* the client listed its preference first */
        while (ws_header_list_next(&ours, &ours_len, &item, &item_len))
                if (item_len == len && memcmp(item, name, len) == 0) {
                        r->protocol = item;
                        r->protocol_len = item_len;
                        r->protocol_rank = r->n_offers - 1;
                        return;
                }
}

void ws_server_request_header(WsServerRequest *r, const PolicyStreamtype *st, const char *name,
                              size_t name_len, const char *value, size_t value_len)
{
        const char *item;
        size_t item_len;

        ws_header_trim(&value, &value_len);
        if (ws_header_name_is(name, name_len, "upgrade")) {
                if (ws_header_list_has(value, value_len, "websocket"))
                        r->upgrade = true;
        } else if (ws_header_name_is(name, name_len, "connection")) {
                if (ws_header_list_has(value, value_len, "upgrade"))
                        r->connection = true;
        } else if (ws_header_name_is(name, name_len, "sec-websocket-key")) {
                r->n_keys++;
                r->key_ok = key_is_valid(value, value_len);
                if (r->key_ok) {
                        memcpy(r->key, value, WS_KEY_LENGTH);
                        r->key[WS_KEY_LENGTH] = 0;
                }
        } else if (ws_header_name_is(name, name_len, "sec-websocket-version")) {
                r->n_versions++;
                r->version_ok = value_len == 2 && memcmp(value, "13", 2) == 0;
        } else if (ws_header_name_is(name, name_len, "sec-websocket-protocol") &&
                   ws_server_is_enabled(st)) {
                while (ws_header_list_next(&value, &value_len, &item, &item_len))
                        offer_protocol(r, st, item, item_len);
        }
}

unsigned ws_server_request_check(const WsServerRequest *r, bool first, bool has_body)
{
        if (!r->get || !r->http11 || !r->connection || has_body || !first)
                return 400;
        if (r->n_keys != 1 || !r->key_ok)
                return 400;
        if (r->n_versions > 1)
                return 400;
        if (r->n_versions == 0 || !r->version_ok)
                return 426;
        if (!r->protocol || r->protocol_len >= sizeof(((WsServerConn *) NULL)->protocol))
                return 400; /* none of our subprotocols offered */
        return 0;
}

/* ---- connection I/O ------------------------------------------------------------------------ */

static ssize_t ws_read(WsServerConn *w, void *buf, size_t size)
{
        if (w->tls) {
                for (;;) {
                        ssize_t n = gnutls_record_recv(w->tls, buf, size);

                        if (n >= 0)
                                return n;
                        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_WARNING_ALERT_RECEIVED)
                                continue;
                        if (n == GNUTLS_E_AGAIN)
                                return -EAGAIN;
                        return -EIO;
                }
        }
        for (;;) {
                ssize_t n = recv(w->fd, buf, size, 0);

                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
}

static ssize_t ws_write(WsServerConn *w, const void *buf, size_t size)
{
        if (w->tls) {
                ssize_t n = gnutls_record_send(w->tls, buf, size);

                if (n >= 0)
                        return n;
                return n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED ? -EAGAIN : -EIO;
        }
        for (;;) {
                ssize_t n = send(w->fd, buf, size, MSG_NOSIGNAL);

                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
}

static void ws_update_events(WsServerConn *w)
{
        (void) sd_event_source_set_io_events(w->io, EPOLLIN | (w->want_write ? EPOLLOUT : 0));
}

static void ws_arm_timer(WsServerConn *w, uint64_t usec)
{
        (void) sd_event_source_set_time_relative(w->timer, usec);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

static void ws_schedule(WsServerConn *w)
{
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_ONESHOT);
}

static uint64_t ws_now(WsServerConn *w)
{
        uint64_t now = 0;

        (void) sd_event_now(w->stream->context->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* The validity timer: at the next PING, or at the hang-up once the PING went. */
static void ws_arm_validity(WsServerConn *w)
{
        uint64_t after = w->ping_usec && !w->ping_sent ? w->ping_usec : w->hangup_usec;

        (void) sd_event_source_set_time(w->validity, w->heard_usec + after);
        (void) sd_event_source_set_enabled(w->validity, SD_EVENT_ONESHOT);
}

/*
 * Bytes from the client: the silence starts again. The timer is not moved for
 * every read: when it fires early it is armed again from heard_usec.
 */
static void ws_note_heard(WsServerConn *w)
{
        w->heard_usec = ws_now(w);
        if (w->ping_sent) {
                /* The timer waits for the hang-up: bring it back to the next PING. */
                w->ping_sent = false;
                ws_arm_validity(w);
        }
}

/* Writes what is queued: 1 when all of it went, 0 when the socket is full, or -errno. */
static int ws_flush(WsServerConn *w)
{
        while (w->out_start < w->out_end) {
                ssize_t n = ws_write(w, w->out + w->out_start, w->out_end - w->out_start);

                if (n == -EAGAIN || n == 0)
                        return 0;
                if (n < 0)
                        return (int) n;
                w->out_start += (size_t) n;
        }
        w->out_start = w->out_end = 0;
        return 1;
}

/* ---- the connection ------------------------------------------------------------------------ */

/* The connection is over: DISCONNECTED with ack; the stream goes. */
static SsResult ws_end(WsServerConn *w, uint32_t ack)
{
        SsStream *s = w->stream;

        w->ended = true;
        if (s->connected_delivered)
                (void) ss_stream_deliver_state(s, SS_STATE_DISCONNECTED, ack);
        return SS_DESTROY_ME;
}

static void queue_close(WsServerConn *w, unsigned code, uint32_t ack)
{
        if (w->close_pending || w->close_sent)
                return;
        w->close_pending = true;
        w->close_code = code;
        w->close_ack = ack;
        w->close_reason[0] = 0;
        w->tx_wanted = false;
        w->ping_pending = false;
}

/* A callback's result: DISCONNECT_ME becomes our CLOSE 1000; DESTROY_ME travels up. */
static SsResult callback_result(WsServerConn *w, SsResult r)
{
        if (r == SS_DISCONNECT_ME) {
                queue_close(w, WS_CLOSE_NORMAL, WS_CLOSE_NORMAL);
                return SS_OK;
        }
        return r == SS_DESTROY_ME ? SS_DESTROY_ME : SS_OK;
}

/* Pulls the next frame of a message from tx into out. */
static SsResult fill_data(WsServerConn *w)
{
        SsStream *s = w->stream;
        uint8_t *payload = w->out + WS_OUT_PREFIX;
        size_t len = SS_TX_CHUNK;
        unsigned flags = 0;
        SsResult r;
        int start;

        /* Cleared first: a request_tx from inside the callback asks for the next message. */
        w->tx_wanted = false;
        r = ss_stream_call_tx(s, payload, &len, &flags);
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return callback_result(w, r);
        if (r == SS_TX_DONT_SEND) {
                w->tx_wanted = false;
                return SS_OK;
        }
        if (len > SS_TX_CHUNK)
                return callback_result(w, SS_DISCONNECT_ME); /* wrote past its buffer */

        start = ws_writer_piece(&w->writer, w->out, len, s->st->ws.binary, flags & SS_FLAG_SOM,
                                flags & SS_FLAG_EOM, &w->tx_in_message);
        if (start < 0)
                return callback_result(w, SS_DISCONNECT_ME);
        w->out_start = (size_t) start;
        w->out_end = WS_OUT_PREFIX + len;
        if (w->tx_in_message)
                w->tx_wanted = true;
        return SS_OK;
}

/* Writes while the socket takes it: queued bytes, control frames, then tx. */
static SsResult ws_pump(WsServerConn *w)
{
        for (;;) {
                SsResult r;
                int k = ws_flush(w);

                if (k < 0)
                        return ws_end(w, w->close_sent ? w->close_ack : WS_CLOSE_ABNORMAL);
                if (k == 0) {
                        if (!w->want_write) {
                                w->want_write = true;
                                ws_update_events(w);
                        }
                        if (!w->stall_armed) {
                                w->stall_armed = true;
                                ws_arm_timer(w, w->stall_usec);
                        }
                        return SS_OK;
                }
                if (w->want_write) {
                        w->want_write = false;
                        ws_update_events(w);
                }
                if (w->stall_armed) {
                        w->stall_armed = false;
                        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
                }
                if (w->close_sent) {
                        if (!w->shut) {
                                /* The server closes the TCP connection first (RFC 6455 7.1.1). */
                                w->shut = true;
                                if (w->tls)
                                        (void) gnutls_bye(w->tls, GNUTLS_SHUT_WR);
                                (void) shutdown(w->fd, SHUT_WR);
                                /* The client's EOF (or its CLOSE) ends it, or the timer. */
                                ws_arm_timer(w, SS_SERVER_LINGER_MS * 1000ULL);
                        }
                        return SS_OK;
                }
                if (w->close_pending) {
                        k = ws_writer_close(&w->writer, w->out, sizeof(w->out), w->close_code,
                                            w->close_code ? w->close_reason : NULL);
                        if (k < 0)
                                return ws_end(w, w->close_ack);
                        w->out_start = 0;
                        w->out_end = (size_t) k;
                        w->close_pending = false;
                        w->close_sent = true;
                        continue;
                }
                if (w->pong_pending) {
                        w->pong_pending = false;
                        k = ws_writer_frame(&w->writer, w->out, sizeof(w->out), WS_OPCODE_PONG,
                                            true, w->pong, w->pong_len);
                        if (k > 0) {
                                w->out_start = 0;
                                w->out_end = (size_t) k;
                        }
                        continue;
                }
                if (w->ping_pending) {
                        w->ping_pending = false;
                        k = ws_writer_frame(&w->writer, w->out, sizeof(w->out), WS_OPCODE_PING,
                                            true, NULL, 0);
                        if (k > 0) {
                                w->out_start = 0;
                                w->out_end = (size_t) k;
                        }
                        continue;
                }
                if (!w->tx_wanted)
                        return SS_OK;
                r = fill_data(w);
                if (r != SS_OK)
                        return r;
        }
}

static SsResult handle_event(WsServerConn *w, const WsEvent *ev)
{
        switch (ev->type) {
        case WS_EVENT_DATA:
                if (w->close_pending || w->close_sent)
                        return SS_OK; /* closing: messages no longer matter */
                return callback_result(w, ss_stream_deliver_rx(w->stream, ev->data, ev->size,
                                                               (ev->som ? SS_FLAG_SOM : 0) |
                                                                   (ev->eom ? SS_FLAG_EOM : 0)));
        case WS_EVENT_PING:
                /* Only the latest PING needs its PONG (RFC 6455 5.5.3). */
                memcpy(w->pong, ev->data, ev->size);
                w->pong_len = ev->size;
                w->pong_pending = true;
                return SS_OK;
        case WS_EVENT_PONG:
                return SS_OK;
        case WS_EVENT_CLOSE:
                w->close_received = true;
                if (w->close_sent)
                        return ws_end(w, w->close_ack); /* the answer to ours */
                queue_close(w, ev->code == WS_CLOSE_NO_STATUS ? 0 : ev->code, ev->code);
                return SS_OK;
        }
        return SS_OK;
}

/* Reads and parses what the socket has (a burst at a time). */
static SsResult ws_read_some(WsServerConn *w)
{
        for (unsigned reads = 0;;) {
                SsResult r;

                if (w->in_off == w->in_len) {
                        ssize_t n;

                        if (reads++ >= WS_SERVER_READ_BURST) {
                                ws_schedule(w);
                                return SS_OK;
                        }
                        n = ws_read(w, w->in, sizeof(w->in));
                        if (n == -EAGAIN)
                                return SS_OK;
                        if (n <= 0)
                                return ws_end(w, w->close_sent || w->close_pending
                                                     ? w->close_ack
                                                     : WS_CLOSE_ABNORMAL);
                        ws_note_heard(w);
                        w->in_off = 0;
                        w->in_len = (size_t) n;
                }
                while (w->in_off < w->in_len) {
                        WsEvent ev;
                        size_t used = 0;
                        int k;

                        if (w->failed || w->close_received) {
                                /* Dropped: after an error, or after the client's CLOSE. */
                                w->in_off = w->in_len;
                                break;
                        }
                        k = ws_parser_feed(w->parser, w->in + w->in_off, w->in_len - w->in_off,
                                           &used, &ev);
                        w->in_off += used;
                        if (k < 0) {
                                unsigned code = ws_parser_get_close_code(w->parser);

                                w->failed = true;
                                if (w->close_sent)
                                        return ws_end(w, w->close_ack);
                                queue_close(w, code, code);
                                continue;
                        }
                        if (k == 0)
                                break;
                        r = handle_event(w, &ev);
                        if (r != SS_OK)
                                return r;
                }
                if (w->pong_pending || w->close_pending) {
                        r = ws_pump(w);
                        if (r != SS_OK)
                                return r;
                }
        }
}

static void ws_dispatch(WsServerConn *w, SsResult r)
{
        if (r == SS_DESTROY_ME)
                ss_stream_dispatch(w->stream, SS_DESTROY_ME); /* frees w */
}

static int on_ws_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        WsServerConn *w = userdata;
        SsResult r = SS_OK;

        (void) source;
        (void) fd;
        if (revents & EPOLLOUT)
                r = ws_pump(w);
        if (r == SS_OK)
                r = ws_read_some(w);
        ws_dispatch(w, r);
        return 0;
}

static int on_ws_defer(sd_event_source *source, void *userdata)
{
        WsServerConn *w = userdata;
        SsResult r;

        (void) source;
        r = ws_pump(w);
        if (r == SS_OK)
                r = ws_read_some(w);
        ws_dispatch(w, r);
        return 0;
}

static int on_ws_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        WsServerConn *w = userdata;

        (void) source;
        (void) usec;
        /* A stalled write, or the close handshake took too long. */
        ws_dispatch(w, ws_end(w, w->close_sent ? w->close_ack : WS_CLOSE_ABNORMAL));
        return 0;
}

/* Silence from the client: a PING first, then the hang-up (the rules are at the top). */
static int on_ws_validity(sd_event_source *source, uint64_t usec, void *userdata)
{
        WsServerConn *w = userdata;
        uint64_t silence = ws_now(w) - w->heard_usec;

        (void) source;
        (void) usec;
        if (w->close_pending || w->close_sent)
                return 0; /* closing already: the other timer bounds it */
        if (silence >= w->hangup_usec) {
                queue_close(w, WS_CLOSE_GOING_AWAY, WS_CLOSE_ABNORMAL);
                ws_dispatch(w, ws_pump(w));
                return 0;
        }
        if (w->ping_usec && !w->ping_sent && silence >= w->ping_usec) {
                w->ping_sent = true;
                w->ping_pending = true;
                ws_arm_validity(w);
                ws_dispatch(w, ws_pump(w));
                return 0;
        }
        ws_arm_validity(w); /* heard from in the meantime */
        return 0;
}

/* The validity bounds of a connection from the streamtype's retry entry and the idle time. */
static void ws_set_validity(WsServerConn *w, uint64_t idle_usec)
{
        const PolicyRetry *retry = w->stream->retry;
        uint64_t ping = retry ? retry->valid_ping_s * USEC_PER_SEC : 0;
        uint64_t hangup = retry ? retry->valid_hangup_s * USEC_PER_SEC : 0;

        if (ping == 0 && hangup == 0)
                ping = idle_usec;
        if (hangup == 0)
                hangup = ping + idle_usec;
        if (ping >= hangup)
                ping = 0; /* the hang-up comes first: no PING */
        w->ping_usec = ping;
        w->hangup_usec = hangup;
}

int ws_server_conn_new(WsServerConn **ret, SsStream *s, int fd, gnutls_session_t tls,
                       const WsServerRequest *req, const void *pending, size_t n_pending,
                       uint64_t stall_usec)
{
        sd_event *event = s->context->event;
        WsParserOptions options;
        WsServerConn *w;
        int r;

        /* The buffers are only ever read after being written: clear the fields. */
        w = malloc(sizeof(*w));
        if (!w) {
                if (tls)
                        gnutls_deinit(tls);
                (void) close(fd);
                return -ENOMEM;
        }
        memset(w, 0, offsetof(WsServerConn, pong));
        w->stream = s;
        w->fd = fd;
        w->tls = tls;
        w->stall_usec = stall_usec;
        ws_writer_init(&w->writer, WS_ROLE_SERVER, NULL, NULL);
        if (n_pending > sizeof(w->in)) {
                r = -EBADMSG; /* cannot happen: server.c reads at most as much */
                goto fail;
        }
        memcpy(w->in, pending, n_pending);
        w->in_len = n_pending;
        memcpy(w->protocol, req->protocol, req->protocol_len);
        w->protocol[req->protocol_len] = 0;
        r = ws_handshake_accept(req->key, w->accept);
        if (r < 0)
                goto fail;
        options = (WsParserOptions){
            .role = WS_ROLE_SERVER,
            .max_message_size = s->st->ws.max_message ? s->st->ws.max_message : SS_SERVER_MAX_BODY,
        };
        r = ws_parser_new(&w->parser, &options);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(event, &w->io, fd, EPOLLIN, on_ws_io, w);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(event, &w->timer, CLOCK_MONOTONIC, stall_usec, 0,
                                       on_ws_timer, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(event, &w->defer, on_ws_defer, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_OFF);
        ws_set_validity(w, stall_usec);
        w->heard_usec = ws_now(w); /* the upgrade request was heard */
        r = sd_event_add_time(event, &w->validity, CLOCK_MONOTONIC,
                              w->heard_usec + (w->ping_usec ? w->ping_usec : w->hangup_usec), 0,
                              on_ws_validity, w);
        if (r < 0)
                goto fail;
        *ret = w;
        return 0;
fail:
        ws_server_conn_free(w);
        return r;
}

SsResult ws_server_conn_start(WsServerConn *w)
{
        int n;

        n = snprintf((char *) w->out, sizeof(w->out),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     w->accept, w->protocol[0] ? "Sec-WebSocket-Protocol: " : "", w->protocol,
                     w->protocol[0] ? "\r\n" : "");
        w->out_start = 0;
        w->out_end = (size_t) n;
        /* The 101 goes first, whatever the callback asks for. */
        if (callback_result(w, ss_stream_deliver_state(w->stream, SS_STATE_SERVER_UPGRADE, 0)) ==
            SS_DESTROY_ME)
                return SS_DESTROY_ME;
        /* Input already here (and TLS records gnutls holds) is read from the loop. */
        ws_schedule(w);
        return ws_pump(w);
}

WsServerConn *ws_server_conn_free(WsServerConn *w)
{
        if (!w)
                return NULL;
        if (w->fd >= 0 && !w->close_sent && !w->shut && w->out_start == w->out_end && w->parser) {
                /* Going away (the stream was destroyed): say so if the socket takes it now. */
                uint8_t frame[WS_HEADER_MAX + 2];
                int n =
                    ws_writer_close(&w->writer, frame, sizeof(frame), WS_CLOSE_GOING_AWAY, NULL);

                if (n > 0)
                        (void) ws_write(w, frame, (size_t) n);
        }
        sd_event_source_disable_unref(w->io);
        sd_event_source_disable_unref(w->timer);
        sd_event_source_disable_unref(w->defer);
        sd_event_source_disable_unref(w->validity);
        ws_parser_free(w->parser);
        if (w->tls)
                gnutls_deinit(w->tls);
        if (w->fd >= 0)
                (void) close(w->fd);
        free(w);
        return NULL;
}

int ws_server_request_tx(WsServerConn *w)
{
        if (w->close_pending || w->close_sent || w->ended)
                return -ESTALE;
        w->tx_wanted = true;
        ws_schedule(w);
        return 0;
}

int ws_server_close(WsServerConn *w, unsigned code, const char *reason)
{
        size_t len = reason ? strlen(reason) : 0;

        if (!ws_close_code_is_valid(code) || len > WS_CLOSE_REASON_MAX ||
            !utf8_is_valid(reason, len))
                return -EINVAL;
        if (w->close_pending || w->close_sent || w->ended)
                return -ESTALE;
        queue_close(w, code, code);
        if (len)
                memcpy(w->close_reason, reason, len);
        w->close_reason[len] = 0;
        ws_schedule(w);
        return 0;
}

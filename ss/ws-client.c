/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket client protocol of Secure Streams (RFC 6455), on the framing
 * of ws-frame.c. A connection is one HTTP/1.1 Upgrade (over TCP or TLS) and
 * then messages both ways for as long as it lives:
 *
 * - Handshake: GET on "/" + http_url (${metadata}-expanded) with a fresh
 *   Sec-WebSocket-Key, ws_subprotocol offered (a comma list offers several)
 *   and metadata headers as h1 sends them. The response must be a 101 that
 *   passes ws_handshake_response_finish(); when the policy names a
 *   subprotocol the server must choose one of them (a server choosing none
 *   speaks something else). A refused or broken handshake is UNREACHABLE with
 *   SS_ACK_HANDSHAKE and the usual retry; CONNECTED comes after the 101.
 * - rx: every data message arrives as pieces, SS_FLAG_SOM on the first and
 *   SS_FLAG_EOM on the last (a 0-byte message is one empty piece with both),
 *   text and binary alike. Text is checked to be UTF-8 and messages are
 *   limited to WS_DEFAULT_MAX_MESSAGE bytes by the parser; a violation, or any
 *   other protocol error of the server, closes that connection with the code
 *   the error calls for (1007, 1009, 1002).
 * - tx: one ss_stream_request_tx() gives tx callbacks while the connection is
 *   writable until one sets SS_FLAG_EOM or returns SS_TX_DONT_SEND. Each
 *   callback's bytes go out as one frame: the first of a message as TEXT (or
 *   BINARY with ws_binary), the following ones as CONTINUATION, the one with
 *   EOM final, so a message larger than SS_TX_CHUNK is sent fragmented.
 *   SS_FLAG_SOM while a message is open ends that message (with an empty
 *   final frame) and starts a new one. Client frames are masked with a fresh
 *   key each. Control frames (PONG answering the latest PING, our validity
 *   PING, CLOSE) go between frames, never inside one.
 * - Close: a CLOSE from the server is answered with the same code, then the
 *   connection ends: DISCONNECTED with the code as its ack (1005 when the
 *   frame had none, 1006 when the connection dropped without a CLOSE, our own
 *   code after a protocol error of the server). When the stream core closes
 *   the connection (destroy, DISCONNECT_ME, timeout, validity) a CLOSE 1000
 *   goes out first if the socket takes it at once.
 * - Validity: svalidping idle seconds give a PING; anything received (the
 *   PONG included) re-arms both it and the svalidhup hang-up. A policy
 *   timeout_ms covers the connection attempt up to CONNECTED (connect, TLS,
 *   upgrade), not the life of the connection.
 * - Reconnection follows the stream rules: the drop counts as a failure
 *   (retry with backoff even for streams that are not nailed_up) when it cut
 *   a message short or a tx request was waiting, and that request is carried
 *   to the next connection.
 *
 * Memory per connection is bounded: the request head, one tx frame, one rx
 * buffer, the parser's control frame.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "http1-parser.h"
#include "stream-internal.h"
#include "ws-frame.h"

/* Room before the tx payload for an empty final frame and the frame header. */
#define OUT_PREFIX WS_PIECE_PREFIX

struct WsClient {
        Http1Parser *http; /* the upgrade response */
        WsParser *parser;
        WsWriter writer;
        WsHandshake handshake;
        char *protocol_names; /* a copy of ws_subprotocol, split in place */
        const char *protocols[WS_PROTOCOLS_MAX + 1];
        char *host;
        char *path;
        unsigned status;

        char *head;
        size_t head_len, head_sent;
        bool upgraded;

        bool tx_wanted;     /* request_tx: call tx when writable */
        bool tx_in_message; /* a message we send is open (no EOM yet) */
        bool pong_pending;
        size_t pong_len;
        bool ping_pending;
        bool close_pending; /* a CLOSE to send, then the connection ends */
        bool close_sent;
        unsigned close_code; /* what we send; 0: a CLOSE without a code */
        uint32_t close_ack;  /* the ack of DISCONNECTED */
        size_t out_start, out_end;

        uint8_t pong[WS_CONTROL_MAX];
        uint8_t out[OUT_PREFIX + SS_TX_CHUNK];
        uint8_t in[SS_RX_CHUNK];
};

WsClient *ws_client_free(WsClient *w)
{
        if (!w)
                return NULL;
        http1_parser_free(w->http);
        ws_parser_free(w->parser);
        free(w->protocol_names);
        free(w->host);
        free(w->path);
        free(w->head);
        return mfree(w);
}

/* Splits "a, b,c" into the offer list; -EINVAL for too many or empty names. */
static int split_protocols(WsClient *w, const char *subprotocol)
{
        size_t n = 0;
        char *p;

        if (!subprotocol || !subprotocol[0])
                return 0;
        w->protocol_names = strdup(subprotocol);
        if (!w->protocol_names)
                return -ENOMEM;
        p = w->protocol_names;
        for (;;) {
                char *end = p + strcspn(p, ","), *last = end;
                bool more = *end == ',';

                while (*p == ' ' || *p == '\t')
                        p++;
                while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
                        last--;
                *last = 0;
                if (!*p || n == WS_PROTOCOLS_MAX)
                        return -EINVAL;
                w->protocols[n++] = p;
                if (!more)
                        break;
                p = end + 1;
        }
        w->protocols[n] = NULL;
        return 0;
}

static int ws_connection_new(SsStream *s, const char *host)
{
        _cleanup_free_ char *url = NULL;
        WsClient *w;
        int r;

        r = strexp_expand_string(strempty(s->st->http.url), ss_stream_metadata_lookup, s, &url,
                                 NULL);
        if (r < 0)
                return r;

        /* The buffers are only ever read after being written: clear the fields. */
        w = malloc(sizeof(*w));
        if (!w)
                return -ENOMEM;
        memset(w, 0, offsetof(WsClient, pong));
        s->ws = w;
        r = http1_parser_new(&w->http);
        if (r < 0)
                return r;
        r = ws_parser_new(&w->parser, &(WsParserOptions){.role = WS_ROLE_CLIENT});
        if (r < 0)
                return r;
        ws_writer_init(&w->writer, WS_ROLE_CLIENT, NULL, NULL);
        r = split_protocols(w, s->st->ws.subprotocol);
        if (r < 0)
                return r;
        w->host = strdup(host);
        if (!w->host || asprintf(&w->path, "/%s", url[0] == '/' ? url + 1 : url) < 0) {
                w->path = NULL;
                return -ENOMEM;
        }
        return 0;
}

static void ws_connection_free(SsStream *s)
{
        WsClient *w = s->ws;

        /* A request made for an attempt that never got through waits for the next one. */
        if (w && !w->upgraded && w->tx_wanted)
                s->tx_pending = true;
        s->ws = ws_client_free(w);
}

/* A growing string for the request head. */
typedef struct Head {
        char *data;
        size_t len;
        bool failed;
} Head;

static void head_add(Head *b, const char *str, size_t n)
{
        char *p;

        if (b->failed)
                return;
        p = realloc(b->data, b->len + n + 1);
        if (!p) {
                b->failed = true;
                return;
        }
        b->data = p;
        memcpy(b->data + b->len, str, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void head_adds(Head *b, const char *str)
{
        head_add(b, str, strlen(str));
}

static int build_request(SsStream *s, WsClient *w)
{
        bool default_port = s->st->port == (s->st->tls ? 443 : 80);
        bool literal6 = strchr(w->host, ':') != NULL;
        char line[64], offer[1024];
        Head b = {};
        int r;

        r = ws_handshake_init(&w->handshake, w->protocols[0] ? w->protocols : NULL, NULL, NULL);
        if (r < 0)
                return r;

        head_adds(&b, "GET ");
        head_adds(&b, w->path);
        head_adds(&b, " HTTP/1.1\r\nHost: ");
        if (literal6)
                head_adds(&b, "[");
        head_adds(&b, s->st->unix_socket ? "localhost" : w->host);
        if (literal6)
                head_adds(&b, "]");
        if (!default_port && !s->st->unix_socket) {
                (void) snprintf(line, sizeof(line), ":%u", (unsigned) s->st->port);
                head_adds(&b, line);
        }
        head_adds(&b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ");
        head_adds(&b, w->handshake.key);
        head_adds(&b, "\r\n");
        r = ws_handshake_protocols_header(&w->handshake, offer, sizeof(offer));
        if (r < 0) {
                free(b.data);
                return r;
        }
        if (r > 0) {
                head_adds(&b, "Sec-WebSocket-Protocol: ");
                head_adds(&b, offer);
                head_adds(&b, "\r\n");
        }
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const PolicyMetadata *md = &s->st->metadata[i];
                size_t n = md->header_len;

                if (n == 0 || !s->metadata[i])
                        continue;
                head_add(&b, md->header, n);
                head_adds(&b, ": ");
                head_add(&b, s->metadata[i], s->metadata_len[i]);
                head_adds(&b, "\r\n");
        }
        head_adds(&b, "\r\n");
        if (b.failed) {
                free(b.data);
                return -ENOMEM;
        }
        free(w->head);
        w->head = b.data;
        w->head_len = b.len;
        w->head_sent = 0;
        return 0;
}

/* The connection is over: DISCONNECTED with ack, and a retry when something was cut short. */
static SsResult connection_end(SsStream *s, WsClient *w, uint32_t ack)
{
        bool failed = w->tx_wanted || w->tx_in_message || ws_parser_in_message(w->parser);

        if (w->tx_wanted)
                s->tx_pending = true;
        s->drop_ack = ack;
        return ss_stream_transaction_done(s, failed, 0);
}

/* Queues our CLOSE; the connection ends once it is written. */
static void queue_close(WsClient *w, unsigned code, uint32_t ack)
{
        if (w->close_pending || w->close_sent)
                return;
        w->close_pending = true;
        w->close_code = code;
        w->close_ack = ack;
}

/* Writes the unsent bytes of out; 1 when all went, 0 when the socket is full, or -errno. */
static int write_out(SsStream *s, const uint8_t *data, size_t *start, size_t end)
{
        while (*start < end) {
                ssize_t n =
                    s->context->ops->transport_write(s->transport, data + *start, end - *start);

                if (n == -EAGAIN || n == 0)
                        return 0;
                if (n < 0)
                        return (int) n;
                *start += (size_t) n;
        }
        return 1;
}

static int put_control(WsClient *w, WsOpcode opcode, const void *payload, size_t size)
{
        int n = ws_writer_frame(&w->writer, w->out, sizeof(w->out), opcode, true, payload, size);

        if (n < 0)
                return n;
        w->out_start = 0;
        w->out_end = (size_t) n;
        return 0;
}

/* Pulls the next frame of a message from tx into out. */
static SsResult fill_data(SsStream *s, WsClient *w)
{
        uint8_t *payload = w->out + OUT_PREFIX;
        size_t len = SS_TX_CHUNK;
        unsigned flags = 0;
        SsResult r;
        int start;

        /* Cleared first: a request_tx from inside the callback asks for the next message. */
        w->tx_wanted = false;
        r = ss_stream_call_tx(s, payload, &len, &flags);
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME) {
                w->tx_wanted = true; /* what was asked for is still owed */
                return r;
        }
        if (r == SS_TX_DONT_SEND) {
                w->tx_wanted = false;
                return SS_OK;
        }
        if (len > SS_TX_CHUNK)
                return SS_DISCONNECT_ME; /* the callback wrote past the buffer it was given */

        start = ws_writer_piece(&w->writer, w->out, len, s->st->ws.binary, flags & SS_FLAG_SOM,
                                flags & SS_FLAG_EOM, &w->tx_in_message);
        if (start < 0)
                return SS_DISCONNECT_ME;
        w->out_start = (size_t) start;
        w->out_end = OUT_PREFIX + len;
        if (w->tx_in_message)
                w->tx_wanted = true;
        return SS_OK;
}

static SsResult ws_on_writable(SsStream *s)
{
        WsClient *w = s->ws;
        const SsTransportOps *ops = s->context->ops;
        int k;

        if (!w || !s->transport)
                return SS_OK;

        if (!w->upgraded) {
                k = write_out(s, (const uint8_t *) w->head, &w->head_sent, w->head_len);
                if (k < 0)
                        return ss_stream_handshake_failed(s, SS_ACK_RESET);
                ops->transport_want_write(s->transport, k == 0);
                return SS_OK;
        }

        for (;;) {
                k = write_out(s, w->out, &w->out_start, w->out_end);
                if (k == 0) {
                        ops->transport_want_write(s->transport, true);
                        return SS_OK;
                }
                if (k < 0)
                        return connection_end(s, w, WS_CLOSE_ABNORMAL);
                if (w->close_sent)
                        return connection_end(s, w, w->close_ack);

                /* Control frames first: between frames, before the next piece of a message. */
                if (w->close_pending) {
                        k = ws_writer_close(&w->writer, w->out, sizeof(w->out), w->close_code,
                                            NULL);
                        if (k < 0)
                                return connection_end(s, w, w->close_ack);
                        w->out_start = 0;
                        w->out_end = (size_t) k;
                        w->close_pending = false;
                        w->close_sent = true;
                        continue;
                }
                if (w->pong_pending) {
                        w->pong_pending = false;
                        if (put_control(w, WS_OPCODE_PONG, w->pong, w->pong_len) < 0)
                                return connection_end(s, w, WS_CLOSE_ABNORMAL);
                        continue;
                }
                if (w->ping_pending) {
                        w->ping_pending = false;
                        if (put_control(w, WS_OPCODE_PING, "smd", 3) < 0)
                                return connection_end(s, w, WS_CLOSE_ABNORMAL);
                        continue;
                }
                if (w->tx_wanted) {
                        SsResult r = fill_data(s, w);

                        if (r != SS_OK)
                                return r;
                        if (w->out_start < w->out_end)
                                continue;
                }
                ops->transport_want_write(s->transport, false);
                return SS_OK;
        }
}

static SsResult ws_start(SsStream *s)
{
        WsClient *w = s->ws;

        assert(w);
        http1_parser_reset(w->http, false);
        if (build_request(s, w) < 0)
                return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
        return ws_on_writable(s);
}

static void ws_request_tx(SsStream *s)
{
        WsClient *w = s->ws;

        if (!w) {
                s->tx_pending = true;
                return;
        }
        w->tx_wanted = true;
        if (w->upgraded && s->transport)
                s->context->ops->transport_want_write(s->transport, true);
}

static SsResult ws_validity_ping(SsStream *s)
{
        WsClient *w = s->ws;

        if (!w || !w->upgraded || w->close_pending || w->close_sent)
                return SS_OK;
        w->ping_pending = true;
        return ws_on_writable(s);
}

/* Best effort, for a close the core decided: no callbacks, no waiting. */
static void ws_close(SsStream *s)
{
        WsClient *w = s->ws;
        uint8_t frame[WS_HEADER_MAX + 2];
        size_t start = 0;
        int n;

        if (!w || !w->upgraded || w->close_sent || !s->transport)
                return;
        w->close_sent = true;
        if (write_out(s, w->out, &w->out_start, w->out_end) <= 0)
                return; /* a frame is half written: a CLOSE cannot follow it */
        n = ws_writer_close(&w->writer, frame, sizeof(frame), WS_CLOSE_NORMAL, NULL);
        if (n > 0)
                (void) write_out(s, frame, &start, (size_t) n);
}

/* The 101 arrived and checks out: the connection is a WebSocket now. */
static SsResult upgraded(SsStream *s, WsClient *w)
{
        SsResult r;

        w->upgraded = true;
        w->out_start = w->out_end = 0;
        r = ss_stream_protocol_connected(s);
        if (r != SS_OK)
                return r;
        if (w->tx_wanted)
                s->context->ops->transport_want_write(s->transport, true);
        return SS_OK;
}

/*
 * Feeds the upgrade response; *off moves past what it used. SS_OK with
 * w->upgraded set when the rest of the input is WebSocket; *ret_ended when the
 * attempt is over (w is gone).
 */
static SsResult feed_handshake(SsStream *s, WsClient *w, size_t n, size_t *off, bool *ret_ended)
{
        const char *protocol = NULL;

        while (*off < n) {
                Http1Event ev;
                size_t used = 0;
                int k = http1_parser_feed(w->http, w->in + *off, n - *off, &used, &ev);

                *off += used;
                if (k < 0)
                        goto fail;
                if (k == 0)
                        return SS_OK;
                switch (ev.type) {
                case HTTP1_EVENT_STATUS:
                        w->status = ev.status;
                        break;
                case HTTP1_EVENT_HEADER:
                        if (w->status == 101 &&
                            ws_handshake_response_header(&w->handshake, ev.name, ev.name_len,
                                                         ev.value, ev.value_len) < 0)
                                goto fail;
                        break;
                case HTTP1_EVENT_HEADERS_COMPLETE:
                        if (ws_handshake_response_finish(&w->handshake, w->status, &protocol) < 0)
                                goto fail;
                        if (w->protocols[0] && !protocol)
                                goto fail;
                        return upgraded(s, w);
                case HTTP1_EVENT_BODY:
                case HTTP1_EVENT_TRAILER:
                case HTTP1_EVENT_MESSAGE_COMPLETE:
                        goto fail;
                }
        }
        return SS_OK;
fail:
        *ret_ended = true;
        return ss_stream_handshake_failed(s, SS_ACK_HANDSHAKE);
}

/* Handles one frame event; *ret_ended when the connection is gone. */
static SsResult handle_event(SsStream *s, WsClient *w, const WsEvent *ev, bool *ret_ended)
{
        switch (ev->type) {
        case WS_EVENT_DATA:
                if (w->close_pending || w->close_sent)
                        return SS_OK;
                return ss_stream_deliver_rx(s, ev->data, ev->size,
                                            (ev->som ? SS_FLAG_SOM : 0) |
                                                (ev->eom ? SS_FLAG_EOM : 0));
        case WS_EVENT_PING:
                /* Only the latest PING needs its PONG (RFC 6455 5.5.3). */
                memcpy(w->pong, ev->data, ev->size);
                w->pong_len = ev->size;
                w->pong_pending = true;
                return SS_OK;
        case WS_EVENT_PONG:
                return SS_OK;
        case WS_EVENT_CLOSE:
                if (w->close_sent) {
                        /* The answer to ours: done. */
                        *ret_ended = true;
                        return connection_end(s, w, w->close_ack);
                }
                /* Echo the code (none for none), then end. */
                queue_close(w, ev->code == WS_CLOSE_NO_STATUS ? 0 : ev->code, ev->code);
                return SS_OK;
        }
        return SS_OK;
}

static SsResult ws_on_readable(SsStream *s)
{
        WsClient *w = s->ws;
        const SsTransportOps *ops = s->context->ops;

        if (!w || !s->transport)
                return SS_OK;

        for (bool noted = false;;) {
                size_t off = 0;
                bool ended = false;
                ssize_t n;
                SsResult r;

                if (w->close_pending || w->close_sent) {
                        /* Nothing more matters: flush our CLOSE and end; read no more. */
                        if (ops->transport_pause_read)
                                ops->transport_pause_read(s->transport, true);
                        return ws_on_writable(s);
                }
                if (s->rx_paused) {
                        if (ops->transport_pause_read)
                                ops->transport_pause_read(s->transport, true);
                        return SS_OK;
                }
                n = ops->transport_read(s->transport, w->in, sizeof(w->in));
                if (n == -EAGAIN)
                        return SS_OK;
                if (n <= 0) {
                        if (!w->upgraded)
                                return ss_stream_handshake_failed(s, SS_ACK_RESET);
                        return connection_end(s, w, WS_CLOSE_ABNORMAL);
                }
                /* Once per wake-up: the deadlines move with the loop's time anyway. */
                if (!noted) {
                        ss_stream_note_alive(s);
                        noted = true;
                }

                if (!w->upgraded) {
                        r = feed_handshake(s, w, (size_t) n, &off, &ended);
                        if (r != SS_OK || ended)
                                return r;
                        if (!w->upgraded)
                                continue;
                }

                while (off < (size_t) n) {
                        WsEvent ev;
                        size_t used = 0;
                        int k =
                            ws_parser_feed(w->parser, w->in + off, (size_t) n - off, &used, &ev);

                        off += used;
                        if (k < 0) {
                                unsigned code = ws_parser_get_close_code(w->parser);

                                queue_close(w, code, code);
                                break;
                        }
                        if (k == 0)
                                break;
                        r = handle_event(s, w, &ev, &ended);
                        if (r != SS_OK || ended)
                                return r;
                        if (w->close_pending)
                                break;
                }
                if (w->pong_pending || w->close_pending) {
                        r = ws_on_writable(s);
                        /* The connection may be gone (our CLOSE went out): then so is w. */
                        if (r != SS_OK || !s->ws)
                                return r;
                }
        }
}

static const char *const ws_alpn[] = {"http/1.1", NULL};

const SsProtocolOps ss_protocol_ws = {
    .name = "ws",
    .alpn = ws_alpn,
    .handshake = true,
    .tx_in_connection = true,
    .connection_new = ws_connection_new,
    .connection_free = ws_connection_free,
    .start = ws_start,
    .on_readable = ws_on_readable,
    .on_writable = ws_on_writable,
    .request_tx = ws_request_tx,
    .validity_ping = ws_validity_ping,
    .close = ws_close,
};

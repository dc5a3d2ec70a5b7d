/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/2 client protocol of Secure Streams (libnghttp2), multiplexed:
 * streams to the same server (host, port, tls, trust store, address family:
 * the keep-alive pool's key) share one connection, each transaction an h2
 * stream of it. A stream that starts while such a connection is being set up
 * waits for it and joins; one is opened when there is none, or when every
 * one is full (H2_STREAMS_PER_CONNECTION, or fewer when the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS says so; nghttp2 queues requests beyond
 * the server's limit until a slot frees).
 *
 * The connection (H2Connection) owns the transport and the nghttp2 session;
 * a stream on it has s->transport pointing at that transport without owning
 * it (connection_free() detaches the stream and clears s->transport). Its
 * per-transaction state (H2Client, s->h2) holds the request, the response
 * and the queued body. A reset stream, a NACK or a stream going away ends
 * only that stream (RST_STREAM when it goes early); the connection breaking
 * (EOF, a write error, a protocol error, GOAWAY before a stream ended) fails
 * every stream on it through the usual failed-transaction retry. Without
 * streams a connection stays open for the pool's idle time.
 *
 * The connection offers ALPN {"h2", "http/1.1"}; when the server picks
 * anything but h2 (or the streamtype is not over TLS: h2 is only spoken after
 * ALPN) the connection goes to the first waiting stream, which carries its
 * transaction as HTTP/1.1 through h1-client.c (its state in s->h1 next to
 * ours); the other waiting streams open connections of their own.
 *
 * The request is built from the policy as for h1 (method, ${metadata}-expanded
 * url as :path, the endpoint as :authority, metadata headers); a body is pulled
 * from tx with content-length when request_tx_len gave one. The response body
 * goes to rx (SOM on the first piece, EOM on the last), then QOS_ACK_REMOTE or
 * QOS_NACK_REMOTE by http_expect; resp_map and Retry-After as for h1.
 *
 * nghttp2 only sees bytes and reports frames: nothing calls back into a
 * stream from inside it. Frames mark the streams they concern as pending; the
 * connection then serves each pending stream at its own entry point (the
 * transport's handlers, or a defer source "kick" for work a stream's own
 * entry point asked for), so a user callback never runs inside another
 * stream's. Body bytes are queued per stream and handed to rx afterwards; the
 * queue is bounded by the stream's receive window, which is opened again
 * (nghttp2_session_consume(), automatic window updates off) only for bytes rx
 * has taken, so a paused or slow application stops the server on its stream
 * only: the connection's window is as large as all stream windows together.
 *
 * svalidping: a stream's ping timer sends one PING on its connection (none
 * while one is unanswered and nothing arrived); any bytes from the server
 * count as alive for every stream on the connection. A stream hung up after
 * svalidhup of silence takes the connection down with it, failing the others.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "h2-lib.h"
#include "stream-internal.h"

/* A request the server refused unprocessed (REFUSED_STREAM) is sent again this often. */
#define H2_REPLAYS_MAX 3u
/* Our receive window per stream: the most body bytes queued for one stream. */
#define H2_WINDOW (256u * 1024u)
/* Streams on one connection at most (more open another connection). */
#define H2_STREAMS_PER_CONNECTION 100u
/* The connection's window: every stream may fill its own without starving the others. */
#define H2_CONNECTION_WINDOW (H2_WINDOW * H2_STREAMS_PER_CONNECTION)
/* Bytes gathered per write: one TLS record. */
#define H2_OUT_BUFFER 16384u

struct H2Connection {
        SsContext *context;
        H2Connection *prev, *next; /* in context->h2_connections */

        /* The key: what a stream must have in common to join. */
        char *host;
        uint16_t port;
        bool tls;
        bool unix_socket;
        const SsTlsEntry *tls_entry;
        int family;

        Transport *transport;
        nghttp2_session *session;
        bool up;     /* h2 negotiated, the session set up */
        bool dead;   /* takes no more streams (GOAWAY, handed over, failed) */
        bool failed; /* broken: every stream on it fails, then it goes */
        unsigned refs;

        H2Client *streams, *streams_tail; /* attached, oldest first */
        unsigned n_streams;
        H2Client *pending, *pending_tail; /* streams with something to act on */

        sd_event_source *kick;   /* serves pending streams and writes, from the loop */
        uint64_t sent_iteration; /* the loop iteration of the last direct write */
        Timer idle_timer;        /* no streams: closes after the pool's idle time */
        bool ping_outstanding;
        uint64_t alive_usec; /* when bytes last came from the server */

        /* Output of nghttp2_session_mem_send() not yet copied (valid until its next call). */
        const uint8_t *out;
        size_t out_len;
        /* Frames gathered into one TLS record per write (mem_send gives one frame a call). */
        uint8_t buf[H2_OUT_BUFFER];
        size_t buf_start, buf_end;

        uint8_t in[SS_RX_CHUNK];
};

struct H2Client {
        SsStream *stream;
        H2Connection *conn; /* attached to; NULL: not (yet), or the fall back's own transport */
        H2Client *conn_prev, *conn_next;
        H2Client *pending_prev, *pending_next;
        bool is_pending;
        bool waiting;  /* attached to a connection still being set up */
        bool fallback; /* the server chose http/1.1: s->h1 runs the transaction */
        bool started;
        unsigned replays; /* refused at GOAWAY and sent again on another connection */

        char *host; /* the expanded endpoint */
        char *path;
        char *authority;
        int32_t stream_id;

        /* Request body. */
        bool has_body;
        bool body_done;
        bool tx_wanted;
        bool has_len;
        uint64_t body_left;
        uint8_t *tx;
        size_t tx_start, tx_end;
        bool tx_eom;          /* the bytes in tx end the body */
        bool in_tx;           /* inside the tx callback */
        bool requested_in_tx; /* request_tx from inside it: maybe for the next transaction */

        /* Response. */
        unsigned status;
        uint64_t retry_after_ms;
        bool headers_done;
        bool headers_reported;
        bool closed; /* the h2 stream ended */
        uint32_t close_error;
        bool som_sent;
        bool eom_sent;
        uint8_t *rx; /* grows up to H2_WINDOW bytes */
        size_t rx_size, rx_start, rx_end;
};

/* nghttp2's errors as -errno, in one place (nghttp2_strerror() keeps the text). */
static int h2_error_to_errno(int e)
{
        switch (e) {
        case NGHTTP2_ERR_NOMEM:
                return -ENOMEM;
        case NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE:
        case NGHTTP2_ERR_STREAM_CLOSED:
        case NGHTTP2_ERR_STREAM_CLOSING:
        case NGHTTP2_ERR_STREAM_SHUT_WR:
                return -ECONNRESET;
        case NGHTTP2_ERR_INVALID_ARGUMENT:
                return -EINVAL;
        default:
                return -EPROTO;
        }
}

static const char *const h2_alpn[] = {"h2", "http/1.1", NULL};

/* ---- the connection's lists ---------------------------------------------------------- */

static void pending_add(H2Client *h)
{
        H2Connection *conn = h->conn;

        if (!conn || h->is_pending)
                return;
        h->is_pending = true;
        h->pending_next = NULL;
        h->pending_prev = conn->pending_tail;
        if (conn->pending_tail)
                conn->pending_tail->pending_next = h;
        else
                conn->pending = h;
        conn->pending_tail = h;
}

static void pending_remove(H2Client *h)
{
        H2Connection *conn = h->conn;

        if (!h->is_pending)
                return;
        if (h->pending_prev)
                h->pending_prev->pending_next = h->pending_next;
        else
                conn->pending = h->pending_next;
        if (h->pending_next)
                h->pending_next->pending_prev = h->pending_prev;
        else
                conn->pending_tail = h->pending_prev;
        h->pending_prev = h->pending_next = NULL;
        h->is_pending = false;
}

static void conn_kick(H2Connection *conn)
{
        if (conn && conn->kick)
                (void) sd_event_source_set_enabled(conn->kick, SD_EVENT_ONESHOT);
}

/*
 * Gives back window for n body bytes taken off a stream (or dropped with it).
 * The WINDOW_UPDATE goes with the connection's next write: inside its entry
 * points (serving streams, reading) that comes before they return.
 */
static void conn_consume(H2Connection *conn, int32_t stream_id, size_t n)
{
        if (!conn->session || n == 0)
                return;
        (void) nghttp2_session_consume_connection(conn->session, n);
        if (stream_id > 0 && nghttp2_session_find_stream(conn->session, stream_id))
                (void) nghttp2_session_consume_stream(conn->session, stream_id, n);
}

/* ---- nghttp2 callbacks (no stream callbacks from here: only marks) -------------------- */

static H2Client *session_client(nghttp2_session *session, int32_t stream_id)
{
        return stream_id > 0 ? nghttp2_session_get_stream_user_data(session, stream_id) : NULL;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user_data)
{
        H2Client *h = session_client(session, frame->hd.stream_id);

        if (!h || frame->hd.type != NGHTTP2_HEADERS || h->headers_done)
                return 0;
        if (name_len == 7 && memcmp(name, ":status", 7) == 0) {
                unsigned v = 0;

                for (size_t i = 0; i < value_len && i < 3; i++)
                        v = v * 10 + (unsigned) (value[i] - '0');
                h->status = v;
                return 0;
        }
        if (name_len == 11 && memcmp(name, "retry-after", 11) == 0)
                (void) h1_parse_retry_after((const char *) value, value_len, &h->retry_after_ms);
        h1_store_response_metadata(h->stream, (const char *) name, name_len, (const char *) value,
                                   value_len);
        return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
        H2Connection *conn = user_data;
        H2Client *h;

        switch (frame->hd.type) {
        case NGHTTP2_PING:
                if (frame->hd.flags & NGHTTP2_FLAG_ACK)
                        conn->ping_outstanding = false;
                return 0;
        case NGHTTP2_GOAWAY:
                /* Streams past last_stream_id are closed by nghttp2 (REFUSED_STREAM). */
                conn->dead = true;
                return 0;
        case NGHTTP2_HEADERS:
                h = session_client(session, frame->hd.stream_id);
                /* The final response; 1xx heads are skipped. */
                if (h && frame->headers.cat == NGHTTP2_HCAT_RESPONSE && h->status >= 200) {
                        h->headers_done = true;
                        pending_add(h);
                }
                return 0;
        default:
                return 0;
        }
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
        H2Connection *conn = user_data;
        H2Client *h = session_client(session, stream_id);
        size_t need;

        if (!h) {
                /* A stream that went (reset by us): its bytes are not anybody's. */
                conn_consume(conn, stream_id, len);
                return 0;
        }
        if (h->rx_start > 0 && h->rx_end + len > h->rx_size) {
                memmove(h->rx, h->rx + h->rx_start, h->rx_end - h->rx_start);
                h->rx_end -= h->rx_start;
                h->rx_start = 0;
        }
        need = h->rx_end + len;
        /* nghttp2 enforces our window: the queue never holds more than it. */
        if (need > H2_WINDOW)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (need > h->rx_size) {
                size_t size = MAX(h->rx_size, (size_t) 1024);
                uint8_t *p;

                while (size < need)
                        size *= 2;
                size = MIN(size, (size_t) H2_WINDOW);
                p = realloc(h->rx, size);
                if (!p)
                        return NGHTTP2_ERR_CALLBACK_FAILURE;
                h->rx = p;
                h->rx_size = size;
        }
        memcpy(h->rx + h->rx_end, data, len);
        h->rx_end += len;
        pending_add(h);
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
        H2Client *h = session_client(session, stream_id);

        if (h) {
                h->closed = true;
                h->close_error = error_code;
                pending_add(h);
        }
        return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
        H2Client *h = session_client(session, stream_id);
        size_t n;

        if (!h)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        n = MIN(length, h->tx_end - h->tx_start);
        memcpy(buf, h->tx + h->tx_start, n);
        h->tx_start += n;
        if (h->tx_start == h->tx_end && h->tx_eom) {
                *data_flags |= NGHTTP2_DATA_FLAG_EOF;
                return (ssize_t) n;
        }
        /* Empty: the stream pulls the next piece from tx when it is served. */
        if (h->tx_start == h->tx_end && h->tx_wanted)
                pending_add(h);
        if (n == 0)
                return NGHTTP2_ERR_DEFERRED;
        return (ssize_t) n;
}

/* ---- per-transaction state ------------------------------------------------------------- */

static int h2_client_new(H2Client **ret, SsStream *s, const char *host)
{
        _cleanup_free_ char *url = NULL;
        bool literal6 = strchr(host, ':') != NULL;
        bool default_port = s->st->port == 443;
        H2Client *h;
        int r;

        r = strexp_expand_string(strempty(s->st->http.url), ss_stream_metadata_lookup, s, &url,
                                 NULL);
        if (r < 0)
                return r;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->stream = s;
        h->stream_id = -1;
        h->host = strdup(host);
        if (asprintf(&h->path, "/%s", url[0] == '/' ? url + 1 : url) < 0)
                h->path = NULL;
        if (default_port)
                r = asprintf(&h->authority, "%s%s%s", literal6 ? "[" : "", host,
                             literal6 ? "]" : "");
        else
                r = asprintf(&h->authority, "%s%s%s:%u", literal6 ? "[" : "", host,
                             literal6 ? "]" : "", (unsigned) s->st->port);
        if (r < 0)
                h->authority = NULL;
        if (!h->host || !h->path || !h->authority) {
                free(h->host);
                free(h->path);
                free(h->authority);
                free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

static H2Client *h2_client_free(H2Client *h)
{
        if (!h)
                return NULL;
        assert(!h->conn);
        free(h->host);
        free(h->path);
        free(h->authority);
        free(h->tx);
        free(h->rx);
        return mfree(h);
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_settle(H2Connection *conn);

static H2Connection *conn_ref(H2Connection *conn)
{
        conn->refs++;
        return conn;
}

static void conn_unref(H2Connection *conn)
{
        assert(conn->refs > 0);
        if (--conn->refs == 0)
                conn_settle(conn);
}

static void conn_free(H2Connection *conn)
{
        SsContext *c = conn->context;

        assert(conn->n_streams == 0);
        timer_cancel(&conn->idle_timer);
        (void) sd_event_source_disable_unref(conn->kick);
        nghttp2_session_del(conn->session);
        if (conn->transport)
                (void) c->ops->transport_free(conn->transport);
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                c->h2_connections = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        free(conn->host);
        free(conn);
}

/* Closes a connection without streams, with a GOAWAY if the socket takes it now. */
static void conn_close(H2Connection *conn)
{
        const uint8_t *data;
        ssize_t k;

        if (conn->up && !conn->failed && conn->transport && conn->out_len == 0 &&
            conn->buf_end == conn->buf_start &&
            nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR) == 0) {
                k = nghttp2_session_mem_send(conn->session, &data);
                if (k > 0)
                        (void) conn->context->ops->transport_write(conn->transport, data,
                                                                   (size_t) k);
        }
        conn_free(conn);
}

static void on_idle_timer(Timer *timer, void *userdata)
{
        conn_close(userdata);
}

/* Nobody holds the connection any more: with no streams it idles or goes. */
static void conn_settle(H2Connection *conn)
{
        SsContext *c = conn->context;

        if (conn->refs > 0 || conn->n_streams > 0)
                return;
        if (conn->session && !nghttp2_session_want_read(conn->session) &&
            !nghttp2_session_want_write(conn->session))
                conn->dead = true;
        if (!conn->up || conn->dead || conn->failed || !conn->transport ||
            c->pool_per_server == 0 || c->pool_total == 0 || c->pool_idle_ms == 0) {
                conn_close(conn);
                return;
        }
        if (!timer_is_armed(&conn->idle_timer) &&
            scheduler_schedule_in(c->scheduler, &conn->idle_timer, TIMER_LIST_NORMAL,
                                  (uint64_t) c->pool_idle_ms * USEC_PER_MSEC) < 0)
                conn_close(conn);
}

static void conn_attach(H2Connection *conn, H2Client *h)
{
        SsStream *s = h->stream;

        assert(!h->conn);
        h->conn = conn;
        h->conn_next = NULL;
        h->conn_prev = conn->streams_tail;
        if (conn->streams_tail)
                conn->streams_tail->conn_next = h;
        else
                conn->streams = h;
        conn->streams_tail = h;
        conn->n_streams++;
        timer_cancel(&conn->idle_timer);
        h->waiting = !conn->up;
        s->transport = conn->transport;
}

static void conn_detach(H2Client *h)
{
        H2Connection *conn = h->conn;
        SsStream *s = h->stream;

        if (!conn)
                return;
        pending_remove(h);
        if (conn->session && h->stream_id > 0) {
                (void) nghttp2_session_set_stream_user_data(conn->session, h->stream_id, NULL);
                /* Bytes queued but never taken: the connection's window gets them back. */
                if (h->rx_end > h->rx_start) {
                        conn_consume(conn, h->stream_id, h->rx_end - h->rx_start);
                        conn_kick(conn);
                }
                h->rx_start = h->rx_end = 0;
        }
        if (h->conn_prev)
                h->conn_prev->conn_next = h->conn_next;
        else
                conn->streams = h->conn_next;
        if (h->conn_next)
                h->conn_next->conn_prev = h->conn_prev;
        else
                conn->streams_tail = h->conn_prev;
        h->conn_prev = h->conn_next = NULL;
        h->conn = NULL;
        h->waiting = false;
        assert(conn->n_streams > 0);
        conn->n_streams--;
        /* The connection's (also when it was just handed over): never the stream's own. */
        s->transport = NULL;
        conn_settle(conn);
}

static bool conn_has_room(H2Connection *conn)
{
        uint32_t limit = H2_STREAMS_PER_CONNECTION;

        if (conn->dead || conn->failed || !conn->transport)
                return false;
        if (conn->session)
                limit = MIN(limit, nghttp2_session_get_remote_settings(
                                       conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        return conn->n_streams < limit;
}

static bool conn_matches(const H2Connection *conn, const SsStream *s, const char *host)
{
        return conn->port == s->st->port && conn->tls == s->st->tls &&
               conn->unix_socket == s->st->unix_socket && conn->tls_entry == s->tls &&
               conn->family == s->family && streq(conn->host, host);
}

static void on_conn_connected(Transport *t, void *userdata);
static void on_conn_readable(Transport *t, void *userdata);
static void on_conn_writable(Transport *t, void *userdata);
static void on_conn_failed(Transport *t, TransportError error, const char *detail, void *userdata);
static int on_kick(sd_event_source *source, void *userdata);

static const TransportHandlers conn_handlers = {
    .connected = on_conn_connected,
    .readable = on_conn_readable,
    .writable = on_conn_writable,
    .failed = on_conn_failed,
};

static int conn_new(H2Connection **ret, SsStream *s, const char *host)
{
        SsContext *c = s->context;
        TransportOptions opts = {
            .host = host,
            .port = s->st->port,
            .unix_socket = s->st->unix_socket,
            .tls = s->st->tls,
            .tls_context = s->st->tls && s->tls ? s->tls->tls : NULL,
            .alpn = s->st->tls ? h2_alpn : NULL,
            .family = s->family,
        };
        H2Connection *conn;
        int r;

        if (!c->event)
                return -EOPNOTSUPP;
        conn = calloc(1, sizeof(*conn));
        if (!conn)
                return -ENOMEM;
        conn->context = c;
        conn->host = strdup(host);
        conn->port = s->st->port;
        conn->tls = s->st->tls;
        conn->unix_socket = s->st->unix_socket;
        conn->tls_entry = s->tls;
        conn->family = s->family;
        timer_init(&conn->idle_timer, on_idle_timer, conn);
        if (!conn->host) {
                free(conn);
                return -ENOMEM;
        }
        r = sd_event_add_defer(c->event, &conn->kick, on_kick, conn);
        if (r >= 0)
                r = sd_event_source_set_enabled(conn->kick, SD_EVENT_OFF);
        if (r >= 0)
                r = c->ops->transport_new(&conn->transport, c->event, c->resolver, &opts,
                                          &conn_handlers, conn);
        if (r < 0) {
                (void) sd_event_source_disable_unref(conn->kick);
                free(conn->host);
                free(conn);
                return r;
        }
        conn->next = c->h2_connections;
        if (c->h2_connections)
                c->h2_connections->prev = conn;
        c->h2_connections = conn;
        *ret = conn;
        return 0;
}

static int session_setup(H2Connection *conn)
{
        nghttp2_session_callbacks *cb = NULL;
        nghttp2_option *opt = NULL;
        nghttp2_settings_entry settings[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
        };
        int e;

        /* Loaded with the streamtype's first stream (h2_load()): this only makes sure. */
        e = h2_lib_load(NULL, 0);
        if (e < 0)
                return e;
        e = nghttp2_session_callbacks_new(&cb);
        if (e == 0)
                e = nghttp2_option_new(&opt);
        if (e == 0) {
                nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
                nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
                nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
                nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
                /* Our windows open as rx takes the bytes (nghttp2_session_consume()). */
                nghttp2_option_set_no_auto_window_update(opt, 1);
                nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
                e = nghttp2_session_client_new2(&conn->session, cb, conn, opt);
        }
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        if (e == 0)
                e = nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
                                            ELEMENTSOF(settings));
        if (e == 0)
                e = nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                                          H2_CONNECTION_WINDOW);
        return e == 0 ? 0 : h2_error_to_errno(e);
}

/* Writes what nghttp2 has to send, until the socket is full; no stream callbacks. */
static void conn_flush(H2Connection *conn)
{
        const SsTransportOps *ops = conn->context->ops;

        if (!conn->transport || !conn->session || conn->failed)
                return;
        for (;;) {
                ssize_t n;

                /* Gather frames up to a record's worth. */
                while (conn->buf_end < sizeof(conn->buf)) {
                        size_t k;

                        if (conn->out_len == 0) {
                                n = nghttp2_session_mem_send(conn->session, &conn->out);
                                if (n < 0) {
                                        conn->failed = true;
                                        return;
                                }
                                if (n == 0)
                                        break;
                                conn->out_len = (size_t) n;
                        }
                        k = MIN(conn->out_len, sizeof(conn->buf) - conn->buf_end);
                        memcpy(conn->buf + conn->buf_end, conn->out, k);
                        conn->buf_end += k;
                        conn->out += k;
                        conn->out_len -= k;
                }
                if (conn->buf_end == conn->buf_start) {
                        conn->buf_start = conn->buf_end = 0;
                        ops->transport_want_write(conn->transport, false);
                        return;
                }
                /* After a short write the next one starts with the same bytes (TLS). */
                n = ops->transport_write(conn->transport, conn->buf + conn->buf_start,
                                         conn->buf_end - conn->buf_start);
                if (n == -EAGAIN || n == 0) {
                        ops->transport_want_write(conn->transport, true);
                        return;
                }
                if (n < 0) {
                        conn->failed = true;
                        return;
                }
                conn->buf_start += (size_t) n;
                if (conn->buf_start == conn->buf_end)
                        conn->buf_start = conn->buf_end = 0;
                else if (conn->buf_start > sizeof(conn->buf) / 2) {
                        memmove(conn->buf, conn->buf + conn->buf_start,
                                conn->buf_end - conn->buf_start);
                        conn->buf_end -= conn->buf_start;
                        conn->buf_start = 0;
                }
        }
}

/*
 * A request from a stream's entry point: the first of a loop iteration goes
 * out at once (a lone request waits for nobody); later ones are gathered by
 * the kick into one write.
 */
static void conn_send_soon(H2Connection *conn)
{
        uint64_t iteration = 0;
        int enabled = SD_EVENT_OFF;

        (void) sd_event_get_iteration(conn->context->event, &iteration);
        (void) sd_event_source_get_enabled(conn->kick, &enabled);
        if (enabled != SD_EVENT_OFF || iteration == conn->sent_iteration) {
                conn_kick(conn);
                return;
        }
        conn->sent_iteration = iteration;
        conn_flush(conn);
        if (conn->failed)
                conn_kick(conn); /* the kick fails the streams, from the loop */
}

/* ---- serving one stream ------------------------------------------------------------------ */

/* Pulls the next piece of the body from tx. */
static SsResult fill_body(SsStream *s, H2Client *h)
{
        size_t max = SS_TX_CHUNK, len;
        unsigned flags = 0;
        SsResult r;

        if (!h->tx) {
                h->tx = malloc(SS_TX_CHUNK);
                if (!h->tx)
                        return SS_DISCONNECT_ME;
        }
        if (h->has_len && h->body_left < max)
                max = (size_t) h->body_left;
        len = max;
        h->in_tx = true;
        h->requested_in_tx = false;
        r = ss_stream_call_tx(s, h->tx, &len, &flags);
        h->in_tx = false;
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return r;
        if (r == SS_TX_DONT_SEND) {
                h->tx_wanted = false;
                return SS_OK;
        }
        if (len > max)
                return SS_DISCONNECT_ME; /* the callback wrote past the buffer it was given */
        h->tx_start = 0;
        h->tx_end = len;
        if (h->has_len) {
                h->body_left -= len;
                if (h->body_left == 0)
                        h->tx_eom = true;
                else if (flags & SS_FLAG_EOM)
                        return SS_DISCONNECT_ME; /* shorter than the announced length */
        } else if (flags & SS_FLAG_EOM)
                h->tx_eom = true;
        h->body_done = h->tx_eom;
        /* Asked for by the callback that ended the body: that is the next transaction. */
        if (h->body_done && h->requested_in_tx)
                s->tx_pending = true;
        if (len > 0 || h->tx_eom)
                (void) nghttp2_session_resume_data(h->conn->session, h->stream_id);
        else
                pending_add(h); /* nothing yet: ask again */
        conn_kick(h->conn);
        return SS_OK;
}

static SsResult h2_fail(SsStream *s)
{
        return ss_stream_transaction_done(s, true, 0);
}

/* The response is over: last rx, ACK or NACK, then end the transaction. */
static SsResult complete(SsStream *s, H2Client *h)
{
        unsigned status = h->status;
        uint64_t retry_after = h->retry_after_ms;
        bool failed;
        SsResult r;

        r = ss_stream_deliver_state(s,
                                    h1_status_is_expected(s, status) ? SS_STATE_QOS_ACK_REMOTE
                                                                     : SS_STATE_QOS_NACK_REMOTE,
                                    status);
        if (r == SS_DESTROY_ME)
                return r;
        failed = (status == 503 || status == 429) && r != SS_DISCONNECT_ME;
        return ss_stream_transaction_done(s, failed, failed ? retry_after : 0);
}

static int h2_attach(SsStream *s, const char *host);
static SsResult h2_start(SsStream *s);

/*
 * The server refused the request without processing it (REFUSED_STREAM: past
 * a GOAWAY's last stream, say): a request without a body goes again on
 * another connection, with no state changes, as h1 repeats a request whose
 * kept-alive connection was dead.
 */
static bool can_replay(const H2Client *h)
{
        return h->closed && h->close_error == NGHTTP2_REFUSED_STREAM && !h->headers_done &&
               !h->som_sent && h->rx_end == 0 && !h->has_body && h->replays < H2_REPLAYS_MAX;
}

static SsResult replay(SsStream *s, H2Client *h)
{
        int r;

        conn_detach(h);
        h->replays++;
        h->started = false;
        h->stream_id = -1;
        h->closed = false;
        h->close_error = 0;
        h->status = 0;
        h->retry_after_ms = 0;
        r = h2_attach(s, h->host);
        if (r < 0)
                return h2_fail(s);
        if (r > 0)
                return h2_start(s);
        /* The new connection starts it without states (as a redirect's transport). */
        s->redirecting = true;
        return SS_OK;
}

/*
 * Acts on what the last frames brought: head, body to rx, the end. A stream
 * entry point; h may be gone afterwards (the transaction ended).
 */
static SsResult serve(SsStream *s, H2Client *h)
{
        SsResult r;

        if (can_replay(h))
                return replay(s, h);

        if (h->headers_done && !h->headers_reported) {
                h->headers_reported = true;
                if (h->status != 503 && h->status != 429)
                        ss_stream_reset_retry(s);
                for (size_t i = 0; i < s->st->http.n_resp_map; i++)
                        if (s->st->http.resp_map[i].code == h->status) {
                                r = ss_stream_deliver_state(
                                    s, (SsState) s->st->http.resp_map[i].value, h->status);
                                if (r != SS_OK)
                                        return r;
                                break;
                        }
        }

        /*
         * Body: hold the last piece back until the end is known, so it carries
         * EOM; a long_poll stream gets each piece as it comes (and EOM alone).
         */
        while (!s->rx_paused && h->rx_end > h->rx_start) {
                size_t avail = h->rx_end - h->rx_start;
                bool last = h->closed && h->close_error == 0 && avail <= SS_RX_CHUNK;
                size_t n = MIN(avail, (size_t) SS_RX_CHUNK);
                unsigned flags = (h->som_sent ? 0 : SS_FLAG_SOM) | (last ? SS_FLAG_EOM : 0);

                if (!h->closed && avail <= SS_RX_CHUNK && !s->st->long_poll)
                        break;
                if (h->closed && h->close_error != 0)
                        break; /* reset: the body is incomplete */
                h->som_sent = true;
                h->eom_sent = last;
                h->rx_start += n;
                r = ss_stream_deliver_rx(s, h->rx + h->rx_start - n, n, flags);
                if (r != SS_OK)
                        return r;
                conn_consume(h->conn, h->stream_id, n);
                if (h->rx_start == h->rx_end)
                        h->rx_start = h->rx_end = 0;
        }

        if (h->closed) {
                /* Reset by the server, refused at GOAWAY, or ended without a final response. */
                if (h->close_error != 0 || !h->headers_done)
                        return h2_fail(s);
                if (h->rx_end != h->rx_start)
                        return SS_OK; /* paused */
                if (h->som_sent && !h->eom_sent) {
                        /* The last piece went out before the end was known. */
                        if (s->rx_paused)
                                return SS_OK;
                        h->eom_sent = true;
                        r = ss_stream_deliver_rx(s, (const uint8_t *) "", 0, SS_FLAG_EOM);
                        if (r != SS_OK)
                                return r;
                }
                return complete(s, h);
        }
        if (h->tx_wanted && !h->body_done && h->tx_start == h->tx_end && h->stream_id > 0)
                return fill_body(s, h);
        return SS_OK;
}

/* ---- the connection's entry points ---------------------------------------------------- */

/* Every stream on a broken connection fails (a failed transaction: retried as usual). */
static void conn_fail_all(H2Connection *conn)
{
        H2Client *h;

        conn->dead = true;
        conn->failed = true;
        while ((h = conn->streams)) {
                SsStream *s = h->stream;

                if (h->waiting)
                        ss_stream_transport_handlers.failed(conn->transport, TRANSPORT_ERROR_IO,
                                                            NULL, s);
                else
                        ss_stream_dispatch(s, h2_fail(s));
                if (conn->streams == h)
                        conn_detach(h); /* not reached: the stream's drop detaches it */
        }
}

/* Serves the pending streams and writes, until neither has anything left. */
static void conn_serve(H2Connection *conn)
{
        for (unsigned round = 0;; round++) {
                H2Client *h;

                while (!conn->failed && (h = conn->pending)) {
                        SsStream *s = h->stream; /* h may be gone after serve() */

                        pending_remove(h);
                        ss_stream_dispatch(s, serve(s, h));
                }
                conn_flush(conn);
                if (!conn->failed && conn->session && conn->up &&
                    !nghttp2_session_want_read(conn->session) &&
                    !nghttp2_session_want_write(conn->session)) {
                        /* GOAWAY and nothing left to do: streams still on it never end. */
                        conn->dead = true;
                        if (conn->streams)
                                conn->failed = true;
                }
                if (conn->failed) {
                        conn_fail_all(conn);
                        return;
                }
                if (!conn->pending)
                        return;
                if (round >= 64) {
                        conn_kick(conn); /* let the loop breathe; the rest next iteration */
                        return;
                }
        }
}

static int on_kick(sd_event_source *source, void *userdata)
{
        H2Connection *conn = conn_ref(userdata);

        conn_serve(conn);
        conn_unref(conn);
        return 0;
}

static void conn_note_alive(H2Connection *conn)
{
        conn->alive_usec = scheduler_now(conn->context->scheduler, TIMER_LIST_NORMAL);
        conn->ping_outstanding = false;
        for (H2Client *h = conn->streams; h; h = h->conn_next)
                if (!h->waiting)
                        ss_stream_note_alive(h->stream);
}

static void on_conn_readable(Transport *t, void *userdata)
{
        H2Connection *conn = conn_ref(userdata);
        const SsTransportOps *ops = conn->context->ops;
        bool noted = false;

        while (!conn->failed) {
                ssize_t n = ops->transport_read(t, conn->in, sizeof(conn->in));

                if (n == -EAGAIN)
                        break;
                if (n <= 0 || !conn->session) {
                        conn->failed = true;
                        break;
                }
                if (!noted) {
                        conn_note_alive(conn);
                        noted = true;
                }
                if (nghttp2_session_mem_recv(conn->session, conn->in, (size_t) n) < 0) {
                        conn->failed = true;
                        break;
                }
                /* Reading goes on while streams are paused: their windows bound them. */
                if (conn->pending)
                        conn_serve(conn);
        }
        conn_serve(conn);
        conn_unref(conn);
}

static void on_conn_writable(Transport *t, void *userdata)
{
        H2Connection *conn = conn_ref(userdata);

        conn_serve(conn);
        conn_unref(conn);
}

static H2Client *conn_first_waiting(H2Connection *conn)
{
        for (H2Client *h = conn->streams; h; h = h->conn_next)
                if (h->waiting)
                        return h;
        return NULL;
}

/*
 * The server does not speak h2: the connection becomes the first waiting
 * stream's own (h1 over it); the others open connections of their own.
 */
static void conn_hand_over(H2Connection *conn, Transport *t)
{
        const SsTransportOps *ops = conn->context->ops;
        H2Client *h = conn_first_waiting(conn);

        conn->dead = true;
        conn->transport = NULL;
        if (h) {
                SsStream *s = h->stream;

                conn_detach(h);
                s->transport = t;
                ops->transport_set_handlers(t, &ss_stream_transport_handlers, s);
                ss_stream_transport_handlers.connected(t, s);
        } else
                (void) ops->transport_free(t);

        while ((h = conn->streams)) {
                SsStream *s = h->stream;
                int r;

                conn_detach(h);
                r = h2_attach(s, conn->host);
                if (r < 0)
                        ss_stream_transport_handlers.failed(NULL, TRANSPORT_ERROR_IO, NULL, s);
                else if (r > 0)
                        ss_stream_transport_handlers.connected(s->transport, s);
        }
}

static void on_conn_connected(Transport *t, void *userdata)
{
        H2Connection *conn = conn_ref(userdata);
        const char *alpn = conn->tls ? transport_get_alpn(t) : NULL;
        H2Client *h;

        if (!alpn || !streq(alpn, "h2")) {
                conn_hand_over(conn, t);
                conn_unref(conn);
                return;
        }
        if (session_setup(conn) < 0) {
                conn->failed = true;
                conn_fail_all(conn);
                conn_unref(conn);
                return;
        }
        conn->up = true;
        conn->alive_usec = scheduler_now(conn->context->scheduler, TIMER_LIST_NORMAL);
        /* Each waiting stream is connected at an entry point of its own. */
        while (!conn->failed && (h = conn_first_waiting(conn))) {
                h->waiting = false;
                ss_stream_transport_handlers.connected(t, h->stream);
        }
        conn_serve(conn);
        conn_unref(conn);
}

static void on_conn_failed(Transport *t, TransportError error, const char *detail, void *userdata)
{
        H2Connection *conn = conn_ref(userdata);
        H2Client *h;

        conn->dead = true;
        conn->failed = true;
        /* Setup failed: each waiting stream's attempt failed (UNREACHABLE, retry). */
        while ((h = conn->streams)) {
                SsStream *s = h->stream;

                if (h->waiting)
                        ss_stream_transport_handlers.failed(t, error, detail, s);
                else
                        ss_stream_dispatch(s, h2_fail(s));
                if (conn->streams == h)
                        conn_detach(h);
        }
        conn_unref(conn);
}

/* ---- the protocol's operations ------------------------------------------------------------ */

static int submit_request(SsStream *s, H2Client *h)
{
        const char *method = h1_stream_method(s);
        nghttp2_data_provider body = {.read_callback = read_body};
        _cleanup_free_ nghttp2_nv *nv_heap = NULL;
        _cleanup_free_ char *lower_heap = NULL;
        nghttp2_nv nv_stack[16], *nv = nv_stack;
        char lower_stack[512], *lower = lower_stack;
        size_t n = 0, first_metadata, lower_size = 1;
        char length[24];
        int32_t id;

        /* Header names go out in lower case, as h2 wants them. */
        if (5 + s->st->n_metadata > ELEMENTSOF(nv_stack)) {
                nv = nv_heap = calloc(5 + s->st->n_metadata, sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
        }
        nv[n++] = (nghttp2_nv){(uint8_t *) ":method", (uint8_t *) method, 7, strlen(method), 0};
        nv[n++] = (nghttp2_nv){(uint8_t *) ":scheme", (uint8_t *) "https", 7, 5, 0};
        nv[n++] = (nghttp2_nv){(uint8_t *) ":authority", (uint8_t *) h->authority, 10,
                               strlen(h->authority), 0};
        nv[n++] = (nghttp2_nv){(uint8_t *) ":path", (uint8_t *) h->path, 5, strlen(h->path), 0};

        h->has_body = h1_method_has_body(method);
        h->body_done = !h->has_body;
        if (h->has_body && s->has_tx_len) {
                h->has_len = true;
                h->body_left = s->tx_len;
                (void) snprintf(length, sizeof(length), "%" PRIu64, s->tx_len);
                nv[n++] = (nghttp2_nv){(uint8_t *) "content-length", (uint8_t *) length, 14,
                                       strlen(length), 0};
                if (s->tx_len == 0) {
                        h->tx_eom = true;
                        h->body_done = true;
                }
        }
        h->tx_wanted = h->has_body && !h->body_done;

        first_metadata = n;
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const PolicyMetadata *md = &s->st->metadata[i];
                size_t len = md->header_len;

                if (len == 0 || !s->metadata[i])
                        continue;
                nv[n++] = (nghttp2_nv){(uint8_t *) md->header, (uint8_t *) s->metadata[i], len,
                                       s->metadata_len[i], 0};
                lower_size += len;
        }
        /* h2 header names are lower case: the policy's are copied so (nghttp2 copies them again).
         */
        if (lower_size > sizeof(lower_stack)) {
                lower = lower_heap = malloc(lower_size);
                if (!lower)
                        return -ENOMEM;
        }
        for (size_t i = first_metadata, off = 0; i < n; i++) {
                for (size_t j = 0; j < nv[i].namelen; j++) {
                        char c = (char) nv[i].name[j];

                        lower[off + j] = c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
                }
                nv[i].name = (uint8_t *) lower + off;
                off += nv[i].namelen;
        }

        id = nghttp2_submit_request(h->conn->session, NULL, nv, n, h->has_body ? &body : NULL, h);
        if (id < 0)
                return h2_error_to_errno(id);
        h->stream_id = id;
        return 0;
}

static SsResult h2_start(SsStream *s)
{
        H2Client *h = s->h2;
        const char *alpn;
        int r;

        assert(h);
        if (h->conn) {
                /* A stream on a shared connection: its request becomes an h2 stream. */
                if (h->started || !h->conn->session)
                        return h2_fail(s);
                h->started = true;
                r = submit_request(s, h);
                if (r < 0) {
                        if (r == -ECONNRESET)
                                h->conn->dead = true; /* stream ids used up */
                        return h2_fail(s);
                }
                if (h->tx_wanted) {
                        pending_add(h);
                        conn_kick(h->conn);
                } else
                        conn_send_soon(h->conn);
                return SS_OK;
        }

        /* A transport of the stream's own: handed over by a connection without h2. */
        alpn = s->st->tls && s->transport ? transport_get_alpn(s->transport) : NULL;
        if (h->started) {
                /* A replacement transport (an h1 redirect): it must speak h1 too. */
                if (!h->fallback || (alpn && streq(alpn, "h2")))
                        return h2_fail(s);
                return h1_client_start(s);
        }
        h->started = true;
        if (alpn && streq(alpn, "h2"))
                return h2_fail(s); /* h2 is only spoken on shared connections */
        h->fallback = true;
        if (h1_client_new(&s->h1, s, h->host) < 0)
                return h2_fail(s);
        return h1_client_start(s);
}

/* Only a transport of the stream's own (the h1 fall back) calls these. */
static SsResult h2_on_readable(SsStream *s)
{
        H2Client *h = s->h2;

        if (h && h->fallback)
                return h1_client_on_readable(s);
        return SS_OK;
}

static SsResult h2_on_writable(SsStream *s)
{
        H2Client *h = s->h2;

        if (h && h->fallback)
                return h1_client_on_writable(s);
        return SS_OK;
}

static void h2_request_tx(SsStream *s)
{
        H2Client *h = s->h2;

        if (h && h->fallback) {
                h1_client_request_tx(s);
                return;
        }
        if (!h || !h->conn || !h->started || !h->has_body || h->body_done) {
                s->tx_pending = true;
                return;
        }
        if (h->in_tx)
                h->requested_in_tx = true;
        h->tx_wanted = true;
        pending_add(h);
        conn_kick(h->conn);
}

static SsResult h2_validity_ping(SsStream *s)
{
        H2Client *h = s->h2;
        H2Connection *conn = h ? h->conn : NULL;

        /* h1 has no ping: svalidhup alone watches a fallen-back connection. */
        if (!conn || !conn->up || conn->failed || conn->ping_outstanding)
                return SS_OK;
        if (nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, NULL) != 0)
                return SS_OK; /* svalidhup ends it if it is dead */
        conn->ping_outstanding = true;
        conn_kick(conn);
        return SS_OK;
}

static void h2_resume_rx(SsStream *s)
{
        H2Client *h = s->h2;

        /* The queue goes to rx from the connection's kick: no bytes may come to wake us. */
        if (!h || !h->conn || !h->started)
                return;
        pending_add(h);
        conn_kick(h->conn);
}

/*
 * The core drops the stream (transaction over, timeout, DISCONNECT_ME, destroy,
 * svalidhup): an h2 stream still open is reset, the others go on. A hang-up
 * after svalidhup of silence means the connection is dead: it fails for all.
 */
static void h2_close(SsStream *s)
{
        H2Client *h = s->h2;
        H2Connection *conn = h ? h->conn : NULL;
        const PolicyRetry *retry = s->retry;

        if (!conn || !conn->up || conn->failed)
                return;
        if (retry && retry->valid_hangup_s > 0 &&
            scheduler_now(s->context->scheduler, TIMER_LIST_NORMAL) - conn->alive_usec >=
                (uint64_t) retry->valid_hangup_s * USEC_PER_SEC) {
                conn->failed = true;
                conn_kick(conn);
                return;
        }
        if (h->stream_id > 0 && !h->closed &&
            nghttp2_session_find_stream(conn->session, h->stream_id)) {
                (void) nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, h->stream_id,
                                                 NGHTTP2_CANCEL);
                conn_kick(conn);
        }
}

static int64_t h2_tx_credit(SsStream *s)
{
        H2Client *h = s->h2;
        H2Connection *conn = h ? h->conn : NULL;
        int32_t stream, connection;

        if (!conn || !conn->session || h->stream_id < 0)
                return -1;
        stream = nghttp2_session_get_stream_remote_window_size(conn->session, h->stream_id);
        /* Submitted, not sent yet: it opens with the server's initial window. */
        if (stream < 0 && !h->closed)
                stream = (int32_t) nghttp2_session_get_remote_settings(
                    conn->session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        connection = nghttp2_session_get_remote_window_size(conn->session);
        if (stream < 0 || connection < 0)
                return -1;
        return MIN(stream, connection);
}

/*
 * libnghttp2 is loaded (h2-lib.h) when the first stream of an h2 streamtype
 * over TLS is made, so that a stream fails at once, with the reason, where it
 * cannot be. Without TLS there is no ALPN, h2 is never spoken (h1 instead)
 * and nothing needs loading.
 */
static int h2_load(const PolicyStreamtype *st)
{
        return st->tls ? h2_lib_load(NULL, 0) : 0;
}

static int h2_connection_new(SsStream *s, const char *host)
{
        return h2_client_new(&s->h2, s, host);
}

/* Joins a connection to the server: 1 when it is up, 0 while it is being set up. */
static int h2_attach(SsStream *s, const char *host)
{
        H2Connection *conn;
        int r;

        assert(s->h2 && !s->h2->conn);
        for (conn = s->context->h2_connections; conn; conn = conn->next)
                if (conn_matches(conn, s, host) && conn_has_room(conn))
                        break;
        if (!conn) {
                r = conn_new(&conn, s, host);
                if (r < 0)
                        return r;
        }
        conn_attach(conn, s->h2);
        return conn->up ? 1 : 0;
}

static void h2_connection_free(SsStream *s)
{
        if (s->h2)
                conn_detach(s->h2);
        s->h1 = h1_client_free(s->h1);
        s->h2 = h2_client_free(s->h2);
}

void h2_connections_drop_idle(SsContext *c, bool all, const SsTlsEntry *e)
{
        H2Connection *conn, *next;

        for (conn = c->h2_connections; conn; conn = next) {
                next = conn->next;
                if (conn->n_streams == 0 && conn->refs == 0 && (all || conn->tls_entry == e))
                        conn_close(conn);
        }
}

const SsProtocolOps ss_protocol_h2 = {
    .name = "h2",
    .alpn = h2_alpn,
    .load = h2_load,
    .connection_new = h2_connection_new,
    .connection_free = h2_connection_free,
    .attach = h2_attach,
    .start = h2_start,
    .on_readable = h2_on_readable,
    .on_writable = h2_on_writable,
    .request_tx = h2_request_tx,
    .validity_ping = h2_validity_ping,
    .close = h2_close,
    .resume_rx = h2_resume_rx,
    .tx_credit = h2_tx_credit,
};

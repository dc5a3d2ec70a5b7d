/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/2 client protocol of Secure Streams (libnghttp2): one request per
 * stream connection, as h1 does. The connection offers ALPN {"h2",
 * "http/1.1"}; when the server picks anything but h2 (or the streamtype is
 * not over TLS: h2 is only spoken after ALPN), the same connection carries
 * the transaction as HTTP/1.1 through h1-client.c, whose state then lives in
 * s->h1 next to ours.
 *
 * The request is built from the policy as for h1 (method, ${metadata}-expanded
 * url as :path, the endpoint as :authority, metadata headers); a body is pulled
 * from tx with content-length when request_tx_len gave one. The response body
 * goes to rx (SOM on the first piece, EOM on the last), then QOS_ACK_REMOTE or
 * QOS_NACK_REMOTE by http_expect; resp_map and Retry-After as for h1.
 *
 * nghttp2 only sees bytes and reports frames: nothing calls back into the
 * stream from inside it. Body bytes are queued and handed to rx afterwards;
 * the queue is bounded by our receive window, which is opened again
 * (nghttp2_session_consume(), automatic window updates off) only for bytes rx
 * has taken, so a paused or slow application stops the server.
 */
#include <assert.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <strings.h>

#include "stream-internal.h"

/* Our receive window (stream and connection): the most body bytes we queue. */
#define H2_WINDOW (256u * 1024u)

struct H2Client {
        nghttp2_session *session;
        bool fallback; /* the server chose http/1.1: s->h1 runs the transaction */
        bool started;
        bool closing;            /* GOAWAY queued by close() */
        sd_event_source *resume; /* delivers the queue after ss_stream_pause_rx(false) */

        char *host; /* the expanded endpoint */
        char *path;
        char *authority;
        int32_t stream_id;

        /* Pending output of nghttp2_session_mem_send() (valid until its next call). */
        const uint8_t *out;
        size_t out_len;

        /* Request body. */
        bool has_body;
        bool body_done;
        bool tx_wanted;
        bool has_len;
        uint64_t body_left;
        uint8_t *tx;
        size_t tx_start, tx_end;
        bool tx_eom; /* the bytes in tx end the body */

        /* Response. */
        unsigned status;
        uint64_t retry_after_ms;
        bool headers_done;
        bool headers_reported;
        bool closed; /* the stream ended */
        uint32_t close_error;
        bool som_sent;
        uint8_t *rx; /* H2_WINDOW bytes */
        size_t rx_start, rx_end;

        uint8_t in[SS_RX_CHUNK];
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

static SsStream *session_stream(void *user_data)
{
        return user_data;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user_data)
{
        SsStream *s = session_stream(user_data);
        H2Client *h = s->h2;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != h->stream_id ||
            h->headers_done)
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
        h1_store_response_metadata(s, (const char *) name, name_len, (const char *) value,
                                   value_len);
        return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
        H2Client *h = session_stream(user_data)->h2;

        if (frame->hd.stream_id != h->stream_id || frame->hd.type != NGHTTP2_HEADERS)
                return 0;
        /* The final response; 1xx heads are skipped. */
        if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE && h->status >= 200)
                h->headers_done = true;
        return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
        H2Client *h = session_stream(user_data)->h2;

        if (stream_id != h->stream_id)
                return 0;
        /* nghttp2 enforces our window: the queue never holds more than it. */
        if (h->rx_end + len > H2_WINDOW && h->rx_start > 0) {
                memmove(h->rx, h->rx + h->rx_start, h->rx_end - h->rx_start);
                h->rx_end -= h->rx_start;
                h->rx_start = 0;
        }
        if (h->rx_end + len > H2_WINDOW)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        memcpy(h->rx + h->rx_end, data, len);
        h->rx_end += len;
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
        H2Client *h = session_stream(user_data)->h2;

        if (stream_id == h->stream_id) {
                h->closed = true;
                h->close_error = error_code;
        }
        return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
        H2Client *h = session_stream(user_data)->h2;
        size_t n = MIN(length, h->tx_end - h->tx_start);

        memcpy(buf, h->tx + h->tx_start, n);
        h->tx_start += n;
        if (h->tx_start == h->tx_end && h->tx_eom) {
                *data_flags |= NGHTTP2_DATA_FLAG_EOF;
                return (ssize_t) n;
        }
        if (n == 0)
                return NGHTTP2_ERR_DEFERRED;
        return (ssize_t) n;
}

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
        (void) sd_event_source_disable_unref(h->resume);
        nghttp2_session_del(h->session);
        free(h->host);
        free(h->path);
        free(h->authority);
        free(h->tx);
        free(h->rx);
        return mfree(h);
}

static int session_setup(SsStream *s, H2Client *h)
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

        h->rx = malloc(H2_WINDOW);
        h->tx = malloc(SS_TX_CHUNK);
        if (!h->rx || !h->tx)
                return -ENOMEM;
        e = nghttp2_session_callbacks_new(&cb);
        if (e == 0)
                e = nghttp2_option_new(&opt);
        if (e == 0) {
                nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
                nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
                nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
                nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
                /* Our window opens as rx takes the bytes (nghttp2_session_consume()). */
                nghttp2_option_set_no_auto_window_update(opt, 1);
                nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
                e = nghttp2_session_client_new2(&h->session, cb, s, opt);
        }
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        if (e == 0)
                e = nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, settings,
                                            ELEMENTSOF(settings));
        if (e == 0)
                e = nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0,
                                                          H2_WINDOW);
        return e == 0 ? 0 : h2_error_to_errno(e);
}

static nghttp2_nv make_nv(const char *name, size_t name_len, const char *value, size_t value_len)
{
        return (nghttp2_nv){
            .name = (uint8_t *) name,
            .namelen = name_len,
            .value = (uint8_t *) value,
            .valuelen = value_len,
            .flags = NGHTTP2_NV_FLAG_NONE,
        };
}

static int submit_request(SsStream *s, H2Client *h)
{
        const char *method = h1_stream_method(s);
        nghttp2_data_provider body = {.read_callback = read_body};
        _cleanup_free_ nghttp2_nv *nv = NULL;
        _cleanup_free_ char *lower = NULL;
        size_t n = 0, first_metadata, lower_size = 1;
        char length[24];
        int32_t id;

        /* Header names go out in lower case, as h2 wants them. */
        nv = calloc(5 + s->st->n_metadata, sizeof(*nv));
        if (!nv)
                return -ENOMEM;
        nv[n++] = make_nv(":method", 7, method, strlen(method));
        nv[n++] = make_nv(":scheme", 7, "https", 5);
        nv[n++] = make_nv(":authority", 10, h->authority, strlen(h->authority));
        nv[n++] = make_nv(":path", 5, h->path, strlen(h->path));

        h->has_body = h1_method_has_body(method);
        h->body_done = !h->has_body;
        if (h->has_body && s->has_tx_len) {
                h->has_len = true;
                h->body_left = s->tx_len;
                (void) snprintf(length, sizeof(length), "%" PRIu64, s->tx_len);
                nv[n++] = make_nv("content-length", 14, length, strlen(length));
                if (s->tx_len == 0) {
                        h->tx_eom = true;
                        h->body_done = true;
                }
        }
        h->tx_wanted = h->has_body && !h->body_done;

        first_metadata = n;
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const PolicyMetadata *md = &s->st->metadata[i];
                size_t len = h1_header_name_len(md->header);

                if (len == 0 || !s->metadata[i])
                        continue;
                nv[n++] = make_nv(md->header, len, s->metadata[i], s->metadata_len[i]);
                lower_size += len;
        }
        /* h2 header names are lower case: the policy's are copied so (nghttp2 copies them again).
         */
        lower = malloc(lower_size);
        if (!lower)
                return -ENOMEM;
        for (size_t i = first_metadata, off = 0; i < n; i++) {
                for (size_t j = 0; j < nv[i].namelen; j++) {
                        char c = (char) nv[i].name[j];

                        lower[off + j] = c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
                }
                nv[i].name = (uint8_t *) lower + off;
                off += nv[i].namelen;
        }

        id = nghttp2_submit_request(h->session, NULL, nv, n, h->has_body ? &body : NULL, s);
        if (id < 0)
                return h2_error_to_errno(id);
        h->stream_id = id;
        return 0;
}

/* Pulls the next piece of the body from tx. */
static SsResult fill_body(SsStream *s, H2Client *h)
{
        size_t max = SS_TX_CHUNK, len;
        unsigned flags = 0;
        SsResult r;

        if (h->has_len && h->body_left < max)
                max = (size_t) h->body_left;
        len = max;
        r = ss_stream_call_tx(s, h->tx, &len, &flags);
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
        if (len > 0 || h->tx_eom)
                (void) nghttp2_session_resume_data(h->session, h->stream_id);
        return SS_OK;
}

static SsResult h2_fail(SsStream *s)
{
        return ss_stream_transaction_done(s, true, 0);
}

static SsResult h2_on_writable(SsStream *s)
{
        H2Client *h = s->h2;
        const SsTransportOps *ops = s->context->ops;

        if (h && h->fallback)
                return h1_client_on_writable(s);
        if (!h || !h->session || !s->transport)
                return SS_OK;

        for (;;) {
                while (h->out_len > 0) {
                        ssize_t n = ops->transport_write(s->transport, h->out, h->out_len);

                        if (n == -EAGAIN || n == 0) {
                                ops->transport_want_write(s->transport, true);
                                return SS_OK;
                        }
                        if (n < 0)
                                return h2_fail(s);
                        h->out += n;
                        h->out_len -= (size_t) n;
                }
                /* A new piece of the body once nghttp2 has taken the last one. */
                if (h->tx_wanted && !h->body_done && h->tx_start == h->tx_end) {
                        SsResult r = fill_body(s, h);

                        if (r != SS_OK)
                                return r;
                }
                ssize_t k = nghttp2_session_mem_send(h->session, &h->out);

                if (k < 0)
                        return h2_fail(s);
                h->out_len = (size_t) k;
                if (k == 0) {
                        /* Everything is out; the body goes on when nghttp2 took the piece. */
                        bool more = h->tx_wanted && !h->body_done && h->tx_start == h->tx_end;

                        if (!more) {
                                ops->transport_want_write(s->transport, false);
                                return SS_OK;
                        }
                }
        }
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

/*
 * Acts on what the last bytes brought: head, body to rx, the end. *ret_done
 * when the transaction ended (h is gone).
 */
static SsResult process(SsStream *s, H2Client *h, bool *ret_done)
{
        SsResult r;

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

        /* Body: hold the last piece back until the end is known, so it carries EOM. */
        while (!s->rx_paused && h->rx_end > h->rx_start) {
                size_t avail = h->rx_end - h->rx_start;
                bool last = h->closed && h->close_error == 0 && avail <= SS_RX_CHUNK;
                size_t n = MIN(avail, (size_t) SS_RX_CHUNK);
                unsigned flags = (h->som_sent ? 0 : SS_FLAG_SOM) | (last ? SS_FLAG_EOM : 0);

                if (!h->closed && avail <= SS_RX_CHUNK)
                        break;
                h->som_sent = true;
                h->rx_start += n;
                r = ss_stream_deliver_rx(s, h->rx + h->rx_start - n, n, flags);
                if (r != SS_OK)
                        return r;
                (void) nghttp2_session_consume(h->session, h->stream_id, n);
                if (h->rx_start == h->rx_end)
                        h->rx_start = h->rx_end = 0;
        }

        if (h->closed) {
                /* Reset by the server, or ended without a final response. */
                if (h->close_error != 0 || !h->headers_done) {
                        *ret_done = true;
                        return h2_fail(s);
                }
                if (h->rx_end == h->rx_start) {
                        *ret_done = true;
                        return complete(s, h);
                }
        } else if (!nghttp2_session_want_read(h->session) &&
                   !nghttp2_session_want_write(h->session)) {
                *ret_done = true;
                return h2_fail(s); /* GOAWAY before our stream ended */
        }
        return SS_OK;
}

/*
 * Reading goes on while rx is paused: the server can send no more body than
 * our window, and control frames (a PING's answer, GOAWAY) still arrive.
 */
static SsResult h2_on_readable(SsStream *s)
{
        H2Client *h = s->h2;
        const SsTransportOps *ops = s->context->ops;
        bool noted = false, done = false;
        SsResult r;

        if (h && h->fallback)
                return h1_client_on_readable(s);
        if (!h || !h->session || !s->transport)
                return SS_OK;

        /* Body queued while rx was paused. */
        r = process(s, h, &done);
        if (r != SS_OK || done)
                return r;
        for (;;) {
                ssize_t n = ops->transport_read(s->transport, h->in, sizeof(h->in));

                if (n == -EAGAIN)
                        return h2_on_writable(s); /* WINDOW_UPDATEs, PING answers */
                if (n <= 0)
                        return h2_fail(s);
                if (!noted) {
                        ss_stream_note_alive(s);
                        noted = true;
                }
                if (nghttp2_session_mem_recv(h->session, h->in, (size_t) n) < 0)
                        return h2_fail(s);
                r = process(s, h, &done);
                if (r != SS_OK || done)
                        return r;
        }
}

static SsResult h2_start(SsStream *s)
{
        H2Client *h = s->h2;
        const char *alpn;
        int r;

        assert(h);
        if (h->started) {
                /* A replacement transport (an h1 redirect): it must speak h1 too. */
                alpn = s->st->tls ? transport_get_alpn(s->transport) : NULL;
                if (!h->fallback || (alpn && streq(alpn, "h2")))
                        return h2_fail(s);
                return h1_client_start(s);
        }
        h->started = true;
        alpn = s->st->tls ? transport_get_alpn(s->transport) : NULL;
        if (!alpn || !streq(alpn, "h2")) {
                /* The server does not speak h2: the same connection carries h1. */
                h->fallback = true;
                if (h1_client_new(&s->h1, s, h->host) < 0)
                        return h2_fail(s);
                return h1_client_start(s);
        }
        r = session_setup(s, h);
        if (r >= 0)
                r = submit_request(s, h);
        if (r < 0)
                return h2_fail(s);
        return h2_on_writable(s);
}

static void h2_request_tx(SsStream *s)
{
        H2Client *h = s->h2;

        if (h && h->fallback) {
                h1_client_request_tx(s);
                return;
        }
        if (!h || !h->session || !h->has_body || h->body_done) {
                s->tx_pending = true;
                return;
        }
        h->tx_wanted = true;
        if (s->transport)
                s->context->ops->transport_want_write(s->transport, true);
}

static SsResult h2_validity_ping(SsStream *s)
{
        H2Client *h = s->h2;

        /* h1 has no ping: svalidhup alone watches a fallen-back connection. */
        if (!h || h->fallback || !h->session)
                return SS_OK;
        if (nghttp2_submit_ping(h->session, NGHTTP2_FLAG_NONE, NULL) != 0)
                return SS_DISCONNECT_ME;
        return h2_on_writable(s);
}

static int on_resume(sd_event_source *source, void *userdata)
{
        SsStream *s = userdata;

        s->h2->resume = sd_event_source_disable_unref(s->h2->resume);
        ss_stream_dispatch(s, h2_on_readable(s));
        return 0;
}

static void h2_resume_rx(SsStream *s)
{
        H2Client *h = s->h2;

        if (!h || h->fallback || !h->session || h->resume)
                return;
        /* On failure the next bytes from the server deliver the queue (or svalidhup ends it). */
        if (sd_event_add_defer(s->context->event, &h->resume, on_resume, s) < 0)
                h->resume = NULL;
}

static void h2_close(SsStream *s)
{
        H2Client *h = s->h2;
        const uint8_t *data;
        ssize_t k;

        if (!h || h->fallback || !h->session || h->closing || !s->transport)
                return;
        h->closing = true;
        /* Best effort: a GOAWAY if the socket takes it now, after what is pending. */
        if (h->out_len > 0)
                return;
        if (nghttp2_session_terminate_session(h->session, NGHTTP2_NO_ERROR) != 0)
                return;
        k = nghttp2_session_mem_send(h->session, &data);
        if (k > 0)
                (void) s->context->ops->transport_write(s->transport, data, (size_t) k);
}

static int64_t h2_tx_credit(SsStream *s)
{
        H2Client *h = s->h2;
        int32_t stream, connection;

        if (!h || h->fallback || !h->session || h->stream_id < 0)
                return -1;
        stream = nghttp2_session_get_stream_remote_window_size(h->session, h->stream_id);
        connection = nghttp2_session_get_remote_window_size(h->session);
        if (stream < 0 || connection < 0)
                return -1;
        return MIN(stream, connection);
}

static int h2_connection_new(SsStream *s, const char *host)
{
        return h2_client_new(&s->h2, s, host);
}

static void h2_connection_free(SsStream *s)
{
        s->h1 = h1_client_free(s->h1);
        s->h2 = h2_client_free(s->h2);
}

static const char *const h2_alpn[] = {"h2", "http/1.1", NULL};

const SsProtocolOps ss_protocol_h2 = {
    .name = "h2",
    .alpn = h2_alpn,
    .connection_new = h2_connection_new,
    .connection_free = h2_connection_free,
    .start = h2_start,
    .on_readable = h2_on_readable,
    .on_writable = h2_on_writable,
    .request_tx = h2_request_tx,
    .validity_ping = h2_validity_ping,
    .close = h2_close,
    .resume_rx = h2_resume_rx,
    .tx_credit = h2_tx_credit,
};

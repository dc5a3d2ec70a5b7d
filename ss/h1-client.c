/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client protocol of Secure Streams: one transaction per stream
 * connection. Builds the request from the policy (method, ${metadata}-expanded
 * url, metadata headers), sends the body pulled from the tx callback (with
 * Content-Length or chunked), parses the response with the strict parser of
 * http1-parser.c and hands the body to rx (SOM on the first piece, EOM on the
 * last), then reports the outcome as QOS_ACK_REMOTE / QOS_NACK_REMOTE and ends
 * the transaction through the stream core. Redirects are followed here.
 *
 * Keep-alive: after a clean end of the response h1_client_is_reusable() lets
 * the stream core park the connection (stream-pool.c). On a connection taken
 * from the pool, EOF or an error before the first byte of the response means
 * the server closed it while it was idle: a GET or HEAD is sent again once on
 * a new connection; anything else fails as on a new connection.
 *
 * Memory per connection is bounded: the request head (metadata values are
 * bounded by SS_METADATA_VALUE_MAX), one tx chunk, one rx buffer and one held
 * rx piece; the parser bounds the response head.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>

#include "http1-parser.h"
#include "stream-internal.h"

/* Room before the tx payload for a chunk-size line, and after it for CRLF + last chunk. */
#define CHUNK_PREFIX 16u
#define CHUNK_SUFFIX 8u

/* The longest Retry-After we honour: a day. */
#define RETRY_AFTER_MAX_S 86400u

/* Keep-Alive: timeout=N: park for a second less, so that we never race the server's close. */
#define KEEP_ALIVE_MARGIN_MS 1000u

typedef enum H1Body {
        H1_BODY_NONE,
        H1_BODY_LENGTH,
        H1_BODY_CHUNKED,
} H1Body;

struct H1Client {
        Http1Parser *parser;

        /* The target (changes with redirects). */
        char *host;
        uint16_t port;
        bool tls;
        char *path;
        unsigned hops;

        /* Request. */
        char *head;
        size_t head_len, head_sent;
        H1Body body;
        uint64_t body_left;
        bool body_done;
        bool tx_wanted;
        bool in_tx;                /* inside the tx callback */
        bool requested_in_tx;      /* request_tx from inside it: maybe for the next transaction */
        size_t out_start, out_end; /* unsent bytes of out */

        /* Keep-alive. */
        bool reused;            /* the transport came from the pool */
        bool got_response;      /* a byte of the response arrived on this transport */
        bool reusable;          /* the response ended cleanly: the connection may be parked */
        uint64_t keep_alive_ms; /* the server's Keep-Alive timeout, UINT64_MAX: none */

        /* Response. */
        bool stop_reading; /* the transport was replaced: leave the read loop */
        unsigned status;
        char *location;
        uint64_t retry_after_ms;
        uint64_t content_length; /* UINT64_MAX: unknown (chunked or close-delimited) */
        uint64_t delivered;
        bool som_sent;
        size_t held_len;

        /* Buffers last: not cleared on allocation (only ever read after being written). */
        uint8_t out[CHUNK_PREFIX + SS_TX_CHUNK + CHUNK_SUFFIX];
        uint8_t held[SS_RX_CHUNK];
        uint8_t in[SS_RX_CHUNK];
};

bool h1_method_has_body(const char *method)
{
        return streq(method, "POST") || streq(method, "PUT") || streq(method, "PATCH");
}

const char *h1_stream_method(SsStream *s)
{
        return s->st->http.method ? s->st->http.method : "GET";
}

int h1_client_new(H1Client **ret, SsStream *s, const char *host)
{
        _cleanup_free_ char *url = NULL;
        H1Client *h;
        int r;

        r = strexp_expand_string(strempty(s->st->http.url), ss_stream_metadata_lookup, s, &url,
                                 NULL);
        if (r < 0)
                return r;

        /* 48 KiB of buffers per transaction: clear only the fields. */
        h = malloc(sizeof(*h));
        if (!h)
                return -ENOMEM;
        memset(h, 0, offsetof(H1Client, out));
        h->keep_alive_ms = UINT64_MAX;
        r = http1_parser_new(&h->parser);
        if (r < 0) {
                free(h);
                return r;
        }
        h->host = strdup(host);
        if (h->host && asprintf(&h->path, "/%s", url[0] == '/' ? url + 1 : url) < 0)
                h->path = NULL;
        if (!h->host || !h->path) {
                h1_client_free(h);
                return -ENOMEM;
        }
        h->port = s->st->port;
        h->tls = s->st->tls;
        *ret = h;
        return 0;
}

H1Client *h1_client_free(H1Client *h)
{
        if (!h)
                return NULL;
        http1_parser_free(h->parser);
        free(h->host);
        free(h->path);
        free(h->head);
        free(h->location);
        return mfree(h);
}

/* A growing string for the request head. */
typedef struct Buf {
        char *data;
        size_t len, size;
        bool failed;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
        if (b->failed)
                return;
        if (b->len + n + 1 > b->size) {
                size_t size = MAX(b->size * 2, b->len + n + 1);
                char *p = realloc(b->data, MAX(size, (size_t) 512));

                if (!p) {
                        b->failed = true;
                        return;
                }
                b->data = p;
                b->size = MAX(size, (size_t) 512);
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void buf_adds(Buf *b, const char *s)
{
        buf_add(b, s, strlen(s));
}

static int build_request(SsStream *s, H1Client *h)
{
        const char *method = h1_stream_method(s);
        bool default_port = h->port == (h->tls ? 443 : 80);
        bool literal6 = strchr(h->host, ':') != NULL;
        char line[64];
        Buf b = {};

        buf_adds(&b, method);
        buf_adds(&b, " ");
        buf_adds(&b, h->path);
        buf_adds(&b, " HTTP/1.1\r\nHost: ");
        if (literal6)
                buf_adds(&b, "[");
        buf_adds(&b, s->st->unix_socket ? "localhost" : h->host);
        if (literal6)
                buf_adds(&b, "]");
        if (!default_port && !s->st->unix_socket) {
                (void) snprintf(line, sizeof(line), ":%u", (unsigned) h->port);
                buf_adds(&b, line);
        }
        buf_adds(&b, "\r\n");

        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const PolicyMetadata *md = &s->st->metadata[i];
                size_t n = md->header_len;

                if (n == 0 || !s->metadata[i])
                        continue;
                buf_add(&b, md->header, n);
                buf_adds(&b, ": ");
                buf_add(&b, s->metadata[i], s->metadata_len[i]);
                buf_adds(&b, "\r\n");
        }

        h->body = H1_BODY_NONE;
        h->body_done = true;
        if (h1_method_has_body(method) && h->hops == 0) {
                h->body_done = false;
                h->tx_wanted = true;
                if (s->has_tx_len) {
                        h->body = H1_BODY_LENGTH;
                        h->body_left = s->tx_len;
                        h->body_done = s->tx_len == 0;
                        (void) snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n",
                                        s->tx_len);
                        buf_adds(&b, line);
                } else {
                        h->body = H1_BODY_CHUNKED;
                        buf_adds(&b, "Transfer-Encoding: chunked\r\n");
                }
        }
        buf_adds(&b, "\r\n");
        if (b.failed) {
                free(b.data);
                return -ENOMEM;
        }
        free(h->head);
        h->head = b.data;
        h->head_len = b.len;
        h->head_sent = 0;
        return 0;
}

static void response_reset(SsStream *s, H1Client *h)
{
        http1_parser_reset(h->parser, streq(h1_stream_method(s), "HEAD"));
        h->status = 0;
        h->location = mfree(h->location);
        h->retry_after_ms = 0;
        h->content_length = UINT64_MAX;
        h->delivered = 0;
        h->som_sent = false;
        h->held_len = 0;
        h->stop_reading = false;
        h->out_start = h->out_end = 0;
        h->got_response = false;
        h->reusable = false;
        h->keep_alive_ms = UINT64_MAX;
}

void h1_client_set_reused(H1Client *h)
{
        h->reused = true;
}

static SsPoolKey pool_key(SsStream *s, H1Client *h)
{
        return (SsPoolKey){
            .host = h->host,
            .port = h->port,
            .tls = h->tls,
            .unix_socket = s->st->unix_socket,
            .tls_entry = h->tls ? s->tls : NULL,
        };
}

bool h1_client_is_reusable(SsStream *s, SsPoolKey *ret_key, uint64_t *ret_idle_ms)
{
        H1Client *h = s->h1;

        if (!h || !h->reusable || !s->transport || s->redirecting)
                return false;
        /* Only connections whose credentials the pool can account for (the stream's). */
        if (h->tls && !s->tls)
                return false;
        if (h->keep_alive_ms != UINT64_MAX && h->keep_alive_ms <= KEEP_ALIVE_MARGIN_MS)
                return false;
        *ret_key = pool_key(s, h);
        *ret_idle_ms =
            h->keep_alive_ms == UINT64_MAX ? UINT64_MAX : h->keep_alive_ms - KEEP_ALIVE_MARGIN_MS;
        return true;
}

/* Whether the response just completed leaves the connection clean for another request. */
static bool response_leaves_connection_clean(H1Client *h)
{
        return http1_parser_is_keep_alive(h->parser) && h->body_done &&
               h->head_sent == h->head_len && h->out_start == h->out_end && !h->stop_reading;
}

/*
 * A connection from the pool ended before the first byte of the response:
 * the server had closed it while idle. Sends the request again on a new
 * connection, once, if it is safe to repeat; 1 when it does.
 */
static int retry_on_new_connection(SsStream *s, H1Client *h)
{
        const char *method = h1_stream_method(s);
        SsPoolKey key;

        if (!h->reused || h->got_response || !(streq(method, "GET") || streq(method, "HEAD")))
                return 0;
        h->reused = false;
        h->stop_reading = true;
        /* The others idle since as long are likely closed too. */
        key = pool_key(s, h);
        ss_pool_drop_key(s->context, &key);
        return ss_stream_replace_transport(s, h->host, h->port, h->tls) < 0 ? -ENOMEM : 1;
}

/* The connection broke: try once more on a new one, or the transaction failed. */
static SsResult connection_broke(SsStream *s, H1Client *h)
{
        if (retry_on_new_connection(s, h) > 0)
                return SS_OK;
        return ss_stream_transaction_done(s, true, 0);
}

SsResult h1_client_start(SsStream *s)
{
        H1Client *h = s->h1;

        assert(h);
        response_reset(s, h);
        if (build_request(s, h) < 0)
                return ss_stream_transaction_done(s, true, 0);
        return h1_client_on_writable(s);
}

void h1_client_request_tx(SsStream *s)
{
        H1Client *h = s->h1;

        if (!h || h->body == H1_BODY_NONE || h->body_done) {
                /* Another transaction once this one is over. */
                s->tx_pending = true;
                return;
        }
        if (h->in_tx)
                h->requested_in_tx = true;
        h->tx_wanted = true;
        if (s->transport)
                s->context->ops->transport_want_write(s->transport, true);
}

/* Writes what is pending; 1 when all of it went out, 0 when the socket is full. */
static int write_pending(SsStream *s, const uint8_t *data, size_t len, size_t *sent)
{
        while (*sent < len) {
                ssize_t n =
                    s->context->ops->transport_write(s->transport, data + *sent, len - *sent);

                if (n == -EAGAIN || n == 0)
                        return 0;
                if (n < 0)
                        return (int) n;
                *sent += (size_t) n;
        }
        return 1;
}

/* Asked for by the tx callback that ended the body: that is the next transaction. */
static void body_maybe_done(SsStream *s, H1Client *h)
{
        if (h->body_done && h->requested_in_tx)
                s->tx_pending = true;
}

/* Pulls the next piece of the body from tx into out. */
static SsResult fill_body(SsStream *s, H1Client *h)
{
        size_t max = SS_TX_CHUNK, len;
        unsigned flags = 0;
        uint8_t *data = h->out + CHUNK_PREFIX;
        SsResult r;

        if (h->body == H1_BODY_LENGTH && h->body_left < max)
                max = (size_t) h->body_left;
        len = max;
        h->in_tx = true;
        h->requested_in_tx = false;
        r = ss_stream_call_tx(s, data, &len, &flags);
        h->in_tx = false;
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return r;
        if (r == SS_TX_DONT_SEND) {
                h->tx_wanted = false;
                return SS_OK;
        }
        if (len > max)
                return SS_DISCONNECT_ME; /* the callback wrote past the buffer it was given */

        if (h->body == H1_BODY_LENGTH) {
                h->out_start = CHUNK_PREFIX;
                h->out_end = CHUNK_PREFIX + len;
                h->body_left -= len;
                if (h->body_left == 0)
                        h->body_done = true;
                else if (flags & SS_FLAG_EOM)
                        return SS_DISCONNECT_ME; /* shorter than the announced length */
                body_maybe_done(s, h);
                return SS_OK;
        }

        /* Chunked. */
        h->out_start = h->out_end = CHUNK_PREFIX;
        if (len > 0) {
                char size_line[CHUNK_PREFIX];
                int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);

                h->out_start = CHUNK_PREFIX - (size_t) n;
                memcpy(h->out + h->out_start, size_line, (size_t) n);
                h->out_end = CHUNK_PREFIX + len;
                memcpy(h->out + h->out_end, "\r\n", 2);
                h->out_end += 2;
        }
        if (flags & SS_FLAG_EOM) {
                memcpy(h->out + h->out_end, "0\r\n\r\n", 5);
                h->out_end += 5;
                h->body_done = true;
        }
        body_maybe_done(s, h);
        return SS_OK;
}

SsResult h1_client_on_writable(SsStream *s)
{
        H1Client *h = s->h1;
        const SsTransportOps *ops = s->context->ops;
        int k;

        if (!h || !s->transport || s->redirecting)
                return SS_OK;

        for (;;) {
                k = write_pending(s, (const uint8_t *) h->head, h->head_len, &h->head_sent);
                if (k == 0)
                        goto wait;
                if (k < 0)
                        return connection_broke(s, h);

                k = write_pending(s, h->out, h->out_end, &h->out_start);
                if (k == 0)
                        goto wait;
                if (k < 0)
                        return connection_broke(s, h);

                if (h->body_done || !h->tx_wanted) {
                        ops->transport_want_write(s->transport, false);
                        return SS_OK;
                }

                SsResult r = fill_body(s, h);
                if (r != SS_OK)
                        return r;
        }
wait:
        ops->transport_want_write(s->transport, true);
        return SS_OK;
}

static bool status_is_redirect(unsigned status)
{
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/*
 * Splits an absolute http(s) URL or an absolute path into a target. Other
 * forms (relative references) are not followed.
 */
static int parse_location(H1Client *h, const char *location, char **ret_host, uint16_t *ret_port,
                          bool *ret_tls, char **ret_path)
{
        const char *p = location, *host_start, *host_end, *rest;
        unsigned long port;
        bool tls;

        if (location[0] == '/' && location[1] != '/') {
                *ret_host = strdup(h->host);
                *ret_path = strdup(location);
                if (!*ret_host || !*ret_path) {
                        *ret_host = mfree(*ret_host);
                        *ret_path = mfree(*ret_path);
                        return -ENOMEM;
                }
                *ret_port = h->port;
                *ret_tls = h->tls;
                return 0;
        }

        if (strncasecmp(p, "http://", 7) == 0) {
                tls = false;
                p += 7;
        } else if (strncasecmp(p, "https://", 8) == 0) {
                tls = true;
                p += 8;
        } else
                return -EINVAL;

        if (*p == '[') {
                host_start = p + 1;
                host_end = strchr(host_start, ']');
                if (!host_end)
                        return -EINVAL;
                p = host_end + 1;
        } else {
                host_start = p;
                p += strcspn(p, ":/?#");
                host_end = p;
        }
        if (host_end == host_start)
                return -EINVAL;
        port = tls ? 443 : 80;
        if (*p == ':') {
                char *end;

                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                port = strtoul(p, &end, 10);
                if (port == 0 || port > 65535)
                        return -EINVAL;
                p = end;
        }
        if (*p && *p != '/' && *p != '?')
                return -EINVAL;
        rest = *p == '/' ? p : NULL;

        *ret_host = strndup(host_start, (size_t) (host_end - host_start));
        if (rest)
                *ret_path = strdup(rest);
        else if (asprintf(ret_path, "/%s", p) < 0)
                *ret_path = NULL;
        if (!*ret_host || !*ret_path) {
                *ret_host = mfree(*ret_host);
                *ret_path = mfree(*ret_path);
                return -ENOMEM;
        }
        *ret_port = (uint16_t) port;
        *ret_tls = tls;
        return 0;
}

/* Follows the redirect of the current response if the policy allows; 1 when it does. */
static int maybe_redirect(SsStream *s, H1Client *h)
{
        char *host = NULL, *path = NULL;
        uint16_t port;
        bool tls;
        int r;

        if (!status_is_redirect(h->status) || !s->st->allow_redirects ||
            s->st->http.fail_redirect || !h->location || h->hops >= SS_H1_REDIRECTS_MAX ||
            h->body != H1_BODY_NONE)
                return 0;
        if (parse_location(h, h->location, &host, &port, &tls, &path) < 0)
                return 0;

        free(h->host);
        free(h->path);
        h->host = host;
        h->path = path;
        h->port = port;
        h->tls = tls;
        h->hops++;
        h->stop_reading = true;
        r = ss_stream_replace_transport(s, h->host, h->port, h->tls);
        return r < 0 ? r : 1;
}

void h1_store_response_metadata(SsStream *s, const char *name, size_t name_len, const char *value,
                                size_t value_len)
{
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const char *header = s->st->metadata[i].header;
                size_t n = s->st->metadata[i].header_len;

                if (n == 0 || n != name_len || strncasecmp(header, name, n) != 0)
                        continue;
                /* Values too long or not storable are dropped: the header is advisory. */
                (void) ss_stream_set_metadata(s, s->st->metadata[i].name, value, value_len);
        }
}

bool h1_parse_retry_after(const char *value, size_t len, uint64_t *ret_ms)
{
        uint64_t v = 0;
        size_t i;

        /* Only the delay-seconds form; an HTTP date is ignored. */
        for (i = 0; i < len && value[i] >= '0' && value[i] <= '9'; i++)
                if (v <= RETRY_AFTER_MAX_S)
                        v = v * 10 + (uint64_t) (value[i] - '0');
        if (i == 0 || i != len)
                return false;
        *ret_ms = MIN(v, (uint64_t) RETRY_AFTER_MAX_S) * 1000;
        return true;
}

static void note_header(SsStream *s, H1Client *h, const Http1Event *ev)
{
        if (strcasecmp(ev->name, "location") == 0) {
                free(h->location);
                h->location = strndup(ev->value, ev->value_len);
        } else if (strcasecmp(ev->name, "retry-after") == 0) {
                (void) h1_parse_retry_after(ev->value, ev->value_len, &h->retry_after_ms);
        } else if (strcasecmp(ev->name, "keep-alive") == 0) {
                const char *p = strcasestr(ev->value, "timeout=");
                uint64_t v = 0;

                /* Keep-Alive: timeout=5, max=100 (RFC 2068 19.7.1.1): how long it idles. */
                if (p) {
                        for (p += 8; *p >= '0' && *p <= '9'; p++)
                                if (v <= RETRY_AFTER_MAX_S)
                                        v = v * 10 + (uint64_t) (*p - '0');
                        h->keep_alive_ms = MIN(v, (uint64_t) RETRY_AFTER_MAX_S) * 1000;
                }
        }
        h1_store_response_metadata(s, ev->name, ev->name_len, ev->value, ev->value_len);
}

static SsResult deliver_body(SsStream *s, H1Client *h, const uint8_t *data, size_t size)
{
        SsResult r;
        unsigned flags;

        if (size == 0)
                return SS_OK;
        if (h->content_length != UINT64_MAX) {
                flags = h->som_sent ? 0 : SS_FLAG_SOM;
                h->som_sent = true;
                h->delivered += size;
                if (h->delivered >= h->content_length)
                        flags |= SS_FLAG_EOM;
                return ss_stream_deliver_rx(s, data, size, flags);
        }

        /* Length unknown: hold one piece back so the last one can carry EOM. */
        if (h->held_len > 0) {
                flags = h->som_sent ? 0 : SS_FLAG_SOM;
                h->som_sent = true;
                r = ss_stream_deliver_rx(s, h->held, h->held_len, flags);
                h->held_len = 0;
                if (r != SS_OK)
                        return r;
        }
        assert(size <= sizeof(h->held));
        memcpy(h->held, data, size);
        h->held_len = size;
        return SS_OK;
}

bool h1_status_is_expected(SsStream *s, unsigned status)
{
        if (s->st->http.expect)
                return status == s->st->http.expect;
        return status >= 200 && status <= 299;
}

/* The response is complete: last rx piece, ACK or NACK, then end the transaction. */
static SsResult complete(SsStream *s, H1Client *h)
{
        unsigned status = h->status;
        uint64_t retry_after = h->retry_after_ms;
        bool failed;
        SsResult r;

        if (h->held_len > 0) {
                unsigned flags = (h->som_sent ? 0 : SS_FLAG_SOM) | SS_FLAG_EOM;

                h->som_sent = true;
                r = ss_stream_deliver_rx(s, h->held, h->held_len, flags);
                h->held_len = 0;
                if (r != SS_OK)
                        return r;
        }

        r = ss_stream_deliver_state(s,
                                    h1_status_is_expected(s, status) ? SS_STATE_QOS_ACK_REMOTE
                                                                     : SS_STATE_QOS_NACK_REMOTE,
                                    status);
        if (r == SS_DESTROY_ME)
                return r;
        /* 503 and 429 ask to come back later: a failure to retry, after Retry-After. */
        failed = (status == 503 || status == 429) && r != SS_DISCONNECT_ME;
        return ss_stream_transaction_done(s, failed, failed ? retry_after : 0);
}

static SsResult headers_complete(SsStream *s, H1Client *h)
{
        int k;

        if (h->status != 503 && h->status != 429)
                ss_stream_reset_retry(s);

        k = maybe_redirect(s, h);
        if (k < 0)
                return ss_stream_transaction_done(s, true, 0);
        if (k > 0)
                return SS_OK;

        if (!http1_parser_is_chunked(h->parser))
                h->content_length = http1_parser_get_content_length(h->parser);

        for (size_t i = 0; i < s->st->http.n_resp_map; i++)
                if (s->st->http.resp_map[i].code == h->status)
                        return ss_stream_deliver_state(s, (SsState) s->st->http.resp_map[i].value,
                                                       h->status);
        return SS_OK;
}

/* Handles one parser event; *ret_done when the transaction is over (h is gone). */
static SsResult handle_event(SsStream *s, H1Client *h, const Http1Event *ev, bool *ret_done)
{
        switch (ev->type) {
        case HTTP1_EVENT_STATUS:
                h->status = ev->status;
                return SS_OK;
        case HTTP1_EVENT_HEADER:
                note_header(s, h, ev);
                return SS_OK;
        case HTTP1_EVENT_HEADERS_COMPLETE:
                return headers_complete(s, h);
        case HTTP1_EVENT_BODY:
                return deliver_body(s, h, ev->data, ev->size);
        case HTTP1_EVENT_TRAILER:
                return SS_OK;
        case HTTP1_EVENT_MESSAGE_COMPLETE:
                *ret_done = true;
                return complete(s, h);
        }
        return SS_OK;
}

SsResult h1_client_on_readable(SsStream *s)
{
        H1Client *h = s->h1;
        const SsTransportOps *ops = s->context->ops;

        if (!h || !s->transport || s->redirecting)
                return SS_OK;

        for (bool noted = false;;) {
                ssize_t n;
                size_t off = 0;

                if (s->rx_paused) {
                        if (ops->transport_pause_read)
                                ops->transport_pause_read(s->transport, true);
                        return SS_OK;
                }
                n = ops->transport_read(s->transport, h->in, sizeof(h->in));
                if (n == -EAGAIN)
                        return SS_OK;
                if (n < 0)
                        return connection_broke(s, h);
                if (n == 0) {
                        Http1Event ev;
                        bool done = false;
                        int k = http1_parser_feed_eof(h->parser, &ev);

                        if (k == 1)
                                return handle_event(s, h, &ev, &done);
                        /* Cut short, or closed before any response: retry the transaction. */
                        return connection_broke(s, h);
                }

                h->got_response = true;
                /* Once per wake-up: the loop's time, and so the deadline, stays the same. */
                if (!noted) {
                        ss_stream_note_alive(s);
                        noted = true;
                }
                for (;;) {
                        Http1Event ev;
                        size_t used = 0;
                        bool done = false;
                        int k =
                            http1_parser_feed(h->parser, h->in + off, (size_t) n - off, &used, &ev);
                        SsResult r;

                        off += used;
                        if (k < 0)
                                return ss_stream_transaction_done(s, true, 0);
                        if (k == 0)
                                break;
                        /* Nothing may follow the response on a connection to keep. */
                        if (ev.type == HTTP1_EVENT_MESSAGE_COMPLETE)
                                h->reusable =
                                    off == (size_t) n && response_leaves_connection_clean(h);
                        r = handle_event(s, h, &ev, &done);
                        if (r != SS_OK || done)
                                return r;
                        if (h->stop_reading)
                                return SS_OK;
                }
        }
}

static int h1_connection_new(SsStream *s, const char *host)
{
        return h1_client_new(&s->h1, s, host);
}

static void h1_connection_free(SsStream *s)
{
        s->h1 = h1_client_free(s->h1);
}

static void h1_set_reused(SsStream *s)
{
        h1_client_set_reused(s->h1);
}

static const char *const h1_alpn[] = {"http/1.1", NULL};

const SsProtocolOps ss_protocol_h1 = {
    .name = "h1",
    .alpn = h1_alpn,
    .connection_new = h1_connection_new,
    .connection_free = h1_connection_free,
    .start = h1_client_start,
    .on_readable = h1_client_on_readable,
    .on_writable = h1_client_on_writable,
    .request_tx = h1_client_request_tx,
    .is_reusable = h1_client_is_reusable,
    .set_reused = h1_set_reused,
};

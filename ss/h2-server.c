/* SPDX-License-Identifier: MIT */
/*
 * HTTP/2 on server streamtypes (libnghttp2): one session per connection that
 * chose h2 (ALPN over TLS, or the h2c prior-knowledge preface on plain TCP;
 * server.c decides). Each request is a stream of its own, with the server
 * stream's handlers: CREATING, CONNECTING and CONNECTED when its header block
 * is complete, then SERVER_TXN with metadata as for h1, the body as rx from
 * SS_FLAG_SOM to SS_FLAG_EOM, the application's answer with
 * ss_stream_server_ack() and tx, and DISCONNECTED and DESTROYING when the h2
 * stream closes. The connection itself stays the stream server.c made when it
 * accepted it (CONNECTED, no SERVER_TXN) until it closes.
 *
 * nghttp2 only sees bytes and reports frames: its callbacks record what came
 * (headers kept only where a policy metadata entry wants them, body bytes
 * queued per request); the application is called afterwards, from
 * session_process(), never from inside nghttp2. While the session runs, the
 * connection stream counts as being in a callback, so an application that
 * destroys the server or the connection from a request's callback only marks
 * them and the session is freed once it returned.
 *
 * Bounds: H2_SERVER_MAX_STREAMS concurrent requests (SETTINGS, enforced by
 * nghttp2 with REFUSED_STREAM); header fields of a request counted against
 * SS_SERVER_MAX_HEADER_BYTES (431 beyond); a body beyond SS_SERVER_MAX_BODY
 * gets 413; queued body bytes are bounded by our windows, which open
 * (nghttp2_session_consume(), automatic window updates off) only as rx takes
 * the bytes; nothing is read while output waits for the socket; the
 * connection closes when for the idle time no request completed its headers,
 * delivered body bytes or sent response frames (slow senders gain nothing).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h2-lib.h"
#include "h2-server.h"

#define H2_SERVER_READ_BUF  16384u
#define H2_SERVER_OUT_BATCH 16384u /* output gathered before a write */
#define H2_SERVER_ROUNDS    16u    /* read/process/write rounds per wake-up */

struct H2ServerRequest {
        H2Server *h;
        H2ServerRequest *prev, *next;
        int32_t id;
        SsServerConn *rc; /* its stream's connection object, NULL once detached */

        /* The request. */
        char *method, *target;
        uint8_t *headers; /* name '\0' value '\0' ..., those a metadata entry wants */
        size_t headers_len, header_bytes;
        bool headers_done, too_large, created, closed, remote_ended;
        bool detached; /* its stream went first: reset, nothing more to send */
        bool som_sent, eom_delivered;
        uint64_t body_received;
        uint8_t *body;
        size_t body_off, body_len, body_cap;
        size_t discard; /* bytes to consume without delivering */

        /* The response. */
        bool answered, tx_requested, has_len, submitted, has_data;
        bool eom, deferred, reset_after;
        unsigned status;
        uint64_t len, sent;
        uint8_t *out;
        size_t out_off, out_len, out_cap;
};

struct H2Server {
        SsServerConn *conn;
        nghttp2_session *session;
        H2ServerRequest *head, *tail;
        unsigned n_requests;
        bool progress;
        uint8_t *out;
        size_t out_off, out_len, out_cap;
        uint8_t in[H2_SERVER_READ_BUF];
};

static H2ServerRequest *request_free(H2ServerRequest *req)
{
        H2Server *h = req->h;

        if (req->prev)
                req->prev->next = req->next;
        else
                h->head = req->next;
        if (req->next)
                req->next->prev = req->prev;
        else
                h->tail = req->prev;
        h->n_requests--;
        free(req->method);
        free(req->target);
        free(req->headers);
        free(req->body);
        free(req->out);
        free(req);
        return NULL;
}

static H2ServerRequest *request_get(H2Server *h, int32_t id)
{
        return nghttp2_session_get_stream_user_data(h->session, id);
}

/* Whether a policy metadata entry takes this request header. */
static bool header_is_wanted(H2Server *h, const uint8_t *name, size_t name_len)
{
        const PolicyStreamtype *st = ss_server_conn_get_stream(h->conn)->st;

        for (size_t i = 0; i < st->n_metadata; i++) {
                const char *hn = st->metadata[i].header;
                size_t n = st->metadata[i].header_len;

                if (n == name_len && strncasecmp(hn, (const char *) name, n) == 0)
                        return true;
        }
        return false;
}

/* ---- nghttp2 callbacks: record, never call the application ------------------------------------
 */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;
        req = calloc(1, sizeof(*req));
        if (!req)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        req->h = h;
        req->id = frame->hd.stream_id;
        req->prev = h->tail;
        if (h->tail)
                h->tail->next = req;
        else
                h->head = req;
        h->tail = req;
        h->n_requests++;
        if (nghttp2_session_set_stream_user_data(session, req->id, req) != 0) {
                request_free(req);
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req = request_get(h, frame->hd.stream_id);

        (void) session;
        (void) flags;
        if (!req || req->headers_done || frame->hd.type != NGHTTP2_HEADERS)
                return 0; /* trailers: ignored */
        /* Counted as h1 would see them: "name: value\r\n". */
        req->header_bytes += name_len + value_len + 4;
        if (req->header_bytes > SS_SERVER_MAX_HEADER_BYTES)
                req->too_large = true;
        if (req->too_large)
                return 0;
        if (name_len == 7 && memcmp(name, ":method", 7) == 0) {
                free(req->method);
                req->method = strndup((const char *) value, value_len);
                return req->method ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (name_len == 5 && memcmp(name, ":path", 5) == 0) {
                free(req->target);
                req->target = strndup((const char *) value, value_len);
                return req->target ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (name_len > 0 && name[0] != ':' && header_is_wanted(h, name, name_len)) {
                uint8_t *n = realloc(req->headers, req->headers_len + name_len + value_len + 2);

                if (!n)
                        return NGHTTP2_ERR_CALLBACK_FAILURE;
                req->headers = n;
                memcpy(n + req->headers_len, name, name_len);
                n[req->headers_len + name_len] = 0;
                memcpy(n + req->headers_len + name_len + 1, value, value_len);
                n[req->headers_len + name_len + 1 + value_len] = 0;
                req->headers_len += name_len + value_len + 2;
        }
        return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req;

        (void) session;
        if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
                return 0;
        req = request_get(h, frame->hd.stream_id);
        if (!req)
                return 0;
        if (frame->hd.type == NGHTTP2_HEADERS && !req->headers_done) {
                req->headers_done = true;
                h->progress = true;
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
                req->remote_ended = true;
        return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req = request_get(h, stream_id);

        (void) session;
        (void) flags;
        if (!req)
                return 0;
        req->body_received += len;
        if (req->body_received > SS_SERVER_MAX_BODY)
                req->too_large = true;
        if ((req->created && !req->rc) || req->too_large || req->eom_delivered) {
                req->discard += len;
                return 0;
        }
        if (req->body_off > 0 && req->body_off == req->body_len)
                req->body_off = req->body_len = 0;
        if (req->body_cap - req->body_len < len) {
                size_t need = req->body_len - req->body_off + len, cap;
                uint8_t *n;

                if (req->body_off > 0) {
                        memmove(req->body, req->body + req->body_off,
                                req->body_len - req->body_off);
                        req->body_len -= req->body_off;
                        req->body_off = 0;
                }
                if (req->body_cap < need) {
                        /* Bounded by our window: the client may not send more. */
                        cap = need < 16384 ? 16384 : need;
                        n = realloc(req->body, cap);
                        if (!n)
                                return NGHTTP2_ERR_CALLBACK_FAILURE;
                        req->body = n;
                        req->body_cap = cap;
                }
        }
        memcpy(req->body + req->body_len, data, len);
        req->body_len += len;
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req = request_get(h, stream_id);

        (void) session;
        (void) error_code;
        if (req)
                req->closed = true;
        return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
        H2Server *h = user_data;
        H2ServerRequest *req;

        if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
                return 0;
        h->progress = true;
        req = request_get(h, frame->hd.stream_id);
        /* An error answer sent while the request goes on: end it (RFC 9113 8.1). */
        if (req && req->reset_after && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            !req->remote_ended)
                (void) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, req->id,
                                                 NGHTTP2_NO_ERROR);
        return 0;
}

static ssize_t on_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
        H2ServerRequest *req = source->ptr;
        size_t n = req->out_len - req->out_off;

        (void) session;
        (void) stream_id;
        (void) user_data;
        if (n == 0 && !req->eom) {
                req->deferred = true;
                return NGHTTP2_ERR_DEFERRED;
        }
        if (n > length)
                n = length;
        memcpy(buf, req->out + req->out_off, n);
        req->out_off += n;
        if (req->out_off == req->out_len && req->eom)
                *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t) n;
}

/* ---- requests: where the application is called ------------------------------------------------
 */

typedef struct NvList {
        nghttp2_nv nv[40];
        size_t n;
        char status[4], length[24];
        char names[2048]; /* lower-case header names */
        size_t names_used;
} NvList;

static void nv_add(NvList *l, const char *name, size_t name_len, const char *value,
                   size_t value_len)
{
        if (l->n >= ELEMENTSOF(l->nv))
                return;
        l->nv[l->n++] = (nghttp2_nv){.name = (uint8_t *) name,
                                     .namelen = name_len,
                                     .value = (uint8_t *) value,
                                     .valuelen = value_len,
                                     .flags = NGHTTP2_NV_FLAG_NONE};
}

static int nv_add_header(const char *name, size_t name_len, const char *value, size_t value_len,
                         void *userdata)
{
        NvList *l = userdata;
        char *lower = l->names + l->names_used;

        /* h2 header names are lower case. */
        if (name_len > sizeof(l->names) - l->names_used)
                return 0;
        for (size_t i = 0; i < name_len; i++)
                lower[i] = (char) (name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        l->names_used += name_len;
        nv_add(l, lower, name_len, value, value_len);
        return 0;
}

/* The response's HEADERS, with a body to pull from tx or without one. */
static int request_submit(H2ServerRequest *req)
{
        nghttp2_data_provider data = {.source.ptr = req, .read_callback = on_read_data};
        bool no_body = req->status < 200 || req->status == 204 || req->status == 304 ||
                       (req->method && strcmp(req->method, "HEAD") == 0);
        NvList l = {};
        int e;

        snprintf(l.status, sizeof(l.status), "%03u", req->status % 1000);
        nv_add(&l, ":status", 7, l.status, 3);
        if (req->rc)
                (void) ss_server_request_foreach_response_header(req->rc, nv_add_header, &l);
        if (req->has_len && req->status >= 200 && req->status != 204 && req->status != 304) {
                snprintf(l.length, sizeof(l.length), "%llu", (unsigned long long) req->len);
                nv_add(&l, "content-length", 14, l.length, strlen(l.length));
        }
        req->has_data = !no_body && !(req->has_len && req->len == 0);
        e = nghttp2_submit_response(req->h->session, req->id, l.nv, l.n,
                                    req->has_data ? &data : NULL);
        if (e != 0)
                return -EIO;
        req->submitted = true;
        return 0;
}

/* An answer of our own (404, 413, 431): no body, no tx. */
static void request_answer_empty(H2ServerRequest *req, unsigned status, bool reset_after)
{
        req->answered = req->tx_requested = req->has_len = true;
        req->status = status;
        req->len = 0;
        req->reset_after = reset_after;
}

/* Acts on what a request stream's callback returned; false when the stream is gone. */
static bool request_result(H2ServerRequest *req, SsResult r)
{
        SsStream *s;

        if (r == SS_OK || r == SS_TX_DONT_SEND || !req->rc)
                return req->rc != NULL;
        s = ss_server_conn_get_stream(req->rc);
        ss_stream_dispatch(s, SS_DESTROY_ME); /* detaches req */
        return false;
}

/* The request's stream: CREATING .. CONNECTED, its metadata, SERVER_TXN. */
static bool request_create(H2ServerRequest *req)
{
        SsServerConn *rc;
        SsStream *s;
        SsResult r;
        int k;

        req->created = true;
        if (req->too_large) {
                request_answer_empty(req, req->body_received > SS_SERVER_MAX_BODY ? 413 : 431,
                                     true);
                return false;
        }
        if (!req->method || !req->target) {
                (void) nghttp2_submit_rst_stream(req->h->session, NGHTTP2_FLAG_NONE, req->id,
                                                 NGHTTP2_PROTOCOL_ERROR);
                return false;
        }
        k = ss_server_request_new(req->h->conn, req, &rc);
        if (k < 0) {
                /* -ECANCELED: CREATING ended it, which reset the h2 stream already. */
                if (k != -ECANCELED)
                        (void) nghttp2_submit_rst_stream(req->h->session, NGHTTP2_FLAG_NONE,
                                                         req->id, NGHTTP2_INTERNAL_ERROR);
                return false;
        }
        req->rc = rc;
        s = ss_server_conn_get_stream(rc);
        r = ss_stream_deliver_state(s, SS_STATE_CONNECTING, 0);
        if (r == SS_OK)
                r = ss_stream_deliver_state(s, SS_STATE_CONNECTED, 0);
        if (!request_result(req, r))
                return false;
        if (ss_server_request_set_target(rc, req->method, req->target) < 0)
                return request_result(req, SS_DESTROY_ME);
        for (size_t o = 0; o < req->headers_len;) {
                const char *name = (const char *) req->headers + o;
                size_t nl = strlen(name);
                const char *value = name + nl + 1;
                size_t vl = strlen(value);

                ss_server_request_header(rc, name, nl, value, vl);
                o += nl + vl + 2;
        }
        req->headers = mfree(req->headers);
        req->headers_len = 0;
        return request_result(req, ss_stream_deliver_state(s, SS_STATE_SERVER_TXN, 0));
}

/* Hands queued body bytes to rx, SOM first, EOM once the client ended the request. */
static bool request_deliver_body(H2ServerRequest *req)
{
        H2Server *h = req->h;

        if (req->too_large)
                return true; /* answered with 413, the rest is dropped */
        while (req->rc && !req->eom_delivered) {
                size_t n = req->body_len - req->body_off;
                unsigned flags = req->som_sent ? 0 : SS_FLAG_SOM;
                SsResult r;

                if (n > SS_RX_CHUNK)
                        n = SS_RX_CHUNK;
                if (n == 0 && !req->remote_ended)
                        return true;
                if (n == req->body_len - req->body_off && req->remote_ended)
                        flags |= SS_FLAG_EOM;
                if (n == 0 && !req->som_sent) {
                        /* An empty body: no rx. */
                        req->eom_delivered = true;
                        break;
                }
                if (n == 0)
                        flags &= ~SS_FLAG_SOM;
                req->som_sent = true;
                req->body_off += n;
                if (flags & SS_FLAG_EOM)
                        req->eom_delivered = true;
                r = ss_stream_deliver_rx(ss_server_conn_get_stream(req->rc),
                                         n ? req->body + req->body_off - n : NULL, n, flags);
                if (n > 0) {
                        (void) nghttp2_session_consume(h->session, req->id, n);
                        h->progress = true;
                }
                if (!request_result(req, r))
                        return false;
        }
        if (req->body_off == req->body_len && req->body) {
                req->body = mfree(req->body);
                req->body_off = req->body_len = req->body_cap = 0;
        }
        if (req->eom_delivered && !req->answered)
                request_answer_empty(req, 404, false);
        return req->rc != NULL;
}

/* Pulls one piece of the response body from tx. */
static bool request_pull_tx(H2ServerRequest *req)
{
        size_t len = SS_TX_CHUNK;
        unsigned flags = 0;
        SsResult r;

        /* With a known length, no bigger buffer than what is left (small responses are common). */
        if (req->has_len && req->len - req->sent < SS_TX_CHUNK)
                len = (size_t) (req->len - req->sent);
        if (!req->out) {
                req->out = malloc(len ? len : 1);
                if (!req->out)
                        return request_result(req, SS_DESTROY_ME);
                req->out_cap = len ? len : 1;
        } else if (req->out_cap < len)
                len = req->out_cap;
        r = ss_stream_call_tx(ss_server_conn_get_stream(req->rc), req->out, &len, &flags);
        if (r == SS_TX_DONT_SEND) {
                req->tx_requested = false;
                return true;
        }
        if (r != SS_OK)
                return request_result(req, r);
        if (len > req->out_cap)
                len = req->out_cap;
        if (req->has_len && len > req->len - req->sent)
                len = (size_t) (req->len - req->sent); /* more than announced: cut */
        req->sent += len;
        req->out_off = 0;
        req->out_len = len;
        if ((flags & SS_FLAG_EOM) || (req->has_len && req->sent == req->len))
                req->eom = true;
        if (req->eom && req->has_len && req->sent < req->len) {
                /* Shorter than announced: the client must not take it as complete. */
                (void) nghttp2_submit_rst_stream(req->h->session, NGHTTP2_FLAG_NONE, req->id,
                                                 NGHTTP2_INTERNAL_ERROR);
                return true;
        }
        if (req->deferred) {
                req->deferred = false;
                (void) nghttp2_session_resume_data(req->h->session, req->id);
        }
        return true;
}

static void request_pump(H2ServerRequest *req)
{
        if (req->closed)
                return;
        if (req->headers_done && !req->created && !request_create(req) && !req->answered)
                return;
        if (req->discard > 0) {
                (void) nghttp2_session_consume(req->h->session, req->id, req->discard);
                req->discard = 0;
        }
        if (req->detached)
                return;
        if (req->too_large && req->created && !req->reset_after) {
                /* The body went over the bound: 413, or a reset once the answer is out. */
                req->reset_after = true;
                if (req->submitted) {
                        /* Answered already: stop the upload, without error once complete. */
                        bool complete = !req->has_data || req->eom;

                        (void) nghttp2_submit_rst_stream(
                            req->h->session, NGHTTP2_FLAG_NONE, req->id,
                            complete ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
                        return;
                }
                request_answer_empty(req, 413, true);
        }
        if (req->rc && !request_deliver_body(req))
                return;
        if (!req->answered || !req->tx_requested)
                return;
        if (!req->submitted) {
                if (request_submit(req) < 0) {
                        (void) nghttp2_submit_rst_stream(req->h->session, NGHTTP2_FLAG_NONE,
                                                         req->id, NGHTTP2_INTERNAL_ERROR);
                        return;
                }
        }
        if (req->rc && req->has_data && !req->eom && req->out_off == req->out_len)
                (void) request_pull_tx(req);
}

/* Every request moves on; closed ones end their stream and go. */
static void session_process(H2Server *h)
{
        for (H2ServerRequest *req = h->head, *next; req; req = next) {
                next = req->next;
                if (!req->closed)
                        request_pump(req);
                if (req->closed) {
                        /* What it never consumed still counts against the connection's window. */
                        (void) nghttp2_session_consume_connection(
                            h->session, req->discard + req->body_len - req->body_off);
                        if (req->rc) {
                                SsServerConn *rc = req->rc;

                                req->rc = NULL;
                                ss_server_request_orphan(rc);
                                ss_stream_dispatch(ss_server_conn_get_stream(rc), SS_DESTROY_ME);
                        }
                        next = req->next; /* callbacks may have detached others, never freed */
                        request_free(req);
                }
        }
}

/* ---- the connection ----------------------------------------------------------------------------
 */

/* Writes what is gathered: 1 when all went, 0 when the socket is full, -errno. */
static int session_flush(H2Server *h)
{
        while (h->out_off < h->out_len) {
                ssize_t n =
                    ss_server_conn_write(h->conn, h->out + h->out_off, h->out_len - h->out_off);

                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                h->out_off += (size_t) n;
        }
        h->out_off = h->out_len = 0;
        return 1;
}

/* Gathers nghttp2's output (about one batch). */
static int session_fill(H2Server *h)
{
        while (h->out_len < H2_SERVER_OUT_BATCH) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(h->session, &data);

                if (n < 0)
                        return -EPROTO;
                if (n == 0)
                        break;
                if (h->out_cap - h->out_len < (size_t) n) {
                        size_t cap = h->out_len + (size_t) n;
                        uint8_t *o;

                        if (cap < H2_SERVER_OUT_BATCH * 2)
                                cap = H2_SERVER_OUT_BATCH * 2;
                        o = realloc(h->out, cap);
                        if (!o)
                                return -ENOMEM;
                        h->out = o;
                        h->out_cap = cap;
                }
                memcpy(h->out + h->out_len, data, (size_t) n);
                h->out_len += (size_t) n;
        }
        return 0;
}

static SsResult session_run(H2Server *h)
{
        for (unsigned round = 0; round < H2_SERVER_ROUNDS; round++) {
                bool blocked, got = false;
                size_t before;
                int k = session_flush(h);

                if (k < 0)
                        return SS_DISCONNECT_ME;
                blocked = k == 0;
                if (!blocked && nghttp2_session_want_read(h->session)) {
                        ssize_t n = ss_server_conn_read(h->conn, h->in, sizeof(h->in));

                        if (n == 0 || (n < 0 && n != -EAGAIN))
                                return SS_DISCONNECT_ME;
                        if (n > 0) {
                                ssize_t e = nghttp2_session_mem_recv(h->session, h->in, (size_t) n);

                                if (e < 0) {
                                        /* The client broke the protocol: GOAWAY (one try). */
                                        (void) nghttp2_session_terminate_session(
                                            h->session, NGHTTP2_PROTOCOL_ERROR);
                                        (void) session_fill(h);
                                        (void) session_flush(h);
                                        return SS_DISCONNECT_ME;
                                }
                                got = true;
                        }
                }
                session_process(h);
                before = h->out_len;
                if (!blocked && session_fill(h) < 0)
                        return SS_DISCONNECT_ME;
                if (h->progress) {
                        h->progress = false;
                        ss_server_conn_arm_timer(h->conn, ss_server_conn_get_idle_usec(h->conn));
                }
                if (!got && h->out_len == before) {
                        if (h->out_len == 0 && !nghttp2_session_want_read(h->session) &&
                            !nghttp2_session_want_write(h->session))
                                return SS_DISCONNECT_ME; /* GOAWAY both ways */
                        ss_server_conn_set_events(h->conn, !blocked, h->out_len > 0);
                        return SS_OK;
                }
        }
        ss_server_conn_set_events(h->conn, h->out_len == 0, h->out_len > 0);
        ss_server_conn_schedule(h->conn);
        return SS_OK;
}

SsResult h2_server_run(H2Server *h)
{
        SsStream *cs = ss_server_conn_get_stream(h->conn);
        SsResult r;

        /* The application may destroy the server or this connection meanwhile: only marked. */
        cs->in_callback++;
        r = session_run(h);
        cs->in_callback--;
        if (cs->destroy_requested)
                return SS_DESTROY_ME;
        return r;
}

SsResult h2_server_on_timer(H2Server *h)
{
        /* Idle or stalled: say goodbye (one try) and close. */
        (void) nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                                     nghttp2_session_get_last_proc_stream_id(h->session),
                                     NGHTTP2_NO_ERROR, NULL, 0);
        if (session_flush(h) == 1 && session_fill(h) == 0)
                (void) session_flush(h);
        return SS_DISCONNECT_ME;
}

bool h2_server_is_idle(const H2Server *h)
{
        return h->n_requests == 0;
}

int h2_server_request_ack(H2ServerRequest *req, unsigned status)
{
        if (!req->created || req->closed || !req->rc)
                return -ESTALE;
        if (req->submitted || req->reset_after)
                return -EBUSY;
        req->answered = true;
        req->status = status;
        ss_server_conn_schedule(req->h->conn);
        return 0;
}

int h2_server_request_tx(H2ServerRequest *req, bool has_len, uint64_t len)
{
        if (!req->created || req->closed || !req->rc || req->eom || req->reset_after)
                return -ESTALE;
        if (!req->submitted) {
                req->has_len = has_len;
                req->len = len;
        }
        req->tx_requested = true;
        ss_server_conn_schedule(req->h->conn);
        return 0;
}

void h2_server_request_detach(H2ServerRequest *req)
{
        req->rc = NULL;
        req->detached = true;
        if (req->closed)
                return;
        if (!req->eom || req->out_off < req->out_len || !req->submitted)
                (void) nghttp2_submit_rst_stream(req->h->session, NGHTTP2_FLAG_NONE, req->id,
                                                 NGHTTP2_CANCEL);
        ss_server_conn_schedule(req->h->conn);
}

/* A frame header on stream 0, no flags: its 9 bytes at p. */
static size_t frame_header(uint8_t *p, size_t len, uint8_t type)
{
        p[0] = (uint8_t) (len >> 16);
        p[1] = (uint8_t) (len >> 8);
        p[2] = (uint8_t) len;
        p[3] = type;
        memset(p + 4, 0, 5);
        return 9;
}

/*
 * libnghttp2 cannot be loaded: the client that chose h2 is told why, as the
 * debug data of a GOAWAY (HTTP_1_1_REQUIRED) after our SETTINGS, written by
 * hand in one try before the connection closes.
 */
static void refuse_h2(SsServerConn *conn, const char *reason)
{
        uint8_t frames[9 + 9 + 8 + DL_TABLE_ERROR_MAX];
        size_t len = MIN(strlen(reason), (size_t) DL_TABLE_ERROR_MAX), n;

        n = frame_header(frames, 0, NGHTTP2_SETTINGS);
        n += frame_header(frames + n, 8 + len, NGHTTP2_GOAWAY);
        memset(frames + n, 0, 8); /* last stream 0, then the error code */
        frames[n + 7] = NGHTTP2_HTTP_1_1_REQUIRED;
        n += 8;
        memcpy(frames + n, reason, len);
        n += len;
        (void) ss_server_conn_write(conn, frames, n);
}

int h2_server_new(H2Server **ret, SsServerConn *conn, const uint8_t *pre, size_t pre_len)
{
        nghttp2_session_callbacks *cb = NULL;
        nghttp2_option *opt = NULL;
        nghttp2_settings_entry settings[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_SERVER_MAX_STREAMS},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_SERVER_WINDOW},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, SS_SERVER_MAX_HEADER_BYTES},
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        };
        char reason[DL_TABLE_ERROR_MAX];
        H2Server *h;
        int e;

        e = h2_lib_load(reason, sizeof(reason));
        if (e < 0) {
                refuse_h2(conn, reason);
                return e;
        }
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->conn = conn;
        e = nghttp2_session_callbacks_new(&cb);
        if (e == 0)
                e = nghttp2_option_new(&opt);
        if (e == 0) {
                nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
                nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
                nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
                nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
                nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
                nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
                nghttp2_option_set_no_auto_window_update(opt, 1);
                nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
                e = nghttp2_session_server_new2(&h->session, cb, h, opt);
        }
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        if (e == 0)
                e = nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, settings,
                                            ELEMENTSOF(settings));
        if (e == 0)
                e = nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0,
                                                          H2_SERVER_CONN_WINDOW);
        if (e == 0 && pre_len > 0 && nghttp2_session_mem_recv(h->session, pre, pre_len) < 0)
                e = NGHTTP2_ERR_PROTO;
        if (e != 0) {
                h2_server_free(h);
                return e == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
        }
        *ret = h;
        return 0;
}

H2Server *h2_server_free(H2Server *h)
{
        if (!h)
                return NULL;
        while (h->head) {
                H2ServerRequest *req = h->head;

                if (req->rc) {
                        SsServerConn *rc = req->rc;

                        req->rc = NULL;
                        ss_server_request_orphan(rc);
                        (void) ss_stream_free(ss_server_conn_get_stream(rc));
                }
                if (req == h->head)
                        request_free(req);
        }
        nghttp2_session_del(h->session);
        free(h->out);
        free(h);
        return NULL;
}

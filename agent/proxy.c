/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams proxied for local clients (see proxy.h).
 *
 * Client payload (TX) is kept in one linear buffer with the offsets where the
 * client's messages end (its EOMs), so the onward tx callback can set EOM at
 * the right byte. Response metadata is relayed by comparing each entry with
 * what the client was last told (a hash per entry), before every payload
 * start and every state, so a response header reaches the client before the
 * body and before QOS_ACK_REMOTE.
 *
 * The send credit check after the onward stream wrote (h2 spends its window
 * only once the tx callback returned) runs from a zero-delay timer, the kick.
 *
 * A ws message lives on one connection: when the connection drops in the
 * middle of a client message, the rest of that message is dropped (also what
 * the client sends of it later), so the next connection never gets a tail as
 * a message of its own. Other protocols keep it (mqtt gathers a message
 * across connections; h1 and h2 retry as they do).
 *
 * Send credit (TXCR_UPDATE, as upstream: a signed addition to what the client
 * was told before): while ss_stream_tx_credit() knows the onward stream's
 * credit, every state, rx piece, tx pull and written output compares it with
 * what the client knows and sends the difference. The count starts again from
 * zero after DISCONNECTED, on both sides.
 */
#include "proxy.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2-lib.h"
#include "log.h"
#include "policy.h"
#include "transport.h"
#include "util.h"

struct ProxyStream {
        SsStream *stream;           /* NULL once the engine destroyed it */
        const PolicyStreamtype *st; /* in the stream's policy: valid while stream lives */
        char streamtype[FRAME_STREAMTYPE_MAX + 1];
        uint64_t client_id;
        OutBuffer *out;
        ProxyClientOps ops;
        void *userdata;
        uint32_t buflen;
        bool freeing;

        Timer kick;
        bool credit_known; /* the client was told a credit since the last connection */
        int64_t credit;    /* what the client was told */

        bool rx_paused;
        bool rx_in_message; /* SOM sent to the client, EOM not yet */

        uint8_t *tx; /* client payload not yet taken by the onward stream */
        size_t tx_off, tx_len, tx_size;
        uint64_t tx_consumed;                  /* bytes taken since the start */
        uint64_t tx_marks[PROXY_TX_MARKS_MAX]; /* absolute offsets of message ends */
        size_t n_tx_marks;
        bool tx_requested;  /* request_tx called, tx callback not yet */
        bool tx_in_message; /* a message started onward, its EOM not yet */
        bool tx_discard;    /* dropping the client's message up to its EOM */
        bool input_paused;

        /* What the client knows of each metadata entry: FNV-1a of the value, 0 = none. */
        uint64_t metadata_hash[POLICY_METADATA_MAX];
};

static uint64_t value_hash(const char *v, size_t len)
{
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        if (!v)
                return 0;
        for (size_t i = 0; i < len; i++)
                h = (h ^ (uint8_t) v[i]) * UINT64_C(0x100000001b3);
        return h | 1; /* never 0: 0 is "no value" */
}

static void proxy_wake(ProxyStream *p)
{
        if (p->ops.wake)
                p->ops.wake(p->userdata);
}

static int queue_connstate(ProxyStream *p, uint32_t state, uint32_t ack)
{
        int r = 0;
        uint8_t *o = outbuf_reserve(p->out, FRAME_HEADER_SIZE + 8, &r);

        if (!o)
                return r;
        outbuf_commit(p->out, (size_t) frame_encode_connstate(o, state, ack));
        return 0;
}

static int queue_create_result(OutBuffer *out, uint8_t result, uint32_t buflen, const char *reason)
{
        size_t n = FRAME_HEADER_SIZE + 5 + (reason ? strlen(reason) : 0);
        int r = 0;
        uint8_t *o = outbuf_reserve(out, n, &r);

        if (!o)
                return r;
        r = frame_encode_create_result(o, n, result, buflen, reason);
        if (r < 0)
                return r;
        outbuf_commit(out, (size_t) r);
        return 0;
}

/* Tell the client about metadata entries the onward stream changed. */
static void sync_metadata(ProxyStream *p)
{
        if (!p->stream)
                return;
        for (size_t i = 0; i < p->st->n_metadata && i < POLICY_METADATA_MAX; i++) {
                const char *name = p->st->metadata[i].name, *v = NULL;
                size_t len = 0, n;
                uint64_t h;
                uint8_t *o;
                int r = 0;

                if (ss_stream_get_metadata(p->stream, name, &v, &len) < 0)
                        continue;
                h = value_hash(v, len);
                if (h == p->metadata_hash[i])
                        continue;
                n = FRAME_HEADER_SIZE + 1 + strlen(name) + len;
                o = outbuf_reserve(p->out, n, &r);
                if (!o || frame_encode_metadata(o, n, FRAME_RX_METADATA, name, v, len) < 0)
                        continue;
                outbuf_commit(p->out, n);
                p->metadata_hash[i] = h;
        }
}

static void sync_credit(ProxyStream *p)
{
        int64_t c = p->stream ? ss_stream_tx_credit(p->stream) : -1, delta;
        uint8_t *o;
        int r = 0;

        if (c < 0)
                return;
        c = MIN(c, (int64_t) INT32_MAX);
        delta = c - (p->credit_known ? p->credit : 0);
        if (p->credit_known && delta == 0)
                return;
        o = outbuf_reserve(p->out, FRAME_HEADER_SIZE + 4, &r);
        if (!o)
                return; /* told at the next change */
        outbuf_commit(p->out,
                      (size_t) frame_encode_u32(o, FRAME_RX_CREDIT, (uint32_t) (int32_t) delta));
        p->credit = c;
        p->credit_known = true;
}

static void on_kick(Timer *timer, void *userdata)
{
        ProxyStream *p = userdata;

        if (!p->stream)
                return;
        sync_credit(p);
        proxy_wake(p);
}

static void kick(ProxyStream *p)
{
        /* Deadline 0: due at once, not coalesced up to the time source's accuracy. */
        if (p->stream && !timer_is_armed(&p->kick))
                (void) scheduler_schedule_at(
                    ss_context_get_scheduler(ss_stream_get_context(p->stream)), &p->kick,
                    TIMER_LIST_NORMAL, 0);
}

static void rx_pause_if_full(ProxyStream *p)
{
        if (!p->rx_paused && p->stream && outbuf_pending(p->out) >= p->buflen) {
                p->rx_paused = true;
                ss_stream_pause_rx(p->stream, true);
        }
}

static SsResult on_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        ProxyStream *p = userdata;
        size_t off = 0;

        if (flags & SS_FLAG_SOM) {
                sync_metadata(p);
                p->rx_in_message = true;
        }
        /* Cut into chunks: SOM on the first of a message, EOM on its last. */
        do {
                size_t n = MIN(len - off, (size_t) FRAME_CHUNK_MAX);
                uint32_t fl = 0;
                uint8_t *o;
                int r = 0;

                if (off == 0 && (flags & SS_FLAG_SOM))
                        fl |= FRAME_FLAG_SOM;
                if (off + n == len && (flags & SS_FLAG_EOM))
                        fl |= FRAME_FLAG_EOM;
                o = outbuf_reserve(p->out, frame_payload_size(n), &r);
                if (!o) {
                        log_warning_errno(r, "client %" PRIu64 ": %s: cannot queue payload: %m",
                                          p->client_id, p->streamtype);
                        return SS_DISCONNECT_ME;
                }
                outbuf_commit(p->out, (size_t) frame_encode_payload(o, FRAME_RX_PAYLOAD, fl, 0,
                                                                    now_usec(CLOCK_MONOTONIC),
                                                                    buf + off, n));
                off += n;
        } while (off < len);
        if (flags & SS_FLAG_EOM)
                p->rx_in_message = false;
        sync_credit(p);
        rx_pause_if_full(p);
        proxy_wake(p);
        return SS_OK;
}

static size_t tx_available(const ProxyStream *p)
{
        return p->tx_len - p->tx_off;
}

static void tx_input_check(ProxyStream *p)
{
        bool full = tx_available(p) >= p->buflen || p->n_tx_marks == PROXY_TX_MARKS_MAX;
        bool room = tx_available(p) <= p->buflen / 2 && p->n_tx_marks < PROXY_TX_MARKS_MAX / 2;

        if (!p->input_paused && full) {
                p->input_paused = true;
                if (p->ops.pause_input)
                        p->ops.pause_input(p->userdata, true);
        } else if (p->input_paused && room) {
                p->input_paused = false;
                if (p->ops.pause_input)
                        p->ops.pause_input(p->userdata, false);
        }
}

static SsResult on_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        ProxyStream *p = userdata;
        size_t n = tx_available(p);
        bool eom = false;

        p->tx_requested = false;
        if (p->n_tx_marks > 0) {
                uint64_t until = p->tx_marks[0] - p->tx_consumed;
                if (until <= *len) {
                        n = (size_t) until;
                        eom = true;
                }
        }
        if (n == 0 && !eom)
                return SS_TX_DONT_SEND;
        n = MIN(n, *len);
        if (n > 0) /* an empty message may come before any byte was buffered */
                memcpy(buf, p->tx + p->tx_off, n);
        p->tx_off += n;
        p->tx_consumed += n;
        *len = n;
        *flags = (p->tx_in_message ? 0 : SS_FLAG_SOM) | (eom ? SS_FLAG_EOM : 0);
        p->tx_in_message = !eom;
        if (eom) {
                p->n_tx_marks--;
                memmove(p->tx_marks, p->tx_marks + 1, p->n_tx_marks * sizeof(p->tx_marks[0]));
        }
        if (p->tx_off == p->tx_len)
                p->tx_off = p->tx_len = 0;
        tx_input_check(p);
        /* The engine stops pulling after EOM: ask for the next message now. */
        if (eom && (tx_available(p) > 0 || p->n_tx_marks > 0) && !p->tx_requested) {
                p->tx_requested = true;
                (void) ss_stream_request_tx(s);
        }
        kick(p); /* the credit changes once the protocol has written what we gave */
        return SS_OK;
}

/* The onward ws connection dropped in the middle of a message: drop the rest of it. */
static void tx_drop_message(ProxyStream *p)
{
        size_t n = tx_available(p);

        if (p->n_tx_marks > 0) {
                n = (size_t) (p->tx_marks[0] - p->tx_consumed);
                p->n_tx_marks--;
                memmove(p->tx_marks, p->tx_marks + 1, p->n_tx_marks * sizeof(p->tx_marks[0]));
        } else
                p->tx_discard = true; /* its EOM is still to come */
        p->tx_off += n;
        p->tx_consumed += n;
        if (p->tx_off == p->tx_len)
                p->tx_off = p->tx_len = 0;
        tx_input_check(p);
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        ProxyStream *p = userdata;

        switch (state) {
        case SS_STATE_CREATING:
                /* The client's library reports CREATING itself, at CREATE_RESULT. */
                return SS_OK;
        case SS_STATE_DESTROYING:
                /* The engine destroys the stream by itself: the client decides what next. */
                p->stream = NULL;
                break;
        case SS_STATE_DISCONNECTED:
                p->rx_in_message = false;
                if (p->tx_in_message && p->st->protocol == POLICY_PROTOCOL_WS)
                        tx_drop_message(p);
                p->tx_in_message = false;
                break;
        case SS_STATE_CONNECTED:
        case SS_STATE_UNREACHABLE:
        case SS_STATE_AUTH_FAILED:
        case SS_STATE_CONNECTING:
        case SS_STATE_POLL:
        case SS_STATE_ALL_RETRIES_FAILED:
        case SS_STATE_QOS_ACK_REMOTE:
        case SS_STATE_QOS_NACK_REMOTE:
        case SS_STATE_QOS_ACK_LOCAL:
        case SS_STATE_QOS_NACK_LOCAL:
        case SS_STATE_TIMEOUT:
        case SS_STATE_SERVER_TXN:
        case SS_STATE_SERVER_UPGRADE:
        case SS_STATE_EVENT_WAIT_CANCELLED:
        case SS_STATE_UPSTREAM_LINK_RETRY:
        case _SS_STATE_MAX:
        case SS_STATE_USER_BASE:
                break;
        }
        if (p->stream)
                sync_metadata(p);
        if (queue_connstate(p, state, ack) < 0)
                log_warning("client %" PRIu64 ": %s: cannot queue state %s", p->client_id,
                            p->streamtype, ss_state_to_string(state));
        if (state == SS_STATE_DISCONNECTED) {
                p->credit_known = false;
                p->credit = 0;
        } else
                sync_credit(p);
        proxy_wake(p);
        return SS_OK;
}

/* Handlers for a stream we are destroying: its cleanup states reach nobody. */
static SsResult on_rx_gone(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                           unsigned flags)
{
        return SS_OK;
}

static SsResult on_tx_gone(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        return SS_TX_DONT_SEND;
}

static SsResult on_state_gone(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        return SS_OK;
}

static bool principals_match(const PolicyPrincipals *allow, const Credentials *cred)
{
        Principal items[PRINCIPALS_MAX];
        PrincipalList list = {.items = items};

        for (size_t i = 0; i < allow->n_names && list.n < PRINCIPALS_MAX; i++) {
                Principal pr;

                /* An unknown user or group matches nobody. */
                if (principal_parse(allow->names[i], &pr) >= 0)
                        list.items[list.n++] = pr;
        }
        return principal_list_matches(&list, cred);
}

static int refuse(OutBuffer *out, const Credentials *cred, uint64_t client_id,
                  const char *streamtype, int error, const char *reason)
{
        log_info("client %" PRIu64 " (pid %d uid %u): stream \"%s\" refused: %s", client_id,
                 (int) cred->pid, (unsigned) cred->uid, streamtype, reason);
        (void) queue_create_result(out,
                                   error == -EACCES            ? PROXY_CREATE_REFUSED
                                   : error == -ENOENT          ? PROXY_CREATE_UNKNOWN
                                   : error == -EPROTONOSUPPORT ? PROXY_CREATE_UNSUPPORTED
                                                               : PROXY_CREATE_FAILED,
                                   0, reason);
        return error;
}

/*
 * A library the stream needs, loaded on first use, cannot be: the reason goes
 * to the client each time and to the log once per library, as it does not
 * change until a restart. GnuTLS is asked first: a stream of an h2 streamtype
 * over TLS needs both, and either reason is true.
 */
static bool library_unavailable(const PolicyStreamtype *st, char *reason, size_t size)
{
        static bool logged_tls, logged_h2;
        const char *why;

        why = st->tls ? tls_unavailable_reason() : NULL;
        if (why) {
                if (!logged_tls)
                        log_error("%s: streams with tls fail", why);
                logged_tls = true;
        } else {
                why = st->protocol == POLICY_PROTOCOL_H2 ? h2_unavailable_reason() : NULL;
                if (!why)
                        return false;
                if (!logged_h2)
                        log_error("%s: h2 streams with tls fail", why);
                logged_h2 = true;
        }
        snprintf(reason, size, "%s", why);
        return true;
}

int proxy_stream_new(ProxyStream **ret, SsContext *ss, const char *streamtype,
                     const Credentials *cred, uint64_t client_id, OutBuffer *out,
                     const ProxyClientOps *ops, void *userdata)
{
        static const SsStreamHandlers handlers = {
            .rx = on_rx,
            .tx = on_tx,
            .state = on_state,
        };
        const PolicyStreamtype *st;
        ProxyStream *p;
        char reason[128];
        int r;

        assert(ret && streamtype && cred && out);
        if (!ss)
                return refuse(out, cred, client_id, streamtype, -ENOENT,
                              "Secure Streams are not available");
        st = policy_find_streamtype(ss_context_get_policy(ss), streamtype);
        if (!st) {
                snprintf(reason, sizeof(reason), "unknown streamtype \"%s\"", streamtype);
                return refuse(out, cred, client_id, streamtype, -ENOENT, reason);
        }
        if (st->has_allow ? !principals_match(&st->allow, cred) : st->server)
                return refuse(out, cred, client_id, streamtype, -EACCES,
                              st->has_allow ? "not allowed by the streamtype's allow rules"
                                            : "server streamtypes need an allow rule");

        p = calloc(1, sizeof(*p));
        if (!p)
                return refuse(out, cred, client_id, streamtype, -ENOMEM, "out of memory");
        p->st = st;
        snprintf(p->streamtype, sizeof(p->streamtype), "%s", streamtype);
        p->client_id = client_id;
        p->out = out;
        if (ops)
                p->ops = *ops;
        p->userdata = userdata;
        timer_init(&p->kick, on_kick, p);
        p->buflen =
            st->proxy_buflen == 0 ? PROXY_BUFLEN_DEFAULT : MAX(st->proxy_buflen, PROXY_BUFLEN_MIN);

        r = ss_stream_new(&p->stream, ss, streamtype, &handlers, p);
        if (r < 0) {
                if (r == -EPROTONOSUPPORT)
                        snprintf(reason, sizeof(reason), "protocol %s is not available",
                                 policy_protocol_to_string(st->protocol));
                else if (r != -ELIBACC || !library_unavailable(st, reason, sizeof(reason)))
                        snprintf(reason, sizeof(reason), "cannot create the stream: %s",
                                 strerror(-r));
                free(p);
                return refuse(out, cred, client_id, streamtype, r, reason);
        }
        r = queue_create_result(out, PROXY_CREATE_OK, p->buflen, NULL);
        if (r < 0) {
                proxy_stream_free(p);
                return r;
        }
        log_debug("client %" PRIu64 " (pid %d uid %u): stream \"%s\" opened", client_id,
                  (int) cred->pid, (unsigned) cred->uid, streamtype);
        *ret = p;
        return 0;
}

ProxyStream *proxy_stream_free(ProxyStream *p)
{
        if (!p)
                return NULL;
        p->freeing = true;
        timer_cancel(&p->kick);
        if (p->stream) {
                ss_stream_change_handlers(p->stream, on_rx_gone, on_tx_gone, on_state_gone);
                ss_stream_free(p->stream);
        }
        free(p->tx);
        free(p);
        return NULL;
}

static int on_tx_payload(ProxyStream *p, const Frame *f, char *err, size_t err_size)
{
        size_t n = f->payload.size;

        /* The server stops reading past buflen; one read of slack on top, no more. */
        if (tx_available(p) + n > (size_t) p->buflen + FRAME_HEADER_SIZE + FRAME_BODY_MAX) {
                snprintf(err, err_size, "TX_PAYLOAD beyond the %u-byte buffer", p->buflen);
                return -EBADMSG;
        }
        if (p->n_tx_marks == PROXY_TX_MARKS_MAX && (f->payload.flags & FRAME_FLAG_EOM)) {
                snprintf(err, err_size, "more than %u messages waiting", PROXY_TX_MARKS_MAX);
                return -EBADMSG;
        }
        if (p->tx_discard) {
                /* The rest of a message whose connection dropped: not sent. */
                p->tx_discard = !(f->payload.flags & FRAME_FLAG_EOM);
                return 0;
        }
        if (n > 0) {
                if (p->tx_off > 0 && p->tx_len + n > p->tx_size) {
                        memmove(p->tx, p->tx + p->tx_off, tx_available(p));
                        p->tx_len -= p->tx_off;
                        p->tx_off = 0;
                }
                if (p->tx_len + n > p->tx_size) {
                        size_t size = MAX(p->tx_len + n, MIN(p->tx_size * 2 + 4096,
                                                             (size_t) p->buflen * 2 + 65536));
                        uint8_t *b = realloc(p->tx, size);
                        if (!b) {
                                snprintf(err, err_size, "out of memory");
                                return -ENOMEM;
                        }
                        p->tx = b;
                        p->tx_size = size;
                }
                memcpy(p->tx + p->tx_len, f->payload.data, n);
                p->tx_len += n;
        }
        if (f->payload.flags & FRAME_FLAG_EOM)
                p->tx_marks[p->n_tx_marks++] = p->tx_consumed + tx_available(p);
        tx_input_check(p);
        if (!p->stream)
                return 0; /* kept until the client destroys the stream */
        if (!p->tx_requested && (n > 0 || (f->payload.flags & FRAME_FLAG_EOM))) {
                p->tx_requested = true;
                (void) ss_stream_request_tx(p->stream);
        }
        return 0;
}

static int on_metadata(ProxyStream *p, const Frame *f, char *err, size_t err_size)
{
        char name[256];
        size_t i;
        int r;

        memcpy(name, f->metadata.name, f->metadata.name_len);
        name[f->metadata.name_len] = 0;
        for (i = 0; i < p->st->n_metadata; i++)
                if (streq(p->st->metadata[i].name, name))
                        break;
        if (i == p->st->n_metadata || strlen(name) != f->metadata.name_len) {
                snprintf(err, err_size, "metadata \"%.64s\" is not defined by streamtype %s", name,
                         p->streamtype);
                return -EBADMSG;
        }
        if (!p->stream)
                return 0;
        r = ss_stream_set_metadata(p->stream, name, f->metadata.value, f->metadata.value_len);
        if (r < 0) {
                snprintf(err, err_size, "metadata \"%s\": %s", name,
                         r == -E2BIG ? "value too long" : "invalid value (CR, LF or NUL)");
                return -EBADMSG;
        }
        if (i < POLICY_METADATA_MAX)
                p->metadata_hash[i] =
                    value_hash((const char *) f->metadata.value, f->metadata.value_len);
        return 0;
}

int proxy_stream_on_frame(ProxyStream *p, const Frame *f, char *err, size_t err_size)
{
        assert(p && f);
        switch ((FrameType) f->type) {
        case FRAME_ONWARD_CONNECT:
                if (p->stream)
                        (void) ss_stream_client_connect(p->stream);
                return 0;
        case FRAME_TX_PAYLOAD:
                return on_tx_payload(p, f, err, err_size);
        case FRAME_TX_METADATA:
                return on_metadata(p, f, err, err_size);
        case FRAME_TX_CREDIT:
                /*
                 * What the client lets us send it: its reading of the socket is
                 * our flow control already (proxy_buflen), so nothing to do.
                 */
                return 0;
        case FRAME_TIMEOUT_UPDATE:
                if (!p->stream)
                        return 0;
                if (f->value == UINT32_MAX)
                        ss_stream_cancel_timeout(p->stream);
                else if (ss_stream_start_timeout(p->stream, f->value) < 0)
                        log_debug("client %" PRIu64 ": %s: no policy timeout to start",
                                  p->client_id, p->streamtype);
                return 0;
        case FRAME_PAYLOAD_LENGTH_HINT:
                if (p->stream) {
                        p->tx_requested = true;
                        (void) ss_stream_request_tx_len(p->stream, f->value);
                }
                return 0;
        case FRAME_STREAMTYPE:
        case FRAME_DESTROYING:
        case FRAME_RX_PAYLOAD:
        case FRAME_CREATE_RESULT:
        case FRAME_CONNSTATE:
        case FRAME_RX_CREDIT:
        case FRAME_RX_METADATA:
                break;
        }
        snprintf(err, err_size, "unexpected frame %s", frame_type_name(f->type));
        return -EBADMSG;
}

void proxy_stream_on_output_written(ProxyStream *p)
{
        if (!p || !p->stream)
                return;
        if (p->rx_paused && outbuf_pending(p->out) <= p->buflen / 2) {
                p->rx_paused = false;
                ss_stream_pause_rx(p->stream, false);
        }
        sync_credit(p);
}

uint32_t proxy_stream_get_buflen(const ProxyStream *p)
{
        return p->buflen;
}

size_t proxy_stream_get_tx_pending(const ProxyStream *p)
{
        return tx_available(p);
}

bool proxy_stream_is_rx_paused(const ProxyStream *p)
{
        return p->rx_paused;
}

SsStream *proxy_stream_get_stream(const ProxyStream *p)
{
        return p->stream;
}

const char *proxy_stream_get_streamtype(const ProxyStream *p)
{
        return p->streamtype;
}

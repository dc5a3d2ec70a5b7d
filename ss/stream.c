/* SPDX-License-Identifier: MIT */
/*
 * The stream core: the engine context (scheduler, resolver, policy, trust-store
 * credential cache), stream lifetime, state delivery against the transition
 * table, connection attempts through the transport, retry and backoff,
 * timeouts and validity. Protocols (h1-client.c, ws-client.c) plug in through
 * their SsProtocolOps at the transport handlers below; idle keep-alive
 * connections wait in stream-pool.c.
 *
 * Control flow: user callbacks run only from event-loop entry points (the
 * timer and transport handlers here) and from ss_stream_new() / ss_stream_free().
 * Public calls that would start work (connect, request_tx) only set flags and
 * arm the stream's work source (a zero-delay timer without an event loop), so
 * they are safe from inside callbacks. Each
 * entry point ends in stream_dispatch(), the only place where a DESTROY_ME or
 * DISCONNECT_ME result is acted on.
 */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fileio.h"
#include "stream-internal.h"

/* ---- states ---------------------------------------------------------------------------- */

#define S(x) (1u << SS_STATE_##x)

/* For each state last delivered: the states that may follow it (upstream's table). */
static const uint32_t next_states[_SS_STATE_MAX] = {
    [0] = S(CREATING) | S(DESTROYING),
    [SS_STATE_CREATING] = S(CONNECTING) | S(TIMEOUT) | S(POLL) | S(SERVER_UPGRADE) | S(DESTROYING),
    [SS_STATE_DISCONNECTED] = S(CONNECTING) | S(TIMEOUT) | S(POLL) | S(DESTROYING),
    [SS_STATE_UNREACHABLE] =
        S(ALL_RETRIES_FAILED) | S(TIMEOUT) | S(POLL) | S(CONNECTING) | S(CONNECTED) | S(DESTROYING),
    [SS_STATE_AUTH_FAILED] = S(ALL_RETRIES_FAILED) | S(TIMEOUT) | S(CONNECTING) | S(DESTROYING),
    [SS_STATE_CONNECTED] = S(SERVER_UPGRADE) | S(SERVER_TXN) | S(AUTH_FAILED) | S(QOS_ACK_REMOTE) |
                           S(QOS_NACK_REMOTE) | S(QOS_ACK_LOCAL) | S(QOS_NACK_LOCAL) |
                           S(DISCONNECTED) | S(TIMEOUT) | S(POLL) | S(DESTROYING),
    [SS_STATE_CONNECTING] = S(UNREACHABLE) | S(AUTH_FAILED) | S(CONNECTING) | S(CONNECTED) |
                            S(TIMEOUT) | S(POLL) | S(DISCONNECTED) | S(DESTROYING),
    [SS_STATE_DESTROYING] = 0,
    [SS_STATE_POLL] = S(CONNECTING) | S(TIMEOUT) | S(ALL_RETRIES_FAILED) | S(DESTROYING),
    [SS_STATE_ALL_RETRIES_FAILED] = S(CONNECTING) | S(TIMEOUT) | S(DESTROYING),
    [SS_STATE_QOS_ACK_REMOTE] =
        S(DISCONNECTED) | S(TIMEOUT) | S(QOS_ACK_REMOTE) | S(QOS_NACK_REMOTE) | S(DESTROYING),
    [SS_STATE_QOS_NACK_REMOTE] =
        S(DISCONNECTED) | S(TIMEOUT) | S(QOS_ACK_REMOTE) | S(QOS_NACK_REMOTE) | S(DESTROYING),
    [SS_STATE_QOS_ACK_LOCAL] = S(DISCONNECTED) | S(TIMEOUT) | S(DESTROYING),
    [SS_STATE_QOS_NACK_LOCAL] = S(TIMEOUT) | S(DESTROYING),
    [SS_STATE_TIMEOUT] = S(CONNECTING) | S(CONNECTED) | S(QOS_ACK_REMOTE) | S(QOS_NACK_REMOTE) |
                         S(POLL) | S(TIMEOUT) | S(DISCONNECTED) | S(UNREACHABLE) | S(DESTROYING),
    /* A keep-alive server connection: a SERVER_TXN per request. */
    [SS_STATE_SERVER_TXN] = S(SERVER_TXN) | S(DISCONNECTED) | S(TIMEOUT) | S(DESTROYING),
    [SS_STATE_SERVER_UPGRADE] = S(SERVER_TXN) | S(TIMEOUT) | S(DISCONNECTED) | S(DESTROYING),
};

#undef S

static const char *const state_names[_SS_STATE_MAX] = {
    [SS_STATE_CREATING] = "CREATING",
    [SS_STATE_DISCONNECTED] = "DISCONNECTED",
    [SS_STATE_UNREACHABLE] = "UNREACHABLE",
    [SS_STATE_AUTH_FAILED] = "AUTH_FAILED",
    [SS_STATE_CONNECTED] = "CONNECTED",
    [SS_STATE_CONNECTING] = "CONNECTING",
    [SS_STATE_DESTROYING] = "DESTROYING",
    [SS_STATE_POLL] = "POLL",
    [SS_STATE_ALL_RETRIES_FAILED] = "ALL_RETRIES_FAILED",
    [SS_STATE_QOS_ACK_REMOTE] = "QOS_ACK_REMOTE",
    [SS_STATE_QOS_NACK_REMOTE] = "QOS_NACK_REMOTE",
    [SS_STATE_QOS_ACK_LOCAL] = "QOS_ACK_LOCAL",
    [SS_STATE_QOS_NACK_LOCAL] = "QOS_NACK_LOCAL",
    [SS_STATE_TIMEOUT] = "TIMEOUT",
    [SS_STATE_SERVER_TXN] = "SERVER_TXN",
    [SS_STATE_SERVER_UPGRADE] = "SERVER_UPGRADE",
    [SS_STATE_EVENT_WAIT_CANCELLED] = "EVENT_WAIT_CANCELLED",
    [SS_STATE_UPSTREAM_LINK_RETRY] = "UPSTREAM_LINK_RETRY",
};

const char *ss_state_to_string(SsState state)
{
        if (state >= SS_STATE_USER_BASE)
                return "USER";
        if (state <= 0 || state >= _SS_STATE_MAX)
                return "INVALID";
        return state_names[state];
}

/* Transient states pass without changing the state the table looks at. */
static bool state_is_transient(SsState state)
{
        return state >= SS_STATE_USER_BASE || state == SS_STATE_EVENT_WAIT_CANCELLED ||
               state == SS_STATE_UPSTREAM_LINK_RETRY;
}

bool ss_state_transition_is_valid(SsState from, SsState to)
{
        if (state_is_transient(to))
                return true;
        if (from < 0 || from >= _SS_STATE_MAX || to <= 0 || to >= _SS_STATE_MAX)
                return false;
        return next_states[from] & (1u << to);
}

/* ---- the default connection layer ------------------------------------------------------ */

static const SsTransportOps transport_ops_real = {
    .transport_new = transport_new,
    .transport_free = transport_free,
    .transport_read = transport_read,
    .transport_write = transport_write,
    .transport_want_write = transport_want_write,
    .transport_set_handlers = transport_set_handlers,
    .tls_context_new = tls_context_new,
    .tls_context_unref = tls_context_unref,
    .transport_pause_read = transport_pause_read,
};

/* ---- protocols ------------------------------------------------------------------------- */

const SsProtocolOps *ss_protocol_find(PolicyProtocol protocol)
{
        switch (protocol) {
        case POLICY_PROTOCOL_H1:
                return &ss_protocol_h1;
        case POLICY_PROTOCOL_WS:
                return &ss_protocol_ws;
        case POLICY_PROTOCOL_MQTT:
                return &ss_protocol_mqtt;
        case POLICY_PROTOCOL_H2:
                return &ss_protocol_h2;
        case POLICY_PROTOCOL_H3:
        case POLICY_PROTOCOL_RAW:
        case _POLICY_PROTOCOL_MAX:
                return NULL;
        }
        return NULL;
}

/* ---- context --------------------------------------------------------------------------- */

static uint32_t random_default(void *userdata)
{
        SsContext *c = userdata;
        uint64_t x = c->random_state;

        /* xorshift64*: jitter needs spread, not secrecy. */
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c->random_state = x;
        return (uint32_t) ((x * UINT64_C(2685821657736338717)) >> 32);
}

int ss_context_new(SsContext **ret, sd_event *event, Policy *policy)
{
        SsContext *c;
        int r;

        assert(ret);
        assert(policy);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->policy = policy_ref(policy);
        c->ops = &transport_ops_real;
        c->random = random_default;
        c->random_userdata = c;
        if (getrandom(&c->random_state, sizeof(c->random_state), GRND_NONBLOCK) !=
            sizeof(c->random_state))
                c->random_state = now_usec(CLOCK_MONOTONIC);
        c->random_state |= 1;
        c->pool_per_server = SS_POOL_PER_SERVER;
        c->pool_total = SS_POOL_TOTAL;
        c->pool_idle_ms = SS_POOL_IDLE_MS;

        r = scheduler_new(&c->scheduler, event);
        if (r < 0)
                goto fail;
        if (event) {
                c->event = sd_event_ref(event);
                r = resolver_new(&c->resolver, event);
                if (r < 0)
                        goto fail;
        }
        *ret = c;
        return 0;
fail:
        ss_context_free(c);
        return r;
}

SsContext *ss_context_free(SsContext *c)
{
        if (!c)
                return NULL;
        while (c->streams)
                (void) ss_stream_free(c->streams);
        ss_pool_drop_all(c);
        assert(!c->tls_entries);
        assert(!c->work_head);
        (void) sd_event_source_disable_unref(c->work_source);
        resolver_free(c->resolver);
        scheduler_free(c->scheduler);
        sd_event_unref(c->event);
        policy_unref(c->policy);
        return mfree(c);
}

Scheduler *ss_context_get_scheduler(SsContext *c)
{
        return c->scheduler;
}

const Policy *ss_context_get_policy(SsContext *c)
{
        return c->policy;
}

void ss_context_set_policy(SsContext *c, Policy *policy)
{
        assert(c);
        assert(policy);

        if (policy == c->policy)
                return;
        /*
         * Credentials built from the old policy's trust stores stay with the
         * streams using them (and go with the last of them, as always); new
         * streams build their own from the new policy.
         */
        for (SsTlsEntry *e = c->tls_entries; e; e = e->next)
                e->stale = true;
        policy_unref(c->policy);
        c->policy = policy_ref(policy);
}

size_t ss_context_n_streams(SsContext *c)
{
        return c->n_streams;
}

unsigned ss_context_n_tls_contexts(SsContext *c)
{
        unsigned n = 0;

        for (SsTlsEntry *e = c->tls_entries; e; e = e->next)
                n++;
        return n;
}

void ss_context_set_illegal_transition_hook(SsContext *c, SsIllegalTransitionHook hook,
                                            void *userdata)
{
        c->illegal_hook = hook;
        c->illegal_userdata = userdata;
}

unsigned ss_context_get_illegal_transitions(SsContext *c)
{
        return c->n_illegal;
}

void ss_context_set_transport_ops(SsContext *c, const SsTransportOps *ops)
{
        c->ops = ops ? ops : &transport_ops_real;
}

void ss_context_set_random(SsContext *c, uint32_t (*random)(void *userdata), void *userdata)
{
        c->random = random ? random : random_default;
        c->random_userdata = random ? userdata : c;
}

/* ---- trust-store credentials ----------------------------------------------------------- */

#define CERT_FILE_MAX (1024u * 1024u)

static int read_cert_file(const char *path, uint8_t **ret, size_t *ret_size)
{
        int r = read_file_bounded(path, 0, CERT_FILE_MAX, (char **) ret, ret_size);

        /* Anything but a regular file is not a certificate. */
        return r == -EISDIR || r == -EBADFD ? -EINVAL : r;
}

static int tls_entry_create(SsContext *c, const char *name, TlsContext **ret)
{
        const PolicyTrustStore *ts = NULL;
        TlsCertificate certs[POLICY_CERTS_MAX] = {};
        uint8_t *files[POLICY_CERTS_MAX] = {};
        size_t n = 0;
        int r = 0;

        if (name[0]) {
                ts = policy_find_trust_store(c->policy, name);
                if (!ts)
                        return -ENOENT;
                if (ts->n_certs > POLICY_CERTS_MAX)
                        return -E2BIG;
                for (; n < ts->n_certs; n++) {
                        const PolicyCert *cert = policy_find_cert(c->policy, ts->certs[n]);

                        if (!cert) {
                                r = -ENOENT;
                                goto out;
                        }
                        if (cert->path) {
                                r = read_cert_file(cert->path, &files[n], &certs[n].size);
                                if (r < 0)
                                        goto out;
                                certs[n].data = files[n];
                                certs[n].pem = true;
                        } else {
                                certs[n].data = cert->der;
                                certs[n].size = cert->der_size;
                        }
                }
        }
        r = c->ops->tls_context_new(ret, certs, n);
out:
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                free(files[i]);
        return r;
}

static int tls_entry_acquire(SsContext *c, const char *name, SsTlsEntry **ret)
{
        SsTlsEntry *e;
        int r;

        name = strempty(name);
        for (e = c->tls_entries; e; e = e->next)
                if (!e->stale && streq(e->name, name)) {
                        e->users++;
                        *ret = e;
                        return 0;
                }

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->name = strdup(name);
        if (!e->name) {
                free(e);
                return -ENOMEM;
        }
        r = tls_entry_create(c, name, &e->tls);
        if (r < 0) {
                free(e->name);
                free(e);
                return r;
        }
        e->users = 1;
        e->next = c->tls_entries;
        c->tls_entries = e;
        *ret = e;
        return 0;
}

static void tls_entry_release(SsContext *c, SsTlsEntry *e)
{
        if (!e)
                return;
        assert(e->users > 0);
        if (--e->users > 0)
                return;
        /* Idle connections hold the credentials too: they go with the last stream. */
        ss_pool_drop_tls_entry(c, e);
        for (SsTlsEntry **p = &c->tls_entries; *p; p = &(*p)->next)
                if (*p == e) {
                        *p = e->next;
                        break;
                }
        c->ops->tls_context_unref(e->tls);
        free(e->name);
        free(e);
}

/* ---- delivering to the user ------------------------------------------------------------ */

static SsResult callback_result(SsStream *s, SsResult r)
{
        if (s->destroy_requested)
                return SS_DESTROY_ME;
        return r;
}

SsResult ss_stream_deliver_state(SsStream *s, SsState state, uint32_t ack)
{
        SsState from = s->state;
        SsResult r = SS_OK;

        if (!ss_state_transition_is_valid(from, state)) {
                s->context->n_illegal++;
                if (s->context->illegal_hook)
                        s->context->illegal_hook(s, from, state, s->context->illegal_userdata);
                else
                        assert(!"illegal Secure Streams state transition");
                /* Release builds: end the stream cleanly, without delivering this state. */
                return s->freeing ? SS_OK : SS_DESTROY_ME;
        }

        if (!state_is_transient(state))
                s->state = state;
        if (state == SS_STATE_CREATING)
                s->creating_delivered = true;
        else if (state == SS_STATE_CONNECTED)
                s->connected_delivered = true;
        else if (state == SS_STATE_DISCONNECTED)
                s->connected_delivered = false;

        if (s->state_cb) {
                s->in_callback++;
                r = s->state_cb(s, s->userdata, state, ack);
                s->in_callback--;
        }
        if (r == SS_TX_DONT_SEND || (r != SS_DISCONNECT_ME && r != SS_DESTROY_ME))
                r = SS_OK;
        return callback_result(s, r);
}

SsResult ss_stream_deliver_rx(SsStream *s, const uint8_t *buf, size_t len, unsigned flags)
{
        SsResult r = SS_OK;

        if (s->rx) {
                s->in_callback++;
                r = s->rx(s, s->userdata, buf, len, flags);
                s->in_callback--;
        }
        if (r != SS_DISCONNECT_ME && r != SS_DESTROY_ME)
                r = SS_OK;
        return callback_result(s, r);
}

SsResult ss_stream_call_tx(SsStream *s, uint8_t *buf, size_t *len, unsigned *flags)
{
        SsResult r;

        if (!s->tx) {
                *len = 0;
                *flags = SS_FLAG_EOM;
                return SS_OK;
        }
        s->in_callback++;
        r = s->tx(s, s->userdata, buf, len, flags);
        s->in_callback--;
        if (r != SS_TX_DONT_SEND && r != SS_DISCONNECT_ME && r != SS_DESTROY_ME)
                r = SS_OK;
        return callback_result(s, r);
}

SsResult ss_stream_test_deliver_state(SsStream *s, SsState state, uint32_t ack)
{
        return ss_stream_deliver_state(s, state, ack);
}

/* ---- connections ----------------------------------------------------------------------- */

TimerList ss_stream_timer_list(const SsStream *s)
{
        return s->st->swake_validity ? TIMER_LIST_WAKE : TIMER_LIST_NORMAL;
}

static void stream_close_transport(SsStream *s)
{
        SsPoolKey key;
        uint64_t idle_ms;

        /* A connection that ended its response cleanly waits for the next request. */
        if (s->transport && s->proto->is_reusable && s->proto->is_reusable(s, &key, &idle_ms)) {
                ss_pool_put(s->context, &key, s->transport, idle_ms);
                s->transport = NULL;
        }
        if (s->transport && s->proto->close)
                s->proto->close(s);
        s->proto->connection_free(s);
        if (s->transport)
                s->transport = s->context->ops->transport_free(s->transport);
        s->redirecting = false;
        timer_cancel(&s->validity_timer);
        timer_cancel(&s->ping_timer);
}

static void stream_cancel_policy_timeout(SsStream *s)
{
        if (s->timeout_from_policy) {
                timer_cancel(&s->timeout_timer);
                s->timeout_from_policy = false;
        }
}

static int on_context_work(sd_event_source *source, void *userdata);

static void work_unqueue(SsStream *s)
{
        SsContext *c = s->context;

        if (!s->work_queued)
                return;
        if (s->work_prev)
                s->work_prev->work_next = s->work_next;
        else
                c->work_head = s->work_next;
        if (s->work_next)
                s->work_next->work_prev = s->work_prev;
        else
                c->work_tail = s->work_prev;
        s->work_prev = s->work_next = NULL;
        s->work_queued = false;
        c->n_work--;
}

/*
 * With an event loop, the context's work queue: one defer source serves every
 * stream queued, in one dispatch, and unlike a timer costs no timerfd to arm
 * and read on every request.
 */
static bool work_queue(SsStream *s)
{
        SsContext *c = s->context;

        if (!c->event)
                return false;
        if (!c->work_source &&
            sd_event_add_defer(c->event, &c->work_source, on_context_work, c) < 0)
                return false;
        if (sd_event_source_set_enabled(c->work_source, SD_EVENT_ONESHOT) < 0)
                return false;
        if (s->work_queued)
                return true;
        s->work_queued = true;
        s->work_next = NULL;
        s->work_prev = c->work_tail;
        if (c->work_tail)
                c->work_tail->work_next = s;
        else
                c->work_head = s;
        c->work_tail = s;
        c->n_work++;
        return true;
}

static void stream_defer_connect(SsStream *s)
{
        s->connect_wanted = true;
        if (work_queue(s))
                return;
        /*
         * Deadline 0, not "now": a deadline that is already older than the time
         * source's accuracy fires at the next loop iteration, while "now" lets
         * sd-event coalesce it up to SCHEDULER_ACCURACY_USEC later (a
         * millisecond on every request).
         */
        (void) scheduler_schedule_at(s->context->scheduler, &s->work_timer, TIMER_LIST_NORMAL, 0);
}

/* Retry after a failure, or give up (ALL_RETRIES_FAILED) once conceal is used up. */
static SsResult stream_backoff(SsStream *s, uint64_t min_delay_ms)
{
        SsContext *c = s->context;
        uint64_t delay;
        int r;

        if (s->retry_count >= ss_retry_conceal(s->retry)) {
                s->phase = SS_PHASE_IDLE;
                s->tx_pending = false;
                /* After a drop (DISCONNECTED) the table has no ALL_RETRIES_FAILED: just idle. */
                if (ss_state_transition_is_valid(s->state, SS_STATE_ALL_RETRIES_FAILED))
                        return ss_stream_deliver_state(s, SS_STATE_ALL_RETRIES_FAILED, 0);
                return SS_OK;
        }

        delay = ss_retry_delay_ms(s->retry, s->retry_count, c->random(c->random_userdata));
        s->retry_count++;
        delay = MAX(delay, min_delay_ms);
        r = scheduler_schedule_in(c->scheduler, &s->retry_timer, ss_stream_timer_list(s),
                                  delay * USEC_PER_MSEC);
        if (r < 0) {
                s->phase = SS_PHASE_IDLE;
                return SS_OK;
        }
        s->phase = SS_PHASE_WAIT_RETRY;
        return SS_OK;
}

/* What to do once there is no connection any more. */
static SsResult stream_after_drop(SsStream *s, bool failed, uint64_t min_delay_ms)
{
        s->phase = SS_PHASE_IDLE;
        if (s->st->nailed_up)
                return stream_backoff(s, min_delay_ms);
        if (s->st->opportunistic) {
                s->tx_pending = false;
                return SS_OK;
        }
        if (failed)
                return stream_backoff(s, min_delay_ms);
        if (s->tx_pending)
                stream_defer_connect(s);
        return SS_OK;
}

/* Drops the connection (or the attempt): DISCONNECTED if CONNECTED was delivered. */
static SsResult stream_drop(SsStream *s, bool failed, uint64_t min_delay_ms)
{
        SsResult r;

        uint32_t ack = s->drop_ack;

        stream_close_transport(s);
        stream_cancel_policy_timeout(s);
        s->phase = SS_PHASE_IDLE;
        s->drop_ack = 0;
        if (s->connected_delivered) {
                r = ss_stream_deliver_state(s, SS_STATE_DISCONNECTED, ack);
                if (r == SS_DESTROY_ME)
                        return r;
                if (r == SS_DISCONNECT_ME)
                        return SS_OK; /* no reconnection */
        }
        return stream_after_drop(s, failed, min_delay_ms);
}

SsResult ss_stream_transaction_done(SsStream *s, bool failed, uint64_t min_delay_ms)
{
        return stream_drop(s, failed, min_delay_ms);
}

static uint32_t transport_error_to_ack(TransportError e)
{
        switch (e) {
        case TRANSPORT_ERROR_NONE:
                return 0;
        case TRANSPORT_ERROR_DNS:
                return SS_ACK_DNS;
        case TRANSPORT_ERROR_REFUSED:
                return SS_ACK_REFUSED;
        case TRANSPORT_ERROR_TIMEOUT:
                return SS_ACK_TIMEOUT;
        case TRANSPORT_ERROR_TLS:
                return SS_ACK_TLS;
        case TRANSPORT_ERROR_TLS_VERIFY:
                return SS_ACK_TLS | SS_ACK_TLS_VERIFY;
        case TRANSPORT_ERROR_RESET:
        case TRANSPORT_ERROR_IO:
                return SS_ACK_RESET;
        }
        return 0;
}

/* A connection attempt failed: UNREACHABLE, then retry or give up. */
static SsResult stream_connect_failed(SsStream *s, uint32_t ack)
{
        SsResult r;

        s->drop_ack = 0;
        stream_close_transport(s);
        stream_cancel_policy_timeout(s);
        s->phase = SS_PHASE_IDLE;
        r = ss_stream_deliver_state(s, SS_STATE_UNREACHABLE, ack);
        if (r == SS_DESTROY_ME)
                return r;
        if (r == SS_DISCONNECT_ME) {
                s->tx_pending = false;
                return SS_OK;
        }
        return stream_backoff(s, 0);
}

static void on_transport_connected(Transport *t, void *userdata);
static void on_transport_readable(Transport *t, void *userdata);
static void on_transport_writable(Transport *t, void *userdata);
static void on_transport_failed(Transport *t, TransportError error, const char *detail,
                                void *userdata);

const TransportHandlers ss_stream_transport_handlers = {
    .connected = on_transport_connected,
    .readable = on_transport_readable,
    .writable = on_transport_writable,
    .failed = on_transport_failed,
};

static int stream_open_transport(SsStream *s, const char *host, uint16_t port, bool tls)
{
        TransportOptions opts = {
            .host = host,
            .port = port,
            .unix_socket = s->st->unix_socket,
            .tls = tls,
            .tls_context = tls && s->tls ? s->tls->tls : NULL,
            .alpn = tls ? s->proto->alpn : NULL,
            .family = s->family,
        };

        assert(!s->transport);
        return s->context->ops->transport_new(&s->transport, s->context->event,
                                              s->context->resolver, &opts,
                                              &ss_stream_transport_handlers, s);
}

int ss_stream_metadata_lookup(void *userdata, const char *name, const char **ret_value)
{
        SsStream *s = userdata;

        for (size_t i = 0; i < s->st->n_metadata; i++)
                if (streq(s->st->metadata[i].name, name)) {
                        *ret_value = s->metadata[i];
                        return 0;
                }
        return -ENOENT;
}

/*
 * The stream has a connection (new, or from the pool): CONNECTED, then the
 * request; for protocols with a handshake, the handshake (CONNECTED later).
 */
static SsResult stream_connected(SsStream *s)
{
        SsResult r;

        s->phase = SS_PHASE_CONNECTED;
        ss_stream_note_alive(s);
        if (s->proto->handshake)
                return s->proto->start(s);
        r = ss_stream_deliver_state(s, SS_STATE_CONNECTED, 0);
        if (r == SS_OK)
                r = s->proto->start(s);
        return r;
}

SsResult ss_stream_protocol_connected(SsStream *s)
{
        ss_stream_reset_retry(s);
        stream_cancel_policy_timeout(s);
        return ss_stream_deliver_state(s, SS_STATE_CONNECTED, 0);
}

SsResult ss_stream_handshake_failed(SsStream *s, uint32_t ack)
{
        return stream_connect_failed(s, ack);
}

static SsResult stream_connect(SsStream *s)
{
        _cleanup_free_ char *host = NULL;
        Transport *idle;
        SsResult r;
        bool tx_wanted;
        int k;

        assert(!s->transport);
        s->connect_wanted = false;
        timer_cancel(&s->retry_timer);

        r = ss_stream_deliver_state(s, SS_STATE_CONNECTING, 0);
        if (r == SS_DESTROY_ME)
                return r;
        if (r == SS_DISCONNECT_ME) {
                s->phase = SS_PHASE_IDLE;
                s->tx_pending = false;
                return SS_OK;
        }
        s->phase = SS_PHASE_CONNECTING;
        tx_wanted = s->tx_pending;
        s->tx_pending = false;

        if (s->st->timeout_ms > 0 && !timer_is_armed(&s->timeout_timer)) {
                if (scheduler_schedule_in(s->context->scheduler, &s->timeout_timer,
                                          TIMER_LIST_NORMAL,
                                          (uint64_t) s->st->timeout_ms * USEC_PER_MSEC) >= 0)
                        s->timeout_from_policy = true;
        }

        k = strexp_expand_string(strempty(s->st->endpoint), ss_stream_metadata_lookup, s, &host,
                                 NULL);
        if (k < 0 || !host[0])
                return stream_connect_failed(s, SS_ACK_CONFIG);

        k = s->proto->connection_new(s, host);
        if (k < 0)
                return stream_connect_failed(s, SS_ACK_CONFIG);
        if (tx_wanted && s->proto->tx_in_connection)
                s->proto->request_tx(s);

        /* A protocol sharing its connections (h2) joins one, up or being set up. */
        if (s->proto->attach) {
                k = s->proto->attach(s, host);
                if (k < 0)
                        return stream_connect_failed(s, SS_ACK_CONFIG);
                return k > 0 ? stream_connected(s) : SS_OK;
        }

        /* A pinned family: an idle connection may be over the other one. */
        idle = NULL;
        if (s->family == AF_UNSPEC && s->proto->is_reusable)
                idle = ss_pool_take(s->context, &(SsPoolKey){
                                                    .host = host,
                                                    .port = s->st->port,
                                                    .tls = s->st->tls,
                                                    .unix_socket = s->st->unix_socket,
                                                    .tls_entry = s->tls,
                                                });
        if (idle) {
                s->transport = idle;
                s->context->ops->transport_set_handlers(idle, &ss_stream_transport_handlers, s);
                s->proto->set_reused(s);
                return stream_connected(s);
        }

        k = stream_open_transport(s, host, s->st->port, s->st->tls);
        if (k < 0)
                return stream_connect_failed(s, SS_ACK_CONFIG);
        return SS_OK;
}

int ss_stream_replace_transport(SsStream *s, const char *host, uint16_t port, bool tls)
{
        if (s->transport)
                s->transport = s->context->ops->transport_free(s->transport);
        s->redirecting = true;
        return stream_open_transport(s, host, port, tls);
}

void ss_stream_note_alive(SsStream *s)
{
        const PolicyRetry *retry = s->retry;

        if (!retry || !s->transport)
                return;
        if (retry->valid_hangup_s > 0)
                (void) scheduler_schedule_in(s->context->scheduler, &s->validity_timer,
                                             ss_stream_timer_list(s),
                                             (uint64_t) retry->valid_hangup_s * USEC_PER_SEC);
        if (retry->valid_ping_s > 0 && s->proto->validity_ping)
                (void) scheduler_schedule_in(s->context->scheduler, &s->ping_timer,
                                             ss_stream_timer_list(s),
                                             (uint64_t) retry->valid_ping_s * USEC_PER_SEC);
}

void ss_stream_reset_retry(SsStream *s)
{
        s->retry_count = 0;
}

/* ---- entry points ---------------------------------------------------------------------- */

static void stream_destroy(SsStream *s);

/* Acts on a result at an event-loop entry point; s may be gone afterwards. */
static void stream_dispatch(SsStream *s, SsResult r)
{
        for (unsigned i = 0; i < 4; i++) {
                switch (r) {
                case SS_OK:
                case SS_TX_DONT_SEND:
                        return;
                case SS_DESTROY_ME:
                        stream_destroy(s);
                        return;
                case SS_DISCONNECT_ME:
                        if (!s->transport && s->phase != SS_PHASE_WAIT_RETRY) {
                                /* Nothing to drop: stop any connection plans. */
                                s->connect_wanted = false;
                                s->tx_pending = false;
                                return;
                        }
                        if (s->phase == SS_PHASE_WAIT_RETRY) {
                                timer_cancel(&s->retry_timer);
                                s->phase = SS_PHASE_IDLE;
                                return;
                        }
                        r = stream_drop(s, false, 0);
                        if (r == SS_DISCONNECT_ME)
                                r = SS_OK;
                        break;
                }
        }
}

void ss_stream_dispatch(SsStream *s, SsResult r)
{
        stream_dispatch(s, r);
}

void ss_stream_test_dispatch(SsStream *s, SsResult r)
{
        stream_dispatch(s, r);
}

static void on_transport_connected(Transport *t, void *userdata)
{
        SsStream *s = userdata;

        if (s->redirecting) {
                s->redirecting = false;
                ss_stream_note_alive(s);
                stream_dispatch(s, s->proto->start(s));
                return;
        }
        stream_dispatch(s, stream_connected(s));
}

static void on_transport_readable(Transport *t, void *userdata)
{
        SsStream *s = userdata;

        stream_dispatch(s, s->proto->on_readable(s));
}

static void on_transport_writable(Transport *t, void *userdata)
{
        SsStream *s = userdata;

        stream_dispatch(s, s->proto->on_writable(s));
}

static void on_transport_failed(Transport *t, TransportError error, const char *detail,
                                void *userdata)
{
        SsStream *s = userdata;

        if (s->phase == SS_PHASE_CONNECTING)
                stream_dispatch(s, stream_connect_failed(s, transport_error_to_ack(error)));
        else
                stream_dispatch(s, stream_drop(s, true, 0));
}

static int on_context_work(sd_event_source *source, void *userdata)
{
        SsContext *c = userdata;
        /* Those queued now: streams queued by their callbacks wait for the next round. */
        size_t n = c->n_work;
        SsStream *s;

        while (n-- > 0 && (s = c->work_head)) {
                work_unqueue(s);
                if (s->connect_wanted && s->phase == SS_PHASE_IDLE)
                        stream_dispatch(s, stream_connect(s));
        }
        if (c->work_head)
                (void) sd_event_source_set_enabled(c->work_source, SD_EVENT_ONESHOT);
        return 0;
}

static void on_work_timer(Timer *t, void *userdata)
{
        SsStream *s = userdata;

        if (!s->connect_wanted || s->phase != SS_PHASE_IDLE)
                return;
        stream_dispatch(s, stream_connect(s));
}

static void on_retry_timer(Timer *t, void *userdata)
{
        SsStream *s = userdata;

        if (s->phase != SS_PHASE_WAIT_RETRY)
                return;
        s->phase = SS_PHASE_IDLE;
        stream_dispatch(s, stream_connect(s));
}

static void on_timeout_timer(Timer *t, void *userdata)
{
        SsStream *s = userdata;
        bool connection = s->transport != NULL;
        SsResult r;

        s->timeout_from_policy = false;
        r = ss_stream_deliver_state(s, SS_STATE_TIMEOUT, 0);
        if (r == SS_DESTROY_ME || !connection || !s->transport) {
                stream_dispatch(s, r);
                return;
        }
        /* The transaction took too long: give up on this connection. */
        stream_dispatch(s, stream_drop(s, false, 0));
}

static void on_validity_timer(Timer *t, void *userdata)
{
        SsStream *s = userdata;

        /* Nothing arrived for svalidhup seconds: the connection is dead. */
        stream_dispatch(s, stream_drop(s, true, 0));
}

unsigned ss_context_check_connections(SsContext *c)
{
        unsigned n = 0;

        assert(c);
        ss_context_drop_idle_connections(c);
        for (SsStream *s = c->streams; s; s = s->next) {
                const PolicyRetry *retry = s->retry;
                uint64_t bound;

                if (!retry || retry->valid_ping_s == 0 || !s->proto->validity_ping ||
                    !s->transport || s->phase != SS_PHASE_CONNECTED)
                        continue;
                /* The ping timer's callback sends it, from the loop: never from here. */
                (void) scheduler_schedule_in(c->scheduler, &s->ping_timer, ss_stream_timer_list(s),
                                             0);
                if (retry->valid_hangup_s > 0) {
                        bound = retry->valid_hangup_s > retry->valid_ping_s
                                    ? retry->valid_hangup_s - retry->valid_ping_s
                                    : 1;
                        (void) scheduler_schedule_in(c->scheduler, &s->validity_timer,
                                                     ss_stream_timer_list(s), bound * USEC_PER_SEC);
                }
                n++;
        }
        return n;
}

static void on_ping_timer(Timer *t, void *userdata)
{
        SsStream *s = userdata;

        /* Nothing arrived for svalidping seconds: ask for a sign of life. */
        if (s->transport && s->phase == SS_PHASE_CONNECTED && s->proto->validity_ping)
                stream_dispatch(s, s->proto->validity_ping(s));
}

/* ---- streams --------------------------------------------------------------------------- */

static void stream_unlink(SsStream *s)
{
        SsContext *c = s->context;

        if (s->prev)
                s->prev->next = s->next;
        else if (c->streams == s)
                c->streams = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->prev = s->next = NULL;
        c->n_streams--;
}

static void stream_destroy(SsStream *s)
{
        assert(s->in_callback == 0);
        s->freeing = true;
        ss_server_stream_destroy(s);

        stream_close_transport(s);
        if (s->creating_delivered) {
                if (s->connected_delivered &&
                    ss_state_transition_is_valid(s->state, SS_STATE_DISCONNECTED))
                        (void) ss_stream_deliver_state(s, SS_STATE_DISCONNECTED, 0);
                (void) ss_stream_deliver_state(s, SS_STATE_DESTROYING, 0);
        }

        /* After the callbacks: they may have armed timers. */
        timer_cancel(&s->work_timer);
        work_unqueue(s);
        timer_cancel(&s->retry_timer);
        timer_cancel(&s->timeout_timer);
        timer_cancel(&s->validity_timer);
        timer_cancel(&s->ping_timer);
        stream_close_transport(s);

        tls_entry_release(s->context, s->tls);
        stream_unlink(s);
        for (size_t i = 0; i < s->st->n_metadata; i++)
                free(s->metadata_buf[i]);
        free(s->metadata);
        policy_unref(s->policy); /* s->st and s->retry point into it */
        free(s);
}

SsStream *ss_stream_free(SsStream *s)
{
        if (!s)
                return NULL;
        if (s->freeing)
                return NULL;
        if (s->in_callback > 0) {
                s->destroy_requested = true;
                return NULL;
        }
        stream_destroy(s);
        return NULL;
}

/*
 * A stream of st (in policy): a client stream, a server stream (it listens),
 * or with conn one accepted connection of a server stream.
 */
static int stream_create(SsStream **ret, SsContext *c, Policy *policy, const PolicyStreamtype *st,
                         const SsStreamHandlers *handlers, void *userdata, SsServerConn *conn)
{
        const SsProtocolOps *proto;
        SsStream *s;
        SsResult r;
        int k;

        if (st->server)
                proto = st->protocol == POLICY_PROTOCOL_H1 ? &ss_protocol_h1 : NULL;
        else
                proto = ss_protocol_find(st->protocol);
        if (!proto)
                return -EPROTONOSUPPORT;
        if (proto->load) {
                k = proto->load(st);
                if (k < 0)
                        return k;
        }

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->context = c;
        s->id = ++c->next_id;
        s->st = st;
        s->retry = policy_streamtype_retry(policy, st);
        s->server_conn = conn;
        s->proto = proto;
        s->userdata = userdata;
        if (handlers) {
                s->rx = handlers->rx;
                s->tx = handlers->tx;
                s->state_cb = handlers->state;
        }
        timer_init(&s->work_timer, on_work_timer, s);
        timer_init(&s->retry_timer, on_retry_timer, s);
        timer_init(&s->timeout_timer, on_timeout_timer, s);
        timer_init(&s->validity_timer, on_validity_timer, s);
        timer_init(&s->ping_timer, on_ping_timer, s);

        if (st->n_metadata > 0) {
                size_t n = st->n_metadata;

                s->metadata = calloc(n, 2 * sizeof(char *) + 2 * sizeof(size_t));
                if (!s->metadata) {
                        free(s);
                        return -ENOMEM;
                }
                s->metadata_buf = s->metadata + n;
                s->metadata_len = (size_t *) (s->metadata_buf + n);
                s->metadata_cap = s->metadata_len + n;
        }

        if (st->tls && !st->unix_socket && !st->server) {
                k = tls_entry_acquire(c, st->tls_trust_store, &s->tls);
                if (k < 0) {
                        free(s->metadata);
                        free(s);
                        return k;
                }
        }

        s->policy = policy_ref(policy);
        s->next = c->streams;
        if (c->streams)
                c->streams->prev = s;
        c->streams = s;
        c->n_streams++;

        r = ss_stream_deliver_state(s, SS_STATE_CREATING, 0);
        if (r == SS_DESTROY_ME) {
                stream_destroy(s);
                return -ECANCELED;
        }
        if (st->server && !conn) {
                k = ss_server_start(s);
                if (k < 0) {
                        stream_destroy(s);
                        return k;
                }
        } else if (st->nailed_up && !st->server && r != SS_DISCONNECT_ME)
                stream_defer_connect(s);
        *ret = s;
        return 0;
}

int ss_stream_new(SsStream **ret, SsContext *c, const char *streamtype,
                  const SsStreamHandlers *handlers, void *userdata)
{
        const PolicyStreamtype *st;

        assert(ret);
        assert(c);
        assert(streamtype);

        st = policy_find_streamtype(c->policy, streamtype);
        if (!st)
                return -ENOENT;
        return stream_create(ret, c, c->policy, st, handlers, userdata, NULL);
}

int ss_stream_new_accepted(SsStream **ret, SsStream *server, SsServerConn *conn)
{
        SsStreamHandlers handlers = {
            .rx = server->rx,
            .tx = server->tx,
            .state = server->state_cb,
        };

        return stream_create(ret, server->context, server->policy, server->st, &handlers,
                             server->userdata, conn);
}

int ss_stream_set_address_family(SsStream *s, int family)
{
        assert(s);
        if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        s->family = family;
        return 0;
}

int ss_stream_request_tx(SsStream *s)
{
        assert(s);
        if (s->freeing)
                return -ESTALE;
        if (s->st->server)
                return ss_server_request_tx(s);
        switch (s->phase) {
        case SS_PHASE_IDLE:
                s->tx_pending = true;
                if (!s->connect_wanted)
                        stream_defer_connect(s);
                return 0;
        case SS_PHASE_WAIT_RETRY:
                s->tx_pending = true;
                return 0;
        case SS_PHASE_CONNECTING:
                if (s->proto->tx_in_connection)
                        s->proto->request_tx(s);
                else
                        s->tx_pending = true;
                return 0;
        case SS_PHASE_CONNECTED:
                s->proto->request_tx(s);
                return 0;
        }
        return 0;
}

int ss_stream_request_tx_len(SsStream *s, uint64_t len)
{
        assert(s);
        if (s->freeing)
                return -ESTALE;
        s->has_tx_len = true;
        s->tx_len = len;
        return ss_stream_request_tx(s);
}

int ss_stream_client_connect(SsStream *s)
{
        assert(s);
        if (s->freeing)
                return -ESTALE;
        s->retry_count = 0;
        switch (s->phase) {
        case SS_PHASE_WAIT_RETRY:
                timer_cancel(&s->retry_timer);
                s->phase = SS_PHASE_IDLE;
                __attribute__((fallthrough));
        case SS_PHASE_IDLE:
                stream_defer_connect(s);
                return 0;
        case SS_PHASE_CONNECTING:
        case SS_PHASE_CONNECTED:
                return 0;
        }
        return 0;
}

int ss_stream_set_metadata_at(SsStream *s, size_t i, const void *value, size_t len)
{
        const uint8_t *v = value;

        assert(s);
        assert(i < s->st->n_metadata);
        if (!value) {
                s->metadata[i] = NULL;
                s->metadata_len[i] = 0;
                return 0;
        }
        if (len > SS_METADATA_VALUE_MAX)
                return -E2BIG;
        for (size_t k = 0; k < len; k++) /* one pass: values are short */
                if (v[k] == '\r' || v[k] == '\n' || v[k] == '\0')
                        return -EINVAL;
        if (s->metadata_cap[i] < len + 1) {
                size_t cap = MAX(len + 1, (size_t) 32);
                char *buf = malloc(cap);

                if (!buf)
                        return -ENOMEM;
                free(s->metadata_buf[i]);
                s->metadata_buf[i] = buf;
                s->metadata_cap[i] = cap;
        }
        memcpy(s->metadata_buf[i], value, len);
        s->metadata_buf[i][len] = 0;
        s->metadata[i] = s->metadata_buf[i];
        s->metadata_len[i] = len;
        return 0;
}

void ss_stream_clear_metadata(SsStream *s)
{
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                s->metadata[i] = NULL;
                s->metadata_len[i] = 0;
        }
}

int ss_stream_set_metadata(SsStream *s, const char *name, const void *value, size_t len)
{
        assert(s);
        assert(name);
        if (len > SS_METADATA_VALUE_MAX)
                return -E2BIG;
        for (size_t i = 0; i < s->st->n_metadata; i++) {
                const char *n = s->st->metadata[i].name;

                if (n[0] != name[0] || !streq(n, name)) /* per request: no call per entry */
                        continue;
                return ss_stream_set_metadata_at(s, i, value, len);
        }
        return -ENOENT;
}

int ss_stream_get_metadata(SsStream *s, const char *name, const char **ret_value, size_t *ret_len)
{
        assert(s);
        assert(name);
        for (size_t i = 0; i < s->st->n_metadata; i++)
                if (streq(s->st->metadata[i].name, name)) {
                        if (ret_value)
                                *ret_value = s->metadata[i];
                        if (ret_len)
                                *ret_len = s->metadata_len[i];
                        return 0;
                }
        return -ENOENT;
}

int ss_stream_start_timeout(SsStream *s, uint32_t timeout_ms)
{
        int r;

        assert(s);
        if (s->freeing)
                return -ESTALE;
        if (timeout_ms == 0)
                timeout_ms = s->st->timeout_ms;
        if (timeout_ms == 0)
                return -EINVAL;
        r = scheduler_schedule_in(s->context->scheduler, &s->timeout_timer, TIMER_LIST_NORMAL,
                                  (uint64_t) timeout_ms * USEC_PER_MSEC);
        if (r < 0)
                return r;
        s->timeout_from_policy = false;
        return 0;
}

void ss_stream_cancel_timeout(SsStream *s)
{
        assert(s);
        timer_cancel(&s->timeout_timer);
        s->timeout_from_policy = false;
}

void ss_stream_change_handlers(SsStream *s, SsRxCallback rx, SsTxCallback tx, SsStateCallback state)
{
        assert(s);
        if (rx)
                s->rx = rx;
        if (tx)
                s->tx = tx;
        if (state)
                s->state_cb = state;
}

void ss_stream_pause_rx(SsStream *s, bool pause)
{
        assert(s);
        if (s->rx_paused == pause)
                return;
        s->rx_paused = pause;
        /* Pausing takes effect at the protocol's next read (a transport is never parked paused). */
        if (!pause && s->transport && s->context->ops->transport_pause_read)
                s->context->ops->transport_pause_read(s->transport, false);
        if (!pause && s->transport && s->proto && s->proto->resume_rx)
                s->proto->resume_rx(s);
}

int64_t ss_stream_tx_credit(SsStream *s)
{
        assert(s);
        if (s->freeing || !s->proto || !s->proto->tx_credit)
                return -1;
        return s->proto->tx_credit(s);
}

SsContext *ss_stream_get_context(SsStream *s)
{
        return s->context;
}

void *ss_stream_get_userdata(SsStream *s)
{
        return s->userdata;
}

const char *ss_stream_get_streamtype(SsStream *s)
{
        return s->st->name;
}

SsState ss_stream_get_state(SsStream *s)
{
        return s->state;
}

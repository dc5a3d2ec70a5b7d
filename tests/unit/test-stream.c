/* SPDX-License-Identifier: MIT */
/*
 * The stream state machine on a fake clock and a scripted transport (a test
 * double standing in for the connection layer: it records what the stream
 * writes and plays back what a server would answer). Checks the states in
 * order, the bytes of requests, retry delays, the synthesised cleanup states,
 * every callback return code from every callback kind, the trust-store cache
 * and the illegal-transition hook; then the keep-alive pool (reuse, what is
 * not reused, idle timeout, bounds, dead connections). The same code against
 * real peers is in tests/integration/test-ss-h1.c and test-ss-h1-reuse.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream-internal.h"
#include "tap.h"

/* ---- fake clock ------------------------------------------------------------------------ */

static uint64_t now_us = 1000000;

static uint64_t fake_clock(clockid_t clock, void *userdata)
{
        return now_us;
}

static SsContext *ctx;

/* Advances the clock to now + ms, running what is due on the way (ms steps). */
static void advance(uint64_t ms)
{
        Scheduler *sch = ss_context_get_scheduler(ctx);
        uint64_t end = now_us + ms * 1000;

        for (;;) {
                uint64_t next = MIN(scheduler_earliest(sch, TIMER_LIST_NORMAL),
                                    scheduler_earliest(sch, TIMER_LIST_WAKE));

                if (next > end)
                        break;
                if (next > now_us)
                        now_us = next;
                (void) scheduler_run_due(sch, TIMER_LIST_NORMAL, now_us);
                (void) scheduler_run_due(sch, TIMER_LIST_WAKE, now_us);
        }
        now_us = end;
}

/* ---- fake transport -------------------------------------------------------------------- */

typedef struct Fake {
        TransportHandlers handlers;
        void *userdata;
        char host[256];
        uint16_t port;
        bool tls;
        TlsContext *tls_context;
        char written[1 << 16];
        size_t written_len;
        char in[1 << 16];
        size_t in_len, in_off;
        bool eof;
        bool want_write;
        size_t write_limit; /* 0: unlimited; else bytes accepted per write */
        int write_errno;    /* writes fail with it (a reset connection) */
} Fake;

static Fake *fake;         /* the live one, NULL when freed */
static unsigned n_created; /* transports created */
static unsigned n_live;
static unsigned n_tls_live;

static int fake_new(Transport **ret, sd_event *event, Resolver *resolver,
                    const TransportOptions *options, const TransportHandlers *handlers,
                    void *userdata)
{
        Fake *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        f->handlers = *handlers;
        f->userdata = userdata;
        snprintf(f->host, sizeof(f->host), "%s", options->host);
        f->port = options->port;
        f->tls = options->tls;
        f->tls_context = options->tls_context;
        fake = f;
        n_created++;
        n_live++;
        *ret = (Transport *) f;
        return 0;
}

static Transport *fake_free(Transport *t)
{
        Fake *f = (Fake *) t;

        if (!f)
                return NULL;
        if (fake == f)
                fake = NULL;
        n_live--;
        free(f);
        return NULL;
}

static ssize_t fake_read(Transport *t, void *buf, size_t size)
{
        Fake *f = (Fake *) t;
        size_t n = MIN(size, f->in_len - f->in_off);

        if (n == 0)
                return f->eof ? 0 : -EAGAIN;
        memcpy(buf, f->in + f->in_off, n);
        f->in_off += n;
        return (ssize_t) n;
}

static ssize_t fake_write(Transport *t, const void *buf, size_t size)
{
        Fake *f = (Fake *) t;
        size_t n = MIN(size, sizeof(f->written) - f->written_len);

        if (f->write_errno)
                return -f->write_errno;
        if (f->write_limit)
                n = MIN(n, f->write_limit);
        if (n == 0)
                return -EAGAIN;
        memcpy(f->written + f->written_len, buf, n);
        f->written_len += n;
        return (ssize_t) n;
}

static void fake_want_write(Transport *t, bool want)
{
        ((Fake *) t)->want_write = want;
}

static void fake_set_handlers(Transport *t, const TransportHandlers *handlers, void *userdata)
{
        Fake *f = (Fake *) t;

        f->handlers = *handlers;
        f->userdata = userdata;
        f->want_write = false;
}

typedef struct FakeTls {
        unsigned n_certs;
        bool pem;
} FakeTls;

static unsigned last_tls_n_certs;
static bool last_tls_pem;

static int fake_tls_new(TlsContext **ret, const TlsCertificate *certs, size_t n_certs)
{
        FakeTls *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        last_tls_n_certs = (unsigned) n_certs;
        last_tls_pem = n_certs > 0 && certs[0].pem && certs[0].size > 0;
        n_tls_live++;
        *ret = (TlsContext *) t;
        return 0;
}

static TlsContext *fake_tls_unref(TlsContext *c)
{
        if (c) {
                n_tls_live--;
                free(c);
        }
        return NULL;
}

static const SsTransportOps fake_ops = {
    .transport_new = fake_new,
    .transport_free = fake_free,
    .transport_read = fake_read,
    .transport_write = fake_write,
    .transport_want_write = fake_want_write,
    .transport_set_handlers = fake_set_handlers,
    .tls_context_new = fake_tls_new,
    .tls_context_unref = fake_tls_unref,
};

static void fake_connected(void)
{
        Fake *f = fake;

        if (f)
                f->handlers.connected((Transport *) f, f->userdata);
}

static void fake_fail(TransportError e)
{
        Fake *f = fake;

        if (f)
                f->handlers.failed((Transport *) f, e, "test", f->userdata);
}

static void fake_respond(const char *data, bool eof)
{
        Fake *f = fake;
        size_t n = strlen(data);

        if (!f)
                return;
        memcpy(f->in + f->in_len, data, n);
        f->in_len += n;
        f->eof = eof;
        f->handlers.readable((Transport *) f, f->userdata);
}

static void fake_writable(void)
{
        Fake *f = fake;

        if (f)
                f->handlers.writable((Transport *) f, f->userdata);
}

/* ---- a recording user ------------------------------------------------------------------ */

typedef struct Rec {
        char states[1024];
        uint32_t last_ack;
        uint32_t acks[_SS_STATE_MAX];
        uint64_t when[_SS_STATE_MAX][8]; /* times a state was delivered (µs) */
        unsigned count[_SS_STATE_MAX];
        SsResult on_state[_SS_STATE_MAX];
        bool free_in_state[_SS_STATE_MAX]; /* ss_stream_free() from inside the callback */
        char body[4096];
        size_t body_len;
        unsigned n_som, n_eom, n_rx;
        SsResult on_rx;
        /* tx script */
        const char *tx_data;
        size_t tx_off;
        size_t tx_piece;
        SsResult on_tx;
        unsigned n_tx;
        bool destroyed;
        SsStream *s;
} Rec;

static void rec_reset(Rec *r)
{
        *r = (Rec){};
}

static SsResult rec_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Rec *r = userdata;
        size_t n = strlen(r->states);

        snprintf(r->states + n, sizeof(r->states) - n, "%s%s", n ? " " : "",
                 ss_state_to_string(state));
        r->last_ack = ack;
        if (state > 0 && state < _SS_STATE_MAX) {
                r->acks[state] = ack;
                if (r->count[state] < 8)
                        r->when[state][r->count[state]] = now_us;
                r->count[state]++;
                if (state == SS_STATE_DESTROYING)
                        r->destroyed = true;
                if (r->free_in_state[state])
                        (void) ss_stream_free(s);
                return r->on_state[state];
        }
        return SS_OK;
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;

        r->n_rx++;
        if (flags & SS_FLAG_SOM)
                r->n_som++;
        if (flags & SS_FLAG_EOM)
                r->n_eom++;
        if (r->body_len + len <= sizeof(r->body)) {
                memcpy(r->body + r->body_len, buf, len);
                r->body_len += len;
        }
        return r->on_rx;
}

static SsResult rec_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Rec *r = userdata;
        size_t left, n;

        r->n_tx++;
        if (r->on_tx != SS_OK)
                return r->on_tx;
        left = strlen(r->tx_data) - r->tx_off;
        n = MIN(MIN(left, *len), r->tx_piece ? r->tx_piece : SIZE_MAX);
        memcpy(buf, r->tx_data + r->tx_off, n);
        r->tx_off += n;
        *len = n;
        *flags = r->tx_off == strlen(r->tx_data) ? SS_FLAG_EOM : 0;
        return SS_OK;
}

static const SsStreamHandlers rec_handlers = {
    .rx = rec_rx,
    .tx = rec_tx,
    .state = rec_state,
};

static SsStream *open_stream(const char *type, Rec *r)
{
        SsStream *s = NULL;
        int k;

        k = ss_stream_new(&s, ctx, type, &rec_handlers, r);
        if (k < 0) {
                is_int(k, 0, "ss_stream_new(%s)", type);
                return NULL;
        }
        r->s = s;
        return s;
}

/* ---- the policy ------------------------------------------------------------------------ */

static char cert_path[] = "/tmp/test-stream-ca-XXXXXX";

static const char policy_fmt[] =
    "{\"release\":\"1\",\"product\":\"t\",\"schema-version\":1,"
    "\"retry\":[{\"fast\":{\"backoff\":[100,200,400],\"conceal\":2,\"jitterpc\":0,"
    "\"svalidhup\":2}},"
    "{\"jit\":{\"backoff\":[1000],\"conceal\":20,\"jitterpc\":30}},"
    "{\"once\":{\"backoff\":[100],\"conceal\":1}}],"
    "\"certs\":[{\"ca1\":\"file:%s\"}],"
    "\"trust_stores\":[{\"name\":\"ts1\",\"stack\":[\"ca1\"]}],"
    "\"s\":["
    "{\"get\":{\"endpoint\":\"example.com\",\"port\":8080,\"protocol\":\"h1\","
    "\"http_url\":\"path/${id}\",\"retry\":\"fast\","
    "\"metadata\":[{\"id\":\"\"},{\"token\":\"X-Token:\"},{\"ctype\":\"content-type:\"}]}},"
    "{\"post\":{\"endpoint\":\"example.com\",\"port\":80,\"protocol\":\"h1\","
    "\"http_method\":\"POST\",\"http_url\":\"up\",\"retry\":\"fast\"}},"
    "{\"nailed\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"fast\","
    "\"nailed_up\":true}},"
    "{\"opp\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"fast\","
    "\"opportunistic\":true}},"
    "{\"tmo\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"fast\","
    "\"timeout_ms\":500}},"
    "{\"redir\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"fast\","
    "\"allow_redirects\":true}},"
    "{\"jit\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"jit\"}},"
    "{\"wake\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"retry\":\"once\","
    "\"swake_validity\":true}},"
    "{\"noretry\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\"}},"
    "{\"tls1\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"tls\":true,"
    "\"tls_trust_store\":\"ts1\"}},"
    "{\"tls2\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"tls\":true,"
    "\"tls_trust_store\":\"ts1\"}},"
    "{\"sys\":{\"endpoint\":\"example.com\",\"protocol\":\"h1\",\"tls\":true}},"
    "{\"rawst\":{\"endpoint\":\"example.com\",\"port\":1234,\"protocol\":\"raw\"}}"
    "]}";

static Policy *make_policy(void)
{
        PolicyErrors errors = {};
        Policy *p = policy_new();
        char *json = NULL;
        int fd, r;

        fd = mkstemp(cert_path);
        if (fd >= 0) {
                static const char pem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                          "-----END CERTIFICATE-----\n";
                (void) !write(fd, pem, sizeof(pem) - 1);
                close(fd);
        }
        if (asprintf(&json, policy_fmt, cert_path) < 0)
                return NULL;
        r = policy_add_buffer(p, "test", json, strlen(json), &errors);
        for (size_t i = 0; i < errors.n_messages; i++)
                tap_diag("%s", errors.messages[i]);
        policy_errors_clear(&errors);
        free(json);
        if (r < 0) {
                policy_free(p);
                return NULL;
        }
        return p;
}

/* ---- tests ----------------------------------------------------------------------------- */

static unsigned illegal_seen;
static SsState illegal_from, illegal_to;

static void on_illegal(SsStream *s, SsState from, SsState to, void *userdata)
{
        illegal_seen++;
        illegal_from = from;
        illegal_to = to;
}

static void test_table(void)
{
        ok(ss_state_transition_is_valid(0, SS_STATE_CREATING), "nothing -> CREATING");
        ok(ss_state_transition_is_valid(0, SS_STATE_DESTROYING), "nothing -> DESTROYING");
        ok(!ss_state_transition_is_valid(0, SS_STATE_CONNECTING), "nothing -> CONNECTING is not");
        ok(ss_state_transition_is_valid(SS_STATE_CONNECTED, SS_STATE_QOS_ACK_REMOTE),
           "CONNECTED -> QOS_ACK_REMOTE");
        ok(!ss_state_transition_is_valid(SS_STATE_DISCONNECTED, SS_STATE_ALL_RETRIES_FAILED),
           "DISCONNECTED -> ALL_RETRIES_FAILED is not");
        ok(!ss_state_transition_is_valid(SS_STATE_DESTROYING, SS_STATE_DESTROYING),
           "nothing after DESTROYING");
        ok(!ss_state_transition_is_valid(SS_STATE_QOS_ACK_REMOTE, SS_STATE_CONNECTING),
           "QOS_ACK_REMOTE -> CONNECTING needs DISCONNECTED first");
        ok(ss_state_transition_is_valid(SS_STATE_CREATING, SS_STATE_USER_BASE + 3),
           "user states always pass");
        ok(ss_state_transition_is_valid(SS_STATE_CONNECTED, SS_STATE_EVENT_WAIT_CANCELLED),
           "EVENT_WAIT_CANCELLED passes");
        is_str(ss_state_to_string(SS_STATE_ALL_RETRIES_FAILED), "ALL_RETRIES_FAILED", "names");
        is_int(SS_STATE_UPSTREAM_LINK_RETRY, 18, "upstream numbering");
}

static void test_create_destroy(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        is_int(ss_stream_new(&s, ctx, "nope", &rec_handlers, &r), -ENOENT, "unknown streamtype");
        is_str(r.states, "", "no states at all for a stream never created");
        is_int(ss_stream_new(&s, ctx, "rawst", &rec_handlers, &r), -EPROTONOSUPPORT,
               "raw has no client protocol");

        s = open_stream("get", &r);
        is_str(r.states, "CREATING", "CREATING delivered by ss_stream_new");
        advance(10000);
        is_int(n_created, 0, "a plain stream does not connect by itself");
        ss_stream_free(s);
        is_str(r.states, "CREATING DESTROYING", "destroy of an idle stream: only DESTROYING");
        is_int(ss_context_n_streams(ctx), 0, "gone from the context");

        rec_reset(&r);
        r.on_state[SS_STATE_CREATING] = SS_DESTROY_ME;
        is_int(ss_stream_new(&s, ctx, "get", &rec_handlers, &r), -ECANCELED,
               "CREATING returning DESTROY_ME fails the creation");
        is_str(r.states, "CREATING DESTROYING", "and it got DESTROYING");

        rec_reset(&r);
        r.free_in_state[SS_STATE_CREATING] = true;
        is_int(ss_stream_new(&s, ctx, "get", &rec_handlers, &r), -ECANCELED,
               "ss_stream_free() inside CREATING is DESTROY_ME");
        is_str(r.states, "CREATING DESTROYING", "destroyed after the callback returned");

        /* NULL handlers and userdata. */
        is_int(ss_stream_new(&s, ctx, "get", NULL, NULL), 0, "NULL handlers are fine");
        ss_stream_client_connect(s);
        advance(1);
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        is_int(n_live, 0, "transaction done without callbacks");
        ss_stream_free(s);
}

static void test_get(void)
{
        Rec r;
        SsStream *s;
        const char *v = NULL;
        size_t vlen = 0;

        rec_reset(&r);
        n_created = 0;
        s = open_stream("get", &r);
        is_int(ss_stream_set_metadata(s, "id", "42", 2), 0, "set id");
        is_int(ss_stream_set_metadata(s, "token", "secret", 6), 0, "set token");
        is_int(ss_stream_set_metadata(s, "nope", "x", 1), -ENOENT, "unknown metadata");
        is_int(ss_stream_set_metadata(s, "id", "a\r\nb", 4), -EINVAL, "CR LF rejected");
        {
                char *big = calloc(1, SS_METADATA_VALUE_MAX + 1);
                memset(big, 'x', SS_METADATA_VALUE_MAX + 1);
                is_int(ss_stream_set_metadata(s, "id", big, SS_METADATA_VALUE_MAX + 1), -E2BIG,
                       "metadata bounded");
                free(big);
        }
        is_int(ss_stream_client_connect(s), 0, "client_connect");
        is_str(r.states, "CREATING", "no callback from inside client_connect");
        advance(0);
        is_str(r.states, "CREATING CONNECTING", "CONNECTING from the loop");
        ok(fake && streq(fake->host, "example.com") && fake->port == 8080, "endpoint and port");
        fake_connected();
        is_str(r.states, "CREATING CONNECTING CONNECTED", "CONNECTED");
        if (fake) {
                fake->written[fake->written_len] = 0;
                is_str(fake->written,
                       "GET /path/42 HTTP/1.1\r\nHost: example.com:8080\r\nX-Token: secret\r\n\r\n",
                       "request line, Host, metadata header");
        }
        fake_respond("HTTP/1.1 200 OK\r\nContent-Type: text/x-test\r\nContent-Length: 11\r\n\r\n"
                     "hello",
                     false);
        is_int(r.n_som, 1, "SOM on the first piece");
        is_int(r.n_eom, 0, "no EOM yet");
        fake_respond(" world", false);
        is_mem(r.body, r.body_len, "hello world", 11, "body bytes");
        is_int(r.n_som, 1, "SOM once");
        is_int(r.n_eom, 1, "EOM once");
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "ACK then DISCONNECTED");
        is_int(r.acks[SS_STATE_QOS_ACK_REMOTE], 200, "ack is the status");
        is_int(n_live, 0, "the connection is closed after the transaction");
        is_int(ss_stream_get_metadata(s, "ctype", &v, &vlen), 0, "response header metadata");
        is_str(v, "text/x-test", "content-type mapped back");
        advance(10000);
        is_int(n_created, 1, "no reconnection without something to send");
        ss_stream_free(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED DESTROYING",
               "no second DISCONNECTED");
}

static void test_chunked_and_nack(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                     false);
        fake_respond("2\r\nde\r\n", false);
        is_int(r.n_eom, 0, "chunked: no EOM before the end is known");
        fake_respond("0\r\n\r\n", false);
        is_mem(r.body, r.body_len, "abcde", 5, "chunked body");
        is_int(r.n_som, 1, "SOM once");
        is_int(r.n_eom, 1, "EOM once");
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_NACK_REMOTE DISCONNECTED",
               "404 is a NACK");
        is_int(r.acks[SS_STATE_QOS_NACK_REMOTE], 404, "NACK ack is the status");
        advance(10000);
        is_int(r.count[SS_STATE_CONNECTING], 1, "a 404 is not retried");
        ss_stream_free(s);

        /* Close-delimited body and 204. */
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\n\r\nuntil", false);
        fake_respond(" close", true);
        is_mem(r.body, r.body_len, "until close", 11, "close-delimited body");
        is_int(r.n_eom, 1, "EOM at close");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "ACK");
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 204 No Content\r\n\r\n", false);
        is_int(r.n_rx, 2, "no rx for an empty body");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 2, "204 is an ACK");
        ss_stream_free(s);
}

static void test_retry(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        n_created = 0;
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        is_str(r.states, "CREATING CONNECTING UNREACHABLE", "refused: UNREACHABLE");
        is_int(r.acks[SS_STATE_UNREACHABLE], SS_ACK_REFUSED, "ack says refused");
        advance(99);
        is_int(n_created, 1, "no retry before the first delay");
        advance(1);
        is_int(n_created, 2, "retry at 100 ms");
        fake_fail(TRANSPORT_ERROR_DNS);
        is_int(r.acks[SS_STATE_UNREACHABLE], SS_ACK_DNS, "DNS flag");
        advance(199);
        is_int(n_created, 2, "no retry before the second delay");
        advance(1);
        is_int(n_created, 3, "retry at 200 ms");
        fake_fail(TRANSPORT_ERROR_REFUSED);
        is_str(r.states,
               "CREATING CONNECTING UNREACHABLE CONNECTING UNREACHABLE CONNECTING UNREACHABLE "
               "ALL_RETRIES_FAILED",
               "conceal 2: two retries, then ALL_RETRIES_FAILED");
        advance(60000);
        is_int(n_created, 3, "idle after ALL_RETRIES_FAILED");

        /* request_tx on an idle stream connects without resetting the retry count. */
        ss_stream_request_tx(s);
        advance(0);
        is_int(n_created, 4, "request_tx connects");
        fake_fail(TRANSPORT_ERROR_REFUSED);
        is_int(r.count[SS_STATE_ALL_RETRIES_FAILED], 2,
               "no retries left: at once ALL_RETRIES_FAILED");
        advance(60000);
        is_int(n_created, 4, "still idle");

        /* client_connect resets it. */
        ss_stream_client_connect(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        is_int(r.count[SS_STATE_ALL_RETRIES_FAILED], 2, "retries again after client_connect");
        advance(100);
        is_int(n_created, 6, "first delay again");
        /* A working connection resets it too. */
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        ss_stream_request_tx(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        advance(100);
        is_int(n_created, 8, "after a success the next failure waits the first delay");
        fake_fail(TRANSPORT_ERROR_TLS_VERIFY);
        is_int(r.acks[SS_STATE_UNREACHABLE], SS_ACK_TLS | SS_ACK_TLS_VERIFY, "certificate flags");
        advance(200);
        fake_fail(TRANSPORT_ERROR_TLS_VERIFY);
        is_int(r.count[SS_STATE_ALL_RETRIES_FAILED], 3,
               "certificate failures end in ALL_RETRIES_FAILED");
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 0, "never a NACK");
        ss_stream_free(s);
}

static uint32_t random_max(void *userdata)
{
        return UINT32_MAX;
}

static void test_jitter_and_default(void)
{
        Rec r;
        SsStream *s;

        /* jitterpc 30 on 1000 ms: the retry comes within 1000..1300 ms. */
        rec_reset(&r);
        n_created = 0;
        s = open_stream("jit", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        advance(999);
        is_int(n_created, 1, "not before the table delay");
        advance(301);
        is_int(n_created, 2, "within the table delay plus 30 percent");
        ss_stream_free(s);

        /* No retry entry: 3000 ms base, and with the largest jitter 3000 + 900. */
        ss_context_set_random(ctx, random_max, NULL);
        rec_reset(&r);
        n_created = 0;
        s = open_stream("noretry", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        advance(3000);
        is_int(n_created, 1, "default delay is 3000 ms plus jitter");
        advance(900);
        is_int(n_created, 2, "default jitter 30 percent");
        ss_stream_free(s);
        ss_context_set_random(ctx, NULL, NULL);
}

static void test_timeout_and_validity(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        s = open_stream("tmo", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        advance(499);
        is_int(r.count[SS_STATE_TIMEOUT], 0, "no timeout before timeout_ms");
        advance(1);
        is_str(r.states, "CREATING CONNECTING CONNECTED TIMEOUT DISCONNECTED",
               "TIMEOUT at timeout_ms, then the connection is dropped");
        is_int(n_live, 0, "transport gone");
        ss_stream_free(s);

        /* A user timeout on an idle stream just notifies. */
        rec_reset(&r);
        s = open_stream("get", &r);
        is_int(ss_stream_start_timeout(s, 0), -EINVAL, "no policy timeout: 0 is invalid");
        is_int(ss_stream_start_timeout(s, 50), 0, "user timeout");
        advance(50);
        is_str(r.states, "CREATING TIMEOUT", "user timeout fires");
        ss_stream_start_timeout(s, 50);
        ss_stream_cancel_timeout(s);
        advance(100);
        is_int(r.count[SS_STATE_TIMEOUT], 1, "cancelled timeout does not fire");

        /* svalidhup 2 s: a silent connection is hung up and retried. */
        n_created = 0;
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        advance(1999);
        is_int(r.count[SS_STATE_DISCONNECTED], 0, "alive before svalidhup");
        fake_respond("HTTP/1.1 200 OK\r\n", false);
        advance(1999);
        is_int(r.count[SS_STATE_DISCONNECTED], 0, "bytes are proof of life");
        advance(1);
        is_int(r.count[SS_STATE_DISCONNECTED], 1, "silence for svalidhup: hung up");
        advance(100);
        is_int(n_created, 2, "and retried: the transaction was not finished");
        ss_stream_free(s);

        /* swake_validity: the retry timer is on the wake list. */
        rec_reset(&r);
        s = open_stream("wake", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_fail(TRANSPORT_ERROR_REFUSED);
        ok(scheduler_earliest(ss_context_get_scheduler(ctx), TIMER_LIST_WAKE) != UINT64_MAX,
           "swake_validity: retry on the wake list");
        ss_stream_free(s);
        is_int(scheduler_earliest(ss_context_get_scheduler(ctx), TIMER_LIST_WAKE), UINT64_MAX,
               "destroy cancels it");
}

static void test_reconnect_kinds(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        n_created = 0;
        s = open_stream("nailed", &r);
        is_int(n_created, 0, "nailed_up: nothing from inside ss_stream_new");
        advance(0);
        is_int(n_created, 1, "nailed_up connects at create");
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        advance(100);
        is_int(n_created, 2, "nailed_up reconnects after the transaction");
        fake_connected();
        fake_fail(TRANSPORT_ERROR_IO);
        advance(199);
        is_int(n_created, 2, "a drop without a response is a failure: the next delay");
        advance(1);
        is_int(n_created, 3, "and reconnects after a drop");
        ss_stream_free(s);
        is_int(n_live, 0, "destroy closes the attempt");

        rec_reset(&r);
        n_created = 0;
        s = open_stream("opp", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_fail(TRANSPORT_ERROR_IO);
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED", "drop");
        advance(60000);
        is_int(n_created, 1, "opportunistic: no reconnection after a drop");
        ss_stream_free(s);

        rec_reset(&r);
        n_created = 0;
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_fail(TRANSPORT_ERROR_IO);
        advance(100);
        is_int(n_created, 2, "plain: a drop mid-transaction is retried");
        fake_connected();
        ss_stream_request_tx(s); /* asks for another transaction */
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        advance(0);
        is_int(n_created, 3, "plain: reconnects when it has something to send");
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        advance(60000);
        is_int(n_created, 3, "plain: and not otherwise");
        ss_stream_free(s);
}

static void test_503(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        n_created = 0;
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n", false);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_NACK_REMOTE DISCONNECTED",
               "503 is a NACK");
        advance(4999);
        is_int(n_created, 1, "Retry-After longer than the table: honoured");
        advance(1);
        is_int(n_created, 2, "retry after Retry-After");
        fake_connected();
        fake_respond("HTTP/1.1 429 Slow\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", false);
        advance(199);
        is_int(n_created, 2, "Retry-After shorter than the table: the table");
        advance(1);
        is_int(n_created, 3, "second delay of the table");
        fake_connected();
        fake_respond("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", false);
        advance(60000);
        is_int(n_created, 3, "retries used up: idle");
        is_int(r.count[SS_STATE_ALL_RETRIES_FAILED], 0,
               "no ALL_RETRIES_FAILED after DISCONNECTED (not in the table)");
        ss_stream_free(s);
}

static void test_redirect(void)
{
        Rec r;
        SsStream *s;

        rec_reset(&r);
        n_created = 0;
        s = open_stream("redir", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 302 Found\r\nLocation: http://other.example:8081/x?y=1\r\n"
                     "Content-Length: 3\r\n\r\nabc",
                     false);
        ok(fake && streq(fake->host, "other.example") && fake->port == 8081,
           "redirect: new host and port");
        fake_connected();
        if (fake) {
                fake->written[fake->written_len] = 0;
                is_str(fake->written, "GET /x?y=1 HTTP/1.1\r\nHost: other.example:8081\r\n\r\n",
                       "redirect: the new request");
        }
        fake_respond("HTTP/1.1 301 Moved\r\nLocation: /z\r\nContent-Length: 0\r\n\r\n", false);
        ok(fake && streq(fake->host, "other.example"), "relative redirect keeps the host");
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "no state changes for followed redirects");
        is_mem(r.body, r.body_len, "ok", 2, "only the final body");

        /* Bounded hops. */
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        for (unsigned i = 0; i <= SS_H1_REDIRECTS_MAX; i++) {
                fake_respond("HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
                             false);
                if (i < SS_H1_REDIRECTS_MAX)
                        fake_connected();
        }
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 1, "too many hops: the 302 is the answer");
        ss_stream_free(s);

        /* Without allow_redirects a 302 is a NACK. */
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", false);
        is_int(r.acks[SS_STATE_QOS_NACK_REMOTE], 302, "302 without allow_redirects: NACK");
        ss_stream_free(s);
}

static void test_post(void)
{
        Rec r;
        SsStream *s;

        /* Chunked, in pieces, with the socket taking a few bytes at a time. */
        rec_reset(&r);
        r.tx_data = "hello world";
        r.tx_piece = 5;
        s = open_stream("post", &r);
        ss_stream_request_tx(s);
        advance(0);
        if (fake)
                fake->write_limit = 7;
        fake_connected();
        while (fake && fake->want_write)
                fake_writable();
        if (fake) {
                fake->written[fake->written_len] = 0;
                is_str(
                    fake->written,
                    "POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n5\r\n worl\r\n1\r\nd\r\n0\r\n\r\n",
                    "chunked request body");
        }
        fake_respond("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "201 acked");

        /* Content-Length. */
        r.tx_off = 0;
        r.tx_piece = 0;
        ss_stream_request_tx_len(s, 11);
        advance(0);
        fake_connected();
        if (fake) {
                fake->written[fake->written_len] = 0;
                is_str(fake->written,
                       "POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\n"
                       "hello world",
                       "Content-Length request body");
        }
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);

        /* TX_DONT_SEND: nothing until request_tx. */
        r.tx_off = 0;
        r.on_tx = SS_TX_DONT_SEND;
        ss_stream_request_tx_len(s, 11);
        advance(0);
        fake_connected();
        is_int(r.n_tx, 5, "tx asked once (3 chunked pieces, 1 with Content-Length, then this one)");
        ok(fake && !fake->want_write, "TX_DONT_SEND: not waiting to write");
        r.on_tx = SS_OK;
        ss_stream_request_tx(s);
        while (fake && fake->want_write)
                fake_writable();
        ok(fake && fake->written_len > 11 &&
               memcmp(fake->written + fake->written_len - 11, "hello world", 11) == 0,
           "body sent after request_tx");
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        ss_stream_free(s);
}

/* Each return code from each callback kind. */
static void test_return_codes(void)
{
        static const SsState states[] = {
            SS_STATE_CONNECTING,   SS_STATE_CONNECTED,       SS_STATE_QOS_ACK_REMOTE,
            SS_STATE_DISCONNECTED, SS_STATE_UNREACHABLE,     SS_STATE_ALL_RETRIES_FAILED,
            SS_STATE_TIMEOUT,      SS_STATE_QOS_NACK_REMOTE,
        };
        Rec r;
        SsStream *s;

        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                for (int mode = 0; mode < 4; mode++) {
                        SsState st = states[i];
                        bool fail = st == SS_STATE_UNREACHABLE || st == SS_STATE_ALL_RETRIES_FAILED;
                        bool nack = st == SS_STATE_QOS_NACK_REMOTE;
                        bool tmo = st == SS_STATE_TIMEOUT;

                        rec_reset(&r);
                        if (mode == 3)
                                r.free_in_state[st] = true;
                        else
                                r.on_state[st] = mode == 0   ? SS_DESTROY_ME
                                                 : mode == 1 ? SS_DISCONNECT_ME
                                                             : SS_TX_DONT_SEND;
                        s = open_stream(tmo ? "tmo" : "get", &r);
                        ss_stream_client_connect(s);
                        advance(0);
                        if (fail) {
                                for (int k = 0; k < 3 && fake; k++) {
                                        fake_fail(TRANSPORT_ERROR_REFUSED);
                                        advance(1000);
                                }
                        } else {
                                fake_connected();
                                if (tmo)
                                        advance(500);
                                else
                                        fake_respond(nack ? "HTTP/1.1 500 No\r\nContent-Length: "
                                                            "1\r\n\r\nx"
                                                          : "HTTP/1.1 200 OK\r\nContent-Length: "
                                                            "1\r\n\r\nx",
                                                     false);
                        }
                        advance(5000);
                        if (mode == 0 || mode == 3) {
                                ok(r.destroyed, "%s %s: destroyed", ss_state_to_string(st),
                                   mode == 0 ? "DESTROY_ME" : "free inside");
                                ok(strstr(r.states, "DESTROYING") ==
                                       r.states + strlen(r.states) - strlen("DESTROYING"),
                                   "%s: DESTROYING last (%s)", ss_state_to_string(st), r.states);
                                if (r.count[SS_STATE_CONNECTED] > 0)
                                        ok(r.count[SS_STATE_DISCONNECTED] == 1,
                                           "%s: DISCONNECTED once before DESTROYING",
                                           ss_state_to_string(st));
                        } else {
                                ok(!r.destroyed, "%s %s: alive", ss_state_to_string(st),
                                   mode == 1 ? "DISCONNECT_ME" : "TX_DONT_SEND");
                                if (mode == 1 && st == SS_STATE_CONNECTED)
                                        is_str(r.states,
                                               "CREATING CONNECTING CONNECTED DISCONNECTED",
                                               "DISCONNECT_ME at CONNECTED drops it");
                                ss_stream_free(s);
                        }
                        is_int(n_live, 0, "%s mode %d: no transport left", ss_state_to_string(st),
                               mode);
                        is_int(ss_context_n_streams(ctx), 0, "no stream left");
                }

        /* rx. */
        for (int mode = 0; mode < 4; mode++) {
                rec_reset(&r);
                r.on_rx = mode == 0   ? SS_DESTROY_ME
                          : mode == 1 ? SS_DISCONNECT_ME
                          : mode == 2 ? SS_TX_DONT_SEND
                                      : SS_OK;
                s = open_stream("get", &r);
                ss_stream_client_connect(s);
                advance(0);
                fake_connected();
                fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", false);
                fake_respond("cd", false);
                if (mode == 0) {
                        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED DESTROYING",
                               "rx DESTROY_ME: destroyed, cleanly");
                        is_int(r.n_rx, 1, "no rx after DESTROY_ME");
                } else if (mode == 1) {
                        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED",
                               "rx DISCONNECT_ME: dropped, no ACK");
                        advance(60000);
                        is_int(r.count[SS_STATE_CONNECTING], 1, "and not retried");
                        ss_stream_free(s);
                } else {
                        is_int(r.n_rx, 2, "rx %s: goes on", mode == 2 ? "TX_DONT_SEND" : "OK");
                        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "ACK");
                        ss_stream_free(s);
                }
                is_int(n_live, 0, "rx mode %d: no transport left", mode);
        }

        /* tx. */
        for (int mode = 0; mode < 2; mode++) {
                rec_reset(&r);
                r.tx_data = "x";
                r.on_tx = mode == 0 ? SS_DESTROY_ME : SS_DISCONNECT_ME;
                s = open_stream("post", &r);
                ss_stream_request_tx(s);
                advance(0);
                fake_connected();
                if (mode == 0)
                        ok(r.destroyed, "tx DESTROY_ME: destroyed");
                else {
                        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED",
                               "tx DISCONNECT_ME: dropped");
                        ss_stream_free(s);
                }
                is_int(n_live, 0, "tx mode %d: no transport left", mode);
        }
}

static void test_illegal(void)
{
        Rec r;
        SsStream *s;
        SsResult res;

        rec_reset(&r);
        ss_context_set_illegal_transition_hook(ctx, on_illegal, NULL);
        s = open_stream("get", &r);
        res = ss_stream_test_deliver_state(s, SS_STATE_ALL_RETRIES_FAILED, 0);
        is_int(res, SS_DESTROY_ME, "illegal transition: the stream is to be destroyed");
        is_int(illegal_seen, 1, "hook called");
        is_int(illegal_from, SS_STATE_CREATING, "from CREATING");
        is_int(illegal_to, SS_STATE_ALL_RETRIES_FAILED, "to ALL_RETRIES_FAILED");
        is_int(ss_context_get_illegal_transitions(ctx), 1, "counted");
        is_str(r.states, "CREATING", "the illegal state is not delivered");
        ss_stream_test_dispatch(s, res);
        is_str(r.states, "CREATING DESTROYING", "destroyed cleanly");
        is_int(ss_context_n_streams(ctx), 0, "gone");
        ss_context_set_illegal_transition_hook(ctx, NULL, NULL);
}

static void test_trust_stores(void)
{
        Rec r1, r2, r3;
        SsStream *a, *b, *c;

        rec_reset(&r1);
        rec_reset(&r2);
        rec_reset(&r3);
        is_int(ss_context_n_tls_contexts(ctx), 0, "no credentials before any TLS stream");
        a = open_stream("tls1", &r1);
        is_int(ss_context_n_tls_contexts(ctx), 1, "created with the first stream");
        is_int(last_tls_n_certs, 1, "one cert in the trust store");
        ok(last_tls_pem, "file: cert read as PEM");
        b = open_stream("tls2", &r2);
        is_int(n_tls_live, 1, "shared by the second stream of the same trust store");
        c = open_stream("sys", &r3);
        is_int(n_tls_live, 2, "system store: its own set");
        is_int(last_tls_n_certs, 0, "system store: no certs given");
        ss_stream_client_connect(a);
        advance(0);
        ok(fake && fake->tls && fake->tls_context, "the transport gets the credentials");
        fake_fail(TRANSPORT_ERROR_REFUSED);
        ss_stream_free(a);
        is_int(n_tls_live, 2, "still used by the second stream");
        ss_stream_free(b);
        is_int(n_tls_live, 1, "freed with the last stream using it");
        ss_stream_free(c);
        is_int(n_tls_live, 0, "all gone");
        is_int(ss_context_n_tls_contexts(ctx), 0, "cache empty");
        a = open_stream("tls1", &r1);
        is_int(n_tls_live, 1, "created again when needed");
        ss_stream_free(a);
}

static void test_free_from_other_callbacks(void)
{
        Rec r;
        SsStream *s;

        /* ss_stream_free() inside rx: destroyed when rx returned. */
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        r.free_in_state[SS_STATE_QOS_ACK_REMOTE] = true;
        fake_connected();
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED DESTROYING",
               "free inside QOS_ACK_REMOTE: DISCONNECTED, DESTROYING after it returned");
        is_int(n_live, 0, "no transport left");

        /* Destroying a connected stream from outside. */
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_client_connect(s);
        advance(0);
        fake_connected();
        ss_stream_free(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED DESTROYING",
               "connected stream: DISCONNECTED before DESTROYING");
        is_int(n_live, 0, "no transport left");

        /* change_handlers: NULL keeps, others replace. */
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_change_handlers(s, NULL, NULL, NULL);
        ss_stream_free(s);
        is_str(r.states, "CREATING DESTROYING", "NULL keeps the handlers");
}

/* ---- keep-alive ------------------------------------------------------------------------ */

static const char ok_2[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* One GET on s (connecting it), answered with response; the fake it ran on. */
static Fake *pool_get(SsStream *s, const char *response)
{
        Fake *f;
        unsigned created = n_created;

        ss_stream_request_tx(s);
        advance(0);
        f = fake;
        if (n_created > created)
                fake_connected();
        if (response)
                fake_respond(response, false);
        return f;
}

static void test_pool_reuse(void)
{
        Rec r, r2;
        SsStream *s, *s2, *other;
        Fake *f;

        ss_context_set_connection_pool(ctx, 2, 3, 30000);
        n_created = 0;
        rec_reset(&r);
        s = open_stream("get", &r);
        ss_stream_set_metadata(s, "id", "1", 1);
        f = pool_get(s, ok_2);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "keep-alive: the stream's states are those of a closed connection");
        is_int(n_live, 1, "keep-alive: the connection stays open");
        is_int(ss_context_n_idle_connections(ctx), 1, "keep-alive: it is idle in the pool");

        /* The next transaction of the same stream: no connect, no new transport. */
        ss_stream_set_metadata(s, "id", "2", 1);
        ss_stream_request_tx(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "reuse: nothing from inside request_tx");
        advance(0);
        is_int(n_created, 1, "reuse: no new connection");
        is_str(r.states,
               "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED CONNECTING CONNECTED",
               "reuse: CONNECTING then CONNECTED, from the loop");
        is_int(ss_context_n_idle_connections(ctx), 0, "reuse: taken out of the pool");
        if (fake == f) {
                f->written[f->written_len] = 0;
                is_str(f->written,
                       "GET /path/1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
                       "GET /path/2 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
                       "reuse: the second request on the same connection, in one piece");
        } else
                ok(false, "reuse: the same transport");
        fake_respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                     false);
        is_mem(r.body, r.body_len, "okhi", 4, "reuse: both bodies arrived");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 2, "reuse: second ACK");
        is_int(ss_context_n_idle_connections(ctx), 1, "chunked: parked again");

        /* Another stream to the same server takes it; a different server does not. */
        rec_reset(&r2);
        s2 = open_stream("get", &r2);
        pool_get(s2, ok_2);
        is_int(n_created, 1, "another stream of the same server reuses it");
        is_str(r2.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "and gets every state");
        other = open_stream("noretry", &r2);
        pool_get(other, ok_2);
        is_int(n_created, 2, "another port: a connection of its own");
        is_int(ss_context_n_idle_connections(ctx), 2, "both idle now");

        ss_stream_free(s);
        ss_stream_free(s2);
        ss_stream_free(other);
        is_int(ss_context_n_idle_connections(ctx), 2, "idle connections outlive plain streams");
        ss_context_drop_idle_connections(ctx);
        is_int(n_live, 0, "dropped on request");
}

/* A GET answered with response: whether the connection was kept. */
static bool kept_after(const char *response, bool eof)
{
        Rec r;
        SsStream *s;
        bool kept;

        rec_reset(&r);
        s = open_stream("get", &r);
        pool_get(s, NULL);
        fake_respond(response, eof);
        kept = ss_context_n_idle_connections(ctx) == 1;
        if (r.count[SS_STATE_QOS_ACK_REMOTE] != 1)
                tap_diag("no ACK for %s: %s", response, r.states);
        ss_stream_free(s);
        ss_context_drop_idle_connections(ctx);
        return kept;
}

static void test_pool_not_reused(void)
{
        Rec r;
        SsStream *s;

        ok(kept_after("HTTP/1.1 204 No Content\r\n\r\n", false), "204: kept");
        ok(!kept_after("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                       false),
           "Connection: close: not kept");
        ok(!kept_after("HTTP/1.1 200 OK\r\n\r\nuntil close", true), "close-delimited: not kept");
        ok(!kept_after("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
           "HTTP/1.0 without keep-alive: not kept");
        ok(kept_after("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                      false),
           "HTTP/1.0 with keep-alive: kept");
        ok(!kept_after("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", false),
           "bytes after the response: not kept");
        ok(!kept_after("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok",
                       false),
           "Keep-Alive: timeout=1: not kept (no time to use it)");
        is_int(n_live, 0, "none of them left open");

        /* Incomplete: destroyed in the middle of the body. */
        rec_reset(&r);
        s = open_stream("get", &r);
        pool_get(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
        ss_stream_free(s);
        is_int(ss_context_n_idle_connections(ctx), 0, "incomplete response: not kept");
        is_int(n_live, 0, "incomplete response: closed");

        /* The request body was not all sent (the server answered early). */
        rec_reset(&r);
        r.tx_data = "hello world";
        r.on_tx = SS_TX_DONT_SEND;
        s = open_stream("post", &r);
        ss_stream_request_tx_len(s, 11);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", false);
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 1, "early answer: NACK");
        is_int(ss_context_n_idle_connections(ctx), 0, "request body unsent: not kept");
        ss_stream_free(s);
        is_int(n_live, 0, "and closed");
}

static void test_pool_idle(void)
{
        Rec r;
        SsStream *s;

        ss_context_set_connection_pool(ctx, 2, 3, 30000);
        n_created = 0;
        rec_reset(&r);
        s = open_stream("get", &r);
        pool_get(s, ok_2);
        advance(29999);
        is_int(ss_context_n_idle_connections(ctx), 1, "idle: kept for 30 s");
        advance(2);
        is_int(ss_context_n_idle_connections(ctx), 0, "idle: closed after 30 s");
        is_int(n_live, 0, "idle timeout: the transport is gone");

        pool_get(s, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\n"
                    "ok");
        advance(3999);
        is_int(ss_context_n_idle_connections(ctx), 1, "Keep-Alive: timeout=5: kept 4 s");
        advance(2);
        is_int(ss_context_n_idle_connections(ctx), 0, "and closed then");

        pool_get(s, ok_2);
        fake_respond("", true);
        is_int(ss_context_n_idle_connections(ctx), 0, "closed by the server: dropped at once");
        is_int(n_live, 0, "closed by the server: transport gone");

        pool_get(s, ok_2);
        fake_respond("HTTP/1.1 408 Request Timeout\r\n\r\n", false);
        is_int(n_live, 0, "bytes from an idle connection: dropped");

        /* Closed by the server, and the loop has not said so yet: found when taken. */
        pool_get(s, ok_2);
        if (fake)
                fake->eof = true;
        pool_get(s, NULL);
        is_int(n_created, 6, "a connection found closed when taken is not used");
        fake_respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 6, "every transaction acked");
        ss_stream_free(s);
        ss_context_drop_idle_connections(ctx);
        is_int(n_live, 0, "nothing left");
}

static void test_pool_bounds(void)
{
        Rec r[5];
        SsStream *s[5];
        const char *types[5] = {"get", "get", "get", "noretry", "noretry"};

        ss_context_set_connection_pool(ctx, 2, 3, 30000);
        n_created = 0;
        /* Five transactions at once, five connections: then three servers' worth to park. */
        for (unsigned i = 0; i < 5; i++) {
                rec_reset(&r[i]);
                s[i] = open_stream(types[i], &r[i]);
                ss_stream_request_tx(s[i]);
        }
        advance(0);
        is_int(n_created, 5, "five connections at once");
        is_int(n_live, 5, "five open");
        for (unsigned i = 0; i < 5; i++) {
                Fake *f = (Fake *) s[i]->transport;

                if (!f)
                        continue;
                f->handlers.connected((Transport *) f, f->userdata);
                f = (Fake *) s[i]->transport;
                if (!f)
                        continue;
                memcpy(f->in, ok_2, strlen(ok_2));
                f->in_len = strlen(ok_2);
                f->handlers.readable((Transport *) f, f->userdata);
                if (i == 2)
                        is_int(ss_context_n_idle_connections(ctx), 2, "at most 2 idle per server");
        }
        is_int(ss_context_n_idle_connections(ctx), 3, "at most 3 idle in all");
        is_int(n_live, 3, "the others closed");
        for (unsigned i = 0; i < 5; i++)
                ss_stream_free(s[i]);
        ss_context_drop_idle_connections(ctx);

        ss_context_set_connection_pool(ctx, 0, 0, 0);
        rec_reset(&r[0]);
        s[0] = open_stream("get", &r[0]);
        pool_get(s[0], ok_2);
        is_int(n_live, 0, "pool off: closed after the response");
        ss_stream_free(s[0]);
}

static void test_pool_dead(void)
{
        Rec r;
        SsStream *s;

        ss_context_set_connection_pool(ctx, 2, 3, 30000);
        n_created = 0;
        rec_reset(&r);
        s = open_stream("get", &r);
        pool_get(s, ok_2);

        /* Reused, then EOF before any byte of the response: sent again on a new connection. */
        pool_get(s, NULL);
        is_int(n_created, 1, "dead: it was reused");
        fake_respond("", true);
        is_int(n_created, 2, "dead GET: a new connection at once");
        is_int(n_live, 1, "the dead one closed");
        fake_connected();
        if (fake) {
                fake->written[fake->written_len] = 0;
                is_str(fake->written, "GET /path/ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
                       "dead GET: the request again");
        }
        fake_respond(ok_2, false);
        is_str(r.states,
               "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED CONNECTING CONNECTED "
               "QOS_ACK_REMOTE DISCONNECTED",
               "dead GET: invisible to the stream");

        /* Reset while writing the request: the same. */
        rec_reset(&r);
        r.s = s;
        if (fake)
                fake->write_errno = EPIPE;
        pool_get(s, NULL);
        is_int(n_created, 3, "write failed on a reused connection: a new one");
        fake_respond(ok_2, false);
        is_str(r.states, "CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED",
               "write failure: invisible too");

        /* Only once: the new connection dying too is an ordinary failure. */
        rec_reset(&r);
        r.s = s;
        pool_get(s, NULL);
        fake_respond("", true);
        is_int(n_created, 4, "dead again: one new connection");
        fake_connected();
        fake_respond("", true);
        is_int(n_created, 4, "no second repeat");
        is_str(r.states, "CONNECTING CONNECTED DISCONNECTED", "the failure shows");
        advance(100);
        is_int(n_created, 5, "and the retry follows the backoff table");
        fake_connected();
        fake_respond(ok_2, false);
        ss_stream_free(s);
        ss_context_drop_idle_connections(ctx);

        /* A request with a body is never repeated. */
        rec_reset(&r);
        r.tx_data = "hello world";
        s = open_stream("post", &r);
        ss_stream_request_tx_len(s, 11);
        advance(0);
        fake_connected();
        fake_respond("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false);
        is_int(ss_context_n_idle_connections(ctx), 1, "POST: parked");
        n_created = 0;
        r.tx_off = 0;
        ss_stream_request_tx_len(s, 11);
        advance(0);
        is_int(n_created, 0, "POST: reused");
        fake_respond("", true);
        is_int(n_created, 0, "dead POST: not sent again");
        ok(strstr(r.states, "QOS_ACK_REMOTE DISCONNECTED CONNECTING CONNECTED DISCONNECTED") !=
               NULL,
           "dead POST: a failed transaction (%s)", r.states);
        advance(100);
        is_int(n_created, 1, "dead POST: the stream's retry, after the backoff delay");
        ss_stream_free(s);
        ss_context_drop_idle_connections(ctx);
        is_int(n_live, 0, "nothing left");
}

static void test_pool_trust_store(void)
{
        Rec r;
        SsStream *s;

        ss_context_set_connection_pool(ctx, 2, 3, 30000);
        rec_reset(&r);
        s = open_stream("tls1", &r);
        pool_get(s, ok_2);
        is_int(ss_context_n_idle_connections(ctx), 1, "TLS: parked");
        ss_stream_free(s);
        is_int(ss_context_n_idle_connections(ctx), 0,
               "closed with the last stream of its trust store");
        is_int(n_tls_live, 0, "credentials gone with it");
        is_int(n_live, 0, "transport gone");
        ss_context_set_connection_pool(ctx, 0, 0, 0);
}

int main(void)
{
        _cleanup_(policy_freep) Policy *policy = NULL;

        tap_init();
        policy = make_policy();
        if (!policy) {
                ok(false, "test policy loads");
                return tap_done();
        }
        if (ss_context_new(&ctx, NULL, policy) < 0) {
                ok(false, "context");
                return tap_done();
        }
        ss_context_set_transport_ops(ctx, &fake_ops);
        scheduler_set_clock(ss_context_get_scheduler(ctx), fake_clock, NULL);
        /* The state machine tests count connections: one per transaction, as without keep-alive. */
        ss_context_set_connection_pool(ctx, 0, 0, 0);

        test_table();
        test_create_destroy();
        test_get();
        test_chunked_and_nack();
        test_retry();
        test_jitter_and_default();
        test_timeout_and_validity();
        test_reconnect_kinds();
        test_503();
        test_redirect();
        test_post();
        test_return_codes();
        test_illegal();
        test_trust_stores();
        test_free_from_other_callbacks();
        test_pool_reuse();
        test_pool_not_reused();
        test_pool_idle();
        test_pool_bounds();
        test_pool_dead();
        test_pool_trust_store();

        ctx = ss_context_free(ctx);
        is_int(n_live, 0, "no transport leaked");
        is_int(n_tls_live, 0, "no credentials leaked");
        unlink(cert_path);
        return tap_done();
}

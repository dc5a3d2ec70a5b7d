/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams h1 against real peers: nginx (plain and TLS, with a config of
 * this test's own: redirects, 503 with Retry-After, WebDAV PUT as the upload
 * sink), certificates from certtool (good, wrong CA, wrong name, expired,
 * self-signed), a port nobody listens on, a listener that never answers, and
 * a name that cannot resolve. Everything through the real transport on a
 * private sd-event loop. Certificates, ports and helpers come from peers.c.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "ss-peers.h"
#include "stream.h"
#include "tap.h"
#include "transport.h"

static sd_event *event;
static SsContext *ctx;
static Nginx nginx = {.pid = -1};
static char *www;

/* ---- nginx with this test's locations -------------------------------------------------- */

static void write_big(const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f)
                return;
        for (size_t i = 0; i < PEERS_BIG_SIZE; i++)
                (void) fputc(peers_big_byte(i), f);
        (void) fclose(f);
}

typedef struct Ports {
        uint16_t plain, tls, expired, selfsigned, wrongname, silent, refused;
} Ports;

static void nginx_run(const Ports *p, const PeerCerts *c)
{
        char *conf = peers_path("h1.conf"), *big, *up;
        const char *d = peers_dir();
        const char *locations = "    location = /hello { return 200 \"hello\\n\"; }\n"
                                "    location = / { return 200 \"hello\\n\"; }\n"
                                "    location = /generate_204 { return 204; }\n"
                                "    location = /redir { return 302 /hello; }\n"
                                "    location = /busy { add_header Retry-After 2 always; "
                                "return 503; }\n"
                                "    location /up/ { dav_methods PUT; create_full_put_path on; "
                                "client_max_body_size 4m; }\n";
        struct {
                uint16_t port;
                const char *cert, *key;
        } servers[] = {
            {p->plain, NULL, NULL},
            {p->tls, c->server_pem, c->server_key},
            {p->expired, c->expired_pem, c->expired_key},
            {p->selfsigned, c->selfsigned_pem, c->selfsigned_key},
            {p->wrongname, c->wrongname_pem, c->wrongname_key},
        };
        FILE *f;

        www = peers_path("h1www");
        big = peers_path("h1www/big");
        up = peers_path("h1www/up");
        (void) mkdir(www, 0777);
        (void) mkdir(up, 0777);
        (void) chmod(www, 0777);
        (void) chmod(up, 0777);
        write_big(big);

        f = fopen(conf, "we");
        if (!f)
                tap_skip_all("cannot write the nginx config");
        fprintf(f,
                "daemon off;\nworker_processes 1;\npid %s/h1.pid;\nerror_log %s/h1-error.log;\n"
                "user root;\nevents { worker_connections 4096; }\n"
                "http {\n  access_log off;\n  client_body_temp_path %s/h1body;\n"
                "  proxy_temp_path %s/h1proxy;\n  fastcgi_temp_path %s/h1fcgi;\n"
                "  uwsgi_temp_path %s/h1uwsgi;\n  scgi_temp_path %s/h1scgi;\n"
                "  default_type application/octet-stream;\n",
                d, d, d, d, d, d, d);
        for (size_t i = 0; i < ELEMENTSOF(servers); i++) {
                fprintf(f, "  server {\n    listen 127.0.0.1:%u%s;\n", (unsigned) servers[i].port,
                        servers[i].cert ? " ssl" : "");
                if (servers[i].cert)
                        fprintf(f, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n",
                                servers[i].cert, servers[i].key);
                fprintf(f, "    root %s;\n%s  }\n", www, locations);
        }
        fprintf(f, "}\n");
        (void) fclose(f);

        nginx_start_conf(&nginx, conf, p->plain);
        free(big);
        free(up);
}

/* ---- a recording stream user ----------------------------------------------------------- */

typedef struct Rec {
        char states[2048];
        unsigned count[_SS_STATE_MAX];
        uint32_t ack[_SS_STATE_MAX];
        uint64_t when[_SS_STATE_MAX][8];
        uint8_t *body;
        size_t body_len;
        unsigned n_som, n_eom, n_rx;
        bool body_ok; /* /big pattern so far */
        size_t tx_size, tx_off;
        bool destroy_on_done;
        unsigned *done_counter;
        unsigned tx_again; /* bodies still to send, each asked for by the previous one's end */
} Rec;

static void rec_init(Rec *r)
{
        *r = (Rec){.body_ok = true};
}

static SsResult rec_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Rec *r = userdata;
        size_t n = strlen(r->states);

        if (n + 32 < sizeof(r->states))
                snprintf(r->states + n, sizeof(r->states) - n, "%s%s", n ? " " : "",
                         ss_state_to_string(state));
        if (state > 0 && state < _SS_STATE_MAX) {
                if (r->count[state] < 8)
                        r->when[state][r->count[state]] = peers_now_usec();
                r->count[state]++;
                r->ack[state] = ack;
        }
        if (r->destroy_on_done &&
            (state == SS_STATE_QOS_ACK_REMOTE || state == SS_STATE_QOS_NACK_REMOTE)) {
                (*r->done_counter)++;
                return SS_DESTROY_ME;
        }
        return SS_OK;
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;
        uint8_t *p;

        r->n_rx++;
        if (flags & SS_FLAG_SOM)
                r->n_som++;
        if (flags & SS_FLAG_EOM)
                r->n_eom++;
        if (r->body_len + len > 2 * PEERS_BIG_SIZE)
                return SS_DISCONNECT_ME;
        p = realloc(r->body, r->body_len + len + 1);
        if (!p)
                return SS_DISCONNECT_ME;
        r->body = p;
        memcpy(r->body + r->body_len, buf, len);
        r->body_len += len;
        r->body[r->body_len] = 0;
        return SS_OK;
}

static SsResult rec_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Rec *r = userdata;
        size_t n = MIN(*len, r->tx_size - r->tx_off);

        /* Odd piece sizes, to exercise the framing. */
        n = MIN(n, (size_t) 7001);
        for (size_t i = 0; i < n; i++)
                buf[i] = peers_big_byte(r->tx_off + i);
        r->tx_off += n;
        *len = n;
        *flags = r->tx_off == r->tx_size ? SS_FLAG_EOM : 0;
        if (r->tx_off == r->tx_size && r->tx_again > 0) {
                /* The next transaction, asked for by the callback that ends this body. */
                r->tx_again--;
                r->tx_off = 0;
                (void) ss_stream_request_tx(s);
        }
        return SS_OK;
}

static const SsStreamHandlers handlers = {.rx = rec_rx, .tx = rec_tx, .state = rec_state};

static SsStream *open_stream(const char *type, Rec *r)
{
        SsStream *s = NULL;
        int k = ss_stream_new(&s, ctx, type, &handlers, r);

        if (k < 0)
                is_int(k, 0, "ss_stream_new(%s)", type);
        return s;
}

static bool done_transaction(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_DISCONNECTED] > 0 || r->count[SS_STATE_ALL_RETRIES_FAILED] > 0;
}

static bool done_all_failed(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_ALL_RETRIES_FAILED] > 0;
}

static bool done_unreachable(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_UNREACHABLE] > 0;
}

static bool done_timeout(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_TIMEOUT] > 0;
}

static void run_get(const char *type, Rec *r)
{
        SsStream *s;

        rec_init(r);
        s = open_stream(type, r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_transaction, r, 10000), "%s: transaction done (%s)", type,
           r->states);
        ss_stream_free(s);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_get(void)
{
        Rec r;
        bool same = true;

        run_get("big", &r);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED DESTROYING",
               "big: states");
        is_int(r.body_len, PEERS_BIG_SIZE, "big: 1 MiB arrived");
        for (size_t i = 0; i < r.body_len && same; i++)
                same = r.body[i] == peers_big_byte(i);
        ok(same, "big: the exact bytes");
        is_int(r.n_som, 1, "big: SOM once");
        is_int(r.n_eom, 1, "big: EOM once");
        tap_diag("1 MiB came in %u rx calls", r.n_rx);
        free(r.body);

        run_get("e204", &r);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "204: ACK");
        is_int(r.ack[SS_STATE_QOS_ACK_REMOTE], 204, "204: ack is the status");
        is_int(r.n_rx, 0, "204: no rx");
        free(r.body);

        run_get("missing", &r);
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 1, "404: NACK");
        is_int(r.ack[SS_STATE_QOS_NACK_REMOTE], 404, "404: ack is the status");
        is_int(r.n_eom, 1, "404: its body still arrives, once");
        free(r.body);

        run_get("redir_follow", &r);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "302 with allow_redirects: followed, ACK");
        is_str((char *) r.body, "hello\n", "302 followed: the target's body");
        free(r.body);

        run_get("redir_no", &r);
        is_int(r.ack[SS_STATE_QOS_NACK_REMOTE], 302, "302 without allow_redirects: NACK 302");
        free(r.body);
}

static bool done_two_nacks(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_QOS_NACK_REMOTE] >= 2 && r->count[SS_STATE_DISCONNECTED] >= 2;
}

static void test_503(void)
{
        Rec r;
        SsStream *s;

        rec_init(&r);
        s = open_stream("busy", &r);
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_two_nacks, &r, 8000), "503: retried once (%s)", r.states);
        is_int(r.ack[SS_STATE_QOS_NACK_REMOTE], 503, "503: NACK 503");
        if (r.count[SS_STATE_CONNECTING] >= 2) {
                uint64_t waited = r.when[SS_STATE_CONNECTING][1] - r.when[SS_STATE_DISCONNECTED][0];

                cmp_int(waited, >=, 2000000, "503 with Retry-After: 2: the retry waits >= 2 s");
                cmp_int(waited, <, 2600000, "and not much longer");
        }
        ss_stream_free(s);
        free(r.body);
}

static bool file_matches(const char *name, size_t size)
{
        char *path;
        uint8_t *data;
        size_t n = 0;
        bool same;

        if (asprintf(&path, "%s/up/%s", www, name) < 0)
                return false;
        data = (uint8_t *) peers_read_file(path, &n);
        free(path);
        same = data && n == size;
        for (size_t i = 0; same && i < n; i++)
                same = data[i] == peers_big_byte(i);
        free(data);
        return same;
}

static void test_upload(void)
{
        Rec r;
        SsStream *s;

        rec_init(&r);
        r.tx_size = PEERS_BIG_SIZE;
        s = open_stream("put_cl", &r);
        (void) ss_stream_request_tx_len(s, PEERS_BIG_SIZE);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "upload with Content-Length (%s)",
           r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "Content-Length upload: ACK (%u)",
               (unsigned) r.ack[SS_STATE_QOS_NACK_REMOTE]);
        ok(file_matches("cl.bin", PEERS_BIG_SIZE), "Content-Length upload: byte for byte on disk");
        ss_stream_free(s);
        free(r.body);

        rec_init(&r);
        r.tx_size = PEERS_BIG_SIZE;
        s = open_stream("put_chunked", &r);
        (void) ss_stream_request_tx(s);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "chunked upload (%s)", r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "chunked upload: ACK (%u)",
               (unsigned) r.ack[SS_STATE_QOS_NACK_REMOTE]);
        ok(file_matches("chunked.bin", PEERS_BIG_SIZE), "chunked upload: byte for byte on disk");
        ss_stream_free(s);
        free(r.body);
}

static bool done_two_acks(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_QOS_ACK_REMOTE] >= 2 || r->count[SS_STATE_QOS_NACK_REMOTE] > 0 ||
               r->count[SS_STATE_ALL_RETRIES_FAILED] > 0;
}

/* request_tx from the tx callback that ends a body starts the next transaction. */
static void test_upload_chained(const char *type)
{
        Rec r;
        SsStream *s;

        rec_init(&r);
        r.tx_size = 20000;
        r.tx_again = 1;
        s = open_stream(type, &r);
        (void) ss_stream_request_tx(s);
        ok(ss_peers_run_until(done_two_acks, &r, 10000), "%s chained from tx: done (%s)", type,
           r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 2,
               "%s chained from tx: two transactions, both acknowledged", type);
        ss_stream_free(s);
        free(r.body);
}

static void test_tls(void)
{
        static const char *const bad[] = {"tls_wrongca", "tls_wrongname", "tls_expired",
                                          "tls_self"};
        Rec r, rb[ELEMENTSOF(bad)];
        SsStream *s, *sb[ELEMENTSOF(bad)];

        is_int(ss_context_n_tls_contexts(ctx), 0, "no credentials before a TLS stream");
        rec_init(&r);
        s = open_stream("tls_good", &r);
        is_int(ss_context_n_tls_contexts(ctx), 1, "credentials appear with the first stream");
        is_int(tls_context_live_count(), 1, "one live TlsContext");
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "TLS with the right CA (%s)", r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h1 over TLS: ACK");
        is_str(r.body ? (char *) r.body : "", "hello\n", "h1 over TLS: body");
        ss_stream_free(s);
        is_int(ss_context_n_tls_contexts(ctx), 0, "and disappear with the last");
        is_int(tls_context_live_count(), 0, "no live TlsContext");
        free(r.body);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                rec_init(&rb[i]);
                sb[i] = open_stream(bad[i], &rb[i]);
                (void) ss_stream_client_connect(sb[i]);
        }
        is_int(ss_context_n_tls_contexts(ctx), 2, "two trust stores in use (test CA, other CA)");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ok(ss_peers_run_until(done_all_failed, &rb[i], 10000),
                   "%s: ALL_RETRIES_FAILED (%s)", bad[i], rb[i].states);
                is_int(rb[i].count[SS_STATE_UNREACHABLE], 3, "%s: UNREACHABLE for each attempt",
                       bad[i]);
                ok(rb[i].ack[SS_STATE_UNREACHABLE] & SS_ACK_TLS_VERIFY,
                   "%s: certificate verification failed (ack %#x)", bad[i],
                   rb[i].ack[SS_STATE_UNREACHABLE]);
                is_int(rb[i].count[SS_STATE_QOS_NACK_REMOTE], 0, "%s: never a NACK", bad[i]);
                ss_stream_free(sb[i]);
                free(rb[i].body);
        }
        is_int(ss_context_n_tls_contexts(ctx), 0, "no credentials left");
}

static void test_failures(void)
{
        Rec r;
        SsStream *s;

        rec_init(&r);
        s = open_stream("refused", &r);
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_all_failed, &r, 10000), "refused: ends (%s)", r.states);
        is_str(r.states,
               "CREATING CONNECTING UNREACHABLE CONNECTING UNREACHABLE CONNECTING UNREACHABLE "
               "ALL_RETRIES_FAILED",
               "refused: UNREACHABLE, retries, ALL_RETRIES_FAILED");
        ok(r.ack[SS_STATE_UNREACHABLE] & SS_ACK_REFUSED, "refused: the ack says so");
        if (r.count[SS_STATE_CONNECTING] == 3) {
                uint64_t d1 = r.when[SS_STATE_CONNECTING][1] - r.when[SS_STATE_UNREACHABLE][0];
                uint64_t d2 = r.when[SS_STATE_CONNECTING][2] - r.when[SS_STATE_UNREACHABLE][1];

                /* backoff [300, 600], jitterpc 20; some slack for the loop above the bound. */
                cmp_int(d1, >=, 300000, "first delay >= 300 ms");
                cmp_int(d1, <=, 360000 + 40000, "first delay <= 360 ms (+ slack)");
                cmp_int(d2, >=, 600000, "second delay >= 600 ms");
                cmp_int(d2, <=, 720000 + 40000, "second delay <= 720 ms (+ slack)");
                tap_diag("delays: %llu ms, %llu ms", (unsigned long long) d1 / 1000,
                         (unsigned long long) d2 / 1000);
        }
        ss_stream_free(s);

        rec_init(&r);
        s = open_stream("dns", &r);
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_unreachable, &r, 15000), "unknown host: UNREACHABLE (%s)",
           r.states);
        ok(r.ack[SS_STATE_UNREACHABLE] & SS_ACK_DNS, "unknown host: DNS flag (ack %#x)",
           r.ack[SS_STATE_UNREACHABLE]);
        ss_stream_free(s);

        rec_init(&r);
        s = open_stream("silent", &r);
        uint64_t t0 = peers_now_usec();
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_timeout, &r, 5000), "silent server: TIMEOUT (%s)", r.states);
        uint64_t waited = r.when[SS_STATE_TIMEOUT][0] - t0;
        cmp_int(waited, >=, 500000, "TIMEOUT not before timeout_ms");
        cmp_int(waited, <, 700000, "TIMEOUT at timeout_ms");
        (void) ss_peers_run_until(done_transaction, &r, 1000);
        is_str(r.states, "CREATING CONNECTING CONNECTED TIMEOUT DISCONNECTED",
               "silent server: dropped after TIMEOUT");
        ss_stream_free(s);
}

typedef struct Many {
        unsigned done, started;
} Many;

static bool done_batch(void *userdata)
{
        Many *m = userdata;

        return m->done == m->started;
}

static void test_many(void)
{
        unsigned fds, acks = 0;
        Rec *recs = calloc(100, sizeof(Rec));
        uint64_t t0 = peers_now_usec();
        Many m = {};

        /* Idle keep-alive connections are not leaks: count without them. */
        ss_context_drop_idle_connections(ctx);
        fds = peers_count_fds();

        for (unsigned batch = 0; batch < 10; batch++) {
                for (unsigned i = 0; i < 100; i++) {
                        SsStream *s;

                        rec_init(&recs[i]);
                        recs[i].destroy_on_done = true;
                        recs[i].done_counter = &m.done;
                        s = open_stream(i % 2 ? "e204" : "tls_good", &recs[i]);
                        if (!s)
                                break;
                        (void) ss_stream_client_connect(s);
                        m.started++;
                }
                if (!ss_peers_run_until(done_batch, &m, 20000))
                        break;
                for (unsigned i = 0; i < 100; i++) {
                        acks += recs[i].count[SS_STATE_QOS_ACK_REMOTE];
                        free(recs[i].body);
                }
        }
        is_int(m.done, 1000, "1,000 streams (half over TLS) each finished a transaction");
        is_int(acks, 1000, "every one acked");
        is_int(ss_context_n_streams(ctx), 0, "every one destroyed itself (DESTROY_ME)");
        is_int(ss_context_n_tls_contexts(ctx), 0, "no credentials left");
        cmp_int(ss_context_n_idle_connections(ctx), <=, SS_POOL_PER_SERVER,
                "idle connections within the pool's bound");
        ss_context_drop_idle_connections(ctx);
        is_int(peers_count_fds(), fds, "no fd left open");
        tap_diag("1,000 streams in %llu ms", (unsigned long long) (peers_now_usec() - t0) / 1000);
        free(recs);
}

/* Appends one formatted piece to a growing string; *json is NULL after a failure. */
static void _printf_(2, 3) append(char **json, const char *format, ...)
{
        char *piece = NULL, *joined = NULL;
        va_list ap;
        int r;

        if (!*json)
                return;
        va_start(ap, format);
        r = vasprintf(&piece, format, ap);
        va_end(ap);
        if (r < 0 || asprintf(&joined, "%s%s", *json, piece) < 0)
                joined = NULL;
        free(piece);
        free(*json);
        *json = joined;
}

static void add_h1(char **json, const char *name, uint16_t port, const char *extra)
{
        append(json, "{\"%s\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\"%s%s}},",
               name, (unsigned) port, extra[0] ? "," : "", extra);
}

static void add_tls(char **json, const char *name, uint16_t port, const char *store)
{
        append(json,
               "{\"%s\":{\"endpoint\":\"localhost\",\"port\":%u,\"protocol\":\"h1\","
               "\"tls\":true,\"tls_trust_store\":\"%s\",\"retry\":\"quick\"}},",
               name, (unsigned) port, store);
}

static char *policy_json(const Ports *p, const PeerCerts *c)
{
        char *json = strdup("");

        append(&json,
               "{\"release\":\"1\",\"product\":\"it\",\"schema-version\":1,"
               "\"retry\":[{\"quick\":{\"backoff\":[100,200],\"conceal\":2,\"jitterpc\":10}},"
               "{\"table\":{\"backoff\":[300,600],\"conceal\":2,\"jitterpc\":20}},"
               "{\"once\":{\"backoff\":[100],\"conceal\":1}}],"
               "\"certs\":[{\"ca\":\"file:%s\"},{\"other\":\"file:%s\"}],"
               "\"trust_stores\":[{\"name\":\"good\",\"stack\":[\"ca\"]},"
               "{\"name\":\"wrong\",\"stack\":[\"other\"]}],\"s\":[",
               c->ca_pem, c->other_ca_pem);
        add_h1(&json, "big", p->plain, "\"http_url\":\"big\"");
        add_h1(&json, "e204", p->plain, "\"http_url\":\"generate_204\"");
        add_h1(&json, "missing", p->plain, "\"http_url\":\"missing\"");
        add_h1(&json, "redir_follow", p->plain, "\"http_url\":\"redir\",\"allow_redirects\":true");
        add_h1(&json, "redir_no", p->plain, "\"http_url\":\"redir\"");
        add_h1(&json, "busy", p->plain, "\"http_url\":\"busy\",\"retry\":\"once\"");
        add_h1(&json, "put_cl", p->plain, "\"http_method\":\"PUT\",\"http_url\":\"up/cl.bin\"");
        add_h1(&json, "put_chunked", p->plain,
               "\"http_method\":\"PUT\",\"http_url\":\"up/chunked.bin\"");
        add_h1(&json, "refused", p->refused, "\"retry\":\"table\"");
        add_h1(&json, "silent", p->silent, "\"timeout_ms\":500");
        add_tls(&json, "tls_good", p->tls, "good");
        add_tls(&json, "tls_wrongca", p->tls, "wrong");
        add_tls(&json, "tls_wrongname", p->wrongname, "good");
        add_tls(&json, "tls_expired", p->expired, "good");
        add_tls(&json, "tls_self", p->selfsigned, "good");
        append(&json, "{\"dns\":{\"endpoint\":\"no-such-host.invalid\",\"protocol\":\"h1\","
                      "\"retry\":\"quick\"}}]}");
        return json;
}

int main(void)
{
        PeerCerts certs;
        Ports ports;
        int silent_fd;

        peers_init(120);
        peer_certs_make(&certs);
        if (!peers_have("nginx") || !peers_have("curl"))
                tap_skip_all("nginx or curl is not installed");
        ports = (Ports){
            .plain = peers_free_port(),
            .tls = peers_free_port(),
            .expired = peers_free_port(),
            .selfsigned = peers_free_port(),
            .wrongname = peers_free_port(),
            .silent = peers_free_port(),
            .refused = peers_free_port(),
        };
        nginx_run(&ports, &certs);
        silent_fd = peers_silent_listener("127.0.0.1", ports.silent);
        ok(silent_fd >= 0, "silent listener");

        ss_peers_start(policy_json(&ports, &certs), &event, &ctx);

        test_get();
        test_503();
        test_upload();
        test_upload_chained("put_chunked");
        test_tls();
        test_failures();
        test_many();

        ss_peers_stop(&ctx, &event);
        close(silent_fd);
        nginx_stop(&nginx);
        peer_certs_free(&certs);
        free(www);
        return peers_done();
}

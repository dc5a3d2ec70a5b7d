/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams h2 against nginx: a TLS listener with http2 and one without
 * (the h1 fall back on the same connection), certificates from certtool
 * (peers.c), WebDAV PUT as the upload sink. nginx logs every request with its
 * connection number and protocol, so the test sees what went over the wire:
 * HTTP/2.0 or HTTP/1.1, and on how many connections.
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

#define N_MANY 20

static sd_event *event;
static SsContext *ctx;
static Nginx nginx = {.pid = -1};
static char *www;

typedef struct Ports {
        uint16_t plain, h2, h1only;
        uint16_t h2short; /* GOAWAY after 10 requests */
        uint16_t h2few;   /* SETTINGS_MAX_CONCURRENT_STREAMS 4 */
} Ports;

/* ---- nginx ------------------------------------------------------------------------------ */

/* Stops or continues nginx's workers (the children of the process this test started). */
static void nginx_signal_workers(int sig)
{
        char path[64];
        FILE *f;
        int pid;

        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) nginx.pid, (int) nginx.pid);
        f = fopen(path, "re");
        while (f && fscanf(f, "%d", &pid) == 1)
                (void) kill(pid, sig);
        if (f)
                (void) fclose(f);
}

static void write_pattern(const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f)
                return;
        for (size_t i = 0; i < PEERS_BIG_SIZE; i++)
                (void) fputc(peers_big_byte(i), f);
        (void) fclose(f);
}

static void nginx_run(const Ports *p, const PeerCerts *c)
{
        char *conf = peers_path("h2.conf"), *big = peers_path("h2www/big"),
             *up = peers_path("h2www/up");
        const char *d = peers_dir();
        const char *locations =
            "    location = / { return 200 \"hello\\n\"; }\n"
            "    location = /small { return 200 \"small\\n\"; }\n"
            "    location /slow/ { limit_rate 4k; rewrite ^/slow/(.*)$ /$1 break; }\n"
            "    location = /reset { return 444; }\n"
            "    location = /meta { add_header X-Reply \"r-$http_x_req\" always; "
            "return 200 \"m\\n\"; }\n"
            "    location = /busy { add_header Retry-After 1 always; "
            "return 503; }\n"
            "    location /up/ { dav_methods PUT; create_full_put_path on; "
            "client_max_body_size 4m; }\n";
        FILE *f;

        www = peers_path("h2www");
        (void) mkdir(www, 0777);
        (void) mkdir(up, 0777);
        (void) chmod(www, 0777);
        (void) chmod(up, 0777);
        write_pattern(big);

        f = fopen(conf, "we");
        if (!f)
                tap_skip_all("cannot write the nginx config");
        fprintf(f,
                "daemon off;\nworker_processes 1;\npid %s/h2.pid;\nerror_log %s/h2-error.log;\n"
                "user root;\nevents { worker_connections 1024; }\n"
                "http {\n  log_format conn '$connection $server_protocol $request_method "
                "$request_uri $status';\n  access_log %s/h2-access.log conn;\n"
                "  client_body_temp_path %s/h2body;\n  proxy_temp_path %s/h2proxy;\n"
                "  fastcgi_temp_path %s/h2fcgi;\n  uwsgi_temp_path %s/h2uwsgi;\n"
                "  scgi_temp_path %s/h2scgi;\n  default_type application/octet-stream;\n",
                d, d, d, d, d, d, d, d);
        fprintf(f, "  server {\n    listen 127.0.0.1:%u;\n    root %s;\n%s  }\n",
                (unsigned) p->plain, www, locations);
        fprintf(f,
                "  server {\n    listen 127.0.0.1:%u ssl http2;\n    ssl_certificate %s;\n"
                "    ssl_certificate_key %s;\n    root %s;\n%s  }\n",
                (unsigned) p->h2, c->server_pem, c->server_key, www, locations);
        fprintf(f,
                "  server {\n    listen 127.0.0.1:%u ssl http2;\n    ssl_certificate %s;\n"
                "    ssl_certificate_key %s;\n    keepalive_requests 10;\n    root %s;\n%s  }\n",
                (unsigned) p->h2short, c->server_pem, c->server_key, www, locations);
        fprintf(f,
                "  server {\n    listen 127.0.0.1:%u ssl http2;\n    ssl_certificate %s;\n"
                "    ssl_certificate_key %s;\n    http2_max_concurrent_streams 4;\n"
                "    root %s;\n%s  }\n",
                (unsigned) p->h2few, c->server_pem, c->server_key, www, locations);
        fprintf(f,
                "  server {\n    listen 127.0.0.1:%u ssl;\n    ssl_certificate %s;\n"
                "    ssl_certificate_key %s;\n    root %s;\n%s  }\n",
                (unsigned) p->h1only, c->server_pem, c->server_key, www, locations);
        fprintf(f, "}\n");
        (void) fclose(f);

        nginx_start_conf(&nginx, conf, p->plain);
        free(big);
        free(up);
}

/*
 * The access log lines for uri: how many, how many over protocol, and on how
 * many distinct connections. The log is truncated between checks.
 */
typedef struct LogCount {
        unsigned lines, with_protocol, connections;
} LogCount;

static LogCount log_count(const char *uri, const char *protocol)
{
        char *path = peers_path("h2-access.log");
        char line[512];
        unsigned long seen[256];
        LogCount n = {};
        FILE *f = path ? fopen(path, "re") : NULL;

        while (f && fgets(line, sizeof(line), f)) {
                unsigned long conn;
                char proto[32], method[16], u[256];
                bool known = false;

                if (sscanf(line, "%lu %31s %15s %255s", &conn, proto, method, u) != 4 ||
                    !streq(u, uri))
                        continue;
                n.lines++;
                if (streq(proto, protocol))
                        n.with_protocol++;
                for (unsigned i = 0; i < n.connections && !known; i++)
                        known = seen[i] == conn;
                if (!known && n.connections < ELEMENTSOF(seen))
                        seen[n.connections++] = conn;
        }
        if (f)
                (void) fclose(f);
        free(path);
        return n;
}

/* The access log as diagnostics (after a failed count). */
static void log_dump(void)
{
        char *path = peers_path("h2-access.log");
        char line[512];
        FILE *f = path ? fopen(path, "re") : NULL;

        while (f && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                tap_diag("nginx: %s", line);
        }
        if (f)
                (void) fclose(f);
        free(path);
}

/*
 * Distinct connections of the requests whose target ends in suffix (a query
 * of the test's own: a request from an earlier test that nginx logs late, a
 * hung-up one, counts elsewhere).
 */
static unsigned log_connections(const char *suffix)
{
        char *path = peers_path("h2-access.log");
        char line[512];
        unsigned long seen[256];
        unsigned n = 0;
        FILE *f = path ? fopen(path, "re") : NULL;

        while (f && fgets(line, sizeof(line), f)) {
                unsigned long conn;
                char u[256];
                size_t n_u, n_suffix = strlen(suffix);
                bool known = false;

                if (sscanf(line, "%lu %*s %*s %255s", &conn, u) != 2)
                        continue;
                n_u = strlen(u);
                if (n_u < n_suffix || !streq(u + n_u - n_suffix, suffix))
                        continue;
                for (unsigned i = 0; i < n && !known; i++)
                        known = seen[i] == conn;
                if (!known && n < ELEMENTSOF(seen))
                        seen[n++] = conn;
        }
        if (f)
                (void) fclose(f);
        free(path);
        return n;
}

/* ---- a recording stream user ----------------------------------------------------------- */

typedef struct Rec {
        char states[1024];
        unsigned count[_SS_STATE_MAX];
        uint32_t ack[_SS_STATE_MAX];
        uint8_t *body;
        size_t body_len;
        unsigned n_som, n_eom, n_rx;
        size_t tx_size, tx_off;
        bool pause_on_first_rx;
        int64_t tx_credit_min, tx_credit_max; /* ss_stream_tx_credit() seen in tx */
        unsigned tx_again; /* bodies still to send, each asked for by the previous one's end */
} Rec;

static void rec_init(Rec *r)
{
        *r = (Rec){.tx_credit_min = INT64_MAX, .tx_credit_max = INT64_MIN};
}

static SsResult rec_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Rec *r = userdata;
        size_t n = strlen(r->states);

        if (n + 32 < sizeof(r->states))
                snprintf(r->states + n, sizeof(r->states) - n, "%s%s", n ? " " : "",
                         ss_state_to_string(state));
        if (state > 0 && state < _SS_STATE_MAX) {
                r->count[state]++;
                r->ack[state] = ack;
        }
        return SS_OK;
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;
        uint8_t *p;

        r->n_rx++;
        if (r->pause_on_first_rx && r->n_rx == 1)
                ss_stream_pause_rx(s, true);
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
        int64_t credit = ss_stream_tx_credit(s);

        r->tx_credit_min = MIN(r->tx_credit_min, credit);
        r->tx_credit_max = MAX(r->tx_credit_max, credit);

        /* Odd piece sizes, so that DATA frames and tx pieces do not line up. */
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

static bool body_is_big(const Rec *r)
{
        bool same = r->body_len == PEERS_BIG_SIZE;

        for (size_t i = 0; i < r->body_len && same; i++)
                same = r->body[i] == peers_big_byte(i);
        return same;
}

static void truncate_log(void)
{
        char *path = peers_path("h2-access.log");

        if (path)
                (void) truncate(path, 0);
        free(path);
}

/* nginx writes its access log line when the request ends: give it a moment. */
static LogCount log_wait(const char *uri, const char *protocol, unsigned lines)
{
        LogCount n = {};

        for (int i = 0; i < 100; i++) {
                n = log_count(uri, protocol);
                if (n.lines >= lines)
                        break;
                usleep(10000);
        }
        return n;
}

/* ---- tests ----------------------------------------------------------------------------- */

static bool never(void *userdata)
{
        return false;
}

static bool done_three_drops(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_DISCONNECTED] >= 3;
}

static void test_get(void)
{
        LogCount n;
        SsStream *s;
        Rec r;

        truncate_log();
        run_get("big", &r);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED DESTROYING",
               "h2 GET: states");
        is_int(r.ack[SS_STATE_QOS_ACK_REMOTE], 200, "h2 GET: ack is the status");
        is_int(r.body_len, PEERS_BIG_SIZE, "h2 GET: 1 MiB arrived");
        ok(body_is_big(&r), "h2 GET: the exact bytes");
        is_int(r.n_som, 1, "h2 GET: SOM once");
        is_int(r.n_eom, 1, "h2 GET: EOM once");
        tap_diag("1 MiB came in %u rx calls", r.n_rx);
        free(r.body);
        n = log_wait("/big", "HTTP/2.0", 1);
        is_int(n.with_protocol, 1, "h2 GET: nginx saw it over HTTP/2.0");

        run_get("missing", &r);
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 1, "h2 404: NACK");
        is_int(r.ack[SS_STATE_QOS_NACK_REMOTE], 404, "h2 404: ack is the status");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 0, "h2 404: no ACK");
        is_int(r.n_eom, 1, "h2 404: its body arrives, EOM once");
        free(r.body);

        /* nginx answers 444 over h2 with RST_STREAM: a failed transaction, retried. */
        rec_init(&r);
        s = open_stream("reset", &r);
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_three_drops, &r, 10000), "h2 RST_STREAM: dropped (%s)",
           r.states);
        (void) ss_peers_run_until(never, NULL, 800);
        ss_stream_free(s);
        is_int(r.count[SS_STATE_CONNECTING], 3,
               "h2 RST_STREAM: retried twice (conceal 2), then idle");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE] + r.count[SS_STATE_QOS_NACK_REMOTE], 0,
               "h2 RST_STREAM: neither ACK nor NACK");
        is_int(r.n_rx, 0, "h2 RST_STREAM: no rx");
        free(r.body);

        run_get("expect404", &r);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h2 http_expect 404: ACK");
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
        LogCount n;
        SsStream *s;
        Rec r;

        truncate_log();
        rec_init(&r);
        r.tx_size = PEERS_BIG_SIZE;
        s = open_stream("put_len", &r);
        (void) ss_stream_request_tx_len(s, PEERS_BIG_SIZE);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h2 PUT with length (%s)", r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h2 PUT with length: ACK (%u)",
               (unsigned) r.ack[SS_STATE_QOS_NACK_REMOTE]);
        ok(file_matches("len.bin", PEERS_BIG_SIZE), "h2 PUT with length: byte for byte on disk");
        /* The peer's window: nginx opens 64 KiB per stream at first; never past 2^31 - 1. */
        cmp_int(r.tx_credit_min, >=, 0, "h2 PUT: send credit known while sending");
        cmp_int(r.tx_credit_max, >, 0, "h2 PUT: send credit above 0 at some point");
        cmp_int(r.tx_credit_max, <=, INT32_MAX, "h2 PUT: send credit within an h2 window");
        is_int(ss_stream_tx_credit(s), -1, "h2: no send credit without a connection");
        ss_stream_free(s);
        free(r.body);
        n = log_wait("/up/len.bin", "HTTP/2.0", 1);
        is_int(n.with_protocol, 1, "h2 PUT: nginx saw it over HTTP/2.0");

        rec_init(&r);
        r.tx_size = PEERS_BIG_SIZE;
        s = open_stream("put_nolen", &r);
        (void) ss_stream_request_tx(s);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h2 PUT without length (%s)", r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h2 PUT without length: ACK (%u)",
               (unsigned) r.ack[SS_STATE_QOS_NACK_REMOTE]);
        ok(file_matches("nolen.bin", PEERS_BIG_SIZE),
           "h2 PUT without length: byte for byte on disk");
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
static void test_upload_chained(void)
{
        LogCount n;
        SsStream *s;
        Rec r;

        truncate_log();
        rec_init(&r);
        r.tx_size = 20000;
        r.tx_again = 1;
        s = open_stream("put_nolen", &r);
        (void) ss_stream_request_tx(s);
        ok(ss_peers_run_until(done_two_acks, &r, 10000), "h2 PUT chained from tx: done (%s)",
           r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 2,
               "h2 PUT chained from tx: two transactions, both acknowledged");
        ss_stream_free(s);
        free(r.body);
        n = log_wait("/up/nolen.bin", "HTTP/2.0", 2);
        is_int(n.with_protocol, 2, "h2 PUT chained from tx: nginx saw two PUTs over HTTP/2.0");
}

static void test_fallback(void)
{
        LogCount n;
        SsStream *s;
        Rec r;

        truncate_log();
        run_get("fallback", &r);
        is_str(r.states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED DESTROYING",
               "h1 fall back: states");
        ok(body_is_big(&r), "h1 fall back: the exact 1 MiB");
        is_int(r.n_som, 1, "h1 fall back: SOM once");
        is_int(r.n_eom, 1, "h1 fall back: EOM once");
        free(r.body);
        n = log_wait("/big", "HTTP/1.1", 1);
        is_int(n.lines, 1, "h1 fall back: one request");
        is_int(n.with_protocol, 1, "h1 fall back: nginx saw HTTP/1.1");

        rec_init(&r);
        r.tx_size = PEERS_BIG_SIZE;
        s = open_stream("fallback_put", &r);
        (void) ss_stream_request_tx_len(s, PEERS_BIG_SIZE);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h1 fall back PUT (%s)", r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h1 fall back PUT: ACK");
        ok(file_matches("fb.bin", PEERS_BIG_SIZE), "h1 fall back PUT: byte for byte on disk");
        is_int(r.tx_credit_max, -1, "h1 fall back PUT: no send credit over h1");
        ss_stream_free(s);
        free(r.body);
}

static void test_flow_control(void)
{
        size_t held;
        SsStream *s;
        Rec r;

        rec_init(&r);
        r.pause_on_first_rx = true;
        s = open_stream("big", &r);
        (void) ss_stream_client_connect(s);
        (void) ss_peers_run_until(never, NULL, 700);
        held = r.body_len;
        is_int(r.n_rx, 1, "h2 rx paused: nothing more arrives after the first piece");
        ok(r.count[SS_STATE_QOS_ACK_REMOTE] == 0 && r.count[SS_STATE_DISCONNECTED] == 0,
           "h2 rx paused: the transaction waits (%s)", r.states);
        ss_stream_pause_rx(s, false);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h2 rx resumed: transaction done (%s)",
           r.states);
        cmp_int(held, <, PEERS_BIG_SIZE, "h2 rx paused: the server stopped at our window");
        ok(body_is_big(&r), "h2 rx resumed: the exact 1 MiB");
        is_int(r.n_eom, 1, "h2 rx resumed: EOM once");
        ss_stream_free(s);
        free(r.body);
}

/*
 * svalidping 1, svalidhup 2 with rx paused: the server sends nothing more
 * (our window is full), so only the answers to our PINGs keep the connection
 * alive; with nginx stopped they do not come and the connection is hung up.
 */
static bool got_rx(void *userdata)
{
        Rec *r = userdata;

        return r->n_rx > 0;
}

static void test_validity(void)
{
        uint64_t start;
        SsStream *s;
        Rec r;

        rec_init(&r);
        r.pause_on_first_rx = true;
        s = open_stream("big_valid", &r);
        (void) ss_stream_client_connect(s);
        (void) ss_peers_run_until(never, NULL, 3500);
        is_int(r.count[SS_STATE_DISCONNECTED], 0,
               "h2 PINGs answered: no hang-up in 3.5 s with svalidhup 2 (%s)", r.states);
        ss_stream_pause_rx(s, false);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h2 PINGs: transaction done (%s)",
           r.states);
        ok(body_is_big(&r), "h2 PINGs: the exact 1 MiB");
        ss_stream_free(s);
        free(r.body);

        rec_init(&r);
        r.pause_on_first_rx = true;
        s = open_stream("big_valid", &r);
        (void) ss_stream_client_connect(s);
        (void) ss_peers_run_until(got_rx, &r, 5000);
        (void) ss_peers_run_until(never, NULL, 200);
        nginx_signal_workers(SIGSTOP);
        start = peers_now_usec();
        ok(ss_peers_run_until(done_transaction, &r, 6000), "h2 PINGs unanswered: hang-up (%s)",
           r.states);
        cmp_int(peers_now_usec() - start, >=, 1500000, "h2 hang-up: not before svalidhup");
        cmp_int(peers_now_usec() - start, <, 4500000, "h2 hang-up: soon after svalidhup");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 0, "h2 hang-up: no ACK");
        nginx_signal_workers(SIGCONT);
        ss_stream_free(s);
        free(r.body);
}

/* ${file} in the url, metadata req as the request header X-Req, X-Reply back as rep. */
static void test_metadata(void)
{
        const char *value = NULL;
        size_t len = 0;
        SsStream *s;
        Rec r;

        rec_init(&r);
        s = open_stream("meta", &r);
        if (!s)
                return;
        is_int(ss_stream_set_metadata(s, "file", "meta", 4), 0, "set metadata file");
        is_int(ss_stream_set_metadata(s, "req", "AbC", 3), 0, "set metadata req");
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_transaction, &r, 10000), "h2 metadata: transaction done (%s)",
           r.states);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 1, "h2 metadata: ACK from /meta");
        is_str((char *) r.body, "m\n", "h2 metadata: the url expanded to /meta");
        is_int(ss_stream_get_metadata(s, "rep", &value, &len), 0, "h2 metadata: rep is set");
        is_str(value ? value : "", "r-AbC", "h2 metadata: X-Reply came back with X-Req's value");
        ss_stream_free(s);
        free(r.body);
}

static bool done_retried(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_QOS_NACK_REMOTE] >= 2 && r->count[SS_STATE_DISCONNECTED] >= 2;
}

static void test_503(void)
{
        uint64_t start = peers_now_usec();
        SsStream *s;
        Rec r;

        rec_init(&r);
        s = open_stream("busy", &r);
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_retried, &r, 8000), "h2 503: retried (%s)", r.states);
        is_int(r.ack[SS_STATE_QOS_NACK_REMOTE], 503, "h2 503: NACK 503");
        cmp_int(peers_now_usec() - start, >=, 1000000, "h2 503 with Retry-After: 1: waits >= 1 s");
        ss_stream_free(s);
        free(r.body);
}

static bool done_many(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_MANY; i++)
                if (!done_transaction(&r[i]))
                        return false;
        return true;
}

static void test_many(void)
{
        Rec r[N_MANY];
        SsStream *s[N_MANY];
        unsigned good = 0;

        truncate_log();
        for (unsigned i = 0; i < N_MANY; i++) {
                rec_init(&r[i]);
                s[i] = open_stream("many", &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        ok(ss_peers_run_until(done_many, r, 30000), "%u concurrent h2 GETs done", N_MANY);
        for (unsigned i = 0; i < N_MANY; i++) {
                good += r[i].count[SS_STATE_QOS_ACK_REMOTE] == 1 && body_is_big(&r[i]) &&
                        r[i].n_eom == 1;
                ss_stream_free(s[i]);
                free(r[i].body);
        }
        is_int(good, N_MANY, "every concurrent GET: ACK and the exact 1 MiB");
        is_int(log_wait("/big?many", "HTTP/2.0", N_MANY).with_protocol, N_MANY,
               "nginx saw %u h2 requests", N_MANY);
        if (!is_int(log_connections("?many"), 1, "%u concurrent h2 GETs: one TCP connection",
                    N_MANY))
                log_dump();
}

/*
 * One connection, mixed fates: GETs of 1 MiB, a 404 (NACK) and a stream the
 * server resets (retried), side by side; the reset and the NACK take nothing
 * from the others, and nobody opens a connection of their own.
 */
#define N_MIXED 8

static bool done_mixed(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_MIXED + 1; i++)
                if (!done_transaction(&r[i]))
                        return false;
        return done_three_drops(&r[N_MIXED + 1]);
}

static void test_mixed(void)
{
        Rec r[N_MIXED + 2];
        SsStream *s[N_MIXED + 2];
        unsigned good = 0;

        truncate_log();
        for (unsigned i = 0; i < N_MIXED + 2; i++) {
                rec_init(&r[i]);
                s[i] = open_stream(i < N_MIXED    ? "mixed"
                                   : i == N_MIXED ? "mixed404"
                                                  : "mixedreset",
                                   &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        ok(ss_peers_run_until(done_mixed, r, 30000), "mixed h2 streams done");
        for (unsigned i = 0; i < N_MIXED; i++)
                good += r[i].count[SS_STATE_QOS_ACK_REMOTE] == 1 && body_is_big(&r[i]) &&
                        r[i].n_eom == 1 && r[i].count[SS_STATE_DISCONNECTED] == 1;
        is_int(good, N_MIXED, "mixed: every GET beside the 404 and the reset: ACK, exact 1 MiB");
        is_int(r[N_MIXED].count[SS_STATE_QOS_NACK_REMOTE], 1, "mixed: the 404 is a NACK");
        is_int(r[N_MIXED].ack[SS_STATE_QOS_NACK_REMOTE], 404, "mixed: NACK 404");
        is_int(r[N_MIXED + 1].count[SS_STATE_QOS_ACK_REMOTE] +
                   r[N_MIXED + 1].count[SS_STATE_QOS_NACK_REMOTE],
               0, "mixed: the reset stream gets neither ACK nor NACK");
        for (unsigned i = 0; i < N_MIXED + 2; i++) {
                ss_stream_free(s[i]);
                free(r[i].body);
        }
        (void) log_wait("/reset?mixed", "HTTP/2.0", 3);
        is_int(log_wait("/big?mixed", "HTTP/2.0", N_MIXED).with_protocol, N_MIXED,
               "mixed: nginx saw %u h2 GETs", N_MIXED);
        if (!is_int(log_connections("?mixed"), 1, "mixed: all of it over one TCP connection"))
                log_dump();
}

/*
 * nginx ends a connection with GOAWAY after 10 requests (keepalive_requests):
 * the requests it refused unprocessed (REFUSED_STREAM) go again on a new
 * connection without the streams seeing anything of it.
 */
#define N_GOAWAY 30

static bool done_goaway(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_GOAWAY; i++)
                if (!done_transaction(&r[i]))
                        return false;
        return true;
}

static void test_goaway(void)
{
        Rec r[N_GOAWAY];
        SsStream *s[N_GOAWAY];
        unsigned good = 0;
        LogCount n;

        truncate_log();
        for (unsigned i = 0; i < N_GOAWAY; i++) {
                rec_init(&r[i]);
                s[i] = open_stream("short", &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        ok(ss_peers_run_until(done_goaway, r, 30000), "GOAWAY: %u GETs done", N_GOAWAY);
        for (unsigned i = 0; i < N_GOAWAY; i++) {
                good += streq(r[i].states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE "
                                           "DISCONNECTED") &&
                        r[i].body && streq((char *) r[i].body, "small\n");
                if (i == 0 || !streq(r[i].states, r[0].states))
                        tap_diag("stream %u: %s", i, r[i].states);
        }
        is_int(good, N_GOAWAY, "GOAWAY: every stream one clean transaction with its body");
        for (unsigned i = 0; i < N_GOAWAY; i++) {
                ss_stream_free(s[i]);
                free(r[i].body);
        }
        n = log_wait("/small", "HTTP/2.0", N_GOAWAY);
        is_int(n.with_protocol, N_GOAWAY, "GOAWAY: nginx served each request once");
        cmp_int(n.connections, >=, 3, "GOAWAY: over at least 3 connections of 10 requests");
}

/*
 * A long_poll stream gets its response body piece by piece as it comes (nginx
 * sends 1 MiB at 4 KiB/s: four minutes), while GETs on the same connection
 * come and go; destroying it resets its h2 stream only.
 */
static bool done_poll_rx(void *userdata)
{
        Rec *r = userdata; /* the poll stream, then the GET beside it */

        return r[0].n_rx >= 2 && done_transaction(&r[1]);
}

static void test_long_poll(void)
{
        Rec r[2];
        SsStream *poll, *get;
        LogCount n;

        truncate_log();
        rec_init(&r[0]);
        rec_init(&r[1]);
        poll = open_stream("poll", &r[0]);
        get = open_stream("poll_get", &r[1]);
        (void) ss_stream_client_connect(poll);
        (void) ss_stream_client_connect(get);
        ok(ss_peers_run_until(done_poll_rx, r, 10000),
           "long_poll: pieces arrive while a GET completes");
        /* Without long_poll nothing would arrive before 16 KiB did (4 s at this rate). */
        ok(r[0].n_som == 1 && r[0].n_eom == 0 && r[0].body_len < SS_RX_CHUNK,
           "long_poll: SOM, no EOM, %zu bytes in %u pieces so far", r[0].body_len, r[0].n_rx);
        is_int(r[0].count[SS_STATE_QOS_ACK_REMOTE] + r[0].count[SS_STATE_DISCONNECTED], 0,
               "long_poll: the stream stays open (%s)", r[0].states);
        for (size_t i = 0; i < r[0].body_len && i < PEERS_BIG_SIZE; i++)
                if (r[0].body[i] != peers_big_byte(i)) {
                        ok(false, "long_poll: byte %zu differs", i);
                        break;
                }
        ok(r[1].count[SS_STATE_QOS_ACK_REMOTE] == 1 && body_is_big(&r[1]),
           "long_poll: the GET beside it: ACK, the exact 1 MiB");
        /* The GET's stream holds the trust store: the connection stays, idle. */
        ss_stream_free(poll);
        free(r[0].body);
        free(r[1].body);
        rec_init(&r[1]);
        (void) ss_stream_client_connect(get);
        ok(ss_peers_run_until(done_transaction, &r[1], 10000) &&
               r[1].count[SS_STATE_QOS_ACK_REMOTE] == 1 && body_is_big(&r[1]),
           "long_poll: reset, then another GET (%s)", r[1].states);
        ss_stream_free(get);
        free(r[1].body);
        n = log_wait("/big?poll", "HTTP/2.0", 2);
        is_int(n.with_protocol, 2, "long_poll: nginx served both GETs over h2");
        if (!is_int(log_connections("?poll"), 1, "long_poll: all on one connection"))
                log_dump();
}

/*
 * Several streams to a server without h2 (TLS without http2 in ALPN, or no
 * TLS at all): they wait on one connection attempt; when it turns out to
 * speak HTTP/1.1 it goes to one of them and every other opens its own.
 */
#define N_FALLBACK 5

static bool done_fallback(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_FALLBACK; i++)
                if (!done_transaction(&r[i]))
                        return false;
        return true;
}

static void test_fallback_many(const char *type, const char *uri)
{
        Rec r[N_FALLBACK];
        SsStream *s[N_FALLBACK];
        unsigned good = 0;
        LogCount n;

        for (unsigned i = 0; i < N_FALLBACK; i++) {
                rec_init(&r[i]);
                s[i] = open_stream(type, &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        ok(ss_peers_run_until(done_fallback, r, 20000), "%s: %u GETs done", type, N_FALLBACK);
        for (unsigned i = 0; i < N_FALLBACK; i++) {
                good += streq(r[i].states, "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE "
                                           "DISCONNECTED") &&
                        body_is_big(&r[i]) && r[i].n_eom == 1;
                ss_stream_free(s[i]);
                free(r[i].body);
        }
        is_int(good, N_FALLBACK, "%s: each one clean transaction, the exact 1 MiB", type);
        n = log_wait(uri, "HTTP/1.1", N_FALLBACK);
        is_int(n.with_protocol, N_FALLBACK, "%s: nginx saw %u requests over HTTP/1.1", type,
               N_FALLBACK);
        is_int(n.connections, N_FALLBACK, "%s: one connection each", type);
}

/*
 * nginx allows 4 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS). Ten
 * streams started before any connection is up all wait for the first one and
 * join it: the requests past the limit queue there. With that connection up
 * and idle (the limit known), ten more take 4 places on it and open a second
 * connection for the rest.
 */
#define N_FEW 10

static bool done_few(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_FEW; i++)
                if (!done_transaction(&r[i]))
                        return false;
        return true;
}

static unsigned run_few(SsStream **s, Rec *r)
{
        unsigned good = 0;

        for (unsigned i = 0; i < N_FEW; i++) {
                rec_init(&r[i]);
                s[i] = open_stream("few", &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        (void) ss_peers_run_until(done_few, r, 20000);
        for (unsigned i = 0; i < N_FEW; i++)
                good += r[i].count[SS_STATE_QOS_ACK_REMOTE] == 1 && r[i].body &&
                        streq((char *) r[i].body, "small\n");
        return good;
}

static void free_few(SsStream **s, Rec *r)
{
        for (unsigned i = 0; i < N_FEW; i++) {
                ss_stream_free(s[i]);
                free(r[i].body);
        }
}

static void test_stream_limit(void)
{
        SsStream *s[N_FEW], *again[N_FEW];
        Rec r[N_FEW], r2[N_FEW];

        truncate_log();
        is_int(run_few(s, r), N_FEW, "limit 4: %u streams started together all ACK", N_FEW);
        (void) log_wait("/small?few", "HTTP/2.0", N_FEW);
        is_int(log_connections("?few"), 1, "limit 4: they queue on one connection");

        /* s[] still hold the trust store: their connection stays, idle. */
        truncate_log();
        is_int(run_few(again, r2), N_FEW, "limit 4, connection up: %u more all ACK", N_FEW);
        (void) log_wait("/small?few", "HTTP/2.0", N_FEW);
        is_int(log_connections("?few"), 2,
               "limit 4, connection up: 4 on it, a second one for the rest");
        free_few(s, r);
        free_few(again, r2);
}

/*
 * The connection breaks (nginx's worker killed; the master starts another):
 * every stream on it fails its transaction and is retried as usual, and the
 * retries complete.
 */
#define N_LOST 5

static bool done_all_rx(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_LOST; i++)
                if (r[i].n_rx == 0)
                        return false;
        return true;
}

static bool done_lost(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_LOST; i++)
                if (r[i].count[SS_STATE_CONNECTING] < 2)
                        return false;
        return true;
}

static bool done_acked(void *userdata)
{
        Rec *r = userdata;

        for (unsigned i = 0; i < N_LOST; i++)
                if (r[i].count[SS_STATE_QOS_ACK_REMOTE] == 0)
                        return false;
        return true;
}

static void test_connection_lost(void)
{
        Rec r[N_LOST];
        SsStream *s[N_LOST];
        unsigned dropped = 0;

        for (unsigned i = 0; i < N_LOST; i++) {
                rec_init(&r[i]);
                r[i].pause_on_first_rx = true;
                s[i] = open_stream("big", &r[i]);
                if (s[i])
                        (void) ss_stream_client_connect(s[i]);
        }
        ok(ss_peers_run_until(done_all_rx, r, 10000), "connection lost: every stream is receiving");
        nginx_signal_workers(SIGKILL);
        ok(ss_peers_run_until(done_lost, r, 10000), "connection lost: every stream connects again");
        for (unsigned i = 0; i < N_LOST; i++)
                dropped += r[i].count[SS_STATE_DISCONNECTED] == 1 &&
                           r[i].count[SS_STATE_QOS_ACK_REMOTE] == 0;
        is_int(dropped, N_LOST, "connection lost: each stream DISCONNECTED once, no ACK");
        for (unsigned i = 0; i < N_LOST; i++)
                ss_stream_pause_rx(s[i], false);
        ok(ss_peers_run_until(done_acked, r, 20000),
           "connection lost: the retries complete with ACK");
        for (unsigned i = 0; i < N_LOST; i++) {
                ss_stream_free(s[i]);
                free(r[i].body);
        }
}

/* ---- policy ---------------------------------------------------------------------------- */

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

static void add_h2(char **json, const char *name, uint16_t port, const char *extra)
{
        append(json,
               "{\"%s\":{\"endpoint\":\"localhost\",\"port\":%u,\"protocol\":\"h2\","
               "\"tls\":true,\"tls_trust_store\":\"good\",\"retry\":\"quick\"%s%s}},",
               name, (unsigned) port, extra[0] ? "," : "", extra);
}

static char *policy_json(const Ports *p, const PeerCerts *c)
{
        char *json = strdup("");

        append(&json,
               "{\"release\":\"1\",\"product\":\"it\",\"schema-version\":1,"
               "\"retry\":[{\"quick\":{\"backoff\":[100,200],\"conceal\":2,\"jitterpc\":10}},"
               "{\"once\":{\"backoff\":[100],\"conceal\":1}},"
               "{\"valid\":{\"backoff\":[100],\"conceal\":0,\"svalidping\":1,"
               "\"svalidhup\":2}}],"
               "\"certs\":[{\"ca\":\"file:%s\"}],"
               "\"trust_stores\":[{\"name\":\"good\",\"stack\":[\"ca\"]}],\"s\":[",
               c->ca_pem);
        add_h2(&json, "big", p->h2, "\"http_url\":\"big\"");
        add_h2(&json, "missing", p->h2, "\"http_url\":\"missing\"");
        add_h2(&json, "meta", p->h2,
               "\"http_url\":\"${file}\",\"metadata\":[{\"file\":\"\"},"
               "{\"req\":\"X-Req:\"},{\"rep\":\"X-Reply:\"}]");
        add_h2(&json, "reset", p->h2, "\"http_url\":\"reset\"");
        add_h2(&json, "expect404", p->h2, "\"http_url\":\"missing\",\"http_expect\":404");
        add_h2(&json, "put_len", p->h2, "\"http_method\":\"PUT\",\"http_url\":\"up/len.bin\"");
        add_h2(&json, "put_nolen", p->h2, "\"http_method\":\"PUT\",\"http_url\":\"up/nolen.bin\"");
        add_h2(&json, "fallback", p->h1only, "\"http_url\":\"big\"");
        add_h2(&json, "fallback_put", p->h1only,
               "\"http_method\":\"PUT\",\"http_url\":\"up/fb.bin\"");
        add_h2(&json, "big_valid", p->h2, "\"http_url\":\"big\",\"retry\":\"valid\"");
        add_h2(&json, "busy", p->h2, "\"http_url\":\"busy\",\"retry\":\"once\"");
        add_h2(&json, "short", p->h2short, "\"http_url\":\"small\"");
        add_h2(&json, "few", p->h2few, "\"http_url\":\"small?few\"");
        add_h2(&json, "fallback_many", p->h1only, "\"http_url\":\"big?fbmany\"");
        add_h2(&json, "poll", p->h2, "\"http_url\":\"slow/big?poll\",\"long_poll\":true");
        add_h2(&json, "poll_get", p->h2, "\"http_url\":\"big?poll\"");
        append(&json,
               "{\"plain_many\":{\"endpoint\":\"localhost\",\"port\":%u,\"protocol\":\"h2\","
               "\"http_url\":\"big?plainmany\",\"retry\":\"quick\"}},",
               (unsigned) p->plain);
        add_h2(&json, "many", p->h2, "\"http_url\":\"big?many\"");
        add_h2(&json, "mixed", p->h2, "\"http_url\":\"big?mixed\"");
        add_h2(&json, "mixed404", p->h2, "\"http_url\":\"missing?mixed\"");
        add_h2(&json, "mixedreset", p->h2, "\"http_url\":\"reset?mixed\"");
        /* Drop the last comma. */
        if (json)
                json[strlen(json) - 1] = 0;
        append(&json, "]}");
        return json;
}

int main(void)
{
        PeerCerts certs;
        Ports ports;

        peers_init(180);
        peer_certs_make(&certs);
        if (!peers_have("nginx") || !peers_have("curl"))
                tap_skip_all("nginx or curl is not installed");
        ports = (Ports){
            .plain = peers_free_port(),
            .h2 = peers_free_port(),
            .h1only = peers_free_port(),
            .h2short = peers_free_port(),
            .h2few = peers_free_port(),
        };
        nginx_run(&ports, &certs);

        ss_peers_start(policy_json(&ports, &certs), &event, &ctx);

        test_get();
        test_upload();
        test_upload_chained();
        test_fallback();
        test_metadata();
        test_flow_control();
        test_validity();
        test_503();
        test_many();
        test_mixed();
        test_goaway();
        test_long_poll();
        test_fallback_many("fallback_many", "/big?fbmany");
        test_fallback_many("plain_many", "/big?plainmany");
        test_stream_limit();
        test_connection_lost();

        ss_peers_stop(&ctx, &event);
        nginx_stop(&nginx);
        peer_certs_free(&certs);
        free(www);
        return peers_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 keep-alive of the Secure Streams h1 client against nginx, counted
 * from the server's side: nginx logs $connection (its connection serial
 * number) and $connection_requests for every request, so the log says how
 * many TCP connections a run used. Sequential GETs over TLS on one stream and
 * on a stream each, plain GETs with streams that never overlap, concurrent
 * streams, 1 MiB bodies, a server that closes after 10 requests
 * (keepalive_requests) and one that closes idle connections after a second
 * (keepalive_timeout), with and without the loop running meanwhile. Every
 * transaction must still show the stream the states of its own connection.
 */
#include <fcntl.h>
#include <signal.h>
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

static sd_event *event;
static SsContext *ctx;
static Nginx nginx = {.pid = -1};
static char *access_log;

/* ---- nginx, logging the connection of every request ------------------------------------ */

typedef struct Ports {
        uint16_t tls, plain, ten_requests, short_idle;
} Ports;

static void nginx_run(const Ports *p, const PeerCerts *c)
{
        char *conf = peers_path("reuse.conf"), *www = peers_path("reuse-www");
        char *big = peers_path("reuse-www/big");
        const char *d = peers_dir();
        FILE *f;

        access_log = peers_path("reuse-access.log");
        (void) mkdir(www, 0755);
        f = fopen(big, "we");
        if (f) {
                for (size_t i = 0; i < PEERS_BIG_SIZE; i++)
                        (void) fputc(peers_big_byte(i), f);
                (void) fclose(f);
        }

        f = fopen(conf, "we");
        if (!f)
                tap_skip_all("cannot write the nginx config");
        fprintf(
            f,
            "daemon off;\nworker_processes 1;\npid %s/reuse.pid;\nerror_log %s/reuse-error.log;\n"
            "user root;\nevents { worker_connections 1024; }\n"
            "http {\n  log_format conn '$server_port $connection $connection_requests $status';\n"
            "  access_log %s conn;\n  client_body_temp_path %s/reuse-body;\n"
            "  proxy_temp_path %s/reuse-proxy;\n  fastcgi_temp_path %s/reuse-fcgi;\n"
            "  uwsgi_temp_path %s/reuse-uwsgi;\n  scgi_temp_path %s/reuse-scgi;\n"
            "  default_type application/octet-stream;\n  root %s;\n"
            "  server {\n    listen 127.0.0.1:%u ssl;\n    ssl_certificate %s;\n"
            "    ssl_certificate_key %s;\n    location = / { return 200 \"hello\\n\"; }\n  }\n"
            "  server {\n    listen 127.0.0.1:%u;\n    location = / { return 200 \"hello\\n\"; }\n"
            "  }\n"
            "  server {\n    listen 127.0.0.1:%u;\n    keepalive_requests 10;\n"
            "    location = / { return 200 \"hello\\n\"; }\n  }\n"
            "  server {\n    listen 127.0.0.1:%u;\n    keepalive_timeout 1s;\n"
            "    location = / { return 200 \"hello\\n\"; }\n  }\n}\n",
            d, d, access_log, d, d, d, d, d, www, (unsigned) p->tls, c->server_pem, c->server_key,
            (unsigned) p->plain, (unsigned) p->ten_requests, (unsigned) p->short_idle);
        (void) fclose(f);

        nginx_start_conf(&nginx, conf, p->plain);
        free(www);
        free(big);
}

typedef struct LogCount {
        unsigned requests;    /* logged requests on the port */
        unsigned connections; /* distinct connections they came on */
        unsigned not_200;
} LogCount;

/* What nginx logged for port since the last call (which empties the log). */
static LogCount log_take(uint16_t port)
{
        LogCount c = {};
        unsigned long seen[512];
        unsigned n_seen = 0;
        char line[256];
        FILE *f;

        /* nginx writes each line as the request ends: give the last one a moment. */
        usleep(50000);
        f = fopen(access_log, "re");
        if (!f)
                return c;
        while (fgets(line, sizeof(line), f)) {
                unsigned long p, conn, reqs;
                unsigned status;
                bool known = false;

                if (sscanf(line, "%lu %lu %lu %u", &p, &conn, &reqs, &status) != 4 || p != port)
                        continue;
                c.requests++;
                if (status != 200)
                        c.not_200++;
                for (unsigned i = 0; i < n_seen && !known; i++)
                        known = seen[i] == conn;
                if (!known && n_seen < ELEMENTSOF(seen))
                        seen[n_seen++] = conn;
        }
        (void) fclose(f);
        c.connections = n_seen;
        (void) truncate(access_log, 0); /* nginx appends (O_APPEND) */
        return c;
}

/* ---- streams --------------------------------------------------------------------------- */

typedef struct Rec {
        char states[256]; /* of the current transaction */
        unsigned acks, nacks, disconnects, failures;
        unsigned connecting, connected;
        bool sequence_ok; /* every transaction: CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED */
        size_t body_len;
        bool body_ok;
        bool destroy_on_done;
} Rec;

static void rec_init(Rec *r)
{
        *r = (Rec){.sequence_ok = true, .body_ok = true};
}

static SsResult rec_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Rec *r = userdata;
        size_t n = strlen(r->states);

        if (state == SS_STATE_CREATING || state == SS_STATE_DESTROYING)
                return SS_OK;
        if (n + 24 < sizeof(r->states))
                snprintf(r->states + n, sizeof(r->states) - n, "%s%s", n ? " " : "",
                         ss_state_to_string(state));
        switch (state) {
        case SS_STATE_CONNECTING:
                r->connecting++;
                break;
        case SS_STATE_CONNECTED:
                r->connected++;
                break;
        case SS_STATE_QOS_ACK_REMOTE:
                r->acks++;
                break;
        case SS_STATE_QOS_NACK_REMOTE:
                r->nacks++;
                break;
        case SS_STATE_DISCONNECTED:
                r->disconnects++;
                if (!streq(r->states, "CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED")) {
                        if (r->sequence_ok)
                                tap_diag("transaction %u: %s", r->disconnects, r->states);
                        r->sequence_ok = false;
                }
                r->states[0] = 0;
                break;
        case SS_STATE_UNREACHABLE:
        case SS_STATE_ALL_RETRIES_FAILED:
        case SS_STATE_TIMEOUT:
                r->failures++;
                break;
        default:
                break;
        }
        if (r->destroy_on_done && (state == SS_STATE_QOS_ACK_REMOTE || r->failures > 0))
                return SS_DESTROY_ME;
        return SS_OK;
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;

        if (flags & SS_FLAG_SOM)
                r->body_len = 0;
        for (size_t i = 0; i < len && r->body_ok; i++)
                r->body_ok = buf[i] == peers_big_byte(r->body_len + i);
        r->body_len += len;
        return SS_OK;
}

static const SsStreamHandlers handlers = {.rx = rec_rx, .state = rec_state};
static const SsStreamHandlers handlers_small = {.state = rec_state};

typedef struct Wait {
        Rec *r;
        unsigned disconnects; /* done when r has this many */
} Wait;

static bool done_disconnects(void *userdata)
{
        Wait *w = userdata;

        return w->r->disconnects >= w->disconnects || w->r->failures > 0;
}

/* n GETs one after the other on stream s; false when one did not finish. */
static bool get_sequential(SsStream *s, Rec *r, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                Wait w = {.r = r, .disconnects = r->disconnects + 1};

                (void) ss_stream_request_tx(s);
                if (!ss_peers_run_until(done_disconnects, &w, 10000) || r->failures > 0)
                        return false;
        }
        return true;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_one_stream_tls(const Ports *p)
{
        Rec r;
        SsStream *s = NULL;
        LogCount c;

        rec_init(&r);
        (void) log_take(p->tls);
        is_int(ss_stream_new(&s, ctx, "tls", &handlers_small, &r), 0, "TLS stream");
        ok(get_sequential(s, &r, 50), "50 sequential GETs over TLS on one stream");
        is_int(r.acks, 50, "50 ACKs");
        ok(r.sequence_ok, "each one: CONNECTING CONNECTED QOS_ACK_REMOTE DISCONNECTED");
        c = log_take(p->tls);
        is_int(c.requests, 50, "nginx saw 50 requests");
        is_int(c.connections, 1, "on 1 TLS connection");
        is_int(ss_context_n_idle_connections(ctx), 1, "idle in the pool afterwards");
        ss_stream_free(s);
        is_int(ss_context_n_idle_connections(ctx), 0,
               "closed with the last stream of its trust store");
}

static void test_stream_each(const Ports *p)
{
        Rec holder_rec, r;
        SsStream *holder = NULL, *s = NULL;
        LogCount c;
        unsigned acks = 0;
        bool sequence_ok = true;

        /* TLS: a stream per GET, one after the other; another stream keeps the trust store. */
        rec_init(&holder_rec);
        (void) ss_stream_new(&holder, ctx, "tls", &handlers_small, &holder_rec);
        (void) log_take(p->tls);
        for (unsigned i = 0; i < 50; i++) {
                rec_init(&r);
                if (ss_stream_new(&s, ctx, "tls", &handlers_small, &r) < 0)
                        break;
                if (!get_sequential(s, &r, 1))
                        tap_diag("GET %u: %s", i, r.states);
                acks += r.acks;
                sequence_ok = sequence_ok && r.sequence_ok;
                ss_stream_free(s);
        }
        is_int(acks, 50, "50 streams over TLS, one after the other: 50 ACKs");
        ok(sequence_ok, "every stream got the states of a connection of its own");
        c = log_take(p->tls);
        is_int(c.requests, 50, "nginx saw 50 requests");
        is_int(c.connections, 1, "on 1 TLS connection");
        ss_stream_free(holder);

        /* Plain: nothing outlives a stream but the idle connection. */
        (void) log_take(p->plain);
        acks = 0;
        for (unsigned i = 0; i < 50; i++) {
                rec_init(&r);
                if (ss_stream_new(&s, ctx, "plain", &handlers_small, &r) < 0)
                        break;
                (void) get_sequential(s, &r, 1);
                acks += r.acks;
                ss_stream_free(s);
        }
        is_int(acks, 50, "50 plain streams that never overlap: 50 ACKs");
        c = log_take(p->plain);
        is_int(c.connections, 1, "on 1 connection");
        ss_context_drop_idle_connections(ctx);
}

static void test_big(const Ports *p)
{
        Rec r;
        SsStream *s = NULL;
        LogCount c;

        rec_init(&r);
        (void) log_take(p->tls);
        (void) ss_stream_new(&s, ctx, "tls_big", &handlers, &r);
        ok(get_sequential(s, &r, 5), "five 1 MiB GETs over TLS");
        is_int(r.acks, 5, "five ACKs");
        is_int(r.body_len, PEERS_BIG_SIZE, "1 MiB each");
        ok(r.body_ok, "the exact bytes, every time");
        c = log_take(p->tls);
        is_int(c.connections, 1, "on 1 connection");
        ss_stream_free(s);
}

typedef struct Batch {
        Rec *recs;
        unsigned n;
} Batch;

static bool done_batch(void *userdata)
{
        Batch *b = userdata;

        for (unsigned i = 0; i < b->n; i++)
                if (b->recs[i].acks == 0 && b->recs[i].failures == 0)
                        return false;
        return true;
}

static void test_concurrent(const Ports *p)
{
        Rec holder_rec, recs[10];
        SsStream *holder = NULL;
        Batch b = {.recs = recs, .n = ELEMENTSOF(recs)};
        unsigned acks = 0;
        LogCount c;

        rec_init(&holder_rec);
        (void) ss_stream_new(&holder, ctx, "tls", &handlers_small, &holder_rec);
        (void) log_take(p->tls);
        for (unsigned round = 0; round < 5; round++) {
                for (unsigned i = 0; i < ELEMENTSOF(recs); i++) {
                        SsStream *s;

                        rec_init(&recs[i]);
                        recs[i].destroy_on_done = true;
                        if (ss_stream_new(&s, ctx, "tls", &handlers_small, &recs[i]) == 0)
                                (void) ss_stream_client_connect(s);
                }
                if (!ss_peers_run_until(done_batch, &b, 10000))
                        break;
                for (unsigned i = 0; i < ELEMENTSOF(recs); i++)
                        acks += recs[i].acks;
        }
        is_int(acks, 50, "5 rounds of 10 concurrent TLS streams: 50 ACKs");
        c = log_take(p->tls);
        is_int(c.requests, 50, "nginx saw 50 requests");
        cmp_int(c.connections, <=, 10, "on at most 10 connections");
        tap_diag("concurrent: %u connections", c.connections);
        is_int(ss_context_n_streams(ctx), 1, "the streams destroyed themselves");
        ss_stream_free(holder);
}

static void test_server_closes(const Ports *p)
{
        Rec r;
        SsStream *s = NULL;
        LogCount c;

        /* keepalive_requests 10: the tenth response says Connection: close. */
        rec_init(&r);
        (void) log_take(p->ten_requests);
        (void) ss_stream_new(&s, ctx, "ten", &handlers_small, &r);
        ok(get_sequential(s, &r, 50), "50 GETs from a server that closes after 10");
        is_int(r.acks, 50, "50 ACKs");
        ok(r.sequence_ok, "no failure seen by the stream");
        c = log_take(p->ten_requests);
        is_int(c.connections, 5, "5 connections of 10 requests");
        ss_stream_free(s);

        /* keepalive_timeout 1s, the loop running: the pool sees the close. */
        rec_init(&r);
        (void) log_take(p->short_idle);
        (void) ss_stream_new(&s, ctx, "short_idle", &handlers_small, &r);
        (void) get_sequential(s, &r, 1);
        is_int(ss_context_n_idle_connections(ctx), 1, "idle after the first GET");
        {
                uint64_t end = peers_now_usec() + 1500000;

                while (peers_now_usec() < end)
                        (void) sd_event_run(event, 20000);
        }
        is_int(ss_context_n_idle_connections(ctx), 0, "closed by nginx after 1 s: dropped");
        (void) get_sequential(s, &r, 1);

        /* The same without running the loop: found closed when taken. */
        usleep(1500000);
        ok(get_sequential(s, &r, 1), "a GET after nginx closed the idle connection unseen");
        is_int(r.acks, 3, "three ACKs");
        ok(r.sequence_ok, "no failure seen by the stream");
        c = log_take(p->short_idle);
        is_int(c.connections, 3, "3 connections");
        ss_stream_free(s);
        ss_context_drop_idle_connections(ctx);
}

static char *policy_json(const Ports *p, const PeerCerts *c)
{
        char *json = NULL;

        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"it\",\"schema-version\":1,"
                     "\"retry\":[{\"none\":{\"backoff\":[100],\"conceal\":0}}],"
                     "\"certs\":[{\"ca\":\"file:%s\"}],"
                     "\"trust_stores\":[{\"name\":\"good\",\"stack\":[\"ca\"]}],\"s\":["
                     "{\"tls\":{\"endpoint\":\"localhost\",\"port\":%u,\"protocol\":\"h1\","
                     "\"tls\":true,\"tls_trust_store\":\"good\",\"retry\":\"none\"}},"
                     "{\"tls_big\":{\"endpoint\":\"localhost\",\"port\":%u,\"protocol\":\"h1\","
                     "\"http_url\":\"big\",\"tls\":true,\"tls_trust_store\":\"good\","
                     "\"retry\":\"none\"}},"
                     "{\"plain\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\","
                     "\"retry\":\"none\"}},"
                     "{\"ten\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\","
                     "\"retry\":\"none\"}},"
                     "{\"short_idle\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\","
                     "\"retry\":\"none\"}}]}",
                     c->ca_pem, (unsigned) p->tls, (unsigned) p->tls, (unsigned) p->plain,
                     (unsigned) p->ten_requests, (unsigned) p->short_idle) < 0)
                return NULL;
        return json;
}

int main(void)
{
        PeerCerts certs;
        Ports ports;
        unsigned fds;

        peers_init(120);
        peer_certs_make(&certs);
        if (!peers_have("nginx") || !peers_have("curl"))
                tap_skip_all("nginx or curl is not installed");
        ports = (Ports){
            .tls = peers_free_port(),
            .plain = peers_free_port(),
            .ten_requests = peers_free_port(),
            .short_idle = peers_free_port(),
        };
        nginx_run(&ports, &certs);

        ss_peers_start(policy_json(&ports, &certs), &event, &ctx);
        fds = peers_count_fds();

        test_one_stream_tls(&ports);
        test_stream_each(&ports);
        test_big(&ports);
        test_concurrent(&ports);
        test_server_closes(&ports);

        is_int(ss_context_n_idle_connections(ctx), 0, "nothing idle at the end");
        is_int(peers_count_fds(), fds, "no fd left open");
        ss_peers_stop(&ctx, &event);
        nginx_stop(&nginx);
        peer_certs_free(&certs);
        free(access_log);
        return peers_done();
}

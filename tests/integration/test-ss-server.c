/* SPDX-License-Identifier: MIT */
/*
 * Server streamtypes over HTTP/1.1 (issue 11) against curl, plain, TLS (the
 * test CA) and on a unix socket: status, headers and exact bodies (Content-Length
 * and chunked), metadata from the query and request headers, 404 when the
 * application does not answer, keep-alive on one connection, a 1 MiB upload
 * arriving byte-exact; hostile clients: a slowloris client closed with 408 at
 * the header timeout while curl is served throughout, 1,000 idle connections
 * that do not stop curl, a 1 MiB header answered with 431 and a close, a bad
 * request answered with 400; destroying the server stream stops listening;
 * a TLS server stream whose server_key file is missing, or whose server_cert
 * file is over 1 MiB, is not created, with an error naming the file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "ss-peers.h"
#include "stream.h"
#include "tap.h"

#define HOSTILE_IDLE      1000
#define HEADER_TIMEOUT_MS 3000

static sd_event *event;
static SsContext *ctx;
static PeerCerts certs;
static uint16_t port_plain, port_tls;
static char *unix_path;
static unsigned connected_count;
static SsStream *free_on_connect; /* a server stream its first connection destroys */
static uint16_t port_free;
static char *missing_key, *big_cert;

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        const char *method, *path, *v;
        SsPeersReq *c;

        (void) userdata;
        (void) ack;
        if (state == SS_STATE_CONNECTED) {
                connected_count++;
                if (free_on_connect && ss_stream_server_get_parent(s) == free_on_connect)
                        free_on_connect = ss_stream_free(free_on_connect);
                return SS_OK;
        }
        if (state == SS_STATE_DESTROYING) {
                ss_peers_req_forget(s);
                return SS_OK;
        }
        if (state != SS_STATE_SERVER_TXN)
                return SS_OK;
        c = ss_peers_req_get(s);
        if (!c || ss_stream_server_get_request(s, &method, &path) < 0)
                return SS_DISCONNECT_ME;
        c->pieces = 0;
        c->upload = 0;
        c->upload_ok = true;
        if (strcmp(path, "/hello") == 0)
                ss_peers_respond(s, c, 0, "hello world\n", true);
        else if (strcmp(path, "/chunked") == 0) {
                c->body = "";
                c->left = 0;
                (void) ss_stream_server_ack(s, 201);
                (void) ss_stream_request_tx(s);
        } else if (strcmp(path, "/echo") == 0) {
                const char *name = NULL, *token = NULL, *m = NULL;

                (void) ss_stream_get_metadata(s, "name", &name, NULL);
                (void) ss_stream_get_metadata(s, "token", &token, NULL);
                (void) ss_stream_get_metadata(s, "method", &m, NULL);
                snprintf(c->reply, sizeof(c->reply), "%s name=%s token=%s\n", m ? m : "-",
                         name ? name : "-", token ? token : "-");
                ss_peers_respond(s, c, 0, c->reply, false);
        } else if (strcmp(path, "/upload") == 0) {
                /* answered at the rx with EOM */
        } else if (strcmp(path, "/teapot") == 0)
                ss_peers_respond(s, c, 418, "short and stout\n", true);
        (void) v;
        return SS_OK;
}

/* ---- running clients while the loop serves ------------------------------------------------ */

/* ---- raw clients (children) ---------------------------------------------------------------- */

typedef struct Raw {
        const char *request;
        size_t size;
        char *out_file;    /* what came back */
        unsigned interval; /* slowloris: ms between bytes after the request line; 0: at once */
        bool shut;         /* shut down the sending side once the request is sent */
} Raw;

/* Sends the request (or trickles it) and records the answer and the seconds until EOF. */
static int raw_client(void *arg)
{
        Raw *raw = arg;
        char buf[4096];
        size_t got = 0, sent = 0;
        uint64_t start = peers_now_usec();
        int fd = peers_connect_port(port_plain), out;

        if (fd < 0)
                return 2;
        out = open(raw->out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0)
                return 3;
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int n;

                if (sent < raw->size) {
                        size_t chunk = raw->interval ? 1 : raw->size - sent;

                        if (raw->interval && sent == 0)
                                chunk = 16; /* the request line at once */
                        if (chunk > raw->size - sent)
                                chunk = raw->size - sent;
                        n = (int) send(fd, raw->request + sent, chunk, MSG_NOSIGNAL);
                        if (n > 0)
                                sent += (size_t) n;
                        if (raw->shut && sent == raw->size)
                                (void) shutdown(fd, SHUT_WR);
                }
                n = poll(&p, 1, raw->interval ? (int) raw->interval : 20000);
                if (n < 0)
                        return 4;
                if (n == 0) {
                        if (!raw->interval)
                                return 5;
                        continue;
                }
                n = (int) recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (write(out, buf, (size_t) n) != n)
                        return 6;
        }
        dprintf(out, "\nELAPSED %llu\n", (unsigned long long) ((peers_now_usec() - start) / 1000));
        close(out);
        close(fd);
        (void) got;
        return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_basic(const char *name, const char *base, const char *const *extra)
{
        char url[256];
        char *body = NULL, *head = NULL;
        unsigned code = 0;
        const char *args[12];
        size_t n;

#define ARGS(...)                                              \
        do {                                                   \
                const char *a_[] = {__VA_ARGS__};              \
                n = 0;                                         \
                for (size_t i_ = 0; extra[i_]; i_++)           \
                        args[n++] = extra[i_];                 \
                for (size_t i_ = 0; i_ < ELEMENTSOF(a_); i_++) \
                        args[n++] = a_[i_];                    \
                args[n] = NULL;                                \
        } while (0)

        snprintf(url, sizeof(url), "%s/hello", base);
        ARGS(url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /hello", name);
        is_int(code, 200, "%s: status 200", name);
        is_str(body, "hello world\n", "%s: exact body", name);
        ok(ss_peers_has_header(head, "HTTP/1.1 200 OK\r\n"), "%s: status line", name);
        ok(ss_peers_has_header(head, "\r\ncontent-type: text/plain\r\n"),
           "%s: content-type from metadata", name);
        ok(ss_peers_has_header(head, "\r\nContent-Length: 12\r\n"), "%s: Content-Length", name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/chunked", base);
        ARGS(url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /chunked", name);
        is_int(code, 201, "%s: status 201", name);
        is_str(body, "one,two,three\n", "%s: chunked body", name);
        ok(ss_peers_has_header(head, "\r\nTransfer-Encoding: chunked\r\n"), "%s: chunked framing",
           name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/missing", base);
        ARGS(url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /missing", name);
        is_int(code, 404, "%s: 404 without an answer", name);
        ok(!body || !*body, "%s: empty 404 body", name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/teapot", base);
        ARGS(url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /teapot", name);
        is_int(code, 418, "%s: the status the application chose", name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/echo?x=1&name=J%%C3%%B6rg+K&y", base);
        ARGS("-H", "X-Token: t1", url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /echo", name);
        is_str(body, "GET name=J\xc3\xb6rg K token=t1\n",
               "%s: method, query argument and header as metadata", name);
        ok(!ss_peers_has_header(head, "X-Token"), "%s: request metadata is not echoed", name);
        free(body);
        free(head);

        /* keep-alive: two requests, one connection */
        {
                unsigned before = connected_count;
                char url2[256];

                snprintf(url, sizeof(url), "%s/hello", base);
                snprintf(url2, sizeof(url2), "%s/teapot", base);
                ARGS(url, "-o", "/dev/null", url2);
                is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: two URLs", name);
                is_int(connected_count - before, 1, "%s: on one connection", name);
                is_int(code, 200418, "%s: both answered (200, then 418)", name);
                free(body);
                free(head);
        }

        /* 1 MiB upload, byte-exact */
        {
                char *file = peers_path("upload.bin"), data[300];
                FILE *f = fopen(file, "we");

                for (size_t i = 0; f && i < PEERS_BIG_SIZE; i += sizeof(data)) {
                        size_t k =
                            PEERS_BIG_SIZE - i < sizeof(data) ? PEERS_BIG_SIZE - i : sizeof(data);

                        for (size_t j = 0; j < k; j++)
                                data[j] = (char) peers_big_byte(i + j);
                        fwrite(data, 1, k, f);
                }
                if (f)
                        fclose(f);
                {
                        char at[300];

                        snprintf(at, sizeof(at), "@%s", file);
                        snprintf(url, sizeof(url), "%s/upload", base);
                        ARGS("--data-binary", at, url);
                        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: 1 MiB upload",
                               name);
                        is_int(code, 200, "%s: upload answered", name);
                        is_str(body, "got 1048576 exact\n", "%s: 1 MiB arrived byte-exact", name);
                        free(body);
                        free(head);
                        ARGS("-H", "Transfer-Encoding: chunked", "--data-binary", at, url);
                        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: chunked upload",
                               name);
                        is_str(body, "got 1048576 exact\n", "%s: chunked 1 MiB byte-exact", name);
                        free(body);
                        free(head);
                }
                free(file);
        }
#undef ARGS
}

static char *read_raw(const Raw *raw)
{
        return peers_read_file(raw->out_file, NULL);
}

static void test_bad_request(void)
{
        Raw raw = {
            .request = "GET / HTTP/1.1\r\n\r\n", .size = 18, .out_file = peers_path("raw.out")};
        char *out;

        is_int(ss_peers_run_child(raw_client, &raw, 30), 0, "bad request: client ran");
        out = read_raw(&raw);
        ok(out && strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "no Host: 400 (%.30s)",
           out ? out : "");
        ok(out && strstr(out, "Connection: close\r\n"), "400 says close");
        ok(out && strstr(out, "\nELAPSED "), "and the connection closed");
        free(out);
        free(raw.out_file);
}

/*
 * Requests pipelined in one write are answered in order, each completely, whether
 * the application answers at once (/hello), with a status only (/missing: 404),
 * or in pieces (/chunked); the last says close. Then the same without the close
 * but with the client's EOF right after its requests: every answer still comes.
 */
static void test_pipelined(void)
{
        static const char reqs[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /teapot HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /hello HTTP/1.1\r\nHost: x\r\n";
        static const char *const want[] = {"HTTP/1.1 200 OK\r\n",
                                           "hello world\n",
                                           "HTTP/1.1 404 Not Found\r\n",
                                           "HTTP/1.1 201 Created\r\n",
                                           "4\r\none,\r\n4\r\ntwo,\r\n6\r\nthree\n\r\n0\r\n\r\n",
                                           "HTTP/1.1 418 ",
                                           "short and stout\n",
                                           "HTTP/1.1 200 OK\r\n",
                                           "HTTP/1.1 200 OK\r\n",
                                           "hello world\n"};
        char request[sizeof(reqs) + 64];

        for (int shut = 0; shut <= 1; shut++) {
                Raw raw = {.request = request, .shut = shut, .out_file = peers_path("pipe.out")};
                const char *at;
                char *out;
                unsigned found = 0;

                raw.size = (size_t) snprintf(request, sizeof(request), "%s%s\r\n", reqs,
                                             shut ? "" : "Connection: close\r\n");
                is_int(ss_peers_run_child(raw_client, &raw, 30), 0,
                       "pipelined (%s): the client ran", shut ? "then EOF" : "close");
                out = read_raw(&raw);
                at = out;
                for (size_t i = 0; at && i < ELEMENTSOF(want); i++) {
                        const char *hit = strstr(at, want[i]);

                        if (!hit)
                                break;
                        found++;
                        at = hit + strlen(want[i]);
                }
                is_int(found, ELEMENTSOF(want), "pipelined (%s): six answers, in order, whole",
                       shut ? "then EOF" : "close");
                ok(at && strncmp(at, "\nELAPSED ", 9) == 0,
                   "pipelined (%s): nothing after them, then the close",
                   shut ? "then EOF" : "close");
                if (found != ELEMENTSOF(want) || !at || strncmp(at, "\nELAPSED ", 9) != 0)
                        tap_diag("got: %s", out ? out : "(nothing)");
                free(out);
                free(raw.out_file);
        }
}

static void test_big_header(void)
{
        /* curl cannot send a 1 MiB header line (its request buffer is 1 MiB): raw bytes. */
        static const char start[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ";
        size_t size = sizeof(start) - 1 + 1024 * 1024 + 4;
        char *request = malloc(size);
        Raw raw = {.out_file = peers_path("big.out")};
        int fds_before = (int) peers_count_fds();
        char *out;

        if (!request)
                abort();
        memcpy(request, start, sizeof(start) - 1);
        for (size_t i = sizeof(start) - 1; i < size - 4; i++)
                request[i] = (char) ('a' + i % 26);
        memcpy(request + size - 4, "\r\n\r\n", 4);
        raw.request = request;
        raw.size = size;
        is_int(ss_peers_run_child(raw_client, &raw, 30), 0, "1 MiB header: client ran");
        out = read_raw(&raw);
        ok(out && strncmp(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0,
           "1 MiB header: 431 (%.46s)", out ? out : "");
        ok(out && strstr(out, "\nELAPSED "), "and the connection was closed");
        for (unsigned i = 0; i < 300 && (int) peers_count_fds() > fds_before; i++)
                (void) sd_event_run(event, 10000);
        cmp_int(peers_count_fds(), <=, fds_before, "the server holds nothing for it");
        free(out);
        free(request);
        free(raw.out_file);
}

static int well_behaved_loop(void *arg)
{
        /* 8 requests over about 5 s, each must succeed. */
        const char *url = arg;

        for (unsigned i = 0; i < 8; i++) {
                char cmd[512];

                snprintf(cmd, sizeof(cmd),
                         "curl -s --max-time 2 -o /dev/null -w '%%{http_code}' %s | grep -qx 200",
                         url);
                if (system(cmd) != 0)
                        return 10 + (int) i;
                usleep(600000);
        }
        return 0;
}

static int slowloris_and_good(void *arg)
{
        Raw *raw = arg;
        pid_t p = fork();
        int status = 0, good;
        char url[128];

        if (p == 0)
                _exit(raw_client(raw));
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port_plain);
        good = well_behaved_loop(url);
        (void) waitpid(p, &status, 0);
        if (good)
                return good;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static void test_slowloris(void)
{
        static const char request[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: "
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        Raw raw = {.request = request,
                   .size = sizeof(request) - 1,
                   .out_file = peers_path("slow.out"),
                   .interval = 1000};
        char *out, *e;

        is_int(ss_peers_run_child(slowloris_and_good, &raw, 60), 0,
               "slowloris: a well-behaved client was served 8 times meanwhile");
        out = read_raw(&raw);
        ok(out && strncmp(out, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0,
           "slowloris got 408 (%.30s)", out ? out : "");
        e = out ? strstr(out, "\nELAPSED ") : NULL;
        ok(e, "slowloris connection closed");
        if (e) {
                unsigned ms = (unsigned) atoi(e + 9);

                cmp_int(ms, >=, HEADER_TIMEOUT_MS - 100, "not before the header timeout");
                cmp_int(ms, <, HEADER_TIMEOUT_MS + 2500, "soon after the header timeout (%u ms)",
                        ms);
        }
        free(out);
        free(raw.out_file);
}

static void test_idle_flood(SsStream *server)
{
        static int fds[HOSTILE_IDLE];
        struct rlimit rl;
        unsigned opened = 0, code = 0;
        const char *args[3];
        char url[128];

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
                rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        for (unsigned i = 0; i < HOSTILE_IDLE; i++) {
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_plain)};
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                fds[i] = fd;
                if (fd < 0)
                        continue;
                if (connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0 || errno == EINPROGRESS)
                        opened++;
                if (i % 32 == 0)
                        (void) sd_event_run(event, 0);
        }
        is_int(opened, HOSTILE_IDLE, "1000 idle connections opened");
        for (unsigned i = 0; i < 50; i++)
                (void) sd_event_run(event, 10000);
        cmp_int(ss_stream_server_n_connections(server), <=, SS_SERVER_MAX_CONNECTIONS,
                "the server holds at most %u connections", SS_SERVER_MAX_CONNECTIONS);
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port_plain);
        args[0] = url;
        args[1] = NULL;
        is_int(ss_peers_curl(args, NULL, NULL, &code), 0, "curl among 1000 idle connections");
        is_int(code, 200, "served 200");
        for (unsigned i = 0; i < HOSTILE_IDLE; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        /* sd_event_run() dispatches one source at a time */
        for (unsigned i = 0; i < 5000 && ss_stream_server_n_connections(server) > 0; i++)
                (void) sd_event_run(event, 10000);
        is_int(ss_stream_server_n_connections(server), 0,
               "the idle connections are gone once their clients closed");
}

static int count_one(SsStream *conn, void *userdata)
{
        (void) conn;
        (*(unsigned *) userdata)++;
        return 0;
}

/* Certificate files that cannot be used: the error names the file. */
static void test_bad_credentials(const SsStreamHandlers *handlers)
{
        SsStream *s = NULL;
        const char *e;
        size_t before = ss_context_n_streams(ctx);

        is_int(ss_stream_new(&s, ctx, "srvnokey", handlers, NULL), -ENOENT,
               "a server_key file that does not exist: -ENOENT");
        e = ss_stream_server_get_error();
        if (!ok(e && strstr(e, "srvnokey") && strstr(e, "server_key nokey (file ") &&
                    strstr(e, missing_key) && strstr(e, "No such file"),
                "the error names the streamtype, server_key, its cert and file"))
                tap_diag("error: %s", e ? e : "(none)");
        else
                tap_diag("%s", e);
        ok(!s, "no stream");

        is_int(ss_stream_new(&s, ctx, "srvbigcert", handlers, NULL), -EFBIG,
               "a server_cert file of 1 MiB + 1 byte: -EFBIG");
        e = ss_stream_server_get_error();
        if (!ok(e && strstr(e, "server_cert bigcert") && strstr(e, big_cert) &&
                    strstr(e, "larger than 1048576 bytes"),
                "the error names server_cert, its cert and file and the bound"))
                tap_diag("error: %s", e ? e : "(none)");
        else
                tap_diag("%s", e);
        is_int(ss_context_n_streams(ctx), before, "no stream left behind");
}

static char *policy_json(void)
{
        char *json = NULL;

        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"server\",\"schema-version\":1,"
                     "\"certs\":[{\"scert\":\"file:%s\"},{\"skey\":\"file:%s\"},"
                     "{\"bigcert\":\"file:%s\"},{\"nokey\":\"file:%s\"}],"
                     "\"s\":["
                     "{\"srv\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"timeout_ms\":%u,\"metadata\":[{\"method\":\"\"},"
                     "{\"path\":\"\"},{\"name\":\"\"},{\"token\":\"X-Token:\"},"
                     "{\"ct\":\"content-type:\"}]}},"
                     "{\"srvtls\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"tls\":true,\"server_cert\":\"scert\","
                     "\"server_key\":\"skey\",\"metadata\":[{\"method\":\"\"},"
                     "{\"path\":\"\"},{\"name\":\"\"},{\"token\":\"X-Token:\"},"
                     "{\"ct\":\"content-type:\"}]}},"
                     "{\"srvfree\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\"}},"
                     "{\"srvnokey\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"tls\":true,\"server_cert\":\"scert\","
                     "\"server_key\":\"nokey\"}},"
                     "{\"srvbigcert\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"tls\":true,\"server_cert\":\"bigcert\","
                     "\"server_key\":\"skey\"}},"
                     "{\"srvunix\":{\"server\":true,\"endpoint\":\"+%s\",\"protocol\":\"h1\","
                     "\"metadata\":[{\"method\":\"\"},{\"path\":\"\"},{\"name\":\"\"},"
                     "{\"token\":\"X-Token:\"},{\"ct\":\"content-type:\"}]}}"
                     "]}",
                     certs.server_pem, certs.server_key, big_cert, missing_key,
                     (unsigned) port_plain, HEADER_TIMEOUT_MS, (unsigned) port_tls,
                     (unsigned) port_free, (unsigned) port_free, (unsigned) port_free,
                     unix_path) < 0)
                return NULL;
        return json;
}

int main(void)
{
        SsStreamHandlers handlers = {
            .rx = ss_peers_app_rx, .tx = ss_peers_app_tx, .state = on_state};
        SsStream *plain = NULL, *tls = NULL, *unixs = NULL;
        char base[128];
        static const char *const none[] = {NULL};

        peers_init(300);
        if (!peers_have("curl"))
                tap_skip_all("curl is not installed");
        peer_certs_make(&certs);
        port_plain = peers_free_port();
        do
                port_tls = peers_free_port();
        while (port_tls == port_plain);
        do
                port_free = peers_free_port();
        while (port_free == port_plain || port_free == port_tls);
        unix_path = peers_path("srv.sock");
        missing_key = peers_path("missing-key.pem");
        big_cert = peers_path("big-cert.pem");
        {
                /* One byte over the bound; a PEM-looking start so that only the size is wrong. */
                int fd = open(big_cert, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                ok(fd >= 0 && write(fd, "-----BEGIN CERTIFICATE-----\n", 28) == 28 &&
                       ftruncate(fd, 1024 * 1024 + 1) == 0,
                   "a certificate file of 1 MiB + 1 byte");
                if (fd >= 0)
                        close(fd);
        }

        ss_peers_start(policy_json(), &event, &ctx);

        is_int(ss_stream_new(&plain, ctx, "srv", &handlers, NULL), 0, "plain server listens");
        is_int(ss_stream_new(&tls, ctx, "srvtls", &handlers, NULL), 0, "TLS server listens");
        is_int(ss_stream_new(&unixs, ctx, "srvunix", &handlers, NULL), 0, "unix server listens");
        if (!plain || !tls || !unixs)
                return peers_done();
        ok(!ss_stream_server_get_error(), "no error after a server stream started");
        test_bad_credentials(&handlers);
        is_int(ss_stream_get_state(plain), SS_STATE_CREATING, "a server stream stays CREATING");

        snprintf(base, sizeof(base), "http://127.0.0.1:%u", port_plain);
        test_basic("plain", base, none);
        {
                const char *const extra[] = {"--cacert", certs.ca_pem, "--http1.1", NULL};

                snprintf(base, sizeof(base), "https://localhost:%u", port_tls);
                test_basic("tls", base, extra);
        }
        {
                const char *const extra[] = {"--unix-socket", unix_path, NULL};

                test_basic("unix", "http://localhost", extra);
        }
        test_bad_request();
        test_pipelined();
        test_big_header();
        test_slowloris();
        test_idle_flood(plain);

        /* A connection's callback destroys its server stream: the server and it go. */
        {
                size_t before = ss_context_n_streams(ctx);
                int fd;

                is_int(ss_stream_new(&free_on_connect, ctx, "srvfree", &handlers, NULL), 0,
                       "another server listens");
                fd = peers_connect_port(port_free);
                ok(fd >= 0, "connected to it");
                for (unsigned i = 0; i < 500 && free_on_connect; i++)
                        (void) sd_event_run(event, 10000);
                ok(!free_on_connect, "its connection's CONNECTED destroyed the server stream");
                is_int(ss_context_n_streams(ctx), before, "with the connection stream");
                if (fd >= 0)
                        close(fd);
                fd = peers_connect_port(port_free);
                ok(fd < 0, "and it listens no more");
                if (fd >= 0)
                        close(fd);
        }

        {
                unsigned n = 0;

                is_int(ss_stream_server_foreach(plain, count_one, &n), 0, "foreach");
                is_int((int) n, ss_stream_server_n_connections(plain),
                       "foreach visits every connection");
                is_int(ss_stream_server_foreach(unixs, count_one, &n), 0, "foreach (unix)");
        }

        plain = ss_stream_free(plain);
        tls = ss_stream_free(tls);
        unixs = ss_stream_free(unixs);
        {
                int fd = peers_connect_port(port_plain);

                ok(fd < 0, "destroying the server stream stops listening");
                if (fd >= 0)
                        close(fd);
                ok(access(unix_path, F_OK) < 0, "the unix socket is removed");
        }
        is_int(ss_context_n_streams(ctx), 0, "no stream left");
        ss_peers_stop(&ctx, &event);
        peer_certs_free(&certs);
        free(unix_path);
        free(missing_key);
        free(big_cert);
        return peers_done();
}

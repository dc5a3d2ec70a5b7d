/* SPDX-License-Identifier: MIT */
/*
 * Server streamtypes over HTTP/2 (issue 11): curl --http2 over TLS (ALPN h2)
 * and curl --http2-prior-knowledge on plain TCP (h2c) against a server
 * streamtype: status, headers from metadata, exact bodies (with and without
 * content-length), metadata from the query and request headers, 404 when the
 * application does not answer, a 1 MiB upload arriving byte-exact; nghttp
 * with 10 concurrent streams on one connection, each a request stream of its
 * own, all held open together and all answered; hostile h2 clients: 1,000
 * idle h2c connections, a slowloris client trickling its HEADERS frame and a
 * client sending 1 MiB of header fields, while curl is served throughout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
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

#define HOSTILE_IDLE   1000
#define IDLE_MS        3000
#define GATHER         10
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

static sd_event *event;
static SsContext *ctx;
static PeerCerts certs;
static uint16_t port_plain, port_tls;
static unsigned txn_count;

static SsStream *gathered[GATHER];
static unsigned n_gathered;
static int gather_connections = -1; /* connections of the server when all were open */

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        const char *method, *path;
        SsPeersReq *c;

        (void) userdata;
        (void) ack;
        if (state == SS_STATE_DESTROYING) {
                ss_peers_req_forget(s);
                for (unsigned i = 0; i < n_gathered; i++)
                        if (gathered[i] == s)
                                gathered[i] = NULL;
                return SS_OK;
        }
        if (state != SS_STATE_SERVER_TXN)
                return SS_OK;
        txn_count++;
        c = ss_peers_req_get(s);
        if (!c || ss_stream_server_get_request(s, &method, &path) < 0)
                return SS_DISCONNECT_ME;
        c->pieces = 0;
        c->upload = 0;
        c->upload_ok = true;
        if (strcmp(path, "/hello") == 0)
                ss_peers_respond(s, c, 0, "hello world\n", true);
        else if (strcmp(path, "/chunked") == 0) {
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
        } else if (strcmp(path, "/teapot") == 0)
                ss_peers_respond(s, c, 418, "short and stout\n", true);
        else if (strcmp(path, "/abort") == 0)
                return SS_DESTROY_ME; /* the request's stream goes: its h2 stream is reset */
        else if (strcmp(path, "/gather") == 0) {
                /* Held until GATHER of them are open at once, then all answered. */
                if (n_gathered < GATHER)
                        gathered[n_gathered++] = s;
                if (n_gathered == GATHER) {
                        gather_connections =
                            ss_stream_server_n_connections(ss_stream_server_get_parent(s));
                        for (unsigned i = 0; i < GATHER; i++) {
                                SsPeersReq *g = gathered[i] ? ss_peers_req_get(gathered[i]) : NULL;

                                if (g)
                                        ss_peers_respond(gathered[i], g, 0, "gathered\n", true);
                        }
                }
        }
        /* /upload: answered at the rx with EOM; anything else: not at all (404). */
        return SS_OK;
}

/* ---- running clients while the loop serves ------------------------------------------------ */

/* ---- raw clients (children) ---------------------------------------------------------------- */

/* ---- a raw h2c client (child): what curl and nghttp will not send ------------------------- */

typedef struct RawH2 {
        const uint8_t *payload; /* after the preface and an empty SETTINGS */
        size_t size;
        unsigned interval; /* ms between single bytes of payload; 0: at once */
        char *out_file; /* "FRAME type flags stream" per frame, "STATUS n", "ELAPSED ms" at EOF */
} RawH2;

static size_t frame_header(uint8_t *p, size_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
        p[0] = (uint8_t) (len >> 16);
        p[1] = (uint8_t) (len >> 8);
        p[2] = (uint8_t) len;
        p[3] = type;
        p[4] = flags;
        p[5] = (uint8_t) (stream >> 24);
        p[6] = (uint8_t) (stream >> 16);
        p[7] = (uint8_t) (stream >> 8);
        p[8] = (uint8_t) stream;
        return 9;
}

static int raw_h2_client(void *arg)
{
        RawH2 *raw = arg;
        uint8_t start[H2_PREFACE_LEN + 9], in[65536];
        size_t sent = 0, have = 0;
        uint64_t t0 = peers_now_usec(), deadline = t0 + 25000000ULL;
        int fd = peers_connect_port(port_plain), out;
        nghttp2_hd_inflater *inflater = NULL;

        if (fd < 0)
                return 2;
        (void) nghttp2_hd_inflate_new(&inflater);
        out = open(raw->out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0)
                return 3;
        memcpy(start, H2_PREFACE, H2_PREFACE_LEN);
        frame_header(start + H2_PREFACE_LEN, 0, 4, 0, 0); /* SETTINGS */
        if (send(fd, start, sizeof(start), MSG_NOSIGNAL) != (ssize_t) sizeof(start))
                return 4;
        (void) fcntl(fd, F_SETFL, O_NONBLOCK);
        while (peers_now_usec() < deadline) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t n;

                if (sent < raw->size) {
                        size_t chunk = raw->interval ? 1 : raw->size - sent;

                        n = send(fd, raw->payload + sent, chunk, MSG_NOSIGNAL);
                        if (n > 0)
                                sent += (size_t) n;
                        else if (n < 0 && errno != EAGAIN)
                                sent = raw->size; /* closed on us: read what came */
                        if (sent < raw->size && !raw->interval)
                                p.events |= POLLOUT;
                }
                if (poll(&p, 1, raw->interval ? (int) raw->interval : 1000) < 0)
                        return 5;
                n = recv(fd, in + have, sizeof(in) - have, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN)) {
                        dprintf(out, "ELAPSED %llu\n",
                                (unsigned long long) ((peers_now_usec() - t0) / 1000));
                        break;
                }
                if (n < 0)
                        continue;
                have += (size_t) n;
                while (have >= 9) {
                        size_t len = (size_t) in[0] << 16 | (size_t) in[1] << 8 | in[2];

                        if (have < 9 + len) {
                                if (9 + len > sizeof(in))
                                        return 6;
                                break;
                        }
                        dprintf(out, "FRAME %u %u %u\n", in[3], in[4],
                                (unsigned) (in[5] & 0x7f) << 24 | (unsigned) in[6] << 16 |
                                    (unsigned) in[7] << 8 | in[8]);
                        if (in[3] == 1 && inflater) {
                                /* a response's HEADERS (no padding, no priority): its :status */
                                uint8_t *b = in + 9;
                                size_t left = len;

                                for (;;) {
                                        nghttp2_nv nv;
                                        int fl = 0;
                                        ssize_t k =
                                            nghttp2_hd_inflate_hd2(inflater, &nv, &fl, b, left, 1);

                                        if (k < 0)
                                                break;
                                        b += k;
                                        left -= (size_t) k;
                                        if ((fl & NGHTTP2_HD_INFLATE_EMIT) && nv.namelen == 7 &&
                                            memcmp(nv.name, ":status", 7) == 0)
                                                dprintf(out, "STATUS %.*s\n", (int) nv.valuelen,
                                                        nv.value);
                                        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
                                                nghttp2_hd_inflate_end_headers(inflater);
                                                break;
                                        }
                                        if (k == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))
                                                break;
                                }
                        }
                        memmove(in, in + 9 + len, have - 9 - len);
                        have -= 9 + len;
                }
        }
        nghttp2_hd_inflate_del(inflater);
        close(out);
        close(fd);
        return 0;
}

/* The HPACK block of GET / (static table entries) and big bytes of literal fields. */
static size_t request_block(uint8_t *p, size_t big)
{
        size_t n = 0;

        p[n++] = 0x82; /* :method GET */
        p[n++] = 0x86; /* :scheme http */
        p[n++] = 0x84; /* :path / */
        p[n++] = 0x01; /* :authority, literal without indexing */
        p[n++] = 1;
        p[n++] = 'x';
        for (unsigned i = 0; n < big; i++) {
                /* literal without indexing, new name "x-big", 4000 bytes of value */
                static const char name[] = "x-big";

                p[n++] = 0x00;
                p[n++] = sizeof(name) - 1;
                memcpy(p + n, name, sizeof(name) - 1);
                n += sizeof(name) - 1;
                p[n++] = 0x7f; /* 4000 = 127 + 3873: 0xa1 0x1e */
                p[n++] = 0xa1;
                p[n++] = 0x1e;
                memset(p + n, 'a' + (int) (i % 26), 4000);
                n += 4000;
        }
        return n;
}

/* A header block as HEADERS plus CONTINUATION frames of at most 16384 bytes, END_STREAM. */
static uint8_t *request_frames(size_t big, size_t *ret_size)
{
        size_t cap = 2 * 1024 * 1024, n = 0, o = 0, block_len;
        uint8_t *block = malloc(cap), *f = malloc(cap);

        if (!block || !f)
                abort();
        block_len = request_block(block, big);
        while (o < block_len) {
                size_t len = block_len - o < 16384 ? block_len - o : 16384;
                bool first = o == 0, last = o + len == block_len;

                n += frame_header(f + n, len, first ? 1 : 9,
                                  (uint8_t) ((first ? 0x1 : 0) | (last ? 0x4 : 0)), 1);
                memcpy(f + n, block + o, len);
                n += len;
                o += len;
        }
        free(block);
        *ret_size = n;
        return f;
}

static char *read_out(const RawH2 *raw)
{
        return peers_read_file(raw->out_file, NULL);
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
        ok(head && strncmp(head, "HTTP/2 200", 10) == 0, "%s: over HTTP/2 (%.12s)", name,
           head ? head : "");
        ok(ss_peers_has_header(head, "\r\ncontent-type: text/plain\r\n"),
           "%s: content-type from metadata", name);
        ok(ss_peers_has_header(head, "\r\ncontent-length: 12\r\n"), "%s: content-length", name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/chunked", base);
        ARGS(url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /chunked", name);
        is_int(code, 201, "%s: status 201", name);
        is_str(body, "one,two,three\n", "%s: body without a length", name);
        ok(!ss_peers_has_header(head, "content-length"), "%s: no content-length then", name);
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
        is_str(body, "short and stout\n", "%s: its body", name);
        free(body);
        free(head);

        snprintf(url, sizeof(url), "%s/echo?x=1&name=J%%C3%%B6rg+K&y", base);
        ARGS("-H", "X-Token: t1", url);
        is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: curl /echo", name);
        is_str(body, "GET name=J\xc3\xb6rg K token=t1\n",
               "%s: method, query argument and header as metadata", name);
        ok(!ss_peers_has_header(head, "x-token"), "%s: request metadata is not echoed", name);
        free(body);
        free(head);

        /* The application destroys a request's stream: that h2 stream is reset, nothing else. */
        {
                char url2[256];
                size_t before = ss_context_n_streams(ctx);

                snprintf(url, sizeof(url), "%s/abort", base);
                snprintf(url2, sizeof(url2), "%s/hello", base);
                ARGS(url);
                ok(ss_peers_curl(args, &body, &head, &code) != 0, "%s: /abort fails at the client",
                   name);
                free(body);
                free(head);
                ARGS(url2);
                is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: the server serves on",
                       name);
                is_str(body, "hello world\n", "%s: with the exact body", name);
                free(body);
                free(head);
                for (unsigned i = 0; i < 200 && ss_context_n_streams(ctx) > before; i++)
                        (void) sd_event_run(event, 10000);
                is_int(ss_context_n_streams(ctx), before, "%s: no request stream left behind",
                       name);
        }

        /* 1 MiB upload, byte-exact */
        {
                char *file = peers_path("upload.bin"), data[300], at[300];
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
                snprintf(at, sizeof(at), "@%s", file);
                snprintf(url, sizeof(url), "%s/upload", base);
                ARGS("--data-binary", at, url);
                is_int(ss_peers_curl(args, &body, &head, &code), 0, "%s: 1 MiB upload", name);
                is_int(code, 200, "%s: upload answered", name);
                is_str(body, "got 1048576 exact\n", "%s: 1 MiB arrived byte-exact", name);
                free(body);
                free(head);
                free(file);
        }
#undef ARGS
}

static int run_nghttp(void *arg)
{
        const char *url = arg;
        const char *argv[] = {"nghttp", "-n", "-m", "10", "-t", "20", url, NULL};

        return ss_peers_exec_argv((void *) argv);
}

/* A body over the bound (16 MiB): 413 before the application sees its end. */
typedef struct Over {
        const char *data, *url, *out;
} Over;

static int run_nghttp_upload(void *arg)
{
        Over *o = arg;
        const char *argv[] = {"nghttp", "-v", "-t", "20", "-d", o->data, o->url, NULL};
        int fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
                return 126;
        return ss_peers_exec_argv((void *) argv);
}

static void test_body_413(const char *name, const char *url)
{
        char *file = peers_path("over.bin"), *out = peers_path("over.out"), *text;
        Over o = {.data = file, .url = url, .out = out};
        unsigned before = txn_count;
        FILE *f = fopen(file, "we");

        /*
         * nghttp, not curl: after the 413 the server stops the upload with
         * RST_STREAM NO_ERROR (RFC 9113 8.1), which curl 7.88 sometimes takes
         * for a framing error before it reported the status.
         */
        if (f) {
                (void) ftruncate(fileno(f), SS_SERVER_MAX_BODY + 65536);
                fclose(f);
        }
        (void) ss_peers_run_child(run_nghttp_upload, &o, 60);
        text = peers_read_file(out, NULL);
        ok(text && strstr(text, ":status: 413"), "%s: a body over 16 MiB gets 413", name);
        is_int(txn_count - before, 1, "%s: the request reached the application", name);
        if (text && !strstr(text, ":status: 413")) {
                /* what came back, without the DATA and WINDOW_UPDATE frames */
                for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                        if (strstr(line, "recv ") && !strstr(line, "WINDOW_UPDATE"))
                                tap_diag("%s", line);
        }
        free(text);
        (void) unlink(file);
        (void) unlink(out);
        free(file);
        free(out);
}

static void test_nghttp(const char *name, const char *url)
{
        unsigned before = txn_count;

        n_gathered = 0;
        gather_connections = -1;
        is_int(ss_peers_run_child(run_nghttp, (void *) url, 30), 0, "%s: nghttp -n -m 10 succeeds",
               name);
        is_int(txn_count - before, GATHER, "%s: 10 requests arrived", name);
        is_int(n_gathered, GATHER, "%s: all 10 were open at once before any was answered", name);
        is_int(gather_connections, 1, "%s: on one connection", name);
}

static int good_loop(void *arg)
{
        /* 8 requests over about 5 s, each must succeed. */
        const char *url = arg;

        for (unsigned i = 0; i < 8; i++) {
                char cmd[512];

                snprintf(cmd, sizeof(cmd),
                         "curl -s --http2-prior-knowledge --max-time 2 -o /dev/null "
                         "-w '%%{http_code}' %s | grep -qx 200",
                         url);
                if (system(cmd) != 0)
                        return 10 + (int) i;
                usleep(600000);
        }
        return 0;
}

static int slowloris_and_good(void *arg)
{
        RawH2 *raw = arg;
        pid_t p = fork();
        int status = 0, good;
        char url[128];

        if (p == 0)
                _exit(raw_h2_client(raw));
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port_plain);
        good = good_loop(url);
        (void) waitpid(p, &status, 0);
        if (good)
                return good;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static unsigned elapsed_ms(const char *out)
{
        const char *e = out ? strstr(out, "ELAPSED ") : NULL;

        return e ? (unsigned) atoi(e + 8) : 0;
}

static void test_slowloris(void)
{
        size_t size;
        uint8_t *frames = request_frames(0, &size);
        RawH2 raw = {
            .payload = frames, .size = size, .interval = 1000, .out_file = peers_path("slow.out")};
        unsigned before = txn_count;
        char *out;

        is_int(ss_peers_run_child(slowloris_and_good, &raw, 60), 0,
               "h2 slowloris: curl --http2-prior-knowledge was served 8 times meanwhile");
        out = read_out(&raw);
        ok(out && strstr(out, "ELAPSED "), "h2 slowloris: the server closed the connection");
        cmp_int(elapsed_ms(out), >=, IDLE_MS - 100, "not before the idle time");
        cmp_int(elapsed_ms(out), <, IDLE_MS + 2500, "soon after it (%u ms)", elapsed_ms(out));
        ok(out && strstr(out, "FRAME 7 "), "with a GOAWAY first");
        is_int(txn_count - before, 8, "only the well-behaved requests reached the application");
        free(out);
        free(raw.out_file);
        free(frames);
}

static void test_big_header(void)
{
        size_t size;
        uint8_t *frames = request_frames(1024 * 1024 + 64, &size);
        RawH2 raw = {.payload = frames, .size = size, .out_file = peers_path("big.out")};
        int fds_before = (int) peers_count_fds();
        unsigned before = txn_count, code = 0;
        const char *args[3];
        char url[128], *out;

        cmp_int(size, >, 1024 * 1024, "1 MiB of header fields in HEADERS and CONTINUATION");
        is_int(ss_peers_run_child(raw_h2_client, &raw, 40), 0, "1 MiB header: client ran");
        out = read_out(&raw);
        /* nghttp2 allows 8 CONTINUATION frames: a GOAWAY before our 32 KiB bound counts. */
        ok(out && (strstr(out, "FRAME 7 ") || strstr(out, "STATUS 431\n")),
           "1 MiB header: refused (431 or GOAWAY)");
        ok(out && strstr(out, "ELAPSED "), "and the connection closed");
        cmp_int(elapsed_ms(out), <, IDLE_MS + 2500, "within the idle time (%u ms)",
                elapsed_ms(out));
        tap_diag("1 MiB header: %s", out ? out : "(nothing)");
        is_int(txn_count - before, 0, "the application never saw it");
        for (unsigned i = 0; i < 300 && (int) peers_count_fds() > fds_before; i++)
                (void) sd_event_run(event, 10000);
        cmp_int(peers_count_fds(), <=, fds_before, "the server holds nothing for it");
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port_plain);
        args[0] = "--http2-prior-knowledge";
        args[1] = url;
        args[2] = NULL;
        is_int(ss_peers_curl(args, NULL, NULL, &code), 0, "curl afterwards");
        is_int(code, 200, "served 200");
        free(out);
        free(raw.out_file);
        free(frames);
}

static void test_header_431(void)
{
        size_t size;
        uint8_t *frames = request_frames(64 * 1024, &size);
        RawH2 raw = {.payload = frames, .size = size, .out_file = peers_path("h431.out")};
        unsigned before = txn_count;
        char *out;

        is_int(ss_peers_run_child(raw_h2_client, &raw, 40), 0, "64 KiB header: client ran");
        out = read_out(&raw);
        ok(out && strstr(out, "STATUS 431\n"), "64 KiB header fields: 431 (%s)", out ? out : "");
        is_int(txn_count - before, 0, "the application never saw it");
        free(out);
        free(raw.out_file);
        free(frames);
}

static void test_idle_flood(SsStream *server)
{
        static int fds[HOSTILE_IDLE];
        uint8_t start[H2_PREFACE_LEN + 9];
        struct rlimit rl;
        unsigned opened = 0, spoke = 0, code = 0;
        const char *args[3];
        char url[128];

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
                rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        memcpy(start, H2_PREFACE, H2_PREFACE_LEN);
        frame_header(start + H2_PREFACE_LEN, 0, 4, 0, 0);
        for (unsigned i = 0; i < HOSTILE_IDLE; i++) {
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_plain)};
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                fds[i] = fd;
                if (fd < 0)
                        continue;
                /* Loopback: the kernel completes the handshake from the backlog. */
                if (connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0) {
                        opened++;
                        if (send(fd, start, sizeof(start), MSG_NOSIGNAL | MSG_DONTWAIT) ==
                            (ssize_t) sizeof(start))
                                spoke++;
                }
                if (i % 16 == 0)
                        (void) sd_event_run(event, 0);
        }
        is_int(opened, HOSTILE_IDLE, "1000 idle h2c connections opened");
        cmp_int(spoke, >=, HOSTILE_IDLE / 2, "most of them sent the preface (%u)", spoke);
        for (unsigned i = 0; i < 50; i++)
                (void) sd_event_run(event, 10000);
        cmp_int(ss_stream_server_n_connections(server), <=, SS_SERVER_MAX_CONNECTIONS,
                "the server holds at most %u connections", SS_SERVER_MAX_CONNECTIONS);
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port_plain);
        args[0] = "--http2-prior-knowledge";
        args[1] = url;
        args[2] = NULL;
        is_int(ss_peers_curl(args, NULL, NULL, &code), 0, "curl among 1000 idle h2c connections");
        is_int(code, 200, "served 200");
        for (unsigned i = 0; i < HOSTILE_IDLE; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        for (unsigned i = 0; i < 5000 && ss_stream_server_n_connections(server) > 0; i++)
                (void) sd_event_run(event, 10000);
        is_int(ss_stream_server_n_connections(server), 0,
               "the idle connections are gone once their clients closed");
}

static char *policy_json(void)
{
        char *json = NULL;

        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"server\",\"schema-version\":1,"
                     "\"certs\":[{\"scert\":\"file:%s\"},{\"skey\":\"file:%s\"}],"
                     "\"s\":["
                     "{\"srv\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"timeout_ms\":%u,\"metadata\":[{\"method\":\"\"},"
                     "{\"path\":\"\"},{\"name\":\"\"},{\"token\":\"X-Token:\"},"
                     "{\"ct\":\"content-type:\"}]}},"
                     "{\"srvtls\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                     "\"protocol\":\"h1\",\"tls\":true,\"server_cert\":\"scert\","
                     "\"server_key\":\"skey\",\"metadata\":[{\"method\":\"\"},"
                     "{\"path\":\"\"},{\"name\":\"\"},{\"token\":\"X-Token:\"},"
                     "{\"ct\":\"content-type:\"}]}}"
                     "]}",
                     certs.server_pem, certs.server_key, (unsigned) port_plain, IDLE_MS,
                     (unsigned) port_tls) < 0)
                return NULL;
        return json;
}

int main(void)
{
        SsStreamHandlers handlers = {
            .rx = ss_peers_app_rx, .tx = ss_peers_app_tx, .state = on_state};
        SsStream *plain = NULL, *tls = NULL;
        char base[128];

        peers_init(400);
        if (!peers_have("curl"))
                tap_skip_all("curl is not installed");
        if (!peers_have("nghttp"))
                tap_skip_all("nghttp is not installed (nghttp2-client)");
        peer_certs_make(&certs);
        port_plain = peers_free_port();
        do
                port_tls = peers_free_port();
        while (port_tls == port_plain);

        ss_peers_start(policy_json(), &event, &ctx);

        is_int(ss_stream_new(&plain, ctx, "srv", &handlers, NULL), 0, "plain server listens");
        is_int(ss_stream_new(&tls, ctx, "srvtls", &handlers, NULL), 0, "TLS server listens");
        if (!plain || !tls)
                return peers_done();

        {
                const char *const extra[] = {"--cacert", certs.ca_pem, "--http2", NULL};

                snprintf(base, sizeof(base), "https://localhost:%u", port_tls);
                test_basic("h2 (ALPN)", base, extra);
        }
        {
                const char *const extra[] = {"--http2-prior-knowledge", NULL};

                snprintf(base, sizeof(base), "http://127.0.0.1:%u", port_plain);
                test_basic("h2c", base, extra);
        }
        {
                /* The same TLS listener still speaks HTTP/1.1 to who asks for it. */
                const char *const args[] = {"--cacert", certs.ca_pem, "--http1.1", base, NULL};
                char *body = NULL, *head = NULL;
                unsigned code = 0;

                snprintf(base, sizeof(base), "https://localhost:%u/hello", port_tls);
                is_int(ss_peers_curl(args, &body, &head, &code), 0,
                       "curl --http1.1 on the TLS listener");
                ok(head && strncmp(head, "HTTP/1.1 200", 12) == 0, "answered over HTTP/1.1");
                is_str(body, "hello world\n", "with the same body");
                free(body);
                free(head);
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%u/upload", port_plain);
        test_body_413("h2c", base);
        snprintf(base, sizeof(base), "https://localhost:%u/gather", port_tls);
        test_nghttp("h2 (ALPN)", base);
        snprintf(base, sizeof(base), "http://127.0.0.1:%u/gather", port_plain);
        test_nghttp("h2c", base);

        test_slowloris();
        test_big_header();
        test_header_431();
        test_idle_flood(plain);

        plain = ss_stream_free(plain);
        tls = ss_stream_free(tls);
        is_int(ss_context_n_streams(ctx), 0, "no stream left");
        ss_peers_stop(&ctx, &event);
        peer_certs_free(&certs);
        return peers_done();
}

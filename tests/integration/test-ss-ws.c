/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams ws against real peers: python3-websockets servers (echo over
 * TCP and TLS, fragmented messages, a close with a code) and hand-made frames
 * from tests/integration/ws-server.py (a PING between the frames of a
 * message, a server that never answers pings, a masked frame, a text frame
 * that is not UTF-8), a server restarted under nailed_up and idle streams.
 * Everything through the real transport on a private sd-event loop, loopback
 * only, on free ports.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "ss-peers.h"
#include "stream.h"
#include "tap.h"

#define MESSAGE_MAX (2u * 1024 * 1024)

static sd_event *event;
static SsContext *ctx;

/* ---- the python peers ------------------------------------------------------------------ */

typedef struct Server {
        pid_t pid;
        char *log;
} Server;

static Server servers[4];

static void server_kill(Server *srv)
{
        if (srv->pid > 0) {
                (void) kill(-srv->pid, SIGKILL);
                (void) waitpid(srv->pid, NULL, 0);
                srv->pid = 0;
        }
}

static void servers_kill(void)
{
        for (size_t i = 0; i < ELEMENTSOF(servers); i++)
                server_kill(&servers[i]);
}

/* Starts ws-server.py with the specs ("mode:port"), waits for the listeners of ports. */
static bool server_start(Server *srv, const char *log_name, const char *const *args,
                         const uint16_t *ports, size_t n_ports)
{
        const char *script = getenv("WS_SERVER");
        const char *argv[16] = {"/usr/bin/python3", script};
        size_t n = 2;

        for (; *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        free(srv->log);
        srv->log = peers_path(log_name);

        (void) fflush(stdout);
        srv->pid = fork();
        if (srv->pid == 0) {
                int fd = open(srv->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                (void) setpgid(0, 0);
                if (fd >= 0) {
                        (void) dup2(fd, STDOUT_FILENO);
                        (void) dup2(fd, STDERR_FILENO);
                }
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                bool all = true;

                for (size_t k = 0; k < n_ports && all; k++)
                        all = peers_port_accepts(ports[k]);
                if (all)
                        return true;
                if (waitpid(srv->pid, NULL, WNOHANG) != 0) {
                        srv->pid = 0;
                        return false;
                }
                usleep(20000);
        }
        return false;
}

/* How many lines of the server's log are exactly line. */
static unsigned log_count(const Server *srv, const char *line)
{
        char buf[256];
        unsigned n = 0;
        FILE *f = fopen(srv->log, "re");

        if (!f)
                return 0;
        while (fgets(buf, sizeof(buf), f)) {
                buf[strcspn(buf, "\n")] = 0;
                n += strcmp(buf, line) == 0;
        }
        (void) fclose(f);
        return n;
}

/* ---- a recording stream user ----------------------------------------------------------- */

typedef struct Rec {
        char states[4096];
        unsigned count[_SS_STATE_MAX];
        uint32_t ack[_SS_STATE_MAX];
        uint64_t when[_SS_STATE_MAX]; /* of the last one */

        /* rx: the message in progress, the last complete one, a log of small ones. */
        uint8_t *cur, *last;
        size_t cur_len, last_len;
        unsigned n_messages, n_pieces;
        bool flags_ok; /* SOM exactly on the first piece, EOM exactly on the last */
        bool in_message;
        char log[1024];

        /* tx: one message of tx_size bytes of the pattern, or the text tx_text. */
        size_t tx_size, tx_off;
        const char *tx_text;
        bool binary;
        unsigned n_tx;
        unsigned tx_chain; /* messages still to send, each asked for from the tx callback */
} Rec;

static void rec_init(Rec *r)
{
        free(r->cur);
        free(r->last);
        *r = (Rec){.flags_ok = true};
}

static uint8_t pattern(bool binary, size_t i)
{
        return binary ? peers_big_byte(i) : (uint8_t) ('a' + i % 26);
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
                r->when[state] = peers_now_usec();
        }
        return SS_OK;
}

/* Small messages into the log, bytes outside printable ASCII as <hh>, then "|". */
static void log_message(Rec *r)
{
        size_t n = strlen(r->log);

        if (r->last_len > 64)
                return;
        for (size_t i = 0; i < r->last_len && n + 8 < sizeof(r->log); i++) {
                uint8_t c = r->last[i];

                n += (size_t) snprintf(r->log + n, sizeof(r->log) - n,
                                       c >= 0x20 && c < 0x7f ? "%c" : "<%02x>", c);
        }
        if (n + 2 < sizeof(r->log))
                snprintf(r->log + n, sizeof(r->log) - n, "|");
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;
        uint8_t *p;

        r->n_pieces++;
        if (!!(flags & SS_FLAG_SOM) == r->in_message)
                r->flags_ok = false;
        r->in_message = !(flags & SS_FLAG_EOM);
        if (r->cur_len + len > MESSAGE_MAX)
                return SS_DISCONNECT_ME;
        p = realloc(r->cur, r->cur_len + len + 1);
        if (!p)
                return SS_DISCONNECT_ME;
        r->cur = p;
        memcpy(r->cur + r->cur_len, buf, len);
        r->cur_len += len;
        if (flags & SS_FLAG_EOM) {
                free(r->last);
                r->last = r->cur;
                r->last_len = r->cur_len;
                r->last[r->last_len] = 0;
                r->cur = NULL;
                r->cur_len = 0;
                r->n_messages++;
                log_message(r);
        }
        return SS_OK;
}

static SsResult rec_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Rec *r = userdata;
        size_t size = r->tx_text ? strlen(r->tx_text) : r->tx_size;
        /* Odd piece sizes: frames of every length class. */
        size_t n = MIN(MIN(*len, size - r->tx_off), (size_t) 10007);

        for (size_t i = 0; i < n; i++)
                buf[i] = r->tx_text ? (uint8_t) r->tx_text[r->tx_off + i]
                                    : pattern(r->binary, r->tx_off + i);
        *flags = r->tx_off == 0 ? SS_FLAG_SOM : 0;
        r->tx_off += n;
        *len = n;
        if (r->tx_off == size)
                *flags |= SS_FLAG_EOM;
        r->n_tx++;
        if (r->tx_off == size && r->tx_chain > 0) {
                /* The next message, asked for by the callback that ends this one. */
                r->tx_chain--;
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

static void run_for(unsigned ms)
{
        uint64_t end = peers_now_usec() + (uint64_t) ms * 1000;

        while (peers_now_usec() < end)
                (void) sd_event_run(event, 20000);
}

static unsigned want_messages, disconnects_before;

/* The messages arrived, or the connection went (since disconnects_before). */
static bool done_messages(void *userdata)
{
        Rec *r = userdata;

        return r->n_messages >= want_messages ||
               r->count[SS_STATE_DISCONNECTED] > disconnects_before;
}

static bool done_connected(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_CONNECTED] > 0;
}

static bool done_disconnected(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_DISCONNECTED] > 0;
}

static bool done_unreachable(void *userdata)
{
        Rec *r = userdata;

        return r->count[SS_STATE_UNREACHABLE] > 0;
}

/* Sends one message and waits for its echo; true when it came back byte for byte. */
static bool echo_one(SsStream *s, Rec *r, size_t size)
{
        bool same;

        r->tx_size = size;
        r->tx_off = 0;
        r->tx_text = NULL;
        want_messages = r->n_messages + 1;
        disconnects_before = r->count[SS_STATE_DISCONNECTED];
        (void) ss_stream_request_tx(s);
        if (!ss_peers_run_until(done_messages, r, 20000) || r->n_messages < want_messages)
                return false;
        same = r->last_len == size;
        for (size_t i = 0; i < r->last_len && same; i++)
                same = r->last[i] == pattern(r->binary, i);
        return same;
}

static void send_text(SsStream *s, Rec *r, const char *text)
{
        r->tx_text = text;
        r->tx_off = 0;
        (void) ss_stream_request_tx(s);
}

/* ---- tests ----------------------------------------------------------------------------- */

static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 100003, 1024 * 1024};

static void test_echo(const char *type, bool binary)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        r.binary = binary;
        s = open_stream(type, &r);
        if (!s)
                return;
        /* request_tx on an idle stream connects, and the message goes once upgraded. */
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                ok(echo_one(s, &r, sizes[i]), "%s: a %zu-byte message comes back byte-exact", type,
                   sizes[i]);
        ok(r.flags_ok, "%s: SOM on the first piece of each message, EOM on the last", type);
        is_int(r.count[SS_STATE_CONNECTED], 1, "%s: one connection for all of them", type);
        is_str(r.states, "CREATING CONNECTING CONNECTED", "%s: states", type);
        ok(r.n_tx > ELEMENTSOF(sizes) + 64, "%s: the 1 MiB message went in many tx calls (%u)",
           type, r.n_tx);
        ss_stream_free(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED DESTROYING",
               "%s: destroyed cleanly", type);
        rec_init(&r);
}

/* Each message's last tx callback asks for the next: every one of them goes. */
static void test_chain(const char *type)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream(type, &r);
        if (!s)
                return;
        ok(echo_one(s, &r, 100), "%s: connected, a first message echoed", type);
        r.tx_size = 3000;
        r.tx_off = 0;
        r.tx_chain = 9;
        want_messages = r.n_messages + 10;
        disconnects_before = r.count[SS_STATE_DISCONNECTED];
        (void) ss_stream_request_tx(s);
        ok(ss_peers_run_until(done_messages, &r, 20000), "%s: done waiting", type);
        is_int(r.n_messages, want_messages,
               "%s: ten messages, each asked for inside the previous one's last tx call, "
               "all echoed",
               type);
        is_int(r.tx_chain, 0, "%s: the chain ran to its end", type);
        ss_stream_free(s);
        rec_init(&r);
}

static void test_subprotocol(void)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("wrongproto", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_unreachable, &r, 10000),
           "subprotocol not chosen: UNREACHABLE (%s)", r.states);
        ok(r.ack[SS_STATE_UNREACHABLE] & SS_ACK_HANDSHAKE, "with the handshake bit (0x%x)",
           (unsigned) r.ack[SS_STATE_UNREACHABLE]);
        is_int(r.count[SS_STATE_CONNECTED], 0, "never CONNECTED");
        ss_stream_free(s);
        rec_init(&r);
}

static void test_fragments(void)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("fragments", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        want_messages = 3;
        disconnects_before = 0;
        ok(ss_peers_run_until(done_messages, &r, 10000), "fragmented messages arrive");
        is_int(r.n_messages, 3, "three messages");
        is_str(r.log, "fragmented text|<00><01><02><ff>||",
               "text reassembled, then binary and empty");
        ok(r.flags_ok, "SOM and EOM once per message across the fragments");
        ok(r.n_pieces >= 5, "the fragments came as pieces (%u)", r.n_pieces);
        ss_stream_free(s);
        rec_init(&r);
}

static void test_interleave(const Server *srv)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("interleave", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        want_messages = 2;
        disconnects_before = 0;
        ok(ss_peers_run_until(done_messages, &r, 10000), "a PING inside a fragmented message");
        is_str(r.log, "hello|pong:p1|", "the message whole, and our PONG with the PING's payload");
        send_text(s, &r, "hi there");
        want_messages = 3;
        ok(ss_peers_run_until(done_messages, &r, 10000), "our text message arrives");
        is_str(r.last ? (char *) r.last : "", "masked:1:hi there", "client frames are masked");
        ss_stream_free(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED DESTROYING", "states");
        run_for(300);
        is_int(log_count(srv, "close 1000"), 1, "destroy sends CLOSE 1000");
        rec_init(&r);
}

static void test_close_code(void)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("close", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_disconnected, &r, 10000), "server close: DISCONNECTED");
        is_int(r.ack[SS_STATE_DISCONNECTED], 4001, "with the server's code as the ack");
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED", "states");
        run_for(500);
        is_int(r.count[SS_STATE_CONNECTING], 1, "not nailed up, nothing pending: stays idle");
        ss_stream_free(s);
        rec_init(&r);
}

static void test_validity(const Server *srv)
{
        Rec r = {}, e = {};
        SsStream *s, *es;
        uint64_t lived;

        rec_init(&r);
        rec_init(&e);
        s = open_stream("silent", &r);
        es = open_stream("echo_valid", &e);
        if (!s || !es)
                return;
        (void) ss_stream_client_connect(s);
        (void) ss_stream_client_connect(es);
        ok(ss_peers_run_until(done_connected, &r, 10000), "silent server: CONNECTED");
        ok(ss_peers_run_until(done_disconnected, &r, 10000), "no PONG: hung up (%s)", r.states);
        lived = (r.when[SS_STATE_DISCONNECTED] - r.when[SS_STATE_CONNECTED]) / 1000;
        ok(lived >= 2500 && lived < 4500, "after svalidhup (3 s): %llu ms",
           (unsigned long long) lived);
        ok(log_count(srv, "ping") >= 1, "the PING went out after svalidping (%u seen)",
           log_count(srv, "ping"));
        run_for(1500);
        is_int(e.count[SS_STATE_DISCONNECTED], 0,
               "a server that answers pings keeps the same settings connected (%s)", e.states);
        ok(echo_one(es, &e, 5), "and it still echoes");
        ss_stream_free(s);
        ss_stream_free(es);
        rec_init(&r);
        rec_init(&e);
}

static void test_bad_frames(void)
{
        static const struct {
                const char *type;
                unsigned code;
                const char *what;
        } cases[] = {
            {"masked", 1002, "a masked frame from the server"},
            {"badutf8", 1007, "a text frame that is not UTF-8"},
        };
        Rec e = {};
        SsStream *es;

        rec_init(&e);
        es = open_stream("echo", &e);
        if (!es)
                return;
        ok(echo_one(es, &e, 10), "a second stream on its own connection echoes");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Rec r = {};
                SsStream *s;

                rec_init(&r);
                s = open_stream(cases[i].type, &r);
                if (!s)
                        continue;
                (void) ss_stream_client_connect(s);
                ok(ss_peers_run_until(done_disconnected, &r, 10000), "%s: DISCONNECTED",
                   cases[i].what);
                is_int(r.ack[SS_STATE_DISCONNECTED], cases[i].code, "%s: closed with %u",
                       cases[i].what, cases[i].code);
                is_int(r.n_messages, 0, "%s: nothing delivered", cases[i].what);
                ss_stream_free(s);
                rec_init(&r);
                ok(echo_one(es, &e, 1000), "the other connection keeps working");
        }
        is_int(e.count[SS_STATE_CONNECTED], 1, "on the same connection throughout");
        ss_stream_free(es);
        rec_init(&e);
}

static void test_reconnect(Server *srv, const char *const *args, uint16_t port)
{
        Rec n = {}, o = {};
        SsStream *nailed, *idle;

        rec_init(&n);
        rec_init(&o);
        nailed = open_stream("restart_nailed", &n);
        idle = open_stream("restart_idle", &o);
        if (!nailed || !idle)
                return;
        ok(ss_peers_run_until(done_connected, &n, 10000), "nailed_up: connects by itself");
        ok(echo_one(idle, &o, 100), "idle stream: connects for its message");

        server_kill(srv);
        ok(ss_peers_run_until(done_disconnected, &n, 10000), "server gone: nailed_up DISCONNECTED");
        is_int(n.ack[SS_STATE_DISCONNECTED], 1006, "without a CLOSE: ack 1006");
        ok(ss_peers_run_until(done_disconnected, &o, 10000), "and the idle one too");
        run_for(600);
        ok(n.count[SS_STATE_UNREACHABLE] >= 1, "nailed_up keeps trying (%u UNREACHABLE)",
           n.count[SS_STATE_UNREACHABLE]);
        is_int(o.count[SS_STATE_CONNECTING], 1, "the idle one waits for a request");

        ok(server_start(srv, "ws-restart.log", args, &port, 1), "server restarted");
        n.count[SS_STATE_CONNECTED] = 0;
        ok(ss_peers_run_until(done_connected, &n, 10000), "nailed_up: reconnected (%s)", n.states);
        ok(echo_one(nailed, &n, 1000), "nailed_up: echoes on the new connection");
        ok(echo_one(idle, &o, 1000), "idle: request_tx reconnects and the message goes");
        is_int(o.count[SS_STATE_CONNECTED], 2, "idle: a second connection");
        ss_stream_free(nailed);
        ss_stream_free(idle);
        rec_init(&n);
        rec_init(&o);
}

/*
 * What the agent does on resume: ss_context_check_connections() makes a
 * connected stream ping at once (not after svalidping, 60 s here) and expect
 * the answer within svalidhup - svalidping (3 s); the silent server never
 * answers, so the stream hangs up about 3 s later.
 */
static void test_check_connections(const Server *srv)
{
        Rec r = {};
        SsStream *s;
        unsigned pings, asked;
        uint64_t t0, lived;

        rec_init(&r);
        s = open_stream("silent_check", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        ok(ss_peers_run_until(done_connected, &r, 10000), "check: CONNECTED");
        run_for(300);
        pings = log_count(srv, "ping");
        t0 = peers_now_usec();
        asked = ss_context_check_connections(ctx);
        cmp_int(asked, >=, 1, "check_connections asks the connected stream for a ping");
        run_for(500);
        cmp_int(log_count(srv, "ping"), >, pings,
                "the PING goes out at once, not after svalidping (60 s)");
        ok(ss_peers_run_until(done_disconnected, &r, 10000), "unanswered: hung up (%s)", r.states);
        lived = (r.when[SS_STATE_DISCONNECTED] - t0) / 1000;
        ok(lived >= 2500 && lived < 4500, "within svalidhup - svalidping (3 s): %llu ms",
           (unsigned long long) lived);
        ss_stream_free(s);
        rec_init(&r);
}

/* ---- main ------------------------------------------------------------------------------ */

static char *policy_json(const uint16_t *p, const PeerCerts *c)
{
        char *json = NULL;

        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"ws\",\"schema-version\":1,"
                     "\"retry\":[{\"fast\":{\"backoff\":[100,200],\"conceal\":1000,"
                     "\"jitterpc\":0}},"
                     "{\"none\":{\"backoff\":[100],\"conceal\":0}},"
                     "{\"valid\":{\"backoff\":[100],\"conceal\":0,\"svalidping\":1,"
                     "\"svalidhup\":3}},"
                     "{\"slowvalid\":{\"backoff\":[100],\"conceal\":0,\"svalidping\":60,"
                     "\"svalidhup\":63}}],"
                     "\"certs\":[{\"ca\":\"file:%s\"}],"
                     "\"trust_stores\":[{\"name\":\"ts\",\"stack\":[\"ca\"]}],"
                     "\"s\":["
                     "{\"echo\":{\"endpoint\":\"ws://127.0.0.1:%u/chat\","
                     "\"ws_subprotocol\":\"chat.v1\",\"retry\":\"fast\"}},"
                     "{\"echo_bin\":{\"endpoint\":\"ws://127.0.0.1:%u/chat\","
                     "\"ws_subprotocol\":\"chat.v1\",\"ws_binary\":true,\"retry\":\"fast\"}},"
                     "{\"echo_tls\":{\"endpoint\":\"wss://localhost:%u/chat\","
                     "\"ws_subprotocol\":\"chat.v1\",\"ws_binary\":true,\"retry\":\"fast\","
                     "\"tls_trust_store\":\"ts\"}},"
                     "{\"echo_valid\":{\"endpoint\":\"ws://127.0.0.1:%u\","
                     "\"ws_subprotocol\":\"chat.v1\",\"retry\":\"valid\"}},"
                     "{\"wrongproto\":{\"endpoint\":\"ws://127.0.0.1:%u\","
                     "\"ws_subprotocol\":\"other.v9\",\"retry\":\"none\"}},"
                     "{\"fragments\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"close\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"silent\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"valid\"}},"
                     "{\"silent_check\":{\"endpoint\":\"ws://127.0.0.1:%u\","
                     "\"retry\":\"slowvalid\"}},"
                     "{\"interleave\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"masked\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"badutf8\":{\"endpoint\":\"ws://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"restart_nailed\":{\"endpoint\":\"ws://127.0.0.1:%u\","
                     "\"ws_subprotocol\":\"chat.v1\",\"ws_binary\":true,\"retry\":\"fast\","
                     "\"nailed_up\":true}},"
                     "{\"restart_idle\":{\"endpoint\":\"ws://127.0.0.1:%u\","
                     "\"ws_subprotocol\":\"chat.v1\",\"retry\":\"fast\"}}"
                     "]}",
                     c->ca_pem, p[0], p[0], p[1], p[0], p[0], p[2], p[3], p[4], p[4], p[5], p[6],
                     p[7], p[8], p[8]) < 0)
                return NULL;
        return json;
}

int main(void)
{
        PeerCerts certs;
        uint16_t p[9];
        char specs[8][32], tls_spec[32], restart_spec[32];
        static const char *const modes[] = {"echo",       "fragments", "close",  "silent",
                                            "interleave", "masked",    "badutf8"};
        static const size_t mode_port[] = {0, 2, 3, 4, 5, 6, 7};
        const char *args[16];
        size_t n = 0;

        peers_init(180);
        if (!getenv("WS_SERVER") || access("/usr/bin/python3", X_OK) < 0)
                tap_skip_all("no /usr/bin/python3 or WS_SERVER");
        {
                const char *argv[] = {"/usr/bin/python3", "-c", "import websockets", NULL};
                if (peers_run(argv) != 0)
                        tap_skip_all("python3-websockets is not installed");
        }
        peer_certs_make(&certs);
        atexit(servers_kill);
        for (size_t i = 0; i < ELEMENTSOF(p); i++)
                p[i] = peers_free_port();

        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                snprintf(specs[i], sizeof(specs[i]), "%s:%u", modes[i], (unsigned) p[mode_port[i]]);
                args[n++] = specs[i];
        }
        args[n] = NULL;
        {
                uint16_t wait[] = {p[0], p[2], p[3], p[4], p[5], p[6], p[7]};
                ok(server_start(&servers[0], "ws-main.log", args, wait, ELEMENTSOF(wait)),
                   "python3-websockets peers are up");
        }
        snprintf(tls_spec, sizeof(tls_spec), "echo:%u", (unsigned) p[1]);
        const char *tls_args[] = {"--cert",         certs.server_pem, "--key",
                                  certs.server_key, tls_spec,         NULL};
        ok(server_start(&servers[1], "ws-tls.log", tls_args, &p[1], 1), "TLS peer is up");
        snprintf(restart_spec, sizeof(restart_spec), "echo:%u", (unsigned) p[8]);
        const char *restart_args[] = {restart_spec, NULL};
        ok(server_start(&servers[2], "ws-restart.log", restart_args, &p[8], 1),
           "restartable peer is up");

        ss_peers_start(policy_json(p, &certs), &event, &ctx);

        test_echo("echo", false);
        test_echo("echo_bin", true);
        test_echo("echo_tls", true);
        test_chain("echo");
        test_subprotocol();
        test_fragments();
        test_interleave(&servers[0]);
        test_close_code();
        test_bad_frames();
        test_validity(&servers[0]);
        test_check_connections(&servers[0]);
        test_reconnect(&servers[2], restart_args, p[8]);

        ss_peers_stop(&ctx, &event);
        servers_kill();
        for (size_t i = 0; i < ELEMENTSOF(servers); i++)
                free(servers[i].log);
        peer_certs_free(&certs);
        return peers_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * WebSocket upgrades on server streamtypes (issue 11) against python3-websockets
 * clients (test-ss-ws-server.py): an echo application that swaps its handlers
 * at SERVER_UPGRADE; text echoed byte-exact (short, empty, non-ASCII, 1 MiB
 * sent back in frames, a message the client fragmented), a PING answered,
 * close codes both ways (the client's 4001 echoed and delivered as the ack
 * of DISCONNECTED, SS_DISCONNECT_ME giving 1000), binary with ws_binary, the
 * same over TLS; ws_max_message across fragments (1009); refused handshakes (426 with the version,
 * 400); 100 clients each receiving a counter pushed with ss_stream_server_foreach(); bad frames
 * (unmasked, not UTF-8, too big, unknown opcode) closing only their
 * connection with 1002/1007/1009 while another client keeps its echo; a
 * client that upgrades and never reads while the server sends an endless
 * message, dropped (1006) after timeout_ms without progress; and a plain HTTP
 * request on the same port still served.
 * Validity (svalidping 1, svalidhup 4; and, without them, timeout_ms 2000 as
 * the idle time): a client that completes the handshake and then answers
 * nothing gets a PING and then CLOSE 1001 no earlier than the policy says,
 * and DISCONNECTED with 1006; a python3-websockets client that sends nothing
 * itself (ping_interval=None) but answers PINGs stays connected past both and
 * still echoes. ss_stream_ws_close(): the client sees the application's code
 * and reason (one of 123 bytes too); bad codes, an over-long or non-UTF-8
 * reason, a plain HTTP stream, a second close are refused, and so is a close
 * from DISCONNECTED (after a drop without a CLOSE too).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "ss-peers.h"
#include "stream.h"
#include "tap.h"

#define ECHO_MAX (2u * 1024 * 1024)

static sd_event *event;
static SsContext *ctx;
static PeerCerts certs;
static const char *script;
static SsStream *push_server;

/* What the application keeps per upgraded connection. */
typedef struct Conn {
        SsStream *s;
        uint8_t *buf;
        size_t len, sent;
        bool in_message;
        unsigned repeat; /* more copies to send, each asked for by the previous one's end */
} Conn;

static Conn conns[300];
static unsigned upgrades, flag_errors, http_requests, max_push_conns;
static uint32_t acks[1024];
static size_t n_acks;
static unsigned counter;

/* ss_stream_ws_close() results, in the order tried (see echo_rx()). */
static int close_results[16];
static size_t n_close_results;
static int txn_close_result = 1;
static unsigned late_close_accepted; /* ss_stream_ws_close() in DISCONNECTED not -ESTALE */

static void note_close_result(int r)
{
        if (n_close_results < ELEMENTSOF(close_results))
                close_results[n_close_results++] = r;
}

/*
 * "close-app": the application closes with 4321 and a short reason, after
 * trying what must be refused; "close-long": 3999 with a reason of 123 bytes.
 */
static SsResult app_close(SsStream *s, bool long_reason)
{
        /* 41 three-byte characters: 123 bytes, the most a CLOSE frame holds. */
        char reason[200] = "";
        static const uint16_t refused[] = {999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};

        if (long_reason) {
                for (size_t i = 0; i < 41; i++)
                        strcat(reason, "\u2603");
                note_close_result(ss_stream_ws_close(s, 3999, reason));
                return SS_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                note_close_result(ss_stream_ws_close(s, refused[i], NULL));
        for (size_t i = 0; i < 124; i++)
                strcat(reason, "r");
        note_close_result(ss_stream_ws_close(s, 4000, reason)); /* 124 bytes */
        note_close_result(ss_stream_ws_close(s, 4000, "bad \xc3\x28 utf-8"));
        note_close_result(ss_stream_ws_close(NULL, 4000, NULL));
        note_close_result(ss_stream_ws_close(s, 4321, "app says bye \u2603"));
        note_close_result(ss_stream_ws_close(s, 4322, "again")); /* closing already */
        return SS_OK;
}

static Conn *conn_get(SsStream *s, bool create)
{
        Conn *free_slot = NULL;

        for (size_t i = 0; i < ELEMENTSOF(conns); i++) {
                if (conns[i].s == s)
                        return &conns[i];
                if (!conns[i].s && !free_slot)
                        free_slot = &conns[i];
        }
        if (!create || !free_slot)
                return NULL;
        *free_slot = (Conn){.s = s};
        return free_slot;
}

static void conn_drop(SsStream *s)
{
        Conn *c = conn_get(s, false);

        if (c) {
                free(c->buf);
                *c = (Conn){};
        }
}

/* ---- the echo application ----------------------------------------------------------------- */

static SsResult echo_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Conn *c = conn_get(s, false);

        (void) userdata;
        if (!c)
                return SS_DISCONNECT_ME;
        /* SOM exactly at the start of each message. */
        if (!!(flags & SS_FLAG_SOM) == c->in_message)
                flag_errors++;
        if (flags & SS_FLAG_SOM) {
                c->len = c->sent = 0;
                c->in_message = true;
        }
        if (c->len + len > ECHO_MAX)
                return SS_DISCONNECT_ME;
        if (!c->buf && !(c->buf = malloc(ECHO_MAX)))
                return SS_DISCONNECT_ME;
        memcpy(c->buf + c->len, buf, len);
        c->len += len;
        if (flags & SS_FLAG_EOM) {
                c->in_message = false;
                if (c->len == 8 && memcmp(c->buf, "close-me", 8) == 0)
                        return SS_DISCONNECT_ME;
                if (c->len == 9 && memcmp(c->buf, "close-app", 9) == 0)
                        return app_close(s, false);
                if (c->len == 10 && memcmp(c->buf, "close-long", 10) == 0)
                        return app_close(s, true);
                c->repeat = c->len == 8 && memcmp(c->buf, "repeat-3", 8) == 0 ? 2 : 0;
                (void) ss_stream_request_tx(s);
        }
        return SS_OK;
}

static SsResult echo_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Conn *c = conn_get(s, false);
        size_t n;

        (void) userdata;
        if (!c)
                return SS_DISCONNECT_ME;
        n = c->len - c->sent < *len ? c->len - c->sent : *len;
        if (n)
                memcpy(buf, c->buf + c->sent, n);
        c->sent += n;
        *len = n;
        if (c->sent == c->len) {
                *flags = SS_FLAG_EOM;
                if (c->repeat > 0) {
                        /* The next copy, asked for from the call that ends this one. */
                        c->repeat--;
                        c->sent = 0;
                        (void) ss_stream_request_tx(s);
                }
        }
        return SS_OK;
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        (void) userdata;
        switch (state) {
        case SS_STATE_SERVER_UPGRADE:
                upgrades++;
                if (!conn_get(s, true))
                        return SS_DISCONNECT_ME;
                ss_stream_change_handlers(s, echo_rx, echo_tx, NULL);
                return SS_OK;
        case SS_STATE_SERVER_TXN:
                /* Plain HTTP on the same port: a short answer. */
                http_requests++;
                txn_close_result = ss_stream_ws_close(s, 1000, NULL);
                (void) ss_stream_server_ack(s, 0);
                (void) ss_stream_request_tx_len(s, 0);
                return SS_OK;
        case SS_STATE_DISCONNECTED:
                if (conn_get(s, false) && n_acks < ELEMENTSOF(acks))
                        acks[n_acks++] = ack;
                if (conn_get(s, false) && ss_stream_ws_close(s, 4000, NULL) != -ESTALE)
                        late_close_accepted++;
                return SS_OK;
        case SS_STATE_DESTROYING:
                conn_drop(s);
                return SS_OK;
        default:
                return SS_OK;
        }
}

static SsResult http_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        (void) s;
        (void) userdata;
        (void) buf;
        *len = 0;
        *flags = SS_FLAG_EOM;
        return SS_OK;
}

/* ---- the counter pushed to every client --------------------------------------------------- */

static SsResult push_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        (void) s;
        (void) userdata;
        (void) ack;
        if (state == SS_STATE_SERVER_UPGRADE) {
                int n = ss_stream_server_n_connections(push_server);

                if (n > 0 && (unsigned) n > max_push_conns)
                        max_push_conns = (unsigned) n;
        }
        return SS_OK;
}

static SsResult push_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        (void) s;
        (void) userdata;
        *len = (size_t) snprintf((char *) buf, *len, "%u", counter);
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        return SS_OK;
}

static int push_one(SsStream *s, void *userdata)
{
        (void) userdata;
        if (ss_stream_get_state(s) == SS_STATE_SERVER_UPGRADE)
                (void) ss_stream_request_tx(s);
        return 0;
}

static int on_push_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        (void) userdata;
        counter++;
        (void) ss_stream_server_foreach(push_server, push_one, NULL);
        (void) sd_event_source_set_time(source, usec + 200000);
        return 0;
}

/* ---- an endless message to a client that does not read ------------------------------------ */

static uint64_t flood_disconnected_usec;
static uint32_t flood_ack;

static SsResult flood_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        (void) userdata;
        if (state == SS_STATE_SERVER_UPGRADE)
                (void) ss_stream_request_tx(s);
        else if (state == SS_STATE_DISCONNECTED && ack) {
                flood_disconnected_usec = peers_now_usec();
                flood_ack = ack;
        }
        return SS_OK;
}

static SsResult flood_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        (void) s;
        (void) userdata;
        memset(buf, 'x', *len);
        *flags = 0; /* never EOM: tx is called as long as the socket takes bytes */
        return SS_OK;
}

/* ---- clients ------------------------------------------------------------------------------ */

static int exec_client(void *arg)
{
        char *const *argv = arg;

        execv(argv[0], argv);
        return 127;
}

/* Runs argv (stderr kept) in a child while the loop serves; its exit status or -1. */
static int run_client(const char *const *argv, unsigned timeout_sec)
{
        return ss_peers_run_child(exec_client, (void *) argv, timeout_sec);
}

static int client(const char *kase, uint16_t port, const char *ca)
{
        char p[16];
        const char *argv[] = {"/usr/bin/python3", script, kase, p, ca, NULL};

        snprintf(p, sizeof(p), "%u", (unsigned) port);
        return run_client(argv, 90);
}

/* The validity case: a silent client and a quiet one on port, svalidping ping s, svalidhup hup s.
 */
static int client_validity(uint16_t port, unsigned ping, unsigned hup)
{
        char p[16], pi[16], hu[16];
        const char *argv[] = {"/usr/bin/python3", script, "validity", p, "-", pi, hu, NULL};

        snprintf(p, sizeof(p), "%u", (unsigned) port);
        snprintf(pi, sizeof(pi), "%u", ping);
        snprintf(hu, sizeof(hu), "%u", hup);
        return run_client(argv, 90);
}

/* Serves until an upgraded connection ended with ack (from index from on), or 10 s. */
static bool wait_ack(size_t from, uint32_t ack)
{
        uint64_t deadline = peers_now_usec() + 10000000ULL;

        for (;;) {
                for (size_t i = from; i < n_acks; i++)
                        if (acks[i] == ack)
                                return true;
                if (peers_now_usec() > deadline)
                        return false;
                (void) sd_event_run(event, 10000);
        }
}

static void diag_acks(size_t from)
{
        for (size_t i = from; i < n_acks; i++)
                tap_diag("DISCONNECTED ack %u", (unsigned) acks[i]);
}

/* A plain HTTP request on the ws port, with curl: its status, or -1. */
static int curl_plain(uint16_t port)
{
        char url[64], *out = peers_path("curl.out"), *head = peers_path("curl.head"), *text;
        const char *argv[] = {"/usr/bin/curl", "-s", "-o", out, "-D", head,
                              "--max-time",    "20", url,  NULL};
        int status = -1;

        snprintf(url, sizeof(url), "http://127.0.0.1:%u/page", (unsigned) port);
        if (run_client(argv, 30) == 0 && (text = peers_read_file(head, NULL))) {
                if (strncmp(text, "HTTP/1.1 ", 9) == 0)
                        status = atoi(text + 9);
                free(text);
        }
        free(out);
        free(head);
        return status;
}

static char *policy_json(uint16_t echo, uint16_t tls, uint16_t bin, uint16_t push, uint16_t flood,
                         uint16_t valid, uint16_t idle)
{
        char *json = NULL;

        if (asprintf(
                &json,
                "{\"release\":\"1\",\"product\":\"wsserver\",\"schema-version\":1,"
                "\"retry\":[{\"valid\":{\"backoff\":[1000],\"svalidping\":1,\"svalidhup\":4}}],"
                "\"certs\":[{\"scert\":\"file:%s\"},{\"skey\":\"file:%s\"}],"
                "\"s\":["
                "{\"wsecho\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"chat.v2, echo.v1\",\"metadata\":[{\"path\":\"\"}]}},"
                "{\"wsechotls\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"tls\":true,\"server_cert\":\"scert\",\"server_key\":\"skey\","
                "\"ws_subprotocol\":\"echo.v1\"}},"
                "{\"wsbin\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"echo.v1\",\"ws_binary\":true,\"ws_max_message\":4096}},"
                "{\"wspush\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"counter\"}},"
                "{\"wsflood\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"flood\",\"timeout_ms\":1500}},"
                "{\"wsvalid\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"echo.v1\",\"retry\":\"valid\"}},"
                "{\"wsidle\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"ws_subprotocol\":\"echo.v1\",\"timeout_ms\":2000}}"
                "]}",
                certs.server_pem, certs.server_key, (unsigned) echo, (unsigned) tls, (unsigned) bin,
                (unsigned) push, (unsigned) flood, (unsigned) valid, (unsigned) idle) < 0)
                return NULL;
        return json;
}

static uint16_t other_port(const uint16_t *used, size_t n)
{
        for (;;) {
                uint16_t p = peers_free_port();
                bool clash = false;

                for (size_t i = 0; i < n; i++)
                        clash |= used[i] == p;
                if (!clash)
                        return p;
        }
}

int main(void)
{
        SsStreamHandlers handlers = {.tx = http_tx, .state = on_state};
        SsStreamHandlers push_handlers = {.tx = push_tx, .state = push_state};
        SsStreamHandlers flood_handlers = {.tx = flood_tx, .state = flood_state};
        SsStream *echo = NULL, *tls = NULL, *bin = NULL, *flood = NULL, *valid = NULL, *idle = NULL;
        sd_event_source *timer = NULL;
        uint16_t port[7];
        size_t from;

        peers_init(240);
        script = getenv("WS_CLIENT");
        if (!script || access("/usr/bin/python3", X_OK) < 0)
                tap_skip_all("no /usr/bin/python3 or WS_CLIENT");
        {
                const char *argv[] = {"/usr/bin/python3", "-c", "import websockets", NULL};

                if (peers_run(argv) != 0)
                        tap_skip_all("python3-websockets is not installed");
        }
        if (!peers_have("curl"))
                tap_skip_all("curl is not installed");
        peer_certs_make(&certs);
        for (size_t i = 0; i < ELEMENTSOF(port); i++)
                port[i] = other_port(port, i);

        ss_peers_start(policy_json(port[0], port[1], port[2], port[3], port[4], port[5], port[6]),
                       &event, &ctx);

        is_int(ss_stream_new(&echo, ctx, "wsecho", &handlers, NULL), 0, "ws server listens");
        is_int(ss_stream_new(&tls, ctx, "wsechotls", &handlers, NULL), 0, "wss server listens");
        is_int(ss_stream_new(&bin, ctx, "wsbin", &handlers, NULL), 0, "binary ws server listens");
        is_int(ss_stream_new(&push_server, ctx, "wspush", &push_handlers, NULL), 0,
               "push server listens");
        is_int(ss_stream_new(&flood, ctx, "wsflood", &flood_handlers, NULL), 0,
               "flood server listens");
        is_int(ss_stream_new(&valid, ctx, "wsvalid", &handlers, NULL), 0,
               "ws server with svalidping 1, svalidhup 4 listens");
        is_int(ss_stream_new(&idle, ctx, "wsidle", &handlers, NULL), 0,
               "ws server with timeout_ms 2000 and no validity keys listens");
        is_int(ss_stream_ws_close(echo, 1000, NULL), -EINVAL,
               "ss_stream_ws_close() on the server stream itself: -EINVAL");
        if (!echo || !tls || !bin || !push_server || !flood || !valid || !idle)
                return peers_done();

        from = n_acks;
        is_int(client("echo", port[0], NULL), 0,
               "text echo: short, empty, non-ASCII, 1 MiB, fragmented; PING; close 4001");
        ok(wait_ack(from, 4001), "the client's close code 4001 is the ack of DISCONNECTED");
        cmp_int(upgrades, >=, 1, "SERVER_UPGRADE delivered");
        is_int(flag_errors, 0, "every message arrived SOM first, EOM last");

        from = n_acks;
        is_int(client("echo", port[1], certs.ca_pem), 0, "the same over TLS (wss)");
        ok(wait_ack(from, 4001), "wss: close code 4001 delivered");

        is_int(client("binary", port[2], NULL), 0, "binary echo with ws_binary, fragmented too");
        from = n_acks;
        is_int(client("limit", port[2], NULL), 0,
               "ws_max_message 4096: 4096 bytes echoed, 4097 in two fragments closed with 1009");
        ok(wait_ack(from, 1009), "DISCONNECTED with 1009");

        from = n_acks;
        is_int(client("servclose", port[0], NULL), 0, "SS_DISCONNECT_ME from rx closes with 1000");
        ok(wait_ack(from, 1000), "DISCONNECTED with 1000");

        is_int(client("version", port[0], NULL), 0,
               "version 8 refused: 426, Sec-WebSocket-Version: 13");
        is_int(client("noproto", port[0], NULL), 0, "no subprotocol offered: 400");
        is_int(client("badkey", port[0], NULL), 0, "a bad key: 400");
        is_int(client("pipelined", port[0], NULL), 0,
               "two requests and an upgrade in one write: 200, 200, then 400 (an upgrade "
               "only as the first request) and the close");

        {
                static const struct {
                        const char *name;
                        uint32_t code;
                } bad[] = {
                    {"unmasked", 1002}, {"badutf8", 1007}, {"toobig", 1009}, {"badopcode", 1002}};

                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        from = n_acks;
                        is_int(client(bad[i].name, port[0], NULL), 0,
                               "%s: CLOSE %u to that client only, the other still echoes",
                               bad[i].name, (unsigned) bad[i].code);
                        if (!ok(wait_ack(from, bad[i].code), "%s: DISCONNECTED with %u",
                                bad[i].name, (unsigned) bad[i].code))
                                diag_acks(from);
                }
        }

        http_requests = 0;
        is_int(curl_plain(port[0]), 200, "plain HTTP on the ws port is served");
        is_int(http_requests, 1, "as a SERVER_TXN");
        is_int(txn_close_result, -EOPNOTSUPP,
               "ss_stream_ws_close() on a plain HTTP request's stream: -EOPNOTSUPP");

        {
                static const int want[] = {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
                                           -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
                                           -EINVAL, 0,       -ESTALE, 0};
                bool same;

                from = n_acks;
                n_close_results = 0;
                is_int(client("appclose", port[0], NULL), 0,
                       "ss_stream_ws_close(): the client sees 4321 and its reason, then 3999 and a "
                       "reason of 123 bytes");
                ok(wait_ack(from, 4321), "DISCONNECTED with the application's 4321");
                ok(wait_ack(from, 3999), "DISCONNECTED with the application's 3999");
                same = n_close_results == ELEMENTSOF(want);
                for (size_t i = 0; same && i < n_close_results; i++)
                        same = close_results[i] == want[i];
                if (!ok(same, "codes 999 1004 1005 1006 1015 1016 2999 5000, a reason of 124 "
                              "bytes, one not UTF-8 and a NULL stream refused; a second close "
                              "-ESTALE; 123 bytes taken"))
                        for (size_t i = 0; i < n_close_results; i++)
                                tap_diag("result %zu: %d", i, close_results[i]);
        }

        {
                static const struct {
                        const char *what;
                        size_t port;
                        unsigned ping, hup;
                } validity[] = {
                    {"svalidping 1, svalidhup 4", 5, 1, 4},
                    {"no svalidping or svalidhup: timeout_ms 2000 as the idle time", 6, 2, 4},
                };

                for (size_t i = 0; i < ELEMENTSOF(validity); i++) {
                        from = n_acks;
                        is_int(client_validity(port[validity[i].port], validity[i].ping,
                                               validity[i].hup),
                               0,
                               "%s: a client that answers nothing gets a PING after %u s and "
                               "CLOSE 1001 after %u s; a quiet client that answers PINGs still "
                               "echoes",
                               validity[i].what, validity[i].ping, validity[i].hup);
                        if (!ok(wait_ack(from, 1006), "%s: DISCONNECTED with 1006",
                                validity[i].what))
                                diag_acks(from);
                }
        }

        is_int(sd_event_add_time_relative(event, &timer, CLOCK_MONOTONIC, 200000, 0, on_push_timer,
                                          NULL),
               0, "push timer");
        (void) sd_event_source_set_enabled(timer, SD_EVENT_ON);
        is_int(client("many", port[3], NULL), 0,
               "100 clients each see three increasing counter values");
        cmp_int(max_push_conns, >=, 100, "100 connections at once on the push server");
        timer = sd_event_source_disable_unref(timer);

        {
                uint64_t start = peers_now_usec(), end;

                is_int(client("stall", port[4], NULL), 0,
                       "a client that upgrades and reads nothing");
                end = peers_now_usec();
                is_int(flood_ack, 1006, "the server gave up on it: DISCONNECTED with 1006");
                ok(flood_disconnected_usec > start + 1400000 && flood_disconnected_usec < end,
                   "after its timeout_ms (1.5 s) without progress, while the client still lived "
                   "(%.1f s)",
                   (double) (flood_disconnected_usec - start) / 1e6);
        }

        from = n_acks;
        is_int(client("drop", port[0], NULL), 0, "a client drops the connection without a CLOSE");
        ok(wait_ack(from, 1006), "DISCONNECTED with 1006");
        is_int(late_close_accepted, 0,
               "ss_stream_ws_close() from DISCONNECTED: -ESTALE, the connection is over");

        /* Everything closes: the connections go with their server streams. */
        echo = ss_stream_free(echo);
        tls = ss_stream_free(tls);
        bin = ss_stream_free(bin);
        push_server = ss_stream_free(push_server);
        flood = ss_stream_free(flood);
        valid = ss_stream_free(valid);
        idle = ss_stream_free(idle);
        is_int(ss_context_n_streams(ctx), 0, "no stream left");
        ss_peers_stop(&ctx, &event);
        peer_certs_free(&certs);
        return peers_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * ws-counter: HTTPS and WebSocket from one server streamtype, in process.
 * GET / answers an HTML page; the page opens a wss connection back to the
 * same server (subprotocol "counter"), and once a second the server sends an
 * incrementing counter to every connected page, which shows it. The policy
 * (ws-counter.json) says where to listen and which certificate to use; this
 * code only handles requests and payloads.
 *
 *     ws-counter [POLICY]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define STREAMTYPE "ws-counter"

static const char page[] =
    "<!DOCTYPE html>\n"
    "<html><head><meta charset=\"utf-8\"><title>ws-counter</title>\n"
    "<style>body{font:16px sans-serif;margin:3em}#counter{font-size:6em}</style>\n"
    "</head><body>\n"
    "<h1>smdagent ws-counter</h1>\n"
    "<div id=\"counter\">-</div>\n"
    "<p id=\"status\">connecting</p>\n"
    "<script>\n"
    "const ws = new WebSocket(\"wss://\" + location.host + \"/counter\", \"counter\");\n"
    "const status = document.getElementById(\"status\");\n"
    "ws.onopen = () => { status.textContent = \"connected\"; };\n"
    "ws.onmessage = (e) => { document.getElementById(\"counter\").textContent = e.data; };\n"
    "ws.onclose = (e) => { status.textContent = \"closed (\" + e.code + \")\"; };\n"
    "</script>\n"
    "</body></html>\n";

static SsStream *server;
static unsigned counter;

/* An upgraded connection: the counter as one text message per request_tx. */
static SsResult ws_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        int n = snprintf((char *) buf, *len, "%u", counter);

        (void) s;
        (void) userdata;
        if (n < 0 || (size_t) n >= *len)
                return SS_DISCONNECT_ME;
        *len = (size_t) n;
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        return SS_OK;
}

/* Pages send nothing we need; whatever comes is dropped. */
static SsResult ws_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        (void) s;
        (void) userdata;
        (void) buf;
        (void) len;
        (void) flags;
        return SS_OK;
}

/* A plain HTTP request: the page (one tx call takes it whole). */
static SsResult http_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        (void) s;
        (void) userdata;
        if (*len < sizeof(page) - 1)
                return SS_DISCONNECT_ME;
        memcpy(buf, page, sizeof(page) - 1);
        *len = sizeof(page) - 1;
        *flags = SS_FLAG_EOM;
        return SS_OK;
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        const char *path = NULL;

        (void) userdata;
        switch (state) {
        case SS_STATE_SERVER_TXN:
                (void) ss_stream_server_get_request(s, NULL, &path);
                if (!path || strcmp(path, "/") != 0)
                        return SS_OK; /* unanswered: 404 */
                (void) ss_stream_server_ack(s, 0);
                (void) ss_stream_set_metadata(s, "mime", "text/html; charset=utf-8", 24);
                (void) ss_stream_request_tx_len(s, sizeof(page) - 1);
                return SS_OK;
        case SS_STATE_SERVER_UPGRADE:
                /* A page connected: ws handlers from now on, and the current value at once. */
                ss_stream_change_handlers(s, ws_rx, ws_tx, NULL);
                (void) ss_stream_request_tx(s);
                fprintf(stderr, "ws-counter: a page connected (%d connections)\n",
                        ss_stream_server_n_connections(server));
                return SS_OK;
        case SS_STATE_DISCONNECTED:
                /* The ack is the WebSocket close code (0 for plain HTTP connections). */
                if (ack != 0)
                        fprintf(stderr, "ws-counter: a page left (close code %u)\n",
                                (unsigned) ack);
                return SS_OK;
        default:
                return SS_OK;
        }
}

static int push_one(SsStream *s, void *userdata)
{
        (void) userdata;
        /* Only connections that upgraded want the counter. */
        if (ss_stream_get_state(s) == SS_STATE_SERVER_UPGRADE)
                (void) ss_stream_request_tx(s);
        return 0;
}

static int on_tick(sd_event_source *source, uint64_t usec, void *userdata)
{
        (void) userdata;
        counter++;
        (void) ss_stream_server_foreach(server, push_one, NULL);
        return sd_event_source_set_time(source, usec + 1000000);
}

int main(int argc, char **argv)
{
        const char *path = argc > 1 ? argv[1] : WS_COUNTER_POLICY;
        SsStreamHandlers handlers = {.tx = http_tx, .state = on_state};
        PolicyErrors errors = {};
        sd_event_source *tick = NULL;
        const PolicyStreamtype *st;
        sd_event *event = NULL;
        SsContext *ctx = NULL;
        Policy *policy;
        sigset_t mask;
        int r;

        if (argc > 2) {
                fprintf(stderr, "usage: ws-counter [POLICY]\n");
                return 2;
        }
        policy = policy_new();
        if (!policy)
                return 1;
        r = policy_add_file(policy, path, &errors);
        for (size_t i = 0; i < errors.n_messages; i++)
                fprintf(stderr, "ws-counter: %s\n", errors.messages[i]);
        policy_errors_clear(&errors);
        st = r < 0 ? NULL : policy_find_streamtype(policy, STREAMTYPE);
        if (!st) {
                fprintf(stderr, "ws-counter: %s: no streamtype \"%s\"\n", path, STREAMTYPE);
                policy_unref(policy);
                return 1;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = ss_context_new(&ctx, event, policy);
        if (r >= 0)
                r = ss_stream_new(&server, ctx, STREAMTYPE, &handlers, NULL);
        if (r < 0) {
                fprintf(stderr, "ws-counter: cannot serve %s: %s\n", STREAMTYPE, strerror(-r));
                if (r == -ENOENT) /* certtool was missing at build time */
                        fprintf(stderr, "ws-counter: make the certificate with "
                                        "examples/ws-counter/ws-counter-certs.sh\n");
                goto out;
        }
        r = sd_event_add_time_relative(event, &tick, CLOCK_MONOTONIC, 1000000, 0, on_tick, NULL);
        if (r >= 0)
                r = sd_event_source_set_enabled(tick, SD_EVENT_ON);
        if (r < 0)
                goto out;
        fprintf(stderr, "ws-counter: serving https://%s:%u/ (Ctrl-C stops)\n",
                st->endpoint ? st->endpoint : "localhost", (unsigned) st->port);
        r = sd_event_loop(event);
out:
        sd_event_source_disable_unref(tick);
        ss_stream_free(server);
        ss_context_free(ctx);
        sd_event_unref(event);
        policy_unref(policy);
        return r < 0 ? 1 : 0;
}

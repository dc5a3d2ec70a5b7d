/* SPDX-License-Identifier: MIT */
/*
 * A server streamtype as a benchmark target: every request on 127.0.0.1:PORT
 * gets 200 with the same small body ("hello world\n", content-type
 * text/plain), over HTTP/1.1 or h2c (prior knowledge), from one in-process
 * engine on one thread. bench/h1-server (wrk) and bench/h2-server
 * (h2load) run it next to nginx with one worker.
 * With --cert and --key (PEM files) it serves over TLS instead (ALPN h2 and
 * http/1.1). With --nginx-headers every response also carries the headers
 * nginx adds to the same response (server, date, connection: keep-alive; not
 * for h2), so that both send the same bytes. Prints "ready" once listening;
 * runs until SIGTERM or SIGINT.
 *
 *   server-app --port P [--cert PEM --key PEM] [--nginx-headers]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stream.h"

static const char body[] = "hello world\n";
static int nginx_headers;

/*
 * The Date header: an IMF-fixdate formatted by a timer at each second, so a
 * request reads no clock (nginx, likewise, reads the time once per loop
 * iteration, not per request).
 */
static char date[64];
static size_t date_len;

static int on_second(sd_event_source *source, uint64_t usec, void *userdata)
{
        time_t now = (time_t) (usec / 1000000);
        struct tm tm;

        (void) userdata;
        date_len = strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
        if (!source)
                return 0;
        (void) sd_event_source_set_time(source, (usec / 1000000 + 1) * 1000000);
        return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        (void) userdata;
        (void) ack;
        if (state != SS_STATE_SERVER_TXN)
                return SS_OK;
        (void) ss_stream_server_ack(s, 0);
        if (nginx_headers) {
                (void) ss_stream_set_metadata(s, "srv", "smdss", 5); /* as long as "nginx" */
                (void) ss_stream_set_metadata(s, "date", date, date_len);
        }
        (void) ss_stream_set_metadata(s, "ct", "text/plain", 10);
        if (nginx_headers)
                (void) ss_stream_set_metadata(s, "conn", "keep-alive", 10);
        (void) ss_stream_request_tx_len(s, sizeof(body) - 1);
        return SS_OK;
}

static SsResult on_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        (void) s;
        (void) userdata;
        memcpy(buf, body, sizeof(body) - 1);
        *len = sizeof(body) - 1;
        *flags = SS_FLAG_EOM;
        return SS_OK;
}

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata)
{
        (void) si;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(source), 0);
}

int main(int argc, char **argv)
{
        SsStreamHandlers handlers = {.tx = on_tx, .state = on_state};
        PolicyErrors errors = {};
        Policy *policy = policy_new();
        sd_event *event = NULL;
        SsContext *ctx = NULL;
        SsStream *server = NULL;
        const char *cert = NULL, *key = NULL;
        unsigned port = 0;
        char *json = NULL;
        sigset_t mask;
        int r;

        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--nginx-headers") == 0) {
                        nginx_headers = 1;
                        memmove(&argv[i], &argv[i + 1], (size_t) (argc - i) * sizeof(*argv));
                        argc--;
                        break;
                }
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--port") == 0)
                        port = (unsigned) strtoul(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--cert") == 0)
                        cert = argv[i + 1];
                else if (strcmp(argv[i], "--key") == 0)
                        key = argv[i + 1];
                else
                        port = 0;
        }
        if (port == 0 || port > 65535 || argc % 2 == 0 || !cert != !key) {
                fprintf(stderr,
                        "usage: server-app --port P [--cert PEM --key PEM] [--nginx-headers]\n");
                return 2;
        }
        if (asprintf(
                &json,
                "{\"release\":\"1\",\"product\":\"bench\",\"schema-version\":1,%s%s%s%s%s"
                "\"s\":[{\"bench\":{\"server\":true,\"endpoint\":\"127.0.0.1\",\"port\":%u,"
                "\"protocol\":\"h1\",%s\"metadata\":[{\"srv\":\"server:\"},{\"date\":\"date:\"},"
                "{\"ct\":\"content-type:\"},{\"conn\":\"connection:\"}]}}]}",
                cert ? "\"certs\":[{\"c\":\"file:" : "", cert ? cert : "",
                cert ? "\"},{\"k\":\"file:" : "", key ? key : "", cert ? "\"}]," : "", port,
                cert ? "\"tls\":true,\"server_cert\":\"c\",\"server_key\":\"k\"," : "") < 0)
                return 1;
        if (!policy || policy_add_buffer(policy, "bench", json, strlen(json), &errors) < 0) {
                for (size_t i = 0; i < errors.n_messages; i++)
                        fprintf(stderr, "%s\n", errors.messages[i]);
                return 1;
        }
        free(json);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        if (sd_event_new(&event) < 0 || ss_context_new(&ctx, event, policy) < 0)
                return 1;
        policy_unref(policy);
        (void) sd_event_add_signal(event, NULL, SIGTERM, on_signal, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT, on_signal, NULL);
        if (nginx_headers) {
                uint64_t now = 0;

                (void) sd_event_now(event, CLOCK_REALTIME, &now);
                (void) on_second(NULL, now, NULL);
                if (sd_event_add_time(event, NULL, CLOCK_REALTIME, (now / 1000000 + 1) * 1000000,
                                      1000, on_second, NULL) < 0)
                        return 1;
        }
        r = ss_stream_new(&server, ctx, "bench", &handlers, NULL);
        if (r < 0) {
                fprintf(stderr, "listening on 127.0.0.1:%u: %s\n", port, strerror(-r));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        r = sd_event_loop(event);
        server = ss_stream_free(server);
        ctx = ss_context_free(ctx);
        event = sd_event_unref(event);
        return r < 0 ? 1 : 0;
}

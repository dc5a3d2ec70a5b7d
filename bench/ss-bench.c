/* SPDX-License-Identifier: MIT */
/* The Secure Streams client benchmarks' shared code; see ss-bench.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ss-bench.h"

int ss_bench_start(char *json, sd_event **ret_event, SsContext **ret_ctx)
{
        PolicyErrors errors = {};
        Policy *policy = policy_new();
        int r = -1;

        *ret_event = NULL;
        *ret_ctx = NULL;
        if (!policy || !json)
                goto out;
        if (policy_add_buffer(policy, "bench", json, strlen(json), &errors) < 0) {
                for (size_t i = 0; i < errors.n_messages; i++)
                        fprintf(stderr, "%s\n", errors.messages[i]);
                goto out;
        }
        if (sd_event_new(ret_event) < 0 || ss_context_new(ret_ctx, *ret_event, policy) < 0)
                goto out;
        r = 0;
out:
        policy_unref(policy);
        policy_errors_clear(&errors);
        free(json);
        return r;
}

void ss_bench_stop(SsContext *ctx, sd_event *event)
{
        ss_context_free(ctx);
        sd_event_unref(event);
}

typedef struct Bench {
        SsContext *ctx;
        unsigned count, concurrency, started, finished, acked;
        uint64_t bytes;
} Bench;

static SsResult on_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Bench *b = userdata;

        b->bytes += len;
        return SS_OK;
}

static void start_one(Bench *b);

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Bench *b = userdata;

        switch (state) {
        case SS_STATE_QOS_ACK_REMOTE:
                b->acked++;
                __attribute__((fallthrough));
        case SS_STATE_QOS_NACK_REMOTE:
        case SS_STATE_ALL_RETRIES_FAILED:
                b->finished++;
                if (b->started < b->count)
                        start_one(b);
                return SS_DESTROY_ME;
        default:
                return SS_OK;
        }
}

static void start_one(Bench *b)
{
        static const SsStreamHandlers handlers = {.rx = on_rx, .state = on_state};
        SsStream *s;

        b->started++;
        if (ss_stream_new(&s, b->ctx, "bench", &handlers, b) < 0) {
                b->finished++;
                return;
        }
        (void) ss_stream_client_connect(s);
}

int ss_bench_http_main(int argc, char **argv, const SsBenchHttp *http)
{
        static const struct option options[] = {
            {"host", required_argument, NULL, 'h'},
            {"port", required_argument, NULL, 'p'},
            {"path", required_argument, NULL, 'u'},
            {"ca", required_argument, NULL, 'c'},
            {"count", required_argument, NULL, 'n'},
            {"concurrency", required_argument, NULL, 'j'},
            {},
        };
        const char *host = http->host, *path = "/", *ca = NULL;
        unsigned port = 0;
        Bench b = {.count = http->count, .concurrency = http->concurrency};
        sd_event *event = NULL;
        char *json = NULL;
        uint64_t t0, t1;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        host = optarg;
                        break;
                case 'p':
                        port = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'u':
                        path = optarg;
                        break;
                case 'c':
                        ca = optarg;
                        break;
                case 'n':
                        b.count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'j':
                        b.concurrency = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        if (port == 0 || port > 65535 || (http->need_ca && !ca) || b.count == 0 ||
            b.concurrency == 0) {
                fprintf(stderr,
                        "usage: %s --port P%s [--host H] [--path /x]%s [--count N] "
                        "[--concurrency C]\n",
                        http->name, http->need_ca ? " --ca FILE" : "",
                        http->need_ca ? "" : " [--ca FILE]");
                return 2;
        }
        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"bench\",\"schema-version\":1,"
                     "\"retry\":[{\"r\":{\"backoff\":[100],\"conceal\":3}}],%s%s%s"
                     "\"s\":[{\"bench\":{\"endpoint\":\"%s\",\"port\":%u,\"protocol\":\"%s\","
                     "\"http_url\":\"%s\",\"retry\":\"r\"%s}}]}",
                     ca ? "\"certs\":[{\"ca\":\"file:" : "", ca ? ca : "",
                     ca ? "\"}],\"trust_stores\":[{\"name\":\"ts\",\"stack\":[\"ca\"]}]," : "",
                     host, port, http->protocol, path[0] == '/' ? path + 1 : path,
                     ca ? ",\"tls\":true,\"tls_trust_store\":\"ts\"" : "") < 0)
                return 1;
        if (ss_bench_start(json, &event, &b.ctx) < 0) {
                ss_bench_stop(b.ctx, event);
                return 1;
        }

        t0 = now_usec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < b.concurrency && b.started < b.count; i++)
                start_one(&b);
        while (b.finished < b.count)
                if (sd_event_run(event, UINT64_MAX) < 0)
                        break;
        t1 = now_usec(CLOCK_MONOTONIC);

        printf("result requests=%u acked=%u bytes=%llu usec=%llu req_per_s=%.1f mb_per_s=%.2f\n",
               b.count, b.acked, (unsigned long long) b.bytes, (unsigned long long) (t1 - t0),
               b.count * 1e6 / (double) (t1 - t0), b.bytes / (double) (t1 - t0));
        ss_bench_stop(b.ctx, event);
        return b.acked == b.count ? 0 : 1;
}

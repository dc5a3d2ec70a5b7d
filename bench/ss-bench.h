/* SPDX-License-Identifier: MIT */
/*
 * What the Secure Streams client benchmarks share (h1-client, h2-client,
 * mqtt-client): the policy, event loop and context they run on, and the
 * whole of the HTTP GET load generator, h1 and h2 differing only in the
 * protocol and defaults.
 */
#pragma once

#include <stdbool.h>

#include "stream.h"

/*
 * Loads json (the policy text; freed here) and makes an event loop and a
 * context on it (the context keeps its own reference to the policy). The
 * policy's errors go to stderr. 0, or -1 on any failure.
 */
int ss_bench_start(char *json, sd_event **ret_event, SsContext **ret_ctx);
/* Frees ctx and unrefs event (either may be NULL). */
void ss_bench_stop(SsContext *ctx, sd_event *event);

/* An HTTP GET load generator, see ss_bench_http_main(). */
typedef struct SsBenchHttp {
        const char *name;     /* for the usage line: "h1-client" */
        const char *protocol; /* the streamtype's "protocol": "h1", "h2" */
        const char *host;     /* default --host */
        unsigned count;       /* default --count */
        unsigned concurrency; /* default --concurrency */
        bool need_ca;         /* --ca is required (h2: TLS only) */
} SsBenchHttp;

/*
 * main() of a load generator: N GETs of one URL from an in-process engine, C
 * at a time, each its own stream (the next one is created before the
 * finished one is destroyed, so the trust store, and with it the context's
 * idle or shared connections, stay). Options: --port P [--host H]
 * [--path /x] [--ca FILE] [--count N] [--concurrency C]. Prints one line
 * "result requests= acked= bytes= usec= req_per_s= mb_per_s="; exits 0 when
 * every GET was acknowledged, 1 when not, 2 on a usage error.
 */
int ss_bench_http_main(int argc, char **argv, const SsBenchHttp *http);

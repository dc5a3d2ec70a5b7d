/* SPDX-License-Identifier: MIT */
/*
 * The Secure Streams h2 client as a load generator: N GETs of one URL over
 * TLS from an in-process engine, C streams in flight at a time, each GET a
 * stream of its own (created when one finishes, before that one is destroyed,
 * so the trust store and with it the shared connection stay). Every stream to
 * the server shares one h2 connection while it has room (up to 100 streams,
 * or the server's SETTINGS_MAX_CONCURRENT_STREAMS). Prints one
 * "result key=value ..." line; bench/h2-client-vs-h2load runs it next to h2load.
 *
 *   h2-client --port P --ca FILE [--host H] [--path /x] [--count N] [--concurrency C]
 */
#include "ss-bench.h"

/* The load generator is ss_bench_http_main(), shared with h1-client. */
int main(int argc, char **argv)
{
        static const SsBenchHttp http = {
            .name = "h2-client",
            .protocol = "h2",
            .host = "localhost",
            .count = 1000,
            .concurrency = 10,
            .need_ca = true,
        };

        return ss_bench_http_main(argc, argv, &http);
}

/* SPDX-License-Identifier: MIT */
/*
 * The Secure Streams h1 client as a load generator: N GETs of one URL from an
 * in-process engine, either one after the other or C at a time, each its own
 * stream (the next one is created before the finished one is destroyed, so
 * the trust store, and with it the context's idle connections, stay). Prints one
 * "result key=value ..." line; bench/h1-vs-curl runs it next to curl.
 *
 *   h1-client --port P [--host H] [--path /x] [--ca FILE] [--count N] [--concurrency C]
 */
#include "ss-bench.h"

/* The load generator is ss_bench_http_main(), shared with h2-client. */
int main(int argc, char **argv)
{
        static const SsBenchHttp http = {
            .name = "h1-client",
            .protocol = "h1",
            .host = "127.0.0.1",
            .count = 100,
            .concurrency = 1,
            .need_ca = false,
        };

        return ss_bench_http_main(argc, argv, &http);
}

/* SPDX-License-Identifier: MIT */
/*
 * Retry arithmetic: the backoff table with its last delay repeating, the
 * additive jitter bounds, the defaults without a retry entry, and conceal.
 */
#include "stream-internal.h"
#include "tap.h"

static void test_table(void)
{
        PolicyRetry r = {.backoff_ms = {100, 200, 400}, .n_backoff = 3, .conceal = 5};

        is_int(ss_retry_delay_ms(&r, 0, 12345), 100, "first retry: first delay (no jitter)");
        is_int(ss_retry_delay_ms(&r, 1, 12345), 200, "second retry: second delay");
        is_int(ss_retry_delay_ms(&r, 2, 0), 400, "third retry: third delay");
        is_int(ss_retry_delay_ms(&r, 3, 0), 400, "past the table: the last delay repeats");
        is_int(ss_retry_delay_ms(&r, 1000, 0), 400, "far past the table too");
        is_int(ss_retry_conceal(&r), 5, "conceal from the entry");
}

static void test_jitter(void)
{
        PolicyRetry r = {.backoff_ms = {1000}, .n_backoff = 1, .jitter_percent = 20};
        uint64_t lo = UINT64_MAX, hi = 0;

        for (uint32_t i = 0; i < 5000; i++) {
                uint64_t d = ss_retry_delay_ms(&r, 0, i * 2654435761u);

                lo = MIN(lo, d);
                hi = MAX(hi, d);
        }
        cmp_int(lo, >=, 1000, "jitter is additive: never below the table");
        cmp_int(hi, <=, 1200, "jitter stays within jitterpc");
        cmp_int(hi - lo, >=, 150, "jitter actually spreads the delays");
        is_int(ss_retry_delay_ms(&r, 0, 0), 1000, "random 0: the table delay");
        is_int(ss_retry_delay_ms(&r, 0, 200), 1200, "largest jitter reachable");
}

static void test_default(void)
{
        uint64_t lo = UINT64_MAX, hi = 0;

        for (uint32_t i = 0; i < 5000; i++) {
                uint64_t d = ss_retry_delay_ms(NULL, i % 7, i * 2654435761u);

                lo = MIN(lo, d);
                hi = MAX(hi, d);
        }
        cmp_int(lo, >=, 3000, "no retry entry: 3000 ms base");
        cmp_int(hi, <=, 3900, "no retry entry: 30 percent jitter at most");
        cmp_int(hi, >, 3600, "no retry entry: the jitter is used");
        is_int(ss_retry_conceal(NULL), 3, "no retry entry: conceal 3");
}

int main(void)
{
        tap_init();
        test_table();
        test_jitter();
        test_default();
        return tap_done();
}

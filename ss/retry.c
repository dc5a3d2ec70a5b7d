/* SPDX-License-Identifier: MIT */
/*
 * Retry arithmetic: the delay before each retry from a policy retry entry
 * (backoff table, the last delay repeating, plus an additive jitter) and the
 * conceal count. Pure functions, so the unit tests can check every number.
 */
#include "stream-internal.h"

/* Used when a streamtype names no retry entry. */
#define RETRY_DEFAULT_DELAY_MS  3000u
#define RETRY_DEFAULT_JITTER_PC 30u
#define RETRY_DEFAULT_CONCEAL   3u

uint64_t ss_retry_delay_ms(const PolicyRetry *retry, unsigned attempt, uint32_t random)
{
        uint64_t base, jitter_max;
        unsigned jitter_percent;

        if (retry && retry->n_backoff > 0) {
                size_t i = MIN((size_t) attempt, retry->n_backoff - 1);

                base = retry->backoff_ms[i];
                jitter_percent = retry->jitter_percent;
        } else {
                base = RETRY_DEFAULT_DELAY_MS;
                jitter_percent = RETRY_DEFAULT_JITTER_PC;
        }

        /* Additive: base .. base + base * jitter%, never below the table's delay. */
        jitter_max = base * jitter_percent / 100;
        if (jitter_max == 0)
                return base;
        return base + (uint64_t) random % (jitter_max + 1);
}

unsigned ss_retry_conceal(const PolicyRetry *retry)
{
        return retry ? retry->conceal : RETRY_DEFAULT_CONCEAL;
}

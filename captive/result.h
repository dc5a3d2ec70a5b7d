/* SPDX-License-Identifier: MIT */
/*
 * Captive portal detection results: the four verdicts, how they rank, their
 * published spelling, and the status a check leaves behind (what the cpd
 * message and `smdctl captive status` show). Shared by the verdict rules
 * (probe.h), the scheduler (captive.h) and the message formatter.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * The numeric order is the rank order used when two families disagree:
 * OK > CAPTIVE > NO_INTERNET > UNKNOWN. A family that reaches the internet
 * makes the device online; one behind a portal is more useful to report than
 * one with no answer at all; UNKNOWN (not checked) never wins over a result.
 */
typedef enum CaptiveResult {
        CAPTIVE_RESULT_UNKNOWN,
        CAPTIVE_RESULT_NO_INTERNET,
        CAPTIVE_RESULT_CAPTIVE,
        CAPTIVE_RESULT_OK,
        _CAPTIVE_RESULT_MAX,
} CaptiveResult;

/* What started a check (shown in the status, for the logs and smdctl). */
typedef enum CaptiveTrigger {
        CAPTIVE_TRIGGER_STARTUP,
        CAPTIVE_TRIGGER_ROUTE,    /* a usable default route appeared, changed or went */
        CAPTIVE_TRIGGER_ADDRESS,  /* an address was added on a default-route link */
        CAPTIVE_TRIGGER_RESUME,   /* resume from suspend */
        CAPTIVE_TRIGGER_MESSAGE,  /* SMD NETWORK {"trigger":"cpdcheck"} */
        CAPTIVE_TRIGGER_REQUEST,  /* smdctl captive check */
        CAPTIVE_TRIGGER_PERIODIC, /* the interval while OK */
        CAPTIVE_TRIGGER_BACKOFF,  /* the backoff re-check while not OK */
        _CAPTIVE_TRIGGER_MAX,
} CaptiveTrigger;

/* Longest portal URL kept (bytes); a longer one is dropped, never cut. */
#define CAPTIVE_URL_MAX 2048u

typedef struct CaptiveStatus {
        CaptiveResult result;
        CaptiveResult ipv4; /* UNKNOWN: that family was not checked */
        CaptiveResult ipv6;
        const char *portal; /* NULL when none is known */
        bool has_seconds_remaining;
        uint64_t seconds_remaining; /* RFC 8908 seconds-remaining */
        uint64_t checked_usec;      /* CLOCK_MONOTONIC µs the check ended; 0: never */
        CaptiveTrigger trigger;     /* what started that check */
} CaptiveStatus;

/*
 * "OK", "Captive", "No internet" (the upstream spelling, as published) and
 * "Unknown", which is never published.
 */
const char *captive_result_to_string(CaptiveResult r);
/* The inverse, for the published spellings and "Unknown"; -EINVAL otherwise. */
int captive_result_from_string(const char *s, CaptiveResult *ret);
/* The better of two results by the rank above. */
CaptiveResult captive_result_best(CaptiveResult a, CaptiveResult b);

const char *captive_trigger_to_string(CaptiveTrigger t);

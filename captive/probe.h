/* SPDX-License-Identifier: MIT */
/*
 * What one captive portal probe found, and the pure rules that turn it into a
 * verdict (DESIGN.md, Captive portal detection; issue 6):
 *
 *   an HTTP answer with the expected status (http_expect, default 204)  OK
 *   any redirect (3xx), with its Location as the portal URL             CAPTIVE
 *   any other answer (a 200 page, a 404, a 511, ...)                    CAPTIVE
 *   an RFC 8908 API document: captive true (portal: user-portal-url)    CAPTIVE
 *                             captive false                             OK
 *   DNS failure, refused, reset, TLS failure, the probe timeout          NO_INTERNET
 *   a local failure (our configuration, out of memory)                  UNKNOWN
 *
 * The probe itself (the Secure Stream in the agent, a fake in tests) sits
 * behind ProbeOps in captive.h and reports a ProbeOutcome.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portal-api.h"
#include "result.h"

typedef enum ProbeOutcomeKind {
        PROBE_OUTCOME_HTTP,    /* an HTTP response arrived */
        PROBE_OUTCOME_FAILURE, /* no response: see ProbeFailure */
        PROBE_OUTCOME_API,     /* an RFC 8908 document was fetched and parsed */
        _PROBE_OUTCOME_KIND_MAX,
} ProbeOutcomeKind;

typedef enum ProbeFailure {
        PROBE_FAILURE_DNS,     /* the probe host name did not resolve */
        PROBE_FAILURE_REFUSED, /* refused, or unreachable at the IP level */
        PROBE_FAILURE_RESET,   /* the peer closed before a full response */
        PROBE_FAILURE_TLS,     /* the TLS handshake or verification failed */
        PROBE_FAILURE_TIMEOUT, /* no answer within the probe timeout */
        PROBE_FAILURE_LOCAL,   /* our side: configuration, resources; says nothing */
        _PROBE_FAILURE_MAX,
} ProbeFailure;

typedef struct ProbeOutcome {
        ProbeOutcomeKind kind;
        /* PROBE_OUTCOME_HTTP */
        uint16_t status;
        const char *location; /* the Location header, or NULL */
        const char *url;      /* the URL probed, to resolve a relative Location; or NULL */
        /* PROBE_OUTCOME_FAILURE */
        ProbeFailure failure;
        /* PROBE_OUTCOME_API */
        const PortalApi *api;
} ProbeOutcome;

typedef struct ProbeVerdict {
        CaptiveResult result;
        char portal[CAPTIVE_URL_MAX + 1]; /* "" when none is known */
        bool has_seconds_remaining;
        uint64_t seconds_remaining;
} ProbeVerdict;

/* Applies the rules above. http_expect is the policy's expected status. */
void probe_outcome_verdict(const ProbeOutcome *o, uint16_t http_expect, ProbeVerdict *ret);

/*
 * Resolves a Location against the URL that was probed, enough for what portals
 * send: an absolute URL is kept; "//host/p" takes the scheme of base; "/p"
 * the scheme and authority; "?q" and "#f" the whole base before them; "p" the
 * base up to its last '/'. Dot segments are not removed. A base that is not
 * an absolute URL leaves the Location as it is. Returns the length, or
 * -EINVAL for an empty Location or one with control bytes, -ENAMETOOLONG
 * when the result would not fit size (CAPTIVE_URL_MAX + 1 in practice).
 */
int probe_location_resolve(const char *base, const char *location, char *buf, size_t size);

const char *probe_failure_to_string(ProbeFailure f);

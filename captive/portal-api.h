/* SPDX-License-Identifier: MIT */
/*
 * The RFC 8908 Captive Portal API document (application/captive+json): a
 * strict, bounded parser. The document is a JSON object; "captive" (boolean)
 * is required; "user-portal-url", "venue-info-url" (strings),
 * "can-extend-session" (boolean), "seconds-remaining" and "bytes-remaining"
 * (non-negative numbers) are optional. A known key of the wrong type makes the
 * document invalid; unknown keys are ignored, as the RFC asks.
 *
 * A user-portal-url is kept only when it is https (the RFC says the portal
 * MUST be reached over TLS), at most CAPTIVE_URL_MAX bytes and free of control
 * characters; otherwise it is left out and the document stays valid (its
 * captive flag is still the answer). venue-info-url gets the same length and
 * character checks but may be http (the RFC says SHOULD).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

/* Largest document accepted (bytes); real ones are a few hundred. */
#define PORTAL_API_DOCUMENT_MAX 8192u
/* JSON nesting accepted (the document is flat; values may be small objects). */
#define PORTAL_API_DEPTH_MAX 8

typedef struct PortalApi {
        bool captive;
        char *user_portal_url; /* NULL when absent or not usable */
        char *venue_info_url;  /* NULL when absent or not usable */
        bool has_can_extend_session;
        bool can_extend_session;
        bool has_seconds_remaining;
        uint64_t seconds_remaining;
        bool has_bytes_remaining;
        uint64_t bytes_remaining;
} PortalApi;

/*
 * Parses a document. On success fills *ret (release it with
 * portal_api_done()) and returns 0. -EMSGSIZE: larger than
 * PORTAL_API_DOCUMENT_MAX; -EBADMSG: not one JSON object (bad syntax, too
 * deep, trailing bytes, a NUL byte), "captive" missing, or a known key of the
 * wrong type or out of range; -ENOMEM. *ret is not touched on failure.
 */
int portal_api_parse(const void *data, size_t size, PortalApi *ret);
/* Frees what the document owns and clears it; safe on a cleared one. */
void portal_api_done(PortalApi *api);

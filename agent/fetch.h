/* SPDX-License-Identifier: MIT */
/*
 * Downloading a policy: the fetch_policy streamtype of the running policy,
 * and, when a signing key is configured, the detached signature beside it
 * (the same streamtype with ".sig" appended to its http_url: same server,
 * same trust store, same retry). The body goes into a buffer bounded by the
 * streamtype's fetch_policy_max_size (default POLICY_FILE_MAX); a longer
 * body aborts the stream. A fetch that has not finished after
 * FETCH_DEADLINE_USEC fails.
 *
 * The downloads run on a Secure Streams context of their own, made for one
 * fetch from a small policy that holds only those two streamtypes and what
 * they use (retry, trust store, certificates), and freed with the fetch: a
 * reload of the agent's policy never touches a running fetch.
 *
 * A Fetch only downloads and checks the signature; parsing, validating,
 * applying and persisting the document is the manager's (policy-apply.c).
 * It does not log: the result carries a one-line reason.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "policy.h"
#include "util.h"

#define FETCH_DEADLINE_USEC  (60 * USEC_PER_SEC)
#define FETCH_STREAMTYPE     "fetch_policy"
#define FETCH_STREAMTYPE_SIG "fetch_policy_sig"
#define FETCH_REASON_MAX     256u /* bytes of a reason, to fit an SMD message */

typedef struct Fetch Fetch;

typedef struct FetchResult {
        int error;          /* 0, or -errno */
        const char *reason; /* on failure: one line saying what went wrong */
        const char *url;    /* what was fetched ("https://host:port/path") */
        const char *body;   /* on success: the document, NUL-terminated */
        size_t size;
        bool verified; /* the signature was checked (a signing key is configured) */
} FetchResult;

/* Called from the event loop once per started fetch; the result is valid during the call. */
typedef void (*FetchDoneCallback)(Fetch *f, const FetchResult *result, void *userdata);

int fetch_new(Fetch **ret, sd_event *event, FetchDoneCallback done, void *userdata);
/* Cancels a running fetch without calling done. */
Fetch *fetch_free(Fetch *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(Fetch *, fetch_free);

/*
 * Starts fetching with policy's fetch_policy streamtype; signing_key is the
 * PEM public key file the document must be signed with, or NULL. -EBUSY: a
 * fetch runs; -ENOENT: the policy has no fetch_policy. Anything else that
 * goes wrong, from here on, ends in done() with a reason.
 */
int fetch_start(Fetch *f, const Policy *policy, const char *signing_key);
bool fetch_is_running(const Fetch *f);

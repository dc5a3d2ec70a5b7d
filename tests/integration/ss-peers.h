/* SPDX-License-Identifier: MIT */
/*
 * What the engine's integration tests share on top of peers.h: the event loop
 * and context they run on, a loop that runs until a condition holds, and
 * clients (curl, a child process, a raw TCP connection) run while the loop
 * serves the server streams of the test.
 *
 *     ss_peers_start(policy_json(...), &event, &ctx); // "policy loads", "event loop", "context"
 *     ok(ss_peers_run_until(done, r, 10000), "...");
 *     ...
 *     ss_peers_stop(&ctx, &event);
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "peers.h"
#include "stream.h"

/*
 * Loads json (freed here; NULL loads nothing and fails "policy loads") into a
 * policy, printing every error as a diagnostic, then makes the event loop and
 * a context on that policy (which keeps its own reference). Three assertions:
 * "policy loads", "event loop", "context". The loop is the one the other
 * calls here run.
 */
void ss_peers_start(char *json, sd_event **ret_event, SsContext **ret_ctx);
/* Frees *ctx, unrefs *event; both set to NULL. */
void ss_peers_stop(SsContext **ctx, sd_event **event);

/* Runs the loop until done(userdata) or the deadline (ms); true when done. */
bool ss_peers_run_until(bool (*done)(void *), void *userdata, unsigned ms);

typedef int (*SsPeersChildFn)(void *arg);
/* Runs fn(arg) in a child process while the loop serves; its exit status, or -1 (killed at the
 * timeout). */
int ss_peers_run_child(SsPeersChildFn fn, void *arg, unsigned timeout_sec);
/* A SsPeersChildFn: execs argv (a NULL-terminated char *[], PATH searched) with stderr to
 * /dev/null. */
int ss_peers_exec_argv(void *arg);

/*
 * curl -s -S --max-time 20 with args (NULL-terminated) while the loop serves;
 * the body, the response headers and the status code are returned (NULL or
 * 0 when missing; pass NULL for what is not wanted). curl's exit status or -1;
 * on a failure its stderr is printed as a diagnostic.
 */
int ss_peers_curl(const char *const *args, char **ret_body, char **ret_head, unsigned *ret_code);
/* Whether the header block head has line (case-insensitive, anywhere). */
bool ss_peers_has_header(const char *head, const char *line);

/*
 * The application part the server-streamtype tests share: a slot per request
 * stream (the handlers are shared by all of them), a response of a fixed body
 * sent a few bytes a tx call, /chunked sent as "one,", "two,", "three\n", and
 * an upload checked against peers_big_byte() and answered at its end with
 * "got N exact" (or "corrupt").
 */
typedef struct SsPeersReq {
        SsStream *s;
        const char *body; /* the response body left to send */
        size_t left;
        unsigned pieces; /* /chunked: pieces sent */
        uint64_t upload;
        bool upload_ok;
        char reply[512];
} SsPeersReq;

/* The slot of request stream s; a new one (upload_ok set) if it has none; NULL when all are taken.
 */
SsPeersReq *ss_peers_req_get(SsStream *s);
/* Frees the slot of s (in its DESTROYING). */
void ss_peers_req_forget(SsStream *s);
/* Acknowledges with status (0: 200), ct text/plain, and asks to send body, with its length or not.
 */
void ss_peers_respond(SsStream *s, SsPeersReq *c, unsigned status, const char *body, bool with_len);
/* The rx handler: the upload check, the answer at EOM (with its length). */
SsResult ss_peers_app_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                         unsigned flags);
/* The tx handler: /chunked's three pieces, else the body 5 bytes at a time. */
SsResult ss_peers_app_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags);

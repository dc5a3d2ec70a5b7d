/* SPDX-License-Identifier: MIT */
/*
 * The proxy half of Secure Streams: one local client's stream of any policy
 * streamtype, opened over the agent's socket and run by the in-process engine
 * (ss/stream.h). The server (server.c) owns the socket and the client's output
 * buffer; this module turns the client's frames into engine calls and the
 * onward stream's rx, states and metadata into frames.
 *
 * Flow control, both ways, bounded by the streamtype's proxy_buflen:
 * - received payload waiting for the client is queued in the client's output
 *   buffer; past proxy_buflen the onward stream stops reading
 *   (ss_stream_pause_rx(), TCP backpressure), below half of it it reads again;
 * - payload the client sent waits here for the onward stream's tx callback;
 *   past proxy_buflen the server stops reading the client's socket, below half
 *   of it it reads again.
 *
 * Nothing here writes to the socket or frees the client: wake() asks the
 * server to write from the event loop, so no engine callback ever runs into a
 * client teardown.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "frame.h"
#include "outbuf.h"
#include "stream.h"

typedef struct ProxyStream ProxyStream;

#define PROXY_BUFLEN_DEFAULT (32u * 1024u)
#define PROXY_BUFLEN_MIN     4096u
#define PROXY_TX_MARKS_MAX   64u /* client messages (EOMs) waiting at once */

/*
 * CREATE_RESULT result codes, with a reason text (upstream clients only test
 * for non-zero; libsmd maps them to errno values).
 */
enum {
        PROXY_CREATE_OK = 0,
        PROXY_CREATE_REFUSED = 1,     /* access rules (as for _lws_smd) */
        PROXY_CREATE_UNKNOWN = 2,     /* no such streamtype */
        PROXY_CREATE_UNSUPPORTED = 3, /* its protocol or kind is not available */
        PROXY_CREATE_FAILED = 4,      /* out of resources */
};

typedef struct ProxyClientOps {
        /* Frames were queued in the output buffer: write them from the event loop. */
        void (*wake)(void *userdata);
        /* Stop (true) or resume reading the client's socket. */
        void (*pause_input)(void *userdata, bool pause);
} ProxyClientOps;

/*
 * Opens streamtype for a client with credentials cred: checks the policy's
 * allow rules (server streamtypes need an explicit allow), creates the onward
 * stream and queues CREATE_RESULT in out (success with the buffer size, or a
 * failure with the reason). Returns 0, or -ENOENT (no such streamtype),
 * -EACCES (refused), -EPROTONOSUPPORT (protocol not available), -errno; a
 * refusal is logged with the uid and streamtype.
 */
int proxy_stream_new(ProxyStream **ret, SsContext *ss, const char *streamtype,
                     const Credentials *cred, uint64_t client_id, OutBuffer *out,
                     const ProxyClientOps *ops, void *userdata);
/* Destroys the onward stream (no state reaches the client) and frees. Accepts NULL. */
ProxyStream *proxy_stream_free(ProxyStream *p);

/*
 * One frame from the client (after STREAMTYPE; DESTROYING is the server's).
 * Returns 0, or -EBADMSG for a protocol error, with a reason in err.
 */
int proxy_stream_on_frame(ProxyStream *p, const Frame *f, char *err, size_t err_size);
/* The server wrote some output: resume the onward stream's reading if it has room. */
void proxy_stream_on_output_written(ProxyStream *p);

uint32_t proxy_stream_get_buflen(const ProxyStream *p);
/* Bytes the client sent that wait for the onward stream. */
size_t proxy_stream_get_tx_pending(const ProxyStream *p);
bool proxy_stream_is_rx_paused(const ProxyStream *p);
/* The onward stream (NULL once the engine destroyed it); for tests and fuzzing. */
SsStream *proxy_stream_get_stream(const ProxyStream *p);
const char *proxy_stream_get_streamtype(const ProxyStream *p);

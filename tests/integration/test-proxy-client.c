/* SPDX-License-Identifier: MIT */
/*
 * A libsmd stream client for test-proxy.sh.
 *
 *   test-proxy-client SOCKET STREAMTYPE meta NAME=VALUE GETNAME
 *       one GET with metadata NAME set; the body to stdout, then GETNAME's
 *       value (received from the agent) as "GETNAME=value" on stderr.
 *   test-proxy-client SOCKET STREAMTYPE restart
 *       one GET (body length on stderr: "first N"), then waits for the agent
 *       to go away (UPSTREAM_LINK_RETRY: "link-retry"), connects again at once
 *       (queued until the agent is back) and prints "second N" after the next
 *       QOS_ACK_REMOTE.
 * Every state goes to stderr as "state NAME". Exit 0 when done, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smd/smd.h"
#include "util.h"

static uint64_t body_len;
static int acks, link_retries;
static bool nacked;

static int on_rx(smd_stream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        if (flags & SMD_SS_FLAG_SOM)
                body_len = 0;
        body_len += len;
        if (userdata && fwrite(buf, 1, len, stdout) != len)
                return SMD_SS_DESTROY_ME;
        return SMD_SS_OK;
}

static int on_state(smd_stream *s, void *userdata, int state, uint32_t ack)
{
        fprintf(stderr, "state %s\n", smd_stream_state_name(state));
        if (state == SMD_SS_STATE_QOS_ACK_REMOTE)
                acks++;
        else if (state == SMD_SS_STATE_QOS_NACK_REMOTE || state == SMD_SS_STATE_ALL_RETRIES_FAILED)
                nacked = true;
        else if (state == SMD_SS_STATE_UPSTREAM_LINK_RETRY)
                link_retries++;
        return SMD_SS_OK;
}

/* Process until cond() or 20 s. */
static bool run_until(smd_stream *s, bool (*cond)(void))
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 20 * USEC_PER_SEC;

        while (!cond() && !nacked) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline || smd_stream_wait(s, deadline - now) != 0)
                        return false;
        }
        return cond();
}

static bool one_ack(void)
{
        return acks >= 1;
}
static bool two_acks(void)
{
        return acks >= 2;
}
static bool link_lost(void)
{
        return link_retries >= 1;
}

int main(int argc, char **argv)
{
        bool meta = argc == 6 && streq(argv[3], "meta");
        bool restart = argc == 4 && streq(argv[3], "restart");
        smd_stream *s;
        int r;

        if (!meta && !restart) {
                fprintf(stderr, "usage: see the source\n");
                return 2;
        }
        r = smd_stream_new(&s, argv[1], argv[2], on_rx, NULL, on_state, meta ? stdout : NULL);
        if (r < 0) {
                fprintf(stderr, "cannot open: %s\n", smd_stream_get_error(NULL) ?: strerror(-r));
                return 1;
        }
        if (meta) {
                const char *eq = strchr(argv[4], '='), *v;
                char name[64];
                size_t len;

                if (!eq)
                        return 2;
                snprintf(name, sizeof(name), "%.*s", (int) (eq - argv[4]), argv[4]);
                if (smd_stream_set_metadata(s, name, eq + 1, strlen(eq + 1)) < 0)
                        return 1;
                (void) smd_stream_client_connect(s);
                r = run_until(s, one_ack) ? 0 : 1;
                if (smd_stream_get_metadata(s, argv[5], &v, &len) == 0)
                        fprintf(stderr, "%s=%.*s\n", argv[5], (int) len, v);
                fflush(stdout);
                smd_stream_destroy(s);
                return r;
        }
        (void) smd_stream_client_connect(s);
        if (!run_until(s, one_ack))
                return 1;
        fprintf(stderr, "first %" PRIu64 "\n", body_len);
        if (!run_until(s, link_lost))
                return 1;
        fprintf(stderr, "link-retry\n");
        (void) smd_stream_client_connect(s);
        r = run_until(s, two_acks) ? 0 : 1;
        fprintf(stderr, "second %" PRIu64 "\n", body_len);
        smd_stream_destroy(s);
        return r;
}

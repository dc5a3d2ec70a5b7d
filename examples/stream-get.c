/* SPDX-License-Identifier: MIT */
/*
 * stream-get: fetch one streamtype through smdagent and write the payload to
 * stdout. The agent's policy says where the stream goes (endpoint, TLS, trust
 * store, retry); this program names the streamtype and handles bytes.
 *
 *     stream-get STREAMTYPE [SOCKET]
 *
 * Exit status: 0 when the server acknowledged the transaction, 1 otherwise.
 */
#include <smd/smd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int result = -1;

static int on_rx(smd_stream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        if (fwrite(buf, 1, len, stdout) != len)
                result = 1;
        return SMD_SS_OK;
}

static int on_state(smd_stream *s, void *userdata, int state, uint32_t ack)
{
        fprintf(stderr, "stream-get: %s (%u)\n", smd_stream_state_name(state), (unsigned) ack);
        switch (state) {
        case SMD_SS_STATE_QOS_ACK_REMOTE:
                result = 0;
                break;
        case SMD_SS_STATE_QOS_NACK_REMOTE:
        case SMD_SS_STATE_ALL_RETRIES_FAILED:
        case SMD_SS_STATE_TIMEOUT:
                result = 1;
                break;
        }
        return SMD_SS_OK;
}

int main(int argc, char **argv)
{
        smd_stream *s;
        int r;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: stream-get STREAMTYPE [SOCKET]\n");
                return 2;
        }
        r = smd_stream_new(&s, argc > 2 ? argv[2] : NULL, argv[1], on_rx, NULL, on_state, NULL);
        if (r < 0) {
                fprintf(stderr, "stream-get: %s: %s\n", argv[1],
                        smd_stream_get_error(NULL) ?: strerror(-r));
                return 1;
        }
        /* A GET needs no payload from us: just connect (queued until the agent answers). */
        smd_stream_client_connect(s);
        while (result < 0) {
                r = smd_stream_wait(s, UINT64_MAX);
                if (r < 0) {
                        fprintf(stderr, "stream-get: %s\n", strerror(-r));
                        result = 1;
                } else if (r == SMD_STREAM_DESTROYED)
                        return 1;
        }
        smd_stream_destroy(s);
        return fflush(stdout) == 0 ? result : 1;
}

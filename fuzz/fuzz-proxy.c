/* SPDX-License-Identifier: MIT */
/*
 * The agent's handling of a proxied stream's client frames (agent/proxy.c) in
 * every state of the link: the first byte picks the streamtype and the
 * client's uid (open refused or not), then each operation byte either feeds a
 * client frame (TX_PAYLOAD, METADATA, TIMEOUT_UPDATE, ... taken from the
 * input), or plays the onward stream: rx of input bytes with fuzzed SOM/EOM,
 * a tx pull, a legal state change, or the client draining its output. The
 * engine runs without an event loop, its connections refused, so nothing
 * leaves the process. Checks: no crash, no leak, and the bounds: the output
 * stays within proxy_buflen plus one rx piece, the TX buffer within
 * proxy_buflen plus one frame.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "policy.h"
#include "proxy.h"
#include "stream-internal.h"

static const char policy_json[] =
    "{\"release\":\"1\",\"product\":\"fuzz\",\"schema-version\":1,\"s\":["
    "{\"get\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"h1\","
    "\"metadata\":[{\"a\":\"X-A:\"},{\"b\":\"\"}],\"proxy_buflen\":4096}},"
    "{\"put\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"h1\","
    "\"http_method\":\"PUT\",\"timeout_ms\":1000}},"
    "{\"srv\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"h1\",\"server\":true}},"
    "{\"root\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"h1\",\"allow\":[\"0\"]}},"
    "{\"ws\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"ws\"}}]}";

static const char *const streamtypes[] = {"get", "put", "srv", "root", "ws", "nope"};

static int refuse_transport(Transport **ret, sd_event *event, Resolver *resolver,
                            const TransportOptions *options, const TransportHandlers *handlers,
                            void *userdata)
{
        return -ECONNREFUSED;
}

static const SsTransportOps fake_ops = {
    .transport_new = refuse_transport,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(policy_unrefp) Policy *policy = NULL;
        _cleanup_(ss_context_freep) SsContext *ctx = NULL;
        OutBuffer out = {.max = 1024 * 1024};
        ProxyStream *p = NULL;
        Credentials cred = {};
        size_t off = 1;

        if (size < 1)
                return 0;
        log_set_level(LOG_CRIT);
        policy = policy_new();
        if (!policy ||
            policy_add_buffer(policy, "fuzz", policy_json, strlen(policy_json), NULL) < 0)
                abort();
        if (ss_context_new(&ctx, NULL, policy) < 0)
                abort();
        ss_context_set_transport_ops(ctx, &fake_ops);
        cred.uid = data[0] & 0x80 ? 0 : 65534;
        if (proxy_stream_new(&p, ctx, streamtypes[(data[0] & 0x7f) % 6], &cred, 1, &out, NULL,
                             NULL) < 0) {
                outbuf_deinit(&out);
                return 0;
        }
        while (off < size) {
                uint8_t op = data[off++];
                SsStream *s = proxy_stream_get_stream(p);

                switch (op & 7) {
                case 0:
                case 1:
                case 2:
                case 3: {
                        Frame f;
                        size_t used;
                        char err[160];
                        int r = frame_parse(data + off, size - off, FRAME_TO_AGENT, &f, &used);

                        if (r <= 0)
                                goto done; /* the server closes on a bad frame, or waits */
                        off += used;
                        if (f.type == FRAME_STREAMTYPE || f.type == FRAME_DESTROYING)
                                goto done; /* the server's, not the proxy's */
                        if (proxy_stream_on_frame(p, &f, err, sizeof(err)) < 0)
                                goto done;
                        assert(proxy_stream_get_tx_pending(p) <=
                               proxy_stream_get_buflen(p) + FRAME_HEADER_SIZE + FRAME_BODY_MAX);
                        break;
                }
                case 4: {
                        size_t n = MIN(size - off, (size_t) (op >> 3) * 700u);

                        if (s && !proxy_stream_is_rx_paused(p))
                                ss_stream_test_dispatch(
                                    s, ss_stream_deliver_rx(s, data + off, n, (op >> 1) & 3));
                        off += n;
                        assert(outbuf_pending(&out) <=
                               proxy_stream_get_buflen(p) + 2 * SS_RX_CHUNK + 4096);
                        break;
                }
                case 5:
                        if (s) {
                                uint8_t buf[2048];
                                size_t len = (size_t) (op >> 3) * 64u;
                                unsigned flags = 0;

                                (void) ss_stream_call_tx(s, buf, &len, &flags);
                        }
                        break;
                case 6:
                        if (s) {
                                SsState to = (SsState) ((op >> 3) % 18 + 1);

                                if (to != SS_STATE_DESTROYING && to != SS_STATE_CREATING &&
                                    ss_state_transition_is_valid(ss_stream_get_state(s), to))
                                        ss_stream_test_dispatch(
                                            s, ss_stream_test_deliver_state(s, to, op));
                        }
                        break;
                case 7:
                        outbuf_clear(&out);
                        proxy_stream_on_output_written(p);
                        break;
                }
        }
done:
        proxy_stream_free(p);
        outbuf_deinit(&out);
        return 0;
}

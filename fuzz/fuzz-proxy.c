/* SPDX-License-Identifier: MIT */
/*
 * The agent's handling of a proxied stream's client frames (agent/proxy.c) in
 * every state of the link: the first byte picks the streamtype and the
 * client's uid (open refused or not), then each operation byte either feeds a
 * client frame (TX_PAYLOAD, METADATA, TIMEOUT_UPDATE, ... taken from the
 * input), or plays the onward stream: rx of input bytes with fuzzed SOM/EOM,
 * a tx pull, a legal state change, the client draining its output, the
 * engine's due timers (the proxy's kick among them), or a new send credit of
 * the onward stream (a stand-in protocol op answers ss_stream_tx_credit()
 * for h1, ws, h2 and mqtt streamtypes alike). The engine runs without an
 * event loop, its connections refused, so nothing leaves the process.
 * Checks: no crash, no leak, the bounds (the output stays within
 * proxy_buflen plus one rx piece, the TX buffer within proxy_buflen plus
 * one frame), and what the client reads: valid frames only, and TXCR_UPDATE
 * additions that sum, since the last DISCONNECTED, to the credit the stream
 * had when they were sent.
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
    "{\"ws\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"ws\"}},"
    "{\"h2\":{\"endpoint\":\"127.0.0.1\",\"port\":9,\"protocol\":\"h2\","
    "\"http_method\":\"POST\",\"metadata\":[{\"a\":\"X-A:\"}]}},"
    "{\"mqtt\":{\"endpoint\":\"mqtt://127.0.0.1:9\",\"mqtt_topic\":\"t\","
    "\"mqtt_subscribe\":\"s\",\"mqtt_qos\":1,\"metadata\":[{\"topic\":\"\"}]}}]}";

/* The first six keep the meaning the seed corpus gave them. */
static const char *const streamtypes[] = {"get", "put", "srv", "root", "ws", "nope", "h2", "mqtt"};

/* The onward stream's send credit, as the input sets it (-1: unknown). */
static int64_t fuzz_credit = -1;
static SsProtocolOps fuzz_proto;

/*
 * The engine's own timers (connecting, retrying) run after states the input
 * made up: a transition that then follows is illegal for the engine, which
 * destroys the stream as a release build does, under the proxy.
 */
static void on_illegal_transition(SsStream *s, SsState from, SsState to, void *userdata)
{
}

static int64_t fuzz_tx_credit(SsStream *s)
{
        return fuzz_credit;
}

/* What the client has read so far: the credit it was told, -1 before any. */
typedef struct ClientView {
        int64_t credit;
} ClientView;

/* Reads every frame the client would read and checks it; then the output is drained. */
static void client_reads(OutBuffer *out, ClientView *v)
{
        size_t off = out->off;

        while (off < out->len) {
                Frame f;
                size_t used;
                int r = frame_parse(out->data + off, out->len - off, FRAME_TO_CLIENT, &f, &used);

                assert(r == 1); /* whole, valid frames only */
                off += used;
                if (f.type == FRAME_RX_CREDIT) {
                        v->credit = (v->credit < 0 ? 0 : v->credit) + f.credit;
                        assert(v->credit >= 0 && v->credit <= INT32_MAX);
                } else if (f.type == FRAME_CONNSTATE && f.connstate.state == SS_STATE_DISCONNECTED)
                        v->credit = -1;
        }
        outbuf_clear(out);
}

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
        ClientView view = {.credit = -1};
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
        ss_context_set_illegal_transition_hook(ctx, on_illegal_transition, NULL);
        cred.uid = data[0] & 0x80 ? 0 : 65534;
        fuzz_credit = -1;
        if (proxy_stream_new(&p, ctx, streamtypes[(data[0] & 0x7f) % ELEMENTSOF(streamtypes)],
                             &cred, 1, &out, NULL, NULL) < 0) {
                outbuf_deinit(&out);
                return 0;
        }
        {
                SsStream *s = proxy_stream_get_stream(p);

                /* The real protocol, but for its credit, which the input decides. */
                fuzz_proto = *s->proto;
                fuzz_proto.tx_credit = fuzz_tx_credit;
                s->proto = &fuzz_proto;
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
                        size_t n = MIN(size - off, (size_t) (op >> 5) * 1000u);

                        if (s && !proxy_stream_is_rx_paused(p))
                                ss_stream_test_dispatch(
                                    s, ss_stream_deliver_rx(s, data + off, n, (op >> 3) & 3));
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
                        switch ((op >> 3) & 3) {
                        case 0:
                                client_reads(&out, &view);
                                proxy_stream_on_output_written(p);
                                client_reads(&out, &view);
                                /* Written output is a moment the agent tells the credit. */
                                if (s && proxy_stream_get_stream(p) && fuzz_credit >= 0)
                                        assert(view.credit == MIN(fuzz_credit, INT32_MAX));
                                break;
                        case 1: {
                                /* What is due now: the kick, connecting; retries wait. */
                                Scheduler *sched = ss_context_get_scheduler(ctx);

                                (void) scheduler_run_due(
                                    sched, TIMER_LIST_NORMAL,
                                    op & 0x20 ? UINT64_MAX
                                              : scheduler_now(sched, TIMER_LIST_NORMAL));
                                break;
                        }
                        case 2:
                                fuzz_credit = (int64_t) (op >> 5) * 9362 - 1;
                                break;
                        case 3:
                                fuzz_credit = op & 0x20 ? INT64_MAX : -1;
                                break;
                        }
                        break;
                }
        }
done:
        client_reads(&out, &view);
        proxy_stream_free(p);
        outbuf_deinit(&out);
        return 0;
}

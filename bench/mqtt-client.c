/* SPDX-License-Identifier: MIT */
/*
 * The Secure Streams mqtt client as a publisher: N messages of S bytes to one
 * topic at QoS 0 or 1 from one stream of an in-process engine, over one
 * connection to the broker. The stream asks for the next message from inside
 * its tx callback, so messages go out as fast as the connection takes them
 * (at QoS 1 at most 16 wait for their PUBACK), with a clean session as
 * mosquitto_pub has. The run ends when the broker has them all: at QoS 1 with
 * the last PUBACK; at QoS 0 with the PUBACK of a QoS 1 marker that a second
 * stream sends on the same shared connection after the last message (the
 * broker handles a connection's packets in order). At
 * QoS 0 msgs_per_s counts until the last byte went to the socket (the stream's
 * tx credit is back to that of an empty queue), which is what mosquitto_pub's
 * exit means; acked_msgs_per_s until the broker confirmed the marker.
 * Connection set-up is timed too, as it is for mosquitto_pub. Prints one
 * "result key=value ..." line; bench/mqtt-client-vs-mosquitto-pub runs it next
 * to mosquitto_pub -l.
 *
 *   mqtt-client --port P [--host H] [--count N] [--size S] [--qos 0|1] [--topic T]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ss-bench.h"

typedef struct Bench {
        SsStream *data, *marker;
        unsigned count, size, qos;
        unsigned sent, acked, connected;
        int64_t credit_empty; /* the tx credit with nothing queued */
        bool marker_sent, marker_acked, failed;
        uint8_t *payload;
} Bench;

static SsResult data_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Bench *b = userdata;

        if (b->sent >= b->count)
                return SS_TX_DONT_SEND;
        memcpy(buf, b->payload, b->size);
        *len = b->size;
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        if (++b->sent < b->count)
                (void) ss_stream_request_tx(s); /* the next one, as soon as there is room */
        else if (b->qos == 0)
                (void) ss_stream_request_tx(b->marker);
        return SS_OK;
}

static SsResult marker_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Bench *b = userdata;

        memcpy(buf, "end", 3);
        *len = 3;
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        b->marker_sent = true;
        return SS_OK;
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Bench *b = userdata;

        switch (state) {
        case SS_STATE_CONNECTED:
                if (s == b->data)
                        b->credit_empty = ss_stream_tx_credit(s);
                if (++b->connected == 2)
                        (void) ss_stream_request_tx(b->data);
                break;
        case SS_STATE_QOS_ACK_REMOTE:
                if (s == b->marker)
                        b->marker_acked = true;
                else
                        b->acked++;
                break;
        case SS_STATE_QOS_NACK_REMOTE:
        case SS_STATE_UNREACHABLE:
        case SS_STATE_DISCONNECTED:
        case SS_STATE_ALL_RETRIES_FAILED:
                b->failed = true;
                break;
        default:
                break;
        }
        return SS_OK;
}

static bool done(const Bench *b)
{
        if (b->failed)
                return true;
        return b->qos == 1 ? b->acked == b->count : b->marker_acked;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"host", required_argument, NULL, 'h'},
            {"port", required_argument, NULL, 'p'},
            {"count", required_argument, NULL, 'n'},
            {"size", required_argument, NULL, 's'},
            {"qos", required_argument, NULL, 'q'},
            {"topic", required_argument, NULL, 't'},
            {},
        };
        static const SsStreamHandlers data_handlers = {.tx = data_tx, .state = on_state};
        static const SsStreamHandlers marker_handlers = {.tx = marker_tx, .state = on_state};
        const char *host = "127.0.0.1", *topic = "bench/mqtt";
        unsigned port = 0;
        Bench b = {.count = 10000, .size = 100};
        sd_event *event = NULL;
        SsContext *ctx = NULL;
        char *json = NULL;
        uint64_t t0, t1, t_written = 0;
        unsigned acked;
        bool failed;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        host = optarg;
                        break;
                case 'p':
                        port = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        b.count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        b.size = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'q':
                        b.qos = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        topic = optarg;
                        break;
                default:
                        return 2;
                }
        if (port == 0 || port > 65535 || b.count == 0 || b.size > SS_TX_CHUNK || b.qos > 1 ||
            strchr(topic, '"') || strchr(host, '"')) {
                fprintf(stderr, "usage: mqtt-client --port P [--host H] [--count N] "
                                "[--size S (<= 16384)] [--qos 0|1] [--topic T]\n");
                return 2;
        }
        b.payload = malloc(b.size + 1);
        if (!b.payload)
                return 1;
        memset(b.payload, 'x', b.size);
        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"bench\",\"schema-version\":1,"
                     "\"retry\":[{\"r\":{\"backoff\":[100],\"conceal\":0}}],\"s\":["
                     "{\"data\":{\"endpoint\":\"mqtt://%s:%u\",\"mqtt_topic\":\"%s\","
                     "\"mqtt_qos\":%u,\"mqtt_clean_start\":true,\"retry\":\"r\"}},"
                     "{\"marker\":{\"endpoint\":\"mqtt://%s:%u\",\"mqtt_topic\":\"%s/end\","
                     "\"mqtt_qos\":1,\"mqtt_clean_start\":true,\"retry\":\"r\"}}]}",
                     host, port, topic, b.qos, host, port, topic) < 0)
                return 1;
        if (ss_bench_start(json, &event, &ctx) < 0) {
                ss_bench_stop(ctx, event);
                return 1;
        }

        t0 = now_usec(CLOCK_MONOTONIC);
        if (ss_stream_new(&b.data, ctx, "data", &data_handlers, &b) < 0 ||
            ss_stream_new(&b.marker, ctx, "marker", &marker_handlers, &b) < 0)
                return 1;
        (void) ss_stream_client_connect(b.data);
        (void) ss_stream_client_connect(b.marker);
        while (!done(&b)) {
                if (sd_event_run(event, UINT64_MAX) < 0)
                        break;
                /* All handed to the socket (what mosquitto_pub's exit means at QoS 0). */
                if (!t_written && b.sent == b.count &&
                    ss_stream_tx_credit(b.data) == b.credit_empty)
                        t_written = now_usec(CLOCK_MONOTONIC);
        }
        t1 = now_usec(CLOCK_MONOTONIC);
        if (!t_written || b.qos == 1)
                t_written = t1;
        failed = b.failed; /* before the streams go: their DISCONNECTED is no failure */

        acked = b.qos ? b.acked : b.marker_acked ? b.sent : 0;
        printf("result qos=%u messages=%u size=%u sent=%u acked=%u usec=%llu written_usec=%llu "
               "msgs_per_s=%.1f acked_msgs_per_s=%.1f%s\n",
               b.qos, b.count, b.size, b.sent, acked, (unsigned long long) (t1 - t0),
               (unsigned long long) (t_written - t0), b.sent * 1e6 / (double) (t_written - t0),
               acked * 1e6 / (double) (t1 - t0), failed ? " failed=1" : "");
        ss_stream_free(b.data);
        ss_stream_free(b.marker);
        ss_bench_stop(ctx, event);
        free(b.payload);
        return failed ? 1 : 0;
}

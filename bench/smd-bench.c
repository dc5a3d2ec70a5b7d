/* SPDX-License-Identifier: MIT */
/*
 * smd-bench: the smdagent side of bench/smd-vs-mosquitto. Subscribers and the
 * publisher use only the public libsmd API, as an application would.
 *
 * The publisher uses libsmd's own write batching when publishing as fast as it
 * can (attached to an sd-event loop, publishes are gathered into large writes),
 * and writes each message at once when paced (no loop attached), so that the
 * latency figures include no batching delay on the publishing side.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "bench-util.h"
#include "smd/smd.h"

#define BENCH_CLASS  SMD_CLASS_USER(0)
#define USEC_PER_SEC UINT64_C(1000000)

typedef struct Subscriber {
        BenchShared *shared;
        BenchSubscriber *result;
} Subscriber;

static void on_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        Subscriber *s = userdata;

        bench_record(s->shared, s->result, m->payload, m->size, m->lost);
}

static int smd_subscribe(const BenchOptions *o, BenchShared *shared, unsigned index, void *state)
{
        Subscriber s = {.shared = shared, .result = &shared->subscribers[index]};
        smd_bus *bus;
        int r;

        r = smd_bus_open(&bus, o->target, BENCH_CLASS);
        if (r < 0)
                return r;
        smd_bus_set_reconnect(bus, false);
        smd_bus_set_message_handler(bus, on_message, &s);
        bench_ready();
        while (!bench_subscriber_finished(o, shared, s.result)) {
                r = smd_bus_wait(bus, 50 * 1000);
                if (r < 0)
                        break;
                if (smd_bus_get_fd(bus) < 0) {
                        r = -ECONNRESET;
                        break;
                }
        }
        smd_bus_close(bus);
        return r < 0 ? r : 0;
}

/* As fast as possible: let libsmd batch through an sd-event loop. */
static int publish_batched(const BenchOptions *o, BenchShared *shared, smd_bus *bus)
{
        sd_event *event = NULL;
        uint8_t payload[BENCH_PAYLOAD_MAX];
        uint64_t start = bench_now_ns(), i = 0;
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return r;
        r = smd_bus_attach_event(bus, event, 0);
        bench_payload_fill(payload, o->size, 0);
        while (r >= 0 && i < o->count) {
                if ((i & 63) == 0) {
                        if (bench_publisher_expired(o, start))
                                break;
                        /* Let the loop write what has gathered. */
                        r = sd_event_run(event, 0);
                        if (r < 0)
                                break;
                }
                memcpy(payload, &i, sizeof(i));
                bench_payload_stamp(payload);
                r = smd_bus_publish(bus, BENCH_CLASS, payload, o->size);
                if (r == -ENOBUFS) {
                        /* Our queue is full: wait for the socket to drain. */
                        r = sd_event_run(event, 100 * 1000);
                        continue;
                }
                if (r >= 0)
                        i++;
        }
        shared->published = i;
        if (r >= 0)
                r = smd_bus_flush(bus, 10 * USEC_PER_SEC);
        (void) smd_bus_attach_event(bus, NULL, 0);
        sd_event_unref(event);
        return r < 0 ? r : 0;
}

/* Paced: each publish is written at once. */
static int publish_paced(const BenchOptions *o, BenchShared *shared, smd_bus *bus)
{
        uint8_t payload[BENCH_PAYLOAD_MAX];
        uint64_t start = bench_now_ns(), i;
        int r = 0;

        bench_payload_fill(payload, o->size, 0);
        for (i = 0; i < o->count && !bench_publisher_expired(o, start); i++) {
                bench_pace(o, start, i);
                memcpy(payload, &i, sizeof(i));
                bench_payload_stamp(payload);
                r = smd_bus_publish(bus, BENCH_CLASS, payload, o->size);
                if (r < 0)
                        break;
        }
        shared->published = i;
        if (r >= 0)
                r = smd_bus_flush(bus, 10 * USEC_PER_SEC);
        return r < 0 ? r : 0;
}

static int smd_publish(const BenchOptions *o, BenchShared *shared, void *state)
{
        smd_bus *bus;
        int r;

        r = smd_bus_open(&bus, o->target, 0);
        if (r < 0)
                return r;
        smd_bus_set_reconnect(bus, false);
        r = o->rate ? publish_paced(o, shared, bus) : publish_batched(o, shared, bus);
        smd_bus_close(bus);
        return r;
}

int main(int argc, char **argv)
{
        static const BenchClient client = {
            .name = "smd",
            .subscribe = smd_subscribe,
            .publish = smd_publish,
        };

        return bench_main(argc, argv, &client);
}

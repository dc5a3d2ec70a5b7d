/* SPDX-License-Identifier: MIT */
/*
 * mosq-bench: the mosquitto side of bench/smd-vs-mosquitto, with libmosquitto
 * and QoS 0 on one topic. The subscribers and the publisher are built the
 * same way as smd-bench's: one process per subscriber, one publisher, the
 * library's own non-threaded loop. The target is host:port.
 */
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

#define TOPIC "bench/fanout"

typedef struct Broker {
        char host[64];
        int port;
} Broker;

typedef struct Subscriber {
        BenchShared *shared;
        BenchSubscriber *result;
        bool subscribed;
        bool connected;
        int connect_rc;
} Subscriber;

static int mosq_error(int rc)
{
        switch (rc) {
        case MOSQ_ERR_SUCCESS:
                return 0;
        case MOSQ_ERR_NOMEM:
                return -ENOMEM;
        case MOSQ_ERR_NO_CONN:
        case MOSQ_ERR_CONN_LOST:
                return -ENOTCONN;
        case MOSQ_ERR_CONN_REFUSED:
                return -ECONNREFUSED;
        case MOSQ_ERR_ERRNO:
                return errno > 0 ? -errno : -EIO;
        default:
                return -EIO;
        }
}

static int parse_target(const char *target, void **ret_state)
{
        Broker *b = calloc(1, sizeof(*b));
        const char *colon = target ? strrchr(target, ':') : NULL;

        if (!b)
                return -ENOMEM;
        if (!colon || (size_t) (colon - target) >= sizeof(b->host)) {
                free(b);
                return -EINVAL;
        }
        memcpy(b->host, target, (size_t) (colon - target));
        b->port = atoi(colon + 1);
        if (b->port <= 0 || b->port > 65535) {
                free(b);
                return -EINVAL;
        }
        *ret_state = b;
        return 0;
}

static int mosq_prepare(const BenchOptions *o, void **ret_state)
{
        return parse_target(o->target, ret_state);
}

static void on_connect(struct mosquitto *mosq, void *userdata, int rc)
{
        Subscriber *s = userdata;

        s->connect_rc = rc;
        s->connected = rc == 0;
        if (rc == 0 && s->result)
                (void) mosquitto_subscribe(mosq, NULL, TOPIC, 0);
}

static void on_subscribe(struct mosquitto *mosq, void *userdata, int mid, int qos_count,
                         const int *granted_qos)
{
        Subscriber *s = userdata;

        s->subscribed = true;
}

static void on_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *m)
{
        Subscriber *s = userdata;

        bench_record(s->shared, s->result, m->payload, (size_t) m->payloadlen, 0);
}

/* Connect and run the loop until the CONNACK (and, for subscribers, the SUBACK). */
static int mosq_open(const Broker *b, Subscriber *s, bool nodelay, struct mosquitto **ret)
{
        struct mosquitto *mosq;
        int rc;

        mosq = mosquitto_new(NULL, true, s);
        if (!mosq)
                return -ENOMEM;
        mosquitto_connect_callback_set(mosq, on_connect);
        mosquitto_subscribe_callback_set(mosq, on_subscribe);
        mosquitto_message_callback_set(mosq, on_message);
        if (nodelay)
                (void) mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
        rc = mosquitto_connect(mosq, b->host, b->port, 60);
        for (int i = 0; rc == MOSQ_ERR_SUCCESS && i < 500; i++) {
                if (s->result ? s->subscribed : s->connected)
                        break;
                if (s->connect_rc)
                        rc = MOSQ_ERR_CONN_REFUSED;
                else
                        rc = mosquitto_loop(mosq, 10, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS && !(s->result ? s->subscribed : s->connected))
                rc = MOSQ_ERR_NO_CONN;
        if (rc != MOSQ_ERR_SUCCESS) {
                int r = mosq_error(rc);
                mosquitto_destroy(mosq);
                return r;
        }
        *ret = mosq;
        return 0;
}

static int mosq_subscribe(const BenchOptions *o, BenchShared *shared, unsigned index, void *state)
{
        Subscriber s = {.shared = shared, .result = &shared->subscribers[index]};
        struct mosquitto *mosq;
        int r, rc = MOSQ_ERR_SUCCESS;

        mosquitto_lib_init();
        r = mosq_open(state, &s, false, &mosq);
        if (r < 0)
                return r;
        bench_ready();
        while (!bench_subscriber_finished(o, shared, s.result)) {
                rc = mosquitto_loop(mosq, 50, 1);
                if (rc != MOSQ_ERR_SUCCESS)
                        break;
        }
        mosquitto_disconnect(mosq);
        mosquitto_destroy(mosq);
        mosquitto_lib_cleanup();
        return mosq_error(rc);
}

/* Write out what libmosquitto queued when the socket was full. */
static int drain(struct mosquitto *mosq)
{
        while (mosquitto_want_write(mosq)) {
                struct pollfd p = {.fd = mosquitto_socket(mosq), .events = POLLOUT};
                int rc;

                if (poll(&p, 1, 1000) < 0 && errno != EINTR)
                        return -errno;
                rc = mosquitto_loop_write(mosq, 1);
                if (rc != MOSQ_ERR_SUCCESS)
                        return mosq_error(rc);
        }
        return 0;
}

static int mosq_publish(const BenchOptions *o, BenchShared *shared, void *state)
{
        Subscriber s = {.shared = shared};
        struct mosquitto *mosq;
        uint8_t payload[BENCH_PAYLOAD_MAX];
        uint64_t start, i;
        int r;

        mosquitto_lib_init();
        /* Paced, Nagle and delayed ACKs would hold messages back for up to 40 ms;
         * as fast as possible, the library default (Nagle on) is faster. */
        r = mosq_open(state, &s, o->rate > 0, &mosq);
        if (r < 0)
                return r;
        bench_payload_fill(payload, o->size, 0);
        start = bench_now_ns();
        for (i = 0; i < o->count && !bench_publisher_expired(o, start); i++) {
                int rc;

                bench_pace(o, start, i);
                memcpy(payload, &i, sizeof(i));
                bench_payload_stamp(payload);
                rc = mosquitto_publish(mosq, NULL, TOPIC, (int) o->size, payload, 0, false);
                if (rc != MOSQ_ERR_SUCCESS) {
                        r = mosq_error(rc);
                        break;
                }
                /* Never let libmosquitto's unbounded queue grow: wait for the socket. */
                r = drain(mosq);
                if (r < 0)
                        break;
        }
        shared->published = i;
        if (r >= 0)
                r = drain(mosq);
        mosquitto_disconnect(mosq);
        (void) drain(mosq);
        mosquitto_destroy(mosq);
        mosquitto_lib_cleanup();
        return r;
}

int main(int argc, char **argv)
{
        static const BenchClient client = {
            .name = "mosquitto",
            .prepare = mosq_prepare,
            .subscribe = mosq_subscribe,
            .publish = mosq_publish,
        };

        return bench_main(argc, argv, &client);
}

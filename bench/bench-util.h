/* SPDX-License-Identifier: MIT */
/*
 * The harness the fan-out benchmarks share: options, one subscriber process
 * per subscriber, results in shared memory, a latency histogram and one
 * "result key=value ..." line on stdout. Each benchmark program (libsmd,
 * libmosquitto, plain socketpairs) supplies only how to publish and how to
 * receive; everything that is measured is measured here, the same way for all.
 *
 * A message payload starts with its sequence number (u64) and the publisher's
 * CLOCK_MONOTONIC send time in ns (u64), native byte order; the rest is filler.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD_MIN 16u
#define BENCH_PAYLOAD_MAX 384u

/* Latency histogram: exact below 1024 ns, then 512 steps per power of two. */
#define BENCH_HIST_LINEAR  1024u
#define BENCH_HIST_STEPS   512u
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + 31u * BENCH_HIST_STEPS)

typedef struct BenchOptions {
        const char *target; /* socket path, host:port or unused */
        unsigned subscribers;
        size_t size;
        uint64_t count;         /* messages to publish */
        uint64_t rate;          /* offered messages/s; 0: as fast as possible */
        uint64_t max_time_usec; /* stop publishing after this long */
        uint64_t timeout_usec;  /* whole run */
        bool hold;              /* connect the subscribers, say "ready", wait for EOF on stdin */
} BenchOptions;

typedef struct BenchSubscriber {
        int error; /* negative errno-style, from the subscriber process */
        bool done; /* saw the last message */
        uint64_t delivered;
        uint64_t lost; /* reported by the transport */
        uint64_t gaps; /* sequence numbers skipped */
        uint64_t misordered;
        uint64_t next_seq;
        uint64_t last_rx_ns;
        uint32_t histogram[BENCH_HIST_BUCKETS];
} BenchSubscriber;

typedef struct BenchShared {
        volatile int stop;           /* hold mode: time to go */
        volatile int publisher_done; /* then published is final */
        volatile uint64_t published;
        volatile uint64_t publisher_done_ns;
        BenchSubscriber subscribers[];
} BenchShared;

typedef struct BenchClient {
        const char *name;
        /* In the parent, before the subscribers are forked (may be NULL). */
        int (*prepare)(const BenchOptions *o, void **ret_state);
        /* In subscriber process index: connect, call bench_ready(), receive
         * until bench_subscriber_finished(). Returns 0 or negative errno. */
        int (*subscribe)(const BenchOptions *o, BenchShared *shared, unsigned index, void *state);
        /* In the parent once every subscriber is ready: publish, then set
         * shared->published. Returns 0 or negative errno. */
        int (*publish)(const BenchOptions *o, BenchShared *shared, void *state);
} BenchClient;

int bench_main(int argc, char **argv, const BenchClient *client);

uint64_t bench_now_ns(void);
/* Tell the parent this subscriber is connected and subscribed. */
void bench_ready(void);
/* Account one received payload; lost is what the transport reported lost before it. */
void bench_record(BenchShared *shared, BenchSubscriber *s, const void *payload, size_t size,
                  uint64_t lost);
/* True when the subscriber should stop receiving. */
bool bench_subscriber_finished(const BenchOptions *o, BenchShared *shared,
                               const BenchSubscriber *s);
/* Fill buf (size bytes) with a payload for seq, stamped now. */
void bench_payload_fill(void *buf, size_t size, uint64_t seq);
/* Restamp a payload built by bench_payload_fill(). */
void bench_payload_stamp(void *buf);
/* Paced publishing: sleep until message seq is due (no-op at rate 0). */
void bench_pace(const BenchOptions *o, uint64_t start_ns, uint64_t seq);
/* True when message seq is due (always at rate 0). */
bool bench_due(const BenchOptions *o, uint64_t start_ns, uint64_t seq);
/* True when the publisher should stop early (max time reached). */
bool bench_publisher_expired(const BenchOptions *o, uint64_t start_ns);

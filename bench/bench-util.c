/* SPDX-License-Identifier: MIT */
/*
 * The shared fan-out benchmark harness (see bench-util.h).
 *
 * The parent forks the subscribers first; each says it is ready with one byte
 * on a pipe once it is subscribed, so publishing starts only when every
 * subscriber can receive. Results live in one MAP_SHARED mapping, one slot per
 * subscriber, so nothing has to be serialised back; the parent reads them
 * after waitpid().
 */
#include "bench-util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_SEC  UINT64_C(1000000000)
/* After the publisher is done, a subscriber that hears nothing for this long stops. */
#define IDLE_NS (300 * NSEC_PER_MSEC)

static int ready_fd = -1;
static uint64_t count_expected;
static uint64_t deadline_ns;

uint64_t bench_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static unsigned hist_index(uint64_t ns)
{
        unsigned msb, shift;

        if (ns < BENCH_HIST_LINEAR)
                return (unsigned) ns;
        msb = 63u - (unsigned) __builtin_clzll(ns);
        if (msb > 40)
                return BENCH_HIST_BUCKETS - 1;
        shift = msb - 9;
        return BENCH_HIST_LINEAR + (msb - 10) * BENCH_HIST_STEPS +
               (unsigned) ((ns >> shift) - BENCH_HIST_STEPS);
}

/* The lowest latency (ns) bucket i holds. */
static uint64_t hist_value(unsigned i)
{
        unsigned k;

        if (i < BENCH_HIST_LINEAR)
                return i;
        k = (i - BENCH_HIST_LINEAR) / BENCH_HIST_STEPS;
        return (uint64_t) ((i - BENCH_HIST_LINEAR) % BENCH_HIST_STEPS + BENCH_HIST_STEPS)
               << (k + 1);
}

void bench_ready(void)
{
        char c = 'r';

        if (write(ready_fd, &c, 1) != 1)
                perror("bench: ready");
}

void bench_record(BenchShared *shared, BenchSubscriber *s, const void *payload, size_t size,
                  uint64_t lost)
{
        uint64_t now = bench_now_ns(), seq, sent;

        s->lost += lost;
        if (size < BENCH_PAYLOAD_MIN)
                return;
        memcpy(&seq, payload, sizeof(seq));
        memcpy(&sent, (const uint8_t *) payload + 8, sizeof(sent));
        s->delivered++;
        s->last_rx_ns = now;
        if (seq > s->next_seq)
                s->gaps += seq - s->next_seq;
        else if (seq < s->next_seq)
                s->misordered++;
        s->next_seq = seq + 1;
        if (now >= sent)
                s->histogram[hist_index(now - sent)]++;
        if (s->next_seq >= count_expected)
                s->done = true;
}

bool bench_subscriber_finished(const BenchOptions *o, BenchShared *shared, const BenchSubscriber *s)
{
        uint64_t now;

        if (s->done || shared->stop)
                return true;
        now = bench_now_ns();
        if (now >= deadline_ns)
                return true;
        if (!shared->publisher_done)
                return false;
        if (s->next_seq >= shared->published)
                return true;
        return now > MAX(s->last_rx_ns, shared->publisher_done_ns) + IDLE_NS;
}

void bench_payload_fill(void *buf, size_t size, uint64_t seq)
{
        memset(buf, 'x', size);
        memcpy(buf, &seq, sizeof(seq));
        bench_payload_stamp(buf);
}

void bench_payload_stamp(void *buf)
{
        uint64_t now = bench_now_ns();

        memcpy((uint8_t *) buf + 8, &now, sizeof(now));
}

bool bench_due(const BenchOptions *o, uint64_t start_ns, uint64_t seq)
{
        return o->rate == 0 || bench_now_ns() >= start_ns + seq * NSEC_PER_SEC / o->rate;
}

void bench_pace(const BenchOptions *o, uint64_t start_ns, uint64_t seq)
{
        uint64_t due;
        struct timespec ts;

        if (o->rate == 0)
                return;
        due = start_ns + seq * NSEC_PER_SEC / o->rate;
        if (bench_now_ns() >= due)
                return;
        ts.tv_sec = (time_t) (due / NSEC_PER_SEC);
        ts.tv_nsec = (long) (due % NSEC_PER_SEC);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

bool bench_publisher_expired(const BenchOptions *o, uint64_t start_ns)
{
        return o->max_time_usec && bench_now_ns() - start_ns >= o->max_time_usec * NSEC_PER_USEC;
}

static void help(const char *name)
{
        printf("Usage: %s [OPTIONS]\n\n"
               "One publisher fans messages out to N subscriber processes; prints one\n"
               "\"result key=value ...\" line.\n\n"
               "  -t, --target T         where to connect (socket path or host:port)\n"
               "  -n, --subscribers N    subscriber processes (default 1)\n"
               "  -s, --size BYTES       payload size, %u..%u (default 64)\n"
               "  -c, --count N          messages to publish (default 100000)\n"
               "  -r, --rate N           offered messages/s; 0 = as fast as possible (default)\n"
               "  -T, --max-time MS      stop publishing after MS milliseconds (default 3000)\n"
               "      --timeout S        give up on the whole run after S seconds (default 30)\n"
               "      --hold             connect the subscribers, print \"ready\", publish\n"
               "                         nothing, and disconnect at EOF on stdin\n",
               name, BENCH_PAYLOAD_MIN, BENCH_PAYLOAD_MAX);
}

static int parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_options(int argc, char **argv, BenchOptions *o)
{
        static const struct option options[] = {
            {"target", required_argument, NULL, 't'},
            {"subscribers", required_argument, NULL, 'n'},
            {"size", required_argument, NULL, 's'},
            {"count", required_argument, NULL, 'c'},
            {"rate", required_argument, NULL, 'r'},
            {"max-time", required_argument, NULL, 'T'},
            {"timeout", required_argument, NULL, 'W'},
            {"hold", no_argument, NULL, 'H'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        uint64_t v = 0;
        int c;

        *o = (BenchOptions){
            .subscribers = 1,
            .size = 64,
            .count = 100000,
            .max_time_usec = 3000 * 1000,
            .timeout_usec = 30 * 1000 * 1000,
        };
        while ((c = getopt_long(argc, argv, "t:n:s:c:r:T:h", options, NULL)) >= 0) {
                int r = 0;

                switch (c) {
                case 't':
                        o->target = optarg;
                        break;
                case 'n':
                        r = parse_u64(optarg, &v);
                        if (r >= 0 && (v < 1 || v > 4096))
                                r = -ERANGE;
                        o->subscribers = (unsigned) v;
                        break;
                case 's':
                        r = parse_u64(optarg, &v);
                        if (r >= 0 && (v < BENCH_PAYLOAD_MIN || v > BENCH_PAYLOAD_MAX))
                                r = -ERANGE;
                        o->size = (size_t) v;
                        break;
                case 'c':
                        r = parse_u64(optarg, &o->count);
                        if (r >= 0 && o->count == 0)
                                r = -ERANGE;
                        break;
                case 'r':
                        r = parse_u64(optarg, &o->rate);
                        break;
                case 'T':
                        r = parse_u64(optarg, &v);
                        o->max_time_usec = v * 1000;
                        break;
                case 'W':
                        r = parse_u64(optarg, &v);
                        o->timeout_usec = v * 1000 * 1000;
                        break;
                case 'H':
                        o->hold = true;
                        break;
                case 'h':
                        help(argv[0]);
                        return 1;
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, "%s: invalid value \"%s\" for -%c\n", argv[0], optarg, c);
                        return r;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
                return -EINVAL;
        }
        return 0;
}

/* Wait for n ready bytes; fails when a subscriber died first or time ran out. */
static int wait_ready(int fd, unsigned n)
{
        while (n > 0) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char buf[256];
                uint64_t now = bench_now_ns();
                ssize_t k;
                int r;

                if (now >= deadline_ns)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int) ((deadline_ns - now) / NSEC_PER_MSEC + 1));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                k = read(fd, buf, MIN(sizeof(buf), (size_t) n));
                if (k < 0 && errno != EINTR && errno != EAGAIN)
                        return -errno;
                if (k == 0)
                        return -ECHILD;
                if (k > 0)
                        n -= (unsigned) k;
        }
        return 0;
}

static void print_result(const BenchClient *client, const BenchOptions *o,
                         const BenchShared *shared, uint64_t start_ns, int publish_error)
{
        uint64_t delivered = 0, lost = 0, gaps = 0, misordered = 0, last_rx = 0, samples = 0;
        uint64_t expected, missing, elapsed_ns, pub_ns, p50 = 0, p99 = 0, max = 0;
        uint64_t rank50, rank99, seen = 0;
        unsigned errors = 0;
        static uint64_t merged[BENCH_HIST_BUCKETS];

        for (unsigned i = 0; i < o->subscribers; i++) {
                const BenchSubscriber *s = &shared->subscribers[i];

                delivered += s->delivered;
                lost += s->lost;
                gaps += s->gaps;
                misordered += s->misordered;
                last_rx = MAX(last_rx, s->last_rx_ns);
                if (s->error < 0)
                        errors++;
                for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
                        merged[b] += s->histogram[b];
                        samples += s->histogram[b];
                }
        }
        rank50 = samples / 2;
        rank99 = samples - samples / 100;
        for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
                if (!merged[b])
                        continue;
                if (seen <= rank50 && seen + merged[b] > rank50)
                        p50 = hist_value(b);
                if (seen < rank99 && seen + merged[b] >= rank99)
                        p99 = hist_value(b);
                seen += merged[b];
                max = hist_value(b);
        }
        expected = shared->published * o->subscribers;
        missing = expected > delivered + lost ? expected - delivered - lost : 0;
        elapsed_ns = last_rx > start_ns ? last_rx - start_ns : 0;
        pub_ns = shared->publisher_done_ns > start_ns ? shared->publisher_done_ns - start_ns : 0;
        printf("result client=%s subscribers=%u size=%zu rate=%" PRIu64 " published=%" PRIu64
               " publish_usec=%" PRIu64 " publish_per_sec=%.0f delivered=%" PRIu64 " lost=%" PRIu64
               " missing=%" PRIu64 " gaps=%" PRIu64 " misordered=%" PRIu64 " elapsed_usec=%" PRIu64
               " delivered_per_sec=%.0f p50_us=%.1f p99_us=%.1f"
               " max_us=%.1f errors=%u publish_error=%d\n",
               client->name, o->subscribers, o->size, o->rate, shared->published,
               pub_ns / NSEC_PER_USEC,
               pub_ns ? (double) shared->published * 1e9 / (double) pub_ns : 0.0, delivered, lost,
               missing, gaps, misordered, elapsed_ns / NSEC_PER_USEC,
               elapsed_ns ? (double) delivered * 1e9 / (double) elapsed_ns : 0.0,
               (double) p50 / 1e3, (double) p99 / 1e3, (double) max / 1e3, errors, publish_error);
}

int bench_main(int argc, char **argv, const BenchClient *client)
{
        BenchOptions o;
        BenchShared *shared;
        size_t shared_size;
        void *state = NULL;
        pid_t *pids;
        int pipe_fds[2], r, publish_error = 0;
        uint64_t start_ns;

        r = parse_options(argc, argv, &o);
        if (r != 0)
                return r < 0 ? 2 : 0;
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        /* Paced publishing at 100 µs intervals needs a tight timer. */
        (void) prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
        count_expected = o.count;
        deadline_ns = bench_now_ns() + o.timeout_usec * NSEC_PER_USEC;

        shared_size = sizeof(BenchShared) + o.subscribers * sizeof(BenchSubscriber);
        shared = mmap(NULL, shared_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED) {
                perror("bench: mmap");
                return 1;
        }
        pids = calloc(o.subscribers, sizeof(pid_t));
        if (!pids || pipe2(pipe_fds, O_CLOEXEC) < 0) {
                perror("bench: setup");
                return 1;
        }
        if (client->prepare) {
                r = client->prepare(&o, &state);
                if (r < 0) {
                        fprintf(stderr, "%s: setup failed: %s\n", client->name, strerror(-r));
                        return 1;
                }
        }

        fflush(NULL);
        for (unsigned i = 0; i < o.subscribers; i++) {
                pids[i] = fork();
                if (pids[i] < 0) {
                        perror("bench: fork");
                        shared->stop = 1;
                        return 1;
                }
                if (pids[i] == 0) {
                        close(pipe_fds[0]);
                        ready_fd = pipe_fds[1];
                        shared->subscribers[i].error = client->subscribe(&o, shared, i, state);
                        if (shared->subscribers[i].error < 0)
                                fprintf(stderr, "%s: subscriber %u: %s\n", client->name, i,
                                        strerror(-shared->subscribers[i].error));
                        _exit(0);
                }
        }
        close(pipe_fds[1]);
        r = wait_ready(pipe_fds[0], o.subscribers);
        close(pipe_fds[0]);
        if (r < 0) {
                fprintf(stderr, "%s: subscribers did not get ready: %s\n", client->name,
                        strerror(-r));
                shared->stop = 1;
                publish_error = r;
        } else if (o.hold) {
                char buf[64];

                printf("ready subscribers=%u\n", o.subscribers);
                while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
                        ;
                shared->stop = 1;
        }

        start_ns = bench_now_ns();
        if (!o.hold && publish_error == 0) {
                publish_error = client->publish(&o, shared, state);
                if (publish_error < 0)
                        fprintf(stderr, "%s: publisher: %s\n", client->name,
                                strerror(-publish_error));
        }
        shared->publisher_done_ns = bench_now_ns();
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        shared->publisher_done = 1;

        for (unsigned i = 0; i < o.subscribers; i++)
                while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                        ;
        if (!o.hold)
                print_result(client, &o, shared, start_ns, publish_error);
        free(pids);
        return publish_error < 0 ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * A client that stops reading never costs anyone else: while 100,000 messages
 * flow, a normal subscriber receives every one of them in order, the agent's
 * memory stays bounded, and the stalled client, when it reads again, is told
 * how many messages it lost and then gets current messages. Every message is
 * accounted for: the stalled client's received plus lost equals what was sent.
 *
 * "Keeps up" is made exact: the publisher never runs more than KEEP_UP_LAG +
 * FLOOD_STEP messages ahead of the normal subscriber, under its backlog limit
 * (1024), however the scheduler treats the processes on a busy machine. Without
 * that, a subscriber descheduled for 10 ms at 300k messages/s falls behind as
 * far as a stalled one, and loses messages by the rule under test.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "smd/smd.h"
#include "tap.h"
#include "util.h"

#define N_FLOOD       100000
#define N_CURRENT     3
#define FLOOD_STEP    500 /* see publisher_main() */
#define KEEP_UP_LAG   256 /* see above */
#define RSS_BOUND_KIB (8 * 1024)

static const char *sock;
static uint64_t *progress; /* shared: messages the normal subscriber has received */

typedef struct Tally {
        uint64_t received, out_of_order, lost, other;
        int64_t last_seq;
        bool end;
} Tally;

static void on_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        Tally *t = userdata;
        long seq;

        t->lost += m->lost;
        if (m->size > 7 && memcmp(m->payload, "{\"seq\":", 7) == 0) {
                seq = strtol(m->payload + 7, NULL, 10);
                if (seq != t->last_seq + 1)
                        t->out_of_order++;
                t->last_seq = seq;
                t->received++;
                __atomic_store_n(progress, t->received, __ATOMIC_RELAXED);
        } else if (m->size == 12 && memcmp(m->payload, "{\"end\":true}", 12) == 0)
                t->end = true;
        else
                t->other++;
}

static int tally_fd;

static int subscriber_main(void *arg)
{
        Tally t = {.last_seq = -1};
        smd_bus *bus;
        uint64_t deadline;

        if (smd_bus_open(&bus, sock, SMD_CLASS_USER(0)) < 0)
                return 10;
        smd_bus_set_message_handler(bus, on_message, &t);
        (void) !write(tally_fd, "R", 1);
        deadline = harness_now_usec() + 40 * USEC_PER_SEC;
        while (!t.end && harness_now_usec() < deadline)
                if (smd_bus_wait(bus, 100 * USEC_PER_MSEC) < 0)
                        break;
        smd_bus_close(bus);
        return write(tally_fd, &t, sizeof(t)) == sizeof(t) ? 0 : 11;
}

static int publish_all(smd_bus *bus, const char *payload, size_t size)
{
        for (;;) {
                int r = smd_bus_publish(bus, SMD_CLASS_USER(0), payload, size);
                if (r != -ENOBUFS)
                        return r;
                r = smd_bus_wait(bus, 100 * USEC_PER_MSEC);
                if (r < 0)
                        return r;
        }
}

static int publisher_main(void *arg)
{
        smd_bus *bus;
        char payload[64];

        if (smd_bus_open(&bus, sock, 0) < 0)
                return 10;
        for (int seq = 0; seq < N_FLOOD; seq++) {
                int n =
                    snprintf(payload, sizeof(payload), "{\"seq\":%d,\"pad\":\"%24s\"}", seq, "");
                if (publish_all(bus, payload, (size_t) n) < 0)
                        return 11;
                /*
                 * Pacing: a round trip to the agent every FLOOD_STEP messages.
                 * The agent reads a publisher's socket in bursts of up to a
                 * megabyte and queues all of it before any subscriber gets to
                 * pull; a burst longer than the per-participant backlog limit
                 * (1024) would cost even a subscriber that keeps up. With at
                 * most FLOOD_STEP messages in flight that cannot happen, and
                 * the flood still runs at tens of thousands of messages/s.
                 */
                if (seq % FLOOD_STEP == FLOOD_STEP - 1) {
                        uint64_t deadline = harness_now_usec() + 10 * USEC_PER_SEC;

                        if (smd_bus_flush(bus, 10 * USEC_PER_SEC) < 0)
                                return 12;
                        while (__atomic_load_n(progress, __ATOMIC_RELAXED) + KEEP_UP_LAG <
                               (uint64_t) seq + 1) {
                                if (harness_now_usec() > deadline)
                                        return 14;
                                usleep(100);
                        }
                }
        }
        if (smd_bus_flush(bus, 10 * USEC_PER_SEC) < 0)
                return 13;
        smd_bus_close(bus);
        return 0;
}

static int publish_once(const char *payload)
{
        smd_bus *bus;
        int r = smd_bus_open(&bus, sock, 0);

        if (r < 0)
                return r;
        r = smd_bus_publish(bus, SMD_CLASS_USER(0), payload, strlen(payload));
        if (r >= 0)
                r = smd_bus_flush(bus, 5 * USEC_PER_SEC);
        smd_bus_close(bus);
        return r;
}

static ssize_t read_timeout(int fd, void *buf, size_t size, unsigned timeout_ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};

        if (poll(&p, 1, (int) timeout_ms) <= 0)
                return -ETIMEDOUT;
        return read(fd, buf, size);
}

/* What the stalled client finds when it reads again. */
typedef struct Resumed {
        uint64_t data, notices, lost, bad_order, current, end, other;
        uint64_t current_after_notice;
        int64_t last_seq;
        uint64_t first_notice_count;
} Resumed;

static void resumed_frame(Resumed *s, const Frame *f)
{
        MessageHeader h;
        const char *p;
        size_t n;

        if (f->type != FRAME_RX_PAYLOAD ||
            message_header_parse(f->payload.data, f->payload.size, &h) < 0) {
                s->other++;
                return;
        }
        p = (const char *) f->payload.data + MESSAGE_HEADER_SIZE;
        n = f->payload.size - MESSAGE_HEADER_SIZE;
        if (h.classes == MESSAGE_CLASS_LOST_NOTICE) {
                const char *c = memmem(p, n, "\"count\":", 8);
                uint64_t count = c ? strtoull(c + 8, NULL, 10) : 0;

                if (!(n > 16 && memcmp(p, "{\"type\":\"lost\",", 15) == 0))
                        s->other++;
                if (s->notices++ == 0)
                        s->first_notice_count = count;
                s->lost += count;
                return;
        }
        if (h.classes != SMD_CLASS_USER(0)) {
                s->other++;
                return;
        }
        if (n > 7 && memcmp(p, "{\"seq\":", 7) == 0) {
                long seq = strtol(p + 7, NULL, 10);
                if (seq <= s->last_seq)
                        s->bad_order++;
                s->last_seq = seq;
                s->data++;
        } else if (n == 12 && memcmp(p, "{\"end\":true}", 12) == 0)
                s->end++;
        else if (n > 11 && memcmp(p, "{\"current\":", 11) == 0) {
                s->current++;
                if (s->notices > 0)
                        s->current_after_notice++;
        } else
                s->other++;
}

int main(void)
{
        Agent a;
        RawClient staller = {.fd = -1};
        Resumed res = {.last_seq = -1};
        Tally t = {};
        int pipefd[2];
        pid_t sub, pub;
        long rss_before, rss_peak, rss_after;
        uint64_t start, flood_usec, delivered_usec;
        char c;
        int code, r;

        harness_init(100);
        progress = mmap(NULL, sizeof(*progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
        if (!ok(progress != MAP_FAILED, "a shared progress counter"))
                return harness_done();
        *progress = 0;
        if (!agent_start(
                &a, &(AgentOptions){.env = (const char *const[]){harness_asan_memory_env(), NULL}}))
                goto out;
        sock = a.socket_path;

        is_int(raw_open_smd(&staller, sock, SMD_CLASS_USER(0)), 0,
               "a raw user0 client subscribes, then stops reading");
        if (pipe(pipefd) < 0)
                goto out;
        tally_fd = pipefd[1];
        sub = harness_fork(subscriber_main, NULL);
        close(pipefd[1]);
        ok(read_timeout(pipefd[0], &c, 1, 5000) == 1, "a libsmd user0 subscriber connects");
        ok(wait_participants(sock, 2, 5000), "the agent counts both");
        rss_before = proc_rss_kib(a.proc.pid);

        start = harness_now_usec();
        pub = harness_fork(publisher_main, NULL);
        rss_peak = rss_before;
        for (;;) {
                int rc = harness_poll_pid(pub);

                rss_peak = MAX(rss_peak, proc_rss_kib(a.proc.pid));
                if (rc != -EAGAIN) {
                        is_int(rc, 0, "the publisher sent %d messages", N_FLOOD);
                        break;
                }
                if (harness_now_usec() - start > 60 * USEC_PER_SEC) {
                        ok(false, "the publisher finishes within 60 s");
                        (void) harness_wait_pid(pub, 0);
                        break;
                }
                harness_sleep_ms(20);
        }
        flood_usec = harness_now_usec() - start;
        is_int(publish_once("{\"end\":true}"), 0, "publish the end marker");

        r = (int) read_timeout(pipefd[0], &t, sizeof(t), 40000);
        delivered_usec = harness_now_usec() - start;
        code = harness_wait_pid(sub, 5000);
        close(pipefd[0]);
        is_int(r, sizeof(t), "the subscriber reported");
        is_int(code, 0, "the subscriber finished");
        is_int(t.received, N_FLOOD, "the subscriber received all %d messages", N_FLOOD);
        is_int(t.out_of_order, 0, "in order, none twice");
        is_int(t.lost, 0, "and was never told it lost any");
        ok(t.end, "and then the end marker");
        tap_diag("flood: %d messages published in %.0f ms (%.0f messages/s), all received "
                 "after %.0f ms",
                 N_FLOOD, (double) flood_usec / 1000, N_FLOOD / ((double) flood_usec / 1e6),
                 (double) delivered_usec / 1000);

        rss_after = proc_rss_kib(a.proc.pid);
        tap_diag("agent VmRSS: %ld KiB before, %ld KiB peak during, %ld KiB after the flood "
                 "(+%ld KiB)",
                 rss_before, rss_peak, rss_after, rss_after - rss_before);
        cmp_int(rss_before, >, 0, "agent VmRSS is readable");
        cmp_int(rss_after - rss_before, <, RSS_BOUND_KIB,
                "agent memory stays bounded: after the flood VmRSS grew less than %d KiB",
                RSS_BOUND_KIB);
        cmp_int(rss_peak - rss_before, <, RSS_BOUND_KIB, "and so did its peak");

        /* The stalled client reads again: drain, then current messages. */
        {
                Frame f;
                uint64_t deadline = harness_now_usec() + 10 * USEC_PER_SEC;
                bool sent_current = false;

                while (res.current < N_CURRENT && harness_now_usec() < deadline) {
                        r = raw_recv(&staller, &f, 100);
                        if (r == 1) {
                                resumed_frame(&res, &f);
                                continue;
                        }
                        if (r == 0 || (r < 0 && r != -ETIMEDOUT))
                                break;
                        /* Nothing more queued: now publish a few current messages. */
                        if (!sent_current) {
                                for (int i = 0; i < N_CURRENT; i++) {
                                        char p[32];
                                        snprintf(p, sizeof(p), "{\"current\":%d}", i);
                                        is_int(publish_once(p), 0, "publish current message %d", i);
                                }
                                sent_current = true;
                        }
                }
        }
        tap_diag("stalled client after resuming: %" PRIu64 " old messages, %" PRIu64
                 " lost notices reporting %" PRIu64 " lost, %" PRIu64 " current",
                 res.data, res.notices, res.lost, res.current);
        cmp_int(res.notices, >=, 1, "the stalled client gets a lost notice (class bit 32)");
        cmp_int(res.first_notice_count, >, 0, "saying how many it lost");
        is_int(res.current, N_CURRENT, "then the current messages");
        is_int(res.current_after_notice, N_CURRENT, "after the notice");
        is_int(res.bad_order, 0, "what it got of the flood is in order, none twice");
        is_int(res.other, 0, "nothing else");
        is_int(res.data + res.end + res.lost, N_FLOOD + 1,
               "received + lost = every message sent while it stalled");
        cmp_int(res.data, <, N_FLOOD, "it did not get the whole flood");

        /* The publishers just closed; the agent may not have read their EOF yet. */
        ok(wait_participants(sock, 1, 2000), "the agent still counts the stalled client");
        is_int(agent_stop(&a, 5000), 0, "agent exits 0");
        (void) agent_check_log(&a);
out:
        raw_close(&staller);
        agent_free(&a);
        return harness_done();
}

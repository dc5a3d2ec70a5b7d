/* SPDX-License-Identifier: MIT */
/*
 * Bus semantics across processes, through libsmd: several subscribers with
 * different masks while several publishers publish at once. Each subscriber
 * gets exactly the messages its mask selects, each publisher's in order, none
 * twice, none lost. A late joiner gets the retained system state first and
 * none of the backlog queued before it joined.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "smd/smd.h"
#include "tap.h"
#include "util.h"

#define N_PUBLISHERS 3
#define N_MESSAGES   200
#define RECORDS_MAX  (N_PUBLISHERS * N_MESSAGES + 16)

static const char *sock;

static const uint32_t publisher_classes[N_PUBLISHERS] = {
    SMD_CLASS_USER(0), SMD_CLASS_USER(1),
    SMD_CLASS_USER(2) | SMD_CLASS_NETWORK, /* one message, two classes */
};

#define END_CLASSES                                                                      \
        (SMD_CLASS_USER(0) | SMD_CLASS_USER(1) | SMD_CLASS_USER(2) | SMD_CLASS_NETWORK | \
         SMD_CLASS_INTERACTION | SMD_CLASS_SYSTEM_STATE)

static const struct {
        const char *name;
        uint32_t mask;
} subscribers[] = {
    {"user0", SMD_CLASS_USER(0)},
    {"user1|user2", SMD_CLASS_USER(1) | SMD_CLASS_USER(2)},
    {"user0|user1|user2", SMD_CLASS_USER(0) | SMD_CLASS_USER(1) | SMD_CLASS_USER(2)},
    {"network", SMD_CLASS_NETWORK},
    {"system_state|user1", SMD_CLASS_SYSTEM_STATE | SMD_CLASS_USER(1)},
    {"interaction", SMD_CLASS_INTERACTION},
};
#define N_SUBSCRIBERS ELEMENTSOF(subscribers)

typedef enum Kind {
        KIND_DATA,
        KIND_STATE,
        KIND_END,
        KIND_OTHER,
} Kind;

/* What a subscriber saw, one record per message, sent to the test through a pipe. */
typedef struct Record {
        uint32_t classes;
        int32_t publisher, seq;
        uint32_t lost;
        uint32_t kind;
        char payload[32];
} Record;

typedef struct Subscriber {
        uint32_t mask;
        int ready_fd, records_fd;
        Record records[RECORDS_MAX];
        size_t n;
        bool end;
} Subscriber;

static void on_subscriber_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        Subscriber *s = userdata;
        Record *r;
        char text[SMD_PAYLOAD_MAX + 1];
        int p, seq;

        if (s->n >= RECORDS_MAX)
                return;
        memcpy(text, m->payload, m->size);
        text[m->size] = 0;
        /* The agent's own network messages (links, connectivity: smd-messages(7)) are not ours. */
        if ((m->classes & SMD_CLASS_NETWORK) && strncmp(text, "{\"type\":", 8) == 0)
                return;
        r = &s->records[s->n++];
        *r = (Record){.classes = m->classes, .publisher = -1, .seq = -1, .lost = m->lost};
        snprintf(r->payload, sizeof(r->payload), "%.31s", text);
        if (sscanf(text, "{\"p\":%d,\"seq\":%d}", &p, &seq) == 2) {
                r->kind = KIND_DATA;
                r->publisher = p;
                r->seq = seq;
        } else if (streq(text, "{\"end\":true}")) {
                r->kind = KIND_END;
                s->end = true;
        } else if (strncmp(text, "{\"state\":", 9) == 0)
                r->kind = KIND_STATE;
        else
                r->kind = KIND_OTHER;
}

static int subscriber_main(void *arg)
{
        Subscriber *s = arg;
        smd_bus *bus;
        uint64_t deadline;

        if (smd_bus_open(&bus, sock, s->mask) < 0)
                return 10;
        smd_bus_set_message_handler(bus, on_subscriber_message, s);
        (void) !write(s->ready_fd, "R", 1);
        deadline = harness_now_usec() + 20 * USEC_PER_SEC;
        while (!s->end && harness_now_usec() < deadline)
                if (smd_bus_wait(bus, 100 * USEC_PER_MSEC) < 0)
                        break;
        smd_bus_close(bus);
        for (size_t off = 0; off < s->n * sizeof(Record);) {
                ssize_t n =
                    write(s->records_fd, (uint8_t *) s->records + off, s->n * sizeof(Record) - off);
                if (n <= 0)
                        return 11;
                off += (size_t) n;
        }
        return s->end ? 0 : 12;
}

/* Publish, waiting for the socket when libsmd's queue is full. */
static int publish_all(smd_bus *bus, uint32_t classes, const char *payload, size_t size)
{
        for (;;) {
                int r = smd_bus_publish(bus, classes, payload, size);
                if (r != -ENOBUFS)
                        return r;
                r = smd_bus_wait(bus, 100 * USEC_PER_MSEC);
                if (r < 0)
                        return r;
        }
}

static int publisher_main(void *arg)
{
        int id = (int) (intptr_t) arg;
        smd_bus *bus;
        char payload[64];

        if (smd_bus_open(&bus, sock, 0) < 0)
                return 10;
        for (int seq = 0; seq < N_MESSAGES; seq++) {
                int n = snprintf(payload, sizeof(payload), "{\"p\":%d,\"seq\":%d}", id, seq);
                if (publish_all(bus, publisher_classes[id], payload, (size_t) n) < 0)
                        return 11;
        }
        /* The agent has taken every message once the flush returns. */
        if (smd_bus_flush(bus, 10 * USEC_PER_SEC) < 0)
                return 12;
        smd_bus_close(bus);
        return 0;
}

static int publish_once(uint32_t classes, const char *payload)
{
        smd_bus *bus;
        int r = smd_bus_open(&bus, sock, 0);

        if (r < 0)
                return r;
        r = smd_bus_publish(bus, classes, payload, strlen(payload));
        if (r >= 0)
                r = smd_bus_flush(bus, 5 * USEC_PER_SEC);
        smd_bus_close(bus);
        return r;
}

static ssize_t read_all(int fd, void *buf, size_t size, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;
        size_t have = 0;

        while (have < size) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                uint64_t now = harness_now_usec();
                ssize_t n;

                if (now >= deadline)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int) ((deadline - now) / 1000 + 1)) <= 0)
                        continue;
                n = read(fd, (uint8_t *) buf + have, size - have);
                if (n == 0)
                        break;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                have += (size_t) n;
        }
        return (ssize_t) have;
}

static void check_subscriber(size_t i, const Record *rec, size_t n)
{
        uint32_t mask = subscribers[i].mask;
        const char *name = subscribers[i].name;
        int next[N_PUBLISHERS] = {}, count[N_PUBLISHERS] = {};
        size_t out_of_order = 0, unexpected = 0, wrong_class = 0, states = 0, others = 0;
        uint64_t lost = 0;
        size_t first = 0;

        cmp_int(n, >, 0, "subscriber %s reported what it received", name);
        if (n == 0)
                return;
        if (mask & SMD_CLASS_SYSTEM_STATE) {
                is_int(rec[0].kind, KIND_STATE, "%s: the first message is the retained state",
                       name);
                is_str(rec[0].payload, "{\"state\":\"OPERATIONAL\"}", "%s: and it says OPERATIONAL",
                       name);
                is_int(rec[0].classes, SMD_CLASS_SYSTEM_STATE, "%s: with class system_state", name);
                first = 1;
        }
        for (size_t k = first; k < n; k++) {
                const Record *r = &rec[k];

                lost += r->lost;
                switch ((Kind) r->kind) {
                case KIND_DATA:
                        if (r->publisher < 0 || r->publisher >= N_PUBLISHERS) {
                                others++;
                                break;
                        }
                        if (!(publisher_classes[r->publisher] & mask))
                                unexpected++;
                        if (r->classes != publisher_classes[r->publisher])
                                wrong_class++;
                        if (r->seq != next[r->publisher])
                                out_of_order++;
                        next[r->publisher] = r->seq + 1;
                        count[r->publisher]++;
                        break;
                case KIND_STATE:
                        states++;
                        break;
                case KIND_END:
                        ok(k == n - 1, "%s: the end marker comes last", name);
                        break;
                case KIND_OTHER:
                        others++;
                        break;
                }
        }
        for (int p = 0; p < N_PUBLISHERS; p++)
                is_int(count[p], (publisher_classes[p] & mask) ? N_MESSAGES : 0,
                       "%s: messages from publisher %d", name, p);
        is_int(out_of_order, 0, "%s: each publisher's messages in order, none twice", name);
        is_int(unexpected, 0, "%s: nothing its mask does not select", name);
        is_int(wrong_class, 0, "%s: every message carries its publisher's classes", name);
        is_int(states + others, 0, "%s: nothing else", name);
        is_int(lost, 0, "%s: nothing lost", name);
        is_int(rec[n - 1].kind, KIND_END, "%s: got the end marker", name);
}

static void test_masks(void)
{
        static Subscriber subs[N_SUBSCRIBERS];
        pid_t sub_pids[N_SUBSCRIBERS], pub_pids[N_PUBLISHERS];
        int ready[N_SUBSCRIBERS][2], records[N_SUBSCRIBERS][2];
        static Record got[RECORDS_MAX];
        uint64_t start;

        for (size_t i = 0; i < N_SUBSCRIBERS; i++) {
                if (pipe(ready[i]) < 0 || pipe(records[i]) < 0) {
                        ok(false, "pipe: %s", strerror(errno));
                        return;
                }
                subs[i] = (Subscriber){.mask = subscribers[i].mask,
                                       .ready_fd = ready[i][1],
                                       .records_fd = records[i][1]};
                sub_pids[i] = harness_fork(subscriber_main, &subs[i]);
                close(ready[i][1]);
                close(records[i][1]);
        }
        for (size_t i = 0; i < N_SUBSCRIBERS; i++) {
                char c;
                ok(read_all(ready[i][0], &c, 1, 5000) == 1, "subscriber %s connected",
                   subscribers[i].name);
                close(ready[i][0]);
        }
        ok(wait_participants(sock, (int) N_SUBSCRIBERS, 5000), "the agent counts %zu participants",
           N_SUBSCRIBERS);

        start = harness_now_usec();
        for (int p = 0; p < N_PUBLISHERS; p++)
                pub_pids[p] = harness_fork(publisher_main, (void *) (intptr_t) p);
        for (int p = 0; p < N_PUBLISHERS; p++)
                is_int(harness_wait_pid(pub_pids[p], 20000), 0,
                       "publisher %d published %d messages", p, N_MESSAGES);
        is_int(publish_once(END_CLASSES, "{\"end\":true}"), 0, "publish the end marker");

        for (size_t i = 0; i < N_SUBSCRIBERS; i++) {
                ssize_t n = read_all(records[i][0], got, sizeof(got), 20000);
                int code = harness_wait_pid(sub_pids[i], 5000);

                close(records[i][0]);
                is_int(code, 0, "subscriber %s finished", subscribers[i].name);
                check_subscriber(i, got, n > 0 ? (size_t) n / sizeof(Record) : 0);
        }
        tap_diag("%d publishers x %d messages to %zu subscribers took %.0f ms", N_PUBLISHERS,
                 N_MESSAGES, N_SUBSCRIBERS, (double) (harness_now_usec() - start) / 1000);
}

typedef struct LateJoiner {
        Record records[16];
        size_t n;
} LateJoiner;

static void on_late_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        LateJoiner *j = userdata;
        Record *r;

        if (j->n >= ELEMENTSOF(j->records))
                return;
        r = &j->records[j->n++];
        *r = (Record){.classes = m->classes, .lost = m->lost};
        snprintf(r->payload, sizeof(r->payload), "%.*s", (int) MIN(m->size, 31u), m->payload);
}

static void pump(smd_bus *bus, unsigned ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) ms * 1000;

        while (harness_now_usec() < deadline)
                (void) smd_bus_wait(bus, deadline - harness_now_usec());
}

static void test_late_joiner(void)
{
        RawClient staller;
        smd_bus *pub = NULL, *late = NULL;
        LateJoiner j = {};
        char payload[64];
        int queued = -1, r;

        /*
         * Make a backlog: a user0 participant that never reads, and enough
         * messages to fill its socket so that the rest stay queued in the bus.
         */
        is_int(raw_open_smd(&staller, sock, SMD_CLASS_USER(0)), 0,
               "a user0 client that never reads");
        r = smd_bus_open(&pub, sock, 0);
        is_int(r, 0, "a publisher connects");
        if (r < 0)
                goto out;
        for (int i = 0; i < 6000; i++) {
                int n = snprintf(payload, sizeof(payload), "{\"backlog\":%d}", i);
                if (publish_all(pub, SMD_CLASS_USER(0), payload, (size_t) n) < 0)
                        break;
                /*
                 * In steps, so that the agent delivers between them and the
                 * stalled client's socket fills: one burst larger than the
                 * backlog limit would be trimmed before any delivery.
                 */
                if (i % 250 == 249 && smd_bus_flush(pub, 5 * USEC_PER_SEC) < 0)
                        break;
        }
        is_int(smd_bus_flush(pub, 5 * USEC_PER_SEC), 0, "6000 user0 messages published");
        {
                char *reply = NULL;
                const char *q;

                if (smd_control(sock, "{\"cmd\":\"status\"}", &reply, 2 * USEC_PER_SEC) >= 0 &&
                    (q = strstr(reply, "\"queued_messages\":")))
                        queued = atoi(q + 18);
                free(reply);
        }
        cmp_int(queued, >, 0, "the bus holds a backlog for the stalled client (%d messages)",
                queued);

        r = smd_bus_open(&late, sock, SMD_CLASS_SYSTEM_STATE | SMD_CLASS_USER(0));
        is_int(r, 0, "a late joiner subscribes to system_state and user0");
        if (r < 0)
                goto out;
        smd_bus_set_message_handler(late, on_late_message, &j);
        pump(late, 300);
        is_int(j.n, 1, "it receives exactly one message before anything new is sent");
        if (j.n >= 1) {
                is_str(j.records[0].payload, "{\"state\":\"OPERATIONAL\"}",
                       "the retained system state comes first");
                is_int(j.records[0].classes, SMD_CLASS_SYSTEM_STATE, "on class system_state");
        }
        is_int(publish_once(SMD_CLASS_USER(0), "{\"fresh\":1}"), 0, "publish a new user0 message");
        pump(late, 300);
        is_int(j.n, 2, "the late joiner receives it");
        if (j.n >= 2) {
                is_str(j.records[1].payload, "{\"fresh\":1}", "and it is the new message");
                is_int(j.records[1].lost, 0, "with nothing reported lost");
        }
out:
        smd_bus_close(late);
        smd_bus_close(pub);
        raw_close(&staller);
}

int main(void)
{
        Agent a;

        harness_init(90);
        if (agent_start(&a, NULL)) {
                sock = a.socket_path;
                test_masks();
                test_late_joiner();
                is_int(agent_stop(&a, 5000), 0, "agent exits 0");
                (void) agent_check_log(&a);
        }
        agent_free(&a);
        return harness_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * The bus model: filters, order, no delivery inside send, unheard classes cost
 * nothing, per-participant backlog loss with a count, the global budget, TTL,
 * late joiners and retained state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "message.h"
#include "tap.h"

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *userdata)
{
        return fake_now;
}

static int ready_calls;

static void on_ready(Participant *p, void *userdata)
{
        ready_calls++;
}

/* Pull everything; returns the payloads joined with '|' in buf. */
static int drain(Participant *p, char *buf, size_t size, uint32_t *ret_lost)
{
        BusDelivery d;
        int n = 0;

        buf[0] = 0;
        if (ret_lost)
                *ret_lost = 0;
        while (participant_pull(p, &d) == 1) {
                size_t len = strlen(buf);
                snprintf(buf + len, size - len, "%s%.*s", n ? "|" : "", (int) d.size,
                         (const char *) d.payload);
                if (ret_lost)
                        *ret_lost += d.lost;
                n++;
        }
        return n;
}

static void test_filters_and_order(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *net, *all, *user;
        char buf[256];
        BusStats st;

        ok(bus_new(&bus, NULL, NULL) == 0, "bus created");
        bus_set_clock(bus, fake_clock, NULL);
        participant_new(&net, bus, SMD_CLASS_NETWORK, NULL, NULL);
        participant_new(&all, bus, SMD_CLASS_ALL, NULL, NULL);
        participant_new(&user, bus, SMD_CLASS_USER(0), NULL, NULL);

        is_int(bus_send(bus, SMD_CLASS_NETWORK, "a", 1), 0, "network message queued");
        is_int(bus_send(bus, SMD_CLASS_USER(0), "b", 1), 0, "user0 message queued");
        is_int(bus_send(bus, SMD_CLASS_NETWORK | SMD_CLASS_USER(0), "c", 1), 0,
               "two-class message queued");
        is_int(bus_send(bus, SMD_CLASS_USER(5), "d", 1), 0, "user5 message queued for all");

        drain(net, buf, sizeof(buf), NULL);
        is_str(buf, "a|c", "network participant gets its classes in order");
        drain(all, buf, sizeof(buf), NULL);
        is_str(buf, "a|b|c|d", "all participant gets everything in order");
        drain(user, buf, sizeof(buf), NULL);
        is_str(buf, "b|c", "user0 participant gets user0 messages");
        drain(net, buf, sizeof(buf), NULL);
        is_str(buf, "", "nothing twice");

        bus_get_stats(bus, &st);
        is_int(st.queued_messages, 0, "queue empty once everyone has read");

        is_int(bus_send(bus, 0, "x", 1), -EINVAL, "a message with no class is refused");
        char big[SMD_PAYLOAD_MAX + 1] = {};
        is_int(bus_send(bus, SMD_CLASS_NETWORK, big, sizeof(big)), -EMSGSIZE,
               "385-byte payload refused");
        is_int(bus_send(bus, SMD_CLASS_NETWORK, big, SMD_PAYLOAD_MAX), 0,
               "384-byte payload accepted");
        participant_free(net);
        participant_free(all);
        participant_free(user);
        bus_get_stats(bus, &st);
        is_int(st.queued_messages, 0, "leaving participants release what they did not read");
}

static void test_unheard(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *p;
        BusStats st;

        bus_new(&bus, NULL, NULL);
        participant_new(&p, bus, SMD_CLASS_NETWORK, NULL, NULL);
        is_int(bus_send(bus, SMD_CLASS_METRICS, "m", 1), 1, "a class nobody listens to: 1");
        bus_get_stats(bus, &st);
        is_int(st.queued_messages, 0, "and it takes no queue space");
        is_int(st.unheard, 1, "counted as unheard");
        participant_free(p);
}

static void test_late_joiner_and_retained(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *early, *late;
        char buf[256];
        BusDelivery d;

        bus_new(&bus, NULL, NULL);
        participant_new(&early, bus, SMD_CLASS_ALL, NULL, NULL);
        bus_send_retained(bus, "state", SMD_CLASS_SYSTEM_STATE, "S1", 2);
        bus_send(bus, SMD_CLASS_NETWORK, "backlog", 7);
        bus_send_retained(bus, "state", SMD_CLASS_SYSTEM_STATE, "S2", 2);
        bus_send_retained(bus, "link/eth0", SMD_CLASS_NETWORK, "L", 1);

        participant_new(&late, bus, SMD_CLASS_SYSTEM_STATE | SMD_CLASS_NETWORK, NULL, NULL);
        ok(participant_pull(late, &d) == 1 && d.retained && d.size == 2 &&
               memcmp(d.payload, "S2", 2) == 0,
           "late joiner first gets the last retained system state");
        ok(participant_pull(late, &d) == 1 && d.retained && d.size == 1, "then the link topic");
        is_int(participant_pull(late, &d), 0, "and none of the backlog queued before it joined");
        bus_send(bus, SMD_CLASS_NETWORK, "new", 3);
        drain(late, buf, sizeof(buf), NULL);
        is_str(buf, "new", "then new messages");

        drain(early, buf, sizeof(buf), NULL);
        is_str(buf, "S1|backlog|S2|L|new", "the early participant saw every message once");

        bus_send_retained(bus, "link/eth0", 0, NULL, 0);
        participant_free(late);
        participant_new(&late, bus, SMD_CLASS_NETWORK, NULL, NULL);
        is_int(participant_pull(late, &d), 0, "a cleared topic is not retained any more");
        participant_free(late);
        participant_new(&late, bus, SMD_CLASS_USER(1), NULL, NULL);
        is_int(participant_pull(late, &d), 0, "retained state is filtered by class");
        participant_free(late);
        participant_free(early);
}

static void test_backlog_loss(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        BusLimits l;
        Participant *slow, *fast;
        char buf[1024];
        uint32_t lost;
        int good = 0;

        bus_limits_default(&l);
        l.backlog_max = 4;
        bus_new(&bus, NULL, &l);
        participant_new(&slow, bus, SMD_CLASS_USER(0), NULL, NULL);
        participant_new(&fast, bus, SMD_CLASS_USER(0), NULL, NULL);
        for (int i = 0; i < 10; i++) {
                char m[8];
                snprintf(m, sizeof(m), "%d", i);
                bus_send(bus, SMD_CLASS_USER(0), m, strlen(m));
                if (drain(fast, buf, sizeof(buf), &lost) == 1 && lost == 0 && strcmp(buf, m) == 0)
                        good++;
        }
        is_int(good, 10, "a participant that keeps up loses nothing while another stalls");
        is_int(participant_backlog(slow), 4, "the stalled participant holds only its limit");
        drain(slow, buf, sizeof(buf), &lost);
        is_str(buf, "6|7|8|9", "it keeps the newest messages");
        is_int(lost, 6, "and the first one it gets says 6 were lost");
        is_int(participant_get_lost_total(slow), 6, "lost total");
        participant_free(slow);
        participant_free(fast);
}

static void test_global_budget(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        BusLimits l;
        Participant *a;
        BusStats st;
        char buf[1024];
        uint32_t lost;

        bus_limits_default(&l);
        l.queue_max_messages = 3;
        bus_new(&bus, NULL, &l);
        participant_new(&a, bus, SMD_CLASS_ALL, NULL, NULL);
        for (int i = 0; i < 5; i++)
                bus_send(bus, SMD_CLASS_NETWORK, "x", 1);
        bus_get_stats(bus, &st);
        is_int(st.queued_messages, 3, "the global message budget holds");
        drain(a, buf, sizeof(buf), &lost);
        is_int(lost, 2, "the reader is told it lost the two oldest");

        l.queue_max_messages = 100;
        l.queue_max_bytes = 10;
        bus_set_limits(bus, &l);
        for (int i = 0; i < 5; i++)
                bus_send(bus, SMD_CLASS_NETWORK, "abcd", 4);
        bus_get_stats(bus, &st);
        cmp_int(st.queued_bytes, <=, 10, "the global byte budget holds");
        participant_free(a);
}

static void test_ttl(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *a;
        char buf[256];
        uint32_t lost;

        bus_new(&bus, NULL, NULL);
        bus_set_clock(bus, fake_clock, NULL);
        participant_new(&a, bus, SMD_CLASS_ALL, NULL, NULL);
        bus_send(bus, SMD_CLASS_NETWORK, "old", 3);
        fake_now += 1500000;
        bus_send(bus, SMD_CLASS_NETWORK, "new", 3);
        fake_now += 600000;
        drain(a, buf, sizeof(buf), &lost);
        is_str(buf, "new", "an unread message older than the 2 s TTL is not delivered");
        is_int(lost, 1, "and counts as lost");
        participant_free(a);
}

static void test_deferred(void)
{
        sd_event *e = NULL;
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *a, *b;

        sd_event_new(&e);
        bus_new(&bus, e, NULL);
        participant_new(&a, bus, SMD_CLASS_NETWORK, on_ready, NULL);
        participant_new(&b, bus, SMD_CLASS_USER(0), on_ready, NULL);
        ready_calls = 0;
        bus_send(bus, SMD_CLASS_NETWORK, "x", 1);
        bus_send(bus, SMD_CLASS_NETWORK, "y", 1);
        is_int(ready_calls, 0, "no delivery happens inside the send call");
        sd_event_run(e, 0);
        is_int(ready_calls, 1, "the matching participant is woken once for two messages");
        sd_event_run(e, 0);
        is_int(ready_calls, 1, "and not again while nothing new arrives");
        participant_free(a);
        participant_free(b);
        bus = bus_free(bus);
        sd_event_unref(e);
}

static void test_sender_receives_own(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        Participant *a;
        char buf[64];

        bus_new(&bus, NULL, NULL);
        participant_new(&a, bus, SMD_CLASS_INTERACTION, NULL, NULL);
        bus_send(bus, SMD_CLASS_INTERACTION, "self", 4);
        drain(a, buf, sizeof(buf), NULL);
        is_str(buf, "self", "a participant whose filter matches gets what it sent");
        participant_free(a);
}

static void test_participants_max(void)
{
        _cleanup_(bus_freep) Bus *bus = NULL;
        BusLimits l;
        Participant *a, *b;

        bus_limits_default(&l);
        l.participants_max = 1;
        bus_new(&bus, NULL, &l);
        is_int(participant_new(&a, bus, 1, NULL, NULL), 0, "first participant joins");
        is_int(participant_new(&b, bus, 1, NULL, NULL), -EUSERS, "the limit refuses the second");
        participant_free(a);
}

int main(void)
{
        tap_init();
        test_filters_and_order();
        test_unheard();
        test_late_joiner_and_retained();
        test_backlog_loss();
        test_global_budget();
        test_ttl();
        test_deferred();
        test_sender_receives_own();
        test_participants_max();
        return tap_done();
}

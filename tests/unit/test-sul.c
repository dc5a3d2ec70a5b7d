/* SPDX-License-Identifier: MIT */
/*
 * The two-list timer scheduler: the pure core on a fake clock (ordering, equal
 * deadlines, rescheduling, cancel from callbacks, both lists, earliest wake),
 * then the sd-event glue with real short timers on a private event loop,
 * including the fall back from CLOCK_BOOTTIME_ALARM to CLOCK_BOOTTIME.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sul.h"
#include "tap.h"
#include "util.h"

/* What fired, in order, as a string of timer names. */
static char fired[256];

static void fired_reset(void)
{
        fired[0] = '\0';
}

typedef struct Probe {
        Timer timer;
        char name;
        Scheduler *scheduler;
        Timer *other;        /* cancelled or scheduled by the callback */
        uint64_t reschedule; /* if not 0, re-arm itself at this deadline */
        unsigned count;
} Probe;

static void probe_record(Probe *p)
{
        size_t n = strlen(fired);

        if (n + 1 < sizeof(fired)) {
                fired[n] = p->name;
                fired[n + 1] = '\0';
        }
        p->count++;
}

static void on_record(Timer *t, void *userdata)
{
        Probe *p = userdata;

        ok(t == &p->timer, "callback gets its own timer");
        ok(!timer_is_armed(t), "a firing timer is no longer armed");
        probe_record(p);
}

static void probe_init(Probe *p, char name, TimerCallback cb)
{
        *p = (Probe){.name = name};
        timer_init(&p->timer, cb, p);
}

static uint64_t fake_now;

static uint64_t fake_clock(clockid_t clock, void *userdata)
{
        ok(clock == CLOCK_MONOTONIC || clock == CLOCK_BOOTTIME, "clock asked in a time base");
        return fake_now + (clock == CLOCK_BOOTTIME ? *(uint64_t *) userdata : 0);
}

static void test_ordering(void)
{
        Scheduler *s;
        Probe a, b, c, d;

        is_int(scheduler_new(&s, NULL), 0, "pure scheduler created");
        probe_init(&a, 'a', on_record);
        probe_init(&b, 'b', on_record);
        probe_init(&c, 'c', on_record);
        probe_init(&d, 'd', on_record);

        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), UINT64_MAX, "empty list: no deadline");
        is_int(scheduler_schedule_at(s, &c.timer, TIMER_LIST_NORMAL, 30), 0, "schedule c");
        is_int(scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 10), 0, "schedule a");
        is_int(scheduler_schedule_at(s, &b.timer, TIMER_LIST_NORMAL, 20), 0, "schedule b");
        is_int(scheduler_schedule_at(s, &d.timer, TIMER_LIST_NORMAL, 40), 0, "schedule d");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 10, "earliest is a");
        ok(timer_is_armed(&a.timer), "a armed");
        is_int(timer_get_deadline(&b.timer), 20, "b deadline");

        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 9), 0, "nothing due at 9");
        is_str(fired, "", "nothing fired before the first deadline");
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 20), 2, "two due at 20 (inclusive)");
        is_str(fired, "ab", "due timers fire earliest first");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 30, "c is next");
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 1000), 2, "rest due at 1000");
        is_str(fired, "abcd", "all fired in deadline order");
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 2000), 0, "nothing fires twice");
        ok(a.count == 1 && b.count == 1 && c.count == 1 && d.count == 1, "each fired once");
        ok(!timer_is_armed(&d.timer), "fired timer unarmed");
        is_int(timer_get_deadline(&d.timer), UINT64_MAX, "unarmed timer has no deadline");
        scheduler_free(s);
}

static void test_equal_deadlines(void)
{
        Scheduler *s;
        Probe p[6];

        (void) scheduler_new(&s, NULL);
        for (int i = 0; i < 6; i++)
                probe_init(&p[i], (char) ('a' + i), on_record);
        /* a, c, e at 50; b at 10; d at 90; f at 50 again, scheduled last. */
        (void) scheduler_schedule_at(s, &p[0].timer, TIMER_LIST_NORMAL, 50);
        (void) scheduler_schedule_at(s, &p[1].timer, TIMER_LIST_NORMAL, 10);
        (void) scheduler_schedule_at(s, &p[2].timer, TIMER_LIST_NORMAL, 50);
        (void) scheduler_schedule_at(s, &p[3].timer, TIMER_LIST_NORMAL, 90);
        (void) scheduler_schedule_at(s, &p[4].timer, TIMER_LIST_NORMAL, 50);
        (void) scheduler_schedule_at(s, &p[5].timer, TIMER_LIST_NORMAL, 50);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 100), 6, "all six due");
        is_str(fired, "bacefd", "equal deadlines fire in scheduling order");

        /* Rescheduling to the same deadline puts the timer behind its equals. */
        (void) scheduler_schedule_at(s, &p[0].timer, TIMER_LIST_NORMAL, 50);
        (void) scheduler_schedule_at(s, &p[1].timer, TIMER_LIST_NORMAL, 50);
        (void) scheduler_schedule_at(s, &p[0].timer, TIMER_LIST_NORMAL, 50);
        fired_reset();
        (void) scheduler_run_due(s, TIMER_LIST_NORMAL, 50);
        is_str(fired, "ba", "a rescheduled timer queues behind equal deadlines");
        scheduler_free(s);
}

static void test_reschedule_cancel(void)
{
        Scheduler *s;
        Probe a, b, c;

        (void) scheduler_new(&s, NULL);
        probe_init(&a, 'a', on_record);
        probe_init(&b, 'b', on_record);
        probe_init(&c, 'c', on_record);

        timer_cancel(&a.timer);
        ok(!timer_is_armed(&a.timer), "cancelling a never-armed timer is harmless");

        (void) scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 10);
        (void) scheduler_schedule_at(s, &b.timer, TIMER_LIST_NORMAL, 20);
        (void) scheduler_schedule_at(s, &c.timer, TIMER_LIST_NORMAL, 25);
        is_int(scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 30), 0, "move a later");
        is_int(timer_get_deadline(&a.timer), 30, "a has its new deadline");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 20, "b is now first");
        (void) scheduler_schedule_at(s, &c.timer, TIMER_LIST_NORMAL, 5);
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 5, "c moved earlier is first");

        timer_cancel(&b.timer);
        ok(!timer_is_armed(&b.timer), "b cancelled");
        ok(timer_is_armed(&a.timer) && timer_is_armed(&c.timer), "cancel took only b");
        timer_cancel(&b.timer);
        ok(timer_is_armed(&a.timer), "cancelling twice is harmless");

        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 100), 2, "two fire");
        is_str(fired, "ca", "moved timers fire at their new place, cancelled one not at all");
        is_int(a.count, 1, "a rescheduled while armed fires once");
        is_int(b.count, 0, "b never fires");

        /* Cancel the head, then the tail, then the only one. */
        (void) scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 1);
        (void) scheduler_schedule_at(s, &b.timer, TIMER_LIST_NORMAL, 2);
        (void) scheduler_schedule_at(s, &c.timer, TIMER_LIST_NORMAL, 3);
        timer_cancel(&a.timer);
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 2, "head cancelled: b first");
        timer_cancel(&c.timer);
        timer_cancel(&b.timer);
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), UINT64_MAX, "list empty again");
        scheduler_free(s);
}

static void on_cancel_other(Timer *t, void *userdata)
{
        Probe *p = userdata;

        probe_record(p);
        timer_cancel(t); /* its own, already off the list */
        timer_cancel(p->other);
}

static void on_reschedule_self(Timer *t, void *userdata)
{
        Probe *p = userdata;

        probe_record(p);
        if (p->reschedule)
                ok(scheduler_schedule_at(p->scheduler, t, TIMER_LIST_NORMAL, p->reschedule) == 0,
                   "re-arm from own callback");
        if (p->other)
                (void) scheduler_schedule_at(p->scheduler, p->other, TIMER_LIST_NORMAL, 0);
}

static void on_free_self(Timer *t, void *userdata)
{
        Probe *p = userdata;

        probe_record(p);
        free(p);
}

static void test_callbacks(void)
{
        Scheduler *s;
        Probe a, b, c, d, e;
        Probe *heap;

        (void) scheduler_new(&s, NULL);

        /* a cancels b, due at the same time and next in line. */
        probe_init(&a, 'a', on_cancel_other);
        probe_init(&b, 'b', on_record);
        a.other = &b.timer;
        (void) scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 10);
        (void) scheduler_schedule_at(s, &b.timer, TIMER_LIST_NORMAL, 10);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 10), 1, "only a ran");
        is_str(fired, "a", "a due timer cancelled by an earlier callback does not fire");
        ok(!timer_is_armed(&b.timer), "b unarmed");

        /* c re-arms itself for a time already due: it runs once per pass, no loop. */
        probe_init(&c, 'c', on_reschedule_self);
        c.scheduler = s;
        c.reschedule = 5;
        (void) scheduler_schedule_at(s, &c.timer, TIMER_LIST_NORMAL, 5);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 100), 1, "self re-arm: one run per pass");
        ok(timer_is_armed(&c.timer), "c armed again by its callback");
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 100), 1, "and runs in the next pass");
        is_str(fired, "cc", "c ran twice over two passes");
        c.reschedule = 0;
        (void) scheduler_run_due(s, TIMER_LIST_NORMAL, 100);
        ok(!timer_is_armed(&c.timer), "c stops when it does not re-arm");

        /* d, when run, schedules e as already due: e runs in the next pass. */
        probe_init(&d, 'd', on_reschedule_self);
        probe_init(&e, 'e', on_record);
        d.scheduler = s;
        d.other = &e.timer;
        (void) scheduler_schedule_at(s, &d.timer, TIMER_LIST_NORMAL, 7);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 7), 1, "d ran");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 0, "e is armed, due");
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 7), 1, "e ran next pass");
        is_str(fired, "de", "timers scheduled by callbacks run");

        /* A callback may free the memory that embeds its timer. */
        heap = malloc(sizeof(*heap));
        if (!heap)
                abort();
        probe_init(heap, 'h', on_free_self);
        probe_init(&a, 'a', on_record);
        (void) scheduler_schedule_at(s, &heap->timer, TIMER_LIST_NORMAL, 1);
        (void) scheduler_schedule_at(s, &a.timer, TIMER_LIST_NORMAL, 1);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 1), 2, "self-freeing timer and next");
        is_str(fired, "ha", "a timer freed in its callback is not touched afterwards");
        scheduler_free(s);
}

static void test_two_lists(void)
{
        Scheduler *s;
        Probe n1, n2, w1, w2;
        uint64_t boot_offset = 1000000;

        (void) scheduler_new(&s, NULL);
        is_int(scheduler_get_wake_fallback(s), 0, "no event: no fallback");
        is_int(scheduler_get_clock(s, TIMER_LIST_NORMAL), CLOCK_MONOTONIC, "normal: monotonic");
        is_int(scheduler_get_clock(s, TIMER_LIST_WAKE), CLOCK_BOOTTIME_ALARM, "wake: alarm");
        scheduler_set_clock(s, fake_clock, &boot_offset);
        fake_now = 5000;
        is_int(scheduler_now(s, TIMER_LIST_NORMAL), 5000, "fake monotonic now");
        is_int(scheduler_now(s, TIMER_LIST_WAKE), 1005000, "fake boottime now");

        probe_init(&n1, 'n', on_record);
        probe_init(&n2, 'm', on_record);
        probe_init(&w1, 'w', on_record);
        probe_init(&w2, 'v', on_record);
        is_int(scheduler_earliest_wake(s), UINT64_MAX, "no wake deadline yet");
        is_int(scheduler_schedule_in(s, &n1.timer, TIMER_LIST_NORMAL, 100), 0, "n in 100");
        is_int(timer_get_deadline(&n1.timer), 5100, "relative deadline on monotonic");
        (void) scheduler_schedule_in(s, &w1.timer, TIMER_LIST_WAKE, 300);
        is_int(timer_get_deadline(&w1.timer), 1005300, "relative deadline on boottime");
        (void) scheduler_schedule_in(s, &w2.timer, TIMER_LIST_WAKE, 200);
        (void) scheduler_schedule_in(s, &n2.timer, TIMER_LIST_NORMAL, UINT64_MAX);
        is_int(timer_get_deadline(&n2.timer), UINT64_MAX, "an endless delay saturates");
        is_int(scheduler_earliest_wake(s), 1005200, "earliest wake is v");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 5100, "normal earliest unaffected");

        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_NORMAL, 2000000), 1, "normal run: n only");
        is_str(fired, "n", "running the normal list leaves the wake list alone");
        is_int(scheduler_earliest_wake(s), 1005200, "wake list untouched");
        timer_cancel(&w2.timer);
        is_int(scheduler_earliest_wake(s), 1005300, "earliest wake follows cancel");

        /* Moving a timer between lists. */
        (void) scheduler_schedule_at(s, &w1.timer, TIMER_LIST_NORMAL, 10);
        is_int(scheduler_earliest_wake(s), UINT64_MAX, "w moved off the wake list");
        is_int(scheduler_earliest(s, TIMER_LIST_NORMAL), 10, "and onto the normal list");
        (void) scheduler_schedule_at(s, &w1.timer, TIMER_LIST_WAKE, 77);
        fired_reset();
        is_int(scheduler_run_due(s, TIMER_LIST_WAKE, 77), 1, "wake run");
        is_str(fired, "w", "wake list fires its timer");

        /* Freeing the scheduler disarms what is left. */
        (void) scheduler_schedule_at(s, &w1.timer, TIMER_LIST_WAKE, 1);
        ok(timer_is_armed(&n2.timer) && timer_is_armed(&w1.timer), "two still armed");
        scheduler_free(s);
        ok(!timer_is_armed(&n2.timer) && !timer_is_armed(&w1.timer), "free disarms timers");
        timer_cancel(&n2.timer);
        ok(1, "cancel after the scheduler is gone is harmless");
}

/* sd-event glue with real timers. */

typedef struct Live {
        Timer timer;
        char name;
        Scheduler *scheduler;
        TimerList list;
        uint64_t deadline;
        uint64_t fired_at;
        unsigned count;
        unsigned repeat; /* re-arm this many more times, 5 ms apart */
} Live;

static void on_live(Timer *t, void *userdata)
{
        Live *l = userdata;
        size_t n = strlen(fired);

        l->fired_at = scheduler_now(l->scheduler, l->list);
        l->count++;
        if (n + 1 < sizeof(fired)) {
                fired[n] = l->name;
                fired[n + 1] = '\0';
        }
        if (l->repeat > 0) {
                l->repeat--;
                (void) scheduler_schedule_in(l->scheduler, t, l->list, 5 * USEC_PER_MSEC);
        }
}

static int on_guard(sd_event_source *source, uint64_t usec, void *userdata)
{
        return sd_event_exit(sd_event_source_get_event(source), -ETIMEDOUT);
}

static sd_event *live_event;

static void on_last(Timer *t, void *userdata)
{
        on_live(t, userdata);
        (void) sd_event_exit(live_event, 0);
}

static int expected_fallback(void)
{
        sd_event *e = NULL;
        sd_event_source *src = NULL;
        int r;

        if (sd_event_new(&e) < 0)
                return -ENOMEM;
        r = sd_event_add_time(e, &src, CLOCK_BOOTTIME_ALARM, UINT64_MAX, 0, on_guard, NULL);
        sd_event_source_unref(src);
        sd_event_unref(e);
        return r == -EPERM || r == -EOPNOTSUPP ? r : 0;
}

static int live_arm(Scheduler *s, Live *l, char name, TimerList list, uint64_t delay_ms,
                    TimerCallback cb)
{
        int r;

        *l = (Live){.name = name, .scheduler = s, .list = list};
        timer_init(&l->timer, cb, l);
        r = scheduler_schedule_in(s, &l->timer, list, delay_ms * USEC_PER_MSEC);
        l->deadline = timer_get_deadline(&l->timer);
        return r;
}

/* Runs the glue end to end; returns 0 when everything held (for the child). */
static int run_live(bool quiet)
{
        Scheduler *s = NULL;
        sd_event_source *guard = NULL;
        Live n10, w20, n30, x5, r15, end;
        int fallback, r, failures = 0;

#define LIVE_CHECK(cond, ...)                  \
        do {                                   \
                if (quiet)                     \
                        failures += !(cond);   \
                else                           \
                        ok(cond, __VA_ARGS__); \
        } while (0)

        r = sd_event_new(&live_event);
        if (r < 0)
                return 1;
        r = scheduler_new(&s, live_event);
        LIVE_CHECK(r == 0, "scheduler on a private sd_event");
        if (r < 0) {
                live_event = sd_event_unref(live_event);
                return 1;
        }
        fallback = expected_fallback();
        if (!quiet)
                tap_diag("CLOCK_BOOTTIME_ALARM in sd-event: %s",
                         fallback ? strerror(-fallback) : "available");
        LIVE_CHECK(scheduler_get_wake_fallback(s) == fallback,
                   "wake fallback reported as the kernel refused the alarm clock");
        LIVE_CHECK(scheduler_get_clock(s, TIMER_LIST_WAKE) ==
                       (fallback ? CLOCK_BOOTTIME : CLOCK_BOOTTIME_ALARM),
                   "wake list on the alarm clock or CLOCK_BOOTTIME");
        if (quiet) /* the child exists to see the fallback taken without CAP_WAKE_ALARM */
                failures += scheduler_get_wake_fallback(s) != -EPERM &&
                            scheduler_get_wake_fallback(s) != -EOPNOTSUPP;

        /* Guard so that a broken scheduler fails instead of hanging. */
        (void) sd_event_add_time_relative(live_event, &guard, CLOCK_MONOTONIC, 3 * USEC_PER_SEC, 0,
                                          on_guard, NULL);

        fired_reset();
        r = live_arm(s, &n30, 'c', TIMER_LIST_NORMAL, 60, on_live);
        r |= live_arm(s, &w20, 'b', TIMER_LIST_WAKE, 5, on_live);
        r |= live_arm(s, &n10, 'a', TIMER_LIST_NORMAL, 20, on_live);
        r |= live_arm(s, &x5, 'x', TIMER_LIST_NORMAL, 5, on_live);
        r |= live_arm(s, &r15, 'r', TIMER_LIST_WAKE, 80, on_live);
        r |= live_arm(s, &end, 'z', TIMER_LIST_NORMAL, 150, on_last);
        LIVE_CHECK(r == 0, "six timers armed on the event loop");
        r15.repeat = 2; /* r, then twice more 5 ms apart */
        /* Cancel the head of the normal list: its source must move to a. */
        timer_cancel(&x5.timer);
        /* Move the head of the wake list later: its source must follow. */
        LIVE_CHECK(scheduler_schedule_in(s, &w20.timer, TIMER_LIST_WAKE, 40 * USEC_PER_MSEC) == 0,
                   "move b later");
        w20.deadline = timer_get_deadline(&w20.timer);
        LIVE_CHECK(scheduler_earliest_wake(s) == w20.deadline, "earliest wake is b");

        r = sd_event_loop(live_event);
        LIVE_CHECK(r == 0, "loop ended by the last timer, not the guard (%d)", r);
        LIVE_CHECK(streq(fired, "abcrrrz"), "real timers fire in deadline order: %s", fired);
        LIVE_CHECK(x5.count == 0, "cancelled timer never fired");
        LIVE_CHECK(n10.count == 1 && w20.count == 1 && n30.count == 1, "each fired once");
        LIVE_CHECK(r15.count == 3, "self re-arming wake timer fired three times");
        LIVE_CHECK(n10.fired_at >= n10.deadline && n30.fired_at >= n30.deadline &&
                       w20.fired_at >= w20.deadline && end.fired_at >= end.deadline,
                   "nothing fired before its deadline");
        LIVE_CHECK(scheduler_earliest_wake(s) == UINT64_MAX, "wake list empty at the end");

        guard = sd_event_source_disable_unref(guard);
        scheduler_free(s);
        live_event = sd_event_unref(live_event);
        return failures ? 1 : 0;
#undef LIVE_CHECK
}

/* Drops CAP_WAKE_ALARM from this process (the child), as an unprivileged agent runs. */
static int drop_wake_alarm(void)
{
        struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2];

        if (syscall(SYS_capget, &header, data) < 0)
                return -errno;
        data[CAP_TO_INDEX(CAP_WAKE_ALARM)].effective &= ~CAP_TO_MASK(CAP_WAKE_ALARM);
        data[CAP_TO_INDEX(CAP_WAKE_ALARM)].permitted &= ~CAP_TO_MASK(CAP_WAKE_ALARM);
        if (syscall(SYS_capset, &header, data) < 0)
                return -errno;
        return 0;
}

static void test_live(void)
{
        pid_t pid;
        int status = 0;

        ok(run_live(false) == 0, "live run completed");

        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                ok(0, "fork: %s", strerror(errno));
                return;
        }
        if (pid == 0)
                _exit(drop_wake_alarm() < 0 ? 2 : run_live(true));
        (void) waitpid(pid, &status, 0);
        ok(WIFEXITED(status), "child exited");
        is_int(WEXITSTATUS(status), 0,
               "without CAP_WAKE_ALARM the wake list falls back and still fires");
}

int main(void)
{
        tap_init();
        test_ordering();
        test_equal_deadlines();
        test_reschedule_cancel();
        test_callbacks();
        test_two_lists();
        test_live();
        return tap_done();
}

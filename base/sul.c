/* SPDX-License-Identifier: MIT */
/*
 * The two-list timer scheduler. Each list is a doubly linked list sorted by
 * deadline, then by scheduling order; our lists hold tens to hundreds of timers,
 * so a sorted insert is cheap and keeps cancel O(1). The sd-event glue is the
 * last part of this file: one time source per list, re-armed to the head of the
 * list whenever the head may have changed.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "sul.h"
#include "util.h"

typedef struct SchedulerList {
        Scheduler *scheduler;
        TimerList id;
        Timer *head;
        Timer *tail;
        clockid_t clock;     /* what the time source runs on */
        clockid_t time_base; /* what deadlines are measured in */
        sd_event_source *source;
        unsigned running; /* depth of scheduler_run_due() on this list */
} SchedulerList;

struct Scheduler {
        SchedulerList lists[_TIMER_LIST_MAX];
        sd_event *event;
        SchedulerClock clock;
        void *clock_userdata;
        uint64_t next_sequence;
        int wake_fallback;
};

static SchedulerList *scheduler_list(Scheduler *s, TimerList list)
{
        assert(s);
        assert(list >= 0 && list < _TIMER_LIST_MAX);
        return &s->lists[list];
}

static void list_unlink(SchedulerList *l, Timer *t)
{
        if (t->prev)
                t->prev->next = t->next;
        else
                l->head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                l->tail = t->prev;
        t->prev = t->next = NULL;
        t->scheduler = NULL;
}

/* Inserts after every timer with a deadline <= t's, so equal deadlines keep FIFO order. */
static void list_insert(SchedulerList *l, Timer *t)
{
        Timer *after = l->tail;

        /* Most timers are scheduled later than the rest: walk from the tail. */
        while (after && after->deadline > t->deadline)
                after = after->prev;
        t->prev = after;
        t->next = after ? after->next : l->head;
        if (t->next)
                t->next->prev = t;
        else
                l->tail = t;
        if (after)
                after->next = t;
        else
                l->head = t;
}

static int list_arm(SchedulerList *l)
{
        int r;

        if (!l->source || l->running > 0)
                return 0;
        if (!l->head)
                return sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
        r = sd_event_source_set_time(l->source, l->head->deadline);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(l->source, SD_EVENT_ONESHOT);
}

void timer_init(Timer *timer, TimerCallback callback, void *userdata)
{
        assert(timer);
        *timer = (Timer){
            .callback = callback,
            .userdata = userdata,
        };
}

bool timer_is_armed(const Timer *timer)
{
        assert(timer);
        return timer->scheduler != NULL;
}

uint64_t timer_get_deadline(const Timer *timer)
{
        assert(timer);
        return timer->scheduler ? timer->deadline : UINT64_MAX;
}

void timer_cancel(Timer *timer)
{
        SchedulerList *l;
        bool was_head;

        assert(timer);
        if (!timer->scheduler)
                return;
        l = scheduler_list(timer->scheduler, timer->list);
        was_head = l->head == timer;
        list_unlink(l, timer);
        /* A stale arm only costs a wake-up that finds nothing due and re-arms. */
        if (was_head)
                (void) list_arm(l);
}

int scheduler_schedule_at(Scheduler *s, Timer *timer, TimerList list, uint64_t deadline)
{
        SchedulerList *l = scheduler_list(s, list);
        int r;

        assert(timer);
        timer_cancel(timer);
        timer->deadline = deadline;
        timer->list = list;
        timer->sequence = s->next_sequence++;
        timer->scheduler = s;
        list_insert(l, timer);
        if (l->head != timer)
                return 0;
        r = list_arm(l);
        if (r < 0) {
                timer_cancel(timer);
                return r;
        }
        return 0;
}

int scheduler_schedule_in(Scheduler *s, Timer *timer, TimerList list, uint64_t delay)
{
        uint64_t now = scheduler_now(s, list);
        uint64_t deadline = delay > UINT64_MAX - now ? UINT64_MAX : now + delay;

        return scheduler_schedule_at(s, timer, list, deadline);
}

unsigned scheduler_run_due(Scheduler *s, TimerList list, uint64_t now)
{
        SchedulerList *l = scheduler_list(s, list);
        uint64_t limit = s->next_sequence;
        unsigned n = 0;

        l->running++;
        for (;;) {
                Timer *t;

                /*
                 * Callbacks may change the list arbitrarily, so look again from
                 * the head each time; skip what was scheduled during this run.
                 */
                for (t = l->head; t && t->deadline <= now; t = t->next)
                        if (t->sequence < limit)
                                break;
                if (!t || t->deadline > now)
                        break;
                list_unlink(l, t);
                n++;
                if (t->callback)
                        t->callback(t, t->userdata);
                /* t may be gone now. */
        }
        l->running--;
        /* Nothing useful to do on failure here: the next schedule re-arms. */
        (void) list_arm(l);
        return n;
}

uint64_t scheduler_earliest(const Scheduler *s, TimerList list)
{
        assert(s);
        assert(list >= 0 && list < _TIMER_LIST_MAX);
        return s->lists[list].head ? s->lists[list].head->deadline : UINT64_MAX;
}

uint64_t scheduler_earliest_wake(const Scheduler *s)
{
        /* CLOCK_BOOTTIME_ALARM counts in CLOCK_BOOTTIME's time base: no conversion. */
        return scheduler_earliest(s, TIMER_LIST_WAKE);
}

clockid_t scheduler_get_clock(const Scheduler *s, TimerList list)
{
        assert(s);
        assert(list >= 0 && list < _TIMER_LIST_MAX);
        return s->lists[list].clock;
}

int scheduler_get_wake_fallback(const Scheduler *s)
{
        assert(s);
        return s->wake_fallback;
}

void scheduler_set_clock(Scheduler *s, SchedulerClock clock, void *userdata)
{
        assert(s);
        s->clock = clock;
        s->clock_userdata = userdata;
}

uint64_t scheduler_now(Scheduler *s, TimerList list)
{
        SchedulerList *l = scheduler_list(s, list);
        uint64_t now;

        if (s->clock)
                return s->clock(l->time_base, s->clock_userdata);
        /* Within a loop iteration use its cached time, as sd-event's own timers do. */
        if (s->event && sd_event_now(s->event, l->clock, &now) >= 0)
                return now;
        return now_usec(l->time_base);
}

/* sd-event glue. */

static int on_time(sd_event_source *source, uint64_t usec, void *userdata)
{
        SchedulerList *l = userdata;
        Scheduler *s = l->scheduler;
        uint64_t now;

        if (sd_event_now(s->event, l->clock, &now) < 0)
                now = usec;
        (void) scheduler_run_due(s, l->id, MAX(now, usec));
        return 0;
}

static int list_add_source(SchedulerList *l, sd_event *event, clockid_t clock)
{
        int r;

        /* Never fires until armed: an infinite time on a disabled source. */
        r = sd_event_add_time(event, &l->source, clock, UINT64_MAX, SCHEDULER_ACCURACY_USEC,
                              on_time, l);
        if (r < 0)
                return r;
        l->clock = clock;
        r = sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(
            l->source, l->id == TIMER_LIST_WAKE ? "scheduler-wake" : "scheduler-normal");
        return 0;
}

Scheduler *scheduler_free(Scheduler *s)
{
        if (!s)
                return NULL;
        for (int i = _TIMER_LIST_MAX - 1; i >= 0; i--) {
                SchedulerList *l = &s->lists[i];

                while (l->head)
                        list_unlink(l, l->head);
                l->source = sd_event_source_disable_unref(l->source);
        }
        s->event = sd_event_unref(s->event);
        return mfree(s);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Scheduler *, scheduler_free);

int scheduler_new(Scheduler **ret, sd_event *event)
{
        _cleanup_(scheduler_freep) Scheduler *s = NULL;
        int r;

        assert(ret);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        for (int i = 0; i < _TIMER_LIST_MAX; i++)
                s->lists[i] = (SchedulerList){
                    .scheduler = s,
                    .id = (TimerList) i,
                };
        s->lists[TIMER_LIST_NORMAL].clock = s->lists[TIMER_LIST_NORMAL].time_base = CLOCK_MONOTONIC;
        s->lists[TIMER_LIST_WAKE].clock = CLOCK_BOOTTIME_ALARM;
        s->lists[TIMER_LIST_WAKE].time_base = CLOCK_BOOTTIME;

        if (event) {
                s->event = sd_event_ref(event);
                r = list_add_source(&s->lists[TIMER_LIST_NORMAL], event, CLOCK_MONOTONIC);
                if (r < 0)
                        return r;
                r = list_add_source(&s->lists[TIMER_LIST_WAKE], event, CLOCK_BOOTTIME_ALARM);
                if (r == -EPERM || r == -EOPNOTSUPP) {
                        s->wake_fallback = r;
                        r = list_add_source(&s->lists[TIMER_LIST_WAKE], event, CLOCK_BOOTTIME);
                }
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

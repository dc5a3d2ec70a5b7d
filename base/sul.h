/* SPDX-License-Identifier: MIT */
/*
 * The timer scheduler ("sul"): two deadline-ordered lists of embedded timers.
 * The normal list runs on CLOCK_MONOTONIC and so fires late after a suspend;
 * the wake list runs on CLOCK_BOOTTIME_ALARM so that its deadlines wake the
 * machine, or on CLOCK_BOOTTIME where the kernel refuses the alarm clock.
 * Both lists keep their deadlines in the list's time base (CLOCK_MONOTONIC µs,
 * CLOCK_BOOTTIME µs), which is also what scheduler_earliest_wake() answers, so
 * the agent can program an RTC before a suspend.
 *
 * The core (ordering, running what is due) is pure and can be driven by hand
 * with scheduler_run_due(); when the scheduler is given an sd_event it arms
 * exactly one time source per list to the earliest deadline of that list.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <systemd/sd-event.h>

typedef enum TimerList {
        TIMER_LIST_NORMAL,
        TIMER_LIST_WAKE,
        _TIMER_LIST_MAX,
} TimerList;

typedef struct Scheduler Scheduler;
typedef struct Timer Timer;

/*
 * Runs once per firing, after the timer has been taken off its list (so it is
 * not armed). The callback may schedule or cancel any timer, including this
 * one, and may free the memory that embeds this timer: the scheduler does not
 * touch the timer after the callback returns. It must not free the scheduler.
 */
typedef void (*TimerCallback)(Timer *timer, void *userdata);

/* Reads a clock; lets tests run the scheduler on a fake time. */
typedef uint64_t (*SchedulerClock)(clockid_t clock, void *userdata);

/* Embed in the owning object; set up with timer_init(). Fields are private. */
struct Timer {
        TimerCallback callback;
        void *userdata;

        Scheduler *scheduler; /* non-NULL while armed */
        Timer *prev, *next;
        uint64_t deadline;
        uint64_t sequence;
        TimerList list;
};

/* sd-event accuracy of both time sources: timers here are at most ms-exact. */
#define SCHEDULER_ACCURACY_USEC UINT64_C(1000)

/*
 * Creates a scheduler. With event == NULL it only has the pure core: nothing
 * fires unless the caller runs scheduler_run_due(). With an event it adds one
 * time source per list; the wake list falls back to CLOCK_BOOTTIME when the
 * alarm clock is refused with -EPERM or -EOPNOTSUPP (see
 * scheduler_get_wake_fallback()). Other errors are returned.
 */
int scheduler_new(Scheduler **ret, sd_event *event);
/* Disarms every timer still on a list (they may be cancelled again safely). */
Scheduler *scheduler_free(Scheduler *s);

/* Replaces the clock used by scheduler_now() (and so scheduler_schedule_in()). */
void scheduler_set_clock(Scheduler *s, SchedulerClock clock, void *userdata);

/* The clock the list's time source runs on (the wake list: alarm or fallback). */
clockid_t scheduler_get_clock(const Scheduler *s, TimerList list);
/* The time base of the list's deadlines in µs: CLOCK_MONOTONIC or CLOCK_BOOTTIME. */
uint64_t scheduler_now(Scheduler *s, TimerList list);

/*
 * 0 when the wake list runs on CLOCK_BOOTTIME_ALARM (or there is no event),
 * else the -errno the alarm clock was refused with (-EPERM: no CAP_WAKE_ALARM,
 * -EOPNOTSUPP: no RTC); then wake-list timers still fire, but do not wake the
 * machine. Decided once, in scheduler_new(); the caller reports it.
 */
int scheduler_get_wake_fallback(const Scheduler *s);

void timer_init(Timer *timer, TimerCallback callback, void *userdata);

/*
 * Arms timer on list at an absolute deadline (µs in the list's time base), or
 * after a delay from scheduler_now(). An armed timer is moved (also between
 * lists and schedulers). Timers with equal deadlines fire in the order they
 * were scheduled. Returns 0, or -errno if the time source could not be armed,
 * in which case the timer is not armed.
 */
int scheduler_schedule_at(Scheduler *s, Timer *timer, TimerList list, uint64_t deadline);
int scheduler_schedule_in(Scheduler *s, Timer *timer, TimerList list, uint64_t delay);

/* Disarms only this timer; does nothing when it is not armed. */
void timer_cancel(Timer *timer);
bool timer_is_armed(const Timer *timer);
/* The deadline of an armed timer, UINT64_MAX when it is not armed. */
uint64_t timer_get_deadline(const Timer *timer);

/*
 * Runs the callbacks of the timers on list whose deadline is <= now, earliest
 * first. Timers (re)scheduled by those callbacks run in a later call, even if
 * already due, so a timer that re-arms itself for "now" cannot loop. Returns
 * the number of callbacks run.
 */
unsigned scheduler_run_due(Scheduler *s, TimerList list, uint64_t now);

/* Earliest deadline on the list, UINT64_MAX when it is empty. */
uint64_t scheduler_earliest(const Scheduler *s, TimerList list);
/* Earliest wake-list deadline in CLOCK_BOOTTIME µs, UINT64_MAX when none. */
uint64_t scheduler_earliest_wake(const Scheduler *s);

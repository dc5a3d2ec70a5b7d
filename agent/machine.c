/* SPDX-License-Identifier: MIT */
/*
 * The machine as the agent sees it (see machine.h).
 *
 * The state machine steps from the loop, never from inside a hook: the first
 * step runs from an idle event source, so that with socket activation the
 * clients already waiting are accepted (and subscribed) before INITIALIZED is
 * left, and see every state. READY=1 follows that first step: it waits only
 * for what needs no waiting (the kernel's link dump), never for a network, a
 * clock or a policy fetch.
 */
#include "machine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "manager.h"
#include "message.h"
#include "sul.h"
#include "updater.h"

#define TIME_CHECK_INTERVAL_USEC   USEC_PER_SEC
#define SUSPEND_POLL_INTERVAL_USEC (2 * USEC_PER_MSEC)

typedef struct WakeTimer {
        Timer timer;
        Machine *machine;
        unsigned id;
        bool used;
} WakeTimer;

typedef struct ResumeHook {
        void (*fn)(void *userdata);
        void *userdata;
} ResumeHook;

struct Machine {
        Manager *manager;
        NetState *netstate;
        Netlink *netlink;
        Logind *logind;
        SystemState state;
        sd_event_source *first_step;
        sd_event_source *release;
        Timer time_check;
        uint64_t time_sync_wait_usec;
        uint64_t time_wait_start;
        bool time_wait_started, time_wait_over;
        bool ready_sent;
        bool usable_route;
        const char *connectivity;
        bool cpd; /* captive portal detection is on: only "ok" means online */
        bool suspending;
        uint64_t suspend_start;
        bool told_wake_unavailable, told_retained_full;
        WakeTimer wake[MACHINE_WAKE_TIMERS_MAX];
        unsigned next_wake_id;
        ResumeHook hooks[MACHINE_RESUME_HOOKS_MAX];
        size_t n_hooks;
        ResumeHook network_hook;
        MachineStats stats;
};

static void machine_step(Machine *mc);

/* Publishing. */

static void publish_connectivity(Machine *mc)
{
        char buf[128];
        int n = snprintf(buf, sizeof(buf),
                         "{\"type\":\"connectivity\",\"state\":\"%s\",\"route\":%s,\"cpd\":%s}",
                         mc->connectivity, mc->usable_route ? "true" : "false",
                         mc->cpd ? "true" : "false");
        int r =
            bus_send_retained(mc->manager->bus, "connectivity", SMD_CLASS_NETWORK, buf, (size_t) n);

        if (r < 0)
                log_warning_errno(r, "failed to publish connectivity: %m");
}

static void publish_sleep_event(Machine *mc, const char *name)
{
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"state\":\"%s\"}", name);
        int r = bus_send(mc->manager->bus, SMD_CLASS_SYSTEM_STATE, buf, (size_t) n);

        if (r < 0)
                log_warning_errno(r, "failed to publish %s: %m", name);
}

static void emit_network(const char *topic, const char *json, size_t size, void *userdata)
{
        Machine *mc = userdata;
        Bus *bus = mc->manager->bus;
        int r;

        if (!topic) {
                r = bus_send(bus, SMD_CLASS_NETWORK, json, size);
        } else {
                r = bus_send_retained(bus, topic, SMD_CLASS_NETWORK, json, size);
                if (r == -ENOSPC) {
                        if (!mc->told_retained_full)
                                log_warning("the bus has no room for more retained topics: "
                                            "late joiners will not see %s",
                                            topic);
                        mc->told_retained_full = true;
                        r = bus_send(bus, SMD_CLASS_NETWORK, json, size);
                }
        }
        if (r < 0)
                log_debug_errno(r, "failed to publish a network message: %m");
}

/* Netlink. */

static void update_route(Machine *mc)
{
        bool usable = netstate_has_usable_route(mc->netstate);

        if (usable == mc->usable_route)
                return;
        mc->usable_route = usable;
        log_info("%s", usable ? "a usable default route exists" : "no usable default route left");
        publish_connectivity(mc);
}

static void on_netlink_changed(void *userdata)
{
        Machine *mc = userdata;

        (void) netstate_flush(mc->netstate, emit_network, mc);
        update_route(mc);
        machine_step(mc);
        if (mc->network_hook.fn)
                mc->network_hook.fn(mc->network_hook.userdata);
}

int machine_set_network_hook(Machine *mc, void (*fn)(void *userdata), void *userdata)
{
        mc->network_hook = (ResumeHook){fn, userdata};
        return 0;
}

bool machine_is_coldplugged(const Machine *mc)
{
        return !mc->netlink || netlink_coldplug_done(mc->netlink);
}

void machine_set_connectivity(Machine *mc, const char *connectivity)
{
        if (streq(mc->connectivity, connectivity))
                return;
        mc->connectivity = connectivity;
        publish_connectivity(mc);
}

void machine_set_cpd(Machine *mc, bool on)
{
        if (mc->cpd == on)
                return;
        mc->cpd = on;
        publish_connectivity(mc);
}

/* The state machine. */

static void time_wait_check(Machine *mc, StateInputs *in)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        in->clock_synchronized = clock_is_synchronized();
        if (in->clock_synchronized || mc->time_wait_over)
                return;
        if (!mc->time_wait_started) {
                mc->time_wait_started = true;
                mc->time_wait_start = now;
                if (mc->time_sync_wait_usec == 0) {
                        mc->time_wait_over = true;
                        log_info("the clock is not synchronised; not waiting for it "
                                 "(--time-sync-wait 0)");
                } else if (!clock_sync_service_running()) {
                        mc->time_wait_over = true;
                        log_info("the clock is not synchronised and no time synchronisation "
                                 "service runs: taking the clock as it is");
                } else
                        log_info("waiting up to %" PRIu64 " s for the clock to be synchronised",
                                 mc->time_sync_wait_usec / USEC_PER_SEC);
        } else if (now - mc->time_wait_start >= mc->time_sync_wait_usec) {
                mc->time_wait_over = true;
                log_notice("the clock is still not synchronised after %" PRIu64
                           " s: going on without",
                           mc->time_sync_wait_usec / USEC_PER_SEC);
        }
        in->time_wait_over = mc->time_wait_over;
        if (!mc->time_wait_over)
                (void) scheduler_schedule_in(mc->manager->scheduler, &mc->time_check,
                                             TIMER_LIST_NORMAL, TIME_CHECK_INTERVAL_USEC);
}

static void gather_inputs(Machine *mc, StateInputs *in)
{
        *in = (StateInputs){
            .coldplug_done = netlink_coldplug_done(mc->netlink),
            .netlink_active = netlink_is_active(mc->netlink),
            .usable_route = mc->usable_route,
            /* Captive portal detection comes later: nothing to wait for yet. */
            .cpd_pre_time_done = true,
            .cpd_post_time_done = true,
            .time_wait_over = mc->time_wait_over,
        };
        /* The first policy fetch starts when POLICY_VALID is next (updater.h). */
        if (mc->state + 1 == SYSTEM_STATE_POLICY_VALID && mc->manager->updater)
                in->policy_fetch_pending = updater_gate_pending(mc->manager->updater);
        /* The clock matters only while TIME_VALID is next; reading it costs a syscall. */
        if (mc->state + 1 == SYSTEM_STATE_TIME_VALID)
                time_wait_check(mc, in);
}

static void machine_step(Machine *mc)
{
        /* Not before the first idle step: waiting clients must be subscribed first. */
        if (!mc->ready_sent)
                return;
        for (;;) {
                StateInputs in;
                SystemState next;

                gather_inputs(mc, &in);
                next = states_next(mc->state, &in);
                if (next == _SYSTEM_STATE_INVALID)
                        break;
                mc->state = next;
                manager_set_state(mc->manager, system_state_to_string(next));
        }
        if (mc->state >= SYSTEM_STATE_TIME_VALID)
                timer_cancel(&mc->time_check);
}

void machine_recheck(Machine *machine)
{
        machine_step(machine);
}

static void on_time_check(Timer *t, void *userdata)
{
        machine_step(userdata);
}

static int on_first_step(sd_event_source *s, void *userdata)
{
        Machine *mc = userdata;

        mc->ready_sent = true;
        machine_step(mc);
        {
                (void) sd_notifyf(false, "READY=1\nSTATUS=%s; listening on %s",
                                  system_state_to_string(mc->state), mc->manager->socket_path);
        }
        mc->first_step = sd_event_source_disable_unref(mc->first_step);
        return 0;
}

/* Suspend and resume. */

static void arm_wake(Machine *mc)
{
        Scheduler *s = mc->manager->scheduler;
        uint64_t deadline = scheduler_earliest_wake(s), now = now_usec(CLOCK_BOOTTIME);
        int r;

        if (deadline == UINT64_MAX)
                return;
        if (scheduler_get_wake_fallback(s) == 0) {
                log_info("the alarm clock wakes the machine in %" PRIu64 " s",
                         (deadline > now ? deadline - now : 0) / USEC_PER_SEC);
                return;
        }
        r = wakealarm_program(deadline);
        if (r >= 0) {
                log_info("RTC wake alarm set for %" PRIu64 " s from now",
                         (deadline > now ? deadline - now : 0) / USEC_PER_SEC);
                return;
        }
        if (r == -ENOENT || r == -EOPNOTSUPP) {
                if (!mc->told_wake_unavailable)
                        log_info("wake-up from suspend is unavailable: no alarm clock and no RTC "
                                 "wake alarm; timers fire after the resume");
                mc->told_wake_unavailable = true;
                return;
        }
        log_warning_errno(r, "failed to program the RTC wake alarm: %m");
}

static uint64_t release_deadline(Machine *mc)
{
        uint64_t max = logind_get_inhibit_delay_max(mc->logind);

        /* Leave logind half its delay; never more than our own cap. */
        if (max != USEC_INFINITY)
                return MIN(MACHINE_SUSPEND_FLUSH_MAX_USEC, max / 2);
        return MACHINE_SUSPEND_FLUSH_MAX_USEC;
}

static void release_now(Machine *mc, bool flushed)
{
        mc->stats.last_release_usec = now_usec(CLOCK_MONOTONIC) - mc->suspend_start;
        (void) sd_event_source_set_enabled(mc->release, SD_EVENT_OFF);
        if (!logind_has_inhibitor(mc->logind))
                return;
        logind_release_inhibitor(mc->logind);
        log_info("sleep inhibitor released after %" PRIu64 " ms (%s)",
                 mc->stats.last_release_usec / USEC_PER_MSEC,
                 flushed ? "participants have the message" : "a participant is not reading");
}

static void add_backlog(Client *c, Participant *p, void *userdata)
{
        uint64_t *total = userdata;

        *total += participant_backlog(p);
}

static int on_release_poll(sd_event_source *s, uint64_t usec, void *userdata)
{
        Machine *mc = userdata;
        uint64_t backlog = 0;

        /* Every participant has pulled its messages into its socket: it can read them later. */
        server_foreach_participant(mc->manager->server, add_backlog, &backlog);
        if (backlog == 0) {
                release_now(mc, true);
                return 0;
        }
        if (now_usec(CLOCK_MONOTONIC) - mc->suspend_start >= release_deadline(mc)) {
                release_now(mc, false);
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, SUSPEND_POLL_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void on_prepare_for_sleep(bool start, void *userdata)
{
        Machine *mc = userdata;

        if (start) {
                mc->suspending = true;
                mc->suspend_start = now_usec(CLOCK_MONOTONIC);
                mc->stats.suspends++;
                publish_sleep_event(mc, "SUSPENDING");
                arm_wake(mc);
                /* Delivery happens from the loop: look again shortly. */
                (void) sd_event_source_set_time_relative(mc->release, SUSPEND_POLL_INTERVAL_USEC);
                (void) sd_event_source_set_enabled(mc->release, SD_EVENT_ONESHOT);
                return;
        }
        (void) sd_event_source_set_enabled(mc->release, SD_EVENT_OFF);
        mc->suspending = false;
        mc->stats.resumes++;
        publish_sleep_event(mc, "RESUMED");
        mc->connectivity = "unknown";
        publish_connectivity(mc);
        for (size_t i = 0; i < mc->n_hooks; i++)
                mc->hooks[i].fn(mc->hooks[i].userdata);
}

int machine_add_resume_hook(Machine *mc, void (*fn)(void *userdata), void *userdata)
{
        if (mc->n_hooks >= MACHINE_RESUME_HOOKS_MAX)
                return -ENOSPC;
        mc->hooks[mc->n_hooks++] = (ResumeHook){fn, userdata};
        return 0;
}

/* Wake timers. */

static void on_wake_timer(Timer *t, void *userdata)
{
        WakeTimer *w = userdata;
        Machine *mc = w->machine;
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"type\":\"wakeup\",\"id\":%u}", w->id);

        w->used = false;
        mc->stats.wakeups++;
        log_info("wake timer %u fired", w->id);
        (void) bus_send(mc->manager->bus, SMD_CLASS_SYSTEM_STATE, buf, (size_t) n);
}

int machine_add_wake_timer(Machine *mc, uint64_t delay_usec)
{
        for (size_t i = 0; i < MACHINE_WAKE_TIMERS_MAX; i++) {
                WakeTimer *w = &mc->wake[i];
                int r;

                if (w->used)
                        continue;
                timer_init(&w->timer, on_wake_timer, w);
                w->machine = mc;
                r = scheduler_schedule_in(mc->manager->scheduler, &w->timer, TIMER_LIST_WAKE,
                                          delay_usec);
                if (r < 0)
                        return r;
                w->used = true;
                w->id = ++mc->next_wake_id;
                return (int) w->id;
        }
        return -EBUSY;
}

unsigned machine_n_wake_timers(const Machine *mc)
{
        unsigned n = 0;

        for (size_t i = 0; i < MACHINE_WAKE_TIMERS_MAX; i++)
                n += mc->wake[i].used;
        return n;
}

/* Life cycle. */

static void report_wake_clock(Machine *mc)
{
        int fallback = scheduler_get_wake_fallback(mc->manager->scheduler);
        const char *rtc = wakealarm_path();

        if (fallback == 0)
                return;
        log_info_errno(fallback,
                       "wake-list timers run on CLOCK_BOOTTIME: the alarm clock is refused (%m)%s",
                       rtc ? "; the RTC wake alarm is programmed before a suspend"
                           : "; there is no RTC wake alarm either, so timers cannot wake the "
                             "machine");
}

int machine_new(Machine **ret, Manager *m, uint64_t time_sync_wait_usec)
{
        _cleanup_(machine_freep) Machine *mc = NULL;
        int r;

        mc = calloc(1, sizeof(*mc));
        if (!mc)
                return -ENOMEM;
        mc->manager = m;
        mc->state = SYSTEM_STATE_INITIALIZED;
        mc->connectivity = "unknown";
        mc->time_sync_wait_usec = time_sync_wait_usec;
        timer_init(&mc->time_check, on_time_check, mc);
        r = netstate_new(&mc->netstate);
        if (r < 0)
                return r;
        r = sd_event_add_time(m->event, &mc->release, CLOCK_MONOTONIC, UINT64_MAX, 1,
                              on_release_poll, mc);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(mc->release, SD_EVENT_OFF);
        (void) sd_event_source_set_description(mc->release, "suspend-release");
        report_wake_clock(mc);
        publish_connectivity(mc);
        *ret = TAKE_PTR(mc);
        return 0;
}

int machine_start(Machine *mc)
{
        static const LogindHandlers logind_handlers = {.prepare_for_sleep = on_prepare_for_sleep};
        static const NetlinkHandlers netlink_handlers = {.changed = on_netlink_changed};
        sd_event *event = mc->manager->event;
        int r;

        r = logind_new(&mc->logind, event, &logind_handlers, mc);
        if (r < 0)
                return log_error_errno(r, "failed to set up the suspend hook: %m");
        r = netlink_new(&mc->netlink, event, mc->netstate, &netlink_handlers, mc);
        if (r < 0)
                return log_error_errno(r, "failed to set up netlink: %m");
        r = sd_event_add_defer(event, &mc->first_step, on_first_step, mc);
        if (r < 0)
                return log_error_errno(r, "failed to schedule the first state step: %m");
        /* Idle: after the waiting clients were accepted and the link dump was read. */
        (void) sd_event_source_set_priority(mc->first_step, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_description(mc->first_step, "first-state-step");
        return 0;
}

Machine *machine_free(Machine *mc)
{
        if (!mc)
                return NULL;
        for (size_t i = 0; i < MACHINE_WAKE_TIMERS_MAX; i++)
                if (mc->wake[i].used)
                        timer_cancel(&mc->wake[i].timer);
        timer_cancel(&mc->time_check);
        sd_event_source_disable_unref(mc->first_step);
        sd_event_source_disable_unref(mc->release);
        netlink_free(mc->netlink);
        logind_free(mc->logind);
        netstate_free(mc->netstate);
        return mfree(mc);
}

SystemState machine_get_state(const Machine *mc)
{
        return mc->state;
}

const char *machine_get_connectivity(const Machine *mc)
{
        return mc->connectivity;
}

bool machine_has_usable_route(const Machine *mc)
{
        return mc->usable_route;
}

bool machine_is_suspending(const Machine *mc)
{
        return mc->suspending;
}

const NetState *machine_get_netstate(const Machine *mc)
{
        return mc->netstate;
}

const Netlink *machine_get_netlink(const Machine *mc)
{
        return mc->netlink;
}

const Logind *machine_get_logind(const Machine *mc)
{
        return mc->logind;
}

void machine_get_stats(const Machine *mc, MachineStats *ret)
{
        *ret = mc->stats;
}

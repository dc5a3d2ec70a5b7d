/* SPDX-License-Identifier: MIT */
/*
 * The real suspend hook (see platform.h): systemd-logind over the system bus
 * with sd-bus, attached to the agent's sd-event loop. Every bus call is
 * asynchronous so that a slow or absent logind never stalls the agent.
 *
 * We hold a "sleep" inhibitor in "delay" mode: logind then waits for us (up
 * to its InhibitDelayMaxUSec) before suspending, after sending
 * PrepareForSleep(true). The manager closes the inhibitor when it is done;
 * after PrepareForSleep(false) we take a new one.
 *
 * No system bus: we retry with a backoff and say so once. logind missing
 * from the bus: we wait for its name to appear (NameOwnerChanged), and take
 * a new inhibitor when it restarts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "platform.h"

#define LOGIND_SERVICE       "org.freedesktop.login1"
#define LOGIND_PATH          "/org/freedesktop/login1"
#define LOGIND_MANAGER       "org.freedesktop.login1.Manager"
#define RECONNECT_FIRST_USEC (1 * USEC_PER_SEC)
#define RECONNECT_MAX_USEC   (30 * USEC_PER_SEC)

struct Logind {
        sd_event *event;
        LogindHandlers handlers;
        void *userdata;
        sd_bus *bus;
        sd_bus_slot *match_sleep, *match_owner, *match_disconnected;
        sd_bus_slot *inhibit_call, *property_call;
        sd_event_source *reconnect;
        uint64_t reconnect_delay;
        int inhibit_fd;
        LogindState state;
        uint64_t delay_max;
        bool told_no_bus, told_no_service;
};

const char *logind_state_to_string(LogindState s)
{
        switch (s) {
        case LOGIND_DISABLED:
                return "disabled";
        case LOGIND_NO_BUS:
                return "no-bus";
        case LOGIND_NO_SERVICE:
                return "no-logind";
        case LOGIND_CONNECTED:
                return "connected";
        }
        return "unknown";
}

static void disconnect(Logind *l)
{
        l->inhibit_call = sd_bus_slot_unref(l->inhibit_call);
        l->property_call = sd_bus_slot_unref(l->property_call);
        l->match_sleep = sd_bus_slot_unref(l->match_sleep);
        l->match_owner = sd_bus_slot_unref(l->match_owner);
        l->match_disconnected = sd_bus_slot_unref(l->match_disconnected);
        l->bus = sd_bus_flush_close_unref(l->bus);
        l->inhibit_fd = safe_close(l->inhibit_fd);
}

static void schedule_reconnect(Logind *l)
{
        (void) sd_event_source_set_time_relative(l->reconnect, l->reconnect_delay);
        (void) sd_event_source_set_enabled(l->reconnect, SD_EVENT_ONESHOT);
        l->reconnect_delay = MIN(l->reconnect_delay * 2, RECONNECT_MAX_USEC);
}

static int on_property_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;
        uint64_t v;
        int r;

        l->property_call = sd_bus_slot_unref(l->property_call);
        if (sd_bus_message_is_method_error(m, NULL)) {
                /* Optional: the test mock, for one, does not have it. */
                log_debug("logind has no InhibitDelayMaxUSec (%s)",
                          sd_bus_message_get_error(m)->message);
                return 0;
        }
        r = sd_bus_message_read(m, "v", "t", &v);
        if (r < 0) {
                log_debug_errno(r, "logind's InhibitDelayMaxUSec is not a uint64: %m");
                return 0;
        }
        l->delay_max = v;
        log_debug("logind delays a suspend for us by at most %" PRIu64 " ms", v / USEC_PER_MSEC);
        return 0;
}

static int on_inhibit_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;
        const sd_bus_error *e;
        int fd, r;

        l->inhibit_call = sd_bus_slot_unref(l->inhibit_call);
        e = sd_bus_message_get_error(m);
        if (e) {
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                           SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                        l->state = LOGIND_NO_SERVICE;
                        if (!l->told_no_service)
                                log_info("logind is not on the system bus: suspend and resume "
                                         "are not watched until it appears");
                        l->told_no_service = true;
                        return 0;
                }
                log_warning("logind refused a sleep delay inhibitor: %s", e->message);
                return 0;
        }
        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0) {
                log_warning_errno(r, "logind's Inhibit reply has no file descriptor: %m");
                return 0;
        }
        safe_close(l->inhibit_fd);
        l->inhibit_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (l->inhibit_fd < 0)
                return log_warning_errno(errno, "failed to keep the inhibitor fd: %m"), 0;
        if (l->state != LOGIND_CONNECTED)
                log_info("logind: holding a sleep delay inhibitor");
        l->state = LOGIND_CONNECTED;
        l->told_no_service = false;
        if (!l->property_call)
                (void) sd_bus_call_method_async(l->bus, &l->property_call, LOGIND_SERVICE,
                                                LOGIND_PATH, "org.freedesktop.DBus.Properties",
                                                "Get", on_property_reply, l, "ss", LOGIND_MANAGER,
                                                "InhibitDelayMaxUSec");
        return 0;
}

static void take_inhibitor(Logind *l)
{
        int r;

        if (!l->bus || l->inhibit_fd >= 0 || l->inhibit_call)
                return;
        r = sd_bus_call_method_async(
            l->bus, &l->inhibit_call, LOGIND_SERVICE, LOGIND_PATH, LOGIND_MANAGER, "Inhibit",
            on_inhibit_reply, l, "ssss", "sleep", "smdagent",
            "tell bus participants and arm wake-ups before a suspend", "delay");
        if (r < 0)
                log_warning_errno(r, "failed to ask logind for an inhibitor: %m");
}

static int on_prepare_for_sleep(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;
        int start, r;

        r = sd_bus_message_read(m, "b", &start);
        if (r < 0) {
                log_warning_errno(r, "logind sent a malformed PrepareForSleep: %m");
                return 0;
        }
        log_info("logind: %s", start ? "preparing for sleep" : "resumed");
        if (!start)
                take_inhibitor(l);
        if (l->handlers.prepare_for_sleep)
                l->handlers.prepare_for_sleep(start, l->userdata);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
            !streq(name, LOGIND_SERVICE))
                return 0;
        if (*new_owner) {
                log_info("logind appeared on the system bus");
                l->inhibit_fd = safe_close(l->inhibit_fd);
                take_inhibitor(l);
        } else {
                log_info("logind left the system bus");
                l->inhibit_fd = safe_close(l->inhibit_fd);
                l->state = LOGIND_NO_SERVICE;
        }
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;

        log_info("lost the system bus; reconnecting");
        /* The bus is not freed inside its own callback: the reconnect timer does it. */
        l->state = LOGIND_NO_BUS;
        l->told_no_bus = true;
        l->reconnect_delay = RECONNECT_FIRST_USEC;
        schedule_reconnect(l);
        return 0;
}

static int connect_bus(Logind *l)
{
        int r;

        r = sd_bus_open_system(&l->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(l->bus, l->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(l->bus, &l->match_disconnected, NULL,
                                      "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                      "Disconnected", on_disconnected, NULL, l);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(l->bus, &l->match_sleep, LOGIND_SERVICE, LOGIND_PATH,
                                      LOGIND_MANAGER, "PrepareForSleep", on_prepare_for_sleep, NULL,
                                      l);
        if (r < 0)
                return r;
        r = sd_bus_add_match_async(l->bus, &l->match_owner,
                                   "type='signal',sender='org.freedesktop.DBus',"
                                   "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                                   "member='NameOwnerChanged',arg0='" LOGIND_SERVICE "'",
                                   on_name_owner_changed, NULL, l);
        if (r < 0)
                return r;
        l->state = LOGIND_NO_SERVICE; /* until Inhibit answers */
        take_inhibitor(l);
        return 0;
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata)
{
        Logind *l = userdata;
        int r;

        disconnect(l);
        r = connect_bus(l);
        if (r < 0) {
                disconnect(l);
                l->state = LOGIND_NO_BUS;
                log_debug_errno(r, "system bus still unavailable: %m");
                schedule_reconnect(l);
                return 0;
        }
        log_info("connected to the system bus");
        l->reconnect_delay = RECONNECT_FIRST_USEC;
        return 0;
}

int logind_new(Logind **ret, sd_event *event, const LogindHandlers *handlers, void *userdata)
{
        _cleanup_(logind_freep) Logind *l = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->handlers = *handlers;
        l->userdata = userdata;
        l->inhibit_fd = -EBADF;
        l->delay_max = USEC_INFINITY;
        l->reconnect_delay = RECONNECT_FIRST_USEC;
        r = sd_event_add_time(event, &l->reconnect, CLOCK_MONOTONIC, UINT64_MAX, 0, on_reconnect,
                              l);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(l->reconnect, SD_EVENT_OFF);
        (void) sd_event_source_set_description(l->reconnect, "logind-reconnect");

        r = connect_bus(l);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                disconnect(l);
                l->state = LOGIND_NO_BUS;
                l->told_no_bus = true;
                log_info_errno(r, "no system bus (%m): suspend and resume are not watched; "
                                  "retrying in the background");
                schedule_reconnect(l);
        }
        *ret = TAKE_PTR(l);
        return 0;
}

Logind *logind_free(Logind *l)
{
        if (!l)
                return NULL;
        disconnect(l);
        sd_event_source_disable_unref(l->reconnect);
        sd_event_unref(l->event);
        return mfree(l);
}

void logind_release_inhibitor(Logind *l)
{
        if (l && l->inhibit_fd >= 0) {
                l->inhibit_fd = safe_close(l->inhibit_fd);
                log_debug("logind: sleep delay inhibitor released");
        }
}

bool logind_has_inhibitor(const Logind *l)
{
        return l && l->inhibit_fd >= 0;
}

LogindState logind_get_state(const Logind *l)
{
        return l ? l->state : LOGIND_DISABLED;
}

uint64_t logind_get_inhibit_delay_max(const Logind *l)
{
        return l ? l->delay_max : USEC_INFINITY;
}

/* SPDX-License-Identifier: MIT */
/*
 * The platform hooks: what the agent needs from the machine beyond sockets
 * and timers. Each hook has a real implementation in agent/ and a no-op one
 * in plugins-nop/; meson picks one per hook (-Dlogind, -Dnetlink). A real
 * implementation that finds its service unavailable at run time (no system
 * bus, netlink refused) behaves as the no-op one and says so once.
 *
 *   suspend     logind's PrepareForSleep, with a "sleep" delay inhibitor
 *   netlink     links, addresses and default routes, fed into a NetState
 *   wake alarm  program the RTC before a suspend when the alarm clock is refused
 *   clock       whether the kernel clock is synchronised (always real)
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "netstate.h"
#include "util.h"

/* Suspend and resume (logind.c, plugins-nop/logind-nop.c). */

typedef struct Logind Logind;

typedef struct LogindHandlers {
        /* PrepareForSleep(start): true before a suspend, false after the resume. */
        void (*prepare_for_sleep)(bool start, void *userdata);
} LogindHandlers;

typedef enum LogindState {
        LOGIND_DISABLED,   /* built without logind (no-op) */
        LOGIND_NO_BUS,     /* no system bus: retried periodically */
        LOGIND_NO_SERVICE, /* bus, but org.freedesktop.login1 is not there */
        LOGIND_CONNECTED,  /* logind is there */
} LogindState;

int logind_new(Logind **ret, sd_event *event, const LogindHandlers *handlers, void *userdata);
Logind *logind_free(Logind *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Logind *, logind_free);
/* Close the delay inhibitor now (the suspend may proceed); harmless without one. */
void logind_release_inhibitor(Logind *l);
bool logind_has_inhibitor(const Logind *l);
LogindState logind_get_state(const Logind *l);
/* logind's InhibitDelayMaxUSec, or USEC_INFINITY when unknown (the mock lacks it). */
uint64_t logind_get_inhibit_delay_max(const Logind *l);
const char *logind_state_to_string(LogindState s);

/* Netlink (netlink.c, plugins-nop/netlink-nop.c). */

typedef struct Netlink Netlink;

typedef struct NetlinkHandlers {
        /* state changed (the coldplug dump too); called from the loop, never nested. */
        void (*changed)(void *userdata);
} NetlinkHandlers;

typedef struct NetlinkStats {
        uint64_t messages; /* netlink messages handled */
        uint64_t invalid;  /* rejected as malformed */
        uint64_t resyncs;  /* full dumps after an overrun (ENOBUFS) */
        uint64_t dumps;
} NetlinkStats;

/*
 * Open the route socket, subscribe and start the initial dump. When netlink
 * is unavailable (built without it, or the socket is refused) this still
 * succeeds: netlink_is_active() is then false and the coldplug counts as done.
 */
int netlink_new(Netlink **ret, sd_event *event, NetState *state, const NetlinkHandlers *handlers,
                void *userdata);
Netlink *netlink_free(Netlink *nl);
DEFINE_TRIVIAL_CLEANUP_FUNC(Netlink *, netlink_free);
bool netlink_is_active(const Netlink *nl);
bool netlink_coldplug_done(const Netlink *nl);
void netlink_get_stats(const Netlink *nl, NetlinkStats *ret);

/* Wake alarm (wakealarm.c, plugins-nop/wakealarm-nop.c). */

/*
 * Program the RTC to wake the machine at deadline (CLOCK_BOOTTIME µs), for
 * when wake-list timers run on the CLOCK_BOOTTIME fallback. Returns 0 when
 * programmed, -ENOENT when there is no RTC wake alarm, -EOPNOTSUPP in the
 * no-op build, or another -errno.
 */
int wakealarm_program(uint64_t boottime_deadline_usec);
/* The wakealarm file used ($SMD_WAKEALARM_PATH, else /sys/class/rtc/rtc0/wakealarm), or NULL. */
const char *wakealarm_path(void);

/* Clock (clock.c). */

/* adjtimex() status without STA_UNSYNC, or /run/systemd/timesync/synchronized exists. */
bool clock_is_synchronized(void);
/* A time synchronisation daemon seems to run (timesyncd, chronyd, ntpd, openntpd). */
bool clock_sync_service_running(void);

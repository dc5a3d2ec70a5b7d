/* SPDX-License-Identifier: MIT */
/*
 * What the agent knows about the machine and says on the bus: the bring-up
 * state machine (states.h), links and default routes from netlink
 * (netstate.h), connectivity, suspend and resume from logind, and the wake
 * alarm. The manager owns one Machine; it wires the platform hooks
 * (platform.h) to the bus.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "netstate.h"
#include "platform.h"
#include "states.h"

typedef struct Manager Manager;
typedef struct Machine Machine;

#define MACHINE_TIME_SYNC_WAIT_DEFAULT_USEC (30 * USEC_PER_SEC)
/* After PrepareForSleep(true): release the inhibitor once participants have their
 * messages, or after this long, whichever comes first. */
#define MACHINE_SUSPEND_FLUSH_MAX_USEC (200 * USEC_PER_MSEC)
#define MACHINE_WAKE_TIMERS_MAX        16u
#define MACHINE_RESUME_HOOKS_MAX       8u

typedef struct MachineStats {
        uint64_t suspends, resumes;
        uint64_t last_release_usec; /* PrepareForSleep(true) to inhibitor closed */
        uint64_t wakeups;           /* wake timers that fired */
} MachineStats;

int machine_new(Machine **ret, Manager *m, uint64_t time_sync_wait_usec);
Machine *machine_free(Machine *machine);
DEFINE_TRIVIAL_CLEANUP_FUNC(Machine *, machine_free);

/* Start the platform hooks; the first state step and READY=1 follow from the loop. */
int machine_start(Machine *machine);
/* An input of a gate changed outside the machine (a policy fetch finished): step. */
void machine_recheck(Machine *machine);

SystemState machine_get_state(const Machine *machine);
const char *machine_get_connectivity(const Machine *machine);
bool machine_has_usable_route(const Machine *machine);
bool machine_is_suspending(const Machine *machine);
const NetState *machine_get_netstate(const Machine *machine);
const Netlink *machine_get_netlink(const Machine *machine);
const Logind *machine_get_logind(const Machine *machine);
void machine_get_stats(const Machine *machine, MachineStats *ret);
unsigned machine_n_wake_timers(const Machine *machine);

/* A one-shot wake-list timer (smdctl wake): publishes {"type":"wakeup","id":N} on
 * SYSTEM_STATE when it fires. Returns the id, -EBUSY when all slots are taken. */
int machine_add_wake_timer(Machine *machine, uint64_t delay_usec);

/* Run fn after every resume, after RESUMED was published (captive checks, validity pings). */
int machine_add_resume_hook(Machine *machine, void (*fn)(void *userdata), void *userdata);
/* Run fn after every netlink change was applied (links, addresses, default routes). */
int machine_set_network_hook(Machine *machine, void (*fn)(void *userdata), void *userdata);
/* Whether the first netlink dump was read (or there is no netlink). */
bool machine_is_coldplugged(const Machine *machine);
/* The connectivity ("unknown", "ok", "captive", "no-internet"; a static string), published. */
void machine_set_connectivity(Machine *machine, const char *connectivity);
/*
 * Whether captive portal detection runs (the connectivity message's "cpd"): when
 * it does, only connectivity "ok" means online; else a usable default route does.
 */
void machine_set_cpd(Machine *machine, bool on);

/* SPDX-License-Identifier: MIT */
/*
 * The system state machine: the bring-up states of DESIGN.md in their order,
 * and one small gate per state that says whether the state can be entered
 * from the one before it. The gates are pure functions of StateInputs; the
 * manager gathers the inputs and commits one state at a time (see
 * states_next()), publishing each.
 */
#pragma once

#include <stdbool.h>

typedef enum SystemState {
        SYSTEM_STATE_INITIALIZED,
        SYSTEM_STATE_IFACE_COLDPLUG,
        SYSTEM_STATE_DHCP,
        SYSTEM_STATE_CPD_PRE_TIME,
        SYSTEM_STATE_TIME_VALID,
        SYSTEM_STATE_CPD_POST_TIME,
        SYSTEM_STATE_POLICY_VALID,
        SYSTEM_STATE_OPERATIONAL,
        _SYSTEM_STATE_MAX,
        _SYSTEM_STATE_INVALID = -1,
} SystemState;

typedef struct StateInputs {
        bool coldplug_done;      /* initial netlink dump done, or no netlink */
        bool netlink_active;     /* false: no-op netlink, DHCP is not waited for */
        bool usable_route;       /* a usable address and a default route exist */
        bool cpd_pre_time_done;  /* captive check before time (none yet: true) */
        bool clock_synchronized; /* adjtimex or timesyncd says so */
        bool time_wait_over;     /* no time sync service, or its grace expired */
        bool cpd_post_time_done; /* captive check after time (none yet: true) */
        bool policy_fetch_pending;
} StateInputs;

const char *system_state_to_string(SystemState s);
/* The state with that name, or _SYSTEM_STATE_INVALID. */
SystemState system_state_from_string(const char *name);

/* Whether state s may be entered from the state before it. */
bool state_gate_passes(SystemState s, const StateInputs *in);
/* The state to commit next from current, or _SYSTEM_STATE_INVALID when current must stay. */
SystemState states_next(SystemState current, const StateInputs *in);

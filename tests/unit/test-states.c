/* SPDX-License-Identifier: MIT */
/* The system state machine's gates: one state at a time, each on its own input. */
#include <string.h>

#include "states.h"
#include "tap.h"

static SystemState run(SystemState from, const StateInputs *in)
{
        SystemState s = from, next;

        while ((next = states_next(s, in)) != _SYSTEM_STATE_INVALID) {
                if (next != s + 1)
                        return _SYSTEM_STATE_INVALID; /* skipped a state */
                s = next;
        }
        return s;
}

int main(void)
{
        StateInputs all = {
            .coldplug_done = true,
            .netlink_active = true,
            .usable_route = true,
            .cpd_pre_time_done = true,
            .clock_synchronized = true,
            .cpd_post_time_done = true,
        };
        StateInputs in;

        tap_init();
        for (int i = 0; i < _SYSTEM_STATE_MAX; i++)
                is_int(system_state_from_string(system_state_to_string((SystemState) i)), i,
                       "state %d round-trips through its name %s", i,
                       system_state_to_string((SystemState) i));
        is_int(system_state_from_string("SUSPENDING"), _SYSTEM_STATE_INVALID,
               "SUSPENDING is an event, not a state");
        is_int(system_state_from_string(NULL), _SYSTEM_STATE_INVALID, "NULL is no state");
        ok(system_state_to_string(_SYSTEM_STATE_MAX) == NULL, "no name past the last state");

        is_int(run(SYSTEM_STATE_INITIALIZED, &all), SYSTEM_STATE_OPERATIONAL,
               "everything ready: every state in turn up to OPERATIONAL");
        is_int(states_next(SYSTEM_STATE_OPERATIONAL, &all), _SYSTEM_STATE_INVALID,
               "nothing after OPERATIONAL");

        in = all;
        in.coldplug_done = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_INITIALIZED,
               "no coldplug: stays INITIALIZED");

        in = all;
        in.usable_route = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_IFACE_COLDPLUG,
               "no usable route: stops at IFACE_COLDPLUG");
        in.netlink_active = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_OPERATIONAL,
               "no route but no netlink either: DHCP is not waited for");

        in = all;
        in.cpd_pre_time_done = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_DHCP,
               "captive check before time pending: stops at DHCP");

        in = all;
        in.clock_synchronized = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_CPD_PRE_TIME,
               "clock not synchronised: stops at CPD_PRE_TIME");
        in.time_wait_over = true;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_OPERATIONAL,
               "the wait for a time sync is over: TIME_VALID and on");

        in = all;
        in.cpd_post_time_done = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_TIME_VALID,
               "captive check after time pending: stops at TIME_VALID");

        in = all;
        in.policy_fetch_pending = true;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_CPD_POST_TIME,
               "policy fetch pending: stops at CPD_POST_TIME");

        /* A gate opening later resumes from where it stopped, never skips. */
        in = all;
        in.usable_route = false;
        is_int(run(SYSTEM_STATE_INITIALIZED, &in), SYSTEM_STATE_IFACE_COLDPLUG, "waiting for DHCP");
        in.usable_route = true;
        is_int(states_next(SYSTEM_STATE_IFACE_COLDPLUG, &in), SYSTEM_STATE_DHCP,
               "the route appears: DHCP is next, one step");
        is_int(states_next(_SYSTEM_STATE_INVALID, &in), _SYSTEM_STATE_INVALID,
               "an invalid state goes nowhere");
        return tap_done();
}

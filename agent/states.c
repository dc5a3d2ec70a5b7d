/* SPDX-License-Identifier: MIT */
/*
 * The system state machine's gates (see states.h). Each gate looks only at the
 * inputs that concern its own state; states_next() never skips a state, so a
 * subscriber sees every state in order.
 */
#include "states.h"

#include <stddef.h>
#include <string.h>

static const char *const state_names[_SYSTEM_STATE_MAX] = {
    [SYSTEM_STATE_INITIALIZED] = "INITIALIZED",
    [SYSTEM_STATE_IFACE_COLDPLUG] = "IFACE_COLDPLUG",
    [SYSTEM_STATE_DHCP] = "DHCP",
    [SYSTEM_STATE_CPD_PRE_TIME] = "CPD_PRE_TIME",
    [SYSTEM_STATE_TIME_VALID] = "TIME_VALID",
    [SYSTEM_STATE_CPD_POST_TIME] = "CPD_POST_TIME",
    [SYSTEM_STATE_POLICY_VALID] = "POLICY_VALID",
    [SYSTEM_STATE_OPERATIONAL] = "OPERATIONAL",
};

const char *system_state_to_string(SystemState s)
{
        if (s < 0 || s >= _SYSTEM_STATE_MAX)
                return NULL;
        return state_names[s];
}

SystemState system_state_from_string(const char *name)
{
        if (!name)
                return _SYSTEM_STATE_INVALID;
        for (int i = 0; i < _SYSTEM_STATE_MAX; i++)
                if (strcmp(state_names[i], name) == 0)
                        return (SystemState) i;
        return _SYSTEM_STATE_INVALID;
}

static bool gate_iface_coldplug(const StateInputs *in)
{
        return in->coldplug_done;
}

static bool gate_dhcp(const StateInputs *in)
{
        /* Without netlink we cannot know: do not hold the system back. */
        return !in->netlink_active || in->usable_route;
}

static bool gate_cpd_pre_time(const StateInputs *in)
{
        return in->cpd_pre_time_done;
}

static bool gate_time_valid(const StateInputs *in)
{
        return in->clock_synchronized || in->time_wait_over;
}

static bool gate_cpd_post_time(const StateInputs *in)
{
        return in->cpd_post_time_done;
}

static bool gate_policy_valid(const StateInputs *in)
{
        return !in->policy_fetch_pending;
}

bool state_gate_passes(SystemState s, const StateInputs *in)
{
        switch (s) {
        case SYSTEM_STATE_INITIALIZED:
                return true;
        case SYSTEM_STATE_IFACE_COLDPLUG:
                return gate_iface_coldplug(in);
        case SYSTEM_STATE_DHCP:
                return gate_dhcp(in);
        case SYSTEM_STATE_CPD_PRE_TIME:
                return gate_cpd_pre_time(in);
        case SYSTEM_STATE_TIME_VALID:
                return gate_time_valid(in);
        case SYSTEM_STATE_CPD_POST_TIME:
                return gate_cpd_post_time(in);
        case SYSTEM_STATE_POLICY_VALID:
                return gate_policy_valid(in);
        case SYSTEM_STATE_OPERATIONAL:
                /* Every gate before it has passed. */
                return true;
        case _SYSTEM_STATE_MAX:
        case _SYSTEM_STATE_INVALID:
                break;
        }
        return false;
}

SystemState states_next(SystemState current, const StateInputs *in)
{
        SystemState next;

        if (current < 0 || current + 1 >= _SYSTEM_STATE_MAX)
                return _SYSTEM_STATE_INVALID;
        next = (SystemState) (current + 1);
        return state_gate_passes(next, in) ? next : _SYSTEM_STATE_INVALID;
}

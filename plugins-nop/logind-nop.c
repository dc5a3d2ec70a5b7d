/* SPDX-License-Identifier: MIT */
/*
 * The no-op suspend hook, for builds with -Dlogind=disabled: nothing watches
 * for suspend and nothing is inhibited.
 */
#include <errno.h>
#include <stdlib.h>

#include "platform.h"

struct Logind {
        int unused;
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

int logind_new(Logind **ret, sd_event *event, const LogindHandlers *handlers, void *userdata)
{
        Logind *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        *ret = l;
        return 0;
}

Logind *logind_free(Logind *l)
{
        return mfree(l);
}

void logind_release_inhibitor(Logind *l)
{
}

bool logind_has_inhibitor(const Logind *l)
{
        return false;
}

LogindState logind_get_state(const Logind *l)
{
        return LOGIND_DISABLED;
}

uint64_t logind_get_inhibit_delay_max(const Logind *l)
{
        return USEC_INFINITY;
}

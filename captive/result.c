/* SPDX-License-Identifier: MIT */
/*
 * Names and ranking of captive portal detection results (see result.h).
 */
#include <assert.h>
#include <errno.h>

#include "result.h"
#include "util.h"

const char *captive_result_to_string(CaptiveResult r)
{
        switch (r) {
        case CAPTIVE_RESULT_UNKNOWN:
                return "Unknown";
        case CAPTIVE_RESULT_NO_INTERNET:
                return "No internet";
        case CAPTIVE_RESULT_CAPTIVE:
                return "Captive";
        case CAPTIVE_RESULT_OK:
                return "OK";
        case _CAPTIVE_RESULT_MAX:
                break;
        }
        return NULL;
}

int captive_result_from_string(const char *s, CaptiveResult *ret)
{
        assert(ret);
        if (!s)
                return -EINVAL;
        for (CaptiveResult r = 0; r < _CAPTIVE_RESULT_MAX; r++)
                if (streq(s, captive_result_to_string(r))) {
                        *ret = r;
                        return 0;
                }
        return -EINVAL;
}

CaptiveResult captive_result_best(CaptiveResult a, CaptiveResult b)
{
        assert(a < _CAPTIVE_RESULT_MAX && b < _CAPTIVE_RESULT_MAX);
        return a > b ? a : b;
}

const char *captive_trigger_to_string(CaptiveTrigger t)
{
        switch (t) {
        case CAPTIVE_TRIGGER_STARTUP:
                return "startup";
        case CAPTIVE_TRIGGER_ROUTE:
                return "route";
        case CAPTIVE_TRIGGER_ADDRESS:
                return "address";
        case CAPTIVE_TRIGGER_RESUME:
                return "resume";
        case CAPTIVE_TRIGGER_MESSAGE:
                return "message";
        case CAPTIVE_TRIGGER_REQUEST:
                return "request";
        case CAPTIVE_TRIGGER_PERIODIC:
                return "periodic";
        case CAPTIVE_TRIGGER_BACKOFF:
                return "backoff";
        case _CAPTIVE_TRIGGER_MAX:
                break;
        }
        return NULL;
}

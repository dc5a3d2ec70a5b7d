/* SPDX-License-Identifier: MIT */
/*
 * The no-op wake-alarm hook, for builds with -Dlogind=disabled: without the
 * suspend hook nothing would call it before a suspend, so the RTC is left alone.
 */
#include <errno.h>

#include "platform.h"

const char *wakealarm_path(void)
{
        return NULL;
}

int wakealarm_program(uint64_t boottime_deadline_usec)
{
        return -EOPNOTSUPP;
}

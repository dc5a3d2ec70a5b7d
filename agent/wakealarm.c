/* SPDX-License-Identifier: MIT */
/*
 * The real wake-alarm hook (see platform.h). When wake-list timers run on the
 * alarm clock the kernel programs the RTC itself at suspend; when they run on
 * the CLOCK_BOOTTIME fallback the manager calls this before a suspend, and we
 * write the deadline, as wall-clock seconds, to the RTC's wakealarm file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"

#define WAKEALARM_DEFAULT_PATH "/sys/class/rtc/rtc0/wakealarm"

const char *wakealarm_path(void)
{
        /* For tests: these machines have no RTC. */
        const char *e = getenv("SMD_WAKEALARM_PATH");
        const char *p = e && *e == '/' ? e : WAKEALARM_DEFAULT_PATH;

        return access(p, W_OK) == 0 ? p : NULL;
}

static int write_text(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        size_t n = strlen(text);

        if (fd < 0)
                return -errno;
        if (write(fd, text, n) != (ssize_t) n)
                return errno ? -errno : -EIO;
        return 0;
}

int wakealarm_program(uint64_t boottime_deadline_usec)
{
        const char *path = wakealarm_path();
        uint64_t now_boot = now_usec(CLOCK_BOOTTIME), now_real = now_usec(CLOCK_REALTIME), seconds;
        char text[32];
        int r;

        if (!path)
                return -ENOENT;
        /* Round up: waking a second late is better than before the deadline. */
        seconds = (now_real +
                   (boottime_deadline_usec > now_boot ? boottime_deadline_usec - now_boot : 0) +
                   USEC_PER_SEC - 1) /
                  USEC_PER_SEC;
        /* The RTC refuses a new alarm while one is set (EBUSY): clear it first. */
        r = write_text(path, "0");
        if (r < 0)
                return r;
        snprintf(text, sizeof(text), "%" PRIu64, seconds);
        return write_text(path, text);
}

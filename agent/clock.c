/* SPDX-License-Identifier: MIT */
/*
 * The clock hook (see platform.h): is the kernel clock synchronised, and is
 * anything running that would synchronise it. There is no no-op variant:
 * adjtimex() exists on every Linux system.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include "platform.h"

bool clock_is_synchronized(void)
{
        struct timex t = {};

        if (access("/run/systemd/timesync/synchronized", F_OK) == 0)
                return true;
        if (adjtimex(&t) < 0)
                return false;
        return !(t.status & STA_UNSYNC);
}

static bool comm_is_time_daemon(const char *comm)
{
        /* comm is cut at 15 characters: "systemd-timesyn". */
        static const char *const names[] = {"systemd-timesyn", "chronyd", "ntpd",
                                            "openntpd",        "ntpd-rs", "timesyncd"};

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(comm, names[i]))
                        return true;
        return false;
}

bool clock_sync_service_running(void)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        bool found = false;

        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                char path[300], comm[32] = "";
                FILE *f;

                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                if (fgets(comm, sizeof(comm), f))
                        comm[strcspn(comm, "\n")] = 0;
                fclose(f);
                found = comm_is_time_daemon(comm);
        }
        closedir(d);
        return found;
}

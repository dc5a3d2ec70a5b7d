/* SPDX-License-Identifier: MIT */
/*
 * Agent logging (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int max_level = LOG_INFO;
static bool to_journal;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_setup(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        to_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
                     fstat(STDERR_FILENO, &st) == 0 && (unsigned long long) st.st_dev == dev &&
                     (unsigned long long) st.st_ino == ino;
        e = getenv("SMDAGENT_LOG_LEVEL");
        if (e)
                (void) log_set_level_from_string(e);
}

int log_set_level_from_string(const char *s)
{
        for (int i = 0; i < (int) ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]) || (streq(s, "error") && i == LOG_ERR)) {
                        max_level = i;
                        return 0;
                }
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0) {
                max_level = s[0] - '0';
                return 0;
        }
        return -EINVAL;
}

void log_set_level(int level)
{
        max_level = level;
}

int log_get_level(void)
{
        return max_level;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
{
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;
        errno = error;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (to_journal)
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (level == LOG_INFO || level == LOG_NOTICE)
                fprintf(stderr, "smdagent: %s\n", buf);
        else
                fprintf(stderr, "smdagent: %s: %s\n", level_names[level], buf);
        errno = saved;
        return -error;
}

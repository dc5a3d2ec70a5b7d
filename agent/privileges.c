/* SPDX-License-Identifier: MIT */
/*
 * Dropping root after startup (see privileges.h). Capabilities go through the
 * raw capget/capset system calls (version 3, two 32-bit words) rather than
 * libcap, which the agent does not otherwise need.
 */
#include "privileges.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#define GROUPS_MAX 1024

Privileges *privileges_free(Privileges *p)
{
        if (!p)
                return NULL;
        free(p->groups);
        free(p->user);
        free(p);
        return NULL;
}

int privileges_new(Privileges **ret, const char *user)
{
        _cleanup_(privileges_freep) Privileges *p = NULL;
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *found = NULL;
        long size = sysconf(_SC_GETPW_R_SIZE_MAX);
        int n, r;

        assert(ret && user);
        if (size <= 0)
                size = 4096;
        for (;;) {
                buf = malloc((size_t) size);
                if (!buf)
                        return -ENOMEM;
                r = getpwnam_r(user, &pw, buf, (size_t) size, &found);
                if (r != ERANGE || size >= 1024 * 1024)
                        break;
                buf = mfree(buf);
                size *= 2;
        }
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        if (geteuid() != 0 && geteuid() != pw.pw_uid)
                return -EPERM;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->user = strdup(user);
        if (!p->user)
                return -ENOMEM;
        p->uid = pw.pw_uid;
        p->gid = pw.pw_gid;

        n = 16;
        for (;;) {
                int want = n;

                p->groups = calloc((size_t) n, sizeof(gid_t));
                if (!p->groups)
                        return -ENOMEM;
                if (getgrouplist(user, pw.pw_gid, p->groups, &want) >= 0) {
                        n = want;
                        break;
                }
                p->groups = mfree(p->groups);
                if (want <= n) /* no progress: give up rather than loop */
                        return -EINVAL;
                if (want > GROUPS_MAX)
                        return -E2BIG;
                n = want;
        }
        p->n_groups = (size_t) n;
        *ret = TAKE_PTR(p);
        return 0;
}

static int caps_get(uint64_t *ret_permitted)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {};

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        *ret_permitted = (uint64_t) d[0].permitted | (uint64_t) d[1].permitted << 32;
        return 0;
}

/* Effective and permitted set to caps; inheritable emptied. */
static int caps_set(uint64_t caps)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {
            {.effective = (uint32_t) caps, .permitted = (uint32_t) caps},
            {.effective = (uint32_t) (caps >> 32), .permitted = (uint32_t) (caps >> 32)},
        };

        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

static unsigned cap_last(void)
{
        FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        unsigned last = CAP_LAST_CAP;

        if (f) {
                if (fscanf(f, "%u", &last) != 1 || last > 63)
                        last = CAP_LAST_CAP;
                fclose(f);
        }
        return last;
}

/* Threads in this process, from /proc/self/status; 0 when unknown. */
static unsigned thread_count(void)
{
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        unsigned n = 0;

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Threads: %u", &n) == 1)
                        break;
        fclose(f);
        return n;
}

int privileges_drop(const Privileges *p, const char *runtime_dir)
{
        uint64_t have = 0, keep;
        unsigned threads, last;
        uid_t ruid, euid, suid;
        int r;

        assert(p);
        if (geteuid() != 0) {
                /* privileges_new() allowed only our own user here: nothing to do. */
                (void) prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                return 0;
        }
        threads = thread_count();
        if (threads > 1)
                return log_error_errno(EBUSY,
                                       "cannot drop privileges: %u threads are running already "
                                       "(capabilities are per thread)",
                                       threads);

        r = caps_get(&have);
        if (r < 0)
                return log_error_errno(r, "failed to read our capabilities: %m");
        keep = PRIVILEGES_KEEP_CAPS & have;

        if (runtime_dir && chown(runtime_dir, p->uid, p->gid) < 0)
                return log_error_errno(errno, "failed to hand %s to user %s: %m", runtime_dir,
                                       p->user);

        /* The bounding set first: dropping from it needs CAP_SETPCAP, which we lose below. */
        last = cap_last();
        for (unsigned cap = 0; cap <= last; cap++) {
                if (keep & UINT64_C(1) << cap)
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL) /* beyond what this kernel knows */
                                break;
                        return log_error_errno(errno,
                                               "failed to drop capability %u from the bounding "
                                               "set: %m",
                                               cap);
                }
        }
        /* Ambient capabilities would survive an exec; the agent wants none. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return log_error_errno(errno, "failed to clear the ambient capabilities: %m");

        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "failed to keep capabilities across setuid: %m");
        if (setgroups(p->n_groups, p->groups) < 0)
                return log_error_errno(errno, "failed to set the groups of user %s: %m", p->user);
        if (setresgid(p->gid, p->gid, p->gid) < 0)
                return log_error_errno(errno, "failed to switch to group %u of user %s: %m",
                                       (unsigned) p->gid, p->user);
        if (setresuid(p->uid, p->uid, p->uid) < 0)
                return log_error_errno(errno, "failed to switch to user %s: %m", p->user);
        r = caps_set(keep);
        if (r < 0)
                return log_error_errno(r, "failed to set our capabilities: %m");
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return log_error_errno(errno, "failed to reset keep-capabilities: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "failed to set no_new_privs: %m");
        /*
         * Changing ids made us non-dumpable, which leaves /proc/self owned by
         * root and stops LeakSanitizer. A service started with User= is
         * dumpable, and another process of this user still cannot trace us:
         * it lacks our capabilities.
         */
        (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);

        /* Paranoia: there must be no way back. */
        if (p->uid != 0 && (setresuid(0, 0, 0) == 0 || getresuid(&ruid, &euid, &suid) < 0 ||
                            ruid != p->uid || euid != p->uid || suid != p->uid))
                return log_error_errno(EPERM, "dropping to user %s did not stick", p->user);
        r = caps_get(&have);
        if (r < 0 || have != keep)
                return log_error_errno(r < 0 ? r : EPERM,
                                       "capabilities after dropping to %s are not the expected "
                                       "ones",
                                       p->user);
        log_info("running as user %s (uid %u, gid %u)%s", p->user, (unsigned) p->uid,
                 (unsigned) p->gid, keep ? " with CAP_WAKE_ALARM" : " without capabilities");
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Dropping root: `smdagent --user NAME` started as root binds its socket (and
 * does whatever else needs root at startup), then becomes NAME with NAME's
 * groups, keeping only the capabilities the agent uses at run time
 * (CAP_WAKE_ALARM, for the wake-list timers) and nothing in its bounding set
 * beyond them, with no_new_privs set. The user is looked up first, before
 * anything is bound, so that a typo fails at once. Under systemd the unit
 * does all of this (User=, AmbientCapabilities=, CapabilityBoundingSet=), so
 * the agent is not root there and has nothing to drop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* The capabilities the agent keeps, as a bit mask of CAP_* numbers. */
#define PRIVILEGES_KEEP_CAPS (UINT64_C(1) << 35 /* CAP_WAKE_ALARM */)

typedef struct Privileges {
        char *user;
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* supplementary groups, the primary one included */
        size_t n_groups;
} Privileges;

/*
 * Look up the user to drop to. -ESRCH: no such user. -EPERM: we are not root
 * and not that user already (dropping to the user we are is a no-op).
 */
int privileges_new(Privileges **ret, const char *user);
Privileges *privileges_free(Privileges *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Privileges *, privileges_free);

/*
 * Become p's user, keeping only PRIVILEGES_KEEP_CAPS (those of them we have).
 * runtime_dir, when not NULL, is a directory the agent made and will clean up
 * at exit: it is handed to the user first. Must run before any thread is
 * started (capabilities are per thread). Logs what failed; returns 0 or <0.
 */
int privileges_drop(const Privileges *p, const char *runtime_dir);

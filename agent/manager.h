/* SPDX-License-Identifier: MIT */
/*
 * The agent: owns the event loop, the bus, the proxy socket server and the
 * policy, publishes the system state, and answers control requests.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "bus.h"
#include "privileges.h"
#include "server.h"
#include "util.h"

typedef struct Policy Policy;
typedef struct Machine Machine;
typedef struct Scheduler Scheduler;
typedef struct SsContext SsContext;
typedef struct Cpd Cpd;
typedef struct Updater Updater;
typedef struct Hosted Hosted;

typedef struct ManagerOptions {
        const char *socket_path;               /* NULL: the default for this user */
        const char *const *policy_paths;       /* NULL-terminated, may be NULL */
        const char *const *policy_directories; /* NULL-terminated; NULL: the system ones */
        const Privileges *privileges;          /* drop to this user once bound; NULL: stay */
        uint64_t time_sync_wait_usec;          /* TIME_VALID: how long to wait for a sync */
        const char *state_dir;                 /* NULL: persist_state_dir() */
} ManagerOptions;

typedef struct Manager {
        sd_event *event;
        Bus *bus;
        Server *server;
        Access access;
        char *socket_path;
        char *runtime_dir; /* created by us, NULL if the socket path was given */
        uint64_t start_usec;
        const char *state;
        sd_event_source *sigterm, *sigint, *sighup;
        bool socket_activated;
        Policy *policy;
        uint64_t policy_loaded_usec; /* CLOCK_REALTIME */
        const char *const *policy_paths;
        const char *const *policy_directories;
        const Privileges *privileges;
        Scheduler *scheduler; /* the two timer lists (sul.h) */
        Machine *machine;     /* states, links, suspend (machine.h) */
        SsContext *ss;        /* the Secure Streams engine, on the current policy */
        Cpd *cpd;             /* captive portal detection (cpd.h) */
        Updater *updater;     /* policy fetch (updater.h) */
        Hosted *hosted;       /* the policy's server streamtypes the agent serves (hosted.h) */
        char *state_dir;      /* the last good fetched policy lives here; NULL: nowhere */
        /* A fetched policy on top of the local one (or the persisted copy of one). */
        char *layer; /* NUL-terminated; NULL: the local policy alone */
        size_t layer_size;
        char *layer_source;          /* "fetched:URL" or "persisted:PATH" */
        uint64_t layer_fetched_usec; /* CLOCK_REALTIME of its fetch, 0: unknown */
} Manager;

int manager_new(Manager **ret, const ManagerOptions *options);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Start listening and the platform hooks; READY=1 follows from the loop (machine.c). */
int manager_start(Manager *m);
/* Run until told to stop; returns the exit status. */
int manager_run(Manager *m);

/* Commit a system state: published on SYSTEM_STATE and retained. */
void manager_set_state(Manager *m, const char *state);

/* Build the effective policy and swap it in; on failure nothing changes and
 * *ret_errors lists every error, one per line (free it). */
int manager_load_policy(Manager *m, char **ret_errors);
/* The same, logging the outcome; ret_errors may be NULL. */
int manager_reload_policy(Manager *m, char **ret_errors);
/*
 * Validates data (a fetched policy) on top of the local policy and, when all
 * of it is valid, swaps it in as a reload does and keeps it as the layer that
 * later reloads put on top of the local policy. On failure nothing changes.
 * A document may not set policy_signing_key to anything but the local value.
 */
int manager_apply_policy_layer(Manager *m, const char *source, const void *data, size_t size,
                               uint64_t fetched_usec, char **ret_errors);
/* Forget the layer (the next load uses the local policy alone). */
void manager_drop_policy_layer(Manager *m);

/* The control request handler (control.c). */
void manager_on_control(Client *c, const char *request, size_t size, void *userdata);

/* Resolve the socket path for this user: $SMD_SOCKET, /run/smdagent/ss.sock for root,
 * $XDG_RUNTIME_DIR/smdagent/ss.sock otherwise; ret_dir is the directory to create. */
int runtime_socket_path(char **ret_path, char **ret_dir);

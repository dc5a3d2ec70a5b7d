/* SPDX-License-Identifier: MIT */
/*
 * The agent's manager (see manager.h): wiring of event loop, bus, server,
 * signals and service manager notifications.
 */
#include "manager.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "cpd.h"
#include "hosted.h"
#include "log.h"
#include "machine.h"
#include "message.h"
#include "persist.h"
#include "policy.h"
#include "stream.h"
#include "sul.h"
#include "updater.h"

int runtime_socket_path(char **ret_path, char **ret_dir)
{
        const char *e = getenv("SMD_SOCKET");
        char *dir, *path;

        if (e && *e) {
                path = strdup(e);
                if (!path)
                        return -ENOMEM;
                *ret_path = path;
                *ret_dir = NULL;
                return 0;
        }
        if (geteuid() == 0) {
                dir = strdup("/run/smdagent");
        } else {
                const char *x = getenv("XDG_RUNTIME_DIR");
                if (!x || x[0] != '/')
                        return -ENXIO;
                if (asprintf(&dir, "%s/smdagent", x) < 0)
                        dir = NULL;
        }
        if (!dir)
                return -ENOMEM;
        if (asprintf(&path, "%s/ss.sock", dir) < 0) {
                free(dir);
                return -ENOMEM;
        }
        *ret_path = path;
        *ret_dir = dir;
        return 0;
}

void manager_set_state(Manager *m, const char *state)
{
        char buf[64];
        int n, r;

        m->state = state;
        n = snprintf(buf, sizeof(buf), "{\"state\":\"%s\"}", state);
        r = bus_send_retained(m->bus, "state", SMD_CLASS_SYSTEM_STATE, buf, (size_t) n);
        if (r < 0)
                log_warning_errno(r, "failed to publish system state %s: %m", state);
        log_debug("system state: %s", state);
        (void) sd_notifyf(false, "STATUS=%s; listening on %s", state, m->socket_path);
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;

        log_info("received %s, shutting down", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=shutting down");
        return sd_event_exit(m->event, 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;

        log_info("received SIGHUP, reloading the policy");
        (void) sd_notify(false, "RELOADING=1");
        (void) manager_reload_policy(m, NULL);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s; listening on %s", m->state, m->socket_path);
        return 0;
}

static void on_client_gone(Client *c, void *userdata)
{
        Manager *m = userdata;

        if (m->cpd)
                cpd_client_gone(m->cpd, c);
}

static void on_published(Client *c, uint32_t classes, const void *payload, size_t size,
                         void *userdata)
{
        Manager *m = userdata;

        if (m->cpd)
                cpd_on_published(m->cpd, c, classes, payload, size);
}

static const ServerHandlers server_handlers = {
    .control = manager_on_control,
    .client_gone = on_client_gone,
    .published = on_published,
};

/*
 * After a suspend, idle kept-alive connections are most likely dead (the peer
 * or a NAT timed them out while we slept): close them rather than find out on
 * the next request; live streams with validity checks ping now.
 */
static void on_resume(void *userdata)
{
        Manager *m = userdata;
        unsigned n = ss_context_check_connections(m->ss);

        if (n > 0)
                log_debug("resume: %u live streams asked for a sign of life", n);
}

int manager_new(Manager **ret, const ManagerOptions *options)
{
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_error_errno(ENOMEM, "out of memory");
        m->start_usec = now_usec(CLOCK_MONOTONIC);
        m->policy_paths = options->policy_paths;
        m->policy_directories = options->policy_directories;
        m->privileges = options->privileges;
        r = access_init_default(&m->access);
        if (r < 0)
                return log_error_errno(r, "out of memory");

        r = sd_event_new(&m->event);
        if (r < 0)
                return log_error_errno(r, "failed to create the event loop: %m");
        (void) sd_event_set_watchdog(m->event, true);

        r = bus_new(&m->bus, m->event, NULL);
        if (r < 0)
                return log_error_errno(r, "failed to create the bus: %m");
        r = scheduler_new(&m->scheduler, m->event);
        if (r < 0)
                return log_error_errno(r, "failed to create the timer scheduler: %m");

        if (options->socket_path) {
                m->socket_path = strdup(options->socket_path);
                if (!m->socket_path)
                        return log_error_errno(ENOMEM, "out of memory");
        } else {
                r = runtime_socket_path(&m->socket_path, &m->runtime_dir);
                if (r == -ENXIO)
                        return log_error_errno(r, "XDG_RUNTIME_DIR is not set (or not absolute) "
                                                  "and we are not root: pass --socket PATH");
                if (r < 0)
                        return log_error_errno(r, "failed to determine the socket path: %m");
        }
        {
                _cleanup_free_ char *errors = NULL;

                r = manager_load_policy(m, &errors);
                if (r < 0) {
                        log_error("invalid policy:\n%s", strempty(errors));
                        return r;
                }
        }
        /* After the policy: the engine takes a reference to it (reloads swap it, policy-apply.c).
         */
        r = ss_context_new(&m->ss, m->event, m->policy);
        if (r < 0)
                return log_error_errno(r, "failed to create the Secure Streams engine: %m");
        /* The last good fetched policy goes on top of the local one before the first fetch. */
        if (options->state_dir) {
                m->state_dir = strdup(options->state_dir);
                if (!m->state_dir)
                        return log_error_errno(ENOMEM, "out of memory");
        } else {
                r = persist_state_dir(&m->state_dir);
                if (r == -ENXIO)
                        log_warning("no state directory (not root, and neither $XDG_STATE_HOME "
                                    "nor $HOME is set): a fetched policy is not kept across "
                                    "restarts; pass --state-dir DIR");
                else if (r < 0)
                        return log_error_errno(r, "failed to determine the state directory: %m");
        }
        r = updater_new(&m->updater, m);
        if (r < 0)
                return log_error_errno(r, "failed to set up policy fetching: %m");
        r = updater_load_persisted(m->updater);
        if (r < 0)
                return r;
        manager_set_state(m, "INITIALIZED");
        r = machine_new(&m->machine, m, options->time_sync_wait_usec);
        if (r < 0)
                return log_error_errno(r, "failed to set up the system state: %m");
        r = machine_add_resume_hook(m->machine, on_resume, m);
        if (r < 0)
                return log_error_errno(r, "failed to set up resume handling: %m");
        r = cpd_new(&m->cpd, m);
        if (r < 0)
                return log_error_errno(r, "failed to set up captive portal detection: %m");
        r = hosted_new(&m->hosted, m);
        if (r < 0)
                return log_error_errno(r, "failed to set up the policy's servers: %m");
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;
        m->server = server_free(m->server);
        m->hosted = hosted_free(m->hosted);
        m->updater = updater_free(m->updater);
        m->cpd = cpd_free(m->cpd);
        m->machine = machine_free(m->machine);
        m->ss = ss_context_free(m->ss);
        m->scheduler = scheduler_free(m->scheduler);
        m->bus = bus_free(m->bus);
        policy_unref(m->policy);
        access_clear(&m->access);
        sd_event_source_disable_unref(m->sigterm);
        sd_event_source_disable_unref(m->sigint);
        sd_event_source_disable_unref(m->sighup);
        sd_event_unref(m->event);
        free(m->socket_path);
        free(m->runtime_dir);
        free(m->state_dir);
        manager_drop_policy_layer(m);
        free(m);
        return NULL;
}

/* The socket systemd passed us, if any; it must be a listening unix stream socket. */
static int listen_fd_from_systemd(char **ret_path)
{
        int n = sd_listen_fds(true);
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);

        if (n <= 0)
                return n < 0 ? n : -ENOENT;
        if (n > 1)
                log_warning("received %d sockets from the service manager; using the first", n);
        if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                return log_error_errno(EINVAL, "the socket passed by the service manager is "
                                               "not a listening unix stream socket");
        if (getsockname(SD_LISTEN_FDS_START, (struct sockaddr *) &sa, &len) == 0 &&
            len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0]) {
                char *p = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
                if (p) {
                        *ret_path = p;
                }
        }
        return SD_LISTEN_FDS_START;
}

int manager_start(Manager *m)
{
        char *activated_path = NULL;
        int fd, r;

        fd = listen_fd_from_systemd(&activated_path);
        if (fd >= 0) {
                m->socket_activated = true;
                if (activated_path) {
                        free(m->socket_path);
                        m->socket_path = activated_path;
                }
                log_info("using the socket passed by the service manager: %s", m->socket_path);
        } else if (fd != -ENOENT) {
                return fd;
        } else if (m->runtime_dir) {
                if (mkdir(m->runtime_dir, geteuid() == 0 ? 0755 : 0700) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "failed to create %s: %m", m->runtime_dir);
        }

        r = server_new(&m->server, m->event, m->bus, &m->access, m->socket_path, fd >= 0 ? fd : -1,
                       &server_handlers, m);
        if (r == -EADDRINUSE)
                return log_error_errno(r, "another agent is already listening on %s",
                                       m->socket_path);
        if (r < 0)
                return log_error_errno(r, "failed to listen on %s: %m", m->socket_path);
        /* Streamtypes of the policy open through the socket (proxy.c). */
        server_set_ss_context(m->server, m->ss);
        /* The policy's own servers listen before root goes (ports below 1024). */
        hosted_start(m->hosted);
        /* Root is needed only to bind: drop it before serving anyone. */
        if (m->privileges) {
                r = privileges_drop(m->privileges, m->socket_activated ? NULL : m->runtime_dir);
                if (r < 0)
                        return r;
        }

        r = sd_event_add_signal(m->event, &m->sigterm, SIGTERM, on_stop_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint, SIGINT, on_stop_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sighup, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "failed to set up signal handling: %m");

        log_info("smdagent %s listening on %s", PACKAGE_VERSION, m->socket_path);
        /* The states step and READY=1 is sent from the loop: see machine.c. */
        return machine_start(m->machine);
}

int manager_run(Manager *m)
{
        int r = sd_event_loop(m->event);

        if (r < 0)
                return log_error_errno(r, "event loop failed: %m");
        return r;
}

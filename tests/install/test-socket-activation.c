/* SPDX-License-Identifier: MIT */
/*
 * The agent as systemd starts it from smdagent.socket, with
 * systemd-socket-activate standing in for systemd: the activator listens, the
 * first client's connection starts the agent, which serves that client on the
 * passed socket, announces READY=1 and then keeps sending WATCHDOG=1 within
 * WATCHDOG_USEC, as WatchdogSec= in the unit expects. The gaps between pings
 * are measured where the service manager would see them: on NOTIFY_SOCKET.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define ACTIVATOR     "/usr/bin/systemd-socket-activate"
#define WATCHDOG_USEC 400000u
#define WATCH_USEC    (3 * 1000000u) /* how long pings are collected */
#define PINGS_MAX     256

static uint64_t realtime_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Times are CLOCK_REALTIME µs, as the kernel stamps datagrams (SO_TIMESTAMP). */
typedef struct Notes {
        bool ready, stopping;
        uint64_t ready_usec;
        char status[512];
        uint64_t pings[PINGS_MAX]; /* arrival times of WATCHDOG=1, after READY=1 */
        size_t n_pings;
        size_t n_early_pings; /* WATCHDOG=1 before READY=1 */
} Notes;

static int notify_open(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        /* Kernel arrival times: the test may be busy elsewhere when a ping comes in. */
        if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &(int){1}, sizeof(int)) < 0 ||
            bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

static void notes_add(Notes *n, char *msg, uint64_t when)
{
        char *save = NULL;

        for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strcmp(line, "READY=1") == 0 && !n->ready) {
                        n->ready = true;
                        n->ready_usec = when;
                } else if (strcmp(line, "STOPPING=1") == 0)
                        n->stopping = true;
                else if (strcmp(line, "WATCHDOG=1") == 0) {
                        if (!n->ready)
                                n->n_early_pings++;
                        else if (n->n_pings < PINGS_MAX)
                                n->pings[n->n_pings++] = when;
                } else if (strncmp(line, "STATUS=", 7) == 0)
                        snprintf(n->status, sizeof(n->status), "%s", line + 7);
        }
}

/* Read notifications until timeout_usec passes, or until READY=1 when until_ready. */
static void notes_read(int fd, Notes *n, uint64_t timeout_usec, bool until_ready)
{
        uint64_t deadline = harness_now_usec() + timeout_usec;

        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                uint64_t now = harness_now_usec();
                char buf[4096];
                union {
                        struct cmsghdr align;
                        char space[CMSG_SPACE(sizeof(struct timeval))];
                } control;
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = &control,
                                    .msg_controllen = sizeof(control)};
                uint64_t when = realtime_usec();
                ssize_t len;

                if (now >= deadline || (until_ready && n->ready))
                        return;
                if (poll(&p, 1, (int) ((deadline - now) / 1000 + 1)) <= 0)
                        continue;
                len = recvmsg(fd, &mh, MSG_DONTWAIT);
                if (len < 0)
                        continue;
                buf[len] = 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMP) {
                                struct timeval tv;

                                memcpy(&tv, CMSG_DATA(c), sizeof(tv));
                                when = (uint64_t) tv.tv_sec * 1000000u + (uint64_t) tv.tv_usec;
                        }
                notes_add(n, buf, when);
        }
}

static bool process_is(pid_t pid, const char *comm)
{
        char path[64], buf[64] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        fclose(f);
        buf[strcspn(buf, "\n")] = 0;
        return strcmp(buf, comm) == 0;
}

static void check_watchdog(const Notes *n)
{
        uint64_t prev = n->ready_usec, min_gap = UINT64_MAX, max_gap = 0, sum = 0;
        char list[2048] = "";
        size_t used = 0;

        for (size_t i = 0; i < n->n_pings; i++) {
                uint64_t gap = n->pings[i] - prev;

                min_gap = gap < min_gap ? gap : min_gap;
                max_gap = gap > max_gap ? gap : max_gap;
                sum += gap;
                prev = n->pings[i];
                if (used < sizeof(list))
                        used += (size_t) snprintf(list + used, sizeof(list) - used, "%s%.0f",
                                                  i ? " " : "", (double) gap / 1000.0);
        }
        tap_diag("WATCHDOG_USEC=%u: %zu pings in %.1f s after READY=1; gaps (ms, the first "
                 "from READY=1): %s",
                 WATCHDOG_USEC, n->n_pings, WATCH_USEC / 1e6, list);
        if (n->n_pings)
                tap_diag("gaps min/avg/max: %.0f / %.0f / %.0f ms", (double) min_gap / 1000.0,
                         (double) sum / 1000.0 / (double) n->n_pings, (double) max_gap / 1000.0);
        /* At one ping per WATCHDOG_USEC at worst, 3 s hold at least 7. */
        cmp_int(n->n_pings, >=, WATCH_USEC / WATCHDOG_USEC, "WATCHDOG=1 keeps arriving");
        cmp_int(max_gap, <=, WATCHDOG_USEC, "no gap between pings exceeds WATCHDOG_USEC");
        /* sd-event pings at half to three quarters of the interval: not a busy loop. */
        cmp_int(n->n_pings, <=, 2 * WATCH_USEC / WATCHDOG_USEC + 2,
                "and they are paced, not flooded");
}

int main(void)
{
        char sock[256], notify[256], log_path[256], notify_env[300], *log = NULL;
        const char *const remove_env[] = {"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
                                          "LISTEN_FDS",    "LISTEN_PID",   NULL};
        char watchdog_env[64];
        Proc agent = PROC_NULL, monitor = PROC_NULL, p = PROC_NULL;
        Notes n = {};
        int fd, r;

        harness_init(60);
        if (access(ACTIVATOR, X_OK) < 0)
                tap_skip_all(ACTIVATOR " is not installed (package systemd)");
        harness_path(sock, sizeof(sock), "ss.sock");
        harness_path(notify, sizeof(notify), "notify.sock");
        harness_path(log_path, sizeof(log_path), "agent.log");
        fd = notify_open(notify);
        if (fd < 0) {
                ok(false, "bind the notify socket: %s", strerror(-fd));
                return harness_done();
        }
        snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", notify);
        snprintf(watchdog_env, sizeof(watchdog_env), "WATCHDOG_USEC=%u", WATCHDOG_USEC);

        r = proc_start(
            &agent,
            (const char *const[]){ACTIVATOR, "-l", sock, "-E", notify_env, "-E", watchdog_env,
                                  harness_smdagent(), "--no-system-policy", NULL},
            &(ProcOptions){.env = remove_env, .stdout_path = log_path, .stderr_path = log_path});
        is_int(r, 0, "systemd-socket-activate starts");
        if (r < 0)
                goto out;
        for (int i = 0; i < 500 && access(sock, F_OK) < 0; i++)
                harness_sleep_ms(10);
        ok(access(sock, F_OK) == 0, "the activator listens on %s", sock);
        notes_read(fd, &n, 300 * 1000, false);
        ok(!n.ready && n.n_early_pings == 0, "nothing is announced before a client connects");
        ok(process_is(agent.pid, "systemd-socket-"), "and the agent has not been started");

        /* The first client: a monitor, connecting to a socket nobody serves yet. */
        r = smdctl_start(&monitor, sock,
                         (const char *const[]){"monitor", "--class", "user0", "--count", "1",
                                               "--timeout", "10", NULL},
                         NULL);
        is_int(r, 0, "a first client (smdctl monitor) connects");
        notes_read(fd, &n, 5 * 1000000u, true);
        ok(n.ready, "READY=1 arrives once the client has connected");
        ok(process_is(agent.pid, "smdagent"), "the activator has become the agent");
        ok(strstr(n.status, sock) != NULL, "STATUS names the passed socket: \"%s\"", n.status);
        if (!n.ready)
                goto out;
        ok(wait_participants(sock, 1, 5000), "the first client became a bus participant");

        r = smdctl_run(
            &p, sock,
            (const char *const[]){"publish", "--class", "user0", "{\"first\":\"client\"}", NULL},
            NULL, 5000);
        is_int(proc_exit_code(&p), 0, "smdctl publish exits 0");
        proc_free(&p);
        r = proc_wait(&monitor, 5000);
        is_int(proc_exit_code(&monitor), 0, "the first client is served: its monitor exits 0");
        ok(monitor.out && strstr(monitor.out, "{\"first\":\"client\"}"),
           "and printed the message published after it connected");

        r = smdctl_run(&p, sock, (const char *const[]){"status", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "smdctl status exits 0");
        ok(p.out && strstr(p.out, "OPERATIONAL"), "status says OPERATIONAL");
        proc_free(&p);

        /* The watchdog, measured from READY=1 on. */
        {
                uint64_t elapsed = realtime_usec() - n.ready_usec;

                notes_read(fd, &n, elapsed < WATCH_USEC ? WATCH_USEC - elapsed : 0, false);
        }
        check_watchdog(&n);

        (void) kill(agent.pid, SIGTERM);
        r = proc_wait(&agent, 5000);
        is_int(r, 0, "SIGTERM: the agent exits by itself");
        is_int(proc_exit_code(&agent), 0, "with status 0");
        notes_read(fd, &n, 100 * 1000, false);
        ok(n.stopping, "STOPPING=1 arrives");
out : {
        FILE *f = fopen(log_path, "re");
        size_t size = 0;

        if (f) {
                log = calloc(1, 1 << 20);
                if (log)
                        size = fread(log, 1, (1 << 20) - 1, f);
                fclose(f);
        }
        ok(log && !harness_has_sanitizer_report(log), "no sanitizer report in the log");
        if (log && size < 4096)
                for (char *s = NULL, *line = strtok_r(log, "\n", &s); line;
                     line = strtok_r(NULL, "\n", &s))
                        tap_diag("agent: %s", line);
        free(log);
}
        proc_free(&monitor);
        proc_free(&agent);
        close(fd);
        return harness_done();
}

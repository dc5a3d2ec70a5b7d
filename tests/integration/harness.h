/* SPDX-License-Identifier: MIT */
/*
 * The integration test harness: real processes on a real socket. It makes a
 * private temporary directory, starts smdagent as a child with NOTIFY_SOCKET
 * pointing at a datagram socket the test owns, runs smdctl and captures what it
 * prints, speaks raw frames to the agent's socket, reads the agent's resident
 * memory, and stops everything it started.
 *
 * Every process started here is registered and killed (with its process group)
 * when the test exits, fails, times out or is killed; a watchdog alarm bounds
 * the whole program. The binaries come from the environment: $SMDAGENT and
 * $SMDCTL (meson passes the paths of the built ones).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "message.h"

/* The user the unprivileged tests run as (nobody). */
#define HARNESS_NOBODY 65534

/*
 * Start the TAP stream, install the cleanup handlers and arm a watchdog: after
 * timeout_sec the program kills its children, reports a failure and exits.
 * Reads $SMDAGENT and $SMDCTL; skips the whole program when they are missing.
 */
void harness_init(unsigned timeout_sec);
/* Finish: kill leftovers, remove the temporary directory, print the plan. */
int harness_done(void);

const char *harness_smdagent(void);
const char *harness_smdctl(void);
/* The private temporary directory (mode 0755, removed at exit). */
const char *harness_dir(void);
/* harness_dir()/name in buf. */
const char *harness_path(char *buf, size_t size, const char *name);

uint64_t harness_now_usec(void);
void harness_sleep_ms(unsigned ms);
/* True when this program was built with AddressSanitizer (memory figures differ). */
bool harness_asan(void);

/*
 * For tests that measure the agent's memory: under AddressSanitizer an
 * "ASAN_OPTIONS=...:quarantine_size_mb=1" environment entry (the quarantine of
 * freed memory would otherwise dominate RSS), else NULL. Use it in
 * AgentOptions.env only there: a small quarantine catches fewer use-after-free.
 */
const char *harness_asan_memory_env(void);

/* Whether text contains an AddressSanitizer, LeakSanitizer or UBSan report. */
bool harness_has_sanitizer_report(const char *text);

/* Processes. */

typedef struct ProcOptions {
        /* "NAME=value" to set, "NAME" to remove; NULL-terminated, may be NULL. */
        const char *const *env;
        /* Send stdout/stderr to this file instead of capturing them in memory. */
        const char *stdout_path;
        const char *stderr_path;
} ProcOptions;

typedef struct Proc {
        pid_t pid;
        int out_fd, err_fd; /* capture pipes, -1 when not capturing */
        char *out, *err;    /* NUL-terminated captures (never NULL after proc_wait) */
        size_t out_len, err_len;
        bool exited;
        int status; /* waitpid() status */
} Proc;

#define PROC_NULL                                     \
        {                                             \
                .pid = -1, .out_fd = -1, .err_fd = -1 \
        }

/* Start argv[0] (searched in PATH) in a process group of its own. */
int proc_start(Proc *p, const char *const *argv, const ProcOptions *o);
/*
 * Wait up to timeout_ms for the process to exit, collecting its output.
 * Returns 0, or -ETIMEDOUT after killing it. A sanitizer report in what it
 * printed fails a check.
 */
int proc_wait(Proc *p, unsigned timeout_ms);
/* Kill (SIGKILL, whole group) and reap; harmless on a process that is gone. */
void proc_kill(Proc *p);
void proc_free(Proc *p);
/* Exit code, or 128 + signal, or -1 while running. */
int proc_exit_code(const Proc *p);
/* Non-zero when exited and stdout/stderr have no sanitizer report; else it fails a check. */
bool proc_check_sanitizer(const Proc *p, const char *what);
/* Start and wait; the Proc must be freed. */
int proc_run(Proc *p, const char *const *argv, const ProcOptions *o, unsigned timeout_ms);

/* Number of lines in text (a last line without newline counts). */
size_t text_lines(const char *text);

/*
 * Fork a helper process of the test itself (a libsmd publisher, say). The
 * child runs fn(arg) and _exit()s with its return value; it dies with the
 * test. Returns the pid, registered for cleanup.
 */
pid_t harness_fork(int (*fn)(void *arg), void *arg);
/* The exit code of a forked helper that has exited, or -EAGAIN while it runs. */
int harness_poll_pid(pid_t pid);
/* Wait up to timeout_ms for a forked helper; returns the exit code or -ETIMEDOUT (killed). */
int harness_wait_pid(pid_t pid, unsigned timeout_ms);

/* The agent. */

typedef struct AgentOptions {
        /* The socket to pass with --socket; NULL: harness_dir()/ss.sock; "" for none. */
        const char *socket_path;
        /* Run as this command prefix, for example setpriv ... (NULL-terminated). */
        const char *const *prefix;
        const char *const *env;  /* extra environment, as in ProcOptions */
        const char *const *args; /* extra arguments after the socket option */
        const char *name;        /* log and notify socket names; default "agent" */
} AgentOptions;

typedef struct Agent {
        Proc proc;
        char socket_path[256];
        char notify_path[256];
        char log_path[256];
        int notify_fd;
        bool ready;
        bool stopping;
        unsigned n_status;
        char status[512]; /* the last STATUS= */
} Agent;

/* Start without waiting; binds the notify socket first. */
int agent_spawn(Agent *a, const AgentOptions *o);
/* Read notifications until READY=1, up to timeout_ms; 0 or -ETIMEDOUT/-ECHILD. */
int agent_wait_ready(Agent *a, unsigned timeout_ms);
/* Spawn and wait for READY=1 (5 s), reporting failures as checks. */
bool agent_start(Agent *a, const AgentOptions *o);
/* Drain pending notifications (non-blocking). */
void agent_poll_notify(Agent *a);
/* SIGTERM, wait up to timeout_ms; returns the exit code (or -ETIMEDOUT, killed). */
int agent_stop(Agent *a, unsigned timeout_ms);
/* The same with another signal. */
int agent_stop_signal(Agent *a, int sig, unsigned timeout_ms);
/* Fail a check if the agent's log holds a sanitizer report; returns true if clean. */
bool agent_check_log(Agent *a);
/* The agent's log (stdout and stderr) so far; free() it. Never NULL. */
char *agent_log(Agent *a);
/* Print the end of the agent's log as TAP diagnostics. */
void agent_dump_log(Agent *a);
/* Free everything; kills the agent if it still runs. */
void agent_free(Agent *a);

/* VmRSS of pid in KiB, or a negative errno. */
long proc_rss_kib(pid_t pid);

/* smdctl: run with "-s socket" (socket may be NULL: no -s). */
int smdctl_run(Proc *p, const char *socket, const char *const *args, const ProcOptions *o,
               unsigned timeout_ms);
int smdctl_start(Proc *p, const char *socket, const char *const *args, const ProcOptions *o);

/* Control: the number of bus participants, or a negative errno. */
int agent_participants(const char *socket);
/* Wait until the agent counts n participants; returns true on success. */
bool wait_participants(const char *socket, int n, unsigned timeout_ms);

/* Raw frame clients. */

typedef struct RawClient {
        int fd;
        uint8_t *buf;
        size_t len, off, size;
        bool eof;
} RawClient;

/* Blocking connect (then non-blocking I/O). */
int raw_connect(RawClient *c, const char *path);
/* Write all of it, up to 5 s. */
int raw_send(RawClient *c, const void *data, size_t size);
int raw_send_streamtype(RawClient *c, const char *name, uint32_t credit);
/* TX_PAYLOAD with the 16-byte smd header. */
int raw_send_publish(RawClient *c, uint64_t classes, const void *payload, size_t size);
/*
 * Wait up to timeout_ms for one whole frame: 1 with *f (valid until the next
 * call), 0 when the agent closed the connection, -ETIMEDOUT, -EBADMSG.
 */
int raw_recv(RawClient *c, Frame *f, int timeout_ms);
/* Open _lws_smd with a filter and expect CREATE_RESULT 0; returns 0 or <0. */
int raw_open_smd(RawClient *c, const char *path, uint32_t filter);
/* Discard frames until the agent closes; returns ms waited, or -ETIMEDOUT. */
long raw_wait_closed(RawClient *c, int timeout_ms);
void raw_close(RawClient *c);

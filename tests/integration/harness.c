/* SPDX-License-Identifier: MIT */
/*
 * The integration test harness (see harness.h). Everything here is plain
 * POSIX plus the frame codec; the only state is the list of processes we
 * started and the temporary directory, both torn down at exit, on a fatal
 * signal and when the watchdog fires.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smd/smd.h"
#include "tap.h"
#include "util.h"

extern char **environ;

#define PIDS_MAX 2048

static pid_t main_pid;
static pid_t pids[PIDS_MAX];
static size_t n_pids;
static char tmp_dir[64];
static const char *smdagent_path, *smdctl_path;
static unsigned watchdog_sec;

static void pid_register(pid_t pid)
{
        if (n_pids < PIDS_MAX)
                pids[n_pids++] = pid;
}

static void pid_forget(pid_t pid)
{
        for (size_t i = 0; i < n_pids; i++)
                if (pids[i] == pid) {
                        pids[i] = pids[--n_pids];
                        return;
                }
}

/* Async-signal-safe: only kill, waitpid, fork, execve, write. */
static void kill_everything(void)
{
        for (size_t i = 0; i < n_pids; i++) {
                (void) kill(-pids[i], SIGKILL);
                (void) kill(pids[i], SIGKILL);
        }
        for (size_t i = 0; i < n_pids; i++)
                (void) waitpid(pids[i], NULL, 0);
        n_pids = 0;
}

static void remove_tmp_dir(void)
{
        static char *const envp[] = {NULL};
        char *argv[] = {"/bin/rm", "-rf", "--", tmp_dir, NULL};
        pid_t pid;

        if (!tmp_dir[0] || getenv("SMD_TEST_KEEP"))
                return;
        pid = fork();
        if (pid == 0) {
                execve(argv[0], argv, envp);
                _exit(127);
        }
        if (pid > 0)
                (void) waitpid(pid, NULL, 0);
        tmp_dir[0] = 0;
}

static void on_exit_cleanup(void)
{
        if (getpid() != main_pid)
                return;
        kill_everything();
        remove_tmp_dir();
}

static void on_fatal_signal(int sig)
{
        static const char alarm_msg[] = "Bail out! the test ran past its watchdog\n";
        static const char kill_msg[] = "Bail out! the test was killed\n";

        if (getpid() != main_pid)
                _exit(128 + sig);
        if (sig == SIGALRM)
                (void) !write(STDOUT_FILENO, alarm_msg, sizeof(alarm_msg) - 1);
        else
                (void) !write(STDOUT_FILENO, kill_msg, sizeof(kill_msg) - 1);
        kill_everything();
        remove_tmp_dir();
        _exit(1);
}

void harness_init(unsigned timeout_sec)
{
        struct sigaction sa = {.sa_handler = on_fatal_signal};

        tap_init();
        main_pid = getpid();
        smdagent_path = getenv("SMDAGENT");
        smdctl_path = getenv("SMDCTL");
        if (!smdagent_path || !smdctl_path)
                tap_skip_all("SMDAGENT and SMDCTL must name the built binaries (run via meson)");
        /* Children must not inherit anything that changes where they talk. */
        (void) unsetenv("SMD_SOCKET");
        (void) unsetenv("NOTIFY_SOCKET");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDNAMES");
        (void) unsetenv("WATCHDOG_USEC");
        (void) unsetenv("JOURNAL_STREAM");

        strcpy(tmp_dir, "/tmp/smd-it-XXXXXX");
        if (!mkdtemp(tmp_dir)) {
                tmp_dir[0] = 0;
                tap_skip_all("cannot create a temporary directory");
        }
        /* Others (the unprivileged tests) must be able to reach into it. */
        (void) chmod(tmp_dir, 0755);
        if (getenv("SMD_TEST_KEEP"))
                tap_diag("keeping %s", tmp_dir);

        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        atexit(on_exit_cleanup);
        watchdog_sec = timeout_sec;
        alarm(timeout_sec);
}

int harness_done(void)
{
        alarm(0);
        kill_everything();
        remove_tmp_dir();
        return tap_done();
}

const char *harness_smdagent(void)
{
        return smdagent_path;
}

const char *harness_smdctl(void)
{
        return smdctl_path;
}

const char *harness_dir(void)
{
        return tmp_dir;
}

const char *harness_path(char *buf, size_t size, const char *name)
{
        snprintf(buf, size, "%s/%s", tmp_dir, name);
        return buf;
}

uint64_t harness_now_usec(void)
{
        return now_usec(CLOCK_MONOTONIC);
}

void harness_sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

bool harness_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
        return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
        return true;
#else
        return false;
#endif
#else
        return false;
#endif
}

const char *harness_asan_memory_env(void)
{
        static char env[512];
        const char *old = getenv("ASAN_OPTIONS");

        if (!harness_asan())
                return NULL;
        snprintf(env, sizeof(env), "ASAN_OPTIONS=%s%squarantine_size_mb=1", old ? old : "",
                 old && *old ? ":" : "");
        return env;
}

bool harness_has_sanitizer_report(const char *text)
{
        return text && (strstr(text, "ERROR: AddressSanitizer") || strstr(text, "LeakSanitizer") ||
                        strstr(text, "runtime error:"));
}

/* Processes */

static char **env_build(const char *const *changes)
{
        size_t n = 0, k = 0;
        char **env;

        for (char **e = environ; *e; e++)
                n++;
        for (const char *const *c = changes; c && *c; c++)
                n++;
        env = calloc(n + 1, sizeof(char *));
        if (!env)
                return NULL;
        for (char **e = environ; *e; e++) {
                bool drop = false;

                for (const char *const *c = changes; c && *c; c++) {
                        size_t len = strcspn(*c, "=");
                        if (strncmp(*e, *c, len) == 0 && (*e)[len] == '=')
                                drop = true;
                }
                if (!drop)
                        env[k++] = *e;
        }
        for (const char *const *c = changes; c && *c; c++)
                if (strchr(*c, '='))
                        env[k++] = (char *) *c;
        env[k] = NULL;
        return env;
}

static int open_output(const char *path)
{
        return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int proc_start(Proc *p, const char *const *argv, const ProcOptions *o)
{
        static const ProcOptions none = {};
        int out[2] = {-1, -1}, err[2] = {-1, -1};
        int out_file = -1, err_file = -1;
        char **env;
        pid_t pid, parent;

        if (!o)
                o = &none;
        *p = (Proc){.pid = -1, .out_fd = -1, .err_fd = -1};
        if (o->stdout_path)
                out_file = open_output(o->stdout_path);
        else if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        if (o->stderr_path)
                err_file = open_output(o->stderr_path);
        else if (pipe2(err, O_CLOEXEC) < 0)
                return -errno;
        env = env_build(o->env);
        if (!env)
                return -ENOMEM;

        fflush(stdout);
        parent = getpid();
        pid = fork();
        if (pid < 0) {
                free(env);
                return -errno;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);
                sigset_t all;

                (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                signal(SIGPIPE, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                signal(SIGALRM, SIG_DFL);
                dup2(null, STDIN_FILENO);
                dup2(o->stdout_path ? out_file : out[1], STDOUT_FILENO);
                dup2(o->stderr_path ? err_file : err[1], STDERR_FILENO);
                execvpe(argv[0], (char *const *) argv, env);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        (void) setpgid(pid, pid);
        pid_register(pid);
        free(env);
        safe_close(out[1]);
        safe_close(err[1]);
        safe_close(out_file);
        safe_close(err_file);
        p->pid = pid;
        p->out_fd = out[0];
        p->err_fd = err[0];
        if (p->out_fd >= 0)
                (void) fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
        if (p->err_fd >= 0)
                (void) fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
        return 0;
}

static void capture(int *fd, char **buf, size_t *len)
{
        char tmp[4096];

        for (;;) {
                ssize_t n = read(*fd, tmp, sizeof(tmp));
                if (n > 0) {
                        char *b = realloc(*buf, *len + (size_t) n + 1);
                        if (!b)
                                return;
                        memcpy(b + *len, tmp, (size_t) n);
                        *len += (size_t) n;
                        b[*len] = 0;
                        *buf = b;
                        continue;
                }
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        *fd = safe_close(*fd);
                return;
        }
}

static void reap(Proc *p, bool block)
{
        int status;

        if (p->exited || p->pid <= 0)
                return;
        if (waitpid(p->pid, &status, block ? 0 : WNOHANG) == p->pid) {
                p->exited = true;
                p->status = status;
                pid_forget(p->pid);
        }
}

static void proc_finish_output(Proc *p)
{
        if (!p->out)
                p->out = calloc(1, 1);
        if (!p->err)
                p->err = calloc(1, 1);
}

int proc_wait(Proc *p, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;

        for (;;) {
                struct pollfd fds[2];
                nfds_t n = 0;
                uint64_t now;

                if (p->out_fd >= 0)
                        fds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
                if (p->err_fd >= 0)
                        fds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
                reap(p, false);
                if (p->exited && n == 0)
                        break;
                now = harness_now_usec();
                if (now >= deadline) {
                        bool was_running = !p->exited;
                        proc_kill(p);
                        proc_finish_output(p);
                        return was_running ? -ETIMEDOUT : 0;
                }
                (void) poll(fds, n, (int) MIN((deadline - now) / 1000 + 1, 20u));
                if (p->out_fd >= 0)
                        capture(&p->out_fd, &p->out, &p->out_len);
                if (p->err_fd >= 0)
                        capture(&p->err_fd, &p->err, &p->err_len);
        }
        proc_finish_output(p);
        (void) proc_check_sanitizer(p, "child process");
        return 0;
}

void proc_kill(Proc *p)
{
        if (p->pid > 0 && !p->exited) {
                (void) kill(-p->pid, SIGKILL);
                (void) kill(p->pid, SIGKILL);
                reap(p, true);
        }
        if (p->out_fd >= 0)
                capture(&p->out_fd, &p->out, &p->out_len);
        if (p->err_fd >= 0)
                capture(&p->err_fd, &p->err, &p->err_len);
        p->out_fd = safe_close(p->out_fd);
        p->err_fd = safe_close(p->err_fd);
}

void proc_free(Proc *p)
{
        proc_kill(p);
        free(p->out);
        free(p->err);
        *p = (Proc){.pid = -1, .out_fd = -1, .err_fd = -1};
}

int proc_exit_code(const Proc *p)
{
        if (!p->exited)
                return -1;
        if (WIFEXITED(p->status))
                return WEXITSTATUS(p->status);
        if (WIFSIGNALED(p->status))
                return 128 + WTERMSIG(p->status);
        return -1;
}

bool proc_check_sanitizer(const Proc *p, const char *what)
{
        if (!harness_has_sanitizer_report(p->out) && !harness_has_sanitizer_report(p->err))
                return true;
        ok(false, "%s: no sanitizer report", what);
        tap_diag("%s", p->err ? p->err : "");
        return false;
}

int proc_run(Proc *p, const char *const *argv, const ProcOptions *o, unsigned timeout_ms)
{
        int r = proc_start(p, argv, o);

        if (r < 0)
                return r;
        return proc_wait(p, timeout_ms);
}

size_t text_lines(const char *text)
{
        size_t n = 0;

        if (!text)
                return 0;
        for (const char *s = text; *s; s++)
                if (*s == '\n' || s[1] == 0)
                        n++;
        return n;
}

pid_t harness_fork(int (*fn)(void *arg), void *arg)
{
        pid_t pid, parent = getpid();

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                signal(SIGALRM, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                _exit(fn(arg));
        }
        (void) setpgid(pid, pid);
        pid_register(pid);
        return pid;
}

int harness_poll_pid(pid_t pid)
{
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == 0)
                return -EAGAIN;
        if (r < 0)
                return -errno;
        pid_forget(pid);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int harness_wait_pid(pid_t pid, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);

                if (r == pid)
                        break;
                if (r < 0)
                        return -errno;
                if (harness_now_usec() >= deadline) {
                        (void) kill(-pid, SIGKILL);
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                        pid_forget(pid);
                        return -ETIMEDOUT;
                }
                harness_sleep_ms(5);
        }
        pid_forget(pid);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The agent */

static int notify_bind(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        /* An agent running as another user must be able to send to it. */
        (void) chmod(path, 0666);
        return fd;
}

int agent_spawn(Agent *a, const AgentOptions *o)
{
        static const AgentOptions none = {};
        const char *argv[64];
        const char *env[32];
        char notify_env[300];
        const char *name;
        size_t n = 0, k = 0;
        int r;

        if (!o)
                o = &none;
        name = o->name ? o->name : "agent";
        *a = (Agent){.notify_fd = -1, .proc = {.pid = -1, .out_fd = -1, .err_fd = -1}};
        if (!o->socket_path)
                harness_path(a->socket_path, sizeof(a->socket_path), "ss.sock");
        else
                snprintf(a->socket_path, sizeof(a->socket_path), "%s", o->socket_path);
        snprintf(a->notify_path, sizeof(a->notify_path), "%s/%s-notify.sock", harness_dir(), name);
        snprintf(a->log_path, sizeof(a->log_path), "%s/%s.log", harness_dir(), name);
        (void) unlink(a->log_path);
        a->notify_fd = notify_bind(a->notify_path);
        if (a->notify_fd < 0)
                return a->notify_fd;

        for (const char *const *p = o->prefix; p && *p; p++)
                argv[n++] = *p;
        argv[n++] = harness_smdagent();
        if (a->socket_path[0]) {
                argv[n++] = "--socket";
                argv[n++] = a->socket_path;
        }
        for (const char *const *p = o->args; p && *p && n < ELEMENTSOF(argv) - 1; p++)
                argv[n++] = *p;
        argv[n] = NULL;

        snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", a->notify_path);
        env[k++] = notify_env;
        for (const char *const *p = o->env; p && *p && k < ELEMENTSOF(env) - 1; p++)
                env[k++] = *p;
        env[k] = NULL;

        r = proc_start(
            &a->proc, argv,
            &(ProcOptions){.env = env, .stdout_path = a->log_path, .stderr_path = a->log_path});
        return r;
}

static void notify_parse(Agent *a, char *msg)
{
        char *save = NULL;

        for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (streq(line, "READY=1"))
                        a->ready = true;
                else if (streq(line, "STOPPING=1"))
                        a->stopping = true;
                else if (strncmp(line, "STATUS=", 7) == 0) {
                        snprintf(a->status, sizeof(a->status), "%s", line + 7);
                        a->n_status++;
                }
        }
}

void agent_poll_notify(Agent *a)
{
        char buf[4096];

        if (a->notify_fd < 0)
                return;
        for (;;) {
                ssize_t n = recv(a->notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                if (n < 0)
                        return;
                buf[n] = 0;
                notify_parse(a, buf);
        }
}

int agent_wait_ready(Agent *a, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;

        for (;;) {
                struct pollfd p = {.fd = a->notify_fd, .events = POLLIN};
                uint64_t now;

                agent_poll_notify(a);
                if (a->ready)
                        return 0;
                reap(&a->proc, false);
                if (a->proc.exited)
                        return -ECHILD;
                now = harness_now_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                (void) poll(&p, 1, (int) MIN((deadline - now) / 1000 + 1, 50u));
        }
}

bool agent_start(Agent *a, const AgentOptions *o)
{
        int r = agent_spawn(a, o);

        if (r < 0) {
                ok(false, "start the agent: %s", strerror(-r));
                return false;
        }
        r = agent_wait_ready(a, 5000);
        if (r < 0) {
                ok(false, "agent sent READY=1 (%s)",
                   r == -ECHILD ? "it exited" : "timed out after 5 s");
                agent_dump_log(a);
                return false;
        }
        return true;
}

int agent_stop(Agent *a, unsigned timeout_ms)
{
        return agent_stop_signal(a, SIGTERM, timeout_ms);
}

int agent_stop_signal(Agent *a, int sig, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;

        if (a->proc.pid <= 0)
                return -ESRCH;
        if (!a->proc.exited)
                (void) kill(a->proc.pid, sig);
        while (!a->proc.exited) {
                reap(&a->proc, false);
                if (a->proc.exited)
                        break;
                if (harness_now_usec() >= deadline) {
                        proc_kill(&a->proc);
                        agent_poll_notify(a);
                        return -ETIMEDOUT;
                }
                harness_sleep_ms(5);
        }
        agent_poll_notify(a);
        return proc_exit_code(&a->proc);
}

static char *read_file(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        if (!f)
                return NULL;
        if (getdelim(&buf, &len, 0, f) < 0) {
                free(buf);
                buf = strdup("");
        }
        fclose(f);
        return buf;
}

char *agent_log(Agent *a)
{
        char *log = read_file(a->log_path);

        return log ? log : strdup("");
}

bool agent_check_log(Agent *a)
{
        char *log = read_file(a->log_path);
        bool clean = !harness_has_sanitizer_report(log);

        ok(clean, "agent log has no sanitizer report");
        if (!clean)
                agent_dump_log(a);
        free(log);
        return clean;
}

void agent_dump_log(Agent *a)
{
        char *log = read_file(a->log_path);
        size_t len;
        const char *start;

        if (!log)
                return;
        len = strlen(log);
        start = len > 3000 ? log + len - 3000 : log;
        tap_diag("agent log (%s), last part:", a->log_path);
        tap_diag("%s", start);
        free(log);
}

void agent_free(Agent *a)
{
        proc_free(&a->proc);
        a->notify_fd = safe_close(a->notify_fd);
        if (a->notify_path[0])
                (void) unlink(a->notify_path);
}

long proc_rss_kib(pid_t pid)
{
        char path[64], line[256];
        FILE *f;
        long kib = -ENOENT;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static size_t smdctl_argv(const char **argv, size_t max, const char *socket,
                          const char *const *args)
{
        size_t n = 0;

        argv[n++] = harness_smdctl();
        if (socket) {
                argv[n++] = "-s";
                argv[n++] = socket;
        }
        for (const char *const *p = args; p && *p && n < max - 1; p++)
                argv[n++] = *p;
        argv[n] = NULL;
        return n;
}

int smdctl_start(Proc *p, const char *socket, const char *const *args, const ProcOptions *o)
{
        const char *argv[32];

        smdctl_argv(argv, ELEMENTSOF(argv), socket, args);
        return proc_start(p, argv, o);
}

int smdctl_run(Proc *p, const char *socket, const char *const *args, const ProcOptions *o,
               unsigned timeout_ms)
{
        const char *argv[32];

        smdctl_argv(argv, ELEMENTSOF(argv), socket, args);
        return proc_run(p, argv, o, timeout_ms);
}

int agent_participants(const char *socket)
{
        char *reply = NULL;
        json_object *o, *v;
        int r = smd_control(socket, "{\"cmd\":\"status\"}", &reply, 2 * USEC_PER_SEC);

        if (r < 0)
                return r;
        o = json_tokener_parse(reply);
        free(reply);
        if (!o)
                return -EBADMSG;
        r = json_object_object_get_ex(o, "participants", &v) ? json_object_get_int(v) : -EBADMSG;
        json_object_put(o);
        return r;
}

bool wait_participants(const char *socket, int n, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;
        int have;

        for (;;) {
                have = agent_participants(socket);
                if (have == n)
                        return true;
                if (harness_now_usec() >= deadline)
                        break;
                harness_sleep_ms(10);
        }
        tap_diag("waited %u ms for %d participants; the agent counts %d", timeout_ms, n, have);
        return false;
}

/* Raw frame clients */

int raw_connect(RawClient *c, const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        int fd;

        *c = (RawClient){.fd = -1};
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        (void) fcntl(fd, F_SETFL, O_NONBLOCK);
        c->fd = fd;
        return 0;
}

int raw_send(RawClient *c, const void *data, size_t size)
{
        uint64_t deadline = harness_now_usec() + 5 * USEC_PER_SEC;
        const uint8_t *p = data;

        while (size > 0) {
                ssize_t n = send(c->fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};

                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        if (harness_now_usec() >= deadline)
                                return -ETIMEDOUT;
                        (void) poll(&pfd, 1, 50);
                        continue;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int raw_send_streamtype(RawClient *c, const char *name, uint32_t credit)
{
        uint8_t buf[FRAME_HEADER_SIZE + 9 + FRAME_STREAMTYPE_MAX];
        int n = frame_encode_streamtype(buf, (uint32_t) getpid(), credit, name);

        if (n < 0)
                return n;
        return raw_send(c, buf, (size_t) n);
}

int raw_send_publish(RawClient *c, uint64_t classes, const void *payload, size_t size)
{
        uint8_t body[MESSAGE_HEADER_SIZE + 1024];
        uint8_t frame[FRAME_PAYLOAD_OVERHEAD + sizeof(body)];
        int n;

        if (size > sizeof(body) - MESSAGE_HEADER_SIZE)
                return -E2BIG;
        message_header_write(body, classes, 0);
        memcpy(body + MESSAGE_HEADER_SIZE, payload, size);
        n = frame_encode_payload(frame, FRAME_TX_PAYLOAD, FRAME_FLAG_SOM | FRAME_FLAG_EOM, 0, 0,
                                 body, MESSAGE_HEADER_SIZE + size);
        if (n < 0)
                return n;
        return raw_send(c, frame, (size_t) n);
}

int raw_recv(RawClient *c, Frame *f, int timeout_ms)
{
        uint64_t deadline =
            harness_now_usec() + (uint64_t) (timeout_ms < 0 ? 0 : timeout_ms) * 1000;

        for (;;) {
                size_t used;
                ssize_t n;
                int r;

                if (c->off < c->len) {
                        r = frame_parse(c->buf + c->off, c->len - c->off, FRAME_TO_CLIENT, f,
                                        &used);
                        if (r < 0)
                                return -EBADMSG;
                        if (r > 0) {
                                c->off += used;
                                return 1;
                        }
                }
                if (c->eof)
                        return 0;
                /* Keep the partial frame; make room for the largest one. */
                if (c->off > 0) {
                        memmove(c->buf, c->buf + c->off, c->len - c->off);
                        c->len -= c->off;
                        c->off = 0;
                }
                if (c->size - c->len < 16384) {
                        size_t size = MAX(c->size * 2, (size_t) 32768);
                        uint8_t *b;

                        size = MIN(size, (size_t) (FRAME_HEADER_SIZE + FRAME_BODY_MAX) * 2);
                        if (size > c->size) {
                                b = realloc(c->buf, size);
                                if (!b)
                                        return -ENOMEM;
                                c->buf = b;
                                c->size = size;
                        }
                }
                n = recv(c->fd, c->buf + c->len, c->size - c->len, MSG_DONTWAIT);
                if (n > 0) {
                        c->len += (size_t) n;
                        continue;
                }
                if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                        c->eof = true;
                        continue;
                }
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                {
                        uint64_t now = harness_now_usec();
                        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

                        if (now >= deadline)
                                return -ETIMEDOUT;
                        (void) poll(&pfd, 1, (int) MIN((deadline - now) / 1000 + 1, 1000u));
                }
        }
}

int raw_open_smd(RawClient *c, const char *path, uint32_t filter)
{
        Frame f;
        int r = raw_connect(c, path);

        if (r < 0)
                return r;
        r = raw_send_streamtype(c, "_lws_smd", filter);
        if (r < 0)
                return r;
        r = raw_recv(c, &f, 5000);
        if (r < 0)
                return r;
        if (r == 0)
                return -ECONNRESET;
        if (f.type != FRAME_CREATE_RESULT || f.create_result.result != 0)
                return -EPROTO;
        return 0;
}

long raw_wait_closed(RawClient *c, int timeout_ms)
{
        uint64_t start = harness_now_usec(), deadline = start + (uint64_t) timeout_ms * 1000;

        for (;;) {
                Frame f;
                uint64_t now = harness_now_usec();
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = raw_recv(c, &f, (int) ((deadline - now) / 1000 + 1));
                if (r == 0)
                        return (long) ((harness_now_usec() - start) / 1000);
                if (r < 0 && r != -ETIMEDOUT)
                        return r;
        }
}

void raw_close(RawClient *c)
{
        c->fd = safe_close(c->fd);
        c->buf = mfree(c->buf);
        c->len = c->off = c->size = 0;
}

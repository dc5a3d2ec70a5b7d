/* SPDX-License-Identifier: MIT */
/*
 * The agent's life as a service manager sees it: READY=1 and STATUS= on
 * NOTIFY_SOCKET, an orderly SIGTERM (exit 0, STOPPING=1, socket gone), a
 * second agent refusing to steal a live socket, the command line, and socket
 * activation through systemd-socket-activate.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static void test_ready_and_stop(void)
{
        Agent a, second;
        Proc p;
        struct stat st;
        char *log;
        int code;

        if (!agent_start(
                &a, &(AgentOptions){.args = (const char *const[]){"--log-level", "debug", NULL}}))
                goto out;
        ok(a.ready, "READY=1 arrives on NOTIFY_SOCKET");
        cmp_int(a.n_status, >=, 1, "STATUS= arrives");
        ok(strstr(a.status, "OPERATIONAL") != NULL, "STATUS says OPERATIONAL: \"%s\"", a.status);
        ok(strstr(a.status, a.socket_path) != NULL, "STATUS names the socket");
        ok(stat(a.socket_path, &st) == 0 && S_ISSOCK(st.st_mode), "socket file exists");
        is_int(st.st_mode & 07777, 0660, "socket mode is 0660");

        /* A second agent must not steal a socket that answers. */
        code =
            agent_spawn(&second, &(AgentOptions){.socket_path = a.socket_path, .name = "second"});
        if (code == 0)
                code = proc_wait(&second.proc, 5000);
        is_int(code, 0, "second agent exits by itself");
        is_int(proc_exit_code(&second.proc), 1, "second agent on the same socket exits 1");
        log = agent_log(&second);
        ok(log && strstr(log, "already"), "second agent says another agent is already listening");
        free(log);
        agent_poll_notify(&second);
        ok(!second.ready, "second agent never sent READY=1");
        ok(stat(a.socket_path, &st) == 0 && S_ISSOCK(st.st_mode),
           "the first agent's socket file is still there");
        (void) agent_check_log(&second);
        agent_free(&second);

        code = smdctl_run(&p, a.socket_path, (const char *const[]){"status", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "the first agent still serves: smdctl status exits 0");
        ok(strstr(p.out, "OPERATIONAL") != NULL, "status says OPERATIONAL");
        proc_free(&p);
        log = agent_log(&a);
        ok(strstr(log, "debug") != NULL, "--log-level debug: the log has debug lines");
        free(log);

        /* SIGHUP reloads (or logs that it cannot); it never stops the agent. */
        is_int(kill(a.proc.pid, SIGHUP), 0, "send SIGHUP");
        smdctl_run(&p, a.socket_path, (const char *const[]){"status", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "the agent still serves after SIGHUP");
        proc_free(&p);

        ok(!a.stopping, "no STOPPING=1 before SIGTERM");
        code = agent_stop(&a, 5000);
        is_int(code, 0, "SIGTERM: the agent exits 0");
        ok(a.stopping, "STOPPING=1 seen");
        ok(access(a.socket_path, F_OK) < 0 && errno == ENOENT, "socket file is gone");
        (void) agent_check_log(&a);
out:
        agent_free(&a);
}

static void test_sigint(void)
{
        Agent a;

        if (!agent_start(&a, &(AgentOptions){.name = "sigint"}))
                goto out;
        is_int(agent_stop_signal(&a, SIGINT, 5000), 0, "SIGINT: the agent exits 0");
        ok(a.stopping, "STOPPING=1 seen");
        ok(access(a.socket_path, F_OK) < 0, "socket file is gone");
        (void) agent_check_log(&a);
out:
        agent_free(&a);
}

static void test_command_line(void)
{
        Proc p;

        proc_run(&p, (const char *const[]){harness_smdagent(), "--version", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "smdagent --version exits 0");
        ok(strncmp(p.out, "smdagent ", 9) == 0 && text_lines(p.out) == 1,
           "--version prints one line \"smdagent VERSION\": %s", p.out);
        proc_free(&p);

        proc_run(&p, (const char *const[]){harness_smdagent(), "--help", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "smdagent --help exits 0");
        ok(strstr(p.out, "--socket") && strstr(p.out, "--policy") && strstr(p.out, "--log-level"),
           "--help lists the options");
        proc_free(&p);

        proc_run(&p, (const char *const[]){harness_smdagent(), "--no-such-option", NULL}, NULL,
                 5000);
        is_int(proc_exit_code(&p), 2, "a bad option exits 2");
        ok(p.err_len > 0 && p.out_len == 0, "and says so on stderr only");
        proc_free(&p);

        proc_run(&p, (const char *const[]){harness_smdagent(), "stray", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 2, "a stray argument exits 2");
        proc_free(&p);

        proc_run(&p, (const char *const[]){harness_smdagent(), "--log-level", "loud", NULL}, NULL,
                 5000);
        is_int(proc_exit_code(&p), 2, "an unknown log level exits 2");
        proc_free(&p);
}

static void test_socket_activation(void)
{
        const char *ssa = "/usr/bin/systemd-socket-activate";
        char sock[256], notify_env[300];
        Agent a;
        Proc p;
        int r;

        if (access(ssa, X_OK) < 0) {
                tap_skip("socket activation", "systemd-socket-activate is not installed");
                return;
        }
        harness_path(sock, sizeof(sock), "activated.sock");
        /*
         * Spawn the agent with no socket of its own and systemd-socket-activate
         * in front: it listens on sock and starts the agent on the first
         * connection, passing the listening socket.
         */
        snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s/activated-notify.sock",
                 harness_dir());
        r = agent_spawn(
            &a, &(AgentOptions){
                    .socket_path = "",
                    .name = "activated",
                    .prefix = (const char *const[]){ssa, "-l", sock, "-E", notify_env, NULL},
                });
        is_int(r, 0, "systemd-socket-activate starts");
        if (r < 0)
                goto out;
        snprintf(a.socket_path, sizeof(a.socket_path), "%s", sock);
        /* Wait for the activator to listen, then check that nothing started yet. */
        for (int i = 0; i < 3000 && access(sock, F_OK) < 0; i++)
                harness_sleep_ms(10);
        ok(access(sock, F_OK) == 0, "the activator listens on the socket");
        r = agent_wait_ready(&a, 300);
        is_int(r, -ETIMEDOUT, "no agent runs before a client connects");

        r = smdctl_run(&p, sock, (const char *const[]){"--json", "status", NULL}, NULL, 10000);
        is_int(proc_exit_code(&p), 0, "the first client triggers the start and is served");
        ok(strstr(p.out, "\"socket_activated\":true") != NULL,
           "status says the agent was socket activated");
        ok(strstr(p.out, sock) != NULL, "status names the activated socket");
        if (proc_exit_code(&p) != 0)
                tap_diag("smdctl: %s%s", p.out, p.err);
        proc_free(&p);
        is_int(agent_wait_ready(&a, 5000), 0, "the activated agent sends READY=1");

        is_int(agent_stop(&a, 5000), 0, "the activated agent exits 0 on SIGTERM");
        ok(a.stopping, "STOPPING=1 seen");
        (void) agent_check_log(&a);
out:
        agent_free(&a);
}

int main(void)
{
        harness_init(60);
        test_ready_and_stop();
        test_sigint();
        test_command_line();
        test_socket_activation();
        return harness_done();
}

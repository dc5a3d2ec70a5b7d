/* SPDX-License-Identifier: MIT */
/* The engine tests' event loop, context and clients; see ss-peers.h. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ss-peers.h"
#include "tap.h"

static sd_event *loop;

void ss_peers_start(char *json, sd_event **ret_event, SsContext **ret_ctx)
{
        PolicyErrors errors = {};
        Policy *policy = policy_new();

        is_int(policy && json ? policy_add_buffer(policy, "it", json, strlen(json), &errors) : -1,
               0, "policy loads");
        for (size_t i = 0; i < errors.n_messages; i++)
                tap_diag("%s", errors.messages[i]);
        policy_errors_clear(&errors);
        free(json);
        is_int(sd_event_new(ret_event), 0, "event loop");
        is_int(ss_context_new(ret_ctx, *ret_event, policy), 0, "context");
        policy_unref(policy);
        loop = *ret_event;
}

void ss_peers_stop(SsContext **ctx, sd_event **event)
{
        *ctx = ss_context_free(*ctx);
        *event = sd_event_unref(*event);
        loop = NULL;
}

bool ss_peers_run_until(bool (*done)(void *), void *userdata, unsigned ms)
{
        uint64_t end = peers_now_usec() + (uint64_t) ms * 1000;

        while (!done(userdata)) {
                if (peers_now_usec() > end)
                        return false;
                (void) sd_event_run(loop, 20000);
        }
        return true;
}

int ss_peers_run_child(SsPeersChildFn fn, void *arg, unsigned timeout_sec)
{
        uint64_t deadline = peers_now_usec() + timeout_sec * 1000000ULL;
        pid_t pid;
        int status;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0)
                _exit(fn(arg));
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);

                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                if (peers_now_usec() > deadline) {
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, &status, 0);
                        return -1;
                }
                (void) sd_event_run(loop, 10000);
        }
}

int ss_peers_exec_argv(void *arg)
{
        char *const *argv = arg;
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

        if (fd >= 0)
                (void) dup2(fd, STDERR_FILENO);
        execvp(argv[0], argv);
        return 127;
}

int ss_peers_curl(const char *const *args, char **ret_body, char **ret_head, unsigned *ret_code)
{
        char *body = peers_path("curl.body"), *head = peers_path("curl.head");
        char *code = peers_path("curl.code"), *err = peers_path("curl.err");
        const char *argv[40] = {"curl", "-s", "-S", "--max-time",   "20",       "-o", body,
                                "-D",   head, "-w", "%{http_code}", "--stderr", err};
        size_t n = 13;
        int r, fd;
        char *text;

        for (size_t i = 0; args[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        (void) unlink(body);
        (void) unlink(head);
        fflush(stdout);
        fd = open(code, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        {
                int saved = dup(STDOUT_FILENO);

                (void) dup2(fd, STDOUT_FILENO);
                r = ss_peers_run_child(ss_peers_exec_argv, (void *) argv, 30);
                (void) dup2(saved, STDOUT_FILENO);
                (void) close(saved);
        }
        (void) close(fd);
        text = peers_read_file(code, NULL);
        if (ret_code)
                *ret_code = text ? (unsigned) atoi(text) : 0;
        free(text);
        if (ret_body)
                *ret_body = peers_read_file(body, NULL);
        if (ret_head)
                *ret_head = peers_read_file(head, NULL);
        if (r != 0) {
                text = peers_read_file(err, NULL);
                tap_diag("curl: %s", text ? text : "(nothing on stderr)");
                free(text);
        }
        free(err);
        free(body);
        free(head);
        free(code);
        return r;
}

bool ss_peers_has_header(const char *head, const char *line)
{
        return head && strcasestr(head, line) != NULL;
}

int ss_peers_connect_port(uint16_t port)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

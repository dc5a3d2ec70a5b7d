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

static SsPeersReq reqs[2048];

SsPeersReq *ss_peers_req_get(SsStream *s)
{
        SsPeersReq *free_slot = NULL;

        for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
                if (reqs[i].s == s)
                        return &reqs[i];
                if (!reqs[i].s && !free_slot)
                        free_slot = &reqs[i];
        }
        if (free_slot)
                *free_slot = (SsPeersReq){.s = s, .upload_ok = true};
        return free_slot;
}

void ss_peers_req_forget(SsStream *s)
{
        SsPeersReq *c = ss_peers_req_get(s);

        if (c)
                c->s = NULL;
}

void ss_peers_respond(SsStream *s, SsPeersReq *c, unsigned status, const char *body, bool with_len)
{
        c->body = body;
        c->left = strlen(body);
        (void) ss_stream_server_ack(s, status);
        (void) ss_stream_set_metadata(s, "ct", "text/plain", 10);
        if (with_len)
                (void) ss_stream_request_tx_len(s, c->left);
        else
                (void) ss_stream_request_tx(s);
}

SsResult ss_peers_app_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                         unsigned flags)
{
        SsPeersReq *c = ss_peers_req_get(s);

        (void) userdata;
        if (!c)
                return SS_DISCONNECT_ME;
        if ((flags & SS_FLAG_SOM) != (c->upload == 0 && len > 0 ? SS_FLAG_SOM : 0))
                c->upload_ok = false;
        for (size_t i = 0; i < len; i++)
                if (buf[i] != peers_big_byte(c->upload + i))
                        c->upload_ok = false;
        c->upload += len;
        if (flags & SS_FLAG_EOM) {
                snprintf(c->reply, sizeof(c->reply), "got %llu %s\n",
                         (unsigned long long) c->upload, c->upload_ok ? "exact" : "corrupt");
                ss_peers_respond(s, c, 0, c->reply, true);
        }
        return SS_OK;
}

SsResult ss_peers_app_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        SsPeersReq *c = ss_peers_req_get(s);
        const char *path = NULL;

        (void) userdata;
        if (!c)
                return SS_DISCONNECT_ME;
        (void) ss_stream_server_get_request(s, NULL, &path);
        if (path && strcmp(path, "/chunked") == 0) {
                static const char *const pieces[] = {"one,", "two,", "three\n"};

                *len = strlen(pieces[c->pieces]);
                memcpy(buf, pieces[c->pieces], *len);
                if (++c->pieces == sizeof(pieces) / sizeof(pieces[0]))
                        *flags = SS_FLAG_EOM;
                return SS_OK;
        }
        /* A few bytes at a time, to exercise several tx calls. */
        *len = c->left < 5 ? c->left : 5;
        memcpy(buf, c->body, *len);
        c->body += *len;
        c->left -= *len;
        if (c->left == 0)
                *flags = SS_FLAG_EOM;
        return SS_OK;
}

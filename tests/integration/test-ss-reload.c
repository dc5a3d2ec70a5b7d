/* SPDX-License-Identifier: MIT */
/*
 * Policy reload under running streams (issue 6, step 1): a stream keeps the
 * policy it was created under until it ends, however the policy changes; a
 * stream created after the reload uses the new definition; trust-store
 * credentials of the old policy stay with the streams using them and are not
 * handed to new ones.
 *
 * The peer is a slow HTTP/1.1 server in a child process on loopback: every
 * response body is the request path repeated to BODY_SIZE bytes, sent at once
 * for /fast/... and in pieces over about half a second for /slow/..., so the
 * reload surely lands in the middle of a download.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "policy.h"
#include "stream.h"
#include "tap.h"

#define BODY_SIZE   4000u
#define SLOW_PIECES 20u

static sd_event *event;
static SsContext *ctx;
static pid_t server_pid = -1;

/* ---- the slow server ------------------------------------------------------------------- */

static void serve_one(int fd)
{
        char req[2048], path[256] = "/", head[256], body[BODY_SIZE];
        size_t n = 0, plen;
        bool slow;

        while (n < sizeof(req) - 1) {
                ssize_t k = read(fd, req + n, sizeof(req) - 1 - n);

                if (k <= 0)
                        _exit(0);
                n += (size_t) k;
                req[n] = 0;
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        if (sscanf(req, "GET %255s ", path) != 1)
                _exit(0);
        plen = strlen(path);
        for (size_t i = 0; i < BODY_SIZE; i++)
                body[i] = path[i % plen];
        slow = strncmp(path, "/slow/", 6) == 0;
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nConnection: close\r\n\r\n", BODY_SIZE);
        if (write(fd, head, strlen(head)) < 0)
                _exit(0);
        for (size_t off = 0; off < BODY_SIZE;) {
                size_t piece = slow ? BODY_SIZE / SLOW_PIECES : BODY_SIZE - off;

                if (slow)
                        (void) usleep(25000);
                if (write(fd, body + off, piece) != (ssize_t) piece)
                        _exit(0);
                off += piece;
        }
        _exit(0);
}

static uint16_t server_start(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                tap_skip_all("cannot listen on loopback");
        fflush(stdout);
        server_pid = fork();
        if (server_pid < 0)
                tap_skip_all("cannot fork");
        if (server_pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                (void) signal(SIGCHLD, SIG_IGN);
                for (;;) {
                        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

                        if (c < 0)
                                continue;
                        if (fork() == 0) {
                                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                                serve_one(c);
                        }
                        close(c);
                }
        }
        close(fd);
        return ntohs(sa.sin_port);
}

static void server_stop(void)
{
        if (server_pid > 0) {
                (void) kill(server_pid, SIGKILL);
                (void) waitpid(server_pid, NULL, 0);
                server_pid = -1;
        }
}

/* ---- streams --------------------------------------------------------------------------- */

typedef struct Download {
        const char *name;
        char body[BODY_SIZE + 1];
        size_t size;
        unsigned n_rx;
        SsState states[16];
        size_t n_states;
        uint32_t ack;
        bool done;
        void (*on_first_rx)(struct Download *d);
} Download;

static SsResult on_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Download *d = userdata;

        (void) s;
        (void) flags;
        if (d->size + len <= BODY_SIZE) {
                memcpy(d->body + d->size, buf, len);
                d->size += len;
                d->body[d->size] = 0;
        }
        if (d->n_rx++ == 0 && d->on_first_rx)
                d->on_first_rx(d);
        return SS_OK;
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Download *d = userdata;

        (void) s;
        if (d->n_states < ELEMENTSOF(d->states))
                d->states[d->n_states++] = state;
        if (state == SS_STATE_QOS_ACK_REMOTE || state == SS_STATE_QOS_NACK_REMOTE ||
            state == SS_STATE_UNREACHABLE || state == SS_STATE_TIMEOUT ||
            state == SS_STATE_ALL_RETRIES_FAILED) {
                d->ack = ack;
                d->done = true;
        }
        return SS_OK;
}

static const SsStreamHandlers handlers = {.rx = on_rx, .state = on_state};

static bool body_is(const Download *d, const char *path)
{
        size_t plen = strlen(path);

        if (d->size != BODY_SIZE)
                return false;
        for (size_t i = 0; i < BODY_SIZE; i++)
                if (d->body[i] != path[i % plen])
                        return false;
        return true;
}

static void run_until(bool (*cond)(void *), void *userdata, uint64_t timeout_usec)
{
        uint64_t end = peers_now_usec() + timeout_usec;

        while (!cond(userdata) && peers_now_usec() < end)
                (void) sd_event_run(event, 50000);
}

static bool both_done(void *userdata)
{
        Download **d = userdata;

        return d[0]->done && d[1]->done;
}

static Policy *policy_from(const char *json)
{
        PolicyErrors errors = {};
        Policy *p = policy_new();

        if (!p || policy_add_buffer(p, "it", json, strlen(json), &errors) < 0) {
                for (size_t i = 0; i < errors.n_messages; i++)
                        tap_diag("%s", errors.messages[i]);
                policy_errors_clear(&errors);
                return policy_unref(p);
        }
        return p;
}

static Policy *second;
static SsStream *after;
static Download d_old = {.name = "old"}, d_new = {.name = "new"};

/* The reload, in the middle of the old stream's download. */
static void reload_now(Download *d)
{
        Policy *first = (Policy *) ss_context_get_policy(ctx);

        (void) d;
        ok(d_old.size < BODY_SIZE, "the reload happens during the download (%zu bytes in)",
           d_old.size);
        ss_context_set_policy(ctx, second);
        ok(ss_context_get_policy(ctx) == second, "the context has the new policy");
        (void) first; /* the test's own reference was dropped: the old stream holds the last */
        is_int(ss_stream_new(&after, ctx, "dl", &handlers, &d_new), 0,
               "a stream is created after the reload");
        is_int(ss_stream_client_connect(after), 0, "the new stream connects");
}

int main(void)
{
        char json1[1024], json2[1024];
        Policy *first;
        SsStream *before = NULL, *gone = NULL, *tls_old = NULL, *tls_new = NULL;
        Download *both[] = {&d_old, &d_new};
        uint16_t port;

        peers_init(60);
        port = server_start();

        snprintf(json1, sizeof(json1),
                 "{\"s\":[{\"dl\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\","
                 "\"http_url\":\"slow/one\",\"timeout_ms\":10000}},"
                 "{\"gone\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\"}},"
                 "{\"secure\":{\"endpoint\":\"localhost\",\"port\":1,\"protocol\":\"h1\","
                 "\"tls\":true}}]}",
                 (unsigned) port, (unsigned) port);
        snprintf(json2, sizeof(json2),
                 "{\"s\":[{\"dl\":{\"endpoint\":\"127.0.0.1\",\"port\":%u,\"protocol\":\"h1\","
                 "\"http_url\":\"fast/two\",\"timeout_ms\":10000}},"
                 "{\"secure\":{\"endpoint\":\"localhost\",\"port\":1,\"protocol\":\"h1\","
                 "\"tls\":true}}]}",
                 (unsigned) port);
        first = policy_from(json1);
        second = policy_from(json2);
        ok(first && second, "both policies load");
        if (!first || !second)
                return peers_done();

        is_int(sd_event_new(&event), 0, "event loop");
        is_int(ss_context_new(&ctx, event, first), 0, "context on the first policy");
        /* From here the context and the streams hold the only references to the first policy. */
        first = policy_unref(first);

        is_int(ss_stream_new(&tls_old, ctx, "secure", NULL, NULL), 0, "a TLS stream (old policy)");
        is_int(ss_context_n_tls_contexts(ctx), 1, "one credential set");
        is_int(ss_stream_new(&gone, ctx, "gone", NULL, NULL), 0,
               "a stream of a streamtype the reload removes");

        d_old.on_first_rx = reload_now;
        is_int(ss_stream_new(&before, ctx, "dl", &handlers, &d_old), 0, "the old stream");
        is_int(ss_stream_client_connect(before), 0, "the old stream connects");
        run_until(both_done, both, 10 * 1000000);

        ok(d_old.done && d_new.done, "both transactions end");
        is_int(d_old.ack, 200, "the old stream completes (200)");
        ok(body_is(&d_old, "/slow/one"), "the old stream got its whole body from its own URL");
        {
                static const SsState want[] = {SS_STATE_CREATING, SS_STATE_CONNECTING,
                                               SS_STATE_CONNECTED, SS_STATE_QOS_ACK_REMOTE};
                bool same = d_old.n_states >= ELEMENTSOF(want);

                for (size_t i = 0; same && i < ELEMENTSOF(want); i++)
                        same = d_old.states[i] == want[i];
                for (size_t i = ELEMENTSOF(want); same && i < d_old.n_states; i++)
                        same = d_old.states[i] == SS_STATE_DISCONNECTED;
                ok(same, "old: CREATING CONNECTING CONNECTED QOS_ACK_REMOTE (then DISCONNECTED)");
        }
        cmp_int(d_old.n_rx, >, 1, "old: the body came in pieces");
        is_int(d_new.ack, 200, "the new stream completes (200)");
        ok(body_is(&d_new, "/fast/two"), "the new stream used the new definition (fast/two)");
        is_str(ss_stream_get_streamtype(before), "dl", "the old stream still reads its streamtype");

        /* The removed streamtype: running streams keep it, new ones cannot have it. */
        SsStream *none = NULL;
        is_int(ss_stream_new(&none, ctx, "gone", NULL, NULL), -ENOENT,
               "no new stream of a removed streamtype");
        is_int(ss_stream_client_connect(gone), 0, "the removed streamtype's stream still runs");

        /* Credentials: the old set stays with its stream, new streams get a new one. */
        is_int(ss_stream_new(&tls_new, ctx, "secure", NULL, NULL), 0, "a TLS stream (new policy)");
        is_int(ss_context_n_tls_contexts(ctx), 2, "old and new credential sets are both alive");
        tls_old = ss_stream_free(tls_old);
        is_int(ss_context_n_tls_contexts(ctx), 1, "the old set goes with its last stream");
        tls_new = ss_stream_free(tls_new);
        is_int(ss_context_n_tls_contexts(ctx), 0, "and the new one with its own");

        before = ss_stream_free(before);
        after = ss_stream_free(after);
        gone = ss_stream_free(gone);
        ctx = ss_context_free(ctx);
        second = policy_unref(second);
        event = sd_event_unref(event);
        server_stop();
        return peers_done();
}

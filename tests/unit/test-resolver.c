/* SPDX-License-Identifier: MIT */
/*
 * The name resolution worker and the transport's use of it, on a private
 * sd-event loop: names from /etc/hosts, numeric addresses (which never reach
 * the thread), a name under .invalid (RFC 6761: it never leaves the machine),
 * the queue bound, and cancellation in every stage, including a transport
 * freed before its name resolved and a resolver freed before its queries.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tap.h"
#include "transport-internal.h"
#include "util.h"

#define UNKNOWN_HOST "no-such-host.invalid"

typedef struct Outcome {
        unsigned calls;
        int gai_error;
        bool have_v4_loopback;
        unsigned n_results;
} Outcome;

static void on_query(int gai_error, int sys_errno, const struct addrinfo *result, void *userdata)
{
        Outcome *o = userdata;

        o->calls++;
        o->gai_error = gai_error;
        for (const struct addrinfo *ai = result; ai; ai = ai->ai_next) {
                o->n_results++;
                if (ai->ai_family == AF_INET) {
                        const struct sockaddr_in *in = (const void *) ai->ai_addr;
                        if (in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
                            ntohs(in->sin_port) == 8080)
                                o->have_v4_loopback = true;
                }
        }
}

/* Run the loop until *done is nonzero or timeout_ms passed. */
static void run_until(sd_event *e, const unsigned *done, unsigned timeout_ms)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + timeout_ms * USEC_PER_MSEC;

        while ((!done || !*done) && now_usec(CLOCK_MONOTONIC) < end)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
}

static void run_until_idle(sd_event *e, Resolver *r, unsigned timeout_ms)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + timeout_ms * USEC_PER_MSEC;

        while (resolver_query_count(r) > 0 && now_usec(CLOCK_MONOTONIC) < end)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        /* And deliver anything the eventfd still announces. */
        for (unsigned i = 0; i < 5; i++)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
}

static void test_queries(sd_event *e, Resolver *r)
{
        Outcome local = {}, numeric = {}, unknown = {};
        ResolverQuery *q1, *q2, *q3;

        is_int(resolver_query(r, "localhost", 8080, on_query, &local, &q1), 0, "query localhost");
        is_int(resolver_query(r, "127.0.0.1", 8080, on_query, &numeric, &q2), 0, "query 127.0.0.1");
        is_int(resolver_query(r, UNKNOWN_HOST, 8080, on_query, &unknown, &q3), 0,
               "query " UNKNOWN_HOST);
        is_int(local.calls + numeric.calls + unknown.calls, 0, "no callback inside the call");

        run_until(e, &unknown.calls, 10000);
        run_until(e, &local.calls, 1000);
        run_until(e, &numeric.calls, 1000);

        is_int(local.calls, 1, "localhost: one callback");
        is_int(local.gai_error, 0, "localhost resolves");
        ok(local.have_v4_loopback, "localhost gives 127.0.0.1 with the port");
        is_int(numeric.calls, 1, "numeric: one callback");
        is_int(numeric.gai_error, 0, "127.0.0.1 resolves");
        ok(numeric.have_v4_loopback, "127.0.0.1 with the port");
        is_int(unknown.calls, 1, UNKNOWN_HOST ": one callback");
        ok(unknown.gai_error != 0, UNKNOWN_HOST ": an error (%s)", gai_strerror(unknown.gai_error));
        is_int(unknown.n_results, 0, UNKNOWN_HOST ": no address");
        is_int(resolver_query_count(r), 0, "nothing left in the resolver");
}

static void test_cancel(sd_event *e, Resolver *r)
{
        enum { N = 64 };
        Outcome outcomes[N] = {};
        ResolverQuery *q[N];
        unsigned calls = 0;

        /* Queued, running or done: whichever stage each one is in, cancel drops it. */
        for (unsigned i = 0; i < N; i++)
                is_int(resolver_query(r, i % 2 ? "localhost" : UNKNOWN_HOST, 80, on_query,
                                      &outcomes[i], &q[i]),
                       0, "query %u", i);
        for (unsigned i = 0; i < N; i++)
                q[i] = resolver_query_cancel(q[i]);
        run_until_idle(e, r, 10000);
        for (unsigned i = 0; i < N; i++)
                calls += outcomes[i].calls;
        is_int(calls, 0, "no callback for a cancelled query");
        is_int(resolver_query_count(r), 0, "cancelled queries are gone");

        /* Done but not yet delivered: give the worker time, do not run the loop. */
        Outcome late = {};
        ResolverQuery *ql;
        is_int(resolver_query(r, "localhost", 80, on_query, &late, &ql), 0, "query localhost");
        /* Resolving from /etc/hosts takes well under that; the eventfd is not read yet. */
        struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
        (void) nanosleep(&ts, NULL);
        ql = resolver_query_cancel(ql);
        run_until(e, NULL, 50);
        is_int(late.calls, 0, "a finished query cancelled before delivery: no callback");
        is_int(resolver_query_count(r), 0, "and it is gone");
}

static void test_queue_bound(sd_event *e, Resolver *r)
{
        ResolverQuery *q[2 * RESOLVER_QUEUE_MAX] = {};
        Outcome o = {};
        int busy = 0;
        unsigned n = 0;

        for (unsigned i = 0; i < ELEMENTSOF(q); i++) {
                int k = resolver_query(r, "localhost", 80, on_query, &o, &q[i]);
                if (k == -EBUSY) {
                        busy = k;
                        break;
                }
                n++;
        }
        is_int(busy, -EBUSY, "a full queue says EBUSY");
        cmp_int(n, >=, RESOLVER_QUEUE_MAX,
                "after at least %u queries (the worker drains meanwhile)", RESOLVER_QUEUE_MAX);
        for (unsigned i = 0; i < n; i++)
                q[i] = resolver_query_cancel(q[i]);
        run_until_idle(e, r, 10000);
        is_int(resolver_query_count(r), 0, "all of them cancelled");
}

typedef struct Watch {
        unsigned connected, failed;
        TransportError error;
        char detail[256];
        bool free_in_failed;
        Transport *transport;
} Watch;

static void on_connected(Transport *t, void *userdata)
{
        Watch *w = userdata;
        w->connected++;
}

static void on_failed(Transport *t, TransportError error, const char *detail, void *userdata)
{
        Watch *w = userdata;

        w->failed++;
        w->error = error;
        (void) snprintf(w->detail, sizeof(w->detail), "%s", strempty(detail));
        if (w->free_in_failed)
                w->transport = transport_free(w->transport);
}

static const TransportHandlers handlers = {
    .connected = on_connected,
    .failed = on_failed,
};

/* A loopback port that was just free: connecting to it is refused. */
static uint16_t closed_port(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t size = sizeof(a);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *) &a, &size) < 0)
                return 1;
        return ntohs(a.sin_port);
}

static void test_transport(sd_event *e, Resolver *r)
{
        TransportOptions o = {.host = UNKNOWN_HOST, .port = 80};
        Watch w = {.free_in_failed = true};
        unsigned done = 0;

        /* An unknown name fails with DNS, from the loop; freeing in failed() is fine. */
        is_int(transport_new(&w.transport, e, r, &o, &handlers, &w), 0, "transport to %s", o.host);
        is_int(w.failed + w.connected, 0, "no handler inside transport_new");
        run_until(e, &w.failed, 10000);
        is_int(w.failed, 1, "failed once");
        is_int(w.error, TRANSPORT_ERROR_DNS, "with a DNS error");
        ok(strstr(w.detail, UNKNOWN_HOST), "the detail names the host: %s", w.detail);
        ok(!w.transport, "freed inside failed()");
        is_int(w.connected, 0, "never connected");

        /* Freed right after creation: no callback, no leak, the query is dropped. */
        Watch w2 = {};
        o.host = "localhost";
        is_int(transport_new(&w2.transport, e, r, &o, &handlers, &w2), 0, "transport to localhost");
        cmp_int(resolver_query_count(r), ==, 1, "a query went to the worker");
        w2.transport = transport_free(w2.transport);
        run_until_idle(e, r, 5000);
        run_until(e, &done, 300);
        is_int(w2.connected + w2.failed, 0, "no callback after transport_free()");
        is_int(resolver_query_count(r), 0, "the query is gone");

        /* A numeric address does not go through the worker (nor need a resolver). */
        Watch w3 = {};
        o.host = "127.0.0.1";
        o.port = closed_port();
        is_int(transport_new(&w3.transport, e, NULL, &o, &handlers, &w3), 0,
               "numeric address without a resolver");
        is_int(resolver_query_count(r), 0, "no query for a numeric address");
        run_until(e, &w3.failed, 5000);
        is_int(w3.failed, 1, "then it fails once");
        is_int(w3.error, TRANSPORT_ERROR_REFUSED, "refused");
        w3.transport = transport_free(w3.transport);

        /* A name needs a resolver. */
        Transport *t = NULL;
        o.host = "localhost";
        is_int(transport_new(&t, e, NULL, &o, &handlers, &w3), -EINVAL,
               "a name without a resolver");
        ok(!t, "nothing returned");
}

static void test_free_with_queries(sd_event *e)
{
        Resolver *r = NULL;
        ResolverQuery *q[8];
        Outcome o = {};

        is_int(resolver_new(&r, e), 0, "second resolver");
        for (unsigned i = 0; i < ELEMENTSOF(q); i++)
                (void) resolver_query(r, "localhost", 80, on_query, &o, &q[i]);
        r = resolver_free(r);
        run_until(e, NULL, 50);
        is_int(o.calls, 0, "a freed resolver delivers nothing");
        /* The owners still cancel theirs, which frees them. */
        for (unsigned i = 0; i < ELEMENTSOF(q); i++)
                q[i] = resolver_query_cancel(q[i]);
        ok(true, "cancelled after the resolver went");
}

int main(void)
{
        sd_event *e = NULL;
        Resolver *r = NULL;

        tap_init();
        is_int(sd_event_new(&e), 0, "private event loop");
        is_int(resolver_new(&r, e), 0, "resolver");

        test_queries(e, r);
        test_cancel(e, r);
        test_queue_bound(e, r);
        test_transport(e, r);
        test_free_with_queries(e);

        r = resolver_free(r);
        ok(!r, "resolver freed (thread joined)");
        e = sd_event_unref(e);
        return tap_done();
}

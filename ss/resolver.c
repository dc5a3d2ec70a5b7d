/* SPDX-License-Identifier: MIT */
/*
 * Name resolution off the event loop. getaddrinfo() is the only resolver that
 * honours nsswitch.conf and /etc/hosts, and it blocks, so one worker thread
 * runs the queries one after the other. Queries wait in a bounded FIFO; a
 * finished one moves to the done list and the worker bumps an eventfd that the
 * loop watches. The loop delivers done queries one at a time, so a callback may
 * cancel any other query (freeing its transport) without pulling one out from
 * under the delivery.
 *
 * Cancelling is always cheap and never waits: a queued or done query is
 * unlinked and freed; the one the worker is running is only marked, and the
 * worker drops it (and its result) when getaddrinfo() returns.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "transport-internal.h"
#include "util.h"

typedef enum QueryState {
        QUERY_QUEUED,
        QUERY_RUNNING,
        QUERY_DONE,
        QUERY_DETACHED, /* the resolver is gone; only a cancel frees it */
} QueryState;

struct ResolverQuery {
        Resolver *resolver;
        QueryState state;
        bool cancelled; /* while running: the worker frees it */
        ResolverQuery *prev, *next;

        char *host;
        char service[8];
        ResolverCallback callback;
        void *userdata;

        int gai_error;
        int sys_errno;
        struct addrinfo *result;
};

typedef struct QueryList {
        ResolverQuery *head, *tail;
} QueryList;

struct Resolver {
        sd_event *event;
        sd_event_source *source;
        int efd;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool thread_started;
        bool quit;

        /* Under lock. */
        QueryList queue;
        QueryList done;
        unsigned n_queued;
        unsigned n_live; /* queued, running or done */
};

static void list_append(QueryList *l, ResolverQuery *q)
{
        q->next = NULL;
        q->prev = l->tail;
        if (l->tail)
                l->tail->next = q;
        else
                l->head = q;
        l->tail = q;
}

static void list_remove(QueryList *l, ResolverQuery *q)
{
        if (q->prev)
                q->prev->next = q->next;
        else
                l->head = q->next;
        if (q->next)
                q->next->prev = q->prev;
        else
                l->tail = q->prev;
        q->prev = q->next = NULL;
}

static ResolverQuery *query_free(ResolverQuery *q)
{
        if (!q)
                return NULL;
        if (q->result)
                freeaddrinfo(q->result);
        free(q->host);
        return mfree(q);
}

static void *worker_main(void *arg)
{
        Resolver *r = arg;

        pthread_mutex_lock(&r->lock);
        for (;;) {
                while (!r->quit && !r->queue.head)
                        pthread_cond_wait(&r->cond, &r->lock);
                if (r->quit)
                        break;

                ResolverQuery *q = r->queue.head;
                list_remove(&r->queue, q);
                r->n_queued--;
                q->state = QUERY_RUNNING;
                pthread_mutex_unlock(&r->lock);

                struct addrinfo hints = {
                    .ai_socktype = SOCK_STREAM,
                    .ai_flags = AI_NUMERICSERV,
                };
                struct addrinfo *result = NULL;
                int gai_error = getaddrinfo(q->host, q->service, &hints, &result);
                int sys_errno = gai_error == EAI_SYSTEM ? errno : 0;

                pthread_mutex_lock(&r->lock);
                if (q->cancelled) {
                        if (result)
                                freeaddrinfo(result);
                        (void) query_free(q);
                        r->n_live--;
                        continue;
                }
                q->gai_error = gai_error;
                q->sys_errno = sys_errno;
                q->result = gai_error == 0 ? result : NULL;
                q->state = QUERY_DONE;
                list_append(&r->done, q);
                (void) eventfd_write(r->efd, 1);
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Resolver *r = userdata;
        eventfd_t value;

        (void) eventfd_read(r->efd, &value);

        /* One at a time: a callback may cancel (unlink) any query still listed. */
        for (;;) {
                pthread_mutex_lock(&r->lock);
                ResolverQuery *q = r->done.head;
                if (q) {
                        list_remove(&r->done, q);
                        r->n_live--;
                }
                pthread_mutex_unlock(&r->lock);
                if (!q)
                        break;

                q->callback(q->gai_error, q->sys_errno, q->result, q->userdata);
                (void) query_free(q);
        }
        return 0;
}

int resolver_new(Resolver **ret, sd_event *event)
{
        Resolver *r;
        int e;

        if (!ret || !event)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->efd = -EBADF;
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->event = sd_event_ref(event);

        r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->efd < 0) {
                e = -errno;
                goto fail;
        }
        e = sd_event_add_io(event, &r->source, r->efd, EPOLLIN, on_eventfd, r);
        if (e < 0)
                goto fail;

        /* The worker thread starts with the first query (see resolver_start()). */
        *ret = r;
        return 0;
fail:
        (void) resolver_free(r);
        return e;
}

static void detach_list(QueryList *l)
{
        while (l->head) {
                ResolverQuery *q = l->head;
                list_remove(l, q);
                q->resolver = NULL;
                q->state = QUERY_DETACHED;
        }
}

Resolver *resolver_free(Resolver *r)
{
        if (!r)
                return NULL;

        if (r->thread_started) {
                pthread_mutex_lock(&r->lock);
                r->quit = true;
                pthread_cond_broadcast(&r->cond);
                pthread_mutex_unlock(&r->lock);
                /* Waits for a getaddrinfo() in progress; its result is kept below. */
                (void) pthread_join(r->thread, NULL);
        }

        /*
         * Queries whose owners are still alive (they should have gone first)
         * stay theirs: they are never delivered and freed on cancel.
         */
        detach_list(&r->queue);
        detach_list(&r->done);

        sd_event_source_disable_unref(r->source);
        (void) safe_close(r->efd);
        sd_event_unref(r->event);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        return mfree(r);
}

/*
 * Start the worker on first use: a process that never resolves a name runs no
 * thread, and the agent can drop its privileges (capabilities are per thread)
 * after creating the engine but before any stream resolves.
 */
static int resolver_start(Resolver *r)
{
        sigset_t all, saved;
        int e;

        if (r->thread_started)
                return 0;
        /* The worker must not take the process's signals. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        e = -pthread_create(&r->thread, NULL, worker_main, r);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (e < 0)
                return e;
        r->thread_started = true;
        return 0;
}

int resolver_query(Resolver *r, const char *host, uint16_t port, ResolverCallback callback,
                   void *userdata, ResolverQuery **ret)
{
        ResolverQuery *q;
        int e;

        assert(r);
        assert(host);
        assert(callback);
        assert(ret);

        e = resolver_start(r);
        if (e < 0)
                return e;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->host = strdup(host);
        if (!q->host) {
                free(q);
                return -ENOMEM;
        }
        (void) snprintf(q->service, sizeof(q->service), "%u", (unsigned) port);
        q->resolver = r;
        q->callback = callback;
        q->userdata = userdata;
        q->state = QUERY_QUEUED;

        pthread_mutex_lock(&r->lock);
        if (r->n_queued >= RESOLVER_QUEUE_MAX) {
                pthread_mutex_unlock(&r->lock);
                (void) query_free(q);
                return -EBUSY;
        }
        list_append(&r->queue, q);
        r->n_queued++;
        r->n_live++;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);

        *ret = q;
        return 0;
}

ResolverQuery *resolver_query_cancel(ResolverQuery *q)
{
        Resolver *r;

        if (!q)
                return NULL;

        r = q->resolver;
        if (!r) {
                (void) query_free(q);
                return NULL;
        }

        pthread_mutex_lock(&r->lock);
        switch (q->state) {
        case QUERY_QUEUED:
                list_remove(&r->queue, q);
                r->n_queued--;
                r->n_live--;
                (void) query_free(q);
                break;
        case QUERY_RUNNING:
                q->cancelled = true; /* the worker frees it */
                break;
        case QUERY_DONE:
                list_remove(&r->done, q);
                r->n_live--;
                (void) query_free(q);
                break;
        case QUERY_DETACHED:
                assert(false); /* a detached query has no resolver */
                break;
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

unsigned resolver_query_count(Resolver *r)
{
        unsigned n;

        assert(r);
        pthread_mutex_lock(&r->lock);
        n = r->n_live;
        pthread_mutex_unlock(&r->lock);
        return n;
}

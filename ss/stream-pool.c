/* SPDX-License-Identifier: MIT */
/*
 * The idle connection pool of a context: HTTP/1.1 keep-alive. When a response
 * ends cleanly (framed, nothing left in flight, the server did not ask to
 * close) the stream parks its transport here instead of closing it, and the
 * next connection attempt to the same server (host, port, tls, trust store,
 * unix path) takes it back instead of connecting and handshaking again.
 *
 * Streams never see the pool: a stream on a reused connection still gets
 * CONNECTING then CONNECTED, and DISCONNECTED after its transaction.
 *
 * Bounded: at most pool_per_server idle connections per key and pool_total in
 * all (the least recently parked goes first), each for at most its idle time
 * (pool_idle_ms, shorter when the server announced a shorter keep-alive). A
 * parked connection is watched: EOF, an error or any byte from the server
 * closes it. Connections of a trust store go when its last stream goes (the
 * credentials must not outlive their users).
 *
 * h2 connections are shared while they have streams and idle without them
 * (h2-client.c); closing idle connections here closes those too.
 */
#include <assert.h>

#include "stream-internal.h"

struct SsIdleConnection {
        SsContext *context;
        SsIdleConnection *prev, *next;
        char *host;
        uint16_t port;
        bool tls;
        bool unix_socket;
        const SsTlsEntry *tls_entry;
        Transport *transport;
        Timer timer;
};

static bool idle_matches(const SsIdleConnection *i, const SsPoolKey *key)
{
        return i->port == key->port && i->tls == key->tls && i->unix_socket == key->unix_socket &&
               i->tls_entry == key->tls_entry && streq(i->host, key->host);
}

static void idle_unlink(SsIdleConnection *i)
{
        SsContext *c = i->context;

        if (i->prev)
                i->prev->next = i->next;
        else
                c->idle_head = i->next;
        if (i->next)
                i->next->prev = i->prev;
        else
                c->idle_tail = i->prev;
        i->prev = i->next = NULL;
        assert(c->n_idle > 0);
        c->n_idle--;
}

/* Unlinks and frees the entry; returns its transport (NULL if already gone). */
static Transport *idle_release(SsIdleConnection *i)
{
        Transport *t = i->transport;

        timer_cancel(&i->timer);
        idle_unlink(i);
        free(i->host);
        free(i);
        return t;
}

static void idle_close(SsIdleConnection *i)
{
        SsContext *c = i->context;
        Transport *t = idle_release(i);

        if (t)
                (void) c->ops->transport_free(t);
}

static void on_idle_timer(Timer *timer, void *userdata)
{
        idle_close(userdata);
}

/* A parked connection has nothing to say: whatever it says ends it. */
static void on_idle_readable(Transport *t, void *userdata)
{
        SsIdleConnection *i = userdata;
        uint8_t byte;
        ssize_t n = i->context->ops->transport_read(t, &byte, 1);

        if (n == -EAGAIN) /* a record without data (a TLS 1.3 session ticket) */
                return;
        idle_close(i);
}

static void on_idle_failed(Transport *t, TransportError error, const char *detail, void *userdata)
{
        idle_close(userdata);
}

static const TransportHandlers idle_handlers = {
    .readable = on_idle_readable,
    .failed = on_idle_failed,
};

void ss_pool_put(SsContext *c, const SsPoolKey *key, Transport *t, uint64_t idle_ms)
{
        SsIdleConnection *i, *oldest = NULL;
        unsigned same = 0;

        assert(key && key->host);
        if (!t)
                return;
        idle_ms = MIN(idle_ms, (uint64_t) c->pool_idle_ms);
        if (c->pool_per_server == 0 || c->pool_total == 0 || idle_ms == 0)
                goto close;

        for (i = c->idle_head; i; i = i->next)
                if (idle_matches(i, key)) {
                        if (!oldest)
                                oldest = i;
                        same++;
                }
        /* Make room: the oldest of this server, else the oldest of all. */
        if (same >= c->pool_per_server)
                idle_close(oldest);
        else if (c->n_idle >= c->pool_total)
                idle_close(c->idle_head);

        i = calloc(1, sizeof(*i));
        if (!i)
                goto close;
        i->host = strdup(key->host);
        if (!i->host) {
                free(i);
                goto close;
        }
        i->context = c;
        i->port = key->port;
        i->tls = key->tls;
        i->unix_socket = key->unix_socket;
        i->tls_entry = key->tls_entry;
        i->transport = t;
        timer_init(&i->timer, on_idle_timer, i);
        if (scheduler_schedule_in(c->scheduler, &i->timer, TIMER_LIST_NORMAL,
                                  idle_ms * USEC_PER_MSEC) < 0) {
                free(i->host);
                free(i);
                goto close;
        }

        i->prev = c->idle_tail;
        if (c->idle_tail)
                c->idle_tail->next = i;
        else
                c->idle_head = i;
        c->idle_tail = i;
        c->n_idle++;
        c->ops->transport_set_handlers(t, &idle_handlers, i);
        /* It must hear the server close it (a stream never parks a paused one; be sure). */
        if (c->ops->transport_pause_read)
                c->ops->transport_pause_read(t, false);
        return;
close:
        (void) c->ops->transport_free(t);
}

Transport *ss_pool_take(SsContext *c, const SsPoolKey *key)
{
        SsIdleConnection *i, *prev;

        for (i = c->idle_tail; i; i = prev) {
                Transport *t;
                uint8_t byte;

                prev = i->prev;
                if (!idle_matches(i, key))
                        continue;
                /*
                 * The loop may not have told us yet that the server closed it:
                 * anything but "nothing to read" means it is no use.
                 */
                t = i->transport;
                if (c->ops->transport_read(t, &byte, 1) != -EAGAIN) {
                        idle_close(i);
                        continue;
                }
                return idle_release(i);
        }
        return NULL;
}

void ss_pool_drop_key(SsContext *c, const SsPoolKey *key)
{
        SsIdleConnection *i, *next;

        for (i = c->idle_head; i; i = next) {
                next = i->next;
                if (idle_matches(i, key))
                        idle_close(i);
        }
}

void ss_pool_drop_tls_entry(SsContext *c, const SsTlsEntry *e)
{
        SsIdleConnection *i, *next;

        for (i = c->idle_head; i; i = next) {
                next = i->next;
                if (i->tls_entry == e)
                        idle_close(i);
        }
        h2_connections_drop_idle(c, false, e);
}

void ss_pool_drop_all(SsContext *c)
{
        while (c->idle_head)
                idle_close(c->idle_head);
        h2_connections_drop_idle(c, true, NULL);
}

void ss_context_set_connection_pool(SsContext *c, unsigned per_server, unsigned total,
                                    uint32_t idle_ms)
{
        assert(c);
        c->pool_per_server = per_server;
        c->pool_total = total;
        c->pool_idle_ms = idle_ms;
        /* Apply the new bounds to what is parked: simplest is to start over. */
        ss_pool_drop_all(c);
}

size_t ss_context_n_idle_connections(SsContext *c)
{
        assert(c);
        return c->n_idle;
}

void ss_context_drop_idle_connections(SsContext *c)
{
        assert(c);
        ss_pool_drop_all(c);
}

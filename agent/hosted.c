/* SPDX-License-Identifier: MIT */
/*
 * The agent's own server streamtypes (see hosted.h). The status document:
 *
 *   {"agent":"smdagent","version":"...","state":"OPERATIONAL",
 *    "policy_release":"...","uptime_s":12,"streamtype":"status"}
 *
 * with content-type application/json when the streamtype declares a metadata
 * entry for the header content-type. The document is built at SERVER_TXN and
 * kept per request stream until its tx took it (at most one per connection
 * or h2 request, bounded by the server's own limits).
 */
#include "hosted.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "policy.h"
#include "stream.h"

#define HOSTED_BODY_MAX 512u

typedef struct Answer {
        SsStream *s;
        struct Answer *next;
        size_t len, off;
        char body[HOSTED_BODY_MAX];
} Answer;

typedef struct Listener {
        SsStream *server;
        Policy *policy; /* a reference: the policy it was started under, and its entry */
        const PolicyStreamtype *st;
} Listener;

struct Hosted {
        Manager *m;
        Listener *listeners;
        size_t n_listeners;
        Answer *answers;
        bool started;
};

static Answer *answer_find(Hosted *h, SsStream *s, bool create)
{
        Answer *a;

        for (a = h->answers; a; a = a->next)
                if (a->s == s)
                        return a;
        if (!create)
                return NULL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->s = s;
        a->next = h->answers;
        h->answers = a;
        return a;
}

static void answer_drop(Hosted *h, SsStream *s)
{
        for (Answer **p = &h->answers; *p; p = &(*p)->next)
                if ((*p)->s == s) {
                        Answer *a = *p;

                        *p = a->next;
                        free(a);
                        return;
                }
}

/* Sets the metadata entry whose header is content-type, when there is one. */
static void set_content_type(SsStream *s, const char *value)
{
        const Policy *p = ss_context_get_policy(ss_stream_get_context(s));
        const PolicyStreamtype *st = policy_find_streamtype(p, ss_stream_get_streamtype(s));

        for (size_t i = 0; st && i < st->n_metadata; i++) {
                const char *hn = st->metadata[i].header;

                if (hn && strncasecmp(hn, "content-type", 12) == 0 &&
                    (hn[12] == '\0' || (hn[12] == ':' && hn[13] == '\0')))
                        (void) ss_stream_set_metadata(s, st->metadata[i].name, value,
                                                      strlen(value));
        }
}

static SsResult on_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Hosted *h = userdata;
        Manager *m = h->m;
        const char *method = NULL;
        Answer *a;
        int n;

        (void) ack;
        if (state == SS_STATE_DESTROYING) {
                answer_drop(h, s);
                return SS_OK;
        }
        if (state != SS_STATE_SERVER_TXN)
                return SS_OK;
        if (ss_stream_server_get_request(s, &method, NULL) < 0)
                return SS_DISCONNECT_ME;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                answer_drop(h, s);
                (void) ss_stream_server_ack(s, 405);
                (void) ss_stream_request_tx_len(s, 0);
                return SS_OK;
        }
        a = answer_find(h, s, true);
        if (!a)
                return SS_DISCONNECT_ME;
        n = snprintf(a->body, sizeof(a->body),
                     "{\"agent\":\"smdagent\",\"version\":\"%s\",\"state\":\"%s\","
                     "\"policy_release\":\"%.64s\",\"uptime_s\":%llu,\"streamtype\":\"%.64s\"}\n",
                     PACKAGE_VERSION, m->state ? m->state : "",
                     strempty(policy_get_release(m->policy)),
                     (unsigned long long) ((now_usec(CLOCK_MONOTONIC) - m->start_usec) / 1000000),
                     ss_stream_get_streamtype(s));
        if (n < 0 || (size_t) n >= sizeof(a->body))
                return SS_DISCONNECT_ME;
        a->len = (size_t) n;
        a->off = 0;
        set_content_type(s, "application/json");
        (void) ss_stream_server_ack(s, 0);
        (void) ss_stream_request_tx_len(s, a->len);
        return SS_OK;
}

static SsResult on_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Hosted *h = userdata;
        Answer *a = answer_find(h, s, false);
        size_t n;

        if (!a) {
                *len = 0;
                *flags = SS_FLAG_EOM;
                return SS_OK;
        }
        n = a->len - a->off < *len ? a->len - a->off : *len;
        memcpy(buf, a->body + a->off, n);
        a->off += n;
        *len = n;
        if (a->off == a->len)
                *flags = SS_FLAG_EOM;
        return SS_OK;
}

static void listener_clear(Listener *l)
{
        l->server = ss_stream_free(l->server);
        l->policy = policy_unref(l->policy);
        l->st = NULL;
}

static void hosted_stop(Hosted *h)
{
        for (size_t i = 0; i < h->n_listeners; i++)
                listener_clear(&h->listeners[i]);
        h->listeners = mfree(h->listeners);
        h->n_listeners = 0;
}

static bool is_hosted(const PolicyStreamtype *st)
{
        return st->server && !st->has_allow;
}

void hosted_start(Hosted *h)
{
        static const SsStreamHandlers handlers = {.tx = on_tx, .state = on_state};
        Policy *p = h->m->policy;
        Listener *old = h->listeners;
        size_t n = 0, n_old = h->n_listeners, n_st = p ? policy_n_streamtypes(p) : 0;
        _cleanup_free_ bool *kept = NULL;

        h->started = true;
        h->listeners = NULL;
        h->n_listeners = 0;
        for (size_t i = 0; h->m->ss && i < n_st; i++)
                n += is_hosted(policy_streamtype_at(p, i));
        if (n > 0) {
                h->listeners = calloc(n, sizeof(Listener));
                kept = calloc(n_st, sizeof(bool));
                if (!h->listeners || !kept) {
                        log_error_errno(ENOMEM,
                                        "failed to start the policy's server streamtypes: %m");
                        h->listeners = mfree(h->listeners);
                }
        }
        /*
         * A listener whose streamtype did not change keeps running (and its
         * connections); the others stop before new ones start (same port).
         */
        for (size_t i = 0; h->listeners && i < n_st; i++) {
                const PolicyStreamtype *st = policy_streamtype_at(p, i);

                if (!is_hosted(st))
                        continue;
                for (size_t j = 0; j < n_old; j++)
                        if (old[j].server && strcmp(old[j].st->name, st->name) == 0 &&
                            policy_streamtype_equal(old[j].policy, old[j].st, p, st)) {
                                h->listeners[h->n_listeners++] = old[j];
                                old[j] = (Listener){};
                                kept[i] = true;
                                break;
                        }
        }
        for (size_t i = 0; i < n_old; i++)
                listener_clear(&old[i]);
        free(old);
        for (size_t i = 0; h->listeners && i < n_st; i++) {
                const PolicyStreamtype *st = policy_streamtype_at(p, i);
                Listener *l = &h->listeners[h->n_listeners];
                int r;

                if (!is_hosted(st) || kept[i])
                        continue;
                r = ss_stream_new(&l->server, h->m->ss, st->name, &handlers, h);
                if (r < 0) {
                        const char *why = ss_stream_server_get_error();

                        /* The engine's text names the streamtype and says which key, file or
                         * library. */
                        if (why)
                                log_error("failed to serve on %s%s%u: %s", strempty(st->endpoint),
                                          st->unix_socket ? "" : ":", (unsigned) st->port, why);
                        else
                                log_error_errno(r, "streamtype %s: failed to serve on %s%s%u: %m",
                                                st->name, strempty(st->endpoint),
                                                st->unix_socket ? "" : ":", (unsigned) st->port);
                        continue;
                }
                log_info("streamtype %s: serving the agent's status on %s%s%u", st->name,
                         strempty(st->endpoint), st->unix_socket ? "" : ":", (unsigned) st->port);
                l->policy = policy_ref(p);
                l->st = st;
                h->n_listeners++;
        }
}

void hosted_policy_changed(Hosted *h)
{
        if (h && h->started)
                hosted_start(h);
}

unsigned hosted_n_listening(const Hosted *h)
{
        return h ? (unsigned) h->n_listeners : 0;
}

int hosted_new(Hosted **ret, Manager *m)
{
        Hosted *h = calloc(1, sizeof(*h));

        if (!h)
                return -ENOMEM;
        h->m = m;
        *ret = h;
        return 0;
}

Hosted *hosted_free(Hosted *h)
{
        if (!h)
                return NULL;
        hosted_stop(h);
        while (h->answers) {
                Answer *a = h->answers;

                h->answers = a->next;
                free(a);
        }
        free(h);
        return NULL;
}

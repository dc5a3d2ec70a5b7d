/* SPDX-License-Identifier: MIT */
/*
 * The captive portal detection scheduler (see captive.h for the rules). Two
 * timers carry all of the timing: check_timer starts the next check (a
 * trigger moves it to "now", a finished check sets it to the interval or the
 * backoff), timeout_timer bounds the running check. Probes are reached only
 * through ProbeOps, so everything here runs on a fake clock in the tests.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "captive.h"

/* Bounds on the configuration, so that no arithmetic below can overflow. */
#define CAPTIVE_INTERVAL_MAX_USEC      (7 * 24 * 3600 * USEC_PER_SEC)
#define CAPTIVE_PROBE_TIMEOUT_MAX_USEC (3600 * USEC_PER_SEC)
/* Past this many bad checks in a row the backoff step is at its cap anyway. */
#define CAPTIVE_BAD_CHECKS_MAX 64u

enum {
        FAMILY_IPV4,
        FAMILY_IPV6,
        _FAMILY_MAX,
};

typedef struct Family {
        int af;

        /* The default route the agent reported (on any link kind). */
        bool has_route;
        int ifindex;
        uint8_t gateway[16];
        char link_kind[CAPTIVE_LINK_KIND_MAX];
        bool link_kind_long; /* longer than any ignored kind can be: never ignored */

        /* Its part in the running (or last) check. */
        bool probing;
        bool done;
        void *handle; /* non-NULL while the probe runs */
        ProbeVerdict verdict;
} Family;

struct CaptiveRequest {
        Captive *captive; /* NULL once answered or detached */
        CaptiveRequest *prev, *next;
        uint64_t check_id; /* the check whose verdict it waits for */
        CaptiveRequestCallback callback;
        void *userdata;
};

struct Captive {
        Scheduler *scheduler;
        CaptiveConfig config;
        const ProbeOps *ops;
        void *probe_userdata;
        CaptiveVerdictCallback on_verdict;
        void *verdict_userdata;
        CaptiveRandom random;
        void *random_userdata;
        uint64_t random_state;

        char ignored_kinds[CAPTIVE_LINK_KINDS_MAX][CAPTIVE_LINK_KIND_MAX];
        size_t n_ignored_kinds;

        Family families[_FAMILY_MAX];

        Timer check_timer;
        Timer timeout_timer;
        bool checking;
        bool starting;   /* inside ops->start() */
        bool no_route;   /* the running check found no usable route */
        bool rerun;      /* a trigger arrived during the running check */
        bool next_fresh; /* the next check starts from UNKNOWN */
        CaptiveTrigger next_trigger;
        CaptiveTrigger check_trigger;
        uint64_t check_id; /* of the running or last check */
        unsigned n_bad;    /* consecutive checks that did not find OK */
        bool held;         /* a downgrade from OK waits for a second check */

        /* The adopted state. */
        CaptiveResult result;
        CaptiveResult family_results[_FAMILY_MAX];
        char portal[CAPTIVE_URL_MAX + 1];
        bool has_seconds_remaining;
        uint64_t seconds_remaining;
        uint64_t checked_usec;
        CaptiveTrigger trigger;

        CaptiveRequest *requests;
        size_t n_requests;
};

static const char *const default_ignored_kinds[] = {"loopback", "veth", "bridge", "tun"};

void captive_config_init(CaptiveConfig *config)
{
        assert(config);
        *config = (CaptiveConfig){
            .interval_usec = CAPTIVE_INTERVAL_DEFAULT_USEC,
            .backoff_first_usec = CAPTIVE_BACKOFF_FIRST_DEFAULT_USEC,
            .probe_timeout_usec = CAPTIVE_PROBE_TIMEOUT_DEFAULT_USEC,
            .jitter_percent = CAPTIVE_JITTER_PERCENT_DEFAULT,
            .http_expect = CAPTIVE_HTTP_EXPECT_DEFAULT,
        };
}

static bool config_is_valid(const CaptiveConfig *config)
{
        return config->interval_usec > 0 && config->interval_usec <= CAPTIVE_INTERVAL_MAX_USEC &&
               config->backoff_first_usec > 0 &&
               config->backoff_first_usec <= config->interval_usec &&
               config->probe_timeout_usec > 0 &&
               config->probe_timeout_usec <= CAPTIVE_PROBE_TIMEOUT_MAX_USEC &&
               config->jitter_percent <= 100;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint64_t default_random(void *userdata)
{
        Captive *c = userdata;
        uint64_t x = c->random_state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c->random_state = x;
        return x * UINT64_C(2685821657736338717);
}

static uint64_t now(Captive *c)
{
        return scheduler_now(c->scheduler, TIMER_LIST_NORMAL);
}

bool captive_link_kind_is_ignored(const Captive *c, const char *kind)
{
        assert(c);
        if (!kind || !kind[0])
                return false;
        for (size_t i = 0; i < c->n_ignored_kinds; i++)
                if (streq(c->ignored_kinds[i], kind))
                        return true;
        return false;
}

static bool family_is_usable(const Captive *c, const Family *f)
{
        if (!f->has_route)
                return false;
        return f->link_kind_long || !captive_link_kind_is_ignored(c, f->link_kind);
}

static Family *family_get(Captive *c, int af)
{
        assert(af == AF_INET || af == AF_INET6);
        return &c->families[af == AF_INET ? FAMILY_IPV4 : FAMILY_IPV6];
}

static void on_check_timer(Timer *t, void *userdata);
static void on_timeout(Timer *t, void *userdata);

int captive_new(Captive **ret, Scheduler *s, const CaptiveConfig *config, const ProbeOps *ops,
                void *probe_userdata)
{
        Captive *c;
        CaptiveConfig defaults;

        assert(ret);
        assert(s);
        assert(ops && ops->start && ops->cancel);
        if (!config) {
                captive_config_init(&defaults);
                config = &defaults;
        }
        if (!config_is_valid(config))
                return -EINVAL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->scheduler = s;
        c->config = *config;
        c->ops = ops;
        c->probe_userdata = probe_userdata;
        c->random = default_random;
        c->random_userdata = c;
        if (getrandom(&c->random_state, sizeof(c->random_state), GRND_NONBLOCK) !=
            sizeof(c->random_state))
                c->random_state = now_usec(CLOCK_MONOTONIC) ^ (uintptr_t) c;
        c->random_state |= 1; /* xorshift must not start at zero */
        c->families[FAMILY_IPV4].af = AF_INET;
        c->families[FAMILY_IPV6].af = AF_INET6;
        for (size_t i = 0; i < ELEMENTSOF(default_ignored_kinds); i++)
                strcpy(c->ignored_kinds[i], default_ignored_kinds[i]);
        c->n_ignored_kinds = ELEMENTSOF(default_ignored_kinds);
        timer_init(&c->check_timer, on_check_timer, c);
        timer_init(&c->timeout_timer, on_timeout, c);
        *ret = c;
        return 0;
}

static void request_unlink(CaptiveRequest *r)
{
        Captive *c = r->captive;

        if (!c)
                return;
        if (r->prev)
                r->prev->next = r->next;
        else
                c->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
        r->captive = NULL;
        c->n_requests--;
}

Captive *captive_free(Captive *c)
{
        if (!c)
                return NULL;
        timer_cancel(&c->timeout_timer);
        timer_cancel(&c->check_timer);
        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                void *handle = TAKE_PTR(c->families[i].handle);

                if (handle)
                        c->ops->cancel(handle, c->probe_userdata);
        }
        while (c->requests)
                request_unlink(c->requests);
        return mfree(c);
}

void captive_set_verdict_callback(Captive *c, CaptiveVerdictCallback callback, void *userdata)
{
        assert(c);
        c->on_verdict = callback;
        c->verdict_userdata = userdata;
}

void captive_set_random(Captive *c, CaptiveRandom random, void *userdata)
{
        assert(c);
        c->random = random ? random : default_random;
        c->random_userdata = random ? userdata : c;
}

/* Records a trigger: the next check runs at once, or right after the running one. */
static int trigger(Captive *c, CaptiveTrigger t, bool fresh)
{
        int r;

        c->next_trigger = t;
        c->next_fresh = c->next_fresh || fresh;
        if (c->checking) {
                c->rerun = true;
                return 0;
        }
        if (timer_is_armed(&c->check_timer) && timer_get_deadline(&c->check_timer) <= now(c))
                return 0;
        r = scheduler_schedule_in(c->scheduler, &c->check_timer, TIMER_LIST_NORMAL, 0);
        return r < 0 ? r : 0;
}

int captive_trigger(Captive *c, CaptiveTrigger t)
{
        assert(c);
        assert(t == CAPTIVE_TRIGGER_STARTUP || t == CAPTIVE_TRIGGER_RESUME ||
               t == CAPTIVE_TRIGGER_MESSAGE);
        return trigger(c, t, t == CAPTIVE_TRIGGER_RESUME);
}

int captive_set_default_route(Captive *c, int family, const CaptiveRoute *route)
{
        Family *f;
        bool was_usable, usable, same;
        int old_ifindex, r;
        uint8_t old_gateway[16];

        assert(c);
        f = family_get(c, family);
        was_usable = family_is_usable(c, f);
        old_ifindex = f->ifindex;
        memcpy(old_gateway, f->gateway, sizeof(old_gateway));

        if (route) {
                size_t len = strlen(strempty(route->link_kind));

                assert(route->ifindex > 0);
                f->has_route = true;
                f->ifindex = route->ifindex;
                memcpy(f->gateway, route->gateway, sizeof(f->gateway));
                f->link_kind_long = len >= sizeof(f->link_kind);
                if (f->link_kind_long)
                        f->link_kind[0] = '\0';
                else
                        memcpy(f->link_kind, strempty(route->link_kind), len + 1);
        } else {
                f->has_route = false;
                f->ifindex = 0;
                memset(f->gateway, 0, sizeof(f->gateway));
                f->link_kind[0] = '\0';
                f->link_kind_long = false;
        }

        usable = family_is_usable(c, f);
        same =
            f->ifindex == old_ifindex && memcmp(f->gateway, old_gateway, sizeof(old_gateway)) == 0;
        if (usable == was_usable && (!usable || same))
                return 0;
        /* A new or different route may be another network: no hysteresis for it. */
        r = trigger(c, CAPTIVE_TRIGGER_ROUTE, usable);
        return r < 0 ? r : 1;
}

int captive_address_added(Captive *c, int ifindex)
{
        int r;

        assert(c);
        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                Family *f = &c->families[i];

                if (ifindex > 0 && f->ifindex == ifindex && family_is_usable(c, f)) {
                        r = trigger(c, CAPTIVE_TRIGGER_ADDRESS, false);
                        return r < 0 ? r : 1;
                }
        }
        return 0;
}

int captive_set_ignored_link_kinds(Captive *c, const char *const *kinds, size_t n_kinds)
{
        bool was_usable[_FAMILY_MAX], changed = false, fresh = false;
        int r;

        assert(c);
        assert(kinds || n_kinds == 0);
        if (n_kinds > CAPTIVE_LINK_KINDS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n_kinds; i++)
                if (!kinds[i] || !kinds[i][0] || strlen(kinds[i]) >= CAPTIVE_LINK_KIND_MAX)
                        return -EINVAL;

        for (size_t i = 0; i < _FAMILY_MAX; i++)
                was_usable[i] = family_is_usable(c, &c->families[i]);
        for (size_t i = 0; i < n_kinds; i++)
                strcpy(c->ignored_kinds[i], kinds[i]);
        c->n_ignored_kinds = n_kinds;
        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                bool usable = family_is_usable(c, &c->families[i]);

                changed = changed || usable != was_usable[i];
                fresh = fresh || (usable && !was_usable[i]);
        }
        if (!changed)
                return 0;
        r = trigger(c, CAPTIVE_TRIGGER_ROUTE, fresh);
        return r < 0 ? r : 1;
}

int captive_request_check(Captive *c, CaptiveRequestCallback callback, void *userdata,
                          CaptiveRequest **ret)
{
        CaptiveRequest *req;
        int r;

        assert(c);
        assert(callback);
        assert(ret);
        if (c->n_requests >= CAPTIVE_REQUESTS_MAX)
                return -EBUSY;
        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        r = trigger(c, CAPTIVE_TRIGGER_REQUEST, false);
        if (r < 0) {
                free(req);
                return r;
        }
        /* Running or not, the next check to start is the one this request causes. */
        *req = (CaptiveRequest){
            .captive = c,
            .next = c->requests,
            .check_id = c->check_id + 1,
            .callback = callback,
            .userdata = userdata,
        };
        if (c->requests)
                c->requests->prev = req;
        c->requests = req;
        c->n_requests++;
        *ret = req;
        return 0;
}

CaptiveRequest *captive_request_free(CaptiveRequest *r)
{
        if (!r)
                return NULL;
        request_unlink(r);
        return mfree(r);
}

static uint64_t backoff_delay(Captive *c)
{
        uint64_t step = c->config.backoff_first_usec, jitter_max;
        unsigned pct = c->config.jitter_percent;

        for (unsigned i = 1; i < c->n_bad && step < c->config.interval_usec; i++)
                step *= 2;
        step = MIN(step, c->config.interval_usec);
        jitter_max = step / 100 * pct + step % 100 * pct / 100;
        if (jitter_max == 0)
                return step;
        return step + c->random(c->random_userdata) % (jitter_max + 1);
}

static void schedule_next(Captive *c, CaptiveResult found)
{
        uint64_t delay;

        if (c->rerun) {
                c->rerun = false;
                delay = 0; /* next_trigger already says why */
        } else if (c->no_route)
                return; /* the route appearing is the next trigger */
        else if (found == CAPTIVE_RESULT_OK) {
                c->next_trigger = CAPTIVE_TRIGGER_PERIODIC;
                delay = c->config.interval_usec;
        } else {
                c->next_trigger = CAPTIVE_TRIGGER_BACKOFF;
                delay = backoff_delay(c);
        }
        /* Only a broken event loop fails here; the next trigger will try again. */
        (void) scheduler_schedule_in(c->scheduler, &c->check_timer, TIMER_LIST_NORMAL, delay);
}

static void adopt(Captive *c, const CaptiveStatus *found)
{
        c->result = found->result;
        c->family_results[FAMILY_IPV4] = found->ipv4;
        c->family_results[FAMILY_IPV6] = found->ipv6;
        if (found->portal)
                strcpy(c->portal, found->portal);
        else
                c->portal[0] = '\0';
        c->has_seconds_remaining = found->has_seconds_remaining;
        c->seconds_remaining = found->seconds_remaining;
        c->checked_usec = found->checked_usec;
        c->trigger = found->trigger;
}

/* Decides whether the check's verdict becomes the state (see captive.h). */
static bool check_is_adopted(Captive *c, CaptiveResult found)
{
        switch (found) {
        case CAPTIVE_RESULT_UNKNOWN:
                c->n_bad = MIN(c->n_bad + 1, CAPTIVE_BAD_CHECKS_MAX);
                return false;
        case CAPTIVE_RESULT_OK:
                c->n_bad = 0;
                c->held = false;
                return true;
        case CAPTIVE_RESULT_CAPTIVE:
        case CAPTIVE_RESULT_NO_INTERNET:
                c->n_bad = MIN(c->n_bad + 1, CAPTIVE_BAD_CHECKS_MAX);
                if (c->result == CAPTIVE_RESULT_OK && !c->no_route && !c->held) {
                        c->held = true;
                        return false;
                }
                c->held = false;
                return true;
        case _CAPTIVE_RESULT_MAX:
                break;
        }
        assert(false);
        return false;
}

static void check_end(Captive *c)
{
        const ProbeVerdict *best_verdict = NULL;
        CaptiveResult best = CAPTIVE_RESULT_UNKNOWN;
        CaptiveStatus found, state;
        bool adopted;

        timer_cancel(&c->timeout_timer);
        c->checking = false;

        for (size_t i = 0; i < _FAMILY_MAX; i++)
                best = captive_result_best(best, c->families[i].verdict.result);
        if (c->no_route)
                best = CAPTIVE_RESULT_NO_INTERNET;
        /* The family that gave the verdict; among equals, one that knows a portal. */
        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                const ProbeVerdict *v = &c->families[i].verdict;

                if (best == CAPTIVE_RESULT_UNKNOWN || v->result != best)
                        continue;
                if (!best_verdict || (!best_verdict->portal[0] && v->portal[0]))
                        best_verdict = v;
        }

        found = (CaptiveStatus){
            .result = best,
            .ipv4 = c->families[FAMILY_IPV4].verdict.result,
            .ipv6 = c->families[FAMILY_IPV6].verdict.result,
            .portal = best_verdict && best_verdict->portal[0] ? best_verdict->portal : NULL,
            .has_seconds_remaining = best_verdict && best_verdict->has_seconds_remaining,
            .seconds_remaining = best_verdict ? best_verdict->seconds_remaining : 0,
            .checked_usec = now(c),
            .trigger = c->check_trigger,
        };

        adopted = check_is_adopted(c, best);
        if (adopted)
                adopt(c, &found);
        /* Before the callbacks, so that a trigger from one of them is not overridden. */
        schedule_next(c, best);

        if (adopted && c->on_verdict) {
                captive_get_status(c, &state);
                c->on_verdict(c, &state, c->verdict_userdata);
        }

        /* Answered requests are unlinked before their callback, which may free any request. */
        for (;;) {
                CaptiveRequest *req = c->requests;

                while (req && req->check_id > c->check_id)
                        req = req->next;
                if (!req)
                        break;
                request_unlink(req);
                req->callback(req, &found, req->userdata);
        }
}

static void check_start(Captive *c)
{
        bool waiting = false;
        int r;

        assert(!c->checking);
        c->checking = true;
        c->check_id++;
        c->check_trigger = c->next_trigger;
        c->no_route = true;
        if (c->next_fresh) {
                c->next_fresh = false;
                c->result = CAPTIVE_RESULT_UNKNOWN;
                c->held = false;
                c->n_bad = 0;
        }

        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                Family *f = &c->families[i];

                f->verdict = (ProbeVerdict){.result = CAPTIVE_RESULT_UNKNOWN};
                f->probing = family_is_usable(c, f);
                f->done = !f->probing;
                f->handle = NULL;
                if (f->probing)
                        c->no_route = false;
        }
        if (c->no_route) {
                check_end(c);
                return;
        }

        /* Armed before any probe starts: nothing may run unbounded. */
        r = scheduler_schedule_in(c->scheduler, &c->timeout_timer, TIMER_LIST_NORMAL,
                                  c->config.probe_timeout_usec);
        if (r < 0) {
                for (size_t i = 0; i < _FAMILY_MAX; i++)
                        c->families[i].done = true;
                check_end(c);
                return;
        }

        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                Family *f = &c->families[i];
                void *handle = NULL;

                if (!f->probing)
                        continue;
                c->starting = true;
                r = c->ops->start(c, f->af, c->probe_userdata, &handle);
                c->starting = false;
                if (r < 0 || !handle) {
                        f->done = true; /* not checked: its verdict stays UNKNOWN */
                        continue;
                }
                f->handle = handle;
                waiting = true;
        }
        if (!waiting)
                check_end(c);
}

static void on_check_timer(Timer *t, void *userdata)
{
        check_start(userdata);
}

static void on_timeout(Timer *t, void *userdata)
{
        Captive *c = userdata;

        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                Family *f = &c->families[i];
                void *handle = TAKE_PTR(f->handle);

                if (!f->probing || f->done)
                        continue;
                f->done = true;
                f->verdict = (ProbeVerdict){.result = CAPTIVE_RESULT_NO_INTERNET};
                if (handle)
                        c->ops->cancel(handle, c->probe_userdata);
        }
        check_end(c);
}

int captive_probe_done(Captive *c, void *handle, const ProbeOutcome *outcome)
{
        assert(c);
        assert(outcome);
        /* The probe contract: never report from inside start(). */
        assert(!c->starting);

        if (!handle || !c->checking)
                return -ESTALE;
        for (size_t i = 0; i < _FAMILY_MAX; i++) {
                Family *f = &c->families[i];

                if (!f->probing || f->done || f->handle != handle)
                        continue;
                f->handle = NULL;
                f->done = true;
                probe_outcome_verdict(outcome, c->config.http_expect, &f->verdict);
                for (size_t j = 0; j < _FAMILY_MAX; j++)
                        if (!c->families[j].done)
                                return 0;
                check_end(c);
                return 0;
        }
        return -ESTALE;
}

void captive_get_status(const Captive *c, CaptiveStatus *ret)
{
        assert(c);
        assert(ret);
        *ret = (CaptiveStatus){
            .result = c->result,
            .ipv4 = c->family_results[FAMILY_IPV4],
            .ipv6 = c->family_results[FAMILY_IPV6],
            .portal = c->portal[0] ? c->portal : NULL,
            .has_seconds_remaining = c->has_seconds_remaining,
            .seconds_remaining = c->seconds_remaining,
            .checked_usec = c->checked_usec,
            .trigger = c->trigger,
        };
}

bool captive_is_checking(const Captive *c)
{
        assert(c);
        return c->checking;
}

uint64_t captive_get_next_check(const Captive *c)
{
        assert(c);
        return timer_get_deadline(&c->check_timer);
}

/* SPDX-License-Identifier: MIT */
/*
 * Captive portal detection wired into the agent (see cpd.h): the ProbeOps of
 * Captive on captive_portal_detect streams, the agent's events as triggers,
 * and the verdicts on the bus.
 */
#include "cpd.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "captive.h"
#include "cpd-message.h"
#include "log.h"
#include "machine.h"
#include "manager.h"
#include "policy.h"
#include "probe-ss.h"
#include "stream.h"

#define CPD_STREAMTYPE     "captive_portal_detect"
#define CPD_LOCATION_NAME  "location"
#define CPD_WAITERS_MAX    CAPTIVE_REQUESTS_MAX
#define CPD_ADDRESSES_SEEN NETSTATE_ADDRESSES_MAX

typedef struct CpdProbe {
        Cpd *cpd;
        SsStream *stream;
        bool finished; /* reported or cancelled: later states are not verdicts */
} CpdProbe;

typedef struct CpdWaiter {
        Cpd *cpd;
        Client *client;
        CaptiveRequest *request;
} CpdWaiter;

struct Cpd {
        Manager *manager;
        Captive *captive; /* NULL: no captive_portal_detect streamtype */
        bool said_off;
        bool started;
        sd_event_source *first;
        CpdWaiter waiters[CPD_WAITERS_MAX];
        /* The addresses of the default-route links last seen (address-added triggers). */
        int seen_ifindex[2];
        NetAddress seen_addrs[2][CPD_ADDRESSES_SEEN];
        size_t n_seen_addrs[2];
};

static const char *connectivity_name(CaptiveResult r)
{
        switch (r) {
        case CAPTIVE_RESULT_UNKNOWN:
                return "unknown";
        case CAPTIVE_RESULT_NO_INTERNET:
                return "no-internet";
        case CAPTIVE_RESULT_CAPTIVE:
                return "captive";
        case CAPTIVE_RESULT_OK:
                return "ok";
        case _CAPTIVE_RESULT_MAX:
                break;
        }
        return "unknown";
}

/* ---- the probe ------------------------------------------------------------------------- */

static void probe_url(const PolicyStreamtype *st, char *buf, size_t size)
{
        (void) snprintf(buf, size, "%s://%s:%u/%s", st->tls ? "https" : "http",
                        strempty(st->endpoint), (unsigned) st->port, strempty(st->http.url));
}

static SsResult on_probe_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        CpdProbe *probe = userdata;
        ProbeOutcome outcome;
        char location[CAPTIVE_URL_MAX + 1] = "", url[CAPTIVE_URL_MAX + 1] = "";
        const PolicyStreamtype *st;
        const char *value;
        size_t len;

        if (state == SS_STATE_DESTROYING) {
                free(probe);
                return SS_OK;
        }
        if (probe->finished || !probe_outcome_from_ss_state(state, ack, &outcome))
                return SS_OK;
        probe->finished = true;
        if (outcome.kind == PROBE_OUTCOME_HTTP) {
                if (ss_stream_get_metadata(s, CPD_LOCATION_NAME, &value, &len) == 0 && value &&
                    len <= CAPTIVE_URL_MAX) {
                        memcpy(location, value, len);
                        location[len] = 0;
                        outcome.location = location;
                }
                st = policy_find_streamtype(ss_context_get_policy(ss_stream_get_context(s)),
                                            ss_stream_get_streamtype(s));
                if (st) {
                        probe_url(st, url, sizeof(url));
                        outcome.url = url;
                }
        }
        (void) captive_probe_done(probe->cpd->captive, probe, &outcome);
        return SS_DESTROY_ME;
}

static int probe_start(Captive *c, int family, void *userdata, void **ret_handle)
{
        static const SsStreamHandlers handlers = {.state = on_probe_state};
        Cpd *cpd = userdata;
        CpdProbe *probe;
        SsStream *s;
        int r;

        (void) c;
        probe = calloc(1, sizeof(*probe));
        if (!probe)
                return -ENOMEM;
        probe->cpd = cpd;
        r = ss_stream_new(&s, cpd->manager->ss, CPD_STREAMTYPE, &handlers, probe);
        if (r < 0) {
                /* -ECANCELED: DESTROYING was delivered and freed the probe. */
                if (r != -ECANCELED)
                        free(probe);
                return r;
        }
        probe->stream = s;
        r = ss_stream_set_address_family(s, family);
        if (r >= 0)
                r = ss_stream_client_connect(s);
        if (r < 0) {
                probe->finished = true;
                (void) ss_stream_free(s); /* frees the probe (DESTROYING) */
                return r;
        }
        *ret_handle = probe;
        return 0;
}

static void probe_cancel(void *handle, void *userdata)
{
        CpdProbe *probe = handle;

        (void) userdata;
        probe->finished = true;
        (void) ss_stream_free(probe->stream); /* frees the probe (DESTROYING) */
}

static const ProbeOps probe_ops = {.start = probe_start, .cancel = probe_cancel};

/* ---- verdicts -------------------------------------------------------------------------- */

static json_object *status_json(const CaptiveStatus *st)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "result",
                               st->result == CAPTIVE_RESULT_UNKNOWN
                                   ? NULL
                                   : json_object_new_string(captive_result_to_string(st->result)));
        json_object_object_add(o, "ipv4",
                               st->ipv4 == CAPTIVE_RESULT_UNKNOWN
                                   ? NULL
                                   : json_object_new_string(captive_result_to_string(st->ipv4)));
        json_object_object_add(o, "ipv6",
                               st->ipv6 == CAPTIVE_RESULT_UNKNOWN
                                   ? NULL
                                   : json_object_new_string(captive_result_to_string(st->ipv6)));
        if (st->portal)
                json_object_object_add(o, "portal", json_object_new_string(st->portal));
        if (st->has_seconds_remaining)
                json_object_object_add(o, "seconds_remaining",
                                       json_object_new_int64((int64_t) st->seconds_remaining));
        json_object_object_add(o, "checked_us", json_object_new_int64((int64_t) st->checked_usec));
        json_object_object_add(o, "trigger",
                               json_object_new_string(captive_trigger_to_string(st->trigger)));
        return o;
}

static void reply_object(Client *c, json_object *o)
{
        if (client_reply(c, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
                log_debug("failed to queue a captive reply");
}

static void reply_failure(Client *c, const char *why)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(why));
        reply_object(c, o);
        json_object_put(o);
}

static void on_verdict(Captive *c, const CaptiveStatus *status, void *userdata)
{
        Cpd *cpd = userdata;
        char buf[CPD_MESSAGE_MAX + 1];
        int n, r;

        (void) c;
        n = cpd_message_format(status, buf);
        if (n < 0)
                return;
        r = bus_send_retained(cpd->manager->bus, "cpd", SMD_CLASS_NETWORK, buf, (size_t) n);
        if (r < 0)
                log_warning_errno(r, "failed to publish the captive portal verdict: %m");
        log_info("captive portal detection: %s%s%s (%s)", captive_result_to_string(status->result),
                 status->portal ? ", portal " : "", strempty(status->portal),
                 captive_trigger_to_string(status->trigger));
        machine_set_connectivity(cpd->manager->machine, connectivity_name(status->result));
}

static void waiter_clear(CpdWaiter *w)
{
        w->request = captive_request_free(w->request);
        w->client = NULL;
}

static void on_request_done(CaptiveRequest *r, const CaptiveStatus *status, void *userdata)
{
        CpdWaiter *w = userdata;
        json_object *o;

        (void) r;
        o = status_json(status);
        json_object_object_add(o, "ok",
                               json_object_new_boolean(status->result != CAPTIVE_RESULT_UNKNOWN));
        if (status->result == CAPTIVE_RESULT_UNKNOWN)
                json_object_object_add(o, "error",
                                       json_object_new_string("the probe could not start"));
        reply_object(w->client, o);
        json_object_put(o);
        /* The request is inert now; free it outside its own callback. */
        w->client = NULL;
}

/* ---- events ---------------------------------------------------------------------------- */

static void follow_family(Cpd *cpd, int family)
{
        const NetState *ns = machine_get_netstate(cpd->manager->machine);
        const NetRoute *route;
        const NetLink *link;
        size_t i = family == AF_INET ? 0 : 1;

        if (!netstate_get_usable_route(ns, family, &route, &link)) {
                (void) captive_set_default_route(cpd->captive, family, NULL);
                cpd->seen_ifindex[i] = 0;
                cpd->n_seen_addrs[i] = 0;
                return;
        }
        CaptiveRoute cr = {.ifindex = route->ifindex,
                           .link_kind = link->cur.kind[0] ? link->cur.kind : NULL};
        if (route->has_gateway)
                memcpy(cr.gateway, route->gateway, sizeof(cr.gateway));
        if (captive_set_default_route(cpd->captive, family, &cr) == 0 &&
            cpd->seen_ifindex[i] == route->ifindex) {
                /* The same route: an address added on its link is a trigger. */
                for (size_t k = 0; k < link->n_addrs; k++) {
                        bool known = false;

                        for (size_t j = 0; j < cpd->n_seen_addrs[i] && !known; j++)
                                known = memcmp(&cpd->seen_addrs[i][j], &link->addrs[k],
                                               sizeof(NetAddress)) == 0;
                        if (!known) {
                                (void) captive_address_added(cpd->captive, route->ifindex);
                                break;
                        }
                }
        }
        cpd->seen_ifindex[i] = route->ifindex;
        cpd->n_seen_addrs[i] = MIN(link->n_addrs, (size_t) CPD_ADDRESSES_SEEN);
        memcpy(cpd->seen_addrs[i], link->addrs, cpd->n_seen_addrs[i] * sizeof(NetAddress));
}

static void on_network(void *userdata)
{
        Cpd *cpd = userdata;

        if (!cpd->captive || !machine_is_coldplugged(cpd->manager->machine))
                return;
        follow_family(cpd, AF_INET);
        follow_family(cpd, AF_INET6);
        if (!cpd->started) {
                cpd->started = true;
                (void) captive_trigger(cpd->captive, CAPTIVE_TRIGGER_STARTUP);
        }
}

static void on_resume(void *userdata)
{
        Cpd *cpd = userdata;

        if (cpd->captive)
                (void) captive_trigger(cpd->captive, CAPTIVE_TRIGGER_RESUME);
}

static int on_first(sd_event_source *s, void *userdata)
{
        Cpd *cpd = userdata;

        (void) s;
        cpd->first = sd_event_source_disable_unref(cpd->first);
        on_network(cpd);
        return 0;
}

void cpd_on_published(Cpd *cpd, Client *c, uint32_t classes, const void *payload, size_t size)
{
        (void) c;
        if (!cpd->captive || !(classes & SMD_CLASS_NETWORK) ||
            !cpd_message_is_check_trigger(payload, size))
                return;
        log_debug("captive portal check asked for on the bus");
        (void) captive_trigger(cpd->captive, CAPTIVE_TRIGGER_MESSAGE);
}

/* ---- setup ----------------------------------------------------------------------------- */

static void fail_waiters(Cpd *cpd, const char *why)
{
        for (size_t i = 0; i < CPD_WAITERS_MAX; i++) {
                CpdWaiter *w = &cpd->waiters[i];

                if (w->client && w->request)
                        reply_failure(w->client, why);
                waiter_clear(w);
        }
}

static int captive_setup(Cpd *cpd)
{
        const PolicyStreamtype *st = policy_find_streamtype(cpd->manager->policy, CPD_STREAMTYPE);
        CaptiveConfig config;
        int r;

        fail_waiters(cpd, "captive portal detection was reconfigured");
        cpd->captive = captive_free(cpd->captive);
        cpd->seen_ifindex[0] = cpd->seen_ifindex[1] = 0;
        if (!st) {
                if (!cpd->said_off)
                        log_info("no captive_portal_detect streamtype in the policy: "
                                 "captive portal detection is off");
                cpd->said_off = true;
                machine_set_connectivity(cpd->manager->machine, "unknown");
                return 0;
        }
        cpd->said_off = false;
        captive_config_init(&config);
        if (st->cpd_interval_s)
                config.interval_usec = (uint64_t) st->cpd_interval_s * USEC_PER_SEC;
        if (config.backoff_first_usec > config.interval_usec)
                config.backoff_first_usec = config.interval_usec;
        if (st->cpd_timeout_s)
                config.probe_timeout_usec = (uint64_t) st->cpd_timeout_s * USEC_PER_SEC;
        if (st->http.expect)
                config.http_expect = st->http.expect;
        r = captive_new(&cpd->captive, cpd->manager->scheduler, &config, &probe_ops, cpd);
        if (r < 0)
                return log_error_errno(r, "failed to set up captive portal detection: %m");
        captive_set_verdict_callback(cpd->captive, on_verdict, cpd);
        if (st->has_cpd_ignore_link_kinds) {
                r = captive_set_ignored_link_kinds(
                    cpd->captive, (const char *const *) st->cpd_ignore_link_kinds.names,
                    st->cpd_ignore_link_kinds.n_names);
                if (r < 0)
                        log_warning_errno(r, "cpd_ignore_link_kinds not applied: %m");
        }
        return 0;
}

int cpd_new(Cpd **ret, Manager *m)
{
        _cleanup_(cpd_freep) Cpd *cpd = NULL;
        int r;

        cpd = calloc(1, sizeof(*cpd));
        if (!cpd)
                return -ENOMEM;
        cpd->manager = m;
        r = captive_setup(cpd);
        if (r < 0)
                return r;
        r = machine_set_network_hook(m->machine, on_network, cpd);
        if (r >= 0)
                r = machine_add_resume_hook(m->machine, on_resume, cpd);
        if (r >= 0)
                r = sd_event_add_defer(m->event, &cpd->first, on_first, cpd);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(cpd->first, SD_EVENT_PRIORITY_IDLE);
        *ret = TAKE_PTR(cpd);
        return 0;
}

Cpd *cpd_free(Cpd *cpd)
{
        if (!cpd)
                return NULL;
        for (size_t i = 0; i < CPD_WAITERS_MAX; i++)
                waiter_clear(&cpd->waiters[i]);
        captive_free(cpd->captive);
        sd_event_source_disable_unref(cpd->first);
        return mfree(cpd);
}

void cpd_policy_changed(Cpd *cpd)
{
        bool had = cpd->captive;

        (void) captive_setup(cpd);
        if (cpd->captive && (had || cpd->started)) {
                cpd->started = false;
                on_network(cpd);
        }
}

/* ---- control --------------------------------------------------------------------------- */

void cpd_control_status(Cpd *cpd, Client *c)
{
        CaptiveStatus st = {};
        json_object *o;

        if (!cpd->captive) {
                reply_failure(c, "captive portal detection is off (no captive_portal_detect "
                                 "streamtype)");
                return;
        }
        captive_get_status(cpd->captive, &st);
        o = status_json(&st);
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "checking",
                               json_object_new_boolean(captive_is_checking(cpd->captive)));
        reply_object(c, o);
        json_object_put(o);
}

void cpd_control_check(Cpd *cpd, Client *c, uint64_t timeout_usec)
{
        CpdWaiter *w = NULL;
        int r;

        (void) timeout_usec; /* the client bounds its own wait */
        if (!cpd->captive) {
                reply_failure(c, "captive portal detection is off (no captive_portal_detect "
                                 "streamtype)");
                return;
        }
        for (size_t i = 0; i < CPD_WAITERS_MAX && !w; i++) {
                if (cpd->waiters[i].request && !cpd->waiters[i].client)
                        waiter_clear(&cpd->waiters[i]); /* answered earlier */
                if (!cpd->waiters[i].request)
                        w = &cpd->waiters[i];
        }
        if (!w) {
                reply_failure(c, "too many captive portal checks waiting");
                return;
        }
        w->cpd = cpd;
        w->client = c;
        r = captive_request_check(cpd->captive, on_request_done, w, &w->request);
        if (r < 0) {
                w->client = NULL;
                reply_failure(c, "cannot start a captive portal check");
        }
}

void cpd_client_gone(Cpd *cpd, Client *c)
{
        for (size_t i = 0; i < CPD_WAITERS_MAX; i++)
                if (cpd->waiters[i].client == c)
                        waiter_clear(&cpd->waiters[i]);
}

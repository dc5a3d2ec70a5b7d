/* SPDX-License-Identifier: MIT */
/*
 * Captive portal detection wired into the agent (see cpd.h): the ProbeOps of
 * Captive on captive_portal_detect streams, the agent's events as triggers,
 * and the verdicts on the bus.
 */
#include "cpd.h"

#include <assert.h>
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
#include "portal-api.h"
#include "probe-ss.h"
#include "stream.h"

#define CPD_STREAMTYPE     "captive_portal_detect"
#define CPD_API_STREAMTYPE "captive_portal_api"
#define CPD_LOCATION_NAME  "location"
#define CPD_WAITERS_MAX    CAPTIVE_REQUESTS_MAX
#define CPD_ADDRESSES_SEEN NETSTATE_ADDRESSES_MAX

/*
 * One family's probe: the captive_portal_detect stream and, when an RFC 8908
 * API is configured, the captive_portal_api fetch beside it. A usable API
 * document is the answer; without one (none configured, fetch failed, not a
 * valid document) the detect stream's outcome is. The API fetch gets half the
 * check's timeout, so that a silent API leaves time for the detect answer.
 * The probe is freed when its last stream is destroyed.
 */
typedef struct CpdProbe {
        Cpd *cpd;
        SsStream *stream; /* the detect stream while it runs, else NULL */
        SsStream *api;    /* the API fetch while it runs, else NULL */
        unsigned n_streams;
        bool finished; /* reported or cancelled: later states are not verdicts */
        bool has_detect;
        ProbeOutcome detect; /* the detect outcome, held while the API runs */
        char location[CAPTIVE_URL_MAX + 1];
        char url[CAPTIVE_URL_MAX + 1];
        uint8_t *body;
        size_t body_len;
        bool body_too_big;
} CpdProbe;

typedef struct CpdWaiter {
        Cpd *cpd;
        Client *client;
        CaptiveRequest *request;
        bool api; /* this request set the API override */
} CpdWaiter;

struct Cpd {
        Manager *manager;
        Captive *captive; /* NULL: no captive_portal_detect streamtype */
        bool said_off;
        bool started;
        uint64_t timeout_usec; /* the check's probe timeout */
        sd_event_source *first;
        CpdWaiter waiters[CPD_WAITERS_MAX];
        /* The addresses of the default-route links last seen (address-added triggers). */
        int seen_ifindex[2];
        NetAddress seen_addrs[2][CPD_ADDRESSES_SEEN];
        size_t n_seen_addrs[2];
        /*
         * smdctl captive check --api URL: an engine whose policy holds only a
         * captive_portal_api streamtype for that URL, used by the probes of the
         * checks that start until the request is answered. Old ones wait in
         * api_stale until their last stream is gone.
         */
        SsContext *api_override;
        SsContext *api_stale;
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

static void probe_unref_stream(CpdProbe *probe)
{
        assert(probe->n_streams > 0);
        if (--probe->n_streams > 0)
                return;
        free(probe->body);
        free(probe);
}

/* Stops the stream that did not answer (the caller's own stream ends by its return). */
static void probe_stop(CpdProbe *probe, SsStream **other)
{
        SsStream *s = TAKE_PTR(*other);

        probe->finished = true;
        (void) ss_stream_free(s); /* may free the probe when it held the last stream */
}

static void probe_report(CpdProbe *probe, const ProbeOutcome *outcome)
{
        probe->finished = true;
        (void) captive_probe_done(probe->cpd->captive, probe, outcome);
}

static SsResult on_probe_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        CpdProbe *probe = userdata;
        ProbeOutcome outcome;
        const PolicyStreamtype *st;
        const char *value;
        size_t len;

        if (state == SS_STATE_DESTROYING) {
                if (probe->stream == s)
                        probe->stream = NULL;
                probe_unref_stream(probe);
                return SS_OK;
        }
        if (probe->finished || probe->stream != s ||
            !probe_outcome_from_ss_state(state, ack, &outcome))
                return SS_OK;
        if (outcome.kind == PROBE_OUTCOME_HTTP) {
                if (ss_stream_get_metadata(s, CPD_LOCATION_NAME, &value, &len) == 0 && value &&
                    len <= CAPTIVE_URL_MAX) {
                        memcpy(probe->location, value, len);
                        probe->location[len] = 0;
                        outcome.location = probe->location;
                }
                st = policy_find_streamtype(ss_context_get_policy(ss_stream_get_context(s)),
                                            ss_stream_get_streamtype(s));
                if (st) {
                        probe_url(st, probe->url, sizeof(probe->url));
                        outcome.url = probe->url;
                }
        }
        probe->stream = NULL; /* it ends by this return */
        if (probe->api) {
                /* The API document, when it comes, is the better answer: hold this one. */
                probe->detect = outcome;
                probe->has_detect = true;
                return SS_DESTROY_ME;
        }
        probe_report(probe, &outcome);
        return SS_DESTROY_ME;
}

static SsResult on_api_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                          unsigned flags)
{
        CpdProbe *probe = userdata;
        uint8_t *p;

        (void) s;
        (void) flags;
        if (probe->body_too_big || len == 0)
                return SS_OK;
        if (len > PORTAL_API_DOCUMENT_MAX - probe->body_len) {
                probe->body_too_big = true;
                return SS_OK;
        }
        p = realloc(probe->body, probe->body_len + len);
        if (!p) {
                probe->body_too_big = true; /* unusable; the detect answer stands */
                return SS_OK;
        }
        memcpy(p + probe->body_len, buf, len);
        probe->body = p;
        probe->body_len += len;
        return SS_OK;
}

static SsResult on_api_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        CpdProbe *probe = userdata;
        PortalApi api = {};
        ProbeOutcome outcome;
        bool usable = false;

        if (state == SS_STATE_DESTROYING) {
                if (probe->api == s)
                        probe->api = NULL;
                probe_unref_stream(probe);
                return SS_OK;
        }
        if (probe->finished || probe->api != s ||
            !probe_outcome_from_ss_state(state, ack, &outcome))
                return SS_OK;
        probe->api = NULL; /* it ends by this return */
        if (state == SS_STATE_QOS_ACK_REMOTE && ack >= 200 && ack < 300 && !probe->body_too_big &&
            portal_api_parse(probe->body, probe->body_len, &api) == 0)
                usable = true;
        else
                log_debug("captive portal API: no usable document (%s, status %u)",
                          ss_state_to_string(state), (unsigned) ack);
        probe->body = mfree(probe->body);
        probe->body_len = 0;
        if (usable) {
                outcome = (ProbeOutcome){.kind = PROBE_OUTCOME_API, .api = &api};
                probe_stop(probe, &probe->stream); /* the detect stream's answer is not needed */
                probe_report(probe, &outcome);
                portal_api_done(&api);
        } else if (probe->has_detect)
                probe_report(probe, &probe->detect);
        /* else the detect stream answers */
        return SS_DESTROY_ME;
}

/* The engine for the API fetch: an override from smdctl, else the policy's when it has one. */
static SsContext *api_context(Cpd *cpd)
{
        if (cpd->api_override)
                return cpd->api_override;
        if (policy_find_streamtype(cpd->manager->policy, CPD_API_STREAMTYPE))
                return cpd->manager->ss;
        return NULL;
}

static void drop_stale_api(Cpd *cpd)
{
        if (cpd->api_stale && ss_context_n_streams(cpd->api_stale) == 0)
                cpd->api_stale = ss_context_free(cpd->api_stale);
}

static int probe_start_api(CpdProbe *probe, SsContext *ctx, int family, uint64_t timeout_usec)
{
        static const SsStreamHandlers handlers = {.rx = on_api_rx, .state = on_api_state};
        SsStream *s;
        int r;

        r = ss_stream_new(&s, ctx, CPD_API_STREAMTYPE, &handlers, probe);
        if (r < 0)
                return r; /* -ECANCELED: DESTROYING was delivered, but the count was not taken */
        probe->api = s;
        probe->n_streams++;
        r = ss_stream_set_address_family(s, family);
        if (r >= 0)
                r = ss_stream_client_connect(s);
        if (r >= 0)
                r = ss_stream_start_timeout(s, (uint32_t) MAX(timeout_usec / 2 / USEC_PER_MSEC, 1));
        if (r < 0) {
                probe->api = NULL;
                (void) ss_stream_free(s); /* the detect stream still holds the probe */
        }
        return r;
}

static int probe_start(Captive *c, int family, void *userdata, void **ret_handle)
{
        static const SsStreamHandlers handlers = {.state = on_probe_state};
        Cpd *cpd = userdata;
        CpdProbe *probe;
        SsContext *api_ctx;
        SsStream *s;
        int r;

        (void) c;
        drop_stale_api(cpd);
        probe = calloc(1, sizeof(*probe));
        if (!probe)
                return -ENOMEM;
        probe->cpd = cpd;
        probe->n_streams = 1;
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
                probe->stream = NULL;
                (void) ss_stream_free(s); /* frees the probe (DESTROYING) */
                return r;
        }
        api_ctx = api_context(cpd);
        if (api_ctx) {
                r = probe_start_api(probe, api_ctx, family, cpd->timeout_usec);
                if (r < 0)
                        log_debug_errno(r, "captive portal API fetch not started: %m");
        }
        *ret_handle = probe;
        return 0;
}

static void probe_cancel(void *handle, void *userdata)
{
        CpdProbe *probe = handle;
        SsStream *api = TAKE_PTR(probe->api);

        (void) userdata;
        probe_stop(probe, &probe->stream); /* may free the probe when there is no API fetch */
        (void) ss_stream_free(api);
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

/* The --api request is over: its engine goes once its last stream is gone. */
static void api_override_release(Cpd *cpd)
{
        assert(!cpd->api_stale);
        cpd->api_stale = TAKE_PTR(cpd->api_override);
}

static void waiter_clear(CpdWaiter *w)
{
        w->request = captive_request_free(w->request);
        w->client = NULL;
        if (w->api) {
                w->api = false;
                api_override_release(w->cpd);
        }
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
        if (w->api) {
                w->api = false;
                api_override_release(w->cpd);
        }
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
                machine_set_cpd(cpd->manager->machine, false);
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
        cpd->timeout_usec = config.probe_timeout_usec;
        r = captive_new(&cpd->captive, cpd->manager->scheduler, &config, &probe_ops, cpd);
        if (r < 0)
                return log_error_errno(r, "failed to set up captive portal detection: %m");
        captive_set_verdict_callback(cpd->captive, on_verdict, cpd);
        machine_set_cpd(cpd->manager->machine, true);
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
        ss_context_free(cpd->api_override);
        ss_context_free(cpd->api_stale);
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

/* An engine whose policy is one captive_portal_api streamtype fetching url. */
static int api_override_new(Cpd *cpd, const char *url, SsContext **ret)
{
        _cleanup_(policy_unrefp) Policy *p = policy_new();
        PolicyErrors errors = {};
        json_object *doc, *list, *entry, *st;
        const char *text;
        int r;

        if (!p)
                return -ENOMEM;
        doc = json_object_new_object();
        list = json_object_new_array();
        entry = json_object_new_object();
        st = json_object_new_object();
        json_object_object_add(st, "endpoint", json_object_new_string(url));
        json_object_object_add(st, "protocol", json_object_new_string("h1"));
        json_object_object_add(st, "http_method", json_object_new_string("GET"));
        json_object_object_add(entry, CPD_API_STREAMTYPE, st);
        json_object_array_add(list, entry);
        json_object_object_add(doc, "release", json_object_new_string("smdctl captive check"));
        json_object_object_add(doc, "product", json_object_new_string("smdagent"));
        json_object_object_add(doc, "schema-version", json_object_new_int(1));
        json_object_object_add(doc, "s", list);
        text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
        r = policy_add_buffer(p, "smdctl captive check --api", text, strlen(text), &errors);
        json_object_put(doc);
        if (r < 0) {
                for (size_t i = 0; i < errors.n_messages; i++)
                        log_debug("captive portal API URL: %s", errors.messages[i]);
                policy_errors_clear(&errors);
                return r;
        }
        policy_errors_clear(&errors);
        return ss_context_new(ret, cpd->manager->event, p);
}

void cpd_control_check(Cpd *cpd, Client *c, const char *api_url)
{
        CpdWaiter *w = NULL;
        int r;

        if (!cpd->captive) {
                reply_failure(c, "captive portal detection is off (no captive_portal_detect "
                                 "streamtype)");
                return;
        }
        if (api_url) {
                drop_stale_api(cpd);
                if (cpd->api_override || cpd->api_stale) {
                        reply_failure(c, "another check with its own API URL is in progress");
                        return;
                }
                r = api_override_new(cpd, api_url, &cpd->api_override);
                if (r < 0) {
                        reply_failure(c, "the API URL cannot be used");
                        return;
                }
        }
        for (size_t i = 0; i < CPD_WAITERS_MAX && !w; i++) {
                if (cpd->waiters[i].request && !cpd->waiters[i].client)
                        waiter_clear(&cpd->waiters[i]); /* answered earlier */
                if (!cpd->waiters[i].request)
                        w = &cpd->waiters[i];
        }
        if (!w) {
                if (api_url)
                        api_override_release(cpd);
                reply_failure(c, "too many captive portal checks waiting");
                return;
        }
        w->cpd = cpd;
        w->client = c;
        w->api = api_url;
        r = captive_request_check(cpd->captive, on_request_done, w, &w->request);
        if (r < 0) {
                waiter_clear(w);
                reply_failure(c, "cannot start a captive portal check");
        }
}

void cpd_client_gone(Cpd *cpd, Client *c)
{
        for (size_t i = 0; i < CPD_WAITERS_MAX; i++)
                if (cpd->waiters[i].client == c)
                        waiter_clear(&cpd->waiters[i]);
}

/* SPDX-License-Identifier: MIT */
/*
 * Control requests on the `_smd_ctl` streamtype: one JSON object in, one JSON
 * object out. Read-only requests are open to anyone who may use the socket;
 * the rest need root or group smdagent.
 *
 *   {"cmd":"status"}        agent version, uptime, state, participants, counters
 *   {"cmd":"participants"}  one entry per bus participant
 *   {"cmd":"policy-show"}   the effective policy in normal form, with sources
 *   {"cmd":"policy-reload"} rebuild the policy from its files (privileged)
 *   {"cmd":"policy-fetch"}  start fetching the policy (privileged); the outcome
 *                           is published on SYSTEM_STATE (updater.h)
 *   {"cmd":"wake","in_ms":N} a one-shot wake-list timer (privileged; smdctl wake)
 *   {"cmd":"captive-status"} the last captive portal verdict (cpd.c)
 *   {"cmd":"captive-check"}  a check; answered when its verdict is in (privileged);
 *                           "api": an RFC 8908 API URL that check fetches
 *
 * Every answer has "ok"; failures carry "error" with a one-line reason.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "captive.h"
#include "config.h"
#include "cpd.h"
#include "log.h"
#include "machine.h"
#include "manager.h"
#include "message.h"
#include "policy.h"
#include "stream.h"
#include "sul.h"
#include "updater.h"

static void reply_json(Client *c, json_object *o)
{
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        int r = client_reply(c, text);

        if (r < 0 && r != -ENOTCONN)
                log_debug_errno(r, "failed to queue a control reply: %m");
}

_printf_(2, 3) static void reply_error(Client *c, const char *fmt, ...)
{
        json_object *o = json_object_new_object();
        char buf[8192];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(buf));
        reply_json(c, o);
        json_object_put(o);
}

static json_object *classes_json(uint32_t classes)
{
        json_object *a = json_object_new_array();

        for (unsigned b = 0; b < 32; b++) {
                uint32_t bit = UINT32_C(1) << b;
                const char *n;

                if (!(classes & bit))
                        continue;
                n = class_name(bit);
                if (n)
                        json_object_array_add(a, json_object_new_string(n));
        }
        return a;
}

static json_object *links_json(const NetState *ns)
{
        const NetLink *links[NETSTATE_LINKS_MAX];
        size_t n = netstate_get_links(ns, links, ELEMENTSOF(links));
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_new_object(), *addrs = json_object_new_array();

                for (size_t k = 0; k < links[i]->n_addrs; k++) {
                        const NetAddress *ad = &links[i]->addrs[k];
                        char text[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 8];

                        snprintf(item, sizeof(item), "%s/%u",
                                 net_address_to_string(ad->family, ad->addr, text, sizeof(text)),
                                 ad->prefixlen);
                        json_object_array_add(addrs, json_object_new_string(item));
                }
                json_object_object_add(e, "if", json_object_new_string(links[i]->cur.name));
                json_object_object_add(e, "index", json_object_new_int(links[i]->cur.ifindex));
                json_object_object_add(
                    e, "admin", json_object_new_string(links[i]->cur.admin_up ? "up" : "down"));
                json_object_object_add(e, "carrier",
                                       json_object_new_boolean(links[i]->cur.carrier));
                json_object_object_add(e, "addrs", addrs);
                json_object_array_add(a, e);
        }
        return a;
}

static json_object *routes_json(const NetState *ns)
{
        const NetRoute *routes[NETSTATE_ROUTES_MAX];
        size_t n = netstate_get_routes(ns, routes, ELEMENTSOF(routes));
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_new_object();
                char text[INET6_ADDRSTRLEN];

                json_object_object_add(
                    e, "family", json_object_new_string(net_family_to_string(routes[i]->family)));
                json_object_object_add(
                    e, "gw",
                    routes[i]->has_gateway
                        ? json_object_new_string(net_address_to_string(
                              routes[i]->family, routes[i]->gateway, text, sizeof(text)))
                        : NULL);
                json_object_object_add(e, "index", json_object_new_int(routes[i]->ifindex));
                json_object_object_add(e, "metric", json_object_new_int64(routes[i]->metric));
                json_object_array_add(a, e);
        }
        return a;
}

static const char *errno_name(int error)
{
        switch (-error) {
        case 0:
                return NULL;
        case EPERM:
                return "EPERM";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        default:
                return "other";
        }
}

static json_object *platform_json(Manager *m)
{
        const Machine *mc = m->machine;
        const Logind *l = machine_get_logind(mc);
        const Netlink *nl = machine_get_netlink(mc);
        json_object *o = json_object_new_object(), *lj = json_object_new_object(),
                    *nj = json_object_new_object(), *w = json_object_new_object(),
                    *s = json_object_new_object();
        uint64_t delay = logind_get_inhibit_delay_max(l), earliest, now;
        int fallback = scheduler_get_wake_fallback(m->scheduler);
        const char *rtc = wakealarm_path();
        NetlinkStats ns;
        NetStateStats nss;
        MachineStats ms;

        json_object_object_add(lj, "state",
                               json_object_new_string(logind_state_to_string(logind_get_state(l))));
        json_object_object_add(lj, "inhibitor", json_object_new_boolean(logind_has_inhibitor(l)));
        json_object_object_add(lj, "inhibit_delay_max_us",
                               delay == USEC_INFINITY ? NULL
                                                      : json_object_new_int64((int64_t) delay));
        json_object_object_add(o, "logind", lj);

        netlink_get_stats(nl, &ns);
        netstate_get_stats(machine_get_netstate(mc), &nss);
        json_object_object_add(
            nj, "state", json_object_new_string(netlink_is_active(nl) ? "active" : "unavailable"));
        json_object_object_add(nj, "messages", json_object_new_int64((int64_t) ns.messages));
        json_object_object_add(nj, "invalid", json_object_new_int64((int64_t) ns.invalid));
        json_object_object_add(nj, "dumps", json_object_new_int64((int64_t) ns.dumps));
        json_object_object_add(nj, "resyncs", json_object_new_int64((int64_t) ns.resyncs));
        json_object_object_add(nj, "overflows", json_object_new_int64((int64_t) nss.overflows));
        json_object_object_add(nj, "published", json_object_new_int64((int64_t) nss.published));
        json_object_object_add(o, "netlink", nj);

        earliest = scheduler_earliest_wake(m->scheduler);
        now = now_usec(CLOCK_BOOTTIME);
        json_object_object_add(
            w, "clock",
            json_object_new_string(scheduler_get_clock(m->scheduler, TIMER_LIST_WAKE) ==
                                           CLOCK_BOOTTIME_ALARM
                                       ? "boottime-alarm"
                                       : "boottime"));
        json_object_object_add(w, "fallback",
                               fallback ? json_object_new_string(errno_name(fallback)) : NULL);
        json_object_object_add(w, "rtc", rtc ? json_object_new_string(rtc) : NULL);
        json_object_object_add(w, "timers", json_object_new_int(machine_n_wake_timers(mc)));
        json_object_object_add(w, "earliest_boottime_us",
                               earliest == UINT64_MAX ? NULL
                                                      : json_object_new_int64((int64_t) earliest));
        json_object_object_add(
            w, "earliest_in_us",
            earliest == UINT64_MAX
                ? NULL
                : json_object_new_int64((int64_t) (earliest > now ? earliest - now : 0)));
        json_object_object_add(o, "wake", w);

        machine_get_stats(mc, &ms);
        json_object_object_add(s, "suspending", json_object_new_boolean(machine_is_suspending(mc)));
        json_object_object_add(s, "suspends", json_object_new_int64((int64_t) ms.suspends));
        json_object_object_add(s, "resumes", json_object_new_int64((int64_t) ms.resumes));
        json_object_object_add(s, "last_release_us",
                               json_object_new_int64((int64_t) ms.last_release_usec));
        json_object_object_add(s, "wakeups", json_object_new_int64((int64_t) ms.wakeups));
        json_object_object_add(o, "suspend", s);
        return o;
}

static void control_status(Manager *m, Client *c)
{
        json_object *o = json_object_new_object(), *b = json_object_new_object(),
                    *sv = json_object_new_object();
        BusStats bs;
        ServerStats ss;

        bus_get_stats(m->bus, &bs);
        server_get_stats(m->server, &ss);
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(o, "pid", json_object_new_int(getpid()));
        json_object_object_add(
            o, "uptime_us",
            json_object_new_int64((int64_t) (now_usec(CLOCK_MONOTONIC) - m->start_usec)));
        json_object_object_add(o, "state", json_object_new_string(m->state));
        json_object_object_add(o, "socket", json_object_new_string(m->socket_path));
        json_object_object_add(o, "socket_activated", json_object_new_boolean(m->socket_activated));
        json_object_object_add(o, "participants", json_object_new_int64(bs.participants));
        json_object_object_add(o, "clients", json_object_new_int64(ss.clients));
        json_object_object_add(b, "sent", json_object_new_int64((int64_t) bs.sent));
        json_object_object_add(b, "unheard", json_object_new_int64((int64_t) bs.unheard));
        json_object_object_add(b, "delivered", json_object_new_int64((int64_t) bs.delivered));
        json_object_object_add(b, "lost", json_object_new_int64((int64_t) bs.lost));
        json_object_object_add(b, "queued_messages", json_object_new_int64(bs.queued_messages));
        json_object_object_add(b, "queued_bytes", json_object_new_int64(bs.queued_bytes));
        json_object_object_add(b, "retained_topics", json_object_new_int64(bs.retained));
        json_object_object_add(o, "bus", b);
        json_object_object_add(sv, "accepted", json_object_new_int64((int64_t) ss.accepted));
        json_object_object_add(sv, "protocol_errors",
                               json_object_new_int64((int64_t) ss.protocol_errors));
        json_object_object_add(sv, "refused", json_object_new_int64((int64_t) ss.refused));
        json_object_object_add(o, "server", sv);
        json_object_object_add(o, "connectivity",
                               json_object_new_string(machine_get_connectivity(m->machine)));
        json_object_object_add(o, "usable_route",
                               json_object_new_boolean(machine_has_usable_route(m->machine)));
        json_object_object_add(o, "links", links_json(machine_get_netstate(m->machine)));
        json_object_object_add(o, "default_routes", routes_json(machine_get_netstate(m->machine)));
        /* Trust-store credential sets alive in the engine (old policies' ones included). */
        json_object_object_add(o, "tls_credentials",
                               json_object_new_int64(m->ss ? ss_context_n_tls_contexts(m->ss) : 0));
        json_object_object_add(o, "platform", platform_json(m));
        reply_json(c, o);
        json_object_put(o);
}

static void add_participant(Client *c, Participant *p, void *ud)
{
        json_object *a = ud, *e = json_object_new_object();
        const Credentials *cred = client_get_credentials(c);

        json_object_object_add(e, "id", json_object_new_int64((int64_t) client_get_id(c)));
        json_object_object_add(e, "pid", json_object_new_int(cred->pid));
        json_object_object_add(e, "uid", json_object_new_int64(cred->uid));
        json_object_object_add(e, "classes", classes_json(participant_get_filter(p)));
        json_object_object_add(e, "backlog", json_object_new_int64(participant_backlog(p)));
        json_object_object_add(e, "lost",
                               json_object_new_int64((int64_t) participant_get_lost_total(p)));
        json_object_array_add(a, e);
}

static void control_participants(Manager *m, Client *c)
{
        json_object *o = json_object_new_object(), *a = json_object_new_array();

        server_foreach_participant(m->server, add_participant, a);
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "participants", a);
        reply_json(c, o);
        json_object_put(o);
}

static void control_policy_show(Manager *m, Client *c)
{
        _cleanup_free_ char *text = NULL;
        json_object *o, *pol, *src;
        int r = policy_print_json(m->policy, true, &text);

        if (r < 0) {
                reply_error(c, "cannot print the policy: %s", strerror(-r));
                return;
        }
        pol = json_tokener_parse(text);
        if (!pol) {
                reply_error(c, "%s", "cannot print the policy");
                return;
        }
        o = json_object_new_object();
        src = json_object_new_array();
        for (size_t i = 0; i < policy_n_sources(m->policy); i++)
                json_object_array_add(src, json_object_new_string(policy_source_at(m->policy, i)));
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "release",
                               json_object_new_string(strempty(policy_get_release(m->policy))));
        json_object_object_add(o, "loaded_realtime_us",
                               json_object_new_int64((int64_t) m->policy_loaded_usec));
        json_object_object_add(o, "sources", src);
        /* Where the policy came from: local files, or a fetched document on top of them. */
        if (m->updater)
                json_object_object_add(o, "origin", updater_to_json(m->updater));
        json_object_object_add(o, "policy", pol);
        reply_json(c, o);
        json_object_put(o);
}

static void control_policy_reload(Manager *m, Client *c)
{
        _cleanup_free_ char *errors = NULL;
        json_object *o;

        if (!client_is_privileged(c)) {
                reply_error(c, "%s", "policy reload needs root or group smdagent");
                return;
        }
        if (manager_reload_policy(m, &errors) < 0) {
                reply_error(c, "%s", errors ? errors : "policy reload failed");
                return;
        }
        o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "release",
                               json_object_new_string(strempty(policy_get_release(m->policy))));
        json_object_object_add(o, "streamtypes",
                               json_object_new_int64((int64_t) policy_n_streamtypes(m->policy)));
        reply_json(c, o);
        json_object_put(o);
}

static void control_policy_fetch(Manager *m, Client *c)
{
        json_object *o;
        int r;

        if (!client_is_privileged(c)) {
                reply_error(c, "%s", "policy fetch needs root or group smdagent");
                return;
        }
        r = m->updater ? updater_fetch(m->updater) : -ENOENT;
        if (r == -ENOENT) {
                reply_error(c, "%s", "the policy has no fetch_policy streamtype");
                return;
        }
        if (r < 0) {
                reply_error(c, "cannot start the policy fetch: %s", strerror(-r));
                return;
        }
        o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        /* Already running: its outcome answers this request too. */
        json_object_object_add(o, "joined", json_object_new_boolean(r > 0));
        reply_json(c, o);
        json_object_put(o);
}

static void control_wake(Manager *m, Client *c, json_object *req)
{
        json_object *v, *o;
        int64_t ms;
        int id;

        if (!client_is_privileged(c)) {
                reply_error(c, "%s", "wake needs root or group smdagent");
                return;
        }
        if (!json_object_object_get_ex(req, "in_ms", &v) ||
            !json_object_is_type(v, json_type_int) || (ms = json_object_get_int64(v)) < 0 ||
            ms > INT64_C(365) * 24 * 3600 * 1000) {
                reply_error(c, "%s",
                            "wake needs \"in_ms\": milliseconds from now (at most a year)");
                return;
        }
        id = machine_add_wake_timer(m->machine, (uint64_t) ms * USEC_PER_MSEC);
        if (id == -EBUSY) {
                reply_error(c, "all %u wake timers are in use", MACHINE_WAKE_TIMERS_MAX);
                return;
        }
        if (id < 0) {
                reply_error(c, "cannot schedule the wake timer: %s", strerror(-id));
                return;
        }
        o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "id", json_object_new_int(id));
        json_object_object_add(
            o, "clock",
            json_object_new_string(scheduler_get_clock(m->scheduler, TIMER_LIST_WAKE) ==
                                           CLOCK_BOOTTIME_ALARM
                                       ? "boottime-alarm"
                                       : "boottime"));
        reply_json(c, o);
        json_object_put(o);
}

static void control_captive_check(Manager *m, Client *c, json_object *req)
{
        json_object *v;
        const char *api = NULL;

        if (json_object_object_get_ex(req, "api", &v)) {
                if (!json_object_is_type(v, json_type_string) ||
                    (size_t) json_object_get_string_len(v) > CAPTIVE_URL_MAX) {
                        reply_error(c, "%s", "\"api\" needs a URL string");
                        return;
                }
                api = json_object_get_string(v);
        }
        cpd_control_check(m->cpd, c, api);
}

void manager_on_control(Client *c, const char *request, size_t size, void *userdata)
{
        Manager *m = userdata;
        json_tokener *tok = json_tokener_new();
        json_object *req, *cmd;
        const char *name;

        if (!tok) {
                reply_error(c, "%s", "out of memory");
                return;
        }
        req = json_tokener_parse_ex(tok, request, (int) size);
        if (!req || json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(req, json_type_object)) {
                reply_error(c, "request is not a JSON object: %s",
                            json_tokener_error_desc(json_tokener_get_error(tok)));
                goto out;
        }
        if (!json_object_object_get_ex(req, "cmd", &cmd) ||
            !json_object_is_type(cmd, json_type_string)) {
                reply_error(c, "%s", "request has no \"cmd\" string");
                goto out;
        }
        name = json_object_get_string(cmd);
        if (streq(name, "status"))
                control_status(m, c);
        else if (streq(name, "participants"))
                control_participants(m, c);
        else if (streq(name, "policy-show"))
                control_policy_show(m, c);
        else if (streq(name, "policy-reload"))
                control_policy_reload(m, c);
        else if (streq(name, "policy-fetch"))
                control_policy_fetch(m, c);
        else if (streq(name, "wake"))
                control_wake(m, c, req);
        else if (streq(name, "captive-status"))
                cpd_control_status(m->cpd, c);
        else if (streq(name, "captive-check")) {
                if (!client_is_privileged(c))
                        reply_error(c, "%s",
                                    "permission denied: captive-check needs root or "
                                    "group smdagent");
                else
                        control_captive_check(m, c, req);
        } else
                reply_error(c, "unknown command \"%s\"", name);
out:
        json_object_put(req);
        json_tokener_free(tok);
}

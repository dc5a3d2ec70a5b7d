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
 *
 * Every answer has "ok"; failures carry "error" with a one-line reason.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "message.h"
#include "policy.h"

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
        else
                reply_error(c, "unknown command \"%s\"", name);
out:
        json_object_put(req);
        json_tokener_free(tok);
}

/* SPDX-License-Identifier: MIT */
/*
 * Policy updates from the network (see updater.h): when to fetch, and what
 * to do with the outcome of a fetch.
 */
#include "updater.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fetch.h"
#include "log.h"
#include "machine.h"
#include "manager.h"
#include "message.h"
#include "persist.h"
#include "policy.h"
#include "sul.h"

#define REASON_MAX 320u

struct Updater {
        Manager *manager;
        Fetch *fetch;
        Timer timer;         /* the next periodic fetch */
        uint32_t interval_s; /* what the timer was armed with */
        bool first_started;  /* the gate started the first fetch */
        bool first_done;     /* some fetch finished: the gate is open */
        uint64_t n_attempts, n_failures;
        uint64_t last_attempt_usec; /* CLOCK_REALTIME */
        uint64_t last_done_usec;
        bool have_last, last_ok;
        char last_reason[REASON_MAX];
};

static const PolicyStreamtype *fetch_streamtype(Updater *u)
{
        return policy_find_streamtype(u->manager->policy, FETCH_STREAMTYPE);
}

/* Publishing: SYSTEM_STATE, not retained (an event, like SUSPENDING). */

static void publish(Updater *u, json_object *o)
{
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        int r =
            text ? bus_send(u->manager->bus, SMD_CLASS_SYSTEM_STATE, text, strlen(text)) : -ENOMEM;

        if (r < 0)
                log_warning_errno(r, "failed to publish the policy fetch outcome: %m");
}

static void publish_updated(Updater *u)
{
        json_object *o = json_object_new_object();

        if (!o)
                return;
        json_object_object_add(o, "policy", json_object_new_string("updated"));
        json_object_object_add(
            o, "release", json_object_new_string(strempty(policy_get_release(u->manager->policy))));
        publish(u, o);
        json_object_put(o);
}

/* Cuts s to at most max bytes, not inside a UTF-8 sequence. */
static void truncate_utf8(char *s, size_t max)
{
        size_t n = strlen(s);

        if (n <= max)
                return;
        while (max > 0 && ((unsigned char) s[max] & 0xc0) == 0x80)
                max--;
        s[max] = '\0';
}

static void publish_failed(Updater *u, char *reason)
{
        /* The message must fit an SMD payload: shorten the reason until it does. */
        for (size_t max = strlen(reason);; max = max > 32 ? max - 32 : 0) {
                json_object *o = json_object_new_object();
                const char *text;
                bool fits;

                if (!o)
                        return;
                truncate_utf8(reason, max);
                json_object_object_add(o, "policy", json_object_new_string("fetch-failed"));
                json_object_object_add(o, "reason", json_object_new_string(reason));
                text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
                fits = text && strlen(text) <= SMD_PAYLOAD_MAX;
                if (fits || max == 0)
                        publish(u, o);
                json_object_put(o);
                if (fits || max == 0)
                        return;
        }
}

/* Outcomes. */

static void arm_timer(Updater *u)
{
        const PolicyStreamtype *st = fetch_streamtype(u);
        uint32_t interval = st ? st->fetch_interval_s : 0;
        int r;

        u->interval_s = interval;
        if (interval == 0) {
                timer_cancel(&u->timer);
                return;
        }
        r = scheduler_schedule_in(u->manager->scheduler, &u->timer, TIMER_LIST_NORMAL,
                                  (uint64_t) interval * USEC_PER_SEC);
        if (r < 0)
                log_warning_errno(r, "failed to schedule the next policy fetch: %m");
}

static void finished(Updater *u, bool ok, const char *reason)
{
        u->have_last = true;
        u->last_ok = ok;
        u->last_done_usec = now_usec(CLOCK_REALTIME);
        snprintf(u->last_reason, sizeof(u->last_reason), "%s", ok ? "" : strempty(reason));
        if (!ok)
                u->n_failures++;
        arm_timer(u);
        if (!u->first_done) {
                u->first_done = true;
                if (u->manager->machine)
                        machine_recheck(u->manager->machine);
        }
}

/* One log line (plus the parser's full list, if any), one message. */
static void fail(Updater *u, const char *url, const char *reason, const char *details)
{
        char buf[REASON_MAX];

        log_warning("policy fetch from %s failed, the running policy stays in force: %s%s%s", url,
                    reason, details ? "\n" : "", strempty(details));
        snprintf(buf, sizeof(buf), "%s", reason);
        publish_failed(u, buf);
        finished(u, false, buf);
}

/* The reason a document was refused: its JSON syntax, or the first policy error. */
static void refusal_reason(const char *body, size_t size, const char *source, const char *errors,
                           char *buf, size_t buf_size)
{
        json_tokener *tok = json_tokener_new();
        json_object *root = NULL;
        enum json_tokener_error e = json_tokener_error_parse_eof;
        size_t n;

        if (tok) {
                root = json_tokener_parse_ex(tok, body, (int) MIN(size, (size_t) INT32_MAX));
                e = json_tokener_get_error(tok);
                if (root && e == json_tokener_success &&
                    (size_t) json_tokener_get_parse_end(tok) < size &&
                    strspn(body + json_tokener_get_parse_end(tok), " \t\r\n") !=
                        size - json_tokener_get_parse_end(tok))
                        e = json_tokener_error_parse_unexpected;
        }
        if (!root || e != json_tokener_success) {
                snprintf(buf, buf_size, "json: %s at byte %zu",
                         json_tokener_error_desc(
                             e == json_tokener_continue ? json_tokener_error_parse_eof : e),
                         tok ? json_tokener_get_parse_end(tok) : 0);
        } else {
                const char *first = strempty(errors);

                /* The messages start with the source: the reason names it elsewhere. */
                n = strlen(source);
                if (strncmp(first, source, n) == 0 && first[n] == ':' && first[n + 1] == ' ')
                        first += n + 2;
                snprintf(buf, buf_size, "policy: %.*s", (int) strcspn(first, "\n"), first);
        }
        json_object_put(root);
        if (tok)
                json_tokener_free(tok);
}

static void persist(Updater *u, const char *body, size_t size)
{
        Manager *m = u->manager;
        int r;

        if (!m->state_dir)
                return;
        r = persist_write(m->state_dir, UPDATER_PERSIST_NAME, body, size);
        if (r < 0)
                log_warning_errno(r,
                                  "failed to keep the fetched policy in %s/%s (it is in force "
                                  "until the agent stops): %m",
                                  m->state_dir, UPDATER_PERSIST_NAME);
}

static void on_fetch_done(Fetch *f, const FetchResult *result, void *userdata)
{
        Updater *u = userdata;
        Manager *m = u->manager;
        _cleanup_free_ char *source = NULL, *errors = NULL;
        char reason[REASON_MAX];
        int r;

        if (result->error < 0) {
                fail(u, result->url, result->reason, NULL);
                return;
        }
        if (asprintf(&source, "fetched:%s", result->url) < 0) {
                fail(u, result->url, "policy: out of memory", NULL);
                return;
        }
        r = manager_apply_policy_layer(m, source, result->body, result->size,
                                       now_usec(CLOCK_REALTIME), &errors);
        if (r < 0) {
                refusal_reason(result->body, result->size, source, errors, reason, sizeof(reason));
                fail(u, result->url, reason, errors);
                return;
        }
        persist(u, result->body, result->size);
        log_info("policy updated from %s (%s): release %s", result->url,
                 result->verified ? "signature verified" : "no signing key configured",
                 strempty(policy_get_release(m->policy)));
        publish_updated(u);
        finished(u, true, NULL);
}

static int start(Updater *u)
{
        Manager *m = u->manager;
        int r = fetch_start(u->fetch, m->policy, policy_get_signing_key(m->policy));

        if (r == -EBUSY)
                return 1;
        if (r < 0)
                return r;
        u->n_attempts++;
        u->last_attempt_usec = now_usec(CLOCK_REALTIME);
        log_debug("fetching the policy (fetch_policy)");
        return 0;
}

static void on_timer(Timer *t, void *userdata)
{
        Updater *u = userdata;
        int r = start(u);

        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "failed to start the periodic policy fetch: %m");
        if (r != 0)
                arm_timer(u);
}

int updater_new(Updater **ret, Manager *m)
{
        _cleanup_(updater_freep) Updater *u = NULL;
        int r;

        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->manager = m;
        timer_init(&u->timer, on_timer, u);
        r = fetch_new(&u->fetch, m->event, on_fetch_done, u);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(u);
        return 0;
}

Updater *updater_free(Updater *u)
{
        if (!u)
                return NULL;
        timer_cancel(&u->timer);
        u->fetch = fetch_free(u->fetch);
        return mfree(u);
}

int updater_load_persisted(Updater *u)
{
        Manager *m = u->manager;
        _cleanup_free_ char *data = NULL, *source = NULL, *errors = NULL;
        struct stat st;
        size_t size;
        int r;

        if (!m->state_dir)
                return 0;
        r = persist_clean(m->state_dir, UPDATER_PERSIST_NAME);
        if (r > 0)
                log_info("removed %d unfinished cop%s of the fetched policy from %s", r,
                         r == 1 ? "y" : "ies", m->state_dir);
        r = persist_read(m->state_dir, UPDATER_PERSIST_NAME, POLICY_FILE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (asprintf(&source, "persisted:%s/%s", m->state_dir, UPDATER_PERSIST_NAME) < 0)
                return log_error_errno(ENOMEM, "out of memory");
        if (r < 0) {
                log_warning_errno(r, "ignoring the persisted policy %s: cannot read it: %m",
                                  source + strlen("persisted:"));
                return 0;
        }
        r = manager_apply_policy_layer(m, source, data, size, 0, &errors);
        if (r < 0) {
                log_warning("ignoring the persisted policy %s, the local policy is used:\n%s",
                            source + strlen("persisted:"), strempty(errors));
                return 0;
        }
        if (stat(source + strlen("persisted:"), &st) == 0)
                m->layer_fetched_usec = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                        (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC;
        log_info("applied the last fetched policy from %s: release %s",
                 source + strlen("persisted:"), strempty(policy_get_release(m->policy)));
        return 1;
}

int updater_fetch(Updater *u)
{
        return start(u);
}

bool updater_gate_pending(Updater *u)
{
        int r;

        if (u->first_done)
                return false;
        if (fetch_is_running(u->fetch))
                return true;
        if (u->first_started || !fetch_streamtype(u))
                return false;
        u->first_started = true;
        r = start(u);
        if (r < 0) {
                log_warning_errno(r, "failed to start the policy fetch: %m");
                return false;
        }
        return true;
}

void updater_policy_changed(Updater *u)
{
        const PolicyStreamtype *st;

        /* Periodic fetches start once the first one finished. */
        if (!u->first_done)
                return;
        st = fetch_streamtype(u);
        if (!st || st->fetch_interval_s != u->interval_s || !timer_is_armed(&u->timer))
                if (!fetch_is_running(u->fetch))
                        arm_timer(u);
}

json_object *updater_to_json(Updater *u)
{
        Manager *m = u->manager;
        const PolicyStreamtype *st = fetch_streamtype(u);
        const char *origin = "local";
        json_object *o = json_object_new_object(), *f;

        if (!o)
                return NULL;
        if (m->layer_source && strncmp(m->layer_source, "fetched:", 8) == 0)
                origin = "fetched";
        else if (m->layer_source)
                origin = "persisted";
        json_object_object_add(o, "origin", json_object_new_string(origin));
        if (m->layer_source)
                json_object_object_add(o, "layer_source", json_object_new_string(m->layer_source));
        json_object_object_add(o, "fetched_realtime_us",
                               json_object_new_int64((int64_t) m->layer_fetched_usec));
        if (policy_get_signing_key(m->policy))
                json_object_object_add(o, "signing_key",
                                       json_object_new_string(policy_get_signing_key(m->policy)));
        if (m->state_dir) {
                char path[PATH_MAX];

                snprintf(path, sizeof(path), "%s/%s", m->state_dir, UPDATER_PERSIST_NAME);
                json_object_object_add(o, "persist_path", json_object_new_string(path));
        }

        f = json_object_new_object();
        if (!f)
                return o;
        json_object_object_add(f, "configured", json_object_new_boolean(st != NULL));
        json_object_object_add(f, "running", json_object_new_boolean(fetch_is_running(u->fetch)));
        json_object_object_add(f, "interval_s",
                               json_object_new_int64(st ? (int64_t) st->fetch_interval_s : 0));
        json_object_object_add(f, "attempts", json_object_new_int64((int64_t) u->n_attempts));
        json_object_object_add(f, "failures", json_object_new_int64((int64_t) u->n_failures));
        json_object_object_add(f, "last_attempt_realtime_us",
                               json_object_new_int64((int64_t) u->last_attempt_usec));
        if (u->have_last) {
                json_object_object_add(
                    f, "last_result",
                    json_object_new_string(u->last_ok ? "updated" : "fetch-failed"));
                if (!u->last_ok)
                        json_object_object_add(f, "last_reason",
                                               json_object_new_string(u->last_reason));
                json_object_object_add(f, "last_done_realtime_us",
                                       json_object_new_int64((int64_t) u->last_done_usec));
        }
        json_object_object_add(o, "fetch", f);
        return o;
}

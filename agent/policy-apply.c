/* SPDX-License-Identifier: MIT */
/*
 * Loading the effective policy into the running agent, at startup and on
 * reload: the whole new policy, its bus limits and its access rules are built
 * first; only when all of it is valid is it swapped in. A broken file leaves
 * the running policy in force.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpd.h"
#include "log.h"
#include "manager.h"
#include "message.h"
#include "policy.h"
#include "stream.h"

static int append(char **buf, const char *fmt, const char *a, const char *b)
{
        char *n;
        int r = asprintf(&n, "%s%s%s%s", *buf ? *buf : "", *buf ? "\n" : "", a, b ? b : "");

        (void) fmt;
        if (r < 0)
                return -ENOMEM;
        free(*buf);
        *buf = n;
        return 0;
}

static int principals_convert(const PolicyPrincipals *in, PrincipalList *out, const char *where,
                              char **errors)
{
        int ret = 0;

        *out = (PrincipalList){};
        for (size_t i = 0; i < in->n_names; i++) {
                char msg[512];
                int r;

                if (out->n >= PRINCIPALS_MAX) {
                        snprintf(msg, sizeof(msg), "%s: more than %d principals", where,
                                 PRINCIPALS_MAX);
                        (void) append(errors, "", msg, NULL);
                        return -E2BIG;
                }
                r = principal_parse(in->names[i], &out->items[out->n]);
                if (r < 0) {
                        snprintf(msg, sizeof(msg), "%s[%zu]: %s \"%s\"", where, i,
                                 r == -ENOENT
                                     ? (in->names[i][0] == '@' ? "unknown group" : "unknown user")
                                     : "invalid principal",
                                 in->names[i]);
                        (void) append(errors, "", msg, NULL);
                        ret = r;
                        continue;
                }
                out->n++;
        }
        return ret;
}

/* Built-in defaults first; the policy's rules follow and win for the classes they name. */
static int access_from_policy(const PolicySmd *smd, Access *ret, char **errors)
{
        Access a;
        int ret_r = 0;

        access_init_default(&a);
        for (size_t i = 0; smd && smd->has_access && i < smd->n_access; i++) {
                const PolicyAccessRule *pr = &smd->access[i];
                AccessRule rule = {.classes = pr->classes};
                char where[64];
                int r = 0;

                if (pr->has_publish) {
                        snprintf(where, sizeof(where), "smd.access[%zu].publish", i);
                        rule.has_publish = true;
                        r = principals_convert(&pr->publish, &rule.publish, where, errors);
                }
                if (pr->has_subscribe) {
                        snprintf(where, sizeof(where), "smd.access[%zu].subscribe", i);
                        rule.has_subscribe = true;
                        if (principals_convert(&pr->subscribe, &rule.subscribe, where, errors) < 0)
                                r = -EINVAL;
                }
                if (r < 0) {
                        ret_r = r;
                        continue;
                }
                if (access_add_rule(&a, &rule) < 0) {
                        (void) append(errors, "", "smd.access: too many rules", NULL);
                        return -E2BIG;
                }
        }
        if (ret_r < 0)
                return ret_r;
        *ret = a;
        return 0;
}

static void limits_from_policy(const PolicySmd *smd, BusLimits *l)
{
        bus_limits_default(l);
        if (!smd)
                return;
        if (smd->has_queue_max_messages)
                l->queue_max_messages = smd->queue_max_messages;
        if (smd->has_queue_max_bytes)
                l->queue_max_bytes = smd->queue_max_bytes;
        if (smd->has_backlog_max)
                l->backlog_max = smd->backlog_max;
        if (smd->has_ttl_ms)
                l->ttl_usec = (uint64_t) smd->ttl_ms * USEC_PER_MSEC;
        if (smd->has_participants_max)
                l->participants_max = smd->participants_max;
}

int manager_load_policy(Manager *m, char **ret_errors)
{
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyErrors errors = {};
        PolicyLoadOptions o = {
            .directories = m->policy_directories,
            .paths = m->policy_paths,
        };
        char *text = NULL;
        Access access;
        BusLimits limits;
        int r;

        r = policy_load(&p, &o, &errors);
        if (r < 0) {
                for (size_t i = 0; i < errors.n_messages; i++)
                        (void) append(&text, "", errors.messages[i], NULL);
                if (!text)
                        (void) append(&text, "", "policy: ", strerror(-r));
                policy_errors_clear(&errors);
                *ret_errors = text;
                return r;
        }
        r = access_from_policy(policy_get_smd(p), &access, &text);
        if (r < 0) {
                *ret_errors = text;
                return r;
        }
        limits_from_policy(policy_get_smd(p), &limits);
        if (limits.backlog_max == 0 || limits.queue_max_messages == 0) {
                (void) append(&text, "", "smd: backlog_max and queue_max_messages must be > 0",
                              NULL);
                *ret_errors = text;
                return -EINVAL;
        }

        /* Everything is valid: swap. */
        for (size_t i = 0; i < policy_n_notes(p); i++)
                log_info("policy: %s", policy_note_at(p, i));
        /*
         * Running streams keep the policy they were created under (each holds a
         * reference); new streams use this one (ss_context_set_policy()).
         */
        policy_unref(m->policy);
        m->policy = TAKE_PTR(p);
        if (m->ss)
                ss_context_set_policy(m->ss, m->policy);
        if (m->cpd)
                cpd_policy_changed(m->cpd);
        m->access = access;
        bus_set_limits(m->bus, &limits);
        m->policy_loaded_usec = now_usec(CLOCK_REALTIME);
        log_info("policy loaded: release %s, %zu streamtypes, %zu sources",
                 strempty(policy_get_release(m->policy)), policy_n_streamtypes(m->policy),
                 policy_n_sources(m->policy));
        *ret_errors = NULL;
        return 0;
}

int manager_reload_policy(Manager *m, char **ret_errors)
{
        char *errors = NULL;
        int r = manager_load_policy(m, &errors);

        if (r < 0) {
                log_error("policy reload failed, the running policy stays in force:\n%s",
                          strempty(errors));
                if (ret_errors)
                        *ret_errors = errors;
                else
                        free(errors);
                return r;
        }
        if (ret_errors)
                *ret_errors = NULL;
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Loading the effective policy into the running agent, at startup and on
 * reload: the whole new policy, its bus limits and its access rules are built
 * first; only when all of it is valid is it swapped in. A broken file leaves
 * the running policy in force. A fetched policy (updater.h) is one more
 * source on top of the local ones, kept as the "layer" that reloads put back;
 * when the layer no longer fits the local files it is dropped, never the
 * local policy.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpd.h"
#include "hosted.h"
#include "log.h"
#include "manager.h"
#include "message.h"
#include "policy.h"
#include "stream.h"
#include "updater.h"

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
        if (in->n_names == 0)
                return 0;
        out->items = calloc(MIN(in->n_names, (size_t) PRINCIPALS_MAX), sizeof(Principal));
        if (!out->items) {
                (void) append(errors, "", "out of memory", NULL);
                return -ENOMEM;
        }
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

        if (access_init_default(&a) < 0) {
                (void) append(errors, "", "out of memory", NULL);
                return -ENOMEM;
        }
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
                        access_rule_clear(&rule);
                        ret_r = r;
                        continue;
                }
                if (access_add_rule(&a, &rule) < 0) {
                        (void) append(errors, "", "smd.access: too many rules", NULL);
                        access_clear(&a);
                        return -E2BIG;
                }
        }
        if (ret_r < 0) {
                access_clear(&a);
                return ret_r;
        }
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

/* A policy that is valid through and through, with what the bus gets from it. */
typedef struct PolicyBuild {
        Policy *policy;
        Access access;
        BusLimits limits;
} PolicyBuild;

static int errors_take(PolicyErrors *errors, int r, char **text)
{
        for (size_t i = 0; i < errors->n_messages; i++)
                (void) append(text, "", errors->messages[i], NULL);
        if (!*text)
                (void) append(text, "", "policy: ", strerror(-r));
        policy_errors_clear(errors);
        return r;
}

/* What a document on top of the local policy may not do: change the key it is checked with. */
static int layer_check(const Policy *local, const char *source, const void *data, size_t size,
                       char **text)
{
        json_tokener *tok = json_tokener_new();
        json_object *root, *key;
        int r = 0;

        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, data, (int) MIN(size, (size_t) INT32_MAX));
        /* Syntax errors are the parser's to report, with their line. */
        if (root && json_object_is_type(root, json_type_object) &&
            json_object_object_get_ex(root, "policy_signing_key", &key) &&
            (!json_object_is_type(key, json_type_string) ||
             !streq_ptr(json_object_get_string(key), policy_get_signing_key(local)))) {
                (void) append(text, source,
                              ": policy_signing_key: only the local policy files may set or "
                              "change it",
                              NULL);
                r = -EPERM;
        }
        json_object_put(root);
        json_tokener_free(tok);
        return r;
}

/*
 * The local policy (builtin, drop-ins, --policy paths), then layer (a fetched
 * document) when given. *ret_layer_failed tells that the local policy alone is
 * fine and the layer is what failed.
 */
static int policy_build(Manager *m, const char *layer_source, const void *layer, size_t layer_size,
                        PolicyBuild *ret, char **text, bool *ret_layer_failed)
{
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyErrors errors = {};
        PolicyLoadOptions o = {
            .directories = m->policy_directories,
            .paths = m->policy_paths,
        };
        Access access;
        BusLimits limits;
        int r;

        *ret_layer_failed = false;
        r = policy_load(&p, &o, &errors);
        if (r < 0)
                return errors_take(&errors, r, text);
        if (layer) {
                r = layer_check(p, layer_source, layer, layer_size, text);
                if (r >= 0) {
                        r = policy_add_buffer(p, layer_source, layer, layer_size, &errors);
                        if (r < 0)
                                (void) errors_take(&errors, r, text);
                }
                if (r < 0) {
                        *ret_layer_failed = true;
                        return r;
                }
        }
        r = access_from_policy(policy_get_smd(p), &access, text);
        if (r >= 0) {
                limits_from_policy(policy_get_smd(p), &limits);
                if (limits.backlog_max == 0 || limits.queue_max_messages == 0) {
                        (void) append(text, "",
                                      "smd: backlog_max and queue_max_messages must be > 0", NULL);
                        access_clear(&access);
                        r = -EINVAL;
                }
        }
        if (r < 0) {
                /* Blame the layer only if the local policy alone passes. */
                if (layer) {
                        _cleanup_free_ char *ignored = NULL;
                        PolicyBuild local;
                        bool unused;

                        if (policy_build(m, NULL, NULL, 0, &local, &ignored, &unused) >= 0) {
                                policy_unref(local.policy);
                                access_clear(&local.access);
                                *ret_layer_failed = true;
                        }
                }
                return r;
        }
        *ret = (PolicyBuild){.policy = TAKE_PTR(p), .access = access, .limits = limits};
        return 0;
}

/* Everything is valid: swap. */
static void policy_swap(Manager *m, PolicyBuild *b)
{
        for (size_t i = 0; i < policy_n_notes(b->policy); i++)
                log_info("policy: %s", policy_note_at(b->policy, i));
        /*
         * Running streams keep the policy they were created under (each holds a
         * reference); new streams use this one (ss_context_set_policy()).
         */
        policy_unref(m->policy);
        m->policy = TAKE_PTR(b->policy);
        if (m->ss)
                ss_context_set_policy(m->ss, m->policy);
        if (m->cpd)
                cpd_policy_changed(m->cpd);
        hosted_policy_changed(m->hosted);
        access_clear(&m->access);
        m->access = b->access;
        bus_set_limits(m->bus, &b->limits);
        m->policy_loaded_usec = now_usec(CLOCK_REALTIME);
        log_info("policy loaded: release %s, %zu streamtypes, %zu sources",
                 strempty(policy_get_release(m->policy)), policy_n_streamtypes(m->policy),
                 policy_n_sources(m->policy));
        if (m->updater)
                updater_policy_changed(m->updater);
}

void manager_drop_policy_layer(Manager *m)
{
        m->layer = mfree(m->layer);
        m->layer_size = 0;
        m->layer_source = mfree(m->layer_source);
        m->layer_fetched_usec = 0;
}

int manager_load_policy(Manager *m, char **ret_errors)
{
        PolicyBuild b;
        char *text = NULL;
        bool layer_failed;
        int r;

        r = policy_build(m, m->layer_source, m->layer, m->layer_size, &b, &text, &layer_failed);
        if (r < 0 && layer_failed) {
                /* The local policy stays usable: a device must never be bricked by its layer. */
                log_warning("the policy from %s does not apply on top of the local policy, "
                            "using the local policy alone:\n%s",
                            m->layer_source, strempty(text));
                text = mfree(text);
                manager_drop_policy_layer(m);
                r = policy_build(m, NULL, NULL, 0, &b, &text, &layer_failed);
        }
        if (r < 0) {
                *ret_errors = text;
                return r;
        }
        policy_swap(m, &b);
        *ret_errors = NULL;
        return 0;
}

int manager_apply_policy_layer(Manager *m, const char *source, const void *data, size_t size,
                               uint64_t fetched_usec, char **ret_errors)
{
        _cleanup_free_ char *copy = NULL, *source_copy = NULL;
        PolicyBuild b;
        char *text = NULL;
        bool layer_failed;
        int r;

        copy = malloc(size + 1);
        source_copy = strdup(source);
        if (!copy || !source_copy)
                return -ENOMEM;
        memcpy(copy, data, size);
        copy[size] = '\0';
        r = policy_build(m, source, data, size, &b, &text, &layer_failed);
        if (r < 0) {
                *ret_errors = text;
                return r;
        }
        manager_drop_policy_layer(m);
        m->layer = TAKE_PTR(copy);
        m->layer_size = size;
        m->layer_source = TAKE_PTR(source_copy);
        m->layer_fetched_usec = fetched_usec;
        policy_swap(m, &b);
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

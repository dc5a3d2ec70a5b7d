/* SPDX-License-Identifier: MIT */
/*
 * The normal form of a policy (see policy_print_json()): built as a json-c tree
 * in the upstream format, with the keys of every entry sorted, and the
 * top-level sections in the order that keeps references backwards, so the
 * output parses again to the same policy. Also used to compare streamtypes
 * across a reload.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "policy-internal.h"
#include "util.h"

/* Adds v (taken over) to an object or an array; -ENOMEM when v is NULL. */
static int add(json_object *o, const char *key, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int append(json_object *a, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int key_cmp(const void *a, const void *b)
{
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A copy of o with the keys of every object sorted; NULL on OOM. */
static json_object *json_sorted(json_object *o)
{
        json_object *copy;

        switch (json_object_get_type(o)) {
        case json_type_object: {
                size_t n = (size_t) json_object_object_length(o), i = 0;
                _cleanup_free_ const char **keys = calloc(MAX(n, 1u), sizeof(char *));

                if (!keys)
                        return NULL;
                json_object_object_foreach(o, key, value)
                {
                        (void) value;
                        keys[i++] = key;
                }
                qsort(keys, n, sizeof(char *), key_cmp);
                copy = json_object_new_object();
                for (i = 0; copy && i < n; i++)
                        if (add(copy, keys[i], json_sorted(json_object_object_get(o, keys[i]))) <
                            0) {
                                json_object_put(copy);
                                return NULL;
                        }
                return copy;
        }
        case json_type_array:
                copy = json_object_new_array();
                for (size_t i = 0; copy && i < json_object_array_length(o); i++)
                        if (append(copy, json_sorted(json_object_array_get_idx(o, i))) < 0) {
                                json_object_put(copy);
                                return NULL;
                        }
                return copy;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
        case json_type_string:
                break;
        }
        return json_object_get(o);
}

static json_object *json_sorted_take(json_object *o)
{
        json_object *sorted;

        if (!o)
                return NULL;
        sorted = json_sorted(o);
        json_object_put(o);
        return sorted;
}

/* Wraps body as the single-key object {name: sorted body}; takes body over. */
static json_object *named(const char *name, json_object *body)
{
        json_object *sorted = json_sorted_take(body), *o;

        if (!sorted)
                return NULL;
        o = json_object_new_object();
        if (!o || add(o, name, sorted) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static int add_source(json_object *o, const char *source, bool with_sources)
{
        if (!with_sources)
                return 0;
        return add(o, "source", json_object_new_string(source));
}

static json_object *principals_to_json(const PolicyPrincipals *pr)
{
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < pr->n_names; i++)
                if (append(a, json_object_new_string(pr->names[i])) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

static json_object *retry_to_json(const PolicyRetry *retry, bool with_sources)
{
        json_object *body = json_object_new_object(), *backoff = json_object_new_array();
        int r = body && backoff ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < retry->n_backoff; i++)
                r = append(backoff, json_object_new_int64(retry->backoff_ms[i]));
        if (r >= 0)
                r = add(body, "backoff", TAKE_PTR(backoff));
        if (r >= 0)
                r = add(body, "conceal", json_object_new_int(retry->conceal));
        if (r >= 0)
                r = add(body, "jitterpc", json_object_new_int(retry->jitter_percent));
        if (r >= 0)
                r = add(body, "svalidping", json_object_new_int(retry->valid_ping_s));
        if (r >= 0)
                r = add(body, "svalidhup", json_object_new_int(retry->valid_hangup_s));
        if (r >= 0)
                r = add_source(body, retry->source, with_sources);
        json_object_put(backoff);
        if (r < 0) {
                json_object_put(body);
                return NULL;
        }
        return named(retry->name, body);
}

static json_object *cert_to_json(const PolicyCert *cert, bool with_sources)
{
        _cleanup_free_ char *text = NULL;
        json_object *o;

        if (!cert) /* cannot happen: entries are replaced, never removed */
                return NULL;
        if (cert->path) {
                if (asprintf(&text, "file:%s", cert->path) < 0)
                        return NULL;
        } else if (!(text = base64_encode(cert->der, cert->der_size)))
                return NULL;

        o = json_object_new_object();
        if (!o || add(o, cert->name, json_object_new_string(text)) < 0 ||
            add_source(o, cert->source, with_sources) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *trust_store_to_json(const PolicyTrustStore *t, bool with_sources)
{
        json_object *o = json_object_new_object(), *stack = json_object_new_array();
        int r = o && stack ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < t->n_certs; i++)
                r = append(stack, json_object_new_string(t->certs[i]));
        if (r >= 0)
                r = add(o, "name", json_object_new_string(t->name));
        if (r >= 0)
                r = add(o, "stack", TAKE_PTR(stack));
        if (r >= 0)
                r = add_source(o, t->source, with_sources);
        json_object_put(stack);
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static int streamtype_add_special(json_object *body, const PolicyStreamtype *st,
                                  const StreamtypeKey *k)
{
        json_object *a;
        int r = 0;

        if (streq(k->name, "endpoint")) {
                _cleanup_free_ char *e = NULL;

                if (!st->endpoint)
                        return 0;
                if (asprintf(&e, "%s%s", st->unix_socket ? "+" : "", st->endpoint) < 0)
                        return -ENOMEM;
                return add(body, k->name, json_object_new_string(e));
        }
        if (streq(k->name, "protocol"))
                return add(body, k->name,
                           json_object_new_string(policy_protocol_to_string(st->protocol)));
        if (streq(k->name, "allow"))
                return st->has_allow ? add(body, k->name, principals_to_json(&st->allow)) : 0;
        if (streq(k->name, "cpd_ignore_link_kinds"))
                return st->has_cpd_ignore_link_kinds
                           ? add(body, k->name, principals_to_json(&st->cpd_ignore_link_kinds))
                           : 0;

        if (streq(k->name, "metadata")) {
                if (st->n_metadata == 0)
                        return 0;
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < st->n_metadata; i++) {
                        json_object *m = json_object_new_object();

                        r = m ? add(m, st->metadata[i].name,
                                    json_object_new_string(st->metadata[i].header))
                              : -ENOMEM;
                        if (r >= 0)
                                r = append(a, m);
                        else
                                json_object_put(m);
                }
        } else if (streq(k->name, "http_resp_map")) {
                if (st->http.n_resp_map == 0)
                        return 0;
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < st->http.n_resp_map; i++) {
                        json_object *m = json_object_new_object();
                        char code[8];

                        snprintf(code, sizeof(code), "%u", st->http.resp_map[i].code);
                        r = m ? add(m, code, json_object_new_int64(st->http.resp_map[i].value))
                              : -ENOMEM;
                        if (r >= 0)
                                r = append(a, m);
                        else
                                json_object_put(m);
                }
        } else
                return 0;
        if (r < 0) {
                json_object_put(a);
                return r;
        }
        return add(body, k->name, a);
}

static json_object *streamtype_body(const PolicyStreamtype *st, bool with_sources)
{
        json_object *body = json_object_new_object();
        int r = body ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < streamtype_keys_count; i++) {
                const StreamtypeKey *k = &streamtype_keys[i];
                const uint8_t *field = (const uint8_t *) st + k->offset;
                bool applies = streamtype_key_group_applies(k->group, st->protocol);
                uint32_t v;

                switch (k->kind) {
                case KEY_STRING:
                        if (*(char *const *) field)
                                r = add(body, k->name,
                                        json_object_new_string(*(char *const *) field));
                        break;
                case KEY_BOOL:
                        if (applies || *(const bool *) field)
                                r = add(body, k->name,
                                        json_object_new_boolean(*(const bool *) field));
                        break;
                case KEY_UINT:
                        v = k->size == 1   ? *field
                            : k->size == 2 ? *(const uint16_t *) field
                                           : *(const uint32_t *) field;
                        if (applies || v != 0)
                                r = add(body, k->name, json_object_new_int64(v));
                        break;
                case KEY_SPECIAL:
                        r = streamtype_add_special(body, st, k);
                        break;
                case KEY_IGNORED:
                        break;
                }
        }
        if (r >= 0)
                r = add_source(body, st->source, with_sources);
        if (r < 0) {
                json_object_put(body);
                return NULL;
        }
        return body;
}

static json_object *smd_to_json(const PolicySmd *smd)
{
        static const struct {
                const char *name;
                size_t has, value;
        } limits[] = {
            {"backlog_max", offsetof(PolicySmd, has_backlog_max), offsetof(PolicySmd, backlog_max)},
            {"participants_max", offsetof(PolicySmd, has_participants_max),
             offsetof(PolicySmd, participants_max)},
            {"queue_max_bytes", offsetof(PolicySmd, has_queue_max_bytes),
             offsetof(PolicySmd, queue_max_bytes)},
            {"queue_max_messages", offsetof(PolicySmd, has_queue_max_messages),
             offsetof(PolicySmd, queue_max_messages)},
            {"ttl_ms", offsetof(PolicySmd, has_ttl_ms), offsetof(PolicySmd, ttl_ms)},
        };
        json_object *o = json_object_new_object(), *access;
        int r = o ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(limits); i++)
                if (*(const bool *) ((const uint8_t *) smd + limits[i].has))
                        r = add(o, limits[i].name,
                                json_object_new_int64(
                                    *(const uint32_t *) ((const uint8_t *) smd + limits[i].value)));
        if (r >= 0 && smd->has_access) {
                access = json_object_new_array();
                r = access ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && i < smd->n_access; i++) {
                        const PolicyAccessRule *rule = &smd->access[i];
                        json_object *ro = json_object_new_object(), *classes;

                        r = ro ? 0 : -ENOMEM;
                        classes = json_object_new_array();
                        for (unsigned bit = 0; r >= 0 && classes && bit < 32; bit++)
                                if (rule->classes & (UINT32_C(1) << bit))
                                        r = append(classes, json_object_new_string(strempty(
                                                                class_name(UINT32_C(1) << bit))));
                        if (r >= 0)
                                r = add(ro, "classes", classes);
                        else
                                json_object_put(classes);
                        if (r >= 0 && rule->has_publish)
                                r = add(ro, "publish", principals_to_json(&rule->publish));
                        if (r >= 0 && rule->has_subscribe)
                                r = add(ro, "subscribe", principals_to_json(&rule->subscribe));
                        if (r >= 0)
                                r = append(access, ro);
                        else
                                json_object_put(ro);
                }
                if (r >= 0)
                        r = add(o, "access", access);
                else
                        json_object_put(access);
        }
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static int policy_to_json(const Policy *p, bool with_sources, json_object **ret)
{
        json_object *top = json_object_new_object(), *a;
        int r = top ? 0 : -ENOMEM;

        /* A fixed section order: every reference points backwards. */
        if (r >= 0 && p->release)
                r = add(top, "release", json_object_new_string(p->release));
        if (r >= 0 && p->product)
                r = add(top, "product", json_object_new_string(p->product));
        if (r >= 0 && p->schema_version)
                r = add(top, "schema-version", json_object_new_int(p->schema_version));
        if (r >= 0 && p->signing_key)
                r = add(top, "policy_signing_key", json_object_new_string(p->signing_key));

        if (r >= 0 && p->n_retries > 0) {
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < p->n_retries; i++)
                        r = append(a, retry_to_json(p->retries[i], with_sources));
                r = r < 0 ? (json_object_put(a), r) : add(top, "retry", a);
        }
        if (r >= 0 && p->n_certs > 0) {
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < p->n_certs; i++)
                        r = append(a, json_sorted_take(cert_to_json(p->certs[i], with_sources)));
                r = r < 0 ? (json_object_put(a), r) : add(top, "certs", a);
        }
        if (r >= 0 && p->n_trust_stores > 0) {
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < p->n_trust_stores; i++)
                        r = append(a, json_sorted_take(
                                          trust_store_to_json(p->trust_stores[i], with_sources)));
                r = r < 0 ? (json_object_put(a), r) : add(top, "trust_stores", a);
        }
        if (r >= 0 &&
            (p->smd.has_access || p->smd.has_backlog_max || p->smd.has_participants_max ||
             p->smd.has_queue_max_bytes || p->smd.has_queue_max_messages || p->smd.has_ttl_ms))
                r = add(top, "smd", json_sorted_take(smd_to_json(&p->smd)));
        if (r >= 0 && p->n_streamtypes > 0) {
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < p->n_streamtypes; i++)
                        r = append(a, named(p->streamtypes[i]->name,
                                            streamtype_body(p->streamtypes[i], with_sources)));
                r = r < 0 ? (json_object_put(a), r) : add(top, "s", a);
        }
        if (r >= 0 && with_sources) {
                a = json_object_new_array();
                for (size_t i = 0; a && r >= 0 && i < p->n_sources; i++)
                        r = append(a, json_object_new_string(p->sources[i]));
                r = r < 0 ? (json_object_put(a), r) : add(top, "sources", a);
        }
        if (r < 0) {
                json_object_put(top);
                return r;
        }
        *ret = top;
        return 0;
}

int policy_print_json(const Policy *p, bool with_sources, char **ret)
{
        json_object *top = NULL;
        const char *text;
        char *s = NULL;
        int r;

        if (!p || !ret)
                return -EINVAL;
        r = policy_to_json(p, with_sources, &top);
        if (r < 0)
                return r;
        text =
            json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text || asprintf(&s, "%s\n", text) < 0)
                r = -ENOMEM;
        json_object_put(top);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int policy_streamtype_print(const Policy *p, const PolicyStreamtype *st, char **ret)
{
        const PolicyTrustStore *t = policy_find_trust_store(p, st->tls_trust_store);
        const PolicyRetry *retry = policy_streamtype_retry(p, st);
        const char *cert_names[] = {st->client_cert, st->server_cert, st->server_key};
        json_object *o = json_object_new_object(), *certs = json_object_new_array();
        int r = o && certs ? 0 : -ENOMEM;
        const char *text;

        if (r >= 0)
                r = add(o, "streamtype", named(st->name, streamtype_body(st, false)));
        if (r >= 0 && retry)
                r = add(o, "retry", retry_to_json(retry, false));
        if (r >= 0 && t) {
                r = add(o, "trust_store", trust_store_to_json(t, false));
                for (size_t i = 0; r >= 0 && i < t->n_certs; i++)
                        r = append(certs, cert_to_json(policy_find_cert(p, t->certs[i]), false));
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(cert_names); i++) {
                const PolicyCert *cert = cert_names[i] ? policy_find_cert(p, cert_names[i]) : NULL;

                /* A "file:" server_cert or server_key is no cert: the streamtype holds the path. */
                if (cert)
                        r = append(certs, cert_to_json(cert, false));
        }
        if (r >= 0)
                r = add(o, "certs", TAKE_PTR(certs));
        json_object_put(certs);
        if (r >= 0) {
                text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                *ret = text ? strdup(text) : NULL;
                if (!*ret)
                        r = -ENOMEM;
        }
        json_object_put(o);
        return r;
}

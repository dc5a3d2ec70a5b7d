/* SPDX-License-Identifier: MIT */
/*
 * The policy parser and merger (see policy.h). A source is parsed with json-c
 * into a fragment, a Policy of its own, while references are checked against
 * the policy being added to and the fragment's earlier entries. Every problem
 * is recorded with its JSON path and parsing goes on, so one run lists all the
 * errors of a source. Only a fragment without errors is merged, replacing whole
 * entries of the same name.
 */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "message.h"
#include "policy-internal.h"
#include "strexp.h"
#include "util.h"

const char *const policy_directories_default[] = {
    POLICY_DIR_VENDOR,
    POLICY_DIR_ADMIN,
    POLICY_DIR_RUNTIME,
    NULL,
};

static const char *const protocol_names[_POLICY_PROTOCOL_MAX] = {
    [POLICY_PROTOCOL_H1] = "h1", [POLICY_PROTOCOL_H2] = "h2",     [POLICY_PROTOCOL_H3] = "h3",
    [POLICY_PROTOCOL_WS] = "ws", [POLICY_PROTOCOL_MQTT] = "mqtt", [POLICY_PROTOCOL_RAW] = "raw",
};

const char *policy_protocol_to_string(PolicyProtocol protocol)
{
        if ((unsigned) protocol >= _POLICY_PROTOCOL_MAX)
                return NULL;
        return protocol_names[protocol];
}

/* String lists */

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* Appends s, taking it over (freed on failure). */
static int strv_push(char ***v, size_t *n, char *s)
{
        char **nv;

        if (!s)
                return -ENOMEM;
        nv = reallocarray(*v, *n + 1, sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[(*n)++] = s;
        *v = nv;
        return 0;
}

static bool strv_contains(char *const *v, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

static int ptrv_push(void ***v, size_t *n, void *item)
{
        void **nv = reallocarray(*v, *n + 1, sizeof(void *));

        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = item;
        *v = nv;
        return 0;
}

/* Every entry type starts with its name. */
static void *entries_find(void *const *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (streq(*(char *const *) v[i], name))
                        return v[i];
        return NULL;
}

static ssize_t entries_index(void *const *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (streq(*(char *const *) v[i], name))
                        return (ssize_t) i;
        return -1;
}

static int entry_cmp(const void *a, const void *b)
{
        return strcmp(**(char *const *const *) a, **(char *const *const *) b);
}

void policy_errors_clear(PolicyErrors *errors)
{
        if (!errors)
                return;
        strv_free(errors->messages, errors->n_messages);
        errors->messages = NULL;
        errors->n_messages = 0;
}

/* Destructors */

void policy_principals_clear(PolicyPrincipals *pr)
{
        strv_free(pr->names, pr->n_names);
        pr->names = NULL;
        pr->n_names = 0;
}

void policy_access_rules_free(PolicyAccessRule *rules, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                policy_principals_clear(&rules[i].publish);
                policy_principals_clear(&rules[i].subscribe);
        }
        free(rules);
}

PolicyRetry *policy_retry_free(PolicyRetry *r)
{
        if (!r)
                return NULL;
        free(r->name);
        return mfree(r);
}

PolicyCert *policy_cert_free(PolicyCert *c)
{
        if (!c)
                return NULL;
        free(c->der);
        free(c->path);
        free(c->name);
        return mfree(c);
}

PolicyTrustStore *policy_trust_store_free(PolicyTrustStore *t)
{
        if (!t)
                return NULL;
        strv_free(t->certs, t->n_certs);
        free(t->name);
        return mfree(t);
}

PolicyStreamtype *policy_streamtype_free(PolicyStreamtype *st)
{
        if (!st)
                return NULL;

        for (size_t i = 0; i < streamtype_keys_count; i++)
                if (streamtype_keys[i].kind == KEY_STRING)
                        free(*(char **) ((uint8_t *) st + streamtype_keys[i].offset));
        free(st->endpoint);
        for (size_t i = 0; i < st->n_metadata; i++) {
                free(st->metadata[i].name);
                free(st->metadata[i].header);
        }
        free(st->metadata);
        free(st->http.resp_map);
        policy_principals_clear(&st->allow);
        policy_principals_clear(&st->cpd_ignore_link_kinds);
        free(st->name);
        return mfree(st);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(PolicyTrustStore *, policy_trust_store_free);

Policy *policy_new(void)
{
        Policy *p = calloc(1, sizeof(Policy));

        if (p)
                p->n_ref = 1;
        return p;
}

Policy *policy_ref(Policy *p)
{
        if (!p)
                return NULL;
        assert(p->n_ref > 0);
        p->n_ref++;
        return p;
}

Policy *policy_free(Policy *p)
{
        return policy_unref(p);
}

Policy *policy_unref(Policy *p)
{
        if (!p)
                return NULL;
        assert(p->n_ref > 0);
        if (--p->n_ref > 0)
                return NULL;

        for (size_t i = 0; i < p->n_streamtypes; i++)
                policy_streamtype_free(p->streamtypes[i]);
        free(p->streamtypes);
        for (size_t i = 0; i < p->n_trust_stores; i++)
                policy_trust_store_free(p->trust_stores[i]);
        free(p->trust_stores);
        for (size_t i = 0; i < p->n_certs; i++)
                policy_cert_free(p->certs[i]);
        free(p->certs);
        for (size_t i = 0; i < p->n_retries; i++)
                policy_retry_free(p->retries[i]);
        free(p->retries);
        policy_access_rules_free(p->smd.access, p->smd.n_access);
        strv_free(p->notes, p->n_notes);
        strv_free(p->noted_keys, p->n_noted_keys);
        strv_free(p->sources, p->n_sources);
        free(p->signing_key);
        free(p->product);
        free(p->release);
        return mfree(p);
}

/* The parser: error collection and the JSON path */

typedef struct Parser {
        const char *source; /* owned by frag->sources[0] */
        const Policy *base;
        Policy *frag;
        PolicyErrors *errors;
        size_t n_errors;
        char path[512];
        size_t path_len;
} Parser;

/* Control bytes in a message could forge log lines; show them as '?'. */
static void sanitize(char *s)
{
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        *s = '?';
}

/*
 * Records "SOURCE: PATH: what". Returns 0 once recorded (the caller goes on
 * looking for more errors) or -ENOMEM.
 */
_printf_(2, 3) static int parser_error(Parser *p, const char *fmt, ...)
{
        _cleanup_free_ char *what = NULL;
        char *msg = NULL;
        va_list ap;
        int r;

        p->n_errors++;
        if (p->n_errors > POLICY_ERRORS_MAX + 1)
                return 0;

        if (p->n_errors == POLICY_ERRORS_MAX + 1)
                r = asprintf(&msg, "%s: too many errors, giving up", p->source);
        else {
                va_start(ap, fmt);
                r = vasprintf(&what, fmt, ap);
                va_end(ap);
                if (r < 0)
                        return -ENOMEM;
                if (p->path_len > 0)
                        r = asprintf(&msg, "%s: %s: %s", p->source, p->path, what);
                else
                        r = asprintf(&msg, "%s: %s", p->source, what);
        }
        if (r < 0)
                return -ENOMEM;
        sanitize(msg);
        if (!p->errors)
                return free(msg), 0;
        return strv_push(&p->errors->messages, &p->errors->n_messages, msg);
}

static size_t path_push_key(Parser *p, const char *key)
{
        size_t saved = p->path_len;
        int n = snprintf(p->path + p->path_len, sizeof(p->path) - p->path_len, "%s%.64s",
                         p->path_len > 0 ? "." : "", key);

        if (n > 0)
                p->path_len = MIN(p->path_len + (size_t) n, sizeof(p->path) - 1);
        return saved;
}

static size_t path_push_index(Parser *p, size_t i)
{
        size_t saved = p->path_len;
        int n = snprintf(p->path + p->path_len, sizeof(p->path) - p->path_len, "[%zu]", i);

        if (n > 0)
                p->path_len = MIN(p->path_len + (size_t) n, sizeof(p->path) - 1);
        return saved;
}

static void path_pop(Parser *p, size_t saved)
{
        p->path_len = saved;
        p->path[saved] = '\0';
}

/* Records once per key name that a key is accepted but not implemented. */
static int parser_note_ignored(Parser *p, const char *key)
{
        Policy *f = p->frag;
        char *note = NULL;
        int r;

        if (strv_contains(f->noted_keys, f->n_noted_keys, key) ||
            strv_contains(p->base->noted_keys, p->base->n_noted_keys, key))
                return 0;
        r = strv_push(&f->noted_keys, &f->n_noted_keys, strdup(key));
        if (r < 0)
                return r;
        if (asprintf(&note, "%s: %s: key \"%s\" is accepted but not implemented, ignored",
                     p->source, p->path, key) < 0)
                return -ENOMEM;
        sanitize(note);
        return strv_push(&f->notes, &f->n_notes, note);
}

/* Typed access. Each returns 1 when valid, 0 when reported, or -ENOMEM. */

static const char *json_describe(json_object *v)
{
        switch (json_object_get_type(v)) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "a boolean";
        case json_type_double:
                return "a number with a fraction or exponent";
        case json_type_int:
                return "an integer";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        case json_type_string:
                return "a string";
        }
        return "an unknown type";
}

static int expect_type(Parser *p, json_object *v, json_type type, const char *what)
{
        int r;

        if (json_object_is_type(v, type))
                return 1;
        r = parser_error(p, "expected %s, got %s", what, json_describe(v));
        return r < 0 ? r : 0;
}

static int get_string(Parser *p, json_object *v, size_t max, const char **ret)
{
        const char *s;
        size_t len;
        int r;

        r = expect_type(p, v, json_type_string, "a string");
        if (r <= 0)
                return r;
        s = json_object_get_string(v);
        len = (size_t) json_object_get_string_len(v);
        if (strlen(s) != len)
                r = parser_error(p, "string contains a NUL character");
        else if (len > max)
                r = parser_error(p, "string too long (%zu bytes, limit %zu)", len, max);
        else {
                *ret = s;
                return 1;
        }
        return r < 0 ? r : 0;
}

static int dup_string(Parser *p, json_object *v, size_t max, char **field)
{
        const char *s;
        char *copy;
        int r;

        r = get_string(p, v, max, &s);
        if (r <= 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 1;
}

static int get_int(Parser *p, json_object *v, int64_t min, int64_t max, int64_t *ret)
{
        int64_t i;
        int r;

        r = expect_type(p, v, json_type_int, "an integer");
        if (r <= 0)
                return r;
        i = json_object_get_int64(v);
        if (i < min || i > max) {
                r = parser_error(p, "must be between %" PRIi64 " and %" PRIi64 ", got %s", min, max,
                                 json_object_to_json_string(v));
                return r < 0 ? r : 0;
        }
        *ret = i;
        return 1;
}

static int get_bool(Parser *p, json_object *v, bool *ret)
{
        int r = expect_type(p, v, json_type_boolean, "a boolean");

        if (r <= 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 1;
}

/* Names of entries: non-empty, bounded, printable. Returns 1, 0 or -ENOMEM. */
static int check_name(Parser *p, const char *what, const char *name, size_t max)
{
        size_t len = strlen(name);
        int r;

        if (len == 0)
                r = parser_error(p, "%s name is empty", what);
        else if (len > max)
                r = parser_error(p, "%s name \"%.64s\" is too long (%zu bytes, limit %zu)", what,
                                 name, len, max);
        else {
                for (const char *c = name; *c; c++)
                        if ((unsigned char) *c < 0x20 || *c == 0x7f) {
                                r = parser_error(p, "%s name contains a control character", what);
                                return r < 0 ? r : 0;
                        }
                return 1;
        }
        return r < 0 ? r : 0;
}

/*
 * Upstream lists named entries as an array of single-key objects,
 * [{"name": value}, ...]. Returns 1 with the key and value, 0 or -ENOMEM.
 */
static int get_single_key(Parser *p, json_object *elem, const char **ret_key,
                          json_object **ret_value)
{
        int r = expect_type(p, elem, json_type_object, "an object with one named entry");

        if (r <= 0)
                return r;
        if (json_object_object_length(elem) != 1) {
                r = parser_error(p, "expected an object with one named entry, got %d keys",
                                 json_object_object_length(elem));
                return r < 0 ? r : 0;
        }
        json_object_object_foreach(elem, key, value)
        {
                *ret_key = key;
                *ret_value = value;
        }
        return 1;
}

static int check_array(Parser *p, json_object *v, size_t max, const char *what)
{
        size_t n;
        int r = expect_type(p, v, json_type_array, "an array");

        if (r <= 0)
                return r;
        n = json_object_array_length(v);
        if (n > max) {
                r = parser_error(p, "too many %s (%zu, limit %zu)", what, n, max);
                return r < 0 ? r : 0;
        }
        return 1;
}

/* Lookups through the fragment (earlier entries of this source), then the base. */

static const PolicyRetry *parser_find_retry(Parser *p, const char *name)
{
        const PolicyRetry *r = entries_find((void **) p->frag->retries, p->frag->n_retries, name);

        return r ?: entries_find((void **) p->base->retries, p->base->n_retries, name);
}

static const PolicyCert *parser_find_cert(Parser *p, const char *name)
{
        const PolicyCert *c = entries_find((void **) p->frag->certs, p->frag->n_certs, name);

        return c ?: entries_find((void **) p->base->certs, p->base->n_certs, name);
}

static const PolicyTrustStore *parser_find_trust_store(Parser *p, const char *name)
{
        const PolicyTrustStore *t =
            entries_find((void **) p->frag->trust_stores, p->frag->n_trust_stores, name);

        return t ?: entries_find((void **) p->base->trust_stores, p->base->n_trust_stores, name);
}

/* base64 */

static int base64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/*
 * Strict decoding: the standard alphabet, "=" padding only at the end (or none
 * at all). Returns 0, -EINVAL with the offset of the first bad byte, or -ENOMEM.
 */
static int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size,
                         size_t *ret_bad)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = 0, data_len = len, pad = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        while (data_len > 0 && s[data_len - 1] == '=' && pad < 2) {
                data_len--;
                pad++;
        }
        if ((pad > 0 && len % 4 != 0) || data_len % 4 == 1) {
                *ret_bad = len;
                return -EINVAL;
        }
        out = malloc(data_len / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < data_len; i++) {
                int v = base64_value(s[i]);

                if (v < 0) {
                        *ret_bad = i;
                        return -EINVAL;
                }
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (uint8_t) (acc >> bits);
                }
        }
        *ret_size = n;
        *ret = TAKE_PTR(out);
        return 0;
}

char *base64_encode(const uint8_t *data, size_t size)
{
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((size + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16;

                if (i + 1 < size)
                        v |= (uint32_t) data[i + 1] << 8;
                if (i + 2 < size)
                        v |= data[i + 2];
                *o++ = alphabet[v >> 18 & 63];
                *o++ = alphabet[v >> 12 & 63];
                *o++ = i + 1 < size ? alphabet[v >> 6 & 63] : '=';
                *o++ = i + 2 < size ? alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

/* retry */

static int parse_retry_body(Parser *p, PolicyRetry *retry, json_object *body)
{
        bool has_backoff = false;
        int64_t i;
        int r;

        r = expect_type(p, body, json_type_object, "an object");
        if (r <= 0)
                return r;

        json_object_object_foreach(body, key, value)
        {
                size_t saved = path_push_key(p, key);

                if (streq(key, "backoff")) {
                        has_backoff = true;
                        r = check_array(p, value, POLICY_BACKOFF_MAX, "delays");
                        if (r > 0 && json_object_array_length(value) == 0)
                                r = parser_error(p, "needs at least one delay");
                        else if (r > 0) {
                                retry->n_backoff = json_object_array_length(value);
                                for (size_t k = 0; k < retry->n_backoff && r >= 0; k++) {
                                        size_t s2 = path_push_index(p, k);

                                        r = get_int(p, json_object_array_get_idx(value, k), 0,
                                                    POLICY_BACKOFF_MS_MAX, &i);
                                        if (r > 0)
                                                retry->backoff_ms[k] = (uint32_t) i;
                                        path_pop(p, s2);
                                }
                        }
                } else if (streq(key, "conceal")) {
                        r = get_int(p, value, 0, UINT16_MAX, &i);
                        if (r > 0)
                                retry->conceal = (uint16_t) i;
                } else if (streq(key, "jitterpc")) {
                        r = get_int(p, value, 0, 100, &i);
                        if (r > 0)
                                retry->jitter_percent = (uint8_t) i;
                } else if (streq(key, "svalidping")) {
                        r = get_int(p, value, 0, UINT16_MAX, &i);
                        if (r > 0)
                                retry->valid_ping_s = (uint16_t) i;
                } else if (streq(key, "svalidhup")) {
                        r = get_int(p, value, 0, UINT16_MAX, &i);
                        if (r > 0)
                                retry->valid_hangup_s = (uint16_t) i;
                } else
                        r = parser_error(p, "unknown key");
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        if (!has_backoff) {
                r = parser_error(p, "\"backoff\" is missing");
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * The upstream form of named entries: an array of single-key objects,
 * [{"name": body}, ...]. Every entry type starts with its name and source.
 */
typedef struct NamedEntries {
        const char *what;   /* "retry", in messages */
        const char *plural; /* "retry entries", in the limit message */
        size_t max, name_max, size;
        void *(*free_entry)(void *entry);
        int (*parse)(Parser *p, void *entry, json_object *body);
} NamedEntries;

typedef struct EntryHead {
        char *name;
        const char *source;
} EntryHead;

static int parse_named_entries(Parser *p, json_object *array, const NamedEntries *kind,
                               void ***list, size_t *n)
{
        int r = check_array(p, array, kind->max, kind->plural);

        if (r <= 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(array); i++) {
                size_t saved = path_push_index(p, i);
                EntryHead *entry = NULL;
                const char *name = NULL;
                json_object *body = NULL;

                r = get_single_key(p, json_object_array_get_idx(array, i), &name, &body);
                if (r > 0)
                        r = check_name(p, kind->what, name, kind->name_max);
                if (r > 0 && entries_find(*list, *n, name))
                        r = parser_error(p, "duplicate %s \"%s\"", kind->what, name);
                else if (r > 0) {
                        entry = calloc(1, kind->size);
                        if (!entry || !(entry->name = strdup(name))) {
                                free(entry);
                                return -ENOMEM;
                        }
                        entry->source = p->source;
                        path_push_key(p, name);
                        r = kind->parse(p, entry, body);
                        if (r >= 0)
                                r = ptrv_push(list, n, entry);
                        if (r >= 0)
                                entry = NULL;
                        kind->free_entry(entry);
                }
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void *retry_free_entry(void *e)
{
        return policy_retry_free(e);
}

static int retry_parse_entry(Parser *p, void *e, json_object *body)
{
        return parse_retry_body(p, e, body);
}

static int parse_retries(Parser *p, json_object *array)
{
        static const NamedEntries kind = {
            .what = "retry",
            .plural = "retry entries",
            .max = POLICY_RETRIES_MAX,
            .name_max = POLICY_NAME_MAX,
            .size = sizeof(PolicyRetry),
            .free_entry = retry_free_entry,
            .parse = retry_parse_entry,
        };

        return parse_named_entries(p, array, &kind, (void ***) &p->frag->retries,
                                   &p->frag->n_retries);
}

/* certs */

static int parse_cert_value(Parser *p, PolicyCert *cert, json_object *value)
{
        const char *s;
        size_t bad = 0;
        int r;

        r = get_string(p, value, POLICY_CERT_MAX, &s);
        if (r <= 0)
                return r;
        if (strncmp(s, "file:", 5) == 0) {
                if (s[5] != '/')
                        r = parser_error(p, "\"file:\" needs an absolute path");
                else if (strlen(s + 5) > POLICY_STRING_MAX)
                        r = parser_error(p, "path too long (limit %u bytes)", POLICY_STRING_MAX);
                else if (!(cert->path = strdup(s + 5)))
                        return -ENOMEM;
                return r < 0 ? r : 0;
        }
        if (*s == '\0')
                return parser_error(p, "empty certificate");
        r = base64_decode(s, strlen(s), &cert->der, &cert->der_size, &bad);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return parser_error(p, "invalid base64 at offset %zu", bad);
        if (cert->der_size < 2 || cert->der[0] != 0x30)
                return parser_error(p, "not a DER certificate (no ASN.1 SEQUENCE)");
        return 0;
}

static void *cert_free_entry(void *e)
{
        return policy_cert_free(e);
}

static int cert_parse_entry(Parser *p, void *e, json_object *value)
{
        return parse_cert_value(p, e, value);
}

static int parse_certs(Parser *p, json_object *array)
{
        static const NamedEntries kind = {
            .what = "cert",
            .plural = "certs",
            .max = POLICY_CERTS_MAX,
            .name_max = POLICY_NAME_MAX,
            .size = sizeof(PolicyCert),
            .free_entry = cert_free_entry,
            .parse = cert_parse_entry,
        };

        return parse_named_entries(p, array, &kind, (void ***) &p->frag->certs, &p->frag->n_certs);
}

static int parse_trust_store_stack(Parser *p, PolicyTrustStore *t, json_object *stack)
{
        int r = check_array(p, stack, POLICY_CERTS_MAX, "certs");

        if (r <= 0)
                return r;
        if (json_object_array_length(stack) == 0)
                return parser_error(p, "needs at least one cert");
        for (size_t i = 0; i < json_object_array_length(stack); i++) {
                size_t saved = path_push_index(p, i);
                const char *name;

                r = get_string(p, json_object_array_get_idx(stack, i), POLICY_NAME_MAX, &name);
                if (r > 0 && !parser_find_cert(p, name))
                        r = parser_error(p, "unknown cert \"%s\"", name);
                else if (r > 0)
                        r = strv_push(&t->certs, &t->n_certs, strdup(name));
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_trust_store(Parser *p, json_object *obj)
{
        _cleanup_(policy_trust_store_freep) PolicyTrustStore *t = NULL;
        json_object *stack = NULL;
        bool bad = false;
        int r;

        r = expect_type(p, obj, json_type_object, "an object");
        if (r <= 0)
                return r;
        t = calloc(1, sizeof(PolicyTrustStore));
        if (!t)
                return -ENOMEM;
        t->source = p->source;

        json_object_object_foreach(obj, key, value)
        {
                size_t saved = path_push_key(p, key);

                if (streq(key, "name")) {
                        r = dup_string(p, value, POLICY_NAME_MAX, &t->name);
                        if (r > 0)
                                r = check_name(p, "trust store", t->name, POLICY_NAME_MAX);
                        if (r == 0)
                                bad = true;
                } else if (streq(key, "stack"))
                        stack = value;
                else
                        r = parser_error(p, "unknown key");
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        if (!t->name && !bad)
                return parser_error(p, "\"name\" is missing");
        if (!stack)
                r = parser_error(p, "\"stack\" is missing");
        else {
                size_t saved = path_push_key(p, "stack");

                r = parse_trust_store_stack(p, t, stack);
                path_pop(p, saved);
        }
        if (r < 0 || !t->name)
                return r;
        if (entries_find((void **) p->frag->trust_stores, p->frag->n_trust_stores, t->name))
                return parser_error(p, "duplicate trust store \"%s\"", t->name);
        r = ptrv_push((void ***) &p->frag->trust_stores, &p->frag->n_trust_stores, t);
        if (r < 0)
                return r;
        TAKE_PTR(t);
        return 0;
}

static int parse_trust_stores(Parser *p, json_object *array)
{
        int r = check_array(p, array, POLICY_TRUST_STORES_MAX, "trust stores");

        if (r <= 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(array); i++) {
                size_t saved = path_push_index(p, i);

                r = parse_trust_store(p, json_object_array_get_idx(array, i));
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Principals: a user name, a uid, "@group", "@gid", or "*". */

static bool principal_is_valid(const char *s)
{
        size_t len;

        if (streq(s, "*"))
                return true;
        if (*s == '@')
                s++;
        len = strlen(s);
        if (len == 0 || len > POLICY_PRINCIPAL_MAX || *s == '-')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (isascii(c) && (isalnum(c) || c == '_' || c == '-' || c == '.'))
                        continue;
                if (c == '$' && i == len - 1 && i > 0) /* Samba machine accounts */
                        continue;
                return false;
        }
        return true;
}

static int parse_principals(Parser *p, json_object *array, PolicyPrincipals *ret)
{
        PolicyPrincipals pr = {};
        int r = check_array(p, array, POLICY_PRINCIPALS_MAX, "principals");

        if (r <= 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(array); i++) {
                size_t saved = path_push_index(p, i);
                const char *s;

                r = get_string(p, json_object_array_get_idx(array, i), POLICY_STRING_MAX, &s);
                if (r > 0 && !principal_is_valid(s))
                        r = parser_error(p, "invalid principal \"%s\"", s);
                else if (r > 0)
                        r = strv_push(&pr.names, &pr.n_names, strdup(s));
                path_pop(p, saved);
                if (r < 0) {
                        policy_principals_clear(&pr);
                        return r;
                }
        }
        policy_principals_clear(ret);
        *ret = pr;
        return 1;
}

/* smd */

static int parse_access_rule(Parser *p, json_object *obj, PolicyAccessRule *rule)
{
        bool has_classes = false;
        int r = expect_type(p, obj, json_type_object, "an object");

        if (r <= 0)
                return r;
        json_object_object_foreach(obj, key, value)
        {
                size_t saved = path_push_key(p, key);

                if (streq(key, "classes")) {
                        has_classes = true;
                        r = check_array(p, value, 32, "classes");
                        if (r > 0 && json_object_array_length(value) == 0)
                                r = parser_error(p, "needs at least one class");
                        for (size_t i = 0; r > 0 && i < json_object_array_length(value); i++) {
                                size_t s2 = path_push_index(p, i);
                                const char *name;
                                uint32_t bit;

                                r = get_string(p, json_object_array_get_idx(value, i),
                                               POLICY_STRING_MAX, &name);
                                if (r > 0 && class_from_name(name, strlen(name), &bit) < 0)
                                        r = parser_error(p, "unknown class \"%s\"", name);
                                else if (r > 0)
                                        rule->classes |= bit;
                                path_pop(p, s2);
                                if (r == 0)
                                        r = 1; /* go on with the next class */
                        }
                } else if (streq(key, "publish")) {
                        r = parse_principals(p, value, &rule->publish);
                        if (r > 0)
                                rule->has_publish = true;
                } else if (streq(key, "subscribe")) {
                        r = parse_principals(p, value, &rule->subscribe);
                        if (r > 0)
                                rule->has_subscribe = true;
                } else
                        r = parser_error(p, "unknown key");
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        if (!has_classes)
                return parser_error(p, "\"classes\" is missing");
        return 0;
}

static const struct {
        const char *name;
        uint32_t min, max;
        size_t has_offset, value_offset;
} smd_limits[] = {
    {"queue_max_messages", 1, 1000000, offsetof(PolicySmd, has_queue_max_messages),
     offsetof(PolicySmd, queue_max_messages)},
    {"queue_max_bytes", 1024, 1u << 30, offsetof(PolicySmd, has_queue_max_bytes),
     offsetof(PolicySmd, queue_max_bytes)},
    {"backlog_max", 1, 1000000, offsetof(PolicySmd, has_backlog_max),
     offsetof(PolicySmd, backlog_max)},
    {"ttl_ms", 1, 3600000, offsetof(PolicySmd, has_ttl_ms), offsetof(PolicySmd, ttl_ms)},
    {"participants_max", 1, 65536, offsetof(PolicySmd, has_participants_max),
     offsetof(PolicySmd, participants_max)},
};

static int parse_smd(Parser *p, json_object *obj)
{
        PolicySmd *smd = &p->frag->smd;
        int r = expect_type(p, obj, json_type_object, "an object");

        if (r <= 0)
                return r;
        json_object_object_foreach(obj, key, value)
        {
                size_t saved = path_push_key(p, key);
                bool known = false;

                for (size_t i = 0; i < ELEMENTSOF(smd_limits); i++) {
                        int64_t v;

                        if (!streq(key, smd_limits[i].name))
                                continue;
                        known = true;
                        r = get_int(p, value, smd_limits[i].min, smd_limits[i].max, &v);
                        if (r > 0) {
                                *(bool *) ((uint8_t *) smd + smd_limits[i].has_offset) = true;
                                *(uint32_t *) ((uint8_t *) smd + smd_limits[i].value_offset) =
                                    (uint32_t) v;
                        }
                }
                if (known)
                        ;
                else if (streq(key, "access")) {
                        r = check_array(p, value, POLICY_ACCESS_RULES_MAX, "access rules");
                        if (r > 0) {
                                size_t n = json_object_array_length(value);

                                policy_access_rules_free(smd->access, smd->n_access);
                                smd->n_access = 0;
                                smd->access = calloc(MAX(n, 1u), sizeof(PolicyAccessRule));
                                if (!smd->access)
                                        return -ENOMEM;
                                smd->n_access = n;
                                smd->has_access = true;
                                for (size_t i = 0; i < n && r >= 0; i++) {
                                        size_t s2 = path_push_index(p, i);

                                        r = parse_access_rule(p,
                                                              json_object_array_get_idx(value, i),
                                                              &smd->access[i]);
                                        path_pop(p, s2);
                                }
                        }
                } else
                        r = parser_error(p, "unknown key");
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Streamtypes: the keys with their own parsing */

typedef struct StreamtypeParse {
        bool seen_port;
        bool seen_protocol;
        bool seen_tls;
} StreamtypeParse;

static int parse_protocol(Parser *p, PolicyStreamtype *st, void *json)
{
        const char *s;
        int r = get_string(p, json, POLICY_STRING_MAX, &s);

        if (r <= 0)
                return r;
        for (size_t i = 0; i < _POLICY_PROTOCOL_MAX; i++)
                if (streq(s, protocol_names[i])) {
                        st->protocol = (PolicyProtocol) i;
                        return 1;
                }
        r = parser_error(p, "unknown protocol \"%s\" (expected h1, h2, h3, ws, mqtt or raw)", s);
        return r < 0 ? r : 0;
}

/* Checks the ${name} syntax of a template; names are checked later. */
static int check_template(Parser *p, const char *s)
{
        const char *c = s;

        while ((c = strstr(c, "${"))) {
                const char *end = strchr(c + 2, '}');
                int r;

                if (!end)
                        r = parser_error(p, "unterminated \"${\"");
                else if (end == c + 2)
                        r = parser_error(p, "empty \"${}\"");
                else if ((size_t) (end - c - 2) > STREXP_NAME_MAX)
                        r = parser_error(p, "metadata name too long (limit %u bytes)",
                                         STREXP_NAME_MAX);
                else {
                        c = end + 1;
                        continue;
                }
                return r < 0 ? r : 0;
        }
        return 1;
}

static int parse_endpoint(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = dup_string(p, json, POLICY_STRING_MAX, &st->endpoint);

        if (r <= 0)
                return r;
        if (st->endpoint[0] == '\0')
                r = parser_error(p, "empty endpoint");
        else if (streq(st->endpoint, "+"))
                r = parser_error(p, "empty unix socket path");
        else
                return check_template(p, st->endpoint);
        return r < 0 ? r : 0;
}

static void strip_slashes(char *s)
{
        size_t n = strspn(s, "/");

        memmove(s, s + n, strlen(s + n) + 1);
}

static int parse_http_url(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = dup_string(p, json, POLICY_STRING_MAX, &st->http.url);

        if (r <= 0)
                return r;
        /* Stored without leading "/", as upstream writes it. */
        strip_slashes(st->http.url);
        return check_template(p, st->http.url);
}

static int parse_http_method(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = dup_string(p, json, 16, &st->http.method);

        if (r <= 0)
                return r;
        for (const char *c = st->http.method; *c; c++)
                if (!(*c >= 'A' && *c <= 'Z')) {
                        r = parser_error(p, "invalid HTTP method \"%s\" (expected upper case)",
                                         st->http.method);
                        return r < 0 ? r : 0;
                }
        if (st->http.method[0] == '\0')
                return parser_error(p, "empty HTTP method");
        return 1;
}

static int parse_http_expect(Parser *p, PolicyStreamtype *st, void *json)
{
        int64_t v;
        int r = get_int(p, json, 0, 599, &v);

        if (r <= 0)
                return r;
        if (v != 0 && v < 100) {
                r = parser_error(p, "not an HTTP status (100..599, or 0 for any 2xx)");
                return r < 0 ? r : 0;
        }
        st->http.expect = (uint16_t) v;
        return 1;
}

/* The fetch keys belong to the fetch_policy streamtype alone. */
static int parse_fetch_uint(Parser *p, PolicyStreamtype *st, json_object *json, int64_t min,
                            int64_t max, uint32_t *field)
{
        int64_t v;
        int r;

        if (!streq(st->name, "fetch_policy")) {
                r = parser_error(p, "only the fetch_policy streamtype takes this key");
                return r < 0 ? r : 0;
        }
        r = get_int(p, json, min, max, &v);
        if (r <= 0)
                return r;
        *field = (uint32_t) v;
        return 1;
}

static int parse_fetch_interval(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_fetch_uint(p, st, json, 0, POLICY_FETCH_INTERVAL_MAX, &st->fetch_interval_s);
}

static int parse_fetch_max_size(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_fetch_uint(p, st, json, 1, POLICY_FILE_MAX, &st->fetch_max_size);
}

/* The captive portal detection keys belong to the captive_portal_detect streamtype alone. */
static bool cpd_key_applies(Parser *p, PolicyStreamtype *st, int *ret)
{
        if (streq(st->name, "captive_portal_detect"))
                return true;
        *ret = parser_error(p, "only the captive_portal_detect streamtype takes this key");
        if (*ret > 0)
                *ret = 0;
        return false;
}

static int parse_cpd_uint(Parser *p, PolicyStreamtype *st, json_object *json, int64_t max,
                          uint32_t *field)
{
        int64_t v;
        int r;

        if (!cpd_key_applies(p, st, &r))
                return r;
        r = get_int(p, json, 1, max, &v);
        if (r <= 0)
                return r;
        *field = (uint32_t) v;
        return 1;
}

static int parse_cpd_interval(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_cpd_uint(p, st, json, POLICY_CPD_INTERVAL_MAX, &st->cpd_interval_s);
}

static int parse_cpd_timeout(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_cpd_uint(p, st, json, POLICY_CPD_TIMEOUT_MAX, &st->cpd_timeout_s);
}

static int parse_cpd_link_kinds(Parser *p, PolicyStreamtype *st, void *json)
{
        PolicyPrincipals kinds = {};
        int r;

        if (!cpd_key_applies(p, st, &r))
                return r;
        r = check_array(p, json, POLICY_CPD_LINK_KINDS_MAX, "link kinds");
        if (r <= 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(json); i++) {
                size_t saved = path_push_index(p, i);
                const char *s;

                r = get_string(p, json_object_array_get_idx(json, i), POLICY_CPD_LINK_KIND_MAX, &s);
                if (r > 0 && !s[0])
                        r = parser_error(p, "an empty link kind");
                else if (r > 0)
                        r = strv_push(&kinds.names, &kinds.n_names, strdup(s));
                path_pop(p, saved);
                if (r < 0) {
                        policy_principals_clear(&kinds);
                        return r;
                }
        }
        policy_principals_clear(&st->cpd_ignore_link_kinds);
        st->cpd_ignore_link_kinds = kinds;
        st->has_cpd_ignore_link_kinds = true;
        return 1;
}

static int parse_retry_ref(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = dup_string(p, json, POLICY_NAME_MAX, &st->retry);

        if (r > 0 && !parser_find_retry(p, st->retry))
                r = parser_error(p, "unknown retry \"%s\"", st->retry);
        return r;
}

static int parse_trust_store_ref(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = dup_string(p, json, POLICY_NAME_MAX, &st->tls_trust_store);

        if (r > 0 && !parser_find_trust_store(p, st->tls_trust_store))
                r = parser_error(p, "unknown trust store \"%s\"", st->tls_trust_store);
        return r;
}

static int parse_cert_ref(Parser *p, PolicyStreamtype *st, void *json, char **field)
{
        int r = dup_string(p, json, POLICY_NAME_MAX, field);

        if (r > 0 && !parser_find_cert(p, *field))
                r = parser_error(p, "unknown cert \"%s\"", *field);
        return r;
}

static int parse_client_cert(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_cert_ref(p, st, json, &st->client_cert);
}

/* server_cert, server_key: a cert name of the policy, or "file:" and an absolute PEM path. */
static int parse_server_cert_ref(Parser *p, PolicyStreamtype *st, void *json, char **field)
{
        const char *s;
        int r;

        if (!json_object_is_type(json, json_type_string) ||
            strncmp(json_object_get_string(json), "file:", 5) != 0)
                return parse_cert_ref(p, st, json, field);
        r = get_string(p, json, 5 + POLICY_STRING_MAX, &s);
        if (r <= 0)
                return r;
        if (s[5] != '/')
                return parser_error(p, "\"file:\" needs an absolute path");
        return dup_string(p, json, 5 + POLICY_STRING_MAX, field);
}

static int parse_server_cert(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_server_cert_ref(p, st, json, &st->server_cert);
}

static int parse_server_key(Parser *p, PolicyStreamtype *st, void *json)
{
        return parse_server_cert_ref(p, st, json, &st->server_key);
}

static int parse_metadata(Parser *p, PolicyStreamtype *st, void *json)
{
        size_t n;
        int r = check_array(p, json, POLICY_METADATA_MAX, "metadata entries");

        if (r <= 0)
                return r;
        n = json_object_array_length(json);
        st->metadata = calloc(MAX(n, 1u), sizeof(PolicyMetadata));
        if (!st->metadata)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t saved = path_push_index(p, i);
                const char *name;
                json_object *value;

                r = get_single_key(p, json_object_array_get_idx(json, i), &name, &value);
                if (r > 0)
                        r = check_name(p, "metadata", name, POLICY_METADATA_NAME_MAX);
                if (r > 0 && strchr(name, '}'))
                        r = parser_error(p, "metadata name \"%s\" contains \"}\"", name);
                for (size_t k = 0; r > 0 && k < st->n_metadata; k++)
                        if (streq(st->metadata[k].name, name))
                                r = parser_error(p, "duplicate metadata \"%s\"", name);
                if (r > 0) {
                        PolicyMetadata *m = &st->metadata[st->n_metadata];

                        path_push_key(p, name);
                        r = dup_string(p, value, POLICY_STRING_MAX, &m->header);
                        if (r > 0) {
                                m->header_len = strlen(m->header);
                                if (m->header_len > 0 && m->header[m->header_len - 1] == ':')
                                        m->header_len--;
                                m->name = strdup(name);
                                if (!m->name)
                                        return -ENOMEM;
                                st->n_metadata++;
                        }
                }
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 1;
}

static int parse_resp_map(Parser *p, PolicyStreamtype *st, void *json)
{
        size_t n;
        int r = check_array(p, json, POLICY_RESP_MAP_MAX, "response map entries");

        if (r <= 0)
                return r;
        n = json_object_array_length(json);
        st->http.resp_map = calloc(MAX(n, 1u), sizeof(PolicyRespMap));
        if (!st->http.resp_map)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t saved = path_push_index(p, i);
                const char *code;
                json_object *value;
                int64_t v;

                r = get_single_key(p, json_object_array_get_idx(json, i), &code, &value);
                if (r > 0) {
                        char *end;
                        unsigned long c;

                        errno = 0;
                        c = strtoul(code, &end, 10);
                        path_push_key(p, code);
                        if (!isdigit((unsigned char) code[0]) || *end || c < 100 || c > 599)
                                r = parser_error(p, "not an HTTP status (100..599)");
                        else if ((r = get_int(p, value, 0, INT32_MAX, &v)) > 0) {
                                st->http.resp_map[st->http.n_resp_map++] = (PolicyRespMap){
                                    .code = (uint16_t) c,
                                    .value = (uint32_t) v,
                                };
                        }
                }
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 1;
}

static int parse_allow(Parser *p, PolicyStreamtype *st, void *json)
{
        int r = parse_principals(p, json, &st->allow);

        if (r > 0)
                st->has_allow = true;
        return r;
}

#define S(field) offsetof(PolicyStreamtype, field)
#define STR(name, group, field, ...)                                     \
        {                                                                \
                name, KEY_STRING, group, S(field), 0, 0, -1, __VA_ARGS__ \
        }
#define BOOL(name, group, field)                                \
        {                                                       \
                name, KEY_BOOL, group, S(field), 0, 0, -1, NULL \
        }
#define UINT(name, group, field, max, ...)                                                         \
        {                                                                                          \
                name, KEY_UINT, group, S(field), sizeof(((PolicyStreamtype *) 0)->field), max, -1, \
                    __VA_ARGS__                                                                    \
        }
#define SPECIAL(name, group, fn)                          \
        {                                                 \
                name, KEY_SPECIAL, group, 0, 0, 0, -1, fn \
        }
#define IGNORED(name, type)                                       \
        {                                                         \
                name, KEY_IGNORED, GROUP_ANY, 0, 0, 0, type, NULL \
        }

/* Sorted by name; every key libwebsockets' parser accepts, plus "allow". */
const StreamtypeKey streamtype_keys[] = {
    SPECIAL("allow", GROUP_ANY, parse_allow),
    BOOL("allow_redirects", GROUP_ANY, allow_redirects),
    IGNORED("attr_high_reliability", json_type_boolean),
    IGNORED("attr_high_throughput", json_type_boolean),
    IGNORED("attr_low_cost", json_type_boolean),
    IGNORED("attr_low_latency", json_type_boolean),
    IGNORED("attr_priority", json_type_int),
    IGNORED("aws_iot", json_type_boolean),
    IGNORED("aws_region", json_type_string),
    IGNORED("aws_service", json_type_string),
    IGNORED("client_buflen", json_type_int),
    IGNORED("client_buflen_rxflow_off_below", json_type_int),
    IGNORED("client_buflen_rxflow_on_above", json_type_int),
    STR("client_cert", GROUP_ANY, client_cert, parse_client_cert),
    SPECIAL("cpd_ignore_link_kinds", GROUP_SET, parse_cpd_link_kinds),
    UINT("cpd_interval_s", GROUP_SET, cpd_interval_s, POLICY_CPD_INTERVAL_MAX, parse_cpd_interval),
    UINT("cpd_timeout_s", GROUP_SET, cpd_timeout_s, POLICY_CPD_TIMEOUT_MAX, parse_cpd_timeout),
    BOOL("direct_proto_str", GROUP_ANY, direct_proto_str),
    SPECIAL("endpoint", GROUP_ANY, parse_endpoint),
    UINT("fetch_policy_interval_s", GROUP_SET, fetch_interval_s, POLICY_FETCH_INTERVAL_MAX,
         parse_fetch_interval),
    UINT("fetch_policy_max_size", GROUP_SET, fetch_max_size, POLICY_FILE_MAX, parse_fetch_max_size),
    STR("http_auth_header", GROUP_HTTP, http.auth_header, NULL),
    STR("http_auth_preamble", GROUP_HTTP, http.auth_preamble, NULL),
    BOOL("http_cookies", GROUP_HTTP, http.cookies),
    STR("http_devtype_header", GROUP_HTTP, http.devtype_header, NULL),
    STR("http_dsn_header", GROUP_HTTP, http.dsn_header, NULL),
    UINT("http_expect", GROUP_HTTP, http.expect, 599, parse_http_expect),
    BOOL("http_fail_redirect", GROUP_HTTP, http.fail_redirect),
    STR("http_fwv_header", GROUP_HTTP, http.fwv_header, NULL),
    STR("http_method", GROUP_HTTP, http.method, parse_http_method),
    STR("http_mime_content_type", GROUP_HTTP, http.mime_content_type, NULL),
    STR("http_multipart_filename", GROUP_HTTP, http.multipart_filename, NULL),
    STR("http_multipart_name", GROUP_HTTP, http.multipart_name, NULL),
    BOOL("http_multipart_ss_in", GROUP_HTTP, http.multipart_ss_in),
    BOOL("http_no_content_length", GROUP_HTTP, http.no_content_length),
    SPECIAL("http_resp_map", GROUP_HTTP, parse_resp_map),
    STR("http_url", GROUP_ANY, http.url, parse_http_url),
    BOOL("http_www_form_urlencoded", GROUP_HTTP, http.www_form_urlencoded),
    IGNORED("local_sink", json_type_boolean),
    BOOL("long_poll", GROUP_ANY, long_poll),
    SPECIAL("metadata", GROUP_ANY, parse_metadata),
    STR("mqtt_birth_message", GROUP_MQTT, mqtt.birth_message, NULL),
    UINT("mqtt_birth_qos", GROUP_MQTT, mqtt.birth_qos, 2, NULL),
    BOOL("mqtt_birth_retain", GROUP_MQTT, mqtt.birth_retain),
    STR("mqtt_birth_topic", GROUP_MQTT, mqtt.birth_topic, NULL),
    BOOL("mqtt_clean_start", GROUP_MQTT, mqtt.clean_start),
    UINT("mqtt_keep_alive", GROUP_MQTT, mqtt.keep_alive, UINT16_MAX, NULL),
    UINT("mqtt_qos", GROUP_MQTT, mqtt.qos, 2, NULL),
    BOOL("mqtt_retain", GROUP_MQTT, mqtt.retain),
    STR("mqtt_subscribe", GROUP_MQTT, mqtt.subscribe, NULL),
    STR("mqtt_topic", GROUP_MQTT, mqtt.topic, NULL),
    STR("mqtt_will_message", GROUP_MQTT, mqtt.will_message, NULL),
    UINT("mqtt_will_qos", GROUP_MQTT, mqtt.will_qos, 2, NULL),
    BOOL("mqtt_will_retain", GROUP_MQTT, mqtt.will_retain),
    STR("mqtt_will_topic", GROUP_MQTT, mqtt.will_topic, NULL),
    BOOL("nailed_up", GROUP_ANY, nailed_up),
    BOOL("opportunistic", GROUP_ANY, opportunistic),
    IGNORED("options", -1),
    IGNORED("payload_fmt", -1),
    IGNORED("perf", json_type_boolean),
    IGNORED("plugins", json_type_array),
    UINT("port", GROUP_ANY, port, UINT16_MAX, NULL),
    SPECIAL("protocol", GROUP_ANY, parse_protocol),
    UINT("proxy_buflen", GROUP_ANY, proxy_buflen, POLICY_PROXY_BUFLEN_MAX, NULL),
    IGNORED("proxy_buflen_rxflow_off_below", json_type_int),
    IGNORED("proxy_buflen_rxflow_on_above", json_type_int),
    STR("retry", GROUP_ANY, retry, parse_retry_ref),
    IGNORED("rideshare", json_type_string),
    BOOL("server", GROUP_ANY, server),
    STR("server_cert", GROUP_ANY, server_cert, parse_server_cert),
    STR("server_key", GROUP_ANY, server_key, parse_server_key),
    BOOL("swake_validity", GROUP_SET, swake_validity),
    UINT("timeout_ms", GROUP_ANY, timeout_ms, 3600000, NULL),
    BOOL("tls", GROUP_ANY, tls),
    STR("tls_trust_store", GROUP_ANY, tls_trust_store, parse_trust_store_ref),
    IGNORED("urgent_rx", json_type_boolean),
    IGNORED("urgent_tx", json_type_boolean),
    IGNORED("use_auth", -1),
    IGNORED("via-socks5", json_type_string),
    BOOL("ws_binary", GROUP_WS, ws.binary),
    UINT("ws_max_message", GROUP_WS, ws.max_message, POLICY_WS_MAX_MESSAGE_MAX, NULL),
    IGNORED("ws_prioritize_reads", json_type_boolean),
    STR("ws_subprotocol", GROUP_WS, ws.subprotocol, NULL),
};
const size_t streamtype_keys_count = ELEMENTSOF(streamtype_keys);

bool streamtype_key_group_applies(StreamtypeKeyGroup group, PolicyProtocol protocol)
{
        switch (group) {
        case GROUP_ANY:
                return true;
        case GROUP_HTTP:
                return protocol == POLICY_PROTOCOL_H1 || protocol == POLICY_PROTOCOL_H2 ||
                       protocol == POLICY_PROTOCOL_H3 || protocol == POLICY_PROTOCOL_WS;
        case GROUP_WS:
                return protocol == POLICY_PROTOCOL_WS;
        case GROUP_MQTT:
                return protocol == POLICY_PROTOCOL_MQTT;
        case GROUP_SET:
                return false;
        }
        return false;
}

static int key_cmp(const void *key, const void *elem)
{
        return strcmp(key, ((const StreamtypeKey *) elem)->name);
}

static int parse_streamtype_key(Parser *p, PolicyStreamtype *st, const StreamtypeKey *k,
                                json_object *value)
{
        uint8_t *field = (uint8_t *) st + k->offset;
        int64_t v;
        int r;

        if (k->parse)
                return k->parse(p, st, value);

        switch (k->kind) {
        case KEY_STRING:
                return dup_string(p, value, POLICY_STRING_MAX, (char **) field);
        case KEY_BOOL:
                return get_bool(p, value, (bool *) field);
        case KEY_UINT:
                r = get_int(p, value, 0, k->max, &v);
                if (r <= 0)
                        return r;
                if (k->size == 1)
                        *field = (uint8_t) v;
                else if (k->size == 2)
                        *(uint16_t *) field = (uint16_t) v;
                else
                        *(uint32_t *) field = (uint32_t) v;
                return 1;
        case KEY_IGNORED:
                if (k->json_type >= 0) {
                        const char *what = k->json_type == json_type_boolean ? "a boolean"
                                           : k->json_type == json_type_int   ? "an integer"
                                           : k->json_type == json_type_array ? "an array"
                                                                             : "a string";

                        r = expect_type(p, value, (json_type) k->json_type, what);
                        if (r <= 0)
                                return r;
                }
                r = parser_note_ignored(p, k->name);
                return r < 0 ? r : 1;
        case KEY_SPECIAL:
                break;
        }
        assert(false);
        return 0;
}

/* Splits a URL endpoint into tls, host, port and http_url. */
static int streamtype_apply_url(Parser *p, PolicyStreamtype *st, const StreamtypeParse *sp)
{
        static const struct {
                const char *scheme;
                bool tls;
                uint16_t port;
                PolicyProtocol protocol;
        } schemes[] = {
            {"http", false, 80, POLICY_PROTOCOL_H1},
            {"https", true, 443, POLICY_PROTOCOL_H1},
            {"ws", false, 80, POLICY_PROTOCOL_WS},
            {"wss", true, 443, POLICY_PROTOCOL_WS},
            {"mqtt", false, 1883, POLICY_PROTOCOL_MQTT},
            {"mqtts", true, 8883, POLICY_PROTOCOL_MQTT},
        };
        _cleanup_free_ char *host = NULL;
        const char *sep = strstr(st->endpoint, "://"), *rest, *end, *path, *port = NULL;
        size_t scheme_len = (size_t) (sep - st->endpoint), i;
        unsigned long port_number;
        bool fits;

        for (i = 0; i < ELEMENTSOF(schemes); i++)
                if (strlen(schemes[i].scheme) == scheme_len &&
                    strncmp(schemes[i].scheme, st->endpoint, scheme_len) == 0)
                        break;
        if (i == ELEMENTSOF(schemes))
                return parser_error(p, "unsupported URL scheme \"%.*s\"",
                                    (int) MIN(scheme_len, 32u), st->endpoint);

        /* mqtt needs protocol mqtt, ws needs ws, http carries any of h1, h2, h3, ws. */
        if (!sp->seen_protocol)
                st->protocol = schemes[i].protocol;
        else if (schemes[i].protocol == POLICY_PROTOCOL_H1
                     ? st->protocol == POLICY_PROTOCOL_MQTT || st->protocol == POLICY_PROTOCOL_RAW
                     : st->protocol != schemes[i].protocol)
                return parser_error(p, "URL scheme \"%s\" does not fit protocol %s",
                                    schemes[i].scheme, protocol_names[st->protocol]);

        rest = sep + 3;
        path = rest + strcspn(rest, "/?");
        if (*rest == '[') {
                end = memchr(rest, ']', (size_t) (path - rest));
                if (!end)
                        return parser_error(p, "unterminated \"[\" in URL host");
                host = strndup(rest + 1, (size_t) (end - rest - 1));
                end++;
        } else {
                end = memchr(rest, ':', (size_t) (path - rest));
                if (!end)
                        end = path;
                host = strndup(rest, (size_t) (end - rest));
        }
        if (!host)
                return -ENOMEM;
        if (memchr(rest, '@', (size_t) (path - rest)))
                return parser_error(p, "user information in URLs is not supported");
        if (*host == '\0')
                return parser_error(p, "URL without a host");
        if (*end == ':')
                port = end + 1;
        else if (end != path)
                return parser_error(p, "unexpected characters after the URL host");

        if (port) {
                char *e;

                errno = 0;
                port_number = strtoul(port, &e, 10);
                fits = isdigit((unsigned char) *port) && e == path && errno == 0 &&
                       port_number >= 1 && port_number <= 65535;
                if (!fits)
                        return parser_error(p, "invalid port in URL (1..65535)");
        } else
                port_number = schemes[i].port;

        /* The URL wins over separate tls, port and http_url keys. */
        st->tls = schemes[i].tls;
        st->port = (uint16_t) port_number;
        if (*path) {
                char *url = strdup(path);

                if (!url)
                        return -ENOMEM;
                strip_slashes(url);
                free(st->http.url);
                st->http.url = url;
        }
        free(st->endpoint);
        st->endpoint = TAKE_PTR(host);
        return 0;
}

static int lookup_metadata(void *userdata, const char *name, const char **ret_value)
{
        const PolicyStreamtype *st = userdata;

        for (size_t i = 0; i < st->n_metadata; i++)
                if (streq(st->metadata[i].name, name)) {
                        *ret_value = NULL;
                        return 0;
                }
        return -ENOENT;
}

static int check_template_names(Parser *p, PolicyStreamtype *st, const char *key,
                                const char *template)
{
        _cleanup_free_ char *bad = NULL;
        size_t len, saved;
        int r;

        if (!template)
                return 0;
        r = strexp_length(template, lookup_metadata, st, &len, &bad);
        if (r != -ENOENT)
                return r == -ENOMEM ? r : 0; /* syntax was reported while parsing */
        saved = path_push_key(p, key);
        r = parser_error(p, "unknown metadata \"%s\"", strempty(bad));
        path_pop(p, saved);
        return r;
}

/* Defaults and derived fields, once all keys are read. */
static int streamtype_finish(Parser *p, PolicyStreamtype *st, const StreamtypeParse *sp)
{
        int r;

        if (st->endpoint && st->endpoint[0] == '+') {
                memmove(st->endpoint, st->endpoint + 1, strlen(st->endpoint));
                st->unix_socket = true;
                st->port = 0;
        } else if (st->endpoint && strstr(st->endpoint, "://")) {
                size_t saved = path_push_key(p, "endpoint");

                r = streamtype_apply_url(p, st, sp);
                path_pop(p, saved);
                if (r < 0)
                        return r;
        } else if (!sp->seen_port) {
                switch (st->protocol) {
                case POLICY_PROTOCOL_H1:
                case POLICY_PROTOCOL_H2:
                case POLICY_PROTOCOL_H3:
                case POLICY_PROTOCOL_WS:
                        st->port = st->tls ? 443 : 80;
                        break;
                case POLICY_PROTOCOL_MQTT:
                        st->port = st->tls ? 8883 : 1883;
                        break;
                case POLICY_PROTOCOL_RAW:
                case _POLICY_PROTOCOL_MAX:
                        break;
                }
        }

        if (!st->http.method &&
            (st->protocol == POLICY_PROTOCOL_H1 || st->protocol == POLICY_PROTOCOL_H2 ||
             st->protocol == POLICY_PROTOCOL_H3)) {
                st->http.method = strdup("GET");
                if (!st->http.method)
                        return -ENOMEM;
        }
        st->tls_system_trust = st->tls && !st->tls_trust_store;

        r = check_template_names(p, st, "endpoint", st->endpoint);
        if (r < 0)
                return r;
        return check_template_names(p, st, "http_url", st->http.url);
}

static int parse_streamtype_body(Parser *p, PolicyStreamtype *st, json_object *body)
{
        StreamtypeParse sp = {};
        int r = expect_type(p, body, json_type_object, "an object");

        if (r <= 0)
                return r;
        st->protocol = POLICY_PROTOCOL_H1;

        json_object_object_foreach(body, key, value)
        {
                const StreamtypeKey *k = bsearch(key, streamtype_keys, streamtype_keys_count,
                                                 sizeof(StreamtypeKey), key_cmp);
                size_t saved = path_push_key(p, key);

                if (!k)
                        r = parser_error(p, "unknown key");
                else {
                        r = parse_streamtype_key(p, st, k, value);
                        if (r > 0 && streq(key, "port"))
                                sp.seen_port = true;
                        else if (r > 0 && streq(key, "protocol"))
                                sp.seen_protocol = true;
                        else if (r > 0 && streq(key, "tls"))
                                sp.seen_tls = true;
                }
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return streamtype_finish(p, st, &sp);
}

static void *streamtype_free_entry(void *e)
{
        return policy_streamtype_free(e);
}

static int streamtype_parse_entry(Parser *p, void *e, json_object *body)
{
        return parse_streamtype_body(p, e, body);
}

static int parse_streamtypes(Parser *p, json_object *array)
{
        static const NamedEntries kind = {
            .what = "streamtype",
            .plural = "streamtypes",
            .max = POLICY_STREAMTYPES_MAX,
            .name_max = POLICY_STREAMTYPE_NAME_MAX,
            .size = sizeof(PolicyStreamtype),
            .free_entry = streamtype_free_entry,
            .parse = streamtype_parse_entry,
        };

        return parse_named_entries(p, array, &kind, (void ***) &p->frag->streamtypes,
                                   &p->frag->n_streamtypes);
}

/* The top level */

/* An absolute path; the key itself is read by whoever verifies (ss/signature.h). */
static int parse_signing_key(Parser *p, json_object *value)
{
        const char *s;
        int r = get_string(p, value, POLICY_STRING_MAX, &s);

        if (r <= 0)
                return r;
        if (s[0] != '/')
                r = parser_error(p, "needs an absolute path to a PEM public key file");
        else if (strpbrk(s, "\n\r\t"))
                r = parser_error(p, "the path contains a control character");
        else {
                free(p->frag->signing_key);
                p->frag->signing_key = strdup(s);
                return p->frag->signing_key ? 1 : -ENOMEM;
        }
        return r < 0 ? r : 0;
}

static int parse_root(Parser *p, json_object *root)
{
        int r;

        if (!json_object_is_type(root, json_type_object))
                return parser_error(p, "the policy must be a JSON object, got %s",
                                    json_describe(root));

        json_object_object_foreach(root, key, value)
        {
                size_t saved = path_push_key(p, key);
                int64_t v;

                if (streq(key, "release"))
                        r = dup_string(p, value, POLICY_STRING_MAX, &p->frag->release);
                else if (streq(key, "product"))
                        r = dup_string(p, value, POLICY_STRING_MAX, &p->frag->product);
                else if (streq(key, "schema-version")) {
                        r = get_int(p, value, 1, 1, &v);
                        if (r > 0)
                                p->frag->schema_version = (int) v;
                } else if (streq(key, "policy_signing_key"))
                        r = parse_signing_key(p, value);
                else if (streq(key, "retry"))
                        r = parse_retries(p, value);
                else if (streq(key, "certs"))
                        r = parse_certs(p, value);
                else if (streq(key, "trust_stores"))
                        r = parse_trust_stores(p, value);
                else if (streq(key, "s"))
                        r = parse_streamtypes(p, value);
                else if (streq(key, "smd"))
                        r = parse_smd(p, value);
                else if (streq(key, "via-socks5")) {
                        const char *s;

                        r = get_string(p, value, POLICY_STRING_MAX, &s);
                        if (r > 0)
                                r = parser_note_ignored(p, key);
                } else if (streq(key, "metrics") || streq(key, "auth")) {
                        r = expect_type(p, value, json_type_array, "an array");
                        if (r > 0)
                                r = parser_note_ignored(p, key);
                } else
                        r = parser_error(p, "unknown key");
                path_pop(p, saved);
                if (r < 0)
                        return r;
        }
        return 0;
}

static unsigned line_at(const char *data, size_t offset)
{
        unsigned line = 1;

        for (size_t i = 0; i < offset; i++)
                if (data[i] == '\n')
                        line++;
        return line;
}

static int parse_json(Parser *p, const char *data, size_t size, json_object **ret)
{
        _cleanup_free_ char *copy = NULL;
        json_tokener *tok;
        json_object *root;
        enum json_tokener_error err;
        size_t end;
        const char *nul = memchr(data, '\0', size);

        if (nul)
                return parser_error(p, "invalid JSON at line %u: NUL byte",
                                    line_at(data, (size_t) (nul - data)));

        /* A terminating NUL lets json-c finish a value at the very end (a number). */
        copy = malloc(size + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, size);
        copy[size] = '\0';

        tok = json_tokener_new_ex(POLICY_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, copy, (int) size + 1);
        err = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        if (!root) {
                const char *what = err == json_tokener_continue || err == json_tokener_success
                                       ? "unexpected end of input"
                                       : json_tokener_error_desc(err);

                return parser_error(p, "invalid JSON at line %u: %s", line_at(data, MIN(end, size)),
                                    what);
        }
        /* json-c stops at the end of the value (or after the NUL). */
        for (size_t i = MIN(end, size); i < size; i++)
                if (!isspace((unsigned char) data[i])) {
                        json_object_put(root);
                        return parser_error(p, "invalid JSON at line %u: data after the policy",
                                            line_at(data, i));
                }
        *ret = root;
        return 1;
}

/* Merging a valid fragment */

#define MERGE_ENTRIES(base, frag, field, count, free_fn)                                   \
        do {                                                                               \
                for (size_t _i = 0; _i < (frag)->count; _i++) {                            \
                        ssize_t _k = entries_index((void **) (base)->field, (base)->count, \
                                                   *(char **) (frag)->field[_i]);          \
                        if (_k >= 0) {                                                     \
                                free_fn((base)->field[_k]);                                \
                                (base)->field[_k] = (frag)->field[_i];                     \
                        } else                                                             \
                                (base)->field[(base)->count++] = (frag)->field[_i];        \
                }                                                                          \
                (frag)->count = 0;                                                         \
                qsort((base)->field, (base)->count, sizeof(*(base)->field), entry_cmp);    \
        } while (0)

static size_t count_new(void *const *base, size_t n_base, void *const *frag, size_t n_frag)
{
        size_t n = 0;

        for (size_t i = 0; i < n_frag; i++)
                if (!entries_find(base, n_base, *(char *const *) frag[i]))
                        n++;
        return n;
}

static int grow(void ***v, size_t n)
{
        void **nv = reallocarray(*v, MAX(n, 1u), sizeof(void *));

        if (!nv)
                return -ENOMEM;
        *v = nv;
        return 0;
}

/* Checks the effective limits; then nothing can fail but allocation, done first. */
static int policy_merge(Policy *p, Policy *frag, Parser *parser)
{
        size_t n_st =
            p->n_streamtypes + count_new((void **) p->streamtypes, p->n_streamtypes,
                                         (void **) frag->streamtypes, frag->n_streamtypes);
        size_t n_re = p->n_retries + count_new((void **) p->retries, p->n_retries,
                                               (void **) frag->retries, frag->n_retries);
        size_t n_ce = p->n_certs + count_new((void **) p->certs, p->n_certs, (void **) frag->certs,
                                             frag->n_certs);
        size_t n_ts =
            p->n_trust_stores + count_new((void **) p->trust_stores, p->n_trust_stores,
                                          (void **) frag->trust_stores, frag->n_trust_stores);
        int r = 0;

        if (n_st > POLICY_STREAMTYPES_MAX)
                r = parser_error(parser, "too many streamtypes in the effective policy (limit %u)",
                                 POLICY_STREAMTYPES_MAX);
        else if (n_re > POLICY_RETRIES_MAX)
                r = parser_error(parser,
                                 "too many retry entries in the effective policy (limit %u)",
                                 POLICY_RETRIES_MAX);
        else if (n_ce > POLICY_CERTS_MAX)
                r = parser_error(parser, "too many certs in the effective policy (limit %u)",
                                 POLICY_CERTS_MAX);
        else if (n_ts > POLICY_TRUST_STORES_MAX)
                r = parser_error(parser, "too many trust stores in the effective policy (limit %u)",
                                 POLICY_TRUST_STORES_MAX);
        if (r < 0 || parser->n_errors > 0)
                return r < 0 ? r : -EBADMSG;

        if (grow((void ***) &p->streamtypes, n_st) < 0 || grow((void ***) &p->retries, n_re) < 0 ||
            grow((void ***) &p->certs, n_ce) < 0 || grow((void ***) &p->trust_stores, n_ts) < 0 ||
            grow((void ***) &p->sources, p->n_sources + 1) < 0 ||
            grow((void ***) &p->notes, p->n_notes + frag->n_notes) < 0 ||
            grow((void ***) &p->noted_keys, p->n_noted_keys + frag->n_noted_keys) < 0)
                return -ENOMEM;

        MERGE_ENTRIES(p, frag, retries, n_retries, policy_retry_free);
        MERGE_ENTRIES(p, frag, certs, n_certs, policy_cert_free);
        MERGE_ENTRIES(p, frag, trust_stores, n_trust_stores, policy_trust_store_free);
        MERGE_ENTRIES(p, frag, streamtypes, n_streamtypes, policy_streamtype_free);

        if (frag->release) {
                free(p->release);
                p->release = TAKE_PTR(frag->release);
        }
        if (frag->product) {
                free(p->product);
                p->product = TAKE_PTR(frag->product);
        }
        if (frag->schema_version)
                p->schema_version = frag->schema_version;
        if (frag->signing_key) {
                free(p->signing_key);
                p->signing_key = TAKE_PTR(frag->signing_key);
        }

        for (size_t i = 0; i < ELEMENTSOF(smd_limits); i++)
                if (*(bool *) ((uint8_t *) &frag->smd + smd_limits[i].has_offset)) {
                        *(bool *) ((uint8_t *) &p->smd + smd_limits[i].has_offset) = true;
                        *(uint32_t *) ((uint8_t *) &p->smd + smd_limits[i].value_offset) =
                            *(uint32_t *) ((uint8_t *) &frag->smd + smd_limits[i].value_offset);
                }
        if (frag->smd.has_access) {
                policy_access_rules_free(p->smd.access, p->smd.n_access);
                p->smd.access = TAKE_PTR(frag->smd.access);
                p->smd.n_access = frag->smd.n_access;
                p->smd.has_access = true;
                frag->smd.n_access = 0;
        }

        for (size_t i = 0; i < frag->n_notes; i++)
                p->notes[p->n_notes++] = frag->notes[i];
        frag->n_notes = 0;
        for (size_t i = 0; i < frag->n_noted_keys; i++)
                p->noted_keys[p->n_noted_keys++] = frag->noted_keys[i];
        frag->n_noted_keys = 0;
        /* The entries point at this string; it moves over with them. */
        p->sources[p->n_sources++] = TAKE_PTR(frag->sources[0]);
        frag->n_sources = 0;
        return 0;
}

int policy_add_buffer(Policy *p, const char *source, const void *data, size_t size,
                      PolicyErrors *errors)
{
        _cleanup_(policy_freep) Policy *frag = NULL;
        json_object *root = NULL;
        Parser parser;
        int r;

        if (!p || !source || (!data && size > 0))
                return -EINVAL;

        frag = policy_new();
        if (!frag)
                return -ENOMEM;
        r = strv_push(&frag->sources, &frag->n_sources, strdup(source));
        if (r < 0)
                return r;
        parser = (Parser){
            .source = frag->sources[0],
            .base = p,
            .frag = frag,
            .errors = errors,
        };

        if (size > POLICY_FILE_MAX) {
                r = parser_error(&parser, "too large (%zu bytes, limit %u)", size, POLICY_FILE_MAX);
                return r < 0 ? r : -EFBIG;
        }
        r = parse_json(&parser, data ?: "", size, &root);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        r = parse_root(&parser, root);
        json_object_put(root);
        if (r < 0)
                return r;
        return policy_merge(p, frag, &parser);
}

/* A read failure becomes a message like a parse error. */
static int report_errno(PolicyErrors *errors, const char *source, const char *what, int error)
{
        char *msg = NULL;

        if (errors) {
                if (asprintf(&msg, "%s: %s: %s", source, what, strerror(-error)) < 0)
                        return -ENOMEM;
                sanitize(msg);
                if (strv_push(&errors->messages, &errors->n_messages, msg) < 0)
                        return -ENOMEM;
        }
        return error;
}

int policy_add_file(Policy *p, const char *path, PolicyErrors *errors)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        struct stat st;

        if (!p || !path)
                return -EINVAL;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return report_errno(errors, path, "cannot open", -errno);
        if (fstat(fd, &st) < 0)
                return report_errno(errors, path, "cannot stat", -errno);
        if (!S_ISREG(st.st_mode))
                return report_errno(errors, path, "cannot read",
                                    S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD);

        /* Read one byte past the limit so a growing file is caught too. */
        buf = malloc(POLICY_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        while (size < POLICY_FILE_MAX + 1) {
                ssize_t n = read(fd, buf + size, POLICY_FILE_MAX + 1 - size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return report_errno(errors, path, "cannot read", -errno);
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        return policy_add_buffer(p, path, buf, size, errors);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool is_json_name(const char *name)
{
        size_t len = strlen(name);

        return name[0] != '.' && len > 5 && streq(name + len - 5, ".json");
}

static int add_directory(Policy *p, const char *path, bool missing_ok, PolicyErrors *errors)
{
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        d = opendir(path);
        if (!d) {
                if (missing_ok && errno == ENOENT)
                        return 0;
                return report_errno(errors, path, "cannot open directory", -errno);
        }
        while ((de = readdir(d)))
                if (is_json_name(de->d_name)) {
                        char *full = NULL;

                        if (asprintf(&full, "%s/%s", path, de->d_name) < 0 ||
                            strv_push(&names, &n, full) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                }
        closedir(d);
        if (r == 0) {
                qsort(names, n, sizeof(char *), name_cmp);
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = policy_add_file(p, names[i], errors);
        }
        strv_free(names, n);
        return r < 0 ? r : 0;
}

int policy_add_directory(Policy *p, const char *path, PolicyErrors *errors)
{
        if (!p || !path)
                return -EINVAL;
        return add_directory(p, path, true, errors);
}

int policy_add_builtin(Policy *p, PolicyErrors *errors)
{
        return policy_add_buffer(p, POLICY_BUILTIN_SOURCE, policy_builtin_json,
                                 strlen(policy_builtin_json), errors);
}

static int policy_add_optional_notes(Policy *p)
{
        static const struct {
                const char *name, *what;
        } optional[] = {
            {"captive_portal_detect", "captive portal detection is off"},
            {"fetch_policy", "policy fetching is off"},
        };

        for (size_t i = 0; i < ELEMENTSOF(optional); i++) {
                char *note = NULL;
                int r;

                if (policy_find_streamtype(p, optional[i].name))
                        continue;
                if (asprintf(&note, "no streamtype \"%s\": %s", optional[i].name,
                             optional[i].what) < 0)
                        return -ENOMEM;
                r = strv_push(&p->notes, &p->n_notes, note);
                if (r < 0)
                        return r;
        }
        return 0;
}

int policy_load(Policy **ret, const PolicyLoadOptions *opts, PolicyErrors *errors)
{
        static const PolicyLoadOptions defaults = {};
        _cleanup_(policy_freep) Policy *p = NULL;
        const char *const *dirs;
        int r;

        if (!ret)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        dirs = opts->directories ?: policy_directories_default;

        p = policy_new();
        if (!p)
                return -ENOMEM;
        if (!opts->no_builtin) {
                r = policy_add_builtin(p, errors);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; dirs[i]; i++) {
                r = add_directory(p, dirs[i], true, errors);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; opts->paths && opts->paths[i]; i++) {
                struct stat st;

                if (stat(opts->paths[i], &st) >= 0 && S_ISDIR(st.st_mode))
                        r = add_directory(p, opts->paths[i], false, errors);
                else
                        r = policy_add_file(p, opts->paths[i], errors);
                if (r < 0)
                        return r;
        }
        r = policy_add_optional_notes(p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int policy_check_file(const char *path, PolicyErrors *errors)
{
        _cleanup_(policy_freep) Policy *p = NULL;
        int r;

        if (!path)
                return -EINVAL;
        p = policy_new();
        if (!p)
                return -ENOMEM;
        r = policy_add_builtin(p, errors);
        if (r < 0)
                return r;
        return policy_add_file(p, path, errors);
}

/* Getters */

const char *policy_get_signing_key(const Policy *p)
{
        return p ? p->signing_key : NULL;
}

const char *policy_get_release(const Policy *p)
{
        return p ? p->release : NULL;
}

const char *policy_get_product(const Policy *p)
{
        return p ? p->product : NULL;
}

int policy_get_schema_version(const Policy *p)
{
        return p ? p->schema_version : 0;
}

const PolicySmd *policy_get_smd(const Policy *p)
{
        return p ? &p->smd : NULL;
}

size_t policy_n_streamtypes(const Policy *p)
{
        return p ? p->n_streamtypes : 0;
}

const PolicyStreamtype *policy_streamtype_at(const Policy *p, size_t i)
{
        if (!p || i >= p->n_streamtypes)
                return NULL;
        return p->streamtypes[i];
}

static void *entries_bsearch(void *const *v, size_t n, const char *name)
{
        void *const *found;
        const char *key = name;
        const char *const *keyp = &key;

        if (n == 0)
                return NULL;
        found = bsearch(&keyp, v, n, sizeof(void *), entry_cmp);
        return found ? *found : NULL;
}

const PolicyStreamtype *policy_find_streamtype(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        return entries_bsearch((void **) p->streamtypes, p->n_streamtypes, name);
}

const PolicyRetry *policy_find_retry(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        return entries_bsearch((void **) p->retries, p->n_retries, name);
}

const PolicyCert *policy_find_cert(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        return entries_bsearch((void **) p->certs, p->n_certs, name);
}

const PolicyTrustStore *policy_find_trust_store(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        return entries_bsearch((void **) p->trust_stores, p->n_trust_stores, name);
}

const PolicyRetry *policy_streamtype_retry(const Policy *p, const PolicyStreamtype *st)
{
        if (!st)
                return NULL;
        return policy_find_retry(p, st->retry);
}

size_t policy_n_notes(const Policy *p)
{
        return p ? p->n_notes : 0;
}

const char *policy_note_at(const Policy *p, size_t i)
{
        if (!p || i >= p->n_notes)
                return NULL;
        return p->notes[i];
}

size_t policy_n_sources(const Policy *p)
{
        return p ? p->n_sources : 0;
}

const char *policy_source_at(const Policy *p, size_t i)
{
        if (!p || i >= p->n_sources)
                return NULL;
        return p->sources[i];
}

bool policy_streamtype_equal(const Policy *pa, const PolicyStreamtype *a, const Policy *pb,
                             const PolicyStreamtype *b)
{
        _cleanup_free_ char *ja = NULL, *jb = NULL;

        if (!a || !b)
                return a == b;
        /* The normal form holds every field; on failure, assume a change. */
        if (policy_streamtype_print(pa, a, &ja) < 0 || policy_streamtype_print(pb, b, &jb) < 0)
                return false;
        return streq(ja, jb);
}

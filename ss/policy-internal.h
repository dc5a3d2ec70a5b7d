/* SPDX-License-Identifier: MIT */
/*
 * What policy.c (parsing, merging) and policy-print.c (normal form) share: the
 * Policy object itself and the entry destructors. Not for other modules.
 */
#pragma once

#include "policy.h"

struct Policy {
        unsigned n_ref; /* policy_ref() / policy_unref() */
        char *release;
        char *product;
        int schema_version;
        char *signing_key; /* policy_signing_key */

        /* Each kept sorted by name once merged. */
        PolicyRetry **retries;
        size_t n_retries;
        PolicyCert **certs;
        size_t n_certs;
        PolicyTrustStore **trust_stores;
        size_t n_trust_stores;
        PolicyStreamtype **streamtypes;
        size_t n_streamtypes;

        PolicySmd smd;

        char **sources; /* owns the strings the entries' source fields point to */
        size_t n_sources;
        char **notes;
        size_t n_notes;
        char **noted_keys; /* keys already noted, so each is noted once */
        size_t n_noted_keys;
};

PolicyRetry *policy_retry_free(PolicyRetry *r);
PolicyCert *policy_cert_free(PolicyCert *c);
PolicyTrustStore *policy_trust_store_free(PolicyTrustStore *t);
PolicyStreamtype *policy_streamtype_free(PolicyStreamtype *st);
void policy_principals_clear(PolicyPrincipals *pr);
void policy_access_rules_free(PolicyAccessRule *rules, size_t n);

/* Normal form of a single streamtype with what it references, for comparing. */
int policy_streamtype_print(const Policy *p, const PolicyStreamtype *st, char **ret);

/* What kind of value a streamtype key holds, for parsing and printing. */
typedef enum StreamtypeKeyKind {
        KEY_STRING,  /* char * at offset */
        KEY_BOOL,    /* bool at offset */
        KEY_UINT,    /* uint8_t, uint16_t or uint32_t at offset, 0..max */
        KEY_SPECIAL, /* parsed by parse, printed by policy-print.c */
        KEY_IGNORED, /* accepted (type-checked), noted, not stored */
} StreamtypeKeyKind;

/* Which protocols a key matters to; it is printed for those, or when set. */
typedef enum StreamtypeKeyGroup {
        GROUP_ANY,
        GROUP_HTTP,
        GROUP_WS,
        GROUP_MQTT,
        GROUP_SET, /* any protocol, printed only when set */
} StreamtypeKeyGroup;

struct Parser;

typedef struct StreamtypeKey {
        const char *name;
        StreamtypeKeyKind kind;
        StreamtypeKeyGroup group;
        size_t offset;
        uint8_t size;  /* KEY_UINT: bytes */
        uint32_t max;  /* KEY_UINT: largest value */
        int json_type; /* KEY_IGNORED: the type upstream gives it, -1 for any */
        /* Optional: replaces the generic parsing (0, or -ENOMEM). */
        int (*parse)(struct Parser *p, PolicyStreamtype *st, void *json);
} StreamtypeKey;

extern const StreamtypeKey streamtype_keys[];
extern const size_t streamtype_keys_count;

bool streamtype_key_group_applies(StreamtypeKeyGroup group, PolicyProtocol protocol);
char *base64_encode(const uint8_t *data, size_t size);

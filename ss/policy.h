/* SPDX-License-Identifier: MIT */
/*
 * The Secure Streams policy: the JSON document (libwebsockets SS policy schema
 * plus our "smd" section and per-streamtype "allow") that says, per streamtype,
 * where and how to connect, and who may use the bus. This module parses and
 * validates sources, merges them into one effective policy (compiled-in default,
 * then drop-in directories, then explicit paths; a later source replaces whole
 * entries of the same name), and prints a stable normal form.
 *
 * Parsing is transactional: a source with any error changes nothing, and every
 * error of the source is reported as "SOURCE: JSON.PATH: what". Nothing here
 * logs; keys that are accepted but not implemented are collected as notes for
 * the agent to log once at info level.
 *
 * Everything a Policy hands out is owned by it and read-only; it lives until
 * its last reference goes (policy_unref(); policy_free() is the same call).
 * The Secure Streams engine holds a reference for its current policy and one
 * per stream (for the policy the stream was created under), so a reload can
 * drop the old policy while its streams keep running on it. A Policy is not
 * thread-safe (the reference count included) but may be read from any thread
 * once built.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Limits. Each violation is its own error naming the JSON path. */
#define POLICY_FILE_MAX            (256u * 1024u) /* bytes per source */
#define POLICY_DEPTH_MAX           12             /* JSON nesting depth */
#define POLICY_STREAMTYPES_MAX     256u           /* per source and in the effective policy */
#define POLICY_RETRIES_MAX         64u
#define POLICY_CERTS_MAX           64u
#define POLICY_TRUST_STORES_MAX    32u
#define POLICY_STRING_MAX          1024u         /* bytes in any string value */
#define POLICY_CERT_MAX            (16u * 1024u) /* bytes of base64 in one cert */
#define POLICY_STREAMTYPE_NAME_MAX 31u           /* the SS proxy wire limit */
#define POLICY_NAME_MAX            63u           /* retry, cert and trust store names */
#define POLICY_METADATA_MAX        32u           /* metadata entries per streamtype */
#define POLICY_METADATA_NAME_MAX   31u           /* as strexp names */
#define POLICY_BACKOFF_MAX         8u            /* delays in one retry entry */
#define POLICY_BACKOFF_MS_MAX      86400000u     /* one day */
#define POLICY_RESP_MAP_MAX        32u           /* http_resp_map entries */
#define POLICY_PRINCIPALS_MAX      64u           /* names in one principal list */
#define POLICY_PRINCIPAL_MAX       32u           /* bytes in one principal */
#define POLICY_ACCESS_RULES_MAX    64u
#define POLICY_ERRORS_MAX          100u                 /* errors kept per source */
#define POLICY_PROXY_BUFLEN_MAX    (4u * 1024u * 1024u) /* proxy_buflen */
#define POLICY_WS_MAX_MESSAGE_MAX  (1u << 30)           /* ws_max_message: 1 GiB */
#define POLICY_FETCH_INTERVAL_MAX  604800u              /* fetch_policy_interval_s: a week */
#define POLICY_CPD_INTERVAL_MAX    86400u               /* cpd_interval_s: a day */
#define POLICY_CPD_TIMEOUT_MAX     60u                  /* cpd_timeout_s */
#define POLICY_CPD_LINK_KINDS_MAX  16u                  /* cpd_ignore_link_kinds entries */
#define POLICY_CPD_LINK_KIND_MAX   31u                  /* bytes of one link kind */

/* The drop-in directories, in the order they are read (after the builtin). */
#define POLICY_DIR_VENDOR  "/usr/lib/smdagent/policy.d"
#define POLICY_DIR_ADMIN   "/etc/smdagent/policy.d"
#define POLICY_DIR_RUNTIME "/run/smdagent/policy.d"
extern const char *const policy_directories_default[]; /* NULL-terminated */

/* The compiled-in default policy (built from policy.d/default.json). */
extern const char policy_builtin_json[];
#define POLICY_BUILTIN_SOURCE "builtin"

typedef struct Policy Policy;

typedef enum PolicyProtocol {
        POLICY_PROTOCOL_H1,
        POLICY_PROTOCOL_H2,
        POLICY_PROTOCOL_H3,
        POLICY_PROTOCOL_WS,
        POLICY_PROTOCOL_MQTT,
        POLICY_PROTOCOL_RAW,
        _POLICY_PROTOCOL_MAX,
} PolicyProtocol;

const char *policy_protocol_to_string(PolicyProtocol protocol);

/*
 * Principals as written: a user name, a numeric uid, "@group", "@gid", or "*"
 * for anyone. Nothing is resolved against the user database here.
 */
typedef struct PolicyPrincipals {
        char **names;
        size_t n_names;
} PolicyPrincipals;

/* Each entry type starts with its name, then the source it came from. */
typedef struct PolicyRetry {
        char *name;
        const char *source;
        uint32_t backoff_ms[POLICY_BACKOFF_MAX]; /* 1..8 delays, the last one repeats */
        size_t n_backoff;
        uint16_t conceal;        /* failures hidden from the user before ALL_RETRIES_FAILED */
        uint8_t jitter_percent;  /* 0..100, additive */
        uint16_t valid_ping_s;   /* svalidping: idle seconds before a ping, 0 off */
        uint16_t valid_hangup_s; /* svalidhup: idle seconds before hanging up, 0 off */
} PolicyRetry;

typedef struct PolicyCert {
        char *name;
        const char *source;
        char *path;   /* for "file:/x.pem": the PEM file, read by the TLS layer; else NULL */
        uint8_t *der; /* for base64 certs: the decoded DER; else NULL */
        size_t der_size;
} PolicyCert;

typedef struct PolicyTrustStore {
        char *name;
        const char *source;
        char **certs; /* names of certs, each defined */
        size_t n_certs;
} PolicyTrustStore;

typedef struct PolicyMetadata {
        char *name;   /* the ${name} used in strexp */
        char *header; /* the HTTP header it is sent as; "" when it is not sent */
        /* header's name as sent: without the trailing ':' upstream writes ("x-y:"); 0: none */
        size_t header_len;
} PolicyMetadata;

typedef struct PolicyRespMap {
        uint16_t code; /* HTTP status */
        uint32_t value;
} PolicyRespMap;

typedef struct PolicyStreamtype {
        char *name;
        const char *source;

        /*
         * Where to connect. endpoint is a host name or address (may hold
         * ${metadata}), or a unix socket path when unix_socket is set (the "+" stripped),
         * or NULL. A URL endpoint has already been split into these fields.
         */
        char *endpoint;
        bool unix_socket;
        uint16_t port; /* filled from protocol and tls when not given */
        PolicyProtocol protocol;
        bool tls;
        char *tls_trust_store; /* name of a trust store, or NULL */
        bool tls_system_trust; /* tls without tls_trust_store: use the system store */
        char *client_cert;     /* names of certs, or NULL */
        char *server_cert;
        char *server_key;
        char *retry; /* name of a retry entry, or NULL */
        uint32_t timeout_ms;
        uint32_t proxy_buflen;     /* bytes the agent buffers per proxied stream; 0: the default */
        uint32_t fetch_interval_s; /* fetch_policy only: seconds between fetches, 0: none */
        uint32_t fetch_max_size;   /* fetch_policy only: largest body, 0: POLICY_FILE_MAX */
        /* captive_portal_detect only; 0 or unset: the agent's defaults. */
        uint32_t cpd_interval_s; /* between checks while OK; the backoff's cap */
        uint32_t cpd_timeout_s;  /* bounds each check */
        bool has_cpd_ignore_link_kinds;
        PolicyPrincipals cpd_ignore_link_kinds; /* a list of link kinds (not principals) */
        bool server;
        bool allow_redirects;
        bool opportunistic;
        bool nailed_up;
        bool long_poll;
        bool swake_validity; /* retry and validity timers on the wake list */
        bool direct_proto_str;
        PolicyMetadata *metadata; /* in policy order */
        size_t n_metadata;
        bool has_allow; /* who may open it through the socket; unset: everyone */
        PolicyPrincipals allow;

        struct {
                char *method; /* "GET" by default for h1, h2, h3 */
                char *url;    /* the path without its leading "/", may hold ${metadata} */
                uint16_t expect;
                bool fail_redirect;
                PolicyRespMap *resp_map;
                size_t n_resp_map;
                char *auth_header;
                char *dsn_header;
                char *fwv_header;
                char *devtype_header;
                char *auth_preamble;
                bool no_content_length;
                bool www_form_urlencoded;
                char *multipart_name;
                char *multipart_filename;
                char *mime_content_type;
                bool multipart_ss_in;
                bool cookies;
        } http;

        struct {
                char *subprotocol;
                bool binary;
                uint32_t max_message; /* server: largest message received; 0: 16 MiB */
        } ws;

        struct {
                char *topic;
                char *subscribe;
                uint8_t qos;
                bool retain;
                uint16_t keep_alive;
                bool clean_start;
                char *will_topic;
                char *will_message;
                uint8_t will_qos;
                bool will_retain;
                char *birth_topic;
                char *birth_message;
                uint8_t birth_qos;
                bool birth_retain;
        } mqtt;
} PolicyStreamtype;

typedef struct PolicyAccessRule {
        uint32_t classes;
        bool has_publish;
        PolicyPrincipals publish;
        bool has_subscribe;
        PolicyPrincipals subscribe;
} PolicyAccessRule;

/*
 * The "smd" section. Each limit is only meaningful when its has_ flag is set
 * (the bus keeps its own defaults). A later source replaces each limit it sets,
 * and replaces the whole access list when it has one.
 */
typedef struct PolicySmd {
        bool has_queue_max_messages;
        uint32_t queue_max_messages;
        bool has_queue_max_bytes;
        uint32_t queue_max_bytes;
        bool has_backlog_max;
        uint32_t backlog_max;
        bool has_ttl_ms;
        uint32_t ttl_ms;
        bool has_participants_max;
        uint32_t participants_max;
        bool has_access;
        PolicyAccessRule *access; /* in policy order */
        size_t n_access;
} PolicySmd;

/* Error messages, "SOURCE: JSON.PATH: what", in the order found. */
typedef struct PolicyErrors {
        char **messages;
        size_t n_messages;
} PolicyErrors;

/* Frees the messages and leaves an empty list; the struct itself is the caller's. */
void policy_errors_clear(PolicyErrors *errors);

typedef struct PolicyLoadOptions {
        bool no_builtin; /* skip the compiled-in default */
        /* Drop-in directories (NULL-terminated), NULL for policy_directories_default. */
        const char *const *directories;
        /* Explicit files or directories (NULL-terminated), read last; may be NULL. */
        const char *const *paths;
} PolicyLoadOptions;

/* An empty policy: no streamtypes, no retry, nothing set; one reference. */
Policy *policy_new(void);
/* Another reference; accepts NULL. Returns p. */
Policy *policy_ref(Policy *p);
/* Drops a reference, freeing the policy with the last one; accepts NULL, returns NULL. */
Policy *policy_unref(Policy *p);
/* The same as policy_unref() (the owner's reference is the only one unless shared). */
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_unref);

/*
 * Builds the effective policy: the builtin (unless opts->no_builtin), every
 * *.json of each directory (sorted by file name; a missing directory is fine),
 * then opts->paths (a directory is read like a drop-in directory, a missing path
 * is an error). opts may be NULL for the defaults. Stops at the first invalid
 * source: returns -EBADMSG (content), -EFBIG (too large), or the -errno of a
 * failed read, with the messages appended to errors (may be NULL), and
 * *ret untouched.
 */
int policy_load(Policy **ret, const PolicyLoadOptions *opts, PolicyErrors *errors);

/*
 * Parses one source and merges it into p. References resolve against p and the
 * earlier entries of the same source. On any error p is unchanged and every
 * error is appended to errors: -EBADMSG for invalid content, -EFBIG when over
 * POLICY_FILE_MAX, -ENOMEM. source names the source in messages and in
 * entries (copied).
 */
int policy_add_buffer(Policy *p, const char *source, const void *data, size_t size,
                      PolicyErrors *errors);
/* Same for a file; a read failure is "PATH: cannot read: what" and its -errno. */
int policy_add_file(Policy *p, const char *path, PolicyErrors *errors);
/* Adds every *.json of a directory, sorted; 0 when the directory does not exist. */
int policy_add_directory(Policy *p, const char *path, PolicyErrors *errors);
int policy_add_builtin(Policy *p, PolicyErrors *errors);

/*
 * Validates one file standalone, as a drop-in on top of the builtin (so it may
 * use what the builtin defines). Returns 0 when valid, else as policy_add_file().
 */
int policy_check_file(const char *path, PolicyErrors *errors);

const char *policy_get_release(const Policy *p);
const char *policy_get_product(const Policy *p);
/* 0 when no source set it. */
int policy_get_schema_version(const Policy *p);
const PolicySmd *policy_get_smd(const Policy *p);
/* policy_signing_key: the PEM public key file fetched policies must be signed with, or NULL. */
const char *policy_get_signing_key(const Policy *p);

/* Sorted by name. */
size_t policy_n_streamtypes(const Policy *p);
const PolicyStreamtype *policy_streamtype_at(const Policy *p, size_t i);
const PolicyStreamtype *policy_find_streamtype(const Policy *p, const char *name);
const PolicyRetry *policy_find_retry(const Policy *p, const char *name);
const PolicyCert *policy_find_cert(const Policy *p, const char *name);
const PolicyTrustStore *policy_find_trust_store(const Policy *p, const char *name);
/* The retry entry a streamtype uses, or NULL. */
const PolicyRetry *policy_streamtype_retry(const Policy *p, const PolicyStreamtype *st);

/*
 * Whether two streamtypes (of two policies, for a reload) would behave the same:
 * every field, and the retry entry, trust store and certs they use, compared by
 * content. The source is not compared.
 */
bool policy_streamtype_equal(const Policy *pa, const PolicyStreamtype *a, const Policy *pb,
                             const PolicyStreamtype *b);

/*
 * Info-level notes, each once: keys accepted but not implemented, and optional
 * streamtypes that are absent (policy_load() only). The agent logs them.
 */
size_t policy_n_notes(const Policy *p);
const char *policy_note_at(const Policy *p, size_t i);

/* The sources that were merged, in order. */
size_t policy_n_sources(const Policy *p);
const char *policy_source_at(const Policy *p, size_t i);

/*
 * The normal form: the effective policy as upstream-format JSON, entries sorted
 * by name, object keys sorted, URL endpoints split, defaults filled in, and
 * ignored keys left out. Without sources it is itself a valid policy that prints
 * back identically. with_sources adds a "source" key to each entry (for
 * "smdctl policy show"). Returns 0 and a NUL-terminated string to free.
 */
int policy_print_json(const Policy *p, bool with_sources, char **ret);

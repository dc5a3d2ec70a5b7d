/* SPDX-License-Identifier: MIT */
/*
 * Who may do what on the bus: per SMD class, who may subscribe and who may
 * publish, decided from the peer's SO_PEERCRED credentials. The rule engine
 * knows nothing of where rules come from; the policy (its "smd.access"
 * section) or the built-in defaults fill it in.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CREDENTIALS_GROUPS_MAX 64

typedef struct Credentials {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t groups[CREDENTIALS_GROUPS_MAX]; /* supplementary groups (SO_PEERGROUPS) */
        size_t n_groups;
} Credentials;

typedef enum PrincipalKind {
        PRINCIPAL_ANYONE,
        PRINCIPAL_USER,
        PRINCIPAL_GROUP,
} PrincipalKind;

typedef struct Principal {
        PrincipalKind kind;
        uint32_t id;
} Principal;

#define PRINCIPALS_MAX 64

/* Owned by the rule (or Access) that holds it: access_clear() frees it. */
typedef struct PrincipalList {
        Principal *items;
        size_t n;
} PrincipalList;

typedef struct AccessRule {
        uint32_t classes;
        bool has_publish, has_subscribe;
        PrincipalList publish, subscribe;
} AccessRule;

#define ACCESS_RULES_MAX 72 /* the built-in rule plus the policy's 64 */

typedef struct Access {
        AccessRule rules[ACCESS_RULES_MAX];
        size_t n_rules;
} Access;

/*
 * The defaults: anyone may subscribe to anything; only root and group smdagent
 * (when it exists) may publish NETWORK, SYSTEM_STATE and METRICS; anyone may
 * publish INTERACTION and the user classes. -ENOMEM leaves a empty (anyone may).
 */
int access_init_default(Access *a);
/*
 * Add a rule; later rules win for the classes they name. The rule's lists move
 * into a (the rule is left empty), also on failure: -ENOSPC when full.
 */
int access_add_rule(Access *a, AccessRule *rule);
/* Frees what the rules' lists own; a is empty (anyone may) afterwards. */
void access_clear(Access *a);
void access_rule_clear(AccessRule *rule);

/*
 * Parse a principal: "*", a user name or uid, "@group" or "@gid". Names are
 * resolved now; returns -ENOENT for an unknown name, -EINVAL for bad syntax.
 */
int principal_parse(const char *s, Principal *ret);
bool principal_list_matches(const PrincipalList *l, const Credentials *c);

/* The classes of the given set that c may not publish / subscribe to (0: all allowed). */
uint32_t access_refused_publish(const Access *a, const Credentials *c, uint32_t classes);
uint32_t access_refused_subscribe(const Access *a, const Credentials *c, uint32_t classes);

/* Read SO_PEERCRED and SO_PEERGROUPS of a connected unix socket. */
int credentials_from_socket(int fd, Credentials *ret);

/* SPDX-License-Identifier: MIT */
/*
 * The access rule engine (see access.h). For each class bit the last rule
 * naming that class with a list for the action decides; with no such rule
 * anyone may. Root may always.
 */
#include "access.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "smd/smd.h"
#include "util.h"

int access_init_default(Access *a)
{
        AccessRule r = {
            .classes = SMD_CLASS_NETWORK | SMD_CLASS_SYSTEM_STATE | SMD_CLASS_METRICS,
            .has_publish = true,
        };
        struct group *g;

        *a = (Access){};
        r.publish.items = calloc(2, sizeof(Principal));
        if (!r.publish.items)
                return -ENOMEM;
        r.publish.items[r.publish.n++] = (Principal){PRINCIPAL_USER, 0};
        g = getgrnam("smdagent");
        if (g)
                r.publish.items[r.publish.n++] = (Principal){PRINCIPAL_GROUP, g->gr_gid};
        return access_add_rule(a, &r);
}

void access_rule_clear(AccessRule *rule)
{
        free(rule->publish.items);
        free(rule->subscribe.items);
        rule->publish = rule->subscribe = (PrincipalList){};
}

int access_add_rule(Access *a, AccessRule *rule)
{
        if (a->n_rules >= ACCESS_RULES_MAX) {
                access_rule_clear(rule);
                return -ENOSPC;
        }
        a->rules[a->n_rules++] = *rule;
        rule->publish = rule->subscribe = (PrincipalList){};
        return 0;
}

void access_clear(Access *a)
{
        for (size_t i = 0; i < a->n_rules; i++)
                access_rule_clear(&a->rules[i]);
        a->n_rules = 0;
}

static int parse_id(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long v;

        if (!*s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v >= UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

int principal_parse(const char *s, Principal *ret)
{
        uint32_t id;

        if (streq(s, "*")) {
                *ret = (Principal){PRINCIPAL_ANYONE, 0};
                return 0;
        }
        if (s[0] == '@') {
                struct group *g;

                if (parse_id(s + 1, &id) == 0) {
                        *ret = (Principal){PRINCIPAL_GROUP, id};
                        return 0;
                }
                if (!s[1])
                        return -EINVAL;
                g = getgrnam(s + 1);
                if (!g)
                        return -ENOENT;
                *ret = (Principal){PRINCIPAL_GROUP, g->gr_gid};
                return 0;
        }
        if (parse_id(s, &id) == 0) {
                *ret = (Principal){PRINCIPAL_USER, id};
                return 0;
        }
        if (!*s)
                return -EINVAL;
        struct passwd *pw = getpwnam(s);
        if (!pw)
                return -ENOENT;
        *ret = (Principal){PRINCIPAL_USER, pw->pw_uid};
        return 0;
}

static bool credentials_in_group(const Credentials *c, gid_t gid)
{
        if (c->gid == gid)
                return true;
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i] == gid)
                        return true;
        return false;
}

bool principal_list_matches(const PrincipalList *l, const Credentials *c)
{
        for (size_t i = 0; i < l->n; i++) {
                const Principal *p = &l->items[i];

                switch (p->kind) {
                case PRINCIPAL_ANYONE:
                        return true;
                case PRINCIPAL_USER:
                        if (c->uid == p->id)
                                return true;
                        break;
                case PRINCIPAL_GROUP:
                        if (credentials_in_group(c, p->id))
                                return true;
                        break;
                }
        }
        return false;
}

static uint32_t refused(const Access *a, const Credentials *c, uint32_t classes, bool publish)
{
        uint32_t out = 0;

        if (c->uid == 0)
                return 0;
        for (unsigned b = 0; b < 32; b++) {
                uint32_t bit = UINT32_C(1) << b;

                if (!(classes & bit))
                        continue;
                for (size_t i = a->n_rules; i-- > 0;) {
                        const AccessRule *r = &a->rules[i];
                        bool has = publish ? r->has_publish : r->has_subscribe;

                        if (!has || !(r->classes & bit))
                                continue;
                        if (!principal_list_matches(publish ? &r->publish : &r->subscribe, c))
                                out |= bit;
                        break;
                }
        }
        return out;
}

uint32_t access_refused_publish(const Access *a, const Credentials *c, uint32_t classes)
{
        return refused(a, c, classes, true);
}

uint32_t access_refused_subscribe(const Access *a, const Credentials *c, uint32_t classes)
{
        return refused(a, c, classes, false);
}

int credentials_from_socket(int fd, Credentials *ret)
{
        struct ucred uc;
        socklen_t len = sizeof(uc);
        Credentials c = {};
        gid_t groups[CREDENTIALS_GROUPS_MAX];

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return -errno;
        c.pid = uc.pid;
        c.uid = uc.uid;
        c.gid = uc.gid;
        len = sizeof(groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
                c.n_groups = len / sizeof(gid_t);
                memcpy(c.groups, groups, c.n_groups * sizeof(gid_t));
        }
        /* ERANGE (more groups than we keep): primary group and uid still decide. */
        *ret = c;
        return 0;
}

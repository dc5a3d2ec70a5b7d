/* SPDX-License-Identifier: MIT */
/*
 * Link, address and default-route state and its publication (see netstate.h).
 *
 * Each link keeps two copies: cur (what the kernel last said) and pub (what
 * subscribers were last told). A flush walks the differences in a fixed
 * order: default routes that went away, then each link by ifindex (removed
 * links, new links, admin and carrier changes, addresses removed then added,
 * the retained link state), then default routes that appeared or changed.
 * So a subscriber sees a route go before its link, and a link and its address
 * before a route through it.
 */
#include "netstate.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

struct NetState {
        NetLink *links[NETSTATE_LINKS_MAX]; /* allocated while in use: about 900 bytes each */
        NetRoute routes[NETSTATE_ROUTES_MAX];
        size_t n_routes;
        NetRoute pub_routes[NETSTATE_ROUTES_MAX];
        size_t n_pub_routes;
        bool overflowed; /* something did not fit since the last resync */
        bool room_made;  /* and something was removed since */
        NetStateStats stats;
};

int netstate_new(NetState **ret)
{
        NetState *ns = calloc(1, sizeof(*ns));

        if (!ns)
                return -ENOMEM;
        *ret = ns;
        return 0;
}

NetState *netstate_free(NetState *ns)
{
        if (!ns)
                return NULL;
        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++)
                free(ns->links[i]);
        return mfree(ns);
}

static size_t family_size(uint8_t family)
{
        return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

const char *net_family_to_string(uint8_t family)
{
        return family == AF_INET ? "inet" : family == AF_INET6 ? "inet6" : "unknown";
}

const char *net_address_to_string(uint8_t family, const uint8_t *addr, char *buf, size_t size)
{
        if (!inet_ntop(family, addr, buf, (socklen_t) size))
                snprintf(buf, size, "?");
        return buf;
}

bool json_escape(const char *s, char *buf, size_t size)
{
        size_t o = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                char tmp[8];
                size_t n;

                if (*p == '"' || *p == '\\') {
                        tmp[0] = '\\';
                        tmp[1] = (char) *p;
                        n = 2;
                } else if (*p < 0x20 || *p >= 0x7f) {
                        /* Kernel names are bytes, not UTF-8: show odd ones as code points. */
                        n = (size_t) snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
                } else {
                        tmp[0] = (char) *p;
                        n = 1;
                }
                if (o + n >= size)
                        return false;
                memcpy(buf + o, tmp, n);
                o += n;
        }
        if (o >= size)
                return false;
        buf[o] = 0;
        return true;
}

static NetLink *link_find(NetState *ns, int ifindex)
{
        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++)
                if (ns->links[i] && ns->links[i]->in_use && ns->links[i]->cur.ifindex == ifindex)
                        return ns->links[i];
        return NULL;
}

static const NetLink *link_find_const(const NetState *ns, int ifindex)
{
        return link_find((NetState *) ns, ifindex);
}

static void note_overflow(NetState *ns)
{
        ns->overflowed = true;
        ns->stats.overflows++;
}

static void note_removal(NetState *ns)
{
        if (ns->overflowed)
                ns->room_made = true;
}

bool netstate_take_resync_request(NetState *ns)
{
        if (!ns->overflowed || !ns->room_made)
                return false;
        ns->overflowed = ns->room_made = false;
        return true;
}

static bool name_valid(const char *name)
{
        size_t n = strnlen(name, IF_NAMESIZE);

        return n > 0 && n < IF_NAMESIZE;
}

static void routes_remove_link(NetState *ns, int ifindex)
{
        for (size_t i = 0; i < ns->n_routes;) {
                if (ns->routes[i].ifindex == ifindex) {
                        ns->routes[i] = ns->routes[--ns->n_routes];
                        note_removal(ns);
                } else
                        i++;
        }
}

int netstate_link_update(NetState *ns, const NetLinkInfo *info)
{
        NetLink *l;

        if (info->ifindex <= 0 || !name_valid(info->name))
                return -EINVAL;
        l = link_find(ns, info->ifindex);
        if (!l) {
                size_t i = 0;

                while (i < NETSTATE_LINKS_MAX && ns->links[i])
                        i++;
                if (i == NETSTATE_LINKS_MAX) {
                        note_overflow(ns);
                        return -ENOSPC;
                }
                l = ns->links[i] = calloc(1, sizeof(NetLink));
                if (!l) {
                        note_overflow(ns);
                        return -ENOMEM;
                }
                l->in_use = true;
        } else if (l->present && l->cur.admin_up && !info->admin_up) {
                /* The kernel drops IPv4 routes of a link going down without telling. */
                routes_remove_link(ns, info->ifindex);
        }
        if (!l->present)
                l->n_addrs = 0;
        l->cur = *info;
        l->present = true;
        l->stale = false;
        return 0;
}

void netstate_link_remove(NetState *ns, int ifindex)
{
        NetLink *l = link_find(ns, ifindex);

        if (!l || !l->present)
                return;
        l->present = false;
        l->n_addrs = 0;
        routes_remove_link(ns, ifindex);
        note_removal(ns);
}

static bool address_valid(const NetAddress *a)
{
        size_t size = family_size(a->family);

        return size > 0 && a->prefixlen <= size * 8;
}

static bool address_same(const NetAddress *a, const NetAddress *b)
{
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(a->addr, b->addr, family_size(a->family)) == 0;
}

static ssize_t address_find(const NetAddress *list, size_t n, const NetAddress *a)
{
        for (size_t i = 0; i < n; i++)
                if (address_same(&list[i], a))
                        return (ssize_t) i;
        return -1;
}

int netstate_address_update(NetState *ns, int ifindex, const NetAddress *a)
{
        NetLink *l;
        NetAddress copy;
        ssize_t i;

        if (!address_valid(a))
                return -EINVAL;
        l = link_find(ns, ifindex);
        if (!l || !l->present) {
                /* An address of a link we could not track (or a race with its removal). */
                return l ? 0 : -ENOENT;
        }
        copy = *a;
        /* Only the address's own bytes count; the rest must compare equal. */
        memset(copy.addr + family_size(a->family), 0, sizeof(copy.addr) - family_size(a->family));
        i = address_find(l->addrs, l->n_addrs, &copy);
        if (i < 0) {
                if (l->n_addrs >= NETSTATE_ADDRESSES_MAX) {
                        note_overflow(ns);
                        return -ENOSPC;
                }
                i = (ssize_t) l->n_addrs++;
        }
        l->addrs[i] = copy;
        l->addr_stale[i] = false;
        return 0;
}

void netstate_address_remove(NetState *ns, int ifindex, const NetAddress *a)
{
        NetLink *l = link_find(ns, ifindex);
        NetAddress copy;
        ssize_t i;

        if (!l || !address_valid(a))
                return;
        copy = *a;
        memset(copy.addr + family_size(a->family), 0, sizeof(copy.addr) - family_size(a->family));
        i = address_find(l->addrs, l->n_addrs, &copy);
        if (i < 0)
                return;
        l->n_addrs--;
        l->addrs[i] = l->addrs[l->n_addrs];
        l->addr_stale[i] = l->addr_stale[l->n_addrs];
        note_removal(ns);
}

/* A default route's identity: the kernel keys it by table and metric; we add the link. */
static bool route_same(const NetRoute *a, const NetRoute *b)
{
        return a->family == b->family && a->table == b->table && a->metric == b->metric &&
               a->ifindex == b->ifindex;
}

static bool route_gateway_same(const NetRoute *a, const NetRoute *b)
{
        return a->has_gateway == b->has_gateway &&
               (!a->has_gateway || memcmp(a->gateway, b->gateway, family_size(a->family)) == 0);
}

static ssize_t route_find(const NetRoute *list, size_t n, const NetRoute *r)
{
        for (size_t i = 0; i < n; i++)
                if (route_same(&list[i], r))
                        return (ssize_t) i;
        return -1;
}

int netstate_route_update(NetState *ns, const NetRoute *r)
{
        NetRoute copy = *r;
        ssize_t i;

        if (!family_size(r->family) || r->ifindex <= 0)
                return -EINVAL;
        if (!r->has_gateway)
                memset(copy.gateway, 0, sizeof(copy.gateway));
        copy.ifname[0] = 0;
        copy.stale = false;
        i = route_find(ns->routes, ns->n_routes, &copy);
        if (i < 0) {
                if (ns->n_routes >= NETSTATE_ROUTES_MAX) {
                        note_overflow(ns);
                        return -ENOSPC;
                }
                i = (ssize_t) ns->n_routes++;
        }
        ns->routes[i] = copy;
        return 0;
}

void netstate_route_remove(NetState *ns, const NetRoute *r)
{
        ssize_t i = route_find(ns->routes, ns->n_routes, r);

        if (i < 0)
                return;
        ns->routes[i] = ns->routes[--ns->n_routes];
        note_removal(ns);
}

void netstate_resync_begin(NetState *ns)
{
        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++) {
                NetLink *l = ns->links[i];

                if (!l || !l->in_use || !l->present)
                        continue;
                l->stale = true;
                for (size_t k = 0; k < l->n_addrs; k++)
                        l->addr_stale[k] = true;
        }
        for (size_t i = 0; i < ns->n_routes; i++)
                ns->routes[i].stale = true;
}

void netstate_resync_end(NetState *ns)
{
        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++) {
                NetLink *l = ns->links[i];

                if (!l || !l->in_use || !l->present)
                        continue;
                if (l->stale) {
                        netstate_link_remove(ns, l->cur.ifindex);
                        continue;
                }
                for (size_t k = 0; k < l->n_addrs;) {
                        if (l->addr_stale[k]) {
                                l->n_addrs--;
                                l->addrs[k] = l->addrs[l->n_addrs];
                                l->addr_stale[k] = l->addr_stale[l->n_addrs];
                        } else
                                k++;
                }
        }
        for (size_t i = 0; i < ns->n_routes;) {
                if (ns->routes[i].stale)
                        ns->routes[i] = ns->routes[--ns->n_routes];
                else
                        i++;
        }
}

/* Publication. */

typedef struct Emitter {
        NetState *ns;
        NetStateEmit emit;
        void *userdata;
        unsigned n;
} Emitter;

_printf_(3, 4) static void emit(Emitter *e, const char *topic, const char *fmt, ...)
{
        char buf[MESSAGE_PAYLOAD_MAX + 1];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        /* Every format here is bounded well below the payload limit. */
        assert(n > 0 && (size_t) n < sizeof(buf));
        e->emit(topic, buf, (size_t) n, e->userdata);
        e->n++;
        e->ns->stats.published++;
}

static void emit_link(Emitter *e, const char *type, const NetLinkInfo *info)
{
        char name[IF_NAMESIZE * 6];

        (void) json_escape(info->name, name, sizeof(name));
        emit(e, NULL, "{\"type\":\"%s\",\"if\":\"%s\",\"index\":%d}", type, name, info->ifindex);
}

static void emit_address(Emitter *e, const char *type, const NetLinkInfo *info, const NetAddress *a)
{
        char name[IF_NAMESIZE * 6], text[INET6_ADDRSTRLEN];

        (void) json_escape(info->name, name, sizeof(name));
        emit(e, NULL,
             "{\"type\":\"%s\",\"if\":\"%s\",\"index\":%d,\"family\":\"%s\",\"addr\":\"%s\","
             "\"prefix\":%u}",
             type, name, info->ifindex, net_family_to_string(a->family),
             net_address_to_string(a->family, a->addr, text, sizeof(text)), a->prefixlen);
}

static void emit_route(Emitter *e, const char *type, const NetRoute *r, const NetRoute *old)
{
        char name[IF_NAMESIZE * 6], gw[INET6_ADDRSTRLEN + 2] = "null",
                                                          old_gw[INET6_ADDRSTRLEN + 16] = "";
        char text[INET6_ADDRSTRLEN];

        (void) json_escape(r->ifname, name, sizeof(name));
        if (r->has_gateway)
                snprintf(gw, sizeof(gw), "\"%s\"",
                         net_address_to_string(r->family, r->gateway, text, sizeof(text)));
        if (old)
                snprintf(old_gw, sizeof(old_gw), ",\"old_gw\":%s%s%s", old->has_gateway ? "\"" : "",
                         old->has_gateway
                             ? net_address_to_string(old->family, old->gateway, text, sizeof(text))
                             : "null",
                         old->has_gateway ? "\"" : "");
        emit(e, NULL,
             "{\"type\":\"%s\",\"family\":\"%s\",\"gw\":%s%s,\"if\":\"%s\",\"index\":%d,"
             "\"metric\":%u}",
             type, net_family_to_string(r->family), gw, old_gw, name, r->ifindex, r->metric);
}

static void link_topic(const NetLinkInfo *info, char *buf, size_t size)
{
        /* Topics are ours, not JSON: the raw name is unique and short. */
        snprintf(buf, size, "link/%s", info->name);
}

static void emit_link_state(Emitter *e, const NetLink *l)
{
        char buf[MESSAGE_PAYLOAD_MAX + 1], name[IF_NAMESIZE * 6], topic[32];
        size_t o, shown = 0;
        int n;

        (void) json_escape(l->cur.name, name, sizeof(name));
        n = snprintf(buf, sizeof(buf),
                     "{\"type\":\"link\",\"if\":\"%s\",\"index\":%d,\"admin\":\"%s\","
                     "\"carrier\":%s,\"addrs\":[",
                     name, l->cur.ifindex, l->cur.admin_up ? "up" : "down",
                     l->cur.carrier ? "true" : "false");
        o = (size_t) n;
        for (size_t i = 0; i < l->n_addrs; i++) {
                char text[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 8];
                int k = snprintf(
                    item, sizeof(item), "%s\"%s/%u\"", shown ? "," : "",
                    net_address_to_string(l->addrs[i].family, l->addrs[i].addr, text, sizeof(text)),
                    l->addrs[i].prefixlen);

                /* Leave room for the tail: ],"more":NN} */
                if (o + (size_t) k + 16 >= sizeof(buf))
                        break;
                memcpy(buf + o, item, (size_t) k);
                o += (size_t) k;
                shown++;
        }
        if (shown < l->n_addrs)
                o += (size_t) snprintf(buf + o, sizeof(buf) - o, "],\"more\":%zu}",
                                       l->n_addrs - shown);
        else
                o += (size_t) snprintf(buf + o, sizeof(buf) - o, "]}");
        link_topic(&l->cur, topic, sizeof(topic));
        e->emit(topic, buf, o, e->userdata);
        e->n++;
        e->ns->stats.published++;
}

static void emit_link_gone(Emitter *e, NetLink *l)
{
        char topic[32];

        for (size_t i = 0; i < l->n_pub_addrs; i++)
                emit_address(e, "addrremoved", &l->pub, &l->pub_addrs[i]);
        emit_link(e, "linkremoved", &l->pub);
        link_topic(&l->pub, topic, sizeof(topic));
        e->emit(topic, NULL, 0, e->userdata);
        l->published = false;
        l->n_pub_addrs = 0;
}

static void flush_link(Emitter *e, NetLink *l)
{
        char name[IF_NAMESIZE * 6];
        bool changed = false;

        if (l->published && (!l->present || !streq(l->pub.name, l->cur.name)))
                emit_link_gone(e, l);
        if (!l->present) {
                l->in_use = false;
                return;
        }
        if (!l->published) {
                (void) json_escape(l->cur.name, name, sizeof(name));
                emit(e, NULL,
                     "{\"type\":\"linkadded\",\"if\":\"%s\",\"index\":%d,\"admin\":\"%s\","
                     "\"carrier\":%s}",
                     name, l->cur.ifindex, l->cur.admin_up ? "up" : "down",
                     l->cur.carrier ? "true" : "false");
                l->pub = l->cur;
                l->published = true;
                l->n_pub_addrs = 0;
                changed = true;
        }
        if (l->pub.admin_up != l->cur.admin_up) {
                emit_link(e, l->cur.admin_up ? "linkup" : "linkdown", &l->cur);
                changed = true;
        }
        if (l->pub.carrier != l->cur.carrier) {
                emit_link(e, l->cur.carrier ? "carrierup" : "carrierdown", &l->cur);
                changed = true;
        }
        for (size_t i = 0; i < l->n_pub_addrs; i++)
                if (address_find(l->addrs, l->n_addrs, &l->pub_addrs[i]) < 0) {
                        emit_address(e, "addrremoved", &l->cur, &l->pub_addrs[i]);
                        changed = true;
                }
        for (size_t i = 0; i < l->n_addrs; i++)
                if (address_find(l->pub_addrs, l->n_pub_addrs, &l->addrs[i]) < 0) {
                        emit_address(e, "addradded", &l->cur, &l->addrs[i]);
                        changed = true;
                }
        l->pub = l->cur;
        memcpy(l->pub_addrs, l->addrs, l->n_addrs * sizeof(NetAddress));
        l->n_pub_addrs = l->n_addrs;
        if (changed)
                emit_link_state(e, l);
}

static int compare_links(const void *a, const void *b)
{
        const NetLink *x = *(const NetLink *const *) a, *y = *(const NetLink *const *) b;
        int xi = x->published ? x->pub.ifindex : x->cur.ifindex;
        int yi = y->published ? y->pub.ifindex : y->cur.ifindex;

        return (xi > yi) - (xi < yi);
}

unsigned netstate_flush(NetState *ns, NetStateEmit emit_fn, void *userdata)
{
        Emitter e = {.ns = ns, .emit = emit_fn, .userdata = userdata};
        NetLink *order[NETSTATE_LINKS_MAX];
        size_t n = 0;

        /* Default routes that went away, while their link still has its name. */
        for (size_t i = 0; i < ns->n_pub_routes;) {
                if (route_find(ns->routes, ns->n_routes, &ns->pub_routes[i]) < 0) {
                        emit_route(&e, "routeremoved", &ns->pub_routes[i], NULL);
                        ns->pub_routes[i] = ns->pub_routes[--ns->n_pub_routes];
                } else
                        i++;
        }

        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++)
                if (ns->links[i])
                        order[n++] = ns->links[i];
        qsort(order, n, sizeof(order[0]), compare_links);
        for (size_t i = 0; i < n; i++)
                flush_link(&e, order[i]);
        /* Links that went away are told now: their slots are free again. */
        for (size_t i = 0; i < NETSTATE_LINKS_MAX; i++)
                if (ns->links[i] && !ns->links[i]->in_use)
                        ns->links[i] = mfree(ns->links[i]);

        for (size_t i = 0; i < ns->n_routes; i++) {
                NetRoute *r = &ns->routes[i];
                const NetLink *l = link_find(ns, r->ifindex);
                ssize_t k;

                snprintf(r->ifname, sizeof(r->ifname), "%s", l && l->present ? l->cur.name : "");
                k = route_find(ns->pub_routes, ns->n_pub_routes, r);
                if (k < 0) {
                        emit_route(&e, "routeadded", r, NULL);
                        ns->pub_routes[ns->n_pub_routes++] = *r;
                } else if (!route_gateway_same(r, &ns->pub_routes[k]) ||
                           !streq(r->ifname, ns->pub_routes[k].ifname)) {
                        emit_route(&e, "routechanged", r, &ns->pub_routes[k]);
                        ns->pub_routes[k] = *r;
                }
        }
        return e.n;
}

static bool address_usable(const NetAddress *a)
{
        return a->scope != RT_SCOPE_LINK && a->scope != RT_SCOPE_HOST &&
               a->scope != RT_SCOPE_NOWHERE &&
               !(a->flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED));
}

bool netstate_has_usable_route(const NetState *ns)
{
        for (size_t i = 0; i < ns->n_routes; i++) {
                const NetRoute *r = &ns->routes[i];
                const NetLink *l = link_find_const(ns, r->ifindex);

                if (!l || !l->present || !l->cur.admin_up || !l->cur.carrier)
                        continue;
                for (size_t k = 0; k < l->n_addrs; k++)
                        if (l->addrs[k].family == r->family && address_usable(&l->addrs[k]))
                                return true;
        }
        return false;
}

bool netstate_get_usable_route(const NetState *ns, int family, const NetRoute **ret_route,
                               const NetLink **ret_link)
{
        const NetRoute *best = NULL;
        const NetLink *best_link = NULL;

        for (size_t i = 0; i < ns->n_routes; i++) {
                const NetRoute *r = &ns->routes[i];
                const NetLink *l = link_find_const(ns, r->ifindex);
                bool usable = false;

                if (r->family != family || !l || !l->present || !l->cur.admin_up || !l->cur.carrier)
                        continue;
                for (size_t k = 0; k < l->n_addrs && !usable; k++)
                        usable = l->addrs[k].family == r->family && address_usable(&l->addrs[k]);
                if (usable && (!best || r->metric < best->metric)) {
                        best = r;
                        best_link = l;
                }
        }
        if (!best)
                return false;
        *ret_route = best;
        *ret_link = best_link;
        return true;
}

size_t netstate_get_links(const NetState *ns, const NetLink **ret, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < NETSTATE_LINKS_MAX && n < max; i++)
                if (ns->links[i] && ns->links[i]->in_use && ns->links[i]->present)
                        ret[n++] = ns->links[i];
        qsort(ret, n, sizeof(ret[0]), compare_links);
        return n;
}

size_t netstate_get_routes(const NetState *ns, const NetRoute **ret, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < ns->n_routes && n < max; i++)
                ret[n++] = &ns->routes[i];
        return n;
}

void netstate_get_stats(const NetState *ns, NetStateStats *ret)
{
        *ret = ns->stats;
}

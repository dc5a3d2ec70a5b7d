/* SPDX-License-Identifier: MIT */
/*
 * What the agent knows about the machine's links, addresses and default
 * routes, and how it tells the bus. Netlink (or a test) feeds observations in;
 * netstate_flush() compares what is known now with what was last published
 * and emits one message per difference, in a fixed order, then the retained
 * per-link state. Observations between two flushes coalesce: only the final
 * state is published, so a burst of events costs bounded memory. The tables
 * are bounded; what does not fit is counted and picked up by a resync once
 * room frees up. Pure: no I/O, no clock, unit tested.
 *
 * The messages are documented in smd-messages(7).
 */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define NETSTATE_LINKS_MAX     128u
#define NETSTATE_ADDRESSES_MAX 16u /* per link */
#define NETSTATE_ROUTES_MAX    32u /* default routes, all links together */

typedef struct NetAddress {
        uint8_t family; /* AF_INET or AF_INET6 */
        uint8_t prefixlen;
        uint8_t scope;  /* RT_SCOPE_* */
        uint32_t flags; /* IFA_F_* */
        uint8_t addr[16];
} NetAddress;

typedef struct NetLinkInfo {
        int ifindex;
        char name[IF_NAMESIZE];
        bool admin_up; /* IFF_UP */
        bool carrier;  /* IFF_LOWER_UP */
        char kind[16]; /* IFLA_INFO_KIND ("veth", "bridge", ...), "loopback", or "" (hardware) */
} NetLinkInfo;

typedef struct NetRoute {
        uint8_t family;
        int ifindex;
        uint32_t table;
        uint32_t metric;
        bool has_gateway;
        uint8_t gateway[16];
        char ifname[IF_NAMESIZE]; /* filled in when published */
        bool stale;
} NetRoute;

typedef struct NetLink {
        NetLinkInfo cur, pub;
        bool present;   /* exists now */
        bool published; /* subscribers were told about it (pub is valid) */
        bool stale;     /* not seen in the resync dump yet */
        NetAddress addrs[NETSTATE_ADDRESSES_MAX];
        bool addr_stale[NETSTATE_ADDRESSES_MAX];
        size_t n_addrs;
        NetAddress pub_addrs[NETSTATE_ADDRESSES_MAX];
        size_t n_pub_addrs;
        bool in_use;
} NetLink;

typedef struct NetStateStats {
        uint64_t overflows; /* observations dropped for lack of room */
        uint64_t published; /* messages emitted */
} NetStateStats;

typedef struct NetState NetState;

/*
 * Receives each message of a flush in order. topic == NULL: a plain message;
 * topic set: the retained state of that topic, json == NULL clears it.
 */
typedef void (*NetStateEmit)(const char *topic, const char *json, size_t size, void *userdata);

int netstate_new(NetState **ret);
NetState *netstate_free(NetState *ns);
DEFINE_TRIVIAL_CLEANUP_FUNC(NetState *, netstate_free);

/* 0, -EINVAL for a malformed observation, -ENOSPC when the table is full. */
int netstate_link_update(NetState *ns, const NetLinkInfo *info);
void netstate_link_remove(NetState *ns, int ifindex);
int netstate_address_update(NetState *ns, int ifindex, const NetAddress *a);
void netstate_address_remove(NetState *ns, int ifindex, const NetAddress *a);
/* Only default routes of interest are given; others are the caller's to filter. */
int netstate_route_update(NetState *ns, const NetRoute *r);
void netstate_route_remove(NetState *ns, const NetRoute *r);

/* Resync: mark everything stale; the dump's observations refresh what still
 * exists; netstate_resync_end() removes the rest. */
void netstate_resync_begin(NetState *ns);
void netstate_resync_end(NetState *ns);
/* True once after something was dropped for lack of room and room was made since. */
bool netstate_take_resync_request(NetState *ns);

/* Publish the differences; returns the number of messages emitted. */
unsigned netstate_flush(NetState *ns, NetStateEmit emit, void *userdata);

/* A default route on a link that is up, has carrier and a usable address of the
 * route's family (not link-local, not tentative). */
bool netstate_has_usable_route(const NetState *ns);
/*
 * The usable default route of family with the lowest metric (as above), and
 * its link; false when there is none.
 */
bool netstate_get_usable_route(const NetState *ns, int family, const NetRoute **ret_route,
                               const NetLink **ret_link);

/* Present links in ifindex order, for listings; returns how many were written. */
size_t netstate_get_links(const NetState *ns, const NetLink **ret, size_t max);
size_t netstate_get_routes(const NetState *ns, const NetRoute **ret, size_t max);
void netstate_get_stats(const NetState *ns, NetStateStats *ret);

/* "10.0.0.1" or "fd00::1" into buf (at least INET6_ADDRSTRLEN). */
const char *net_address_to_string(uint8_t family, const uint8_t *addr, char *buf, size_t size);
const char *net_family_to_string(uint8_t family);
/* JSON string contents for s (quotes not included); returns false if it did not fit. */
bool json_escape(const char *s, char *buf, size_t size);

/* SPDX-License-Identifier: MIT */
/*
 * From netlink observations to bus messages (netstate.c): what a flush emits,
 * in which order, what coalesces, what is bounded and what is refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include "message.h"
#include "netstate.h"
#include "tap.h"

typedef struct Out {
        char msgs[512][MESSAGE_PAYLOAD_MAX + 80];
        size_t n;
        size_t max_size;
} Out;

static void on_emit(const char *topic, const char *json, size_t size, void *userdata)
{
        Out *o = userdata;

        if (size > o->max_size)
                o->max_size = size;
        if (o->n < ELEMENTSOF(o->msgs))
                snprintf(o->msgs[o->n++], sizeof(o->msgs[0]), "%s%s%.*s", topic ? topic : "",
                         topic ? " " : "", json ? (int) size : 5, json ? json : "CLEAR");
}

static Out out;

static unsigned flush(NetState *ns)
{
        out.n = 0;
        return netstate_flush(ns, on_emit, &out);
}

static NetLinkInfo link_info(int ifindex, const char *name, bool up, bool carrier)
{
        NetLinkInfo l = {.ifindex = ifindex, .admin_up = up, .carrier = carrier};

        snprintf(l.name, sizeof(l.name), "%s", name);
        return l;
}

static NetAddress addr(const char *text, unsigned prefix)
{
        NetAddress a = {.prefixlen = (uint8_t) prefix};

        a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
        inet_pton(a.family, text, a.addr);
        return a;
}

static NetRoute route(int ifindex, const char *gw, uint32_t metric)
{
        NetRoute r = {.ifindex = ifindex, .table = RT_TABLE_MAIN, .metric = metric};

        r.family = strchr(gw, ':') ? AF_INET6 : AF_INET;
        r.has_gateway = inet_pton(r.family, gw, r.gateway) == 1;
        return r;
}

int main(void)
{
        NetState *ns = NULL;
        NetLinkInfo l;
        NetAddress a;
        NetRoute r;

        tap_init();
        is_int(netstate_new(&ns), 0, "netstate_new");

        l = link_info(5, "ve0", false, false);
        is_int(netstate_link_update(ns, &l), 0, "a new link");
        is_int(flush(ns), 2, "one flush: two messages");
        is_str(out.msgs[0],
               "{\"type\":\"linkadded\",\"if\":\"ve0\",\"index\":5,\"admin\":\"down\",\"carrier\":"
               "false}",
               "linkadded with its admin and carrier state");
        is_str(out.msgs[1],
               "link/ve0 {\"type\":\"link\",\"if\":\"ve0\",\"index\":5,\"admin\":\"down\","
               "\"carrier\":false,\"addrs\":[]}",
               "then the retained link state");
        is_int(flush(ns), 0, "nothing new: a flush emits nothing");

        l.admin_up = l.carrier = true;
        netstate_link_update(ns, &l);
        a = addr("10.77.0.2", 24);
        a.scope = RT_SCOPE_UNIVERSE;
        is_int(netstate_address_update(ns, 5, &a), 0, "an address");
        is_int(flush(ns), 4, "up, carrier, address, state");
        is_str(out.msgs[0], "{\"type\":\"linkup\",\"if\":\"ve0\",\"index\":5}", "linkup");
        is_str(out.msgs[1], "{\"type\":\"carrierup\",\"if\":\"ve0\",\"index\":5}", "carrierup");
        is_str(out.msgs[2],
               "{\"type\":\"addradded\",\"if\":\"ve0\",\"index\":5,\"family\":\"inet\",\"addr\":"
               "\"10.77.0.2\",\"prefix\":24}",
               "addradded with family, address and prefix");
        ok(strstr(out.msgs[3], "\"addrs\":[\"10.77.0.2/24\"]") != NULL,
           "the retained state lists the address: %s", out.msgs[3]);
        ok(!netstate_has_usable_route(ns), "no default route: not usable");

        /* Coalescing: a thousand flips between two flushes. */
        for (int i = 0; i < 1000; i++) {
                l.admin_up = i % 2;
                netstate_link_update(ns, &l);
                netstate_address_remove(ns, 5, &a);
                netstate_address_update(ns, 5, &a);
        }
        l.admin_up = true;
        netstate_link_update(ns, &l);
        is_int(flush(ns), 0, "1000 flips ending where they started: nothing to publish");
        for (int i = 0; i < 1001; i++) {
                l.carrier = i % 2;
                netstate_link_update(ns, &l);
        }
        is_int(flush(ns), 2, "1001 carrier flips: one change");
        is_str(out.msgs[0], "{\"type\":\"carrierdown\",\"if\":\"ve0\",\"index\":5}",
               "published from the final state");
        l.carrier = true;
        netstate_link_update(ns, &l);
        flush(ns);

        r = route(5, "10.77.0.1", 0);
        is_int(netstate_route_update(ns, &r), 0, "a default route");
        is_int(flush(ns), 1, "one message");
        is_str(out.msgs[0],
               "{\"type\":\"routeadded\",\"family\":\"inet\",\"gw\":\"10.77.0.1\",\"if\":\"ve0\","
               "\"index\":5,\"metric\":0}",
               "routeadded: family, gateway, interface, metric");
        ok(netstate_has_usable_route(ns), "a usable default route");
        r = route(5, "10.77.0.3", 0);
        netstate_route_update(ns, &r);
        is_int(flush(ns), 1, "the gateway changes");
        is_str(out.msgs[0],
               "{\"type\":\"routechanged\",\"family\":\"inet\",\"gw\":\"10.77.0.3\",\"old_gw\":"
               "\"10.77.0.1\",\"if\":\"ve0\",\"index\":5,\"metric\":0}",
               "routechanged with the old gateway");
        r = route(5, "fd00::1", 1024);
        r.has_gateway = false;
        netstate_route_update(ns, &r);
        flush(ns);
        ok(strstr(out.msgs[0], "\"gw\":null") != NULL, "a route without gateway: %s", out.msgs[0]);
        a = addr("fe80::1", 64);
        a.scope = RT_SCOPE_LINK;
        netstate_address_update(ns, 5, &a);
        flush(ns);
        netstate_address_remove(ns, 5, &(NetAddress){.family = AF_INET, .prefixlen = 24});
        a = addr("10.77.0.2", 24);
        a.flags = IFA_F_TENTATIVE;
        netstate_address_update(ns, 5, &a);
        ok(!netstate_has_usable_route(ns), "a tentative address is not usable");
        a.flags = 0;
        netstate_address_update(ns, 5, &a);
        ok(netstate_has_usable_route(ns), "once DAD is done it is");

        /* Admin down: the kernel drops the link's IPv4 routes silently; we do too. */
        l.admin_up = false;
        netstate_link_update(ns, &l);
        flush(ns);
        is_str(out.msgs[0],
               "{\"type\":\"routeremoved\",\"family\":\"inet\",\"gw\":\"10.77.0.3\",\"if\":\"ve0\","
               "\"index\":5,\"metric\":0}",
               "link down: its routes go first");
        ok(!netstate_has_usable_route(ns), "and nothing is usable");

        /* Removal: addresses, then the link, then the retained topic cleared. */
        netstate_link_remove(ns, 5);
        flush(ns);
        is_int(out.n, 4, "removal: two addresses, the link, the topic");
        ok(strstr(out.msgs[0], "\"addrremoved\"") && strstr(out.msgs[1], "\"addrremoved\""),
           "addresses removed first");
        is_str(out.msgs[2], "{\"type\":\"linkremoved\",\"if\":\"ve0\",\"index\":5}", "linkremoved");
        is_str(out.msgs[3], "link/ve0 CLEAR", "the retained topic is cleared");

        /* Validation. */
        l = link_info(0, "x", true, true);
        is_int(netstate_link_update(ns, &l), -EINVAL, "ifindex 0 is refused");
        l = link_info(7, "", true, true);
        is_int(netstate_link_update(ns, &l), -EINVAL, "an empty name is refused");
        l = link_info(7, "ok", true, true);
        netstate_link_update(ns, &l);
        a = addr("10.0.0.1", 33);
        is_int(netstate_address_update(ns, 7, &a), -EINVAL, "an IPv4 prefix of 33 is refused");
        a = (NetAddress){.family = 99, .prefixlen = 1};
        is_int(netstate_address_update(ns, 7, &a), -EINVAL, "an unknown family is refused");
        is_int(netstate_address_update(ns, 99, &(NetAddress){.family = AF_INET}), -ENOENT,
               "an address of an unknown link is not kept");

        /* Bounds: addresses per link. */
        for (unsigned i = 0; i < NETSTATE_ADDRESSES_MAX; i++) {
                char text[64];

                snprintf(text, sizeof(text), "fd00:1234:5678:9abc:def0:1234:5678:%x", i + 1);
                a = addr(text, 128);
                netstate_address_update(ns, 7, &a);
        }
        a = addr("10.1.1.1", 32);
        is_int(netstate_address_update(ns, 7, &a), -ENOSPC, "address %u on a link is refused",
               NETSTATE_ADDRESSES_MAX + 1);
        out.max_size = 0;
        flush(ns);
        cmp_int(out.max_size, <=, MESSAGE_PAYLOAD_MAX, "every message fits a payload (%zu bytes)",
                out.max_size);
        ok(strstr(out.msgs[out.n - 1], "\"more\":") != NULL,
           "the retained state says how many addresses did not fit: %s", out.msgs[out.n - 1]);

        /* Bounds: links, and the resync request once room is made. */
        for (int i = 0; i < (int) NETSTATE_LINKS_MAX - 1; i++) {
                char name[16];

                snprintf(name, sizeof(name), "l%d", i);
                l = link_info(100 + i, name, true, true);
                netstate_link_update(ns, &l);
        }
        l = link_info(1000, "toomany", true, true);
        is_int(netstate_link_update(ns, &l), -ENOSPC, "link %u is refused", NETSTATE_LINKS_MAX + 1);
        ok(!netstate_take_resync_request(ns), "no resync while the table is still full");
        netstate_link_remove(ns, 100);
        flush(ns);
        ok(netstate_take_resync_request(ns), "room made after an overflow: resync requested");
        ok(!netstate_take_resync_request(ns), "once");

        /* Resync: what the dump does not mention goes. */
        netstate_resync_begin(ns);
        l = link_info(7, "ok", true, true);
        netstate_link_update(ns, &l);
        netstate_resync_end(ns);
        flush(ns);
        {
                const NetLink *links[NETSTATE_LINKS_MAX];

                is_int(netstate_get_links(ns, links, NETSTATE_LINKS_MAX), 1,
                       "after the resync only the link the dump mentioned is left");
                is_int(links[0]->n_addrs, 0, "without the addresses the dump did not mention");
        }

        /* Odd names are escaped. */
        l = link_info(8, "a\"b\\c\x01", true, false);
        netstate_link_update(ns, &l);
        flush(ns);
        is_str(out.msgs[0],
               "{\"type\":\"linkadded\",\"if\":\"a\\\"b\\\\c\\u0001\",\"index\":8,\"admin\":\"up\","
               "\"carrier\":false}",
               "a name with quote, backslash and control character is escaped");
        netstate_free(ns);
        return tap_done();
}

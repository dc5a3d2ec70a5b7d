/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the rtnetlink codec (agent/rtnl.c) as the netlink hook uses it: the
 * input is one datagram from the kernel. Walk its messages and hand every one
 * to every decoder, whatever its type, then check that what a decoder
 * accepted keeps the promises of rtnl.h. The seeds are real dumps (links,
 * addresses, IPv4/IPv6 routes, multipath) and malformed ones.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "rtnl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int r, RtnlError e)
{
        if (r < 0) {
                assert(r == -EBADMSG);
                assert(e > RTNL_ERROR_NONE && e < _RTNL_ERROR_MAX);
                assert(rtnl_error_to_string(e));
        } else {
                assert(r == 0);
        }
}

static void decode(const RtnlMessage *m)
{
        RtnlLink link;
        RtnlAddress addr;
        RtnlRoute route;
        RtnlError e = RTNL_ERROR_NONE;
        int r, error;

        r = rtnl_parse_link(m, &link, &e);
        check_error(r, e);
        if (r == 0) {
                size_t n = strnlen(link.name, sizeof(link.name));

                assert(link.ifindex > 0);
                assert(n > 0 && n < sizeof(link.name));
                assert(strnlen(link.kind, sizeof(link.kind)) < sizeof(link.kind));
        }

        e = RTNL_ERROR_NONE;
        r = rtnl_parse_address(m, &addr, &e);
        check_error(r, e);
        if (r == 0 && (addr.family == AF_INET || addr.family == AF_INET6)) {
                assert(addr.has_local);
                assert(addr.ifindex > 0);
                assert(addr.prefixlen <= (addr.family == AF_INET ? 32 : 128));
        }

        e = RTNL_ERROR_NONE;
        r = rtnl_parse_route(m, &route, &e);
        check_error(r, e);
        if (r == 0 && route.n_nexthops == 0) {
                assert(route.ifindex == 0);
                assert(!route.has_gateway);
        }

        e = RTNL_ERROR_NONE;
        r = rtnl_parse_status(m, &error, &e);
        check_error(r, e);
        if (r == 0)
                assert(error <= 0 && error >= -4095);

        (void) rtnl_message_answers(m, 1, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        RtnlWalk w;
        RtnlMessage m;
        RtnlError e = RTNL_ERROR_NONE;
        size_t seen = 0;
        int r;

        rtnl_walk_init(&w, data, size);
        while ((r = rtnl_walk_next(&w, &m, &e)) > 0) {
                assert(m.body >= data && m.body + m.body_size <= data + size);
                assert(m.body_size + 16 <= size - seen);
                seen = (size_t) (m.body - data) + m.body_size;
                decode(&m);
        }
        assert(r == 0 || r == -EBADMSG);
        if (r < 0)
                assert(e == RTNL_ERROR_SHORT_HEADER || e == RTNL_ERROR_MESSAGE_LENGTH);
        /* The walk is over for good. */
        assert(rtnl_walk_next(&w, &m, &e) == 0);
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The real netlink hook (see platform.h): one non-blocking NETLINK_ROUTE
 * socket in the sd-event loop, subscribed to links, IPv4/IPv6 addresses and
 * IPv4/IPv6 routes. libnl-route parses and validates each message into an
 * object; we copy the few fields we need into the NetState and let the
 * manager publish the differences after each batch.
 *
 * Dumps (links, then addresses, then routes: one dump at a time per socket)
 * run at startup and after the kernel dropped events for us (ENOBUFS, a
 * truncated read, an interrupted dump, or a table that had no room): the
 * NetState marks everything stale first and drops what the dump did not
 * mention, so the published state converges on the kernel's whatever was
 * lost.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rtnl.h>
#include <netlink/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "platform.h"

/* <linux/if.h> has it but clashes with <net/if.h>. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

#define NETLINK_READ_BUFFER    (64u * 1024u)
#define NETLINK_BATCH_MAX      256u /* datagrams per loop iteration */
#define NETLINK_RCVBUF_DEFAULT (1024 * 1024)
#define NETLINK_RETRY_USEC     (100 * USEC_PER_MSEC)

typedef enum DumpPhase {
        DUMP_NONE,
        DUMP_LINKS,
        DUMP_ADDRESSES,
        DUMP_ROUTES,
} DumpPhase;

struct Netlink {
        sd_event *event;
        NetState *state;
        NetlinkHandlers handlers;
        void *userdata;
        struct nl_sock *sock;
        sd_event_source *io;
        sd_event_source *retry;
        uint8_t *buffer;
        DumpPhase phase;
        bool resync_pending; /* another full dump is needed after this one */
        bool coldplug_done;
        bool active;
        bool changed; /* since the last handler call */
        NetlinkStats stats;
};

/* The one place libnl's error space meets ours. */
static int errno_from_nl(int nle)
{
        switch (abs(nle)) {
        case NLE_SUCCESS:
                return 0;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        case NLE_PROTO_MISMATCH:
                return -EPROTONOSUPPORT;
        case NLE_BAD_SOCK:
                return -EBADF;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_INVAL:
                return -EINVAL;
        case NLE_OPNOTSUPP:
                return -EOPNOTSUPP;
        case NLE_BUSY:
                return -EBUSY;
        default:
                return -EIO;
        }
}

static int dump_request(Netlink *nl, DumpPhase phase)
{
        static const int types[] = {
            [DUMP_LINKS] = RTM_GETLINK,
            [DUMP_ADDRESSES] = RTM_GETADDR,
            [DUMP_ROUTES] = RTM_GETROUTE,
        };
        int r = nl_rtgen_request(nl->sock, types[phase], AF_UNSPEC, NLM_F_DUMP);

        if (r < 0)
                return errno_from_nl(r);
        nl->phase = phase;
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void dump_start(Netlink *nl)
{
        int r;

        if (nl->phase != DUMP_NONE) {
                nl->resync_pending = true;
                return;
        }
        nl->resync_pending = false;
        netstate_resync_begin(nl->state);
        nl->stats.dumps++;
        r = dump_request(nl, DUMP_LINKS);
        if (r < 0) {
                log_warning_errno(r, "netlink: failed to request a dump, retrying: %m");
                (void) sd_event_source_set_time_relative(nl->retry, NETLINK_RETRY_USEC);
                (void) sd_event_source_set_enabled(nl->retry, SD_EVENT_ONESHOT);
        }
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        Netlink *nl = userdata;

        nl->phase = DUMP_NONE;
        dump_start(nl);
        return 0;
}

static void resync(Netlink *nl, const char *why)
{
        nl->stats.resyncs++;
        log_info("netlink: %s; resynchronising with a full dump", why);
        dump_start(nl);
}

static void dump_phase_done(Netlink *nl)
{
        int r = 0;

        switch (nl->phase) {
        case DUMP_NONE:
                return;
        case DUMP_LINKS:
                r = dump_request(nl, DUMP_ADDRESSES);
                break;
        case DUMP_ADDRESSES:
                r = dump_request(nl, DUMP_ROUTES);
                break;
        case DUMP_ROUTES:
                nl->phase = DUMP_NONE;
                netstate_resync_end(nl->state);
                nl->changed = true;
                if (!nl->coldplug_done) {
                        nl->coldplug_done = true;
                        log_debug("netlink: initial dump done");
                }
                if (nl->resync_pending)
                        dump_start(nl);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "netlink: failed to request a dump, retrying: %m");
                (void) sd_event_source_set_time_relative(nl->retry, NETLINK_RETRY_USEC);
                (void) sd_event_source_set_enabled(nl->retry, SD_EVENT_ONESHOT);
        }
}

static bool addr_copy(struct nl_addr *a, uint8_t family, uint8_t out[16])
{
        size_t want = family == AF_INET ? 4 : 16;

        if (!a || nl_addr_get_family(a) != family || nl_addr_get_len(a) != want)
                return false;
        memset(out, 0, 16);
        memcpy(out, nl_addr_get_binary_addr(a), want);
        return true;
}

typedef struct ParseContext {
        Netlink *nl;
        uint16_t type;
        int result;
} ParseContext;

static void handle_link(ParseContext *c, struct rtnl_link *link)
{
        NetLinkInfo info = {};
        const char *name = rtnl_link_get_name(link);
        unsigned flags = rtnl_link_get_flags(link);

        info.ifindex = rtnl_link_get_ifindex(link);
        if (info.ifindex <= 0 || !name || strlen(name) >= sizeof(info.name) || !*name) {
                c->result = -EBADMSG;
                return;
        }
        if (c->type == RTM_DELLINK) {
                netstate_link_remove(c->nl->state, info.ifindex);
                return;
        }
        strcpy(info.name, name);
        info.admin_up = flags & IFF_UP;
        info.carrier = flags & IFF_LOWER_UP;
        if (flags & IFF_LOOPBACK)
                strcpy(info.kind, "loopback");
        else if (rtnl_link_get_type(link))
                (void) snprintf(info.kind, sizeof(info.kind), "%s", rtnl_link_get_type(link));
        c->result = netstate_link_update(c->nl->state, &info);
}

static void handle_address(ParseContext *c, struct rtnl_addr *addr)
{
        NetAddress a = {};
        int family = rtnl_addr_get_family(addr), ifindex = rtnl_addr_get_ifindex(addr);
        int prefixlen = rtnl_addr_get_prefixlen(addr);

        if (family != AF_INET && family != AF_INET6)
                return;
        a.family = (uint8_t) family;
        if (ifindex <= 0 || prefixlen < 0 || prefixlen > (family == AF_INET ? 32 : 128) ||
            !addr_copy(rtnl_addr_get_local(addr), a.family, a.addr)) {
                c->result = -EBADMSG;
                return;
        }
        a.prefixlen = (uint8_t) prefixlen;
        a.scope = (uint8_t) rtnl_addr_get_scope(addr);
        a.flags = (uint32_t) rtnl_addr_get_flags(addr);
        if (c->type == RTM_DELADDR)
                netstate_address_remove(c->nl->state, ifindex, &a);
        else
                c->result = netstate_address_update(c->nl->state, ifindex, &a);
}

static void handle_route(ParseContext *c, struct rtnl_route *route)
{
        NetRoute r = {};
        struct nl_addr *dst = rtnl_route_get_dst(route), *gw;
        struct rtnl_nexthop *nh;
        int family = rtnl_route_get_family(route);

        /* Only default unicast routes of the main table interest us. */
        if ((family != AF_INET && family != AF_INET6) ||
            rtnl_route_get_table(route) != RT_TABLE_MAIN ||
            rtnl_route_get_type(route) != RTN_UNICAST ||
            (rtnl_route_get_flags(route) & RTM_F_CLONED) ||
            (dst && nl_addr_get_prefixlen(dst) != 0))
                return;
        if (rtnl_route_get_nnexthops(route) < 1)
                return;
        /* Multipath: the first hop stands for the route. */
        nh = rtnl_route_nexthop_n(route, 0);
        if (!nh)
                return;
        r.family = (uint8_t) family;
        r.table = rtnl_route_get_table(route);
        r.metric = rtnl_route_get_priority(route);
        r.ifindex = rtnl_route_nh_get_ifindex(nh);
        if (r.ifindex <= 0)
                return;
        gw = rtnl_route_nh_get_gateway(nh);
        if (gw) {
                if (!addr_copy(gw, r.family, r.gateway)) {
                        c->result = -EBADMSG;
                        return;
                }
                r.has_gateway = true;
        }
        if (c->type == RTM_DELROUTE)
                netstate_route_remove(c->nl->state, &r);
        else
                c->result = netstate_route_update(c->nl->state, &r);
}

static void on_object(struct nl_object *o, void *arg)
{
        ParseContext *c = arg;
        const char *type = nl_object_get_type(o);

        if (!type)
                return;
        if (streq(type, "route/link"))
                handle_link(c, (struct rtnl_link *) o);
        else if (streq(type, "route/addr"))
                handle_address(c, (struct rtnl_addr *) o);
        else if (streq(type, "route/route"))
                handle_route(c, (struct rtnl_route *) o);
}

static void handle_message(Netlink *nl, struct nlmsghdr *h)
{
        ParseContext c = {.nl = nl, .type = h->nlmsg_type};
        struct nl_msg *msg;
        int r;

        switch (h->nlmsg_type) {
        case NLMSG_DONE:
                dump_phase_done(nl);
                return;
        case NLMSG_ERROR: {
                const struct nlmsgerr *e = NLMSG_DATA(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
                        nl->stats.invalid++;
                        return;
                }
                if (e->error == 0)
                        return; /* an ack */
                log_warning_errno(e->error, "netlink: the kernel refused a dump: %m");
                if (nl->phase != DUMP_NONE) {
                        (void) sd_event_source_set_time_relative(nl->retry, NETLINK_RETRY_USEC);
                        (void) sd_event_source_set_enabled(nl->retry, SD_EVENT_ONESHOT);
                }
                return;
        }
        case NLMSG_OVERRUN:
                resync(nl, "the kernel reported an overrun");
                return;
        case RTM_NEWLINK:
        case RTM_DELLINK:
        case RTM_NEWADDR:
        case RTM_DELADDR:
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
                break;
        default:
                return;
        }
        if (h->nlmsg_flags & NLM_F_DUMP_INTR)
                nl->resync_pending = true;
        msg = nlmsg_convert(h);
        if (!msg) {
                nl->stats.invalid++;
                return;
        }
        /* libnl finds the parser by protocol and type. */
        nlmsg_set_proto(msg, NETLINK_ROUTE);
        r = nl_msg_parse(msg, on_object, &c);
        nlmsg_free(msg);
        nl->stats.messages++;
        if (r < 0 || c.result == -EBADMSG || c.result == -EINVAL) {
                nl->stats.invalid++;
                log_debug("netlink: ignoring a malformed message of type %u", h->nlmsg_type);
                return;
        }
        nl->changed = true;
}

/* One datagram: 1 handled, 0 nothing to read, <0 error. */
static int read_one(Netlink *nl)
{
        struct sockaddr_nl sender = {};
        struct iovec iov = {.iov_base = nl->buffer, .iov_len = NETLINK_READ_BUFFER};
        struct msghdr mh = {
            .msg_name = &sender,
            .msg_namelen = sizeof(sender),
            .msg_iov = &iov,
            .msg_iovlen = 1,
        };
        ssize_t n = recvmsg(nl_socket_get_fd(nl->sock), &mh, MSG_DONTWAIT);
        size_t len;

        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                if (errno == ENOBUFS) {
                        resync(nl, "the kernel dropped events (ENOBUFS)");
                        return 1;
                }
                return -errno;
        }
        if (mh.msg_flags & MSG_TRUNC) {
                resync(nl, "a message did not fit the read buffer");
                return 1;
        }
        if (mh.msg_namelen != sizeof(sender) || sender.nl_family != AF_NETLINK ||
            sender.nl_pid != 0) {
                nl->stats.invalid++;
                return 1; /* not from the kernel */
        }
        len = (size_t) n;
        for (struct nlmsghdr *h = (struct nlmsghdr *) nl->buffer; NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len))
                handle_message(nl, h);
        if (len > 0)
                nl->stats.invalid++;
        return 1;
}

static void notify(Netlink *nl)
{
        if (!nl->changed || !nl->coldplug_done)
                return;
        nl->changed = false;
        if (nl->handlers.changed)
                nl->handlers.changed(nl->userdata);
        /* The manager flushed: if that made room for what did not fit, look again. */
        if (netstate_take_resync_request(nl->state))
                resync(nl, "a table had been full and has room again");
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Netlink *nl = userdata;

        for (unsigned i = 0; i < NETLINK_BATCH_MAX; i++) {
                int r = read_one(nl);

                if (r == 0)
                        break;
                if (r < 0) {
                        log_error_errno(r, "netlink: read failed, no longer watching links: %m");
                        nl->io = sd_event_source_disable_unref(nl->io);
                        break;
                }
        }
        notify(nl);
        return 0;
}

static void set_receive_buffer(int fd)
{
        const char *e = getenv("SMD_NETLINK_RCVBUF");
        int size = NETLINK_RCVBUF_DEFAULT;

        if (e && *e) {
                long v = strtol(e, NULL, 10);
                if (v >= 4096 && v <= 64 * 1024 * 1024)
                        size = (int) v;
        }
        /* FORCE may exceed rmem_max but needs CAP_NET_ADMIN. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static int netlink_open(Netlink *nl)
{
        int r;

        nl->sock = nl_socket_alloc();
        if (!nl->sock)
                return -ENOMEM;
        nl_socket_disable_seq_check(nl->sock);
        nl_socket_disable_auto_ack(nl->sock);
        r = nl_connect(nl->sock, NETLINK_ROUTE);
        if (r < 0)
                return errno_from_nl(r);
        r = nl_socket_add_memberships(nl->sock, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
                                      RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
                                      0);
        if (r < 0)
                return errno_from_nl(r);
        r = nl_socket_set_nonblocking(nl->sock);
        if (r < 0)
                return errno_from_nl(r);
        set_receive_buffer(nl_socket_get_fd(nl->sock));
        r = sd_event_add_io(nl->event, &nl->io, nl_socket_get_fd(nl->sock), EPOLLIN, on_io, nl);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(nl->io, "netlink");
        return 0;
}

int netlink_new(Netlink **ret, sd_event *event, NetState *state, const NetlinkHandlers *handlers,
                void *userdata)
{
        _cleanup_(netlink_freep) Netlink *nl = NULL;
        int r;

        nl = calloc(1, sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        nl->event = sd_event_ref(event);
        nl->state = state;
        nl->handlers = *handlers;
        nl->userdata = userdata;
        nl->buffer = malloc(NETLINK_READ_BUFFER);
        if (!nl->buffer)
                return -ENOMEM;
        r = sd_event_add_time(event, &nl->retry, CLOCK_MONOTONIC, UINT64_MAX, 0, on_retry, nl);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(nl->retry, SD_EVENT_OFF);

        r = netlink_open(nl);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_info_errno(r, "netlink is unavailable (%m): links are not watched and "
                                  "the DHCP state does not wait for a route");
                nl->io = sd_event_source_disable_unref(nl->io);
                if (nl->sock)
                        nl_socket_free(nl->sock);
                nl->sock = NULL;
                nl->coldplug_done = true;
                *ret = TAKE_PTR(nl);
                return 0;
        }
        nl->active = true;
        dump_start(nl);
        *ret = TAKE_PTR(nl);
        return 0;
}

Netlink *netlink_free(Netlink *nl)
{
        if (!nl)
                return NULL;
        sd_event_source_disable_unref(nl->retry);
        sd_event_source_disable_unref(nl->io);
        if (nl->sock)
                nl_socket_free(nl->sock);
        free(nl->buffer);
        sd_event_unref(nl->event);
        return mfree(nl);
}

bool netlink_is_active(const Netlink *nl)
{
        return nl && nl->active;
}

bool netlink_coldplug_done(const Netlink *nl)
{
        return !nl || nl->coldplug_done;
}

void netlink_get_stats(const Netlink *nl, NetlinkStats *ret)
{
        *ret = nl ? nl->stats : (NetlinkStats){};
}

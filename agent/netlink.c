/* SPDX-License-Identifier: MIT */
/*
 * The real netlink hook (see platform.h): one non-blocking NETLINK_ROUTE
 * socket in the sd-event loop, subscribed to links, IPv4/IPv6 addresses and
 * IPv4/IPv6 routes. rtnl.c walks each datagram and decodes and validates each
 * message; we copy the few fields we need into the NetState and let the
 * manager publish the differences after each batch.
 *
 * Dumps (links, then addresses, then routes: one dump at a time per socket)
 * run at startup and after the kernel dropped events for us (ENOBUFS, a
 * truncated read, an interrupted dump, or a table that had no room): the
 * NetState marks everything stale first and drops what the dump did not
 * mention, so the published state converges on the kernel's whatever was
 * lost. Each request has its own sequence number; an NLMSG_DONE or
 * NLMSG_ERROR that does not answer the request in flight is ignored.
 */
#include <assert.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "platform.h"
#include "rtnl.h"

/* <linux/if.h> has it but clashes with <net/if.h>. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

#define NETLINK_READ_BUFFER    (64u * 1024u)
#define NETLINK_BATCH_MAX      256u /* datagrams per loop iteration */
#define NETLINK_RCVBUF_DEFAULT (1024 * 1024)
#define NETLINK_RETRY_USEC     (100 * USEC_PER_MSEC)
#define NETLINK_GROUPS                                                               \
        (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | \
         RTMGRP_IPV6_ROUTE)

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
        int fd;
        uint32_t port_id; /* ours, as the kernel numbered the socket */
        uint32_t seq;     /* of the last dump request */
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

static int dump_request(Netlink *nl, DumpPhase phase)
{
        static const uint16_t types[] = {
            [DUMP_LINKS] = RTM_GETLINK,
            [DUMP_ADDRESSES] = RTM_GETADDR,
            [DUMP_ROUTES] = RTM_GETROUTE,
        };
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        uint8_t request[RTNL_DUMP_REQUEST_MAX];
        uint32_t seq = nl->seq + 1;
        int size;
        ssize_t n;

        assert(phase != DUMP_NONE && phase < ELEMENTSOF(types));
        size = rtnl_build_dump_request(types[phase], seq, request, sizeof(request));
        assert(size > 0);
        n = sendto(nl->fd, request, (size_t) size, 0, (struct sockaddr *) &kernel, sizeof(kernel));
        if (n < 0)
                return -errno;
        if (n != size)
                return -EIO;
        nl->seq = seq;
        nl->phase = phase;
        return 0;
}

static void retry_later(Netlink *nl)
{
        (void) sd_event_source_set_time_relative(nl->retry, NETLINK_RETRY_USEC);
        (void) sd_event_source_set_enabled(nl->retry, SD_EVENT_ONESHOT);
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
                retry_later(nl);
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
                retry_later(nl);
        }
}

/* The handlers: 0, or -EBADMSG / -EINVAL for a malformed message (*why for the log). */

static int handle_link(Netlink *nl, const RtnlMessage *m, const char **why)
{
        NetLinkInfo info = {};
        RtnlLink link;
        RtnlError e;
        int r;

        r = rtnl_parse_link(m, &link, &e);
        if (r < 0) {
                *why = rtnl_error_to_string(e);
                return r;
        }
        info.ifindex = link.ifindex;
        /* AF_BRIDGE: a port left its bridge; the link itself is still there. */
        if (m->type == RTM_DELLINK && link.family == AF_BRIDGE)
                return 0;
        if (m->type == RTM_DELLINK) {
                netstate_link_remove(nl->state, info.ifindex);
                return 0;
        }
        memcpy(info.name, link.name, sizeof(info.name));
        info.admin_up = link.flags & IFF_UP;
        info.carrier = link.flags & IFF_LOWER_UP;
        if (link.flags & IFF_LOOPBACK)
                strcpy(info.kind, "loopback");
        else
                memcpy(info.kind, link.kind, sizeof(info.kind));
        *why = "refused by the link table";
        return netstate_link_update(nl->state, &info);
}

static int handle_address(Netlink *nl, const RtnlMessage *m, const char **why)
{
        NetAddress a = {};
        RtnlAddress addr;
        RtnlError e;
        int r;

        r = rtnl_parse_address(m, &addr, &e);
        if (r < 0) {
                *why = rtnl_error_to_string(e);
                return r;
        }
        if (addr.family != AF_INET && addr.family != AF_INET6)
                return 0;
        assert(addr.has_local);
        a.family = addr.family;
        a.prefixlen = addr.prefixlen;
        a.scope = addr.scope;
        a.flags = addr.flags;
        memcpy(a.addr, addr.local, sizeof(a.addr));
        if (m->type == RTM_DELADDR) {
                netstate_address_remove(nl->state, addr.ifindex, &a);
                return 0;
        }
        *why = "refused by the address table";
        return netstate_address_update(nl->state, addr.ifindex, &a);
}

static int handle_route(Netlink *nl, const RtnlMessage *m, const char **why)
{
        NetRoute r = {};
        RtnlRoute route;
        RtnlError e;
        int k;

        k = rtnl_parse_route(m, &route, &e);
        if (k < 0) {
                *why = rtnl_error_to_string(e);
                return k;
        }
        /* Only default unicast routes of the main table interest us. */
        if ((route.family != AF_INET && route.family != AF_INET6) || route.table != RT_TABLE_MAIN ||
            route.type != RTN_UNICAST || (route.flags & RTM_F_CLONED) || route.dst_len != 0)
                return 0;
        /* Multipath: the first hop stands for the route. */
        if (route.n_nexthops < 1 || route.ifindex <= 0)
                return 0;
        r.family = route.family;
        r.table = route.table;
        r.metric = route.priority;
        r.ifindex = route.ifindex;
        r.has_gateway = route.has_gateway;
        memcpy(r.gateway, route.gateway, sizeof(r.gateway));
        if (m->type == RTM_DELROUTE) {
                netstate_route_remove(nl->state, &r);
                return 0;
        }
        *why = "refused by the route table";
        return netstate_route_update(nl->state, &r);
}

/* NLMSG_DONE and NLMSG_ERROR: the end of a dump, or the kernel's answer to a request. */
static void handle_status(Netlink *nl, const RtnlMessage *m)
{
        RtnlError e;
        int error, r;

        r = rtnl_parse_status(m, &error, &e);
        if (r < 0) {
                nl->stats.invalid++;
                log_debug("netlink: ignoring a malformed message of type %u: %s", m->type,
                          rtnl_error_to_string(e));
                return;
        }
        if (!rtnl_message_answers(m, nl->seq, nl->port_id)) {
                log_debug("netlink: ignoring a message of type %u for request %u from port %u, "
                          "not ours",
                          m->type, m->seq, m->pid);
                return;
        }
        if (m->flags & NLM_F_DUMP_INTR)
                nl->resync_pending = true;
        if (error == 0) {
                if (m->type == NLMSG_DONE)
                        dump_phase_done(nl);
                return; /* an ack */
        }
        if (m->type == NLMSG_DONE)
                log_warning_errno(error, "netlink: a dump ended early: %m");
        else
                log_warning_errno(error, "netlink: the kernel refused a dump: %m");
        if (nl->phase != DUMP_NONE)
                retry_later(nl);
}

static void handle_message(Netlink *nl, const RtnlMessage *m)
{
        const char *why = NULL;
        int r;

        switch (m->type) {
        case NLMSG_DONE:
        case NLMSG_ERROR:
                handle_status(nl, m);
                return;
        case NLMSG_OVERRUN:
                resync(nl, "the kernel reported an overrun");
                return;
        case RTM_NEWLINK:
        case RTM_DELLINK:
                r = handle_link(nl, m, &why);
                break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
                r = handle_address(nl, m, &why);
                break;
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
                r = handle_route(nl, m, &why);
                break;
        default:
                return;
        }
        if (m->flags & NLM_F_DUMP_INTR)
                nl->resync_pending = true;
        nl->stats.messages++;
        if (r == -EBADMSG || r == -EINVAL) {
                nl->stats.invalid++;
                log_debug("netlink: ignoring a malformed message of type %u: %s", m->type,
                          strempty(why));
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
        ssize_t n = recvmsg(nl->fd, &mh, MSG_DONTWAIT);
        RtnlWalk walk;
        RtnlMessage m;
        RtnlError e;
        int r;

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
        rtnl_walk_init(&walk, nl->buffer, (size_t) n);
        while ((r = rtnl_walk_next(&walk, &m, &e)) > 0)
                handle_message(nl, &m);
        if (r < 0) {
                nl->stats.invalid++;
                log_debug("netlink: ignoring the rest of a datagram: %s", rtnl_error_to_string(e));
        }
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
        struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = NETLINK_GROUPS};
        socklen_t size = sizeof(address);
        int r;

        /* NETLINK_NO_ENOBUFS stays off: an overrun must be seen, to resync. */
        nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (nl->fd < 0)
                return -errno;
        set_receive_buffer(nl->fd);
        if (bind(nl->fd, (struct sockaddr *) &address, sizeof(address)) < 0)
                return -errno;
        /* The kernel chose our port id: dump replies carry it. */
        if (getsockname(nl->fd, (struct sockaddr *) &address, &size) < 0)
                return -errno;
        if (size != sizeof(address) || address.nl_family != AF_NETLINK)
                return -EPROTO;
        nl->port_id = address.nl_pid;
        r = sd_event_add_io(nl->event, &nl->io, nl->fd, EPOLLIN, on_io, nl);
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
        nl->fd = -EBADF;
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
                nl->fd = safe_close(nl->fd);
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
        safe_close(nl->fd);
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

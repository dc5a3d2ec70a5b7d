/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink messages without a library (see rtnl.h). The kernel's structures
 * come from <linux/netlink.h> and <linux/rtnetlink.h>; their macros are not
 * used on input because they read in place and trust the lengths they are
 * given.
 */
#include <errno.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#include "rtnl.h"
#include "util.h"

static const char *const error_names[_RTNL_ERROR_MAX] = {
    [RTNL_ERROR_NONE] = "no error",
    [RTNL_ERROR_SHORT_HEADER] = "fewer bytes left than a message header",
    [RTNL_ERROR_MESSAGE_LENGTH] = "message length shorter than its header or past the end",
    [RTNL_ERROR_SHORT_BODY] = "message shorter than its fixed header",
    [RTNL_ERROR_ATTRIBUTE_HEADER] = "fewer bytes left than an attribute header",
    [RTNL_ERROR_ATTRIBUTE_LENGTH] = "attribute length shorter than its header or past the end",
    [RTNL_ERROR_ATTRIBUTE_SIZE] = "attribute of the wrong size for its type",
    [RTNL_ERROR_NAME_MISSING] = "link without a name",
    [RTNL_ERROR_NAME_UNTERMINATED] = "link name without its NUL",
    [RTNL_ERROR_NAME_EMPTY] = "empty link name",
    [RTNL_ERROR_NAME_TOO_LONG] = "link name too long",
    [RTNL_ERROR_STRING_UNTERMINATED] = "string attribute without its NUL",
    [RTNL_ERROR_IFINDEX] = "interface index out of range",
    [RTNL_ERROR_PREFIX_LENGTH] = "prefix longer than the address",
    [RTNL_ERROR_ADDRESS_MISSING] = "address message without an address",
    [RTNL_ERROR_ADDRESS_SIZE] = "address of the wrong size for its family",
    [RTNL_ERROR_NEXTHOP_LENGTH] = "multipath next hop length out of bounds",
    [RTNL_ERROR_ERRNO_RANGE] = "status that is no errno",
};

const char *rtnl_error_to_string(RtnlError e)
{
        if ((unsigned) e >= _RTNL_ERROR_MAX)
                return "unknown error";
        return error_names[e];
}

static int fail(RtnlError e, RtnlError *ret_error)
{
        if (ret_error)
                *ret_error = e;
        return -EBADMSG;
}

static size_t align4(size_t n)
{
        return (n + 3u) & ~(size_t) 3u;
}

void rtnl_walk_init(RtnlWalk *w, const void *data, size_t size)
{
        *w = (RtnlWalk){.data = data, .size = data ? size : 0};
}

int rtnl_walk_next(RtnlWalk *w, RtnlMessage *ret, RtnlError *ret_error)
{
        size_t left = w->size - w->offset;
        struct nlmsghdr h;

        if (left == 0)
                return 0;
        if (left < sizeof(h)) {
                w->offset = w->size;
                return fail(RTNL_ERROR_SHORT_HEADER, ret_error);
        }
        memcpy(&h, w->data + w->offset, sizeof(h));
        if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > left) {
                w->offset = w->size;
                return fail(RTNL_ERROR_MESSAGE_LENGTH, ret_error);
        }
        *ret = (RtnlMessage){
            .type = h.nlmsg_type,
            .flags = h.nlmsg_flags,
            .seq = h.nlmsg_seq,
            .pid = h.nlmsg_pid,
            .body = w->data + w->offset + sizeof(h),
            .body_size = h.nlmsg_len - sizeof(h),
        };
        /* The last message of a datagram may come without its padding. */
        w->offset += MIN(align4(h.nlmsg_len), left);
        return 1;
}

bool rtnl_message_answers(const RtnlMessage *m, uint32_t seq, uint32_t port_id)
{
        return m->seq == seq && m->pid == port_id;
}

/* Attributes: a run of (rtattr, payload) pairs, each padded to 4 bytes. */
typedef struct Attribute {
        uint16_t type; /* without NLA_F_NESTED and NLA_F_NET_BYTEORDER */
        const uint8_t *data;
        size_t size;
} Attribute;

typedef struct AttributeWalk {
        const uint8_t *data;
        size_t size;
        size_t offset;
} AttributeWalk;

static AttributeWalk attribute_walk(const uint8_t *data, size_t size)
{
        return (AttributeWalk){.data = data, .size = size};
}

/*
 * The fixed header a message's body starts with (SIZE bytes, copied to HDR:
 * the body need not be aligned for it), and a walk over the attributes behind it.
 */
static int body_header(const RtnlMessage *m, void *hdr, size_t size, AttributeWalk *ret_walk,
                       RtnlError *ret_error)
{
        size_t off = MIN((size_t) NLMSG_ALIGN(size), m->body_size);

        if (m->body_size < size)
                return fail(RTNL_ERROR_SHORT_BODY, ret_error);
        memcpy(hdr, m->body, size);
        *ret_walk = attribute_walk(m->body + off, m->body_size - off);
        return 0;
}

/* 1 and the next attribute, 0 at the end, -EBADMSG. */
static int attribute_next(AttributeWalk *w, Attribute *ret, RtnlError *ret_error)
{
        size_t left = w->size - w->offset;
        struct rtattr a;

        if (left == 0)
                return 0;
        if (left < sizeof(a))
                return fail(RTNL_ERROR_ATTRIBUTE_HEADER, ret_error);
        memcpy(&a, w->data + w->offset, sizeof(a));
        if (a.rta_len < sizeof(a) || a.rta_len > left)
                return fail(RTNL_ERROR_ATTRIBUTE_LENGTH, ret_error);
        *ret = (Attribute){
            .type = a.rta_type & NLA_TYPE_MASK,
            .data = w->data + w->offset + sizeof(a),
            .size = a.rta_len - sizeof(a),
        };
        w->offset += MIN(align4(a.rta_len), left);
        return 1;
}

static int attribute_u32(const Attribute *a, uint32_t *ret, RtnlError *ret_error)
{
        if (a->size != sizeof(*ret))
                return fail(RTNL_ERROR_ATTRIBUTE_SIZE, ret_error);
        memcpy(ret, a->data, sizeof(*ret));
        return 0;
}

static size_t family_address_size(uint8_t family)
{
        switch (family) {
        case AF_INET:
                return 4;
        case AF_INET6:
                return 16;
        default:
                return 0;
        }
}

/* A NUL-terminated string of at most size - 1 characters into buf, cut to fit. */
static int attribute_string(const Attribute *a, char *buf, size_t size, RtnlError *ret_error)
{
        const uint8_t *nul = memchr(a->data, 0, a->size);
        size_t len;

        if (!nul)
                return fail(RTNL_ERROR_STRING_UNTERMINATED, ret_error);
        len = MIN((size_t) (nul - a->data), size - 1);
        memcpy(buf, a->data, len);
        buf[len] = 0;
        return 0;
}

static int link_name(const Attribute *a, char name[IF_NAMESIZE], RtnlError *ret_error)
{
        const uint8_t *nul = memchr(a->data, 0, a->size);
        size_t len;

        if (!nul)
                return fail(RTNL_ERROR_NAME_UNTERMINATED, ret_error);
        len = (size_t) (nul - a->data);
        if (len == 0)
                return fail(RTNL_ERROR_NAME_EMPTY, ret_error);
        if (len >= IF_NAMESIZE)
                return fail(RTNL_ERROR_NAME_TOO_LONG, ret_error);
        memcpy(name, a->data, len + 1);
        return 0;
}

static int link_info_kind(const Attribute *info, char kind[16], RtnlError *ret_error)
{
        AttributeWalk w = attribute_walk(info->data, info->size);
        Attribute a;
        int r;

        while ((r = attribute_next(&w, &a, ret_error)) > 0)
                if (a.type == IFLA_INFO_KIND) {
                        r = attribute_string(&a, kind, 16, ret_error);
                        if (r < 0)
                                return r;
                }
        return r;
}

int rtnl_parse_link(const RtnlMessage *m, RtnlLink *ret, RtnlError *ret_error)
{
        RtnlLink link = {};
        struct ifinfomsg ifi;
        AttributeWalk w;
        Attribute a;
        bool has_name = false;
        int r;

        r = body_header(m, &ifi, sizeof(ifi), &w, ret_error);
        if (r < 0)
                return r;
        if (ifi.ifi_index <= 0)
                return fail(RTNL_ERROR_IFINDEX, ret_error);
        link.family = ifi.ifi_family;
        link.ifindex = ifi.ifi_index;
        link.flags = ifi.ifi_flags;

        while ((r = attribute_next(&w, &a, ret_error)) > 0) {
                switch (a.type) {
                case IFLA_IFNAME:
                        r = link_name(&a, link.name, ret_error);
                        has_name = true;
                        break;
                case IFLA_LINKINFO:
                        link.kind[0] = 0;
                        r = link_info_kind(&a, link.kind, ret_error);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!has_name)
                return fail(RTNL_ERROR_NAME_MISSING, ret_error);
        *ret = link;
        return 0;
}

static int address_copy(const Attribute *a, uint8_t family, uint8_t out[16], RtnlError *ret_error)
{
        size_t want = family_address_size(family);

        if (a->size != want)
                return fail(RTNL_ERROR_ADDRESS_SIZE, ret_error);
        memset(out, 0, 16);
        memcpy(out, a->data, want);
        return 0;
}

int rtnl_parse_address(const RtnlMessage *m, RtnlAddress *ret, RtnlError *ret_error)
{
        RtnlAddress addr = {};
        struct ifaddrmsg ifa;
        AttributeWalk w;
        Attribute a, local = {}, address = {};
        bool has_local = false, has_address = false;
        size_t address_size;
        int r;

        r = body_header(m, &ifa, sizeof(ifa), &w, ret_error);
        if (r < 0)
                return r;
        addr.family = ifa.ifa_family;
        addr.prefixlen = ifa.ifa_prefixlen;
        addr.scope = ifa.ifa_scope;
        addr.flags = ifa.ifa_flags;
        addr.ifindex = ifa.ifa_index <= INT_MAX ? (int) ifa.ifa_index : 0;

        while ((r = attribute_next(&w, &a, ret_error)) > 0) {
                switch (a.type) {
                case IFA_LOCAL:
                        local = a;
                        has_local = true;
                        break;
                case IFA_ADDRESS:
                        address = a;
                        has_address = true;
                        break;
                case IFA_FLAGS:
                        r = attribute_u32(&a, &addr.flags, ret_error);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        address_size = family_address_size(addr.family);
        if (address_size > 0) {
                if (addr.ifindex <= 0)
                        return fail(RTNL_ERROR_IFINDEX, ret_error);
                if (addr.prefixlen > address_size * 8)
                        return fail(RTNL_ERROR_PREFIX_LENGTH, ret_error);
                /* IPv4 sends both, IFA_ADDRESS being the peer on point-to-point
                 * links; IPv6 sends only IFA_ADDRESS. */
                if (!has_local && !has_address)
                        return fail(RTNL_ERROR_ADDRESS_MISSING, ret_error);
                if (has_local && has_address && address.size != address_size)
                        return fail(RTNL_ERROR_ADDRESS_SIZE, ret_error);
                r = address_copy(has_local ? &local : &address, addr.family, addr.local, ret_error);
                if (r < 0)
                        return r;
                addr.has_local = true;
        }
        *ret = addr;
        return 0;
}

/* The entries of RTA_MULTIPATH: rtnexthop headers, each followed by its own
 * attributes. Counts them and decodes the first. */
static int route_multipath(const Attribute *mp, RtnlRoute *route, RtnlError *ret_error)
{
        size_t offset = 0;
        unsigned n = 0;

        while (offset < mp->size) {
                size_t left = mp->size - offset;
                struct rtnexthop nh;
                AttributeWalk w;
                Attribute a;
                int r;

                if (left < sizeof(nh))
                        return fail(RTNL_ERROR_NEXTHOP_LENGTH, ret_error);
                memcpy(&nh, mp->data + offset, sizeof(nh));
                if (nh.rtnh_len < sizeof(nh) || nh.rtnh_len > left)
                        return fail(RTNL_ERROR_NEXTHOP_LENGTH, ret_error);
                w = attribute_walk(mp->data + offset + sizeof(nh), nh.rtnh_len - sizeof(nh));
                while ((r = attribute_next(&w, &a, ret_error)) > 0) {
                        if (a.type != RTA_GATEWAY || family_address_size(route->family) == 0)
                                continue;
                        if (n == 0) {
                                r = address_copy(&a, route->family, route->gateway, ret_error);
                                route->has_gateway = true;
                        } else if (a.size != family_address_size(route->family)) {
                                r = fail(RTNL_ERROR_ADDRESS_SIZE, ret_error);
                        }
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                if (n == 0)
                        route->ifindex = nh.rtnh_ifindex;
                n++;
                offset += MIN(align4(nh.rtnh_len), left);
        }
        route->n_nexthops = n;
        return 0;
}

int rtnl_parse_route(const RtnlMessage *m, RtnlRoute *ret, RtnlError *ret_error)
{
        RtnlRoute route = {}, hops = {};
        struct rtmsg rtm;
        AttributeWalk w;
        Attribute a;
        bool has_oif = false;
        size_t address_size;
        uint32_t oif = 0;
        int r;

        r = body_header(m, &rtm, sizeof(rtm), &w, ret_error);
        if (r < 0)
                return r;
        route.family = rtm.rtm_family;
        route.dst_len = rtm.rtm_dst_len;
        route.type = rtm.rtm_type;
        route.protocol = rtm.rtm_protocol;
        route.scope = rtm.rtm_scope;
        route.flags = rtm.rtm_flags;
        route.table = rtm.rtm_table;
        address_size = family_address_size(route.family);
        if (route.dst_len > address_size * 8 && address_size > 0)
                return fail(RTNL_ERROR_PREFIX_LENGTH, ret_error);

        while ((r = attribute_next(&w, &a, ret_error)) > 0) {
                switch (a.type) {
                case RTA_TABLE:
                        r = attribute_u32(&a, &route.table, ret_error);
                        break;
                case RTA_PRIORITY:
                        r = attribute_u32(&a, &route.priority, ret_error);
                        break;
                case RTA_OIF:
                        r = attribute_u32(&a, &oif, ret_error);
                        has_oif = true;
                        break;
                case RTA_GATEWAY:
                        if (address_size == 0)
                                break;
                        r = address_copy(&a, route.family, route.gateway, ret_error);
                        route.has_gateway = true;
                        break;
                case RTA_DST:
                        if (address_size > 0 && a.size != address_size)
                                r = fail(RTNL_ERROR_ADDRESS_SIZE, ret_error);
                        break;
                case RTA_MULTIPATH:
                        hops = (RtnlRoute){.family = route.family};
                        r = route_multipath(&a, &hops, ret_error);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        if (hops.n_nexthops > 0) {
                route.n_nexthops = hops.n_nexthops;
                route.ifindex = hops.ifindex;
                route.has_gateway = hops.has_gateway;
                memcpy(route.gateway, hops.gateway, sizeof(route.gateway));
        } else if (has_oif || route.has_gateway) {
                route.n_nexthops = 1;
                route.ifindex = oif <= INT_MAX ? (int) oif : 0;
        }
        *ret = route;
        return 0;
}

int rtnl_parse_status(const RtnlMessage *m, int *ret_errno, RtnlError *ret_error)
{
        int32_t e;

        if (m->type == NLMSG_DONE && m->body_size == 0) {
                *ret_errno = 0;
                return 0;
        }
        /* NLMSG_ERROR also quotes our request's header: require it, as the
         * kernel always sends it. */
        if (m->body_size < (m->type == NLMSG_ERROR ? sizeof(struct nlmsgerr) : sizeof(e)))
                return fail(RTNL_ERROR_SHORT_BODY, ret_error);
        memcpy(&e, m->body, sizeof(e));
        if (e > 0 || e < -4095)
                return fail(RTNL_ERROR_ERRNO_RANGE, ret_error);
        *ret_errno = e;
        return 0;
}

int rtnl_build_dump_request(uint16_t type, uint32_t seq, void *buf, size_t size)
{
        struct nlmsghdr h = {
            .nlmsg_type = type,
            .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
            .nlmsg_seq = seq,
        };
        size_t body;

        /* Each with its own fixed header, all zero: AF_UNSPEC, every object. */
        switch (type) {
        case RTM_GETLINK:
                body = sizeof(struct ifinfomsg);
                break;
        case RTM_GETADDR:
                body = sizeof(struct ifaddrmsg);
                break;
        case RTM_GETROUTE:
                body = sizeof(struct rtmsg);
                break;
        default:
                return -EINVAL;
        }
        h.nlmsg_len = (uint32_t) NLMSG_LENGTH(body);
        if (size < h.nlmsg_len)
                return -ENOBUFS;
        memset(buf, 0, h.nlmsg_len);
        memcpy(buf, &h, sizeof(h));
        return (int) h.nlmsg_len;
}

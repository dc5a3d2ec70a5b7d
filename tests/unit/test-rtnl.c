/* SPDX-License-Identifier: MIT */
/*
 * The rtnetlink codec (agent/rtnl.c): hand-built messages, well formed and
 * malformed, each malformed one refused with its own reason and without
 * taking its neighbours down; then the kernel's own messages: dumps of this
 * machine's links, addresses and routes compared with what if_nameindex(),
 * getifaddrs() and /proc/net/route say, every truncation of a real datagram,
 * and the events the kernel sends when loopback comes up in a network
 * namespace of our own (unshare: no root needed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/route.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtnl.h"
#include "tap.h"
#include "util.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

/* A datagram under construction. */
typedef struct Buf {
        uint8_t data[8192];
        size_t size;
} Buf;

static void put(Buf *b, const void *p, size_t n)
{
        if (b->size + n + 3 > sizeof(b->data))
                abort();
        memcpy(b->data + b->size, p, n);
        b->size += n;
        while (b->size % 4)
                b->data[b->size++] = 0;
}

static size_t msg_begin(Buf *b, uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid)
{
        struct nlmsghdr h = {
            .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq, .nlmsg_pid = pid};
        size_t start = b->size;

        put(b, &h, sizeof(h));
        return start;
}

static void msg_end(Buf *b, size_t start)
{
        uint32_t len = (uint32_t) (b->size - start);

        memcpy(b->data + start, &len, sizeof(len));
}

static void put_attr(Buf *b, uint16_t type, const void *p, size_t n)
{
        struct rtattr a = {.rta_len = (unsigned short) (sizeof(a) + n), .rta_type = type};

        memcpy(b->data + b->size, &a, sizeof(a));
        b->size += sizeof(a);
        if (n)
                put(b, p, n);
}

static void put_u32(Buf *b, uint16_t type, uint32_t v)
{
        put_attr(b, type, &v, sizeof(v));
}

static void put_str(Buf *b, uint16_t type, const char *s)
{
        put_attr(b, type, s, strlen(s) + 1);
}

static size_t nest_begin(Buf *b, uint16_t type)
{
        size_t start = b->size;

        put_attr(b, type | NLA_F_NESTED, NULL, 0);
        return start;
}

static void nest_end(Buf *b, size_t start)
{
        unsigned short len = (unsigned short) (b->size - start);

        memcpy(b->data + start, &len, sizeof(len));
}

static void put_link(Buf *b, int ifindex, unsigned flags)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex, .ifi_flags = flags};

        put(b, &ifi, sizeof(ifi));
}

/* One message of a one-message datagram. */
static RtnlMessage only(const Buf *b)
{
        RtnlWalk w;
        RtnlMessage m = {};
        RtnlError e = RTNL_ERROR_NONE;

        rtnl_walk_init(&w, b->data, b->size);
        if (rtnl_walk_next(&w, &m, &e) != 1 || rtnl_walk_next(&w, &m, &e) != 0)
                abort();
        rtnl_walk_init(&w, b->data, b->size);
        (void) rtnl_walk_next(&w, &m, &e);
        return m;
}

static Buf link_msg(int ifindex, const char *name, size_t name_size)
{
        Buf b = {};
        size_t m = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);

        put_link(&b, ifindex, IFF_UP);
        if (name)
                put_attr(&b, IFLA_IFNAME, name, name_size);
        msg_end(&b, m);
        return b;
}

static RtnlError link_error(const Buf *b)
{
        RtnlMessage m = only(b);
        RtnlLink l;
        RtnlError e = RTNL_ERROR_NONE;

        if (rtnl_parse_link(&m, &l, &e) == 0)
                return RTNL_ERROR_NONE;
        return e;
}

static void test_dump_request(void)
{
        static const struct {
                uint16_t type;
                size_t body;
        } cases[] = {
            {RTM_GETLINK, sizeof(struct ifinfomsg)},
            {RTM_GETADDR, sizeof(struct ifaddrmsg)},
            {RTM_GETROUTE, sizeof(struct rtmsg)},
        };
        uint8_t buf[64], zero[32] = {};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct nlmsghdr h;
                int n;

                memset(buf, 0xaa, sizeof(buf));
                n = rtnl_build_dump_request(cases[i].type, 4242 + i, buf, sizeof(buf));
                is_int(n, 16 + cases[i].body, "dump request %u: header and its fixed header",
                       cases[i].type);
                cmp_int(n, <=, RTNL_DUMP_REQUEST_MAX, "within RTNL_DUMP_REQUEST_MAX");
                memcpy(&h, buf, sizeof(h));
                is_int(h.nlmsg_len, n, "nlmsg_len is the size");
                is_int(h.nlmsg_type, cases[i].type, "its type");
                is_int(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP, "a dump request");
                is_int(h.nlmsg_seq, 4242 + i, "numbered");
                is_int(h.nlmsg_pid, 0, "the kernel fills in our port");
                is_mem(buf + 16, cases[i].body, zero, cases[i].body, "AF_UNSPEC, no filter");
                is_int(buf[n], 0xaa, "nothing written past the request");
        }
        is_int(rtnl_build_dump_request(RTM_GETNEIGH, 1, buf, sizeof(buf)), -EINVAL,
               "RTM_GETNEIGH is not ours to ask: -EINVAL");
        is_int(rtnl_build_dump_request(RTM_GETLINK, 1, buf, 31), -ENOBUFS,
               "a buffer one byte short: -ENOBUFS");
}

static void test_walk(void)
{
        Buf b = {};
        RtnlWalk w;
        RtnlMessage m;
        RtnlError e = RTNL_ERROR_NONE;
        size_t a, second;
        uint32_t bad;

        rtnl_walk_init(&w, b.data, 0);
        is_int(rtnl_walk_next(&w, &m, &e), 0, "an empty datagram has no message");

        a = msg_begin(&b, NLMSG_NOOP, NLM_F_MULTI, 7, 99);
        put(&b, "abcd", 4);
        msg_end(&b, a);
        second = msg_begin(&b, NLMSG_DONE, NLM_F_MULTI, 7, 99);
        msg_end(&b, second);
        rtnl_walk_init(&w, b.data, b.size);
        is_int(rtnl_walk_next(&w, &m, &e), 1, "first message");
        is_int(m.type, NLMSG_NOOP, "its type");
        is_int(m.flags, NLM_F_MULTI, "its flags");
        is_int(m.seq, 7, "its sequence number");
        is_int(m.pid, 99, "its port");
        is_int(m.body_size, 4, "its body");
        is_mem(m.body, 4, "abcd", 4, "body bytes");
        ok(rtnl_message_answers(&m, 7, 99), "answers request 7 of port 99");
        ok(!rtnl_message_answers(&m, 8, 99), "not request 8");
        ok(!rtnl_message_answers(&m, 7, 98), "not port 98");
        is_int(rtnl_walk_next(&w, &m, &e), 1, "second message");
        is_int(m.type, NLMSG_DONE, "NLMSG_DONE");
        is_int(rtnl_walk_next(&w, &m, &e), 0, "then the end");

        e = RTNL_ERROR_NONE;
        rtnl_walk_init(&w, b.data, 10);
        is_int(rtnl_walk_next(&w, &m, &e), -EBADMSG, "10 bytes: -EBADMSG");
        is_int(e, RTNL_ERROR_SHORT_HEADER, "short header");
        is_int(rtnl_walk_next(&w, &m, &e), 0, "and the walk is over");

        /* Second message claims more than there is. */
        bad = 64;
        memcpy(b.data + second, &bad, sizeof(bad));
        rtnl_walk_init(&w, b.data, b.size);
        is_int(rtnl_walk_next(&w, &m, &e), 1, "a good message before a bad length is read");
        is_int(rtnl_walk_next(&w, &m, &e), -EBADMSG, "nlmsg_len past the end: -EBADMSG");
        is_int(e, RTNL_ERROR_MESSAGE_LENGTH, "message length");
        is_int(rtnl_walk_next(&w, &m, &e), 0, "and the walk is over");

        bad = 15;
        memcpy(b.data + second, &bad, sizeof(bad));
        rtnl_walk_init(&w, b.data, b.size);
        (void) rtnl_walk_next(&w, &m, &e);
        is_int(rtnl_walk_next(&w, &m, &e), -EBADMSG, "nlmsg_len shorter than a header");
        is_int(e, RTNL_ERROR_MESSAGE_LENGTH, "message length");

        /* A last message without its padding is whole. */
        b = (Buf){};
        a = msg_begin(&b, NLMSG_NOOP, 0, 0, 0);
        put(&b, "x", 1);
        msg_end(&b, a);
        bad = 17;
        memcpy(b.data, &bad, sizeof(bad));
        rtnl_walk_init(&w, b.data, 17);
        is_int(rtnl_walk_next(&w, &m, &e), 1, "a 17-byte last message without padding");
        is_int(m.body_size, 1, "its 1-byte body");
        is_int(rtnl_walk_next(&w, &m, &e), 0, "then the end");
}

static void test_link(void)
{
        Buf b = {};
        size_t m0, info;
        RtnlMessage m;
        RtnlLink l;
        RtnlError e = RTNL_ERROR_NONE;
        char name[32];

        m0 = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);
        put_link(&b, 12, IFF_UP | IFF_LOWER_UP | IFF_BROADCAST);
        put_u32(&b, IFLA_MTU, 1500);
        put_str(&b, IFLA_IFNAME, "first");
        put_str(&b, IFLA_IFNAME, "veth-a.100"); /* the last one counts */
        put_attr(&b, 250, "unknown", 7);        /* skipped */
        info = nest_begin(&b, IFLA_LINKINFO);
        put_str(&b, IFLA_INFO_KIND, "veth");
        nest_end(&b, info);
        put_u32(&b, IFLA_OPERSTATE, 6);
        msg_end(&b, m0);
        m = only(&b);
        is_int(rtnl_parse_link(&m, &l, &e), 0, "a link message parses");
        is_int(l.ifindex, 12, "ifindex");
        is_int(l.flags, IFF_UP | IFF_LOWER_UP | IFF_BROADCAST, "flags");
        is_str(l.name, "veth-a.100", "name (the last IFLA_IFNAME)");
        is_str(l.kind, "veth", "kind from IFLA_LINKINFO/IFLA_INFO_KIND");
        is_int(l.family, AF_UNSPEC, "family");

        b = link_msg(3, "lo", 3);
        m = only(&b);
        is_int(rtnl_parse_link(&m, &l, &e), 0, "no IFLA_LINKINFO");
        is_str(l.kind, "", "kind is empty");

        /* A kind longer than the field is cut. */
        b = (Buf){};
        m0 = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);
        put_link(&b, 4, 0);
        put_str(&b, IFLA_IFNAME, "k");
        info = nest_begin(&b, IFLA_LINKINFO);
        put_str(&b, IFLA_INFO_KIND, "a-very-long-kind-name-indeed");
        nest_end(&b, info);
        msg_end(&b, m0);
        m = only(&b);
        is_int(rtnl_parse_link(&m, &l, &e), 0, "a long kind parses");
        is_str(l.kind, "a-very-long-kin", "cut to 15 characters");

        b = (Buf){};
        m0 = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);
        put_link(&b, 4, 0);
        put_str(&b, IFLA_IFNAME, "k");
        info = nest_begin(&b, IFLA_LINKINFO);
        put_attr(&b, IFLA_INFO_KIND, "veth", 4);
        nest_end(&b, info);
        msg_end(&b, m0);
        is_int(link_error(&b), RTNL_ERROR_STRING_UNTERMINATED, "IFLA_INFO_KIND without its NUL");

        b = (Buf){};
        m0 = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);
        put_link(&b, 4, 0);
        put_str(&b, IFLA_IFNAME, "k");
        info = nest_begin(&b, IFLA_LINKINFO);
        put_str(&b, IFLA_INFO_KIND, "veth");
        b.size -= 6; /* the nest ends 3 bytes into IFLA_INFO_KIND's 9 */
        nest_end(&b, info);
        b.size += 6;
        msg_end(&b, m0);
        is_int(link_error(&b), RTNL_ERROR_ATTRIBUTE_LENGTH,
               "a nested attribute past its nest's end");

        b = link_msg(5, "abcd", 4);
        is_int(link_error(&b), RTNL_ERROR_NAME_UNTERMINATED, "IFLA_IFNAME without its NUL");
        b = link_msg(5, "", 1);
        is_int(link_error(&b), RTNL_ERROR_NAME_EMPTY, "IFLA_IFNAME \"\"");
        b = link_msg(5, NULL, 0);
        put_attr(&b, IFLA_IFNAME, NULL, 0);
        msg_end(&b, 0);
        is_int(link_error(&b), RTNL_ERROR_NAME_UNTERMINATED, "a zero-length IFLA_IFNAME");
        memset(name, 'a', sizeof(name));
        name[16] = 0;
        b = link_msg(5, name, 17);
        is_int(link_error(&b), RTNL_ERROR_NAME_TOO_LONG, "a 16-character name");
        name[15] = 0;
        b = link_msg(5, name, 16);
        is_int(link_error(&b), RTNL_ERROR_NONE, "a 15-character name is fine");
        b = link_msg(5, "a\0bc", 5);
        is_int(link_error(&b), RTNL_ERROR_NONE, "bytes after the NUL are ignored");
        b = link_msg(5, NULL, 0);
        is_int(link_error(&b), RTNL_ERROR_NAME_MISSING, "no IFLA_IFNAME");
        b = link_msg(0, "x", 2);
        is_int(link_error(&b), RTNL_ERROR_IFINDEX, "ifindex 0");
        b = link_msg(-3, "x", 2);
        is_int(link_error(&b), RTNL_ERROR_IFINDEX, "a negative ifindex");

        b = (Buf){};
        m0 = msg_begin(&b, RTM_NEWLINK, 0, 0, 0);
        put(&b, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
        msg_end(&b, m0);
        is_int(link_error(&b), RTNL_ERROR_SHORT_BODY, "12 bytes are less than an ifinfomsg");

        b = link_msg(5, "x", 2);
        put_attr(&b, 250, NULL, 0);
        msg_end(&b, 0);
        is_int(link_error(&b), RTNL_ERROR_NONE, "a zero-length unknown attribute is skipped");
        b.data[b.size - 4] = 0; /* its rta_len: 0 */
        is_int(link_error(&b), RTNL_ERROR_ATTRIBUTE_LENGTH, "rta_len 0");
        b.data[b.size - 4] = 3;
        is_int(link_error(&b), RTNL_ERROR_ATTRIBUTE_LENGTH, "rta_len 3");
        b.data[b.size - 4] = 8;
        is_int(link_error(&b), RTNL_ERROR_ATTRIBUTE_LENGTH, "rta_len past the message's end");
        b.size -= 2;
        msg_end(&b, 0);
        is_int(link_error(&b), RTNL_ERROR_ATTRIBUTE_HEADER, "2 bytes left after the attributes");

        /* Attribute flags are not part of the type. */
        b = link_msg(5, NULL, 0);
        put_attr(&b, IFLA_IFNAME | NLA_F_NET_BYTEORDER, "nb", 3);
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_link(&m, &l, &e), 0, "IFLA_IFNAME with NLA_F_NET_BYTEORDER set");
        is_str(l.name, "nb", "still the name");
}

static Buf addr_msg(uint8_t family, uint8_t prefixlen, uint32_t ifindex, uint8_t flags)
{
        struct ifaddrmsg ifa = {.ifa_family = family,
                                .ifa_prefixlen = prefixlen,
                                .ifa_flags = flags,
                                .ifa_scope = RT_SCOPE_UNIVERSE,
                                .ifa_index = ifindex};
        Buf b = {};

        (void) msg_begin(&b, RTM_NEWADDR, 0, 0, 0);
        put(&b, &ifa, sizeof(ifa));
        msg_end(&b, 0);
        return b;
}

static void add_attr(Buf *b, uint16_t type, const void *p, size_t n)
{
        put_attr(b, type, p, n);
        msg_end(b, 0);
}

static RtnlError addr_error(const Buf *b)
{
        RtnlMessage m = only(b);
        RtnlAddress a;
        RtnlError e = RTNL_ERROR_NONE;

        if (rtnl_parse_address(&m, &a, &e) == 0)
                return RTNL_ERROR_NONE;
        return e;
}

static void test_address(void)
{
        uint8_t v4[4] = {10, 77, 0, 2}, peer[4] = {10, 77, 0, 1}, v6[16] = {0xfd, 0, 0, 0x77};
        uint8_t want[16] = {};
        uint32_t flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE;
        RtnlAddress a;
        RtnlMessage m;
        RtnlError e = RTNL_ERROR_NONE;
        Buf b;

        v6[15] = 2;
        b = addr_msg(AF_INET, 24, 3, IFA_F_PERMANENT);
        add_attr(&b, IFA_ADDRESS, peer, 4);
        add_attr(&b, IFA_LOCAL, v4, 4);
        add_attr(&b, IFA_LABEL, "ve0", 4);
        m = only(&b);
        is_int(rtnl_parse_address(&m, &a, &e), 0, "IPv4 with a peer parses");
        is_int(a.family, AF_INET, "family");
        is_int(a.prefixlen, 24, "prefix");
        is_int(a.ifindex, 3, "ifindex");
        is_int(a.flags, IFA_F_PERMANENT, "flags from ifa_flags");
        is_int(a.scope, RT_SCOPE_UNIVERSE, "scope");
        ok(a.has_local, "has a local address");
        memcpy(want, v4, 4);
        is_mem(a.local, 16, want, 16, "IFA_LOCAL, not the peer, zero-filled");

        b = addr_msg(AF_INET6, 64, 3, IFA_F_TENTATIVE);
        add_attr(&b, IFA_ADDRESS, v6, 16);
        add_attr(&b, IFA_FLAGS, &flags, 4);
        m = only(&b);
        is_int(rtnl_parse_address(&m, &a, &e), 0, "IPv6 with IFA_ADDRESS only parses");
        is_mem(a.local, 16, v6, 16, "IFA_ADDRESS is the local address");
        is_int(a.flags, flags, "IFA_FLAGS replaces ifa_flags (all 32 bits)");

        b = addr_msg(AF_PACKET, 200, 0, 0);
        add_attr(&b, IFA_ADDRESS, "xyz", 3);
        m = only(&b);
        is_int(rtnl_parse_address(&m, &a, &e), 0, "another family: decoded, not checked");
        ok(!a.has_local, "without a local address");

        b = addr_msg(AF_INET, 33, 3, 0);
        add_attr(&b, IFA_LOCAL, v4, 4);
        is_int(addr_error(&b), RTNL_ERROR_PREFIX_LENGTH, "IPv4 /33");
        b = addr_msg(AF_INET6, 129, 3, 0);
        add_attr(&b, IFA_ADDRESS, v6, 16);
        is_int(addr_error(&b), RTNL_ERROR_PREFIX_LENGTH, "IPv6 /129");
        b = addr_msg(AF_INET, 24, 0, 0);
        add_attr(&b, IFA_LOCAL, v4, 4);
        is_int(addr_error(&b), RTNL_ERROR_IFINDEX, "ifindex 0");
        b = addr_msg(AF_INET, 24, 0x80000000u, 0);
        add_attr(&b, IFA_LOCAL, v4, 4);
        is_int(addr_error(&b), RTNL_ERROR_IFINDEX, "ifindex above INT_MAX");
        b = addr_msg(AF_INET, 24, 3, 0);
        is_int(addr_error(&b), RTNL_ERROR_ADDRESS_MISSING, "no address");
        add_attr(&b, IFA_LOCAL, v6, 16);
        is_int(addr_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 16-byte IPv4 address");
        b = addr_msg(AF_INET6, 64, 3, 0);
        add_attr(&b, IFA_ADDRESS, v4, 4);
        is_int(addr_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 4-byte IPv6 address");
        b = addr_msg(AF_INET6, 64, 3, 0);
        add_attr(&b, IFA_ADDRESS, NULL, 0);
        is_int(addr_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a zero-length address");
        b = addr_msg(AF_INET, 24, 3, 0);
        add_attr(&b, IFA_LOCAL, v4, 4);
        add_attr(&b, IFA_ADDRESS, v4, 3);
        is_int(addr_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 3-byte peer");
        b = addr_msg(AF_INET, 24, 3, 0);
        add_attr(&b, IFA_LOCAL, v4, 4);
        add_attr(&b, IFA_FLAGS, &flags, 2);
        is_int(addr_error(&b), RTNL_ERROR_ATTRIBUTE_SIZE, "a 2-byte IFA_FLAGS");

        b = (Buf){};
        (void) msg_begin(&b, RTM_NEWADDR, 0, 0, 0);
        put(&b, "\2\0\0\0", 4);
        msg_end(&b, 0);
        is_int(addr_error(&b), RTNL_ERROR_SHORT_BODY, "4 bytes are less than an ifaddrmsg");
}

static Buf route_msg(uint8_t family, uint8_t dst_len, uint8_t table)
{
        struct rtmsg rtm = {.rtm_family = family,
                            .rtm_dst_len = dst_len,
                            .rtm_table = table,
                            .rtm_protocol = RTPROT_BOOT,
                            .rtm_scope = RT_SCOPE_UNIVERSE,
                            .rtm_type = RTN_UNICAST};
        Buf b = {};

        (void) msg_begin(&b, RTM_NEWROUTE, 0, 0, 0);
        put(&b, &rtm, sizeof(rtm));
        msg_end(&b, 0);
        return b;
}

static RtnlError route_error(const Buf *b)
{
        RtnlMessage m = only(b);
        RtnlRoute r;
        RtnlError e = RTNL_ERROR_NONE;

        if (rtnl_parse_route(&m, &r, &e) == 0)
                return RTNL_ERROR_NONE;
        return e;
}

/* An RTA_MULTIPATH payload: hops of (ifindex, gateway or NULL). */
static size_t multipath(uint8_t *out, const int *ifindex, const uint8_t (*gw)[16], size_t gw_size,
                        size_t n)
{
        size_t size = 0;

        for (size_t i = 0; i < n; i++) {
                struct rtnexthop nh = {.rtnh_len = sizeof(nh), .rtnh_ifindex = ifindex[i]};
                struct rtattr a = {.rta_len = (unsigned short) (sizeof(a) + gw_size),
                                   .rta_type = RTA_GATEWAY};

                if (gw && gw_size)
                        nh.rtnh_len += RTA_ALIGN(a.rta_len);
                memcpy(out + size, &nh, sizeof(nh));
                if (gw && gw_size) {
                        memcpy(out + size + sizeof(nh), &a, sizeof(a));
                        memset(out + size + sizeof(nh) + sizeof(a), 0, RTA_ALIGN(gw_size));
                        memcpy(out + size + sizeof(nh) + sizeof(a), gw[i], gw_size);
                }
                size += nh.rtnh_len;
        }
        return size;
}

static void test_route(void)
{
        uint8_t gw4[4] = {10, 77, 0, 1}, gw6[16] = {0xfd, 0, 0, 0x77}, want[16] = {};
        uint8_t hops_gw[2][16] = {{10, 0, 0, 1}, {10, 0, 0, 2}}, mp[256];
        int hops_if[2] = {7, 8};
        RtnlRoute r;
        RtnlMessage m;
        RtnlError e = RTNL_ERROR_NONE;
        size_t n;
        Buf b;

        gw6[15] = 1;
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_GATEWAY, gw4, 4);
        put_u32(&b, RTA_OIF, 3);
        put_u32(&b, RTA_PRIORITY, 100);
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_route(&m, &r, &e), 0, "an IPv4 default route parses");
        is_int(r.family, AF_INET, "family");
        is_int(r.dst_len, 0, "a default route");
        is_int(r.table, RT_TABLE_MAIN, "table from rtm_table");
        is_int(r.type, RTN_UNICAST, "unicast");
        is_int(r.protocol, RTPROT_BOOT, "protocol");
        is_int(r.priority, 100, "RTA_PRIORITY");
        is_int(r.n_nexthops, 1, "one hop");
        is_int(r.ifindex, 3, "RTA_OIF");
        ok(r.has_gateway, "a gateway");
        memcpy(want, gw4, 4);
        is_mem(r.gateway, 16, want, 16, "RTA_GATEWAY, zero-filled");

        b = route_msg(AF_INET6, 0, RT_TABLE_UNSPEC);
        put_u32(&b, RTA_TABLE, 1000);
        put_u32(&b, RTA_OIF, 4);
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_route(&m, &r, &e), 0, "an IPv6 route in table 1000 parses");
        is_int(r.table, 1000, "RTA_TABLE replaces rtm_table");
        is_int(r.priority, 0, "no RTA_PRIORITY: 0");
        ok(!r.has_gateway, "no gateway");
        is_int(r.ifindex, 4, "RTA_OIF");

        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        is_int(route_error(&b), RTNL_ERROR_NONE, "a route without hops parses");
        m = only(&b);
        (void) rtnl_parse_route(&m, &r, &e);
        is_int(r.n_nexthops, 0, "with no hop");
        is_int(r.ifindex, 0, "and no interface");

        n = multipath(mp, hops_if, (const uint8_t(*)[16]) hops_gw, 4, 2);
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, n);
        m = only(&b);
        is_int(rtnl_parse_route(&m, &r, &e), 0, "a multipath route parses");
        is_int(r.n_nexthops, 2, "two hops");
        is_int(r.ifindex, 7, "the first hop's interface");
        memset(want, 0, sizeof(want));
        memcpy(want, hops_gw[0], 4);
        is_mem(r.gateway, 16, want, 16, "the first hop's gateway");

        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, NULL, 0);
        put_u32(&b, RTA_OIF, 9);
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_route(&m, &r, &e), 0, "an empty RTA_MULTIPATH parses");
        is_int(r.ifindex, 9, "and RTA_OIF stands for the hop");

        mp[0] = 4; /* the first hop's rtnh_len shorter than its header */
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, n);
        is_int(route_error(&b), RTNL_ERROR_NEXTHOP_LENGTH, "rtnh_len 4");
        mp[0] = 200;
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, n);
        is_int(route_error(&b), RTNL_ERROR_NEXTHOP_LENGTH, "rtnh_len past RTA_MULTIPATH's end");
        n = multipath(mp, hops_if, (const uint8_t(*)[16]) hops_gw, 4, 2);
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        mp[16 + 8] = 12; /* the second hop's RTA_GATEWAY: rta_len past the hop */
        add_attr(&b, RTA_MULTIPATH, mp, n);
        is_int(route_error(&b), RTNL_ERROR_ATTRIBUTE_LENGTH,
               "the second hop's gateway longer than the hop");
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, n - 2);
        is_int(route_error(&b), RTNL_ERROR_NEXTHOP_LENGTH, "the second hop cut short");
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, 4);
        is_int(route_error(&b), RTNL_ERROR_NEXTHOP_LENGTH, "4 bytes of RTA_MULTIPATH");
        n = multipath(mp, hops_if, (const uint8_t(*)[16]) hops_gw, 16, 2);
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_MULTIPATH, mp, n);
        is_int(route_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 16-byte IPv4 gateway in a hop");

        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_GATEWAY, gw6, 16);
        is_int(route_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 16-byte IPv4 gateway");
        b = route_msg(AF_INET6, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_GATEWAY, gw4, 4);
        is_int(route_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 4-byte IPv6 gateway");
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_OIF, gw4, 2);
        is_int(route_error(&b), RTNL_ERROR_ATTRIBUTE_SIZE, "a 2-byte RTA_OIF");
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_TABLE, NULL, 0);
        is_int(route_error(&b), RTNL_ERROR_ATTRIBUTE_SIZE, "a zero-length RTA_TABLE");
        b = route_msg(AF_INET, 0, RT_TABLE_MAIN);
        add_attr(&b, RTA_PRIORITY, mp, 8);
        is_int(route_error(&b), RTNL_ERROR_ATTRIBUTE_SIZE, "an 8-byte RTA_PRIORITY");
        b = route_msg(AF_INET, 33, RT_TABLE_MAIN);
        is_int(route_error(&b), RTNL_ERROR_PREFIX_LENGTH, "an IPv4 /33 destination");
        b = route_msg(AF_INET, 8, RT_TABLE_MAIN);
        add_attr(&b, RTA_DST, gw6, 16);
        is_int(route_error(&b), RTNL_ERROR_ADDRESS_SIZE, "a 16-byte IPv4 destination");
        b = route_msg(AF_MPLS, 20, RT_TABLE_MAIN);
        add_attr(&b, RTA_GATEWAY, "abc", 3);
        is_int(route_error(&b), RTNL_ERROR_NONE, "another family's gateway is not checked");

        b = (Buf){};
        (void) msg_begin(&b, RTM_NEWROUTE, 0, 0, 0);
        put(&b, "\2\0\0\0\0\0\0\0", 8);
        msg_end(&b, 0);
        is_int(route_error(&b), RTNL_ERROR_SHORT_BODY, "8 bytes are less than an rtmsg");
}

static void test_status(void)
{
        struct nlmsgerr err = {.error = -EBUSY};
        int32_t v;
        int error = 1;
        RtnlMessage m;
        RtnlError e = RTNL_ERROR_NONE;
        Buf b = {};

        (void) msg_begin(&b, NLMSG_ERROR, 0, 5, 77);
        put(&b, &err, sizeof(err));
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_status(&m, &error, &e), 0, "NLMSG_ERROR parses");
        is_int(error, -EBUSY, "the kernel's errno");

        b.size -= 4;
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_status(&m, &error, &e), -EBADMSG,
               "NLMSG_ERROR without the whole quoted header");
        is_int(e, RTNL_ERROR_SHORT_BODY, "short body");

        err.error = 5;
        b = (Buf){};
        (void) msg_begin(&b, NLMSG_ERROR, 0, 5, 77);
        put(&b, &err, sizeof(err));
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_status(&m, &error, &e), -EBADMSG, "a positive error");
        is_int(e, RTNL_ERROR_ERRNO_RANGE, "is no errno");

        b = (Buf){};
        (void) msg_begin(&b, NLMSG_DONE, NLM_F_MULTI, 5, 77);
        msg_end(&b, 0);
        m = only(&b);
        error = 1;
        is_int(rtnl_parse_status(&m, &error, &e), 0, "an empty NLMSG_DONE parses");
        is_int(error, 0, "as success");

        v = -EINTR;
        b = (Buf){};
        (void) msg_begin(&b, NLMSG_DONE, NLM_F_MULTI | NLM_F_DUMP_INTR, 5, 77);
        put(&b, &v, sizeof(v));
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_status(&m, &error, &e), 0, "NLMSG_DONE with a status parses");
        is_int(error, -EINTR, "its errno");
        ok(m.flags & NLM_F_DUMP_INTR, "NLM_F_DUMP_INTR is seen");

        v = -5000;
        b = (Buf){};
        (void) msg_begin(&b, NLMSG_DONE, NLM_F_MULTI, 5, 77);
        put(&b, &v, sizeof(v));
        msg_end(&b, 0);
        m = only(&b);
        is_int(rtnl_parse_status(&m, &error, &e), -EBADMSG, "-5000");
        is_int(e, RTNL_ERROR_ERRNO_RANGE, "is no errno");
}

/* A bad message amid good ones costs only itself. */
static void test_neighbours(void)
{
        Buf b = {};
        RtnlWalk w;
        RtnlMessage m;
        RtnlLink l;
        RtnlError e = RTNL_ERROR_NONE;
        size_t start;
        int parsed = 0, refused = 0, r;
        char names[64] = "";

        for (int i = 1; i <= 5; i++) {
                char name[8];

                start = msg_begin(&b, RTM_NEWLINK, NLM_F_MULTI, 1, 2);
                put_link(&b, i, 0);
                snprintf(name, sizeof(name), "l%d", i);
                if (i == 2)
                        put_attr(&b, IFLA_IFNAME, name, strlen(name)); /* no NUL */
                else if (i == 4) {
                        struct rtattr a = {.rta_len = 200, .rta_type = IFLA_IFNAME};

                        put(&b, &a, sizeof(a));
                } else
                        put_str(&b, IFLA_IFNAME, name);
                msg_end(&b, start);
        }
        rtnl_walk_init(&w, b.data, b.size);
        while ((r = rtnl_walk_next(&w, &m, &e)) > 0) {
                if (rtnl_parse_link(&m, &l, &e) < 0) {
                        refused++;
                        continue;
                }
                parsed++;
                strcat(names, l.name);
        }
        is_int(r, 0, "the walk reaches the end");
        is_int(parsed, 3, "three good links");
        is_int(refused, 2, "two refused");
        is_str(names, "l1l3l5", "the good ones, in order");
}

static void test_unaligned(void)
{
        Buf b = link_msg(9, "odd", 4);
        uint8_t *copy = malloc(b.size + 1);
        RtnlWalk w;
        RtnlMessage m;
        RtnlLink l;
        RtnlError e = RTNL_ERROR_NONE;

        memcpy(copy + 1, b.data, b.size);
        rtnl_walk_init(&w, copy + 1, b.size);
        is_int(rtnl_walk_next(&w, &m, &e), 1, "a message at an odd address is walked");
        is_int(rtnl_parse_link(&m, &l, &e), 0, "and parsed");
        is_str(l.name, "odd", "correctly");
        free(copy);
}

static void test_error_strings(void)
{
        bool all = true;

        for (int i = 0; i < _RTNL_ERROR_MAX; i++)
                for (int j = 0; j < i; j++)
                        if (!rtnl_error_to_string(i) ||
                            streq(rtnl_error_to_string(i), rtnl_error_to_string(j)))
                                all = false;
        ok(all, "every error has its own text");
        is_str(rtnl_error_to_string(_RTNL_ERROR_MAX), "unknown error", "out of range");
}

/* The kernel's side. */

typedef struct Dump {
        uint8_t datagrams[64][32768];
        size_t sizes[64];
        size_t n;
} Dump;

static Dump dumps[3];

static int netlink_socket(uint32_t groups, uint32_t *ret_port)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = groups};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &len) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_port = sa.nl_pid;
        return fd;
}

/* Send a dump request and keep every datagram until its NLMSG_DONE; false
 * when that failed or a message did not answer the request. */
static bool dump(int fd, uint32_t port, uint16_t type, uint32_t seq, Dump *d)
{
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        uint8_t req[RTNL_DUMP_REQUEST_MAX];
        int n = rtnl_build_dump_request(type, seq, req, sizeof(req));
        bool done = false, answers = true;

        if (n < 0 ||
            sendto(fd, req, (size_t) n, 0, (struct sockaddr *) &kernel, sizeof(kernel)) != n)
                return false;
        d->n = 0;
        while (!done && d->n < ELEMENTSOF(d->datagrams)) {
                ssize_t got = recv(fd, d->datagrams[d->n], sizeof(d->datagrams[0]), 0);
                RtnlWalk w;
                RtnlMessage m;
                RtnlError e;

                if (got <= 0)
                        return false;
                d->sizes[d->n] = (size_t) got;
                rtnl_walk_init(&w, d->datagrams[d->n], (size_t) got);
                while (rtnl_walk_next(&w, &m, &e) > 0) {
                        if (!rtnl_message_answers(&m, seq, port))
                                answers = false;
                        if (m.type == NLMSG_DONE || m.type == NLMSG_ERROR)
                                done = true;
                }
                d->n++;
        }
        return done && answers;
}

/* Walk every datagram of d, decode each message of type want (+1 for its DEL) with decode. */
typedef int (*Decode)(const RtnlMessage *m, void *out, RtnlError *e);

static size_t decode_all(const Dump *d, uint16_t want, Decode decode, void *out, size_t out_size,
                         size_t max, size_t *ret_refused)
{
        size_t n = 0, refused = 0;

        for (size_t i = 0; i < d->n; i++) {
                RtnlWalk w;
                RtnlMessage m;
                RtnlError e = RTNL_ERROR_NONE;
                int r;

                rtnl_walk_init(&w, d->datagrams[i], d->sizes[i]);
                while ((r = rtnl_walk_next(&w, &m, &e)) > 0) {
                        int k;

                        if (m.type == NLMSG_DONE) {
                                int status = 1;

                                k = rtnl_parse_status(&m, &status, &e);
                                if (k < 0 || status != 0)
                                        refused++;
                                continue;
                        }
                        if (m.type != want)
                                continue;
                        if (n >= max) {
                                refused++;
                                continue;
                        }
                        k = decode(&m, (uint8_t *) out + n * out_size, &e);
                        if (k < 0) {
                                tap_diag("refused: %s", rtnl_error_to_string(e));
                                refused++;
                        } else {
                                n++;
                        }
                }
                if (r < 0)
                        refused++;
        }
        *ret_refused = refused;
        return n;
}

static int decode_link(const RtnlMessage *m, void *out, RtnlError *e)
{
        return rtnl_parse_link(m, out, e);
}

static int decode_address(const RtnlMessage *m, void *out, RtnlError *e)
{
        return rtnl_parse_address(m, out, e);
}

static int decode_route(const RtnlMessage *m, void *out, RtnlError *e)
{
        return rtnl_parse_route(m, out, e);
}

static RtnlLink links[512];
static RtnlAddress addrs[1024];
static RtnlRoute routes[4096];

/* What the dumps say against what another interface of the kernel says. */
typedef struct Comparison {
        int socket_error;            /* < 0: no NETLINK_ROUTE socket */
        bool dumped;                 /* all three dumps ended well and answered us */
        size_t links, addrs, routes; /* decoded */
        size_t refused;              /* messages (or datagram rests) refused */
        size_t kernel_links, links_matched;
        bool loopback;
        size_t kernel_addrs, inet_addrs, addrs_matched;
        size_t kernel_routes, default_routes, routes_matched;
} Comparison;

static void compare_links(Comparison *c)
{
        struct if_nameindex *idx = if_nameindex(), *p;

        for (p = idx; p && p->if_index; p++) {
                c->kernel_links++;
                for (size_t i = 0; i < c->links; i++)
                        if (links[i].ifindex == (int) p->if_index &&
                            streq(links[i].name, p->if_name)) {
                                c->links_matched++;
                                break;
                        }
        }
        if (idx)
                if_freenameindex(idx);
        for (size_t i = 0; i < c->links; i++)
                if (links[i].ifindex == 1 && streq(links[i].name, "lo") &&
                    (links[i].flags & IFF_LOOPBACK))
                        c->loopback = true;
}

static unsigned mask_prefix(const struct sockaddr *sa)
{
        const uint8_t *p;
        size_t size;
        unsigned bits = 0;

        if (!sa)
                return 0;
        if (sa->sa_family == AF_INET) {
                p = (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr;
                size = 4;
        } else {
                p = (const uint8_t *) &((const struct sockaddr_in6 *) sa)->sin6_addr;
                size = 16;
        }
        for (size_t i = 0; i < size; i++)
                bits += (unsigned) __builtin_popcount(p[i]);
        return bits;
}

static void compare_addresses(Comparison *c)
{
        struct ifaddrs *list = NULL, *ifa;

        if (getifaddrs(&list) < 0)
                return;
        for (ifa = list; ifa; ifa = ifa->ifa_next) {
                const struct sockaddr *sa = ifa->ifa_addr;
                uint8_t want[16] = {};
                unsigned ifindex;

                if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
                        continue;
                c->kernel_addrs++;
                if (sa->sa_family == AF_INET)
                        memcpy(want, &((const struct sockaddr_in *) sa)->sin_addr, 4);
                else
                        memcpy(want, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
                ifindex = if_nametoindex(ifa->ifa_name); /* 0 for an IPv4 label */
                for (size_t i = 0; i < c->addrs; i++)
                        if (addrs[i].family == sa->sa_family &&
                            memcmp(addrs[i].local, want, 16) == 0 &&
                            addrs[i].prefixlen == mask_prefix(ifa->ifa_netmask) &&
                            (ifindex == 0 || addrs[i].ifindex == (int) ifindex)) {
                                c->addrs_matched++;
                                break;
                        }
        }
        freeifaddrs(list);
        for (size_t i = 0; i < c->addrs; i++)
                if (addrs[i].family == AF_INET || addrs[i].family == AF_INET6)
                        c->inet_addrs++;
}

static bool is_default_main(const RtnlRoute *r)
{
        return r->family == AF_INET && r->table == RT_TABLE_MAIN && r->type == RTN_UNICAST &&
               r->dst_len == 0;
}

/* /proc/net/route: the main table's IPv4 routes, the first hop of each. */
static void compare_default_routes(Comparison *c)
{
        FILE *f = fopen("/proc/net/route", "re");
        char line[512];

        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char name[IF_NAMESIZE + 8];
                unsigned dst, gw, flags, refcnt, use, metric, mask;
                int ifindex;

                if (sscanf(line, "%23s %x %x %x %u %u %u %x", name, &dst, &gw, &flags, &refcnt,
                           &use, &metric, &mask) != 8 ||
                    dst != 0 || mask != 0 || !(flags & RTF_UP) || (flags & RTF_REJECT))
                        continue;
                c->kernel_routes++;
                ifindex = (int) if_nametoindex(name);
                for (size_t i = 0; i < c->routes; i++) {
                        const RtnlRoute *r = &routes[i];

                        if (is_default_main(r) && r->ifindex == ifindex && r->priority == metric &&
                            r->has_gateway == !!(flags & RTF_GATEWAY) &&
                            (!r->has_gateway || memcmp(r->gateway, &gw, 4) == 0)) {
                                c->routes_matched++;
                                break;
                        }
                }
        }
        fclose(f);
        for (size_t i = 0; i < c->routes; i++)
                if (is_default_main(&routes[i]))
                        c->default_routes++;
}

static bool compare(Comparison *c, uint32_t seq)
{
        static const uint16_t types[] = {RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE};
        size_t refused;
        uint32_t port;
        int fd = netlink_socket(0, &port);

        *c = (Comparison){.dumped = fd >= 0, .socket_error = MIN(fd, 0)};
        for (size_t i = 0; i < ELEMENTSOF(types) && fd >= 0; i++)
                if (!dump(fd, port, types[i], seq + (uint32_t) i, &dumps[i]))
                        c->dumped = false;
        if (fd >= 0)
                close(fd);
        if (!c->dumped)
                return false;
        c->links = decode_all(&dumps[0], RTM_NEWLINK, decode_link, links, sizeof(links[0]),
                              ELEMENTSOF(links), &refused);
        c->refused += refused;
        c->addrs = decode_all(&dumps[1], RTM_NEWADDR, decode_address, addrs, sizeof(addrs[0]),
                              ELEMENTSOF(addrs), &refused);
        c->refused += refused;
        c->routes = decode_all(&dumps[2], RTM_NEWROUTE, decode_route, routes, sizeof(routes[0]),
                               ELEMENTSOF(routes), &refused);
        c->refused += refused;
        compare_links(c);
        compare_addresses(c);
        compare_default_routes(c);
        return c->refused == 0 && c->links == c->kernel_links &&
               c->links_matched == c->kernel_links && c->loopback &&
               c->inet_addrs == c->kernel_addrs && c->addrs_matched == c->kernel_addrs &&
               c->default_routes == c->kernel_routes && c->routes_matched == c->kernel_routes;
}

/* Every prefix of a real datagram: the walk and the decoders stay in bounds,
 * and a cut that is not at a message boundary is refused. */
static void test_truncations(const Dump *d)
{
        const uint8_t *data = d->datagrams[0];
        size_t size = d->sizes[0], boundaries_ok = 0, cuts_refused = 0, cuts = 0, ends = 0;

        for (size_t cut = 0; cut <= size; cut++) {
                uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overruns */
                RtnlWalk w;
                RtnlMessage m;
                RtnlError e = RTNL_ERROR_NONE;
                size_t end = 0;
                int r;

                memcpy(copy, data, cut);
                rtnl_walk_init(&w, copy, cut);
                while ((r = rtnl_walk_next(&w, &m, &e)) > 0) {
                        RtnlLink l;
                        RtnlAddress a;
                        RtnlRoute rt;
                        int status;

                        (void) rtnl_parse_link(&m, &l, &e);
                        (void) rtnl_parse_address(&m, &a, &e);
                        (void) rtnl_parse_route(&m, &rt, &e);
                        (void) rtnl_parse_status(&m, &status, &e);
                        end = (size_t) (m.body - copy) + m.body_size;
                }
                if (r == 0) {
                        ends++;
                        if (end <= cut && cut <= (end + 3) / 4 * 4)
                                boundaries_ok++;
                } else {
                        cuts++;
                        if (e == RTNL_ERROR_SHORT_HEADER || e == RTNL_ERROR_MESSAGE_LENGTH)
                                cuts_refused++;
                }
                free(copy);
        }
        tap_diag("a %zu-byte datagram: %zu cuts walked to the end, %zu refused", size, ends, cuts);
        cmp_int(ends, >=, 2, "the empty and the whole datagram walk to the end");
        is_int(boundaries_ok, ends, "only at message boundaries");
        is_int(cuts_refused, cuts, "every other cut is refused as a short header or length");
}

/* This machine's links, addresses and routes. Another program may change them
 * between our dump and the look that we compare it with: up to 5 tries. */
static void test_kernel_dumps(void)
{
        Comparison c;
        int tries = 1;

        while (!compare(&c, 1000u * (uint32_t) tries) && c.dumped && tries < 5)
                tries++;
        if (c.socket_error < 0) {
                tap_skip("kernel dumps", "no NETLINK_ROUTE socket");
                return;
        }
        tap_diag("%zu links, %zu addresses, %zu routes (try %d)", c.links, c.addrs, c.routes,
                 tries);
        ok(c.dumped, "link, address and route dumps end with NLMSG_DONE and every message "
                     "answers our request and port");
        is_int(c.refused, 0, "every message of the dumps is decoded");
        is_int(c.links, c.kernel_links, "as many links as if_nameindex()");
        is_int(c.links_matched, c.kernel_links, "each with the same index and name");
        ok(c.loopback, "lo is ifindex 1 with IFF_LOOPBACK");
        is_int(c.inet_addrs, c.kernel_addrs, "as many addresses as getifaddrs()");
        is_int(c.addrs_matched, c.kernel_addrs, "each with the same interface, address and prefix");
        tap_diag("%zu IPv4 default routes in the main table", c.kernel_routes);
        is_int(c.default_routes, c.kernel_routes, "as many IPv4 default routes as /proc/net/route");
        is_int(c.routes_matched, c.kernel_routes,
               "each with the same interface, gateway and metric");
        if (dumps[0].n > 0)
                test_truncations(&dumps[0]);
}

/*
 * Events: in a network namespace of our own, bring lo up; the kernel then
 * announces the link, 127.0.0.1/8, ::1/128 and their routes.
 */
static void test_kernel_events(void)
{
        struct ifreq ifr = {};
        uint8_t buf[32768], v4[16] = {127, 0, 0, 1}, v6[16] = {};
        bool link_up = false, addr4 = false, addr6 = false, route4 = false;
        uint64_t deadline;
        uint32_t port;
        int fd, s;

        v6[15] = 1;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0 && unshare(CLONE_NEWNET) < 0) {
                tap_skip("kernel events", "no network namespace of our own (unshare)");
                return;
        }
        fd = netlink_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
                                RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE,
                            &port);
        ok(fd >= 0, "a subscribed NETLINK_ROUTE socket in the new namespace");
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        strcpy(ifr.ifr_name, "lo");
        ok(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "lo's flags");
        ifr.ifr_flags |= IFF_UP;
        ok(ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "lo set up");
        close(s);
        if (fd < 0)
                return;
        /* The kernel sends them while it brings lo up; wait up to 10 s anyway. */
        deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (!(link_up && addr4 && addr6 && route4)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                ssize_t n;
                RtnlWalk w;
                RtnlMessage m;
                RtnlError e;

                if (now >= deadline ||
                    poll(&p, 1, (int) ((deadline - now) / USEC_PER_MSEC + 1)) <= 0)
                        break;
                n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0)
                        continue;
                rtnl_walk_init(&w, buf, (size_t) n);
                while (rtnl_walk_next(&w, &m, &e) > 0) {
                        RtnlLink l;
                        RtnlAddress a;
                        RtnlRoute r;

                        if (m.type == RTM_NEWLINK && rtnl_parse_link(&m, &l, &e) == 0 &&
                            l.ifindex == 1 && streq(l.name, "lo") && (l.flags & IFF_UP))
                                link_up = true;
                        if (m.type == RTM_NEWADDR && rtnl_parse_address(&m, &a, &e) == 0 &&
                            a.ifindex == 1) {
                                if (a.family == AF_INET && a.prefixlen == 8 &&
                                    memcmp(a.local, v4, 16) == 0 && a.scope == RT_SCOPE_HOST)
                                        addr4 = true;
                                if (a.family == AF_INET6 && a.prefixlen == 128 &&
                                    memcmp(a.local, v6, 16) == 0 && (a.flags & IFA_F_PERMANENT))
                                        addr6 = true;
                        }
                        if (m.type == RTM_NEWROUTE && rtnl_parse_route(&m, &r, &e) == 0 &&
                            r.family == AF_INET && r.table == RT_TABLE_LOCAL &&
                            r.type == RTN_LOCAL && r.dst_len == 32 && r.ifindex == 1)
                                route4 = true;
                }
        }
        close(fd);
        ok(link_up, "RTM_NEWLINK: lo (1) is up");
        ok(addr4, "RTM_NEWADDR: 127.0.0.1/8 on lo, scope host");
        ok(addr6, "RTM_NEWADDR: ::1/128 on lo, permanent");
        ok(route4, "RTM_NEWROUTE: the local table's 127.0.0.1/32 on lo");
}

int main(void)
{
        tap_init();
        test_dump_request();
        test_walk();
        test_link();
        test_address();
        test_route();
        test_status();
        test_neighbours();
        test_unaligned();
        test_error_strings();
        test_kernel_dumps();
        test_kernel_events();
        return tap_done();
}

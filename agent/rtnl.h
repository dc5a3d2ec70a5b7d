/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink messages, read and written without a library: walking a datagram
 * of netlink messages, decoding the link, address and route messages the
 * netlink hook (netlink.c) uses, and building its dump requests. Pure: no
 * I/O, no allocation, no logging; unit tested (tests/unit/test-rtnl.c) and
 * fuzzed (fuzz/fuzz-rtnl.c).
 *
 * Nothing is trusted: every length is checked against what is left before it
 * is used, and nothing is read in place (memcpy), so any byte string is safe
 * input whatever its alignment. A message whose own length is wrong ends the
 * walk, since the next one cannot be found; a message whose body is malformed
 * is refused alone, with the reason, and the walk goes on with the next.
 */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a datagram or a message was refused (rtnl_error_to_string() for the log). */
typedef enum RtnlError {
        RTNL_ERROR_NONE,
        RTNL_ERROR_SHORT_HEADER,        /* fewer bytes left than a message header */
        RTNL_ERROR_MESSAGE_LENGTH,      /* nlmsg_len shorter than its header or past the end */
        RTNL_ERROR_SHORT_BODY,          /* shorter than its fixed header (ifinfomsg, ...) */
        RTNL_ERROR_ATTRIBUTE_HEADER,    /* fewer bytes left than an attribute header */
        RTNL_ERROR_ATTRIBUTE_LENGTH,    /* rta_len shorter than its header or past the end */
        RTNL_ERROR_ATTRIBUTE_SIZE,      /* a payload of the wrong size for its type */
        RTNL_ERROR_NAME_MISSING,        /* a link without IFLA_IFNAME */
        RTNL_ERROR_NAME_UNTERMINATED,   /* IFLA_IFNAME without its NUL */
        RTNL_ERROR_NAME_EMPTY,          /* IFLA_IFNAME "" */
        RTNL_ERROR_NAME_TOO_LONG,       /* IFLA_IFNAME of IF_NAMESIZE characters or more */
        RTNL_ERROR_STRING_UNTERMINATED, /* IFLA_INFO_KIND without its NUL */
        RTNL_ERROR_IFINDEX,             /* an interface index of 0, or above INT_MAX */
        RTNL_ERROR_PREFIX_LENGTH,       /* longer than the family's address */
        RTNL_ERROR_ADDRESS_MISSING,     /* an address message without IFA_LOCAL or IFA_ADDRESS */
        RTNL_ERROR_ADDRESS_SIZE,        /* an address not 4 (inet) or 16 (inet6) bytes long */
        RTNL_ERROR_NEXTHOP_LENGTH,      /* an RTA_MULTIPATH entry's rtnh_len out of bounds */
        RTNL_ERROR_ERRNO_RANGE, /* NLMSG_ERROR or NLMSG_DONE with a value that is no -errno */
        _RTNL_ERROR_MAX,
} RtnlError;

const char *rtnl_error_to_string(RtnlError e);

/* One netlink message of a datagram; body points into the datagram. */
typedef struct RtnlMessage {
        uint16_t type; /* NLMSG_* or RTM_* */
        uint16_t flags;
        uint32_t seq;
        uint32_t pid;
        const uint8_t *body; /* after the nlmsghdr */
        size_t body_size;
} RtnlMessage;

typedef struct RtnlWalk {
        const uint8_t *data;
        size_t size;
        size_t offset;
} RtnlWalk;

void rtnl_walk_init(RtnlWalk *w, const void *data, size_t size);
/*
 * The next message: 1 with *ret filled, 0 at the end of the datagram, -EBADMSG
 * when what is left cannot be walked (*ret_error says why; the walk is over).
 */
int rtnl_walk_next(RtnlWalk *w, RtnlMessage *ret, RtnlError *ret_error);

/* Whether m belongs to our request numbered seq, sent from port_id: a part of
 * its dump, its NLMSG_DONE or its NLMSG_ERROR. */
bool rtnl_message_answers(const RtnlMessage *m, uint32_t seq, uint32_t port_id);

/*
 * The decoders below take a message of their types, return 0 with *ret
 * filled, or -EBADMSG with the reason in *ret_error (may be NULL; *ret is not
 * written then). Attributes they do not know are skipped; an attribute given
 * twice counts as its last instance.
 */

/* RTM_NEWLINK, RTM_DELLINK. */
typedef struct RtnlLink {
        uint8_t family;         /* AF_UNSPEC, or AF_BRIDGE for a bridge port's view */
        int ifindex;            /* > 0 */
        uint32_t flags;         /* IFF_* */
        char name[IF_NAMESIZE]; /* IFLA_IFNAME, required: 1 to 15 characters */
        char kind[16];          /* IFLA_LINKINFO/IFLA_INFO_KIND, cut to 15 characters; "" without */
} RtnlLink;
int rtnl_parse_link(const RtnlMessage *m, RtnlLink *ret, RtnlError *ret_error);

/*
 * RTM_NEWADDR, RTM_DELADDR. For AF_INET and AF_INET6, ifindex > 0, the prefix
 * fits and the local address is there with the family's size; other families
 * are decoded as far as the fixed header (has_local false).
 */
typedef struct RtnlAddress {
        uint8_t family;
        uint8_t prefixlen;
        uint8_t scope;  /* RT_SCOPE_* */
        uint32_t flags; /* IFA_FLAGS when given (all 32 bits), else ifa_flags */
        int ifindex;
        bool has_local;
        uint8_t local[16]; /* IFA_LOCAL, else IFA_ADDRESS (IPv6 sends only that) */
} RtnlAddress;
int rtnl_parse_address(const RtnlMessage *m, RtnlAddress *ret, RtnlError *ret_error);

/*
 * RTM_NEWROUTE, RTM_DELROUTE. The first next hop stands for the route: the
 * first entry of RTA_MULTIPATH when it has one, else RTA_OIF and RTA_GATEWAY.
 * Gateways are checked and copied for AF_INET and AF_INET6 only.
 */
typedef struct RtnlRoute {
        uint8_t family;
        uint8_t dst_len; /* 0: a default route */
        uint8_t type;    /* RTN_* */
        uint8_t protocol;
        uint8_t scope;
        uint32_t flags;      /* RTM_F_* */
        uint32_t table;      /* RTA_TABLE, else rtm_table */
        uint32_t priority;   /* RTA_PRIORITY (the metric), 0 without */
        unsigned n_nexthops; /* RTA_MULTIPATH's entries, else 1 with RTA_OIF or RTA_GATEWAY */
        int ifindex;         /* the first hop's; 0 without */
        bool has_gateway;
        uint8_t gateway[16];
} RtnlRoute;
int rtnl_parse_route(const RtnlMessage *m, RtnlRoute *ret, RtnlError *ret_error);

/*
 * NLMSG_ERROR and NLMSG_DONE: *ret_errno is the kernel's answer, 0 (an ack,
 * or a dump that ended well) or a negative errno. NLMSG_DONE without its
 * 4-byte status counts as 0.
 */
int rtnl_parse_status(const RtnlMessage *m, int *ret_errno, RtnlError *ret_error);

/* The largest request rtnl_build_dump_request() writes. */
#define RTNL_DUMP_REQUEST_MAX 32u

/*
 * A dump request of every family's objects for RTM_GETLINK, RTM_GETADDR or
 * RTM_GETROUTE, numbered seq, into buf: returns its size, -EINVAL for another
 * type, -ENOBUFS when buf is smaller than the request.
 */
int rtnl_build_dump_request(uint16_t type, uint32_t seq, void *buf, size_t size);

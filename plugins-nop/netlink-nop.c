/* SPDX-License-Identifier: MIT */
/*
 * The no-op netlink hook, for builds with -Dnetlink=disabled: no links are
 * watched, the coldplug is done at once and the DHCP state is not waited for.
 */
#include <errno.h>
#include <stdlib.h>

#include "platform.h"

struct Netlink {
        int unused;
};

int netlink_new(Netlink **ret, sd_event *event, NetState *state, const NetlinkHandlers *handlers,
                void *userdata)
{
        Netlink *nl = calloc(1, sizeof(*nl));

        if (!nl)
                return -ENOMEM;
        *ret = nl;
        return 0;
}

Netlink *netlink_free(Netlink *nl)
{
        return mfree(nl);
}

bool netlink_is_active(const Netlink *nl)
{
        return false;
}

bool netlink_coldplug_done(const Netlink *nl)
{
        return true;
}

void netlink_get_stats(const Netlink *nl, NetlinkStats *ret)
{
        *ret = (NetlinkStats){};
}

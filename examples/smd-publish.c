/* SPDX-License-Identifier: MIT */
/*
 * smd-publish: publish one message on the smdagent bus.
 *
 *   smd-publish CLASS PAYLOAD
 *
 * CLASS is network, system_state, interaction, metrics or user0 ... user7.
 * Returns once the agent has taken the message (or refused it). The agent's
 * socket is the default one, or $SMD_SOCKET.
 */
#include <errno.h>
#include <smd/smd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t class_from_name(const char *name)
{
        static const char *const names[] = {"interaction", "system_state", "network", "metrics"};

        for (unsigned i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0)
                        return UINT32_C(1) << i;
        if (strncmp(name, "user", 4) == 0 && name[4] >= '0' && name[4] <= '7' && !name[5])
                return SMD_CLASS_USER(name[4] - '0');
        return 0;
}

int main(int argc, char **argv)
{
        uint32_t classes = argc == 3 ? class_from_name(argv[1]) : 0;
        smd_bus *bus;
        int r;

        if (classes == 0) {
                fprintf(stderr, "usage: smd-publish CLASS PAYLOAD\n");
                return 2;
        }
        /* Classes 0: publish only, receive nothing. */
        r = smd_bus_open(&bus, NULL, 0);
        if (r < 0) {
                fprintf(stderr, "smd-publish: cannot connect: %s\n", strerror(-r));
                return 1;
        }
        r = smd_bus_publish(bus, classes, argv[2], strlen(argv[2]));
        if (r >= 0)
                /* Wait until the agent has handled it: a refusal shows up here. */
                r = smd_bus_flush(bus, 5 * UINT64_C(1000000));
        if (r == -EACCES)
                fprintf(stderr, "smd-publish: the agent refused class %s\n", argv[1]);
        else if (r < 0)
                fprintf(stderr, "smd-publish: %s\n", strerror(-r));
        smd_bus_close(bus);
        return r < 0 ? 1 : 0;
}

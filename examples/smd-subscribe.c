/* SPDX-License-Identifier: MIT */
/*
 * smd-subscribe: print the messages of one class from the smdagent bus.
 *
 *   smd-subscribe CLASS [COUNT]
 *
 * CLASS is network, system_state, interaction, metrics, user0 ... user7 or all.
 * Prints one line per message (its payload) and exits after COUNT messages, or
 * never. The agent's socket is the default one, or $SMD_SOCKET.
 */
#include <errno.h>
#include <smd/smd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t class_from_name(const char *name)
{
        static const char *const names[] = {"interaction", "system_state", "network", "metrics"};

        for (unsigned i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0)
                        return UINT32_C(1) << i;
        if (strncmp(name, "user", 4) == 0 && name[4] >= '0' && name[4] <= '7' && !name[5])
                return SMD_CLASS_USER(name[4] - '0');
        return strcmp(name, "all") == 0 ? SMD_CLASS_ALL : 0;
}

static void on_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        unsigned long *seen = userdata;

        if (m->lost)
                fprintf(stderr, "smd-subscribe: %u messages lost\n", (unsigned) m->lost);
        printf("%.*s\n", (int) m->size, m->payload);
        (*seen)++;
}

static void on_link(smd_bus *bus, int state, void *userdata)
{
        fprintf(stderr, "smd-subscribe: link %s\n", state == SMD_LINK_UP ? "up" : "down");
}

int main(int argc, char **argv)
{
        unsigned long count = argc > 2 ? strtoul(argv[2], NULL, 10) : 0, seen = 0;
        uint32_t classes = argc > 1 ? class_from_name(argv[1]) : 0;
        smd_bus *bus;
        int r;

        if (classes == 0) {
                fprintf(stderr, "usage: smd-subscribe CLASS [COUNT]\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = smd_bus_open(&bus, NULL, classes);
        if (r < 0) {
                /* A refusal comes with the agent's reason. */
                fprintf(stderr, "smd-subscribe: %s\n",
                        r == -EACCES ? smd_bus_get_error(NULL) : strerror(-r));
                return 1;
        }
        smd_bus_set_message_handler(bus, on_message, &seen);
        smd_bus_set_link_handler(bus, on_link, NULL);
        fprintf(stderr, "smd-subscribe: subscribed to %s\n", argv[1]);

        while (count == 0 || seen < count) {
                r = smd_bus_wait(bus, UINT64_MAX);
                if (r < 0) {
                        fprintf(stderr, "smd-subscribe: %s\n", strerror(-r));
                        break;
                }
        }
        smd_bus_close(bus);
        return r < 0 ? 1 : 0;
}

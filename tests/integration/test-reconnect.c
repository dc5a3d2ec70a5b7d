/* SPDX-License-Identifier: MIT */
/*
 * The agent restarts under connected clients: a libsmd client's link handler
 * sees DOWN, then UP once a new agent listens on the same socket, and it
 * receives (and can publish) messages after the restart; `smdctl monitor`
 * says it lost the link and reconnected, and keeps printing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "smd/smd.h"
#include "tap.h"
#include "util.h"

typedef struct Client {
        int links[8];
        size_t n_links;
        char messages[8][64];
        size_t n_messages;
} Client;

static void on_link(smd_bus *bus, int state, void *userdata)
{
        Client *c = userdata;

        if (c->n_links < ELEMENTSOF(c->links))
                c->links[c->n_links++] = state;
}

static void on_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        Client *c = userdata;

        if (c->n_messages < ELEMENTSOF(c->messages))
                snprintf(c->messages[c->n_messages++], sizeof(c->messages[0]), "%.*s",
                         (int) MIN(m->size, 63u), m->payload);
}

/* Process the bus until *counter reaches want or timeout_ms passes. */
static bool pump_until(smd_bus *bus, const size_t *counter, size_t want, unsigned timeout_ms)
{
        uint64_t deadline = harness_now_usec() + (uint64_t) timeout_ms * 1000;

        while (*counter < want) {
                uint64_t now = harness_now_usec();
                if (now >= deadline)
                        return false;
                (void) smd_bus_wait(bus, MIN(deadline - now, 50 * USEC_PER_MSEC));
        }
        return true;
}

static int publish(const char *sock, const char *payload)
{
        Proc p;
        int code;

        smdctl_run(&p, sock, (const char *const[]){"publish", "--class", "user0", payload, NULL},
                   NULL, 5000);
        code = proc_exit_code(&p);
        proc_free(&p);
        return code;
}

int main(void)
{
        Agent a, b = {.notify_fd = -1, .proc = PROC_NULL};
        Proc mon = PROC_NULL;
        Client c = {};
        smd_bus *bus = NULL;
        uint64_t down_at;
        int r;

        harness_init(60);
        if (!agent_start(&a, NULL))
                goto out;

        r = smd_bus_open(&bus, a.socket_path, SMD_CLASS_USER(0));
        is_int(r, 0, "a libsmd client subscribes to user0");
        if (r < 0)
                goto out;
        smd_bus_set_link_handler(bus, on_link, &c);
        smd_bus_set_message_handler(bus, on_message, &c);
        smdctl_start(&mon, a.socket_path,
                     (const char *const[]){"monitor", "--class", "user0", "--count", "3",
                                           "--timeout", "20", NULL},
                     NULL);
        ok(wait_participants(a.socket_path, 2, 5000), "and so does smdctl monitor");

        is_int(publish(a.socket_path, "before restart"), 0, "publish before the restart");
        ok(pump_until(bus, &c.n_messages, 1, 3000), "the client receives it");
        is_str(c.messages[0], "before restart", "payload before the restart");

        is_int(agent_stop(&a, 5000), 0, "the first agent exits 0 on SIGTERM");
        (void) agent_check_log(&a);
        down_at = harness_now_usec();
        ok(pump_until(bus, &c.n_links, 1, 3000), "the client notices");
        is_int(c.n_links >= 1 ? c.links[0] : -1, SMD_LINK_DOWN, "its link handler sees DOWN");
        is_int(smd_bus_publish(bus, SMD_CLASS_USER(0), "x", 1), -ENOTCONN,
               "publishing while the link is down fails with ENOTCONN");

        if (!agent_start(&b, &(AgentOptions){.name = "restarted"}))
                goto out;
        ok(pump_until(bus, &c.n_links, 2, 5000), "the client reconnects to the new agent");
        is_int(c.n_links >= 2 ? c.links[1] : -1, SMD_LINK_UP, "its link handler sees UP");
        is_int(c.n_links, 2, "exactly DOWN then UP");
        tap_diag("link down to up again took %.0f ms (agent restart included)",
                 (double) (harness_now_usec() - down_at) / 1000);
        ok(wait_participants(b.socket_path, 2, 5000),
           "the new agent counts the client and the monitor");

        is_int(publish(b.socket_path, "after restart"), 0, "publish after the restart");
        ok(pump_until(bus, &c.n_messages, 2, 3000), "the client receives it");
        is_str(c.messages[1], "after restart", "payload after the restart");

        is_int(smd_bus_publish(bus, SMD_CLASS_USER(0), "from the client", 15), 0,
               "the reconnected client publishes");
        is_int(smd_bus_flush(bus, 3 * USEC_PER_SEC), 0, "and the agent takes it");
        ok(pump_until(bus, &c.n_messages, 3, 3000), "it receives its own message");
        is_str(c.messages[2], "from the client", "payload from the client");

        proc_wait(&mon, 5000);
        is_int(proc_exit_code(&mon), 0, "smdctl monitor got all three messages across the restart");
        ok(strstr(mon.out, " before restart\n") && strstr(mon.out, " after restart\n") &&
               strstr(mon.out, " from the client\n"),
           "and printed them: %s", mon.out);
        ok(strstr(mon.err, "link to the agent lost") && strstr(mon.err, "reconnected"),
           "and said it lost the link and reconnected: %s", mon.err);

        smd_bus_close(bus);
        bus = NULL;
        is_int(agent_stop(&b, 5000), 0, "the restarted agent exits 0");
        (void) agent_check_log(&b);
out:
        smd_bus_close(bus);
        proc_free(&mon);
        agent_free(&a);
        agent_free(&b);
        return harness_done();
}

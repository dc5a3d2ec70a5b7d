/* SPDX-License-Identifier: MIT */
/*
 * A thousand participants at once: each connects and subscribes to user1, one
 * broadcast reaches every one of them, and the agent's memory per idle
 * participant is measured and reported (with a generous bound).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "harness.h"
#include "smd/smd.h"
#include "tap.h"
#include "util.h"

#define N_PARTICIPANTS        1000
#define PER_PARTICIPANT_BOUND 16384 /* bytes of agent RSS per idle participant */

static RawClient clients[N_PARTICIPANTS];

static bool raise_fd_limit(rlim_t want)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return false;
        if (rl.rlim_cur >= want)
                return true;
        rl.rlim_cur = want;
        if (rl.rlim_max < want)
                rl.rlim_max = want;
        return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

int main(void)
{
        static const char payload[] = "{\"broadcast\":\"to everyone\"}";
        Agent a;
        Proc p = PROC_NULL;
        size_t connected = 0, created = 0, got = 0, wrong = 0;
        long rss_before, rss_after, rss_closed;
        uint64_t start;

        harness_init(100);
        /* The agent inherits the limit: it needs a descriptor per participant too. */
        if (!raise_fd_limit(N_PARTICIPANTS + 1024))
                tap_skip_all("cannot raise RLIMIT_NOFILE (needs root or a high hard limit)");
        tap_diag("RLIMIT_NOFILE raised to %d", N_PARTICIPANTS + 1024);
        if (!agent_start(
                &a, &(AgentOptions){.env = (const char *const[]){harness_asan_memory_env(), NULL}}))
                goto out;

        /* A first control round trip, so that one-off allocations are done. */
        is_int(agent_participants(a.socket_path), 0, "no participants yet");
        rss_before = proc_rss_kib(a.proc.pid);

        start = harness_now_usec();
        for (size_t i = 0; i < N_PARTICIPANTS; i++) {
                if (raw_connect(&clients[i], a.socket_path) < 0)
                        break;
                connected++;
                if (raw_send_streamtype(&clients[i], "_lws_smd", SMD_CLASS_USER(1)) < 0)
                        break;
        }
        is_int(connected, N_PARTICIPANTS, "%d clients connected", N_PARTICIPANTS);
        for (size_t i = 0; i < connected; i++) {
                Frame f;
                if (raw_recv(&clients[i], &f, 5000) == 1 && f.type == FRAME_CREATE_RESULT &&
                    f.create_result.result == 0)
                        created++;
        }
        is_int(created, N_PARTICIPANTS, "every one got CREATE_RESULT 0 for _lws_smd on user1");
        tap_diag("%zu participants joined in %.0f ms", created,
                 (double) (harness_now_usec() - start) / 1000);
        ok(wait_participants(a.socket_path, N_PARTICIPANTS, 5000),
           "the agent counts %d participants", N_PARTICIPANTS);

        rss_after = proc_rss_kib(a.proc.pid);
        cmp_int(rss_before, >, 0, "agent VmRSS is readable");
        tap_diag("agent VmRSS: %ld KiB with no participant, %ld KiB with %d idle ones: "
                 "%ld bytes per idle participant",
                 rss_before, rss_after, N_PARTICIPANTS,
                 (rss_after - rss_before) * 1024 / N_PARTICIPANTS);
        cmp_int((rss_after - rss_before) * 1024 / N_PARTICIPANTS, <, PER_PARTICIPANT_BOUND,
                "agent memory per idle participant is under %d bytes", PER_PARTICIPANT_BOUND);

        start = harness_now_usec();
        smdctl_run(&p, a.socket_path,
                   (const char *const[]){"publish", "--class", "user1", payload, NULL}, NULL,
                   10000);
        is_int(proc_exit_code(&p), 0, "smdctl publish of one user1 broadcast exits 0");
        proc_free(&p);
        for (size_t i = 0; i < connected; i++) {
                Frame f;
                MessageHeader h;

                if (raw_recv(&clients[i], &f, 5000) != 1)
                        continue;
                if (f.type == FRAME_RX_PAYLOAD &&
                    message_header_parse(f.payload.data, f.payload.size, &h) == 0 &&
                    h.classes == SMD_CLASS_USER(1) &&
                    f.payload.size - MESSAGE_HEADER_SIZE == sizeof(payload) - 1 &&
                    memcmp(f.payload.data + MESSAGE_HEADER_SIZE, payload, sizeof(payload) - 1) == 0)
                        got++;
                else
                        wrong++;
        }
        is_int(got, N_PARTICIPANTS, "the broadcast reached every one of the %d participants",
               N_PARTICIPANTS);
        is_int(wrong, 0, "nobody got anything else");
        tap_diag("broadcast delivered to all in %.0f ms (including starting smdctl)",
                 (double) (harness_now_usec() - start) / 1000);

        for (size_t i = 0; i < connected; i++)
                raw_close(&clients[i]);
        ok(wait_participants(a.socket_path, 0, 5000), "all participants gone after they close");
        rss_closed = proc_rss_kib(a.proc.pid);
        tap_diag("agent VmRSS after they all left: %ld KiB", rss_closed);

        is_int(agent_stop(&a, 5000), 0, "agent exits 0");
        (void) agent_check_log(&a);
out:
        for (size_t i = 0; i < N_PARTICIPANTS; i++)
                if (clients[i].fd > 0)
                        raw_close(&clients[i]);
        agent_free(&a);
        return harness_done();
}

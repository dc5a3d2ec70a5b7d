/* SPDX-License-Identifier: MIT */
/*
 * smdctl stream STREAMTYPE: a policy-driven curl. Opens the streamtype through
 * the agent (libsmd streams), sends --data if any, writes the payload received
 * to stdout and, with --states, each state to stderr. Writes to stdout block:
 * a reader that stops reading stops smdctl reading its socket, and the agent
 * in turn stops reading the server (the proxy's flow control).
 *
 * Exit status: 0 QOS_ACK_REMOTE or a clean end, 1 QOS_NACK_REMOTE (or a
 * failed transfer), 2 usage, 3 the agent refused the stream, 4
 * ALL_RETRIES_FAILED, UNREACHABLE or no agent, 5 TIMEOUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smd/smd.h"
#include "smdctl-stream.h"
#include "util.h"

#define EXIT_NACK        1
#define EXIT_USAGE       2
#define EXIT_REFUSED     3
#define EXIT_UNREACHABLE 4
#define EXIT_TIMEOUT     5
#define META_MAX         32

typedef struct StreamRun {
        int data_fd; /* -1: nothing to send */
        bool states;
        bool got_eom;
        bool write_failed;
        int exit_code; /* -1 while running */
} StreamRun;

static int on_rx(smd_stream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        StreamRun *run = userdata;

        if (len && fwrite(buf, 1, len, stdout) != len) {
                run->write_failed = true;
                run->exit_code = EXIT_FAILURE;
        }
        if (flags & SMD_SS_FLAG_EOM)
                run->got_eom = true;
        return SMD_SS_OK;
}

static int on_tx(smd_stream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        StreamRun *run = userdata;
        ssize_t n;

        if (run->data_fd < 0)
                return SMD_SS_TX_DONT_SEND;
        do
                n = read(run->data_fd, buf, *len);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                fprintf(stderr, "smdctl: reading the data failed: %s\n", strerror(errno));
                run->exit_code = EXIT_FAILURE;
                return SMD_SS_TX_DONT_SEND;
        }
        *len = (size_t) n;
        *flags = n == 0 ? SMD_SS_FLAG_EOM : 0;
        return SMD_SS_OK;
}

static int on_state(smd_stream *s, void *userdata, int state, uint32_t ack)
{
        StreamRun *run = userdata;

        if (run->states)
                fprintf(stderr, "%s %" PRIu32 "\n", smd_stream_state_name(state), ack);
        if (run->exit_code >= 0)
                return SMD_SS_OK;
        switch (state) {
        case SMD_SS_STATE_QOS_ACK_REMOTE:
                run->exit_code = 0;
                break;
        case SMD_SS_STATE_QOS_NACK_REMOTE:
                run->exit_code = EXIT_NACK;
                break;
        case SMD_SS_STATE_ALL_RETRIES_FAILED:
        case SMD_SS_STATE_UNREACHABLE:
        case SMD_SS_STATE_UPSTREAM_LINK_RETRY:
                run->exit_code = EXIT_UNREACHABLE;
                break;
        case SMD_SS_STATE_TIMEOUT:
                run->exit_code = EXIT_TIMEOUT;
                break;
        case SMD_SS_STATE_DISCONNECTED:
                /* A protocol without acks: a whole message then a clean end. */
                if (run->got_eom)
                        run->exit_code = 0;
                break;
        }
        return SMD_SS_OK;
}

int smdctl_stream(int argc, char **argv, const char *socket_path)
{
        static const struct option options[] = {
            {"meta", required_argument, NULL, 'm'},
            {"data", required_argument, NULL, 'd'},
            {"states", no_argument, NULL, 'S'},
            {"timeout", required_argument, NULL, 't'},
            {},
        };
        const char *meta[META_MAX], *data = NULL;
        size_t n_meta = 0;
        uint64_t timeout_usec = UINT64_MAX, deadline;
        StreamRun run = {.data_fd = -1, .exit_code = -1};
        smd_stream *s = NULL;
        struct stat st;
        int c, r;

        optind = 0; /* reinitialise: main() parsed in "+" (no permutation) mode */
        while ((c = getopt_long(argc, argv, "m:d:St:", options, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        if (!strchr(optarg, '=') || optarg[0] == '=')
                                return fprintf(stderr, "smdctl: --meta needs NAME=VALUE\n"),
                                       EXIT_USAGE;
                        if (n_meta == META_MAX)
                                return fprintf(stderr, "smdctl: at most %d --meta\n", META_MAX),
                                       EXIT_USAGE;
                        meta[n_meta++] = optarg;
                        break;
                case 'd':
                        data = optarg;
                        break;
                case 'S':
                        run.states = true;
                        break;
                case 't': {
                        char *end;
                        double v;

                        errno = 0;
                        v = strtod(optarg, &end);
                        if (errno || *end || end == optarg || !(v > 0) || v > 86400)
                                return fprintf(stderr, "smdctl: --timeout needs seconds\n"),
                                       EXIT_USAGE;
                        timeout_usec = (uint64_t) (v * 1e6);
                        break;
                }
                default:
                        return fprintf(stderr, "smdctl: stream: unknown option\n"), EXIT_USAGE;
                }
        }
        if (argc - optind != 1)
                return fprintf(stderr, "smdctl: stream needs exactly one STREAMTYPE\n"), EXIT_USAGE;
        if (data) {
                run.data_fd = streq(data, "-") ? STDIN_FILENO : open(data, O_RDONLY | O_CLOEXEC);
                if (run.data_fd < 0)
                        return fprintf(stderr, "smdctl: cannot open %s: %s\n", data,
                                       strerror(errno)),
                               EXIT_FAILURE;
        }

        r = smd_stream_new(&s, socket_path, argv[optind], on_rx, on_tx, on_state, &run);
        if (r < 0) {
                const char *e = smd_stream_get_error(NULL);

                fprintf(stderr, "smdctl: cannot open stream %s: %s\n", argv[optind],
                        e ? e : strerror(-r));
                return r == -EINVAL ? EXIT_USAGE : EXIT_REFUSED;
        }
        for (size_t i = 0; i < n_meta; i++) {
                const char *eq = strchr(meta[i], '=');
                char name[64];

                snprintf(name, sizeof(name), "%.*s", (int) MIN((size_t) (eq - meta[i]), 63u),
                         meta[i]);
                r = smd_stream_set_metadata(s, name, eq + 1, strlen(eq + 1));
                if (r < 0) {
                        fprintf(stderr, "smdctl: --meta %s: %s\n", meta[i], strerror(-r));
                        smd_stream_destroy(s);
                        return EXIT_USAGE;
                }
        }
        if (timeout_usec != UINT64_MAX)
                (void) smd_stream_start_timeout(s, (uint32_t) MIN(timeout_usec / 1000, 86400000u));
        if (run.data_fd >= 0) {
                if (fstat(run.data_fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= UINT32_MAX)
                        r = smd_stream_request_tx_len(s, (uint64_t) st.st_size);
                else
                        r = smd_stream_request_tx(s);
        } else
                r = smd_stream_client_connect(s);

        deadline =
            timeout_usec == UINT64_MAX ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout_usec;
        while (r >= 0 && run.exit_code < 0) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline) {
                        fprintf(stderr, "smdctl: timed out\n");
                        run.exit_code = EXIT_TIMEOUT;
                        break;
                }
                r = smd_stream_wait(s, deadline == UINT64_MAX ? UINT64_MAX : deadline - now);
                if (r == SMD_STREAM_DESTROYED) {
                        s = NULL;
                        break;
                }
        }
        if (fflush(stdout) != 0 && run.exit_code == 0)
                run.exit_code = EXIT_FAILURE;
        if (run.exit_code > 0 && run.exit_code != EXIT_NACK && smd_stream_get_error(s))
                fprintf(stderr, "smdctl: %s\n", smd_stream_get_error(s));
        smd_stream_destroy(s);
        if (run.data_fd > STDIN_FILENO)
                close(run.data_fd);
        if (r < 0 && run.exit_code < 0)
                return fprintf(stderr, "smdctl: stream failed: %s\n", strerror(-r)), EXIT_FAILURE;
        return run.exit_code < 0 ? EXIT_FAILURE : run.exit_code;
}

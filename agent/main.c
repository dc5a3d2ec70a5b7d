/* SPDX-License-Identifier: MIT */
/*
 * smdagent: the system message and connectivity agent. Parses options and
 * hands over to the manager.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "machine.h"
#include "manager.h"
#include "privileges.h"

#define POLICY_PATHS_MAX 64

static void help(void)
{
        printf("Usage: smdagent [OPTIONS]\n\n"
               "The system message bus and connectivity agent.\n\n"
               "  -s, --socket PATH      listen on PATH (default: /run/smdagent/ss.sock for\n"
               "                         root, $XDG_RUNTIME_DIR/smdagent/ss.sock otherwise)\n"
               "  -p, --policy PATH      add a policy file or directory (repeatable)\n"
               "      --no-system-policy do not read the policy.d directories under\n"
               "                         /usr/lib, /etc and /run (only the built-in policy\n"
               "                         and --policy paths)\n"
               "  -u, --user USER        when started as root: become USER, with its groups\n"
               "                         and only CAP_WAKE_ALARM, once the socket is bound\n"
               "      --state-dir DIR    keep the last good fetched policy in DIR (default:\n"
               "                         /var/lib/smdagent for root, else\n"
               "                         $XDG_STATE_HOME/smdagent or ~/.local/state/smdagent)\n"
               "      --time-sync-wait SECONDS\n"
               "                         how long TIME_VALID waits for a running time sync\n"
               "                         service to synchronise the clock (default 30)\n"
               "  -l, --log-level LEVEL  err, warning, notice, info (default) or debug\n"
               "  -h, --help             show this help\n"
               "      --version          show the version\n\n"
               "See smdagent(8).\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"socket", required_argument, NULL, 's'},
            {"policy", required_argument, NULL, 'p'},
            {"log-level", required_argument, NULL, 'l'},
            {"user", required_argument, NULL, 'u'},
            {"help", no_argument, NULL, 'h'},
            {"no-system-policy", no_argument, NULL, 'N'},
            {"version", no_argument, NULL, 'V'},
            {"time-sync-wait", required_argument, NULL, 'T'},
            {"state-dir", required_argument, NULL, 'D'},
            {},
        };
        const char *policy_paths[POLICY_PATHS_MAX + 1] = {};
        const char *no_directories[] = {NULL};
        size_t n_policy_paths = 0;
        ManagerOptions o = {.policy_paths = policy_paths,
                            .time_sync_wait_usec = MACHINE_TIME_SYNC_WAIT_DEFAULT_USEC};
        _cleanup_(privileges_freep) Privileges *privileges = NULL;
        const char *user = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int c, r;

        log_setup();
        while ((c = getopt_long(argc, argv, "s:p:l:u:h", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        o.socket_path = optarg;
                        break;
                case 'p':
                        if (n_policy_paths >= POLICY_PATHS_MAX) {
                                fprintf(stderr,
                                        "smdagent: too many --policy options (at most %d)\n",
                                        POLICY_PATHS_MAX);
                                return 2;
                        }
                        policy_paths[n_policy_paths++] = optarg;
                        break;
                case 'l':
                        if (log_set_level_from_string(optarg) < 0) {
                                fprintf(stderr, "smdagent: unknown log level \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'N':
                        o.policy_directories = no_directories;
                        break;
                case 'T': {
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v > 86400) {
                                fprintf(stderr,
                                        "smdagent: --time-sync-wait needs seconds (0..86400), "
                                        "not \"%s\"\n",
                                        optarg);
                                return 2;
                        }
                        o.time_sync_wait_usec = v * USEC_PER_SEC;
                        break;
                }
                case 'D':
                        if (optarg[0] != '/') {
                                fprintf(
                                    stderr,
                                    "smdagent: --state-dir needs an absolute path, not \"%s\"\n",
                                    optarg);
                                return 2;
                        }
                        o.state_dir = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("smdagent %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'smdagent --help'.\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "smdagent: unexpected argument \"%s\"\nTry 'smdagent --help'.\n",
                        argv[optind]);
                return 2;
        }

        /* Look the user up before binding anything, so that a typo fails at once. */
        if (user) {
                r = privileges_new(&privileges, user);
                if (r == -ESRCH) {
                        log_error("unknown user \"%s\" (given with --user)", user);
                        return 1;
                }
                if (r == -EPERM) {
                        log_error("--user %s needs root: we run as uid %u", user,
                                  (unsigned) geteuid());
                        return 1;
                }
                if (r < 0) {
                        log_error_errno(r, "failed to look up user \"%s\": %m", user);
                        return 1;
                }
                o.privileges = privileges;
        } else if (geteuid() == 0)
                log_info("running as root; --user smdagent would drop root once the socket "
                         "is bound");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = manager_new(&m, &o);
        if (r < 0)
                return 1;
        r = manager_start(m);
        if (r < 0)
                return 1;
        r = manager_run(m);
        return r < 0 ? 1 : r;
}

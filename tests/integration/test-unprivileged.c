/* SPDX-License-Identifier: MIT */
/*
 * The agent and smdctl as an unprivileged user (nobody, through setpriv): with
 * no configuration the agent lives in $XDG_RUNTIME_DIR/smdagent, and without
 * XDG_RUNTIME_DIR it says so and exits 1. Then access control against an agent
 * running as root: nobody may subscribe to anything and publish user classes,
 * but a network message from nobody is refused (QOS_NACK_LOCAL on the wire,
 * exit 1 from smdctl) and reaches nobody.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"
#include "util.h"

#define NOBODY_STR "65534"

static const char *const setpriv[] = {"setpriv", "--reuid=" NOBODY_STR, "--regid=" NOBODY_STR,
                                      "--clear-groups", NULL};

/* smdctl as nobody; socket may be NULL (the default for that user). */
static int nobody_smdctl(Proc *p, const char *const *env, const char *socket,
                         const char *const *args, bool wait)
{
        const char *argv[32];
        size_t n = 0;
        int r;

        for (const char *const *s = setpriv; *s; s++)
                argv[n++] = *s;
        argv[n++] = harness_smdctl();
        if (socket) {
                argv[n++] = "-s";
                argv[n++] = socket;
        }
        for (const char *const *s = args; *s && n < ELEMENTSOF(argv) - 1; s++)
                argv[n++] = *s;
        argv[n] = NULL;
        if (!wait)
                return proc_start(p, argv, &(ProcOptions){.env = env});
        r = proc_run(p, argv, &(ProcOptions){.env = env}, 10000);
        return r < 0 ? r : proc_exit_code(p);
}

static void test_runtime_dir(void)
{
        char xdg[200], xdg_env[220], dir[220], sock[240];
        const char *const env[] = {xdg_env, NULL};
        Agent a;
        Proc mon = PROC_NULL, p = PROC_NULL;
        struct stat st;
        int r;

        harness_path(xdg, sizeof(xdg), "xdg-nobody");
        snprintf(xdg_env, sizeof(xdg_env), "XDG_RUNTIME_DIR=%s", xdg);
        snprintf(dir, sizeof(dir), "%s/smdagent", xdg);
        snprintf(sock, sizeof(sock), "%s/ss.sock", dir);
        if (mkdir(xdg, 0700) < 0 || chown(xdg, HARNESS_NOBODY, HARNESS_NOBODY) < 0) {
                ok(false, "make a runtime directory for nobody: %s", strerror(errno));
                return;
        }

        r = agent_spawn(&a, &(AgentOptions){.socket_path = "", .prefix = setpriv, .env = env});
        if (r == 0)
                r = agent_wait_ready(&a, 5000);
        is_int(r, 0, "agent as nobody with only XDG_RUNTIME_DIR sends READY=1");
        if (r < 0) {
                agent_dump_log(&a);
                goto out;
        }
        snprintf(a.socket_path, sizeof(a.socket_path), "%s", sock);
        ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "it created $XDG_RUNTIME_DIR/smdagent");
        is_int(st.st_mode & 07777, 0700, "mode 0700");
        is_int(st.st_uid, HARNESS_NOBODY, "owned by nobody");
        ok(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "and $XDG_RUNTIME_DIR/smdagent/ss.sock");
        is_int(st.st_uid, HARNESS_NOBODY, "socket owned by nobody");
        ok(strstr(a.status, sock) != NULL, "STATUS names that socket: %s", a.status);

        /* smdctl as the same user, same environment, no --socket. */
        nobody_smdctl(&mon, env, NULL,
                      (const char *const[]){"monitor", "--class", "user0", "--count", "1",
                                            "--timeout", "5", NULL},
                      false);
        ok(wait_participants(sock, 1, 5000), "smdctl monitor as nobody subscribes");
        r = nobody_smdctl(
            &p, env, NULL,
            (const char *const[]){"publish", "--class", "user0", "hello from nobody", NULL}, true);
        is_int(r, 0, "smdctl publish as nobody exits 0");
        proc_free(&p);
        proc_wait(&mon, 6000);
        is_int(proc_exit_code(&mon), 0, "the monitor exits 0");
        ok(strstr(mon.out, "user0 hello from nobody\n") != NULL, "and printed the message: %s",
           mon.out);
        proc_free(&mon);

        r = nobody_smdctl(&p, env, NULL, (const char *const[]){"status", NULL}, true);
        is_int(r, 0, "smdctl status as nobody exits 0");
        ok(strstr(p.out, sock) != NULL, "and names the socket");
        proc_free(&p);

        is_int(agent_stop(&a, 5000), 0, "agent as nobody exits 0 on SIGTERM");
        ok(access(sock, F_OK) < 0, "and removed its socket");
        (void) agent_check_log(&a);
out:
        agent_free(&a);
}

static void test_no_runtime_dir(void)
{
        static const char *const env[] = {"XDG_RUNTIME_DIR", NULL};
        const char *argv[8];
        Proc p;
        size_t n = 0;

        for (const char *const *s = setpriv; *s; s++)
                argv[n++] = *s;
        argv[n++] = harness_smdagent();
        argv[n] = NULL;
        proc_run(&p, argv, &(ProcOptions){.env = env}, 5000);
        is_int(proc_exit_code(&p), 1, "agent as nobody without XDG_RUNTIME_DIR exits 1");
        ok(strstr(p.err, "XDG_RUNTIME_DIR") != NULL, "saying XDG_RUNTIME_DIR is missing: %s",
           p.err);
        proc_free(&p);

        nobody_smdctl(&p, env, NULL, (const char *const[]){"status", NULL}, true);
        is_int(proc_exit_code(&p), 1, "smdctl as nobody without XDG_RUNTIME_DIR exits 1");
        ok(strstr(p.err, "XDG_RUNTIME_DIR") != NULL, "and says why: %s", p.err);
        proc_free(&p);
}

/*
 * A raw client as nobody (forked, privileges dropped): a network publish gets
 * CONNSTATE QOS_NACK_LOCAL, a user0 publish does not. Exit code 0 when so.
 */
static const char *raw_sock;

static int raw_nobody(void *arg)
{
        RawClient c;
        Frame f;
        int r;

        if (setgroups(0, NULL) < 0 || setresgid(HARNESS_NOBODY, HARNESS_NOBODY, HARNESS_NOBODY) ||
            setresuid(HARNESS_NOBODY, HARNESS_NOBODY, HARNESS_NOBODY) < 0)
                return 10;
        if (raw_open_smd(&c, raw_sock, 0) < 0)
                return 11;
        if (raw_send_publish(&c, SMD_CLASS_NETWORK, "{\"raw\":1}", 9) < 0)
                return 12;
        r = raw_recv(&c, &f, 3000);
        if (r != 1 || f.type != FRAME_CONNSTATE)
                return 13;
        if (f.connstate.state != 13)
                return 14;
        /* user0 is fine: the sync marker's answer comes without a NACK before it. */
        if (raw_send_publish(&c, SMD_CLASS_USER(0), "{\"raw\":2}", 9) < 0)
                return 15;
        {
                uint8_t b[FRAME_HEADER_SIZE];
                frame_encode_empty(b, FRAME_ONWARD_CONNECT);
                if (raw_send(&c, b, sizeof(b)) < 0)
                        return 16;
        }
        for (;;) {
                r = raw_recv(&c, &f, 3000);
                if (r != 1 || f.type != FRAME_CONNSTATE)
                        return 17;
                if (f.connstate.state == 13)
                        return 18;
                if (f.connstate.state == 5 /* CONNECTED */)
                        break;
        }
        raw_close(&c);
        return 0;
}

static void test_access_control(void)
{
        char dir[256], sock[300];
        Agent a;
        Proc net = PROC_NULL, user = PROC_NULL, nobody_mon = PROC_NULL, p = PROC_NULL;
        pid_t pid;
        int r;

        harness_path(dir, sizeof(dir), "shared");
        snprintf(sock, sizeof(sock), "%s/ss.sock", dir);
        if (mkdir(dir, 0755) < 0) {
                ok(false, "mkdir %s: %s", dir, strerror(errno));
                return;
        }
        if (!agent_start(&a, &(AgentOptions){.socket_path = sock, .name = "root-agent"}))
                goto out;
        /* The agent makes the socket 0660 (group smdagent); let everyone in here. */
        is_int(chmod(sock, 0666), 0, "chmod the root agent's socket 0666");

        smdctl_start(&net, sock,
                     (const char *const[]){"monitor", "--class", "metrics", "--count", "1",
                                           "--timeout", "1.5", NULL},
                     NULL);
        smdctl_start(&user, sock,
                     (const char *const[]){"monitor", "--class", "user0", "--count", "2",
                                           "--timeout", "5", NULL},
                     NULL);
        ok(wait_participants(sock, 2, 5000), "root monitors for metrics and user0 subscribed");

        r = nobody_smdctl(
            &p, NULL, sock,
            (const char *const[]){"publish", "--class", "network", "{\"from\":\"nobody\"}", NULL},
            true);
        is_int(r, 1, "nobody publishing network: smdctl exits 1");
        ok(strstr(p.err, "refused") != NULL, "saying it was refused: %s", p.err);
        proc_free(&p);

        raw_sock = sock;
        pid = harness_fork(raw_nobody, NULL);
        is_int(harness_wait_pid(pid, 10000), 0,
               "raw client as nobody: network publish answered with CONNSTATE 13 "
               "(QOS_NACK_LOCAL), user0 publish accepted");

        r = nobody_smdctl(
            &p, NULL, sock,
            (const char *const[]){"publish", "--class", "user0", "nobody says hi", NULL}, true);
        is_int(r, 0, "nobody publishing user0: smdctl exits 0");
        proc_free(&p);

        proc_wait(&net, 5000);
        is_int(proc_exit_code(&net), 1, "the root metrics monitor saw nothing (timed out)");
        is_str(net.out, "", "and printed nothing");
        proc_wait(&user, 6000);
        is_int(proc_exit_code(&user), 0, "the root user0 monitor got both user0 messages");
        ok(strstr(user.out, "{\"raw\":2}") && strstr(user.out, "nobody says hi"),
           "from the raw client and from smdctl: %s", user.out);

        /* Subscribing is open to anyone; root may publish network. */
        nobody_smdctl(&nobody_mon, NULL, sock,
                      (const char *const[]){"monitor", "--class", "metrics", "--count", "1",
                                            "--timeout", "5", NULL},
                      false);
        ok(wait_participants(sock, 1, 5000), "nobody subscribes to metrics");
        smdctl_run(
            &p, sock,
            (const char *const[]){"publish", "--class", "metrics", "{\"from\":\"root\"}", NULL},
            NULL, 5000);
        is_int(proc_exit_code(&p), 0, "root publishes metrics");
        proc_free(&p);
        proc_wait(&nobody_mon, 6000);
        is_int(proc_exit_code(&nobody_mon), 0, "nobody's metrics monitor receives it");
        ok(strstr(nobody_mon.out, "metrics {\"from\":\"root\"}") != NULL, "and prints it: %s",
           nobody_mon.out);

        is_int(agent_stop(&a, 5000), 0, "root agent exits 0");
        (void) agent_check_log(&a);
out:
        proc_free(&net);
        proc_free(&user);
        proc_free(&nobody_mon);
        agent_free(&a);
}

int main(void)
{
        harness_init(60);
        if (geteuid() != 0)
                tap_skip_all("needs root to switch to the unprivileged user");
        test_runtime_dir();
        test_no_runtime_dir();
        test_access_control();
        return harness_done();
}

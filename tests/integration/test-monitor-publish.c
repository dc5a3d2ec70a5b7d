/* SPDX-License-Identifier: MIT */
/*
 * smdctl as a user runs it: `monitor` in one process prints what `publish`
 * sends from another, in text and in JSON; a monitor only sees the classes it
 * asked for; usage errors exit 2 with a one-line reason; `status` reports the
 * agent's version, state, socket and participants.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tap.h"
#include "util.h"

static const char *sock;
static char version[64];

/* Start a monitor and wait until the agent counts it (n participants in all). */
static bool monitor_start(Proc *p, const char *const *args, int n)
{
        if (smdctl_start(p, sock, args, NULL) < 0)
                return ok(false, "start smdctl monitor");
        return ok(wait_participants(sock, n, 5000), "monitor subscribed (%d participants)", n);
}

static int publish(const char *classes, const char *payload)
{
        Proc p;
        int code;

        smdctl_run(&p, sock, (const char *const[]){"publish", "--class", classes, payload, NULL},
                   NULL, 5000);
        code = proc_exit_code(&p);
        if (code != 0)
                tap_diag("smdctl publish: %s", p.err);
        proc_free(&p);
        return code;
}

static void test_text(void)
{
        Proc mon;
        uint64_t before = harness_now_usec(), sec, usec;
        char classes[64], payload[128];
        int n;

        if (!monitor_start(
                &mon, (const char *const[]){"monitor", "--class", "user0", "--count", "1", NULL},
                1))
                goto out;
        is_int(publish("user0", "{\"hello\":\"world\"}"), 0, "publish exits 0");
        proc_wait(&mon, 5000);
        is_int(proc_exit_code(&mon), 0, "monitor --count 1 exits 0 after one message");
        is_int(text_lines(mon.out), 1, "monitor printed one line");
        n = sscanf(mon.out, "%" SCNu64 ".%6" SCNu64 " %63s %127[^\n]", &sec, &usec, classes,
                   payload);
        is_int(n, 4, "line is \"SECONDS.MICROS CLASSES PAYLOAD\": %s", mon.out);
        is_str(classes, "user0", "class name printed");
        is_str(payload, "{\"hello\":\"world\"}", "payload printed as sent");
        cmp_int(sec * 1000000 + usec, >=, before, "timestamp is CLOCK_MONOTONIC, after the start");
        cmp_int(sec * 1000000 + usec, <=, harness_now_usec(), "and not in the future");
        is_str(mon.err, "", "monitor printed nothing on stderr");
out:
        proc_free(&mon);
}

static json_object *parse_line(const char *text)
{
        json_object *o = json_tokener_parse(text);

        ok(o && json_object_is_type(o, json_type_object), "JSON line parses: %s", text);
        return o;
}

static void test_json(void)
{
        Proc mon;
        json_object *o = NULL, *v, *e;
        char *second;

        if (!monitor_start(&mon,
                           (const char *const[]){"--json", "monitor", "--class", "user0,user3",
                                                 "--count", "2", NULL},
                           1))
                goto out;
        is_int(publish("user0", "{\"n\":1,\"s\":\"x\"}"), 0, "publish JSON payload");
        is_int(publish("user3", "not json at all"), 0, "publish non-JSON payload");
        proc_wait(&mon, 5000);
        is_int(proc_exit_code(&mon), 0, "monitor --json --count 2 exits 0");
        is_int(text_lines(mon.out), 2, "two JSON lines");

        o = parse_line(mon.out);
        if (!o)
                goto out;
        is_int(json_object_object_length(o), 3, "keys: class, ts_us, payload");
        ok(json_object_object_get_ex(o, "class", &v) && json_object_is_type(v, json_type_array) &&
               json_object_array_length(v) == 1 &&
               streq(json_object_get_string(json_object_array_get_idx(v, 0)), "user0"),
           "\"class\":[\"user0\"]");
        ok(json_object_object_get_ex(o, "ts_us", &v) && json_object_is_type(v, json_type_int) &&
               json_object_get_int64(v) > 0 &&
               (uint64_t) json_object_get_int64(v) <= harness_now_usec(),
           "\"ts_us\" is a positive integer, not in the future");
        ok(json_object_object_get_ex(o, "payload", &v) && json_object_is_type(v, json_type_object),
           "JSON payload is embedded as an object");
        ok(json_object_object_get_ex(v, "n", &e) && json_object_get_int(e) == 1 &&
               json_object_object_get_ex(v, "s", &e) && streq(json_object_get_string(e), "x"),
           "payload object has the published members");
        json_object_put(o);

        second = strchr(mon.out, '\n');
        o = second ? parse_line(second + 1) : NULL;
        if (!o)
                goto out;
        ok(json_object_object_get_ex(o, "class", &v) &&
               streq(json_object_get_string(json_object_array_get_idx(v, 0)), "user3"),
           "second message has class user3");
        ok(json_object_object_get_ex(o, "payload", &v) &&
               json_object_is_type(v, json_type_string) &&
               streq(json_object_get_string(v), "not json at all"),
           "non-JSON payload is printed as a JSON string");
out:
        json_object_put(o);
        proc_free(&mon);
}

static void test_filter(void)
{
        Proc net = PROC_NULL, user = PROC_NULL;

        if (!monitor_start(&net,
                           (const char *const[]){"monitor", "--class", "metrics", "--count", "1",
                                                 "--timeout", "1", NULL},
                           1))
                goto out;
        if (!monitor_start(&user,
                           (const char *const[]){"monitor", "--class", "user0", "--count", "1",
                                                 "--timeout", "5", NULL},
                           2))
                goto out;
        is_int(publish("user0", "for user0 only"), 0, "publish user0");
        proc_wait(&user, 6000);
        proc_wait(&net, 6000);
        is_int(proc_exit_code(&user), 0, "a user0 monitor receives the message");
        ok(strstr(user.out, "for user0 only") != NULL, "and prints it");
        is_int(proc_exit_code(&net), 1, "a metrics monitor times out (exit 1)");
        is_str(net.out, "", "and prints nothing on stdout");
        ok(strstr(net.err, "timed out") != NULL, "and says it timed out: %s", net.err);
out:
        proc_free(&net);
        proc_free(&user);
}

/* A usage error: exit 2, nothing on stdout, a reason on the first stderr line. */
static void usage_error(const char *const *args, const char *what, const char *mention)
{
        Proc p;
        size_t first_len;

        smdctl_run(&p, sock, args, NULL, 5000);
        is_int(proc_exit_code(&p), 2, "%s: exit 2", what);
        is_str(p.out, "", "%s: nothing on stdout", what);
        first_len = strcspn(p.err, "\n");
        ok(strncmp(p.err, "smdctl: ", 8) == 0 && first_len > 8, "%s: one line saying why: %s", what,
           p.err);
        /* At most a "Try 'smdctl --help'." hint after the reason. */
        ok(text_lines(p.err) == 1 ||
               (text_lines(p.err) == 2 && strstr(p.err + first_len, "--help") != NULL),
           "%s: nothing else on stderr", what);
        if (mention)
                ok(memmem(p.err, first_len, mention, strlen(mention)) != NULL,
                   "%s: the reason mentions \"%s\"", what, mention);
        proc_free(&p);
}

static void test_usage_errors(void)
{
        char big[386];

        memset(big, 'x', 385);
        big[385] = 0;
        usage_error((const char *const[]){"publish", "--class", "bogus", "x", NULL},
                    "unknown class", "bogus");
        usage_error((const char *const[]){"monitor", "--class", "user0,nope", NULL},
                    "unknown class in a list", "nope");
        usage_error((const char *const[]){"publish", "--class", "user0", big, NULL},
                    "385-byte payload", "385");
        usage_error((const char *const[]){"publish", "payload", NULL}, "missing --class",
                    "--class");
        usage_error((const char *const[]){"frobnicate", NULL}, "unknown command", "frobnicate");
        usage_error((const char *const[]){NULL}, "no command", NULL);
        usage_error((const char *const[]){"monitor", "--count", "0", NULL}, "--count 0", NULL);
        usage_error((const char *const[]){"monitor", "--timeout", "soon", NULL}, "bad --timeout",
                    "soon");

        /* 384 bytes is the limit, not an error. */
        big[384] = 0;
        is_int(publish("user0", big), 0, "a 384-byte payload is accepted");
}

static void test_status(void)
{
        Proc mon = PROC_NULL, p = PROC_NULL;
        json_object *o = NULL, *v;
        char line[512];

        if (!monitor_start(&mon, (const char *const[]){"monitor", "--class", "user5", NULL}, 1))
                goto out;
        smdctl_run(&p, sock, (const char *const[]){"status", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "status exits 0");
        snprintf(line, sizeof(line), "smdagent %s ", version);
        ok(strncmp(p.out, line, strlen(line)) == 0, "status starts with \"%s\"", line);
        ok(strstr(p.out, "state: OPERATIONAL\n") != NULL, "status shows state OPERATIONAL");
        snprintf(line, sizeof(line), "socket: %s\n", sock);
        ok(strstr(p.out, line) != NULL, "status shows the socket path");
        ok(strstr(p.out, "participants: 1\n") != NULL, "status counts the monitor: %s", p.out);
        proc_free(&p);

        smdctl_run(&p, sock, (const char *const[]){"--json", "status", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "status --json exits 0");
        is_int(text_lines(p.out), 1, "status --json prints one line");
        o = json_tokener_parse(p.out);
        ok(o != NULL, "status --json is JSON");
        if (!o)
                goto out;
        ok(json_object_object_get_ex(o, "version", &v) && streq(json_object_get_string(v), version),
           "\"version\" is %s", version);
        ok(json_object_object_get_ex(o, "state", &v) &&
               streq(json_object_get_string(v), "OPERATIONAL"),
           "\"state\" is OPERATIONAL");
        ok(json_object_object_get_ex(o, "socket", &v) && streq(json_object_get_string(v), sock),
           "\"socket\" is the socket path");
        ok(json_object_object_get_ex(o, "participants", &v) &&
               json_object_is_type(v, json_type_int) && json_object_get_int(v) == 1,
           "\"participants\" is 1");
        ok(json_object_object_get_ex(o, "uptime_us", &v) && json_object_get_int64(v) > 0,
           "\"uptime_us\" is positive");
out:
        json_object_put(o);
        proc_free(&p);
        proc_free(&mon);
        ok(wait_participants(sock, 0, 5000), "participants drop to 0 when the monitor is gone");
}

int main(void)
{
        Agent a;
        Proc p;

        harness_init(60);
        proc_run(&p, (const char *const[]){harness_smdagent(), "--version", NULL}, NULL, 5000);
        sscanf(p.out, "smdagent %63s", version);
        proc_free(&p);

        if (agent_start(&a, NULL)) {
                sock = a.socket_path;
                test_text();
                test_json();
                test_filter();
                test_usage_errors();
                test_status();
                is_int(agent_stop(&a, 5000), 0, "agent exits 0");
                (void) agent_check_log(&a);
        }
        agent_free(&a);
        return harness_done();
}

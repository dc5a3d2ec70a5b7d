/* SPDX-License-Identifier: MIT */
/*
 * Suspend and resume against a private "system" D-Bus running python-dbusmock's
 * logind template (TESTENV.md): the agent holds a sleep delay inhibitor; an
 * emitted PrepareForSleep(true) makes a subscriber see SUSPENDING and the
 * inhibitor disappear within 500 ms (measured), with the RTC wake alarm
 * programmed for the earliest wake-list timer; PrepareForSleep(false) brings
 * RESUMED, connectivity unknown and a new inhibitor. The same with a
 * participant that never reads. Then logind restarts: the agent takes a new
 * inhibitor; and an agent started before the bus exists connects once it does.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "smd/smd.h"
#include "tap.h"
#include "util.h"

#define RELEASE_LIMIT_MS 500

static char bus_address[200];

typedef struct Seen {
        char lines[256][SMD_PAYLOAD_MAX + 1];
        size_t n;
} Seen;

static void on_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        Seen *s = userdata;

        if (s->n >= ELEMENTSOF(s->lines))
                return;
        memcpy(s->lines[s->n], m->payload, m->size);
        s->lines[s->n][m->size] = 0;
        s->n++;
}

static void pump(smd_bus *bus, unsigned ms)
{
        uint64_t end = harness_now_usec() + ms * USEC_PER_MSEC;

        while (harness_now_usec() < end)
                (void) smd_bus_wait(bus, end - harness_now_usec());
}

/* Index of the first line at or after from containing text, or -1. */
static ssize_t seen_find(const Seen *s, size_t from, const char *text)
{
        for (size_t i = from; i < s->n; i++)
                if (strstr(s->lines[i], text))
                        return (ssize_t) i;
        return -1;
}

static bool wait_seen(smd_bus *bus, Seen *s, size_t from, const char *text, unsigned ms)
{
        uint64_t end = harness_now_usec() + ms * USEC_PER_MSEC;

        while (seen_find(s, from, text) < 0 && harness_now_usec() < end)
                (void) smd_bus_wait(bus, end - harness_now_usec());
        return seen_find(s, from, text) >= 0;
}

static int busctl(Proc *p, const char *const *args)
{
        const char *argv[32];
        size_t n = 0;
        char addr[320];

        snprintf(addr, sizeof(addr), "--address=%s", bus_address);
        argv[n++] = "busctl";
        argv[n++] = addr;
        for (; *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        return proc_run(p, argv, NULL, 5000);
}

static int inhibitors(void)
{
        Proc p;
        int n = -1;

        busctl(&p,
               (const char *const[]){"call", "org.freedesktop.login1", "/org/freedesktop/login1",
                                     "org.freedesktop.login1.Manager", "ListInhibitors", NULL});
        if (proc_exit_code(&p) == 0)
                n = strstr(p.out, "\"sleep\" \"smdagent\"") && strstr(p.out, "\"delay\"") ? 1 : 0;
        proc_free(&p);
        return n;
}

static bool wait_inhibitor(int want, unsigned ms)
{
        uint64_t end = harness_now_usec() + ms * USEC_PER_MSEC;

        while (harness_now_usec() < end) {
                if (inhibitors() == want)
                        return true;
                harness_sleep_ms(20);
        }
        return false;
}

static int emit_sleep(bool start)
{
        Proc p;
        int code;

        busctl(&p,
               (const char *const[]){"call", "org.freedesktop.login1", "/org/freedesktop/login1",
                                     "org.freedesktop.DBus.Mock", "EmitSignal", "sssav",
                                     "org.freedesktop.login1.Manager", "PrepareForSleep", "b", "1",
                                     "b", start ? "true" : "false", NULL});
        code = proc_exit_code(&p);
        proc_free(&p);
        return code;
}

static bool start_mock(Proc *mock)
{
        char log[256], env[320];
        uint64_t end;

        snprintf(env, sizeof(env), "DBUS_SYSTEM_BUS_ADDRESS=%s", bus_address);
        if (proc_start(mock,
                       (const char *const[]){"/usr/bin/python3", "-m", "dbusmock", "--system",
                                             "--template", "logind", NULL},
                       &(ProcOptions){.env = (const char *const[]){env, NULL},
                                      .stdout_path = harness_path(log, sizeof(log), "mock.log"),
                                      .stderr_path = log}) < 0)
                return false;
        end = harness_now_usec() + 10 * USEC_PER_SEC;
        while (harness_now_usec() < end) {
                Proc p;
                int code;

                busctl(&p, (const char *const[]){"status", "org.freedesktop.login1", NULL});
                code = proc_exit_code(&p);
                proc_free(&p);
                if (code == 0)
                        return true;
                harness_sleep_ms(50);
        }
        return false;
}

static bool start_dbus(Proc *dbus, const char *socket_name)
{
        char conf[200], sock[160], log[200];
        FILE *f;

        harness_path(sock, sizeof(sock), socket_name);
        snprintf(conf, sizeof(conf), "%s.conf", sock);
        f = fopen(conf, "we");
        if (!f)
                return false;
        fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\""
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig><type>system</type><listen>unix:path=%s</listen>"
                "<auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/>"
                "<allow own=\"*\"/><allow send_type=\"method_call\"/><allow send_type=\"signal\"/>"
                "<allow send_type=\"method_return\"/><allow send_type=\"error\"/>"
                "<allow receive_type=\"method_call\"/><allow receive_type=\"signal\"/>"
                "<allow receive_type=\"method_return\"/><allow receive_type=\"error\"/>"
                "<allow eavesdrop=\"true\"/></policy></busconfig>\n",
                sock);
        fclose(f);
        snprintf(bus_address, sizeof(bus_address), "unix:path=%s", sock);
        snprintf(log, sizeof(log), "%s.log", sock);
        if (proc_start(
                dbus, (const char *const[]){"dbus-daemon", "--nofork", "--config-file", conf, NULL},
                &(ProcOptions){.stdout_path = log, .stderr_path = log}) < 0)
                return false;
        for (int i = 0; i < 3000 && access(sock, F_OK) < 0; i++)
                harness_sleep_ms(10);
        return access(sock, F_OK) == 0;
}

static json_object *status_json(const char *sock)
{
        Proc p;
        json_object *o;

        smdctl_run(&p, sock, (const char *const[]){"--json", "status", NULL}, NULL, 5000);
        o = json_tokener_parse(p.out ? p.out : "");
        proc_free(&p);
        return o;
}

static int64_t status_int(json_object *o, const char *a, const char *b, const char *c)
{
        json_object *v = o;

        if (!json_object_object_get_ex(v, a, &v) || !json_object_object_get_ex(v, b, &v) ||
            (c && !json_object_object_get_ex(v, c, &v)))
                return -1;
        return json_object_get_int64(v);
}

/* One suspend and resume; returns the measured release latency in ms. */
static long suspend_cycle(Agent *a, smd_bus *bus, Seen *seen, const char *label)
{
        size_t from = seen->n;
        uint64_t t0, t1;
        int released = 0;

        t0 = harness_now_usec();
        is_int(emit_sleep(true), 0, "%s: PrepareForSleep(true) emitted", label);
        while (harness_now_usec() - t0 < 2 * USEC_PER_SEC) {
                if (inhibitors() == 0) {
                        released = 1;
                        break;
                }
        }
        t1 = harness_now_usec();
        ok(released, "%s: the inhibitor goes away", label);
        cmp_int((t1 - t0) / USEC_PER_MSEC, <, RELEASE_LIMIT_MS,
                "%s: within %d ms of the signal (%lu ms, measured from before the emit call)",
                label, RELEASE_LIMIT_MS, (unsigned long) ((t1 - t0) / USEC_PER_MSEC));
        ok(wait_seen(bus, seen, from, "{\"state\":\"SUSPENDING\"}", 2000),
           "%s: the subscriber sees SUSPENDING", label);

        from = seen->n;
        is_int(emit_sleep(false), 0, "%s: PrepareForSleep(false) emitted", label);
        ok(wait_seen(bus, seen, from, "{\"state\":\"RESUMED\"}", 2000),
           "%s: the subscriber sees RESUMED", label);
        ok(wait_seen(bus, seen, from, "{\"type\":\"connectivity\",\"state\":\"unknown\"", 2000),
           "%s: and connectivity unknown", label);
        ok(seen_find(seen, from, "RESUMED") < seen_find(seen, from, "\"connectivity\""),
           "%s: RESUMED first", label);
        ok(wait_inhibitor(1, 3000), "%s: a new delay inhibitor is taken", label);
        (void) a;
        return (long) ((t1 - t0) / USEC_PER_MSEC);
}

static void test_suspend(void)
{
        Proc dbus = PROC_NULL, mock = PROC_NULL, p;
        Agent a = {.proc = PROC_NULL, .notify_fd = -1};
        RawClient stuck = {.fd = -1}, flood = {.fd = -1};
        char env_bus[320], env_rtc[300], rtc[256], buf[64] = "";
        smd_bus *bus = NULL;
        static Seen seen;
        json_object *st;
        long ms, ms_stuck;
        FILE *f;

        if (!start_dbus(&dbus, "system_bus_socket") || !start_mock(&mock)) {
                ok(false, "private system bus with the logind mock starts");
                goto out;
        }
        harness_path(rtc, sizeof(rtc), "wakealarm");
        f = fopen(rtc, "we");
        if (f)
                fclose(f);
        snprintf(env_bus, sizeof(env_bus), "DBUS_SYSTEM_BUS_ADDRESS=%s", bus_address);
        snprintf(env_rtc, sizeof(env_rtc), "SMD_WAKEALARM_PATH=%s", rtc);
        if (!agent_start(&a, &(AgentOptions){
                                 .env = (const char *const[]){env_bus, env_rtc, NULL},
                                 .args = (const char *const[]){"--no-system-policy", NULL},
                             }))
                goto out;
        ok(wait_inhibitor(1, 5000), "the agent takes a sleep delay inhibitor (ListInhibitors)");
        st = status_json(a.socket_path);
        ok(st && strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "\"state\":\"connected\""),
           "status: logind connected");
        ok(st && strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "\"inhibit_delay_max_us\":null"),
           "status: InhibitDelayMaxUSec unknown (the mock lacks it) and that is fine");
        json_object_put(st);

        is_int(smd_bus_open(&bus, a.socket_path, SMD_CLASS_SYSTEM_STATE | SMD_CLASS_NETWORK), 0,
               "a subscriber joins");
        if (!bus)
                goto out;
        smd_bus_set_message_handler(bus, on_message, &seen);
        pump(bus, 200);

        /* A wake-list timer a minute away: the RTC is programmed on the fallback path. */
        smdctl_run(&p, a.socket_path, (const char *const[]){"wake", "60", NULL}, NULL, 5000);
        is_int(proc_exit_code(&p), 0, "smdctl wake 60 schedules a wake timer");
        proc_free(&p);

        ms = suspend_cycle(&a, bus, &seen, "suspend");
        f = fopen(rtc, "re");
        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = 0;
                fclose(f);
        }
        {
                long long when = atoll(buf), expect = (long long) time(NULL) + 60;

                ok(when >= expect - 5 && when <= expect + 2,
                   "the RTC wake alarm holds the timer's deadline as wall-clock seconds (%s, "
                   "expected about %lld)",
                   buf, expect);
        }
        st = status_json(a.socket_path);
        cmp_int(status_int(st, "platform", "suspend", "last_release_us"), <,
                RELEASE_LIMIT_MS * 1000, "the agent reports its own release latency");
        tap_diag("release latency: %ld ms measured by the test, %lld us reported by the agent", ms,
                 (long long) status_int(st, "platform", "suspend", "last_release_us"));
        json_object_put(st);

        /* A participant that never reads, with a backlog it will never take. */
        is_int(raw_open_smd(&stuck, a.socket_path, SMD_CLASS_ALL), 0,
               "a participant that never reads joins");
        is_int(raw_connect(&flood, a.socket_path), 0, "a publisher connects");
        is_int(raw_send_streamtype(&flood, "_lws_smd", 0), 0, "and opens the bus");
        {
                char payload[300];
                int sent = 0;

                memset(payload, 'x', sizeof(payload));
                payload[0] = '"';
                payload[sizeof(payload) - 1] = '"';
                for (int i = 0; i < 3000; i++)
                        if (raw_send_publish(&flood, SMD_CLASS_USER(0), payload, sizeof(payload)) ==
                            0)
                                sent++;
                is_int(sent, 3000, "3000 messages published to fill its socket and backlog");
        }
        harness_sleep_ms(300);
        pump(bus, 100);
        ms_stuck = suspend_cycle(&a, bus, &seen, "with a stuck participant");
        {
                char *log = agent_log(&a);

                ok(strstr(log, "a participant is not reading") != NULL,
                   "the agent released the lock without waiting for the stuck participant");
                free(log);
        }
        tap_diag("release latency with a stuck participant: %ld ms", ms_stuck);
        raw_close(&stuck);
        raw_close(&flood);

        /* logind restarts: the agent takes a new inhibitor when the name reappears. */
        proc_kill(&mock);
        proc_free(&mock);
        mock = (Proc) PROC_NULL;
        harness_sleep_ms(300);
        st = status_json(a.socket_path);
        ok(st && strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "\"state\":\"no-logind\""),
           "logind gone: status says no-logind");
        json_object_put(st);
        ok(start_mock(&mock), "logind comes back");
        ok(wait_inhibitor(1, 5000), "and the agent holds a delay inhibitor again");

        is_int(agent_stop(&a, 5000), 0, "the agent exits 0");
        (void) agent_check_log(&a);
out:
        smd_bus_close(bus);
        agent_free(&a);
        proc_kill(&mock);
        proc_free(&mock);
        proc_kill(&dbus);
        proc_free(&dbus);
}

/* No bus at start: the no-op path, said once; then the bus appears and we connect. */
static void test_late_bus(void)
{
        Proc dbus = PROC_NULL, mock = PROC_NULL;
        Agent a = {.proc = PROC_NULL, .notify_fd = -1};
        char sock[160], env_bus[320], *log;
        json_object *st;

        harness_path(sock, sizeof(sock), "late_bus_socket");
        snprintf(bus_address, sizeof(bus_address), "unix:path=%s", sock);
        snprintf(env_bus, sizeof(env_bus), "DBUS_SYSTEM_BUS_ADDRESS=%s", bus_address);
        if (!agent_start(&a, &(AgentOptions){
                                 .name = "late",
                                 .socket_path = harness_path((char[256]){0}, 256, "late.sock"),
                                 .env = (const char *const[]){env_bus, NULL},
                                 .args = (const char *const[]){"--no-system-policy", NULL},
                             }))
                goto out;
        st = status_json(a.socket_path);
        ok(st && strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "\"state\":\"no-bus\""),
           "no system bus: status says no-bus");
        ok(st && strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "\"state\":\"OPERATIONAL\""),
           "and the agent is OPERATIONAL all the same");
        json_object_put(st);
        if (!start_dbus(&dbus, "late_bus_socket") || !start_mock(&mock)) {
                ok(false, "the bus and logind appear");
                goto out;
        }
        ok(wait_inhibitor(1, 8000),
           "the agent connects once the bus appears and takes an inhibitor");
        log = agent_log(&a);
        {
                size_t n = 0;

                for (const char *p = log; (p = strstr(p, "no system bus")); p++)
                        n++;
                is_int(n, 1, "\"no system bus\" is logged once");
        }
        free(log);
        is_int(agent_stop(&a, 5000), 0, "the agent exits 0");
        (void) agent_check_log(&a);
out:
        agent_free(&a);
        proc_kill(&mock);
        proc_free(&mock);
        proc_kill(&dbus);
        proc_free(&dbus);
}

int main(void)
{
        Proc p;

        harness_init(90);
        proc_run(&p, (const char *const[]){"/usr/bin/python3", "-c", "import dbusmock", NULL}, NULL,
                 10000);
        if (proc_exit_code(&p) != 0 || access("/usr/bin/dbus-daemon", X_OK) < 0) {
                proc_free(&p);
                tap_skip_all("needs dbus-daemon and python3-dbusmock (/usr/bin/python3)");
        }
        proc_free(&p);
        test_suspend();
        test_late_bus();
        return harness_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * smdctl: query and drive smdagent. Every command talks to the agent through
 * libsmd: the bus commands through `_lws_smd`, the rest through `_smd_ctl`.
 *
 * Exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "message.h"
#include "policy.h"
#include "smd/smd.h"
#include "smdctl-stream.h"
#include "states.h"
#include "util.h"

#define EXIT_USAGE           2
#define CONTROL_TIMEOUT_USEC (10 * USEC_PER_SEC)

static const char *arg_socket;
static bool arg_json;
static char *socket_path;

_printf_(1, 2) static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("smdctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_USAGE;
}

_printf_(1, 2) static int fail(const char *fmt, ...)
{
        va_list ap;

        fputs("smdctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_FAILURE;
}

static void help(void)
{
        printf("Usage: smdctl [OPTIONS] COMMAND ...\n\n"
               "Query and drive smdagent, the system message bus and connectivity agent.\n\n"
               "Commands:\n"
               "  monitor [--class LIST] [--count N] [--timeout SECONDS]\n"
               "                          print messages from the bus as they arrive\n"
               "  publish --class LIST PAYLOAD\n"
               "                          publish one message (payload at most 384 bytes)\n"
               "  status                  show the agent's state and counters\n"
               "  wait [--state NAME] [--online] [--timeout SECONDS]\n"
               "                          wait for a system state (default OPERATIONAL),\n"
               "                          or with --online for connectivity\n"
               "  wake SECONDS            schedule a wake-up timer in the agent\n"
               "  policy check FILE...    validate policy files (no agent needed)\n"
               "  policy show             the effective policy and where it came from\n"
               "  policy reload           rebuild the policy from its files\n"
               "  captive status          the last captive portal verdict\n"
               "  captive check [--timeout S] [--api URL]\n"
               "                          check now and print the verdict (exit 0 OK,\n"
               "                          3 captive, 4 no internet)\n"
               "  policy fetch [--timeout S]\n"
               "                          fetch the policy now and wait for the outcome\n"
               "  stream STREAMTYPE [--meta NAME=VALUE]... [--data FILE|-] [--states]\n"
               "         [--timeout S]    open a policy streamtype through the agent; payload\n"
               "                          to stdout (exit 1 NACK, 3 refused, 4 unreachable,\n"
               "                          5 timeout)\n\n"
               "Options:\n"
               "  -s, --socket PATH       the agent's socket (default: $SMD_SOCKET, else\n"
               "                          /run/smdagent/ss.sock for root, else\n"
               "                          $XDG_RUNTIME_DIR/smdagent/ss.sock)\n"
               "  -j, --json              machine-readable output\n"
               "  -h, --help              show this help\n"
               "      --version           show the version\n\n"
               "Classes: network, system_state, interaction, metrics, user0 ... user7, all.\n"
               "See smdctl(1).\n");
}

static int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Seconds with an optional fraction, to µs. */
static int parse_seconds(const char *s, uint64_t *ret)
{
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno || *end || !(d >= 0) || d > 1e9)
                return -EINVAL;
        *ret = (uint64_t) (d * 1e6);
        return 0;
}

static int parse_class_option(const char *arg, uint32_t *ret)
{
        const char *bad;
        size_t badlen;

        if (classes_parse(arg, ret, &bad, &badlen) < 0)
                return usage_error("unknown class \"%.*s\" in \"%s\" (classes: network, "
                                   "system_state, interaction, metrics, user0 ... user7, all)",
                                   (int) badlen, bad, arg);
        return 0;
}

static int open_bus(smd_bus **ret, uint32_t classes)
{
        int r = smd_bus_open(ret, socket_path, classes);

        if (r == -EACCES)
                return fail("%s", smd_bus_get_error(NULL) ? smd_bus_get_error(NULL)
                                                          : "the agent refused the subscription");
        if (r < 0)
                return fail("cannot connect to the agent at %s: %s", socket_path, strerror(-r));
        return 0;
}

/*
 * Process the bus until done(userdata) says so or the CLOCK_MONOTONIC
 * deadline (UINT64_MAX: none) passes. Returns 0 either way, or -errno when the
 * bus failed; the caller tells the two outcomes apart with done().
 */
static int bus_run_until(smd_bus *bus, bool (*done)(void *userdata), void *userdata,
                         uint64_t deadline)
{
        while (!done(userdata)) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                int r;

                if (now >= deadline)
                        return 0;
                r = smd_bus_wait(bus, deadline == UINT64_MAX ? UINT64_MAX : deadline - now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* monitor */

typedef struct MonitorState {
        uint64_t count, seen;
        int status;
} MonitorState;

static void print_message(const smd_message *m)
{
        char classes[160];
        json_object *payload;
        json_tokener *tok;

        classes_format(m->classes, classes, sizeof(classes));
        if (!arg_json) {
                if (m->lost)
                        printf("-- lost %u messages --\n", m->lost);
                printf("%" PRIu64 ".%06" PRIu64 " %s %.*s\n", m->timestamp_us / USEC_PER_SEC,
                       m->timestamp_us % USEC_PER_SEC, classes, (int) m->size, m->payload);
                return;
        }
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        for (const char *p = classes; *p;) {
                size_t n = strcspn(p, ",");
                json_object_array_add(a, json_object_new_string_len(p, (int) n));
                p += n + (p[n] == ',');
        }
        json_object_object_add(o, "class", a);
        json_object_object_add(o, "ts_us", json_object_new_int64((int64_t) m->timestamp_us));
        tok = json_tokener_new();
        payload = tok ? json_tokener_parse_ex(tok, m->payload, (int) m->size) : NULL;
        if (!payload || !tok || json_tokener_get_error(tok) != json_tokener_success ||
            tok->char_offset != (int) m->size) {
                json_object_put(payload);
                payload = json_object_new_string_len(m->payload, (int) m->size);
        }
        json_tokener_free(tok);
        json_object_object_add(o, "payload", payload);
        if (m->lost)
                json_object_object_add(o, "lost", json_object_new_int64(m->lost));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

static bool monitor_done(void *userdata)
{
        const MonitorState *s = userdata;

        return s->count && s->seen >= s->count;
}

static bool flag_is_set(void *userdata)
{
        return *(const bool *) userdata;
}

static void on_monitor_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        MonitorState *s = userdata;

        if (s->count && s->seen >= s->count)
                return;
        print_message(m);
        s->seen++;
        fflush(stdout);
}

static void on_monitor_link(smd_bus *bus, int state, void *userdata)
{
        if (state == SMD_LINK_DOWN)
                fprintf(stderr, "smdctl: link to the agent lost; reconnecting\n");
        else
                fprintf(stderr, "smdctl: reconnected; messages sent meanwhile were not seen\n");
}

static int cmd_monitor(int argc, char **argv)
{
        static const struct option options[] = {
            {"class", required_argument, NULL, 'c'},
            {"count", required_argument, NULL, 'n'},
            {"timeout", required_argument, NULL, 't'},
            {"json", no_argument, NULL, 'j'},
            {},
        };
        uint32_t classes = SMD_CLASS_ALL;
        uint64_t timeout = UINT64_MAX, deadline;
        MonitorState s = {};
        smd_bus *bus;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+c:n:t:j", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        if ((r = parse_class_option(optarg, &classes)) != 0)
                                return r;
                        break;
                case 'n':
                        if (parse_uint(optarg, UINT32_MAX, &s.count) < 0 || s.count == 0)
                                return usage_error("--count needs a positive number, not \"%s\"",
                                                   optarg);
                        break;
                case 't':
                        if (parse_seconds(optarg, &timeout) < 0)
                                return usage_error("--timeout needs seconds, not \"%s\"", optarg);
                        break;
                case 'j':
                        arg_json = true;
                        break;
                default:
                        return usage_error("monitor: unknown option");
                }
        }
        if (optind < argc)
                return usage_error("monitor: unexpected argument \"%s\"", argv[optind]);
        if ((r = open_bus(&bus, classes)) != 0)
                return r;
        smd_bus_set_message_handler(bus, on_monitor_message, &s);
        smd_bus_set_link_handler(bus, on_monitor_link, &s);
        deadline = timeout == UINT64_MAX ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout;
        r = bus_run_until(bus, monitor_done, &s, deadline);
        smd_bus_close(bus);
        if (r < 0)
                return fail("monitor failed: %s", strerror(-r));
        if (s.count && s.seen < s.count)
                return fail("timed out after %" PRIu64 " of %" PRIu64 " messages", s.seen, s.count);
        return 0;
}

static int cmd_publish(int argc, char **argv)
{
        static const struct option options[] = {
            {"class", required_argument, NULL, 'c'},
            {},
        };
        uint32_t classes = 0;
        const char *payload;
        smd_bus *bus;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+c:", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        if ((r = parse_class_option(optarg, &classes)) != 0)
                                return r;
                        break;
                default:
                        return usage_error("publish: unknown option");
                }
        }
        if (!classes)
                return usage_error("publish needs --class");
        if (optind + 1 != argc)
                return usage_error("publish needs exactly one PAYLOAD argument");
        payload = argv[optind];
        if (strlen(payload) > SMD_PAYLOAD_MAX)
                return usage_error("payload is %zu bytes; at most %d are allowed", strlen(payload),
                                   SMD_PAYLOAD_MAX);
        if ((r = open_bus(&bus, 0)) != 0)
                return r;
        r = smd_bus_publish(bus, classes, payload, strlen(payload));
        if (r >= 0)
                r = smd_bus_flush(bus, CONTROL_TIMEOUT_USEC);
        if (r == -EACCES) {
                char names[128];
                classes_format(classes, names, sizeof(names));
                smd_bus_close(bus);
                return fail("the agent refused to publish to class %s (publishing it needs root "
                            "or group smdagent by default)",
                            names);
        }
        smd_bus_close(bus);
        if (r < 0)
                return fail("publish failed: %s", strerror(-r));
        return 0;
}

/* One control request; a refusal ("ok": false) is reported and is exit status 1. */
static int control_within(const char *request, uint64_t timeout_usec, json_object **ret)
{
        char *reply = NULL;
        json_object *o, *okv;
        int r = smd_control(socket_path, request, &reply, timeout_usec);

        if (r == -ETIMEDOUT)
                return fail("the agent did not answer within %.1f s", (double) timeout_usec / 1e6);
        if (r < 0)
                return fail("cannot reach the agent at %s: %s", socket_path, strerror(-r));
        o = json_tokener_parse(reply);
        free(reply);
        if (!o)
                return fail("the agent sent an answer that is not JSON");
        if (json_object_object_get_ex(o, "ok", &okv) && !json_object_get_boolean(okv)) {
                json_object *e;
                json_object_object_get_ex(o, "error", &e);
                r = fail("%s", e ? json_object_get_string(e) : "request failed");
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

static int control(const char *request, json_object **ret)
{
        return control_within(request, CONTROL_TIMEOUT_USEC, ret);
}

static const char *jstr(json_object *o, const char *key)
{
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static int64_t jint(json_object *o, const char *key)
{
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void print_links(json_object *o)
{
        json_object *links, *routes;

        if (!json_object_object_get_ex(o, "links", &links) ||
            !json_object_is_type(links, json_type_array))
                return;
        printf("       links:%s\n", json_object_array_length(links) ? "" : " (none known)");
        for (size_t i = 0; i < json_object_array_length(links); i++) {
                json_object *l = json_object_array_get_idx(links, i), *addrs, *carrier;

                json_object_object_get_ex(l, "carrier", &carrier);
                printf("              %s: %s, %s", jstr(l, "if"), jstr(l, "admin"),
                       json_object_get_boolean(carrier) ? "carrier" : "no carrier");
                if (json_object_object_get_ex(l, "addrs", &addrs))
                        for (size_t k = 0; k < json_object_array_length(addrs); k++)
                                printf(" %s",
                                       json_object_get_string(json_object_array_get_idx(addrs, k)));
                printf("\n");
        }
        if (json_object_object_get_ex(o, "default_routes", &routes))
                for (size_t i = 0; i < json_object_array_length(routes); i++) {
                        json_object *r = json_object_array_get_idx(routes, i), *gw;

                        json_object_object_get_ex(r, "gw", &gw);
                        printf("     default: %s via %s, index %" PRId64 ", metric %" PRId64 "\n",
                               jstr(r, "family"), gw ? json_object_get_string(gw) : "(no gateway)",
                               jint(r, "index"), jint(r, "metric"));
                }
}

static void print_platform(json_object *o)
{
        json_object *p, *w, *l, *n, *e, *f;

        if (!json_object_object_get_ex(o, "platform", &p))
                return;
        if (json_object_object_get_ex(p, "wake", &w)) {
                json_object_object_get_ex(w, "earliest_in_us", &e);
                json_object_object_get_ex(w, "fallback", &f);
                printf("        wake: %s%s%s%s, ", jstr(w, "clock"),
                       f ? " (alarm clock refused: " : "", f ? json_object_get_string(f) : "",
                       f ? ")" : "");
                if (e)
                        printf("earliest in %.1f s\n", (double) json_object_get_int64(e) / 1e6);
                else
                        printf("no wake-up scheduled\n");
        }
        if (json_object_object_get_ex(p, "logind", &l)) {
                json_object *inh;

                json_object_object_get_ex(l, "inhibitor", &inh);
                printf("      logind: %s%s\n", jstr(l, "state"),
                       json_object_get_boolean(inh) ? ", holding a sleep delay inhibitor" : "");
        }
        if (json_object_object_get_ex(p, "netlink", &n))
                printf("     netlink: %s, %" PRId64 " messages, %" PRId64 " resyncs\n",
                       jstr(n, "state"), jint(n, "messages"), jint(n, "resyncs"));
}

static int cmd_status(int argc, char **argv)
{
        json_object *o = NULL, *b = NULL, *u = NULL;
        int r;

        if (argc > 1)
                return usage_error("status: unexpected argument \"%s\"", argv[1]);
        if ((r = control("{\"cmd\":\"status\"}", &o)) != 0)
                return r;
        if (arg_json) {
                printf("%s\n", json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        json_object_object_get_ex(o, "bus", &b);
        printf("smdagent %s (pid %" PRId64 ")\n", jstr(o, "version"), jint(o, "pid"));
        printf("       state: %s\n", jstr(o, "state"));
        printf("      uptime: %.1f s\n", (double) jint(o, "uptime_us") / 1e6);
        printf("      socket: %s\n", jstr(o, "socket"));
        printf("connectivity: %s (%s)\n", jstr(o, "connectivity"),
               json_object_object_get_ex(o, "usable_route", &u) && json_object_get_boolean(u)
                   ? "a usable default route"
                   : "no usable default route");
        print_links(o);
        print_platform(o);
        printf("participants: %" PRId64 "\n", jint(o, "participants"));
        printf("    messages: %" PRId64 " sent, %" PRId64 " delivered, %" PRId64 " lost, %" PRId64
               " queued\n",
               jint(b, "sent"), jint(b, "delivered"), jint(b, "lost"), jint(b, "queued_messages"));
        json_object_put(o);
        return 0;
}

/* wait */

typedef struct WaitState {
        SystemState target;
        bool online;
        bool done;
        const char *seen; /* the last state seen, for the timeout message */
        char seen_buf[32];
} WaitState;

static void on_wait_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        WaitState *w = userdata;
        char text[SMD_PAYLOAD_MAX + 1];
        json_object *o, *v;

        if (w->done)
                return;
        memcpy(text, m->payload, MIN(m->size, (size_t) SMD_PAYLOAD_MAX));
        text[MIN(m->size, (size_t) SMD_PAYLOAD_MAX)] = 0;
        o = json_tokener_parse(text);
        if (!o)
                return;
        if (!w->online && (m->classes & SMD_CLASS_SYSTEM_STATE) &&
            json_object_object_get_ex(o, "state", &v) && json_object_is_type(v, json_type_string)) {
                SystemState s = system_state_from_string(json_object_get_string(v));

                /* SUSPENDING and RESUMED are events, not bring-up states: they do not count. */
                if (s != _SYSTEM_STATE_INVALID) {
                        snprintf(w->seen_buf, sizeof(w->seen_buf), "%s", json_object_get_string(v));
                        w->seen = w->seen_buf;
                        if (s >= w->target)
                                w->done = true;
                }
        }
        if (w->online && (m->classes & SMD_CLASS_NETWORK) &&
            json_object_object_get_ex(o, "type", &v) &&
            streq(json_object_get_string(v), "connectivity")) {
                json_object *state, *route, *cpd;
                bool detecting =
                    json_object_object_get_ex(o, "cpd", &cpd) && json_object_get_boolean(cpd);

                /* With captive portal detection on, only its "ok" is online; without it (or
                 * from an agent that does not say), a usable default route is. */
                if ((json_object_object_get_ex(o, "state", &state) &&
                     streq(json_object_get_string(state), "ok")) ||
                    (!detecting && json_object_object_get_ex(o, "route", &route) &&
                     json_object_get_boolean(route)))
                        w->done = true;
        }
        json_object_put(o);
}

static int cmd_wait(int argc, char **argv)
{
        static const struct option options[] = {
            {"state", required_argument, NULL, 's'},
            {"online", no_argument, NULL, 'o'},
            {"timeout", required_argument, NULL, 't'},
            {},
        };
        WaitState w = {.target = SYSTEM_STATE_OPERATIONAL};
        uint64_t timeout = 120 * USEC_PER_SEC, deadline;
        smd_bus *bus;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+s:ot:", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        w.target = system_state_from_string(optarg);
                        if (w.target == _SYSTEM_STATE_INVALID)
                                return usage_error(
                                    "unknown state \"%s\" (states: INITIALIZED, IFACE_COLDPLUG, "
                                    "DHCP, CPD_PRE_TIME, TIME_VALID, CPD_POST_TIME, POLICY_VALID, "
                                    "OPERATIONAL)",
                                    optarg);
                        break;
                case 'o':
                        w.online = true;
                        break;
                case 't':
                        if (parse_seconds(optarg, &timeout) < 0)
                                return usage_error("--timeout needs seconds, not \"%s\"", optarg);
                        break;
                default:
                        return usage_error("wait: unknown option");
                }
        }
        if (optind < argc)
                return usage_error("wait: unexpected argument \"%s\"", argv[optind]);
        /* 0: wait as long as it takes. */
        deadline = timeout == 0 ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout;
        /* The agent may not be up yet: waiting for it is part of waiting. */
        for (;;) {
                r = smd_bus_open(&bus, socket_path,
                                 w.online ? SMD_CLASS_NETWORK : SMD_CLASS_SYSTEM_STATE);
                if (r >= 0)
                        break;
                if ((r != -ENOENT && r != -ECONNREFUSED) || now_usec(CLOCK_MONOTONIC) >= deadline)
                        return fail("cannot connect to the agent at %s: %s", socket_path,
                                    strerror(-r));
                (void) usleep(100 * 1000);
        }
        smd_bus_set_message_handler(bus, on_wait_message, &w);
        r = bus_run_until(bus, flag_is_set, &w.done, deadline);
        smd_bus_close(bus);
        if (r < 0)
                return fail("wait failed: %s", strerror(-r));
        if (!w.done) {
                if (w.online)
                        return fail("timed out waiting for connectivity");
                return fail("timed out waiting for %s (the agent is at %s)",
                            system_state_to_string(w.target), w.seen ? w.seen : "an unknown state");
        }
        return 0;
}

static int cmd_wake(int argc, char **argv)
{
        char request[96];
        uint64_t usec;
        json_object *o;
        int r;

        if (argc != 2)
                return usage_error("wake needs exactly one argument: SECONDS from now");
        if (parse_seconds(argv[1], &usec) < 0 || usec > 365 * 24 * 3600 * USEC_PER_SEC)
                return usage_error("wake needs seconds (at most a year), not \"%s\"", argv[1]);
        snprintf(request, sizeof(request), "{\"cmd\":\"wake\",\"in_ms\":%" PRIu64 "}",
                 usec / USEC_PER_MSEC);
        if ((r = control(request, &o)) != 0)
                return r;
        if (arg_json)
                printf("%s\n", json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                printf("wake timer %" PRId64 " scheduled on %s\n", jint(o, "id"), jstr(o, "clock"));
        json_object_put(o);
        return 0;
}

static int policy_check(int argc, char **argv)
{
        int status = 0;

        if (argc < 2)
                return usage_error("policy check needs at least one FILE");
        for (int i = 1; i < argc; i++) {
                PolicyErrors errors = {};
                int r = policy_check_file(argv[i], &errors);

                if (r < 0) {
                        status = EXIT_FAILURE;
                        for (size_t k = 0; k < errors.n_messages; k++)
                                fprintf(stderr, "%s\n", errors.messages[k]);
                        if (errors.n_messages == 0)
                                fprintf(stderr, "%s: %s\n", argv[i], strerror(-r));
                } else if (!arg_json)
                        printf("%s: valid\n", argv[i]);
                policy_errors_clear(&errors);
        }
        return status;
}

/* A CLOCK_REALTIME µs stamp as local time; "never" for 0. */
static const char *format_realtime(int64_t usec, char *buf, size_t size)
{
        time_t t = (time_t) (usec / (int64_t) USEC_PER_SEC);
        struct tm tm;

        if (usec <= 0 || !localtime_r(&t, &tm) ||
            strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "never");
        return buf;
}

static void print_origin(json_object *origin)
{
        json_object *f, *v;
        char when[64];

        printf("origin: %s", jstr(origin, "origin"));
        if (json_object_object_get_ex(origin, "layer_source", &v))
                printf(" (%s)", json_object_get_string(v));
        printf("\n");
        if (!streq(jstr(origin, "origin"), "local"))
                printf("fetched: %s\n",
                       format_realtime(jint(origin, "fetched_realtime_us"), when, sizeof(when)));
        if (json_object_object_get_ex(origin, "signing_key", &v))
                printf("signing key: %s\n", json_object_get_string(v));
        if (!json_object_object_get_ex(origin, "fetch", &f) ||
            !json_object_object_get_ex(f, "configured", &v) || !json_object_get_boolean(v))
                return;
        printf("fetch: %" PRId64 " attempts, %" PRId64 " failed", jint(f, "attempts"),
               jint(f, "failures"));
        if (jint(f, "interval_s") > 0)
                printf(", every %" PRId64 " s", jint(f, "interval_s"));
        if (json_object_object_get_ex(f, "running", &v) && json_object_get_boolean(v))
                printf(", one running");
        printf("\n");
        if (json_object_object_get_ex(f, "last_result", &v)) {
                printf("last fetch: %s at %s", json_object_get_string(v),
                       format_realtime(jint(f, "last_done_realtime_us"), when, sizeof(when)));
                if (json_object_object_get_ex(f, "last_reason", &v))
                        printf(": %s", json_object_get_string(v));
                printf("\n");
        }
}

static int policy_show(int argc, char **argv)
{
        json_object *o, *pol, *src, *origin;
        int r;

        if (argc > 1)
                return usage_error("policy show: unexpected argument \"%s\"", argv[1]);
        if ((r = control("{\"cmd\":\"policy-show\"}", &o)) != 0)
                return r;
        if (arg_json) {
                printf("%s\n", json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        printf("release: %s\n", jstr(o, "release"));
        if (json_object_object_get_ex(o, "origin", &origin))
                print_origin(origin);
        if (json_object_object_get_ex(o, "sources", &src)) {
                printf("sources:\n");
                for (size_t i = 0; i < json_object_array_length(src); i++)
                        printf("  %s\n", json_object_get_string(json_object_array_get_idx(src, i)));
        }
        if (json_object_object_get_ex(o, "policy", &pol))
                printf("%s\n", json_object_to_json_string_ext(
                                   pol, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE |
                                            JSON_C_TO_STRING_SPACED));
        json_object_put(o);
        return 0;
}

static int policy_reload(int argc, char **argv)
{
        json_object *o;
        int r;

        if (argc > 1)
                return usage_error("policy reload: unexpected argument \"%s\"", argv[1]);
        if ((r = control("{\"cmd\":\"policy-reload\"}", &o)) != 0)
                return r;
        if (arg_json)
                printf("%s\n", json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                printf("policy reloaded: release %s, %" PRId64 " streamtypes\n", jstr(o, "release"),
                       jint(o, "streamtypes"));
        json_object_put(o);
        return 0;
}

typedef struct FetchWait {
        bool done, updated;
        char text[SMD_PAYLOAD_MAX + 1];
} FetchWait;

static void on_fetch_message(smd_bus *bus, const smd_message *m, void *userdata)
{
        FetchWait *w = userdata;
        json_object *o, *v;
        size_t n = MIN(m->size, (size_t) SMD_PAYLOAD_MAX);

        if (w->done)
                return;
        memcpy(w->text, m->payload, n);
        w->text[n] = 0;
        o = json_tokener_parse(w->text);
        if (o && json_object_object_get_ex(o, "policy", &v) &&
            json_object_is_type(v, json_type_string)) {
                w->done = true;
                w->updated = streq(json_object_get_string(v), "updated");
        }
        json_object_put(o);
}

static int policy_fetch(int argc, char **argv)
{
        static const struct option options[] = {
            {"timeout", required_argument, NULL, 't'},
            {},
        };
        uint64_t timeout = 120 * USEC_PER_SEC, deadline;
        FetchWait w = {};
        json_object *o, *v;
        smd_bus *bus;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+t:", options, NULL)) >= 0) {
                if (c != 't' || parse_seconds(optarg, &timeout) < 0)
                        return usage_error("policy fetch: --timeout needs seconds");
        }
        if (optind < argc)
                return usage_error("policy fetch: unexpected argument \"%s\"", argv[optind]);
        /* Subscribed before asking: the outcome cannot pass unseen. */
        r = open_bus(&bus, SMD_CLASS_SYSTEM_STATE);
        if (r != 0)
                return r;
        smd_bus_set_message_handler(bus, on_fetch_message, &w);
        r = control("{\"cmd\":\"policy-fetch\"}", &o);
        if (r != 0) {
                smd_bus_close(bus);
                return r;
        }
        json_object_put(o);
        deadline = timeout == 0 ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout;
        r = bus_run_until(bus, flag_is_set, &w.done, deadline);
        smd_bus_close(bus);
        if (r < 0)
                return fail("policy fetch: lost the agent: %s", strerror(-r));
        if (!w.done)
                return fail("policy fetch: no outcome within the timeout");
        if (arg_json) {
                printf("%s\n", w.text);
                return w.updated ? 0 : 1;
        }
        o = json_tokener_parse(w.text);
        if (w.updated)
                printf("policy updated: release %s\n",
                       o && json_object_object_get_ex(o, "release", &v) ? json_object_get_string(v)
                                                                        : "");
        else
                r = fail("policy fetch failed, the running policy stays in force: %s",
                         o && json_object_object_get_ex(o, "reason", &v) ? json_object_get_string(v)
                                                                         : "unknown reason");
        json_object_put(o);
        return w.updated ? 0 : (r ? r : 1);
}

static int cmd_policy(int argc, char **argv)
{
        if (argc < 2)
                return usage_error("policy needs a subcommand: check, show, reload or fetch");
        if (streq(argv[1], "check"))
                return policy_check(argc - 1, argv + 1);
        if (streq(argv[1], "show"))
                return policy_show(argc - 1, argv + 1);
        if (streq(argv[1], "reload"))
                return policy_reload(argc - 1, argv + 1);
        if (streq(argv[1], "fetch"))
                return policy_fetch(argc - 1, argv + 1);
        return usage_error("unknown policy subcommand \"%s\"", argv[1]);
}

/* captive */

#define EXIT_CAPTIVE         3
#define EXIT_NO_INTERNET     4
#define CAPTIVE_WAIT_DEFAULT (30 * USEC_PER_SEC)
#define CAPTIVE_API_URL_MAX  2048u

static const char *jstr_or(json_object *o, const char *key, const char *none)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return none;
        return json_object_get_string(v);
}

/* The exit status a verdict stands for; 1 for anything that is not a verdict. */
static int captive_exit_status(const char *result)
{
        if (streq(result, "OK"))
                return 0;
        if (streq(result, "Captive"))
                return EXIT_CAPTIVE;
        if (streq(result, "No internet"))
                return EXIT_NO_INTERNET;
        return EXIT_FAILURE;
}

static void print_captive(json_object *o)
{
        const char *result = jstr_or(o, "result", NULL);
        int64_t checked = jint(o, "checked_us");
        json_object *v;

        if (arg_json) {
                printf("%s\n", json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                return;
        }
        printf("     verdict: %s\n", result ? result : "unknown (no check has finished)");
        if (checked > 0) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                printf("     checked: %.1f s ago, started by %s\n",
                       now > (uint64_t) checked ? (double) (now - (uint64_t) checked) / 1e6 : 0.0,
                       jstr(o, "trigger"));
        }
        printf("        ipv4: %s\n", jstr_or(o, "ipv4", "not checked"));
        printf("        ipv6: %s\n", jstr_or(o, "ipv6", "not checked"));
        if (json_object_object_get_ex(o, "portal", &v))
                printf("      portal: %s\n", json_object_get_string(v));
        if (json_object_object_get_ex(o, "seconds_remaining", &v))
                printf("   remaining: %" PRId64 " s\n", json_object_get_int64(v));
        if (json_object_object_get_ex(o, "checking", &v) && json_object_get_boolean(v))
                printf("    checking: now\n");
}

static int captive_status(int argc, char **argv)
{
        json_object *o;
        int r;

        if (argc > 1)
                return usage_error("captive status: unexpected argument \"%s\"", argv[1]);
        if ((r = control("{\"cmd\":\"captive-status\"}", &o)) != 0)
                return r;
        print_captive(o);
        json_object_put(o);
        return 0;
}

static bool api_url_is_valid(const char *url)
{
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
                return false;
        if (strlen(url) > CAPTIVE_API_URL_MAX)
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

static int captive_check(int argc, char **argv)
{
        static const struct option options[] = {
            {"timeout", required_argument, NULL, 't'},
            {"api", required_argument, NULL, 'a'},
            {},
        };
        uint64_t timeout = CAPTIVE_WAIT_DEFAULT;
        const char *api = NULL;
        json_object *req, *o;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+t:a:", options, NULL)) >= 0) {
                switch (c) {
                case 't':
                        if (parse_seconds(optarg, &timeout) < 0 || timeout == 0)
                                return usage_error(
                                    "--timeout needs a positive number of seconds, not \"%s\"",
                                    optarg);
                        break;
                case 'a':
                        if (!api_url_is_valid(optarg))
                                return usage_error("--api needs an http:// or https:// URL of at "
                                                   "most %u bytes, not \"%s\"",
                                                   CAPTIVE_API_URL_MAX, optarg);
                        api = optarg;
                        break;
                default:
                        return usage_error("captive check: unknown option");
                }
        }
        if (optind < argc)
                return usage_error("captive check: unexpected argument \"%s\"", argv[optind]);
        req = json_object_new_object();
        json_object_object_add(req, "cmd", json_object_new_string("captive-check"));
        json_object_object_add(req, "timeout_ms",
                               json_object_new_int64((int64_t) (timeout / USEC_PER_MSEC)));
        if (api)
                json_object_object_add(req, "api", json_object_new_string(api));
        r = control_within(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
                           timeout, &o);
        json_object_put(req);
        if (r != 0)
                return r;
        print_captive(o);
        r = captive_exit_status(jstr_or(o, "result", ""));
        json_object_put(o);
        return r;
}

static int cmd_captive(int argc, char **argv)
{
        if (argc < 2)
                return usage_error("captive needs a subcommand: status or check");
        if (streq(argv[1], "status"))
                return captive_status(argc - 1, argv + 1);
        if (streq(argv[1], "check"))
                return captive_check(argc - 1, argv + 1);
        return usage_error("unknown captive subcommand \"%s\"", argv[1]);
}

static int cmd_stream(int argc, char **argv)
{
        return smdctl_stream(argc, argv, socket_path);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"socket", required_argument, NULL, 's'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        static const struct {
                const char *name;
                int (*run)(int argc, char **argv);
        } commands[] = {
            {"monitor", cmd_monitor}, {"publish", cmd_publish}, {"status", cmd_status},
            {"wait", cmd_wait},       {"wake", cmd_wake},       {"policy", cmd_policy},
            {"stream", cmd_stream},   {"captive", cmd_captive},
        };
        int c, r;

        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* --json is global but users write it after the command too: take it anywhere
         * before a "--". */
        {
                int w = 1;
                bool literal = false;

                for (int i = 1; i < argc; i++) {
                        if (!literal && streq(argv[i], "--"))
                                literal = true;
                        if (!literal && (streq(argv[i], "--json") || streq(argv[i], "-j"))) {
                                arg_json = true;
                                continue;
                        }
                        argv[w++] = argv[i];
                }
                argc = w;
                argv[argc] = NULL;
        }
        while ((c = getopt_long(argc, argv, "+s:jh", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        arg_socket = optarg;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("smdctl %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage_error("no command given");
        if (arg_socket)
                socket_path = strdup(arg_socket);
        else if ((r = smd_default_socket_path(&socket_path)) < 0)
                return fail("cannot tell where the agent's socket is (%s): set XDG_RUNTIME_DIR "
                            "or pass --socket PATH",
                            strerror(-r));
        if (!socket_path)
                return fail("out of memory");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[optind], commands[i].name)) {
                        r = commands[i].run(argc - optind, argv + optind);
                        free(socket_path);
                        return r;
                }
        free(socket_path);
        return usage_error("unknown command \"%s\"", argv[optind]);
}

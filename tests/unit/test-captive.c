/* SPDX-License-Identifier: MIT */
/*
 * The captive portal check scheduler on a fake clock with a scripted fake
 * probe: one check at a time and exactly one remembered re-run, the first
 * outcome final, best of two families, hysteresis both ways, the backoff
 * sequence and its jitter bounds, the periodic interval, link kinds, the
 * probe timeout bounding a hung probe, route and resume triggers, and the
 * smdctl check request getting the verdict of its own check.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "captive.h"
#include "cpd-message.h"
#include "sul.h"
#include "tap.h"
#include "util.h"

#define SEC USEC_PER_SEC

/* ---- fake clock and scheduler ---- */

static uint64_t fake_now;

static uint64_t fake_clock(clockid_t clock, void *userdata)
{
        return fake_now;
}

/* Runs everything due now, including what due callbacks schedule for now. */
static void run_due(Scheduler *s)
{
        for (unsigned i = 0; i < 100 && scheduler_run_due(s, TIMER_LIST_NORMAL, fake_now) > 0; i++)
                ;
}

static void advance(Scheduler *s, uint64_t usec)
{
        fake_now += usec;
        run_due(s);
}

/* ---- fake probe ---- */

typedef struct FakeProbe {
        int family;
        bool running;
        bool cancelled;
        bool reported;
} FakeProbe;

static FakeProbe probes[256];
static unsigned n_probes;
static int start_error; /* start() fails with this when set */

static int fake_start(Captive *c, int family, void *userdata, void **ret_handle)
{
        FakeProbe *p;

        if (start_error)
                return start_error;
        if (n_probes >= ELEMENTSOF(probes))
                return -ENOBUFS;
        p = &probes[n_probes++];
        *p = (FakeProbe){.family = family, .running = true};
        *ret_handle = p;
        return 0;
}

static void fake_cancel(void *handle, void *userdata)
{
        FakeProbe *p = handle;

        ok(p->running, "only a running probe is cancelled");
        p->running = false;
        p->cancelled = true;
}

static const ProbeOps fake_ops = {.start = fake_start, .cancel = fake_cancel};

/* The latest probe started for family, or NULL. */
static FakeProbe *last_probe(int family)
{
        for (unsigned i = n_probes; i > 0; i--)
                if (probes[i - 1].family == family)
                        return &probes[i - 1];
        return NULL;
}

static unsigned n_started(int family)
{
        unsigned n = 0;

        for (unsigned i = 0; i < n_probes; i++)
                n += probes[i].family == family;
        return n;
}

static int report(Captive *c, FakeProbe *p, const ProbeOutcome *o)
{
        int r = captive_probe_done(c, p, o);

        if (r == 0) {
                p->running = false;
                p->reported = true;
        }
        return r;
}

static int answer(Captive *c, int family, uint16_t status, const char *location)
{
        ProbeOutcome o = {.kind = PROBE_OUTCOME_HTTP, .status = status, .location = location};

        return report(c, last_probe(family), &o);
}

static int fail(Captive *c, int family, ProbeFailure failure)
{
        ProbeOutcome o = {.kind = PROBE_OUTCOME_FAILURE, .failure = failure};

        return report(c, last_probe(family), &o);
}

/* ---- what Captive reported ---- */

static unsigned n_verdicts;
static CaptiveStatus last_verdict;
static char last_message[CPD_MESSAGE_MAX + 1];
static char last_portal[CAPTIVE_URL_MAX + 1];

static void on_verdict(Captive *c, const CaptiveStatus *status, void *userdata)
{
        n_verdicts++;
        last_verdict = *status;
        snprintf(last_portal, sizeof(last_portal), "%s", strempty(status->portal));
        last_verdict.portal = NULL;
        if (cpd_message_format(status, last_message) < 0)
                last_message[0] = '\0';
}

static uint64_t pinned_random;

static uint64_t fixed_random(void *userdata)
{
        return pinned_random;
}

static const CaptiveRoute route_eth0 = {.ifindex = 2, .gateway = {192, 168, 1, 1}};
static const CaptiveRoute route_eth0_v6 = {.ifindex = 2, .gateway = {0xfe, 0x80, [15] = 1}};

typedef struct Fixture {
        Scheduler *scheduler;
        Captive *captive;
} Fixture;

static void fixture_init(Fixture *f, const CaptiveConfig *config)
{
        int r;

        fake_now = 1000 * SEC;
        n_probes = 0;
        start_error = 0;
        n_verdicts = 0;
        last_verdict = (CaptiveStatus){};
        last_message[0] = '\0';
        pinned_random = 0;
        r = scheduler_new(&f->scheduler, NULL);
        if (r < 0)
                tap_skip_all("no scheduler");
        scheduler_set_clock(f->scheduler, fake_clock, NULL);
        r = captive_new(&f->captive, f->scheduler, config, &fake_ops, NULL);
        if (r < 0)
                tap_skip_all("no captive");
        captive_set_verdict_callback(f->captive, on_verdict, NULL);
        captive_set_random(f->captive, fixed_random, NULL);
}

static void fixture_done(Fixture *f)
{
        f->captive = captive_free(f->captive);
        f->scheduler = scheduler_free(f->scheduler);
}

static CaptiveResult state(Fixture *f)
{
        CaptiveStatus s;

        captive_get_status(f->captive, &s);
        return s.result;
}

/* Brings a v4-only fixture to an adopted OK. */
static void reach_ok(Fixture *f)
{
        (void) captive_set_default_route(f->captive, AF_INET, &route_eth0);
        run_due(f->scheduler);
        (void) answer(f->captive, AF_INET, 204, NULL);
}

static void test_startup_ok_and_periodic(void)
{
        Fixture f;
        uint64_t t0;

        fixture_init(&f, NULL);
        ok(!captive_is_checking(f.captive), "nothing runs before the first trigger");
        is_int(captive_set_default_route(f.captive, AF_INET, &route_eth0), 1,
               "a usable default route appearing triggers a check");
        is_int(captive_trigger(f.captive, CAPTIVE_TRIGGER_STARTUP), 0, "startup trigger");
        is_int(n_probes, 0, "no probe starts inside the trigger call");
        run_due(f.scheduler);
        is_int(n_probes, 1, "both triggers before the check start give one check");
        ok(last_probe(AF_INET) && !last_probe(AF_INET6), "only the routed family is probed");
        ok(captive_is_checking(f.captive), "a check is running");

        advance(f.scheduler, 40 * USEC_PER_MSEC);
        t0 = fake_now;
        is_int(answer(f.captive, AF_INET, 204, NULL), 0, "the probe reports 204");
        ok(!captive_is_checking(f.captive), "the check ended with its last family");
        is_int(n_verdicts, 1, "the verdict is reported once");
        is_int(last_verdict.result, CAPTIVE_RESULT_OK, "UNKNOWN -> OK at once");
        is_int(last_verdict.checked_usec, t0, "checked_us is when the check ended");
        is_int(last_verdict.trigger, CAPTIVE_TRIGGER_STARTUP, "the check was the startup one");
        ok(strstr(last_message, "\"result\":\"OK\",\"ipv4\":\"OK\",\"ipv6\":null"),
           "the published message: %s", last_message);

        /* Periodic while OK: exactly the interval, no jitter, three times over. */
        for (int i = 1; i <= 3; i++) {
                is_int(captive_get_next_check(f.captive), t0 + 300 * SEC,
                       "while OK the next check is 300 s later (%d)", i);
                advance(f.scheduler, 300 * SEC - 1);
                is_int(n_started(AF_INET), i, "nothing before the interval (%d)", i);
                advance(f.scheduler, 1);
                is_int(n_started(AF_INET), i + 1, "the periodic check starts on time (%d)", i);
                t0 = fake_now;
                (void) answer(f.captive, AF_INET, 204, NULL);
                is_int(last_verdict.trigger, CAPTIVE_TRIGGER_PERIODIC, "a periodic check (%d)", i);
        }
        is_int(n_verdicts, 4, "every adopted check is reported (checked_us moves on)");
        fixture_done(&f);
}

static void test_one_at_a_time(void)
{
        Fixture f;

        fixture_init(&f, NULL);
        reach_ok(&f);
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 2, "a cpdcheck message starts a check");

        /* Many triggers of every kind during the check. */
        for (int i = 0; i < 5; i++) {
                (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
                (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_STARTUP);
                (void) captive_address_added(f.captive, route_eth0.ifindex);
        }
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 2, "no second check while one runs");
        advance(f.scheduler, 2 * SEC);
        is_int(n_started(AF_INET), 2, "still one at a time two seconds later");

        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(n_started(AF_INET), 2, "the remembered check does not start inside the report");
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 3, "the remembered trigger runs one more check at once");
        (void) answer(f.captive, AF_INET, 204, NULL);
        run_due(f.scheduler);
        advance(f.scheduler, 299 * SEC);
        is_int(n_started(AF_INET), 3, "exactly one extra check, not one per trigger");
        advance(f.scheduler, 1 * SEC);
        is_int(n_started(AF_INET), 4, "then the periodic one");
        fixture_done(&f);
}

static void test_first_verdict_final(void)
{
        Fixture f;
        FakeProbe *p;

        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        (void) captive_set_default_route(f.captive, AF_INET6, &route_eth0_v6);
        run_due(f.scheduler);
        p = last_probe(AF_INET);
        is_int(answer(f.captive, AF_INET, 302, "http://portal/"), 0, "IPv4 reports first");
        ok(captive_is_checking(f.captive), "the check waits for IPv6");
        is_int(captive_probe_done(f.captive, p,
                                  &(ProbeOutcome){.kind = PROBE_OUTCOME_HTTP, .status = 204}),
               -ESTALE, "a second report for the same probe is refused");
        (void) answer(f.captive, AF_INET6, 204, NULL);
        is_int(last_verdict.ipv4, CAPTIVE_RESULT_CAPTIVE, "IPv4 keeps its first verdict");
        is_int(last_verdict.ipv6, CAPTIVE_RESULT_OK, "IPv6 verdict");
        is_int(captive_probe_done(f.captive, last_probe(AF_INET6),
                                  &(ProbeOutcome){.kind = PROBE_OUTCOME_FAILURE}),
               -ESTALE, "a report after the check ended is refused");
        is_int(n_verdicts, 1, "and changes nothing");
        fixture_done(&f);
}

static void test_families(void)
{
        Fixture f;

        /* Best of two: OK wins over No internet. */
        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        (void) captive_set_default_route(f.captive, AF_INET6, &route_eth0_v6);
        run_due(f.scheduler);
        ok(last_probe(AF_INET) && last_probe(AF_INET6), "both families are probed at once");
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_REFUSED);
        is_int(n_verdicts, 0, "no verdict while a family is still out");
        (void) answer(f.captive, AF_INET6, 204, NULL);
        is_int(last_verdict.result, CAPTIVE_RESULT_OK, "No internet + OK is OK");
        ok(strstr(last_message, "\"result\":\"OK\",\"ipv4\":\"No internet\",\"ipv6\":\"OK\""),
           "the message names both: %s", last_message);
        fixture_done(&f);

        /* Captive (with its portal) wins over a timeout. */
        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        (void) captive_set_default_route(f.captive, AF_INET6, &route_eth0_v6);
        run_due(f.scheduler);
        (void) answer(f.captive, AF_INET, 302, "http://portal.example/login");
        advance(f.scheduler, 5 * SEC);
        is_int(last_verdict.result, CAPTIVE_RESULT_CAPTIVE, "Captive + timeout is Captive");
        is_str(last_portal, "http://portal.example/login", "with the portal of the captive family");
        is_int(last_verdict.ipv6, CAPTIVE_RESULT_NO_INTERNET, "the hung IPv6 probe timed out");
        fixture_done(&f);

        /* Both captive: the IPv4 portal is the one named. */
        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        (void) captive_set_default_route(f.captive, AF_INET6, &route_eth0_v6);
        run_due(f.scheduler);
        (void) answer(f.captive, AF_INET6, 302, "http://v6-portal/");
        (void) answer(f.captive, AF_INET, 200, NULL);
        is_str(last_portal, "http://v6-portal/",
               "the portal comes from the first family with the winning verdict that has one");
        fixture_done(&f);

        /* IPv6 only. */
        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET6, &route_eth0_v6);
        run_due(f.scheduler);
        ok(!last_probe(AF_INET) && last_probe(AF_INET6), "an IPv6-only network probes IPv6 only");
        (void) answer(f.captive, AF_INET6, 204, NULL);
        is_int(last_verdict.result, CAPTIVE_RESULT_OK,
               "an IPv6-only network with a good probe is OK");
        ok(strstr(last_message, "\"ipv4\":null,\"ipv6\":\"OK\""), "IPv4 is null: %s", last_message);
        fixture_done(&f);
}

static void test_hysteresis(void)
{
        Fixture f;
        unsigned n;

        /* OK, one bad probe, then good again: stays OK throughout. */
        fixture_init(&f, NULL);
        reach_ok(&f);
        n = n_verdicts;
        advance(f.scheduler, 300 * SEC);
        (void) answer(f.captive, AF_INET, 302, "http://portal/");
        is_int(state(&f), CAPTIVE_RESULT_OK, "one Captive check does not downgrade OK");
        is_int(n_verdicts, n, "and is not reported");
        is_int(captive_get_next_check(f.captive), fake_now + 1 * SEC,
               "the confirming check comes after the first backoff step");
        advance(f.scheduler, 1 * SEC);
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(state(&f), CAPTIVE_RESULT_OK, "a good second check keeps OK");
        is_int(captive_get_next_check(f.captive), fake_now + 300 * SEC, "back to the interval");
        advance(f.scheduler, 300 * SEC);
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_TIMEOUT);
        is_int(state(&f), CAPTIVE_RESULT_OK, "a bad check after a good one needs confirming again");
        fixture_done(&f);

        /* OK, two agreeing Captive checks: downgraded on the second. */
        fixture_init(&f, NULL);
        reach_ok(&f);
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
        run_due(f.scheduler);
        (void) answer(f.captive, AF_INET, 302, "http://portal/1");
        is_int(state(&f), CAPTIVE_RESULT_OK, "first Captive check held");
        advance(f.scheduler, 1 * SEC);
        (void) answer(f.captive, AF_INET, 302, "http://portal/2");
        is_int(state(&f), CAPTIVE_RESULT_CAPTIVE, "the second agreeing check downgrades");
        is_str(last_portal, "http://portal/2", "with the latest portal URL");

        /* Captive -> OK at once. */
        advance(f.scheduler, 2 * SEC);
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(state(&f), CAPTIVE_RESULT_OK, "Captive -> OK takes effect at once");
        is_int(last_verdict.portal == NULL && last_portal[0] == '\0', 1, "OK names no portal");
        fixture_done(&f);

        /* OK, then Captive, then No internet: two checks agree it is not OK. */
        fixture_init(&f, NULL);
        reach_ok(&f);
        advance(f.scheduler, 300 * SEC);
        (void) answer(f.captive, AF_INET, 200, NULL);
        advance(f.scheduler, 1 * SEC);
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_DNS);
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET,
               "Captive then No internet downgrades, to the latest verdict");

        /* No internet -> Captive at once. */
        advance(f.scheduler, 2 * SEC);
        (void) answer(f.captive, AF_INET, 511, NULL);
        is_int(state(&f), CAPTIVE_RESULT_CAPTIVE, "No internet -> Captive takes effect at once");
        fixture_done(&f);

        /* UNKNOWN -> No internet at once. */
        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_RESET);
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET, "UNKNOWN -> No internet at once");
        is_int(n_verdicts, 1, "and reported");
        fixture_done(&f);
}

static void test_backoff(void)
{
        static const uint64_t steps[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300};
        CaptiveConfig config;
        Fixture f;
        uint64_t lo = UINT64_MAX, hi = 0;

        /* The bare sequence (jitter pinned to 0), then the top of the jitter range. */
        for (int pass = 0; pass < 3; pass++) {
                fixture_init(&f, NULL);
                (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
                run_due(f.scheduler);
                for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                        uint64_t step = steps[i] * SEC, jitter_max = step / 10, expect;

                        /* pass 1: the largest jitter; pass 2: one past it wraps to none. */
                        pinned_random = pass == 0 ? 0 : pass == 1 ? jitter_max : jitter_max + 1;
                        expect = step + (pass == 1 ? jitter_max : 0);
                        (void) fail(f.captive, AF_INET, PROBE_FAILURE_TIMEOUT);
                        is_int(captive_get_next_check(f.captive) - fake_now, expect,
                               "pass %d: backoff %zu is %llu s + %s", pass, i,
                               (unsigned long long) steps[i],
                               pass == 1 ? "10% jitter" : "no jitter");
                        is_int(last_verdict.trigger,
                               i == 0 ? CAPTIVE_TRIGGER_ROUTE : CAPTIVE_TRIGGER_BACKOFF,
                               "pass %d: check %zu trigger", pass, i);
                        advance(f.scheduler, expect);
                }
                is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET, "pass %d: still No internet", pass);

                /* OK resets the backoff: the next bad check starts again at 1 s. */
                (void) answer(f.captive, AF_INET, 204, NULL);
                is_int(captive_get_next_check(f.captive) - fake_now, 300 * SEC,
                       "pass %d: OK goes back to the interval", pass);
                advance(f.scheduler, 300 * SEC);
                pinned_random = 0;
                (void) fail(f.captive, AF_INET, PROBE_FAILURE_TIMEOUT);
                is_int(captive_get_next_check(f.captive) - fake_now, 1 * SEC,
                       "pass %d: after OK the backoff starts at 1 s again", pass);
                fixture_done(&f);
        }

        /* The real random source stays within [step, step + 10%]. */
        captive_config_init(&config);
        fixture_init(&f, &config);
        captive_set_random(f.captive, NULL, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        for (int i = 0; i < 200; i++) {
                uint64_t step = i < 9 ? (SEC << i) : 300 * SEC, delay;

                step = MIN(step, 300 * SEC);
                (void) fail(f.captive, AF_INET, PROBE_FAILURE_DNS);
                delay = captive_get_next_check(f.captive) - fake_now;
                if (delay < step || delay > step + step / 10)
                        ok(false, "delay %llu outside [%llu, %llu]", (unsigned long long) delay,
                           (unsigned long long) step, (unsigned long long) (step + step / 10));
                if (i >= 9) {
                        lo = MIN(lo, delay);
                        hi = MAX(hi, delay);
                }
                advance(f.scheduler, delay);
        }
        ok(lo >= 300 * SEC && hi <= 330 * SEC, "capped delays stay within [300 s, 330 s]");
        ok(hi > lo, "and they do vary (jitter)");
        fixture_done(&f);

        /* A custom interval caps the doubling. */
        captive_config_init(&config);
        config.interval_usec = 5 * SEC;
        config.jitter_percent = 0;
        fixture_init(&f, &config);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        for (int i = 0; i < 5; i++) {
                static const uint64_t expect[] = {1, 2, 4, 5, 5};

                (void) fail(f.captive, AF_INET, PROBE_FAILURE_DNS);
                is_int(captive_get_next_check(f.captive) - fake_now, expect[i] * SEC,
                       "interval 5 s: backoff %d is %llu s", i, (unsigned long long) expect[i]);
                advance(f.scheduler, expect[i] * SEC);
        }
        fixture_done(&f);
}

static void test_timeout(void)
{
        CaptiveConfig config;
        Fixture f;
        FakeProbe *p;
        uint64_t t0;

        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        t0 = fake_now;
        p = last_probe(AF_INET);
        advance(f.scheduler, 5 * SEC - 1);
        ok(captive_is_checking(f.captive) && p->running, "a hung probe runs up to the timeout");
        advance(f.scheduler, 1);
        ok(!captive_is_checking(f.captive), "the check ends at the probe timeout");
        ok(p->cancelled, "the hung probe is cancelled");
        is_int(last_verdict.result, CAPTIVE_RESULT_NO_INTERNET, "a timeout is No internet");
        is_int(last_verdict.checked_usec, t0 + 5 * SEC, "exactly at the timeout");
        is_int(captive_probe_done(f.captive, p,
                                  &(ProbeOutcome){.kind = PROBE_OUTCOME_HTTP, .status = 204}),
               -ESTALE, "a late answer from the cancelled probe is ignored");
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET, "and does not change the verdict");
        fixture_done(&f);

        captive_config_init(&config);
        config.probe_timeout_usec = 2 * SEC;
        fixture_init(&f, &config);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        advance(f.scheduler, 2 * SEC);
        is_int(last_verdict.result, CAPTIVE_RESULT_NO_INTERNET, "the timeout is configurable");
        fixture_done(&f);
}

static void test_link_kinds(void)
{
        static const char *const defaults[] = {"loopback", "veth", "bridge", "tun"};
        static const char *const mine[] = {"wireguard"};
        CaptiveRoute veth = {.ifindex = 7, .link_kind = "veth", .gateway = {10, 0, 0, 1}};
        CaptiveRoute wg = {.ifindex = 8, .link_kind = "wireguard", .gateway = {10, 9, 0, 1}};
        const char *too_many[CAPTIVE_LINK_KINDS_MAX + 1];
        char long_kind[CAPTIVE_LINK_KIND_MAX + 1];
        Fixture f;

        fixture_init(&f, NULL);
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++)
                ok(captive_link_kind_is_ignored(f.captive, defaults[i]), "%s is ignored by default",
                   defaults[i]);
        ok(!captive_link_kind_is_ignored(f.captive, NULL), "hardware (no kind) is not ignored");
        ok(!captive_link_kind_is_ignored(f.captive, ""), "an empty kind is not ignored");
        ok(!captive_link_kind_is_ignored(f.captive, "wireguard"), "wireguard is not ignored");
        ok(!captive_link_kind_is_ignored(f.captive, "VETH"), "kinds are exact");

        is_int(captive_set_default_route(f.captive, AF_INET, &veth), 0,
               "a default route on a veth link triggers nothing");
        is_int(captive_address_added(f.captive, veth.ifindex), 0,
               "nor does an address on that link");
        advance(f.scheduler, 600 * SEC);
        is_int(n_probes, 0, "and nothing is probed over it");
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_STARTUP);
        run_due(f.scheduler);
        is_int(n_probes, 0, "a check with only an ignored route probes nothing");
        is_int(last_verdict.result, CAPTIVE_RESULT_NO_INTERNET, "it finds No internet at once");
        is_int(captive_get_next_check(f.captive), UINT64_MAX,
               "and schedules nothing: the route appearing is the next trigger");

        is_int(captive_set_ignored_link_kinds(f.captive, mine, 1), 1,
               "a policy list that frees the veth route triggers a check");
        ok(captive_link_kind_is_ignored(f.captive, "wireguard") &&
               !captive_link_kind_is_ignored(f.captive, "veth"),
           "the policy list replaces the defaults");
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 1, "now the veth route is probed");
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(captive_address_added(f.captive, veth.ifindex), 1,
               "an address on the default-route link triggers a check");
        is_int(captive_address_added(f.captive, 99), 0, "an address on another link does not");
        run_due(f.scheduler);
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(captive_set_default_route(f.captive, AF_INET6, &wg), 0,
               "a route on a kind of the policy list is ignored");

        is_int(captive_set_ignored_link_kinds(f.captive, too_many, CAPTIVE_LINK_KINDS_MAX + 1),
               -E2BIG, "too many kinds are refused");
        memset(long_kind, 'k', CAPTIVE_LINK_KIND_MAX);
        long_kind[CAPTIVE_LINK_KIND_MAX] = '\0';
        too_many[0] = long_kind;
        is_int(captive_set_ignored_link_kinds(f.captive, too_many, 1), -EINVAL,
               "a kind name that is too long is refused");
        too_many[0] = "";
        is_int(captive_set_ignored_link_kinds(f.captive, too_many, 1), -EINVAL,
               "an empty kind name is refused");
        ok(captive_link_kind_is_ignored(f.captive, "wireguard"), "the list is unchanged on error");
        is_int(captive_set_ignored_link_kinds(f.captive, defaults, ELEMENTSOF(defaults)), 1,
               "back to the defaults: the veth route goes, the wireguard one comes");
        run_due(f.scheduler);
        ok(n_started(AF_INET) == 2 && n_started(AF_INET6) == 1,
           "the check probes only the IPv6 wireguard route");
        (void) answer(f.captive, AF_INET6, 204, NULL);
        ok(last_verdict.result == CAPTIVE_RESULT_OK && last_verdict.ipv4 == CAPTIVE_RESULT_UNKNOWN,
           "OK over IPv6, IPv4 not checked");
        is_int(captive_set_default_route(f.captive, AF_INET6, NULL), 1, "the IPv6 route goes");
        run_due(f.scheduler);
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET, "with no usable route: No internet");

        /* A kind longer than any list entry can never be ignored. */
        veth.link_kind = long_kind;
        is_int(captive_set_default_route(f.captive, AF_INET, &veth), 1,
               "a route on an unlisted long kind is usable");
        fixture_done(&f);
}

static void test_routes_and_resume(void)
{
        CaptiveRoute other = route_eth0;
        Fixture f;
        unsigned n;

        fixture_init(&f, NULL);
        reach_ok(&f);
        is_int(captive_set_default_route(f.captive, AF_INET, &route_eth0), 0,
               "the same route again triggers nothing");

        /* A new gateway may be another network: its check starts from UNKNOWN. */
        other.gateway[3] = 254;
        is_int(captive_set_default_route(f.captive, AF_INET, &other), 1,
               "a changed default route triggers a check");
        run_due(f.scheduler);
        is_int(state(&f), CAPTIVE_RESULT_UNKNOWN, "which starts from UNKNOWN");
        (void) answer(f.captive, AF_INET, 302, "http://hotel/");
        is_int(state(&f), CAPTIVE_RESULT_CAPTIVE, "so one Captive check is adopted at once");
        is_int(last_verdict.trigger, CAPTIVE_TRIGGER_ROUTE, "the check says the route caused it");

        /* Resume: also from UNKNOWN. */
        advance(f.scheduler, 1 * SEC);
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(state(&f), CAPTIVE_RESULT_OK, "back to OK");
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_RESUME);
        run_due(f.scheduler);
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_DNS);
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET, "after resume one bad check is adopted");
        is_int(last_verdict.trigger, CAPTIVE_TRIGGER_RESUME, "the resume check");

        /* The route going away: a check, certain No internet, nothing probed. */
        advance(f.scheduler, 1 * SEC);
        (void) answer(f.captive, AF_INET, 204, NULL);
        n = n_probes;
        is_int(captive_set_default_route(f.captive, AF_INET, NULL), 1,
               "the default route going away triggers a check");
        run_due(f.scheduler);
        is_int(n_probes, n, "which probes nothing");
        is_int(state(&f), CAPTIVE_RESULT_NO_INTERNET,
               "no route is No internet at once, even from OK");
        ok(strstr(last_message, "\"result\":\"No internet\",\"ipv4\":null,\"ipv6\":null"),
           "the message has no family: %s", last_message);
        is_int(captive_set_default_route(f.captive, AF_INET, NULL), 0, "gone twice is no change");
        is_int(captive_set_default_route(f.captive, AF_INET, &route_eth0), 1,
               "the route re-added triggers a new check");
        run_due(f.scheduler);
        is_int(n_probes, n + 1, "which probes again");
        fixture_done(&f);
}

/* ---- smdctl captive check ---- */

typedef struct Answer {
        unsigned calls;
        CaptiveResult result;
        char portal[64];
        CaptiveTrigger trigger;
} Answer;

static void on_answer(CaptiveRequest *r, const CaptiveStatus *status, void *userdata)
{
        Answer *a = userdata;

        a->calls++;
        a->result = status->result;
        a->trigger = status->trigger;
        snprintf(a->portal, sizeof(a->portal), "%s", strempty(status->portal));
}

static void test_request(void)
{
        CaptiveRequest *req = NULL, *req2 = NULL, *reqs[CAPTIVE_REQUESTS_MAX + 1] = {};
        Answer a = {}, b = {}, many = {};
        Fixture f;

        fixture_init(&f, NULL);
        reach_ok(&f);

        /* Idle: the request causes the next check and gets its verdict. */
        is_int(captive_request_check(f.captive, on_answer, &a, &req), 0, "request a check");
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 2, "the request starts a check");
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(a.calls, 1, "the request gets one answer");
        is_int(a.result, CAPTIVE_RESULT_OK, "with the verdict of its check");
        is_int(a.trigger, CAPTIVE_TRIGGER_REQUEST, "which it caused");
        req = captive_request_free(req);

        /* During a check: it waits for the check after the running one. */
        a = (Answer){};
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
        run_due(f.scheduler);
        is_int(captive_request_check(f.captive, on_answer, &a, &req), 0,
               "request during a running check");
        (void) answer(f.captive, AF_INET, 204, NULL);
        is_int(a.calls, 0, "the running check (begun before the request) does not answer it");
        run_due(f.scheduler);
        is_int(n_started(AF_INET), 4, "the request's own check runs next");
        (void) answer(f.captive, AF_INET, 302, "http://portal/r");
        is_int(a.calls, 1, "answered by its own check");
        is_int(a.result, CAPTIVE_RESULT_CAPTIVE, "which found a portal");
        is_str(a.portal, "http://portal/r", "and its URL");
        is_int(state(&f), CAPTIVE_RESULT_OK,
               "while the adopted state is still OK (one check does not downgrade)");
        req = captive_request_free(req);

        /* A request freed before its answer is never called. */
        b = (Answer){};
        is_int(captive_request_check(f.captive, on_answer, &b, &req2), 0, "another request");
        req2 = captive_request_free(req2);
        advance(f.scheduler, 1 * SEC);
        (void) answer(f.captive, AF_INET, 302, "http://portal/r");
        is_int(b.calls, 0, "a freed request is not answered");

        /* Bounded. */
        for (size_t i = 0; i < CAPTIVE_REQUESTS_MAX; i++)
                (void) captive_request_check(f.captive, on_answer, &many, &reqs[i]);
        is_int(captive_request_check(f.captive, on_answer, &many, &reqs[CAPTIVE_REQUESTS_MAX]),
               -EBUSY, "more than CAPTIVE_REQUESTS_MAX waiting requests are refused");
        run_due(f.scheduler);
        (void) answer(f.captive, AF_INET, 302, NULL);
        is_int(many.calls, CAPTIVE_REQUESTS_MAX, "all waiting requests are answered by one check");
        for (size_t i = 0; i < CAPTIVE_REQUESTS_MAX; i++)
                reqs[i] = captive_request_free(reqs[i]);

        /* A request still waiting when the Captive goes becomes inert. */
        is_int(captive_request_check(f.captive, on_answer, &b, &req), 0, "a last request");
        fixture_done(&f);
        req = captive_request_free(req);
        is_int(b.calls, 0, "a request outliving its Captive is freed without an answer");
}

static void test_start_failure_and_free(void)
{
        CaptiveConfig config;
        Captive *c = NULL;
        Fixture f;
        FakeProbe *p;

        fixture_init(&f, NULL);
        reach_ok(&f);
        start_error = -ENOMEM;
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
        run_due(f.scheduler);
        ok(!captive_is_checking(f.captive), "a check whose probes cannot start ends at once");
        is_int(state(&f), CAPTIVE_RESULT_OK, "it learned nothing: the state is kept");
        is_int(n_verdicts, 1, "and nothing is reported");
        is_int(captive_get_next_check(f.captive) - fake_now, 1 * SEC, "it is retried with backoff");
        start_error = 0;
        advance(f.scheduler, 1 * SEC);
        p = last_probe(AF_INET);
        ok(p && p->running, "the retry probes");
        fixture_done(&f);
        ok(p->cancelled, "freeing the Captive cancels the running probe");

        /* A local failure (not the network's) is not a verdict either. */
        fixture_init(&f, NULL);
        reach_ok(&f);
        (void) captive_trigger(f.captive, CAPTIVE_TRIGGER_MESSAGE);
        run_due(f.scheduler);
        (void) fail(f.captive, AF_INET, PROBE_FAILURE_LOCAL);
        is_int(state(&f), CAPTIVE_RESULT_OK, "a local probe failure keeps the state");
        fixture_done(&f);

        fixture_init(&f, NULL);
        captive_config_init(&config);
        config.probe_timeout_usec = 0;
        is_int(captive_new(&c, f.scheduler, &config, &fake_ops, NULL), -EINVAL,
               "a zero timeout is refused");
        captive_config_init(&config);
        config.backoff_first_usec = config.interval_usec + 1;
        is_int(captive_new(&c, f.scheduler, &config, &fake_ops, NULL), -EINVAL,
               "a first backoff step above the interval is refused");
        captive_config_init(&config);
        config.jitter_percent = 101;
        is_int(captive_new(&c, f.scheduler, &config, &fake_ops, NULL), -EINVAL,
               "more than 100 percent jitter is refused");
        ok(!c, "nothing is returned on error");
        fixture_done(&f);
        ok(!captive_free(NULL), "captive_free(NULL) is fine");
}

static void test_api_outcome(void)
{
        PortalApi api = {.captive = false, .has_seconds_remaining = true, .seconds_remaining = 90};
        Fixture f;

        fixture_init(&f, NULL);
        (void) captive_set_default_route(f.captive, AF_INET, &route_eth0);
        run_due(f.scheduler);
        (void) report(f.captive, last_probe(AF_INET),
                      &(ProbeOutcome){.kind = PROBE_OUTCOME_API, .api = &api});
        is_int(state(&f), CAPTIVE_RESULT_OK, "an RFC 8908 captive:false document is OK");
        ok(strstr(last_message, "\"seconds_remaining\":90,"), "with seconds_remaining: %s",
           last_message);
        fixture_done(&f);
}

int main(void)
{
        tap_init();
        test_startup_ok_and_periodic();
        test_one_at_a_time();
        test_first_verdict_final();
        test_families();
        test_hysteresis();
        test_backoff();
        test_timeout();
        test_link_kinds();
        test_routes_and_resume();
        test_request();
        test_start_failure_and_free();
        test_api_outcome();
        return tap_done();
}

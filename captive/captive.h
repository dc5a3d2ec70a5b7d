/* SPDX-License-Identifier: MIT */
/*
 * Captive: the captive portal detection scheduler. It decides when to check,
 * runs one check at a time through a probe behind ProbeOps (one probe per
 * address family with a usable default route, concurrently), bounds each
 * check with its own timer, turns the outcomes into a verdict (probe.h) and
 * applies hysteresis before the verdict is adopted and reported.
 *
 * Rules (issue 6):
 * - One check at a time. A trigger during a check is remembered and runs
 *   exactly one more check right after it, however many triggers arrived.
 * - Per family, the first outcome is final; the check ends when every probed
 *   family has one, or at the probe timeout, when every family still waiting
 *   is cancelled and counts as NO_INTERNET. A hung probe cannot hold a check.
 * - The check's verdict is the best of its families (result.h); its portal
 *   URL and seconds-remaining come from the first family (IPv4, then IPv6)
 *   whose verdict is that best one.
 * - Adoption: UNKNOWN -> anything and CAPTIVE/NO_INTERNET -> anything take
 *   effect at once. OK -> CAPTIVE/NO_INTERNET needs two consecutive checks
 *   that both find the network not OK; the second one's verdict is adopted
 *   (a network that flips between portal and no answer is not OK either). A
 *   check that learned nothing (UNKNOWN: every probe failed to start) is not
 *   adopted and does not count. No usable default route at all is certain:
 *   NO_INTERNET at once, without probing.
 * - Scheduling after a check: the remembered trigger, at once; else while OK
 *   every interval (default 300 s); else backoff: first (1 s), doubling per
 *   consecutive check that was not OK, up to the interval, plus an additive
 *   jitter of up to jitter_percent of that step. With no usable default route
 *   nothing is scheduled: the route appearing is the next trigger.
 * - Triggers: captive_trigger() (startup, resume, the SMD cpdcheck message),
 *   captive_set_default_route() (a usable default route appeared, changed or
 *   went), captive_address_added() (an address on a default-route link),
 *   captive_request_check() (smdctl captive check). Resume and a new or changed
 *   default route mean the network may be another one: the check they cause
 *   starts from UNKNOWN (no hysteresis) with the backoff reset.
 * - Links of an ignored kind (default: loopback, veth, bridge, tun) neither
 *   trigger checks nor get probed: a default route on one counts as none.
 *
 * Checks start from a timer, never inside a caller's call, and the probe's
 * completion may end a check and run the callbacks from inside the probe's own
 * callback; so callbacks must not free the Captive.
 *
 * Time is the Scheduler's CLOCK_MONOTONIC (normal list), so tests run it on a
 * fake clock with scheduler_run_due().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe.h"
#include "result.h"
#include "sul.h"
#include "util.h"

typedef struct Captive Captive;
typedef struct CaptiveRequest CaptiveRequest;

#define CAPTIVE_INTERVAL_DEFAULT_USEC      (300 * USEC_PER_SEC)
#define CAPTIVE_BACKOFF_FIRST_DEFAULT_USEC (1 * USEC_PER_SEC)
#define CAPTIVE_PROBE_TIMEOUT_DEFAULT_USEC (5 * USEC_PER_SEC)
#define CAPTIVE_JITTER_PERCENT_DEFAULT     10u
#define CAPTIVE_HTTP_EXPECT_DEFAULT        204u

#define CAPTIVE_LINK_KINDS_MAX 16u /* entries in the ignored list */
#define CAPTIVE_LINK_KIND_MAX  32u /* bytes of one kind name (IFLA_INFO_KIND is shorter) */
#define CAPTIVE_REQUESTS_MAX   64u /* smdctl check requests waiting at once */

typedef struct CaptiveConfig {
        uint64_t interval_usec;      /* while OK; the backoff cap */
        uint64_t backoff_first_usec; /* first backoff step */
        uint64_t probe_timeout_usec; /* bounds each check */
        unsigned jitter_percent;     /* 0..100 */
        uint16_t http_expect;        /* the status that means OK */
} CaptiveConfig;

/* Fills in the defaults above. */
void captive_config_init(CaptiveConfig *config);

/*
 * The probe. start() begins probing over family (AF_INET or AF_INET6) and on
 * success stores a non-NULL handle and returns 0. From then on exactly one of
 * two things ends that probe: the probe calls captive_probe_done() with the
 * handle (from the event loop, never from inside start()), or Captive calls
 * cancel() with it (check timeout, captive_free()), after which the probe must
 * not report. When start() fails (-errno) the family counts as not checked.
 */
typedef struct ProbeOps {
        int (*start)(Captive *c, int family, void *userdata, void **ret_handle);
        void (*cancel)(void *handle, void *userdata);
} ProbeOps;

/*
 * Called after every adopted check (the agent publishes the cpd message each
 * time; checked_us tells them apart). status and its strings are valid during
 * the call only.
 */
typedef void (*CaptiveVerdictCallback)(Captive *c, const CaptiveStatus *status, void *userdata);

/*
 * Called once with the verdict of the check the request caused, before and
 * regardless of hysteresis (what that check found). status is valid during the
 * call only. The request is then inert; its owner still frees it.
 */
typedef void (*CaptiveRequestCallback)(CaptiveRequest *r, const CaptiveStatus *status,
                                       void *userdata);

/* Random source for the jitter (tests pin it); returns any 64-bit value. */
typedef uint64_t (*CaptiveRandom)(void *userdata);

/*
 * Creates the scheduler on s (borrowed; it must outlive the Captive). config
 * NULL means the defaults. -EINVAL: a zero timeout, interval or first step, a
 * first step above the interval, or jitter_percent > 100. Nothing runs until
 * the first trigger.
 */
int captive_new(Captive **ret, Scheduler *s, const CaptiveConfig *config, const ProbeOps *ops,
                void *probe_userdata);
/* Cancels the running probes and timers; outstanding requests become inert. */
Captive *captive_free(Captive *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Captive *, captive_free);

void captive_set_verdict_callback(Captive *c, CaptiveVerdictCallback callback, void *userdata);
void captive_set_random(Captive *c, CaptiveRandom random, void *userdata);

/*
 * Asks for a check: at once when idle, else exactly one more after the
 * running one. For STARTUP, RESUME and MESSAGE (the other triggers have
 * their own calls below). Resume starts the check from UNKNOWN. Returns 0,
 * or -errno when the check timer could not be armed (a broken event loop).
 */
int captive_trigger(Captive *c, CaptiveTrigger trigger);

/*
 * The usable default route of family, as the agent sees it, or NULL when
 * there is none. link_kind is "loopback" for a loopback link, else the
 * link's IFLA_INFO_KIND ("veth", "bridge", "tun", "wireguard", ...), or NULL
 * for plain hardware. A route on an ignored kind counts as none. The route is
 * usable when it appears, when its ifindex or gateway changes (both trigger a
 * check from UNKNOWN) and when it goes (a plain check). Returns 1 when a check
 * was triggered, 0 when nothing changed.
 */
typedef struct CaptiveRoute {
        int ifindex; /* > 0 */
        const char *link_kind;
        uint8_t gateway[16]; /* network order, zero-padded; all zero when on-link */
} CaptiveRoute;
int captive_set_default_route(Captive *c, int family, const CaptiveRoute *route);

/* An address (either family) was added on link ifindex: 1 when a check was triggered. */
int captive_address_added(Captive *c, int ifindex);

/*
 * The ignored link kinds (the policy's list), replacing the defaults. The
 * current routes are judged again; a route that becomes usable or unusable
 * triggers a check. Returns 0, or 1 when a check was triggered. -E2BIG:
 * more than CAPTIVE_LINK_KINDS_MAX; -EINVAL: an empty name or one of
 * CAPTIVE_LINK_KIND_MAX bytes or more. On error the list is unchanged.
 */
int captive_set_ignored_link_kinds(Captive *c, const char *const *kinds, size_t n_kinds);
/* Whether links of this kind are left alone; NULL or "" (hardware) never is. */
bool captive_link_kind_is_ignored(const Captive *c, const char *kind);

/*
 * smdctl captive check: triggers a check and calls callback with the verdict
 * of the check this request caused (the next one to start: a check already
 * running began before the request, so the request waits for the one after
 * it). The caller owns *ret and frees it with captive_request_free(), before
 * or after the callback (freeing it first cancels it). -EBUSY: already
 * CAPTIVE_REQUESTS_MAX requests waiting.
 */
int captive_request_check(Captive *c, CaptiveRequestCallback callback, void *userdata,
                          CaptiveRequest **ret);
CaptiveRequest *captive_request_free(CaptiveRequest *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(CaptiveRequest *, captive_request_free);

/*
 * The probe's report: 0 when it was the first outcome of a probe of the
 * running check (and so is used), -ESTALE when handle is not such a probe
 * (it was cancelled or already reported): ignored.
 */
int captive_probe_done(Captive *c, void *handle, const ProbeOutcome *outcome);

/* The adopted state (portal points into c; valid until the next check ends). */
void captive_get_status(const Captive *c, CaptiveStatus *ret);
bool captive_is_checking(const Captive *c);
/* When the next check is due (CLOCK_MONOTONIC µs), UINT64_MAX when none is scheduled. */
uint64_t captive_get_next_check(const Captive *c);

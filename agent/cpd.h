/* SPDX-License-Identifier: MIT */
/*
 * Captive portal detection in the agent: the Captive scheduler (captive/)
 * with its probe on a Secure Stream of the policy's captive_portal_detect
 * streamtype, one per address family (ss_stream_set_address_family()), fed
 * with the agent's events (startup after the link dump, default route and
 * address changes from netlink, resume, the SMD cpdcheck message, smdctl
 * captive check) and publishing its verdicts: the retained cpd message on SMD
 * NETWORK and the connectivity state.
 *
 * Policy: captive_portal_detect's cpd_interval_s, cpd_timeout_s and
 * cpd_ignore_link_kinds configure the scheduler; its metadata entry named
 * "location" (header Location) carries the portal URL of a redirect. No
 * streamtype: no checks (said once at info level). A reload that changes the
 * streamtype restarts detection with the new definition.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "server.h"
#include "util.h"

typedef struct Manager Manager;
typedef struct Cpd Cpd;

/* After the engine (m->ss) and the machine exist; checks start with cpd_start(). */
int cpd_new(Cpd **ret, Manager *m);
Cpd *cpd_free(Cpd *cpd);
DEFINE_TRIVIAL_CLEANUP_FUNC(Cpd *, cpd_free);

/* The policy was replaced: follow a changed captive_portal_detect streamtype. */
void cpd_policy_changed(Cpd *cpd);

/*
 * Control: {"cmd":"captive-status"} and {"cmd":"captive-check","api":URL}
 * (answered when the check the request caused has its verdict; api, or NULL,
 * is an RFC 8908 API URL fetched by that check instead of the policy's
 * captive_portal_api streamtype).
 */
void cpd_control_status(Cpd *cpd, Client *c);
void cpd_control_check(Cpd *cpd, Client *c, const char *api_url);
void cpd_client_gone(Cpd *cpd, Client *c);

/* A message a client published on the bus (after the access check). */
void cpd_on_published(Cpd *cpd, Client *c, uint32_t classes, const void *payload, size_t size);

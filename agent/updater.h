/* SPDX-License-Identifier: MIT */
/*
 * Policy updates from the network: when the running policy has a
 * fetch_policy streamtype, the updater fetches it (fetch.h) at the
 * POLICY_VALID gate, on request (smdctl policy fetch), and every
 * fetch_policy_interval_s seconds when that is set. A verified download is
 * applied on top of the local policy as a reload would be
 * (manager_apply_policy_layer()), then persisted to the state directory
 * (persist.h) as the last good policy, which the next start applies before
 * its first fetch. Every outcome is published on SYSTEM_STATE:
 * {"policy":"updated","release":R} or {"policy":"fetch-failed","reason":W};
 * failures are logged once each and leave the running policy in force.
 *
 * The POLICY_VALID gate waits for the first fetch to finish, whether it
 * succeeded or not: a device without network still becomes OPERATIONAL, on
 * its persisted or local policy.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

typedef struct Manager Manager;
typedef struct Updater Updater;

#define UPDATER_PERSIST_NAME "policy.json"

int updater_new(Updater **ret, Manager *m);
Updater *updater_free(Updater *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(Updater *, updater_free);

/*
 * Applies the persisted last good policy on top of the local one (at startup,
 * before the first fetch); a missing file is fine, an invalid one is logged
 * and ignored. Returns 1 when it was applied, 0 otherwise.
 */
int updater_load_persisted(Updater *u);

/* Starts a fetch now. 0: started; 1: one was running already (its outcome is
 * the answer); -ENOENT: the policy has no fetch_policy streamtype. */
int updater_fetch(Updater *u);

/* The POLICY_VALID gate: true while the first fetch is to come or running (starts it). */
bool updater_gate_pending(Updater *u);

/* The policy changed: re-arm (or stop) the periodic fetch. */
void updater_policy_changed(Updater *u);

/* Where the policy came from and the last fetch, for policy-show (a new object). */
json_object *updater_to_json(Updater *u);

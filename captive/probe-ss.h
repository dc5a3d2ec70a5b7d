/* SPDX-License-Identifier: MIT */
/*
 * How a probe running on a Secure Stream (the captive_portal_detect
 * streamtype, protocol h1, http_fail_redirect) reads the stream's states as a
 * ProbeOutcome. Pure; the stream adapter feeds it every state it gets and
 * reports the first final one to Captive (captive_probe_done()), then stops
 * the stream: later states (retries, ALL_RETRIES_FAILED) are not verdicts.
 *
 *   QOS_ACK_REMOTE, QOS_NACK_REMOTE   an HTTP answer; the ack is the status
 *   UNREACHABLE                       by its ack bits: CONFIG -> local,
 *                                     DNS, TLS, TIMEOUT, RESET, else refused
 *   TIMEOUT                           the stream's own timeout
 *   DISCONNECTED (after CONNECTED)    the peer closed before answering: reset
 *   ALL_RETRIES_FAILED                refused (only seen without an earlier
 *                                     UNREACHABLE, which would have been final)
 *   AUTH_FAILED                       TLS (the only authentication h1 has)
 *   anything else                     not final (CREATING, CONNECTING,
 *                                     CONNECTED, POLL, http_resp_map states...)
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "probe.h"
#include "stream.h"

/*
 * Returns true and fills *ret (kind, status or failure; location and url are
 * left NULL for the caller to add) when state ends the probe.
 */
bool probe_outcome_from_ss_state(SsState state, uint32_t ack, ProbeOutcome *ret);

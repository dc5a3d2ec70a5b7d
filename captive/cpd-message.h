/* SPDX-License-Identifier: MIT */
/*
 * The cpd message on SMD NETWORK (retained), and the trigger message that asks
 * for a check. Pure formatting and recognition; the agent sends and receives.
 *
 *   {"type":"cpd","result":"OK"|"Captive"|"No internet",
 *    "ipv4":R|null,"ipv6":R|null,"portal":"URL","seconds_remaining":N,
 *    "checked_us":N}
 *
 * type and result keep the upstream names and values so libwebsockets-style
 * participants understand the message. ipv4 / ipv6 are the result of that
 * family in the same spelling, or null when it was not checked (no usable
 * default route). portal is present only with result "Captive" and a known
 * URL; seconds_remaining only when an RFC 8908 document gave it. checked_us
 * is the CLOCK_MONOTONIC µs the check ended (the SMD timestamp base).
 *
 * The message never exceeds SMD_PAYLOAD_MAX (384) bytes: the fixed part is at
 * most ~170 bytes, and a portal URL whose JSON form does not fit in the rest
 * is left out rather than cut (a cut URL would be a wrong one); the full URL
 * stays available from `smdctl captive status`. In the URL, '"', '\' and
 * control bytes are JSON-escaped, and bytes that are not valid UTF-8 are
 * percent-encoded (the only correct spelling of such a byte in a URL), so the
 * message is always valid JSON in UTF-8.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "result.h"
#include "smd/smd.h"

#define CPD_MESSAGE_MAX SMD_PAYLOAD_MAX

/*
 * Writes the message for a status with a published result (not UNKNOWN) into
 * buf, NUL-terminated. Returns its length (<= CPD_MESSAGE_MAX), or -EINVAL for
 * an UNKNOWN result.
 */
int cpd_message_format(const CaptiveStatus *s, char buf[static CPD_MESSAGE_MAX + 1]);

/*
 * Writes s as a JSON string (with its quotes) into buf as described above.
 * Returns the length it needs without the NUL; writes only when that fits
 * size (snprintf-style: nothing is cut silently, the caller compares).
 */
size_t cpd_json_string(const char *s, char *buf, size_t size);

/*
 * Whether an SMD payload asks for a check: a JSON object whose "trigger" is
 * the string "cpdcheck" (other members, such as upstream's "src", ignored).
 * Whether the sender may publish NETWORK is the agent's check.
 */
bool cpd_message_is_check_trigger(const void *payload, size_t size);

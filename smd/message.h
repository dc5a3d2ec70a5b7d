/* SPDX-License-Identifier: MIT */
/*
 * The _lws_smd message as it travels inside payload frames: a 16-byte header
 * (class u64 BE, timestamp µs u64 BE) followed by at most 384 bytes of payload.
 * Also the class names shared by the CLI, the policy and the agent.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smd/smd.h"

#define MESSAGE_HEADER_SIZE 16u
#define MESSAGE_PAYLOAD_MAX SMD_PAYLOAD_MAX

/*
 * The lost-messages notice: a message whose class field has bit 32 set (outside
 * the 32 class bits, so no filter ever matches it by accident), sent to a
 * participant just before the first message it gets after losing some. Its
 * payload is {"type":"lost","count":N}.
 */
#define MESSAGE_CLASS_LOST_NOTICE (UINT64_C(1) << 32)

typedef struct MessageHeader {
        uint64_t classes;
        uint64_t timestamp_us;
} MessageHeader;

/* Returns 0, or -EBADMSG when data is too short for a header. */
int message_header_parse(const uint8_t *data, size_t len, MessageHeader *ret);
void message_header_write(uint8_t *out, uint64_t classes, uint64_t timestamp_us);

/* Bytes a payload frame carrying one message of payload size takes. */
size_t message_frame_size(size_t size);
/*
 * Encode one message as a whole payload frame (type TX_ or RX_PAYLOAD, flags
 * SOM|EOM, write time ts) straight into out; returns the bytes written.
 * size must be at most MESSAGE_PAYLOAD_MAX plus what a notice needs.
 */
size_t message_encode_frame(uint8_t *out, uint8_t type, uint64_t classes, uint64_t ts,
                            const void *payload, size_t size);

/*
 * Class names: network, system_state, interaction, metrics, user0..user7, all.
 * classes_parse() takes a comma-separated list; returns 0 or -EINVAL and, on
 * error, the offending word in ret_bad (pointing into list, length ret_bad_len).
 */
int classes_parse(const char *list, uint32_t *ret, const char **ret_bad, size_t *ret_bad_len);
int class_from_name(const char *name, size_t len, uint32_t *ret);
/* Writes "network,user0" style text; returns the length it needed. */
size_t classes_format(uint32_t classes, char *buf, size_t size);
/* The name of a single class bit, or NULL. */
const char *class_name(uint32_t bit);

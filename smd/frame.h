/* SPDX-License-Identifier: MIT */
/*
 * The Secure Streams proxy serialization, version 1: the frames that travel on
 * the agent's local socket, byte-compatible with libwebsockets' SS proxy.
 * Pure code: bytes in, frames out, and frames to bytes; no I/O, no state.
 *
 * Every frame is type:u8, length:u16 BE, body. Integers are big-endian.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_SIZE      3u
#define FRAME_BODY_MAX         65535u
#define FRAME_PAYLOAD_PREFIX   16u /* flags u32, held/latency u32, write time u64 */
#define FRAME_CHUNK_MAX        1380u
#define FRAME_STREAMTYPE_MAX   31u
#define FRAME_PROTOCOL_VERSION 1u

/* Bytes a payload frame takes on the wire around its payload. */
#define FRAME_PAYLOAD_OVERHEAD (FRAME_HEADER_SIZE + FRAME_PAYLOAD_PREFIX)

typedef enum FrameType {
        /* client -> agent */
        FRAME_STREAMTYPE = 0xAA,
        FRAME_ONWARD_CONNECT = 0xAB,
        FRAME_DESTROYING = 0xAC,
        FRAME_TX_PAYLOAD = 0xAD,
        FRAME_TX_METADATA = 0xAE,
        FRAME_TX_CREDIT = 0xAF,
        FRAME_TIMEOUT_UPDATE = 0xB0,
        FRAME_PAYLOAD_LENGTH_HINT = 0xB1,
        /* agent -> client */
        FRAME_RX_PAYLOAD = 0x55,
        FRAME_CREATE_RESULT = 0x56,
        FRAME_CONNSTATE = 0x57,
        FRAME_RX_CREDIT = 0x58,
        FRAME_RX_METADATA = 0x59,
} FrameType;

typedef enum FrameDirection {
        FRAME_TO_AGENT,
        FRAME_TO_CLIENT,
} FrameDirection;

/* Payload flags. */
#define FRAME_FLAG_SOM           0x01u
#define FRAME_FLAG_EOM           0x02u
#define FRAME_FLAG_POLL          0x04u
#define FRAME_FLAG_RELATED_START 0x08u
#define FRAME_FLAG_RELATED_END   0x10u

/* A decoded frame; pointers point into the buffer given to frame_parse(). */
typedef struct Frame {
        uint8_t type;
        uint16_t length;
        union {
                struct {
                        uint8_t version;
                        uint32_t pid;
                        uint32_t credit;
                        char name[FRAME_STREAMTYPE_MAX + 1];
                } streamtype;
                struct {
                        uint32_t flags;
                        uint32_t held_us; /* latency, for RX */
                        uint64_t write_time_us;
                        const uint8_t *data;
                        size_t size;
                } payload;
                struct {
                        uint8_t name_len;
                        const char *name; /* not NUL-terminated */
                        const uint8_t *value;
                        size_t value_len;
                } metadata;
                struct {
                        uint8_t result;
                        bool has_buffer_size;
                        uint32_t buffer_size;
                        const char *reason; /* optional text after the buffer size */
                        size_t reason_len;
                } create_result;
                struct {
                        uint32_t state;
                        uint32_t ack;
                } connstate;
                int32_t credit;
                uint32_t value; /* TIMEOUT_UPDATE, PAYLOAD_LENGTH_HINT */
        };
} Frame;

/*
 * Parse one frame from the start of buf.
 * Returns 1 and fills *ret and *ret_consumed when a whole valid frame is there,
 * 0 when more bytes are needed (nothing consumed), -EBADMSG for a frame type that
 * is not valid in this direction or a length that type cannot have, and
 * -EPROTO for a well-formed frame whose content is invalid (a bad version, an
 * empty or overlong stream type name).
 */
int frame_parse(const uint8_t *buf, size_t len, FrameDirection direction, Frame *ret,
                size_t *ret_consumed);

/* Human-readable name of a frame type, "unknown" if none. */
const char *frame_type_name(uint8_t type);

/*
 * Encoders write one whole frame into out, which must hold the returned number
 * of bytes (the *_size() helpers say how many); they return -E2BIG when the
 * frame cannot be represented.
 */
static inline size_t frame_payload_size(size_t payload_len)
{
        return FRAME_PAYLOAD_OVERHEAD + payload_len;
}
int frame_encode_payload(uint8_t *out, uint8_t type, uint32_t flags, uint32_t held_us,
                         uint64_t write_time_us, const void *data, size_t len);
int frame_encode_streamtype(uint8_t *out, uint32_t pid, uint32_t credit, const char *name);
int frame_encode_empty(uint8_t *out, uint8_t type);
int frame_encode_u32(uint8_t *out, uint8_t type, uint32_t value);
int frame_encode_create_result(uint8_t *out, size_t out_size, uint8_t result, uint32_t buffer_size,
                               const char *reason);
int frame_encode_connstate(uint8_t *out, uint32_t state, uint32_t ack);
int frame_encode_metadata(uint8_t *out, size_t out_size, uint8_t type, const char *name,
                          const void *value, size_t value_len);

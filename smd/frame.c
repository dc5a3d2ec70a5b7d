/* SPDX-License-Identifier: MIT */
/*
 * Frame codec for the SS proxy serialization v1 (see frame.h). Validation here
 * is the first line of defence against hostile clients: every length is checked
 * against what its type allows before any field is read.
 */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "util.h"

const char *frame_type_name(uint8_t type)
{
        switch (type) {
        case FRAME_STREAMTYPE:
                return "STREAMTYPE";
        case FRAME_ONWARD_CONNECT:
                return "ONWARD_CONNECT";
        case FRAME_DESTROYING:
                return "DESTROYING";
        case FRAME_TX_PAYLOAD:
                return "TX_PAYLOAD";
        case FRAME_TX_METADATA:
                return "METADATA";
        case FRAME_TX_CREDIT:
                return "TXCR_UPDATE";
        case FRAME_TIMEOUT_UPDATE:
                return "TIMEOUT_UPDATE";
        case FRAME_PAYLOAD_LENGTH_HINT:
                return "PAYLOAD_LENGTH_HINT";
        case FRAME_RX_PAYLOAD:
                return "RX_PAYLOAD";
        case FRAME_CREATE_RESULT:
                return "CREATE_RESULT";
        case FRAME_CONNSTATE:
                return "CONNSTATE";
        case FRAME_RX_CREDIT:
                return "TXCR_UPDATE";
        case FRAME_RX_METADATA:
                return "METADATA";
        }
        return "unknown";
}

static bool type_valid(uint8_t type, FrameDirection direction)
{
        if (direction == FRAME_TO_AGENT)
                return type >= FRAME_STREAMTYPE && type <= FRAME_PAYLOAD_LENGTH_HINT;
        return type >= FRAME_RX_PAYLOAD && type <= FRAME_RX_METADATA;
}

/* Whether a body of this length is possible for the type. */
static bool length_valid(uint8_t type, uint16_t length)
{
        switch (type) {
        case FRAME_STREAMTYPE:
                return length >= 10 && length <= 9 + FRAME_STREAMTYPE_MAX;
        case FRAME_ONWARD_CONNECT:
        case FRAME_DESTROYING:
                return length == 0;
        case FRAME_TX_PAYLOAD:
        case FRAME_RX_PAYLOAD:
                return length >= FRAME_PAYLOAD_PREFIX;
        case FRAME_TX_METADATA:
        case FRAME_RX_METADATA:
                return length >= 2;
        case FRAME_TX_CREDIT:
        case FRAME_RX_CREDIT:
        case FRAME_TIMEOUT_UPDATE:
        case FRAME_PAYLOAD_LENGTH_HINT:
                return length == 4;
        case FRAME_CREATE_RESULT:
                return length == 1 || length >= 5;
        case FRAME_CONNSTATE:
                return length == 5 || length == 8;
        }
        return false;
}

int frame_parse(const uint8_t *buf, size_t len, FrameDirection direction, Frame *ret,
                size_t *ret_consumed)
{
        Frame f = {};
        const uint8_t *body;

        if (len < 1)
                return 0;
        /* Reject a bad type at once, before waiting for the rest of the frame. */
        if (!type_valid(buf[0], direction))
                return -EBADMSG;
        if (len < FRAME_HEADER_SIZE)
                return 0;
        f.type = buf[0];
        f.length = be16_read(buf + 1);
        if (!length_valid(f.type, f.length))
                return -EBADMSG;
        if (len < FRAME_HEADER_SIZE + (size_t) f.length)
                return 0;
        body = buf + FRAME_HEADER_SIZE;

        switch ((FrameType) f.type) {
        case FRAME_STREAMTYPE: {
                size_t name_len = f.length - 9u;

                f.streamtype.version = body[0];
                f.streamtype.pid = be32_read(body + 1);
                f.streamtype.credit = be32_read(body + 5);
                if (f.streamtype.version != FRAME_PROTOCOL_VERSION)
                        return -EPROTO;
                if (memchr(body + 9, 0, name_len))
                        return -EPROTO;
                memcpy(f.streamtype.name, body + 9, name_len);
                f.streamtype.name[name_len] = 0;
                break;
        }
        case FRAME_ONWARD_CONNECT:
        case FRAME_DESTROYING:
                break;
        case FRAME_TX_PAYLOAD:
        case FRAME_RX_PAYLOAD:
                f.payload.flags = be32_read(body);
                f.payload.held_us = be32_read(body + 4);
                f.payload.write_time_us = be64_read(body + 8);
                f.payload.data = body + FRAME_PAYLOAD_PREFIX;
                f.payload.size = f.length - FRAME_PAYLOAD_PREFIX;
                break;
        case FRAME_TX_METADATA:
        case FRAME_RX_METADATA:
                f.metadata.name_len = body[0];
                if (f.metadata.name_len == 0 || 1u + f.metadata.name_len > f.length)
                        return -EPROTO;
                f.metadata.name = (const char *) body + 1;
                if (memchr(f.metadata.name, 0, f.metadata.name_len))
                        return -EPROTO;
                f.metadata.value = body + 1 + f.metadata.name_len;
                f.metadata.value_len = f.length - 1u - f.metadata.name_len;
                break;
        case FRAME_TX_CREDIT:
        case FRAME_RX_CREDIT:
                f.credit = (int32_t) be32_read(body);
                break;
        case FRAME_TIMEOUT_UPDATE:
        case FRAME_PAYLOAD_LENGTH_HINT:
                f.value = be32_read(body);
                break;
        case FRAME_CREATE_RESULT:
                f.create_result.result = body[0];
                if (f.length >= 5) {
                        f.create_result.has_buffer_size = true;
                        f.create_result.buffer_size = be32_read(body + 1);
                        f.create_result.reason = (const char *) body + 5;
                        f.create_result.reason_len = f.length - 5u;
                }
                break;
        case FRAME_CONNSTATE:
                if (f.length == 5) {
                        f.connstate.state = body[0];
                        f.connstate.ack = be32_read(body + 1);
                } else {
                        f.connstate.state = be32_read(body);
                        f.connstate.ack = be32_read(body + 4);
                }
                break;
        }

        *ret = f;
        *ret_consumed = FRAME_HEADER_SIZE + f.length;
        return 1;
}

static void put_header(uint8_t *out, uint8_t type, size_t length)
{
        out[0] = type;
        be16_write(out + 1, (uint16_t) length);
}

int frame_encode_payload(uint8_t *out, uint8_t type, uint32_t flags, uint32_t held_us,
                         uint64_t write_time_us, const void *data, size_t len)
{
        if (len > FRAME_BODY_MAX - FRAME_PAYLOAD_PREFIX)
                return -E2BIG;
        put_header(out, type, FRAME_PAYLOAD_PREFIX + len);
        be32_write(out + 3, flags);
        be32_write(out + 7, held_us);
        be64_write(out + 11, write_time_us);
        if (len)
                memcpy(out + FRAME_PAYLOAD_OVERHEAD, data, len);
        return (int) (FRAME_PAYLOAD_OVERHEAD + len);
}

int frame_encode_streamtype(uint8_t *out, uint32_t pid, uint32_t credit, const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > FRAME_STREAMTYPE_MAX)
                return -E2BIG;
        put_header(out, FRAME_STREAMTYPE, 9 + n);
        out[3] = FRAME_PROTOCOL_VERSION;
        be32_write(out + 4, pid);
        be32_write(out + 8, credit);
        memcpy(out + 12, name, n);
        return (int) (12 + n);
}

int frame_encode_empty(uint8_t *out, uint8_t type)
{
        put_header(out, type, 0);
        return FRAME_HEADER_SIZE;
}

int frame_encode_u32(uint8_t *out, uint8_t type, uint32_t value)
{
        put_header(out, type, 4);
        be32_write(out + 3, value);
        return FRAME_HEADER_SIZE + 4;
}

int frame_encode_create_result(uint8_t *out, size_t out_size, uint8_t result, uint32_t buffer_size,
                               const char *reason)
{
        size_t rlen = reason ? strlen(reason) : 0;
        size_t total = FRAME_HEADER_SIZE + 5 + rlen;

        if (total > out_size || 5 + rlen > FRAME_BODY_MAX)
                return -E2BIG;
        put_header(out, FRAME_CREATE_RESULT, 5 + rlen);
        out[3] = result;
        be32_write(out + 4, buffer_size);
        if (rlen)
                memcpy(out + 8, reason, rlen);
        return (int) total;
}

int frame_encode_connstate(uint8_t *out, uint32_t state, uint32_t ack)
{
        if (state <= 0xff) {
                put_header(out, FRAME_CONNSTATE, 5);
                out[3] = (uint8_t) state;
                be32_write(out + 4, ack);
                return FRAME_HEADER_SIZE + 5;
        }
        put_header(out, FRAME_CONNSTATE, 8);
        be32_write(out + 3, state);
        be32_write(out + 7, ack);
        return FRAME_HEADER_SIZE + 8;
}

int frame_encode_metadata(uint8_t *out, size_t out_size, uint8_t type, const char *name,
                          const void *value, size_t value_len)
{
        size_t nlen = strlen(name);
        size_t body = 1 + nlen + value_len;

        if (nlen == 0 || nlen > 255 || body > FRAME_BODY_MAX || FRAME_HEADER_SIZE + body > out_size)
                return -E2BIG;
        put_header(out, type, body);
        out[3] = (uint8_t) nlen;
        memcpy(out + 4, name, nlen);
        if (value_len)
                memcpy(out + 4 + nlen, value, value_len);
        return (int) (FRAME_HEADER_SIZE + body);
}

/* SPDX-License-Identifier: MIT */
/*
 * The SS proxy frame codec: every frame type both ways, frames coalesced and
 * split at every byte boundary, and each kind of bad frame.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "message.h"
#include "tap.h"
#include "util.h"

static void test_streamtype(void)
{
        uint8_t buf[64];
        Frame f;
        size_t used;
        int n = frame_encode_streamtype(buf, 1234, 0x4, "_lws_smd");
        static const uint8_t expect[] = {0xaa, 0x00, 0x11, 0x01, 0x00, 0x00, 0x04, 0xd2, 0x00, 0x00,
                                         0x00, 0x04, '_',  'l',  'w',  's',  '_',  's',  'm',  'd'};

        is_mem(buf, (size_t) n, expect, sizeof(expect), "STREAMTYPE encodes to upstream bytes");
        is_int(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used), 1, "STREAMTYPE parses");
        is_int(used, n, "STREAMTYPE consumed whole");
        is_int(f.streamtype.pid, 1234, "pid");
        is_int(f.streamtype.credit, 4, "credit carries the class mask");
        is_str(f.streamtype.name, "_lws_smd", "streamtype name");
        is_int(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used), -EBADMSG,
               "STREAMTYPE is not valid towards a client");
        is_int(frame_encode_streamtype(buf, 1, 0, "0123456789012345678901234567890123"), -E2BIG,
               "a 34-char streamtype name cannot be encoded");
}

static void test_payload(void)
{
        uint8_t buf[FRAME_PAYLOAD_OVERHEAD + 400];
        uint8_t body[MESSAGE_HEADER_SIZE + 5];
        Frame f;
        size_t used;
        MessageHeader h;
        int n;

        message_header_write(body, SMD_CLASS_NETWORK, 0x0102030405060708ull);
        memcpy(body + MESSAGE_HEADER_SIZE, "hello", 5);
        n = frame_encode_payload(buf, FRAME_TX_PAYLOAD, FRAME_FLAG_SOM | FRAME_FLAG_EOM, 7, 99,
                                 body, sizeof(body));
        is_int(n, FRAME_PAYLOAD_OVERHEAD + sizeof(body), "TX_PAYLOAD size");
        is_int(buf[0], 0xad, "TX_PAYLOAD type byte");
        is_int(be16_read(buf + 1), 16 + sizeof(body), "TX_PAYLOAD length is big-endian");
        is_int(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used), 1, "TX_PAYLOAD parses");
        is_int(f.payload.flags, 3, "flags SOM|EOM");
        is_int(f.payload.held_us, 7, "held us");
        is_int(f.payload.write_time_us, 99, "write time");
        is_int(f.payload.size, sizeof(body), "payload size");
        ok(message_header_parse(f.payload.data, f.payload.size, &h) == 0, "smd header parses");
        is_int(h.classes, SMD_CLASS_NETWORK, "smd class");
        ok(h.timestamp_us == 0x0102030405060708ull, "smd timestamp");
        is_int(message_header_parse(f.payload.data, 15, &h), -EBADMSG,
               "15 bytes are too short for an smd header");

        n = frame_encode_payload(buf, FRAME_RX_PAYLOAD, FRAME_FLAG_SOM, 0, 0, NULL, 0);
        is_int(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used), 1,
               "empty RX_PAYLOAD parses");
        is_int(f.payload.size, 0, "empty payload");
        is_int(frame_encode_payload(buf, FRAME_RX_PAYLOAD, 0, 0, 0, buf, 65535 - 15), -E2BIG,
               "payload too large for a frame is refused");
}

static void test_small_frames(void)
{
        uint8_t buf[300];
        Frame f;
        size_t used;
        int n;

        n = frame_encode_empty(buf, FRAME_ONWARD_CONNECT);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 &&
               f.type == FRAME_ONWARD_CONNECT,
           "ONWARD_CONNECT");
        n = frame_encode_empty(buf, FRAME_DESTROYING);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 &&
               f.type == FRAME_DESTROYING,
           "DESTROYING");
        n = frame_encode_u32(buf, FRAME_TX_CREDIT, (uint32_t) -5);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 && f.credit == -5,
           "TXCR_UPDATE carries a signed credit");
        n = frame_encode_u32(buf, FRAME_RX_CREDIT, 1000);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used) == 1 && f.credit == 1000,
           "agent TXCR_UPDATE");
        n = frame_encode_u32(buf, FRAME_TIMEOUT_UPDATE, 0xffffffffu);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 && f.value == 0xffffffffu,
           "TIMEOUT_UPDATE");
        n = frame_encode_u32(buf, FRAME_PAYLOAD_LENGTH_HINT, 1048576);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 && f.value == 1048576,
           "PAYLOAD_LENGTH_HINT");
        n = frame_encode_connstate(buf, 13, 0);
        is_int(n, 8, "CONNSTATE with a small state is 5 bytes of body");
        ok(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used) == 1 && f.connstate.state == 13,
           "CONNSTATE u8 state");
        n = frame_encode_connstate(buf, 0x1234, 77);
        is_int(n, 11, "CONNSTATE with a large state is 8 bytes of body");
        ok(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used) == 1 &&
               f.connstate.state == 0x1234 && f.connstate.ack == 77,
           "CONNSTATE u32 state and ack");
        n = frame_encode_create_result(buf, sizeof(buf), 1, 4096, "no such streamtype");
        ok(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used) == 1 &&
               f.create_result.result == 1 && f.create_result.buffer_size == 4096 &&
               f.create_result.reason_len == 18 &&
               memcmp(f.create_result.reason, "no such streamtype", 18) == 0,
           "CREATE_RESULT with buffer size and reason");
        buf[0] = FRAME_CREATE_RESULT;
        be16_write(buf + 1, 1);
        buf[3] = 0;
        ok(frame_parse(buf, 4, FRAME_TO_CLIENT, &f, &used) == 1 && !f.create_result.has_buffer_size,
           "a one-byte CREATE_RESULT, as old upstream proxies send, parses");
        n = frame_encode_metadata(buf, sizeof(buf), FRAME_TX_METADATA, "ctype", "text/html", 9);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_AGENT, &f, &used) == 1 &&
               f.metadata.name_len == 5 && memcmp(f.metadata.name, "ctype", 5) == 0 &&
               f.metadata.value_len == 9,
           "METADATA client to agent");
        n = frame_encode_metadata(buf, sizeof(buf), FRAME_RX_METADATA, "x", "", 0);
        ok(frame_parse(buf, (size_t) n, FRAME_TO_CLIENT, &f, &used) == 1 &&
               f.metadata.value_len == 0,
           "METADATA agent to client with an empty value");
}

/* A stream of mixed frames, fed in two pieces split at every byte. */
static void test_split_and_coalesced(void)
{
        uint8_t stream[512];
        size_t len = 0;
        int n;
        uint8_t types[8];
        size_t ntypes = 0;
        bool all_ok = true;

        n = frame_encode_streamtype(stream + len, 1, SMD_CLASS_ALL, "_lws_smd");
        len += (size_t) n;
        types[ntypes++] = FRAME_STREAMTYPE;
        n = frame_encode_empty(stream + len, FRAME_ONWARD_CONNECT);
        len += (size_t) n;
        types[ntypes++] = FRAME_ONWARD_CONNECT;
        n = frame_encode_payload(stream + len, FRAME_TX_PAYLOAD, 3, 0, 0, "0123456789abcdef{}", 18);
        len += (size_t) n;
        types[ntypes++] = FRAME_TX_PAYLOAD;
        n = frame_encode_metadata(stream + len, sizeof(stream) - len, FRAME_TX_METADATA, "k", "v",
                                  1);
        len += (size_t) n;
        types[ntypes++] = FRAME_TX_METADATA;
        n = frame_encode_u32(stream + len, FRAME_TX_CREDIT, 9);
        len += (size_t) n;
        types[ntypes++] = FRAME_TX_CREDIT;

        for (size_t split = 0; split <= len; split++) {
                /* Emulate a reader: a buffer that receives the first piece, then the rest. */
                uint8_t acc[512];
                size_t have = 0, off = 0, seen = 0;

                for (int piece = 0; piece < 2; piece++) {
                        size_t from = piece == 0 ? 0 : split, to = piece == 0 ? split : len;
                        memcpy(acc + have, stream + from, to - from);
                        have += to - from;
                        for (;;) {
                                Frame f;
                                size_t used;
                                int r =
                                    frame_parse(acc + off, have - off, FRAME_TO_AGENT, &f, &used);
                                if (r < 0) {
                                        all_ok = false;
                                        break;
                                }
                                if (r == 0)
                                        break;
                                if (seen >= ntypes || f.type != types[seen])
                                        all_ok = false;
                                seen++;
                                off += used;
                        }
                }
                if (seen != ntypes || off != len)
                        all_ok = false;
        }
        ok(all_ok, "five coalesced frames split at each of the %zu byte boundaries decode in order",
           len + 1);
        /* One byte at a time. */
        {
                size_t off = 0, seen = 0;
                for (size_t have = 1; have <= len; have++) {
                        Frame f;
                        size_t used;
                        if (frame_parse(stream + off, have - off, FRAME_TO_AGENT, &f, &used) == 1) {
                                seen++;
                                off += used;
                        }
                }
                is_int(seen, ntypes, "fed one byte at a time, every frame decodes");
        }
}

static void test_bad_frames(void)
{
        Frame f;
        size_t used;
        uint8_t b[64];

        b[0] = 0x00;
        is_int(frame_parse(b, 1, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "unknown type 0x00 is refused from the first byte");
        b[0] = 0x55;
        is_int(frame_parse(b, 1, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "an agent-to-client type from a client is refused");
        b[0] = 0xb2;
        is_int(frame_parse(b, 1, FRAME_TO_AGENT, &f, &used), -EBADMSG, "type 0xb2 is refused");
        b[0] = FRAME_ONWARD_CONNECT;
        be16_write(b + 1, 1);
        is_int(frame_parse(b, 4, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "ONWARD_CONNECT with a body is refused");
        b[0] = FRAME_TX_PAYLOAD;
        be16_write(b + 1, 15);
        is_int(frame_parse(b, 3, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "TX_PAYLOAD shorter than its 16-byte prefix is refused before its body arrives");
        b[0] = FRAME_TX_CREDIT;
        be16_write(b + 1, 3);
        is_int(frame_parse(b, 3, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "TXCR_UPDATE with 3 bytes is refused");
        b[0] = FRAME_STREAMTYPE;
        be16_write(b + 1, 9);
        is_int(frame_parse(b, 3, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "STREAMTYPE with an empty name is refused");
        be16_write(b + 1, 9 + 32);
        is_int(frame_parse(b, 3, FRAME_TO_AGENT, &f, &used), -EBADMSG,
               "STREAMTYPE with a 32-char name is refused");
        (void) frame_encode_streamtype(b, 1, 0, "abc");
        b[3] = 2;
        is_int(frame_parse(b, 15, FRAME_TO_AGENT, &f, &used), -EPROTO,
               "STREAMTYPE protocol version 2 is refused");
        (void) frame_encode_streamtype(b, 1, 0, "abc");
        b[13] = 0;
        is_int(frame_parse(b, 15, FRAME_TO_AGENT, &f, &used), -EPROTO,
               "STREAMTYPE name with a NUL is refused");
        (void) frame_encode_metadata(b, sizeof(b), FRAME_TX_METADATA, "abc", "x", 1);
        b[3] = 10;
        is_int(frame_parse(b, 8, FRAME_TO_AGENT, &f, &used), -EPROTO,
               "METADATA whose name length overruns the frame is refused");
        b[3] = 0;
        is_int(frame_parse(b, 8, FRAME_TO_AGENT, &f, &used), -EPROTO,
               "METADATA with an empty name is refused");
        b[0] = FRAME_CONNSTATE;
        be16_write(b + 1, 6);
        is_int(frame_parse(b, 3, FRAME_TO_CLIENT, &f, &used), -EBADMSG,
               "CONNSTATE of length 6 is refused");
        b[0] = FRAME_CREATE_RESULT;
        be16_write(b + 1, 3);
        is_int(frame_parse(b, 3, FRAME_TO_CLIENT, &f, &used), -EBADMSG,
               "CREATE_RESULT of length 3 is refused");
        is_int(frame_parse(b, 0, FRAME_TO_CLIENT, &f, &used), 0, "no bytes: need more");
}

static void test_classes(void)
{
        uint32_t m;
        const char *bad;
        size_t badlen;
        char buf[128];

        ok(classes_parse("network,user0", &m, NULL, NULL) == 0 &&
               m == (SMD_CLASS_NETWORK | SMD_CLASS_USER(0)),
           "class list parses");
        ok(classes_parse("all", &m, NULL, NULL) == 0 && m == SMD_CLASS_ALL, "all");
        is_int(classes_parse("network,bogus", &m, &bad, &badlen), -EINVAL, "unknown class refused");
        ok(badlen == 5 && strncmp(bad, "bogus", 5) == 0, "the bad word is named");
        is_int(classes_parse("", &m, NULL, NULL), -EINVAL, "empty list refused");
        classes_format(SMD_CLASS_SYSTEM_STATE | SMD_CLASS_USER(7), buf, sizeof(buf));
        is_str(buf, "system_state,user7", "classes format");
        is_int(SMD_CLASS_INTERACTION | SMD_CLASS_SYSTEM_STATE | SMD_CLASS_NETWORK |
                   SMD_CLASS_METRICS,
               0xf, "upstream class values");
}

int main(void)
{
        tap_init();
        test_streamtype();
        test_payload();
        test_small_frames();
        test_split_and_coalesced();
        test_bad_frames();
        test_classes();
        return tap_done();
}

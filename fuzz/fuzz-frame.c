/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the SS proxy frame decoder in both directions, and the _lws_smd message
 * header carried in payload frames: parse every frame the input holds, re-encode
 * what was parsed and check the bytes match.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const uint8_t *data, size_t size, FrameDirection direction)
{
        while (size > 0) {
                Frame f;
                size_t used = 0;
                int r = frame_parse(data, size, direction, &f, &used);

                if (r <= 0)
                        return;
                assert(used >= FRAME_HEADER_SIZE && used <= size);
                if (f.type == FRAME_TX_PAYLOAD || f.type == FRAME_RX_PAYLOAD) {
                        uint8_t *out = malloc(frame_payload_size(f.payload.size));
                        MessageHeader h;

                        assert(out);
                        r = frame_encode_payload(out, f.type, f.payload.flags, f.payload.held_us,
                                                 f.payload.write_time_us, f.payload.data,
                                                 f.payload.size);
                        assert(r == (int) used);
                        assert(memcmp(out, data, used) == 0);
                        free(out);
                        (void) message_header_parse(f.payload.data, f.payload.size, &h);
                }
                data += used;
                size -= used;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        parse_all(data, size, FRAME_TO_AGENT);
        parse_all(data, size, FRAME_TO_CLIENT);
        return 0;
}

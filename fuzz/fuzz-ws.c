/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the WebSocket frame parser in both roles. input[0] picks the options
 * (role, allowed RSV bits, a small or the default message limit); the rest is
 * the byte stream, parsed whole and split in two at input[1] % size. The
 * outcome and, on success, the events (data merged per message) must not
 * depend on the split, and each event must keep the parser's promises: SOM and
 * EOM in order, no empty piece without EOM, pieces inside the input, UTF-8
 * text, valid close codes. Every complete message is then written again with
 * the writer of the other role and parsed back, and must come out the same.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws-frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Run {
        uint8_t *log;
        size_t log_size;
        int result;
        unsigned close_code;
        bool in_message;
        WsOpcode opcode;
        Utf8Validator utf8;
        uint8_t *message; /* the message being received, for the round trip */
        size_t message_size;
        bool round_trip;
        const WsParserOptions *options;
} Run;

static void log_append(Run *run, const void *p, size_t n)
{
        uint8_t *l = realloc(run->log, run->log_size + n + 1);

        assert(l);
        run->log = l;
        if (n)
                memcpy(run->log + run->log_size, p, n);
        run->log_size += n;
}

static void round_trip(const Run *run);

static void on_event(Run *run, const WsEvent *ev, const uint8_t *in, size_t in_size)
{
        uint8_t type = (uint8_t) ev->type;

        /* Data is logged merged per message, whatever the pieces. */
        if (ev->type != WS_EVENT_DATA || ev->som)
                log_append(run, &type, 1);
        switch (ev->type) {
        case WS_EVENT_DATA:
                assert(ev->opcode == WS_OPCODE_TEXT || ev->opcode == WS_OPCODE_BINARY);
                assert(ev->som == !run->in_message);
                assert(ev->size > 0 || ev->eom);
                assert(ev->size == 0 || (ev->data >= in && ev->data + ev->size <= in + in_size));
                assert(!(ev->rsv & ~run->options->allowed_rsv));
                if (ev->som) {
                        run->opcode = ev->opcode;
                        utf8_validator_init(&run->utf8);
                        run->message_size = 0;
                }
                assert(ev->opcode == run->opcode);
                if (ev->opcode == WS_OPCODE_TEXT)
                        assert(utf8_validator_feed(&run->utf8, ev->data, ev->size));
                log_append(run, ev->data, ev->size);
                if (run->round_trip) {
                        uint8_t *m = realloc(run->message, run->message_size + ev->size + 1);

                        assert(m);
                        run->message = m;
                        if (ev->size)
                                memcpy(m + run->message_size, ev->data, ev->size);
                        run->message_size += ev->size;
                }
                run->in_message = !ev->eom;
                if (ev->eom) {
                        if (ev->opcode == WS_OPCODE_TEXT)
                                assert(utf8_validator_is_complete(&run->utf8));
                        log_append(run, "\xff", 1);
                        if (run->round_trip)
                                round_trip(run);
                }
                break;
        case WS_EVENT_PING:
        case WS_EVENT_PONG:
                assert(ev->size <= WS_CONTROL_MAX);
                log_append(run, ev->data, ev->size);
                break;
        case WS_EVENT_CLOSE:
                assert(ev->code == WS_CLOSE_NO_STATUS || ws_close_code_is_valid(ev->code));
                assert(ev->reason && ev->reason[ev->reason_len] == 0); /* may hold U+0000 */
                assert(utf8_is_valid(ev->reason, ev->reason_len));
                log_append(run, &ev->code, sizeof(ev->code));
                log_append(run, ev->reason, ev->reason_len);
                break;
        }
}

static int feed(WsParser *p, Run *run, uint8_t *data, size_t size, const uint8_t *in,
                size_t in_size)
{
        for (;;) {
                WsEvent ev;
                size_t used = SIZE_MAX;
                int r = ws_parser_feed(p, data, size, &used, &ev);

                if (r < 0)
                        return r;
                assert(used <= size);
                if (r == 0) {
                        assert(used == size);
                        return 0;
                }
                on_event(run, &ev, in, in_size);
                data += used;
                size -= used;
        }
}

static void run_parser(Run *run, const WsParserOptions *options, const uint8_t *data, size_t size,
                       size_t split, bool do_round_trip)
{
        uint8_t *copy = malloc(size ? size : 1);
        WsParser *p;
        int r;

        assert(copy);
        *run = (Run){.options = options, .round_trip = do_round_trip};
        memcpy(copy, data, size);
        if (ws_parser_new(&p, options) < 0) {
                free(copy);
                return;
        }
        r = feed(p, run, copy, split, copy, size);
        if (r >= 0)
                r = feed(p, run, copy + split, size - split, copy, size);
        if (r < 0) {
                size_t used;
                WsEvent ev;

                assert(r == -EBADMSG || r == -EILSEQ || r == -EMSGSIZE);
                assert(ws_parser_get_error(p));
                assert(ws_parser_get_close_code(p) == (r == -EBADMSG  ? 1002u
                                                       : r == -EILSEQ ? 1007u
                                                                      : 1009u));
                assert(ws_parser_feed(p, copy, size, &used, &ev) == r);
                run->close_code = ws_parser_get_close_code(p);
        } else {
                assert(!ws_parser_get_error(p));
                /* the parser knows of a message from its first header, before any DATA */
                assert(!run->in_message || ws_parser_in_message(p));
        }
        run->result = r;
        ws_parser_free(p);
        free(copy);
        free(run->message);
        run->message = NULL;
}

/* Writes the message just received as two fragments for the other role and parses it. */
static void round_trip(const Run *run)
{
        WsRole writer_role = run->options->role == WS_ROLE_CLIENT ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
        WsParserOptions options = {.role = run->options->role,
                                   .max_message_size = run->options->max_message_size};
        size_t first = run->message_size / 2, wire_size = run->message_size + 2 * WS_HEADER_MAX;
        uint8_t *wire = malloc(wire_size);
        WsWriter w;
        Run back;
        int a, b;

        assert(wire);
        ws_writer_init(&w, writer_role, NULL, NULL);
        a = ws_writer_frame(&w, wire, wire_size, run->opcode, false, run->message, first);
        assert(a > 0);
        b = ws_writer_frame(&w, wire + a, wire_size - (size_t) a, WS_OPCODE_CONTINUATION, true,
                            run->message + first, run->message_size - first);
        assert(b > 0);
        run_parser(&back, &options, wire, (size_t) (a + b), (size_t) a, false);
        assert(back.result == 0);
        assert(back.log_size == 1 + run->message_size + 1);
        assert(back.log[0] == WS_EVENT_DATA && back.log[back.log_size - 1] == 0xff);
        assert(run->message_size == 0 ||
               memcmp(back.log + 1, run->message, run->message_size) == 0);
        free(back.log);
        free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        WsParserOptions options;
        Run whole, split;
        size_t at;

        if (size < 2)
                return 0;
        options = (WsParserOptions){
            .role = data[0] & 1 ? WS_ROLE_SERVER : WS_ROLE_CLIENT,
            .allowed_rsv = (data[0] >> 1) & 0x7,
            .max_message_size = data[0] & 0x10 ? 64 : 0,
        };
        at = data[1] % (size - 1);
        data += 2;
        size -= 2;
        if (at > size)
                at = size;
        run_parser(&whole, &options, data, size, size, true);
        run_parser(&split, &options, data, size, at, false);
        assert(whole.result == split.result);
        assert(whole.close_code == split.close_code);
        if (whole.result == 0) {
                assert(whole.log_size == split.log_size);
                assert(whole.log_size == 0 || memcmp(whole.log, split.log, whole.log_size) == 0);
        }
        free(whole.log);
        free(split.log);
        return 0;
}

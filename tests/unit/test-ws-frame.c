/* SPDX-License-Identifier: MIT */
/*
 * WebSocket framing: every input is parsed whole, in two pieces split at every
 * byte (or at a sample of split points for large inputs) and one byte at a
 * time, in the role it is meant for, and must give the same events and
 * outcome every time. The RFC 6455 examples (5.7, 1.3/4.2.2), every
 * rejection with its close code, fragmentation with interleaved control
 * frames, 0-byte and 1 MiB messages, the writer byte for byte, and the
 * handshake helpers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "util.h"
#include "ws-frame.h"

static void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p)
                abort();
        return p;
}

/* ---- Running the parser ---- */

typedef struct Run {
        uint8_t *log; /* "<T" or "<B" at SOM, data, ">" at EOM, "[PING:...]" etc. */
        size_t len;
        size_t cap;
        int result;          /* 0 or the error */
        unsigned close_code; /* of the error */
        unsigned data_events;
        bool in_message;
        const char *broken; /* an invariant of the events that did not hold */
} Run;

static void log_add(Run *run, const void *p, size_t n)
{
        if (run->len + n + 1 > run->cap) {
                run->cap = (run->len + n + 1) * 2;
                run->log = realloc(run->log, run->cap);
                if (!run->log)
                        abort();
        }
        if (n)
                memcpy(run->log + run->len, p, n);
        run->len += n;
        run->log[run->len] = 0;
}

static void log_str(Run *run, const char *s)
{
        log_add(run, s, strlen(s));
}

static void on_event(Run *run, const WsEvent *ev, const uint8_t *in, size_t in_size)
{
        char buf[64];

        switch (ev->type) {
        case WS_EVENT_DATA:
                run->data_events++;
                if (ev->som == run->in_message)
                        run->broken = "SOM does not match the message state";
                if (ev->opcode != WS_OPCODE_TEXT && ev->opcode != WS_OPCODE_BINARY)
                        run->broken = "DATA with a control opcode";
                if (ev->size == 0 && !ev->eom)
                        run->broken = "empty DATA without EOM";
                if (ev->size && (ev->data < in || ev->data + ev->size > in + in_size))
                        run->broken = "DATA outside the input";
                if (ev->som)
                        log_str(run, ev->opcode == WS_OPCODE_TEXT ? "<T" : "<B");
                log_add(run, ev->data, ev->size);
                run->in_message = !ev->eom;
                if (ev->eom)
                        log_str(run, ">");
                break;
        case WS_EVENT_PING:
        case WS_EVENT_PONG:
                log_str(run, ev->type == WS_EVENT_PING ? "[PING:" : "[PONG:");
                log_add(run, ev->data, ev->size);
                log_str(run, "]");
                break;
        case WS_EVENT_CLOSE:
                snprintf(buf, sizeof(buf), "[CLOSE:%u:", ev->code);
                log_str(run, buf);
                if (ev->reason[ev->reason_len] != 0)
                        run->broken = "close reason not NUL-terminated";
                log_add(run, ev->reason, ev->reason_len);
                log_str(run, "]");
                break;
        }
}

static void feed(Run *run, WsParser *p, uint8_t *data, size_t size, const uint8_t *in,
                 size_t in_size)
{
        while (run->result == 0) {
                WsEvent ev;
                size_t used = SIZE_MAX;
                int r = ws_parser_feed(p, data, size, &used, &ev);

                if (r < 0) {
                        run->result = r;
                        run->close_code = ws_parser_get_close_code(p);
                        if (!ws_parser_get_error(p))
                                run->broken = "error without a description";
                        return;
                }
                if (used > size)
                        run->broken = "consumed more than given";
                if (r == 0) {
                        if (used != size)
                                run->broken = "need more without using all input";
                        return;
                }
                on_event(run, &ev, in, in_size);
                data += used;
                size -= used;
        }
}

typedef enum SplitMode {
        SPLIT_WHOLE,
        SPLIT_TWO,
        SPLIT_BYTES,
} SplitMode;

static Run run_parser(const WsParserOptions *options, const uint8_t *input, size_t size,
                      SplitMode mode, size_t split)
{
        Run run = {0};
        WsParser *p;
        uint8_t *copy = xmalloc(size); /* the parser unmasks in place */

        memcpy(copy, input, size);
        if (ws_parser_new(&p, options) < 0)
                abort();
        switch (mode) {
        case SPLIT_WHOLE:
                feed(&run, p, copy, size, copy, size);
                break;
        case SPLIT_TWO:
                feed(&run, p, copy, split, copy, size);
                feed(&run, p, copy + split, size - split, copy, size);
                break;
        case SPLIT_BYTES:
                for (size_t i = 0; i < size; i++)
                        feed(&run, p, copy + i, 1, copy, size);
                break;
        }
        if (run.result == 0 && run.in_message && !ws_parser_in_message(p))
                run.broken = "in_message disagrees";
        ws_parser_free(p);
        free(copy);
        log_add(&run, NULL, 0);
        return run;
}

static bool same_run(const Run *a, const Run *b, bool compare_log)
{
        if (a->broken || b->broken || a->result != b->result || a->close_code != b->close_code)
                return false;
        return !compare_log || (a->len == b->len && memcmp(a->log, b->log, a->len) == 0);
}

/*
 * Parses input every way and checks that it gives expect_log (on success) or
 * expect_error with expect_close. Returns the whole run for further checks.
 */
static void check_parse(const char *name, const WsParserOptions *options, const void *input,
                        size_t size, const char *expect_log, size_t expect_len, int expect_error,
                        unsigned expect_close)
{
        Run whole = run_parser(options, input, size, SPLIT_WHOLE, 0), other;
        bool all = true;
        size_t step = size > 4096 ? size / 127 : 1;

        if (expect_error == 0) {
                ok(!whole.broken, "%s: event invariants hold (%s)", name,
                   whole.broken ? whole.broken : "ok");
                is_int(whole.result, 0, "%s: parses", name);
                is_mem(whole.log, whole.len, expect_log, expect_len, "%s: events", name);
        } else {
                is_int(whole.result, expect_error, "%s: refused", name);
                is_int(whole.close_code, expect_close, "%s: close code", name);
        }
        for (size_t k = 0; k <= size; k += (k < 32 || size - k < 32) ? 1 : step) {
                other = run_parser(options, input, size, SPLIT_TWO, k);
                if (!same_run(&whole, &other, expect_error == 0)) {
                        if (all)
                                tap_diag("%s: differs when split at %zu", name, k);
                        all = false;
                }
                free(other.log);
        }
        ok(all, "%s: same in two pieces split at %s byte", name, step == 1 ? "every" : "sampled");
        other = run_parser(options, input, size, SPLIT_BYTES, 0);
        ok(same_run(&whole, &other, expect_error == 0), "%s: same one byte at a time", name);
        free(other.log);
        free(whole.log);
}

#define CLIENT     (&(WsParserOptions){.role = WS_ROLE_CLIENT})
#define SERVER     (&(WsParserOptions){.role = WS_ROLE_SERVER})
#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define LOG(s)     s, sizeof(s) - 1
#define is_bytes(a, alen, name, ...)                                   \
        is_mem((a), (size_t) (alen), ((const uint8_t[]){__VA_ARGS__}), \
               sizeof((const uint8_t[]){__VA_ARGS__}), "%s", name)

static void check_ok(const char *name, const WsParserOptions *o, const uint8_t *in, size_t n,
                     const char *log, size_t log_len)
{
        check_parse(name, o, in, n, log, log_len, 0, 0);
}

static void check_fail(const char *name, const WsParserOptions *o, const uint8_t *in, size_t n,
                       int error, unsigned close_code)
{
        check_parse(name, o, in, n, NULL, 0, error, close_code);
}

/* ---- RFC 6455 5.7 examples ---- */

static void test_rfc_examples(void)
{
        uint8_t *big;
        char *expect;

        check_ok("RFC 5.7 single-frame unmasked text", CLIENT,
                 BYTES(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), LOG("<THello>"));
        check_ok("RFC 5.7 single-frame masked text", SERVER,
                 BYTES(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
                 LOG("<THello>"));
        check_fail("RFC 5.7 masked text sent to a client", CLIENT,
                   BYTES(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
                   -EBADMSG, 1002);
        check_fail("RFC 5.7 unmasked text sent to a server", SERVER,
                   BYTES(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), -EBADMSG, 1002);
        check_ok("RFC 5.7 fragmented unmasked text", CLIENT,
                 BYTES(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f), LOG("<THello>"));
        check_ok("RFC 5.7 unmasked ping", CLIENT, BYTES(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
                 LOG("[PING:Hello]"));
        check_ok("RFC 5.7 masked pong", SERVER,
                 BYTES(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
                 LOG("[PONG:Hello]"));

        /* 256 bytes and 64 KiB of binary data in a single unmasked frame. */
        big = xmalloc(10 + 65536);
        expect = xmalloc(3 + 65536);
        big[0] = 0x82;
        big[1] = 0x7e;
        be16_write(big + 2, 256);
        for (size_t i = 0; i < 65536; i++)
                big[10 + i] = (uint8_t) (i * 7);
        memmove(big + 4, big + 10, 256);
        memcpy(expect, "<B", 2);
        memcpy(expect + 2, big + 4, 256);
        expect[258] = '>';
        check_ok("RFC 5.7 256 bytes binary", CLIENT, big, 4 + 256, expect, 259);
        big[1] = 0x7f;
        be64_write(big + 2, 65536);
        for (size_t i = 0; i < 65536; i++)
                big[10 + i] = (uint8_t) (i * 7);
        memcpy(expect + 2, big + 10, 65536);
        expect[2 + 65536] = '>';
        check_ok("RFC 5.7 64 KiB binary", CLIENT, big, 10 + 65536, expect, 3 + 65536);
        free(big);
        free(expect);
}

/* ---- Rejections ---- */

static void test_header_rejections(void)
{
        WsParserOptions rsv1 = {.role = WS_ROLE_CLIENT, .allowed_rsv = 0x4};
        char name[64];
        Run run;

        check_fail("RSV1 without an extension", CLIENT, BYTES(0xc1, 0x00), -EBADMSG, 1002);
        check_fail("RSV2 without an extension", CLIENT, BYTES(0xa1, 0x00), -EBADMSG, 1002);
        check_fail("RSV3 without an extension", CLIENT, BYTES(0x91, 0x00), -EBADMSG, 1002);
        check_ok("RSV1 with an extension that allows it", &rsv1, BYTES(0xc2, 0x01, 0x61),
                 LOG("<Ba>"));
        run = run_parser(&rsv1, BYTES(0xc2, 0x01, 0x61), SPLIT_WHOLE, 0);
        is_int(run.result, 0, "RSV1 allowed: parsed");
        free(run.log);
        check_fail("RSV2 when only RSV1 is allowed", &rsv1, BYTES(0xa2, 0x00), -EBADMSG, 1002);
        check_fail("RSV1 on a control frame even when allowed", &rsv1, BYTES(0xc9, 0x00), -EBADMSG,
                   1002);
        for (unsigned op = 3; op <= 0xf; op++) {
                if (op >= 8 && op <= 0xa)
                        continue;
                snprintf(name, sizeof(name), "reserved opcode 0x%x", op);
                check_fail(name, CLIENT, (const uint8_t[]){(uint8_t) (0x80 | op), 0x00}, 2,
                           -EBADMSG, 1002);
        }
        check_fail("fragmented ping", CLIENT, BYTES(0x09, 0x00), -EBADMSG, 1002);
        check_fail("fragmented close", CLIENT, BYTES(0x08, 0x00), -EBADMSG, 1002);
        check_fail("ping of 126 bytes (16-bit length)", CLIENT, BYTES(0x89, 0x7e, 0x00, 0x7e),
                   -EBADMSG, 1002);
        check_fail("pong with a 64-bit length", CLIENT, BYTES(0x8a, 0x7f), -EBADMSG, 1002);
        check_fail("16-bit length of 125", CLIENT, BYTES(0x82, 0x7e, 0x00, 0x7d), -EBADMSG, 1002);
        check_fail("16-bit length of 0", CLIENT, BYTES(0x82, 0x7e, 0x00, 0x00), -EBADMSG, 1002);
        check_fail("64-bit length of 65535", CLIENT,
                   BYTES(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff), -EBADMSG, 1002);
        check_fail("64-bit length with the top bit set", CLIENT,
                   BYTES(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0), -EBADMSG, 1002);
        check_fail("64-bit length 2^64-1", CLIENT,
                   BYTES(0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), -EBADMSG,
                   1002);
        check_fail("continuation without a message", CLIENT, BYTES(0x80, 0x01, 0x61), -EBADMSG,
                   1002);
        check_fail("text inside a fragmented message", CLIENT,
                   BYTES(0x01, 0x01, 0x61, 0x81, 0x01, 0x62), -EBADMSG, 1002);
        check_fail("binary inside a fragmented message", CLIENT,
                   BYTES(0x02, 0x01, 0x61, 0x02, 0x01, 0x62), -EBADMSG, 1002);
        check_fail("continuation after a complete message", CLIENT,
                   BYTES(0x81, 0x01, 0x61, 0x80, 0x01, 0x62), -EBADMSG, 1002);
        check_fail("unmasked ping to a server", SERVER, BYTES(0x89, 0x00), -EBADMSG, 1002);
        check_fail("masked close to a client", CLIENT, BYTES(0x88, 0x80, 1, 2, 3, 4), -EBADMSG,
                   1002);
}

static void test_close_frames(void)
{
        static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                         1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
        static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                           1016, 1100, 2000, 2999, 5000, 65535};
        char name[64], expect[64];

        check_ok("close without payload", CLIENT, BYTES(0x88, 0x00), LOG("[CLOSE:1005:]"));
        check_ok("close with a code", CLIENT, BYTES(0x88, 0x02, 0x03, 0xe8), LOG("[CLOSE:1000:]"));
        check_ok("close with a code and reason", CLIENT,
                 BYTES(0x88, 0x06, 0x03, 0xe9, 'b', 'y', 'e', '!'), LOG("[CLOSE:1001:bye!]"));
        check_ok("masked close with a UTF-8 reason", SERVER,
                 BYTES(0x88, 0x84, 0, 0, 0, 0, 0x0b, 0xb8, 0xc3, 0xa9), LOG("[CLOSE:3000:é]"));
        check_ok("close reason holding U+0000", CLIENT, BYTES(0x88, 0x05, 0x03, 0xe8, 'a', 0, 'b'),
                 LOG("[CLOSE:1000:a\0b]"));
        check_fail("close with a 1-byte payload", CLIENT, BYTES(0x88, 0x01, 0x03), -EBADMSG, 1002);
        check_fail("close reason not UTF-8", CLIENT, BYTES(0x88, 0x03, 0x03, 0xe8, 0xff), -EILSEQ,
                   1007);
        check_fail("close reason ending inside a character", CLIENT,
                   BYTES(0x88, 0x03, 0x03, 0xe8, 0xc3), -EILSEQ, 1007);
        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                snprintf(name, sizeof(name), "close code %u accepted", valid[i]);
                snprintf(expect, sizeof(expect), "[CLOSE:%u:]", valid[i]);
                check_ok(
                    name, CLIENT,
                    (const uint8_t[]){0x88, 0x02, (uint8_t) (valid[i] >> 8), (uint8_t) valid[i]}, 4,
                    expect, strlen(expect));
        }
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                snprintf(name, sizeof(name), "close code %u refused", invalid[i]);
                check_fail(name, CLIENT,
                           (const uint8_t[]){0x88, 0x02, (uint8_t) (invalid[i] >> 8),
                                             (uint8_t) invalid[i]},
                           4, -EBADMSG, 1002);
        }
        check_fail("bytes after a close frame", CLIENT, BYTES(0x88, 0x00, 0x81, 0x00), -EBADMSG,
                   1002);
}

static void test_close_stops(void)
{
        uint8_t in[] = {0x88, 0x02, 0x03, 0xe8, 0x81, 0x00};
        WsParser *p;
        WsEvent ev;
        size_t used;

        ws_parser_new(&p, NULL);
        is_int(ws_parser_feed(p, in, sizeof(in), &used, &ev), 1, "close: event");
        is_int(ev.type, WS_EVENT_CLOSE, "close: is a CLOSE");
        is_int(used, 4, "close: only the close frame consumed");
        ok(ws_parser_is_closed(p), "close: parser closed");
        is_int(ws_parser_feed(p, in + 4, 0, &used, &ev), 0, "close: no input is fine");
        is_int(ws_parser_feed(p, in + 4, 2, &used, &ev), -EBADMSG, "close: more input refused");
        is_int(ws_parser_get_close_code(p), 1002, "close: then 1002");
        is_int(ws_parser_feed(p, in, 1, &used, &ev), -EBADMSG, "failed parser stays failed");
        ws_parser_reset(p);
        ok(!ws_parser_get_error(p) && !ws_parser_is_closed(p), "reset clears the failure");
        is_int(ws_parser_feed(p, in, 4, &used, &ev), 1, "reset parser parses again");
        ws_parser_free(p);
}

static void test_utf8(void)
{
        check_fail("text not UTF-8", CLIENT, BYTES(0x81, 0x02, 0xc0, 0x80), -EILSEQ, 1007);
        check_fail("text with a surrogate", CLIENT, BYTES(0x81, 0x03, 0xed, 0xa0, 0x80), -EILSEQ,
                   1007);
        check_fail("text past U+10FFFF", CLIENT, BYTES(0x81, 0x04, 0xf4, 0x90, 0x80, 0x80), -EILSEQ,
                   1007);
        check_fail("text ending inside a character", CLIENT, BYTES(0x81, 0x02, 0x61, 0xe2), -EILSEQ,
                   1007);
        check_ok("character split across fragments", CLIENT,
                 BYTES(0x01, 0x02, 0x61, 0xe2, 0x00, 0x01, 0x82, 0x80, 0x01, 0xac),
                 LOG("<Ta\xe2\x82\xac>"));
        check_fail("fragments ending inside a character", CLIENT,
                   BYTES(0x01, 0x02, 0x61, 0xe2, 0x80, 0x01, 0x82), -EILSEQ, 1007);
        check_fail("invalid UTF-8 in a later fragment", CLIENT,
                   BYTES(0x01, 0x01, 0x61, 0x80, 0x01, 0xff), -EILSEQ, 1007);
        check_ok("binary need not be UTF-8", CLIENT, BYTES(0x82, 0x02, 0xc0, 0x80),
                 LOG("<B\xc0\x80>"));
        check_ok("masked text split character", SERVER,
                 BYTES(0x81, 0x83, 0x01, 0x02, 0x03, 0x04, 0xe2 ^ 1, 0x82 ^ 2, 0xac ^ 3),
                 LOG("<T\xe2\x82\xac>"));

        /* Fail fast (RFC 6455 8.1): the bad byte is refused before the frame ends. */
        {
                uint8_t in[] = {0x81, 0x7e, 0x01, 0x00, 'a', 0xff};
                WsParser *p;
                WsEvent ev;
                size_t used;
                int r;

                ws_parser_new(&p, NULL);
                r = ws_parser_feed(p, in, sizeof(in), &used, &ev);
                is_int(r, -EILSEQ, "invalid UTF-8 refused before the rest of the frame arrives");
                ws_parser_free(p);
        }
}

/* ---- Fragmentation, sizes ---- */

static void test_fragmentation(void)
{
        check_ok("fragments with pings between", CLIENT,
                 BYTES(0x01, 0x02, 'H', 'e', 0x89, 0x01, 'x', 0x00, 0x01, 'l', 0x89, 0x00, 0x8a,
                       0x01, 'y', 0x80, 0x02, 'l', 'o'),
                 LOG("<THe[PING:x]l[PING:][PONG:y]lo>"));
        check_ok("close inside a fragmented message", CLIENT,
                 BYTES(0x02, 0x01, 'a', 0x88, 0x02, 0x03, 0xe8), LOG("<Ba[CLOSE:1000:]"));
        check_ok("masked fragments with a ping between", SERVER,
                 BYTES(0x02, 0x81, 1, 2, 3, 4, 'a' ^ 1, 0x89, 0x81, 5, 6, 7, 8, 'p' ^ 5, 0x80, 0x82,
                       9, 9, 9, 9, 'b' ^ 9, 'c' ^ 9),
                 LOG("<Ba[PING:p]bc>"));
        check_ok("two messages back to back", CLIENT, BYTES(0x81, 0x01, 'a', 0x82, 0x01, 'b'),
                 LOG("<Ta><Bb>"));
        check_ok("empty text message", CLIENT, BYTES(0x81, 0x00), LOG("<T>"));
        check_ok("empty binary message", SERVER, BYTES(0x82, 0x80, 1, 2, 3, 4), LOG("<B>"));
        check_ok("empty fragments", CLIENT, BYTES(0x01, 0x00, 0x00, 0x00, 0x80, 0x00), LOG("<T>"));
        check_ok("empty first fragment", CLIENT, BYTES(0x01, 0x00, 0x80, 0x01, 'z'), LOG("<Tz>"));
        check_ok("empty last fragment", CLIENT, BYTES(0x02, 0x01, 'z', 0x80, 0x00), LOG("<Bz>"));
        check_ok("empty ping and pong", CLIENT, BYTES(0x89, 0x00, 0x8a, 0x00),
                 LOG("[PING:][PONG:]"));

        {
                Run run =
                    run_parser(CLIENT, BYTES(0x01, 0x00, 0x00, 0x00, 0x80, 0x00), SPLIT_WHOLE, 0);

                is_int(run.data_events, 1, "empty fragments: one DATA event with SOM and EOM");
                free(run.log);
        }
        {
                uint8_t ping[2 + 125];
                char expect[7 + 125];

                ping[0] = 0x89;
                ping[1] = 125;
                memset(ping + 2, 'p', 125);
                memcpy(expect, "[PING:", 6);
                memset(expect + 6, 'p', 125);
                expect[6 + 125] = ']';
                check_parse("ping of 125 bytes", CLIENT, ping, sizeof(ping), expect, sizeof(expect),
                            0, 0);
        }
}

static void test_size_limit(void)
{
        WsParserOptions limit = {.role = WS_ROLE_CLIENT, .max_message_size = 4};
        uint8_t header[] = {0x82, 0x7f, 0, 0, 0, 0, 0x01, 0, 0, 1};
        WsParser *p;
        WsEvent ev;
        size_t used;

        check_ok("message at the limit", &limit, BYTES(0x82, 0x04, 1, 2, 3, 4),
                 LOG("<B\x01\x02\x03\x04>"));
        check_fail("frame over the limit", &limit, BYTES(0x82, 0x05, 1, 2, 3, 4, 5), -EMSGSIZE,
                   1009);
        check_fail("fragments over the limit", &limit,
                   BYTES(0x02, 0x02, 1, 2, 0x00, 0x02, 3, 4, 0x80, 0x01, 5), -EMSGSIZE, 1009);
        check_ok("control frames do not count", &limit,
                 BYTES(0x02, 0x02, 1, 2, 0x89, 0x05, 'p', 'p', 'p', 'p', 'p', 0x80, 0x02, 3, 4),
                 LOG("<B\x01\x02[PING:ppppp]\x03\x04>"));
        check_ok("the limit is per message", &limit,
                 BYTES(0x82, 0x04, 1, 2, 3, 4, 0x82, 0x04, 1, 2, 3, 4),
                 LOG("<B\x01\x02\x03\x04><B\x01\x02\x03\x04>"));

        /* Refused on the header, before any payload arrives. */
        ws_parser_new(&p, NULL);
        is_int(ws_parser_feed(p, header, sizeof(header), &used, &ev), -EMSGSIZE,
               "default limit: a 16 MiB + 1 frame refused on its header");
        is_int(ws_parser_get_close_code(p), 1009, "default limit: close code 1009");
        ws_parser_free(p);
}

/* A client writes a 1 MiB message in three fragments with pings between; a server parses it. */
static void test_big_message(bool text)
{
        size_t size = 1024 * 1024, at = 0, piece[] = {300000, 1, size - 300001};
        uint8_t *msg = xmalloc(size), *wire = xmalloc(size + 200), *expect = xmalloc(size + 40);
        size_t wire_len = 0, expect_len = 0;
        WsWriter w;
        char name[64];

        for (size_t i = 0; i < size;) {
                if (text && i % 3 == 0 && i + 3 <= size) {
                        memcpy(msg + i, "\xe2\x82\xac", 3); /* euro sign: split across fragments */
                        i += 3;
                } else {
                        msg[i] = text ? (uint8_t) ('a' + i % 26) : (uint8_t) (i * 31 >> 3);
                        i++;
                }
        }
        ws_writer_init(&w, WS_ROLE_CLIENT, NULL, NULL);
        memcpy(expect, text ? "<T" : "<B", 2);
        expect_len = 2;
        for (size_t f = 0; f < 3; f++) {
                int n = ws_writer_frame(&w, wire + wire_len, size + 200 - wire_len,
                                        f == 0 ? (text ? WS_OPCODE_TEXT : WS_OPCODE_BINARY)
                                               : WS_OPCODE_CONTINUATION,
                                        f == 2, msg + at, piece[f]);

                if (n < 0)
                        abort();
                wire_len += (size_t) n;
                memcpy(expect + expect_len, msg + at, piece[f]);
                expect_len += piece[f];
                at += piece[f];
                if (f < 2) {
                        n = ws_writer_frame(&w, wire + wire_len, size + 200 - wire_len,
                                            WS_OPCODE_PING, true, "hi", 2);
                        wire_len += (size_t) n;
                        memcpy(expect + expect_len, "[PING:hi]", 9);
                        expect_len += 9;
                }
        }
        expect[expect_len++] = '>';
        snprintf(name, sizeof(name), "1 MiB %s message, client to server",
                 text ? "text" : "binary");
        check_parse(name, &(WsParserOptions){.role = WS_ROLE_SERVER, .max_message_size = size},
                    wire, wire_len, (char *) expect, expect_len, 0, 0);
        snprintf(name, sizeof(name), "1 MiB %s message over a smaller limit",
                 text ? "text" : "binary");
        check_fail(name, &(WsParserOptions){.role = WS_ROLE_SERVER, .max_message_size = size - 1},
                   wire, wire_len, -EMSGSIZE, 1009);
        free(msg);
        free(wire);
        free(expect);
}

/* ---- Writer ---- */

typedef struct FixedKey {
        uint8_t key[4];
        int error;
        unsigned calls;
} FixedKey;

static int fixed_random(void *buf, size_t size, void *userdata)
{
        FixedKey *k = userdata;

        k->calls++;
        if (k->error)
                return k->error;
        for (size_t i = 0; i < size; i++)
                ((uint8_t *) buf)[i] = k->key[i % 4];
        return 0;
}

static void test_writer(void)
{
        FixedKey key = {{0x37, 0xfa, 0x21, 0x3d}, 0, 0};
        uint8_t buf[WS_HEADER_MAX + 300], mask[4];
        WsWriter client, server;
        int n;

        ws_writer_init(&server, WS_ROLE_SERVER, NULL, NULL);
        ws_writer_init(&client, WS_ROLE_CLIENT, fixed_random, &key);

        n = ws_writer_frame(&server, buf, sizeof(buf), WS_OPCODE_TEXT, true, "Hello", 5);
        is_bytes(buf, n, "server writes the RFC 5.7 unmasked Hello", 0x81, 0x05, 0x48, 0x65, 0x6c,
                 0x6c, 0x6f);
        n = ws_writer_frame(&client, buf, sizeof(buf), WS_OPCODE_TEXT, true, "Hello", 5);
        is_bytes(buf, n, "client writes the RFC 5.7 masked Hello", 0x81, 0x85, 0x37, 0xfa, 0x21,
                 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
        n = ws_writer_frame(&server, buf, sizeof(buf), WS_OPCODE_TEXT, false, "Hel", 3);
        is_bytes(buf, n, "first fragment", 0x01, 0x03, 0x48, 0x65, 0x6c);
        n = ws_writer_frame(&server, buf, sizeof(buf), WS_OPCODE_CONTINUATION, true, "lo", 2);
        is_bytes(buf, n, "last fragment", 0x80, 0x02, 0x6c, 0x6f);
        n = ws_writer_frame(&client, buf, sizeof(buf), WS_OPCODE_PONG, true, "Hello", 5);
        is_bytes(buf, n, "client writes the RFC 5.7 masked pong", 0x8a, 0x85, 0x37, 0xfa, 0x21,
                 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
        n = ws_writer_frame(&server, buf, sizeof(buf), WS_OPCODE_PING, true, NULL, 0);
        is_bytes(buf, n, "empty ping", 0x89, 0x00);

        n = ws_writer_header(&server, buf, WS_OPCODE_BINARY, true, 0, 125, NULL);
        is_bytes(buf, n, "header for 125 bytes: 7-bit length", 0x82, 0x7d);
        n = ws_writer_header(&server, buf, WS_OPCODE_BINARY, true, 0, 126, NULL);
        is_bytes(buf, n, "header for 126 bytes: 16-bit length", 0x82, 0x7e, 0x00, 0x7e);
        n = ws_writer_header(&server, buf, WS_OPCODE_BINARY, true, 0, 65535, NULL);
        is_bytes(buf, n, "header for 65535 bytes: 16-bit length", 0x82, 0x7e, 0xff, 0xff);
        n = ws_writer_header(&server, buf, WS_OPCODE_BINARY, false, 0, 65536, NULL);
        is_bytes(buf, n, "header for 65536 bytes: 64-bit length", 0x02, 0x7f, 0, 0, 0, 0, 0, 1, 0,
                 0);
        n = ws_writer_header(&client, buf, WS_OPCODE_TEXT, true, 0x4, 70000, mask);
        is_bytes(buf, n, "client header with RSV1, 64-bit length and key", 0xc1, 0xff, 0, 0, 0, 0,
                 0, 1, 0x11, 0x70, 0x37, 0xfa, 0x21, 0x3d);
        is_mem(mask, 4, key.key, 4, "client header returns its key");
        is_int(ws_writer_header(&server, buf, WS_OPCODE_BINARY, true, 0, UINT64_C(1) << 63, NULL),
               -EINVAL, "length of 2^63 refused");
        is_int(ws_writer_header(&server, buf, WS_OPCODE_PING, true, 0, 126, NULL), -EINVAL,
               "control frame of 126 bytes refused");
        is_int(ws_writer_header(&server, buf, WS_OPCODE_CLOSE, false, 0, 2, NULL), -EINVAL,
               "fragmented control frame refused");
        is_int(ws_writer_header(&server, buf, (WsOpcode) 3, true, 0, 2, NULL), -EINVAL,
               "reserved opcode refused");
        is_int(ws_writer_header(&server, buf, WS_OPCODE_TEXT, true, 8, 2, NULL), -EINVAL,
               "rsv of 4 bits refused");
        is_int(ws_writer_frame(&server, buf, 6, WS_OPCODE_TEXT, true, "Hello", 5), -ENOBUFS,
               "frame larger than the buffer: -ENOBUFS");
        is_int(ws_writer_frame(&server, buf, 7, WS_OPCODE_TEXT, true, "Hello", 5), 7,
               "frame exactly the size of the buffer");

        n = ws_writer_close(&server, buf, sizeof(buf), 1000, "bye");
        is_bytes(buf, n, "close with code and reason", 0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e');
        n = ws_writer_close(&server, buf, sizeof(buf), 0, NULL);
        is_bytes(buf, n, "close without a code", 0x88, 0x00);
        n = ws_writer_close(&server, buf, sizeof(buf), 4999, NULL);
        is_bytes(buf, n, "close 4999 without reason", 0x88, 0x02, 0x13, 0x87);
        n = ws_writer_close(&client, buf, sizeof(buf), 1001, NULL);
        is_bytes(buf, n, "masked close from a client", 0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d,
                 0x03 ^ 0x37, 0xe9 ^ 0xfa);
        {
                char reason[WS_CLOSE_REASON_MAX + 2];

                memset(reason, 'r', sizeof(reason));
                reason[WS_CLOSE_REASON_MAX] = 0;
                n = ws_writer_close(&server, buf, sizeof(buf), 1000, reason);
                is_int(n, 2 + 125, "close with a 123-byte reason fills a control frame");
                reason[WS_CLOSE_REASON_MAX] = 'r';
                reason[WS_CLOSE_REASON_MAX + 1] = 0;
                is_int(ws_writer_close(&server, buf, sizeof(buf), 1000, reason), -EINVAL,
                       "close with a 124-byte reason refused");
        }
        is_int(ws_writer_close(&server, buf, sizeof(buf), 1000, "\xc0\x80"), -EINVAL,
               "close reason not UTF-8 refused");
        is_int(ws_writer_close(&server, buf, sizeof(buf), 0, "x"), -EINVAL,
               "reason without a code refused");
        for (unsigned code = 0; code < 6000; code++)
                if (ws_close_code_is_valid(code) &&
                    !((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                      (code >= 3000 && code <= 4999))) {
                        ok(false, "close code %u valid", code);
                        break;
                }
        is_int(ws_writer_close(&server, buf, sizeof(buf), 1005, NULL), -EINVAL,
               "close 1005 refused");
        is_int(ws_writer_close(&server, buf, sizeof(buf), 1006, NULL), -EINVAL,
               "close 1006 refused");
        is_int(ws_writer_close(&server, buf, sizeof(buf), 1015, NULL), -EINVAL,
               "close 1015 refused");
        is_int(ws_writer_close(&server, buf, sizeof(buf), 2999, NULL), -EINVAL,
               "close 2999 refused");

        key.error = -EIO;
        is_int(ws_writer_frame(&client, buf, sizeof(buf), WS_OPCODE_TEXT, true, "x", 1), -EIO,
               "rng failure passed on");
        key.error = 0;

        /* A streamed payload masked in two parts equals one masked in one go. */
        {
                uint8_t a[37], b[37];

                for (size_t i = 0; i < sizeof(a); i++)
                        a[i] = b[i] = (uint8_t) i;
                ws_mask(a, sizeof(a), key.key, 0);
                ws_mask(b, 5, key.key, 0);
                ws_mask(b + 5, sizeof(b) - 5, key.key, 5);
                is_mem(a, sizeof(a), b, sizeof(b), "masking in pieces with an offset");
        }

        /* Round trips at the length encoding boundaries, client to server. */
        {
                static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70001};
                uint8_t *payload = xmalloc(70001), *wire = xmalloc(70001 + WS_HEADER_MAX);
                char *expect = xmalloc(70001 + 3);
                char name[64];
                WsWriter real;

                ws_writer_init(&real, WS_ROLE_CLIENT, NULL, NULL);
                for (size_t i = 0; i < 70001; i++)
                        payload[i] = (uint8_t) (i ^ (i >> 8));
                for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                        int len = ws_writer_frame(&real, wire, 70001 + WS_HEADER_MAX,
                                                  WS_OPCODE_BINARY, true, payload, sizes[i]);

                        memcpy(expect, "<B", 2);
                        memcpy(expect + 2, payload, sizes[i]);
                        expect[2 + sizes[i]] = '>';
                        snprintf(name, sizeof(name), "round trip of %zu bytes", sizes[i]);
                        check_parse(name, SERVER, wire, (size_t) len, expect, sizes[i] + 3, 0, 0);
                }
                free(payload);
                free(wire);
                free(expect);
        }
}

/* ---- Handshake ---- */

static int sample_nonce(void *buf, size_t size, void *userdata)
{
        if (size != 16)
                return -EINVAL;
        memcpy(buf, "the sample nonce", 16);
        return 0;
}

typedef struct Header {
        const char *name;
        const char *value;
} Header;

static int handshake_run(const char *const *offer, unsigned status, const Header *headers,
                         const char **ret_protocol, const char **ret_error)
{
        WsHandshake h;
        int r = ws_handshake_init(&h, offer, sample_nonce, NULL);

        if (r < 0)
                return r;
        for (size_t i = 0; headers[i].name; i++) {
                r = ws_handshake_response_header(&h, headers[i].name, strlen(headers[i].name),
                                                 headers[i].value, strlen(headers[i].value));
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = ws_handshake_response_finish(&h, status, ret_protocol);
        *ret_error = ws_handshake_get_error(&h);
        return r;
}

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void check_response(const char *name, const char *const *offer, unsigned status,
                           const Header *headers, int expect, const char *expect_protocol)
{
        const char *protocol = "unset", *error = NULL;
        int r = handshake_run(offer, status, headers, &protocol, &error);

        is_int(r, expect, "handshake: %s (%s)", name, error ? error : "no error");
        if (expect == 0)
                ok(streq_ptr(protocol, expect_protocol), "handshake: %s: subprotocol %s", name,
                   strempty(expect_protocol));
        else
                ok(error != NULL, "handshake: %s: says why", name);
}

static void test_handshake(void)
{
        static const char *const offer[] = {"chat", "superchat", NULL};
        static const char *const too_many[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                               "j", "k", "l", "m", "n", "o", "p", "q", NULL};
        char accept[WS_ACCEPT_LENGTH + 1], buf[64];
        WsHandshake h, h2;

        is_int(ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", accept), 0, "accept computed");
        is_str(accept, ACCEPT, "RFC 6455 1.3 example accept value");
        is_int(ws_handshake_accept("", accept), -EINVAL, "empty key refused");

        is_int(ws_handshake_init(&h, offer, sample_nonce, NULL), 0, "handshake init");
        is_str(h.key, "dGhlIHNhbXBsZSBub25jZQ==", "key is base64 of the 16 nonce bytes");
        is_int(ws_handshake_protocols_header(&h, buf, sizeof(buf)), 15, "protocols header length");
        is_str(buf, "chat, superchat", "protocols header value");
        is_int(ws_handshake_protocols_header(&h, buf, 15), -ENOBUFS,
               "protocols header without room for its NUL");
        is_int(ws_handshake_init(&h, NULL, NULL, NULL), 0, "handshake init with getrandom");
        is_int(ws_handshake_init(&h2, NULL, NULL, NULL), 0, "second handshake init");
        is_int(strlen(h.key), WS_KEY_LENGTH, "random key is 24 characters");
        ok(!streq(h.key, h2.key), "two random keys differ");
        is_int(ws_handshake_protocols_header(&h, buf, sizeof(buf)), 0, "nothing offered");
        is_int(ws_handshake_init(&h, (const char *const[]){"a b", NULL}, NULL, NULL), -EINVAL,
               "subprotocol with a space refused");
        is_int(ws_handshake_init(&h, (const char *const[]){"", NULL}, NULL, NULL), -EINVAL,
               "empty subprotocol refused");
        is_int(ws_handshake_init(&h, too_many, NULL, NULL), -EINVAL, "17 subprotocols refused");

        check_response("RFC example", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       0, NULL);
        check_response("names and tokens in any case, list in Connection", offer, 101,
                       (const Header[]){{"uPGRADE", " WebSocket "},
                                        {"connection", "keep-alive, upgrade"},
                                        {"SEC-WEBSOCKET-ACCEPT", ACCEPT},
                                        {"sec-websocket-protocol", "superchat"},
                                        {"Server", "test"},
                                        {NULL, NULL}},
                       0, "superchat");
        check_response("offered, none chosen", offer, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       0, NULL);
        check_response("status 200", NULL, 200,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("no Upgrade", NULL, 101,
                       (const Header[]){{"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("Upgrade: h2c", NULL, 101,
                       (const Header[]){{"Upgrade", "h2c"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("no Connection: upgrade", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "keep-alive"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response(
            "no accept", NULL, 101,
            (const Header[]){{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {NULL, NULL}},
            -EBADMSG, NULL);
        check_response("wrong accept", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("accept twice", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("an extension we did not offer", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Extensions", "permessage-deflate"},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("a subprotocol when none was offered", NULL, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Protocol", "chat"},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("a subprotocol not offered", offer, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Protocol", "Chat"},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("two subprotocols", offer, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Protocol", "chat"},
                                        {"Sec-WebSocket-Protocol", "chat"},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
        check_response("a subprotocol list", offer, 101,
                       (const Header[]){{"Upgrade", "websocket"},
                                        {"Connection", "Upgrade"},
                                        {"Sec-WebSocket-Accept", ACCEPT},
                                        {"Sec-WebSocket-Protocol", "chat, superchat"},
                                        {NULL, NULL}},
                       -EBADMSG, NULL);
}

/*
 * ws_writer_piece(): tx pieces as the ws client and server send them. A SOM
 * inside an open message ends it with an empty final frame first; a client's
 * pieces are masked. The peer parses the messages back.
 */
static void test_writer_piece(WsRole role)
{
        static const struct {
                const char *data;
                bool binary, som, eom;
        } pieces[] = {
            {"Hel", false, true, false}, {"lo", false, false, true}, {"ab", true, true, false},
            {"cd", true, true, true},    {"", false, true, true},
        };
        uint8_t wire[512], out[WS_PIECE_PREFIX + 16];
        size_t wire_len = 0;
        bool in_message = false;
        WsWriter w;
        char name[64];
        int start;

        ws_writer_init(&w, role, NULL, NULL);
        for (size_t i = 0; i < ELEMENTSOF(pieces); i++) {
                size_t len = strlen(pieces[i].data);

                memcpy(out + WS_PIECE_PREFIX, pieces[i].data, len);
                start = ws_writer_piece(&w, out, len, pieces[i].binary, pieces[i].som,
                                        pieces[i].eom, &in_message);
                if (start < 0 || start > WS_PIECE_PREFIX)
                        abort();
                memcpy(wire + wire_len, out + start, WS_PIECE_PREFIX + len - (size_t) start);
                wire_len += WS_PIECE_PREFIX + len - (size_t) start;
                is_int(in_message, !pieces[i].eom,
                       "%s piece %zu: a message stays open after it unless it ends it",
                       role == WS_ROLE_CLIENT ? "client" : "server", i);
        }
        snprintf(name, sizeof(name), "%s pieces",
                 role == WS_ROLE_CLIENT ? "client (masked)" : "server");
        check_parse(
            name,
            &(WsParserOptions){.role = role == WS_ROLE_CLIENT ? WS_ROLE_SERVER : WS_ROLE_CLIENT},
            wire, wire_len, LOG("<THello><Bab><Bcd><T>"), 0, 0);
}

int main(void)
{
        tap_init();
        test_rfc_examples();
        test_header_rejections();
        test_close_frames();
        test_close_stops();
        test_utf8();
        test_fragmentation();
        test_size_limit();
        test_big_message(false);
        test_big_message(true);
        test_writer();
        test_writer_piece(WS_ROLE_CLIENT);
        test_writer_piece(WS_ROLE_SERVER);
        test_handshake();
        return tap_done();
}

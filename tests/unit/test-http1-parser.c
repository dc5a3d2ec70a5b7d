/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 response parser: each response is parsed whole, in two pieces
 * split at every byte, and one byte at a time, and must give the same events
 * every time. Then every rejection with its error code and text, large bodies,
 * stopping and resuming between events, and keep-alive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1-parser.h"
#include "tap.h"
#include "util.h"

typedef enum SplitMode {
        SPLIT_WHOLE,
        SPLIT_TWO,
        SPLIT_BYTES,
} SplitMode;

static void *xmalloc(size_t n)
{
        void *p = malloc(n);

        if (!p)
                abort();
        return p;
}

static const char *errno_name(int r)
{
        switch (r) {
        case -EBADMSG:
                return "EBADMSG";
        case -E2BIG:
                return "E2BIG";
        case -ENODATA:
                return "ENODATA";
        default:
                return "unexpected";
        }
}

typedef struct Log {
        char *text;
        size_t size;
        FILE *f;
        char *body; /* body bytes not yet written to the log */
        size_t body_size;
        bool invariants_broken;
} Log;

static void log_flush_body(Log *l)
{
        if (!l->body_size)
                return;
        fputs("B:", l->f);
        fwrite(l->body, 1, l->body_size, l->f);
        fputc('|', l->f);
        l->body_size = 0;
}

static void log_event(Log *l, const Http1Event *ev)
{
        if (ev->type == HTTP1_EVENT_BODY) {
                char *n = realloc(l->body, l->body_size + ev->size + 1);

                if (!n)
                        abort();
                l->body = n;
                memcpy(l->body + l->body_size, ev->data, ev->size);
                l->body_size += ev->size;
                if (ev->size == 0)
                        l->invariants_broken = true; /* empty body events are noise */
                return;
        }
        log_flush_body(l);
        switch (ev->type) {
        case HTTP1_EVENT_STATUS:
                fprintf(l->f, "S%u 1.%u %s|", ev->status, ev->version_minor, ev->reason);
                break;
        case HTTP1_EVENT_HEADER:
        case HTTP1_EVENT_TRAILER:
                fprintf(l->f, "%c %s=%s|", ev->type == HTTP1_EVENT_HEADER ? 'H' : 'T', ev->name,
                        ev->value);
                if (strlen(ev->name) != ev->name_len || strlen(ev->value) != ev->value_len)
                        l->invariants_broken = true;
                break;
        case HTTP1_EVENT_HEADERS_COMPLETE:
                fputs("C|", l->f);
                break;
        case HTTP1_EVENT_MESSAGE_COMPLETE:
                fputs("M", l->f);
                break;
        case HTTP1_EVENT_BODY:
                break;
        }
}

/* Feeds one piece, pulling every event; returns <0 on error. */
static int feed_piece(Http1Parser *p, Log *l, const uint8_t *data, size_t size)
{
        for (;;) {
                Http1Event ev;
                size_t used = SIZE_MAX;
                int r = http1_parser_feed(p, data, size, &used, &ev);

                if (r < 0)
                        return r;
                if (used > size)
                        l->invariants_broken = true;
                if (r == 0) {
                        if (used != size)
                                l->invariants_broken = true;
                        return 0;
                }
                if (ev.type == HTTP1_EVENT_BODY &&
                    (ev.data < data || ev.data + ev.size > data + size))
                        l->invariants_broken = true; /* body must point into the input */
                log_event(l, &ev);
                data += used;
                size -= used;
        }
}

/*
 * Parses input split as asked and returns the event log, ending in
 * "!ERRNO text" on failure. split is the size of the first piece in SPLIT_TWO.
 */
static char *parse(const char *input, size_t len, SplitMode mode, size_t split, bool head, bool eof)
{
        Http1Parser *p;
        Log l = {0};
        int r = 0;

        if (http1_parser_new(&p) < 0)
                abort();
        http1_parser_reset(p, head);
        l.f = open_memstream(&l.text, &l.size);
        if (!l.f)
                abort();

        switch (mode) {
        case SPLIT_WHOLE:
                r = feed_piece(p, &l, (const uint8_t *) input, len);
                break;
        case SPLIT_TWO:
                r = feed_piece(p, &l, (const uint8_t *) input, split);
                if (r >= 0)
                        r = feed_piece(p, &l, (const uint8_t *) input + split, len - split);
                break;
        case SPLIT_BYTES:
                for (size_t i = 0; i < len && r >= 0; i++)
                        r = feed_piece(p, &l, (const uint8_t *) input + i, 1);
                break;
        }
        if (r >= 0 && eof) {
                Http1Event ev;

                r = http1_parser_feed_eof(p, &ev);
                if (r > 0)
                        log_event(&l, &ev);
        }
        log_flush_body(&l);
        if (r < 0) {
                fprintf(l.f, "!%s %s", errno_name(r), strempty(http1_parser_get_error(p)));
                if (!http1_parser_get_error(p))
                        l.invariants_broken = true;
        } else if (http1_parser_get_error(p))
                l.invariants_broken = true;
        if (l.invariants_broken)
                fputs(" [invariants broken]", l.f);
        fclose(l.f);
        free(l.body);
        http1_parser_free(p);
        return l.text;
}

/* Whole, at every split point (a sample of them for big inputs), and bytewise. */
static void check_full(const char *name, const char *input, size_t len, bool head, bool eof,
                       const char *expect)
{
        char *whole = parse(input, len, SPLIT_WHOLE, 0, head, eof);
        size_t step = len > 2048 ? len / 509 : 1;
        unsigned bad = 0, tried = 0;
        char *bytes;

        is_str(whole, expect, "%s", name);
        for (size_t i = 0; i <= len; i += step) {
                char *split = parse(input, len, SPLIT_TWO, i, head, eof);

                tried++;
                if (!streq(split, whole)) {
                        if (bad++ == 0)
                                tap_diag("split at %zu gives: %s", i, split);
                }
                free(split);
        }
        is_int(bad, 0, "%s: same events split in two at %u points", name, tried);
        bytes = parse(input, len, SPLIT_BYTES, 0, head, eof);
        is_str(bytes, whole, "%s: same events fed byte by byte", name);
        free(bytes);
        free(whole);
}

static void check(const char *name, const char *input, const char *expect)
{
        check_full(name, input, strlen(input), false, false, expect);
}

static void check_eof(const char *name, const char *input, const char *expect)
{
        check_full(name, input, strlen(input), false, true, expect);
}

static void check_head(const char *name, const char *input, const char *expect)
{
        check_full(name, input, strlen(input), true, false, expect);
}

static void test_valid(void)
{
        check("200 with Content-Length",
              "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
              "S200 1.1 OK|H Content-Length=5|H Content-Type=text/plain|C|B:hello|M");
        check("chunked with extensions and trailers",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5;name=value\r\nhello\r\n"
              "6 ; a = \"q\\\"x;\" ;b\r\n world\r\n"
              "0;last\r\nX-Trailer: t\r\nX-Other:  u v \r\n\r\n",
              "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:hello world|T X-Trailer=t|"
              "T X-Other=u v|M");
        check("chunked, upper-case hex and leading zeros, no trailers",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
              "000A\r\n0123456789\r\n00\r\n\r\n",
              "S200 1.1 OK|H Transfer-Encoding=Chunked|C|B:0123456789|M");
        check("Transfer-Encoding list with empty elements",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked ,\r\n\r\n1\r\nx\r\n0\r\n\r\n",
              "S200 1.1 OK|H Transfer-Encoding=, chunked ,|C|B:x|M");
        check("204 has no body", "HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n",
              "S204 1.1 No Content|H Server=t|C|M");
        check("304 with Content-Length has no body",
              "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n",
              "S304 1.1 Not Modified|H Content-Length=100|H ETag=\"x\"|C|M");
        check_head("HEAD response with Content-Length has no body",
                   "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
                   "S200 1.1 OK|H Content-Length=1234|C|M");
        check_head("HEAD response with chunked has no body",
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "S200 1.1 OK|H Transfer-Encoding=chunked|C|M");
        check("the same response to GET waits for the body",
              "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
              "S200 1.1 OK|H Content-Length=1234|C|");
        check("302 with Location",
              "HTTP/1.1 302 Found\r\nLocation: https://portal.example/login?x=1\r\n"
              "Content-Length: 0\r\n\r\n",
              "S302 1.1 Found|H Location=https://portal.example/login?x=1|"
              "H Content-Length=0|C|M");
        check("100 Continue is skipped",
              "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
              "S200 1.1 OK|H Content-Length=2|C|B:ok|M");
        check("103 Early Hints with fields, then 100, then 201",
              "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
              "HTTP/1.1 100 Continue\r\n\r\n"
              "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!",
              "S201 1.1 Created|H Content-Length=1|C|B:!|M");
        check_eof("close-delimited body ends at EOF",
                  "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nsome body\r\nmore",
                  "S200 1.0 OK|H Server=old|C|B:some body\r\nmore|M");
        check("close-delimited body without EOF is not complete", "HTTP/1.1 200 OK\r\n\r\nabc",
              "S200 1.1 OK|C|B:abc|");
        check_eof("close-delimited empty body", "HTTP/1.1 200 OK\r\n\r\n", "S200 1.1 OK|C|M");
        check("bare LF ends lines everywhere",
              "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\nT: 1\n\n",
              "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:abc|T T=1|M");
        check("no reason phrase and no SP", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
              "S200 1.1 |H Content-Length=0|C|M");
        check("empty reason phrase with SP", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
              "S404 1.1 |H Content-Length=0|C|M");
        check("reason phrase with tab and obs-text",
              "HTTP/1.1 200 Okay\tfine \xc3\xa9\r\nContent-Length: 0\r\n\r\n",
              "S200 1.1 Okay\tfine \xc3\xa9|H Content-Length=0|C|M");
        check("duplicate equal Content-Length is accepted",
              "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc",
              "S200 1.1 OK|H Content-Length=3|H content-length=003|C|B:abc|M");
        check("field values: OWS trimmed, empty, obs-text, inner tabs",
              "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Ws: \t \r\nX-Text:\t a\tb \xff \r\n"
              "X-Tok!#$%&'*+-.^_`|~9: v\r\nContent-Length: 0\r\n\r\n",
              "S200 1.1 OK|H X-Empty=|H X-Ws=|H X-Text=a\tb \xff|H X-Tok!#$%&'*+-.^_`|~9=v|"
              "H Content-Length=0|C|M");
        check("body with CR LF and NUL-free binary",
              "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n\r\n\x01\xff\n\r",
              "S200 1.1 OK|H Content-Length=6|C|B:\r\n\x01\xff\n\r|M");
        check("exactly 100 fields are accepted",
              "HTTP/1.1 200 OK\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n"
              "A:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nB:2\r\n\r\n",
              "S200 1.1 OK|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|"
              "H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H A=1|H B=2|C|");
}

/* A response with one header whose line has exactly n bytes before CRLF. */
static char *response_with_line(size_t n, const char *after)
{
        char *s;
        size_t head = strlen("HTTP/1.1 200 OK\r\n");

        s = xmalloc(head + n + 2 + strlen(after) + 1);
        if (!s)
                abort();
        strcpy(s, "HTTP/1.1 200 OK\r\n");
        memcpy(s + head, "X:", 2);
        memset(s + head + 2, 'v', n - 2);
        strcpy(s + head + n, "\r\n");
        strcat(s, after);
        return s;
}

static void test_limits(void)
{
        char *s, *expect;
        size_t n;
        FILE *f;

        /* A header line of exactly HTTP1_MAX_LINE bytes is fine, one more is not. */
        s = response_with_line(HTTP1_MAX_LINE, "Content-Length: 0\r\n\r\n");
        n = strlen(s);
        f = open_memstream(&expect, &n);
        fputs("S200 1.1 OK|H X=", f);
        for (int i = 0; i < HTTP1_MAX_LINE - 2; i++)
                fputc('v', f);
        fputs("|H Content-Length=0|C|M", f);
        fclose(f);
        check("header line of the maximum length", s, expect);
        free(expect);
        free(s);
        s = response_with_line(HTTP1_MAX_LINE + 1, "\r\n");
        check("header line one byte too long", s, "S200 1.1 OK|!E2BIG header line too long");
        free(s);

        /* Status line too long. */
        s = xmalloc(HTTP1_MAX_LINE + 100);
        strcpy(s, "HTTP/1.1 200 ");
        memset(s + 13, 'r', HTTP1_MAX_LINE);
        strcpy(s + 13 + HTTP1_MAX_LINE, "\r\n\r\n");
        check("status line too long", s, "!E2BIG status line too long");
        /* Long line without any LF is refused before it ends. */
        s[13 + HTTP1_MAX_LINE] = '\0';
        check("endless status line", s, "!E2BIG status line too long");
        free(s);

        /* 101 fields. */
        s = xmalloc(32 + 101 * 5);
        strcpy(s, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 101; i++)
                strcat(s, "A:1\r\n");
        f = open_memstream(&expect, &n);
        fputs("S200 1.1 OK|", f);
        for (int i = 0; i < 100; i++)
                fputs("H A=1|", f);
        fputs("!E2BIG too many header fields", f);
        fclose(f);
        check("101 header fields", s, expect);
        free(expect);
        free(s);

        /* Nine lines of 8000 bytes: each is allowed, together they exceed 64 KiB. */
        n = strlen("HTTP/1.1 200 OK\r\n");
        s = xmalloc(n + 9 * 8002 + 3);
        memcpy(s, "HTTP/1.1 200 OK\r\n", n);
        for (int i = 0; i < 9; i++, n += 8002) {
                memcpy(s + n, "X:", 2);
                memset(s + n + 2, 'a' + i, 7998);
                memcpy(s + n + 8000, "\r\n", 2);
        }
        memcpy(s + n, "\r\n", 3);
        f = open_memstream(&expect, &n);
        fputs("S200 1.1 OK|", f);
        for (int i = 0; i < 8; i++) {
                fputs("H X=", f);
                for (int j = 0; j < 7998; j++)
                        fputc('a' + i, f);
                fputc('|', f);
        }
        fputs("!E2BIG header section too large", f);
        fclose(f);
        check("header section over 64 KiB", s, expect);
        free(expect);
        free(s);

        /* 17 interim responses. */
        s = xmalloc(17 * 25 + 1);
        s[0] = '\0';
        for (int i = 0; i < 17; i++)
                strcat(s, "HTTP/1.1 100 Continue\r\n\r\n");
        check("too many interim responses", s, "!E2BIG too many interim responses");
        free(s);

        /* Trailers have the limits of a header section. */
        s = xmalloc(128 + 101 * 5);
        strcpy(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
        for (int i = 0; i < 101; i++)
                strcat(s, "T:1\r\n");
        f = open_memstream(&expect, &n);
        fputs("S200 1.1 OK|H Transfer-Encoding=chunked|C|", f);
        for (int i = 0; i < 100; i++)
                fputs("T T=1|", f);
        fputs("!E2BIG too many trailer fields", f);
        fclose(f);
        check("101 trailer fields", s, expect);
        free(expect);
        free(s);

        s = xmalloc(HTTP1_MAX_LINE + 100);
        strcpy(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
        n = strlen(s);
        memset(s + n, 'e', HTTP1_MAX_LINE);
        strcpy(s + n + HTTP1_MAX_LINE, "\r\nx\r\n0\r\n\r\n");
        check("chunk size line too long", s,
              "S200 1.1 OK|H Transfer-Encoding=chunked|C|!E2BIG chunk size line too long");
        free(s);
}

static void test_rejections(void)
{
        static const struct {
                const char *input;
                const char *expect;
        } cases[] = {
            /* Status line. */
            {"HTTX/1.1 200 OK\r\n\r\n", "!EBADMSG not an HTTP status line"},
            {"http/1.1 200 OK\r\n\r\n", "!EBADMSG not an HTTP status line"},
            {"HTTP/2.0 200 OK\r\n\r\n", "!EBADMSG unsupported HTTP version"},
            {"HTTP/1.2 200 OK\r\n\r\n", "!EBADMSG unsupported HTTP version"},
            {"HTTP/2 200 OK\r\n\r\n", "!EBADMSG malformed HTTP version"},
            {"HTTP/1.1200 OK\r\n\r\n", "!EBADMSG malformed HTTP version"},
            {"HTTP/1.1 20 OK\r\n\r\n", "!EBADMSG malformed status code"},
            {"HTTP/1.1 2000 OK\r\n\r\n", "!EBADMSG malformed status code"},
            {"HTTP/1.1  200 OK\r\n\r\n", "!EBADMSG malformed status code"},
            {"HTTP/1.1 2x0 OK\r\n\r\n", "!EBADMSG malformed status code"},
            {"HTTP/1.1 099 Low\r\n\r\n", "!EBADMSG status code out of range"},
            {"HTTP/1.1 600 High\r\n\r\n", "!EBADMSG status code out of range"},
            {"HTTP/1.1 200 O\x01K\r\n\r\n", "!EBADMSG invalid character in reason phrase"},
            {"HTTP/1.1 200 O\x7fK\r\n\r\n", "!EBADMSG invalid character in reason phrase"},
            {"\r\nHTTP/1.1 200 OK\r\n\r\n", "!EBADMSG empty line instead of a status line"},
            {"HTTP/1.1 200 O\rK\r\n\r\n", "!EBADMSG bare CR in a line"},
            /* Field lines. */
            {"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
             "S200 1.1 OK|!EBADMSG whitespace between field name and colon"},
            {"HTTP/1.1 200 OK\r\nX\t: 0\r\n\r\n",
             "S200 1.1 OK|!EBADMSG whitespace between field name and colon"},
            {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
             "S200 1.1 OK|H X=a|!EBADMSG obsolete line folding"},
            {"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n",
             "S200 1.1 OK|H X=a|!EBADMSG obsolete line folding"},
            {"HTTP/1.1 200 OK\r\n X: a\r\n\r\n",
             "S200 1.1 OK|!EBADMSG whitespace before the first field line"},
            {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
             "S200 1.1 OK|!EBADMSG field line without a colon"},
            {"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "S200 1.1 OK|!EBADMSG empty field name"},
            {"HTTP/1.1 200 OK\r\nX(y): z\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid character in field name"},
            {"HTTP/1.1 200 OK\r\nX\xc3\xa9: z\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid character in field name"},
            {"HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid character in field value"},
            {"HTTP/1.1 200 OK\r\nX: a\x7fz\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid character in field value"},
            {"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "S200 1.1 OK|!EBADMSG bare CR in a line"},
            {"HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n", "S200 1.1 OK|!EBADMSG bare CR in a line"},
            /* Content-Length. */
            {"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
             "S200 1.1 OK|!EBADMSG empty Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
             "S200 1.1 OK|!EBADMSG invalid Content-Length"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
             "S200 1.1 OK|!E2BIG Content-Length too large"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
             "S200 1.1 OK|!E2BIG Content-Length too large"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
             "S200 1.1 OK|H Content-Length=5|!EBADMSG conflicting Content-Length values"},
            /* Transfer-Encoding. */
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
             "S200 1.1 OK|!EBADMSG unsupported transfer coding"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
             "S200 1.1 OK|!EBADMSG unsupported transfer coding"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
             "S200 1.1 OK|!EBADMSG unsupported transfer coding"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
             "S200 1.1 OK|!EBADMSG chunked applied more than once"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
             "\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|!EBADMSG chunked applied more than once"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
             "S200 1.1 OK|!EBADMSG empty Transfer-Encoding"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
             "S200 1.1 OK|!EBADMSG empty Transfer-Encoding"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|"
             "!EBADMSG both Content-Length and Transfer-Encoding"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             "S200 1.1 OK|H Content-Length=5|"
             "!EBADMSG both Content-Length and Transfer-Encoding"},
            {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             "S200 1.0 OK|H Transfer-Encoding=chunked|"
             "!EBADMSG Transfer-Encoding in an HTTP/1.0 response"},
            /* Interim responses obey the same rules. */
            {"HTTP/1.1 100 Continue\r\nX : y\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
             "!EBADMSG whitespace between field name and colon"},
            /* Chunked framing. */
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk size"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk size"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk size"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!E2BIG chunk size too large"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|!EBADMSG invalid chunk extension"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:hello|"
             "!EBADMSG chunk data not followed by CRLF"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:hello|"
             "!EBADMSG chunk data not followed by CRLF"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT : x\r\n\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|"
             "!EBADMSG whitespace between field name and colon"},
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: x\r\n y\r\n\r\n",
             "S200 1.1 OK|H Transfer-Encoding=chunked|C|T T=x|"
             "!EBADMSG obsolete line folding"},
            /* Nothing may follow a complete response. */
            {"HTTP/1.1 204 No Content\r\n\r\nX",
             "S204 1.1 No Content|C|M!EBADMSG data after the end of the response"},
            {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
             "S200 1.1 OK|H Content-Length=1|C|B:a|M!EBADMSG data after the end of the "
             "response"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char name[64];

                snprintf(name, sizeof(name), "rejection %zu", i);
                check(name, cases[i].input, cases[i].expect);
        }
}

static void test_eof(void)
{
        Http1Parser *p;
        Http1Event ev;

        check_eof("EOF before any byte", "", "!ENODATA connection closed before the response");
        check_eof("EOF inside the status line", "HTTP/1.1 20",
                  "!EBADMSG connection closed inside the header section");
        check_eof("EOF after an interim response", "HTTP/1.1 100 Continue\r\n\r\n",
                  "!EBADMSG connection closed inside the header section");
        check_eof("EOF inside the header section", "HTTP/1.1 200 OK\r\nX: y\r\n",
                  "S200 1.1 OK|H X=y|!EBADMSG connection closed inside the header section");
        check_eof("EOF inside a Content-Length body",
                  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                  "S200 1.1 OK|H Content-Length=10|C|B:abc|"
                  "!EBADMSG connection closed inside the body");
        check_eof("EOF inside a chunk",
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                  "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:ab|"
                  "!EBADMSG connection closed inside the chunked body");
        check_eof("EOF before the last chunk",
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
                  "S200 1.1 OK|H Transfer-Encoding=chunked|C|B:ab|"
                  "!EBADMSG connection closed inside the chunked body");
        check_eof("EOF inside the trailers",
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n",
                  "S200 1.1 OK|H Transfer-Encoding=chunked|C|T T=1|"
                  "!EBADMSG connection closed inside the chunked body");
        check_eof("EOF after a complete response is fine",
                  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                  "S200 1.1 OK|H Content-Length=1|C|B:a|M");

        /* The failure sticks. */
        (void) http1_parser_new(&p);
        ok(http1_parser_get_error(p) == NULL, "no error text before an error");
        is_int(http1_parser_feed_eof(p, &ev), -ENODATA, "EOF at once");
        is_int(http1_parser_feed(p, "HTTP/1.1 200 OK\r\n", 17, &(size_t){0}, &ev), -ENODATA,
               "a failed parser keeps failing with the same error");
        is_int(http1_parser_feed_eof(p, &ev), -ENODATA, "and at EOF again");
        http1_parser_reset(p, false);
        ok(http1_parser_get_error(p) == NULL, "reset clears the error");
        http1_parser_free(p);
}

/* Splits a response into pieces of pseudo-random size, as a socket would. */
static void check_big(const char *name, const char *head, const uint8_t *chunks_or_body,
                      size_t input_len, const uint8_t *expect, size_t expect_len)
{
        Http1Parser *p;
        uint8_t *input, *got;
        size_t head_len = strlen(head), total = head_len + input_len, at = 0, got_len = 0;
        unsigned seed = 12345, events = 0;
        bool complete = false, in_place = true;
        int r = 0;

        input = xmalloc(total);
        got = xmalloc(expect_len + 1);
        if (!input || !got)
                abort();
        memcpy(input, head, head_len);
        memcpy(input + head_len, chunks_or_body, input_len);
        (void) http1_parser_new(&p);
        while (at < total && r >= 0) {
                size_t piece;

                seed = seed * 1103515245 + 12345;
                piece = MIN(total - at, 1 + (seed >> 8) % 20000);
                for (;;) {
                        Http1Event ev;
                        size_t used;

                        r = http1_parser_feed(p, input + at, piece, &used, &ev);
                        if (r <= 0)
                                break;
                        at += used;
                        piece -= used;
                        events++;
                        if (ev.type == HTTP1_EVENT_BODY) {
                                if (ev.data < input || ev.data + ev.size > input + total)
                                        in_place = false;
                                if (got_len + ev.size <= expect_len)
                                        memcpy(got + got_len, ev.data, ev.size);
                                got_len += ev.size;
                        }
                        if (ev.type == HTTP1_EVENT_MESSAGE_COMPLETE)
                                complete = true;
                }
                at += piece;
        }
        is_int(r, 0, "%s: parses", name);
        ok(complete, "%s: completes", name);
        is_mem(got, got_len, expect, expect_len, "%s: exact body bytes", name);
        ok(in_place, "%s: body pieces point into the input", name);
        cmp_int(events, >, 10, "%s: body came in many pieces", name);
        http1_parser_free(p);
        free(input);
        free(got);
}

static void test_big_bodies(void)
{
        size_t size = 1024 * 1024, at = 0, off = 0;
        uint8_t *body = xmalloc(size), *chunked = xmalloc(size + 64 * 1024);
        unsigned seed = 7;

        if (!body || !chunked)
                abort();
        for (size_t i = 0; i < size; i++) {
                seed = seed * 1103515245 + 12345;
                body[i] = (uint8_t) (seed >> 16);
        }
        check_big("1 MiB Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n",
                  body, size, body, size);

        /* The same bytes in chunks of 1..8000 bytes, some with extensions. */
        while (at < size) {
                size_t n;

                seed = seed * 1103515245 + 12345;
                n = MIN(size - at, 1 + (seed >> 8) % 8000);
                off += (size_t) sprintf((char *) chunked + off, "%zx%s\r\n", n,
                                        n % 3 ? "" : ";ext=\"1\"");
                memcpy(chunked + off, body + at, n);
                off += n;
                memcpy(chunked + off, "\r\n", 2);
                off += 2;
                at += n;
        }
        off += (size_t) sprintf((char *) chunked + off, "0\r\nDigest: x\r\n\r\n");
        check_big("1 MiB chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                  chunked, off, body, size);
        free(chunked);
        free(body);
}

/* Resets p and feeds s up to the end of its header section. */
static void feed_headers(Http1Parser *p, const char *s)
{
        size_t used, at = 0, len = strlen(s);
        Http1Event ev;

        http1_parser_reset(p, false);
        while (http1_parser_feed(p, s + at, len - at, &used, &ev) > 0) {
                at += used;
                if (ev.type == HTTP1_EVENT_HEADERS_COMPLETE)
                        break;
        }
}

static void test_stop_and_resume(void)
{
        static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
                                  "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        static const char upgrade[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n\r\n\x81\x02hi";
        Http1Parser *p;
        Http1Event ev;
        size_t used, at = 0;

        (void) http1_parser_new(&p);
        is_int(http1_parser_feed(p, two, sizeof(two) - 1, &used, &ev), 1, "status event");
        is_int(ev.type, HTTP1_EVENT_STATUS, "first event is the status");
        is_int(used, 17, "the status event used exactly the status line");
        is_int(http1_parser_get_status(p), 200, "status known");
        at += used;
        is_int(http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev), 1, "header");
        at += used;
        is_int(http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev), 1, "end");
        is_int(ev.type, HTTP1_EVENT_HEADERS_COMPLETE, "headers complete");
        at += used;
        is_int(at, 38, "stopped right after the header section");
        is_int(http1_parser_get_content_length(p), 3, "Content-Length known");
        ok(!http1_parser_is_chunked(p), "not chunked");
        ok(http1_parser_is_keep_alive(p), "HTTP/1.1 keeps the connection by default");
        /* The caller applies backpressure here, then resumes with what was left. */
        is_int(http1_parser_feed(p, two + at, 2, &used, &ev), 1, "part of the body");
        is_mem(ev.data, ev.size, "ab", 2, "first body piece");
        ok(ev.data == (const uint8_t *) two + at, "zero copy");
        at += used;
        is_int(http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev), 1, "rest");
        is_mem(ev.data, ev.size, "c", 1, "the body stops at Content-Length");
        at += used;
        is_int(http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev), 1, "complete");
        is_int(ev.type, HTTP1_EVENT_MESSAGE_COMPLETE, "message complete");
        is_int(used, 0, "completion uses no input");
        ok(http1_parser_is_done(p), "done");

        /* Keep-alive: the next response follows after a reset. */
        http1_parser_reset(p, false);
        is_int(http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev), 1, "next status");
        is_int(ev.status, 404, "second response's status");
        at += used;
        is_str(ev.reason, "Not Found", "second response's reason");
        while (http1_parser_feed(p, two + at, sizeof(two) - 1 - at, &used, &ev) > 0 &&
               ev.type != HTTP1_EVENT_MESSAGE_COMPLETE)
                at += used;
        at += used;
        is_int(at, sizeof(two) - 1, "both responses used all the input");
        is_int(http1_parser_feed(p, NULL, 0, &used, &ev), 0, "nothing more to report");

        /* 101: the response ends with its header section, the rest is the new protocol. */
        http1_parser_reset(p, false);
        at = 0;
        while (http1_parser_feed(p, upgrade + at, sizeof(upgrade) - 1 - at, &used, &ev) > 0) {
                at += used;
                if (ev.type == HTTP1_EVENT_MESSAGE_COMPLETE)
                        break;
        }
        is_int(ev.type, HTTP1_EVENT_MESSAGE_COMPLETE, "101 completes without a body");
        is_int(http1_parser_get_status(p), 101, "101 is the final status");
        is_mem(upgrade + at, sizeof(upgrade) - 1 - at, "\x81\x02hi", 4,
               "the bytes after a 101 are left to the caller");
        ok(!http1_parser_is_keep_alive(p), "no more HTTP after a 101");

        /* Connection options. */
        feed_headers(p, "HTTP/1.1 200 OK\r\nConnection: x, Close\r\n\r\n");
        ok(!http1_parser_is_keep_alive(p), "Connection: close ends the connection");
        feed_headers(p, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        ok(!http1_parser_is_keep_alive(p), "HTTP/1.0 closes by default");
        feed_headers(p, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        ok(http1_parser_is_keep_alive(p), "HTTP/1.0 with keep-alive keeps it");
        feed_headers(p, "HTTP/1.1 200 OK\r\n\r\n");
        ok(!http1_parser_is_keep_alive(p), "a close-delimited body ends the connection");
        feed_headers(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        ok(http1_parser_is_chunked(p) && http1_parser_is_keep_alive(p), "chunked keeps it");
        http1_parser_free(p);
}

int main(void)
{
        tap_init();
        test_valid();
        test_limits();
        test_rejections();
        test_eof();
        test_big_bodies();
        test_stop_and_resume();
        return tap_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 request parser: each request is parsed whole, in two pieces
 * split at every byte, and one byte at a time, and must give the same events
 * and the same outcome every time. Then every rejection with its error and
 * HTTP status (also at every split point), limits, keep-alive and pipelining.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1-request.h"
#include "tap.h"

typedef struct Outcome {
        char *log;
        size_t size;
        int result;
} Outcome;

static int feed_all(Http1Request *p, FILE *f, const char *data, size_t size, bool *body_open)
{
        while (true) {
                Http1RequestEvent ev;
                size_t used = 0;
                int r = http1_request_feed(p, data, size, &used, &ev);

                if (r <= 0)
                        return r;
                if (ev.type != HTTP1_REQUEST_EVENT_BODY && *body_open) {
                        fputc('|', f);
                        *body_open = false;
                }
                switch (ev.type) {
                case HTTP1_REQUEST_EVENT_REQUEST:
                        fprintf(f, "R:%s %s %u|", ev.method, ev.target, ev.version_minor);
                        break;
                case HTTP1_REQUEST_EVENT_HEADER:
                        if (strlen(ev.name) != ev.name_len || strlen(ev.value) != ev.value_len)
                                fputs("LENGTH MISMATCH", f);
                        fprintf(f, "H:%s=%s|", ev.name, ev.value);
                        break;
                case HTTP1_REQUEST_EVENT_HEADERS_COMPLETE:
                        fprintf(f, "C%s%s|", http1_request_is_keep_alive(p) ? "k" : "",
                                http1_request_expects_continue(p) ? "e" : "");
                        break;
                case HTTP1_REQUEST_EVENT_BODY:
                        if (ev.size == 0 || ev.data < (const uint8_t *) data ||
                            ev.data + ev.size > (const uint8_t *) data + size)
                                fputs("BAD BODY", f);
                        if (!*body_open)
                                fputs("B:", f);
                        *body_open = true;
                        fwrite(ev.data, 1, ev.size, f);
                        break;
                case HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE:
                        fputs("M|", f);
                        break;
                }
                data += used;
                size -= used;
        }
}

/* Parses input cut at the given points (sorted, ascending), requests back to back. */
static Outcome parse(const char *input, size_t len, const size_t *cuts, size_t n_cuts,
                     size_t max_header, uint64_t max_body)
{
        Outcome o = {0};
        Http1Request *p = NULL;
        FILE *f = open_memstream(&o.log, &o.size);
        bool body_open = false;
        size_t start = 0;

        if (!f || http1_request_new(&p) < 0)
                abort();
        http1_request_set_limits(p, max_header, max_body);
        for (size_t i = 0; i <= n_cuts; i++) {
                size_t end = i < n_cuts ? cuts[i] : len;
                int r = feed_all(p, f, input + start, end - start, &body_open);

                if (r < 0) {
                        o.result = r;
                        if (body_open)
                                fputc('|', f);
                        fprintf(f, "E:%s|", http1_request_get_error(p));
                        goto out;
                }
                start = end;
        }
out:
        if (o.result == 0 && body_open)
                fputc('|', f);
        if (o.result == 0)
                fprintf(f, "%s",
                        http1_request_is_done(p)   ? "done"
                        : http1_request_is_idle(p) ? "idle"
                                                   : "partial");
        fclose(f);
        http1_request_free(p);
        return o;
}

typedef struct Case {
        const char *name;
        const char *input;
        const char *log;
        int result;
} Case;

static const Case good[] = {
    {"GET", "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", "R:GET /a?b=c 1|H:Host=x|Ck|M|done", 0},
    {"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", "R:GET / 0|C|M|done", 0},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     "R:GET / 0|H:Connection=Keep-Alive|Ck|M|done", 0},
    {"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n",
     "R:GET / 1|H:Host=x|H:Connection=foo, close|C|M|done", 0},
    {"HTTP/1.9 as 1.1", "GET / HTTP/1.9\r\nHost: x\r\n\r\n", "R:GET / 1|H:Host=x|Ck|M|done", 0},
    {"OWS trimmed, empty value, obs-text",
     "PUT /p HTTP/1.1\r\nHost:x\r\nA: \t v  w \t\r\nB:\r\nC: \xe9t\xe9\r\n\r\n",
     "R:PUT /p 1|H:Host=x|H:A=v  w|H:B=|H:C=\xe9t\xe9|Ck|M|done", 0},
    {"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
     "R:GET / 1|H:Host=x|Ck|M|done", 0},
    {"Content-Length body", "POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
     "R:POST /u 1|H:Host=x|H:Content-Length=5|Ck|B:hello|M|done", 0},
    {"Content-Length 0", "POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     "R:POST /u 1|H:Host=x|H:Content-Length=0|Ck|M|done", 0},
    {"repeated equal Content-Length",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab",
     "R:POST / 1|H:Host=x|H:Content-Length=2|H:content-length=2|Ck|B:ab|M|done", 0},
    {"chunked with extension and trailer",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
     "3;a=b\r\nabc\r\nA \t;x\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=Chunked|Ck|B:abc0123456789|M|done", 0},
    {"Expect: 100-continue",
     "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nz",
     "R:PUT / 1|H:Host=x|H:Expect=100-Continue|H:Content-Length=1|Cke|B:z|M|done", 0},
    {"Expect without body", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
     "R:GET / 1|H:Host=x|H:Expect=100-continue|Ck|M|done", 0},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "R:OPTIONS * 1|H:Host=x|Ck|M|done", 0},
    {"absolute-form", "GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n",
     "R:GET http://x/y 1|H:Host=x|Ck|M|done", 0},
    {"partial request", "GET / HTTP/1.1\r\nHo", "R:GET / 1|partial", 0},
    {"nothing", "", "idle", 0},
    {"done leaves the rest", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2",
     "R:GET / 1|H:Host=x|Ck|M|done", 0},
};

static const Case bad[] = {
    {"bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n", "E:LF without CR|", -EBADMSG},
    {"bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n", "E:CR without LF|", -EBADMSG},
    {"no target", "GET\r\n", "E:request line without target|", -EBADMSG},
    {"bad method", "G(T / HTTP/1.1\r\n", "E:bad method|", -EBADMSG},
    {"empty method", " / HTTP/1.1\r\n", "E:bad method|", -EBADMSG},
    {"no version", "GET /\r\n", "E:request line without version|", -EBADMSG},
    {"double space", "GET  / HTTP/1.1\r\n", "E:empty request target|", -EBADMSG},
    {"space in target", "GET /a b HTTP/1.1\r\n", "E:bad HTTP version|", -EBADMSG},
    {"control in target", "GET /a\x01 HTTP/1.1\r\n", "E:bad byte in request target|", -EBADMSG},
    {"obs-text in target", "GET /\xe9 HTTP/1.1\r\n", "E:bad byte in request target|", -EBADMSG},
    {"lower-case version", "GET / http/1.1\r\n", "E:bad HTTP version|", -EBADMSG},
    {"version with trailing space", "GET / HTTP/1.1 \r\n", "E:bad HTTP version|", -EBADMSG},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n", "E:HTTP major version not 1|", -EPROTONOSUPPORT},
    {"CONNECT", "CONNECT x:443 HTTP/1.1\r\n", "E:CONNECT not implemented|", -EOPNOTSUPP},
    {"asterisk outside OPTIONS", "GET * HTTP/1.1\r\n", "E:asterisk-form outside OPTIONS|",
     -EBADMSG},
    {"relative target", "GET a/b HTTP/1.1\r\n", "E:bad request target form|", -EBADMSG},
    {"too many empty lines", "\r\n\r\n\r\n\r\n\r\n", "E:too many empty lines|", -EBADMSG},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n",
     "R:GET / 1|H:Host=x|H:A=b|E:obs-fold or whitespace before field name|", -EBADMSG},
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "R:GET / 1|E:bad field name|",
     -EBADMSG},
    {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", "R:GET / 1|E:field line without colon|",
     -EBADMSG},
    {"empty field name", "GET / HTTP/1.1\r\n: x\r\n\r\n", "R:GET / 1|E:bad field name|", -EBADMSG},
    {"NUL in value", "GET / HTTP/1.1\r\nA: \x01\r\n\r\n", "R:GET / 1|E:bad byte in field value|",
     -EBADMSG},
    {"DEL in value", "GET / HTTP/1.1\r\nA: \x7f\r\n\r\n", "R:GET / 1|E:bad byte in field value|",
     -EBADMSG},
    {"no Host", "GET / HTTP/1.1\r\n\r\n", "R:GET / 1|E:not exactly one Host field|", -EBADMSG},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
     "R:GET / 1|H:Host=a|H:Host=a|E:not exactly one Host field|", -EBADMSG},
    {"bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
     "R:POST / 1|E:bad Content-Length|", -EBADMSG},
    {"Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
     "R:POST / 1|E:bad Content-Length|", -EBADMSG},
    {"empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
     "R:POST / 1|E:bad Content-Length|", -EBADMSG},
    {"conflicting Content-Length",
     "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     "R:POST / 1|H:Content-Length=1|E:conflicting Content-Length|", -EBADMSG},
    {"Content-Length overflow", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
     "R:POST / 1|E:Content-Length too large|", -EFBIG},
    {"body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
     "R:POST / 1|H:Host=x|H:Content-Length=101|E:body too large|", -EFBIG},
    {"gzip coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     "R:POST / 1|E:transfer coding not implemented|", -EOPNOTSUPP},
    {"repeated Transfer-Encoding",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     "R:POST / 1|H:Transfer-Encoding=chunked|E:repeated Transfer-Encoding|", -EBADMSG},
    {"Transfer-Encoding and Content-Length",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|H:Content-Length=1|"
     "E:Transfer-Encoding with Content-Length|",
     -EBADMSG},
    {"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     "R:POST / 0|H:Transfer-Encoding=chunked|E:Transfer-Encoding in HTTP/1.0|", -EBADMSG},
    {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:bad chunk size|", -EBADMSG},
    {"chunk size junk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1x\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:bad chunk size|", -EBADMSG},
    {"chunk extension control",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;\x01\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:bad byte in chunk extension|", -EBADMSG},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:chunk size overflow|", -EFBIG},
    {"chunks over the limit",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:body too large|", -EFBIG},
    {"chunk data too long",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|B:a|E:chunk data too long|", -EBADMSG},
    {"bad trailer",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT v\r\n\r\n",
     "R:POST / 1|H:Host=x|H:Transfer-Encoding=chunked|Ck|E:field line without colon|", -EBADMSG},
};

static void check_case(const Case *c, size_t max_header, uint64_t max_body)
{
        size_t len = strlen(c->input);
        Outcome whole = parse(c->input, len, NULL, 0, max_header, max_body);
        bool same = true;

        is_str(whole.log, c->log, "%s: events", c->name);
        is_int(whole.result, c->result, "%s: result", c->name);
        for (size_t cut = 0; cut <= len; cut++) {
                Outcome o = parse(c->input, len, &cut, 1, max_header, max_body);

                if (o.result != whole.result || strcmp(o.log, whole.log) != 0) {
                        tap_diag("split at %zu: %s", cut, o.log);
                        same = false;
                }
                free(o.log);
        }
        ok(same, "%s: same at every split point", c->name);
        {
                size_t *cuts = calloc(len + 1, sizeof(size_t));
                Outcome o;

                if (!cuts)
                        abort();
                for (size_t i = 0; i < len; i++)
                        cuts[i] = i + 1;
                o = parse(c->input, len, cuts, len, max_header, max_body);
                is_str(o.log, whole.log, "%s: byte by byte", c->name);
                free(o.log);
                free(cuts);
        }
        free(whole.log);
}

static void test_limits(void)
{
        Http1Request *p;
        Http1RequestEvent ev;
        size_t used;
        char *big;
        int r;

        /* a header section over the limit: 431, whatever the line lengths */
        big = malloc(1024 * 1024);
        if (!big)
                abort();
        memset(big, 'a', 1024 * 1024);
        memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
        ok(http1_request_new(&p) == 0, "new");
        r = http1_request_feed(p, big, 1024 * 1024, &used, &ev);
        is_int(r, 1, "request line");
        r = http1_request_feed(p, big + used, 1024 * 1024 - used, &used, &ev);
        is_int(r, -E2BIG, "1 MiB field line: E2BIG");
        is_int(http1_request_error_status(r), 431, "431");
        cmp_int(used, <=, HTTP1_REQUEST_MAX_LINE + 1, "stopped at the line limit");
        is_int(http1_request_feed(p, "x", 1, &used, &ev), -E2BIG, "stays failed");
        is_int(used, 0, "uses nothing once failed");

        /* many short fields: the section limit */
        http1_request_reset(p);
        http1_request_set_limits(p, 100, 0);
        r = http1_request_feed(p, "GET / HTTP/1.1\r\n", 16, &used, &ev);
        is_int(r, 1, "request line under a 100-byte limit");
        r = 0;
        for (int i = 0; i < 20 && r >= 0; i++)
                r = http1_request_feed(p, "A: b\r\n", 6, &used, &ev);
        is_int(r, -E2BIG, "section over 100 bytes: E2BIG");
        is_str(http1_request_get_error(p), "header section too large", "error text");

        /* too many fields */
        http1_request_set_limits(p, 1024 * 1024, 0);
        http1_request_reset(p);
        r = http1_request_feed(p, "GET / HTTP/1.1\r\n", 16, &used, &ev);
        for (int i = 0; i <= HTTP1_REQUEST_MAX_FIELDS && r >= 0; i++)
                r = http1_request_feed(p, "A: b\r\n", 6, &used, &ev);
        is_int(r, -E2BIG, "more than %d fields: E2BIG", HTTP1_REQUEST_MAX_FIELDS);
        is_str(http1_request_get_error(p), "too many fields", "error text");

        /* request line too long: 414 */
        http1_request_reset(p);
        memset(big, 'a', 1024 * 1024);
        memcpy(big, "GET /", 5);
        r = http1_request_feed(p, big, 1024 * 1024, &used, &ev);
        is_int(r, -ENAMETOOLONG, "long request line: ENAMETOOLONG");
        is_int(http1_request_error_status(r), 414, "414");
        is_int(http1_request_error_status(-EFBIG), 413, "413");
        is_int(http1_request_error_status(-EOPNOTSUPP), 501, "501");
        is_int(http1_request_error_status(-EPROTONOSUPPORT), 505, "505");
        is_int(http1_request_error_status(-EBADMSG), 400, "400");

        /* large body in pieces, keep-alive and the next request */
        http1_request_set_limits(p, 0, 0);
        http1_request_reset(p);
        {
                const char *head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
                uint64_t got = 0;
                size_t off = 0, n = strlen(head);

                while ((r = http1_request_feed(p, head + off, n - off, &used, &ev)) > 0)
                        off += used;
                is_int(r, 0, "head parsed");
                cmp_int(http1_request_get_content_length(p), ==, 1048576, "Content-Length");
                memset(big, 'z', 1024 * 1024);
                off = 0;
                while ((r = http1_request_feed(p, big + off, 1024 * 1024 - off, &used, &ev)) > 0) {
                        if (ev.type == HTTP1_REQUEST_EVENT_BODY)
                                got += ev.size;
                        off += used;
                }
                is_int(got, 1048576, "1 MiB body");
                ok(http1_request_is_done(p), "done");
                ok(http1_request_is_keep_alive(p), "keep-alive");
                http1_request_reset(p);
                ok(http1_request_is_idle(p), "idle after reset");
                r = http1_request_feed(p, "HEAD /h HTTP/1.1\r\n", 18, &used, &ev);
                is_int(r, 1, "next request");
                ok(http1_request_is_head(p), "HEAD");
        }
        free(big);
        http1_request_free(p);
}

int main(void)
{
        tap_init();
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                check_case(&good[i], 0, 100);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                check_case(&bad[i], 0, 100);
        test_limits();
        return tap_done();
}

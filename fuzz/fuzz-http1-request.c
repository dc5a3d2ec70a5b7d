/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the HTTP/1.1 request parser: the input is parsed as pipelined
 * requests (reset after each complete one), whole and split in two at
 * input[0] % size, under small limits taken from input[1]. The events (body
 * bytes merged) and the outcome must not depend on the split, and each event
 * must keep the parser's promises: order, strings matching their lengths,
 * body pieces inside the input, body length = Content-Length.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1-request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Run {
        uint8_t *log;
        size_t log_size;
        int result;
        unsigned phase; /* 0 none, 1 request line, 2 headers done */
        uint64_t body;
        unsigned requests;
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

static void check_string(const char *s, size_t len)
{
        assert(s);
        assert(strlen(s) == len);
        assert(!memchr(s, '\r', len) && !memchr(s, '\n', len));
        if (len > 0)
                assert(s[0] != ' ' && s[0] != '\t' && s[len - 1] != ' ' && s[len - 1] != '\t');
}

static void on_event(Run *run, Http1Request *p, const Http1RequestEvent *ev, const uint8_t *in,
                     size_t in_size)
{
        uint8_t type = (uint8_t) ev->type;

        if (ev->type != HTTP1_REQUEST_EVENT_BODY)
                log_append(run, &type, 1);
        switch (ev->type) {
        case HTTP1_REQUEST_EVENT_REQUEST:
                assert(run->phase == 0);
                assert(ev->method && ev->target && ev->version_minor <= 1);
                assert(ev->method[0] && ev->target[0]);
                run->phase = 1;
                log_append(run, ev->method, strlen(ev->method) + 1);
                log_append(run, ev->target, strlen(ev->target) + 1);
                break;
        case HTTP1_REQUEST_EVENT_HEADER:
                assert(run->phase == 1);
                assert(ev->name_len > 0);
                check_string(ev->name, ev->name_len);
                check_string(ev->value, ev->value_len);
                log_append(run, ev->name, ev->name_len + 1);
                log_append(run, ev->value, ev->value_len + 1);
                break;
        case HTTP1_REQUEST_EVENT_HEADERS_COMPLETE:
                assert(run->phase == 1);
                assert(!(http1_request_is_chunked(p) &&
                         http1_request_get_content_length(p) != UINT64_MAX));
                run->phase = 2;
                run->body = 0;
                break;
        case HTTP1_REQUEST_EVENT_BODY:
                assert(run->phase == 2);
                assert(ev->size > 0);
                assert(ev->data >= in && ev->data + ev->size <= in + in_size);
                run->body += ev->size;
                log_append(run, ev->data, ev->size);
                break;
        case HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE:
                assert(run->phase == 2);
                if (http1_request_get_content_length(p) != UINT64_MAX)
                        assert(run->body == http1_request_get_content_length(p));
                run->phase = 0;
                run->requests++;
                break;
        }
}

/* Feeds one piece; returns <0 on error, else what was left unused after a complete request. */
static int feed(Http1Request *p, Run *run, const uint8_t *data, size_t size)
{
        const uint8_t *in = data;
        size_t in_size = size;

        for (;;) {
                Http1RequestEvent ev;
                size_t used = SIZE_MAX;
                int r = http1_request_feed(p, data, size, &used, &ev);

                if (r < 0)
                        return r;
                assert(used <= size);
                data += used;
                size -= used;
                if (r == 0) {
                        if (size == 0)
                                return 0;
                        /* a complete request: the next one follows */
                        assert(http1_request_is_done(p));
                        http1_request_reset(p);
                        continue;
                }
                on_event(run, p, &ev, in, in_size);
        }
}

static void run_parser(Run *run, const uint8_t *data, size_t size, size_t split)
{
        Http1Request *p;
        int r;

        *run = (Run){0};
        if (http1_request_new(&p) < 0)
                return;
        http1_request_set_limits(p, size > 1 ? 64u + data[1] * 4u : 0, size > 1 ? data[1] : 0);
        r = feed(p, run, data, split);
        if (r >= 0)
                r = feed(p, run, data + split, size - split);
        if (r < 0) {
                size_t used;
                Http1RequestEvent ev;

                assert(r == -EBADMSG || r == -E2BIG || r == -ENAMETOOLONG || r == -EFBIG ||
                       r == -EOPNOTSUPP || r == -EPROTONOSUPPORT);
                assert(http1_request_get_error(p));
                assert(http1_request_error_status(r) >= 400);
                assert(http1_request_feed(p, data, size, &used, &ev) == r);
                log_append(run, http1_request_get_error(p), strlen(http1_request_get_error(p)));
        } else
                assert(!http1_request_get_error(p));
        run->result = r;
        http1_request_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Run whole, split;

        if (size == 0)
                return 0;
        run_parser(&whole, data, size, size);
        run_parser(&split, data, size, data[0] % size);
        assert(whole.result == split.result);
        assert(whole.requests == split.requests);
        assert(whole.log_size == split.log_size);
        assert(whole.log_size == 0 || memcmp(whole.log, split.log, whole.log_size) == 0);
        free(whole.log);
        free(split.log);
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the HTTP/1.1 response parser: the input is parsed whole and split in
 * two at input[0] % size, then once more as the answer to a HEAD request. The
 * events (body bytes merged) and the outcome must not depend on the split, and
 * each event must keep the parser's promises: order, sizes, strings that match
 * their lengths, body pieces inside the input, body length = Content-Length.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1-parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Run {
        uint8_t *log;
        size_t log_size;
        int result;
        unsigned phase; /* 0 none, 1 status, 2 headers done, 3 complete */
        uint64_t body;
        bool head;
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

static void on_event(Run *run, const Http1Event *ev, const uint8_t *in, size_t in_size)
{
        uint8_t type = (uint8_t) ev->type;

        if (ev->type != HTTP1_EVENT_BODY)
                log_append(run, &type, 1);
        switch (ev->type) {
        case HTTP1_EVENT_STATUS:
                assert(run->phase == 0);
                assert(ev->status >= 100 && ev->status <= 599);
                assert(ev->status >= 200 || ev->status == 101);
                assert(ev->version_minor <= 1);
                assert(ev->reason);
                run->phase = 1;
                log_append(run, &ev->status, sizeof(ev->status));
                log_append(run, ev->reason, strlen(ev->reason) + 1);
                break;
        case HTTP1_EVENT_HEADER:
        case HTTP1_EVENT_TRAILER:
                assert(run->phase == (ev->type == HTTP1_EVENT_HEADER ? 1u : 2u));
                assert(ev->name_len > 0);
                check_string(ev->name, ev->name_len);
                check_string(ev->value, ev->value_len);
                log_append(run, ev->name, ev->name_len + 1);
                log_append(run, ev->value, ev->value_len + 1);
                break;
        case HTTP1_EVENT_HEADERS_COMPLETE:
                assert(run->phase == 1);
                run->phase = 2;
                break;
        case HTTP1_EVENT_BODY:
                assert(run->phase == 2);
                assert(ev->size > 0);
                assert(ev->data >= in && ev->data + ev->size <= in + in_size);
                assert(!run->head);
                run->body += ev->size;
                log_append(run, ev->data, ev->size);
                break;
        case HTTP1_EVENT_MESSAGE_COMPLETE:
                assert(run->phase == 2);
                run->phase = 3;
                break;
        }
}

static int feed(Http1Parser *p, Run *run, const uint8_t *data, size_t size)
{
        const uint8_t *in = data;
        size_t in_size = size;

        for (;;) {
                Http1Event ev;
                size_t used = SIZE_MAX;
                int r = http1_parser_feed(p, data, size, &used, &ev);

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

static void run_parser(Run *run, const uint8_t *data, size_t size, size_t split, bool head)
{
        Http1Parser *p;
        Http1Event ev;
        int r;

        *run = (Run){.head = head};
        if (http1_parser_new(&p) < 0)
                return;
        http1_parser_reset(p, head);
        r = feed(p, run, data, split);
        if (r >= 0)
                r = feed(p, run, data + split, size - split);
        if (r >= 0) {
                r = http1_parser_feed_eof(p, &ev);
                if (r > 0)
                        on_event(run, &ev, data, size);
        }
        if (r < 0) {
                size_t used;

                assert(r == -EBADMSG || r == -E2BIG || r == -ENODATA);
                assert(http1_parser_get_error(p));
                assert(http1_parser_feed(p, data, size, &used, &ev) == r);
                log_append(run, http1_parser_get_error(p), strlen(http1_parser_get_error(p)));
        } else {
                uint64_t length = http1_parser_get_content_length(p);

                assert(!http1_parser_get_error(p));
                assert(run->phase == 3);
                assert(http1_parser_is_done(p));
                if (length != UINT64_MAX && !head && run->body > 0)
                        assert(run->body == length);
                if (http1_parser_is_chunked(p))
                        assert(length == UINT64_MAX);
        }
        run->result = r;
        http1_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Run whole, split, head;

        if (size == 0)
                return 0;
        run_parser(&whole, data, size, size, false);
        run_parser(&split, data, size, data[0] % size, false);
        assert(whole.result == split.result);
        assert(whole.log_size == split.log_size);
        assert(whole.log_size == 0 || memcmp(whole.log, split.log, whole.log_size) == 0);
        run_parser(&head, data, size, data[0] % size, true);
        free(whole.log);
        free(split.log);
        free(head.log);
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 response parser of the h1 client: a state machine over lines
 * (status, fields, chunk sizes, trailers), which are gathered in a bounded
 * buffer, and body bytes, which are handed out in place. See http1-parser.h
 * for the rules it enforces and why.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1-parser.h"
#include "util.h"

typedef enum ParserState {
        STATE_STATUS_LINE,
        STATE_HEADER_LINE,
        STATE_BODY_LENGTH,
        STATE_BODY_CLOSE,
        STATE_CHUNK_SIZE,
        STATE_CHUNK_DATA,
        STATE_CHUNK_DATA_END,
        STATE_TRAILER_LINE,
        STATE_COMPLETE, /* MESSAGE_COMPLETE not yet reported */
        STATE_DONE,
        STATE_FAILED,
} ParserState;

struct Http1Parser {
        ParserState state;
        bool head_request;
        bool seen_bytes;

        /* The response being parsed (an interim one is forgotten at its end). */
        unsigned status;
        unsigned version_minor;
        bool interim;
        unsigned interim_count;
        unsigned field_count;
        size_t section_bytes;
        uint64_t content_length;
        bool transfer_encoding;
        bool chunked;
        bool connection_close;
        bool connection_keep_alive;

        uint64_t remaining; /* of the body or the current chunk */
        bool chunk_cr;

        int error;
        const char *error_text;

        size_t line_len;
        char line[HTTP1_MAX_LINE + 2]; /* the line, its CR until stripped, a NUL */
};

static int parser_fail(Http1Parser *p, int error, const char *text)
{
        p->state = STATE_FAILED;
        p->error = error;
        p->error_text = text;
        return error;
}

static void response_reset(Http1Parser *p)
{
        p->status = 0;
        p->version_minor = 0;
        p->interim = false;
        p->field_count = 0;
        p->content_length = UINT64_MAX;
        p->transfer_encoding = false;
        p->chunked = false;
        p->connection_close = false;
        p->connection_keep_alive = false;
        p->remaining = 0;
        p->chunk_cr = false;
}

void http1_parser_reset(Http1Parser *p, bool head_request)
{
        assert(p);
        response_reset(p);
        p->state = STATE_STATUS_LINE;
        p->head_request = head_request;
        p->seen_bytes = false;
        p->interim_count = 0;
        p->error = 0;
        p->error_text = NULL;
        p->line_len = 0;
}

int http1_parser_new(Http1Parser **ret)
{
        Http1Parser *p;

        assert(ret);
        p = malloc(sizeof(*p));
        if (!p)
                return -ENOMEM;
        http1_parser_reset(p, false);
        *ret = p;
        return 0;
}

Http1Parser *http1_parser_free(Http1Parser *p)
{
        return mfree(p);
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                return true;
        return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_ows(unsigned char c)
{
        return c == ' ' || c == '\t';
}

/* VCHAR, obs-text, SP and HTAB: what a field value or reason phrase may hold. */
static bool is_text(unsigned char c)
{
        return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static const char *line_too_long_text(ParserState state)
{
        switch (state) {
        case STATE_STATUS_LINE:
                return "status line too long";
        case STATE_CHUNK_SIZE:
                return "chunk size line too long";
        case STATE_TRAILER_LINE:
                return "trailer line too long";
        case STATE_HEADER_LINE:
        case STATE_BODY_LENGTH:
        case STATE_BODY_CLOSE:
        case STATE_CHUNK_DATA:
        case STATE_CHUNK_DATA_END:
        case STATE_COMPLETE:
        case STATE_DONE:
        case STATE_FAILED:
                break;
        }
        return "header line too long";
}

/*
 * Gathers input up to and including LF. Returns 1 with the line (no CR, LF,
 * NUL-terminated) in p->line and its length in *ret_len, 0 when all input was
 * taken and the line goes on. The outcome does not depend on how input is split.
 */
static int line_collect(Http1Parser *p, const uint8_t *in, size_t size, size_t *ret_used,
                        size_t *ret_len)
{
        const uint8_t *lf = memchr(in, '\n', size);
        size_t span = lf ? (size_t) (lf - in) : size;
        size_t len;

        if (span > HTTP1_MAX_LINE + 1 - p->line_len)
                return parser_fail(p, -E2BIG, line_too_long_text(p->state));
        memcpy(p->line + p->line_len, in, span);
        p->line_len += span;
        *ret_used = lf ? span + 1 : span;
        if (!lf)
                return 0;

        len = p->line_len;
        p->line_len = 0;
        if (p->state == STATE_STATUS_LINE)
                p->section_bytes = 0;
        if (p->state != STATE_CHUNK_SIZE) {
                p->section_bytes += len + 1;
                /* Checked per line: a line is bounded, so is what we hold meanwhile. */
                if (p->section_bytes > HTTP1_MAX_HEADER_BYTES)
                        return parser_fail(p, -E2BIG,
                                           p->state == STATE_TRAILER_LINE
                                               ? "trailer section too large"
                                               : "header section too large");
        }
        if (len > 0 && p->line[len - 1] == '\r')
                len--;
        if (len > HTTP1_MAX_LINE)
                return parser_fail(p, -E2BIG, line_too_long_text(p->state));
        if (memchr(p->line, '\r', len))
                return parser_fail(p, -EBADMSG, "bare CR in a line");
        p->line[len] = '\0';
        *ret_len = len;
        return 1;
}

static int status_line_parse(Http1Parser *p, size_t len, Http1Event *ev)
{
        const char *l = p->line;
        unsigned status;

        if (len == 0)
                return parser_fail(p, -EBADMSG, "empty line instead of a status line");
        if (len < 9 || memcmp(l, "HTTP/", 5) != 0)
                return parser_fail(p, -EBADMSG, "not an HTTP status line");
        if (!is_digit(l[5]) || l[6] != '.' || !is_digit(l[7]) || l[8] != ' ')
                return parser_fail(p, -EBADMSG, "malformed HTTP version");
        if (l[5] != '1' || (l[7] != '0' && l[7] != '1'))
                return parser_fail(p, -EBADMSG, "unsupported HTTP version");
        /* The SP before an empty reason phrase is often left out; we accept that. */
        if (len < 12 || !is_digit(l[9]) || !is_digit(l[10]) || !is_digit(l[11]) ||
            (len > 12 && l[12] != ' '))
                return parser_fail(p, -EBADMSG, "malformed status code");
        status = (unsigned) (l[9] - '0') * 100 + (unsigned) (l[10] - '0') * 10 +
                 (unsigned) (l[11] - '0');
        if (status < 100 || status > 599)
                return parser_fail(p, -EBADMSG, "status code out of range");
        for (size_t i = 13; i < len; i++)
                if (!is_text((unsigned char) l[i]))
                        return parser_fail(p, -EBADMSG, "invalid character in reason phrase");

        response_reset(p);
        p->status = status;
        p->version_minor = (unsigned) (l[7] - '0');
        p->interim = status < 200 && status != 101;
        p->state = STATE_HEADER_LINE;
        if (p->interim) {
                if (++p->interim_count > HTTP1_MAX_INTERIM)
                        return parser_fail(p, -E2BIG, "too many interim responses");
                return 0;
        }
        ev->type = HTTP1_EVENT_STATUS;
        ev->status = status;
        ev->version_minor = p->version_minor;
        ev->reason = len > 13 ? l + 13 : "";
        return 1;
}

/* Splits "name: value" in place; returns 0, or fails the parser. */
static int field_line_parse(Http1Parser *p, size_t len, Http1Event *ev)
{
        char *l = p->line;
        size_t i = 0, start, end;

        if (is_ows((unsigned char) l[0]))
                return parser_fail(p, -EBADMSG,
                                   p->field_count == 0 ? "whitespace before the first field line"
                                                       : "obsolete line folding");
        while (i < len && is_tchar((unsigned char) l[i]))
                i++;
        if (i == len)
                return parser_fail(p, -EBADMSG, "field line without a colon");
        if (l[i] != ':') {
                if (is_ows((unsigned char) l[i]))
                        return parser_fail(p, -EBADMSG, "whitespace between field name and colon");
                return parser_fail(p, -EBADMSG, "invalid character in field name");
        }
        if (i == 0)
                return parser_fail(p, -EBADMSG, "empty field name");
        l[i] = '\0';
        ev->name = l;
        ev->name_len = i;

        start = i + 1;
        end = len;
        while (start < end && is_ows((unsigned char) l[start]))
                start++;
        while (end > start && is_ows((unsigned char) l[end - 1]))
                end--;
        for (size_t j = start; j < end; j++)
                if (!is_text((unsigned char) l[j]))
                        return parser_fail(p, -EBADMSG, "invalid character in field value");
        l[end] = '\0';
        ev->value = l + start;
        ev->value_len = end - start;

        if (++p->field_count > HTTP1_MAX_HEADERS)
                return parser_fail(p, -E2BIG,
                                   p->state == STATE_TRAILER_LINE ? "too many trailer fields"
                                                                  : "too many header fields");
        return 0;
}

/* Calls f on each non-empty element of a comma-separated list, trimmed. */
static int list_foreach(Http1Parser *p, const char *v, size_t len,
                        int (*f)(Http1Parser *p, const char *item, size_t n))
{
        size_t i = 0;

        while (i <= len) {
                size_t start = i, end;
                int r;

                while (i < len && v[i] != ',')
                        i++;
                end = i;
                while (start < end && is_ows((unsigned char) v[start]))
                        start++;
                while (end > start && is_ows((unsigned char) v[end - 1]))
                        end--;
                if (end > start) {
                        r = f(p, v + start, end - start);
                        if (r < 0)
                                return r;
                }
                i++;
        }
        return 0;
}

static bool token_is(const char *item, size_t n, const char *word)
{
        return n == strlen(word) && strncasecmp(item, word, n) == 0;
}

static int on_transfer_coding(Http1Parser *p, const char *item, size_t n)
{
        if (!token_is(item, n, "chunked"))
                return parser_fail(p, -EBADMSG, "unsupported transfer coding");
        if (p->chunked)
                return parser_fail(p, -EBADMSG, "chunked applied more than once");
        p->chunked = true;
        return 0;
}

static int on_connection_option(Http1Parser *p, const char *item, size_t n)
{
        if (token_is(item, n, "close"))
                p->connection_close = true;
        else if (token_is(item, n, "keep-alive"))
                p->connection_keep_alive = true;
        return 0;
}

static int content_length_parse(Http1Parser *p, const char *v, size_t len)
{
        uint64_t n = 0;

        if (len == 0)
                return parser_fail(p, -EBADMSG, "empty Content-Length");
        for (size_t i = 0; i < len; i++)
                if (!is_digit((unsigned char) v[i]))
                        return parser_fail(p, -EBADMSG, "invalid Content-Length");
        for (size_t i = 0; i < len; i++) {
                unsigned d = (unsigned) (v[i] - '0');

                if (n > (UINT64_MAX - d) / 10)
                        return parser_fail(p, -E2BIG, "Content-Length too large");
                n = n * 10 + d;
        }
        if (p->content_length != UINT64_MAX && p->content_length != n)
                return parser_fail(p, -EBADMSG, "conflicting Content-Length values");
        if (n == UINT64_MAX)
                return parser_fail(p, -E2BIG, "Content-Length too large");
        p->content_length = n;
        return 0;
}

/* The header fields that decide framing and the connection's fate. */
static int header_interpret(Http1Parser *p, const Http1Event *ev)
{
        int r = 0;

        if (strcasecmp(ev->name, "Content-Length") == 0)
                r = content_length_parse(p, ev->value, ev->value_len);
        else if (strcasecmp(ev->name, "Transfer-Encoding") == 0) {
                if (ev->value_len == 0)
                        return parser_fail(p, -EBADMSG, "empty Transfer-Encoding");
                p->transfer_encoding = true;
                r = list_foreach(p, ev->value, ev->value_len, on_transfer_coding);
                if (r >= 0 && !p->chunked)
                        return parser_fail(p, -EBADMSG, "empty Transfer-Encoding");
        } else if (strcasecmp(ev->name, "Connection") == 0)
                r = list_foreach(p, ev->value, ev->value_len, on_connection_option);
        if (r < 0)
                return r;
        if (p->transfer_encoding && p->content_length != UINT64_MAX)
                return parser_fail(p, -EBADMSG, "both Content-Length and Transfer-Encoding");
        return 0;
}

static int headers_end(Http1Parser *p, Http1Event *ev)
{
        if (p->interim) {
                /* 100 Continue, 103 Early Hints, ...: wait for the final response. */
                response_reset(p);
                p->state = STATE_STATUS_LINE;
                return 0;
        }
        if (p->transfer_encoding && p->version_minor == 0)
                return parser_fail(p, -EBADMSG, "Transfer-Encoding in an HTTP/1.0 response");

        if (p->head_request || p->status < 200 || p->status == 204 || p->status == 304)
                p->state = STATE_COMPLETE;
        else if (p->chunked)
                p->state = STATE_CHUNK_SIZE;
        else if (p->content_length != UINT64_MAX) {
                p->remaining = p->content_length;
                p->state = p->remaining > 0 ? STATE_BODY_LENGTH : STATE_COMPLETE;
        } else
                p->state = STATE_BODY_CLOSE;
        ev->type = HTTP1_EVENT_HEADERS_COMPLETE;
        ev->status = p->status;
        ev->version_minor = p->version_minor;
        return 1;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static bool chunk_ext_is_valid(const char *s, size_t n)
{
        size_t i = 0;

        while (i < n) {
                size_t j;

                while (i < n && is_ows((unsigned char) s[i]))
                        i++;
                if (i == n || s[i] != ';')
                        return false;
                i++;
                while (i < n && is_ows((unsigned char) s[i]))
                        i++;
                j = i;
                while (i < n && is_tchar((unsigned char) s[i]))
                        i++;
                if (i == j)
                        return false;
                j = i;
                while (i < n && is_ows((unsigned char) s[i]))
                        i++;
                if (i == n || s[i] != '=') {
                        i = j;
                        continue;
                }
                i++;
                while (i < n && is_ows((unsigned char) s[i]))
                        i++;
                if (i < n && s[i] == '"') {
                        bool closed = false;

                        for (i++; i < n && !closed; i++) {
                                unsigned char c = (unsigned char) s[i];

                                if (c == '"')
                                        closed = true;
                                else if (c == '\\') {
                                        if (i + 1 == n || !is_text((unsigned char) s[i + 1]))
                                                return false;
                                        i++;
                                } else if (!is_text(c))
                                        return false;
                        }
                        if (!closed)
                                return false;
                } else {
                        j = i;
                        while (i < n && is_tchar((unsigned char) s[i]))
                                i++;
                        if (i == j)
                                return false;
                }
        }
        return true;
}

static int chunk_size_parse(Http1Parser *p, size_t len)
{
        uint64_t size = 0;
        size_t i = 0;
        int d;

        while (i < len && (d = hex_value((unsigned char) p->line[i])) >= 0) {
                if (size > UINT64_MAX >> 4)
                        return parser_fail(p, -E2BIG, "chunk size too large");
                size = size << 4 | (uint64_t) d;
                i++;
        }
        if (i == 0)
                return parser_fail(p, -EBADMSG, "invalid chunk size");
        if (!chunk_ext_is_valid(p->line + i, len - i))
                return parser_fail(p, -EBADMSG, "invalid chunk extension");
        if (size == 0) {
                /* The last chunk: a trailer section with limits of its own follows. */
                p->field_count = 0;
                p->section_bytes = 0;
                p->state = STATE_TRAILER_LINE;
        } else {
                p->remaining = size;
                p->state = STATE_CHUNK_DATA;
        }
        return 0;
}

/* Acts on a complete line. Returns 1 with an event, 0 without, or fails. */
static int line_process(Http1Parser *p, size_t len, Http1Event *ev)
{
        int r;

        switch (p->state) {
        case STATE_STATUS_LINE:
                return status_line_parse(p, len, ev);
        case STATE_HEADER_LINE:
                if (len == 0)
                        return headers_end(p, ev);
                r = field_line_parse(p, len, ev);
                if (r < 0)
                        return r;
                r = header_interpret(p, ev);
                if (r < 0)
                        return r;
                if (p->interim)
                        return 0;
                ev->type = HTTP1_EVENT_HEADER;
                return 1;
        case STATE_CHUNK_SIZE:
                return chunk_size_parse(p, len);
        case STATE_TRAILER_LINE:
                if (len == 0) {
                        p->state = STATE_COMPLETE;
                        return 0;
                }
                r = field_line_parse(p, len, ev);
                if (r < 0)
                        return r;
                ev->type = HTTP1_EVENT_TRAILER;
                return 1;
        case STATE_BODY_LENGTH:
        case STATE_BODY_CLOSE:
        case STATE_CHUNK_DATA:
        case STATE_CHUNK_DATA_END:
        case STATE_COMPLETE:
        case STATE_DONE:
        case STATE_FAILED:
                break;
        }
        assert(false);
        return -EINVAL;
}

int http1_parser_feed(Http1Parser *p, const void *data, size_t size, size_t *ret_consumed,
                      Http1Event *ret_event)
{
        const uint8_t *in = data;
        size_t used = 0;

        assert(p);
        assert(data || size == 0);
        assert(ret_consumed);
        assert(ret_event);

        if (p->state == STATE_FAILED)
                return p->error;
        if (size > 0 && p->state != STATE_DONE)
                p->seen_bytes = true;

        for (;;) {
                Http1Event ev = {0};
                size_t n = 0, len = 0;
                int r;

                switch (p->state) {
                case STATE_STATUS_LINE:
                case STATE_HEADER_LINE:
                case STATE_CHUNK_SIZE:
                case STATE_TRAILER_LINE:
                        r = line_collect(p, in + used, size - used, &n, &len);
                        used += n;
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                        r = line_process(p, len, &ev);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                goto event;
                        continue;

                case STATE_BODY_LENGTH:
                case STATE_CHUNK_DATA:
                        if (used == size)
                                break;
                        n = (size_t) MIN(p->remaining, (uint64_t) (size - used));
                        ev.type = HTTP1_EVENT_BODY;
                        ev.data = in + used;
                        ev.size = n;
                        used += n;
                        p->remaining -= n;
                        if (p->remaining == 0)
                                p->state = p->state == STATE_BODY_LENGTH ? STATE_COMPLETE
                                                                         : STATE_CHUNK_DATA_END;
                        goto event;

                case STATE_BODY_CLOSE:
                        if (used == size)
                                break;
                        ev.type = HTTP1_EVENT_BODY;
                        ev.data = in + used;
                        ev.size = size - used;
                        used = size;
                        goto event;

                case STATE_CHUNK_DATA_END:
                        if (used == size)
                                break;
                        if (in[used] == '\r' && !p->chunk_cr) {
                                p->chunk_cr = true;
                                used++;
                                continue;
                        }
                        if (in[used] != '\n')
                                return parser_fail(p, -EBADMSG, "chunk data not followed by CRLF");
                        p->chunk_cr = false;
                        used++;
                        p->state = STATE_CHUNK_SIZE;
                        continue;

                case STATE_COMPLETE:
                        ev.type = HTTP1_EVENT_MESSAGE_COMPLETE;
                        ev.status = p->status;
                        p->state = STATE_DONE;
                        goto event;

                case STATE_DONE:
                        if (used < size)
                                return parser_fail(p, -EBADMSG,
                                                   "data after the end of the response");
                        break;

                case STATE_FAILED:
                        return p->error;
                }
                /* Only reached when all of the input is used. */
                assert(used == size);
                *ret_consumed = used;
                return 0;

        event:
                *ret_consumed = used;
                *ret_event = ev;
                return 1;
        }
}

int http1_parser_feed_eof(Http1Parser *p, Http1Event *ret_event)
{
        assert(p);
        assert(ret_event);

        switch (p->state) {
        case STATE_BODY_CLOSE:
        case STATE_COMPLETE:
                *ret_event = (Http1Event){
                    .type = HTTP1_EVENT_MESSAGE_COMPLETE,
                    .status = p->status,
                };
                p->state = STATE_DONE;
                return 1;
        case STATE_DONE:
                return 0;
        case STATE_FAILED:
                return p->error;
        case STATE_STATUS_LINE:
                if (!p->seen_bytes)
                        return parser_fail(p, -ENODATA, "connection closed before the response");
                return parser_fail(p, -EBADMSG, "connection closed inside the header section");
        case STATE_HEADER_LINE:
                return parser_fail(p, -EBADMSG, "connection closed inside the header section");
        case STATE_BODY_LENGTH:
                return parser_fail(p, -EBADMSG, "connection closed inside the body");
        case STATE_CHUNK_SIZE:
        case STATE_CHUNK_DATA:
        case STATE_CHUNK_DATA_END:
        case STATE_TRAILER_LINE:
                return parser_fail(p, -EBADMSG, "connection closed inside the chunked body");
        }
        return -EINVAL;
}

const char *http1_parser_get_error(const Http1Parser *p)
{
        assert(p);
        return p->error_text;
}

bool http1_parser_is_done(const Http1Parser *p)
{
        assert(p);
        return p->state == STATE_DONE;
}

unsigned http1_parser_get_status(const Http1Parser *p)
{
        assert(p);
        return p->interim ? 0 : p->status;
}

uint64_t http1_parser_get_content_length(const Http1Parser *p)
{
        assert(p);
        return p->interim ? UINT64_MAX : p->content_length;
}

bool http1_parser_is_chunked(const Http1Parser *p)
{
        assert(p);
        return !p->interim && p->chunked;
}

bool http1_parser_is_keep_alive(const Http1Parser *p)
{
        assert(p);
        if (p->interim || p->status == 0 || p->status == 101 || p->connection_close)
                return false;
        if (p->version_minor == 0 && !p->connection_keep_alive)
                return false;
        /* A body that ends with the connection leaves nothing to keep. */
        if (p->state == STATE_BODY_CLOSE)
                return false;
        if (p->state == STATE_DONE && !p->head_request && p->status >= 200 && p->status != 204 &&
            p->status != 304 && !p->chunked && p->content_length == UINT64_MAX)
                return false;
        return true;
}

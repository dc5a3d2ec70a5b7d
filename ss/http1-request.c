/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 request parser of the server streamtypes: lines (request line,
 * fields, chunk sizes, trailers) are gathered in a bounded buffer and checked
 * whole; body bytes are handed out in place. http1-request.h has the rules.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1-request.h"

typedef enum RequestState {
        STATE_REQUEST_LINE,
        STATE_HEADER_LINE,
        STATE_BODY_LENGTH,
        STATE_CHUNK_SIZE,
        STATE_CHUNK_DATA,
        STATE_CHUNK_DATA_END,
        STATE_TRAILER_LINE,
        STATE_COMPLETE, /* MESSAGE_COMPLETE not yet reported */
        STATE_DONE,
        STATE_FAILED,
} RequestState;

struct Http1Request {
        RequestState state;
        size_t max_header_bytes;
        uint64_t max_body;

        bool seen_bytes;
        unsigned empty_lines;
        unsigned version_minor;
        bool head;
        unsigned field_count;
        size_t section_bytes;
        unsigned host_count;
        uint64_t content_length; /* UINT64_MAX: none */
        bool transfer_encoding;
        bool chunked;
        bool connection_close;
        bool connection_keep_alive;
        bool expect_continue;
        uint64_t body_bytes;
        uint64_t remaining; /* of the body or the current chunk */

        int error;
        const char *error_text;

        bool line_cr; /* the last byte gathered was a CR */
        size_t line_len;
        char line[HTTP1_REQUEST_MAX_LINE + 1];
};

static int request_fail(Http1Request *p, int error, const char *text)
{
        p->state = STATE_FAILED;
        p->error = error;
        p->error_text = text;
        return error;
}

int http1_request_new(Http1Request **ret)
{
        Http1Request *p;

        assert(ret);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->max_header_bytes = HTTP1_REQUEST_MAX_HEADER_BYTES;
        p->max_body = HTTP1_REQUEST_MAX_BODY;
        http1_request_reset(p);
        *ret = p;
        return 0;
}

Http1Request *http1_request_free(Http1Request *p)
{
        free(p);
        return NULL;
}

void http1_request_set_limits(Http1Request *p, size_t max_header_bytes, uint64_t max_body)
{
        assert(p);
        p->max_header_bytes = max_header_bytes ? max_header_bytes : HTTP1_REQUEST_MAX_HEADER_BYTES;
        p->max_body = max_body ? max_body : HTTP1_REQUEST_MAX_BODY;
}

void http1_request_reset(Http1Request *p)
{
        assert(p);
        p->state = STATE_REQUEST_LINE;
        p->seen_bytes = false;
        p->empty_lines = 0;
        p->version_minor = 0;
        p->head = false;
        p->field_count = 0;
        p->section_bytes = 0;
        p->host_count = 0;
        p->content_length = UINT64_MAX;
        p->transfer_encoding = false;
        p->chunked = false;
        p->connection_close = false;
        p->connection_keep_alive = false;
        p->expect_continue = false;
        p->body_bytes = 0;
        p->remaining = 0;
        p->error = 0;
        p->error_text = NULL;
        p->line_cr = false;
        p->line_len = 0;
}

static bool is_tchar(unsigned char c)
{
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                return true;
        return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_token(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_tchar((unsigned char) s[i]))
                        return false;
        return true;
}

static bool is_ows(char c)
{
        return c == ' ' || c == '\t';
}

/*
 * Gathers bytes of a line into p->line. Returns 1 when the line is complete
 * (NUL-terminated, without CRLF), 0 when more input is needed, or an error.
 * Every byte counts towards the section limit.
 */
static int take_line(Http1Request *p, const uint8_t *data, size_t size, size_t *used, int too_long)
{
        size_t i;

        for (i = 0; i < size; i++) {
                uint8_t b;

                if (!p->line_cr) {
                        /*
                         * The plain bytes before a CR or LF at once, as many as the
                         * loop below would take one by one without an error (the byte
                         * that stops the run is left to it).
                         */
                        size_t n = size - i, cut;
                        const uint8_t *cr, *lf;

                        if (p->state != STATE_CHUNK_SIZE && p->state != STATE_CHUNK_DATA_END) {
                                cut = p->section_bytes < p->max_header_bytes
                                          ? p->max_header_bytes - p->section_bytes
                                          : 0;
                                if (n > cut)
                                        n = cut;
                        }
                        cut = HTTP1_REQUEST_MAX_LINE - p->line_len;
                        if (n > cut)
                                n = cut;
                        cr = memchr(data + i, '\r', n);
                        if (cr)
                                n = (size_t) (cr - (data + i));
                        lf = memchr(data + i, '\n', n);
                        if (lf)
                                n = (size_t) (lf - (data + i));
                        if (n > 0) {
                                p->seen_bytes = true;
                                p->section_bytes += n;
                                memcpy(p->line + p->line_len, data + i, n);
                                p->line_len += n;
                                i += n;
                                if (i == size)
                                        break;
                        }
                }
                b = data[i];
                p->seen_bytes = true;
                if (++p->section_bytes > p->max_header_bytes && p->state != STATE_CHUNK_SIZE &&
                    p->state != STATE_CHUNK_DATA_END) {
                        *used = i + 1;
                        return request_fail(p, -E2BIG, "header section too large");
                }
                if (p->line_cr) {
                        *used = i + 1;
                        if (b != '\n')
                                return request_fail(p, -EBADMSG, "CR without LF");
                        p->line_cr = false;
                        p->line[p->line_len] = '\0';
                        return 1;
                }
                if (b == '\r') {
                        p->line_cr = true;
                        continue;
                }
                if (b == '\n') {
                        *used = i + 1;
                        return request_fail(p, -EBADMSG, "LF without CR");
                }
                if (p->line_len >= HTTP1_REQUEST_MAX_LINE) {
                        *used = i + 1;
                        return request_fail(p, too_long, "line too long");
                }
                p->line[p->line_len++] = (char) b;
        }
        *used = size;
        return 0;
}

static int parse_request_line(Http1Request *p, Http1RequestEvent *ev)
{
        char *line = p->line, *sp1, *sp2, *version;
        size_t method_len, target_len;

        sp1 = memchr(line, ' ', p->line_len);
        if (!sp1)
                return request_fail(p, -EBADMSG, "request line without target");
        method_len = (size_t) (sp1 - line);
        if (!is_token(line, method_len))
                return request_fail(p, -EBADMSG, "bad method");
        sp2 = memchr(sp1 + 1, ' ', p->line_len - method_len - 1);
        if (!sp2)
                return request_fail(p, -EBADMSG, "request line without version");
        target_len = (size_t) (sp2 - sp1 - 1);
        if (target_len == 0)
                return request_fail(p, -EBADMSG, "empty request target");
        for (size_t i = 0; i < target_len; i++) {
                unsigned char c = (unsigned char) sp1[1 + i];

                if (c <= 0x20 || c >= 0x7f)
                        return request_fail(p, -EBADMSG, "bad byte in request target");
        }
        version = sp2 + 1;
        if (strlen(version) != 8 || strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
            version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9')
                return request_fail(p, -EBADMSG, "bad HTTP version");
        if (version[5] != '1')
                return request_fail(p, -EPROTONOSUPPORT, "HTTP major version not 1");
        p->version_minor = version[7] == '0' ? 0 : 1;

        *sp1 = '\0';
        *sp2 = '\0';
        if (strcmp(line, "CONNECT") == 0)
                return request_fail(p, -EOPNOTSUPP, "CONNECT not implemented");
        if (sp1[1] == '*') {
                if (target_len != 1 || strcmp(line, "OPTIONS") != 0)
                        return request_fail(p, -EBADMSG, "asterisk-form outside OPTIONS");
        } else if (sp1[1] != '/' && strncasecmp(sp1 + 1, "http://", 7) != 0 &&
                   strncasecmp(sp1 + 1, "https://", 8) != 0)
                return request_fail(p, -EBADMSG, "bad request target form");
        p->head = strcmp(line, "HEAD") == 0;

        *ev = (Http1RequestEvent){
            .type = HTTP1_REQUEST_EVENT_REQUEST,
            .method = line,
            .target = sp1 + 1,
            .version_minor = p->version_minor,
        };
        p->state = STATE_HEADER_LINE;
        return 1;
}

/* Splits a field line in place into name and value (OWS stripped). */
static int split_field(Http1Request *p, Http1RequestEvent *ev)
{
        char *line = p->line, *colon, *value, *end;
        size_t name_len;

        if (is_ows(line[0]))
                return request_fail(p, -EBADMSG, "obs-fold or whitespace before field name");
        colon = memchr(line, ':', p->line_len);
        if (!colon)
                return request_fail(p, -EBADMSG, "field line without colon");
        name_len = (size_t) (colon - line);
        if (!is_token(line, name_len))
                return request_fail(p, -EBADMSG, "bad field name");
        end = line + p->line_len;
        for (char *c = colon + 1; c < end; c++) {
                unsigned char b = (unsigned char) *c;

                if (b != '\t' && (b < 0x20 || b == 0x7f))
                        return request_fail(p, -EBADMSG, "bad byte in field value");
        }
        value = colon + 1;
        while (value < end && is_ows(*value))
                value++;
        while (end > value && is_ows(end[-1]))
                end--;
        *end = '\0';
        *colon = '\0';
        if (++p->field_count > HTTP1_REQUEST_MAX_FIELDS)
                return request_fail(p, -E2BIG, "too many fields");
        *ev = (Http1RequestEvent){
            .name = line,
            .name_len = name_len,
            .value = value,
            .value_len = (size_t) (end - value),
        };
        return 0;
}

static bool list_has(const char *value, const char *member)
{
        size_t n = strlen(member);

        for (const char *c = value; *c;) {
                const char *e, *t;

                while (*c == ',' || is_ows(*c))
                        c++;
                e = c;
                while (*e && *e != ',')
                        e++;
                t = e;
                while (t > c && is_ows(t[-1]))
                        t--;
                if ((size_t) (t - c) == n && strncasecmp(c, member, n) == 0)
                        return true;
                c = e;
        }
        return false;
}

static int parse_content_length(const char *value, uint64_t *ret)
{
        uint64_t v = 0;

        if (!*value)
                return -EBADMSG;
        for (const char *c = value; *c; c++) {
                if (*c < '0' || *c > '9')
                        return -EBADMSG;
                if (v > (UINT64_MAX - 9) / 10)
                        return -EFBIG;
                v = v * 10 + (uint64_t) (*c - '0');
        }
        *ret = v;
        return 0;
}

static int interpret_field(Http1Request *p, const Http1RequestEvent *ev)
{
        if (strcasecmp(ev->name, "Host") == 0)
                p->host_count++;
        else if (strcasecmp(ev->name, "Content-Length") == 0) {
                uint64_t v;
                int r = parse_content_length(ev->value, &v);

                if (r == -EFBIG)
                        return request_fail(p, -EFBIG, "Content-Length too large");
                if (r < 0)
                        return request_fail(p, -EBADMSG, "bad Content-Length");
                if (p->content_length != UINT64_MAX && p->content_length != v)
                        return request_fail(p, -EBADMSG, "conflicting Content-Length");
                p->content_length = v;
        } else if (strcasecmp(ev->name, "Transfer-Encoding") == 0) {
                if (p->transfer_encoding)
                        return request_fail(p, -EBADMSG, "repeated Transfer-Encoding");
                p->transfer_encoding = true;
                if (strcasecmp(ev->value, "chunked") != 0)
                        return request_fail(p, -EOPNOTSUPP, "transfer coding not implemented");
                p->chunked = true;
        } else if (strcasecmp(ev->name, "Connection") == 0) {
                if (list_has(ev->value, "close"))
                        p->connection_close = true;
                if (list_has(ev->value, "keep-alive"))
                        p->connection_keep_alive = true;
        } else if (strcasecmp(ev->name, "Expect") == 0) {
                if (strcasecmp(ev->value, "100-continue") == 0)
                        p->expect_continue = true;
        }
        return 0;
}

static int headers_complete(Http1Request *p, Http1RequestEvent *ev)
{
        if (p->version_minor == 1 && p->host_count != 1)
                return request_fail(p, -EBADMSG, "not exactly one Host field");
        if (p->transfer_encoding && p->content_length != UINT64_MAX)
                return request_fail(p, -EBADMSG, "Transfer-Encoding with Content-Length");
        if (p->transfer_encoding && p->version_minor == 0)
                return request_fail(p, -EBADMSG, "Transfer-Encoding in HTTP/1.0");
        if (p->content_length != UINT64_MAX && p->content_length > p->max_body)
                return request_fail(p, -EFBIG, "body too large");

        *ev = (Http1RequestEvent){.type = HTTP1_REQUEST_EVENT_HEADERS_COMPLETE};
        if (p->chunked)
                p->state = STATE_CHUNK_SIZE;
        else if (p->content_length != UINT64_MAX && p->content_length > 0) {
                p->remaining = p->content_length;
                p->state = STATE_BODY_LENGTH;
        } else
                p->state = STATE_COMPLETE;
        if (p->state == STATE_COMPLETE)
                p->expect_continue = false;
        return 1;
}

static int parse_chunk_size(Http1Request *p)
{
        uint64_t v = 0;
        size_t i = 0;

        for (; i < p->line_len; i++) {
                char c = p->line[i];
                unsigned d;

                if (c >= '0' && c <= '9')
                        d = (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        d = (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        d = (unsigned) (c - 'A' + 10);
                else
                        break;
                if (v >> 60)
                        return request_fail(p, -EFBIG, "chunk size overflow");
                v = v << 4 | d;
        }
        if (i == 0)
                return request_fail(p, -EBADMSG, "bad chunk size");
        if (i < p->line_len) {
                /* chunk-ext = *( BWS ";" ... ): skipped, but only visible bytes */
                size_t j = i;

                while (j < p->line_len && is_ows(p->line[j]))
                        j++;
                if (j == p->line_len || p->line[j] != ';')
                        return request_fail(p, -EBADMSG, "bad chunk size");
                for (; j < p->line_len; j++) {
                        unsigned char b = (unsigned char) p->line[j];

                        if (b != '\t' && (b < 0x20 || b == 0x7f))
                                return request_fail(p, -EBADMSG, "bad byte in chunk extension");
                }
        }
        if (v > p->max_body - p->body_bytes)
                return request_fail(p, -EFBIG, "body too large");
        p->body_bytes += v;
        p->section_bytes = 0;
        if (v == 0) {
                p->field_count = 0;
                p->state = STATE_TRAILER_LINE;
        } else {
                p->remaining = v;
                p->state = STATE_CHUNK_DATA;
        }
        return 0;
}

int http1_request_feed(Http1Request *p, const void *data, size_t size, size_t *ret_consumed,
                       Http1RequestEvent *ret_event)
{
        const uint8_t *in = data;
        size_t pos = 0;
        int r;

        assert(p);
        assert(data || size == 0);
        assert(ret_consumed);
        assert(ret_event);

        for (;;) {
                size_t used = 0;

                switch (p->state) {
                case STATE_FAILED:
                        *ret_consumed = 0;
                        return p->error;
                case STATE_DONE:
                        *ret_consumed = pos;
                        return 0;
                case STATE_COMPLETE:
                        *ret_event =
                            (Http1RequestEvent){.type = HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE};
                        p->state = STATE_DONE;
                        *ret_consumed = pos;
                        return 1;
                case STATE_BODY_LENGTH:
                case STATE_CHUNK_DATA: {
                        size_t n;

                        if (pos == size) {
                                *ret_consumed = pos;
                                return 0;
                        }
                        n = p->remaining < size - pos ? (size_t) p->remaining : size - pos;
                        *ret_event = (Http1RequestEvent){
                            .type = HTTP1_REQUEST_EVENT_BODY,
                            .data = in + pos,
                            .size = n,
                        };
                        p->remaining -= n;
                        if (p->remaining == 0)
                                p->state = p->state == STATE_BODY_LENGTH ? STATE_COMPLETE
                                                                         : STATE_CHUNK_DATA_END;
                        *ret_consumed = pos + n;
                        return 1;
                }
                case STATE_REQUEST_LINE:
                case STATE_HEADER_LINE:
                case STATE_CHUNK_SIZE:
                case STATE_CHUNK_DATA_END:
                case STATE_TRAILER_LINE:
                        break;
                }

                r = take_line(p, in + pos, size - pos, &used,
                              p->state == STATE_REQUEST_LINE ? -ENAMETOOLONG : -E2BIG);
                pos += used;
                if (r < 0) {
                        *ret_consumed = pos;
                        return r;
                }
                if (r == 0) {
                        *ret_consumed = pos;
                        return 0;
                }
                /* A whole line. */
                switch (p->state) {
                case STATE_REQUEST_LINE:
                        if (p->line_len == 0) {
                                if (++p->empty_lines > HTTP1_REQUEST_MAX_EMPTY_LINES) {
                                        *ret_consumed = pos;
                                        return request_fail(p, -EBADMSG, "too many empty lines");
                                }
                                break;
                        }
                        r = parse_request_line(p, ret_event);
                        p->line_len = 0;
                        *ret_consumed = pos;
                        return r;
                case STATE_HEADER_LINE:
                        if (p->line_len == 0) {
                                r = headers_complete(p, ret_event);
                                *ret_consumed = pos;
                                return r;
                        }
                        r = split_field(p, ret_event);
                        if (r >= 0)
                                r = interpret_field(p, ret_event);
                        p->line_len = 0;
                        *ret_consumed = pos;
                        if (r < 0)
                                return r;
                        ret_event->type = HTTP1_REQUEST_EVENT_HEADER;
                        return 1;
                case STATE_CHUNK_SIZE:
                        r = parse_chunk_size(p);
                        p->line_len = 0;
                        if (r < 0) {
                                *ret_consumed = pos;
                                return r;
                        }
                        break;
                case STATE_CHUNK_DATA_END:
                        if (p->line_len != 0) {
                                *ret_consumed = pos;
                                return request_fail(p, -EBADMSG, "chunk data too long");
                        }
                        p->section_bytes = 0;
                        p->state = STATE_CHUNK_SIZE;
                        break;
                case STATE_TRAILER_LINE: {
                        Http1RequestEvent ignored;

                        if (p->line_len == 0) {
                                p->state = STATE_COMPLETE;
                                break;
                        }
                        r = split_field(p, &ignored);
                        p->line_len = 0;
                        if (r < 0) {
                                *ret_consumed = pos;
                                return r;
                        }
                        break;
                }
                case STATE_BODY_LENGTH:
                case STATE_CHUNK_DATA:
                case STATE_COMPLETE:
                case STATE_DONE:
                case STATE_FAILED:
                        assert(false);
                        break;
                }
        }
}

unsigned http1_request_error_status(int error)
{
        switch (error) {
        case -E2BIG:
                return 431;
        case -ENAMETOOLONG:
                return 414;
        case -EFBIG:
                return 413;
        case -EOPNOTSUPP:
                return 501;
        case -EPROTONOSUPPORT:
                return 505;
        default:
                return 400;
        }
}

const char *http1_request_get_error(const Http1Request *p)
{
        assert(p);
        return p->error_text;
}

bool http1_request_is_idle(const Http1Request *p)
{
        assert(p);
        return p->state == STATE_REQUEST_LINE && !p->seen_bytes;
}

bool http1_request_is_done(const Http1Request *p)
{
        assert(p);
        return p->state == STATE_DONE;
}

uint64_t http1_request_get_content_length(const Http1Request *p)
{
        assert(p);
        return p->content_length;
}

bool http1_request_is_chunked(const Http1Request *p)
{
        assert(p);
        return p->chunked;
}

bool http1_request_is_keep_alive(const Http1Request *p)
{
        assert(p);
        if (p->connection_close)
                return false;
        return p->version_minor == 1 || p->connection_keep_alive;
}

bool http1_request_expects_continue(const Http1Request *p)
{
        assert(p);
        return p->expect_continue;
}

bool http1_request_is_head(const Http1Request *p)
{
        assert(p);
        return p->head;
}

/* SPDX-License-Identifier: MIT */
/*
 * A strict, incremental HTTP/1.1 request parser (RFC 9112) for the server
 * streamtypes, pure code: bytes in, one event out per call, no I/O. Input may
 * be split at any byte; the events are the same however it is split (body
 * data may come in differently sized pieces). The caller pulls one event at a
 * time and may stop at any event.
 *
 * Decisions:
 * - Lines end with CRLF only: a bare LF or a bare CR is rejected (we are the
 *   server; lenient parsing is how request smuggling starts). Up to
 *   HTTP1_REQUEST_MAX_EMPTY_LINES empty lines before a request line are
 *   skipped (RFC 9112 2.2).
 * - The request line is method SP request-target SP HTTP-version with single
 *   spaces; the target is origin-form, absolute-form (http/https), or "*" for
 *   OPTIONS; CONNECT is not implemented. HTTP/1.x with x > 1 is served as 1.1;
 *   another major version is refused.
 * - Field names are tokens directly followed by ":"; obs-fold is rejected;
 *   values may hold VCHAR, SP, HTAB and obs-text only.
 * - An HTTP/1.1 request has exactly one Host field.
 * - Content-Length is 1*DIGIT, repeated fields must agree, no lists.
 *   Transfer-Encoding must be exactly "chunked" once (other codings: not
 *   implemented); with Content-Length, or in HTTP/1.0, it is rejected.
 *   Without either the body is empty. Chunk extensions are skipped, trailer
 *   fields checked and dropped.
 * - Limits: line length, fields per section, header section bytes and body
 *   bytes (see http1_request_set_limits()); a body over the limit is refused
 *   as soon as its length is known.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest request line or field line, without its CRLF. */
#define HTTP1_REQUEST_MAX_LINE 8192
/* Most fields in a header (or trailer) section. */
#define HTTP1_REQUEST_MAX_FIELDS 100
/* Most bytes of a header section, request line and line ends included (default). */
#define HTTP1_REQUEST_MAX_HEADER_BYTES (32 * 1024)
/* Most body bytes of one request (default). */
#define HTTP1_REQUEST_MAX_BODY (16 * 1024 * 1024)
/* Empty lines skipped before a request line. */
#define HTTP1_REQUEST_MAX_EMPTY_LINES 4

typedef struct Http1Request Http1Request;

typedef enum Http1RequestEventType {
        HTTP1_REQUEST_EVENT_REQUEST,          /* method, target, version_minor */
        HTTP1_REQUEST_EVENT_HEADER,           /* name, value */
        HTTP1_REQUEST_EVENT_HEADERS_COMPLETE, /* framing is known from here on */
        HTTP1_REQUEST_EVENT_BODY,             /* data, size: points into the input */
        HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE,
} Http1RequestEventType;

/*
 * Strings are NUL-terminated, inside the parser, valid until the next call;
 * values without surrounding whitespace. Body data points into the input.
 */
typedef struct Http1RequestEvent {
        Http1RequestEventType type;
        const char *method;
        const char *target;
        unsigned version_minor;
        const char *name;
        size_t name_len;
        const char *value;
        size_t value_len;
        const uint8_t *data;
        size_t size;
} Http1RequestEvent;

int http1_request_new(Http1Request **ret);
Http1Request *http1_request_free(Http1Request *p);

/*
 * Limits for the following requests: header section bytes (at most
 * HTTP1_REQUEST_MAX_LINE per line still) and body bytes; 0 keeps the default.
 */
void http1_request_set_limits(Http1Request *p, size_t max_header_bytes, uint64_t max_body);

/* Prepares for the next request on the connection (keep-alive). */
void http1_request_reset(Http1Request *p);

/*
 * Parses from data and reports the next event. Returns 1 with *ret_event
 * filled in, or 0 when all the input was used and more is needed (or the
 * request is complete: then nothing is used until http1_request_reset());
 * *ret_consumed says how much was used either way. Errors (the parser stays
 * failed; http1_request_error_status() gives the answer to send):
 *   -EBADMSG          malformed request                          (400)
 *   -E2BIG            header section or a field line too large   (431)
 *   -ENAMETOOLONG     request line too long                      (414)
 *   -EFBIG            body over the limit, or a length overflow  (413)
 *   -EOPNOTSUPP       CONNECT, or a transfer coding not chunked  (501)
 *   -EPROTONOSUPPORT  HTTP major version other than 1            (505)
 */
int http1_request_feed(Http1Request *p, const void *data, size_t size, size_t *ret_consumed,
                       Http1RequestEvent *ret_event);

/* The HTTP status answering an error of http1_request_feed(). */
unsigned http1_request_error_status(int error);
/* NULL while no error; else a short description of what was wrong. */
const char *http1_request_get_error(const Http1Request *p);

/* No byte of the current request seen yet (a close here loses nothing). */
bool http1_request_is_idle(const Http1Request *p);
bool http1_request_is_done(const Http1Request *p);
/* After HEADERS_COMPLETE: */
uint64_t http1_request_get_content_length(const Http1Request *p); /* UINT64_MAX: none */
bool http1_request_is_chunked(const Http1Request *p);
/* The connection may carry another request (HTTP/1.1 without "close", 1.0 with keep-alive). */
bool http1_request_is_keep_alive(const Http1Request *p);
/* "Expect: 100-continue" with a body to come: send 100 Continue before reading it. */
bool http1_request_expects_continue(const Http1Request *p);
/* HEAD request: the response has no body. */
bool http1_request_is_head(const Http1Request *p);

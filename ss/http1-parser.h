/* SPDX-License-Identifier: MIT */
/*
 * A strict, incremental HTTP/1.1 response parser (RFC 9112), pure code: bytes
 * in, one event out per call, no I/O. Input may arrive in pieces split at any
 * byte; the events are the same however it is split (body data may come in
 * differently sized pieces). The caller pulls one event at a time, so it can
 * stop at any event (to apply backpressure, or after a 101 upgrade) and resume
 * with the unconsumed input later.
 *
 * Decisions (also in the report to the issue):
 * - A bare LF ends a line like CRLF (RFC 9112 2.2 allows it; we are a client
 *   that never forwards, and captive portals send odd responses we must still
 *   classify). A CR anywhere else is rejected.
 * - obs-fold is rejected (RFC 9112 5.2 lets a user agent unfold it instead).
 * - 1xx responses other than 101 are interim: checked against the same rules
 *   and limits, then skipped without events. 101 is delivered as a final
 *   response without a body; the bytes after it belong to the new protocol.
 * - Content-Length must be 1*DIGIT; repeated fields must agree; a comma list
 *   is rejected. Transfer-Encoding must be exactly "chunked" (we do not decode
 *   other codings and never ask for them); with Content-Length, or in an
 *   HTTP/1.0 response, it is rejected.
 * - No body for 1xx, 204, 304 and responses to HEAD; otherwise chunked, then
 *   Content-Length, then until the connection closes (http1_parser_feed_eof()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest status, header, chunk-size or trailer line, without its CRLF. */
#define HTTP1_MAX_LINE 8192
/* Most header fields in one header section (the trailer section likewise). */
#define HTTP1_MAX_HEADERS 100
/* Most bytes in one header section, status line and line ends included. */
#define HTTP1_MAX_HEADER_BYTES (64 * 1024)
/* Most interim (1xx) responses before the final one. */
#define HTTP1_MAX_INTERIM 16

typedef struct Http1Parser Http1Parser;

typedef enum Http1EventType {
        HTTP1_EVENT_STATUS,           /* status, version_minor, reason */
        HTTP1_EVENT_HEADER,           /* name, value */
        HTTP1_EVENT_HEADERS_COMPLETE, /* framing is known from here on */
        HTTP1_EVENT_BODY,             /* data, size: points into the input */
        HTTP1_EVENT_TRAILER,          /* name, value: a field of the chunked trailer section */
        HTTP1_EVENT_MESSAGE_COMPLETE,
} Http1EventType;

/*
 * Strings are NUL-terminated copies inside the parser, without surrounding
 * whitespace; body data points into the caller's input. Both stay valid until
 * the next call on the parser (and, for data, while the input does).
 */
typedef struct Http1Event {
        Http1EventType type;
        unsigned status;
        unsigned version_minor;
        const char *reason;
        const char *name;
        size_t name_len;
        const char *value;
        size_t value_len;
        const uint8_t *data;
        size_t size;
} Http1Event;

int http1_parser_new(Http1Parser **ret);
Http1Parser *http1_parser_free(Http1Parser *p);

/* Prepares for the next response; head_request: it answers a HEAD request. */
void http1_parser_reset(Http1Parser *p, bool head_request);

/*
 * Parses from data and reports the next event.
 * Returns 1 with *ret_event filled in, or 0 when all the input was used and
 * more is needed; *ret_consumed says how much of data was used either way
 * (an event may use none, and a call with size 0 may still return one).
 * Errors (the parser stays failed, http1_parser_get_error() names the fault):
 *   -EBADMSG  malformed response, or bytes after the end of the message
 *   -E2BIG    a limit above was exceeded, or a length does not fit in 64 bits
 */
int http1_parser_feed(Http1Parser *p, const void *data, size_t size, size_t *ret_consumed,
                      Http1Event *ret_event);

/*
 * The connection was closed. Returns 1 with a MESSAGE_COMPLETE event when that
 * ends a close-delimited body, 0 after a complete message; -ENODATA when no
 * byte of the response had arrived, -EBADMSG when the message was cut short.
 */
int http1_parser_feed_eof(Http1Parser *p, Http1Event *ret_event);

/* NULL while no error; else a short description of what was wrong. */
const char *http1_parser_get_error(const Http1Parser *p);

bool http1_parser_is_done(const Http1Parser *p);
/* Status code of the final response, 0 before its status line. */
unsigned http1_parser_get_status(const Http1Parser *p);
/* Content-Length of the final response, UINT64_MAX when it has none. */
uint64_t http1_parser_get_content_length(const Http1Parser *p);
bool http1_parser_is_chunked(const Http1Parser *p);
/* After HEADERS_COMPLETE: may the connection carry another request? */
bool http1_parser_is_keep_alive(const Http1Parser *p);

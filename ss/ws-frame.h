/* SPDX-License-Identifier: MIT */
/*
 * WebSocket framing (RFC 6455), pure code with no I/O: an incremental frame
 * parser (bytes in, events out), a frame writer, and the opening handshake
 * helpers (Sec-WebSocket-Key, Sec-WebSocket-Accept, the check of the server's
 * 101 response). The ws protocol of the stream layer sits on top of it.
 *
 * The parser takes input in pieces split at any byte and, for either role,
 * reports one event per call, so the caller can stop at any event (after a
 * CLOSE, or to apply backpressure) and resume with the unconsumed input:
 *
 * - DATA: a piece of a text or binary message, zero-copy. The piece points
 *   into the caller's input; a masked frame (a server receiving from a client)
 *   is unmasked in place, so the input must be writable. SOM is set on the
 *   first piece of a message and EOM on its last; pieces are never empty
 *   except for an EOM-only piece (a message that ends with an empty frame, a
 *   0-byte message), so every message gives at least one event. Text messages
 *   are checked to be UTF-8 across pieces and fragments before each piece is
 *   delivered.
 * - PING, PONG, CLOSE: control frames are gathered whole (at most 125 bytes)
 *   in the parser, and may come between the fragments of a message.
 *
 * Decisions (also in the report to the issue):
 * - Lengths must use the minimal encoding (RFC 6455 5.2 "MUST"): a 16-bit
 *   length below 126 or a 64-bit length below 65536 is a protocol error, as
 *   is a 64-bit length with its most significant bit set.
 * - No extension is ever negotiated, so RSV bits are an error unless the
 *   options allow them (then the first frame's bits are reported on DATA).
 * - Close codes accepted from the peer: 1000-1003, 1007-1011, the IANA
 *   registered 1012-1014 (service restart, try again later, bad gateway:
 *   servers do send them), 3000-4999. 1004-1006, 1015, 1016-2999 and below
 *   1000 are protocol errors. The writer sends only the same set.
 * - Bytes after a CLOSE frame are a protocol error: the peer must send nothing
 *   more (RFC 6455 5.5.1).
 * - The message size limit covers the payload of a whole message across its
 *   fragments; a frame header announcing more than is left is refused at once
 *   (before any of its payload arrives).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest frame header: 2 bytes, a 64-bit length, a masking key. */
#define WS_HEADER_MAX 14
/* Largest control frame payload (RFC 6455 5.5). */
#define WS_CONTROL_MAX 125
/* Longest close reason: the control payload less the 2-byte code. */
#define WS_CLOSE_REASON_MAX (WS_CONTROL_MAX - 2)
/* Default message size limit of the parser (payload bytes of one message). */
#define WS_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

/* The Sec-WebSocket-Key: base64 of 16 random bytes. */
#define WS_KEY_LENGTH 24
/* The Sec-WebSocket-Accept: base64 of a SHA-1 digest. */
#define WS_ACCEPT_LENGTH 28
/* Most subprotocols a handshake may offer. */
#define WS_PROTOCOLS_MAX 16

typedef enum WsRole {
        WS_ROLE_CLIENT, /* receives unmasked frames, sends masked ones */
        WS_ROLE_SERVER, /* receives masked frames, sends unmasked ones */
} WsRole;

typedef enum WsOpcode {
        WS_OPCODE_CONTINUATION = 0x0,
        WS_OPCODE_TEXT = 0x1,
        WS_OPCODE_BINARY = 0x2,
        WS_OPCODE_CLOSE = 0x8,
        WS_OPCODE_PING = 0x9,
        WS_OPCODE_PONG = 0xa,
} WsOpcode;

/* Close codes (RFC 6455 7.4.1) we send or report. */
#define WS_CLOSE_NORMAL          1000
#define WS_CLOSE_GOING_AWAY      1001
#define WS_CLOSE_PROTOCOL_ERROR  1002
#define WS_CLOSE_UNSUPPORTED     1003
#define WS_CLOSE_NO_STATUS       1005 /* reported for a CLOSE without a code; never sent */
#define WS_CLOSE_ABNORMAL        1006 /* the connection dropped without a CLOSE; never sent */
#define WS_CLOSE_INVALID_PAYLOAD 1007
#define WS_CLOSE_POLICY          1008
#define WS_CLOSE_TOO_BIG         1009
#define WS_CLOSE_EXTENSION       1010
#define WS_CLOSE_INTERNAL_ERROR  1011

/* Fills buf with size random bytes; 0 or -errno. */
typedef int (*WsRandomFunc)(void *buf, size_t size, void *userdata);

/* The default WsRandomFunc: getrandom(2). */
int ws_random_getrandom(void *buf, size_t size, void *userdata);

/* A close code that may travel in a CLOSE frame (see the decisions above). */
bool ws_close_code_is_valid(unsigned code);

/* ---- Parser ---- */

typedef struct WsParser WsParser;

typedef struct WsParserOptions {
        WsRole role;
        /* Largest message payload; 0: WS_DEFAULT_MAX_MESSAGE. Above it: -EMSGSIZE. */
        uint64_t max_message_size;
        /* RSV bits (0x4 RSV1, 0x2 RSV2, 0x1 RSV3) a negotiated extension allows. */
        uint8_t allowed_rsv;
} WsParserOptions;

typedef enum WsEventType {
        WS_EVENT_DATA,
        WS_EVENT_PING,
        WS_EVENT_PONG,
        WS_EVENT_CLOSE,
} WsEventType;

/*
 * DATA: opcode is TEXT or BINARY (that of the message), som/eom mark its
 * first and last piece, data/size is the piece inside the caller's input, rsv
 * the RSV bits of the message's first frame.
 * PING, PONG: data/size is the payload, inside the parser.
 * CLOSE: data/size is the whole payload; code is WS_CLOSE_NO_STATUS when the
 * frame had none; reason/reason_len the UTF-8 reason inside the parser,
 * NUL-terminated for convenience (it may itself hold U+0000: use reason_len).
 * Pointers into the parser stay valid until the next call on it.
 */
typedef struct WsEvent {
        WsEventType type;
        WsOpcode opcode;
        bool som;
        bool eom;
        uint8_t rsv;
        const uint8_t *data;
        size_t size;
        unsigned code;
        const char *reason;
        size_t reason_len;
} WsEvent;

/* options may be NULL: a client with the default limits. */
int ws_parser_new(WsParser **ret, const WsParserOptions *options);
WsParser *ws_parser_free(WsParser *p);

/* Forgets everything (the options stay): for a new connection. */
void ws_parser_reset(WsParser *p);

/*
 * Parses from data (writable: masked payload is unmasked in place) and reports
 * the next event. Returns 1 with *ret_event filled in, or 0 when all the input
 * was used and more is needed; *ret_consumed says how much of data was used
 * either way. Errors leave the parser failed (ws_parser_get_close_code() gives
 * the code to close with, ws_parser_get_error() a short description):
 *   -EBADMSG   protocol error (1002)
 *   -EILSEQ    a text message or close reason is not UTF-8 (1007)
 *   -EMSGSIZE  a message exceeds max_message_size (1009)
 */
int ws_parser_feed(WsParser *p, void *data, size_t size, size_t *ret_consumed, WsEvent *ret_event);

/*
 * A data message has begun (its first frame header is parsed, maybe before
 * any DATA event) and its last piece has not been reported.
 */
bool ws_parser_in_message(const WsParser *p);
/* A CLOSE frame has been reported. */
bool ws_parser_is_closed(const WsParser *p);
/* 0 while no error; else the close code the error calls for. */
unsigned ws_parser_get_close_code(const WsParser *p);
/* NULL while no error; else a short description of what was wrong. */
const char *ws_parser_get_error(const WsParser *p);

/* ---- Writer ---- */

/*
 * Writes frames for one end of a connection. A client masks every frame with a
 * fresh key from rng. The writer keeps no message state: the caller sends a
 * fragmented message as TEXT/BINARY with fin false, then CONTINUATION frames,
 * the last with fin true.
 */
typedef struct WsWriter {
        WsRole role;
        WsRandomFunc rng;
        void *rng_userdata;
} WsWriter;

/* rng NULL: ws_random_getrandom(). */
void ws_writer_init(WsWriter *w, WsRole role, WsRandomFunc rng, void *rng_userdata);

/*
 * Writes the header of a frame whose payload (payload_size bytes) the caller
 * sends itself, into buf (at least WS_HEADER_MAX bytes). A client must mask
 * that payload with ws_mask() and the key returned in ret_mask_key (left alone
 * for a server). Returns the header length (> 0), or -EINVAL (a control frame
 * longer than WS_CONTROL_MAX or not final, rsv beyond 3 bits, a length past
 * 2^63-1) or the rng's error.
 */
int ws_writer_header(WsWriter *w, uint8_t *buf, WsOpcode opcode, bool fin, uint8_t rsv,
                     uint64_t payload_size, uint8_t ret_mask_key[4]);

/*
 * Writes a whole frame (header and, masked for a client, payload) into buf.
 * Returns the frame length (> 0); -ENOBUFS when it does not fit in buf_size,
 * -E2BIG for a payload above INT_MAX - WS_HEADER_MAX (use ws_writer_header()
 * for those), or an error as ws_writer_header().
 */
int ws_writer_frame(WsWriter *w, uint8_t *buf, size_t buf_size, WsOpcode opcode, bool fin,
                    const void *payload, size_t payload_size);

/*
 * Writes a CLOSE frame. code 0 sends no code (and then no reason); otherwise
 * the code must satisfy ws_close_code_is_valid() and reason (may be NULL) be
 * UTF-8 of at most WS_CLOSE_REASON_MAX bytes, else -EINVAL. Returns as
 * ws_writer_frame(); a buffer of WS_HEADER_MAX + WS_CONTROL_MAX always fits.
 */
int ws_writer_close(WsWriter *w, uint8_t *buf, size_t buf_size, unsigned code, const char *reason);

/*
 * Frames one piece of an outgoing message in place. Its payload (len bytes) is
 * already at out + WS_PIECE_PREFIX; the frame header goes just before it, and
 * when a piece that starts a message (som) comes while one is open
 * (*in_message), an empty final CONTINUATION frame that ends the open one goes
 * first. The opcode is TEXT or BINARY for a message's first piece, else
 * CONTINUATION; eom makes it final. A client's payload is masked here.
 * *in_message is updated. Returns the offset in out where the frames start,
 * or a negative errno as ws_writer_header().
 */
#define WS_PIECE_PREFIX (2 * WS_HEADER_MAX)
int ws_writer_piece(WsWriter *w, uint8_t *out, size_t len, bool binary, bool som, bool eom,
                    bool *in_message);

/* XORs data with key, data being the payload from byte offset on. */
void ws_mask(uint8_t *data, size_t size, const uint8_t key[4], uint64_t offset);

/* ---- Header values of the opening handshake (both sides) ---- */

/* Strips spaces and tabs from both ends of the value [*s, *s + *len). */
void ws_header_trim(const char **s, size_t *len);
/* The header name (or token) equals want, case-insensitively. */
bool ws_header_name_is(const char *name, size_t name_len, const char *want);
/*
 * The next item of a comma-separated list starting at *value (of *len bytes
 * left), trimmed; false when there is none. Empty items are skipped.
 */
bool ws_header_list_next(const char **value, size_t *len, const char **ret_item, size_t *ret_len);
/* A comma-separated list holds token (case-insensitive). */
bool ws_header_list_has(const char *value, size_t len, const char *token);

/* ---- Opening handshake (client side, RFC 6455 4.1) ---- */

/*
 * One handshake: the key to send, then the server's response fed header by
 * header (names case-insensitive, any order, as the HTTP parser reports them),
 * then the verdict.
 */
typedef struct WsHandshake {
        char key[WS_KEY_LENGTH + 1];
        char accept[WS_ACCEPT_LENGTH + 1]; /* the expected Sec-WebSocket-Accept */
        const char *protocols[WS_PROTOCOLS_MAX + 1];
        bool upgrade;
        bool connection;
        bool accept_seen;
        int protocol_index; /* -1: the server chose none */
        const char *error;
} WsHandshake;

/*
 * Generates the key with rng (NULL: getrandom) and remembers the offered
 * subprotocols (NULL-terminated, may be NULL; the strings must outlive the
 * handshake). -EINVAL for more than WS_PROTOCOLS_MAX or an empty or non-token
 * name, or the rng's error.
 */
int ws_handshake_init(WsHandshake *h, const char *const *protocols, WsRandomFunc rng,
                      void *rng_userdata);

/*
 * The Sec-WebSocket-Protocol request value (the offers joined with ", ") into
 * buf; returns its length, -ENOBUFS when it does not fit (with its NUL), 0 when
 * nothing is offered (then send no such header).
 */
int ws_handshake_protocols_header(const WsHandshake *h, char *buf, size_t size);

/*
 * One header field of the response. Returns 0, or -EBADMSG when it already
 * fails the handshake (Sec-WebSocket-Accept wrong or repeated, any
 * Sec-WebSocket-Extensions since we offer none, a subprotocol not offered or
 * repeated); the reason is kept for ws_handshake_get_error().
 */
int ws_handshake_response_header(WsHandshake *h, const char *name, size_t name_len,
                                 const char *value, size_t value_len);

/*
 * After the last header: status must be 101 and Upgrade (websocket),
 * Connection (upgrade) and the right Sec-WebSocket-Accept present. Returns 0
 * with *ret_protocol the chosen subprotocol (one of the offered strings, NULL
 * when the server chose none: RFC 6455 4.1 allows it), or -EBADMSG.
 */
int ws_handshake_response_finish(WsHandshake *h, unsigned status, const char **ret_protocol);

/* NULL while the response is fine so far; else why it failed. */
const char *ws_handshake_get_error(const WsHandshake *h);

/*
 * Computes the Sec-WebSocket-Accept for key (RFC 6455 4.2.2: base64 of SHA-1
 * of key and the GUID) into ret (WS_ACCEPT_LENGTH + 1 bytes). Also what a
 * server answers. -EINVAL for an empty key or one over 256 bytes.
 */
int ws_handshake_accept(const char *key, char ret[static WS_ACCEPT_LENGTH + 1]);

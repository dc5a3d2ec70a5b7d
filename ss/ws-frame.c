/* SPDX-License-Identifier: MIT */
/*
 * WebSocket framing (RFC 6455): the frame parser, a state machine over frame
 * headers (gathered in a 14-byte buffer), data payload (handed out in place,
 * unmasked there) and control payload (gathered whole); the frame writer; and
 * the opening handshake helpers. See ws-frame.h for the rules and decisions.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "sha1.h"
#include "utf8.h"
#include "util.h"
#include "ws-frame.h"

/* RFC 6455 1.3: appended to the key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int ws_random_getrandom(void *buf, size_t size, void *userdata)
{
        uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = getrandom(p, size, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

bool ws_close_code_is_valid(unsigned code)
{
        return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
               (code >= 3000 && code <= 4999);
}

static bool opcode_is_control(unsigned opcode)
{
        return opcode >= 0x8;
}

static bool opcode_is_known(unsigned opcode)
{
        switch (opcode) {
        case WS_OPCODE_CONTINUATION:
        case WS_OPCODE_TEXT:
        case WS_OPCODE_BINARY:
        case WS_OPCODE_CLOSE:
        case WS_OPCODE_PING:
        case WS_OPCODE_PONG:
                return true;
        default:
                return false;
        }
}

void ws_mask(uint8_t *data, size_t size, const uint8_t key[4], uint64_t offset)
{
        uint8_t k[4];

        assert(key);
        assert(data || size == 0);
        for (unsigned i = 0; i < 4; i++)
                k[i] = key[(offset + i) & 3];
        for (size_t i = 0; i < size; i++)
                data[i] ^= k[i & 3];
}

/* ---- Parser ---- */

typedef enum ParserState {
        STATE_HEADER,
        STATE_DATA,
        STATE_CONTROL,
        STATE_CLOSED,
        STATE_FAILED,
} ParserState;

struct WsParser {
        WsParserOptions options;
        ParserState state;

        uint8_t header[WS_HEADER_MAX];
        size_t header_len;

        /* The frame being parsed. */
        bool fin;
        uint8_t rsv;
        unsigned opcode;
        bool masked;
        uint8_t key[4];
        uint64_t length;
        uint64_t done; /* payload bytes taken so far */

        /* The data message being received. */
        bool in_message;
        WsOpcode message_opcode;
        uint8_t message_rsv;
        bool som_pending;
        uint64_t message_size; /* announced by its frame headers so far */
        Utf8Validator utf8;

        unsigned close_code;
        int error;
        const char *error_text;

        uint8_t control[WS_CONTROL_MAX + 1]; /* with room for a NUL after a close reason */
};

static int parser_fail(WsParser *p, int error, unsigned close_code, const char *text)
{
        p->state = STATE_FAILED;
        p->error = error;
        p->close_code = close_code;
        p->error_text = text;
        return error;
}

static int protocol_error(WsParser *p, const char *text)
{
        return parser_fail(p, -EBADMSG, WS_CLOSE_PROTOCOL_ERROR, text);
}

void ws_parser_reset(WsParser *p)
{
        WsParserOptions options;

        assert(p);
        options = p->options;
        *p = (WsParser){.options = options, .state = STATE_HEADER};
}

int ws_parser_new(WsParser **ret, const WsParserOptions *options)
{
        WsParser *p;

        assert(ret);
        p = malloc(sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->options = options ? *options : (WsParserOptions){.role = WS_ROLE_CLIENT};
        if (p->options.max_message_size == 0)
                p->options.max_message_size = WS_DEFAULT_MAX_MESSAGE;
        p->options.allowed_rsv &= 0x7;
        ws_parser_reset(p);
        *ret = p;
        return 0;
}

WsParser *ws_parser_free(WsParser *p)
{
        return mfree(p);
}

bool ws_parser_in_message(const WsParser *p)
{
        assert(p);
        return p->in_message;
}

bool ws_parser_is_closed(const WsParser *p)
{
        assert(p);
        return p->state == STATE_CLOSED;
}

unsigned ws_parser_get_close_code(const WsParser *p)
{
        assert(p);
        return p->state == STATE_FAILED ? p->close_code : 0;
}

const char *ws_parser_get_error(const WsParser *p)
{
        assert(p);
        return p->state == STATE_FAILED ? p->error_text : NULL;
}

/* Bytes of the header as far as the first two tell. */
static size_t header_size(const WsParser *p)
{
        size_t n = 2;

        if (p->header_len < 2)
                return 2;
        if ((p->header[1] & 0x7f) == 126)
                n += 2;
        else if ((p->header[1] & 0x7f) == 127)
                n += 8;
        if (p->header[1] & 0x80)
                n += 4;
        return n;
}

/* The first two bytes: everything that does not need the extended length. */
static int header_check_start(WsParser *p)
{
        uint8_t b0 = p->header[0], b1 = p->header[1];
        unsigned opcode = b0 & 0x0f;
        uint8_t rsv = (b0 >> 4) & 0x7;
        bool masked = b1 & 0x80;

        if (!opcode_is_known(opcode))
                return protocol_error(p, "reserved opcode");
        if (opcode_is_control(opcode)) {
                if (rsv)
                        return protocol_error(p, "reserved bits set on a control frame");
                if (!(b0 & 0x80))
                        return protocol_error(p, "fragmented control frame");
                if ((b1 & 0x7f) > WS_CONTROL_MAX)
                        return protocol_error(p, "control frame longer than 125 bytes");
        } else {
                if (rsv & ~p->options.allowed_rsv)
                        return protocol_error(p, "reserved bits set without an extension");
                if (opcode == WS_OPCODE_CONTINUATION && !p->in_message)
                        return protocol_error(p, "continuation frame without a message");
                if (opcode != WS_OPCODE_CONTINUATION && p->in_message)
                        return protocol_error(p, "new message inside a fragmented one");
        }
        if (p->options.role == WS_ROLE_SERVER && !masked)
                return protocol_error(p, "unmasked frame from a client");
        if (p->options.role == WS_ROLE_CLIENT && masked)
                return protocol_error(p, "masked frame from a server");
        p->fin = b0 & 0x80;
        p->rsv = rsv;
        p->opcode = opcode;
        p->masked = masked;
        return 0;
}

/* The whole header is in: length, key, limits; then on to the payload. */
static int header_finish(WsParser *p)
{
        unsigned code = p->header[1] & 0x7f;
        size_t at = 2;

        if (code == 126) {
                p->length = be16_read(p->header + 2);
                if (p->length < 126)
                        return protocol_error(p, "16-bit length below 126");
                at += 2;
        } else if (code == 127) {
                p->length = be64_read(p->header + 2);
                if (p->length >> 63)
                        return protocol_error(p, "64-bit length with the top bit set");
                if (p->length <= UINT16_MAX)
                        return protocol_error(p, "64-bit length below 65536");
                at += 8;
        } else {
                p->length = code;
        }
        if (p->masked)
                memcpy(p->key, p->header + at, 4);
        p->done = 0;
        p->header_len = 0;

        if (opcode_is_control(p->opcode)) {
                p->state = STATE_CONTROL;
                return 0;
        }
        if (p->opcode != WS_OPCODE_CONTINUATION) {
                p->in_message = true;
                p->message_opcode = (WsOpcode) p->opcode;
                p->message_rsv = p->rsv;
                p->som_pending = true;
                p->message_size = 0;
                utf8_validator_init(&p->utf8);
        }
        if (p->length > p->options.max_message_size - p->message_size)
                return parser_fail(p, -EMSGSIZE, WS_CLOSE_TOO_BIG, "message too big");
        p->message_size += p->length;
        p->state = STATE_DATA;
        return 0;
}

static int header_collect(WsParser *p, const uint8_t *in, size_t size, size_t *used)
{
        for (;;) {
                size_t need = header_size(p);
                size_t n;
                int r;

                if (p->header_len == need)
                        return header_finish(p) < 0 ? p->error : 1;
                n = MIN(need - p->header_len, size - *used);
                if (n == 0)
                        return 0;
                memcpy(p->header + p->header_len, in + *used, n);
                *used += n;
                if (p->header_len < 2 && p->header_len + n >= 2) {
                        p->header_len += n;
                        r = header_check_start(p);
                        if (r < 0)
                                return r;
                } else {
                        p->header_len += n;
                }
        }
}

/* A piece of data payload: returns 1 with an event, 0 for none (go on). */
static int data_piece(WsParser *p, uint8_t *in, size_t size, size_t *used, WsEvent *ev)
{
        size_t n = (size_t) MIN(p->length - p->done, (uint64_t) (size - *used));
        uint8_t *piece = in + *used;
        bool last, eom;

        if (n == 0 && p->done < p->length)
                return 0;
        if (p->masked)
                ws_mask(piece, n, p->key, p->done);
        if (p->message_opcode == WS_OPCODE_TEXT && !utf8_validator_feed(&p->utf8, piece, n))
                return parser_fail(p, -EILSEQ, WS_CLOSE_INVALID_PAYLOAD,
                                   "text message is not UTF-8");
        p->done += n;
        *used += n;
        last = p->done == p->length;
        eom = last && p->fin;
        if (eom && p->message_opcode == WS_OPCODE_TEXT && !utf8_validator_is_complete(&p->utf8))
                return parser_fail(p, -EILSEQ, WS_CLOSE_INVALID_PAYLOAD,
                                   "text message ends inside a character");
        if (last) {
                p->state = STATE_HEADER;
                if (p->fin)
                        p->in_message = false;
        }
        if (n == 0 && !eom)
                return 0; /* an empty frame in the middle of a message */
        *ev = (WsEvent){
            .type = WS_EVENT_DATA,
            .opcode = p->message_opcode,
            .som = p->som_pending,
            .eom = eom,
            .rsv = p->message_rsv,
            .data = piece,
            .size = n,
        };
        p->som_pending = false;
        return 1;
}

static int control_finish(WsParser *p, WsEvent *ev)
{
        size_t len = (size_t) p->length;

        if (p->masked)
                ws_mask(p->control, len, p->key, 0);
        p->state = STATE_HEADER;
        *ev = (WsEvent){.data = p->control, .size = len};
        switch ((WsOpcode) p->opcode) {
        case WS_OPCODE_PING:
                ev->type = WS_EVENT_PING;
                return 1;
        case WS_OPCODE_PONG:
                ev->type = WS_EVENT_PONG;
                return 1;
        case WS_OPCODE_CLOSE:
                break;
        case WS_OPCODE_CONTINUATION:
        case WS_OPCODE_TEXT:
        case WS_OPCODE_BINARY:
                assert(false);
                return protocol_error(p, "internal error");
        }
        ev->type = WS_EVENT_CLOSE;
        if (len == 1)
                return protocol_error(p, "close frame with a 1-byte payload");
        if (len == 0) {
                ev->code = WS_CLOSE_NO_STATUS;
        } else {
                ev->code = be16_read(p->control);
                if (!ws_close_code_is_valid(ev->code))
                        return protocol_error(p, "invalid close code");
                if (!utf8_is_valid(p->control + 2, len - 2))
                        return parser_fail(p, -EILSEQ, WS_CLOSE_INVALID_PAYLOAD,
                                           "close reason is not UTF-8");
        }
        p->control[len] = 0;
        ev->reason = len ? (const char *) p->control + 2 : (const char *) p->control;
        ev->reason_len = len ? len - 2 : 0;
        p->state = STATE_CLOSED;
        return 1;
}

int ws_parser_feed(WsParser *p, void *data, size_t size, size_t *ret_consumed, WsEvent *ret_event)
{
        static uint8_t empty[1]; /* so that no arithmetic is done on NULL */
        uint8_t *in = data ? data : empty;
        size_t used = 0;
        int r = 0;

        assert(p);
        assert(data || size == 0);
        assert(ret_consumed);
        assert(ret_event);

        for (;;) {
                size_t n;

                switch (p->state) {
                case STATE_HEADER:
                        r = header_collect(p, in, size, &used);
                        if (r <= 0)
                                goto out;
                        continue;
                case STATE_DATA:
                        r = data_piece(p, in, size, &used, ret_event);
                        if (r != 0)
                                goto out;
                        if (p->state == STATE_DATA)
                                goto out; /* input ran out inside the payload */
                        continue;
                case STATE_CONTROL:
                        n = (size_t) MIN(p->length - p->done, (uint64_t) (size - used));
                        memcpy(p->control + p->done, in + used, n);
                        p->done += n;
                        used += n;
                        if (p->done < p->length) {
                                r = 0;
                                goto out;
                        }
                        r = control_finish(p, ret_event);
                        goto out;
                case STATE_CLOSED:
                        r = used < size ? protocol_error(p, "data after a close frame") : 0;
                        goto out;
                case STATE_FAILED:
                        r = p->error;
                        goto out;
                }
        }
out:
        *ret_consumed = used;
        return r;
}

/* ---- Writer ---- */

void ws_writer_init(WsWriter *w, WsRole role, WsRandomFunc rng, void *rng_userdata)
{
        assert(w);
        *w = (WsWriter){
            .role = role,
            .rng = rng ? rng : ws_random_getrandom,
            .rng_userdata = rng_userdata,
        };
}

static int header_length(WsOpcode opcode, bool fin, uint8_t rsv, uint64_t payload_size, bool masked)
{
        if (!opcode_is_known(opcode) || rsv > 7 || payload_size >> 63)
                return -EINVAL;
        if (opcode_is_control(opcode) && (!fin || payload_size > WS_CONTROL_MAX))
                return -EINVAL;
        return (payload_size < 126 ? 2 : payload_size <= UINT16_MAX ? 4 : 10) + (masked ? 4 : 0);
}

int ws_writer_header(WsWriter *w, uint8_t *buf, WsOpcode opcode, bool fin, uint8_t rsv,
                     uint64_t payload_size, uint8_t ret_mask_key[4])
{
        bool masked;
        size_t at = 2;
        int n, r;

        assert(w);
        assert(buf);
        masked = w->role == WS_ROLE_CLIENT;
        assert(!masked || ret_mask_key);
        n = header_length(opcode, fin, rsv, payload_size, masked);
        if (n < 0)
                return n;
        buf[0] = (uint8_t) ((fin ? 0x80 : 0) | rsv << 4 | opcode);
        buf[1] = masked ? 0x80 : 0;
        if (payload_size < 126) {
                buf[1] |= (uint8_t) payload_size;
        } else if (payload_size <= UINT16_MAX) {
                buf[1] |= 126;
                be16_write(buf + 2, (uint16_t) payload_size);
                at += 2;
        } else {
                buf[1] |= 127;
                be64_write(buf + 2, payload_size);
                at += 8;
        }
        if (masked) {
                uint8_t key[4];

                r = w->rng(key, sizeof(key), w->rng_userdata);
                if (r < 0)
                        return r;
                memcpy(buf + at, key, 4);
                memcpy(ret_mask_key, key, 4);
        }
        return n;
}

int ws_writer_frame(WsWriter *w, uint8_t *buf, size_t buf_size, WsOpcode opcode, bool fin,
                    const void *payload, size_t payload_size)
{
        uint8_t key[4];
        int n;

        assert(w);
        assert(buf || buf_size == 0);
        assert(payload || payload_size == 0);
        if (payload_size > (size_t) INT_MAX - WS_HEADER_MAX)
                return -E2BIG;
        n = header_length(opcode, fin, 0, payload_size, w->role == WS_ROLE_CLIENT);
        if (n < 0)
                return n;
        if ((size_t) n + payload_size > buf_size)
                return -ENOBUFS;
        n = ws_writer_header(w, buf, opcode, fin, 0, payload_size, key);
        if (n < 0)
                return n;
        if (payload_size)
                memmove(buf + n, payload, payload_size);
        if (w->role == WS_ROLE_CLIENT)
                ws_mask(buf + n, payload_size, key, 0);
        return n + (int) payload_size;
}

int ws_writer_piece(WsWriter *w, uint8_t *out, size_t len, bool binary, bool som, bool eom,
                    bool *in_message)
{
        uint8_t header[WS_HEADER_MAX], key[4];
        size_t start = WS_PIECE_PREFIX;
        bool end_previous = *in_message && som;
        WsOpcode opcode;
        int n;

        if (*in_message && !end_previous)
                opcode = WS_OPCODE_CONTINUATION;
        else
                opcode = binary ? WS_OPCODE_BINARY : WS_OPCODE_TEXT;
        n = ws_writer_header(w, header, opcode, eom, 0, len, key);
        if (n < 0)
                return n;
        if (w->role == WS_ROLE_CLIENT)
                ws_mask(out + WS_PIECE_PREFIX, len, key, 0);
        start -= (size_t) n;
        memcpy(out + start, header, (size_t) n);
        if (end_previous) {
                n = ws_writer_header(w, header, WS_OPCODE_CONTINUATION, true, 0, 0, key);
                if (n < 0)
                        return n;
                start -= (size_t) n;
                memcpy(out + start, header, (size_t) n);
        }
        *in_message = !eom;
        return (int) start;
}

int ws_writer_close(WsWriter *w, uint8_t *buf, size_t buf_size, unsigned code, const char *reason)
{
        uint8_t payload[WS_CONTROL_MAX];
        size_t reason_len = reason ? strlen(reason) : 0;

        assert(w);
        if (code == 0) {
                if (reason_len)
                        return -EINVAL;
                return ws_writer_frame(w, buf, buf_size, WS_OPCODE_CLOSE, true, NULL, 0);
        }
        if (!ws_close_code_is_valid(code) || reason_len > WS_CLOSE_REASON_MAX ||
            !utf8_is_valid(reason, reason_len))
                return -EINVAL;
        be16_write(payload, (uint16_t) code);
        if (reason_len)
                memcpy(payload + 2, reason, reason_len);
        return ws_writer_frame(w, buf, buf_size, WS_OPCODE_CLOSE, true, payload, 2 + reason_len);
}

/* ---- Handshake ---- */

static void base64_encode(const uint8_t *in, size_t size, char *out)
{
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t i = 0;

        for (; i + 3 <= size; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[(v >> 12) & 63];
                *out++ = alphabet[(v >> 6) & 63];
                *out++ = alphabet[v & 63];
        }
        if (size - i == 1) {
                uint32_t v = (uint32_t) in[i] << 16;

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[(v >> 12) & 63];
                *out++ = '=';
                *out++ = '=';
        } else if (size - i == 2) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[(v >> 12) & 63];
                *out++ = alphabet[(v >> 6) & 63];
                *out++ = '=';
        }
        *out = 0;
}

/* Keys we make are 24 characters; what a server gets from others is bounded too. */
#define WS_KEY_INPUT_MAX 256

int ws_handshake_accept(const char *key, char ret[static WS_ACCEPT_LENGTH + 1])
{
        char input[WS_KEY_INPUT_MAX + sizeof(WS_GUID)];
        uint8_t digest[SHA1_DIGEST_SIZE];
        size_t len;

        assert(key);
        assert(ret);
        len = strlen(key);
        if (len == 0 || len > WS_KEY_INPUT_MAX)
                return -EINVAL;
        memcpy(input, key, len);
        memcpy(input + len, WS_GUID, sizeof(WS_GUID) - 1);
        sha1(input, len + sizeof(WS_GUID) - 1, digest);
        base64_encode(digest, sizeof(digest), ret);
        return 0;
}

/* RFC 9110 5.6.2 tchar: what a subprotocol name is made of (RFC 6455 4.1). */
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

int ws_handshake_init(WsHandshake *h, const char *const *protocols, WsRandomFunc rng,
                      void *rng_userdata)
{
        WsHandshake n = {.protocol_index = -1};
        uint8_t nonce[16];
        size_t count = 0;
        int r;

        assert(h);
        for (; protocols && protocols[count]; count++) {
                if (count == WS_PROTOCOLS_MAX ||
                    !is_token(protocols[count], strlen(protocols[count])))
                        return -EINVAL;
                n.protocols[count] = protocols[count];
        }
        r = (rng ? rng : ws_random_getrandom)(nonce, sizeof(nonce), rng_userdata);
        if (r < 0)
                return r;
        base64_encode(nonce, sizeof(nonce), n.key);
        r = ws_handshake_accept(n.key, n.accept);
        if (r < 0)
                return r;
        *h = n;
        return 0;
}

int ws_handshake_protocols_header(const WsHandshake *h, char *buf, size_t size)
{
        size_t len = 0;

        assert(h);
        assert(buf || size == 0);
        for (size_t i = 0; h->protocols[i]; i++) {
                size_t l = strlen(h->protocols[i]);

                if (len + (i ? 2 : 0) + l + 1 > size)
                        return -ENOBUFS;
                if (i) {
                        memcpy(buf + len, ", ", 2);
                        len += 2;
                }
                memcpy(buf + len, h->protocols[i], l);
                len += l;
        }
        if (size)
                buf[len] = 0;
        return (int) len;
}

static int handshake_fail(WsHandshake *h, const char *why)
{
        if (!h->error)
                h->error = why;
        return -EBADMSG;
}

void ws_header_trim(const char **s, size_t *len)
{
        while (*len && (**s == ' ' || **s == '\t')) {
                (*s)++;
                (*len)--;
        }
        while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
                (*len)--;
}

bool ws_header_name_is(const char *name, size_t name_len, const char *want)
{
        return strlen(want) == name_len && strncasecmp(name, want, name_len) == 0;
}

bool ws_header_list_next(const char **value, size_t *len, const char **ret_item, size_t *ret_len)
{
        while (*len > 0) {
                const char *comma = memchr(*value, ',', *len);
                const char *item = *value;
                size_t item_len = comma ? (size_t) (comma - *value) : *len;

                *value += comma ? item_len + 1 : item_len;
                *len -= comma ? item_len + 1 : item_len;
                ws_header_trim(&item, &item_len);
                if (item_len > 0) {
                        *ret_item = item;
                        *ret_len = item_len;
                        return true;
                }
        }
        return false;
}

bool ws_header_list_has(const char *value, size_t len, const char *token)
{
        const char *item;
        size_t item_len;

        while (ws_header_list_next(&value, &len, &item, &item_len))
                if (ws_header_name_is(item, item_len, token))
                        return true;
        return false;
}

int ws_handshake_response_header(WsHandshake *h, const char *name, size_t name_len,
                                 const char *value, size_t value_len)
{
        assert(h);
        assert(name);
        assert(value || value_len == 0);
        if (h->error)
                return -EBADMSG;
        ws_header_trim(&value, &value_len);
        if (ws_header_name_is(name, name_len, "upgrade")) {
                if (!ws_header_name_is(value, value_len, "websocket"))
                        return handshake_fail(h, "Upgrade is not websocket");
                h->upgrade = true;
        } else if (ws_header_name_is(name, name_len, "connection")) {
                if (ws_header_list_has(value, value_len, "upgrade"))
                        h->connection = true;
        } else if (ws_header_name_is(name, name_len, "sec-websocket-accept")) {
                if (h->accept_seen)
                        return handshake_fail(h, "Sec-WebSocket-Accept repeated");
                if (value_len != WS_ACCEPT_LENGTH || memcmp(value, h->accept, value_len) != 0)
                        return handshake_fail(h, "Sec-WebSocket-Accept does not match the key");
                h->accept_seen = true;
        } else if (ws_header_name_is(name, name_len, "sec-websocket-extensions")) {
                if (value_len > 0)
                        return handshake_fail(h, "server chose an extension we did not offer");
        } else if (ws_header_name_is(name, name_len, "sec-websocket-protocol")) {
                if (h->protocol_index >= 0)
                        return handshake_fail(h, "Sec-WebSocket-Protocol repeated");
                for (int i = 0; h->protocols[i]; i++)
                        if (strlen(h->protocols[i]) == value_len &&
                            memcmp(h->protocols[i], value, value_len) == 0) {
                                h->protocol_index = i;
                                return 0;
                        }
                return handshake_fail(h, "server chose a subprotocol we did not offer");
        }
        return 0;
}

int ws_handshake_response_finish(WsHandshake *h, unsigned status, const char **ret_protocol)
{
        assert(h);
        if (h->error)
                return -EBADMSG;
        if (status != 101)
                return handshake_fail(h, "status is not 101");
        if (!h->upgrade)
                return handshake_fail(h, "no Upgrade: websocket");
        if (!h->connection)
                return handshake_fail(h, "no Connection: upgrade");
        if (!h->accept_seen)
                return handshake_fail(h, "no Sec-WebSocket-Accept");
        if (ret_protocol)
                *ret_protocol = h->protocol_index >= 0 ? h->protocols[h->protocol_index] : NULL;
        return 0;
}

const char *ws_handshake_get_error(const WsHandshake *h)
{
        assert(h);
        return h->error;
}

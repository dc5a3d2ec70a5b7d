/* SPDX-License-Identifier: MIT */
/*
 * The cpd message formatter and the trigger recognizer (see cpd-message.h).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cpd-message.h"
#include "json-util.h"
#include "util.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_sequence_length(const unsigned char *s)
{
        size_t n;
        uint32_t cp;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

typedef struct Out {
        char *buf;
        size_t size;
        size_t len; /* what is needed so far, may exceed size */
} Out;

static void out_bytes(Out *o, const char *p, size_t n)
{
        if (o->len < o->size)
                memcpy(o->buf + o->len, p, MIN(n, o->size - o->len));
        o->len += n;
}

size_t cpd_json_string(const char *s, char *buf, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        Out o = {.buf = buf, .size = size};
        const unsigned char *p = (const unsigned char *) s;

        assert(s);
        assert(buf || size == 0);
        out_bytes(&o, "\"", 1);
        while (*p) {
                size_t n = utf8_sequence_length(p);

                if (n == 0) {
                        char pct[3] = {'%', "0123456789ABCDEF"[*p >> 4],
                                       "0123456789ABCDEF"[*p & 15]};

                        out_bytes(&o, pct, 3);
                        p++;
                } else if (*p == '"' || *p == '\\') {
                        char esc[2] = {'\\', (char) *p};

                        out_bytes(&o, esc, 2);
                        p++;
                } else if (*p < 0x20 || *p == 0x7f) {
                        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

                        out_bytes(&o, esc, 6);
                        p++;
                } else {
                        out_bytes(&o, (const char *) p, n);
                        p += n;
                }
        }
        out_bytes(&o, "\"", 1);
        if (o.len < size)
                buf[o.len] = '\0';
        else if (size > 0)
                buf[size - 1] = '\0';
        return o.len;
}

static const char *family_json(CaptiveResult r, char *buf, size_t size)
{
        if (r == CAPTIVE_RESULT_UNKNOWN)
                return "null";
        (void) snprintf(buf, size, "\"%s\"", captive_result_to_string(r));
        return buf;
}

int cpd_message_format(const CaptiveStatus *s, char buf[static CPD_MESSAGE_MAX + 1])
{
        char v4[16], v6[16], tail[96], portal[CPD_MESSAGE_MAX + 1];
        int head_len, tail_len;
        size_t portal_len = 0;

        assert(s);
        if (s->result == CAPTIVE_RESULT_UNKNOWN || s->result >= _CAPTIVE_RESULT_MAX ||
            s->ipv4 >= _CAPTIVE_RESULT_MAX || s->ipv6 >= _CAPTIVE_RESULT_MAX)
                return -EINVAL;

        head_len = snprintf(
            buf, CPD_MESSAGE_MAX + 1, "{\"type\":\"cpd\",\"result\":\"%s\",\"ipv4\":%s,\"ipv6\":%s",
            captive_result_to_string(s->result), family_json(s->ipv4, v4, sizeof(v4)),
            family_json(s->ipv6, v6, sizeof(v6)));
        if (s->has_seconds_remaining)
                tail_len =
                    snprintf(tail, sizeof(tail),
                             ",\"seconds_remaining\":%" PRIu64 ",\"checked_us\":%" PRIu64 "}",
                             s->seconds_remaining, s->checked_usec);
        else
                tail_len =
                    snprintf(tail, sizeof(tail), ",\"checked_us\":%" PRIu64 "}", s->checked_usec);
        assert(head_len > 0 && tail_len > 0 && (size_t) tail_len < sizeof(tail));
        assert((size_t) (head_len + tail_len) <= CPD_MESSAGE_MAX);

        if (s->result == CAPTIVE_RESULT_CAPTIVE && s->portal && s->portal[0]) {
                static const char key[] = ",\"portal\":";
                size_t room = CPD_MESSAGE_MAX - (size_t) head_len - (size_t) tail_len;

                if (room > sizeof(key) - 1) {
                        portal_len = cpd_json_string(s->portal, portal, sizeof(portal));
                        if (portal_len > room - (sizeof(key) - 1))
                                portal_len = 0;
                }
                if (portal_len > 0) {
                        memcpy(buf + head_len, key, sizeof(key) - 1);
                        head_len += (int) sizeof(key) - 1;
                        memcpy(buf + head_len, portal, portal_len);
                        head_len += (int) portal_len;
                }
        }
        memcpy(buf + head_len, tail, (size_t) tail_len + 1);
        return head_len + tail_len;
}

bool cpd_message_is_check_trigger(const void *payload, size_t size)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_(json_object_putp) json_object *doc = NULL;
        json_object *v;

        if (!payload || size == 0 || size > SMD_PAYLOAD_MAX || memchr(payload, 0, size))
                return false;
        tok = json_tokener_new_ex(4);
        if (!tok)
                return false;
        doc = json_tokener_parse_ex(tok, payload, (int) size);
        if (!doc || json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(doc, json_type_object))
                return false;
        if (!json_object_object_get_ex(doc, "trigger", &v) ||
            !json_object_is_type(v, json_type_string))
                return false;
        return json_object_get_string_len(v) == 8 &&
               memcmp(json_object_get_string(v), "cpdcheck", 8) == 0;
}

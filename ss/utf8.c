/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 validation as a small state machine: the lead byte fixes how many
 * continuation bytes follow and the range of the first one (which is where
 * overlongs, surrogates and values past U+10FFFF are told apart, Unicode
 * table 3-7); every later continuation byte is 0x80..0xBF. Runs of ASCII are
 * skipped eight bytes at a time.
 */
#include <assert.h>
#include <string.h>

#include "utf8.h"

void utf8_validator_init(Utf8Validator *v)
{
        assert(v);
        *v = (Utf8Validator){0};
}

/* Sets up a character from its lead byte; false when no character starts so. */
static bool lead_byte(Utf8Validator *v, uint8_t c)
{
        v->lower = 0x80;
        v->upper = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
                v->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
                v->need = 2;
                if (c == 0xe0)
                        v->lower = 0xa0; /* below: overlong */
                else if (c == 0xed)
                        v->upper = 0x9f; /* above: surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                v->need = 3;
                if (c == 0xf0)
                        v->lower = 0x90; /* below: overlong */
                else if (c == 0xf4)
                        v->upper = 0x8f; /* above: past U+10FFFF */
        } else {
                /* 0x80..0xc1: continuation or overlong lead; 0xf5..0xff: never used. */
                return false;
        }
        return true;
}

static bool all_ascii8(const uint8_t *p)
{
        uint64_t w;

        memcpy(&w, p, sizeof(w));
        return (w & UINT64_C(0x8080808080808080)) == 0;
}

bool utf8_validator_feed(Utf8Validator *v, const void *data, size_t size)
{
        const uint8_t *p = data;
        size_t i = 0;

        assert(v);
        assert(data || size == 0);
        if (v->failed)
                return false;
        while (i < size) {
                uint8_t c = p[i];

                if (v->need > 0) {
                        if (c < v->lower || c > v->upper) {
                                v->failed = true;
                                return false;
                        }
                        v->need--;
                        v->lower = 0x80;
                        v->upper = 0xbf;
                        i++;
                        continue;
                }
                if (c < 0x80) {
                        i++;
                        while (i + 8 <= size && all_ascii8(p + i))
                                i += 8;
                        continue;
                }
                if (!lead_byte(v, c)) {
                        v->failed = true;
                        return false;
                }
                i++;
        }
        return true;
}

bool utf8_validator_is_complete(const Utf8Validator *v)
{
        assert(v);
        return !v->failed && v->need == 0;
}

bool utf8_is_valid(const void *data, size_t size)
{
        Utf8Validator v;

        utf8_validator_init(&v);
        return utf8_validator_feed(&v, data, size) && utf8_validator_is_complete(&v);
}

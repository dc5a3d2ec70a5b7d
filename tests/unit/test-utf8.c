/* SPDX-License-Identifier: MIT */
/*
 * The incremental UTF-8 validator: the boundary characters of every length,
 * each kind of invalid input (overlong, surrogate, past U+10FFFF, stray or
 * missing continuation bytes), every split point, the ASCII fast path at
 * every alignment, and every 1-, 2- and 3-byte sequence and every code point
 * against a straightforward decoder written from RFC 3629.
 */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "utf8.h"

typedef struct Case {
        const char *name;
        const char *bytes;
        size_t len;
        bool valid;
        bool prefix_ok; /* feed accepts all of it (only the end is missing) */
} Case;

#define C(name, s, valid, prefix)                     \
        {                                             \
                name, s, sizeof(s) - 1, valid, prefix \
        }

static const Case cases[] = {
    C("empty", "", true, true),
    C("ascii", "Hello, world", true, true),
    C("U+0080", "\xc2\x80", true, true),
    C("U+07FF", "\xdf\xbf", true, true),
    C("U+0800", "\xe0\xa0\x80", true, true),
    C("U+D7FF", "\xed\x9f\xbf", true, true),
    C("U+E000", "\xee\x80\x80", true, true),
    C("U+FFFF", "\xef\xbf\xbf", true, true),
    C("U+10000", "\xf0\x90\x80\x80", true, true),
    C("U+10FFFF", "\xf4\x8f\xbf\xbf", true, true),
    C("greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true, true),
    C("NUL is valid UTF-8", "a\0b", true, true),
    C("overlong 2-byte C0 80", "\xc0\x80", false, false),
    C("overlong 2-byte C1 BF", "\xc1\xbf", false, false),
    C("overlong 3-byte E0 80 80", "\xe0\x80\x80", false, false),
    C("overlong 3-byte E0 9F BF", "\xe0\x9f\xbf", false, false),
    C("overlong 4-byte F0 80 80 80", "\xf0\x80\x80\x80", false, false),
    C("overlong 4-byte F0 8F BF BF", "\xf0\x8f\xbf\xbf", false, false),
    C("surrogate U+D800", "\xed\xa0\x80", false, false),
    C("surrogate U+DFFF", "\xed\xbf\xbf", false, false),
    C("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", false, false),
    C("U+110000", "\xf4\x90\x80\x80", false, false),
    C("lead F5", "\xf5\x80\x80\x80", false, false),
    C("lead FF", "\xff", false, false),
    C("lead FE", "\xfe", false, false),
    C("stray continuation", "a\x80", false, false),
    C("stray continuation BF", "\xbf", false, false),
    C("missing continuation", "\xc2\x41", false, false),
    C("3-byte cut by ASCII", "\xe2\x82\x41", false, false),
    C("truncated 2-byte", "\xc2", false, true),
    C("truncated 3-byte", "\xe0\xa0", false, true),
    C("truncated 4-byte", "\xf0\x90\x80", false, true),
    C("valid then truncated", "Hello \xf4\x8f\xbf", false, true),
};

static bool run(const char *s, size_t len, size_t split, bool bytewise, bool *ret_prefix)
{
        Utf8Validator v;
        bool ok = true;

        utf8_validator_init(&v);
        if (bytewise) {
                for (size_t i = 0; i < len && ok; i++)
                        ok = utf8_validator_feed(&v, s + i, 1);
        } else {
                ok = utf8_validator_feed(&v, s, split) &&
                     utf8_validator_feed(&v, s + split, len - split);
        }
        *ret_prefix = ok;
        return utf8_validator_is_complete(&v);
}

static void test_cases(void)
{
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const Case *c = &cases[i];
                bool prefix, all_splits = true;

                is_int(utf8_is_valid(c->bytes, c->len), c->valid, "%s: whole", c->name);
                for (size_t k = 0; k <= c->len; k++) {
                        bool complete = run(c->bytes, c->len, k, false, &prefix);

                        if (complete != c->valid || prefix != c->prefix_ok)
                                all_splits = false;
                }
                ok(all_splits, "%s: same at every split point", c->name);
                is_int(run(c->bytes, c->len, 0, true, &prefix), c->valid, "%s: byte at a time",
                       c->name);
                is_int(prefix, c->prefix_ok, "%s: feed %s", c->name,
                       c->prefix_ok ? "accepts every byte" : "refuses");
        }
}

static void test_fail_fast(void)
{
        Utf8Validator v;

        utf8_validator_init(&v);
        ok(!utf8_validator_feed(&v, "\xed\xa0", 2), "surrogate refused at its second byte");
        ok(!utf8_validator_feed(&v, "a", 1), "a failed validator stays failed");
        ok(!utf8_validator_is_complete(&v), "a failed validator is not complete");
        utf8_validator_init(&v);
        ok(!utf8_validator_feed(&v, "\xf4\x90", 2), "U+110000 refused at its second byte");
        utf8_validator_init(&v);
        ok(!utf8_validator_feed(&v, "\xe0\x80", 2), "3-byte overlong refused at its second byte");
}

/* Every alignment of the 8-byte ASCII run and an invalid or multibyte byte. */
static void test_ascii_runs(void)
{
        char buf[80];
        bool good = true;

        for (size_t at = 0; at + 2 < sizeof(buf); at++) {
                memset(buf, 'x', sizeof(buf));
                buf[at] = (char) 0xff;
                if (utf8_is_valid(buf, sizeof(buf)))
                        good = false;
                buf[at] = (char) 0xc3;
                buf[at + 1] = (char) 0xa9;
                if (!utf8_is_valid(buf, sizeof(buf)))
                        good = false;
                buf[at + 1] = 'x';
                if (utf8_is_valid(buf, sizeof(buf)))
                        good = false;
        }
        ok(good, "invalid and 2-byte characters found at every offset of a long ASCII run");
}

/* RFC 3629 as a decoder: the code point at s, its length in *ret_len, or -1. */
static long reference_decode_one(const unsigned char *s, size_t len, size_t *ret_len)
{
        unsigned long cp;
        size_t need;

        if (s[0] < 0x80) {
                *ret_len = 1;
                return s[0];
        }
        if ((s[0] & 0xe0) == 0xc0)
                need = 2, cp = s[0] & 0x1f;
        else if ((s[0] & 0xf0) == 0xe0)
                need = 3, cp = s[0] & 0x0f;
        else if ((s[0] & 0xf8) == 0xf0)
                need = 4, cp = s[0] & 0x07;
        else
                return -1;
        if (len < need)
                return -1;
        for (size_t i = 1; i < need; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return -1;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000))
                return -1; /* overlong */
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return -1;
        *ret_len = need;
        return (long) cp;
}

static bool reference_valid(const unsigned char *s, size_t len)
{
        while (len > 0) {
                size_t n;

                if (reference_decode_one(s, len, &n) < 0)
                        return false;
                s += n;
                len -= n;
        }
        return true;
}

static size_t encode(unsigned long cp, unsigned char *out)
{
        if (cp < 0x80) {
                out[0] = (unsigned char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (unsigned char) (0xc0 | cp >> 6);
                out[1] = (unsigned char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (unsigned char) (0xe0 | cp >> 12);
                out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (unsigned char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (unsigned char) (0xf0 | cp >> 18);
        out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (unsigned char) (0x80 | (cp & 0x3f));
        return 4;
}

static void test_exhaustive(void)
{
        unsigned char s[4];
        unsigned long mismatches = 0, first_bad = 0;

        for (unsigned long cp = 0; cp <= 0x10ffff; cp++) {
                size_t n = encode(cp, s);
                bool expect = !(cp >= 0xd800 && cp <= 0xdfff);

                if (utf8_is_valid(s, n) != expect && mismatches++ == 0)
                        first_bad = cp;
        }
        is_int(mismatches, 0, "every code point: valid except surrogates (first bad U+%04lX)",
               first_bad);

        mismatches = 0;
        for (unsigned long v = 0; v < 0x100 + 0x10000 + 0x100000; v++) {
                size_t n;

                /* 1-byte inputs, then 2-byte, then the 3-byte ones that begin E0..EF. */
                if (v < 0x100) {
                        n = 1;
                        s[0] = (unsigned char) v;
                } else if (v < 0x10100) {
                        n = 2;
                        s[0] = (unsigned char) ((v - 0x100) >> 8);
                        s[1] = (unsigned char) (v - 0x100);
                } else {
                        unsigned long w = v - 0x10100;

                        n = 3;
                        s[0] = (unsigned char) (0xe0 | w >> 16);
                        s[1] = (unsigned char) (w >> 8);
                        s[2] = (unsigned char) w;
                }
                if (utf8_is_valid(s, n) != reference_valid(s, n) && mismatches++ == 0)
                        first_bad = v;
        }
        is_int(mismatches, 0,
               "every 1- and 2-byte input and 3-byte input led by E0..EF agrees with the "
               "reference (first bad %06lx)",
               first_bad);

        mismatches = 0;
        for (unsigned lead = 0xf0; lead <= 0xf7; lead++)
                for (unsigned second = 0; second <= 0xff; second++)
                        for (unsigned k = 0; k < 12; k++) {
                                static const unsigned char third[] = {0x7f, 0x80, 0xbf, 0xc0};
                                static const unsigned char fourth[] = {0x41, 0x80, 0xbf};

                                s[0] = (unsigned char) lead;
                                s[1] = (unsigned char) second;
                                s[2] = third[k % 4];
                                s[3] = fourth[k / 4];
                                if (utf8_is_valid(s, 4) != reference_valid(s, 4) &&
                                    mismatches++ == 0)
                                        first_bad = lead << 8 | second;
                        }
        is_int(mismatches, 0,
               "4-byte inputs led by F0..F7, every second byte, edge third and fourth bytes, "
               "agree with the reference (first bad %04lx)",
               first_bad);
}

int main(void)
{
        tap_init();
        test_cases();
        test_fail_fast();
        test_ascii_runs();
        test_exhaustive();
        return tap_done();
}

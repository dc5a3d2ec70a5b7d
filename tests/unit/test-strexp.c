/* SPDX-License-Identifier: MIT */
/*
 * strexp: ${name} substitution with input fed in pieces and output drained
 * through small buffers, the length-only mode, and each kind of bad template.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strexp.h"
#include "tap.h"
#include "util.h"

static const char long_value[] =
    "a-value-that-is-much-longer-than-sixteen-bytes-so-it-spans-several-output-buffers";

/* host=example.com, path=long_value, empty= (known, unset), fail= (lookup error). */
static int lookup(void *userdata, const char *name, const char **ret_value)
{
        unsigned *calls = userdata;

        (*calls)++;
        if (streq(name, "host"))
                *ret_value = "example.com";
        else if (streq(name, "path"))
                *ret_value = long_value;
        else if (streq(name, "empty"))
                *ret_value = NULL;
        else if (streq(name, "0123456789012345678901234567890"))
                *ret_value = "31";
        else if (streq(name, "fail"))
                return -EIO;
        else
                return -ENOENT;
        return 0;
}

/*
 * Expands template feeding chunk bytes at a time and draining through a buffer
 * of out_size bytes; returns the first error or 0, the result in *ret.
 */
static int expand_pieces(const char *template, size_t chunk, size_t out_size, char **ret, Strexp *e)
{
        size_t len = strlen(template), pos = 0, total = 0;
        char *result = calloc(1, 4096);
        char *buf = malloc(out_size);
        unsigned calls = 0;
        int r;

        strexp_init(e, lookup, &calls);
        for (;;) {
                size_t piece = MIN(chunk, len - pos), in_used = 0, out_used = 0;
                bool final = pos + piece == len;

                r = strexp_expand(e, template + pos, piece, final, buf, out_size, &in_used,
                                  &out_used);
                if (r < 0)
                        break;
                memcpy(result + total, buf, out_used);
                total += out_used;
                pos += in_used;
                if (r == STREXP_DONE && final) {
                        r = 0;
                        break;
                }
        }
        free(buf);
        if (r < 0) {
                free(result);
                return r;
        }
        *ret = result;
        return 0;
}

static void test_expand(void)
{
        static const struct {
                const char *template, *expect;
        } cases[] = {
            {"", ""},
            {"plain", "plain"},
            {"https://${host}/x", "https://example.com/x"},
            {"${host}", "example.com"},
            {"${host}${host}", "example.comexample.com"},
            {"a${empty}b", "ab"},
            {"/p/${path}/q", "/p/a-value-that-is-much-longer-than-sixteen-bytes-so-it-spans-"
                             "several-output-buffers/q"},
            {"cost $5", "cost $5"},
            {"$", "$"},
            {"$$", "$$"},
            {"$${host}", "$example.com"},
            {"a$}b{", "a$}b{"},
            {"trailing $", "trailing $"},
            {"${0123456789012345678901234567890}", "31"},
        };
        static const size_t chunks[] = {1, 2, 3, 7, 1000};
        static const size_t outs[] = {1, 5, 16, 4096};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                bool all = true;

                for (size_t c = 0; c < ELEMENTSOF(chunks); c++)
                        for (size_t o = 0; o < ELEMENTSOF(outs); o++) {
                                _cleanup_free_ char *got = NULL;
                                Strexp e;
                                int r =
                                    expand_pieces(cases[i].template, chunks[c], outs[o], &got, &e);

                                if (r < 0 || !streq(got, cases[i].expect)) {
                                        tap_diag("chunk %zu, out %zu: r=%d got \"%s\"", chunks[c],
                                                 outs[o], r, got ? got : "");
                                        all = false;
                                } else if (strexp_total(&e) != strlen(cases[i].expect)) {
                                        tap_diag("total %zu", strexp_total(&e));
                                        all = false;
                                }
                        }
                ok(all, "\"%s\" expands to \"%s\" in any pieces", cases[i].template,
                   cases[i].expect);
        }
}

static void test_sixteen(void)
{
        /* Drained through 16-byte buffers: each call fills the buffer completely. */
        const char *template = "x/${path}/${host}";
        unsigned calls = 0;
        char buf[16], result[256] = "";
        size_t in_used, out_used, pos = 0, total = 0, full = 0;
        Strexp e;
        int r;

        strexp_init(&e, lookup, &calls);
        do {
                r = strexp_expand(&e, template + pos, strlen(template) - pos, true, buf,
                                  sizeof(buf), &in_used, &out_used);
                if (r == STREXP_OUTPUT_FULL && out_used == sizeof(buf))
                        full++;
                memcpy(result + total, buf, out_used);
                total += out_used;
                pos += in_used;
        } while (r == STREXP_OUTPUT_FULL);
        is_int(r, STREXP_DONE, "16-byte buffers: done");
        result[total] = '\0';
        is_int(total, 2 + strlen(long_value) + 1 + strlen("example.com"),
               "16-byte buffers: length");
        is_int(full, total / 16, "16-byte buffers: every full call filled its buffer");
        ok(strncmp(result, "x/a-value", 9) == 0 && strstr(result, "/example.com"),
           "16-byte buffers: content");
        is_int(calls, 2, "each name is looked up once");
}

static void test_length(void)
{
        unsigned calls = 0;
        size_t len = 0, in_used = 0, out_used = 0;
        char *bad = NULL, *s = NULL;
        Strexp e;

        is_int(strexp_length("https://${host}/${path}", lookup, &calls, &len, NULL), 0,
               "length-only mode");
        is_int(len, strlen("https://example.com/") + strlen(long_value), "expanded length");

        strexp_init(&e, lookup, &calls);
        is_int(strexp_expand(&e, "ab${host}", 9, true, NULL, 0, &in_used, &out_used), STREXP_DONE,
               "NULL output counts without writing");
        is_int(out_used, 13, "counted length");

        is_int(strexp_expand_string("${host}:${empty}443", lookup, &calls, &s, NULL), 0,
               "expand to a new string");
        is_str(s, "example.com:443", "new string");
        free(s);

        is_int(strexp_length("${nope}", lookup, &calls, &len, &bad), -ENOENT,
               "length of an unknown name fails");
        is_str(bad, "nope", "the unknown name is returned");
        free(bad);
}

static void test_errors(void)
{
        static const struct {
                const char *template;
                int error;
                const char *name;
        } cases[] = {
            {"${unknown}", -ENOENT, "unknown"},
            {"x${host}${what}", -ENOENT, "what"},
            {"${", -EINVAL, ""},
            {"${host", -EINVAL, "host"},
            {"${}", -EINVAL, ""},
            {"${01234567890123456789012345678901}", -ENAMETOOLONG,
             "0123456789012345678901234567890"},
            {"${fail}", -EIO, "fail"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                bool all = true;

                for (size_t chunk = 1; chunk <= 3; chunk++) {
                        _cleanup_free_ char *got = NULL;
                        Strexp e;
                        int r = expand_pieces(cases[i].template, chunk, 16, &got, &e);

                        if (r != cases[i].error || !streq(strexp_name(&e), cases[i].name)) {
                                tap_diag("chunk %zu: r=%d name \"%s\"", chunk, r, strexp_name(&e));
                                all = false;
                        }
                }
                ok(all, "\"%s\" fails with %d naming \"%s\"", cases[i].template, cases[i].error,
                   cases[i].name);
        }

        {
                unsigned calls = 0;
                size_t in_used, out_used;
                char buf[16];
                Strexp e;

                strexp_init(&e, lookup, &calls);
                is_int(strexp_expand(&e, "${nope}", 7, true, buf, sizeof(buf), &in_used, &out_used),
                       -ENOENT, "unknown name");
                is_int(strexp_expand(&e, "x", 1, true, buf, sizeof(buf), &in_used, &out_used),
                       -EINVAL, "no use after an error");
        }
}

int main(void)
{
        tap_init();
        test_expand();
        test_sixteen();
        test_length();
        test_errors();
        return tap_done();
}

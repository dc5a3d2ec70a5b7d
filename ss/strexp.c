/* SPDX-License-Identifier: MIT */
/*
 * strexp: streaming "${name}" substitution (see strexp.h). A small state machine
 * over the input bytes; the only state carried between calls is the name being
 * collected and the part of a value not yet copied out.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strexp.h"
#include "util.h"

void strexp_init(Strexp *e, StrexpLookup lookup, void *userdata)
{
        assert(e);
        assert(lookup);

        *e = (Strexp){
            .lookup = lookup,
            .userdata = userdata,
            .state = STREXP_LITERAL,
        };
}

const char *strexp_name(const Strexp *e)
{
        return e->name;
}

size_t strexp_total(const Strexp *e)
{
        return e->total;
}

static int strexp_fail(Strexp *e, int r)
{
        e->state = STREXP_FAILED;
        return r;
}

/* How many bytes still fit in the output; SIZE_MAX when only counting. */
static size_t out_space(const char *out, size_t out_size, size_t used)
{
        if (!out)
                return SIZE_MAX;
        return out_size - used;
}

static void out_put(Strexp *e, char *out, size_t *used, const char *p, size_t n)
{
        if (out && n > 0)
                memcpy(out + *used, p, n);
        *used += n;
        e->total += n;
}

int strexp_expand(Strexp *e, const char *in, size_t in_len, bool final, char *out, size_t out_size,
                  size_t *ret_in_used, size_t *ret_out_used)
{
        size_t in_used = 0, out_used = 0;
        int r = STREXP_DONE;

        assert(e);
        assert(in || in_len == 0);

        if (e->state == STREXP_FAILED)
                return -EINVAL;

        for (;;) {
                size_t space = out_space(out, out_size, out_used);

                if (e->state == STREXP_VALUE) {
                        size_t n = MIN(space, e->value_len);

                        out_put(e, out, &out_used, e->value, n);
                        e->value += n;
                        e->value_len -= n;
                        if (e->value_len > 0) {
                                r = STREXP_OUTPUT_FULL;
                                break;
                        }
                        e->state = STREXP_LITERAL;
                        e->value = NULL;
                        continue;
                }

                if (e->dollar_pending) {
                        if (space == 0) {
                                r = STREXP_OUTPUT_FULL;
                                break;
                        }
                        out_put(e, out, &out_used, "$", 1);
                        e->dollar_pending = false;
                        continue;
                }

                if (in_used == in_len) {
                        if (!final)
                                break;
                        if (e->state == STREXP_DOLLAR) {
                                /* A "$" at the very end is literal. */
                                e->state = STREXP_LITERAL;
                                e->dollar_pending = true;
                                continue;
                        }
                        if (e->state == STREXP_NAME)
                                r = strexp_fail(e, -EINVAL);
                        break;
                }

                char c = in[in_used];

                switch (e->state) {
                case STREXP_LITERAL: {
                        /* Copy a run of plain bytes at once. */
                        const char *dollar = memchr(in + in_used, '$', in_len - in_used);
                        size_t run = (dollar ? (size_t) (dollar - in) : in_len) - in_used;

                        if (run == 0) {
                                e->state = STREXP_DOLLAR;
                                in_used++;
                                break;
                        }
                        if (space == 0) {
                                r = STREXP_OUTPUT_FULL;
                                goto out;
                        }
                        run = MIN(run, space);
                        out_put(e, out, &out_used, in + in_used, run);
                        in_used += run;
                        break;
                }
                case STREXP_DOLLAR:
                        if (c == '{') {
                                e->state = STREXP_NAME;
                                e->name_len = 0;
                                e->name[0] = '\0';
                                in_used++;
                        } else {
                                /* Not a reference: the "$" stands for itself. */
                                e->state = STREXP_LITERAL;
                                e->dollar_pending = true;
                        }
                        break;
                case STREXP_NAME: {
                        const char *value = NULL;

                        if (c != '}') {
                                if (e->name_len == STREXP_NAME_MAX) {
                                        r = strexp_fail(e, -ENAMETOOLONG);
                                        goto out;
                                }
                                e->name[e->name_len++] = c;
                                e->name[e->name_len] = '\0';
                                in_used++;
                                break;
                        }
                        in_used++;
                        if (e->name_len == 0) {
                                r = strexp_fail(e, -EINVAL);
                                goto out;
                        }
                        r = e->lookup(e->userdata, e->name, &value);
                        if (r < 0) {
                                r = strexp_fail(e, r);
                                goto out;
                        }
                        r = STREXP_DONE;
                        e->state = STREXP_VALUE;
                        e->value = value;
                        e->value_len = value ? strlen(value) : 0;
                        break;
                }
                case STREXP_VALUE:
                case STREXP_FAILED:
                        assert(false);
                        break;
                }
        }
out:
        if (ret_in_used)
                *ret_in_used = in_used;
        if (ret_out_used)
                *ret_out_used = out_used;
        return r;
}

static int strexp_run(const char *template, StrexpLookup lookup, void *userdata, char *out,
                      size_t out_size, size_t *ret_len, char **ret_bad_name)
{
        Strexp e;
        size_t len = strlen(template), used_in = 0, used_out = 0;
        int r;

        strexp_init(&e, lookup, userdata);
        r = strexp_expand(&e, template, len, true, out, out_size, &used_in, &used_out);
        if (r < 0) {
                if (r == -ENOENT && ret_bad_name) {
                        *ret_bad_name = strdup(e.name);
                        if (!*ret_bad_name)
                                return -ENOMEM;
                }
                return r;
        }
        if (r != STREXP_DONE)
                return -EAGAIN; /* a value grew between the two passes */
        *ret_len = used_out;
        return 0;
}

int strexp_length(const char *template, StrexpLookup lookup, void *userdata, size_t *ret_len,
                  char **ret_bad_name)
{
        assert(template);
        assert(ret_len);

        return strexp_run(template, lookup, userdata, NULL, 0, ret_len, ret_bad_name);
}

int strexp_expand_string(const char *template, StrexpLookup lookup, void *userdata, char **ret,
                         char **ret_bad_name)
{
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        assert(template);
        assert(ret);

        r = strexp_length(template, lookup, userdata, &len, ret_bad_name);
        if (r < 0)
                return r;
        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        r = strexp_run(template, lookup, userdata, buf, len, &len, ret_bad_name);
        if (r < 0)
                return r;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

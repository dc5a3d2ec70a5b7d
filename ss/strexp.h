/* SPDX-License-Identifier: MIT */
/*
 * strexp: "${name}" substitution from stream metadata, used on the endpoint and
 * http_url of a streamtype before connecting. It streams both ways: the template
 * may arrive in pieces and the output is drained through a caller buffer of any
 * size, so a long expansion never needs one big allocation. With a NULL output
 * buffer nothing is written and only the expanded length is counted.
 *
 * Rules: "$" not followed by "{" is literal; a name is 1..31 bytes up to "}";
 * a name the lookup does not know is an error; a known name without a value
 * expands to nothing; a template that ends inside "${" is an error.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define STREXP_NAME_MAX 31

/*
 * Looks a metadata name up. Returns 0 with *ret_value set (NULL when the name is
 * known but has no value), -ENOENT when the name is unknown, or another -errno
 * which the expansion returns as is. The value must stay valid until the
 * expansion is finished (strexp_expand() returned 0 with final set) or abandoned.
 */
typedef int (*StrexpLookup)(void *userdata, const char *name, const char **ret_value);

typedef enum StrexpState {
        STREXP_LITERAL,
        STREXP_DOLLAR, /* saw "$", not yet known whether "{" follows */
        STREXP_NAME,   /* inside "${...", collecting the name */
        STREXP_VALUE,  /* copying a looked-up value out */
        STREXP_FAILED,
} StrexpState;

typedef struct Strexp {
        StrexpLookup lookup;
        void *userdata;
        StrexpState state;
        char name[STREXP_NAME_MAX + 1];
        size_t name_len;
        const char *value; /* rest of the value still to be copied out */
        size_t value_len;
        bool dollar_pending; /* a literal "$" still to be copied out */
        size_t total;        /* bytes produced (or counted) so far */
} Strexp;

/* Return values of strexp_expand() that are not errors. */
enum {
        STREXP_DONE = 0,        /* all input consumed (and, when final, all output produced) */
        STREXP_OUTPUT_FULL = 1, /* out is full: drain it and call again with the rest */
};

void strexp_init(Strexp *e, StrexpLookup lookup, void *userdata);

/*
 * Expands in[0..in_len). Writes at most out_size bytes to out, or counts only
 * when out is NULL. *ret_in_used and *ret_out_used say how much was consumed and
 * produced by this call. Set final on the call carrying the last piece of input
 * (in_len may then be 0); it flushes a trailing "$" and checks for an
 * unterminated "${".
 *
 * Returns STREXP_DONE, STREXP_OUTPUT_FULL, or: -ENOENT (unknown name, see
 * strexp_name()), -ENAMETOOLONG (name over 31 bytes), -EINVAL ("${}" or input
 * ending inside "${"), or an error from the lookup. After an error the state is
 * STREXP_FAILED and further calls return -EINVAL.
 */
int strexp_expand(Strexp *e, const char *in, size_t in_len, bool final, char *out, size_t out_size,
                  size_t *ret_in_used, size_t *ret_out_used);

/* The name being expanded, or that caused the last error; "" when none. */
const char *strexp_name(const Strexp *e);

/* Total bytes produced so far (the expanded length once finished). */
size_t strexp_total(const Strexp *e);

/*
 * One-shot helpers on a NUL-terminated template. strexp_length() returns the
 * expanded length in *ret_len; strexp_expand_string() returns a new string.
 * On -ENOENT and when ret_bad_name is not NULL, *ret_bad_name is a copy of the
 * unknown name for the error message (free it).
 */
int strexp_length(const char *template, StrexpLookup lookup, void *userdata, size_t *ret_len,
                  char **ret_bad_name);
int strexp_expand_string(const char *template, StrexpLookup lookup, void *userdata, char **ret,
                         char **ret_bad_name);

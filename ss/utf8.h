/* SPDX-License-Identifier: MIT */
/*
 * Incremental UTF-8 validation (RFC 3629, Unicode table 3-7), for WebSocket
 * text messages (RFC 6455 8.1: checked across fragments, failing as soon as
 * the bytes seen cannot start valid UTF-8) and MQTT strings. Rejects
 * overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF,
 * stray continuation bytes and truncated sequences.
 *
 * A validator is a few bytes, embedded where needed: input may be fed in
 * pieces split anywhere, even inside a character, with the same outcome.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Utf8Validator {
        uint8_t need;  /* continuation bytes still expected for this character */
        uint8_t lower; /* the range the next continuation byte must be in */
        uint8_t upper;
        bool failed;
} Utf8Validator;

void utf8_validator_init(Utf8Validator *v);

/*
 * Checks the next piece. Returns false when the input so far can no longer be
 * valid UTF-8; the validator then stays failed.
 */
bool utf8_validator_feed(Utf8Validator *v, const void *data, size_t size);

/* The input so far is valid UTF-8 and ends on a character boundary. */
bool utf8_validator_is_complete(const Utf8Validator *v);

/* The whole of data is valid UTF-8. */
bool utf8_is_valid(const void *data, size_t size);

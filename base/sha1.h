/* SPDX-License-Identifier: MIT */
/*
 * SHA-1 (FIPS 180-4, section 6.1), for the one place a protocol still asks for
 * it: the WebSocket handshake's Sec-WebSocket-Accept (RFC 6455 4.2.2). It is
 * here so that plain ws needs no crypto library; it is not for anything that
 * must resist collisions.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_SIZE 20
#define SHA1_BLOCK_SIZE  64

typedef struct Sha1 {
        uint32_t h[5];
        uint64_t length; /* bytes hashed so far */
        uint8_t block[SHA1_BLOCK_SIZE];
        size_t n_block; /* bytes waiting in block */
} Sha1;

void sha1_init(Sha1 *s);
void sha1_update(Sha1 *s, const void *data, size_t size);
/* Pad, write the digest; s must be initialised again before further use. */
void sha1_final(Sha1 *s, uint8_t digest[static SHA1_DIGEST_SIZE]);

/* The digest of one buffer. */
void sha1(const void *data, size_t size, uint8_t digest[static SHA1_DIGEST_SIZE]);

/* SPDX-License-Identifier: MIT */
/*
 * SHA-1 as FIPS 180-4 describes it: 512-bit blocks, an 80-word message
 * schedule, four groups of twenty rounds, big-endian words throughout.
 */
#include <assert.h>
#include <string.h>

#include "sha1.h"

static uint32_t rotl(uint32_t x, unsigned n)
{
        return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

/* FIPS 180-4 6.1.2: one block into the hash value. */
static void compress(uint32_t h[static 5], const uint8_t block[static SHA1_BLOCK_SIZE])
{
        uint32_t w[80], a, b, c, d, e;

        for (unsigned t = 0; t < 16; t++)
                w[t] = load_be32(block + 4 * t);
        for (unsigned t = 16; t < 80; t++)
                w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

        a = h[0];
        b = h[1];
        c = h[2];
        d = h[3];
        e = h[4];
        for (unsigned t = 0; t < 80; t++) {
                uint32_t f, k, temp;

                if (t < 20) {
                        f = (b & c) ^ (~b & d); /* Ch */
                        k = 0x5a827999;
                } else if (t < 40) {
                        f = b ^ c ^ d; /* Parity */
                        k = 0x6ed9eba1;
                } else if (t < 60) {
                        f = (b & c) ^ (b & d) ^ (c & d); /* Maj */
                        k = 0x8f1bbcdc;
                } else {
                        f = b ^ c ^ d;
                        k = 0xca62c1d6;
                }
                temp = rotl(a, 5) + f + e + k + w[t];
                e = d;
                d = c;
                c = rotl(b, 30);
                b = a;
                a = temp;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
}

void sha1_init(Sha1 *s)
{
        assert(s);
        /* FIPS 180-4 5.3.1 */
        *s = (Sha1){.h = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0}};
}

void sha1_update(Sha1 *s, const void *data, size_t size)
{
        const uint8_t *p = data;

        assert(s);
        assert(p || size == 0);
        s->length += size;
        if (s->n_block > 0) {
                size_t n = SHA1_BLOCK_SIZE - s->n_block;

                if (n > size)
                        n = size;
                memcpy(s->block + s->n_block, p, n);
                s->n_block += n;
                p += n;
                size -= n;
                if (s->n_block < SHA1_BLOCK_SIZE)
                        return;
                compress(s->h, s->block);
                s->n_block = 0;
        }
        for (; size >= SHA1_BLOCK_SIZE; p += SHA1_BLOCK_SIZE, size -= SHA1_BLOCK_SIZE)
                compress(s->h, p);
        if (size > 0) {
                memcpy(s->block, p, size);
                s->n_block = size;
        }
}

void sha1_final(Sha1 *s, uint8_t digest[static SHA1_DIGEST_SIZE])
{
        uint64_t bits;

        assert(s);
        assert(digest);
        bits = s->length * 8;
        /* FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, the length in bits. */
        s->block[s->n_block++] = 0x80;
        if (s->n_block > SHA1_BLOCK_SIZE - 8) {
                memset(s->block + s->n_block, 0, SHA1_BLOCK_SIZE - s->n_block);
                compress(s->h, s->block);
                s->n_block = 0;
        }
        memset(s->block + s->n_block, 0, SHA1_BLOCK_SIZE - 8 - s->n_block);
        store_be32(s->block + SHA1_BLOCK_SIZE - 8, (uint32_t) (bits >> 32));
        store_be32(s->block + SHA1_BLOCK_SIZE - 4, (uint32_t) bits);
        compress(s->h, s->block);
        for (unsigned i = 0; i < 5; i++)
                store_be32(digest + 4 * i, s->h[i]);
        /* Nothing of the message stays behind in the state. */
        memset(s, 0, sizeof(*s));
}

void sha1(const void *data, size_t size, uint8_t digest[static SHA1_DIGEST_SIZE])
{
        Sha1 s;

        sha1_init(&s);
        sha1_update(&s, data, size);
        sha1_final(&s, digest);
}

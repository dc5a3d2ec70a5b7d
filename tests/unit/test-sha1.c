/* SPDX-License-Identifier: MIT */
/*
 * base/sha1.c: the examples of FIPS 180-4 (one block, two blocks, a million
 * "a"), the tests of RFC 3174 section 7.3, the empty message, lengths around
 * the padding boundary (55, 56, 63, 64 bytes...) against digests computed by
 * another implementation, every split of a message across updates, and the
 * opening handshake example of RFC 6455 (section 1.3) through
 * ws_handshake_accept().
 */
#include <stdio.h>
#include <string.h>

#include "sha1.h"
#include "tap.h"
#include "ws-frame.h"

static void hex(const uint8_t digest[static SHA1_DIGEST_SIZE], char out[static 41])
{
        for (size_t i = 0; i < SHA1_DIGEST_SIZE; i++)
                snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* The digest of data repeated count times, fed in pieces of the data's size. */
static void digest_repeated(const char *data, size_t count, char out[static 41])
{
        uint8_t digest[SHA1_DIGEST_SIZE];
        Sha1 s;

        sha1_init(&s);
        for (size_t i = 0; i < count; i++)
                sha1_update(&s, data, strlen(data));
        sha1_final(&s, digest);
        hex(digest, out);
}

static void test_published_vectors(void)
{
        static const struct {
                const char *name, *data;
                size_t count;
                const char *digest;
        } vectors[] = {
            {"FIPS 180-4 one block abc", "abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
            {"FIPS 180-4 two blocks (448 bits)",
             "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
             "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
            {"FIPS 180-2 896-bit message",
             "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmno"
             "pqr"
             "lmnopqrsmnopqrstnopqrstu",
             1, "a49b2446a02c645bf419f995b67091253a04a259"},
            {"FIPS 180-4 one million a", "a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
            {"RFC 3174 TEST4 (01234567 x 80)", "01234567", 80,
             "dea356a2cddd90c7a7ecedc5ebb563934f460452"},
            {"empty message", "", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        };
        char got[41];

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                digest_repeated(vectors[i].data, vectors[i].count, got);
                is_str(got, vectors[i].digest, "%s", vectors[i].name);
        }
}

/* Bytes 0, 1, 2... of length n: where the 0x80 and the length fall in the last blocks. */
static void test_padding_boundaries(void)
{
        static const struct {
                size_t length;
                const char *digest;
        } cases[] = {
            {55, "8ae2d46729cfe68ff927af5eec9c7d1b66d65ac2"},
            {56, "636e2ec698dac903498e648bd2f3af641d3c88cb"},
            {57, "7cb1330f35244b57437539253304ea78a6b7c443"},
            {63, "6d942da0c4392b123528f2905c713a3ce28364bd"},
            {64, "c6138d514ffa2135bfce0ed0b8fac65669917ec7"},
            {65, "69bd728ad6e13cd76ff19751fde427b00e395746"},
            {119, "41c89d06001bab4ab78736b44efe7ce18ce6ae08"},
            {120, "d3dbd653bd8597b7475321b60a36891278e6a04a"},
            {128, "e6434bc401f98603d7eda504790c98c67385d535"},
            {1000, "af0b191c2de46fe13fe0908f5a6a4e90e0cafc46"},
        };
        uint8_t data[1000], digest[SHA1_DIGEST_SIZE];
        char got[41];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) i;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sha1(data, cases[i].length, digest);
                hex(digest, got);
                is_str(got, cases[i].digest, "%zu bytes", cases[i].length);
        }
}

/* Three updates at every pair of split points give the one-shot digest. */
static void test_every_split(void)
{
        uint8_t data[150], whole[SHA1_DIGEST_SIZE], pieces[SHA1_DIGEST_SIZE];
        size_t bad = 0;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 7 + 3);
        sha1(data, sizeof(data), whole);
        for (size_t a = 0; a <= sizeof(data); a++)
                for (size_t b = a; b <= sizeof(data); b++) {
                        Sha1 s;

                        sha1_init(&s);
                        sha1_update(&s, data, a);
                        sha1_update(&s, data + a, b - a);
                        sha1_update(&s, data + b, sizeof(data) - b);
                        sha1_final(&s, pieces);
                        if (memcmp(whole, pieces, sizeof(whole)) != 0)
                                bad++;
                }
        is_int(bad, 0, "every split of 150 bytes into three updates gives the same digest");
}

static void test_websocket_accept(void)
{
        static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
        static const char input[] = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        uint8_t digest[SHA1_DIGEST_SIZE];
        char accept[WS_ACCEPT_LENGTH + 1], got[41];

        sha1(input, strlen(input), digest);
        hex(digest, got);
        /* RFC 6455 1.3 gives the SHA-1 of key and GUID as bytes. */
        is_str(got, "b37a4f2cc0624f1690f64606cf385945b2bec4ea",
               "RFC 6455 1.3 SHA-1 of key and GUID");
        is_int(ws_handshake_accept(key, accept), 0, "ws_handshake_accept() of the RFC 6455 key");
        is_str(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "the RFC 6455 1.3 Sec-WebSocket-Accept");
}

int main(void)
{
        tap_init();
        test_published_vectors();
        test_padding_boundaries();
        test_every_split();
        test_websocket_accept();
        return tap_done();
}

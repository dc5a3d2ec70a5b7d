/* SPDX-License-Identifier: MIT */
/*
 * An output byte buffer for a non-blocking socket: frames are encoded straight
 * into its tail and written out with as few system calls as possible. Used by
 * both ends of the local socket (the agent's server and libsmd).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct OutBuffer {
        uint8_t *data;
        size_t off;  /* first byte not yet written */
        size_t len;  /* end of the bytes queued */
        size_t size; /* allocated */
        size_t max;  /* most bytes it may hold queued; 0: no limit */
} OutBuffer;

/* Room for n more bytes at the tail; returns the tail or NULL (-ENOMEM/-ENOBUFS in *ret_error). */
uint8_t *outbuf_reserve(OutBuffer *b, size_t n, int *ret_error);
static inline void outbuf_commit(OutBuffer *b, size_t n)
{
        b->len += n;
}
static inline size_t outbuf_pending(const OutBuffer *b)
{
        return b->len - b->off;
}
/* Write what the socket takes: 1 when all went, 0 when the socket is full, or -errno. */
int outbuf_write(OutBuffer *b, int fd);
/* Forget queued bytes (the connection went away). */
void outbuf_clear(OutBuffer *b);
/* Free the storage when empty and larger than keep (a burst is over). */
void outbuf_trim(OutBuffer *b, size_t keep);
void outbuf_deinit(OutBuffer *b);

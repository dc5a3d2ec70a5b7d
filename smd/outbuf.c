/* SPDX-License-Identifier: MIT */
/*
 * Output buffer (see outbuf.h).
 */
#include "outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

uint8_t *outbuf_reserve(OutBuffer *b, size_t n, int *ret_error)
{
        size_t size;
        uint8_t *p;

        if (b->off == b->len)
                b->off = b->len = 0;
        if (b->len + n <= b->size)
                return b->data + b->len;
        if (b->off > 0) {
                memmove(b->data, b->data + b->off, b->len - b->off);
                b->len -= b->off;
                b->off = 0;
                if (b->len + n <= b->size)
                        return b->data + b->len;
        }
        if (b->max && b->len + n > b->max) {
                *ret_error = -ENOBUFS;
                return NULL;
        }
        size = MAX(b->len + n, b->size * 2);
        p = realloc(b->data, size);
        if (!p) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        b->data = p;
        b->size = size;
        return b->data + b->len;
}

int outbuf_write(OutBuffer *b, int fd)
{
        while (b->off < b->len) {
                ssize_t n =
                    send(fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                b->off += (size_t) n;
        }
        b->off = b->len = 0;
        return 1;
}

void outbuf_clear(OutBuffer *b)
{
        b->off = b->len = 0;
}

void outbuf_trim(OutBuffer *b, size_t keep)
{
        if (b->off == b->len && b->size > keep) {
                b->data = mfree(b->data);
                b->size = b->off = b->len = 0;
        }
}

void outbuf_deinit(OutBuffer *b)
{
        b->data = mfree(b->data);
        b->size = b->off = b->len = 0;
}

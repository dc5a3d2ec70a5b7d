/* SPDX-License-Identifier: MIT */
/*
 * limit-bench: the physical limit for bench/smd-vs-mosquitto. One writer
 * process fans the very frames the agent sends (RX_PAYLOAD: 3-byte frame
 * header, 16-byte payload prefix, 16-byte smd header, payload) out over unix
 * socketpairs to reader processes, with no broker, no queue and no loss: it
 * gathers as many frames as fit in 16 KiB (the agent's batch size) and writes
 * the batch to each reader in turn with blocking writes. Readers parse the
 * frames as a client would. When paced (--rate), every frame is written on
 * its own unless the writer fell behind, when it sends what is due in one
 * batch: the latency floor of one write and one wakeup per reader.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-util.h"

#define BATCH_BYTES   (16u * 1024u)
#define FRAME_RX      0x55u
#define FRAME_PREFIX  (3u + 16u)
#define SMD_HEADER    16u
#define FRAME_SOM_EOM 3u

typedef struct Limit {
        int (*pairs)[2]; /* [0] writer end, [1] reader end */
        unsigned n;
} Limit;

static void be16_put(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static void be32_put(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (24 - 8 * i));
}

static void be64_put(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (56 - 8 * i));
}

static int limit_prepare(const BenchOptions *o, void **ret_state)
{
        Limit *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->pairs = calloc(o->subscribers, sizeof(*l->pairs));
        if (!l->pairs)
                return -ENOMEM;
        for (; l->n < o->subscribers; l->n++)
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->pairs[l->n]) < 0)
                        return -errno;
        *ret_state = l;
        return 0;
}

static int limit_subscribe(const BenchOptions *o, BenchShared *shared, unsigned index, void *state)
{
        BenchSubscriber *result = &shared->subscribers[index];
        Limit *l = state;
        static uint8_t buf[64 * 1024];
        size_t len = 0;
        int fd = l->pairs[index][1];

        for (unsigned i = 0; i < l->n; i++) {
                close(l->pairs[i][0]);
                if (i != index)
                        close(l->pairs[i][1]);
        }
        bench_ready();
        while (!bench_subscriber_finished(o, shared, result)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                size_t off = 0;
                ssize_t n;

                if (poll(&p, 1, 50) <= 0)
                        continue;
                n = read(fd, buf + len, sizeof(buf) - len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : 0;
                len += (size_t) n;
                while (len - off >= 3) {
                        size_t body = (size_t) buf[off + 1] << 8 | buf[off + 2];

                        if (buf[off] != FRAME_RX || body < 16 + SMD_HEADER)
                                return -EBADMSG;
                        if (len - off < 3 + body)
                                break;
                        bench_record(shared, result, buf + off + FRAME_PREFIX + SMD_HEADER,
                                     body - 16 - SMD_HEADER, 0);
                        off += 3 + body;
                }
                memmove(buf, buf + off, len - off);
                len -= off;
        }
        close(fd);
        return 0;
}

static size_t frame_put(uint8_t *out, const BenchOptions *o, uint64_t seq, uint8_t *payload)
{
        size_t body = 16 + SMD_HEADER + o->size;
        uint64_t now;

        memcpy(payload, &seq, sizeof(seq));
        bench_payload_stamp(payload);
        memcpy(&now, payload + 8, sizeof(now));
        out[0] = FRAME_RX;
        be16_put(out + 1, (uint16_t) body);
        be32_put(out + 3, FRAME_SOM_EOM);
        be32_put(out + 7, 0);
        be64_put(out + 11, now / 1000);
        be64_put(out + FRAME_PREFIX, 1u << 24);
        be64_put(out + FRAME_PREFIX + 8, now / 1000);
        memcpy(out + FRAME_PREFIX + SMD_HEADER, payload, o->size);
        return 3 + body;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int limit_publish(const BenchOptions *o, BenchShared *shared, void *state)
{
        Limit *l = state;
        size_t frame = FRAME_PREFIX + SMD_HEADER + o->size;
        size_t per_batch = BATCH_BYTES / frame;
        uint8_t *batch = malloc(per_batch * frame);
        uint8_t payload[BENCH_PAYLOAD_MAX];
        uint64_t start = bench_now_ns(), i = 0;
        int r = 0;

        if (!batch)
                return -ENOMEM;
        for (unsigned k = 0; k < l->n; k++)
                close(l->pairs[k][1]);
        bench_payload_fill(payload, o->size, 0);
        while (r >= 0 && i < o->count && !bench_publisher_expired(o, start)) {
                size_t len = 0;

                bench_pace(o, start, i);
                /* Paced: send what is due now, one frame unless we fell behind. */
                for (size_t k = 0; k < per_batch && i < o->count && bench_due(o, start, i);
                     k++, i++)
                        len += frame_put(batch + len, o, i, payload);
                for (unsigned k = 0; k < l->n && r >= 0; k++)
                        r = write_all(l->pairs[k][0], batch, len);
        }
        shared->published = i;
        for (unsigned k = 0; k < l->n; k++)
                close(l->pairs[k][0]);
        free(batch);
        return r;
}

int main(int argc, char **argv)
{
        static const BenchClient client = {
            .name = "limit",
            .prepare = limit_prepare,
            .subscribe = limit_subscribe,
            .publish = limit_publish,
        };

        return bench_main(argc, argv, &client);
}

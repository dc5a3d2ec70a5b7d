/* SPDX-License-Identifier: MIT */
/*
 * libsmd Secure Streams (see include/smd/smd.h): the client half of the SS
 * proxy serialization for any policy streamtype. The agent runs the onward
 * stream; this side keeps what must survive a lost link to the agent (the
 * metadata set, a pending connect, a pending timeout) and sends it again
 * when the link is back, once a second while the agent is away.
 *
 * Flow control: payload is pulled from the tx callback only while the output
 * buffer holds less than the buffer size the agent announced; received
 * payload is read only from smd_stream_process(), so an application that does
 * not call it stops the agent's reading of the onward connection.
 *
 * Send credit: the agent's TXCR_UPDATE frames are additions to the credit it
 * reported before; their sum is the onward stream's credit. It is unknown
 * (-1) until the first one, and again after DISCONNECTED or a lost link,
 * where the agent starts its count from zero too.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "libsmd-link.h"
#include "outbuf.h"
#include "smd/smd.h"
#include "util.h"

#define _public_ __attribute__((visibility("default")))

#define STREAM_OPEN_TIMEOUT_USEC  (5 * USEC_PER_SEC)
#define STREAM_RETRY_USEC         USEC_PER_SEC
#define STREAM_METADATA_MAX       32u
#define STREAM_METADATA_NAME_MAX  31u
#define STREAM_METADATA_VALUE_MAX 4096u
#define STREAM_TX_CHUNK           16384u
#define STREAM_BUFFER_DEFAULT     (32u * 1024u)

static _Thread_local char new_error[256];

typedef enum StreamLink {
        STREAM_LINK_DOWN,
        STREAM_LINK_OPENING, /* STREAMTYPE sent, waiting for CREATE_RESULT */
        STREAM_LINK_UP,
} StreamLink;

typedef struct StreamMetadata {
        char name[STREAM_METADATA_NAME_MAX + 1];
        char *value; /* NUL-terminated copy; NULL: none */
        size_t len;
} StreamMetadata;

struct smd_stream {
        char *path;
        char *streamtype;
        int fd;
        StreamLink link;
        bool link_retry_reported; /* UPSTREAM_LINK_RETRY delivered for this outage */
        uint64_t retry_at;
        LinkInput in;
        OutBuffer out;
        LinkEvent event;
        uint32_t buffer_size; /* announced by the agent */
        bool creating;        /* inside smd_stream_new() */
        int refused;          /* -errno of a refused open, 0 */

        smd_stream_rx_t rx;
        smd_stream_tx_t tx;
        smd_stream_state_t state;
        void *userdata;
        unsigned in_callback;
        bool destroy_requested;

        /* Wishes to carry over link losses. */
        bool connect_pending;  /* send ONWARD_CONNECT when up */
        bool in_transaction;   /* asked to connect or sent payload, no end state yet */
        bool tx_wanted;        /* pull from tx */
        bool tx_requested;     /* request_tx during a tx callback: the next message */
        bool tx_len_requested; /* ... and it was request_tx_len */
        bool tx_in_message;    /* SOM sent, EOM not yet */
        bool has_tx_len, tx_len_sent;
        uint64_t tx_len;
        bool has_timeout;
        uint32_t timeout_ms;

        StreamMetadata metadata[STREAM_METADATA_MAX];
        size_t n_metadata;

        int64_t tx_credit; /* -1: unknown */

        uint8_t *tx_buf;
        char error[256];
};

static void stream_update_sources(smd_stream *s);

static void set_error(smd_stream *s, const char *fmt, const char *detail, size_t len)
{
        snprintf(s->error, sizeof(s->error), "%s%.*s", fmt, (int) MIN(len, (size_t) 200),
                 detail ? detail : "");
}

/* Queue one frame of n bytes made by encode; -ENOBUFS when the buffer is full. */
static uint8_t *stream_reserve(smd_stream *s, size_t n, int *ret_error)
{
        return outbuf_reserve(&s->out, n, ret_error);
}

static int send_empty(smd_stream *s, uint8_t type)
{
        int r = 0;
        uint8_t *o = stream_reserve(s, FRAME_HEADER_SIZE, &r);

        if (!o)
                return r;
        outbuf_commit(&s->out, (size_t) frame_encode_empty(o, type));
        return 0;
}

static int send_u32(smd_stream *s, uint8_t type, uint32_t v)
{
        int r = 0;
        uint8_t *o = stream_reserve(s, FRAME_HEADER_SIZE + 4, &r);

        if (!o)
                return r;
        outbuf_commit(&s->out, (size_t) frame_encode_u32(o, type, v));
        return 0;
}

static int send_metadata(smd_stream *s, const StreamMetadata *m)
{
        size_t n = FRAME_HEADER_SIZE + 1 + strlen(m->name) + m->len;
        int r = 0;
        uint8_t *o = stream_reserve(s, n, &r);

        if (!o)
                return r;
        r = frame_encode_metadata(o, n, FRAME_TX_METADATA, m->name, m->value, m->len);
        if (r < 0)
                return r;
        outbuf_commit(&s->out, (size_t) r);
        return 0;
}

/* Deliver a state; returns what the callback said. */
static int deliver_state(smd_stream *s, int state, uint32_t ack)
{
        int r;

        if (!s->state)
                return SMD_SS_OK;
        s->in_callback++;
        r = s->state(s, s->userdata, state, ack);
        s->in_callback--;
        if (r == SMD_SS_DESTROY_ME)
                s->destroy_requested = true;
        return r;
}

static void link_close(smd_stream *s)
{
        s->fd = safe_close(s->fd);
        s->link = STREAM_LINK_DOWN;
        s->tx_credit = -1;
        s->in.len = 0;
        outbuf_clear(&s->out);
        s->retry_at = now_usec(CLOCK_MONOTONIC) + STREAM_RETRY_USEC;
}

/* The agent went away (or never answered): retry each second, tell the application once. */
static void link_lost(smd_stream *s, const char *why)
{
        link_close(s);
        if (why)
                set_error(s, "link to the agent lost: ", why, strlen(why));
        /* What the agent's stream was doing is lost with it: do it again when back. */
        if (s->in_transaction)
                s->connect_pending = true;
        if (s->tx_in_message) {
                s->tx_in_message = false;
                s->tx_wanted = true;
        }
        s->tx_len_sent = false;
        if (!s->link_retry_reported) {
                s->link_retry_reported = true;
                (void) deliver_state(s, SMD_SS_STATE_UPSTREAM_LINK_RETRY, 0);
        }
}

static int link_open(smd_stream *s)
{
        size_t n = FRAME_HEADER_SIZE + 9 + strlen(s->streamtype);
        int fd = link_socket_connect(s->path), r = 0;
        uint8_t *o;

        if (fd < 0)
                return fd;
        s->fd = fd;
        s->link = STREAM_LINK_OPENING;
        o = stream_reserve(s, n, &r);
        if (!o)
                return r;
        r = frame_encode_streamtype(o, (uint32_t) getpid(), 0, s->streamtype);
        if (r < 0)
                return r;
        outbuf_commit(&s->out, (size_t) r);
        r = outbuf_write(&s->out, s->fd);
        return r < 0 ? r : 0;
}

/* CREATE_RESULT said yes: replay what the application set. */
static void link_up(smd_stream *s, uint32_t buffer_size)
{
        s->link = STREAM_LINK_UP;
        s->link_retry_reported = false;
        s->buffer_size = buffer_size ? MIN(buffer_size, 4u * 1024u * 1024u) : STREAM_BUFFER_DEFAULT;
        s->out.max = (size_t) s->buffer_size * 2 + 2 * STREAM_METADATA_MAX * 4200u;
        for (size_t i = 0; i < s->n_metadata; i++)
                if (s->metadata[i].value)
                        (void) send_metadata(s, &s->metadata[i]);
        if (s->has_timeout)
                (void) send_u32(s, FRAME_TIMEOUT_UPDATE, s->timeout_ms);
        if (s->has_tx_len && s->tx_wanted) {
                (void) send_u32(s, FRAME_PAYLOAD_LENGTH_HINT,
                                (uint32_t) MIN(s->tx_len, UINT32_MAX));
                s->tx_len_sent = true;
        }
        if (s->connect_pending) {
                s->connect_pending = false;
                (void) send_empty(s, FRAME_ONWARD_CONNECT);
        }
}

static StreamMetadata *metadata_find(smd_stream *s, const char *name, size_t len, bool create)
{
        for (size_t i = 0; i < s->n_metadata; i++)
                if (strlen(s->metadata[i].name) == len &&
                    memcmp(s->metadata[i].name, name, len) == 0)
                        return &s->metadata[i];
        if (!create || s->n_metadata == STREAM_METADATA_MAX || len == 0 ||
            len > STREAM_METADATA_NAME_MAX)
                return NULL;
        memcpy(s->metadata[s->n_metadata].name, name, len);
        s->metadata[s->n_metadata].name[len] = 0;
        return &s->metadata[s->n_metadata++];
}

static int metadata_store(StreamMetadata *m, const void *value, size_t len)
{
        char *v = malloc(len + 1);

        if (!v)
                return -ENOMEM;
        if (len)
                memcpy(v, value, len);
        v[len] = 0;
        free(m->value);
        m->value = v;
        m->len = len;
        return 0;
}

static void on_frame(smd_stream *s, const Frame *f)
{
        switch ((FrameType) f->type) {
        case FRAME_CREATE_RESULT:
                if (s->link != STREAM_LINK_OPENING)
                        break;
                if (f->create_result.result != 0) {
                        set_error(s, "the agent refused the stream: ", f->create_result.reason,
                                  f->create_result.reason_len);
                        s->refused = f->create_result.result == 2   ? -ENOENT
                                     : f->create_result.result == 3 ? -EPROTONOSUPPORT
                                     : f->create_result.result == 1 ? -EACCES
                                                                    : -ENOMEM;
                        /* Retried each second (a policy reload may bring it). */
                        if (s->creating)
                                link_close(s);
                        else
                                link_lost(s, NULL);
                        return;
                }
                s->refused = 0;
                link_up(s, f->create_result.has_buffer_size ? f->create_result.buffer_size : 0);
                return;
        case FRAME_RX_PAYLOAD:
                if (s->link != STREAM_LINK_UP)
                        break;
                if (s->rx) {
                        int r;

                        s->in_callback++;
                        r = s->rx(s, s->userdata, f->payload.data, f->payload.size,
                                  f->payload.flags & (SMD_SS_FLAG_SOM | SMD_SS_FLAG_EOM));
                        s->in_callback--;
                        if (r == SMD_SS_DESTROY_ME)
                                s->destroy_requested = true;
                }
                return;
        case FRAME_CONNSTATE:
                if (s->link != STREAM_LINK_UP)
                        break;
                switch (f->connstate.state) {
                case SMD_SS_STATE_QOS_ACK_REMOTE:
                case SMD_SS_STATE_QOS_NACK_REMOTE:
                case SMD_SS_STATE_ALL_RETRIES_FAILED:
                case SMD_SS_STATE_DISCONNECTED:
                case SMD_SS_STATE_TIMEOUT:
                        s->in_transaction = false;
                        if (f->connstate.state == SMD_SS_STATE_DISCONNECTED)
                                s->tx_credit = -1;
                        break;
                case SMD_SS_STATE_DESTROYING:
                        /* The agent is going away, or dropped its stream: link again. */
                        link_lost(s, "the agent destroyed the stream");
                        return;
                }
                (void) deliver_state(s, (int) f->connstate.state, f->connstate.ack);
                return;
        case FRAME_RX_METADATA: {
                StreamMetadata *m;

                if (s->link != STREAM_LINK_UP)
                        break;
                m = metadata_find(s, f->metadata.name, f->metadata.name_len, true);
                if (m && f->metadata.value_len <= STREAM_METADATA_VALUE_MAX)
                        (void) metadata_store(m, f->metadata.value, f->metadata.value_len);
                return;
        }
        case FRAME_RX_CREDIT: {
                int64_t c = (s->tx_credit < 0 ? 0 : s->tx_credit) + f->credit;

                if (s->link != STREAM_LINK_UP)
                        break;
                s->tx_credit = MAX(MIN(c, (int64_t) INT32_MAX), (int64_t) 0);
                return;
        }
        case FRAME_STREAMTYPE:
        case FRAME_ONWARD_CONNECT:
        case FRAME_DESTROYING:
        case FRAME_TX_PAYLOAD:
        case FRAME_TX_METADATA:
        case FRAME_TX_CREDIT:
        case FRAME_TIMEOUT_UPDATE:
        case FRAME_PAYLOAD_LENGTH_HINT:
                break;
        }
        link_lost(s, "unexpected frame from the agent");
}

static void stream_read(smd_stream *s)
{
        for (int round = 0; round < 16 && s->link != STREAM_LINK_DOWN && !s->destroy_requested;
             round++) {
                ssize_t n = link_input_recv(&s->in, s->fd);
                size_t off = 0;

                if (n == -EAGAIN)
                        return;
                if (n <= 0) {
                        link_lost(s,
                                  n == 0 ? "the agent closed the connection" : strerror((int) -n));
                        return;
                }
                while (s->link != STREAM_LINK_DOWN && !s->destroy_requested) {
                        Frame f;
                        size_t used;
                        int r = frame_parse(s->in.data + off, s->in.len - off, FRAME_TO_CLIENT, &f,
                                            &used);

                        if (r < 0) {
                                link_lost(s, "invalid frame from the agent");
                                return;
                        }
                        if (r == 0)
                                break;
                        off += used;
                        on_frame(s, &f);
                }
                if (s->link == STREAM_LINK_DOWN)
                        return;
                link_input_consume(&s->in, off);
        }
}

static bool tx_has_room(smd_stream *s)
{
        return s->link == STREAM_LINK_UP && outbuf_pending(&s->out) < s->buffer_size;
}

/* Pull payload from the application while the agent has room for it. */
static void stream_pull_tx(smd_stream *s)
{
        while (s->tx_wanted && s->tx && tx_has_room(s) && !s->destroy_requested) {
                size_t len = STREAM_TX_CHUNK, off = 0;
                unsigned flags = 0;
                int r;

                if (s->has_tx_len && !s->tx_len_sent && !s->tx_in_message) {
                        /* Asked for inside a callback: sent before the message it announces. */
                        (void) send_u32(s, FRAME_PAYLOAD_LENGTH_HINT,
                                        (uint32_t) MIN(s->tx_len, UINT32_MAX));
                        s->tx_len_sent = true;
                }
                if (!s->tx_buf) {
                        s->tx_buf = malloc(STREAM_TX_CHUNK);
                        if (!s->tx_buf)
                                return;
                }
                s->tx_requested = false;
                s->tx_len_requested = false;
                s->in_callback++;
                r = s->tx(s, s->userdata, s->tx_buf, &len, &flags);
                s->in_callback--;
                if (r == SMD_SS_DESTROY_ME) {
                        s->destroy_requested = true;
                        return;
                }
                if (r != SMD_SS_OK) {
                        s->tx_wanted = false;
                        return;
                }
                len = MIN(len, (size_t) STREAM_TX_CHUNK);
                do {
                        size_t n = MIN(len - off, (size_t) FRAME_CHUNK_MAX);
                        uint32_t fl =
                            (!s->tx_in_message && off == 0 ? FRAME_FLAG_SOM : 0) |
                            (off + n == len && (flags & SMD_SS_FLAG_EOM) ? FRAME_FLAG_EOM : 0);
                        uint8_t *o;
                        int e = 0;

                        o = stream_reserve(s, frame_payload_size(n), &e);
                        if (!o) {
                                link_lost(s, "output buffer full");
                                return;
                        }
                        outbuf_commit(&s->out, (size_t) frame_encode_payload(
                                                   o, FRAME_TX_PAYLOAD, fl, 0,
                                                   now_usec(CLOCK_MONOTONIC), s->tx_buf + off, n));
                        off += n;
                } while (off < len);
                s->tx_in_message = true;
                s->in_transaction = true;
                if (flags & SMD_SS_FLAG_EOM) {
                        s->tx_in_message = false;
                        /* One request, one message; a request made in the callback is the next. */
                        s->tx_wanted = s->tx_requested;
                        s->has_tx_len = s->tx_len_requested;
                }
        }
}

static smd_stream *stream_free(smd_stream *s)
{
        link_event_detach(&s->event);
        if (s->fd >= 0) {
                uint8_t b[FRAME_HEADER_SIZE];

                (void) frame_encode_empty(b, FRAME_DESTROYING);
                (void) outbuf_write(&s->out, s->fd);
                (void) send(s->fd, b, sizeof(b), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        safe_close(s->fd);
        link_input_deinit(&s->in);
        outbuf_deinit(&s->out);
        for (size_t i = 0; i < s->n_metadata; i++)
                free(s->metadata[i].value);
        free(s->tx_buf);
        free(s->path);
        free(s->streamtype);
        free(s);
        return NULL;
}

_public_ int smd_stream_process(smd_stream *s)
{
        int r;

        if (!s || s->in_callback)
                return -EINVAL;
        if (s->link == STREAM_LINK_DOWN && now_usec(CLOCK_MONOTONIC) >= s->retry_at) {
                r = link_open(s);
                if (r < 0)
                        link_lost(s, strerror(-r));
        }
        if (s->link != STREAM_LINK_DOWN)
                stream_read(s);
        if (!s->destroy_requested)
                stream_pull_tx(s);
        if (s->destroy_requested) {
                (void) deliver_state(s, SMD_SS_STATE_DESTROYING, 0);
                stream_free(s);
                return SMD_STREAM_DESTROYED;
        }
        if (s->link != STREAM_LINK_DOWN && outbuf_pending(&s->out)) {
                r = outbuf_write(&s->out, s->fd);
                if (r < 0)
                        link_lost(s, strerror(-r));
        }
        stream_update_sources(s);
        return 0;
}

_public_ int smd_stream_get_fd(smd_stream *s)
{
        if (!s)
                return -EINVAL;
        return s->fd >= 0 ? s->fd : -ENOTCONN;
}

_public_ int smd_stream_get_events(smd_stream *s)
{
        if (!s)
                return -EINVAL;
        if (s->fd < 0)
                return 0;
        return POLLIN | (outbuf_pending(&s->out) ? POLLOUT : 0);
}

_public_ int smd_stream_get_timeout(smd_stream *s, uint64_t *ret_usec)
{
        if (!s || !ret_usec)
                return -EINVAL;
        if (s->link == STREAM_LINK_DOWN)
                *ret_usec = s->retry_at;
        else if (s->tx_wanted && s->tx && tx_has_room(s))
                *ret_usec = 0; /* more to pull now */
        else
                *ret_usec = UINT64_MAX;
        return 0;
}

_public_ int smd_stream_wait(smd_stream *s, uint64_t timeout_usec)
{
        uint64_t t, deadline;
        int r;

        if (!s)
                return -EINVAL;
        deadline =
            timeout_usec == UINT64_MAX ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout_usec;
        (void) smd_stream_get_timeout(s, &t);
        r = link_poll(s->fd, (short) smd_stream_get_events(s), MIN(t, deadline));
        if (r < 0)
                return r;
        return smd_stream_process(s);
}

static int stream_process(void *userdata)
{
        return smd_stream_process(userdata);
}

static void stream_update_sources(smd_stream *s)
{
        uint64_t t;

        (void) smd_stream_get_timeout(s, &t);
        link_event_update(&s->event, s->fd, EPOLLIN | (outbuf_pending(&s->out) ? EPOLLOUT : 0), t,
                          stream_process, s);
}

_public_ int smd_stream_attach_event(smd_stream *s, struct sd_event *event, int64_t priority)
{
        if (!s)
                return -EINVAL;
        (void) link_event_attach(&s->event, event, priority);
        stream_update_sources(s);
        return 0;
}

_public_ int smd_stream_new(smd_stream **ret, const char *socket_path, const char *streamtype,
                            smd_stream_rx_t rx, smd_stream_tx_t tx, smd_stream_state_t state,
                            void *userdata)
{
        smd_stream *s;
        uint64_t deadline;
        int r;

        if (!ret || !streamtype || !*streamtype || strlen(streamtype) > FRAME_STREAMTYPE_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;
        s->tx_credit = -1;
        s->rx = rx;
        s->tx = tx;
        s->state = state;
        s->userdata = userdata;
        s->streamtype = strdup(streamtype);
        if (socket_path)
                s->path = strdup(socket_path);
        else if ((r = smd_default_socket_path(&s->path)) < 0) {
                stream_free(s);
                return r;
        }
        if (!s->path || !s->streamtype) {
                stream_free(s);
                return -ENOMEM;
        }
        new_error[0] = 0;
        if (deliver_state(s, SMD_SS_STATE_CREATING, 0) == SMD_SS_DESTROY_ME) {
                s->destroy_requested = false;
                (void) deliver_state(s, SMD_SS_STATE_DESTROYING, 0);
                stream_free(s);
                return -ECANCELED;
        }
        /* Wait for the agent's answer so that a refusal is reported here. */
        s->creating = true;
        r = link_open(s);
        deadline = now_usec(CLOCK_MONOTONIC) + STREAM_OPEN_TIMEOUT_USEC;
        while (r >= 0 && s->link == STREAM_LINK_OPENING && now_usec(CLOCK_MONOTONIC) < deadline) {
                r = link_poll(s->fd, POLLIN | (outbuf_pending(&s->out) ? POLLOUT : 0), deadline);
                if (r >= 0 && outbuf_pending(&s->out))
                        r = outbuf_write(&s->out, s->fd);
                if (r >= 0)
                        stream_read(s);
        }
        s->creating = false;
        if (s->refused) {
                r = s->refused;
                memcpy(new_error, s->error, sizeof(new_error));
                stream_free(s);
                return r;
        }
        if (s->link != STREAM_LINK_UP) {
                /* No agent (yet): the first smd_stream_process() reports UPSTREAM_LINK_RETRY. */
                link_close(s);
                s->retry_at = 0;
        }
        *ret = s;
        return 0;
}

_public_ smd_stream *smd_stream_destroy(smd_stream *s)
{
        if (!s)
                return NULL;
        if (s->in_callback) {
                s->destroy_requested = true;
                return NULL;
        }
        (void) deliver_state(s, SMD_SS_STATE_DESTROYING, 0);
        return stream_free(s);
}

_public_ int smd_stream_request_tx(smd_stream *s)
{
        if (!s)
                return -EINVAL;
        s->tx_wanted = true;
        s->tx_requested = true;
        stream_update_sources(s);
        return 0;
}

_public_ int smd_stream_request_tx_len(smd_stream *s, uint64_t len)
{
        if (!s || len > UINT32_MAX)
                return -EINVAL;
        s->has_tx_len = true;
        s->tx_len = len;
        s->tx_len_sent = false;
        s->tx_wanted = true;
        s->tx_requested = true;
        s->tx_len_requested = true;
        s->in_transaction = true;
        if (s->link == STREAM_LINK_UP && !s->in_callback) {
                (void) send_u32(s, FRAME_PAYLOAD_LENGTH_HINT, (uint32_t) len);
                s->tx_len_sent = true;
        }
        stream_update_sources(s);
        return 0;
}

_public_ int smd_stream_client_connect(smd_stream *s)
{
        int r;

        if (!s)
                return -EINVAL;
        s->in_transaction = true;
        if (s->link != STREAM_LINK_UP) {
                s->connect_pending = true;
                return 0;
        }
        r = send_empty(s, FRAME_ONWARD_CONNECT);
        stream_update_sources(s);
        return r;
}

_public_ int smd_stream_set_metadata(smd_stream *s, const char *name, const void *value, size_t len)
{
        StreamMetadata *m;
        int r;

        if (!s || !name || (!value && len))
                return -EINVAL;
        if (len > STREAM_METADATA_VALUE_MAX)
                return -E2BIG;
        if (value &&
            (memchr(value, '\r', len) || memchr(value, '\n', len) || memchr(value, 0, len)))
                return -EINVAL;
        m = metadata_find(s, name, strlen(name), true);
        if (!m)
                return strlen(name) > STREAM_METADATA_NAME_MAX || !*name ? -EINVAL : -ENOSPC;
        r = metadata_store(m, value ? value : "", len);
        if (r < 0)
                return r;
        if (s->link == STREAM_LINK_UP) {
                r = send_metadata(s, m);
                stream_update_sources(s);
        }
        return r;
}

_public_ int smd_stream_get_metadata(smd_stream *s, const char *name, const char **ret_value,
                                     size_t *ret_len)
{
        StreamMetadata *m;

        if (!s || !name || !ret_value)
                return -EINVAL;
        m = metadata_find(s, name, strlen(name), false);
        if (!m || !m->value)
                return -ENOENT;
        *ret_value = m->value;
        if (ret_len)
                *ret_len = m->len;
        return 0;
}

_public_ int smd_stream_start_timeout(smd_stream *s, uint32_t timeout_ms)
{
        if (!s || timeout_ms == UINT32_MAX)
                return -EINVAL;
        s->has_timeout = true;
        s->timeout_ms = timeout_ms;
        if (s->link != STREAM_LINK_UP)
                return 0;
        return send_u32(s, FRAME_TIMEOUT_UPDATE, timeout_ms);
}

_public_ int smd_stream_cancel_timeout(smd_stream *s)
{
        if (!s)
                return -EINVAL;
        s->has_timeout = false;
        if (s->link != STREAM_LINK_UP)
                return 0;
        return send_u32(s, FRAME_TIMEOUT_UPDATE, UINT32_MAX);
}

_public_ void smd_stream_change_handlers(smd_stream *s, smd_stream_rx_t rx, smd_stream_tx_t tx,
                                         smd_stream_state_t state)
{
        if (!s)
                return;
        if (rx)
                s->rx = rx;
        if (tx)
                s->tx = tx;
        if (state)
                s->state = state;
}

_public_ int64_t smd_stream_tx_credit(smd_stream *s)
{
        return s ? s->tx_credit : -1;
}

_public_ void *smd_stream_get_userdata(smd_stream *s)
{
        return s ? s->userdata : NULL;
}

_public_ const char *smd_stream_get_streamtype(smd_stream *s)
{
        return s ? s->streamtype : NULL;
}

_public_ const char *smd_stream_get_error(smd_stream *s)
{
        const char *e = s ? s->error : new_error;

        return e[0] ? e : NULL;
}

_public_ const char *smd_stream_state_name(int state)
{
        static const char *const names[] = {
            [SMD_SS_STATE_CREATING] = "CREATING",
            [SMD_SS_STATE_DISCONNECTED] = "DISCONNECTED",
            [SMD_SS_STATE_UNREACHABLE] = "UNREACHABLE",
            [SMD_SS_STATE_AUTH_FAILED] = "AUTH_FAILED",
            [SMD_SS_STATE_CONNECTED] = "CONNECTED",
            [SMD_SS_STATE_CONNECTING] = "CONNECTING",
            [SMD_SS_STATE_DESTROYING] = "DESTROYING",
            [SMD_SS_STATE_POLL] = "POLL",
            [SMD_SS_STATE_ALL_RETRIES_FAILED] = "ALL_RETRIES_FAILED",
            [SMD_SS_STATE_QOS_ACK_REMOTE] = "QOS_ACK_REMOTE",
            [SMD_SS_STATE_QOS_NACK_REMOTE] = "QOS_NACK_REMOTE",
            [SMD_SS_STATE_QOS_ACK_LOCAL] = "QOS_ACK_LOCAL",
            [SMD_SS_STATE_QOS_NACK_LOCAL] = "QOS_NACK_LOCAL",
            [SMD_SS_STATE_TIMEOUT] = "TIMEOUT",
            [SMD_SS_STATE_SERVER_TXN] = "SERVER_TXN",
            [SMD_SS_STATE_SERVER_UPGRADE] = "SERVER_UPGRADE",
            [SMD_SS_STATE_EVENT_WAIT_CANCELLED] = "EVENT_WAIT_CANCELLED",
            [SMD_SS_STATE_UPSTREAM_LINK_RETRY] = "UPSTREAM_LINK_RETRY",
        };

        if (state >= 1000)
                return "USER";
        if (state > 0 && (size_t) state < ELEMENTSOF(names) && names[state])
                return names[state];
        return "INVALID";
}

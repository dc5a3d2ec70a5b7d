/* SPDX-License-Identifier: MIT */
/*
 * libsmd (see include/smd/smd.h): the application side of the `_lws_smd` and
 * `_smd_ctl` streamtypes over the agent's socket. It speaks the same frame
 * codec as the agent; everything here is non-blocking except the explicit
 * waits (open, flush, wait, control).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "frame.h"
#include "libsmd-link.h"
#include "message.h"
#include "outbuf.h"
#include "smd/smd.h"
#include "util.h"

#define _public_ __attribute__((visibility("default")))

#define OPEN_TIMEOUT_USEC    (5 * USEC_PER_SEC)
#define RECONNECT_FIRST_USEC (100 * USEC_PER_MSEC)
#define RECONNECT_MAX_USEC   (2 * USEC_PER_SEC)
#define OUT_MAX              (1024u * 1024u) /* queued publishes while the socket is full */

/* Why the last smd_bus_open() of this thread failed. */
static _Thread_local char open_error[256];

typedef enum LinkState {
        LINK_DOWN,
        LINK_OPENING, /* STREAMTYPE sent, waiting for CREATE_RESULT */
        LINK_UP,
} LinkState;

struct smd_bus {
        char *path;
        uint32_t classes;
        int fd;
        LinkState state;
        bool reconnect;
        bool ever_up;
        uint64_t retry_at, backoff;

        LinkInput in;
        OutBuffer out;

        uint32_t lost_pending;
        unsigned sync_pending; /* ONWARD_CONNECT markers not yet answered */
        bool opening;          /* inside smd_bus_open(): no handler is set yet */
        bool held_input;       /* whole frames kept in `in` for the next process */
        bool nacked;
        bool refused;

        smd_message_handler_t on_message;
        void *message_userdata;
        smd_link_handler_t on_link;
        void *link_userdata;

        LinkEvent event;

        char error[256];
};

/* prefix + ": " + detail (not NUL-terminated, len bytes). */
static void set_error(smd_bus *bus, const char *prefix, const char *detail, size_t len)
{
        snprintf(bus->error, sizeof(bus->error), "%s: %.*s", prefix, (int) MIN(len, (size_t) 200),
                 detail ? detail : "");
}

_public_ int smd_default_socket_path(char **ret)
{
        const char *e = getenv("SMD_SOCKET");
        char *p;

        if (!ret)
                return -EINVAL;
        if (e && *e)
                p = strdup(e);
        else if (geteuid() == 0)
                p = strdup("/run/smdagent/ss.sock");
        else {
                const char *x = getenv("XDG_RUNTIME_DIR");
                if (!x || x[0] != '/')
                        return -ENXIO;
                if (asprintf(&p, "%s/smdagent/ss.sock", x) < 0)
                        p = NULL;
        }
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int bus_write(smd_bus *bus)
{
        return outbuf_write(&bus->out, bus->fd);
}

static void update_sources(smd_bus *bus);

static void link_down(smd_bus *bus, const char *why)
{
        bool was_up = bus->state == LINK_UP;

        bus->fd = safe_close(bus->fd);
        bus->state = LINK_DOWN;
        bus->in.len = 0;
        outbuf_clear(&bus->out);
        bus->sync_pending = 0;
        if (why && !bus->refused)
                set_error(bus, "link to the agent lost", why, strlen(why));
        bus->backoff =
            bus->backoff ? MIN(bus->backoff * 2, RECONNECT_MAX_USEC) : RECONNECT_FIRST_USEC;
        bus->retry_at = now_usec(CLOCK_MONOTONIC) + bus->backoff;
        update_sources(bus);
        if (was_up && bus->on_link)
                bus->on_link(bus, SMD_LINK_DOWN, bus->link_userdata);
}

/* Connect and send STREAMTYPE; the CREATE_RESULT arrives later. */
static int link_open(smd_bus *bus)
{
        int fd = link_socket_connect(bus->path), r = 0;
        uint8_t *o;

        if (fd < 0)
                return fd;
        bus->fd = fd;
        bus->state = LINK_OPENING;
        o = outbuf_reserve(&bus->out, FRAME_HEADER_SIZE + 9 + 8, &r);
        if (!o)
                return r;
        outbuf_commit(&bus->out, (size_t) frame_encode_streamtype(o, (uint32_t) getpid(),
                                                                  bus->classes, "_lws_smd"));
        r = bus_write(bus);
        return r < 0 ? r : 0;
}

static void on_frame(smd_bus *bus, const Frame *f)
{
        switch ((FrameType) f->type) {
        case FRAME_CREATE_RESULT:
                if (bus->state != LINK_OPENING)
                        break;
                if (f->create_result.result != 0) {
                        bus->refused = true;
                        set_error(bus, "the agent refused the subscription",
                                  f->create_result.reason, f->create_result.reason_len);
                        bus->reconnect = false;
                        link_down(bus, NULL);
                        return;
                }
                bus->state = LINK_UP;
                bus->backoff = 0;
                if (bus->ever_up && bus->on_link)
                        bus->on_link(bus, SMD_LINK_UP, bus->link_userdata);
                bus->ever_up = true;
                return;
        case FRAME_RX_PAYLOAD: {
                MessageHeader h;
                smd_message m;

                if (message_header_parse(f->payload.data, f->payload.size, &h) < 0)
                        break;
                if (h.classes & MESSAGE_CLASS_LOST_NOTICE) {
                        const char *p =
                            memmem(f->payload.data + MESSAGE_HEADER_SIZE,
                                   f->payload.size - MESSAGE_HEADER_SIZE, "\"count\":", 8);
                        if (p)
                                bus->lost_pending += (uint32_t) strtoul(p + 8, NULL, 10);
                        return;
                }
                m = (smd_message){
                    .classes = (uint32_t) h.classes,
                    .timestamp_us = h.timestamp_us,
                    .payload = (const char *) f->payload.data + MESSAGE_HEADER_SIZE,
                    .size = f->payload.size - MESSAGE_HEADER_SIZE,
                    .lost = bus->lost_pending,
                };
                bus->lost_pending = 0;
                if (bus->on_message)
                        bus->on_message(bus, &m, bus->message_userdata);
                return;
        }
        case FRAME_CONNSTATE:
                if (f->connstate.state == 13 /* QOS_NACK_LOCAL */) {
                        bus->nacked = true;
                        snprintf(bus->error, sizeof(bus->error),
                                 "the agent refused a published message");
                } else if (f->connstate.state == 5 /* CONNECTED */ && bus->sync_pending) {
                        bus->sync_pending--;
                } else if (f->connstate.state == 7 /* DESTROYING */) {
                        link_down(bus, "the agent is shutting down");
                }
                return;
        case FRAME_RX_CREDIT:
        case FRAME_RX_METADATA:
                return;
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
}

/*
 * Handle every whole frame in `in`. While smd_bus_open() waits, stop after the
 * CREATE_RESULT that brings the link up: the messages behind it (the retained
 * state, first of all) must wait until the application has set its handler.
 */
static void bus_parse(smd_bus *bus)
{
        size_t off = 0;

        bus->held_input = false;
        while (bus->state != LINK_DOWN) {
                Frame f;
                size_t used;
                int r;

                if (bus->opening && bus->state == LINK_UP) {
                        bus->held_input = off < bus->in.len;
                        break;
                }
                r = frame_parse(bus->in.data + off, bus->in.len - off, FRAME_TO_CLIENT, &f, &used);
                if (r < 0) {
                        link_down(bus, "invalid frame from the agent");
                        return;
                }
                if (r == 0)
                        break;
                on_frame(bus, &f);
                off += used;
        }
        if (bus->state == LINK_DOWN)
                return;
        link_input_consume(&bus->in, off);
}

static int bus_read(smd_bus *bus)
{
        if (bus->held_input)
                bus_parse(bus);
        for (int round = 0; round < 64 && bus->state != LINK_DOWN; round++) {
                ssize_t n = link_input_recv(&bus->in, bus->fd);

                if (n == -EAGAIN)
                        return 0;
                if (n == -ENOMEM)
                        return -ENOMEM;
                if (n < 0) {
                        link_down(bus, strerror((int) -n));
                        return 0;
                }
                if (n == 0) {
                        link_down(bus, "the agent closed the connection");
                        return 0;
                }
                bus_parse(bus);
                if (bus->state == LINK_DOWN || bus->held_input)
                        return 0;
        }
        return 0;
}

_public_ int smd_bus_process(smd_bus *bus)
{
        int r;

        if (!bus)
                return -EINVAL;
        if (bus->state == LINK_DOWN) {
                if (!bus->reconnect || now_usec(CLOCK_MONOTONIC) < bus->retry_at)
                        return 0;
                r = link_open(bus);
                if (r < 0) {
                        link_down(bus, NULL);
                        return 0;
                }
                update_sources(bus);
        }
        r = bus_read(bus);
        if (r < 0)
                return r;
        if (bus->state != LINK_DOWN && outbuf_pending(&bus->out)) {
                r = bus_write(bus);
                if (r < 0)
                        link_down(bus, strerror(-r));
        }
        update_sources(bus);
        return 0;
}

_public_ int smd_bus_get_fd(smd_bus *bus)
{
        if (!bus)
                return -EINVAL;
        return bus->fd >= 0 ? bus->fd : -ENOTCONN;
}

_public_ int smd_bus_get_events(smd_bus *bus)
{
        if (!bus)
                return -EINVAL;
        if (bus->fd < 0)
                return 0;
        return POLLIN | (outbuf_pending(&bus->out) ? POLLOUT : 0);
}

_public_ int smd_bus_get_timeout(smd_bus *bus, uint64_t *ret_usec)
{
        if (!bus || !ret_usec)
                return -EINVAL;
        if (bus->held_input)
                *ret_usec = 0; /* frames held back by smd_bus_open(): process now */
        else
                *ret_usec = bus->state == LINK_DOWN && bus->reconnect ? bus->retry_at : UINT64_MAX;
        return 0;
}

static int wait_once(smd_bus *bus, uint64_t deadline)
{
        uint64_t t;
        int r;

        (void) smd_bus_get_timeout(bus, &t);
        r = link_poll(bus->fd, (short) smd_bus_get_events(bus), MIN(t, deadline));
        if (r < 0)
                return r;
        return smd_bus_process(bus);
}

_public_ int smd_bus_wait(smd_bus *bus, uint64_t timeout_usec)
{
        uint64_t deadline;

        if (!bus)
                return -EINVAL;
        deadline =
            timeout_usec == UINT64_MAX ? UINT64_MAX : now_usec(CLOCK_MONOTONIC) + timeout_usec;
        return wait_once(bus, deadline);
}

_public_ int smd_bus_open(smd_bus **ret, const char *socket_path, uint32_t classes)
{
        smd_bus *bus;
        uint64_t deadline;
        int r;

        if (!ret)
                return -EINVAL;
        bus = calloc(1, sizeof(*bus));
        if (!bus)
                return -ENOMEM;
        bus->fd = -EBADF;
        bus->out.max = OUT_MAX;
        bus->classes = classes;
        bus->reconnect = true;
        if (socket_path)
                bus->path = strdup(socket_path);
        else {
                r = smd_default_socket_path(&bus->path);
                if (r < 0) {
                        free(bus);
                        return r;
                }
        }
        if (!bus->path) {
                free(bus);
                return -ENOMEM;
        }
        r = link_open(bus);
        if (r < 0) {
                smd_bus_close(bus);
                return r;
        }
        /* Wait for the agent's answer so that a refusal is reported here. */
        deadline = now_usec(CLOCK_MONOTONIC) + OPEN_TIMEOUT_USEC;
        bus->opening = true;
        while (bus->state == LINK_OPENING && now_usec(CLOCK_MONOTONIC) < deadline) {
                bus->reconnect = false;
                r = wait_once(bus, deadline);
                bus->reconnect = !bus->refused;
                if (r < 0)
                        break;
        }
        bus->opening = false;
        if (bus->state != LINK_UP) {
                r = bus->refused ? -EACCES : bus->state == LINK_OPENING ? -ETIMEDOUT : -ECONNRESET;
                /* Keep the reason for smd_bus_get_error(NULL). */
                memcpy(open_error, bus->error, sizeof(open_error));
                smd_bus_close(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

_public_ smd_bus *smd_bus_close(smd_bus *bus)
{
        if (!bus)
                return NULL;
        (void) smd_bus_attach_event(bus, NULL, 0);
        if (bus->fd >= 0) {
                /* Say goodbye politely; best effort. */
                uint8_t b[FRAME_HEADER_SIZE];
                (void) frame_encode_empty(b, FRAME_DESTROYING);
                (void) send(bus->fd, b, sizeof(b), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        safe_close(bus->fd);
        link_input_deinit(&bus->in);
        outbuf_deinit(&bus->out);
        free(bus->path);
        free(bus);
        return NULL;
}

_public_ void smd_bus_set_message_handler(smd_bus *bus, smd_message_handler_t handler,
                                          void *userdata)
{
        if (!bus)
                return;
        bus->on_message = handler;
        bus->message_userdata = userdata;
}

_public_ void smd_bus_set_link_handler(smd_bus *bus, smd_link_handler_t handler, void *userdata)
{
        if (!bus)
                return;
        bus->on_link = handler;
        bus->link_userdata = userdata;
}

_public_ void smd_bus_set_reconnect(smd_bus *bus, bool enable)
{
        if (bus)
                bus->reconnect = enable;
}

_public_ int smd_bus_publish(smd_bus *bus, uint32_t classes, const void *payload, size_t size)
{
        uint8_t *o;
        int r = 0;

        if (!bus || classes == 0 || (!payload && size))
                return -EINVAL;
        if (size > SMD_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (bus->state != LINK_UP)
                return -ENOTCONN;
        o = outbuf_reserve(&bus->out, message_frame_size(size), &r);
        if (!o)
                return r;
        outbuf_commit(&bus->out,
                      message_encode_frame(o, FRAME_TX_PAYLOAD, classes, 0, payload, size));
        /* Write at once when we can: publishing must not wait for a poll round. */
        if (outbuf_pending(&bus->out) >= 8192 || bus->event.event == NULL) {
                r = bus_write(bus);
                if (r < 0) {
                        link_down(bus, strerror(-r));
                        return -ENOTCONN;
                }
        }
        update_sources(bus);
        return 0;
}

/*
 * Frames are handled in order, so an ONWARD_CONNECT sent after our publishes is
 * answered (CONNSTATE CONNECTED) only after the agent has handled them all; a
 * refusal (QOS_NACK_LOCAL) arrives before that answer.
 */
_public_ int smd_bus_flush(smd_bus *bus, uint64_t timeout_usec)
{
        uint64_t deadline;
        uint8_t *o;
        int r = 0;

        if (!bus)
                return -EINVAL;
        if (bus->state != LINK_UP)
                return -ENOTCONN;
        deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        bus->nacked = false;
        o = outbuf_reserve(&bus->out, FRAME_HEADER_SIZE, &r);
        if (!o)
                return r;
        outbuf_commit(&bus->out, (size_t) frame_encode_empty(o, FRAME_ONWARD_CONNECT));
        bus->sync_pending++;
        while (bus->sync_pending && bus->state == LINK_UP) {
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return -ETIMEDOUT;
                r = wait_once(bus, deadline);
                if (r < 0)
                        return r;
        }
        if (bus->state != LINK_UP)
                return -ECONNRESET;
        return bus->nacked ? -EACCES : 0;
}

_public_ const char *smd_bus_get_error(smd_bus *bus)
{
        const char *e = bus ? bus->error : open_error;

        return e[0] ? e : NULL;
}

_public_ const char *smd_bus_get_socket_path(smd_bus *bus)
{
        return bus ? bus->path : NULL;
}

/* sd-event glue (libsmd-link.c): an io source on the current fd and a timer for reconnects. */
static int bus_process(void *userdata)
{
        return smd_bus_process(userdata);
}

static void update_sources(smd_bus *bus)
{
        uint64_t t;

        (void) smd_bus_get_timeout(bus, &t);
        link_event_update(&bus->event, bus->fd,
                          EPOLLIN | (outbuf_pending(&bus->out) ? EPOLLOUT : 0), t, bus_process,
                          bus);
}

_public_ int smd_bus_attach_event(smd_bus *bus, struct sd_event *event, int64_t priority)
{
        if (!bus)
                return -EINVAL;
        (void) link_event_attach(&bus->event, event, priority);
        update_sources(bus);
        return 0;
}

/* Blocking helpers for smd_control(). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        for (;;) {
                struct pollfd p = {.fd = fd, .events = events};
                int r;

                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return -ETIMEDOUT;
                r = link_poll(fd, events, deadline);
                if (r < 0)
                        return r;
                if (poll(&p, 1, 0) > 0)
                        return 0;
        }
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t deadline)
{
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN) {
                                int r = wait_fd(fd, POLLOUT, deadline);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

_public_ int smd_control(const char *socket_path, const char *request, char **ret_reply,
                         uint64_t timeout_usec)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        _cleanup_(link_input_deinit) LinkInput in = {};
        _cleanup_free_ char *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len, off = 0, olen = 0, reply_len = 0;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        bool created = false;
        int r;

        if (!request || !ret_reply)
                return -EINVAL;
        if (socket_path)
                path = strdup(socket_path);
        else if ((r = smd_default_socket_path(&path)) < 0)
                return r;
        if (!path)
                return -ENOMEM;
        fd = link_socket_connect(path);
        if (fd < 0)
                return fd;

        len = strlen(request);
        out = malloc(FRAME_HEADER_SIZE + 9 + 8 + len +
                     (len / FRAME_CHUNK_MAX + 1) * FRAME_PAYLOAD_OVERHEAD);
        if (!out)
                return -ENOMEM;
        olen += (size_t) frame_encode_streamtype(out, (uint32_t) getpid(), 0, "_smd_ctl");
        do {
                size_t n = MIN(len - off, (size_t) FRAME_CHUNK_MAX);
                uint32_t flags =
                    (off == 0 ? FRAME_FLAG_SOM : 0) | (off + n == len ? FRAME_FLAG_EOM : 0);
                olen += (size_t) frame_encode_payload(out + olen, FRAME_TX_PAYLOAD, flags, 0, 0,
                                                      request + off, n);
                off += n;
        } while (off < len);
        r = write_all(fd, out, olen, deadline);
        if (r < 0)
                return r;

        for (;;) {
                ssize_t n;
                size_t pos = 0;

                r = wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                n = link_input_recv(&in, fd);
                if (n == -EAGAIN)
                        continue;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
                for (;;) {
                        Frame f;
                        size_t used;

                        r = frame_parse(in.data + pos, in.len - pos, FRAME_TO_CLIENT, &f, &used);
                        if (r < 0)
                                return -EBADMSG;
                        if (r == 0)
                                break;
                        pos += used;
                        if (f.type == FRAME_CREATE_RESULT) {
                                if (f.create_result.result != 0)
                                        return -EPROTONOSUPPORT;
                                created = true;
                        } else if (f.type == FRAME_RX_PAYLOAD && created) {
                                char *p;

                                if (reply_len > 16u * 1024u * 1024u)
                                        return -EMSGSIZE;
                                p = realloc(reply, reply_len + f.payload.size + 1);
                                if (!p)
                                        return -ENOMEM;
                                reply = p;
                                memcpy(reply + reply_len, f.payload.data, f.payload.size);
                                reply_len += f.payload.size;
                                reply[reply_len] = 0;
                                if (f.payload.flags & FRAME_FLAG_EOM) {
                                        *ret_reply = TAKE_PTR(reply);
                                        return 0;
                                }
                        }
                }
                link_input_consume(&in, pos);
        }
}

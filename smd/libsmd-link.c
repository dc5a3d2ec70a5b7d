/* SPDX-License-Identifier: MIT */
/* Shared pieces of libsmd's connections (see libsmd-link.h). */
#include "libsmd-link.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

int link_socket_connect(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r == -EAGAIN ? -ECONNREFUSED : r;
        }
        return fd;
}

ssize_t link_input_recv(LinkInput *in, int fd)
{
        ssize_t n;

        if (in->size - in->len < 4096) {
                size_t size = MIN(MAX(in->size * 2, (size_t) 16384), (size_t) LINK_IN_MAX);
                uint8_t *p;

                if (size <= in->size)
                        return -ENOBUFS; /* cannot happen: a frame is never larger */
                p = realloc(in->data, size);
                if (!p)
                        return -ENOMEM;
                in->data = p;
                in->size = size;
        }
        n = recv(fd, in->data + in->len, in->size - in->len, MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : -errno;
        in->len += (size_t) n;
        return n;
}

void link_input_consume(LinkInput *in, size_t n)
{
        memmove(in->data, in->data + n, in->len - n);
        in->len -= n;
}

void link_input_deinit(LinkInput *in)
{
        in->data = mfree(in->data);
        in->len = in->size = 0;
}

static int on_io_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        LinkEvent *e = userdata;

        (void) e->process(e->userdata);
        return 0;
}

static int on_time_event(sd_event_source *s, uint64_t usec, void *userdata)
{
        LinkEvent *e = userdata;

        (void) e->process(e->userdata);
        return 0;
}

void link_event_update(LinkEvent *e, int fd, uint32_t events, uint64_t timeout_usec,
                       int (*process)(void *userdata), void *userdata)
{
        if (!e->event)
                return;
        e->process = process;
        e->userdata = userdata;
        if (e->io && (fd < 0 || sd_event_source_get_io_fd(e->io) != fd))
                e->io = sd_event_source_disable_unref(e->io);
        if (fd >= 0) {
                if (!e->io) {
                        if (sd_event_add_io(e->event, &e->io, fd, events, on_io_event, e) >= 0)
                                (void) sd_event_source_set_priority(e->io, e->priority);
                } else
                        (void) sd_event_source_set_io_events(e->io, events);
        }
        if (timeout_usec == UINT64_MAX) {
                if (e->time)
                        (void) sd_event_source_set_enabled(e->time, SD_EVENT_OFF);
                return;
        }
        if (!e->time) {
                if (sd_event_add_time(e->event, &e->time, CLOCK_MONOTONIC, timeout_usec, 1000,
                                      on_time_event, e) < 0)
                        return;
                (void) sd_event_source_set_priority(e->time, e->priority);
        } else
                (void) sd_event_source_set_time(e->time, timeout_usec);
        (void) sd_event_source_set_enabled(e->time, SD_EVENT_ONESHOT);
}

int link_event_attach(LinkEvent *e, sd_event *event, int64_t priority)
{
        link_event_detach(e);
        if (!event)
                return 0;
        e->event = sd_event_ref(event);
        e->priority = priority;
        return 0;
}

void link_event_detach(LinkEvent *e)
{
        e->io = sd_event_source_disable_unref(e->io);
        e->time = sd_event_source_disable_unref(e->time);
        e->event = sd_event_unref(e->event);
}

int link_poll(int fd, short events, uint64_t deadline)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        struct pollfd p = {.fd = fd, .events = events};
        int ms = deadline == UINT64_MAX ? -1
                 : deadline <= now      ? 0
                                        : (int) MIN((deadline - now + 999) / 1000, 60000u);

        if (poll(&p, fd >= 0 ? 1 : 0, ms) < 0 && errno != EINTR)
                return -errno;
        return 0;
}

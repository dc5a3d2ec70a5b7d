/* SPDX-License-Identifier: MIT */
/*
 * What both libsmd connection kinds (the bus, libsmd.c, and Secure Streams,
 * libsmd-stream.c) share: connecting to the agent's socket, the input buffer
 * that frames are parsed from, and the sd-event glue (one io source on the
 * current fd, one timer for reconnects). Internal to libsmd.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "frame.h"

#define LINK_IN_MAX (FRAME_HEADER_SIZE + FRAME_BODY_MAX + 16384u)

/* A non-blocking connection to the socket at path: the fd, or -errno (-ECONNREFUSED for a full
 * backlog). */
int link_socket_connect(const char *path);

/* Bytes read from the agent, parsed from the front. */
typedef struct LinkInput {
        uint8_t *data;
        size_t len, size;
} LinkInput;

/* One recv(): > 0 bytes appended, 0 at EOF, -EAGAIN, or -errno. */
ssize_t link_input_recv(LinkInput *in, int fd);
/* Drop the first n bytes (frames handled). */
void link_input_consume(LinkInput *in, size_t n);
void link_input_deinit(LinkInput *in);

/* sd-event glue. */
typedef struct LinkEvent {
        sd_event *event;
        sd_event_source *io, *time;
        int64_t priority;
        int (*process)(void *userdata);
        void *userdata;
} LinkEvent;

/*
 * Make the sources match: an io source on fd (none when fd < 0) for events,
 * a one-shot timer at timeout_usec (CLOCK_MONOTONIC, UINT64_MAX: none). Both
 * call process(userdata).
 */
void link_event_update(LinkEvent *e, int fd, uint32_t events, uint64_t timeout_usec,
                       int (*process)(void *userdata), void *userdata);
int link_event_attach(LinkEvent *e, sd_event *event, int64_t priority);
void link_event_detach(LinkEvent *e);

/* Wait (poll) on fd for events until deadline (CLOCK_MONOTONIC µs, UINT64_MAX: forever). */
int link_poll(int fd, short events, uint64_t deadline);

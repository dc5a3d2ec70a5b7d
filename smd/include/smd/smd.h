/* SPDX-License-Identifier: MIT */
/*
 * libsmd: join the smdagent system message bus from an application.
 *
 * A bus connection subscribes to a class mask when it connects, receives every
 * message whose classes match, in order, and may publish. The library is
 * loop-agnostic: poll smd_bus_get_fd() for smd_bus_get_events(), wake at
 * smd_bus_get_timeout(), and call smd_bus_process(); or attach it to an sd-event
 * loop with smd_bus_attach_event(). If the agent goes away the connection
 * reconnects with backoff and tells the application through the link handler.
 *
 * All functions return a negative errno-style value on failure.
 */
#ifndef SMD_SMD_H
#define SMD_SMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Message classes: a bitmask, upstream Secure Streams values. */
#define SMD_CLASS_INTERACTION  UINT32_C(0x00000001)
#define SMD_CLASS_SYSTEM_STATE UINT32_C(0x00000002)
#define SMD_CLASS_NETWORK      UINT32_C(0x00000004)
#define SMD_CLASS_METRICS      UINT32_C(0x00000008)
#define SMD_CLASS_USER(n)      (UINT32_C(1) << (24 + (n))) /* n = 0..7 */
#define SMD_CLASS_ALL          UINT32_C(0xff00000f)

/* Largest payload of one message, in bytes. */
#define SMD_PAYLOAD_MAX 384

typedef struct smd_bus smd_bus;

typedef struct smd_message {
        uint32_t classes;      /* the classes the sender gave the message */
        uint64_t timestamp_us; /* CLOCK_MONOTONIC, stamped by the agent on acceptance */
        const char *payload;   /* not NUL-terminated; valid during the callback */
        size_t size;
        uint32_t lost; /* messages this connection lost just before this one */
} smd_message;

/* Link states reported to the link handler. */
enum {
        SMD_LINK_DOWN = 0, /* the agent went away; messages until SMD_LINK_UP are not seen */
        SMD_LINK_UP = 1,   /* (re)connected and subscribed */
};

typedef void (*smd_message_handler_t)(smd_bus *bus, const smd_message *m, void *userdata);
typedef void (*smd_link_handler_t)(smd_bus *bus, int link_state, void *userdata);

/*
 * Connect to the agent at socket_path (NULL: the default for this user, or
 * $SMD_SOCKET) and subscribe to classes (0 to publish only). Returns 0 with
 * *ret set, -ENOENT/-ECONNREFUSED when no agent listens, -EACCES when the agent
 * refused the subscription (smd_bus_get_error() says which class).
 */
int smd_bus_open(smd_bus **ret, const char *socket_path, uint32_t classes);
/* Close and free; accepts NULL; returns NULL. */
smd_bus *smd_bus_close(smd_bus *bus);

void smd_bus_set_message_handler(smd_bus *bus, smd_message_handler_t handler, void *userdata);
void smd_bus_set_link_handler(smd_bus *bus, smd_link_handler_t handler, void *userdata);
/* Reconnect when the agent goes away (default on). */
void smd_bus_set_reconnect(smd_bus *bus, bool enable);

/*
 * Publish one message. Queued and written from smd_bus_process() (or at once
 * when the socket can take it). -EMSGSIZE for payloads over SMD_PAYLOAD_MAX,
 * -ENOTCONN while the link is down.
 */
int smd_bus_publish(smd_bus *bus, uint32_t classes, const void *payload, size_t size);

int smd_bus_get_fd(smd_bus *bus);
/* poll() events to wait for on the fd. */
int smd_bus_get_events(smd_bus *bus);
/* CLOCK_MONOTONIC µs when smd_bus_process() must run again, UINT64_MAX if never. */
int smd_bus_get_timeout(smd_bus *bus, uint64_t *ret_usec);
/* Read, dispatch handlers, write, reconnect. Returns 0, or <0 on a fatal error. */
int smd_bus_process(smd_bus *bus);
/* Block up to timeout_usec (UINT64_MAX: forever) for something to process. */
int smd_bus_wait(smd_bus *bus, uint64_t timeout_usec);
/* Wait until everything published so far has been written to the agent. */
int smd_bus_flush(smd_bus *bus, uint64_t timeout_usec);
/* A description of the last refusal or protocol error, or NULL. With a NULL
 * bus: why the last failed smd_bus_open() of this thread failed. */
const char *smd_bus_get_error(smd_bus *bus);
/* The agent's socket path this connection uses. */
const char *smd_bus_get_socket_path(smd_bus *bus);

/* Attach to an sd-event loop (from <systemd/sd-event.h>); NULL detaches. */
struct sd_event;
int smd_bus_attach_event(smd_bus *bus, struct sd_event *event, int64_t priority);

/*
 * Control: send one JSON request to the agent's _smd_ctl streamtype and wait
 * up to timeout_usec for the JSON reply, returned in *ret_reply (free() it).
 */
int smd_control(const char *socket_path, const char *request, char **ret_reply,
                uint64_t timeout_usec);

/* The default socket path for this user: $SMD_SOCKET, /run/smdagent/ss.sock for
 * root, else $XDG_RUNTIME_DIR/smdagent/ss.sock. Returns a malloc'd string. */
int smd_default_socket_path(char **ret);

#ifdef __cplusplus
}
#endif

#endif

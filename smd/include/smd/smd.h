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

/*
 * Secure Streams through the agent: a stream of any policy streamtype, with
 * the same shape as the agent's in-process engine. The agent holds the
 * policy, the connection and the trust store; the application sees payloads
 * and states. Callbacks run only from smd_stream_process() (and CREATING from
 * smd_stream_new()); what they return is acted on after they returned.
 */
typedef struct smd_stream smd_stream;

/* What callbacks return. */
enum {
        SMD_SS_OK = 0,
        SMD_SS_TX_DONT_SEND = 1, /* tx: nothing to send now (wait for request_tx) */
        SMD_SS_DISCONNECT_ME = -1,
        SMD_SS_DESTROY_ME = -2,
};

/* States, upstream numbering (the agent relays its stream's states). */
enum {
        SMD_SS_STATE_CREATING = 1,
        SMD_SS_STATE_DISCONNECTED = 2,
        SMD_SS_STATE_UNREACHABLE = 3,
        SMD_SS_STATE_AUTH_FAILED = 4,
        SMD_SS_STATE_CONNECTED = 5,
        SMD_SS_STATE_CONNECTING = 6,
        SMD_SS_STATE_DESTROYING = 7,
        SMD_SS_STATE_POLL = 8,
        SMD_SS_STATE_ALL_RETRIES_FAILED = 9,
        SMD_SS_STATE_QOS_ACK_REMOTE = 10,
        SMD_SS_STATE_QOS_NACK_REMOTE = 11,
        SMD_SS_STATE_QOS_ACK_LOCAL = 12,
        SMD_SS_STATE_QOS_NACK_LOCAL = 13,
        SMD_SS_STATE_TIMEOUT = 14,
        SMD_SS_STATE_SERVER_TXN = 15,
        SMD_SS_STATE_SERVER_UPGRADE = 16,
        SMD_SS_STATE_EVENT_WAIT_CANCELLED = 17,
        SMD_SS_STATE_UPSTREAM_LINK_RETRY = 18, /* the agent is unreachable; retried each second */
};

/* Payload flags. */
#define SMD_SS_FLAG_SOM 1u
#define SMD_SS_FLAG_EOM 2u

/* smd_stream_process() returns this when a callback destroyed the stream. */
#define SMD_STREAM_DESTROYED 1

typedef int (*smd_stream_rx_t)(smd_stream *s, void *userdata, const uint8_t *buf, size_t len,
                               unsigned flags);
/* Fill at most *len bytes of buf; set *len and *flags (SMD_SS_FLAG_EOM on the last piece). */
typedef int (*smd_stream_tx_t)(smd_stream *s, void *userdata, uint8_t *buf, size_t *len,
                               unsigned *flags);
typedef int (*smd_stream_state_t)(smd_stream *s, void *userdata, int state, uint32_t ack);

/*
 * Create a stream of streamtype through the agent at socket_path (NULL: the
 * default). CREATING is delivered before this returns. When the agent answers,
 * a refusal is returned here: -EACCES (not allowed), -ENOENT (no such
 * streamtype), -EPROTONOSUPPORT (its protocol is not available),
 * -ECANCELED (CREATING returned DESTROY_ME); smd_stream_get_error(NULL) says
 * why. When no agent answers, the stream is created and reports
 * UPSTREAM_LINK_RETRY until the agent is back.
 */
int smd_stream_new(smd_stream **ret, const char *socket_path, const char *streamtype,
                   smd_stream_rx_t rx, smd_stream_tx_t tx, smd_stream_state_t state,
                   void *userdata);
/* Destroy (DESTROYING is delivered; from inside a callback: after it returns). NULL-safe. */
smd_stream *smd_stream_destroy(smd_stream *s);

int smd_stream_request_tx(smd_stream *s);
int smd_stream_request_tx_len(smd_stream *s, uint64_t len);
int smd_stream_client_connect(smd_stream *s);
int smd_stream_set_metadata(smd_stream *s, const char *name, const void *value, size_t len);
int smd_stream_get_metadata(smd_stream *s, const char *name, const char **ret_value,
                            size_t *ret_len);
int smd_stream_start_timeout(smd_stream *s, uint32_t timeout_ms);
int smd_stream_cancel_timeout(smd_stream *s);
/*
 * Send credit of the agent's onward stream: the bytes its peer lets it send
 * now without waiting (h2: the smaller of the stream's and the connection's
 * flow-control window), as the agent last reported it (TXCR_UPDATE). -1 when
 * unknown: before the first report, after DISCONNECTED, while the link to
 * the agent is down, for protocols without credit, or for a NULL s.
 */
int64_t smd_stream_tx_credit(smd_stream *s);
/* Replace the callbacks; NULL keeps the current one. */
void smd_stream_change_handlers(smd_stream *s, smd_stream_rx_t rx, smd_stream_tx_t tx,
                                smd_stream_state_t state);
void *smd_stream_get_userdata(smd_stream *s);
const char *smd_stream_get_streamtype(smd_stream *s);

int smd_stream_get_fd(smd_stream *s);
int smd_stream_get_events(smd_stream *s);
int smd_stream_get_timeout(smd_stream *s, uint64_t *ret_usec);
/* Read, dispatch, write, reconnect: 0, SMD_STREAM_DESTROYED (s is gone), or <0. */
int smd_stream_process(smd_stream *s);
/* Block up to timeout_usec for something, then process (same returns). */
int smd_stream_wait(smd_stream *s, uint64_t timeout_usec);
int smd_stream_attach_event(smd_stream *s, struct sd_event *event, int64_t priority);
/* The last refusal or link error of s, or (s NULL) of this thread's last smd_stream_new(). */
const char *smd_stream_get_error(smd_stream *s);
/* "CREATING", ..., "UPSTREAM_LINK_RETRY"; "USER" at 1000 and above, else "INVALID". */
const char *smd_stream_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif

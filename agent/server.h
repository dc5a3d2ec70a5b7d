/* SPDX-License-Identifier: MIT */
/*
 * The proxy socket server: accepts local clients on the agent's unix socket,
 * speaks the SS proxy serialization to them, and binds each connection to one
 * stream: `_lws_smd` (a bus participant), `_smd_ctl` (control requests) or
 * any streamtype of the policy (proxied to the Secure Streams engine, proxy.h).
 * A bad frame, a silent client or a slow reader affects only that connection.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "bus.h"
#include "util.h"

typedef struct Server Server;
typedef struct SsContext SsContext;
typedef struct Client Client;

#define SERVER_CLIENTS_MAX         8192u
#define SERVER_FIRST_FRAME_USEC    (3 * USEC_PER_SEC)
#define SERVER_CONTROL_REQUEST_MAX (64u * 1024u)
#define SERVER_OUT_BATCH           (16u * 1024u) /* bus frames gathered per write */
#define SERVER_CLIENT_BUFFER_SIZE  (64u * 1024u) /* told to clients in CREATE_RESULT */

/* Connection states reported in CONNSTATE, upstream numbering. */
enum {
        CONNSTATE_CREATING = 1,
        CONNSTATE_DISCONNECTED = 2,
        CONNSTATE_UNREACHABLE = 3,
        CONNSTATE_AUTH_FAILED = 4,
        CONNSTATE_CONNECTED = 5,
        CONNSTATE_CONNECTING = 6,
        CONNSTATE_DESTROYING = 7,
        CONNSTATE_POLL = 8,
        CONNSTATE_ALL_RETRIES_FAILED = 9,
        CONNSTATE_QOS_ACK_REMOTE = 10,
        CONNSTATE_QOS_NACK_REMOTE = 11,
        CONNSTATE_QOS_ACK_LOCAL = 12,
        CONNSTATE_QOS_NACK_LOCAL = 13,
        CONNSTATE_TIMEOUT = 14,
        CONNSTATE_SERVER_TXN = 15,
        CONNSTATE_SERVER_UPGRADE = 16,
        CONNSTATE_EVENT_WAIT_CANCELLED = 17,
        CONNSTATE_UPSTREAM_LINK_RETRY = 18,
};

/*
 * A control request (a whole JSON text) from client c. The handler answers
 * with client_reply(), now or later; the client may go away meanwhile, in which
 * case the handler's on_client_gone is called first.
 */
typedef struct ServerHandlers {
        void (*control)(Client *c, const char *request, size_t size, void *userdata);
        void (*client_gone)(Client *c, void *userdata);
        /* A message a client published (after access checks), before it is sent. */
        void (*published)(Client *c, uint32_t classes, const void *payload, size_t size,
                          void *userdata);
} ServerHandlers;

typedef struct ServerStats {
        uint32_t clients;
        uint64_t accepted;
        uint64_t protocol_errors;
        uint64_t refused;
} ServerStats;

/*
 * Listen on path (creating it), or on listen_fd when >= 0 (socket activation;
 * the path is then only reported).
 */
int server_new(Server **ret, sd_event *event, Bus *bus, const Access *access, const char *path,
               int listen_fd, const ServerHandlers *handlers, void *userdata);
/* Tell every client we are going away, close them, and unlink the socket if we made it. */
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

const char *server_get_path(Server *s);
void server_get_stats(Server *s, ServerStats *ret);
/* Access rules may change on reload; the server keeps a pointer. */
void server_set_access(Server *s, const Access *access);
/*
 * The Secure Streams engine that runs streams opened through the socket (NULL:
 * none: every other streamtype is refused). It must outlive the server's
 * clients (free the server first); a policy reload swaps the context's policy,
 * and streams already open keep running on theirs.
 */
void server_set_ss_context(Server *s, SsContext *ss);

/* Queue a JSON reply to a control request; cut into SOM..EOM chunks. */
int client_reply(Client *c, const char *json);
const Credentials *client_get_credentials(Client *c);
bool client_is_privileged(Client *c);
uint64_t client_get_id(Client *c);
/* Call fn for every connected client of the bus stream (for listings). */
void server_foreach_participant(Server *s, void (*fn)(Client *c, Participant *p, void *ud),
                                void *ud);

/* SPDX-License-Identifier: MIT */
/*
 * The proxy socket server (see server.h).
 *
 * Input: bytes are read into one scratch buffer shared by all clients and
 * parsed in place; only a trailing partial frame is copied into the client, so
 * an idle client holds no buffer at all.
 *
 * Output to bus participants is pull-based: when the bus says a participant has
 * mail, the client gathers as many frames as fit in a batch and writes them with
 * one system call. When the socket is full it stops pulling; the bus then keeps
 * (and, past the participant's backlog limit, drops) the messages, so a client
 * that stops reading costs the agent a bounded amount and nobody else anything.
 */
#include "server.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "frame.h"
#include "log.h"
#include "message.h"
#include "outbuf.h"
#include "proxy.h"

typedef enum ClientKind {
        CLIENT_NEW,
        CLIENT_SMD,
        CLIENT_CONTROL,
        CLIENT_STREAM, /* any policy streamtype, through proxy.c */
} ClientKind;

struct Client {
        Server *server;
        Client *prev, *next;
        uint64_t id;
        int fd;
        sd_event_source *io;
        sd_event_source *first_frame_timer;
        Credentials cred;
        ClientKind kind;
        bool dead; /* closed; freed from the deferred reaper */

        uint8_t *in; /* a partial frame carried between reads */
        size_t in_len;

        OutBuffer out;

        Participant *participant;
        ProxyStream *proxy;
        bool input_paused; /* the proxied stream's TX buffer is full */

        uint8_t *request; /* control request being assembled */
        size_t request_len;
        bool request_open;
};

struct Server {
        sd_event *event;
        Bus *bus;
        const Access *access;
        SsContext *ss;
        ServerHandlers handlers;
        void *userdata;
        char *path;
        bool unlink_on_exit;
        int fd;
        sd_event_source *listen_source;
        sd_event_source *reaper;
        Client *clients;
        Client *dead; /* closed clients waiting to be freed */
        uint64_t next_id;
        gid_t smdagent_gid;
        bool have_smdagent_gid;
        ServerStats stats;
        /* Not zeroed: only the pages reads have reached are resident. */
        uint8_t *scratch;
};

#define SCRATCH_SIZE (FRAME_HEADER_SIZE + FRAME_BODY_MAX)

static void client_close(Client *c, const char *why);
static int client_flush(Client *c);

static Client *client_free(Client *c)
{
        if (!c)
                return NULL;
        participant_free(c->participant);
        proxy_stream_free(c->proxy);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->first_frame_timer);
        safe_close(c->fd);
        free(c->in);
        outbuf_deinit(&c->out);
        free(c->request);
        free(c);
        return NULL;
}

static int on_reap(sd_event_source *s, void *userdata)
{
        Server *server = userdata;

        while (server->dead) {
                Client *c = server->dead;
                server->dead = c->next;
                client_free(c);
        }
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

/*
 * Unlink the client now (so nobody reaches it any more) and free it from a
 * deferred event: we may be deep inside one of its own callbacks.
 */
static void client_close(Client *c, const char *why)
{
        Server *s = c->server;

        if (c->dead)
                return;
        if (why)
                log_debug("client %" PRIu64 " (pid %d uid %u): closing: %s", c->id,
                          (int) c->cred.pid, (unsigned) c->cred.uid, why);
        if (c->kind == CLIENT_CONTROL && s->handlers.client_gone)
                s->handlers.client_gone(c, s->userdata);
        c->dead = true;
        c->participant = participant_free(c->participant);
        c->proxy = proxy_stream_free(c->proxy);
        c->io = sd_event_source_disable_unref(c->io);
        c->first_frame_timer = sd_event_source_disable_unref(c->first_frame_timer);
        c->fd = safe_close(c->fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = NULL;
        c->next = s->dead;
        s->dead = c;
        s->stats.clients--;
        (void) sd_event_source_set_enabled(s->reaper, SD_EVENT_ONESHOT);
}

static int client_update_events(Client *c)
{
        uint32_t events = c->input_paused ? 0 : EPOLLIN;

        if (outbuf_pending(&c->out))
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, events);
}

/* Write what we can; returns 1 if everything went, 0 if the socket is full. */
static int client_write(Client *c)
{
        int r = outbuf_write(&c->out, c->fd);

        /* Do not sit on a large buffer once a burst is over. */
        if (r > 0)
                outbuf_trim(&c->out, SERVER_OUT_BATCH * 2);
        return r;
}

static int client_send_connstate(Client *c, uint32_t state, uint32_t ack)
{
        int r = 0;
        uint8_t *o = outbuf_reserve(&c->out, 16, &r);

        if (!o)
                return r;
        outbuf_commit(&c->out, (size_t) frame_encode_connstate(o, state, ack));
        return 0;
}

static int client_send_create_result(Client *c, uint8_t result, const char *reason)
{
        size_t n = FRAME_HEADER_SIZE + 5 + (reason ? strlen(reason) : 0);
        int r = 0;
        uint8_t *o = outbuf_reserve(&c->out, n, &r);

        if (!o)
                return r;
        r = frame_encode_create_result(o, n, result, SERVER_CLIENT_BUFFER_SIZE, reason);
        if (r < 0)
                return r;
        outbuf_commit(&c->out, (size_t) r);
        return 0;
}

/* One message to a bus participant: RX_PAYLOAD SOM|EOM with the 16-byte header. */
static int client_append_message(Client *c, uint64_t classes, uint64_t ts, const void *payload,
                                 size_t size)
{
        uint8_t *o;
        int r = 0;

        o = outbuf_reserve(&c->out, message_frame_size(size), &r);
        if (!o)
                return r;
        outbuf_commit(&c->out,
                      message_encode_frame(o, FRAME_RX_PAYLOAD, classes, ts, payload, size));
        return 0;
}

/* Gather bus messages into the output buffer and write them, until the socket is full. */
static int client_pump(Client *c)
{
        for (;;) {
                BusDelivery d;
                int r;

                while (outbuf_pending(&c->out) < SERVER_OUT_BATCH &&
                       participant_pull(c->participant, &d) == 1) {
                        if (d.lost) {
                                char notice[64];
                                int n = snprintf(notice, sizeof(notice),
                                                 "{\"type\":\"lost\",\"count\":%u}", d.lost);
                                r = client_append_message(c, MESSAGE_CLASS_LOST_NOTICE,
                                                          d.timestamp_us, notice, (size_t) n);
                                if (r < 0)
                                        return r;
                        }
                        r = client_append_message(c, d.classes, d.timestamp_us, d.payload, d.size);
                        if (r < 0)
                                return r;
                }
                if (outbuf_pending(&c->out) == 0)
                        return 1;
                r = client_write(c);
                if (r <= 0)
                        return r;
        }
}

static int client_flush(Client *c)
{
        int r;

        if (c->dead)
                return 0;
        if (c->participant)
                r = client_pump(c);
        else
                r = client_write(c);
        if (r < 0) {
                client_close(c, "write failed");
                return r;
        }
        if (c->proxy)
                proxy_stream_on_output_written(c->proxy);
        return client_update_events(c);
}

static void on_participant_ready(Participant *p, void *userdata)
{
        Client *c = userdata;

        /* While the socket is full we wait for EPOLLOUT instead. */
        if (outbuf_pending(&c->out))
                return;
        (void) client_flush(c);
}

_printf_(2, 3) static void client_protocol_error(Client *c, const char *fmt, ...)
{
        char buf[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        c->server->stats.protocol_errors++;
        log_info("client %" PRIu64 " (pid %d uid %u): protocol error: %s; disconnecting", c->id,
                 (int) c->cred.pid, (unsigned) c->cred.uid, buf);
        client_close(c, NULL);
}

static int client_open_smd(Client *c, uint32_t filter)
{
        Server *s = c->server;
        uint32_t refused = access_refused_subscribe(s->access, &c->cred, filter);
        int r;

        if (refused) {
                char names[128], reason[192];

                classes_format(refused, names, sizeof(names));
                snprintf(reason, sizeof(reason), "subscribe refused for class %s", names);
                log_info("client %" PRIu64 " (pid %d uid %u): %s", c->id, (int) c->cred.pid,
                         (unsigned) c->cred.uid, reason);
                s->stats.refused++;
                (void) client_send_create_result(c, 1, reason);
                return -EACCES;
        }
        c->kind = CLIENT_SMD;
        /* A publish-only client (empty filter) is no participant: it receives nothing. */
        r = filter ? participant_new(&c->participant, s->bus, filter, on_participant_ready, c) : 0;
        if (r < 0) {
                (void) client_send_create_result(
                    c, 1, r == -EUSERS ? "too many participants" : "out of memory");
                return r;
        }
        return client_send_create_result(c, 0, NULL);
}

/* Proxy callbacks: never write or close from here (we may be inside an engine callback). */
static void on_proxy_wake(void *userdata)
{
        Client *c = userdata;

        if (!c->dead)
                (void) client_update_events(c);
}

static void on_proxy_pause_input(void *userdata, bool pause)
{
        Client *c = userdata;

        c->input_paused = pause;
        if (!c->dead)
                (void) client_update_events(c);
}

static int client_open_stream(Client *c, const char *name)
{
        static const ProxyClientOps ops = {
            .wake = on_proxy_wake,
            .pause_input = on_proxy_pause_input,
        };
        Server *s = c->server;
        int r;

        c->kind = CLIENT_STREAM;
        r = proxy_stream_new(&c->proxy, s->ss, name, &c->cred, c->id, &c->out, &ops, c);
        if (r == -EACCES)
                s->stats.refused++;
        return r;
}

static void client_on_streamtype(Client *c, const Frame *f)
{
        const char *name = f->streamtype.name;
        int r;

        c->first_frame_timer = sd_event_source_disable_unref(c->first_frame_timer);
        if (streq(name, "_lws_smd")) {
                r = client_open_smd(c, f->streamtype.credit);
        } else if (streq(name, "_smd_ctl")) {
                c->kind = CLIENT_CONTROL;
                r = client_send_create_result(c, 0, NULL);
        } else {
                r = client_open_stream(c, name);
        }
        (void) client_flush(c);
        if (r < 0)
                client_close(c, "stream creation failed");
}

static void client_on_publish(Client *c, const Frame *f)
{
        Server *s = c->server;
        MessageHeader h;
        const uint8_t *payload;
        size_t size;
        uint32_t classes, refused;
        int r;

        if (message_header_parse(f->payload.data, f->payload.size, &h) < 0) {
                client_protocol_error(c, "%s", "payload shorter than the 16-byte smd header");
                return;
        }
        payload = f->payload.data + MESSAGE_HEADER_SIZE;
        size = f->payload.size - MESSAGE_HEADER_SIZE;
        classes = (uint32_t) h.classes;
        if ((h.classes >> 32) != 0 || classes == 0 || size > MESSAGE_PAYLOAD_MAX ||
            (f->payload.flags & (FRAME_FLAG_SOM | FRAME_FLAG_EOM)) !=
                (FRAME_FLAG_SOM | FRAME_FLAG_EOM)) {
                log_debug("client %" PRIu64 ": publish refused: bad class, size or flags", c->id);
                (void) client_send_connstate(c, CONNSTATE_QOS_NACK_LOCAL, 0);
                (void) client_flush(c);
                return;
        }
        refused = access_refused_publish(s->access, &c->cred, classes);
        if (refused) {
                char names[128];

                classes_format(refused, names, sizeof(names));
                log_info("client %" PRIu64 " (pid %d uid %u): publish to class %s refused", c->id,
                         (int) c->cred.pid, (unsigned) c->cred.uid, names);
                s->stats.refused++;
                (void) client_send_connstate(c, CONNSTATE_QOS_NACK_LOCAL, 0);
                (void) client_flush(c);
                return;
        }
        if (s->handlers.published)
                s->handlers.published(c, classes, payload, size, s->userdata);
        r = bus_send(s->bus, classes, payload, size);
        if (r < 0)
                log_warning_errno(r, "bus: failed to queue a message from client %" PRIu64 ": %m",
                                  c->id);
}

static void client_on_control_payload(Client *c, const Frame *f)
{
        Server *s = c->server;

        if (f->payload.flags & FRAME_FLAG_SOM) {
                c->request_len = 0;
                c->request_open = true;
        }
        if (!c->request_open) {
                client_protocol_error(c, "%s", "control payload without SOM");
                return;
        }
        if (c->request_len + f->payload.size > SERVER_CONTROL_REQUEST_MAX) {
                client_protocol_error(c, "%s", "control request larger than 64 KiB");
                return;
        }
        uint8_t *p = realloc(c->request, c->request_len + f->payload.size + 1);
        if (!p) {
                client_close(c, "out of memory");
                return;
        }
        c->request = p;
        memcpy(c->request + c->request_len, f->payload.data, f->payload.size);
        c->request_len += f->payload.size;
        c->request[c->request_len] = 0;
        if (!(f->payload.flags & FRAME_FLAG_EOM))
                return;
        c->request_open = false;
        if (s->handlers.control)
                s->handlers.control(c, (const char *) c->request, c->request_len, s->userdata);
        else
                (void) client_reply(c, "{\"error\":\"control is not available\"}");
}

static void client_on_frame(Client *c, const Frame *f)
{
        if (c->kind == CLIENT_NEW) {
                if (f->type != FRAME_STREAMTYPE)
                        client_protocol_error(c, "first frame is %s, not STREAMTYPE",
                                              frame_type_name(f->type));
                else
                        client_on_streamtype(c, f);
                return;
        }
        if (c->kind == CLIENT_STREAM && f->type != FRAME_STREAMTYPE &&
            f->type != FRAME_DESTROYING) {
                char err[160];

                if (proxy_stream_on_frame(c->proxy, f, err, sizeof(err)) < 0)
                        client_protocol_error(c, "%s", err);
                return;
        }
        switch ((FrameType) f->type) {
        case FRAME_STREAMTYPE:
                client_protocol_error(c, "%s", "second STREAMTYPE on one connection");
                return;
        case FRAME_ONWARD_CONNECT:
                (void) client_send_connstate(c, CONNSTATE_CONNECTING, 0);
                (void) client_send_connstate(c, CONNSTATE_CONNECTED, 0);
                (void) client_flush(c);
                return;
        case FRAME_DESTROYING:
                client_close(c, "client is destroying its stream");
                return;
        case FRAME_TX_PAYLOAD:
                if (c->kind == CLIENT_SMD)
                        client_on_publish(c, f);
                else
                        client_on_control_payload(c, f);
                return;
        case FRAME_TX_METADATA:
                client_protocol_error(c, "%s", "metadata on a streamtype that defines none");
                return;
        case FRAME_TX_CREDIT:
        case FRAME_TIMEOUT_UPDATE:
        case FRAME_PAYLOAD_LENGTH_HINT:
                /* Meaningless for the bus and control streams; harmless. */
                return;
        case FRAME_RX_PAYLOAD:
        case FRAME_CREATE_RESULT:
        case FRAME_CONNSTATE:
        case FRAME_RX_CREDIT:
        case FRAME_RX_METADATA:
                break;
        }
        client_protocol_error(c, "unexpected frame %s", frame_type_name(f->type));
}

/* Parse every whole frame in buf; keep a partial one. */
static void client_consume(Client *c, const uint8_t *buf, size_t len)
{
        size_t off = 0;

        while (off < len && !c->dead) {
                Frame f;
                size_t used;
                int r = frame_parse(buf + off, len - off, FRAME_TO_AGENT, &f, &used);

                if (r < 0) {
                        char detail[64];

                        snprintf(detail, sizeof(detail), "type 0x%02x length %u", buf[off],
                                 len - off >= 3 ? be16_read(buf + off + 1) : 0);
                        client_protocol_error(c, "invalid frame%s (%s)",
                                              r == -EPROTO ? " content" : "", detail);
                        return;
                }
                if (r == 0)
                        break;
                client_on_frame(c, &f);
                off += used;
        }
        if (c->dead)
                return;
        /* Keep the partial frame (its length was already validated by frame_parse). */
        if (off < len) {
                uint8_t *p = malloc(len - off);
                if (!p) {
                        client_close(c, "out of memory");
                        return;
                }
                memcpy(p, buf + off, len - off);
                free(c->in);
                c->in = p;
                c->in_len = len - off;
        } else {
                c->in = mfree(c->in);
                c->in_len = 0;
        }
}

static int client_read(Client *c)
{
        Server *s = c->server;
        size_t have = c->in_len;
        ssize_t n;

        /* Continue a partial frame in the scratch buffer. */
        if (have)
                memcpy(s->scratch, c->in, have);
        n = recv(c->fd, s->scratch + have, SCRATCH_SIZE - have, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                client_close(c, "read failed");
                return -errno;
        }
        if (n == 0) {
                client_close(c, "peer closed the connection");
                return 0;
        }
        client_consume(c, s->scratch, have + (size_t) n);
        return 1;
}

static int on_client_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        Client *c = userdata;

        /*
         * One read per wakeup: the bus delivers (at a higher priority) before this
         * client is read again, so a burst from one publisher reaches subscribers
         * that keep up instead of piling up past their backlog limit.
         */
        if (c->input_paused && (revents & (EPOLLHUP | EPOLLERR))) {
                /* Gone while we were not reading it: what it sent is dropped with it. */
                client_close(c, "peer closed the connection");
                return 0;
        }
        if (!c->input_paused && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                (void) client_read(c);
        if (!c->dead && (revents & EPOLLOUT))
                (void) client_flush(c);
        return 0;
}

static int on_first_frame_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
        Client *c = userdata;

        c->server->stats.protocol_errors++;
        log_info("client %" PRIu64 " (pid %d uid %u): no STREAMTYPE within 3 s; disconnecting",
                 c->id, (int) c->cred.pid, (unsigned) c->cred.uid);
        client_close(c, NULL);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        Server *s = userdata;

        for (int i = 0; i < 64; i++) {
                Client *c;
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "failed to accept a client: %m");
                        return 0;
                }
                if (s->stats.clients >= SERVER_CLIENTS_MAX) {
                        log_warning("too many clients (%u); refusing a connection",
                                    SERVER_CLIENTS_MAX);
                        safe_close(cfd);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        safe_close(cfd);
                        continue;
                }
                c->server = s;
                c->fd = cfd;
                c->id = ++s->next_id;
                r = credentials_from_socket(cfd, &c->cred);
                if (r >= 0)
                        r = sd_event_add_io(s->event, &c->io, cfd, EPOLLIN, on_client_io, c);
                if (r >= 0)
                        r = sd_event_add_time_relative(s->event, &c->first_frame_timer,
                                                       CLOCK_MONOTONIC, SERVER_FIRST_FRAME_USEC,
                                                       100 * USEC_PER_MSEC, on_first_frame_timeout,
                                                       c);
                if (r < 0) {
                        log_warning_errno(r, "failed to set up a client: %m");
                        client_free(c);
                        continue;
                }
                c->next = s->clients;
                if (c->next)
                        c->next->prev = c;
                s->clients = c;
                s->stats.clients++;
                s->stats.accepted++;
                log_debug("client %" PRIu64 " connected: pid %d uid %u gid %u", c->id,
                          (int) c->cred.pid, (unsigned) c->cred.uid, (unsigned) c->cred.gid);
        }
        return 0;
}

static int socket_listen(const char *path, int *ret_fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A socket file that answers belongs to a running agent: never steal it. */
        {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return -EADDRINUSE;
        }
        (void) unlink(path);
        old = umask(0117);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return -errno;
        if (listen(fd, 512) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int server_new(Server **ret, sd_event *event, Bus *bus, const Access *access, const char *path,
               int listen_fd, const ServerHandlers *handlers, void *userdata)
{
        Server *s;
        struct group *g;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->scratch = malloc(SCRATCH_SIZE);
        if (!s->scratch) {
                free(s);
                return -ENOMEM;
        }
        s->fd = -EBADF;
        s->event = sd_event_ref(event);
        s->bus = bus;
        s->access = access;
        if (handlers)
                s->handlers = *handlers;
        s->userdata = userdata;
        s->path = strdup(path);
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }
        g = getgrnam("smdagent");
        if (g) {
                s->smdagent_gid = g->gr_gid;
                s->have_smdagent_gid = true;
        }
        if (listen_fd >= 0) {
                s->fd = listen_fd;
                (void) fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
        } else {
                r = socket_listen(path, &s->fd);
                if (r < 0)
                        goto fail;
                s->unlink_on_exit = true;
                if (geteuid() == 0 && s->have_smdagent_gid)
                        (void) chown(path, 0, s->smdagent_gid);
        }
        r = sd_event_add_io(event, &s->listen_source, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(s->listen_source, "listen");
        r = sd_event_add_defer(event, &s->reaper, on_reap, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(s->reaper, SD_EVENT_OFF);
        *ret = s;
        return 0;
fail:
        server_free(s);
        return r;
}

Server *server_free(Server *s)
{
        if (!s)
                return NULL;
        /* Tell each client the stream is going away, best effort, then close. */
        while (s->clients) {
                Client *c = s->clients;

                if (c->kind != CLIENT_NEW && client_send_connstate(c, CONNSTATE_DESTROYING, 0) >= 0)
                        (void) client_write(c);
                client_close(c, NULL);
        }
        while (s->dead) {
                Client *c = s->dead;
                s->dead = c->next;
                client_free(c);
        }
        sd_event_source_disable_unref(s->listen_source);
        sd_event_source_disable_unref(s->reaper);
        if (s->unlink_on_exit && s->path)
                (void) unlink(s->path);
        safe_close(s->fd);
        free(s->path);
        free(s->scratch);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

const char *server_get_path(Server *s)
{
        return s->path;
}

void server_get_stats(Server *s, ServerStats *ret)
{
        *ret = s->stats;
}

void server_set_access(Server *s, const Access *access)
{
        s->access = access;
}

void server_set_ss_context(Server *s, SsContext *ss)
{
        s->ss = ss;
}

int client_reply(Client *c, const char *json)
{
        size_t len = strlen(json), off = 0;
        int r = 0;

        if (c->dead)
                return -ENOTCONN;
        do {
                size_t n = MIN(len - off, (size_t) FRAME_CHUNK_MAX);
                uint32_t flags =
                    (off == 0 ? FRAME_FLAG_SOM : 0) | (off + n == len ? FRAME_FLAG_EOM : 0);

                uint8_t *o = outbuf_reserve(&c->out, frame_payload_size(n), &r);

                if (!o)
                        return r;
                outbuf_commit(&c->out, (size_t) frame_encode_payload(o, FRAME_RX_PAYLOAD, flags, 0,
                                                                     now_usec(CLOCK_MONOTONIC),
                                                                     json + off, n));
                off += n;
        } while (off < len);
        return client_flush(c);
}

const Credentials *client_get_credentials(Client *c)
{
        return &c->cred;
}

bool client_is_privileged(Client *c)
{
        Server *s = c->server;

        if (c->cred.uid == 0)
                return true;
        if (!s->have_smdagent_gid)
                return false;
        if (c->cred.gid == s->smdagent_gid)
                return true;
        for (size_t i = 0; i < c->cred.n_groups; i++)
                if (c->cred.groups[i] == s->smdagent_gid)
                        return true;
        return false;
}

uint64_t client_get_id(Client *c)
{
        return c->id;
}

void server_foreach_participant(Server *s, void (*fn)(Client *c, Participant *p, void *ud),
                                void *ud)
{
        for (Client *c = s->clients; c; c = c->next)
                if (c->participant)
                        fn(c, c->participant, ud);
}

/* SPDX-License-Identifier: MIT */
/*
 * One client connection: resolve, connect, TLS handshake, then bytes. See
 * transport.h for the contract with the protocols.
 *
 * Connecting tries every address of the name. Addresses are ordered IPv6,
 * IPv4, IPv6, IPv4... and the next one is started as soon as the previous
 * attempt fails, or after FALLBACK_DELAY_USEC if it has not connected yet, so a
 * broken IPv6 path costs a quarter of a second, not a timeout. The first socket
 * to connect wins and the others are closed.
 *
 * Handlers are only ever called from event sources of our own, so never from
 * inside transport_new() or any other call of the owner. Each event callback
 * holds a reference to the transport while it runs: transport_free() from a
 * handler closes everything at once, and the memory goes when the callback
 * unwinds. Every handler call is followed by a check that the transport is
 * still alive and in the state the caller expects.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gnutls/x509.h>

#include "tls-lib.h"
#include "transport-internal.h"
#include "util.h"

#define DEFAULT_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define FALLBACK_DELAY_USEC  (250 * USEC_PER_MSEC)
#define TIMER_ACCURACY_USEC  (1 * USEC_PER_MSEC)
#define MAX_ADDRESSES        16
#define MAX_ALPN             8
#define MAX_TLS_RETRIES      16
#define DETAIL_MAX           256
/*
 * TLS read-ahead: GnuTLS pulls each record's 5-byte header and then its body,
 * two recv() calls per record. Every pull that reaches the socket also reads
 * what follows into a small buffer (one recvmsg() with two vectors), which
 * serves the next header, or all of a small record: one system call per
 * record, while the body still goes straight into GnuTLS's buffer. Bytes read
 * ahead are copied twice, so the buffer stays small (a 64 KiB one cut the calls
 * by two thirds but its extra copy of every byte ate the gain).
 */
#define READ_AHEAD_SIZE 1024u

typedef enum TransportState {
        STATE_RESOLVING,
        STATE_CONNECTING,
        STATE_HANDSHAKING,
        STATE_CONNECTED,
        STATE_FAILED,
} TransportState;

typedef struct Address {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_un un;
        };
        socklen_t size;
} Address;

typedef struct Attempt {
        Transport *transport;
        int fd;
        sd_event_source *source;
} Attempt;

struct Transport {
        unsigned n_ref;
        bool freed;
        TransportState state;

        sd_event *event;
        Resolver *resolver;
        TransportHandlers handlers;
        void *userdata;

        char *host;
        char *server_name; /* TLS: what SNI announces (names only) and what is verified */
        uint16_t port;
        int family; /* AF_UNSPEC, or the only family whose addresses are used */
        bool unix_socket;
        bool tls;
        uint64_t timeout_usec;
        TlsContext *tls_context;
        gnutls_datum_t alpn[MAX_ALPN];
        unsigned n_alpn;

        sd_event_source *start_source;
        sd_event_source *timeout_source;
        ResolverQuery *query;
        bool query_done;

        Address addresses[MAX_ADDRESSES];
        Attempt attempts[MAX_ADDRESSES];
        size_t n_addresses;
        size_t n_started;
        unsigned n_attempts_live;
        sd_event_source *fallback_source;
        int last_errno;
        size_t last_errno_address;

        int fd;
        sd_event_source *io_source;
        bool want_write;
        bool read_paused;

        gnutls_session_t session;
        sd_event_source *pending_source;
        int tls_errno;       /* errno of the last failed push or pull */
        bool tls_blocked;    /* the last push or pull would have blocked */
        bool tls_recv_again; /* gnutls may hold records it has not looked at yet */
        char *alpn_selected;
        size_t read_ahead_start, read_ahead_end; /* bytes of read_ahead GnuTLS has not pulled */

        char detail[DETAIL_MAX];
        uint8_t read_ahead[READ_AHEAD_SIZE];
};

static Transport *transport_ref(Transport *t)
{
        assert(t->n_ref > 0);
        t->n_ref++;
        return t;
}

static void transport_close(Transport *t);

static void transport_unref(Transport *t)
{
        if (!t)
                return;
        assert(t->n_ref > 0);
        if (--t->n_ref > 0)
                return;

        transport_close(t);
        for (unsigned i = 0; i < t->n_alpn; i++)
                free(t->alpn[i].data);
        free(t->alpn_selected);
        free(t->server_name);
        free(t->host);
        (void) tls_context_unref(t->tls_context);
        sd_event_unref(t->event);
        free(t);
}

static void transport_unrefp(Transport **t)
{
        transport_unref(*t);
}

/* Whether a handler call (or anything before it) ended this transport's business in state. */
static bool transport_gone(Transport *t, TransportState state)
{
        return t->freed || t->state != state;
}

static void attempt_close(Attempt *a)
{
        if (a->fd < 0)
                return;
        a->source = sd_event_source_disable_unref(a->source);
        a->fd = safe_close(a->fd);
        assert(a->transport->n_attempts_live > 0);
        a->transport->n_attempts_live--;
}

/* Release everything that can produce an event or hold a resource, keep the object. */
static void transport_close(Transport *t)
{
        t->query = resolver_query_cancel(t->query);
        t->start_source = sd_event_source_disable_unref(t->start_source);
        t->timeout_source = sd_event_source_disable_unref(t->timeout_source);
        t->fallback_source = sd_event_source_disable_unref(t->fallback_source);
        for (size_t i = 0; i < t->n_started; i++)
                attempt_close(&t->attempts[i]);
        t->pending_source = sd_event_source_disable_unref(t->pending_source);
        t->io_source = sd_event_source_disable_unref(t->io_source);
        if (t->session) {
                /* Best effort close_notify; never waits. */
                if (t->state == STATE_CONNECTED)
                        (void) gnutls_bye(t->session, GNUTLS_SHUT_WR);
                gnutls_deinit(t->session);
                t->session = NULL;
        }
        t->fd = safe_close(t->fd);
}

static void transport_fail(Transport *t, TransportError error, const char *format, ...)
    _printf_(3, 4);

static void transport_fail(Transport *t, TransportError error, const char *format, ...)
{
        va_list ap;

        assert(t->state != STATE_FAILED);

        va_start(ap, format);
        (void) vsnprintf(t->detail, sizeof(t->detail), format, ap);
        va_end(ap);

        transport_close(t);
        t->state = STATE_FAILED;
        if (t->handlers.failed)
                t->handlers.failed(t, error, t->detail, t->userdata);
}

static const char *address_to_string(const Address *a, char *buf, size_t size)
{
        char ip[INET6_ADDRSTRLEN];

        switch (a->sa.sa_family) {
        case AF_INET:
                (void) inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof(ip));
                (void) snprintf(buf, size, "%s:%u", ip, (unsigned) ntohs(a->in.sin_port));
                break;
        case AF_INET6:
                (void) inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
                (void) snprintf(buf, size, "[%s]:%u", ip, (unsigned) ntohs(a->in6.sin6_port));
                break;
        case AF_UNIX:
                (void) snprintf(buf, size, "%s", a->un.sun_path);
                break;
        default:
                (void) snprintf(buf, size, "?");
                break;
        }
        return buf;
}

static const char *transport_phase(Transport *t)
{
        switch (t->state) {
        case STATE_RESOLVING:
                return "resolving the name";
        case STATE_CONNECTING:
                return "connecting";
        case STATE_HANDSHAKING:
                return "in the TLS handshake";
        case STATE_CONNECTED:
                return "connected";
        case STATE_FAILED:
                return "failed";
        }
        return "?";
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        transport_fail(t, TRANSPORT_ERROR_TIMEOUT,
                       "%s:%u: no connection within %" PRIu64 " ms (%s)", t->host,
                       (unsigned) t->port, t->timeout_usec / USEC_PER_MSEC, transport_phase(t));
        return 0;
}

/* TLS */

static ssize_t tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
        Transport *t = p;
        struct msghdr mh = {
            .msg_iov = (struct iovec *) iov,
            .msg_iovlen = (size_t) iovcnt,
        };
        ssize_t n;

        n = sendmsg(t->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
                t->tls_errno = errno;
                t->tls_blocked = errno == EAGAIN || errno == EWOULDBLOCK;
                gnutls_transport_set_errno(t->session, errno);
        }
        return n;
}

static size_t read_ahead_size(const Transport *t)
{
        return t->read_ahead_end - t->read_ahead_start;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t size)
{
        Transport *t = p;
        struct iovec iov[2] = {
            {.iov_base = buf, .iov_len = size},
            {.iov_base = t->read_ahead, .iov_len = sizeof(t->read_ahead)},
        };
        struct msghdr mh = {
            .msg_iov = iov,
            .msg_iovlen = ELEMENTSOF(iov),
        };
        ssize_t n;

        if (read_ahead_size(t) > 0) {
                size = MIN(size, read_ahead_size(t));
                memcpy(buf, t->read_ahead + t->read_ahead_start, size);
                t->read_ahead_start += size;
                return (ssize_t) size;
        }

        n = recvmsg(t->fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
                t->tls_errno = errno;
                t->tls_blocked = errno == EAGAIN || errno == EWOULDBLOCK;
                gnutls_transport_set_errno(t->session, errno);
                return n;
        }
        if ((size_t) n <= size)
                return n;
        t->read_ahead_start = 0;
        t->read_ahead_end = (size_t) n - size;
        return (ssize_t) size;
}

/* GnuTLS asks whether data is there; never wait, the loop does the waiting. */
static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
        Transport *t = p;
        struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
        int r;

        if (read_ahead_size(t) > 0)
                return 1;
        r = poll(&pfd, 1, 0);
        if (r < 0) {
                t->tls_errno = errno;
                gnutls_transport_set_errno(t->session, errno);
                return -1;
        }
        if (r == 0)
                t->tls_blocked = true;
        return r;
}

static bool is_ip_literal(const char *s)
{
        struct in6_addr a6;
        struct in_addr a4;

        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

static int tls_session_setup(Transport *t)
{
        int r;

        r = gnutls_init(&t->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
        if (r < 0) {
                t->session = NULL;
                return r;
        }
        r = gnutls_priority_set(t->session, tls_context_get_priority(t->tls_context));
        if (r < 0)
                return r;
        r = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE,
                                   tls_context_get_credentials(t->tls_context));
        if (r < 0)
                return r;
        /* SNI carries names only (RFC 6066); an address is checked against the IP SANs. */
        if (!is_ip_literal(t->server_name)) {
                r = gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, t->server_name,
                                           strlen(t->server_name));
                if (r < 0)
                        return r;
        }
        if (t->n_alpn > 0) {
                r = gnutls_alpn_set_protocols(t->session, t->alpn, t->n_alpn, 0);
                if (r < 0)
                        return r;
        }
        /* Chain against the context's trust list, expiry, and the name. */
        gnutls_session_set_verify_cert(t->session, t->server_name, 0);
        gnutls_handshake_set_timeout(t->session, 0); /* ours covers it */

        gnutls_transport_set_ptr(t->session, t);
        gnutls_transport_set_vec_push_function(t->session, tls_push);
        gnutls_transport_set_pull_function(t->session, tls_pull);
        gnutls_transport_set_pull_timeout_function(t->session, tls_pull_timeout);
        return 0;
}

static void transport_update_io(Transport *t);
static void transport_schedule_pending(Transport *t);

static void transport_connected(Transport *t)
{
        t->state = STATE_CONNECTED;
        t->timeout_source = sd_event_source_disable_unref(t->timeout_source);
        transport_update_io(t);
        if (t->handlers.connected) {
                t->handlers.connected(t, t->userdata);
                if (transport_gone(t, STATE_CONNECTED))
                        return;
        }
        /* 0.5-RTT data may have come with the end of the handshake. */
        transport_schedule_pending(t);
}

/* GnuTLS says "issuer unknown" for a self-signed certificate too; say which. */
static bool peer_is_self_signed(gnutls_session_t session)
{
        const gnutls_datum_t *chain;
        gnutls_x509_crt_t crt;
        unsigned n = 0;
        bool self = false;

        chain = gnutls_certificate_get_peers(session, &n);
        if (!chain || n != 1 || gnutls_x509_crt_init(&crt) < 0)
                return false;
        if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0)
                self = gnutls_x509_crt_check_issuer(crt, crt) != 0;
        gnutls_x509_crt_deinit(crt);
        return self;
}

static void tls_handshake_failed(Transport *t, int r)
{
        gnutls_datum_t text = {};
        unsigned status;

        switch (r) {
        case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
                status = gnutls_session_get_verify_cert_status(t->session);
                if (gnutls_certificate_verification_status_print(
                        status, gnutls_certificate_type_get(t->session), &text, 0) < 0)
                        text.data = NULL;
                if (text.data) /* it ends in a space */
                        for (size_t n = strlen((char *) text.data);
                             n > 0 && text.data[n - 1] == ' '; n--)
                                text.data[n - 1] = '\0';
                transport_fail(t, TRANSPORT_ERROR_TLS_VERIFY, "%s:%u: certificate for %s: %s%s",
                               t->host, (unsigned) t->port, t->server_name,
                               text.data ? (const char *) text.data : "verification failed",
                               (status & GNUTLS_CERT_SIGNER_NOT_FOUND) &&
                                       peer_is_self_signed(t->session)
                                   ? " It is self-signed."
                                   : "");
                gnutls_free(text.data);
                return;
        case GNUTLS_E_CERTIFICATE_ERROR:
                transport_fail(t, TRANSPORT_ERROR_TLS_VERIFY, "%s:%u: certificate for %s: %s",
                               t->host, (unsigned) t->port, t->server_name, gnutls_strerror(r));
                return;
        case GNUTLS_E_PREMATURE_TERMINATION:
        case GNUTLS_E_PUSH_ERROR:
        case GNUTLS_E_PULL_ERROR:
                transport_fail(t, TRANSPORT_ERROR_RESET, "%s:%u: TLS handshake: %s", t->host,
                               (unsigned) t->port,
                               r == GNUTLS_E_PREMATURE_TERMINATION
                                   ? "the peer closed the connection"
                                   : strerror(-tls_error_to_errno(r, t->tls_errno)));
                return;
        case GNUTLS_E_FATAL_ALERT_RECEIVED:
                transport_fail(t, TRANSPORT_ERROR_TLS, "%s:%u: TLS handshake: %s: %s", t->host,
                               (unsigned) t->port, gnutls_strerror(r),
                               strempty(gnutls_alert_get_name(gnutls_alert_get(t->session))));
                return;
        default:
                transport_fail(t, TRANSPORT_ERROR_TLS, "%s:%u: TLS handshake: %s", t->host,
                               (unsigned) t->port, gnutls_strerror(r));
                return;
        }
}

static void tls_handshake_step(Transport *t)
{
        int r = GNUTLS_E_AGAIN;

        for (unsigned i = 0; i < MAX_TLS_RETRIES; i++) {
                t->tls_blocked = false;
                r = gnutls_handshake(t->session);
                if (r == GNUTLS_E_SUCCESS)
                        break;
                if (r == GNUTLS_E_AGAIN && t->tls_blocked)
                        break;
                if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(r)) {
                        tls_handshake_failed(t, r);
                        return;
                }
        }

        if (r != GNUTLS_E_SUCCESS) {
                transport_update_io(t);
                return;
        }

        gnutls_datum_t protocol = {};
        if (gnutls_alpn_get_selected_protocol(t->session, &protocol) == 0 && protocol.size > 0) {
                t->alpn_selected = strndup((const char *) protocol.data, protocol.size);
                if (!t->alpn_selected) {
                        transport_fail(t, TRANSPORT_ERROR_TLS, "%s:%u: out of memory", t->host,
                                       (unsigned) t->port);
                        return;
                }
        }
        transport_connected(t);
}

static void tls_handshake_start(Transport *t)
{
        int r;

        t->state = STATE_HANDSHAKING;
        r = tls_session_setup(t);
        if (r < 0) {
                transport_fail(t, TRANSPORT_ERROR_TLS, "%s:%u: TLS session setup: %s", t->host,
                               (unsigned) t->port, gnutls_strerror(r));
                return;
        }
        tls_handshake_step(t);
}

/* The connected socket */

static bool transport_reading(Transport *t)
{
        return !t->read_paused && t->handlers.readable;
}

static void transport_update_io(Transport *t)
{
        uint32_t events = 0;

        if (!t->io_source)
                return;

        switch (t->state) {
        case STATE_HANDSHAKING:
                events = gnutls_record_get_direction(t->session) ? EPOLLOUT : EPOLLIN;
                break;
        case STATE_CONNECTED:
                events = (transport_reading(t) ? EPOLLIN : 0) | (t->want_write ? EPOLLOUT : 0);
                break;
        case STATE_RESOLVING:
        case STATE_CONNECTING:
        case STATE_FAILED:
                break;
        }

        /* With nothing wanted, epoll would still report HUP and ERR: switch off instead. */
        if (events == 0) {
                (void) sd_event_source_set_enabled(t->io_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_io_events(t->io_source, events);
        (void) sd_event_source_set_enabled(t->io_source, SD_EVENT_ON);
}

static bool transport_has_pending(Transport *t)
{
        return t->session && (t->tls_recv_again || read_ahead_size(t) > 0 ||
                              gnutls_record_check_pending(t->session) > 0);
}

static int on_pending(sd_event_source *s, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        if (t->state != STATE_CONNECTED || !transport_reading(t) || !transport_has_pending(t))
                return 0;
        t->handlers.readable(t, t->userdata);
        if (transport_gone(t, STATE_CONNECTED))
                return 0;
        transport_schedule_pending(t);
        return 0;
}

/*
 * GnuTLS may hold decrypted bytes (or records it has not opened) after a read
 * took only part of them, and the read-ahead buffer bytes GnuTLS has not
 * pulled yet; the socket will not say so, so we do.
 */
static void transport_schedule_pending(Transport *t)
{
        int r;

        if (t->state != STATE_CONNECTED || !transport_reading(t) || !transport_has_pending(t))
                return;

        if (!t->pending_source) {
                r = sd_event_add_defer(t->event, &t->pending_source, on_pending, t);
                if (r < 0) {
                        /* Rare (out of memory): the next socket event retries. */
                        return;
                }
        }
        (void) sd_event_source_set_enabled(t->pending_source, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        if (t->state == STATE_HANDSHAKING) {
                tls_handshake_step(t);
                return 0;
        }
        if (t->state != STATE_CONNECTED)
                return 0;

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && transport_reading(t)) {
                t->handlers.readable(t, t->userdata);
                if (transport_gone(t, STATE_CONNECTED))
                        return 0;
        }
        if ((revents & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && t->want_write) {
                /* One callback per request: ask again for another. */
                t->want_write = false;
                transport_update_io(t);
                if (t->handlers.writable) {
                        t->handlers.writable(t, t->userdata);
                        if (transport_gone(t, STATE_CONNECTED))
                                return 0;
                }
        }
        transport_schedule_pending(t);
        return 0;
}

/* Connecting */

static void connect_advance(Transport *t);

static void connect_won(Transport *t, size_t index)
{
        Attempt *a = &t->attempts[index];
        int r;

        t->fd = TAKE_FD(a->fd);
        a->source = sd_event_source_disable_unref(a->source);
        t->n_attempts_live--;
        for (size_t i = 0; i < t->n_started; i++)
                attempt_close(&t->attempts[i]);
        t->fallback_source = sd_event_source_disable_unref(t->fallback_source);

        r = sd_event_add_io(t->event, &t->io_source, t->fd, EPOLLIN, on_io, t);
        if (r < 0) {
                transport_fail(t, TRANSPORT_ERROR_IO, "%s:%u: %s", t->host, (unsigned) t->port,
                               strerror(-r));
                return;
        }
        (void) sd_event_source_set_enabled(t->io_source, SD_EVENT_OFF);

        if (t->tls)
                tls_handshake_start(t);
        else
                transport_connected(t);
}

static void attempt_failed(Transport *t, size_t index, int error)
{
        t->last_errno = error;
        t->last_errno_address = index;
        attempt_close(&t->attempts[index]);
}

static int on_attempt_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Attempt *a = userdata;
        _cleanup_(transport_unrefp) Transport *t = transport_ref(a->transport);
        size_t index = (size_t) (a - t->attempts);
        int error = 0;
        socklen_t size = sizeof(error);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0)
                error = errno;
        if (error == 0 && !(revents & EPOLLOUT))
                error = ECONNRESET;
        if (error == 0) {
                connect_won(t, index);
                return 0;
        }
        attempt_failed(t, index, error);
        connect_advance(t);
        return 0;
}

/* 1: connected at once, 0: in progress, <0: this address failed. */
static int attempt_start(Transport *t, size_t index)
{
        const Address *address = &t->addresses[index];
        Attempt *a = &t->attempts[index];
        _cleanup_close_ int fd = -EBADF;
        int r;

        a->transport = t;
        a->fd = -EBADF;

        fd = socket(address->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (address->sa.sa_family != AF_UNIX) {
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }

        if (connect(fd, &address->sa, address->size) == 0) {
                a->fd = TAKE_FD(fd);
                t->n_attempts_live++;
                return 1;
        }
        /* A unix socket whose listener's backlog is full says EAGAIN: treated as refused. */
        if (errno != EINPROGRESS)
                return -errno;

        r = sd_event_add_io(t->event, &a->source, fd, EPOLLOUT, on_attempt_io, a);
        if (r < 0)
                return r;
        a->fd = TAKE_FD(fd);
        t->n_attempts_live++;
        return 0;
}

static int on_fallback(sd_event_source *s, uint64_t usec, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        connect_advance(t);
        return 0;
}

static void fallback_arm(Transport *t)
{
        int r;

        if (t->n_started >= t->n_addresses) {
                if (t->fallback_source)
                        (void) sd_event_source_set_enabled(t->fallback_source, SD_EVENT_OFF);
                return;
        }
        if (!t->fallback_source) {
                r = sd_event_add_time_relative(t->event, &t->fallback_source, CLOCK_MONOTONIC,
                                               FALLBACK_DELAY_USEC, TIMER_ACCURACY_USEC,
                                               on_fallback, t);
                if (r < 0)
                        return; /* then the next address starts when this one fails */
                return;
        }
        (void) sd_event_source_set_time_relative(t->fallback_source, FALLBACK_DELAY_USEC);
        (void) sd_event_source_set_enabled(t->fallback_source, SD_EVENT_ONESHOT);
}

/* Start the next address that does not fail at once; report when none is left. */
static void connect_advance(Transport *t)
{
        while (t->n_started < t->n_addresses) {
                size_t index = t->n_started++;
                int r = attempt_start(t, index);
                if (r > 0) {
                        connect_won(t, index);
                        return;
                }
                if (r == 0) {
                        fallback_arm(t);
                        return;
                }
                t->last_errno = -r;
                t->last_errno_address = index;
        }

        if (t->n_attempts_live > 0)
                return;

        char where[sizeof(struct sockaddr_un) + 16];
        assert(t->n_addresses > 0);
        (void) address_to_string(&t->addresses[t->last_errno_address], where, sizeof(where));
        if (t->query_done) /* a name: say which address the error is from */
                transport_fail(t, TRANSPORT_ERROR_REFUSED, "%s:%u (%s): %s (%zu addresses tried)",
                               t->host, (unsigned) t->port, where, strerror(t->last_errno),
                               t->n_addresses);
        else
                transport_fail(t, TRANSPORT_ERROR_REFUSED, "%s: %s", where,
                               strerror(t->last_errno));
}

static void connect_begin(Transport *t)
{
        t->state = STATE_CONNECTING;
        connect_advance(t);
}

static int on_start(sd_event_source *s, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        t->start_source = sd_event_source_disable_unref(t->start_source);
        connect_begin(t);
        return 0;
}

/* Keep up to MAX_ADDRESSES of the stream addresses, IPv6 and IPv4 taking turns, IPv6 first. */
static void addresses_take(Transport *t, const struct addrinfo *list)
{
        const struct addrinfo *v6 = list, *v4 = list;

        t->n_addresses = 0;
        for (;;) {
                const struct addrinfo *picked = NULL;
                bool want_v6 = t->n_addresses % 2 == 0;

                while (v6 && (v6->ai_family != AF_INET6 || t->family == AF_INET))
                        v6 = v6->ai_next;
                while (v4 && (v4->ai_family != AF_INET || t->family == AF_INET6))
                        v4 = v4->ai_next;
                if (!v6 && !v4)
                        break;
                if ((want_v6 && v6) || !v4) {
                        picked = v6;
                        v6 = v6->ai_next;
                } else {
                        picked = v4;
                        v4 = v4->ai_next;
                }
                if (picked->ai_addrlen > sizeof(t->addresses[0].in6))
                        continue;
                memcpy(&t->addresses[t->n_addresses].sa, picked->ai_addr, picked->ai_addrlen);
                t->addresses[t->n_addresses].size = picked->ai_addrlen;
                if (++t->n_addresses == MAX_ADDRESSES)
                        break;
        }
}

static void on_resolved(int gai_error, int sys_errno, const struct addrinfo *result, void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = transport_ref(userdata);

        t->query = NULL; /* the resolver frees it */
        t->query_done = true;
        if (gai_error != 0) {
                transport_fail(t, TRANSPORT_ERROR_DNS, "resolving %s: %s", t->host,
                               gai_error == EAI_SYSTEM ? strerror(sys_errno)
                                                       : gai_strerror(gai_error));
                return;
        }
        addresses_take(t, result);
        if (t->n_addresses == 0) {
                transport_fail(t, TRANSPORT_ERROR_DNS, "resolving %s: no IPv4 or IPv6 address",
                               t->host);
                return;
        }
        connect_begin(t);
}

static int options_copy(Transport *t, const TransportOptions *o)
{
        t->host = strdup(o->host);
        if (!t->host)
                return -ENOMEM;
        t->port = o->port;
        t->unix_socket = o->unix_socket;
        t->tls = o->tls;
        t->family = o->family;
        t->timeout_usec = o->timeout_usec > 0 ? o->timeout_usec : DEFAULT_TIMEOUT_USEC;

        if (o->tls) {
                const char *name = o->server_name ? o->server_name : o->host;
                size_t len;

                /* The name to verify: a bare address, never with brackets or a zone. */
                if (name[0] == '[') {
                        len = strcspn(name + 1, "]");
                        t->server_name = strndup(name + 1, len);
                } else
                        t->server_name = strndup(name, strcspn(name, "%"));
                if (!t->server_name)
                        return -ENOMEM;
                if (t->server_name[0] == '\0')
                        return -EINVAL;
        }

        for (const char *const *p = o->alpn; p && *p; p++) {
                size_t len = strlen(*p);

                if (t->n_alpn >= MAX_ALPN || len == 0 || len > 255)
                        return -EINVAL;
                t->alpn[t->n_alpn].data = (unsigned char *) strdup(*p);
                if (!t->alpn[t->n_alpn].data)
                        return -ENOMEM;
                t->alpn[t->n_alpn++].size = (unsigned) len;
        }
        return 0;
}

static int address_numeric(Transport *t)
{
        struct addrinfo hints = {
            .ai_socktype = SOCK_STREAM,
            .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
        };
        struct addrinfo *result = NULL;
        char service[8], host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        const char *h = t->host;
        int r;

        /* "[::1]" as in URLs. */
        if (h[0] == '[') {
                size_t len = strcspn(h + 1, "]");
                if (h[1 + len] != ']' || h[2 + len] != '\0' || len >= sizeof(host))
                        return 0;
                memcpy(host, h + 1, len);
                host[len] = '\0';
                h = host;
        }

        (void) snprintf(service, sizeof(service), "%u", (unsigned) t->port);
        r = getaddrinfo(h, service, &hints, &result);
        if (r == EAI_NONAME)
                return 0;
        if (r == EAI_MEMORY)
                return -ENOMEM;
        if (r != 0)
                return -EINVAL;
        addresses_take(t, result);
        freeaddrinfo(result);
        return t->n_addresses > 0 ? 1 : -EAFNOSUPPORT;
}

int transport_new(Transport **ret, sd_event *event, Resolver *resolver,
                  const TransportOptions *options, const TransportHandlers *handlers,
                  void *userdata)
{
        _cleanup_(transport_unrefp) Transport *t = NULL;
        int r;

        if (!ret || !event || !options || !handlers || !options->host || !options->host[0])
                return -EINVAL;
        if (!options->unix_socket && options->port == 0)
                return -EINVAL;
        /* A path names no peer: the name to verify must be given. */
        if (options->unix_socket && options->tls && !options->server_name)
                return -EINVAL;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_ref = 1;
        t->fd = -EBADF;
        t->state = STATE_RESOLVING;
        t->event = sd_event_ref(event);
        t->resolver = resolver;
        t->handlers = *handlers;
        t->userdata = userdata;

        r = options_copy(t, options);
        if (r < 0)
                return r;

        if (t->tls) {
                if (options->tls_context)
                        t->tls_context = tls_context_ref(options->tls_context);
                else {
                        r = tls_context_get_system(&t->tls_context);
                        if (r < 0)
                                return r;
                }
        }

        if (t->unix_socket) {
                Address *a = &t->addresses[0];
                size_t len = strlen(t->host);

                if (len >= sizeof(a->un.sun_path))
                        return -ENAMETOOLONG;
                a->un.sun_family = AF_UNIX;
                memcpy(a->un.sun_path, t->host, len + 1);
                a->size = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);
                t->n_addresses = 1;
                r = 1;
        } else {
                r = address_numeric(t);
                if (r < 0)
                        return r;
        }

        if (r > 0) {
                /* Nothing to resolve: start from the loop, never from here. */
                r = sd_event_add_defer(event, &t->start_source, on_start, t);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_enabled(t->start_source, SD_EVENT_ONESHOT);
        } else {
                if (!resolver)
                        return -EINVAL;
                r = resolver_query(resolver, t->host, t->port, on_resolved, t, &t->query);
                if (r < 0)
                        return r;
        }

        r = sd_event_add_time_relative(event, &t->timeout_source, CLOCK_MONOTONIC, t->timeout_usec,
                                       TIMER_ACCURACY_USEC, on_timeout, t);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        return 0;
}

Transport *transport_free(Transport *t)
{
        if (!t)
                return NULL;
        assert(!t->freed);

        /* From inside a handler the callback's reference keeps the memory until it unwinds. */
        t->freed = true;
        transport_close(t);
        transport_unref(t);
        return NULL;
}

ssize_t transport_read(Transport *t, void *buf, size_t size)
{
        ssize_t n = GNUTLS_E_AGAIN;

        if (!t || !buf || size == 0)
                return -EINVAL;
        if (t->state != STATE_CONNECTED)
                return -ENOTCONN;

        if (!t->session) {
                n = recv(t->fd, buf, size, MSG_DONTWAIT);
                if (n >= 0)
                        return n;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return -EAGAIN;
                return -errno;
        }

        /*
         * GNUTLS_E_AGAIN also comes after a record that carried no data (a TLS
         * 1.3 session ticket); only when the socket itself is empty is it final.
         */
        t->tls_recv_again = false;
        for (unsigned i = 0; i < MAX_TLS_RETRIES; i++) {
                t->tls_blocked = false;
                n = gnutls_record_recv(t->session, buf, size);
                if (n >= 0)
                        return n;
                if (n == GNUTLS_E_AGAIN && t->tls_blocked)
                        return -EAGAIN;
                if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED &&
                    gnutls_error_is_fatal((int) n))
                        return tls_error_to_errno((int) n, t->tls_errno);
        }
        /* Many records without data in a row: come back from the loop. */
        t->tls_recv_again = true;
        return -EAGAIN;
}

ssize_t transport_write(Transport *t, const void *buf, size_t size)
{
        size_t done = 0;

        if (!t || (!buf && size > 0))
                return -EINVAL;
        if (t->state != STATE_CONNECTED)
                return -ENOTCONN;
        if (size == 0)
                return 0;
        size = MIN(size, (size_t) SSIZE_MAX);

        if (!t->session) {
                ssize_t n = send(t->fd, buf, size, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n >= 0)
                        return n;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return -EAGAIN;
                return -errno;
        }

        /* One record per call of gnutls; after GNUTLS_E_AGAIN the owner resumes at done. */
        while (done < size) {
                ssize_t n =
                    gnutls_record_send(t->session, (const uint8_t *) buf + done, size - done);
                if (n > 0) {
                        done += (size_t) n;
                        continue;
                }
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                        break;
                if (done > 0)
                        break; /* the error shows on the next call */
                return n == 0 ? -EIO : tls_error_to_errno((int) n, t->tls_errno);
        }
        return done > 0 ? (ssize_t) done : -EAGAIN;
}

void transport_want_write(Transport *t, bool want)
{
        if (!t || t->want_write == want)
                return;
        t->want_write = want;
        transport_update_io(t);
}

void transport_set_handlers(Transport *t, const TransportHandlers *handlers, void *userdata)
{
        if (!t || !handlers)
                return;
        t->handlers = *handlers;
        t->userdata = userdata;
        t->want_write = false;
        transport_update_io(t);
        transport_schedule_pending(t);
}

void transport_pause_read(Transport *t, bool pause)
{
        if (!t || t->read_paused == pause)
                return;
        t->read_paused = pause;
        transport_update_io(t);
        transport_schedule_pending(t);
}

const char *transport_get_alpn(Transport *t)
{
        return t ? t->alpn_selected : NULL;
}

bool transport_is_connected(Transport *t)
{
        return t && t->state == STATE_CONNECTED;
}

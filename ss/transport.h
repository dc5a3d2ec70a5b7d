/* SPDX-License-Identifier: MIT */
/*
 * Transport: one client connection as a protocol sees it. Resolves the host
 * without blocking the loop, connects (IPv6 first, quick fall back to IPv4),
 * optionally runs a TLS handshake (GnuTLS: SNI, ALPN, hostname verification
 * against a trust store), then moves bytes. Everything is non-blocking and
 * driven by the owner's sd-event loop. Failures are reported once, with a kind
 * the stream layer maps to its states (UNREACHABLE with the DNS flag, etc.).
 *
 * The owner (a protocol: h1, h2, ws, mqtt) reads with transport_read() when told
 * the transport is readable, and writes with transport_write(); a short write
 * means "wait for on_writable".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct Transport Transport;
typedef struct TlsContext TlsContext; /* credentials of one trust store, shared, refcounted */
typedef struct Resolver Resolver;     /* the name resolution worker */

typedef enum TransportError {
        TRANSPORT_ERROR_NONE,
        TRANSPORT_ERROR_DNS,        /* the name did not resolve */
        TRANSPORT_ERROR_REFUSED,    /* every address refused or was unreachable */
        TRANSPORT_ERROR_TIMEOUT,    /* connect or handshake did not finish in time */
        TRANSPORT_ERROR_TLS,        /* handshake failed (not a certificate problem) */
        TRANSPORT_ERROR_TLS_VERIFY, /* certificate: unknown issuer, wrong name, expired... */
        TRANSPORT_ERROR_RESET,      /* the peer reset or closed during setup */
        TRANSPORT_ERROR_IO,         /* a read or write failed after setup */
} TransportError;

typedef struct TransportHandlers {
        /* Connected (and the TLS handshake done): data may flow. */
        void (*connected)(Transport *t, void *userdata);
        /* Bytes (or EOF) may be read with transport_read(). */
        void (*readable)(Transport *t, void *userdata);
        /* A write that came up short may continue. */
        void (*writable)(Transport *t, void *userdata);
        /* Setup failed or the connection broke; the transport is dead afterwards. */
        void (*failed)(Transport *t, TransportError error, const char *detail, void *userdata);
} TransportHandlers;

typedef struct TransportOptions {
        const char *host; /* name or address; for unix sockets the path */
        uint16_t port;
        bool unix_socket; /* host is a filesystem socket path */
        bool tls;
        TlsContext *tls_context; /* NULL with tls: the system trust store */
        const char *const *alpn; /* NULL-terminated, e.g. {"h2", "http/1.1", NULL} */
        uint64_t timeout_usec;   /* for resolve + connect + handshake; 0: 10 s */
        /* AF_INET or AF_INET6: use only addresses of that family; AF_UNSPEC (0): both. */
        int family;
        /*
         * TLS: the name sent as SNI (names only, never an address) and checked
         * against the certificate; NULL: host. Required with unix_socket and tls.
         */
        const char *server_name;
} TransportOptions;

/*
 * Start connecting. Handlers are called from the event loop, never from inside
 * this call. The returned object is owned by the caller (transport_free()).
 * resolver may be NULL when host is an address or a path. Errors here are the
 * caller's (-EINVAL, -ENOMEM, -ENAMETOOLONG for a long path, -EBUSY when the
 * resolver's queue is full); everything later comes through failed().
 *
 * After connected(), a broken connection shows as an error (or 0 at EOF) from
 * transport_read() or transport_write() and failed() is not called for it;
 * readable() keeps being called while the socket reports EOF or an error, so
 * free the transport (or pause reading) then.
 */
int transport_new(Transport **ret, sd_event *event, Resolver *resolver,
                  const TransportOptions *options, const TransportHandlers *handlers,
                  void *userdata);
/* Close (without notifying) and free. Safe from inside any of its handlers. */
Transport *transport_free(Transport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Transport *, transport_free);

/* Bytes read (> 0), 0 on orderly EOF, -EAGAIN when nothing is there, or -errno. */
ssize_t transport_read(Transport *t, void *buf, size_t size);
/*
 * Bytes written (possibly fewer than size), -EAGAIN, or -errno. With TLS the
 * bytes after a short write or -EAGAIN may already sit in an encrypted record:
 * the next write must start with them (it may be longer), as it naturally does
 * when the owner writes from the front of its unsent data.
 */
ssize_t transport_write(Transport *t, const void *buf, size_t size);
/*
 * Ask for a writable callback (when a write came up short, or to be told).
 * One request, one callback: ask again from writable() for another.
 */
void transport_want_write(Transport *t, bool want);
/*
 * Hand a connected transport to another owner (a connection pool parking it,
 * a stream taking it back): later events go to the new handlers. Safe from
 * inside a handler; a pending write request is dropped.
 */
void transport_set_handlers(Transport *t, const TransportHandlers *handlers, void *userdata);
/* Stop reading (backpressure) until re-enabled. */
void transport_pause_read(Transport *t, bool pause);
/* The ALPN protocol the server chose ("h2", "http/1.1"), or NULL. */
const char *transport_get_alpn(Transport *t);
bool transport_is_connected(Transport *t);

/* Name resolution off the loop: one worker thread, completion through an eventfd. */
int resolver_new(Resolver **ret, sd_event *event);
Resolver *resolver_free(Resolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Resolver *, resolver_free);

/*
 * TLS credentials for one trust store: the PEM or DER certificates given, or
 * the system trust store when n_certs is 0. Shared by every stream that uses
 * the trust store; freed with the last reference.
 */
typedef struct TlsCertificate {
        const uint8_t *data;
        size_t size;
        bool pem; /* otherwise DER */
} TlsCertificate;

/* -ELIBACC: GnuTLS, loaded on first use, cannot be loaded (tls_unavailable_reason()). */
int tls_context_new(TlsContext **ret, const TlsCertificate *certs, size_t n_certs);
/*
 * Why TLS is unavailable in this process, for messages: "TLS unavailable: "
 * and the loader's reason; NULL while GnuTLS loaded or was never needed.
 */
const char *tls_unavailable_reason(void);
TlsContext *tls_context_ref(TlsContext *c);
TlsContext *tls_context_unref(TlsContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsContext *, tls_context_unref);
/* Live TlsContext objects in this process (for `smdctl status`). */
unsigned tls_context_live_count(void);

/* SPDX-License-Identifier: MIT */
/*
 * Real peers for the integration tests of the Secure Streams engine: a private
 * work directory, test certificates made with certtool (a CA and server
 * certificates that are good, expired, self-signed, or for the wrong name),
 * nginx with the listeners a test asks for, and small in-process listeners
 * (one that never answers, one whose backlog is full so that SYNs are dropped).
 * Loopback only. Everything started here is stopped at exit, on a failure, or
 * when the watchdog fires.
 *
 * Typical use:
 *
 *     peers_init(120);                      // TAP stream, watchdog, cleanup
 *     PeerCerts certs;
 *     peer_certs_make(&certs);              // skips the program without certtool
 *     NginxListener l[] = {
 *             {.port = peers_free_port()},                                  // plain
 *             {.port = peers_free_port(), .tls = true,
 *              .cert = certs.server_pem, .key = certs.server_key},          // TLS
 *     };
 *     Nginx nginx;
 *     nginx_start(&nginx, l, ELEMENTSOF(l)); // skips the program without nginx
 *     ...
 *     return peers_done();
 *
 * nginx serves, on every listener: / (200 "hello\n"), /generate_204 (204),
 * /big (1 MiB of bytes i % 251, from a file; peers_big_byte() tells them).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PEERS_BIG_SIZE (1024 * 1024)

/* Start TAP, arm a watchdog of timeout_sec, create the work directory. */
void peers_init(unsigned timeout_sec);
/* Stop every peer, remove the work directory, print the plan; the exit code for main(). */
int peers_done(void);

const char *peers_dir(void);
/* peers_dir()/name, allocated (abort-free: NULL on out of memory). */
char *peers_path(const char *name);
/* A loopback TCP port that was free a moment ago (for 127.0.0.1 and ::1). */
uint16_t peers_free_port(void);
uint64_t peers_now_usec(void);
/* Byte i of /big. */
static inline uint8_t peers_big_byte(size_t i)
{
        return (uint8_t) (i % 251);
}
/* Run argv (PATH searched) with stdout/stderr to /dev/null; its exit status or -errno. */
int peers_run(const char *const *argv);
/* Whether program is in PATH. */
bool peers_have(const char *program);
/* The number of open fds of this process. */
unsigned peers_count_fds(void);

/* Certificates, all PEM files in the work directory. */
typedef struct PeerCerts {
        char *ca_pem;       /* the test CA that signed the server certificates */
        char *other_ca_pem; /* a CA that signed nothing here */
        char *server_pem;   /* localhost, 127.0.0.1, ::1; by the test CA */
        char *server_key;
        char *expired_pem; /* the same names, valid in 2020 only */
        char *expired_key;
        char *selfsigned_pem; /* the same names, signed by itself */
        char *selfsigned_key;
        char *wrongname_pem; /* wrong.example only; by the test CA */
        char *wrongname_key;
} PeerCerts;

/* Make all of them; skips the whole program when certtool is missing. */
void peer_certs_make(PeerCerts *c);
void peer_certs_free(PeerCerts *c);
/* Read a whole file (certificates for TlsContext); NULL on failure. */
char *peers_read_file(const char *path, size_t *ret_size);

/* A TCP connection to 127.0.0.1:port: its fd, or -1. */
int peers_connect_port(uint16_t port);
/* 127.0.0.1:port accepts a connection (closed at once). */
bool peers_port_accepts(uint16_t port);

/* nginx */
typedef struct NginxListener {
        uint16_t port;         /* on 127.0.0.1 (and [::1] too with ipv6) */
        bool ipv6;             /* also listen on [::1]:port */
        const char *unix_path; /* instead of a port */
        bool tls;
        const char *cert, *key; /* with tls */
} NginxListener;

typedef struct Nginx {
        pid_t pid;
        char *conf;
} Nginx;

/* Write a config, start nginx in the foreground, wait until every listener accepts. */
void nginx_start(Nginx *n, const NginxListener *listeners, size_t n_listeners);
/*
 * nginx on a config of the test's own (conf: allocated, taken over), ready when
 * 127.0.0.1:ready_port accepts; a failure to start or to get ready within 30 s
 * ends the test program with a failed check.
 */
void nginx_start_conf(Nginx *n, char *conf, uint16_t ready_port);
void nginx_stop(Nginx *n);

/*
 * A listener on address ("127.0.0.1" or "::1") and port that accepts at the
 * TCP level (the kernel does) and never says a word. Returns the fd.
 */
int peers_silent_listener(const char *address, uint16_t port);
/*
 * A listener whose accept queue is full: new SYNs are dropped, so a connect
 * to it hangs (a black hole on loopback). Returns the fd; *ret_filler gets the
 * connection that fills the queue (close both).
 */
int peers_blackhole_listener(const char *address, uint16_t port, int *ret_filler);

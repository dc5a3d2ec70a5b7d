/* SPDX-License-Identifier: MIT */
/*
 * The transport against real peers on loopback: nginx over TCP, TLS and a unix
 * socket; certificates that are good, from another CA, for the wrong name,
 * expired and self-signed; a closed port, an unknown name, a listener that
 * never answers, a black-holed IPv6 address next to a working IPv4 one (with
 * a private /etc/hosts in a mount namespace of our own), and a thousand
 * transports in a row with no fd or memory left behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peers.h"
#include "tap.h"
#include "transport-internal.h"
#include "util.h"

#define RESPONSE_MAX (2 * 1024 * 1024)

static sd_event *event;
static Resolver *resolver;
static PeerCerts certs;
static TlsContext *ca_context, *other_ca_context;
static uint16_t port_plain, port_tls, port_expired, port_selfsigned, port_wrongname;
static char *unix_path;
static bool have_hosts_namespace;

typedef struct Client {
        Transport *t;
        unsigned connected, readable, writable, failed;
        TransportError error;
        char detail[512];
        char alpn[32];
        uint64_t started, finished;
        bool free_on_connected;
        bool pause_on_connected;

        const char *request;
        size_t request_done;
        size_t read_size;     /* bytes asked per transport_read(); one read per callback */
        size_t body_expected; /* finished when the body has this many bytes (keep-alive) */
        char *response;
        size_t response_len;
        bool eof;
        int read_error;
} Client;

/* The body length so far, once the header is complete; 0 before. */
static size_t client_body_len(const Client *c)
{
        const char *end = c->response ? strstr(c->response, "\r\n\r\n") : NULL;

        return end ? c->response_len - (size_t) (end + 4 - c->response) : 0;
}

static bool client_finished(const Client *c)
{
        if (c->body_expected && client_body_len(c) >= c->body_expected)
                return true;
        if (c->failed || c->eof || c->read_error)
                return true;
        if (c->connected && (!c->request || c->free_on_connected))
                return true;
        return false;
}

static void on_connected(Transport *t, void *userdata)
{
        Client *c = userdata;

        c->connected++;
        c->finished = peers_now_usec();
        (void) snprintf(c->alpn, sizeof(c->alpn), "%s", strempty(transport_get_alpn(t)));
        if (c->free_on_connected) {
                c->t = transport_free(c->t);
                return;
        }
        if (c->pause_on_connected)
                transport_pause_read(t, true);
        if (c->request)
                transport_want_write(t, true);
}

static void on_writable(Transport *t, void *userdata)
{
        Client *c = userdata;
        size_t len = strlen(c->request);
        ssize_t n;

        c->writable++;
        n = transport_write(t, c->request + c->request_done, len - c->request_done);
        if (n > 0)
                c->request_done += (size_t) n;
        if (c->request_done < len && (n > 0 || n == -EAGAIN))
                transport_want_write(t, true);
}

static void on_readable(Transport *t, void *userdata)
{
        Client *c = userdata;
        char buf[64 * 1024];
        size_t want = MIN(c->read_size ? c->read_size : sizeof(buf), sizeof(buf));
        ssize_t n;

        c->readable++;
        n = transport_read(t, buf, want);
        if (n == -EAGAIN)
                return;
        if (n <= 0) {
                if (n == 0)
                        c->eof = true;
                else
                        c->read_error = (int) n;
                c->finished = peers_now_usec();
                c->t = transport_free(c->t); /* from inside the handler */
                return;
        }
        if (c->response_len + (size_t) n > RESPONSE_MAX) {
                c->read_error = -EMSGSIZE;
                c->t = transport_free(c->t);
                return;
        }
        if (!c->response)
                c->response = malloc(RESPONSE_MAX + 1);
        memcpy(c->response + c->response_len, buf, (size_t) n);
        c->response_len += (size_t) n;
        c->response[c->response_len] = '\0';
}

static void on_failed(Transport *t, TransportError error, const char *detail, void *userdata)
{
        Client *c = userdata;

        c->failed++;
        c->error = error;
        c->finished = peers_now_usec();
        (void) snprintf(c->detail, sizeof(c->detail), "%s", strempty(detail));
        c->t = transport_free(c->t); /* from inside the handler */
}

static const TransportHandlers handlers = {
    .connected = on_connected,
    .readable = on_readable,
    .writable = on_writable,
    .failed = on_failed,
};

static void loop_run(unsigned ms)
{
        uint64_t end = peers_now_usec() + ms * USEC_PER_MSEC;

        while (peers_now_usec() < end)
                (void) sd_event_run(event, 5 * USEC_PER_MSEC);
}

/* Start c with o; 0 or what transport_new() said. No handler may have run. */
static int client_start(Client *c, const TransportOptions *o)
{
        int r;

        c->started = peers_now_usec();
        r = transport_new(&c->t, event, resolver, o, &handlers, c);
        if (r >= 0 && c->connected + c->failed + c->readable + c->writable > 0)
                ok(false, "a handler ran inside transport_new()");
        return r;
}

static void client_wait(Client *c, unsigned ms)
{
        uint64_t end = peers_now_usec() + ms * USEC_PER_MSEC;

        while (!client_finished(c) && peers_now_usec() < end)
                (void) sd_event_run(event, 5 * USEC_PER_MSEC);
}

static void client_done(Client *c)
{
        c->t = transport_free(c->t);
        free(c->response);
        *c = (Client){};
}

static unsigned elapsed_ms(const Client *c)
{
        return (unsigned) ((c->finished - c->started) / USEC_PER_MSEC);
}

static const char get_close[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
static const char get_keepalive[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
/* Keep-alive: the connection stays open, so only GnuTLS knows about the last bytes. */
static const char get_big[] = "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n";

static void test_plain(void)
{
        Client c = {.request = get_close};
        TransportOptions o = {
            .host = "127.0.0.1", .port = port_plain, .timeout_usec = 5 * USEC_PER_SEC};

        is_int(client_start(&c, &o), 0, "plain: transport to 127.0.0.1");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "plain: connected once");
        is_int(c.failed, 0, "plain: no failure (%s)", c.detail);
        ok(c.eof, "plain: the server closed after the response");
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "plain: HTTP/1.1 200 in the response");
        ok(c.response && strstr(c.response, "\r\n\r\nhello\n"), "plain: and the body");
        is_str(c.alpn, "", "plain: no ALPN");
        is_int(c.writable, 1, "plain: one writable callback for one request");
        client_done(&c);

        /* By name, through the resolver. */
        c = (Client){.request = get_close};
        o.host = "localhost";
        is_int(client_start(&c, &o), 0, "plain: transport to localhost");
        client_wait(&c, 5000);
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "plain by name: HTTP/1.1 200");
        client_done(&c);
}

static void test_pause(void)
{
        Client c = {.request = get_close, .pause_on_connected = true};
        TransportOptions o = {.host = "127.0.0.1", .port = port_plain};

        is_int(client_start(&c, &o), 0, "pause: transport");
        client_wait(&c, 5000);
        loop_run(200);
        is_int(c.connected, 1, "pause: connected");
        cmp_int(c.request_done, ==, strlen(get_close), "pause: request written");
        is_int(c.readable, 0, "pause: no readable while paused, though the answer is there");
        transport_pause_read(c.t, false);
        client_wait(&c, 5000);
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "pause: the answer after resuming");
        client_done(&c);
}

static void test_unix(void)
{
        Client c = {.request = get_close};
        TransportOptions o = {.host = unix_path, .unix_socket = true};
        char long_path[200];

        is_int(client_start(&c, &o), 0, "unix: transport to %s", unix_path);
        client_wait(&c, 5000);
        is_int(c.connected, 1, "unix: connected");
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "unix: HTTP/1.1 200");
        client_done(&c);

        c = (Client){};
        o.host = "/nonexistent/smd-test.sock";
        is_int(client_start(&c, &o), 0, "unix: transport to a missing path");
        client_wait(&c, 5000);
        is_int(c.failed, 1, "unix missing: failed");
        is_int(c.error, TRANSPORT_ERROR_REFUSED, "unix missing: REFUSED (%s)", c.detail);
        ok(strstr(c.detail, "/nonexistent/smd-test.sock"), "unix missing: detail names the path");
        client_done(&c);

        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        o.host = long_path;
        is_int(client_start(&c, &o), -ENAMETOOLONG, "unix: a path too long for sun_path");
        ok(!c.t, "unix: nothing returned");

        o.host = unix_path;
        o.tls = true;
        is_int(client_start(&c, &o), -EINVAL, "unix + TLS without server_name");
}

static void test_tls_good(void)
{
        static const char *const alpn[] = {"h2", "http/1.1", NULL};
        Client c = {.request = get_close};
        TransportOptions o = {
            .host = "localhost",
            .port = port_tls,
            .tls = true,
            .tls_context = ca_context,
            .alpn = alpn,
        };

        is_int(client_start(&c, &o), 0, "tls: transport to localhost");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "tls: connected (%s)", c.detail);
        is_str(c.alpn, "http/1.1", "tls: ALPN http/1.1 reported");
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "tls: HTTP/1.1 200");
        ok(c.eof, "tls: orderly end (close_notify)");
        is_int(c.read_error, 0, "tls: no read error");
        client_done(&c);

        /* An address: no SNI, checked against the IP SANs. */
        c = (Client){.request = get_close};
        o.host = "127.0.0.1";
        o.alpn = NULL;
        is_int(client_start(&c, &o), 0, "tls: transport to 127.0.0.1");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "tls by address: connected (%s)", c.detail);
        is_str(c.alpn, "", "tls: no ALPN asked, none reported");
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "tls by address: HTTP/1.1 200");
        client_done(&c);

        /* server_name: connect to the address, verify the name. */
        c = (Client){};
        o.server_name = "localhost";
        is_int(client_start(&c, &o), 0, "tls: 127.0.0.1 with server_name localhost");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "tls server_name: connected (%s)", c.detail);
        client_done(&c);

        /*
         * A small answer in one record, read a byte per callback on a connection
         * that stays open: after the first byte only GnuTLS holds the rest.
         */
        c = (Client){.request = get_keepalive, .read_size = 1, .body_expected = 6};
        o.server_name = NULL;
        o.host = "localhost";
        is_int(client_start(&c, &o), 0, "tls bytewise: transport");
        client_wait(&c, 5000);
        is_int(client_body_len(&c), 6, "tls bytewise: the whole answer, a byte at a time");
        ok(c.response && strstr(c.response, "HTTP/1.1 200") &&
               strstr(c.response, "\r\n\r\nhello\n"),
           "tls bytewise: HTTP/1.1 200 and the body");
        cmp_int(c.readable, >=, c.response_len, "tls bytewise: one callback per byte");
        client_done(&c);

        /*
         * 1 MiB read 1000 bytes per callback: most of it waits inside GnuTLS, and
         * a short last record can wait whole in the transport's read-ahead after
         * the socket ran dry.
         */
        c = (Client){.request = get_big, .read_size = 1000, .body_expected = PEERS_BIG_SIZE};
        o.server_name = NULL;
        o.host = "localhost";
        is_int(client_start(&c, &o), 0, "tls big: transport");
        client_wait(&c, 20000);
        c.finished = peers_now_usec();
        ok(!c.eof && !c.read_error && !c.failed, "tls big: no EOF or error (%s, error %d)",
           c.detail, c.read_error);
        char *body = c.response ? strstr(c.response, "\r\n\r\n") : NULL;
        size_t body_len = client_body_len(&c);
        is_int(body_len, PEERS_BIG_SIZE, "tls big: 1 MiB of body");
        bool same = body_len == PEERS_BIG_SIZE;
        for (size_t i = 0; same && i < body_len; i++)
                same = (uint8_t) body[4 + i] == peers_big_byte(i);
        ok(same, "tls big: the exact bytes");
        tap_diag("tls big: 1 MiB in %u ms with 1000-byte reads", elapsed_ms(&c));
        client_done(&c);
}

static void expect_failure(const char *what, const TransportOptions *o, TransportError error,
                           const char *detail_part)
{
        Client c = {.request = get_close};

        is_int(client_start(&c, o), 0, "%s: transport", what);
        client_wait(&c, 10000);
        is_int(c.failed, 1, "%s: failed once", what);
        is_int(c.connected, 0, "%s: never connected", what);
        is_int(c.error, error, "%s: error kind (%s)", what, c.detail);
        ok(detail_part && strcasestr(c.detail, detail_part), "%s: detail says '%s': %s", what,
           detail_part, c.detail);
        ok(!c.t, "%s: freed inside failed()", what);
        client_done(&c);
}

static void test_tls_bad(void)
{
        TransportOptions o = {
            .host = "localhost",
            .port = port_tls,
            .tls = true,
            .tls_context = other_ca_context,
        };

        expect_failure("wrong CA", &o, TRANSPORT_ERROR_TLS_VERIFY, "issuer");
        o.tls_context = ca_context;
        o.port = port_wrongname;
        expect_failure("wrong name", &o, TRANSPORT_ERROR_TLS_VERIFY, "name");
        o.port = port_tls;
        o.server_name = "not-localhost.example";
        expect_failure("wrong server_name", &o, TRANSPORT_ERROR_TLS_VERIFY, "name");
        o.server_name = NULL;
        o.port = port_expired;
        expect_failure("expired", &o, TRANSPORT_ERROR_TLS_VERIFY, "expired");
        o.port = port_selfsigned;
        expect_failure("self-signed", &o, TRANSPORT_ERROR_TLS_VERIFY, "self-signed");
        /* TLS to a plain HTTP server: a handshake failure, not a certificate one. */
        o.port = port_plain;
        expect_failure("TLS to plain HTTP", &o, TRANSPORT_ERROR_TLS, "TLS");

        /* The system trust store does not know our CA. */
        unsigned live = tls_context_live_count();
        Client c = {};
        o.port = port_tls;
        o.tls_context = NULL;
        is_int(client_start(&c, &o), 0, "system store: transport");
        is_int(tls_context_live_count(), live + 1, "system store: one more live context");
        client_wait(&c, 10000);
        is_int(c.error, TRANSPORT_ERROR_TLS_VERIFY, "system store: test CA unknown (%s)", c.detail);
        client_done(&c);
        is_int(tls_context_live_count(), live, "system store: gone with its last transport");
}

static void test_errors(void)
{
        TransportOptions o = {.host = "127.0.0.1", .port = peers_free_port()};

        expect_failure("refused", &o, TRANSPORT_ERROR_REFUSED, "refused");
        o.host = "localhost";
        expect_failure("refused by name", &o, TRANSPORT_ERROR_REFUSED, "refused");
        o.host = "no-such-host.invalid";
        expect_failure("unknown host", &o, TRANSPORT_ERROR_DNS, "no-such-host.invalid");

        Transport *t = NULL;
        o = (TransportOptions){.host = "127.0.0.1"};
        is_int(transport_new(&t, event, resolver, &o, &handlers, NULL), -EINVAL, "port 0");
        o.port = 80;
        o.host = "";
        is_int(transport_new(&t, event, resolver, &o, &handlers, NULL), -EINVAL, "empty host");
        static const char *const bad_alpn[] = {"", NULL};
        o.host = "127.0.0.1";
        o.alpn = bad_alpn;
        is_int(transport_new(&t, event, resolver, &o, &handlers, NULL), -EINVAL, "empty ALPN name");
        ok(!t, "nothing returned on errors");
        is_int(transport_read(NULL, NULL, 0), -EINVAL, "read without a transport");
        is_int(transport_write(NULL, "x", 1), -EINVAL, "write without a transport");
        ok(!transport_is_connected(NULL) && !transport_get_alpn(NULL), "getters take NULL");

        /* Read and write before connected. */
        Client c = {};
        char b[8];
        o = (TransportOptions){.host = "127.0.0.1", .port = port_plain};
        is_int(client_start(&c, &o), 0, "early: transport");
        is_int(transport_read(c.t, b, sizeof(b)), -ENOTCONN, "early: read is ENOTCONN");
        is_int(transport_write(c.t, "x", 1), -ENOTCONN, "early: write is ENOTCONN");
        ok(!transport_is_connected(c.t), "early: not connected");
        client_done(&c);
}

static void test_timeouts(void)
{
        uint16_t port = peers_free_port();
        int silent = peers_silent_listener("127.0.0.1", port);
        TransportOptions o = {
            .host = "127.0.0.1",
            .port = port,
            .tls = true,
            .tls_context = ca_context,
            .timeout_usec = 1500 * USEC_PER_MSEC,
        };
        Client c = {};

        ok(silent >= 0, "a listener that never answers");
        is_int(client_start(&c, &o), 0, "silent TLS: transport");
        client_wait(&c, 5000);
        is_int(c.error, TRANSPORT_ERROR_TIMEOUT, "silent TLS: TIMEOUT (%s)", c.detail);
        unsigned ms = elapsed_ms(&c);
        cmp_int(ms, >=, 1050, "silent TLS: not before 1500 ms - 30%% (%u ms)", ms);
        cmp_int(ms, <=, 1950, "silent TLS: not after 1500 ms + 30%% (%u ms)", ms);
        ok(strstr(c.detail, "handshake"), "silent TLS: detail says where: %s", c.detail);
        client_done(&c);
        (void) close(silent);

        /* A connect that never completes (SYNs dropped). */
        int filler = -1;
        port = peers_free_port();
        int hole = peers_blackhole_listener("127.0.0.1", port, &filler);
        ok(hole >= 0, "a black-hole listener");
        o = (TransportOptions){.host = "127.0.0.1", .port = port, .timeout_usec = USEC_PER_SEC};
        is_int(client_start(&c, &o), 0, "black hole: transport");
        client_wait(&c, 5000);
        is_int(c.error, TRANSPORT_ERROR_TIMEOUT, "black hole: TIMEOUT (%s)", c.detail);
        ms = elapsed_ms(&c);
        cmp_int(ms, >=, 700, "black hole: about 1 s (%u ms)", ms);
        cmp_int(ms, <=, 1300, "black hole: about 1 s (%u ms)", ms);
        client_done(&c);
        (void) close(filler);
        (void) close(hole);
}

/* A private /etc/hosts where localhost is ::1 and 127.0.0.1 (before any thread exists). */
static void hosts_namespace_setup(void)
{
        char *hosts = peers_path("hosts");
        FILE *f;

        if (!hosts)
                return;
        f = fopen(hosts, "we");
        if (f) {
                fputs("::1 localhost dual.test\n127.0.0.1 localhost dual.test\n", f);
                (void) fclose(f);
        }
        if (unshare(CLONE_NEWNS) == 0 &&
            mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 &&
            mount(hosts, "/etc/hosts", "none", MS_BIND, NULL) == 0)
                have_hosts_namespace = true;
        else
                tap_diag("no private /etc/hosts (%s): the IPv6 fallback tests skip",
                         strerror(errno));
        free(hosts);
}

static bool accept_pending(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int c;

        if (poll(&p, 1, 100) <= 0)
                return false;
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0)
                return false;
        (void) close(c);
        return true;
}

static void test_ipv6_first(void)
{
        const char *why = "needs a private mount namespace (root)";
        Client c = {.request = get_close};
        TransportOptions o = {.host = "localhost", .port = port_plain};

        if (!have_hosts_namespace) {
                tap_skip("ipv6 first: refused ::1, working 127.0.0.1", why);
                tap_skip("ipv6 first: black-holed ::1", why);
                tap_skip("ipv6 first: both work", why);
                return;
        }

        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list = NULL;
        bool has_v6 = false, has_v4 = false;
        if (getaddrinfo("localhost", "80", &hints, &list) == 0)
                for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
                        has_v6 |= ai->ai_family == AF_INET6;
                        has_v4 |= ai->ai_family == AF_INET;
                }
        if (list)
                freeaddrinfo(list);
        ok(has_v6 && has_v4, "localhost is ::1 and 127.0.0.1 here");

        /* nginx listens on 127.0.0.1 only: ::1 is refused at once. */
        is_int(client_start(&c, &o), 0, "refused ::1: transport to localhost");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "refused ::1: connected over IPv4 (%s)", c.detail);
        cmp_int(elapsed_ms(&c), <, 1000, "refused ::1: quickly (%u ms)", elapsed_ms(&c));
        ok(c.response && strstr(c.response, "HTTP/1.1 200"), "refused ::1: HTTP/1.1 200");
        client_done(&c);

        /* ::1 drops SYNs: IPv4 starts after the fallback delay and wins. */
        uint16_t port = peers_free_port();
        int filler = -1;
        int hole = peers_blackhole_listener("::1", port, &filler);
        int v4 = peers_silent_listener("127.0.0.1", port);
        ok(hole >= 0 && v4 >= 0, "black-holed ::1 and a listener on 127.0.0.1, port %u", port);
        o.port = port;
        c = (Client){};
        is_int(client_start(&c, &o), 0, "black-holed ::1: transport");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "black-holed ::1: connected (%s)", c.detail);
        unsigned ms = elapsed_ms(&c);
        cmp_int(ms, >=, 200, "black-holed ::1: after the fallback delay (%u ms)", ms);
        cmp_int(ms, <, 1000, "black-holed ::1: well before a second (%u ms)", ms);
        ok(accept_pending(v4), "black-holed ::1: the IPv4 listener got it");
        tap_diag("IPv6 black hole to IPv4 connected: %u ms", ms);
        client_done(&c);
        (void) close(filler);
        (void) close(hole);
        (void) close(v4);

        /* Both work: IPv6 is first and wins without waiting. */
        port = peers_free_port();
        int l6 = peers_silent_listener("::1", port);
        int l4 = peers_silent_listener("127.0.0.1", port);
        o.port = port;
        c = (Client){};
        is_int(client_start(&c, &o), 0, "both: transport");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "both: connected (%s)", c.detail);
        cmp_int(elapsed_ms(&c), <, 200, "both: at once (%u ms)", elapsed_ms(&c));
        ok(accept_pending(l6), "both: over IPv6");
        ok(!accept_pending(l4), "both: not over IPv4");
        client_done(&c);
        (void) close(l6);
        (void) close(l4);
}

static void test_context_count(void)
{
        _cleanup_free_ char *pem = NULL;
        size_t size = 0;
        TlsContext *ctx = NULL;
        unsigned live = tls_context_live_count();
        Client c = {};

        pem = peers_read_file(certs.ca_pem, &size);
        TlsCertificate cert = {.data = (const uint8_t *) pem, .size = size, .pem = true};
        is_int(tls_context_new(&ctx, &cert, 1), 0, "context: new");
        is_int(tls_context_live_count(), live + 1, "context: one more live");

        TransportOptions o = {
            .host = "localhost", .port = port_tls, .tls = true, .tls_context = ctx};
        is_int(client_start(&c, &o), 0, "context: transport");
        ctx = tls_context_unref(ctx);
        is_int(tls_context_live_count(), live + 1, "context: the transport keeps it");
        client_wait(&c, 5000);
        is_int(c.connected, 1, "context: usable after the caller dropped it (%s)", c.detail);
        client_done(&c);
        is_int(tls_context_live_count(), live, "context: gone with the last reference");

        /* Bad certificate data. */
        TlsCertificate junk = {
            .data = (const uint8_t *) "not a certificate", .size = 17, .pem = true};
        is_int(tls_context_new(&ctx, &junk, 1), -EBADMSG, "context: PEM without a certificate");
        junk.pem = false;
        cmp_int(tls_context_new(&ctx, &junk, 1), <, 0, "context: DER that is not DER");
        is_int(tls_context_new(&ctx, NULL, 1), -EINVAL, "context: NULL certificates");
        ok(!ctx, "context: nothing returned on errors");
        is_int(tls_context_live_count(), live, "context: none left by the failures");
}

static void test_many(void)
{
        enum { N = 1000 };
        unsigned fds_before = peers_count_fds(), connected = 0, answered = 0, tls_ok = 0;

        for (unsigned i = 0; i < N; i++) {
                Client c = {};
                TransportOptions o = {.host = "127.0.0.1", .port = port_plain};

                switch (i % 4) {
                case 0: /* freed before anything happened (while resolving, every other) */
                        if (i % 8 == 0)
                                o.host = "localhost";
                        if (client_start(&c, &o) == 0)
                                c.t = transport_free(c.t);
                        break;
                case 1: /* freed inside connected() */
                        c.free_on_connected = true;
                        if (client_start(&c, &o) == 0)
                                client_wait(&c, 5000);
                        connected += c.connected;
                        break;
                case 2: /* a whole request */
                        c.request = get_close;
                        if (client_start(&c, &o) == 0)
                                client_wait(&c, 5000);
                        answered += c.response && strstr(c.response, "HTTP/1.1 200") != NULL;
                        break;
                case 3: /* TLS every 20th, plain otherwise, freed in connected() */
                        c.free_on_connected = true;
                        if (i % 20 == 3) {
                                o = (TransportOptions){.host = "localhost",
                                                       .port = port_tls,
                                                       .tls = true,
                                                       .tls_context = ca_context};
                                if (client_start(&c, &o) == 0)
                                        client_wait(&c, 5000);
                                tls_ok += c.connected;
                        } else {
                                if (client_start(&c, &o) == 0)
                                        client_wait(&c, 5000);
                                connected += c.connected;
                        }
                        break;
                }
                client_done(&c);
        }
        /* Let nginx's side of the last ones go; ours are closed already. */
        loop_run(50);
        is_int(connected, N / 4 + N / 4 - N / 20, "many: every connect-only transport connected");
        is_int(answered, N / 4, "many: every request answered");
        is_int(tls_ok, N / 20, "many: every TLS handshake done");
        is_int(peers_count_fds(), fds_before, "many: no fd left open");
}

int main(void)
{
        peers_init(getenv("PEERS_TIMEOUT") ? (unsigned) atoi(getenv("PEERS_TIMEOUT")) : 300);
        hosts_namespace_setup();
        peer_certs_make(&certs);

        port_plain = peers_free_port();
        port_tls = peers_free_port();
        port_expired = peers_free_port();
        port_selfsigned = peers_free_port();
        port_wrongname = peers_free_port();
        unix_path = peers_path("nginx.sock");
        NginxListener listeners[] = {
            {.port = port_plain},
            {.port = port_tls, .tls = true, .cert = certs.server_pem, .key = certs.server_key},
            {.port = port_expired,
             .tls = true,
             .cert = certs.expired_pem,
             .key = certs.expired_key},
            {.port = port_selfsigned,
             .tls = true,
             .cert = certs.selfsigned_pem,
             .key = certs.selfsigned_key},
            {.port = port_wrongname,
             .tls = true,
             .cert = certs.wrongname_pem,
             .key = certs.wrongname_key},
            {.unix_path = unix_path},
        };
        Nginx nginx;
        nginx_start(&nginx, listeners, ELEMENTSOF(listeners));

        _cleanup_free_ char *ca = NULL, *other = NULL;
        size_t ca_size = 0, other_size = 0;
        ca = peers_read_file(certs.ca_pem, &ca_size);
        other = peers_read_file(certs.other_ca_pem, &other_size);
        TlsCertificate ca_cert = {.data = (const uint8_t *) ca, .size = ca_size, .pem = true};
        TlsCertificate other_cert = {
            .data = (const uint8_t *) other, .size = other_size, .pem = true};
        is_int(tls_context_new(&ca_context, &ca_cert, 1), 0, "the test CA's context");
        is_int(tls_context_new(&other_ca_context, &other_cert, 1), 0, "another CA's context");

        is_int(sd_event_new(&event), 0, "event loop");
        is_int(resolver_new(&resolver, event), 0, "resolver");

        test_plain();
        test_pause();
        test_unix();
        test_tls_good();
        test_tls_bad();
        test_errors();
        test_timeouts();
        test_ipv6_first();
        test_context_count();
        test_many();

        ca_context = tls_context_unref(ca_context);
        other_ca_context = tls_context_unref(other_ca_context);
        is_int(tls_context_live_count(), 0, "no TLS context left");
        resolver = resolver_free(resolver);
        event = sd_event_unref(event);
        nginx_stop(&nginx);
        free(unix_path);
        peer_certs_free(&certs);
        return peers_done();
}

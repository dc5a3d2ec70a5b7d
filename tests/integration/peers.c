/* SPDX-License-Identifier: MIT */
/*
 * Peers for the engine's integration tests; see peers.h. Processes run in a
 * process group of their own and are killed at exit, from the watchdog and
 * from fatal signals, so a failing test never leaves an nginx behind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "tap.h"

#define MAX_CHILDREN        16
#define ELEMENTSOF_PEERS(x) (sizeof(x) / sizeof((x)[0]))

static char work_dir[256];
static pid_t children[MAX_CHILDREN];
static unsigned watchdog_sec;

static void children_kill(void)
{
        for (unsigned i = 0; i < MAX_CHILDREN; i++)
                if (children[i] > 0) {
                        (void) kill(-children[i], SIGKILL);
                        (void) kill(children[i], SIGKILL);
                        (void) waitpid(children[i], NULL, 0);
                        children[i] = 0;
                }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void) remove(path);
        return 0;
}

static void dir_remove(void)
{
        if (work_dir[0] && !getenv("PEERS_KEEP"))
                (void) nftw(work_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        work_dir[0] = '\0';
}

static void on_exit_cleanup(void)
{
        children_kill();
        dir_remove();
}

static void on_fatal_signal(int sig)
{
        /* Not async-signal-safe in every detail; good enough to not leak peers. */
        if (sig == SIGALRM) {
                static const char msg[] = "not ok - watchdog: the test took too long\n";
                (void) !write(STDOUT_FILENO, msg, sizeof(msg) - 1);
        }
        children_kill();
        dir_remove();
        _exit(1);
}

static void child_add(pid_t pid)
{
        for (unsigned i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
}

static void child_forget(pid_t pid)
{
        for (unsigned i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

void peers_init(unsigned timeout_sec)
{
        tap_init();
        (void) signal(SIGPIPE, SIG_IGN);
        (void) signal(SIGALRM, on_fatal_signal);
        (void) signal(SIGTERM, on_fatal_signal);
        (void) signal(SIGINT, on_fatal_signal);
        atexit(on_exit_cleanup);
        watchdog_sec = timeout_sec;
        (void) alarm(timeout_sec);

        (void) snprintf(work_dir, sizeof(work_dir), "/tmp/smd-peers-XXXXXX");
        if (!mkdtemp(work_dir)) {
                work_dir[0] = '\0';
                tap_skip_all("cannot create a temporary directory");
        }
        (void) chmod(work_dir, 0755);
}

int peers_done(void)
{
        (void) alarm(0);
        children_kill();
        dir_remove();
        return tap_done();
}

const char *peers_dir(void)
{
        return work_dir;
}

char *peers_path(const char *name)
{
        char *p;

        if (asprintf(&p, "%s/%s", work_dir, name) < 0)
                return NULL;
        return p;
}

uint64_t peers_now_usec(void)
{
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

uint16_t peers_free_port(void)
{
        /* Free on both loopbacks: the IPv6 tests put two listeners on one port. */
        for (unsigned attempt = 0; attempt < 50; attempt++) {
                struct sockaddr_in a = {.sin_family = AF_INET,
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                                          .sin6_addr = IN6ADDR_LOOPBACK_INIT};
                socklen_t size = sizeof(a);
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd6;
                uint16_t port = 0;

                if (fd < 0)
                        break;
                if (bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0 &&
                    getsockname(fd, (struct sockaddr *) &a, &size) == 0)
                        port = ntohs(a.sin_port);
                fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
                a6.sin6_port = htons(port);
                bool ok6 =
                    port > 0 && fd6 >= 0 && bind(fd6, (struct sockaddr *) &a6, sizeof(a6)) == 0;
                (void) close(fd);
                if (fd6 >= 0)
                        (void) close(fd6);
                if (ok6)
                        return port;
        }
        tap_diag("no free port");
        return 1;
}

static pid_t spawn(const char *const *argv, bool quiet)
{
        pid_t pid;

        (void) fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) setpgid(0, 0);
                if (quiet) {
                        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                        if (null >= 0) {
                                (void) dup2(null, STDIN_FILENO);
                                (void) dup2(null, STDOUT_FILENO);
                                (void) dup2(null, STDERR_FILENO);
                        }
                } else
                        (void) dup2(STDERR_FILENO, STDOUT_FILENO); /* keep TAP clean */
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        child_add(pid);
        return pid;
}

int peers_run(const char *const *argv)
{
        pid_t pid = spawn(argv, true);
        int status;

        if (pid < 0)
                return pid;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        child_forget(pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool peers_have(const char *program)
{
        const char *path = getenv("PATH");
        char buf[512];

        if (!path)
                path = "/usr/bin:/bin:/usr/sbin:/sbin";
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                (void) snprintf(buf, sizeof(buf), "%.*s/%s", (int) len, p, program);
                if (access(buf, X_OK) == 0)
                        return true;
                p += len;
                if (*p == ':')
                        p++;
        }
        return false;
}

unsigned peers_count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        (void) closedir(d);
        return n - 1; /* the directory's own fd */
}

__attribute__((format(printf, 2, 3))) static bool file_write(const char *path, const char *format,
                                                             ...)
{
        va_list ap;
        FILE *f = fopen(path, "we");
        int r;

        if (!f)
                return false;
        va_start(ap, format);
        r = vfprintf(f, format, ap);
        va_end(ap);
        return fclose(f) == 0 && r >= 0;
}

char *peers_read_file(const char *path, size_t *ret_size)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0, allocated = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (size + 4096 + 1 > allocated) {
                        allocated = (size + 4096 + 1) * 2;
                        char *p = realloc(buf, allocated);
                        if (!p) {
                                free(buf);
                                (void) fclose(f);
                                return NULL;
                        }
                        buf = p;
                }
                size_t n = fread(buf + size, 1, 4096, f);
                size += n;
                if (n == 0)
                        break;
        }
        (void) fclose(f);
        buf[size] = '\0';
        if (ret_size)
                *ret_size = size;
        return buf;
}

/* certtool with a template in the work directory; fails the program when it fails. */
static void certtool(const char *what, const char *template_text, const char *const *args)
{
        char *tmpl = peers_path("cert.tmpl");
        const char *argv[16] = {"certtool"};
        size_t n = 1;
        int r;

        if (!tmpl || !file_write(tmpl, "%s", template_text))
                tap_skip_all("cannot write a certtool template");
        for (const char *const *a = args; *a && n < ELEMENTSOF_PEERS(argv) - 3; a++)
                argv[n++] = *a;
        argv[n++] = "--template";
        argv[n++] = tmpl;
        argv[n] = NULL;
        r = peers_run(argv);
        if (r != 0) {
                tap_diag("certtool for %s exited with %d", what, r);
                ok(false, "certtool makes %s", what);
                exit(tap_done());
        }
        free(tmpl);
}

static char *key_make(const char *name)
{
        char *path = peers_path(name);
        const char *argv[] = {
            "certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", path, NULL};

        if (!path || peers_run(argv) != 0) {
                ok(false, "certtool makes the key %s", name);
                exit(tap_done());
        }
        return path;
}

static void ca_make(const char *name, char **ret_pem, char **ret_key)
{
        char keyname[64], pemname[64];

        (void) snprintf(keyname, sizeof(keyname), "%s.key", name);
        (void) snprintf(pemname, sizeof(pemname), "%s.pem", name);
        *ret_key = key_make(keyname);
        *ret_pem = peers_path(pemname);
        const char *args[] = {
            "--generate-self-signed", "--load-privkey", *ret_key, "--outfile", *ret_pem, NULL};
        char tmpl[256];
        (void) snprintf(tmpl, sizeof(tmpl),
                        "cn = \"%s\"\nca\ncert_signing_key\nexpiration_days = 30\n", name);
        certtool(name, tmpl, args);
}

#define SERVER_NAMES "dns_name = \"localhost\"\nip_address = \"127.0.0.1\"\nip_address = \"::1\"\n"

static void server_make(const char *name, const char *tmpl, const char *ca_pem, const char *ca_key,
                        char **ret_pem, char **ret_key)
{
        char keyname[64], pemname[64];

        (void) snprintf(keyname, sizeof(keyname), "%s.key", name);
        (void) snprintf(pemname, sizeof(pemname), "%s.pem", name);
        *ret_key = key_make(keyname);
        *ret_pem = peers_path(pemname);
        if (ca_pem) {
                const char *args[] = {"--generate-certificate",
                                      "--load-privkey",
                                      *ret_key,
                                      "--load-ca-certificate",
                                      ca_pem,
                                      "--load-ca-privkey",
                                      ca_key,
                                      "--outfile",
                                      *ret_pem,
                                      NULL};
                certtool(name, tmpl, args);
        } else {
                const char *args[] = {"--generate-self-signed",
                                      "--load-privkey",
                                      *ret_key,
                                      "--outfile",
                                      *ret_pem,
                                      NULL};
                certtool(name, tmpl, args);
        }
}

void peer_certs_make(PeerCerts *c)
{
        char *ca_key = NULL, *other_key = NULL;

        if (!peers_have("certtool"))
                tap_skip_all("certtool (gnutls-bin) is not installed");

        *c = (PeerCerts){};
        ca_make("test-ca", &c->ca_pem, &ca_key);
        ca_make("other-ca", &c->other_ca_pem, &other_key);
        server_make("server",
                    "cn = \"localhost\"\n" SERVER_NAMES "tls_www_server\nsigning_key\n"
                    "encryption_key\nexpiration_days = 30\n",
                    c->ca_pem, ca_key, &c->server_pem, &c->server_key);
        server_make("expired",
                    "cn = \"localhost\"\n" SERVER_NAMES "tls_www_server\nsigning_key\n"
                    "encryption_key\nactivation_date = \"2020-01-01 00:00:00\"\n"
                    "expiration_date = \"2020-12-31 23:59:59\"\n",
                    c->ca_pem, ca_key, &c->expired_pem, &c->expired_key);
        server_make("selfsigned",
                    "cn = \"localhost\"\n" SERVER_NAMES "tls_www_server\nsigning_key\n"
                    "encryption_key\nexpiration_days = 30\n",
                    NULL, NULL, &c->selfsigned_pem, &c->selfsigned_key);
        server_make("wrongname",
                    "cn = \"wrong.example\"\ndns_name = \"wrong.example\"\ntls_www_server\n"
                    "signing_key\nencryption_key\nexpiration_days = 30\n",
                    c->ca_pem, ca_key, &c->wrongname_pem, &c->wrongname_key);
        free(ca_key);
        free(other_key);
}

void peer_certs_free(PeerCerts *c)
{
        char **all[] = {&c->ca_pem,        &c->other_ca_pem, &c->server_pem,     &c->server_key,
                        &c->expired_pem,   &c->expired_key,  &c->selfsigned_pem, &c->selfsigned_key,
                        &c->wrongname_pem, &c->wrongname_key};

        for (size_t i = 0; i < ELEMENTSOF_PEERS(all); i++) {
                free(*all[i]);
                *all[i] = NULL;
        }
}

int peers_connect_port(uint16_t port)
{
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
                if (fd >= 0)
                        (void) close(fd);
                return -1;
        }
        return fd;
}

bool peers_port_accepts(uint16_t port)
{
        int fd = peers_connect_port(port);

        if (fd < 0)
                return false;
        (void) close(fd);
        return true;
}

static bool big_file_make(const char *dir)
{
        char path[512];
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/big", dir);
        f = fopen(path, "we");
        if (!f)
                return false;
        for (size_t i = 0; i < PEERS_BIG_SIZE; i++)
                (void) fputc(peers_big_byte(i), f);
        return fclose(f) == 0;
}

static void nginx_launch(Nginx *n, char *conf, const NginxListener *listeners, size_t n_listeners);

void nginx_start(Nginx *n, const NginxListener *listeners, size_t n_listeners)
{
        char *www = peers_path("www"), *conf = peers_path("nginx.conf");
        const char *d = work_dir;
        FILE *f;

        *n = (Nginx){.pid = -1};
        if (!peers_have("nginx"))
                tap_skip_all("nginx is not installed");
        if (!www || !conf || mkdir(www, 0755) < 0 || !big_file_make(www))
                tap_skip_all("cannot prepare nginx's files");

        f = fopen(conf, "we");
        if (!f)
                tap_skip_all("cannot write nginx.conf");
        fprintf(f,
                "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections 2048; }\n"
                "http {\n  access_log off;\n  client_body_temp_path %s/body;\n"
                "  proxy_temp_path %s/proxy;\n  fastcgi_temp_path %s/fastcgi;\n"
                "  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n"
                "  default_type application/octet-stream;\n",
                d, d, d, d, d, d, d);
        for (size_t i = 0; i < n_listeners; i++) {
                const NginxListener *l = &listeners[i];

                fprintf(f, "  server {\n");
                if (l->unix_path)
                        fprintf(f, "    listen unix:%s%s;\n", l->unix_path, l->tls ? " ssl" : "");
                else {
                        fprintf(f, "    listen 127.0.0.1:%u%s;\n", (unsigned) l->port,
                                l->tls ? " ssl" : "");
                        if (l->ipv6)
                                fprintf(f, "    listen [::1]:%u%s;\n", (unsigned) l->port,
                                        l->tls ? " ssl" : "");
                }
                if (l->tls)
                        fprintf(f, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n",
                                l->cert, l->key);
                fprintf(f,
                        "    root %s;\n"
                        "    location = / { return 200 \"hello\\n\"; }\n"
                        "    location = /generate_204 { return 204; }\n"
                        "    location = /big { }\n"
                        "  }\n",
                        www);
        }
        fprintf(f, "}\n");
        if (fclose(f) != 0)
                tap_skip_all("cannot write nginx.conf");

        free(www);
        nginx_launch(n, conf, listeners, n_listeners);
}

void nginx_start_conf(Nginx *n, char *conf, uint16_t ready_port)
{
        NginxListener l = {.port = ready_port};

        *n = (Nginx){.pid = -1};
        if (!peers_have("nginx"))
                tap_skip_all("nginx is not installed");
        nginx_launch(n, conf, &l, 1);
}

/* Starts nginx on conf (taken over) and waits until every listener accepts; else exits. */
static void nginx_launch(Nginx *n, char *conf, const NginxListener *listeners, size_t n_listeners)
{
        char *log = peers_path("error.log");
        const char *argv[] = {"nginx", "-p", work_dir, "-c", conf, "-e", log, NULL};

        n->pid = spawn(argv, true);
        n->conf = conf;
        if (n->pid < 0) {
                ok(false, "nginx starts");
                exit(tap_done());
        }

        /* Ready when every TCP listener accepts; gone when nginx exited (a busy port). */
        for (unsigned i = 0; i < 3000; i++) {
                bool ready = true;
                int status;

                if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
                        child_forget(n->pid);
                        n->pid = -1;
                        tap_diag("nginx exited; its configuration is %s", conf);
                        ok(false, "nginx starts");
                        exit(tap_done());
                }
                for (size_t j = 0; j < n_listeners && ready; j++)
                        if (!listeners[j].unix_path)
                                ready = peers_port_accepts(listeners[j].port);
                        else
                                ready = access(listeners[j].unix_path, F_OK) == 0;
                if (ready) {
                        free(log);
                        return;
                }
                struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
                (void) nanosleep(&ts, NULL);
        }
        free(log);
        ok(false, "nginx ready within 30 s");
        exit(tap_done());
}

void nginx_stop(Nginx *n)
{
        if (n->pid > 0) {
                (void) kill(n->pid, SIGTERM);
                (void) waitpid(n->pid, NULL, 0);
                child_forget(n->pid);
        }
        n->pid = -1;
        free(n->conf);
        n->conf = NULL;
}

static int listener_make(const char *address, uint16_t port, int backlog)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        bool v6 = strchr(address, ':');
        int fd, one = 1;

        fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (v6) {
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (inet_pton(AF_INET6, address, &a6.sin6_addr) != 1 ||
                    bind(fd, (struct sockaddr *) &a6, sizeof(a6)) < 0)
                        goto fail;
        } else if (inet_pton(AF_INET, address, &a.sin_addr) != 1 ||
                   bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                goto fail;
        if (listen(fd, backlog) < 0)
                goto fail;
        return fd;
fail:
        (void) close(fd);
        return -errno;
}

int peers_silent_listener(const char *address, uint16_t port)
{
        return listener_make(address, port, 64);
}

int peers_blackhole_listener(const char *address, uint16_t port, int *ret_filler)
{
        struct sockaddr_storage ss = {};
        socklen_t size = sizeof(ss);
        int fd, filler;

        fd = listener_make(address, port, 0);
        if (fd < 0)
                return fd;
        if (getsockname(fd, (struct sockaddr *) &ss, &size) < 0)
                goto fail;
        /* Backlog 0 holds one connection; with it queued the next SYNs are dropped. */
        filler = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (filler < 0)
                goto fail;
        if (connect(filler, (struct sockaddr *) &ss, size) < 0) {
                (void) close(filler);
                goto fail;
        }
        *ret_filler = filler;
        return fd;
fail:
        (void) close(fd);
        return -errno;
}

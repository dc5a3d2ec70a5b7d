/* SPDX-License-Identifier: MIT */
/*
 * Policy fetch (issue 8) end to end: the built smdagent fetches its policy
 * from nginx over TLS (a test CA in a trust store of the local policy),
 * checks an Ed25519 signature made with a key from certtool, applies the
 * document on top of the local policy, persists it and publishes the outcome.
 *
 * - At the POLICY_VALID gate a valid signed policy is applied, published and
 *   persisted; a monitor connected from the start sees every outcome.
 * - Invalid JSON, an unknown key, an oversized body, a missing signature, a
 *   signature by another key, a tampered body, a server certificate from
 *   another CA, a 404 and a server that is down each leave the previous
 *   policy in force, with the reason in the fetch-failed message.
 * - The agent killed with SIGKILL at random moments of fetch-and-persist
 *   cycles: the persisted file is always one of the documents served, whole.
 * - A restart with the server down: the persisted policy is in force (its
 *   streamtype exists) and the system still becomes OPERATIONAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "tap.h"
#include "util.h"

#define KILL_ROUNDS 30
#define MAX_SIZE    4096 /* the local policy's fetch_policy_max_size */

static const char *smdagent, *smdctl;
static char *sock, *state_dir, *local_policy, *www, *agent_log, *monitor_log;
static char *ca_pem, *selfsigned_pem;
static uint16_t port_good, port_other;
static pid_t agent_pid = -1, monitor_pid = -1;
static char *v1;                /* the first fetched document */
static unsigned updates_before; /* updates the monitor saw in the first phase */

/* Processes. */

static void kill_ours(void)
{
        pid_t pids[] = {agent_pid, monitor_pid};

        for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++)
                if (pids[i] > 0) {
                        (void) kill(pids[i], SIGKILL);
                        (void) waitpid(pids[i], NULL, 0);
                }
        agent_pid = monitor_pid = -1;
}

/* Start argv with stdout and stderr appended to log (or captured into *out via a pipe). */
static pid_t start(const char *const *argv, const char *log, int *ret_out_fd)
{
        int pipefd[2] = {-1, -1};
        pid_t pid;

        if (ret_out_fd && pipe2(pipefd, O_CLOEXEC) < 0)
                return -1;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd =
                    open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd >= 0) {
                        (void) dup2(fd, 2);
                        (void) dup2(ret_out_fd ? pipefd[1] : fd, 1);
                }
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        if (ret_out_fd) {
                close(pipefd[1]);
                *ret_out_fd = pipefd[0];
        }
        return pid;
}

/* Runs argv, returns its exit code (or -1) and what it printed on stdout (free it). */
static int run(const char *const *argv, char **ret_out, unsigned timeout_ms)
{
        char buf[65536];
        size_t n = 0;
        int fd, status;
        uint64_t end = peers_now_usec() + timeout_ms * 1000ull;
        pid_t pid = start(argv, agent_log, &fd);

        if (pid < 0)
                return -1;
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = (int64_t) (end - peers_now_usec()) / 1000;
                ssize_t k;

                if (left <= 0 || poll(&p, 1, (int) left) <= 0)
                        break;
                k = read(fd, buf + n, sizeof(buf) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        close(fd);
        if (peers_now_usec() >= end)
                (void) kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        if (ret_out)
                *ret_out = strdup(buf);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int ctl(char **ret_out, const char *a1, const char *a2, const char *a3)
{
        const char *argv[] = {smdctl, "-s", sock, "--json", a1, a2, a3, NULL};

        return run(argv, ret_out, 90000);
}

static bool agent_start(void)
{
        const char *argv[] = {smdagent,      "--socket",   sock,          "--no-system-policy",
                              "--policy",    local_policy, "--state-dir", state_dir,
                              "--log-level", "debug",      NULL};
        uint64_t end = peers_now_usec() + 10000000ull;

        (void) unlink(sock);
        agent_pid = start(argv, agent_log, NULL);
        if (agent_pid < 0)
                return false;
        while (peers_now_usec() < end) {
                char *out = NULL;
                int r = ctl(&out, "status", NULL, NULL);

                free(out);
                if (r == 0)
                        return true;
                if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
                        agent_pid = -1;
                        return false;
                }
                usleep(20000);
        }
        return false;
}

static int agent_stop(int sig)
{
        int status = -1;

        if (agent_pid <= 0)
                return -1;
        (void) kill(agent_pid, sig);
        (void) waitpid(agent_pid, &status, 0);
        agent_pid = -1;
        return status;
}

/* Files. */

static bool write_file(const char *path, const void *data, size_t size)
{
        char tmp[512];
        FILE *f;
        bool good;

        /* Replace atomically: nginx may be serving the old file right now. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "we");
        if (!f)
                return false;
        good = fwrite(data, 1, size, f) == size;
        good = fclose(f) == 0 && good;
        return good && rename(tmp, path) == 0;
}

static char *www_path(const char *name)
{
        static char buf[4][512];
        static unsigned next;
        char *p = buf[next++ % 4];

        snprintf(p, sizeof(buf[0]), "%s/%s", www, name);
        return p;
}

/* Signs data with the named key (certtool's PEM) through GnuTLS; writes www/policy.json.sig. */
static bool sign_with(const char *key_name, const char *data, size_t size, bool truncate)
{
        char path[512];
        size_t key_size = 0;
        char *pem;
        gnutls_privkey_t key = NULL;
        gnutls_datum_t k, d = {.data = (unsigned char *) data, .size = (unsigned) size}, sig = {};
        bool good = false;

        snprintf(path, sizeof(path), "%s/%s.key", peers_dir(), key_name);
        pem = peers_read_file(path, &key_size);
        if (!pem)
                return false;
        k = (gnutls_datum_t){.data = (unsigned char *) pem, .size = (unsigned) key_size};
        if (gnutls_privkey_init(&key) >= 0 &&
            gnutls_privkey_import_x509_raw(key, &k, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0 &&
            gnutls_privkey_sign_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig) >= 0)
                good = write_file(www_path("policy.json.sig"), sig.data,
                                  truncate ? sig.size / 2 : sig.size);
        gnutls_free(sig.data);
        gnutls_privkey_deinit(key);
        free(pem);
        return good;
}

/* Serves body as policy.json with a signature by the vendor key. */
static bool serve_signed(const char *body)
{
        return write_file(www_path("policy.json"), body, strlen(body)) &&
               sign_with("vendor", body, strlen(body), false);
}

static bool make_key(const char *name)
{
        char key[512], pub[512];
        const char *gen[] = {
            "certtool", "--generate-privkey", "--key-type=ed25519", "--outfile", key, NULL};
        const char *info[] = {"certtool", "--load-privkey", key, "--pubkey-info", "--outfile", pub,
                              NULL};

        snprintf(key, sizeof(key), "%s/%s.key", peers_dir(), name);
        snprintf(pub, sizeof(pub), "%s/%s.pub", peers_dir(), name);
        return peers_run(gen) == 0 && peers_run(info) == 0;
}

/* The local policy: fetch from port, signed with key_path (NULL: the vendor's key). */
static bool write_local_policy_key(uint16_t port, unsigned interval_s, const char *key_path)
{
        char buf[4096], vendor_pub[512], interval[64] = "";
        int n;

        snprintf(vendor_pub, sizeof(vendor_pub), "%s", key_path ? key_path : "");
        if (!key_path)
                snprintf(vendor_pub, sizeof(vendor_pub), "%s/vendor.pub", peers_dir());
        if (interval_s)
                snprintf(interval, sizeof(interval), "\"fetch_policy_interval_s\": %u,",
                         interval_s);
        n = snprintf(
            buf, sizeof(buf),
            "{\"release\": \"local-1\", \"policy_signing_key\": \"%s\",\n"
            " \"retry\": [{\"fast\": {\"backoff\": [50], \"conceal\": 1, \"jitterpc\": 0}}],\n"
            " \"certs\": [{\"testca\": \"file:%s\"}],\n"
            " \"trust_stores\": [{\"name\": \"test\", \"stack\": [\"testca\"]}],\n"
            " \"s\": [{\"fetch_policy\": {\"endpoint\": "
            "\"https://127.0.0.1:%u/policy.json\", \"tls_trust_store\": \"test\",\n"
            "   \"retry\": \"fast\", \"timeout_ms\": 5000, %s"
            " \"fetch_policy_max_size\": %u}}]}\n",
            vendor_pub, ca_pem, (unsigned) port, interval, MAX_SIZE);
        return n > 0 && (size_t) n < sizeof(buf) && write_file(local_policy, buf, (size_t) n);
}

static bool write_local_policy(uint16_t port, unsigned interval_s)
{
        return write_local_policy_key(port, interval_s, NULL);
}

static void reload(void)
{
        char *out = NULL;

        is_int(ctl(&out, "policy", "reload", NULL), 0, "smdctl policy reload");
        free(out);
}

/* A policy document of the vendor's: its release and one streamtype named after it. */
static char *vendor_doc(const char *release, size_t pad)
{
        char *s = NULL;
        char *padding = calloc(pad + 1, 1);

        if (!padding)
                return NULL;
        memset(padding, 'x', pad);
        if (asprintf(&s,
                     "{\"release\": \"%s\", \"product\": \"%s\",\n \"s\": [{\"api_%s\": "
                     "{\"endpoint\": \"https://127.0.0.1:1/%s\"}}]}\n",
                     release, padding, release, release) < 0)
                s = NULL;
        free(padding);
        return s;
}

/* Queries. */

static json_object *policy_show(void)
{
        char *out = NULL;
        json_object *o = NULL;

        if (ctl(&out, "policy", "show", NULL) == 0)
                o = json_tokener_parse(out);
        free(out);
        return o;
}

static const char *jget(json_object *o, const char *path)
{
        char buf[128], *save = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *k = strtok_r(buf, ".", &save); o && k; k = strtok_r(NULL, ".", &save))
                if (!json_object_object_get_ex(o, k, &o))
                        return NULL;
        return o ? json_object_get_string(o) : NULL;
}

static bool has_streamtype(json_object *show, const char *name)
{
        json_object *pol, *s;

        if (!json_object_object_get_ex(show, "policy", &pol) ||
            !json_object_object_get_ex(pol, "s", &s))
                return false;
        for (size_t i = 0; i < json_object_array_length(s); i++)
                if (json_object_object_get_ex(json_object_array_get_idx(s, i), name, NULL))
                        return true;
        return false;
}

static void check_release(const char *release, const char *what)
{
        json_object *o = policy_show();

        is_str(o ? jget(o, "release") : NULL, release, "%s: release %s in force", what, release);
        json_object_put(o);
}

/* smdctl policy fetch; returns its JSON line (the SMD message) or NULL. */
static json_object *fetch(int *ret_code)
{
        char *out = NULL;
        json_object *o;

        *ret_code = ctl(&out, "policy", "fetch", NULL);
        o = out ? json_tokener_parse(out) : NULL;
        if (!o)
                tap_diag("smdctl policy fetch printed: %s", out ? out : "(nothing)");
        free(out);
        return o;
}

static void expect_failure(const char *what, const char *reason_part, const char *release)
{
        int code;
        json_object *m = fetch(&code);
        const char *reason = m ? jget(m, "reason") : NULL;

        is_int(code, 1, "%s: smdctl policy fetch exits 1", what);
        is_str(m ? jget(m, "policy") : NULL, "fetch-failed", "%s: fetch-failed published", what);
        ok(reason && strstr(reason, reason_part), "%s: the reason says \"%s\"", what, reason_part);
        if (reason && !strstr(reason, reason_part))
                tap_diag("reason: %s", reason);
        json_object_put(m);
        check_release(release, what);
}

static bool file_equals(const char *path, const char *text)
{
        size_t size = 0;
        char *data = peers_read_file(path, &size);
        bool same = data && size == strlen(text) && memcmp(data, text, size) == 0;

        free(data);
        return same;
}

static char *persisted_path(void)
{
        static char buf[512];

        snprintf(buf, sizeof(buf), "%s/policy.json", state_dir);
        return buf;
}

static unsigned count_in_file(const char *path, const char *needle)
{
        size_t size = 0;
        char *data = peers_read_file(path, &size);
        unsigned n = 0;

        for (const char *p = data; p && (p = strstr(p, needle)); p++)
                n++;
        free(data);
        return n;
}

/* Phases. */

static void test_first_fetch(void)
{
        const char *wait_argv[] = {smdctl, "-s", sock, "wait", "--timeout", "60", NULL};
        const char *mon_argv[] = {smdctl,   "-s",      sock,           "monitor",
                                  "--json", "--class", "system_state", NULL};
        json_object *o;

        v1 = vendor_doc("fetched-1", 10);

        ok(serve_signed(v1), "serve fetched-1, signed");
        ok(agent_start(), "the agent starts");
        monitor_pid = start(mon_argv, monitor_log, NULL);
        ok(monitor_pid > 0, "a monitor subscribes to SYSTEM_STATE");
        is_int(run(wait_argv, NULL, 65000), 0, "the agent becomes OPERATIONAL");
        o = policy_show();
        is_str(o ? jget(o, "release") : NULL, "fetched-1", "the fetched policy is in force");
        is_str(o ? jget(o, "origin.origin") : NULL, "fetched", "policy show: origin fetched");
        ok(o && jget(o, "origin.fetched_realtime_us") &&
               atoll(jget(o, "origin.fetched_realtime_us")) > 0,
           "policy show: when it was fetched");
        ok(o && has_streamtype(o, "api_fetched-1"), "its streamtype exists");
        ok(o && has_streamtype(o, "fetch_policy"), "the local streamtypes are still there");
        json_object_put(o);
        ok(file_equals(persisted_path(), v1), "it is persisted byte for byte");
        /* The first fetch may beat the monitor's subscription: later ones are checked. */
        usleep(200000);
        updates_before = count_in_file(monitor_log, "\"policy\":\"updated\"");
}

static void test_failures(void)
{
        _cleanup_free_ char *v2 = vendor_doc("fetched-2", 10), *big = vendor_doc("big", MAX_SIZE);
        static const char unknown_key[] = "{\"release\": \"bad\", \"no_such_key\": 1}\n";
        static const char bad_json[] = "{\"release\": \"bad\", \"s\": [\n";
        char *tampered;
        int code;
        json_object *m;

        ok(serve_signed(bad_json), "serve invalid JSON, signed");
        expect_failure("invalid JSON", "json:", "fetched-1");
        ok(serve_signed(unknown_key), "serve a policy with an unknown key, signed");
        expect_failure("unknown key", "no_such_key: unknown key", "fetched-1");
        ok(serve_signed(big), "serve a policy larger than fetch_policy_max_size, signed");
        expect_failure("oversized body", "size:", "fetched-1");

        ok(write_file(www_path("policy.json"), v2, strlen(v2)) &&
               unlink(www_path("policy.json.sig")) == 0,
           "serve fetched-2 without a signature");
        expect_failure("missing signature", "signature: missing (status 404", "fetched-1");
        ok(sign_with("other", v2, strlen(v2), false), "sign fetched-2 with another key");
        expect_failure("another key", "signature: does not verify", "fetched-1");
        ok(sign_with("vendor", v2, strlen(v2), true), "a truncated signature");
        expect_failure("truncated signature", "signature: does not verify", "fetched-1");
        tampered = strdup(v2);
        tampered[strlen(tampered) - 3] = ' ';
        ok(sign_with("vendor", v2, strlen(v2), false) &&
               write_file(www_path("policy.json"), tampered, strlen(tampered)),
           "serve a tampered fetched-2 with the original signature");
        free(tampered);
        expect_failure("tampered body", "signature: does not verify", "fetched-1");
        ok(unlink(www_path("policy.json")) == 0, "remove policy.json");
        expect_failure("404", "http: status 404", "fetched-1");

        /* The signing key itself unusable: the local policy names a missing file, then junk. */
        ok(serve_signed(v2), "serve fetched-2, signed");
        ok(write_local_policy_key(port_good, 0, "/nonexistent/vendor.pub"),
           "the local policy names a signing key file that does not exist");
        reload();
        expect_failure("missing signing key",
                       "signature: cannot use the signing key /nonexistent/vendor.pub",
                       "fetched-1");
        {
                char junk[512];

                snprintf(junk, sizeof(junk), "%s/junk.pub", peers_dir());
                ok(write_file(junk, "not a key\n", 10) &&
                       write_local_policy_key(port_good, 0, junk),
                   "the local policy names a signing key file that holds no key");
                reload();
                expect_failure("junk signing key", "not a PEM public key", "fetched-1");
        }
        ok(write_local_policy(port_good, 0), "the local policy names the vendor's key again");
        reload();

        /* Another CA: the local policy points at the listener with a self-signed certificate. */
        ok(serve_signed(v2), "serve fetched-2, signed");
        ok(write_local_policy(port_other, 0), "the local policy names the other listener");
        {
                char *out = NULL;

                is_int(ctl(&out, "policy", "reload", NULL), 0, "smdctl policy reload");
                free(out);
        }
        expect_failure("wrong CA", "tls: the server certificate does not verify", "fetched-1");
        ok(write_local_policy(port_good, 0), "the local policy names the good listener again");
        {
                char *out = NULL;

                is_int(ctl(&out, "policy", "reload", NULL), 0, "smdctl policy reload");
                free(out);
        }
        ok(file_equals(persisted_path(), v1), "nothing but fetched-1 persisted");

        m = fetch(&code);
        is_int(code, 0, "fetched-2 signed: smdctl policy fetch exits 0");
        is_str(m ? jget(m, "release") : NULL, "fetched-2", "updated to fetched-2");
        json_object_put(m);
        check_release("fetched-2", "after a good fetch");
        ok(file_equals(persisted_path(), v2), "fetched-2 is persisted");

        usleep(200000);
        ok(monitor_pid > 0 && waitpid(monitor_pid, NULL, WNOHANG) == 0,
           "the monitor is still connected");
        is_int(count_in_file(monitor_log, "\"policy\":\"fetch-failed\""), 11,
               "the monitor saw the eleven fetch-failed messages");
        is_int(count_in_file(monitor_log, "\"policy\":\"updated\",\"release\":\"fetched-2\""), 1,
               "the monitor saw {\"policy\":\"updated\",\"release\":\"fetched-2\"}");
        is_int(count_in_file(monitor_log, "\"policy\":\"updated\""), updates_before + 1,
               "and no other update");
}

/* SIGKILL at random moments of fetch-and-persist cycles: the file is always one whole document. */
static void test_kill_loop(void)
{
        _cleanup_free_ char *a = vendor_doc("kill-a", 100), *b = vendor_doc("kill-b", 1000),
                            *v2 = vendor_doc("fetched-2", 10);
        const char *candidates[] = {v2, a, b};
        unsigned good = 0, restarts_ok = 0, changed = 0;
        char *last = NULL;

        srand((unsigned) getpid());
        for (unsigned i = 0; i < KILL_ROUNDS; i++) {
                const char *doc = i % 2 ? b : a;
                const char *fetch_argv[] = {smdctl, "-s", sock, "policy", "fetch", NULL};
                size_t size = 0;
                char *data;
                pid_t p;
                bool match = false;

                (void) serve_signed(doc);
                if (agent_pid <= 0 && agent_start())
                        restarts_ok++;
                p = start(fetch_argv, NULL, NULL);
                usleep((useconds_t) (rand() % 150000));
                (void) agent_stop(SIGKILL);
                /* smdctl would wait for the outcome of a fetch that died with the agent. */
                if (p > 0) {
                        (void) kill(p, SIGKILL);
                        (void) waitpid(p, NULL, 0);
                }
                data = peers_read_file(persisted_path(), &size);
                for (size_t c = 0; data && c < 3; c++)
                        if (size == strlen(candidates[c]) && memcmp(data, candidates[c], size) == 0)
                                match = true;
                if (match) {
                        good++;
                        if (last && strcmp(last, data) != 0)
                                changed++;
                        free(last);
                        last = data;
                } else {
                        tap_diag("round %u: the persisted file is not one of the documents "
                                 "(%zu bytes)",
                                 i, size);
                        free(data);
                }
        }
        free(last);
        is_int(restarts_ok, KILL_ROUNDS - 1, "the agent restarted after every SIGKILL");
        is_int(good, KILL_ROUNDS, "after each of %u kills the file was one whole document",
               KILL_ROUNDS);
        cmp_int(changed, >, 0, "the kills hit between different documents (it did change)");
        tap_diag("the persisted document changed %u times over %u kills", changed, KILL_ROUNDS);
        ok(agent_start(), "the agent starts after the last kill");
        check_release(file_equals(persisted_path(), a)   ? "kill-a"
                      : file_equals(persisted_path(), b) ? "kill-b"
                                                         : "fetched-2",
                      "after the kills");
}

static void test_server_down(Nginx *nginx)
{
        const char *wait_argv[] = {smdctl, "-s", sock, "wait", "--timeout", "60", NULL};
        _cleanup_free_ char *before = NULL;
        size_t size = 0;
        json_object *o;
        char *release;

        o = policy_show();
        release = o && jget(o, "release") ? strdup(jget(o, "release")) : NULL;
        json_object_put(o);
        before = peers_read_file(persisted_path(), &size);
        nginx_stop(nginx);
        expect_failure("server down", "network: connection refused", release ? release : "?");
        ok(before && file_equals(persisted_path(), before), "the persisted file is unchanged");

        /* A restart without the server, fetching every second. */
        is_int(WIFEXITED(agent_stop(SIGTERM)), 1, "the agent stops on SIGTERM");
        ok(write_local_policy(port_good, 1), "the local policy fetches every second");
        ok(agent_start(), "the agent starts with the server down");
        is_int(run(wait_argv, NULL, 65000), 0, "it still becomes OPERATIONAL");
        o = policy_show();
        is_str(o ? jget(o, "release") : NULL, release, "the persisted policy is in force");
        is_str(o ? jget(o, "origin.origin") : NULL, "persisted", "policy show: origin persisted");
        if (release) {
                char name[64];

                snprintf(name, sizeof(name), "api_%s", release);
                ok(o && has_streamtype(o, name), "its streamtype %s exists", name);
        }
        json_object_put(o);
        usleep(2500000);
        o = policy_show();
        cmp_int(o && jget(o, "origin.fetch.attempts") ? atoi(jget(o, "origin.fetch.attempts")) : 0,
                >=, 3, "it fetched at the gate and then every second");
        ok(o && jget(o, "origin.fetch.last_reason") &&
               strstr(jget(o, "origin.fetch.last_reason"), "connection refused"),
           "policy show: the last fetch failed, connection refused");
        json_object_put(o);
        free(release);
        is_int(WIFEXITED(agent_stop(SIGTERM)) ? 0 : 1, 0, "the agent exits cleanly");
        {
                size_t n = 0;
                char *log = peers_read_file(agent_log, &n);

                ok(log && !strstr(log, "LeakSanitizer") && !strstr(log, "AddressSanitizer") &&
                       !strstr(log, "runtime error:"),
                   "no sanitizer report in the agent's log");
                free(log);
        }
}

int main(void)
{
        PeerCerts certs;
        Nginx nginx;

        peers_init(400);
        smdagent = getenv("SMDAGENT");
        smdctl = getenv("SMDCTL");
        if (!smdagent || !smdctl)
                tap_skip_all("SMDAGENT and SMDCTL are not set (run through meson test)");
        atexit(kill_ours);
        peer_certs_make(&certs);
        ca_pem = certs.ca_pem;
        selfsigned_pem = certs.selfsigned_pem;
        port_good = peers_free_port();
        port_other = peers_free_port();
        {
                NginxListener l[] = {
                    {.port = port_good,
                     .tls = true,
                     .cert = certs.server_pem,
                     .key = certs.server_key},
                    {.port = port_other,
                     .tls = true,
                     .cert = certs.selfsigned_pem,
                     .key = certs.selfsigned_key},
                };

                nginx_start(&nginx, l, 2);
        }
        sock = peers_path("ss.sock");
        state_dir = peers_path("state");
        local_policy = peers_path("local.json");
        www = peers_path("www");
        agent_log = peers_path("agent.log");
        monitor_log = peers_path("monitor.log");
        ok(make_key("vendor") && make_key("other"), "certtool makes two Ed25519 keys");
        ok(write_local_policy(port_good, 0), "write the local policy");

        test_first_fetch();
        test_failures();
        if (monitor_pid > 0) {
                (void) kill(monitor_pid, SIGKILL);
                (void) waitpid(monitor_pid, NULL, 0);
                monitor_pid = -1;
        }
        test_kill_loop();
        test_server_down(&nginx);
        free(v1);
        kill_ours();
        peer_certs_free(&certs);
        return peers_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams mqtt against mosquitto: a broker of the test's own (a plain
 * and a TLS listener on free loopback ports, log_type all into a file),
 * mosquitto_sub watching what our streams publish at QoS 0 and 1 (retained
 * too, over TCP and TLS), mosquitto_pub feeding a stream's subscription,
 * keep-alive PINGREQs counted in the broker log and the hang-ups when the
 * broker is frozen, a CONNACK refusal (a listener without anonymous access),
 * a QoS 1 birth message, and the broker frozen and killed with QoS 1 messages
 * unacknowledged, then started again: they arrive with DUP once the stream has
 * reconnected. An in-process broker that never acknowledges shows the resends
 * and the QOS_NACK_REMOTE after the retry entry's conceal count.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "ss-peers.h"
#include "stream.h"
#include "tap.h"

#define MESSAGE_MAX (1024u * 1024)
#define BIG_SIZE    100003u

static sd_event *event;
static SsContext *ctx;
static uint16_t port_plain, port_tls, port_auth, port_fake;
static char *broker_conf, *broker_log;
static pid_t broker_pid;
static PeerCerts certs;

/* ---- processes ------------------------------------------------------------------------- */

/* Runs argv in its own process group, stdout and stderr appended to path. */
static pid_t spawn(const char *const *argv, const char *path)
{
        pid_t pid;

        (void) fflush(stdout);
        pid = fork();
        if (pid == 0) {
                int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                (void) setpgid(0, 0);
                if (fd >= 0) {
                        (void) dup2(fd, STDOUT_FILENO);
                        (void) dup2(fd, STDERR_FILENO);
                }
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        return pid;
}

static void broker_kill(int sig)
{
        if (broker_pid <= 0)
                return;
        (void) kill(-broker_pid, sig);
        if (sig != SIGSTOP) {
                (void) kill(-broker_pid, SIGCONT);
                (void) waitpid(broker_pid, NULL, 0);
                broker_pid = 0;
        }
}

static void broker_continue(void)
{
        if (broker_pid > 0)
                (void) kill(-broker_pid, SIGCONT);
}

static void broker_kill_at_exit(void)
{
        broker_kill(SIGKILL);
}

static bool broker_start(void)
{
        const char *argv[] = {"mosquitto", "-c", broker_conf, NULL};

        broker_pid = spawn(argv, broker_log);
        for (int i = 0; i < 500; i++) {
                if (peers_port_accepts(port_plain) && peers_port_accepts(port_tls) &&
                    peers_port_accepts(port_auth))
                        return true;
                if (waitpid(broker_pid, NULL, WNOHANG) != 0) {
                        broker_pid = 0;
                        return false;
                }
                usleep(10000);
        }
        return false;
}

static bool write_file(const char *path, const void *data, size_t size)
{
        FILE *f = fopen(path, "we");
        bool good;

        if (!f)
                return false;
        good = fwrite(data, 1, size, f) == size;
        return fclose(f) == 0 && good;
}

static bool write_broker_conf(void)
{
        char *text = NULL;
        bool good;

        broker_conf = peers_path("mosquitto.conf");
        broker_log = peers_path("mosquitto.log");
        if (!broker_conf || !broker_log ||
            asprintf(&text,
                     "user root\nper_listener_settings true\npersistence false\n"
                     "log_dest stderr\nlog_type all\n"
                     "listener %u 127.0.0.1\nallow_anonymous true\n"
                     "listener %u 127.0.0.1\nallow_anonymous true\n"
                     "cafile %s\ncertfile %s\nkeyfile %s\n"
                     "listener %u 127.0.0.1\nallow_anonymous false\n",
                     (unsigned) port_plain, (unsigned) port_tls, certs.ca_pem, certs.server_pem,
                     certs.server_key, (unsigned) port_auth) < 0)
                return false;
        good = write_file(broker_conf, text, strlen(text));
        free(text);
        return good;
}

/* How many lines of the broker log hold all of the given words (NULL-terminated). */
static unsigned log_count(const char *const *words)
{
        char buf[1024];
        unsigned n = 0;
        FILE *f = fopen(broker_log, "re");

        if (!f)
                return 0;
        while (fgets(buf, sizeof(buf), f)) {
                bool all = true;

                for (const char *const *w = words; *w && all; w++)
                        all = strstr(buf, *w) != NULL;
                n += all;
        }
        (void) fclose(f);
        return n;
}

static void run_for(unsigned ms)
{
        uint64_t end = peers_now_usec() + (uint64_t) ms * 1000;

        while (peers_now_usec() < end)
                (void) sd_event_run(event, 20000);
}

/* A mosquitto_sub for topic until count messages (-W 5), its output in a file. */
typedef struct Sub {
        pid_t pid;
        char *out;
} Sub;

static bool sub_start(Sub *sub, const char *topic, unsigned count, const char *qos)
{
        static unsigned serial;
        char name[32], n[16], id[32];
        const char *words[] = {"Received SUBSCRIBE from", id, NULL};
        unsigned before;

        snprintf(name, sizeof(name), "sub%u.out", ++serial);
        snprintf(n, sizeof(n), "%u", count);
        snprintf(id, sizeof(id), "itsub%u", serial);
        sub->out = peers_path(name);
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned) port_plain);
        const char *argv[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-i", id,  "-t",
                              topic,           "-q", qos,         "-C", n,    "-W", "5", NULL};
        before = log_count(words);
        sub->pid = spawn(argv, sub->out);
        for (int i = 0; i < 3000; i++) {
                if (log_count(words) > before)
                        return true;
                run_for(10);
        }
        return false;
}

/* Waits for the subscriber to finish (the loop runs meanwhile); its output, allocated. */
static char *sub_finish(Sub *sub)
{
        int status = 0;
        char *text;

        for (int i = 0; i < 400; i++) {
                if (waitpid(sub->pid, &status, WNOHANG) == sub->pid) {
                        sub->pid = 0;
                        break;
                }
                run_for(20);
        }
        if (sub->pid > 0) {
                (void) kill(sub->pid, SIGKILL);
                (void) waitpid(sub->pid, NULL, 0);
        }
        text = peers_read_file(sub->out, NULL);
        free(sub->out);
        return text ? text : strdup("");
}

/* ---- a recording stream user ----------------------------------------------------------- */

typedef struct Rec {
        char states[4096];
        unsigned count[_SS_STATE_MAX];
        uint32_t ack[_SS_STATE_MAX];

        uint8_t *cur, *last;
        size_t cur_len, last_len;
        unsigned n_messages;
        bool flags_ok, in_message;
        char log[1024];
        char topic[128]; /* metadata "topic" at the last EOM */

        const char *tx_text;
        unsigned n_tx_messages;

        const char *const *connected_words; /* counted in the broker log at CONNECTED */
        unsigned connected_count;
} Rec;

static void rec_init(Rec *r)
{
        free(r->cur);
        free(r->last);
        *r = (Rec){.flags_ok = true};
}

static SsResult rec_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        Rec *r = userdata;
        size_t n = strlen(r->states);

        if (n + 32 < sizeof(r->states))
                snprintf(r->states + n, sizeof(r->states) - n, "%s%s", n ? " " : "",
                         ss_state_to_string(state));
        if (state > 0 && state < _SS_STATE_MAX) {
                r->count[state]++;
                r->ack[state] = ack;
        }
        if (state == SS_STATE_CONNECTED && r->connected_words)
                r->connected_count = log_count(r->connected_words);
        return SS_OK;
}

static SsResult rec_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        Rec *r = userdata;
        uint8_t *p;

        if (!!(flags & SS_FLAG_SOM) == r->in_message)
                r->flags_ok = false;
        r->in_message = !(flags & SS_FLAG_EOM);
        if (r->cur_len + len > MESSAGE_MAX)
                return SS_DISCONNECT_ME;
        p = realloc(r->cur, r->cur_len + len + 1);
        if (!p)
                return SS_DISCONNECT_ME;
        r->cur = p;
        memcpy(r->cur + r->cur_len, buf, len);
        r->cur_len += len;
        if (flags & SS_FLAG_EOM) {
                const char *topic = NULL;
                size_t n = strlen(r->log);

                free(r->last);
                r->last = r->cur;
                r->last_len = r->cur_len;
                r->last[r->last_len] = 0;
                r->cur = NULL;
                r->cur_len = 0;
                r->n_messages++;
                if (r->last_len <= 64 && n + r->last_len + 2 < sizeof(r->log))
                        snprintf(r->log + n, sizeof(r->log) - n, "%s|", (char *) r->last);
                (void) ss_stream_get_metadata(s, "topic", &topic, NULL);
                snprintf(r->topic, sizeof(r->topic), "%s", topic ? topic : "(none)");
        }
        return SS_OK;
}

static SsResult rec_tx(SsStream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Rec *r = userdata;
        size_t n = strlen(r->tx_text);

        /* Two pieces: the message is gathered across tx calls. */
        if (n > 1 && *len >= n) {
                static bool second;

                n = second ? n - 1 : 1;
                memcpy(buf, second ? r->tx_text + 1 : r->tx_text, n);
                *len = n;
                *flags = second ? SS_FLAG_EOM : SS_FLAG_SOM;
                if (second)
                        r->n_tx_messages++;
                second = !second;
                return SS_OK;
        }
        memcpy(buf, r->tx_text, n);
        *len = n;
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        r->n_tx_messages++;
        return SS_OK;
}

static const SsStreamHandlers handlers = {.rx = rec_rx, .tx = rec_tx, .state = rec_state};

static SsStream *open_stream(const char *type, Rec *r)
{
        SsStream *s = NULL;
        int k = ss_stream_new(&s, ctx, type, &handlers, r);

        if (k < 0)
                is_int(k, 0, "ss_stream_new(%s)", type);
        return s;
}

static bool run_until(bool (*done)(Rec *, unsigned), Rec *r, unsigned arg, unsigned ms)
{
        uint64_t end = peers_now_usec() + (uint64_t) ms * 1000;

        while (!done(r, arg)) {
                if (peers_now_usec() > end)
                        return false;
                (void) sd_event_run(event, 20000);
        }
        return true;
}

static bool done_connected(Rec *r, unsigned n)
{
        return r->count[SS_STATE_CONNECTED] >= n;
}

static bool done_sent(Rec *r, unsigned n)
{
        return r->n_tx_messages >= n;
}

static bool done_acked(Rec *r, unsigned n)
{
        return r->count[SS_STATE_QOS_ACK_REMOTE] >= n;
}

static bool done_messages(Rec *r, unsigned n)
{
        return r->n_messages >= n;
}

static bool done_unreachable(Rec *r, unsigned n)
{
        return r->count[SS_STATE_UNREACHABLE] >= n;
}

static bool done_disconnected(Rec *r, unsigned n)
{
        return r->count[SS_STATE_DISCONNECTED] >= n;
}

static const char *const texts[] = {"first", "second", "third", "fourth"};

/* Publishes texts[0..n) one request_tx each; QoS 1 waits for each PUBACK. */
static bool publish(SsStream *s, Rec *r, size_t n, bool acked)
{
        for (size_t i = 0; i < n; i++) {
                unsigned sent = r->n_tx_messages, acks = r->count[SS_STATE_QOS_ACK_REMOTE];

                r->tx_text = texts[i];
                (void) ss_stream_request_tx(s);
                if (!run_until(done_sent, r, sent + 1, 10000))
                        return false;
                if (acked && !run_until(done_acked, r, acks + 1, 10000))
                        return false;
        }
        return true;
}

/* ---- a broker that never acknowledges ---------------------------------------------------- */

/*
 * Answers CONNECT with CONNACK and closes the connection at the first PUBLISH,
 * which it records (fixed header byte): QoS 1 messages are never acknowledged.
 */
typedef struct Fake {
        int listen_fd, fd;
        sd_event_source *listen_source, *source;
        uint8_t in[4096];
        size_t in_len;
        uint8_t publishes[16];
        unsigned n_publishes, n_connects;
} Fake;

static void fake_drop(Fake *f)
{
        f->source = sd_event_source_disable_unref(f->source);
        if (f->fd >= 0)
                (void) close(f->fd);
        f->fd = -1;
        f->in_len = 0;
}

static int on_fake_data(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
        Fake *f = userdata;
        ssize_t n = read(fd, f->in + f->in_len, sizeof(f->in) - f->in_len);
        size_t off = 0;

        if (n <= 0) {
                fake_drop(f);
                return 0;
        }
        f->in_len += (size_t) n;
        for (;;) {
                size_t len = 0, i = off + 1;
                unsigned shift = 0;
                bool complete = false;

                /* Fixed header: type byte, then the Remaining Length varint. */
                while (i < f->in_len && i < off + 5) {
                        uint8_t b = f->in[i++];

                        len |= (size_t) (b & 0x7f) << shift;
                        shift += 7;
                        if (!(b & 0x80)) {
                                complete = true;
                                break;
                        }
                }
                if (!complete || i + len > f->in_len)
                        break;
                if ((f->in[off] & 0xf0) == 0x10) {
                        static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};

                        f->n_connects++;
                        if (write(fd, connack, sizeof(connack)) != sizeof(connack)) {
                                fake_drop(f);
                                return 0;
                        }
                } else if ((f->in[off] & 0xf0) == 0x30) {
                        if (f->n_publishes < sizeof(f->publishes))
                                f->publishes[f->n_publishes++] = f->in[off];
                        fake_drop(f);
                        return 0;
                }
                off = i + len;
        }
        memmove(f->in, f->in + off, f->in_len - off);
        f->in_len -= off;
        return 0;
}

static int on_fake_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
        Fake *f = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0)
                return 0;
        fake_drop(f);
        f->fd = c;
        if (sd_event_add_io(event, &f->source, c, EPOLLIN, on_fake_data, f) < 0)
                fake_drop(f);
        return 0;
}

static bool fake_start(Fake *f, uint16_t port)
{
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1;

        *f = (Fake){.fd = -1};
        f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (f->listen_fd < 0)
                return false;
        (void) setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        return bind(f->listen_fd, (struct sockaddr *) &a, sizeof(a)) == 0 &&
               listen(f->listen_fd, 8) == 0 &&
               sd_event_add_io(event, &f->listen_source, f->listen_fd, EPOLLIN, on_fake_accept,
                               f) >= 0;
}

static void fake_stop(Fake *f)
{
        fake_drop(f);
        f->listen_source = sd_event_source_disable_unref(f->listen_source);
        if (f->listen_fd >= 0)
                (void) close(f->listen_fd);
        f->listen_fd = -1;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_publish(const char *type, const char *topic, const char *qos, bool acked)
{
        Rec r = {};
        Sub sub;
        SsStream *s;
        char *out;

        rec_init(&r);
        if (!ok(sub_start(&sub, topic, 3, qos), "%s: mosquitto_sub subscribed to %s", type, topic))
                return;
        s = open_stream(type, &r);
        if (!s)
                return;
        ok(publish(s, &r, 3, acked), "%s: three messages published (%s)", type, r.states);
        out = sub_finish(&sub);
        is_str(out, "first\nsecond\nthird\n", "%s: mosquitto_sub saw them in order", type);
        free(out);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], acked ? 3 : 0, "%s: QOS_ACK_REMOTE per PUBACK",
               type);
        is_int(r.count[SS_STATE_CONNECTED], 1, "%s: one connection", type);
        ss_stream_free(s);
        rec_init(&r);
}

/* Send credit: the output queue's room, 0 while 16 QoS 1 messages wait for their PUBACK. */
static void test_credit(void)
{
        Rec r = {};
        SsStream *s;
        int64_t empty;

        rec_init(&r);
        s = open_stream("pub1", &r);
        if (!s)
                return;
        is_int(ss_stream_tx_credit(s), -1, "credit: -1 before the stream is connected");
        (void) ss_stream_client_connect(s);
        if (!ok(run_until(done_connected, &r, 1, 10000), "credit: CONNECTED"))
                goto out;
        empty = ss_stream_tx_credit(s);
        is_int(empty, 65536, "credit: 64 KiB with nothing queued");

        broker_kill(SIGSTOP);
        r.tx_text = "w";
        for (unsigned i = 0; i < 16; i++) {
                (void) ss_stream_request_tx(s);
                if (!run_until(done_sent, &r, i + 1, 5000))
                        break;
        }
        is_int(r.n_tx_messages, 16, "credit: 16 QoS 1 messages sent to a frozen broker");
        is_int(ss_stream_tx_credit(s), 0, "credit: 0 while 16 wait for their PUBACK");
        (void) ss_stream_request_tx(s);
        run_for(300);
        is_int(r.n_tx_messages, 16, "credit: the 17th waits (tx not called)");
        broker_continue();
        ok(run_until(done_acked, &r, 17, 10000), "credit: all 17 acked once the broker runs (%u)",
           r.count[SS_STATE_QOS_ACK_REMOTE]);
        is_int(ss_stream_tx_credit(s), empty, "credit: back to 64 KiB");
out:
        broker_continue();
        ss_stream_free(s);
        rec_init(&r);
}

static void test_retained(void)
{
        Rec r = {};
        Sub sub;
        SsStream *s;
        char *out;

        rec_init(&r);
        s = open_stream("retained", &r);
        if (!s)
                return;
        ok(publish(s, &r, 1, true), "retained: published and acked");
        ss_stream_free(s);
        /* A subscriber that comes later still gets it. */
        if (!ok(sub_start(&sub, "it/retained", 1, "0"), "retained: a late subscriber"))
                return;
        out = sub_finish(&sub);
        is_str(out, "first\n", "retained: the late subscriber got the retained message");
        free(out);
        rec_init(&r);
}

static void test_subscribe(void)
{
        _cleanup_free_ uint8_t *big = malloc(BIG_SIZE);
        char *big_path = peers_path("big.bin");
        char port[8];
        Rec r = {};
        SsStream *s;
        bool same;

        rec_init(&r);
        snprintf(port, sizeof(port), "%u", (unsigned) port_plain);
        s = open_stream("sub", &r);
        if (!s || !big || !big_path)
                goto out;
        (void) ss_stream_client_connect(s);
        ok(run_until(done_connected, &r, 1, 10000), "sub: CONNECTED after the SUBACK (%s)",
           r.states);
        {
                const char *a1[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t",
                                    "in/a",          "-m", "hello",     "-q", "1",  NULL};
                const char *a2[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t",
                                    "in/b/c",        "-m", "world",     NULL};
                const char *a3[] = {"mosquitto_pub", "-h", "127.0.0.1",  "-p", port, "-t",
                                    "other",         "-m", "not for us", NULL};
                is_int(peers_run(a1), 0, "mosquitto_pub in/a at QoS 1");
                is_int(peers_run(a3), 0, "mosquitto_pub to another topic");
                is_int(peers_run(a2), 0, "mosquitto_pub in/b/c at QoS 0");
        }
        ok(run_until(done_messages, &r, 2, 10000), "sub: two messages arrive");
        is_str(r.log, "hello|world|", "sub: in order, the other topic filtered out");
        is_str(r.topic, "in/b/c", "sub: metadata topic names the topic of the last message");

        for (size_t i = 0; i < BIG_SIZE; i++)
                big[i] = peers_big_byte(i);
        ok(write_file(big_path, big, BIG_SIZE), "a %u-byte payload file", BIG_SIZE);
        {
                const char *a[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port,     "-t",
                                   "in/big",        "-q", "1",         "-f", big_path, NULL};
                is_int(peers_run(a), 0, "mosquitto_pub of %u bytes", BIG_SIZE);
        }
        ok(run_until(done_messages, &r, 3, 10000), "sub: the big message arrives");
        same = r.last_len == BIG_SIZE && memcmp(r.last, big, BIG_SIZE) == 0;
        ok(same, "sub: %u bytes byte-exact (got %zu)", BIG_SIZE, r.last_len);
        ok(r.flags_ok, "sub: SOM on the first piece of each message, EOM on the last");
        is_str(r.states, "CREATING CONNECTING CONNECTED", "sub: states");
        ss_stream_free(s);
        is_str(r.states, "CREATING CONNECTING CONNECTED DISCONNECTED DESTROYING",
               "sub: destroyed cleanly");
out:
        free(big_path);
        rec_init(&r);
}

static void test_keep_alive(void)
{
        const char *pings[] = {"Received PINGREQ from smd-it-ka", NULL};
        const char *pongs[] = {"Sending PINGRESP to smd-it-ka", NULL};
        const char *valid[] = {"Received PINGREQ from smd-it-valid", NULL};
        Rec r = {}, rv = {};
        SsStream *s, *sv;

        rec_init(&r);
        rec_init(&rv);
        s = open_stream("ka", &r);
        sv = open_stream("valid", &rv);
        if (!s || !sv)
                goto out;
        is_int(ss_stream_set_metadata(s, "client_id", "smd-it-ka", 9), 0, "ka: client id set");
        is_int(ss_stream_set_metadata(sv, "client_id", "smd-it-valid", 12), 0,
               "valid: client id set");
        (void) ss_stream_client_connect(s);
        (void) ss_stream_client_connect(sv);
        ok(run_until(done_connected, &r, 1, 10000), "ka: CONNECTED");
        run_for(3600);
        cmp_int(log_count(pings), >=, 2, "ka: keep-alive 2 s: PINGREQs every second in the log");
        cmp_int(log_count(pongs), >=, 2, "ka: the broker answered with PINGRESP");
        cmp_int(log_count(valid), >=, 2, "valid: svalidping 1 s sends PINGREQs");
        is_str(r.states, "CREATING CONNECTING CONNECTED", "ka: the connection stays up");
        is_str(rv.states, "CREATING CONNECTING CONNECTED", "valid: the connection stays up");

        /* A frozen broker answers nothing: both hang up. */
        broker_kill(SIGSTOP);
        ok(run_until(done_disconnected, &r, 1, 8000), "ka: hung up on a frozen broker (%s)",
           r.states);
        ok(run_until(done_disconnected, &rv, 1, 8000), "valid: svalidhup hung up (%s)", rv.states);
        broker_continue();
out:
        ss_stream_free(s);
        ss_stream_free(sv);
        rec_init(&r);
        rec_init(&rv);
}

static void test_tls(void)
{
        const char *words[] = {"Received PUBLISH from", "'it/tls'", NULL};
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("tls", &r);
        if (!s)
                return;
        ok(publish(s, &r, 2, true), "tls: two QoS 1 messages acked over TLS (%s)", r.states);
        is_int(log_count(words), 2, "tls: the broker got them");
        ss_stream_free(s);
        rec_init(&r);
}

static void test_refused(void)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("refused", &r);
        if (!s)
                return;
        (void) ss_stream_client_connect(s);
        ok(run_until(done_unreachable, &r, 1, 10000), "refused: UNREACHABLE (%s)", r.states);
        is_int(r.ack[SS_STATE_UNREACHABLE], SS_ACK_HANDSHAKE | 5u << SS_ACK_MQTT_CONNACK_SHIFT,
               "refused: the handshake bit and CONNACK code 5 (not authorized)");
        is_int(r.count[SS_STATE_CONNECTED], 0, "refused: never CONNECTED");
        ss_stream_free(s);
        rec_init(&r);
}

static void test_birth(void)
{
        const char *pubacks[] = {"Sending PUBACK to smd-it-birth", NULL};
        Rec r = {};
        Sub sub;
        SsStream *s;
        char *out;

        rec_init(&r);
        r.connected_words = pubacks;
        s = open_stream("birth", &r);
        if (!s)
                return;
        (void) ss_stream_set_metadata(s, "client_id", "smd-it-birth", 12);
        (void) ss_stream_client_connect(s);
        ok(run_until(done_connected, &r, 1, 10000), "birth: CONNECTED (%s)", r.states);
        is_int(r.connected_count, 1, "birth: the broker had acked the birth message at CONNECTED");
        if (ok(sub_start(&sub, "it/birth/smd-it-birth", 1, "1"), "birth: a late subscriber")) {
                out = sub_finish(&sub);
                is_str(out, "online\n", "birth: the retained birth message, topic expanded");
                free(out);
        }
        ss_stream_free(s);
        rec_init(&r);
}

static bool done_nacked(Rec *r, unsigned n)
{
        return r->count[SS_STATE_QOS_NACK_REMOTE] >= n;
}

/* conceal 2: sent, sent again twice with DUP, then QOS_NACK_REMOTE on the fourth connection. */
static void test_nack(Fake *f)
{
        Rec r = {};
        SsStream *s;

        rec_init(&r);
        s = open_stream("nack", &r);
        if (!s)
                return;
        ok(publish(s, &r, 1, false), "nack: a QoS 1 message sent to a broker that never acks");
        ok(run_until(done_nacked, &r, 1, 10000), "nack: QOS_NACK_REMOTE after the resends (%s)",
           r.states);
        is_int(f->n_publishes, 3, "nack: the broker saw it three times");
        is_int(f->n_publishes > 0 ? f->publishes[0] : 0, 0x32, "nack: first QoS 1 without DUP");
        is_int(f->n_publishes > 1 ? f->publishes[1] : 0, 0x3a, "nack: then with DUP");
        is_int(f->n_publishes > 2 ? f->publishes[2] : 0, 0x3a, "nack: and again with DUP");
        cmp_int(f->n_connects, >=, 4, "nack: one connection per attempt");
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 0, "nack: never acked");
        ss_stream_free(s);
        rec_init(&r);
}

static void test_restart(void)
{
        const char *dups[] = {"Received PUBLISH from smd-it-restart", "d1, q1", NULL};
        Rec r = {};
        Sub sub;
        SsStream *s;
        char *out;
        unsigned disconnects;

        rec_init(&r);
        s = open_stream("restart", &r);
        if (!s)
                return;
        (void) ss_stream_set_metadata(s, "client_id", "smd-it-restart", 14);
        (void) ss_stream_client_connect(s);
        if (!ok(run_until(done_connected, &r, 1, 10000), "restart: CONNECTED"))
                goto out;

        /* Frozen broker: the messages go out and no PUBACK comes. */
        broker_kill(SIGSTOP);
        ok(publish(s, &r, 3, false), "restart: three QoS 1 messages sent to a frozen broker");
        run_for(200);
        is_int(r.count[SS_STATE_QOS_ACK_REMOTE], 0, "restart: none acked");
        disconnects = r.count[SS_STATE_DISCONNECTED];
        broker_kill(SIGKILL);
        ok(run_until(done_disconnected, &r, disconnects + 1, 10000), "restart: DISCONNECTED");
        /* A fourth one while there is no broker: it waits for the next connection. */
        r.tx_text = texts[3];
        (void) ss_stream_request_tx(s);
        run_for(300);

        if (!ok(broker_start(), "restart: the broker is back"))
                goto out;
        if (!ok(sub_start(&sub, "it/restart", 4, "1"), "restart: mosquitto_sub subscribed"))
                goto out;
        ok(run_until(done_acked, &r, 4, 15000), "restart: all four acked after reconnecting (%s)",
           r.states);
        out = sub_finish(&sub);
        is_str(out, "first\nsecond\nthird\nfourth\n", "restart: mosquitto_sub saw all four");
        free(out);
        is_int(log_count(dups), 3, "restart: the three unacked ones came again with DUP");
        is_int(r.count[SS_STATE_QOS_NACK_REMOTE], 0, "restart: no NACK");
out:
        ss_stream_free(s);
        rec_init(&r);
}

/* ---- several streams on one connection ------------------------------------------------- */

/* Whole messages from tx_text, one piece each (the streams send at the same time). */
static SsResult rec_tx_whole(SsStream *s, void *userdata, uint8_t *buf, size_t *len,
                             unsigned *flags)
{
        Rec *r = userdata;
        size_t n = strlen(r->tx_text);

        memcpy(buf, r->tx_text, n);
        *len = n;
        *flags = SS_FLAG_SOM | SS_FLAG_EOM;
        r->n_tx_messages++;
        return SS_OK;
}

static const SsStreamHandlers whole_handlers = {
    .rx = rec_rx, .tx = rec_tx_whole, .state = rec_state};

static bool pub_run(const char *topic, const char *message, const char *qos)
{
        char port[8];

        snprintf(port, sizeof(port), "%u", (unsigned) port_plain);
        const char *argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t",
                              topic,           "-m", message,     "-q", qos,  NULL};
        return peers_run(argv) == 0;
}

typedef struct Shared {
        Rec rec[3];
        SsStream *s[3];
} Shared;

static bool shared_all(Shared *sh, bool (*done)(Rec *, unsigned), unsigned n, unsigned ms)
{
        uint64_t end = peers_now_usec() + (uint64_t) ms * 1000;

        for (;;) {
                bool all = true;

                for (size_t i = 0; i < 3; i++)
                        all = all && (!sh->s[i] || done(&sh->rec[i], n));
                if (all)
                        return true;
                if (peers_now_usec() > end)
                        return false;
                (void) sd_event_run(event, 20000);
        }
}

static bool done_logged(Rec *r, unsigned n)
{
        return r->n_messages >= n;
}

static void test_shared(void)
{
        static const char *const types[] = {"sha", "shb", "shc"};
        const char *connects[] = {"New client connected from", " as smd-", NULL};
        const char *unsubscribes[] = {"Received UNSUBSCRIBE from smd-", NULL};
        const char *dups[] = {"Received PUBLISH from smd-", "d1, q1", NULL};
        Shared sh = {};
        unsigned before, n, dups_before;
        Sub sub;
        char *out;

        for (size_t i = 0; i < 3; i++) {
                rec_init(&sh.rec[i]);
                if (ss_stream_new(&sh.s[i], ctx, types[i], &whole_handlers, &sh.rec[i]) < 0)
                        goto out;
        }
        before = log_count(connects);
        for (size_t i = 0; i < 3; i++)
                (void) ss_stream_client_connect(sh.s[i]);
        ok(shared_all(&sh, done_connected, 1, 10000),
           "shared: three streams CONNECTED (%s | %s | %s)", sh.rec[0].states, sh.rec[1].states,
           sh.rec[2].states);
        is_int(log_count(connects) - before, 1, "shared: the broker saw one client connection");
        is_int(ss_context_n_streams(ctx), 3, "shared: three streams");

        /* Each gets its own topics: sh/a, sh/b/#, sh/c/+. */
        ok(pub_run("sh/b/x", "to-b", "1"), "shared: mosquitto_pub sh/b/x");
        ok(pub_run("sh/other", "nobody", "0"), "shared: mosquitto_pub sh/other");
        ok(pub_run("sh/c/y", "to-c", "0"), "shared: mosquitto_pub sh/c/y");
        ok(pub_run("sh/a", "to-a", "1"), "shared: mosquitto_pub sh/a");
        ok(pub_run("sh/c/y/z", "deeper", "0"), "shared: mosquitto_pub sh/c/y/z");
        ok(pub_run("sh/b/x/y", "to-b2", "0"), "shared: mosquitto_pub sh/b/x/y");
        ok(shared_all(&sh, done_logged, 1, 10000), "shared: each stream received");
        /* The last one published: anything misrouted would have arrived before it. */
        ok(run_until(done_messages, &sh.rec[1], 2, 10000), "shared: shb got sh/b/x/y");
        is_str(sh.rec[0].log, "to-a|", "shared: sha got only sh/a");
        is_str(sh.rec[1].log, "to-b|to-b2|", "shared: shb got only sh/b/#");
        is_str(sh.rec[2].log, "to-c|", "shared: shc got only sh/c/+");
        is_str(sh.rec[1].topic, "sh/b/x/y", "shared: shb's topic metadata");

        /* QoS 1 from all three at once: each PUBACK reaches the stream that sent it. */
        if (!ok(sub_start(&sub, "sh/out/#", 6, "1"), "shared: mosquitto_sub on sh/out/#"))
                goto out;
        for (size_t i = 0; i < 3; i++) {
                sh.rec[i].tx_text = types[i];
                (void) ss_stream_request_tx(sh.s[i]);
        }
        ok(shared_all(&sh, done_acked, 1, 10000), "shared: each stream got its QOS_ACK_REMOTE");
        for (size_t i = 0; i < 3; i++) {
                (void) ss_stream_request_tx(sh.s[i]);
                (void) ss_stream_request_tx(sh.s[i]); /* coalesces with the one before */
        }
        ok(shared_all(&sh, done_acked, 2, 10000), "shared: and a second one each");
        for (size_t i = 0; i < 3; i++)
                is_int(sh.rec[i].count[SS_STATE_QOS_ACK_REMOTE], 2,
                       "shared: %s: exactly its two acks", types[i]);
        out = sub_finish(&sub);
        {
                unsigned a = 0, b = 0, c = 0;

                for (char *p = out; (p = strstr(p, "sh")); p++)
                        a += strncmp(p, "sha\n", 4) == 0, b += strncmp(p, "shb\n", 4) == 0,
                            c += strncmp(p, "shc\n", 4) == 0;
                ok(a == 2 && b == 2 && c == 2, "shared: mosquitto_sub saw two of each (%s)", out);
        }
        free(out);

        /* One stream goes: its filter is unsubscribed, the others go on on the same connection. */
        before = log_count(unsubscribes);
        n = log_count(connects);
        sh.s[1] = ss_stream_free(sh.s[1]);
        is_str(
            sh.rec[1].states,
            "CREATING CONNECTING CONNECTED QOS_ACK_REMOTE QOS_ACK_REMOTE DISCONNECTED DESTROYING",
            "shared: shb destroyed cleanly");
        for (int i = 0; i < 300 && log_count(unsubscribes) == before; i++)
                run_for(10);
        is_int(log_count(unsubscribes) - before, 1, "shared: the broker got shb's UNSUBSCRIBE");
        ok(pub_run("sh/b/x", "late-b", "0"), "shared: mosquitto_pub sh/b/x");
        ok(pub_run("sh/a", "again-a", "0"), "shared: mosquitto_pub sh/a");
        ok(pub_run("sh/c/q", "again-c", "0"), "shared: mosquitto_pub sh/c/q");
        ok(shared_all(&sh, done_logged, 2, 10000), "shared: the other two still receive");
        is_str(sh.rec[0].log, "to-a|again-a|", "shared: sha");
        is_str(sh.rec[2].log, "to-c|again-c|", "shared: shc");
        is_int(log_count(connects), n, "shared: still the same connection");
        for (size_t i = 0; i < 3; i += 2)
                is_int(sh.rec[i].count[SS_STATE_DISCONNECTED], 0, "shared: %s still connected",
                       types[i]);

        /* The broker restarted with QoS 1 messages in flight: both reconnect on one connection. */
        dups_before = log_count(dups);
        broker_kill(SIGSTOP);
        sh.rec[0].tx_text = "alpha";
        sh.rec[2].tx_text = "gamma";
        (void) ss_stream_request_tx(sh.s[0]);
        (void) ss_stream_request_tx(sh.s[2]);
        ok(shared_all(&sh, done_sent, 3, 5000), "shared: QoS 1 messages sent to a frozen broker");
        broker_kill(SIGKILL);
        ok(shared_all(&sh, done_disconnected, 1, 10000), "shared: both DISCONNECTED (%s | %s)",
           sh.rec[0].states, sh.rec[2].states);
        before = log_count(connects);
        if (!ok(broker_start(), "shared: the broker is back"))
                goto out;
        if (!ok(sub_start(&sub, "sh/out/#", 2, "1"), "shared: mosquitto_sub on sh/out/#"))
                goto out;
        ok(shared_all(&sh, done_connected, 2, 15000), "shared: both CONNECTED again (%s | %s)",
           sh.rec[0].states, sh.rec[2].states);
        ok(shared_all(&sh, done_acked, 3, 15000), "shared: the QoS 1 messages acked");
        out = sub_finish(&sub);
        ok(strstr(out, "alpha\n") && strstr(out, "gamma\n"),
           "shared: mosquitto_sub saw both after the restart (%s)", out);
        free(out);
        is_int(log_count(dups) - dups_before, 2, "shared: both sent again with DUP");
        is_int(log_count(connects) - before, 1, "shared: one connection after the restart");
        ok(pub_run("sh/a", "after-a", "1") && pub_run("sh/c/r", "after-c", "1"),
           "shared: mosquitto_pub after the restart");
        ok(shared_all(&sh, done_logged, 3, 10000), "shared: both subscribed again");
        is_str(sh.rec[0].log, "to-a|again-a|after-a|", "shared: sha after the restart");
        is_str(sh.rec[2].log, "to-c|again-c|after-c|", "shared: shc after the restart");
out:
        for (size_t i = 0; i < 3; i++) {
                ss_stream_free(sh.s[i]);
                rec_init(&sh.rec[i]);
        }
}

/* A retained message sent for a new subscription goes to the stream that subscribed, only. */
static void test_retained_shared(void)
{
        const char *connects[] = {"New client connected from", " as smd-", NULL};
        Shared sh = {};
        unsigned before;
        char port[8];

        snprintf(port, sizeof(port), "%u", (unsigned) port_plain);
        {
                const char *argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t",
                                      "sh/a",          "-m", "kept",      "-r", NULL};
                if (!is_int(peers_run(argv), 0, "retained shared: a retained message on sh/a"))
                        return;
        }
        for (size_t i = 0; i < 2; i++) {
                rec_init(&sh.rec[i]);
                if (ss_stream_new(&sh.s[i], ctx, "sha", &whole_handlers, &sh.rec[i]) < 0)
                        goto out;
        }
        before = log_count(connects);
        (void) ss_stream_client_connect(sh.s[0]);
        ok(run_until(done_messages, &sh.rec[0], 1, 10000),
           "retained shared: the first stream got the retained message (%s)", sh.rec[0].states);
        (void) ss_stream_client_connect(sh.s[1]);
        ok(run_until(done_messages, &sh.rec[1], 1, 10000),
           "retained shared: the second stream, subscribing later, got it too (%s)",
           sh.rec[1].states);
        is_int(log_count(connects) - before, 1, "retained shared: on one connection");
        /* A live message after both: anything misrouted arrived before it. */
        ok(pub_run("sh/a", "live", "1"), "retained shared: mosquitto_pub sh/a");
        ok(shared_all(&sh, done_logged, 2, 10000), "retained shared: both got the live message");
        is_str(sh.rec[0].log, "kept|live|", "retained shared: the first once, not again");
        is_str(sh.rec[1].log, "kept|live|", "retained shared: the second");
out : {
        const char *argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t",
                              "sh/a",          "-n", "-r",        NULL};
        (void) peers_run(argv);
}
        for (size_t i = 0; i < 2; i++) {
                ss_stream_free(sh.s[i]);
                rec_init(&sh.rec[i]);
        }
}

/* Two streams naming one client id share its connection rather than take it from each other. */
static void test_same_id(void)
{
        const char *connects[] = {"New client connected from", " as smd-it-same", NULL};
        const char *takeovers[] = {"smd-it-same", "already connected", NULL};
        Shared sh = {};
        unsigned before;

        for (size_t i = 0; i < 2; i++) {
                rec_init(&sh.rec[i]);
                if (ss_stream_new(&sh.s[i], ctx, i ? "ka" : "valid", &whole_handlers, &sh.rec[i]) <
                    0)
                        goto out;
                (void) ss_stream_set_metadata(sh.s[i], "client_id", "smd-it-same", 11);
        }
        before = log_count(connects);
        for (size_t i = 0; i < 2; i++)
                (void) ss_stream_client_connect(sh.s[i]);
        ok(shared_all(&sh, done_connected, 1, 10000), "same id: both CONNECTED");
        run_for(500);
        is_int(log_count(connects) - before, 1, "same id: one connection");
        is_int(log_count(takeovers), 0, "same id: no session taken over");
        is_int(sh.rec[0].count[SS_STATE_DISCONNECTED] + sh.rec[1].count[SS_STATE_DISCONNECTED], 0,
               "same id: neither dropped");
out:
        for (size_t i = 0; i < 2; i++) {
                ss_stream_free(sh.s[i]);
                rec_init(&sh.rec[i]);
        }
}

/* ---- main ------------------------------------------------------------------------------ */

static char *policy_json(void)
{
        char *json = NULL;
        unsigned p = port_plain;

        if (asprintf(&json,
                     "{\"release\":\"1\",\"product\":\"mqtt\",\"schema-version\":1,"
                     "\"retry\":[{\"fast\":{\"backoff\":[100,200],\"conceal\":1000,"
                     "\"jitterpc\":0}},"
                     "{\"slow\":{\"backoff\":[1500],\"conceal\":1000,\"jitterpc\":0}},"
                     "{\"none\":{\"backoff\":[100],\"conceal\":0}},"
                     "{\"two\":{\"backoff\":[50],\"conceal\":2,\"jitterpc\":0}},"
                     "{\"valid\":{\"backoff\":[100],\"conceal\":10,\"svalidping\":1,"
                     "\"svalidhup\":4}}],"
                     "\"certs\":[{\"ca\":\"file:%s\"}],"
                     "\"trust_stores\":[{\"name\":\"ts\",\"stack\":[\"ca\"]}],"
                     "\"s\":["
                     "{\"pub0\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_topic\":\"it/q0\","
                     "\"retry\":\"fast\"}},"
                     "{\"pub1\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_topic\":\"it/q1\","
                     "\"mqtt_qos\":1,\"retry\":\"fast\"}},"
                     "{\"retained\":{\"endpoint\":\"mqtt://127.0.0.1:%u\","
                     "\"mqtt_topic\":\"it/retained\",\"mqtt_qos\":1,\"mqtt_retain\":true}},"
                     "{\"sub\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_subscribe\":\"in/#\","
                     "\"mqtt_qos\":1,\"mqtt_clean_start\":true,\"retry\":\"fast\","
                     "\"metadata\":[{\"topic\":\"\"}]}},"
                     "{\"ka\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_keep_alive\":2,"
                     "\"mqtt_clean_start\":true,\"metadata\":[{\"client_id\":\"\"}]}},"
                     "{\"valid\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"retry\":\"valid\","
                     "\"mqtt_clean_start\":true,\"metadata\":[{\"client_id\":\"\"}]}},"
                     "{\"tls\":{\"endpoint\":\"mqtts://localhost:%u\",\"mqtt_topic\":\"it/tls\","
                     "\"mqtt_qos\":1,\"tls_trust_store\":\"ts\",\"retry\":\"fast\"}},"
                     "{\"restart\":{\"endpoint\":\"mqtt://127.0.0.1:%u\","
                     "\"mqtt_topic\":\"it/restart\",\"mqtt_qos\":1,\"nailed_up\":true,"
                     "\"retry\":\"slow\",\"metadata\":[{\"client_id\":\"\"}]}},"
                     "{\"refused\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"retry\":\"none\"}},"
                     "{\"birth\":{\"endpoint\":\"mqtt://127.0.0.1:%u\","
                     "\"mqtt_birth_topic\":\"it/birth/${client_id}\","
                     "\"mqtt_birth_message\":\"online\",\"mqtt_birth_qos\":1,"
                     "\"mqtt_birth_retain\":true,\"metadata\":[{\"client_id\":\"\"}]}},"
                     "{\"nack\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_topic\":\"it/nack\","
                     "\"mqtt_qos\":1,\"nailed_up\":true,\"retry\":\"two\"}},"
                     "{\"sha\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_subscribe\":\"sh/a\","
                     "\"mqtt_topic\":\"sh/out/a\",\"mqtt_qos\":1,\"retry\":\"fast\"}},"
                     "{\"shb\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_subscribe\":\"sh/b/#\","
                     "\"mqtt_topic\":\"sh/out/b\",\"mqtt_qos\":1,\"retry\":\"fast\","
                     "\"metadata\":[{\"topic\":\"\"}]}},"
                     "{\"shc\":{\"endpoint\":\"mqtt://127.0.0.1:%u\",\"mqtt_subscribe\":\"sh/c/+\","
                     "\"mqtt_topic\":\"sh/out/c\",\"mqtt_qos\":1,\"retry\":\"fast\"}}"
                     "]}",
                     certs.ca_pem, p, p, p, p, p, p, (unsigned) port_tls, p, (unsigned) port_auth,
                     p, (unsigned) port_fake, p, p, p) < 0)
                return NULL;
        return json;
}

int main(void)
{
        Fake fake = {.fd = -1, .listen_fd = -1};

        peers_init(180);
        if (!peers_have("mosquitto") || !peers_have("mosquitto_sub") ||
            !peers_have("mosquitto_pub"))
                tap_skip_all("mosquitto and mosquitto-clients are not installed");
        peer_certs_make(&certs);
        port_plain = peers_free_port();
        do
                port_tls = peers_free_port();
        while (port_tls == port_plain);
        do
                port_auth = peers_free_port();
        while (port_auth == port_plain || port_auth == port_tls);
        do
                port_fake = peers_free_port();
        while (port_fake == port_plain || port_fake == port_tls || port_fake == port_auth);
        atexit(broker_kill_at_exit);
        if (!ok(write_broker_conf(), "broker config written") ||
            !ok(broker_start(), "mosquitto is up")) {
                char *text = peers_read_file(broker_log, NULL);

                tap_diag("%s", text ? text : "(no log)");
                free(text);
                return peers_done();
        }

        ss_peers_start(policy_json(), &event, &ctx);

        test_publish("pub0", "it/q0", "0", false);
        test_publish("pub1", "it/q1", "1", true);
        test_credit();
        test_retained();
        test_subscribe();
        test_keep_alive();
        test_tls();
        test_refused();
        test_birth();
        if (ok(fake_start(&fake, port_fake), "a broker that never acks"))
                test_nack(&fake);
        fake_stop(&fake);
        test_restart();
        test_shared();
        test_retained_shared();
        test_same_id();

        ss_peers_stop(&ctx, &event);
        broker_kill(SIGKILL);
        free(broker_conf);
        free(broker_log);
        peer_certs_free(&certs);
        return peers_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * A libsmd stream client for test-proxy.sh.
 *
 *   test-proxy-client SOCKET STREAMTYPE meta NAME=VALUE GETNAME
 *       one GET with metadata NAME set; the body to stdout, then GETNAME's
 *       value (received from the agent) as "GETNAME=value" on stderr.
 *   test-proxy-client SOCKET STREAMTYPE restart
 *       one GET (body length on stderr: "first N"), then waits for the agent
 *       to go away (UPSTREAM_LINK_RETRY: "link-retry"), connects again at once
 *       (queued until the agent is back) and prints "second N" after the next
 *       QOS_ACK_REMOTE.
 *   test-proxy-client SOCKET STREAMTYPE ws text|binary SIZE...
 *       a ws echo: waits for CONNECTED, queues one message of each SIZE at
 *       once (text: letters; binary: every byte value), checks that each
 *       comes back byte-exact as one message (SOM on its first piece only,
 *       EOM on its last, no piece over 1380 bytes) and prints
 *       "echo N: SIZE bytes in P pieces".
 *   test-proxy-client SOCKET STREAMTYPE mqtt FILE
 *       waits for CONNECTED ("connected" on stderr), publishes FILE as one
 *       message ("published" after its QOS_ACK_REMOTE), then writes the next
 *       message received to stdout ("received N topic=T").
 *   test-proxy-client SOCKET STREAMTYPE credit SIZE
 *       sends SIZE bytes with request_tx_len and waits for QOS_ACK_REMOTE;
 *       prints each send credit the agent reports ("credit N") and, at the
 *       end, "credits: K distinct, max M".
 *   test-proxy-client SOCKET STREAMTYPE ws-cut
 *       a ws message cut by a dropped connection: sends 2000 bytes of a
 *       message ("half-sent"), waits for DISCONNECTED and the next CONNECTED
 *       (the test restarts the server), ends the message with 500 bytes, then
 *       sends "after the cut"; prints the first message echoed ("first echo:
 *       TEXT", or its size when longer than 64 bytes).
 *   test-proxy-client SOCKET STREAMTYPE disconnect
 *       connects and waits for DISCONNECTED.
 * Every state goes to stderr as "state NAME ACK". Exit 0 when done, 1 otherwise.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smd/smd.h"
#include "util.h"

#define MESSAGES_MAX 16

static uint64_t body_len;
static int acks, link_retries, connected, disconnected;
static bool nacked;

/* ws and mqtt: what we send, and what comes back. */
typedef struct Message {
        uint8_t *data;
        size_t size;
} Message;
static Message sent[MESSAGES_MAX];
static size_t n_sent, n_queued, tx_off;
static Message got[MESSAGES_MAX];
static unsigned got_pieces[MESSAGES_MAX];
static size_t n_got;
static bool in_message, rx_broken;

/* credit: the values reported. */
static int64_t credits[64];
static size_t n_credits;

static int on_rx_message(smd_stream *s, void *userdata, const uint8_t *buf, size_t len,
                         unsigned flags)
{
        Message *m;
        uint8_t *d;

        /* One SOM at the start of each message, one EOM at its end, pieces of the wire's size. */
        if (!!(flags & SMD_SS_FLAG_SOM) == in_message || len > 1380 || n_got == MESSAGES_MAX) {
                fprintf(stderr, "bad piece: %zu bytes, flags %u, in message %d\n", len, flags,
                        in_message);
                rx_broken = true;
                return SMD_SS_OK;
        }
        m = &got[n_got];
        d = realloc(m->data, m->size + len + 1);
        if (!d)
                return SMD_SS_DESTROY_ME;
        memcpy(d + m->size, buf, len);
        m->data = d;
        m->size += len;
        got_pieces[n_got]++;
        in_message = !(flags & SMD_SS_FLAG_EOM);
        if (!in_message)
                n_got++;
        return SMD_SS_OK;
}

/* Queued messages, one request_tx each; the next is asked for from inside the callback. */
static int on_tx_message(smd_stream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        Message *m = &sent[n_queued];
        size_t n;

        if (n_queued == n_sent)
                return SMD_SS_TX_DONT_SEND;
        n = MIN(*len, m->size - tx_off);
        memcpy(buf, m->data + tx_off, n);
        tx_off += n;
        *len = n;
        *flags = 0;
        if (tx_off == m->size) {
                *flags = SMD_SS_FLAG_EOM;
                tx_off = 0;
                if (++n_queued < n_sent)
                        (void) smd_stream_request_tx(s);
        }
        return SMD_SS_OK;
}

static int on_rx(smd_stream *s, void *userdata, const uint8_t *buf, size_t len, unsigned flags)
{
        if (flags & SMD_SS_FLAG_SOM)
                body_len = 0;
        body_len += len;
        if (userdata && fwrite(buf, 1, len, stdout) != len)
                return SMD_SS_DESTROY_ME;
        return SMD_SS_OK;
}

static int on_state(smd_stream *s, void *userdata, int state, uint32_t ack)
{
        fprintf(stderr, "state %s %" PRIu32 "\n", smd_stream_state_name(state), ack);
        if (state == SMD_SS_STATE_QOS_ACK_REMOTE)
                acks++;
        else if (state == SMD_SS_STATE_QOS_NACK_REMOTE || state == SMD_SS_STATE_ALL_RETRIES_FAILED)
                nacked = true;
        else if (state == SMD_SS_STATE_UPSTREAM_LINK_RETRY)
                link_retries++;
        else if (state == SMD_SS_STATE_CONNECTED)
                connected++;
        else if (state == SMD_SS_STATE_DISCONNECTED)
                disconnected++;
        return SMD_SS_OK;
}

static void note_credit(smd_stream *s)
{
        int64_t c = smd_stream_tx_credit(s);

        if (c < 0 || (n_credits > 0 && credits[n_credits - 1] == c) || n_credits == 64)
                return;
        credits[n_credits++] = c;
        fprintf(stderr, "credit %" PRId64 "\n", c);
}

/* Process until cond() or 20 s. */
static bool run_until(smd_stream *s, bool (*cond)(void))
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 20 * USEC_PER_SEC;

        while (!cond() && !nacked && !rx_broken) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline || smd_stream_wait(s, deadline - now) != 0)
                        return false;
                note_credit(s);
        }
        return cond() && !rx_broken;
}

static bool one_ack(void)
{
        return acks >= 1;
}
static bool two_acks(void)
{
        return acks >= 2;
}
static bool link_lost(void)
{
        return link_retries >= 1;
}
static bool is_connected(void)
{
        return connected >= 1;
}
static bool is_disconnected(void)
{
        return disconnected >= 1;
}
static bool all_echoed(void)
{
        return n_got >= n_sent;
}
static bool one_message(void)
{
        return n_got >= 1;
}

static int run_ws(smd_stream *s, bool text, char **sizes, int n_sizes)
{
        int r = 0;

        for (int i = 0; i < n_sizes && n_sent < MESSAGES_MAX; i++) {
                Message *m = &sent[n_sent++];

                m->size = strtoul(sizes[i], NULL, 10);
                m->data = malloc(m->size + 1);
                if (!m->data)
                        return 1;
                for (size_t k = 0; k < m->size; k++)
                        m->data[k] = text ? (uint8_t) ('a' + (k * 7 + (size_t) i) % 26)
                                          : (uint8_t) ((k * 131 + (size_t) i) % 256);
        }
        (void) smd_stream_client_connect(s);
        if (!run_until(s, is_connected))
                return 1;
        fprintf(stderr, "connected\n");
        (void) smd_stream_request_tx(s);
        if (!run_until(s, all_echoed))
                r = 1;
        for (size_t i = 0; i < n_got; i++) {
                bool same =
                    i < n_sent && got[i].size == sent[i].size &&
                    (got[i].size == 0 || memcmp(got[i].data, sent[i].data, got[i].size) == 0);

                fprintf(stderr, "echo %zu: %zu bytes in %u pieces%s\n", i, got[i].size,
                        got_pieces[i], same ? "" : " DIFFERENT");
                if (!same)
                        r = 1;
        }
        return r;
}

/* ws-cut: 0 first part, 1 waiting for the next connection, 2 the rest and a new message. */
static int cut_phase;

static int on_tx_cut(smd_stream *s, void *userdata, uint8_t *buf, size_t *len, unsigned *flags)
{
        static const char after[] = "after the cut";

        if (cut_phase == 0) {
                memset(buf, 'x', 2000);
                *len = 2000;
                *flags = 0;
                cut_phase = 1;
                return SMD_SS_OK;
        }
        if (cut_phase == 1)
                return SMD_SS_TX_DONT_SEND;
        if (cut_phase == 2) {
                memset(buf, 'y', 500);
                *len = 500;
                *flags = SMD_SS_FLAG_EOM;
                cut_phase = 3;
                (void) smd_stream_request_tx(s);
                return SMD_SS_OK;
        }
        if (cut_phase == 3) {
                memcpy(buf, after, strlen(after));
                *len = strlen(after);
                *flags = SMD_SS_FLAG_EOM;
                cut_phase = 4;
                return SMD_SS_OK;
        }
        return SMD_SS_TX_DONT_SEND;
}

static bool connected_again(void)
{
        return disconnected >= 1 && connected >= 2;
}

static int run_ws_cut(smd_stream *s)
{
        smd_stream_change_handlers(s, NULL, on_tx_cut, NULL);
        (void) smd_stream_client_connect(s);
        if (!run_until(s, is_connected))
                return 1;
        (void) smd_stream_request_tx(s);
        while (cut_phase == 0)
                if (smd_stream_wait(s, 5 * USEC_PER_SEC) != 0)
                        return 1;
        /* Until the agent has it: the onward stream takes it at once. */
        for (int i = 0; i < 10; i++)
                (void) smd_stream_wait(s, 100 * USEC_PER_MSEC);
        fprintf(stderr, "half-sent\n");
        if (!run_until(s, connected_again))
                return 1;
        cut_phase = 2;
        (void) smd_stream_request_tx(s);
        if (!run_until(s, one_message))
                return 1;
        if (got[0].size <= 64)
                fprintf(stderr, "first echo: %.*s\n", (int) got[0].size,
                        (const char *) got[0].data);
        else
                fprintf(stderr, "first echo: %zu bytes\n", got[0].size);
        return 0;
}

static int run_mqtt(smd_stream *s, const char *file)
{
        Message *m = &sent[0];
        const char *topic;
        size_t topic_len;
        FILE *f = fopen(file, "re");

        if (!f)
                return 1;
        m->data = malloc(1024 * 1024);
        if (!m->data) {
                fclose(f);
                return 1;
        }
        m->size = fread(m->data, 1, 1024 * 1024, f);
        fclose(f);
        n_sent = 1;
        (void) smd_stream_client_connect(s);
        if (!run_until(s, is_connected))
                return 1;
        fprintf(stderr, "connected\n");
        (void) smd_stream_request_tx(s);
        if (!run_until(s, one_ack))
                return 1;
        fprintf(stderr, "published\n");
        if (!run_until(s, one_message))
                return 1;
        if (fwrite(got[0].data, 1, got[0].size, stdout) != got[0].size)
                return 1;
        if (smd_stream_get_metadata(s, "topic", &topic, &topic_len) < 0) {
                topic = "";
                topic_len = 0;
        }
        fprintf(stderr, "received %zu topic=%.*s\n", got[0].size, (int) topic_len, topic);
        return 0;
}

static int run_credit(smd_stream *s, uint64_t size)
{
        int64_t max = -1;
        size_t distinct = 0;
        int r;

        sent[0].size = size;
        sent[0].data = calloc(1, size + 1);
        if (!sent[0].data)
                return 1;
        n_sent = 1;
        (void) smd_stream_request_tx_len(s, size);
        r = run_until(s, one_ack) ? 0 : 1;
        for (size_t i = 0; i < n_credits; i++) {
                bool seen = false;

                for (size_t k = 0; k < i; k++)
                        seen = seen || credits[k] == credits[i];
                distinct += !seen;
                max = MAX(max, credits[i]);
        }
        fprintf(stderr, "credits: %zu distinct, max %" PRId64 "\n", distinct, max);
        return r;
}

int main(int argc, char **argv)
{
        bool meta = argc == 6 && streq(argv[3], "meta");
        bool restart = argc == 4 && streq(argv[3], "restart");
        bool ws = argc >= 6 && streq(argv[3], "ws") &&
                  (streq(argv[4], "text") || streq(argv[4], "binary"));
        bool mqtt = argc == 5 && streq(argv[3], "mqtt");
        bool credit = argc == 5 && streq(argv[3], "credit");
        bool disconnect = argc == 4 && streq(argv[3], "disconnect");
        bool ws_cut = argc == 4 && streq(argv[3], "ws-cut");
        bool messages = ws || mqtt || credit || ws_cut;
        smd_stream *s;
        int r;

        if (!meta && !restart && !messages && !disconnect) {
                fprintf(stderr, "usage: see the source\n");
                return 2;
        }
        r = smd_stream_new(&s, argv[1], argv[2], messages ? on_rx_message : on_rx,
                           messages ? on_tx_message : NULL, on_state, meta ? stdout : NULL);
        if (r < 0) {
                fprintf(stderr, "cannot open: %s\n", smd_stream_get_error(NULL) ?: strerror(-r));
                return 1;
        }
        if (messages) {
                if (ws)
                        r = run_ws(s, streq(argv[4], "text"), argv + 5, argc - 5);
                else if (ws_cut)
                        r = run_ws_cut(s);
                else if (mqtt)
                        r = run_mqtt(s, argv[4]);
                else
                        r = run_credit(s, strtoull(argv[4], NULL, 10));
                fflush(stdout);
                smd_stream_destroy(s);
                for (size_t i = 0; i < MESSAGES_MAX; i++) {
                        free(sent[i].data);
                        free(got[i].data);
                }
                return r;
        }
        if (meta) {
                const char *eq = strchr(argv[4], '='), *v;
                char name[64];
                size_t len;

                if (!eq)
                        return 2;
                snprintf(name, sizeof(name), "%.*s", (int) (eq - argv[4]), argv[4]);
                if (smd_stream_set_metadata(s, name, eq + 1, strlen(eq + 1)) < 0)
                        return 1;
                (void) smd_stream_client_connect(s);
                r = run_until(s, one_ack) ? 0 : 1;
                if (smd_stream_get_metadata(s, argv[5], &v, &len) == 0)
                        fprintf(stderr, "%s=%.*s\n", argv[5], (int) len, v);
                fflush(stdout);
                smd_stream_destroy(s);
                return r;
        }
        if (disconnect) {
                (void) smd_stream_client_connect(s);
                r = run_until(s, is_disconnected) ? 0 : 1;
                smd_stream_destroy(s);
                return r;
        }
        (void) smd_stream_client_connect(s);
        if (!run_until(s, one_ack))
                return 1;
        fprintf(stderr, "first %" PRIu64 "\n", body_len);
        if (!run_until(s, link_lost))
                return 1;
        fprintf(stderr, "link-retry\n");
        (void) smd_stream_client_connect(s);
        r = run_until(s, two_acks) ? 0 : 1;
        fprintf(stderr, "second %" PRIu64 "\n", body_len);
        smd_stream_destroy(s);
        return r;
}

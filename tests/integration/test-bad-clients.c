/* SPDX-License-Identifier: MIT */
/*
 * Clients that misbehave on the socket affect only themselves: garbage, a
 * client that never sends its first frame, an unknown streamtype, a second
 * STREAMTYPE on one connection, a bad protocol version. Meanwhile a monitor
 * keeps receiving, and a frame trickled in one byte at a time still works.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tap.h"
#include "util.h"

static const char *sock;

static int publish(const char *payload)
{
        Proc p;
        int code;

        smdctl_run(&p, sock, (const char *const[]){"publish", "--class", "user0", payload, NULL},
                   NULL, 5000);
        code = proc_exit_code(&p);
        proc_free(&p);
        return code;
}

static void test_garbage(void)
{
        static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        RawClient c;
        long ms;

        is_int(raw_connect(&c, sock), 0, "garbage client connects");
        is_int(raw_send(&c, get, sizeof(get) - 1), 0, "and sends an HTTP request");
        ms = raw_wait_closed(&c, 2000);
        ok(ms >= 0 && ms < 1000, "the agent closes it at once (%ld ms)", ms);
        raw_close(&c);
}

static void test_unknown_streamtype(void)
{
        RawClient c;
        Frame f;
        int r;

        is_int(raw_connect(&c, sock), 0, "client connects");
        is_int(raw_send_streamtype(&c, "no_such_streamtype", 0), 0,
               "asks for an unknown streamtype");
        r = raw_recv(&c, &f, 2000);
        is_int(r, 1, "gets a frame");
        if (r == 1) {
                is_int(f.type, FRAME_CREATE_RESULT, "the frame is CREATE_RESULT");
                cmp_int(f.create_result.result, !=, 0, "with a failed result");
                ok(f.create_result.reason &&
                       memmem(f.create_result.reason, f.create_result.reason_len,
                              "no_such_streamtype", 18),
                   "whose reason names the streamtype");
        }
        cmp_int(raw_wait_closed(&c, 2000), >=, 0, "and is then closed");
        raw_close(&c);
}

static void test_second_streamtype(void)
{
        RawClient c, other;
        Frame f;
        int r;

        is_int(raw_open_smd(&c, sock, SMD_CLASS_USER(1)), 0, "a client opens _lws_smd");
        is_int(raw_open_smd(&other, sock, SMD_CLASS_USER(1)), 0, "so does another one");
        is_int(raw_send_streamtype(&c, "_lws_smd", SMD_CLASS_USER(1)), 0,
               "the first sends a second STREAMTYPE");
        cmp_int(raw_wait_closed(&c, 2000), >=, 0, "and is closed");
        is_int(raw_send_publish(&other, SMD_CLASS_USER(1), "still here", 10), 0,
               "the other publishes");
        r = raw_recv(&other, &f, 2000);
        ok(r == 1 && f.type == FRAME_RX_PAYLOAD && f.payload.size == MESSAGE_HEADER_SIZE + 10 &&
               memcmp(f.payload.data + MESSAGE_HEADER_SIZE, "still here", 10) == 0,
           "and still receives its own message");
        raw_close(&c);
        raw_close(&other);
}

static void test_bad_version(void)
{
        RawClient c;
        uint8_t frame[FRAME_HEADER_SIZE + 9 + 8];
        int n = frame_encode_streamtype(frame, 1, 0, "_lws_smd");

        frame[FRAME_HEADER_SIZE] = 2; /* protocol version 2 does not exist */
        is_int(raw_connect(&c, sock), 0, "client connects");
        is_int(raw_send(&c, frame, (size_t) n), 0, "sends STREAMTYPE with version 2");
        cmp_int(raw_wait_closed(&c, 2000), >=, 0, "and is closed");
        raw_close(&c);
}

/* Send one byte at a time with a pause in between. */
static int send_trickle(RawClient *c, const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int r = raw_send(c, p + i, 1);
                if (r < 0)
                        return r;
                harness_sleep_ms(5);
        }
        return 0;
}

static void test_split_frames(void)
{
        uint8_t st[FRAME_HEADER_SIZE + 9 + 8];
        uint8_t body[MESSAGE_HEADER_SIZE + 7], frame[FRAME_PAYLOAD_OVERHEAD + sizeof(body)];
        RawClient c;
        Frame f;
        MessageHeader h;
        int n, r;

        is_int(raw_connect(&c, sock), 0, "trickling client connects");
        n = frame_encode_streamtype(st, 1, SMD_CLASS_USER(0), "_lws_smd");
        is_int(send_trickle(&c, st, (size_t) n), 0, "sends STREAMTYPE one byte at a time");
        r = raw_recv(&c, &f, 2000);
        ok(r == 1 && f.type == FRAME_CREATE_RESULT && f.create_result.result == 0,
           "and gets CREATE_RESULT 0");

        message_header_write(body, SMD_CLASS_USER(0), 0);
        memcpy(body + MESSAGE_HEADER_SIZE, "trickle", 7);
        n = frame_encode_payload(frame, FRAME_TX_PAYLOAD, FRAME_FLAG_SOM | FRAME_FLAG_EOM, 0, 0,
                                 body, sizeof(body));
        is_int(send_trickle(&c, frame, (size_t) n), 0, "sends a publish one byte at a time");
        r = raw_recv(&c, &f, 2000);
        ok(r == 1 && f.type == FRAME_RX_PAYLOAD, "receives its own message back");
        if (r == 1 && f.type == FRAME_RX_PAYLOAD) {
                ok(message_header_parse(f.payload.data, f.payload.size, &h) == 0 &&
                       h.classes == SMD_CLASS_USER(0),
                   "with class user0");
                is_mem(f.payload.data + MESSAGE_HEADER_SIZE, f.payload.size - MESSAGE_HEADER_SIZE,
                       "trickle", 7, "and the payload");
        }
        raw_close(&c);
}

int main(void)
{
        Agent a;
        Proc mon = PROC_NULL;
        RawClient silent;
        uint64_t silent_start;
        long silent_ms;
        const char *line;

        harness_init(60);
        if (!agent_start(&a, NULL))
                goto out;
        sock = a.socket_path;

        /* A monitor that must see every message despite the troublemakers. */
        smdctl_start(&mon, sock,
                     (const char *const[]){"--json", "monitor", "--class", "user0", "--count", "5",
                                           "--timeout", "20", NULL},
                     NULL);
        ok(wait_participants(sock, 1, 5000), "monitor subscribed");

        /* Says nothing at all; timed in the background while the rest runs. */
        is_int(raw_connect(&silent, sock), 0, "silent client connects");
        silent_start = harness_now_usec();

        test_garbage();
        is_int(publish("\"m1\""), 0, "publish m1 after the garbage client");
        test_unknown_streamtype();
        test_second_streamtype();
        is_int(publish("\"m2\""), 0, "publish m2");
        test_bad_version();
        test_split_frames();
        is_int(publish("\"m3\""), 0, "publish m3");

        silent_ms = raw_wait_closed(&silent, 6000);
        silent_ms = silent_ms < 0 ? silent_ms : (long) ((harness_now_usec() - silent_start) / 1000);
        ok(silent_ms >= 2500 && silent_ms <= 5000,
           "the silent client is disconnected after about 3 s (%ld ms)", silent_ms);
        raw_close(&silent);
        is_int(publish("\"m4\""), 0, "publish m4 after the silent client is gone");

        proc_wait(&mon, 5000);
        is_int(proc_exit_code(&mon), 0, "the monitor got its 5 messages");
        line = mon.out;
        {
                static const char *const want[] = {"\"m1\"", "\"m2\"", "\"trickle\"", "\"m3\"",
                                                   "\"m4\""};
                for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                        char needle[64];
                        const char *hit;

                        snprintf(needle, sizeof(needle), "\"payload\":%s", want[i]);
                        hit = line ? strstr(line, needle) : NULL;
                        ok(hit != NULL, "monitor saw %s, in order", want[i]);
                        line = hit ? hit + 1 : line;
                }
        }
        if (proc_exit_code(&mon) != 0)
                tap_diag("monitor: %s%s", mon.out, mon.err);
        ok(wait_participants(sock, 0, 2000), "no participant is left behind");
        is_int(agent_stop(&a, 5000), 0, "agent exits 0");
        (void) agent_check_log(&a);
out:
        proc_free(&mon);
        agent_free(&a);
        return harness_done();
}

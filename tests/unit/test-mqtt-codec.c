/* SPDX-License-Identifier: MIT */
/*
 * The MQTT 3.1.1 codec: every encoder byte for byte against packets computed
 * by hand from the specification, with each rule that refuses fields; the
 * Remaining Length at every encoding boundary and past it; the decoder on
 * every packet a server sends, whole, in two pieces split at every byte and
 * one byte at a time, with each malformation it must refuse; a 1 MiB PUBLISH
 * delivered zero-copy; and topic filter matching (MQTT 4.7).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt-codec.h"
#include "tap.h"
#include "util.h"

#define is_bytes(a, alen, name, ...)                                   \
        is_mem((a), (size_t) (alen), ((const uint8_t[]){__VA_ARGS__}), \
               sizeof((const uint8_t[]){__VA_ARGS__}), "%s", name)
#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define LOG(s)     s, sizeof(s) - 1
#define BYTES_ARG  BYTES

static void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p)
                abort();
        return p;
}

/* ---- Encoders ---- */

static void test_varint(void)
{
        static const struct {
                uint32_t value;
                uint8_t bytes[4];
                int len;
        } cases[] = {
            {0, {0x00}, 1},
            {127, {0x7f}, 1},
            {128, {0x80, 0x01}, 2},
            {16383, {0xff, 0x7f}, 2},
            {16384, {0x80, 0x80, 0x01}, 3},
            {2097151, {0xff, 0xff, 0x7f}, 3},
            {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
            {268435455, {0xff, 0xff, 0xff, 0x7f}, 4},
        };
        uint8_t buf[8];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int n = mqtt_varint_write(buf, cases[i].value);

                is_mem(buf, n < 0 ? 0 : (size_t) n, cases[i].bytes, (size_t) cases[i].len,
                       "varint %u encoded", cases[i].value);
        }
        is_int(mqtt_varint_write(buf, 268435456), -EINVAL, "varint 268435456 refused");
}

static void test_connect(void)
{
        uint8_t buf[128];
        char *long_id;
        int n;

        n = mqtt_encode_connect(
            &(MqttConnect){.client_id = "abc", .keep_alive = 60, .clean_session = true}, buf,
            sizeof(buf));
        is_bytes(buf, n, "CONNECT minimal", 0x10, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
                 0x00, 0x3c, 0x00, 0x03, 'a', 'b', 'c');
        n = mqtt_encode_connect(&(MqttConnect){.client_id = "c1",
                                               .keep_alive = 10,
                                               .will_topic = "w/t",
                                               .will_message = "bye",
                                               .will_message_size = 3,
                                               .will_qos = 1,
                                               .will_retain = true,
                                               .username = "u",
                                               .password = "p",
                                               .password_size = 1},
                                buf, sizeof(buf));
        is_bytes(buf, n, "CONNECT with will, username and password", 0x10, 0x1e, 0x00, 0x04, 'M',
                 'Q', 'T', 'T', 0x04, 0xec, 0x00, 0x0a, 0x00, 0x02, 'c', '1', 0x00, 0x03, 'w', '/',
                 't', 0x00, 0x03, 'b', 'y', 'e', 0x00, 0x01, 'u', 0x00, 0x01, 'p');
        n = mqtt_encode_connect(
            &(MqttConnect){
                .client_id = "x", .clean_session = true, .will_topic = "w", .will_qos = 2},
            buf, sizeof(buf));
        is_bytes(buf, n, "CONNECT with an empty QoS 2 will", 0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T',
                 'T', 0x04, 0x16, 0x00, 0x00, 0x00, 0x01, 'x', 0x00, 0x01, 'w', 0x00, 0x00);
        n = mqtt_encode_connect(&(MqttConnect){.clean_session = true, .username = "me"}, buf,
                                sizeof(buf));
        is_bytes(buf, n, "CONNECT with an empty client id and a username", 0x10, 0x10, 0x00, 0x04,
                 'M', 'Q', 'T', 'T', 0x04, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 'm', 'e');
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "abc"}, buf, 0), 17,
               "CONNECT length asked with size 0");
        memset(buf, 0xaa, sizeof(buf));
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "abc"}, buf, 16), 17,
               "CONNECT into a short buffer gives its length");
        is_int(buf[0], 0xaa, "and writes nothing");

        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = ""}, buf, sizeof(buf)), -EINVAL,
               "empty client id without clean session refused");
        is_int(mqtt_encode_connect(
                   &(MqttConnect){.client_id = "a", .password = "p", .password_size = 1}, buf,
                   sizeof(buf)),
               -EINVAL, "password without username refused");
        is_int(
            mqtt_encode_connect(&(MqttConnect){.client_id = "a", .will_topic = "w", .will_qos = 3},
                                buf, sizeof(buf)),
            -EINVAL, "will QoS 3 refused");
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "a", .will_topic = "w/#"}, buf,
                                   sizeof(buf)),
               -EINVAL, "will topic with a wildcard refused");
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "a", .will_topic = ""}, buf,
                                   sizeof(buf)),
               -EINVAL, "empty will topic refused");
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "a", .will_retain = true}, buf,
                                   sizeof(buf)),
               -EINVAL, "will retain without a will refused");
        is_int(mqtt_encode_connect(
                   &(MqttConnect){.client_id = "a", .will_message = "m", .will_message_size = 1},
                   buf, sizeof(buf)),
               -EINVAL, "will message without a will topic refused");
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "\xc0\x80"}, buf, sizeof(buf)),
               -EINVAL, "client id not UTF-8 refused");
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = "a", .username = "\xed\xa0\x80"},
                                   buf, sizeof(buf)),
               -EINVAL, "username with a surrogate refused");
        long_id = xmalloc(65537);
        memset(long_id, 'i', 65536);
        long_id[65536] = 0;
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = long_id}, buf, sizeof(buf)), -EINVAL,
               "client id of 65536 bytes refused");
        long_id[65535] = 0;
        is_int(mqtt_encode_connect(&(MqttConnect){.client_id = long_id}, buf, 0),
               1 + 3 + 10 + 2 + 65535, "client id of 65535 bytes: 3-byte remaining length");
        free(long_id);
}

static void test_publish_encode(void)
{
        uint8_t buf[300], payload[200];
        int n;

        n = mqtt_encode_publish(&(MqttPublish){.topic = "a/b", .payload = "hi", .payload_size = 2},
                                buf, sizeof(buf));
        is_bytes(buf, n, "PUBLISH QoS 0", 0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i');
        n = mqtt_encode_publish(&(MqttPublish){.topic = "a/b",
                                               .qos = 1,
                                               .retain = true,
                                               .dup = true,
                                               .packet_id = 10,
                                               .payload = "hi",
                                               .payload_size = 2},
                                buf, sizeof(buf));
        is_bytes(buf, n, "PUBLISH QoS 1 retained duplicate", 0x3b, 0x09, 0x00, 0x03, 'a', '/', 'b',
                 0x00, 0x0a, 'h', 'i');
        n = mqtt_encode_publish(&(MqttPublish){.topic = "t", .qos = 2, .packet_id = 0x1234}, buf,
                                sizeof(buf));
        is_bytes(buf, n, "PUBLISH QoS 2 empty", 0x34, 0x05, 0x00, 0x01, 't', 0x12, 0x34);
        memset(payload, 'x', sizeof(payload));
        n = mqtt_encode_publish_header(
            &(MqttPublish){.topic = "a/b", .payload = payload, .payload_size = 200}, buf,
            sizeof(buf));
        is_bytes(buf, n, "PUBLISH header for a 200-byte payload", 0x30, 0xcd, 0x01, 0x00, 0x03, 'a',
                 '/', 'b');
        n = mqtt_encode_publish(
            &(MqttPublish){.topic = "a/b", .payload = payload, .payload_size = 200}, buf,
            sizeof(buf));
        is_int(n, 208, "PUBLISH with 200 bytes is 208 bytes");
        is_mem(buf + 8, 200, payload, 200, "PUBLISH payload follows the header");

        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "a/+"}, buf, sizeof(buf)), -EINVAL,
               "PUBLISH topic with + refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "#"}, buf, sizeof(buf)), -EINVAL,
               "PUBLISH topic # refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = ""}, buf, sizeof(buf)), -EINVAL,
               "PUBLISH empty topic refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = NULL}, buf, sizeof(buf)), -EINVAL,
               "PUBLISH without topic refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "t", .qos = 3, .packet_id = 1}, buf,
                                   sizeof(buf)),
               -EINVAL, "PUBLISH QoS 3 refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "t", .qos = 1}, buf, sizeof(buf)),
               -EINVAL, "PUBLISH QoS 1 with packet id 0 refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "t", .packet_id = 1}, buf, sizeof(buf)),
               -EINVAL, "PUBLISH QoS 0 with a packet id refused");
        is_int(mqtt_encode_publish(&(MqttPublish){.topic = "t", .dup = true}, buf, sizeof(buf)),
               -EINVAL, "PUBLISH QoS 0 with DUP refused");
        is_int(mqtt_encode_publish(
                   &(MqttPublish){.topic = "t", .payload = payload, .payload_size = 268435455 - 2},
                   buf, sizeof(buf)),
               -EINVAL, "PUBLISH past the largest remaining length refused");
        is_int(mqtt_encode_publish_header(
                   &(MqttPublish){.topic = "t", .payload = payload, .payload_size = 268435455 - 3},
                   buf, sizeof(buf)),
               8, "PUBLISH header at the largest remaining length");
        is_bytes(buf, 8, "PUBLISH header with a 4-byte remaining length", 0x30, 0xff, 0xff, 0xff,
                 0x7f, 0x00, 0x01, 't');
}

static void test_small_encoders(void)
{
        static const char *const filters[] = {"a/+", "#"};
        static const uint8_t qos[] = {1, 0};
        uint8_t buf[64];
        int n;

        n = mqtt_encode_ack(MQTT_PUBACK, 1, buf, sizeof(buf));
        is_bytes(buf, n, "PUBACK", 0x40, 0x02, 0x00, 0x01);
        n = mqtt_encode_ack(MQTT_PUBREC, 0x102, buf, sizeof(buf));
        is_bytes(buf, n, "PUBREC", 0x50, 0x02, 0x01, 0x02);
        n = mqtt_encode_ack(MQTT_PUBREL, 0xffff, buf, sizeof(buf));
        is_bytes(buf, n, "PUBREL has flags 0010", 0x62, 0x02, 0xff, 0xff);
        n = mqtt_encode_ack(MQTT_PUBCOMP, 7, buf, sizeof(buf));
        is_bytes(buf, n, "PUBCOMP", 0x70, 0x02, 0x00, 0x07);
        is_int(mqtt_encode_ack(MQTT_PUBACK, 0, buf, sizeof(buf)), -EINVAL, "ack of id 0 refused");
        is_int(mqtt_encode_ack(MQTT_SUBACK, 1, buf, sizeof(buf)), -EINVAL,
               "ack of another type refused");
        is_int(mqtt_encode_ack(MQTT_PUBACK, 1, buf, 3), 4, "ack into a short buffer: length");

        n = mqtt_encode_subscribe(1, filters, qos, 2, buf, sizeof(buf));
        is_bytes(buf, n, "SUBSCRIBE two filters", 0x82, 0x0c, 0x00, 0x01, 0x00, 0x03, 'a', '/', '+',
                 0x01, 0x00, 0x01, '#', 0x00);
        n = mqtt_encode_unsubscribe(2, filters, 1, buf, sizeof(buf));
        is_bytes(buf, n, "UNSUBSCRIBE", 0xa2, 0x07, 0x00, 0x02, 0x00, 0x03, 'a', '/', '+');
        is_int(mqtt_encode_subscribe(1, filters, qos, 0, buf, sizeof(buf)), -EINVAL,
               "SUBSCRIBE without filters refused");
        is_int(mqtt_encode_subscribe(0, filters, qos, 1, buf, sizeof(buf)), -EINVAL,
               "SUBSCRIBE with id 0 refused");
        is_int(mqtt_encode_subscribe(1, filters, (const uint8_t[]){3}, 1, buf, sizeof(buf)),
               -EINVAL, "SUBSCRIBE with QoS 3 refused");
        is_int(mqtt_encode_subscribe(1, (const char *const[]){"a/b#"}, qos, 1, buf, sizeof(buf)),
               -EINVAL, "SUBSCRIBE to a/b# refused");
        is_int(mqtt_encode_unsubscribe(1, (const char *const[]){"a+"}, 1, buf, sizeof(buf)),
               -EINVAL, "UNSUBSCRIBE from a+ refused");
        is_int(mqtt_encode_unsubscribe(1, filters, 0, buf, sizeof(buf)), -EINVAL,
               "UNSUBSCRIBE without filters refused");
        n = mqtt_encode_pingreq(buf, sizeof(buf));
        is_bytes(buf, n, "PINGREQ", 0xc0, 0x00);
        n = mqtt_encode_disconnect(buf, sizeof(buf));
        is_bytes(buf, n, "DISCONNECT", 0xe0, 0x00);
}

/* ---- Decoder ---- */

typedef struct Run {
        char *log;
        size_t len;
        size_t cap;
        int result;
        bool in_publish;
        const char *broken;
        unsigned pieces;
} Run;

static void log_add(Run *run, const void *p, size_t n)
{
        if (run->len + n + 1 > run->cap) {
                run->cap = (run->len + n + 1) * 2;
                run->log = realloc(run->log, run->cap);
                if (!run->log)
                        abort();
        }
        if (n)
                memcpy(run->log + run->len, p, n);
        run->len += n;
        run->log[run->len] = 0;
}

static void log_fmt(Run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_fmt(Run *run, const char *fmt, ...)
{
        char buf[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        log_add(run, buf, (size_t) n);
}

static const char *type_name(MqttPacketType t)
{
        static const char *const names[] = {"0",         "CONNECT",  "CONNACK",     "PUBLISH",
                                            "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                            "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                            "PINGREQ",   "PINGRESP", "DISCONNECT"};
        return (unsigned) t < ELEMENTSOF(names) ? names[t] : "?";
}

static void on_event(Run *run, const MqttEvent *ev, const uint8_t *in, size_t in_size)
{
        if (ev->type != MQTT_PUBLISH && run->in_publish)
                run->broken = "packet inside a PUBLISH payload";
        switch (ev->type) {
        case MQTT_CONNACK:
                log_fmt(run, "CONNACK sp=%d rc=%u;", ev->session_present, ev->return_code);
                return;
        case MQTT_PUBLISH:
                run->pieces++;
                if (ev->first == run->in_publish)
                        run->broken = "first does not match";
                if (ev->size == 0 && !(ev->first && ev->last))
                        run->broken = "empty piece";
                if (ev->size && (ev->data < in || ev->data + ev->size > in + in_size))
                        run->broken = "piece outside the input";
                if (strlen(ev->topic) != ev->topic_len)
                        run->broken = "topic length";
                if (ev->first)
                        log_fmt(run, "PUBLISH t=%s q=%u r=%d d=%d id=%u n=%u:", ev->topic, ev->qos,
                                ev->retain, ev->dup, ev->packet_id, ev->payload_size);
                log_add(run, ev->data, ev->size);
                run->in_publish = !ev->last;
                if (ev->last)
                        log_add(run, ";", 1);
                return;
        case MQTT_SUBACK:
                log_fmt(run, "SUBACK id=%u", ev->packet_id);
                for (size_t i = 0; i < ev->n_return_codes; i++)
                        log_fmt(run, " %02x", ev->return_codes[i]);
                log_add(run, ";", 1);
                return;
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBREL:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
                log_fmt(run, "%s id=%u;", type_name(ev->type), ev->packet_id);
                return;
        case MQTT_PINGRESP:
                log_fmt(run, "PINGRESP;");
                return;
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                break;
        }
        run->broken = "event of a type a server does not send";
}

static void feed(Run *run, MqttDecoder *d, const uint8_t *data, size_t size, const uint8_t *in,
                 size_t in_size)
{
        while (run->result == 0) {
                MqttEvent ev;
                size_t used = SIZE_MAX;
                int r = mqtt_decoder_feed(d, data, size, &used, &ev);

                if (r < 0) {
                        run->result = r;
                        if (!mqtt_decoder_get_error(d))
                                run->broken = "error without a description";
                        return;
                }
                if (used > size)
                        run->broken = "consumed more than given";
                if (r == 0) {
                        if (used != size)
                                run->broken = "need more without using all input";
                        return;
                }
                on_event(run, &ev, in, in_size);
                data += used;
                size -= used;
        }
}

typedef enum SplitMode {
        SPLIT_WHOLE,
        SPLIT_TWO,
        SPLIT_BYTES,
} SplitMode;

static Run run_decoder(const MqttDecoderOptions *options, const uint8_t *input, size_t size,
                       SplitMode mode, size_t split)
{
        Run run = {0};
        MqttDecoder *d;

        if (mqtt_decoder_new(&d, options) < 0)
                abort();
        switch (mode) {
        case SPLIT_WHOLE:
                feed(&run, d, input, size, input, size);
                break;
        case SPLIT_TWO:
                feed(&run, d, input, split, input, size);
                feed(&run, d, input + split, size - split, input, size);
                break;
        case SPLIT_BYTES:
                for (size_t i = 0; i < size; i++)
                        feed(&run, d, input + i, 1, input, size);
                break;
        }
        if (run.result == 0 && !mqtt_decoder_is_idle(d) && !run.in_publish && run.len &&
            run.log[run.len - 1] != ';')
                run.broken = "not idle after whole packets";
        mqtt_decoder_free(d);
        log_add(&run, NULL, 0);
        return run;
}

static bool same_run(const Run *a, const Run *b, bool compare_log)
{
        if (a->broken || b->broken || a->result != b->result)
                return false;
        return !compare_log || (a->len == b->len && memcmp(a->log, b->log, a->len) == 0);
}

static void check_decode(const char *name, const MqttDecoderOptions *options, const uint8_t *input,
                         size_t size, const char *expect_log, size_t expect_len, int expect_error)
{
        Run whole = run_decoder(options, input, size, SPLIT_WHOLE, 0), other;
        size_t step = size > 4096 ? size / 127 : 1;
        bool all = true;

        if (expect_error == 0) {
                ok(!whole.broken, "%s: event invariants hold (%s)", name,
                   whole.broken ? whole.broken : "ok");
                is_int(whole.result, 0, "%s: decodes", name);
                is_mem(whole.log, whole.len, expect_log, expect_len, "%s: events", name);
        } else {
                is_int(whole.result, expect_error, "%s: refused", name);
        }
        for (size_t k = 0; k <= size; k += (k < 32 || size - k < 32) ? 1 : step) {
                other = run_decoder(options, input, size, SPLIT_TWO, k);
                if (!same_run(&whole, &other, expect_error == 0)) {
                        if (all)
                                tap_diag("%s: differs when split at %zu", name, k);
                        all = false;
                }
                free(other.log);
        }
        ok(all, "%s: same in two pieces split at %s byte", name, step == 1 ? "every" : "sampled");
        other = run_decoder(options, input, size, SPLIT_BYTES, 0);
        ok(same_run(&whole, &other, expect_error == 0), "%s: same one byte at a time", name);
        free(other.log);
        free(whole.log);
}

static void check_ok(const char *name, const uint8_t *in, size_t n, const char *log, size_t log_len)
{
        check_decode(name, NULL, in, n, log, log_len, 0);
}

static void check_bad(const char *name, const uint8_t *in, size_t n, int error)
{
        check_decode(name, NULL, in, n, NULL, 0, error);
}

static void test_decode_packets(void)
{
        check_ok("CONNACK accepted", BYTES(0x20, 0x02, 0x00, 0x00), LOG("CONNACK sp=0 rc=0;"));
        check_ok("CONNACK session present", BYTES(0x20, 0x02, 0x01, 0x00),
                 LOG("CONNACK sp=1 rc=0;"));
        check_ok("CONNACK not authorized", BYTES(0x20, 0x02, 0x00, 0x05),
                 LOG("CONNACK sp=0 rc=5;"));
        check_bad("CONNACK return code 6", BYTES(0x20, 0x02, 0x00, 0x06), -EBADMSG);
        check_bad("CONNACK reserved flag", BYTES(0x20, 0x02, 0x02, 0x00), -EBADMSG);
        check_bad("CONNACK session present with a refusal", BYTES(0x20, 0x02, 0x01, 0x01),
                  -EBADMSG);
        check_bad("CONNACK of 3 bytes", BYTES(0x20, 0x03, 0x00, 0x00, 0x00), -EBADMSG);
        check_bad("CONNACK of 1 byte", BYTES(0x20, 0x01, 0x00), -EBADMSG);
        check_bad("CONNACK fixed header flags", BYTES(0x21, 0x02, 0x00, 0x00), -EBADMSG);

        check_ok("PUBLISH QoS 0", BYTES(0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'),
                 LOG("PUBLISH t=a/b q=0 r=0 d=0 id=0 n=2:hi;"));
        check_ok("PUBLISH QoS 1 retained duplicate",
                 BYTES(0x3b, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0a, 'h', 'i'),
                 LOG("PUBLISH t=a/b q=1 r=1 d=1 id=10 n=2:hi;"));
        check_ok("PUBLISH QoS 2 empty", BYTES(0x34, 0x05, 0x00, 0x01, 't', 0x12, 0x34),
                 LOG("PUBLISH t=t q=2 r=0 d=0 id=4660 n=0:;"));
        check_ok("PUBLISH QoS 0 empty, UTF-8 topic", BYTES(0x31, 0x04, 0x00, 0x02, 0xc3, 0xa9),
                 LOG("PUBLISH t=é q=0 r=1 d=0 id=0 n=0:;"));
        check_ok("PUBLISH to a $SYS topic", BYTES(0x30, 0x06, 0x00, 0x04, '$', 'S', 'Y', 'S'),
                 LOG("PUBLISH t=$SYS q=0 r=0 d=0 id=0 n=0:;"));
        check_bad("PUBLISH QoS 3", BYTES(0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01), -EBADMSG);
        check_bad("PUBLISH DUP on QoS 0", BYTES(0x38, 0x03, 0x00, 0x01, 't'), -EBADMSG);
        check_bad("PUBLISH empty topic", BYTES(0x30, 0x03, 0x00, 0x00, 'x'), -EBADMSG);
        check_bad("PUBLISH topic with +", BYTES(0x30, 0x05, 0x00, 0x03, 'a', '/', '+'), -EBADMSG);
        check_bad("PUBLISH topic with #", BYTES(0x30, 0x03, 0x00, 0x01, '#'), -EBADMSG);
        check_bad("PUBLISH topic with U+0000", BYTES(0x30, 0x04, 0x00, 0x02, 'a', 0x00), -EBADMSG);
        check_bad("PUBLISH topic not UTF-8", BYTES(0x30, 0x04, 0x00, 0x02, 0xc0, 0x80), -EBADMSG);
        check_bad("PUBLISH QoS 1 with packet id 0", BYTES(0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00),
                  -EBADMSG);
        check_bad("PUBLISH topic longer than the packet",
                  BYTES(0x30, 0x04, 0x00, 0x03, 'a', 'b', 'c'), -EBADMSG);
        check_bad("PUBLISH QoS 1 without room for the id", BYTES(0x32, 0x04, 0x00, 0x01, 't', 0x00),
                  -EBADMSG);
        check_bad("PUBLISH of 2 bytes", BYTES(0x30, 0x02, 0x00, 0x00), -EBADMSG);

        check_ok("PUBACK", BYTES(0x40, 0x02, 0x00, 0x01), LOG("PUBACK id=1;"));
        check_ok("PUBREC", BYTES(0x50, 0x02, 0x01, 0x00), LOG("PUBREC id=256;"));
        check_ok("PUBREL", BYTES(0x62, 0x02, 0xff, 0xff), LOG("PUBREL id=65535;"));
        check_ok("PUBCOMP", BYTES(0x70, 0x02, 0x00, 0x09), LOG("PUBCOMP id=9;"));
        check_ok("UNSUBACK", BYTES(0xb0, 0x02, 0x00, 0x03), LOG("UNSUBACK id=3;"));
        check_bad("PUBREL with flags 0000", BYTES(0x60, 0x02, 0x00, 0x01), -EBADMSG);
        check_bad("PUBACK with flags 0010", BYTES(0x42, 0x02, 0x00, 0x01), -EBADMSG);
        check_bad("PUBREC with flags 1000", BYTES(0x58, 0x02, 0x00, 0x01), -EBADMSG);
        check_bad("PUBCOMP of 3 bytes", BYTES(0x70, 0x03, 0x00, 0x01, 0x00), -EBADMSG);
        check_bad("UNSUBACK of 0 bytes", BYTES(0xb0, 0x00), -EBADMSG);
        check_bad("PUBACK id 0", BYTES(0x40, 0x02, 0x00, 0x00), -EBADMSG);
        check_bad("UNSUBACK id 0", BYTES(0xb0, 0x02, 0x00, 0x00), -EBADMSG);

        check_ok("SUBACK", BYTES(0x90, 0x06, 0x00, 0x07, 0x00, 0x01, 0x02, 0x80),
                 LOG("SUBACK id=7 00 01 02 80;"));
        check_bad("SUBACK without a return code", BYTES(0x90, 0x02, 0x00, 0x07), -EBADMSG);
        check_bad("SUBACK return code 3", BYTES(0x90, 0x03, 0x00, 0x07, 0x03), -EBADMSG);
        check_bad("SUBACK return code 0x81", BYTES(0x90, 0x03, 0x00, 0x07, 0x81), -EBADMSG);
        check_bad("SUBACK id 0", BYTES(0x90, 0x03, 0x00, 0x00, 0x00), -EBADMSG);
        check_bad("SUBACK with flags", BYTES(0x92, 0x03, 0x00, 0x01, 0x00), -EBADMSG);
        check_bad("SUBACK larger than held packets", BYTES(0x90, 0x81, 0x20), -EMSGSIZE);

        check_ok("PINGRESP", BYTES(0xd0, 0x00), LOG("PINGRESP;"));
        check_bad("PINGRESP of 1 byte", BYTES(0xd0, 0x01, 0x00), -EBADMSG);
        check_bad("PINGRESP with flags", BYTES(0xd1, 0x00), -EBADMSG);

        check_bad("type 0", BYTES(0x00, 0x00), -EBADMSG);
        check_bad("CONNECT from a server", BYTES(0x10, 0x00), -EBADMSG);
        check_bad("SUBSCRIBE from a server", BYTES(0x82, 0x00), -EBADMSG);
        check_bad("UNSUBSCRIBE from a server", BYTES(0xa2, 0x00), -EBADMSG);
        check_bad("PINGREQ from a server", BYTES(0xc0, 0x00), -EBADMSG);
        check_bad("DISCONNECT from a server", BYTES(0xe0, 0x00), -EBADMSG);
        check_bad("type 15", BYTES(0xf0, 0x00), -EBADMSG);

        check_ok("a conversation in one stream",
                 BYTES(0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x01, 0x32, 0x08, 0x00, 0x01,
                       'x', 0x00, 0x02, 'a', 'b', 'c', 0x40, 0x02, 0x00, 0x05, 0xd0, 0x00, 0x30,
                       0x03, 0x00, 0x01, 'y', 0x62, 0x02, 0x00, 0x06),
                 LOG("CONNACK sp=0 rc=0;SUBACK id=1 01;PUBLISH t=x q=1 r=0 d=0 id=2 n=3:abc;"
                     "PUBACK id=5;PINGRESP;PUBLISH t=y q=0 r=0 d=0 id=0 n=0:;PUBREL id=6;"));
        check_bad("good packets then a bad one",
                  BYTES(0x20, 0x02, 0x00, 0x00, 0xd0, 0x00, 0xd0, 0x01, 0x00), -EBADMSG);
}

/* The decoder reads a remaining length: a PUBLISH with one payload byte shows it. */
static void test_decode_varint(void)
{
        static const struct {
                uint32_t value;
                uint8_t bytes[4];
                size_t len;
        } cases[] = {
            {127, {0x7f}, 1},
            {128, {0x80, 0x01}, 2},
            {16383, {0xff, 0x7f}, 2},
            {16384, {0x80, 0x80, 0x01}, 3},
            {2097151, {0xff, 0xff, 0x7f}, 3},
            {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
            {268435455, {0xff, 0xff, 0xff, 0x7f}, 4},
        };
        MqttDecoderOptions big = {.max_packet_size = MQTT_REMAINING_LENGTH_MAX};
        MqttDecoder *d;
        MqttEvent ev;
        size_t used;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t in[16] = {0x30};

                memcpy(in + 1, cases[i].bytes, cases[i].len);
                memcpy(in + 1 + cases[i].len, "\x00\x01t!", 4);
                mqtt_decoder_new(&d, &big);
                is_int(mqtt_decoder_feed(d, in, 5 + cases[i].len, &used, &ev), 1,
                       "remaining length %u: PUBLISH event", cases[i].value);
                is_int(ev.payload_size, cases[i].value - 3, "remaining length %u decoded",
                       cases[i].value);
                ok(ev.first && ev.size == 1 && ev.data[0] == '!' && !ev.last,
                   "remaining length %u: first payload byte delivered", cases[i].value);
                mqtt_decoder_free(d);
        }
        check_ok("remaining length 0", BYTES(0xd0, 0x00), LOG("PINGRESP;"));
        check_ok("remaining length 0 in two bytes (not minimal, accepted)", BYTES(0xd0, 0x80, 0x00),
                 LOG("PINGRESP;"));
        check_ok("remaining length 2 in four bytes (not minimal, accepted)",
                 BYTES(0x40, 0x82, 0x80, 0x80, 0x00, 0x00, 0x01), LOG("PUBACK id=1;"));
        check_bad("remaining length with a 5th byte", BYTES(0x30, 0xff, 0xff, 0xff, 0xff, 0x01),
                  -EBADMSG);
        check_bad("remaining length with a 5th byte, zeros",
                  BYTES(0x30, 0x80, 0x80, 0x80, 0x80, 0x00), -EBADMSG);

        /* Refused at the 4th byte: the 5th need not arrive. */
        mqtt_decoder_new(&d, &big);
        is_int(mqtt_decoder_feed(d, BYTES_ARG(0x30, 0x80, 0x80, 0x80, 0x80), &used, &ev), -EBADMSG,
               "continuation bit on the 4th length byte refused at once");
        mqtt_decoder_free(d);
}

static void test_limits(void)
{
        MqttDecoderOptions small = {.max_packet_size = 10};
        uint8_t *in;
        char *expect;
        size_t size = 1024 * 1024, n;

        check_decode("PUBLISH at the packet size limit", &small,
                     BYTES(0x30, 0x0a, 0x00, 0x01, 't', '1', '2', '3', '4', '5', '6', '7'),
                     LOG("PUBLISH t=t q=0 r=0 d=0 id=0 n=7:1234567;"), 0);
        check_decode("PUBLISH over the packet size limit", &small,
                     BYTES(0x30, 0x0b, 0x00, 0x01, 't', '1', '2', '3', '4', '5', '6', '7', '8'),
                     NULL, 0, -EMSGSIZE);
        check_decode("PUBLISH over the limit refused on its header", &small, BYTES(0x30, 0x0b),
                     NULL, 0, -EMSGSIZE);
        check_bad("PUBLISH over the default limit", BYTES(0x30, 0x81, 0x80, 0x80, 0x08), -EMSGSIZE);

        /* 1 MiB payload, zero-copy, at sampled splits. */
        in = xmalloc(size + 16);
        expect = xmalloc(size + 64);
        in[0] = 0x32;
        n = 1 + (size_t) mqtt_varint_write(in + 1, (uint32_t) (size + 2 + 5 + 2));
        memcpy(in + n,
               "\x00\x05"
               "big/1"
               "\x00\x2a",
               9);
        n += 9;
        for (size_t i = 0; i < size; i++)
                in[n + i] = (uint8_t) (i * 13 + (i >> 9));
        snprintf(expect, 64, "PUBLISH t=big/1 q=1 r=0 d=0 id=42 n=%zu:", size);
        memcpy(expect + strlen(expect), in + n, size);
        {
                size_t expect_len = strlen("PUBLISH t=big/1 q=1 r=0 d=0 id=42 n=1048576:");

                expect[expect_len + size] = ';';
                check_decode("1 MiB PUBLISH", NULL, in, n + size, expect, expect_len + size + 1, 0);
        }
        {
                Run run = run_decoder(NULL, in, n + size, SPLIT_WHOLE, 0);

                is_int(run.pieces, 1, "1 MiB PUBLISH given whole: one piece, no copy");
                free(run.log);
        }
        free(in);
        free(expect);
}

static void test_encode_decode(void)
{
        uint8_t buf[256];
        int n = mqtt_encode_publish(&(MqttPublish){.topic = "r/t",
                                                   .qos = 2,
                                                   .retain = true,
                                                   .packet_id = 77,
                                                   .payload = "round",
                                                   .payload_size = 5},
                                    buf, sizeof(buf));

        check_ok("own PUBLISH decoded", buf, (size_t) n,
                 LOG("PUBLISH t=r/t q=2 r=1 d=0 id=77 n=5:round;"));
        n = mqtt_encode_ack(MQTT_PUBREL, 78, buf, sizeof(buf));
        check_ok("own PUBREL decoded", buf, (size_t) n, LOG("PUBREL id=78;"));
}

/* ---- Topics ---- */

static void test_topics(void)
{
        static const struct {
                const char *filter;
                const char *topic;
                bool match;
        } cases[] = {
            {"sport/tennis/player1/#", "sport/tennis/player1", true},
            {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
            {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
            {"sport/tennis/player1/#", "sport/tennis/player2", false},
            {"sport/#", "sport", true},
            {"sport/tennis/#", "sport/tennisX", false},
            {"#", "anything/at/all", true},
            {"#", "/", true},
            {"sport/tennis/+", "sport/tennis/player1", true},
            {"sport/tennis/+", "sport/tennis/player1/ranking", false},
            {"sport/+", "sport", false},
            {"sport/+", "sport/", true},
            {"+", "finance", true},
            {"+", "/finance", false},
            {"+/+", "/finance", true},
            {"/+", "/finance", true},
            {"+/tennis/#", "sport/tennis/x", true},
            {"a/+/b", "a//b", true},
            {"a/b", "a/b", true},
            {"a/b", "a/b/c", false},
            {"a/b", "a", false},
            {"a/b", "A/b", false},
            {"#", "$SYS/monitor/Clients", false},
            {"+/monitor/Clients", "$SYS/monitor/Clients", false},
            {"$SYS/#", "$SYS/monitor/Clients", true},
            {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
            {"a/#", "a/", true},
        };
        static const char *const valid_filters[] = {
            "#", "+", "sport/#", "+/tennis/#", "sport/+/player1", "/", "//", "+/+", "$SYS/#"};
        static const char *const bad_filters[] = {
            "",   "sport+", "sport/tennis#", "sport/#/ranking", "a/#b", "\xc0\x80",
            "++", "#/",     "a/b+"};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                is_int(mqtt_topic_matches(cases[i].filter, cases[i].topic), cases[i].match,
                       "filter %s %s topic %s", cases[i].filter,
                       cases[i].match ? "matches" : "does not match", cases[i].topic);
        for (size_t i = 0; i < ELEMENTSOF(valid_filters); i++)
                ok(mqtt_topic_filter_is_valid(valid_filters[i], strlen(valid_filters[i])),
                   "filter %s is valid", valid_filters[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad_filters); i++)
                ok(!mqtt_topic_filter_is_valid(bad_filters[i], strlen(bad_filters[i])),
                   "filter %zu (%s) is refused", i, bad_filters[i]);
        ok(!mqtt_topic_filter_is_valid("a\0b", 3), "filter with U+0000 refused");
        ok(mqtt_topic_name_is_valid("a", 1), "topic a valid");
        ok(mqtt_topic_name_is_valid("/", 1), "topic / valid");
        ok(!mqtt_topic_name_is_valid("", 0), "empty topic refused");
        ok(!mqtt_topic_name_is_valid("a/+", 3), "topic with + refused");
        ok(!mqtt_topic_name_is_valid("a\0", 2), "topic with U+0000 refused");
}

int main(void)
{
        tap_init();
        test_varint();
        test_connect();
        test_publish_encode();
        test_small_encoders();
        test_decode_packets();
        test_decode_varint();
        test_limits();
        test_encode_decode();
        test_topics();
        return tap_done();
}

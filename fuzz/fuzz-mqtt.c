/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the MQTT 3.1.1 decoder. input[0] picks the packet size limit (small
 * or the default), input[1] the split point; the rest is the byte stream from
 * a "server", decoded whole and split in two. The outcome and, on success,
 * the events (payload merged per PUBLISH) must not depend on the split, and
 * every event must keep the decoder's promises (fields in range, topic valid
 * and NUL-terminated, payload pieces inside the input and adding up). Every
 * complete PUBLISH is encoded again and decoded back, and must come out the
 * same; its topic must match itself and '#' as filters.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Run {
        uint8_t *log;
        size_t log_size;
        int result;
        bool in_publish;
        uint32_t received;
        MqttEvent publish; /* fields of the PUBLISH being received */
        char *topic;
        uint8_t *payload;
        bool round_trip;
} Run;

static void log_append(Run *run, const void *p, size_t n)
{
        uint8_t *l = realloc(run->log, run->log_size + n + 1);

        assert(l);
        run->log = l;
        if (n)
                memcpy(run->log + run->log_size, p, n);
        run->log_size += n;
}

static void round_trip(Run *run);

static void on_event(Run *run, const MqttEvent *ev, const uint8_t *in, size_t in_size)
{
        uint8_t type = (uint8_t) ev->type;

        if (ev->type != MQTT_PUBLISH || ev->first)
                log_append(run, &type, 1);
        assert(ev->type == MQTT_PUBLISH || !run->in_publish);
        switch (ev->type) {
        case MQTT_CONNACK:
                assert(ev->return_code <= 5);
                assert(!ev->session_present || ev->return_code == 0);
                log_append(run, &ev->return_code, 1);
                log_append(run, &ev->session_present, 1);
                break;
        case MQTT_PUBLISH:
                assert(ev->first == !run->in_publish);
                assert(ev->qos <= 2);
                assert((ev->qos == 0) == (ev->packet_id == 0));
                assert(!ev->dup || ev->qos > 0);
                assert(ev->topic && strlen(ev->topic) == ev->topic_len);
                assert(mqtt_topic_name_is_valid(ev->topic, ev->topic_len));
                assert(ev->size > 0 || (ev->first && ev->last && ev->payload_size == 0));
                assert(ev->size == 0 || (ev->data >= in && ev->data + ev->size <= in + in_size));
                if (ev->first) {
                        run->received = 0;
                        run->publish = *ev;
                        free(run->topic);
                        run->topic = strdup(ev->topic);
                        assert(run->topic);
                        log_append(run, ev->topic, ev->topic_len + 1);
                        log_append(run, &ev->qos, 1);
                        log_append(run, &ev->packet_id, 2);
                        log_append(run, &ev->payload_size, 4);
                }
                assert(ev->payload_size == run->publish.payload_size);
                assert(strcmp(ev->topic, run->topic) == 0);
                assert(run->received + ev->size <= ev->payload_size);
                if (run->round_trip) {
                        /* grown as data arrives: the announced size may never come */
                        uint8_t *p =
                            realloc(ev->first ? NULL : run->payload, run->received + ev->size + 1);

                        assert(p);
                        if (ev->first)
                                free(run->payload);
                        run->payload = p;
                        if (ev->size)
                                memcpy(run->payload + run->received, ev->data, ev->size);
                }
                run->received += (uint32_t) ev->size;
                log_append(run, ev->data, ev->size);
                assert(ev->last == (run->received == ev->payload_size));
                run->in_publish = !ev->last;
                if (ev->last && run->round_trip)
                        round_trip(run);
                break;
        case MQTT_SUBACK:
                assert(ev->n_return_codes > 0);
                for (size_t i = 0; i < ev->n_return_codes; i++)
                        assert(ev->return_codes[i] <= 2 || ev->return_codes[i] == 0x80);
                log_append(run, ev->return_codes, ev->n_return_codes);
                assert(ev->packet_id != 0);
                log_append(run, &ev->packet_id, 2);
                break;
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBREL:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
                assert(ev->packet_id != 0);
                log_append(run, &ev->packet_id, 2);
                break;
        case MQTT_PINGRESP:
                break;
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                assert(false);
        }
}

static int feed(MqttDecoder *d, Run *run, const uint8_t *data, size_t size, const uint8_t *in,
                size_t in_size)
{
        for (;;) {
                MqttEvent ev;
                size_t used = SIZE_MAX;
                int r = mqtt_decoder_feed(d, data, size, &used, &ev);

                if (r < 0)
                        return r;
                assert(used <= size);
                if (r == 0) {
                        assert(used == size);
                        return 0;
                }
                on_event(run, &ev, in, in_size);
                data += used;
                size -= used;
        }
}

static void run_decoder(Run *run, const MqttDecoderOptions *options, const uint8_t *data,
                        size_t size, size_t split, bool do_round_trip)
{
        MqttDecoder *d;
        int r;

        *run = (Run){.round_trip = do_round_trip};
        if (mqtt_decoder_new(&d, options) < 0)
                return;
        r = feed(d, run, data, split, data, size);
        if (r >= 0)
                r = feed(d, run, data + split, size - split, data, size);
        if (r < 0) {
                size_t used;
                MqttEvent ev;

                assert(r == -EBADMSG || r == -EMSGSIZE);
                assert(mqtt_decoder_get_error(d));
                assert(mqtt_decoder_feed(d, data, size, &used, &ev) == r);
        } else {
                assert(!mqtt_decoder_get_error(d));
        }
        run->result = r;
        mqtt_decoder_free(d);
        free(run->topic);
        free(run->payload);
        run->topic = NULL;
        run->payload = NULL;
}

static void round_trip(Run *run)
{
        const MqttEvent *ev = &run->publish;
        MqttPublish p = {
            .topic = run->topic,
            .qos = ev->qos,
            .retain = ev->retain,
            .dup = ev->dup,
            .packet_id = ev->packet_id,
            .payload = run->payload,
            .payload_size = ev->payload_size,
        };
        int n = mqtt_encode_publish(&p, NULL, 0);
        uint8_t *buf;
        Run back;

        assert(n > 0);
        buf = malloc((size_t) n);
        assert(buf);
        assert(mqtt_encode_publish(&p, buf, (size_t) n) == n);
        run_decoder(&back, &(MqttDecoderOptions){.max_packet_size = MQTT_REMAINING_LENGTH_MAX}, buf,
                    (size_t) n, (size_t) n / 2, false);
        assert(back.result == 0);
        /* type, topic and NUL, qos, id, size, payload */
        assert(back.log_size == 1 + ev->topic_len + 1 + 1 + 2 + 4 + ev->payload_size);
        assert(ev->payload_size == 0 || memcmp(back.log + back.log_size - ev->payload_size,
                                               run->payload, ev->payload_size) == 0);
        free(back.log);
        free(buf);

        if (run->topic[0] != '$')
                assert(mqtt_topic_matches("#", run->topic));
        assert(mqtt_topic_matches(run->topic, run->topic));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        MqttDecoderOptions options;
        Run whole, split;
        size_t at;

        if (size < 2)
                return 0;
        options = (MqttDecoderOptions){.max_packet_size = data[0] & 1 ? 64 : 0};
        at = data[1] % (size - 1);
        data += 2;
        size -= 2;
        run_decoder(&whole, &options, data, size, size, true);
        run_decoder(&split, &options, data, size, at, false);
        assert(whole.result == split.result);
        if (whole.result == 0) {
                assert(whole.log_size == split.log_size);
                assert(whole.log_size == 0 || memcmp(whole.log, split.log, whole.log_size) == 0);
        }
        free(whole.log);
        free(split.log);

        /* Topic helpers on the raw input as a filter and as a topic. */
        if (size > 0 && size <= 256 && !memchr(data, 0, size)) {
                char *s = strndup((const char *) data, size);

                assert(s);
                if (mqtt_topic_filter_is_valid(s, size)) {
                        (void) mqtt_topic_matches(s, "a/b/c");
                        (void) mqtt_topic_matches(s, "$SYS/x");
                        (void) mqtt_topic_matches(s, "/");
                }
                if (mqtt_topic_name_is_valid(s, size)) {
                        assert(mqtt_topic_filter_is_valid(s, size));
                        assert(mqtt_topic_matches(s, s));
                }
                free(s);
        }
        return 0;
}

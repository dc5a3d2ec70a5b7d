/* SPDX-License-Identifier: MIT */
/*
 * MQTT 3.1.1 client codec: packet encoders (length first, then the bytes),
 * the decoder (a state machine over the fixed header, the held body of small
 * packets, the PUBLISH variable header and the PUBLISH payload, which is
 * handed out in place) and topic matching. See mqtt-codec.h for the rules.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt-codec.h"
#include "utf8.h"
#include "util.h"

/* ---- Encoders ---- */

int mqtt_varint_write(uint8_t *buf, uint32_t value)
{
        int n = 0;

        assert(buf);
        if (value > MQTT_REMAINING_LENGTH_MAX)
                return -EINVAL;
        do {
                uint8_t b = value & 0x7f;

                value >>= 7;
                buf[n++] = (uint8_t) (b | (value ? 0x80 : 0));
        } while (value);
        return n;
}

static size_t varint_size(uint32_t value)
{
        return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}

/* A string field we may encode: length as given, UTF-8, no U+0000. */
static bool string_is_valid(const char *s, size_t len)
{
        return len <= MQTT_STRING_MAX && !memchr(s, 0, len) && utf8_is_valid(s, len);
}

static size_t put_u16(uint8_t *p, uint16_t v)
{
        be16_write(p, v);
        return 2;
}

static size_t put_field(uint8_t *p, const void *data, size_t len)
{
        be16_write(p, (uint16_t) len);
        if (len)
                memcpy(p + 2, data, len);
        return 2 + len;
}

/*
 * Writes the fixed header of a packet whose remaining length is known; returns
 * its size. Callers have checked that the whole packet fits.
 */
static size_t put_fixed_header(uint8_t *p, uint8_t first, uint32_t remaining)
{
        p[0] = first;
        return 1 + (size_t) mqtt_varint_write(p + 1, remaining);
}

/* Total packet length for a remaining length, or -EINVAL when that is too long. */
static int packet_length(uint64_t remaining)
{
        if (remaining > MQTT_REMAINING_LENGTH_MAX)
                return -EINVAL;
        return (int) (1 + varint_size((uint32_t) remaining) + remaining);
}

int mqtt_encode_connect(const MqttConnect *c, uint8_t *buf, size_t size)
{
        static const uint8_t protocol[] = {0, 4, 'M', 'Q', 'T', 'T', 4};
        size_t id_len, will_topic_len = 0, user_len = 0;
        uint64_t remaining;
        uint8_t flags = 0;
        size_t at;
        int total;

        assert(c);
        assert(buf || size == 0);
        id_len = c->client_id ? strlen(c->client_id) : 0;
        if (!string_is_valid(c->client_id ? c->client_id : "", id_len))
                return -EINVAL;
        if (id_len == 0 && !c->clean_session)
                return -EINVAL;
        remaining = sizeof(protocol) + 1 + 2 + 2 + id_len;
        if (c->will_topic) {
                will_topic_len = strlen(c->will_topic);
                if (!mqtt_topic_name_is_valid(c->will_topic, will_topic_len) || c->will_qos > 2 ||
                    c->will_message_size > MQTT_STRING_MAX ||
                    (c->will_message_size && !c->will_message))
                        return -EINVAL;
                flags |= 0x04 | (uint8_t) (c->will_qos << 3) | (c->will_retain ? 0x20 : 0);
                remaining += 2 + will_topic_len + 2 + c->will_message_size;
        } else if (c->will_message_size || c->will_qos || c->will_retain) {
                return -EINVAL;
        }
        if (c->username) {
                user_len = strlen(c->username);
                if (!string_is_valid(c->username, user_len))
                        return -EINVAL;
                flags |= 0x80;
                remaining += 2 + user_len;
        }
        if (c->password) {
                if (!c->username || c->password_size > MQTT_STRING_MAX)
                        return -EINVAL;
                flags |= 0x40;
                remaining += 2 + c->password_size;
        } else if (c->password_size) {
                return -EINVAL;
        }
        if (c->clean_session)
                flags |= 0x02;

        total = packet_length(remaining);
        if (total < 0 || (size_t) total > size)
                return total;
        at = put_fixed_header(buf, MQTT_CONNECT << 4, (uint32_t) remaining);
        memcpy(buf + at, protocol, sizeof(protocol));
        at += sizeof(protocol);
        buf[at++] = flags;
        at += put_u16(buf + at, c->keep_alive);
        at += put_field(buf + at, c->client_id, id_len);
        if (c->will_topic) {
                at += put_field(buf + at, c->will_topic, will_topic_len);
                at += put_field(buf + at, c->will_message, c->will_message_size);
        }
        if (c->username)
                at += put_field(buf + at, c->username, user_len);
        if (c->password)
                at += put_field(buf + at, c->password, c->password_size);
        assert(at == (size_t) total);
        return total;
}

/* Checks p; returns the header length (packet less payload) or -EINVAL. */
static int publish_check(const MqttPublish *p, uint64_t *ret_remaining)
{
        size_t topic_len;
        uint64_t remaining;

        assert(p);
        if (!p->topic)
                return -EINVAL;
        topic_len = strlen(p->topic);
        if (!mqtt_topic_name_is_valid(p->topic, topic_len) || p->qos > 2 ||
            (p->qos == 0) != (p->packet_id == 0) || (p->dup && p->qos == 0) ||
            (p->payload_size && !p->payload))
                return -EINVAL;
        remaining = 2 + topic_len + (p->qos ? 2 : 0) + (uint64_t) p->payload_size;
        if (remaining > MQTT_REMAINING_LENGTH_MAX)
                return -EINVAL;
        *ret_remaining = remaining;
        return (int) (1 + varint_size((uint32_t) remaining) + remaining - p->payload_size);
}

int mqtt_encode_publish_header(const MqttPublish *p, uint8_t *buf, size_t size)
{
        uint64_t remaining;
        size_t at;
        int header;

        assert(buf || size == 0);
        header = publish_check(p, &remaining);
        if (header < 0 || (size_t) header > size)
                return header;
        at = put_fixed_header(buf,
                              (uint8_t) (MQTT_PUBLISH << 4 | (p->dup ? 0x08 : 0) | p->qos << 1 |
                                         (p->retain ? 0x01 : 0)),
                              (uint32_t) remaining);
        at += put_field(buf + at, p->topic, strlen(p->topic));
        if (p->qos)
                at += put_u16(buf + at, p->packet_id);
        assert(at == (size_t) header);
        return header;
}

int mqtt_encode_publish(const MqttPublish *p, uint8_t *buf, size_t size)
{
        uint64_t remaining;
        int header, total;

        assert(buf || size == 0);
        header = publish_check(p, &remaining);
        if (header < 0)
                return header;
        total = header + (int) p->payload_size;
        if ((size_t) total > size)
                return total;
        (void) mqtt_encode_publish_header(p, buf, size);
        if (p->payload_size)
                memcpy(buf + header, p->payload, p->payload_size);
        return total;
}

/* The four packets that acknowledge a step of a PUBLISH: two bytes of packet id. */
static bool type_is_ack(MqttPacketType type)
{
        switch (type) {
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBCOMP:
        case MQTT_PUBREL:
                return true;
        case MQTT_CONNECT:
        case MQTT_CONNACK:
        case MQTT_PUBLISH:
        case MQTT_SUBSCRIBE:
        case MQTT_SUBACK:
        case MQTT_UNSUBSCRIBE:
        case MQTT_UNSUBACK:
        case MQTT_PINGREQ:
        case MQTT_PINGRESP:
        case MQTT_DISCONNECT:
                break;
        }
        return false; /* also for values outside the enum */
}

int mqtt_encode_ack(MqttPacketType type, uint16_t packet_id, uint8_t *buf, size_t size)
{
        assert(buf || size == 0);
        if (packet_id == 0 || !type_is_ack(type))
                return -EINVAL;
        if (size < 4)
                return 4;
        buf[0] = (uint8_t) (type << 4 | (type == MQTT_PUBREL ? 0x02 : 0));
        buf[1] = 2;
        be16_write(buf + 2, packet_id);
        return 4;
}

static int encode_filters(MqttPacketType type, uint16_t packet_id, const char *const *filters,
                          const uint8_t *qos, size_t n, uint8_t *buf, size_t size)
{
        uint64_t remaining = 2;
        size_t at;
        int total;

        assert(buf || size == 0);
        if (packet_id == 0 || n == 0 || n > MQTT_FILTERS_MAX || !filters)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                size_t len;

                if (!filters[i])
                        return -EINVAL;
                len = strlen(filters[i]);
                if (!mqtt_topic_filter_is_valid(filters[i], len) || (qos && qos[i] > 2))
                        return -EINVAL;
                remaining += 2 + len + (qos ? 1 : 0);
        }
        total = packet_length(remaining);
        if (total < 0 || (size_t) total > size)
                return total;
        at = put_fixed_header(buf, (uint8_t) (type << 4 | 0x02), (uint32_t) remaining);
        at += put_u16(buf + at, packet_id);
        for (size_t i = 0; i < n; i++) {
                at += put_field(buf + at, filters[i], strlen(filters[i]));
                if (qos)
                        buf[at++] = qos[i];
        }
        assert(at == (size_t) total);
        return total;
}

int mqtt_encode_subscribe(uint16_t packet_id, const char *const *filters, const uint8_t *qos,
                          size_t n, uint8_t *buf, size_t size)
{
        if (!qos)
                return -EINVAL;
        return encode_filters(MQTT_SUBSCRIBE, packet_id, filters, qos, n, buf, size);
}

int mqtt_encode_unsubscribe(uint16_t packet_id, const char *const *filters, size_t n, uint8_t *buf,
                            size_t size)
{
        return encode_filters(MQTT_UNSUBSCRIBE, packet_id, filters, NULL, n, buf, size);
}

static int encode_empty(MqttPacketType type, uint8_t *buf, size_t size)
{
        assert(buf || size == 0);
        if (size >= 2) {
                buf[0] = (uint8_t) (type << 4);
                buf[1] = 0;
        }
        return 2;
}

int mqtt_encode_pingreq(uint8_t *buf, size_t size)
{
        return encode_empty(MQTT_PINGREQ, buf, size);
}

int mqtt_encode_disconnect(uint8_t *buf, size_t size)
{
        return encode_empty(MQTT_DISCONNECT, buf, size);
}

/* ---- Decoder ---- */

typedef enum DecoderState {
        STATE_FIXED_HEADER,
        STATE_HELD_BODY,      /* a small packet, gathered whole */
        STATE_PUBLISH_HEADER, /* topic length, topic, packet id */
        STATE_PUBLISH_PAYLOAD,
        STATE_FAILED,
} DecoderState;

struct MqttDecoder {
        MqttDecoderOptions options;
        DecoderState state;

        /* Fixed header. */
        uint8_t first;
        unsigned varint_bytes;
        uint32_t remaining;

        /* PUBLISH. */
        size_t publish_header; /* bytes of the variable header, once known */
        uint32_t payload_size;
        uint32_t payload_done;
        bool first_pending;
        uint16_t packet_id;

        int error;
        const char *error_text;

        uint8_t *held; /* body of a small packet, or the PUBLISH variable header */
        size_t held_len;
        size_t held_allocated;
};

static int decoder_fail(MqttDecoder *d, int error, const char *text)
{
        d->state = STATE_FAILED;
        d->error = error;
        d->error_text = text;
        return error;
}

static int malformed(MqttDecoder *d, const char *text)
{
        return decoder_fail(d, -EBADMSG, text);
}

void mqtt_decoder_reset(MqttDecoder *d)
{
        assert(d);
        d->state = STATE_FIXED_HEADER;
        d->varint_bytes = 0;
        d->remaining = 0;
        d->held_len = 0;
        d->error = 0;
        d->error_text = NULL;
}

int mqtt_decoder_new(MqttDecoder **ret, const MqttDecoderOptions *options)
{
        MqttDecoder *d;

        assert(ret);
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (options)
                d->options = *options;
        if (d->options.max_packet_size == 0)
                d->options.max_packet_size = MQTT_DEFAULT_MAX_PACKET;
        mqtt_decoder_reset(d);
        *ret = d;
        return 0;
}

MqttDecoder *mqtt_decoder_free(MqttDecoder *d)
{
        if (!d)
                return NULL;
        free(d->held);
        return mfree(d);
}

bool mqtt_decoder_is_idle(const MqttDecoder *d)
{
        assert(d);
        return d->state == STATE_FIXED_HEADER && d->varint_bytes == 0;
}

const char *mqtt_decoder_get_error(const MqttDecoder *d)
{
        assert(d);
        return d->state == STATE_FAILED ? d->error_text : NULL;
}

static int held_reserve(MqttDecoder *d, size_t n)
{
        uint8_t *p;

        if (n <= d->held_allocated)
                return 0;
        p = realloc(d->held, n);
        if (!p)
                return decoder_fail(d, -ENOMEM, "out of memory");
        d->held = p;
        d->held_allocated = n;
        return 0;
}

/* Gathers into held until it has want bytes; 1 when it has, 0 when input ran out. */
static int held_collect(MqttDecoder *d, size_t want, const uint8_t *in, size_t size, size_t *used)
{
        size_t n = MIN(want - d->held_len, size - *used);

        assert(d->held_len <= want && want <= d->held_allocated);
        if (n)
                memcpy(d->held + d->held_len, in + *used, n);
        d->held_len += n;
        *used += n;
        return d->held_len == want;
}

/* The type and flags byte: what a server may send, with the flags it must use. */
static int check_first_byte(MqttDecoder *d, uint8_t b)
{
        unsigned flags = b & 0x0f;

        switch ((MqttPacketType) (b >> 4)) {
        case MQTT_PUBLISH:
                if ((flags & 0x06) == 0x06)
                        return malformed(d, "PUBLISH with QoS 3");
                if ((flags & 0x08) && !(flags & 0x06))
                        return malformed(d, "PUBLISH with DUP on QoS 0");
                return 0;
        case MQTT_PUBREL:
                return flags == 0x02 ? 0 : malformed(d, "PUBREL flags are not 0010");
        case MQTT_CONNACK:
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBCOMP:
        case MQTT_SUBACK:
        case MQTT_UNSUBACK:
        case MQTT_PINGRESP:
                return flags == 0 ? 0 : malformed(d, "reserved fixed header flags set");
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                return malformed(d, "packet type a server does not send");
        }
        return malformed(d, "reserved packet type");
}

/* The fixed header is complete: size checks, then on to the body. */
static int fixed_header_done(MqttDecoder *d)
{
        MqttPacketType type = (MqttPacketType) (d->first >> 4);
        uint32_t want = 0;

        if (d->remaining > d->options.max_packet_size)
                return decoder_fail(d, -EMSGSIZE, "packet larger than the limit");
        d->varint_bytes = 0;
        d->held_len = 0;
        switch (type) {
        case MQTT_PUBLISH:
                if (d->remaining < 2 + 1 + ((d->first & 0x06) ? 2u : 0u))
                        return malformed(d, "PUBLISH too short");
                d->publish_header = 0;
                d->state = STATE_PUBLISH_HEADER;
                return held_reserve(d, 2);
        case MQTT_CONNACK:
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBREL:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
                want = 2;
                break;
        case MQTT_PINGRESP:
                want = 0;
                break;
        case MQTT_SUBACK:
                if (d->remaining < 3)
                        return malformed(d, "SUBACK without a return code");
                if (d->remaining > MQTT_HELD_PACKET_MAX)
                        return decoder_fail(d, -EMSGSIZE, "SUBACK larger than the limit");
                want = d->remaining;
                break;
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                assert(false);
                return malformed(d, "packet type a server does not send");
        }
        if (d->remaining != want)
                return malformed(d, "remaining length does not fit the packet type");
        d->state = STATE_HELD_BODY;
        return held_reserve(d, MAX(want, 1u));
}

static int fixed_header_collect(MqttDecoder *d, const uint8_t *in, size_t size, size_t *used)
{
        while (*used < size) {
                uint8_t b = in[(*used)++];
                int r;

                if (d->varint_bytes == 0) {
                        r = check_first_byte(d, b);
                        if (r < 0)
                                return r;
                        d->first = b;
                        d->remaining = 0;
                        d->varint_bytes = 1;
                        continue;
                }
                d->remaining |= (uint32_t) (b & 0x7f) << (7 * (d->varint_bytes - 1));
                d->varint_bytes++;
                if (!(b & 0x80))
                        return fixed_header_done(d) < 0 ? d->error : 1;
                if (d->varint_bytes == 5)
                        return malformed(d, "remaining length longer than 4 bytes");
        }
        return 0;
}

static int held_body_done(MqttDecoder *d, MqttEvent *ev)
{
        MqttPacketType type = (MqttPacketType) (d->first >> 4);
        const uint8_t *b = d->held;

        *ev = (MqttEvent){.type = type};
        d->state = STATE_FIXED_HEADER;
        switch (type) {
        case MQTT_CONNACK:
                if (b[0] & 0xfe)
                        return malformed(d, "CONNACK reserved flags set");
                if (b[1] > MQTT_CONNACK_NOT_AUTHORIZED)
                        return malformed(d, "CONNACK return code unknown");
                if ((b[0] & 1) && b[1] != 0)
                        return malformed(d, "CONNACK session present with a refusal");
                ev->session_present = b[0] & 1;
                ev->return_code = b[1];
                return 1;
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBREL:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
        case MQTT_SUBACK:
                ev->packet_id = be16_read(b);
                if (ev->packet_id == 0)
                        return malformed(d, "packet identifier 0");
                if (type != MQTT_SUBACK)
                        return 1;
                for (size_t i = 2; i < d->remaining; i++)
                        if (b[i] > 2 && b[i] != MQTT_SUBACK_FAILURE)
                                return malformed(d, "SUBACK return code unknown");
                ev->return_codes = b + 2;
                ev->n_return_codes = d->remaining - 2;
                return 1;
        case MQTT_PINGRESP:
                return 1;
        case MQTT_PUBLISH:
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                break;
        }
        assert(false);
        return malformed(d, "internal error");
}

/* Gathers the PUBLISH variable header; 1 when complete and checked. */
static int publish_header_collect(MqttDecoder *d, const uint8_t *in, size_t size, size_t *used)
{
        bool has_id = d->first & 0x06;
        size_t topic_len;
        int r;

        if (d->publish_header == 0) {
                r = held_collect(d, 2, in, size, used);
                if (r <= 0)
                        return r;
                topic_len = be16_read(d->held);
                if (topic_len == 0)
                        return malformed(d, "PUBLISH with an empty topic");
                d->publish_header = 2 + topic_len + (has_id ? 2 : 0);
                if (d->publish_header > d->remaining)
                        return malformed(d, "PUBLISH topic longer than the packet");
                r = held_reserve(d, d->publish_header + 1);
                if (r < 0)
                        return r;
        }
        r = held_collect(d, d->publish_header, in, size, used);
        if (r <= 0)
                return r;
        topic_len = be16_read(d->held);
        if (!mqtt_topic_name_is_valid((const char *) d->held + 2, topic_len))
                return malformed(d, "PUBLISH topic name invalid");
        d->packet_id = has_id ? be16_read(d->held + 2 + topic_len) : 0;
        if (has_id && d->packet_id == 0)
                return malformed(d, "packet identifier 0");
        d->held[2 + topic_len] = 0;
        d->payload_size = d->remaining - (uint32_t) d->publish_header;
        d->payload_done = 0;
        d->first_pending = true;
        d->state = STATE_PUBLISH_PAYLOAD;
        return 1;
}

static int publish_piece(MqttDecoder *d, const uint8_t *in, size_t size, size_t *used,
                         MqttEvent *ev)
{
        size_t n = MIN((size_t) (d->payload_size - d->payload_done), size - *used);

        if (n == 0 && d->payload_done < d->payload_size)
                return 0;
        *ev = (MqttEvent){
            .type = MQTT_PUBLISH,
            .topic = (const char *) d->held + 2,
            .topic_len = be16_read(d->held),
            .qos = (d->first >> 1) & 3,
            .retain = d->first & 0x01,
            .dup = d->first & 0x08,
            .packet_id = d->packet_id,
            .payload_size = d->payload_size,
            .data = in + *used,
            .size = n,
            .first = d->first_pending,
        };
        d->first_pending = false;
        d->payload_done += (uint32_t) n;
        *used += n;
        ev->last = d->payload_done == d->payload_size;
        if (ev->last)
                d->state = STATE_FIXED_HEADER;
        return 1;
}

int mqtt_decoder_feed(MqttDecoder *d, const void *data, size_t size, size_t *ret_consumed,
                      MqttEvent *ret_event)
{
        static const uint8_t empty[1]; /* so that no arithmetic is done on NULL */
        const uint8_t *in = data ? data : empty;
        size_t used = 0;
        int r;

        assert(d);
        assert(data || size == 0);
        assert(ret_consumed);
        assert(ret_event);
        for (;;) {
                switch (d->state) {
                case STATE_FIXED_HEADER:
                        r = fixed_header_collect(d, in, size, &used);
                        if (r <= 0)
                                goto out;
                        continue;
                case STATE_HELD_BODY:
                        r = held_collect(d, d->remaining, in, size, &used);
                        if (r > 0)
                                r = held_body_done(d, ret_event);
                        goto out;
                case STATE_PUBLISH_HEADER:
                        r = publish_header_collect(d, in, size, &used);
                        if (r <= 0)
                                goto out;
                        continue;
                case STATE_PUBLISH_PAYLOAD:
                        r = publish_piece(d, in, size, &used, ret_event);
                        goto out;
                case STATE_FAILED:
                        r = d->error;
                        goto out;
                }
        }
out:
        *ret_consumed = used;
        return r;
}

/* ---- Topics ---- */

bool mqtt_topic_name_is_valid(const char *topic, size_t len)
{
        assert(topic || len == 0);
        return len > 0 && string_is_valid(topic, len) && !memchr(topic, '+', len) &&
               !memchr(topic, '#', len);
}

bool mqtt_topic_filter_is_valid(const char *filter, size_t len)
{
        size_t level = 0; /* start of the current level */

        assert(filter || len == 0);
        if (len == 0 || !string_is_valid(filter, len))
                return false;
        for (size_t i = 0; i <= len; i++) {
                size_t level_len;

                if (i < len && filter[i] != '/')
                        continue;
                level_len = i - level;
                for (size_t j = level; j < i; j++) {
                        if (filter[j] == '+' && level_len != 1)
                                return false;
                        if (filter[j] == '#' && (level_len != 1 || i != len))
                                return false;
                }
                level = i + 1;
        }
        return true;
}

bool mqtt_topic_matches(const char *filter, const char *topic)
{
        assert(filter);
        assert(topic);
        if ((filter[0] == '+' || filter[0] == '#') && topic[0] == '$')
                return false;
        for (;;) {
                size_t filter_level = strcspn(filter, "/");
                size_t topic_level = strcspn(topic, "/");

                if (filter_level == 1 && filter[0] == '#')
                        return true;
                if (!(filter_level == 1 && filter[0] == '+') &&
                    (filter_level != topic_level || memcmp(filter, topic, filter_level) != 0))
                        return false;
                filter += filter_level;
                topic += topic_level;
                if (!*filter)
                        return !*topic;
                if (!*topic)
                        return streq(filter, "/#"); /* "a/#" matches "a" */
                filter++;
                topic++;
        }
}

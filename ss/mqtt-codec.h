/* SPDX-License-Identifier: MIT */
/*
 * MQTT 3.1.1 (OASIS standard, 2014) client codec, pure code with no I/O:
 * encoders for the packets a client sends, an incremental decoder for the
 * packets a server sends, and topic filter matching. The mqtt protocol of the
 * stream layer sits on top of it.
 *
 * Encoders write into a caller's buffer like snprintf(): they return the
 * length of the packet (> 0) and write it only when it fits in size (call with
 * size 0 to learn the length), or -EINVAL when the fields break a rule of the
 * specification (named at each encoder).
 *
 * The decoder takes input in pieces split at any byte and reports one event
 * per call, so the caller can stop at any event and resume with the rest of
 * its input. PUBLISH payload is delivered zero-copy: pieces pointing into the
 * caller's input, first on the first piece and last on the last (a 0-byte
 * payload gives one empty piece with both), each with the topic and header
 * fields of the message, so payloads of any size up to the packet size limit
 * pass without being held. Every other packet is small and held whole.
 *
 * Decisions (also in the report to the issue):
 * - Remaining Length: at most 4 bytes; a 5th continuation byte is malformed.
 *   Non-minimal encodings (0x80 0x00 for 0) are accepted: 3.1.1 does not
 *   forbid them (MQTT 5 does).
 * - Malformed (-EBADMSG, the client must close the connection, MQTT 4.8):
 *   a packet type a server never sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
 *   PINGREQ, DISCONNECT, 0, 15), fixed header flags other than 0000 (0010 for
 *   PUBREL; for PUBLISH: QoS 3, or DUP on QoS 0), a remaining length that does
 *   not fit the packet's contents, a CONNACK with reserved flag bits, a return
 *   code above 5 or session present with a refusal, a zero packet identifier,
 *   a SUBACK return code other than 0, 1, 2 or 0x80, a topic name that is
 *   empty, not UTF-8, or holds U+0000, '+' or '#'.
 * - A packet whose remaining length is above max_packet_size is refused with
 *   -EMSGSIZE when its fixed header is complete, before its body arrives.
 * - Strings we encode must be UTF-8 without U+0000 (MQTT 1.5.3); we do not
 *   refuse the control characters the specification discourages.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest Remaining Length the 4-byte encoding can carry (MQTT 2.2.3). */
#define MQTT_REMAINING_LENGTH_MAX 268435455u
/* Longest UTF-8 string, topic or binary field: a 2-byte length prefix. */
#define MQTT_STRING_MAX 65535u
/* Default packet size limit of the decoder: Remaining Length of one packet. */
#define MQTT_DEFAULT_MAX_PACKET (16u * 1024 * 1024)
/*
 * Most bytes of a packet other than PUBLISH the decoder holds (SUBACK with
 * many return codes is the only large one): above it, -EMSGSIZE.
 */
#define MQTT_HELD_PACKET_MAX 4096u
/* Most topic filters in one SUBSCRIBE or UNSUBSCRIBE we encode. */
#define MQTT_FILTERS_MAX 64u

typedef enum MqttPacketType {
        MQTT_CONNECT = 1,
        MQTT_CONNACK = 2,
        MQTT_PUBLISH = 3,
        MQTT_PUBACK = 4,
        MQTT_PUBREC = 5,
        MQTT_PUBREL = 6,
        MQTT_PUBCOMP = 7,
        MQTT_SUBSCRIBE = 8,
        MQTT_SUBACK = 9,
        MQTT_UNSUBSCRIBE = 10,
        MQTT_UNSUBACK = 11,
        MQTT_PINGREQ = 12,
        MQTT_PINGRESP = 13,
        MQTT_DISCONNECT = 14,
} MqttPacketType;

/* CONNACK return codes (MQTT 3.2.2.3). */
typedef enum MqttConnackCode {
        MQTT_CONNACK_ACCEPTED = 0,
        MQTT_CONNACK_BAD_PROTOCOL = 1,
        MQTT_CONNACK_ID_REJECTED = 2,
        MQTT_CONNACK_SERVER_UNAVAILABLE = 3,
        MQTT_CONNACK_BAD_CREDENTIALS = 4,
        MQTT_CONNACK_NOT_AUTHORIZED = 5,
} MqttConnackCode;

/* A SUBACK return code for a refused subscription. */
#define MQTT_SUBACK_FAILURE 0x80

/* ---- Encoders ---- */

/*
 * Strings are NUL-terminated; NULL means absent. -EINVAL: an empty client id
 * without clean_session (MQTT-3.1.3-7), will fields without will_topic or a
 * will_topic that is not a valid topic name, will_qos above 2, a password
 * without a username (MQTT-3.1.2-22), a string not UTF-8 or with U+0000, or a
 * field longer than MQTT_STRING_MAX.
 */
typedef struct MqttConnect {
        const char *client_id; /* NULL or "" lets the server assign one */
        uint16_t keep_alive;   /* seconds, 0: off */
        bool clean_session;
        const char *will_topic; /* NULL: no will */
        const void *will_message;
        size_t will_message_size;
        uint8_t will_qos;
        bool will_retain;
        const char *username;
        const void *password; /* binary data */
        size_t password_size;
} MqttConnect;

int mqtt_encode_connect(const MqttConnect *c, uint8_t *buf, size_t size);

/*
 * -EINVAL: a topic that is not a valid topic name, qos above 2, a packet id of
 * 0 with QoS 1 or 2 or not 0 with QoS 0, dup with QoS 0, a packet past
 * MQTT_REMAINING_LENGTH_MAX.
 */
typedef struct MqttPublish {
        const char *topic;
        uint8_t qos;
        bool retain;
        bool dup;
        uint16_t packet_id;
        const void *payload;
        size_t payload_size;
} MqttPublish;

int mqtt_encode_publish(const MqttPublish *p, uint8_t *buf, size_t size);
/*
 * The packet without its payload (which still counts in its length), for a
 * caller that sends the payload from where it is.
 */
int mqtt_encode_publish_header(const MqttPublish *p, uint8_t *buf, size_t size);

/* PUBACK, PUBREC, PUBREL or PUBCOMP: -EINVAL for another type or id 0. */
int mqtt_encode_ack(MqttPacketType type, uint16_t packet_id, uint8_t *buf, size_t size);

/*
 * SUBSCRIBE with n filters (1..MQTT_FILTERS_MAX) and their QoS; UNSUBSCRIBE
 * with n filters (qos NULL). -EINVAL: packet id 0, no filter, a filter that is
 * not a valid topic filter, a qos above 2.
 */
int mqtt_encode_subscribe(uint16_t packet_id, const char *const *filters, const uint8_t *qos,
                          size_t n, uint8_t *buf, size_t size);
int mqtt_encode_unsubscribe(uint16_t packet_id, const char *const *filters, size_t n, uint8_t *buf,
                            size_t size);

/* PINGREQ and DISCONNECT: two bytes each. */
int mqtt_encode_pingreq(uint8_t *buf, size_t size);
int mqtt_encode_disconnect(uint8_t *buf, size_t size);

/*
 * Writes the Remaining Length varint of value into buf (4 bytes suffice);
 * returns its length, -EINVAL above MQTT_REMAINING_LENGTH_MAX.
 */
int mqtt_varint_write(uint8_t *buf, uint32_t value);

/* ---- Decoder ---- */

typedef struct MqttDecoder MqttDecoder;

typedef struct MqttDecoderOptions {
        /*
         * Largest Remaining Length accepted; 0: MQTT_DEFAULT_MAX_PACKET;
         * MQTT_REMAINING_LENGTH_MAX or more: whatever the encoding can carry.
         */
        uint32_t max_packet_size;
} MqttDecoderOptions;

/*
 * type is the packet type.
 * CONNACK: session_present, return_code.
 * PUBLISH: topic (NUL-terminated, topic_len bytes, inside the decoder), qos,
 *   retain, dup, packet_id (0 for QoS 0), payload_size (the whole payload),
 *   data/size (this piece, inside the caller's input), first, last.
 * PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: packet_id.
 * SUBACK: packet_id, return_codes/n_return_codes (inside the decoder).
 * PINGRESP: nothing more.
 * Pointers into the decoder stay valid until the next call on it.
 */
typedef struct MqttEvent {
        MqttPacketType type;
        bool session_present;
        uint8_t return_code;
        const char *topic;
        size_t topic_len;
        uint8_t qos;
        bool retain;
        bool dup;
        uint16_t packet_id;
        uint32_t payload_size;
        const uint8_t *data;
        size_t size;
        bool first;
        bool last;
        const uint8_t *return_codes;
        size_t n_return_codes;
} MqttEvent;

/* options may be NULL: the defaults. */
int mqtt_decoder_new(MqttDecoder **ret, const MqttDecoderOptions *options);
MqttDecoder *mqtt_decoder_free(MqttDecoder *d);
/* Forgets everything (the options stay): for a new connection. */
void mqtt_decoder_reset(MqttDecoder *d);

/*
 * Decodes from data and reports the next event. Returns 1 with *ret_event
 * filled in, or 0 when all the input was used and more is needed;
 * *ret_consumed says how much was used either way. Errors leave the decoder
 * failed (mqtt_decoder_get_error() names the fault):
 *   -EBADMSG   malformed packet (see the decisions above)
 *   -EMSGSIZE  a packet above max_packet_size or MQTT_HELD_PACKET_MAX
 */
int mqtt_decoder_feed(MqttDecoder *d, const void *data, size_t size, size_t *ret_consumed,
                      MqttEvent *ret_event);

/* Between packets: no partial packet is held. */
bool mqtt_decoder_is_idle(const MqttDecoder *d);
/* NULL while no error; else a short description of what was wrong. */
const char *mqtt_decoder_get_error(const MqttDecoder *d);

/* ---- Topics (MQTT 4.7) ---- */

/* A topic name one may PUBLISH to: not empty, UTF-8, no U+0000, '+' or '#'. */
bool mqtt_topic_name_is_valid(const char *topic, size_t len);
/*
 * A topic filter: not empty, UTF-8, no U+0000; '+' only as a whole level,
 * '#' only as the whole last level.
 */
bool mqtt_topic_filter_is_valid(const char *filter, size_t len);
/*
 * The topic name matches the filter (both assumed valid): '+' matches one
 * level, '#' the parent level and any below it; a filter that starts with a
 * wildcard does not match a topic that starts with '$' (MQTT-4.7.2-1).
 */
bool mqtt_topic_matches(const char *filter, const char *topic);

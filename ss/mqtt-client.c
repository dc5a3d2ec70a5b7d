/* SPDX-License-Identifier: MIT */
/*
 * The MQTT 3.1.1 client protocol of Secure Streams, on the codec of
 * mqtt-codec.c. A connection is one CONNECT and then messages both ways for
 * as long as it lives:
 *
 * - Handshake: CONNECT with the client id (the value of the stream's
 *   metadata "client_id" when the policy declares it and it is set, else one
 *   generated for the stream, "smd-" and 16 hex digits, kept across its
 *   reconnections so a session survives), mqtt_keep_alive, mqtt_clean_start
 *   and the will (mqtt_will_*). A CONNACK refusal is UNREACHABLE with
 *   SS_ACK_HANDSHAKE and the CONNACK return code in bits 8..15 of the ack
 *   (SS_ACK_MQTT_CONNACK_SHIFT); a connection that ends before the CONNACK is
 *   UNREACHABLE with SS_ACK_RESET. After the CONNACK we SUBSCRIBE to
 *   mqtt_subscribe (one filter, ${metadata}-expanded, at mqtt_qos) and publish
 *   the birth message (mqtt_birth_*); CONNECTED comes when the SUBACK (a
 *   refused filter: UNREACHABLE with SS_ACK_HANDSHAKE) and, for a QoS 1 birth,
 *   its PUBACK arrived. A QoS 0 birth needs no answer.
 * - rx: each incoming PUBLISH arrives as pieces, SS_FLAG_SOM on the first and
 *   SS_FLAG_EOM on the last (a 0-byte payload is one empty piece with both).
 *   When the policy declares a metadata entry named "topic", it holds the
 *   message's topic from the first piece on (ss_stream_get_metadata()). A
 *   persistent session (mqtt_clean_start false) may deliver messages before
 *   CONNECTED. QoS 1 messages are acknowledged after their last piece; QoS 2
 *   ones get PUBREC / PUBCOMP (delivered at least once).
 * - tx: one ss_stream_request_tx() sends one message: tx is called until it
 *   sets SS_FLAG_EOM, the pieces are gathered (at most MQTT_MESSAGE_MAX bytes;
 *   a larger message is not sent and gets QOS_NACK_REMOTE with ack 413) and
 *   published to mqtt_topic (${metadata}-expanded) with mqtt_retain at
 *   mqtt_qos; QoS 2 is sent as QoS 1. QoS 1: the PUBACK gives
 *   QOS_ACK_REMOTE. At most MQTT_INFLIGHT_MAX QoS 1 messages wait for their
 *   PUBACK; while that many wait, tx is not called. They are kept over
 *   reconnections and sent again with DUP once the next connection is
 *   CONNECTED; a message sent again more often than the retry entry's conceal
 *   count (at least once) is dropped with QOS_NACK_REMOTE (ack 0).
 * - Validity: svalidping idle seconds give a PINGREQ (the core's svalidhup
 *   hangs up when nothing answers). Independently, with mqtt_keep_alive set,
 *   a PINGREQ goes out every keep-alive/2 seconds in which we sent nothing
 *   (the broker closes a client silent for 1.5 keep-alives), and the
 *   connection is dropped when a PINGREQ is still unanswered at the second
 *   keep-alive/2 tick after it. A policy timeout_ms covers the attempt up to
 *   CONNECTED.
 * - Close: when the core closes the connection (destroy, DISCONNECT_ME,
 *   timeout, validity) a DISCONNECT goes out first if the socket takes it at
 *   once (the will is then not published). A dropped connection is a failure
 *   (retry with backoff even without nailed_up) when a tx request was waiting
 *   or QoS 1 messages are unacknowledged; the request is carried over.
 *
 * Memory per stream is bounded: MQTT_INFLIGHT_MAX messages of at most
 * MQTT_MESSAGE_MAX bytes, the message being gathered, an output queue of at
 * most MQTT_OUT_MAX bytes (a broker that sends but does not read is dropped),
 * the decoder's held packet (MQTT_HELD_PACKET_MAX) and one read buffer.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "mqtt-codec.h"
#include "stream-internal.h"

#define MQTT_INFLIGHT_MAX 16u
#define MQTT_MESSAGE_MAX  (256u * 1024)
/* tx is called only while less than this is queued for the socket. */
#define MQTT_OUT_HIGH (64u * 1024)
#define MQTT_OUT_MAX  (1024u * 1024)
/* The ack of QOS_NACK_REMOTE for a message above MQTT_MESSAGE_MAX (as HTTP's 413). */
#define MQTT_NACK_TOO_LARGE 413u

typedef struct MqttMessage {
        uint16_t packet_id;
        unsigned resends;
        uint8_t *payload;
        size_t size;
} MqttMessage;

struct MqttClient {
        /* Kept for the life of the stream. */
        MqttMessage inflight[MQTT_INFLIGHT_MAX];
        size_t n_inflight;
        uint16_t last_packet_id;
        char generated_id[24];
        uint8_t *message; /* being gathered from tx */
        size_t message_size;
        bool message_too_large;
        bool tx_wanted;

        /* One connection. */
        MqttDecoder *decoder;
        char *topic;
        char *subscribe;
        bool connack;
        bool connected; /* CONNECTED delivered on this connection */
        bool wait_suback, wait_birth;
        uint16_t subscribe_id, birth_id;
        bool ping_outstanding, ping_seen_at_tick, sent_since_tick;
        Timer keep_alive_timer;
        uint8_t *out;
        size_t out_start, out_end, out_alloc;
        uint8_t in[SS_RX_CHUNK];
};

static void message_free(MqttMessage *m)
{
        m->payload = mfree(m->payload);
}

/* Forgets the connection; the messages stay. */
static void connection_reset(MqttClient *m)
{
        m->decoder = mqtt_decoder_free(m->decoder);
        m->topic = mfree(m->topic);
        m->subscribe = mfree(m->subscribe);
        m->connack = m->connected = false;
        m->wait_suback = m->wait_birth = false;
        m->ping_outstanding = m->ping_seen_at_tick = m->sent_since_tick = false;
        timer_cancel(&m->keep_alive_timer);
        m->out = mfree(m->out);
        m->out_start = m->out_end = m->out_alloc = 0;
}

static MqttClient *mqtt_client_free(MqttClient *m)
{
        if (!m)
                return NULL;
        connection_reset(m);
        for (size_t i = 0; i < m->n_inflight; i++)
                message_free(&m->inflight[i]);
        free(m->message);
        return mfree(m);
}

static uint16_t next_packet_id(MqttClient *m)
{
        for (;;) {
                bool used = false;

                m->last_packet_id = m->last_packet_id == UINT16_MAX ? 1 : m->last_packet_id + 1;
                for (size_t i = 0; i < m->n_inflight; i++)
                        used = used || m->inflight[i].packet_id == m->last_packet_id;
                if (!used)
                        return m->last_packet_id;
        }
}

/* Appends a packet of n bytes, encoded by the caller into the returned room; NULL: too much. */
static uint8_t *out_room(MqttClient *m, size_t n)
{
        if (m->out_start == m->out_end)
                m->out_start = m->out_end = 0;
        if (m->out_end - m->out_start + n > MQTT_OUT_MAX)
                return NULL;
        if (m->out_end + n > m->out_alloc) {
                size_t pending = m->out_end - m->out_start, want;
                uint8_t *p;

                if (pending > 0)
                        memmove(m->out, m->out + m->out_start, pending);
                m->out_start = 0;
                m->out_end = pending;
                want = MAX(pending + n, (size_t) 4096);
                if (want > m->out_alloc) {
                        p = realloc(m->out, want);
                        if (!p)
                                return NULL;
                        m->out = p;
                        m->out_alloc = want;
                }
        }
        m->out_end += n;
        m->sent_since_tick = true;
        return m->out + m->out_end - n;
}

/* Queues the packet the encoder makes (called twice: length, then bytes). */
#define QUEUE(m, encode_call_buf_size)                                \
        ({                                                            \
                int _r;                                               \
                uint8_t *buf = NULL;                                  \
                size_t size = 0;                                      \
                _r = (encode_call_buf_size);                          \
                if (_r > 0) {                                         \
                        buf = out_room((m), (size_t) _r);             \
                        size = (size_t) _r;                           \
                        _r = buf ? (encode_call_buf_size) : -ENOBUFS; \
                }                                                     \
                _r;                                                   \
        })

static int queue_publish(MqttClient *m, const MqttPublish *p)
{
        uint8_t *buf = NULL;
        size_t size = 0;
        int n = mqtt_encode_publish(p, buf, size);

        if (n < 0)
                return n;
        buf = out_room(m, (size_t) n);
        if (!buf)
                return -ENOBUFS;
        return mqtt_encode_publish(p, buf, (size_t) n);
}

static int queue_ack(MqttClient *m, MqttPacketType type, uint16_t id)
{
        return QUEUE(m, mqtt_encode_ack(type, id, buf, size));
}

static int queue_pingreq(MqttClient *m)
{
        int r = QUEUE(m, mqtt_encode_pingreq(buf, size));

        if (r >= 0)
                m->ping_outstanding = true;
        return r;
}

static int expand(SsStream *s, const char *template, char **ret)
{
        if (!template) {
                *ret = NULL;
                return 0;
        }
        return strexp_expand_string(template, ss_stream_metadata_lookup, s, ret, NULL);
}

static void on_keep_alive(Timer *t, void *userdata);

static int mqtt_connection_new(SsStream *s, const char *host)
{
        MqttClient *m = s->mqtt;
        int r;

        if (!m) {
                m = calloc(1, sizeof(*m));
                if (!m)
                        return -ENOMEM;
                s->mqtt = m;
                timer_init(&m->keep_alive_timer, on_keep_alive, s);
                (void) snprintf(m->generated_id, sizeof(m->generated_id), "smd-%08x%08x",
                                (unsigned) s->context->random(s->context->random_userdata),
                                (unsigned) s->context->random(s->context->random_userdata));
        }
        connection_reset(m);
        r = mqtt_decoder_new(&m->decoder, NULL);
        if (r < 0)
                return r;
        r = expand(s, s->st->mqtt.topic, &m->topic);
        if (r < 0)
                return r;
        r = expand(s, s->st->mqtt.subscribe, &m->subscribe);
        if (r < 0)
                return r;
        if (m->subscribe && !m->subscribe[0])
                m->subscribe = mfree(m->subscribe);
        return 0;
}

static void mqtt_connection_free(SsStream *s)
{
        MqttClient *m = s->mqtt;

        if (!m)
                return;
        /* A request made for an attempt that never got through waits for the next one. */
        if (!m->connected && m->tx_wanted)
                s->tx_pending = true;
        m->tx_wanted = false;
        if (s->freeing)
                s->mqtt = mqtt_client_free(m);
        else
                connection_reset(m);
}

/* The connection is over: DISCONNECTED, and a retry when something was left undone. */
static SsResult connection_end(SsStream *s, MqttClient *m)
{
        bool failed = m->tx_wanted || m->n_inflight > 0;

        if (!m->connected)
                return ss_stream_handshake_failed(s, SS_ACK_RESET);
        if (m->tx_wanted)
                s->tx_pending = true;
        s->drop_ack = 0;
        return ss_stream_transaction_done(s, failed, 0);
}

/* Writes the queue; 1 when all went, 0 when the socket is full, or -errno. */
static int write_out(SsStream *s, MqttClient *m)
{
        while (m->out_start < m->out_end) {
                ssize_t n = s->context->ops->transport_write(s->transport, m->out + m->out_start,
                                                             m->out_end - m->out_start);

                if (n == -EAGAIN || n == 0)
                        return 0;
                if (n < 0)
                        return (int) n;
                m->out_start += (size_t) n;
        }
        m->out_start = m->out_end = 0;
        return 1;
}

static void inflight_remove(MqttClient *m, size_t i)
{
        message_free(&m->inflight[i]);
        memmove(&m->inflight[i], &m->inflight[i + 1],
                (m->n_inflight - i - 1) * sizeof(m->inflight[0]));
        m->n_inflight--;
}

static uint8_t publish_qos(uint8_t qos)
{
        return qos > 1 ? 1 : qos;
}

/* The message gathered from tx is complete: publish it. */
static SsResult publish_message(SsStream *s, MqttClient *m)
{
        uint8_t qos = publish_qos(s->st->mqtt.qos);
        MqttPublish p = {
            .topic = m->topic,
            .qos = qos,
            .retain = s->st->mqtt.retain,
            .payload = m->message,
            .payload_size = m->message_size,
        };
        bool too_large = m->message_too_large;

        m->message_too_large = false;
        if (too_large || !m->topic) {
                m->message = mfree(m->message);
                m->message_size = 0;
                return ss_stream_deliver_state(s, SS_STATE_QOS_NACK_REMOTE,
                                               too_large ? MQTT_NACK_TOO_LARGE : 0);
        }
        if (qos == 1)
                p.packet_id = next_packet_id(m);
        if (queue_publish(m, &p) < 0) {
                m->message = mfree(m->message);
                m->message_size = 0;
                return ss_stream_deliver_state(s, SS_STATE_QOS_NACK_REMOTE, 0);
        }
        if (qos == 1) {
                assert(m->n_inflight < MQTT_INFLIGHT_MAX);
                m->inflight[m->n_inflight++] = (MqttMessage){
                    .packet_id = p.packet_id,
                    .payload = TAKE_PTR(m->message),
                    .size = m->message_size,
                };
        } else
                m->message = mfree(m->message);
        m->message_size = 0;
        return SS_OK;
}

/* Pulls one piece of the next message from tx. */
static SsResult pull_tx(SsStream *s, MqttClient *m)
{
        uint8_t chunk[SS_TX_CHUNK];
        size_t len = sizeof(chunk);
        unsigned flags = 0;
        SsResult r;

        r = ss_stream_call_tx(s, chunk, &len, &flags);
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return r;
        if (r == SS_TX_DONT_SEND) {
                m->tx_wanted = false;
                return SS_OK;
        }
        if (len > sizeof(chunk))
                return SS_DISCONNECT_ME; /* the callback wrote past the buffer it was given */
        if (m->message_size + len > MQTT_MESSAGE_MAX)
                m->message_too_large = true;
        if (!m->message_too_large && len > 0) {
                uint8_t *p = realloc(m->message, m->message_size + len);

                if (!p)
                        m->message_too_large = true;
                else {
                        memcpy(p + m->message_size, chunk, len);
                        m->message = p;
                        m->message_size += len;
                }
        }
        if (!(flags & SS_FLAG_EOM))
                return SS_OK;
        m->tx_wanted = false;
        return publish_message(s, m);
}

static bool can_pull_tx(const MqttClient *m, uint8_t qos)
{
        return m->connected && m->tx_wanted && m->out_end - m->out_start < MQTT_OUT_HIGH &&
               (qos == 0 || m->n_inflight < MQTT_INFLIGHT_MAX);
}

static SsResult mqtt_on_writable(SsStream *s)
{
        MqttClient *m = s->mqtt;
        const SsTransportOps *ops = s->context->ops;

        if (!m || !s->transport || !m->decoder)
                return SS_OK;
        for (;;) {
                int k = write_out(s, m);

                if (k < 0)
                        return connection_end(s, m);
                if (k == 0) {
                        ops->transport_want_write(s->transport, true);
                        return SS_OK;
                }
                if (!can_pull_tx(m, publish_qos(s->st->mqtt.qos))) {
                        ops->transport_want_write(s->transport, false);
                        return SS_OK;
                }
                SsResult r = pull_tx(s, m);

                if (r != SS_OK || !m->decoder || !s->transport)
                        return r;
                if (m->tx_wanted && m->out_start == m->out_end) {
                        /* One piece per wake-up: let the loop run between pieces. */
                        ops->transport_want_write(s->transport, true);
                        return SS_OK;
                }
        }
}

static SsResult mqtt_start(SsStream *s)
{
        MqttClient *m = s->mqtt;
        const PolicyStreamtype *st = s->st;
        const char *client_id = NULL;
        _cleanup_free_ char *will_topic = NULL;
        int r;

        assert(m);
        (void) ss_stream_get_metadata(s, "client_id", &client_id, NULL);
        if (!client_id || !client_id[0])
                client_id = m->generated_id;
        if (expand(s, st->mqtt.will_topic, &will_topic) < 0)
                return ss_stream_handshake_failed(s, SS_ACK_CONFIG);

        MqttConnect c = {
            .client_id = client_id,
            .keep_alive = st->mqtt.keep_alive,
            .clean_session = st->mqtt.clean_start,
            .will_topic = will_topic && will_topic[0] ? will_topic : NULL,
            .will_message = st->mqtt.will_message,
            .will_message_size = strlen(strempty(st->mqtt.will_message)),
            .will_qos = st->mqtt.will_qos,
            .will_retain = st->mqtt.will_retain,
        };
        r = QUEUE(m, mqtt_encode_connect(&c, buf, size));
        if (r < 0)
                return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
        if (st->mqtt.keep_alive > 0)
                (void) scheduler_schedule_in(s->context->scheduler, &m->keep_alive_timer,
                                             ss_stream_timer_list(s),
                                             (uint64_t) st->mqtt.keep_alive * USEC_PER_SEC / 2);
        return mqtt_on_writable(s);
}

static void mqtt_request_tx(SsStream *s)
{
        MqttClient *m = s->mqtt;

        if (!m) {
                s->tx_pending = true;
                return;
        }
        m->tx_wanted = true;
        if (m->connected && s->transport)
                s->context->ops->transport_want_write(s->transport, true);
}

static SsResult mqtt_validity_ping(SsStream *s)
{
        MqttClient *m = s->mqtt;

        if (!m || !m->connack)
                return SS_OK;
        if (queue_pingreq(m) < 0)
                return connection_end(s, m);
        return mqtt_on_writable(s);
}

static void on_keep_alive(Timer *t, void *userdata)
{
        SsStream *s = userdata;
        MqttClient *m = s->mqtt;
        SsResult r = SS_OK;

        if (!m || !s->transport)
                return;
        if (m->ping_outstanding && m->ping_seen_at_tick) {
                /* A keep-alive/2 went by without a PINGRESP: the broker is gone. */
                ss_stream_dispatch(s, connection_end(s, m));
                return;
        }
        m->ping_seen_at_tick = m->ping_outstanding;
        if (m->connack && !m->sent_since_tick && !m->ping_outstanding) {
                if (queue_pingreq(m) < 0) {
                        ss_stream_dispatch(s, connection_end(s, m));
                        return;
                }
                m->ping_seen_at_tick = false;
        }
        m->sent_since_tick = false;
        (void) scheduler_schedule_in(s->context->scheduler, &m->keep_alive_timer,
                                     ss_stream_timer_list(s),
                                     (uint64_t) s->st->mqtt.keep_alive * USEC_PER_SEC / 2);
        if (m->out_start < m->out_end)
                r = mqtt_on_writable(s);
        ss_stream_dispatch(s, r);
}

/* Best effort, for a close the core decided: no callbacks, no waiting. */
static void mqtt_close(SsStream *s)
{
        MqttClient *m = s->mqtt;
        uint8_t packet[2];

        if (!m || !m->connack || !s->transport || m->out_start != m->out_end)
                return;
        if (mqtt_encode_disconnect(packet, sizeof(packet)) == sizeof(packet))
                (void) s->context->ops->transport_write(s->transport, packet, sizeof(packet));
}

/* The handshake is complete when nothing it waits for is missing: CONNECTED, then the resends. */
static SsResult maybe_connected(SsStream *s, MqttClient *m)
{
        unsigned limit = MAX(ss_retry_conceal(s->retry), 1u);
        SsResult r;

        if (m->connected || m->wait_suback || m->wait_birth)
                return SS_OK;
        m->connected = true;
        r = ss_stream_protocol_connected(s);
        if (r != SS_OK)
                return r;
        for (size_t i = 0; i < m->n_inflight;) {
                MqttMessage *msg = &m->inflight[i];

                if (++msg->resends > limit || !m->topic) {
                        inflight_remove(m, i);
                        r = ss_stream_deliver_state(s, SS_STATE_QOS_NACK_REMOTE, 0);
                        if (r != SS_OK)
                                return r;
                        continue;
                }
                if (queue_publish(m, &(MqttPublish){
                                         .topic = m->topic,
                                         .qos = 1,
                                         .retain = s->st->mqtt.retain,
                                         .dup = true,
                                         .packet_id = msg->packet_id,
                                         .payload = msg->payload,
                                         .payload_size = msg->size,
                                     }) < 0)
                        return connection_end(s, m);
                i++;
        }
        if (m->tx_wanted || m->out_start < m->out_end)
                s->context->ops->transport_want_write(s->transport, true);
        return SS_OK;
}

static SsResult on_connack(SsStream *s, MqttClient *m, const MqttEvent *ev)
{
        const PolicyStreamtype *st = s->st;

        if (m->connack)
                return connection_end(s, m);
        if (ev->return_code != MQTT_CONNACK_ACCEPTED)
                return ss_stream_handshake_failed(
                    s, SS_ACK_HANDSHAKE | (uint32_t) ev->return_code << SS_ACK_MQTT_CONNACK_SHIFT);
        m->connack = true;
        if (m->subscribe) {
                const char *filters[] = {m->subscribe};
                uint8_t qos[] = {publish_qos(st->mqtt.qos)};

                m->subscribe_id = next_packet_id(m);
                if (QUEUE(m, mqtt_encode_subscribe(m->subscribe_id, filters, qos, 1, buf, size)) <
                    0)
                        return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
                m->wait_suback = true;
        }
        if (st->mqtt.birth_topic && st->mqtt.birth_topic[0]) {
                _cleanup_free_ char *topic = NULL;
                MqttPublish p = {
                    .qos = publish_qos(st->mqtt.birth_qos),
                    .retain = st->mqtt.birth_retain,
                    .payload = st->mqtt.birth_message,
                    .payload_size = strlen(strempty(st->mqtt.birth_message)),
                };

                if (expand(s, st->mqtt.birth_topic, &topic) < 0)
                        return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
                p.topic = topic;
                if (p.qos == 1) {
                        p.packet_id = m->birth_id = next_packet_id(m);
                        m->wait_birth = true;
                }
                if (queue_publish(m, &p) < 0)
                        return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
        }
        return maybe_connected(s, m);
}

static SsResult on_puback(SsStream *s, MqttClient *m, uint16_t id)
{
        if (m->wait_birth && id == m->birth_id) {
                m->wait_birth = false;
                return maybe_connected(s, m);
        }
        for (size_t i = 0; i < m->n_inflight; i++)
                if (m->inflight[i].packet_id == id) {
                        inflight_remove(m, i);
                        if (m->tx_wanted)
                                s->context->ops->transport_want_write(s->transport, true);
                        if (!m->connected)
                                return SS_OK;
                        return ss_stream_deliver_state(s, SS_STATE_QOS_ACK_REMOTE, 0);
                }
        return SS_OK; /* an answer to a message we gave up on */
}

static SsResult on_publish(SsStream *s, MqttClient *m, const MqttEvent *ev)
{
        SsResult r;

        /* A topic metadata cannot hold (a newline, too long) reads as none, never a stale one. */
        if (ev->first && ss_stream_set_metadata(s, "topic", ev->topic, ev->topic_len) < 0)
                (void) ss_stream_set_metadata(s, "topic", NULL, 0);
        r = ss_stream_deliver_rx(s, ev->data, ev->size,
                                 (ev->first ? SS_FLAG_SOM : 0) | (ev->last ? SS_FLAG_EOM : 0));
        if (r != SS_OK || !ev->last || ev->qos == 0)
                return r;
        if (queue_ack(m, ev->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, ev->packet_id) < 0)
                return connection_end(s, m);
        return SS_OK;
}

/* Handles one packet; the connection may be gone afterwards (m->decoder NULL). */
static SsResult handle_event(SsStream *s, MqttClient *m, const MqttEvent *ev)
{
        if (!m->connack && ev->type != MQTT_CONNACK)
                return connection_end(s, m); /* MQTT-3.2.0-1: CONNACK first */
        switch (ev->type) {
        case MQTT_CONNACK:
                return on_connack(s, m, ev);
        case MQTT_PUBLISH:
                return on_publish(s, m, ev);
        case MQTT_PUBACK:
                return on_puback(s, m, ev->packet_id);
        case MQTT_PUBREL:
                if (queue_ack(m, MQTT_PUBCOMP, ev->packet_id) < 0)
                        return connection_end(s, m);
                return SS_OK;
        case MQTT_SUBACK:
                if (!m->wait_suback || ev->packet_id != m->subscribe_id)
                        return SS_OK;
                for (size_t i = 0; i < ev->n_return_codes; i++)
                        if (ev->return_codes[i] == MQTT_SUBACK_FAILURE)
                                return m->connected
                                           ? connection_end(s, m)
                                           : ss_stream_handshake_failed(s, SS_ACK_HANDSHAKE);
                m->wait_suback = false;
                return maybe_connected(s, m);
        case MQTT_PINGRESP:
                m->ping_outstanding = m->ping_seen_at_tick = false;
                return SS_OK;
        case MQTT_PUBREC:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
                return SS_OK; /* we send no QoS 2 and no UNSUBSCRIBE: stray, harmless */
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                return connection_end(s, m); /* the decoder refuses these already */
        }
        return SS_OK;
}

static SsResult mqtt_on_readable(SsStream *s)
{
        const SsTransportOps *ops = s->context->ops;
        bool noted = false;

        for (;;) {
                MqttClient *m = s->mqtt;
                size_t off = 0;
                ssize_t n;

                if (!m || !s->transport || !m->decoder)
                        return SS_OK;
                if (s->rx_paused) {
                        if (ops->transport_pause_read)
                                ops->transport_pause_read(s->transport, true);
                        return SS_OK;
                }
                n = ops->transport_read(s->transport, m->in, sizeof(m->in));
                if (n == -EAGAIN)
                        break;
                if (n <= 0)
                        return connection_end(s, m);
                /* Once per wake-up: the deadlines move with the loop's time anyway. */
                if (!noted) {
                        ss_stream_note_alive(s);
                        noted = true;
                }
                while (off < (size_t) n) {
                        MqttEvent ev;
                        size_t used = 0;
                        int k = mqtt_decoder_feed(m->decoder, m->in + off, (size_t) n - off, &used,
                                                  &ev);
                        SsResult r;

                        off += used;
                        if (k < 0)
                                return connection_end(s, m);
                        if (k == 0)
                                break;
                        r = handle_event(s, m, &ev);
                        /* The connection may be gone (s->mqtt reset): stop reading it. */
                        if (r != SS_OK || !s->transport || s->mqtt != m || !m->decoder)
                                return r;
                }
        }
        if (s->mqtt && s->mqtt->out_start < s->mqtt->out_end)
                return mqtt_on_writable(s);
        return SS_OK;
}

const SsProtocolOps ss_protocol_mqtt = {
    .name = "mqtt",
    .alpn = NULL,
    .handshake = true,
    .tx_in_connection = true,
    .connection_new = mqtt_connection_new,
    .connection_free = mqtt_connection_free,
    .start = mqtt_start,
    .on_readable = mqtt_on_readable,
    .on_writable = mqtt_on_writable,
    .request_tx = mqtt_request_tx,
    .validity_ping = mqtt_validity_ping,
    .close = mqtt_close,
};

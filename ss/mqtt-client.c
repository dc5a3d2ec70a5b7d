/* SPDX-License-Identifier: MIT */
/*
 * The MQTT 3.1.1 client protocol of Secure Streams, on the codec of
 * mqtt-codec.c. Streams share connections: an MqttConnection is one CONNECT
 * and then messages both ways for as long as it lives, and every mqtt stream
 * with the same key is attached to it.
 *
 * - Identity (the connection key): the expanded endpoint, port, tls, trust
 *   store credentials, unix socket, pinned address family and the client id.
 *   The client id is the value of the stream's metadata "client_id" when the
 *   policy declares it and it is set; streams without one share a generated
 *   id ("smd-" and 16 hex digits), made when the first of them connects and
 *   kept by each of them across reconnections (a new connection of the group
 *   reuses the id one of its streams remembers, so a session survives). Two
 *   streams naming the same client id on the same endpoint therefore share
 *   the connection instead of taking the session from each other (a broker
 *   closes the older of two connections with one id). The CONNECT fields
 *   (mqtt_keep_alive, mqtt_clean_start, the will) are those of the stream that
 *   opened the connection. At most MQTT_CONNECTION_STREAMS_MAX streams share
 *   one: further streams without an id get a connection (and id) of their
 *   own, further ones with the id fail with UNREACHABLE (SS_ACK_CONFIG).
 * - Handshake: CONNECT once per connection; a CONNACK refusal is UNREACHABLE
 *   for every attached stream with SS_ACK_HANDSHAKE and the CONNACK return code
 *   in bits 8..15 of the ack (SS_ACK_MQTT_CONNACK_SHIFT); a connection that
 *   ends before the CONNACK is UNREACHABLE with the transport's ack or
 *   SS_ACK_RESET. After the CONNACK (at once for a stream that joins a
 *   connection already up) each stream SUBSCRIBEs to its mqtt_subscribe (one
 *   filter, ${metadata}-expanded, at mqtt_qos; the highest mqtt_qos of the
 *   streams with the same filter) and publishes its birth message
 *   (mqtt_birth_*); its CONNECTED comes when its SUBACK (a refused filter:
 *   UNREACHABLE with SS_ACK_HANDSHAKE) and, for a QoS 1 birth, its PUBACK
 *   arrived. A QoS 0 birth needs no answer.
 * - rx: each incoming PUBLISH goes to every attached stream whose filter
 *   matches its topic ('+' and '#', mqtt_topic_matches()), as pieces,
 *   SS_FLAG_SOM on the first and SS_FLAG_EOM on the last (a 0-byte payload is
 *   one empty piece with both); a retained message sent because of a
 *   subscription (RETAIN set, MQTT-3.3.1-8) goes only to the stream whose
 *   SUBACK came last when its filter matches (the broker sends them after the
 *   SUBACK), else to every matching stream. A broker may send one copy per
 *   matching filter when filters of the connection overlap (MQTT-3.3.5-1
 *   allows it; mosquitto 2 sends one): the streams then see each copy. When
 *   the policy declares a metadata entry named "topic", it holds the message's
 *   topic from the first piece on (ss_stream_get_metadata()). A persistent
 *   session (mqtt_clean_start false) may deliver messages before CONNECTED.
 *   QoS 1 messages are acknowledged after their last piece; QoS 2 ones get
 *   PUBREC / PUBCOMP (delivered at least once). A stream whose rx is paused
 *   stops reading the whole connection (MQTT has no flow control per
 *   subscription).
 * - tx: one ss_stream_request_tx() sends one message: tx is called until it
 *   sets SS_FLAG_EOM, the pieces are gathered (at most MQTT_MESSAGE_MAX bytes;
 *   a larger message is not sent and gets QOS_NACK_REMOTE with ack 413) and
 *   published to mqtt_topic (${metadata}-expanded) with mqtt_retain at
 *   mqtt_qos; QoS 2 is sent as QoS 1. Streams take turns, one piece each.
 *   QoS 1: the PUBACK gives QOS_ACK_REMOTE to the stream that sent it (packet
 *   identifiers are unique on the connection). At most MQTT_INFLIGHT_MAX QoS 1
 *   messages of a stream wait for their PUBACK; while that many wait, its tx is
 *   not called. They are kept over reconnections and sent again with DUP once
 *   the stream is CONNECTED on the next connection (with a new identifier if
 *   another stream holds theirs there); a message sent again more often than
 *   the retry entry's conceal count (at least once) is dropped with
 *   QOS_NACK_REMOTE (ack 0).
 * - tx credit (ss_stream_tx_credit()): what the stream may hand over now
 *   without waiting: the room left in the connection's output queue below
 *   MQTT_OUT_HIGH (tx is pulled only below it), at most the room left in the
 *   message being gathered, and 0 while its QoS 1 window is full; -1 without a
 *   connection up for the stream (not CONNECTED).
 * - Validity: svalidping idle seconds give a PINGREQ on the connection (the
 *   core's svalidhup hangs each stream up when nothing arrives). Independently,
 *   with the connection's keep-alive set, a PINGREQ goes out every
 *   keep-alive/2 seconds in which nothing was sent (the broker closes a
 *   client silent for 1.5 keep-alives), and the connection is dropped when a
 *   PINGREQ is still unanswered at the second keep-alive/2 tick after it.
 * - Leaving: a stream that leaves the connection (destroyed, DISCONNECT_ME,
 *   timeout, validity) UNSUBSCRIBEs its filter unless another attached stream
 *   has the same one; the last stream to leave closes the connection with a
 *   DISCONNECT when the socket takes it at once (the will is then not
 *   published).
 * - Loss: a connection that breaks (read or write error, EOF, a malformed
 *   packet, the keep-alive) ends for every attached stream: DISCONNECTED and a
 *   retry with backoff (even without nailed_up) when it has a subscription, a
 *   waiting tx request or unacknowledged QoS 1 messages; the request is
 *   carried over. Their retries attach them to one new connection again,
 *   where each subscribes again and sends its QoS 1 messages again.
 *
 * Memory is bounded: per stream MQTT_INFLIGHT_MAX messages of at most
 * MQTT_MESSAGE_MAX bytes and the message being gathered; per connection
 * MQTT_CONNECTION_STREAMS_MAX streams, an output queue of at most MQTT_OUT_MAX
 * bytes (a broker that sends but does not read is dropped), the decoder's held
 * packet (MQTT_HELD_PACKET_MAX) and one read buffer.
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
/* Streams on one connection: with 17 packet identifiers each, well below 65535. */
#define MQTT_CONNECTION_STREAMS_MAX 1024u
/* Most tx pieces pulled in one writable wake-up (the loop runs between batches). */
#define MQTT_PULLS_PER_WAKEUP 256u

typedef struct MqttConnection MqttConnection;

typedef struct MqttMessage {
        uint16_t packet_id;
        unsigned resends;
        uint8_t *payload;
        size_t size;
} MqttMessage;

/* A stream's part: kept for the life of the stream (s->mqtt). */
struct MqttClient {
        SsStream *stream;
        MqttMessage inflight[MQTT_INFLIGHT_MAX];
        size_t n_inflight;
        char *host;      /* the expanded endpoint of the last connection */
        char *client_id; /* the id of the last connection, NULL before the first */
        bool id_generated;
        uint8_t *message; /* being gathered from tx */
        size_t message_size;
        bool message_too_large;
        bool tx_wanted;
        bool in_tx, tx_again; /* request_tx from inside tx */

        /* Attachment to a connection. */
        MqttConnection *conn;
        MqttClient *conn_prev, *conn_next;
        unsigned pass; /* conn_each() */
        char *topic;
        char *subscribe;
        bool started;   /* ss_stream_shared_connected() done on this connection */
        bool connected; /* CONNECTED delivered on this connection */
        bool wait_suback, wait_birth, subscribed;
        uint16_t subscribe_id, birth_id;
        uint64_t rx_serial; /* receives the PUBLISH with this serial */
};

struct MqttConnection {
        SsContext *context;
        unsigned refs; /* one while streams are attached, one per running handler */

        /* The key. */
        char *host;
        uint16_t port;
        bool tls, unix_socket;
        const SsTlsEntry *tls_entry;
        int family;
        char *client_id;
        bool explicit_id;

        /* CONNECT, from the stream that opened it. */
        uint16_t keep_alive;
        bool clean_session;
        char *will_topic;
        char *will_message;
        uint8_t will_qos;
        bool will_retain;
        TimerList timer_list;

        Transport *transport; /* NULL once closed */
        MqttClient *streams;
        size_t n_streams;
        unsigned pass;
        bool list_changed;
        bool dead;      /* broken: its streams are ended from the work timer */
        bool has_error; /* the transport failed with error */
        TransportError error;
        MqttDecoder *decoder;
        bool connack;
        bool reading, write_wanted; /* in on_conn_readable(), which writes at its end */
        bool ping_outstanding, ping_seen_at_tick, sent_since_tick;
        Timer keep_alive_timer;
        Timer work_timer; /* starts streams that joined, ends them when dead */
        uint16_t last_packet_id;
        uint64_t rx_serial;
        uint64_t retained_target; /* id of the stream of the last SUBACK */
        uint8_t *out;
        size_t out_start, out_end, out_alloc;
        uint8_t in[SS_RX_CHUNK];
};

static uint8_t publish_qos(uint8_t qos)
{
        return qos > 1 ? 1 : qos;
}

/* ---- connections ----------------------------------------------------------------------- */

static const SsTransportOps *conn_ops(MqttConnection *conn)
{
        return conn->context->ops;
}

static void conn_close_transport(MqttConnection *conn)
{
        if (conn->transport)
                conn->transport = conn_ops(conn)->transport_free(conn->transport);
        timer_cancel(&conn->keep_alive_timer);
        timer_cancel(&conn->work_timer);
        conn->out = mfree(conn->out);
        conn->out_start = conn->out_end = conn->out_alloc = 0;
}

static MqttConnection *conn_ref(MqttConnection *conn)
{
        conn->refs++;
        return conn;
}

static void conn_unref(MqttConnection *conn)
{
        assert(conn->refs > 0);
        if (--conn->refs > 0)
                return;
        assert(!conn->streams);
        conn_close_transport(conn);
        mqtt_decoder_free(conn->decoder);
        free(conn->host);
        free(conn->client_id);
        free(conn->will_topic);
        free(conn->will_message);
        free(conn);
}

/* Appends a packet of n bytes, encoded by the caller into the returned room; NULL: too much. */
static uint8_t *out_room(MqttConnection *conn, size_t n)
{
        if (conn->out_start == conn->out_end)
                conn->out_start = conn->out_end = 0;
        if (conn->out_end - conn->out_start + n > MQTT_OUT_MAX)
                return NULL;
        if (conn->out_end + n > conn->out_alloc) {
                size_t pending = conn->out_end - conn->out_start, want;
                uint8_t *p;

                if (pending > 0)
                        memmove(conn->out, conn->out + conn->out_start, pending);
                conn->out_start = 0;
                conn->out_end = pending;
                want = MAX(pending + n, (size_t) 4096);
                if (want > conn->out_alloc) {
                        p = realloc(conn->out, want);
                        if (!p)
                                return NULL;
                        conn->out = p;
                        conn->out_alloc = want;
                }
        }
        conn->out_end += n;
        conn->sent_since_tick = true;
        return conn->out + conn->out_end - n;
}

/* Queues the packet the encoder makes (called twice: length, then bytes). */
#define QUEUE(conn, encode_call_buf_size)                             \
        ({                                                            \
                int _r;                                               \
                uint8_t *buf = NULL;                                  \
                size_t size = 0;                                      \
                _r = (encode_call_buf_size);                          \
                if (_r > 0) {                                         \
                        buf = out_room((conn), (size_t) _r);          \
                        size = (size_t) _r;                           \
                        _r = buf ? (encode_call_buf_size) : -ENOBUFS; \
                }                                                     \
                _r;                                                   \
        })

static int queue_publish(MqttConnection *conn, const MqttPublish *p)
{
        return QUEUE(conn, mqtt_encode_publish(p, buf, size));
}

static int queue_ack(MqttConnection *conn, MqttPacketType type, uint16_t id)
{
        return QUEUE(conn, mqtt_encode_ack(type, id, buf, size));
}

static int queue_pingreq(MqttConnection *conn)
{
        int r = QUEUE(conn, mqtt_encode_pingreq(buf, size));

        if (r >= 0)
                conn->ping_outstanding = true;
        return r;
}

static bool conn_is_up(const MqttConnection *conn)
{
        return conn->transport && !conn->dead;
}

static void conn_want_write(MqttConnection *conn)
{
        if (!conn_is_up(conn))
                return;
        /* The read handler writes at its end anyway: no poll request (a syscall) for it. */
        if (conn->reading) {
                conn->write_wanted = true;
                return;
        }
        conn_ops(conn)->transport_want_write(conn->transport, true);
}

/*
 * The connection broke: no more I/O on it; its streams are ended from the
 * work timer (never from inside a stream's own call chain).
 */
static void conn_fail(MqttConnection *conn)
{
        if (conn->dead || !conn->transport)
                return;
        conn->dead = true;
        timer_cancel(&conn->keep_alive_timer);
        conn_ops(conn)->transport_want_write(conn->transport, false);
        if (conn_ops(conn)->transport_pause_read)
                conn_ops(conn)->transport_pause_read(conn->transport, true);
        (void) scheduler_schedule_at(conn->context->scheduler, &conn->work_timer, TIMER_LIST_NORMAL,
                                     0);
}

/* Whether packet identifier id is in use on the connection (skip: a stream not to look at). */
static bool packet_id_in_use(MqttConnection *conn, uint16_t id, const MqttClient *skip)
{
        for (MqttClient *x = conn->streams; x; x = x->conn_next) {
                if (x == skip)
                        continue;
                if ((x->wait_suback && x->subscribe_id == id) ||
                    (x->wait_birth && x->birth_id == id))
                        return true;
                for (size_t i = 0; i < x->n_inflight; i++)
                        if (x->inflight[i].packet_id == id)
                                return true;
        }
        return false;
}

static uint16_t next_packet_id(MqttConnection *conn)
{
        for (;;) {
                conn->last_packet_id =
                    conn->last_packet_id == UINT16_MAX ? 1 : conn->last_packet_id + 1;
                if (!packet_id_in_use(conn, conn->last_packet_id, NULL))
                        return conn->last_packet_id;
        }
}

/*
 * Runs fn once for every attached stream (want: which ones) and acts on its
 * result, robust against streams leaving meanwhile. The caller holds a
 * reference on conn.
 */
static void conn_each(MqttConnection *conn, bool (*want)(MqttClient *m, void *arg),
                      SsResult (*fn)(SsStream *s, MqttClient *m, void *arg), void *arg)
{
        unsigned pass = ++conn->pass;
        MqttClient *x = conn->streams;

        while (x) {
                SsStream *s = x->stream;

                if (x->pass == pass || (want && !want(x, arg))) {
                        x->pass = pass;
                        x = x->conn_next;
                        continue;
                }
                x->pass = pass;
                conn->list_changed = false;
                ss_stream_dispatch(s, fn(s, x, arg));
                x = conn->list_changed ? conn->streams : x->conn_next;
        }
}

/* Writes the queue; 1 when all went, 0 when the socket is full, or -errno. */
static int write_out(MqttConnection *conn)
{
        while (conn->out_start < conn->out_end) {
                ssize_t n = conn_ops(conn)->transport_write(
                    conn->transport, conn->out + conn->out_start, conn->out_end - conn->out_start);

                if (n == -EAGAIN || n == 0)
                        return 0;
                if (n < 0)
                        return (int) n;
                conn->out_start += (size_t) n;
        }
        conn->out_start = conn->out_end = 0;
        return 1;
}

/* The last stream left: a DISCONNECT when everything goes out at once, then close. */
static void conn_close(MqttConnection *conn)
{
        uint8_t packet[2];

        if (conn_is_up(conn) && conn->connack &&
            mqtt_encode_disconnect(packet, sizeof(packet)) == sizeof(packet) && write_out(conn) > 0)
                (void) conn_ops(conn)->transport_write(conn->transport, packet, sizeof(packet));
        conn_close_transport(conn);
}

static bool key_matches(const MqttConnection *conn, const SsStream *s, const char *host)
{
        return streq(conn->host, host) && conn->port == s->st->port && conn->tls == s->st->tls &&
               conn->unix_socket == s->st->unix_socket && conn->tls_entry == s->tls &&
               conn->family == s->family;
}

/* A connection up (or on its way) for the key, with the client id given, or without one. */
static MqttConnection *conn_find(SsStream *s, const char *host, const char *client_id)
{
        for (SsStream *x = s->context->streams; x; x = x->next) {
                MqttConnection *conn =
                    x->proto == &ss_protocol_mqtt && x->mqtt ? x->mqtt->conn : NULL;

                if (!conn || !conn_is_up(conn) || !key_matches(conn, s, host))
                        continue;
                if (client_id ? conn->explicit_id && streq(conn->client_id, client_id)
                              : !conn->explicit_id && conn->n_streams < MQTT_CONNECTION_STREAMS_MAX)
                        return conn;
        }
        return NULL;
}

/* The generated id a stream of the group remembers, unless a connection up uses it. */
static const char *remembered_id(SsStream *s, const char *host)
{
        if (s->mqtt && s->mqtt->id_generated && s->mqtt->client_id && s->mqtt->host &&
            streq(s->mqtt->host, host))
                return s->mqtt->client_id;
        for (SsStream *x = s->context->streams; x; x = x->next) {
                MqttClient *m = x->proto == &ss_protocol_mqtt ? x->mqtt : NULL;

                if (!m || x == s || m->conn || !m->client_id || !m->host || !streq(m->host, host) ||
                    x->st->port != s->st->port || x->st->tls != s->st->tls || x->tls != s->tls ||
                    x->family != s->family)
                        continue;
                /* Only generated ids: an explicit one is the stream's own. */
                if (m->id_generated)
                        return m->client_id;
        }
        return NULL;
}

static bool id_in_use(SsStream *s, const char *host, const char *id)
{
        for (SsStream *x = s->context->streams; x; x = x->next) {
                MqttConnection *conn =
                    x->proto == &ss_protocol_mqtt && x->mqtt ? x->mqtt->conn : NULL;

                if (conn && conn_is_up(conn) && key_matches(conn, s, host) &&
                    streq(conn->client_id, id))
                        return true;
        }
        return false;
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
static void on_conn_work(Timer *t, void *userdata);
static void on_conn_connected(Transport *t, void *userdata);
static void on_conn_readable(Transport *t, void *userdata);
static void on_conn_writable(Transport *t, void *userdata);
static void on_conn_failed(Transport *t, TransportError error, const char *detail, void *userdata);

static const TransportHandlers conn_handlers = {
    .connected = on_conn_connected,
    .readable = on_conn_readable,
    .writable = on_conn_writable,
    .failed = on_conn_failed,
};

/* A new connection for s's key, opened with s's CONNECT fields. */
static int conn_new(MqttConnection **ret, SsStream *s, const char *host, const char *client_id,
                    bool explicit_id)
{
        const PolicyStreamtype *st = s->st;
        MqttConnection *conn;
        int r;

        conn = calloc(1, sizeof(*conn));
        if (!conn)
                return -ENOMEM;
        conn->context = s->context;
        conn->refs = 1;
        conn->port = st->port;
        conn->tls = st->tls;
        conn->unix_socket = st->unix_socket;
        conn->tls_entry = s->tls;
        conn->family = s->family;
        conn->explicit_id = explicit_id;
        conn->keep_alive = st->mqtt.keep_alive;
        conn->clean_session = st->mqtt.clean_start;
        conn->will_qos = st->mqtt.will_qos;
        conn->will_retain = st->mqtt.will_retain;
        conn->timer_list = ss_stream_timer_list(s);
        timer_init(&conn->keep_alive_timer, on_keep_alive, conn);
        timer_init(&conn->work_timer, on_conn_work, conn);
        conn->host = strdup(host);
        conn->client_id = strdup(client_id);
        if (!conn->host || !conn->client_id) {
                r = -ENOMEM;
                goto fail;
        }
        r = expand(s, st->mqtt.will_topic, &conn->will_topic);
        if (r < 0)
                goto fail;
        if (st->mqtt.will_message) {
                conn->will_message = strdup(st->mqtt.will_message);
                if (!conn->will_message) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        r = mqtt_decoder_new(&conn->decoder, NULL);
        if (r < 0)
                goto fail;

        TransportOptions opts = {
            .host = host,
            .port = st->port,
            .unix_socket = st->unix_socket,
            .tls = st->tls,
            .tls_context = st->tls && s->tls ? s->tls->tls : NULL,
            .family = s->family,
        };
        r = conn_ops(conn)->transport_new(&conn->transport, s->context->event, s->context->resolver,
                                          &opts, &conn_handlers, conn);
        if (r < 0)
                goto fail;
        *ret = conn;
        return 0;
fail:
        conn_unref(conn);
        return r;
}

/* ---- a stream on a connection ---------------------------------------------------------- */

static void message_free(MqttMessage *m)
{
        m->payload = mfree(m->payload);
}

static void inflight_remove(MqttClient *m, size_t i)
{
        message_free(&m->inflight[i]);
        memmove(&m->inflight[i], &m->inflight[i + 1],
                (m->n_inflight - i - 1) * sizeof(m->inflight[0]));
        m->n_inflight--;
}

/* Whether another attached stream subscribes to filter. */
static bool filter_needed(MqttConnection *conn, const MqttClient *m, const char *filter)
{
        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                if (x != m && x->subscribe && streq(x->subscribe, filter) &&
                    (x->subscribed || x->wait_suback))
                        return true;
        return false;
}

/* Leaves the connection (unsubscribing); the last stream closes it. */
static void detach(SsStream *s, MqttClient *m)
{
        MqttConnection *conn = m->conn;

        if (!conn)
                return;
        if (m->conn_prev)
                m->conn_prev->conn_next = m->conn_next;
        else
                conn->streams = m->conn_next;
        if (m->conn_next)
                m->conn_next->conn_prev = m->conn_prev;
        m->conn_prev = m->conn_next = NULL;
        m->conn = NULL;
        conn->n_streams--;
        conn->list_changed = true;
        s->transport = NULL;

        if (conn->n_streams == 0) {
                conn_close(conn);
                conn_unref(conn);
                return;
        }
        if (conn_is_up(conn) && conn->connack && m->subscribe &&
            (m->subscribed || m->wait_suback) && !filter_needed(conn, m, m->subscribe)) {
                const char *filters[] = {m->subscribe};

                /* Best effort: a full queue gets the connection dropped anyway. */
                if (QUEUE(conn,
                          mqtt_encode_unsubscribe(next_packet_id(conn), filters, 1, buf, size)) < 0)
                        conn_fail(conn);
                else
                        conn_want_write(conn);
        }
}

/* Forgets the stream's connection; the messages stay. */
static void attachment_reset(MqttClient *m)
{
        m->topic = mfree(m->topic);
        m->subscribe = mfree(m->subscribe);
        m->started = m->connected = false;
        m->wait_suback = m->wait_birth = m->subscribed = false;
}

static MqttClient *mqtt_client_free(MqttClient *m)
{
        if (!m)
                return NULL;
        attachment_reset(m);
        for (size_t i = 0; i < m->n_inflight; i++)
                message_free(&m->inflight[i]);
        free(m->message);
        free(m->host);
        free(m->client_id);
        return mfree(m);
}

static int set_string(char **p, const char *value)
{
        char *copy;

        if (*p && streq(*p, value))
                return 0;
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*p);
        *p = copy;
        return 0;
}

static int mqtt_connection_new(SsStream *s, const char *host)
{
        MqttClient *m = s->mqtt;
        int r;

        if (!m) {
                m = calloc(1, sizeof(*m));
                if (!m)
                        return -ENOMEM;
                m->stream = s;
                s->mqtt = m;
        }
        assert(!m->conn);
        attachment_reset(m);
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

/* Joins the connection of s's key, opening it when there is none: 1 when it is up. */
static int mqtt_attach(SsStream *s, const char *host)
{
        MqttClient *m = s->mqtt;
        MqttConnection *conn;
        const char *client_id = NULL;
        char generated[24];
        int r;

        assert(m && !m->conn);
        (void) ss_stream_get_metadata(s, "client_id", &client_id, NULL);
        if (client_id && !client_id[0])
                client_id = NULL;
        conn = conn_find(s, host, client_id);
        if (conn && conn->n_streams >= MQTT_CONNECTION_STREAMS_MAX)
                return -EBUSY; /* the id is taken by a full connection */
        if (!conn) {
                const char *id = client_id;

                if (!id) {
                        id = remembered_id(s, host);
                        if (!id || id_in_use(s, host, id)) {
                                (void) snprintf(
                                    generated, sizeof(generated), "smd-%08x%08x",
                                    (unsigned) s->context->random(s->context->random_userdata),
                                    (unsigned) s->context->random(s->context->random_userdata));
                                id = generated;
                        }
                }
                r = conn_new(&conn, s, host, id, client_id != NULL);
                if (r < 0)
                        return r;
        }
        /* The connection's one reference for its streams is taken with its first stream. */
        r = set_string(&m->host, host);
        if (r >= 0)
                r = set_string(&m->client_id, conn->client_id);
        if (r < 0) {
                if (conn->n_streams == 0) {
                        conn_close(conn);
                        conn_unref(conn);
                }
                return r;
        }
        m->id_generated = !conn->explicit_id;
        m->pass = 0;
        m->conn = conn;
        m->conn_next = conn->streams;
        if (conn->streams)
                conn->streams->conn_prev = m;
        conn->streams = m;
        conn->n_streams++;
        conn->list_changed = true;
        s->transport = conn->transport;
        return conn->connack ? 1 : 0;
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
        detach(s, m);
        attachment_reset(m);
        if (s->freeing)
                s->mqtt = mqtt_client_free(m);
}

/* The connection is gone for s: DISCONNECTED, and a retry when the stream wants one. */
static SsResult stream_connection_lost(SsStream *s, MqttClient *m, uint32_t ack)
{
        bool failed = m->tx_wanted || m->n_inflight > 0 || m->subscribe;

        if (!m->connected)
                return ss_stream_handshake_failed(s, ack ? ack : SS_ACK_RESET);
        if (m->tx_wanted)
                s->tx_pending = true;
        s->drop_ack = 0;
        return ss_stream_transaction_done(s, failed, 0);
}

/* The message gathered from tx is complete: publish it. */
static SsResult publish_message(SsStream *s, MqttClient *m)
{
        MqttConnection *conn = m->conn;
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
        if (too_large || !m->topic || !conn) {
                m->message = mfree(m->message);
                m->message_size = 0;
                return ss_stream_deliver_state(s, SS_STATE_QOS_NACK_REMOTE,
                                               too_large ? MQTT_NACK_TOO_LARGE : 0);
        }
        if (qos == 1)
                p.packet_id = next_packet_id(conn);
        if (queue_publish(conn, &p) < 0) {
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

        m->in_tx = true;
        r = ss_stream_call_tx(s, chunk, &len, &flags);
        m->in_tx = false;
        if (r == SS_DESTROY_ME || r == SS_DISCONNECT_ME)
                return r;
        if (r == SS_TX_DONT_SEND) {
                m->tx_wanted = m->tx_again;
                m->tx_again = false;
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
        m->tx_wanted = m->tx_again;
        m->tx_again = false;
        return publish_message(s, m);
}

static bool can_pull_tx(const MqttClient *m, const MqttConnection *conn)
{
        return m->connected && m->tx_wanted && conn_is_up(conn) &&
               conn->out_end - conn->out_start < MQTT_OUT_HIGH &&
               (publish_qos(m->stream->st->mqtt.qos) == 0 || m->n_inflight < MQTT_INFLIGHT_MAX);
}

/* The handshake is complete when nothing it waits for is missing: CONNECTED, then the resends. */
static SsResult maybe_connected(SsStream *s, MqttClient *m)
{
        MqttConnection *conn = m->conn;
        unsigned limit = MAX(ss_retry_conceal(s->retry), 1u);
        SsResult r;

        if (!conn || m->connected || !m->started || m->wait_suback || m->wait_birth)
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
                        if (r != SS_OK || m->conn != conn)
                                return r;
                        continue;
                }
                /* Kept from another connection: its identifier may be taken here. */
                if (packet_id_in_use(conn, msg->packet_id, m))
                        msg->packet_id = next_packet_id(conn);
                if (queue_publish(conn, &(MqttPublish){
                                            .topic = m->topic,
                                            .qos = 1,
                                            .retain = s->st->mqtt.retain,
                                            .dup = true,
                                            .packet_id = msg->packet_id,
                                            .payload = msg->payload,
                                            .payload_size = msg->size,
                                        }) < 0) {
                        conn_fail(conn);
                        return SS_OK;
                }
                i++;
        }
        conn_want_write(conn);
        return SS_OK;
}

/* The connection is up for s (ss_stream_shared_connected()): subscribe, birth, CONNECTED. */
static SsResult mqtt_start(SsStream *s)
{
        MqttClient *m = s->mqtt;
        MqttConnection *conn = m ? m->conn : NULL;
        const PolicyStreamtype *st = s->st;

        if (!conn || !conn_is_up(conn) || !conn->connack || m->started)
                return SS_OK;
        m->started = true;
        if (m->subscribe) {
                const char *filters[] = {m->subscribe};
                uint8_t qos[] = {publish_qos(st->mqtt.qos)};

                /* The subscription replaces one with the same filter: keep its highest QoS. */
                for (MqttClient *x = conn->streams; x; x = x->conn_next)
                        if (x != m && x->subscribe && streq(x->subscribe, m->subscribe))
                                qos[0] = MAX(qos[0], publish_qos(x->stream->st->mqtt.qos));
                m->subscribe_id = next_packet_id(conn);
                if (QUEUE(conn,
                          mqtt_encode_subscribe(m->subscribe_id, filters, qos, 1, buf, size)) < 0)
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
                        p.packet_id = m->birth_id = next_packet_id(conn);
                        m->wait_birth = true;
                }
                if (queue_publish(conn, &p) < 0)
                        return ss_stream_handshake_failed(s, SS_ACK_CONFIG);
        }
        conn_want_write(conn);
        return maybe_connected(s, m);
}

static SsResult mqtt_on_readable(SsStream *s)
{
        return SS_OK; /* the connection's own handlers read */
}

static SsResult mqtt_on_writable(SsStream *s)
{
        return SS_OK;
}

static void mqtt_request_tx(SsStream *s)
{
        MqttClient *m = s->mqtt;

        if (!m) {
                s->tx_pending = true;
                return;
        }
        if (m->in_tx)
                m->tx_again = true;
        m->tx_wanted = true;
        if (m->connected && m->conn && !m->in_tx)
                conn_want_write(m->conn);
}

static SsResult mqtt_validity_ping(SsStream *s)
{
        MqttClient *m = s->mqtt;
        MqttConnection *conn = m ? m->conn : NULL;

        if (!conn || !conn_is_up(conn) || !conn->connack || conn->ping_outstanding)
                return SS_OK;
        if (queue_pingreq(conn) < 0)
                conn_fail(conn);
        else
                conn_want_write(conn);
        return SS_OK;
}

static int64_t mqtt_tx_credit(SsStream *s)
{
        MqttClient *m = s->mqtt;
        MqttConnection *conn = m ? m->conn : NULL;
        size_t queued;

        if (!conn || !conn_is_up(conn) || !m->connected)
                return -1;
        if (publish_qos(s->st->mqtt.qos) == 1 && m->n_inflight >= MQTT_INFLIGHT_MAX)
                return 0;
        queued = conn->out_end - conn->out_start;
        if (queued >= MQTT_OUT_HIGH || m->message_size >= MQTT_MESSAGE_MAX)
                return 0;
        return (int64_t) MIN(MQTT_OUT_HIGH - queued, MQTT_MESSAGE_MAX - m->message_size);
}

/* ---- the connection's events ----------------------------------------------------------- */

static bool want_unstarted(MqttClient *m, void *arg)
{
        return !m->started;
}

/* The connection is up for a stream that waited: the core's CONNECTED path, then mqtt_start(). */
static SsResult start_stream(SsStream *s, MqttClient *m, void *arg)
{
        ss_stream_transport_handlers.connected(s->transport, s); /* acts on its own result */
        return SS_OK;
}

static SsResult end_stream(SsStream *s, MqttClient *m, void *arg)
{
        MqttConnection *conn = arg;

        /* An attempt that waited for the transport: failed as the core fails one of its own. */
        if (s->phase == SS_PHASE_CONNECTING && conn->has_error) {
                ss_stream_transport_handlers.failed(s->transport, conn->error, "", s);
                return SS_OK;
        }
        return stream_connection_lost(s, m, SS_ACK_RESET);
}

static void on_conn_work(Timer *t, void *userdata)
{
        MqttConnection *conn = conn_ref(userdata);

        if (conn->dead)
                conn_each(conn, NULL, end_stream, conn);
        conn_unref(conn);
}

static void on_conn_connected(Transport *t, void *userdata)
{
        MqttConnection *conn = userdata;
        MqttConnect c = {
            .client_id = conn->client_id,
            .keep_alive = conn->keep_alive,
            .clean_session = conn->clean_session,
            .will_topic = conn->will_topic && conn->will_topic[0] ? conn->will_topic : NULL,
            .will_message = conn->will_message,
            .will_message_size = strlen(strempty(conn->will_message)),
            .will_qos = conn->will_qos,
            .will_retain = conn->will_retain,
        };

        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                ss_stream_note_alive(x->stream);
        if (QUEUE(conn, mqtt_encode_connect(&c, buf, size)) < 0) {
                conn_fail(conn);
                return;
        }
        if (conn->keep_alive > 0)
                (void) scheduler_schedule_in(conn->context->scheduler, &conn->keep_alive_timer,
                                             conn->timer_list,
                                             (uint64_t) conn->keep_alive * USEC_PER_SEC / 2);
        on_conn_writable(t, conn);
}

static void on_conn_failed(Transport *t, TransportError error, const char *detail, void *userdata)
{
        MqttConnection *conn = userdata;

        if (!conn->dead) {
                conn->has_error = true;
                conn->error = error;
        }
        conn_fail(conn);
}

static bool want_pull(MqttClient *m, void *arg)
{
        return can_pull_tx(m, m->conn);
}

static SsResult pull_stream(SsStream *s, MqttClient *m, void *arg)
{
        (*(unsigned *) arg)++;
        return pull_tx(s, m);
}

static void on_conn_writable(Transport *t, void *userdata)
{
        MqttConnection *conn = conn_ref(userdata);

        for (unsigned pulls = 0; conn_is_up(conn);) {
                unsigned pulled = 0;
                int k;

                /* Gather: one piece from each stream that may send, in turns. */
                while (pulls < MQTT_PULLS_PER_WAKEUP && conn_is_up(conn) &&
                       conn->out_end - conn->out_start < MQTT_OUT_HIGH) {
                        unsigned before = pulled;

                        conn_each(conn, want_pull, pull_stream, &pulled);
                        pulls += pulled - before;
                        if (pulled == before)
                                break;
                }
                if (!conn_is_up(conn))
                        break;
                k = write_out(conn);
                if (k < 0) {
                        conn_fail(conn);
                        break;
                }
                if (k == 0 || pulls >= MQTT_PULLS_PER_WAKEUP) {
                        /* The socket is full, or the loop's turn: come back. */
                        conn_ops(conn)->transport_want_write(conn->transport, true);
                        break;
                }
                if (pulled == 0) {
                        /* Everything went and nobody may send more. */
                        conn_ops(conn)->transport_want_write(conn->transport, false);
                        break;
                }
        }
        conn_unref(conn);
}

static void on_keep_alive(Timer *t, void *userdata)
{
        MqttConnection *conn = userdata;

        if (!conn_is_up(conn))
                return;
        if (conn->ping_outstanding && conn->ping_seen_at_tick) {
                /* A keep-alive/2 went by without a PINGRESP: the broker is gone. */
                conn_fail(conn);
                return;
        }
        conn->ping_seen_at_tick = conn->ping_outstanding;
        if (conn->connack && !conn->sent_since_tick && !conn->ping_outstanding) {
                if (queue_pingreq(conn) < 0) {
                        conn_fail(conn);
                        return;
                }
                conn->ping_seen_at_tick = false;
        }
        conn->sent_since_tick = false;
        (void) scheduler_schedule_in(conn->context->scheduler, &conn->keep_alive_timer,
                                     conn->timer_list,
                                     (uint64_t) conn->keep_alive * USEC_PER_SEC / 2);
        if (conn->out_start < conn->out_end)
                conn_want_write(conn);
}

static SsResult refuse_stream(SsStream *s, MqttClient *m, void *arg)
{
        return ss_stream_handshake_failed(s, *(uint32_t *) arg);
}

static void on_connack(MqttConnection *conn, const MqttEvent *ev)
{
        if (conn->connack) {
                conn_fail(conn);
                return;
        }
        if (ev->return_code != MQTT_CONNACK_ACCEPTED) {
                uint32_t ack = SS_ACK_HANDSHAKE | (uint32_t) ev->return_code
                                                      << SS_ACK_MQTT_CONNACK_SHIFT;

                conn_each(conn, NULL, refuse_stream, &ack);
                conn_fail(conn); /* streams that are left, if any */
                return;
        }
        conn->connack = true;
        conn_each(conn, want_unstarted, start_stream, NULL);
}

/* One packet for a stream, found by its packet identifier. */
typedef struct PacketArg {
        const MqttEvent *ev;
        bool found;
} PacketArg;

static bool want_puback(MqttClient *m, void *arg)
{
        PacketArg *a = arg;
        uint16_t id = a->ev->packet_id;

        if (a->found)
                return false;
        if (m->wait_birth && m->birth_id == id)
                return true;
        for (size_t i = 0; i < m->n_inflight; i++)
                if (m->inflight[i].packet_id == id)
                        return true;
        return false;
}

static SsResult on_puback(SsStream *s, MqttClient *m, void *arg)
{
        PacketArg *a = arg;
        uint16_t id = a->ev->packet_id;

        a->found = true;
        if (m->wait_birth && id == m->birth_id) {
                m->wait_birth = false;
                return maybe_connected(s, m);
        }
        for (size_t i = 0; i < m->n_inflight; i++)
                if (m->inflight[i].packet_id == id) {
                        inflight_remove(m, i);
                        if (m->tx_wanted && m->conn)
                                conn_want_write(m->conn);
                        if (!m->connected)
                                return SS_OK;
                        return ss_stream_deliver_state(s, SS_STATE_QOS_ACK_REMOTE, 0);
                }
        return SS_OK;
}

static bool want_suback(MqttClient *m, void *arg)
{
        PacketArg *a = arg;

        return !a->found && m->wait_suback && m->subscribe_id == a->ev->packet_id;
}

static SsResult on_suback(SsStream *s, MqttClient *m, void *arg)
{
        PacketArg *a = arg;

        a->found = true;
        for (size_t i = 0; i < a->ev->n_return_codes; i++)
                if (a->ev->return_codes[i] == MQTT_SUBACK_FAILURE) {
                        m->wait_suback = false;
                        return ss_stream_handshake_failed(s, SS_ACK_HANDSHAKE);
                }
        m->wait_suback = false;
        m->subscribed = true;
        if (m->conn)
                m->conn->retained_target = s->id;
        return maybe_connected(s, m);
}

/* The streams a PUBLISH goes to are marked at its first piece. */
static void publish_mark(MqttConnection *conn, const MqttEvent *ev)
{
        bool target = false;

        conn->rx_serial++;
        if (ev->retain)
                for (MqttClient *x = conn->streams; x; x = x->conn_next)
                        if (x->stream->id == conn->retained_target && x->subscribe &&
                            mqtt_topic_matches(x->subscribe, ev->topic)) {
                                x->rx_serial = conn->rx_serial;
                                target = true;
                        }
        if (target)
                return;
        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                if (x->subscribe && mqtt_topic_matches(x->subscribe, ev->topic))
                        x->rx_serial = conn->rx_serial;
}

static bool want_publish(MqttClient *m, void *arg)
{
        return m->conn && m->rx_serial == m->conn->rx_serial;
}

static SsResult deliver_publish(SsStream *s, MqttClient *m, void *arg)
{
        const MqttEvent *ev = arg;

        /* A topic metadata cannot hold (a newline, too long) reads as none, never a stale one. */
        if (ev->first && ss_stream_set_metadata(s, "topic", ev->topic, ev->topic_len) < 0)
                (void) ss_stream_set_metadata(s, "topic", NULL, 0);
        return ss_stream_deliver_rx(s, ev->data, ev->size,
                                    (ev->first ? SS_FLAG_SOM : 0) | (ev->last ? SS_FLAG_EOM : 0));
}

/* Handles one packet; the caller holds a reference. */
static void handle_event(MqttConnection *conn, const MqttEvent *ev)
{
        PacketArg a = {.ev = ev};

        if (!conn->connack && ev->type != MQTT_CONNACK) {
                conn_fail(conn); /* MQTT-3.2.0-1: CONNACK first */
                return;
        }
        switch (ev->type) {
        case MQTT_CONNACK:
                on_connack(conn, ev);
                return;
        case MQTT_PUBLISH:
                if (ev->first)
                        publish_mark(conn, ev);
                conn_each(conn, want_publish, deliver_publish, (void *) ev);
                if (ev->last && ev->qos > 0 && conn_is_up(conn) &&
                    queue_ack(conn, ev->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, ev->packet_id) < 0)
                        conn_fail(conn);
                return;
        case MQTT_PUBACK:
                conn_each(conn, want_puback, on_puback, &a);
                return;
        case MQTT_PUBREL:
                if (queue_ack(conn, MQTT_PUBCOMP, ev->packet_id) < 0)
                        conn_fail(conn);
                return;
        case MQTT_SUBACK:
                conn_each(conn, want_suback, on_suback, &a);
                return;
        case MQTT_PINGRESP:
                conn->ping_outstanding = conn->ping_seen_at_tick = false;
                return;
        case MQTT_PUBREC:
        case MQTT_PUBCOMP:
        case MQTT_UNSUBACK:
                return; /* we send no QoS 2; UNSUBACK needs no action */
        case MQTT_CONNECT:
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
        case MQTT_PINGREQ:
        case MQTT_DISCONNECT:
                conn_fail(conn); /* the decoder refuses these already */
                return;
        }
}

static bool conn_rx_paused(MqttConnection *conn)
{
        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                if (x->stream->rx_paused)
                        return true;
        return false;
}

static bool conn_may_pull(MqttConnection *conn)
{
        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                if (can_pull_tx(x, conn))
                        return true;
        return false;
}

static void on_conn_readable(Transport *t, void *userdata)
{
        MqttConnection *conn = conn_ref(userdata);
        const SsTransportOps *ops = conn_ops(conn);
        bool noted = false;

        if (conn->dead && conn->transport && ops->transport_pause_read)
                ops->transport_pause_read(conn->transport, true);
        conn->reading = true;
        conn->write_wanted = false;
        while (conn_is_up(conn)) {
                size_t off = 0;
                ssize_t n;

                if (conn_rx_paused(conn)) {
                        if (ops->transport_pause_read)
                                ops->transport_pause_read(conn->transport, true);
                        break;
                }
                n = ops->transport_read(conn->transport, conn->in, sizeof(conn->in));
                if (n == -EAGAIN)
                        break;
                if (n <= 0) {
                        conn_fail(conn);
                        break;
                }
                /* Once per wake-up: the deadlines move with the loop's time anyway. */
                if (!noted) {
                        for (MqttClient *x = conn->streams; x; x = x->conn_next)
                                ss_stream_note_alive(x->stream);
                        noted = true;
                }
                while (off < (size_t) n && conn_is_up(conn)) {
                        MqttEvent ev;
                        size_t used = 0;
                        int k = mqtt_decoder_feed(conn->decoder, conn->in + off, (size_t) n - off,
                                                  &used, &ev);

                        off += used;
                        if (k < 0) {
                                conn_fail(conn);
                                break;
                        }
                        if (k == 0)
                                break;
                        handle_event(conn, &ev);
                }
        }
        /* Answers, and messages the PUBACKs made room for, go out in this turn. */
        conn->reading = false;
        if (conn_is_up(conn) &&
            (conn->write_wanted || conn->out_start < conn->out_end || conn_may_pull(conn)))
                on_conn_writable(t, conn);
        conn_unref(conn);
}

const SsProtocolOps ss_protocol_mqtt = {
    .name = "mqtt",
    .alpn = NULL,
    .handshake = true,
    .tx_in_connection = true,
    .connection_new = mqtt_connection_new,
    .connection_free = mqtt_connection_free,
    .attach = mqtt_attach,
    .start = mqtt_start,
    .on_readable = mqtt_on_readable,
    .on_writable = mqtt_on_writable,
    .request_tx = mqtt_request_tx,
    .validity_ping = mqtt_validity_ping,
    .tx_credit = mqtt_tx_credit,
};

/* SPDX-License-Identifier: MIT */
/*
 * The bus model (see bus.h).
 *
 * Invariants:
 * - The queue is a singly linked list, oldest first. Each message counts in
 *   refs the participants that still have to read it.
 * - A participant's cursor is the oldest message it still has to read (one it
 *   matches and is counted in), or NULL when it has read everything. Every
 *   message from a cursor onwards is alive.
 * - Messages are freed from the head once their refs reach 0; that trimming is
 *   deferred to the start of the next bus call, so the view a pull returns stays
 *   valid until then.
 */
#include "bus.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

typedef struct Message {
        struct Message *next;
        uint32_t refs;
        uint32_t classes;
        uint64_t timestamp_us;
        uint16_t size;
        uint8_t payload[];
} Message;

typedef struct Retained {
        char topic[BUS_TOPIC_MAX + 1];
        Message *message; /* refs: the table plus every snapshot holding it */
} Retained;

struct Participant {
        Bus *bus;
        Participant *prev, *next;             /* all participants */
        Participant *ready_prev, *ready_next; /* waiting to be told they have mail */
        bool in_ready;
        uint32_t filter;
        Message *cursor;
        uint32_t backlog;
        uint32_t lost_pending;
        uint64_t lost_total;
        Message **snapshot; /* retained state taken at join */
        size_t n_snapshot, snapshot_pos;
        participant_ready_t ready;
        void *userdata;
};

struct Bus {
        sd_event *event;
        sd_event_source *defer_source;
        sd_event_source *ttl_source;
        BusLimits limits;
        bus_clock_t clock;
        void *clock_userdata;

        Message *head, *tail;
        bool trim_pending;

        Participant *participants;
        Participant *ready_head, *ready_tail;
        uint32_t n_ready;

        Retained *retained;
        size_t n_retained;

        BusStats stats;
};

void bus_limits_default(BusLimits *ret)
{
        *ret = (BusLimits){
            .queue_max_messages = BUS_DEFAULT_QUEUE_MAX_MESSAGES,
            .queue_max_bytes = BUS_DEFAULT_QUEUE_MAX_BYTES,
            .backlog_max = BUS_DEFAULT_BACKLOG_MAX,
            .ttl_usec = BUS_DEFAULT_TTL_USEC,
            .participants_max = BUS_DEFAULT_PARTICIPANTS_MAX,
            .retained_max = BUS_DEFAULT_RETAINED_MAX,
        };
}

static uint64_t clock_monotonic(void *userdata)
{
        return now_usec(CLOCK_MONOTONIC);
}

static uint64_t bus_now(Bus *bus)
{
        uint64_t t;

        /*
         * On the loop, the time sd-event took at this wakeup: reading the clock
         * once per message and per delivery was a quarter of the agent's time
         * under load. A test clock always wins.
         */
        if (bus->event && bus->clock == clock_monotonic &&
            sd_event_now(bus->event, CLOCK_MONOTONIC, &t) >= 0)
                return t;
        return bus->clock(bus->clock_userdata);
}

static Message *message_unref(Message *m)
{
        if (m && --m->refs == 0)
                free(m);
        return NULL;
}

static void ready_remove(Participant *p)
{
        Bus *bus = p->bus;

        if (!p->in_ready)
                return;
        if (p->ready_prev)
                p->ready_prev->ready_next = p->ready_next;
        else
                bus->ready_head = p->ready_next;
        if (p->ready_next)
                p->ready_next->ready_prev = p->ready_prev;
        else
                bus->ready_tail = p->ready_prev;
        p->ready_prev = p->ready_next = NULL;
        p->in_ready = false;
        bus->n_ready--;
}

static void ready_add(Participant *p)
{
        Bus *bus = p->bus;

        if (p->in_ready || !p->ready)
                return;
        p->in_ready = true;
        p->ready_next = NULL;
        p->ready_prev = bus->ready_tail;
        if (bus->ready_tail)
                bus->ready_tail->ready_next = p;
        else
                bus->ready_head = p;
        bus->ready_tail = p;
        bus->n_ready++;
        if (bus->defer_source)
                (void) sd_event_source_set_enabled(bus->defer_source, SD_EVENT_ON);
}

static int on_defer(sd_event_source *s, void *userdata)
{
        Bus *bus = userdata;
        uint32_t n = bus->n_ready;

        /* Only those queued now: a handler that sends wakes others next round. */
        while (n-- > 0 && bus->ready_head) {
                Participant *p = bus->ready_head;

                ready_remove(p);
                p->ready(p, p->userdata);
        }
        if (!bus->ready_head)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

/* Free read messages at the head of the queue. */
static void bus_trim(Bus *bus)
{
        bus->trim_pending = false;
        while (bus->head && bus->head->refs == 0) {
                Message *m = bus->head;

                bus->head = m->next;
                if (!bus->head)
                        bus->tail = NULL;
                bus->stats.queued_messages--;
                bus->stats.queued_bytes -= m->size;
                free(m);
        }
}

static bool matches(const Participant *p, const Message *m)
{
        return (m->classes & p->filter) != 0;
}

/* Move p's cursor past the message it points at, which p no longer needs. */
static void cursor_advance(Participant *p)
{
        Message *m = p->cursor;

        assert(m && m->refs > 0);
        m->refs--;
        p->backlog--;
        if (m->refs == 0)
                p->bus->trim_pending = true;
        for (m = m->next; m && !matches(p, m); m = m->next)
                ;
        p->cursor = m;
}

static void participant_lose_oldest(Participant *p)
{
        cursor_advance(p);
        p->lost_pending++;
        p->lost_total++;
        p->bus->stats.lost++;
}

/* Drop the head message for everyone who has not read it yet. */
static void bus_drop_head(Bus *bus)
{
        Message *head = bus->head;

        for (Participant *p = bus->participants; p; p = p->next)
                if (p->cursor == head)
                        participant_lose_oldest(p);
        assert(head->refs == 0);
        bus_trim(bus);
}

static void ttl_arm(Bus *bus);

/* Drop messages nobody read within the TTL, from the head. */
static void bus_expire(Bus *bus)
{
        uint64_t now = bus_now(bus);

        if (bus->trim_pending)
                bus_trim(bus);
        while (bus->head && bus->head->timestamp_us + bus->limits.ttl_usec <= now)
                bus_drop_head(bus);
        ttl_arm(bus);
}

static int on_ttl(sd_event_source *s, uint64_t usec, void *userdata)
{
        bus_expire(userdata);
        return 0;
}

static void ttl_arm(Bus *bus)
{
        if (!bus->ttl_source)
                return;
        if (!bus->head) {
                (void) sd_event_source_set_enabled(bus->ttl_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(bus->ttl_source,
                                        bus->head->timestamp_us + bus->limits.ttl_usec);
        (void) sd_event_source_set_enabled(bus->ttl_source, SD_EVENT_ONESHOT);
}

static void bus_enforce_budget(Bus *bus)
{
        while (bus->head && (bus->stats.queued_messages > bus->limits.queue_max_messages ||
                             bus->stats.queued_bytes > bus->limits.queue_max_bytes))
                bus_drop_head(bus);
}

int bus_new(Bus **ret, sd_event *event, const BusLimits *limits)
{
        Bus *bus;
        int r;

        assert(ret);
        bus = calloc(1, sizeof(*bus));
        if (!bus)
                return -ENOMEM;
        if (limits)
                bus->limits = *limits;
        else
                bus_limits_default(&bus->limits);
        bus->clock = clock_monotonic;
        if (event) {
                bus->event = sd_event_ref(event);
                r = sd_event_add_defer(event, &bus->defer_source, on_defer, bus);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_enabled(bus->defer_source, SD_EVENT_OFF);
                (void) sd_event_source_set_description(bus->defer_source, "bus-deliver");
                /* Deliver before reading more from publishers. */
                (void) sd_event_source_set_priority(bus->defer_source, SD_EVENT_PRIORITY_IMPORTANT);
                r = sd_event_add_time(event, &bus->ttl_source, CLOCK_MONOTONIC, 0, 10000, on_ttl,
                                      bus);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_enabled(bus->ttl_source, SD_EVENT_OFF);
                (void) sd_event_source_set_description(bus->ttl_source, "bus-ttl");
        }
        *ret = bus;
        return 0;
fail:
        bus_free(bus);
        return r;
}

Bus *bus_free(Bus *bus)
{
        if (!bus)
                return NULL;
        while (bus->participants)
                participant_free(bus->participants);
        for (size_t i = 0; i < bus->n_retained; i++)
                message_unref(bus->retained[i].message);
        free(bus->retained);
        bus_trim(bus);
        assert(!bus->head);
        sd_event_source_disable_unref(bus->defer_source);
        sd_event_source_disable_unref(bus->ttl_source);
        sd_event_unref(bus->event);
        free(bus);
        return NULL;
}

void bus_set_clock(Bus *bus, bus_clock_t clock, void *userdata)
{
        bus->clock = clock ? clock : clock_monotonic;
        bus->clock_userdata = userdata;
}

void bus_set_limits(Bus *bus, const BusLimits *limits)
{
        bus->limits = *limits;
        if (bus->trim_pending)
                bus_trim(bus);
        for (Participant *p = bus->participants; p; p = p->next)
                while (p->backlog > bus->limits.backlog_max)
                        participant_lose_oldest(p);
        bus_trim(bus);
        bus_enforce_budget(bus);
        ttl_arm(bus);
}

const BusLimits *bus_get_limits(Bus *bus)
{
        return &bus->limits;
}

void bus_get_stats(Bus *bus, BusStats *ret)
{
        *ret = bus->stats;
}

int bus_send(Bus *bus, uint32_t classes, const void *payload, size_t size)
{
        Message *m;
        uint32_t refs = 0;
        bool was_empty;

        if (classes == 0)
                return -EINVAL;
        if (size > MESSAGE_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (bus->trim_pending)
                bus_trim(bus);

        bus->stats.sent++;
        for (Participant *p = bus->participants; p; p = p->next)
                if (classes & p->filter)
                        refs++;
        if (refs == 0) {
                bus->stats.unheard++;
                return 1;
        }

        m = malloc(sizeof(*m) + size);
        if (!m)
                return -ENOMEM;
        *m = (Message){.refs = refs,
                       .classes = classes,
                       .timestamp_us = bus_now(bus),
                       .size = (uint16_t) size};
        if (size)
                memcpy(m->payload, payload, size);
        was_empty = !bus->head;
        if (bus->tail)
                bus->tail->next = m;
        else
                bus->head = m;
        bus->tail = m;
        bus->stats.queued_messages++;
        bus->stats.queued_bytes += (uint32_t) size;

        for (Participant *p = bus->participants; p; p = p->next) {
                if (!(classes & p->filter))
                        continue;
                if (!p->cursor)
                        p->cursor = m;
                p->backlog++;
                if (p->backlog > bus->limits.backlog_max)
                        participant_lose_oldest(p);
                ready_add(p);
        }
        if (bus->trim_pending)
                bus_trim(bus);
        bus_enforce_budget(bus);
        if (was_empty)
                ttl_arm(bus);
        return 0;
}

static Retained *retained_find(Bus *bus, const char *topic)
{
        for (size_t i = 0; i < bus->n_retained; i++)
                if (streq(bus->retained[i].topic, topic))
                        return &bus->retained[i];
        return NULL;
}

int bus_send_retained(Bus *bus, const char *topic, uint32_t classes, const void *payload,
                      size_t size)
{
        Retained *slot;
        Message *m;

        if (!topic || strlen(topic) > BUS_TOPIC_MAX)
                return -EINVAL;
        slot = retained_find(bus, topic);
        if (!payload) {
                if (slot) {
                        message_unref(slot->message);
                        *slot = bus->retained[--bus->n_retained];
                        bus->stats.retained = (uint32_t) bus->n_retained;
                }
                return 0;
        }
        if (classes == 0)
                return -EINVAL;
        if (size > MESSAGE_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (!slot) {
                Retained *a;

                if (bus->n_retained >= bus->limits.retained_max)
                        return -ENOSPC;
                a = realloc(bus->retained, (bus->n_retained + 1) * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                bus->retained = a;
                slot = &a[bus->n_retained++];
                *slot = (Retained){};
                strcpy(slot->topic, topic);
                bus->stats.retained = (uint32_t) bus->n_retained;
        }
        m = malloc(sizeof(*m) + size);
        if (!m)
                return -ENOMEM;
        *m = (Message){.refs = 1, .classes = classes, .size = (uint16_t) size};
        memcpy(m->payload, payload, size);
        message_unref(slot->message);
        slot->message = m;
        m->timestamp_us = bus_now(bus);
        return bus_send(bus, classes, payload, size);
}

int participant_new(Participant **ret, Bus *bus, uint32_t filter, participant_ready_t ready,
                    void *userdata)
{
        Participant *p;
        size_t n = 0;

        if (bus->stats.participants >= bus->limits.participants_max)
                return -EUSERS;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->bus = bus;
        p->filter = filter;
        p->ready = ready;
        p->userdata = userdata;

        for (size_t i = 0; i < bus->n_retained; i++)
                if (bus->retained[i].message->classes & filter)
                        n++;
        if (n > 0) {
                p->snapshot = calloc(n, sizeof(Message *));
                if (!p->snapshot) {
                        free(p);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < bus->n_retained; i++) {
                        Message *m = bus->retained[i].message;
                        if (m->classes & filter) {
                                m->refs++;
                                p->snapshot[p->n_snapshot++] = m;
                        }
                }
        }

        p->next = bus->participants;
        if (p->next)
                p->next->prev = p;
        bus->participants = p;
        bus->stats.participants++;
        if (p->n_snapshot)
                ready_add(p);
        *ret = p;
        return 0;
}

Participant *participant_free(Participant *p)
{
        Bus *bus;

        if (!p)
                return NULL;
        bus = p->bus;
        while (p->cursor)
                cursor_advance(p);
        for (size_t i = 0; i < p->n_snapshot; i++)
                message_unref(p->snapshot[i]);
        free(p->snapshot);
        ready_remove(p);
        if (p->prev)
                p->prev->next = p->next;
        else
                bus->participants = p->next;
        if (p->next)
                p->next->prev = p->prev;
        bus->stats.participants--;
        free(p);
        bus_trim(bus);
        ttl_arm(bus);
        return NULL;
}

uint32_t participant_get_filter(Participant *p)
{
        return p->filter;
}

uint32_t participant_backlog(Participant *p)
{
        return p->backlog + (uint32_t) (p->n_snapshot - p->snapshot_pos);
}

int participant_pull(Participant *p, BusDelivery *ret)
{
        Bus *bus = p->bus;
        uint64_t now;

        if (bus->trim_pending)
                bus_trim(bus);

        if (p->snapshot_pos < p->n_snapshot) {
                Message *m = p->snapshot[p->snapshot_pos++];

                /* The snapshot entry stays referenced until the participant is freed. */
                *ret = (BusDelivery){.classes = m->classes,
                                     .timestamp_us = m->timestamp_us,
                                     .payload = m->payload,
                                     .size = m->size,
                                     .retained = true};
                bus->stats.delivered++;
                return 1;
        }

        now = bus_now(bus);
        while (p->cursor) {
                Message *m = p->cursor;

                if (m->timestamp_us + bus->limits.ttl_usec <= now) {
                        participant_lose_oldest(p);
                        continue;
                }
                cursor_advance(p);
                *ret = (BusDelivery){.classes = m->classes,
                                     .timestamp_us = m->timestamp_us,
                                     .payload = m->payload,
                                     .size = m->size,
                                     .lost = p->lost_pending};
                p->lost_pending = 0;
                bus->stats.delivered++;
                return 1;
        }
        return 0;
}

uint64_t participant_get_lost_total(Participant *p)
{
        return p->lost_total;
}

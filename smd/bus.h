/* SPDX-License-Identifier: MIT */
/*
 * The system message bus model: participants with class filters, one shared
 * queue, in-order delivery, bounded memory, TTL, and retained state topics.
 *
 * A message is queued once; each participant keeps a cursor into the queue and
 * the message is freed when every participant it was meant for has read it (or
 * lost it). Sending never delivers: it wakes the participants from a deferred
 * event, and each one pulls as many messages as it can take (so a socket writer
 * can batch many frames into one write). A participant that falls behind loses
 * its oldest unread messages, never anyone else's, and the next message it pulls
 * carries the count.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct Bus Bus;
typedef struct Participant Participant;

typedef struct BusLimits {
        uint32_t queue_max_messages; /* global: messages held for anyone */
        uint32_t queue_max_bytes;    /* global: payload bytes held for anyone */
        uint32_t backlog_max;        /* per participant: unread messages */
        uint64_t ttl_usec;           /* unread messages older than this are dropped */
        uint32_t participants_max;
        uint32_t retained_max; /* retained topics */
} BusLimits;

#define BUS_DEFAULT_QUEUE_MAX_MESSAGES 8192u
#define BUS_DEFAULT_QUEUE_MAX_BYTES    (2u * 1024u * 1024u)
#define BUS_DEFAULT_BACKLOG_MAX        1024u
#define BUS_DEFAULT_TTL_USEC           (2 * USEC_PER_SEC)
#define BUS_DEFAULT_PARTICIPANTS_MAX   4096u
#define BUS_DEFAULT_RETAINED_MAX       256u
#define BUS_TOPIC_MAX                  63u

typedef struct BusStats {
        uint64_t sent;      /* accepted by bus_send() */
        uint64_t unheard;   /* sent with no participant listening: never queued */
        uint64_t delivered; /* pulled by participants */
        uint64_t lost;      /* dropped for a participant: backlog, budget or TTL */
        uint32_t queued_messages;
        uint32_t queued_bytes;
        uint32_t participants;
        uint32_t retained;
} BusStats;

/* A pulled message: valid until the next pull or until the participant is freed. */
typedef struct BusDelivery {
        uint32_t classes;
        uint64_t timestamp_us;
        const uint8_t *payload;
        size_t size;
        uint32_t lost; /* messages lost just before this one */
        bool retained; /* from the retained-state snapshot taken at join */
} BusDelivery;

/* Called (from a deferred event, never inside bus_send) when pulls will yield. */
typedef void (*participant_ready_t)(Participant *p, void *userdata);
typedef uint64_t (*bus_clock_t)(void *userdata);

void bus_limits_default(BusLimits *ret);

int bus_new(Bus **ret, sd_event *event, const BusLimits *limits);
Bus *bus_free(Bus *bus);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bus *, bus_free);

/* Replace the clock (CLOCK_MONOTONIC µs by default); for tests. */
void bus_set_clock(Bus *bus, bus_clock_t clock, void *userdata);
/* Apply new limits; queues shrink to them at once. */
void bus_set_limits(Bus *bus, const BusLimits *limits);
const BusLimits *bus_get_limits(Bus *bus);
void bus_get_stats(Bus *bus, BusStats *ret);

/*
 * Queue a message for every participant whose filter matches. Returns 0 when
 * queued, 1 when nobody listens (nothing queued), -EMSGSIZE for an oversized
 * payload, -EINVAL for no class. The timestamp is stamped here.
 */
int bus_send(Bus *bus, uint32_t classes, const void *payload, size_t size);
/*
 * The same, and keep the message as the retained state of topic: participants
 * that join later get the last message of each topic first. A NULL payload
 * clears the topic without sending.
 */
int bus_send_retained(Bus *bus, const char *topic, uint32_t classes, const void *payload,
                      size_t size);

/* Join with a filter; the participant gets matching retained state, then new messages. */
int participant_new(Participant **ret, Bus *bus, uint32_t filter, participant_ready_t ready,
                    void *userdata);
Participant *participant_free(Participant *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Participant *, participant_free);

uint32_t participant_get_filter(Participant *p);
/* Returns 1 with *ret filled, 0 when nothing is waiting. */
int participant_pull(Participant *p, BusDelivery *ret);
/* Messages this participant lost since it joined. */
uint64_t participant_get_lost_total(Participant *p);
/* Unread messages waiting for this participant. */
uint32_t participant_backlog(Participant *p);

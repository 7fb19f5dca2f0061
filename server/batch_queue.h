/*
 * batch_queue.h - a bounded queue of payload copies between the MQTT thread
 * and one writer thread that takes them in batches: the mechanism shared by
 * the telemetry ingest (telemetry.h) and the report ingest (report_queue.h).
 *
 * batch_queue_push() copies a payload into a ring bounded in items and in
 * bytes, under a mutex, without blocking on anything else. The writer takes
 * up to cfg.batch_max items (in queue order) when the queue holds a full
 * batch, when its oldest item has waited cfg.batch_ms, when a flush is
 * pending or when the queue is stopping, and hands them to cfg.write_batch
 * outside the lock. An optional cfg.idle callback runs at start and then
 * every cfg.idle_every_ms (at once again when it returns true), at most one
 * batch and one idle call per turn, never while stopping. The queue depth
 * goes to the atomic cfg.depth points at, if any.
 */
#ifndef EF_BATCH_QUEUE_H
#define EF_BATCH_QUEUE_H

#include "common/topic.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_queue;

/* One payload waiting for the writer. */
struct batch_queue_item {
    char device_id[EF_DEVICE_ID_MAX + 1]; /* who sent it */
    int tag;                              /* the user's: e.g. the topic it came on */
    int64_t received_at;                  /* Unix ms, server clock */
    int64_t queued_mono;                  /* monotonic ms when queued: its batch deadline */
    char *payload;                        /* owned copy, not NUL-terminated */
    size_t len;                           /* its bytes */
};

struct batch_queue_config {
    size_t queue_max;       /* items the queue holds, >= 1 */
    size_t batch_max;       /* items per batch, 1..queue_max */
    int64_t batch_ms;       /* ms the oldest queued item waits for more, >= 0 */
    size_t queue_max_bytes; /* payload bytes the queue holds */
    /* Writes n items (on the writer thread, without the lock); it may free a
     * payload and set it to NULL, the queue frees what is left after. */
    void (*write_batch)(void *ctx, struct batch_queue_item *items, size_t n);
    /* Optional: periodic work when not stopping; true when more is due at
     * once. Runs first at start, then idle_every_ms (> 0) apart. */
    bool (*idle)(void *ctx);
    int64_t idle_every_ms;
    void *ctx;                   /* given to the callbacks */
    atomic_uint_fast64_t *depth; /* borrowed gauge of items queued, or NULL */
};

/* Starts the writer thread; *out is owned by the caller (batch_queue_stop).
 * EF_EINVAL for a bad config, EF_ENOMEM, EF_EIO (no thread). */
int batch_queue_start(const struct batch_queue_config *cfg, struct batch_queue **out);

/* Queues a copy of payload (len bytes, payload may be NULL when len is 0);
 * any thread. 0 when queued; EF_EBUSY when full in items or bytes, or
 * stopping; EF_ENOMEM. */
int batch_queue_push(struct batch_queue *q, const char *device_id, int tag, const void *payload,
                     size_t len, int64_t received_at);

/* Blocks until every item queued before the call has been written. */
void batch_queue_flush(struct batch_queue *q);

/* Stops taking items, writes what is queued, joins the writer and frees;
 * accepts NULL. Returns how many items were queued when it was called. */
size_t batch_queue_stop(struct batch_queue *q);

/* True at most once per every_ms for one kind of warning (last holds the
 * monotonic ms of the last one, 0 at first), so that a flood of bad input
 * cannot flood the log. */
bool batch_queue_warn_due(atomic_int_fast64_t *last, int64_t every_ms);

#endif

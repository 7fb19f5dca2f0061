/*
 * batch_queue.c - a bounded ring of payload copies and the writer thread
 * that takes them in batches (batch_queue.h).
 */
#include "server/batch_queue.h"
#include "common/clock.h"
#include "common/ef_error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct batch_queue {
    struct batch_queue_config cfg;
    pthread_mutex_t lock;           /* guards everything below */
    pthread_cond_t wake;            /* the writer waits on it (monotonic clock) */
    pthread_cond_t done;            /* flushers wait on it */
    struct batch_queue_item *queue; /* ring of cfg.queue_max, owned */
    size_t head;                    /* index of the oldest queued item */
    size_t count;                   /* items queued */
    uint64_t queued_total;          /* items ever queued */
    uint64_t done_total;            /* of which written */
    uint64_t flush_until;           /* a flusher waits for done_total to reach this */
    size_t queued_bytes;            /* payload bytes queued */
    bool stopping;                  /* batch_queue_stop was called */
    struct batch_queue_item *batch; /* the writer's batch of cfg.batch_max, owned */
    pthread_t thread;               /* the writer */
    bool started;                   /* thread is joinable */
};

bool batch_queue_warn_due(atomic_int_fast64_t *last, int64_t every_ms)
{
    int_fast64_t now = ef_mono_ms(), prev = atomic_load(last);
    return (prev == 0 || now - prev >= every_ms) &&
           atomic_compare_exchange_strong(last, &prev, now);
}

static void set_depth(struct batch_queue *q)
{
    if (q->cfg.depth)
        atomic_store(q->cfg.depth, q->count);
}

int batch_queue_push(struct batch_queue *q, const char *device_id, int tag, const void *payload,
                     size_t len, int64_t received_at)
{
    bool wake = false;
    int rc = 0;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        rc = EF_ENOMEM;
    else if (len) /* an empty message has no payload pointer */
        memcpy(copy, payload, len);
    pthread_mutex_lock(&q->lock);
    if (rc != 0 || q->stopping || q->count == q->cfg.queue_max ||
        q->queued_bytes + len > q->cfg.queue_max_bytes) {
        rc = rc ? rc : EF_EBUSY;
    } else {
        struct batch_queue_item *e = &q->queue[(q->head + q->count) % q->cfg.queue_max];
        snprintf(e->device_id, sizeof(e->device_id), "%s", device_id);
        e->tag = tag;
        e->received_at = received_at;
        e->queued_mono = ef_mono_ms();
        e->payload = copy;
        e->len = len;
        copy = NULL;
        q->queued_bytes += len;
        q->count++;
        q->queued_total++;
        /* The writer sleeps until the oldest item's deadline, so it needs
         * waking only for a first item or a full batch. */
        wake = q->count == 1 || q->count == q->cfg.batch_max;
        set_depth(q);
    }
    pthread_mutex_unlock(&q->lock);
    if (wake)
        pthread_cond_signal(&q->wake);
    free(copy);
    return rc;
}

/* Waits on the writer's condition until monotonic time until_ms (for ever
 * when INT64_MAX). */
static void wait_until(struct batch_queue *q, int64_t until_ms)
{
    if (until_ms == INT64_MAX) {
        pthread_cond_wait(&q->wake, &q->lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&q->wake, &q->lock, &ts);
}

/* The writer: a batch when one is due, an idle call when one is due (at most
 * one of each per turn, so neither starves the other), else sleep until the
 * sooner deadline. Drains the queue before it exits. */
static void *writer_main(void *arg)
{
    struct batch_queue *q = arg;
    int64_t next_idle = q->cfg.idle ? ef_mono_ms() : INT64_MAX;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        int64_t now = ef_mono_ms();
        int64_t deadline = q->count ? q->queue[q->head].queued_mono + q->cfg.batch_ms : INT64_MAX;
        bool worked = false;
        if (q->count > 0 && (q->stopping || q->count >= q->cfg.batch_max || now >= deadline ||
                             q->flush_until > q->done_total)) {
            size_t n = q->count < q->cfg.batch_max ? q->count : q->cfg.batch_max;
            for (size_t i = 0; i < n; i++) {
                q->batch[i] = q->queue[(q->head + i) % q->cfg.queue_max];
                q->queued_bytes -= q->batch[i].len;
            }
            q->head = (q->head + n) % q->cfg.queue_max;
            q->count -= n;
            set_depth(q);
            pthread_mutex_unlock(&q->lock);
            q->cfg.write_batch(q->cfg.ctx, q->batch, n);
            for (size_t i = 0; i < n; i++) {
                free(q->batch[i].payload);
                q->batch[i].payload = NULL;
            }
            pthread_mutex_lock(&q->lock);
            q->done_total += n;
            pthread_cond_broadcast(&q->done);
            worked = true;
        }
        if (q->stopping && q->count == 0)
            break;
        if (q->cfg.idle && !q->stopping && ef_mono_ms() >= next_idle) {
            pthread_mutex_unlock(&q->lock);
            bool more = q->cfg.idle(q->cfg.ctx);
            pthread_mutex_lock(&q->lock);
            next_idle = more ? ef_mono_ms() : ef_mono_ms() + q->cfg.idle_every_ms;
            worked = true;
        }
        if (!worked)
            wait_until(q, deadline < next_idle ? deadline : next_idle);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void batch_queue_free(struct batch_queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->done);
    pthread_mutex_destroy(&q->lock);
    for (size_t i = 0; q->queue && i < q->count; i++)
        free(q->queue[(q->head + i) % q->cfg.queue_max].payload);
    free(q->queue);
    free(q->batch);
    free(q);
}

int batch_queue_start(const struct batch_queue_config *cfg, struct batch_queue **out)
{
    pthread_condattr_t attr;
    int rc = 0;
    struct batch_queue *q = NULL;
    *out = NULL;
    if (!cfg || !cfg->write_batch || cfg->queue_max < 1 || cfg->batch_max < 1 ||
        cfg->batch_max > cfg->queue_max || cfg->batch_ms < 0 ||
        (cfg->idle && cfg->idle_every_ms <= 0) ||
        cfg->queue_max > SIZE_MAX / sizeof(struct batch_queue_item))
        return EF_EINVAL;
    if (!(q = calloc(1, sizeof(*q))))
        return EF_ENOMEM;
    q->cfg = *cfg;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&q->done, NULL);
    q->queue = calloc(cfg->queue_max, sizeof(*q->queue));
    q->batch = calloc(cfg->batch_max, sizeof(*q->batch));
    if (!q->queue || !q->batch) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        rc = EF_EIO;
        goto out;
    }
    q->started = true;
    *out = q;
    q = NULL;
out:
    batch_queue_free(q);
    return rc;
}

void batch_queue_flush(struct batch_queue *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t target = q->queued_total;
    if (target > q->flush_until)
        q->flush_until = target;
    pthread_cond_signal(&q->wake);
    while (q->done_total < target)
        pthread_cond_wait(&q->done, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

size_t batch_queue_stop(struct batch_queue *q)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    size_t pending = q->count;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    if (q->started)
        pthread_join(q->thread, NULL);
    batch_queue_free(q);
    return pending;
}

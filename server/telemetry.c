/*
 * telemetry.c - the telemetry ingest: a bounded queue of raw payloads
 * between the MQTT thread and one writer thread that parses them, commits
 * the windows in batches and expires old ones.
 */
#include "server/telemetry.h"
#include "server/db.h"
#include "server/db_telemetry.h"
#include "server/server.h"
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/log.h"
#include "common/topic.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TELEMETRY_EXPIRE_CHUNK  5000  /* rows one retention transaction deletes at most */
#define TELEMETRY_WARN_EVERY_MS 10000 /* ms between two warnings of one kind */

/* One payload waiting for the writer. */
struct queued {
    char device_id[EF_DEVICE_ID_MAX + 1]; /* who sent it */
    int64_t received_at;                  /* Unix ms, server clock */
    int64_t queued_mono;                  /* monotonic ms when queued: its batch deadline */
    char *payload;                        /* owned copy, not NUL-terminated */
    size_t len;                           /* its bytes, <= TELEMETRY_MAX_BYTES */
};

struct telemetry {
    struct db *db;                 /* borrowed */
    struct server_stats *stats;    /* borrowed, or own_stats */
    struct server_stats own_stats; /* counters when the caller gave none */
    struct telemetry_config cfg;
    pthread_mutex_t lock;                 /* guards everything below */
    pthread_cond_t wake;                  /* the writer waits on it (monotonic clock) */
    pthread_cond_t done;                  /* flushers wait on it */
    struct queued *queue;                 /* ring of cfg.queue_max, owned */
    size_t head;                          /* index of the oldest queued window */
    size_t count;                         /* windows queued */
    uint64_t queued_total;                /* windows ever queued */
    uint64_t done_total;                  /* of which written or failed */
    uint64_t flush_until;                 /* a flusher waits for done_total to reach this */
    size_t queued_bytes;                  /* payload bytes queued */
    bool stopping;                        /* telemetry_stop was called */
    struct queued *batch;                 /* the writer's batch of cfg.batch_max, owned */
    struct telemetry_window *windows;     /* the batch parsed, cfg.batch_max, owned */
    struct db_telemetry_row *rows;        /* what of it is stored, cfg.batch_max, owned */
    pthread_t thread;                     /* the writer */
    bool started;                         /* thread is joinable */
    atomic_int_fast64_t malformed_warned; /* monotonic ms of the last such warning */
    atomic_int_fast64_t dropped_warned;   /* likewise for a full queue */
};

void telemetry_config_default(struct telemetry_config *cfg)
{
    cfg->queue_max = TELEMETRY_QUEUE_DEFAULT;
    cfg->batch_max = TELEMETRY_BATCH_DEFAULT;
    cfg->batch_ms = TELEMETRY_BATCH_MS_DEFAULT;
    cfg->retention_ms = (int64_t)TELEMETRY_RETENTION_H_DEFAULT * 3600 * 1000;
    cfg->expire_every_ms = TELEMETRY_EXPIRE_EVERY_MS;
    cfg->queue_max_bytes = TELEMETRY_QUEUE_BYTES_DEFAULT;
}

/* True at most once per TELEMETRY_WARN_EVERY_MS for one kind of warning, so
 * a device that floods the topic cannot flood the log. */
static bool warn_due(atomic_int_fast64_t *last)
{
    int_fast64_t now = ef_mono_ms(), prev = atomic_load(last);
    return (prev == 0 || now - prev >= TELEMETRY_WARN_EVERY_MS) &&
           atomic_compare_exchange_strong(last, &prev, now);
}

/* Counts one malformed payload and warns at most every few seconds. */
static void malformed(struct telemetry *t, const char *device_id, int rc, const char *msg)
{
    char quoted[200];
    uint64_t n = atomic_fetch_add(&t->stats->telemetry_malformed, 1) + 1;
    if (warn_due(&t->malformed_warned))
        ef_warn("telemetry_malformed", "device=%s error=%s reason=%s total=%llu",
                ef_device_id_valid(device_id) ? device_id : "?", ef_errname(rc),
                ef_log_quote(msg, quoted, sizeof(quoted)), (unsigned long long)n);
}

int telemetry_submit(struct telemetry *t, const char *device_id, const void *payload, size_t len,
                     int64_t received_at)
{
    char *copy = NULL;
    bool wake = false;
    int rc = EF_EUNSUPPORTED;
    if (!t)
        goto out;
    if (!ef_device_id_valid(device_id)) {
        malformed(t, device_id, rc = EF_EINVAL, "bad device id");
        goto out;
    }
    if (len > TELEMETRY_MAX_BYTES) {
        malformed(t, device_id, rc = EF_ETOOBIG, "larger than 64 KiB");
        goto out;
    }
    /* Only a copy here: parsing is the writer's, so that this thread drains
     * the broker as fast as any subscriber would. */
    if (!(copy = malloc(len ? len : 1))) {
        rc = EF_ENOMEM;
    } else {
        if (len) /* an empty message has no payload pointer */
            memcpy(copy, payload, len);
        rc = 0;
    }
    pthread_mutex_lock(&t->lock);
    if (rc != 0 || t->stopping || t->count == t->cfg.queue_max ||
        t->queued_bytes + len > t->cfg.queue_max_bytes) {
        rc = rc ? rc : EF_EBUSY;
    } else {
        struct queued *q = &t->queue[(t->head + t->count) % t->cfg.queue_max];
        snprintf(q->device_id, sizeof(q->device_id), "%s", device_id);
        q->received_at = received_at;
        q->queued_mono = ef_mono_ms();
        q->payload = copy;
        q->len = len;
        copy = NULL;
        t->queued_bytes += len;
        t->count++;
        t->queued_total++;
        /* The writer sleeps until the oldest window's deadline, so it needs
         * waking only for a first window or a full batch. */
        wake = t->count == 1 || t->count == t->cfg.batch_max;
        atomic_store(&t->stats->telemetry_queue_depth, t->count);
    }
    pthread_mutex_unlock(&t->lock);
    if (rc == EF_EBUSY || rc == EF_ENOMEM) {
        uint64_t n = atomic_fetch_add(&t->stats->telemetry_dropped, 1) + 1;
        if (warn_due(&t->dropped_warned))
            ef_warn("telemetry_dropped",
                    "device=%s reason=%s queue_max=%zu queue_max_bytes=%zu total=%llu", device_id,
                    rc == EF_EBUSY ? "queue_full" : "out_of_memory", t->cfg.queue_max,
                    t->cfg.queue_max_bytes, (unsigned long long)n);
        goto out;
    }
    atomic_fetch_add(&t->stats->telemetry_received, 1);
    if (wake)
        pthread_cond_signal(&t->wake);
out:
    free(copy);
    return rc;
}

/* Parses n payloads, then writes the windows in one transaction; frees the
 * payloads. Malformed payloads are counted and left out. A failed
 * transaction loses the batch (counted): SQLite has already waited out a
 * busy database by then. */
static void write_batch(struct telemetry *t, struct queued *batch, size_t n)
{
    uint64_t stored = 0, parsed = 0;
    int64_t started = ef_mono_ms();
    char msg[160];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct telemetry_window *w = &t->windows[parsed];
        rc = telemetry_parse(batch[i].payload, batch[i].len, w, msg, sizeof(msg));
        if (rc != 0) {
            malformed(t, batch[i].device_id, rc, msg);
        } else {
            t->rows[parsed] =
                (struct db_telemetry_row){batch[i].device_id, batch[i].received_at, w, false};
            parsed++;
        }
        free(batch[i].payload);
        batch[i].payload = NULL;
    }
    rc = db_telemetry_insert_batch(t->db, t->rows, parsed);
    for (size_t i = 0; i < parsed; i++) {
        stored += t->rows[i].stored;
        telemetry_window_clear(&t->windows[i]);
    }
    if (rc != 0) {
        atomic_fetch_add(&t->stats->telemetry_failed, parsed);
        ef_error("telemetry_batch_failed", "windows=%llu error=%s", (unsigned long long)parsed,
                 ef_errname(rc));
        return;
    }
    atomic_fetch_add(&t->stats->telemetry_stored, stored);
    atomic_fetch_add(&t->stats->telemetry_ignored, parsed - stored);
    if (parsed)
        atomic_fetch_add(&t->stats->telemetry_batches, 1);
    ef_debug("telemetry_batch", "windows=%zu stored=%llu ignored=%llu malformed=%llu ms=%lld", n,
             (unsigned long long)stored, (unsigned long long)(parsed - stored),
             (unsigned long long)(n - parsed), (long long)(ef_mono_ms() - started));
}

/* One retention chunk of windows and rollups; true when a chunk was full,
 * so that more may be due. */
static bool expire_chunk(struct telemetry *t)
{
    int64_t deleted = 0, rollups = 0;
    int rc = db_telemetry_expire(t->db, ef_now_ms() - t->cfg.retention_ms, TELEMETRY_EXPIRE_CHUNK,
                                 &deleted, &rollups);
    if (rc != 0)
        ef_warn("telemetry_expire_failed", "error=%s", ef_errname(rc));
    else if (deleted > 0)
        atomic_fetch_add(&t->stats->telemetry_expired, (uint64_t)deleted);
    return deleted == TELEMETRY_EXPIRE_CHUNK || rollups == TELEMETRY_EXPIRE_CHUNK;
}

/* Waits on the writer's condition until monotonic time until_ms. */
static void wait_until(struct telemetry *t, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&t->wake, &t->lock, &ts);
}

/* The writer: a batch when one is due, a retention chunk when one is due
 * (at most one of each per turn, so neither starves the other), else sleep
 * until the sooner deadline. Drains the queue before it exits. */
static void *writer_main(void *arg)
{
    struct telemetry *t = arg;
    int64_t next_expire = ef_mono_ms();
    pthread_mutex_lock(&t->lock);
    for (;;) {
        int64_t now = ef_mono_ms();
        int64_t deadline = t->count ? t->queue[t->head].queued_mono + t->cfg.batch_ms : INT64_MAX;
        bool worked = false;
        if (t->count > 0 && (t->stopping || t->count >= t->cfg.batch_max || now >= deadline ||
                             t->flush_until > t->done_total)) {
            size_t n = t->count < t->cfg.batch_max ? t->count : t->cfg.batch_max;
            for (size_t i = 0; i < n; i++) {
                t->batch[i] = t->queue[(t->head + i) % t->cfg.queue_max];
                t->queued_bytes -= t->batch[i].len;
            }
            t->head = (t->head + n) % t->cfg.queue_max;
            t->count -= n;
            atomic_store(&t->stats->telemetry_queue_depth, t->count);
            pthread_mutex_unlock(&t->lock);
            write_batch(t, t->batch, n);
            pthread_mutex_lock(&t->lock);
            t->done_total += n;
            pthread_cond_broadcast(&t->done);
            worked = true;
        }
        if (t->stopping && t->count == 0)
            break;
        if (!t->stopping && ef_mono_ms() >= next_expire) {
            pthread_mutex_unlock(&t->lock);
            /* A full chunk means more is due: come back after the next batch. */
            bool more = expire_chunk(t);
            pthread_mutex_lock(&t->lock);
            next_expire = more ? ef_mono_ms() : ef_mono_ms() + t->cfg.expire_every_ms;
            worked = true;
        }
        if (!worked)
            wait_until(t, deadline < next_expire ? deadline : next_expire);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void telemetry_free(struct telemetry *t)
{
    if (!t)
        return;
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->lock);
    free(t->queue);
    free(t->batch);
    free(t->windows);
    free(t->rows);
    free(t);
}

int telemetry_start(struct db *db, const struct telemetry_config *cfg, struct server_stats *stats,
                    struct telemetry **out)
{
    pthread_condattr_t attr;
    int rc = 0;
    struct telemetry *t = NULL;
    *out = NULL;
    if (!db || !cfg || cfg->queue_max < 1 || cfg->batch_max < 1 ||
        cfg->batch_max > cfg->queue_max || cfg->batch_ms < 0 || cfg->retention_ms <= 0 ||
        cfg->expire_every_ms <= 0 || cfg->queue_max_bytes < TELEMETRY_MAX_BYTES ||
        cfg->queue_max > SIZE_MAX / sizeof(struct queued))
        return EF_EINVAL;
    if (!(t = calloc(1, sizeof(*t))))
        return EF_ENOMEM;
    t->db = db;
    t->cfg = *cfg;
    t->stats = stats ? stats : &t->own_stats;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&t->done, NULL);
    t->queue = calloc(cfg->queue_max, sizeof(*t->queue));
    t->batch = calloc(cfg->batch_max, sizeof(*t->batch));
    t->windows = calloc(cfg->batch_max, sizeof(*t->windows));
    t->rows = calloc(cfg->batch_max, sizeof(*t->rows));
    if (!t->queue || !t->batch || !t->windows || !t->rows) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (pthread_create(&t->thread, NULL, writer_main, t) != 0) {
        rc = EF_EIO;
        goto out;
    }
    t->started = true;
    ef_info("telemetry_started", "queue_max=%zu batch_max=%zu batch_ms=%lld retention_h=%lld",
            cfg->queue_max, cfg->batch_max, (long long)cfg->batch_ms,
            (long long)(cfg->retention_ms / 3600000));
    *out = t;
    t = NULL;
out:
    telemetry_free(t);
    return rc;
}

void telemetry_flush(struct telemetry *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    uint64_t target = t->queued_total;
    if (target > t->flush_until)
        t->flush_until = target;
    pthread_cond_signal(&t->wake);
    while (t->done_total < target)
        pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

void telemetry_stop(struct telemetry *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    size_t pending = t->count;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    if (t->started)
        pthread_join(t->thread, NULL);
    ef_info("telemetry_stopped", "drained=%zu", pending);
    telemetry_free(t);
}

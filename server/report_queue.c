/*
 * report_queue.c - the report ingest: a bounded queue of raw `reported` and
 * `status` payloads between the MQTT thread and one writer thread that
 * parses them and applies them in batched transactions.
 */
#include "server/report_queue.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/report.h"
#include "server/server.h"
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

#define REPORT_WARN_EVERY_MS 10000 /* ms between two warnings of one kind */

/* One payload waiting for the writer. */
struct queued {
    char device_id[EF_DEVICE_ID_MAX + 1]; /* who sent it */
    enum report_topic topic;              /* on which topic */
    int64_t received_at;                  /* Unix ms, server clock */
    int64_t queued_mono;                  /* monotonic ms when queued: its batch deadline */
    char *payload;                        /* owned copy, not NUL-terminated */
    size_t len;                           /* its bytes, <= REPORT_MAX_BYTES */
    bool parsed;                          /* the writer's: it parsed, and is to be applied */
    bool online;                          /* the writer's: a status word parsed as online */
};

struct report_queue {
    struct db *db;                 /* borrowed */
    struct server_stats *stats;    /* borrowed, or own_stats */
    struct server_stats own_stats; /* counters when the caller gave none */
    struct report_queue_config cfg;
    pthread_mutex_t lock;                 /* guards everything below */
    pthread_cond_t wake;                  /* the writer waits on it (monotonic clock) */
    pthread_cond_t done;                  /* flushers wait on it */
    struct queued *queue;                 /* ring of cfg.queue_max, owned */
    size_t head;                          /* index of the oldest queued report */
    size_t count;                         /* reports queued */
    uint64_t queued_total;                /* reports ever queued */
    uint64_t done_total;                  /* of which applied or failed */
    uint64_t flush_until;                 /* a flusher waits for done_total to reach this */
    size_t queued_bytes;                  /* payload bytes queued */
    bool stopping;                        /* report_queue_stop was called */
    struct queued *batch;                 /* the writer's batch of cfg.batch_max, owned */
    struct report *reports;               /* the batch parsed, cfg.batch_max, owned */
    pthread_t thread;                     /* the writer */
    bool started;                         /* thread is joinable */
    atomic_int_fast64_t malformed_warned; /* monotonic ms of the last such warning */
    atomic_int_fast64_t dropped_warned;   /* likewise for a full queue */
};

void report_queue_config_default(struct report_queue_config *cfg)
{
    cfg->queue_max = REPORT_QUEUE_DEFAULT;
    cfg->batch_max = REPORT_BATCH_DEFAULT;
    cfg->batch_ms = REPORT_BATCH_MS_DEFAULT;
    cfg->queue_max_bytes = REPORT_QUEUE_BYTES_DEFAULT;
}

/* True at most once per REPORT_WARN_EVERY_MS for one kind of warning, so a
 * device that floods its topic cannot flood the log. */
static bool warn_due(atomic_int_fast64_t *last)
{
    int_fast64_t now = ef_mono_ms(), prev = atomic_load(last);
    return (prev == 0 || now - prev >= REPORT_WARN_EVERY_MS) &&
           atomic_compare_exchange_strong(last, &prev, now);
}

/* Counts one malformed report of a topic and warns at most every few
 * seconds. */
static void malformed(struct report_queue *q, enum report_topic topic, const char *device_id,
                      int rc, const char *msg)
{
    char quoted[200];
    uint64_t n = atomic_fetch_add(&q->stats->report_malformed, 1) + 1;
    if (warn_due(&q->malformed_warned))
        ef_warn(topic == REPORT_TOPIC_STATUS ? "mqtt_bad_status" : "mqtt_bad_report",
                "device=%s error=%s reason=%s total=%llu",
                ef_device_id_valid(device_id) ? device_id : "?", ef_errname(rc),
                ef_log_quote(msg, quoted, sizeof(quoted)), (unsigned long long)n);
}

int report_queue_submit(struct report_queue *q, enum report_topic topic, const char *device_id,
                        const void *payload, size_t len, int64_t received_at)
{
    char *copy = NULL;
    bool wake = false;
    int rc = EF_EUNSUPPORTED;
    if (!q)
        goto out;
    if (!ef_device_id_valid(device_id) ||
        (topic != REPORT_TOPIC_REPORTED && topic != REPORT_TOPIC_STATUS)) {
        malformed(q, topic, device_id, rc = EF_EINVAL, "bad device id or topic");
        goto out;
    }
    if (len > REPORT_MAX_BYTES) {
        malformed(q, topic, device_id, rc = EF_ETOOBIG, "larger than 16 KiB");
        goto out;
    }
    /* Only a copy here: parsing and the database are the writer's. */
    if (!(copy = malloc(len ? len : 1))) {
        rc = EF_ENOMEM;
    } else {
        if (len) /* an empty message has no payload pointer */
            memcpy(copy, payload, len);
        rc = 0;
    }
    pthread_mutex_lock(&q->lock);
    if (rc != 0 || q->stopping || q->count == q->cfg.queue_max ||
        q->queued_bytes + len > q->cfg.queue_max_bytes) {
        rc = rc ? rc : EF_EBUSY;
    } else {
        struct queued *e = &q->queue[(q->head + q->count) % q->cfg.queue_max];
        snprintf(e->device_id, sizeof(e->device_id), "%s", device_id);
        e->topic = topic;
        e->received_at = received_at;
        e->queued_mono = ef_mono_ms();
        e->payload = copy;
        e->len = len;
        copy = NULL;
        q->queued_bytes += len;
        q->count++;
        q->queued_total++;
        /* The writer sleeps until the oldest report's deadline, so it needs
         * waking only for a first report or a full batch. */
        wake = q->count == 1 || q->count == q->cfg.batch_max;
        atomic_store(&q->stats->report_queue_depth, q->count);
    }
    pthread_mutex_unlock(&q->lock);
    if (rc == EF_EBUSY || rc == EF_ENOMEM) {
        uint64_t n = atomic_fetch_add(&q->stats->report_dropped, 1) + 1;
        if (warn_due(&q->dropped_warned))
            ef_warn("report_dropped",
                    "device=%s reason=%s queue_max=%zu queue_max_bytes=%zu total=%llu", device_id,
                    rc == EF_EBUSY ? "queue_full" : "out_of_memory", q->cfg.queue_max,
                    q->cfg.queue_max_bytes, (unsigned long long)n);
        goto out;
    }
    atomic_fetch_add(&q->stats->report_received, 1);
    if (wake)
        pthread_cond_signal(&q->wake);
out:
    free(copy);
    return rc;
}

/* Parses one queued payload into e (status) or *r (reported); false when
 * there is nothing to apply: malformed (counted and logged) or an empty
 * status, which is a cleared retained message. */
static bool parse(struct report_queue *q, struct queued *e, struct report *r)
{
    char msg[160];
    int rc;
    if (e->topic == REPORT_TOPIC_STATUS) {
        if (e->len == 6 && memcmp(e->payload, "online", 6) == 0)
            e->online = true;
        else if (e->len == 7 && memcmp(e->payload, "offline", 7) == 0)
            e->online = false;
        else if (e->len == 0)
            return false;
        else {
            malformed(q, e->topic, e->device_id, EF_EINVAL, "status neither online nor offline");
            return false;
        }
        return true;
    }
    if ((rc = report_parse(e->payload, e->len, r, msg, sizeof(msg))) != 0) {
        malformed(q, e->topic, e->device_id, rc, msg);
        return false;
    }
    return true;
}

/* Applies one parsed report inside the caller's transaction, or in its own
 * when the caller has none. 0 (applied), EF_ENOENT (no such active device:
 * nothing written) or the database's error. */
static int apply(struct report_queue *q, const struct queued *e, const struct report *r)
{
    int rc;
    if (e->topic == REPORT_TOPIC_STATUS) {
        rc = db_device_seen(q->db, e->device_id, e->online, e->received_at);
        if (rc != 0)
            ef_log(rc == EF_ENOENT ? EF_LOG_DEBUG : EF_LOG_WARN, "mqtt_status_ignored",
                   "device=%s error=%s", e->device_id, ef_errname(rc));
        return rc;
    }
    rc = db_device_report(q->db, e->device_id, ef_slot_name(r->slot), r->model, r->version,
                          r->state, r->reason[0] ? r->reason : NULL, e->received_at);
    if (rc == 0)
        ef_info("device_reported", "device=%s slot=%s model=%s version=%lld state=%s", e->device_id,
                ef_slot_name(r->slot), r->model, (long long)r->version, r->state);
    else
        ef_log(rc == EF_ENOENT ? EF_LOG_DEBUG : EF_LOG_WARN, "mqtt_report_ignored",
               "device=%s error=%s", e->device_id, ef_errname(rc));
    return rc;
}

/* Parses n payloads, then applies the reports in queue order in one
 * transaction; frees the payloads. Malformed payloads are counted and left
 * out, as are empty status words (not counted); reports of devices that are
 * not enrolled are counted as ignored. When the transaction fails, it is
 * rolled back and the batch applied again one report per transaction, so
 * that only the reports the database refuses are lost (counted). */
static void write_batch(struct report_queue *q, struct queued *batch, size_t n)
{
    uint64_t stored = 0, ignored = 0, failed = 0, parsed = 0;
    int64_t started = ef_mono_ms();
    int rc;
    for (size_t i = 0; i < n; i++) {
        batch[i].parsed = parse(q, &batch[i], &q->reports[i]);
        parsed += batch[i].parsed;
        free(batch[i].payload);
        batch[i].payload = NULL;
    }
    rc = parsed ? db_tx_begin(q->db) : 0;
    if (rc == 0 && parsed) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!batch[i].parsed)
                continue;
            rc = apply(q, &batch[i], &q->reports[i]);
            if (rc == 0)
                stored++;
            else if (rc == EF_ENOENT)
                ignored++, rc = 0;
        }
        rc = db_tx_end(q->db, rc);
    }
    if (rc != 0) {
        ef_warn("report_batch_failed", "reports=%llu error=%s retry=one_by_one",
                (unsigned long long)parsed, ef_errname(rc));
        stored = ignored = 0;
        for (size_t i = 0; i < n; i++) {
            if (!batch[i].parsed)
                continue;
            rc = apply(q, &batch[i], &q->reports[i]);
            if (rc == 0)
                stored++;
            else if (rc == EF_ENOENT)
                ignored++;
            else
                failed++;
        }
    } else if (parsed) {
        atomic_fetch_add(&q->stats->report_batches, 1);
    }
    atomic_fetch_add(&q->stats->report_stored, stored);
    atomic_fetch_add(&q->stats->report_ignored, ignored);
    atomic_fetch_add(&q->stats->report_failed, failed);
    if (failed)
        ef_error("report_failed", "reports=%llu", (unsigned long long)failed);
    ef_debug("report_batch", "reports=%zu stored=%llu ignored=%llu not_applied=%llu ms=%lld", n,
             (unsigned long long)stored, (unsigned long long)ignored,
             (unsigned long long)(n - parsed), (long long)(ef_mono_ms() - started));
}

/* Waits on the writer's condition until monotonic time until_ms. */
static void wait_until(struct report_queue *q, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&q->wake, &q->lock, &ts);
}

/* The writer: a batch when one is due, else sleep until the oldest report's
 * deadline (or a wake-up). Drains the queue before it exits. */
static void *writer_main(void *arg)
{
    struct report_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        int64_t deadline = q->count ? q->queue[q->head].queued_mono + q->cfg.batch_ms : 0;
        if (q->count > 0 && (q->stopping || q->count >= q->cfg.batch_max ||
                             ef_mono_ms() >= deadline || q->flush_until > q->done_total)) {
            size_t n = q->count < q->cfg.batch_max ? q->count : q->cfg.batch_max;
            for (size_t i = 0; i < n; i++) {
                q->batch[i] = q->queue[(q->head + i) % q->cfg.queue_max];
                q->queued_bytes -= q->batch[i].len;
            }
            q->head = (q->head + n) % q->cfg.queue_max;
            q->count -= n;
            atomic_store(&q->stats->report_queue_depth, q->count);
            pthread_mutex_unlock(&q->lock);
            write_batch(q, q->batch, n);
            pthread_mutex_lock(&q->lock);
            q->done_total += n;
            pthread_cond_broadcast(&q->done);
            continue;
        }
        if (q->stopping)
            break;
        if (q->count > 0)
            wait_until(q, deadline);
        else
            pthread_cond_wait(&q->wake, &q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void report_queue_free(struct report_queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->done);
    pthread_mutex_destroy(&q->lock);
    free(q->queue);
    free(q->batch);
    free(q->reports);
    free(q);
}

int report_queue_start(struct db *db, const struct report_queue_config *cfg,
                       struct server_stats *stats, struct report_queue **out)
{
    pthread_condattr_t attr;
    int rc = 0;
    struct report_queue *q = NULL;
    *out = NULL;
    if (!db || !cfg || cfg->queue_max < 1 || cfg->batch_max < 1 ||
        cfg->batch_max > cfg->queue_max || cfg->batch_ms < 0 ||
        cfg->queue_max_bytes < REPORT_MAX_BYTES ||
        cfg->queue_max > SIZE_MAX / sizeof(struct queued) ||
        cfg->batch_max > SIZE_MAX / sizeof(struct report))
        return EF_EINVAL;
    if (!(q = calloc(1, sizeof(*q))))
        return EF_ENOMEM;
    q->db = db;
    q->cfg = *cfg;
    q->stats = stats ? stats : &q->own_stats;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&q->done, NULL);
    q->queue = calloc(cfg->queue_max, sizeof(*q->queue));
    q->batch = calloc(cfg->batch_max, sizeof(*q->batch));
    q->reports = calloc(cfg->batch_max, sizeof(*q->reports));
    if (!q->queue || !q->batch || !q->reports) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        rc = EF_EIO;
        goto out;
    }
    q->started = true;
    ef_info("report_queue_started", "queue_max=%zu batch_max=%zu batch_ms=%lld", cfg->queue_max,
            cfg->batch_max, (long long)cfg->batch_ms);
    *out = q;
    q = NULL;
out:
    report_queue_free(q);
    return rc;
}

void report_queue_flush(struct report_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    uint64_t target = q->queued_total;
    if (target > q->flush_until)
        q->flush_until = target;
    pthread_cond_signal(&q->wake);
    while (q->done_total < target)
        pthread_cond_wait(&q->done, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

void report_queue_stop(struct report_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    size_t pending = q->count;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    if (q->started)
        pthread_join(q->thread, NULL);
    ef_info("report_queue_stopped", "drained=%zu", pending);
    report_queue_free(q);
}

/*
 * telemetry.c - the telemetry ingest: a bounded queue of raw payloads
 * between the MQTT thread and one writer thread that parses them, commits
 * the windows in batches and expires old ones.
 */
#include "server/telemetry.h"
#include "server/batch_queue.h"
#include "server/db.h"
#include "server/db_telemetry.h"
#include "server/server.h"
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/log.h"
#include "common/topic.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TELEMETRY_EXPIRE_CHUNK  5000  /* rows one retention transaction deletes at most */
#define TELEMETRY_WARN_EVERY_MS 10000 /* ms between two warnings of one kind */

struct telemetry {
    struct db *db;                 /* borrowed */
    struct server_stats *stats;    /* borrowed, or own_stats */
    struct server_stats own_stats; /* counters when the caller gave none */
    struct telemetry_config cfg;
    struct batch_queue *queue;            /* the payloads and the writer, owned */
    struct telemetry_window *windows;     /* the batch parsed, cfg.batch_max, owned */
    struct db_telemetry_row *rows;        /* what of it is stored, cfg.batch_max, owned */
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

/* Counts one malformed payload and warns at most every few seconds. */
static void malformed(struct telemetry *t, const char *device_id, int rc, const char *msg)
{
    char quoted[200];
    uint64_t n = atomic_fetch_add(&t->stats->telemetry_malformed, 1) + 1;
    if (batch_queue_warn_due(&t->malformed_warned, TELEMETRY_WARN_EVERY_MS))
        ef_warn("telemetry_malformed", "device=%s error=%s reason=%s total=%llu",
                ef_device_id_valid(device_id) ? device_id : "?", ef_errname(rc),
                ef_log_quote(msg, quoted, sizeof(quoted)), (unsigned long long)n);
}

int telemetry_submit(struct telemetry *t, const char *device_id, const void *payload, size_t len,
                     int64_t received_at)
{
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
    rc = batch_queue_push(t->queue, device_id, 0, payload, len, received_at);
    if (rc == EF_EBUSY || rc == EF_ENOMEM) {
        uint64_t n = atomic_fetch_add(&t->stats->telemetry_dropped, 1) + 1;
        if (batch_queue_warn_due(&t->dropped_warned, TELEMETRY_WARN_EVERY_MS))
            ef_warn("telemetry_dropped",
                    "device=%s reason=%s queue_max=%zu queue_max_bytes=%zu total=%llu", device_id,
                    rc == EF_EBUSY ? "queue_full" : "out_of_memory", t->cfg.queue_max,
                    t->cfg.queue_max_bytes, (unsigned long long)n);
        goto out;
    }
    atomic_fetch_add(&t->stats->telemetry_received, 1);
out:
    return rc;
}

/* Parses n payloads, then writes the windows in one transaction; frees the
 * payloads. Malformed payloads are counted and left out. A failed
 * transaction loses the batch (counted): SQLite has already waited out a
 * busy database by then. */
static void write_batch(void *ctx, struct batch_queue_item *batch, size_t n)
{
    struct telemetry *t = ctx;
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
static bool expire_chunk(void *ctx)
{
    struct telemetry *t = ctx;
    int64_t deleted = 0, rollups = 0;
    int rc = db_telemetry_expire(t->db, ef_now_ms() - t->cfg.retention_ms, TELEMETRY_EXPIRE_CHUNK,
                                 &deleted, &rollups);
    if (rc != 0)
        ef_warn("telemetry_expire_failed", "error=%s", ef_errname(rc));
    else if (deleted > 0)
        atomic_fetch_add(&t->stats->telemetry_expired, (uint64_t)deleted);
    return deleted == TELEMETRY_EXPIRE_CHUNK || rollups == TELEMETRY_EXPIRE_CHUNK;
}

static void telemetry_free(struct telemetry *t)
{
    if (!t)
        return;
    free(t->windows);
    free(t->rows);
    free(t);
}

int telemetry_start(struct db *db, const struct telemetry_config *cfg, struct server_stats *stats,
                    struct telemetry **out)
{
    int rc = 0;
    struct telemetry *t = NULL;
    *out = NULL;
    if (!db || !cfg || cfg->queue_max < 1 || cfg->batch_max < 1 ||
        cfg->batch_max > cfg->queue_max || cfg->batch_ms < 0 || cfg->retention_ms <= 0 ||
        cfg->expire_every_ms <= 0 || cfg->queue_max_bytes < TELEMETRY_MAX_BYTES ||
        cfg->queue_max > SIZE_MAX / sizeof(struct batch_queue_item))
        return EF_EINVAL;
    if (!(t = calloc(1, sizeof(*t))))
        return EF_ENOMEM;
    t->db = db;
    t->cfg = *cfg;
    t->stats = stats ? stats : &t->own_stats;
    t->windows = calloc(cfg->batch_max, sizeof(*t->windows));
    t->rows = calloc(cfg->batch_max, sizeof(*t->rows));
    if (!t->windows || !t->rows) {
        rc = EF_ENOMEM;
        goto out;
    }
    struct batch_queue_config qc = {.queue_max = cfg->queue_max,
                                    .batch_max = cfg->batch_max,
                                    .batch_ms = cfg->batch_ms,
                                    .queue_max_bytes = cfg->queue_max_bytes,
                                    .write_batch = write_batch,
                                    .idle = expire_chunk,
                                    .idle_every_ms = cfg->expire_every_ms,
                                    .ctx = t,
                                    .depth = &t->stats->telemetry_queue_depth};
    if ((rc = batch_queue_start(&qc, &t->queue)) != 0)
        goto out;
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
    if (t)
        batch_queue_flush(t->queue);
}

void telemetry_stop(struct telemetry *t)
{
    if (!t)
        return;
    size_t pending = batch_queue_stop(t->queue);
    ef_info("telemetry_stopped", "drained=%zu", pending);
    telemetry_free(t);
}

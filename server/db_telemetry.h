/*
 * db_telemetry.h - raw telemetry windows and their per-minute rollups:
 * storing them, reading them back, aggregating them for rollout gates and
 * the monitor, and expiring them (implemented in db_telemetry.c; see db.h for
 * the locking rules).
 *
 * One row per window a device published (table telemetry_windows,
 * schema/004 and 006), keyed by the server's receive time and stored with
 * the device's ring at that time (view device_rings; 0 when in none). Windows
 * are written by the telemetry writer thread (telemetry.h) in batches, each
 * batch one transaction (db_telemetry_insert_batch) that also adds each
 * window with a model to its rollup row (telemetry_rollups: model version x
 * ring x minute of received_at, the sums of metric.h's struct metric_sums),
 * so both commit or neither.
 *
 * Rollout gates (db_telemetry_ring_stats) still count the windows of the
 * devices in the ring now, as docs/rollouts.md says.
 */
#ifndef EF_DB_TELEMETRY_H
#define EF_DB_TELEMETRY_H

#include "server/metric.h"
#include "server/telemetry_parse.h"
#include "common/topic.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DB_TELEMETRY_LIMIT_MAX  5000   /* rows one query returns at most */
#define DB_TELEMETRY_POINTS_MAX 100000 /* rollup rows one rollup query reads at most */
#define DB_TELEMETRY_MINUTE_MS  60000  /* a rollup's period, ms */

/* What a rollout gate reads about one ring and one model version. */
struct ring_telemetry {
    int64_t windows;    /* windows counted */
    int64_t inferences; /* their summed inferences */
    int64_t errors;     /* their summed errors */
    double max_p99_ms;  /* the largest p99 of a window with inferences, ms; 0 when none */
};

/* One window of a batch (db_telemetry_insert_batch). */
struct db_telemetry_row {
    const char *device_id;                 /* who sent it, borrowed */
    int64_t received_at;                   /* when the server received it, Unix ms */
    const struct telemetry_window *window; /* parsed, borrowed */
    bool stored;                           /* out: stored (false: device not enrolled) */
};

/*
 * Stores the n windows of rows in one transaction (joining the caller's when
 * it holds a db_tx_begin), each with its device's ring now (looked up once
 * per device and batch), and adds those that name a model to their rollup
 * rows: each rollup row of the batch is read and written once, with the
 * windows added in order by metric_sums_add_window, so the sums are bit for
 * bit those of adding the windows one at a time. A window from a device that
 * is not enrolled (unknown or decommissioned) is not stored; rows[i].stored
 * says which were (all false on failure: nothing of the batch is stored).
 * EF_EINVAL (a bad device id or window: nothing is stored), EF_ENOMEM,
 * EF_EDB.
 */
int db_telemetry_insert_batch(struct db *db, struct db_telemetry_row *rows, size_t n);

/* db_telemetry_insert_batch of one window; *stored (may be NULL) says
 * whether it was stored. */
int db_telemetry_insert(struct db *db, const char *device_id, int64_t received_at,
                        const struct telemetry_window *w, bool *stored);

/*
 * Aggregates the windows of model@version received at or after since_ms
 * (Unix ms) from the devices that are in ring ring_id now (decommissioned
 * devices excluded) into *out: their count, summed inferences and errors, and
 * the largest p99 among those with inferences. A ring that does not exist or
 * has no such windows gives zeros. EF_EDB.
 */
int db_telemetry_ring_stats(struct db *db, int64_t ring_id, const char *model, int64_t version,
                            int64_t since_ms, struct ring_telemetry *out);

/* What db_telemetry_query selects; NULL or 0 members do not filter. */
struct db_telemetry_filter {
    const char *model;         /* model name */
    int64_t version;           /* model version (only with model) */
    const char *ring;          /* ring name: windows received while the device was in it */
    const char *device;        /* device id */
    int64_t since;             /* received at or after, Unix ms */
    int limit;                 /* rows, 1..DB_TELEMETRY_LIMIT_MAX */
    const enum metric *metric; /* not a filter: each row also gets "value" of this metric */
};

/*
 * The matching windows, newest (by receive time) first, as a new JSON array
 * of {id, device, received_at, window_start (RFC 3339), window_s, model,
 * version (null when no model was serving), ring (name, or null when in none
 * or since deleted), inferences, errors, latency_ms: {p50, p95, p99, max} |
 * null, feedback, accuracy | null, correct | null, drift | null,
 * drift_output | null, confidence | null, shadow: {model ("NAME@VERSION"),
 * inferences, errors, agreement | null, feedback, accuracy | null} | null,
 * detail: {psi?, confusion?} | null, rss_bytes | null, cpu_s}, plus
 * value (number | null) with f->metric. An unknown ring, model or device
 * gives an empty array. EF_EINVAL (limit out of range), EF_EDB, EF_ENOMEM.
 */
int db_telemetry_query(struct db *db, const struct db_telemetry_filter *f, json_t **out);

/* What db_telemetry_rollups reads; model is required. */
struct db_rollup_filter {
    const char *model;  /* model name */
    int64_t version;    /* 0: every version */
    const char *ring;   /* ring name, or NULL for every ring */
    enum metric metric; /* a metric with a rollup (metric_rolled_up) */
    int64_t since;      /* minutes starting at or after, Unix ms */
    int64_t until;      /* minutes starting at or before, Unix ms; 0: no bound */
};

/*
 * The rollups of f->model as a new JSON object {"model", "metric",
 * "series": [{"version", "ring" (name or null), "points": [[minute_ms,
 * value, windows]...]}]}: one series per version x ring (by version, then
 * ring id), points oldest first; a minute whose value is null (no window
 * carried the metric) is left out, and so is a series left with no point.
 * EF_EINVAL (no model, metric without rollup), EF_ETOOBIG (more than
 * DB_TELEMETRY_POINTS_MAX rows match: narrow since/until), EF_EDB,
 * EF_ENOMEM.
 */
int db_telemetry_rollups(struct db *db, const struct db_rollup_filter *f, json_t **out);

/* One device's sums over a period (db_telemetry_device_sums). */
struct db_device_sums {
    char device_id[EF_DEVICE_ID_MAX + 1]; /* who sent the windows */
    struct metric_sums sums;              /* its windows, added with metric_sums_add_window */
};

/*
 * The windows of model@version received at or after since_ms, from rings
 * ring_id (the ring stored with each window; -1: any ring), summed per device
 * into a new malloc'd array *out of *count entries (by device id; NULL and 0
 * when none), which the caller frees. Devices decommissioned since are
 * included: their windows were measured. What the monitor evaluates rules
 * over. EF_EINVAL, EF_EDB, EF_ENOMEM.
 */
int db_telemetry_device_sums(struct db *db, const char *model, int64_t version, int64_t ring_id,
                             int64_t since_ms, struct db_device_sums **out, size_t *count);

/* Deletes at most max_rows windows received before before_ms (Unix ms), and
 * at most max_rows rollup rows whose minute ended by then, in one
 * transaction, oldest first; *deleted and *rollups_deleted (may be NULL)
 * receive how many. Call again while either is max_rows, so that writers get
 * the lock in between. EF_EDB. */
int db_telemetry_expire(struct db *db, int64_t before_ms, int max_rows, int64_t *deleted,
                        int64_t *rollups_deleted);

#endif

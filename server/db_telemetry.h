/*
 * db_telemetry.h - raw telemetry windows: storing them, reading them back,
 * aggregating them for rollout gates and expiring them (implemented in
 * db_telemetry.c; see db.h for the locking rules).
 *
 * One row per window a device published (table telemetry_windows,
 * schema/004_telemetry.sql), keyed by the server's receive time. Windows are
 * written by the telemetry writer thread (telemetry.h) in batches, each batch
 * one db_tx_begin/db_tx_end around db_telemetry_insert calls. The ring of a
 * window is the device's ring now (view device_rings), not when it was sent.
 *
 * Not here yet: per-minute rollups per model version x ring, which come with
 * the monitor (DESIGN.md, "Monitor"); gates read raw windows meanwhile.
 */
#ifndef EF_DB_TELEMETRY_H
#define EF_DB_TELEMETRY_H

#include "server/telemetry_parse.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct db;

#define DB_TELEMETRY_LIMIT_MAX 5000 /* rows one query returns at most */

/* What a rollout gate reads about one ring and one model version. */
struct ring_telemetry {
    int64_t windows;    /* windows counted */
    int64_t inferences; /* their summed inferences */
    int64_t errors;     /* their summed errors */
    double max_p99_ms;  /* the largest p99 of a window with inferences, ms; 0 when none */
};

/* Stores one window that device_id sent, received at received_at (Unix ms).
 * A window from a device that is not enrolled (unknown or decommissioned) is
 * not stored: *stored (may be NULL) says whether it was. The caller holds a
 * db_tx_begin around a batch of these. EF_EINVAL (bad device id or window),
 * EF_EDB. */
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
    const char *model;  /* model name */
    int64_t version;    /* model version (only with model) */
    const char *ring;   /* ring name: devices in that ring now */
    const char *device; /* device id */
    int64_t since;      /* received at or after, Unix ms */
    int limit;          /* rows, 1..DB_TELEMETRY_LIMIT_MAX */
};

/*
 * The matching windows, newest (by receive time) first, as a new JSON array
 * of {id, device, received_at, window_start (RFC 3339), window_s, model,
 * version (null when no model was serving), inferences, errors, latency_ms:
 * {p50, p95, p99, max} | null, feedback, accuracy | null, rss_bytes | null,
 * cpu_s}. An unknown ring, model or device gives an empty array. EF_EINVAL
 * (limit out of range), EF_EDB, EF_ENOMEM.
 */
int db_telemetry_query(struct db *db, const struct db_telemetry_filter *f, json_t **out);

/* Deletes at most max_rows windows received before before_ms (Unix ms), in
 * one transaction, oldest first; *deleted receives how many. Call again while
 * it returns max_rows, so that writers get the lock in between. EF_EDB. */
int db_telemetry_expire(struct db *db, int64_t before_ms, int max_rows, int64_t *deleted);

#endif

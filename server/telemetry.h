/*
 * telemetry.h - ingest of device telemetry windows: a bounded queue filled
 * by the MQTT thread and one writer thread that stores the windows in
 * batched transactions and expires old ones.
 *
 * telemetry_submit() parses a payload (telemetry_parse.h) and queues the
 * window without touching the database, so the broker client's thread never
 * waits on SQLite; when the queue is full the window is dropped and counted.
 * The writer commits a batch when it holds cfg.batch_max windows or when its
 * oldest window has waited cfg.batch_ms, whichever comes first; one
 * transaction per batch (db_telemetry.h). Every cfg.expire_every_ms it deletes
 * the windows received more than cfg.retention_ms ago, in bounded chunks so
 * that batches get the lock in between.
 *
 * Counters go to the server_stats given at start (all atomic; see server.h).
 */
#ifndef EF_TELEMETRY_H
#define EF_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

struct db;
struct server_stats;
struct telemetry;

#define TELEMETRY_QUEUE_DEFAULT       16384 /* windows waiting at most */
#define TELEMETRY_BATCH_DEFAULT       500   /* windows per transaction at most */
#define TELEMETRY_BATCH_MS_DEFAULT    200   /* ms a window waits for its batch at most */
#define TELEMETRY_RETENTION_H_DEFAULT 168   /* hours raw windows are kept */
#define TELEMETRY_EXPIRE_EVERY_MS     60000 /* ms between retention passes */

struct telemetry_config {
    size_t queue_max;        /* windows the queue holds, >= 1 */
    size_t batch_max;        /* windows per transaction, 1..queue_max */
    int64_t batch_ms;        /* ms the oldest queued window waits for more, >= 0 */
    int64_t retention_ms;    /* windows received longer ago than this are deleted, > 0 */
    int64_t expire_every_ms; /* ms between retention passes, > 0 */
};

/* Fills cfg with the defaults above. */
void telemetry_config_default(struct telemetry_config *cfg);

/* Starts the writer thread over db (borrowed, must outlive the writer),
 * counting into stats (borrowed, may be NULL). The first retention pass runs
 * at start. *out is owned by the caller (telemetry_stop). EF_EINVAL for a
 * bad config, EF_ENOMEM, EF_EIO (no thread). */
int telemetry_start(struct db *db, const struct telemetry_config *cfg, struct server_stats *stats,
                    struct telemetry **out);

/* Stops taking windows, stores what is queued, joins the writer and frees;
 * accepts NULL. No telemetry_submit may run during or after it. */
void telemetry_stop(struct telemetry *t);

/* Parses one payload that device_id published, received at received_at
 * (Unix ms), and queues it for the writer; called from the MQTT thread,
 * never blocks on the database. 0 when queued; EF_ETOOBIG, EF_EPARSE,
 * EF_EINVAL when malformed (counted, logged at most every few seconds);
 * EF_EBUSY when the queue is full (dropped and counted); EF_EUNSUPPORTED
 * when t is NULL (no writer: the window is ignored). */
int telemetry_submit(struct telemetry *t, const char *device_id, const void *payload, size_t len,
                     int64_t received_at);

/* Blocks until every window queued before the call has been written (or
 * failed); for tests and orderly shutdown. Accepts NULL. */
void telemetry_flush(struct telemetry *t);

#endif

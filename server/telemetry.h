/*
 * telemetry.h - ingest of device telemetry windows: a bounded queue filled
 * by the MQTT thread and one writer thread that stores the windows in
 * batched transactions and expires old ones.
 *
 * telemetry_submit() checks the device id and the size of a payload and
 * queues a copy, without parsing it or touching the database, so that the
 * broker client's thread drains the broker as fast as a plain subscriber
 * (at QoS 0 the broker drops what a slow subscriber leaves queued); when the
 * queue is full the window is dropped and counted. The writer takes a batch
 * when it holds cfg.batch_max windows or when its oldest window has waited
 * cfg.batch_ms, whichever comes first, parses each payload
 * (telemetry_parse.h; malformed ones are counted and logged), and stores the
 * windows in one transaction per batch (db_telemetry.h), which also updates
 * the per-minute rollups. Every cfg.expire_every_ms it deletes the windows received (and the
 * rollup minutes ended) more than cfg.retention_ms ago, in bounded chunks so
 * that batches get the lock in between. The queue is bounded in windows and
 * in bytes, so that large windows cannot exhaust memory.
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
#define TELEMETRY_QUEUE_BYTES_DEFAULT (64u * 1024u * 1024u) /* payload bytes queued at most */

struct telemetry_config {
    size_t queue_max;        /* windows the queue holds, >= 1 */
    size_t batch_max;        /* windows per transaction, 1..queue_max */
    int64_t batch_ms;        /* ms the oldest queued window waits for more, >= 0 */
    int64_t retention_ms;    /* windows received longer ago than this are deleted, > 0 */
    int64_t expire_every_ms; /* ms between retention passes, > 0 */
    size_t queue_max_bytes;  /* payload bytes the queue holds, >= TELEMETRY_MAX_BYTES */
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

/* Queues a copy of one payload that device_id published, received at
 * received_at (Unix ms), for the writer to parse and store; called from the
 * MQTT thread, never parses, never blocks on the database. 0 when queued (a
 * malformed payload is counted by the writer, and not stored); EF_EINVAL (bad
 * device id) and EF_ETOOBIG (over TELEMETRY_MAX_BYTES), counted as
 * malformed and logged at most every few seconds; EF_EBUSY when the queue is
 * full in windows or bytes, EF_ENOMEM (dropped and counted); EF_EUNSUPPORTED
 * when t is NULL (no writer: the window is ignored). */
int telemetry_submit(struct telemetry *t, const char *device_id, const void *payload, size_t len,
                     int64_t received_at);

/* Blocks until every window queued before the call has been written (or
 * failed); for tests and orderly shutdown. Accepts NULL. */
void telemetry_flush(struct telemetry *t);

#endif

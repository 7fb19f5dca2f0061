/*
 * report_queue.h - ingest of what devices report about themselves (their
 * `reported` and `status` topics): a bounded queue filled by the MQTT thread
 * and one writer thread that applies the messages in batched transactions.
 *
 * The server is the one subscriber that receives every device's reports. A
 * rollout over a large fleet makes every device report several steps within
 * seconds, and the broker drops what a slow subscriber leaves queued beyond
 * its max_queued_messages: a lost `committed` report leaves a rollout
 * waiting. So report_queue_submit() only checks the device id and the size
 * of a payload and queues a copy, without parsing it or touching the
 * database, and the MQTT thread drains the broker as fast as a plain
 * subscriber would; when the queue is full the report is dropped and
 * counted. The writer takes a batch when it holds cfg.batch_max reports or
 * when its oldest report has waited cfg.batch_ms, whichever comes first,
 * parses each payload (report.h; malformed ones are counted and logged),
 * and applies the reports with db_device_report (db_fleet.h) in queue order,
 * which is each device's publication order, in one transaction per batch.
 * Status words (`online`, `offline`; db_device_seen) take the same queue, so
 * that a device's status and reports are applied in the order the broker
 * delivered them, and the burst of retained status words a (re)connect
 * brings is drained as fast. Below and in the counters, a report is a
 * message of either topic.
 * A batch whose transaction fails is applied again one report per
 * transaction, so that one report the database refuses loses no other. The
 * rollout engine and the monitor read what the reports wrote on their next
 * tick, as before; a report changes no assignment, so the check-in cache is
 * not told of it. The queue is bounded in reports and in bytes.
 *
 * Counters go to the server_stats given at start (all atomic; see server.h).
 */
#ifndef EF_REPORT_QUEUE_H
#define EF_REPORT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct db;
struct server_stats;
struct report_queue;

#define REPORT_QUEUE_DEFAULT       65536 /* reports waiting at most */
#define REPORT_BATCH_DEFAULT       256   /* reports per transaction at most */
#define REPORT_BATCH_MS_DEFAULT    20    /* ms a report waits for its batch at most */
#define REPORT_QUEUE_BYTES_DEFAULT (32u * 1024u * 1024u) /* payload bytes queued at most */

/* The device topic a queued message came on. */
enum report_topic {
    REPORT_TOPIC_REPORTED, /* `reported`: a deployment state (report.h) */
    REPORT_TOPIC_STATUS,   /* `status`: online or offline, or empty (a cleared retained word) */
};

struct report_queue_config {
    size_t queue_max;       /* reports the queue holds, >= 1 */
    size_t batch_max;       /* reports per transaction, 1..queue_max */
    int64_t batch_ms;       /* ms the oldest queued report waits for more, >= 0 */
    size_t queue_max_bytes; /* payload bytes the queue holds, >= REPORT_MAX_BYTES */
};

/* Fills cfg with the defaults above. */
void report_queue_config_default(struct report_queue_config *cfg);

/* Starts the writer thread over db (borrowed, must outlive the writer),
 * counting into stats (borrowed, may be NULL). *out is owned by the caller
 * (report_queue_stop). EF_EINVAL for a bad config, EF_ENOMEM, EF_EIO (no
 * thread). */
int report_queue_start(struct db *db, const struct report_queue_config *cfg,
                       struct server_stats *stats, struct report_queue **out);

/* Stops taking reports, applies what is queued, joins the writer and frees;
 * accepts NULL. No report_queue_submit may run during or after it. */
void report_queue_stop(struct report_queue *q);

/* Queues a copy of one payload that device_id published on its topic
 * `topic`, received at received_at (Unix ms: the report's time), for the
 * writer to parse and apply; called from the MQTT thread, never parses,
 * never blocks on the database. 0 when queued (a malformed payload is
 * counted by the writer and changes nothing, an empty status is ignored);
 * EF_EINVAL (bad device id or topic) and
 * EF_ETOOBIG (over REPORT_MAX_BYTES), counted as malformed and logged at
 * most every few seconds; EF_EBUSY when the queue is full in reports or
 * bytes, EF_ENOMEM (dropped, counted and logged at most every few seconds);
 * EF_EUNSUPPORTED when q is NULL (no writer: the report is ignored). */
int report_queue_submit(struct report_queue *q, enum report_topic topic, const char *device_id,
                        const void *payload, size_t len, int64_t received_at);

/* Blocks until every report queued before the call has been applied (or
 * failed); for tests and orderly shutdown. Accepts NULL. */
void report_queue_flush(struct report_queue *q);

#endif

/*
 * report_queue.c - the report ingest: a bounded queue of raw `reported` and
 * `status` payloads between the MQTT thread and one writer thread that
 * parses them and applies them in batched transactions.
 */
#include "server/report_queue.h"
#include "server/batch_queue.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/report.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/log.h"
#include "common/topic.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_WARN_EVERY_MS 10000 /* ms between two warnings of one kind */

/* What the writer made of one queued report. */
struct parsed {
    bool parsed; /* it parsed, and is to be applied */
    bool online; /* a status word parsed as online */
};

struct report_queue {
    struct db *db;                 /* borrowed */
    struct server_stats *stats;    /* borrowed, or own_stats */
    struct server_stats own_stats; /* counters when the caller gave none */
    struct report_queue_config cfg;
    struct batch_queue *queue;            /* the payloads and the writer, owned */
    struct parsed *parsed;                /* the writer's, per item of a batch, cfg.batch_max */
    struct report *reports;               /* the batch parsed, cfg.batch_max, owned */
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

/* Counts one malformed report of a topic and warns at most every few
 * seconds. */
static void malformed(struct report_queue *q, enum report_topic topic, const char *device_id,
                      int rc, const char *msg)
{
    char quoted[200];
    uint64_t n = atomic_fetch_add(&q->stats->report_malformed, 1) + 1;
    if (batch_queue_warn_due(&q->malformed_warned, REPORT_WARN_EVERY_MS))
        ef_warn(topic == REPORT_TOPIC_STATUS ? "mqtt_bad_status" : "mqtt_bad_report",
                "device=%s error=%s reason=%s total=%llu",
                ef_device_id_valid(device_id) ? device_id : "?", ef_errname(rc),
                ef_log_quote(msg, quoted, sizeof(quoted)), (unsigned long long)n);
}

int report_queue_submit(struct report_queue *q, enum report_topic topic, const char *device_id,
                        const void *payload, size_t len, int64_t received_at)
{
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
    rc = batch_queue_push(q->queue, device_id, (int)topic, payload, len, received_at);
    if (rc == EF_EBUSY || rc == EF_ENOMEM) {
        uint64_t n = atomic_fetch_add(&q->stats->report_dropped, 1) + 1;
        if (batch_queue_warn_due(&q->dropped_warned, REPORT_WARN_EVERY_MS))
            ef_warn("report_dropped",
                    "device=%s reason=%s queue_max=%zu queue_max_bytes=%zu total=%llu", device_id,
                    rc == EF_EBUSY ? "queue_full" : "out_of_memory", q->cfg.queue_max,
                    q->cfg.queue_max_bytes, (unsigned long long)n);
        goto out;
    }
    atomic_fetch_add(&q->stats->report_received, 1);
out:
    return rc;
}

/* Parses one queued payload into e (status) or *r (reported); false when
 * there is nothing to apply: malformed (counted and logged) or an empty
 * status, which is a cleared retained message. */
static bool parse(struct report_queue *q, const struct batch_queue_item *e, struct parsed *p,
                  struct report *r)
{
    enum report_topic topic = (enum report_topic)e->tag;
    char msg[160];
    int rc;
    if (topic == REPORT_TOPIC_STATUS) {
        if (e->len == 6 && memcmp(e->payload, "online", 6) == 0)
            p->online = true;
        else if (e->len == 7 && memcmp(e->payload, "offline", 7) == 0)
            p->online = false;
        else if (e->len == 0)
            return false;
        else {
            malformed(q, topic, e->device_id, EF_EINVAL, "status neither online nor offline");
            return false;
        }
        return true;
    }
    if ((rc = report_parse(e->payload, e->len, r, msg, sizeof(msg))) != 0) {
        malformed(q, topic, e->device_id, rc, msg);
        return false;
    }
    return true;
}

/* Applies one parsed report inside the caller's transaction, or in its own
 * when the caller has none. 0 (applied), EF_ENOENT (no such active device:
 * nothing written) or the database's error. */
static int apply(struct report_queue *q, const struct batch_queue_item *e, const struct parsed *p,
                 const struct report *r)
{
    int rc;
    if (e->tag == REPORT_TOPIC_STATUS) {
        rc = db_device_seen(q->db, e->device_id, p->online, e->received_at);
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
static void write_batch(void *ctx, struct batch_queue_item *batch, size_t n)
{
    struct report_queue *q = ctx;
    uint64_t stored = 0, ignored = 0, failed = 0, parsed = 0;
    int64_t started = ef_mono_ms();
    int rc;
    for (size_t i = 0; i < n; i++) {
        q->parsed[i].parsed = parse(q, &batch[i], &q->parsed[i], &q->reports[i]);
        parsed += q->parsed[i].parsed;
        free(batch[i].payload);
        batch[i].payload = NULL;
    }
    rc = parsed ? db_tx_begin(q->db) : 0;
    if (rc == 0 && parsed) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!q->parsed[i].parsed)
                continue;
            rc = apply(q, &batch[i], &q->parsed[i], &q->reports[i]);
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
            if (!q->parsed[i].parsed)
                continue;
            rc = apply(q, &batch[i], &q->parsed[i], &q->reports[i]);
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

static void report_queue_free(struct report_queue *q)
{
    if (!q)
        return;
    free(q->parsed);
    free(q->reports);
    free(q);
}

int report_queue_start(struct db *db, const struct report_queue_config *cfg,
                       struct server_stats *stats, struct report_queue **out)
{
    int rc = 0;
    struct report_queue *q = NULL;
    *out = NULL;
    if (!db || !cfg || cfg->queue_max < 1 || cfg->batch_max < 1 ||
        cfg->batch_max > cfg->queue_max || cfg->batch_ms < 0 ||
        cfg->queue_max_bytes < REPORT_MAX_BYTES ||
        cfg->queue_max > SIZE_MAX / sizeof(struct batch_queue_item) ||
        cfg->batch_max > SIZE_MAX / sizeof(struct report))
        return EF_EINVAL;
    if (!(q = calloc(1, sizeof(*q))))
        return EF_ENOMEM;
    q->db = db;
    q->cfg = *cfg;
    q->stats = stats ? stats : &q->own_stats;
    q->parsed = calloc(cfg->batch_max, sizeof(*q->parsed));
    q->reports = calloc(cfg->batch_max, sizeof(*q->reports));
    if (!q->parsed || !q->reports) {
        rc = EF_ENOMEM;
        goto out;
    }
    struct batch_queue_config qc = {.queue_max = cfg->queue_max,
                                    .batch_max = cfg->batch_max,
                                    .batch_ms = cfg->batch_ms,
                                    .queue_max_bytes = cfg->queue_max_bytes,
                                    .write_batch = write_batch,
                                    .ctx = q,
                                    .depth = &q->stats->report_queue_depth};
    if ((rc = batch_queue_start(&qc, &q->queue)) != 0)
        goto out;
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
    if (q)
        batch_queue_flush(q->queue);
}

void report_queue_stop(struct report_queue *q)
{
    if (!q)
        return;
    size_t pending = batch_queue_stop(q->queue);
    ef_info("report_queue_stopped", "drained=%zu", pending);
    report_queue_free(q);
}

/*
 * db_telemetry.c - the SQL of raw telemetry windows: insert, ring
 * aggregates for gates, queries and expiry.
 */
#include "server/db_telemetry.h"
#include "server/db_internal.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <string.h>

int db_telemetry_insert(struct db *db, const char *device_id, int64_t received_at,
                        const struct telemetry_window *w, bool *stored)
{
    /* The EXISTS keeps windows of devices that are not (or no longer)
     * enrolled out, without a failing statement in the middle of a batch. */
    static const char sql[] =
        "INSERT INTO telemetry_windows (device_id, received_at, window_start, window_s, model,"
        " version, inferences, errors, p50, p95, p99, max_ms, accuracy, feedback, rss_bytes,"
        " cpu_s)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16"
        " WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?1 AND decommissioned_at IS NULL)";
    int rc = EF_EDB;
    if (stored)
        *stored = false;
    if (!device_id || !ef_device_id_valid(device_id) || !w || (w->model[0] && w->version < 1))
        return EF_EINVAL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, received_at);
    sqlite3_bind_int64(st, 3, w->window_start);
    sqlite3_bind_double(st, 4, w->window_s);
    if (w->model[0]) {
        sqlite3_bind_text(st, 5, w->model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, w->version);
    }
    sqlite3_bind_int64(st, 7, w->inferences);
    sqlite3_bind_int64(st, 8, w->errors);
    if (w->has_latency) {
        sqlite3_bind_double(st, 9, w->p50);
        sqlite3_bind_double(st, 10, w->p95);
        sqlite3_bind_double(st, 11, w->p99);
        sqlite3_bind_double(st, 12, w->max_ms);
    }
    if (w->has_accuracy)
        sqlite3_bind_double(st, 13, w->accuracy);
    sqlite3_bind_int64(st, 14, w->feedback);
    if (w->rss_bytes >= 0)
        sqlite3_bind_int64(st, 15, w->rss_bytes);
    sqlite3_bind_double(st, 16, w->cpu_s);
    rc = db_exec_stmt(db, st);
    if (rc == 0 && stored)
        *stored = sqlite3_changes(db->conn) == 1;
    /* The static bindings must not outlive this call. */
    sqlite3_clear_bindings(st);
out:
    db_unlock(db);
    return rc;
}

/* The devices in ring ?1 now, decommissioned ones left out. */
#define RING_DEVICES_BY_ID                                                                         \
    "SELECT dr.device_id FROM device_rings dr JOIN devices d ON d.id = dr.device_id"               \
    " WHERE dr.ring_id = ?1 AND d.decommissioned_at IS NULL"

int db_telemetry_ring_stats(struct db *db, int64_t ring_id, const char *model, int64_t version,
                            int64_t since_ms, struct ring_telemetry *out)
{
    static const char sql[] =
        "SELECT count(*), COALESCE(sum(t.inferences), 0), COALESCE(sum(t.errors), 0),"
        " COALESCE(max(CASE WHEN t.inferences > 0 THEN t.p99 END), 0.0)"
        " FROM telemetry_windows t"
        " WHERE t.model = ?2 AND t.version = ?3 AND t.received_at >= ?4"
        " AND t.device_id IN (" RING_DEVICES_BY_ID ")";
    int rc = EF_EDB, step;
    memset(out, 0, sizeof(*out));
    if (!model)
        return EF_EINVAL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, ring_id);
    db_bind_text(st, 2, model);
    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_int64(st, 4, since_ms);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->windows = sqlite3_column_int64(st, 0);
        out->inferences = sqlite3_column_int64(st, 1);
        out->errors = sqlite3_column_int64(st, 2);
        out->max_p99_ms = sqlite3_column_double(st, 3);
        rc = 0;
    } else {
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
        rc = rc ? rc : EF_EDB;
    }
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

/* clang-format off */
/* A window as the API shows it; times are converted to RFC 3339 in C. */
#define WINDOW_SELECT                                                                              \
    "SELECT t.id AS id, t.device_id AS device, t.received_at AS received_at,"                      \
    " t.window_start AS window_start, t.window_s AS window_s, t.model AS model,"                   \
    " t.version AS version, t.inferences AS inferences, t.errors AS errors,"                       \
    " CASE WHEN t.p50 IS NULL THEN NULL ELSE json_object('p50', t.p50, 'p95', t.p95,"              \
    "   'p99', t.p99, 'max', t.max_ms) END AS latency_ms_json,"                                    \
    " t.feedback AS feedback, t.accuracy AS accuracy, t.rss_bytes AS rss_bytes,"                   \
    " t.cpu_s AS cpu_s FROM telemetry_windows t WHERE t.received_at >= ?5"
/* The optional filters; ?1 model, ?2 version (0: any), ?3 device, ?4 ring name. */
#define FILTER_VERSION " AND (?2 = 0 OR t.version = ?2)"
#define FILTER_MODEL   " AND (?1 IS NULL OR t.model = ?1)" FILTER_VERSION
#define FILTER_DEVICE  " AND (?3 IS NULL OR t.device_id = ?3)"
#define RING_DEVICES                                                                               \
    "SELECT dr.device_id FROM device_rings dr JOIN rings r ON r.id = dr.ring_id"                   \
    " JOIN devices d ON d.id = dr.device_id WHERE r.name = ?4 AND d.decommissioned_at IS NULL"
#define FILTER_RING    " AND (?4 IS NULL OR t.device_id IN (" RING_DEVICES "))"
#define WINDOW_ORDER   " ORDER BY t.received_at DESC, t.id DESC LIMIT ?6"
/* clang-format on */

/* One statement per driving filter, so each can use its own index: a
 * statement whose only constraint on an index is "?x IS NULL OR col = ?x"
 * cannot use it. */
static const char sql_by_device[] =
    WINDOW_SELECT " AND t.device_id = ?3" FILTER_MODEL FILTER_RING WINDOW_ORDER;
static const char sql_by_version[] =
    WINDOW_SELECT " AND t.model = ?1 AND t.version = ?2" FILTER_DEVICE FILTER_RING WINDOW_ORDER;
static const char sql_by_model[] =
    WINDOW_SELECT " AND t.model = ?1" FILTER_VERSION FILTER_DEVICE FILTER_RING WINDOW_ORDER;
static const char sql_by_ring[] =
    WINDOW_SELECT " AND t.device_id IN (" RING_DEVICES ")" FILTER_MODEL FILTER_DEVICE WINDOW_ORDER;
static const char sql_by_time[] = WINDOW_SELECT FILTER_MODEL FILTER_DEVICE FILTER_RING WINDOW_ORDER;

/* Replaces the Unix-ms integer member key of row by its RFC 3339 text. */
static void time_member(json_t *row, const char *key)
{
    char text[EF_TIME_STR_SIZE];
    json_t *v = json_object_get(row, key);
    if (!json_is_integer(v))
        return;
    ef_time_format(json_integer_value(v), text, sizeof(text));
    json_object_set_new(row, key, json_string(text));
}

int db_telemetry_query(struct db *db, const struct db_telemetry_filter *f, json_t **out)
{
    const char *sql = sql_by_time;
    json_t *row;
    size_t i;
    int rc = EF_EDB;
    *out = NULL;
    if (f->limit < 1 || f->limit > DB_TELEMETRY_LIMIT_MAX || (f->version && !f->model))
        return EF_EINVAL;
    if (f->device)
        sql = sql_by_device;
    else if (f->model && f->version)
        sql = sql_by_version;
    else if (f->model)
        sql = sql_by_model;
    else if (f->ring)
        sql = sql_by_ring;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        db_bind_text(st, 1, f->model);
        sqlite3_bind_int64(st, 2, f->model ? f->version : 0);
        db_bind_text(st, 3, f->device);
        db_bind_text(st, 4, f->ring);
        sqlite3_bind_int64(st, 5, f->since);
        sqlite3_bind_int(st, 6, f->limit);
        rc = db_rows_json(db, st, out);
    }
    db_unlock(db);
    /* On failure *out is NULL and this does nothing. */
    json_array_foreach(*out, i, row)
    {
        time_member(row, "received_at");
        time_member(row, "window_start");
    }
    return rc;
}

int db_telemetry_expire(struct db *db, int64_t before_ms, int max_rows, int64_t *deleted)
{
    static const char sql[] =
        "DELETE FROM telemetry_windows WHERE id IN (SELECT id FROM telemetry_windows"
        " WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";
    sqlite3_stmt *st = NULL;
    int rc = db_tx_begin(db);
    *deleted = 0;
    if (rc != 0)
        goto out;
    rc = (st = db_stmt(db, sql)) ? 0 : EF_EDB;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int(st, 2, max_rows);
        if ((rc = db_exec_stmt(db, st)) == 0)
            *deleted = sqlite3_changes(db->conn);
    }
    rc = db_tx_end(db, rc);
    if (rc != 0)
        *deleted = 0;
out:
    return rc;
}

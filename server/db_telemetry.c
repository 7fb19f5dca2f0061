/*
 * db_telemetry.c - the SQL of raw telemetry windows: insert, ring
 * aggregates for gates, queries and expiry.
 */
#include "server/db_telemetry.h"
#include "server/db_internal.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <stdlib.h>
#include <string.h>

/* The rollup key of a stored window: model version x ring x minute. */
struct rollup_key {
    const char *model; /* borrowed from the window */
    int64_t version;
    int64_t ring_id;
    int64_t minute; /* Unix ms, a multiple of DB_TELEMETRY_MINUTE_MS */
};

/* Reads the rollup row of key k into *m (zeros when there is none yet). */
static int rollup_read(struct db *db, const struct rollup_key *k, struct metric_sums *m)
{
    static const char sql[] =
        "SELECT windows, inferences, errors, feedback, correct, p99_sum, p99_max,"
        " latency_windows, drift_sum, drift_max, drift_windows, confidence_sum,"
        " confidence_windows, shadow_inferences, shadow_agreed, shadow_feedback, shadow_correct"
        " FROM telemetry_rollups WHERE model = ?1 AND version = ?2 AND ring_id = ?3"
        " AND minute = ?4";
    int rc = EF_EDB;
    sqlite3_stmt *st = db_stmt(db, sql);
    memset(m, 0, sizeof(*m));
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, k->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, k->version);
    sqlite3_bind_int64(st, 3, k->ring_id);
    sqlite3_bind_int64(st, 4, k->minute);
    rc = db_step_row(db, st);
    if (rc == 0) {
        m->windows = sqlite3_column_int64(st, 0);
        m->inferences = sqlite3_column_int64(st, 1);
        m->errors = sqlite3_column_int64(st, 2);
        m->feedback = sqlite3_column_int64(st, 3);
        m->correct = sqlite3_column_int64(st, 4);
        m->p99_sum = sqlite3_column_double(st, 5);
        m->p99_max = sqlite3_column_double(st, 6); /* 0 for NULL, as metric_sums wants */
        m->latency_windows = sqlite3_column_int64(st, 7);
        m->drift_sum = sqlite3_column_double(st, 8);
        m->drift_max = sqlite3_column_double(st, 9);
        m->drift_windows = sqlite3_column_int64(st, 10);
        m->confidence_sum = sqlite3_column_double(st, 11);
        m->confidence_windows = sqlite3_column_int64(st, 12);
        m->shadow_inferences = sqlite3_column_int64(st, 13);
        m->shadow_agreed = sqlite3_column_double(st, 14);
        m->shadow_feedback = sqlite3_column_int64(st, 15);
        m->shadow_correct = sqlite3_column_double(st, 16);
    } else if (rc == EF_ENOENT) {
        rc = 0;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Writes *m as the whole rollup row of key k. */
static int rollup_write(struct db *db, const struct rollup_key *k, const struct metric_sums *m)
{
    static const char sql[] =
        "INSERT INTO telemetry_rollups (model, version, ring_id, minute, windows, inferences,"
        " errors, feedback, correct, p99_sum, p99_max, latency_windows, drift_sum, drift_max,"
        " drift_windows, confidence_sum, confidence_windows, shadow_inferences, shadow_agreed,"
        " shadow_feedback, shadow_correct)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
        " ?18, ?19, ?20, ?21)"
        " ON CONFLICT (model, version, ring_id, minute) DO UPDATE SET"
        " windows = excluded.windows, inferences = excluded.inferences,"
        " errors = excluded.errors, feedback = excluded.feedback, correct = excluded.correct,"
        " p99_sum = excluded.p99_sum, p99_max = excluded.p99_max,"
        " latency_windows = excluded.latency_windows, drift_sum = excluded.drift_sum,"
        " drift_max = excluded.drift_max, drift_windows = excluded.drift_windows,"
        " confidence_sum = excluded.confidence_sum,"
        " confidence_windows = excluded.confidence_windows,"
        " shadow_inferences = excluded.shadow_inferences,"
        " shadow_agreed = excluded.shadow_agreed, shadow_feedback = excluded.shadow_feedback,"
        " shadow_correct = excluded.shadow_correct";
    int rc = EF_EDB;
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, k->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, k->version);
    sqlite3_bind_int64(st, 3, k->ring_id);
    sqlite3_bind_int64(st, 4, k->minute);
    sqlite3_bind_int64(st, 5, m->windows);
    sqlite3_bind_int64(st, 6, m->inferences);
    sqlite3_bind_int64(st, 7, m->errors);
    sqlite3_bind_int64(st, 8, m->feedback);
    sqlite3_bind_int64(st, 9, m->correct);
    sqlite3_bind_double(st, 10, m->p99_sum);
    if (m->latency_windows > 0)
        sqlite3_bind_double(st, 11, m->p99_max);
    sqlite3_bind_int64(st, 12, m->latency_windows);
    sqlite3_bind_double(st, 13, m->drift_sum);
    if (m->drift_windows > 0)
        sqlite3_bind_double(st, 14, m->drift_max);
    sqlite3_bind_int64(st, 15, m->drift_windows);
    sqlite3_bind_double(st, 16, m->confidence_sum);
    sqlite3_bind_int64(st, 17, m->confidence_windows);
    sqlite3_bind_int64(st, 18, m->shadow_inferences);
    sqlite3_bind_double(st, 19, m->shadow_agreed);
    sqlite3_bind_int64(st, 20, m->shadow_feedback);
    sqlite3_bind_double(st, 21, m->shadow_correct);
    rc = db_exec_stmt(db, st);
    sqlite3_clear_bindings(st);
    return rc;
}

static bool rollup_key_equal(const struct rollup_key *a, const struct rollup_key *b)
{
    return a->version == b->version && a->ring_id == b->ring_id && a->minute == b->minute &&
           strcmp(a->model, b->model) == 0;
}

/* Adds the stored windows of rows[0..n) that name a model to their rollup
 * rows: each key once, read, then its windows added in row order, then
 * written. The sums are those that adding the windows one by one to the
 * row would give, to the last bit; only the statements are fewer. */
static int rollups_add(struct db *db, const struct db_telemetry_row *rows, const int64_t *rings,
                       size_t n)
{
    struct rollup_key *keys = NULL;
    size_t *key_of = NULL, nkeys = 0;
    int rc = 0;
    if (n == 0)
        return 0;
    keys = malloc(n * sizeof(*keys));
    key_of = malloc(n * sizeof(*key_of));
    if (!keys || !key_of) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct telemetry_window *w = rows[i].window;
        struct rollup_key k = {w->model, w->version, rings[i],
                               rows[i].received_at - rows[i].received_at % DB_TELEMETRY_MINUTE_MS};
        size_t j = nkeys;
        key_of[i] = SIZE_MAX;
        if (!rows[i].stored || !w->model[0])
            continue;
        /* The last key first: a batch's windows mostly share a few keys. */
        if (nkeys > 0 && rollup_key_equal(&keys[nkeys - 1], &k))
            j = nkeys - 1;
        else
            for (j = 0; j < nkeys && !rollup_key_equal(&keys[j], &k); j++)
                ;
        if (j == nkeys)
            keys[nkeys++] = k;
        key_of[i] = j;
    }
    for (size_t j = 0; j < nkeys && rc == 0; j++) {
        struct metric_sums m;
        if ((rc = rollup_read(db, &keys[j], &m)) != 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (key_of[i] == j)
                metric_sums_add_window(&m, rows[i].window);
        rc = rollup_write(db, &keys[j], &m);
    }
out:
    free(keys);
    free(key_of);
    return rc;
}

/* The ring of device_id now into *ring_id (0 when in none); EF_ENOENT when
 * the device is not enrolled (unknown or decommissioned). */
static int device_ring(struct db *db, const char *device_id, int64_t *ring_id)
{
    static const char sql[] =
        "SELECT COALESCE((SELECT dr.ring_id FROM device_rings dr WHERE dr.device_id = ?1), 0)"
        " FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    return db_select_int(db, sql, ring_id, "s", device_id);
}

/* Stores one window of an enrolled device in ring ring_id. */
static int window_insert(struct db *db, const struct db_telemetry_row *r, int64_t ring_id)
{
    static const char sql[] =
        "INSERT INTO telemetry_windows (device_id, received_at, window_start, window_s, model,"
        " version, inferences, errors, p50, p95, p99, max_ms, accuracy, feedback, rss_bytes,"
        " cpu_s, correct, drift, drift_output, confidence, shadow_model, shadow_version,"
        " shadow_inferences, shadow_errors, shadow_agreement, shadow_feedback, shadow_accuracy,"
        " detail, ring_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
        " ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)";
    const struct telemetry_window *w = r->window;
    int rc = EF_EDB;
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, r->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->received_at);
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
    if (w->has_correct)
        sqlite3_bind_int64(st, 17, w->correct);
    if (w->has_drift)
        sqlite3_bind_double(st, 18, w->drift);
    if (w->has_drift_output)
        sqlite3_bind_double(st, 19, w->drift_output);
    if (w->has_confidence)
        sqlite3_bind_double(st, 20, w->confidence);
    if (w->has_shadow) {
        sqlite3_bind_text(st, 21, w->shadow_model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 22, w->shadow_version);
        sqlite3_bind_int64(st, 23, w->shadow_inferences);
        sqlite3_bind_int64(st, 24, w->shadow_errors);
        if (w->has_shadow_agreement)
            sqlite3_bind_double(st, 25, w->shadow_agreement);
        sqlite3_bind_int64(st, 26, w->shadow_feedback);
        if (w->has_shadow_accuracy)
            sqlite3_bind_double(st, 27, w->shadow_accuracy);
    }
    if (w->detail)
        sqlite3_bind_text(st, 28, w->detail, (int)w->detail_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 29, ring_id);
    rc = db_exec_stmt(db, st);
    /* The static bindings must not outlive this call. */
    sqlite3_clear_bindings(st);
    return rc;
}

int db_telemetry_insert_batch(struct db *db, struct db_telemetry_row *rows, size_t n)
{
    int64_t *rings = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct telemetry_window *w = rows[i].window;
        rows[i].stored = false;
        if (!rows[i].device_id || !ef_device_id_valid(rows[i].device_id) || !w ||
            (w->model[0] && w->version < 1))
            return EF_EINVAL;
    }
    if (n == 0)
        return 0;
    if (!(rings = malloc(n * sizeof(*rings))))
        return EF_ENOMEM;
    if ((rc = db_tx_begin(db)) != 0)
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* A batch holds few devices or many: look each one up once. The
         * previous window's device is the likeliest repeat. */
        size_t j = i;
        while (j-- > 0)
            if (strcmp(rows[j].device_id, rows[i].device_id) == 0)
                break;
        if (j != SIZE_MAX) {
            rows[i].stored = rows[j].stored;
            rings[i] = rings[j];
        } else if ((rc = device_ring(db, rows[i].device_id, &rings[i])) == 0) {
            rows[i].stored = true;
        } else if (rc == EF_ENOENT) {
            rc = 0;
        }
        if (rc == 0 && rows[i].stored)
            rc = window_insert(db, &rows[i], rings[i]);
    }
    if (rc == 0)
        rc = rollups_add(db, rows, rings, n);
    rc = db_tx_end(db, rc);
out:
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            rows[i].stored = false;
    free(rings);
    return rc;
}

int db_telemetry_insert(struct db *db, const char *device_id, int64_t received_at,
                        const struct telemetry_window *w, bool *stored)
{
    struct db_telemetry_row row = {device_id, received_at, w, false};
    int rc = db_telemetry_insert_batch(db, &row, 1);
    if (stored)
        *stored = row.stored;
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
    " t.version AS version, (SELECT r.name FROM rings r WHERE r.id = t.ring_id) AS ring,"         \
    " t.inferences AS inferences, t.errors AS errors,"                                             \
    " CASE WHEN t.p50 IS NULL THEN NULL ELSE json_object('p50', t.p50, 'p95', t.p95,"              \
    "   'p99', t.p99, 'max', t.max_ms) END AS latency_ms_json,"                                    \
    " t.feedback AS feedback, t.accuracy AS accuracy, t.correct AS correct,"                       \
    " t.drift AS drift, t.drift_output AS drift_output, t.confidence AS confidence,"               \
    " CASE WHEN t.shadow_model IS NULL THEN NULL ELSE json_object("                                \
    "   'model', t.shadow_model || '@' || t.shadow_version, 'inferences', t.shadow_inferences,"    \
    "   'errors', t.shadow_errors, 'agreement', t.shadow_agreement,"                               \
    "   'feedback', t.shadow_feedback, 'accuracy', t.shadow_accuracy) END AS shadow_json,"         \
    " t.detail AS detail_json, t.rss_bytes AS rss_bytes,"                                          \
    " t.cpu_s AS cpu_s FROM telemetry_windows t WHERE t.received_at >= ?5"
/* The optional filters; ?1 model, ?2 version (0: any), ?3 device, ?4 ring name. */
#define FILTER_VERSION " AND (?2 = 0 OR t.version = ?2)"
#define FILTER_MODEL   " AND (?1 IS NULL OR t.model = ?1)" FILTER_VERSION
#define FILTER_DEVICE  " AND (?3 IS NULL OR t.device_id = ?3)"
#define RING_ID        "(SELECT r.id FROM rings r WHERE r.name = ?4)"
#define FILTER_RING    " AND (?4 IS NULL OR t.ring_id = " RING_ID ")"
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
    WINDOW_SELECT " AND t.ring_id = " RING_ID FILTER_MODEL FILTER_DEVICE WINDOW_ORDER;
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

/* A number member of obj into *out and *has (false when absent or null). */
static void number_of(const json_t *obj, const char *key, bool *has, double *out)
{
    const json_t *v = json_object_get(obj, key);
    *has = json_is_number(v);
    *out = *has ? json_number_value(v) : 0;
}

/* The members of a window row (WINDOW_SELECT's shape) that metrics read,
 * back into a window, so that metric_sums_add_window is the one place that
 * says how a window counts. */
static void row_window(const json_t *row, struct telemetry_window *w)
{
    const json_t *shadow = json_object_get(row, "shadow");
    double d;
    memset(w, 0, sizeof(*w));
    w->inferences = json_integer_value(json_object_get(row, "inferences"));
    w->errors = json_integer_value(json_object_get(row, "errors"));
    w->feedback = json_integer_value(json_object_get(row, "feedback"));
    number_of(row, "accuracy", &w->has_accuracy, &w->accuracy);
    number_of(row, "correct", &w->has_correct, &d);
    w->correct = (int64_t)d;
    number_of(json_object_get(row, "latency_ms"), "p99", &w->has_latency, &w->p99);
    number_of(row, "drift", &w->has_drift, &w->drift);
    number_of(row, "drift_output", &w->has_drift_output, &w->drift_output);
    number_of(row, "confidence", &w->has_confidence, &w->confidence);
    if ((w->has_shadow = json_is_object(shadow))) {
        w->shadow_inferences = json_integer_value(json_object_get(shadow, "inferences"));
        w->shadow_feedback = json_integer_value(json_object_get(shadow, "feedback"));
        number_of(shadow, "agreement", &w->has_shadow_agreement, &w->shadow_agreement);
        number_of(shadow, "accuracy", &w->has_shadow_accuracy, &w->shadow_accuracy);
    }
}

/* Sets member "value" of row to metric m of its window, or null. */
static void value_member(json_t *row, enum metric m)
{
    struct telemetry_window w;
    struct metric_sums sums;
    double value;
    row_window(row, &w);
    memset(&sums, 0, sizeof(sums));
    metric_sums_add_window(&sums, &w);
    json_object_set_new(row, "value",
                        metric_sums_value(&sums, m, &value) ? json_real(value) : json_null());
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
        if (f->metric)
            value_member(row, *f->metric);
    }
    return rc;
}

/* The sums of a rollup row read from column first on, in the order of
 * ROLLUP_SUMS. */
#define ROLLUP_SUMS                                                                                \
    "windows, inferences, errors, feedback, correct, p99_sum, p99_max, latency_windows,"           \
    " drift_sum, drift_max, drift_windows, confidence_sum, confidence_windows,"                    \
    " shadow_inferences, shadow_agreed, shadow_feedback, shadow_correct"

static void rollup_sums(sqlite3_stmt *st, int c, struct metric_sums *m)
{
    memset(m, 0, sizeof(*m));
    m->windows = sqlite3_column_int64(st, c);
    m->inferences = sqlite3_column_int64(st, c + 1);
    m->errors = sqlite3_column_int64(st, c + 2);
    m->feedback = sqlite3_column_int64(st, c + 3);
    m->correct = sqlite3_column_int64(st, c + 4);
    m->p99_sum = sqlite3_column_double(st, c + 5);
    m->p99_max = sqlite3_column_double(st, c + 6);
    m->latency_windows = sqlite3_column_int64(st, c + 7);
    m->drift_sum = sqlite3_column_double(st, c + 8);
    m->drift_max = sqlite3_column_double(st, c + 9);
    m->drift_windows = sqlite3_column_int64(st, c + 10);
    m->confidence_sum = sqlite3_column_double(st, c + 11);
    m->confidence_windows = sqlite3_column_int64(st, c + 12);
    m->shadow_inferences = sqlite3_column_int64(st, c + 13);
    m->shadow_agreed = sqlite3_column_double(st, c + 14);
    m->shadow_feedback = sqlite3_column_int64(st, c + 15);
    m->shadow_correct = sqlite3_column_double(st, c + 16);
}

/* What the rollup row callback builds. */
struct rollup_read {
    enum metric metric;
    json_t *series;  /* the array being filled, borrowed from the result */
    json_t *points;  /* the current series' points, borrowed */
    int64_t version; /* the current series' key */
    int64_t ring_id; /* likewise */
    size_t rows;     /* rows read */
};

static int rollup_row(sqlite3_stmt *st, void *arg)
{
    struct rollup_read *r = arg;
    struct metric_sums m;
    double value;
    int64_t version = sqlite3_column_int64(st, 0), ring_id = sqlite3_column_int64(st, 1);
    if (++r->rows > DB_TELEMETRY_POINTS_MAX)
        return EF_ETOOBIG;
    rollup_sums(st, 4, &m);
    if (!metric_sums_value(&m, r->metric, &value))
        return 0;
    if (!r->points || version != r->version || ring_id != r->ring_id) {
        const char *ring = (const char *)sqlite3_column_text(st, 2);
        json_t *s =
            json_pack("{s:I, s:s?, s:[]}", "version", (json_int_t)version, "ring", ring, "points");
        if (!s || json_array_append_new(r->series, s) != 0)
            return EF_ENOMEM;
        r->points = json_object_get(s, "points");
        r->version = version;
        r->ring_id = ring_id;
    }
    if (json_array_append_new(r->points,
                              json_pack("[I, f, I]", (json_int_t)sqlite3_column_int64(st, 3), value,
                                        (json_int_t)m.windows)) != 0)
        return EF_ENOMEM;
    return 0;
}

int db_telemetry_rollups(struct db *db, const struct db_rollup_filter *f, json_t **out)
{
    static const char sql[] =
        "SELECT ro.version, ro.ring_id, (SELECT r.name FROM rings r WHERE r.id = ro.ring_id),"
        " ro.minute, " ROLLUP_SUMS " FROM telemetry_rollups ro"
        " WHERE ro.model = ?1 AND (?2 = 0 OR ro.version = ?2)"
        " AND (?3 IS NULL OR ro.ring_id = (SELECT r.id FROM rings r WHERE r.name = ?3))"
        " AND ro.minute >= ?4 AND ro.minute <= ?5"
        " ORDER BY ro.version, ro.ring_id, ro.minute";
    struct rollup_read r = {.metric = f->metric};
    json_t *doc = NULL;
    int rc;
    *out = NULL;
    if (!f->model || !metric_rolled_up(f->metric))
        return EF_EINVAL;
    doc = json_pack("{s:s, s:s, s:[]}", "model", f->model, "metric", metric_name(f->metric),
                    "series");
    if (!doc)
        return EF_ENOMEM;
    r.series = json_object_get(doc, "series");
    rc = db_select(db, sql, DB_ALL, rollup_row, &r, "sisii", f->model, f->version, f->ring,
                   f->since, f->until > 0 ? f->until : INT64_MAX);
    if (rc == 0)
        *out = doc;
    else
        json_decref(doc);
    return rc;
}

/* What the device sums row callback fills. */
struct sums_read {
    struct db_device_sums *items; /* owned until handed out */
    size_t count, cap;
};

static int sums_row(sqlite3_stmt *st, void *arg)
{
    struct sums_read *r = arg;
    const char *device = (const char *)sqlite3_column_text(st, 0);
    struct telemetry_window w;
    if (!device)
        return EF_EDB;
    if (r->count == 0 || strcmp(r->items[r->count - 1].device_id, device) != 0) {
        if (r->count == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 16;
            struct db_device_sums *items = realloc(r->items, cap * sizeof(*items));
            if (!items)
                return EF_ENOMEM;
            r->items = items;
            r->cap = cap;
        }
        memset(&r->items[r->count], 0, sizeof(r->items[r->count]));
        db_column_copy(st, 0, r->items[r->count].device_id, sizeof(r->items[r->count].device_id));
        r->count++;
    }
    memset(&w, 0, sizeof(w));
    w.inferences = sqlite3_column_int64(st, 1);
    w.errors = sqlite3_column_int64(st, 2);
    w.feedback = sqlite3_column_int64(st, 3);
    if ((w.has_accuracy = sqlite3_column_type(st, 4) != SQLITE_NULL))
        w.accuracy = sqlite3_column_double(st, 4);
    if ((w.has_correct = sqlite3_column_type(st, 5) != SQLITE_NULL))
        w.correct = sqlite3_column_int64(st, 5);
    if ((w.has_latency = sqlite3_column_type(st, 6) != SQLITE_NULL))
        w.p99 = sqlite3_column_double(st, 6);
    if ((w.has_drift = sqlite3_column_type(st, 7) != SQLITE_NULL))
        w.drift = sqlite3_column_double(st, 7);
    if ((w.has_drift_output = sqlite3_column_type(st, 8) != SQLITE_NULL))
        w.drift_output = sqlite3_column_double(st, 8);
    if ((w.has_confidence = sqlite3_column_type(st, 9) != SQLITE_NULL))
        w.confidence = sqlite3_column_double(st, 9);
    if ((w.has_shadow = sqlite3_column_type(st, 10) != SQLITE_NULL)) {
        w.shadow_inferences = sqlite3_column_int64(st, 10);
        if ((w.has_shadow_agreement = sqlite3_column_type(st, 11) != SQLITE_NULL))
            w.shadow_agreement = sqlite3_column_double(st, 11);
        w.shadow_feedback = sqlite3_column_int64(st, 12);
        if ((w.has_shadow_accuracy = sqlite3_column_type(st, 13) != SQLITE_NULL))
            w.shadow_accuracy = sqlite3_column_double(st, 13);
    }
    metric_sums_add_window(&r->items[r->count - 1].sums, &w);
    return 0;
}

int db_telemetry_device_sums(struct db *db, const char *model, int64_t version, int64_t ring_id,
                             int64_t since_ms, struct db_device_sums **out, size_t *count)
{
    static const char sql[] =
        "SELECT t.device_id, t.inferences, t.errors, t.feedback, t.accuracy, t.correct, t.p99,"
        " t.drift, t.drift_output, t.confidence, t.shadow_inferences, t.shadow_agreement,"
        " t.shadow_feedback, t.shadow_accuracy FROM telemetry_windows t"
        " WHERE t.model = ?1 AND t.version = ?2 AND t.received_at >= ?3"
        " AND (?4 < 0 OR t.ring_id = ?4) ORDER BY t.device_id";
    struct sums_read r = {0};
    int rc;
    *out = NULL;
    *count = 0;
    if (!model || version < 1)
        return EF_EINVAL;
    rc = db_select(db, sql, DB_ALL, sums_row, &r, "siii", model, version, since_ms, ring_id);
    if (rc == 0 && r.count > 0) {
        *out = r.items;
        *count = r.count;
        r.items = NULL;
    }
    free(r.items);
    return rc;
}

int db_telemetry_expire(struct db *db, int64_t before_ms, int max_rows, int64_t *deleted,
                        int64_t *rollups_deleted)
{
    static const char sql[] =
        "DELETE FROM telemetry_windows WHERE id IN (SELECT id FROM telemetry_windows"
        " WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";
    static const char sql_rollups[] =
        "DELETE FROM telemetry_rollups WHERE (model, version, ring_id, minute) IN"
        " (SELECT model, version, ring_id, minute FROM telemetry_rollups"
        " WHERE minute + 60000 <= ?1 ORDER BY minute LIMIT ?2)";
    int64_t rollups = 0;
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
    if (rc == 0 && (rc = (st = db_stmt(db, sql_rollups)) ? 0 : EF_EDB) == 0) {
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int(st, 2, max_rows);
        if ((rc = db_exec_stmt(db, st)) == 0)
            rollups = sqlite3_changes(db->conn);
    }
    rc = db_tx_end(db, rc);
    if (rc != 0)
        *deleted = rollups = 0;
out:
    if (rollups_deleted)
        *rollups_deleted = rollups;
    return rc;
}

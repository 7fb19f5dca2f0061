/*
 * db_collection.c - the SQL of data collection: policies, datasets and
 * samples.
 */
#include "server/db_collection.h"
#include "server/db_internal.h"
#include "common/ef_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Unix-ms column as RFC 3339 UTC with milliseconds, as ef_time_format
 * writes it (db_fleet.c reads times the same way). */
#define SQL_TIME(col) "strftime('%Y-%m-%dT%H:%M:%fZ', " col " / 1000.0, 'unixepoch')"

/* An input/output size of a version's manifest ("input" or "output"). */
#define SQL_IO_SIZE(v, key) "json_extract(CAST(" v ".manifest AS TEXT), '$." key ".size')"

/* How many samples db_dataset_export reads per page (lock held). */
#define EXPORT_PAGE 500

/* clang-format off */
/* The policy object of the REST API. */
#define POLICY_SELECT                                                                              \
    "SELECT m.name AS model, r.name AS ring,"                                                      \
    " p.enabled AS enabled,"                                                                       \
    " p.sample_rate AS sample_rate, p.max_samples AS max_samples, p.dataset_id AS dataset_id,"     \
    " " SQL_TIME("p.updated_at") " AS updated_at"                                                  \
    " FROM collection_policies p JOIN models m ON m.id = p.model_id"                               \
    " LEFT JOIN rings r ON r.id = p.ring_id AND p.ring_id != 0"

/* The dataset object of the REST API. */
#define DATASET_SELECT                                                                             \
    "SELECT d.id AS id, m.name AS model, r.name AS ring,"                                          \
    " " SQL_TIME("d.created_at") " AS created_at, d.samples AS samples, d.labelled AS labelled"    \
    " FROM datasets d JOIN models m ON m.id = d.model_id"                                          \
    " LEFT JOIN rings r ON r.id = d.ring_id AND d.ring_id != 0"
/* clang-format on */

/* Turns the integer member "enabled" of a policy object into a boolean. */
static void enabled_bool(json_t *policy)
{
    json_t *v = json_object_get(policy, "enabled");
    if (json_is_integer(v))
        json_object_set_new(policy, "enabled", json_boolean(json_integer_value(v) != 0));
}

/* The current values of one policy row. */
struct policy_row {
    bool exists;
    bool enabled;
    double sample_rate;
    int64_t max_samples;
    int64_t dataset_id; /* 0: none */
    int64_t enabled_at; /* 0: never */
};

static int read_policy_row(sqlite3_stmt *st, void *arg)
{
    struct policy_row *p = arg;
    p->exists = true;
    p->enabled = sqlite3_column_int(st, 0) != 0;
    p->sample_rate = sqlite3_column_double(st, 1);
    p->max_samples = sqlite3_column_int64(st, 2);
    p->dataset_id = sqlite3_column_int64(st, 3);
    p->enabled_at = sqlite3_column_int64(st, 4);
    return 0;
}

int db_collection_set(struct db *db, const char *model, const struct db_collection_change *c,
                      int64_t now, json_t **out)
{
    static const char sql_model[] = "SELECT id FROM models WHERE name = ?1";
    static const char sql_ring[] = "SELECT id FROM rings WHERE name = ?1";
    static const char sql_get[] =
        "SELECT enabled, sample_rate, max_samples, COALESCE(dataset_id, 0), COALESCE(enabled_at, 0)"
        " FROM collection_policies WHERE model_id = ?1 AND ring_id = ?2";
    static const char sql_open[] =
        "INSERT INTO datasets (model_id, ring_id, created_at) VALUES (?1, ?2, ?3)";
    static const char sql_put[] =
        "INSERT INTO collection_policies (model_id, ring_id, enabled, sample_rate, max_samples,"
        " dataset_id, enabled_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (model_id, ring_id) DO UPDATE SET enabled = ?3, sample_rate = ?4,"
        " max_samples = ?5, dataset_id = ?6, enabled_at = ?7, updated_at = ?8";
    static const char sql_show[] = POLICY_SELECT " WHERE p.model_id = ?1 AND p.ring_id = ?2";
    struct policy_row p = {0};
    int64_t model_id = 0, ring_id = 0, enabled_at;
    const int64_t *dataset = NULL;
    int rc;
    if (out)
        *out = NULL;
    if ((c->set_rate && !(c->sample_rate > 0 && c->sample_rate <= 1)) ||
        (c->set_max && (c->max_samples < 1 || c->max_samples > DB_COLLECTION_MAX_LIMIT)))
        return EF_EINVAL;
    if ((rc = db_tx_begin(db)) != 0)
        return rc;
    if ((rc = db_select_int(db, sql_model, &model_id, "s", model)) != 0)
        goto out;
    if (c->ring && (rc = db_select_int(db, sql_ring, &ring_id, "s", c->ring)) != 0)
        goto out;
    rc = db_select(db, sql_get, DB_ALL, read_policy_row, &p, "ii", model_id, ring_id);
    if (rc != 0)
        goto out;
    if (!p.exists) {
        p.sample_rate = DB_COLLECTION_RATE_DEFAULT;
        p.max_samples = DB_COLLECTION_MAX_DEFAULT;
    }
    if (c->set_rate)
        p.sample_rate = c->sample_rate;
    if (c->set_max)
        p.max_samples = c->max_samples;
    /* The first enabling opens the policy's dataset, which it keeps. */
    if (c->enabled && !p.dataset_id &&
        (rc = db_insert(db, sql_open, &p.dataset_id, "iii", model_id, ring_id, now)) != 0)
        goto out;
    if (p.dataset_id)
        dataset = &p.dataset_id;
    enabled_at = c->enabled && !p.enabled ? now : p.enabled_at;
    rc = db_exec(db, sql_put, "iiidiIIi", model_id, ring_id, (int64_t)c->enabled, p.sample_rate,
                 p.max_samples, dataset, enabled_at ? &enabled_at : NULL, now);
    if (rc == 0 && out &&
        (rc = db_select_json(db, sql_show, DB_ONE, out, "ii", model_id, ring_id)) == 0)
        enabled_bool(*out);
out:
    rc = db_tx_end(db, rc);
    if (rc != 0 && out) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int db_collection_list(struct db *db, const char *model, json_t **out)
{
    static const char sql_model[] = "SELECT id FROM models WHERE name = ?1";
    static const char sql[] = POLICY_SELECT " WHERE p.model_id = ?1"
                                            " ORDER BY p.ring_id != 0, r.position, r.id";
    int64_t model_id = 0;
    json_t *policy;
    size_t i;
    int rc;
    *out = NULL;
    if ((rc = db_select_int(db, sql_model, &model_id, "s", model)) != 0 ||
        (rc = db_select_json(db, sql, DB_ALL, out, "i", model_id)) != 0)
        return rc;
    json_array_foreach(*out, i, policy) enabled_bool(policy);
    return 0;
}

/* Reads the device row of db_collection_for_device. */
static int read_device(sqlite3_stmt *st, void *arg)
{
    struct db_device_policy *p = arg;
    p->ring_id = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) == SQLITE_NULL)
        return 0;
    p->has_model = true;
    p->model_id = sqlite3_column_int64(st, 1);
    db_column_copy(st, 2, p->model, sizeof(p->model));
    p->version = sqlite3_column_int64(st, 3);
    p->input_size = sqlite3_column_int(st, 4);
    p->output_size = sqlite3_column_int(st, 5);
    return 0;
}

/* Reads the policy row of db_collection_for_device. */
static int read_device_policy(sqlite3_stmt *st, void *arg)
{
    struct db_device_policy *p = arg;
    p->found = true;
    p->enabled = sqlite3_column_int(st, 0) != 0;
    p->sample_rate = sqlite3_column_double(st, 1);
    p->max_samples = sqlite3_column_int64(st, 2);
    p->dataset_id = sqlite3_column_int64(st, 3);
    return 0;
}

int db_collection_for_device(struct db *db, const char *device_id, struct db_device_policy *out)
{
    static const char sql_device[] = "SELECT dr.ring_id, m.id, m.name, v.version, " SQL_IO_SIZE(
        "v", "input") ","
                      " " SQL_IO_SIZE("v",
                                      "output") " FROM devices d"
                                                " JOIN device_rings dr ON dr.device_id = d.id"
                                                " LEFT JOIN device_slots s ON s.device_id = d.id "
                                                "AND s.slot = 'production'"
                                                " LEFT JOIN model_versions v ON v.id = s.version_id"
                                                " LEFT JOIN models m ON m.id = v.model_id"
                                                " WHERE d.id = ?1 AND d.decommissioned_at IS NULL";
    /* The ring's own policy first: it overrides the model-wide one. */
    static const char sql_policy[] =
        "SELECT enabled, sample_rate, max_samples, COALESCE(dataset_id, 0)"
        " FROM collection_policies WHERE model_id = ?1 AND ring_id IN (?2, 0)"
        " ORDER BY ring_id = 0 LIMIT 1";
    int rc;
    memset(out, 0, sizeof(*out));
    db_lock(db);
    rc = db_select(db, sql_device, DB_ONE, read_device, out, "s", device_id);
    if (rc == 0 && out->has_model)
        rc = db_select(db, sql_policy, DB_ALL, read_device_policy, out, "ii", out->model_id,
                       out->ring_id);
    db_unlock(db);
    return rc;
}

/* Reads the two sizes of db_collection_shape. */
static int read_shape(sqlite3_stmt *st, void *arg)
{
    size_t *sizes = arg;
    sizes[0] = (size_t)sqlite3_column_int64(st, 0);
    sizes[1] = (size_t)sqlite3_column_int64(st, 1);
    return 0;
}

int db_collection_shape(struct db *db, const char *model, int64_t version, size_t *input_size,
                        size_t *output_size)
{
    static const char sql[] = "SELECT " SQL_IO_SIZE("v", "input") ", " SQL_IO_SIZE(
        "v", "output") " FROM model_versions v JOIN models m ON m.id = v.model_id"
                       " WHERE m.name = ?1 AND v.version = ?2";
    size_t sizes[2] = {0, 0};
    int rc = db_select(db, sql, DB_ONE, read_shape, sizes, "si", model, version);
    *input_size = sizes[0];
    *output_size = sizes[1];
    return rc;
}

int db_dataset_current(struct db *db, const char *model, int64_t *dataset_id)
{
    /* Enabled policies first, the model-wide one before ring ones, then the
     * most recently enabled; a model collecting nowhere falls back to its
     * most recently updated dataset. */
    static const char sql[] =
        "SELECT p.dataset_id FROM collection_policies p JOIN models m ON m.id = p.model_id"
        " WHERE m.name = ?1 AND p.dataset_id IS NOT NULL"
        " ORDER BY p.enabled DESC, p.enabled AND p.ring_id != 0,"
        " CASE WHEN p.enabled THEN p.enabled_at ELSE p.updated_at END DESC, p.dataset_id DESC"
        " LIMIT 1";
    int rc;
    *dataset_id = 0;
    if (!model)
        return 0;
    rc = db_select_int(db, sql, dataset_id, "s", model);
    if (rc == EF_ENOENT) {
        *dataset_id = 0;
        rc = 0;
    }
    return rc;
}

/* The fill and cap of the dataset samples go into. */
struct dataset_fill {
    int64_t samples;
    int64_t max_samples;
};

static int read_fill(sqlite3_stmt *st, void *arg)
{
    struct dataset_fill *f = arg;
    f->samples = sqlite3_column_int64(st, 0);
    f->max_samples = sqlite3_column_int64(st, 1);
    return 0;
}

int db_samples_insert(struct db *db, int64_t dataset_id, const char *device_id, int64_t version,
                      const struct db_sample *samples, size_t n, int64_t now, size_t *accepted,
                      bool *full)
{
    static const char sql_fill[] =
        "SELECT d.samples, COALESCE(p.max_samples, 0) FROM datasets d"
        " LEFT JOIN collection_policies p ON p.dataset_id = d.id WHERE d.id = ?1";
    static const char sql_insert[] =
        "INSERT INTO samples (dataset_id, device_id, version, received_at, input, label)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    static const char sql_count[] =
        "UPDATE datasets SET samples = samples + ?2, labelled = labelled + ?3 WHERE id = ?1";
    struct dataset_fill fill = {0, 0};
    sqlite3_stmt *st;
    size_t take = 0, i;
    int64_t labelled = 0;
    int rc;
    *accepted = 0;
    *full = false;
    if ((rc = db_tx_begin(db)) != 0)
        return rc;
    if ((rc = db_select(db, sql_fill, DB_ONE, read_fill, &fill, "i", dataset_id)) != 0)
        goto out;
    if (fill.samples < fill.max_samples)
        take = (uint64_t)(fill.max_samples - fill.samples) < n
                   ? (size_t)(fill.max_samples - fill.samples)
                   : n;
    for (i = 0; i < take && rc == 0; i++) {
        const struct db_sample *s = &samples[i];
        if (!(st = db_stmt(db, sql_insert))) {
            rc = EF_EDB;
            break;
        }
        sqlite3_bind_int64(st, 1, dataset_id);
        sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_blob(st, 5, s->input, (int)(s->input_len * sizeof(double)), SQLITE_STATIC);
        if (s->label >= 0) {
            sqlite3_bind_int(st, 6, s->label);
            labelled++;
        }
        rc = db_exec_stmt(db, st);
        /* The static bindings must not outlive this call. */
        sqlite3_clear_bindings(st);
    }
    if (rc == 0 && take > 0)
        rc = db_exec(db, sql_count, "iii", dataset_id, (int64_t)take, labelled);
    if (rc == 0) {
        *accepted = take;
        *full = fill.samples + (int64_t)take >= fill.max_samples;
    }
out:
    rc = db_tx_end(db, rc);
    if (rc != 0) {
        *accepted = 0;
        *full = false;
    }
    return rc;
}

int db_datasets_list(struct db *db, const char *model, json_t **out)
{
    static const char sql[] =
        DATASET_SELECT " WHERE (?1 IS NULL OR m.name = ?1) ORDER BY d.id DESC";
    return db_select_json(db, sql, DB_ALL, out, "s", model);
}

int db_dataset_get(struct db *db, int64_t dataset_id, json_t **out)
{
    /* The newest version says what the model takes now. */
    static const char sql[] =
        "SELECT d.id AS id, m.name AS model, r.name AS ring,"
        " " SQL_TIME(
            "d.created_at") " AS created_at, d.samples AS samples,"
                            " d.labelled AS labelled,"
                            " COALESCE((SELECT " SQL_IO_SIZE(
                                "v",
                                "input") " FROM model_versions v"
                                         "   WHERE v.model_id = d.model_id ORDER BY v.version DESC "
                                         "LIMIT 1), 0) AS input_size,"
                                         " COALESCE((SELECT " SQL_IO_SIZE(
                                             "v",
                                             "output") " FROM model_versions v"
                                                       "   WHERE v.model_id = d.model_id ORDER BY "
                                                       "v.version DESC LIMIT 1), 0) AS output_size"
                                                       " FROM datasets d JOIN models m ON m.id = "
                                                       "d.model_id"
                                                       " LEFT JOIN rings r ON r.id = d.ring_id AND "
                                                       "d.ring_id != 0 WHERE d.id = ?1";
    return db_select_json(db, sql, DB_ONE, out, "i", dataset_id);
}

/* One page of db_dataset_export: at most EXPORT_PAGE labelled samples with
 * ids in (after, last], copied out so that the callback runs unlocked. */
struct export_page {
    size_t n;                    /* samples in the page */
    int64_t last_id;             /* the id of the last one */
    size_t lens[EXPORT_PAGE];    /* numbers of each input */
    int labels[EXPORT_PAGE];     /* their labels */
    double *values[EXPORT_PAGE]; /* their inputs, malloc'd */
};

static int read_export_row(sqlite3_stmt *st, void *arg)
{
    struct export_page *page = arg;
    size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
    const void *blob = sqlite3_column_blob(st, 1);
    double *values = malloc(bytes ? bytes : 1);
    if (!values)
        return EF_ENOMEM;
    if (bytes)
        memcpy(values, blob, bytes);
    page->last_id = sqlite3_column_int64(st, 0);
    page->values[page->n] = values;
    page->lens[page->n] = bytes / sizeof(double);
    page->labels[page->n] = sqlite3_column_int(st, 2);
    page->n++;
    return 0;
}

static void export_page_clear(struct export_page *page)
{
    for (size_t i = 0; i < page->n; i++)
        free(page->values[i]);
    page->n = 0;
}

int db_dataset_export(struct db *db, int64_t dataset_id, size_t input_size, int classes,
                      int (*head)(int64_t n, void *arg),
                      int (*row)(const double *input, size_t input_len, int label, void *arg),
                      void *arg)
{
    static const char sql_last[] =
        "SELECT COALESCE((SELECT max(id) FROM samples WHERE dataset_id = ?1), 0)"
        " FROM datasets WHERE id = ?1";
    static const char sql_count[] =
        "SELECT count(*) FROM samples WHERE dataset_id = ?1 AND id <= ?2"
        " AND label IS NOT NULL AND label < ?3 AND length(input) = ?4";
    static const char sql_page[] =
        "SELECT id, input, label FROM samples WHERE dataset_id = ?1 AND id > ?2 AND id <= ?3"
        " AND label IS NOT NULL AND label < ?5 AND length(input) = ?6 ORDER BY id LIMIT ?4";
    struct export_page *page = calloc(1, sizeof(*page));
    int64_t last = 0, after = 0, n = 0, bytes = (int64_t)(input_size * sizeof(double));
    int rc = page ? 0 : EF_ENOMEM;
    /* Samples stored after the export began are left for the next one;
     * samples are never deleted, so the count stays true while unlocked. */
    if (rc == 0)
        rc = db_select_int(db, sql_last, &last, "i", dataset_id);
    if (rc == 0)
        rc = db_select_int(db, sql_count, &n, "iiii", dataset_id, last, (int64_t)classes, bytes);
    if (rc == 0)
        rc = head(n, arg);
    while (rc == 0) {
        size_t got;
        rc = db_select(db, sql_page, DB_ALL, read_export_row, page, "iiiiii", dataset_id, after,
                       last, (int64_t)EXPORT_PAGE, (int64_t)classes, bytes);
        for (size_t i = 0; rc == 0 && i < page->n; i++)
            rc = row(page->values[i], page->lens[i], page->labels[i], arg);
        after = page->last_id;
        got = page->n;
        export_page_clear(page);
        if (got < EXPORT_PAGE)
            break;
    }
    if (page)
        export_page_clear(page);
    free(page);
    return rc;
}

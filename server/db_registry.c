/*
 * db_registry.c - the SQL of the registry: models and their immutable
 * versions (tables models and model_versions of schema/001_init.sql).
 */
#include "server/db_registry.h"
#include "server/db_internal.h"
#include "common/ef_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void db_version_clear(struct db_version *v)
{
    free(v->manifest);
    free(v->signature);
    memset(v, 0, sizeof(*v));
}

int db_model_create(struct db *db, const char *name, const char *description, int64_t now,
                    int64_t *id)
{
    static const char sql[] =
        "INSERT INTO models (name, description, created_at) VALUES (?1, ?2, ?3)";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, name);
    db_bind_text(st, 2, description ? description : "");
    sqlite3_bind_int64(st, 3, now);
    if ((rc = db_exec_stmt(db, st)) == 0 && id)
        *id = sqlite3_last_insert_rowid(db->conn);
out:
    db_unlock(db);
    return rc;
}

int db_model_id(struct db *db, const char *name, int64_t *id)
{
    static const char sql[] = "SELECT id FROM models WHERE name = ?1";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, name);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        rc = EF_ENOENT;
    } else {
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
    }
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

/* The columns of a model object; latest_version is NULL without versions. */
#define MODEL_COLUMNS                                                                              \
    "SELECT m.name AS name, m.description AS description, m.created_at AS created_at,"             \
    " (SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id)"                       \
    " AS latest_version FROM models m "

int db_model_get(struct db *db, const char *name, json_t **out)
{
    static const char sql[] = MODEL_COLUMNS "WHERE m.name = ?1";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        db_bind_text(st, 1, name);
        rc = db_row_json(db, st, out);
    }
    db_unlock(db);
    return rc;
}

int db_models_list(struct db *db, json_t **out)
{
    static const char sql[] = MODEL_COLUMNS "ORDER BY m.name";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st)
        rc = db_rows_json(db, st, out);
    db_unlock(db);
    return rc;
}

int db_versions_list(struct db *db, int64_t model_id, json_t **out)
{
    /* device_class comes from the stored manifest (text JSON, validated when
     * it was inserted), so version summaries say which devices may run it. */
    static const char sql[] =
        "SELECT version, sha256, size, backend,"
        " json_extract(CAST(manifest AS TEXT), '$.device_class') AS device_class, created_at"
        " FROM model_versions WHERE model_id = ?1 ORDER BY version";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        sqlite3_bind_int64(st, 1, model_id);
        rc = db_rows_json(db, st, out);
    }
    db_unlock(db);
    return rc;
}

int db_version_latest(struct db *db, int64_t model_id, int64_t *latest)
{
    static const char sql[] =
        "SELECT coalesce(max(version), 0) FROM model_versions WHERE model_id = ?1";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, model_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *latest = sqlite3_column_int64(st, 0);
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

int db_version_insert(struct db *db, int64_t model_id, int64_t version, const char *sha256,
                      int64_t size, const char *backend, const char *manifest, size_t manifest_len,
                      const char *signature, int64_t now, int64_t *id)
{
    static const char sql[] =
        "INSERT INTO model_versions (model_id, version, sha256, size, backend, manifest,"
        " signature, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    int64_t latest = 0;
    sqlite3_stmt *st = NULL;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    /* Read and write in one IMMEDIATE transaction: no other writer can slip
     * a version in between the check and the insert. */
    if ((rc = db_version_latest(db, model_id, &latest)) != 0)
        goto out;
    if (version <= latest) {
        rc = EF_ESTALE;
        goto out;
    }
    if (!(st = db_stmt(db, sql))) {
        rc = EF_EDB;
        goto out;
    }
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, version);
    db_bind_text(st, 3, sha256);
    sqlite3_bind_int64(st, 4, size);
    db_bind_text(st, 5, backend);
    /* Stored as TEXT (the column has BLOB affinity and keeps it so): the
     * bytes are JSON, which lets json_extract() read them. */
    sqlite3_bind_text(st, 6, manifest, (int)manifest_len, SQLITE_TRANSIENT);
    db_bind_text(st, 7, signature);
    sqlite3_bind_int64(st, 8, now);
    if ((rc = db_exec_stmt(db, st)) == 0 && id)
        *id = sqlite3_last_insert_rowid(db->conn);
out:
    return db_tx_end(db, rc);
}

/* Copies one row of VERSION_COLUMNS into *out. EF_ENOMEM, EF_EDB when a
 * stored value does not fit its field (a schema invariant broken). */
static int version_from_row(sqlite3_stmt *st, struct db_version *out)
{
    const char *model = (const char *)sqlite3_column_text(st, 2);
    const char *sha256 = (const char *)sqlite3_column_text(st, 4);
    const char *backend = (const char *)sqlite3_column_text(st, 6);
    const void *manifest = sqlite3_column_blob(st, 7);
    size_t manifest_len = (size_t)sqlite3_column_bytes(st, 7);
    const char *signature = (const char *)sqlite3_column_text(st, 8);
    memset(out, 0, sizeof(*out));
    if (!model || !sha256 || !backend || !signature || strlen(model) >= sizeof(out->model) ||
        strlen(sha256) >= sizeof(out->sha256) || strlen(backend) >= sizeof(out->backend))
        return EF_EDB;
    out->id = sqlite3_column_int64(st, 0);
    out->model_id = sqlite3_column_int64(st, 1);
    snprintf(out->model, sizeof(out->model), "%s", model);
    out->version = sqlite3_column_int64(st, 3);
    snprintf(out->sha256, sizeof(out->sha256), "%s", sha256);
    out->size = sqlite3_column_int64(st, 5);
    snprintf(out->backend, sizeof(out->backend), "%s", backend);
    out->created_at = sqlite3_column_int64(st, 9);
    out->manifest = malloc(manifest_len + 1);
    out->signature = strdup(signature);
    if (!out->manifest || !out->signature) {
        db_version_clear(out);
        return EF_ENOMEM;
    }
    if (manifest_len)
        memcpy(out->manifest, manifest, manifest_len);
    out->manifest[manifest_len] = '\0';
    out->manifest_len = manifest_len;
    return 0;
}

#define VERSION_COLUMNS                                                                            \
    "SELECT v.id, v.model_id, m.name, v.version, v.sha256, v.size, v.backend, v.manifest,"         \
    " v.signature, v.created_at FROM model_versions v JOIN models m ON m.id = v.model_id "

/* Steps a statement selecting VERSION_COLUMNS for at most one row. */
static int version_query(struct db *db, sqlite3_stmt *st, struct db_version *out)
{
    int rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = version_from_row(st, out);
    else if (step == SQLITE_DONE)
        rc = EF_ENOENT;
    else
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
    sqlite3_reset(st);
    return rc;
}

int db_version_get(struct db *db, const char *model, int64_t version, struct db_version *out)
{
    static const char sql[] = VERSION_COLUMNS "WHERE m.name = ?1 AND v.version = ?2";
    int rc = EF_EDB;
    memset(out, 0, sizeof(*out));
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        db_bind_text(st, 1, model);
        sqlite3_bind_int64(st, 2, version);
        rc = version_query(db, st, out);
    }
    db_unlock(db);
    return rc;
}

int db_version_get_by_id(struct db *db, int64_t id, struct db_version *out)
{
    static const char sql[] = VERSION_COLUMNS "WHERE v.id = ?1";
    int rc = EF_EDB;
    memset(out, 0, sizeof(*out));
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        rc = version_query(db, st, out);
    }
    db_unlock(db);
    return rc;
}

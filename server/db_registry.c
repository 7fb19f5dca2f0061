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
    return db_insert(db, sql, id, "ssi", name, description ? description : "", now);
}

int db_model_id(struct db *db, const char *name, int64_t *id)
{
    static const char sql[] = "SELECT id FROM models WHERE name = ?1";
    return db_select_int(db, sql, id, "s", name);
}

/* The columns of a model object; latest_version is NULL without versions. */
#define MODEL_COLUMNS                                                                              \
    "SELECT m.name AS name, m.description AS description, m.created_at AS created_at,"             \
    " (SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id)"                       \
    " AS latest_version FROM models m "

int db_model_get(struct db *db, const char *name, json_t **out)
{
    static const char sql[] = MODEL_COLUMNS "WHERE m.name = ?1";
    return db_select_json(db, sql, DB_ONE, out, "s", name);
}

int db_models_list(struct db *db, json_t **out)
{
    static const char sql[] = MODEL_COLUMNS "ORDER BY m.name";
    return db_select_json(db, sql, DB_ALL, out, NULL);
}

int db_versions_list(struct db *db, int64_t model_id, json_t **out)
{
    /* device_class comes from the stored manifest (text JSON, validated when
     * it was inserted), so version summaries say which devices may run it. */
    static const char sql[] =
        "SELECT version, sha256, size, backend,"
        " json_extract(CAST(manifest AS TEXT), '$.device_class') AS device_class, created_at"
        " FROM model_versions WHERE model_id = ?1 ORDER BY version";
    return db_select_json(db, sql, DB_ALL, out, "i", model_id);
}

int db_version_latest(struct db *db, int64_t model_id, int64_t *latest)
{
    /* An aggregate always returns its one row. */
    static const char sql[] =
        "SELECT coalesce(max(version), 0) FROM model_versions WHERE model_id = ?1";
    int rc = db_select_int(db, sql, latest, "i", model_id);
    return rc == EF_ENOENT ? EF_EDB : rc;
}

int db_version_insert(struct db *db, int64_t model_id, int64_t version, const char *sha256,
                      int64_t size, const char *backend, const char *manifest, size_t manifest_len,
                      const char *signature, int64_t now, int64_t *id)
{
    static const char sql[] =
        "INSERT INTO model_versions (model_id, version, sha256, size, backend, manifest,"
        " signature, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    int64_t latest = 0;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    /* Read and write in one IMMEDIATE transaction: no other writer can slip
     * a version in between the check and the insert. */
    if ((rc = db_version_latest(db, model_id, &latest)) == 0 && version <= latest)
        rc = EF_ESTALE;
    /* The manifest is stored as TEXT (the column has BLOB affinity and keeps
     * it so): the bytes are JSON, which lets json_extract() read them. */
    if (rc == 0)
        rc = db_insert(db, sql, id, "iisisnsi", model_id, version, sha256, size, backend, manifest,
                       manifest_len, signature, now);
    return db_tx_end(db, rc);
}

/* A db_select row callback: copies one row of VERSION_COLUMNS into the
 * struct db_version arg. EF_ENOMEM, EF_EDB when a stored value does not fit
 * its field (a schema invariant broken). */
static int version_row(sqlite3_stmt *st, void *arg)
{
    struct db_version *out = arg;
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

int db_version_get(struct db *db, const char *model, int64_t version, struct db_version *out)
{
    static const char sql[] = VERSION_COLUMNS "WHERE m.name = ?1 AND v.version = ?2";
    memset(out, 0, sizeof(*out));
    return db_select(db, sql, DB_ONE, version_row, out, "si", model, version);
}

int db_version_get_by_id(struct db *db, int64_t id, struct db_version *out)
{
    static const char sql[] = VERSION_COLUMNS "WHERE v.id = ?1";
    memset(out, 0, sizeof(*out));
    return db_select(db, sql, DB_ONE, version_row, out, "i", id);
}

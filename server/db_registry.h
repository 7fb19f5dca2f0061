/*
 * db_registry.h - models and their immutable versions (implemented in
 * db_registry.c; see db.h for the locking rules).
 */
#ifndef EF_DB_REGISTRY_H
#define EF_DB_REGISTRY_H

#include "common/crypto.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct db;

/* One model version as stored. manifest and signature are owned. */
struct db_version {
    int64_t id;                  /* row id */
    int64_t model_id;            /* row id of the model */
    char model[65];              /* model name */
    int64_t version;             /* version number */
    char sha256[EF_HEX256_SIZE]; /* artifact hash */
    int64_t size;                /* artifact bytes */
    char backend[16];            /* "fann" or "fann-fixed" */
    char *manifest;              /* the exact signed manifest bytes, NUL-terminated */
    size_t manifest_len;         /* bytes of manifest */
    char *signature;             /* detached signature, base64 */
    int64_t created_at;          /* Unix ms */
};

/* Frees what a db_version owns and zeroes it; accepts a zeroed struct. */
void db_version_clear(struct db_version *v);

/* Creates a model. EF_EEXIST when the name is taken. *id may be NULL. */
int db_model_create(struct db *db, const char *name, const char *description, int64_t now,
                    int64_t *id);

/* Looks up a model's row id by name. EF_ENOENT. */
int db_model_id(struct db *db, const char *name, int64_t *id);

/* A new JSON object {name, description, created_at, latest_version}. EF_ENOENT. */
int db_model_get(struct db *db, const char *name, json_t **out);

/* A new JSON array of model objects as db_model_get gives, by name. */
int db_models_list(struct db *db, json_t **out);

/* A new JSON array of {version, sha256, size, backend, created_at}, ascending. */
int db_versions_list(struct db *db, int64_t model_id, json_t **out);

/* Highest version of a model, 0 when it has none. */
int db_version_latest(struct db *db, int64_t model_id, int64_t *latest);

/* Inserts a version. EF_ESTALE when version is not above the latest one
 * (checked in the same transaction), EF_EEXIST on a duplicate. *id may be NULL. */
int db_version_insert(struct db *db, int64_t model_id, int64_t version, const char *sha256,
                      int64_t size, const char *backend, const char *manifest, size_t manifest_len,
                      const char *signature, int64_t now, int64_t *id);

/* Fills *out with a version by model name and number, or by row id. EF_ENOENT.
 * The caller calls db_version_clear. */
int db_version_get(struct db *db, const char *model, int64_t version, struct db_version *out);
int db_version_get_by_id(struct db *db, int64_t id, struct db_version *out);

#endif

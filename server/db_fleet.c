/*
 * db_fleet.c - the SQL of the fleet: devices, slots, reported state, rings,
 * API tokens and enrollment tokens.
 */
#include "server/db_fleet.h"
#include "server/db_internal.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Unix-ms column as RFC 3339 UTC with milliseconds (NULL stays NULL),
 * exactly what ef_time_format writes. */
#define SQL_TIME(col) "strftime('%Y-%m-%dT%H:%M:%fZ', " col " / 1000.0, 'unixepoch')"

/* clang-format off */
/* The device object's columns; used with the FROM clause DEVICE_FROM. */
#define DEVICE_COLUMNS                                                                             \
    "d.id AS id, d.class AS class, r.name AS ring, d.tags AS tags_json,"                           \
    " d.online AS online,"                                                                         \
    " " SQL_TIME("d.last_seen") " AS last_seen,"                                                   \
    " " SQL_TIME("d.enrolled_at") " AS enrolled_at,"                                               \
    " CASE WHEN d.desired IS NULL THEN 0 ELSE d.desired_seq END AS desired_seq,"                   \
    " (SELECT json_group_object(s.slot, json_object('name', m.name, 'version', v.version,"         \
    "   'state', s.state, 'reason', s.reason))"                                                    \
    "    FROM device_slots s JOIN model_versions v ON v.id = s.version_id"                         \
    "    JOIN models m ON m.id = v.model_id WHERE s.device_id = d.id) AS slots_json,"              \
    " (SELECT json_group_object(p.slot, json_object('model', p.model, 'version', p.version,"       \
    "   'state', p.state, 'reason', p.reason, 'updated_at', " SQL_TIME("p.updated_at") "))"        \
    "    FROM device_reported p WHERE p.device_id = d.id) AS reported_json"
#define DEVICE_FROM                                                                                \
    " FROM devices d JOIN device_rings dr ON dr.device_id = d.id"                                  \
    " JOIN rings r ON r.id = dr.ring_id WHERE d.decommissioned_at IS NULL"

/* The ring object's columns and FROM clause. */
#define RING_SELECT                                                                                \
    "SELECT r.name AS name, r.position AS position, r.selector AS selector_json,"                  \
    " COALESCE(c.n, 0) AS devices FROM rings r LEFT JOIN"                                          \
    " (SELECT dr.ring_id AS ring_id, count(*) AS n FROM device_rings dr"                           \
    "   JOIN devices d ON d.id = dr.device_id WHERE d.decommissioned_at IS NULL"                   \
    "   GROUP BY dr.ring_id) c ON c.ring_id = r.id"
/* clang-format on */

/* The device action state a slot takes from a reported state: the agent's
 * own steps between download and activation (staged, self-test) are part of
 * what the API calls verifying. report.c has already checked the name. */
static const char *slot_state(const char *reported)
{
    if (strcmp(reported, "staged") == 0 || strcmp(reported, "self-test") == 0)
        return "verifying";
    return reported;
}

bool db_tags_valid(const json_t *tags)
{
    const char *key;
    json_t *value;
    if (!json_is_object(tags) || json_object_size(tags) > DB_TAGS_MAX)
        return false;
    json_object_foreach((json_t *)tags, key, value)
    {
        if (!ef_name_valid(key) || !json_is_string(value) ||
            json_string_length(value) > DB_TAG_VALUE_MAX)
            return false;
    }
    return true;
}

/* Validates tags and serializes them canonically into *text (malloc'd; NULL
 * when tags is NULL). EF_EINVAL, EF_ENOMEM. */
static int tags_text(const json_t *tags, char **text)
{
    *text = NULL;
    if (!tags)
        return 0;
    if (!db_tags_valid(tags))
        return EF_EINVAL;
    return (*text = ef_json_dump(tags)) ? 0 : EF_ENOMEM;
}

/* Turns the integer member key of obj into a JSON boolean (SQLite has no
 * boolean type). */
static void object_bool(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        json_object_set_new(obj, key, json_boolean(json_integer_value(v) != 0));
}

/* object_bool on every object of the array rows. */
static void rows_bool(json_t *rows, const char *key)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) object_bool(row, key);
}

/* Steps a statement expected to return at most one row: 0 with the row
 * ready to read, EF_ENOENT when there is none, or the translated error. */
static int step_row(struct db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return EF_ENOENT;
    rc = db_error(db, sqlite3_extended_errcode(db->conn));
    return rc ? rc : EF_EDB;
}

/* Copies a text column into a fixed buffer (empty for NULL), truncating
 * at a character boundary so that the copy stays valid UTF-8. */
static void column_copy(sqlite3_stmt *st, int col, char *buf, size_t size)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    size_t n = text ? strlen(text) : 0;
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(buf, text, n);
    buf[n] = '\0';
}

/* Runs a write statement and checks it touched a row: EF_ENOENT if not. */
static int exec_one(struct db *db, sqlite3_stmt *st)
{
    int rc = db_exec_stmt(db, st);
    if (rc == 0 && sqlite3_changes(db->conn) == 0)
        rc = EF_ENOENT;
    return rc;
}

/* ---- API tokens ---- */

int db_api_token_create(struct db *db, const char *name, const char *role, const char *token_hash,
                        int64_t now, int64_t *id)
{
    static const char sql[] = "INSERT INTO api_tokens (name, role, token_hash, created_at)"
                              " VALUES (?1, ?2, ?3, ?4)";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, name ? name : "");
    db_bind_text(st, 2, role);
    db_bind_text(st, 3, token_hash);
    sqlite3_bind_int64(st, 4, now);
    if ((rc = db_exec_stmt(db, st)) == 0 && id)
        *id = sqlite3_last_insert_rowid(db->conn);
out:
    db_unlock(db);
    return rc;
}

int db_api_token_find(struct db *db, const char *token_hash, int64_t *id, char role[16],
                      char name[64])
{
    static const char sql[] =
        "SELECT id, role, name FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, token_hash);
    if ((rc = step_row(db, st)) != 0)
        goto out;
    *id = sqlite3_column_int64(st, 0);
    column_copy(st, 1, role, 16);
    column_copy(st, 2, name, 64);
out:
    if (st)
        sqlite3_reset(st);
    db_unlock(db);
    return rc;
}

int db_api_tokens_list(struct db *db, json_t **out)
{
    static const char sql[] = "SELECT id, NULLIF(name, '') AS name, role, " SQL_TIME(
        "created_at") " AS created_at,"
                      " revoked_at IS NOT NULL AS revoked"
                      " FROM api_tokens ORDER BY id";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st)
        rc = db_rows_json(db, st, out);
    db_unlock(db);
    rows_bool(*out, "revoked");
    return rc;
}

int db_api_token_revoke(struct db *db, int64_t id, int64_t now, char role[16])
{
    static const char sql_get[] =
        "SELECT role, revoked_at IS NOT NULL,"
        " (SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL)"
        " FROM api_tokens WHERE id = ?1";
    static const char sql_revoke[] =
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
    char token_role[16] = "";
    bool revoked;
    int64_t admins;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = db_stmt(db, sql_get);
    if (!st) {
        rc = EF_EDB;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    if ((rc = step_row(db, st)) != 0)
        goto out;
    column_copy(st, 0, token_role, sizeof(token_role));
    revoked = sqlite3_column_int(st, 1) != 0;
    admins = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    if (revoked)
        goto out;
    if (strcmp(token_role, "admin") == 0 && admins <= 1) {
        rc = EF_ECONFLICT;
        goto out;
    }
    if (!(st = db_stmt(db, sql_revoke))) {
        rc = EF_EDB;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    rc = db_exec_stmt(db, st);
out:
    if (rc == 0 && role)
        snprintf(role, 16, "%s", token_role);
    return db_tx_end(db, rc);
}

/* ---- enrollment tokens ---- */

int db_enroll_token_create(struct db *db, const char *token_hash, const char *class, int64_t uses,
                           int64_t expires_at, int64_t now, int64_t *id)
{
    static const char sql[] = "INSERT INTO enroll_tokens (token_hash, class, uses_left,"
                              " expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, token_hash);
    db_bind_text(st, 2, class);
    sqlite3_bind_int64(st, 3, uses);
    sqlite3_bind_int64(st, 4, expires_at);
    sqlite3_bind_int64(st, 5, now);
    if ((rc = db_exec_stmt(db, st)) == 0 && id)
        *id = sqlite3_last_insert_rowid(db->conn);
out:
    db_unlock(db);
    return rc;
}

int db_enroll_token_find(struct db *db, const char *token_hash, int64_t now, int64_t *id)
{
    static const char sql[] = "SELECT id FROM enroll_tokens WHERE token_hash = ?1"
                              " AND uses_left > 0 AND expires_at > ?2";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = step_row(db, st)) == 0)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

int db_enroll_token_consume(struct db *db, int64_t id, int64_t now, char class[DB_CLASS_SIZE])
{
    /* One statement checks and decrements, so two enrollments racing for
     * the last use cannot both get it. */
    static const char sql[] = "UPDATE enroll_tokens SET uses_left = uses_left - 1"
                              " WHERE id = ?1 AND uses_left > 0 AND expires_at > ?2"
                              " RETURNING class";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = step_row(db, st)) == 0)
        column_copy(st, 0, class, DB_CLASS_SIZE);
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

/* ---- devices ---- */

int db_device_create(struct db *db, const char *device_id, const char *token_hash,
                     const char *class, const json_t *tags, int64_t now)
{
    /* A decommissioned row is revived in place: desired_seq survives. */
    static const char sql[] =
        "INSERT INTO devices (id, token_hash, class, tags, enrolled_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash,"
        " class = excluded.class, tags = excluded.tags, enrolled_at = excluded.enrolled_at,"
        " ring_id = NULL, online = 0, last_seen = NULL, desired = NULL,"
        " decommissioned_at = NULL"
        " WHERE devices.decommissioned_at IS NOT NULL";
    sqlite3_stmt *st = NULL;
    char *tags_json = NULL;
    int rc = tags_text(tags, &tags_json);
    if (rc != 0)
        return rc;
    db_lock(db);
    if (!(st = db_stmt(db, sql))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    db_bind_text(st, 2, token_hash);
    db_bind_text(st, 3, class);
    db_bind_text(st, 4, tags_json ? tags_json : "{}");
    sqlite3_bind_int64(st, 5, now);
    rc = exec_one(db, st);
    if (rc == EF_ENOENT) /* the id belongs to an active device */
        rc = EF_EEXIST;
out:
    db_unlock(db);
    free(tags_json);
    return rc;
}

int db_device_checkins(struct db *db, json_t **out)
{
    static const char sql[] =
        "SELECT token_hash, id, CASE WHEN desired IS NULL THEN 0 ELSE desired_seq END AS seq"
        " FROM devices WHERE decommissioned_at IS NULL";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st)
        rc = db_rows_json(db, st, out);
    db_unlock(db);
    return rc;
}

int db_device_find_by_token(struct db *db, const char *token_hash, char device_id[65])
{
    static const char sql[] =
        "SELECT id FROM devices WHERE token_hash = ?1 AND decommissioned_at IS NULL";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, token_hash);
    if ((rc = step_row(db, st)) == 0)
        column_copy(st, 0, device_id, 65);
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

int db_device_get(struct db *db, const char *device_id, json_t **out)
{
    static const char sql[] = "SELECT " DEVICE_COLUMNS DEVICE_FROM " AND d.id = ?1";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        db_bind_text(st, 1, device_id);
        rc = db_row_json(db, st, out);
    }
    db_unlock(db);
    object_bool(*out, "online");
    return rc;
}

int db_devices_list(struct db *db, const struct db_device_filter *f, json_t **out)
{
    static const char sql[] =
        "SELECT " DEVICE_COLUMNS DEVICE_FROM " AND (?1 IS NULL OR r.name = ?1)"
        " AND (?2 IS NULL OR d.class = ?2)"
        " AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(d.tags) t"
        "      WHERE t.key = ?3 AND t.value = ?4))"
        " AND (?5 IS NULL OR d.online = ?5)"
        " ORDER BY d.id";
    static const struct db_device_filter none;
    int rc = EF_EDB;
    *out = NULL;
    if (!f)
        f = &none;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        db_bind_text(st, 1, f->ring);
        db_bind_text(st, 2, f->class);
        db_bind_text(st, 3, f->tag_key);
        db_bind_text(st, 4, f->tag_value ? f->tag_value : "");
        if (f->online)
            sqlite3_bind_int(st, 5, *f->online ? 1 : 0);
        rc = db_rows_json(db, st, out);
    }
    db_unlock(db);
    rows_bool(*out, "online");
    return rc;
}

int db_device_update(struct db *db, const char *device_id, const struct db_device_change *c)
{
    static const char sql[] =
        "UPDATE devices SET ring_id = CASE WHEN ?2 THEN NULLIF(?3, 0) ELSE ring_id END,"
        " class = COALESCE(?4, class), tags = COALESCE(?5, tags)"
        " WHERE id = ?1 AND decommissioned_at IS NULL";
    sqlite3_stmt *st = NULL;
    char *tags_json = NULL;
    int rc = tags_text(c->tags, &tags_json);
    if (rc != 0)
        return rc;
    db_lock(db);
    if (!(st = db_stmt(db, sql))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int(st, 2, c->set_ring ? 1 : 0);
    sqlite3_bind_int64(st, 3, c->ring_id);
    db_bind_text(st, 4, c->class);
    db_bind_text(st, 5, tags_json);
    rc = exec_one(db, st);
out:
    db_unlock(db);
    free(tags_json);
    return rc;
}

int db_device_decommission(struct db *db, const char *device_id, int64_t now)
{
    /* The token hash becomes a value no token hashes to (hashes are hex). */
    static const char sql_device[] =
        "UPDATE devices SET token_hash = 'decommissioned:' || id, tags = '{}', ring_id = NULL,"
        " online = 0, desired = NULL, decommissioned_at = ?2"
        " WHERE id = ?1 AND decommissioned_at IS NULL";
    static const char sql_slots[] = "DELETE FROM device_slots WHERE device_id = ?1";
    static const char sql_reported[] = "DELETE FROM device_reported WHERE device_id = ?1";
    const char *const deletes[] = {sql_slots, sql_reported};
    sqlite3_stmt *st;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if (!(st = db_stmt(db, sql_device))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = exec_one(db, st)) != 0)
        goto out;
    for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]); i++) {
        if (!(st = db_stmt(db, deletes[i]))) {
            rc = EF_EDB;
            goto out;
        }
        db_bind_text(st, 1, device_id);
        if ((rc = db_exec_stmt(db, st)) != 0)
            goto out;
    }
out:
    return db_tx_end(db, rc);
}

int db_device_seen(struct db *db, const char *device_id, bool online, int64_t now)
{
    static const char sql[] = "UPDATE devices SET online = ?2, last_seen = ?3"
                              " WHERE id = ?1 AND decommissioned_at IS NULL";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int(st, 2, online ? 1 : 0);
    sqlite3_bind_int64(st, 3, now);
    rc = exec_one(db, st);
out:
    db_unlock(db);
    return rc;
}

int db_device_report(struct db *db, const char *device_id, const char *slot, const char *model,
                     int64_t version, const char *state, const char *reason, int64_t now)
{
    static const char sql_seen[] =
        "UPDATE devices SET last_seen = ?2 WHERE id = ?1 AND decommissioned_at IS NULL";
    static const char sql_reported[] =
        "INSERT INTO device_reported (device_id, slot, model, version, state, reason, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        " ON CONFLICT (device_id, slot) DO UPDATE SET model = excluded.model,"
        " version = excluded.version, state = excluded.state, reason = excluded.reason,"
        " updated_at = excluded.updated_at";
    static const char sql_slot[] =
        "UPDATE device_slots SET state = ?3, reason = ?4, updated_at = ?5"
        " WHERE device_id = ?1 AND slot = ?2 AND version_id ="
        " (SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id"
        "   WHERE m.name = ?6 AND v.version = ?7)";
    enum ef_slot_kind kind;
    sqlite3_stmt *st;
    if (ef_slot_kind_parse(slot, &kind) != 0 || !state || !model)
        return EF_EINVAL;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if (!(st = db_stmt(db, sql_seen))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = exec_one(db, st)) != 0)
        goto out;
    if (!(st = db_stmt(db, sql_reported))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    db_bind_text(st, 2, slot);
    db_bind_text(st, 3, model);
    sqlite3_bind_int64(st, 4, version);
    db_bind_text(st, 5, state);
    db_bind_text(st, 6, reason);
    sqlite3_bind_int64(st, 7, now);
    if ((rc = db_exec_stmt(db, st)) != 0)
        goto out;
    /* Only a report about the version the server wants moves the slot's
     * state: news about an older version must not mark the new one done. */
    if (!(st = db_stmt(db, sql_slot))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    db_bind_text(st, 2, slot);
    db_bind_text(st, 3, slot_state(state));
    db_bind_text(st, 4, reason);
    sqlite3_bind_int64(st, 5, now);
    db_bind_text(st, 6, model);
    sqlite3_bind_int64(st, 7, version);
    rc = db_exec_stmt(db, st);
out:
    return db_tx_end(db, rc);
}

int db_device_has_version(struct db *db, const char *device_id, int64_t version_id, bool *yes)
{
    static const char sql[] =
        "SELECT 1 FROM device_slots WHERE device_id = ?1 AND version_id = ?2 LIMIT 1";
    int rc = EF_EDB;
    *yes = false;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, version_id);
    rc = step_row(db, st);
    *yes = rc == 0;
    if (rc == EF_ENOENT)
        rc = 0;
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

int db_device_desired(struct db *db, const char *device_id, int64_t known_seq, int64_t *seq,
                      char **envelope, size_t *len)
{
    /* The envelope is not even read when the caller already has this seq.
     * A device enrolled again keeps its desired_seq but has no envelope:
     * that is no assignment, seq 0. */
    static const char sql[] =
        "SELECT CASE WHEN desired IS NULL THEN 0 ELSE desired_seq END,"
        " CASE WHEN desired IS NULL OR desired_seq = ?2 THEN NULL ELSE desired END"
        " FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    const void *bytes;
    size_t n;
    int rc = EF_EDB;
    *seq = 0;
    *envelope = NULL;
    *len = 0;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, known_seq);
    if ((rc = step_row(db, st)) != 0)
        goto out;
    *seq = sqlite3_column_int64(st, 0);
    bytes = sqlite3_column_blob(st, 1);
    n = (size_t)sqlite3_column_bytes(st, 1);
    if (bytes && *seq > 0) {
        if (!(*envelope = malloc(n + 1))) {
            rc = EF_ENOMEM;
            goto out;
        }
        memcpy(*envelope, bytes, n);
        (*envelope)[n] = '\0';
        *len = n;
    }
out:
    if (st)
        sqlite3_reset(st);
    db_unlock(db);
    return rc;
}

/* ---- assignments ---- */

int db_device_desired_load(struct db *db, const char *device_id, struct db_desired *out)
{
    static const char sql_device[] =
        "SELECT class, desired_seq FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    static const char sql_slots[] =
        "SELECT s.slot, s.version_id, m.name, v.version, v.sha256, v.size, s.rollout_id,"
        " s.state"
        " FROM device_slots s JOIN model_versions v ON v.id = s.version_id"
        " JOIN models m ON m.id = v.model_id WHERE s.device_id = ?1";
    int rc = EF_EDB, step;
    memset(out, 0, sizeof(*out));
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql_device);
    if (!st)
        goto out;
    db_bind_text(st, 1, device_id);
    if ((rc = step_row(db, st)) != 0)
        goto out;
    column_copy(st, 0, out->class, sizeof(out->class));
    out->seq = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if (!(st = db_stmt(db, sql_slots))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        enum ef_slot_kind kind;
        /* Slot names are written only by db_device_desired_store. */
        if (ef_slot_kind_parse((const char *)sqlite3_column_text(st, 0), &kind) != 0)
            continue;
        struct db_slot *s = &out->slots[kind];
        s->set = true;
        s->version_id = sqlite3_column_int64(st, 1);
        column_copy(st, 2, s->model, sizeof(s->model));
        s->version = sqlite3_column_int64(st, 3);
        column_copy(st, 4, s->sha256, sizeof(s->sha256));
        s->size = sqlite3_column_int64(st, 5);
        column_copy(st, 6, s->rollout_id, sizeof(s->rollout_id));
        column_copy(st, 7, s->state, sizeof(s->state));
    }
    if (step != SQLITE_DONE)
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
out:
    if (st)
        sqlite3_reset(st);
    db_unlock(db);
    return rc;
}

int db_device_desired_store(struct db *db, const char *device_id, int64_t seq, const char *envelope,
                            enum ef_slot_kind slot, int64_t version_id, const char *rollout_id,
                            int64_t now)
{
    static const char sql_device[] =
        "UPDATE devices SET desired_seq = ?2, desired = ?3"
        " WHERE id = ?1 AND decommissioned_at IS NULL AND desired_seq < ?2";
    static const char sql_exists[] =
        "SELECT 1 FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    static const char sql_slot[] =
        "INSERT INTO device_slots (device_id, slot, version_id, state, reason, updated_at,"
        " rollout_id) VALUES (?1, ?2, ?3, 'pending', NULL, ?4, ?5)"
        " ON CONFLICT (device_id, slot) DO UPDATE SET version_id = excluded.version_id,"
        " state = 'pending', reason = NULL, updated_at = excluded.updated_at,"
        " rollout_id = excluded.rollout_id";
    sqlite3_stmt *st;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if (!(st = db_stmt(db, sql_device))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, seq);
    db_bind_text(st, 3, envelope);
    if ((rc = exec_one(db, st)) == EF_ENOENT) {
        /* Gone, or a seq that would go backwards. */
        if (!(st = db_stmt(db, sql_exists))) {
            rc = EF_EDB;
            goto out;
        }
        db_bind_text(st, 1, device_id);
        rc = step_row(db, st);
        sqlite3_reset(st);
        rc = rc == 0 ? EF_ESTALE : rc;
    }
    if (rc != 0)
        goto out;
    if (!(st = db_stmt(db, sql_slot))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, device_id);
    db_bind_text(st, 2, ef_slot_name(slot));
    sqlite3_bind_int64(st, 3, version_id);
    sqlite3_bind_int64(st, 4, now);
    db_bind_text(st, 5, rollout_id && *rollout_id ? rollout_id : NULL);
    rc = db_exec_stmt(db, st);
out:
    return db_tx_end(db, rc);
}

/* ---- rings ---- */

int db_ring_create(struct db *db, const char *name, const int64_t *position, const json_t *selector,
                   int64_t now)
{
    static const char sql[] = "INSERT INTO rings (name, position, selector, created_at) VALUES (?1,"
                              " COALESCE(?2, (SELECT COALESCE(MAX(position), -1) + 1 FROM rings"
                              "               WHERE name != 'default')), ?3, ?4)";
    sqlite3_stmt *st = NULL;
    char *selector_json = NULL;
    int rc = tags_text(selector, &selector_json);
    if (rc != 0)
        return rc;
    db_lock(db);
    if (!(st = db_stmt(db, sql))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, name);
    if (position)
        sqlite3_bind_int64(st, 2, *position);
    db_bind_text(st, 3, selector_json ? selector_json : "{}");
    sqlite3_bind_int64(st, 4, now);
    rc = db_exec_stmt(db, st);
out:
    db_unlock(db);
    free(selector_json);
    return rc;
}

int db_ring_id(struct db *db, const char *name, int64_t *id)
{
    static const char sql[] = "SELECT id FROM rings WHERE name = ?1";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    db_bind_text(st, 1, name);
    if ((rc = step_row(db, st)) == 0)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
out:
    db_unlock(db);
    return rc;
}

int db_ring_get(struct db *db, const char *name, json_t **out)
{
    static const char sql[] = RING_SELECT " WHERE r.name = ?1";
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

int db_rings_list(struct db *db, json_t **out)
{
    static const char sql[] = RING_SELECT " ORDER BY r.position, r.id";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st)
        rc = db_rows_json(db, st, out);
    db_unlock(db);
    return rc;
}

int db_ring_update(struct db *db, const char *name, const int64_t *position, const json_t *selector)
{
    static const char sql[] = "UPDATE rings SET position = COALESCE(?2, position),"
                              " selector = COALESCE(?3, selector) WHERE name = ?1";
    sqlite3_stmt *st = NULL;
    char *selector_json = NULL;
    int rc = tags_text(selector, &selector_json);
    if (rc != 0)
        return rc;
    db_lock(db);
    if (!(st = db_stmt(db, sql))) {
        rc = EF_EDB;
        goto out;
    }
    db_bind_text(st, 1, name);
    if (position)
        sqlite3_bind_int64(st, 2, *position);
    db_bind_text(st, 3, selector_json);
    rc = exec_one(db, st);
out:
    db_unlock(db);
    free(selector_json);
    return rc;
}

int db_ring_devices(struct db *db, int64_t ring_id, const char *class, json_t **out)
{
    static const char sql[] =
        "SELECT dr.device_id FROM device_rings dr JOIN devices d ON d.id = dr.device_id"
        " WHERE dr.ring_id = ?1 AND d.decommissioned_at IS NULL"
        " AND (?2 IS NULL OR d.class = ?2) ORDER BY dr.device_id";
    int rc = EF_EDB, step;
    json_t *ids = json_array();
    *out = NULL;
    if (!ids)
        return EF_ENOMEM;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, ring_id);
    db_bind_text(st, 2, class);
    rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_append_new(ids, json_string((const char *)sqlite3_column_text(st, 0))) !=
            0) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
out:
    if (st)
        sqlite3_reset(st);
    db_unlock(db);
    if (rc == 0) {
        *out = ids;
        ids = NULL;
    }
    json_decref(ids);
    return rc;
}

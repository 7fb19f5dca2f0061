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

/* ---- API tokens ---- */

int db_api_token_create(struct db *db, const char *name, const char *role, const char *token_hash,
                        int64_t now, int64_t *id)
{
    static const char sql[] = "INSERT INTO api_tokens (name, role, token_hash, created_at)"
                              " VALUES (?1, ?2, ?3, ?4)";
    return db_insert(db, sql, id, "sssi", name ? name : "", role, token_hash, now);
}

/* What db_api_token_find copies out. */
struct token_found {
    int64_t *id; /* the caller's */
    char *role;  /* 16 bytes */
    char *name;  /* 64 bytes */
};

/* A db_select row callback for db_api_token_find. */
static int token_found_row(sqlite3_stmt *st, void *arg)
{
    struct token_found *found = arg;
    *found->id = sqlite3_column_int64(st, 0);
    db_column_copy(st, 1, found->role, 16);
    db_column_copy(st, 2, found->name, 64);
    return 0;
}

int db_api_token_find(struct db *db, const char *token_hash, int64_t *id, char role[16],
                      char name[64])
{
    static const char sql[] =
        "SELECT id, role, name FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL";
    struct token_found found = {id, role, name};
    return db_select(db, sql, DB_ONE, token_found_row, &found, "s", token_hash);
}

int db_api_tokens_list(struct db *db, json_t **out)
{
    static const char sql[] = "SELECT id, NULLIF(name, '') AS name, role, " SQL_TIME(
        "created_at") " AS created_at,"
                      " revoked_at IS NOT NULL AS revoked"
                      " FROM api_tokens ORDER BY id";
    int rc = db_select_json(db, sql, DB_ALL, out, NULL);
    rows_bool(*out, "revoked");
    return rc;
}

/* What db_api_token_revoke learns about the token before it acts. */
struct token_state {
    char role[16];  /* its role */
    bool revoked;   /* already revoked */
    int64_t admins; /* unrevoked admin tokens, this one included */
};

/* A db_select row callback for db_api_token_revoke. */
static int token_state_row(sqlite3_stmt *st, void *arg)
{
    struct token_state *t = arg;
    db_column_copy(st, 0, t->role, sizeof(t->role));
    t->revoked = sqlite3_column_int(st, 1) != 0;
    t->admins = sqlite3_column_int64(st, 2);
    return 0;
}

int db_api_token_revoke(struct db *db, int64_t id, int64_t now, char role[16])
{
    static const char sql_get[] =
        "SELECT role, revoked_at IS NOT NULL,"
        " (SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL)"
        " FROM api_tokens WHERE id = ?1";
    static const char sql_revoke[] =
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
    struct token_state t = {"", false, 0};
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if ((rc = db_select(db, sql_get, DB_ONE, token_state_row, &t, "i", id)) != 0 || t.revoked)
        goto out;
    if (strcmp(t.role, "admin") == 0 && t.admins <= 1)
        rc = EF_ECONFLICT;
    else
        rc = db_exec(db, sql_revoke, "ii", id, now);
out:
    if (rc == 0 && role)
        snprintf(role, 16, "%s", t.role);
    return db_tx_end(db, rc);
}

/* ---- enrollment tokens ---- */

int db_enroll_token_create(struct db *db, const char *token_hash, const char *class, int64_t uses,
                           int64_t expires_at, int64_t now, int64_t *id)
{
    static const char sql[] = "INSERT INTO enroll_tokens (token_hash, class, uses_left,"
                              " expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    return db_insert(db, sql, id, "ssiii", token_hash, class, uses, expires_at, now);
}

int db_enroll_token_find(struct db *db, const char *token_hash, int64_t now, int64_t *id)
{
    static const char sql[] = "SELECT id FROM enroll_tokens WHERE token_hash = ?1"
                              " AND uses_left > 0 AND expires_at > ?2";
    return db_select_int(db, sql, id, "si", token_hash, now);
}

int db_enroll_token_consume(struct db *db, int64_t id, int64_t now, char class[DB_CLASS_SIZE])
{
    /* One statement checks and decrements, so two enrollments racing for
     * the last use cannot both get it. */
    static const char sql[] = "UPDATE enroll_tokens SET uses_left = uses_left - 1"
                              " WHERE id = ?1 AND uses_left > 0 AND expires_at > ?2"
                              " RETURNING class";
    return db_select_text(db, sql, class, DB_CLASS_SIZE, "ii", id, now);
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
    char *tags_json = NULL;
    int rc = tags_text(tags, &tags_json);
    if (rc == 0)
        rc = db_exec_one(db, sql, "ssssi", device_id, token_hash, class,
                         tags_json ? tags_json : "{}", now);
    if (rc == EF_ENOENT) /* the id belongs to an active device */
        rc = EF_EEXIST;
    free(tags_json);
    return rc;
}

int db_device_checkins(struct db *db, json_t **out)
{
    static const char sql[] =
        "SELECT token_hash, id, CASE WHEN desired IS NULL THEN 0 ELSE desired_seq END AS seq"
        " FROM devices WHERE decommissioned_at IS NULL";
    return db_select_json(db, sql, DB_ALL, out, NULL);
}

int db_device_find_by_token(struct db *db, const char *token_hash, char device_id[65])
{
    static const char sql[] =
        "SELECT id FROM devices WHERE token_hash = ?1 AND decommissioned_at IS NULL";
    return db_select_text(db, sql, device_id, 65, "s", token_hash);
}

int db_device_get(struct db *db, const char *device_id, json_t **out)
{
    static const char sql[] = "SELECT " DEVICE_COLUMNS DEVICE_FROM " AND d.id = ?1";
    int rc = db_select_json(db, sql, DB_ONE, out, "s", device_id);
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
    if (!f)
        f = &none;
    int64_t online = f->online && *f->online;
    int rc = db_select_json(db, sql, DB_ALL, out, "ssssI", f->ring, f->class, f->tag_key,
                            f->tag_value ? f->tag_value : "", f->online ? &online : NULL);
    rows_bool(*out, "online");
    return rc;
}

int db_device_update(struct db *db, const char *device_id, const struct db_device_change *c)
{
    static const char sql[] =
        "UPDATE devices SET ring_id = CASE WHEN ?2 THEN NULLIF(?3, 0) ELSE ring_id END,"
        " class = COALESCE(?4, class), tags = COALESCE(?5, tags)"
        " WHERE id = ?1 AND decommissioned_at IS NULL";
    char *tags_json = NULL;
    int rc = tags_text(c->tags, &tags_json);
    if (rc == 0)
        rc = db_exec_one(db, sql, "siiss", device_id, (int64_t)c->set_ring, c->ring_id, c->class,
                         tags_json);
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
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    rc = db_exec_one(db, sql_device, "si", device_id, now);
    for (size_t i = 0; rc == 0 && i < sizeof(deletes) / sizeof(deletes[0]); i++)
        rc = db_exec(db, deletes[i], "s", device_id);
    return db_tx_end(db, rc);
}

int db_device_seen(struct db *db, const char *device_id, bool online, int64_t now)
{
    static const char sql[] = "UPDATE devices SET online = ?2, last_seen = ?3"
                              " WHERE id = ?1 AND decommissioned_at IS NULL";
    return db_exec_one(db, sql, "sii", device_id, (int64_t)online, now);
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
    if (ef_slot_kind_parse(slot, &kind) != 0 || !state || !model)
        return EF_EINVAL;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if ((rc = db_exec_one(db, sql_seen, "si", device_id, now)) != 0)
        goto out;
    if ((rc = db_exec(db, sql_reported, "sssissi", device_id, slot, model, version, state, reason,
                      now)) != 0)
        goto out;
    /* Only a report about the version the server wants moves the slot's
     * state: news about an older version must not mark the new one done. */
    rc = db_exec(db, sql_slot, "ssssisi", device_id, slot, slot_state(state), reason, now, model,
                 version);
out:
    return db_tx_end(db, rc);
}

int db_device_has_version(struct db *db, const char *device_id, int64_t version_id, bool *yes)
{
    static const char sql[] =
        "SELECT 1 FROM device_slots WHERE device_id = ?1 AND version_id = ?2 LIMIT 1";
    int rc = db_select_int(db, sql, NULL, "si", device_id, version_id);
    *yes = rc == 0;
    return rc == EF_ENOENT ? 0 : rc;
}

/* Where db_device_desired puts what it reads. */
struct desired_out {
    int64_t *seq;    /* the caller's */
    char **envelope; /* the caller's: a new copy, or NULL */
    size_t *len;     /* the caller's: bytes of *envelope */
};

/* A db_select row callback for db_device_desired. */
static int desired_row(sqlite3_stmt *st, void *arg)
{
    struct desired_out *d = arg;
    *d->seq = sqlite3_column_int64(st, 0);
    const void *bytes = sqlite3_column_blob(st, 1);
    size_t n = (size_t)sqlite3_column_bytes(st, 1);
    if (!bytes || *d->seq <= 0)
        return 0;
    if (!(*d->envelope = malloc(n + 1)))
        return EF_ENOMEM;
    memcpy(*d->envelope, bytes, n);
    (*d->envelope)[n] = '\0';
    *d->len = n;
    return 0;
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
    struct desired_out d = {seq, envelope, len};
    *seq = 0;
    *envelope = NULL;
    *len = 0;
    return db_select(db, sql, DB_ONE, desired_row, &d, "si", device_id, known_seq);
}

/* ---- assignments ---- */

/* A db_select row callback for db_device_desired_load: the device's row. */
static int desired_device_row(sqlite3_stmt *st, void *arg)
{
    struct db_desired *out = arg;
    db_column_copy(st, 0, out->class, sizeof(out->class));
    out->seq = sqlite3_column_int64(st, 1);
    return 0;
}

/* A db_select row callback for db_device_desired_load: one slot's row. */
static int desired_slot_row(sqlite3_stmt *st, void *arg)
{
    struct db_desired *out = arg;
    enum ef_slot_kind kind;
    /* Slot names are written only by db_device_desired_store. */
    if (ef_slot_kind_parse((const char *)sqlite3_column_text(st, 0), &kind) != 0)
        return 0;
    struct db_slot *s = &out->slots[kind];
    s->set = true;
    s->version_id = sqlite3_column_int64(st, 1);
    db_column_copy(st, 2, s->model, sizeof(s->model));
    s->version = sqlite3_column_int64(st, 3);
    db_column_copy(st, 4, s->sha256, sizeof(s->sha256));
    s->size = sqlite3_column_int64(st, 5);
    db_column_copy(st, 6, s->rollout_id, sizeof(s->rollout_id));
    db_column_copy(st, 7, s->state, sizeof(s->state));
    return 0;
}

int db_device_desired_load(struct db *db, const char *device_id, struct db_desired *out)
{
    static const char sql_device[] =
        "SELECT class, desired_seq FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    static const char sql_slots[] =
        "SELECT s.slot, s.version_id, m.name, v.version, v.sha256, v.size, s.rollout_id,"
        " s.state"
        " FROM device_slots s JOIN model_versions v ON v.id = s.version_id"
        " JOIN models m ON m.id = v.model_id WHERE s.device_id = ?1";
    memset(out, 0, sizeof(*out));
    /* Both reads under one hold of the lock, so that they see one state. */
    db_lock(db);
    int rc = db_select(db, sql_device, DB_ONE, desired_device_row, out, "s", device_id);
    if (rc == 0)
        rc = db_select(db, sql_slots, DB_ALL, desired_slot_row, out, "s", device_id);
    db_unlock(db);
    return rc;
}

int db_device_desired_put(struct db *db, const char *device_id, int64_t seq, const char *envelope)
{
    static const char sql_device[] =
        "UPDATE devices SET desired_seq = ?2, desired = ?3"
        " WHERE id = ?1 AND decommissioned_at IS NULL AND desired_seq < ?2";
    static const char sql_exists[] =
        "SELECT 1 FROM devices WHERE id = ?1 AND decommissioned_at IS NULL";
    int rc = db_exec_one(db, sql_device, "sis", device_id, seq, envelope);
    if (rc == EF_ENOENT) {
        /* Gone, or a seq that would go backwards. */
        rc = db_select_int(db, sql_exists, NULL, "s", device_id);
        rc = rc == 0 ? EF_ESTALE : rc;
    }
    return rc;
}

int db_device_desired_store(struct db *db, const char *device_id, int64_t seq, const char *envelope,
                            enum ef_slot_kind slot, int64_t version_id, const char *rollout_id,
                            int64_t now)
{
    static const char sql_slot[] =
        "INSERT INTO device_slots (device_id, slot, version_id, state, reason, updated_at,"
        " rollout_id) VALUES (?1, ?2, ?3, 'pending', NULL, ?4, ?5)"
        " ON CONFLICT (device_id, slot) DO UPDATE SET version_id = excluded.version_id,"
        " state = 'pending', reason = NULL, updated_at = excluded.updated_at,"
        " rollout_id = excluded.rollout_id";
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    rc = db_device_desired_put(db, device_id, seq, envelope);
    if (rc == 0)
        rc = db_exec(db, sql_slot, "ssiis", device_id, ef_slot_name(slot), version_id, now,
                     rollout_id && *rollout_id ? rollout_id : NULL);
    return db_tx_end(db, rc);
}

/* ---- rings ---- */

int db_ring_create(struct db *db, const char *name, const int64_t *position, const json_t *selector,
                   int64_t now)
{
    static const char sql[] = "INSERT INTO rings (name, position, selector, created_at) VALUES (?1,"
                              " COALESCE(?2, (SELECT COALESCE(MAX(position), -1) + 1 FROM rings"
                              "               WHERE name != 'default')), ?3, ?4)";
    char *selector_json = NULL;
    int rc = tags_text(selector, &selector_json);
    if (rc == 0)
        rc = db_exec(db, sql, "sIsi", name, position, selector_json ? selector_json : "{}", now);
    free(selector_json);
    return rc;
}

int db_ring_id(struct db *db, const char *name, int64_t *id)
{
    static const char sql[] = "SELECT id FROM rings WHERE name = ?1";
    return db_select_int(db, sql, id, "s", name);
}

int db_ring_get(struct db *db, const char *name, json_t **out)
{
    static const char sql[] = RING_SELECT " WHERE r.name = ?1";
    return db_select_json(db, sql, DB_ONE, out, "s", name);
}

int db_rings_list(struct db *db, json_t **out)
{
    static const char sql[] = RING_SELECT " ORDER BY r.position, r.id";
    return db_select_json(db, sql, DB_ALL, out, NULL);
}

int db_ring_update(struct db *db, const char *name, const int64_t *position, const json_t *selector)
{
    static const char sql[] = "UPDATE rings SET position = COALESCE(?2, position),"
                              " selector = COALESCE(?3, selector) WHERE name = ?1";
    char *selector_json = NULL;
    int rc = tags_text(selector, &selector_json);
    if (rc == 0)
        rc = db_exec_one(db, sql, "sIs", name, position, selector_json);
    free(selector_json);
    return rc;
}

/* A db_select row callback: appends the first column, a string, to the
 * JSON array ids. */
static int append_id(sqlite3_stmt *st, void *ids)
{
    json_t *id = json_string((const char *)sqlite3_column_text(st, 0));
    return json_array_append_new(ids, id) == 0 ? 0 : EF_ENOMEM;
}

int db_ring_devices(struct db *db, int64_t ring_id, const char *class, json_t **out)
{
    static const char sql[] =
        "SELECT dr.device_id FROM device_rings dr JOIN devices d ON d.id = dr.device_id"
        " WHERE dr.ring_id = ?1 AND d.decommissioned_at IS NULL"
        " AND (?2 IS NULL OR d.class = ?2) ORDER BY dr.device_id";
    json_t *ids = json_array();
    int rc = ids ? db_select(db, sql, DB_ALL, append_id, ids, "is", ring_id, class) : EF_ENOMEM;
    *out = NULL;
    if (rc == 0)
        *out = json_incref(ids);
    json_decref(ids);
    return rc;
}

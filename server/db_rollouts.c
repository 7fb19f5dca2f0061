/*
 * db_rollouts.c - the SQL of rollouts: creating them, their states and
 * those of their rings, the devices they assigned, and the rollout object.
 */
#include "server/db_rollouts.h"
#include "server/db_internal.h"
#include "common/clock.h"
#include "common/ef_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[DB_ACTION_COUNT] = {
    [DB_ACTION_PENDING] = "pending",         [DB_ACTION_NOTIFIED] = "notified",
    [DB_ACTION_DOWNLOADING] = "downloading", [DB_ACTION_VERIFYING] = "verifying",
    [DB_ACTION_ACTIVE] = "active",           [DB_ACTION_COMMITTED] = "committed",
    [DB_ACTION_FAILED] = "failed",           [DB_ACTION_ROLLED_BACK] = "rolled_back",
    [DB_ACTION_CANCELLED] = "cancelled",
};

const char *db_action_name(enum db_action a)
{
    return a < DB_ACTION_COUNT ? action_names[a] : "pending";
}

/* The action a stored state names; slots only hold these (db_fleet.c maps
 * the agent's own steps), anything else reads as pending. */
static enum db_action action_parse(const char *s)
{
    for (int a = 0; s && a < DB_ACTION_COUNT; a++)
        if (strcmp(s, action_names[a]) == 0)
            return (enum db_action)a;
    return DB_ACTION_PENDING;
}

void db_rollout_clear(struct db_rollout *r)
{
    free(r->policy);
    memset(r, 0, sizeof(*r));
}

int db_rollout_create(struct db *db, int64_t version_id, enum ef_slot_kind slot,
                      const int64_t *ring_ids, size_t ring_count, const char *policy, int64_t now,
                      int64_t *id)
{
    /* A version that does not exist leaves model_id NULL: EF_ECONFLICT. */
    static const char sql_rollout[] =
        "INSERT INTO rollouts (model_id, version_id, policy, created_at, slot)"
        " VALUES ((SELECT model_id FROM model_versions WHERE id = ?1), ?1, ?2, ?3, ?4)";
    static const char sql_ring[] =
        "INSERT INTO rollout_rings (rollout_id, position, ring_id) VALUES (?1, ?2, ?3)";
    int64_t rollout_id = 0;
    int rc;
    if (ring_count == 0 || ring_count > DB_ROLLOUT_MAX_RINGS)
        return EF_EINVAL;
    if ((rc = db_tx_begin(db)) != 0)
        return rc;
    rc = db_insert(db, sql_rollout, &rollout_id, "isis", version_id, policy, now,
                   ef_slot_name(slot));
    for (size_t i = 0; rc == 0 && i < ring_count; i++)
        rc = db_exec(db, sql_ring, "iii", rollout_id, (int64_t)(i + 1), ring_ids[i]);
    if ((rc = db_tx_end(db, rc)) == 0 && id)
        *id = rollout_id;
    return rc;
}

/* A row callback of db_rollout_get: the rollout's columns from the first
 * row, one ring from each. */
static int rollout_row(sqlite3_stmt *st, void *arg)
{
    struct db_rollout *r = arg;
    struct db_rollout_ring *g;
    if (r->id == 0) {
        r->id = sqlite3_column_int64(st, 0);
        r->model_id = sqlite3_column_int64(st, 1);
        db_column_copy(st, 2, r->model, sizeof(r->model));
        r->version_id = sqlite3_column_int64(st, 3);
        r->version = sqlite3_column_int64(st, 4);
        db_column_copy(st, 5, r->state, sizeof(r->state));
        db_column_copy(st, 6, r->reason, sizeof(r->reason));
        const char *policy = (const char *)sqlite3_column_text(st, 7);
        if (!(r->policy = strdup(policy ? policy : "{}")))
            return EF_ENOMEM;
        r->created_at = sqlite3_column_int64(st, 8);
        r->started_at = sqlite3_column_int64(st, 9);
        r->finished_at = sqlite3_column_int64(st, 10);
        /* The CHECK of schema/009 keeps slot to the two names. */
        if (ef_slot_kind_parse((const char *)sqlite3_column_text(st, 19), &r->slot) != 0)
            r->slot = EF_SLOT_PRODUCTION;
        r->promoted_to = sqlite3_column_int64(st, 20);
    }
    /* The CHECKs and db_rollout_create keep rings within the bound. */
    if (r->ring_count >= DB_ROLLOUT_MAX_RINGS)
        return 0;
    g = &r->rings[r->ring_count++];
    g->position = sqlite3_column_int64(st, 11);
    g->ring_id = sqlite3_column_int64(st, 12);
    db_column_copy(st, 13, g->name, sizeof(g->name));
    db_column_copy(st, 14, g->state, sizeof(g->state));
    db_column_copy(st, 15, g->reason, sizeof(g->reason));
    g->started_at = sqlite3_column_int64(st, 16);
    g->soak_started_at = sqlite3_column_int64(st, 17);
    g->finished_at = sqlite3_column_int64(st, 18);
    return 0;
}

int db_rollout_get(struct db *db, int64_t id, struct db_rollout *out)
{
    static const char sql[] =
        "SELECT r.id, r.model_id, m.name, r.version_id, v.version, r.state, r.reason, r.policy,"
        " r.created_at, r.started_at, r.finished_at,"
        " rr.position, rr.ring_id, g.name, rr.state, rr.reason, rr.started_at,"
        " rr.soak_started_at, rr.finished_at, r.slot, r.promoted_to"
        " FROM rollouts r JOIN models m ON m.id = r.model_id"
        " JOIN model_versions v ON v.id = r.version_id"
        " JOIN rollout_rings rr ON rr.rollout_id = r.id JOIN rings g ON g.id = rr.ring_id"
        " WHERE r.id = ?1 ORDER BY rr.position";
    memset(out, 0, sizeof(*out));
    int rc = db_select(db, sql, DB_ALL, rollout_row, out, "i", id);
    if (rc == 0 && out->id == 0)
        rc = EF_ENOENT;
    if (rc != 0)
        db_rollout_clear(out);
    return rc;
}

/* A growing array of ids, for db_select. */
struct id_list {
    int64_t *ids;
    size_t count, size;
};

static int id_row(sqlite3_stmt *st, void *arg)
{
    struct id_list *l = arg;
    if (l->count == l->size) {
        size_t size = l->size ? l->size * 2 : 16;
        int64_t *ids = realloc(l->ids, size * sizeof(*ids));
        if (!ids)
            return EF_ENOMEM;
        l->ids = ids;
        l->size = size;
    }
    l->ids[l->count++] = sqlite3_column_int64(st, 0);
    return 0;
}

int db_rollout_ids(struct db *db, const char *model, const char *state, int64_t **ids,
                   size_t *count)
{
    static const char sql[] = "SELECT r.id FROM rollouts r JOIN models m ON m.id = r.model_id"
                              " WHERE (?1 IS NULL OR m.name = ?1) AND (?2 IS NULL OR r.state = ?2)"
                              " ORDER BY r.id DESC";
    struct id_list l = {0};
    int rc = db_select(db, sql, DB_ALL, id_row, &l, "ss", model, state);
    *ids = NULL;
    *count = 0;
    if (rc == 0) {
        *ids = l.ids;
        *count = l.count;
        l.ids = NULL;
    }
    free(l.ids);
    return rc;
}

int db_rollout_active(struct db *db, const char *model, enum ef_slot_kind slot, int64_t *id)
{
    static const char sql[] = "SELECT r.id FROM rollouts r JOIN models m ON m.id = r.model_id"
                              " WHERE m.name = ?1 AND r.slot = ?2"
                              " AND r.state IN ('running', 'paused') ORDER BY r.id DESC LIMIT 1";
    return db_select_int(db, sql, id, "ss", model, ef_slot_name(slot));
}

int db_rollout_set_promoted(struct db *db, int64_t id, int64_t promoted_to)
{
    static const char sql[] = "UPDATE rollouts SET promoted_to = ?2"
                              " WHERE id = ?1 AND slot = 'shadow' AND promoted_to IS NULL";
    int rc = db_exec_one(db, sql, "ii", id, promoted_to);
    return rc == EF_ENOENT ? EF_ECONFLICT : rc;
}

int db_rollout_shadow_clear(struct db *db, const char *device_id, int64_t seq, const char *envelope)
{
    static const char sql_slot[] =
        "DELETE FROM device_slots WHERE device_id = ?1 AND slot = 'shadow'";
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if (envelope)
        rc = db_device_desired_put(db, device_id, seq, envelope);
    if (rc == 0)
        rc = db_exec(db, sql_slot, "s", device_id);
    return db_tx_end(db, rc);
}

int db_rollout_set_state(struct db *db, int64_t id, const char *from, const char *to,
                         const char *reason, int64_t now)
{
    static const char sql[] =
        "UPDATE rollouts SET state = ?3, reason = ?4,"
        " started_at = CASE WHEN ?3 = 'running' THEN COALESCE(started_at, ?5) ELSE started_at END,"
        " finished_at = CASE WHEN ?3 IN ('succeeded', 'failed', 'aborted', 'rolled_back')"
        "  THEN ?5 END"
        " WHERE id = ?1 AND state = ?2";
    int rc = db_exec_one(db, sql, "isssi", id, from, to, reason, now);
    return rc == EF_ENOENT ? EF_ECONFLICT : rc;
}

int db_rollout_ring_set_state(struct db *db, int64_t id, int64_t position, const char *state,
                              const char *reason, int64_t now)
{
    static const char sql[] =
        "UPDATE rollout_rings SET state = ?3, reason = ?4,"
        " started_at = CASE WHEN ?3 = 'running' THEN ?5 ELSE started_at END,"
        " soak_started_at = CASE WHEN ?3 = 'soaking' THEN ?5 WHEN ?3 = 'running' THEN NULL"
        "  ELSE soak_started_at END,"
        " finished_at = CASE WHEN ?3 IN ('succeeded', 'failed') THEN ?5 END"
        " WHERE rollout_id = ?1 AND position = ?2";
    return db_exec_one(db, sql, "iissi", id, position, state, reason, now);
}

int db_rollout_track(struct db *db, int64_t id, int64_t ring_id, const char *class, int64_t now)
{
    /* The previous version: what the production slot has committed, or
     * what it wants because an earlier rollout gave it back as the device's
     * previous committed version (an abort just before this rollout). The
     * WHERE before ON CONFLICT tells SQLite's parser that the upsert belongs
     * to the INSERT, not to a join of the SELECT. */
    static const char sql[] =
        "INSERT INTO rollout_devices (rollout_id, device_id, ring_id, previous_version_id,"
        " assigned_at)"
        " SELECT ?1, d.id, ?2, (SELECT s.version_id FROM device_slots s WHERE s.device_id = d.id"
        "   AND s.slot = (SELECT slot FROM rollouts WHERE id = ?1)"
        "   AND (s.state = 'committed' OR s.version_id IN"
        "   (SELECT o.previous_version_id FROM rollout_devices o WHERE o.device_id = d.id"
        "     AND o.rollout_id != ?1 AND o.final_state IN ('cancelled', 'rolled_back')))), ?4"
        " FROM devices d JOIN device_rings dr ON dr.device_id = d.id"
        " WHERE dr.ring_id = ?2 AND d.decommissioned_at IS NULL AND (?3 IS NULL OR d.class = ?3)"
        " ON CONFLICT (rollout_id, device_id) DO UPDATE SET ring_id = excluded.ring_id"
        " WHERE rollout_devices.ring_id != excluded.ring_id";
    return db_exec(db, sql, "iisi", id, ring_id, class, now);
}

/* A growing array of devices, for db_select. */
struct device_list {
    struct db_rollout_device *d;
    size_t count, size;
};

static int device_row(sqlite3_stmt *st, void *arg)
{
    struct device_list *l = arg;
    struct db_rollout_device *d;
    if (l->count == l->size) {
        size_t size = l->size ? l->size * 2 : 64;
        struct db_rollout_device *grown = realloc(l->d, size * sizeof(*grown));
        if (!grown)
            return EF_ENOMEM;
        l->d = grown;
        l->size = size;
    }
    d = &l->d[l->count++];
    memset(d, 0, sizeof(*d));
    db_column_copy(st, 0, d->device_id, sizeof(d->device_id));
    d->ring_id = sqlite3_column_int64(st, 1);
    d->previous_version_id = sqlite3_column_int64(st, 2);
    d->slot_version_id = sqlite3_column_int64(st, 3);
    d->assigned = sqlite3_column_int(st, 4) != 0;
    d->final = sqlite3_column_type(st, 5) != SQLITE_NULL;
    if (d->final)
        d->action = action_parse((const char *)sqlite3_column_text(st, 5));
    else if (d->assigned)
        d->action = action_parse((const char *)sqlite3_column_text(st, 6));
    else
        d->action = DB_ACTION_PENDING;
    /* The rollout's own note wins; else what the device said about it. */
    if (sqlite3_column_type(st, 7) != SQLITE_NULL || !d->assigned || d->final)
        db_column_copy(st, 7, d->reason, sizeof(d->reason));
    else
        db_column_copy(st, 8, d->reason, sizeof(d->reason));
    return 0;
}

int db_rollout_devices(struct db *db, int64_t id, int64_t ring_id, struct db_rollout_device **out,
                       size_t *count)
{
    static const char sql[] =
        "SELECT rd.device_id, rd.ring_id, COALESCE(rd.previous_version_id, 0),"
        " COALESCE(s.version_id, 0),"
        " COALESCE(s.version_id = r.version_id AND s.rollout_id = CAST(r.id AS TEXT), 0),"
        " rd.final_state, s.state, rd.reason, s.reason"
        " FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id"
        " JOIN devices d ON d.id = rd.device_id AND d.decommissioned_at IS NULL"
        " LEFT JOIN device_slots s ON s.device_id = rd.device_id AND s.slot = r.slot"
        " WHERE rd.rollout_id = ?1 AND (?2 = 0 OR rd.ring_id = ?2) ORDER BY rd.device_id";
    struct device_list l = {0};
    int rc = db_select(db, sql, DB_ALL, device_row, &l, "ii", id, ring_id);
    *out = NULL;
    *count = 0;
    if (rc == 0) {
        *out = l.d;
        *count = l.count;
        l.d = NULL;
    }
    free(l.d);
    return rc;
}

int64_t db_rollout_count(const struct db_rollout_device *d, size_t n, int64_t ring_id,
                         int64_t counts[DB_ACTION_COUNT])
{
    int64_t devices = 0;
    memset(counts, 0, DB_ACTION_COUNT * sizeof(counts[0]));
    for (size_t i = 0; i < n; i++) {
        if (d[i].ring_id != ring_id)
            continue;
        counts[d[i].action]++;
        devices++;
    }
    return devices;
}

int db_rollout_device_finish(struct db *db, int64_t id, const char *device_id,
                             const char *final_state, const char *reason)
{
    static const char sql[] = "UPDATE rollout_devices SET final_state = ?3, reason = ?4"
                              " WHERE rollout_id = ?1 AND device_id = ?2";
    return db_exec_one(db, sql, "isss", id, device_id, final_state, reason);
}

int db_rollout_device_timeout(struct db *db, int64_t id, const char *device_id, int64_t now)
{
    static const char sql_slot[] =
        "UPDATE device_slots SET state = 'failed', reason = 'timeout', updated_at = ?3"
        " WHERE device_id = ?2 AND slot = (SELECT slot FROM rollouts WHERE id = ?1)"
        " AND rollout_id = CAST(?1 AS TEXT)"
        " AND version_id = (SELECT version_id FROM rollouts WHERE id = ?1)"
        " AND state NOT IN ('committed', 'failed', 'rolled_back')";
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    rc = db_rollout_device_finish(db, id, device_id, "failed", "timeout");
    if (rc == 0)
        rc = db_exec(db, sql_slot, "isi", id, device_id, now);
    return db_tx_end(db, rc);
}

/* A Unix ms time as an RFC 3339 string, or null for 0 ("not yet"). */
static json_t *time_json(int64_t ms)
{
    char buf[EF_TIME_STR_SIZE];
    if (ms == 0)
        return json_null();
    ef_time_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* A stored reason, or null when there is none. */
static json_t *reason_json(const char *reason)
{
    return reason[0] ? json_string(reason) : json_null();
}

/* The ring object of the API for ring g, counted over the rollout's
 * devices. NULL on ENOMEM. */
static json_t *ring_json(const struct db_rollout_ring *g, const struct db_rollout_device *d,
                         size_t n)
{
    int64_t counts[DB_ACTION_COUNT];
    int64_t devices = db_rollout_count(d, n, g->ring_id, counts);
    json_t *by_action = json_object();
    for (int a = 0; by_action && a < DB_ACTION_COUNT; a++)
        if (json_object_set_new(by_action, db_action_name((enum db_action)a),
                                json_integer(counts[a])) != 0) {
            json_decref(by_action);
            by_action = NULL;
        }
    if (!by_action)
        return NULL;
    return json_pack("{s:s, s:I, s:s, s:I, s:o, s:o, s:o, s:o}", "name", g->name, "position",
                     (json_int_t)g->position, "state", g->state, "devices", (json_int_t)devices,
                     "counts", by_action, "started_at", time_json(g->started_at), "finished_at",
                     time_json(g->finished_at), "reason", reason_json(g->reason));
}

int db_rollout_json(struct db *db, int64_t id, json_t **out)
{
    struct db_rollout r = {0};
    struct db_rollout_device *devices = NULL;
    size_t n = 0;
    json_t *rings = NULL, *policy = NULL, *doc = NULL;
    int rc;
    *out = NULL;
    if ((rc = db_rollout_get(db, id, &r)) != 0 ||
        (rc = db_rollout_devices(db, id, 0, &devices, &n)) != 0)
        goto out;
    rc = EF_ENOMEM;
    if (!(rings = json_array()) || !(policy = json_loads(r.policy, 0, NULL)))
        goto out;
    for (size_t i = 0; i < r.ring_count; i++)
        if (json_array_append_new(rings, ring_json(&r.rings[i], devices, n)) != 0)
            goto out;
    doc = json_pack("{s:I, s:s, s:I, s:s, s:o, s:s, s:o, s:O, s:o, s:o, s:o, s:O}", "id",
                    (json_int_t)r.id, "model", r.model, "version", (json_int_t)r.version, "slot",
                    ef_slot_name(r.slot), "promoted_to",
                    r.promoted_to ? json_integer(r.promoted_to) : json_null(), "state", r.state,
                    "reason", reason_json(r.reason), "policy", policy, "created_at",
                    time_json(r.created_at), "started_at", time_json(r.started_at), "finished_at",
                    time_json(r.finished_at), "rings", rings);
    if (doc) {
        *out = doc;
        rc = 0;
    }
out:
    json_decref(rings);
    json_decref(policy);
    db_rollout_clear(&r);
    free(devices);
    return rc;
}

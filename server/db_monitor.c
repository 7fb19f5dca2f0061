/*
 * db_monitor.c - the SQL of trigger rules, alerts and the model versions
 * the monitor evaluates them for.
 */
#include "server/db_monitor.h"
#include "server/db_internal.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

#define SQL_TIME(col) "strftime('%Y-%m-%dT%H:%M:%fZ', " col " / 1000.0, 'unixepoch')"

/* clang-format off */
/* The columns db_trigger_row reads, in its order. */
#define TRIGGER_SELECT                                                                             \
    "SELECT t.id, m.name, COALESCE(t.ring_id, 0), COALESCE(r.name, ''), t.metric,"                 \
    " t.aggregation, t.op, t.threshold, t.min_devices, t.window_s, t.cooldown_s, t.action,"        \
    " t.enabled, t.created_at"                                                                     \
    " FROM triggers t JOIN models m ON m.id = t.model_id LEFT JOIN rings r ON r.id = t.ring_id"
/* The rule object of the API. */
#define TRIGGER_JSON_SELECT                                                                        \
    "SELECT t.id AS id, m.name AS model, r.name AS ring, t.metric AS metric,"                      \
    " t.aggregation AS aggregation, t.op AS op, t.threshold AS threshold,"                         \
    " t.window_s AS window_s, t.min_devices AS min_devices, t.cooldown_s AS cooldown_s,"           \
    " t.action AS action,"                                                                         \
    " t.enabled AS enabled,"                                                                       \
    " " SQL_TIME("t.created_at") " AS created_at"                                                  \
    " FROM triggers t JOIN models m ON m.id = t.model_id LEFT JOIN rings r ON r.id = t.ring_id"
/* The alert object of the API. */
#define ALERT_JSON_SELECT                                                                          \
    "SELECT id, trigger_id, model, version, ring, metric, value, threshold, op, devices, state,"   \
    " " SQL_TIME("fired_at") " AS fired_at,"                                                       \
    " CASE WHEN resolved_at IS NULL THEN NULL ELSE " SQL_TIME("resolved_at") " END"                \
    "   AS resolved_at,"                                                                           \
    " action, action_result FROM alerts"
/* clang-format on */

/* A db_select row callback: one TRIGGER_SELECT row into *(struct
 * db_trigger *)arg. EF_EINVAL when a name does not parse. */
static int trigger_row(sqlite3_stmt *st, void *arg)
{
    struct db_trigger *t = arg;
    char metric[32], aggregation[16], op[16], action[16];
    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(st, 0);
    db_column_copy(st, 1, t->model, sizeof(t->model));
    t->ring_id = sqlite3_column_int64(st, 2);
    db_column_copy(st, 3, t->ring, sizeof(t->ring));
    db_column_copy(st, 4, metric, sizeof(metric));
    db_column_copy(st, 5, aggregation, sizeof(aggregation));
    db_column_copy(st, 6, op, sizeof(op));
    t->rule.threshold = sqlite3_column_double(st, 7);
    t->rule.min_devices = sqlite3_column_int64(st, 8);
    t->window_s = sqlite3_column_int64(st, 9);
    t->cooldown_s = sqlite3_column_int64(st, 10);
    db_column_copy(st, 11, action, sizeof(action));
    t->enabled = sqlite3_column_int(st, 12) != 0;
    t->created_at = sqlite3_column_int64(st, 13);
    if (metric_parse(metric, &t->rule.metric) != 0 ||
        trigger_aggregation_parse(aggregation, &t->rule.aggregation) != 0 ||
        trigger_op_parse(op, &t->rule.op) != 0 || trigger_action_parse(action, &t->action) != 0) {
        ef_error("trigger_unreadable", "trigger=%lld metric=%s aggregation=%s op=%s action=%s",
                 (long long)t->id, metric, aggregation, op, action);
        return EF_EINVAL;
    }
    return 0;
}

int db_trigger_create(struct db *db, const struct db_trigger *t, int64_t now, int64_t *id)
{
    static const char sql[] =
        "INSERT INTO triggers (model_id, ring_id, metric, aggregation, op, threshold, window_s,"
        " min_devices, cooldown_s, action, enabled, created_at)"
        " SELECT m.id, CASE WHEN ?2 = '' THEN NULL ELSE (SELECT id FROM rings WHERE name = ?2) END,"
        " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 FROM models m WHERE m.name = ?1"
        " AND (?2 = '' OR EXISTS (SELECT 1 FROM rings WHERE name = ?2))";
    int64_t new_id = 0;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    rc = db_insert(db, sql, &new_id, "sssssdiiisii", t->model, t->ring, metric_name(t->rule.metric),
                   trigger_aggregation_name(t->rule.aggregation), trigger_op_name(t->rule.op),
                   t->rule.threshold, t->window_s, t->rule.min_devices, t->cooldown_s,
                   trigger_action_name(t->action), (int64_t)(t->enabled ? 1 : 0), now);
    /* The SELECT inserts nothing when the model or the ring is unknown. */
    if (rc == 0 && sqlite3_changes(db->conn) != 1)
        rc = EF_ENOENT;
    rc = db_tx_end(db, rc);
    if (rc == 0 && id)
        *id = new_id;
    return rc;
}

int db_trigger_get(struct db *db, int64_t id, struct db_trigger *out)
{
    static const char sql[] = TRIGGER_SELECT " WHERE t.id = ?1";
    return db_select(db, sql, DB_ONE, trigger_row, out, "i", id);
}

/* A growing array of rules, for db_triggers_enabled. */
struct trigger_list {
    struct db_trigger *items;
    size_t count, cap;
};

static int trigger_list_row(sqlite3_stmt *st, void *arg)
{
    struct trigger_list *l = arg;
    struct db_trigger t;
    if (trigger_row(st, &t) != 0)
        return 0; /* logged; the other rules still run */
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct db_trigger *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return EF_ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = t;
    return 0;
}

int db_triggers_enabled(struct db *db, struct db_trigger **out, size_t *count)
{
    static const char sql[] = TRIGGER_SELECT " WHERE t.enabled = 1 ORDER BY t.id";
    struct trigger_list l = {0};
    int rc = db_select(db, sql, DB_ALL, trigger_list_row, &l, NULL);
    if (rc != 0) {
        free(l.items);
        l.items = NULL;
        l.count = 0;
    }
    *out = l.items;
    *count = l.count;
    return rc;
}

/* The integer member "enabled" of a rule object as true or false. */
static void enabled_bool(json_t *rule)
{
    json_t *v = json_object_get(rule, "enabled");
    if (json_is_integer(v))
        json_object_set_new(rule, "enabled", json_boolean(json_integer_value(v) != 0));
}

int db_trigger_json(struct db *db, int64_t id, json_t **out)
{
    static const char sql[] = TRIGGER_JSON_SELECT " WHERE t.id = ?1";
    int rc = db_select_json(db, sql, DB_ONE, out, "i", id);
    enabled_bool(*out);
    return rc;
}

int db_triggers_list(struct db *db, const char *model, json_t **out)
{
    static const char sql[] =
        TRIGGER_JSON_SELECT " WHERE (?1 IS NULL OR m.name = ?1) ORDER BY t.id";
    size_t i;
    json_t *rule;
    int rc = db_select_json(db, sql, DB_ALL, out, "s", model);
    /* On failure *out is NULL and this does nothing. */
    json_array_foreach(*out, i, rule)
    {
        enabled_bool(rule);
    }
    return rc;
}

int db_trigger_delete(struct db *db, int64_t id, int64_t now, int64_t *resolved)
{
    static const char sql_resolve[] = "UPDATE alerts SET state = 'resolved', resolved_at = ?2"
                                      " WHERE trigger_id = ?1 AND state = 'firing'";
    static const char sql_delete[] = "DELETE FROM triggers WHERE id = ?1";
    int64_t n = 0;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if ((rc = db_exec_one(db, sql_delete, "i", id)) == 0 &&
        (rc = db_exec(db, sql_resolve, "ii", id, now)) == 0)
        n = sqlite3_changes(db->conn);
    rc = db_tx_end(db, rc);
    if (resolved)
        *resolved = rc == 0 ? n : 0;
    return rc;
}

int db_alert_create(struct db *db, const struct db_alert_new *a, int64_t *id)
{
    static const char sql[] =
        "INSERT INTO alerts (trigger_id, model, version, ring, metric, value, threshold, op,"
        " devices, state, fired_at, action) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
        " 'firing', ?10, ?11 WHERE EXISTS (SELECT 1 FROM triggers WHERE id = ?1)";
    int64_t new_id = 0;
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    rc = db_insert(db, sql, &new_id, "isissddsiis", a->trigger_id, a->model, a->version, a->ring,
                   a->metric, a->value, a->threshold, a->op, a->devices, a->fired_at, a->action);
    /* A rule deleted since the monitor read it raises nothing. */
    if (rc == 0 && sqlite3_changes(db->conn) != 1)
        rc = EF_ENOENT;
    rc = db_tx_end(db, rc);
    if (rc == 0 && id)
        *id = new_id;
    return rc;
}

int db_alert_set_result(struct db *db, int64_t id, const char *result)
{
    static const char sql[] = "UPDATE alerts SET action_result = ?2 WHERE id = ?1";
    char text[DB_ALERT_RESULT_SIZE];
    snprintf(text, sizeof(text), "%s", result ? result : "");
    return db_exec_one(db, sql, "is", id, text);
}

int db_alert_resolve(struct db *db, int64_t id, int64_t now)
{
    static const char sql[] = "UPDATE alerts SET state = 'resolved', resolved_at = ?2"
                              " WHERE id = ?1 AND state = 'firing'";
    return db_exec_one(db, sql, "ii", id, now);
}

int db_alert_open(struct db *db, int64_t trigger_id, int64_t version, int64_t *id)
{
    static const char sql[] = "SELECT id FROM alerts WHERE trigger_id = ?1 AND version = ?2"
                              " AND state = 'firing'";
    return db_select_int(db, sql, id, "ii", trigger_id, version);
}

int db_alert_last_fired(struct db *db, int64_t trigger_id, int64_t version, int64_t *fired_at)
{
    static const char sql[] = "SELECT fired_at FROM alerts WHERE trigger_id = ?1 AND version = ?2"
                              " ORDER BY fired_at DESC LIMIT 1";
    return db_select_int(db, sql, fired_at, "ii", trigger_id, version);
}

/* A growing array of open alerts, for db_alerts_open. */
struct open_list {
    struct db_open_alert *items;
    size_t count, cap;
};

static int open_row(sqlite3_stmt *st, void *arg)
{
    struct open_list *l = arg;
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct db_open_alert *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return EF_ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count].id = sqlite3_column_int64(st, 0);
    l->items[l->count].version = sqlite3_column_int64(st, 1);
    l->count++;
    return 0;
}

int db_alerts_open(struct db *db, int64_t trigger_id, struct db_open_alert **out, size_t *count)
{
    static const char sql[] = "SELECT id, version FROM alerts WHERE trigger_id = ?1"
                              " AND state = 'firing' ORDER BY version";
    struct open_list l = {0};
    int rc = db_select(db, sql, DB_ALL, open_row, &l, "i", trigger_id);
    if (rc != 0) {
        free(l.items);
        l.items = NULL;
        l.count = 0;
    }
    *out = l.items;
    *count = l.count;
    return rc;
}

int db_alert_json(struct db *db, int64_t id, json_t **out)
{
    static const char sql[] = ALERT_JSON_SELECT " WHERE id = ?1";
    return db_select_json(db, sql, DB_ONE, out, "i", id);
}

int db_alerts_list(struct db *db, const struct db_alert_filter *f, json_t **out)
{
    static const char sql_by_model[] =
        ALERT_JSON_SELECT " WHERE model = ?1 AND (?2 IS NULL OR state = ?2) AND fired_at >= ?3"
                          " ORDER BY fired_at DESC, id DESC LIMIT ?4";
    static const char sql_any[] =
        ALERT_JSON_SELECT " WHERE (?2 IS NULL OR state = ?2) AND fired_at >= ?3"
                          " ORDER BY fired_at DESC, id DESC LIMIT ?4";
    *out = NULL;
    if (f->limit < 1 || f->limit > DB_ALERTS_LIMIT_MAX)
        return EF_EINVAL;
    return db_select_json(db, f->model ? sql_by_model : sql_any, DB_ALL, out, "ssii", f->model,
                          f->state, f->since, (int64_t)f->limit);
}

/* A growing array of versions, for db_monitor_versions. */
struct version_list {
    int64_t *items;
    size_t count, cap;
};

static int version_row(sqlite3_stmt *st, void *arg)
{
    struct version_list *l = arg;
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        int64_t *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return EF_ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = sqlite3_column_int64(st, 0);
    return 0;
}

int db_monitor_versions(struct db *db, const char *model, int64_t ring_id, int64_t since_ms,
                        int64_t **out, size_t *count)
{
    static const char sql[] =
        "SELECT DISTINCT version FROM telemetry_windows WHERE model = ?1 AND received_at >= ?2"
        " AND (?3 < 0 OR ring_id = ?3) ORDER BY version";
    struct version_list l = {0};
    int rc = db_select(db, sql, DB_ALL, version_row, &l, "sii", model, since_ms, ring_id);
    if (rc != 0) {
        free(l.items);
        l.items = NULL;
        l.count = 0;
    }
    *out = l.items;
    *count = l.count;
    return rc;
}

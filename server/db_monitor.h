/*
 * db_monitor.h - trigger rules, the alerts they raise, and the telemetry
 * versions the monitor evaluates them for (implemented in db_monitor.c over
 * schema/008_triggers.sql; see db.h for the locking rules).
 *
 * A rule names its model and ring by row; the API objects give their names.
 * Alerts are append-mostly: created firing, later resolved, with what their
 * action did recorded once; never deleted. At most one alert of a rule and
 * model version is firing at a time (a unique index). Times are Unix ms in
 * the structs and RFC 3339 in JSON.
 */
#ifndef EF_DB_MONITOR_H
#define EF_DB_MONITOR_H

#include "server/trigger_eval.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DB_TRIGGER_NAME_SIZE 65   /* a model or ring name and a NUL */
#define DB_ALERTS_LIMIT_MAX  1000 /* alerts one list returns at most */
#define DB_ALERT_RESULT_SIZE 256  /* a stored action result and its NUL */

/* A trigger rule as stored. */
struct db_trigger {
    int64_t id;
    char model[DB_TRIGGER_NAME_SIZE]; /* model name */
    int64_t ring_id;                  /* rings row; 0: every ring */
    char ring[DB_TRIGGER_NAME_SIZE];  /* its name, "" for every ring */
    struct trigger_rule rule;         /* metric, aggregation, op, threshold, min_devices */
    int64_t window_s;                 /* seconds of windows evaluated, >= 1 */
    int64_t cooldown_s;               /* seconds after an alert before the next, >= 0 */
    enum trigger_action action;
    bool enabled;
    int64_t created_at; /* Unix ms */
};

/* Stores a new rule t (id and created_at ignored; model and ring, "" for
 * none, by name) created at now; *id (may be NULL) receives its id.
 * EF_ENOENT when the model or the ring does not exist, EF_EDB. */
int db_trigger_create(struct db *db, const struct db_trigger *t, int64_t now, int64_t *id);

/* The rule id into *out. EF_ENOENT, EF_EDB. */
int db_trigger_get(struct db *db, int64_t id, struct db_trigger *out);

/* The enabled rules, by id, into *out (malloc'd, NULL when none; the caller
 * frees) and *count. A row that does not read as a rule (an unknown metric
 * name) is logged and left out. EF_ENOMEM, EF_EDB. */
int db_triggers_enabled(struct db *db, struct db_trigger **out, size_t *count);

/* The rule object of docs/monitoring.md as a new JSON object: {id, model,
 * ring (name or null), metric, aggregation, op, threshold, window_s,
 * min_devices, cooldown_s, action, enabled, created_at}. EF_ENOENT, EF_EDB,
 * EF_ENOMEM. */
int db_trigger_json(struct db *db, int64_t id, json_t **out);

/* The rule objects of model (NULL: every model), by id, as a new JSON
 * array. EF_EDB, EF_ENOMEM. */
int db_triggers_list(struct db *db, const char *model, json_t **out);

/* Deletes rule id; its firing alerts are resolved at now in the same
 * transaction (*resolved, may be NULL, receives how many). EF_ENOENT,
 * EF_EDB. */
int db_trigger_delete(struct db *db, int64_t id, int64_t now, int64_t *resolved);

/* A new alert, as the monitor raises it; strings borrowed. */
struct db_alert_new {
    int64_t trigger_id;
    const char *model;
    int64_t version;
    const char *ring; /* NULL for every ring */
    const char *metric;
    double value;
    double threshold;
    const char *op;
    int64_t devices;
    const char *action;
    int64_t fired_at; /* Unix ms */
};

/* Stores a firing alert; *id (may be NULL) receives its id. EF_EEXIST when
 * the rule already has a firing alert for the version, EF_ENOENT when the
 * rule does not exist (deleted meanwhile), EF_EDB. */
int db_alert_create(struct db *db, const struct db_alert_new *a, int64_t *id);

/* Records what alert id's action did (cut to DB_ALERT_RESULT_SIZE - 1
 * bytes). EF_ENOENT, EF_EDB. */
int db_alert_set_result(struct db *db, int64_t id, const char *result);

/* Moves alert id from firing to resolved at now. EF_ENOENT when it is not
 * firing (or does not exist), EF_EDB. */
int db_alert_resolve(struct db *db, int64_t id, int64_t now);

/* The firing alert of rule trigger_id for version into *id. EF_ENOENT when
 * there is none, EF_EDB. */
int db_alert_open(struct db *db, int64_t trigger_id, int64_t version, int64_t *id);

/* When the last alert of rule trigger_id for version fired (Unix ms) into
 * *fired_at. EF_ENOENT when it never fired, EF_EDB. */
int db_alert_last_fired(struct db *db, int64_t trigger_id, int64_t version, int64_t *fired_at);

/* A firing alert: its id and the model version it is about. */
struct db_open_alert {
    int64_t id;
    int64_t version;
};

/* The firing alerts of rule trigger_id, by version, into *out (malloc'd,
 * NULL when none; the caller frees) and *count. EF_ENOMEM, EF_EDB. */
int db_alerts_open(struct db *db, int64_t trigger_id, struct db_open_alert **out, size_t *count);

/* The alert object of docs/monitoring.md as a new JSON object: {id,
 * trigger_id, model, version, ring, metric, value, threshold, op, devices,
 * state, fired_at, resolved_at, action, action_result}. EF_ENOENT, EF_EDB,
 * EF_ENOMEM. */
int db_alert_json(struct db *db, int64_t id, json_t **out);

/* What db_alerts_list selects; NULL or 0 members do not filter. */
struct db_alert_filter {
    const char *model; /* model name */
    const char *state; /* "firing" or "resolved" */
    int64_t since;     /* fired at or after, Unix ms */
    int limit;         /* rows, 1..DB_ALERTS_LIMIT_MAX */
};

/* The matching alerts, newest first, as a new JSON array of alert objects.
 * EF_EINVAL (limit out of range), EF_EDB, EF_ENOMEM. */
int db_alerts_list(struct db *db, const struct db_alert_filter *f, json_t **out);

/* The versions of model that sent windows received at or after since_ms
 * (Unix ms) from ring ring_id (the ring stored with each window; -1: any
 * ring), ascending, into *out (malloc'd, NULL when none; the caller frees)
 * and *count. The monitor evaluates a rule for each, over the windows that
 * db_telemetry_device_sums (db_telemetry.h) sums per device. EF_ENOMEM,
 * EF_EDB. */
int db_monitor_versions(struct db *db, const char *model, int64_t ring_id, int64_t since_ms,
                        int64_t **out, size_t *count);

#endif

/*
 * test_db_monitor.c - trigger rules and alerts in a real SQLite database
 * (server/db_monitor.c): rules by model and ring name, deletion resolving
 * their alerts, one firing alert per rule and version, the append-mostly
 * alert table, list filters, and the versions that sent windows in a period,
 * scoped by the ring a window was received in. Windows are inserted with
 * SQL so that every column is the test's.
 */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_internal.h"
#include "server/db_monitor.h"
#include "server/db_registry.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"

#define NOW 1763805600000LL /* 2025-11-22T10:00:00.000Z */

static int64_t canary_id;

/* Models thyroid and iris, ring canary. */
static int setup(void **state)
{
    assert_int_equal(db_fixture_setup(state), 0);
    struct db_fixture *f = *state;
    assert_int_equal(db_model_create(f->db, "thyroid", "", NOW, NULL), 0);
    assert_int_equal(db_model_create(f->db, "iris", "", NOW, NULL), 0);
    assert_int_equal(db_ring_create(f->db, "canary", NULL, NULL, NOW), 0);
    assert_int_equal(db_ring_id(f->db, "canary", &canary_id), 0);
    return 0;
}

static struct db_trigger rule(const char *model, const char *ring)
{
    struct db_trigger t;
    memset(&t, 0, sizeof(t));
    snprintf(t.model, sizeof(t.model), "%s", model);
    snprintf(t.ring, sizeof(t.ring), "%s", ring);
    t.rule = (struct trigger_rule){METRIC_DRIFT, TRIGGER_AGG_MEDIAN, TRIGGER_ABOVE, 0.25, 3};
    t.window_s = 300;
    t.cooldown_s = 3600;
    t.action = TRIGGER_ACTION_RETRAIN;
    t.enabled = true;
    return t;
}

static void triggers_are_stored_read_listed_and_deleted(void **state)
{
    struct db_fixture *f = *state;
    struct db_trigger t = rule("thyroid", "canary"), got;
    int64_t id1 = 0, id2 = 0, resolved = -1;
    json_t *doc = NULL;
    assert_int_equal(db_trigger_create(f->db, &t, NOW, &id1), 0);
    t = rule("iris", "");
    t.enabled = false;
    t.rule.metric = METRIC_SHADOW_ACCURACY;
    t.rule.op = TRIGGER_BELOW;
    assert_int_equal(db_trigger_create(f->db, &t, NOW + 1, &id2), 0);
    /* Unknown model or ring: nothing stored. */
    t = rule("nope", "");
    assert_int_equal(db_trigger_create(f->db, &t, NOW, NULL), EF_ENOENT);
    t = rule("thyroid", "nope");
    assert_int_equal(db_trigger_create(f->db, &t, NOW, NULL), EF_ENOENT);

    assert_int_equal(db_trigger_get(f->db, id1, &got), 0);
    assert_string_equal(got.model, "thyroid");
    assert_string_equal(got.ring, "canary");
    assert_int_equal(got.ring_id, canary_id);
    assert_int_equal(got.rule.metric, METRIC_DRIFT);
    assert_int_equal(got.rule.aggregation, TRIGGER_AGG_MEDIAN);
    assert_int_equal(got.rule.min_devices, 3);
    assert_true(got.rule.threshold == 0.25);
    assert_int_equal(got.action, TRIGGER_ACTION_RETRAIN);
    assert_true(got.enabled);
    assert_int_equal(got.created_at, NOW);

    assert_int_equal(db_trigger_json(f->db, id2, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "iris");
    assert_true(json_is_null(json_object_get(doc, "ring")));
    assert_string_equal(json_string_value(json_object_get(doc, "metric")), "shadow_accuracy");
    assert_string_equal(json_string_value(json_object_get(doc, "op")), "below");
    assert_true(json_is_false(json_object_get(doc, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(doc, "window_s")), 300);
    assert_string_equal(json_string_value(json_object_get(doc, "created_at")),
                        "2025-11-22T10:00:00.001Z");
    json_decref(doc);

    /* Only enabled rules are evaluated. */
    struct db_trigger *enabled = NULL;
    size_t n = 0;
    assert_int_equal(db_triggers_enabled(f->db, &enabled, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(enabled[0].id, id1);
    free(enabled);

    assert_int_equal(db_triggers_list(f->db, "iris", &doc), 0);
    assert_int_equal(json_array_size(doc), 1);
    json_decref(doc);
    assert_int_equal(db_triggers_list(f->db, NULL, &doc), 0);
    assert_int_equal(json_array_size(doc), 2);
    json_decref(doc);

    /* Deleting a rule resolves its firing alert; the alert stays. */
    struct db_alert_new a = {id1,  "thyroid", 2, "canary",  "drift", 0.4,
                             0.25, "above",   3, "retrain", NOW};
    int64_t alert = 0;
    assert_int_equal(db_alert_create(f->db, &a, &alert), 0);
    assert_int_equal(db_trigger_delete(f->db, id1, NOW + 5, &resolved), 0);
    assert_int_equal(resolved, 1);
    assert_int_equal(db_trigger_get(f->db, id1, &got), EF_ENOENT);
    assert_int_equal(db_trigger_delete(f->db, id1, NOW, NULL), EF_ENOENT);
    assert_int_equal(db_alert_json(f->db, alert, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "resolved");
    assert_string_equal(json_string_value(json_object_get(doc, "resolved_at")),
                        "2025-11-22T10:00:00.005Z");
    json_decref(doc);
}

static void one_firing_alert_per_rule_and_version(void **state)
{
    struct db_fixture *f = *state;
    struct db_trigger t = rule("thyroid", "");
    int64_t tid = 0, a1 = 0, a2 = 0, a3 = 0, open = 0, fired = 0;
    json_t *doc = NULL;
    assert_int_equal(db_trigger_create(f->db, &t, NOW, &tid), 0);
    struct db_alert_new a = {tid,  "thyroid", 2, NULL,      "drift", 0.41,
                             0.25, "above",   4, "retrain", NOW + 10};
    assert_int_equal(db_alert_open(f->db, tid, 2, &open), EF_ENOENT);
    assert_int_equal(db_alert_last_fired(f->db, tid, 2, &fired), EF_ENOENT);
    assert_int_equal(db_alert_create(f->db, &a, &a1), 0);
    assert_int_equal(db_alert_create(f->db, &a, NULL), EF_EEXIST);
    struct db_alert_new orphan = a;
    orphan.trigger_id = tid + 100; /* no such rule */
    assert_int_equal(db_alert_create(f->db, &orphan, NULL), EF_ENOENT);
    a.version = 3;
    assert_int_equal(db_alert_create(f->db, &a, &a2), 0);
    assert_int_equal(db_alert_open(f->db, tid, 2, &open), 0);
    assert_int_equal(open, a1);

    struct db_open_alert *opens = NULL;
    size_t n = 0;
    assert_int_equal(db_alerts_open(f->db, tid, &opens, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(opens[0].id, a1);
    assert_int_equal(opens[0].version, 2);
    assert_int_equal(opens[1].version, 3);
    free(opens);

    assert_int_equal(db_alert_set_result(f->db, a1, "event published"), 0);
    assert_int_equal(db_alert_set_result(f->db, 999, "x"), EF_ENOENT);
    assert_int_equal(db_alert_resolve(f->db, a1, NOW + 20), 0);
    assert_int_equal(db_alert_resolve(f->db, a1, NOW + 30), EF_ENOENT);
    assert_int_equal(db_alert_open(f->db, tid, 2, &open), EF_ENOENT);
    assert_int_equal(db_alert_last_fired(f->db, tid, 2, &fired), 0);
    assert_int_equal(fired, NOW + 10);
    /* Resolved: the rule may fire again for the version. */
    a.version = 2;
    a.fired_at = NOW + 40;
    assert_int_equal(db_alert_create(f->db, &a, &a3), 0);
    assert_int_equal(db_alert_last_fired(f->db, tid, 2, &fired), 0);
    assert_int_equal(fired, NOW + 40);

    /* The object. */
    assert_int_equal(db_alert_json(f->db, a1, &doc), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "trigger_id")), tid);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "thyroid");
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), 2);
    assert_true(json_is_null(json_object_get(doc, "ring")));
    assert_true(json_real_value(json_object_get(doc, "value")) == 0.41);
    assert_int_equal(json_integer_value(json_object_get(doc, "devices")), 4);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "resolved");
    assert_string_equal(json_string_value(json_object_get(doc, "fired_at")),
                        "2025-11-22T10:00:00.010Z");
    assert_string_equal(json_string_value(json_object_get(doc, "action_result")),
                        "event published");
    json_decref(doc);
    assert_int_equal(db_alert_json(f->db, a2, &doc), 0);
    assert_true(json_is_null(json_object_get(doc, "resolved_at")));
    assert_true(json_is_null(json_object_get(doc, "action_result")));
    json_decref(doc);

    /* Append-mostly: the facts of an alert do not change, nor does a
     * resolved alert fire again, and none is deleted. */
    assert_int_not_equal(db_exec(f->db, "UPDATE alerts SET value = 9 WHERE id = ?1", "i", a1), 0);
    assert_int_not_equal(
        db_exec(f->db, "UPDATE alerts SET state = 'firing', resolved_at = NULL WHERE id = ?1", "i",
                a1),
        0);
    assert_int_not_equal(db_exec(f->db, "DELETE FROM alerts WHERE id = ?1", "i", a1), 0);
}

static void alerts_list_filters(void **state)
{
    struct db_fixture *f = *state;
    struct db_trigger t = rule("thyroid", "");
    int64_t tid = 0, iris = 0, ids[3];
    json_t *rows = NULL;
    assert_int_equal(db_trigger_create(f->db, &t, NOW, &tid), 0);
    t = rule("iris", "");
    assert_int_equal(db_trigger_create(f->db, &t, NOW, &iris), 0);
    struct db_alert_new a = {tid, "thyroid", 1, NULL, "drift", 1, 0.25, "above", 1, "none", NOW};
    assert_int_equal(db_alert_create(f->db, &a, &ids[0]), 0);
    a.version = 2;
    a.fired_at = NOW + 1000;
    assert_int_equal(db_alert_create(f->db, &a, &ids[1]), 0);
    a.trigger_id = iris;
    a.model = "iris";
    a.fired_at = NOW + 2000;
    assert_int_equal(db_alert_create(f->db, &a, &ids[2]), 0);
    assert_int_equal(db_alert_resolve(f->db, ids[0], NOW + 5), 0);

    struct db_alert_filter all = {.limit = 100};
    assert_int_equal(db_alerts_list(f->db, &all, &rows), 0);
    assert_int_equal(json_array_size(rows), 3);
    /* Newest first. */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), ids[2]);
    json_decref(rows);

    struct db_alert_filter by_model = {.model = "thyroid", .limit = 100};
    assert_int_equal(db_alerts_list(f->db, &by_model, &rows), 0);
    assert_int_equal(json_array_size(rows), 2);
    json_decref(rows);

    struct db_alert_filter firing = {.model = "thyroid", .state = "firing", .limit = 100};
    assert_int_equal(db_alerts_list(f->db, &firing, &rows), 0);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), ids[1]);
    json_decref(rows);

    struct db_alert_filter since = {.since = NOW + 1000, .limit = 1};
    assert_int_equal(db_alerts_list(f->db, &since, &rows), 0);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), ids[2]);
    json_decref(rows);

    struct db_alert_filter bad = {.limit = 0};
    assert_int_equal(db_alerts_list(f->db, &bad, &rows), EF_EINVAL);
    bad.limit = DB_ALERTS_LIMIT_MAX + 1;
    assert_int_equal(db_alerts_list(f->db, &bad, &rows), EF_EINVAL);
}

/* Inserts a window of model@version from device received at `at` in ring
 * ring_id with drift (negative: none), errors of 10 inferences, correct of
 * 10 feedback (negative: no correct). */
static void window(struct db *db, const char *device, const char *model, int64_t version,
                   int64_t at, int64_t ring_id, double drift, int64_t errors, int64_t correct)
{
    static const char sql[] =
        "INSERT INTO telemetry_windows (device_id, received_at, window_start, window_s, model,"
        " version, inferences, errors, feedback, cpu_s, drift, correct, ring_id, p99)"
        " VALUES (?1, ?2, ?2, 60, ?3, ?4, 10, ?5, 10, 0, ?6, ?7, ?8, ?9)";
    int64_t c = correct;
    double p99 = (double)(at - NOW) / 1000.0; /* distinct per window */
    if (drift < 0)
        assert_int_equal(db_exec(db,
                                 "INSERT INTO telemetry_windows (device_id, received_at,"
                                 " window_start, window_s, model, version, inferences, errors,"
                                 " feedback, cpu_s, correct, ring_id)"
                                 " VALUES (?1, ?2, ?2, 60, ?3, ?4, 10, ?5, 10, 0, ?6, ?7)",
                                 "sisiiIi", device, at, model, version, errors,
                                 correct < 0 ? NULL : &c, ring_id),
                         0);
    else
        assert_int_equal(db_exec(db, sql, "sisiidIid", device, at, model, version, errors, drift,
                                 correct < 0 ? NULL : &c, ring_id, p99),
                         0);
}

static void versions_with_windows_in_the_period(void **state)
{
    struct db_fixture *f = *state;
    int64_t *v = NULL;
    size_t n = 0;
    window(f->db, "d2", "thyroid", 3, NOW + 1000, canary_id, 0.2, 1, 9);
    window(f->db, "d2", "thyroid", 2, NOW + 2000, canary_id, 0.4, 3, -1);
    window(f->db, "d1", "thyroid", 2, NOW + 3000, 0, -1, 0, 5);
    window(f->db, "d1", "thyroid", 1, NOW - 1, canary_id, 0.9, 2, 2); /* too old */
    window(f->db, "d1", "iris", 4, NOW + 1000, canary_id, 7.0, 1, 1); /* another model */

    assert_int_equal(db_monitor_versions(f->db, "thyroid", -1, NOW, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 2); /* ascending, each once */
    assert_int_equal(v[1], 3);
    free(v);
    /* Ring scope: the ring stored with the window; 0 is "in no ring". */
    assert_int_equal(db_monitor_versions(f->db, "thyroid", 0, NOW, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 2);
    free(v);
    assert_int_equal(db_monitor_versions(f->db, "thyroid", canary_id, NOW - 1, &v, &n), 0);
    assert_int_equal(n, 3);
    free(v);
    assert_int_equal(db_monitor_versions(f->db, "nope", -1, 0, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(triggers_are_stored_read_listed_and_deleted, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(one_firing_alert_per_rule_and_version, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(alerts_list_filters, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(versions_with_windows_in_the_period, setup,
                                        db_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

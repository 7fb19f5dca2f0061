/* test_monitor.c - the monitor ticked by hand (monitor_tick_at, no thread,
 * no broker: srv.mqtt is NULL) over a real database with hand-inserted
 * telemetry windows: a rule fires once across ticks, resolves when it no
 * longer holds or its version goes quiet, waits out its cooldown, needs
 * min_devices, keeps to its ring, pauses and rolls back the model's rollout,
 * and starts the retrain command with the documented environment. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_internal.h"
#include "server/db_monitor.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/monitor.h"
#include "server/rollout.h"
#include "server/rollout_policy.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server_fixture.h"

#define NOW 1763805600000LL /* 2025-11-22T10:00:00.000Z */
#define SEC 1000LL

struct fixture {
    struct server_fixture base; /* srv: db, server_key, rollouts; no broker */
    struct monitor *monitor;
    struct db_version v1, v2; /* thyroid@1, thyroid@2 */
    int64_t canary, early;    /* ring rows */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    server_fixture_open(&f->base, "monitor");
    snprintf(f->base.srv.cfg.listen_host, sizeof(f->base.srv.cfg.listen_host), "127.0.0.1");
    f->base.srv.cfg.listen_port = 8080;
    server_fixture_add_version(&f->base, 1, NULL, &f->v1);
    server_fixture_add_version(&f->base, 2, NULL, &f->v2);
    f->canary = server_fixture_ring(&f->base, "canary");
    f->early = server_fixture_ring(&f->base, "early");
    server_fixture_enroll(&f->base, "d1", f->canary, &f->v1);
    server_fixture_enroll(&f->base, "d2", f->canary, &f->v1);
    server_fixture_enroll(&f->base, "d3", f->early, &f->v1);
    assert_int_equal(rollout_engine_open(&f->base.srv, &f->base.srv.rollouts), 0);
    assert_int_equal(monitor_open(&f->base.srv, &f->monitor), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    monitor_stop(f->monitor);
    rollout_engine_stop(f->base.srv.rollouts);
    db_version_clear(&f->v1);
    db_version_clear(&f->v2);
    server_fixture_close(&f->base);
    free(f);
    return 0;
}

/* A window of device running thyroid@version, received at `at` in ring
 * ring_id, with drift psi. */
static void window(struct fixture *f, const char *device, int64_t version, int64_t at,
                   int64_t ring_id, double psi)
{
    static const char sql[] =
        "INSERT INTO telemetry_windows (device_id, received_at, window_start, window_s, model,"
        " version, inferences, errors, feedback, cpu_s, drift, ring_id)"
        " VALUES (?1, ?2, ?2, 60, 'thyroid', ?3, 100, 0, 0, 0, ?4, ?5)";
    assert_int_equal(db_exec(f->base.srv.db, sql, "siidi", device, at, version, psi, ring_id), 0);
}

/* Creates a drift rule "mean above 0.25 over window_s 300" of thyroid with
 * these terms; returns its id. */
static int64_t drift_rule(struct fixture *f, const char *ring, int64_t min_devices,
                          int64_t cooldown_s, enum trigger_action action)
{
    struct db_trigger t;
    int64_t id = 0;
    memset(&t, 0, sizeof(t));
    snprintf(t.model, sizeof(t.model), "thyroid");
    snprintf(t.ring, sizeof(t.ring), "%s", ring);
    t.rule =
        (struct trigger_rule){METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 0.25, min_devices};
    t.window_s = 300;
    t.cooldown_s = cooldown_s;
    t.action = action;
    t.enabled = true;
    assert_int_equal(db_trigger_create(f->base.srv.db, &t, NOW, &id), 0);
    return id;
}

static void tick(struct fixture *f, int64_t at)
{
    assert_int_equal(monitor_tick_at(f->monitor, at), 0);
}

/* Every alert, newest first (a new reference). */
static json_t *alerts(struct fixture *f)
{
    struct db_alert_filter all = {.limit = 100};
    json_t *rows = NULL;
    assert_int_equal(db_alerts_list(f->base.srv.db, &all, &rows), 0);
    return rows;
}

static const char *member(const json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key));
}

/* How many audit rows the monitor wrote with action. */
static int64_t audited(struct fixture *f, const char *action)
{
    int64_t n = 0;
    assert_int_equal(db_select_int(f->base.srv.db,
                                   "SELECT count(*) FROM audit_log WHERE actor = 'monitor'"
                                   " AND action = ?1",
                                   &n, "s", action),
                     0);
    return n;
}

static void a_rule_that_holds_fires_once(void **state)
{
    struct fixture *f = *state;
    int64_t id = drift_rule(f, "", 2, 3600, TRIGGER_ACTION_NONE);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.4);
    window(f, "d2", 2, NOW - 5 * SEC, f->canary, 0.5);
    window(f, "d1", 2, NOW - 400 * SEC, f->canary, 9.0); /* outside the window */
    for (int i = 0; i < 5; i++)
        tick(f, NOW + i * SEC);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 1);
    json_t *a = json_array_get(rows, 0);
    assert_int_equal(json_integer_value(json_object_get(a, "trigger_id")), id);
    assert_string_equal(member(a, "state"), "firing");
    assert_string_equal(member(a, "model"), "thyroid");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    assert_string_equal(member(a, "metric"), "drift");
    assert_string_equal(member(a, "op"), "above");
    assert_string_equal(member(a, "action"), "none");
    assert_string_equal(member(a, "action_result"), "no action");
    assert_true(json_is_null(json_object_get(a, "ring")));
    /* (0.4 + 0.5) / 2 */
    assert_true(json_real_value(json_object_get(a, "value")) > 0.45 - 1e-12);
    assert_true(json_real_value(json_object_get(a, "value")) < 0.45 + 1e-12);
    assert_int_equal(json_integer_value(json_object_get(a, "devices")), 2);
    assert_string_equal(member(a, "fired_at"), "2025-11-22T10:00:00.000Z");
    json_decref(rows);
    assert_int_equal(audited(f, "alert fire"), 1);
}

static void an_alert_resolves_when_the_rule_no_longer_holds(void **state)
{
    struct fixture *f = *state;
    drift_rule(f, "", 1, 3600, TRIGGER_ACTION_NONE);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.4);
    tick(f, NOW);
    /* Later windows are quiet; the drifting one has left the window. */
    window(f, "d1", 2, NOW + 390 * SEC, f->canary, 0.05);
    tick(f, NOW + 395 * SEC);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(member(json_array_get(rows, 0), "state"), "resolved");
    assert_string_equal(member(json_array_get(rows, 0), "resolved_at"), "2025-11-22T10:06:35.000Z");
    json_decref(rows);
    assert_int_equal(audited(f, "alert resolve"), 1);
}

static void an_alert_resolves_when_its_version_goes_quiet(void **state)
{
    struct fixture *f = *state;
    drift_rule(f, "", 1, 0, TRIGGER_ACTION_NONE);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.4);
    window(f, "d2", 1, NOW - 10 * SEC, f->canary, 0.9);
    tick(f, NOW);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 2); /* one per version */
    json_decref(rows);
    /* Only version 1 still sends windows, and still drifts. */
    window(f, "d2", 1, NOW + 300 * SEC, f->canary, 0.9);
    tick(f, NOW + 301 * SEC);
    struct db_alert_filter firing = {.state = "firing", .limit = 100};
    assert_int_equal(db_alerts_list(f->base.srv.db, &firing, &rows), 0);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "version")), 1);
    json_decref(rows);
}

static void cooldown_delays_the_next_alert(void **state)
{
    struct fixture *f = *state;
    drift_rule(f, "", 1, 3600, TRIGGER_ACTION_NONE);
    window(f, "d1", 2, NOW, f->canary, 0.4);
    tick(f, NOW);
    window(f, "d1", 2, NOW + 400 * SEC, f->canary, 0.0);
    tick(f, NOW + 400 * SEC); /* resolved */
    window(f, "d1", 2, NOW + 800 * SEC, f->canary, 0.4);
    tick(f, NOW + 800 * SEC); /* holds again, 800 s after the alert: cooling down */
    tick(f, NOW + 900 * SEC);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);
    /* 3600 s after the first alert fired, it may fire again. */
    window(f, "d1", 2, NOW + 3600 * SEC, f->canary, 0.4);
    tick(f, NOW + 3600 * SEC);
    rows = alerts(f);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(member(json_array_get(rows, 0), "state"), "firing");
    assert_string_equal(member(json_array_get(rows, 1), "state"), "resolved");
    json_decref(rows);
}

static void min_devices_must_have_a_value(void **state)
{
    struct fixture *f = *state;
    drift_rule(f, "", 3, 0, TRIGGER_ACTION_NONE);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.4);
    window(f, "d2", 2, NOW - 10 * SEC, f->canary, 0.4);
    window(f, "d3", 2, NOW - 10 * SEC, f->early, -1.0); /* replaced below by a NULL drift */
    assert_int_equal(db_exec(f->base.srv.db,
                             "UPDATE telemetry_windows SET drift = NULL WHERE device_id = 'd3'",
                             ""),
                     0);
    tick(f, NOW);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 0); /* d3 has no drift: 2 devices of 3 */
    json_decref(rows);
    window(f, "d3", 2, NOW + 1 * SEC, f->early, 0.4);
    tick(f, NOW + 2 * SEC);
    rows = alerts(f);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "devices")), 3);
    json_decref(rows);
}

static void a_ring_rule_reads_only_its_ring(void **state)
{
    struct fixture *f = *state;
    drift_rule(f, "canary", 1, 0, TRIGGER_ACTION_NONE);
    window(f, "d3", 2, NOW - 10 * SEC, f->early, 3.0);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.1);
    tick(f, NOW);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 0); /* canary's mean is 0.1 */
    json_decref(rows);
    /* d1 moved to early: its windows there do not count for canary. */
    window(f, "d1", 2, NOW + 1 * SEC, f->early, 3.0);
    tick(f, NOW + 2 * SEC);
    rows = alerts(f);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    window(f, "d2", 2, NOW + 3 * SEC, f->canary, 0.9);
    tick(f, NOW + 4 * SEC);
    rows = alerts(f);
    /* canary: d1 0.1, d2 0.9, mean 0.5 */
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(member(json_array_get(rows, 0), "ring"), "canary");
    assert_true(json_real_value(json_object_get(json_array_get(rows, 0), "value")) > 0.5 - 1e-12);
    json_decref(rows);
}

/* Starts a rollout of thyroid@2 through canary then early; returns its id. */
static int64_t running_rollout(struct fixture *f)
{
    struct rollout_policy p;
    char msg[160] = "";
    assert_int_equal(rollout_policy_parse(NULL, &p, msg, sizeof(msg)), 0);
    json_t *norm = rollout_policy_json(&p);
    char *text = ef_json_dump(norm);
    int64_t rings[] = {f->canary, f->early}, id = 0;
    struct rollout_spec spec = {.version_id = f->v2.id,
                                .model = "thyroid",
                                .ring_ids = rings,
                                .ring_count = 2,
                                .policy = text};
    assert_int_equal(rollout_create(f->base.srv.rollouts, &spec, &id, msg, sizeof(msg)), 0);
    assert_int_equal(rollout_act(f->base.srv.rollouts, id, ROLLOUT_START, NULL, 0), 0);
    assert_int_equal(rollout_engine_tick(f->base.srv.rollouts), 0);
    free(text);
    json_decref(norm);
    return id;
}

static const char *rollout_state(struct fixture *f, int64_t id, char state[DB_ROLLOUT_STATE_SIZE])
{
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    snprintf(state, DB_ROLLOUT_STATE_SIZE, "%s", r.state);
    db_rollout_clear(&r);
    return state;
}

static void pause_rollout_pauses_the_running_rollout(void **state)
{
    struct fixture *f = *state;
    char st[DB_ROLLOUT_STATE_SIZE], want[64];
    drift_rule(f, "", 1, 0, TRIGGER_ACTION_PAUSE_ROLLOUT);
    /* No rollout: the alert says so. */
    window(f, "d1", 1, NOW - 10 * SEC, f->canary, 0.9);
    tick(f, NOW);
    int64_t id = running_rollout(f);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.9);
    tick(f, NOW + 1 * SEC);
    assert_string_equal(rollout_state(f, id, st), "paused");
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 2);
    snprintf(want, sizeof(want), "rollout %lld paused", (long long)id);
    assert_string_equal(member(json_array_get(rows, 0), "action_result"), want);
    assert_string_equal(member(json_array_get(rows, 1), "action_result"), "no running rollout");
    json_decref(rows);
}

static void rollback_rolls_the_rollout_back(void **state)
{
    struct fixture *f = *state;
    char st[DB_ROLLOUT_STATE_SIZE];
    drift_rule(f, "canary", 1, 0, TRIGGER_ACTION_ROLLBACK);
    int64_t id = running_rollout(f);
    assert_int_equal(rollout_act(f->base.srv.rollouts, id, ROLLOUT_PAUSE, NULL, 0), 0);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.9);
    tick(f, NOW);
    assert_string_equal(rollout_state(f, id, st), "rolled_back");
}

static void retrain_starts_the_command_with_its_environment(void **state)
{
    struct fixture *f = *state;
    char cmd[1024], out[128], want[256], *text = NULL;
    size_t len = 0;
    snprintf(out, sizeof(out), "%s/retrain.out", f->base.dir);
    /* Written to a temporary name and renamed, so the file is whole once it exists. */
    snprintf(cmd, sizeof(cmd),
             "printf '%%s|%%s|%%s|%%s|%%s|%%s|%%s' \"$EF_MODEL\" \"$EF_VERSION\" "
             "\"$EF_DATASET_ID\" \"$EF_ALERT_ID\" \"$EF_TRIGGER_ID\" \"$EF_REASON\" "
             "\"$EF_SERVER_URL\" > %s.tmp && mv %s.tmp %s",
             out, out, out);
    f->base.srv.cfg.retrain_command = cmd;
    int64_t tid = drift_rule(f, "", 1, 0, TRIGGER_ACTION_RETRAIN);
    window(f, "d1", 2, NOW - 10 * SEC, f->canary, 0.41);
    tick(f, NOW);
    json_t *rows = alerts(f);
    assert_int_equal(json_array_size(rows), 1);
    int64_t alert = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
    const char *result = member(json_array_get(rows, 0), "action_result");
    assert_non_null(strstr(result, "event published; command started (pid "));
    json_decref(rows);
    /* The command runs on its own; wait for what it wrote (bounded). */
    for (int i = 0; i < 1000 && access(out, F_OK) != 0; i++) {
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    assert_int_equal(ef_read_file(out, 4096, &text, &len), 0);
    snprintf(want, sizeof(want),
             "thyroid|2||%lld|%lld|drift mean 0.41 above 0.25 over 1 device|http://127.0.0.1:8080",
             (long long)alert, (long long)tid);
    assert_string_equal(text, want);
    free(text);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_rule_that_holds_fires_once),
        T(an_alert_resolves_when_the_rule_no_longer_holds),
        T(an_alert_resolves_when_its_version_goes_quiet),
        T(cooldown_delays_the_next_alert),
        T(min_devices_must_have_a_value),
        T(a_ring_rule_reads_only_its_ring),
        T(pause_rollout_pauses_the_running_rollout),
        T(rollback_rolls_the_rollout_back),
        T(retrain_starts_the_command_with_its_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

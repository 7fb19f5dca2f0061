/* test_rollout.c - the rollout engine against a real database and server
 * key, ticked by hand (no thread, no broker: srv.mqtt is NULL): rings in
 * order, late joiners, breach with pause and resume, rollback to previous
 * versions, the deadline, abort, supersede, telemetry gates, a restart
 * that resumes where the rollout was, and shadow rollouts with promotion. Devices "report" through
 * db_device_report, as the broker client would. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/db_telemetry.h"
#include "server/rollout.h"
#include "server/rollout_policy.h"
#include "server/server.h"
#include "common/crypto.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "server_fixture.h"

#define NOW 1763805600000LL

struct fixture {
    struct server_fixture base; /* srv: db and server_key set; no broker */
    struct rollout_engine *engine;
    struct db_version v1, v2; /* thyroid@1, thyroid@2 */
    int64_t canary, early;    /* ring rows */
};

static void report(struct fixture *f, const char *device, int64_t version, const char *state)
{
    assert_int_equal(db_device_report(f->base.srv.db, device, "production", "thyroid", version,
                                      state, NULL, ef_now_ms()),
                     0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    server_fixture_open(&f->base, "rollout");
    server_fixture_add_version(&f->base, 1, NULL, &f->v1);
    server_fixture_add_version(&f->base, 2, NULL, &f->v2);
    f->canary = server_fixture_ring(&f->base, "canary");
    f->early = server_fixture_ring(&f->base, "early");
    server_fixture_enroll(&f->base, "cam-1", f->canary, &f->v1);
    server_fixture_enroll(&f->base, "cam-2", f->canary, &f->v1);
    server_fixture_enroll(&f->base, "cam-3", f->early, &f->v1);
    assert_int_equal(rollout_engine_open(&f->base.srv, &f->engine), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rollout_engine_stop(f->engine);
    db_version_clear(&f->v1);
    db_version_clear(&f->v2);
    server_fixture_close(&f->base);
    free(f);
    return 0;
}

/* Creates a draft rollout of thyroid@2 through canary then early. */
static int64_t create(struct fixture *f, const char *policy_json, bool supersede, int *rc_out)
{
    struct rollout_policy p;
    char msg[160] = "";
    json_t *doc = policy_json ? json_loads(policy_json, 0, NULL) : NULL;
    assert_int_equal(rollout_policy_parse(doc, &p, msg, sizeof(msg)), 0);
    json_t *norm = rollout_policy_json(&p);
    char *text = ef_json_dump(norm);
    int64_t rings[] = {f->canary, f->early}, id = 0;
    struct rollout_spec spec = {.version_id = f->v2.id,
                                .model = "thyroid",
                                .ring_ids = rings,
                                .ring_count = 2,
                                .policy = text,
                                .supersede = supersede};
    int rc = rollout_create(f->engine, &spec, &id, msg, sizeof(msg));
    if (rc_out)
        *rc_out = rc;
    else
        assert_int_equal(rc, 0);
    free(text);
    json_decref(norm);
    json_decref(doc);
    return id;
}

static int64_t started(struct fixture *f, const char *policy_json)
{
    int64_t id = create(f, policy_json, false, NULL);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), 0);
    return id;
}

static void tick(struct fixture *f)
{
    assert_int_equal(rollout_engine_tick(f->engine), 0);
}

/* The rollout's state and that of its ring at position (1-based). */
static void expect(struct fixture *f, int64_t id, const char *state, const char *canary,
                   const char *early)
{
    struct db_rollout r = {0};
    char seen[3 * DB_ROLLOUT_REASON_SIZE];
    bool same;
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    same = strcmp(r.state, state) == 0 && strcmp(r.rings[0].state, canary) == 0 &&
           strcmp(r.rings[1].state, early) == 0;
    snprintf(seen, sizeof(seen), "rollout %s (%s), canary %s (%s), early %s", r.state, r.reason,
             r.rings[0].state, r.rings[0].reason, r.rings[1].state);
    db_rollout_clear(&r);
    if (!same)
        fail_msg("%s; expected %s, %s, %s", seen, state, canary, early);
}

/* What device's production slot wants: version number, rollout id, state. */
static void slot(struct fixture *f, const char *device, int64_t *version, char rollout[65],
                 char state[16])
{
    struct db_desired d;
    assert_int_equal(db_device_desired_load(f->base.srv.db, device, &d), 0);
    *version = d.slots[EF_SLOT_PRODUCTION].version;
    snprintf(rollout, 65, "%s", d.slots[EF_SLOT_PRODUCTION].rollout_id);
    snprintf(state, 16, "%s", d.slots[EF_SLOT_PRODUCTION].state);
}

static int64_t slot_version(struct fixture *f, const char *device)
{
    char rollout[65], state[16];
    int64_t version;
    slot(f, device, &version, rollout, state);
    return version;
}

/* The device's action in rollout id. */
static enum db_action action(struct fixture *f, int64_t id, const char *device)
{
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    enum db_action a = DB_ACTION_COUNT;
    assert_int_equal(db_rollout_devices(f->base.srv.db, id, 0, &d, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(d[i].device_id, device) == 0)
            a = d[i].action;
    free(d);
    return a;
}

static void test_rings_in_order(void **state)
{
    struct fixture *f = *state;
    char rollout[65], st[16], rid[32];
    int64_t version, id = started(f, NULL);
    snprintf(rid, sizeof(rid), "%lld", (long long)id);
    expect(f, id, "running", "pending", "pending");
    tick(f);
    expect(f, id, "running", "running", "pending");
    slot(f, "cam-1", &version, rollout, st);
    assert_int_equal(version, 2);
    assert_string_equal(rollout, rid);
    assert_string_equal(st, "pending");
    assert_int_equal(slot_version(f, "cam-3"), 1); /* not reached yet */

    /* Half committed: success 1.0 is not reached. */
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "downloading");
    tick(f);
    expect(f, id, "running", "running", "pending");
    /* A tick without news changes nothing (no new seq either). */
    struct db_desired before, after;
    assert_int_equal(db_device_desired_load(f->base.srv.db, "cam-2", &before), 0);
    tick(f);
    assert_int_equal(db_device_desired_load(f->base.srv.db, "cam-2", &after), 0);
    assert_int_equal(before.seq, after.seq);

    /* All committed: canary succeeds and early starts in the same tick. */
    report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
    assert_int_equal(slot_version(f, "cam-3"), 2);

    /* A late joiner of the running ring gets the version and is counted. */
    server_fixture_enroll(&f->base, "cam-4", f->early, &f->v1);
    report(f, "cam-3", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
    assert_int_equal(slot_version(f, "cam-4"), 2);
    assert_int_equal(action(f, id, "cam-4"), DB_ACTION_PENDING);
    report(f, "cam-4", 2, "committed");
    tick(f);
    expect(f, id, "succeeded", "succeeded", "succeeded");

    /* The object the API shows. */
    json_t *doc = NULL;
    assert_int_equal(db_rollout_json(f->base.srv.db, id, &doc), 0);
    json_t *early = json_array_get(json_object_get(doc, "rings"), 1);
    assert_int_equal(json_integer_value(json_object_get(early, "devices")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(early, "counts"), "committed")), 2);
    assert_true(json_is_string(json_object_get(doc, "finished_at")));
    json_decref(doc);
}

static void test_empty_ring_succeeds_at_once(void **state)
{
    struct fixture *f = *state;
    int64_t ring = 0, id = 0;
    struct rollout_policy p;
    rollout_policy_default(&p);
    json_t *pj = rollout_policy_json(&p);
    char *text = ef_json_dump(pj);
    ring = server_fixture_ring(&f->base, "empty");
    struct rollout_spec spec = {.version_id = f->v2.id,
                                .model = "thyroid",
                                .ring_ids = &ring,
                                .ring_count = 1,
                                .policy = text};
    assert_int_equal(rollout_create(f->engine, &spec, &id, NULL, 0), 0);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), 0);
    tick(f);
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    assert_string_equal(r.state, "succeeded");
    assert_string_equal(r.rings[0].state, "succeeded");
    db_rollout_clear(&r);
    free(text);
    json_decref(pj);
}

static void test_breach_pauses_and_resume_retries(void **state)
{
    struct fixture *f = *state;
    struct db_desired before, after;
    int64_t id = started(f, NULL); /* error 0.0: one failure breaches */
    tick(f);
    report(f, "cam-1", 2, "failed");
    tick(f);
    expect(f, id, "paused", "failed", "pending");
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    assert_non_null(strstr(r.reason, "ring canary"));
    assert_non_null(strstr(r.reason, "1 of 2"));
    db_rollout_clear(&r);
    /* Paused: ticks leave it alone. */
    tick(f);
    expect(f, id, "paused", "failed", "pending");
    /* Not allowed from paused. */
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), EF_ECONFLICT);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_PAUSE, NULL, 0), EF_ECONFLICT);

    /* Resume: the ring runs again and the failed device is retried. */
    assert_int_equal(db_device_desired_load(f->base.srv.db, "cam-1", &before), 0);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_RESUME, NULL, 0), 0);
    expect(f, id, "running", "running", "pending");
    assert_int_equal(db_device_desired_load(f->base.srv.db, "cam-1", &after), 0);
    assert_true(after.seq > before.seq);
    assert_string_equal(after.slots[EF_SLOT_PRODUCTION].state, "pending");
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
}

static void test_breach_rolls_back(void **state)
{
    struct fixture *f = *state;
    int64_t id = started(f, "{\"on_breach\": \"rollback\", \"error\": 0.4}");
    tick(f);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "rolled_back"); /* the agent's trial failed: a failure */
    tick(f);
    expect(f, id, "rolled_back", "failed", "pending");
    /* Both devices of the reached ring want thyroid@1 again, committed or
     * not; the ring not reached is untouched. */
    assert_int_equal(slot_version(f, "cam-1"), 1);
    assert_int_equal(slot_version(f, "cam-2"), 1);
    assert_int_equal(slot_version(f, "cam-3"), 1);
    assert_int_equal(action(f, id, "cam-1"), DB_ACTION_ROLLED_BACK);
    assert_int_equal(action(f, id, "cam-2"), DB_ACTION_ROLLED_BACK);
    assert_int_equal(action(f, id, "cam-3"), DB_ACTION_COUNT); /* never tracked */
    /* Final: no further action but none allowed. */
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_ROLLBACK, NULL, 0), EF_ECONFLICT);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_ABORT, NULL, 0), EF_ECONFLICT);
}

static void test_rollback_by_operator_and_no_previous(void **state)
{
    struct fixture *f = *state;
    char hash[EF_HEX256_SIZE];
    struct db_device_change c = {.set_ring = true, .ring_id = 0};
    /* cam-5 in canary has never run anything. */
    ef_token_hash("cam-5", hash);
    assert_int_equal(db_device_create(f->base.srv.db, "cam-5", hash, "default", NULL, NOW), 0);
    c.ring_id = f->canary;
    assert_int_equal(db_device_update(f->base.srv.db, "cam-5", &c), 0);
    int64_t id = started(f, "{\"success\": 0.5}");
    tick(f);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_ROLLBACK, NULL, 0), 0);
    expect(f, id, "rolled_back", "succeeded", "failed");
    assert_int_equal(slot_version(f, "cam-1"), 1);
    assert_int_equal(slot_version(f, "cam-3"), 1);
    /* No previous version: left as it is, with a note. */
    assert_int_equal(slot_version(f, "cam-5"), 2);
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    assert_int_equal(db_rollout_devices(f->base.srv.db, id, 0, &d, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(d[i].device_id, "cam-5") == 0)
            assert_non_null(strstr(d[i].reason, "no previous version"));
    free(d);
}

static void test_deadline_times_out(void **state)
{
    struct fixture *f = *state;
    char rollout[65], st[16];
    int64_t version, id = started(f, "{\"deadline_s\": 60, \"error\": 0.5}");
    struct db_rollout r = {0};
    tick(f);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "downloading");
    tick(f);
    expect(f, id, "running", "running", "pending");
    /* The ring has been running for two minutes: cam-2 counts as failed,
     * which the error share allows (1 of 2 is not above 0.5), but success
     * 1.0 can no longer be reached. */
    assert_int_equal(
        db_rollout_ring_set_state(f->base.srv.db, id, 1, "running", NULL, ef_now_ms() - 120000), 0);
    tick(f);
    expect(f, id, "paused", "failed", "pending");
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    assert_non_null(strstr(r.reason, "timeout"));
    db_rollout_clear(&r);
    assert_int_equal(action(f, id, "cam-1"), DB_ACTION_COMMITTED);
    assert_int_equal(action(f, id, "cam-2"), DB_ACTION_FAILED);
    slot(f, "cam-2", &version, rollout, st);
    assert_string_equal(st, "failed");
    /* A late report does not undo the rollout's verdict. */
    report(f, "cam-2", 2, "committed");
    assert_int_equal(action(f, id, "cam-2"), DB_ACTION_FAILED);
}

static void test_abort_gives_back_unfinished(void **state)
{
    struct fixture *f = *state;
    int64_t id = started(f, NULL);
    tick(f);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "verifying");
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_ABORT, NULL, 0), 0);
    expect(f, id, "aborted", "failed", "pending");
    assert_int_equal(slot_version(f, "cam-1"), 2); /* committed: keeps it */
    assert_int_equal(slot_version(f, "cam-2"), 1);
    assert_int_equal(action(f, id, "cam-1"), DB_ACTION_COMMITTED);
    assert_int_equal(action(f, id, "cam-2"), DB_ACTION_CANCELLED);
    /* Aborted rollouts are not ticked. */
    tick(f);
    assert_int_equal(slot_version(f, "cam-2"), 1);
    /* A draft aborts without devices. */
    int64_t draft = create(f, NULL, false, NULL);
    assert_int_equal(rollout_act(f->engine, draft, ROLLOUT_ABORT, NULL, 0), 0);
    assert_int_equal(rollout_act(f->engine, draft, ROLLOUT_START, NULL, 0), EF_ECONFLICT);
    assert_int_equal(rollout_act(f->engine, 9999, ROLLOUT_START, NULL, 0), EF_ENOENT);
}

static void test_one_active_and_supersede(void **state)
{
    struct fixture *f = *state;
    int rc = 0;
    int64_t first = started(f, NULL);
    tick(f);
    create(f, NULL, false, &rc);
    assert_int_equal(rc, EF_EEXIST);
    int64_t second = create(f, NULL, true, &rc);
    assert_int_equal(rc, 0);
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->base.srv.db, first, &r), 0);
    assert_string_equal(r.state, "aborted");
    assert_string_equal(r.reason, "superseded");
    db_rollout_clear(&r);
    assert_int_equal(slot_version(f, "cam-1"), 1); /* given back */
    /* A draft made before another started cannot start beside it. */
    int64_t third = create(f, NULL, false, NULL);
    assert_int_equal(rollout_act(f->engine, second, ROLLOUT_START, NULL, 0), 0);
    char msg[160] = "";
    assert_int_equal(rollout_act(f->engine, third, ROLLOUT_START, msg, sizeof(msg)), EF_EEXIST);
    assert_non_null(strstr(msg, "thyroid"));
    /* The superseding rollout knows thyroid@1 as the previous version,
     * although cam-1 has not committed it again yet. */
    tick(f);
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    assert_int_equal(db_rollout_devices(f->base.srv.db, second, 0, &d, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(d[0].previous_version_id, f->v1.id);
    free(d);
}

static void test_gate_breach(void **state)
{
    struct fixture *f = *state;
    struct telemetry_window w = {.window_s = 60,
                                 .version = 2,
                                 .inferences = 100,
                                 .errors = 20,
                                 .has_latency = true,
                                 .p99 = 10,
                                 .rss_bytes = -1};
    snprintf(w.model, sizeof(w.model), "thyroid");
    int64_t id = started(f, "{\"gates\": [{\"metric\": \"error_rate\", \"max\": 0.1}]}");
    tick(f);
    w.window_start = ef_now_ms();
    assert_int_equal(db_telemetry_insert(f->base.srv.db, "cam-1", ef_now_ms() + 5, &w, NULL), 0);
    tick(f);
    expect(f, id, "paused", "failed", "pending");
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    assert_non_null(strstr(r.rings[0].reason, "error_rate"));
    db_rollout_clear(&r);
}

static void test_restart_resumes(void **state)
{
    struct fixture *f = *state;
    int64_t id = started(f, NULL);
    tick(f);
    /* The server stops; the database is all there is. */
    rollout_engine_stop(f->engine);
    db_close(f->base.srv.db);
    assert_int_equal(db_open(f->base.path, &f->base.srv.db), 0);
    assert_int_equal(db_migrate(f->base.srv.db, NULL, NULL), 0);
    assert_int_equal(rollout_engine_open(&f->base.srv, &f->engine), 0);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
    assert_int_equal(slot_version(f, "cam-3"), 2);
}

static void test_thread(void **state)
{
    struct fixture *f = *state;
    struct rollout_engine *threaded = NULL;
    f->base.srv.cfg.rollout_tick_ms = 10;
    int64_t id = started(f, NULL);
    assert_int_equal(rollout_engine_start(&f->base.srv, &threaded), 0);
    for (int i = 0; i < 200 && slot_version(f, "cam-1") != 2; i++) {
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    rollout_engine_stop(threaded);
    expect(f, id, "running", "running", "pending");
    assert_int_equal(slot_version(f, "cam-1"), 2);
}

/* A draft shadow rollout of thyroid@2 through canary then early. */
static int64_t create_shadow(struct fixture *f, bool supersede, int *rc_out)
{
    int64_t rings[] = {f->canary, f->early}, id = 0;
    static const char policy[] = "{\"success\":1.0,\"error\":0.0,\"min_devices\":1,"
                                 "\"soak_s\":0,\"deadline_s\":600,\"gates\":[],"
                                 "\"on_breach\":\"pause\"}";
    struct rollout_spec spec = {.version_id = f->v2.id,
                                .model = "thyroid",
                                .ring_ids = rings,
                                .ring_count = 2,
                                .policy = policy,
                                .supersede = supersede,
                                .slot = EF_SLOT_SHADOW};
    int rc = rollout_create(f->engine, &spec, &id, NULL, 0);
    if (rc_out)
        *rc_out = rc;
    else
        assert_int_equal(rc, 0);
    return id;
}

static void shadow_report(struct fixture *f, const char *device, int64_t version, const char *state)
{
    assert_int_equal(db_device_report(f->base.srv.db, device, "shadow", "thyroid", version, state,
                                      NULL, ef_now_ms()),
                     0);
}

/* The version device's shadow slot wants, 0 when it is empty. */
static int64_t shadow_version(struct fixture *f, const char *device)
{
    struct db_desired d;
    assert_int_equal(db_device_desired_load(f->base.srv.db, device, &d), 0);
    return d.slots[EF_SLOT_SHADOW].set ? d.slots[EF_SLOT_SHADOW].version : 0;
}

/* A shadow rollout walks its rings on shadow reports, leaving production
 * alone; promote starts a production rollout of the version over the same
 * rings, whose assignments empty the shadow slots. */
static void test_shadow_then_promote(void **state)
{
    struct fixture *f = *state;
    const char *devices[] = {"cam-1", "cam-2", "cam-3"};
    char msg[192] = "";
    int64_t promoted = 0, prod = 0, id = create_shadow(f, false, NULL);
    struct db_rollout r = {0};
    /* A production rollout may run beside it. */
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), 0);
    assert_int_equal(rollout_promote(f->engine, id, &promoted, msg, sizeof(msg)), EF_ECONFLICT);
    assert_non_null(strstr(msg, "running"));
    tick(f);
    expect(f, id, "running", "running", "pending");
    assert_int_equal(shadow_version(f, "cam-1"), 2);
    assert_int_equal(slot_version(f, "cam-1"), 1);
    assert_int_equal(shadow_version(f, "cam-3"), 0);
    /* Production news of the version does not count for the shadow. */
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "running", "pending");
    shadow_report(f, "cam-1", 2, "committed");
    shadow_report(f, "cam-2", 2, "committed");
    tick(f);
    expect(f, id, "running", "succeeded", "running");
    assert_int_equal(action(f, id, "cam-1"), DB_ACTION_COMMITTED);
    assert_int_equal(shadow_version(f, "cam-3"), 2);
    shadow_report(f, "cam-3", 2, "committed");
    tick(f);
    expect(f, id, "succeeded", "succeeded", "succeeded");
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(slot_version(f, devices[i]), 1);

    /* Only a shadow rollout is promoted, once. */
    prod = started(f, NULL);
    assert_int_equal(rollout_promote(f->engine, prod, &promoted, msg, sizeof(msg)), EF_ECONFLICT);
    assert_non_null(strstr(msg, "production slot"));
    assert_int_equal(rollout_promote(f->engine, id, &promoted, msg, sizeof(msg)), EF_EEXIST);
    assert_int_equal(rollout_act(f->engine, prod, ROLLOUT_ABORT, NULL, 0), 0);
    assert_int_equal(rollout_promote(f->engine, id + 100, &promoted, msg, sizeof(msg)), EF_ENOENT);
    assert_int_equal(rollout_promote(f->engine, id, &promoted, msg, sizeof(msg)), 0);
    assert_int_equal(rollout_promote(f->engine, id, &prod, msg, sizeof(msg)), EF_ECONFLICT);
    assert_non_null(strstr(msg, "promoted already"));
    assert_int_equal(db_rollout_get(f->base.srv.db, id, &r), 0);
    assert_int_equal(r.promoted_to, promoted);
    db_rollout_clear(&r);
    assert_int_equal(db_rollout_get(f->base.srv.db, promoted, &r), 0);
    assert_int_equal(r.slot, EF_SLOT_PRODUCTION);
    assert_int_equal(r.version, 2);
    assert_string_equal(r.state, "running");
    assert_int_equal(r.ring_count, 2);
    assert_int_equal(r.rings[0].ring_id, f->canary);
    assert_int_equal(r.rings[1].ring_id, f->early);
    db_rollout_clear(&r);

    /* The production assignment empties the shadow slot in the same seq. */
    tick(f);
    expect(f, promoted, "running", "running", "pending");
    assert_int_equal(slot_version(f, "cam-1"), 2);
    assert_int_equal(shadow_version(f, "cam-1"), 0);
    assert_int_equal(shadow_version(f, "cam-3"), 2);
    report(f, "cam-1", 2, "committed");
    report(f, "cam-2", 2, "committed");
    tick(f);
    report(f, "cam-3", 2, "committed");
    tick(f);
    expect(f, promoted, "succeeded", "succeeded", "succeeded");
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(slot_version(f, devices[i]), 2);
        assert_int_equal(shadow_version(f, devices[i]), 0);
    }
}

/* Rolling back a shadow rollout empties the shadow slots it filled, and
 * keeps production; a second shadow rollout of the model waits its turn. */
static void test_shadow_rollback(void **state)
{
    struct fixture *f = *state;
    int rc = 0;
    int64_t id = create_shadow(f, false, NULL);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), 0);
    create_shadow(f, false, &rc);
    assert_int_equal(rc, EF_EEXIST);
    tick(f);
    shadow_report(f, "cam-1", 2, "committed");
    tick(f);
    assert_int_equal(shadow_version(f, "cam-1"), 2);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_ROLLBACK, NULL, 0), 0);
    expect(f, id, "rolled_back", "failed", "pending");
    assert_int_equal(shadow_version(f, "cam-1"), 0);
    assert_int_equal(shadow_version(f, "cam-2"), 0);
    assert_int_equal(slot_version(f, "cam-1"), 1);
    assert_int_equal(action(f, id, "cam-1"), DB_ACTION_ROLLED_BACK);
}

/* A device without a production model cannot run a shadow: it fails in the
 * rollout, the others go on. */
static void test_shadow_needs_production(void **state)
{
    struct fixture *f = *state;
    char hash[EF_HEX256_SIZE];
    struct db_device_change c = {.set_ring = true, .ring_id = f->canary};
    ef_token_hash("bare", hash);
    assert_int_equal(db_device_create(f->base.srv.db, "bare", hash, "default", NULL, NOW), 0);
    assert_int_equal(db_device_update(f->base.srv.db, "bare", &c), 0);
    int64_t id = create_shadow(f, false, NULL);
    assert_int_equal(rollout_act(f->engine, id, ROLLOUT_START, NULL, 0), 0);
    tick(f);
    assert_int_equal(action(f, id, "bare"), DB_ACTION_FAILED);
    assert_int_equal(shadow_version(f, "cam-1"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rings_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_ring_succeeds_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breach_pauses_and_resume_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breach_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_by_operator_and_no_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_gives_back_unfinished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_active_and_supersede, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_breach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadow_then_promote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadow_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadow_needs_production, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_db_rollouts.c - rollouts in SQLite: creating and reading them,
 * listing, state changes that survive reopening the database, one running or
 * paused rollout per model and slot, the devices a rollout tracks with their
 * previous versions and derived actions (from the shadow slot for a shadow
 * rollout), timeouts, promotion, emptying a shadow slot, and the rollout
 * object. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "common/crypto.h"
#include "common/ef_error.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW    1763805600000LL
#define POLICY "{\"success\":1.0}"

struct fixture {
    char dir[64];   /* mkdtemp directory holding the database */
    char path[128]; /* the database file */
    struct db *db;
    int64_t v1, v2;             /* thyroid@1, thyroid@2 rows */
    int64_t other;              /* iris@1 row */
    int64_t canary, early, def; /* ring rows */
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Stores model@version (the database does not look into manifests). */
static int64_t add_version(struct db *db, const char *model, int64_t version)
{
    int64_t model_id = 0, id = 0;
    if (db_model_id(db, model, &model_id) == EF_ENOENT)
        assert_int_equal(db_model_create(db, model, "", NOW, &model_id), 0);
    assert_int_equal(
        db_version_insert(db, model_id, version, "00", 10, "fann", "{}", 2, "sig", NOW, &id), 0);
    return id;
}

static void enroll(struct db *db, const char *id, const char *class, int64_t ring_id)
{
    char hash[EF_HEX256_SIZE];
    struct db_device_change c = {.set_ring = true, .ring_id = ring_id};
    ef_token_hash(id, hash);
    assert_int_equal(db_device_create(db, id, hash, class, NULL, NOW), 0);
    assert_int_equal(db_device_update(db, id, &c), 0);
}

/* Makes the device's production slot want version_id under rollout (may be
 * NULL), as assign.c does, at the next seq. */
static void slot_set(struct db *db, const char *device, int64_t version_id, const char *rollout)
{
    struct db_desired d;
    assert_int_equal(db_device_desired_load(db, device, &d), 0);
    assert_int_equal(db_device_desired_store(db, device, d.seq + 1, "{}", EF_SLOT_PRODUCTION,
                                             version_id, rollout, NOW),
                     0);
}

static void report(struct db *db, const char *device, int64_t version, const char *state)
{
    assert_int_equal(
        db_device_report(db, device, "production", "thyroid", version, state, NULL, NOW), 0);
}

/* As slot_set and report, for the shadow slot. */
static void shadow_set(struct db *db, const char *device, int64_t version_id, const char *rollout)
{
    struct db_desired d;
    assert_int_equal(db_device_desired_load(db, device, &d), 0);
    assert_int_equal(db_device_desired_store(db, device, d.seq + 1, "{}", EF_SLOT_SHADOW,
                                             version_id, rollout, NOW),
                     0);
}

static void shadow_report(struct db *db, const char *device, int64_t version, const char *state)
{
    assert_int_equal(db_device_report(db, device, "shadow", "thyroid", version, state, NULL, NOW),
                     0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(ef_crypto_init(), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ef_test_db_rollouts.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/edgefleet.db", f->dir);
    assert_int_equal(db_open(f->path, &f->db), 0);
    assert_int_equal(db_migrate(f->db, NULL, NULL), 0);
    f->v1 = add_version(f->db, "thyroid", 1);
    f->v2 = add_version(f->db, "thyroid", 2);
    f->other = add_version(f->db, "iris", 1);
    assert_int_equal(db_ring_create(f->db, "canary", NULL, NULL, NOW), 0);
    assert_int_equal(db_ring_create(f->db, "early", NULL, NULL, NOW), 0);
    assert_int_equal(db_ring_id(f->db, "canary", &f->canary), 0);
    assert_int_equal(db_ring_id(f->db, "early", &f->early), 0);
    assert_int_equal(db_ring_id(f->db, "default", &f->def), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int64_t create(struct fixture *f, int64_t version_id)
{
    int64_t rings[] = {f->canary, f->early, f->def}, id = 0;
    assert_int_equal(
        db_rollout_create(f->db, version_id, EF_SLOT_PRODUCTION, rings, 3, POLICY, NOW, &id), 0);
    assert_true(id > 0);
    return id;
}

static void test_create_and_get(void **state)
{
    struct fixture *f = *state;
    struct db_rollout r = {0};
    int64_t id = create(f, f->v2);
    assert_int_equal(db_rollout_get(f->db, id, &r), 0);
    assert_int_equal(r.id, id);
    assert_string_equal(r.model, "thyroid");
    assert_int_equal(r.version, 2);
    assert_int_equal(r.version_id, f->v2);
    assert_string_equal(r.state, "draft");
    assert_string_equal(r.reason, "");
    assert_string_equal(r.policy, POLICY);
    assert_int_equal(r.created_at, NOW);
    assert_int_equal(r.started_at, 0);
    assert_int_equal(r.ring_count, 3);
    assert_string_equal(r.rings[0].name, "canary");
    assert_int_equal(r.rings[0].position, 1);
    assert_string_equal(r.rings[1].name, "early");
    assert_string_equal(r.rings[2].name, "default");
    assert_int_equal(r.rings[2].position, 3);
    for (size_t i = 0; i < r.ring_count; i++)
        assert_string_equal(r.rings[i].state, "pending");
    db_rollout_clear(&r);
    assert_int_equal(db_rollout_get(f->db, id + 100, &r), EF_ENOENT);
}

static void test_create_refused(void **state)
{
    struct fixture *f = *state;
    int64_t twice[] = {f->canary, f->canary}, unknown[] = {f->canary, 9999}, *ids = NULL, id;
    size_t n = 0;
    assert_int_equal(
        db_rollout_create(f->db, f->v2, EF_SLOT_PRODUCTION, twice, 2, POLICY, NOW, &id), EF_EEXIST);
    assert_int_equal(
        db_rollout_create(f->db, f->v2, EF_SLOT_PRODUCTION, unknown, 2, POLICY, NOW, &id),
        EF_ECONFLICT);
    assert_int_equal(db_rollout_create(f->db, 9999, EF_SLOT_PRODUCTION, twice, 1, POLICY, NOW, &id),
                     EF_ECONFLICT);
    assert_int_equal(
        db_rollout_create(f->db, f->v2, EF_SLOT_PRODUCTION, twice, 0, POLICY, NOW, &id), EF_EINVAL);
    assert_int_equal(db_rollout_create(f->db, f->v2, EF_SLOT_PRODUCTION, twice,
                                       DB_ROLLOUT_MAX_RINGS + 1, POLICY, NOW, &id),
                     EF_EINVAL);
    /* All or nothing: no half-made rollout stayed. */
    assert_int_equal(db_rollout_ids(f->db, NULL, NULL, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    int64_t a = create(f, f->v1), b = create(f, f->v2), c = create(f, f->other), *ids = NULL;
    size_t n = 0;
    assert_int_equal(db_rollout_ids(f->db, NULL, NULL, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], c); /* newest first */
    assert_int_equal(ids[1], b);
    assert_int_equal(ids[2], a);
    free(ids);
    assert_int_equal(db_rollout_ids(f->db, "thyroid", NULL, &ids, &n), 0);
    assert_int_equal(n, 2);
    free(ids);
    assert_int_equal(db_rollout_set_state(f->db, b, "draft", "running", NULL, NOW + 1), 0);
    assert_int_equal(db_rollout_ids(f->db, NULL, "running", &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], b);
    free(ids);
    assert_int_equal(db_rollout_ids(f->db, "iris", "running", &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_rollout_ids(f->db, "nosuch", NULL, &ids, &n), 0);
    assert_int_equal(n, 0);
}

static void test_states_persist(void **state)
{
    struct fixture *f = *state;
    struct db_rollout r = {0};
    int64_t id = create(f, f->v2);
    assert_int_equal(db_rollout_set_state(f->db, id, "running", "paused", NULL, NOW),
                     EF_ECONFLICT); /* it is a draft */
    assert_int_equal(db_rollout_set_state(f->db, id, "draft", "running", NULL, NOW + 10), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 1, "running", NULL, NOW + 20), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 1, "soaking", "3 of 3", NOW + 30), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 1, "succeeded", "3 of 3", NOW + 40), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 2, "running", NULL, NOW + 40), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 2, "failed", "errors", NOW + 50), 0);
    assert_int_equal(
        db_rollout_set_state(f->db, id, "running", "paused", "ring early: errors", NOW + 50), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 9, "running", NULL, NOW), EF_ENOENT);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 1, "exploded", NULL, NOW), EF_ECONFLICT);

    /* Everything is in the file: a restarted server sees the same. */
    db_close(f->db);
    assert_int_equal(db_open(f->path, &f->db), 0);
    assert_int_equal(db_migrate(f->db, NULL, NULL), 0);
    assert_int_equal(db_rollout_get(f->db, id, &r), 0);
    assert_string_equal(r.state, "paused");
    assert_string_equal(r.reason, "ring early: errors");
    assert_int_equal(r.started_at, NOW + 10);
    assert_int_equal(r.finished_at, 0);
    assert_string_equal(r.rings[0].state, "succeeded");
    assert_string_equal(r.rings[0].reason, "3 of 3");
    assert_int_equal(r.rings[0].started_at, NOW + 20);
    assert_int_equal(r.rings[0].soak_started_at, NOW + 30);
    assert_int_equal(r.rings[0].finished_at, NOW + 40);
    assert_string_equal(r.rings[1].state, "failed");
    assert_int_equal(r.rings[1].finished_at, NOW + 50);
    assert_string_equal(r.rings[2].state, "pending");
    db_rollout_clear(&r);

    /* Resume restarts the ring's clock; a final state sets finished_at. */
    assert_int_equal(db_rollout_set_state(f->db, id, "paused", "running", NULL, NOW + 60), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 2, "running", NULL, NOW + 60), 0);
    assert_int_equal(db_rollout_set_state(f->db, id, "running", "rolled_back", "by hand", NOW + 70),
                     0);
    assert_int_equal(db_rollout_get(f->db, id, &r), 0);
    assert_int_equal(r.started_at, NOW + 10); /* the first start */
    assert_int_equal(r.finished_at, NOW + 70);
    assert_int_equal(r.rings[1].started_at, NOW + 60);
    assert_int_equal(r.rings[1].finished_at, 0);
    assert_string_equal(r.rings[1].reason, "");
    db_rollout_clear(&r);
}

static void test_one_active_per_model(void **state)
{
    struct fixture *f = *state;
    int64_t a = create(f, f->v1), b = create(f, f->v2), iris = create(f, f->other), active = 0;
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_PRODUCTION, &active), EF_ENOENT);
    assert_int_equal(db_rollout_set_state(f->db, a, "draft", "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_set_state(f->db, b, "draft", "running", NULL, NOW), EF_EEXIST);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_PRODUCTION, &active), 0);
    assert_int_equal(active, a);
    /* Paused still holds the model. */
    assert_int_equal(db_rollout_set_state(f->db, a, "running", "paused", NULL, NOW), 0);
    assert_int_equal(db_rollout_set_state(f->db, b, "draft", "running", NULL, NOW), EF_EEXIST);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_PRODUCTION, &active), 0);
    assert_int_equal(active, a);
    /* Another model is not concerned. */
    assert_int_equal(db_rollout_set_state(f->db, iris, "draft", "running", NULL, NOW), 0);
    /* Once the first is over, the second may run. */
    assert_int_equal(db_rollout_set_state(f->db, a, "paused", "aborted", "superseded", NOW), 0);
    assert_int_equal(db_rollout_set_state(f->db, b, "draft", "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_PRODUCTION, &active), 0);
    assert_int_equal(active, b);
}

/* Finds device id among n devices. */
static const struct db_rollout_device *find(const struct db_rollout_device *d, size_t n,
                                            const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(d[i].device_id, id) == 0)
            return &d[i];
    fail_msg("device %s not tracked", id);
    return NULL;
}

static void test_devices(void **state)
{
    struct fixture *f = *state;
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    int64_t counts[DB_ACTION_COUNT];
    char rid[32];
    json_t *dev = NULL;
    enroll(f->db, "cam-1", "default", f->canary);
    enroll(f->db, "cam-2", "default", f->canary);
    enroll(f->db, "cam-3", "rpi4", f->canary);
    enroll(f->db, "cam-4", "default", f->early);
    /* cam-1 runs thyroid@1, committed; cam-2 has nothing. */
    slot_set(f->db, "cam-1", f->v1, NULL);
    report(f->db, "cam-1", 1, "committed");
    int64_t id = create(f, f->v2);
    snprintf(rid, sizeof(rid), "%lld", (long long)id);

    /* Only the class of the version is tracked. */
    assert_int_equal(db_rollout_track(f->db, id, f->canary, "default", NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(find(d, n, "cam-1")->previous_version_id, f->v1);
    assert_int_equal(find(d, n, "cam-2")->previous_version_id, 0);
    assert_false(find(d, n, "cam-1")->assigned);
    assert_int_equal(find(d, n, "cam-1")->action, DB_ACTION_PENDING);
    free(d);

    /* Assigned and reported: the action follows the slot. */
    slot_set(f->db, "cam-1", f->v2, rid);
    slot_set(f->db, "cam-2", f->v2, rid);
    report(f->db, "cam-1", 2, "downloading");
    assert_int_equal(db_rollout_devices(f->db, id, f->canary, &d, &n), 0);
    assert_true(find(d, n, "cam-1")->assigned);
    assert_int_equal(find(d, n, "cam-1")->action, DB_ACTION_DOWNLOADING);
    assert_int_equal(find(d, n, "cam-1")->slot_version_id, f->v2);
    assert_int_equal(find(d, n, "cam-2")->action, DB_ACTION_PENDING);
    free(d);
    report(f->db, "cam-1", 2, "committed");

    /* Tracking again keeps the first previous version (now the slot has
     * committed thyroid@2). */
    assert_int_equal(db_rollout_track(f->db, id, f->canary, "default", NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(find(d, n, "cam-1")->previous_version_id, f->v1);
    assert_int_equal(db_rollout_count(d, n, f->canary, counts), 2);
    assert_int_equal(counts[DB_ACTION_COMMITTED], 1);
    assert_int_equal(counts[DB_ACTION_PENDING], 1);
    free(d);

    /* cam-2 times out: the rollout says failed, and so does its slot. */
    assert_int_equal(db_rollout_device_timeout(f->db, id, "cam-2", NOW + 5), 0);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_true(find(d, n, "cam-2")->final);
    assert_int_equal(find(d, n, "cam-2")->action, DB_ACTION_FAILED);
    assert_string_equal(find(d, n, "cam-2")->reason, "timeout");
    free(d);
    assert_int_equal(db_device_get(f->db, "cam-2", &dev), 0);
    json_t *slot = json_object_get(json_object_get(dev, "slots"), "production");
    assert_string_equal(json_string_value(json_object_get(slot, "state")), "failed");
    assert_string_equal(json_string_value(json_object_get(slot, "reason")), "timeout");
    json_decref(dev);
    /* A committed slot is not touched by a timeout. */
    assert_int_equal(db_rollout_device_timeout(f->db, id, "cam-1", NOW + 5), 0);
    assert_int_equal(db_device_get(f->db, "cam-1", &dev), 0);
    slot = json_object_get(json_object_get(dev, "slots"), "production");
    assert_string_equal(json_string_value(json_object_get(slot, "state")), "committed");
    json_decref(dev);
    /* Clearing the verdict derives the action from the slot again. */
    assert_int_equal(db_rollout_device_finish(f->db, id, "cam-1", NULL, NULL), 0);
    assert_int_equal(db_rollout_device_finish(f->db, id, "cam-2", "rolled_back", NULL), 0);
    assert_int_equal(db_rollout_device_finish(f->db, id, "cam-2", "exploded", NULL), EF_ECONFLICT);
    assert_int_equal(db_rollout_device_finish(f->db, id, "nobody", "cancelled", NULL), EF_ENOENT);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(find(d, n, "cam-1")->action, DB_ACTION_COMMITTED);
    assert_int_equal(find(d, n, "cam-2")->action, DB_ACTION_ROLLED_BACK);
    free(d);

    /* A device that moves to another ring of the rollout is moved there,
     * with its previous version kept. */
    struct db_device_change c = {.set_ring = true, .ring_id = f->early};
    assert_int_equal(db_device_update(f->db, "cam-1", &c), 0);
    assert_int_equal(db_rollout_track(f->db, id, f->early, NULL, NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, id, f->early, &d, &n), 0);
    assert_int_equal(n, 2); /* cam-1 and cam-4 */
    assert_int_equal(find(d, n, "cam-1")->previous_version_id, f->v1);
    assert_int_equal(find(d, n, "cam-4")->previous_version_id, 0);
    free(d);
    /* Decommissioned devices are no longer counted. */
    assert_int_equal(db_device_decommission(f->db, "cam-4", NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, id, f->early, &d, &n), 0);
    assert_int_equal(n, 1);
    free(d);
}

static void test_previous_after_give_back(void **state)
{
    struct fixture *f = *state;
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    char rid[32];
    enroll(f->db, "cam-1", "default", f->canary);
    slot_set(f->db, "cam-1", f->v1, NULL);
    report(f->db, "cam-1", 1, "committed");
    int64_t old = create(f, f->v2);
    snprintf(rid, sizeof(rid), "%lld", (long long)old);
    assert_int_equal(db_rollout_track(f->db, old, f->canary, NULL, NOW), 0);
    slot_set(f->db, "cam-1", f->v2, rid);
    /* Aborted: thyroid@1 given back, not yet committed again. */
    slot_set(f->db, "cam-1", f->v1, rid);
    assert_int_equal(db_rollout_device_finish(f->db, old, "cam-1", "cancelled", NULL), 0);
    int64_t next = create(f, f->v2);
    assert_int_equal(db_rollout_track(f->db, next, f->canary, NULL, NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, next, 0, &d, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].previous_version_id, f->v1);
    free(d);
}

static void test_json(void **state)
{
    struct fixture *f = *state;
    json_t *doc = NULL, *ring, *counts;
    char rid[32];
    enroll(f->db, "cam-1", "default", f->canary);
    int64_t id = create(f, f->v2);
    snprintf(rid, sizeof(rid), "%lld", (long long)id);
    assert_int_equal(db_rollout_json(f->db, id, &doc), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "id")), id);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "thyroid");
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "draft");
    assert_true(json_is_null(json_object_get(doc, "reason")));
    assert_true(json_is_null(json_object_get(doc, "started_at")));
    assert_true(json_is_string(json_object_get(doc, "created_at")));
    assert_true(json_is_real(json_object_get(json_object_get(doc, "policy"), "success")));
    assert_int_equal(json_array_size(json_object_get(doc, "rings")), 3);
    ring = json_array_get(json_object_get(doc, "rings"), 0);
    assert_string_equal(json_string_value(json_object_get(ring, "name")), "canary");
    assert_int_equal(json_integer_value(json_object_get(ring, "devices")), 0);
    json_decref(doc);

    assert_int_equal(db_rollout_set_state(f->db, id, "draft", "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_ring_set_state(f->db, id, 1, "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_track(f->db, id, f->canary, NULL, NOW), 0);
    slot_set(f->db, "cam-1", f->v2, rid);
    report(f->db, "cam-1", 2, "self-test"); /* an agent step: verifying */
    assert_int_equal(db_rollout_json(f->db, id, &doc), 0);
    ring = json_array_get(json_object_get(doc, "rings"), 0);
    assert_string_equal(json_string_value(json_object_get(ring, "state")), "running");
    assert_true(json_is_string(json_object_get(ring, "started_at")));
    assert_int_equal(json_integer_value(json_object_get(ring, "devices")), 1);
    counts = json_object_get(ring, "counts");
    assert_int_equal(json_object_size(counts), DB_ACTION_COUNT);
    assert_int_equal(json_integer_value(json_object_get(counts, "verifying")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "pending")), 0);
    json_decref(doc);
    assert_int_equal(db_rollout_json(f->db, id + 1, &doc), EF_ENOENT);
    assert_null(doc);
}

static int64_t create_shadow(struct fixture *f, int64_t version_id)
{
    int64_t rings[] = {f->canary}, id = 0;
    assert_int_equal(
        db_rollout_create(f->db, version_id, EF_SLOT_SHADOW, rings, 1, POLICY, NOW, &id), 0);
    return id;
}

/* A shadow rollout may run beside a production one, not beside another
 * shadow rollout of the model. */
static void test_one_active_per_slot(void **state)
{
    struct fixture *f = *state;
    int64_t prod = create(f, f->v1), shadow = create_shadow(f, f->v2),
            other = create_shadow(f, f->v2), active = 0;
    struct db_rollout r = {0};
    assert_int_equal(db_rollout_get(f->db, shadow, &r), 0);
    assert_int_equal(r.slot, EF_SLOT_SHADOW);
    db_rollout_clear(&r);
    assert_int_equal(db_rollout_get(f->db, prod, &r), 0);
    assert_int_equal(r.slot, EF_SLOT_PRODUCTION);
    db_rollout_clear(&r);
    assert_int_equal(db_rollout_set_state(f->db, prod, "draft", "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_SHADOW, &active), EF_ENOENT);
    assert_int_equal(db_rollout_set_state(f->db, shadow, "draft", "running", NULL, NOW), 0);
    assert_int_equal(db_rollout_set_state(f->db, other, "draft", "running", NULL, NOW), EF_EEXIST);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_SHADOW, &active), 0);
    assert_int_equal(active, shadow);
    assert_int_equal(db_rollout_active(f->db, "thyroid", EF_SLOT_PRODUCTION, &active), 0);
    assert_int_equal(active, prod);
}

/* A shadow rollout's devices: previous version and action come from the
 * shadow slot; the production slot does not count. */
static void test_shadow_devices(void **state)
{
    struct fixture *f = *state;
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    char rid[32];
    enroll(f->db, "cam-1", "default", f->canary);
    slot_set(f->db, "cam-1", f->v1, NULL);
    report(f->db, "cam-1", 1, "committed");
    int64_t id = create_shadow(f, f->v2);
    snprintf(rid, sizeof(rid), "%lld", (long long)id);
    assert_int_equal(db_rollout_track(f->db, id, f->canary, NULL, NOW), 0);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].previous_version_id, 0); /* no shadow before */
    assert_false(d[0].assigned);
    free(d);
    shadow_set(f->db, "cam-1", f->v2, rid);
    shadow_report(f->db, "cam-1", 2, "downloading");
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_true(d[0].assigned);
    assert_int_equal(d[0].slot_version_id, f->v2);
    assert_int_equal(d[0].action, DB_ACTION_DOWNLOADING);
    free(d);
    /* A production report of the same version is not the shadow's. */
    report(f->db, "cam-1", 2, "committed");
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(d[0].action, DB_ACTION_DOWNLOADING);
    free(d);
    shadow_report(f->db, "cam-1", 2, "committed");
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_int_equal(d[0].action, DB_ACTION_COMMITTED);
    free(d);

    /* Emptying the shadow slot: the device is no longer assigned. */
    assert_int_equal(db_rollout_shadow_clear(f->db, "cam-1", 1, "{}"), EF_ESTALE);
    assert_int_equal(db_rollout_shadow_clear(f->db, "cam-1", 100, "{\"seq\":100}"), 0);
    assert_int_equal(db_rollout_devices(f->db, id, 0, &d, &n), 0);
    assert_false(d[0].assigned);
    assert_int_equal(d[0].slot_version_id, 0);
    free(d);
    struct db_desired des;
    assert_int_equal(db_device_desired_load(f->db, "cam-1", &des), 0);
    assert_int_equal(des.seq, 100);
    assert_false(des.slots[EF_SLOT_SHADOW].set);
    assert_true(des.slots[EF_SLOT_PRODUCTION].set);
    assert_int_equal(db_rollout_shadow_clear(f->db, "nobody", 101, "{}"), EF_ENOENT);

    /* A timeout marks the shadow slot, not the production one. */
    shadow_set(f->db, "cam-1", f->v2, rid);
    assert_int_equal(db_rollout_device_timeout(f->db, id, "cam-1", NOW), 0);
    assert_int_equal(db_device_desired_load(f->db, "cam-1", &des), 0);
    assert_string_equal(des.slots[EF_SLOT_SHADOW].state, "failed");
    assert_string_equal(des.slots[EF_SLOT_PRODUCTION].state, "committed");
}

static void test_promoted(void **state)
{
    struct fixture *f = *state;
    int64_t shadow = create_shadow(f, f->v2), prod = create(f, f->v2);
    json_t *doc = NULL;
    assert_int_equal(db_rollout_set_promoted(f->db, prod, shadow), EF_ECONFLICT); /* not shadow */
    assert_int_equal(db_rollout_json(f->db, shadow, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "slot")), "shadow");
    assert_true(json_is_null(json_object_get(doc, "promoted_to")));
    json_decref(doc);
    assert_int_equal(db_rollout_set_promoted(f->db, shadow, prod), 0);
    assert_int_equal(db_rollout_set_promoted(f->db, shadow, prod), EF_ECONFLICT); /* once */
    assert_int_equal(db_rollout_json(f->db, shadow, &doc), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "promoted_to")), prod);
    json_decref(doc);
    assert_int_equal(db_rollout_json(f->db, prod, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "slot")), "production");
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_states_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_active_per_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_after_give_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_active_per_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadow_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promoted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_assign.c - issuing assignments against a real database and a real
 * server key: seq steps, what the signed envelope carries, shadow and class
 * rules, re-issuing only when something changes, whole rings. No broker:
 * srv.mqtt is NULL, so nothing is published. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/server.h"
#include "common/assignment.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server_fixture.h"

#define HASH(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define NOW     1763805600000LL

struct fixture {
    struct server_fixture base; /* srv: db and server_key set; no broker */
    struct db_version v1;       /* thyroid@1, any class */
    struct db_version v2;       /* thyroid@2, any class */
    struct db_version rpi;      /* thyroid@3, class rpi4 only */
};

static int enroll(struct db *db, const char *id, const char *class, const char *tags)
{
    char hash[EF_HEX256_SIZE];
    json_t *t = tags ? json_loads(tags, 0, NULL) : NULL;
    ef_token_hash(id, hash);
    int rc = db_device_create(db, id, hash, class, t, NOW);
    json_decref(t);
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    server_fixture_open(&f->base, "assign");
    server_fixture_add_version(&f->base, 1, NULL, &f->v1);
    server_fixture_add_version(&f->base, 2, NULL, &f->v2);
    server_fixture_add_version(&f->base, 3, "rpi4", &f->rpi);
    assert_int_equal(enroll(f->base.srv.db, "cam-1", "default", NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_version_clear(&f->v1);
    db_version_clear(&f->v2);
    db_version_clear(&f->rpi);
    server_fixture_close(&f->base);
    free(f);
    return 0;
}

/* Reads the stored envelope of a device and verifies it with the server
 * key; the caller frees the result. */
static struct ef_assignment *stored(struct fixture *f, const char *device_id)
{
    struct ef_assignment *a = NULL;
    char *env = NULL, msg[128] = "";
    size_t len = 0;
    int64_t seq = 0;
    assert_int_equal(db_device_desired(f->base.srv.db, device_id, -1, &seq, &env, &len), 0);
    assert_non_null(env);
    assert_int_equal(
        ef_assignment_verify_parse(env, len, f->base.srv.server_key.pk, &a, msg, sizeof(msg)), 0);
    assert_int_equal(a->seq, seq);
    free(env);
    return a;
}

static void seq_steps_by_one_and_envelope_verifies(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    struct ef_assignment *a;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(seq, 1);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, NULL, &seq),
                     0);
    assert_int_equal(seq, 2);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, "r7", &seq),
                     0);
    assert_int_equal(seq, 3);
    assert_int_equal(atomic_load(&f->base.srv.stats.assignments_issued), 3);
    assert_int_equal(atomic_load(&f->base.srv.stats.mqtt_publishes), 0);

    a = stored(f, "cam-1");
    assert_string_equal(a->device_id, "cam-1");
    assert_int_equal(a->seq, 3);
    assert_true(a->issued_at_ms > 0);
    assert_null(a->slots[EF_SLOT_SHADOW]);
    struct ef_slot *s = a->slots[EF_SLOT_PRODUCTION];
    assert_non_null(s);
    assert_string_equal(s->model, "thyroid");
    assert_int_equal(s->version, 1);
    assert_string_equal(s->manifest_url, "/api/v1/models/thyroid/versions/1/manifest");
    assert_string_equal(s->signature_url, "/api/v1/models/thyroid/versions/1/manifest.sig");
    assert_string_equal(s->artifact_url, "/api/v1/models/thyroid/versions/1/artifact");
    assert_string_equal(s->sha256, f->v1.sha256);
    assert_int_equal(s->size, f->v1.size);
    assert_string_equal(s->rollout_id, "r7");
    ef_assignment_free(a);

    /* Signed by the server key, not by any other. */
    struct ef_keypair other;
    char *env = NULL;
    size_t len = 0;
    ef_keypair_generate(&other);
    assert_int_equal(db_device_desired(f->base.srv.db, "cam-1", -1, &seq, &env, &len), 0);
    assert_int_equal(ef_assignment_verify_parse(env, len, other.pk, &a, NULL, 0), EF_EBADSIG);
    free(env);

    assert_int_equal(assign_version(&f->base.srv, "cam-9", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     EF_ENOENT);
}

static void same_version_is_reissued_only_after_failure(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, NULL, &seq),
                     0);
    assert_int_equal(seq, 1);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, NULL, &seq),
                     0);
    assert_int_equal(seq, 1);
    assert_int_equal(atomic_load(&f->base.srv.stats.assignments_issued), 1);
    /* A different rollout is a new assignment. */
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, "r1", &seq),
                     0);
    assert_int_equal(seq, 2);
    /* A failed deployment is retried by assigning it again. */
    assert_int_equal(db_device_report(f->base.srv.db, "cam-1", "production", "thyroid", 2, "failed",
                                      "self-test", NOW),
                     0);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, "r1", &seq),
                     0);
    assert_int_equal(seq, 3);
}

static void shadow_needs_production_and_keeps_it(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    struct ef_assignment *a;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_SHADOW, &f->v2, NULL, &seq),
                     EF_ECONFLICT);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, "r1", &seq),
                     0);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_SHADOW, &f->v2, NULL, &seq), 0);
    assert_int_equal(seq, 2);
    a = stored(f, "cam-1");
    assert_non_null(a->slots[EF_SLOT_PRODUCTION]);
    assert_non_null(a->slots[EF_SLOT_SHADOW]);
    assert_int_equal(a->slots[EF_SLOT_PRODUCTION]->version, 1);
    assert_string_equal(a->slots[EF_SLOT_PRODUCTION]->rollout_id, "r1");
    assert_int_equal(a->slots[EF_SLOT_SHADOW]->version, 2);
    assert_null(a->slots[EF_SLOT_SHADOW]->rollout_id);
    ef_assignment_free(a);

    json_t *d = NULL;
    assert_int_equal(db_device_get(f->base.srv.db, "cam-1", &d), 0);
    json_t *shadow = json_object_get(json_object_get(d, "slots"), "shadow");
    assert_int_equal(json_integer_value(json_object_get(shadow, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(shadow, "state")), "pending");
    assert_int_equal(json_integer_value(json_object_get(d, "desired_seq")), 2);
    json_decref(d);
}

/* Promotion: the production slot getting the shadow's version empties the
 * shadow slot in the same assignment; another version leaves it. */
static void production_takes_over_the_shadow(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    struct ef_assignment *a;
    json_t *d = NULL;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_SHADOW, &f->v2, "5", &seq), 0);
    /* The same production version again changes nothing. */
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(seq, 2);
    assert_non_null((a = stored(f, "cam-1"))->slots[EF_SLOT_SHADOW]);
    ef_assignment_free(a);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, "6", &seq),
                     0);
    assert_int_equal(seq, 3);
    a = stored(f, "cam-1");
    assert_int_equal(a->slots[EF_SLOT_PRODUCTION]->version, 2);
    assert_string_equal(a->slots[EF_SLOT_PRODUCTION]->rollout_id, "6");
    assert_null(a->slots[EF_SLOT_SHADOW]);
    ef_assignment_free(a);
    assert_int_equal(db_device_get(f->base.srv.db, "cam-1", &d), 0);
    assert_null(json_object_get(json_object_get(d, "slots"), "shadow"));
    json_decref(d);
}

/* assign_shadow_clear: a new seq without the shadow slot, then a no-op. */
static void shadow_is_cleared(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    struct ef_assignment *a;
    assert_int_equal(assign_shadow_clear(&f->base.srv, "nobody", &seq), EF_ENOENT);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(assign_shadow_clear(&f->base.srv, "cam-1", &seq), 0);
    assert_int_equal(seq, 1); /* nothing to clear */
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_SHADOW, &f->v2, NULL, &seq), 0);
    assert_int_equal(assign_shadow_clear(&f->base.srv, "cam-1", &seq), 0);
    assert_int_equal(seq, 3);
    a = stored(f, "cam-1");
    assert_int_equal(a->seq, 3);
    assert_int_equal(a->slots[EF_SLOT_PRODUCTION]->version, 1);
    assert_null(a->slots[EF_SLOT_SHADOW]);
    ef_assignment_free(a);
    assert_int_equal(atomic_load(&f->base.srv.stats.assignments_issued), 3);
}

static void class_of_manifest_is_respected(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->rpi, NULL, &seq),
                     EF_EMISMATCH);
    assert_int_equal(enroll(f->base.srv.db, "pi-1", "rpi4", NULL), 0);
    assert_int_equal(assign_version(&f->base.srv, "pi-1", EF_SLOT_PRODUCTION, &f->rpi, NULL, &seq),
                     0);
    assert_int_equal(seq, 1);
}

static void seq_continues_after_reenrollment(void **state)
{
    struct fixture *f = *state;
    int64_t seq = 0;
    char *env = NULL;
    size_t len = 0;
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v2, NULL, &seq),
                     0);
    assert_int_equal(db_device_decommission(f->base.srv.db, "cam-1", NOW), 0);
    assert_int_equal(enroll(f->base.srv.db, "cam-1", "default", NULL), 0);
    /* No assignment to serve until a new one is made... */
    assert_int_equal(db_device_desired(f->base.srv.db, "cam-1", -1, &seq, &env, &len), 0);
    assert_int_equal(seq, 0);
    assert_null(env);
    /* ...and that one is above what the agent accepted before. */
    assert_int_equal(assign_version(&f->base.srv, "cam-1", EF_SLOT_PRODUCTION, &f->v1, NULL, &seq),
                     0);
    assert_int_equal(seq, 3);
    struct ef_assignment *a = stored(f, "cam-1");
    assert_int_equal(a->seq, 3);
    assert_int_equal(a->slots[EF_SLOT_PRODUCTION]->version, 1);
    ef_assignment_free(a);
}

static void ring_gets_one_assignment_per_device(void **state)
{
    struct fixture *f = *state;
    json_t *sel = json_pack("{s:s}", "site", "lab"), *assigned = NULL;
    assert_int_equal(db_ring_create(f->base.srv.db, "canary", NULL, sel, NOW), 0);
    assert_int_equal(db_ring_create(f->base.srv.db, "empty", NULL, NULL, NOW), 0);
    json_decref(sel);
    assert_int_equal(enroll(f->base.srv.db, "lab-1", "default", "{\"site\":\"lab\"}"), 0);
    assert_int_equal(enroll(f->base.srv.db, "lab-2", "rpi4", "{\"site\":\"lab\"}"), 0);
    assert_int_equal(enroll(f->base.srv.db, "lab-3", "rpi4", "{\"site\":\"lab\"}"), 0);

    assert_int_equal(
        assign_ring(&f->base.srv, "canary", EF_SLOT_PRODUCTION, &f->v1, NULL, &assigned), 0);
    assert_int_equal(json_array_size(assigned), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(assigned, 0), "device_id")), "lab-1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(assigned, 2), "seq")), 1);
    json_decref(assigned);
    struct ef_assignment *a = stored(f, "lab-2");
    assert_string_equal(a->device_id, "lab-2");
    ef_assignment_free(a);

    /* Only the devices of the manifest's class. */
    assert_int_equal(
        assign_ring(&f->base.srv, "canary", EF_SLOT_PRODUCTION, &f->rpi, NULL, &assigned), 0);
    assert_int_equal(json_array_size(assigned), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(assigned, 0), "seq")), 2);
    json_decref(assigned);

    assert_int_equal(
        assign_ring(&f->base.srv, "empty", EF_SLOT_PRODUCTION, &f->v1, NULL, &assigned), 0);
    assert_int_equal(json_array_size(assigned), 0);
    json_decref(assigned);
    assert_int_equal(assign_ring(&f->base.srv, "nope", EF_SLOT_PRODUCTION, &f->v1, NULL, &assigned),
                     EF_ENOENT);
    assert_null(assigned);

    /* All or nothing: lab-3, enrolled again, has no production model, so a
     * shadow for the whole ring is refused and lab-1 keeps what it had. */
    assert_int_equal(db_device_decommission(f->base.srv.db, "lab-3", NOW), 0);
    assert_int_equal(enroll(f->base.srv.db, "lab-3", "rpi4", "{\"site\":\"lab\"}"), 0);
    assert_int_equal(assign_ring(&f->base.srv, "canary", EF_SLOT_SHADOW, &f->v2, NULL, &assigned),
                     EF_ECONFLICT);
    a = stored(f, "lab-1");
    assert_null(a->slots[EF_SLOT_SHADOW]);
    assert_int_equal(a->seq, 1);
    ef_assignment_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(seq_steps_by_one_and_envelope_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(same_version_is_reissued_only_after_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(shadow_needs_production_and_keeps_it, setup, teardown),
        cmocka_unit_test_setup_teardown(class_of_manifest_is_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(production_takes_over_the_shadow, setup, teardown),
        cmocka_unit_test_setup_teardown(shadow_is_cleared, setup, teardown),
        cmocka_unit_test_setup_teardown(seq_continues_after_reenrollment, setup, teardown),
        cmocka_unit_test_setup_teardown(ring_gets_one_assignment_per_device, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

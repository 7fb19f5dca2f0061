/* test_db_fleet.c - devices, rings and tokens in a real SQLite database:
 * token lookups and revocation, enrollment token expiry and uses, enrollment
 * and decommissioning, ring membership through the device_rings view,
 * reported state and the stored desired envelope. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/db.h"
#include "server/db_fleet.h"
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

#define HASH(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define HASH_A  HASH("aa")
#define HASH_B  HASH("bb")
#define HASH_C  HASH("cc")
#define HASH_D  HASH("dd")
#define SHA     HASH("ee")
#define NOW     1763805600000LL /* 2025-11-22T10:00:00.000Z */

/* Enrolls device id with tags given as JSON text (NULL: none). */
static int enroll(struct db *db, const char *id, const char *token_hash, const char *tags)
{
    json_t *t = tags ? json_loads(tags, 0, NULL) : NULL;
    int rc = db_device_create(db, id, token_hash, "default", t, NOW);
    json_decref(t);
    return rc;
}

/* The effective ring name of a device. */
static const char *ring_of(struct db *db, const char *id, char *buf, size_t size)
{
    json_t *d = NULL;
    assert_int_equal(db_device_get(db, id, &d), 0);
    snprintf(buf, size, "%s", json_string_value(json_object_get(d, "ring")));
    json_decref(d);
    return buf;
}

/* Inserts model "m" with versions 1 and 2; their row ids go to ids[0..1]. */
static void two_versions(struct db *db, int64_t ids[2])
{
    static const char manifest[] = "{\"device_class\":null}";
    int64_t model_id = 0;
    assert_int_equal(db_model_create(db, "m", "", NOW, &model_id), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(db_version_insert(db, model_id, i + 1, SHA, 100, "fann", manifest,
                                           strlen(manifest), "c2ln", NOW, &ids[i]),
                         0);
}

static void api_tokens_create_find_revoke(void **state)
{
    struct db_fixture *f = *state;
    int64_t admin = 0, viewer = 0, found = 0, admin2 = 0;
    char role[16], name[64];
    json_t *list = NULL;
    assert_int_equal(db_api_token_create(f->db, "root", "admin", HASH_A, NOW, &admin), 0);
    assert_int_equal(db_api_token_create(f->db, NULL, "viewer", HASH_B, NOW, &viewer), 0);
    assert_int_equal(db_api_token_create(f->db, "x", "superuser", HASH_C, NOW, NULL), EF_ECONFLICT);
    assert_int_equal(db_api_token_create(f->db, "x", "viewer", HASH_B, NOW, NULL), EF_EEXIST);

    assert_int_equal(db_api_token_find(f->db, HASH_A, &found, role, name), 0);
    assert_int_equal(found, admin);
    assert_string_equal(role, "admin");
    assert_string_equal(name, "root");
    assert_int_equal(db_api_token_find(f->db, HASH_D, &found, role, name), EF_ENOENT);

    assert_int_equal(db_api_tokens_list(f->db, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_t *second = json_array_get(list, 1);
    assert_true(json_is_null(json_object_get(second, "name")));
    assert_true(json_is_false(json_object_get(second, "revoked")));
    assert_null(json_object_get(second, "token_hash"));
    assert_string_equal(json_string_value(json_object_get(second, "created_at")),
                        "2025-11-22T10:00:00.000Z");
    json_decref(list);

    assert_int_equal(db_api_token_revoke(f->db, viewer, NOW + 1, role), 0);
    assert_string_equal(role, "viewer");
    assert_int_equal(db_api_token_find(f->db, HASH_B, &found, role, name), EF_ENOENT);
    assert_int_equal(db_api_token_revoke(f->db, viewer, NOW + 2, NULL), 0); /* again: fine */
    assert_int_equal(db_api_token_revoke(f->db, 999, NOW, NULL), EF_ENOENT);
    assert_int_equal(db_api_tokens_list(f->db, &list), 0);
    assert_true(json_is_true(json_object_get(json_array_get(list, 1), "revoked")));
    json_decref(list);

    /* The last admin cannot lock everyone out; with a second one it can go. */
    assert_int_equal(db_api_token_revoke(f->db, admin, NOW, NULL), EF_ECONFLICT);
    assert_int_equal(db_api_token_create(f->db, "root2", "admin", HASH_C, NOW, &admin2), 0);
    assert_int_equal(db_api_token_revoke(f->db, admin, NOW, NULL), 0);
    assert_int_equal(db_api_token_find(f->db, HASH_A, &found, role, name), EF_ENOENT);
    assert_int_equal(db_api_token_revoke(f->db, admin2, NOW, NULL), EF_ECONFLICT);
}

static void long_token_names_are_cut_between_characters(void **state)
{
    struct db_fixture *f = *state;
    char long_name[129] = "", role[16], name[64];
    int64_t id = 0;
    for (int i = 0; i < 40; i++)
        strcat(long_name, "\xc3\xa9"); /* é: two bytes each, 80 in all */
    assert_int_equal(db_api_token_create(f->db, long_name, "viewer", HASH_A, NOW, NULL), 0);
    assert_int_equal(db_api_token_find(f->db, HASH_A, &id, role, name), 0);
    assert_int_equal(strlen(name), 62); /* 63 would split the 32nd é */
    json_t *s = json_string(name);      /* NULL for invalid UTF-8 */
    assert_non_null(s);
    json_decref(s);
}

static void enroll_tokens_expire_and_run_out(void **state)
{
    struct db_fixture *f = *state;
    int64_t id = 0, found = 0, other = 0;
    char class[DB_CLASS_SIZE];
    assert_int_equal(db_enroll_token_create(f->db, HASH_A, "rpi4", 2, NOW + 1000, NOW, &id), 0);
    assert_int_equal(db_enroll_token_create(f->db, HASH_B, NULL, 1, NOW + 1000, NOW, &other), 0);

    assert_int_equal(db_enroll_token_find(f->db, HASH_A, NOW + 999, &found), 0);
    assert_int_equal(found, id);
    assert_int_equal(db_enroll_token_find(f->db, HASH_A, NOW + 1000, &found), EF_ENOENT);
    assert_int_equal(db_enroll_token_find(f->db, HASH_C, NOW, &found), EF_ENOENT);
    assert_int_equal(db_enroll_token_consume(f->db, id, NOW + 1000, class), EF_ENOENT);

    /* A use taken inside a transaction that rolls back is given back. */
    assert_int_equal(db_tx_begin(f->db), 0);
    assert_int_equal(db_enroll_token_consume(f->db, id, NOW, class), 0);
    assert_int_equal(db_tx_end(f->db, EF_EEXIST), EF_EEXIST);

    assert_int_equal(db_enroll_token_consume(f->db, id, NOW, class), 0);
    assert_string_equal(class, "rpi4");
    assert_int_equal(db_enroll_token_find(f->db, HASH_A, NOW, &found), 0);
    assert_int_equal(db_enroll_token_consume(f->db, id, NOW, class), 0);
    assert_int_equal(db_enroll_token_consume(f->db, id, NOW, class), EF_ENOENT);
    assert_int_equal(db_enroll_token_find(f->db, HASH_A, NOW, &found), EF_ENOENT);

    assert_int_equal(db_enroll_token_consume(f->db, other, NOW, class), 0);
    assert_string_equal(class, "");
}

static void device_create_get_and_duplicate(void **state)
{
    struct db_fixture *f = *state;
    char id[65];
    json_t *d = NULL, *bad = json_pack("{s:i}", "site", 3);
    assert_int_equal(enroll(f->db, "cam-1", HASH_A, "{\"site\":\"lab\"}"), 0);
    assert_int_equal(enroll(f->db, "cam-1", HASH_B, NULL), EF_EEXIST);
    assert_int_equal(db_device_create(f->db, "cam-2", HASH_B, "default", bad, NOW), EF_EINVAL);
    json_decref(bad);

    assert_int_equal(db_device_find_by_token(f->db, HASH_A, id), 0);
    assert_string_equal(id, "cam-1");
    assert_int_equal(db_device_find_by_token(f->db, HASH_B, id), EF_ENOENT);

    assert_int_equal(db_device_get(f->db, "cam-1", &d), 0);
    assert_string_equal(json_string_value(json_object_get(d, "id")), "cam-1");
    assert_string_equal(json_string_value(json_object_get(d, "class")), "default");
    assert_string_equal(json_string_value(json_object_get(d, "ring")), "default");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "tags"), "site")),
                        "lab");
    assert_true(json_is_false(json_object_get(d, "online")));
    assert_true(json_is_null(json_object_get(d, "last_seen")));
    assert_string_equal(json_string_value(json_object_get(d, "enrolled_at")),
                        "2025-11-22T10:00:00.000Z");
    assert_int_equal(json_integer_value(json_object_get(d, "desired_seq")), 0);
    assert_true(json_is_object(json_object_get(d, "slots")));
    assert_int_equal(json_object_size(json_object_get(d, "slots")), 0);
    assert_int_equal(json_object_size(json_object_get(d, "reported")), 0);
    json_decref(d);
    assert_int_equal(db_device_get(f->db, "cam-9", &d), EF_ENOENT);

    assert_int_equal(db_device_seen(f->db, "cam-1", true, NOW + 5), 0);
    assert_int_equal(db_device_seen(f->db, "cam-9", true, NOW), EF_ENOENT);
    assert_int_equal(db_device_get(f->db, "cam-1", &d), 0);
    assert_true(json_is_true(json_object_get(d, "online")));
    assert_string_equal(json_string_value(json_object_get(d, "last_seen")),
                        "2025-11-22T10:00:00.005Z");
    json_decref(d);
}

static void decommission_keeps_seq_for_reenrollment(void **state)
{
    struct db_fixture *f = *state;
    int64_t ids[2], seq = -1;
    char id[65], *env = NULL;
    size_t len = 0;
    json_t *d = NULL;
    two_versions(f->db, ids);
    assert_int_equal(enroll(f->db, "cam-1", HASH_A, NULL), 0);
    assert_int_equal(db_device_desired_store(f->db, "cam-1", 7, "{\"e\":7}", EF_SLOT_PRODUCTION,
                                             ids[0], NULL, NOW),
                     0);
    assert_int_equal(db_device_decommission(f->db, "cam-1", NOW), 0);
    assert_int_equal(db_device_decommission(f->db, "cam-1", NOW), EF_ENOENT);
    assert_int_equal(db_device_get(f->db, "cam-1", &d), EF_ENOENT);
    assert_int_equal(db_device_find_by_token(f->db, HASH_A, id), EF_ENOENT);
    assert_int_equal(db_device_seen(f->db, "cam-1", true, NOW), EF_ENOENT);
    assert_int_equal(db_device_desired(f->db, "cam-1", -1, &seq, &env, &len), EF_ENOENT);

    /* Enrolled again: no assignment, but the next seq continues from 7. */
    assert_int_equal(enroll(f->db, "cam-1", HASH_B, NULL), 0);
    assert_int_equal(db_device_desired(f->db, "cam-1", 7, &seq, &env, &len), 0);
    assert_int_equal(seq, 0);
    assert_null(env);
    assert_int_equal(db_device_get(f->db, "cam-1", &d), 0);
    assert_int_equal(json_object_size(json_object_get(d, "slots")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "desired_seq")), 0);
    json_decref(d);
    assert_int_equal(
        db_device_desired_store(f->db, "cam-1", 7, "{}", EF_SLOT_PRODUCTION, ids[0], NULL, NOW),
        EF_ESTALE);
}

static void ring_membership_by_selector(void **state)
{
    struct db_fixture *f = *state;
    char buf[65];
    int64_t early = 0, pos = 0;
    json_t *sel = json_pack("{s:s}", "site", "lab"), *rings = NULL, *ids = NULL, *list = NULL;
    struct db_device_change c = {0};

    assert_int_equal(db_ring_create(f->db, "canary", NULL, sel, NOW), 0);
    assert_int_equal(db_ring_create(f->db, "canary", NULL, NULL, NOW), EF_EEXIST);
    assert_int_equal(db_ring_create(f->db, "default", NULL, NULL, NOW), EF_EEXIST);
    assert_int_equal(db_ring_create(f->db, "beta", NULL, NULL, NOW), 0);
    assert_int_equal(enroll(f->db, "a", HASH_A, "{\"site\":\"lab\",\"hw\":\"x\"}"), 0);
    assert_int_equal(enroll(f->db, "b", HASH_B, "{\"site\":\"field\"}"), 0);
    assert_int_equal(enroll(f->db, "c", HASH_C, "{\"site\":\"lab\"}"), 0);

    assert_string_equal(ring_of(f->db, "a", buf, sizeof(buf)), "canary");
    assert_string_equal(ring_of(f->db, "b", buf, sizeof(buf)), "default");

    /* An explicit ring wins over any selector; null goes back to them. */
    assert_int_equal(db_ring_id(f->db, "beta", &c.ring_id), 0);
    c.set_ring = true;
    assert_int_equal(db_device_update(f->db, "c", &c), 0);
    assert_string_equal(ring_of(f->db, "c", buf, sizeof(buf)), "beta");
    c.ring_id = 0;
    assert_int_equal(db_device_update(f->db, "c", &c), 0);
    assert_string_equal(ring_of(f->db, "c", buf, sizeof(buf)), "canary");
    c.ring_id = 4242;
    assert_int_equal(db_device_update(f->db, "c", &c), EF_ECONFLICT);
    assert_int_equal(db_device_update(f->db, "zz", &c), EF_ENOENT);

    /* Positions are assigned after the last ring but default, and the
     * first matching selector by position wins. */
    assert_int_equal(db_rings_list(f->db, &rings), 0);
    assert_int_equal(json_array_size(rings), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rings, 0), "name")),
                        "canary");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rings, 0), "position")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rings, 0), "devices")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rings, 1), "position")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rings, 2), "name")),
                        "default");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rings, 2), "devices")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(rings, 0), "selector"), "site")),
                        "lab");
    json_decref(rings);
    json_decref(sel);
    sel = json_pack("{s:s}", "hw", "x");
    pos = 0;
    assert_int_equal(db_ring_create(f->db, "early", &pos, sel, NOW), 0);
    pos = 5;
    assert_int_equal(db_ring_update(f->db, "canary", &pos, NULL), 0);
    assert_int_equal(db_ring_update(f->db, "nope", &pos, NULL), EF_ENOENT);
    assert_string_equal(ring_of(f->db, "a", buf, sizeof(buf)), "early");
    assert_string_equal(ring_of(f->db, "c", buf, sizeof(buf)), "canary");

    assert_int_equal(db_ring_id(f->db, "early", &early), 0);
    assert_int_equal(db_ring_devices(f->db, early, NULL, &ids), 0);
    assert_int_equal(json_array_size(ids), 1);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "a");
    json_decref(ids);
    assert_int_equal(db_ring_devices(f->db, early, "rpi4", &ids), 0);
    assert_int_equal(json_array_size(ids), 0);
    json_decref(ids);

    /* Filters of the device list. */
    struct db_device_filter filter = {.ring = "canary"};
    assert_int_equal(db_devices_list(f->db, &filter, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "c");
    json_decref(list);
    filter = (struct db_device_filter){.tag_key = "site", .tag_value = "lab"};
    assert_int_equal(db_devices_list(f->db, &filter, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    bool online = true;
    assert_int_equal(db_device_seen(f->db, "b", true, NOW), 0);
    filter = (struct db_device_filter){.online = &online};
    assert_int_equal(db_devices_list(f->db, &filter, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(db_devices_list(f->db, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    json_decref(sel);
}

/* cam-1's production slot, as db_device_get shows it, must be in want_state
 * with want_reason (NULL: none). */
static void expect_production(struct db *db, const char *want_state, const char *want_reason)
{
    json_t *d = NULL;
    assert_int_equal(db_device_get(db, "cam-1", &d), 0);
    json_t *slot = json_object_get(json_object_get(d, "slots"), "production");
    assert_string_equal(json_string_value(json_object_get(slot, "state")), want_state);
    if (want_reason)
        assert_string_equal(json_string_value(json_object_get(slot, "reason")), want_reason);
    else
        assert_true(json_is_null(json_object_get(slot, "reason")));
    json_decref(d);
}

static void report_moves_slot_only_for_wanted_version(void **state)
{
    struct db_fixture *f = *state;
    int64_t ids[2];
    bool yes = false;
    json_t *d = NULL, *slot, *rep;
    two_versions(f->db, ids);
    assert_int_equal(enroll(f->db, "cam-1", HASH_A, NULL), 0);
    assert_int_equal(
        db_device_desired_store(f->db, "cam-1", 1, "{}", EF_SLOT_PRODUCTION, ids[1], "r1", NOW), 0);
    assert_int_equal(db_device_has_version(f->db, "cam-1", ids[1], &yes), 0);
    assert_true(yes);
    assert_int_equal(db_device_has_version(f->db, "cam-1", ids[0], &yes), 0);
    assert_false(yes);

    /* News about the old version is recorded but does not finish the new. */
    assert_int_equal(
        db_device_report(f->db, "cam-1", "production", "m", 1, "committed", NULL, NOW + 1), 0);
    expect_production(f->db, "pending", NULL);
    assert_int_equal(db_device_get(f->db, "cam-1", &d), 0);
    slot = json_object_get(json_object_get(d, "slots"), "production");
    assert_string_equal(json_string_value(json_object_get(slot, "name")), "m");
    assert_int_equal(json_integer_value(json_object_get(slot, "version")), 2);
    rep = json_object_get(json_object_get(d, "reported"), "production");
    assert_int_equal(json_integer_value(json_object_get(rep, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(rep, "state")), "committed");
    assert_string_equal(json_string_value(json_object_get(d, "last_seen")),
                        "2025-11-22T10:00:00.001Z");
    json_decref(d);

    assert_int_equal(
        db_device_report(f->db, "cam-1", "production", "m", 2, "self-test", NULL, NOW + 2), 0);
    expect_production(f->db, "verifying", NULL);

    assert_int_equal(
        db_device_report(f->db, "cam-1", "production", "m", 2, "failed", "oom", NOW + 3), 0);
    expect_production(f->db, "failed", "oom");

    assert_int_equal(db_device_report(f->db, "cam-1", "tertiary", "m", 2, "failed", NULL, NOW),
                     EF_EINVAL);
    assert_int_equal(db_device_report(f->db, "cam-9", "production", "m", 2, "failed", NULL, NOW),
                     EF_ENOENT);

    /* A new assignment of the slot starts again at pending, reason cleared. */
    assert_int_equal(
        db_device_desired_store(f->db, "cam-1", 2, "{}", EF_SLOT_PRODUCTION, ids[1], NULL, NOW), 0);
    expect_production(f->db, "pending", NULL);
}

static void desired_envelope_and_seq(void **state)
{
    struct db_fixture *f = *state;
    int64_t ids[2], seq = -1;
    char *env = NULL;
    size_t len = 0;
    struct db_desired d;
    two_versions(f->db, ids);
    assert_int_equal(enroll(f->db, "cam-1", HASH_A, NULL), 0);
    assert_int_equal(db_device_desired(f->db, "cam-1", -1, &seq, &env, &len), 0);
    assert_int_equal(seq, 0);
    assert_null(env);

    assert_int_equal(db_device_desired_store(f->db, "cam-1", 1, "{\"a\":1}", EF_SLOT_PRODUCTION,
                                             ids[0], "r9", NOW),
                     0);
    assert_int_equal(db_device_desired_store(f->db, "cam-1", 1, "{\"a\":2}", EF_SLOT_PRODUCTION,
                                             ids[0], NULL, NOW),
                     EF_ESTALE);
    assert_int_equal(
        db_device_desired_store(f->db, "cam-9", 5, "{}", EF_SLOT_PRODUCTION, ids[0], NULL, NOW),
        EF_ENOENT);
    assert_int_equal(db_device_desired(f->db, "cam-1", -1, &seq, &env, &len), 0);
    assert_int_equal(seq, 1);
    assert_non_null(env);
    assert_int_equal(len, 7);
    assert_string_equal(env, "{\"a\":1}");
    free(env);
    /* A caller that has seq 1 gets no bytes. */
    assert_int_equal(db_device_desired(f->db, "cam-1", 1, &seq, &env, &len), 0);
    assert_int_equal(seq, 1);
    assert_null(env);
    assert_int_equal(db_device_desired(f->db, "cam-9", -1, &seq, &env, &len), EF_ENOENT);

    assert_int_equal(db_device_desired_load(f->db, "cam-1", &d), 0);
    assert_int_equal(d.seq, 1);
    assert_string_equal(d.class, "default");
    assert_true(d.slots[EF_SLOT_PRODUCTION].set);
    assert_false(d.slots[EF_SLOT_SHADOW].set);
    assert_int_equal(d.slots[EF_SLOT_PRODUCTION].version_id, ids[0]);
    assert_string_equal(d.slots[EF_SLOT_PRODUCTION].model, "m");
    assert_int_equal(d.slots[EF_SLOT_PRODUCTION].version, 1);
    assert_string_equal(d.slots[EF_SLOT_PRODUCTION].sha256, SHA);
    assert_int_equal(d.slots[EF_SLOT_PRODUCTION].size, 100);
    assert_string_equal(d.slots[EF_SLOT_PRODUCTION].rollout_id, "r9");
    assert_string_equal(d.slots[EF_SLOT_PRODUCTION].state, "pending");
    assert_int_equal(db_device_desired_load(f->db, "cam-9", &d), EF_ENOENT);
}

static void tags_rules(void **state)
{
    (void)state;
    json_t *ok = json_pack("{s:s, s:s}", "site", "lab", "hw.rev", "");
    json_t *bad_key = json_pack("{s:s}", "Site", "lab");
    json_t *bad_value = json_pack("{s:b}", "site", 1);
    json_t *many = json_object();
    char key[8], big[DB_TAG_VALUE_MAX + 2];
    for (int i = 0; i <= DB_TAGS_MAX; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        json_object_set_new(many, key, json_string("v"));
    }
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_t *long_value = json_pack("{s:s}", "site", big);
    assert_true(db_tags_valid(ok));
    assert_false(db_tags_valid(bad_key));
    assert_false(db_tags_valid(bad_value));
    assert_false(db_tags_valid(many));
    assert_false(db_tags_valid(long_value));
    assert_false(db_tags_valid(json_array_get(NULL, 0)));
    json_decref(ok);
    json_decref(bad_key);
    json_decref(bad_value);
    json_decref(many);
    json_decref(long_value);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(api_tokens_create_find_revoke),
        DB_TEST(long_token_names_are_cut_between_characters),
        DB_TEST(enroll_tokens_expire_and_run_out),
        DB_TEST(device_create_get_and_duplicate),
        DB_TEST(decommission_keeps_seq_for_reenrollment),
        DB_TEST(ring_membership_by_selector),
        DB_TEST(report_moves_slot_only_for_wanted_version),
        DB_TEST(desired_envelope_and_seq),
        cmocka_unit_test(tags_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_db_registry.c - models and versions in a real SQLite database:
 * creation, lookups, strictly increasing versions, exact bytes, rollback. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/db.h"
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

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SIG   "c2lnbmF0dXJl"

/* A small manifest document as stored (only device_class matters here). */
static void manifest_text(char *buf, size_t size, int64_t version, const char *device_class)
{
    if (device_class)
        snprintf(buf, size, "{\"device_class\":\"%s\",\"version\":%lld}", device_class,
                 (long long)version);
    else
        snprintf(buf, size, "{\"device_class\":null,\"version\":%lld}", (long long)version);
}

static int insert(struct db *db, int64_t model_id, int64_t version, const char *sha256, int64_t *id)
{
    char manifest[128];
    manifest_text(manifest, sizeof(manifest), version, NULL);
    return db_version_insert(db, model_id, version, sha256, 100 + version, "fann", manifest,
                             strlen(manifest), SIG, 1000 * version, id);
}

static void model_create_and_get(void **state)
{
    struct db_fixture *f = *state;
    int64_t id = 0, found = 0;
    json_t *m = NULL;
    assert_int_equal(db_model_create(f->db, "iris", "flowers", 1234, &id), 0);
    assert_true(id > 0);
    assert_int_equal(db_model_id(f->db, "iris", &found), 0);
    assert_int_equal(found, id);
    assert_int_equal(db_model_get(f->db, "iris", &m), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "iris");
    assert_string_equal(json_string_value(json_object_get(m, "description")), "flowers");
    assert_int_equal(json_integer_value(json_object_get(m, "created_at")), 1234);
    assert_true(json_is_null(json_object_get(m, "latest_version")));
    assert_int_equal(json_object_size(m), 4);
    json_decref(m);
}

static void model_without_description_has_an_empty_one(void **state)
{
    struct db_fixture *f = *state;
    json_t *m = NULL;
    assert_int_equal(db_model_create(f->db, "thyroid", NULL, 1, NULL), 0);
    assert_int_equal(db_model_get(f->db, "thyroid", &m), 0);
    assert_string_equal(json_string_value(json_object_get(m, "description")), "");
    json_decref(m);
}

static void duplicate_model_is_eexist(void **state)
{
    struct db_fixture *f = *state;
    assert_int_equal(db_model_create(f->db, "iris", "", 1, NULL), 0);
    assert_int_equal(db_model_create(f->db, "iris", "again", 2, NULL), EF_EEXIST);
}

static void unknown_model_is_enoent(void **state)
{
    struct db_fixture *f = *state;
    int64_t id = 0;
    json_t *m = NULL;
    struct db_version v;
    assert_int_equal(db_model_id(f->db, "ghost", &id), EF_ENOENT);
    assert_int_equal(db_model_get(f->db, "ghost", &m), EF_ENOENT);
    assert_null(m);
    assert_int_equal(db_version_get(f->db, "ghost", 1, &v), EF_ENOENT);
    db_version_clear(&v);
    assert_int_equal(db_version_get_by_id(f->db, 999, &v), EF_ENOENT);
    db_version_clear(&v);
}

static void models_list_is_sorted_by_name_with_latest_versions(void **state)
{
    struct db_fixture *f = *state;
    int64_t zebra = 0;
    json_t *list = NULL;
    assert_int_equal(db_model_create(f->db, "zebra", "", 1, &zebra), 0);
    assert_int_equal(db_model_create(f->db, "alpha", "", 2, NULL), 0);
    assert_int_equal(insert(f->db, zebra, 1, SHA_A, NULL), 0);
    assert_int_equal(insert(f->db, zebra, 4, SHA_B, NULL), 0);
    assert_int_equal(db_models_list(f->db, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0), *second = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "alpha");
    assert_true(json_is_null(json_object_get(first, "latest_version")));
    assert_string_equal(json_string_value(json_object_get(second, "name")), "zebra");
    assert_int_equal(json_integer_value(json_object_get(second, "latest_version")), 4);
    json_decref(list);
}

static void versions_must_strictly_increase(void **state)
{
    struct db_fixture *f = *state;
    int64_t model = 0, latest = -1, id1 = 0, id2 = 0;
    assert_int_equal(db_model_create(f->db, "iris", "", 1, &model), 0);
    assert_int_equal(db_version_latest(f->db, model, &latest), 0);
    assert_int_equal(latest, 0);
    assert_int_equal(insert(f->db, model, 1, SHA_A, &id1), 0);
    assert_int_equal(insert(f->db, model, 2, SHA_B, &id2), 0);
    assert_true(id2 > id1);
    assert_int_equal(insert(f->db, model, 2, SHA_A, NULL), EF_ESTALE);
    assert_int_equal(insert(f->db, model, 1, SHA_A, NULL), EF_ESTALE);
    assert_int_equal(insert(f->db, model, 7, SHA_A, NULL), 0); /* gaps are allowed */
    assert_int_equal(insert(f->db, model, 6, SHA_A, NULL), EF_ESTALE);
    assert_int_equal(db_version_latest(f->db, model, &latest), 0);
    assert_int_equal(latest, 7);
}

static void versions_of_models_are_independent(void **state)
{
    struct db_fixture *f = *state;
    int64_t a = 0, b = 0;
    assert_int_equal(db_model_create(f->db, "a", "", 1, &a), 0);
    assert_int_equal(db_model_create(f->db, "b", "", 1, &b), 0);
    assert_int_equal(insert(f->db, a, 5, SHA_A, NULL), 0);
    assert_int_equal(insert(f->db, b, 1, SHA_A, NULL), 0);
}

static void version_of_a_missing_model_is_refused(void **state)
{
    struct db_fixture *f = *state;
    assert_int_not_equal(insert(f->db, 4242, 1, SHA_A, NULL), 0);
}

static void version_get_returns_the_exact_bytes(void **state)
{
    struct db_fixture *f = *state;
    int64_t model = 0, id = 0;
    struct db_version v, by_id;
    /* Byte-exact: whitespace and key order are what the signature covers. */
    static const char manifest[] = "{ \"z\": 1,\n  \"a\": \"\\u00e9\" }\n";
    assert_int_equal(db_model_create(f->db, "iris", "", 1, &model), 0);
    assert_int_equal(db_version_insert(f->db, model, 3, SHA_A, 4242, "fann-fixed", manifest,
                                       strlen(manifest), SIG, 5555, &id),
                     0);
    assert_int_equal(db_version_get(f->db, "iris", 3, &v), 0);
    assert_int_equal(v.id, id);
    assert_int_equal(v.model_id, model);
    assert_string_equal(v.model, "iris");
    assert_int_equal(v.version, 3);
    assert_string_equal(v.sha256, SHA_A);
    assert_int_equal(v.size, 4242);
    assert_string_equal(v.backend, "fann-fixed");
    assert_int_equal(v.manifest_len, strlen(manifest));
    assert_memory_equal(v.manifest, manifest, strlen(manifest));
    assert_int_equal(v.manifest[v.manifest_len], '\0');
    assert_string_equal(v.signature, SIG);
    assert_int_equal(v.created_at, 5555);
    assert_int_equal(db_version_get_by_id(f->db, id, &by_id), 0);
    assert_string_equal(by_id.model, "iris");
    assert_int_equal(by_id.version, 3);
    assert_memory_equal(by_id.manifest, manifest, strlen(manifest));
    db_version_clear(&v);
    assert_int_equal(db_version_get(f->db, "iris", 4, &v), EF_ENOENT);
    db_version_clear(&v);
    db_version_clear(&by_id);
    db_version_clear(&by_id); /* a cleared struct may be cleared again */
}

static void versions_list_is_ascending_with_device_class(void **state)
{
    struct db_fixture *f = *state;
    int64_t model = 0, empty = 0;
    char manifest[128];
    json_t *list = NULL;
    assert_int_equal(db_model_create(f->db, "iris", "", 1, &model), 0);
    assert_int_equal(db_model_create(f->db, "empty", "", 1, &empty), 0);
    assert_int_equal(insert(f->db, model, 1, SHA_A, NULL), 0);
    manifest_text(manifest, sizeof(manifest), 2, "rpi4");
    assert_int_equal(db_version_insert(f->db, model, 2, SHA_B, 9, "fann", manifest,
                                       strlen(manifest), SIG, 77, NULL),
                     0);
    assert_int_equal(db_versions_list(f->db, model, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_t *v1 = json_array_get(list, 0), *v2 = json_array_get(list, 1);
    assert_int_equal(json_integer_value(json_object_get(v1, "version")), 1);
    assert_true(json_is_null(json_object_get(v1, "device_class")));
    assert_int_equal(json_integer_value(json_object_get(v2, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(v2, "sha256")), SHA_B);
    assert_int_equal(json_integer_value(json_object_get(v2, "size")), 9);
    assert_string_equal(json_string_value(json_object_get(v2, "backend")), "fann");
    assert_string_equal(json_string_value(json_object_get(v2, "device_class")), "rpi4");
    assert_int_equal(json_integer_value(json_object_get(v2, "created_at")), 77);
    assert_null(json_object_get(v2, "manifest"));
    json_decref(list);
    assert_int_equal(db_versions_list(f->db, empty, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void a_failed_transaction_leaves_no_model_and_no_version(void **state)
{
    struct db_fixture *f = *state;
    int64_t model = 0, id = 0;
    assert_int_equal(db_tx_begin(f->db), 0);
    assert_int_equal(db_model_create(f->db, "iris", "", 1, &model), 0);
    assert_int_equal(insert(f->db, model, 1, SHA_A, NULL), 0);
    assert_int_equal(db_tx_end(f->db, EF_EIO), EF_EIO);
    assert_int_equal(db_model_id(f->db, "iris", &id), EF_ENOENT);
    /* And the same steps committed do stick. */
    assert_int_equal(db_tx_begin(f->db), 0);
    assert_int_equal(db_model_create(f->db, "iris", "", 1, &model), 0);
    assert_int_equal(insert(f->db, model, 1, SHA_A, NULL), 0);
    assert_int_equal(db_tx_end(f->db, 0), 0);
    assert_int_equal(db_model_id(f->db, "iris", &id), 0);
    assert_int_equal(id, model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(model_create_and_get),
        DB_TEST(model_without_description_has_an_empty_one),
        DB_TEST(duplicate_model_is_eexist),
        DB_TEST(unknown_model_is_enoent),
        DB_TEST(models_list_is_sorted_by_name_with_latest_versions),
        DB_TEST(versions_must_strictly_increase),
        DB_TEST(versions_of_models_are_independent),
        DB_TEST(version_of_a_missing_model_is_refused),
        DB_TEST(version_get_returns_the_exact_bytes),
        DB_TEST(versions_list_is_ascending_with_device_class),
        DB_TEST(a_failed_transaction_leaves_no_model_and_no_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

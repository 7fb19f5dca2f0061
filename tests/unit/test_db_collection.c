/* test_db_collection.c - collection policies, datasets and samples in a real
 * SQLite database: policies off by default, the first enabling opening a
 * dataset, a ring's policy overriding the model-wide one, the cap, the
 * current dataset triggers read, and the export's filtering and order. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/db.h"
#include "server/db_collection.h"
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
#define SHA     HASH("ab")
#define NOW     1763805600000LL /* 2025-11-22T10:00:00.000Z */

/* Row ids the setup made. */
static int64_t v1_id, v2_id, other_id;

/* A database with model m (v1: 3 inputs, 2 outputs; v2: 3 inputs, 1
 * output), model other (v1), ring lab (selector site=lab), devices d1 (lab)
 * and d2 (default) with m@1 in production, d3 with nothing, d4 with other@1. */
static int setup(void **state)
{
    assert_int_equal(db_fixture_setup(state), 0);
    struct db_fixture *f = *state;
    struct db *db = f->db;
    static const char m1[] = "{\"input\":{\"size\":3},\"output\":{\"size\":2}}";
    static const char m2[] = "{\"input\":{\"size\":3},\"output\":{\"size\":1}}";
    int64_t m = 0, o = 0;
    json_t *lab = json_pack("{s:s}", "site", "lab");
    assert_int_equal(db_model_create(db, "m", "", NOW, &m), 0);
    assert_int_equal(db_model_create(db, "other", "", NOW, &o), 0);
    assert_int_equal(
        db_version_insert(db, m, 1, SHA, 10, "fann", m1, strlen(m1), "sig", NOW, &v1_id), 0);
    assert_int_equal(
        db_version_insert(db, m, 2, SHA, 10, "fann", m2, strlen(m2), "sig", NOW, &v2_id), 0);
    assert_int_equal(
        db_version_insert(db, o, 1, SHA, 10, "fann", m1, strlen(m1), "sig", NOW, &other_id), 0);
    assert_int_equal(db_ring_create(db, "lab", NULL, lab, NOW), 0);
    assert_int_equal(db_device_create(db, "d1", HASH("a1"), "default", lab, NOW), 0);
    assert_int_equal(db_device_create(db, "d2", HASH("a2"), "default", NULL, NOW), 0);
    assert_int_equal(db_device_create(db, "d3", HASH("a3"), "default", NULL, NOW), 0);
    assert_int_equal(db_device_create(db, "d4", HASH("a4"), "default", NULL, NOW), 0);
    assert_int_equal(
        db_device_desired_store(db, "d1", 1, "{}", EF_SLOT_PRODUCTION, v1_id, NULL, NOW), 0);
    assert_int_equal(
        db_device_desired_store(db, "d2", 1, "{}", EF_SLOT_PRODUCTION, v1_id, NULL, NOW), 0);
    assert_int_equal(
        db_device_desired_store(db, "d4", 1, "{}", EF_SLOT_PRODUCTION, other_id, NULL, NOW), 0);
    json_decref(lab);
    return 0;
}

#define TEST(t) cmocka_unit_test_setup_teardown(t, setup, db_fixture_teardown)

/* Sets the policy of m (ring may be NULL) and returns its dataset id. */
static int64_t set_policy(struct db *db, const char *model, const char *ring, bool enabled,
                          int64_t max_samples, int64_t now)
{
    struct db_collection_change c = {.ring = ring, .enabled = enabled};
    json_t *policy = NULL;
    if (max_samples) {
        c.set_max = true;
        c.max_samples = max_samples;
    }
    assert_int_equal(db_collection_set(db, model, &c, now, &policy), 0);
    int64_t id = json_integer_value(json_object_get(policy, "dataset_id"));
    json_decref(policy);
    return id;
}

static void test_off_by_default(void **state)
{
    struct db_fixture *f = *state;
    struct db_device_policy p;
    json_t *list = NULL;
    int64_t current = -1;
    assert_int_equal(db_collection_for_device(f->db, "d1", &p), 0);
    assert_true(p.has_model);
    assert_string_equal(p.model, "m");
    assert_int_equal(p.version, 1);
    assert_int_equal(p.input_size, 3);
    assert_int_equal(p.output_size, 2);
    assert_false(p.found);
    assert_false(p.enabled);
    assert_int_equal(p.dataset_id, 0);
    assert_int_equal(db_collection_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(db_dataset_current(f->db, "m", &current), 0);
    assert_int_equal(current, 0);
    assert_int_equal(db_datasets_list(f->db, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void test_device_without_model_or_unknown(void **state)
{
    struct db_fixture *f = *state;
    struct db_device_policy p;
    assert_int_equal(db_collection_for_device(f->db, "d3", &p), 0);
    assert_false(p.has_model);
    assert_false(p.found);
    assert_int_equal(db_collection_for_device(f->db, "nobody", &p), EF_ENOENT);
    assert_int_equal(db_device_decommission(f->db, "d2", NOW), 0);
    assert_int_equal(db_collection_for_device(f->db, "d2", &p), EF_ENOENT);
}

static void test_enable_opens_dataset_once(void **state)
{
    struct db_fixture *f = *state;
    json_t *policy = NULL, *list = NULL;
    struct db_collection_change c = {.enabled = false};
    /* Disabled from the start: a policy without a dataset. */
    assert_int_equal(db_collection_set(f->db, "m", &c, NOW, &policy), 0);
    assert_true(json_is_null(json_object_get(policy, "dataset_id")));
    assert_true(json_is_false(json_object_get(policy, "enabled")));
    assert_true(json_is_null(json_object_get(policy, "ring")));
    assert_true(json_real_value(json_object_get(policy, "sample_rate")) == 0.1);
    assert_int_equal(json_integer_value(json_object_get(policy, "max_samples")), 10000);
    assert_string_equal(json_string_value(json_object_get(policy, "updated_at")),
                        "2025-11-22T10:00:00.000Z");
    json_decref(policy);
    int64_t ds = set_policy(f->db, "m", NULL, true, 0, NOW + 1);
    assert_true(ds > 0);
    /* Off and on again: the same dataset. */
    assert_int_equal(set_policy(f->db, "m", NULL, false, 0, NOW + 2), ds);
    assert_int_equal(set_policy(f->db, "m", NULL, true, 5, NOW + 3), ds);
    assert_int_equal(db_collection_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "max_samples")),
                     5);
    json_decref(list);
    assert_int_equal(db_datasets_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_t *d = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(d, "id")), ds);
    assert_string_equal(json_string_value(json_object_get(d, "model")), "m");
    assert_true(json_is_null(json_object_get(d, "ring")));
    assert_int_equal(json_integer_value(json_object_get(d, "samples")), 0);
    json_decref(list);
    assert_int_equal(db_datasets_list(f->db, "other", &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void test_set_refusals(void **state)
{
    struct db_fixture *f = *state;
    struct db_collection_change c = {.enabled = true};
    json_t *list = NULL;
    assert_int_equal(db_collection_set(f->db, "nope", &c, NOW, NULL), EF_ENOENT);
    c.ring = "nope";
    assert_int_equal(db_collection_set(f->db, "m", &c, NOW, NULL), EF_ENOENT);
    c.ring = NULL;
    c.set_rate = true;
    c.sample_rate = 0;
    assert_int_equal(db_collection_set(f->db, "m", &c, NOW, NULL), EF_EINVAL);
    c.sample_rate = 1.5;
    assert_int_equal(db_collection_set(f->db, "m", &c, NOW, NULL), EF_EINVAL);
    c.set_rate = false;
    c.set_max = true;
    c.max_samples = DB_COLLECTION_MAX_LIMIT + 1;
    assert_int_equal(db_collection_set(f->db, "m", &c, NOW, NULL), EF_EINVAL);
    /* Nothing of the refused changes was stored, no dataset opened. */
    assert_int_equal(db_collection_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(db_datasets_list(f->db, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(db_collection_list(f->db, "nope", &list), EF_ENOENT);
}

static void test_ring_overrides_model_wide(void **state)
{
    struct db_fixture *f = *state;
    struct db_device_policy p;
    json_t *list = NULL;
    int64_t all = set_policy(f->db, "m", NULL, true, 0, NOW);
    int64_t lab = set_policy(f->db, "m", "lab", true, 0, NOW + 1);
    assert_true(all > 0 && lab > 0 && all != lab);
    assert_int_equal(db_collection_for_device(f->db, "d1", &p), 0);
    assert_true(p.found && p.enabled);
    assert_int_equal(p.dataset_id, lab);
    assert_int_equal(db_collection_for_device(f->db, "d2", &p), 0);
    assert_int_equal(p.dataset_id, all);
    /* A disabled ring policy switches its ring off, not the others. */
    set_policy(f->db, "m", "lab", false, 0, NOW + 2);
    assert_int_equal(db_collection_for_device(f->db, "d1", &p), 0);
    assert_true(p.found);
    assert_false(p.enabled);
    assert_int_equal(db_collection_for_device(f->db, "d2", &p), 0);
    assert_true(p.enabled);
    /* Another model's device is not concerned. */
    assert_int_equal(db_collection_for_device(f->db, "d4", &p), 0);
    assert_string_equal(p.model, "other");
    assert_false(p.found);
    /* Model-wide first in the list, then rings. */
    assert_int_equal(db_collection_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_true(json_is_null(json_object_get(json_array_get(list, 0), "ring")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "ring")), "lab");
    json_decref(list);
    assert_int_equal(db_datasets_list(f->db, "m", &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "ring")), "lab");
    json_decref(list);
}

static void test_dataset_current(void **state)
{
    struct db_fixture *f = *state;
    int64_t current = -1;
    int64_t lab = set_policy(f->db, "m", "lab", true, 0, NOW);
    assert_int_equal(db_dataset_current(f->db, "m", &current), 0);
    assert_int_equal(current, lab);
    /* The model-wide policy is preferred when enabled. */
    int64_t all = set_policy(f->db, "m", NULL, true, 0, NOW + 1);
    assert_int_equal(db_dataset_current(f->db, "m", &current), 0);
    assert_int_equal(current, all);
    set_policy(f->db, "m", NULL, false, 0, NOW + 2);
    assert_int_equal(db_dataset_current(f->db, "m", &current), 0);
    assert_int_equal(current, lab);
    /* Collecting nowhere: the last dataset still counts. */
    set_policy(f->db, "m", "lab", false, 0, NOW + 3);
    assert_int_equal(db_dataset_current(f->db, "m", &current), 0);
    assert_int_equal(current, lab);
    assert_int_equal(db_dataset_current(f->db, "other", &current), 0);
    assert_int_equal(current, 0);
    assert_int_equal(db_dataset_current(f->db, "unknown", &current), 0);
    assert_int_equal(current, 0);
}

static void test_insert_honours_cap(void **state)
{
    struct db_fixture *f = *state;
    double in[3] = {0.5, 1.5, -2};
    struct db_sample s[3] = {{in, 3, 1}, {in, 3, -1}, {in, 3, 0}};
    size_t accepted = 99;
    bool full = true;
    json_t *d = NULL;
    int64_t ds = set_policy(f->db, "m", NULL, true, 4, NOW);
    assert_int_equal(db_samples_insert(f->db, ds, "d2", 1, s, 3, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, 3);
    assert_false(full);
    /* One place left: the first of the batch goes in, then it is full. */
    assert_int_equal(db_samples_insert(f->db, ds, "d2", 1, s, 3, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, 1);
    assert_true(full);
    assert_int_equal(db_samples_insert(f->db, ds, "d2", 1, s, 3, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, 0);
    assert_true(full);
    assert_int_equal(db_dataset_get(f->db, ds, &d), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "samples")), 4);
    assert_int_equal(json_integer_value(json_object_get(d, "labelled")), 3);
    /* The newest version (v2, one output) gives the shape. */
    assert_int_equal(json_integer_value(json_object_get(d, "input_size")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "output_size")), 1);
    json_decref(d);
    /* Raising the cap makes room again. */
    set_policy(f->db, "m", NULL, true, 10, NOW);
    assert_int_equal(db_samples_insert(f->db, ds, "d2", 1, s, 3, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, 3);
    assert_false(full);
    assert_int_equal(db_samples_insert(f->db, 999, "d2", 1, s, 3, NOW, &accepted, &full),
                     EF_ENOENT);
    assert_int_equal(db_dataset_get(f->db, 999, &d), EF_ENOENT);
}

static void test_shape(void **state)
{
    struct db_fixture *f = *state;
    size_t in = 0, out = 0;
    assert_int_equal(db_collection_shape(f->db, "m", 2, &in, &out), 0);
    assert_int_equal(in, 3);
    assert_int_equal(out, 1);
    assert_int_equal(db_collection_shape(f->db, "m", 3, &in, &out), EF_ENOENT);
    assert_int_equal(db_collection_shape(f->db, "zz", 1, &in, &out), EF_ENOENT);
}

/* What the export callbacks saw. */
struct seen {
    int64_t head;
    int rows;
    int labels[16];
    double first[16];
};

static int on_head(int64_t n, void *arg)
{
    ((struct seen *)arg)->head = n;
    return 0;
}

static int on_row(const double *input, size_t len, int label, void *arg)
{
    struct seen *s = arg;
    assert_int_equal(len, 3);
    s->labels[s->rows] = label;
    s->first[s->rows] = input[0];
    s->rows++;
    return 0;
}

static int on_row_fail(const double *input, size_t len, int label, void *arg)
{
    (void)input, (void)len, (void)label, (void)arg;
    return EF_EIO;
}

static void test_export_labelled_in_order(void **state)
{
    struct db_fixture *f = *state;
    double a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, c[2] = {7, 8}, d[3] = {0.25, 0, 0};
    struct db_sample s[5] = {{a, 3, 1}, {b, 3, -1}, {c, 2, 0}, {d, 3, 0}, {a, 3, 5}};
    struct seen seen = {0};
    size_t accepted = 0;
    bool full = false;
    int64_t ds = set_policy(f->db, "m", NULL, true, 0, NOW);
    assert_int_equal(db_samples_insert(f->db, ds, "d2", 1, s, 5, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, 5);
    /* Unlabelled, wrong-length and out-of-range samples are left out. */
    assert_int_equal(db_dataset_export(f->db, ds, 3, 2, on_head, on_row, &seen), 0);
    assert_int_equal(seen.head, 2);
    assert_int_equal(seen.rows, 2);
    assert_int_equal(seen.labels[0], 1);
    assert_true(seen.first[0] == 1.0);
    assert_int_equal(seen.labels[1], 0);
    assert_true(seen.first[1] == 0.25);
    assert_int_equal(db_dataset_export(f->db, ds, 3, 2, on_head, on_row_fail, &seen), EF_EIO);
    assert_int_equal(db_dataset_export(f->db, 999, 3, 2, on_head, on_row, &seen), EF_ENOENT);
}

/* What on_count saw: rows, and whether they came in insertion order. */
struct counted {
    int64_t head;
    int rows;
    bool ordered;
};

static int on_count_head(int64_t n, void *arg)
{
    ((struct counted *)arg)->head = n;
    return 0;
}

static int on_count(const double *input, size_t len, int label, void *arg)
{
    struct counted *c = arg;
    if (len != 3 || input[0] != c->rows || label != c->rows % 2)
        c->ordered = false;
    c->rows++;
    return 0;
}

/* More samples than one page of the export, all seen once, in order. */
static void test_export_pages(void **state)
{
    struct db_fixture *f = *state;
    enum { N = 1234 };
    static double values[N][3];
    static struct db_sample s[N];
    struct counted count = {0, 0, true};
    size_t accepted = 0;
    bool full = false;
    int64_t ds = set_policy(f->db, "m", NULL, true, 0, NOW);
    for (int i = 0; i < N; i++) {
        values[i][0] = i;
        s[i] = (struct db_sample){values[i], 3, i % 2};
    }
    assert_int_equal(db_samples_insert(f->db, ds, "d1", 1, s, N, NOW, &accepted, &full), 0);
    assert_int_equal(accepted, N);
    assert_int_equal(db_dataset_export(f->db, ds, 3, 2, on_count_head, on_count, &count), 0);
    assert_int_equal(count.head, N);
    assert_int_equal(count.rows, N);
    assert_true(count.ordered);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_off_by_default),
        TEST(test_device_without_model_or_unknown),
        TEST(test_enable_opens_dataset_once),
        TEST(test_set_refusals),
        TEST(test_ring_overrides_model_wide),
        TEST(test_dataset_current),
        TEST(test_insert_honours_cap),
        TEST(test_shape),
        TEST(test_export_labelled_in_order),
        TEST(test_export_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

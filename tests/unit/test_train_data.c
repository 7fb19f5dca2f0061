/*
 * test_train_data.c - the trainer's data (server/train/train_data.c):
 * loading FANN training files, merging them, and the deterministic
 * train/holdout split.
 */
#define _XOPEN_SOURCE 700
#include "common/ef_error.h"
#include "server/train/train_data.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/tmpdir_fixture.h"

/* Writes text to dir/name and returns the path (the caller frees it). */
static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = tmpdir_path(dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* A new data set of n rows: input[0] = row index, input[1] = -index,
 * output one-hot of index % 2. */
static struct fann_train_data *indexed(unsigned n)
{
    struct fann_train_data *d = fann_create_train(n, 2, 2);
    assert_non_null(d);
    for (unsigned r = 0; r < n; r++) {
        d->input[r][0] = (fann_type)r;
        d->input[r][1] = -(fann_type)r;
        d->output[r][0] = (fann_type)(r % 2 == 0);
        d->output[r][1] = (fann_type)(r % 2 == 1);
    }
    return d;
}

/* The row indices (input[0]) of a set, in order. */
static void row_ids(struct fann_train_data *d, unsigned *ids)
{
    for (unsigned r = 0; r < fann_length_train_data(d); r++)
        ids[r] = (unsigned)d->input[r][0];
}

static void split_is_deterministic_disjoint_and_complete(void **state)
{
    (void)state;
    enum { N = 101 };
    struct fann_train_data *d = indexed(N), *t1, *h1, *t2, *h2, *t3, *h3;
    char msg[200] = "";
    assert_int_equal(train_data_split(d, 0.2, 42, &t1, &h1, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_split(d, 0.2, 42, &t2, &h2, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_split(d, 0.2, 43, &t3, &h3, msg, sizeof(msg)), 0);
    /* round(0.2 * 101) = 20 held out, the rest trains. */
    assert_int_equal(fann_length_train_data(h1), 20);
    assert_int_equal(fann_length_train_data(t1), 81);
    unsigned a[N], b[N], c[N];
    row_ids(h1, a);
    row_ids(h2, b);
    row_ids(h3, c);
    /* Same seed, same holdout; another seed, another one. */
    assert_memory_equal(a, b, 20 * sizeof(unsigned));
    assert_memory_not_equal(a, c, 20 * sizeof(unsigned));
    /* Every row lands in exactly one set, whole (inputs and outputs), and
     * each set keeps the file order. */
    int seen[N] = {0};
    row_ids(t1, a + 20);
    for (unsigned i = 0; i < N; i++)
        seen[a[i]]++;
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    for (unsigned i = 1; i < 20; i++)
        assert_true(a[i - 1] < a[i]);
    for (unsigned i = 21; i < N; i++)
        assert_true(a[i - 1] < a[i]);
    for (unsigned r = 0; r < 20; r++) {
        assert_true(h1->input[r][1] == -h1->input[r][0]);
        assert_true(h1->output[r][1] == (fann_type)(a[r] % 2 == 1));
    }
    fann_destroy_train(t1);
    fann_destroy_train(h1);
    fann_destroy_train(t2);
    fann_destroy_train(h2);
    fann_destroy_train(t3);
    fann_destroy_train(h3);
    fann_destroy_train(d);
}

static void split_keeps_one_row_on_each_side(void **state)
{
    (void)state;
    struct fann_train_data *d = indexed(3), *t, *h;
    char msg[200] = "";
    /* 0.01 * 3 rounds to 0: the holdout still gets a row. */
    assert_int_equal(train_data_split(d, 0.01, 1, &t, &h, msg, sizeof(msg)), 0);
    assert_int_equal(fann_length_train_data(h), 1);
    assert_int_equal(fann_length_train_data(t), 2);
    fann_destroy_train(t);
    fann_destroy_train(h);
    /* 0.99 * 3 rounds to 3: the training set keeps one. */
    assert_int_equal(train_data_split(d, 0.99, 1, &t, &h, msg, sizeof(msg)), 0);
    assert_int_equal(fann_length_train_data(h), 2);
    assert_int_equal(fann_length_train_data(t), 1);
    fann_destroy_train(t);
    fann_destroy_train(h);
    fann_destroy_train(d);
}

static void split_refuses_bad_share_and_tiny_sets(void **state)
{
    (void)state;
    struct fann_train_data *d = indexed(1), *two = indexed(2), *t = NULL, *h = NULL;
    char msg[200] = "";
    assert_int_equal(train_data_split(d, 0.2, 1, &t, &h, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "1 row"));
    assert_null(t);
    assert_null(h);
    assert_int_equal(train_data_split(two, 0.0, 1, &t, &h, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "share"));
    assert_int_equal(train_data_split(two, 1.0, 1, &t, &h, msg, sizeof(msg)), EF_EINVAL);
    fann_destroy_train(d);
    fann_destroy_train(two);
}

static void merge_of_two_files_keeps_their_rows_in_order(void **state)
{
    struct tmpdir *td = *state;
    char *a = write_file(td->dir, "a.data", "2 2 1\n0 0\n0\n0 1\n1\n");
    char *b = write_file(td->dir, "b.data", "3 2 1\n1 0\n1\n1 1\n0\n0.5 0.25\n1\n");
    struct fann_train_data *acc = NULL, *d = NULL;
    char msg[200] = "";
    assert_int_equal(train_data_load(a, &d, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_append(&acc, d, a, msg, sizeof(msg)), 0);
    fann_destroy_train(d);
    assert_int_equal(train_data_load(b, &d, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_append(&acc, d, b, msg, sizeof(msg)), 0);
    fann_destroy_train(d);
    assert_int_equal(fann_length_train_data(acc), 5);
    assert_int_equal(fann_num_input_train_data(acc), 2);
    assert_int_equal(fann_num_output_train_data(acc), 1);
    const float want_in0[5] = {0, 0, 1, 1, 0.5f}, want_in1[5] = {0, 1, 0, 1, 0.25f};
    const float want_out[5] = {0, 1, 1, 0, 1};
    for (int r = 0; r < 5; r++) {
        assert_true(acc->input[r][0] == want_in0[r]);
        assert_true(acc->input[r][1] == want_in1[r]);
        assert_true(acc->output[r][0] == want_out[r]);
    }
    fann_destroy_train(acc);
    free(a);
    free(b);
}

static void merge_refuses_another_shape(void **state)
{
    struct tmpdir *td = *state;
    char *a = write_file(td->dir, "a.data", "1 2 1\n0 0\n0\n");
    char *b = write_file(td->dir, "b.data", "1 3 1\n0 0 0\n1\n");
    struct fann_train_data *acc = NULL, *d = NULL;
    char msg[300] = "";
    assert_int_equal(train_data_load(a, &d, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_append(&acc, d, a, msg, sizeof(msg)), 0);
    fann_destroy_train(d);
    assert_int_equal(train_data_load(b, &d, msg, sizeof(msg)), 0);
    assert_int_equal(train_data_append(&acc, d, b, msg, sizeof(msg)), EF_EMISMATCH);
    assert_non_null(strstr(msg, "b.data has 3 inputs and 1 outputs but the data before it has 2"));
    /* The set merged so far is left as it was. */
    assert_int_equal(fann_length_train_data(acc), 1);
    fann_destroy_train(d);
    fann_destroy_train(acc);
    free(a);
    free(b);
}

static void malformed_files_are_refused_with_the_reason(void **state)
{
    struct tmpdir *td = *state;
    const struct {
        const char *text, *reason;
        int rc;
    } cases[] = {
        {"", "does not start with a FANN training header", EF_EPARSE},
        {"two 2 1\n", "does not start with a FANN training header", EF_EPARSE},
        {"0 2 1\n", "needs at least one row", EF_EPARSE},
        {"2 2 1\n0 0\n1\n0 x\n1\n",
         "row 2: expected 2 input and 1 output numbers; found "
         "something else",
         EF_EPARSE},
        {"2 2 1\n0 0\n1\n0 1\n",
         "row 2: expected 2 input and 1 output numbers; the file ends "
         "early",
         EF_EPARSE},
        {"1 2 1\n0 0\n1\n5 5\n", "holds more than the 1 rows its header declares", EF_EPARSE},
        {"1 2 1\n0 nan\n1\n", "row 1", EF_EPARSE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = write_file(td->dir, "bad.data", cases[i].text);
        struct fann_train_data *d = NULL;
        char msg[300] = "";
        assert_int_equal(train_data_load(path, &d, msg, sizeof(msg)), cases[i].rc);
        assert_null(d);
        if (!strstr(msg, cases[i].reason))
            fail_msg("case %zu: '%s' does not say '%s'", i, msg, cases[i].reason);
        assert_non_null(strstr(msg, path));
        free(path);
    }
    struct fann_train_data *d = NULL;
    char msg[300] = "";
    char *missing = tmpdir_path(td->dir, "missing.data");
    assert_int_equal(train_data_load(missing, &d, msg, sizeof(msg)), EF_ENOENT);
    assert_non_null(strstr(msg, "cannot open"));
    free(missing);
}

static void random_is_splitmix64(void **state)
{
    (void)state;
    /* The reference sequence of splitmix64 from seed 0. */
    uint64_t s = 0;
    assert_true(train_data_random(&s) == 0xe220a8397b1dcdafull);
    assert_true(train_data_random(&s) == 0x6e789e6aa1b965f4ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_is_deterministic_disjoint_and_complete),
        cmocka_unit_test(split_keeps_one_row_on_each_side),
        cmocka_unit_test(split_refuses_bad_share_and_tiny_sets),
        cmocka_unit_test_setup_teardown(merge_of_two_files_keeps_their_rows_in_order, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(merge_refuses_another_shape, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(malformed_files_are_refused_with_the_reason, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test(random_is_splitmix64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_train_manifest.c - training (server/train/train_fit.c) and the meta a
 * candidate is registered with (server/train/train_manifest.c): the seed
 * repeats a network, baselines come from the training set, golden vectors
 * from the holdout with the network's own outputs, lineage as the contract
 * says; saving and loading float and fixed-point files.
 */
#define _XOPEN_SOURCE 700
#include "common/ef_error.h"
#include "server/train/train_eval.h"
#include "server/train/train_fit.h"
#include "server/train/train_manifest.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/tmpdir_fixture.h"

#define ROWS 60

/* A new set: 3 inputs in [0, 1], 2 classes by the sign of in0 - in1. */
static struct fann_train_data *make_data(unsigned rows, unsigned offset)
{
    struct fann_train_data *d = fann_create_train(rows, 3, 2);
    assert_non_null(d);
    for (unsigned r = 0; r < rows; r++) {
        unsigned k = r + offset;
        d->input[r][0] = (fann_type)((k * 7) % 19) / 18.0f;
        d->input[r][1] = (fann_type)((k * 11) % 23) / 22.0f;
        d->input[r][2] = 0.5f;
        int c = d->input[r][0] > d->input[r][1];
        d->output[r][0] = (fann_type)(c == 0);
        d->output[r][1] = (fann_type)(c == 1);
    }
    return d;
}

static struct fann *train(struct fann_train_data *d, unsigned seed)
{
    struct train_fit_opts opts = {.hidden = 4, .max_epochs = 30, .seed = seed};
    struct train_fit_result res;
    struct fann *ann = NULL;
    char msg[200] = "";
    assert_int_equal(train_fit(d, &opts, &ann, &res, msg, sizeof(msg)), 0);
    assert_int_equal(res.epochs, 30);
    assert_true(isfinite(res.mse));
    return ann;
}

/* True when two networks of the same shape have the same weights. */
static bool same_weights(struct fann *a, struct fann *b)
{
    unsigned n = fann_get_total_connections(a);
    struct fann_connection *ca = calloc(n, sizeof(*ca)), *cb = calloc(n, sizeof(*cb));
    assert_non_null(ca);
    assert_non_null(cb);
    fann_get_connection_array(a, ca);
    fann_get_connection_array(b, cb);
    bool same = true;
    for (unsigned i = 0; i < n; i++)
        same = same && ca[i].weight == cb[i].weight;
    free(ca);
    free(cb);
    return same;
}

static void the_seed_repeats_the_network(void **state)
{
    (void)state;
    struct fann_train_data *d = make_data(ROWS, 0);
    struct fann *a = train(d, 3), *b = train(d, 3), *c = train(d, 4);
    assert_true(same_weights(a, b));
    assert_false(same_weights(a, c));
    fann_destroy(a);
    fann_destroy(b);
    fann_destroy(c);
    fann_destroy_train(d);
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    struct fann_train_data *d = make_data(4, 0);
    struct train_fit_opts opts = {.hidden = 0, .max_epochs = 1};
    struct train_fit_result res;
    struct fann *ann = NULL;
    char msg[200] = "";
    assert_int_equal(train_fit(d, &opts, &ann, &res, msg, sizeof(msg)), EF_EINVAL);
    assert_null(ann);
    opts.hidden = 2;
    opts.algorithm = "sgd";
    assert_int_equal(train_fit(d, &opts, &ann, &res, msg, sizeof(msg)), EF_EINVAL);
    assert_false(train_fit_algorithm_valid("sgd"));
    assert_true(train_fit_algorithm_valid("quickprop"));
    fann_destroy_train(d);
}

static void meta_holds_baselines_golden_vectors_metrics_and_lineage(void **state)
{
    (void)state;
    struct fann_train_data *tr = make_data(ROWS, 0), *ho = make_data(5, 100);
    struct fann *ann = train(tr, 1);
    struct train_eval te, he;
    char msg[200] = "";
    assert_int_equal(train_eval_run(ann, tr, &te, msg, sizeof(msg)), 0);
    assert_int_equal(train_eval_run(ann, ho, &he, msg, sizeof(msg)), 0);
    json_t *labels = json_pack("[s, s]", "low", "high");
    struct train_manifest_src src = {
        .ann = ann,
        .train = tr,
        .holdout = ho,
        .train_eval = &te,
        .hold_eval = &he,
        .epochs = 30,
        .bins = 6,
        .golden = 8, /* more than the holdout's 5 rows */
        .tolerance = 0.001,
        .labels = labels,
        .lineage = {.parent_version = 3, .dataset_id = 4, .alert_id = 7, .trigger = "drift"},
    };
    json_t *meta = NULL;
    assert_int_equal(train_manifest_meta(&src, &meta, msg, sizeof(msg)), 0);

    json_t *features = json_object_get(json_object_get(meta, "baseline"), "features");
    json_t *output = json_object_get(json_object_get(meta, "baseline"), "output");
    assert_int_equal(json_array_size(features), 3);
    assert_int_equal(json_array_size(output), 2);
    /* Input 0 over the training set spans 0..1 (k*7 mod 19 takes 0 and 18);
     * the constant input 2 gets one unit around 0.5. */
    json_t *e0 = json_object_get(json_array_get(features, 0), "edges");
    assert_int_equal(json_array_size(e0), 7);
    assert_float_equal(json_real_value(json_array_get(e0, 0)), 0.0, 1e-9);
    assert_float_equal(json_real_value(json_array_get(e0, 6)), 1.0, 1e-9);
    json_t *e2 = json_object_get(json_array_get(features, 2), "edges");
    assert_float_equal(json_real_value(json_array_get(e2, 0)), 0.0, 1e-9);
    assert_float_equal(json_real_value(json_array_get(e2, 6)), 1.0, 1e-9);
    double sum = 0;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(json_array_get(output, 1), "fractions"), i, f) sum +=
        json_real_value(f);
    assert_float_equal(sum, 1.0, 1e-9);

    /* Golden vectors: every holdout row, the network's own output. */
    json_t *vectors = json_object_get(meta, "test_vectors");
    assert_int_equal(json_array_size(vectors), 5);
    for (unsigned r = 0; r < 5; r++) {
        json_t *v = json_array_get(vectors, r);
        const fann_type *y = fann_run(ann, ho->input[r]);
        assert_float_equal(json_real_value(json_array_get(json_object_get(v, "input"), 1)),
                           (double)ho->input[r][1], 1e-9);
        assert_float_equal(json_real_value(json_array_get(json_object_get(v, "output"), 0)),
                           (double)y[0], 1e-9);
        assert_float_equal(json_real_value(json_object_get(v, "tolerance")), 0.001, 1e-12);
    }

    json_t *m = json_object_get(meta, "metrics");
    assert_float_equal(json_real_value(json_object_get(m, "holdout_accuracy")), he.accuracy, 1e-12);
    assert_float_equal(json_real_value(json_object_get(m, "train_mse")), te.mse, 1e-12);
    assert_int_equal(json_integer_value(json_object_get(m, "train_rows")), ROWS);
    assert_int_equal(json_integer_value(json_object_get(m, "holdout_rows")), 5);
    assert_int_equal(json_integer_value(json_object_get(m, "epochs")), 30);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(m, "per_class"), 1), "label")),
                        "high");

    json_t *want = json_pack("{s:i, s:s, s:i, s:s}", "parent_version", 3, "dataset_id", "4",
                             "alert_id", 7, "trigger", "drift");
    assert_true(json_equal(json_object_get(meta, "lineage"), want));
    json_decref(want);
    assert_true(json_equal(json_object_get(meta, "labels"), labels));
    assert_null(json_object_get(meta, "features")); /* none given */
    assert_string_equal(json_string_value(json_object_get(meta, "backend")), "fann");
    json_decref(meta);

    /* Unknown lineage parts are nulls; labels of another size are left out. */
    struct train_lineage none = {0};
    json_t *l = train_manifest_lineage(&none);
    want = json_pack("{s:n, s:n, s:n, s:n}", "parent_version", "dataset_id", "alert_id", "trigger");
    assert_true(json_equal(l, want));
    json_decref(l);
    json_decref(want);
    json_decref(labels);
    src.labels = labels = json_pack("[s, s, s]", "a", "b", "c");
    src.bins = 0;
    assert_int_equal(train_manifest_meta(&src, &meta, msg, sizeof(msg)), EF_EINVAL);
    assert_null(meta);
    src.bins = 2;
    assert_int_equal(train_manifest_meta(&src, &meta, msg, sizeof(msg)), 0);
    assert_null(json_object_get(meta, "labels"));
    json_decref(meta);
    json_decref(labels);

    train_eval_release(&te);
    train_eval_release(&he);
    fann_destroy(ann);
    fann_destroy_train(tr);
    fann_destroy_train(ho);
}

static void float_and_fixed_files_save_and_load(void **state)
{
    struct tmpdir *td = *state;
    struct fann_train_data *d = make_data(ROWS, 0);
    struct fann *ann = train(d, 2), *back = NULL;
    char *net = tmpdir_path(td->dir, "model.net"), *fixed = tmpdir_path(td->dir, "fixed.net");
    char msg[300] = "", head[16] = "";
    int dp = -1;
    assert_int_equal(train_fit_save(ann, net, false, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(train_fit_save(ann, fixed, true, &dp, msg, sizeof(msg)), 0);
    assert_true(dp >= 0);
    FILE *f = fopen(fixed, "r");
    assert_non_null(f);
    assert_non_null(fgets(head, sizeof(head), f));
    fclose(f);
    assert_string_equal(head, "FANN_FIX_2.0\n");
    assert_int_equal(train_fit_load(net, &back, msg, sizeof(msg)), 0);
    assert_true(same_weights(ann, back));
    fann_destroy(back);
    back = NULL;
    /* A fixed-point file never reaches the float loader. */
    assert_int_equal(train_fit_load(fixed, &back, msg, sizeof(msg)), EF_EPARSE);
    assert_non_null(strstr(msg, "is not a float FANN network file"));
    assert_null(back);
    char *missing = tmpdir_path(td->dir, "none.net");
    assert_int_equal(train_fit_load(missing, &back, msg, sizeof(msg)), EF_ENOENT);
    char *nodir = tmpdir_path(td->dir, "no/such/dir.net");
    assert_int_equal(train_fit_save(ann, nodir, false, NULL, msg, sizeof(msg)), EF_EIO);
    assert_non_null(strstr(msg, "cannot create"));
    free(net);
    free(fixed);
    free(missing);
    free(nodir);
    fann_destroy(ann);
    fann_destroy_train(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_seed_repeats_the_network),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(meta_holds_baselines_golden_vectors_metrics_and_lineage),
        cmocka_unit_test_setup_teardown(float_and_fixed_files_save_and_load, tmpdir_setup,
                                        tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_cli_refdata.c - reference data to baselines, golden vectors and
 * metrics (server/cli/refdata.c), with a small FANN network trained here.
 */
#include "common/ef_error.h"
#include "common/histogram.h"
#include "common/json_util.h"
#include "server/cli/refdata.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define ROWS  40
#define N_IN  3
#define N_OUT 2

/* A temporary directory with a trained model and its data. */
struct fixture {
    char dir[64];      /* mkdtemp directory */
    char data[128];    /* ROWS x N_IN -> N_OUT training file */
    char model[128];   /* float network trained on it */
    char model1[128];  /* a network with a single output */
    char fixed[128];   /* the model saved as fixed point */
    char scratch[128]; /* a file a test may write */
};

/* Row r of the generated data: inputs in [0, 1], one-hot class by a rule. */
static void make_row(int r, float in[N_IN], float out[N_OUT])
{
    for (int j = 0; j < N_IN; j++)
        in[j] = (float)((r * (j + 3) * 7) % 23) / 22.0f;
    int cls = in[0] + in[1] > in[2] + 0.5f;
    out[0] = cls ? 0.0f : 1.0f;
    out[1] = cls ? 1.0f : 0.0f;
}

/* Writes rows generated rows with n_in inputs (extra inputs are zero). */
static void write_data(const char *path, int rows, int n_in)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%d %d %d\n", rows, n_in, N_OUT);
    for (int r = 0; r < rows; r++) {
        float in[N_IN], out[N_OUT];
        make_row(r, in, out);
        for (int j = 0; j < n_in; j++)
            fprintf(f, "%s%.6f", j ? " " : "", j < N_IN ? in[j] : 0.0f);
        fprintf(f, "\n%.1f %.1f\n", out[0], out[1]);
    }
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_cli_refdata.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->data, sizeof(fx->data), "%s/data.train", fx->dir);
    snprintf(fx->model, sizeof(fx->model), "%s/model.net", fx->dir);
    snprintf(fx->model1, sizeof(fx->model1), "%s/model1.net", fx->dir);
    snprintf(fx->fixed, sizeof(fx->fixed), "%s/model-fixed.net", fx->dir);
    snprintf(fx->scratch, sizeof(fx->scratch), "%s/scratch", fx->dir);
    write_data(fx->data, ROWS, N_IN);

    fann_set_error_log(NULL, NULL);
    struct fann_train_data *data = fann_read_train_from_file(fx->data);
    assert_non_null(data);
    struct fann *ann = fann_create_standard(3, N_IN, 5, N_OUT);
    assert_non_null(ann);
    fann_train_on_data(ann, data, 30, 0, 0.0f);
    assert_int_equal(fann_save(ann, fx->model), 0);
    /* Returns the position of the decimal point, -1 on error. */
    assert_true(fann_save_to_fixed(ann, fx->fixed) > 0);
    fann_destroy(ann);
    fann_destroy_train(data);

    struct fann *one = fann_create_standard(3, N_IN, 4, 1);
    assert_non_null(one);
    assert_int_equal(fann_save(one, fx->model1), 0);
    fann_destroy(one);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (!fx)
        return 0;
    const char *files[] = {fx->data, fx->model, fx->model1, fx->fixed, fx->scratch};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Runs refdata_compute for the fixture's model over a data file. */
static int compute(const char *model, const char *data_path, json_t **out)
{
    char msg[256] = "";
    struct fann *ann = fann_create_from_file(model);
    struct fann_train_data *data = NULL;
    assert_non_null(ann);
    int rc = refdata_load(data_path, &data, msg, sizeof(msg));
    assert_int_equal(rc, 0);
    rc = refdata_compute(ann, data, out, msg, sizeof(msg));
    fann_destroy_train(data);
    fann_destroy(ann);
    return rc;
}

/* Checks one histogram: bins + 1 edges, fractions in [0, 1] summing to 1. */
static void check_histogram(const json_t *h)
{
    const json_t *edges = json_object_get(h, "edges"), *fractions = json_object_get(h, "fractions");
    assert_int_equal(json_array_size(fractions), EF_HISTOGRAM_DEFAULT_BINS);
    assert_int_equal(json_array_size(edges), EF_HISTOGRAM_DEFAULT_BINS + 1);
    double sum = 0;
    size_t i;
    json_t *v;
    json_array_foreach(fractions, i, v)
    {
        double x = json_number_value(v);
        assert_true(x >= 0 && x <= 1);
        sum += x;
    }
    assert_true(fabs(sum - 1.0) < 1e-9);
}

static void baselines_have_one_histogram_per_input_and_output(void **state)
{
    struct fixture *fx = *state;
    json_t *out = NULL;
    assert_int_equal(compute(fx->model, fx->data, &out), 0);
    const json_t *features = json_object_get(json_object_get(out, "baseline"), "features");
    const json_t *outputs = json_object_get(json_object_get(out, "baseline"), "output");
    assert_int_equal(json_array_size(features), N_IN);
    assert_int_equal(json_array_size(outputs), N_OUT);
    for (size_t i = 0; i < N_IN; i++)
        check_histogram(json_array_get(features, i));
    for (size_t i = 0; i < N_OUT; i++)
        check_histogram(json_array_get(outputs, i));
    json_decref(out);
}

static void golden_vectors_are_the_models_own_outputs(void **state)
{
    struct fixture *fx = *state;
    json_t *out = NULL;
    assert_int_equal(compute(fx->model, fx->data, &out), 0);
    const json_t *vectors = json_object_get(out, "test_vectors");
    assert_int_equal(json_array_size(vectors), REFDATA_GOLDEN_ROWS);

    struct fann *ann = fann_create_from_file(fx->model);
    assert_non_null(ann);
    for (size_t r = 0; r < REFDATA_GOLDEN_ROWS; r++) {
        const json_t *v = json_array_get(vectors, r);
        float in[N_IN], expected[N_OUT];
        make_row((int)r, in, expected);
        double *vin = NULL, *vout = NULL;
        size_t n = 0;
        assert_int_equal(ef_json_read_doubles(json_object_get(v, "input"), N_IN, N_IN, &vin, &n),
                         0);
        assert_int_equal(
            ef_json_read_doubles(json_object_get(v, "output"), N_OUT, N_OUT, &vout, &n), 0);
        fann_type x[N_IN];
        for (size_t j = 0; j < N_IN; j++) {
            /* The file holds 6 decimals; the vector holds what FANN read. */
            assert_true(fabs(vin[j] - in[j]) < 1e-6);
            x[j] = (fann_type)vin[j];
        }
        const fann_type *y = fann_run(ann, x);
        for (size_t j = 0; j < N_OUT; j++)
            assert_true(vout[j] == (double)y[j]);
        assert_true(fabs(json_number_value(json_object_get(v, "tolerance")) - REFDATA_TOLERANCE) <
                    1e-12);
        free(vin);
        free(vout);
    }
    fann_destroy(ann);
    json_decref(out);
}

static void metrics_hold_mse_accuracy_and_rows(void **state)
{
    struct fixture *fx = *state;
    json_t *out = NULL;
    assert_int_equal(compute(fx->model, fx->data, &out), 0);
    const json_t *metrics = json_object_get(out, "metrics");
    assert_true(json_is_number(json_object_get(metrics, "mse")));
    assert_true(json_is_number(json_object_get(metrics, "accuracy")));
    int64_t rows = 0;
    assert_int_equal(ef_json_int(metrics, "reference_rows", &rows), 0);
    assert_int_equal(rows, ROWS);

    /* The same numbers computed independently. */
    struct fann *ann = fann_create_from_file(fx->model);
    struct fann_train_data *data = fann_read_train_from_file(fx->data);
    assert_non_null(ann);
    assert_non_null(data);
    fann_reset_MSE(ann);
    double mse = fann_test_data(ann, data);
    size_t correct = 0;
    for (unsigned r = 0; r < fann_length_train_data(data); r++) {
        const fann_type *y = fann_run(ann, data->input[r]);
        size_t got = y[1] > y[0], want = data->output[r][1] > data->output[r][0];
        correct += got == want;
    }
    assert_true(fabs(json_number_value(json_object_get(metrics, "mse")) - mse) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(metrics, "accuracy")) -
                     (double)correct / ROWS) < 1e-12);
    fann_destroy_train(data);
    fann_destroy(ann);
    json_decref(out);
}

static void single_output_has_no_accuracy(void **state)
{
    struct fixture *fx = *state;
    json_t *meta = json_object();
    char msg[256] = "";
    /* model1 has one output; data with one output column fits it. */
    FILE *f = fopen(fx->scratch, "w");
    assert_non_null(f);
    fprintf(f, "3 3 1\n0 0 1\n1\n0 1 0\n0\n1 0 0\n1\n");
    assert_int_equal(fclose(f), 0);
    assert_int_equal(refdata_apply(fx->model1, fx->scratch, meta, msg, sizeof(msg)), 0);
    const json_t *metrics = json_object_get(meta, "metrics");
    assert_non_null(json_object_get(metrics, "mse"));
    assert_null(json_object_get(metrics, "accuracy"));
    assert_int_equal(json_array_size(json_object_get(meta, "test_vectors")), 3);
    json_decref(meta);
}

static void size_mismatch_is_refused(void **state)
{
    struct fixture *fx = *state;
    json_t *meta = json_object();
    char msg[256] = "";
    write_data(fx->scratch, 10, N_IN + 1);
    assert_int_equal(refdata_apply(fx->model, fx->scratch, meta, msg, sizeof(msg)), EF_EMISMATCH);
    assert_non_null(strstr(msg, "3 inputs"));
    assert_int_equal(json_object_size(meta), 0);
    /* An output count that differs is refused too. */
    assert_int_equal(refdata_apply(fx->model1, fx->data, meta, msg, sizeof(msg)), EF_EMISMATCH);
    json_decref(meta);
}

static void meta_values_win_over_computed_ones(void **state)
{
    struct fixture *fx = *state;
    char msg[256] = "";
    json_t *meta = json_loads("{\"test_vectors\": [{\"input\": [1, 2, 3], \"output\": [0, 1],"
                              " \"tolerance\": 0.5}], \"metrics\": {\"mse\": 42},"
                              " \"labels\": [\"no\", \"yes\"]}",
                              0, NULL);
    assert_non_null(meta);
    assert_int_equal(refdata_apply(fx->model, fx->data, meta, msg, sizeof(msg)), 0);
    const json_t *vectors = json_object_get(meta, "test_vectors");
    assert_int_equal(json_array_size(vectors), 1);
    assert_true(json_number_value(json_object_get(json_array_get(vectors, 0), "tolerance")) == 0.5);
    const json_t *metrics = json_object_get(meta, "metrics");
    assert_int_equal(json_integer_value(json_object_get(metrics, "mse")), 42);
    assert_non_null(json_object_get(metrics, "accuracy"));
    assert_non_null(json_object_get(metrics, "reference_rows"));
    assert_non_null(json_object_get(meta, "baseline"));
    assert_non_null(json_object_get(meta, "labels"));
    json_decref(meta);
}

static void fixed_point_model_is_refused(void **state)
{
    struct fixture *fx = *state;
    json_t *meta = json_object();
    char msg[256] = "";
    assert_int_equal(refdata_apply(fx->fixed, fx->data, meta, msg, sizeof(msg)), EF_EUNSUPPORTED);
    assert_non_null(strstr(msg, "fixed-point"));
    json_decref(meta);
}

static void bad_data_files_are_refused(void **state)
{
    struct fixture *fx = *state;
    struct fann_train_data *data = NULL;
    char msg[256] = "";
    const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"not a header\n", EF_EPARSE},
        {"2 3\n", EF_EPARSE},
        {"0 3 2\n", EF_EPARSE},
        {"1 -3 2\n", EF_EPARSE},
        {"1 3 2 7\n", EF_EPARSE},
        {"100000000 1000 1000\n", EF_ETOOBIG},
        {"3 3 2\n0 0 0\n1 0\n", EF_EPARSE},        /* fewer rows than declared */
        {"1 3 2\n0 zero 0\n1 0\n", EF_EPARSE},     /* not a number */
        {"1 3 2\n0 nan 0\n1 0\n", EF_EPARSE},      /* not finite */
        {"1 3 2\n0 0 0\n1 0\n5 5 5\n", EF_EPARSE}, /* more than declared */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_text(fx->scratch, cases[i].text);
        assert_int_equal(refdata_load(fx->scratch, &data, msg, sizeof(msg)), cases[i].rc);
        assert_null(data);
        assert_true(msg[0] != '\0');
    }
    write_text(fx->scratch, "2 3 2\n0 0 0\n1 0\n0 0 0 1\n");
    assert_int_equal(refdata_load(fx->scratch, &data, msg, sizeof(msg)), EF_EPARSE);
    assert_non_null(strstr(msg, "row 2"));
    assert_int_equal(refdata_load("/nonexistent/data", &data, msg, sizeof(msg)), EF_ENOENT);
}

static void model_that_is_not_fann_is_refused(void **state)
{
    struct fixture *fx = *state;
    json_t *meta = json_object();
    char msg[256] = "";
    write_text(fx->scratch, "this is not a network\n");
    assert_int_equal(refdata_apply(fx->scratch, fx->data, meta, msg, sizeof(msg)), EF_EPARSE);
    assert_int_equal(refdata_apply("/nonexistent/model", fx->data, meta, msg, sizeof(msg)),
                     EF_ENOENT);
    json_decref(meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(baselines_have_one_histogram_per_input_and_output),
        cmocka_unit_test(golden_vectors_are_the_models_own_outputs),
        cmocka_unit_test(metrics_hold_mse_accuracy_and_rows),
        cmocka_unit_test(single_output_has_no_accuracy),
        cmocka_unit_test(size_mismatch_is_refused),
        cmocka_unit_test(meta_values_win_over_computed_ones),
        cmocka_unit_test(fixed_point_model_is_refused),
        cmocka_unit_test(bad_data_files_are_refused),
        cmocka_unit_test(model_that_is_not_fann_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

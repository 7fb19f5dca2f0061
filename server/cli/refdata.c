/* refdata.c - runs a float FANN model over reference data for its manifest. */
#include "server/cli/refdata.h"
#include "common/ef_error.h"
#include "common/histogram.h"
#include "common/json_util.h"
#include "common/manifest.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXED_MAGIC "FANN_FIX" /* how fixed-point network files begin */
#define FLOAT_MAGIC "FANN_FLO" /* and float ones */

/* FANN reports its own errors on stderr unless told otherwise; the CLI says
 * what went wrong in one line of its own instead. */
static void quiet_fann(void)
{
    fann_set_error_log(NULL, NULL);
}

/*
 * FANN's own reader (fann_read_train_from_file) leaks its error string on a
 * malformed file, prints to stderr and cannot say where the file went wrong,
 * so the format (a header line, then whitespace-separated numbers) is read
 * here into a struct FANN allocates.
 */
int refdata_load(const char *path, struct fann_train_data **out, char *msg, size_t msg_size)
{
    long long pairs = 0, n_in = 0, n_out = 0;
    char line[256], extra = 0;
    struct fann_train_data *data = NULL;
    int rc = 0;
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msg_size, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? EF_ENOENT : EF_EIO;
    }
    if (!fgets(line, sizeof(line), f) ||
        sscanf(line, "%lld %lld %lld %c", &pairs, &n_in, &n_out, &extra) != 3) {
        snprintf(msg, msg_size,
                 "%s does not start with a FANN training header \"PAIRS INPUTS OUTPUTS\"", path);
        rc = EF_EPARSE;
        goto out;
    }
    if (pairs < 1 || n_in < 1 || n_out < 1 || n_in > EF_MANIFEST_MAX_IO ||
        n_out > EF_MANIFEST_MAX_IO) {
        snprintf(msg, msg_size,
                 "%s: header \"%lld %lld %lld\" needs at least one row and 1..%d inputs and "
                 "outputs",
                 path, pairs, n_in, n_out, EF_MANIFEST_MAX_IO);
        rc = EF_EPARSE;
        goto out;
    }
    if (pairs > (long long)REFDATA_MAX_VALUES ||
        pairs * (n_in + n_out) > (long long)REFDATA_MAX_VALUES) {
        snprintf(msg, msg_size, "%s holds more than %u numbers; use a sample of it", path,
                 REFDATA_MAX_VALUES);
        rc = EF_ETOOBIG;
        goto out;
    }
    quiet_fann();
    data = fann_create_train((unsigned)pairs, (unsigned)n_in, (unsigned)n_out);
    if (!data) {
        snprintf(msg, msg_size, "out of memory for %lld rows", pairs);
        rc = EF_ENOMEM;
        goto out;
    }
    for (long long r = 0; r < pairs; r++) {
        for (long long j = 0; j < n_in + n_out; j++) {
            float v = 0;
            if (fscanf(f, "%f", &v) != 1 || !isfinite(v)) {
                snprintf(msg, msg_size,
                         "%s: row %lld: expected %lld input and %lld output "
                         "numbers; %s",
                         path, r + 1, n_in, n_out,
                         feof(f) ? "the file ends early" : "found something else");
                rc = EF_EPARSE;
                goto out;
            }
            if (j < n_in)
                data->input[r][j] = (fann_type)v;
            else
                data->output[r][j - n_in] = (fann_type)v;
        }
    }
    if (fscanf(f, " %c", &extra) == 1) {
        snprintf(msg, msg_size, "%s holds more than the %lld rows its header declares", path,
                 pairs);
        rc = EF_EPARSE;
        goto out;
    }
    *out = data;
    data = NULL;
out:
    if (data)
        fann_destroy_train(data);
    fclose(f);
    return rc;
}

static size_t argmax(const fann_type *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

bool refdata_widen(const fann_type *in, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (double)in[i];
        if (!isfinite(out[i]))
            return false;
    }
    return true;
}

int refdata_histograms(json_t *array, const double *matrix, size_t rows, size_t cols, size_t bins)
{
    for (size_t j = 0; j < cols; j++) {
        json_t *h = ef_histogram_build(matrix + j, rows, cols, bins);
        if (!h || json_array_append_new(array, h) != 0)
            return EF_ENOMEM;
    }
    return 0;
}

int refdata_compute(struct fann *ann, struct fann_train_data *data, json_t **out, char *msg,
                    size_t msg_size)
{
    size_t n_in = fann_get_num_input(ann), n_out = fann_get_num_output(ann);
    size_t rows = fann_length_train_data(data);
    size_t correct = 0;
    double *inputs = NULL, *outputs = NULL;
    json_t *result = NULL, *features = NULL, *output_hist = NULL, *vectors = NULL;
    json_t *metrics = NULL;
    int rc = 0;
    *out = NULL;

    if (fann_num_input_train_data(data) != n_in || fann_num_output_train_data(data) != n_out) {
        snprintf(msg, msg_size,
                 "the model has %zu inputs and %zu outputs but the data has %u and %u", n_in, n_out,
                 fann_num_input_train_data(data), fann_num_output_train_data(data));
        rc = EF_EMISMATCH;
        goto out;
    }
    if (rows == 0) {
        snprintf(msg, msg_size, "the reference data has no rows");
        rc = EF_EINVAL;
        goto out;
    }
    /* Sizes were bounded by refdata_load (or by the caller's own data). */
    inputs = malloc(rows * n_in * sizeof(*inputs));
    outputs = malloc(rows * n_out * sizeof(*outputs));
    vectors = json_array();
    if (!inputs || !outputs || !vectors) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t r = 0; r < rows; r++) {
        double *in = inputs + r * n_in, *o = outputs + r * n_out;
        if (!refdata_widen(data->input[r], in, n_in)) {
            snprintf(msg, msg_size, "row %zu of the reference data holds a non-finite input",
                     r + 1);
            rc = EF_EINVAL;
            goto out;
        }
        const fann_type *y = fann_run(ann, data->input[r]);
        if (!refdata_widen(y, o, n_out)) {
            snprintf(msg, msg_size, "the model gives a non-finite output on row %zu", r + 1);
            rc = EF_EINVAL;
            goto out;
        }
        if (argmax(y, n_out) == argmax(data->output[r], n_out))
            correct++;
        if (r < REFDATA_GOLDEN_ROWS) {
            json_t *v = json_pack("{s:o, s:o, s:f}", "input", ef_json_doubles(in, n_in), "output",
                                  ef_json_doubles(o, n_out), "tolerance", REFDATA_TOLERANCE);
            if (!v || json_array_append_new(vectors, v) != 0) {
                rc = EF_ENOMEM;
                goto out;
            }
        }
    }
    features = json_array();
    output_hist = json_array();
    if (!features || !output_hist) {
        rc = EF_ENOMEM;
        goto out;
    }
    if ((rc = refdata_histograms(features, inputs, rows, n_in, EF_HISTOGRAM_DEFAULT_BINS)) != 0 ||
        (rc = refdata_histograms(output_hist, outputs, rows, n_out, EF_HISTOGRAM_DEFAULT_BINS)) !=
            0)
        goto out;

    fann_reset_MSE(ann);
    double mse = (double)fann_test_data(ann, data);
    metrics = json_pack("{s:f, s:I}", "mse", mse, "reference_rows", (json_int_t)rows);
    if (!metrics) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (n_out > 1 &&
        json_object_set_new(metrics, "accuracy", json_real((double)correct / (double)rows)) != 0) {
        rc = EF_ENOMEM;
        goto out;
    }
    result = json_pack("{s:{s:O, s:O}, s:O, s:O}", "baseline", "features", features, "output",
                       output_hist, "test_vectors", vectors, "metrics", metrics);
    if (!result)
        rc = EF_ENOMEM;
out:
    if (rc == EF_ENOMEM)
        snprintf(msg, msg_size, "out of memory");
    json_decref(features);
    json_decref(output_hist);
    json_decref(vectors);
    json_decref(metrics);
    free(inputs);
    free(outputs);
    *out = rc == 0 ? result : NULL;
    return rc;
}

/* Only float network files may reach fann_create_from_file, which leaks its
 * error string on anything else. */
static int check_model_kind(const char *path, char *msg, size_t msg_size)
{
    char head[sizeof(FIXED_MAGIC)] = "";
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msg_size, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? EF_ENOENT : EF_EIO;
    }
    size_t n = fread(head, 1, sizeof(head) - 1, f);
    fclose(f);
    if (n == sizeof(head) - 1 && memcmp(head, FIXED_MAGIC, n) == 0) {
        snprintf(msg, msg_size,
                 "%s is a fixed-point (fann-fixed) network; --data needs the float model. "
                 "Compute baselines and test vectors from the float network and pass them "
                 "with --meta",
                 path);
        return EF_EUNSUPPORTED;
    }
    if (n != sizeof(head) - 1 || memcmp(head, FLOAT_MAGIC, n) != 0) {
        snprintf(msg, msg_size, "%s is not a FANN network file", path);
        return EF_EPARSE;
    }
    return 0;
}

/* Adds the computed metrics that meta does not state itself. */
static int merge_metrics(json_t *meta, json_t *computed, char *msg, size_t msg_size)
{
    json_t *given = json_object_get(meta, "metrics");
    const char *key;
    json_t *value;
    if (!given)
        return json_object_set(meta, "metrics", computed) == 0 ? 0 : EF_ENOMEM;
    if (!json_is_object(given)) {
        snprintf(msg, msg_size, "\"metrics\" in the meta file must be an object");
        return EF_EINVAL;
    }
    json_object_foreach(computed, key, value)
    {
        if (!json_object_get(given, key) && json_object_set(given, key, value) != 0)
            return EF_ENOMEM;
    }
    return 0;
}

int refdata_apply(const char *model_path, const char *data_path, json_t *meta, char *msg,
                  size_t msg_size)
{
    struct fann *ann = NULL;
    struct fann_train_data *data = NULL;
    json_t *computed = NULL;
    int rc = check_model_kind(model_path, msg, msg_size);
    if (rc != 0)
        goto out;
    quiet_fann();
    ann = fann_create_from_file(model_path);
    if (!ann) {
        snprintf(msg, msg_size, "%s is not a FANN float network file FANN can load", model_path);
        rc = EF_EPARSE;
        goto out;
    }
    if ((rc = refdata_load(data_path, &data, msg, msg_size)) != 0 ||
        (rc = refdata_compute(ann, data, &computed, msg, msg_size)) != 0)
        goto out;
    const char *const keys[] = {"baseline", "test_vectors"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (!json_object_get(meta, keys[i]) &&
            json_object_set(meta, keys[i], json_object_get(computed, keys[i])) != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    rc = merge_metrics(meta, json_object_get(computed, "metrics"), msg, msg_size);
out:
    json_decref(computed);
    if (data)
        fann_destroy_train(data);
    if (ann)
        fann_destroy(ann);
    return rc;
}

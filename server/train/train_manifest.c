/* train_manifest.c - baselines, golden vectors, metrics and lineage of a candidate. */
#include "server/train/train_manifest.h"
#include "server/cli/refdata.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

json_t *train_manifest_baseline(struct fann *ann, struct fann_train_data *train, size_t bins,
                                char *msg, size_t msg_size)
{
    size_t rows = fann_length_train_data(train);
    size_t n_in = fann_get_num_input(ann), n_out = fann_get_num_output(ann);
    double *in = NULL, *out = NULL;
    json_t *features = NULL, *output = NULL, *baseline = NULL;
    if (rows == 0 || bins < 1 || bins > TRAIN_MANIFEST_MAX_BINS) {
        snprintf(msg, msg_size, "a baseline needs rows and 1..%d bins", TRAIN_MANIFEST_MAX_BINS);
        return NULL;
    }
    in = malloc(rows * n_in * sizeof(*in));
    out = malloc(rows * n_out * sizeof(*out));
    features = json_array();
    output = json_array();
    if (!in || !out || !features || !output) {
        snprintf(msg, msg_size, "out of memory");
        goto out;
    }
    for (size_t r = 0; r < rows; r++) {
        if (!refdata_widen(train->input[r], in + r * n_in, n_in) ||
            !refdata_widen(fann_run(ann, train->input[r]), out + r * n_out, n_out)) {
            snprintf(msg, msg_size, "training row %zu gives a non-finite input or output", r + 1);
            goto out;
        }
    }
    if (refdata_histograms(features, in, rows, n_in, bins) != 0 ||
        refdata_histograms(output, out, rows, n_out, bins) != 0) {
        snprintf(msg, msg_size, "out of memory");
        goto out;
    }
    if (!(baseline = json_pack("{s:O, s:O}", "features", features, "output", output)))
        snprintf(msg, msg_size, "out of memory");
out:
    json_decref(features);
    json_decref(output);
    free(in);
    free(out);
    return baseline;
}

json_t *train_manifest_golden(struct fann *ann, struct fann_train_data *data, size_t k,
                              double tolerance)
{
    size_t rows = fann_length_train_data(data);
    size_t n_in = fann_get_num_input(ann), n_out = fann_get_num_output(ann);
    double *in = malloc(n_in * sizeof(*in)), *out = malloc(n_out * sizeof(*out));
    json_t *vectors = json_array();
    if (!in || !out || !vectors)
        goto fail;
    for (size_t r = 0; r < rows && r < k; r++) {
        if (!refdata_widen(data->input[r], in, n_in) ||
            !refdata_widen(fann_run(ann, data->input[r]), out, n_out))
            goto fail;
        json_t *v = json_pack("{s:o, s:o, s:f}", "input", ef_json_doubles(in, n_in), "output",
                              ef_json_doubles(out, n_out), "tolerance", tolerance);
        if (!v || json_array_append_new(vectors, v) != 0)
            goto fail;
    }
    free(in);
    free(out);
    return vectors;
fail:
    json_decref(vectors);
    free(in);
    free(out);
    return NULL;
}

json_t *train_manifest_lineage(const struct train_lineage *l)
{
    char dataset[24];
    snprintf(dataset, sizeof(dataset), "%lld", (long long)l->dataset_id);
    return json_pack("{s:o, s:o, s:o, s:o}", "parent_version",
                     l->parent_version > 0 ? json_integer(l->parent_version) : json_null(),
                     "dataset_id", l->dataset_id > 0 ? json_string(dataset) : json_null(),
                     "alert_id", l->alert_id > 0 ? json_integer(l->alert_id) : json_null(),
                     "trigger", l->trigger ? json_string(l->trigger) : json_null());
}

/* A new metrics object of src. */
static json_t *metrics_of(const struct train_manifest_src *src)
{
    json_t *per_class = NULL, *m = NULL;
    json_t *hold = train_eval_json(src->hold_eval, src->labels);
    if (hold)
        per_class = json_incref(json_object_get(hold, "per_class"));
    json_decref(hold);
    if (!per_class)
        return NULL;
    m = json_pack("{s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:o}", "holdout_accuracy",
                  src->hold_eval->accuracy, "holdout_mse", src->hold_eval->mse, "train_accuracy",
                  src->train_eval->accuracy, "train_mse", src->train_eval->mse, "train_rows",
                  (json_int_t)src->train_eval->rows, "holdout_rows",
                  (json_int_t)src->hold_eval->rows, "epochs", (json_int_t)src->epochs, "per_class",
                  per_class);
    return m;
}

/* True when names is an array of n strings. */
static bool names_fit(const json_t *names, size_t n)
{
    return json_is_array(names) && json_array_size(names) == n && n > 0;
}

int train_manifest_meta(const struct train_manifest_src *src, json_t **out, char *msg,
                        size_t msg_size)
{
    json_t *meta = NULL, *baseline = NULL, *golden = NULL, *metrics = NULL, *lineage = NULL;
    int rc = 0;
    *out = NULL;
    if (!(src->tolerance >= 0.0) || !isfinite(src->tolerance)) {
        snprintf(msg, msg_size, "the golden vectors' tolerance must be a number >= 0");
        return EF_EINVAL;
    }
    if (!(baseline = train_manifest_baseline(src->ann, src->train, src->bins, msg, msg_size))) {
        rc = EF_EINVAL;
        goto out;
    }
    golden = train_manifest_golden(src->ann, src->holdout, src->golden, src->tolerance);
    metrics = metrics_of(src);
    lineage = train_manifest_lineage(&src->lineage);
    meta = json_object();
    if (!golden || !metrics || !lineage || !meta ||
        json_object_set_new(meta, "backend", json_string("fann")) != 0 ||
        json_object_set(meta, "baseline", baseline) != 0 ||
        json_object_set(meta, "test_vectors", golden) != 0 ||
        json_object_set(meta, "metrics", metrics) != 0 ||
        json_object_set(meta, "lineage", lineage) != 0 ||
        (names_fit(src->features, fann_get_num_input(src->ann)) &&
         json_object_set_new(meta, "features", json_deep_copy(src->features)) != 0) ||
        (names_fit(src->labels, fann_get_num_output(src->ann)) &&
         json_object_set_new(meta, "labels", json_deep_copy(src->labels)) != 0)) {
        snprintf(msg, msg_size, "out of memory");
        rc = EF_ENOMEM;
        goto out;
    }
    *out = meta;
    meta = NULL;
out:
    json_decref(meta);
    json_decref(baseline);
    json_decref(golden);
    json_decref(metrics);
    json_decref(lineage);
    return rc;
}

/*
 * refdata.h - reference data to baselines, golden vectors and metrics.
 *
 * `edgefleet model push --data FILE` runs the model over reference data in
 * FANN's training format (a "PAIRS INPUTS OUTPUTS" line, then alternating
 * input and output lines) and derives what the manifest needs from it:
 *   baseline.features  one histogram per input column (common/histogram.h)
 *   baseline.output    one histogram per model output, over the model's outputs
 *   test_vectors       the first REFDATA_GOLDEN_ROWS rows: input -> the model's
 *                      own fann_run output, tolerance REFDATA_TOLERANCE
 *   metrics            mse (fann_test_data), accuracy (argmax agreement with
 *                      the expected outputs, when there is more than one
 *                      output) and reference_rows
 * Only the float FANN build is linked here, so only `fann` models qualify.
 */
#ifndef EF_CLI_REFDATA_H
#define EF_CLI_REFDATA_H

#include <floatfann.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define REFDATA_GOLDEN_ROWS 8
#define REFDATA_TOLERANCE   1e-4
#define REFDATA_MAX_VALUES  (1u << 24) /* numbers in one reference file (64 MiB as float) */

/*
 * Reads a file in FANN's training format after checking its header: inputs
 * and outputs 1..EF_MANIFEST_MAX_IO, at least one row, at most
 * REFDATA_MAX_VALUES numbers, every one finite, nothing after the declared
 * rows. On success *out is a new fann_train_data (fann_destroy_train).
 * EF_ENOENT, EF_EIO, EF_EPARSE, EF_ETOOBIG, EF_ENOMEM; the reason, with the
 * row at fault, is in msg.
 */
int refdata_load(const char *path, struct fann_train_data **out, char *msg, size_t msg_size);

/*
 * Runs ann over every row of data and returns a new object
 * {"baseline": {"features": [...], "output": [...]}, "test_vectors": [...],
 *  "metrics": {"mse", "accuracy"?, "reference_rows"}} in *out. ann and data
 * are borrowed (ann's MSE counters are reset). EF_EMISMATCH when the
 * model's input or output count differs from the data's, EF_ENOMEM.
 */
int refdata_compute(struct fann *ann, struct fann_train_data *data, json_t **out, char *msg,
                    size_t msg_size);

/* Copies n FANN values into doubles; false when one is not finite. Also
 * used by the trainer's manifest (server/train/train_manifest.c). */
bool refdata_widen(const fann_type *in, double *out, size_t n);

/* Appends to array one histogram of `bins` bins (ef_histogram_build) per
 * column of a row-major rows x cols matrix. 0 or EF_ENOMEM. */
int refdata_histograms(json_t *array, const double *matrix, size_t rows, size_t cols, size_t bins);

/*
 * Loads the model at model_path and the data at data_path, computes as
 * refdata_compute and merges the result into meta (borrowed, modified):
 * "baseline" and "test_vectors" are set unless meta already holds them, and
 * computed metrics are added to meta's "metrics" where it has no value of
 * its own. EF_EUNSUPPORTED for a fixed-point model file, EF_EPARSE for a
 * model FANN cannot read, and the codes of refdata_load/refdata_compute.
 */
int refdata_apply(const char *model_path, const char *data_path, json_t *meta, char *msg,
                  size_t msg_size);

#endif

/*
 * train_manifest.h - the meta a trained candidate is registered with.
 *
 * The meta object is what `POST /api/v1/models/{name}/versions` accepts
 * beside the artifact (server/manifest_build.h); the server adds the rest of
 * the manifest. The trainer computes from its own data:
 *   baseline.features  one histogram (common/histogram.h, `bins` bins) per
 *                      input column of the training set: the agent computes
 *                      its drift (PSI) against exactly these
 *   baseline.output    one histogram per output, over the candidate's own
 *                      outputs on the training set
 *   test_vectors       the first `golden` holdout rows: input -> the
 *                      candidate's own output, with `tolerance`
 *   metrics            holdout_accuracy, holdout_mse, train_accuracy,
 *                      train_mse, train_rows, holdout_rows, epochs, per_class
 *   lineage            {parent_version, dataset_id, alert_id, trigger}
 * features and labels are copied from the current version's manifest when
 * it has the same shape, so that a retrained version keeps its names.
 */
#ifndef EF_TRAIN_MANIFEST_H
#define EF_TRAIN_MANIFEST_H

#include "server/train/train_eval.h"

#include <floatfann.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TRAIN_MANIFEST_DEFAULT_GOLDEN    8
#define TRAIN_MANIFEST_MAX_GOLDEN        256
#define TRAIN_MANIFEST_DEFAULT_TOLERANCE 1e-4
#define TRAIN_MANIFEST_MAX_BINS          1024 /* what a manifest's histogram may hold */

/* Where a version came from; 0 or NULL where unknown. */
struct train_lineage {
    int64_t parent_version; /* the version it was compared with and replaces */
    int64_t dataset_id;     /* the server data set it was trained on */
    int64_t alert_id;       /* the alert whose retrain action caused it */
    const char *trigger;    /* why it was trained, free text */
};

/* What the meta is built from. Everything is borrowed. */
struct train_manifest_src {
    struct fann *ann;                    /* the candidate */
    struct fann_train_data *train;       /* its training set */
    struct fann_train_data *holdout;     /* its holdout set */
    const struct train_eval *train_eval; /* the candidate on train */
    const struct train_eval *hold_eval;  /* the candidate on holdout */
    unsigned epochs;                     /* epochs trained */
    size_t bins;                         /* histogram bins, 1..TRAIN_MANIFEST_MAX_BINS */
    size_t golden;                       /* golden vectors wanted (fewer if holdout is short) */
    double tolerance;                    /* of each golden vector, >= 0 */
    const json_t *features;              /* input names to copy, or NULL */
    const json_t *labels;                /* output names to copy, or NULL */
    struct train_lineage lineage;
};

/* A new {"features": [...], "output": [...]} baseline, or NULL with the
 * reason in msg (a non-finite value, out of memory). */
json_t *train_manifest_baseline(struct fann *ann, struct fann_train_data *train, size_t bins,
                                char *msg, size_t msg_size);

/* A new array of the first k rows of data as golden vectors
 * {"input", "output" (ann's own), "tolerance"}, or NULL when out of memory. */
json_t *train_manifest_golden(struct fann *ann, struct fann_train_data *data, size_t k,
                              double tolerance);

/* A new lineage object {parent_version, dataset_id, alert_id, trigger}
 * (dataset_id as its decimal string: the manifest's dataset_id is a string
 * identifier), or NULL when out of memory. */
json_t *train_manifest_lineage(const struct train_lineage *l);

/* Builds the whole meta into *out (new). EF_EINVAL with the reason in msg,
 * EF_ENOMEM. */
int train_manifest_meta(const struct train_manifest_src *src, json_t **out, char *msg,
                        size_t msg_size);

#endif

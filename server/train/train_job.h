/*
 * train_job.h - one run of edgefleet-train, from data to a registered version.
 *
 * Steps: read every --dataset file and the server's export of --dataset-id
 * (saved as OUT/dataset-ID.data), merge them, split train/holdout
 * (train_data.h), train (train_fit.h), score on both sets (train_eval.h),
 * write OUT/model.net and OUT/model-fixed.net; with register, fetch the
 * current version (OUT/current-vN.net), score it on the same holdout and
 * decide (train_register.h); build the meta (train_manifest.h), write
 * OUT/meta.json (the meta as uploaded: `edgefleet model push NAME
 * OUT/model.net --meta OUT/meta.json` registers it by hand) and
 * OUT/manifest.json (the meta, the evaluation, the decision and the
 * training record), then upload and start the rollout. The decision is
 * printed as one line on stdout either way.
 */
#ifndef EF_TRAIN_JOB_H
#define EF_TRAIN_JOB_H

#include "server/train/train_fit.h"
#include "server/train/train_manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses of edgefleet-train. */
#define TRAIN_EXIT_OK    0 /* trained (and registered, with register) */
#define TRAIN_EXIT_FAIL  1 /* an error; one line on stderr says which */
#define TRAIN_EXIT_USAGE 2 /* bad command line */
#define TRAIN_EXIT_NOT_BETTER                                                                      \
    3 /* trained, but not better than the current version: not registered */

#define TRAIN_DEFAULT_HOLDOUT 0.2
#define TRAIN_DEFAULT_SEED    1

/* What to do. Strings are borrowed. */
struct train_job {
    const char *const *datasets; /* files in FANN training format */
    size_t n_datasets;
    const char *data_server; /* server to export dataset_id from */
    int64_t dataset_id;      /* server data set, 0 for none */
    const char *out_dir;     /* where the outputs go (created) */
    const char *model;       /* model name, NULL without a server */
    const char *token;       /* API token, or NULL */
    struct train_fit_opts fit;
    double holdout;            /* holdout share, 0 < x < 1 */
    uint64_t seed;             /* of the split (fit.seed is of the weights) */
    size_t golden;             /* golden vectors */
    size_t bins;               /* baseline histogram bins */
    double tolerance;          /* of each golden vector */
    bool do_register;          /* compare with the current version and upload when better */
    const char *server;        /* server to register with */
    double margin;             /* absolute accuracy the candidate must gain */
    int64_t parent_version;    /* the version to compare with; 0: the latest */
    int64_t alert_id;          /* lineage.alert_id, 0 for none */
    const char *reason;        /* lineage.trigger, or NULL */
    const char *rollout_rings; /* start a production rollout over these, or NULL */
    const char *shadow_rings;  /* start a shadow rollout over these, or NULL */
};

/* Runs job; returns a TRAIN_EXIT_* status, having printed what happened. */
int train_job_run(const struct train_job *job);

#endif

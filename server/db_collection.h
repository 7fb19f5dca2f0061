/*
 * db_collection.h - data collection: per-model (optionally per-ring)
 * collection policies, the datasets they open and the samples devices upload
 * into them (implemented in db_collection.c; see db.h for the locking rules,
 * docs/monitoring.md "Data collection and datasets" for the contract).
 *
 * Collection is off by default. A policy is keyed by model and ring (ring 0:
 * model-wide); a ring's policy overrides the model-wide one for the devices
 * in that ring. Enabling a policy the first time opens a dataset for it; the
 * policy keeps that dataset afterwards, disabled or enabled again.
 *
 * Functions returning JSON give new references; their times are RFC 3339
 * strings (UTC, milliseconds), as the REST API shows them.
 */
#ifndef EF_DB_COLLECTION_H
#define EF_DB_COLLECTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DB_COLLECTION_RATE_DEFAULT 0.1     /* sample_rate when none is given */
#define DB_COLLECTION_MAX_DEFAULT  10000   /* max_samples when none is given */
#define DB_COLLECTION_MAX_LIMIT    1000000 /* the largest max_samples */

/* What db_collection_set changes. */
struct db_collection_change {
    const char *ring;    /* ring name, or NULL: the model-wide policy */
    bool enabled;        /* collect or not */
    bool set_rate;       /* false keeps the current rate (default on create) */
    double sample_rate;  /* share of inferences sampled, 0 < r <= 1 */
    bool set_max;        /* false keeps the current cap (default on create) */
    int64_t max_samples; /* samples stored at most, 1..DB_COLLECTION_MAX_LIMIT */
};

/* Creates or updates the policy of model for c->ring; enabling a policy that
 * has no dataset yet opens one. *out (may be NULL) receives the policy as a
 * new object {model, ring (name or null), enabled, sample_rate, max_samples,
 * dataset_id (or null), updated_at}. EF_ENOENT (model or ring unknown),
 * EF_EINVAL (rate or cap out of range), EF_EDB, EF_ENOMEM. */
int db_collection_set(struct db *db, const char *model, const struct db_collection_change *c,
                      int64_t now, json_t **out);

/* The policies of model, model-wide first then by ring position, as a new
 * array of policy objects (as db_collection_set). EF_ENOENT (model unknown),
 * EF_EDB, EF_ENOMEM. */
int db_collection_list(struct db *db, const char *model, json_t **out);

/* The policy that applies to an active device now: the policy of its ring
 * for the model of its production slot, else that model's model-wide one. */
struct db_device_policy {
    bool has_model;      /* the device's production slot holds a model */
    char model[65];      /* its name ("" without) */
    int64_t version;     /* its version (0 without) */
    int64_t model_id;    /* models row (0 without) */
    int64_t ring_id;     /* the device's ring now */
    bool found;          /* a policy applies */
    bool enabled;        /* that policy is enabled */
    double sample_rate;  /* its rate (0 when none) */
    int64_t max_samples; /* its cap (0 when none) */
    int64_t dataset_id;  /* its dataset (0 when none) */
    int input_size;      /* the production version's manifest input_size (0 without) */
    int output_size;     /* and output_size (0 without) */
};

/* Fills *out for device_id. EF_ENOENT (device unknown or decommissioned),
 * EF_EDB. */
int db_collection_for_device(struct db *db, const char *device_id, struct db_device_policy *out);

/* The input and output sizes that model@version's manifest declares.
 * EF_ENOENT (no such version), EF_EDB. */
int db_collection_shape(struct db *db, const char *model, int64_t version, size_t *input_size,
                        size_t *output_size);

/* The dataset of model's most recently enabled policy (the model-wide one
 * preferred when it is enabled), else of its most recently updated policy
 * with a dataset; *dataset_id = 0 when the model has none (or is unknown).
 * EF_EDB. */
int db_dataset_current(struct db *db, const char *model, int64_t *dataset_id);

/* One uploaded sample: input_len numbers and a label (-1: none). */
struct db_sample {
    const double *input; /* input_len values, borrowed */
    size_t input_len;    /* its length */
    int label;           /* class index, or -1 when unlabelled */
};

/* Stores up to n samples from device_id (model version version) into
 * dataset_id, in one transaction, stopping at the dataset's policy's
 * max_samples: *accepted receives how many were stored and *full whether the
 * dataset holds max_samples now. EF_ENOENT (dataset unknown), EF_EDB. */
int db_samples_insert(struct db *db, int64_t dataset_id, const char *device_id, int64_t version,
                      const struct db_sample *samples, size_t n, int64_t now, size_t *accepted,
                      bool *full);

/* The datasets (model NULL: all), newest first, as a new array of {id,
 * model, ring (name or null), created_at, samples, labelled}. An unknown model
 * gives an empty array. EF_EDB, EF_ENOMEM. */
int db_datasets_list(struct db *db, const char *model, json_t **out);

/* One dataset as db_datasets_list shows it, plus input_size and output_size
 * (of the newest version of its model; 0 when it has none). EF_ENOENT,
 * EF_EDB, EF_ENOMEM. */
int db_dataset_get(struct db *db, int64_t dataset_id, json_t **out);

/* Exports the labelled samples of dataset_id whose input has input_size
 * numbers and whose label is below classes: calls head(n, arg) once with how
 * many there are, then row(input, input_len, label, arg) for each in id
 * order. Either callback returns 0 or an error that stops and is returned.
 * The samples are read in pages, the lock released in between; samples
 * stored after the export began are left out. EF_ENOENT (dataset), EF_EDB,
 * EF_ENOMEM. */
int db_dataset_export(struct db *db, int64_t dataset_id, size_t input_size, int classes,
                      int (*head)(int64_t n, void *arg),
                      int (*row)(const double *input, size_t input_len, int label, void *arg),
                      void *arg);

#endif

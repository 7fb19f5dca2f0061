/*
 * samples_parse.h - one batch of samples a device uploads to
 * POST /api/v1/devices/{id}/samples, parsed and checked
 * (docs/monitoring.md, "Data collection and datasets").
 *
 * Body, at most SAMPLES_MAX_BYTES:
 *   {"model": "NAME@VERSION", "dataset_id": N,
 *    "samples": [{"input": [numbers], "label": class index | null}, ...]}
 * with 1..SAMPLES_MAX_COUNT samples; "label" may be absent (null). Unknown or
 * duplicate keys, wrong types, empty or oversized inputs, negative labels and
 * non-finite numbers are refused. Whether the inputs and labels fit the model
 * is checked afterwards, with samples_check, once the model is known.
 */
#ifndef EF_SAMPLES_PARSE_H
#define EF_SAMPLES_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLES_MAX_BYTES  (1u << 20) /* bytes of one upload */
#define SAMPLES_MAX_COUNT  1000       /* samples in one upload */
#define SAMPLES_MAX_INPUT  65536      /* numbers in one input (EF_MANIFEST_MAX_IO) */
#define SAMPLES_MAX_LABEL  65535      /* the largest class index (outputs - 1) */
#define SAMPLES_MODEL_SIZE 65         /* a model name (ef_name_valid) and a NUL */

/* One sample: its input is values[offset .. offset + len - 1] of its batch. */
struct samples_item {
    size_t offset; /* first value in the batch's values */
    size_t len;    /* numbers in the input, >= 1 */
    int label;     /* class index, or -1 when unlabelled */
};

/* A parsed upload; owns items and values (samples_batch_clear). */
struct samples_batch {
    char model[SAMPLES_MODEL_SIZE]; /* model name */
    int64_t version;                /* model version, >= 1 */
    int64_t dataset_id;             /* the dataset the device was told to fill, >= 1 */
    size_t count;                   /* samples, 1..SAMPLES_MAX_COUNT */
    struct samples_item *items;     /* count of them */
    double *values;                 /* every input's numbers, finite, in order */
    size_t labelled;                /* samples with a label */
};

/* Parses len bytes (not necessarily NUL-terminated) into *out. EF_ETOOBIG
 * (over SAMPLES_MAX_BYTES or SAMPLES_MAX_COUNT samples), EF_EPARSE (not
 * JSON, duplicate keys), EF_EINVAL (missing, unknown, mistyped or
 * out-of-range fields), EF_ENOMEM. *bad_index (may be NULL) receives the
 * index of the sample an EF_EINVAL is about, -1 when it is about the rest
 * of the body; msg (may be NULL) says what is wrong. *out is cleared on
 * failure and must be released with samples_batch_clear on success. */
int samples_parse(const char *body, size_t len, struct samples_batch *out, long *bad_index,
                  char *msg, size_t msg_size);

/* Checks a parsed batch against its model: every input has input_size
 * numbers and every label is below output_size, or, for a single-output
 * model, is 0 or 1. EF_EINVAL with msg saying which sample is wrong. */
int samples_check(const struct samples_batch *b, size_t input_size, size_t output_size, char *msg,
                  size_t msg_size);

/* Frees what a batch owns and zeroes it; accepts a zeroed batch. */
void samples_batch_clear(struct samples_batch *b);

#endif

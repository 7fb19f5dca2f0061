/* train_data.c - loading, merging and splitting the trainer's data. */
#include "server/train/train_data.h"
#include "common/ef_error.h"
#include "server/cli/refdata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int train_data_load(const char *path, struct fann_train_data **out, char *msg, size_t msg_size)
{
    return refdata_load(path, out, msg, msg_size);
}

/* A new set of the given rows of data (indices ascending). */
static struct fann_train_data *subset(struct fann_train_data *data, const size_t *rows, size_t n)
{
    unsigned n_in = fann_num_input_train_data(data), n_out = fann_num_output_train_data(data);
    struct fann_train_data *s = fann_create_train((unsigned)n, n_in, n_out);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->input[i], data->input[rows[i]], n_in * sizeof(fann_type));
        memcpy(s->output[i], data->output[rows[i]], n_out * sizeof(fann_type));
    }
    return s;
}

int train_data_append(struct fann_train_data **acc, struct fann_train_data *more, const char *what,
                      char *msg, size_t msg_size)
{
    struct fann_train_data *merged = NULL;
    if (!*acc) {
        merged = fann_duplicate_train_data(more);
    } else {
        unsigned in_a = fann_num_input_train_data(*acc), out_a = fann_num_output_train_data(*acc);
        unsigned in_b = fann_num_input_train_data(more), out_b = fann_num_output_train_data(more);
        if (in_a != in_b || out_a != out_b) {
            snprintf(msg, msg_size,
                     "%s has %u inputs and %u outputs but the data before it has %u and %u", what,
                     in_b, out_b, in_a, out_a);
            return EF_EMISMATCH;
        }
        merged = fann_merge_train_data(*acc, more);
    }
    if (!merged) {
        snprintf(msg, msg_size, "out of memory merging %s", what);
        return EF_ENOMEM;
    }
    if (*acc)
        fann_destroy_train(*acc);
    *acc = merged;
    return 0;
}

uint64_t train_data_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int train_data_split(struct fann_train_data *data, double share, uint64_t seed,
                     struct fann_train_data **train, struct fann_train_data **holdout, char *msg,
                     size_t msg_size)
{
    size_t rows = fann_length_train_data(data), *idx = NULL;
    struct fann_train_data *t = NULL, *h = NULL;
    uint64_t state = seed;
    int rc = 0;
    *train = *holdout = NULL;
    if (!(share > 0.0 && share < 1.0)) {
        snprintf(msg, msg_size, "the holdout share must be above 0 and below 1");
        return EF_EINVAL;
    }
    if (rows < 2) {
        snprintf(msg, msg_size, "the data has %zu row%s; a split needs at least 2", rows,
                 rows == 1 ? "" : "s");
        return EF_EINVAL;
    }
    size_t n_hold = (size_t)llround(share * (double)rows);
    if (n_hold < 1)
        n_hold = 1;
    if (n_hold > rows - 1)
        n_hold = rows - 1;
    if (!(idx = malloc(rows * sizeof(*idx)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < rows; i++)
        idx[i] = i;
    /* Fisher-Yates; the modulo bias of a 64-bit draw over row counts is nil. */
    for (size_t i = rows - 1; i > 0; i--) {
        size_t j = (size_t)(train_data_random(&state) % (uint64_t)(i + 1));
        size_t tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
    qsort(idx, n_hold, sizeof(*idx), cmp_size);
    qsort(idx + n_hold, rows - n_hold, sizeof(*idx), cmp_size);
    if (!(h = subset(data, idx, n_hold)) || !(t = subset(data, idx + n_hold, rows - n_hold))) {
        rc = EF_ENOMEM;
        goto out;
    }
    *train = t;
    *holdout = h;
    t = h = NULL;
out:
    if (rc == EF_ENOMEM)
        snprintf(msg, msg_size, "out of memory splitting %zu rows", rows);
    if (t)
        fann_destroy_train(t);
    if (h)
        fann_destroy_train(h);
    free(idx);
    return rc;
}

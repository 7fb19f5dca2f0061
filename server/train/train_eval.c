/* train_eval.c - accuracy, per-class recall and MSE of a network on a data set. */
#include "server/train/train_eval.h"
#include "common/ef_error.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t train_eval_class(const fann_type *v, size_t n)
{
    if (n == 1)
        return v[0] >= 0.5f ? 1 : 0;
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int train_eval_run(struct fann *ann, struct fann_train_data *data, struct train_eval *ev, char *msg,
                   size_t msg_size)
{
    size_t n_in = fann_get_num_input(ann), n_out = fann_get_num_output(ann);
    size_t rows = fann_length_train_data(data);
    double sq = 0.0;
    int rc = 0;
    memset(ev, 0, sizeof(*ev));
    if (fann_num_input_train_data(data) != n_in || fann_num_output_train_data(data) != n_out) {
        snprintf(msg, msg_size,
                 "the network has %zu inputs and %zu outputs but the data has %u and %u", n_in,
                 n_out, fann_num_input_train_data(data), fann_num_output_train_data(data));
        return EF_EMISMATCH;
    }
    if (rows == 0) {
        snprintf(msg, msg_size, "no rows to evaluate on");
        return EF_EINVAL;
    }
    ev->classes = n_out == 1 ? 2 : n_out;
    ev->class_rows = calloc(ev->classes, sizeof(*ev->class_rows));
    ev->class_correct = calloc(ev->classes, sizeof(*ev->class_correct));
    if (!ev->class_rows || !ev->class_correct) {
        snprintf(msg, msg_size, "out of memory");
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t r = 0; r < rows; r++) {
        const fann_type *y = fann_run(ann, data->input[r]);
        for (size_t j = 0; j < n_out; j++) {
            double d = (double)y[j] - (double)data->output[r][j];
            if (!isfinite((double)y[j])) {
                snprintf(msg, msg_size, "the network gives a non-finite output on row %zu", r + 1);
                rc = EF_EINVAL;
                goto out;
            }
            sq += d * d;
        }
        size_t want = train_eval_class(data->output[r], n_out);
        ev->class_rows[want]++;
        if (train_eval_class(y, n_out) == want) {
            ev->class_correct[want]++;
            ev->correct++;
        }
    }
    ev->rows = rows;
    ev->accuracy = (double)ev->correct / (double)rows;
    ev->mse = sq / ((double)rows * (double)n_out);
out:
    if (rc != 0)
        train_eval_release(ev);
    return rc;
}

json_t *train_eval_json(const struct train_eval *ev, const json_t *labels)
{
    json_t *per_class = json_array(), *doc = NULL;
    bool named = json_is_array(labels) && json_array_size(labels) == ev->classes;
    if (!per_class)
        return NULL;
    for (size_t c = 0; c < ev->classes; c++) {
        json_t *acc = ev->class_rows[c]
                          ? json_real((double)ev->class_correct[c] / (double)ev->class_rows[c])
                          : json_null();
        json_t *row = json_pack("{s:I, s:I, s:o}", "class", (json_int_t)c, "rows",
                                (json_int_t)ev->class_rows[c], "accuracy", acc);
        if (row && named && json_object_set(row, "label", json_array_get(labels, c)) != 0) {
            json_decref(row);
            row = NULL;
        }
        if (!row || json_array_append_new(per_class, row) != 0) {
            json_decref(per_class);
            return NULL;
        }
    }
    doc = json_pack("{s:I, s:f, s:f, s:o}", "rows", (json_int_t)ev->rows, "accuracy", ev->accuracy,
                    "mse", ev->mse, "per_class", per_class);
    return doc;
}

void train_eval_release(struct train_eval *ev)
{
    if (!ev)
        return;
    free(ev->class_rows);
    free(ev->class_correct);
    memset(ev, 0, sizeof(*ev));
}

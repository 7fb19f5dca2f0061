/*
 * train_eval.h - how well a float FANN network answers a data set.
 *
 * accuracy  share of rows whose predicted class is the expected one: the
 *           argmax of the outputs against the argmax of the row's expected
 *           outputs (first maximum wins); for a single output, the same side
 *           of 0.5 (as the agent scores shadow agreement, docs/monitoring.md)
 * mse       mean over rows and outputs of (output - expected)^2
 * per class for each expected class c: rows of class c and the share of them
 *           predicted as c (recall)
 * The candidate and the current version are scored by the same function on
 * the same holdout rows, which is what makes them comparable.
 */
#ifndef EF_TRAIN_EVAL_H
#define EF_TRAIN_EVAL_H

#include <floatfann.h>
#include <jansson.h>
#include <stddef.h>

/* One network's score on one data set. */
struct train_eval {
    size_t rows;           /* rows scored */
    size_t correct;        /* rows whose predicted class was the expected one */
    double accuracy;       /* correct / rows, 0..1 */
    double mse;            /* mean squared error per output value */
    size_t classes;        /* entries of class_rows and class_correct: outputs, or 2 for one */
    size_t *class_rows;    /* rows per expected class (owned) */
    size_t *class_correct; /* of them, rows predicted right (owned) */
};

/* The class a vector of n outputs stands for (see above). */
size_t train_eval_class(const fann_type *v, size_t n);

/*
 * Runs ann over every row of data (both borrowed) and fills *ev (release
 * with train_eval_release). EF_EMISMATCH when the network's input or output
 * count differs from the data's (reason in msg), EF_EINVAL for an empty set
 * or a non-finite output, EF_ENOMEM.
 */
int train_eval_run(struct fann *ann, struct fann_train_data *data, struct train_eval *ev, char *msg,
                   size_t msg_size);

/* A new object {"rows", "accuracy", "mse", "per_class": [{"class", "label"?,
 * "rows", "accuracy" (null without rows)}]}; labels (borrowed, may be NULL)
 * names the classes when it holds one string per class. NULL when out of
 * memory. */
json_t *train_eval_json(const struct train_eval *ev, const json_t *labels);

/* Frees what *ev owns and clears it; accepts a cleared struct. */
void train_eval_release(struct train_eval *ev);

#endif

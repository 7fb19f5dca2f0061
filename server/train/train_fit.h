/*
 * train_fit.h - training the candidate: a fully connected 3-layer MLP.
 *
 * inputs -> hidden (symmetric sigmoid) -> outputs (sigmoid), FANN's float
 * build. Weights are drawn by fann_init_weights (Widrow-Nguyen over the
 * training set) after srand(seed), so a seed gives the same network on the
 * same data (FANN seeds rand() from /dev/urandom when it creates a network,
 * hence the order).
 * Training runs epoch by epoch (fann_train_epoch) until max_epochs or until
 * the epoch's MSE is at or below target_mse. RPROP, FANN's default, adapts
 * its own step sizes; learning_rate applies to the other algorithms.
 * Files are written through /dev/fd/N of a descriptor opened here, because
 * Debian's libfann 2.2.0 overflows a 128-byte buffer when it formats an
 * error message quoting a long file name (see server/manifest_build.c).
 */
#ifndef EF_TRAIN_FIT_H
#define EF_TRAIN_FIT_H

#include <floatfann.h>
#include <stdbool.h>
#include <stddef.h>

#define TRAIN_FIT_DEFAULT_HIDDEN 10
#define TRAIN_FIT_DEFAULT_EPOCHS 200
#define TRAIN_FIT_MAX_HIDDEN     4096
#define TRAIN_FIT_MAX_EPOCHS     1000000

/* How to train. */
struct train_fit_opts {
    unsigned hidden;       /* neurons in the hidden layer, >= 1 */
    unsigned max_epochs;   /* epochs at most, >= 1 */
    double target_mse;     /* stop when an epoch's MSE is at or below it; 0: never */
    double learning_rate;  /* for batch, incremental and quickprop; <= 0: FANN's 0.7 */
    const char *algorithm; /* "rprop" (default when NULL), "quickprop", "batch", "incremental" */
    unsigned seed;         /* for the initial weights */
    unsigned report_every; /* log a line every so many epochs; 0: never */
};

/* What training did. */
struct train_fit_result {
    unsigned epochs; /* epochs run */
    double mse;      /* FANN's MSE of the last epoch */
};

/* True when name is one of the algorithms above. */
bool train_fit_algorithm_valid(const char *name);

/* Trains a new network on data (borrowed) into *out (fann_destroy).
 * EF_EINVAL for bad options (reason in msg), EF_ENOMEM. */
int train_fit(struct fann_train_data *data, const struct train_fit_opts *opts, struct fann **out,
              struct train_fit_result *res, char *msg, size_t msg_size);

/* Saves ann at path, float (fann_save) or fixed-point (fann_save_to_fixed,
 * *decimal_point receives the position of its decimal point; may be NULL),
 * through a temporary file renamed into place. EF_EIO with the reason in
 * msg. */
int train_fit_save(struct fann *ann, const char *path, bool fixed, int *decimal_point, char *msg,
                   size_t msg_size);

/* Loads a float network file into *out (fann_destroy). EF_EPARSE when FANN
 * cannot load it or it is not a float network, EF_ENOENT, EF_EIO. */
int train_fit_load(const char *path, struct fann **out, char *msg, size_t msg_size);

#endif

/*
 * train_data.h - the trainer's data: FANN training files, merged, and split
 * into a training set and a holdout set.
 *
 * Every source is a file in FANN's training format ("PAIRS INPUTS OUTPUTS",
 * then alternating input and output lines): a base set on disk, or a data
 * set the server exported (GET /api/v1/datasets/{id}/export), which the
 * trainer saves first. Files are read by refdata_load (server/cli/refdata.h),
 * which checks the header, the counts and every number and names the row at
 * fault. The split is a Fisher-Yates shuffle of the row indices driven by a
 * seeded splitmix64 generator (not rand(), so the split is the same on every
 * platform): the first round(share * rows) shuffled indices are the holdout,
 * the rest the training set, each kept in file order. Same rows and seed,
 * same split.
 */
#ifndef EF_TRAIN_DATA_H
#define EF_TRAIN_DATA_H

#include <floatfann.h>
#include <stddef.h>
#include <stdint.h>

/* Reads one FANN training file. On success *out is new (fann_destroy_train).
 * EF_ENOENT, EF_EIO, EF_EPARSE (malformed, with the row at fault in msg),
 * EF_ETOOBIG, EF_ENOMEM. */
int train_data_load(const char *path, struct fann_train_data **out, char *msg, size_t msg_size);

/*
 * Appends the rows of more (borrowed) to *acc: when *acc is NULL it becomes
 * a new copy of more, otherwise it is replaced by a new set holding its rows
 * then more's (the old one is destroyed). what names more in messages.
 * EF_EMISMATCH when the input or output counts differ, EF_ENOMEM.
 */
int train_data_append(struct fann_train_data **acc, struct fann_train_data *more, const char *what,
                      char *msg, size_t msg_size);

/*
 * Splits data (borrowed) into *train and *holdout (both new). share is the
 * holdout's share of the rows, 0 < share < 1; the holdout gets
 * round(share * rows) rows, at least 1, and the training set at least 1.
 * EF_EINVAL when share is out of range or data has fewer than 2 rows,
 * EF_ENOMEM.
 */
int train_data_split(struct fann_train_data *data, double share, uint64_t seed,
                     struct fann_train_data **train, struct fann_train_data **holdout, char *msg,
                     size_t msg_size);

/* The next value of a splitmix64 generator whose state is *state. */
uint64_t train_data_random(uint64_t *state);

#endif

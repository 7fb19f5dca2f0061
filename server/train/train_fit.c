/* train_fit.c - training, saving and loading the trainer's FANN networks. */
#include "server/train/train_fit.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLOAT_MAGIC "FANN_FLO" /* how float network files begin */

bool train_fit_algorithm_valid(const char *name)
{
    return strcmp(name, "rprop") == 0 || strcmp(name, "quickprop") == 0 ||
           strcmp(name, "batch") == 0 || strcmp(name, "incremental") == 0;
}

static enum fann_train_enum algorithm_of(const char *name)
{
    if (!name || strcmp(name, "rprop") == 0)
        return FANN_TRAIN_RPROP;
    if (strcmp(name, "quickprop") == 0)
        return FANN_TRAIN_QUICKPROP;
    if (strcmp(name, "batch") == 0)
        return FANN_TRAIN_BATCH;
    return FANN_TRAIN_INCREMENTAL;
}

int train_fit(struct fann_train_data *data, const struct train_fit_opts *opts, struct fann **out,
              struct train_fit_result *res, char *msg, size_t msg_size)
{
    struct fann *ann = NULL;
    *out = NULL;
    memset(res, 0, sizeof(*res));
    if (opts->hidden < 1 || opts->hidden > TRAIN_FIT_MAX_HIDDEN || opts->max_epochs < 1 ||
        opts->max_epochs > TRAIN_FIT_MAX_EPOCHS || !(opts->target_mse >= 0.0) ||
        (opts->algorithm && !train_fit_algorithm_valid(opts->algorithm))) {
        snprintf(msg, msg_size, "invalid training options");
        return EF_EINVAL;
    }
    /* FANN's error log would print on stderr; the trainer reports itself. */
    fann_set_error_log(NULL, NULL);
    ann = fann_create_standard(3, fann_num_input_train_data(data), opts->hidden,
                               fann_num_output_train_data(data));
    if (!ann) {
        snprintf(msg, msg_size, "out of memory creating the network");
        return EF_ENOMEM;
    }
    fann_set_activation_function_hidden(ann, FANN_SIGMOID_SYMMETRIC);
    fann_set_activation_function_output(ann, FANN_SIGMOID);
    fann_set_training_algorithm(ann, algorithm_of(opts->algorithm));
    if (opts->learning_rate > 0.0)
        fann_set_learning_rate(ann, (float)opts->learning_rate);
    /* fann_create_standard seeds rand() from /dev/urandom itself, so the
     * seed is set after it; fann_init_weights then draws every weight. */
    srand(opts->seed);
    fann_init_weights(ann, data);
    for (unsigned e = 1; e <= opts->max_epochs; e++) {
        res->mse = (double)fann_train_epoch(ann, data);
        res->epochs = e;
        if (opts->report_every && (e % opts->report_every == 0 || e == opts->max_epochs))
            ef_info("train_epoch", "epoch=%u mse=%.6f", e, res->mse);
        if (opts->target_mse > 0.0 && res->mse <= opts->target_mse)
            break;
    }
    *out = ann;
    return 0;
}

int train_fit_save(struct fann *ann, const char *path, bool fixed, int *decimal_point, char *msg,
                   size_t msg_size)
{
    char fd_path[24], *tmp = NULL;
    int fd = -1, rc = 0;
    size_t len = strlen(path) + sizeof(".tmp");
    if (!(tmp = malloc(len))) {
        snprintf(msg, msg_size, "out of memory");
        return EF_ENOMEM;
    }
    snprintf(tmp, len, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(msg, msg_size, "cannot create %s: %s", tmp, strerror(errno));
        rc = EF_EIO;
        goto out;
    }
    snprintf(fd_path, sizeof(fd_path), "/dev/fd/%d", fd);
    if (fixed) {
        /* Returns the decimal point's position, -1 on failure. */
        int dp = fann_save_to_fixed(ann, fd_path);
        if (dp < 0)
            rc = EF_EIO;
        else if (decimal_point)
            *decimal_point = dp;
    } else if (fann_save(ann, fd_path) != 0) {
        rc = EF_EIO;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = EF_EIO;
    if (close(fd) != 0 && rc == 0)
        rc = EF_EIO;
    fd = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = EF_EIO;
    if (rc != 0) {
        snprintf(msg, msg_size, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    return rc;
}

int train_fit_load(const char *path, struct fann **out, char *msg, size_t msg_size)
{
    char fd_path[24], head[sizeof(FLOAT_MAGIC)] = "";
    int rc = 0;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msg_size, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? EF_ENOENT : EF_EIO;
    }
    /* Only float networks may reach fann_create_from_file, which leaks its
     * error string on anything else. */
    ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
    if (n != (ssize_t)sizeof(head) - 1 || memcmp(head, FLOAT_MAGIC, sizeof(head) - 1) != 0) {
        snprintf(msg, msg_size, "%s is not a float FANN network file", path);
        rc = EF_EPARSE;
        goto out;
    }
    fann_set_error_log(NULL, NULL);
    snprintf(fd_path, sizeof(fd_path), "/dev/fd/%d", fd);
    if (!(*out = fann_create_from_file(fd_path))) {
        snprintf(msg, msg_size, "%s does not load as a float FANN network", path);
        rc = EF_EPARSE;
    }
out:
    close(fd);
    return rc;
}

/*
 * main.c - edgefleet-train: the command line and its environment defaults;
 * the run itself is train_job.c.
 */
#include "common/ef_error.h"
#include "common/histogram.h"
#include "common/log.h"
#include "common/topic.h"
#include "server/cli/args.h"
#include "server/train/train_job.h"
#include "server/train/train_register.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: edgefleet-train (--dataset FILE ... | --dataset-id ID --from-server URL --model NAME)\n"
    "                       --out DIR [options] [--register --model NAME [--server URL]]\n"
    "\n"
    "Trains a FANN MLP on FANN training files and/or a data set exported by the server,\n"
    "evaluates it on a deterministic holdout, writes OUT/model.net (float), OUT/model-fixed.net\n"
    "(fixed-point), OUT/meta.json (the meta to register it with) and OUT/manifest.json (meta,\n"
    "evaluation, decision, training record), and with --register registers it as the next\n"
    "version of --model only if its holdout accuracy beats the current version's by --margin.\n"
    "\n"
    "Data:\n"
    "  --dataset FILE        FANN training format (\"ROWS INPUTS OUTPUTS\", then input and\n"
    "                        output lines); repeatable, files are merged in order\n"
    "  --dataset-id ID       a server data set (GET /api/v1/datasets/ID/export), saved as\n"
    "                        OUT/dataset-ID.data and merged after the files      [EF_DATASET_ID]\n"
    "  --from-server URL     the server to export it from                        [EF_SERVER_URL]\n"
    "  --holdout SHARE       share of the rows held out for evaluation, 0..1 (0.2)\n"
    "  --seed N              seed of the split and of the initial weights (1); same data and\n"
    "                        seed, same split and same network\n"
    "Training (3 layers: inputs, --hidden symmetric sigmoid, outputs sigmoid):\n"
    "  --hidden N            hidden neurons (10)\n"
    "  --epochs N            epochs at most (200)\n"
    "  --target-mse X        stop early when an epoch's MSE is at or below X (0: never)\n"
    "  --algorithm A         rprop (default), quickprop, batch or incremental\n"
    "  --learning-rate X     for quickprop, batch and incremental (FANN's 0.7)\n"
    "Manifest:\n"
    "  --golden K            golden vectors: the first K holdout rows (8)\n"
    "  --tolerance X         of each golden vector (0.0001)\n"
    "  --bins N              bins of each baseline histogram (10)\n"
    "Registration:\n"
    "  --out DIR             where the outputs go (created); required, except that a run\n"
    "                        with EF_ALERT_ID set defaults to ./retrain-MODEL-alert-ID\n"
    "  --register            compare with the current version on the holdout and upload the\n"
    "                        candidate only if it is better\n"
    "  --model NAME          the model                                          [EF_MODEL]\n"
    "  --server URL          the server to register with (default: --from-server, then\n"
    "                        EDGEFLEET_SERVER, then EF_SERVER_URL)\n"
    "  --token T             API token, operator role to register         [EDGEFLEET_TOKEN]\n"
    "  --margin X            absolute holdout accuracy the candidate must gain (0.01)\n"
    "  --parent-version N    compare with version N instead of the latest\n"
    "  --alert-id N          lineage.alert_id: the alert that caused the run      [EF_ALERT_ID]\n"
    "  --reason TEXT         lineage.trigger (default \"alert N\" with an alert)   [EF_REASON]\n"
    "  --rollout-rings A,B   after registering, create and start a rollout over these rings\n"
    "  --shadow-rings A,B    ... or a shadow rollout (slot \"shadow\") over these rings\n"
    "  --log-level L         debug, info (default), warn or error (structured logs on stderr)\n"
    "  --help                this text\n"
    "\n"
    "Exit status: 0 trained (and registered with --register), 3 not better than the current\n"
    "version (nothing registered), 1 error, 2 usage. The decision is printed on one line.\n"
    "Bracketed names are environment variables used when the flag is absent: the server's\n"
    "--retrain-command runs with EF_MODEL, EF_DATASET_ID, EF_ALERT_ID, EF_REASON and\n"
    "EF_SERVER_URL set, so 'edgefleet-train --register --shadow-rings canary' retrains from\n"
    "the alert's data set. See docs/train.md.\n";

enum {
    O_DATASET,
    O_DATASET_ID,
    O_FROM_SERVER,
    O_OUT,
    O_HIDDEN,
    O_EPOCHS,
    O_LEARNING_RATE,
    O_TARGET_MSE,
    O_ALGORITHM,
    O_SEED,
    O_HOLDOUT,
    O_GOLDEN,
    O_TOLERANCE,
    O_BINS,
    O_REGISTER,
    O_SERVER,
    O_MODEL,
    O_TOKEN,
    O_MARGIN,
    O_PARENT,
    O_ALERT,
    O_REASON,
    O_ROLLOUT_RINGS,
    O_SHADOW_RINGS,
    O_LOG_LEVEL,
    O_N
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a usage error and returns TRAIN_EXIT_USAGE. */
static int usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edgefleet-train: usage: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(edgefleet-train --help for help)\n");
    return TRAIN_EXIT_USAGE;
}

/* The flag's value, else the environment variable's when set and not empty. */
static const char *value_or_env(const struct args_opt *opt, const char *env)
{
    const char *v = args_value(opt);
    if (v)
        return v;
    v = env ? getenv(env) : NULL;
    return v && *v ? v : NULL;
}

/* Parses a finite number in [min, max]; false when it is not one. */
static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Parses an integer option (or env) in [min, max] into *out when present. */
static bool int_opt(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char msg[120];
    return !s || args_int(s, min, max, out, msg, sizeof(msg)) == 0;
}

/* Checks the options and the environment, then runs the job. Returns a
 * TRAIN_EXIT_* status. */
static int run(const struct args_opt *o)
{
    char default_out[160], reason[48];
    int status = TRAIN_EXIT_FAIL;
    int64_t v = 0;
    struct train_job job = {
        .fit = {.hidden = TRAIN_FIT_DEFAULT_HIDDEN,
                .max_epochs = TRAIN_FIT_DEFAULT_EPOCHS,
                .seed = TRAIN_DEFAULT_SEED,
                .report_every = 0},
        .holdout = TRAIN_DEFAULT_HOLDOUT,
        .seed = TRAIN_DEFAULT_SEED,
        .golden = TRAIN_MANIFEST_DEFAULT_GOLDEN,
        .bins = EF_HISTOGRAM_DEFAULT_BINS,
        .tolerance = TRAIN_MANIFEST_DEFAULT_TOLERANCE,
        .margin = TRAIN_REGISTER_DEFAULT_MARGIN,
    };
    const char *level = args_value(&o[O_LOG_LEVEL]);
    enum ef_log_level lvl;
    if (level && ef_log_level_parse(level, &lvl) != 0)
        return usage("--log-level must be debug, info, warn or error, not '%s'", level);
    if (level)
        ef_log_set_level(lvl);

    job.datasets = o[O_DATASET].values;
    job.n_datasets = o[O_DATASET].count;
    job.model = value_or_env(&o[O_MODEL], "EF_MODEL");
    job.token = value_or_env(&o[O_TOKEN], "EDGEFLEET_TOKEN");
    job.reason = value_or_env(&o[O_REASON], "EF_REASON");
    job.do_register = o[O_REGISTER].count > 0;
    job.fit.algorithm = args_value(&o[O_ALGORITHM]);
    job.rollout_rings = args_value(&o[O_ROLLOUT_RINGS]);
    job.shadow_rings = args_value(&o[O_SHADOW_RINGS]);
    const char *s;
    if (!int_opt(s = value_or_env(&o[O_DATASET_ID], "EF_DATASET_ID"), 1, INT64_MAX,
                 &job.dataset_id))
        return usage("--dataset-id must be an integer >= 1, not '%s'", s);
    if (!int_opt(s = value_or_env(&o[O_ALERT], "EF_ALERT_ID"), 1, INT64_MAX, &job.alert_id))
        return usage("--alert-id must be an integer >= 1, not '%s'", s);
    if (!int_opt(s = args_value(&o[O_PARENT]), 1, INT64_MAX, &job.parent_version))
        return usage("--parent-version must be an integer >= 1, not '%s'", s);
    v = job.fit.hidden;
    if (!int_opt(s = args_value(&o[O_HIDDEN]), 1, TRAIN_FIT_MAX_HIDDEN, &v))
        return usage("--hidden must be an integer from 1 to 4096, not '%s'", s);
    job.fit.hidden = (unsigned)v;
    v = job.fit.max_epochs;
    if (!int_opt(s = args_value(&o[O_EPOCHS]), 1, TRAIN_FIT_MAX_EPOCHS, &v))
        return usage("--epochs must be an integer from 1 to 1000000, not '%s'", s);
    job.fit.max_epochs = (unsigned)v;
    v = TRAIN_DEFAULT_SEED;
    if (!int_opt(s = args_value(&o[O_SEED]), 0, UINT32_MAX, &v))
        return usage("--seed must be an integer from 0 to 4294967295, not '%s'", s);
    job.seed = (uint64_t)v;
    job.fit.seed = (unsigned)v;
    v = (int64_t)job.golden;
    if (!int_opt(s = args_value(&o[O_GOLDEN]), 0, TRAIN_MANIFEST_MAX_GOLDEN, &v))
        return usage("--golden must be an integer from 0 to 256, not '%s'", s);
    job.golden = (size_t)v;
    v = (int64_t)job.bins;
    if (!int_opt(s = args_value(&o[O_BINS]), 1, TRAIN_MANIFEST_MAX_BINS, &v))
        return usage("--bins must be an integer from 1 to 1024, not '%s'", s);
    job.bins = (size_t)v;
    if ((s = args_value(&o[O_HOLDOUT])) &&
        (!parse_double(s, 0.0, 1.0, &job.holdout) || job.holdout <= 0.0 || job.holdout >= 1.0))
        return usage("--holdout must be a share above 0 and below 1, not '%s'", s);
    if ((s = args_value(&o[O_MARGIN])) && !parse_double(s, -1.0, 1.0, &job.margin))
        return usage("--margin must be a number from -1 to 1 (absolute accuracy), not '%s'", s);
    if ((s = args_value(&o[O_TOLERANCE])) && !parse_double(s, 0.0, 1e9, &job.tolerance))
        return usage("--tolerance must be a number >= 0, not '%s'", s);
    if ((s = args_value(&o[O_TARGET_MSE])) && !parse_double(s, 0.0, 1e9, &job.fit.target_mse))
        return usage("--target-mse must be a number >= 0, not '%s'", s);
    if ((s = args_value(&o[O_LEARNING_RATE])) &&
        (!parse_double(s, 0.0, 1e6, &job.fit.learning_rate) || job.fit.learning_rate <= 0.0))
        return usage("--learning-rate must be a number above 0, not '%s'", s);
    if (job.fit.algorithm && !train_fit_algorithm_valid(job.fit.algorithm))
        return usage("--algorithm must be rprop, quickprop, batch or incremental, not '%s'",
                     job.fit.algorithm);

    job.data_server = value_or_env(&o[O_FROM_SERVER], "EF_SERVER_URL");
    job.server = args_value(&o[O_SERVER]);
    if (!job.server)
        job.server = args_value(&o[O_FROM_SERVER]);
    if (!job.server)
        job.server = value_or_env(&o[O_SERVER], "EDGEFLEET_SERVER");
    if (!job.server)
        job.server = value_or_env(&o[O_SERVER], "EF_SERVER_URL");
    if (job.n_datasets == 0 && job.dataset_id == 0)
        return usage("%s", "no data: give --dataset FILE and/or --dataset-id ID");
    if (job.dataset_id && !job.data_server)
        return usage("%s", "--dataset-id needs --from-server URL (or EF_SERVER_URL)");
    if (job.model && !ef_name_valid(job.model))
        return usage("'%s' is not a valid model name (1-64 of a-z 0-9 . _ -)", job.model);
    if (job.do_register && (!job.model || !job.server))
        return usage("%s", "--register needs --model NAME and a server (--server URL)");
    if (!job.do_register &&
        (job.rollout_rings || job.shadow_rings || o[O_MARGIN].count || o[O_PARENT].count))
        return usage("%s", "--rollout-rings, --shadow-rings, --margin and --parent-version go "
                           "with --register");
    if (job.rollout_rings && job.shadow_rings)
        return usage("%s", "give --rollout-rings or --shadow-rings, not both");
    if (!job.reason && job.alert_id) {
        snprintf(reason, sizeof(reason), "alert %lld", (long long)job.alert_id);
        job.reason = reason;
    }
    job.out_dir = args_value(&o[O_OUT]);
    if (!job.out_dir && job.alert_id && job.model) {
        snprintf(default_out, sizeof(default_out), "retrain-%s-alert-%lld", job.model,
                 (long long)job.alert_id);
        job.out_dir = default_out;
    }
    if (!job.out_dir)
        return usage("%s", "--out DIR is required");

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "edgefleet-train: out_of_memory: cannot initialise libcurl\n");
        return TRAIN_EXIT_FAIL;
    }
    status = train_job_run(&job);
    curl_global_cleanup();
    return status;
}

int main(int argc, char **argv)
{
    struct args_opt o[O_N] = {
        [O_DATASET] = {.name = "dataset", .metavar = "FILE", .repeat = true},
        [O_DATASET_ID] = {.name = "dataset-id", .metavar = "ID"},
        [O_FROM_SERVER] = {.name = "from-server", .metavar = "URL"},
        [O_OUT] = {.name = "out", .metavar = "DIR"},
        [O_HIDDEN] = {.name = "hidden", .metavar = "N"},
        [O_EPOCHS] = {.name = "epochs", .metavar = "N"},
        [O_LEARNING_RATE] = {.name = "learning-rate", .metavar = "X"},
        [O_TARGET_MSE] = {.name = "target-mse", .metavar = "X"},
        [O_ALGORITHM] = {.name = "algorithm", .metavar = "A"},
        [O_SEED] = {.name = "seed", .metavar = "N"},
        [O_HOLDOUT] = {.name = "holdout", .metavar = "SHARE"},
        [O_GOLDEN] = {.name = "golden", .metavar = "K"},
        [O_TOLERANCE] = {.name = "tolerance", .metavar = "X"},
        [O_BINS] = {.name = "bins", .metavar = "N"},
        [O_REGISTER] = {.name = "register"},
        [O_SERVER] = {.name = "server", .metavar = "URL"},
        [O_MODEL] = {.name = "model", .metavar = "NAME"},
        [O_TOKEN] = {.name = "token", .metavar = "T"},
        [O_MARGIN] = {.name = "margin", .metavar = "X"},
        [O_PARENT] = {.name = "parent-version", .metavar = "N"},
        [O_ALERT] = {.name = "alert-id", .metavar = "N"},
        [O_REASON] = {.name = "reason", .metavar = "TEXT"},
        [O_ROLLOUT_RINGS] = {.name = "rollout-rings", .metavar = "LIST"},
        [O_SHADOW_RINGS] = {.name = "shadow-rings", .metavar = "LIST"},
        [O_LOG_LEVEL] = {.name = "log-level", .metavar = "L"},
    };
    const char *pos[1];
    size_t npos = 0;
    bool help = false;
    char msg[300] = "";
    int status = TRAIN_EXIT_USAGE;
    if (args_parse(argc - 1, argv + 1, o, O_N, pos, 0, &npos, &help, 0, msg, sizeof(msg)) != 0) {
        usage("%s", msg);
        goto out;
    }
    if (help) {
        fputs(usage_text, stdout);
        status = TRAIN_EXIT_OK;
        goto out;
    }
    status = run(o);
out:
    args_opts_release(o, O_N);
    return status;
}

/* train_job.c - one run of edgefleet-train: data, training, evaluation, decision, upload. */
#include "server/train/train_job.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"
#include "server/train/train_data.h"
#include "server/train/train_eval.h"
#include "server/train/train_register.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_SIZE 512

/* Everything a run holds; released by job_state_release. */
struct job_state {
    struct fann_train_data *all, *train, *holdout;
    struct fann *ann, *current_ann;
    struct train_eval train_eval, hold_eval, current_eval;
    struct train_current current;
    json_t *sources; /* [{"file", "rows", "sha256"} | {"server", "dataset_id", "file", "rows"}] */
    json_t *meta, *record;
    char *model_path, *fixed_path, *current_path;
    int decimal_point;
};

static void job_state_release(struct job_state *s)
{
    if (s->all)
        fann_destroy_train(s->all);
    if (s->train)
        fann_destroy_train(s->train);
    if (s->holdout)
        fann_destroy_train(s->holdout);
    if (s->ann)
        fann_destroy(s->ann);
    if (s->current_ann)
        fann_destroy(s->current_ann);
    train_eval_release(&s->train_eval);
    train_eval_release(&s->hold_eval);
    train_eval_release(&s->current_eval);
    train_register_current_release(&s->current);
    json_decref(s->sources);
    json_decref(s->meta);
    json_decref(s->record);
    free(s->model_path);
    free(s->fixed_path);
    free(s->current_path);
}

static int fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "edgefleet-train: <code>: <message>" and returns TRAIN_EXIT_FAIL. */
static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edgefleet-train: %s: ", ef_errname(rc));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TRAIN_EXIT_FAIL;
}

/* A new path DIR/NAME; NULL when out of memory. */
static char *out_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *out_path(const char *dir, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    return ef_path_join(dir, name);
}

/* Reads one source file and appends it; records it in s->sources. */
static int add_source(struct job_state *s, const char *file, json_t *record)
{
    struct fann_train_data *d = NULL;
    char msg[MSG_SIZE] = "", sha[EF_HEX256_SIZE];
    int status = TRAIN_EXIT_OK;
    int rc = train_data_load(file, &d, msg, sizeof(msg));
    if (rc != 0) {
        status = fail(rc, "%s", msg);
        goto out;
    }
    if ((rc = train_data_append(&s->all, d, file, msg, sizeof(msg))) != 0) {
        status = fail(rc, "%s", msg);
        goto out;
    }
    if ((rc = ef_sha256_file_hex(file, sha)) != 0) {
        status = fail(rc, "cannot read %s", file);
        goto out;
    }
    if (json_object_set_new(record, "file", json_string(file)) != 0 ||
        json_object_set_new(record, "rows", json_integer(fann_length_train_data(d))) != 0 ||
        json_object_set_new(record, "sha256", json_string(sha)) != 0 ||
        json_array_append(s->sources, record) != 0)
        status = fail(EF_ENOMEM, "cannot record the sources");
out:
    json_decref(record);
    if (d)
        fann_destroy_train(d);
    return status;
}

/* Loads every source into s->all. */
static int load_sources(const struct train_job *job, struct job_state *s)
{
    int status = TRAIN_EXIT_OK;
    if (!(s->sources = json_array()))
        return fail(EF_ENOMEM, "out of memory");
    for (size_t i = 0; i < job->n_datasets && status == TRAIN_EXIT_OK; i++)
        status = add_source(s, job->datasets[i], json_object());
    if (status != TRAIN_EXIT_OK || job->dataset_id <= 0)
        return status;
    struct client c = {.base_url = job->data_server, .token = job->token};
    char *file = out_path(job->out_dir, "dataset-%lld.data", (long long)job->dataset_id);
    if (!file)
        return fail(EF_ENOMEM, "out of memory");
    if (train_register_fetch_dataset(&c, job->dataset_id, file) != 0) {
        status = TRAIN_EXIT_FAIL;
    } else {
        ef_info("train_dataset_fetched", "dataset_id=%lld file=%s", (long long)job->dataset_id,
                file);
        status = add_source(s, file,
                            json_pack("{s:s, s:I}", "server", job->data_server, "dataset_id",
                                      (json_int_t)job->dataset_id));
    }
    free(file);
    return status;
}

/* Trains, scores and saves the candidate. */
static int train_candidate(const struct train_job *job, struct job_state *s,
                           struct train_fit_result *fit)
{
    char msg[MSG_SIZE] = "";
    int rc =
        train_data_split(s->all, job->holdout, job->seed, &s->train, &s->holdout, msg, sizeof(msg));
    if (rc != 0)
        return fail(rc, "%s", msg);
    ef_info("train_start", "rows=%u train_rows=%u holdout_rows=%u inputs=%u outputs=%u hidden=%u",
            fann_length_train_data(s->all), fann_length_train_data(s->train),
            fann_length_train_data(s->holdout), fann_num_input_train_data(s->all),
            fann_num_output_train_data(s->all), job->fit.hidden);
    if ((rc = train_fit(s->train, &job->fit, &s->ann, fit, msg, sizeof(msg))) != 0 ||
        (rc = train_eval_run(s->ann, s->train, &s->train_eval, msg, sizeof(msg))) != 0 ||
        (rc = train_eval_run(s->ann, s->holdout, &s->hold_eval, msg, sizeof(msg))) != 0)
        return fail(rc, "%s", msg);
    if (!(s->model_path = out_path(job->out_dir, "model.net")) ||
        !(s->fixed_path = out_path(job->out_dir, "model-fixed.net")))
        return fail(EF_ENOMEM, "out of memory");
    if ((rc = train_fit_save(s->ann, s->model_path, false, NULL, msg, sizeof(msg))) != 0 ||
        (rc = train_fit_save(s->ann, s->fixed_path, true, &s->decimal_point, msg, sizeof(msg))) !=
            0)
        return fail(rc, "%s", msg);
    return TRAIN_EXIT_OK;
}

/* Fetches the version to compare with and scores it on the holdout. */
static int score_current(const struct train_job *job, struct job_state *s)
{
    struct client c = {.base_url = job->server, .token = job->token};
    char msg[MSG_SIZE] = "";
    if (!(s->current_path = out_path(job->out_dir, "current.net")))
        return fail(EF_ENOMEM, "out of memory");
    int rc = train_register_current(&c, job->model, job->parent_version, s->current_path,
                                    &s->current, msg, sizeof(msg));
    if (rc != 0)
        return msg[0] ? fail(rc, "%s", msg) : TRAIN_EXIT_FAIL;
    if (s->current.version == 0)
        return TRAIN_EXIT_OK;
    if (strcmp(s->current.backend, "fann") != 0)
        return fail(EF_EUNSUPPORTED,
                    "%s@%lld is a %s model; only float (fann) versions can be scored here",
                    job->model, (long long)s->current.version, s->current.backend);
    if ((rc = train_fit_load(s->current_path, &s->current_ann, msg, sizeof(msg))) != 0 ||
        (rc = train_eval_run(s->current_ann, s->holdout, &s->current_eval, msg, sizeof(msg))) != 0)
        return fail(rc, "%s@%lld on the holdout: %s", job->model, (long long)s->current.version,
                    msg);
    return TRAIN_EXIT_OK;
}

/* Builds s->meta. */
static int build_meta(const struct train_job *job, struct job_state *s, unsigned epochs)
{
    char msg[MSG_SIZE] = "";
    const json_t *cur = s->current.manifest;
    struct train_manifest_src src = {
        .ann = s->ann,
        .train = s->train,
        .holdout = s->holdout,
        .train_eval = &s->train_eval,
        .hold_eval = &s->hold_eval,
        .epochs = epochs,
        .bins = job->bins,
        .golden = job->golden,
        .tolerance = job->tolerance,
        .features = json_object_get(json_object_get(cur, "input"), "features"),
        .labels = json_object_get(json_object_get(cur, "output"), "labels"),
        .lineage =
            {
                .parent_version = s->current.version ? s->current.version : job->parent_version,
                .dataset_id = job->dataset_id,
                .alert_id = job->alert_id,
                .trigger = job->reason,
            },
    };
    int rc = train_manifest_meta(&src, &s->meta, msg, sizeof(msg));
    if (rc != 0)
        return fail(rc, "%s", msg);
    /* Pinning the version makes a concurrent registration a 409, not a
     * replacement of the latest version this candidate was compared with.
     * A candidate compared with an older --parent-version is not pinned. */
    if (job->do_register && job->parent_version == 0 &&
        json_object_set_new(s->meta, "version", json_integer(s->current.version + 1)) != 0)
        return fail(EF_ENOMEM, "out of memory");
    return TRAIN_EXIT_OK;
}

/* A new evaluation object of the run for manifest.json. */
static json_t *evaluation_of(const struct train_job *job, const struct job_state *s,
                             const char *decision)
{
    const json_t *labels = json_object_get(s->meta, "labels");
    json_t *current = json_null();
    if (s->current.version > 0) {
        json_t *ev = train_eval_json(&s->current_eval, labels);
        current =
            ev ? json_pack("{s:I, s:o}", "version", (json_int_t)s->current.version, "holdout", ev)
               : NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:f, s:s}", "candidate_holdout",
                     train_eval_json(&s->hold_eval, labels), "candidate_train",
                     train_eval_json(&s->train_eval, labels), "current", current, "margin",
                     job->margin, "decision", decision);
}

/* Writes OUT/meta.json and OUT/manifest.json. */
static int write_outputs(const struct train_job *job, struct job_state *s,
                         const struct train_fit_result *fit, const char *decision,
                         int64_t registered, int64_t rollout_id)
{
    char model_sha[EF_HEX256_SIZE], fixed_sha[EF_HEX256_SIZE];
    char *meta_path = out_path(job->out_dir, "meta.json");
    char *record_path = out_path(job->out_dir, "manifest.json");
    char *meta_text = NULL, *record_text = NULL;
    int status = TRAIN_EXIT_OK, rc = 0;
    if (!meta_path || !record_path) {
        status = fail(EF_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ef_sha256_file_hex(s->model_path, model_sha)) != 0 ||
        (rc = ef_sha256_file_hex(s->fixed_path, fixed_sha)) != 0) {
        status = fail(rc, "cannot read the saved networks in %s", job->out_dir);
        goto out;
    }
    json_decref(s->record);
    s->record = json_pack(
        "{s:s*, s:O, s:o, s:{s:O, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:s, s:I, s:f, s:I}, "
        "s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:i}}, s:o, s:o}",
        "model", job->model, "meta", s->meta, "evaluation", evaluation_of(job, s, decision),
        "training", "sources", s->sources, "train_rows",
        (json_int_t)fann_length_train_data(s->train), "holdout_rows",
        (json_int_t)fann_length_train_data(s->holdout), "hidden", (json_int_t)job->fit.hidden,
        "epochs", (json_int_t)fit->epochs, "train_epoch_mse", fit->mse, "target_mse",
        job->fit.target_mse, "holdout_share", job->holdout, "algorithm",
        job->fit.algorithm ? job->fit.algorithm : "rprop", "seed", (json_int_t)job->seed,
        "learning_rate", job->fit.learning_rate, "max_epochs", (json_int_t)job->fit.max_epochs,
        "artifacts", "model", "file", "model.net", "backend", "fann", "sha256", model_sha, "fixed",
        "file", "model-fixed.net", "backend", "fann-fixed", "sha256", fixed_sha, "decimal_point",
        s->decimal_point, "registered_version",
        registered > 0 ? json_integer(registered) : json_null(), "rollout_id",
        rollout_id > 0 ? json_integer(rollout_id) : json_null());
    if (!s->record || !(meta_text = ef_json_dump(s->meta)) ||
        !(record_text = json_dumps(s->record, JSON_INDENT(2) | JSON_SORT_KEYS))) {
        status = fail(EF_ENOMEM, "cannot encode manifest.json");
        goto out;
    }
    if ((rc = ef_atomic_write(meta_path, meta_text, strlen(meta_text), 0644)) != 0)
        status = fail(rc, "cannot write %s", meta_path);
    else if ((rc = ef_atomic_write(record_path, record_text, strlen(record_text), 0644)) != 0)
        status = fail(rc, "cannot write %s", record_path);
out:
    free(meta_text);
    free(record_text);
    free(meta_path);
    free(record_path);
    return status;
}

/* Uploads and starts the rollout; prints the decision line. */
static int register_candidate(const struct train_job *job, struct job_state *s, int64_t *registered,
                              int64_t *rollout_id)
{
    struct client c = {.base_url = job->server, .token = job->token};
    char msg[MSG_SIZE] = "";
    int rc = train_register_push(&c, job->model, s->model_path, s->meta, registered);
    if (rc != 0)
        return TRAIN_EXIT_FAIL;
    if (s->current.version > 0)
        printf("registered %s@%lld: holdout accuracy %.4f against %.4f of %s@%lld (margin "
               "%.4f, %zu holdout rows)\n",
               job->model, (long long)*registered, s->hold_eval.accuracy, s->current_eval.accuracy,
               job->model, (long long)s->current.version, job->margin, s->hold_eval.rows);
    else
        printf("registered %s@%lld: holdout accuracy %.4f, no earlier version to compare with "
               "(%zu holdout rows)\n",
               job->model, (long long)*registered, s->hold_eval.accuracy, s->hold_eval.rows);
    fflush(stdout);
    ef_info("train_registered", "model=%s version=%lld holdout_accuracy=%.6f", job->model,
            (long long)*registered, s->hold_eval.accuracy);
    const char *rings = job->shadow_rings ? job->shadow_rings : job->rollout_rings;
    if (!rings)
        return TRAIN_EXIT_OK;
    const char *slot = job->shadow_rings ? "shadow" : "production";
    rc = train_register_rollout(&c, job->model, *registered, rings, slot, rollout_id, msg,
                                sizeof(msg));
    if (rc != 0) {
        if (msg[0])
            fail(rc, "%s", msg);
        fprintf(stderr,
                "edgefleet-train: rollout_failed: %s@%lld is registered but its %s rollout over "
                "%s did not start\n",
                job->model, (long long)*registered, slot, rings);
        return TRAIN_EXIT_FAIL;
    }
    printf("started %s rollout %lld of %s@%lld over %s\n", slot, (long long)*rollout_id, job->model,
           (long long)*registered, rings);
    return TRAIN_EXIT_OK;
}

int train_job_run(const struct train_job *job)
{
    struct job_state s;
    struct train_fit_result fit = {0};
    int64_t registered = 0, rollout_id = 0;
    const char *decision = "not_registered";
    bool better = true;
    int status = TRAIN_EXIT_OK, rc;
    memset(&s, 0, sizeof(s));
    if ((rc = ef_mkdir_p(job->out_dir, 0755)) != 0) {
        status = fail(rc, "cannot create %s", job->out_dir);
        goto out;
    }
    if ((status = load_sources(job, &s)) != TRAIN_EXIT_OK ||
        (status = train_candidate(job, &s, &fit)) != TRAIN_EXIT_OK)
        goto out;
    printf("trained %u epochs on %zu rows: holdout accuracy %.4f, mse %.6f (%zu rows); wrote "
           "%s and %s\n",
           fit.epochs, s.train_eval.rows, s.hold_eval.accuracy, s.hold_eval.mse, s.hold_eval.rows,
           s.model_path, s.fixed_path);
    fflush(stdout);
    if (job->do_register && (status = score_current(job, &s)) != TRAIN_EXIT_OK)
        goto out;
    if ((status = build_meta(job, &s, fit.epochs)) != TRAIN_EXIT_OK)
        goto out;
    if (job->do_register && s.current.version > 0)
        better = train_register_better(s.hold_eval.accuracy, s.current_eval.accuracy, job->margin);
    if (job->do_register && !better) {
        decision = "not_better";
        printf("not registered: holdout accuracy %.4f does not beat %.4f of %s@%lld by the "
               "margin %.4f (%zu holdout rows)\n",
               s.hold_eval.accuracy, s.current_eval.accuracy, job->model,
               (long long)s.current.version, job->margin, s.hold_eval.rows);
        ef_info("train_not_better",
                "model=%s current=%lld holdout_accuracy=%.6f current_accuracy=%.6f margin=%.6f",
                job->model, (long long)s.current.version, s.hold_eval.accuracy,
                s.current_eval.accuracy, job->margin);
        status = TRAIN_EXIT_NOT_BETTER;
    } else if (job->do_register) {
        /* manifest.json says what is about to be registered before it is. */
        decision = "registering";
        if ((status = write_outputs(job, &s, &fit, decision, 0, 0)) != TRAIN_EXIT_OK)
            goto out;
        status = register_candidate(job, &s, &registered, &rollout_id);
        decision = registered > 0 ? "registered" : "register_failed";
    }
    int written = write_outputs(job, &s, &fit, decision, registered, rollout_id);
    if (status == TRAIN_EXIT_OK || status == TRAIN_EXIT_NOT_BETTER)
        status = written != TRAIN_EXIT_OK ? written : status;
out:
    job_state_release(&s);
    return status;
}

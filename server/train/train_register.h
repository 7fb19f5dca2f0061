/*
 * train_register.h - the trainer's dealings with the server: fetching a data
 * set and the current version, registering a candidate that beats it, and
 * starting its rollout.
 *
 * Everything goes through the CLI's HTTP client (server/cli/client.h), so
 * failures print one line on stderr ("edgefleet: <code>: <message> (HTTP
 * <status>)") and the functions here only return codes. The rule that decides
 * is train_register_better: the candidate's holdout accuracy must be at least
 * the current version's plus margin (absolute). The candidate is uploaded
 * with meta.version = the compared version + 1, so that a version registered
 * by someone else in the meantime makes the upload fail (409
 * version_not_increasing) instead of replacing a version it was never
 * compared with.
 */
#ifndef EF_TRAIN_REGISTER_H
#define EF_TRAIN_REGISTER_H

#include "server/cli/client.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRAIN_REGISTER_DEFAULT_MARGIN 0.01
#define TRAIN_REGISTER_EPSILON        1e-12 /* accuracy ties within rounding count as met */

/* The version a candidate is compared with. */
struct train_current {
    int64_t version;  /* 0 when the model has no version yet */
    char *backend;    /* "fann" or "fann-fixed" (owned) */
    json_t *manifest; /* its manifest (owned) */
};

/* True when candidate >= current + margin (accuracies 0..1, margin absolute). */
bool train_register_better(double candidate, double current, double margin);

/* GETs /api/v1/datasets/{id}/export and writes it to path. */
int train_register_fetch_dataset(const struct client *c, int64_t id, const char *path);

/*
 * Looks up the model's version to compare with: version when > 0, else its
 * latest (GET /api/v1/models; a model that does not exist or has no version
 * leaves cur->version 0 and is not an error). With a version, downloads its
 * artifact to artifact_path and checks its sha256. EF_ENOENT when the given
 * version does not exist, the client's codes otherwise; msg says what failed
 * when the client has not printed it.
 */
int train_register_current(const struct client *c, const char *model, int64_t version,
                           const char *artifact_path, struct train_current *cur, char *msg,
                           size_t msg_size);

/* Frees what cur owns and clears it. */
void train_register_current_release(struct train_current *cur);

/* Uploads artifact_path with meta (borrowed) as a version of model;
 * *version receives the version the server registered. */
int train_register_push(const struct client *c, const char *model, const char *artifact_path,
                        const json_t *meta, int64_t *version);

/*
 * Creates a rollout of model@version over rings (a comma-separated list of
 * ring names) in slot ("production", or "shadow" for a shadow rollout) and
 * starts it; *rollout_id receives its id (0 when creation failed). EF_EINVAL
 * with msg for a malformed ring list, the client's codes otherwise.
 */
int train_register_rollout(const struct client *c, const char *model, int64_t version,
                           const char *rings, const char *slot, int64_t *rollout_id, char *msg,
                           size_t msg_size);

#endif

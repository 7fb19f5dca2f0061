/*
 * model.h - a model ready to serve: its verified manifest, the backend
 * that runs it and the loaded network, reference-counted so that a hot swap
 * can release the previous model only after its last in-flight use.
 */
#ifndef EF_AGENT_MODEL_H
#define EF_AGENT_MODEL_H

#include "agent/backend.h"
#include "common/manifest.h"

#include <stddef.h>
#include <stdint.h>

struct model {
    int refs;                          /* owners; freed at zero. Loop thread only. */
    struct ef_manifest *manifest;      /* owned; shares the loader's (immutable) document */
    const struct backend_api *backend; /* borrowed from struct backends */
    struct backend_model *net;         /* owned by backend */
    char id[96];                       /* "NAME@VERSION": 64 + 1 + 19 digits fit */
    char sha256[65];                   /* artifact hash */
};

/* Loads the artifact at path with the backend the manifest names (which
 * must be loaded), checks the network's sizes against the manifest. Takes a
 * reference to manifest's document (the caller keeps and frees its own
 * struct). Returns a new model with refs == 1. EF_EUNSUPPORTED (backend not
 * available), EF_EMISMATCH (sizes differ, or a network of the other kind:
 * float for fann-fixed or the reverse), EF_EINVAL (file does not load),
 * EF_ENOENT/EF_EPERM/EF_EIO (file unreadable), EF_ENOMEM; err says why.
 * Does not check the artifact's hash: the caller has. Thread-safe. */
int model_load(const struct backends *b, struct ef_manifest *manifest, const char *path,
               struct model **out, char *err, size_t err_size);

/* Replays every golden vector of the manifest; 0 when every output is
 * within its vector's tolerance (|out - expected| <= tolerance; a NaN
 * output fails), EF_EMISMATCH with the first failing vector described in
 * err otherwise, EF_EINVAL when the manifest has no vectors or the backend
 * refuses a vector's input, EF_ENOMEM. Runs on any one thread that owns
 * the model at the time. */
int model_self_test(struct model *m, char *err, size_t err_size);

/* Runs one inference: in has manifest->input_size entries (n_in), out
 * receives manifest->output_size (n_out). 0, or EF_EINVAL when the counts
 * differ or the backend refuses the input (see backend_api.run). Outputs
 * may be non-finite: the caller decides whether that is a failure. */
int model_run(struct model *m, const double *in, size_t n_in, double *out, size_t n_out);

/* Index of the largest output (NaN outputs ignored; 0 when all are NaN),
 * and its label when the manifest has labels (borrowed from the model, else
 * NULL). label may be NULL. */
size_t model_argmax(const struct model *m, const double *out, const char **label);

/* Index of the output labelled label, or EF_ENOENT (no such label or the
 * manifest has no labels). */
int model_label_index(const struct model *m, const char *label, size_t *index);

/* Takes a reference (returns m), and drops one: the model is freed with the
 * last. Loop thread only. unref accepts NULL. */
struct model *model_ref(struct model *m);
void model_unref(struct model *m);

#endif

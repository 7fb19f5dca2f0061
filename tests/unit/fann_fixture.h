/*
 * fann_fixture.h - real FANN networks and manifests for the agent's unit
 * tests (test_agent_backends, test_agent_model, test_agent_serve).
 *
 * The test processes must not link libfann (its float and fixed builds
 * export the same symbols as the backend modules they load), so networks are
 * trained by the build's ef-train-fixture ($EF_TEST_BIN_DIR, set by ctest)
 * on libfann-doc's thyroid data set (21 inputs, 3 classes), which also
 * prints what FANN itself computes for the first rows: those become the
 * golden vectors. The backends are found through $EF_BACKEND_DIR (also set
 * by ctest). Static inline functions only, so a test may use some of them.
 */
#ifndef EF_TESTS_FANN_FIXTURE_H
#define EF_TESTS_FANN_FIXTURE_H

#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/manifest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURE_DATA      "/usr/share/doc/libfann-dev/examples/datasets/thyroid.train"
#define FIXTURE_INPUTS    21
#define FIXTURE_OUTPUTS   3
#define FIXTURE_VECTORS   8   /* golden vectors printed by the trainer */
#define FIXTURE_FIXED_TOL 0.1 /* fixed point against float: stepwise sigmoids, ~0.04 seen */

/* A trained network in a temporary directory. */
struct fann_fixture {
    char dir[64];        /* mkdtemp directory, removed by fixture_free */
    char float_net[128]; /* dir/thyroid.net (FANN_FLO_) */
    char fixed_net[128]; /* dir/thyroid.net.fixed (FANN_FIX_) */
    json_t *vectors;     /* [{"input": [21], "output": [3]}] computed by FANN (float) */
};

static inline int fixture_remove_entry(const char *path, const struct stat *st, int flag,
                                       struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fixture_free(struct fann_fixture *f)
{
    if (!f)
        return;
    if (f->dir[0])
        nftw(f->dir, fixture_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    json_decref(f->vectors);
    free(f);
}

/* Trains a network (and its fixed-point copy) with the given seed into a new
 * temporary directory. NULL on failure, with the reason on stderr. */
static inline struct fann_fixture *fixture_train(unsigned seed)
{
    const char *bin = getenv("EF_TEST_BIN_DIR");
    struct fann_fixture *f = calloc(1, sizeof(*f));
    char cmd[512], line[65536];
    FILE *p = NULL;
    if (!f)
        return NULL;
    if (!bin || !getenv("EF_BACKEND_DIR")) {
        fprintf(stderr,
                "fixture: EF_TEST_BIN_DIR and EF_BACKEND_DIR must be set (ctest sets them)\n");
        goto fail;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ef-agent-XXXXXX");
    if (!mkdtemp(f->dir)) {
        f->dir[0] = '\0';
        goto fail;
    }
    snprintf(f->float_net, sizeof(f->float_net), "%s/thyroid.net", f->dir);
    snprintf(f->fixed_net, sizeof(f->fixed_net), "%s/thyroid.net.fixed", f->dir);
    snprintf(cmd, sizeof(cmd), "'%s/ef-train-fixture' '%s' '%s' 6 15 %u fixed %d", bin,
             FIXTURE_DATA, f->float_net, seed, FIXTURE_VECTORS);
    if (!(p = popen(cmd, "r")))
        goto fail;
    /* First line: the MSE; second: the vectors. */
    if (!fgets(line, sizeof(line), p) || !fgets(line, sizeof(line), p)) {
        pclose(p);
        fprintf(stderr, "fixture: %s printed no vectors\n", cmd);
        goto fail;
    }
    if (pclose(p) != 0 || ef_json_load(line, strlen(line), sizeof(line), &f->vectors, NULL, 0) ||
        json_array_size(f->vectors) != FIXTURE_VECTORS) {
        fprintf(stderr, "fixture: %s failed\n", cmd);
        goto fail;
    }
    return f;
fail:
    fixture_free(f);
    return NULL;
}

/* Input i (0 <= i < FIXTURE_VECTORS) of the fixture into in[FIXTURE_INPUTS],
 * and what FANN computed for it into out[FIXTURE_OUTPUTS] (may be NULL). */
static inline void fixture_row(const struct fann_fixture *f, size_t i, double *in, double *out)
{
    json_t *v = json_array_get(f->vectors, i);
    for (size_t k = 0; k < FIXTURE_INPUTS; k++)
        in[k] = json_number_value(json_array_get(json_object_get(v, "input"), k));
    for (size_t k = 0; out && k < FIXTURE_OUTPUTS; k++)
        out[k] = json_number_value(json_array_get(json_object_get(v, "output"), k));
}

/* SHA-256 (hex) and size of a file; 0 or an EF_E* code. */
static inline int fixture_hash(const char *path, char hex[EF_HEX256_SIZE], long long *size)
{
    char *data = NULL;
    size_t len = 0;
    int rc = ef_read_file(path, 1u << 24, &data, &len);
    if (rc == 0) {
        struct ef_sha256 h;
        ef_sha256_init(&h);
        ef_sha256_update(&h, data, len);
        ef_sha256_final_hex(&h, hex);
        *size = (long long)len;
    }
    free(data);
    return rc;
}

/* A manifest for the network at path run by backend, whose golden vectors
 * are the fixture's (with tolerance tol), the first `vectors` of them.
 * input_size lets a test lie about the network's shape. NULL on failure. */
static inline struct ef_manifest *fixture_manifest(const struct fann_fixture *f, const char *path,
                                                   const char *backend, size_t input_size,
                                                   size_t vectors, double tol)
{
    char hex[EF_HEX256_SIZE];
    long long size = 0;
    struct ef_manifest *m = NULL;
    json_t *tv = json_array();
    if (!tv || fixture_hash(path, hex, &size) != 0)
        goto out;
    for (size_t i = 0; i < vectors && i < json_array_size(f->vectors); i++) {
        json_t *v = json_array_get(f->vectors, i);
        json_array_append_new(tv,
                              json_pack("{s:O, s:O, s:f}", "input", json_object_get(v, "input"),
                                        "output", json_object_get(v, "output"), "tolerance", tol));
    }
    json_t *doc = json_pack(
        "{s:i, s:s, s:i, s:s, s:{s:s, s:I}, s:{s:I}, s:{s:I, s:[s, s, s]}, s:O, s:s}", "format",
        EF_MANIFEST_FORMAT, "name", "thyroid", "version", 3, "backend", backend, "artifact",
        "sha256", hex, "size", (json_int_t)size, "input", "size", (json_int_t)input_size, "output",
        "size", (json_int_t)FIXTURE_OUTPUTS, "labels", "hyperthyroid", "hypothyroid", "normal",
        "test_vectors", tv, "created_at", "2026-01-01T00:00:00Z");
    char msg[256] = "";
    if (!doc || ef_manifest_from_json(doc, &m, msg, sizeof(msg)) != 0)
        fprintf(stderr, "fixture: manifest refused: %s\n", msg);
    json_decref(doc);
out:
    json_decref(tv);
    return m;
}

#endif

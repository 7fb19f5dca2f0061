/*
 * model.c - a loaded model: manifest, backend and network together, checked
 * against each other, self-tested against the manifest's golden vectors,
 * reference-counted for hot swaps.
 */
#include "agent/model.h"
#include "common/ef_error.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void model_free(struct model *m)
{
    if (!m)
        return;
    if (m->net)
        m->backend->free_model(m->net);
    ef_manifest_free(m->manifest);
    free(m);
}

int model_load(const struct backends *b, struct ef_manifest *manifest, const char *path,
               struct model **out, char *err, size_t err_size)
{
    int rc = 0;
    struct model *m = NULL;
    size_t n_in = 0, n_out = 0;
    *out = NULL;
    const struct backend_api *api = backends_get(b, manifest->backend);
    if (!api) {
        rc = fail(err, err_size, EF_EUNSUPPORTED, "backend %s is not available on this device",
                  manifest->backend);
        goto out;
    }
    if (!(m = calloc(1, sizeof(*m)))) {
        rc = fail(err, err_size, EF_ENOMEM, "out of memory");
        goto out;
    }
    m->refs = 1;
    m->backend = api;
    /* The model's own view of the same (immutable) document: the caller may
     * free its struct while the model lives on. */
    if ((rc = ef_manifest_from_json(manifest->doc, &m->manifest, err, err_size)) != 0)
        goto out;
    if ((rc = api->load(path, &m->net, err, err_size)) != 0)
        goto out;
    api->describe(m->net, &n_in, &n_out);
    if (n_in != manifest->input_size || n_out != manifest->output_size) {
        rc = fail(err, err_size, EF_EMISMATCH,
                  "the network has %zu inputs and %zu outputs but the manifest says %zu and %zu",
                  n_in, n_out, manifest->input_size, manifest->output_size);
        goto out;
    }
    snprintf(m->id, sizeof(m->id), "%s@%lld", manifest->name, (long long)manifest->version);
    snprintf(m->sha256, sizeof(m->sha256), "%s", manifest->sha256);
    *out = m;
    m = NULL;
out:
    model_free(m);
    return rc;
}

int model_self_test(struct model *m, char *err, size_t err_size)
{
    int rc = 0;
    const struct ef_manifest *mf = m->manifest;
    double *in = NULL, *want = NULL, *got = NULL, tolerance = 0;
    if (mf->test_vector_count == 0) {
        rc = fail(err, err_size, EF_EINVAL, "manifest has no golden vectors");
        goto out;
    }
    in = malloc(mf->input_size * sizeof(*in));
    want = malloc(mf->output_size * sizeof(*want));
    got = malloc(mf->output_size * sizeof(*got));
    if (!in || !want || !got) {
        rc = fail(err, err_size, EF_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t v = 0; v < mf->test_vector_count; v++) {
        if ((rc = ef_manifest_test_vector(mf, v, in, want, &tolerance)) != 0) {
            fail(err, err_size, rc, "golden vector %zu cannot be read", v);
            goto out;
        }
        if ((rc = model_run(m, in, mf->input_size, got, mf->output_size)) != 0) {
            fail(err, err_size, rc, "golden vector %zu: the backend refuses its input", v);
            goto out;
        }
        for (size_t k = 0; k < mf->output_size; k++) {
            /* Written so that a NaN output fails. */
            if (!(fabs(got[k] - want[k]) <= tolerance)) {
                rc = fail(err, err_size, EF_EMISMATCH,
                          "golden vector %zu: output %zu is %.9g, expected %.9g within %g", v, k,
                          got[k], want[k], tolerance);
                goto out;
            }
        }
    }
out:
    free(in);
    free(want);
    free(got);
    return rc;
}

int model_run(struct model *m, const double *in, size_t n_in, double *out, size_t n_out)
{
    if (n_in != m->manifest->input_size || n_out != m->manifest->output_size)
        return EF_EINVAL;
    return m->backend->run(m->net, in, n_in, out, n_out);
}

/* The manifest's output labels, or NULL when it has none. Borrowed. */
static const json_t *labels_of(const struct model *m)
{
    const json_t *labels = json_object_get(json_object_get(m->manifest->doc, "output"), "labels");
    return json_array_size(labels) == m->manifest->output_size ? labels : NULL;
}

size_t model_argmax(const struct model *m, const double *out, const char **label)
{
    size_t best = 0;
    bool found = false;
    for (size_t i = 0; i < m->manifest->output_size; i++) {
        if (isnan(out[i]))
            continue;
        if (!found || out[i] > out[best])
            best = i;
        found = true;
    }
    if (label) {
        const json_t *labels = labels_of(m);
        *label = labels ? json_string_value(json_array_get(labels, best)) : NULL;
    }
    return best;
}

int model_label_index(const struct model *m, const char *label, size_t *index)
{
    const json_t *labels = labels_of(m);
    for (size_t i = 0; labels && label && i < json_array_size(labels); i++) {
        if (strcmp(json_string_value(json_array_get(labels, i)), label) == 0) {
            *index = i;
            return 0;
        }
    }
    return EF_ENOENT;
}

struct model *model_ref(struct model *m)
{
    m->refs++;
    return m;
}

void model_unref(struct model *m)
{
    if (m && --m->refs == 0)
        model_free(m);
}

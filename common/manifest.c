/* manifest.c - validating, serializing and verifying model manifests. */
#include "common/manifest.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t size, const char *fmt, ...)
{
    if (msg && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, size, fmt, ap);
        va_end(ap);
    }
    return EF_EINVAL;
}

/* Checks an array of numbers of length n (finite values only). */
static bool numbers_ok(const json_t *a, size_t n)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return false;
    }
    return true;
}

static bool strings_ok(const json_t *a, size_t n)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(a, i)))
            return false;
    return true;
}

/* A histogram: bins+1 strictly increasing edges and bins fractions in [0, 1]
 * that sum to 1 (within rounding), so drift computed against it means something. */
static bool histogram_ok(const json_t *h)
{
    json_t *fractions = json_object_get(h, "fractions");
    json_t *edges = json_object_get(h, "edges");
    size_t bins = json_array_size(fractions);
    if (!json_is_object(h) || bins == 0 || bins > 1024 || !numbers_ok(fractions, bins) ||
        !numbers_ok(edges, bins + 1))
        return false;
    double sum = 0;
    for (size_t b = 0; b < bins; b++) {
        double f = json_number_value(json_array_get(fractions, b));
        if (f < 0 || f > 1 ||
            !(json_number_value(json_array_get(edges, b)) <
              json_number_value(json_array_get(edges, b + 1))))
            return false;
        sum += f;
    }
    return fabs(sum - 1.0) < 1e-6;
}

static int validate_io(json_t *doc, const char *key, const char *names_key, size_t *size, char *msg,
                       size_t msg_size)
{
    json_t *io = json_object_get(doc, key);
    json_int_t n = json_integer_value(json_object_get(io, "size"));
    if (!json_is_object(io) || n < 1 || n > EF_MANIFEST_MAX_IO)
        return fail(msg, msg_size, "%s.size must be an integer in 1..%d", key, EF_MANIFEST_MAX_IO);
    json_t *names = json_object_get(io, names_key);
    /* json_array_size() of a non-array is 0, so the type is checked first. */
    if (names &&
        (!json_is_array(names) || (json_array_size(names) != 0 && !strings_ok(names, (size_t)n))))
        return fail(msg, msg_size, "%s.%s must be %lld strings", key, names_key, (long long)n);
    *size = (size_t)n;
    return 0;
}

static int validate(struct ef_manifest *m, char *msg, size_t msg_size)
{
    json_t *doc = m->doc;
    int rc;
    if (!json_is_object(doc))
        return fail(msg, msg_size, "manifest must be an object");
    if (json_integer_value(json_object_get(doc, "format")) != EF_MANIFEST_FORMAT)
        return fail(msg, msg_size, "format must be %d", EF_MANIFEST_FORMAT);
    m->name = ef_json_str(doc, "name");
    if (!ef_name_valid(m->name))
        return fail(msg, msg_size, "name must match [a-z0-9][a-z0-9._-]{0,63}");
    if (ef_json_int(doc, "version", &m->version) != 0 || m->version < 1)
        return fail(msg, msg_size, "version must be an integer >= 1");
    m->backend = ef_json_str(doc, "backend");
    if (!m->backend || (strcmp(m->backend, "fann") != 0 && strcmp(m->backend, "fann-fixed") != 0))
        return fail(msg, msg_size, "backend must be fann or fann-fixed");
    json_t *cls = json_object_get(doc, "device_class");
    if (cls && !json_is_null(cls) && !ef_name_valid(json_string_value(cls)))
        return fail(msg, msg_size, "device_class must be a name or null");
    m->device_class = json_string_value(cls);
    json_t *artifact = json_object_get(doc, "artifact");
    m->sha256 = ef_json_str(artifact, "sha256");
    if (!ef_is_sha256_hex(m->sha256))
        return fail(msg, msg_size, "artifact.sha256 must be 64 lowercase hex digits");
    if (ef_json_int(artifact, "size", &m->size) != 0 || m->size < 1)
        return fail(msg, msg_size, "artifact.size must be a positive integer");
    if ((rc = validate_io(doc, "input", "features", &m->input_size, msg, msg_size)) != 0 ||
        (rc = validate_io(doc, "output", "labels", &m->output_size, msg, msg_size)) != 0)
        return rc;
    json_t *vectors = json_object_get(doc, "test_vectors");
    if (vectors && !json_is_array(vectors))
        return fail(msg, msg_size, "test_vectors must be an array");
    size_t i;
    json_t *v;
    json_array_foreach(vectors, i, v)
    {
        json_t *tol = json_object_get(v, "tolerance");
        if (!numbers_ok(json_object_get(v, "input"), m->input_size) ||
            !numbers_ok(json_object_get(v, "output"), m->output_size) || !json_is_number(tol) ||
            json_number_value(tol) < 0)
            return fail(msg, msg_size,
                        "test_vectors[%zu] must have input[%zu], output[%zu] and a "
                        "tolerance >= 0",
                        i, m->input_size, m->output_size);
    }
    m->test_vector_count = json_array_size(vectors);
    json_t *baseline = json_object_get(doc, "baseline");
    if (baseline && !json_is_null(baseline)) {
        json_t *features = json_object_get(baseline, "features");
        json_t *output = json_object_get(baseline, "output");
        if (json_array_size(features) != m->input_size || json_array_size(output) != m->output_size)
            return fail(msg, msg_size, "baseline needs one histogram per input and per output");
        json_array_foreach(features, i, v) if (!histogram_ok(v)) return fail(
            msg, msg_size,
            "baseline.features[%zu] must be {edges[bins+1] increasing, fractions[bins] summing to "
            "1}",
            i);
        json_array_foreach(output, i, v) if (!histogram_ok(v)) return fail(
            msg, msg_size,
            "baseline.output[%zu] must be {edges[bins+1] increasing, fractions[bins] summing to 1}",
            i);
    }
    if (!json_is_string(json_object_get(doc, "created_at")))
        return fail(msg, msg_size, "created_at must be an RFC 3339 time");
    return 0;
}

int ef_manifest_from_json(json_t *doc, struct ef_manifest **out, char *msg, size_t msg_size)
{
    struct ef_manifest *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return EF_ENOMEM;
    m->doc = json_incref(doc);
    int rc = validate(m, msg, msg_size);
    if (rc != 0) {
        ef_manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int ef_manifest_parse(const char *bytes, size_t len, struct ef_manifest **out, char *msg,
                      size_t msg_size)
{
    json_t *doc = NULL;
    *out = NULL;
    int rc = ef_json_load(bytes, len, EF_MANIFEST_MAX_BYTES, &doc, msg, msg_size);
    if (rc == 0)
        rc = ef_manifest_from_json(doc, out, msg, msg_size);
    json_decref(doc);
    return rc;
}

int ef_manifest_verify_parse(const char *bytes, size_t len, const char *sig_b64,
                             const unsigned char release_pk[EF_PK_BYTES], struct ef_manifest **out,
                             char *msg, size_t msg_size)
{
    *out = NULL;
    int rc = ef_verify_b64(release_pk, bytes, len, sig_b64);
    if (rc != 0) {
        if (msg && msg_size)
            snprintf(msg, msg_size, "manifest signature %s",
                     rc == EF_EPARSE ? "is not base64 of 64 bytes" : "does not verify");
        return rc;
    }
    return ef_manifest_parse(bytes, len, out, msg, msg_size);
}

char *ef_manifest_serialize(const struct ef_manifest *m)
{
    return ef_json_dump(m->doc);
}

int ef_manifest_test_vector(const struct ef_manifest *m, size_t i, double *in, double *out,
                            double *tolerance)
{
    json_t *v = json_array_get(json_object_get(m->doc, "test_vectors"), i);
    if (!v)
        return EF_ENOENT;
    json_t *a = json_object_get(v, "input"), *b = json_object_get(v, "output");
    for (size_t k = 0; k < m->input_size; k++)
        in[k] = json_number_value(json_array_get(a, k));
    for (size_t k = 0; k < m->output_size; k++)
        out[k] = json_number_value(json_array_get(b, k));
    *tolerance = json_number_value(json_object_get(v, "tolerance"));
    return 0;
}

void ef_manifest_free(struct ef_manifest *m)
{
    if (!m)
        return;
    json_decref(m->doc);
    free(m);
}

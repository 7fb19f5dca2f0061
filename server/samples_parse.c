/* samples_parse.c - parsing and checking one batch of samples a device
 * uploads (docs/monitoring.md, "Data collection and datasets"). */
#include "server/samples_parse.h"
#include "server/telemetry_parse.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SAMPLES_MODEL_SIZE == TELEMETRY_MODEL_SIZE, "model names have one size");

/* Formats msg and returns rc. */
static int fail(char *msg, size_t msg_size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t msg_size, int rc, const char *fmt, ...)
{
    va_list ap;
    if (msg && msg_size) {
        va_start(ap, fmt);
        vsnprintf(msg, msg_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Reads sample i (an object {"input", "label"?}) into b->items[i], its
 * numbers appended at b->values[*used]. */
static int parse_sample(const json_t *s, size_t i, struct samples_batch *b, size_t *used, char *msg,
                        size_t msg_size)
{
    static const char *const keys[] = {"input", "label", NULL};
    const char *unknown = NULL;
    const json_t *input = json_object_get(s, "input"), *label = json_object_get(s, "label"), *v;
    struct samples_item *item = &b->items[i];
    size_t n, k;
    if (!json_is_object(s))
        return fail(msg, msg_size, EF_EINVAL, "samples[%zu] must be an object", i);
    if (!ef_json_keys_allowed(s, keys, &unknown))
        return fail(msg, msg_size, EF_EINVAL, "samples[%zu] has an unknown key \"%.40s\"", i,
                    unknown);
    n = json_array_size(input);
    if (!json_is_array(input) || n < 1 || n > SAMPLES_MAX_INPUT)
        return fail(msg, msg_size, EF_EINVAL, "samples[%zu].input must be 1..%d numbers", i,
                    SAMPLES_MAX_INPUT);
    item->offset = *used;
    item->len = n;
    json_array_foreach(input, k, v)
    {
        double d = json_number_value(v);
        if (!json_is_number(v) || !isfinite(d))
            return fail(msg, msg_size, EF_EINVAL, "samples[%zu].input[%zu] must be a finite number",
                        i, k);
        b->values[(*used)++] = d;
    }
    item->label = -1;
    if (label && !json_is_null(label)) {
        if (!json_is_integer(label) || json_integer_value(label) < 0 ||
            json_integer_value(label) > SAMPLES_MAX_LABEL)
            return fail(msg, msg_size, EF_EINVAL,
                        "samples[%zu].label must be a class index (0..%d) or null", i,
                        SAMPLES_MAX_LABEL);
        item->label = (int)json_integer_value(label);
        b->labelled++;
    }
    return 0;
}

int samples_parse(const char *body, size_t len, struct samples_batch *out, long *bad_index,
                  char *msg, size_t msg_size)
{
    static const char *const keys[] = {"model", "dataset_id", "samples", NULL};
    const char *unknown = NULL, *model;
    json_t *doc = NULL, *samples, *s;
    size_t total = 0, used = 0, i;
    int64_t dataset_id = 0;
    int rc;
    memset(out, 0, sizeof(*out));
    if (bad_index)
        *bad_index = -1;
    if (msg && msg_size)
        msg[0] = '\0';
    if ((rc = ef_json_load(body, len, SAMPLES_MAX_BYTES, &doc, msg, msg_size)) != 0)
        goto out;
    if (!json_is_object(doc)) {
        rc = fail(msg, msg_size, EF_EINVAL, "the body must be a JSON object");
        goto out;
    }
    if (!ef_json_keys_allowed(doc, keys, &unknown)) {
        rc = fail(msg, msg_size, EF_EINVAL, "unknown key \"%.40s\"", unknown);
        goto out;
    }
    model = ef_json_str(doc, "model");
    if (!model || telemetry_model_parse(model, out->model, &out->version) != 0) {
        rc = fail(msg, msg_size, EF_EINVAL, "model must be \"NAME@VERSION\"");
        goto out;
    }
    if (ef_json_int(doc, "dataset_id", &dataset_id) != 0 || dataset_id < 1) {
        rc = fail(msg, msg_size, EF_EINVAL, "dataset_id must be a positive integer");
        goto out;
    }
    out->dataset_id = dataset_id;
    samples = json_object_get(doc, "samples");
    if (!json_is_array(samples) || json_array_size(samples) == 0) {
        rc = fail(msg, msg_size, EF_EINVAL, "samples must be a non-empty array");
        goto out;
    }
    if (json_array_size(samples) > SAMPLES_MAX_COUNT) {
        rc = fail(msg, msg_size, EF_ETOOBIG, "an upload may hold at most %d samples",
                  SAMPLES_MAX_COUNT);
        goto out;
    }
    /* Sizes first, so that the values are one allocation bounded by the
     * body (each number takes at least one byte of it). */
    json_array_foreach(samples, i, s)
    {
        size_t n = json_array_size(json_object_get(s, "input"));
        total += n <= SAMPLES_MAX_INPUT ? n : 0;
    }
    out->count = json_array_size(samples);
    out->items = calloc(out->count, sizeof(*out->items));
    out->values = malloc((total ? total : 1) * sizeof(*out->values));
    if (!out->items || !out->values) {
        rc = fail(msg, msg_size, EF_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(samples, i, s)
    {
        if ((rc = parse_sample(s, i, out, &used, msg, msg_size)) != 0) {
            if (bad_index)
                *bad_index = (long)i;
            goto out;
        }
    }
out:
    json_decref(doc);
    if (rc != 0)
        samples_batch_clear(out);
    return rc;
}

int samples_check(const struct samples_batch *b, size_t input_size, size_t output_size, char *msg,
                  size_t msg_size)
{
    /* A single output is a probability: its label says which side of 0.5. */
    size_t classes = output_size == 1 ? 2 : output_size;
    for (size_t i = 0; i < b->count; i++) {
        if (b->items[i].len != input_size)
            return fail(msg, msg_size, EF_EINVAL,
                        "samples[%zu].input has %zu numbers; the model takes %zu", i,
                        b->items[i].len, input_size);
        if (b->items[i].label >= 0 && (size_t)b->items[i].label >= classes)
            return fail(msg, msg_size, EF_EINVAL,
                        "samples[%zu].label %d is outside 0..%zu for this model", i,
                        b->items[i].label, classes - 1);
    }
    return 0;
}

void samples_batch_clear(struct samples_batch *b)
{
    if (!b)
        return;
    free(b->items);
    free(b->values);
    memset(b, 0, sizeof(*b));
}

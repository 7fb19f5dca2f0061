/* telemetry_parse.c - parsing and checking one device telemetry window. */
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TELEMETRY_MAX_RSS (1LL << 50) /* bytes: a petabyte is not a device */

int telemetry_model_parse(const char *s, char name[TELEMETRY_MODEL_SIZE], int64_t *version)
{
    const char *at = strchr(s, '@');
    size_t n = at ? (size_t)(at - s) : 0;
    int64_t v = 0;
    if (!at || n == 0 || n >= TELEMETRY_MODEL_SIZE || at[1] < '1' || at[1] > '9')
        return EF_EINVAL;
    for (const char *p = at + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return EF_EINVAL;
        v = v * 10 + (*p - '0');
    }
    memcpy(name, s, n);
    name[n] = '\0';
    if (!ef_name_valid(name))
        return EF_EINVAL;
    *version = v;
    return 0;
}

/* An integer member in 0..max into *out; an absent or null one leaves *out
 * alone when optional. False when it is anything else. */
static bool count_member(const json_t *doc, const char *key, bool optional, int64_t max,
                         int64_t *out)
{
    const json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v))
        return optional;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* A finite number (integer or real) in 0..max. */
static bool number_value(const json_t *v, double max, double *out)
{
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0 || d > max)
        return false;
    *out = d;
    return true;
}

/* latency_ms: exactly {p50, p95, p99, max}, each a number of ms. */
static bool latency_member(const json_t *lat, struct telemetry_window *w)
{
    static const char *const keys[] = {"p50", "p95", "p99", "max", NULL};
    double *const dest[] = {&w->p50, &w->p95, &w->p99, &w->max_ms};
    const char *unknown = NULL;
    if (!json_is_object(lat) || !ef_json_keys_allowed(lat, keys, &unknown))
        return false;
    for (size_t i = 0; keys[i]; i++)
        if (!number_value(json_object_get(lat, keys[i]), TELEMETRY_MAX_MS, dest[i]))
            return false;
    w->has_latency = true;
    return true;
}

int telemetry_parse(const char *payload, size_t len, struct telemetry_window *out, char *msg,
                    size_t msg_size)
{
    static const char *const allowed[] = {"window_start", "window_s",   "model",    "inferences",
                                          "errors",       "latency_ms", "feedback", "accuracy",
                                          "rss_bytes",    "cpu_s",      NULL};
    const char *unknown = NULL;
    const json_t *v;
    json_t *doc = NULL;
    char ignored[8];
    struct telemetry_window w;
    if (!msg) {
        msg = ignored;
        msg_size = sizeof(ignored);
    }
    memset(&w, 0, sizeof(w));
    w.rss_bytes = -1;
    int rc = ef_json_load(payload, len, TELEMETRY_MAX_BYTES, &doc, msg, msg_size);
    if (rc != 0)
        goto out;
    rc = EF_EINVAL;
    if (!json_is_object(doc)) {
        snprintf(msg, msg_size, "a window is a JSON object");
        goto out;
    }
    if (!ef_json_keys_allowed(doc, allowed, &unknown)) {
        snprintf(msg, msg_size, "unknown field %.40s", unknown);
        goto out;
    }
    v = json_object_get(doc, "window_start");
    if (!json_is_string(v) || ef_time_parse(json_string_value(v), &w.window_start) != 0) {
        snprintf(msg, msg_size, "window_start must be an RFC 3339 UTC time");
        goto out;
    }
    if (!number_value(json_object_get(doc, "window_s"), TELEMETRY_MAX_WINDOW_S, &w.window_s)) {
        snprintf(msg, msg_size, "window_s must be a number of seconds, 0 to %.0f",
                 TELEMETRY_MAX_WINDOW_S);
        goto out;
    }
    v = json_object_get(doc, "model");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || telemetry_model_parse(json_string_value(v), w.model, &w.version))) {
        snprintf(msg, msg_size, "model must be NAME@VERSION or null");
        goto out;
    }
    if (!count_member(doc, "inferences", false, TELEMETRY_MAX_COUNT, &w.inferences) ||
        !count_member(doc, "errors", false, w.inferences, &w.errors)) {
        snprintf(msg, msg_size, "inferences and errors must be counts, errors <= inferences");
        goto out;
    }
    v = json_object_get(doc, "latency_ms");
    if (v && !json_is_null(v) && (w.inferences == 0 || !latency_member(v, &w))) {
        snprintf(msg, msg_size,
                 "latency_ms must be {p50, p95, p99, max} in ms, or null "
                 "without inferences");
        goto out;
    }
    if (!count_member(doc, "feedback", true, TELEMETRY_MAX_COUNT, &w.feedback)) {
        snprintf(msg, msg_size, "feedback must be a count");
        goto out;
    }
    v = json_object_get(doc, "accuracy");
    if (v && !json_is_null(v)) {
        if (w.feedback == 0 || !number_value(v, 1.0, &w.accuracy)) {
            snprintf(msg, msg_size, "accuracy must be 0..1 with feedback, or null");
            goto out;
        }
        w.has_accuracy = true;
    }
    if (!count_member(doc, "rss_bytes", true, TELEMETRY_MAX_RSS, &w.rss_bytes)) {
        snprintf(msg, msg_size, "rss_bytes must be a byte count or null");
        goto out;
    }
    v = json_object_get(doc, "cpu_s");
    if (v && !number_value(v, TELEMETRY_MAX_CPU_S, &w.cpu_s)) {
        snprintf(msg, msg_size, "cpu_s must be a number of seconds");
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    if (rc == 0)
        *out = w;
    else
        memset(out, 0, sizeof(*out));
    return rc;
}

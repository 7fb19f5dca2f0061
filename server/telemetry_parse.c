/* telemetry_parse.c - parsing and checking one device telemetry window
 * (docs/monitoring.md, "Telemetry window"). */
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* True when every member of obj is one of keys (NULL-terminated): as
 * ef_json_keys_allowed, by counting the keys present (duplicates were
 * refused at load), which is hash lookups instead of string comparisons of
 * every member with every key. */
static bool keys_known(const json_t *obj, const char *const *keys)
{
    size_t known = 0;
    for (const char *const *k = keys; *k; k++)
        known += json_object_get(obj, *k) != NULL;
    return known == json_object_size(obj);
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
    if (!json_is_object(lat) || !keys_known(lat, keys))
        return false;
    for (size_t i = 0; keys[i]; i++)
        if (!number_value(json_object_get(lat, keys[i]), TELEMETRY_MAX_MS, dest[i]))
            return false;
    w->has_latency = true;
    return true;
}

/* A number member that may be absent or null (false *has); otherwise a finite
 * number in 0..max. */
static bool optional_number(const json_t *doc, const char *key, double max, bool *has, double *out)
{
    const json_t *v = json_object_get(doc, key);
    *has = false;
    if (!v || json_is_null(v))
        return true;
    if (!number_value(v, max, out))
        return false;
    *has = true;
    return true;
}

/* True when a and b are the same measurement, allowing for a decimal
 * round trip. */
static bool same_value(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (1.0 + fabs(a) + fabs(b));
}

/* An array of at most TELEMETRY_MAX_PSI PSI values (at least min) into a new
 * reference *copy; its largest value into *max (0 when empty). */
static bool psi_array(const json_t *v, size_t min, json_t **copy, double *max)
{
    size_t i;
    const json_t *x;
    double d;
    *copy = NULL;
    *max = 0;
    if (!json_is_array(v) || json_array_size(v) < min || json_array_size(v) > TELEMETRY_MAX_PSI)
        return false;
    json_array_foreach(v, i, x)
    {
        if (!number_value(x, TELEMETRY_MAX_PSI_VALUE, &d))
            return false;
        if (i == 0 || d > *max)
            *max = d;
    }
    /* A reference, not a copy: it outlives the document. */
    *copy = json_incref((json_t *)v);
    return true;
}

/* drift: exactly {n, features, output, max, output_max}; the arrays go into
 * detail as {"n", "features", "output"} (*psi, a new reference). */
static bool drift_member(const json_t *drift, struct telemetry_window *w, json_t **psi)
{
    static const char *const keys[] = {"n", "features", "output", "max", "output_max", NULL};
    json_t *features = NULL, *output = NULL;
    const json_t *omax;
    double fmax, outmax;
    bool ok = false;
    *psi = NULL;
    if (!json_is_object(drift) || !keys_known(drift, keys) ||
        !count_member(drift, "n", false, w->inferences, &w->drift_n) ||
        w->drift_n < TELEMETRY_DRIFT_MIN_N ||
        !psi_array(json_object_get(drift, "features"), 1, &features, &fmax) ||
        !psi_array(json_object_get(drift, "output"), 0, &output, &outmax) ||
        !number_value(json_object_get(drift, "max"), TELEMETRY_MAX_PSI_VALUE, &w->drift) ||
        !same_value(w->drift, fmax))
        goto out;
    omax = json_object_get(drift, "output_max");
    if (json_array_size(output) == 0) {
        if (!json_is_null(omax))
            goto out;
    } else if (!number_value(omax, TELEMETRY_MAX_PSI_VALUE, &w->drift_output) ||
               !same_value(w->drift_output, outmax)) {
        goto out;
    } else {
        w->has_drift_output = true;
    }
    *psi = json_pack("{s:I, s:O, s:O}", "n", (json_int_t)w->drift_n, "features", features, "output",
                     output);
    w->has_drift = *psi != NULL;
    ok = w->has_drift;
out:
    json_decref(features);
    json_decref(output);
    return ok;
}

/* confusion: 2..TELEMETRY_MAX_CLASSES rows of as many counts, together at
 * most the window's feedback; a new reference *copy. */
static bool confusion_member(const json_t *m, int64_t feedback, json_t **copy)
{
    size_t i, j, n = json_array_size(m);
    const json_t *row, *x;
    int64_t total = 0;
    *copy = NULL;
    if (!json_is_array(m) || n < 2 || n > TELEMETRY_MAX_CLASSES || feedback == 0)
        return false;
    json_array_foreach(m, i, row)
    {
        if (!json_is_array(row) || json_array_size(row) != n)
            return false;
        json_array_foreach(row, j, x)
        {
            if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                json_integer_value(x) > feedback - total)
                return false;
            total += json_integer_value(x);
        }
    }
    *copy = json_incref((json_t *)m);
    return true;
}

/* shadow: exactly {model, inferences, errors, agreement, feedback, accuracy},
 * its counts within the window's. */
static bool shadow_member(const json_t *sh, struct telemetry_window *w)
{
    static const char *const keys[] = {"model",    "inferences", "errors", "agreement",
                                       "feedback", "accuracy",   NULL};
    const json_t *model = json_object_get(sh, "model");
    if (!json_is_object(sh) || !keys_known(sh, keys) || !json_is_string(model) ||
        telemetry_model_parse(json_string_value(model), w->shadow_model, &w->shadow_version) ||
        !count_member(sh, "inferences", false, w->inferences, &w->shadow_inferences) ||
        !count_member(sh, "errors", false, w->shadow_inferences, &w->shadow_errors) ||
        !count_member(sh, "feedback", false, w->feedback, &w->shadow_feedback) ||
        !optional_number(sh, "agreement", 1.0, &w->has_shadow_agreement, &w->shadow_agreement) ||
        !optional_number(sh, "accuracy", 1.0, &w->has_shadow_accuracy, &w->shadow_accuracy) ||
        (w->has_shadow_agreement && w->shadow_inferences == 0) ||
        (w->has_shadow_accuracy && w->shadow_feedback == 0))
        return false;
    w->has_shadow = true;
    return true;
}

/*
 * The detail text from the payload's own bytes. The payload is a document
 * jansson has accepted, so well-formed JSON, and these scanners only find
 * where its members are; they never decide what is valid.
 */

/* A member's value in the payload: bytes [start, end). */
struct span {
    size_t start, end;
};

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Past the string that opens at p[i]. */
static size_t skip_string(const char *p, size_t i, size_t len)
{
    for (i++; i < len && p[i] != '"'; i++)
        if (p[i] == '\\')
            i++;
    return i + 1;
}

/* Past the value that starts at p[i]. */
static size_t skip_value(const char *p, size_t i, size_t len)
{
    int depth = 0;
    if (i < len && p[i] == '"')
        return skip_string(p, i, len);
    if (i < len && p[i] != '{' && p[i] != '[') {
        while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' &&
               p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            i++;
        return i;
    }
    while (i < len) {
        if (p[i] == '"') {
            i = skip_string(p, i, len);
            continue;
        }
        if (p[i] == '{' || p[i] == '[')
            depth++;
        else if (p[i] == '}' || p[i] == ']')
            depth--;
        i++;
        if (depth == 0)
            break;
    }
    return i;
}

/* The values of members keys[0..n) of the object that starts at p[i] into
 * spans[0..n) (left alone when absent), in one pass that stops when it has
 * them all (keys are unique: jansson refused duplicates). False when a key
 * is written with escapes, which only the parsed document can compare. */
static bool member_spans(const char *p, size_t i, size_t len, const char *const *keys,
                         struct span *spans, size_t n)
{
    size_t found = 0;
    if (i >= len || p[i] != '{')
        return false;
    for (i = skip_ws(p, i + 1, len); i < len && p[i] == '"' && found < n;) {
        size_t kend = skip_string(p, i, len), klen = kend - i - 2; /* past the closing quote */
        const char *key = p + i + 1;
        struct span *dest = NULL;
        if (kend > len || memchr(key, '\\', klen))
            return false;
        for (size_t k = 0; k < n && !dest; k++)
            if (strlen(keys[k]) == klen && memcmp(key, keys[k], klen) == 0)
                dest = &spans[k];
        i = skip_ws(p, kend, len);
        size_t start = i = skip_ws(p, i + 1, len); /* past the colon */
        i = skip_value(p, i, len);
        if (i > len)
            return false;
        if (dest) {
            *dest = (struct span){start, i};
            found++;
        }
        i = skip_ws(p, i, len);
        if (i < len && p[i] == ',')
            i = skip_ws(p, i + 1, len);
    }
    return true;
}

/* Appends n bytes to the text at *end. */
static void put(char **end, const char *bytes, size_t n)
{
    memcpy(*end, bytes, n);
    *end += n;
}
#define PUT(literal) put(&end, literal, sizeof(literal) - 1)

/* The detail text (telemetry_window.detail) of a payload whose drift (when
 * drift_n > 0) and confusion (when confusion) were accepted, made of the
 * payload's own array text, into a new string *out. False when the members
 * cannot be found by their plain names (the caller formats the parsed
 * arrays instead); true with *out NULL when out of memory. */
static bool detail_raw(const char *p, size_t len, int64_t drift_n, bool confusion, char **out)
{
    static const char *const top_keys[] = {"confusion", "drift"};
    static const char *const drift_keys[] = {"features", "output"};
    struct span top[2] = {{0, 0}, {0, 0}}, arrays[2] = {{0, 0}, {0, 0}};
    const struct span *c = &top[0], *f = &arrays[0], *o = &arrays[1];
    char n[24], *text, *end;
    int nlen = snprintf(n, sizeof(n), "%lld", (long long)drift_n);
    *out = NULL;
    /* Jansson reads past a NUL byte between tokens; the copied text must not
     * hold one. */
    if (memchr(p, '\0', len))
        return false;
    /* Only the members the window carries, so that the scan can stop early. */
    if (!member_spans(p, skip_ws(p, 0, len), len, confusion ? top_keys : top_keys + 1,
                      confusion ? top : top + 1, (size_t)confusion + (drift_n > 0)) ||
        (confusion && c->end == 0))
        return false;
    if (drift_n > 0 &&
        (top[1].end == 0 || !member_spans(p, top[1].start, len, drift_keys, arrays, 2) ||
         f->end == 0 || o->end == 0))
        return false;
    /* {"confusion":C,"psi":{"features":F,"n":N,"output":O}} */
    if (!(end = text =
              malloc(128 + (c->end - c->start) + (f->end - f->start) + (o->end - o->start))))
        return true;
    PUT("{");
    if (confusion) {
        PUT("\"confusion\":");
        put(&end, p + c->start, c->end - c->start);
    }
    if (drift_n > 0) {
        if (confusion)
            PUT(",");
        PUT("\"psi\":{\"features\":");
        put(&end, p + f->start, f->end - f->start);
        PUT(",\"n\":");
        put(&end, n, (size_t)nlen);
        PUT(",\"output\":");
        put(&end, p + o->start, o->end - o->start);
        PUT("}");
    }
    put(&end, "}", 2); /* and its NUL */
    *out = text;
    return true;
}

void telemetry_window_clear(struct telemetry_window *w)
{
    if (!w)
        return;
    free(w->detail);
    memset(w, 0, sizeof(*w));
}

int telemetry_parse(const char *payload, size_t len, struct telemetry_window *out, char *msg,
                    size_t msg_size)
{
    static const char *const allowed[] = {"window_start", "window_s",   "model",    "inferences",
                                          "errors",       "latency_ms", "feedback", "accuracy",
                                          "rss_bytes",    "cpu_s",      "correct",  "confusion",
                                          "drift",        "confidence", "shadow",   NULL};
    const char *unknown = NULL;
    const json_t *v;
    json_t *doc = NULL, *psi = NULL, *confusion = NULL;
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
    if (!keys_known(doc, allowed)) {
        ef_json_keys_allowed(doc, allowed, &unknown);
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
    v = json_object_get(doc, "correct");
    if (v && !json_is_null(v)) {
        if (!count_member(doc, "correct", false, w.feedback, &w.correct)) {
            snprintf(msg, msg_size, "correct must be a count, at most feedback, or null");
            goto out;
        }
        w.has_correct = true;
    }
    if (w.has_correct && w.has_accuracy && w.feedback > 0 &&
        fabs(w.accuracy - (double)w.correct / (double)w.feedback) > 1e-6) {
        snprintf(msg, msg_size, "accuracy must be correct / feedback");
        goto out;
    }
    v = json_object_get(doc, "confusion");
    if (v && !json_is_null(v) && !confusion_member(v, w.feedback, &confusion)) {
        snprintf(msg, msg_size,
                 "confusion must be a square matrix of counts, 2 to %d classes, summing to "
                 "at most feedback, or null",
                 TELEMETRY_MAX_CLASSES);
        goto out;
    }
    v = json_object_get(doc, "drift");
    if (v && !json_is_null(v) && !drift_member(v, &w, &psi)) {
        snprintf(msg, msg_size,
                 "drift must be {n (%d..inferences), features, output (PSI 0..%.0f, at most %d), "
                 "max, output_max (their maxima)}, or null",
                 TELEMETRY_DRIFT_MIN_N, TELEMETRY_MAX_PSI_VALUE, TELEMETRY_MAX_PSI);
        goto out;
    }
    if (!optional_number(doc, "confidence", 1.0, &w.has_confidence, &w.confidence) ||
        (w.has_confidence && w.inferences == 0)) {
        snprintf(msg, msg_size, "confidence must be 0..1 with inferences, or null");
        goto out;
    }
    v = json_object_get(doc, "shadow");
    if (v && !json_is_null(v) && !shadow_member(v, &w)) {
        snprintf(msg, msg_size,
                 "shadow must be {model NAME@VERSION, inferences, errors, agreement 0..1|null, "
                 "feedback, accuracy 0..1|null} within the window's counts, or null");
        goto out;
    }
    if (psi || confusion) {
        rc = EF_ENOMEM;
        if (!detail_raw(payload, len, psi ? w.drift_n : 0, confusion != NULL, &w.detail)) {
            json_t *detail = json_object();
            if (detail && (!psi || json_object_set(detail, "psi", psi) == 0) &&
                (!confusion || json_object_set(detail, "confusion", confusion) == 0))
                w.detail = ef_json_dump(detail);
            json_decref(detail);
        }
        if (!w.detail) {
            snprintf(msg, msg_size, "out of memory");
            goto out;
        }
        w.detail_len = strlen(w.detail);
    }
    rc = 0;
out:
    json_decref(doc);
    json_decref(psi);
    json_decref(confusion);
    if (rc == 0) {
        *out = w;
    } else {
        free(w.detail);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

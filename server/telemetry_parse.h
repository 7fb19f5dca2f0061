/*
 * telemetry_parse.h - one metrics window from a device's `telemetry` topic,
 * parsed and checked (docs/monitoring.md, "Telemetry window").
 *
 * Payload (agent/metrics.h writes it), at most TELEMETRY_MAX_BYTES:
 *   {"window_start": RFC 3339 UTC, "window_s": N,
 *    "model": "NAME@VERSION" | null, "inferences": N, "errors": N,
 *    "latency_ms": {"p50": N, "p95": N, "p99": N, "max": N} | null,
 *    "feedback": N, "accuracy": N | null, "correct": N | null,
 *    "confusion": [[N, ...], ...] | null,
 *    "drift": {"n": N, "features": [psi...], "output": [psi...],
 *              "max": N, "output_max": N | null} | null,
 *    "confidence": N | null,
 *    "shadow": {"model": "NAME@VERSION", "inferences": N, "errors": N,
 *               "agreement": N | null, "feedback": N, "accuracy": N | null} | null,
 *    "rss_bytes": N | null, "cpu_s": N}
 * window_start, window_s, inferences and errors are required; the others may
 * be absent, which reads as null (or 0 for feedback and cpu_s). Refused:
 * unknown or duplicate keys (in the window, drift and shadow), wrong types,
 * negative counts, errors above inferences, latency or confidence without
 * inferences, accuracy outside 0..1 or without feedback, correct above
 * feedback or disagreeing with accuracy, a confusion matrix that is not
 * square (2..TELEMETRY_MAX_CLASSES rows of equal length), comes without
 * feedback or counts more than the feedback, drift with fewer than
 * TELEMETRY_DRIFT_MIN_N or more than `inferences` inputs, PSI arrays of more
 * than TELEMETRY_MAX_PSI entries (features at least one), a PSI negative or
 * above TELEMETRY_MAX_PSI_VALUE, max / output_max that are not the maxima of
 * their arrays, shadow counts above the window's (inferences, feedback) or
 * errors above its inferences, shadow agreement or accuracy outside 0..1 or
 * without their counts, and non-finite or out-of-range numbers.
 */
#ifndef EF_TELEMETRY_PARSE_H
#define EF_TELEMETRY_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TELEMETRY_MAX_BYTES     (64u * 1024u)
#define TELEMETRY_MODEL_SIZE    65           /* a model name (ef_name_valid) and a NUL */
#define TELEMETRY_MAX_WINDOW_S  604800.0     /* seconds: a window of at most a week */
#define TELEMETRY_MAX_COUNT     1000000000LL /* inferences or feedback in one window */
#define TELEMETRY_MAX_MS        3600000.0    /* latency values, ms: at most an hour */
#define TELEMETRY_MAX_CPU_S     1e9          /* seconds of CPU in one window */
#define TELEMETRY_MAX_CLASSES   64           /* rows (and columns) of a confusion matrix */
#define TELEMETRY_MAX_PSI       65536        /* entries of drift.features or drift.output */
#define TELEMETRY_MAX_PSI_VALUE 100.0        /* a PSI above this is not a measurement */
#define TELEMETRY_DRIFT_MIN_N   10           /* inputs a window needs before it reports drift */

struct telemetry_window {
    int64_t window_start;                    /* when the window opened, Unix ms (device clock) */
    double window_s;                         /* its length, seconds */
    char model[TELEMETRY_MODEL_SIZE];        /* production model name; "" when none was serving */
    int64_t version;                         /* its version (>= 1); 0 when model is "" */
    int64_t inferences;                      /* served in the window, failed ones included */
    int64_t errors;                          /* of which failed, <= inferences */
    bool has_latency;                        /* false: latency_ms was null (no inference timed) */
    double p50, p95, p99, max_ms;            /* latency quantiles and maximum, ms */
    int64_t feedback;                        /* labelled feedback received */
    bool has_accuracy;                       /* false: accuracy was null */
    double accuracy;                         /* correct / feedback, 0..1 */
    int64_t rss_bytes;                       /* process RSS at the window's end; -1 when unknown */
    double cpu_s;                            /* process CPU time during the window, seconds */
    bool has_correct;                        /* false: correct was null */
    int64_t correct;                         /* feedback whose label matched, <= feedback */
    bool has_drift;                          /* false: drift was null */
    int64_t drift_n;                         /* inputs the drift was measured over */
    double drift;                            /* drift.max: largest input feature PSI */
    bool has_drift_output;                   /* false: drift null or drift.output_max null */
    double drift_output;                     /* drift.output_max: largest output PSI */
    bool has_confidence;                     /* false: confidence was null */
    double confidence;                       /* mean winning output, 0..1 */
    bool has_shadow;                         /* false: shadow was null */
    char shadow_model[TELEMETRY_MODEL_SIZE]; /* shadow model name */
    int64_t shadow_version;                  /* its version, >= 1 */
    int64_t shadow_inferences;               /* shadow runs, <= inferences */
    int64_t shadow_errors;                   /* of which failed, <= shadow_inferences */
    bool has_shadow_agreement;               /* false: shadow.agreement was null */
    double shadow_agreement;                 /* share of shadow answers agreeing with production */
    int64_t shadow_feedback;                 /* feedback that scored the shadow, <= feedback */
    bool has_shadow_accuracy;                /* false: shadow.accuracy was null */
    double shadow_accuracy;                  /* shadow correct / shadow feedback, 0..1 */
    /* Owned, NUL-terminated JSON text {"confusion": [[...]], "psi": {"features", "n",
     * "output"}} with the members the window carried, or NULL when it carried neither. The
     * arrays are the payload's own text (validated), not numbers formatted again: formatting
     * PSI values to 17 digits cost more than the rest of a window. */
    char *detail;
    size_t detail_len; /* strlen(detail), 0 when NULL */
};

/* Parses len bytes (not necessarily NUL-terminated) into *out, which the
 * caller releases with telemetry_window_clear (it owns out->detail).
 * EF_ETOOBIG (over TELEMETRY_MAX_BYTES), EF_EPARSE (not JSON, duplicate
 * keys), EF_EINVAL (missing, unknown, mistyped or out-of-range fields),
 * EF_ENOMEM; msg (may be NULL) says which. *out is cleared on failure. */
int telemetry_parse(const char *payload, size_t len, struct telemetry_window *out, char *msg,
                    size_t msg_size);

/* Frees what *w owns (detail) and zeroes it; accepts NULL. */
void telemetry_window_clear(struct telemetry_window *w);

/* Splits "NAME@VERSION" into name (TELEMETRY_MODEL_SIZE bytes) and
 * *version: NAME satisfies ef_name_valid, VERSION is a decimal integer >= 1
 * without sign or leading zeros. EF_EINVAL. */
int telemetry_model_parse(const char *s, char name[TELEMETRY_MODEL_SIZE], int64_t *version);

#endif

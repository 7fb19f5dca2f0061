/*
 * telemetry_parse.h - one metrics window from a device's `telemetry` topic,
 * parsed and checked.
 *
 * Payload (agent/metrics.h writes it), at most TELEMETRY_MAX_BYTES:
 *   {"window_start": RFC 3339 UTC, "window_s": N,
 *    "model": "NAME@VERSION" | null, "inferences": N, "errors": N,
 *    "latency_ms": {"p50": N, "p95": N, "p99": N, "max": N} | null,
 *    "feedback": N, "accuracy": N | null, "rss_bytes": N | null, "cpu_s": N}
 * window_start, window_s, inferences and errors are required; the others may
 * be absent, which reads as null (or 0 for feedback and cpu_s). Unknown keys,
 * duplicate keys, wrong types, negative counts, errors above inferences,
 * latency without inferences, accuracy outside 0..1 or without feedback, and
 * non-finite or out-of-range numbers are refused.
 */
#ifndef EF_TELEMETRY_PARSE_H
#define EF_TELEMETRY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TELEMETRY_MAX_BYTES    (8u * 1024u)
#define TELEMETRY_MODEL_SIZE   65           /* a model name (ef_name_valid) and a NUL */
#define TELEMETRY_MAX_WINDOW_S 604800.0     /* seconds: a window of at most a week */
#define TELEMETRY_MAX_COUNT    1000000000LL /* inferences or feedback in one window */
#define TELEMETRY_MAX_MS       3600000.0    /* latency values, ms: at most an hour */
#define TELEMETRY_MAX_CPU_S    1e9          /* seconds of CPU in one window */

struct telemetry_window {
    int64_t window_start;             /* when the window opened, Unix ms (device clock) */
    double window_s;                  /* its length, seconds */
    char model[TELEMETRY_MODEL_SIZE]; /* production model name; "" when none was serving */
    int64_t version;                  /* its version (>= 1); 0 when model is "" */
    int64_t inferences;               /* served in the window, failed ones included */
    int64_t errors;                   /* of which failed, <= inferences */
    bool has_latency;                 /* false: latency_ms was null (no inference timed) */
    double p50, p95, p99, max_ms;     /* latency quantiles and maximum, ms */
    int64_t feedback;                 /* labelled feedback received */
    bool has_accuracy;                /* false: accuracy was null */
    double accuracy;                  /* correct / feedback, 0..1 */
    int64_t rss_bytes;                /* process RSS at the window's end; -1 when unknown */
    double cpu_s;                     /* process CPU time during the window, seconds */
};

/* Parses len bytes (not necessarily NUL-terminated) into *out. EF_ETOOBIG
 * (over TELEMETRY_MAX_BYTES), EF_EPARSE (not JSON, duplicate keys),
 * EF_EINVAL (missing, unknown, mistyped or out-of-range fields); msg (may be
 * NULL) says which. *out is cleared on failure. */
int telemetry_parse(const char *payload, size_t len, struct telemetry_window *out, char *msg,
                    size_t msg_size);

/* Splits "NAME@VERSION" into name (TELEMETRY_MODEL_SIZE bytes) and
 * *version: NAME satisfies ef_name_valid, VERSION is a decimal integer >= 1
 * without sign or leading zeros. EF_EINVAL. */
int telemetry_model_parse(const char *s, char name[TELEMETRY_MODEL_SIZE], int64_t *version);

#endif

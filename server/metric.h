/*
 * metric.h - the metric names of docs/monitoring.md ("Storage: raw windows
 * and rollups") and how each is computed from telemetry windows: one table
 * that the telemetry query, rollups, trigger rules and gates share.
 *
 * Every metric is a ratio of sums (or a maximum), so that a window, a device
 * over a period and a rollup minute are all a struct metric_sums: add the
 * windows (metric_sums_add_window) or merge sums (metric_sums_merge), then
 * read a value (metric_sums_value). A value whose denominator is zero is
 * null (false), and does not count.
 */
#ifndef EF_METRIC_H
#define EF_METRIC_H

#include <stdbool.h>
#include <stdint.h>

struct telemetry_window;

/* The metrics, in the order of the doc's table. */
enum metric {
    METRIC_DRIFT,            /* drift.max, mean over windows */
    METRIC_DRIFT_OUTPUT,     /* drift.output_max, mean over windows (raw only, no rollup) */
    METRIC_ACCURACY,         /* sum(correct) / sum(feedback) */
    METRIC_ERROR_RATE,       /* sum(errors) / sum(inferences) */
    METRIC_LATENCY_P99,      /* largest latency_ms.p99, ms */
    METRIC_CONFIDENCE,       /* confidence, mean over windows */
    METRIC_SHADOW_AGREEMENT, /* shadow.agreement weighted by shadow inferences */
    METRIC_SHADOW_ACCURACY,  /* shadow.accuracy weighted by shadow feedback */
    METRIC_COUNT
};

/*
 * Sums over some windows; the same members as a telemetry_rollups row
 * (schema/006) plus drift_output. A window adds to a pair (sum, count) only
 * when it carries the value: feedback and correct only from windows that carry
 * `correct`, shadow_inferences and shadow_agreed only from windows whose
 * shadow agreement is not null, shadow_feedback and shadow_correct only from
 * those whose shadow accuracy is not null. Zero-initialise before use.
 */
struct metric_sums {
    int64_t windows;              /* windows added */
    int64_t inferences;           /* summed inferences */
    int64_t errors;               /* summed errors */
    int64_t feedback;             /* summed feedback of windows that carry correct */
    int64_t correct;              /* summed correct */
    double p99_sum;               /* summed latency p99, ms, over latency_windows */
    double p99_max;               /* largest latency p99, ms; 0 when latency_windows is 0 */
    int64_t latency_windows;      /* windows with latency */
    double drift_sum;             /* summed drift.max over drift_windows */
    double drift_max;             /* largest drift.max; 0 when drift_windows is 0 */
    int64_t drift_windows;        /* windows with drift */
    double drift_output_sum;      /* summed drift.output_max over drift_output_windows */
    int64_t drift_output_windows; /* windows with an output drift */
    double confidence_sum;        /* summed confidence over confidence_windows */
    int64_t confidence_windows;   /* windows with confidence */
    int64_t shadow_inferences;    /* summed shadow inferences of windows with agreement */
    double shadow_agreed;         /* summed agreement x shadow inferences */
    int64_t shadow_feedback;      /* summed shadow feedback of windows with shadow accuracy */
    double shadow_correct;        /* summed shadow accuracy x shadow feedback */
};

/* Looks a metric up by its name ("drift", "error_rate", ...): 0 and *out,
 * or EF_EINVAL for an unknown name (or NULL). */
int metric_parse(const char *name, enum metric *out);

/* The metric's name (static), or "unknown" for a value outside the enum. */
const char *metric_name(enum metric m);

/* True when the metric has a rollup value (all but drift_output). */
bool metric_rolled_up(enum metric m);

/* Adds one parsed window (telemetry_parse.h) to *s. */
void metric_sums_add_window(struct metric_sums *s, const struct telemetry_window *w);

/* Adds the sums of *from to *into. */
void metric_sums_merge(struct metric_sums *into, const struct metric_sums *from);

/* The value of metric m over *s into *out: true when it has one, false (and
 * *out 0) when its denominator is zero or m is out of range. */
bool metric_sums_value(const struct metric_sums *s, enum metric m, double *out);

#endif

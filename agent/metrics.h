/*
 * metrics.h - the agent's telemetry window: counts and latency quantiles of
 * the inferences served since the window opened, accuracy over the labelled
 * feedback received in it, process RSS and CPU.
 * At the end of each window (--metrics-interval) it is published on
 * edgefleet/v1/devices/{id}/telemetry and reset. Loop thread only.
 */
#ifndef EF_AGENT_METRICS_H
#define EF_AGENT_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct metrics;

/* A new metrics object whose first window opens now. EF_ENOMEM. */
int metrics_new(struct metrics **out);

/* Accepts NULL. */
void metrics_free(struct metrics *m);

/* Records one inference (ok false: it failed) and its latency in ms. A
 * non-finite latency counts the inference but not its latency. */
void metrics_observe(struct metrics *m, bool ok, double latency_ms);

/* Records one labelled feedback: whether the prediction it labels was
 * correct. */
void metrics_feedback(struct metrics *m, bool correct);

/* The window as a new JSON object, then starts a new window:
 *   {window_start: RFC 3339, window_s, model (null when NULL), inferences,
 *    errors, latency_ms: {p50, p95, p99, max} (null when no inference),
 *    feedback, accuracy (correct / feedback, null when no feedback),
 *    rss_bytes (null when unknown), cpu_s (user + system CPU time of the
 *    process during the window)}
 * Latency quantiles are within 1 % (common/quantile.h). NULL when out of
 * memory (the window is then kept). */
json_t *metrics_close_window(struct metrics *m, const char *model);

#endif

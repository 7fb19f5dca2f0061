/*
 * metrics.h - the agent's telemetry window (docs/monitoring.md): counts and
 * latency quantiles of the inferences served since the window opened,
 * drift (PSI of each input feature and output against the production
 * manifest's baseline), mean confidence, accuracy and confusion over the
 * labelled feedback received in it, the shadow model's agreement and
 * accuracy, process RSS and CPU.
 * At the end of each window (--metrics-interval) it is published on
 * edgefleet/v1/devices/{id}/telemetry and reset. Loop thread only.
 */
#ifndef EF_AGENT_METRICS_H
#define EF_AGENT_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_DRIFT_MIN_N 10    /* inputs a window needs before it reports drift */
#define METRICS_MAX_BYTES   65536 /* a serialized window stays below this */

struct metrics;
struct ef_manifest;

/* A new metrics object whose first window opens now. EF_ENOMEM. */
int metrics_new(struct metrics **out);

/* Accepts NULL. */
void metrics_free(struct metrics *m);

/* The production model changed to model_id ("NAME@VERSION", NULL with
 * manifest NULL: none). Drift is measured against manifest's baseline
 * (borrowed; copied here) from now on, and the drift and confusion counts
 * of the window start again; the same model_id again changes nothing. A
 * manifest without a baseline, or with one that does not read, gives no
 * drift (logged). 0, or EF_ENOMEM (then no drift either). */
int metrics_set_model(struct metrics *m, const struct ef_manifest *manifest, const char *model_id);

/* The model_id last given to metrics_set_model, "" when none. */
const char *metrics_model(const struct metrics *m);

/* Records one inference (ok false: it failed) and its latency in ms. A
 * non-finite latency counts the inference but not its latency. */
void metrics_observe(struct metrics *m, bool ok, double latency_ms);

/* Records the input and the (finite) output of one successful inference of
 * the production model: counted into the drift histograms when the sizes
 * are the model's, and into the mean confidence (the winning output clamped
 * to [0, 1]; for a single output o, max(o, 1 - o), the winning side). */
void metrics_observe_io(struct metrics *m, const double *in, size_t n_in, const double *out,
                        size_t n_out);

/* Records one labelled feedback: whether the prediction it labels was
 * correct (use metrics_feedback_class when the true class is known). */
void metrics_feedback(struct metrics *m, bool correct);

/* Records one labelled feedback of true class `truth` for a prediction of
 * class `predicted` made by a model with n_out outputs: counts it, counts it
 * correct when the two agree, and adds it to the confusion matrix (row
 * truth, column predicted) when n_out is the production model's, >= 2. */
void metrics_feedback_class(struct metrics *m, size_t truth, size_t predicted, size_t n_out);

/* Records one inference of the shadow model shadow_id ("NAME@VERSION"):
 * whether it ran (ok) and, when it did, whether it agreed with production
 * (same winning class). A different shadow_id than earlier in the window
 * starts the shadow counts again. */
void metrics_shadow_observe(struct metrics *m, const char *shadow_id, bool ok, bool agreed);

/* Records one labelled feedback scored against shadow_id's prediction. */
void metrics_shadow_feedback(struct metrics *m, const char *shadow_id, bool correct);

/* The window as a new JSON object, then starts a new window:
 *   {window_start: RFC 3339, window_s, model (null when NULL), inferences,
 *    errors, latency_ms: {p50, p95, p99, max} (null when no inference),
 *    feedback, correct, accuracy (correct / feedback, null when no
 *    feedback), confusion ([[n]] output_size x output_size, row = true
 *    class; null without feedback classes or for a single output),
 *    drift ({n, features, output, max, output_max}; null without a baseline
 *    or with fewer than METRICS_DRIFT_MIN_N inputs), confidence (null
 *    without observed outputs), shadow ({model, inferences, errors,
 *    agreement, feedback, accuracy}, null when no shadow ran),
 *    rss_bytes (null when unknown), cpu_s (user + system CPU time of the
 *    process during the window)}
 * Latency quantiles are within 1 % (common/quantile.h). Serialized it stays
 * below METRICS_MAX_BYTES: for models so large that it would not, confusion
 * and then drift are left out (null, logged). NULL when out of memory (the
 * window is then kept). */
json_t *metrics_close_window(struct metrics *m, const char *model);

#endif

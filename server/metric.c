/* metric.c - the metric table of docs/monitoring.md and its arithmetic. */
#include "server/metric.h"
#include "server/telemetry_parse.h"
#include "common/ef_error.h"

#include <math.h>
#include <string.h>

static const char *const names[METRIC_COUNT] = {
    [METRIC_DRIFT] = "drift",
    [METRIC_DRIFT_OUTPUT] = "drift_output",
    [METRIC_ACCURACY] = "accuracy",
    [METRIC_ERROR_RATE] = "error_rate",
    [METRIC_LATENCY_P99] = "latency_p99",
    [METRIC_CONFIDENCE] = "confidence",
    [METRIC_SHADOW_AGREEMENT] = "shadow_agreement",
    [METRIC_SHADOW_ACCURACY] = "shadow_accuracy",
};

int metric_parse(const char *name, enum metric *out)
{
    if (!name)
        return EF_EINVAL;
    for (int i = 0; i < METRIC_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (enum metric)i;
            return 0;
        }
    return EF_EINVAL;
}

const char *metric_name(enum metric m)
{
    return (int)m >= 0 && m < METRIC_COUNT ? names[m] : "unknown";
}

bool metric_rolled_up(enum metric m)
{
    return (int)m >= 0 && m < METRIC_COUNT && m != METRIC_DRIFT_OUTPUT;
}

void metric_sums_add_window(struct metric_sums *s, const struct telemetry_window *w)
{
    s->windows++;
    s->inferences += w->inferences;
    s->errors += w->errors;
    /* A window of an agent that predates `correct` still tells its accuracy. */
    if (w->has_correct || (w->has_accuracy && w->feedback > 0)) {
        s->feedback += w->feedback;
        s->correct += w->has_correct ? w->correct : llround(w->accuracy * (double)w->feedback);
    }
    if (w->has_latency) {
        s->p99_sum += w->p99;
        s->p99_max = s->latency_windows == 0 || w->p99 > s->p99_max ? w->p99 : s->p99_max;
        s->latency_windows++;
    }
    if (w->has_drift) {
        s->drift_sum += w->drift;
        s->drift_max = s->drift_windows == 0 || w->drift > s->drift_max ? w->drift : s->drift_max;
        s->drift_windows++;
    }
    if (w->has_drift_output) {
        s->drift_output_sum += w->drift_output;
        s->drift_output_windows++;
    }
    if (w->has_confidence) {
        s->confidence_sum += w->confidence;
        s->confidence_windows++;
    }
    if (w->has_shadow && w->has_shadow_agreement) {
        s->shadow_inferences += w->shadow_inferences;
        s->shadow_agreed += w->shadow_agreement * (double)w->shadow_inferences;
    }
    if (w->has_shadow && w->has_shadow_accuracy) {
        s->shadow_feedback += w->shadow_feedback;
        s->shadow_correct += w->shadow_accuracy * (double)w->shadow_feedback;
    }
}

void metric_sums_merge(struct metric_sums *into, const struct metric_sums *from)
{
    if (from->latency_windows > 0 && (into->latency_windows == 0 || from->p99_max > into->p99_max))
        into->p99_max = from->p99_max;
    if (from->drift_windows > 0 && (into->drift_windows == 0 || from->drift_max > into->drift_max))
        into->drift_max = from->drift_max;
    into->windows += from->windows;
    into->inferences += from->inferences;
    into->errors += from->errors;
    into->feedback += from->feedback;
    into->correct += from->correct;
    into->p99_sum += from->p99_sum;
    into->latency_windows += from->latency_windows;
    into->drift_sum += from->drift_sum;
    into->drift_windows += from->drift_windows;
    into->drift_output_sum += from->drift_output_sum;
    into->drift_output_windows += from->drift_output_windows;
    into->confidence_sum += from->confidence_sum;
    into->confidence_windows += from->confidence_windows;
    into->shadow_inferences += from->shadow_inferences;
    into->shadow_agreed += from->shadow_agreed;
    into->shadow_feedback += from->shadow_feedback;
    into->shadow_correct += from->shadow_correct;
}

/* num / den into *out when den > 0. */
static bool ratio(double num, double den, double *out)
{
    if (!(den > 0))
        return false;
    *out = num / den;
    return true;
}

bool metric_sums_value(const struct metric_sums *s, enum metric m, double *out)
{
    bool ok = false;
    *out = 0;
    switch (m) {
    case METRIC_DRIFT:
        ok = ratio(s->drift_sum, (double)s->drift_windows, out);
        break;
    case METRIC_DRIFT_OUTPUT:
        ok = ratio(s->drift_output_sum, (double)s->drift_output_windows, out);
        break;
    case METRIC_ACCURACY:
        ok = ratio((double)s->correct, (double)s->feedback, out);
        break;
    case METRIC_ERROR_RATE:
        ok = ratio((double)s->errors, (double)s->inferences, out);
        break;
    case METRIC_LATENCY_P99:
        if ((ok = s->latency_windows > 0))
            *out = s->p99_max;
        break;
    case METRIC_CONFIDENCE:
        ok = ratio(s->confidence_sum, (double)s->confidence_windows, out);
        break;
    case METRIC_SHADOW_AGREEMENT:
        ok = ratio(s->shadow_agreed, (double)s->shadow_inferences, out);
        break;
    case METRIC_SHADOW_ACCURACY:
        ok = ratio(s->shadow_correct, (double)s->shadow_feedback, out);
        break;
    default:
        break;
    }
    return ok;
}

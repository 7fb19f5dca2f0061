/*
 * trigger_eval.c - one rule over one model version's device sums: per-device
 * values, aggregation across devices, minimum devices and the comparison.
 */
#include "server/trigger_eval.h"
#include "common/ef_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const aggregation_names[] = {
    [TRIGGER_AGG_MEAN] = "mean",
    [TRIGGER_AGG_MAX] = "max",
    [TRIGGER_AGG_MIN] = "min",
    [TRIGGER_AGG_MEDIAN] = "median",
};
static const char *const op_names[] = {[TRIGGER_ABOVE] = "above", [TRIGGER_BELOW] = "below"};
static const char *const action_names[] = {
    [TRIGGER_ACTION_NONE] = "none",
    [TRIGGER_ACTION_RETRAIN] = "retrain",
    [TRIGGER_ACTION_PAUSE_ROLLOUT] = "pause_rollout",
    [TRIGGER_ACTION_ROLLBACK] = "rollback",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The index of name in names[0..n), or -1. */
static int lookup(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *trigger_aggregation_name(enum trigger_aggregation a)
{
    return (size_t)a < COUNT(aggregation_names) ? aggregation_names[a] : "unknown";
}

const char *trigger_op_name(enum trigger_op op)
{
    return (size_t)op < COUNT(op_names) ? op_names[op] : "unknown";
}

const char *trigger_action_name(enum trigger_action a)
{
    return (size_t)a < COUNT(action_names) ? action_names[a] : "unknown";
}

int trigger_aggregation_parse(const char *name, enum trigger_aggregation *out)
{
    int i = lookup(aggregation_names, COUNT(aggregation_names), name);
    if (i < 0)
        return EF_EINVAL;
    *out = (enum trigger_aggregation)i;
    return 0;
}

int trigger_op_parse(const char *name, enum trigger_op *out)
{
    int i = lookup(op_names, COUNT(op_names), name);
    if (i < 0)
        return EF_EINVAL;
    *out = (enum trigger_op)i;
    return 0;
}

int trigger_action_parse(const char *name, enum trigger_action *out)
{
    int i = lookup(action_names, COUNT(action_names), name);
    if (i < 0)
        return EF_EINVAL;
    *out = (enum trigger_action)i;
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct trigger_row *)a)->device, ((const struct trigger_row *)b)->device);
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The aggregate of n > 0 values; sorts them for the median. */
static double aggregate(enum trigger_aggregation a, double *v, size_t n)
{
    double acc = v[0];
    switch (a) {
    case TRIGGER_AGG_MEAN:
        for (size_t i = 1; i < n; i++)
            acc += v[i];
        return acc / (double)n;
    case TRIGGER_AGG_MAX:
        for (size_t i = 1; i < n; i++)
            acc = v[i] > acc ? v[i] : acc;
        return acc;
    case TRIGGER_AGG_MIN:
        for (size_t i = 1; i < n; i++)
            acc = v[i] < acc ? v[i] : acc;
        return acc;
    case TRIGGER_AGG_MEDIAN:
        qsort(v, n, sizeof(*v), double_cmp);
        /* An even count takes the mean of the two middle values. */
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    }
    return acc;
}

int trigger_evaluate(const struct trigger_rule *rule, struct trigger_row *rows, size_t n,
                     struct trigger_result *out)
{
    double *values = NULL;
    size_t count = 0;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if ((unsigned)rule->metric >= METRIC_COUNT ||
        (size_t)rule->aggregation >= COUNT(aggregation_names) ||
        (size_t)rule->op >= COUNT(op_names) || !isfinite(rule->threshold) || rule->min_devices < 1)
        return EF_EINVAL;
    if (n == 0)
        return 0;
    if (!(values = malloc(n * sizeof(*values))))
        return EF_ENOMEM;
    qsort(rows, n, sizeof(*rows), row_cmp);
    for (size_t i = 0; i < n;) {
        struct metric_sums sums = rows[i].sums;
        size_t j = i + 1;
        double v;
        for (; j < n && strcmp(rows[j].device, rows[i].device) == 0; j++)
            metric_sums_merge(&sums, &rows[j].sums);
        if (metric_sums_value(&sums, rule->metric, &v) && isfinite(v))
            values[count++] = v;
        i = j;
    }
    out->devices = (int64_t)count;
    out->enough = count > 0 && out->devices >= rule->min_devices;
    if (count > 0)
        out->value = aggregate(rule->aggregation, values, count);
    out->holds = out->enough && (rule->op == TRIGGER_ABOVE ? out->value > rule->threshold
                                                           : out->value < rule->threshold);
    free(values);
    return rc;
}

/*
 * trigger_eval.h - the pure evaluation of one trigger rule for one model
 * version (docs/monitoring.md, "Trigger rules, alerts and actions"): each
 * device's value of the rule's metric over its windows, the aggregation of
 * those values across devices, the minimum number of devices and the
 * comparison with the threshold. No I/O: the monitor (monitor.h) gathers the
 * sums (db_monitor.h) and acts on the verdict.
 */
#ifndef EF_TRIGGER_EVAL_H
#define EF_TRIGGER_EVAL_H

#include "server/metric.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRIGGER_DEVICE_SIZE 65 /* a device id (64 characters) and a NUL */

enum trigger_aggregation {
    TRIGGER_AGG_MEAN,
    TRIGGER_AGG_MAX,
    TRIGGER_AGG_MIN,
    TRIGGER_AGG_MEDIAN,
};

enum trigger_op {
    TRIGGER_ABOVE, /* value > threshold */
    TRIGGER_BELOW, /* value < threshold */
};

enum trigger_action {
    TRIGGER_ACTION_NONE,
    TRIGGER_ACTION_RETRAIN,
    TRIGGER_ACTION_PAUSE_ROLLOUT,
    TRIGGER_ACTION_ROLLBACK,
};

/* The terms of a rule that evaluation reads. */
struct trigger_rule {
    enum metric metric;
    enum trigger_aggregation aggregation;
    enum trigger_op op;
    double threshold;
    int64_t min_devices; /* devices with a value needed, >= 1 */
};

/* Windows of one device: one window's sums, or the sums of several. A
 * device may appear in several rows; its rows are merged. */
struct trigger_row {
    char device[TRIGGER_DEVICE_SIZE];
    struct metric_sums sums;
};

/* What evaluation found. */
struct trigger_result {
    bool holds;      /* enough devices and the comparison is true */
    bool enough;     /* at least min_devices devices had a value */
    double value;    /* the aggregate across devices; 0 when no device had a value */
    int64_t devices; /* devices that had a value */
};

/*
 * Evaluates rule over n rows (any order): merges each device's rows, takes
 * the metric's value of each device (metric_sums_value; devices without one
 * do not count), aggregates those values and compares the aggregate with the
 * threshold when there are at least min_devices of them. rows is reordered
 * (sorted by device). 0, EF_EINVAL (bad rule), EF_ENOMEM.
 */
int trigger_evaluate(const struct trigger_rule *rule, struct trigger_row *rows, size_t n,
                     struct trigger_result *out);

/* Names of the enums as the API spells them ("median", "above",
 * "pause_rollout"), static; and their parsers: 0 or EF_EINVAL. */
const char *trigger_aggregation_name(enum trigger_aggregation a);
const char *trigger_op_name(enum trigger_op op);
const char *trigger_action_name(enum trigger_action a);
int trigger_aggregation_parse(const char *name, enum trigger_aggregation *out);
int trigger_op_parse(const char *name, enum trigger_op *out);
int trigger_action_parse(const char *name, enum trigger_action *out);

#endif

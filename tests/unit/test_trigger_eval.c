/*
 * test_trigger_eval.c - one trigger rule over one model version's windows
 * (server/trigger_eval.c), against values computed by hand in the comments:
 * per-device values as the doc's table says (mean of windows, ratio of sums,
 * max), devices without a value left out, mean/max/min/median across
 * devices, min_devices and the strict comparisons.
 */
#include "server/metric.h"
#include "server/trigger_eval.h"
#include "common/ef_error.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define EPS      1e-12

/* A window of device with nothing but its count. */
static struct trigger_row row(const char *device)
{
    struct trigger_row r;
    memset(&r, 0, sizeof(r));
    snprintf(r.device, sizeof(r.device), "%s", device);
    r.sums.windows = 1;
    return r;
}

static struct trigger_row drift(const char *device, double psi)
{
    struct trigger_row r = row(device);
    r.sums.drift_sum = r.sums.drift_max = psi;
    r.sums.drift_windows = 1;
    return r;
}

static struct trigger_row feedback(const char *device, int64_t correct, int64_t n)
{
    struct trigger_row r = row(device);
    r.sums.correct = correct;
    r.sums.feedback = n;
    return r;
}

static struct trigger_row errors(const char *device, int64_t errors, int64_t inferences)
{
    struct trigger_row r = row(device);
    r.sums.errors = errors;
    r.sums.inferences = inferences;
    return r;
}

static struct trigger_row p99(const char *device, double ms)
{
    struct trigger_row r = row(device);
    r.sums.p99_sum = r.sums.p99_max = ms;
    r.sums.latency_windows = 1;
    return r;
}

static struct trigger_row shadow(const char *device, double agreement, int64_t inferences)
{
    struct trigger_row r = row(device);
    r.sums.shadow_agreed = agreement * (double)inferences;
    r.sums.shadow_inferences = inferences;
    return r;
}

static struct trigger_result eval(enum metric m, enum trigger_aggregation a, enum trigger_op op,
                                  double threshold, int64_t min_devices, struct trigger_row *rows,
                                  size_t n)
{
    struct trigger_rule rule = {m, a, op, threshold, min_devices};
    struct trigger_result res;
    assert_int_equal(trigger_evaluate(&rule, rows, n, &res), 0);
    return res;
}

/* The drift rows of drift_devices_mean_their_windows, fresh each time
 * (evaluation reorders them). */
static size_t drift_rows(struct trigger_row rows[5])
{
    rows[0] = drift("a", 0.2);
    rows[1] = drift("b", 0.5);
    rows[2] = row("c"); /* a window without drift: c has no value */
    rows[3] = drift("a", 0.4);
    rows[4] = row("a"); /* does not dilute a's mean */
    return 5;
}

static void drift_devices_mean_their_windows(void **state)
{
    (void)state;
    struct trigger_row rows[5];
    struct trigger_result r;
    /* a: (0.2 + 0.4) / 2 windows with drift = 0.3; b: 0.5; c: none.
     * mean (0.3 + 0.5) / 2 = 0.4 over 2 devices. */
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 0.25, 2, rows, drift_rows(rows));
    assert_true(r.holds);
    assert_true(r.enough);
    assert_int_equal(r.devices, 2);
    assert_true(fabs(r.value - 0.4) < EPS);
    /* max 0.5, min 0.3, median of two values = their mean 0.4. */
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MAX, TRIGGER_ABOVE, 0.25, 1, rows, drift_rows(rows));
    assert_true(fabs(r.value - 0.5) < EPS);
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MIN, TRIGGER_ABOVE, 0.25, 1, rows, drift_rows(rows));
    assert_true(fabs(r.value - 0.3) < EPS);
    assert_true(r.holds); /* 0.3 > 0.25 */
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MEDIAN, TRIGGER_ABOVE, 0.25, 1, rows, drift_rows(rows));
    assert_true(fabs(r.value - 0.4) < EPS);
    /* min 0.3 is not below 0.3: the comparison is strict. */
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MIN, TRIGGER_BELOW, 0.3 + 1e-9, 1, rows, drift_rows(rows));
    assert_true(r.holds);
    r = eval(METRIC_DRIFT, TRIGGER_AGG_MAX, TRIGGER_ABOVE, 0.5, 1, rows, drift_rows(rows));
    assert_false(r.holds); /* 0.5 is not above 0.5 */
}

static void min_devices_counts_only_devices_with_a_value(void **state)
{
    (void)state;
    struct trigger_row rows[5];
    /* Three devices sent windows, two have a drift: min_devices 3 is not met
     * although the mean 0.4 is above 0.25. */
    struct trigger_result r =
        eval(METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 0.25, 3, rows, drift_rows(rows));
    assert_false(r.holds);
    assert_false(r.enough);
    assert_int_equal(r.devices, 2);
    assert_true(fabs(r.value - 0.4) < EPS);
}

static void accuracy_is_a_ratio_of_sums(void **state)
{
    (void)state;
    struct trigger_row rows[] = {
        feedback("a", 9, 10), feedback("a", 0, 30), /* a: 9 / 40 = 0.225 (not (0.9 + 0) / 2) */
        feedback("b", 0, 0),                        /* b: no feedback, no value */
        feedback("c", 3, 4),                        /* c: 0.75 */
    };
    /* mean (0.225 + 0.75) / 2 = 0.4875 < 0.5 */
    struct trigger_result r =
        eval(METRIC_ACCURACY, TRIGGER_AGG_MEAN, TRIGGER_BELOW, 0.5, 2, rows, COUNT(rows));
    assert_true(r.holds);
    assert_int_equal(r.devices, 2);
    assert_true(fabs(r.value - 0.4875) < EPS);
}

static void error_rate_is_a_ratio_of_sums(void **state)
{
    (void)state;
    struct trigger_row rows[] = {
        errors("a", 1, 100), errors("a", 9, 100), /* a: 10 / 200 = 0.05 */
        errors("b", 0, 0),                        /* b: no inferences, no value */
        errors("c", 1, 4),                        /* c: 0.25 */
        errors("d", 0, 50),                       /* d: 0 */
    };
    /* median of 0, 0.05, 0.25 = 0.05; max 0.25 */
    struct trigger_result r =
        eval(METRIC_ERROR_RATE, TRIGGER_AGG_MEDIAN, TRIGGER_ABOVE, 0.01, 3, rows, COUNT(rows));
    assert_true(r.holds);
    assert_int_equal(r.devices, 3);
    assert_true(fabs(r.value - 0.05) < EPS);
    r = eval(METRIC_ERROR_RATE, TRIGGER_AGG_MAX, TRIGGER_ABOVE, 0.01, 3, rows, COUNT(rows));
    assert_true(fabs(r.value - 0.25) < EPS);
}

static void latency_takes_each_devices_largest_window(void **state)
{
    (void)state;
    struct trigger_row rows[] = {p99("a", 10), p99("b", 20), p99("a", 30), row("b")};
    /* a: max(10, 30) = 30, b: 20; mean 25, which is not above 25. */
    struct trigger_result r =
        eval(METRIC_LATENCY_P99, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 25, 1, rows, COUNT(rows));
    assert_false(r.holds);
    assert_true(r.enough);
    assert_true(fabs(r.value - 25) < EPS);
    r = eval(METRIC_LATENCY_P99, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 24.5, 1, rows, COUNT(rows));
    assert_true(r.holds);
}

static void shadow_agreement_is_weighted_by_shadow_inferences(void **state)
{
    (void)state;
    struct trigger_row rows[] = {shadow("a", 1.0, 10), shadow("a", 0.5, 90), shadow("b", 0.8, 5)};
    /* a: (1.0 * 10 + 0.5 * 90) / 100 = 0.55; b: 0.8; min 0.55 < 0.6. */
    struct trigger_result r =
        eval(METRIC_SHADOW_AGREEMENT, TRIGGER_AGG_MIN, TRIGGER_BELOW, 0.6, 2, rows, COUNT(rows));
    assert_true(r.holds);
    assert_true(fabs(r.value - 0.55) < EPS);
}

static void median_of_an_odd_count_is_the_middle(void **state)
{
    (void)state;
    struct trigger_row rows[] = {drift("x", 0.9), drift("y", 0.1), drift("z", 0.3)};
    /* sorted 0.1, 0.3, 0.9: the median is 0.3 */
    struct trigger_result r =
        eval(METRIC_DRIFT, TRIGGER_AGG_MEDIAN, TRIGGER_ABOVE, 0.2, 3, rows, COUNT(rows));
    assert_true(r.holds);
    assert_true(fabs(r.value - 0.3) < EPS);
}

static void no_windows_never_hold(void **state)
{
    (void)state;
    struct trigger_result r = eval(METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_BELOW, 1, 1, NULL, 0);
    assert_false(r.holds);
    assert_false(r.enough);
    assert_int_equal(r.devices, 0);
    /* Windows with no value of the metric: nothing to compare either. */
    struct trigger_row rows[] = {row("a"), row("b")};
    r = eval(METRIC_CONFIDENCE, TRIGGER_AGG_MEAN, TRIGGER_BELOW, 1, 1, rows, COUNT(rows));
    assert_false(r.holds);
    assert_int_equal(r.devices, 0);
}

static void bad_rules_are_refused(void **state)
{
    (void)state;
    struct trigger_result r;
    struct trigger_rule bad[] = {
        {METRIC_COUNT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 1, 1},
        {METRIC_DRIFT, (enum trigger_aggregation)9, TRIGGER_ABOVE, 1, 1},
        {METRIC_DRIFT, TRIGGER_AGG_MEAN, (enum trigger_op)7, 1, 1},
        {METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, NAN, 1},
        {METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, INFINITY, 1},
        {METRIC_DRIFT, TRIGGER_AGG_MEAN, TRIGGER_ABOVE, 1, 0},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        assert_int_equal(trigger_evaluate(&bad[i], NULL, 0, &r), EF_EINVAL);
}

static void names_round_trip(void **state)
{
    (void)state;
    enum trigger_aggregation a;
    enum trigger_op op;
    enum trigger_action act;
    const char *aggs[] = {"mean", "max", "min", "median"};
    const char *acts[] = {"none", "retrain", "pause_rollout", "rollback"};
    for (size_t i = 0; i < COUNT(aggs); i++) {
        assert_int_equal(trigger_aggregation_parse(aggs[i], &a), 0);
        assert_string_equal(trigger_aggregation_name(a), aggs[i]);
    }
    for (size_t i = 0; i < COUNT(acts); i++) {
        assert_int_equal(trigger_action_parse(acts[i], &act), 0);
        assert_string_equal(trigger_action_name(act), acts[i]);
    }
    assert_int_equal(trigger_op_parse("below", &op), 0);
    assert_int_equal(op, TRIGGER_BELOW);
    assert_int_equal(trigger_op_parse("Above", &op), EF_EINVAL);
    assert_int_equal(trigger_op_parse(NULL, &op), EF_EINVAL);
    assert_int_equal(trigger_aggregation_parse("avg", &a), EF_EINVAL);
    assert_int_equal(trigger_action_parse("pause", &act), EF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drift_devices_mean_their_windows),
        cmocka_unit_test(min_devices_counts_only_devices_with_a_value),
        cmocka_unit_test(accuracy_is_a_ratio_of_sums),
        cmocka_unit_test(error_rate_is_a_ratio_of_sums),
        cmocka_unit_test(latency_takes_each_devices_largest_window),
        cmocka_unit_test(shadow_agreement_is_weighted_by_shadow_inferences),
        cmocka_unit_test(median_of_an_odd_count_is_the_middle),
        cmocka_unit_test(no_windows_never_hold),
        cmocka_unit_test(bad_rules_are_refused),
        cmocka_unit_test(names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

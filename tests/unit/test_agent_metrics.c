/* test_agent_metrics.c - the telemetry window: counts, quantiles, accuracy, RSS, CPU. */
#include "agent/metrics.h"
#include "common/clock.h"
#include "common/quantile.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

static double num(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("%s is not a number", key);
    return json_number_value(v);
}

static void an_empty_window(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    json_t *w = metrics_close_window(m, NULL);
    assert_non_null(w);
    int64_t start = 0;
    assert_int_equal(ef_time_parse(json_string_value(json_object_get(w, "window_start")), &start),
                     0);
    assert_true(llabs(start - ef_now_ms()) < 60000);
    assert_true(num(w, "window_s") >= 0);
    assert_true(json_is_null(json_object_get(w, "model")));
    assert_int_equal(num(w, "inferences"), 0);
    assert_int_equal(num(w, "errors"), 0);
    assert_true(json_is_null(json_object_get(w, "latency_ms")));
    assert_int_equal(num(w, "feedback"), 0);
    assert_true(json_is_null(json_object_get(w, "accuracy")));
    assert_true(num(w, "rss_bytes") > 1024 * 1024);
    assert_true(num(w, "cpu_s") >= 0);
    json_decref(w);
    metrics_free(m);
    metrics_free(NULL);
}

static void counts_and_latency_quantiles(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    /* 1..100 ms, every 20th failed. */
    for (int i = 1; i <= 100; i++)
        metrics_observe(m, i % 20 != 0, (double)i);
    json_t *w = metrics_close_window(m, "thyroid@3");
    assert_string_equal(json_string_value(json_object_get(w, "model")), "thyroid@3");
    assert_int_equal(num(w, "inferences"), 100);
    assert_int_equal(num(w, "errors"), 5);
    json_t *lat = json_object_get(w, "latency_ms");
    assert_true(fabs(num(lat, "p50") - 50) <= 50 * EF_QUANTILE_REL_ERROR);
    assert_true(fabs(num(lat, "p95") - 95) <= 95 * EF_QUANTILE_REL_ERROR);
    assert_true(fabs(num(lat, "p99") - 99) <= 99 * EF_QUANTILE_REL_ERROR);
    assert_true(num(lat, "max") == 100);
    json_decref(w);

    /* The next window starts empty. */
    w = metrics_close_window(m, "thyroid@3");
    assert_int_equal(num(w, "inferences"), 0);
    assert_true(json_is_null(json_object_get(w, "latency_ms")));
    json_decref(w);
    metrics_free(m);
}

static void a_non_finite_latency_counts_the_inference_only(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    metrics_observe(m, false, NAN);
    metrics_observe(m, true, 2.0);
    json_t *w = metrics_close_window(m, NULL);
    assert_int_equal(num(w, "inferences"), 2);
    assert_int_equal(num(w, "errors"), 1);
    assert_true(num(json_object_get(w, "latency_ms"), "p50") == 2.0);
    json_decref(w);
    metrics_free(m);
}

static void accuracy_over_feedback(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    metrics_feedback(m, true);
    metrics_feedback(m, true);
    metrics_feedback(m, false);
    metrics_feedback(m, true);
    json_t *w = metrics_close_window(m, NULL);
    assert_int_equal(num(w, "feedback"), 4);
    assert_true(num(w, "accuracy") == 0.75);
    json_decref(w);
    w = metrics_close_window(m, NULL);
    assert_true(json_is_null(json_object_get(w, "accuracy")));
    json_decref(w);
    metrics_free(m);
}

/* CPU spent and time elapsed inside a window are what the window reports. */
static void cpu_and_duration_of_the_window(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    clock_t until = clock() + CLOCKS_PER_SEC / 10;
    volatile double sink = 0;
    while (clock() < until)
        sink += sqrt(sink + 1);
    json_t *w = metrics_close_window(m, NULL);
    assert_true(num(w, "cpu_s") >= 0.08);
    assert_true(num(w, "cpu_s") < 5);
    assert_true(num(w, "window_s") >= 0.08);
    json_decref(w);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_window),
        cmocka_unit_test(counts_and_latency_quantiles),
        cmocka_unit_test(a_non_finite_latency_counts_the_inference_only),
        cmocka_unit_test(accuracy_over_feedback),
        cmocka_unit_test(cpu_and_duration_of_the_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

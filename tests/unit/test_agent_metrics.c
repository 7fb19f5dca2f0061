/* test_agent_metrics.c - the telemetry window: counts, quantiles, accuracy, RSS, CPU. */
#include "agent/metrics.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/manifest.h"
#include "common/psi.h"
#include "common/quantile.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

#define HIST "{\"edges\":[0.0,0.5,1.0],\"fractions\":[0.5,0.5]}"

/* A manifest of n_in inputs and n_out outputs whose baselines are all HIST
 * (two bins, half each), or without a baseline. */
static struct ef_manifest *manifest_of(size_t n_in, size_t n_out, bool baseline)
{
    json_t *doc =
        json_pack("{s:i, s:s, s:i, s:s, s:{s:s, s:i}, s:{s:i, s:[]}, s:{s:i, s:[]}, "
                  "s:s}",
                  "format", 1, "name", "clf", "version", 1, "backend", "fann", "artifact", "sha256",
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "size", 10,
                  "input", "size", (int)n_in, "features", "output", "size", (int)n_out, "labels",
                  "created_at", "2026-11-22T10:00:00Z");
    assert_non_null(doc);
    json_t *features = json_object_get(json_object_get(doc, "input"), "features");
    json_t *labels = json_object_get(json_object_get(doc, "output"), "labels");
    for (size_t i = 0; i < n_in; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%zu", i);
        json_array_append_new(features, json_string(name));
    }
    for (size_t j = 0; j < n_out; j++) {
        char name[32];
        snprintf(name, sizeof(name), "c%zu", j);
        json_array_append_new(labels, json_string(name));
    }
    if (baseline) {
        json_t *hist = json_loads(HIST, 0, NULL), *bf = json_array(), *bo = json_array();
        for (size_t i = 0; i < n_in; i++)
            json_array_append_new(bf, json_deep_copy(hist));
        for (size_t j = 0; j < n_out; j++)
            json_array_append_new(bo, json_deep_copy(hist));
        json_object_set_new(doc, "baseline", json_pack("{s:o, s:o}", "features", bf, "output", bo));
        json_decref(hist);
    }
    struct ef_manifest *m = NULL;
    char msg[256] = "";
    if (ef_manifest_from_json(doc, &m, msg, sizeof(msg)) != 0)
        fail_msg("manifest: %s", msg);
    json_decref(doc);
    return m;
}

static double at(const json_t *array, size_t i)
{
    json_t *v = json_array_get(array, i);
    if (!json_is_number(v))
        fail_msg("element %zu is not a number", i);
    return json_number_value(v);
}

/* Two bins of half each against actual fractions (a0, a1), floored as
 * docs/monitoring.md says. */
static double psi2(double a0, double a1)
{
    double a[2] = {a0 < EF_PSI_EPSILON ? EF_PSI_EPSILON : a0,
                   a1 < EF_PSI_EPSILON ? EF_PSI_EPSILON : a1};
    return (a[0] - 0.5) * log(a[0] / 0.5) + (a[1] - 0.5) * log(a[1] / 0.5);
}

static void drift_is_psi_against_the_baseline(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    struct ef_manifest *man = manifest_of(2, 2, true);
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_set_model(m, man, "clf@1"), 0);
    /* Feature 0: five values in each bin (PSI 0). Feature 1: eight in bin 0,
     * two in bin 1: (0.8 - 0.5) ln(1.6) + (0.2 - 0.5) ln(0.4) = 0.4158883.
     * Outputs: always 0.9 and 0.1, all in one bin:
     * (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(2) = 4.6043185. */
    for (int i = 0; i < 10; i++) {
        double in[2] = {i < 5 ? 0.25 : 0.75, i < 8 ? 0.1 : 0.9};
        double out[2] = {0.9, 0.1};
        metrics_observe(m, true, 1.0);
        metrics_observe_io(m, in, 2, out, 2);
    }
    json_t *w = metrics_close_window(m, "clf@1");
    json_t *drift = json_object_get(w, "drift");
    assert_true(json_is_object(drift));
    assert_int_equal(num(drift, "n"), 10);
    json_t *features = json_object_get(drift, "features"),
           *output = json_object_get(drift, "output");
    assert_int_equal(json_array_size(features), 2);
    assert_int_equal(json_array_size(output), 2);
    assert_true(fabs(at(features, 0)) < 1e-12);
    assert_true(fabs(at(features, 1) - 0.4158883) < 1e-6);
    assert_true(fabs(at(features, 1) - psi2(0.8, 0.2)) < 1e-12);
    assert_true(fabs(at(output, 0) - 4.6043185) < 1e-6);
    assert_true(fabs(at(output, 1) - 4.6043185) < 1e-6);
    assert_true(fabs(num(drift, "max") - 0.4158883) < 1e-6);
    assert_true(fabs(num(drift, "output_max") - 4.6043185) < 1e-6);
    /* Winning output 0.9 each time. */
    assert_true(fabs(num(w, "confidence") - 0.9) < 1e-12);
    json_decref(w);
    /* The next window counts afresh: below DRIFT_MIN_N it says nothing. */
    for (int i = 0; i < METRICS_DRIFT_MIN_N - 1; i++) {
        double in[2] = {0.25, 0.25}, out[2] = {0.2, 0.7};
        metrics_observe_io(m, in, 2, out, 2);
    }
    w = metrics_close_window(m, "clf@1");
    assert_true(json_is_null(json_object_get(w, "drift")));
    assert_true(fabs(num(w, "confidence") - 0.7) < 1e-12);
    json_decref(w);
    metrics_free(m);
    ef_manifest_free(man);
}

static void drift_follows_the_production_model(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    struct ef_manifest *with = manifest_of(2, 2, true), *without = manifest_of(2, 2, false);
    double in[2] = {0.25, 0.75}, out[2] = {1.5, -0.5};
    assert_int_equal(metrics_new(&m), 0);
    /* No model: no drift, but confidence (clamped to 1). */
    for (int i = 0; i < 20; i++)
        metrics_observe_io(m, in, 2, out, 2);
    json_t *w = metrics_close_window(m, NULL);
    assert_true(json_is_null(json_object_get(w, "drift")));
    assert_true(num(w, "confidence") == 1.0);
    json_decref(w);
    /* Counts started with one model are dropped when another takes over. */
    assert_int_equal(metrics_set_model(m, with, "clf@1"), 0);
    for (int i = 0; i < 8; i++)
        metrics_observe_io(m, in, 2, out, 2);
    assert_int_equal(metrics_set_model(m, with, "clf@1"), 0); /* the same: kept */
    for (int i = 0; i < 2; i++)
        metrics_observe_io(m, in, 2, out, 2);
    w = metrics_close_window(m, "clf@1");
    assert_int_equal(num(json_object_get(w, "drift"), "n"), 10);
    json_decref(w);
    for (int i = 0; i < 8; i++)
        metrics_observe_io(m, in, 2, out, 2);
    assert_string_equal(metrics_model(m), "clf@1");
    assert_int_equal(metrics_set_model(m, with, "clf@2"), 0);
    assert_string_equal(metrics_model(m), "clf@2"); /* the agent closes clf@1's window by it */
    for (int i = 0; i < 8; i++)
        metrics_observe_io(m, in, 2, out, 2);
    w = metrics_close_window(m, "clf@2");
    assert_true(json_is_null(json_object_get(w, "drift")));
    json_decref(w);
    /* A manifest without a baseline: no drift at all. */
    assert_int_equal(metrics_set_model(m, without, "clf@3"), 0);
    for (int i = 0; i < 20; i++)
        metrics_observe_io(m, in, 2, out, 2);
    w = metrics_close_window(m, "clf@3");
    assert_true(json_is_null(json_object_get(w, "drift")));
    json_decref(w);
    /* Inputs of another size are not counted. */
    assert_int_equal(metrics_set_model(m, with, "clf@4"), 0);
    double in3[3] = {0, 0, 0};
    for (int i = 0; i < 20; i++)
        metrics_observe_io(m, in3, 3, out, 2);
    w = metrics_close_window(m, "clf@4");
    assert_true(json_is_null(json_object_get(w, "drift")));
    json_decref(w);
    assert_int_equal(metrics_set_model(m, NULL, NULL), 0);
    metrics_free(m);
    ef_manifest_free(with);
    ef_manifest_free(without);
}

static void correct_and_confusion_over_feedback(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    struct ef_manifest *man = manifest_of(2, 3, false);
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_set_model(m, man, "clf@1"), 0);
    /* (truth, predicted): (1,1) (0,1) (1,0) (1,1) (2,2) */
    metrics_feedback_class(m, 1, 1, 3);
    metrics_feedback_class(m, 0, 1, 3);
    metrics_feedback_class(m, 1, 0, 3);
    metrics_feedback_class(m, 1, 1, 3);
    metrics_feedback_class(m, 2, 2, 3);
    /* A prediction of a model of another size counts, outside the matrix. */
    metrics_feedback_class(m, 0, 0, 2);
    json_t *w = metrics_close_window(m, "clf@1");
    assert_int_equal(num(w, "feedback"), 6);
    assert_int_equal(num(w, "correct"), 4);
    assert_true(fabs(num(w, "accuracy") - 4.0 / 6) < 1e-12);
    json_t *expect = json_loads("[[0,1,0],[1,2,0],[0,0,1]]", 0, NULL);
    assert_true(json_equal(json_object_get(w, "confusion"), expect));
    json_decref(expect);
    json_decref(w);
    /* Without feedback: null, and correct 0. */
    w = metrics_close_window(m, "clf@1");
    assert_true(json_is_null(json_object_get(w, "confusion")));
    assert_int_equal(num(w, "correct"), 0);
    json_decref(w);
    metrics_free(m);
    ef_manifest_free(man);
}

static void a_single_output_has_no_confusion_and_a_two_sided_confidence(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    struct ef_manifest *man = manifest_of(1, 1, false);
    double in = 0.5, lo = 0.2, hi = 0.6;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_set_model(m, man, "bin@1"), 0);
    metrics_observe_io(m, &in, 1, &lo, 1); /* 0.8 on the side of 0 */
    metrics_observe_io(m, &in, 1, &hi, 1); /* 0.6 */
    metrics_feedback_class(m, 0, 0, 1);
    json_t *w = metrics_close_window(m, "bin@1");
    assert_true(fabs(num(w, "confidence") - 0.7) < 1e-12);
    assert_true(json_is_null(json_object_get(w, "confusion")));
    assert_int_equal(num(w, "correct"), 1);
    json_decref(w);
    metrics_free(m);
    ef_manifest_free(man);
}

static void shadow_agreement_and_accuracy(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(&m), 0);
    json_t *w = metrics_close_window(m, NULL);
    assert_true(json_is_null(json_object_get(w, "shadow")));
    json_decref(w);
    /* An earlier shadow's counts go when another runs in the same window. */
    metrics_shadow_observe(m, "clf@1", true, false);
    metrics_shadow_observe(m, "clf@2", true, true);
    metrics_shadow_observe(m, "clf@2", true, true);
    metrics_shadow_observe(m, "clf@2", true, false);
    metrics_shadow_observe(m, "clf@2", false, true); /* failed: not compared */
    metrics_shadow_feedback(m, "clf@2", true);
    metrics_shadow_feedback(m, "clf@2", false);
    metrics_shadow_feedback(m, "clf@2", true);
    w = metrics_close_window(m, "clf@1");
    json_t *sh = json_object_get(w, "shadow");
    assert_string_equal(json_string_value(json_object_get(sh, "model")), "clf@2");
    assert_int_equal(num(sh, "inferences"), 4);
    assert_int_equal(num(sh, "errors"), 1);
    assert_true(fabs(num(sh, "agreement") - 2.0 / 3) < 1e-12);
    assert_int_equal(num(sh, "feedback"), 3);
    assert_true(fabs(num(sh, "accuracy") - 2.0 / 3) < 1e-12);
    json_decref(w);
    /* Only failures, no feedback: agreement and accuracy are null. */
    metrics_shadow_observe(m, "clf@2", false, false);
    w = metrics_close_window(m, "clf@1");
    sh = json_object_get(w, "shadow");
    assert_true(json_is_null(json_object_get(sh, "agreement")));
    assert_true(json_is_null(json_object_get(sh, "accuracy")));
    json_decref(w);
    metrics_free(m);
}

static size_t dumped(const json_t *w)
{
    char *text = ef_json_dump(w);
    size_t n = strlen(text);
    free(text);
    return n;
}

static void a_window_stays_under_64_kib(void **state)
{
    (void)state;
    enum { N_IN = 4000, N_OUT = 100 };
    struct metrics *m = NULL;
    struct ef_manifest *man = manifest_of(N_IN, N_OUT, true);
    double *in = calloc(N_IN, sizeof(double)), *out = calloc(N_OUT, sizeof(double));
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_set_model(m, man, "big@1"), 0);
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < N_IN; k++)
            in[k] = (double)((i + k) % 7) / 7.0;
        for (int k = 0; k < N_OUT; k++)
            out[k] = (double)((i * k) % 11) / 11.0;
        metrics_observe_io(m, in, N_IN, out, N_OUT);
        metrics_feedback_class(m, (size_t)i % N_OUT, (size_t)(i * 7) % N_OUT, N_OUT);
    }
    json_t *w = metrics_close_window(m, "big@1");
    assert_non_null(w);
    assert_true(dumped(w) < METRICS_MAX_BYTES);
    /* 4,000 PSI values are the larger part and go; 100 x 100 counts then fit. */
    assert_true(json_is_array(json_object_get(w, "confusion")));
    assert_true(json_is_null(json_object_get(w, "drift")));
    assert_true(json_is_number(json_object_get(w, "confidence")));
    json_decref(w);
    free(in);
    free(out);
    metrics_free(m);
    ef_manifest_free(man);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_window),
        cmocka_unit_test(counts_and_latency_quantiles),
        cmocka_unit_test(a_non_finite_latency_counts_the_inference_only),
        cmocka_unit_test(accuracy_over_feedback),
        cmocka_unit_test(cpu_and_duration_of_the_window),
        cmocka_unit_test(drift_is_psi_against_the_baseline),
        cmocka_unit_test(drift_follows_the_production_model),
        cmocka_unit_test(correct_and_confusion_over_feedback),
        cmocka_unit_test(a_single_output_has_no_confusion_and_a_two_sided_confidence),
        cmocka_unit_test(shadow_agreement_and_accuracy),
        cmocka_unit_test(a_window_stays_under_64_kib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

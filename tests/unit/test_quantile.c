/* test_quantile.c - the log-bucketed quantile estimator and its error bound. */
#include "common/ef_error.h"
#include "common/quantile.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank quantile of n sorted values, the definition quantile.h uses. */
static double exact(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

/* A deterministic generator (xorshift64*), so failures are repeatable. */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void empty_answers_zero(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    assert_true(ef_quantile_value(&q, 0.5) == 0);
    assert_int_equal(q.count, 0);
}

static void one_value_is_exact(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    assert_int_equal(ef_quantile_record(&q, 3.7), 0);
    /* Clamping to the observed min and max makes a single value exact. */
    assert_true(ef_quantile_value(&q, 0) == 3.7);
    assert_true(ef_quantile_value(&q, 0.5) == 3.7);
    assert_true(ef_quantile_value(&q, 1) == 3.7);
}

static void non_finite_values_are_refused(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    assert_int_equal(ef_quantile_record(&q, NAN), EF_EINVAL);
    assert_int_equal(ef_quantile_record(&q, INFINITY), EF_EINVAL);
    assert_int_equal(q.count, 0);
    assert_int_equal(ef_quantile_record(&q, -5), 0);
    assert_true(q.min == 0 && q.max == 0);
}

/* Log-uniform values over the whole interior range: every quantile within the
 * documented relative error of the exact nearest-rank answer. */
static void error_bound_holds_over_the_range(void **state)
{
    (void)state;
    enum { N = 20000 };
    double *values = malloc(N * sizeof(*values));
    assert_non_null(values);
    struct ef_quantile q;
    ef_quantile_reset(&q);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < N; i++) {
        values[i] = EF_QUANTILE_LOW * pow(10, 8 * uniform(&seed));
        assert_int_equal(ef_quantile_record(&q, values[i]), 0);
    }
    qsort(values, N, sizeof(*values), cmp_double);
    for (double p = 0; p <= 1.0; p += 0.005) {
        double want = exact(values, N, p), got = ef_quantile_value(&q, p);
        assert_true(fabs(got - want) <= EF_QUANTILE_REL_ERROR * want);
    }
    assert_true(ef_quantile_value(&q, 1) == values[N - 1]);
    free(values);
}

/* Latencies as the agent sees them: mostly tens of microseconds with a slow
 * tail; p50/p95/p99 within the bound. */
static void latency_like_distribution(void **state)
{
    (void)state;
    enum { N = 10000 };
    double values[N];
    struct ef_quantile q;
    ef_quantile_reset(&q);
    uint64_t seed = 42;
    for (size_t i = 0; i < N; i++) {
        double u = uniform(&seed);
        values[i] = u < 0.97 ? 0.02 + 0.03 * uniform(&seed) : 5 + 200 * uniform(&seed);
        ef_quantile_record(&q, values[i]);
    }
    qsort(values, N, sizeof(*values), cmp_double);
    const double ps[] = {0.5, 0.95, 0.99, 0.999};
    for (size_t i = 0; i < 4; i++) {
        double want = exact(values, N, ps[i]);
        assert_true(fabs(ef_quantile_value(&q, ps[i]) - want) <= EF_QUANTILE_REL_ERROR * want);
    }
}

static void out_of_range_values_use_the_extremes(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    ef_quantile_record(&q, 0);
    ef_quantile_record(&q, 0.0004);
    ef_quantile_record(&q, 5e6);
    ef_quantile_record(&q, 7e6);
    /* Below LOW: the observed minimum; above the range: the observed maximum. */
    assert_true(ef_quantile_value(&q, 0.25) == 0);
    assert_true(ef_quantile_value(&q, 0.5) < EF_QUANTILE_LOW);
    assert_true(ef_quantile_value(&q, 0.75) == 7e6);
    assert_true(ef_quantile_value(&q, 1) == 7e6);
}

static void nearest_rank_definition(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    for (int v = 1; v <= 4; v++)
        ef_quantile_record(&q, v);
    /* ceil(0.5 * 4) = rank 2 -> about 2; ceil(0.51 * 4) = rank 3 -> about 3. */
    assert_true(fabs(ef_quantile_value(&q, 0.5) - 2) <= 2 * EF_QUANTILE_REL_ERROR);
    assert_true(fabs(ef_quantile_value(&q, 0.51) - 3) <= 3 * EF_QUANTILE_REL_ERROR);
    assert_true(ef_quantile_value(&q, 0) == 1);
    assert_true(ef_quantile_value(&q, -1) == 1);
    assert_true(ef_quantile_value(&q, 2) == 4);
}

static void merge_equals_recording_everything_in_one(void **state)
{
    (void)state;
    static struct ef_quantile a, b, all;
    ef_quantile_reset(&a);
    ef_quantile_reset(&b);
    ef_quantile_reset(&all);
    uint64_t seed = 7;
    for (int i = 0; i < 5000; i++) {
        double v = 0.01 * pow(10, 4 * uniform(&seed));
        ef_quantile_record(i % 3 ? &a : &b, v);
        ef_quantile_record(&all, v);
    }
    ef_quantile_merge(&a, &b);
    assert_int_equal(a.count, all.count);
    assert_true(a.min == all.min && a.max == all.max);
    assert_true(fabs(a.sum - all.sum) < 1e-9 * all.sum);
    for (double p = 0; p <= 1; p += 0.01)
        assert_true(ef_quantile_value(&a, p) == ef_quantile_value(&all, p));

    /* Merging into an empty one copies; merging an empty one changes nothing. */
    static struct ef_quantile empty, copy;
    ef_quantile_reset(&empty);
    ef_quantile_reset(&copy);
    ef_quantile_merge(&copy, &all);
    ef_quantile_merge(&copy, &empty);
    assert_int_equal(copy.count, all.count);
    assert_true(copy.min == all.min && copy.max == all.max);
    assert_true(ef_quantile_value(&copy, 0.99) == ef_quantile_value(&all, 0.99));
}

static void reset_forgets(void **state)
{
    (void)state;
    struct ef_quantile q;
    ef_quantile_reset(&q);
    ef_quantile_record(&q, 100);
    ef_quantile_reset(&q);
    ef_quantile_record(&q, 1);
    assert_true(ef_quantile_value(&q, 1) == 1);
    assert_int_equal(q.count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_answers_zero),
        cmocka_unit_test(one_value_is_exact),
        cmocka_unit_test(non_finite_values_are_refused),
        cmocka_unit_test(error_bound_holds_over_the_range),
        cmocka_unit_test(latency_like_distribution),
        cmocka_unit_test(out_of_range_values_use_the_extremes),
        cmocka_unit_test(nearest_rank_definition),
        cmocka_unit_test(merge_equals_recording_everything_in_one),
        cmocka_unit_test(reset_forgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

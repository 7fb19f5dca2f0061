/* test_histogram.c - equal-width baseline histograms and bin lookup. */
#include "common/histogram.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#define EPS 1e-12

/* Number at index i of h[key], failing the test if it is missing. */
static double at(const json_t *h, const char *key, size_t i)
{
    json_t *v = json_array_get(json_object_get(h, key), i);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static size_t count(const json_t *h, const char *key)
{
    return json_array_size(json_object_get(h, key));
}

static void ten_values_in_five_bins_hold_a_fifth_each(void **state)
{
    (void)state;
    const double values[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    json_t *h = ef_histogram_build(values, 10, 1, 5);
    assert_non_null(h);
    assert_int_equal(count(h, "edges"), 6);
    assert_int_equal(count(h, "fractions"), 5);
    /* Width 9/5 = 1.8: edges 0, 1.8, 3.6, 5.4, 7.2, 9. */
    const double edges[] = {0, 1.8, 3.6, 5.4, 7.2, 9};
    for (size_t b = 0; b < 6; b++)
        assert_true(fabs(at(h, "edges", b) - edges[b]) < EPS);
    for (size_t b = 0; b < 5; b++)
        assert_true(fabs(at(h, "fractions", b) - 0.2) < EPS);
    json_decref(h);
}

static void uneven_values_are_counted_in_their_bins(void **state)
{
    (void)state;
    /* Edges 0, 2.5, 5, 7.5, 10: 0 1 2 | 3 | - | 8 10 10 (upper edge in last bin). */
    const double values[] = {0, 1, 2, 3, 8, 10, 10, 10};
    json_t *h = ef_histogram_build(values, 8, 1, 4);
    assert_non_null(h);
    const double want[] = {3.0 / 8, 1.0 / 8, 0, 4.0 / 8};
    for (size_t b = 0; b < 4; b++)
        assert_true(fabs(at(h, "fractions", b) - want[b]) < EPS);
    assert_true(at(h, "edges", 4) == 10.0);
    json_decref(h);
}

static void fractions_sum_to_one(void **state)
{
    (void)state;
    double values[1000];
    for (size_t i = 0; i < 1000; i++)
        values[i] = sin((double)i) * 3.7 + (double)(i % 13);
    json_t *h = ef_histogram_build(values, 1000, 1, EF_HISTOGRAM_DEFAULT_BINS);
    assert_non_null(h);
    double sum = 0;
    for (size_t b = 0; b < EF_HISTOGRAM_DEFAULT_BINS; b++)
        sum += at(h, "fractions", b);
    assert_true(fabs(sum - 1.0) < 1e-9);
    for (size_t b = 0; b < EF_HISTOGRAM_DEFAULT_BINS; b++)
        assert_true(at(h, "edges", b) < at(h, "edges", b + 1));
    json_decref(h);
}

static void constant_input_gets_a_unit_wide_range(void **state)
{
    (void)state;
    const double values[] = {7, 7, 7, 7, 7};
    json_t *h = ef_histogram_build(values, 5, 1, 4);
    assert_non_null(h);
    assert_true(at(h, "edges", 0) == 6.5);
    assert_true(at(h, "edges", 4) == 7.5);
    /* Edges 6.5, 6.75, 7, 7.25, 7.5: the value sits on edge 2, in bin 2. */
    const double want[] = {0, 0, 1, 0};
    for (size_t b = 0; b < 4; b++)
        assert_true(at(h, "fractions", b) == want[b]);
    json_decref(h);
}

static void single_value_is_a_constant_input(void **state)
{
    (void)state;
    const double value = -3.0;
    json_t *h = ef_histogram_build(&value, 1, 1, 1);
    assert_non_null(h);
    assert_true(at(h, "edges", 0) == -3.5);
    assert_true(at(h, "edges", 1) == -2.5);
    assert_true(at(h, "fractions", 0) == 1.0);
    json_decref(h);
}

static void stride_reads_one_column_of_a_matrix(void **state)
{
    (void)state;
    /* Ten rows of three columns; column 1 holds 0..9, the others noise. */
    double matrix[10][3];
    const double column[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (size_t r = 0; r < 10; r++) {
        matrix[r][0] = 1000.0 + (double)r;
        matrix[r][1] = column[r];
        matrix[r][2] = -1000.0 * (double)r;
    }
    json_t *strided = ef_histogram_build(&matrix[0][1], 10, 3, 5);
    json_t *plain = ef_histogram_build(column, 10, 1, 5);
    assert_non_null(strided);
    assert_non_null(plain);
    assert_true(json_equal(strided, plain));
    json_decref(strided);
    json_decref(plain);
}

static void stride_applies_to_the_first_value_too(void **state)
{
    (void)state;
    /* The smallest value of the column is in its first row. */
    double matrix[4][2] = {{-50, 100}, {0, 200}, {0, 300}, {0, 400}};
    json_t *h = ef_histogram_build(&matrix[0][1], 4, 2, 3);
    assert_non_null(h);
    assert_true(at(h, "edges", 0) == 100.0);
    assert_true(at(h, "edges", 3) == 400.0);
    json_decref(h);
}

static void no_values_or_no_bins_build_nothing(void **state)
{
    (void)state;
    const double values[] = {1, 2};
    assert_null(ef_histogram_build(values, 0, 1, 5));
    assert_null(ef_histogram_build(values, 2, 1, 0));
}

static void non_finite_values_build_nothing(void **state)
{
    (void)state;
    const double with_nan[] = {1, NAN, 2};
    const double with_inf[] = {1, INFINITY, 2};
    assert_null(ef_histogram_build(with_nan, 3, 1, 2));
    assert_null(ef_histogram_build(with_inf, 3, 1, 2));
}

static void bin_lookup_uses_lower_edges(void **state)
{
    (void)state;
    const double edges[] = {0, 1, 2, 3};
    assert_int_equal(ef_histogram_bin(edges, 3, 0.0), 0);
    assert_int_equal(ef_histogram_bin(edges, 3, 0.5), 0);
    assert_int_equal(ef_histogram_bin(edges, 3, 1.0), 1);
    assert_int_equal(ef_histogram_bin(edges, 3, 1.999), 1);
    assert_int_equal(ef_histogram_bin(edges, 3, 2.0), 2);
    assert_int_equal(ef_histogram_bin(edges, 3, 3.0), 2);
}

static void bin_lookup_clamps_outside_the_edges(void **state)
{
    (void)state;
    const double edges[] = {0, 1, 2, 3};
    assert_int_equal(ef_histogram_bin(edges, 3, -0.001), 0);
    assert_int_equal(ef_histogram_bin(edges, 3, -1e300), 0);
    assert_int_equal(ef_histogram_bin(edges, 3, 3.001), 2);
    assert_int_equal(ef_histogram_bin(edges, 3, 1e300), 2);
    assert_int_equal(ef_histogram_bin(edges, 3, INFINITY), 2);
    assert_int_equal(ef_histogram_bin(edges, 3, -INFINITY), 0);
}

static void bin_lookup_agrees_with_a_linear_scan(void **state)
{
    (void)state;
    double edges[12];
    for (size_t b = 0; b < 12; b++)
        edges[b] = (double)b * (double)b - 10.0;
    for (double x = -20; x <= 120; x += 0.37) {
        size_t want = 0;
        for (size_t b = 1; b < 11; b++)
            if (x >= edges[b])
                want = b;
        assert_int_equal(ef_histogram_bin(edges, 11, x), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ten_values_in_five_bins_hold_a_fifth_each),
        cmocka_unit_test(uneven_values_are_counted_in_their_bins),
        cmocka_unit_test(fractions_sum_to_one),
        cmocka_unit_test(constant_input_gets_a_unit_wide_range),
        cmocka_unit_test(single_value_is_a_constant_input),
        cmocka_unit_test(stride_reads_one_column_of_a_matrix),
        cmocka_unit_test(stride_applies_to_the_first_value_too),
        cmocka_unit_test(no_values_or_no_bins_build_nothing),
        cmocka_unit_test(non_finite_values_build_nothing),
        cmocka_unit_test(bin_lookup_uses_lower_edges),
        cmocka_unit_test(bin_lookup_clamps_outside_the_edges),
        cmocka_unit_test(bin_lookup_agrees_with_a_linear_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

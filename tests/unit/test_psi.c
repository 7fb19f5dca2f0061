/* test_psi.c - population stability index and the baseline bin counter. */
#include "common/psi.h"
#include "common/ef_error.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#define EPS 1e-6

static void identical_distributions_give_zero(void **state)
{
    (void)state;
    const double e[] = {0.25, 0.5, 0.25};
    const uint64_t a[] = {10, 20, 10};
    assert_true(fabs(ef_psi(e, a, 3)) < 1e-15);
}

static void two_bins_by_hand(void **state)
{
    (void)state;
    /* e = [0.5, 0.5], a = [3/4, 1/4]:
     * (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5)
     * = 0.25 * 0.4054651 + 0.25 * 0.6931472 = 0.2746531 */
    const double e[] = {0.5, 0.5};
    const uint64_t a[] = {3, 1};
    assert_true(fabs(ef_psi(e, a, 2) - 0.2746531) < EPS);
}

static void three_bins_by_hand(void **state)
{
    (void)state;
    /* e = [0.2, 0.5, 0.3], a = [0.1, 0.2, 0.7]:
     *   (0.1 - 0.2) ln(0.5)  = 0.0693147
     *   (0.2 - 0.5) ln(0.4)  = 0.2748872
     *   (0.7 - 0.3) ln(7/3)  = 0.3389191   sum 0.6831210 */
    const double e[] = {0.2, 0.5, 0.3};
    const uint64_t a[] = {1, 2, 7};
    assert_true(fabs(ef_psi(e, a, 3) - 0.6831210) < EPS);
}

static void empty_bins_are_floored_at_epsilon(void **state)
{
    (void)state;
    /* Empty on both sides: both floored to 1e-4, the term is 0. */
    const double e1[] = {0.5, 0.5, 0};
    const uint64_t a1[] = {1, 1, 0};
    assert_true(fabs(ef_psi(e1, a1, 3)) < 1e-15);
    /* e = [1, 0], a = [0, 1] -> e = [1, 1e-4], a = [1e-4, 1]:
     * 2 * (1 - 1e-4) * ln(1e4) = 18.4188381 (finite, not a division by zero) */
    const double e2[] = {1, 0};
    const uint64_t a2[] = {0, 4};
    double psi = ef_psi(e2, a2, 2);
    assert_true(isfinite(psi));
    assert_true(fabs(psi - 2 * (1 - EF_PSI_EPSILON) * log(1 / EF_PSI_EPSILON)) < EPS);
    assert_true(fabs(psi - 18.4188381) < EPS);
}

static void no_values_give_nan(void **state)
{
    (void)state;
    const double e[] = {0.5, 0.5};
    const uint64_t a[] = {0, 0};
    assert_true(isnan(ef_psi(e, a, 2)));
    assert_true(isnan(ef_psi(e, a, 0)));
}

static void the_counter_bins_values_and_clamps_outside(void **state)
{
    (void)state;
    json_t *h = json_pack("{s:[f,f,f], s:[f,f]}", "edges", 0.0, 1.0, 2.0, "fractions", 0.5, 0.5);
    struct ef_psi_hist ph;
    assert_int_equal(ef_psi_hist_init(&ph, h), 0);
    assert_int_equal(ph.bins, 2);
    assert_true(isnan(ef_psi_hist_value(&ph)));
    /* -5 and 0.5 in bin 0, 1.5 and 99 in bin 1 (outside: end bins); NaN ignored. */
    ef_psi_hist_add(&ph, -5);
    ef_psi_hist_add(&ph, 0.5);
    ef_psi_hist_add(&ph, 1.5);
    ef_psi_hist_add(&ph, 99);
    ef_psi_hist_add(&ph, NAN);
    assert_int_equal(ph.n, 4);
    assert_int_equal(ph.counts[0], 2);
    assert_int_equal(ph.counts[1], 2);
    assert_true(fabs(ef_psi_hist_value(&ph)) < 1e-15);
    /* Three more in bin 0: a = [5/7, 2/7]. */
    for (int i = 0; i < 3; i++)
        ef_psi_hist_add(&ph, 0.1);
    double a0 = 5.0 / 7, a1 = 2.0 / 7;
    double expect = (a0 - 0.5) * log(a0 / 0.5) + (a1 - 0.5) * log(a1 / 0.5);
    assert_true(fabs(ef_psi_hist_value(&ph) - expect) < 1e-12);
    ef_psi_hist_reset(&ph);
    assert_int_equal(ph.n, 0);
    assert_int_equal(ph.counts[0], 0);
    assert_true(isnan(ef_psi_hist_value(&ph)));
    ef_psi_hist_release(&ph);
    ef_psi_hist_release(&ph);
    json_decref(h);
}

static void malformed_histograms_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "{}",
        "{\"edges\": [0, 1], \"fractions\": []}",
        "{\"edges\": [0, 1], \"fractions\": [0.5, 0.5]}",
        "{\"edges\": [0, 1, 1], \"fractions\": [0.5, 0.5]}",
        "{\"edges\": [1, 0], \"fractions\": [1]}",
        "{\"edges\": [0, \"1\"], \"fractions\": [1]}",
        "{\"edges\": [0, 1], \"fractions\": [1.5]}",
        "{\"edges\": [0, 1], \"fractions\": [-0.1]}",
        "[0, 1]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *h = json_loads(bad[i], 0, NULL);
        struct ef_psi_hist ph;
        assert_non_null(h);
        assert_int_equal(ef_psi_hist_init(&ph, h), EF_EINVAL);
        assert_null(ph.edges);
        assert_null(ph.counts);
        json_decref(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identical_distributions_give_zero),
        cmocka_unit_test(two_bins_by_hand),
        cmocka_unit_test(three_bins_by_hand),
        cmocka_unit_test(empty_bins_are_floored_at_epsilon),
        cmocka_unit_test(no_values_give_nan),
        cmocka_unit_test(the_counter_bins_values_and_clamps_outside),
        cmocka_unit_test(malformed_histograms_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

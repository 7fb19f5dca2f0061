/* test_reservoir.c - Algorithm R: the first k are kept, then each of n with
 * probability k/n; labels attach by request id; the generator is seedable. */
#include "common/ef_error.h"
#include "common/reservoir.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static void the_first_k_are_kept_in_order(void **state)
{
    (void)state;
    struct ef_reservoir *r = NULL;
    assert_int_equal(ef_reservoir_new(4, 2, 7, &r), 0);
    for (int i = 0; i < 4; i++) {
        double in[2] = {i, -i};
        char id[8];
        snprintf(id, sizeof(id), "r%d", i);
        assert_int_equal(ef_reservoir_offer(r, in, id), 1);
    }
    assert_int_equal(r->count, 4);
    assert_int_equal(r->seen, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_true(r->items[i].input[0] == (double)i && r->items[i].input[1] == -(double)i);
        assert_int_equal(r->items[i].label, EF_RESERVOIR_NO_LABEL);
    }
    assert_string_equal(r->items[2].id, "r2");
    ef_reservoir_free(r);
    ef_reservoir_free(NULL);
}

static void each_of_n_is_kept_with_probability_k_over_n(void **state)
{
    (void)state;
    enum { K = 10, N = 100, TRIALS = 2000 };
    unsigned kept[N] = {0};
    struct ef_reservoir *r = NULL;
    assert_int_equal(ef_reservoir_new(K, 1, 12345, &r), 0);
    for (int t = 0; t < TRIALS; t++) {
        ef_reservoir_clear(r);
        for (int i = 0; i < N; i++) {
            double x = i;
            int rc = ef_reservoir_offer(r, &x, NULL);
            assert_true(rc == 0 || rc == 1);
            if (i < K)
                assert_int_equal(rc, 1);
        }
        assert_int_equal(r->count, K);
        assert_int_equal(r->seen, N);
        for (size_t j = 0; j < K; j++)
            kept[(int)r->items[j].input[0]]++;
    }
    /* Expected TRIALS * K / N = 200 each, standard deviation
     * sqrt(2000 * 0.1 * 0.9) = 13.4: six of them is a generous bound that a
     * biased reservoir (keeping the first or the last k) is far outside. */
    unsigned total = 0;
    for (int i = 0; i < N; i++) {
        total += kept[i];
        if (kept[i] < 200 - 80 || kept[i] > 200 + 80)
            fail_msg("item %d kept %u times out of %d (expected about 200)", i, kept[i], TRIALS);
    }
    assert_int_equal(total, TRIALS * K);
    ef_reservoir_free(r);
}

static void labels_attach_by_id(void **state)
{
    (void)state;
    struct ef_reservoir *r = NULL;
    double x = 1;
    assert_int_equal(ef_reservoir_new(3, 1, 1, &r), 0);
    assert_int_equal(ef_reservoir_offer(r, &x, "a"), 1);
    assert_int_equal(ef_reservoir_offer(r, &x, NULL), 1);
    assert_int_equal(ef_reservoir_offer(r, &x, "b"), 1);
    assert_int_equal(ef_reservoir_label(r, "b", 2), 0);
    assert_int_equal(ef_reservoir_label(r, "a", 0), 0);
    assert_int_equal(ef_reservoir_label(r, "zzz", 1), EF_ENOENT);
    assert_int_equal(r->items[0].label, 0);
    assert_int_equal(r->items[1].label, EF_RESERVOIR_NO_LABEL);
    assert_null(r->items[1].id);
    assert_int_equal(r->items[2].label, 2);
    /* After a clear the ids are gone. */
    ef_reservoir_clear(r);
    assert_int_equal(r->count, 0);
    assert_int_equal(ef_reservoir_label(r, "a", 0), EF_ENOENT);
    ef_reservoir_free(r);
}

static void a_replaced_item_loses_its_label_and_id(void **state)
{
    (void)state;
    struct ef_reservoir *r = NULL;
    double x = 0;
    assert_int_equal(ef_reservoir_new(1, 1, 99, &r), 0);
    assert_int_equal(ef_reservoir_offer(r, &x, "old"), 1);
    assert_int_equal(ef_reservoir_label(r, "old", 1), 0);
    /* Offer until one replaces it (probability 1/n each). */
    int replaced = 0;
    for (int i = 0; i < 1000 && !replaced; i++) {
        x = i + 1;
        replaced = ef_reservoir_offer(r, &x, "new") == 1;
    }
    assert_true(replaced);
    assert_string_equal(r->items[0].id, "new");
    assert_int_equal(r->items[0].label, EF_RESERVOIR_NO_LABEL);
    assert_int_equal(ef_reservoir_label(r, "old", 1), EF_ENOENT);
    ef_reservoir_free(r);
}

static void bad_sizes_are_refused(void **state)
{
    (void)state;
    struct ef_reservoir *r = (struct ef_reservoir *)1;
    assert_int_equal(ef_reservoir_new(0, 3, 1, &r), EF_EINVAL);
    assert_null(r);
    assert_int_equal(ef_reservoir_new(3, 0, 1, &r), EF_EINVAL);
    assert_int_equal(ef_reservoir_new(SIZE_MAX / 4, SIZE_MAX / 4, 1, &r), EF_EINVAL);
}

static void the_generator_is_deterministic_and_uniform(void **state)
{
    (void)state;
    struct ef_rng a, b;
    ef_rng_seed(&a, 42);
    ef_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(ef_rng_next(&a) == ef_rng_next(&b));
    ef_rng_seed(&b, 43);
    assert_true(ef_rng_next(&a) != ef_rng_next(&b));
    /* below(6): 60,000 draws, 10,000 expected per face, sd 91. */
    unsigned faces[6] = {0};
    double sum = 0;
    for (int i = 0; i < 60000; i++) {
        uint64_t f = ef_rng_below(&a, 6);
        assert_true(f < 6);
        faces[f]++;
        double u = ef_rng_unit(&a);
        assert_true(u >= 0 && u < 1);
        sum += u;
    }
    for (int f = 0; f < 6; f++)
        assert_true(faces[f] > 10000 - 600 && faces[f] < 10000 + 600);
    /* Mean of 60,000 uniforms: 0.5, sd 0.0012. */
    assert_true(fabs(sum / 60000 - 0.5) < 0.01);
    assert_int_equal(ef_rng_below(&a, 0), 0);
    assert_int_equal(ef_rng_below(&a, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_first_k_are_kept_in_order),
        cmocka_unit_test(each_of_n_is_kept_with_probability_k_over_n),
        cmocka_unit_test(labels_attach_by_id),
        cmocka_unit_test(a_replaced_item_loses_its_label_and_id),
        cmocka_unit_test(bad_sizes_are_refused),
        cmocka_unit_test(the_generator_is_deterministic_and_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

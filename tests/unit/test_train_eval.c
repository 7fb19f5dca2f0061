/*
 * test_train_eval.c - scoring a network on a data set (server/train/train_eval.c)
 * and the registration rule (train_register_better), against values computed
 * by hand on a network whose weights are set here.
 */
#include "common/ef_error.h"
#include "server/train/train_eval.h"
#include "server/train/train_register.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define EPS 1e-6

/*
 * A network without a hidden layer and linear outputs of steepness 1 whose
 * output j is input j: neurons 0 and 1 are the inputs, 2 the input layer's
 * bias, 3.. the outputs. n_out is 1 or 2.
 */
static struct fann *identity_net(unsigned n_out)
{
    struct fann *ann = fann_create_standard(2, 2, n_out);
    assert_non_null(ann);
    fann_set_activation_function_output(ann, FANN_LINEAR);
    fann_set_activation_steepness_output(ann, 1.0f);
    for (unsigned to = 0; to < n_out; to++)
        for (unsigned from = 0; from < 3; from++)
            fann_set_weight(ann, from, 3 + to, from == to ? 1.0f : 0.0f);
    return ann;
}

/* A new data set of n rows of 2 inputs and n_out outputs. */
static struct fann_train_data *data_of(unsigned n, unsigned n_out, const float *in,
                                       const float *out)
{
    struct fann_train_data *d = fann_create_train(n, 2, n_out);
    assert_non_null(d);
    for (unsigned r = 0; r < n; r++) {
        d->input[r][0] = in[2 * r];
        d->input[r][1] = in[2 * r + 1];
        for (unsigned j = 0; j < n_out; j++)
            d->output[r][j] = out[n_out * r + j];
    }
    return d;
}

static void accuracy_mse_and_per_class_by_hand(void **state)
{
    (void)state;
    /* Outputs equal inputs. Row by row: predicted class, expected class,
     * squared errors:
     *   (0.9, 0.1) -> 0, want 0 (1,0): 0.01 + 0.01 = 0.02
     *   (0.2, 0.7) -> 1, want 1 (0,1): 0.04 + 0.09 = 0.13
     *   (0.6, 0.4) -> 0, want 1 (0,1): 0.36 + 0.36 = 0.72   wrong
     *   (0.3, 0.5) -> 1, want 1 (0,1): 0.09 + 0.25 = 0.34
     * accuracy 3/4; mse 1.21 / 8 values = 0.15125; class 0: 1 of 1,
     * class 1: 2 of 3. */
    const float in[] = {0.9f, 0.1f, 0.2f, 0.7f, 0.6f, 0.4f, 0.3f, 0.5f};
    const float out[] = {1, 0, 0, 1, 0, 1, 0, 1};
    struct fann *ann = identity_net(2);
    struct fann_train_data *d = data_of(4, 2, in, out);
    struct train_eval ev;
    char msg[200] = "";
    assert_int_equal(train_eval_run(ann, d, &ev, msg, sizeof(msg)), 0);
    assert_int_equal(ev.rows, 4);
    assert_int_equal(ev.correct, 3);
    assert_float_equal(ev.accuracy, 0.75, EPS);
    assert_float_equal(ev.mse, 0.15125, EPS);
    assert_int_equal(ev.classes, 2);
    assert_int_equal(ev.class_rows[0], 1);
    assert_int_equal(ev.class_correct[0], 1);
    assert_int_equal(ev.class_rows[1], 3);
    assert_int_equal(ev.class_correct[1], 2);

    json_t *labels = json_pack("[s, s]", "ok", "fault");
    json_t *doc = train_eval_json(&ev, labels);
    assert_non_null(doc);
    assert_float_equal(json_real_value(json_object_get(doc, "accuracy")), 0.75, EPS);
    json_t *c1 = json_array_get(json_object_get(doc, "per_class"), 1);
    assert_string_equal(json_string_value(json_object_get(c1, "label")), "fault");
    assert_int_equal(json_integer_value(json_object_get(c1, "rows")), 3);
    assert_float_equal(json_real_value(json_object_get(c1, "accuracy")), 2.0 / 3.0, EPS);
    json_decref(doc);
    json_decref(labels);
    train_eval_release(&ev);
    fann_destroy_train(d);
    fann_destroy(ann);
}

static void single_output_scores_by_side_of_one_half(void **state)
{
    (void)state;
    /* Output = input 0: 0.7 -> class 1 (want 1), 0.4 -> 0 (want 0),
     * 0.5 -> 1 (want 0, wrong). mse (0.09 + 0.16 + 0.25) / 3. */
    const float in[] = {0.7f, 0, 0.4f, 0, 0.5f, 0};
    const float out[] = {1, 0, 0};
    struct fann *ann = identity_net(1);
    struct fann_train_data *d = data_of(3, 1, in, out);
    struct train_eval ev;
    char msg[200] = "";
    assert_int_equal(train_eval_run(ann, d, &ev, msg, sizeof(msg)), 0);
    assert_int_equal(ev.correct, 2);
    assert_float_equal(ev.accuracy, 2.0 / 3.0, EPS);
    assert_float_equal(ev.mse, 0.5 / 3.0, EPS);
    assert_int_equal(ev.classes, 2);
    assert_int_equal(ev.class_rows[0], 2);
    assert_int_equal(ev.class_correct[0], 1);
    assert_int_equal(ev.class_rows[1], 1);
    assert_int_equal(ev.class_correct[1], 1);
    train_eval_release(&ev);
    fann_destroy_train(d);
    fann_destroy(ann);
}

static void class_is_first_maximum(void **state)
{
    (void)state;
    const fann_type tie[] = {0.2f, 0.8f, 0.8f}, one_low[] = {0.49f}, one_half[] = {0.5f};
    assert_int_equal(train_eval_class(tie, 3), 1);
    assert_int_equal(train_eval_class(one_low, 1), 0);
    assert_int_equal(train_eval_class(one_half, 1), 1);
}

static void another_shape_is_refused(void **state)
{
    (void)state;
    struct fann *ann = identity_net(2);
    struct fann_train_data *d = fann_create_train(1, 3, 2);
    struct train_eval ev;
    char msg[200] = "";
    assert_non_null(d);
    assert_int_equal(train_eval_run(ann, d, &ev, msg, sizeof(msg)), EF_EMISMATCH);
    assert_string_equal(msg, "the network has 2 inputs and 2 outputs but the data has 3 and 2");
    assert_null(ev.class_rows);
    train_eval_release(&ev);
    fann_destroy_train(d);
    fann_destroy(ann);
}

static void better_means_at_least_the_margin_above(void **state)
{
    (void)state;
    assert_true(train_register_better(0.95, 0.94, 0.01)); /* exactly the margin */
    assert_false(train_register_better(0.949, 0.94, 0.01));
    assert_true(train_register_better(0.90, 0.90, 0.0));
    assert_false(train_register_better(0.99, 0.5, 1.0));
    assert_true(train_register_better(1.0, 0.0, 1.0));
    assert_true(train_register_better(0.89, 0.90, -0.02)); /* a negative margin tolerates a loss */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accuracy_mse_and_per_class_by_hand),
        cmocka_unit_test(single_output_scores_by_side_of_one_half),
        cmocka_unit_test(class_is_first_maximum),
        cmocka_unit_test(another_shape_is_refused),
        cmocka_unit_test(better_means_at_least_the_margin_above),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

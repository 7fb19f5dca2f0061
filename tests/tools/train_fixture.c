/*
 * train_fixture.c - trains a small FANN network for the tests and benchmarks.
 *
 * usage: ef-train-fixture DATA.train OUT.net [HIDDEN] [EPOCHS] [SEED]
 *
 * Trains a 3-layer MLP (sigmoid) with RPROP on a data set in FANN's training
 * format, e.g. libfann-doc's thyroid.train, and saves it with fann_save.
 * Tests use it to make real models; it is not part of the product (the
 * retrain job, edgefleet-train, is). Prints the final MSE on stdout.
 */
#include <floatfann.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 6) {
        fprintf(stderr, "usage: %s DATA.train OUT.net [HIDDEN] [EPOCHS] [SEED]\n", argv[0]);
        return 2;
    }
    unsigned hidden = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
    unsigned epochs = argc > 4 ? (unsigned)atoi(argv[4]) : 50;
    unsigned seed = argc > 5 ? (unsigned)atoi(argv[5]) : 1;
    struct fann_train_data *data = fann_read_train_from_file(argv[1]);
    if (!data)
        return 1;
    /* Seeded so that a test run is repeatable. */
    srand(seed);
    struct fann *ann = fann_create_standard(3, fann_num_input_train_data(data), hidden,
                                            fann_num_output_train_data(data));
    int rc = 1;
    if (ann) {
        fann_set_activation_function_hidden(ann, FANN_SIGMOID_SYMMETRIC);
        fann_set_activation_function_output(ann, FANN_SIGMOID);
        fann_set_training_algorithm(ann, FANN_TRAIN_RPROP);
        fann_init_weights(ann, data);
        fann_train_on_data(ann, data, epochs, 0, 0.0f);
        printf("%f\n", fann_test_data(ann, data));
        rc = fann_save(ann, argv[2]) == 0 ? 0 : 1;
        fann_destroy(ann);
    }
    fann_destroy_train(data);
    return rc;
}

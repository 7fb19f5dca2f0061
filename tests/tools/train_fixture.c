/*
 * train_fixture.c - trains a small FANN network for the tests and benchmarks.
 *
 * usage: ef-train-fixture DATA.train OUT.net [HIDDEN] [EPOCHS] [SEED] [fixed|float] [VECTORS]
 *
 * Trains a 3-layer MLP (sigmoid) with RPROP on a data set in FANN's training
 * format, e.g. libfann-doc's thyroid.train, and saves it with fann_save.
 * With `fixed` it also writes OUT.net.fixed with fann_save_to_fixed (`float`
 * writes the float network only). Tests use it to make real models; it is not
 * part of the product (the retrain job, edgefleet-train, is). Prints the final
 * MSE on stdout; with VECTORS = K > 0, then a second line: a JSON array of the
 * first K rows of the data as {"input": [...], "output": [...]} where output
 * is what the trained float network computes (%.9g, exact for floats), so
 * that tests can check a loaded network against FANN itself without linking
 * libfann.
 */
#include <floatfann.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: %s DATA.train OUT.net [HIDDEN] [EPOCHS] [SEED] [fixed|float] [VECTORS]\n"

/* Writes OUT.net.fixed. 0 or 1. */
static int save_fixed(struct fann *ann, const char *out)
{
    size_t len = strlen(out) + sizeof(".fixed");
    char *path = malloc(len);
    int rc = 1;
    if (path) {
        snprintf(path, len, "%s.fixed", out);
        /* fann_save_to_fixed returns the position of the decimal point, not
         * a status; -1 is its failure. */
        rc = fann_save_to_fixed(ann, path) < 0 ? 1 : 0;
    }
    free(path);
    return rc;
}

/* Prints the JSON vectors line described above. */
static void print_vectors(struct fann *ann, struct fann_train_data *data, unsigned k)
{
    unsigned rows = fann_length_train_data(data);
    unsigned n_in = fann_num_input_train_data(data), n_out = fann_get_num_output(ann);
    if (k > rows)
        k = rows;
    printf("[");
    for (unsigned r = 0; r < k; r++) {
        const fann_type *out = fann_run(ann, data->input[r]);
        printf("%s{\"input\": [", r ? ", " : "");
        for (unsigned i = 0; i < n_in; i++)
            printf("%s%.9g", i ? ", " : "", (double)data->input[r][i]);
        printf("], \"output\": [");
        for (unsigned i = 0; i < n_out; i++)
            printf("%s%.9g", i ? ", " : "", (double)out[i]);
        printf("]}");
    }
    printf("]\n");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 8) {
        fprintf(stderr, USAGE, argv[0]);
        return 2;
    }
    unsigned hidden = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
    unsigned epochs = argc > 4 ? (unsigned)atoi(argv[4]) : 50;
    unsigned seed = argc > 5 ? (unsigned)atoi(argv[5]) : 1;
    int fixed = argc > 6 && strcmp(argv[6], "fixed") == 0;
    unsigned vectors = argc > 7 ? (unsigned)atoi(argv[7]) : 0;
    if (argc > 6 && !fixed && strcmp(argv[6], "float") != 0) {
        fprintf(stderr, USAGE, argv[0]);
        return 2;
    }
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
        if (rc == 0 && fixed)
            rc = save_fixed(ann, argv[2]);
        if (rc == 0 && vectors > 0)
            print_vectors(ann, data, vectors);
        fann_destroy(ann);
    }
    fann_destroy_train(data);
    return rc;
}

/*
 * fann_backends_fixture.h - what the agent's model and backend tests share
 * for a whole test file: a trained network (fann_fixture.h) and both backend
 * modules, loaded from $EF_BACKEND_DIR. Static inline functions only;
 * include after <cmocka.h>.
 */
#ifndef EF_TESTS_FANN_BACKENDS_FIXTURE_H
#define EF_TESTS_FANN_BACKENDS_FIXTURE_H

#include "agent/backend.h"

#include <stdlib.h>

#include "fann_fixture.h"

/* The state of a test file's group. */
struct fann_backends {
    struct fann_fixture *net; /* trained once for the whole file */
    struct backends *b;       /* both modules from $EF_BACKEND_DIR */
};

/* Frees what fann_backends_setup made; accepts NULL. */
static inline void fann_backends_free(struct fann_backends *f)
{
    if (!f)
        return;
    backends_close(f->b);
    fixture_free(f->net);
    free(f);
}

/* The body of a cmocka group setup: *state becomes a new struct
 * fann_backends whose network was trained with seed. 0 or -1. */
static inline int fann_backends_setup(void **state, unsigned seed)
{
    struct fann_backends *f = calloc(1, sizeof(*f));
    int rc = -1;
    if (f && (f->net = fixture_train(seed)) && backends_open(getenv("EF_BACKEND_DIR"), &f->b) == 0)
        rc = 0;
    if (rc != 0) {
        fann_backends_free(f);
        f = NULL;
    }
    *state = f;
    return rc;
}

/* cmocka group teardown of fann_backends_setup. */
static inline int fann_backends_teardown(void **state)
{
    fann_backends_free(*state);
    return 0;
}

#endif

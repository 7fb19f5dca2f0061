/* test_agent_model.c - loading models against their manifests, golden-vector self-tests. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "agent/model.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fann_backends_fixture.h"

#define FLOAT_TOL 1e-6

static int group_setup(void **state)
{
    return fann_backends_setup(state, 5);
}

static struct model *load_ok(const struct backends *b, struct ef_manifest *mf, const char *path)
{
    struct model *m = NULL;
    char err[512] = "";
    assert_non_null(mf);
    int rc = model_load(b, mf, path, &m, err, sizeof(err));
    if (rc != 0)
        fail_msg("model_load: %s", err);
    return m;
}

static void a_float_model_loads_and_runs_as_fann_does(void **state)
{
    struct fann_backends *f = *state;
    struct ef_manifest *mf =
        fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 3, FLOAT_TOL);
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    assert_int_equal(m->refs, 1);
    assert_string_equal(m->id, "thyroid@3");
    assert_string_equal(m->sha256, mf->sha256);
    assert_ptr_equal(m->backend, backends_get(f->b, "fann"));
    for (size_t i = 0; i < FIXTURE_VECTORS; i++) {
        double in[FIXTURE_INPUTS], want[FIXTURE_OUTPUTS], got[FIXTURE_OUTPUTS];
        fixture_row(f->net, i, in, want);
        assert_int_equal(model_run(m, in, FIXTURE_INPUTS, got, FIXTURE_OUTPUTS), 0);
        size_t best = 0;
        for (size_t k = 0; k < FIXTURE_OUTPUTS; k++) {
            assert_true((float)got[k] == (float)want[k]);
            if (want[k] > want[best])
                best = k;
        }
        const char *label = NULL;
        assert_int_equal(model_argmax(m, got, &label), best);
        const char *labels[] = {"hyperthyroid", "hypothyroid", "normal"};
        assert_string_equal(label, labels[best]);
    }
    double in[FIXTURE_INPUTS + 1] = {0}, out[FIXTURE_OUTPUTS + 1];
    assert_int_equal(model_run(m, in, FIXTURE_INPUTS + 1, out, FIXTURE_OUTPUTS), EF_EINVAL);
    assert_int_equal(model_run(m, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS - 1), EF_EINVAL);
    model_unref(m);
    ef_manifest_free(mf);
}

static void self_test_passes_with_the_right_vectors(void **state)
{
    struct fann_backends *f = *state;
    char err[256] = "";
    struct ef_manifest *mf = fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS,
                                              FIXTURE_VECTORS, FLOAT_TOL);
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    assert_int_equal(model_self_test(m, err, sizeof(err)), 0);
    model_unref(m);
    ef_manifest_free(mf);

    /* The fixed-point network against float vectors, within fixed-point precision. */
    mf = fixture_manifest(f->net, f->net->fixed_net, "fann-fixed", FIXTURE_INPUTS, FIXTURE_VECTORS,
                          FIXTURE_FIXED_TOL);
    m = load_ok(f->b, mf, f->net->fixed_net);
    assert_ptr_equal(m->backend, backends_get(f->b, "fann-fixed"));
    if (model_self_test(m, err, sizeof(err)) != 0)
        fail_msg("fixed self-test: %s", err);
    model_unref(m);
    ef_manifest_free(mf);
}

/* One expected output moved by more than the tolerance fails the test,
 * naming the vector and the output. */
static void self_test_fails_with_a_perturbed_vector(void **state)
{
    struct fann_backends *f = *state;
    char err[256] = "";
    struct ef_manifest *mf = fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS,
                                              FIXTURE_VECTORS, FLOAT_TOL);
    json_t *v = json_array_get(json_object_get(mf->doc, "test_vectors"), 5);
    json_t *out = json_object_get(v, "output");
    double x = json_number_value(json_array_get(out, 2));
    json_array_set_new(out, 2, json_real(x + 10 * FLOAT_TOL));
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    assert_int_equal(model_self_test(m, err, sizeof(err)), EF_EMISMATCH);
    assert_non_null(strstr(err, "golden vector 5: output 2"));

    /* Within tolerance passes again. */
    json_array_set_new(out, 2, json_real(x + 0.5 * FLOAT_TOL));
    assert_int_equal(model_self_test(m, err, sizeof(err)), 0);
    model_unref(m);
    ef_manifest_free(mf);
}

static void self_test_needs_vectors(void **state)
{
    struct fann_backends *f = *state;
    char err[256] = "";
    struct ef_manifest *mf =
        fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 0, FLOAT_TOL);
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    assert_int_equal(model_self_test(m, err, sizeof(err)), EF_EINVAL);
    assert_string_equal(err, "manifest has no golden vectors");
    model_unref(m);
    ef_manifest_free(mf);
}

static void a_missing_backend_is_unsupported(void **state)
{
    struct fann_backends *f = *state;
    struct backends *only_float = NULL;
    struct model *m = (struct model *)&m;
    char dir[160], target[4096], link[200], err[256] = "";
    snprintf(dir, sizeof(dir), "%s/float-only", f->net->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(target, sizeof(target), "%s/edgefleet-backend-fann.so", getenv("EF_BACKEND_DIR"));
    snprintf(link, sizeof(link), "%s/edgefleet-backend-fann.so", dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(backends_open(dir, &only_float), 0);
    struct ef_manifest *mf = fixture_manifest(f->net, f->net->fixed_net, "fann-fixed",
                                              FIXTURE_INPUTS, 1, FIXTURE_FIXED_TOL);
    assert_int_equal(model_load(only_float, mf, f->net->fixed_net, &m, err, sizeof(err)),
                     EF_EUNSUPPORTED);
    assert_null(m);
    assert_non_null(strstr(err, "fann-fixed"));
    ef_manifest_free(mf);
    backends_close(only_float);
}

static void sizes_and_kinds_must_match_the_manifest(void **state)
{
    struct fann_backends *f = *state;
    struct model *m = NULL;
    char err[256] = "";
    /* The manifest claims 20 inputs for a 21-input network. */
    struct ef_manifest *mf = fixture_manifest(f->net, f->net->float_net, "fann", 20, 0, FLOAT_TOL);
    assert_non_null(mf);
    assert_int_equal(model_load(f->b, mf, f->net->float_net, &m, err, sizeof(err)), EF_EMISMATCH);
    assert_null(m);
    assert_non_null(strstr(err, "21 inputs"));
    ef_manifest_free(mf);

    /* A float manifest naming a fixed-point file. */
    mf = fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 1, FLOAT_TOL);
    assert_int_equal(model_load(f->b, mf, f->net->fixed_net, &m, err, sizeof(err)), EF_EMISMATCH);
    assert_null(m);

    /* A file that is not there. */
    char missing[200];
    snprintf(missing, sizeof(missing), "%s/nope.net", f->net->dir);
    assert_int_equal(model_load(f->b, mf, missing, &m, err, sizeof(err)), EF_ENOENT);
    ef_manifest_free(mf);
}

/* The model keeps the manifest's document alive after the caller's struct
 * is gone, and lives until its last reference is dropped. */
static void references_keep_the_model_and_its_manifest(void **state)
{
    struct fann_backends *f = *state;
    char err[256] = "";
    struct ef_manifest *mf =
        fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 2, FLOAT_TOL);
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    ef_manifest_free(mf);
    assert_ptr_equal(model_ref(m), m);
    assert_int_equal(m->refs, 2);
    model_unref(m);
    assert_int_equal(m->refs, 1);
    assert_string_equal(m->manifest->name, "thyroid");
    assert_int_equal(model_self_test(m, err, sizeof(err)), 0);
    model_unref(m);
    model_unref(NULL);
}

static void argmax_and_labels(void **state)
{
    struct fann_backends *f = *state;
    struct ef_manifest *mf =
        fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 0, FLOAT_TOL);
    struct model *m = load_ok(f->b, mf, f->net->float_net);
    const char *label = NULL;
    const double a[] = {0.2, 0.7, 0.1}, b[] = {NAN, 0.1, 0.3}, c[] = {NAN, NAN, NAN};
    assert_int_equal(model_argmax(m, a, &label), 1);
    assert_string_equal(label, "hypothyroid");
    assert_int_equal(model_argmax(m, b, NULL), 2);
    assert_int_equal(model_argmax(m, c, &label), 0);
    size_t k = 99;
    assert_int_equal(model_label_index(m, "normal", &k), 0);
    assert_int_equal(k, 2);
    assert_int_equal(model_label_index(m, "euthyroid", &k), EF_ENOENT);
    assert_int_equal(model_label_index(m, NULL, &k), EF_ENOENT);

    /* Without labels: no label, classes still. */
    json_object_del(json_object_get(mf->doc, "output"), "labels");
    struct model *bare = load_ok(f->b, mf, f->net->float_net);
    assert_int_equal(model_argmax(bare, a, &label), 1);
    assert_null(label);
    assert_int_equal(model_label_index(bare, "normal", &k), EF_ENOENT);
    model_unref(bare);
    model_unref(m);
    ef_manifest_free(mf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_float_model_loads_and_runs_as_fann_does),
        cmocka_unit_test(self_test_passes_with_the_right_vectors),
        cmocka_unit_test(self_test_fails_with_a_perturbed_vector),
        cmocka_unit_test(self_test_needs_vectors),
        cmocka_unit_test(a_missing_backend_is_unsupported),
        cmocka_unit_test(sizes_and_kinds_must_match_the_manifest),
        cmocka_unit_test(references_keep_the_model_and_its_manifest),
        cmocka_unit_test(argmax_and_labels),
    };
    return cmocka_run_group_tests(tests, group_setup, fann_backends_teardown);
}

/* test_agent_backends.c - the backend modules, loaded side by side, on real FANN networks. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "agent/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fann_backends_fixture.h"

/* libfann 2.2.0 does not free the error message it formats when a file
 * fails to parse (fann_error's 128-byte buffer); a libfann leak, not ours,
 * that the truncated-file tests below provoke on purpose. */
__attribute__((used)) const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:fann_error\n";
}

static int group_setup(void **state)
{
    return fann_backends_setup(state, 11);
}

/* Copies src to dst (a module copied is a different file to dlopen). */
static void copy_file(const char *src, const char *dst)
{
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ef_read_file(src, 1u << 26, &data, &len), 0);
    assert_int_equal(ef_atomic_write(dst, data, len, 0755), 0);
    free(data);
}

static void load_ok(const struct backend_api *api, const char *path, struct backend_model **out)
{
    char err[256] = "";
    int rc = api->load(path, out, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s refused %s: %s", api->name, path, err);
}

static void default_dir_follows_the_environment(void **state)
{
    (void)state;
    char buf[4096], *saved = strdup(getenv("EF_BACKEND_DIR"));
    assert_int_equal(setenv("EF_BACKEND_DIR", "/opt/ef/modules", 1), 0);
    assert_int_equal(backends_default_dir(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/opt/ef/modules");
    assert_int_equal(backends_default_dir(buf, 8), EF_ETOOBIG);

    /* Without it: next to the executable, as installed. */
    assert_int_equal(unsetenv("EF_BACKEND_DIR"), 0);
    assert_int_equal(backends_default_dir(buf, sizeof(buf)), 0);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    strcat(exe, "/../lib/edgefleet");
    assert_string_equal(buf, exe);
    assert_int_equal(setenv("EF_BACKEND_DIR", saved, 1), 0);
    free(saved);
}

static void both_modules_load_with_their_names(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *fl = backends_get(f->b, "fann");
    const struct backend_api *fx = backends_get(f->b, "fann-fixed");
    assert_non_null(fl);
    assert_non_null(fx);
    assert_string_equal(fl->name, "fann");
    assert_string_equal(fx->name, "fann-fixed");
    assert_int_equal(fl->abi, EF_BACKEND_ABI);
    assert_int_equal(fx->abi, EF_BACKEND_ABI);
    assert_true(fl->run != fx->run);
    assert_null(backends_get(f->b, "fann-double"));
    assert_null(backends_get(f->b, NULL));
    assert_null(backends_get(NULL, "fann"));
}

static void a_directory_without_modules_is_refused(void **state)
{
    struct fann_backends *f = *state;
    struct backends *b = (struct backends *)&b;
    char dir[160];
    snprintf(dir, sizeof(dir), "%s/empty", f->net->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(backends_open(dir, &b), EF_ENOENT);
    assert_null(b);

    /* Not a shared object at all: skipped, so still nothing. */
    char bogus[200];
    snprintf(bogus, sizeof(bogus), "%s/edgefleet-backend-fann.so", dir);
    assert_int_equal(ef_atomic_write(bogus, "not an ELF file", 15, 0755), 0);
    assert_int_equal(backends_open(dir, &b), EF_ENOENT);
    backends_close(NULL);
}

/* A module under another backend's file name says its own name, and is
 * refused for the name it was found under. */
static void a_module_under_the_wrong_name_is_skipped(void **state)
{
    struct fann_backends *f = *state;
    struct backends *b = NULL;
    char dir[160], src[4096], dst[200];
    snprintf(dir, sizeof(dir), "%s/renamed", f->net->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(src, sizeof(src), "%s/edgefleet-backend-fann.so", getenv("EF_BACKEND_DIR"));
    snprintf(dst, sizeof(dst), "%s/edgefleet-backend-fann-fixed.so", dir);
    copy_file(src, dst);
    assert_int_equal(backends_open(dir, &b), EF_ENOENT);
    snprintf(dst, sizeof(dst), "%s/edgefleet-backend-fann.so", dir);
    copy_file(src, dst);
    assert_int_equal(backends_open(dir, &b), 0);
    assert_non_null(backends_get(b, "fann"));
    assert_null(backends_get(b, "fann-fixed"));
    backends_close(b);
}

/* The float module computes exactly what FANN computed in the trainer. */
static void float_outputs_equal_fann(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *api = backends_get(f->b, "fann");
    struct backend_model *m = NULL;
    size_t n_in = 0, n_out = 0;
    load_ok(api, f->net->float_net, &m);
    api->describe(m, &n_in, &n_out);
    assert_int_equal(n_in, FIXTURE_INPUTS);
    assert_int_equal(n_out, FIXTURE_OUTPUTS);
    for (size_t i = 0; i < FIXTURE_VECTORS; i++) {
        double in[FIXTURE_INPUTS], want[FIXTURE_OUTPUTS], got[FIXTURE_OUTPUTS];
        fixture_row(f->net, i, in, want);
        assert_int_equal(api->run(m, in, n_in, got, n_out), 0);
        /* The trainer printed floats with 9 digits: exact once rounded back. */
        for (size_t k = 0; k < n_out; k++)
            if ((float)got[k] != (float)want[k])
                fail_msg("row %zu output %zu: %.9g, FANN said %.9g", i, k, got[k], want[k]);
    }
    api->free_model(m);
}

/* Both builds of FANN in one process, interleaved: each module keeps its
 * own symbols (RTLD_LOCAL), and the fixed-point network agrees with the
 * float one within fixed-point precision. */
static void float_and_fixed_run_side_by_side(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *fl = backends_get(f->b, "fann");
    const struct backend_api *fx = backends_get(f->b, "fann-fixed");
    struct backend_model *mf = NULL, *mx = NULL;
    load_ok(fl, f->net->float_net, &mf);
    load_ok(fx, f->net->fixed_net, &mx);
    double worst = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < FIXTURE_VECTORS; i++) {
            double in[FIXTURE_INPUTS], want[FIXTURE_OUTPUTS], a[FIXTURE_OUTPUTS],
                b[FIXTURE_OUTPUTS];
            fixture_row(f->net, i, in, want);
            assert_int_equal(fx->run(mx, in, FIXTURE_INPUTS, b, FIXTURE_OUTPUTS), 0);
            assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS, a, FIXTURE_OUTPUTS), 0);
            for (size_t k = 0; k < FIXTURE_OUTPUTS; k++) {
                assert_true((float)a[k] == (float)want[k]);
                /* Fixed-point outputs are multiples of 2^-decimal_point. */
                assert_true(b[k] >= 0 && b[k] <= 1);
                assert_true(fabs(b[k] - want[k]) <= FIXTURE_FIXED_TOL);
                worst = fmax(worst, fabs(b[k] - want[k]));
            }
        }
    }
    print_message("fixed-point against float: worst difference %.5f\n", worst);
    fx->free_model(mx);
    fl->free_model(mf);
}

static void a_network_of_the_other_kind_is_refused(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *fl = backends_get(f->b, "fann");
    const struct backend_api *fx = backends_get(f->b, "fann-fixed");
    struct backend_model *m = (struct backend_model *)&m;
    char err[256] = "";
    assert_int_equal(fl->load(f->net->fixed_net, &m, err, sizeof(err)), EF_EMISMATCH);
    assert_null(m);
    assert_non_null(strstr(err, "fixed-point FANN network"));
    assert_int_equal(fx->load(f->net->float_net, &m, err, sizeof(err)), EF_EMISMATCH);
    assert_null(m);
    assert_non_null(strstr(err, "float FANN network"));
}

static void unreadable_and_malformed_files_are_refused(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *fl = backends_get(f->b, "fann");
    const struct backend_api *fx = backends_get(f->b, "fann-fixed");
    struct backend_model *m = NULL;
    char err[256] = "", path[512];

    snprintf(path, sizeof(path), "%s/missing.net", f->net->dir);
    assert_int_equal(fl->load(path, &m, err, sizeof(err)), EF_ENOENT);

    snprintf(path, sizeof(path), "%s/garbage.net", f->net->dir);
    assert_int_equal(ef_atomic_write(path, "hello\n", 6, 0600), 0);
    assert_int_equal(fl->load(path, &m, err, sizeof(err)), EF_EINVAL);
    assert_int_equal(fx->load(path, &m, err, sizeof(err)), EF_EINVAL);

    snprintf(path, sizeof(path), "%s/empty.net", f->net->dir);
    assert_int_equal(ef_atomic_write(path, "", 0, 0600), 0);
    assert_int_equal(fl->load(path, &m, err, sizeof(err)), EF_EINVAL);
    assert_null(m);
}

/* Regression: Debian's libfann 2.2.0 formats the path of a file that fails
 * to load into a 128-byte heap buffer. A truncated network under a path
 * far longer than that must fail cleanly (AddressSanitizer watches). */
static void a_truncated_network_under_a_long_path_fails_cleanly(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *apis[] = {backends_get(f->b, "fann"),
                                        backends_get(f->b, "fann-fixed")};
    const char *sources[] = {f->net->float_net, f->net->fixed_net};
    for (size_t i = 0; i < 2; i++) {
        char dir[512], path[600], *data = NULL, err[1024] = "";
        size_t len = 0;
        struct backend_model *m = NULL;
        snprintf(dir, sizeof(dir), "%s/%s%0200d", f->net->dir, i ? "fixed" : "float", 0);
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(path, sizeof(path), "%s/truncated-network-with-a-long-name.net", dir);
        assert_int_equal(ef_read_file(sources[i], 1u << 20, &data, &len), 0);
        assert_int_equal(ef_atomic_write(path, data, len / 3, 0600), 0);
        free(data);
        assert_true(strlen(path) > 200);
        assert_int_equal(apis[i]->load(path, &m, err, sizeof(err)), EF_EINVAL);
        assert_null(m);
        if (!strstr(err, "does not load"))
            fail_msg("%s", err);
    }
}

static void run_checks_counts_and_domain(void **state)
{
    struct fann_backends *f = *state;
    const struct backend_api *fl = backends_get(f->b, "fann");
    const struct backend_api *fx = backends_get(f->b, "fann-fixed");
    struct backend_model *mf = NULL, *mx = NULL;
    double in[FIXTURE_INPUTS + 1], out[FIXTURE_OUTPUTS + 1];
    load_ok(fl, f->net->float_net, &mf);
    load_ok(fx, f->net->fixed_net, &mx);
    fixture_row(f->net, 0, in, NULL);
    assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS - 1, out, FIXTURE_OUTPUTS), EF_EINVAL);
    assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS + 1), EF_EINVAL);
    assert_int_equal(fx->run(mx, in, FIXTURE_INPUTS + 1, out, FIXTURE_OUTPUTS), EF_EINVAL);

    /* Fixed point takes [-1, 1] only; float anything a float holds. */
    in[3] = 1.5;
    assert_int_equal(fx->run(mx, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), EF_EINVAL);
    assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), 0);
    in[3] = -1.0;
    assert_int_equal(fx->run(mx, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), 0);
    in[3] = NAN;
    assert_int_equal(fx->run(mx, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), EF_EINVAL);
    assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), EF_EINVAL);
    in[3] = 1e300;
    assert_int_equal(fl->run(mf, in, FIXTURE_INPUTS, out, FIXTURE_OUTPUTS), EF_EINVAL);
    fl->free_model(mf);
    fx->free_model(mx);
    fl->free_model(NULL);
    fx->free_model(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_dir_follows_the_environment),
        cmocka_unit_test(both_modules_load_with_their_names),
        cmocka_unit_test(a_directory_without_modules_is_refused),
        cmocka_unit_test(a_module_under_the_wrong_name_is_skipped),
        cmocka_unit_test(float_outputs_equal_fann),
        cmocka_unit_test(float_and_fixed_run_side_by_side),
        cmocka_unit_test(a_network_of_the_other_kind_is_refused),
        cmocka_unit_test(unreadable_and_malformed_files_are_refused),
        cmocka_unit_test(a_truncated_network_under_a_long_path_fails_cleanly),
        cmocka_unit_test(run_checks_counts_and_domain),
    };
    return cmocka_run_group_tests(tests, group_setup, fann_backends_teardown);
}

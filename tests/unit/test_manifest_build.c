/* test_manifest_build.c - FANN headers and the manifests the server builds
 * from real float and fixed-point networks and the client's meta. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "server/manifest_build.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/manifest.h"

#include <floatfann.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_MS 1795000000123LL /* 2026-11-18T11:06:40.123Z */

/* Debian's libfann 2.2.0 leaks the error string of a network that fails to
 * load (a_float_network_must_load); the leak is the library's, not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:fann_error\n";
}

struct fixture {
    char dir[64];                /* mkdtemp directory */
    char float_net[128];         /* 4 inputs, 5 hidden, 3 outputs, FANN_FLO_2.1 */
    char fixed_net[128];         /* the same network, FANN_FIX_2.0 */
    char sha256[EF_HEX256_SIZE]; /* of float_net */
    int64_t size;                /* of float_net */
    char msg[256];               /* reason of the last refusal */
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char *bytes = NULL;
    size_t len = 0;
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ef_test_manifest_build.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->float_net, sizeof(f->float_net), "%s/float.net", f->dir);
    snprintf(f->fixed_net, sizeof(f->fixed_net), "%s/fixed.net", f->dir);
    struct fann *ann = fann_create_standard(3, 4, 5, 3);
    assert_non_null(ann);
    assert_int_equal(fann_save(ann, f->float_net), 0);
    assert_true(fann_save_to_fixed(ann, f->fixed_net) >= 0); /* the decimal point, or -1 */
    fann_destroy(ann);
    assert_int_equal(ef_sha256_file_hex(f->float_net, f->sha256), 0);
    assert_int_equal(ef_read_file(f->float_net, 1 << 20, &bytes, &len), 0);
    f->size = (int64_t)len;
    free(bytes);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Writes text to dir/name and returns the path in buf. */
static const char *write_file(struct fixture *f, const char *name, const char *text, char *buf,
                              size_t size)
{
    snprintf(buf, size, "%s/%s", f->dir, name);
    assert_int_equal(ef_atomic_write(buf, text, strlen(text), 0600), 0);
    return buf;
}

/* A manifest_source for the float network with meta (borrowed, may be NULL). */
static struct manifest_source source(const struct fixture *f, const json_t *meta)
{
    struct manifest_source src = {
        .name = "iris",
        .version = 3,
        .parent_version = 2,
        .artifact_path = f->float_net,
        .sha256 = f->sha256,
        .size = f->size,
        .meta = meta,
        .now_ms = NOW_MS,
    };
    return src;
}

static json_t *parse(const char *text)
{
    json_t *doc = NULL;
    assert_int_equal(ef_json_load(text, strlen(text), 1 << 20, &doc, NULL, 0), 0);
    return doc;
}

/* Builds with meta given as JSON text; returns the result code. */
static int build_with(struct fixture *f, const char *meta_text, struct ef_manifest **out)
{
    json_t *meta = meta_text ? parse(meta_text) : NULL;
    struct manifest_source src = source(f, meta);
    f->msg[0] = '\0';
    int rc = manifest_build(&src, out, f->msg, sizeof(f->msg));
    json_decref(meta);
    return rc;
}

static void inspects_a_float_network(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    assert_int_equal(manifest_inspect_artifact(f->float_net, NULL, &info, f->msg, sizeof(f->msg)),
                     0);
    assert_string_equal(info.backend, "fann");
    assert_int_equal(info.inputs, 4);
    assert_int_equal(info.outputs, 3);
    assert_int_equal(manifest_inspect_artifact(f->float_net, "fann", &info, NULL, 0), 0);
}

static void inspects_a_fixed_point_network(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    assert_int_equal(
        manifest_inspect_artifact(f->fixed_net, "fann-fixed", &info, f->msg, sizeof(f->msg)), 0);
    assert_string_equal(info.backend, "fann-fixed");
    assert_int_equal(info.inputs, 4);
    assert_int_equal(info.outputs, 3);
}

static void backend_and_header_must_agree(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    assert_int_equal(
        manifest_inspect_artifact(f->float_net, "fann-fixed", &info, f->msg, sizeof(f->msg)),
        EF_EINVAL);
    assert_non_null(strstr(f->msg, "float"));
    assert_int_equal(manifest_inspect_artifact(f->fixed_net, "fann", &info, f->msg, sizeof(f->msg)),
                     EF_EINVAL);
    assert_non_null(strstr(f->msg, "fixed-point"));
}

static void refuses_files_that_are_not_fann_networks(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    char path[160];
    static const char *const bad[] = {
        "",
        "\x7f"
        "ELF binary",
        "FANN_DOU_2.1\nlayer_sizes=3 2 \n",               /* double precision */
        "FANN_FIX_2.0\nnum_layers=2\n",                   /* no layer_sizes */
        "FANN_FIX_2.0\nlayer_sizes=5 \n",                 /* one layer */
        "FANN_FIX_2.0\nlayer_sizes=5 1 \n",               /* a layer of only a bias */
        "FANN_FIX_2.0\nlayer_sizes=5 x 4 \n",             /* not a number */
        "FANN_FIX_2.0\nlayer_sizes=5 -3 4 \n",            /* signed */
        "FANN_FIX_2.0\nlayer_sizes=5 99999999999 4 \n",   /* huge */
        "FANN_FIX_2.0\nnum_layers=3\nlayer_sizes=5 4 \n", /* disagrees with num_layers */
        "FANN_FIX_2.0\nlayer_sizes=70000 4 \n",           /* too many inputs */
        "FANN_FIX_2.0\nlayer_sizes=5 4",                  /* truncated line */
        "FANN_FIX_2.0 trailing\nlayer_sizes=5 4 \n",      /* magic with more on its line */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(f, "bad.net", bad[i], path, sizeof(path));
        f->msg[0] = '\0';
        assert_int_equal(manifest_inspect_artifact(path, NULL, &info, f->msg, sizeof(f->msg)),
                         EF_EINVAL);
        assert_true(strlen(f->msg) > 0);
    }
    snprintf(path, sizeof(path), "%s/missing.net", f->dir);
    assert_int_equal(manifest_inspect_artifact(path, NULL, &info, NULL, 0), EF_ENOENT);
}

static void reads_a_minimal_fixed_header(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    char path[160];
    write_file(f, "hand.net",
               "FANN_FIX_2.0\r\ndecimal_point=13\r\nnum_layers=3\r\n"
               "layer_sizes=22 9 4 \r\n",
               path, sizeof(path));
    assert_int_equal(manifest_inspect_artifact(path, NULL, &info, f->msg, sizeof(f->msg)), 0);
    assert_string_equal(info.backend, "fann-fixed");
    assert_int_equal(info.inputs, 21);
    assert_int_equal(info.outputs, 3);
}

static void a_float_network_must_load(void **state)
{
    struct fixture *f = *state;
    struct manifest_artifact_info info;
    char *bytes = NULL, path[160];
    size_t len = 0;
    /* The header survives but the weights are cut off. */
    assert_int_equal(ef_read_file(f->float_net, 1 << 20, &bytes, &len), 0);
    char *cut = strstr(bytes, "connections");
    assert_non_null(cut);
    *cut = '\0';
    write_file(f, "cut.net", bytes, path, sizeof(path));
    free(bytes);
    assert_int_equal(manifest_inspect_artifact(path, "fann", &info, f->msg, sizeof(f->msg)),
                     EF_EINVAL);
    assert_non_null(strstr(f->msg, "load"));
}

static void builds_defaults_without_meta(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    assert_int_equal(build_with(f, NULL, &m), 0);
    json_t *doc = m->doc;
    assert_int_equal(json_integer_value(json_object_get(doc, "format")), 1);
    assert_string_equal(m->name, "iris");
    assert_int_equal(m->version, 3);
    assert_string_equal(m->backend, "fann");
    assert_null(m->device_class);
    assert_true(json_is_null(json_object_get(doc, "device_class")));
    assert_string_equal(m->sha256, f->sha256);
    assert_int_equal(m->size, f->size);
    assert_int_equal(m->input_size, 4);
    assert_int_equal(m->output_size, 3);
    json_t *features = json_object_get(json_object_get(doc, "input"), "features");
    assert_int_equal(json_array_size(features), 4);
    assert_string_equal(json_string_value(json_array_get(features, 0)), "f0");
    assert_string_equal(json_string_value(json_array_get(features, 3)), "f3");
    assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "output"), "labels")), 0);
    assert_true(json_is_array(json_object_get(json_object_get(doc, "output"), "labels")));
    assert_true(json_is_null(json_object_get(doc, "baseline")));
    assert_int_equal(m->test_vector_count, 0);
    assert_true(json_is_object(json_object_get(doc, "metrics")));
    json_t *lineage = json_object_get(doc, "lineage");
    assert_int_equal(json_integer_value(json_object_get(lineage, "parent_version")), 2);
    assert_true(json_is_null(json_object_get(lineage, "dataset_id")));
    assert_true(json_is_null(json_object_get(lineage, "trigger")));
    assert_string_equal(json_string_value(json_object_get(doc, "created_at")),
                        "2026-11-18T11:06:40.123Z");
    /* Exactly the fields of schema/json/manifest.schema.json. */
    assert_int_equal(json_object_size(doc), 13);
    ef_manifest_free(m);
}

static void first_version_has_no_parent(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    struct manifest_source src = source(f, NULL);
    src.version = 1;
    src.parent_version = 0;
    assert_int_equal(manifest_build(&src, &m, f->msg, sizeof(f->msg)), 0);
    assert_true(
        json_is_null(json_object_get(json_object_get(m->doc, "lineage"), "parent_version")));
    ef_manifest_free(m);
}

static void meta_fills_the_fields_the_artifact_cannot_tell(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    assert_int_equal(
        build_with(f,
                   "{\"description\": \"iris flowers\", \"version\": 3, \"backend\": \"fann\","
                   " \"device_class\": \"rpi4\","
                   " \"features\": [\"sepal_l\", \"sepal_w\", \"petal_l\", \"petal_w\"],"
                   " \"labels\": [\"setosa\", \"versicolor\", \"virginica\"],"
                   " \"test_vectors\": [{\"input\": [1, 2, 3, 4], \"output\": [0, 1, 0],"
                   "   \"tolerance\": 0.1}],"
                   " \"baseline\": {\"features\": ["
                   "   {\"edges\": [0, 1], \"fractions\": [1]},"
                   "   {\"edges\": [0, 1], \"fractions\": [1]},"
                   "   {\"edges\": [0, 1], \"fractions\": [1]},"
                   "   {\"edges\": [0, 0.5, 1], \"fractions\": [0.5, 0.5]}],"
                   "  \"output\": [{\"edges\": [0, 1], \"fractions\": [1]},"
                   "   {\"edges\": [0, 1], \"fractions\": [1]},"
                   "   {\"edges\": [0, 1], \"fractions\": [1]}]},"
                   " \"metrics\": {\"accuracy\": 0.97},"
                   " \"lineage\": {\"dataset_id\": \"ds-7\", \"trigger\": \"drift-alert-3\"}}",
                   &m),
        0);
    json_t *doc = m->doc;
    assert_string_equal(m->device_class, "rpi4");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(doc, "input"), "features"), 2)),
                        "petal_l");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(doc, "output"), "labels"), 1)),
                        "versicolor");
    assert_int_equal(m->test_vector_count, 1);
    assert_true(json_is_object(json_object_get(doc, "baseline")));
    assert_true(json_number_value(json_object_get(json_object_get(doc, "metrics"), "accuracy")) >
                0.9);
    json_t *lineage = json_object_get(doc, "lineage");
    assert_int_equal(json_integer_value(json_object_get(lineage, "parent_version")), 2);
    assert_string_equal(json_string_value(json_object_get(lineage, "dataset_id")), "ds-7");
    assert_string_equal(json_string_value(json_object_get(lineage, "trigger")), "drift-alert-3");
    /* description and version are the caller's, never manifest fields. */
    assert_null(json_object_get(doc, "description"));
    assert_int_equal(json_object_size(doc), 13);
    ef_manifest_free(m);
}

static void the_built_manifest_survives_signing_and_verification(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL, *back = NULL;
    struct ef_keypair kp;
    char sig[EF_SIG_B64_SIZE];
    assert_int_equal(build_with(f, "{\"labels\": [\"a\", \"b\", \"c\"]}", &m), 0);
    char *bytes = ef_manifest_serialize(m);
    assert_non_null(bytes);
    ef_keypair_generate(&kp);
    ef_sign_b64(kp.sk, bytes, strlen(bytes), sig);
    assert_int_equal(
        ef_manifest_verify_parse(bytes, strlen(bytes), sig, kp.pk, &back, f->msg, sizeof(f->msg)),
        0);
    assert_string_equal(back->sha256, f->sha256);
    assert_int_equal(back->output_size, 3);
    free(bytes);
    ef_manifest_free(back);
    ef_manifest_free(m);
}

static void lineage_parent_may_be_given(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    assert_int_equal(build_with(f, "{\"lineage\": {\"parent_version\": 1}}", &m), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(m->doc, "lineage"), "parent_version")),
        1);
    ef_manifest_free(m);
}

static void backend_in_meta_is_checked_against_the_file(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    assert_int_equal(build_with(f, "{\"backend\": \"fann-fixed\"}", &m), EF_EINVAL);
    assert_null(m);
    assert_non_null(strstr(f->msg, "fann-fixed"));
    assert_int_equal(build_with(f, "{\"backend\": \"tflite\"}", &m), EF_EINVAL);
    assert_non_null(strstr(f->msg, "backend"));
    assert_int_equal(build_with(f, "{\"backend\": 1}", &m), EF_EINVAL);
}

static void a_fixed_point_artifact_builds_a_fann_fixed_manifest(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    struct manifest_source src = source(f, NULL);
    char sha[EF_HEX256_SIZE];
    assert_int_equal(ef_sha256_file_hex(f->fixed_net, sha), 0);
    src.artifact_path = f->fixed_net;
    src.sha256 = sha;
    assert_int_equal(manifest_build(&src, &m, f->msg, sizeof(f->msg)), 0);
    assert_string_equal(m->backend, "fann-fixed");
    assert_int_equal(m->input_size, 4);
    ef_manifest_free(m);
}

static void refuses_bad_meta_with_a_reason(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    static const struct {
        const char *meta;
        const char *reason; /* a word the message must hold */
    } cases[] = {
        {"{\"colour\": \"blue\"}", "colour"},
        {"{\"features\": [\"a\", \"b\"]}", "features"},
        {"{\"features\": [\"a\", \"b\", \"c\", \"\"]}", "features"},
        {"{\"features\": \"abcd\"}", "features"},
        {"{\"labels\": [\"a\"]}", "labels"},
        {"{\"labels\": {}}", "labels"},
        {"{\"test_vectors\": {}}", "test_vectors"},
        {"{\"test_vectors\": [{\"input\": [1, 2], \"output\": [0, 1, 0], \"tolerance\": 0}]}",
         "test_vectors[0]"},
        {"{\"test_vectors\": [{\"input\": [1, 2, 3, 4], \"output\": [0, 1, 0]}]}", "tolerance"},
        {"{\"baseline\": [1]}", "baseline"},
        {"{\"baseline\": {\"features\": [], \"output\": []}}", "baseline"},
        {"{\"metrics\": [1]}", "metrics"},
        {"{\"device_class\": 7}", "device_class"},
        {"{\"device_class\": \"Not A Name\"}", "device_class"},
        {"{\"lineage\": 3}", "lineage"},
        {"{\"lineage\": {\"parent\": 3}}", "parent"},
        {"{\"lineage\": {\"parent_version\": 0}}", "parent_version"},
        {"{\"lineage\": {\"trigger\": 5}}", "trigger"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(build_with(f, cases[i].meta, &m), EF_EINVAL);
        assert_null(m);
        if (!strstr(f->msg, cases[i].reason))
            fail_msg("meta %s: message \"%s\" does not mention %s", cases[i].meta, f->msg,
                     cases[i].reason);
    }
}

static void meta_must_be_an_object(void **state)
{
    struct fixture *f = *state;
    struct ef_manifest *m = NULL;
    assert_int_equal(build_with(f, "[1, 2]", &m), EF_EINVAL);
    assert_non_null(strstr(f->msg, "object"));
}

static void every_documented_meta_key_is_accepted(void **state)
{
    size_t n = 0;
    for (const char *const *k = manifest_meta_keys; *k; k++)
        n++;
    assert_int_equal(n, 10);
    (void)state;
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(inspects_a_float_network),
        T(inspects_a_fixed_point_network),
        T(backend_and_header_must_agree),
        T(refuses_files_that_are_not_fann_networks),
        T(reads_a_minimal_fixed_header),
        T(a_float_network_must_load),
        T(builds_defaults_without_meta),
        T(first_version_has_no_parent),
        T(meta_fills_the_fields_the_artifact_cannot_tell),
        T(the_built_manifest_survives_signing_and_verification),
        T(lineage_parent_may_be_given),
        T(backend_in_meta_is_checked_against_the_file),
        T(a_fixed_point_artifact_builds_a_fann_fixed_manifest),
        T(refuses_bad_meta_with_a_reason),
        T(meta_must_be_an_object),
        T(every_documented_meta_key_is_accepted),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

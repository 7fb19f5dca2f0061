/* test_manifest.c - manifest validation, verification before parsing, canonical bytes. */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/manifest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HIST    "{\"edges\":[0.0,0.5,1.0],\"fractions\":[0.5,0.5]}"

/* A valid manifest in canonical form (compact, keys sorted bytewise, reals
 * that print exactly): what ef_manifest_serialize must give back. */
static const char canonical[] =
    "{\"artifact\":{\"sha256\":\"" SHA_ABC "\",\"size\":1234},"
    "\"backend\":\"fann\","
    "\"baseline\":{\"features\":[" HIST "," HIST "],\"output\":[" HIST "," HIST "]},"
    "\"created_at\":\"2026-11-22T10:00:00.123Z\","
    "\"device_class\":\"rpi4\","
    "\"format\":1,"
    "\"input\":{\"features\":[\"temp\",\"vibration\"],\"size\":2},"
    "\"lineage\":{\"dataset_id\":\"ds-1\",\"parent_version\":2,\"trigger\":\"manual\"},"
    "\"metrics\":{\"accuracy\":0.75},"
    "\"name\":\"classifier\","
    "\"output\":{\"labels\":[\"ok\",\"fault\"],\"size\":2},"
    "\"test_vectors\":[{\"input\":[0.5,0.25],\"output\":[1.0,0.0],\"tolerance\":0.125},"
    "{\"input\":[1.0,-1.0],\"output\":[0.0,1.0],\"tolerance\":0.0}],"
    "\"version\":3}";

static int setup_crypto(void **state)
{
    (void)state;
    return ef_crypto_init();
}

static json_t *canonical_doc(void)
{
    json_t *doc = json_loads(canonical, 0, NULL);
    assert_non_null(doc);
    return doc;
}

/* Follows a dotted path ("artifact.sha256", "test_vectors.0.input") and
 * replaces the value at its end with replacement (JSON text), or deletes it
 * when replacement is NULL. */
static void mutate(json_t *doc, const char *path, const char *replacement)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *parent = doc;
    char *key = buf, *dot;
    while ((dot = strchr(key, '.')) != NULL) {
        *dot = '\0';
        parent = json_is_array(parent) ? json_array_get(parent, strtoul(key, NULL, 10))
                                       : json_object_get(parent, key);
        assert_non_null(parent);
        key = dot + 1;
    }
    json_t *value = NULL;
    if (replacement) {
        value = json_loads(replacement, JSON_DECODE_ANY, NULL);
        assert_non_null(value);
    }
    if (json_is_array(parent)) {
        size_t i = strtoul(key, NULL, 10);
        assert_int_equal(
            value ? json_array_set_new(parent, i, value) : json_array_remove(parent, i), 0);
    } else {
        assert_int_equal(
            value ? json_object_set_new(parent, key, value) : json_object_del(parent, key), 0);
    }
}

/* The same document with every object's keys in reverse order (Jansson
 * keeps insertion order when it dumps without JSON_SORT_KEYS). */
static json_t *reversed(const json_t *v)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(out, reversed(json_array_get(v, i)));
        return out;
    }
    if (!json_is_object(v))
        return json_deep_copy(v);
    const char *keys[32];
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        assert_true(n < 32);
        keys[n++] = key;
    }
    json_t *out = json_object();
    while (n > 0) {
        n--;
        json_object_set_new(out, keys[n], reversed(json_object_get(v, keys[n])));
    }
    return out;
}

static void valid_manifest_parses_into_its_fields(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    char msg[200] = "";
    if (ef_manifest_parse(canonical, strlen(canonical), &m, msg, sizeof(msg)) != 0)
        fail_msg("valid manifest rejected: %s", msg);
    assert_string_equal(m->name, "classifier");
    assert_int_equal(m->version, 3);
    assert_string_equal(m->backend, "fann");
    assert_string_equal(m->device_class, "rpi4");
    assert_string_equal(m->sha256, SHA_ABC);
    assert_int_equal(m->size, 1234);
    assert_int_equal(m->input_size, 2);
    assert_int_equal(m->output_size, 2);
    assert_int_equal(m->test_vector_count, 2);
    assert_true(json_is_object(m->doc));
    ef_manifest_free(m);
}

static void fixed_point_backend_and_any_device_class_are_valid(void **state)
{
    (void)state;
    json_t *doc = canonical_doc();
    mutate(doc, "backend", "\"fann-fixed\"");
    mutate(doc, "device_class", "null");
    struct ef_manifest *m = NULL;
    assert_int_equal(ef_manifest_from_json(doc, &m, NULL, 0), 0);
    assert_string_equal(m->backend, "fann-fixed");
    assert_null(m->device_class);
    ef_manifest_free(m);
    json_decref(doc);
}

static void unlabelled_output_is_valid(void **state)
{
    (void)state;
    json_t *doc = canonical_doc();
    mutate(doc, "output.labels", "[]");
    struct ef_manifest *m = NULL;
    assert_int_equal(ef_manifest_from_json(doc, &m, NULL, 0), 0);
    ef_manifest_free(m);
    json_decref(doc);
}

static void from_json_holds_its_own_reference(void **state)
{
    (void)state;
    json_t *doc = canonical_doc();
    struct ef_manifest *m = NULL;
    assert_int_equal(ef_manifest_from_json(doc, &m, NULL, 0), 0);
    json_decref(doc);
    /* Under ASan a missing incref shows up as a use after free here. */
    assert_string_equal(m->name, "classifier");
    ef_manifest_free(m);
}

struct bad_field {
    const char *path;        /* dotted path to change */
    const char *replacement; /* JSON text, or NULL to delete */
    const char *reason;      /* must appear in the message */
};

static const struct bad_field bad_fields[] = {
    {"format", NULL, "format"},
    {"format", "2", "format"},
    {"format", "\"1\"", "format"},
    {"name", NULL, "name"},
    {"name", "\"Classifier\"", "name"},
    {"name", "\"-x\"", "name"},
    {"name", "7", "name"},
    {"version", NULL, "version"},
    {"version", "0", "version"},
    {"version", "-3", "version"},
    {"version", "3.5", "version"},
    {"version", "\"3\"", "version"},
    {"backend", NULL, "backend"},
    {"backend", "\"onnx\"", "backend"},
    {"backend", "\"FANN\"", "backend"},
    {"device_class", "\"Bad Class\"", "device_class"},
    {"device_class", "5", "device_class"},
    {"artifact", NULL, "artifact"},
    {"artifact", "\"x\"", "artifact"},
    {"artifact.sha256", NULL, "artifact.sha256"},
    {"artifact.sha256", "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"",
     "artifact.sha256"},
    {"artifact.sha256", "\"ba7816bf\"", "artifact.sha256"},
    {"artifact.size", NULL, "artifact.size"},
    {"artifact.size", "0", "artifact.size"},
    {"artifact.size", "12.5", "artifact.size"},
    {"input", NULL, "input"},
    {"input.size", NULL, "input.size"},
    {"input.size", "0", "input.size"},
    {"input.size", "65537", "input.size"},
    {"input.size", "\"2\"", "input.size"},
    {"input.features", "[\"temp\"]", "input.features"},
    {"input.features", "[\"temp\", 2]", "input.features"},
    {"input.features", "\"temp,vibration\"", "input.features"},
    {"input.features", "{\"a\": \"b\"}", "input.features"},
    {"output", NULL, "output"},
    {"output.size", "-1", "output.size"},
    {"output.labels", "[\"ok\", \"fault\", \"unknown\"]", "output.labels"},
    {"output.labels", "7", "output.labels"},
    {"test_vectors", "{}", "test_vectors"},
    {"test_vectors.0", "[]", "test_vectors[0]"},
    {"test_vectors.0.input", "[0.5]", "test_vectors[0]"},
    {"test_vectors.0.input", "[0.5, \"x\"]", "test_vectors[0]"},
    {"test_vectors.1.output", "[0.0, 1.0, 2.0]", "test_vectors[1]"},
    {"test_vectors.1.tolerance", NULL, "test_vectors[1]"},
    {"test_vectors.1.tolerance", "-0.5", "test_vectors[1]"},
    {"test_vectors.1.tolerance", "\"0.1\"", "test_vectors[1]"},
    {"baseline.features", NULL, "baseline"},
    {"baseline.features", "[" HIST "]", "baseline"},
    {"baseline.output", "[" HIST "," HIST "," HIST "]", "baseline"},
    {"baseline.features.1.edges", "[0.0, 1.0]", "baseline.features[1]"},
    {"baseline.features.0.fractions", "[]", "baseline.features[0]"},
    {"baseline.output.1", "[]", "baseline.output[1]"},
    {"baseline.output.0.fractions", "[0.5, \"half\"]", "baseline.output[0]"},
    {"baseline", "[]", "baseline"},
    {"created_at", NULL, "created_at"},
    {"created_at", "1795341600", "created_at"},
};

static void each_missing_or_wrong_field_is_invalid_with_a_reason(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        const struct bad_field *b = &bad_fields[i];
        json_t *doc = canonical_doc();
        mutate(doc, b->path, b->replacement);
        char *text = json_dumps(doc, JSON_COMPACT);
        struct ef_manifest *m = (struct ef_manifest *)1;
        char msg[200] = "";
        int rc = ef_manifest_parse(text, strlen(text), &m, msg, sizeof(msg));
        if (rc != EF_EINVAL)
            fail_msg("%s := %s: got %s, want invalid", b->path,
                     b->replacement ? b->replacement : "(deleted)", ef_errname(rc));
        if (!strstr(msg, b->reason))
            fail_msg("%s := %s: message \"%s\" does not mention %s", b->path,
                     b->replacement ? b->replacement : "(deleted)", msg, b->reason);
        assert_null(m);
        free(text);
        json_decref(doc);
    }
}

static void top_level_must_be_an_object(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    char msg[200] = "";
    assert_int_equal(ef_manifest_parse("[1, 2]", 6, &m, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "object"));
    assert_null(m);
}

static void malformed_json_is_a_parse_error(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    char msg[200] = "";
    const char text[] = "{\"format\": 1,";
    assert_int_equal(ef_manifest_parse(text, strlen(text), &m, msg, sizeof(msg)), EF_EPARSE);
    assert_true(strlen(msg) > 0);
    assert_null(m);
}

static void duplicate_keys_are_a_parse_error(void **state)
{
    (void)state;
    /* Two "version" members: which one a reader keeps must never matter. */
    size_t len = strlen(canonical);
    char *text = malloc(len + 32);
    assert_non_null(text);
    snprintf(text, len + 32, "{\"version\":99,%s", canonical + 1);
    struct ef_manifest *m = NULL;
    char msg[200] = "";
    assert_int_equal(ef_manifest_parse(text, strlen(text), &m, msg, sizeof(msg)), EF_EPARSE);
    assert_non_null(strstr(msg, "duplicate"));
    assert_null(m);
    free(text);
}

/* The canonical manifest followed by spaces up to total bytes. */
static char *padded(size_t total)
{
    size_t len = strlen(canonical);
    char *text = malloc(total);
    assert_non_null(text);
    memcpy(text, canonical, len);
    memset(text + len, ' ', total - len);
    return text;
}

static void manifest_over_the_size_limit_is_too_big(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    char *at_limit = padded(EF_MANIFEST_MAX_BYTES);
    char *over = padded(EF_MANIFEST_MAX_BYTES + 1);
    assert_int_equal(ef_manifest_parse(at_limit, EF_MANIFEST_MAX_BYTES, &m, NULL, 0), 0);
    ef_manifest_free(m);
    assert_int_equal(ef_manifest_parse(over, EF_MANIFEST_MAX_BYTES + 1, &m, NULL, 0), EF_ETOOBIG);
    assert_null(m);
    free(at_limit);
    free(over);
}

static void verify_parse_accepts_a_good_signature(void **state)
{
    (void)state;
    struct ef_keypair release;
    char sig[EF_SIG_B64_SIZE];
    struct ef_manifest *m = NULL;
    ef_keypair_generate(&release);
    ef_sign_b64(release.sk, canonical, strlen(canonical), sig);
    assert_int_equal(
        ef_manifest_verify_parse(canonical, strlen(canonical), sig, release.pk, &m, NULL, 0), 0);
    assert_string_equal(m->name, "classifier");
    ef_manifest_free(m);
}

static void verify_parse_with_the_wrong_key_is_a_bad_signature(void **state)
{
    (void)state;
    struct ef_keypair release, other;
    char sig[EF_SIG_B64_SIZE], msg[200] = "";
    struct ef_manifest *m = (struct ef_manifest *)1;
    ef_keypair_generate(&release);
    ef_keypair_generate(&other);
    ef_sign_b64(other.sk, canonical, strlen(canonical), sig);
    assert_int_equal(ef_manifest_verify_parse(canonical, strlen(canonical), sig, release.pk, &m,
                                              msg, sizeof(msg)),
                     EF_EBADSIG);
    assert_null(m);
    assert_non_null(strstr(msg, "signature"));
}

static void verify_parse_of_tampered_bytes_is_a_bad_signature(void **state)
{
    (void)state;
    struct ef_keypair release;
    char sig[EF_SIG_B64_SIZE];
    struct ef_manifest *m = NULL;
    ef_keypair_generate(&release);
    ef_sign_b64(release.sk, canonical, strlen(canonical), sig);
    char *tampered = strdup(canonical);
    char *v = strstr(tampered, "\"version\":3");
    assert_non_null(v);
    v[10] = '4';
    assert_int_equal(
        ef_manifest_verify_parse(tampered, strlen(tampered), sig, release.pk, &m, NULL, 0),
        EF_EBADSIG);
    assert_null(m);
    free(tampered);
}

static void verify_comes_before_parse(void **state)
{
    (void)state;
    struct ef_keypair release, other;
    char good[EF_SIG_B64_SIZE], bad[EF_SIG_B64_SIZE];
    struct ef_manifest *m = NULL;
    const char junk[] = "{\"format\": 1, not json";
    ef_keypair_generate(&release);
    ef_keypair_generate(&other);
    ef_sign_b64(release.sk, junk, strlen(junk), good);
    ef_sign_b64(other.sk, junk, strlen(junk), bad);
    /* Unsigned junk is refused for its signature, never looked at as JSON. */
    assert_int_equal(ef_manifest_verify_parse(junk, strlen(junk), bad, release.pk, &m, NULL, 0),
                     EF_EBADSIG);
    assert_int_equal(ef_manifest_verify_parse(junk, strlen(junk), "", release.pk, &m, NULL, 0),
                     EF_EPARSE);
    /* Signed junk gets past the signature and fails only as JSON. */
    assert_int_equal(ef_manifest_verify_parse(junk, strlen(junk), good, release.pk, &m, NULL, 0),
                     EF_EPARSE);
    assert_null(m);
}

static void signed_but_invalid_manifest_is_invalid(void **state)
{
    (void)state;
    struct ef_keypair release;
    char sig[EF_SIG_B64_SIZE], msg[200] = "";
    struct ef_manifest *m = NULL;
    const char text[] = "{\"format\": 1}";
    ef_keypair_generate(&release);
    ef_sign_b64(release.sk, text, strlen(text), sig);
    assert_int_equal(
        ef_manifest_verify_parse(text, strlen(text), sig, release.pk, &m, msg, sizeof(msg)),
        EF_EINVAL);
    assert_non_null(strstr(msg, "name"));
    assert_null(m);
}

static void malformed_signature_is_a_parse_error_with_a_reason(void **state)
{
    (void)state;
    struct ef_keypair release;
    char msg[200] = "";
    struct ef_manifest *m = NULL;
    ef_keypair_generate(&release);
    assert_int_equal(ef_manifest_verify_parse(canonical, strlen(canonical), "bm90IGEgc2ln",
                                              release.pk, &m, msg, sizeof(msg)),
                     EF_EPARSE);
    assert_non_null(strstr(msg, "base64"));
    assert_null(m);
}

static void serialize_gives_back_canonical_bytes(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    assert_int_equal(ef_manifest_parse(canonical, strlen(canonical), &m, NULL, 0), 0);
    char *bytes = ef_manifest_serialize(m);
    assert_string_equal(bytes, canonical);
    free(bytes);
    ef_manifest_free(m);
}

static void serialize_sorts_keys_and_drops_whitespace(void **state)
{
    (void)state;
    json_t *doc = canonical_doc();
    json_t *shuffled = reversed(doc);
    char *pretty = json_dumps(shuffled, JSON_INDENT(2));
    assert_string_not_equal(pretty, canonical);
    assert_int_equal(strncmp(pretty, "{\n  \"version\": 3", 16), 0);
    struct ef_manifest *m = NULL;
    assert_int_equal(ef_manifest_parse(pretty, strlen(pretty), &m, NULL, 0), 0);
    char *bytes = ef_manifest_serialize(m);
    assert_string_equal(bytes, canonical);
    free(bytes);
    ef_manifest_free(m);
    free(pretty);
    json_decref(shuffled);
    json_decref(doc);
}

static void test_vectors_are_read_by_index(void **state)
{
    (void)state;
    struct ef_manifest *m = NULL;
    double in[2], out[2], tol = -1;
    assert_int_equal(ef_manifest_parse(canonical, strlen(canonical), &m, NULL, 0), 0);
    assert_int_equal(ef_manifest_test_vector(m, 0, in, out, &tol), 0);
    assert_true(in[0] == 0.5 && in[1] == 0.25);
    assert_true(out[0] == 1.0 && out[1] == 0.0);
    assert_true(tol == 0.125);
    assert_int_equal(ef_manifest_test_vector(m, 1, in, out, &tol), 0);
    assert_true(in[0] == 1.0 && in[1] == -1.0);
    assert_true(out[0] == 0.0 && out[1] == 1.0);
    assert_true(tol == 0.0);
    assert_int_equal(ef_manifest_test_vector(m, 2, in, out, &tol), EF_ENOENT);
    ef_manifest_free(m);
}

static void test_vectors_accept_integers_as_numbers(void **state)
{
    (void)state;
    json_t *doc = canonical_doc();
    mutate(doc, "test_vectors.0", "{\"input\": [1, 0], \"output\": [0, 1], \"tolerance\": 0}");
    struct ef_manifest *m = NULL;
    double in[2], out[2], tol = -1;
    assert_int_equal(ef_manifest_from_json(doc, &m, NULL, 0), 0);
    assert_int_equal(ef_manifest_test_vector(m, 0, in, out, &tol), 0);
    assert_true(in[0] == 1.0 && in[1] == 0.0 && out[1] == 1.0 && tol == 0.0);
    ef_manifest_free(m);
    json_decref(doc);
}

static void free_accepts_null(void **state)
{
    (void)state;
    ef_manifest_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_manifest_parses_into_its_fields),
        cmocka_unit_test(fixed_point_backend_and_any_device_class_are_valid),
        cmocka_unit_test(unlabelled_output_is_valid),
        cmocka_unit_test(from_json_holds_its_own_reference),
        cmocka_unit_test(each_missing_or_wrong_field_is_invalid_with_a_reason),
        cmocka_unit_test(top_level_must_be_an_object),
        cmocka_unit_test(malformed_json_is_a_parse_error),
        cmocka_unit_test(duplicate_keys_are_a_parse_error),
        cmocka_unit_test(manifest_over_the_size_limit_is_too_big),
        cmocka_unit_test(verify_parse_accepts_a_good_signature),
        cmocka_unit_test(verify_parse_with_the_wrong_key_is_a_bad_signature),
        cmocka_unit_test(verify_parse_of_tampered_bytes_is_a_bad_signature),
        cmocka_unit_test(verify_comes_before_parse),
        cmocka_unit_test(signed_but_invalid_manifest_is_invalid),
        cmocka_unit_test(malformed_signature_is_a_parse_error_with_a_reason),
        cmocka_unit_test(serialize_gives_back_canonical_bytes),
        cmocka_unit_test(serialize_sorts_keys_and_drops_whitespace),
        cmocka_unit_test(test_vectors_are_read_by_index),
        cmocka_unit_test(test_vectors_accept_integers_as_numbers),
        cmocka_unit_test(free_accepts_null),
    };
    return cmocka_run_group_tests(tests, setup_crypto, NULL);
}

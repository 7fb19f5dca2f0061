/* test_json_util.c - strict, bounded JSON loading and the small accessors. */
#include "common/ef_error.h"
#include "common/json_util.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Loads a NUL-terminated literal, failing the test on error. */
static json_t *load_ok(const char *text)
{
    json_t *doc = NULL;
    char msg[160];
    int rc = ef_json_load(text, strlen(text), 4096, &doc, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("ef_json_load(%s): %s", text, msg);
    return doc;
}

static void well_formed_object_loads(void **state)
{
    (void)state;
    json_t *doc = load_ok("{\"a\": 1, \"b\": [true, null]}");
    assert_true(json_is_object(doc));
    assert_int_equal(json_object_size(doc), 2);
    json_decref(doc);
}

static void duplicate_keys_are_rejected_with_a_reason(void **state)
{
    (void)state;
    const char *text = "{\"seq\": 1, \"seq\": 2}";
    json_t *doc = (json_t *)1;
    char msg[160] = "";
    assert_int_equal(ef_json_load(text, strlen(text), 4096, &doc, msg, sizeof(msg)), EF_EPARSE);
    assert_null(doc);
    assert_non_null(strstr(msg, "duplicate"));
}

static void nested_duplicate_keys_are_rejected(void **state)
{
    (void)state;
    const char *text = "{\"slots\": {\"production\": {}, \"production\": {}}}";
    json_t *doc = NULL;
    assert_int_equal(ef_json_load(text, strlen(text), 4096, &doc, NULL, 0), EF_EPARSE);
    assert_null(doc);
}

static void document_over_the_limit_is_too_big(void **state)
{
    (void)state;
    const char *text = "{\"k\": \"0123456789\"}";
    size_t len = strlen(text);
    json_t *doc = NULL;
    char msg[160] = "";
    assert_int_equal(ef_json_load(text, len, len - 1, &doc, msg, sizeof(msg)), EF_ETOOBIG);
    assert_null(doc);
    assert_non_null(strstr(msg, "limit"));
    assert_int_equal(ef_json_load(text, len, len, &doc, NULL, 0), 0);
    json_decref(doc);
}

static void only_len_bytes_are_read(void **state)
{
    (void)state;
    /* Not NUL-terminated where it ends: the tail must not be looked at. */
    const char text[] = {'[', '1', ']', 'x', 'y', 'z'};
    json_t *doc = NULL;
    assert_int_equal(ef_json_load(text, 3, 100, &doc, NULL, 0), 0);
    assert_int_equal(json_array_size(doc), 1);
    json_decref(doc);
}

static void trailing_data_and_malformed_input_are_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {"{} {}", "{\"a\": 1,}",          "{\"a\" 1}",   "", "   ",
                                      "[1, 2", "{\"a\": \"\\u0000\"}", "{\"a\": NaN}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *doc = NULL;
        if (ef_json_load(bad[i], strlen(bad[i]), 100, &doc, NULL, 0) != EF_EPARSE)
            fail_msg("accepted %s", bad[i]);
        assert_null(doc);
    }
}

static void null_buffer_of_length_zero_is_a_parse_error(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(ef_json_load(NULL, 0, 100, &doc, NULL, 0), EF_EPARSE);
}

static void dump_is_compact_with_sorted_keys(void **state)
{
    (void)state;
    json_t *doc = load_ok("{ \"b\": {\"z\": 1, \"y\": 2},\n \"a\": [ 1, 2.5 ] }");
    char *text = ef_json_dump(doc);
    assert_string_equal(text, "{\"a\":[1,2.5],\"b\":{\"y\":2,\"z\":1}}");
    free(text);
    json_decref(doc);
}

static void str_and_int_accessors_check_types(void **state)
{
    (void)state;
    json_t *doc = load_ok("{\"s\": \"v\", \"i\": 42, \"r\": 1.5, \"n\": null}");
    int64_t v = -1;
    assert_string_equal(ef_json_str(doc, "s"), "v");
    assert_null(ef_json_str(doc, "i"));
    assert_null(ef_json_str(doc, "missing"));
    assert_int_equal(ef_json_int(doc, "i", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(ef_json_int(doc, "r", &v), EF_EINVAL);
    assert_int_equal(ef_json_int(doc, "s", &v), EF_EINVAL);
    assert_int_equal(ef_json_int(doc, "n", &v), EF_EINVAL);
    assert_int_equal(ef_json_int(doc, "missing", &v), EF_ENOENT);
    assert_int_equal(v, 42);
    json_decref(doc);
}

static void keys_allowed_accepts_known_keys(void **state)
{
    (void)state;
    static const char *const allowed[] = {"name", "version", "tags", NULL};
    json_t *doc = load_ok("{\"name\": \"m\", \"version\": 1}");
    const char *unknown = "untouched";
    assert_true(ef_json_keys_allowed(doc, allowed, &unknown));
    assert_string_equal(unknown, "untouched");
    json_decref(doc);
}

static void keys_allowed_names_the_first_unknown_key(void **state)
{
    (void)state;
    static const char *const allowed[] = {"name", "version", NULL};
    json_t *doc = load_ok("{\"name\": \"m\", \"evil\": true}");
    const char *unknown = NULL;
    assert_false(ef_json_keys_allowed(doc, allowed, &unknown));
    assert_string_equal(unknown, "evil");
    assert_false(ef_json_keys_allowed(doc, allowed, NULL));
    json_decref(doc);
}

static void keys_allowed_with_empty_list_accepts_only_empty_objects(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    json_t *empty = load_ok("{}");
    json_t *one = load_ok("{\"a\": 1}");
    assert_true(ef_json_keys_allowed(empty, none, NULL));
    assert_false(ef_json_keys_allowed(one, none, NULL));
    json_decref(empty);
    json_decref(one);
}

static void read_doubles_of_exact_length(void **state)
{
    (void)state;
    json_t *doc = load_ok("[1, -2.5, 0.125]");
    double *v = NULL;
    size_t n = 0;
    assert_int_equal(ef_json_read_doubles(doc, 3, 0, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_true(v[0] == 1.0 && v[1] == -2.5 && v[2] == 0.125);
    free(v);
    assert_int_equal(ef_json_read_doubles(doc, 2, 0, &v, &n), EF_EINVAL);
    assert_null(v);
    assert_int_equal(ef_json_read_doubles(doc, 4, 0, &v, &n), EF_EINVAL);
    assert_null(v);
    json_decref(doc);
}

static void read_doubles_of_any_length_is_bounded_by_max(void **state)
{
    (void)state;
    json_t *doc = load_ok("[1, 2, 3, 4]");
    json_t *empty = load_ok("[]");
    double *v = NULL;
    size_t n = 0;
    assert_int_equal(ef_json_read_doubles(doc, 0, 4, &v, &n), 0);
    assert_int_equal(n, 4);
    assert_true(v[3] == 4.0);
    free(v);
    assert_int_equal(ef_json_read_doubles(doc, 0, 3, &v, &n), EF_EINVAL);
    assert_null(v);
    assert_int_equal(ef_json_read_doubles(empty, 0, 3, &v, &n), EF_EINVAL);
    assert_null(v);
    json_decref(doc);
    json_decref(empty);
}

static void read_doubles_rejects_non_numbers_and_non_arrays(void **state)
{
    (void)state;
    json_t *mixed = load_ok("[1, \"2\", 3]");
    json_t *obj = load_ok("{\"0\": 1}");
    double *v = NULL;
    size_t n = 0;
    assert_int_equal(ef_json_read_doubles(mixed, 3, 0, &v, &n), EF_EINVAL);
    assert_null(v);
    assert_int_equal(ef_json_read_doubles(obj, 1, 0, &v, &n), EF_EINVAL);
    assert_null(v);
    assert_int_equal(ef_json_read_doubles(NULL, 1, 0, &v, &n), EF_EINVAL);
    json_decref(mixed);
    json_decref(obj);
}

static void doubles_array_round_trips(void **state)
{
    (void)state;
    const double in[] = {0.0, -1.5, 1e-300, 12345.678};
    json_t *a = ef_json_doubles(in, 4);
    double *out = NULL;
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 4);
    assert_int_equal(ef_json_read_doubles(a, 4, 0, &out, NULL), 0);
    for (size_t i = 0; i < 4; i++)
        assert_true(out[i] == in[i]);
    free(out);
    json_decref(a);
}

static void doubles_array_refuses_non_finite_values(void **state)
{
    (void)state;
    const double in[] = {1.0, NAN};
    assert_null(ef_json_doubles(in, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(well_formed_object_loads),
        cmocka_unit_test(duplicate_keys_are_rejected_with_a_reason),
        cmocka_unit_test(nested_duplicate_keys_are_rejected),
        cmocka_unit_test(document_over_the_limit_is_too_big),
        cmocka_unit_test(only_len_bytes_are_read),
        cmocka_unit_test(trailing_data_and_malformed_input_are_parse_errors),
        cmocka_unit_test(null_buffer_of_length_zero_is_a_parse_error),
        cmocka_unit_test(dump_is_compact_with_sorted_keys),
        cmocka_unit_test(str_and_int_accessors_check_types),
        cmocka_unit_test(keys_allowed_accepts_known_keys),
        cmocka_unit_test(keys_allowed_names_the_first_unknown_key),
        cmocka_unit_test(keys_allowed_with_empty_list_accepts_only_empty_objects),
        cmocka_unit_test(read_doubles_of_exact_length),
        cmocka_unit_test(read_doubles_of_any_length_is_bounded_by_max),
        cmocka_unit_test(read_doubles_rejects_non_numbers_and_non_arrays),
        cmocka_unit_test(doubles_array_round_trips),
        cmocka_unit_test(doubles_array_refuses_non_finite_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

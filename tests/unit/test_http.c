/* test_http.c - unit tests of the route table lookup in server/http.c. */
#include "server/http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

static char params[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE];
static char allow[64];

static const struct route *find(const char *method, const char *path)
{
    memset(params, 0, sizeof(params));
    return http_route_find(method, path, params, allow, sizeof(allow));
}

static void test_literal_route_matches(void **state)
{
    const struct route *r = find("GET", "/healthz");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/healthz");
    assert_string_equal(allow, "");
}

static void test_segments_are_captured_in_order(void **state)
{
    const struct route *r = find("GET", "/api/v1/models/thyroid/versions/12/manifest.sig");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/api/v1/models/{name}/versions/{version}/manifest.sig");
    assert_string_equal(params[0], "thyroid");
    assert_string_equal(params[1], "12");
}

static void test_literal_suffix_is_not_a_capture(void **state)
{
    const struct route *r = find("GET", "/api/v1/models/thyroid/versions/12/manifest");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/api/v1/models/{name}/versions/{version}/manifest");
}

static void test_known_path_with_other_method_lists_allowed(void **state)
{
    assert_null(find("PUT", "/api/v1/models"));
    assert_string_equal(allow, "GET, POST");
    assert_null(find("POST", "/api/v1/devices/cam-1"));
    assert_string_equal(allow, "GET, PATCH, DELETE");
}

static void test_unknown_paths_do_not_match(void **state)
{
    assert_null(find("GET", "/api/v1/nothing"));
    assert_string_equal(allow, "");
    assert_null(find("GET", "/api/v1/models/")); /* empty segment */
    assert_null(find("GET", "/api/v1/models//versions"));
    assert_null(find("GET", "/healthz/")); /* trailing slash */
    assert_null(find("GET", "/api/v1/devices/a/b/desired"));
}

static void test_overlong_segment_does_not_match(void **state)
{
    char path[HTTP_PARAM_SIZE + 64];
    char seg[HTTP_PARAM_SIZE + 1];
    memset(seg, 'a', HTTP_PARAM_SIZE);
    seg[HTTP_PARAM_SIZE] = '\0';
    snprintf(path, sizeof(path), "/api/v1/devices/%s", seg);
    assert_null(find("GET", path));
}

static void test_every_route_has_handler_and_known_method(void **state)
{
    for (const struct route *r = routes; r->method; r++) {
        assert_non_null(r->handle);
        assert_true(strcmp(r->method, "GET") == 0 || strcmp(r->method, "POST") == 0 ||
                    strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0 ||
                    strcmp(r->method, "DELETE") == 0);
        assert_true(r->access != 0);
        /* Reads never take a body. */
        if (strcmp(r->method, "GET") == 0)
            assert_int_equal(r->body, BODY_NONE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_route_matches),
        cmocka_unit_test(test_segments_are_captured_in_order),
        cmocka_unit_test(test_literal_suffix_is_not_a_capture),
        cmocka_unit_test(test_known_path_with_other_method_lists_allowed),
        cmocka_unit_test(test_unknown_paths_do_not_match),
        cmocka_unit_test(test_overlong_segment_does_not_match),
        cmocka_unit_test(test_every_route_has_handler_and_known_method),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

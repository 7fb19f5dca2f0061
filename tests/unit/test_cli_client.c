/*
 * test_cli_client.c - the CLI's HTTP client helpers (server/cli/client.c):
 * the one-line error of an API answer and query strings. Calls over the
 * network are checked end to end against a real server instead.
 */
#include "server/cli/client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void error_body_becomes_one_line(void **state)
{
    (void)state;
    char line[256];
    const char *body = "{\"error\":{\"code\":\"model_exists\",\"message\":\"model m exists\"}}";
    client_error_line(409, body, strlen(body), line, sizeof(line));
    assert_string_equal(line, "model_exists: model m exists (HTTP 409)");
    /* Control characters cannot break the line. */
    body = "{\"error\":{\"code\":\"bad\\nrequest\",\"message\":\"two\\nlines\"}}";
    client_error_line(400, body, strlen(body), line, sizeof(line));
    assert_string_equal(line, "bad request: two lines (HTTP 400)");
}

static void missing_or_foreign_bodies_still_give_a_line(void **state)
{
    (void)state;
    char line[256];
    client_error_line(502, NULL, 0, line, sizeof(line));
    assert_string_equal(line, "http_error: bad gateway (HTTP 502)");
    client_error_line(404, "<html>nope</html>", 17, line, sizeof(line));
    assert_string_equal(line, "http_error: not found (HTTP 404)");
    client_error_line(418, "{\"error\":\"flat\"}", 16, line, sizeof(line));
    assert_string_equal(line, "http_error: unexpected response (HTTP 418)");
}

static void query_values_are_escaped_and_nulls_skipped(void **state)
{
    (void)state;
    const char *pairs[] = {"ring", "canary", "class", NULL, "tag", "site=a b&c", "online", "true"};
    char *path = client_query_path("/api/v1/devices", pairs, 4);
    assert_non_null(path);
    assert_string_equal(path, "/api/v1/devices?ring=canary&tag=site%3Da%20b%26c&online=true");
    free(path);
    const char *none[] = {"limit", NULL};
    path = client_query_path("/api/v1/audit", none, 1);
    assert_string_equal(path, "/api/v1/audit");
    free(path);
    path = client_query_path("/api/v1/audit", NULL, 0);
    assert_string_equal(path, "/api/v1/audit");
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_body_becomes_one_line),
        cmocka_unit_test(missing_or_foreign_bodies_still_give_a_line),
        cmocka_unit_test(query_values_are_escaped_and_nulls_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

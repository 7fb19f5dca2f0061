/* test_report.c - unit tests of server/report.c, the `reported` parser. */
#include "server/report.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

static int parse(const char *text, struct report *r)
{
    char msg[128];
    return report_parse(text, strlen(text), r, msg, sizeof(msg));
}

static void test_valid_report_is_parsed(void **state)
{
    struct report r;
    assert_int_equal(parse("{\"slot\":\"shadow\",\"model\":\"thyroid\",\"version\":3,"
                           "\"state\":\"failed\",\"reason\":\"hash mismatch\",\"seq\":9}",
                           &r),
                     0);
    assert_int_equal(r.slot, EF_SLOT_SHADOW);
    assert_string_equal(r.model, "thyroid");
    assert_int_equal(r.version, 3);
    assert_string_equal(r.state, "failed");
    assert_string_equal(r.reason, "hash mismatch");
}

static void test_missing_reason_is_empty(void **state)
{
    struct report r;
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":1,\"state\":\"committed\"}",
              &r),
        0);
    assert_string_equal(r.reason, "");
}

static void test_unknown_state_is_refused(void **state)
{
    struct report r;
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":1,\"state\":\"exploded\"}", &r),
        EF_EINVAL);
}

static void test_pending_is_the_servers_word_not_the_devices(void **state)
{
    struct report r;
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":1,\"state\":\"pending\"}", &r),
        EF_EINVAL);
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":1,\"state\":\"self-test\"}",
              &r),
        0);
}

static void test_unknown_field_is_refused(void **state)
{
    struct report r;
    assert_int_equal(parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":1,"
                           "\"state\":\"active\",\"extra\":1}",
                           &r),
                     EF_EINVAL);
}

static void test_bad_values_are_refused(void **state)
{
    struct report r;
    assert_int_equal(
        parse("{\"slot\":\"canary\",\"model\":\"m\",\"version\":1,\"state\":\"active\"}", &r),
        EF_EINVAL);
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"M/#\",\"version\":1,\"state\":\"active\"}", &r),
        EF_EINVAL);
    assert_int_equal(
        parse("{\"slot\":\"production\",\"model\":\"m\",\"version\":0,\"state\":\"active\"}", &r),
        EF_EINVAL);
    assert_int_equal(parse("\"online\"", &r), EF_EPARSE); /* not an object */
}

static void test_malformed_and_duplicate_json_is_refused(void **state)
{
    struct report r;
    assert_int_equal(parse("{\"slot\":", &r), EF_EPARSE);
    assert_int_equal(parse("{\"slot\":\"production\",\"slot\":\"shadow\"}", &r), EF_EPARSE);
}

static void test_oversized_payload_is_refused(void **state)
{
    static char big[REPORT_MAX_BYTES + 2];
    struct report r;
    char msg[64];
    memset(big, ' ', sizeof(big));
    assert_int_equal(report_parse(big, sizeof(big), &r, msg, sizeof(msg)), EF_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_report_is_parsed),
        cmocka_unit_test(test_missing_reason_is_empty),
        cmocka_unit_test(test_unknown_state_is_refused),
        cmocka_unit_test(test_pending_is_the_servers_word_not_the_devices),
        cmocka_unit_test(test_unknown_field_is_refused),
        cmocka_unit_test(test_bad_values_are_refused),
        cmocka_unit_test(test_malformed_and_duplicate_json_is_refused),
        cmocka_unit_test(test_oversized_payload_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

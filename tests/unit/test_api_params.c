/* test_api_params.c - the times REST query arguments take (`since`,
 * `until`): whole seconds before now up to a century, Unix ms of 13 to 15
 * digits, RFC 3339 UTC; everything else refused. */
#include "server/api_params.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#define NOW 1763805600000LL /* 2025-11-22T10:00:00.000Z */

static void seconds_ago_count_back_from_now(void **state)
{
    (void)state;
    int64_t t = -1;
    assert_true(api_time_value("0", NOW, &t));
    assert_int_equal(t, NOW);
    assert_true(api_time_value("3600", NOW, &t));
    assert_int_equal(t, NOW - 3600 * 1000LL);
    assert_true(api_time_value("000000000060", NOW, &t)); /* 12 digits: still seconds */
    assert_int_equal(t, NOW - 60 * 1000LL);
    char century[32];
    snprintf(century, sizeof(century), "%lld", API_TIME_AGO_MAX_S);
    assert_true(api_time_value(century, NOW, &t));
    assert_int_equal(t, NOW - API_TIME_AGO_MAX_S * 1000);
}

static void thirteen_digits_or_more_are_unix_ms(void **state)
{
    (void)state;
    int64_t t = -1;
    assert_true(api_time_value("1763805600000", NOW, &t));
    assert_int_equal(t, 1763805600000LL);
    assert_true(api_time_value("100000000000000", NOW, &t)); /* 15 digits */
    assert_int_equal(t, 100000000000000LL);
}

static void rfc3339_is_read(void **state)
{
    (void)state;
    int64_t t = -1;
    assert_true(api_time_value("2025-11-22T10:00:00.000Z", NOW, &t));
    assert_int_equal(t, NOW);
}

static void others_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "-5",
        "+5",
        "5s",
        "999999999999",     /* 12 digits, more than a century of seconds */
        "0763805600000",    /* 13 digits with a leading zero: neither */
        "1000000000000000", /* 16 digits */
        "1763805600000x",
        "2025-11-22 10:00:00",
        "yesterday",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = -1;
        assert_false(api_time_value(bad[i], NOW, &t));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seconds_ago_count_back_from_now),
        cmocka_unit_test(thirteen_digits_or_more_are_unix_ms),
        cmocka_unit_test(rfc3339_is_read),
        cmocka_unit_test(others_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

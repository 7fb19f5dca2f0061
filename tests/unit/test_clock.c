/* test_clock.c - RFC 3339 formatting and strict parsing, and the two clocks. */
#include "common/clock.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct known_time {
    int64_t ms;
    const char *text;
};

/* Reference values computed independently (Python's datetime). */
static const struct known_time known[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {946684800000, "2000-01-01T00:00:00.000Z"},
    {1709251199999, "2024-02-29T23:59:59.999Z"},
    {1795341600123, "2026-11-22T10:00:00.123Z"},
    {2147483648001, "2038-01-19T03:14:08.001Z"},
};

static void format_writes_utc_with_milliseconds(void **state)
{
    (void)state;
    char buf[EF_TIME_STR_SIZE];
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        ef_time_format(known[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, known[i].text);
    }
}

static void format_before_the_epoch_borrows_a_second(void **state)
{
    (void)state;
    char buf[EF_TIME_STR_SIZE];
    ef_time_format(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    ef_time_format(-1000, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.000Z");
}

static void parse_reads_known_times(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(ef_time_parse(known[i].text, &ms), 0);
        assert_int_equal(ms, known[i].ms);
    }
}

static void format_then_parse_round_trips(void **state)
{
    (void)state;
    char buf[EF_TIME_STR_SIZE];
    int64_t now = ef_now_ms();
    const int64_t samples[] = {1, 999, 1000, 86399999, now, now + 123456789};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int64_t back = 0;
        ef_time_format(samples[i], buf, sizeof(buf));
        assert_int_equal(ef_time_parse(buf, &back), 0);
        assert_int_equal(back, samples[i]);
    }
}

static void milliseconds_are_optional(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(ef_time_parse("2026-11-22T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795341600000);
}

static void malformed_times_are_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Z",
        "2026-11-22",
        "2026-11-22T10:00:00",       /* no zone */
        "2026-11-22T10:00:00+01:00", /* only UTC is written */
        "2026-11-22T10:00:00.12Z",   /* two digits of ms */
        "2026-11-22T10:00:00.1234Z", /* four digits of ms */
        "2026-11-22T10:00:00.Z",
        "2026-11-22T10:00:00Zjunk",
        "2026-11-22 10:00:00Z",
        "2026-13-01T00:00:00Z",     /* month 13 */
        "2026-00-01T00:00:00Z",     /* month 0 */
        "2026-11-00T00:00:00Z",     /* day 0 */
        "2026-11-22T24:00:00Z",     /* hour 24 */
        "2026-11-22T10:60:00Z",     /* minute 60 */
        "2026-02-31T00:00:00Z",     /* no such day */
        "2026-11-22T-1:00:00Z",     /* negative hour */
        "2026-11-22T10:-5:00Z",     /* negative minute */
        "2026-11-22T10:00:-1Z",     /* negative second */
        "2026-11-22T10:00:00.-12Z", /* negative milliseconds */
        "2026-11-22T10:00:00.+12Z",
        "2026-11-22T10:00:00. 12Z",
        " 2026-11-22T10:00:00Z", /* leading space */
        "+026-11-22T10:00:00Z",  /* sign in the year */
        "2026-1-22T10:00:00Z",   /* one-digit month */
        "2026-11-2T10:00:00Z",
        "26-11-22T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        if (ef_time_parse(bad[i], &ms) != EF_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, 42);
    }
}

static void wall_clock_is_in_this_century(void **state)
{
    (void)state;
    int64_t now = ef_now_ms();
    assert_true(now > 1577836800000); /* 2020-01-01 */
    assert_true(now < 4102444800000); /* 2100-01-01 */
}

static void monotonic_clock_does_not_go_back(void **state)
{
    (void)state;
    int64_t a = ef_mono_ms();
    int64_t b = ef_mono_ms();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_writes_utc_with_milliseconds),
        cmocka_unit_test(format_before_the_epoch_borrows_a_second),
        cmocka_unit_test(parse_reads_known_times),
        cmocka_unit_test(format_then_parse_round_trips),
        cmocka_unit_test(milliseconds_are_optional),
        cmocka_unit_test(malformed_times_are_rejected),
        cmocka_unit_test(wall_clock_is_in_this_century),
        cmocka_unit_test(monotonic_clock_does_not_go_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

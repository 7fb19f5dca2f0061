/* test_log.c - level parsing, value quoting and the shape of a log line. */
#include "common/ef_error.h"
#include "common/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Runs ef_log with stderr redirected to a temporary file and returns what
 * was written (malloc'd, NUL-terminated). */
static char *capture_info(enum ef_log_level level, const char *event, const char *kv)
{
    char path[] = "/tmp/ef_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    if (kv)
        ef_log(level, event, "%s", kv);
    else
        ef_log(level, event, NULL);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    return text;
}

static void level_names_parse(void **state)
{
    (void)state;
    enum ef_log_level l = EF_LOG_ERROR;
    assert_int_equal(ef_log_level_parse("debug", &l), 0);
    assert_int_equal(l, EF_LOG_DEBUG);
    assert_int_equal(ef_log_level_parse("info", &l), 0);
    assert_int_equal(l, EF_LOG_INFO);
    assert_int_equal(ef_log_level_parse("warn", &l), 0);
    assert_int_equal(l, EF_LOG_WARN);
    assert_int_equal(ef_log_level_parse("error", &l), 0);
    assert_int_equal(l, EF_LOG_ERROR);
}

static void unknown_level_is_rejected_and_output_untouched(void **state)
{
    (void)state;
    enum ef_log_level l = EF_LOG_WARN;
    assert_int_equal(ef_log_level_parse("verbose", &l), EF_EINVAL);
    assert_int_equal(ef_log_level_parse("INFO", &l), EF_EINVAL);
    assert_int_equal(ef_log_level_parse("", &l), EF_EINVAL);
    assert_int_equal(ef_log_level_parse(NULL, &l), EF_EINVAL);
    assert_int_equal(l, EF_LOG_WARN);
}

static void plain_value_is_copied_unquoted(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(ef_log_quote("model-1/v2", buf, sizeof(buf)), "model-1/v2");
}

static void value_with_space_quote_or_equals_is_quoted_and_escaped(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(ef_log_quote("two words", buf, sizeof(buf)), "\"two words\"");
    assert_string_equal(ef_log_quote("a=b", buf, sizeof(buf)), "\"a=b\"");
    assert_string_equal(ef_log_quote("say \"hi\"", buf, sizeof(buf)), "\"say \\\"hi\\\"\"");
    assert_string_equal(ef_log_quote("back\\slash x", buf, sizeof(buf)), "\"back\\\\slash x\"");
}

static void control_characters_cannot_break_the_line(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(ef_log_quote("a\nlevel=error", buf, sizeof(buf)), "\"a level=error\"");
    assert_null(strchr(buf, '\n'));
}

static void empty_and_null_values_are_an_empty_quoted_string(void **state)
{
    (void)state;
    char buf[8];
    assert_string_equal(ef_log_quote("", buf, sizeof(buf)), "\"\"");
    assert_string_equal(ef_log_quote(NULL, buf, sizeof(buf)), "\"\"");
}

static void long_quoted_value_is_truncated_but_stays_quoted(void **state)
{
    (void)state;
    char buf[10];
    ef_log_quote("a b c d e f g h i j k", buf, sizeof(buf));
    size_t n = strlen(buf);
    assert_true(n < sizeof(buf));
    assert_int_equal(buf[0], '"');
    assert_int_equal(buf[n - 1], '"');
}

/* A buffer too small for two quotes must still be written in bounds (a heap
 * buffer of the exact size lets ASan see the one-byte overflow that size 1
 * used to cause) and never hold an unbalanced quote. */
static void tiny_buffers_are_written_in_bounds(void **state)
{
    (void)state;
    for (size_t size = 1; size <= 3; size++) {
        char *buf = malloc(size);
        assert_non_null(buf);
        ef_log_quote("needs quoting", buf, size);
        size_t n = strlen(buf);
        assert_true(n < size);
        /* Never half a quoted value: nothing, or an opening and a closing quote. */
        assert_true(n == 0 || (n >= 2 && buf[0] == '"' && buf[n - 1] == '"'));
        free(buf);
    }
    char unused = 'x';
    assert_ptr_equal(ef_log_quote("x y", &unused, 0), &unused);
    assert_int_equal(unused, 'x');
}

static void line_has_timestamp_level_event_and_pairs(void **state)
{
    (void)state;
    ef_log_set_level(EF_LOG_INFO);
    char *line = capture_info(EF_LOG_WARN, "disk_low", "free_mb=12 path=/var");
    assert_true(strncmp(line, "ts=", 3) == 0);
    assert_non_null(strstr(line, " level=warn event=disk_low free_mb=12 path=/var\n"));
    assert_int_equal(strchr(line, '\n') - line, (long)strlen(line) - 1);
    free(line);
}

static void line_without_pairs_ends_after_the_event(void **state)
{
    (void)state;
    ef_log_set_level(EF_LOG_DEBUG);
    char *line = capture_info(EF_LOG_DEBUG, "tick", NULL);
    size_t n = strlen(line);
    assert_true(n > strlen(" event=tick\n"));
    assert_string_equal(line + n - strlen(" event=tick\n"), " event=tick\n");
    free(line);
}

static void lines_below_the_level_are_dropped(void **state)
{
    (void)state;
    ef_log_set_level(EF_LOG_WARN);
    char *line = capture_info(EF_LOG_INFO, "chatty", "k=v");
    assert_string_equal(line, "");
    free(line);
    ef_log_set_level(EF_LOG_INFO);
}

static void overlong_line_is_cut_to_one_line(void **state)
{
    (void)state;
    ef_log_set_level(EF_LOG_INFO);
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'v', 4999);
    big[4999] = '\0';
    char *line = capture_info(EF_LOG_ERROR, "big", big);
    size_t n = strlen(line);
    assert_true(n > 1000 && n <= 2048);
    assert_int_equal(line[n - 1], '\n');
    assert_ptr_equal(strchr(line, '\n'), line + n - 1);
    free(line);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(level_names_parse),
        cmocka_unit_test(unknown_level_is_rejected_and_output_untouched),
        cmocka_unit_test(plain_value_is_copied_unquoted),
        cmocka_unit_test(value_with_space_quote_or_equals_is_quoted_and_escaped),
        cmocka_unit_test(control_characters_cannot_break_the_line),
        cmocka_unit_test(empty_and_null_values_are_an_empty_quoted_string),
        cmocka_unit_test(long_quoted_value_is_truncated_but_stays_quoted),
        cmocka_unit_test(tiny_buffers_are_written_in_bounds),
        cmocka_unit_test(line_has_timestamp_level_event_and_pairs),
        cmocka_unit_test(line_without_pairs_ends_after_the_event),
        cmocka_unit_test(lines_below_the_level_are_dropped),
        cmocka_unit_test(overlong_line_is_cut_to_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

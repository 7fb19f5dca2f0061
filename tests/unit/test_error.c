/* test_error.c - the EF_E* table: every code named and explained, errno translation. */
#include "common/ef_error.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* The codes as the header lists them, so a code added there is checked here. */
static const int all_codes[] = {
#define X_CODE(name, value, str, msg) name,
    EF_ERRORS(X_CODE)
#undef X_CODE
};
#define CODE_COUNT (sizeof(all_codes) / sizeof(all_codes[0]))

static void every_code_has_a_snake_case_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < CODE_COUNT; i++) {
        const char *name = ef_errname(all_codes[i]);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        assert_true(strlen(name) > 0);
        for (const char *p = name; *p; p++)
            assert_true(islower((unsigned char)*p) || *p == '_');
    }
}

static void every_code_has_a_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < CODE_COUNT; i++) {
        const char *msg = ef_strerror(all_codes[i]);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown error");
    }
}

static void names_are_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < CODE_COUNT; i++)
        for (size_t j = i + 1; j < CODE_COUNT; j++)
            assert_string_not_equal(ef_errname(all_codes[i]), ef_errname(all_codes[j]));
}

static void codes_are_zero_or_negative_and_distinct(void **state)
{
    (void)state;
    assert_int_equal(all_codes[0], EF_OK);
    assert_int_equal(EF_OK, 0);
    for (size_t i = 1; i < CODE_COUNT; i++) {
        assert_true(all_codes[i] < 0);
        for (size_t j = i + 1; j < CODE_COUNT; j++)
            assert_int_not_equal(all_codes[i], all_codes[j]);
    }
}

static void known_codes_have_their_documented_names(void **state)
{
    (void)state;
    assert_string_equal(ef_errname(EF_OK), "ok");
    assert_string_equal(ef_errname(EF_ENOENT), "not_found");
    assert_string_equal(ef_errname(EF_EBADSIG), "bad_signature");
    assert_string_equal(ef_strerror(EF_EHASH), "content does not match its declared hash");
}

static void unknown_code_gets_a_fallback_name_and_message(void **state)
{
    (void)state;
    assert_string_equal(ef_errname(-999), "unknown");
    assert_string_equal(ef_strerror(-999), "unknown error");
    assert_string_equal(ef_errname(1), "unknown");
    assert_string_equal(ef_strerror(1), "unknown error");
}

static void errno_values_translate_at_the_boundary(void **state)
{
    (void)state;
    assert_int_equal(ef_from_errno(0), EF_OK);
    assert_int_equal(ef_from_errno(ENOENT), EF_ENOENT);
    assert_int_equal(ef_from_errno(EEXIST), EF_EEXIST);
    assert_int_equal(ef_from_errno(EACCES), EF_EPERM);
    assert_int_equal(ef_from_errno(EPERM), EF_EPERM);
    assert_int_equal(ef_from_errno(ENOMEM), EF_ENOMEM);
    assert_int_equal(ef_from_errno(ENOSPC), EF_ETOOBIG);
    assert_int_equal(ef_from_errno(ETIMEDOUT), EF_ETIMEDOUT);
    assert_int_equal(ef_from_errno(EAGAIN), EF_EBUSY);
    assert_int_equal(ef_from_errno(EXDEV), EF_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_snake_case_name),
        cmocka_unit_test(every_code_has_a_message),
        cmocka_unit_test(names_are_unique),
        cmocka_unit_test(codes_are_zero_or_negative_and_distinct),
        cmocka_unit_test(known_codes_have_their_documented_names),
        cmocka_unit_test(unknown_code_gets_a_fallback_name_and_message),
        cmocka_unit_test(errno_values_translate_at_the_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

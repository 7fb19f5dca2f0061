/*
 * json_assert.h - comparing a JSON value with the JSON text a unit test
 * states: json_fixture_load parses the text, assert_json fails the test
 * with both values printed when they differ. Static inline functions only;
 * include after <cmocka.h>.
 */
#ifndef EF_TESTS_JSON_ASSERT_H
#define EF_TESTS_JSON_ASSERT_H

#include <jansson.h>
#include <stdlib.h>

/* Parses JSON text the test states itself (duplicate keys refused); a new
 * reference. Fails the test when the text is not JSON. */
static inline json_t *json_fixture_load(const char *text)
{
    json_error_t err;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!doc)
        fail_msg("fixture: %s", err.text);
    return doc;
}

/* Asserts that value equals the JSON text want; prints both when not. */
static inline void assert_json(const json_t *value, const char *want)
{
    json_t *expected = json_fixture_load(want);
    if (!json_equal(value, expected)) {
        char *got = json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT);
        print_error("got  %s\nwant %s\n", got, want);
        free(got);
        json_decref(expected);
        fail();
    }
    json_decref(expected);
}

#endif

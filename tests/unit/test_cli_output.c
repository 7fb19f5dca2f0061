/*
 * test_cli_output.c - how the CLI prints answers (server/cli/output.c):
 * re-indented JSON that keeps every token, tables, key: value lines.
 */
#include "common/ef_error.h"
#include "server/cli/output.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Runs a printer into memory; returns the malloc'd text. */
static char *capture_json_text(const char *text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(output_json_text(f, text, strlen(text)), 0);
    fclose(f);
    return buf;
}

static void json_text_keeps_tokens_and_reindents(void **state)
{
    (void)state;
    char *out = capture_json_text(
        "{\"name\":\"m\",\"x\":0.1,\"big\":1e-4,\"s\":\"a, b: {c}\\\"\",\"e\":{},\"l\":[1,[]]}");
    assert_string_equal(out, "{\n"
                             "  \"name\": \"m\",\n"
                             "  \"x\": 0.1,\n"
                             "  \"big\": 1e-4,\n"
                             "  \"s\": \"a, b: {c}\\\"\",\n"
                             "  \"e\": {},\n"
                             "  \"l\": [\n"
                             "    1,\n"
                             "    []\n"
                             "  ]\n"
                             "}\n");
    free(out);
    /* Already indented input comes out the same way. */
    out = capture_json_text("{\n  \"a\" : [ 1 , 2 ]\n}\n");
    assert_string_equal(out, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
    free(out);
}

static char *format_pair(const json_t *row)
{
    const char *a = json_string_value(json_object_get(row, "a"));
    return a ? strdup(a) : NULL;
}

static void table_aligns_columns_and_fills_gaps(void **state)
{
    (void)state;
    json_t *rows = json_loads("[{\"id\":\"dev-1\",\"n\":5,\"s\":{\"p\":{\"v\":\"long value\"}},"
                              "\"a\":\"x\"},{\"id\":\"d2\",\"n\":null,\"tags\":{\"k\":\"v\"}}]",
                              0, NULL);
    assert_non_null(rows);
    const struct output_col cols[] = {
        {"ID", "id", NULL},       {"N", "n", NULL},       {"V", "s.p.v", NULL},
        {"A", NULL, format_pair}, {"TAGS", "tags", NULL},
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(output_table(f, rows, cols, 5), 0);
    fclose(f);
    assert_string_equal(buf, "ID     N  V           A  TAGS\n"
                             "dev-1  5  long value  x  -\n"
                             "d2     -  -           -  k=v\n");
    free(buf);
    json_t *not_rows = json_object();
    assert_int_equal(output_table(stdout, not_rows, cols, 5), EF_EINVAL);
    json_decref(not_rows);
    json_decref(rows);
}

static void fields_flatten_objects_and_summarise_arrays(void **state)
{
    (void)state;
    json_t *doc = json_loads(
        "{\"id\":\"d1\",\"online\":true,\"tags\":{},\"slots\":{\"production\":{\"name\":\"m\","
        "\"version\":3}},\"labels\":[\"a\",\"b\"],\"vectors\":[{},{}],\"evil\":\"a\\u001b[2Jb\"}",
        0, NULL);
    assert_non_null(doc);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(output_fields(f, doc), 0);
    fclose(f);
    assert_string_equal(buf, "id:                       d1\n"
                             "online:                   true\n"
                             "tags:                     -\n"
                             "slots.production.name:    m\n"
                             "slots.production.version: 3\n"
                             "labels:                   a, b\n"
                             "vectors:                  (2 entries)\n"
                             "evil:                     a?[2Jb\n");
    free(buf);
    json_decref(doc);
}

static void lookup_follows_dotted_paths(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"a\":{\"b\":{\"c\":7}}}", 0, NULL);
    assert_int_equal(json_integer_value(output_lookup(doc, "a.b.c")), 7);
    assert_null(output_lookup(doc, "a.x.c"));
    assert_null(output_lookup(NULL, "a"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_text_keeps_tokens_and_reindents),
        cmocka_unit_test(table_aligns_columns_and_fills_gaps),
        cmocka_unit_test(fields_flatten_objects_and_summarise_arrays),
        cmocka_unit_test(lookup_follows_dotted_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

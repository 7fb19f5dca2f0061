/* test_samples_parse.c - the device sample upload parser: a good batch read
 * exactly, every refusal with its code and the sample it names, the bounds,
 * and the check against a model's input and output sizes. */
#include "server/samples_parse.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Parses a NUL-terminated body; *index receives the sample it blames. */
static int parse(const char *body, struct samples_batch *b, long *index)
{
    char msg[200];
    int rc = samples_parse(body, strlen(body), b, index, msg, sizeof(msg));
    if (rc != 0)
        assert_true(msg[0] != '\0');
    return rc;
}

static void test_good_batch(void **state)
{
    (void)state;
    struct samples_batch b;
    long index = 7;
    const char *body = "{\"model\": \"thyroid@3\", \"dataset_id\": 4, \"samples\": ["
                       "{\"input\": [0.5, 1, -2e-3], \"label\": 2},"
                       "{\"input\": [0, 0, 0], \"label\": null},"
                       "{\"input\": [1, 2, 3]}]}";
    assert_int_equal(parse(body, &b, &index), 0);
    assert_int_equal(index, -1);
    assert_string_equal(b.model, "thyroid");
    assert_int_equal(b.version, 3);
    assert_int_equal(b.dataset_id, 4);
    assert_int_equal(b.count, 3);
    assert_int_equal(b.labelled, 1);
    assert_int_equal(b.items[0].len, 3);
    assert_int_equal(b.items[0].label, 2);
    assert_true(b.values[b.items[0].offset + 2] == -2e-3);
    assert_int_equal(b.items[1].label, -1);
    assert_int_equal(b.items[2].label, -1);
    assert_true(b.values[b.items[2].offset] == 1.0);
    assert_int_equal(samples_check(&b, 3, 3, NULL, 0), 0);
    samples_batch_clear(&b);
    assert_null(b.items);
    samples_batch_clear(&b);
}

/* Bodies refused as a whole (index -1) with their codes. */
static void test_envelope_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int rc;
    } cases[] = {
        {"", EF_EPARSE},
        {"{", EF_EPARSE},
        {"[1]", EF_EINVAL},
        {"{\"model\":\"m@1\",\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1]}]}",
         EF_EPARSE},
        {"{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1]}],\"x\":1}", EF_EINVAL},
        {"{\"dataset_id\":1,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m\",\"dataset_id\":1,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@0\",\"dataset_id\":1,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"M@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":0,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":\"1\",\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":1.5,\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"samples\":[{\"input\":[1]}]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[]}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":{}}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":1}", EF_EINVAL},
        {"{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1e999]}]}", EF_EPARSE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct samples_batch b;
        long index = 7;
        int rc = parse(cases[i].body, &b, &index);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): %d, expected %d", i, cases[i].body, rc, cases[i].rc);
        assert_int_equal(index, -1);
        assert_null(b.items);
        assert_int_equal(b.count, 0);
    }
}

/* Samples refused with the index of the first bad one. */
static void test_sample_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "1",
        "[1]",
        "{}",
        "{\"input\":[]}",
        "{\"input\":[1,\"2\"]}",
        "{\"input\":[1,null]}",
        "{\"input\":[1,[2]]}",
        "{\"input\":[1],\"label\":-1}",
        "{\"input\":[1],\"label\":1.0}",
        "{\"input\":[1],\"label\":\"1\"}",
        "{\"input\":[1],\"label\":true}",
        "{\"input\":[1],\"label\":65536}",
        "{\"input\":[1],\"extra\":1}",
        "{\"input\":[1],\"input\":[1]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        struct samples_batch b;
        long index = -1;
        snprintf(body, sizeof(body),
                 "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1]},%s]}", bad[i]);
        int rc = parse(body, &b, &index);
        /* A repeated key is malformed JSON for the whole body. */
        int expected = strstr(bad[i], "\"input\":[1],\"input\"") ? EF_EPARSE : EF_EINVAL;
        if (rc != expected)
            fail_msg("case %zu (%s): %d, expected %d", i, bad[i], rc, expected);
        assert_int_equal(index, expected == EF_EINVAL ? 1 : -1);
        assert_null(b.items);
    }
}

/* Appends to buf what fmt makes; false when it would not fit. */
static bool append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* A body of count samples of one number each. */
static char *body_of(size_t count, size_t *len)
{
    size_t size = 64 + count * 20;
    char *buf = malloc(size);
    assert_non_null(buf);
    *len = 0;
    assert_true(append(buf, size, len, "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":["));
    for (size_t i = 0; i < count; i++)
        assert_true(append(buf, size, len, "%s{\"input\":[%zu]}", i ? "," : "", i));
    assert_true(append(buf, size, len, "]}"));
    return buf;
}

static void test_bounds(void **state)
{
    (void)state;
    struct samples_batch b;
    size_t len = 0;
    long index = 0;
    char msg[200];
    char *body = body_of(SAMPLES_MAX_COUNT, &len);
    assert_int_equal(samples_parse(body, len, &b, &index, msg, sizeof(msg)), 0);
    assert_int_equal(b.count, SAMPLES_MAX_COUNT);
    assert_true(b.values[b.items[999].offset] == 999.0);
    samples_batch_clear(&b);
    free(body);
    body = body_of(SAMPLES_MAX_COUNT + 1, &len);
    assert_int_equal(samples_parse(body, len, &b, &index, msg, sizeof(msg)), EF_ETOOBIG);
    assert_non_null(strstr(msg, "1000"));
    free(body);
    /* Over the byte limit, whatever it holds. */
    body = malloc(SAMPLES_MAX_BYTES + 1);
    assert_non_null(body);
    memset(body, ' ', SAMPLES_MAX_BYTES + 1);
    assert_int_equal(samples_parse(body, SAMPLES_MAX_BYTES + 1, &b, &index, msg, sizeof(msg)),
                     EF_ETOOBIG);
    free(body);
    /* An input longer than any model's. */
    size_t size = 128 + (SAMPLES_MAX_INPUT + 1) * 2;
    body = malloc(size);
    assert_non_null(body);
    len = 0;
    assert_true(
        append(body, size, &len, "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":["));
    for (size_t i = 0; i <= SAMPLES_MAX_INPUT; i++)
        assert_true(append(body, size, &len, i ? ",0" : "0"));
    assert_true(append(body, size, &len, "]}]}"));
    assert_int_equal(samples_parse(body, len, &b, &index, msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(index, 0);
    free(body);
}

static void test_check_against_model(void **state)
{
    (void)state;
    struct samples_batch b;
    long index;
    char msg[200];
    const char *body = "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":["
                       "{\"input\":[1,2,3],\"label\":0},{\"input\":[1,2,3],\"label\":1},"
                       "{\"input\":[1,2],\"label\":null}]}";
    assert_int_equal(parse(body, &b, &index), 0);
    assert_int_equal(samples_check(&b, 3, 2, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "samples[2]"));
    samples_batch_clear(&b);
    body = "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":["
           "{\"input\":[1,2],\"label\":1},{\"input\":[3,4],\"label\":2}]}";
    assert_int_equal(parse(body, &b, &index), 0);
    assert_int_equal(samples_check(&b, 2, 3, msg, sizeof(msg)), 0);
    /* Label 2 is outside a two-class model, and outside a single output's 0/1. */
    assert_int_equal(samples_check(&b, 2, 2, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "samples[1].label"));
    assert_int_equal(samples_check(&b, 2, 1, msg, sizeof(msg)), EF_EINVAL);
    samples_batch_clear(&b);
    body = "{\"model\":\"m@1\",\"dataset_id\":1,\"samples\":[{\"input\":[1],\"label\":1}]}";
    assert_int_equal(parse(body, &b, &index), 0);
    assert_int_equal(samples_check(&b, 1, 1, msg, sizeof(msg)), 0);
    samples_batch_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_batch),          cmocka_unit_test(test_envelope_refusals),
        cmocka_unit_test(test_sample_refusals),     cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_check_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

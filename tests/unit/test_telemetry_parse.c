/* test_telemetry_parse.c - unit tests of server/telemetry_parse.c, the
 * parser of one device telemetry window. */
#include "server/telemetry_parse.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* A window as agent/metrics.c writes it (Jansson, compact). */
#define AGENT_WINDOW                                                                               \
    "{\"window_start\":\"2026-11-22T10:00:00.123Z\",\"window_s\":60.004,"                          \
    "\"model\":\"thyroid@3\",\"inferences\":120,\"errors\":2,"                                     \
    "\"latency_ms\":{\"p50\":1.5,\"p95\":3.25,\"p99\":7.0,\"max\":9.5},"                           \
    "\"feedback\":10,\"accuracy\":0.9,\"rss_bytes\":10485760,\"cpu_s\":0.25}"

static int parse(const char *text, struct telemetry_window *w)
{
    char msg[160];
    return telemetry_parse(text, strlen(text), w, msg, sizeof(msg));
}

/* AGENT_WINDOW with the member key's value replaced by value (a JSON text),
 * or removed when value is NULL. */
static int parse_with(const char *key, const char *value, struct telemetry_window *w)
{
    char doc[1024], pattern[64];
    const char *base = AGENT_WINDOW;
    snprintf(pattern, sizeof(pattern), "\"%s\":", key);
    const char *at = strstr(base, pattern);
    assert_non_null(at);
    const char *end = at + strlen(pattern);
    int depth = 0;
    for (; *end && (depth > 0 || (*end != ',' && *end != '}')); end++)
        depth += *end == '{' ? 1 : *end == '}' ? -1 : 0;
    if (value)
        snprintf(doc, sizeof(doc), "%.*s%s%s%s", (int)(at - base), base, pattern, value, end);
    else if (*end == ',')
        snprintf(doc, sizeof(doc), "%.*s%s", (int)(at - base), base, end + 1);
    else
        snprintf(doc, sizeof(doc), "%.*s%s", (int)(at - base - 1), base, end);
    return parse(doc, w);
}

static void test_agent_window_is_parsed(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse(AGENT_WINDOW, &w), 0);
    assert_int_equal(w.window_start, 1795341600123LL);
    assert_true(w.window_s > 60.0 && w.window_s < 60.01);
    assert_string_equal(w.model, "thyroid");
    assert_int_equal(w.version, 3);
    assert_int_equal(w.inferences, 120);
    assert_int_equal(w.errors, 2);
    assert_true(w.has_latency);
    assert_true(w.p50 == 1.5 && w.p95 == 3.25 && w.p99 == 7.0 && w.max_ms == 9.5);
    assert_int_equal(w.feedback, 10);
    assert_true(w.has_accuracy && w.accuracy == 0.9);
    assert_int_equal(w.rss_bytes, 10485760);
    assert_true(w.cpu_s == 0.25);
}

static void test_idle_window_with_nulls(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,"
                           "\"model\":null,\"inferences\":0,\"errors\":0,\"latency_ms\":null,"
                           "\"feedback\":0,\"accuracy\":null,\"rss_bytes\":null,\"cpu_s\":0}",
                           &w),
                     0);
    assert_string_equal(w.model, "");
    assert_int_equal(w.version, 0);
    assert_false(w.has_latency);
    assert_false(w.has_accuracy);
    assert_int_equal(w.rss_bytes, -1);
}

static void test_optional_members_may_be_absent(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1.5,"
                           "\"inferences\":3,\"errors\":0}",
                           &w),
                     0);
    assert_string_equal(w.model, "");
    assert_int_equal(w.inferences, 3);
    assert_false(w.has_latency);
    assert_int_equal(w.feedback, 0);
    assert_int_equal(w.rss_bytes, -1);
    for (const char *const *k =
             (const char *const[]){"window_start", "window_s", "inferences", "errors", NULL};
         *k; k++)
        assert_int_equal(parse_with(*k, NULL, &w), EF_EINVAL);
}

static void test_not_json_or_not_an_object(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse("{\"window_start\":", &w), EF_EPARSE);
    assert_int_equal(parse("", &w), EF_EPARSE);
    assert_int_not_equal(parse("[1,2]", &w), 0);
    assert_int_not_equal(parse("42", &w), 0);
    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(telemetry_parse(AGENT_WINDOW "garbage", strlen(AGENT_WINDOW), &w, NULL, 0), 0);
}

static void test_duplicate_and_unknown_keys_are_refused(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":3,\"inferences\":4,\"errors\":0}",
                           &w),
                     EF_EPARSE);
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":3,\"errors\":0,\"psi\":[0.1]}",
                           &w),
                     EF_EINVAL);
    assert_int_equal(
        parse_with("latency_ms", "{\"p50\":1,\"p95\":1,\"p99\":1,\"max\":1,\"p90\":1}", &w),
        EF_EINVAL);
    assert_int_equal(parse_with("latency_ms", "{\"p50\":1,\"p95\":1,\"p99\":1}", &w), EF_EINVAL);
}

static void test_bad_values_are_refused(void **state)
{
    (void)state;
    struct telemetry_window w;
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"window_start", "\"2026-11-22 10:00:00\""},
        {"window_start", "\"2026-02-30T10:00:00Z\""},
        {"window_start", "1795341600123"},
        {"window_s", "-1"},
        {"window_s", "\"60\""},
        {"window_s", "1e9"},
        {"model", "\"thyroid\""},
        {"model", "\"thyroid@0\""},
        {"model", "\"thyroid@03\""},
        {"model", "\"thyroid@-3\""},
        {"model", "\"thyroid@3x\""},
        {"model", "\"Thyroid@3\""},
        {"model", "\"@3\""},
        {"model", "\"a@99999999999999999999\""},
        {"model", "3"},
        {"inferences", "-1"},
        {"inferences", "1.5"},
        {"inferences", "null"},
        {"inferences", "10000000000"},
        {"errors", "121"},
        {"errors", "-1"},
        {"latency_ms", "[1,2,3,4]"},
        {"latency_ms", "{\"p50\":-1,\"p95\":1,\"p99\":1,\"max\":1}"},
        {"latency_ms", "{\"p50\":\"1\",\"p95\":1,\"p99\":1,\"max\":1}"},
        {"latency_ms", "{\"p50\":1,\"p95\":1,\"p99\":1,\"max\":1e12}"},
        {"feedback", "-2"},
        {"feedback", "true"},
        {"accuracy", "1.01"},
        {"accuracy", "-0.1"},
        {"accuracy", "\"0.5\""},
        {"rss_bytes", "-1"},
        {"rss_bytes", "1.5"},
        {"cpu_s", "-0.5"},
        {"cpu_s", "null"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_with(bad[i].key, bad[i].value, &w);
        if (rc == 0)
            fail_msg("%s: %s was accepted", bad[i].key, bad[i].value);
        assert_int_equal(w.inferences, 0); /* cleared on failure */
    }
}

static void test_consistency_rules(void **state)
{
    (void)state;
    struct telemetry_window w;
    /* Latency without inferences, and accuracy without feedback, cannot be. */
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":0,\"errors\":0,"
                           "\"latency_ms\":{\"p50\":1,\"p95\":1,\"p99\":1,\"max\":1}}",
                           &w),
                     EF_EINVAL);
    assert_int_equal(parse_with("feedback", "0", &w), EF_EINVAL);
    assert_int_equal(parse_with("accuracy", "null", &w), 0);
    assert_false(w.has_accuracy);
    /* errors == inferences is allowed: a window where everything failed. */
    assert_int_equal(parse_with("errors", "120", &w), 0);
    /* Integer forms of real members are fine. */
    assert_int_equal(parse_with("cpu_s", "2", &w), 0);
    assert_true(w.cpu_s == 2.0);
}

static void test_size_bound(void **state)
{
    (void)state;
    struct telemetry_window w;
    size_t n = TELEMETRY_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, AGENT_WINDOW, strlen(AGENT_WINDOW));
    big[n] = '\0';
    assert_int_equal(telemetry_parse(big, n, &w, NULL, 0), EF_ETOOBIG);
    /* The same window padded to exactly the bound is fine. */
    assert_int_equal(telemetry_parse(big, n - 1, &w, NULL, 0), 0);
    free(big);
}

static void test_model_parse(void **state)
{
    (void)state;
    char name[TELEMETRY_MODEL_SIZE];
    int64_t v = 0;
    assert_int_equal(telemetry_model_parse("a.b-c_d@9223372036854775807", name, &v), 0);
    assert_string_equal(name, "a.b-c_d");
    assert_true(v == INT64_MAX);
    assert_int_equal(telemetry_model_parse("a@9223372036854775808", name, &v), EF_EINVAL);
    assert_int_equal(telemetry_model_parse("a@", name, &v), EF_EINVAL);
    assert_int_equal(telemetry_model_parse("a@1@2", name, &v), EF_EINVAL);
    char longname[80];
    memset(longname, 'a', 65);
    snprintf(longname + 65, sizeof(longname) - 65, "@1");
    assert_int_equal(telemetry_model_parse(longname, name, &v), EF_EINVAL);
    memset(longname, 'a', 64);
    snprintf(longname + 64, sizeof(longname) - 64, "@1");
    assert_int_equal(telemetry_model_parse(longname, name, &v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_window_is_parsed),
        cmocka_unit_test(test_idle_window_with_nulls),
        cmocka_unit_test(test_optional_members_may_be_absent),
        cmocka_unit_test(test_not_json_or_not_an_object),
        cmocka_unit_test(test_duplicate_and_unknown_keys_are_refused),
        cmocka_unit_test(test_bad_values_are_refused),
        cmocka_unit_test(test_consistency_rules),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_model_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

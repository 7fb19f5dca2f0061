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
#include <jansson.h>

/* A window as agent/metrics.c writes it (Jansson, compact). */
#define AGENT_WINDOW                                                                               \
    "{\"window_start\":\"2026-11-22T10:00:00.123Z\",\"window_s\":60.004,"                          \
    "\"model\":\"thyroid@3\",\"inferences\":120,\"errors\":2,"                                     \
    "\"latency_ms\":{\"p50\":1.5,\"p95\":3.25,\"p99\":7.0,\"max\":9.5},"                           \
    "\"feedback\":10,\"accuracy\":0.9,\"rss_bytes\":10485760,\"cpu_s\":0.25}"

/* AGENT_WINDOW with every key of docs/monitoring.md's window. */
#define FULL_WINDOW                                                                                \
    "{\"window_start\":\"2026-11-22T10:00:00.123Z\",\"window_s\":60,"                              \
    "\"model\":\"thyroid@3\",\"inferences\":120,\"errors\":2,"                                     \
    "\"latency_ms\":{\"p50\":1.5,\"p95\":3.25,\"p99\":7.0,\"max\":9.5},"                           \
    "\"feedback\":10,\"accuracy\":0.9,\"correct\":9,\"confusion\":[[5,1],[0,4]],"                  \
    "\"drift\":{\"n\":118,\"features\":[0.02,0.31,0.05],\"output\":[0.04,0.12],\"max\":0.31,"      \
    "\"output_max\":0.12},\"confidence\":0.87,"                                                    \
    "\"shadow\":{\"model\":\"thyroid@4\",\"inferences\":100,\"errors\":1,\"agreement\":0.95,"      \
    "\"feedback\":8,\"accuracy\":0.75},\"rss_bytes\":10485760,\"cpu_s\":0.25}"

static int parse(const char *text, struct telemetry_window *w)
{
    char msg[160];
    return telemetry_parse(text, strlen(text), w, msg, sizeof(msg));
}

/* base with the member key's value replaced by value (a JSON text), or
 * removed when value is NULL. */
static int parse_in(const char *base, const char *key, const char *value,
                    struct telemetry_window *w)
{
    static char doc[TELEMETRY_MAX_BYTES + 1024];
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\":", key);
    const char *at = strstr(base, pattern);
    assert_non_null(at);
    const char *end = at + strlen(pattern);
    int depth = 0;
    for (; *end && (depth > 0 || (*end != ',' && *end != '}')); end++)
        depth += *end == '{' || *end == '[' ? 1 : *end == '}' || *end == ']' ? -1 : 0;
    if (value)
        snprintf(doc, sizeof(doc), "%.*s%s%s%s", (int)(at - base), base, pattern, value, end);
    else if (*end == ',')
        snprintf(doc, sizeof(doc), "%.*s%s", (int)(at - base), base, end + 1);
    else
        snprintf(doc, sizeof(doc), "%.*s%s", (int)(at - base - 1), base, end);
    return parse(doc, w);
}

static int parse_with(const char *key, const char *value, struct telemetry_window *w)
{
    return parse_in(AGENT_WINDOW, key, value, w);
}

/* FULL_WINDOW with one member replaced; what the parser keeps is freed. */
static int full_with(const char *key, const char *value)
{
    struct telemetry_window w;
    int rc = parse_in(FULL_WINDOW, key, value, &w);
    telemetry_window_clear(&w);
    return rc;
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

static void test_full_window_is_parsed(void **state)
{
    (void)state;
    struct telemetry_window w;
    assert_int_equal(parse(FULL_WINDOW, &w), 0);
    assert_true(w.has_correct);
    assert_int_equal(w.correct, 9);
    assert_true(w.has_drift && w.has_drift_output);
    assert_int_equal(w.drift_n, 118);
    assert_true(w.drift == 0.31 && w.drift_output == 0.12);
    assert_true(w.has_confidence && w.confidence == 0.87);
    assert_true(w.has_shadow);
    assert_string_equal(w.shadow_model, "thyroid");
    assert_int_equal(w.shadow_version, 4);
    assert_int_equal(w.shadow_inferences, 100);
    assert_int_equal(w.shadow_errors, 1);
    assert_true(w.has_shadow_agreement && w.shadow_agreement == 0.95);
    assert_int_equal(w.shadow_feedback, 8);
    assert_true(w.has_shadow_accuracy && w.shadow_accuracy == 0.75);
    /* The arrays go into detail. */
    assert_non_null(w.detail);
    assert_int_equal(w.detail_len, strlen(w.detail));
    json_t *got = json_loads(w.detail, 0, NULL);
    json_t *want = json_loads("{\"psi\":{\"n\":118,\"features\":[0.02,0.31,0.05],"
                              "\"output\":[0.04,0.12]},\"confusion\":[[5,1],[0,4]]}",
                              0, NULL);
    assert_non_null(got);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    telemetry_window_clear(&w);
    assert_null(w.detail);
    assert_int_equal(w.inferences, 0);
}

static void test_new_keys_may_be_null(void **state)
{
    (void)state;
    struct telemetry_window w;
    static const char *const keys[] = {"correct", "confusion", "drift", "confidence", "shadow"};
    char doc[4096];
    snprintf(doc, sizeof(doc), "%s", FULL_WINDOW);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_int_equal(parse_in(doc, keys[i], "null", &w), 0);
        telemetry_window_clear(&w);
        assert_int_equal(full_with(keys[i], NULL), 0); /* absent */
    }
    /* All of them null at once: no detail, nothing has_. */
    assert_int_equal(parse(AGENT_WINDOW, &w), 0);
    assert_false(w.has_correct || w.has_drift || w.has_drift_output || w.has_confidence ||
                 w.has_shadow);
    assert_null(w.detail);
    /* Only the confusion matrix: detail holds just it. */
    assert_int_equal(parse_in(FULL_WINDOW, "drift", "null", &w), 0);
    assert_string_equal(w.detail, "{\"confusion\":[[5,1],[0,4]]}");
    telemetry_window_clear(&w);
}

static void test_new_keys_accepted_variants(void **state)
{
    (void)state;
    struct telemetry_window w;
    /* No output baseline: output [] and output_max null. */
    assert_int_equal(parse_in(FULL_WINDOW, "drift",
                              "{\"n\":10,\"features\":[0],\"output\":[],\"max\":0,"
                              "\"output_max\":null}",
                              &w),
                     0);
    assert_true(w.has_drift && !w.has_drift_output && w.drift == 0);
    telemetry_window_clear(&w);
    /* PSI at its bound, n at the window's inferences. */
    assert_int_equal(full_with("drift", "{\"n\":120,\"features\":[100,3],\"output\":[100],"
                                        "\"max\":100,\"output_max\":100}"),
                     0);
    /* Shadow without agreement or accuracy (nothing ran yet / no feedback). */
    assert_int_equal(parse_in(FULL_WINDOW, "shadow",
                              "{\"model\":\"other@1\",\"inferences\":0,\"errors\":0,"
                              "\"agreement\":null,\"feedback\":0,\"accuracy\":null}",
                              &w),
                     0);
    assert_true(w.has_shadow && !w.has_shadow_agreement && !w.has_shadow_accuracy);
    telemetry_window_clear(&w);
    /* correct alone, accuracy absent; correct == feedback; confusion at 64 classes. */
    assert_int_equal(full_with("accuracy", NULL), 0);
    assert_int_equal(full_with("correct", "9"), 0);
    char big[65 * 65 * 2 + 1024];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "[");
    for (int i = 0; i < 64; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s[", i ? "," : "");
        for (int j = 0; j < 64; j++)
            n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%d", j ? "," : "",
                                  i == j && i < 10 ? 1 : 0);
        n += (size_t)snprintf(big + n, sizeof(big) - n, "]");
    }
    snprintf(big + n, sizeof(big) - n, "]");
    assert_int_equal(full_with("confusion", big), 0);
    /* 65 classes is one too many. */
    n = 0;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "[");
    for (int i = 0; i < 65; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s[", i ? "," : "");
        for (int j = 0; j < 65; j++)
            n += (size_t)snprintf(big + n, sizeof(big) - n, "%s0", j ? "," : "");
        n += (size_t)snprintf(big + n, sizeof(big) - n, "]");
    }
    snprintf(big + n, sizeof(big) - n, "]");
    assert_int_equal(full_with("confusion", big), EF_EINVAL);
}

static void test_new_keys_refused(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value;
    } bad[] = {
        /* correct: a count at most feedback that agrees with accuracy */
        {"correct", "11"},
        {"correct", "-1"},
        {"correct", "8.5"},
        {"correct", "\"9\""},
        {"correct", "8"},
        /* confusion: square, 2..64, counts, at most feedback */
        {"confusion", "[[5,1]]"},
        {"confusion", "[[5,1],[0]]"},
        {"confusion", "[[10]]"},
        {"confusion", "[[5,1],[0,5]]"},
        {"confusion", "[[5,-1],[0,4]]"},
        {"confusion", "[[5,1.5],[0,4]]"},
        {"confusion", "[5,1]"},
        {"confusion", "[]"},
        {"confusion", "\"x\""},
        {"confusion", "{\"a\":1}"},
        /* drift */
        {"drift", "{\"n\":9,\"features\":[0.1],\"output\":[],\"max\":0.1,\"output_max\":null}"},
        {"drift", "{\"n\":121,\"features\":[0.1],\"output\":[],\"max\":0.1,\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[],\"output\":[],\"max\":0,\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[-0.1],\"output\":[],\"max\":0,\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[1e9],\"output\":[],\"max\":1e9,\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[100.5],\"output\":[],\"max\":100.5,"
                  "\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[0.1,\"a\"],\"output\":[],\"max\":0.1,"
                  "\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[0.1,null],\"output\":[],\"max\":0.1,"
                  "\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[0.1,0.2],\"output\":[],\"max\":0.1,"
                  "\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[0.1],\"output\":[0.2],\"max\":0.1,"
                  "\"output_max\":0.3}"},
        {"drift", "{\"n\":50,\"features\":[0.1],\"output\":[0.2],\"max\":0.1,"
                  "\"output_max\":null}"},
        {"drift", "{\"n\":50,\"features\":[0.1],\"output\":[],\"max\":0.1,\"output_max\":0}"},
        {"drift", "{\"n\":50,\"features\":[0.1],\"output\":[],\"max\":0.1}"},
        {"drift", "{\"n\":50,\"features\":[0.1],\"output\":[],\"max\":0.1,\"output_max\":null,"
                  "\"min\":0}"},
        {"drift", "{\"n\":50,\"features\":0.1,\"output\":[],\"max\":0.1,\"output_max\":null}"},
        {"drift", "{\"n\":50.5,\"features\":[0.1],\"output\":[],\"max\":0.1,"
                  "\"output_max\":null}"},
        {"drift", "[0.1]"},
        {"drift", "0.3"},
        /* confidence */
        {"confidence", "1.5"},
        {"confidence", "-0.1"},
        {"confidence", "\"0.5\""},
        /* shadow */
        {"shadow", "{\"inferences\":1,\"errors\":0,\"agreement\":1,\"feedback\":0,"
                   "\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid\",\"inferences\":1,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":121,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":6,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":11,\"accuracy\":1}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":0,\"agreement\":1.2,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":2,\"accuracy\":-1}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":0,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":0.5}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":-5,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"errors\":0,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null,\"latency\":1}"},
        {"shadow", "{\"model\":\"thyroid@4\",\"inferences\":5,\"agreement\":1,"
                   "\"feedback\":0,\"accuracy\":null}"},
        {"shadow", "\"thyroid@4\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (full_with(bad[i].key, bad[i].value) != EF_EINVAL)
            fail_msg("%s: %s was not refused", bad[i].key, bad[i].value);
    /* A number Jansson cannot hold is malformed JSON already. */
    assert_int_equal(full_with("confidence", "1e400"), EF_EPARSE);
}

static void test_new_keys_consistency(void **state)
{
    (void)state;
    /* A confusion matrix needs feedback, confidence inferences. */
    assert_int_equal(parse_with("feedback", "0", &(struct telemetry_window){0}), EF_EINVAL);
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":3,\"errors\":0,\"feedback\":0,"
                           "\"confusion\":[[0,0],[0,0]]}",
                           &(struct telemetry_window){0}),
                     EF_EINVAL);
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":0,\"errors\":0,\"confidence\":0.5}",
                           &(struct telemetry_window){0}),
                     EF_EINVAL);
    /* Without accuracy, correct needs only to stay within feedback. */
    assert_int_equal(parse("{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":1,"
                           "\"inferences\":3,\"errors\":0,\"feedback\":3,\"correct\":3}",
                           &(struct telemetry_window){0}),
                     0);
    /* A refused window leaves nothing allocated behind (ASan would tell). */
    struct telemetry_window w;
    assert_int_equal(parse_in(FULL_WINDOW, "cpu_s", "-1", &w), EF_EINVAL);
    assert_null(w.detail);
}

/* A window with as many PSI values as fit in TELEMETRY_MAX_BYTES is
 * accepted; the byte bound is what limits arrays in practice. */
static void test_large_drift_window(void **state)
{
    (void)state;
    struct telemetry_window w;
    static char doc[TELEMETRY_MAX_BYTES + 64];
    size_t n = (size_t)snprintf(doc, sizeof(doc),
                                "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,"
                                "\"inferences\":100,\"errors\":0,\"drift\":{\"n\":100,"
                                "\"output\":[],\"output_max\":null,\"max\":0.5,\"features\":[0.5");
    int features = 1;
    while (n + 64 < TELEMETRY_MAX_BYTES) {
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, ",0.1");
        features++;
    }
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "]}}");
    assert_true(n <= TELEMETRY_MAX_BYTES);
    assert_int_equal(telemetry_parse(doc, n, &w, NULL, 0), 0);
    json_t *detail = json_loads(w.detail, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(json_object_get(detail, "psi"), "features")),
                     features);
    assert_true(w.detail_len <= n);
    json_decref(detail);
    telemetry_window_clear(&w);
}

/* Asserts that w's detail is the JSON want. */
static void detail_is(const struct telemetry_window *w, const char *want_text)
{
    json_t *got = json_loads(w->detail, 0, NULL), *want = json_loads(want_text, 0, NULL);
    assert_non_null(got);
    assert_non_null(want);
    assert_int_equal(w->detail_len, strlen(w->detail));
    if (!json_equal(got, want))
        fail_msg("detail %s, expected %s", w->detail, want_text);
    json_decref(got);
    json_decref(want);
}

/* detail is made of the payload's own array text, whatever its spacing and
 * number notation and whatever escapes come before; a member whose key is
 * written with escapes is found through the parsed document instead. */
static void test_detail_text(void **state)
{
    (void)state;
    struct telemetry_window w;
    static const char *const want = "{\"psi\":{\"n\":10,\"features\":[0.5,0.1,2],\"output\":[]},"
                                    "\"confusion\":[[1,0],[0,3]]}";
    static const char *const spaced =
        "\n{ \"window_start\" : \"2026-11-22T10:00:00\\u005a\", \"window_s\":60,\r\n"
        "\t\"inferences\":20,\"errors\":0,\"feedback\":4, \"drift\" : { \"output\" : [ ] ,"
        "\"n\":10, \"features\" : [ 0.5 , 1e-1,\n2 ], \"max\":2, \"output_max\":null},"
        " \"confusion\" :[[1, 0] ,[0,3]] } ";
    assert_int_equal(parse(spaced, &w), 0);
    detail_is(&w, want);
    telemetry_window_clear(&w);
    static const char *const escaped =
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"inferences\":20,"
        "\"errors\":0,\"feedback\":4,\"\\u0064rift\":{\"output\":[],\"n\":10,"
        "\"featur\\u0065s\":[0.5,0.1,2],\"max\":2,\"output_max\":null},"
        "\"confusio\\u006e\":[[1,0],[0,3]]}";
    assert_int_equal(parse(escaped, &w), 0);
    detail_is(&w, want);
    telemetry_window_clear(&w);
    /* Jansson passes over a NUL byte between tokens: it must not end up in
     * the copied text. */
    char nul[512];
    size_t n = strlen(spaced);
    assert_true(n < sizeof(nul));
    memcpy(nul, spaced, n);
    nul[strstr(spaced, "0.5 ") - spaced + 3] = '\0'; /* [ 0.5<NUL>, 1e-1, ... */
    assert_int_equal(telemetry_parse(nul, n, &w, NULL, 0), 0);
    detail_is(&w, want);
    telemetry_window_clear(&w);
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
        cmocka_unit_test(test_full_window_is_parsed),
        cmocka_unit_test(test_new_keys_may_be_null),
        cmocka_unit_test(test_new_keys_accepted_variants),
        cmocka_unit_test(test_new_keys_refused),
        cmocka_unit_test(test_new_keys_consistency),
        cmocka_unit_test(test_large_drift_window),
        cmocka_unit_test(test_detail_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_rollout_policy.c - the policy of a rollout: reading it (defaults,
 * ranges, unknown keys), writing it back, and the decision about one ring at
 * every threshold edge, computed by hand. */
#include "server/rollout_policy.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Parses policy JSON text; fails the test when the text is not JSON. */
static int parse(const char *text, struct rollout_policy *p)
{
    char msg[160] = "";
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    assert_non_null(doc);
    int rc = rollout_policy_parse(doc, p, msg, sizeof(msg));
    if (rc != 0)
        assert_true(msg[0] != '\0');
    json_decref(doc);
    return rc;
}

/* A policy from JSON text that must be valid. */
static struct rollout_policy policy(const char *text)
{
    struct rollout_policy p;
    assert_int_equal(parse(text, &p), 0);
    return p;
}

/* Evaluates a running ring: devices, committed, failed, ms in running. */
static struct rollout_decision running(const struct rollout_policy *p, int64_t devices,
                                       int64_t committed, int64_t failed, int64_t running_ms,
                                       const struct ring_telemetry *t)
{
    struct rollout_ring_view v = {.devices = devices,
                                  .committed = committed,
                                  .failed = failed,
                                  .running_ms = running_ms,
                                  .telemetry = t};
    struct rollout_decision d;
    rollout_policy_evaluate(p, &v, &d);
    return d;
}

/* Evaluates a soaking ring. */
static struct rollout_decision soaking(const struct rollout_policy *p, int64_t devices,
                                       int64_t committed, int64_t failed, int64_t running_ms,
                                       int64_t soaking_ms, const struct ring_telemetry *t)
{
    struct rollout_ring_view v = {.devices = devices,
                                  .committed = committed,
                                  .failed = failed,
                                  .soaking = true,
                                  .running_ms = running_ms,
                                  .soaking_ms = soaking_ms,
                                  .telemetry = t};
    struct rollout_decision d;
    rollout_policy_evaluate(p, &v, &d);
    return d;
}

static void test_defaults(void **state)
{
    (void)state;
    struct rollout_policy p;
    char msg[64] = "";
    assert_int_equal(rollout_policy_parse(NULL, &p, msg, sizeof(msg)), 0);
    assert_true(p.success == 1.0);
    assert_true(p.error == 0.0);
    assert_int_equal(p.min_devices, 1);
    assert_int_equal(p.soak_s, 0);
    assert_int_equal(p.deadline_s, 600);
    assert_int_equal(p.gate_count, 0);
    assert_int_equal(p.on_breach, ROLLOUT_ON_BREACH_PAUSE);
    p = policy("{}");
    assert_int_equal(p.deadline_s, 600);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rollout_policy p =
        policy("{\"success\": 0.9, \"error\": 0.1, \"min_devices\": 3, \"soak_s\": 30,"
               " \"deadline_s\": 120, \"on_breach\": \"rollback\", \"gates\": ["
               "{\"metric\": \"error_rate\", \"max\": 0.05},"
               "{\"metric\": \"latency_p99_ms\", \"max\": 250, \"min_inferences\": 100}]}");
    struct rollout_policy q;
    char msg[64] = "";
    assert_int_equal(p.gate_count, 2);
    assert_int_equal(p.gates[0].min_inferences, 1); /* the default */
    assert_int_equal(p.gates[1].metric, ROLLOUT_METRIC_LATENCY_P99_MS);
    assert_true(p.gates[1].max == 250.0);
    json_t *doc = rollout_policy_json(&p);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "on_breach")), "rollback");
    assert_int_equal(json_integer_value(json_object_get(doc, "soak_s")), 30);
    assert_int_equal(rollout_policy_parse(doc, &q, msg, sizeof(msg)), 0);
    assert_true(q.success == p.success && q.error == p.error);
    assert_int_equal(q.min_devices, p.min_devices);
    assert_int_equal(q.soak_s, p.soak_s);
    assert_int_equal(q.deadline_s, p.deadline_s);
    assert_int_equal(q.on_breach, p.on_breach);
    assert_int_equal(q.gate_count, p.gate_count);
    for (size_t i = 0; i < p.gate_count; i++) {
        assert_int_equal(q.gates[i].metric, p.gates[i].metric);
        assert_true(q.gates[i].max == p.gates[i].max);
        assert_int_equal(q.gates[i].min_inferences, p.gates[i].min_inferences);
    }
    json_decref(doc);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "{\"sucess\": 0.9}",
        "{\"success\": 1.01}",
        "{\"success\": \"0.9\"}",
        "{\"error\": -0.1}",
        "{\"min_devices\": 0}",
        "{\"min_devices\": 2.5}",
        "{\"min_devices\": 1000001}",
        "{\"soak_s\": -1}",
        "{\"deadline_s\": 0}",
        "{\"deadline_s\": 2592001}",
        "{\"on_breach\": \"explode\"}",
        "{\"on_breach\": true}",
        "{\"gates\": {}}",
        "{\"gates\": [1]}",
        "{\"gates\": [{\"metric\": \"accuracy\", \"max\": 1}]}",
        "{\"gates\": [{\"metric\": \"error_rate\"}]}",
        "{\"gates\": [{\"metric\": \"error_rate\", \"max\": 1.5}]}",
        "{\"gates\": [{\"metric\": \"latency_p99_ms\", \"max\": -1}]}",
        "{\"gates\": [{\"metric\": \"error_rate\", \"max\": 0.1, \"min_inferences\": 0}]}",
        "{\"gates\": [{\"metric\": \"error_rate\", \"max\": 0.1, \"window\": 60}]}",
        "{\"gates\": [{},{},{},{},{},{},{},{},{}]}",
    };
    struct rollout_policy p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &p) != EF_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(p.deadline_s, 600); /* left at the defaults */
    }
    /* Integers are numbers; the edges are in range. */
    p = policy("{\"success\": 1, \"error\": 0, \"soak_s\": 0, \"deadline_s\": 2592000}");
    assert_true(p.success == 1.0);
}

static void test_empty_ring_succeeds_at_once(void **state)
{
    (void)state;
    struct rollout_policy p =
        policy("{\"soak_s\": 3600, \"gates\": [{\"metric\": \"error_rate\", \"max\": 0}]}");
    struct ring_telemetry t = {.windows = 5, .inferences = 100, .errors = 50};
    struct rollout_decision d = running(&p, 0, 0, 0, 0, &t);
    assert_int_equal(d.verdict, ROLLOUT_SUCCEED);
    assert_false(d.timed_out);
}

static void test_success_is_inclusive(void **state)
{
    (void)state;
    /* Shares whose products are not exact in binary: 0.57 * 100 is
     * 56.99999999999999, 0.29 * 100 is 28.999999999999996. */
    static const struct {
        const char *policy;
        int64_t committed, devices;
    } at[] = {
        {"{\"success\": 0.9}", 9, 10},    {"{\"success\": 0.3}", 3, 10},
        {"{\"success\": 0.7}", 7, 10},    {"{\"success\": 0.07}", 7, 100},
        {"{\"success\": 0.29}", 29, 100}, {"{\"success\": 0.57}", 57, 100},
        {"{\"success\": 1.0}", 3, 3},     {"{\"success\": 0}", 0, 4},
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        struct rollout_policy p = policy(at[i].policy);
        struct rollout_decision d = running(&p, at[i].devices, at[i].committed, 0, 0, NULL);
        if (d.verdict != ROLLOUT_SOAK)
            fail_msg("%s with %lld/%lld: verdict %d", at[i].policy, (long long)at[i].committed,
                     (long long)at[i].devices, d.verdict);
        if (at[i].committed > 0) {
            d = running(&p, at[i].devices, at[i].committed - 1, 0, 0, NULL);
            assert_int_equal(d.verdict, ROLLOUT_CONTINUE);
        }
    }
}

static void test_error_is_exclusive(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"error\": 0.2}");
    /* 2 of 10 failed is exactly 0.2: no breach, success 1.0 not reached. */
    assert_int_equal(running(&p, 10, 8, 2, 0, NULL).verdict, ROLLOUT_CONTINUE);
    /* 3 of 10 is above. */
    struct rollout_decision d = running(&p, 10, 7, 3, 0, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_non_null(strstr(d.reason, "3 of 10"));
    /* The awkward share again: 29 of 100 at 0.29 is not above it. */
    p = policy("{\"error\": 0.29, \"success\": 0.7}");
    assert_int_equal(running(&p, 100, 71, 29, 0, NULL).verdict, ROLLOUT_SOAK);
    assert_int_equal(running(&p, 100, 70, 30, 0, NULL).verdict, ROLLOUT_BREACH);
    /* The default error 0.0: one failure is a breach. */
    p = policy("{}");
    assert_int_equal(running(&p, 100, 0, 1, 0, NULL).verdict, ROLLOUT_BREACH);
}

static void test_min_devices(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"min_devices\": 5, \"error\": 0.1}");
    /* 4 finished, all failed (100% of the finished, 40% of the ring). */
    assert_int_equal(running(&p, 10, 0, 4, 0, NULL).verdict, ROLLOUT_CONTINUE);
    /* A ring smaller than min_devices: all failed is no breach yet. */
    assert_int_equal(running(&p, 3, 0, 3, 0, NULL).verdict, ROLLOUT_CONTINUE);
    /* The fifth finished device, a commit, makes the rule count. */
    assert_int_equal(running(&p, 10, 1, 4, 0, NULL).verdict, ROLLOUT_BREACH);
    /* The deadline finishes everyone: the small ring breaches then. */
    struct rollout_decision d = running(&p, 3, 0, 3, 600 * 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_non_null(strstr(d.reason, "timeout"));
}

static void test_error_before_success(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"success\": 0.5, \"error\": 0.3}");
    struct rollout_decision d = running(&p, 10, 6, 4, 0, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    /* And in soaking, failures that arrive late still breach. */
    d = soaking(&p, 10, 6, 4, 0, 0, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
}

static void test_deadline(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"deadline_s\": 60}");
    /* One millisecond before: nothing. */
    struct rollout_decision d = running(&p, 10, 8, 0, 60 * 1000 - 1, NULL);
    assert_int_equal(d.verdict, ROLLOUT_CONTINUE);
    assert_false(d.timed_out);
    /* At the deadline the 2 unfinished devices count as failed: above 0.0. */
    d = running(&p, 10, 8, 0, 60 * 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_true(d.timed_out);
    assert_non_null(strstr(d.reason, "timeout"));
    /* With room for them in the error share, success at 0.8 still holds. */
    p = policy("{\"deadline_s\": 60, \"error\": 0.2, \"success\": 0.8}");
    d = running(&p, 10, 8, 0, 60 * 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_SOAK);
    assert_true(d.timed_out);
    /* Not enough committed by the deadline and nothing left to come. */
    p = policy("{\"deadline_s\": 60, \"error\": 0.5, \"success\": 0.9}");
    d = running(&p, 10, 8, 0, 60 * 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_non_null(strstr(d.reason, "timeout"));
    /* Everyone finished: nothing times out. */
    p = policy("{\"deadline_s\": 60}");
    d = running(&p, 4, 4, 0, 3600 * 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_SOAK);
    assert_false(d.timed_out);
    /* No deadline while soaking. */
    p = policy("{\"deadline_s\": 60, \"success\": 0.5, \"soak_s\": 600}");
    d = soaking(&p, 10, 5, 0, 3600 * 1000, 1000, NULL);
    assert_int_equal(d.verdict, ROLLOUT_CONTINUE);
    assert_false(d.timed_out);
}

static void test_soak(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"soak_s\": 30}");
    assert_int_equal(running(&p, 2, 2, 0, 0, NULL).verdict, ROLLOUT_SOAK);
    assert_int_equal(soaking(&p, 2, 2, 0, 0, 30 * 1000 - 1, NULL).verdict, ROLLOUT_CONTINUE);
    assert_int_equal(soaking(&p, 2, 2, 0, 0, 30 * 1000, NULL).verdict, ROLLOUT_SUCCEED);
    /* soak_s 0: soaking ends at once. */
    p = policy("{}");
    assert_int_equal(soaking(&p, 2, 2, 0, 0, 0, NULL).verdict, ROLLOUT_SUCCEED);
}

static void test_soak_awaits_a_device_that_joined(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"soak_s\": 3}");
    /* 2 of 2 committed started the soak; a third device joined since. */
    assert_int_equal(soaking(&p, 3, 2, 0, 0, 60 * 1000, NULL).verdict, ROLLOUT_CONTINUE);
    assert_int_equal(soaking(&p, 3, 3, 0, 0, 60 * 1000, NULL).verdict, ROLLOUT_SUCCEED);
}

static void test_gate_error_rate(void **state)
{
    (void)state;
    struct rollout_policy p = policy("{\"gates\": [{\"metric\": \"error_rate\", \"max\": 0.01}]}");
    struct ring_telemetry t = {.windows = 10, .inferences = 1000, .errors = 10};
    /* 10/1000 is exactly the maximum: passes, and the ring may soak. */
    assert_int_equal(running(&p, 2, 2, 0, 0, &t).verdict, ROLLOUT_SOAK);
    t.errors = 11;
    struct rollout_decision d = running(&p, 2, 2, 0, 0, &t);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_non_null(strstr(d.reason, "error_rate"));
    /* Checked while soaking too. */
    assert_int_equal(soaking(&p, 2, 2, 0, 0, 0, &t).verdict, ROLLOUT_BREACH);
    /* No telemetry, or no inferences: the gate does not decide. */
    assert_int_equal(running(&p, 2, 2, 0, 0, NULL).verdict, ROLLOUT_SOAK);
    t = (struct ring_telemetry){.windows = 3, .inferences = 0, .errors = 0};
    assert_int_equal(running(&p, 2, 2, 0, 0, &t).verdict, ROLLOUT_SOAK);
}

static void test_gate_min_inferences(void **state)
{
    (void)state;
    struct rollout_policy p = policy(
        "{\"gates\": [{\"metric\": \"error_rate\", \"max\": 0.01, \"min_inferences\": 2000}]}");
    struct ring_telemetry t = {.windows = 10, .inferences = 1999, .errors = 1999};
    assert_int_equal(running(&p, 2, 2, 0, 0, &t).verdict, ROLLOUT_SOAK);
    t.inferences = 2000;
    assert_int_equal(running(&p, 2, 2, 0, 0, &t).verdict, ROLLOUT_BREACH);
}

static void test_gate_latency(void **state)
{
    (void)state;
    struct rollout_policy p =
        policy("{\"gates\": [{\"metric\": \"latency_p99_ms\", \"max\": 100}]}");
    struct ring_telemetry t = {.windows = 4, .inferences = 50, .errors = 0, .max_p99_ms = 100.0};
    assert_int_equal(running(&p, 2, 0, 0, 0, &t).verdict, ROLLOUT_CONTINUE);
    t.max_p99_ms = 100.5;
    struct rollout_decision d = running(&p, 2, 0, 0, 0, &t);
    assert_int_equal(d.verdict, ROLLOUT_BREACH);
    assert_non_null(strstr(d.reason, "latency_p99_ms"));
    /* Gates come before success: all committed does not save the ring. */
    assert_int_equal(running(&p, 2, 2, 0, 0, &t).verdict, ROLLOUT_BREACH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_empty_ring_succeeds_at_once),
        cmocka_unit_test(test_success_is_inclusive),
        cmocka_unit_test(test_error_is_exclusive),
        cmocka_unit_test(test_min_devices),
        cmocka_unit_test(test_error_before_success),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_soak),
        cmocka_unit_test(test_soak_awaits_a_device_that_joined),
        cmocka_unit_test(test_gate_error_rate),
        cmocka_unit_test(test_gate_min_inferences),
        cmocka_unit_test(test_gate_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_cli_rollout.c - the pure parts of `edgefleet rollout`
 * (server/cli/cmd_rollout.c): shares, metric gates and the other policy flags
 * turned into the body of POST /api/v1/rollouts, final states, and the
 * readable view that `rollout show` and `show --watch` print. The calls to
 * the server are checked end to end against a real one.
 */
#include "common/clock.h"
#include "common/ef_error.h"
#include "server/cli/cmd_rollout.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_assert.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void shares_take_fractions_and_percentages(void **state)
{
    (void)state;
    const struct {
        const char *text;
        double want;
    } ok[] = {{"0.9", 0.9}, {"90%", 0.9},     {"1", 1.0},  {"0", 0.0},     {"100%", 1.0},
              {"0%", 0.0},  {"99.5%", 0.995}, {".5", 0.5}, {"1.000", 1.0}, {"5.%", 0.05}};
    char msg[200];
    for (size_t i = 0; i < COUNT(ok); i++) {
        double v = -1;
        assert_int_equal(rollout_share_parse(ok[i].text, &v, msg, sizeof(msg)), 0);
        assert_true(v == ok[i].want);
    }
}

static void shares_refuse_anything_else(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "%",
                         "1.5",
                         "101%",
                         "100.01%",
                         "-0.1",
                         "+0.5",
                         "1e-1",
                         "nan",
                         "inf",
                         "0x1",
                         " 0.5",
                         "0.5 ",
                         "50",
                         "5%%",
                         "1.2.3",
                         ".",
                         ".%",
                         "0,5",
                         "90 %",
                         "0.9x",
                         "%90",
                         "0.000000000000000000000000000000001"};
    char msg[200];
    for (size_t i = 0; i < COUNT(bad); i++) {
        double v = 0;
        msg[0] = '\0';
        assert_int_equal(rollout_share_parse(bad[i], &v, msg, sizeof(msg)), EF_EINVAL);
        assert_non_null(strstr(msg, "percentage"));
    }
}

static void gates_parse_metric_maximum_and_minimum(void **state)
{
    (void)state;
    const struct {
        const char *text, *want;
    } ok[] = {
        {"error_rate<=0.05", "{\"metric\":\"error_rate\",\"max\":0.05}"},
        {"error_rate<0.05", "{\"metric\":\"error_rate\",\"max\":0.05}"},
        {"error_rate<=5%", "{\"metric\":\"error_rate\",\"max\":0.05}"},
        {"latency_p99_ms<=50", "{\"metric\":\"latency_p99_ms\",\"max\":50.0}"},
        {"latency_p99_ms<=50@100",
         "{\"metric\":\"latency_p99_ms\",\"max\":50.0,\"min_inferences\":100}"},
        {" latency_p99_ms <= 12.5 @ 7 ",
         "{\"metric\":\"latency_p99_ms\",\"max\":12.5,\"min_inferences\":7}"},
        {"error_rate<=0@1", "{\"metric\":\"error_rate\",\"max\":0.0,\"min_inferences\":1}"},
    };
    char msg[200];
    for (size_t i = 0; i < COUNT(ok); i++) {
        json_t *gate = NULL;
        assert_int_equal(rollout_gate_parse(ok[i].text, &gate, msg, sizeof(msg)), 0);
        assert_json(gate, ok[i].want);
        /* The maximum is always a real, whatever the server unpacks it with. */
        assert_true(json_is_real(json_object_get(gate, "max")));
        json_decref(gate);
    }
}

static void gates_refuse_malformed_expressions(void **state)
{
    (void)state;
    const struct {
        const char *text, *says;
    } bad[] = {
        {"error_rate", "METRIC<=MAX"},
        {"error_rate>=0.1", "METRIC<=MAX"},
        {"error_rate=0.1", "METRIC<=MAX"},
        {"<=0.1", "unknown metric"},
        {"accuracy<=0.9", "unknown metric"},
        {"Error_rate<=0.1", "unknown metric"},
        {"error_rate<=", "maximum"},
        {"error_rate<==0.1", "maximum"},
        {"error_rate<=1.5", "maximum"},
        {"error_rate<=-0.1", "maximum"},
        {"error_rate<=0.1<0.2", "maximum"},
        {"latency_p99_ms<=5%", "maximum"},
        {"latency_p99_ms<=1e3", "maximum"},
        {"latency_p99_ms<=50@0", "@N"},
        {"latency_p99_ms<=50@", "@N"},
        {"latency_p99_ms<=50@x", "@N"},
        {"latency_p99_ms<=50@1@2", "@N"},
        {"latency_p99_ms<=50@-3", "@N"},
        {"a_metric_name_far_longer_than_any_known_one<=1", "METRIC<=MAX"},
    };
    char msg[300];
    for (size_t i = 0; i < COUNT(bad); i++) {
        json_t *gate = (json_t *)&msg; /* must come back NULL */
        msg[0] = '\0';
        assert_int_equal(rollout_gate_parse(bad[i].text, &gate, msg, sizeof(msg)), EF_EINVAL);
        assert_null(gate);
        if (!strstr(msg, bad[i].says))
            fail_msg("'%s' gave \"%s\", wanted \"%s\"", bad[i].text, msg, bad[i].says);
    }
}

static void create_body_carries_every_policy_flag(void **state)
{
    (void)state;
    const char *gates[] = {"error_rate<=5%", "latency_p99_ms<=50@100"};
    struct rollout_create_args a = {
        .target = "thyroid@3",
        .rings = "canary,early,broad",
        .success = "90%",
        .error = "0.05",
        .min_devices = "3",
        .soak = "300",
        .deadline = "1200",
        .on_breach = "rollback",
        .gates = gates,
        .ngates = COUNT(gates),
        .supersede = true,
        .slot = "shadow",
    };
    json_t *body = NULL;
    char msg[300];
    assert_int_equal(rollout_create_body(&a, &body, msg, sizeof(msg)), 0);
    assert_json(body, "{\"model\":\"thyroid\",\"version\":3,"
                      "\"rings\":[\"canary\",\"early\",\"broad\"],"
                      "\"policy\":{\"success\":0.9,\"error\":0.05,\"min_devices\":3,"
                      "\"soak_s\":300,\"deadline_s\":1200,\"on_breach\":\"rollback\","
                      "\"gates\":[{\"metric\":\"error_rate\",\"max\":0.05},"
                      "{\"metric\":\"latency_p99_ms\",\"max\":50.0,\"min_inferences\":100}]},"
                      "\"supersede\":true,\"slot\":\"shadow\"}");
    json_decref(body);
}

static void create_body_leaves_defaults_to_the_server(void **state)
{
    (void)state;
    struct rollout_create_args a = {.target = "m@1", .rings = "canary"};
    json_t *body = NULL;
    char msg[300];
    assert_int_equal(rollout_create_body(&a, &body, msg, sizeof(msg)), 0);
    /* No flag, no policy member; no --supersede, no supersede member. */
    assert_json(body, "{\"model\":\"m\",\"version\":1,\"rings\":[\"canary\"]}");
    json_decref(body);
    /* A single flag gives a policy of that member alone. */
    a.min_devices = "2";
    assert_int_equal(rollout_create_body(&a, &body, msg, sizeof(msg)), 0);
    assert_json(body, "{\"model\":\"m\",\"version\":1,\"rings\":[\"canary\"],"
                      "\"policy\":{\"min_devices\":2}}");
    json_decref(body);
}

static void create_body_names_the_flag_at_fault(void **state)
{
    (void)state;
    const char *gates[] = {"error_rate<=0.1", "drift<=0.2"};
    const struct {
        struct rollout_create_args a;
        const char *says;
    } bad[] = {
        {{.target = NULL, .rings = "a"}, "NAME@VERSION"},
        {{.target = "m", .rings = "a"}, "NAME@VERSION"},
        {{.target = "m@0", .rings = "a"}, "integer >= 1"},
        {{.target = "M@1", .rings = "a"}, "valid name"},
        {{.target = "m@1"}, "--rings"},
        {{.target = "m@1", .rings = ""}, "--rings"},
        {{.target = "m@1", .rings = "a,,b"}, "--rings"},
        {{.target = "m@1", .rings = "a,"}, "--rings"},
        {{.target = "m@1", .rings = ",a"}, "--rings"},
        {{.target = "m@1", .rings = "a, b"}, "--rings: ' b' is not a valid ring name"},
        {{.target = "m@1", .rings = "a,b,a"}, "--rings: ring 'a' is listed twice"},
        {{.target = "m@1", .rings = "a", .success = "1.1"}, "--success:"},
        {{.target = "m@1", .rings = "a", .error = "200%"}, "--error:"},
        {{.target = "m@1", .rings = "a", .min_devices = "0"}, "--min-devices:"},
        {{.target = "m@1", .rings = "a", .soak = "1m"}, "--soak:"},
        {{.target = "m@1", .rings = "a", .deadline = "0"}, "--deadline:"},
        {{.target = "m@1", .rings = "a", .deadline = "99999999999"}, "--deadline:"},
        {{.target = "m@1", .rings = "a", .on_breach = "stop"}, "--on-breach:"},
        {{.target = "m@1", .rings = "a", .slot = "Shadow"}, "--slot: must be production or shadow"},
        {{.target = "m@1", .rings = "a", .gates = gates, .ngates = 2}, "--gate: unknown metric"},
    };
    char msg[300];
    for (size_t i = 0; i < COUNT(bad); i++) {
        json_t *body = (json_t *)&msg; /* must come back NULL */
        msg[0] = '\0';
        assert_int_equal(rollout_create_body(&bad[i].a, &body, msg, sizeof(msg)), EF_EINVAL);
        assert_null(body);
        if (!strstr(msg, bad[i].says))
            fail_msg("case %zu gave \"%s\", wanted \"%s\"", i, msg, bad[i].says);
    }
}

static void final_states_end_a_watch(void **state)
{
    (void)state;
    const char *final[] = {"succeeded", "failed", "aborted", "rolled_back"};
    const char *open[] = {"draft", "running", "paused", "", "Succeeded", "rolled", NULL};
    for (size_t i = 0; i < COUNT(final); i++)
        assert_true(rollout_state_final(final[i]));
    for (size_t i = 0; i < COUNT(open); i++)
        assert_false(rollout_state_final(open[i]));
}

/* Renders a rollout given as JSON text at 2026-11-22T10:05:00Z; returns the
 * malloc'd text. */
static char *render(const char *text)
{
    json_t *doc = json_fixture_load(text);
    int64_t now = 0;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(ef_time_parse("2026-11-22T10:05:00.000Z", &now), 0);
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(rollout_view_write(f, doc, now), 0);
    fclose(f);
    json_decref(doc);
    return buf;
}

static void view_shows_header_policy_and_one_line_per_ring(void **state)
{
    (void)state;
    char *out = render(
        "{\"id\":7,\"model\":\"thyroid\",\"version\":3,\"state\":\"running\",\"reason\":null,"
        "\"policy\":{\"success\":0.9,\"error\":0.05,\"min_devices\":3,\"soak_s\":300,"
        "\"deadline_s\":600,\"on_breach\":\"rollback\",\"gates\":["
        "{\"metric\":\"error_rate\",\"max\":0.05,\"min_inferences\":100},"
        "{\"metric\":\"latency_p99_ms\",\"max\":50,\"min_inferences\":1}]},"
        "\"created_at\":\"2026-11-22T09:58:00.000Z\",\"started_at\":\"2026-11-22T10:00:00.000Z\","
        "\"finished_at\":null,\"rings\":["
        "{\"name\":\"canary\",\"position\":1,\"state\":\"succeeded\",\"devices\":10,"
        "\"counts\":{\"committed\":10},\"started_at\":\"2026-11-22T10:00:00.000Z\","
        "\"finished_at\":\"2026-11-22T10:02:00.000Z\",\"reason\":null},"
        "{\"name\":\"early\",\"position\":2,\"state\":\"running\",\"devices\":20,"
        "\"counts\":{\"committed\":6,\"failed\":1,\"downloading\":3,\"verifying\":1,"
        "\"pending\":2},\"started_at\":\"2026-11-22T10:02:00.000Z\",\"finished_at\":null,"
        "\"reason\":null},"
        "{\"name\":\"broad\",\"position\":3,\"state\":\"pending\",\"devices\":100,\"counts\":{},"
        "\"started_at\":null,\"finished_at\":null,\"reason\":null},"
        "{\"name\":\"lab\",\"position\":4,\"state\":\"pending\",\"devices\":0,\"counts\":{},"
        "\"started_at\":null,\"finished_at\":null,\"reason\":null}]}");
    assert_string_equal(
        out,
        "rollout 7  thyroid@3  running\n"
        "created 2026-11-22T09:58:00.000Z  started 2026-11-22T10:00:00.000Z\n"
        "policy: success >= 90%, error > 5% once 3 finished, soak 5m00s, deadline 10m00s, "
        "on breach rollback\n"
        "gates: error_rate <= 0.05 (min 100 inferences), latency_p99_ms <= 50\n"
        "  canary  succeeded  [####################]  10/10 committed                         "
        "                         need 9, breach at 1 failed\n"
        "  early   running    [######x>>>>.........]  6/20 committed, 1 failed, 3 downloading, "
        "1 verifying, 9 pending  need 18, breach at 2 failed, deadline in 7m00s\n"
        "  broad   pending    [....................]  0/100 committed, 100 pending            "
        "                         need 90, breach at 6 failed\n"
        "  lab     pending    [                    ]  not started\n");
    free(out);
}

static void view_shows_why_a_rollout_ended(void **state)
{
    (void)state;
    char *out = render(
        "{\"id\":\"r-12\",\"model\":\"m\",\"version\":2,\"state\":\"rolled_back\","
        "\"reason\":\"ring early: error threshold\",\"policy\":{\"success\":1.0,\"error\":0.0,"
        "\"min_devices\":1,\"soak_s\":0,\"deadline_s\":600,\"gates\":[],\"on_breach\":\"rollback\"}"
        ","
        "\"created_at\":\"2026-11-22T09:00:00.000Z\",\"started_at\":\"2026-11-22T09:00:01.000Z\","
        "\"finished_at\":\"2026-11-22T09:03:00.000Z\",\"rings\":["
        "{\"name\":\"canary\",\"state\":\"succeeded\",\"devices\":2,"
        "\"counts\":{\"rolled_back\":2},\"reason\":null},"
        "{\"name\":\"early\",\"state\":\"failed\",\"devices\":3,"
        "\"counts\":{\"rolled_back\":2,\"failed\":1},\"reason\":\"error threshold\"}]}");
    assert_string_equal(out, "rollout r-12  m@2  rolled_back  reason: ring early: error threshold\n"
                             "created 2026-11-22T09:00:00.000Z  started 2026-11-22T09:00:01.000Z"
                             "  finished 2026-11-22T09:03:00.000Z\n"
                             "policy: success >= 100%, error > 0%, soak 0s, deadline 10m00s, "
                             "on breach rollback\n"
                             "  canary  succeeded  [xxxxxxxxxxxxxxxxxxxx]  0/2 committed, "
                             "2 rolled_back            need 2, breach at 1 failed\n"
                             "  early   failed     [xxxxxxxxxxxxxxxxxxxx]  0/3 committed, "
                             "1 failed, 2 rolled_back  need 3, breach at 1 failed  "
                             "reason: error threshold\n");
    free(out);
}

static void view_marks_a_shadow_rollout_and_its_promotion(void **state)
{
    (void)state;
    char *out = render("{\"id\":4,\"model\":\"m\",\"version\":2,\"slot\":\"shadow\","
                       "\"promoted_to\":5,\"state\":\"succeeded\",\"reason\":null,\"rings\":[]}");
    assert_non_null(strstr(out, "rollout 4  m@2 (shadow)  succeeded  promoted to rollout 5\n"));
    free(out);
    out = render("{\"id\":5,\"model\":\"m\",\"version\":2,\"slot\":\"production\","
                 "\"promoted_to\":null,\"state\":\"running\",\"reason\":null,\"rings\":[]}");
    assert_non_null(strstr(out, "rollout 5  m@2  running\n"));
    free(out);
}

/* The bar of the single ring of a rendered rollout. */
static void ring_bar(const char *ring, char bar[ROLLOUT_BAR_WIDTH + 3])
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"id\":1,\"model\":\"m\",\"version\":1,\"state\":\"running\",\"rings\":[%s]}", ring);
    char *out = render(text);
    const char *open = strchr(out, '[');
    assert_non_null(open);
    assert_true(strlen(open) >= ROLLOUT_BAR_WIDTH + 2);
    memcpy(bar, open, ROLLOUT_BAR_WIDTH + 2);
    bar[ROLLOUT_BAR_WIDTH + 2] = '\0';
    free(out);
}

static void bars_fill_the_width_and_never_hide_a_failure(void **state)
{
    (void)state;
    char bar[ROLLOUT_BAR_WIDTH + 3];
    /* One failure in a thousand still shows, and the bar stays 20 cells. */
    ring_bar("{\"name\":\"r\",\"state\":\"running\",\"devices\":1000,"
             "\"counts\":{\"committed\":999,\"failed\":1}}",
             bar);
    assert_string_equal(bar, "[###################x]");
    /* Thirds round to the largest remainders first. */
    ring_bar("{\"name\":\"r\",\"state\":\"running\",\"devices\":3,"
             "\"counts\":{\"committed\":1,\"failed\":1,\"active\":1}}",
             bar);
    assert_string_equal(bar, "[#######xxxxxxx>>>>>>]");
    /* Devices without an action yet are pending; unknown actions are in progress. */
    ring_bar("{\"name\":\"r\",\"state\":\"running\",\"devices\":4,"
             "\"counts\":{\"staged\":1,\"committed\":1}}",
             bar);
    assert_string_equal(bar, "[#####>>>>>..........]");
    /* More actions than devices (devices left the ring): the bar counts them all. */
    ring_bar("{\"name\":\"r\",\"state\":\"running\",\"devices\":1,"
             "\"counts\":{\"committed\":1,\"cancelled\":1}}",
             bar);
    assert_string_equal(bar, "[##########xxxxxxxxxx]");
    /* A list of device ids does as well as a count. */
    ring_bar("{\"name\":\"r\",\"state\":\"pending\",\"devices\":[\"a\",\"b\"]}", bar);
    assert_string_equal(bar, "[....................]");
}

static void view_survives_hostile_or_missing_members(void **state)
{
    (void)state;
    /* Control characters cannot drive the terminal; absent members are "-". */
    char *out = render("{\"state\":\"paused\",\"reason\":\"gate\\u001b[2Jbreached\","
                       "\"policy\":{\"on_breach\":\"\\u001b[31m\",\"gates\":[{\"metric\":"
                       "\"\\u001b[1m\",\"max\":1}]},"
                       "\"rings\":[{\"name\":\"can\\nary\",\"state\":7,\"counts\":[1]},{}]}");
    assert_null(strchr(out, '\033'));
    assert_string_equal(out, "rollout -  -@-  paused  reason: gate?[2Jbreached\n"
                             "policy: success >= 100%, error > 0%, soak 0s, deadline 10m00s\n"
                             "gates: ? <= 1\n"
                             "  can?ary  7  [                    ]  no devices\n"
                             "  -        -  [                    ]  no devices\n");
    free(out);
}

static void view_caps_absurd_numbers(void **state)
{
    (void)state;
    /* Counts and spans far beyond any fleet must not overflow (UBSan checks). */
    char *out = render("{\"id\":1,\"model\":\"m\",\"version\":1,\"state\":\"running\","
                       "\"policy\":{\"success\":1e300,\"error\":-5,\"soak_s\":1e300,"
                       "\"deadline_s\":-1e300,\"min_devices\":1e300},\"rings\":["
                       "{\"name\":\"r\",\"state\":\"running\",\"devices\":9223372036854775807,"
                       "\"started_at\":\"2026-11-22T10:00:00.000Z\",\"counts\":{"
                       "\"committed\":9223372036854775807,\"failed\":9223372036854775807,"
                       "\"x\":9223372036854775807,\"active\":-3}}]}");
    assert_non_null(strstr(out, "1000000000/1000000000 committed, 1000000000 failed, "
                                "1000000000 other  need 1000000000, breach at 1 failed, "
                                "deadline passed\n"));
    assert_non_null(strstr(out, "[#######xxxxxxx>>>>>>]"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares_take_fractions_and_percentages),
        cmocka_unit_test(shares_refuse_anything_else),
        cmocka_unit_test(gates_parse_metric_maximum_and_minimum),
        cmocka_unit_test(gates_refuse_malformed_expressions),
        cmocka_unit_test(create_body_carries_every_policy_flag),
        cmocka_unit_test(create_body_leaves_defaults_to_the_server),
        cmocka_unit_test(create_body_names_the_flag_at_fault),
        cmocka_unit_test(final_states_end_a_watch),
        cmocka_unit_test(view_shows_header_policy_and_one_line_per_ring),
        cmocka_unit_test(view_shows_why_a_rollout_ended),
        cmocka_unit_test(view_marks_a_shadow_rollout_and_its_promotion),
        cmocka_unit_test(bars_fill_the_width_and_never_hide_a_failure),
        cmocka_unit_test(view_survives_hostile_or_missing_members),
        cmocka_unit_test(view_caps_absurd_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

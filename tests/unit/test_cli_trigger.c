/*
 * test_cli_trigger.c - the pure part of `edgefleet trigger create`
 * (server/cli/cmd_trigger.c): the flags turned into the body of POST
 * /api/v1/triggers, optional members only when given, and usage errors that
 * name the flag. The calls to the server are checked end to end against a
 * real one (tests/integration/test_triggers.py).
 */
#include "common/ef_error.h"
#include "server/cli/cmd_trigger.h"

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

static void the_least_body_leaves_defaults_to_the_server(void **state)
{
    (void)state;
    struct trigger_create_args a = {
        .model = "thyroid", .metric = "drift", .above = "0.25", .action = "retrain"};
    json_t *body = NULL;
    char msg[200] = "";
    assert_int_equal(trigger_create_body(&a, &body, msg, sizeof(msg)), 0);
    assert_json(body, "{\"model\":\"thyroid\",\"metric\":\"drift\",\"op\":\"above\","
                      "\"threshold\":0.25,\"action\":\"retrain\"}");
    json_decref(body);
}

static void every_flag_becomes_its_member(void **state)
{
    (void)state;
    struct trigger_create_args a = {.model = "thyroid",
                                    .metric = "accuracy",
                                    .below = "-1.5e-1",
                                    .window = "600",
                                    .min_devices = "3",
                                    .ring = "canary",
                                    .aggregation = "median",
                                    .cooldown = "0",
                                    .action = "pause_rollout"};
    json_t *body = NULL;
    char msg[200] = "";
    assert_int_equal(trigger_create_body(&a, &body, msg, sizeof(msg)), 0);
    assert_json(body, "{\"model\":\"thyroid\",\"metric\":\"accuracy\",\"op\":\"below\","
                      "\"threshold\":-0.15,\"action\":\"pause_rollout\",\"window_s\":600,"
                      "\"min_devices\":3,\"ring\":\"canary\",\"aggregation\":\"median\","
                      "\"cooldown_s\":0}");
    json_decref(body);
}

static void bad_flags_are_usage_errors_naming_the_flag(void **state)
{
    (void)state;
    const struct {
        struct trigger_create_args a;
        const char *names; /* a part of the message */
    } bad[] = {
        {{.metric = "drift", .above = "1", .action = "none"}, "--model"},
        {{.model = "Bad Name", .metric = "drift", .above = "1", .action = "none"}, "--model"},
        {{.model = "m", .above = "1", .action = "none"}, "--metric"},
        {{.model = "m", .metric = "drift", .action = "none"}, "exactly one of --above"},
        {{.model = "m", .metric = "drift", .above = "1", .below = "2", .action = "none"},
         "exactly one of --above"},
        {{.model = "m", .metric = "drift", .above = "nan", .action = "none"}, "--above"},
        {{.model = "m", .metric = "drift", .above = "inf", .action = "none"}, "--above"},
        {{.model = "m", .metric = "drift", .below = "1e999", .action = "none"}, "--below"},
        {{.model = "m", .metric = "drift", .above = "0.5x", .action = "none"}, "--above"},
        {{.model = "m", .metric = "drift", .above = "", .action = "none"}, "--above"},
        {{.model = "m", .metric = "drift", .above = "1"}, "--action"},
        {{.model = "m", .metric = "drift", .above = "1", .action = "none", .ring = "A B"},
         "--ring"},
        {{.model = "m", .metric = "drift", .above = "1", .action = "none", .window = "0"},
         "--window"},
        {{.model = "m", .metric = "drift", .above = "1", .action = "none", .window = "604801"},
         "--window"},
        {{.model = "m", .metric = "drift", .above = "1", .action = "none", .min_devices = "0"},
         "--min-devices"},
        {{.model = "m", .metric = "drift", .above = "1", .action = "none", .cooldown = "-1"},
         "--cooldown"},
    };
    for (size_t i = 0; i < COUNT(bad); i++) {
        json_t *body = NULL;
        char msg[200] = "";
        assert_int_equal(trigger_create_body(&bad[i].a, &body, msg, sizeof(msg)), EF_EINVAL);
        assert_null(body);
        if (!strstr(msg, bad[i].names))
            fail_msg("case %zu: '%s' does not mention %s", i, msg, bad[i].names);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_least_body_leaves_defaults_to_the_server),
        cmocka_unit_test(every_flag_becomes_its_member),
        cmocka_unit_test(bad_flags_are_usage_errors_naming_the_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

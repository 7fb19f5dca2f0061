/* test_topic.c - device ids, names and the MQTT topics built from them. */
#include "common/ef_error.h"
#include "common/topic.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const char *const leaves[] = {"desired", "cmd", "reported", "telemetry", "status"};
#define LEAF_COUNT (sizeof(leaves) / sizeof(leaves[0]))

/* A string of n copies of c (n < 100). */
static const char *repeat(char c, size_t n, char *buf)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void device_ids_of_the_allowed_alphabet_are_valid(void **state)
{
    (void)state;
    char buf[100];
    assert_true(ef_device_id_valid("dev-01"));
    assert_true(ef_device_id_valid("Pump_7.floor-2"));
    assert_true(ef_device_id_valid("a"));
    assert_true(ef_device_id_valid("0"));
    assert_true(ef_device_id_valid("_x"));
    assert_true(ef_device_id_valid("x."));
    assert_true(ef_device_id_valid(repeat('d', 64, buf)));
}

static void device_ids_outside_the_rule_are_invalid(void **state)
{
    (void)state;
    char buf[100];
    static const char *const bad[] = {"",    "+",  "#",    "a/b", "dev+", "dev#",
                                      ".x",  "..", "-x",   "a b", "a\tb", "dev\n",
                                      "a$b", "é",  "a\\b", "a:b", "%2F"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ef_device_id_valid(bad[i]))
            fail_msg("accepted device id \"%s\"", bad[i]);
    assert_false(ef_device_id_valid(repeat('d', 65, buf)));
    assert_false(ef_device_id_valid(NULL));
}

static void names_are_lowercase_and_start_alphanumeric(void **state)
{
    (void)state;
    char buf[100];
    assert_true(ef_name_valid("classifier"));
    assert_true(ef_name_valid("model-2.v_1"));
    assert_true(ef_name_valid("9lives"));
    assert_true(ef_name_valid(repeat('m', 64, buf)));
    static const char *const bad[] = {"", "Model", "_m", ".m", "-m", "m m", "m/x", "m+", "m#"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ef_name_valid(bad[i]))
            fail_msg("accepted name \"%s\"", bad[i]);
    assert_false(ef_name_valid(repeat('m', 65, buf)));
    assert_false(ef_name_valid(NULL));
}

static void device_topics_follow_the_design(void **state)
{
    (void)state;
    char topic[EF_TOPIC_SIZE];
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev-01", "desired"), 0);
    assert_string_equal(topic, "edgefleet/v1/devices/dev-01/desired");
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev-01", "telemetry"), 0);
    assert_string_equal(topic, "edgefleet/v1/devices/dev-01/telemetry");
}

static void device_topic_refuses_bad_ids_and_leaves(void **state)
{
    (void)state;
    char topic[EF_TOPIC_SIZE];
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "+", "desired"), EF_EINVAL);
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "a/b", "desired"), EF_EINVAL);
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev", "config"), EF_EINVAL);
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev", "#"), EF_EINVAL);
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev", "desired/x"), EF_EINVAL);
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev", NULL), EF_EINVAL);
}

static void longest_device_topic_fits_the_topic_size(void **state)
{
    (void)state;
    char topic[EF_TOPIC_SIZE], id[100];
    assert_int_equal(ef_topic_device(topic, sizeof(topic), repeat('d', 64, id), "telemetry"), 0);
}

static void device_topic_too_long_for_the_buffer_is_too_big(void **state)
{
    (void)state;
    char topic[20];
    assert_int_equal(ef_topic_device(topic, sizeof(topic), "dev", "desired"), EF_ETOOBIG);
}

static void event_topics_follow_the_design(void **state)
{
    (void)state;
    char topic[EF_TOPIC_SIZE];
    assert_int_equal(ef_topic_event(topic, sizeof(topic), "retrain"), 0);
    assert_string_equal(topic, "edgefleet/v1/events/retrain");
    assert_int_equal(ef_topic_event(topic, sizeof(topic), "Retrain"), EF_EINVAL);
    assert_int_equal(ef_topic_event(topic, sizeof(topic), "a/b"), EF_EINVAL);
    assert_int_equal(ef_topic_event(topic, sizeof(topic), "#"), EF_EINVAL);
    char tiny[10];
    assert_int_equal(ef_topic_event(tiny, sizeof(tiny), "retrain"), EF_ETOOBIG);
}

static void parse_round_trips_every_leaf(void **state)
{
    (void)state;
    char topic[EF_TOPIC_SIZE], id[EF_DEVICE_ID_MAX + 1], long_id[100];
    const char *ids[] = {"dev-01", "A.b_c", repeat('z', 64, long_id)};
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
        for (size_t i = 0; i < LEAF_COUNT; i++) {
            const char *leaf = NULL;
            assert_int_equal(ef_topic_device(topic, sizeof(topic), ids[k], leaves[i]), 0);
            assert_int_equal(ef_topic_parse_device(topic, id, &leaf), 0);
            assert_string_equal(id, ids[k]);
            assert_string_equal(leaf, leaves[i]);
            assert_true(leaf > topic && leaf < topic + strlen(topic));
        }
    }
}

static void parse_rejects_wildcards_unknown_leaves_and_other_trees(void **state)
{
    (void)state;
    char id[EF_DEVICE_ID_MAX + 1], long_topic[200], long_id[100];
    snprintf(long_topic, sizeof(long_topic), "edgefleet/v1/devices/%s/desired",
             repeat('d', 65, long_id));
    const char *bad[] = {
        "",
        "edgefleet/v1/devices/+/desired",
        "edgefleet/v1/devices/#",
        "edgefleet/v1/devices/dev/#",
        "edgefleet/v1/devices/dev/+",
        "edgefleet/v1/devices/dev/config",
        "edgefleet/v1/devices/dev/desired/extra",
        "edgefleet/v1/devices/dev/desired/",
        "edgefleet/v1/devices/dev",
        "edgefleet/v1/devices/dev/",
        "edgefleet/v1/devices//desired",
        "edgefleet/v1/devices/.hidden/desired",
        "edgefleet/v2/devices/dev/desired",
        "edgefleet/v1/events/retrain",
        "/edgefleet/v1/devices/dev/desired",
        long_topic,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *leaf = NULL;
        if (ef_topic_parse_device(bad[i], id, &leaf) != EF_EINVAL)
            fail_msg("parsed topic \"%s\"", bad[i]);
        assert_null(leaf);
    }
    const char *leaf = NULL;
    assert_int_equal(ef_topic_parse_device(NULL, id, &leaf), EF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(device_ids_of_the_allowed_alphabet_are_valid),
        cmocka_unit_test(device_ids_outside_the_rule_are_invalid),
        cmocka_unit_test(names_are_lowercase_and_start_alphanumeric),
        cmocka_unit_test(device_topics_follow_the_design),
        cmocka_unit_test(device_topic_refuses_bad_ids_and_leaves),
        cmocka_unit_test(longest_device_topic_fits_the_topic_size),
        cmocka_unit_test(device_topic_too_long_for_the_buffer_is_too_big),
        cmocka_unit_test(event_topics_follow_the_design),
        cmocka_unit_test(parse_round_trips_every_leaf),
        cmocka_unit_test(parse_rejects_wildcards_unknown_leaves_and_other_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_cli_args.c - the CLI's argument helpers (server/cli/args.c): option
 * tables, NAME@VERSION, key=value, integers and booleans.
 */
#include "common/ef_error.h"
#include "server/cli/args.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void name_version_parses_both_forms(void **state)
{
    (void)state;
    char name[ARGS_NAME_SIZE], msg[200];
    int64_t v = -1;
    assert_int_equal(args_name_version("thyroid@12", true, name, &v, msg, sizeof(msg)), 0);
    assert_string_equal(name, "thyroid");
    assert_int_equal(v, 12);
    assert_int_equal(args_name_version("my-model.v2_x", false, name, &v, msg, sizeof(msg)), 0);
    assert_string_equal(name, "my-model.v2_x");
    assert_int_equal(v, 0);
}

static void name_version_refuses_malformed_input(void **state)
{
    (void)state;
    char name[ARGS_NAME_SIZE], msg[200];
    int64_t v = 0;
    const char *bad[] = {"",
                         "@3",
                         "m@",
                         "m@0",
                         "m@-1",
                         "m@1x",
                         "m@ 1",
                         "m@+1",
                         "Model@1",
                         "-m@1",
                         "m@1@2",
                         "m/x@1",
                         "m@99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = '\0';
        assert_int_equal(args_name_version(bad[i], false, name, &v, msg, sizeof(msg)), EF_EINVAL);
        assert_true(msg[0] != '\0');
    }
    /* A version is required for assign. */
    assert_int_equal(args_name_version("m", true, name, &v, msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "NAME@VERSION"));
    /* 65 characters is one too many. */
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_int_equal(args_name_version(long_name, false, name, &v, msg, sizeof(msg)), EF_EINVAL);
    long_name[64] = '\0';
    assert_int_equal(args_name_version(long_name, false, name, &v, msg, sizeof(msg)), 0);
}

static void kv_splits_at_the_first_equals_sign(void **state)
{
    (void)state;
    char key[ARGS_KEY_MAX + 1], msg[200];
    const char *value = NULL;
    assert_int_equal(args_kv_split("site=berlin", key, &value, msg, sizeof(msg)), 0);
    assert_string_equal(key, "site");
    assert_string_equal(value, "berlin");
    assert_int_equal(args_kv_split("expr=a=b", key, &value, msg, sizeof(msg)), 0);
    assert_string_equal(key, "expr");
    assert_string_equal(value, "a=b");
    assert_int_equal(args_kv_split("empty=", key, &value, msg, sizeof(msg)), 0);
    assert_string_equal(value, "");
}

static void kv_refuses_malformed_pairs(void **state)
{
    (void)state;
    char key[ARGS_KEY_MAX + 1], msg[200], long_key[100];
    const char *value = NULL;
    assert_int_equal(args_kv_split("novalue", key, &value, msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(args_kv_split("=v", key, &value, msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(args_kv_split("k=line\nbreak", key, &value, msg, sizeof(msg)), EF_EINVAL);
    memset(long_key, 'k', 65);
    strcpy(long_key + 65, "=v");
    assert_int_equal(args_kv_split(long_key, key, &value, msg, sizeof(msg)), EF_EINVAL);
}

static void kv_add_builds_an_object_and_refuses_duplicates(void **state)
{
    (void)state;
    char msg[200];
    json_t *obj = json_object();
    assert_int_equal(args_kv_add(obj, "site=berlin", msg, sizeof(msg)), 0);
    assert_int_equal(args_kv_add(obj, "hw=pi4", msg, sizeof(msg)), 0);
    assert_string_equal(json_string_value(json_object_get(obj, "site")), "berlin");
    assert_string_equal(json_string_value(json_object_get(obj, "hw")), "pi4");
    assert_int_equal(args_kv_add(obj, "site=paris", msg, sizeof(msg)), EF_EINVAL);
    assert_non_null(strstr(msg, "site"));
    assert_int_equal(args_kv_add(obj, "bad\xff=x", msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(args_kv_add(obj, "k=\xc3\x28", msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(json_object_size(obj), 2);
    json_decref(obj);
}

static void integers_and_booleans_are_strict(void **state)
{
    (void)state;
    char msg[200];
    int64_t v = 0;
    bool b = false;
    assert_int_equal(args_int("1000", 1, 1000, &v, msg, sizeof(msg)), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(args_int("-5", -10, 10, &v, msg, sizeof(msg)), 0);
    assert_int_equal(v, -5);
    const char *bad[] = {"1001", "0", "", " 5", "+5", "5 ", "5x", "0x10", "1e3", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(args_int(bad[i], 1, 1000, &v, msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(args_int("99999999999999999999", 1, INT64_MAX, &v, msg, sizeof(msg)),
                     EF_EINVAL);
    assert_int_equal(args_bool("true", &b, msg, sizeof(msg)), 0);
    assert_true(b);
    assert_int_equal(args_bool("false", &b, msg, sizeof(msg)), 0);
    assert_false(b);
    assert_int_equal(args_bool("yes", &b, msg, sizeof(msg)), EF_EINVAL);
    assert_int_equal(args_bool("TRUE", &b, msg, sizeof(msg)), EF_EINVAL);
}

enum { O_RING, O_TAG, O_JSON, O_N };

static void parse_splits_options_and_positionals(void **state)
{
    (void)state;
    struct args_opt opts[O_N] = {
        [O_RING] = {.name = "ring", .metavar = "R"},
        [O_TAG] = {.name = "tag", .metavar = "k=v", .repeat = true},
        [O_JSON] = {.name = "json"},
    };
    char *argv[] = {"dev-1", "--ring", "canary", "--tag=a=1",      "--json",
                    "--tag", "b=2",    "--",     "--not-an-option"};
    const char *pos[3];
    size_t npos = 0;
    bool help = true;
    char msg[200] = "";
    assert_int_equal(args_parse(9, argv, opts, O_N, pos, 3, &npos, &help, 0, msg, sizeof(msg)), 0);
    assert_false(help);
    assert_int_equal(npos, 2);
    assert_string_equal(pos[0], "dev-1");
    assert_string_equal(pos[1], "--not-an-option");
    assert_string_equal(args_value(&opts[O_RING]), "canary");
    assert_int_equal(opts[O_TAG].count, 2);
    assert_string_equal(opts[O_TAG].values[0], "a=1");
    assert_string_equal(opts[O_TAG].values[1], "b=2");
    assert_int_equal(opts[O_JSON].count, 1);
    args_opts_release(opts, O_N);
    assert_int_equal(opts[O_TAG].count, 0);
    assert_null(args_value(&opts[O_TAG]));
}

static void parse_refuses_what_it_does_not_know(void **state)
{
    (void)state;
    struct {
        int argc;
        char *argv[4];
        const char *needle;
    } cases[] = {
        {1, {"--bogus"}, "unknown option '--bogus'"},
        {1, {"-x"}, "unknown option '-x'"},
        {1, {"--ring"}, "needs a value"},
        {4, {"--ring", "a", "--ring", "b"}, "more than once"},
        {1, {"--json=1"}, "takes no value"},
        {2, {"one", "two"}, "unexpected argument 'two'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct args_opt opts[O_N] = {
            [O_RING] = {.name = "ring", .metavar = "R"},
            [O_TAG] = {.name = "tag", .metavar = "k=v", .repeat = true},
            [O_JSON] = {.name = "json"},
        };
        const char *pos[1];
        size_t npos = 0;
        bool help = false;
        char msg[200] = "";
        assert_int_equal(args_parse(cases[i].argc, cases[i].argv, opts, O_N, pos, 1, &npos, &help,
                                    0, msg, sizeof(msg)),
                         EF_EINVAL);
        assert_non_null(strstr(msg, cases[i].needle));
        args_opts_release(opts, O_N);
    }
}

static void help_stops_parsing_and_global_mode_stops_at_the_noun(void **state)
{
    (void)state;
    struct args_opt opts[O_N] = {
        [O_RING] = {.name = "ring", .metavar = "R"},
        [O_TAG] = {.name = "tag", .metavar = "k=v", .repeat = true},
        [O_JSON] = {.name = "json"},
    };
    char *with_help[] = {"--help", "--bogus"};
    size_t npos = 0;
    bool help = false;
    char msg[200] = "";
    assert_int_equal(
        args_parse(2, with_help, opts, O_N, NULL, 0, &npos, &help, 0, msg, sizeof(msg)), 0);
    assert_true(help);

    char *globals[] = {"--json", "--ring", "r", "model", "list", "--json"};
    assert_int_equal(args_parse(6, globals, opts, O_N, NULL, 0, &npos, &help,
                                ARGS_STOP_AT_POSITIONAL, msg, sizeof(msg)),
                     0);
    assert_false(help);
    assert_int_equal(npos, 3); /* "model" is the first argument left */
    assert_int_equal(opts[O_JSON].count, 1);
    args_opts_release(opts, O_N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(name_version_parses_both_forms),
        cmocka_unit_test(name_version_refuses_malformed_input),
        cmocka_unit_test(kv_splits_at_the_first_equals_sign),
        cmocka_unit_test(kv_refuses_malformed_pairs),
        cmocka_unit_test(kv_add_builds_an_object_and_refuses_duplicates),
        cmocka_unit_test(integers_and_booleans_are_strict),
        cmocka_unit_test(parse_splits_options_and_positionals),
        cmocka_unit_test(parse_refuses_what_it_does_not_know),
        cmocka_unit_test(help_stops_parsing_and_global_mode_stops_at_the_noun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

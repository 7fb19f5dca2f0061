/*
 * test_sim_options.c - edgefleet-sim's command line, the parts its devices
 * play, the drift profile and its file-descriptor budget.
 */
#include "tests/sim/sim.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

static FILE *sink(void)
{
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    return f;
}

static int parse(struct sim_config *cfg, int argc, char **argv)
{
    FILE *f = sink();
    sim_config_defaults(cfg);
    int rc = sim_config_parse(argc, argv, cfg, f, f);
    fclose(f);
    return rc;
}

#define REQUIRED                                                                                   \
    "--server", "http://127.0.0.1:1", "--mqtt", "mqtt://127.0.0.1:2", "--enroll-token", "et_x"

static void test_parse_full(void **state)
{
    (void)state;
    struct sim_config cfg;
    char *argv[] = {
        REQUIRED, "--devices",     "250",  "--tag",           "site=sim", "--tag",
        "rack=7", "--fail-share",  "0.1",  "--fail-mode",     "trial",    "--slow-share",
        "0.05",   "--slow-bps",    "4096", "--offline-share", "0.02",     "--offline-for",
        "0",      "--drift-shift", "0.5",  "--infer-cost-us", "100",      "--keep"};
    assert_int_equal(parse(&cfg, (int)(sizeof(argv) / sizeof(argv[0])), argv), 0);
    assert_int_equal(cfg.devices, 250);
    assert_string_equal(cfg.server_url, "http://127.0.0.1:1");
    assert_string_equal(cfg.tags, "{\"site\":\"sim\",\"rack\":\"7\"}");
    assert_true(cfg.fail_share == 0.1);
    assert_int_equal(cfg.fail_mode, SIM_FAIL_TRIAL);
    assert_int_equal(cfg.slow_bps, 4096);
    assert_true(cfg.offline_for_s == 0);
    assert_int_equal(cfg.infer_cost_us, 100);
    assert_true(cfg.keep);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    struct sim_config cfg;
    char *missing[] = {"--devices", "10"};
    assert_int_equal(parse(&cfg, 2, missing), EF_EINVAL);
    char *zero[] = {REQUIRED, "--devices", "0"};
    assert_int_equal(parse(&cfg, 8, zero), EF_EINVAL);
    char *too_many[] = {REQUIRED, "--devices", "100001"};
    assert_int_equal(parse(&cfg, 8, too_many), EF_EINVAL);
    char *share[] = {REQUIRED, "--fail-share", "1.5"};
    assert_int_equal(parse(&cfg, 8, share), EF_EINVAL);
    char *mode[] = {REQUIRED, "--fail-mode", "explode"};
    assert_int_equal(parse(&cfg, 8, mode), EF_EINVAL);
    char *tag[] = {REQUIRED, "--tag", "novalue"};
    assert_int_equal(parse(&cfg, 8, tag), EF_EINVAL);
    char *prefix[] = {REQUIRED, "--prefix", "bad/prefix"};
    assert_int_equal(parse(&cfg, 8, prefix), EF_EINVAL);
    char *unknown[] = {REQUIRED, "--frobnicate", "1"};
    assert_int_equal(parse(&cfg, 8, unknown), EF_EINVAL);
    char *dangling[] = {REQUIRED, "--devices"};
    assert_int_equal(parse(&cfg, 7, dangling), EF_EINVAL);
    char *help[] = {"--help"};
    assert_int_equal(parse(&cfg, 1, help), 1);
}

/* Each share is exactly floor(n * share) devices, spread over the fleet,
 * and a failing device plays no other part. */
static void test_roles(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_defaults(&cfg);
    cfg.devices = 200;
    cfg.fail_share = 0.1;
    cfg.slow_share = 0.05;
    cfg.offline_share = 0.25;
    assert_int_equal(sim_role_count(&cfg, true, false, false), 20);
    assert_int_equal(sim_role_count(&cfg, false, true, false), 10);
    unsigned offline = sim_role_count(&cfg, false, false, true);
    assert_true(offline >= 45 && offline <= 50); /* minus those that fail */
    unsigned first_half = 0;
    for (unsigned i = 0; i < cfg.devices; i++) {
        struct sim_role r = sim_role(&cfg, i);
        if (r.failing) {
            assert_false(r.slow);
            assert_false(r.offline);
            first_half += i < 100;
        }
    }
    assert_int_equal(first_half, 10);
    cfg.fail_share = 0;
    assert_int_equal(sim_role_count(&cfg, true, false, false), 0);
    cfg.fail_share = 1;
    assert_int_equal(sim_role_count(&cfg, true, false, false), 200);
}

static void test_drift_profile(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_defaults(&cfg);
    assert_true(sim_drift_at(&cfg, 100) == 0);
    cfg.drift_shift = 2;
    cfg.drift_after_s = 10;
    assert_true(sim_drift_at(&cfg, 9.9) == 0);
    assert_true(sim_drift_at(&cfg, 10) == 2); /* a step */
    cfg.drift_ramp_s = 20;
    assert_true(sim_drift_at(&cfg, 20) == 1);
    assert_true(sim_drift_at(&cfg, 30) == 2);
    assert_true(sim_drift_at(&cfg, 1000) == 2);
}

static void test_ids_and_budget(void **state)
{
    (void)state;
    struct sim_config cfg;
    char id[80];
    sim_config_defaults(&cfg);
    assert_int_equal(sim_device_id(&cfg, 0, id, sizeof(id)), 0);
    assert_string_equal(id, "sim-00001");
    cfg.first = 100000;
    assert_int_equal(sim_device_id(&cfg, 41, id, sizeof(id)), 0);
    assert_string_equal(id, "sim-100041");
    assert_int_equal(sim_device_id(&cfg, 0, id, 6), EF_ETOOBIG);
    cfg.devices = 10000;
    cfg.http_group = 100;
    cfg.http_conns = 4;
    assert_int_equal(sim_http_clients(&cfg), 100);
    assert_true(sim_fd_budget(&cfg) > 3 * 10000 + 100 * 4);
    assert_true(sim_fd_budget(&cfg) < 31000);
    cfg.devices = 101;
    assert_int_equal(sim_http_clients(&cfg), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),     cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_roles),          cmocka_unit_test(test_drift_profile),
        cmocka_unit_test(test_ids_and_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

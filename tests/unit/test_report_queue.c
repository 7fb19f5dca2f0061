/* test_report_queue.c - the report ingest: `reported` and `status` payloads
 * queued by submit are parsed and applied by the writer thread in batches,
 * in the order each device sent them; malformed ones, those of devices that
 * are not enrolled and those that do not fit the queue are counted and
 * change nothing; stop drains the queue. */
#define _XOPEN_SOURCE 700 /* nftw(), for db_fixture.h */
#include "server/report_queue.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/report.h"
#include "server/server.h"
#include "common/ef_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"

/* The states a deployment goes through, in the order an agent reports them. */
static const char *const steps[] = {"notified",  "downloading", "verifying", "staged",
                                    "self-test", "active",      "committed"};
#define STEPS (sizeof(steps) / sizeof(steps[0]))

static struct db *enrolled(void **state, int devices)
{
    struct db_fixture *f = *state;
    char id[32], token_hash[65];
    for (int i = 0; i < devices; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        snprintf(token_hash, sizeof(token_hash), "%064x", (unsigned)i + 1);
        assert_int_equal(db_device_create(f->db, id, token_hash, "default", NULL, 0), 0);
    }
    return f->db;
}

static int submit(struct report_queue *q, const char *device, const char *state, int64_t version,
                  int64_t at)
{
    char payload[256];
    int n = snprintf(payload, sizeof(payload),
                     "{\"slot\":\"production\",\"model\":\"thyroid\",\"version\":%lld,"
                     "\"state\":\"%s\",\"seq\":1}",
                     (long long)version, state);
    return report_queue_submit(q, REPORT_TOPIC_REPORTED, device, payload, (size_t)n, at);
}

/* The device's last report of its production slot: state and version. */
static void last_report(struct db *db, const char *device, char *state, size_t size,
                        int64_t *version)
{
    json_t *doc = NULL, *p;
    assert_int_equal(db_device_get(db, device, &doc), 0);
    p = json_object_get(json_object_get(doc, "reported"), "production");
    state[0] = '\0';
    *version = 0;
    if (p) {
        snprintf(state, size, "%s", json_string_value(json_object_get(p, "state")));
        *version = json_integer_value(json_object_get(p, "version"));
    }
    json_decref(doc);
}

static void reports_are_applied_in_batches(void **state)
{
    struct db *db = enrolled(state, 1);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    report_queue_config_default(&cfg);
    cfg.batch_max = 10;
    cfg.batch_ms = 60000; /* only a full batch or the flush makes them due */
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    for (int i = 0; i < 25; i++)
        assert_int_equal(submit(q, "dev-0", "downloading", i + 1, 1000 + i), 0);
    report_queue_flush(q);
    assert_int_equal(atomic_load(&stats.report_received), 25);
    assert_int_equal(atomic_load(&stats.report_stored), 25);
    /* Two full batches, and the flush's remainder: three transactions, not 25. */
    assert_int_equal(atomic_load(&stats.report_batches), 3);
    assert_int_equal(atomic_load(&stats.report_queue_depth), 0);
    char st[16];
    int64_t version;
    last_report(db, "dev-0", st, sizeof(st), &version);
    assert_int_equal(version, 25);
    report_queue_stop(q);
}

static void each_device_ends_in_its_last_report(void **state)
{
    enum { DEVICES = 40 };
    struct db *db = enrolled(state, DEVICES);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    char id[32], st[16];
    int64_t version;
    report_queue_config_default(&cfg);
    cfg.batch_max = 7; /* batches cut through every device's sequence */
    cfg.batch_ms = 0;
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    /* Interleaved as a rollout's burst arrives: every device's first step,
     * then every device's second, and so on. */
    for (size_t s = 0; s < STEPS; s++)
        for (int i = 0; i < DEVICES; i++) {
            snprintf(id, sizeof(id), "dev-%d", i);
            assert_int_equal(submit(q, id, steps[s], 2, 1000 + (int64_t)s), 0);
        }
    report_queue_flush(q);
    assert_int_equal(atomic_load(&stats.report_stored), DEVICES * STEPS);
    assert_true(atomic_load(&stats.report_batches) >= DEVICES * STEPS / 7);
    for (int i = 0; i < DEVICES; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        last_report(db, id, st, sizeof(st), &version);
        assert_string_equal(st, "committed");
        assert_int_equal(version, 2);
    }
    /* A later failure of one device is applied after its commit, as sent. */
    assert_int_equal(submit(q, "dev-3", "rolled_back", 2, 2000), 0);
    report_queue_flush(q);
    last_report(db, "dev-3", st, sizeof(st), &version);
    assert_string_equal(st, "rolled_back");
    report_queue_stop(q);
}

static void malformed_and_unknown_reports_change_nothing(void **state)
{
    struct db *db = enrolled(state, 1);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    char st[16], big[REPORT_MAX_BYTES + 1];
    int64_t version;
    report_queue_config_default(&cfg);
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    assert_int_equal(submit(q, "dev-0", "committed", 1, 1000), 0);
    report_queue_flush(q);
    /* Queued, then refused by the writer's parser. */
    assert_int_equal(submit(q, "dev-0", "exploded", 2, 1001), 0);
    assert_int_equal(report_queue_submit(q, REPORT_TOPIC_REPORTED, "dev-0", "not json", 8, 1002),
                     0);
    assert_int_equal(report_queue_submit(q, REPORT_TOPIC_REPORTED, "dev-0", "", 0, 1003), 0);
    /* Refused at the door. */
    assert_int_equal(submit(q, "../etc", "failed", 2, 1004), EF_EINVAL);
    memset(big, ' ', sizeof(big));
    assert_int_equal(report_queue_submit(q, REPORT_TOPIC_REPORTED, "dev-0", big, sizeof(big), 1005),
                     EF_ETOOBIG);
    /* Well formed, from a device that is not enrolled. */
    assert_int_equal(submit(q, "dev-9", "failed", 2, 1006), 0);
    report_queue_flush(q);
    assert_int_equal(atomic_load(&stats.report_malformed), 5);
    assert_int_equal(atomic_load(&stats.report_ignored), 1);
    assert_int_equal(atomic_load(&stats.report_stored), 1);
    assert_int_equal(atomic_load(&stats.report_failed), 0);
    last_report(db, "dev-0", st, sizeof(st), &version);
    assert_string_equal(st, "committed");
    assert_int_equal(version, 1);
    report_queue_stop(q);
}

static bool online(struct db *db, const char *device)
{
    json_t *doc = NULL;
    assert_int_equal(db_device_get(db, device, &doc), 0);
    bool yes = json_is_true(json_object_get(doc, "online"));
    json_decref(doc);
    return yes;
}

static int status(struct report_queue *q, const char *device, const char *word)
{
    return report_queue_submit(q, REPORT_TOPIC_STATUS, device, word, strlen(word), 1000);
}

static void status_and_reports_are_applied_in_arrival_order(void **state)
{
    struct db *db = enrolled(state, 1);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    char st[16];
    int64_t version;
    report_queue_config_default(&cfg);
    cfg.batch_max = 3; /* batches cut through the sequence */
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(status(q, "dev-0", i % 2 ? "offline" : "online"), 0);
        assert_int_equal(submit(q, "dev-0", steps[i % STEPS], 1, 1000 + i), 0);
    }
    assert_int_equal(status(q, "dev-0", "online"), 0);
    report_queue_flush(q);
    assert_true(online(db, "dev-0"));
    last_report(db, "dev-0", st, sizeof(st), &version);
    assert_string_equal(st, steps[9 % STEPS]);
    assert_int_equal(status(q, "dev-0", "offline"), 0);
    /* A cleared retained word is not a status, a bad one is malformed. */
    assert_int_equal(status(q, "dev-0", ""), 0);
    assert_int_equal(status(q, "dev-0", "ONLINE"), 0);
    assert_int_equal(status(q, "ghost", "online"), 0);
    report_queue_flush(q);
    assert_false(online(db, "dev-0"));
    assert_int_equal(atomic_load(&stats.report_received), 25);
    assert_int_equal(atomic_load(&stats.report_stored), 22);
    assert_int_equal(atomic_load(&stats.report_malformed), 1);
    assert_int_equal(atomic_load(&stats.report_ignored), 1);
    report_queue_stop(q);
}

static void a_full_queue_drops_instead_of_blocking(void **state)
{
    struct db *db = enrolled(state, 1);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    uint64_t queued = 0, dropped = 0;
    report_queue_config_default(&cfg);
    cfg.queue_max = 4;
    cfg.batch_max = 4;
    cfg.batch_ms = 60000;
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    for (int i = 0; i < 50; i++) {
        int rc = submit(q, "dev-0", "downloading", i + 1, 1000 + i);
        assert_true(rc == 0 || rc == EF_EBUSY);
        queued += rc == 0;
        dropped += rc == EF_EBUSY;
    }
    report_queue_flush(q);
    assert_int_equal(atomic_load(&stats.report_dropped), dropped);
    assert_int_equal(atomic_load(&stats.report_received), queued);
    assert_int_equal(atomic_load(&stats.report_stored), queued);
    assert_int_equal(queued + dropped, 50);
    report_queue_stop(q);
}

static void stop_drains_the_queue(void **state)
{
    struct db *db = enrolled(state, 1);
    struct server_stats stats = {0};
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    char st[16];
    int64_t version;
    report_queue_config_default(&cfg);
    cfg.batch_ms = 60000; /* only stop makes these due */
    assert_int_equal(report_queue_start(db, &cfg, &stats, &q), 0);
    for (size_t s = 0; s < STEPS; s++)
        assert_int_equal(submit(q, "dev-0", steps[s], 3, 1000 + (int64_t)s), 0);
    report_queue_stop(q);
    assert_int_equal(atomic_load(&stats.report_stored), STEPS);
    last_report(db, "dev-0", st, sizeof(st), &version);
    assert_string_equal(st, "committed");
    assert_int_equal(version, 3);
}

static void bad_configs_are_refused(void **state)
{
    struct db *db = enrolled(state, 0);
    struct report_queue_config cfg;
    struct report_queue *q = NULL;
    report_queue_config_default(&cfg);
    cfg.batch_max = cfg.queue_max + 1;
    assert_int_equal(report_queue_start(db, &cfg, NULL, &q), EF_EINVAL);
    report_queue_config_default(&cfg);
    cfg.queue_max_bytes = REPORT_MAX_BYTES - 1;
    assert_int_equal(report_queue_start(db, &cfg, NULL, &q), EF_EINVAL);
    report_queue_config_default(&cfg);
    cfg.batch_ms = -1;
    assert_int_equal(report_queue_start(db, &cfg, NULL, &q), EF_EINVAL);
    assert_null(q);
    assert_int_equal(submit(NULL, "dev-0", "committed", 1, 1), EF_EUNSUPPORTED);
    report_queue_flush(NULL);
    report_queue_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(reports_are_applied_in_batches),
        DB_TEST(each_device_ends_in_its_last_report),
        DB_TEST(malformed_and_unknown_reports_change_nothing),
        DB_TEST(status_and_reports_are_applied_in_arrival_order),
        DB_TEST(a_full_queue_drops_instead_of_blocking),
        DB_TEST(stop_drains_the_queue),
        DB_TEST(bad_configs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

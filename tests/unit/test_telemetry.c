/* test_telemetry.c - the telemetry ingest: payloads queued by submit are
 * parsed and written in batches by the writer thread together with their
 * rollups, malformed ones and those that do not fit the queue (in windows or
 * bytes) are counted, stop drains the queue, retention expires old windows. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "server/telemetry.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_telemetry.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define HASH(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static const char window_json[] =
    "{\"window_start\":\"2026-11-22T10:00:00.000Z\",\"window_s\":60.0,\"model\":\"m@1\","
    "\"inferences\":10,\"errors\":1,\"latency_ms\":{\"p50\":1.0,\"p95\":2.0,\"p99\":3.0,"
    "\"max\":4.0},\"feedback\":0,\"accuracy\":null,\"rss_bytes\":1000,\"cpu_s\":0.1}";

struct fixture {
    char dir[64];
    struct db *db;
    struct server_stats stats;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[128];
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ef_test_telemetry.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/edgefleet.db", f->dir);
    assert_int_equal(db_open(path, &f->db), 0);
    assert_int_equal(db_migrate(f->db, NULL, NULL), 0);
    assert_int_equal(db_device_create(f->db, "dev-1", HASH("a1"), "default", NULL, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int64_t stored_rows(struct db *db)
{
    struct db_telemetry_filter all = {.limit = DB_TELEMETRY_LIMIT_MAX};
    json_t *rows = NULL;
    assert_int_equal(db_telemetry_query(db, &all, &rows), 0);
    int64_t n = (int64_t)json_array_size(rows);
    json_decref(rows);
    return n;
}

static int submit(struct telemetry *t, const char *device)
{
    return telemetry_submit(t, device, window_json, strlen(window_json), ef_now_ms());
}

static void windows_are_written_in_batches(void **state)
{
    struct fixture *f = *state;
    struct telemetry_config cfg;
    struct telemetry *t = NULL;
    telemetry_config_default(&cfg);
    cfg.batch_max = 100;
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(submit(t, "dev-1"), 0);
    assert_int_equal(submit(t, "stranger"), 0); /* queued, then not stored */
    telemetry_flush(t);
    assert_int_equal(stored_rows(f->db), 1000);
    assert_int_equal(atomic_load(&f->stats.telemetry_received), 1001);
    assert_int_equal(atomic_load(&f->stats.telemetry_stored), 1000);
    assert_int_equal(atomic_load(&f->stats.telemetry_ignored), 1);
    assert_int_equal(atomic_load(&f->stats.telemetry_queue_depth), 0);
    /* At most 100 a transaction: at least 11 of them. */
    assert_true(atomic_load(&f->stats.telemetry_batches) >= 11);
    assert_true(atomic_load(&f->stats.telemetry_batches) <= 1001);
    telemetry_stop(t);
}

static void a_lone_window_waits_at_most_batch_ms(void **state)
{
    struct fixture *f = *state;
    struct telemetry_config cfg;
    struct telemetry *t = NULL;
    telemetry_config_default(&cfg);
    cfg.batch_ms = 50;
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    int64_t started = ef_mono_ms();
    assert_int_equal(submit(t, "dev-1"), 0);
    while (atomic_load(&f->stats.telemetry_stored) < 1 && ef_mono_ms() - started < 5000) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(atomic_load(&f->stats.telemetry_stored), 1);
    assert_true(ef_mono_ms() - started >= 40);
    assert_true(ef_mono_ms() - started < 2000);
    telemetry_stop(t);
}

static void malformed_windows_are_counted_not_stored(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    static char big[TELEMETRY_MAX_BYTES + 1];
    telemetry_config_default(&cfg);
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    /* Bad JSON is the writer's to find; a bad device id or size is refused
     * at once, before a copy is made. */
    assert_int_equal(telemetry_submit(t, "dev-1", "{", 1, 0), 0);
    assert_int_equal(telemetry_submit(t, "dev-1", "{\"x\":1}", 7, 0), 0);
    assert_int_equal(telemetry_submit(t, "dev-1", "", 0, 0), 0);
    assert_int_equal(submit(t, "../etc"), EF_EINVAL);
    memset(big, ' ', sizeof(big));
    assert_int_equal(telemetry_submit(t, "dev-1", big, sizeof(big), 0), EF_ETOOBIG);
    assert_int_equal(submit(t, "dev-1"), 0); /* a good one among them is stored */
    telemetry_flush(t);
    assert_int_equal(atomic_load(&f->stats.telemetry_malformed), 5);
    assert_int_equal(atomic_load(&f->stats.telemetry_received), 4);
    assert_int_equal(atomic_load(&f->stats.telemetry_stored), 1);
    assert_int_equal(stored_rows(f->db), 1);
    telemetry_stop(t);
    assert_int_equal(telemetry_submit(NULL, "dev-1", window_json, strlen(window_json), 0),
                     EF_EUNSUPPORTED);
}

static void a_full_queue_drops_instead_of_blocking(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    telemetry_config_default(&cfg);
    cfg.queue_max = 4;
    cfg.batch_max = 2;
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    /* Holding the database keeps the writer from finishing a batch: it can
     * hold at most one batch (2) besides the queue (4). */
    assert_int_equal(db_tx_begin(f->db), 0);
    int accepted = 0, dropped = 0;
    for (int i = 0; i < 10; i++) {
        int rc = submit(t, "dev-1");
        assert_true(rc == 0 || rc == EF_EBUSY);
        accepted += rc == 0;
        dropped += rc == EF_EBUSY;
    }
    assert_true(accepted >= 4 && accepted <= 6);
    assert_int_equal(db_tx_end(f->db, 0), 0);
    telemetry_flush(t);
    assert_int_equal(stored_rows(f->db), accepted);
    assert_int_equal(atomic_load(&f->stats.telemetry_dropped), dropped);
    telemetry_stop(t);
}

static void stop_drains_the_queue(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    telemetry_config_default(&cfg);
    cfg.batch_ms = 60000; /* only stop makes these due */
    cfg.batch_max = 1000;
    assert_int_equal(telemetry_start(f->db, &cfg, NULL, &t), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(submit(t, "dev-1"), 0);
    telemetry_stop(t);
    assert_int_equal(stored_rows(f->db), 10);
}

static void retention_expires_old_windows(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    struct telemetry_window w;
    int64_t now = ef_now_ms();
    assert_int_equal(telemetry_parse(window_json, strlen(window_json), &w, NULL, 0), 0);
    assert_int_equal(db_tx_begin(f->db), 0);
    for (int i = 0; i < 12000; i++) /* more than one retention chunk */
        assert_int_equal(db_telemetry_insert(f->db, "dev-1", now - 7200000 - i, &w, NULL), 0);
    assert_int_equal(db_telemetry_insert(f->db, "dev-1", now, &w, NULL), 0);
    assert_int_equal(db_tx_end(f->db, 0), 0);
    telemetry_config_default(&cfg);
    cfg.retention_ms = 3600000; /* an hour: all but the last are older */
    cfg.expire_every_ms = 20;
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    int64_t started = ef_mono_ms();
    while (atomic_load(&f->stats.telemetry_expired) < 12000 && ef_mono_ms() - started < 10000) {
        struct timespec ms = {0, 5000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(atomic_load(&f->stats.telemetry_expired), 12000);
    assert_int_equal(stored_rows(f->db), 1);
    telemetry_stop(t);
}

/* A window with every key of docs/monitoring.md; drift.max and confidence
 * given, the rest fixed. */
static int submit_full(struct telemetry *t, const char *device, double drift, double confidence,
                       int64_t received_at)
{
    char doc[1024];
    int n = snprintf(doc, sizeof(doc),
                     "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,"
                     "\"model\":\"m@1\",\"inferences\":20,\"errors\":1,"
                     "\"latency_ms\":{\"p50\":1,\"p95\":2,\"p99\":3,\"max\":4},"
                     "\"feedback\":4,\"accuracy\":0.75,\"correct\":3,"
                     "\"confusion\":[[2,1],[0,1]],"
                     "\"drift\":{\"n\":20,\"features\":[%.17g,0],\"output\":[0.5],"
                     "\"max\":%.17g,\"output_max\":0.5},\"confidence\":%.17g,"
                     "\"shadow\":{\"model\":\"m@2\",\"inferences\":10,\"errors\":0,"
                     "\"agreement\":0.5,\"feedback\":2,\"accuracy\":1},"
                     "\"rss_bytes\":null,\"cpu_s\":0.1}",
                     drift, drift, confidence);
    return telemetry_submit(t, device, doc, (size_t)n, received_at);
}

static void full_windows_are_stored_with_their_rollups(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    int64_t minute = ef_now_ms() / 60000 * 60000;
    telemetry_config_default(&cfg);
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    assert_int_equal(submit_full(t, "dev-1", 0.25, 0.5, minute + 10), 0);
    assert_int_equal(submit_full(t, "dev-1", 0.5, 1.0, minute + 20), 0);
    assert_int_equal(submit_full(t, "dev-1", 2.0, 0.25, minute + 60000), 0);
    telemetry_flush(t);
    assert_int_equal(atomic_load(&f->stats.telemetry_stored), 3);
    assert_int_equal(stored_rows(f->db), 3);

    struct db_rollup_filter rf = {"m", 1, "default", METRIC_DRIFT, 0, 0};
    json_t *doc = NULL;
    assert_int_equal(db_telemetry_rollups(f->db, &rf, &doc), 0);
    json_t *points = json_object_get(json_array_get(json_object_get(doc, "series"), 0), "points");
    assert_int_equal(json_array_size(points), 2);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(points, 0), 0)), minute);
    assert_true(json_real_value(json_array_get(json_array_get(points, 0), 1)) == 0.375);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(points, 0), 2)), 2);
    assert_true(json_real_value(json_array_get(json_array_get(points, 1), 1)) == 2.0);
    json_decref(doc);
    rf.metric = METRIC_CONFIDENCE;
    assert_int_equal(db_telemetry_rollups(f->db, &rf, &doc), 0);
    points = json_object_get(json_array_get(json_object_get(doc, "series"), 0), "points");
    assert_true(json_real_value(json_array_get(json_array_get(points, 0), 1)) == 0.75);
    json_decref(doc);
    rf.metric = METRIC_SHADOW_AGREEMENT;
    assert_int_equal(db_telemetry_rollups(f->db, &rf, &doc), 0);
    points = json_object_get(json_array_get(json_object_get(doc, "series"), 0), "points");
    assert_true(json_real_value(json_array_get(json_array_get(points, 0), 1)) == 0.5);
    json_decref(doc);

    /* The raw row keeps the arrays in detail. */
    struct db_telemetry_filter all = {.limit = 1};
    json_t *rows = NULL;
    assert_int_equal(db_telemetry_query(f->db, &all, &rows), 0);
    json_t *psi = json_object_get(json_object_get(json_array_get(rows, 0), "detail"), "psi");
    assert_true(json_number_value(json_array_get(json_object_get(psi, "features"), 0)) == 2.0);
    json_decref(rows);
    telemetry_stop(t);
}

static void absurd_windows_are_counted_never_stored(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    static const char *const bad[] = {
        /* PSI 1e9 */
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"model\":\"m@1\","
        "\"inferences\":20,\"errors\":0,\"drift\":{\"n\":20,\"features\":[1e9],\"output\":[],"
        "\"max\":1e9,\"output_max\":null}}",
        /* accuracy 2 */
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"model\":\"m@1\","
        "\"inferences\":20,\"errors\":0,\"feedback\":4,\"accuracy\":2}",
        /* a negative count */
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"model\":\"m@1\","
        "\"inferences\":20,\"errors\":0,\"feedback\":4,\"correct\":-1}",
        /* a confusion matrix that is not square */
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"model\":\"m@1\","
        "\"inferences\":20,\"errors\":0,\"feedback\":4,\"confusion\":[[1,1,1],[1,0,0]]}",
        /* shadow inferences above the window's */
        "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,\"model\":\"m@1\","
        "\"inferences\":20,\"errors\":0,\"shadow\":{\"model\":\"m@2\",\"inferences\":21,"
        "\"errors\":0,\"agreement\":1,\"feedback\":0,\"accuracy\":null}}",
    };
    telemetry_config_default(&cfg);
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(telemetry_submit(t, "dev-1", bad[i], strlen(bad[i]), ef_now_ms()), 0);
    telemetry_flush(t);
    assert_int_equal(atomic_load(&f->stats.telemetry_malformed), 5);
    assert_int_equal(atomic_load(&f->stats.telemetry_received), 5);
    assert_int_equal(atomic_load(&f->stats.telemetry_batches), 0); /* no transaction for them */
    assert_int_equal(stored_rows(f->db), 0);
    struct db_rollup_filter rf = {"m", 0, NULL, METRIC_ERROR_RATE, 0, 0};
    json_t *doc = NULL;
    assert_int_equal(db_telemetry_rollups(f->db, &rf, &doc), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);
    telemetry_stop(t);
}

static void the_queue_is_bounded_in_bytes(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    static char doc[TELEMETRY_MAX_BYTES];
    size_t n = (size_t)snprintf(doc, sizeof(doc),
                                "{\"window_start\":\"2026-11-22T10:00:00Z\",\"window_s\":60,"
                                "\"inferences\":20,\"errors\":0,\"drift\":{\"n\":20,"
                                "\"output\":[],\"output_max\":null,\"max\":0,\"features\":[0");
    while (n < 20000)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, ",0");
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "]}}");
    telemetry_config_default(&cfg);
    cfg.batch_max = 1;
    cfg.queue_max_bytes = TELEMETRY_MAX_BYTES; /* three such payloads */
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    /* Holding the database keeps the writer on its first batch. */
    assert_int_equal(db_tx_begin(f->db), 0);
    int accepted = 0, dropped = 0;
    for (int i = 0; i < 20; i++) {
        int rc = telemetry_submit(t, "dev-1", doc, n, ef_now_ms());
        assert_true(rc == 0 || rc == EF_EBUSY);
        accepted += rc == 0;
        dropped += rc == EF_EBUSY;
    }
    assert_true(accepted >= 3 && accepted <= 4);
    assert_true(dropped >= 16);
    assert_int_equal(db_tx_end(f->db, 0), 0);
    telemetry_flush(t);
    assert_int_equal(stored_rows(f->db), accepted);
    assert_int_equal(atomic_load(&f->stats.telemetry_dropped), dropped);
    /* Under the bound windows without detail still fit many times over. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(submit(t, "dev-1"), 0);
    telemetry_stop(t);
    cfg.queue_max_bytes = TELEMETRY_MAX_BYTES - 1;
    assert_int_equal(telemetry_start(f->db, &cfg, NULL, &t), EF_EINVAL);
}

static void bad_configs_are_refused(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    telemetry_config_default(&cfg);
    cfg.batch_max = cfg.queue_max + 1;
    assert_int_equal(telemetry_start(f->db, &cfg, NULL, &t), EF_EINVAL);
    telemetry_config_default(&cfg);
    cfg.retention_ms = 0;
    assert_int_equal(telemetry_start(f->db, &cfg, NULL, &t), EF_EINVAL);
    assert_null(t);
    telemetry_stop(NULL);
    telemetry_flush(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(windows_are_written_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(a_lone_window_waits_at_most_batch_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_windows_are_counted_not_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_queue_drops_instead_of_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_drains_the_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_expires_old_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_configs_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(full_windows_are_stored_with_their_rollups, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(absurd_windows_are_counted_never_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(the_queue_is_bounded_in_bytes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

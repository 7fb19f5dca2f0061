/* test_telemetry.c - the telemetry ingest: windows queued by submit are
 * written in batches by the writer thread, malformed ones and those that do
 * not fit the queue are counted, stop drains the queue, retention expires
 * old windows. */
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

static void malformed_windows_are_counted_not_queued(void **state)
{
    struct fixture *f = *state;
    struct telemetry *t = NULL;
    struct telemetry_config cfg;
    telemetry_config_default(&cfg);
    assert_int_equal(telemetry_start(f->db, &cfg, &f->stats, &t), 0);
    assert_int_equal(telemetry_submit(t, "dev-1", "{", 1, 0), EF_EPARSE);
    assert_int_equal(telemetry_submit(t, "dev-1", "{\"x\":1}", 7, 0), EF_EINVAL);
    assert_int_equal(submit(t, "../etc"), EF_EINVAL);
    telemetry_flush(t);
    assert_int_equal(atomic_load(&f->stats.telemetry_malformed), 3);
    assert_int_equal(atomic_load(&f->stats.telemetry_received), 0);
    assert_int_equal(stored_rows(f->db), 0);
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
        cmocka_unit_test_setup_teardown(malformed_windows_are_counted_not_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_queue_drops_instead_of_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_drains_the_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_expires_old_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_configs_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_db_telemetry.c - raw telemetry windows in a real SQLite database:
 * storing only enrolled devices' windows, queries and their filters, the
 * ring aggregates rollout gates read, and expiry. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_telemetry.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"

#define HASH(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define NOW     1763805600000LL /* 2025-11-22T10:00:00.000Z */

/* A database with devices d1, d2 (tag site=lab, so in ring "lab" by its
 * selector), d3 (ring default) and d4 (decommissioned). */
static int setup(void **state)
{
    assert_int_equal(db_fixture_setup(state), 0);
    struct db_fixture *f = *state;
    json_t *lab = json_pack("{s:s}", "site", "lab");
    assert_int_equal(db_ring_create(f->db, "lab", NULL, lab, NOW), 0);
    assert_int_equal(db_device_create(f->db, "d1", HASH("a1"), "default", lab, NOW), 0);
    assert_int_equal(db_device_create(f->db, "d2", HASH("a2"), "default", lab, NOW), 0);
    assert_int_equal(db_device_create(f->db, "d3", HASH("a3"), "default", NULL, NOW), 0);
    assert_int_equal(db_device_create(f->db, "d4", HASH("a4"), "default", lab, NOW), 0);
    assert_int_equal(db_device_decommission(f->db, "d4", NOW), 0);
    json_decref(lab);
    return 0;
}

/* A window of model@version (model NULL: none served) with these counts and
 * p99 (negative: no latency). */
static struct telemetry_window window(const char *model, int64_t version, int64_t inferences,
                                      int64_t errors, double p99)
{
    struct telemetry_window w;
    memset(&w, 0, sizeof(w));
    w.window_start = NOW - 60000;
    w.window_s = 60;
    if (model) {
        snprintf(w.model, sizeof(w.model), "%s", model);
        w.version = version;
    }
    w.inferences = inferences;
    w.errors = errors;
    if (p99 >= 0) {
        w.has_latency = true;
        w.p50 = p99 / 4;
        w.p95 = p99 / 2;
        w.p99 = p99;
        w.max_ms = p99 * 2;
    }
    w.rss_bytes = -1;
    w.cpu_s = 0.5;
    return w;
}

static bool insert(struct db *db, const char *device, int64_t at, struct telemetry_window w)
{
    bool stored = false;
    assert_int_equal(db_telemetry_insert(db, device, at, &w, &stored), 0);
    return stored;
}

static json_t *query(struct db *db, const char *model, int64_t version, const char *ring,
                     const char *device, int64_t since, int limit)
{
    struct db_telemetry_filter filter = {model, version, ring, device, since, limit};
    json_t *rows = NULL;
    assert_int_equal(db_telemetry_query(db, &filter, &rows), 0);
    return rows;
}

static void only_enrolled_devices_are_stored(void **state)
{
    struct db_fixture *f = *state;
    struct telemetry_window w = window("m", 1, 10, 0, 5);
    bool stored = true;
    assert_true(insert(f->db, "d1", NOW, w));
    assert_false(insert(f->db, "nobody", NOW, w));
    assert_false(insert(f->db, "d4", NOW, w)); /* decommissioned */
    assert_int_equal(db_telemetry_insert(f->db, "bad/id", NOW, &w, &stored), EF_EINVAL);
    assert_false(stored);
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 100);
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);
}

static void inserts_batch_in_one_transaction(void **state)
{
    struct db_fixture *f = *state;
    assert_int_equal(db_tx_begin(f->db), 0);
    for (int i = 0; i < 100; i++)
        assert_true(insert(f->db, "d3", NOW + i, window("m", 1, 1, 0, 1)));
    assert_int_equal(db_tx_end(f->db, EF_EINVAL), EF_EINVAL); /* rolled back */
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 500);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    assert_int_equal(db_tx_begin(f->db), 0);
    for (int i = 0; i < 100; i++)
        assert_true(insert(f->db, "d3", NOW + i, window("m", 1, 1, 0, 1)));
    assert_int_equal(db_tx_end(f->db, 0), 0);
    rows = query(f->db, NULL, 0, NULL, NULL, 0, 500);
    assert_int_equal(json_array_size(rows), 100);
    json_decref(rows);
}

static void query_shape_and_order(void **state)
{
    struct db_fixture *f = *state;
    struct telemetry_window full = window("thyroid", 3, 120, 2, 7);
    full.window_start = NOW - 60000 + 123;
    full.feedback = 10;
    full.has_accuracy = true;
    full.accuracy = 0.9;
    full.rss_bytes = 1 << 20;
    assert_true(insert(f->db, "d1", NOW, full));
    assert_true(insert(f->db, "d1", NOW + 1000, window(NULL, 0, 0, 0, -1)));
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 10);
    assert_int_equal(json_array_size(rows), 2);
    json_t *idle = json_array_get(rows, 0), *busy = json_array_get(rows, 1);
    /* Newest first. */
    assert_string_equal(json_string_value(json_object_get(idle, "received_at")),
                        "2025-11-22T10:00:01.000Z");
    assert_true(json_is_null(json_object_get(idle, "model")));
    assert_true(json_is_null(json_object_get(idle, "version")));
    assert_true(json_is_null(json_object_get(idle, "latency_ms")));
    assert_true(json_is_null(json_object_get(idle, "accuracy")));
    assert_true(json_is_null(json_object_get(idle, "rss_bytes")));

    assert_string_equal(json_string_value(json_object_get(busy, "device")), "d1");
    assert_string_equal(json_string_value(json_object_get(busy, "received_at")),
                        "2025-11-22T10:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(busy, "window_start")),
                        "2025-11-22T09:59:00.123Z");
    assert_true(json_number_value(json_object_get(busy, "window_s")) == 60.0);
    assert_string_equal(json_string_value(json_object_get(busy, "model")), "thyroid");
    assert_int_equal(json_integer_value(json_object_get(busy, "version")), 3);
    assert_int_equal(json_integer_value(json_object_get(busy, "inferences")), 120);
    assert_int_equal(json_integer_value(json_object_get(busy, "errors")), 2);
    json_t *lat = json_object_get(busy, "latency_ms");
    assert_true(json_is_object(lat));
    assert_int_equal(json_object_size(lat), 4);
    assert_true(json_number_value(json_object_get(lat, "p50")) == 1.75);
    assert_true(json_number_value(json_object_get(lat, "p95")) == 3.5);
    assert_true(json_number_value(json_object_get(lat, "p99")) == 7.0);
    assert_true(json_number_value(json_object_get(lat, "max")) == 14.0);
    assert_int_equal(json_integer_value(json_object_get(busy, "feedback")), 10);
    assert_true(json_number_value(json_object_get(busy, "accuracy")) == 0.9);
    assert_int_equal(json_integer_value(json_object_get(busy, "rss_bytes")), 1 << 20);
    assert_true(json_number_value(json_object_get(busy, "cpu_s")) == 0.5);
    assert_true(json_integer_value(json_object_get(busy, "id")) >= 1);
    json_decref(rows);
}

/* The devices of rows, in order, joined with ','. */
static const char *devices_of(json_t *rows, char *buf, size_t size)
{
    size_t i, n = 0;
    json_t *row;
    buf[0] = '\0';
    json_array_foreach(rows, i, row)
    {
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "",
                              json_string_value(json_object_get(row, "device")));
        assert_true(n < size);
    }
    json_decref(rows);
    return buf;
}

static void query_filters(void **state)
{
    struct db_fixture *f = *state;
    char buf[256];
    assert_true(insert(f->db, "d1", NOW + 1, window("m", 1, 1, 0, 1)));
    assert_true(insert(f->db, "d2", NOW + 2, window("m", 2, 1, 0, 1)));
    assert_true(insert(f->db, "d3", NOW + 3, window("m", 2, 1, 0, 1)));
    assert_true(insert(f->db, "d3", NOW + 4, window("other", 1, 1, 0, 1)));
    assert_true(insert(f->db, "d1", NOW + 5, window(NULL, 0, 0, 0, -1)));

    assert_string_equal(devices_of(query(f->db, NULL, 0, NULL, NULL, 0, 10), buf, sizeof(buf)),
                        "d1,d3,d3,d2,d1");
    assert_string_equal(devices_of(query(f->db, "m", 0, NULL, NULL, 0, 10), buf, sizeof(buf)),
                        "d3,d2,d1");
    assert_string_equal(devices_of(query(f->db, "m", 2, NULL, NULL, 0, 10), buf, sizeof(buf)),
                        "d3,d2");
    assert_string_equal(devices_of(query(f->db, NULL, 0, "lab", NULL, 0, 10), buf, sizeof(buf)),
                        "d1,d2,d1");
    assert_string_equal(devices_of(query(f->db, NULL, 0, "default", NULL, 0, 10), buf, sizeof(buf)),
                        "d3,d3");
    assert_string_equal(devices_of(query(f->db, "m", 2, "lab", NULL, 0, 10), buf, sizeof(buf)),
                        "d2");
    assert_string_equal(devices_of(query(f->db, "m", 0, "lab", NULL, 0, 10), buf, sizeof(buf)),
                        "d2,d1");
    assert_string_equal(devices_of(query(f->db, NULL, 0, NULL, "d3", 0, 10), buf, sizeof(buf)),
                        "d3,d3");
    assert_string_equal(devices_of(query(f->db, "m", 0, NULL, "d3", 0, 10), buf, sizeof(buf)),
                        "d3");
    assert_string_equal(devices_of(query(f->db, "m", 2, "lab", "d3", 0, 10), buf, sizeof(buf)), "");
    assert_string_equal(devices_of(query(f->db, NULL, 0, "lab", "d1", 0, 10), buf, sizeof(buf)),
                        "d1,d1");
    assert_string_equal(
        devices_of(query(f->db, NULL, 0, NULL, NULL, NOW + 3, 10), buf, sizeof(buf)), "d1,d3,d3");
    assert_string_equal(devices_of(query(f->db, "m", 0, NULL, NULL, NOW + 3, 10), buf, sizeof(buf)),
                        "d3");
    assert_string_equal(devices_of(query(f->db, NULL, 0, NULL, NULL, 0, 2), buf, sizeof(buf)),
                        "d1,d3");
    /* Unknown names select nothing. */
    assert_string_equal(devices_of(query(f->db, "nope", 0, NULL, NULL, 0, 10), buf, sizeof(buf)),
                        "");
    assert_string_equal(devices_of(query(f->db, NULL, 0, "nope", NULL, 0, 10), buf, sizeof(buf)),
                        "");
    assert_string_equal(devices_of(query(f->db, NULL, 0, NULL, "nope", 0, 10), buf, sizeof(buf)),
                        "");

    struct db_telemetry_filter bad = {.limit = 0};
    json_t *rows = NULL;
    assert_int_equal(db_telemetry_query(f->db, &bad, &rows), EF_EINVAL);
    bad.limit = DB_TELEMETRY_LIMIT_MAX + 1;
    assert_int_equal(db_telemetry_query(f->db, &bad, &rows), EF_EINVAL);
    bad.limit = 1;
    bad.version = 2; /* a version without a model */
    assert_int_equal(db_telemetry_query(f->db, &bad, &rows), EF_EINVAL);
    assert_null(rows);
}

static void ring_stats_for_gates(void **state)
{
    struct db_fixture *f = *state;
    struct ring_telemetry rt;
    int64_t lab = 0, def = 0;
    assert_int_equal(db_ring_id(f->db, "lab", &lab), 0);
    assert_int_equal(db_ring_id(f->db, "default", &def), 0);

    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 0);
    assert_int_equal(rt.inferences, 0);
    assert_true(rt.max_p99_ms == 0.0);

    assert_true(insert(f->db, "d1", NOW, window("m", 2, 100, 1, 12.5)));
    assert_true(insert(f->db, "d2", NOW + 10, window("m", 2, 50, 4, 30)));
    /* A p99 without inferences cannot happen from the parser, but the
     * aggregate must not count one: build it by hand. */
    struct telemetry_window odd = window("m", 2, 0, 0, 99);
    assert_true(insert(f->db, "d2", NOW + 20, odd));
    assert_true(insert(f->db, "d1", NOW + 30, window("m", 1, 1000, 999, 500))); /* other version */
    assert_true(insert(f->db, "d1", NOW + 40, window("other", 2, 1000, 999, 500)));
    assert_true(insert(f->db, "d3", NOW + 50, window("m", 2, 7, 7, 700))); /* other ring */

    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 3);
    assert_int_equal(rt.inferences, 150);
    assert_int_equal(rt.errors, 5);
    assert_true(rt.max_p99_ms == 30.0);

    /* since_ms is inclusive. */
    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, NOW + 10, &rt), 0);
    assert_int_equal(rt.windows, 2);
    assert_int_equal(rt.inferences, 50);
    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, NOW + 11, &rt), 0);
    assert_int_equal(rt.windows, 1);
    assert_int_equal(rt.inferences, 0);
    assert_true(rt.max_p99_ms == 0.0);

    assert_int_equal(db_telemetry_ring_stats(f->db, def, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 1);
    assert_int_equal(rt.errors, 7);
    assert_true(rt.max_p99_ms == 700.0);

    /* Membership is the ring's now: d2 moves to default and takes its
     * windows along. */
    struct db_device_change c = {.set_ring = true, .ring_id = def};
    assert_int_equal(db_device_update(f->db, "d2", &c), 0);
    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 1);
    assert_int_equal(rt.inferences, 100);
    assert_int_equal(db_telemetry_ring_stats(f->db, def, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 3);
    assert_int_equal(rt.inferences, 57);

    /* A decommissioned device no longer counts. */
    assert_int_equal(db_device_decommission(f->db, "d1", NOW + 100), 0);
    assert_int_equal(db_telemetry_ring_stats(f->db, lab, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 0);

    assert_int_equal(db_telemetry_ring_stats(f->db, 999, "m", 2, 0, &rt), 0);
    assert_int_equal(rt.windows, 0);
}

static void expire_deletes_old_windows_in_chunks(void **state)
{
    struct db_fixture *f = *state;
    int64_t deleted = -1;
    assert_int_equal(db_tx_begin(f->db), 0);
    for (int i = 0; i < 25; i++)
        assert_true(insert(f->db, "d3", NOW + i, window("m", 1, 1, 0, 1)));
    assert_int_equal(db_tx_end(f->db, 0), 0);

    assert_int_equal(db_telemetry_expire(f->db, NOW, 10, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted), 0);
    assert_int_equal(deleted, 0);
    /* The oldest went first: what is left is NOW+20 and later. */
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 100);
    assert_int_equal(json_array_size(rows), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 4), "received_at")),
                        "2025-11-22T10:00:00.020Z");
    json_decref(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(only_enrolled_devices_are_stored, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(inserts_batch_in_one_transaction, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(query_shape_and_order, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(query_filters, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(ring_stats_for_gates, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(expire_deletes_old_windows_in_chunks, setup,
                                        db_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

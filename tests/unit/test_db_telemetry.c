/* test_db_telemetry.c - raw telemetry windows in a real SQLite database:
 * storing only enrolled devices' windows with their ring, queries and their
 * filters and metric values, per-minute rollups summed exactly, per-device
 * sums, the ring aggregates rollout gates read, and expiry. */
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
    struct db_telemetry_filter filter = {model, version, ring, device, since, limit, NULL};
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

    assert_int_equal(db_telemetry_expire(f->db, NOW, 10, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted, NULL), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted, NULL), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(db_telemetry_expire(f->db, NOW + 20, 10, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
    /* The oldest went first: what is left is NOW+20 and later. */
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 100);
    assert_int_equal(json_array_size(rows), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 4), "received_at")),
                        "2025-11-22T10:00:00.020Z");
    json_decref(rows);
}

/* A window of model m@2 with every metric member set by hand. */
static struct telemetry_window metric_window(int64_t inferences, int64_t errors, double p99,
                                             int64_t feedback, int64_t correct, double drift,
                                             double confidence, int64_t shadow_inferences,
                                             double agreement, int64_t shadow_feedback,
                                             double shadow_accuracy)
{
    struct telemetry_window w = window("m", 2, inferences, errors, p99);
    w.feedback = feedback;
    if (feedback > 0) {
        w.has_correct = true;
        w.correct = correct;
        w.has_accuracy = true;
        w.accuracy = (double)correct / (double)feedback;
    }
    if (drift >= 0) {
        w.has_drift = true;
        w.drift_n = inferences;
        w.drift = drift;
        w.has_drift_output = true;
        w.drift_output = drift / 2;
    }
    if (confidence >= 0) {
        w.has_confidence = true;
        w.confidence = confidence;
    }
    if (shadow_inferences >= 0) {
        w.has_shadow = true;
        snprintf(w.shadow_model, sizeof(w.shadow_model), "m");
        w.shadow_version = 3;
        w.shadow_inferences = shadow_inferences;
        w.has_shadow_agreement = shadow_inferences > 0;
        w.shadow_agreement = agreement;
        w.shadow_feedback = shadow_feedback;
        w.has_shadow_accuracy = shadow_feedback > 0;
        w.shadow_accuracy = shadow_accuracy;
    }
    return w;
}

#define M0 NOW           /* a minute boundary: NOW is a multiple of 60000 */
#define M1 (NOW + 60000) /* the next minute */

/* Windows over two minutes and two rings (lab: d1, d2; default: d3):
 *   lab M0:  d1 A {100 inf, 5 err, p99 10, 8/10 correct, drift .2, conf .9,
 *                  shadow 80 at .75, 4 fb at .5}
 *            d2 B {50 inf, 0 err, p99 30, 10/10, drift .4, conf .6,
 *                  shadow 20 at 1.0, 6 fb at 1.0}
 *   lab M1:  d1 C {10 inf, 10 err, no latency, no feedback/drift/conf/shadow}
 *   default M0: d3 D {40 inf, 1 err, p99 5, 1/4, drift .05, no conf/shadow}
 *   lab M0, version 1: d1 E {7 inf, 7 err}. */
static void insert_two_minutes_two_rings(struct db *db)
{
    assert_int_equal(db_tx_begin(db), 0);
    assert_true(
        insert(db, "d1", M0 + 1, metric_window(100, 5, 10, 10, 8, 0.2, 0.9, 80, 0.75, 4, 0.5)));
    assert_true(
        insert(db, "d2", M0 + 30000, metric_window(50, 0, 30, 10, 10, 0.4, 0.6, 20, 1.0, 6, 1.0)));
    assert_true(insert(db, "d1", M1 + 59999, metric_window(10, 10, -1, 0, 0, -1, -1, -1, 0, 0, 0)));
    assert_true(insert(db, "d3", M0 + 59999, metric_window(40, 1, 5, 4, 1, 0.05, -1, -1, 0, 0, 0)));
    assert_true(insert(db, "d1", M0 + 2, window("m", 1, 7, 7, -1)));
    assert_int_equal(db_tx_end(db, 0), 0);
}

static json_t *rollups(struct db *db, int64_t version, const char *ring, enum metric m,
                       int64_t since, int64_t until)
{
    struct db_rollup_filter rf = {"m", version, ring, m, since, until};
    json_t *doc = NULL;
    assert_int_equal(db_telemetry_rollups(db, &rf, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "m");
    assert_string_equal(json_string_value(json_object_get(doc, "metric")), metric_name(m));
    return doc;
}

/* Asserts that series i of doc is version@ring with n points. */
static const json_t *series(const json_t *doc, size_t i, int64_t version, const char *ring,
                            size_t n)
{
    const json_t *s = json_array_get(json_object_get(doc, "series"), i);
    assert_non_null(s);
    assert_int_equal(json_integer_value(json_object_get(s, "version")), version);
    assert_string_equal(json_string_value(json_object_get(s, "ring")), ring);
    assert_int_equal(json_array_size(json_object_get(s, "points")), n);
    return json_object_get(s, "points");
}

/* Asserts point i of points is [minute, value, windows]; values exact. */
static void point(const json_t *points, size_t i, int64_t minute, double value, int64_t windows)
{
    const json_t *p = json_array_get(points, i);
    assert_int_equal(json_array_size(p), 3);
    assert_int_equal(json_integer_value(json_array_get(p, 0)), minute);
    if (json_real_value(json_array_get(p, 1)) != value)
        fail_msg("point %zu: %.17g, expected %.17g", i, json_real_value(json_array_get(p, 1)),
                 value);
    assert_int_equal(json_integer_value(json_array_get(p, 2)), windows);
}

static void rollups_sum_exactly(void **state)
{
    struct db_fixture *f = *state;
    insert_two_minutes_two_rings(f->db);

    /* error_rate: every version, every ring; by version, then ring id
     * (default, made by the migration, before lab). */
    json_t *doc = rollups(f->db, 0, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 3);
    point(series(doc, 0, 1, "lab", 1), 0, M0, 1.0, 1);
    point(series(doc, 1, 2, "default", 1), 0, M0, 1.0 / 40.0, 1);
    const json_t *lab = series(doc, 2, 2, "lab", 2);
    point(lab, 0, M0, 5.0 / 150.0, 2);
    point(lab, 1, M1, 1.0, 1);
    json_decref(doc);

    /* The other metrics of version 2 in lab: minute M1 carries none of
     * them but error_rate, so only M0 has a point. */
    static const struct {
        enum metric m;
        double value;
    } lab_m0[] = {
        {METRIC_ACCURACY, 18.0 / 20.0},
        {METRIC_LATENCY_P99, 30.0},
        {METRIC_DRIFT, (0.2 + 0.4) / 2},
        {METRIC_CONFIDENCE, (0.9 + 0.6) / 2},
        {METRIC_SHADOW_AGREEMENT, (0.75 * 80 + 1.0 * 20) / 100},
        {METRIC_SHADOW_ACCURACY, (0.5 * 4 + 1.0 * 6) / 10},
    };
    for (size_t i = 0; i < sizeof(lab_m0) / sizeof(lab_m0[0]); i++) {
        doc = rollups(f->db, 2, "lab", lab_m0[i].m, 0, 0);
        assert_int_equal(json_array_size(json_object_get(doc, "series")), 1);
        point(series(doc, 0, 2, "lab", 1), 0, M0, lab_m0[i].value, 2);
        json_decref(doc);
    }
    /* default ring, version 2: drift 0.05, accuracy 1/4, no confidence. */
    doc = rollups(f->db, 2, "default", METRIC_DRIFT, 0, 0);
    point(series(doc, 0, 2, "default", 1), 0, M0, 0.05, 1);
    json_decref(doc);
    doc = rollups(f->db, 2, "default", METRIC_ACCURACY, 0, 0);
    point(series(doc, 0, 2, "default", 1), 0, M0, 0.25, 1);
    json_decref(doc);
    doc = rollups(f->db, 2, "default", METRIC_CONFIDENCE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);

    /* since and until bound the minutes, both inclusive. */
    doc = rollups(f->db, 2, "lab", METRIC_ERROR_RATE, M1, 0);
    point(series(doc, 0, 2, "lab", 1), 0, M1, 1.0, 1);
    json_decref(doc);
    doc = rollups(f->db, 2, "lab", METRIC_ERROR_RATE, 0, M0);
    point(series(doc, 0, 2, "lab", 1), 0, M0, 5.0 / 150.0, 2);
    json_decref(doc);
    doc = rollups(f->db, 2, "lab", METRIC_ERROR_RATE, M1 + 1, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);
    /* An unknown ring or model has no series. */
    doc = rollups(f->db, 0, "nope", METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);

    /* drift_output has no rollup; a model is required. */
    struct db_rollup_filter bad = {"m", 0, NULL, METRIC_DRIFT_OUTPUT, 0, 0};
    assert_int_equal(db_telemetry_rollups(f->db, &bad, &doc), EF_EINVAL);
    bad.model = NULL;
    bad.metric = METRIC_DRIFT;
    assert_int_equal(db_telemetry_rollups(f->db, &bad, &doc), EF_EINVAL);
    assert_null(doc);
}

/* A rolled-back batch leaves no rollup behind either. */
static void rollups_roll_back_with_their_batch(void **state)
{
    struct db_fixture *f = *state;
    assert_int_equal(db_tx_begin(f->db), 0);
    assert_true(insert(f->db, "d1", M0, metric_window(10, 1, 1, 0, 0, -1, -1, -1, 0, 0, 0)));
    assert_int_equal(db_tx_end(f->db, EF_EINVAL), EF_EINVAL);
    json_t *doc = rollups(f->db, 0, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);
    /* Windows without a model or of devices not enrolled make no rollup. */
    assert_true(insert(f->db, "d1", M0, window(NULL, 0, 0, 0, -1)));
    assert_false(insert(f->db, "d4", M0, metric_window(10, 1, 1, 0, 0, -1, -1, -1, 0, 0, 0)));
    doc = rollups(f->db, 0, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);
}

/* The series of model's rollups of metric m (a new reference). */
static json_t *series_of(struct db *db, const char *model, enum metric m)
{
    struct db_rollup_filter rf = {model, 0, NULL, m, 0, 0};
    json_t *doc = NULL;
    assert_int_equal(db_telemetry_rollups(db, &rf, &doc), 0);
    json_t *s = json_incref(json_object_get(doc, "series"));
    json_decref(doc);
    return s;
}

/* A batch reads and writes each rollup row once, yet its sums are bit for
 * bit those of adding its windows one at a time: model "a" gets 30 windows
 * one by one, model "b" the same windows as one batch, both on top of a
 * row that already exists; every rolled-up value is the same double. */
static void batch_rollups_match_one_at_a_time(void **state)
{
    struct db_fixture *f = *state;
    static const char *const devices[] = {"d1", "d2", "d3", "d4", "nobody"};
    enum { N = 30 };
    struct telemetry_window a[N], b[N];
    struct db_telemetry_row rows[N];
    for (int k = 0; k < N; k++) {
        a[k] = metric_window(10 + k, k % 3, 0.1 * k + 0.3, 10, k % 11, 0.01 * k + 0.07,
                             0.3 + 0.011 * k, 5 + k, 0.1 + 0.01 * k, 3, 0.7);
        snprintf(a[k].model, sizeof(a[k].model), "a");
        b[k] = a[k];
        snprintf(b[k].model, sizeof(b[k].model), "b");
        /* Two minutes, both rings, and devices that are not enrolled. */
        int64_t at = M0 + 1 + k * 3000;
        bool enrolled = k % 5 < 3;
        assert_true(insert(f->db, devices[k % 5], at, a[k]) == enrolled);
        rows[k] = (struct db_telemetry_row){devices[k % 5], at, &b[k], !enrolled};
    }
    assert_true(insert(f->db, rows[0].device_id, rows[0].received_at, b[0]));
    assert_int_equal(db_telemetry_insert_batch(f->db, rows + 1, N - 1), 0);
    for (int k = 1; k < N; k++)
        assert_true(rows[k].stored == (k % 5 < 3));
    for (int m = 0; m < METRIC_COUNT; m++) {
        if (!metric_rolled_up((enum metric)m))
            continue;
        json_t *sa = series_of(f->db, "a", (enum metric)m),
               *sb = series_of(f->db, "b", (enum metric)m);
        assert_int_equal(json_array_size(sa), 2); /* lab and default */
        assert_true(json_equal(sa, sb));
        json_decref(sa);
        json_decref(sb);
    }
    json_t *all = query(f->db, "b", 0, NULL, NULL, 0, 100);
    assert_int_equal(json_array_size(all), 18);
    json_decref(all);
}

/* A bad row refuses the whole batch before anything is stored. */
static void batch_with_a_bad_row_stores_nothing(void **state)
{
    struct db_fixture *f = *state;
    struct telemetry_window w = window("m", 1, 1, 0, 1), bad = window("m", 0, 1, 0, 1);
    struct db_telemetry_row rows[3] = {
        {"d1", NOW, &w, false}, {"bad/id", NOW, &w, false}, {"d2", NOW, &w, false}};
    assert_int_equal(db_telemetry_insert_batch(f->db, rows, 3), EF_EINVAL);
    rows[1] = (struct db_telemetry_row){"d3", NOW, &bad, false}; /* a model without version */
    assert_int_equal(db_telemetry_insert_batch(f->db, rows, 3), EF_EINVAL);
    assert_false(rows[0].stored || rows[1].stored || rows[2].stored);
    json_t *all = query(f->db, NULL, 0, NULL, NULL, 0, 10);
    assert_int_equal(json_array_size(all), 0);
    json_decref(all);
    json_t *doc = rollups(f->db, 0, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 0);
    json_decref(doc);
    assert_int_equal(db_telemetry_insert_batch(f->db, rows, 0), 0);
}

static void windows_keep_the_ring_they_were_received_in(void **state)
{
    struct db_fixture *f = *state;
    char buf[256];
    int64_t def = 0;
    assert_int_equal(db_ring_id(f->db, "default", &def), 0);
    assert_true(insert(f->db, "d2", NOW, window("m", 2, 1, 0, 1)));
    struct db_device_change c = {.set_ring = true, .ring_id = def};
    assert_int_equal(db_device_update(f->db, "d2", &c), 0);
    assert_true(insert(f->db, "d2", NOW + 1, window("m", 2, 1, 0, 1)));
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "ring")),
                        "default");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "ring")), "lab");
    json_decref(rows);
    assert_string_equal(devices_of(query(f->db, NULL, 0, "lab", NULL, 0, 10), buf, sizeof(buf)),
                        "d2");
    assert_string_equal(devices_of(query(f->db, "m", 2, "default", NULL, 0, 10), buf, sizeof(buf)),
                        "d2");
    /* The rollup rows went to the ring of the time too. */
    json_t *doc = rollups(f->db, 2, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 2);
    point(series(doc, 0, 2, "default", 1), 0, M0, 0.0, 1);
    point(series(doc, 1, 2, "lab", 1), 0, M0, 0.0, 1);
    json_decref(doc);
}

static void query_new_columns_and_metric_values(void **state)
{
    struct db_fixture *f = *state;
    struct telemetry_window w = metric_window(100, 5, 10, 10, 8, 0.2, 0.9, 80, 0.75, 4, 0.5);
    w.shadow_errors = 2;
    char detail[] = "{\"confusion\":[[5,1],[1,3]],\"psi\":{\"features\":[0.2],\"n\":100,"
                    "\"output\":[0.1]}}";
    w.detail = detail;
    w.detail_len = strlen(detail);
    assert_true(insert(f->db, "d1", NOW, w));
    assert_true(insert(f->db, "d1", NOW + 1, window(NULL, 0, 0, 0, -1)));
    json_t *rows = query(f->db, NULL, 0, NULL, NULL, 0, 10);
    json_t *idle = json_array_get(rows, 0), *row = json_array_get(rows, 1);
    static const char *const nulls[] = {"correct",    "drift",  "drift_output",
                                        "confidence", "shadow", "detail"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        assert_true(json_is_null(json_object_get(idle, nulls[i])));
    assert_false(json_object_get(idle, "value")); /* no metric asked */
    assert_string_equal(json_string_value(json_object_get(row, "ring")), "lab");
    assert_int_equal(json_integer_value(json_object_get(row, "correct")), 8);
    assert_true(json_number_value(json_object_get(row, "drift")) == 0.2);
    assert_true(json_number_value(json_object_get(row, "drift_output")) == 0.1);
    assert_true(json_number_value(json_object_get(row, "confidence")) == 0.9);
    json_t *want = json_pack("{s:s, s:i, s:i, s:f, s:i, s:f}", "model", "m@3", "inferences", 80,
                             "errors", 2, "agreement", 0.75, "feedback", 4, "accuracy", 0.5);
    assert_true(json_equal(json_object_get(row, "shadow"), want));
    json_decref(want);
    json_t *want_detail = json_loads(detail, 0, NULL);
    assert_true(json_equal(json_object_get(row, "detail"), want_detail));
    json_decref(want_detail);
    json_decref(rows);

    /* With a metric, each row carries its window's value, or null. */
    static const struct {
        enum metric m;
        double value;
    } values[] = {
        {METRIC_DRIFT, 0.2},
        {METRIC_DRIFT_OUTPUT, 0.1},
        {METRIC_ACCURACY, 0.8},
        {METRIC_ERROR_RATE, 0.05},
        {METRIC_LATENCY_P99, 10},
        {METRIC_CONFIDENCE, 0.9},
        {METRIC_SHADOW_AGREEMENT, 0.75},
        {METRIC_SHADOW_ACCURACY, 0.5},
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct db_telemetry_filter q = {.limit = 10, .metric = &values[i].m};
        assert_int_equal(db_telemetry_query(f->db, &q, &rows), 0);
        assert_true(json_is_null(json_object_get(json_array_get(rows, 0), "value")));
        double got = json_number_value(json_object_get(json_array_get(rows, 1), "value"));
        if (got != values[i].value)
            fail_msg("%s: %.17g, expected %.17g", metric_name(values[i].m), got, values[i].value);
        json_decref(rows);
    }
}

static void device_sums_per_device(void **state)
{
    struct db_fixture *f = *state;
    struct db_device_sums *sums = NULL;
    size_t n = 0;
    int64_t lab = 0;
    double v = 0;
    assert_int_equal(db_ring_id(f->db, "lab", &lab), 0);
    insert_two_minutes_two_rings(f->db);
    assert_int_equal(db_telemetry_device_sums(f->db, "m", 2, -1, 0, &sums, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(sums[0].device_id, "d1");
    assert_string_equal(sums[1].device_id, "d2");
    assert_string_equal(sums[2].device_id, "d3");
    /* d1: windows A and C; error_rate 15/110, drift over A only, p99 max 10. */
    assert_int_equal(sums[0].sums.windows, 2);
    assert_true(metric_sums_value(&sums[0].sums, METRIC_ERROR_RATE, &v) && v == 15.0 / 110.0);
    assert_true(metric_sums_value(&sums[0].sums, METRIC_DRIFT, &v) && v == 0.2);
    assert_true(metric_sums_value(&sums[0].sums, METRIC_LATENCY_P99, &v) && v == 10);
    assert_true(metric_sums_value(&sums[0].sums, METRIC_ACCURACY, &v) && v == 0.8);
    assert_false(metric_sums_value(&sums[2].sums, METRIC_CONFIDENCE, &v));
    free(sums);
    /* Only the lab ring, and since M1: d1's window C alone. */
    assert_int_equal(db_telemetry_device_sums(f->db, "m", 2, lab, M1, &sums, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sums[0].sums.windows, 1);
    assert_false(metric_sums_value(&sums[0].sums, METRIC_DRIFT, &v));
    free(sums);
    assert_int_equal(db_telemetry_device_sums(f->db, "nope", 2, -1, 0, &sums, &n), 0);
    assert_int_equal(n, 0);
    assert_null(sums);
}

static void expire_deletes_ended_rollup_minutes(void **state)
{
    struct db_fixture *f = *state;
    int64_t deleted = 0, rollups_deleted = 0;
    insert_two_minutes_two_rings(f->db);
    /* Before M1 ends nothing of M1 goes; M0's rows (3) go once M0 ended. */
    assert_int_equal(db_telemetry_expire(f->db, M1, 100, &deleted, &rollups_deleted), 0);
    assert_int_equal(rollups_deleted, 3);
    assert_int_equal(deleted, 4);
    json_t *doc = rollups(f->db, 0, NULL, METRIC_ERROR_RATE, 0, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "series")), 1);
    point(series(doc, 0, 2, "lab", 1), 0, M1, 1.0, 1);
    json_decref(doc);
    assert_int_equal(db_telemetry_expire(f->db, M1 + 59999, 100, &deleted, &rollups_deleted), 0);
    assert_int_equal(rollups_deleted, 0);
    assert_int_equal(db_telemetry_expire(f->db, M1 + 60000, 100, &deleted, &rollups_deleted), 0);
    assert_int_equal(rollups_deleted, 1);
    assert_int_equal(deleted, 1);
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
        cmocka_unit_test_setup_teardown(rollups_sum_exactly, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(rollups_roll_back_with_their_batch, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(batch_rollups_match_one_at_a_time, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(batch_with_a_bad_row_stores_nothing, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(windows_keep_the_ring_they_were_received_in, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(query_new_columns_and_metric_values, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(device_sums_per_device, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(expire_deletes_ended_rollup_minutes, setup,
                                        db_fixture_teardown),
        cmocka_unit_test_setup_teardown(ring_stats_for_gates, setup, db_fixture_teardown),
        cmocka_unit_test_setup_teardown(expire_deletes_old_windows_in_chunks, setup,
                                        db_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

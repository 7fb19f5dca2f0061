/*
 * engine_tick.c - ef-bench-engine-tick: what one tick of the rollout engine
 * costs when a ring holds many devices, through the engine's public API
 * (server/rollout.h) on a real SQLite database made with the server's own
 * modules (ef_server_core), no broker (srv.mqtt NULL: nothing is published)
 * and no HTTP.
 *
 * usage: ef-bench-engine-tick [--devices N] [--ticks T] [--windows K]
 *                             [--committed SHARE] [--dir DIR] [--keep]
 *
 *   --devices N       devices in ring "broad" (default 10000)
 *   --ticks T         evaluation ticks timed (default 50)
 *   --windows K       telemetry windows of the rollout's version stored per
 *                     device before the timed ticks (default 0), read by the
 *                     rollout's two gates on every tick
 *   --committed SHARE share of the devices that report the version
 *                     committed before the timed ticks (default 0.5); the
 *                     others report it active, so the ring keeps running
 *   --dir DIR         where to make the temporary data directory (default /tmp)
 *   --keep            keep it (its path is printed)
 *
 * Set-up, not timed as a tick: a database migrated as `edgefleet-server
 * init` does, a model thyroid with versions 1 and 2 (signed manifests; no
 * artifacts, which the engine never reads), ring "broad", N devices in it by
 * explicit ring, thyroid@1 assigned to the ring (assign_ring) and reported
 * committed by every device. Then a rollout of thyroid@2 through "broad"
 * with success 1.0, deadline 3600 s and the gates error_rate <= 1 and
 * latency_p99_ms <= 1e6 (evaluated, never breached), created and started
 * with rollout_create and rollout_act.
 *
 * Timed:
 *   start tick    the first rollout_engine_tick: the ring goes running, its
 *                 N devices are recorded with their previous version and
 *                 each is given a signed assignment (assign_version: Ed25519
 *                 signature, one transaction per device);
 *   eval ticks    T more ticks after the devices reported (SHARE committed,
 *                 the rest active) and the windows were stored: each one
 *                 looks for devices without the assignment, counts the ring
 *                 by device action, reads the ring's telemetry for the gates
 *                 and decides "continue"; median, p90, min and max;
 *   show          db_rollout_json of the rollout (what GET
 *                 /api/v1/rollouts/{id} answers), median of 10;
 *   probe         while the evaluation ticks run, a second thread stores a
 *                 device report (db_device_report of device bench-000000,
 *                 its state unchanged) every 10 ms, as the server's broker
 *                 thread does for each `reported` message: the median and
 *                 the longest time one such write took, i.e. how long the
 *                 ticks keep the rest of the server from the database.
 *
 * Prints a short report and one JSON line ("result": ...). Build it in a
 * Release build without sanitizers; tests/bench/bench_rollout.sh runs it.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/db_telemetry.h"
#include "server/rollout.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000 /* rows per transaction while setting up */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "ef-bench-engine-tick: %s: %s\n", what, ef_strerror(rc));
    exit(1);
}

#define CHECK(what, call)                                                                          \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            die(what, rc_);                                                                        \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n) (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Stores thyroid@version with a signed manifest (fake artifact hash) and
 * loads it into *v. */
static void add_version(struct server *srv, const struct ef_keypair *release, int64_t model_id,
                        int64_t version, struct db_version *v)
{
    char sha[EF_HEX256_SIZE], sig[EF_SIG_B64_SIZE];
    snprintf(sha, sizeof(sha), "%064lld", (long long)version);
    json_t *doc = json_pack("{s:i, s:s, s:I, s:s, s:{s:s, s:i}, s:{s:i}, s:{s:i}, s:s}", "format",
                            1, "name", "thyroid", "version", (json_int_t)version, "backend", "fann",
                            "artifact", "sha256", sha, "size", 1000 + (int)version, "input", "size",
                            21, "output", "size", 3, "created_at", "2026-11-22T10:00:00.000Z");
    char *manifest = doc ? ef_json_dump(doc) : NULL;
    if (!manifest)
        die("manifest", EF_ENOMEM);
    ef_sign_b64(release->sk, manifest, strlen(manifest), sig);
    CHECK("db_version_insert",
          db_version_insert(srv->db, model_id, version, sha, 1000 + version, "fann", manifest,
                            strlen(manifest), sig, ef_now_ms(), NULL));
    CHECK("db_version_get", db_version_get(srv->db, "thyroid", version, v));
    free(manifest);
    json_decref(doc);
}

/* The probe thread: db_device_report every 10 ms until stopped. */
struct probe {
    struct db *db;
    atomic_bool stop;
    const char *state; /* what bench-000000 reported already */
    double *lat;       /* ms per write */
    size_t count, size;
    int rc;
};

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    struct timespec gap = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
    while (!atomic_load(&p->stop) && p->count < p->size) {
        double t0 = now_ms();
        int rc = db_device_report(p->db, "bench-000000", "production", "thyroid", 2, p->state, NULL,
                                  ef_now_ms());
        p->lat[p->count++] = now_ms() - t0;
        if (rc != 0) {
            p->rc = rc;
            break;
        }
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static void device_name(char out[32], long i)
{
    snprintf(out, 32, "bench-%06ld", i);
}

/* Every device reports state for thyroid@version (committed for the first
 * `committed` devices when state is NULL, active for the rest). */
static void report_all(struct server *srv, long n, int64_t version, const char *state,
                       long committed)
{
    char id[32];
    int64_t now = ef_now_ms();
    for (long i = 0; i < n; i += BATCH) {
        CHECK("db_tx_begin", db_tx_begin(srv->db));
        for (long j = i; j < n && j < i + BATCH; j++) {
            device_name(id, j);
            const char *s = state ? state : j < committed ? "committed" : "active";
            int rc = db_device_report(srv->db, id, "production", "thyroid", version, s, NULL, now);
            if (rc != 0) {
                db_tx_end(srv->db, rc);
                die("db_device_report", rc);
            }
        }
        CHECK("db_tx_end", db_tx_end(srv->db, 0));
    }
}

int main(int argc, char **argv)
{
    long devices = 10000, ticks = 50, windows = 0;
    double committed_share = 0.5;
    const char *base = "/tmp";
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--keep") == 0) {
            keep = true;
            continue;
        }
        if (!v)
            goto usage;
        if (strcmp(a, "--devices") == 0)
            devices = strtol(v, NULL, 10);
        else if (strcmp(a, "--ticks") == 0)
            ticks = strtol(v, NULL, 10);
        else if (strcmp(a, "--windows") == 0)
            windows = strtol(v, NULL, 10);
        else if (strcmp(a, "--committed") == 0)
            committed_share = strtod(v, NULL);
        else if (strcmp(a, "--dir") == 0)
            base = v;
        else
            goto usage;
        i++;
    }
    if (devices < 1 || devices > 1000000 || ticks < 1 || ticks > 100000 || windows < 0 ||
        windows > 1000 || !(committed_share >= 0 && committed_share < 1))
        goto usage;

    ef_log_set_level(EF_LOG_WARN);
    CHECK("ef_crypto_init", ef_crypto_init());

    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/ef-bench-engine.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/edgefleet.db", dir);

    struct server srv;
    struct ef_keypair release;
    struct db_version v1 = {0}, v2 = {0};
    struct rollout_engine *engine = NULL;
    int64_t model_id = 0, ring_id = 0, rollout_id = 0;
    char id[32];
    double t0, setup_ms, start_tick_ms, report_ms, windows_ms;
    memset(&srv, 0, sizeof(srv));

    /* --- set-up ------------------------------------------------------------ */
    t0 = now_ms();
    CHECK("db_open", db_open(path, &srv.db));
    CHECK("db_migrate", db_migrate(srv.db, NULL, NULL));
    ef_keypair_generate(&srv.server_key);
    ef_keypair_generate(&release);
    CHECK("db_model_create", db_model_create(srv.db, "thyroid", "", ef_now_ms(), &model_id));
    add_version(&srv, &release, model_id, 1, &v1);
    add_version(&srv, &release, model_id, 2, &v2);
    CHECK("db_ring_create", db_ring_create(srv.db, "broad", NULL, NULL, ef_now_ms()));
    CHECK("db_ring_id", db_ring_id(srv.db, "broad", &ring_id));
    for (long i = 0; i < devices; i += BATCH) {
        CHECK("db_tx_begin", db_tx_begin(srv.db));
        for (long j = i; j < devices && j < i + BATCH; j++) {
            char hash[EF_HEX256_SIZE];
            struct db_device_change c = {.set_ring = true, .ring_id = ring_id};
            device_name(id, j);
            ef_token_hash(id, hash);
            int rc = db_device_create(srv.db, id, hash, "default", NULL, ef_now_ms());
            if (rc == 0)
                rc = db_device_update(srv.db, id, &c);
            if (rc != 0) {
                db_tx_end(srv.db, rc);
                die("db_device_create", rc);
            }
        }
        CHECK("db_tx_end", db_tx_end(srv.db, 0));
    }
    json_t *assigned = NULL;
    CHECK("assign_ring thyroid@1",
          assign_ring(&srv, "broad", EF_SLOT_PRODUCTION, &v1, NULL, &assigned));
    if ((long)json_array_size(assigned) != devices) {
        fprintf(stderr, "assign_ring assigned %zu of %ld devices\n", json_array_size(assigned),
                devices);
        return 1;
    }
    json_decref(assigned);
    report_all(&srv, devices, 1, "committed", 0);
    setup_ms = now_ms() - t0;

    CHECK("rollout_engine_open", rollout_engine_open(&srv, &engine));
    const char *policy = "{\"success\": 1.0, \"error\": 0.0, \"min_devices\": 1, \"soak_s\": 0,"
                         " \"deadline_s\": 3600, \"on_breach\": \"pause\", \"gates\": ["
                         "{\"metric\": \"error_rate\", \"max\": 1.0, \"min_inferences\": 1},"
                         "{\"metric\": \"latency_p99_ms\", \"max\": 1000000.0,"
                         " \"min_inferences\": 1}]}";
    struct rollout_spec spec = {.version_id = v2.id,
                                .model = "thyroid",
                                .ring_ids = &ring_id,
                                .ring_count = 1,
                                .policy = policy,
                                .supersede = false};
    char msg[200] = "";
    CHECK("rollout_create", rollout_create(engine, &spec, &rollout_id, msg, sizeof(msg)));
    CHECK("rollout start", rollout_act(engine, rollout_id, ROLLOUT_START, msg, sizeof(msg)));

    /* --- the start tick -------------------------------------------------- */
    t0 = now_ms();
    CHECK("rollout_engine_tick (start)", rollout_engine_tick(engine));
    start_tick_ms = now_ms() - t0;

    /* --- devices report, windows arrive ------------------------------------ */
    long committed = (long)(committed_share * (double)devices);
    t0 = now_ms();
    report_all(&srv, devices, 2, NULL, committed);
    report_ms = now_ms() - t0;
    t0 = now_ms();
    if (windows > 0) {
        struct telemetry_window w = {.window_s = 60.0,
                                     .version = 2,
                                     .inferences = 100,
                                     .errors = 1,
                                     .has_latency = true,
                                     .p50 = 1.0,
                                     .p95 = 2.0,
                                     .p99 = 3.0,
                                     .max_ms = 4.0,
                                     .rss_bytes = -1};
        snprintf(w.model, sizeof(w.model), "thyroid");
        int64_t now = ef_now_ms();
        long rows = 0;
        CHECK("db_tx_begin", db_tx_begin(srv.db));
        for (long k = 0; k < windows; k++) {
            for (long j = 0; j < devices; j++) {
                device_name(id, j);
                w.window_start = now - (windows - k) * 60000;
                int rc = db_telemetry_insert(srv.db, id, now + 1, &w, NULL);
                if (rc != 0) {
                    db_tx_end(srv.db, rc);
                    die("db_telemetry_insert", rc);
                }
                if (++rows % BATCH == 0) {
                    CHECK("db_tx_end", db_tx_end(srv.db, 0));
                    CHECK("db_tx_begin", db_tx_begin(srv.db));
                }
            }
        }
        CHECK("db_tx_end", db_tx_end(srv.db, 0));
    }
    windows_ms = now_ms() - t0;

    /* --- the evaluation ticks ---------------------------------------------- */
    double *t = calloc((size_t)ticks, sizeof(double));
    struct probe probe = {
        .db = srv.db, .state = committed > 0 ? "committed" : "active", .size = 1000000};
    pthread_t probe_thread;
    probe.lat = calloc(probe.size, sizeof(double));
    if (!t || !probe.lat)
        die("calloc", EF_ENOMEM);
    if (pthread_create(&probe_thread, NULL, probe_main, &probe) != 0)
        die("pthread_create", EF_EIO);
    for (long i = 0; i < ticks; i++) {
        t0 = now_ms();
        CHECK("rollout_engine_tick", rollout_engine_tick(engine));
        t[i] = now_ms() - t0;
    }
    atomic_store(&probe.stop, true);
    pthread_join(probe_thread, NULL);
    if (probe.rc != 0 || probe.count == 0)
        die("the probe's db_device_report", probe.rc ? probe.rc : EF_EIO);
    qsort(probe.lat, probe.count, sizeof(double), cmp_double);
    double first_eval = t[0];
    qsort(t, (size_t)ticks, sizeof(double), cmp_double);

    /* What the ticks left: still running, every device counted. */
    struct db_rollout r = {0};
    CHECK("db_rollout_get", db_rollout_get(srv.db, rollout_id, &r));
    bool running = strcmp(r.state, "running") == 0 && strcmp(r.rings[0].state, "running") == 0;
    char state[40];
    snprintf(state, sizeof(state), "%s/%s", r.state, r.rings[0].state);
    db_rollout_clear(&r);
    double show[10];
    json_t *doc = NULL;
    for (int i = 0; i < 10; i++) {
        t0 = now_ms();
        CHECK("db_rollout_json", db_rollout_json(srv.db, rollout_id, &doc));
        show[i] = now_ms() - t0;
        if (i < 9)
            json_decref(doc);
    }
    qsort(show, 10, sizeof(double), cmp_double);
    const json_t *ring = json_array_get(json_object_get(doc, "rings"), 0);
    json_int_t counted = json_integer_value(json_object_get(ring, "devices"));
    json_int_t n_committed =
        json_integer_value(json_object_get(json_object_get(ring, "counts"), "committed"));
    json_int_t n_active =
        json_integer_value(json_object_get(json_object_get(ring, "counts"), "active"));
    json_decref(doc);

    printf("ring broad: %ld devices (%lld counted: %lld committed, %lld active), %ld windows "
           "of thyroid@2 per device; rollout %s after the ticks\n",
           devices, (long long)counted, (long long)n_committed, (long long)n_active, windows,
           state);
    printf("set-up                      %10.1f ms\n", setup_ms);
    printf("start tick (assign %6ld)    %10.1f ms  (%.1f us per device)\n", devices, start_tick_ms,
           start_tick_ms * 1000.0 / (double)devices);
    printf("reports stored              %10.1f ms\n", report_ms);
    printf("windows stored              %10.1f ms\n", windows_ms);
    printf("eval tick x %-5ld median    %10.2f ms  p90 %.2f  min %.2f  max %.2f  first %.2f\n",
           ticks, quantile(t, (size_t)ticks, 0.5), quantile(t, (size_t)ticks, 0.9), t[0],
           t[ticks - 1], first_eval);
    printf("rollout object (show)       %10.2f ms median of 10\n", quantile(show, 10, 0.5));
    printf("probe: %zu device reports during the ticks, median %.2f ms, p99 %.2f ms, max %.2f ms\n",
           probe.count, quantile(probe.lat, probe.count, 0.5),
           quantile(probe.lat, probe.count, 0.99), probe.lat[probe.count - 1]);
    printf("{\"result\": {\"devices\": %ld, \"windows_per_device\": %ld, \"committed\": %lld, "
           "\"ticks\": %ld, \"start_tick_ms\": %.3f, \"eval_tick_median_ms\": %.3f, "
           "\"eval_tick_p90_ms\": %.3f, \"eval_tick_min_ms\": %.3f, \"eval_tick_max_ms\": %.3f, "
           "\"show_median_ms\": %.3f, \"probe_writes\": %zu, \"probe_median_ms\": %.3f, "
           "\"probe_max_ms\": %.3f, \"setup_ms\": %.1f, \"still_running\": %s}}\n",
           devices, windows, (long long)n_committed, ticks, start_tick_ms,
           quantile(t, (size_t)ticks, 0.5), quantile(t, (size_t)ticks, 0.9), t[0], t[ticks - 1],
           quantile(show, 10, 0.5), probe.count, quantile(probe.lat, probe.count, 0.5),
           probe.lat[probe.count - 1], setup_ms, running ? "true" : "false");
    free(t);
    free(probe.lat);

    rollout_engine_stop(engine);
    db_version_clear(&v1);
    db_version_clear(&v2);
    db_close(srv.db);
    if (keep)
        fprintf(stderr, "ef-bench-engine-tick: kept %s\n", dir);
    else
        nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return running && counted == devices ? 0 : 1;

usage:
    fprintf(stderr, "usage: ef-bench-engine-tick [--devices N] [--ticks T] [--windows K] "
                    "[--committed SHARE<1] [--dir DIR] [--keep]\n");
    return 2;
}

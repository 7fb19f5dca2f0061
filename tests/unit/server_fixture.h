/*
 * server_fixture.h - a struct server for the unit tests of the modules that
 * take one (assign, rollout, monitor): a migrated database in a fresh
 * temporary directory, a server key, no broker (srv.mqtt is NULL, so nothing
 * is published), the model "thyroid" and a release key that signs its
 * versions. A test embeds a struct server_fixture in its own fixture, calls
 * server_fixture_open in its cmocka setup and server_fixture_close in its
 * teardown. Static inline functions only; they fail the test on error.
 * Include after <cmocka.h>, with _XOPEN_SOURCE defined as
 * tmpdir_fixture.h says.
 */
#ifndef EF_TESTS_SERVER_FIXTURE_H
#define EF_TESTS_SERVER_FIXTURE_H

#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/json_util.h"
#include "tmpdir_fixture.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVER_FIXTURE_NOW 1763805600000LL /* 2025-11-22T10:00:00.000Z, Unix ms */

struct server_fixture {
    char dir[TMPDIR_SIZE];       /* the temporary directory holding the database */
    char path[TMPDIR_SIZE + 16]; /* the database file, to reopen it */
    struct server srv;           /* db open and migrated, server_key set; no broker */
    struct ef_keypair release;   /* signs the manifests of server_fixture_add_version */
    int64_t model_id;            /* row id of the model "thyroid" */
};

/* Fills a zeroed f: a directory /tmp/ef_test_<name>_XXXXXX with a migrated
 * database, new server and release keys, the model "thyroid". */
static inline void server_fixture_open(struct server_fixture *f, const char *name)
{
    assert_int_equal(ef_crypto_init(), 0);
    assert_int_equal(tmpdir_make(f->dir, name), 0);
    snprintf(f->path, sizeof(f->path), "%s/edgefleet.db", f->dir);
    assert_int_equal(db_open(f->path, &f->srv.db), 0);
    assert_int_equal(db_migrate(f->srv.db, NULL, NULL), 0);
    ef_keypair_generate(&f->srv.server_key);
    ef_keypair_generate(&f->release);
    assert_int_equal(db_model_create(f->srv.db, "thyroid", "", SERVER_FIXTURE_NOW, &f->model_id),
                     0);
}

/* Closes the database and removes the directory; the test stops what it
 * started on f->srv (engines, monitor) first. */
static inline void server_fixture_close(struct server_fixture *f)
{
    db_close(f->srv.db);
    f->srv.db = NULL;
    tmpdir_remove(f->dir);
}

/* Stores thyroid@version with a valid manifest signed by f->release, for
 * device_class (NULL: any class), and loads it into *v (the caller clears
 * it with db_version_clear). */
static inline void server_fixture_add_version(struct server_fixture *f, int64_t version,
                                              const char *device_class, struct db_version *v)
{
    char sha[EF_HEX256_SIZE], sig[EF_SIG_B64_SIZE];
    snprintf(sha, sizeof(sha), "%064lld", (long long)version);
    json_t *doc = json_pack("{s:i, s:s, s:I, s:s, s:s?, s:{s:s, s:i}, s:{s:i}, s:{s:i}, s:s}",
                            "format", 1, "name", "thyroid", "version", (json_int_t)version,
                            "backend", "fann", "device_class", device_class, "artifact", "sha256",
                            sha, "size", 1000 + (int)version, "input", "size", 21, "output", "size",
                            3, "created_at", "2025-11-22T10:00:00.000Z");
    char *manifest = ef_json_dump(doc);
    assert_non_null(manifest);
    ef_sign_b64(f->release.sk, manifest, strlen(manifest), sig);
    assert_int_equal(db_version_insert(f->srv.db, f->model_id, version, sha, 1000 + version, "fann",
                                       manifest, strlen(manifest), sig, SERVER_FIXTURE_NOW, NULL),
                     0);
    assert_int_equal(db_version_get(f->srv.db, "thyroid", version, v), 0);
    free(manifest);
    json_decref(doc);
}

/* Creates the ring name (no selector) and returns its row id. */
static inline int64_t server_fixture_ring(struct server_fixture *f, const char *name)
{
    int64_t id = 0;
    assert_int_equal(db_ring_create(f->srv.db, name, NULL, NULL, SERVER_FIXTURE_NOW), 0);
    assert_int_equal(db_ring_id(f->srv.db, name, &id), 0);
    return id;
}

/* Enrolls device id (class "default") into ring_id, assigned v in its
 * production slot and reporting it committed, as the broker client would
 * record it. */
static inline void server_fixture_enroll(struct server_fixture *f, const char *id, int64_t ring_id,
                                         const struct db_version *v)
{
    char hash[EF_HEX256_SIZE];
    struct db_device_change c = {.set_ring = true, .ring_id = ring_id};
    ef_token_hash(id, hash);
    assert_int_equal(db_device_create(f->srv.db, id, hash, "default", NULL, SERVER_FIXTURE_NOW), 0);
    assert_int_equal(db_device_update(f->srv.db, id, &c), 0);
    assert_int_equal(assign_version(&f->srv, id, EF_SLOT_PRODUCTION, v, NULL, NULL), 0);
    assert_int_equal(db_device_report(f->srv.db, id, "production", "thyroid", v->version,
                                      "committed", NULL, ef_now_ms()),
                     0);
}

#endif

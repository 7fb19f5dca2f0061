/*
 * db_fixture.h - a migrated SQLite database in a fresh temporary directory,
 * one per test, for the server's unit tests. db_fixture_setup and
 * db_fixture_teardown are cmocka setup and teardown functions (DB_TEST
 * names a test with both); the state they pass to the test is a struct
 * db_fixture. Static inline functions only; include after <cmocka.h>, with
 * _XOPEN_SOURCE defined as tmpdir_fixture.h says.
 */
#ifndef EF_TESTS_DB_FIXTURE_H
#define EF_TESTS_DB_FIXTURE_H

#include "server/db.h"
#include "tmpdir_fixture.h"

#include <stdio.h>
#include <stdlib.h>

struct db_fixture {
    char dir[TMPDIR_SIZE]; /* the temporary directory holding the database */
    struct db *db;         /* open, migrated to the latest schema */
};

/* Closes the database and removes its directory; accepts NULL. 0 or -1. */
static inline int db_fixture_free(struct db_fixture *f)
{
    int rc = 0;
    if (!f)
        return 0;
    db_close(f->db);
    if (f->dir[0])
        rc = tmpdir_remove(f->dir);
    free(f);
    return rc;
}

/* cmocka setup: *state becomes a new struct db_fixture. 0 or -1. */
static inline int db_fixture_setup(void **state)
{
    struct db_fixture *f = calloc(1, sizeof(*f));
    char path[TMPDIR_SIZE + 16];
    int rc = -1;
    if (f && tmpdir_make(f->dir, "db") == 0) {
        snprintf(path, sizeof(path), "%s/edgefleet.db", f->dir);
        if (db_open(path, &f->db) == 0 && db_migrate(f->db, NULL, NULL) == 0)
            rc = 0;
    }
    if (rc != 0) {
        db_fixture_free(f);
        f = NULL;
    }
    *state = f;
    return rc;
}

/* cmocka teardown of db_fixture_setup. */
static inline int db_fixture_teardown(void **state)
{
    return db_fixture_free(*state);
}

/* A cmocka test of a struct CMUnitTest array, run on a fresh database. */
#define DB_TEST(test) cmocka_unit_test_setup_teardown(test, db_fixture_setup, db_fixture_teardown)

#endif

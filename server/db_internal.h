/*
 * db_internal.h - what the db*.c files share, and nothing else includes.
 */
#ifndef EF_DB_INTERNAL_H
#define EF_DB_INTERNAL_H

#include "server/db.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#define DB_STMT_CACHE 64

struct db {
    sqlite3 *conn;                 /* the one connection */
    pthread_mutex_t lock;          /* recursive: guards conn and the cache */
    int tx_depth;                  /* nesting of db_tx_begin */
    struct {
        const char *sql;           /* static string; compared by address */
        sqlite3_stmt *stmt;
    } cache[DB_STMT_CACHE];        /* prepared statements, kept for reuse */
};

void db_lock(struct db *db);
void db_unlock(struct db *db);

/* Returns the cached prepared statement for a static SQL string, reset and
 * with bindings cleared; NULL on error (logged). The lock must be held. */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);

/* Steps a statement that returns no rows: 0, EF_EEXIST on a UNIQUE or
 * PRIMARY KEY violation, EF_ECONFLICT on another constraint, EF_EDB. */
int db_exec_stmt(struct db *db, sqlite3_stmt *st);

/* Translates a SQLite result code and logs unexpected ones. */
int db_error(struct db *db, int sqlite_rc);

/* Binds a NUL-terminated string or NULL (as SQL NULL). */
void db_bind_text(sqlite3_stmt *st, int index, const char *text);

/* Reads every remaining row of st into a new JSON array of objects keyed by
 * column name: INTEGER, REAL, TEXT and NULL map to JSON; a column whose name
 * ends in "_json" holds JSON text and is stored parsed, under the name without
 * that suffix. EF_EDB, EF_ENOMEM. */
int db_rows_json(struct db *db, sqlite3_stmt *st, json_t **out);

/* Like db_rows_json for at most one row: EF_ENOENT when there is none. */
int db_row_json(struct db *db, sqlite3_stmt *st, json_t **out);

#endif

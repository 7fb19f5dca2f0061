/*
 * db_internal.h - what the db*.c files share, and nothing else includes.
 */
#ifndef EF_DB_INTERNAL_H
#define EF_DB_INTERNAL_H

#include "server/db.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>

#define DB_STMT_CACHE 128

struct db {
    sqlite3 *conn;        /* the one connection */
    pthread_mutex_t lock; /* recursive: guards conn and the cache */
    int tx_depth;         /* nesting of db_tx_begin */
    struct {
        const char *sql; /* static string; compared by address */
        sqlite3_stmt *stmt;
    } cache[DB_STMT_CACHE]; /* prepared statements, kept for reuse */
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

/* Steps a statement once: 0 with a row ready to read, EF_ENOENT when there
 * are no more rows, or the translated error (never 0 for a failed step). */
int db_step_row(struct db *db, sqlite3_stmt *st);

/* Copies a text column into a buffer of size bytes (empty for NULL),
 * truncating at a character boundary so that the copy stays valid UTF-8. */
void db_column_copy(sqlite3_stmt *st, int col, char *buf, size_t size);

/*
 * One statement in one call. Each of the functions below takes the lock,
 * gets the cached statement for the static string sql, binds the parameters
 * that follow binds, runs it and resets it; inside a db_tx_begin they join
 * the transaction (the lock is recursive).
 *
 * binds has one letter per parameter, in order, saying what the variadic
 * arguments are (NULL or "" for none):
 *   's'  const char *                 text; NULL binds NULL
 *   'n'  const char *, size_t         text of that many bytes
 *   'i'  int64_t                      an integer (cast narrower types)
 *   'I'  const int64_t *              an integer; NULL binds NULL
 *   'd'  double
 */

/* How many rows a query is read for. */
enum db_shape {
    DB_ONE, /* the first; none is EF_ENOENT */
    DB_ALL, /* every one; none is fine */
};

/* Runs a query and calls row(st, arg) for its rows as shape says; row reads
 * the columns of st and returns 0, or an error code that stops the query
 * and is returned. EF_ENOENT (DB_ONE), EF_EDB. */
int db_select(struct db *db, const char *sql, enum db_shape shape,
              int (*row)(sqlite3_stmt *st, void *arg), void *arg, const char *binds, ...);

/* Reads the rows of a query as db_rows_json does: *out is a new array
 * (DB_ALL) or the first row's object (DB_ONE). EF_ENOENT (DB_ONE), EF_EDB,
 * EF_ENOMEM. */
int db_select_json(struct db *db, const char *sql, enum db_shape shape, json_t **out,
                   const char *binds, ...);

/* The first column of the first row a query returns, as an integer into
 * *out (may be NULL: only whether there is a row), or as text copied as
 * db_column_copy does. EF_ENOENT when there is no row, EF_EDB. */
int db_select_int(struct db *db, const char *sql, int64_t *out, const char *binds, ...);
int db_select_text(struct db *db, const char *sql, char *buf, size_t size, const char *binds, ...);

/* Runs a statement that returns no rows, with db_exec_stmt's results. */
int db_exec(struct db *db, const char *sql, const char *binds, ...);

/* Like db_exec, and EF_ENOENT when the statement changed no row. */
int db_exec_one(struct db *db, const char *sql, const char *binds, ...);

/* Like db_exec for an INSERT; on success *id (may be NULL) receives the
 * new row's id. */
int db_insert(struct db *db, const char *sql, int64_t *id, const char *binds, ...);

/* Inside the caller's transaction: stores envelope as device_id's desired
 * state with seq (db_fleet.c). EF_ESTALE when seq is not above the stored
 * one, EF_ENOENT when there is no active such device, EF_EDB. */
int db_device_desired_put(struct db *db, const char *device_id, int64_t seq, const char *envelope);

#endif

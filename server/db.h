/*
 * db.h - the SQLite store: opening, migrations, transactions, audit log.
 *
 * The db*.c files are the only files with SQL. One connection in WAL mode is
 * shared by all threads behind a recursive mutex: every db_* function locks it
 * for its duration, and a caller that needs several calls to be one atomic
 * change wraps them in db_tx_begin()/db_tx_end(), which holds the lock and an
 * IMMEDIATE transaction across them. Resource functions are declared in
 * db_registry.h (models, versions) and db_fleet.h (devices, rings, tokens).
 * Times are Unix milliseconds.
 */
#ifndef EF_DB_H
#define EF_DB_H

#include <jansson.h>
#include <stdint.h>

struct db;

/* Opens (creating if needed) the database at path, in WAL mode with foreign
 * keys on. *out is owned by the caller (db_close). EF_EDB, EF_ENOMEM. */
int db_open(const char *path, struct db **out);

/* Closes and frees; accepts NULL. */
void db_close(struct db *db);

/* Applies the migrations embedded from schema/NNN_*.sql that are newer than
 * PRAGMA user_version, each in its own transaction. *from and *to (may be
 * NULL) receive the versions before and after. EF_EDB. */
int db_migrate(struct db *db, int *from, int *to);

/* Starts an atomic change: takes the lock and BEGIN IMMEDIATE. Calls nest;
 * only the outermost begins and ends the transaction. */
int db_tx_begin(struct db *db);

/* Ends the change begun by db_tx_begin: COMMIT when rc == 0, ROLLBACK
 * otherwise; releases the lock. Returns rc, or EF_EDB if COMMIT failed. */
int db_tx_end(struct db *db, int rc);

/* Appends one row to the audit log (append-only). */
int db_audit_append(struct db *db, int64_t ts, const char *actor, const char *action,
                    const char *target, const char *outcome, unsigned status, const char *detail);

/* Newest entries first, at most limit, with id < before (0: no bound).
 * *out is a new JSON array of {id, ts, actor, action, target, outcome, status, detail}. */
int db_audit_list(struct db *db, int64_t before, int limit, json_t **out);

/* Row counts for /metrics and /healthz: a new object
 * {models, versions, devices, devices_online, rings}. */
int db_counts(struct db *db, json_t **out);

#endif

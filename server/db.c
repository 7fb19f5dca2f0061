/*
 * db.c - the SQLite connection: opening, migrations, the statement cache,
 * transactions, rows to JSON, the audit log and counts.
 */
#include "server/db_internal.h"
#include "server/embedded.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

void db_lock(struct db *db)
{
    pthread_mutex_lock(&db->lock);
}

void db_unlock(struct db *db)
{
    pthread_mutex_unlock(&db->lock);
}

int db_error(struct db *db, int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return EF_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return EF_EBUSY;
    case SQLITE_CONSTRAINT:
        if (sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return EF_EEXIST;
        return EF_ECONFLICT;
    default:
        ef_error("db_error", "code=%d message=\"%s\"", sqlite_rc, sqlite3_errmsg(db->conn));
        return EF_EDB;
    }
}

int db_open(const char *path, struct db **out)
{
    int rc = 0;
    pthread_mutexattr_t attr;
    struct db *db = calloc(1, sizeof(*db));
    *out = NULL;
    if (!db)
        return EF_ENOMEM;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&db->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (sqlite3_open_v2(path, &db->conn,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        ef_error("db_open", "path=%s message=\"%s\"", path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        rc = EF_EDB;
        goto out;
    }
    sqlite3_busy_timeout(db->conn, 5000);
    /* WAL lets readers in other processes (sqlite3 CLI, backups) run beside
     * our writer; NORMAL sync is durable across process crashes in WAL. */
    if (sqlite3_exec(db->conn,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "PRAGMA foreign_keys=ON;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_error(db, sqlite3_errcode(db->conn));
        rc = rc ? rc : EF_EDB;
        goto out;
    }
    *out = db;
    db = NULL;
out:
    db_close(db);
    return rc;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (int i = 0; i < DB_STMT_CACHE; i++)
        sqlite3_finalize(db->cache[i].stmt);
    sqlite3_close(db->conn);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

sqlite3_stmt *db_stmt(struct db *db, const char *sql)
{
    int free_slot = -1;
    for (int i = 0; i < DB_STMT_CACHE; i++) {
        if (db->cache[i].sql == sql) {
            sqlite3_reset(db->cache[i].stmt);
            sqlite3_clear_bindings(db->cache[i].stmt);
            return db->cache[i].stmt;
        }
        if (!db->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
        SQLITE_OK) {
        ef_error("db_prepare", "message=\"%s\"", sqlite3_errmsg(db->conn));
        return NULL;
    }
    /* A full cache is a programming error worth knowing about, not fatal:
     * the statement still works, it is just prepared again next time. */
    if (free_slot < 0) {
        ef_warn("db_stmt_cache_full", "size=%d", DB_STMT_CACHE);
        sqlite3_finalize(db->cache[0].stmt);
        free_slot = 0;
    }
    db->cache[free_slot].sql = sql;
    db->cache[free_slot].stmt = st;
    return st;
}

int db_exec_stmt(struct db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int result = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_error(db, sqlite3_extended_errcode(db->conn));
    sqlite3_reset(st);
    return result;
}

void db_bind_text(sqlite3_stmt *st, int index, const char *text)
{
    if (text)
        sqlite3_bind_text(st, index, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, index);
}

static json_t *column_json(sqlite3_stmt *st, int col, const char *name)
{
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, "_json") == 0 &&
        sqlite3_column_type(st, col) == SQLITE_TEXT) {
        json_t *parsed = json_loads((const char *)sqlite3_column_text(st, col), 0, NULL);
        return parsed ? parsed : json_null();
    }
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, col));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, col));
    case SQLITE_TEXT:
        return json_stringn((const char *)sqlite3_column_text(st, col),
                            (size_t)sqlite3_column_bytes(st, col));
    default:
        return json_null();
    }
}

static json_t *row_object(sqlite3_stmt *st)
{
    json_t *obj = json_object();
    for (int c = 0; obj && c < sqlite3_column_count(st); c++) {
        const char *name = sqlite3_column_name(st, c);
        size_t n = strlen(name);
        char key[64];
        if (n > 5 && strcmp(name + n - 5, "_json") == 0 && n - 5 < sizeof(key)) {
            memcpy(key, name, n - 5);
            key[n - 5] = '\0';
        } else {
            snprintf(key, sizeof(key), "%s", name);
        }
        json_object_set_new(obj, key, column_json(st, c, name));
    }
    return obj;
}

int db_rows_json(struct db *db, sqlite3_stmt *st, json_t **out)
{
    int rc = 0, step;
    json_t *rows = json_array();
    *out = NULL;
    if (!rows)
        return EF_ENOMEM;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_append_new(rows, row_object(st)) != 0) {
            rc = EF_ENOMEM;
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_error(db, sqlite3_extended_errcode(db->conn));
    sqlite3_reset(st);
    if (rc != 0) {
        json_decref(rows);
        return rc;
    }
    *out = rows;
    return 0;
}

int db_row_json(struct db *db, sqlite3_stmt *st, json_t **out)
{
    json_t *rows = NULL;
    int rc = db_rows_json(db, st, &rows);
    *out = NULL;
    if (rc != 0)
        return rc;
    if (json_array_size(rows) == 0)
        rc = EF_ENOENT;
    else
        *out = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return rc;
}

int db_tx_begin(struct db *db)
{
    db_lock(db);
    if (db->tx_depth++ > 0)
        return 0;
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db->tx_depth--;
        db_unlock(db);
        return db_error(db, rc) ? db_error(db, rc) : EF_EDB;
    }
    return 0;
}

int db_tx_end(struct db *db, int rc)
{
    if (--db->tx_depth == 0) {
        if (rc == 0) {
            int src = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
            if (src != SQLITE_OK) {
                rc = EF_EDB;
                ef_error("db_commit", "message=\"%s\"", sqlite3_errmsg(db->conn));
                sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
            }
        } else {
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    db_unlock(db);
    return rc;
}

/* Migration files are named NNN_name.sql; NNN is the user_version they bring. */
static int migration_number(const char *name)
{
    size_t n = strlen(name);
    if (n < 8 || strcmp(name + n - 4, ".sql") != 0 || name[3] != '_')
        return -1;
    int v = 0;
    for (int i = 0; i < 3; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

int db_migrate(struct db *db, int *from, int *to)
{
    int rc = 0, version = 0;
    sqlite3_stmt *st = NULL;
    db_lock(db);
    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = EF_EDB;
        goto out;
    }
    version = sqlite3_column_int(st, 0);
    if (from)
        *from = version;
    for (const struct ef_embedded_file *f = ef_embedded; f->name; f++) {
        int n = migration_number(f->name);
        if (n <= version)
            continue;
        char pragma[48];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", n);
        char *err = NULL;
        if ((rc = db_tx_begin(db)) != 0)
            goto out;
        if (sqlite3_exec(db->conn, f->data, NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(db->conn, pragma, NULL, NULL, &err) != SQLITE_OK) {
            ef_error("db_migrate", "file=%s message=\"%s\"", f->name, err ? err : "?");
            sqlite3_free(err);
            db_tx_end(db, EF_EDB);
            rc = EF_EDB;
            goto out;
        }
        if ((rc = db_tx_end(db, 0)) != 0)
            goto out;
        ef_info("db_migrated", "file=%s user_version=%d", f->name, n);
        version = n;
    }
out:
    if (to)
        *to = version;
    sqlite3_finalize(st);
    db_unlock(db);
    return rc;
}

int db_audit_append(struct db *db, int64_t ts, const char *actor, const char *action,
                    const char *target, const char *outcome, unsigned status, const char *detail)
{
    static const char sql[] = "INSERT INTO audit_log (ts, actor, action, target, outcome, "
                              "status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        sqlite3_bind_int64(st, 1, ts);
        db_bind_text(st, 2, actor);
        db_bind_text(st, 3, action);
        db_bind_text(st, 4, target);
        db_bind_text(st, 5, outcome);
        sqlite3_bind_int(st, 6, (int)status);
        db_bind_text(st, 7, detail ? detail : "");
        rc = db_exec_stmt(db, st);
    }
    db_unlock(db);
    return rc;
}

int db_audit_list(struct db *db, int64_t before, int limit, json_t **out)
{
    static const char sql[] =
        "SELECT id, ts, actor, action, target, outcome, status, detail FROM audit_log "
        "WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st) {
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int(st, 2, limit);
        rc = db_rows_json(db, st, out);
    }
    db_unlock(db);
    return rc;
}

int db_counts(struct db *db, json_t **out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM models) AS models,"
        " (SELECT count(*) FROM model_versions) AS versions,"
        " (SELECT count(*) FROM devices) AS devices,"
        " (SELECT count(*) FROM devices WHERE online = 1) AS devices_online,"
        " (SELECT count(*) FROM rings) AS rings";
    int rc = EF_EDB;
    *out = NULL;
    db_lock(db);
    sqlite3_stmt *st = db_stmt(db, sql);
    if (st)
        rc = db_row_json(db, st, out);
    db_unlock(db);
    return rc;
}

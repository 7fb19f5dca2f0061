/*
 * db.c - the SQLite connection: opening, migrations, the statement cache,
 * one-call statements, transactions, rows to JSON, the audit log and counts.
 */
#include "server/db_internal.h"
#include "server/embedded.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
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
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
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
    int result = rc == SQLITE_DONE || rc == SQLITE_ROW
                     ? 0
                     : db_error(db, sqlite3_extended_errcode(db->conn));
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

int db_step_row(struct db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return EF_ENOENT;
    rc = db_error(db, sqlite3_extended_errcode(db->conn));
    return rc ? rc : EF_EDB;
}

void db_column_copy(sqlite3_stmt *st, int col, char *buf, size_t size)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    size_t n = text ? strlen(text) : 0;
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(buf, text, n);
    buf[n] = '\0';
}

/* Steps st through its rows and calls row(st, arg) on each: on the first
 * only for DB_ONE, where no row at all is EF_ENOENT. Stops at the first
 * error, from SQLite or from row, and returns it. Resets st. */
static int step_rows(struct db *db, sqlite3_stmt *st, enum db_shape shape,
                     int (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
    int rc = 0, step = 0;
    bool found = false;
    while (rc == 0 && (step = db_step_row(db, st)) == 0) {
        found = true;
        rc = row(st, arg);
        if (shape == DB_ONE)
            break;
    }
    sqlite3_reset(st);
    if (step == EF_ENOENT && (found || shape == DB_ALL))
        step = 0; /* the end of the rows */
    return rc ? rc : step;
}

/* A row callback: appends the row as a JSON object to the array rows. */
static int append_row_object(sqlite3_stmt *st, void *rows)
{
    return json_array_append_new(rows, row_object(st)) == 0 ? 0 : EF_ENOMEM;
}

int db_rows_json(struct db *db, sqlite3_stmt *st, json_t **out)
{
    json_t *rows = json_array();
    int rc = rows ? step_rows(db, st, DB_ALL, append_row_object, rows) : EF_ENOMEM;
    *out = NULL;
    if (rc == 0)
        *out = json_incref(rows);
    json_decref(rows);
    return rc;
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

/* Returns the cached statement for sql with the parameters described by
 * binds (see db_internal.h) taken from ap and bound; NULL on error. The lock
 * must be held. */
static sqlite3_stmt *stmt_bound(struct db *db, const char *sql, const char *binds, va_list ap)
{
    sqlite3_stmt *st = db_stmt(db, sql);
    for (int i = 0, p = 1; st && binds && binds[i]; i++, p++) {
        const char *text;
        const int64_t *value;
        switch (binds[i]) {
        case 's':
            db_bind_text(st, p, va_arg(ap, const char *));
            break;
        case 'n':
            text = va_arg(ap, const char *);
            sqlite3_bind_text(st, p, text, (int)va_arg(ap, size_t), SQLITE_TRANSIENT);
            break;
        case 'i':
            sqlite3_bind_int64(st, p, va_arg(ap, int64_t));
            break;
        case 'I':
            if ((value = va_arg(ap, const int64_t *)))
                sqlite3_bind_int64(st, p, *value);
            break;
        case 'd':
            sqlite3_bind_double(st, p, va_arg(ap, double));
            break;
        default:
            assert(!"db: unknown bind letter");
        }
    }
    return st;
}

/* The body of db_select and the db_select_* functions. */
static int select_va(struct db *db, const char *sql, enum db_shape shape,
                     int (*row)(sqlite3_stmt *st, void *arg), void *arg, const char *binds,
                     va_list ap)
{
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = stmt_bound(db, sql, binds, ap);
    if (st)
        rc = step_rows(db, st, shape, row, arg);
    db_unlock(db);
    return rc;
}

int db_select(struct db *db, const char *sql, enum db_shape shape,
              int (*row)(sqlite3_stmt *st, void *arg), void *arg, const char *binds, ...)
{
    va_list ap;
    va_start(ap, binds);
    int rc = select_va(db, sql, shape, row, arg, binds, ap);
    va_end(ap);
    return rc;
}

int db_select_json(struct db *db, const char *sql, enum db_shape shape, json_t **out,
                   const char *binds, ...)
{
    va_list ap;
    json_t *rows = json_array();
    int rc = EF_ENOMEM;
    *out = NULL;
    if (rows) {
        va_start(ap, binds);
        rc = select_va(db, sql, shape, append_row_object, rows, binds, ap);
        va_end(ap);
    }
    if (rc == 0)
        *out = json_incref(shape == DB_ONE ? json_array_get(rows, 0) : rows);
    json_decref(rows);
    return rc;
}

/* A row callback: the first column as an integer into *(int64_t *)out,
 * unless out is NULL. */
static int column_int(sqlite3_stmt *st, void *out)
{
    if (out)
        *(int64_t *)out = sqlite3_column_int64(st, 0);
    return 0;
}

int db_select_int(struct db *db, const char *sql, int64_t *out, const char *binds, ...)
{
    va_list ap;
    va_start(ap, binds);
    int rc = select_va(db, sql, DB_ONE, column_int, out, binds, ap);
    va_end(ap);
    return rc;
}

/* Where db_select_text copies its column. */
struct text_buf {
    char *buf;   /* the caller's buffer */
    size_t size; /* its bytes */
};

/* A row callback: the first column copied into the struct text_buf out. */
static int column_text(sqlite3_stmt *st, void *out)
{
    struct text_buf *text = out;
    db_column_copy(st, 0, text->buf, text->size);
    return 0;
}

int db_select_text(struct db *db, const char *sql, char *buf, size_t size, const char *binds, ...)
{
    struct text_buf text = {buf, size};
    va_list ap;
    va_start(ap, binds);
    int rc = select_va(db, sql, DB_ONE, column_text, &text, binds, ap);
    va_end(ap);
    return rc;
}

/* What write_va reports besides success. */
enum write_check {
    WRITE_ANY,   /* nothing */
    WRITE_ONE,   /* EF_ENOENT when no row changed */
    WRITE_ROWID, /* the new row's id */
};

/* The body of db_exec, db_exec_one and db_insert. */
static int write_va(struct db *db, const char *sql, enum write_check check, int64_t *id,
                    const char *binds, va_list ap)
{
    int rc = EF_EDB;
    db_lock(db);
    sqlite3_stmt *st = stmt_bound(db, sql, binds, ap);
    if (st)
        rc = db_exec_stmt(db, st);
    if (rc == 0 && check == WRITE_ONE && sqlite3_changes(db->conn) == 0)
        rc = EF_ENOENT;
    if (rc == 0 && check == WRITE_ROWID && id)
        *id = sqlite3_last_insert_rowid(db->conn);
    db_unlock(db);
    return rc;
}

int db_exec(struct db *db, const char *sql, const char *binds, ...)
{
    va_list ap;
    va_start(ap, binds);
    int rc = write_va(db, sql, WRITE_ANY, NULL, binds, ap);
    va_end(ap);
    return rc;
}

int db_exec_one(struct db *db, const char *sql, const char *binds, ...)
{
    va_list ap;
    va_start(ap, binds);
    int rc = write_va(db, sql, WRITE_ONE, NULL, binds, ap);
    va_end(ap);
    return rc;
}

int db_insert(struct db *db, const char *sql, int64_t *id, const char *binds, ...)
{
    va_list ap;
    va_start(ap, binds);
    int rc = write_va(db, sql, WRITE_ROWID, id, binds, ap);
    va_end(ap);
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
    /* A statement left pending would make a migration's DROP fail (locked). */
    sqlite3_reset(st);
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
    return db_exec(db, sql, "issssis", ts, actor, action, target, outcome, (int64_t)status,
                   detail ? detail : "");
}

int db_audit_list(struct db *db, int64_t before, int limit, json_t **out)
{
    static const char sql[] =
        "SELECT id, ts, actor, action, target, outcome, status, detail FROM audit_log "
        "WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2";
    return db_select_json(db, sql, DB_ALL, out, "ii", before, (int64_t)limit);
}

int db_counts(struct db *db, json_t **out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM models) AS models,"
        " (SELECT count(*) FROM model_versions) AS versions,"
        " (SELECT count(*) FROM devices WHERE decommissioned_at IS NULL) AS devices,"
        " (SELECT count(*) FROM devices WHERE online = 1 AND decommissioned_at IS NULL)"
        " AS devices_online,"
        " (SELECT count(*) FROM rings) AS rings";
    return db_select_json(db, sql, DB_ONE, out, NULL);
}

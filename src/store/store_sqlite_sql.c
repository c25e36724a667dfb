// SPDX-License-Identifier: MIT
/*
 * store_sqlite_sql.c - SQL of user code on the store's SQLite database: the statements of
 * herald_sql_exec/_query and herald_tx_exec/_query, their statement cache, the authorizer that
 * keeps user SQL away from Herald's own tables, and the nested savepoint of effectively-once
 * batches.
 *
 * Statement cache: per connection, a fixed open-addressing table of SQL text -> prepared
 * statement (CACHE_SLOTS). When it fills up it is emptied (statements finalized) and refilled:
 * programs use a bounded set of SQL texts, so this is rare and keeps the code small.
 * Authorizer: installed once per connection at open (sqlite3_set_authorizer expires every
 * prepared statement, so it must not be toggled per call) and active while the connection's
 * user_mode flag is set - for the whole of every user call, prepare AND step, because SQLite
 * recompiles a cached statement after any schema change (a user may create a view or trigger
 * that reaches Herald's tables after the statement was first checked) and codes trigger bodies
 * into the statement that fires them. It then denies any action on a table or index named
 * herald_*, transaction control, ATTACH/DETACH and PRAGMA. Herald's own statements never run in
 * user mode.
 * Threads: the writer connection on the writer thread; the reader under read_mu.
 */
#include "store/store_sqlite.h"

#include <string.h>
#include <strings.h>

#define CACHE_SLOTS 256

typedef struct stmt_cache {
    char *sql[CACHE_SLOTS];
    sqlite3_stmt *st[CACHE_SLOTS];
    int n;
} stmt_cache;

void herald__sq_cache_free(void *cache)
{
    stmt_cache *c = cache;
    if (!c)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        herald__free(c->sql[i]);
        sqlite3_finalize(c->st[i]);
    }
    herald__free(c);
}

static uint32_t hash_sql(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static bool is_reserved(const char *name)
{
    return name && strncasecmp(name, "herald_", 7) == 0; /* SQLite guards its sqlite_* itself */
}

static int authorize(void *ud, int action, const char *a1, const char *a2, const char *db,
                     const char *trigger)
{
    (void)db;
    (void)trigger;
    if (!*(const bool *)ud)
        return SQLITE_OK; /* Herald's own statement */
    switch (action) {
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
    case SQLITE_PRAGMA:
        return SQLITE_DENY;
    case SQLITE_FUNCTION:
        return SQLITE_OK;
    default:
        return is_reserved(a1) || is_reserved(a2) ? SQLITE_DENY : SQLITE_OK;
    }
}

/* Prepares one user statement under the authorizer; *tail gets the rest of the text. */
static int prepare_user(sqlite3 *db, const char *sql, sqlite3_stmt **out, const char **tail,
                        unsigned flags)
{
    int src = sqlite3_prepare_v3(db, sql, -1, flags, out, tail);
    if (src == SQLITE_AUTH)
        return herald__err(HERALD_EDENIED,
                           "statement denied: user SQL may not use Herald's tables (herald_*), "
                           "transaction control, ATTACH or PRAGMA: %.200s",
                           sql);
    if (src != SQLITE_OK)
        return herald__err(HERALD_ESQL, "SQL error: %s, in: %.200s", sqlite3_errmsg(db), sql);
    return 0;
}

/* The cached statement for `sql` (one statement), prepared on first use. *owned: the
 * statement is not the cache's and the caller finalizes it - when the cached one is running
 * already (a row callback runs the same SQL again) or the cache would have to be emptied while
 * one of its statements runs. */
static int cached(sq_store *q, bool on_writer, const char *sql, sqlite3_stmt **out, bool *owned)
{
    void **slot = on_writer ? &q->wcache : &q->rcache;
    if (!*slot)
        *slot = herald__xcalloc(1, sizeof(stmt_cache));
    stmt_cache *c = *slot;
    uint32_t h = hash_sql(sql) % CACHE_SLOTS;
    for (int k = 0; k < CACHE_SLOTS; k++) {
        uint32_t i = (h + (uint32_t)k) % CACHE_SLOTS;
        if (!c->sql[i])
            break;
        if (strcmp(c->sql[i], sql) == 0 && !sqlite3_stmt_busy(c->st[i])) {
            *out = c->st[i];
            *owned = false;
            return 0;
        }
    }
    bool any_busy = false;
    for (int i = 0; i < CACHE_SLOTS && !any_busy; i++)
        any_busy = c->st[i] && sqlite3_stmt_busy(c->st[i]);
    sqlite3 *db = on_writer ? q->wdb : q->rdb;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = prepare_user(db, sql, &st, &tail, SQLITE_PREPARE_PERSISTENT);
    if (rc < 0)
        return rc;
    if (!st)
        return herald__err(HERALD_EINVAL, "SQL text holds no statement");
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' ||
                    *tail == ';'))
        tail++;
    if (tail && *tail) {
        sqlite3_finalize(st);
        return herald__err(HERALD_EINVAL,
                           "one statement per call when parameters are bound; extra text: %.80s",
                           tail);
    }
    *owned = any_busy; /* nested in a running statement: leave the cache as it is */
    if (any_busy) {
        *out = st;
        return 0;
    }
    if (c->n >= CACHE_SLOTS * 3 / 4) { /* full: start over */
        for (int i = 0; i < CACHE_SLOTS; i++) {
            herald__free(c->sql[i]);
            sqlite3_finalize(c->st[i]);
            c->sql[i] = NULL;
            c->st[i] = NULL;
        }
        c->n = 0;
    }
    for (int k = 0; k < CACHE_SLOTS; k++) {
        uint32_t i = (h + (uint32_t)k) % CACHE_SLOTS;
        if (!c->sql[i]) {
            c->sql[i] = herald__xstrdup(sql);
            c->st[i] = st;
            c->n++;
            break;
        }
    }
    *out = st;
    return 0;
}

static int bind_args(sqlite3 *db, sqlite3_stmt *st, const herald_arg *args, size_t n)
{
    if ((int)n != sqlite3_bind_parameter_count(st))
        return herald__err(HERALD_EINVAL, "statement has %d parameters, %zu values given",
                           sqlite3_bind_parameter_count(st), n);
    for (size_t i = 0; i < n; i++) {
        int k = (int)i + 1, src;
        const herald_arg *a = &args[i];
        switch (a->type) {
        case HERALD_ARG_NULL:
            src = sqlite3_bind_null(st, k);
            break;
        case HERALD_ARG_INT:
            src = sqlite3_bind_int64(st, k, a->i);
            break;
        case HERALD_ARG_REAL:
            src = sqlite3_bind_double(st, k, a->r);
            break;
        case HERALD_ARG_TEXT:
            if (!a->p)
                return herald__err(HERALD_EINVAL, "parameter %zu: text is NULL", i + 1);
            src = sqlite3_bind_text64(st, k, a->p, a->len == SIZE_MAX ? strlen(a->p) : a->len,
                                      SQLITE_STATIC, SQLITE_UTF8);
            break;
        case HERALD_ARG_BLOB:
            src = sqlite3_bind_blob64(st, k, a->len ? a->p : "", a->len, SQLITE_STATIC);
            break;
        default:
            return herald__err(HERALD_EINVAL, "parameter %zu: unknown type %d", i + 1,
                               (int)a->type);
        }
        if (src != SQLITE_OK)
            return herald__err(HERALD_ESQL, "parameter %zu: %s", i + 1, sqlite3_errmsg(db));
    }
    return 0;
}

static int row_columns(const herald_row *r)
{
    return sqlite3_column_count(r->impl);
}

static herald_arg row_get(const herald_row *r, int i)
{
    sqlite3_stmt *st = r->impl;
    herald_arg a = { .type = HERALD_ARG_NULL };
    if (i < 0 || i >= sqlite3_column_count(st))
        return a;
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        a.type = HERALD_ARG_INT;
        a.i = sqlite3_column_int64(st, i);
        break;
    case SQLITE_FLOAT:
        a.type = HERALD_ARG_REAL;
        a.r = sqlite3_column_double(st, i);
        break;
    case SQLITE_TEXT:
        a.type = HERALD_ARG_TEXT;
        a.p = sqlite3_column_text(st, i);
        a.len = (size_t)sqlite3_column_bytes(st, i);
        break;
    case SQLITE_BLOB:
        a.type = HERALD_ARG_BLOB;
        a.p = sqlite3_column_blob(st, i);
        a.len = (size_t)sqlite3_column_bytes(st, i);
        break;
    default:
        break;
    }
    return a;
}

/* Steps st to the end, handing rows to cb. Resets st. */
static int run_stmt(sqlite3 *db, sqlite3_stmt *st, int64_t *changes, herald_row_cb cb, void *ud)
{
    herald_row row = { .columns = row_columns, .get = row_get, .impl = st };
    int rc = 0, src;
    int64_t before = sqlite3_total_changes64(db);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb && (rc = cb(ud, &row)) < 0)
            break;
    }
    if (rc == 0 && src != SQLITE_DONE) {
        int code = src & 0xff;
        if (code == SQLITE_AUTH)
            rc = herald__err(HERALD_EDENIED,
                             "statement denied: user SQL may not use Herald's tables (herald_*), "
                             "also not through a view or trigger");
        else if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_IOERR ||
                 code == SQLITE_FULL || code == SQLITE_NOMEM)
            rc = herald__sq_fail(db, src, "user SQL"); /* the store's trouble, not the SQL's */
        else
            rc = herald__err(HERALD_ESQL, "SQL error: %s", sqlite3_errmsg(db));
    }
    if (rc == 0 && changes) /* DDL leaves sqlite3_changes() stale: count what really changed */
        *changes = sqlite3_total_changes64(db) - before;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int user_sql(sq_store *q, bool on_writer, const char *sql, const herald_arg *args,
                    size_t n, bool is_multi, int64_t *changes, herald_row_cb cb, void *ud);

int herald__sq_user_sql(herald_store *s, bool on_writer, const char *sql, const herald_arg *args,
                        size_t n, bool is_multi, int64_t *changes, herald_row_cb cb, void *ud)
{
    sq_store *q = (sq_store *)s;
    if (!sql)
        return herald__err(HERALD_EINVAL, "SQL text is NULL");
    bool *user_mode = on_writer ? &q->w_user_mode : &q->r_user_mode;
    bool outer = *user_mode; /* a row callback may run user SQL inside user SQL */
    *user_mode = true;
    int rc = user_sql(q, on_writer, sql, args, n, is_multi, changes, cb, ud);
    *user_mode = outer;
    if (on_writer && sqlite3_get_autocommit(q->wdb)) /* the authorizer cannot see these */
        rc = herald__err(HERALD_ESQL, "the statement rolled back the whole transaction (ON "
                         "CONFLICT ROLLBACK or RAISE(ROLLBACK)), so nothing of its commit "
                         "group was kept; use ABORT, FAIL or IGNORE: %.200s", sql);
    return rc;
}

static int user_sql(sq_store *q, bool on_writer, const char *sql, const herald_arg *args,
                    size_t n, bool is_multi, int64_t *changes, herald_row_cb cb, void *ud)
{
    sqlite3 *db = on_writer ? q->wdb : q->rdb;
    if (is_multi && n == 0) { /* several statements, prepared once each, not cached */
        const char *p = sql;
        int64_t total = 0;
        int rc = 0;
        while (rc == 0 && p && *p) {
            sqlite3_stmt *st = NULL;
            const char *tail = NULL;
            rc = prepare_user(db, p, &st, &tail, 0);
            if (rc == 0 && st && sqlite3_bind_parameter_count(st) > 0)
                rc = herald__err(HERALD_EINVAL,
                                 "statement has %d parameters and no values were given",
                                 sqlite3_bind_parameter_count(st));
            if (rc == 0 && st) {
                int64_t ch = 0;
                rc = run_stmt(db, st, &ch, cb, ud);
                total += ch;
            }
            sqlite3_finalize(st);
            p = tail;
        }
        if (rc == 0 && changes)
            *changes = total;
        return rc;
    }
    sqlite3_stmt *st = NULL;
    bool owned = false;
    int rc = cached(q, on_writer, sql, &st, &owned);
    if (rc < 0)
        return rc;
    if (!on_writer && !sqlite3_stmt_readonly(st))
        rc = herald__err(HERALD_EDENIED, "herald_sql_query runs read-only statements; use "
                                         "herald_sql_exec to write");
    else if ((rc = bind_args(db, st, args, n)) < 0)
        sqlite3_clear_bindings(st);
    else
        rc = run_stmt(db, st, changes, cb, ud); /* one statement: one snapshot */
    if (owned)
        sqlite3_finalize(st);
    return rc;
}

int herald__sq_sp_begin(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_counters_savepoint(q);
    return herald__sq_exec(q, q->w[W_SP_BEGIN], "savepoint msg");
}

int herald__sq_sp_release(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_counters_release(q);
    return herald__sq_exec(q, q->w[W_SP_RELEASE], "release msg");
}

int herald__sq_sp_rollback(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_qcache_clear(q);
    herald__sq_counters_rollback_to(q);
    herald__sq_counters_release(q);
    int rc = herald__sq_exec(q, q->w[W_SP_ROLLBACK], "rollback to msg");
    if (rc == 0)
        rc = herald__sq_exec(q, q->w[W_SP_RELEASE], "release msg");
    return rc;
}

void herald__sq_install_authorizer(sq_store *q)
{
    sqlite3_set_authorizer(q->wdb, authorize, &q->w_user_mode);
    sqlite3_set_authorizer(q->rdb, authorize, &q->r_user_mode);
}

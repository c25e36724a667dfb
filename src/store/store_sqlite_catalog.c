// SPDX-License-Identifier: MIT
/*
 * store_sqlite_catalog.c - the stored event catalog on SQLite (migrations/0012_catalog.sql):
 * the version in force, its row, a new version, the history, and whether an event type is
 * still in use. What these mean: store_catalog.c.
 * The version read runs before every event send, so its statement is prepared once per
 * connection (lazily, on the thread that owns the connection) and kept: catalog_st[0] on the
 * reader, [1] on the writer; finalized by herald__sq_catalog_close. It reads the largest
 * INTEGER PRIMARY KEY: one b-tree descent. The other statements are rare and prepared per call.
 * Threads: writer side on the writer thread; reads on the reader under read_mu (store.c).
 */
#include "store/store_sqlite.h"

#include <string.h>

static const char version_sql[] =
    "SELECT coalesce(max(version), 0) FROM herald_catalog_versions";

void herald__sq_catalog_close(sq_store *q)
{
    for (int i = 0; i < 2; i++) {
        sqlite3_finalize(q->catalog_st[i]);
        q->catalog_st[i] = NULL;
    }
}

int herald__sq_catalog_version(herald_store *s, bool on_writer, int64_t *version)
{
    sq_store *q = (sq_store *)s;
    sqlite3 *db = on_writer ? q->wdb : q->rdb;
    sqlite3_stmt **st = &q->catalog_st[on_writer ? 1 : 0];
    if (!*st) {
        int src = sqlite3_prepare_v3(db, version_sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
        if (src != SQLITE_OK)
            return herald__sq_fail(db, src, "prepare the catalog version read");
    }
    int src = sqlite3_step(*st);
    if (src == SQLITE_ROW)
        *version = sqlite3_column_int64(*st, 0);
    sqlite3_reset(*st);
    return src == SQLITE_ROW ? 0 : herald__sq_fail(db, src, "read the catalog version");
}

static char *column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return herald__xstrdup(t ? (const char *)t : "");
}

static void fill_row(sqlite3_stmt *st, void *elem)
{
    herald__catalog_row *r = elem;
    r->version = sqlite3_column_int64(st, 0);
    r->applied_ms = sqlite3_column_int64(st, 1);
    const unsigned char *mode = sqlite3_column_text(st, 2);
    r->mode = mode && strcmp((const char *)mode, "warn") == 0 ? HERALD_CATALOG_WARN
                                                              : HERALD_CATALOG_STRICT;
    r->catalog = column_dup(st, 3);
    r->changes = column_dup(st, 4);
    r->is_forced = sqlite3_column_int(st, 5) != 0;
    r->source = column_dup(st, 6);
}

#define ROW_COLUMNS "version, applied_ms, mode, catalog, changes, is_forced, source"

int herald__sq_catalog_get(herald_store *s, bool on_writer, herald__catalog_row *out)
{
    sq_store *q = (sq_store *)s;
    sqlite3 *db = on_writer ? q->wdb : q->rdb;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, "SELECT " ROW_COLUMNS " FROM herald_catalog_versions "
                                 "ORDER BY version DESC LIMIT 1", -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        memset(out, 0, sizeof *out);
        if (src == SQLITE_ROW)
            fill_row(st, out);
    }
    int rc = src == SQLITE_ROW || src == SQLITE_DONE
                 ? 0
                 : herald__sq_fail(db, src, "read the catalog");
    sqlite3_finalize(st);
    return rc;
}

int herald__sq_catalog_put(herald_store *s, const herald__catalog_row *row, int64_t now_ms,
                           int64_t *version_out)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        q->wdb,
        "INSERT INTO herald_catalog_versions (version, applied_ms, mode, catalog, changes, "
        "is_forced, source) VALUES ((SELECT coalesce(max(version), 0) + 1 FROM "
        "herald_catalog_versions), ?1, ?2, ?3, ?4, ?5, ?6)",
        -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_text(st, 2, row->mode == HERALD_CATALOG_WARN ? "warn" : "strict", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 3, row->catalog, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, row->changes ? row->changes : "[]", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, row->is_forced ? 1 : 0);
        sqlite3_bind_text(st, 6, row->source ? row->source : "", -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    int rc = src == SQLITE_DONE ? 0 : herald__sq_fail(q->wdb, src, "store the catalog");
    sqlite3_finalize(st);
    if (rc == 0)
        *version_out = sqlite3_last_insert_rowid(q->wdb);
    return rc;
}

/* One count(*) statement with ?1 = the type. */
static int count_rows(sq_store *q, const char *sql, const char *type, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(q->wdb, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
    }
    int rc = src == SQLITE_ROW ? 0 : herald__sq_fail(q->wdb, src, "count events of a type");
    sqlite3_finalize(st);
    return rc;
}

/* Messages carry their type in event_type only when traced; others are read from the body
 * (an envelope: a JSON object with a string event_id). A scan of every message: applies that
 * remove a type are rare. content_type 0 is HERALD_CONTENT_JSON. */
int herald__sq_catalog_in_use(herald_store *s, const char *type, int64_t *n_messages,
                              int64_t *n_outbox)
{
    sq_store *q = (sq_store *)s;
    int rc = count_rows(q,
                        "SELECT count(*) FROM herald_messages WHERE event_type = ?1 OR "
                        "(event_type IS NULL AND content_type = 0 AND "
                        "json_valid(CAST(body AS TEXT)) AND "
                        "json_type(CAST(body AS TEXT), '$.event_id') = 'text' AND "
                        "json_extract(CAST(body AS TEXT), '$.type') = ?1)",
                        type, n_messages);
    if (rc == 0)
        rc = count_rows(q,
                        "SELECT count(*) FROM herald_outbox WHERE published_ms IS NULL AND "
                        "json_valid(CAST(body AS TEXT)) AND "
                        "json_extract(CAST(body AS TEXT), '$.type') = ?1",
                        type, n_outbox);
    return rc;
}

int herald__sq_catalog_history(herald_store *s, herald__catalog_row **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(q->rdb, "SELECT " ROW_COLUMNS " FROM herald_catalog_versions "
                                 "ORDER BY version", -1, &st, NULL);
    if (src != SQLITE_OK)
        return herald__sq_fail(q->rdb, src, "read the catalog history");
    void *v = NULL;
    int rc = herald__sq_collect(q->rdb, st, sizeof(herald__catalog_row), fill_row, &v, n,
                                "read the catalog history");
    sqlite3_finalize(st);
    if (rc == 0)
        *out = v;
    return rc;
}

// SPDX-License-Identifier: MIT
/*
 * store_sqlite_outbox.c - the outbox table on SQLite (migrations/0004_outbox.sql): put a row in
 * the current transaction, read pending rows in order, mark them published, prune old ones.
 * Threads: writer side on the writer thread; pending/count on the reader under read_mu.
 */
#include "store/store_sqlite.h"

#include <stdio.h>
#include <string.h>

int herald__sq_outbox_put(herald_store *s, const char *dest, bool is_topic, const char *event_id,
                          const void *body, size_t len, int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->w[W_OUTBOX_PUT];
    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, is_topic ? 1 : 0);
    sqlite3_bind_text(st, 3, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 4, len ? body : "", len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    return herald__sq_exec(q, st, "add outbox row");
}

int herald__sq_outbox_mark(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->w[W_OUTBOX_MARK];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, seqs[i]);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = herald__sq_exec(q, st, "mark outbox row published");
    }
    return rc;
}

int herald__sq_outbox_prune(herald_store *s, int64_t before_ms, int64_t *n_pruned)
{
    sq_store *q = (sq_store *)s;
    sqlite3_bind_int64(q->w[W_OUTBOX_PRUNE], 1, before_ms);
    int rc = herald__sq_exec(q, q->w[W_OUTBOX_PRUNE], "prune outbox");
    if (rc == 0 && n_pruned)
        *n_pruned = sqlite3_changes64(q->wdb);
    return rc;
}

int herald__sq_outbox_pending(herald_store *s, herald__outbox_row *rows, size_t max, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_OUTBOX_PENDING];
    sqlite3_bind_int64(st, 1, (int64_t)max);
    size_t k = 0;
    int src = SQLITE_DONE;
    while (k < max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        herald__outbox_row *r = &rows[k++];
        r->seq = sqlite3_column_int64(st, 0);
        snprintf(r->dest, sizeof r->dest, "%s", sqlite3_column_text(st, 1));
        r->is_topic = sqlite3_column_int(st, 2) != 0;
        r->len = (size_t)sqlite3_column_bytes(st, 3);
        r->body = herald__xmemdup(r->len ? sqlite3_column_blob(st, 3) : "", r->len + 1);
    }
    if (k < max && src != SQLITE_DONE) {
        sqlite3_reset(st);
        for (size_t i = 0; i < k; i++)
            herald__free(rows[i].body);
        return herald__sq_fail(q->rdb, src, "read outbox");
    }
    sqlite3_reset(st);
    *n = k;
    return 0;
}

int herald__sq_outbox_count(herald_store *s, int64_t *n_pending)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_OUTBOX_COUNT];
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? 0 : herald__sq_fail(q->rdb, src, "count outbox");
    if (rc == 0)
        *n_pending = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc;
}

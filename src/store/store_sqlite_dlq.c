// SPDX-License-Identifier: MIT
/*
 * store_sqlite_dlq.c - dead-letter tooling on SQLite: page through a dead-letter queue, read a
 * message's attempt history, move one dead letter back (same id and timestamp, attempts from
 * zero, the body kept or replaced; a replaced body's trace columns follow it) together with its
 * audit record in the current transaction, and list the audit. Texts read back (attempt errors,
 * audit edits) are cut on a character boundary: the tools print them as JSON. Threads: redrive on the writer thread; the rest on the reader.
 */
#include "store/store_sqlite.h"

#include <stdio.h>
#include <string.h>

/* An edited body may carry another correlation id, event id or type than the dead letter: the
 * redriven row's trace columns follow its body (NULL when it is not traced any more). Rare (an
 * edited redrive), so the statement is prepared here. */
static int retrace(sq_store *q, int64_t seq, const void *body, size_t len)
{
    herald_envelope env;
    bool traced = false;
    if (herald__envelope_parse_stored(body, len, &env) == 0) {
        traced = env.correlation_id[0] != 0;
        herald_envelope_deinit(&env);
    } else {
        herald__err_clear(); /* not an envelope: not traced */
    }
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(q->wdb,
                                 "UPDATE herald_messages SET correlation_id = ?2, event_id = ?3, "
                                 "event_type = ?4 WHERE seq = ?1",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return herald__sq_fail(q->wdb, src, "prepare retrace");
    sqlite3_bind_int64(st, 1, seq);
    if (traced) {
        sqlite3_bind_text(st, 2, env.correlation_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, env.event_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, env.type, -1, SQLITE_STATIC);
    }
    int rc = herald__sq_exec(q, st, "retrace redriven message");
    sqlite3_finalize(st);
    return rc;
}

int herald__sq_redrive_one(herald_store *s, const char *dlq, int64_t seq, const char *to_queue,
                           const void *body, size_t len, const char *actor, const char *edit,
                           int64_t now_ms, bool *moved)
{
    sq_store *q = (sq_store *)s;
    int64_t dlq_id, dlq_ret, to_id, to_ret;
    int rc = herald__sq_queue_ident(q, dlq, &dlq_id, &dlq_ret);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = q->w[W_DEAD_GET];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, dlq_id);
    int src = sqlite3_step(st);
    char id[HERALD_ID_SIZE] = "", from[HERALD_QUEUE_NAME_MAX + 1] = "";
    int64_t old_bytes = 0;
    if (src == SQLITE_ROW) {
        old_bytes = sqlite3_column_int64(st, 2);
        snprintf(id, sizeof id, "%s", sqlite3_column_text(st, 0));
        if (sqlite3_column_type(st, 1) != SQLITE_NULL)
            snprintf(from, sizeof from, "%s", sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    if (src == SQLITE_DONE) {
        *moved = false; /* acked, purged or redriven meanwhile */
        return 0;
    }
    if (src != SQLITE_ROW)
        return herald__sq_fail(q->wdb, src, "read dead letter");
    const char *target = to_queue ? to_queue : from;
    if (!target[0])
        return herald__err(HERALD_EINVAL,
                           "message %s in '%s' has no source queue (it was not dead-lettered); "
                           "give a destination queue",
                           id, dlq);
    if ((rc = herald__sq_queue_ident(q, target, &to_id, &to_ret)) < 0)
        return rc;
    st = q->w[W_REDRIVE];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, to_id);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, now_ms + to_ret * 1000);
    if (body)
        sqlite3_bind_blob64(st, 5, len ? body : "", len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    int64_t new_seq = herald__sq_next_seq(q);
    sqlite3_bind_int64(st, 6, new_seq);
    if ((rc = herald__sq_exec(q, st, "redrive message")) < 0)
        return rc;
    if (body && (rc = retrace(q, new_seq, body, len)) < 0)
        return rc;
    st = q->w[W_MSG_DELETE];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, dlq_id);
    if ((rc = herald__sq_exec(q, st, "remove redriven dead letter")) < 0)
        return rc;
    if ((rc = herald__sq_count_moved(q, dlq_id, to_id, old_bytes,
                                     body ? (int64_t)len : old_bytes, now_ms + to_ret * 1000)) < 0)
        return rc;
    st = q->w[W_AUDIT_ADD];
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dlq, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, target, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, edit, -1, SQLITE_STATIC);
    if ((rc = herald__sq_exec(q, st, "record redrive audit")) == 0)
        *moved = true;
    return rc;
}

int herald__sq_dead_page(herald_store *s, const char *dlq, int64_t after_visible_ms,
                         int64_t after_seq, int64_t now_ms, herald__dead_row *rows, size_t max,
                         size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_DEAD_PAGE];
    sqlite3_bind_text(st, 1, dlq, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after_visible_ms);
    sqlite3_bind_int64(st, 3, after_seq);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    sqlite3_bind_int64(st, 5, now_ms);
    size_t k = 0;
    int src = SQLITE_DONE;
    while (k < max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        herald__dead_row *r = &rows[k++];
        r->seq = sqlite3_column_int64(st, 0);
        r->visible_at_ms = sqlite3_column_int64(st, 1);
        snprintf(r->id, sizeof r->id, "%s", sqlite3_column_text(st, 2));
        snprintf(r->dead_from, sizeof r->dead_from, "%s", sqlite3_column_text(st, 3));
        r->content_type = (herald_content_type)sqlite3_column_int(st, 4);
        r->len = (size_t)sqlite3_column_bytes(st, 5);
        r->body = herald__xmemdup(r->len ? sqlite3_column_blob(st, 5) : "", r->len + 1);
    }
    sqlite3_reset(st);
    if (k < max && src != SQLITE_DONE) {
        for (size_t i = 0; i < k; i++)
            herald__free(rows[i].body);
        return herald__sq_fail(q->rdb, src, "read dead letters");
    }
    *n = k;
    return 0;
}

static void fill_attempt(sqlite3_stmt *st, void *elem)
{
    herald_attempt *a = elem;
    a->attempt = sqlite3_column_int(st, 0);
    a->at_ms = sqlite3_column_int64(st, 1);
    snprintf(a->queue, sizeof a->queue, "%s", sqlite3_column_text(st, 2));
    /* cut on a character boundary: an error text is read back as JSON by the tools */
    herald__utf8_copy(a->error, sizeof a->error, (const char *)sqlite3_column_text(st, 3));
}

int herald__sq_attempts(herald_store *s, const char *message_id, herald_attempt **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_ATTEMPTS];
    sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC);
    return herald__sq_collect(q->rdb, st, sizeof **out, fill_attempt, (void **)out, n,
                              "read attempts");
}

static void fill_audit(sqlite3_stmt *st, void *elem)
{
    herald_audit_entry *a = elem;
    a->at_ms = sqlite3_column_int64(st, 0);
    snprintf(a->actor, sizeof a->actor, "%s", sqlite3_column_text(st, 1));
    snprintf(a->dlq, sizeof a->dlq, "%s", sqlite3_column_text(st, 2));
    snprintf(a->message_id, sizeof a->message_id, "%s", sqlite3_column_text(st, 3));
    snprintf(a->to_queue, sizeof a->to_queue, "%s", sqlite3_column_text(st, 4));
    herald__utf8_copy(a->edit, sizeof a->edit, (const char *)sqlite3_column_text(st, 5));
}

int herald__sq_audit(herald_store *s, const char *dlq, herald_audit_entry **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_AUDIT];
    if (dlq)
        sqlite3_bind_text(st, 1, dlq, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    return herald__sq_collect(q->rdb, st, sizeof **out, fill_audit, (void **)out, n,
                              "read redrive audit");
}

int herald__sq_msg_get(herald_store *s, const char *queue, const char *id, int64_t now_ms,
                       herald_batch *out)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_MSG_GET];
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    herald_batch b;
    herald__batch_init(&b, queue, 1);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        herald_message *m = herald__batch_push(&b);
        snprintf(m->id, sizeof m->id, "%s", sqlite3_column_text(st, 1));
        m->timestamp_ms = sqlite3_column_int64(st, 2);
        m->content_type = (herald_content_type)sqlite3_column_int(st, 3);
        m->body_len = (size_t)sqlite3_column_bytes(st, 4);
        m->body = herald__batch_keep(&b, sqlite3_column_blob(st, 4), m->body_len);
        m->attempts = sqlite3_column_int(st, 5);
        if (sqlite3_column_type(st, 6) != SQLITE_NULL)
            snprintf(m->dead_from_queue, sizeof m->dead_from_queue, "%s",
                     sqlite3_column_text(st, 6));
        m->dead_attempts = sqlite3_column_int(st, 7);
        if (sqlite3_column_type(st, 8) != SQLITE_NULL)
            m->last_error = herald__batch_keep(&b, sqlite3_column_text(st, 8),
                                               (size_t)sqlite3_column_bytes(st, 8));
        m->visible_at_ms = sqlite3_column_int64(st, 9);
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        herald_batch_deinit(&b);
        return herald__sq_fail(q->rdb, src, "read message");
    }
    *out = b;
    return 0;
}

// SPDX-License-Identifier: MIT
/*
 * store_sqlite_topic.c - topics on SQLite: subscriptions and publish. A publish runs in the
 * caller's op: every copy of every message goes into every subscribed queue in the same
 * transaction (migrations/0003_topics.sql), so a crash leaves all subscribers with the copy or
 * none. Copies after the first get fresh message ids; bodies (and envelope event_ids) are equal.
 * Threads: writer side on the writer thread; topic_list on the reader under read_mu.
 */
#include "store/store_sqlite.h"

#include <stdio.h>
#include <string.h>

static int topic_exists(sq_store *q, const char *topic)
{
    sqlite3_stmt *st = q->w[W_TOPIC_EXISTS];
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_ROW)
        return 0;
    if (src == SQLITE_DONE)
        return herald__err(HERALD_ENOTOPIC, "topic '%s' does not exist", topic);
    return herald__sq_fail(q->wdb, src, "look up topic");
}

int herald__sq_topic_subscribe(herald_store *s, const char *topic, const char *queue,
                               int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    int rc = herald__sq_queue_exists(q, queue);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = q->w[W_TOPIC_ENSURE];
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    if ((rc = herald__sq_exec(q, st, "create topic")) < 0)
        return rc;
    st = q->w[W_TOPIC_SUB];
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    return herald__sq_exec(q, st, "subscribe");
}

int herald__sq_topic_unsubscribe(herald_store *s, const char *topic, const char *queue)
{
    sq_store *q = (sq_store *)s;
    int rc = topic_exists(q, topic);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = q->w[W_TOPIC_UNSUB];
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, queue, -1, SQLITE_STATIC);
    rc = herald__sq_exec(q, st, "unsubscribe");
    if (rc == 0 && sqlite3_changes(q->wdb) == 0)
        rc = herald__err(HERALD_ENOTOPIC, "queue '%s' is not subscribed to topic '%s'", queue,
                         topic);
    return rc;
}

int herald__sq_topic_publish(herald_store *s, const char *topic, const herald__msg_in *m,
                             size_t n, int64_t batch_delay_s, int64_t now_ms, size_t *n_queues)
{
    sq_store *q = (sq_store *)s;
    int rc = topic_exists(q, topic);
    if (rc < 0)
        return rc;
    /* Collect the targets first: msg_put runs other statements on this connection. */
    size_t cap = 8, count = 0;
    char(*targets)[HERALD_QUEUE_NAME_MAX + 1] = herald__xmalloc(cap * sizeof *targets);
    sqlite3_stmt *st = q->w[W_TOPIC_TARGETS];
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap *= 2;
            targets = herald__xrealloc(targets, cap * sizeof *targets);
        }
        snprintf(targets[count++], sizeof targets[0], "%s", sqlite3_column_text(st, 0));
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        rc = herald__sq_fail(q->wdb, src, "read topic subscriptions");
    herald__msg_in *copy = NULL;
    for (size_t k = 0; rc == 0 && k < count; k++) {
        const herald__msg_in *msgs = m;
        if (k > 0) { /* every copy is its own message */
            if (!copy)
                copy = herald__xmemdup(m, n * sizeof *m);
            for (size_t i = 0; i < n; i++)
                herald__uuid7_at(now_ms, copy[i].id);
            msgs = copy;
        }
        rc = herald__sq_msg_put(s, targets[k], msgs, n, batch_delay_s, now_ms);
    }
    herald__free(copy);
    herald__free(targets);
    if (rc == 0) {
        st = q->w[W_TOPIC_COUNT];
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)n);
        sqlite3_bind_int64(st, 3, count == 0 ? (int64_t)n : 0);
        rc = herald__sq_exec(q, st, "count topic publish");
    }
    if (rc == 0 && count == 0)
        herald__log(HERALD_LOG_WARN, "published to a topic without subscribers: counted as unrouted",
                    "topic", topic, NULL);
    if (rc == 0)
        *n_queues = count;
    return rc;
}

int herald__sq_topic_list(herald_store *s, herald_topic_info **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL);
    size_t cap = 8, count = 0;
    herald_topic_info *v = herald__xcalloc(cap, sizeof *v);
    sqlite3_stmt *st = q->r[R_TOPIC_LIST];
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap *= 2;
            v = herald__xrealloc(v, cap * sizeof *v);
        }
        herald_topic_info *t = &v[count++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", sqlite3_column_text(st, 0));
        t->published_total = sqlite3_column_int64(st, 1);
        t->unrouted_total = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    int rc = src == SQLITE_DONE ? 0 : herald__sq_fail(q->rdb, src, "list topics");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        herald_topic_info *t = &v[i];
        size_t qcap = 4;
        t->queues = herald__xmalloc(qcap * sizeof *t->queues);
        st = q->r[R_TOPIC_SUBS];
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            if (t->n_queues == qcap) {
                qcap *= 2;
                t->queues = herald__xrealloc(t->queues, qcap * sizeof *t->queues);
            }
            snprintf(t->queues[t->n_queues++], sizeof t->queues[0], "%s",
                     sqlite3_column_text(st, 0));
        }
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            rc = herald__sq_fail(q->rdb, src, "list subscriptions");
    }
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    if (rc < 0) {
        for (size_t i = 0; i < count; i++)
            herald__free(v[i].queues);
        herald__free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

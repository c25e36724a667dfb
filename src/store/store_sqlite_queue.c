// SPDX-License-Identifier: MIT
/*
 * store_sqlite_queue.c - queues and messages on SQLite: the statements behind the queue slots of
 * herald_store_ops. Writer-side functions run on the writer thread inside a transaction (each op
 * under its own savepoint, see store.c); read-side ones on the reader connection under read_mu.
 *
 * States of a message row (columns in migrations/0001 and 0009) and who moves it:
 *   DELAYED/VISIBLE -> LEASED   herald__sq_lease()   visible_at = now + visibility, lease_tag =
 *                                                    page tag base + seq, attempts += 1 (one
 *                                                    UPDATE for the page: W_LEASE_BATCH)
 *   LEASED -> gone              herald__sq_settle()  ack: delete by seq (late acks accepted; a
 *                                                    consumer's plain acks in one W_ACK_BATCH;
 *                                                    a seq is never reused: herald__sq_next_seq)
 *   LEASED -> DELAYED/VISIBLE   herald__sq_settle()  retry: visible_at = now + delay, tag NULL
 *   LEASED -> VISIBLE           the clock            lease expiry needs no write
 *   VISIBLE -> gone / retried   take() + settle()    an effectively-once batch takes rows
 *                                                    without a write and settles them in the
 *                                                    same op; a failed one counts its attempt
 *                                                    at settle (attempts += 1, then retry/DLQ)
 *   VISIBLE|LEASED -> DEAD      lease() / settle()   attempts >= max_retries + 1: the row moves
 *                                                    to the DLQ (new row, same id, sent_ms, body,
 *                                                    dead_from, dead_attempts, last_error) or is
 *                                                    deleted and logged when there is no DLQ
 *   any -> gone                 expire() / lease()   expires_at_ms passed (retention; the rows
 *                                                    come from expired_scan() on the reader)
 * Per transaction, on the writer: queue rows are cached (qcache) and counter deltas are kept in
 * memory and written once at commit (pending counters, with savepoint snapshots), both reset at
 * begin and rollback. A lease's output batch belongs to the caller; on failure it is freed here.
 * Per-queue message counts (migration 0013): herald_queues.msg_count / msg_bytes are the rows
 *   and body bytes the queue stores, expiry_floor_ms a lower bound of their expires_at_ms. Every
 *   insert and delete of a message row adds its delta to the pending counters of the same
 *   transaction: msg_put, dead_letter (both queues), the lease's and expire's deletes of expired
 *   rows, settle's acks (the body length comes from the settle item - what the lease or take
 *   read - or from the row; a page of acks that finds fewer rows than it names recounts the
 *   queue: recount()), purge (recount), redrive (store_sqlite_dlq.c: herald__sq_count_moved).
 *   An insert lowers the floor to its expiry; a complete retention pass raises every floor to
 *   the time its scan began (herald__sq_sweep), since it deleted every row expired by then.
 * Invariants: (1) a lease, its expiry, the attempt count and the next visible time change in one
 *   UPDATE; (2) a row has at most one live lease (lease_tag); (3) attempts never decreases within
 *   a queue; (4) per-queue counters change in the same transaction as the rows they count;
 *   (5) msg_count / msg_bytes equal count(*) / sum(length(body)) of the queue's rows, and no row
 *   expires before expiry_floor_ms, whenever a transaction commits.
 */
#include "store/store_sqlite.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* W_LEASE_BATCH and W_ACK_BATCH: 100 placeholders each, built once for the process. */
static char batch_sql_lease[4096], batch_sql_ack[4096];
static pthread_once_t batch_sql_once = PTHREAD_ONCE_INIT;

static void build_batch_sql(char *buf, int which)
{
    int n = snprintf(buf, 4096, "%s",
                     which == W_LEASE_BATCH
                         ? "UPDATE herald_messages SET visible_at_ms = ?1, lease_tag = ?2 + seq, "
                           "attempts = attempts + 1 WHERE seq IN ("
                         : "DELETE FROM herald_messages WHERE +queue_id = ?1 AND seq IN (");
    int first = which == W_LEASE_BATCH ? 3 : 2;
    for (int i = 0; i < HERALD_MAX_BATCH_MESSAGES; i++)
        n += snprintf(buf + n, (size_t)(4096 - n), "%s?%d", i ? "," : "", first + i);
    snprintf(buf + n, (size_t)(4096 - n), ")");
}

static void build_batch_sqls(void)
{
    build_batch_sql(batch_sql_lease, W_LEASE_BATCH);
    build_batch_sql(batch_sql_ack, W_ACK_BATCH);
}

const char *herald__sq_batch_sql(int which)
{
    pthread_once(&batch_sql_once, build_batch_sqls); /* stores may open on several threads */
    return which == W_LEASE_BATCH ? batch_sql_lease : batch_sql_ack;
}

const char *const herald__sq_wsql[W_N] = {
    [W_QUEUE_BY_NAME] = "SELECT queue_id, delivery_delay_s, retention_s, max_message_bytes, "
                        "max_retries, retry_delay_s, dead_letter_queue, paused "
                        "FROM herald_queues WHERE name = ?1",
    [W_QUEUE_INSERT] = "INSERT INTO herald_queues (name, uuid, created_ms, modified_ms, "
                       "delivery_delay_s, retention_s, max_message_bytes, max_retries, "
                       "retry_delay_s, dead_letter_queue) "
                       "VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [W_QUEUE_UPDATE] = "UPDATE herald_queues SET modified_ms = ?2, delivery_delay_s = ?3, "
                       "retention_s = ?4, max_message_bytes = ?5, max_retries = ?6, "
                       "retry_delay_s = ?7, dead_letter_queue = ?8 WHERE queue_id = ?1",
    [W_QUEUE_DELETE] = "DELETE FROM herald_queues WHERE queue_id = ?1",
    [W_QUEUE_MSGS_DELETE] = "DELETE FROM herald_messages WHERE queue_id = ?1",
    [W_QUEUE_PAUSE] = "UPDATE herald_queues SET paused = ?2, modified_ms = ?3 WHERE queue_id = ?1",
    [W_COUNTERS] = "UPDATE herald_queues SET sent_total = sent_total + ?2, "
                   "acked_total = acked_total + ?3, retried_total = retried_total + ?4, "
                   "dead_lettered_total = dead_lettered_total + ?5, "
                   "deleted_total = deleted_total + ?6, expired_total = expired_total + ?7, "
                   "msg_count = msg_count + ?8, msg_bytes = msg_bytes + ?9, "
                   "expiry_floor_ms = min(expiry_floor_ms, coalesce(?10, expiry_floor_ms)) "
                   "WHERE queue_id = ?1",
    /* rare: a page of acks found rows already gone, a purge (see recount()) */
    [W_QUEUE_RECOUNT] = "UPDATE herald_queues SET (msg_count, msg_bytes) = (SELECT count(*), "
                        "coalesce(sum(length(body)), 0) FROM herald_messages "
                        "WHERE herald_messages.queue_id = ?1) WHERE queue_id = ?1",
    [W_EXPIRY_FLOOR] = "UPDATE herald_queues SET expiry_floor_ms = ?1 WHERE expiry_floor_ms < ?1",
    [W_MSG_INSERT] = "INSERT INTO herald_messages (queue_id, visible_at_ms, attempts, "
                     "expires_at_ms, sent_ms, content_type, id, body, correlation_id, event_id, "
                     "event_type, seq) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [W_TRACE_ADD] = "INSERT INTO herald_trace (correlation_id, at_ms, what, queue, message_id, "
                    "event_id, type, handler, attempt, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                    "?7, ?8, ?9, ?10)",
    [W_TRACE_PRUNE] = "DELETE FROM herald_trace WHERE at_ms < ?1",
    [W_LEASE_SCAN] = "SELECT seq, attempts, expires_at_ms, id, sent_ms, content_type, body, "
                     "dead_from, dead_attempts, last_error, lease_tag IS NOT NULL "
                     "FROM herald_messages "
                     "WHERE queue_id = ?1 AND visible_at_ms <= ?2 "
                     "ORDER BY visible_at_ms, seq LIMIT ?3",
    /* The lease itself is W_LEASE_BATCH: one UPDATE per page. No RETURNING anywhere on the
     * hot path: SQLite buffers RETURNING rows in an ephemeral table per statement, which cost
     * more than the update itself; the scan already read the rows. */
    [W_MSG_DELETE] = "DELETE FROM herald_messages WHERE seq = ?1 AND queue_id = ?2",
    [W_MSG_STATE] = "SELECT attempts, lease_tag, id, correlation_id, event_id, event_type, "
                    "length(body) FROM herald_messages WHERE seq = ?1 AND queue_id = ?2",
    [W_MSG_RETRY] = "UPDATE herald_messages SET visible_at_ms = ?2, lease_tag = NULL, "
                    "last_error = coalesce(?3, last_error) WHERE seq = ?1",
    /* a dead letter and a redriven message keep their trace columns: still in the trace */
    [W_MSG_TO_DLQ] = "INSERT INTO herald_messages (queue_id, visible_at_ms, attempts, expires_at_ms, "
                     "sent_ms, content_type, id, dead_from, dead_attempts, last_error, body, seq, "
                     "correlation_id, event_id, event_type) "
                     "SELECT ?2, ?3, 0, ?4, sent_ms, content_type, id, ?5, attempts, "
                     "coalesce(?6, last_error), body, ?7, correlation_id, event_id, event_type "
                     "FROM herald_messages WHERE seq = ?1",
    [W_MSG_COUNT_ATTEMPT] = "UPDATE herald_messages SET attempts = attempts + 1 WHERE seq = ?1",
    [W_MSG_EXTEND] = "UPDATE herald_messages SET visible_at_ms = ?3 "
                     "WHERE seq = ?1 AND lease_tag = ?2 AND queue_id = ?4",
    /* RETURNING is fine here: a rare path (see the lease for why not elsewhere). */
    [W_EXPIRE_ONE] = "DELETE FROM herald_messages WHERE seq = ?1 AND expires_at_ms <= ?2 "
                     "RETURNING queue_id, length(body)",
    /* UUIDv7 event ids (migration 0011): the key orders them by creation time; ?3 is the id
     * prefix of the cutoff, so the prune walks the key range of ids created before it. */
    [W_PROCESSED_ADD] = "INSERT OR IGNORE INTO herald_processed_events "
                        "(queue_id, event_id, type, processed_ms) VALUES (?1, ?2, ?3, ?4)",
    [W_PROCESSED_PRUNE] = "DELETE FROM herald_processed_events "
                          "WHERE queue_id = ?1 AND event_id < ?3 AND processed_ms < ?2",
    /* other event ids: an age index */
    [W_PROCESSED_ADD_OTHER] = "INSERT OR IGNORE INTO herald_processed_other "
                              "(queue_id, event_id, type, processed_ms) VALUES (?1, ?2, ?3, ?4)",
    [W_PROCESSED_PRUNE_OTHER] = "DELETE FROM herald_processed_other "
                                "WHERE processed_ms < ?2 AND queue_id = ?1",
    [W_TOPIC_ENSURE] = "INSERT OR IGNORE INTO herald_topics (name, created_ms) VALUES (?1, ?2)",
    [W_TOPIC_SUB] = "INSERT OR IGNORE INTO herald_topic_subscriptions (topic, queue, created_ms) "
                    "VALUES (?1, ?2, ?3)",
    [W_TOPIC_UNSUB] = "DELETE FROM herald_topic_subscriptions WHERE topic = ?1 AND queue = ?2",
    [W_TOPIC_EXISTS] = "SELECT 1 FROM herald_topics WHERE name = ?1",
    [W_TOPIC_TARGETS] = "SELECT queue FROM herald_topic_subscriptions WHERE topic = ?1 "
                        "ORDER BY queue",
    [W_TOPIC_COUNT] = "UPDATE herald_topics SET published_total = published_total + ?2, "
                      "unrouted_total = unrouted_total + ?3 WHERE name = ?1",
    [W_QUEUE_SUBS_DELETE] = "DELETE FROM herald_topic_subscriptions WHERE queue = ?1",
    [W_OUTBOX_PUT] = "INSERT INTO herald_outbox (dest, is_topic, event_id, body, created_ms) "
                     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [W_OUTBOX_MARK] = "UPDATE herald_outbox SET published_ms = ?2 "
                      "WHERE seq = ?1 AND published_ms IS NULL",
    [W_OUTBOX_PRUNE] = "DELETE FROM herald_outbox WHERE published_ms < ?1",
    [W_ATTEMPT_ADD] = "INSERT INTO herald_attempts (message_id, queue, attempt, error, at_ms) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)",
    [W_ATTEMPT_PRUNE] = "DELETE FROM herald_attempts WHERE at_ms < ?1",
    [W_DEAD_GET] = "SELECT id, dead_from, length(body) FROM herald_messages "
                   "WHERE seq = ?1 AND queue_id = ?2",
    /* ?5: the edited body, or NULL to keep the dead letter's */
    [W_REDRIVE] = "INSERT INTO herald_messages (queue_id, visible_at_ms, attempts, expires_at_ms, "
                  "sent_ms, content_type, id, body, seq, correlation_id, event_id, event_type) "
                  "SELECT ?2, ?3, 0, ?4, sent_ms, content_type, id, coalesce(?5, body), ?6, "
                  "correlation_id, event_id, event_type FROM herald_messages WHERE seq = ?1",
    [W_METRICS_ADD] = "INSERT INTO herald_metrics (queue, type, outcome, count, sum_ms, b0, b1, "
                      "b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12) VALUES (?1, ?2, ?3, ?4, "
                      "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
                      "ON CONFLICT (queue, type, outcome) DO UPDATE SET count = count + "
                      "excluded.count, sum_ms = sum_ms + excluded.sum_ms, b0 = b0 + excluded.b0, "
                      "b1 = b1 + excluded.b1, b2 = b2 + excluded.b2, b3 = b3 + excluded.b3, "
                      "b4 = b4 + excluded.b4, b5 = b5 + excluded.b5, b6 = b6 + excluded.b6, "
                      "b7 = b7 + excluded.b7, b8 = b8 + excluded.b8, b9 = b9 + excluded.b9, "
                      "b10 = b10 + excluded.b10, b11 = b11 + excluded.b11, "
                      "b12 = b12 + excluded.b12",
    [W_AUDIT_ADD] = "INSERT INTO herald_redrive_audit (at_ms, actor, dlq, message_id, to_queue, "
                    "edit) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

#define QUEUE_COLS                                                                                \
    "name, uuid, created_ms, modified_ms, delivery_delay_s, retention_s, max_message_bytes, "     \
    "max_retries, retry_delay_s, dead_letter_queue, paused, queue_id"

const char *const herald__sq_rsql[R_N] = {
    [R_QUEUE_BY_NAME] = "SELECT " QUEUE_COLS ", sent_total, acked_total, retried_total, "
                        "dead_lettered_total, deleted_total, expired_total, msg_count, "
                        "msg_bytes, expiry_floor_ms FROM herald_queues WHERE name = ?1",
    [R_QUEUE_LIST] = "SELECT " QUEUE_COLS " FROM herald_queues ORDER BY name",
    /* stats (see herald__sq_queue_stats for what each costs) */
    [R_STATS_EXPIRED] = "SELECT count(*), coalesce(sum(length(body)), 0) FROM herald_messages "
                        "WHERE queue_id = ?1 AND expires_at_ms <= ?2",
    [R_STATS_LATER] = "SELECT total(lease_tag IS NULL), total(lease_tag IS NOT NULL), "
                      "min(sent_ms) FROM herald_messages "
                      "WHERE queue_id = ?1 AND visible_at_ms > ?2 AND expires_at_ms > ?2",
    [R_STATS_HEAD] = "SELECT min(sent_ms) FROM (SELECT sent_ms FROM herald_messages "
                     "WHERE queue_id = ?1 AND visible_at_ms <= ?2 AND expires_at_ms > ?2 "
                     "ORDER BY visible_at_ms LIMIT 100)",
    [R_PEEK] = "SELECT seq, id, sent_ms, content_type, body, attempts, dead_from, "
               "dead_attempts, last_error, visible_at_ms FROM herald_messages "
               "WHERE queue_id = ?1 AND expires_at_ms > ?2 "
               "ORDER BY visible_at_ms, seq LIMIT ?3",
    [R_READY_COUNT] = "SELECT count(*) FROM (SELECT 1 FROM herald_messages "
                      "WHERE queue_id = ?1 AND visible_at_ms <= ?2 LIMIT ?3)",
    [R_NEXT_DUE] = "SELECT min(visible_at_ms) FROM herald_messages "
                   "WHERE queue_id = ?1 AND visible_at_ms > ?2",
    [R_DATA_VERSION] = "PRAGMA data_version",
    [R_TOPIC_LIST] = "SELECT name, published_total, unrouted_total FROM herald_topics "
                     "ORDER BY name",
    [R_TOPIC_SUBS] = "SELECT queue FROM herald_topic_subscriptions WHERE topic = ?1 "
                     "ORDER BY queue",
    [R_OUTBOX_PENDING] = "SELECT seq, dest, is_topic, body FROM herald_outbox "
                         "WHERE published_ms IS NULL ORDER BY seq LIMIT ?1",
    [R_OUTBOX_COUNT] = "SELECT count(*) FROM herald_outbox WHERE published_ms IS NULL",
    [R_ATTEMPTS] = "SELECT attempt, at_ms, queue, error FROM herald_attempts "
                   "WHERE message_id = ?1 ORDER BY at_ms, attempt",
    [R_DEAD_PAGE] = "SELECT m.seq, m.visible_at_ms, m.id, coalesce(m.dead_from, ''), "
                    "m.content_type, m.body FROM herald_messages m JOIN herald_queues q "
                    "ON q.queue_id = m.queue_id WHERE q.name = ?1 AND (m.visible_at_ms > ?2 OR "
                    "(m.visible_at_ms = ?2 AND m.seq > ?3)) AND m.expires_at_ms > ?5 "
                    "ORDER BY m.visible_at_ms, m.seq LIMIT ?4",
    [R_MSG_GET] = "SELECT m.seq, m.id, m.sent_ms, m.content_type, m.body, m.attempts, "
                  "m.dead_from, m.dead_attempts, m.last_error, m.visible_at_ms "
                  "FROM herald_messages m JOIN herald_queues q ON q.queue_id = m.queue_id "
                  "WHERE q.name = ?1 AND m.id = ?2 AND m.expires_at_ms > ?3",
    [R_PROCESSED_CHECK] = "SELECT 1 FROM herald_processed_events p JOIN herald_queues q "
                          "ON q.queue_id = p.queue_id WHERE q.name = ?1 AND p.event_id = ?2",
    [R_PROCESSED_CHECK_OTHER] = "SELECT 1 FROM herald_processed_other p JOIN herald_queues q "
                                "ON q.queue_id = p.queue_id WHERE q.name = ?1 AND p.event_id = ?2",
    [R_METRICS] = "SELECT queue, type, outcome, count, sum_ms, b0, b1, b2, b3, b4, b5, b6, b7, "
                  "b8, b9, b10, b11, b12 FROM herald_metrics ORDER BY queue, type, outcome",
    [R_EXPIRED_SCAN] = "SELECT seq FROM herald_messages WHERE expires_at_ms <= ?1 AND seq > ?2 "
                       "ORDER BY seq LIMIT ?3",
    [R_TRACE] = "SELECT at_ms, what, queue, message_id, event_id, type, handler, attempt, detail "
                "FROM herald_trace WHERE correlation_id = ?1 ORDER BY at_ms, seq",
    [R_AUDIT] = "SELECT at_ms, actor, dlq, message_id, to_queue, edit FROM herald_redrive_audit "
                "WHERE ?1 IS NULL OR dlq = ?1 ORDER BY audit_id",
};

/* A queue row as the writer needs it. */
typedef struct qrow {
    int64_t id;
    int64_t delivery_delay_s, retention_s, max_message_bytes, max_retries, retry_delay_s;
    char dlq[HERALD_QUEUE_NAME_MAX + 1];
    bool is_paused;
} qrow;

/* Per-queue counter deltas, written once per op (invariant 4). msgs / bytes: rows and body
 * bytes stored (inserts minus deletes); expires_min: the earliest expiry inserted, 0 = none. */
typedef struct counters {
    int64_t sent, acked, retried, dead, deleted, expired;
    int64_t msgs, bytes, expires_min;
} counters;

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    size_t n = src ? strlen((const char *)src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = 0;
}

/* Queue rows looked up in the current transaction (cleared by herald__sq_qcache_clear at every
 * begin, rollback and queue change), so an op touching one queue many times reads it once. */
#define QCACHE_SLOTS 8
typedef struct qcache {
    char name[QCACHE_SLOTS][HERALD_QUEUE_NAME_MAX + 1];
    qrow row[QCACHE_SLOTS];
    int n, next;
} qcache;

void herald__sq_qcache_clear(sq_store *q)
{
    if (q->qcache)
        ((qcache *)q->qcache)->n = 0;
}

static int load_queue_uncached(sq_store *q, const char *name, qrow *out);

static int load_queue(sq_store *q, const char *name, qrow *out)
{
    if (!q->qcache)
        q->qcache = herald__xcalloc(1, sizeof(qcache));
    qcache *c = q->qcache;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->name[i], name) == 0) {
            *out = c->row[i];
            return 0;
        }
    }
    int rc = load_queue_uncached(q, name, out);
    if (rc == 0) {
        int i = c->n < QCACHE_SLOTS ? c->n++ : (c->next++ % QCACHE_SLOTS);
        snprintf(c->name[i], sizeof c->name[i], "%s", name);
        c->row[i] = *out;
    }
    return rc;
}

static int load_queue_uncached(sq_store *q, const char *name, qrow *out)
{
    sqlite3_stmt *st = q->w[W_QUEUE_BY_NAME];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->delivery_delay_s = sqlite3_column_int64(st, 1);
        out->retention_s = sqlite3_column_int64(st, 2);
        out->max_message_bytes = sqlite3_column_int64(st, 3);
        out->max_retries = sqlite3_column_int64(st, 4);
        out->retry_delay_s = sqlite3_column_int64(st, 5);
        copy_text(out->dlq, sizeof out->dlq, sqlite3_column_text(st, 6));
        out->is_paused = sqlite3_column_int(st, 7) != 0;
    } else if (src == SQLITE_DONE) {
        rc = herald__err(HERALD_ENOQUEUE, "queue '%s' does not exist", name);
    } else {
        rc = herald__sq_fail(q->wdb, src, "look up queue");
    }
    sqlite3_reset(st);
    return rc;
}

/* Counter deltas of the current transaction, written once at commit (herald__sq_flush_counters)
 * instead of one UPDATE of the queue row per op. Savepoints snapshot them (push on savepoint,
 * restore on rollback-to, drop on release), so a rolled-back op's counts vanish with its rows. */
#define PEND_QUEUES 16
#define PEND_DEPTH 4
typedef struct pend_set {
    int n;
    int64_t qid[PEND_QUEUES];
    counters c[PEND_QUEUES];
} pend_set;
typedef struct pend {
    pend_set cur;
    pend_set saved[PEND_DEPTH];
    int depth;
} pend;

static pend *pending(sq_store *q)
{
    if (!q->pending)
        q->pending = herald__xcalloc(1, sizeof(pend));
    return q->pending;
}

void herald__sq_counters_reset(sq_store *q)
{
    pend *p = pending(q);
    p->cur.n = 0;
    p->depth = 0;
}

void herald__sq_counters_savepoint(sq_store *q)
{
    pend *p = pending(q);
    HERALD_CHECK(p->depth < PEND_DEPTH);
    p->saved[p->depth++] = p->cur;
}

void herald__sq_counters_release(sq_store *q)
{
    pend *p = pending(q);
    if (p->depth > 0)
        p->depth--;
}

void herald__sq_counters_rollback_to(sq_store *q)
{
    pend *p = pending(q);
    if (p->depth > 0)
        p->cur = p->saved[p->depth - 1];
}

static int write_counters_now(sq_store *q, int64_t queue_id, const counters *c)
{
    sqlite3_stmt *st = q->w[W_COUNTERS];
    sqlite3_bind_int64(st, 1, queue_id);
    sqlite3_bind_int64(st, 2, c->sent);
    sqlite3_bind_int64(st, 3, c->acked);
    sqlite3_bind_int64(st, 4, c->retried);
    sqlite3_bind_int64(st, 5, c->dead);
    sqlite3_bind_int64(st, 6, c->deleted);
    sqlite3_bind_int64(st, 7, c->expired);
    sqlite3_bind_int64(st, 8, c->msgs);
    sqlite3_bind_int64(st, 9, c->bytes);
    if (c->expires_min)
        sqlite3_bind_int64(st, 10, c->expires_min);
    else
        sqlite3_bind_null(st, 10);
    return herald__sq_exec(q, st, "update queue counters");
}

static int write_counters(sq_store *q, int64_t queue_id, const counters *c)
{
    if (!c->sent && !c->acked && !c->retried && !c->dead && !c->deleted && !c->expired &&
        !c->msgs && !c->bytes && !c->expires_min)
        return 0;
    pend_set *s = &pending(q)->cur;
    int i = 0;
    while (i < s->n && s->qid[i] != queue_id)
        i++;
    if (i == s->n) {
        if (s->n == PEND_QUEUES) /* many queues in one transaction: write through */
            return write_counters_now(q, queue_id, c);
        s->qid[s->n] = queue_id;
        memset(&s->c[s->n], 0, sizeof s->c[s->n]);
        s->n++;
    }
    counters *t = &s->c[i];
    t->sent += c->sent;
    t->acked += c->acked;
    t->retried += c->retried;
    t->dead += c->dead;
    t->deleted += c->deleted;
    t->expired += c->expired;
    t->msgs += c->msgs;
    t->bytes += c->bytes;
    if (c->expires_min && (!t->expires_min || c->expires_min < t->expires_min))
        t->expires_min = c->expires_min;
    return 0;
}

/* Sets queue_id's msg_count / msg_bytes from its rows: O(its rows), for the rare cases where a
 * delete's size is unknown. The pending deltas are written first, so the count is exact after
 * this op whatever came before it in the transaction. */
static int recount(sq_store *q, int64_t queue_id)
{
    int rc = herald__sq_counters_flush(q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q->w[W_QUEUE_RECOUNT], 1, queue_id);
    return herald__sq_exec(q, q->w[W_QUEUE_RECOUNT], "recount queue");
}

int herald__sq_count_moved(sq_store *q, int64_t from_id, int64_t to_id, int64_t old_bytes,
                           int64_t new_bytes, int64_t new_expires_ms)
{
    counters from = { .msgs = -1, .bytes = -old_bytes };
    counters to = { .sent = 1, .msgs = 1, .bytes = new_bytes, .expires_min = new_expires_ms };
    int rc = write_counters(q, from_id, &from);
    return rc < 0 ? rc : write_counters(q, to_id, &to);
}

int herald__sq_counters_flush(sq_store *q)
{
    pend_set *s = &pending(q)->cur;
    int rc = 0;
    for (int i = 0; rc == 0 && i < s->n; i++)
        rc = write_counters_now(q, s->qid[i], &s->c[i]);
    s->n = 0;
    return rc;
}

static int insert_queue(sq_store *q, const char *name, const herald_queue_settings *st,
                        const char *uuid, int64_t now_ms)
{
    herald__sq_qcache_clear(q);
    sqlite3_stmt *s = q->w[W_QUEUE_INSERT];
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    sqlite3_bind_int64(s, 4, st->delivery_delay_s);
    sqlite3_bind_int64(s, 5, st->message_retention_period_s);
    sqlite3_bind_int64(s, 6, st->max_message_bytes);
    sqlite3_bind_int64(s, 7, st->max_retries);
    sqlite3_bind_int64(s, 8, st->retry_delay_s);
    sqlite3_bind_text(s, 9, st->dead_letter_queue ? st->dead_letter_queue : "", -1,
                      SQLITE_STATIC);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    if (src == SQLITE_DONE)
        return 0;
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return herald__err(HERALD_EEXIST, "queue '%s' already exists", name);
    return herald__sq_fail(q->wdb, src, "create queue");
}

int herald__sq_queue_create(herald_store *s, const char *name, const herald_queue_settings *st,
                            const char *uuid, int64_t now_ms)
{
    return insert_queue((sq_store *)s, name, st, uuid, now_ms);
}

int herald__sq_queue_update(herald_store *s, const char *name, const herald_queue_settings *st,
                            int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, name, &r);
    if (rc < 0)
        return rc;
    sqlite3_stmt *u = q->w[W_QUEUE_UPDATE];
    sqlite3_bind_int64(u, 1, r.id);
    sqlite3_bind_int64(u, 2, now_ms);
#define PICK(field, cur) (st->field != HERALD_UNSET ? st->field : (cur))
    sqlite3_bind_int64(u, 3, PICK(delivery_delay_s, r.delivery_delay_s));
    sqlite3_bind_int64(u, 4, PICK(message_retention_period_s, r.retention_s));
    sqlite3_bind_int64(u, 5, PICK(max_message_bytes, r.max_message_bytes));
    sqlite3_bind_int64(u, 6, PICK(max_retries, r.max_retries));
    sqlite3_bind_int64(u, 7, PICK(retry_delay_s, r.retry_delay_s));
#undef PICK
    sqlite3_bind_text(u, 8, st->dead_letter_queue ? st->dead_letter_queue : r.dlq, -1,
                      SQLITE_TRANSIENT);
    herald__sq_qcache_clear(q);
    return herald__sq_exec(q, u, "update queue");
}

int herald__sq_queue_delete(herald_store *s, const char *name)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, name, &r);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q->w[W_QUEUE_MSGS_DELETE], 1, r.id);
    rc = herald__sq_exec(q, q->w[W_QUEUE_MSGS_DELETE], "delete queue messages");
    if (rc == 0) { /* a deleted queue leaves every topic it was subscribed to */
        sqlite3_bind_text(q->w[W_QUEUE_SUBS_DELETE], 1, name, -1, SQLITE_STATIC);
        rc = herald__sq_exec(q, q->w[W_QUEUE_SUBS_DELETE], "delete queue subscriptions");
    }
    if (rc == 0) {
        herald__sq_qcache_clear(q);
        sqlite3_bind_int64(q->w[W_QUEUE_DELETE], 1, r.id);
        rc = herald__sq_exec(q, q->w[W_QUEUE_DELETE], "delete queue");
    }
    return rc;
}

int herald__sq_queue_purge(herald_store *s, const char *name, int64_t *n_deleted)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, name, &r);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q->w[W_QUEUE_MSGS_DELETE], 1, r.id);
    rc = herald__sq_exec(q, q->w[W_QUEUE_MSGS_DELETE], "purge queue");
    if (rc == 0 && n_deleted)
        *n_deleted = sqlite3_changes64(q->wdb);
    if (rc == 0)
        rc = recount(q, r.id); /* no row left: cheap */
    return rc;
}

int herald__sq_queue_set_paused(herald_store *s, const char *name, bool paused, int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, name, &r);
    if (rc < 0)
        return rc;
    herald__sq_qcache_clear(q);
    sqlite3_stmt *st = q->w[W_QUEUE_PAUSE];
    sqlite3_bind_int64(st, 1, r.id);
    sqlite3_bind_int(st, 2, paused ? 1 : 0);
    sqlite3_bind_int64(st, 3, now_ms);
    return herald__sq_exec(q, st, "pause/resume queue");
}

int herald__sq_msg_put(herald_store *s, const char *queue, const herald__msg_in *m, size_t n,
                       int64_t batch_delay_s, int64_t now_ms)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) { /* check everything before the first insert */
        if ((int64_t)m[i].body_len > r.max_message_bytes) {
            char what[32] = "message"; /* a single send has no index to name */
            if (n > 1)
                snprintf(what, sizeof what, "message %zu", i);
            return herald__err(HERALD_ETOOBIG,
                               "%s: body of %zu bytes exceeds max_message_bytes %lld of queue "
                               "'%s'",
                               what, m[i].body_len, (long long)r.max_message_bytes, queue);
        }
    }
    sqlite3_stmt *st = q->w[W_MSG_INSERT];
    counters c = { .sent = (int64_t)n, .msgs = (int64_t)n };
    for (size_t i = 0; i < n; i++) {
        int64_t delay_s = m[i].delay_s != HERALD_UNSET ? m[i].delay_s
                          : batch_delay_s != HERALD_UNSET ? batch_delay_s
                                                          : r.delivery_delay_s;
        int64_t visible = now_ms + delay_s * 1000;
        int64_t expires = visible + r.retention_s * 1000;
        c.bytes += (int64_t)m[i].body_len;
        if (!c.expires_min || expires < c.expires_min)
            c.expires_min = expires;
        sqlite3_bind_int64(st, 1, r.id);
        sqlite3_bind_int64(st, 2, visible);
        sqlite3_bind_int64(st, 3, expires);
        sqlite3_bind_int64(st, 4, now_ms);
        sqlite3_bind_int(st, 5, (int)m[i].content_type);
        sqlite3_bind_text(st, 6, m[i].id, HERALD_ID_SIZE - 1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 7, m[i].body_len ? m[i].body : "", m[i].body_len, SQLITE_STATIC);
        const herald__trace_info *t = &m[i].trace;
        if (t->correlation_id[0]) {
            sqlite3_bind_text(st, 8, t->correlation_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 9, t->event_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 10, t->type, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, 8);
            sqlite3_bind_null(st, 9);
            sqlite3_bind_null(st, 10);
        }
        sqlite3_bind_int64(st, 11, herald__sq_next_seq(q));
        int src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            return herald__sq_fail(q->wdb, src, "insert message");
        if (t->correlation_id[0] &&
            (rc = herald__sq_trace_add(q, t, "sent", queue, m[i].id, "", 0, "", now_ms)) < 0)
            return rc;
    }
    return write_counters(q, r.id, &c);
}

/* Resolves the effective retry policy of an op against the queue's own settings. */
static void resolve_policy(const qrow *r, const herald__policy *p, int64_t *max_retries,
                           int64_t *retry_delay_s, const char **dlq)
{
    *max_retries = p && p->max_retries != HERALD_UNSET ? p->max_retries : r->max_retries;
    *retry_delay_s = p && p->retry_delay_s != HERALD_UNSET ? p->retry_delay_s : r->retry_delay_s;
    *dlq = p && p->dead_letter_queue ? p->dead_letter_queue : r->dlq;
}

static int default_settings_queue(sq_store *q, const char *name, int64_t now_ms, qrow *out)
{
    herald_queue_settings st = {
        .delivery_delay_s = 0,
        .message_retention_period_s = HERALD_DEFAULT_RETENTION_S,
        .max_message_bytes = HERALD_MAX_MESSAGE_BYTES,
        .max_retries = HERALD_DEFAULT_MAX_RETRIES,
        .retry_delay_s = 0,
        .dead_letter_queue = "",
    };
    char uuid[HERALD_ID_SIZE];
    herald__uuid7_at(now_ms, uuid);
    int rc = insert_queue(q, name, &st, uuid, now_ms);
    if (rc == 0)
        rc = load_queue(q, name, out);
    if (rc == 0)
        herald__log(HERALD_LOG_INFO, "created dead-letter queue", "queue", name, NULL);
    return rc;
}

/* Moves row `seq` (exhausted; its body is `bytes` long) to the dead-letter queue, or deletes
 * it when there is none. */
static int dead_letter(sq_store *q, const qrow *src, const char *src_name, int64_t seq,
                       int64_t bytes, const char *msg_id, const char *dlq, const char *error,
                       int64_t now_ms, counters *c)
{
    int rc = 0;
    if (dlq && dlq[0] && strcmp(dlq, src_name) != 0) {
        qrow d;
        rc = load_queue(q, dlq, &d);
        if (rc == HERALD_ENOQUEUE) {
            herald__err_clear();
            rc = default_settings_queue(q, dlq, now_ms, &d);
        }
        if (rc < 0)
            return rc;
        sqlite3_stmt *st = q->w[W_MSG_TO_DLQ];
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, d.id);
        sqlite3_bind_int64(st, 3, now_ms);
        sqlite3_bind_int64(st, 4, now_ms + d.retention_s * 1000);
        sqlite3_bind_text(st, 5, src_name, -1, SQLITE_STATIC);
        if (error)
            sqlite3_bind_text(st, 6, error, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_int64(st, 7, herald__sq_next_seq(q));
        rc = herald__sq_exec(q, st, "move message to dead-letter queue");
        if (rc == 0) {
            counters dc = { .sent = 1, .msgs = 1, .bytes = bytes,
                            .expires_min = now_ms + d.retention_s * 1000 };
            rc = write_counters(q, d.id, &dc);
        }
        c->dead++;
    } else {
        herald__log(HERALD_LOG_WARN,
                    "message used all its deliveries and its queue has no dead-letter queue: "
                    "deleted",
                    "queue", src_name, "id", msg_id, "error", error, NULL);
        c->deleted++;
    }
    if (rc == 0) {
        sqlite3_stmt *del = q->w[W_MSG_DELETE];
        sqlite3_bind_int64(del, 1, seq);
        sqlite3_bind_int64(del, 2, src->id);
        rc = herald__sq_exec(q, del, "delete message");
        c->msgs--;
        c->bytes -= bytes;
    }
    return rc;
}

#define LEASE_EXPIRED "visibility timeout expired without ack"

int herald__sq_trace_add(sq_store *q, const herald__trace_info *t, const char *what,
                         const char *queue, const char *msg_id, const char *handler, int attempt,
                         const char *detail, int64_t now_ms)
{
    sqlite3_stmt *st = q->w[W_TRACE_ADD];
    sqlite3_bind_text(st, 1, t->correlation_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, t->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, t->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, handler ? handler : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, attempt);
    sqlite3_bind_text(st, 10, detail ? detail : "", -1, SQLITE_STATIC);
    return herald__sq_exec(q, st, "record trace");
}

int herald__sq_attempt_add(sq_store *q, const char *msg_id, const char *queue, int64_t attempt,
                           const char *error, int64_t now_ms)
{
    sqlite3_stmt *st = q->w[W_ATTEMPT_ADD];
    sqlite3_bind_text(st, 1, msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, attempt);
    sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    return herald__sq_exec(q, st, "record a failed attempt");
}

typedef struct cand {
    int64_t seq, attempts, expires_at_ms;
    bool was_leased; /* its previous lease expired unsettled: a failed attempt */
    herald_message *m; /* pushed into the batch at scan; popped again if not leased */
} cand;

/* Lease (take false) or take (take true) up to max_n visible messages of queue into out. A
 * take changes no row: the caller settles every taken message in the same op (an
 * effectively-once batch), so nobody else can see it in between; lease ids carry the attempts
 * count at take time as their tag, and the store's in-flight journal records them. */
static int lease_or_take(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                         const herald__policy *p, int64_t now_ms, herald_batch *out, bool take)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    if (rc < 0)
        return rc;
    if (r.is_paused)
        return herald__err(HERALD_EPAUSED, "queue '%s' is paused (queue_delivery_paused)", queue);
    int64_t max_retries, retry_delay_s;
    const char *dlq;
    resolve_policy(&r, p, &max_retries, &retry_delay_s, &dlq);
    herald__batch_init(out, queue, (size_t)max_n);
    counters c = { 0 };
    /* < 2^62, so that tag_base + seq never overflows (in C or in the SQL of W_LEASE_BATCH) */
    int64_t tag_base = (int64_t)(herald__rand64() >> 2);
    cand cands[HERALD_MAX_BATCH_MESSAGES];
    while (rc == 0 && (int)out->n < max_n) {
        /* Collect first, then update: updating visible_at moves rows within the index the scan
         * walks, so the two must not interleave. */
        sqlite3_stmt *scan = q->w[W_LEASE_SCAN];
        sqlite3_bind_int64(scan, 1, r.id);
        sqlite3_bind_int64(scan, 2, now_ms);
        int requested = max_n - (int)out->n;
        sqlite3_bind_int(scan, 3, requested);
        int n_cand = 0, src;
        while ((src = sqlite3_step(scan)) == SQLITE_ROW) {
            cand *k = &cands[n_cand++];
            k->seq = sqlite3_column_int64(scan, 0);
            k->attempts = sqlite3_column_int64(scan, 1);
            k->expires_at_ms = sqlite3_column_int64(scan, 2);
            herald_message *m = herald__batch_push(out);
            k->m = m;
            copy_text(m->id, sizeof m->id, sqlite3_column_text(scan, 3));
            m->timestamp_ms = sqlite3_column_int64(scan, 4);
            m->content_type = (herald_content_type)sqlite3_column_int(scan, 5);
            m->body_len = (size_t)sqlite3_column_bytes(scan, 6);
            m->body = herald__batch_keep(out, sqlite3_column_blob(scan, 6), m->body_len);
            copy_text(m->dead_from_queue, sizeof m->dead_from_queue,
                      sqlite3_column_text(scan, 7));
            m->dead_attempts = sqlite3_column_int(scan, 8);
            if (sqlite3_column_type(scan, 9) != SQLITE_NULL)
                m->last_error = herald__batch_keep(out, sqlite3_column_text(scan, 9),
                                                   (size_t)sqlite3_column_bytes(scan, 9));
            k->was_leased = sqlite3_column_int(scan, 10) != 0;
        }
        sqlite3_reset(scan);
        if (src != SQLITE_DONE) {
            rc = herald__sq_fail(q->wdb, src, "scan visible messages");
            break;
        }
        if (n_cand == 0)
            break;
        /* The scan pushed one message per candidate (never past the batch's capacity max_n,
         * so k->m stays valid); keep those leased, in order. Their UPDATE is one statement for
         * the whole page (W_LEASE_BATCH), run after the loop. */
        size_t keep = out->n - (size_t)n_cand;
        int64_t lease_seqs[HERALD_MAX_BATCH_MESSAGES], lease_attempts[HERALD_MAX_BATCH_MESSAGES];
        int n_lease = 0;
        for (int i = 0; rc == 0 && i < n_cand; i++) {
            cand *k = &cands[i];
            if (k->expires_at_ms <= now_ms) {
                sqlite3_stmt *del = q->w[W_MSG_DELETE];
                sqlite3_bind_int64(del, 1, k->seq);
                sqlite3_bind_int64(del, 2, r.id);
                rc = herald__sq_exec(q, del, "delete expired message");
                c.expired++;
                c.msgs--;
                c.bytes -= (int64_t)k->m->body_len;
                continue;
            }
            if (k->was_leased) {
                rc = herald__sq_attempt_add(q, k->m->id, queue, k->attempts, LEASE_EXPIRED,
                                            now_ms);
                if (rc == 0 && take) { /* no new lease replaces the tag: drop it (recorded) */
                    sqlite3_stmt *up = q->w[W_MSG_RETRY];
                    sqlite3_bind_int64(up, 1, k->seq);
                    sqlite3_bind_int64(up, 2, now_ms);
                    sqlite3_bind_text(up, 3, LEASE_EXPIRED, -1, SQLITE_STATIC);
                    rc = herald__sq_exec(q, up, "clear an expired lease");
                }
                if (rc < 0)
                    break;
            }
            if (k->attempts >= max_retries + 1) { /* its last lease expired unsettled */
                /* its last attempt: an expired lease, or (taken, crash-charged) the row's
                 * own last_error */
                rc = dead_letter(q, &r, queue, k->seq, (int64_t)k->m->body_len, k->m->id, dlq,
                                 k->was_leased ? LEASE_EXPIRED : NULL, now_ms, &c);
                continue;
            }
            herald__lease_ref ref = { .seq = k->seq,
                                      .tag = take ? k->attempts : tag_base + k->seq };
            lease_attempts[n_lease] = k->attempts;
            lease_seqs[n_lease++] = k->seq;
            herald_message *m = &out->msgs[keep];
            if (m != k->m)
                *m = *k->m; /* compact over the skipped ones (their kept bytes stay owned) */
            m->attempts = (int)k->attempts + 1;
            herald__lease_format(ref, m->lease_id);
            keep++;
        }
        out->n = keep;
        if (rc == 0 && take && n_lease > 0)
            rc = herald__sq_inflight_note(q, lease_seqs, lease_attempts, (size_t)n_lease);
        if (rc == 0 && !take && n_lease > 0) {
            sqlite3_stmt *up = q->w[W_LEASE_BATCH];
            sqlite3_bind_int64(up, 1, now_ms + visibility_ms);
            sqlite3_bind_int64(up, 2, tag_base);
            for (int i = 0; i < HERALD_MAX_BATCH_MESSAGES; i++) /* seq 0 never exists */
                sqlite3_bind_int64(up, 3 + i, i < n_lease ? lease_seqs[i] : 0);
            rc = herald__sq_exec(q, up, "lease messages");
            if (rc == 0 && sqlite3_changes(q->wdb) != n_lease)
                rc = herald__err(HERALD_ESTORE, "lease updated %d of %d rows",
                                 sqlite3_changes(q->wdb), n_lease);
        }
        if (n_cand < requested || take)
            break; /* the scan found every visible message; a take takes one page */
    }
    if (rc == 0)
        rc = write_counters(q, r.id, &c);
    if (rc < 0)
        herald_batch_deinit(out);
    return rc;
}

int herald__sq_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                     const herald__policy *p, int64_t now_ms, herald_batch *out)
{
    return lease_or_take(s, queue, max_n, visibility_ms, p, now_ms, out, false);
}

int herald__sq_take(herald_store *s, const char *queue, int max_n, const herald__policy *p,
                    int64_t now_ms, herald_batch *out)
{
    return lease_or_take(s, queue, max_n, 0, p, now_ms, out, true);
}

/* Trace columns of row seq: 1 if it is traced, 0 if not (or gone), < 0 on error. *bytes: its
 * body length (-1: the row is gone). */
static int read_trace(sq_store *q, int64_t seq, int64_t queue_id, herald__trace_info *t,
                      char id[HERALD_ID_SIZE], int *attempts, int64_t *bytes)
{
    sqlite3_stmt *st = q->w[W_MSG_STATE];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, queue_id);
    int traced = 0;
    int src = sqlite3_step(st);
    *bytes = src == SQLITE_ROW ? sqlite3_column_int64(st, 6) : -1;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        traced = herald__sq_fail(q->wdb, src, "read message trace");
    else if (src == SQLITE_ROW && sqlite3_column_type(st, 3) != SQLITE_NULL) {
        *attempts = sqlite3_column_int(st, 0);
        copy_text(id, HERALD_ID_SIZE, sqlite3_column_text(st, 2));
        copy_text(t->correlation_id, sizeof t->correlation_id, sqlite3_column_text(st, 3));
        copy_text(t->event_id, sizeof t->event_id, sqlite3_column_text(st, 4));
        copy_text(t->type, sizeof t->type, sqlite3_column_text(st, 5));
        traced = 1;
    }
    sqlite3_reset(st);
    return traced;
}

int herald__sq_settle(herald_store *s, const char *queue, const herald__settle_item *items,
                      size_t n, const herald__policy *p, int64_t now_ms,
                      herald_settle_result *res)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    if (rc < 0)
        return rc;
    int64_t max_retries, retry_delay_s;
    const char *dlq;
    resolve_policy(&r, p, &max_retries, &retry_delay_s, &dlq);
    counters c = { 0 };
    memset(res, 0, sizeof *res);
    /* Plain acks of a consumer (no trace, no processed record) are deleted together, one
     * statement per page of 100 (W_ACK_BATCH); the others row by row below. */
    int64_t ack_seqs[HERALD_MAX_BATCH_MESSAGES];
    int64_t ack_bytes = 0; /* their body bytes (the items know them) */
    int n_ack = 0;
    bool batch_acks = p && p->handler_name, needs_recount = false;
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        bool flush = n_ack > 0 && (i == n || n_ack == HERALD_MAX_BATCH_MESSAGES);
        if (flush) {
            sqlite3_stmt *del = q->w[W_ACK_BATCH];
            sqlite3_bind_int64(del, 1, r.id);
            for (int k = 0; k < HERALD_MAX_BATCH_MESSAGES; k++)
                sqlite3_bind_int64(del, 2 + k, k < n_ack ? ack_seqs[k] : 0);
            rc = herald__sq_exec(q, del, "ack messages");
            int64_t deleted = rc == 0 ? sqlite3_changes(q->wdb) : 0;
            res->n_acked += deleted;
            res->n_missing += n_ack - deleted;
            c.acked += deleted;
            if (deleted == n_ack) {
                c.msgs -= deleted;
                c.bytes -= ack_bytes;
            } else { /* some were gone already: which ones' bytes went is unknown */
                needs_recount = true;
            }
            n_ack = 0;
            ack_bytes = 0;
        }
        if (rc < 0 || i == n)
            break;
        const herald__settle_item *it = &items[i];
        if (batch_acks && !it->is_retry && !it->trace && !it->processed_event_id &&
            it->body_bytes > 0) {
            ack_seqs[n_ack++] = it->ref.seq;
            ack_bytes += it->body_bytes;
            continue;
        }
        herald__trace_info looked_up;
        const herald__trace_info *trace = it->trace;
        char looked_id[HERALD_ID_SIZE] = "";
        int looked_attempt = 0;
        int64_t bytes = it->body_bytes;
        if (!it->is_retry && (bytes <= 0 || (!trace && !batch_acks))) {
            /* the pull API: find out here whether the message is traced (and its size) */
            int t = read_trace(q, it->ref.seq, r.id, &looked_up, looked_id, &looked_attempt,
                               &bytes);
            if (t < 0) {
                rc = t;
                break;
            }
            if (t > 0 && !trace && !batch_acks)
                trace = &looked_up;
        }
        if (!it->is_retry) {
            sqlite3_stmt *del = q->w[W_MSG_DELETE];
            sqlite3_bind_int64(del, 1, it->ref.seq);
            sqlite3_bind_int64(del, 2, r.id);
            rc = herald__sq_exec(q, del, "ack message");
            bool deleted = rc == 0 && sqlite3_changes(q->wdb) > 0;
            if (deleted) {
                res->n_acked++;
                c.acked++;
                c.msgs--;
                c.bytes -= bytes;
            } else if (rc == 0) {
                res->n_missing++;
            }
            if (deleted && trace)
                rc = herald__sq_trace_add(q, trace, "acked", queue,
                                          it->trace ? it->message_id : looked_id,
                                          p && p->handler_name ? p->handler_name : "pull",
                                          it->trace ? it->attempt : looked_attempt, "", now_ms);
            bool is_new;
            if (rc == 0 && it->processed_event_id)
                rc = herald__sq_processed_claim(s, queue, it->processed_event_id,
                                                it->processed_type ? it->processed_type : "",
                                                now_ms, &is_new);
            continue;
        }
        sqlite3_stmt *st = q->w[W_MSG_STATE];
        sqlite3_bind_int64(st, 1, it->ref.seq);
        sqlite3_bind_int64(st, 2, r.id);
        int src = sqlite3_step(st);
        int64_t attempts = 0;
        bool has_tag = false;
        int64_t tag = 0;
        char id[HERALD_ID_SIZE] = "";
        int64_t row_bytes = 0;
        if (src == SQLITE_ROW) {
            row_bytes = sqlite3_column_int64(st, 6);
            attempts = sqlite3_column_int64(st, 0);
            has_tag = sqlite3_column_type(st, 1) != SQLITE_NULL;
            tag = sqlite3_column_int64(st, 1);
            copy_text(id, sizeof id, sqlite3_column_text(st, 2));
            if (!trace && sqlite3_column_type(st, 3) != SQLITE_NULL) {
                copy_text(looked_up.correlation_id, sizeof looked_up.correlation_id,
                          sqlite3_column_text(st, 3));
                copy_text(looked_up.event_id, sizeof looked_up.event_id,
                          sqlite3_column_text(st, 4));
                copy_text(looked_up.type, sizeof looked_up.type, sqlite3_column_text(st, 5));
                trace = &looked_up;
            }
        }
        sqlite3_reset(st);
        if (src == SQLITE_DONE) {
            res->n_missing++;
            continue;
        }
        if (src != SQLITE_ROW) {
            rc = herald__sq_fail(q->wdb, src, "read message state");
            break;
        }
        if (it->is_taken) {
            /* taken in this op (no lease): this attempt is counted now, where it failed */
            if (attempts != it->ref.tag) {
                res->n_stale++;
                continue;
            }
            sqlite3_stmt *cnt = q->w[W_MSG_COUNT_ATTEMPT];
            sqlite3_bind_int64(cnt, 1, it->ref.seq);
            rc = herald__sq_exec(q, cnt, "count a failed attempt");
            if (rc < 0)
                break;
            attempts++;
        } else if (!has_tag || tag != it->ref.tag) {
            res->n_stale++;
            continue;
        }
        rc = herald__sq_attempt_add(q, id, queue, attempts, it->error ? it->error : "retried",
                                    now_ms);
        if (rc < 0)
            break;
        if (trace) {
            bool dies = it->is_dead || attempts >= max_retries + 1;
            rc = herald__sq_trace_add(q, trace, dies ? "dead_lettered" : "retried", queue, id,
                                      p && p->handler_name ? p->handler_name : "pull",
                                      (int)attempts, it->error, now_ms);
            if (rc < 0)
                break;
        }
        if (it->is_dead || attempts >= max_retries + 1) {
            rc = dead_letter(q, &r, queue, it->ref.seq, row_bytes, id, dlq, it->error, now_ms,
                             &c);
            res->n_dead++;
            continue;
        }
        int64_t delay_s = it->delay_s != HERALD_UNSET ? it->delay_s : retry_delay_s;
        sqlite3_stmt *up = q->w[W_MSG_RETRY];
        sqlite3_bind_int64(up, 1, it->ref.seq);
        sqlite3_bind_int64(up, 2, now_ms + delay_s * 1000);
        if (it->error)
            sqlite3_bind_text(up, 3, it->error, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(up, 3);
        rc = herald__sq_exec(q, up, "retry message");
        res->n_retried++;
        c.retried++;
    }
    if (rc == 0)
        rc = write_counters(q, r.id, &c);
    if (rc == 0 && needs_recount)
        rc = recount(q, r.id);
    return rc;
}

int herald__sq_extend(herald_store *s, const char *queue, const herald__lease_ref *refs, size_t n,
                      int64_t until_ms)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    sqlite3_stmt *st = q->w[W_MSG_EXTEND];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, refs[i].seq);
        sqlite3_bind_int64(st, 2, refs[i].tag);
        sqlite3_bind_int64(st, 3, until_ms);
        sqlite3_bind_int64(st, 4, r.id);
        rc = herald__sq_exec(q, st, "extend lease");
    }
    return rc;
}

int herald__sq_sweep(herald_store *s, int64_t now_ms, int64_t *n_pruned)
{
    sq_store *q = (sq_store *)s;
    /* Called once a retention pass deleted every row expired when its scan began: no row
     * expires before then (invariant 5). */
    int64_t pass_ms = __atomic_exchange_n(&q->sweep_start_ms, 0, __ATOMIC_SEQ_CST);
    if (pass_ms > 0) {
        sqlite3_bind_int64(q->w[W_EXPIRY_FLOOR], 1, pass_ms);
        int frc = herald__sq_exec(q, q->w[W_EXPIRY_FLOOR], "raise expiry floors");
        if (frc < 0)
            return frc;
    }
    sqlite3_bind_int64(q->w[W_ATTEMPT_PRUNE], 1, now_ms - 14LL * 86400 * 1000);
    int rc = herald__sq_exec(q, q->w[W_ATTEMPT_PRUNE], "prune attempt history");
    int64_t n = rc == 0 ? sqlite3_changes64(q->wdb) : 0;
    if (rc == 0) {
        sqlite3_bind_int64(q->w[W_TRACE_PRUNE], 1, now_ms - 7LL * 86400 * 1000);
        rc = herald__sq_exec(q, q->w[W_TRACE_PRUNE], "prune traces");
        n += rc == 0 ? sqlite3_changes64(q->wdb) : 0;
    }
    if (rc == 0)
        *n_pruned = n;
    return rc;
}

int herald__sq_expire(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms,
                      int64_t *n_deleted)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->w[W_EXPIRE_ONE];
    int rc = 0;
    int64_t total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, seqs[i]);
        sqlite3_bind_int64(st, 2, now_ms);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) { /* the row is still expired: it is deleted with its count */
            counters c = { .expired = 1, .msgs = -1, .bytes = -sqlite3_column_int64(st, 1) };
            rc = write_counters(q, sqlite3_column_int64(st, 0), &c);
            total++;
            src = sqlite3_step(st);
        }
        sqlite3_reset(st);
        if (rc == 0 && src != SQLITE_DONE)
            rc = herald__sq_fail(q->wdb, src, "delete expired message");
    }
    if (rc == 0)
        *n_deleted = total;
    return rc;
}

int herald__sq_expired_scan(herald_store *s, int64_t now_ms, int64_t after_seq, int64_t *seqs,
                            size_t max, size_t *n)
{
    sq_store *q = (sq_store *)s;
    if (after_seq == 0) /* a retention pass begins: see herald__sq_sweep */
        __atomic_store_n(&q->sweep_start_ms, now_ms, __ATOMIC_SEQ_CST);
    sqlite3_stmt *st = q->r[R_EXPIRED_SCAN];
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, (int64_t)max);
    size_t k = 0;
    int src;
    while (k < max && (src = sqlite3_step(st)) == SQLITE_ROW)
        seqs[k++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (k < max && src != SQLITE_DONE)
        return herald__sq_fail(q->rdb, src, "scan expired messages");
    *n = k;
    return 0;
}

/* ---- read side ---- */

static void read_info(sqlite3_stmt *st, herald_queue_info *out)
{
    memset(out, 0, sizeof *out);
    copy_text(out->name, sizeof out->name, sqlite3_column_text(st, 0));
    copy_text(out->queue_id, sizeof out->queue_id, sqlite3_column_text(st, 1));
    out->created_ms = sqlite3_column_int64(st, 2);
    out->modified_ms = sqlite3_column_int64(st, 3);
    out->delivery_delay_s = sqlite3_column_int64(st, 4);
    out->message_retention_period_s = sqlite3_column_int64(st, 5);
    out->max_message_bytes = sqlite3_column_int64(st, 6);
    out->max_retries = sqlite3_column_int64(st, 7);
    out->retry_delay_s = sqlite3_column_int64(st, 8);
    copy_text(out->dead_letter_queue, sizeof out->dead_letter_queue, sqlite3_column_text(st, 9));
    out->is_paused = sqlite3_column_int(st, 10) != 0;
}

/* What a queue row says about its messages (migration 0013). */
typedef struct msg_counts {
    int64_t n, bytes, expiry_floor_ms;
} msg_counts;

/* Finds queue `name` on the reader; leaves the statement on its row for the caller. */
static int read_queue(sq_store *q, const char *name, int64_t *qid, herald_queue_info *info,
                      herald_queue_stats *counts, msg_counts *mc)
{
    sqlite3_stmt *st = q->r[R_QUEUE_BY_NAME];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW) {
        if (info)
            read_info(st, info);
        *qid = sqlite3_column_int64(st, 11);
        if (counts) {
            counts->sent_total = sqlite3_column_int64(st, 12);
            counts->acked_total = sqlite3_column_int64(st, 13);
            counts->retried_total = sqlite3_column_int64(st, 14);
            counts->dead_lettered_total = sqlite3_column_int64(st, 15);
            counts->deleted_total = sqlite3_column_int64(st, 16);
            counts->expired_total = sqlite3_column_int64(st, 17);
        }
        if (mc) {
            mc->n = sqlite3_column_int64(st, 18);
            mc->bytes = sqlite3_column_int64(st, 19);
            mc->expiry_floor_ms = sqlite3_column_int64(st, 20);
        }
    } else if (src == SQLITE_DONE) {
        rc = herald__err(HERALD_ENOQUEUE, "queue '%s' does not exist", name);
    } else {
        rc = herald__sq_fail(q->rdb, src, "read queue");
    }
    sqlite3_reset(st);
    return rc;
}

int herald__sq_queue_get(herald_store *s, const char *name, herald_queue_info *out)
{
    int64_t qid;
    return read_queue((sq_store *)s, name, &qid, out, NULL, NULL);
}

static void fill_info(sqlite3_stmt *st, void *elem)
{
    read_info(st, elem);
}

int herald__sq_queue_list(herald_store *s, herald_queue_info **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    return herald__sq_collect(q->rdb, q->r[R_QUEUE_LIST], sizeof **out, fill_info, (void **)out,
                              n, "list queues");
}

/* Steps a one-row statement bound to (qid, now_ms); the caller reads the row, then resets. */
static int stats_step(sq_store *q, sqlite3_stmt *st, int64_t qid, int64_t now_ms)
{
    sqlite3_bind_int64(st, 1, qid);
    sqlite3_bind_int64(st, 2, now_ms);
    int src = sqlite3_step(st);
    return src == SQLITE_ROW ? 0 : herald__sq_fail(q->rdb, src, "queue stats");
}

/* The cost of each field, so that stats cost the same with 10 or 10,000,000 messages waiting
 * (n = the queue's rows, k = its delayed + leased rows, log n = one index descent):
 *   counters (*_total)        O(1)  the queue row
 *   backlog_count / _bytes    O(1)  msg_count / msg_bytes of the queue row, minus the rows past
 *                                   their retention not yet deleted: none while the queue's
 *                                   expiry floor is in the future (O(1)); else counted, O(n) -
 *                                   only between a message's expiry and the next retention
 *                                   sweep (once a minute while a consumer of the store runs)
 *   delayed_count / leased    O(k log n)  the index range visible_at > now (the rows a
 *                                   consumer or a delay holds back; leases are bounded by the
 *                                   consumers' batches in hand)
 *   visible_count             O(1)  backlog - delayed - leased
 *   oldest_message_timestamp  O(k log n + 100 log n): the oldest send time among the delayed
 *                                   and leased rows and the first 100 visible ones in delivery
 *                                   order - exact unless an older message waits behind 100
 *                                   younger visible ones (it became visible again after a retry
 *                                   or an expired lease, or had a longer delay) */
int herald__sq_queue_stats(herald_store *s, const char *name, int64_t now_ms,
                           herald_queue_stats *out)
{
    sq_store *q = (sq_store *)s;
    herald_queue_stats st_out;
    memset(&st_out, 0, sizeof st_out);
    int64_t qid;
    msg_counts mc = { 0 };
    /* One read transaction so the counters and the rows agree. */
    sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL);
    int rc = read_queue(q, name, &qid, NULL, &st_out, &mc);
    int64_t n_expired = 0, expired_bytes = 0, oldest = INT64_MAX;
    if (rc == 0 && mc.expiry_floor_ms <= now_ms) {
        sqlite3_stmt *st = q->r[R_STATS_EXPIRED];
        if ((rc = stats_step(q, st, qid, now_ms)) == 0) {
            n_expired = sqlite3_column_int64(st, 0);
            expired_bytes = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
    }
    if (rc == 0) {
        sqlite3_stmt *st = q->r[R_STATS_LATER];
        if ((rc = stats_step(q, st, qid, now_ms)) == 0) {
            st_out.delayed_count = (int64_t)sqlite3_column_double(st, 0);
            st_out.leased_count = (int64_t)sqlite3_column_double(st, 1);
            if (sqlite3_column_type(st, 2) != SQLITE_NULL)
                oldest = sqlite3_column_int64(st, 2);
        }
        sqlite3_reset(st);
    }
    if (rc == 0) {
        sqlite3_stmt *st = q->r[R_STATS_HEAD];
        if ((rc = stats_step(q, st, qid, now_ms)) == 0 &&
            sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_int64(st, 0) < oldest)
            oldest = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    st_out.backlog_count = mc.n - n_expired;
    st_out.backlog_bytes = mc.bytes - expired_bytes;
    st_out.visible_count = st_out.backlog_count - st_out.delayed_count - st_out.leased_count;
    st_out.oldest_message_timestamp_ms = st_out.backlog_count > 0 && oldest != INT64_MAX ? oldest
                                                                                          : 0;
    *out = st_out;
    return 0;
}

int herald__sq_peek(herald_store *s, const char *name, int max_n, int64_t now_ms,
                    herald_batch *out)
{
    sq_store *q = (sq_store *)s;
    int64_t qid;
    int rc = read_queue(q, name, &qid, NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    herald_batch b;
    herald__batch_init(&b, name, (size_t)max_n);
    sqlite3_stmt *st = q->r[R_PEEK];
    sqlite3_bind_int64(st, 1, qid);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int(st, 3, max_n);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        herald_message *m = herald__batch_push(&b);
        copy_text(m->id, sizeof m->id, sqlite3_column_text(st, 1));
        m->timestamp_ms = sqlite3_column_int64(st, 2);
        m->content_type = (herald_content_type)sqlite3_column_int(st, 3);
        m->body_len = (size_t)sqlite3_column_bytes(st, 4);
        m->body = herald__batch_keep(&b, sqlite3_column_blob(st, 4), m->body_len);
        m->attempts = sqlite3_column_int(st, 5);
        copy_text(m->dead_from_queue, sizeof m->dead_from_queue, sqlite3_column_text(st, 6));
        m->dead_attempts = sqlite3_column_int(st, 7);
        if (sqlite3_column_type(st, 8) != SQLITE_NULL)
            m->last_error = herald__batch_keep(&b, sqlite3_column_text(st, 8),
                                               (size_t)sqlite3_column_bytes(st, 8));
        m->visible_at_ms = sqlite3_column_int64(st, 9);
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        herald_batch_deinit(&b);
        return herald__sq_fail(q->rdb, src, "peek");
    }
    *out = b;
    return 0;
}

int herald__sq_ready(herald_store *s, const char *name, int64_t now_ms, int limit, int *n_ready,
                     int64_t *next_due_ms, bool *is_paused)
{
    sq_store *q = (sq_store *)s;
    int64_t qid;
    herald_queue_info info;
    sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL);
    int rc = read_queue(q, name, &qid, &info, NULL, NULL);
    if (rc == 0) {
        sqlite3_stmt *c = q->r[R_READY_COUNT];
        sqlite3_bind_int64(c, 1, qid);
        sqlite3_bind_int64(c, 2, now_ms);
        sqlite3_bind_int(c, 3, limit);
        int src = sqlite3_step(c);
        if (src == SQLITE_ROW)
            *n_ready = sqlite3_column_int(c, 0);
        else
            rc = herald__sq_fail(q->rdb, src, "count ready messages");
        sqlite3_reset(c);
    }
    if (rc == 0) {
        sqlite3_stmt *d = q->r[R_NEXT_DUE];
        sqlite3_bind_int64(d, 1, qid);
        sqlite3_bind_int64(d, 2, now_ms);
        int src = sqlite3_step(d);
        if (src == SQLITE_ROW)
            *next_due_ms = sqlite3_column_type(d, 0) == SQLITE_NULL ? INT64_MAX
                                                                    : sqlite3_column_int64(d, 0);
        else
            rc = herald__sq_fail(q->rdb, src, "find next due message");
        sqlite3_reset(d);
    }
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    if (rc == 0)
        *is_paused = info.is_paused;
    return rc;
}

int herald__sq_data_version(herald_store *s, int64_t *out)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_DATA_VERSION];
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = herald__sq_fail(q->rdb, src, "read data_version");
    sqlite3_reset(st);
    return rc;
}

/* ---- processed events (effectively-once) ---- */

/* Which table records event_id: UUIDv7 ids (version nibble at offset 14) the one ordered by
 * time, others the one with the age index. */
static bool is_uuid7(const char *event_id)
{
    return strlen(event_id) == HERALD_ID_SIZE - 1 && event_id[14] == '7';
}

int herald__sq_processed_claim(herald_store *s, const char *queue, const char *event_id,
                               const char *type, int64_t now_ms, bool *is_new)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = q->w[is_uuid7(event_id) ? W_PROCESSED_ADD : W_PROCESSED_ADD_OTHER];
    sqlite3_bind_int64(st, 1, r.id);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    rc = herald__sq_exec(q, st, "record processed event");
    if (rc == 0)
        *is_new = sqlite3_changes(q->wdb) > 0;
    return rc;
}

int herald__sq_processed_prune(herald_store *s, const char *queue, int64_t before_ms,
                               int64_t *n_pruned)
{
    sq_store *q = (sq_store *)s;
    qrow r;
    int rc = load_queue(q, queue, &r);
    if (rc < 0)
        return rc;
    /* The id prefix "tttttttt-tttt" of the cutoff: every UUIDv7 created before it sorts
     * below it. The processed_ms condition decides; the prefix only bounds the walk. */
    char prefix[16];
    uint64_t t = before_ms > 0 ? (uint64_t)before_ms & 0xffffffffffffULL : 0;
    snprintf(prefix, sizeof prefix, "%08llx-%04llx", (unsigned long long)(t >> 16),
             (unsigned long long)(t & 0xffff));
    int64_t total = 0;
    for (int k = 0; rc == 0 && k < 2; k++) {
        sqlite3_stmt *st = q->w[k == 0 ? W_PROCESSED_PRUNE : W_PROCESSED_PRUNE_OTHER];
        sqlite3_bind_int64(st, 1, r.id);
        sqlite3_bind_int64(st, 2, before_ms);
        if (k == 0)
            sqlite3_bind_text(st, 3, prefix, -1, SQLITE_TRANSIENT);
        rc = herald__sq_exec(q, st, "prune processed events");
        total += rc == 0 ? sqlite3_changes64(q->wdb) : 0;
    }
    if (rc == 0 && n_pruned)
        *n_pruned = total;
    return rc;
}

int herald__sq_queue_ident(sq_store *q, const char *name, int64_t *id, int64_t *retention_s)
{
    qrow r;
    int rc = load_queue(q, name, &r);
    if (rc == 0) {
        *id = r.id;
        *retention_s = r.retention_s;
    }
    return rc;
}

int herald__sq_queue_exists(sq_store *q, const char *name)
{
    qrow r;
    return load_queue(q, name, &r);
}

/* ---- middleware support: processed check, metrics ---- */

int herald__sq_processed_check(herald_store *s, const char *queue, const char *event_id,
                               bool *seen)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[is_uuid7(event_id) ? R_PROCESSED_CHECK : R_PROCESSED_CHECK_OTHER];
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return herald__sq_fail(q->rdb, src, "check processed event");
    *seen = src == SQLITE_ROW;
    return 0;
}

int herald__sq_metrics_add(herald_store *s, const herald_metric *m, size_t n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->w[W_METRICS_ADD];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_text(st, 1, m[i].queue, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, m[i].type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, m[i].outcome, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, m[i].count);
        sqlite3_bind_double(st, 5, m[i].sum_ms);
        for (int b = 0; b < HERALD_METRIC_BUCKETS; b++)
            sqlite3_bind_int64(st, 6 + b, m[i].buckets[b]);
        rc = herald__sq_exec(q, st, "add metrics");
    }
    return rc;
}

static void fill_metric(sqlite3_stmt *st, void *elem)
{
    herald_metric *m = elem;
    copy_text(m->queue, sizeof m->queue, sqlite3_column_text(st, 0));
    copy_text(m->type, sizeof m->type, sqlite3_column_text(st, 1));
    copy_text(m->outcome, sizeof m->outcome, sqlite3_column_text(st, 2));
    m->count = sqlite3_column_int64(st, 3);
    m->sum_ms = sqlite3_column_double(st, 4);
    for (int b = 0; b < HERALD_METRIC_BUCKETS; b++)
        m->buckets[b] = sqlite3_column_int64(st, 5 + b);
}

int herald__sq_metrics_list(herald_store *s, herald_metric **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    return herald__sq_collect(q->rdb, q->r[R_METRICS], sizeof **out, fill_metric, (void **)out,
                              n, "read metrics");
}

static void fill_trace(sqlite3_stmt *st, void *elem)
{
    herald_trace_entry *e = elem;
    e->at_ms = sqlite3_column_int64(st, 0);
    copy_text(e->what, sizeof e->what, sqlite3_column_text(st, 1));
    copy_text(e->queue, sizeof e->queue, sqlite3_column_text(st, 2));
    copy_text(e->message_id, sizeof e->message_id, sqlite3_column_text(st, 3));
    copy_text(e->event_id, sizeof e->event_id, sqlite3_column_text(st, 4));
    copy_text(e->type, sizeof e->type, sqlite3_column_text(st, 5));
    copy_text(e->handler, sizeof e->handler, sqlite3_column_text(st, 6));
    e->attempt = sqlite3_column_int(st, 7);
    copy_text(e->detail, sizeof e->detail, sqlite3_column_text(st, 8));
}

int herald__sq_trace(herald_store *s, const char *corr, herald_trace_entry **out, size_t *n)
{
    sq_store *q = (sq_store *)s;
    sqlite3_stmt *st = q->r[R_TRACE];
    sqlite3_bind_text(st, 1, corr, -1, SQLITE_STATIC);
    return herald__sq_collect(q->rdb, st, sizeof **out, fill_trace, (void **)out, n,
                              "read trace");
}

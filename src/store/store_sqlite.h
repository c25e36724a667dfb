// SPDX-License-Identifier: MIT
/*
 * store_sqlite.h - shared between store_sqlite.c (connections, transactions, migrations) and
 * the other store_sqlite_*.c files (queue, topic, outbox, dead-letter and user-SQL statements).
 * Seen by nothing outside them.
 */
#ifndef HERALD_STORE_STORE_SQLITE_H
#define HERALD_STORE_STORE_SQLITE_H

#include <sqlite3.h>

#include "store/store_impl.h"

/* Statements of the writer connection, prepared at open (index into sq_store.w). */
enum {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO, W_SEQ_READ,
    W_SEQ_MARK,
    W_SP_BEGIN, W_SP_RELEASE, W_SP_ROLLBACK,
    W_QUEUE_BY_NAME, W_QUEUE_INSERT, W_QUEUE_UPDATE, W_QUEUE_DELETE, W_QUEUE_MSGS_DELETE,
    W_QUEUE_PAUSE, W_COUNTERS,
    W_MSG_INSERT, W_LEASE_SCAN, W_MSG_DELETE, W_MSG_STATE, W_MSG_RETRY,
    W_MSG_TO_DLQ, W_MSG_COUNT_ATTEMPT, W_MSG_EXTEND, W_EXPIRE_ONE, W_LEASE_BATCH, W_ACK_BATCH,
    W_PROCESSED_ADD, W_PROCESSED_ADD_OTHER, W_PROCESSED_PRUNE, W_PROCESSED_PRUNE_OTHER,
    W_TOPIC_ENSURE, W_TOPIC_SUB, W_TOPIC_UNSUB, W_TOPIC_EXISTS, W_TOPIC_TARGETS, W_TOPIC_COUNT,
    W_QUEUE_SUBS_DELETE, W_OUTBOX_PUT, W_OUTBOX_MARK, W_OUTBOX_PRUNE,
    W_ATTEMPT_ADD, W_ATTEMPT_PRUNE, W_DEAD_GET, W_REDRIVE, W_AUDIT_ADD,
    W_METRICS_ADD, W_TRACE_ADD, W_TRACE_PRUNE, W_QUEUE_RECOUNT, W_EXPIRY_FLOOR,
    W_N
};

/* Statements of the reader connection. */
enum {
    R_QUEUE_BY_NAME, R_QUEUE_LIST, R_STATS_EXPIRED, R_STATS_LATER, R_STATS_HEAD, R_PEEK,
    R_READY_COUNT, R_NEXT_DUE, R_DATA_VERSION,
    R_TOPIC_LIST, R_TOPIC_SUBS, R_OUTBOX_PENDING, R_OUTBOX_COUNT,
    R_ATTEMPTS, R_DEAD_PAGE, R_AUDIT, R_PROCESSED_CHECK, R_PROCESSED_CHECK_OTHER, R_METRICS,
    R_TRACE, R_MSG_GET, R_EXPIRED_SCAN,
    R_N
};

typedef struct sq_store {
    herald_store base;
    char *path;
    sqlite3 *wdb; /* writer: the writer thread only (and open/close) */
    sqlite3 *rdb; /* reader: under base.read_mu */
    sqlite3_stmt *w[W_N];
    sqlite3_stmt *r[R_N];
    int schema_version;
    int wal_pages; /* writer thread: WAL size after the last commit (wal_hook) */
    int wal_fd;    /* durability FULL: the WAL, fsynced by the syncer thread (sq_sync); or -1 */
    /* the checkpointer thread and its connection (store_sqlite.c) */
    sqlite3 *cdb;
    bool has_ckpt_thread;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    pthread_cond_t ckpt_idle_cv; /* signalled when a checkpoint run ends (wal_reset waits) */
    bool ckpt_wanted, ckpt_stop; /* ckpt_mu */
    bool ckpt_running;           /* ckpt_mu: a checkpoint runs on the checkpointer thread */
    int ckpt_src;                /* ckpt_mu: first failure, SQLITE_OK if none */
    bool ckpt_reported;          /* ckpt_mu: the writer returned ckpt_src once (it is sticky) */
    char ckpt_err[256];          /* ckpt_mu */
    int ckpt_asked_at;           /* writer: wal_pages when the checkpointer was last woken */
    int64_t next_seq;    /* writer: the seq the next new message row gets (herald__sq_next_seq) */
    int64_t seq_mark;    /* writer: herald_meta's message_seq as this transaction began */
    int inflight_fd;     /* writer: this handle's in-flight journal, or -1 (created lazily) */
    void *inflight_map;  /* its mapping */
    char *inflight_path; /* store_sqlite_inflight.c */
    void *wcache, *rcache; /* user-statement caches (store_sqlite_sql.c) */
    void *qcache;          /* writer: queue rows of the current transaction */
    bool w_user_mode, r_user_mode; /* the authorizer applies (store_sqlite_sql.c) */
    void *pending;         /* writer: counter deltas of the current transaction */
    int64_t sweep_start_ms; /* __atomic: store time the current retention pass began scanning
                             * (reader); the pass's end raises the queues' expiry floors to it */
    sqlite3_stmt *catalog_st[2]; /* store_sqlite_catalog.c: version read, [0] rdb, [1] wdb */
} sq_store;

/* Maps a SQLite result code to HERALD_E* (keeping the native text in the detail). */
int herald__sq_fail(sqlite3 *db, int src, const char *what);
/* Steps st to the end, one elem_size element per row written by fill (zeroed first); *out is
 * herald__free'd by the caller. Resets st. */
int herald__sq_collect(sqlite3 *db, sqlite3_stmt *st, size_t elem_size,
                       void (*fill)(sqlite3_stmt *st, void *elem), void **out, size_t *n,
                       const char *what);
/* Writer: the seq for a new message row. Never one handed out before, even if that row is
 * gone: seqs continue from max(herald_meta's mark, max(seq)), read when the transaction began,
 * and the mark is written back at commit (migration 0010). */
static inline int64_t herald__sq_next_seq(sq_store *q)
{
    return q->next_seq++;
}
/* Steps a statement that returns no row; resets it. */
int herald__sq_exec(sq_store *q, sqlite3_stmt *st, const char *what);

/* The SQL of W_LEASE_BATCH / W_ACK_BATCH (built once per process; thread-safe). */
const char *herald__sq_batch_sql(int which);
/* Queue-statement SQL (store_sqlite_queue.c), indexed by W_* / R_*; NULL for the generic ones. */
extern const char *const herald__sq_wsql[W_N];
extern const char *const herald__sq_rsql[R_N];

/* The queue slots, installed into herald__store_sqlite by store_sqlite.c. */
int herald__sq_queue_create(herald_store *s, const char *name, const herald_queue_settings *st,
                            const char *uuid, int64_t now_ms);
int herald__sq_queue_update(herald_store *s, const char *name, const herald_queue_settings *st,
                            int64_t now_ms);
int herald__sq_queue_delete(herald_store *s, const char *name);
int herald__sq_queue_purge(herald_store *s, const char *name, int64_t *n_deleted);
int herald__sq_queue_set_paused(herald_store *s, const char *name, bool paused, int64_t now_ms);
int herald__sq_msg_put(herald_store *s, const char *queue, const herald__msg_in *m, size_t n,
                       int64_t batch_delay_s, int64_t now_ms);
int herald__sq_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                     const herald__policy *p, int64_t now_ms, herald_batch *out);
int herald__sq_settle(herald_store *s, const char *queue, const herald__settle_item *items,
                      size_t n, const herald__policy *p, int64_t now_ms,
                      herald_settle_result *res);
int herald__sq_take(herald_store *s, const char *queue, int max_n, const herald__policy *p,
                    int64_t now_ms, herald_batch *out);
/* The in-flight journal of taken batches (store_sqlite_inflight.c). note: writer thread, before
 * the batch's handlers run; recover: at open, before the writer starts; close: at close. */
int herald__sq_inflight_note(sq_store *q, const int64_t *seqs, const int64_t *attempts, size_t n);
int herald__sq_inflight_recover(sq_store *q);
void herald__sq_inflight_running(sq_store *q, int64_t i); /* -1: no handler runs */
void herald__sq_inflight_close(sq_store *q);
int herald__sq_extend(herald_store *s, const char *queue, const herald__lease_ref *refs, size_t n,
                      int64_t until_ms);
int herald__sq_sweep(herald_store *s, int64_t now_ms, int64_t *n_pruned);
int herald__sq_expire(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms,
                      int64_t *n_deleted);
int herald__sq_expired_scan(herald_store *s, int64_t now_ms, int64_t after_seq, int64_t *seqs,
                            size_t max, size_t *n);
int herald__sq_queue_get(herald_store *s, const char *name, herald_queue_info *out);
int herald__sq_queue_list(herald_store *s, herald_queue_info **out, size_t *n);
int herald__sq_queue_stats(herald_store *s, const char *name, int64_t now_ms,
                           herald_queue_stats *out);
int herald__sq_peek(herald_store *s, const char *name, int max_n, int64_t now_ms,
                    herald_batch *out);
int herald__sq_ready(herald_store *s, const char *name, int64_t now_ms, int limit, int *n_ready,
                     int64_t *next_due_ms, bool *is_paused);
int herald__sq_data_version(herald_store *s, int64_t *out);
int herald__sq_processed_claim(herald_store *s, const char *queue, const char *event_id,
                               const char *type, int64_t now_ms, bool *is_new);
int herald__sq_processed_prune(herald_store *s, const char *queue, int64_t before_ms,
                               int64_t *n_pruned);

void herald__sq_qcache_clear(sq_store *q);
/* Records one step of a traced message (store_sqlite_queue.c). */
int herald__sq_trace_add(sq_store *q, const herald__trace_info *t, const char *what,
                         const char *queue, const char *msg_id, const char *handler, int attempt,
                         const char *detail, int64_t now_ms);
/* Records a failed delivery of a message in herald_attempts (store_sqlite_queue.c). */
int herald__sq_attempt_add(sq_store *q, const char *msg_id, const char *queue, int64_t attempt,
                           const char *error, int64_t now_ms);
/* Pending counter deltas (store_sqlite_queue.c): see write_counters. */
void herald__sq_counters_reset(sq_store *q);
void herald__sq_counters_savepoint(sq_store *q);
void herald__sq_counters_release(sq_store *q);
void herald__sq_counters_rollback_to(sq_store *q);
int herald__sq_counters_flush(sq_store *q);

/* store_sqlite_topic.c */
int herald__sq_topic_subscribe(herald_store *s, const char *topic, const char *queue,
                               int64_t now_ms);
int herald__sq_topic_unsubscribe(herald_store *s, const char *topic, const char *queue);
int herald__sq_topic_publish(herald_store *s, const char *topic, const herald__msg_in *m,
                             size_t n, int64_t batch_delay_s, int64_t now_ms, size_t *n_queues);
int herald__sq_topic_list(herald_store *s, herald_topic_info **out, size_t *n);
/* Does queue `name` exist (writer)? 0 or HERALD_ENOQUEUE. */
int herald__sq_queue_exists(sq_store *q, const char *name);

/* store_sqlite_outbox.c */
int herald__sq_outbox_put(herald_store *s, const char *dest, bool is_topic, const char *event_id,
                          const void *body, size_t len, int64_t now_ms);
int herald__sq_outbox_mark(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms);
int herald__sq_outbox_prune(herald_store *s, int64_t before_ms, int64_t *n_pruned);
int herald__sq_outbox_pending(herald_store *s, herald__outbox_row *rows, size_t max, size_t *n);
int herald__sq_outbox_count(herald_store *s, int64_t *n_pending);

/* store_sqlite_dlq.c */
int herald__sq_redrive_one(herald_store *s, const char *dlq, int64_t seq, const char *to_queue,
                           const void *body, size_t len, const char *actor, const char *edit,
                           int64_t now_ms, bool *moved);
int herald__sq_dead_page(herald_store *s, const char *dlq, int64_t after_visible_ms,
                         int64_t after_seq, int64_t now_ms, herald__dead_row *rows, size_t max,
                         size_t *n);
int herald__sq_attempts(herald_store *s, const char *message_id, herald_attempt **out, size_t *n);
int herald__sq_msg_get(herald_store *s, const char *queue, const char *id, int64_t now_ms,
                       herald_batch *out);
int herald__sq_audit(herald_store *s, const char *dlq, herald_audit_entry **out, size_t *n);
/* Queue id and retention of a queue (writer); HERALD_ENOQUEUE naming it. */
int herald__sq_queue_ident(sq_store *q, const char *name, int64_t *id, int64_t *retention_s);
/* Counts a message row moved (redriven) from queue from_id (old_bytes of body) to to_id
 * (new_bytes, expiring at new_expires_ms): sent_total and the message counts, in the current
 * transaction. */
int herald__sq_count_moved(sq_store *q, int64_t from_id, int64_t to_id, int64_t old_bytes,
                           int64_t new_bytes, int64_t new_expires_ms);

int herald__sq_processed_check(herald_store *s, const char *queue, const char *event_id,
                               bool *seen);
int herald__sq_metrics_add(herald_store *s, const herald_metric *m, size_t n);
int herald__sq_metrics_list(herald_store *s, herald_metric **out, size_t *n);
int herald__sq_trace(herald_store *s, const char *corr, herald_trace_entry **out, size_t *n);

/* store_sqlite_catalog.c */
int herald__sq_catalog_version(herald_store *s, bool on_writer, int64_t *version);
int herald__sq_catalog_get(herald_store *s, bool on_writer, herald__catalog_row *out);
int herald__sq_catalog_put(herald_store *s, const herald__catalog_row *row, int64_t now_ms,
                           int64_t *version_out);
int herald__sq_catalog_in_use(herald_store *s, const char *type, int64_t *n_messages,
                              int64_t *n_outbox);
int herald__sq_catalog_history(herald_store *s, herald__catalog_row **out, size_t *n);
void herald__sq_catalog_close(sq_store *q); /* finalizes its statements (sq_close) */

/* store_sqlite_sql.c */
int herald__sq_user_sql(herald_store *s, bool on_writer, const char *sql, const herald_arg *args,
                        size_t n, bool is_multi, int64_t *changes, herald_row_cb cb, void *ud);
int herald__sq_sp_begin(herald_store *s);
int herald__sq_sp_release(herald_store *s);
int herald__sq_sp_rollback(herald_store *s);
void herald__sq_cache_free(void *cache);
/* Installs the user-SQL authorizer on both connections (once, at open). */
void herald__sq_install_authorizer(sq_store *q);

#endif

// SPDX-License-Identifier: MIT
/*
 * store_impl.h - the backend interface. Seen only by store.c and the backends (store_*.c).
 * A backend allocates its own struct with `herald_store base` as the first member; store.c owns
 * the fields of herald_store (writer thread, wake-ups) and calls the backend only through ops.
 * Writer-side slots run on the writer thread inside begin..commit; read-side slots are called by
 * store.c under the store's reader lock, with `now_ms` from the store clock.
 */
#ifndef HERALD_STORE_STORE_IMPL_H
#define HERALD_STORE_STORE_IMPL_H

#include <pthread.h>

#include "store/store.h"

typedef struct herald_store_ops herald_store_ops;

typedef struct herald__store_opts {
    herald_durability durability;
    bool durability_set; /* else the URL's ?durability=, else FULL */
} herald__store_opts;

struct herald_store_ops {
    const char *scheme; /* URL scheme: "sqlite" */
    int abi;            /* bump when a slot is added; checked at registration */
    /* rest: the URL after "scheme:". Sets herald__err detail on failure. */
    int (*open)(const char *rest, const herald__store_opts *o, herald_store **out);
    void (*close)(herald_store *s);
    int (*schema_version)(herald_store *s);
    /* writer thread */
    int (*begin)(herald_store *s);
    int (*commit)(herald_store *s);
    int (*rollback)(herald_store *s);
    int (*savepoint)(herald_store *s);
    int (*release)(herald_store *s);
    int (*rollback_to)(herald_store *s);
    bool (*in_transaction)(herald_store *s); /* false: a statement ended the transaction */
    /* after a group's commit (its callers are released then, or by the syncer after its
     * fsync): housekeeping such as checkpoints */
    int (*after_commit)(herald_store *s); /* < 0: the store's error becomes sticky */
    /* Durability FULL with a deferred sync: makes every transaction committed so far durable
     * (an fsync). Runs on the syncer thread while the writer goes on with the next group; a
     * group's callers are released only after it. NULL: commit() is durable by itself. */
    int (*sync)(herald_store *s);
    int (*queue_create)(herald_store *s, const char *name, const herald_queue_settings *st,
                        const char *uuid, int64_t now_ms);
    int (*queue_update)(herald_store *s, const char *name, const herald_queue_settings *st,
                        int64_t now_ms);
    int (*queue_delete)(herald_store *s, const char *name);
    int (*queue_purge)(herald_store *s, const char *name, int64_t *n_deleted);
    int (*queue_set_paused)(herald_store *s, const char *name, bool paused, int64_t now_ms);
    int (*msg_put)(herald_store *s, const char *queue, const herald__msg_in *m, size_t n,
                   int64_t batch_delay_s, int64_t now_ms);
    int (*lease)(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                 const herald__policy *p, int64_t now_ms, herald_batch *out);
    int (*take)(herald_store *s, const char *queue, int max_n, const herald__policy *p,
                int64_t now_ms, herald_batch *out);
    void (*inflight_running)(herald_store *s, int64_t i);
    int (*settle)(herald_store *s, const char *queue, const herald__settle_item *items, size_t n,
                  const herald__policy *p, int64_t now_ms, herald_settle_result *res);
    int (*extend)(herald_store *s, const char *queue, const herald__lease_ref *refs, size_t n,
                  int64_t until_ms);
    int (*sweep)(herald_store *s, int64_t now_ms, int64_t *n_pruned);
    int (*expire)(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms,
                  int64_t *n_deleted);
    int (*expired_scan)(herald_store *s, int64_t now_ms, int64_t after_seq, int64_t *seqs,
                        size_t max, size_t *n);
    int (*sp_begin)(herald_store *s);
    int (*sp_release)(herald_store *s);
    int (*sp_rollback)(herald_store *s);
    int (*user_sql)(herald_store *s, bool on_writer, const char *sql, const herald_arg *args,
                    size_t n, bool is_multi, int64_t *changes, herald_row_cb cb, void *ud);
    int (*processed_claim)(herald_store *s, const char *queue, const char *event_id,
                           const char *type, int64_t now_ms, bool *is_new);
    int (*processed_prune)(herald_store *s, const char *queue, int64_t before_ms,
                           int64_t *n_pruned);
    int (*topic_subscribe)(herald_store *s, const char *topic, const char *queue, int64_t now_ms);
    int (*topic_unsubscribe)(herald_store *s, const char *topic, const char *queue);
    int (*topic_publish)(herald_store *s, const char *topic, const herald__msg_in *m, size_t n,
                         int64_t batch_delay_s, int64_t now_ms, size_t *n_queues);
    int (*outbox_put)(herald_store *s, const char *dest, bool is_topic, const char *event_id,
                      const void *body, size_t len, int64_t now_ms);
    int (*outbox_mark)(herald_store *s, const int64_t *seqs, size_t n, int64_t now_ms);
    int (*outbox_prune)(herald_store *s, int64_t before_ms, int64_t *n_pruned);
    int (*redrive_one)(herald_store *s, const char *dlq, int64_t seq, const char *to_queue,
                       const void *body, size_t len, const char *actor, const char *edit,
                       int64_t now_ms, bool *moved);
    int (*metrics_add)(herald_store *s, const herald_metric *m, size_t n);
    /* read side */
    int (*processed_check)(herald_store *s, const char *queue, const char *event_id, bool *seen);
    int (*metrics_list)(herald_store *s, herald_metric **out, size_t *n);
    int (*trace)(herald_store *s, const char *corr, herald_trace_entry **out, size_t *n);
    int (*dead_page)(herald_store *s, const char *dlq, int64_t after_visible_ms,
                     int64_t after_seq, int64_t now_ms, herald__dead_row *rows, size_t max,
                     size_t *n);
    int (*msg_get)(herald_store *s, const char *queue, const char *id, int64_t now_ms,
                   herald_batch *out);
    int (*attempts)(herald_store *s, const char *message_id, herald_attempt **out, size_t *n);
    int (*audit)(herald_store *s, const char *dlq, herald_audit_entry **out, size_t *n);
    int (*outbox_pending)(herald_store *s, herald__outbox_row *rows, size_t max, size_t *n);
    int (*outbox_count)(herald_store *s, int64_t *n_pending);
    int (*topic_list)(herald_store *s, herald_topic_info **out, size_t *n);
    int (*queue_get)(herald_store *s, const char *name, herald_queue_info *out);
    int (*queue_list)(herald_store *s, herald_queue_info **out, size_t *n);
    int (*queue_stats)(herald_store *s, const char *name, int64_t now_ms, herald_queue_stats *out);
    int (*peek)(herald_store *s, const char *name, int max_n, int64_t now_ms, herald_batch *out);
    int (*ready)(herald_store *s, const char *name, int64_t now_ms, int limit, int *n_ready,
                 int64_t *next_due_ms, bool *is_paused);
    int (*data_version)(herald_store *s, int64_t *out);
    /* the event catalog in force (store_catalog.c; SQLite: store_sqlite_catalog.c). on_writer:
     * on the writer thread inside an op (its transaction), else on the reader under read_mu. */
    int (*catalog_version)(herald_store *s, bool on_writer, int64_t *version);
    int (*catalog_get)(herald_store *s, bool on_writer, herald__catalog_row *out);
    int (*catalog_put)(herald_store *s, const herald__catalog_row *row, int64_t now_ms,
                       int64_t *version_out);                              /* writer */
    int (*catalog_in_use)(herald_store *s, const char *type, int64_t *n_messages,
                          int64_t *n_outbox);                              /* writer */
    int (*catalog_history)(herald_store *s, herald__catalog_row **out, size_t *n); /* reader */
};

#define HERALD_STORE_ABI 3 /* 2: sync, take, inflight_running, in_transaction; 3: catalog_* */

struct herald_store {
    const herald_store_ops *ops;
    int sticky_rc; /* a failed commit/fsync makes every later write fail; guarded by mu */
    char sticky_err[256]; /* mu: the detail of that failure, repeated by every refusal */
    const herald_clock *clock;
    herald_durability durability;
    /* group-commit writer; fields below guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* writer waits for ops */
    pthread_cond_t done_cv; /* synchronous callers wait for their op */
    pthread_cond_t wake_cv; /* consumers wait for the generation to change */
    herald__op *head, *tail;
    bool is_stopping;
    /* syncer (set by the backend's open when it defers the fsync to ops->sync): committed
     * groups waiting for their fsync */
    bool has_syncer, writer_done;
    herald__op *sync_head, *sync_tail;
    bool sync_wakes;
    pthread_cond_t sync_cv;
    pthread_t syncer;
    uint64_t gen;
    int64_t next_sweep_ms; /* herald__store_sweep_turn: when the next retention sweep is due */
    pthread_t writer;
    /* read side */
    pthread_mutex_t read_mu;
    /* event catalogs (store_catalog.c), guarded by catalog_lock (held for reading through
     * each check, so a replaced catalog is never in use): the one set by
     * herald_store_set_catalog, and the store's own (the highest stored version), parsed */
    pthread_rwlock_t catalog_lock;
    const herald_catalog *catalog;
    herald_catalog_mode catalog_mode;
    herald_catalog *stored;         /* owned; NULL: no version stored (or not read yet) */
    herald_catalog_mode stored_mode;
    int64_t stored_version;         /* the version `stored` was parsed from; 0: none */
};

/* ---- I/O fault points and limits for tests ---- */

/* Returns 0, or the negative errno armed for `point` by herald__fault_io_arm once `after` calls
 * of that point have passed; a point stays armed (a full disk stays full) until disarmed with
 * err 0; or, in a whole process, by env HERALD_FAULT=<point>=EIO|ENOSPC. Points:
 * "sqlite.wal_sync" (the syncer's fdatasync of the WAL). Thread: any. */
int herald__fault_io(const char *point);
void herald__fault_io_arm(const char *point, int err, int after);

/* The SQLite backend's WAL limits, in pages, for stores opened after the call (0 keeps the
 * default): the checkpointer is woken every ckpt_pages, the writer tries to restart the WAL
 * past restart_pages and waits up to wait_ms for it past max_pages (store_sqlite.c, "WAL
 * bound"). Lets tests reach the limits with little data. */
void herald__sq_test_wal_limits(int ckpt_pages, int restart_pages, int max_pages, int wait_ms);

#endif
